/*
 * The gateway's cost of authentication: GET /api/v1/products/1 on the seeded monolith
 * with a valid bearer token (verified, RBAC-checked; after the first request its
 * verification is a cache hit) vs without one (an anonymous catalog read), measured by wrk
 * in interleaved rounds in one run, so that machine noise hits both alike. Then the cost
 * and gain of gzip (ADR 0040): a page of 100 products asked for with and without
 * "Accept-Encoding: gzip", bytes per answer on the wire and throughput, and the time zlib
 * takes for that page at level 1 (the server's) and level 6 (zlib's default).
 *
 *   bench_gateway [seconds per round, default 3] [rounds, default 4]
 *
 * wrk (Debian's package) runs with 2 threads and 32 keep-alive connections, as the
 * project's performance targets are stated (TARGETS.md). Prints requests/s and latency
 * per side and their ratios; it never fails on timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "client.h"
#include "proc.h"
#include "topology.h"

#define MAX_ROUNDS 20

typedef struct side {
    const char *label;
    const char *header; /* the extra request header, or NULL */
    double rps[MAX_ROUNDS];
    double p50_ms[MAX_ROUNDS];
    double p99_ms[MAX_ROUNDS];
    double bytes[MAX_ROUNDS]; /* per answer on the wire, head included */
    int n;
} side;

/* wrk prints latencies as "1.23ms", "456.00us" or "1.01s": in milliseconds. */
static double wrk_ms(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);

    if (end == NULL || end == s) {
        return -1;
    }
    if (strncmp(end, "us", 2) == 0) {
        return v / 1000.0;
    }
    if (strncmp(end, "ms", 2) == 0) {
        return v;
    }
    if (*end == 's') {
        return v * 1000.0;
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

/* Debian's wrk (the Makefile's PACKAGES), run without a shell. */
#define WRK_BIN "/usr/bin/wrk"

/* One wrk run against url; the figures of side s's next round. */
static int run_wrk(side *s, const char *url, int seconds)
{
    static char out[16384];
    char duration[32];
    char *argv[10];
    double rps = -1, p50 = -1, p99 = -1, transfer = -1;
    int non_2xx = 0;
    int n = 0, rc;

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
    argv[n++] = (char *)url;
    argv[n] = NULL;
    rc = test_run(WRK_BIN, argv, NULL, out, sizeof(out));
    for (char *line = out; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        const char *req, *q50, *q99, *tps;

        /* Each search looks at this line only, so the line ends first. */
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
    if (rc != 0 || non_2xx || rps <= 0 || p50 < 0 || p99 < 0) {
        fprintf(stderr,
                "%s: wrk failed (exit %d) or printed no figures (is " WRK_BIN " installed?)\n%s\n",
                s->label, rc, out);
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

/* Runs both sides against url in interleaved rounds and prints each side's medians. */
static int compare(side sides[2], const char *url, int seconds, int rounds, double rps[2],
                   double p50[2], double p99[2], double bytes[2])
{
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < 2; k++) {
            if (run_wrk(&sides[(i + k) % 2], url, seconds) != 0) {
                return -1;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        rps[k] = median(sides[k].rps, sides[k].n);
        p50[k] = median(sides[k].p50_ms, sides[k].n);
        p99[k] = median(sides[k].p99_ms, sides[k].n);
        bytes[k] = median(sides[k].bytes, sides[k].n);
        printf("%-30s %9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   %7.0f B/answer   (medians of "
               "%d rounds)\n",
               sides[k].label, rps[k], p50[k], p99[k], bytes[k], sides[k].n);
    }
    return 0;
}

/* Microseconds zlib takes to gzip text[0..len) at level, the best of a few hundred runs. */
static double gzip_us(const char *text, size_t len, int level, size_t *out_len)
{
    static unsigned char out[1 << 20];
    double best = -1;

    for (int i = 0; i < 300; i++) {
        z_stream zs = {0};
        struct timespec t0, t1;
        double us;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            return -1;
        }
        zs.next_in = (Bytef *)text; /* zlib's API is not const; it only reads */
        zs.avail_in = (uInt)len;
        zs.next_out = out;
        zs.avail_out = sizeof(out);
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
            deflateEnd(&zs);
            return -1;
        }
        *out_len = zs.total_out;
        deflateEnd(&zs);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
        best = best < 0 || us < best ? us : best;
    }
    return best;
}

/* The gzip figures: a page of 100 products with and without Accept-Encoding, and zlib alone. */
static int bench_gzip(const topology *t, int seconds, int rounds)
{
    static const char page[] = "/api/v1/products?limit=100";
    side sides[2] = {{.label = "identity (no Accept-Encoding)"},
                     {.label = "gzip", .header = "Accept-Encoding: gzip"}};
    double rps[2], p50[2], p99[2], bytes[2];
    size_t gz1 = 0, gz6 = 0;
    double us1, us6;
    char url[160];
    test_resp r = {0};
    int rc = -1;

    snprintf(url, sizeof(url), "%s%s", t->base_url, page);
    if (test_http(t->base_url, "GET", page, NULL, 0, NULL, &r) != 0 || r.status != 200) {
        fprintf(stderr, "GET %s answered %ld\n", page, r.status);
        goto out;
    }
    printf("\nGET %s (%zu bytes of JSON), wrk -t2 -c32, %d interleaved rounds of %d s\n", page,
           r.body_len, rounds, seconds);
    if (compare(sides, url, seconds, rounds, rps, p50, p99, bytes) != 0) {
        goto out;
    }
    printf("gzip vs identity: %.2fx the bytes per answer, %.2fx the throughput, %.2fx the p50, "
           "%.2fx the p99\n",
           bytes[1] / bytes[0], rps[1] / rps[0], p50[1] / p50[0], p99[1] / p99[0]);
    us1 = gzip_us(r.body, r.body_len, 1, &gz1);
    us6 = gzip_us(r.body, r.body_len, 6, &gz6);
    if (us1 < 0 || us6 < 0) {
        fprintf(stderr, "zlib failed\n");
        goto out;
    }
    printf("zlib on that page: level 1 %zu bytes (%.1f%%) in %.0f us, level 6 %zu bytes (%.1f%%) "
           "in %.0f us: level 6 takes %.2fx the time for %.2fx the bytes\n",
           gz1, 100.0 * (double)gz1 / (double)r.body_len, us1, gz6,
           100.0 * (double)gz6 / (double)r.body_len, us6, us6 / us1, (double)gz6 / (double)gz1);
    rc = 0;
out:
    test_resp_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    char url[128], bearer[4200];
    side sides[2] = {{.label = "without a token (anonymous)"}, {.label = "with a valid token"}};
    double rps[2], p50[2], p99[2], bytes[2];
    topology t = {0};
    test_resp r = {0};
    int rc = EXIT_FAILURE;

    if (seconds < 1 || seconds > 60 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_gateway [seconds 1-60] [rounds 1-%d]\n", MAX_ROUNDS);
        return 2;
    }
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the monolith on SQLite, whatever the caller's shell */
    }
    if (topology_start_with(&t, "monolith", 1, NULL) != 0 || t.token[0] == '\0') {
        fprintf(stderr, "could not start the seeded monolith\n");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/api/v1/products/1", t.base_url);
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", t.token);
    sides[1].header = bearer;
    /* Both answers must be the product, or the figures compare different work. */
    if (test_http(t.base_url, "GET", "/api/v1/products/1", NULL, 0, NULL, &r) != 0 ||
        r.status != 200) {
        fprintf(stderr, "GET /api/v1/products/1 answered %ld\n", r.status);
        goto out;
    }
    printf("GET /api/v1/products/1, monolith on SQLite, wrk -t2 -c32, %d interleaved rounds of "
           "%d s\n",
           rounds, seconds);
    if (compare(sides, url, seconds, rounds, rps, p50, p99, bytes) != 0) {
        goto out;
    }
    printf("with a token vs without: %.2fx the throughput, %.2fx the p50, %.2fx the p99\n",
           rps[1] / rps[0], p50[1] / p50[0], p99[1] / p99[0]);
    if (bench_gzip(&t, seconds, rounds) != 0) {
        goto out;
    }
    rc = EXIT_SUCCESS;
out:
    test_resp_free(&r);
    if (t.nprocs > 0) {
        topology_stop(&t);
    }
    test_http_thread_done();
    return rc;
}
