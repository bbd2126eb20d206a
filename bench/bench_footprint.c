/*
 * The monolith's footprint, as `make run` starts it (SQLite, the demo data): the time from
 * exec to the first 200 from /readyz, over several starts, and its resident memory idle (once
 * it stopped changing after a login: at the last start, and at the first, which relays the
 * seed's events) and sampled while wrk loads it (GET product, anonymous and with a token in turn),
 * so that a growth under load shows. Never fails on timing.
 *
 *   bench_footprint [seconds of load, default 60] [starts, default 15]
 *   BENCH_CLEAVE_BIN=/tmp/old/cleave bench_footprint ...   (another build; not CLEAVE_*,
 *                                                          which cleave refuses unknown)
 *
 * TARGETS.md: start-up to ready <= 50 ms; <= 10 MB idle, flat under a 10-minute load
 * (`bench_footprint 600`).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "proc.h"
#include "shop.h"
#include "wrk.h"

#define PRODUCT    "/api/v1/products/1"
#define MAX_STARTS 50
#define SLICE_S    10 /* seconds of load between two samples */
/*
 * The demo customer's token lives 10 minutes. Past its expiry, in the verifier's leeway,
 * every request verifies it in full, which the process would rarely see from a client that
 * renews its tokens: a long load logs in again this often.
 */
#define RENEW_MS   (5 * 60 * 1000)

static char dir[256];

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * The binary measured: the build's, or BENCH_CLEAVE_BIN, so that an old and a new build
 * are compared in turn on the same machine in the same minutes.
 */
static const char *cleave_bin(void)
{
    const char *bin = getenv("BENCH_CLEAVE_BIN");

    return bin != NULL && bin[0] != '\0' ? bin : CLEAVE_BIN;
}

/* The environment of every cleave process here: the data directory and a listen address. */
static void env_for(char *data, size_t dsize, char *listen, size_t lsize, int port)
{
    snprintf(data, dsize, "CLEAVE_DATA_DIR=%s/data", dir);
    snprintf(listen, lsize, "CLEAVE_LISTEN=127.0.0.1:%d", port);
}

/* `cleave <cmd> [arg]` to completion, as `make run` does before serving. */
static int run_cleave(const char *cmd, const char *arg)
{
    char data[320], listen[64], out[8192];
    char *argv[] = {"cleave", (char *)cmd, (char *)arg, NULL};
    char *env[] = {data, listen, NULL};

    env_for(data, sizeof(data), listen, sizeof(listen), 0);
    if (test_run(cleave_bin(), argv, env, out, sizeof(out)) != 0) {
        fprintf(stderr, "cleave %s failed:\n%s\n", cmd, out);
        return -1;
    }
    return 0;
}

/*
 * Starts `cleave serve` and waits for /readyz to answer 200: the milliseconds from just
 * before the fork to that answer, or -1 (the process is stopped then).
 */
static double start_serving(test_proc *p, int port, char *base, size_t size)
{
    char data[320], listen[64], log[300];
    char *argv[] = {"cleave", "serve", NULL};
    char *env[] = {data, listen, WRK_SERVER_SLOTS, NULL};
    double t0, deadline;
    test_resp r = {0};

    env_for(data, sizeof(data), listen, sizeof(listen), port);
    snprintf(log, sizeof(log), "%s/serve.log", dir);
    snprintf(base, size, "http://127.0.0.1:%d", port);
    t0 = now_ms();
    deadline = t0 + 10000;
    if (test_proc_start(p, cleave_bin(), argv, env, log) != 0) {
        return -1;
    }
    while (now_ms() < deadline) {
        int rc = test_http_as(base, NULL, "GET", "/readyz", NULL, &r);
        long status = r.status;

        test_resp_free(&r);
        if (rc == 0 && status == 200) {
            return now_ms() - t0;
        }
        /* Polls the real state; the pause is short so that it hardly adds to the figure. */
        {
            struct timespec pause = {0, 200000};
            nanosleep(&pause, NULL);
        }
    }
    fprintf(stderr, "cleave serve was not ready in 10 s; see %s\n", log);
    test_proc_stop(p, SIGKILL);
    return -1;
}

/*
 * pid's RSS once it stopped changing: sampled every 100 ms until ten samples in a row (1 s)
 * agree, for at most 20 s (*waited_s: how long it took). The relays, sweepers and pools
 * start their work after /readyz answers; a sample taken at once missed some 0.9 MB of it.
 */
static test_rss settled_rss(int pid, double *waited_s)
{
    struct timespec pause = {0, 100000000};
    double t0 = now_ms();
    test_rss r = test_proc_rss(pid);
    int same = 0;

    while (same < 10 && now_ms() - t0 < 20000) {
        test_rss next;

        nanosleep(&pause, NULL);
        next = test_proc_rss(pid);
        same = next.total == r.total ? same + 1 : 0;
        r = next;
    }
    *waited_s = (now_ms() - t0) / 1e3;
    return r;
}

/* The password grant of the demo customer, as the README's walkthrough does. */
static int demo_token(const char *base, char *token, size_t size)
{
    return test_password_token(base, TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD, token, size);
}

/* argv[i] as a whole decimal number, def when absent, or -1 when it is not one. */
static int arg_int(int argc, char **argv, int i, int def)
{
    char *end;
    long v;

    if (argc <= i) {
        return def;
    }
    v = strtol(argv[i], &end, 10);
    return end == argv[i] || *end != '\0' || v < 0 || v > 1000000 ? -1 : (int)v;
}

int main(int argc, char **argv)
{
    int seconds = arg_int(argc, argv, 1, 60);
    int starts = arg_int(argc, argv, 2, 15);
    double ready[MAX_STARTS], idle = -1, first = -1, minute = -1, last = -1, peak = -1;
    char base[64], url[128], token[4096], bearer[4200];
    wrk_side side[2] = {{.label = "anonymous"}, {.label = "with a token"}};
    test_proc p = {0};
    test_rss ready_rss, after_login, first_start = {0};
    double waited = 0, first_waited = 0;
    int rc = EXIT_FAILURE, port;
    double token_ms;

    if (seconds < SLICE_S || seconds > 3600 || starts < 1 || starts > MAX_STARTS) {
        fprintf(stderr, "usage: bench_footprint [seconds of load %d-3600] [starts 1-%d]\n", SLICE_S,
                MAX_STARTS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (test_tmpdir(dir, sizeof(dir)) != 0 || run_cleave("migrate", NULL) != 0 ||
        run_cleave("seed", "--if-empty") != 0) {
        goto out;
    }
    /*
     * What earlier writers left for the kernel to write back (the seed's, and in `make bench`
     * every benchmark's before this one) is written first: with it pending, the median
     * start-up was 31.6-39.1 ms right after a `bench_checkout 2000 4`, 28.9-30.9 ms after a
     * sync, the same binary.
     */
    sync();
    port = test_free_port();
    for (int i = 0; i < starts; i++) {
        ready[i] = start_serving(&p, port, base, sizeof(base));
        if (ready[i] < 0) {
            goto out;
        }
        /*
         * The first start after the seed also relays its events (some 1,200): what that
         * leaves behind is measured here, idle after a login, as on the first `make run`.
         */
        if (i == 0 && starts > 1) {
            if (demo_token(base, token, sizeof(token)) != 0) {
                fprintf(stderr, "no token for the demo customer\n");
                goto out;
            }
            first_start = settled_rss(p.pid, &first_waited);
        }
        if (i + 1 < starts && test_proc_stop(&p, SIGTERM) != 0) {
            fprintf(stderr, "cleave serve did not stop cleanly\n");
            goto out;
        }
    }
    qsort(ready, (size_t)starts, sizeof(ready[0]), cmp_double);
    printf("start-up to ready (exec to the first 200 from /readyz), %d starts: "
           "median %.1f ms, max %.1f ms   (target <= 50 ms)\n",
           starts,
           starts % 2 == 1 ? ready[starts / 2] : (ready[starts / 2 - 1] + ready[starts / 2]) / 2,
           ready[starts - 1]);

    /* The process of the last start: idle first, then under load. */
    ready_rss = test_proc_rss(p.pid);
    if (demo_token(base, token, sizeof(token)) != 0) {
        fprintf(stderr, "no token for the demo customer\n");
        goto out;
    }
    snprintf(url, sizeof(url), "%s" PRODUCT, base);
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    token_ms = now_ms();
    side[0].url = url;
    side[1].url = url;
    side[1].header = bearer;
    after_login = settled_rss(p.pid, &waited);
    idle = after_login.total;
    /* A login is the first use of the token signer and of argon2: it maps their pages. */
    printf("RSS ready, before any login: %.1f MB (%.1f anonymous, %.1f file pages)\n",
           ready_rss.total, ready_rss.anon, ready_rss.file);
    printf("RSS idle: %.1f MB (%.1f anonymous, %.1f file pages), after a login, settled in "
           "%.1f s   (target <= 10 MB)\n",
           idle, after_login.anon, after_login.file, waited);
    if (starts > 1) {
        printf("RSS idle at the first start after the seed (its events relayed): %.1f MB (%.1f "
               "anonymous, %.1f file pages), after a login, settled in %.1f s\n",
               first_start.total, first_start.anon, first_start.file, first_waited);
    }
    printf("RSS under load (GET " PRODUCT ", wrk -t2 -c32, anonymous and with a token in "
           "turn), sampled every %d s:\n",
           SLICE_S);
    for (int t = 0; t < seconds / SLICE_S; t++) {
        wrk_side *s = &side[t % 2];

        if (s->n == WRK_MAX_ROUNDS) {
            s->n = 0; /* only the latest rounds feed the medians */
        }
        if (s == &side[1] && now_ms() - token_ms > RENEW_MS) {
            if (demo_token(base, token, sizeof(token)) != 0) {
                fprintf(stderr, "no new token for the demo customer\n");
                goto out;
            }
            snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
            token_ms = now_ms();
        }
        if (wrk_round(s, SLICE_S) != 0) {
            goto out;
        }
        last = test_proc_rss(p.pid).total;
        if (first < 0) {
            first = last;
        }
        if ((t + 1) * SLICE_S == 60) {
            minute = last;
        }
        if (last > peak) {
            peak = last;
        }
        printf("  %4d s  %6.2f MB  %9.0f req/s (%s)\n", (t + 1) * SLICE_S, last, s->rps[s->n - 1],
               s->label);
        fflush(stdout);
    }
    printf("RSS: idle %.1f MB, after the first %d s %.1f MB, at the end %.1f MB, peak %.1f MB; "
           "growth after the first %d s: %+.2f MB\n",
           idle, SLICE_S, first, last, peak, SLICE_S, last - first);
    /*
     * The first minute includes a one-off step: civetweb gives each new connection to the
     * worker idle longest, so the second turn's connections land on the workers the first
     * left idle, whose stacks and buffers then become resident (ADR 0063). What follows is
     * the growth a longer load adds.
     */
    if (minute >= 0 && seconds > 60) {
        printf("RSS growth from 60 s to the end (%d s), the worker pool warm: %+.2f MB   "
               "(target: flat)\n",
               seconds, last - minute);
    }
    rc = EXIT_SUCCESS;
out:
    if (p.pid > 0) {
        test_proc_stop(&p, SIGTERM);
    }
    if (dir[0] != '\0') {
        test_rmrf(dir);
    }
    return rc;
}
