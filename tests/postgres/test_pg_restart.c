/*
 * PostgreSQL restarts under a bounded load: the real `cleave serve` (monolith, its own
 * throwaway cluster) answers every request while the primary is down with a prompt 503
 * problem+json, and succeeds again once it is back, without being restarted: the pool
 * drops the dead connections and opens new ones.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "topology.h"

/*
 * Bounds of the load: requests in all, the pause between two (so that the bound lasts
 * through an outage and the recovery, about 100 s), and how long any one may take.
 */
#define LOAD_MAX_REQUESTS 20000
#define LOAD_PACE_MS      5
#define SLOW_MS           3000

static topology topo;

typedef struct load {
    pthread_mutex_t mu;
    bool stop;
    int total, ok, unavailable, other, slow;
    int64_t max_ms;
} load;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One GET; returns its HTTP status (0 when the request itself failed) and duration. */
static int one(const char *path, int64_t *took, bool *problem)
{
    test_resp r;
    int64_t t0 = now_ms();
    int status = 0;

    *problem = false;
    if (test_http(topo.base_url, "GET", path, NULL, 0, NULL, &r) == 0) {
        status = r.status;
        *problem = test_is_problem(&r, r.status);
        test_resp_free(&r);
    }
    *took = now_ms() - t0;
    return status;
}

static void *load_main(void *arg)
{
    load *l = arg;
    struct timespec pace = {0, LOAD_PACE_MS * 1000000L};

    for (int i = 0; i < LOAD_MAX_REQUESTS; i++) {
        int64_t took;
        bool problem;
        int status;

        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        pthread_mutex_unlock(&l->mu);
        status = one("/api/v1/products?limit=5", &took, &problem);
        pthread_mutex_lock(&l->mu);
        l->total++;
        if (status == 200) {
            l->ok++;
        } else if (status == 503 && problem) {
            l->unavailable++;
        } else {
            l->other++;
        }
        if (took > l->max_ms) {
            l->max_ms = took;
        }
        if (took > SLOW_MS) {
            l->slow++;
        }
        pthread_mutex_unlock(&l->mu);
        nanosleep(&pace, NULL);
    }
    test_http_thread_done();
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, "monolith", TOPOLOGY_SEED_SMALL);
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

/* Waits until the load has counted more than *field was at the call (deadline_ms). */
static void wait_load_counts(load *l, const int *field, const char *what, int64_t deadline_ms)
{
    int64_t end = now_ms() + deadline_ms;
    struct timespec nap = {0, 10 * 1000000L};
    int from;

    pthread_mutex_lock(&l->mu);
    from = *field;
    pthread_mutex_unlock(&l->mu);
    for (;;) {
        int now, total;

        pthread_mutex_lock(&l->mu);
        now = *field;
        total = l->total;
        pthread_mutex_unlock(&l->mu);
        if (now > from) {
            return;
        }
        if (now_ms() > end) {
            fail_msg("the load saw no new %s answer within %lld ms (%d requests made)", what,
                     (long long)deadline_ms, total);
        }
        nanosleep(&nap, NULL);
    }
}

/* Polls until a request answers want (deadline_ms), checking every answer was prompt. */
static void wait_for_status(const char *path, int want, int64_t deadline_ms)
{
    int64_t end = now_ms() + deadline_ms;

    for (;;) {
        int64_t took;
        bool problem;
        int status = one(path, &took, &problem);

        assert_true(took < SLOW_MS);
        if (status == want) {
            if (want == 503) {
                assert_true(problem); /* problem+json, not a bare error */
            }
            return;
        }
        if (now_ms() > end) {
            fail_msg("%s did not answer %d within %lld ms (last %d)", path, want,
                     (long long)deadline_ms, status);
        }
    }
}

static void test_restart_gives_fast_503s_then_recovers_without_restart(void **state)
{
    load l = {.max_ms = 0};
    pthread_t thread;
    int ok_before;

    (void)state;
    pthread_mutex_init(&l.mu, NULL);
    assert_int_equal(pthread_create(&thread, NULL, load_main, &l), 0);
    /* The load is running and succeeding before anything breaks. */
    for (;;) {
        pthread_mutex_lock(&l.mu);
        ok_before = l.ok;
        pthread_mutex_unlock(&l.mu);
        if (ok_before >= 20) {
            break;
        }
        wait_for_status("/api/v1/products?limit=1", 200, 10000);
    }

    assert_int_equal(pgtest_cluster(&topo.db.pg, "stop-primary"), 0);
    /* The load itself meets the outage: its requests get 503s, not hangs or other errors. */
    wait_load_counts(&l, &l.unavailable, "503", 30000);
    wait_for_status("/api/v1/products?limit=5", 503, 10000);
    wait_for_status("/readyz", 503, 10000);
    /* Still 503 on the next call: down means down, promptly, every time. */
    wait_for_status("/api/v1/categories", 503, 10000);

    assert_int_equal(pgtest_cluster(&topo.db.pg, "start-primary"), 0);
    wait_for_status("/api/v1/products?limit=5", 200, 30000);
    for (int i = 0; i < 10; i++) {
        wait_for_status("/api/v1/products?limit=5", 200, 5000);
    }
    wait_for_status("/readyz", 200, 10000);
    /* ...and recovers from it, on the connections the pool opened anew. */
    wait_load_counts(&l, &l.ok, "200", 30000);

    pthread_mutex_lock(&l.mu);
    l.stop = true;
    pthread_mutex_unlock(&l.mu);
    pthread_join(thread, NULL);
    printf("load: %d requests, %d ok, %d unavailable, %d other, slowest %lld ms\n", l.total, l.ok,
           l.unavailable, l.other, (long long)l.max_ms);
    assert_int_equal(l.other, 0);
    assert_int_equal(l.slow, 0);
    assert_true(l.unavailable >= 1);
    assert_true(l.ok > ok_before);
    pthread_mutex_destroy(&l.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_gives_fast_503s_then_recovers_without_restart),
    };
    return cmocka_run_group_tests_name("postgres restart", tests, setup, teardown);
}
