/*
 * End to end: the real `cleave serve` on a free port with a seeded throwaway data
 * directory, driven over real HTTP. The topology (argv[1]) decides which processes
 * serve; the assertions are the same for every topology.
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
    return topology_start(&topo, topology_name, 1);
}

static int teardown(void **state)
{
    (void)state;
    /* Exit status 0 after SIGTERM: the graceful shutdown worked. */
    return topology_stop(&topo);
}

static void req(const char *method, const char *path, const char *body, test_resp *r)
{
    assert_int_equal(test_http(topo.base_url, method, path, body, body ? strlen(body) : 0, NULL, r),
                     0);
}

static void req_h(const char *method, const char *path, const char *body,
                  const char *const *headers, test_resp *r)
{
    assert_int_equal(
        test_http(topo.base_url, method, path, body, body ? strlen(body) : 0, headers, r), 0);
}

/* After any bad request the server must still answer. */
static void assert_still_serving(void)
{
    test_resp r;

    req("GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
}

static const char *problem_param(const test_resp *r)
{
    json_t *params = json_object_get(r->json, "invalid_params");
    return json_string_value(json_object_get(json_array_get(params, 0), "name"));
}

static void test_health_and_readiness(void **state)
{
    test_resp r;

    (void)state;
    req("GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    req("GET", "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ready");
    test_resp_free(&r);
}

static void test_pages_cover_whole_catalog_without_overlap(void **state)
{
    char path[1024] = "/api/v1/products?limit=5";
    int64_t last = 0;
    int pages = 0, total = 0;

    (void)state;
    for (;;) {
        test_resp r;
        json_t *items, *cursor;
        size_t i;

        req("GET", path, NULL, &r);
        assert_int_equal(r.status, 200);
        items = json_object_get(r.json, "items");
        cursor = json_object_get(r.json, "next_cursor");
        assert_true(json_is_array(items));
        if (json_is_string(cursor)) {
            assert_int_equal(json_array_size(items), 5);
        }
        for (i = 0; i < json_array_size(items); i++) {
            int64_t id = json_integer_value(json_object_get(json_array_get(items, i), "id"));
            /* Strictly ascending across pages: no overlap, nothing repeated. */
            assert_true(id > last);
            last = id;
            total++;
        }
        pages++;
        if (!json_is_string(cursor)) {
            test_resp_free(&r);
            break;
        }
        snprintf(path, sizeof(path), "/api/v1/products?limit=5&cursor=%s",
                 json_string_value(cursor));
        test_resp_free(&r);
        assert_true(pages < 10000);
    }
    assert_true(total >= 1000);
    assert_int_equal(pages, (total + 4) / 5);
}

static void test_filters_and_categories(void **state)
{
    test_resp r, c;
    const char *cat;

    (void)state;
    req("GET", "/api/v1/categories", NULL, &c);
    assert_int_equal(c.status, 200);
    assert_true(json_array_size(json_object_get(c.json, "items")) >= 5);
    cat = json_string_value(
        json_object_get(json_array_get(json_object_get(c.json, "items"), 0), "id"));
    assert_non_null(cat);
    {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/products?limit=50&category=%s", cat);
        req("GET", path, NULL, &r);
    }
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.json, "items")) > 0);
    for (size_t i = 0; i < json_array_size(json_object_get(r.json, "items")); i++) {
        json_t *p = json_array_get(json_object_get(r.json, "items"), i);
        assert_string_equal(json_string_value(json_object_get(p, "category")), cat);
    }
    test_resp_free(&r);
    test_resp_free(&c);
}

static void test_create_get_update_with_etags(void **state)
{
    test_resp r;
    char path[256], if_match[80], stale[80];
    const char *h_match[] = {if_match, NULL};
    const char *h_stale[] = {stale, NULL};

    (void)state;
    req("POST", "/api/v1/products",
        "{\"sku\":\"E2E-1\",\"name\":\"End to end mug\",\"price\":{\"amount\":1250,"
        "\"currency\":\"EUR\"},\"category\":\"kitchen\",\"tags\":[\"mug\"]}",
        &r);
    assert_int_equal(r.status, 201);
    assert_true(strncmp(r.location, "/api/v1/products/", 17) == 0);
    assert_string_equal(r.etag, "\"1\"");
    snprintf(path, sizeof(path), "%s", r.location);
    snprintf(stale, sizeof(stale), "If-Match: %s", r.etag);
    test_resp_free(&r);

    req("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "sku")), "E2E-1");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r.json, "price"), "amount")), 1250);
    snprintf(if_match, sizeof(if_match), "If-Match: %s", r.etag);
    test_resp_free(&r);

    /* Same SKU again: conflict. */
    req("POST", "/api/v1/products",
        "{\"sku\":\"E2E-1\",\"name\":\"Again\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\"}",
        &r);
    assert_true(test_is_problem(&r, 409));
    test_resp_free(&r);

    req_h("PATCH", path, "{\"name\":\"Renamed mug\"}", h_match, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "\"2\"");
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "Renamed mug");
    assert_string_equal(json_string_value(json_object_get(r.json, "sku")), "E2E-1");
    test_resp_free(&r);

    /* The old ETag is stale now: the lost update is refused. */
    req_h("PATCH", path, "{\"name\":\"Lost update\"}", h_stale, &r);
    assert_true(test_is_problem(&r, 412));
    test_resp_free(&r);

    req("PATCH", path, "{\"name\":\"No precondition\"}", &r);
    assert_true(test_is_problem(&r, 428));
    test_resp_free(&r);

    req("GET", "/api/v1/products/999999999", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
}

static void test_malformed_json_is_400(void **state)
{
    test_resp r;

    (void)state;
    req("POST", "/api/v1/products", "{\"sku\": \"X\",", &r);
    assert_true(test_is_problem(&r, 400));
    test_resp_free(&r);
    assert_still_serving();
}

static void test_oversized_body_is_413(void **state)
{
    size_t n = (size_t)2 * 1024 * 1024;
    char *big = malloc(n + 1);
    test_resp r;

    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    assert_int_equal(test_http(topo.base_url, "POST", "/api/v1/products", big, n, NULL, &r), 0);
    free(big);
    assert_true(test_is_problem(&r, 413));
    test_resp_free(&r);
    assert_still_serving();
}

static void test_wrong_content_type_is_415(void **state)
{
    const char *h[] = {"Content-Type: text/plain", NULL};
    test_resp r;

    (void)state;
    req_h("POST", "/api/v1/products", "{}", h, &r);
    assert_true(test_is_problem(&r, 415));
    test_resp_free(&r);
    assert_still_serving();
}

static void test_unknown_route_is_404_and_wrong_method_405(void **state)
{
    test_resp r;

    (void)state;
    req("GET", "/api/v1/nothing-here", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
    req("DELETE", "/api/v1/products", NULL, &r);
    assert_true(test_is_problem(&r, 405));
    assert_non_null(strstr(r.allow, "GET"));
    assert_non_null(strstr(r.allow, "POST"));
    test_resp_free(&r);
    assert_still_serving();
}

static void test_bad_cursor_and_limits_are_400(void **state)
{
    static const char *const paths[] = {
        "/api/v1/products?cursor=not-a-cursor",
        "/api/v1/products?limit=0",
        "/api/v1/products?limit=101",
        "/api/v1/products?limit=abc",
        "/api/v1/products?limit=-3",
        /* Malformed, unparsable or undeclared: never ignored, always named. */
        "/api/v1/products?cursor=%%%garbage",
        "/api/v1/products?limit=%ZZ",
        "/api/v1/products?limit=5%00",
        "/api/v1/products?limit=+5",
        "/api/v1/products?limit=%205",
        "/api/v1/products?limit=5&limit=6",
        "/api/v1/products?limti=5",
        "/api/v1/products?limit=99999999999999999999999",
    };
    static const char *const fields[] = {"cursor", "limit", "limit", "limit", "limit",
                                         "cursor", "limit", "limit", "limit", "limit",
                                         "limit",  "limti", "limit"};
    test_resp r;

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        req("GET", paths[i], NULL, &r);
        assert_true(test_is_problem(&r, 400));
        assert_string_equal(problem_param(&r), fields[i]);
        test_resp_free(&r);
    }
    assert_still_serving();
}

/* HEAD is GET without the body: same status and content type, for every kind of GET route. */
static void test_head_answers_like_get(void **state)
{
    static const char *const paths[] = {
        "/healthz",
        "/readyz",
        "/api/v1/products?limit=2",
        "/api/v1/products/1",
        "/api/v1/categories",
        "/api/v1/products/999999",
        "/api/v1/products?limit=0",
    };
    test_resp get;
    test_resp head;

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        req("GET", paths[i], NULL, &get);
        req("HEAD", paths[i], NULL, &head);
        assert_int_equal(head.status, get.status);
        assert_int_equal(head.body_len, 0);
        assert_string_equal(head.content_type, get.content_type);
        test_resp_free(&get);
        test_resp_free(&head);
    }
    assert_still_serving();
}

static void test_wrong_field_types_name_the_field(void **state)
{
    static const char *const bodies[] = {
        "{\"sku\":\"T-1\",\"name\":\"n\",\"price\":{\"amount\":\"12\",\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\"}",
        "{\"sku\":42,\"name\":\"n\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\"}",
        "{\"sku\":\"T-2\",\"name\":\"n\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\",\"tags\":[1]}",
        "{\"sku\":\"T-3\",\"name\":\"n\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\",\"colour\":\"red\"}",
        "{\"sku\":\"T-4\",\"name\":\"n\",\"price\":{\"amount\":-1,\"currency\":\"EUR\"},"
        "\"category\":\"kitchen\"}",
        "[1,2,3]",
    };
    static const char *const fields[] = {"price.amount", "sku",          "tags[0]",
                                         "colour",       "price.amount", NULL};
    test_resp r;

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        req("POST", "/api/v1/products", bodies[i], &r);
        assert_true(test_is_problem(&r, 400));
        if (fields[i] != NULL) {
            assert_non_null(problem_param(&r));
            assert_string_equal(problem_param(&r), fields[i]);
        }
        test_resp_free(&r);
    }
    assert_still_serving();
}

static void test_request_id_is_echoed(void **state)
{
    const char *h[] = {"X-Request-Id: e2e-trace-123", NULL};
    test_resp r;

    (void)state;
    req_h("GET", "/api/v1/products/1", NULL, h, &r);
    assert_string_equal(r.request_id, "e2e-trace-123");
    test_resp_free(&r);
    req("GET", "/api/v1/nope", NULL, &r);
    assert_int_equal(strlen(r.request_id), 32);
    assert_string_equal(json_string_value(json_object_get(r.json, "request_id")), r.request_id);
    test_resp_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_readiness),
        cmocka_unit_test(test_pages_cover_whole_catalog_without_overlap),
        cmocka_unit_test(test_filters_and_categories),
        cmocka_unit_test(test_create_get_update_with_etags),
        cmocka_unit_test(test_malformed_json_is_400),
        cmocka_unit_test(test_oversized_body_is_413),
        cmocka_unit_test(test_wrong_content_type_is_415),
        cmocka_unit_test(test_unknown_route_is_404_and_wrong_method_405),
        cmocka_unit_test(test_bad_cursor_and_limits_are_400),
        cmocka_unit_test(test_head_answers_like_get),
        cmocka_unit_test(test_wrong_field_types_name_the_field),
        cmocka_unit_test(test_request_id_is_echoed),
    };

    if (argc > 1) {
        topology_name = argv[1];
    }
    return cmocka_run_group_tests_name(topology_name, tests, setup, teardown);
}
