/*
 * Checkout, monolith vs inventory + payments extracted (both on SQLite), and the monolith
 * on SQLite vs on PostgreSQL (issue #4): checkouts per second and the time from
 * POST /api/v1/orders to the order's final state (p50, p99). The three are started side by
 * side and measured in interleaved rounds in one run, so machine noise hits them alike;
 * the ratios are the figures to read. PostgreSQL is a throwaway server (no replica) the
 * benchmark starts and stops itself, as bench_db does (tests/postgres/pg-cluster.sh).
 *
 *   bench_checkout [checkouts per topology, default 400] [client threads, default 4]
 *
 * Each client thread places an order and polls it until it is confirmed (every order
 * can confirm: stock and funds are ample), then places the next.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "topology.h"

#define ROUNDS      8
#define MAX_THREADS 32
#define SKU         "SKU-000010"
#define NSIDES      3

typedef struct side {
    const char *name;  /* the topology */
    const char *label; /* as reported */
    int postgres;      /* on the throwaway PostgreSQL server, not SQLite files */
    topology topo;
    int64_t *lat_us; /* time to final state of every checkout */
    size_t n;
    int64_t busy_ns; /* wall time of its rounds */
    int failed;
} side;

typedef struct job {
    side *s;
    int count;
    pthread_mutex_t *mu;
} job;

/* The throwaway PostgreSQL server, stopped on every exit so that it never outlives us. */
static pgtest pg;
static int cluster_started;

static void stop_cluster(void)
{
    if (cluster_started) {
        cluster_started = 0;
        pgtest_cluster(&pg, "stop");
    }
}

/*
 * Starts the server and points topologies started from now on at it: topology.c takes its
 * database from the shared test fixture, which reads CL_TEST_DB and CL_TEST_PG_ENV.
 */
static int start_cluster(void)
{
    char script[512], out[4096], env_path[600];
    char *args[] = {"pg-cluster.sh", "start", pg.dir, "--no-replica", NULL};

    /* Not under a test directory: the server's user must be able to reach it. */
    snprintf(pg.dir, sizeof(pg.dir), "/tmp/cleave-bench-checkout-pg-%d", (int)getpid());
    snprintf(script, sizeof(script), "%s/tests/postgres/pg-cluster.sh", CLEAVE_SOURCE_DIR);
    if (test_run(script, args, NULL, out, sizeof(out)) != 0) {
        fprintf(stderr, "starting PostgreSQL failed:\n%s\n", out);
        return -1;
    }
    cluster_started = 1;
    snprintf(env_path, sizeof(env_path), "%s/env", pg.dir);
    setenv("CL_TEST_PG_ENV", env_path, 1);
    setenv("CL_TEST_DB", "postgres", 1);
    return 0;
}

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

/* One checkout to its final state; its duration in microseconds, or -1. */
static int64_t checkout(const char *base)
{
    static const char body[] =
        "{\"account_id\":\"bench\",\"lines\":[{\"sku\":\"" SKU "\",\"quantity\":1}]}";
    struct timespec pause = {0, 200000L};
    int64_t t0 = now_ns();
    char path[128];
    test_resp r;

    if (test_http(base, "POST", "/api/v1/orders", body, strlen(body), NULL, &r) != 0 ||
        r.status != 202) {
        test_resp_free(&r);
        return -1;
    }
    snprintf(path, sizeof(path), "/api/v1/orders/%s",
             json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);
    for (;;) {
        const char *st;
        int done;

        if (test_http(base, "GET", path, NULL, 0, NULL, &r) != 0 || r.status != 200) {
            test_resp_free(&r);
            return -1;
        }
        st = json_string_value(json_object_get(r.json, "status"));
        done = st != NULL && (strcmp(st, "confirmed") == 0 || strcmp(st, "rejected") == 0);
        test_resp_free(&r);
        if (done) {
            return (now_ns() - t0) / 1000;
        }
        nanosleep(&pause, NULL);
    }
}

static void *client(void *arg)
{
    job *j = arg;

    for (int i = 0; i < j->count; i++) {
        int64_t us = checkout(j->s->topo.base_url);

        pthread_mutex_lock(j->mu);
        if (us < 0) {
            j->s->failed++;
        } else {
            j->s->lat_us[j->s->n++] = us;
        }
        pthread_mutex_unlock(j->mu);
    }
    test_http_thread_done();
    return NULL;
}

static void run_round(side *s, int count, int threads)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[MAX_THREADS];
    job jobs[MAX_THREADS];
    int64_t t0 = now_ns();

    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){s, count / threads + (i < count % threads ? 1 : 0), &mu};
        pthread_create(&th[i], NULL, client, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    s->busy_ns += now_ns() - t0;
}

static int prepare(side *s)
{
    char *env[] = {"CLEAVE_SHIPPING_CARRIER_MS=1", NULL};
    const char *acc = "{\"id\":\"bench\",\"owner\":\"Bench\",\"currency\":\"EUR\"}";
    const char *dep = "{\"amount\":{\"amount\":100000000000,\"currency\":\"EUR\"}}";
    const char *stock = "{\"on_hand\":1000000}";
    test_resp r;
    int ok;

    if (s->postgres && start_cluster() != 0) {
        return -1;
    }
    if (topology_start_with(&s->topo, s->name, 1, env) != 0) {
        return -1;
    }
    ok = test_http(s->topo.base_url, "POST", "/api/v1/accounts", acc, strlen(acc), NULL, &r) == 0 &&
         r.status == 201;
    test_resp_free(&r);
    ok = ok &&
         test_http(s->topo.base_url, "POST", "/api/v1/accounts/bench/deposits", dep, strlen(dep),
                   NULL, &r) == 0 &&
         r.status == 200;
    test_resp_free(&r);
    ok = ok &&
         test_http(s->topo.base_url, "PUT", "/api/v1/inventory/" SKU, stock, strlen(stock), NULL,
                   &r) == 0 &&
         r.status == 200;
    test_resp_free(&r);
    return ok ? 0 : -1;
}

static void report(side *s, double *rate, double *p50, double *p99)
{
    size_t mid = s->n > 0 ? (s->n - 1) / 2 : 0;
    size_t tail = s->n > 0 ? (size_t)((double)(s->n - 1) * 0.99) : 0;

    qsort(s->lat_us, s->n, sizeof(int64_t), cmp_i64);
    *rate = s->busy_ns > 0 ? (double)s->n * 1e9 / (double)s->busy_ns : 0;
    *p50 = s->n > 0 ? (double)s->lat_us[mid] / 1000.0 : 0;
    *p99 = s->n > 0 ? (double)s->lat_us[tail] / 1000.0 : 0;
    printf("%-30s %8.1f checkouts/s   p50 %7.2f ms   p99 %7.2f ms   (%zu done, %d failed)\n",
           s->label, *rate, *p50, *p99, s->n, s->failed);
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 400;
    int threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    /* The PostgreSQL side last: topologies started after it would be on PostgreSQL too. */
    side sides[NSIDES] = {
        {.name = "monolith", .label = "monolith, sqlite"},
        {.name = "inventory+payments-extracted", .label = "extracted, sqlite"},
        {.name = "monolith", .label = "monolith, postgres", .postgres = 1},
    };
    double rate[NSIDES], p50[NSIDES], p99[NSIDES];
    int rc = EXIT_SUCCESS;

    if (total < ROUNDS || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_checkout [checkouts >= %d] [threads 1-%d]\n", ROUNDS,
                MAX_THREADS);
        return 2;
    }
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the SQLite sides are on SQLite, whatever the caller's shell */
    }
    atexit(stop_cluster);
    for (int i = 0; i < NSIDES; i++) {
        sides[i].lat_us = calloc((size_t)total, sizeof(int64_t));
        if (sides[i].lat_us == NULL || prepare(&sides[i]) != 0) {
            fprintf(stderr, "could not start %s\n", sides[i].label);
            rc = EXIT_FAILURE;
            goto out;
        }
    }
    /* A warm-up checkout each, not measured. */
    for (int i = 0; i < NSIDES; i++) {
        (void)checkout(sides[i].topo.base_url);
    }
    printf("checkout to a final state, %d per topology, %d client threads, %d interleaved rounds\n",
           total, threads, ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        int count = total / ROUNDS + (r < total % ROUNDS ? 1 : 0);
        for (int i = 0; i < NSIDES; i++) {
            run_round(&sides[(r + i) % NSIDES], count, threads);
        }
    }
    for (int i = 0; i < NSIDES; i++) {
        report(&sides[i], &rate[i], &p50[i], &p99[i]);
    }
    if (rate[1] > 0 && p50[0] > 0 && p99[0] > 0) {
        printf("monolith vs extracted: %.2fx the checkouts/s, %.2fx lower p50, %.2fx lower p99\n",
               rate[0] / rate[1], p50[1] / p50[0], p99[1] / p99[0]);
    }
    if (rate[2] > 0 && p50[0] > 0 && p99[0] > 0) {
        printf("monolith, sqlite vs postgres: %.2fx the checkouts/s, %.2fx lower p50, "
               "%.2fx lower p99\n",
               rate[0] / rate[2], p50[2] / p50[0], p99[2] / p99[0]);
    }
out:
    for (int i = 0; i < NSIDES; i++) {
        if (sides[i].topo.nprocs > 0) {
            topology_stop(&sides[i].topo);
        }
        free(sides[i].lat_us);
    }
    /* After the topologies: dropping the PostgreSQL side's database needs the server. */
    stop_cluster();
    test_http_thread_done();
    return rc;
}
