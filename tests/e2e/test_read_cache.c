/*
 * The read cache end to end (ADR 0042), on real `cleave serve` processes. argv[1] picks
 * the case:
 *   two_hosts   (PostgreSQL only) two hosts on one database share a throwaway
 *               redis-server; both serve product P from their caches; P is updated
 *               through host A; host B serves the new version within the stated bound
 *               (INVALIDATION_BOUND_MS), although its cache would keep the old one for
 *               a minute (the TTL here).
 *   one_host    one host without Redis: its own write is visible at once.
 *   redis_down  one host whose Redis cannot be reached: every read and write answers as
 *               without a cache, the failures are counted, and the loss is logged once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cleave/util.h"
#include "client.h"
#include "redis_server.h"
#include "topology.h"

/* The bound ADR 0042 states for another host to see a write while Redis is reachable. */
#define INVALIDATION_BOUND_MS 1000
/* Long enough that only an invalidation, never the TTL, explains a fresh answer. */
#define LONG_TTL_ENV          "CLEAVE_CACHE_TTL_MS=60000"

static const char *case_name = "";
static topology topo;
static redis_server redis;
static test_proc host_b;
static char host_b_url[64];
static char redis_dir[256];

/* The first product's path and ETag on base. */
static void first_product(const char *base, char *path, size_t psize, char *etag, size_t esize)
{
    test_resp r;
    json_t *items;

    assert_int_equal(test_http(base, "GET", "/api/v1/products?limit=1", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    items = json_object_get(r.json, "items");
    assert_true(json_array_size(items) == 1);
    snprintf(path, psize, "/api/v1/products/%lld",
             (long long)json_integer_value(json_object_get(json_array_get(items, 0), "id")));
    test_resp_free(&r);
    assert_int_equal(test_http(base, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(etag, esize, "If-Match: %s", r.etag);
    test_resp_free(&r);
}

/* The product's name as base serves it now. */
static void name_on(const char *base, const char *path, char *name, size_t size)
{
    test_resp r;

    assert_int_equal(test_http(base, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(name, size, "%s", json_string_value(json_object_get(r.json, "name")));
    test_resp_free(&r);
}

static void rename_on(const char *base, const char *path, const char *if_match, const char *name)
{
    const char *headers[] = {if_match, NULL};
    char body[128];
    test_resp r;

    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    assert_int_equal(test_http(base, "PATCH", path, body, strlen(body), headers, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
}

/* The value of the series line (metric name with labels, as rendered) in base's /metrics. */
static double metric(const char *base, const char *series)
{
    test_resp r;
    const char *at;
    double v = 0;
    size_t len = strlen(series);

    assert_int_equal(test_http(base, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    for (at = strstr(r.body, series); at != NULL; at = strstr(at + 1, series)) {
        if ((at == r.body || at[-1] == '\n') && at[len] == ' ') {
            v = strtod(at + len + 1, NULL);
            break;
        }
    }
    test_resp_free(&r);
    return v;
}

#define CATALOG_HITS "cleave_cache_requests_total{cache=\"catalog\",result=\"hit\"}"

/* Starts host B: the gateway's binary on A's database, with Redis and the long TTL. */
static void start_host_b(void)
{
    char *env[TOPOLOGY_ENV_MAX + 8];
    char bin[512], log[600], listen[64];
    char *argv[] = {topo.gateway_bin, "serve", NULL};
    int port = test_free_port();
    int n = 0;

    assert_true(port > 0);
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", port);
    topology_env(&topo, 0, env);
    while (env[n] != NULL) {
        n++;
    }
    env[n++] = listen;
    env[n++] = "CLEAVE_HOST_ID=host-b";
    env[n++] = redis.env;
    env[n++] = LONG_TTL_ENV;
    env[n] = NULL;
    snprintf(log, sizeof(log), "%s/host-b.log", topo.dir);
    assert_int_equal(
        test_proc_start(&host_b, topology_bin(topo.gateway_bin, bin, sizeof(bin)), argv, env, log),
        0);
    assert_true(test_proc_wait_port(&host_b, 30000) > 0);
    snprintf(host_b_url, sizeof(host_b_url), "http://127.0.0.1:%d", port);
}

static void test_two_hosts_see_an_update_within_the_bound(void)
{
    const char *a = topo.base_url;
    char path[64], if_match[96], name[256];
    int64_t written_ms, seen_ms = 0;
    double hits;

    start_host_b();
    first_product(a, path, sizeof(path), if_match, sizeof(if_match));
    /* Both hosts hold the product in their caches: each answers the second read from it. */
    name_on(a, path, name, sizeof(name));
    name_on(host_b_url, path, name, sizeof(name));
    name_on(host_b_url, path, name, sizeof(name));
    assert_string_not_equal(name, "Seen everywhere");
    assert_true(metric(a, CATALOG_HITS) >= 1);
    assert_true(metric(host_b_url, CATALOG_HITS) >= 1);

    rename_on(a, path, if_match, "Seen everywhere");
    written_ms = cl_now_ms();
    /* Host A's own write at once; host B's within the bound, polled until the deadline. */
    name_on(a, path, name, sizeof(name));
    assert_string_equal(name, "Seen everywhere");
    while (cl_now_ms() - written_ms < (int64_t)5 * INVALIDATION_BOUND_MS) {
        struct timespec nap = {0, 10 * 1000000L};

        name_on(host_b_url, path, name, sizeof(name));
        if (strcmp(name, "Seen everywhere") == 0) {
            seen_ms = cl_now_ms();
            break;
        }
        nanosleep(&nap, NULL);
    }
    assert_string_equal(name, "Seen everywhere");
    printf("host B saw the update %lld ms after host A answered it (bound %d ms)\n",
           (long long)(seen_ms - written_ms), INVALIDATION_BOUND_MS);
    assert_true(seen_ms - written_ms <= INVALIDATION_BOUND_MS);
    /* And serves it from its cache again from then on. */
    hits = metric(host_b_url, CATALOG_HITS);
    name_on(host_b_url, path, name, sizeof(name));
    name_on(host_b_url, path, name, sizeof(name));
    assert_true(metric(host_b_url, CATALOG_HITS) > hits);
}

static void test_one_host_sees_its_own_write_at_once(void)
{
    const char *a = topo.base_url;
    char path[64], if_match[96], name[256];

    first_product(a, path, sizeof(path), if_match, sizeof(if_match));
    name_on(a, path, name, sizeof(name));
    name_on(a, path, name, sizeof(name));
    assert_true(metric(a, CATALOG_HITS) >= 1);
    rename_on(a, path, if_match, "Seen at once");
    name_on(a, path, name, sizeof(name));
    assert_string_equal(name, "Seen at once");
}

static void test_reads_and_writes_work_while_redis_is_down(void)
{
    const char *a = topo.base_url;
    char path[64], if_match[96], name[256];
    int64_t start = cl_now_ms();

    first_product(a, path, sizeof(path), if_match, sizeof(if_match));
    rename_on(a, path, if_match, "Written without Redis");
    /* Reads for longer than the client's reconnect interval: it tries again meanwhile. */
    while (cl_now_ms() - start < 1500) {
        name_on(a, path, name, sizeof(name));
        assert_string_equal(name, "Written without Redis");
    }
    assert_true(
        metric(a, "cleave_cache_shared_requests_total{cache=\"catalog\",result=\"error\"}") >= 1);
    assert_int_equal(test_lines_with(topo.procs[topo.gateway_slot].log_path, "unreachable"), 1);
}

static void test_case(void **state)
{
    (void)state;
    if (strcmp(case_name, "two_hosts") == 0) {
        test_two_hosts_see_an_update_within_the_bound();
    } else if (strcmp(case_name, "one_host") == 0) {
        test_one_host_sees_its_own_write_at_once();
    } else if (strcmp(case_name, "redis_down") == 0) {
        test_reads_and_writes_work_while_redis_is_down();
    } else {
        fail_msg("unknown case %s", case_name);
    }
}

static int setup(void **state)
{
    char *extra[4] = {LONG_TTL_ENV, NULL, NULL, NULL};
    char unreachable[96];

    (void)state;
    if (strcmp(case_name, "two_hosts") == 0) {
        const char *db = getenv("CL_TEST_DB");

        if (db == NULL || strcmp(db, "postgres") != 0) {
            fprintf(stderr, "two_hosts needs PostgreSQL (CL_TEST_DB=postgres)\n");
            return -1;
        }
        if (test_tmpdir(redis_dir, sizeof(redis_dir)) != 0) {
            return -1;
        }
        if (redis_server_start(&redis, redis_dir) != 0) {
            test_rmrf(redis_dir);
            return -1;
        }
        extra[1] = redis.env;
    } else if (strcmp(case_name, "redis_down") == 0) {
        /* A port nobody listens on. */
        snprintf(unreachable, sizeof(unreachable), "CLEAVE_REDIS_URL=redis://127.0.0.1:%d",
                 test_free_port());
        extra[1] = unreachable;
    }
    if (topology_start_with(&topo, "monolith", TOPOLOGY_SEED_SMALL, extra) != 0) {
        /* cmocka runs no teardown after a failed setup. */
        (void)topology_stop(&topo);
        redis_server_stop(&redis);
        test_rmrf(redis_dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    int rc;

    (void)state;
    if (host_b.pid > 0) {
        (void)test_proc_stop(&host_b, SIGTERM);
    }
    rc = topology_stop(&topo);
    redis_server_stop(&redis);
    if (redis_dir[0] != '\0') {
        test_rmrf(redis_dir);
    }
    return rc;
}

int main(int argc, char **argv)
{
    char name[64];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: test_read_cache two_hosts|one_host|redis_down\n");
        return 2;
    }
    case_name = argv[1];
    snprintf(name, sizeof(name), "read cache %s", case_name);
    return cmocka_run_group_tests_name(name, tests, setup, teardown);
}
