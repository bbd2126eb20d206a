/*
 * End to end: the inventory and payments REST routes of the real `cleave serve`, seeded,
 * over real HTTP, and `cleave payments rebuild` against the same data. The topology
 * (argv[1]) decides which processes serve; the assertions are the same for every one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "topology.h"

static const char *topology_name = "monolith";
static topology topo;

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, topology_name, TOPOLOGY_SEED_SMALL);
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

static void req_h(const char *method, const char *path, const char *body,
                  const char *const *headers, test_resp *r)
{
    assert_int_equal(
        test_http(topo.base_url, method, path, body, body ? strlen(body) : 0, headers, r), 0);
}

static void req(const char *method, const char *path, const char *body, test_resp *r)
{
    req_h(method, path, body, NULL, r);
}

static const char *problem_param(const test_resp *r)
{
    json_t *params = json_object_get(r->json, "invalid_params");
    return json_string_value(json_object_get(json_array_get(params, 0), "name"));
}

static int64_t num(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static void test_stock_of_demo_skus_can_be_read_and_set(void **state)
{
    test_resp r;

    (void)state;
    /* The seed stocks every demo catalog SKU: SKU-000001 gets 5 + 37 % 100 units. */
    req("GET", "/api/v1/inventory/SKU-000001", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "sku")), "SKU-000001");
    assert_int_equal(num(r.json, "on_hand"), 42);
    assert_int_equal(num(r.json, "available"), 42);
    assert_int_equal(num(r.json, "reserved"), 0);
    test_resp_free(&r);
    req("PUT", "/api/v1/inventory/SKU-000001", "{\"on_hand\":7}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(num(r.json, "on_hand"), 7);
    test_resp_free(&r);
    req("GET", "/api/v1/inventory/SKU-000001", NULL, &r);
    assert_int_equal(num(r.json, "available"), 7);
    test_resp_free(&r);
    req("GET", "/api/v1/inventory/NO-SUCH-SKU", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
    req("PUT", "/api/v1/inventory/SKU-000001", "{\"on_hand\":-1}", &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "on_hand");
    test_resp_free(&r);
    req("PUT", "/api/v1/inventory/SKU-000001", "{\"sku\":\"SKU-000002\",\"on_hand\":1}", &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "sku");
    test_resp_free(&r);
    req("PUT", "/api/v1/inventory/bad%20sku", "{\"on_hand\":1}", &r);
    assert_true(test_is_problem(&r, 400));
    test_resp_free(&r);
}

static void test_accounts_open_deposit_and_show_history(void **state)
{
    const char *const key[] = {"Idempotency-Key: e2e-open-1", NULL};
    char path[256], id[80];
    test_resp r, again;

    (void)state;
    req("GET", "/api/v1/accounts/demo", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(num(json_object_get(r.json, "available"), "amount"), 100000);
    assert_string_equal(json_string_value(json_object_get(r.json, "currency")), "EUR");
    test_resp_free(&r);

    req_h("POST", "/api/v1/accounts", "{\"owner\":\"Eve\",\"currency\":\"EUR\"}", key, &r);
    assert_int_equal(r.status, 201);
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", id);
    assert_string_equal(r.location, path);
    /* A retry with the same key is the same account, not a second one. */
    req_h("POST", "/api/v1/accounts", "{\"owner\":\"Eve\",\"currency\":\"EUR\"}", key, &again);
    assert_int_equal(again.status, 201);
    assert_string_equal(json_string_value(json_object_get(again.json, "id")), id);
    test_resp_free(&again);
    test_resp_free(&r);

    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", id);
    req("POST", path, "{\"amount\":{\"amount\":2500,\"currency\":\"EUR\"}}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(num(json_object_get(r.json, "available"), "amount"), 2500);
    assert_int_equal(num(r.json, "version"), 2);
    test_resp_free(&r);
    req("POST", path, "{\"amount\":{\"amount\":1,\"currency\":\"USD\"}}", &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "amount.currency");
    test_resp_free(&r);
    req("POST", path, "{\"amount\":{\"amount\":1.5,\"currency\":\"EUR\"}}", &r);
    assert_true(test_is_problem(&r, 400));
    test_resp_free(&r);

    snprintf(path, sizeof(path), "/api/v1/accounts/%s?history_limit=1", id);
    req("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "history")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r.json, "history"), 0), "type")),
                        "funds_deposited");
    test_resp_free(&r);
    req("GET", "/api/v1/accounts/nobody", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
    req("POST", "/api/v1/accounts/nobody/deposits",
        "{\"amount\":{\"amount\":1,\"currency\":\"EUR\"}}", &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
}

/* `payments rebuild` through the gateway binary of this topology, on its live data. */
static void test_payments_rebuild_command(void **state)
{
    char bin[512], out[4096];
    char *env[TOPOLOGY_ENV_MAX];
    char *argv[] = {topo.gateway_bin, "payments", "rebuild", NULL};
    int rc;

    (void)state;
    /* The gateway's variables: its data, its client credentials, every module's URL. */
    topology_env(&topo, 0, env);
    rc = test_run(topology_bin(topo.gateway_bin, bin, sizeof(bin)), argv, env, out, sizeof(out));
    if (rc != 0 || strstr(out, "projections unchanged") == NULL) {
        fail_msg("payments rebuild exited %d:\n%s", rc, out);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stock_of_demo_skus_can_be_read_and_set),
        cmocka_unit_test(test_accounts_open_deposit_and_show_history),
        cmocka_unit_test(test_payments_rebuild_command),
    };

    if (argc > 1) {
        topology_name = argv[1];
    }
    return cmocka_run_group_tests_name(topology_name, tests, setup, teardown);
}
