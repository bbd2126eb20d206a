/*
 * The read cache's shared level (cleave/cache_redis.h) against a real, throwaway
 * redis-server: two clients as two hosts share entries and invalidations; a server that
 * goes away is a miss, never an error, and one that comes back is used again, each client
 * clearing its host's cache on reconnecting since it may have missed invalidations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cleave/cache_redis.h"
#include "cleave/util.h"
#include "redis_server.h"

#define WAIT_MS 5000

static char dir[256];
static redis_server server;

/* A host's side: how often its cache of "catalog" was told to clear. */
typedef struct host_side {
    cl_redis_cache *r;
    atomic_int cleared;
} host_side;

static void on_invalidated(void *arg, const char *scope)
{
    host_side *h = arg;

    if (strcmp(scope, "catalog") == 0) {
        atomic_fetch_add(&h->cleared, 1);
    }
}

static void open_side(host_side *h)
{
    atomic_store(&h->cleared, 0);
    assert_int_equal(cl_redis_cache_new(server.url, on_invalidated, h, &h->r, NULL), CL_OK);
}

/* Waits until *counter exceeds above; 1, or 0 at the deadline. */
static int wait_above(atomic_int *counter, int above)
{
    int64_t deadline = cl_now_ms() + WAIT_MS;

    while (atomic_load(counter) <= above) {
        struct timespec nap = {0, 5 * 1000000L};

        if (cl_now_ms() > deadline) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    return 1;
}

/* Waits until n clients subscribe to the invalidations, as the server counts them; 1 or 0. */
static int wait_subscribers(long long n)
{
    int64_t deadline = cl_now_ms() + WAIT_MS;
    redisContext *c = redisConnect("127.0.0.1", server.port);
    long long have = -1;

    while (c != NULL && c->err == 0 && have < n && cl_now_ms() < deadline) {
        redisReply *r = redisCommand(c, "PUBSUB NUMSUB cleave:cache:invalidate");
        struct timespec nap = {0, 5 * 1000000L};

        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            have = r->element[1]->integer;
        }
        freeReplyObject(r);
        nanosleep(&nap, NULL);
    }
    redisFree(c);
    return have >= n;
}

/* The generation of "catalog" once the client has one (the server reachable). */
static int64_t known_generation(cl_redis_cache *r)
{
    int64_t deadline = cl_now_ms() + WAIT_MS;
    int64_t gen;

    for (;;) {
        struct timespec nap = {0, 20 * 1000000L};

        gen = cl_redis_cache_ops.generation(r, "catalog");
        if (gen >= 0 || cl_now_ms() > deadline) {
            return gen;
        }
        nanosleep(&nap, NULL);
    }
}

static void test_two_hosts_share_entries_and_invalidations(void **state)
{
    const cl_cache_shared *ops = &cl_redis_cache_ops;
    host_side a, b;
    char *v = NULL;
    int64_t age = -1, gen_a, gen_b;
    int before;

    (void)state;
    open_side(&a);
    open_side(&b);
    /* A host that subscribes later clears its cache then; here both listen from the start. */
    assert_true(wait_subscribers(2));
    gen_a = known_generation(a.r);
    gen_b = known_generation(b.r);
    assert_true(gen_a >= 0);
    assert_int_equal(gen_a, gen_b);

    ops->set(a.r, "catalog", gen_a, "get_product\n{\"id\":1}", "{\"name\":\"mug\"}", 60000);
    assert_int_equal(ops->get(b.r, "catalog", gen_b, "get_product\n{\"id\":1}", 60000, &v, &age),
                     1);
    assert_string_equal(v, "{\"name\":\"mug\"}");
    assert_true(age >= 0 && age < WAIT_MS);
    free(v);
    v = NULL;

    /* A's write: B is told, moves to the new generation, and the old entry is gone for it. */
    before = atomic_load(&b.cleared);
    ops->invalidate(a.r, "catalog");
    assert_true(wait_above(&b.cleared, before));
    gen_b = ops->generation(b.r, "catalog");
    assert_int_equal(gen_b, gen_a + 1);
    assert_int_equal(ops->generation(a.r, "catalog"), gen_a + 1);
    assert_int_equal(ops->get(b.r, "catalog", gen_b, "get_product\n{\"id\":1}", 60000, &v, &age),
                     0);
    assert_null(v);

    cl_redis_cache_free(a.r);
    cl_redis_cache_free(b.r);
}

static void test_a_server_that_goes_away_is_a_miss_and_is_used_again(void **state)
{
    const cl_cache_shared *ops = &cl_redis_cache_ops;
    host_side a;
    char *v = NULL;
    int64_t age = 0, gen;
    int cleared;

    (void)state;
    open_side(&a);
    gen = known_generation(a.r);
    assert_true(gen >= 0);
    assert_true(wait_subscribers(1));
    ops->set(a.r, "catalog", gen, "k", "v", 60000);
    cleared = atomic_load(&a.cleared);

    redis_server_stop(&server);
    /* Every call answers, none fails the caller. */
    assert_int_equal(ops->get(a.r, "catalog", gen, "k", 60000, &v, &age), 0);
    ops->set(a.r, "catalog", gen, "k", "v", 60000);
    ops->invalidate(a.r, "catalog");
    /* The invalidation was lost: the generation is unknown until the server is back. */
    assert_true(ops->generation(a.r, "catalog") < 0);

    assert_int_equal(redis_server_restart(&server, dir), 0);
    /* Resubscribed: the host's cache is cleared, and the server is used again. */
    assert_true(wait_above(&a.cleared, cleared));
    gen = known_generation(a.r);
    assert_true(gen >= 0);
    ops->set(a.r, "catalog", gen, "k", "back", 60000);
    assert_int_equal(ops->get(a.r, "catalog", gen, "k", 60000, &v, &age), 1);
    assert_string_equal(v, "back");
    free(v);
    cl_redis_cache_free(a.r);
}

static void test_a_bad_url_names_the_setting(void **state)
{
    cl_redis_cache *r = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_redis_cache_new("http://127.0.0.1:6379", on_invalidated, NULL, &r, &err),
                     CL_INVALID);
    assert_string_equal(err.field, "CLEAVE_REDIS_URL");
    assert_int_equal(cl_redis_cache_new("redis://h:0", on_invalidated, NULL, &r, &err), CL_INVALID);
    assert_int_equal(cl_redis_cache_new("redis://u@h:1", on_invalidated, NULL, &r, &err),
                     CL_INVALID);
    assert_null(r);
}

static int setup(void **state)
{
    (void)state;
    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return -1;
    }
    if (redis_server_start(&server, dir) != 0) {
        test_rmrf(dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    redis_server_stop(&server);
    test_rmrf(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_hosts_share_entries_and_invalidations),
        cmocka_unit_test(test_a_server_that_goes_away_is_a_miss_and_is_used_again),
        cmocka_unit_test(test_a_bad_url_names_the_setting),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
