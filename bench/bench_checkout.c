/*
 * Checkout, monolith vs inventory + payments extracted: checkouts per second and the time
 * from POST /api/v1/orders to the order's final state (p50, p99), both topologies
 * started side by side and measured in interleaved rounds in one run, so machine noise
 * hits both alike; the ratios are the figures to read.
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

#include "client.h"
#include "topology.h"

#define ROUNDS      8
#define MAX_THREADS 32
#define SKU         "SKU-000010"

typedef struct side {
    const char *name;
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
           s->name, *rate, *p50, *p99, s->n, s->failed);
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 400;
    int threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    side sides[2] = {{.name = "monolith"}, {.name = "inventory+payments-extracted"}};
    double rate[2], p50[2], p99[2];
    int rc = EXIT_SUCCESS;

    if (total < ROUNDS || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_checkout [checkouts >= %d] [threads 1-%d]\n", ROUNDS,
                MAX_THREADS);
        return 2;
    }
    for (int i = 0; i < 2; i++) {
        sides[i].lat_us = calloc((size_t)total, sizeof(int64_t));
        if (sides[i].lat_us == NULL || prepare(&sides[i]) != 0) {
            fprintf(stderr, "could not start %s\n", sides[i].name);
            rc = EXIT_FAILURE;
            goto out;
        }
    }
    /* A warm-up checkout each, not measured. */
    for (int i = 0; i < 2; i++) {
        (void)checkout(sides[i].topo.base_url);
    }
    printf("checkout to a final state, %d per topology, %d client threads, %d interleaved rounds\n",
           total, threads, ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        int count = total / ROUNDS + (r < total % ROUNDS ? 1 : 0);
        for (int i = 0; i < 2; i++) {
            run_round(&sides[(r + i) % 2], count, threads);
        }
    }
    for (int i = 0; i < 2; i++) {
        report(&sides[i], &rate[i], &p50[i], &p99[i]);
    }
    if (rate[1] > 0 && p50[0] > 0 && p99[0] > 0) {
        printf("monolith vs extracted: %.2fx the checkouts/s, %.2fx lower p50, %.2fx lower p99\n",
               rate[0] / rate[1], p50[1] / p50[0], p99[1] / p99[0]);
    }
out:
    for (int i = 0; i < 2; i++) {
        if (sides[i].topo.nprocs > 0) {
            topology_stop(&sides[i].topo);
        }
        free(sides[i].lat_us);
    }
    test_http_thread_done();
    return rc;
}
