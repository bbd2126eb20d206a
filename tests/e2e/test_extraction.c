/*
 * Extraction as an operator sees it: the catalog in its own process behind the gateway
 * built without it gives the same answers as the monolith on the same data; when the
 * service stops the gateway answers 503 promptly and /readyz names it; when it is back
 * the gateway recovers without a restart.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "topology.h"

static topology topo;

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, "catalog-extracted", TOPOLOGY_SEED_SMALL);
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* json_equal is false when either side is NULL; an absent member on both sides agrees. */
static int same_member(json_t *a, json_t *b, const char *key)
{
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return (x == NULL && y == NULL) || json_equal(x, y);
}

static void test_same_body_as_the_monolith_on_the_same_data(void **state)
{
    char copy[600], src[600], out[1024], log[700], bin[512], data_env[700];
    char *cp_argv[] = {"cp", "-r", src, copy, NULL};
    char *serve_argv[] = {"cleave", "serve", NULL};
    char *env[8] = {data_env, topo.migrations_env, "CLEAVE_LISTEN=127.0.0.1:0", NULL};
    char base[64];
    test_proc mono;
    test_resp a, b;
    int port;

    (void)state;
    /*
     * Both answer anonymous readers alike. The copy has an identity of its own, whose keys
     * the topology's token does not match: these requests go without one.
     */
    test_http_set_bearer(NULL);
    /*
     * The monolith gets a copy of the very database the catalog service has; on
     * PostgreSQL it reads the same schema (these requests only read).
     */
    snprintf(src, sizeof(src), "%s/catalog-data", topo.dir);
    snprintf(copy, sizeof(copy), "%s/monolith-data", topo.dir);
    if (pgtest_enabled()) {
        topology_db_env(&topo, env, 3, 0);
    } else {
        assert_int_equal(test_run("/bin/cp", cp_argv, NULL, out, sizeof(out)), 0);
    }
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s", copy);
    snprintf(log, sizeof(log), "%s/monolith.log", topo.dir);
    assert_int_equal(
        test_proc_start(&mono, topology_bin("cleave", bin, sizeof(bin)), serve_argv, env, log), 0);
    port = test_proc_wait_port(&mono, 30000);
    assert_true(port > 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

    /* Each request with the answer it must get: agreeing on a failure proves nothing. */
    static const struct {
        const char *path;
        long status;
    } cases[] = {{"/api/v1/products?limit=5", 200},
                 {"/api/v1/products/17", 200},
                 {"/api/v1/categories", 200},
                 {"/api/v1/products?limit=101", 400},
                 {"/api/v1/products/99999999", 404}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(test_http(base, "GET", cases[i].path, NULL, 0, NULL, &a), 0);
        assert_int_equal(test_http(topo.base_url, "GET", cases[i].path, NULL, 0, NULL, &b), 0);
        if (a.status != cases[i].status || b.status != cases[i].status) {
            fail_msg("GET %s: monolith %ld, extracted %ld, want %ld", cases[i].path, a.status,
                     b.status, cases[i].status);
        }
        if (a.status == 200) {
            assert_string_equal(a.body, b.body);
        } else {
            /* Problems differ only in their request ids; status, type and detail agree. */
            assert_non_null(a.json);
            assert_non_null(b.json);
            assert_true(same_member(a.json, b.json, "type"));
            assert_true(same_member(a.json, b.json, "detail"));
            assert_true(same_member(a.json, b.json, "invalid_params"));
        }
        test_resp_free(&a);
        test_resp_free(&b);
    }
    assert_int_equal(test_proc_stop(&mono, SIGTERM), 0);
}

static void test_service_down_gives_503_promptly_and_recovers(void **state)
{
    test_resp r;
    int64_t t0, took;

    (void)state;
    assert_int_equal(test_http(topo.base_url, "GET", "/api/v1/products?limit=5", NULL, 0, NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);

    assert_int_equal(topology_stop_service(&topo), 0);

    /* A page not read before: the stale fallback (ADR 0033) has nothing to answer with. */
    t0 = now_ms();
    assert_int_equal(test_http(topo.base_url, "GET", "/api/v1/products?limit=4", NULL, 0, NULL, &r),
                     0);
    took = now_ms() - t0;
    assert_true(test_is_problem(&r, 503));
    test_resp_free(&r);
    /* Promptly: a refused connection is not a hang (the limit is generous for ASan). */
    assert_true(took < 5000);

    assert_int_equal(test_http(topo.base_url, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    assert_true(test_is_problem(&r, 503));
    {
        json_t *check = json_array_get(json_object_get(r.json, "checks"), 0);
        assert_string_equal(json_string_value(json_object_get(check, "module")), "catalog");
        assert_string_equal(json_string_value(json_object_get(check, "status")), "down");
    }
    test_resp_free(&r);

    assert_int_equal(topology_restart_service(&topo), 0);
    assert_int_equal(test_http(topo.base_url, "GET", "/api/v1/products?limit=5", NULL, 0, NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 5);
    test_resp_free(&r);
    assert_int_equal(test_http(topo.base_url, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
}

static void test_modules_shows_remote_and_missing_url_is_refused(void **state)
{
    char bin[512], out[4096], url_env[128], data_env[600];
    char *modules_argv[] = {"cleave-without-catalog", "modules", NULL};
    char *serve_argv[] = {"cleave-without-catalog", "serve", NULL};
    char *env[] = {data_env, url_env, NULL};
    char *env_no_url[] = {data_env, "CLEAVE_LISTEN=127.0.0.1:0", NULL};

    (void)state;
    topology_bin("cleave-without-catalog", bin, sizeof(bin));
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", topo.dir);
    snprintf(url_env, sizeof(url_env), "CLEAVE_CATALOG_URL=%s", topo.service_url);
    assert_int_equal(test_run(bin, modules_argv, env, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "remote"));
    assert_non_null(strstr(out, topo.service_url));

    assert_int_not_equal(test_run(bin, serve_argv, env_no_url, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "CLEAVE_CATALOG_URL"));
}

static void test_service_refuses_calls_without_the_token(void **state)
{
    test_resp r;
    const char *wrong[] = {"Authorization: Bearer not-the-token", NULL};

    (void)state;
    assert_int_equal(test_http(topo.service_url, "POST", "/rpc/v1/catalog/get_product",
                               "{\"id\":1}", 8, NULL, &r),
                     0);
    assert_true(test_is_problem(&r, 401));
    test_resp_free(&r);
    assert_int_equal(test_http(topo.service_url, "POST", "/rpc/v1/catalog/get_product",
                               "{\"id\":1}", 8, wrong, &r),
                     0);
    assert_true(test_is_problem(&r, 401));
    test_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_body_as_the_monolith_on_the_same_data),
        cmocka_unit_test(test_service_down_gives_503_promptly_and_recovers),
        cmocka_unit_test(test_modules_shows_remote_and_missing_url_is_refused),
        cmocka_unit_test(test_service_refuses_calls_without_the_token),
    };
    return cmocka_run_group_tests_name("extraction", tests, setup, teardown);
}
