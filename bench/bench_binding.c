/*
 * Local vs remote binding of the catalog: catalog.get_product through the in-process
 * operations table, and through the remote binding to a real cleave-catalog on
 * loopback. Both run interleaved in rounds in one process, so machine noise hits both
 * alike; what the remote binding adds (remote - local, at p50 and at p99) is the figure
 * to read (ADR 0045; the transport: ADR 0048). Beside them the read
 * cache (ADR 0042): the caching decorator over each binding, cold (cleared before every call, so
 * each call misses and loads) and warm (each call a hit). Then the same local/remote pair from
 * several threads at once, which share the remote binding's pool of connections, and the CPU one
 * remote call costs the caller and the service.
 *
 *   bench_binding [calls per binding, default 20000] [threads, default 4]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "cleave/cache.h"
#include "cleave/migrate.h"
#include "cleave/rpc.h"
#include "nats_server.h"
#include "proc.h"

#define ROUNDS 10
#define NSIDES 6

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(const int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

/* One call, timed; exits on failure so that a broken binding cannot look fast. */
static int64_t timed_get(const cl_handle *m, int64_t id)
{
    catalog_product_ref ref = {id};
    catalog_product p = {0};
    cl_ctx ctx;
    int64_t t0, t1;

    cl_ctx_init(&ctx, 5000);
    t0 = now_ns();
    if (catalog_get_product(m, &ctx, &ref, &p) != CL_OK) {
        fprintf(stderr, "get_product(%lld): %s\n", (long long)id, ctx.err.message);
        exit(1);
    }
    t1 = now_ns();
    cl_schema_free(&catalog_product_type, &p);
    return t1 - t0;
}

/*
 * The host's floor under any remote call: one byte to a thread that echoes it, over TCP on
 * loopback (TCP_NODELAY both ways). Two wake-ups of a sleeping thread, as a call has, and
 * no HTTP and no work; where waking a thread on the other core is slow (a virtual machine
 * whose idle cores halt), this alone can exceed what the binding is asked to add.
 */
typedef struct echo {
    int fd[2]; /* the caller's end, the echoing thread's end */
    pthread_t thread;
} echo;

static void *echo_main(void *arg)
{
    int fd = *(int *)arg;
    char c;

    while (read(fd, &c, 1) == 1 && write(fd, &c, 1) == 1) {
    }
    return NULL;
}

static void echo_open(echo *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);

    e->fd[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || e->fd[0] < 0 || bind(l, (struct sockaddr *)&a, alen) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0 ||
        connect(e->fd[0], (struct sockaddr *)&a, alen) != 0 ||
        (e->fd[1] = accept(l, NULL, NULL)) < 0 ||
        setsockopt(e->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(e->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        pthread_create(&e->thread, NULL, echo_main, &e->fd[1]) != 0) {
        fprintf(stderr, "cannot set up the loopback echo\n");
        exit(1);
    }
    close(l);
}

static int64_t timed_echo(echo *e)
{
    char c = 'x';
    int64_t t0 = now_ns();

    if (write(e->fd[0], &c, 1) != 1 || read(e->fd[0], &c, 1) != 1) {
        fprintf(stderr, "the loopback echo failed\n");
        exit(1);
    }
    return now_ns() - t0;
}

static void echo_close(echo *e)
{
    shutdown(e->fd[0], SHUT_RDWR);
    pthread_join(e->thread, NULL);
    close(e->fd[0]);
    close(e->fd[1]);
}

/* Prints p50 and p99 of local and remote calls and what the remote binding adds to each. */
static void print_added(const char *what, const int64_t *local, const int64_t *remote, size_t n)
{
    double lp50 = pct(local, n, 0.50), lp99 = pct(local, n, 0.99);
    double rp50 = pct(remote, n, 0.50), rp99 = pct(remote, n, 0.99);

    printf("%-14s local p50 %7.1f p99 %7.1f | remote p50 %7.1f p99 %7.1f | added p50 %7.1f "
           "p99 %7.1f us\n",
           what, lp50, lp99, rp50, rp99, rp50 - lp50, rp99 - lp99);
}

/* One thread of the concurrent run: local and remote calls in turn, each timed. */
typedef struct worker {
    pthread_t thread;
    const cl_handle *local;
    const cl_handle *remote;
    int64_t *local_ns;
    int64_t *remote_ns;
    size_t n;
    unsigned rng;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;

    for (size_t i = 0; i < w->n; i++) {
        int64_t id = 1 + (int64_t)((w->rng = w->rng * 1103515245u + 12345u) >> 8) % 1000;

        w->local_ns[i] = timed_get(w->local, id);
        w->remote_ns[i] = timed_get(w->remote, id);
    }
    return NULL;
}

/*
 * nthreads threads call local and remote in turn, per calls each in all; the latencies of
 * all threads are merged before the percentiles. Every thread shares the one remote
 * binding (and so its pool of connections), as a host's request threads do.
 */
static void run_concurrent(const cl_handle *local, const cl_handle *remote, size_t per,
                           int nthreads)
{
    worker *w = calloc((size_t)nthreads, sizeof(*w));
    int64_t *lns = calloc(per, sizeof(*lns));
    int64_t *rns = calloc(per, sizeof(*rns));
    size_t each = per / (size_t)nthreads;
    char what[32];

    if (w == NULL || lns == NULL || rns == NULL || each == 0) {
        fprintf(stderr, "out of memory or too few calls for %d threads\n", nthreads);
        exit(1);
    }
    for (int t = 0; t < nthreads; t++) {
        w[t] = (worker){.local = local,
                        .remote = remote,
                        .local_ns = lns + each * (size_t)t,
                        .remote_ns = rns + each * (size_t)t,
                        .n = each,
                        .rng = 777u + (unsigned)t};
        if (pthread_create(&w[t].thread, NULL, worker_main, &w[t]) != 0) {
            fprintf(stderr, "cannot start a thread\n");
            exit(1);
        }
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(w[t].thread, NULL);
    }
    qsort(lns, each * (size_t)nthreads, sizeof(*lns), cmp_i64);
    qsort(rns, each * (size_t)nthreads, sizeof(*rns), cmp_i64);
    snprintf(what, sizeof(what), "%d threads", nthreads);
    print_added(what, lns, rns, each * (size_t)nthreads);
    free(rns);
    free(lns);
    free(w);
}

/* CPU seconds (user + system) process pid has used so far; -1 when unreadable. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ticks = 0;
    FILE *f;
    char *p;
    int ok;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    /*
     * The command name may hold spaces: the fields are counted from its closing ')'.
     * utime and stime are fields 14 and 15; the one after ')' is field 3.
     */
    p = ok ? strrchr(buf, ')') : NULL;
    for (int field = 3; p != NULL && field < 14; field++) {
        p = strchr(p + 1, ' ');
    }
    for (int i = 0; p != NULL && i < 2; i++) {
        char *end = NULL;

        ticks += strtoull(p + 1, &end, 10);
        p = end != p + 1 ? end : NULL;
    }
    if (p == NULL) {
        return -1;
    }
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU one remote call costs the caller's thread and the service, over n calls. */
static void run_cpu(const cl_handle *remote, pid_t service, size_t n)
{
    struct timespec t0, t1;
    double s0 = cpu_seconds(service), s1;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (size_t i = 0; i < n; i++) {
        timed_get(remote, 1 + (int64_t)(i % 1000));
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    s1 = cpu_seconds(service);
    printf("CPU per remote call: caller %.1f us, service %.1f us (over %zu calls)\n",
           ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
               (double)n,
           s0 < 0 || s1 < 0 ? -1.0 : (s1 - s0) * 1e6 / (double)n, n);
}

/* A catalog instance on a new database in dir (*db receives it); exits on failure. */
static cl_handle open_local(const char *dir, cl_db **db)
{
    cl_handle m = {catalog_module.ops, NULL};
    char path[600];
    cl_error err = {0};
    cl_module_env env = {0};

    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    if (cl_db_open(&cl_db_sqlite, "catalog", path, NULL, db, &err) != CL_OK ||
        cl_bus_schema_apply(*db, &err) != CL_OK ||
        cl_migrate_apply(*db, CLEAVE_SOURCE_DIR "/migrations", "catalog", NULL, &err) != CL_OK) {
        fprintf(stderr, "local catalog: %s\n", err.message);
        exit(1);
    }
    env.db = *db;
    if (catalog_module.create(&env, &m.self, &err) != CL_OK) {
        fprintf(stderr, "catalog create: %s\n", err.message);
        exit(1);
    }
    return m;
}

static void seed(const cl_handle *m, const char *what)
{
    cl_ctx ctx;
    cl_seed_opts opts = {0}; /* the whole demo */
    int created = 0;

    cl_ctx_init(&ctx, 0);
    if (catalog_api.seed(m, &ctx, &opts, &created) != CL_OK || created == 0) {
        fprintf(stderr, "seeding the %s catalog failed: %s\n", what, ctx.err.message);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    size_t per = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 20000;
    int nthreads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    char dir[256], svc_dir[600], data_env[700], log[700], url[64], bin[512];
    char *svc_argv[] = {"cleave-catalog", "serve", NULL};
    /* A service accepts calls with the deployment's token only, and its events need NATS. */
    static test_nats nats;
    static char migrations_env[] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    char *svc_env[] = {data_env,       "CLEAVE_LISTEN=127.0.0.1:0",
                       migrations_env, "CLEAVE_DEV_SERVICE_TOKEN=bench-token",
                       nats.env,       NULL};
    cl_rpc_options opt = {.dev_token = "bench-token"};
    cl_cached_options copt = {.max_entries = 10000, .max_bytes = 16 << 20, .ttl_ms = 3600000};
    static const char *const labels[NSIDES] = {"local",  "local+cache cold",  "local+cache warm",
                                               "remote", "remote+cache cold", "remote+cache warm"};
    int64_t *ns[NSIDES];
    int64_t *floor_ns;
    echo floor;
    cl_handle local, remote, sides[NSIDES];
    cl_cached *cached[2] = {NULL, NULL};
    cl_rpc_client *client = NULL;
    cl_error err = {0};
    cl_db *db = NULL;
    test_proc svc;
    int port;
    unsigned rng = 12345;

    if (per < ROUNDS || nthreads < 1 || nthreads > 64 || per < (size_t)nthreads) {
        fprintf(stderr, "usage: bench_binding [calls >= %d [threads 1..64]]\n", ROUNDS);
        return 2;
    }
    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return 1;
    }
    for (int k = 0; k < NSIDES; k++) {
        ns[k] = calloc(per, sizeof(*ns[k]));
        if (ns[k] == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    floor_ns = calloc(per, sizeof(*floor_ns));
    if (floor_ns == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    echo_open(&floor);
    local = open_local(dir, &db);
    seed(&local, "local");

    if (test_nats_open(&nats, dir) != 0) {
        exit(1);
    }
    snprintf(svc_dir, sizeof(svc_dir), "%s/service", dir);
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s", svc_dir);
    snprintf(log, sizeof(log), "%s/service.log", dir);
    snprintf(bin, sizeof(bin), "%s/cleave-catalog", CLEAVE_BIN_DIR);
    port = test_proc_start(&svc, bin, svc_argv, svc_env, log) == 0
               ? test_proc_wait_port(&svc, 30000)
               : -1;
    if (port < 0) {
        fprintf(stderr, "cleave-catalog did not start; see %s\n", log);
        exit(1);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (cl_rpc_client_new("catalog", url, &opt, &client, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    remote = (cl_handle){catalog_api.remote_ops, client};
    seed(&remote, "remote");

    if (cl_cached_new(&catalog_api, &local, &copt, &cached[0], &err) != CL_OK ||
        cl_cached_new(&catalog_api, &remote, &copt, &cached[1], &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    sides[0] = local;
    sides[1] = sides[2] = (cl_handle){catalog_api.cached_ops, cached[0]};
    sides[3] = remote;
    sides[4] = sides[5] = (cl_handle){catalog_api.cached_ops, cached[1]};

    /* Warm every path (statement cache, connection, page cache, the caches) first. */
    for (int i = 0; i < 1000; i++) {
        for (int k = 0; k < NSIDES; k++) {
            timed_get(&sides[k], 1 + i % 1000);
        }
    }
    for (int round = 0; round < ROUNDS; round++) {
        size_t from = per / ROUNDS * (size_t)round;
        size_t to = round == ROUNDS - 1 ? per : from + per / ROUNDS;
        for (size_t i = from; i < to; i++) {
            int64_t id = 1 + (int64_t)((rng = rng * 1103515245u + 12345u) >> 8) % 1000;

            for (int k = 0; k < NSIDES; k++) {
                /* Cold: nothing kept, so the call misses, loads and keeps the answer. */
                if (k == 1 || k == 4) {
                    cl_cached_invalidate(cached[k / 3]);
                }
                ns[k][i] = timed_get(&sides[k], id);
            }
            floor_ns[i] = timed_echo(&floor);
        }
    }
    for (int k = 0; k < NSIDES; k++) {
        qsort(ns[k], per, sizeof(*ns[k]), cmp_i64);
    }
    qsort(floor_ns, per, sizeof(*floor_ns), cmp_i64);
    printf("catalog.get_product, %zu calls per binding, interleaved in %d rounds\n", per, ROUNDS);
    printf("%-18s %10s %10s %10s\n", "binding", "p50 us", "p99 us", "max us");
    for (int k = 0; k < NSIDES; k++) {
        printf("%-18s %10.1f %10.1f %10.1f\n", labels[k], pct(ns[k], per, 0.50),
               pct(ns[k], per, 0.99), pct(ns[k], per, 1.0));
    }
    printf("what the remote binding adds (remote - local):\n");
    print_added("1 thread", ns[0], ns[3], per);
    printf(
        "the host's floor, a 1-byte round trip to another thread over loopback TCP (no HTTP, "
        "interleaved with the calls): p50 %.1f p99 %.1f us; added / floor: p50 %.2fx, p99 %.2fx\n",
        pct(floor_ns, per, 0.50), pct(floor_ns, per, 0.99),
        (pct(ns[3], per, 0.50) - pct(ns[0], per, 0.50)) / pct(floor_ns, per, 0.50),
        (pct(ns[3], per, 0.99) - pct(ns[0], per, 0.99)) / pct(floor_ns, per, 0.99));
    for (int b = 0; b < 2; b++) {
        const int64_t *none = ns[(ptrdiff_t)b * 3];
        const int64_t *cold = ns[(ptrdiff_t)b * 3 + 1];
        const int64_t *warm = ns[(ptrdiff_t)b * 3 + 2];

        printf("%s, cache cold/none: p50 %.2fx; cold/warm: p50 %.1fx, p99 %.1fx\n",
               b == 0 ? "local" : "remote", pct(cold, per, 0.50) / pct(none, per, 0.50),
               pct(cold, per, 0.50) / pct(warm, per, 0.50),
               pct(cold, per, 0.99) / pct(warm, per, 0.99));
    }

    if (nthreads > 1) {
        run_concurrent(&local, &remote, per, nthreads);
    }
    run_cpu(&remote, svc.pid, per < 5000 ? per : 5000);

    test_proc_stop(&svc, SIGTERM);
    test_nats_close(&nats);
    cl_cached_free(cached[0]);
    cl_cached_free(cached[1]);
    cl_rpc_client_free(client);
    catalog_module.destroy(local.self);
    cl_db_close(db);
    test_rmrf(dir);
    echo_close(&floor);
    free(floor_ns);
    for (int k = 0; k < NSIDES; k++) {
        free(ns[k]);
    }
    return 0;
}
