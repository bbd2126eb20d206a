/*
 * The placement matrix (ADR 0010): the shop's smoke run in one placement of its modules,
 * named by argv[1] ("monolith", "orders-extracted", "all-extracted", ...). Every placement
 * must give the same answers: browse, create a product (its stock record arrives through
 * catalog.product_created, across processes where the two are split), check out to
 * confirmed, the shipment booked (orders.order_confirmed to shipping), bad input refused,
 * and every process ready. A placement with modules extracted runs over NATS; the start-up
 * refusal of an in-process bus across a split is checked with orders extracted.
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
#include "cleave/util.h"
#include "shop.h"
#include "topology.h"

#define WAIT_MS 30000

static const char *placement = "monolith";
static topology topo;

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t num(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* method path [body] against the gateway; the answer must have status want. */
static void call(const char *method, const char *path, const char *body, long want, test_resp *r)
{
    assert_int_equal(
        test_http(topo.base_url, method, path, body, body != NULL ? strlen(body) : 0, NULL, r), 0);
    if (r->status != want) {
        fail_msg("%s %s: %ld, wanted %ld: %.300s", method, path, r->status, want, r->body);
    }
}

static void call_free(const char *method, const char *path, const char *body, long want)
{
    json_t *j = test_call(topo.base_url, method, path, body, want);

    assert_non_null(j);
    json_decref(j);
}

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, placement, TOPOLOGY_SEED_SMALL);
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

/* --- the smoke run ----------------------------------------------------------------------- */

static void test_every_process_is_ready(void **state)
{
    char url[64];
    test_resp r = {0};

    (void)state;
    call("GET", "/readyz", NULL, 200, &r);
    assert_string_equal(str(r.json, "status"), "ready");
    test_resp_free(&r);
    for (int i = 0; i < topo.nservices; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", topo.service_ports[i]);
        assert_int_equal(test_http(url, "GET", "/readyz", NULL, 0, NULL, &r), 0);
        if (r.status != 200) {
            fail_msg("%s /readyz: %ld %.300s", topo.services[i], r.status, r.body);
        }
        test_resp_free(&r);
    }
}

static void test_browse(void **state)
{
    test_resp r = {0};
    char path[96];
    json_t *items;

    (void)state;
    call("GET", "/api/v1/products?limit=5", NULL, 200, &r);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 5);
    assert_non_null(str(r.json, "next_cursor"));
    snprintf(path, sizeof(path), "/api/v1/products/%lld",
             (long long)num(json_array_get(items, 0), "id"));
    test_resp_free(&r);
    call("GET", path, NULL, 200, &r);
    assert_non_null(str(r.json, "sku"));
    test_resp_free(&r);
    call_free("GET", "/api/v1/categories", NULL, 200);
    call_free("GET", "/api/v1/inventory/SKU-000001", NULL, 200);
}

/* Creates a product; its stock record arrives through the catalog's event, then gets stock. */
static void create_stocked_product(const char *sku, int64_t on_hand)
{
    char body[256], path[96];
    int64_t until = cl_now_ms() + WAIT_MS;
    test_resp r = {0};

    snprintf(body, sizeof(body),
             "{\"sku\":\"%s\",\"name\":\"Placement %s\",\"price\":{\"amount\":1250,"
             "\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
             sku, sku);
    call_free("POST", "/api/v1/products", body, 201);
    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    for (;;) {
        assert_int_equal(test_http(topo.base_url, "GET", path, NULL, 0, NULL, &r), 0);
        if (r.status == 200) {
            break;
        }
        if (r.status != 404 || cl_now_ms() > until) {
            fail_msg("no stock record for %s after catalog.product_created: %ld %.200s", sku,
                     r.status, r.body);
        }
        test_resp_free(&r);
        test_poll_pause();
    }
    assert_int_equal(num(r.json, "on_hand"), 0);
    test_resp_free(&r);
    snprintf(body, sizeof(body), "{\"on_hand\":%lld}", (long long)on_hand);
    call_free("PUT", path, body, 200);
}

/* Polls path until its JSON member key equals want; the last answer's JSON (new ref). */
static json_t *wait_member(const char *path, const char *array, const char *key, const char *want)
{
    int64_t until = cl_now_ms() + WAIT_MS;

    for (;;) {
        test_resp r = {0};
        json_t *obj;
        const char *v;

        call("GET", path, NULL, 200, &r);
        obj = array != NULL ? json_array_get(json_object_get(r.json, array), 0) : r.json;
        v = obj != NULL ? str(obj, key) : NULL;
        if (v != NULL && strcmp(v, want) == 0) {
            json_t *o = json_incref(obj);
            test_resp_free(&r);
            return o;
        }
        if (cl_now_ms() > until) {
            fail_msg("%s: %s is %s after %d ms, wanted %s: %.300s", path, key, v ? v : "(none)",
                     WAIT_MS, want, r.body);
        }
        test_resp_free(&r);
        test_poll_pause();
    }
}

static void test_create_product_then_check_out_to_confirmed_and_booked(void **state)
{
    char body[256], path[128], account[64], order[64];
    test_resp r = {0};
    json_t *o, *sh;

    (void)state;
    create_stocked_product("PLACE-1", 10);
    call("POST", "/api/v1/accounts", "{\"owner\":\"Placement\",\"currency\":\"EUR\"}", 201, &r);
    snprintf(account, sizeof(account), "%s", str(r.json, "id"));
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", account);
    call_free("POST", path, "{\"amount\":{\"amount\":10000,\"currency\":\"EUR\"}}", 200);

    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"PLACE-1\",\"quantity\":3}]}", account);
    call("POST", "/api/v1/orders", body, 202, &r);
    snprintf(order, sizeof(order), "%s", str(r.json, "id"));
    assert_string_equal(str(r.json, "status"), "pending");
    test_resp_free(&r);

    snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
    o = wait_member(path, NULL, "status", "confirmed");
    assert_int_equal(num(json_object_get(o, "total"), "amount"), 3 * 1250);
    json_decref(o);
    /* Shipping books it from orders.order_confirmed, wherever the two run. */
    snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", order);
    sh = wait_member(path, "items", "status", "booked");
    json_decref(sh);

    /* Money and stock moved exactly once. */
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", account);
    call("GET", path, NULL, 200, &r);
    assert_int_equal(num(json_object_get(r.json, "available"), "amount"), 10000 - 3 * 1250);
    assert_int_equal(num(json_object_get(r.json, "held"), "amount"), 0);
    test_resp_free(&r);
    call("GET", "/api/v1/inventory/PLACE-1", NULL, 200, &r);
    assert_int_equal(num(r.json, "on_hand"), 7);
    assert_int_equal(num(r.json, "sold"), 3);
    assert_int_equal(num(r.json, "reserved"), 0);
    test_resp_free(&r);
}

static void test_too_little_stock_is_rejected(void **state)
{
    char path[128], order[64];
    test_resp r = {0};
    json_t *o;

    (void)state;
    call("POST", "/api/v1/orders",
         "{\"account_id\":\"demo\",\"lines\":[{\"sku\":\"SKU-000002\",\"quantity\":100000}]}", 202,
         &r);
    snprintf(order, sizeof(order), "%s", str(r.json, "id"));
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
    o = wait_member(path, NULL, "status", "rejected");
    json_decref(o);
}

static void test_bad_input_is_refused(void **state)
{
    static const struct {
        const char *method, *path, *body;
        long status;
    } cases[] = {
        {"GET", "/api/v1/products?limit=abc", NULL, 400},
        {"GET", "/api/v1/products?limti=5", NULL, 400},
        {"POST", "/api/v1/products", "{\"sku\":42}", 400},
        {"POST", "/api/v1/orders", "{\"account_id\":\"demo\",\"lines\":[]}", 400},
        {"POST", "/api/v1/orders", "{\"account_id\":\"demo\",\"lines\":[{\"sku\":\"x\"", 400},
        {"PUT", "/api/v1/inventory/SKU-000001", "{\"on_hand\":-1}", 400},
        {"POST", "/api/v1/accounts/demo/deposits", "{\"amount\":{\"amount\":0}}", 400},
        {"GET", "/api/v1/orders/ord-nothing", NULL, 404},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_resp r = {0};

        call(cases[i].method, cases[i].path, cases[i].body, cases[i].status, &r);
        if (!test_is_problem(&r, cases[i].status)) {
            fail_msg("%s %s: not a problem+json %ld: %.300s", cases[i].method, cases[i].path,
                     cases[i].status, r.body);
        }
        test_resp_free(&r);
    }
}

/*
 * Every process serves its local modules to the others over RPC, to authenticated callers
 * only: the gateway's catalog when catalog stayed in it, else the catalog's service.
 */
static void test_local_modules_are_served_over_rpc_to_callers_with_the_token(void **state)
{
    char bearer[4200], other[4200];
    const char *const with_token[] = {bearer, NULL};
    const char *const wrong_token[] = {"Authorization: Bearer guess", NULL};
    const char *const other_audience[] = {other, NULL};
    const char *body = "{\"id\":1}";
    char url[64], token[4096], secret[300];
    test_resp r = {0};
    int i;

    (void)state;
    /* A client of the test's own, registered like any service's (a monolith has none). */
    assert_int_equal(topology_add_client(&topo, "placement-test", "cleave-catalog cleave-inventory",
                                         secret, sizeof(secret)),
                     0);
    assert_int_equal(test_client_token(topo.base_url, "placement-test", secret, "cleave-catalog",
                                       token, sizeof(token)),
                     0);
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    assert_int_equal(test_client_token(topo.base_url, "placement-test", secret, "cleave-inventory",
                                       token, sizeof(token)),
                     0);
    snprintf(other, sizeof(other), "Authorization: Bearer %s", token);
    snprintf(url, sizeof(url), "%s", topo.base_url);
    for (i = 0; i < topo.nservices; i++) {
        if (strcmp(topo.services[i], "cleave-catalog") == 0) {
            snprintf(url, sizeof(url), "http://127.0.0.1:%d", topo.service_ports[i]);
        }
    }
    assert_int_equal(
        test_http(url, "POST", "/rpc/v1/catalog/get_product", body, strlen(body), with_token, &r),
        0);
    if (r.status != 200) {
        fail_msg("%s: get_product with the token: %ld %.300s", url, r.status, r.body);
    }
    assert_int_equal(num(r.json, "id"), 1);
    test_resp_free(&r);
    assert_int_equal(
        test_http(url, "POST", "/rpc/v1/catalog/get_product", body, strlen(body), wrong_token, &r),
        0);
    assert_true(test_is_problem(&r, 401));
    test_resp_free(&r);
    /* A valid token for another service is not one for this. */
    assert_int_equal(test_http(url, "POST", "/rpc/v1/catalog/get_product", body, strlen(body),
                               other_audience, &r),
                     0);
    assert_true(test_is_problem(&r, 401));
    test_resp_free(&r);
    assert_int_equal(
        test_http(url, "POST", "/rpc/v1/catalog/get_product", body, strlen(body), NULL, &r), 0);
    assert_true(test_is_problem(&r, 401));
    test_resp_free(&r);
}

/* --- the start-up refusal ---------------------------------------------------------------- */

/* Runs bin (in this build) with args and env; its exit status and output in out. */
static int run(const char *bin, const char *a1, char *const env[], char *out, size_t size)
{
    char path[512];
    char *argv[] = {(char *)bin, (char *)a1, NULL};

    return test_run(topology_bin(bin, path, sizeof(path)), argv, env, out, size);
}

static void assert_refused(const char *bin, char *const env[])
{
    char out[8192];
    int rc = run(bin, "serve", env, out, sizeof(out));

    if (rc == 0 || strstr(out, "event orders.order_confirmed") == NULL ||
        strstr(out, "published by orders") == NULL || strstr(out, "handled by shipping") == NULL ||
        strstr(out, "CLEAVE_NATS_URL") == NULL) {
        fail_msg("%s serve on the in-process bus exited %d:\n%s", bin, rc, out);
    }
    printf("%s refused: %s", bin, strstr(out, "event orders.order_confirmed"));
}

/*
 * orders in its own process, shipping in the host: on the in-process bus the confirmation
 * would never reach shipping, so both refuse to start and say what to set.
 */
static void test_an_in_process_bus_across_the_split_refuses_to_start(void **state)
{
    char data[600], urls[3][80], out[8192];
    char *env[8] = {data,
                    topo.migrations_env,
                    "CLEAVE_LISTEN=127.0.0.1:0",
                    "CLEAVE_DEV_SERVICE_TOKEN=test-service-token",
                    "CLEAVE_ORDERS_URL=http://127.0.0.1:9",
                    NULL};
    char *orders_env[8] = {data,
                           topo.migrations_env,
                           "CLEAVE_LISTEN=127.0.0.1:0",
                           "CLEAVE_DEV_SERVICE_TOKEN=test-service-token",
                           urls[0],
                           urls[1],
                           urls[2],
                           NULL};

    (void)state;
    snprintf(data, sizeof(data), "CLEAVE_DATA_DIR=%s/refusal", topo.dir);
    snprintf(urls[0], sizeof(urls[0]), "CLEAVE_CATALOG_URL=http://127.0.0.1:9");
    snprintf(urls[1], sizeof(urls[1]), "CLEAVE_INVENTORY_URL=http://127.0.0.1:9");
    snprintf(urls[2], sizeof(urls[2]), "CLEAVE_PAYMENTS_URL=http://127.0.0.1:9");
    assert_refused("cleave-without-orders", env);
    assert_refused("cleave-orders", orders_env);
    /* `cleave modules` shows the placement, the crossing event and the refusal. */
    assert_int_equal(run("cleave-without-orders", "modules", env, out, sizeof(out)), 0);
    if (strstr(out, "serves  catalog") == NULL || strstr(out, "to orders (elsewhere)") == NULL ||
        strstr(out, "orders.order_confirmed") == NULL || strstr(out, "refused") == NULL) {
        fail_msg("cleave modules:\n%s", out);
    }
}

#define SMOKE                                                                                      \
    cmocka_unit_test(test_every_process_is_ready), cmocka_unit_test(test_browse),                  \
        cmocka_unit_test(test_create_product_then_check_out_to_confirmed_and_booked),              \
        cmocka_unit_test(test_too_little_stock_is_rejected),                                       \
        cmocka_unit_test(test_bad_input_is_refused),                                               \
        cmocka_unit_test(test_local_modules_are_served_over_rpc_to_callers_with_the_token)

int main(int argc, char **argv)
{
    const struct CMUnitTest smoke[] = {SMOKE};
    /* The refusal is the same in every split; checked once, where the issue was found. */
    const struct CMUnitTest with_refusal[] = {
        SMOKE, cmocka_unit_test(test_an_in_process_bus_across_the_split_refuses_to_start)};

    if (argc > 1) {
        placement = argv[1];
    }
    if (strcmp(placement, "orders-extracted") == 0) {
        return cmocka_run_group_tests_name(placement, with_refusal, setup, teardown);
    }
    return cmocka_run_group_tests_name(placement, smoke, setup, teardown);
}
