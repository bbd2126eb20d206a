#include "wrk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#define WRK_BIN "/usr/bin/wrk"

/* wrk prints latencies as "1.23ms", "456.00us" or "1.01s": in milliseconds. */
static double wrk_ms(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);

    if (end == NULL || end == s) {
        return -1;
    }
    if (strncmp(end, "us", 2) == 0) {
        return v / 1000;
    }
    if (strncmp(end, "ms", 2) == 0) {
        return v;
    }
    if (*end == 's') {
        return v * 1000;
    }
    return -1;
}

/* wrk prints Transfer/sec as "1.23MB", "456.00KB" or "789.00B": in bytes. */
static double wrk_bytes(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);

    if (end == NULL || end == s) {
        return -1;
    }
    switch (*end) {
    case 'G':
        return v * 1024 * 1024 * 1024;
    case 'M':
        return v * 1024 * 1024;
    case 'K':
        return v * 1024;
    case 'B':
        return v;
    default:
        return -1;
    }
}

int wrk_round(wrk_side *s, int seconds)
{
    static char out[16384];
    static char whole[16384]; /* out as wrk printed it, for a failure's message */
    char duration[32];
    char *argv[10];
    double rps = -1, p50 = -1, p99 = -1, transfer = -1;
    int non_2xx = 0;
    int n = 0, rc;

    if (s->n == WRK_MAX_ROUNDS) {
        fprintf(stderr, "%s: more than %d rounds\n", s->label, WRK_MAX_ROUNDS);
        return -1;
    }
    snprintf(duration, sizeof(duration), "-d%ds", seconds);
    argv[n++] = "wrk";
    argv[n++] = "-t2";
    argv[n++] = "-c32";
    argv[n++] = duration;
    argv[n++] = "--latency";
    if (s->header != NULL) {
        argv[n++] = "-H";
        argv[n++] = (char *)s->header;
    }
    argv[n++] = (char *)s->url;
    argv[n] = NULL;
    rc = test_run(WRK_BIN, argv, NULL, out, sizeof(out));
    memcpy(whole, out, sizeof(whole));
    for (char *line = out; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        const char *req, *q50, *q99, *tps;

        /* One line at a time: a search must not find the next lines' figures. */
        if (end != NULL) {
            *end = '\0';
        }
        req = strstr(line, "Requests/sec:");
        q50 = strstr(line, " 50% ");
        q99 = strstr(line, " 99% ");
        tps = strstr(line, "Transfer/sec:");
        if (req != NULL) {
            rps = strtod(req + strlen("Requests/sec:"), NULL);
        } else if (q50 != NULL) {
            p50 = wrk_ms(q50 + 5 + strspn(q50 + 5, " "));
        } else if (q99 != NULL) {
            p99 = wrk_ms(q99 + 5 + strspn(q99 + 5, " "));
        } else if (tps != NULL) {
            tps += strlen("Transfer/sec:");
            transfer = wrk_bytes(tps + strspn(tps, " "));
        } else if (strstr(line, "Non-2xx") != NULL) {
            fprintf(stderr, "%s: wrk saw answers other than 2xx: %s\n", s->label, line);
            non_2xx = 1;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    if (rc != 0 || non_2xx || rps <= 0 || p50 < 0 || p99 < 0 || transfer < 0) {
        fprintf(stderr,
                "%s: wrk failed (exit %d) or printed no figures (is " WRK_BIN " installed?)\n%s\n",
                s->label, rc, whole);
        return -1;
    }
    s->rps[s->n] = rps;
    s->p50_ms[s->n] = p50;
    s->p99_ms[s->n] = p99;
    s->bytes[s->n] = transfer / rps;
    s->n++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of v[0..n), reordering v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

wrk_figures wrk_medians(wrk_side *s)
{
    wrk_figures f = {median(s->rps, s->n), median(s->p50_ms, s->n), median(s->p99_ms, s->n),
                     median(s->bytes, s->n)};

    return f;
}
