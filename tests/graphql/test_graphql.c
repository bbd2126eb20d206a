/*
 * /graphql end to end (ADR 0038), on the topology named by argv[1] ("monolith" or
 * "catalog-extracted"):
 *   - "orders with their products" for 20 orders costs one get_products_by_sku call per
 *     response level, counted by the gateway (extensions.calls) and, with the catalog
 *     extracted, by the catalog service's own access log;
 *   - abusive queries (deep nesting, an alias flood, a huge list, a fragment bomb) are
 *     refused by the limits before any module is called;
 *   - on the monolith: graphql_check.mjs (graphql-js and graphql-http) against it.
 * argv[2] and argv[3]: the node binary and the folder holding graphql-js (monolith only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/util.h"
#include "client.h"
#include "shop.h"
#include "topology.h"

#define NORDERS 20

static topology topo;
static const char *topology_name;
static const char *node_bin;
static const char *node_dir;
static char alice[4096], bob[4096], staff[4096];
static char first_order[64];

/* method path body as token into r; the answer's status. */
static long send_as(const char *token, const char *method, const char *path, const char *body,
                    test_resp *r)
{
    assert_int_equal(test_http_as(topo.base_url, token, method, path, body, r), 0);
    return r->status;
}

/* A GraphQL request as token (NULL: anonymous); its answer in r. */
static void graphql(const char *token, const char *query, test_resp *r)
{
    char auth[4200];
    const char *headers[] = {"Accept: application/graphql-response+json", auth, NULL};
    json_t *body = json_pack("{ss}", "query", query);
    char *text = json_dumps(body, JSON_COMPACT);

    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    } else {
        snprintf(auth, sizeof(auth), "Authorization:");
    }
    assert_int_equal(test_http(topo.base_url, "POST", "/graphql", text, strlen(text), headers, r),
                     0);
    free(text);
    json_decref(body);
}

/*
 * How many of the catalog service's access lines contain needle: the count of module calls
 * as the module saw them. Its log is buffered (ADR 0041), so first a request with an id of
 * its own goes to the service, and the count is taken once that request's line is in the
 * log: the lines of the calls answered before it were logged before it.
 */
static int catalog_log_count(const char *needle)
{
    static int syncs;
    char line[8192];
    char url[64];
    char rid[64];
    char header[96];
    const char *headers[] = {header, NULL};
    test_resp r = {0};
    int64_t until = cl_now_ms() + 10000;
    int synced = 0;
    int n = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", topo.procs[0].port);
    snprintf(rid, sizeof(rid), "log-sync-%d", ++syncs);
    snprintf(header, sizeof(header), "X-Request-Id: %s", rid);
    assert_int_equal(test_http(url, "GET", "/healthz", NULL, 0, headers, &r), 0);
    test_resp_free(&r);
    while (!synced) {
        FILE *f = fopen(topo.procs[0].log_path, "r");

        assert_non_null(f);
        n = 0;
        while (fgets(line, sizeof(line), f) != NULL) {
            n += strstr(line, needle) != NULL;
            synced = synced || strstr(line, rid) != NULL;
        }
        fclose(f);
        if (!synced) {
            if (cl_now_ms() > until) {
                fail_msg("the catalog service never logged its request %s", rid);
            }
            test_poll_pause();
        }
    }
    return n;
}

/* How many requests for path the catalog's service logged; -1 on the monolith (no log). */
static int catalog_calls(const char *path)
{
    char needle[160];

    if (strcmp(topology_name, "catalog-extracted") != 0) {
        return -1;
    }
    snprintf(needle, sizeof(needle), "\"url.path\":\"%s\"", path);
    return catalog_log_count(needle);
}

/* Any request to the catalog's service at all (its RPC routes). */
static int catalog_rpc_calls(void)
{
    if (strcmp(topology_name, "catalog-extracted") != 0) {
        return -1;
    }
    return catalog_log_count("\"url.path\":\"/rpc/v1/catalog/");
}

static int setup(void **state)
{
    test_resp r = {0};
    char body[512], path[128], account[64];

    (void)state;
    /* The whole demo: the queries checked with graphql-js expect its categories. */
    if (topology_start(&topo, topology_name, TOPOLOGY_SEED_DEMO) != 0 ||
        test_password_token(topo.base_url, TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD, alice,
                            sizeof(alice)) != 0 ||
        test_password_token(topo.base_url, TEST_CUSTOMER2, TEST_CUSTOMER2_PASSWORD, bob,
                            sizeof(bob)) != 0 ||
        test_password_token(topo.base_url, TEST_STAFF, TEST_STAFF_PASSWORD, staff, sizeof(staff)) !=
            0) {
        return -1;
    }
    /* Alice's account, funded by staff, and 20 orders of two SKUs each (40 distinct). */
    if (send_as(alice, "POST", "/api/v1/accounts",
                "{\"id\":\"alice-gql\",\"owner\":\"Alice\",\"currency\":\"EUR\"}", &r) != 201) {
        fprintf(stderr, "open account: %ld %s\n", r.status, r.body);
        return -1;
    }
    snprintf(account, sizeof(account), "%s", json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", account);
    if (send_as(staff, "POST", path, "{\"amount\":{\"amount\":100000000,\"currency\":\"EUR\"}}",
                &r) != 200) {
        fprintf(stderr, "deposit: %ld %s\n", r.status, r.body);
        return -1;
    }
    test_resp_free(&r);
    for (int i = 0; i < NORDERS; i++) {
        snprintf(body, sizeof(body),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-%06d\",\"quantity\":1},"
                 "{\"sku\":\"SKU-%06d\",\"quantity\":1}]}",
                 account, 2 * i + 1, 2 * i + 2);
        if (send_as(alice, "POST", "/api/v1/orders", body, &r) != 202) {
            fprintf(stderr, "order %d: %ld %s\n", i, r.status, r.body);
            return -1;
        }
        if (i == 0) {
            snprintf(first_order, sizeof(first_order), "%s",
                     json_string_value(json_object_get(r.json, "id")));
        }
        test_resp_free(&r);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

static void test_orders_with_their_products_cost_one_catalog_call_per_level(void **state)
{
    /* Two aliases at the same level, same arguments: still one call for both. */
    static const char query[] =
        "{ mine: orders(first: 20) { nodes { id lines { sku product { sku name } } } }"
        "  again: orders(first: 20) { nodes { lines { product { price { amount } } } } } }";
    int before = catalog_calls("/rpc/v1/catalog/get_products_by_sku");
    int single_before = catalog_calls("/rpc/v1/catalog/get_product");
    test_resp r = {0};
    json_t *nodes, *calls;
    size_t i, lines = 0;
    json_t *order;

    (void)state;
    graphql(alice, query, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_null(json_object_get(r.json, "errors"));
    nodes = json_object_get(json_object_get(json_object_get(r.json, "data"), "mine"), "nodes");
    assert_int_equal(json_array_size(nodes), NORDERS);
    json_array_foreach (nodes, i, order) {
        size_t j;
        json_t *line;

        json_array_foreach (json_object_get(order, "lines"), j, line) {
            json_t *product = json_object_get(line, "product");

            assert_string_equal(json_string_value(json_object_get(product, "sku")),
                                json_string_value(json_object_get(line, "sku")));
            assert_non_null(json_string_value(json_object_get(product, "name")));
            lines++;
        }
    }
    assert_int_equal(lines, 2 * NORDERS);
    calls = json_object_get(json_object_get(r.json, "extensions"), "calls");
    /* 40 lines, 40 SKUs: one call, not one per line. */
    assert_int_equal(json_integer_value(json_object_get(calls, "catalog.get_products_by_sku")), 1);
    assert_null(json_object_get(calls, "catalog.get_product"));
    assert_int_equal(json_integer_value(json_object_get(calls, "orders.list_orders")), 2);
    if (before >= 0) {
        /* The catalog's own count agrees: one request, and no single product lookups. */
        assert_int_equal(catalog_calls("/rpc/v1/catalog/get_products_by_sku"), before + 1);
        assert_int_equal(catalog_calls("/rpc/v1/catalog/get_product"), single_before);
    }
    test_resp_free(&r);
}

static void test_a_customer_sees_only_its_own_orders(void **state)
{
    char query[256];
    test_resp r = {0};
    json_t *data;

    (void)state;
    snprintf(query, sizeof(query), "{ order(id: \"%s\") { id } orders { nodes { id } } }",
             first_order);
    graphql(bob, query, &r);
    assert_int_equal(r.status, 200);
    data = json_object_get(r.json, "data");
    /* Another's order is null, as one that does not exist; the list holds none of hers. */
    assert_true(json_is_null(json_object_get(data, "order")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(data, "orders"), "nodes")), 0);
    test_resp_free(&r);
    graphql(alice, query, &r);
    data = json_object_get(r.json, "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(data, "order"), "id")),
                        first_order);
    test_resp_free(&r);
    /* Anonymous callers may read the catalog only. */
    graphql(NULL, "{ product(id: \"1\") { sku } order(id: \"x\") { id } }", &r);
    assert_int_equal(r.status, 200);
    data = json_object_get(r.json, "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(data, "product"), "sku")),
                        "SKU-000001");
    assert_true(json_is_null(json_object_get(data, "order")));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(r.json, "errors"), 0), "extensions"),
            "code")),
        "unauthorized");
    test_resp_free(&r);
}

/* Appends fmt to buf at *n (bounded). */
static void put(char *buf, size_t size, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *n += (size_t)vsnprintf(buf + *n, size - *n, fmt, ap);
    va_end(ap);
    assert_true(*n < size);
}

static void assert_refused_by_limits(const char *what, const char *query, const char *reason)
{
    int before = catalog_rpc_calls();
    test_resp r = {0};
    json_t *e;

    graphql(staff, query, &r);
    e = json_array_get(json_object_get(r.json, "errors"), 0);
    if (r.status != 400 || json_object_get(r.json, "data") != NULL ||
        strcmp(json_string_value(json_object_get(json_object_get(e, "extensions"), "code")),
               "limit_exceeded") != 0 ||
        strstr(json_string_value(json_object_get(e, "message")), reason) == NULL) {
        fail_msg("%s: %ld %.400s", what, r.status, r.body);
    }
    /* Nothing ran: no module call was counted, none reached the catalog. */
    assert_null(json_object_get(r.json, "extensions"));
    if (before >= 0) {
        assert_int_equal(catalog_rpc_calls(), before);
    }
    test_resp_free(&r);
}

static void test_abusive_queries_are_refused_before_any_module_is_called(void **state)
{
    char *q = malloc(65536);
    size_t n = 0;

    (void)state;
    assert_non_null(q);
    /* Deep nesting: 20 levels of ofType beside a catalog read. */
    put(q, 65536, &n, "{ products { nodes { id } } __type(name: \"Product\") { fields { type {");
    for (int i = 0; i < 20; i++) {
        put(q, 65536, &n, " ofType {");
    }
    put(q, 65536, &n, " name");
    for (int i = 0; i < 22; i++) {
        put(q, 65536, &n, " }");
    }
    put(q, 65536, &n, " } }");
    assert_refused_by_limits("deep nesting", q, "nests deeper than");

    /* An alias flood: the same field under 50 names. */
    n = 0;
    put(q, 65536, &n, "{");
    for (int i = 0; i < 50; i++) {
        put(q, 65536, &n, " p%d: product(id: \"%d\") { name }", i, i + 1);
    }
    put(q, 65536, &n, " }");
    assert_refused_by_limits("alias flood", q, "aliases");

    /* A huge list: a page of a hundred thousand, and every product's stock. */
    assert_refused_by_limits("huge list",
                             "{ products(first: 100000) { nodes { id stock { on_hand } } } }",
                             "estimated cost");
    /* Lists within lists, nine pages of them: each within the modules' page limits. */
    n = 0;
    put(q, 65536, &n, "{");
    for (int i = 0; i < 9; i++) {
        put(q, 65536, &n,
            " o%d: orders(first: 200) { nodes { lines { product { stock { sku } } } "
            "shipments { id } history { step } } }",
            i);
    }
    put(q, 65536, &n, " }");
    assert_refused_by_limits("nested lists", q, "estimated cost");

    /* A fragment bomb: each fragment spreads the one before twice (2^16 fields). */
    n = 0;
    put(q, 65536, &n, "{ categories { ...F16 } } fragment F0 on Category { id }");
    for (int i = 1; i <= 16; i++) {
        put(q, 65536, &n, " fragment F%d on Category { ...F%d ...F%d }", i, i - 1, i - 1);
    }
    assert_refused_by_limits("fragment bomb", q, "selects more than");

    /* And a query over the size limit. */
    n = 0;
    put(q, 65536, &n, "{ products { nodes { id } } }");
    memset(q + n, ' ', 20000);
    q[n + 20000] = '\0';
    assert_refused_by_limits("query size", q, "longer than");
    free(q);
}

static void test_graphql_js_and_graphql_http_accept_the_endpoint(void **state)
{
    char url[128], e_url[160], e_admin[4200], e_alice[4200], e_bob[4200], e_order[128];
    char src[512];
    char *out = malloc(1 << 20);
    char *env[] = {e_url, e_admin, e_alice, e_bob, e_order, NULL};
    char *argv[] = {(char *)node_bin, src, (char *)node_dir, (char *)CLEAVE_SOURCE_DIR, NULL};
    int rc;

    (void)state;
    assert_non_null(out);
    snprintf(url, sizeof(url), "%s/graphql", topo.base_url);
    snprintf(e_url, sizeof(e_url), "GQL_URL=%s", url);
    snprintf(e_admin, sizeof(e_admin), "GQL_TOKEN_ADMIN=%s", topo.token);
    snprintf(e_alice, sizeof(e_alice), "GQL_TOKEN_ALICE=%s", alice);
    snprintf(e_bob, sizeof(e_bob), "GQL_TOKEN_BOB=%s", bob);
    snprintf(e_order, sizeof(e_order), "GQL_ORDER=%s", first_order);
    snprintf(src, sizeof(src), "%s/tests/graphql/graphql_check.mjs", CLEAVE_SOURCE_DIR);
    rc = test_run(node_bin, argv, env, out, 1 << 20);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders_with_their_products_cost_one_catalog_call_per_level),
        cmocka_unit_test(test_a_customer_sees_only_its_own_orders),
        cmocka_unit_test(test_abusive_queries_are_refused_before_any_module_is_called),
    };
    const struct CMUnitTest node_tests[] = {
        cmocka_unit_test(test_graphql_js_and_graphql_http_accept_the_endpoint),
    };
    int failed;

    if (argc < 2) {
        fprintf(stderr, "usage: %s TOPOLOGY [NODE NODE_DIR]\n", argv[0]);
        return 2;
    }
    topology_name = argv[1];
    node_bin = argc > 3 ? argv[2] : NULL;
    node_dir = argc > 3 ? argv[3] : NULL;
    if (setup(NULL) != 0) {
        teardown(NULL);
        return 1;
    }
    failed = cmocka_run_group_tests_name(topology_name, tests, NULL, NULL);
    if (node_bin != NULL) {
        failed += cmocka_run_group_tests_name("graphql-js", node_tests, NULL, NULL);
    }
    return teardown(NULL) != 0 || failed != 0;
}
