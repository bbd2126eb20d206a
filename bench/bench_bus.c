/*
 * Events per second end to end through the bus: published into an outbox (transactions
 * of 50 events over 64 keys), relayed, handled in the subscriber's inbox transaction.
 * The in-process transport and NATS JetStream (a throwaway nats-server) side by side in
 * one run, and their ratio. Never fails on timing. The time publishing alone took is shown
 * too: the relay runs while the publisher is still writing, so it bounds the end-to-end rate.
 *
 * CPU per event is the load-insensitive figure: this process's (every thread: publisher,
 * relay, workers, the NATS client), and nats-server's, from getrusage and /proc.
 * Events per inbox commit: how many messages the subscriber's workers handle per
 * transaction (cl_bus_stats.inbox_commits), which the WAL writes per event follow.
 *
 *   bench_bus [local|nats|both] [rounds]     (both, 1 round by default)
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bus_harness.h"
#include "nats_server.h"
#include "proc.h"

#define EVENTS 6016 /* 94 per key */
#define KEYS   64
#define BATCH  50

typedef struct result {
    double rate;           /* events/s end to end */
    long handled;          /* events committed by the subscriber */
    int64_t publish_ms;    /* publishing alone */
    double cpu_us;         /* this process's CPU per event, microseconds */
    double server_us;      /* nats-server's CPU per event, microseconds (0 in process) */
    double publish_cpu_ms; /* the publishing thread's CPU while publishing */
    double per_commit;     /* events per inbox transaction of the subscriber's workers */
} result;

static double cpu_s(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of pid from /proc/<pid>/stat, in seconds; 0 when unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    const char *p;
    char *end;
    FILE *f;
    size_t n;

    if (pid <= 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /*
     * The fields after the command name, which may hold spaces: from its closing ')', the
     * state is field 3; utime and stime are fields 14 and 15.
     */
    p = strrchr(buf, ')');
    for (int field = 2; p != NULL && field < 14; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL) {
        return 0;
    }
    ut = strtoul(p + 1, &end, 10);
    st = strtoul(end, NULL, 10);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* One run end to end; 0 and *r filled, or -1. */
static int run(const char *nats_url, int server_pid, result *r)
{
    bus_harness h;
    int64_t start;
    double secs, cpu0, pub0, srv0;
    bus_seen seen = {0};

    if (bus_harness_open(&h, nats_url, 1, 2) != 0) {
        return -1;
    }
    cpu0 = cpu_s(RUSAGE_SELF);
    pub0 = cpu_s(RUSAGE_THREAD);
    srv0 = proc_cpu_s(server_pid);
    start = cl_now_ms();
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "key-%d", k);
        if (bus_harness_publish(&h, key, 1, EVENTS / KEYS, BATCH) != 0) {
            bus_harness_close(&h);
            return -1;
        }
    }
    r->publish_ms = cl_now_ms() - start;
    r->publish_cpu_ms = (cpu_s(RUSAGE_THREAD) - pub0) * 1e3;
    if (bus_harness_wait(&h, (long)(EVENTS / KEYS) * KEYS, 120000) != 0) {
        fprintf(stderr, "bench: not every event arrived\n");
    }
    secs = (double)(cl_now_ms() - start) / 1000.0;
    r->cpu_us = (cpu_s(RUSAGE_SELF) - cpu0) * 1e6 / EVENTS;
    r->server_us = (proc_cpu_s(server_pid) - srv0) * 1e6 / EVENTS;
    r->handled = bus_harness_seen(&h, &seen) == 0 ? seen.rows : -1;
    {
        cl_bus_stats stats = {0};
        cl_error err = {0};

        r->per_commit = cl_bus_stats_get(h.bus, &stats, &err) == CL_OK && stats.inbox_commits > 0
                            ? (double)stats.handled / (double)stats.inbox_commits
                            : 0;
    }
    bus_harness_close(&h);
    r->rate = secs > 0 ? (double)r->handled / secs : 0;
    return 0;
}

static void print(const char *name, const result *r)
{
    printf("  %-12s %8.0f events/s  (%ld handled; publishing alone took %lld ms, %.0f ms CPU)  "
           "cpu %.1f us/event, %.0f events/inbox commit",
           name, r->rate, r->handled, (long long)r->publish_ms, r->publish_cpu_ms, r->cpu_us,
           r->per_commit);
    if (r->server_us > 0) {
        printf(" + nats-server %.1f us/event", r->server_us);
    }
    printf("\n");
}

#define MAX_ROUNDS 100

static int cmp_rate(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return (a > b) - (a < b);
}

/* The median of v[0..n) (sorted in place). */
static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_rate);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "both";
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
    bool local = strcmp(which, "nats") != 0;
    bool remote = strcmp(which, "local") != 0;
    char dir[256] = "";
    nats_server nats;
    int status = EXIT_SUCCESS;
    static double rates[2][MAX_ROUNDS]; /* each round's in-process and NATS events/s */
    long done = 0;

    if (rounds < 1 || rounds > MAX_ROUNDS ||
        (strcmp(which, "both") != 0 && strcmp(which, "local") != 0 && strcmp(which, "nats") != 0)) {
        fprintf(stderr, "usage: bench_bus [local|nats|both] [rounds 1..%d]\n", MAX_ROUNDS);
        return EXIT_FAILURE;
    }
    if (remote && (test_tmpdir(dir, sizeof(dir)) != 0 || nats_server_start(&nats, dir) != 0)) {
        fprintf(stderr, "bench_bus: cannot start nats-server\n");
        return EXIT_FAILURE;
    }
    printf("bus end to end (%d events, %d keys, outbox transactions of %d):\n", EVENTS, KEYS,
           BATCH);
    for (long i = 0; i < rounds && status == EXIT_SUCCESS; i++) {
        result a = {0}, b = {0};

        if (local && run(NULL, 0, &a) != 0) {
            status = EXIT_FAILURE;
            break;
        }
        if (remote && run(nats.url, nats.proc.pid, &b) != 0) {
            status = EXIT_FAILURE;
            break;
        }
        if (local) {
            print("in-process", &a);
        }
        if (remote) {
            print("nats", &b);
        }
        if (local && remote && b.rate > 0) {
            printf("  ratio        in-process is %.1fx nats\n", a.rate / b.rate);
        }
        rates[0][done] = a.rate;
        rates[1][done] = b.rate;
        done++;
    }
    /* A round is some 6,000 events in a fraction of a second: one alone is the host's minute. */
    if (status == EXIT_SUCCESS && done > 1) {
        printf("median of %ld rounds:", done);
        if (local) {
            printf(" in-process %.0f events/s", median(rates[0], done));
        }
        if (remote) {
            printf("%s nats %.0f events/s", local ? "," : "", median(rates[1], done));
        }
        printf("\n");
    }
    if (remote) {
        nats_server_stop(&nats);
        test_rmrf(dir);
    }
    fflush(stdout);
    return status;
}
