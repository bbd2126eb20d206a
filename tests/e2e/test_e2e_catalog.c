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

#include "cleave/status.h"
#include "client.h"
#include "topology.h"

static const char *topology_name = "monolith";
static topology topo;

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, topology_name, TOPOLOGY_SEED_DEMO);
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

/* A removed optional member is answered as null (as one never given), or left out. */
static int removed(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return v == NULL || json_is_null(v);
}

/*
 * PATCH is a JSON merge patch (RFC 7396): null removes the description; a patch that
 * changes nothing answers the product as it is, same version and ETag; a required field
 * cannot be removed.
 */
static void test_merge_patch_null_removes_and_a_no_op_keeps_the_etag(void **state)
{
    test_resp r;
    char path[256], if_match[80];
    const char *h_match[] = {if_match, "Content-Type: application/merge-patch+json", NULL};
    const char *h_any[] = {"If-Match: *", "Content-Type: application/merge-patch+json", NULL};

    (void)state;
    req("POST", "/api/v1/products",
        "{\"sku\":\"E2E-MP\",\"name\":\"Patched mug\",\"description\":\"Blue\",\"price\":"
        "{\"amount\":900,\"currency\":\"EUR\"},\"category\":\"kitchen\",\"tags\":[\"mug\"]}",
        &r);
    assert_int_equal(r.status, 201);
    snprintf(path, sizeof(path), "%s", r.location);
    snprintf(if_match, sizeof(if_match), "If-Match: %s", r.etag);
    test_resp_free(&r);

    req_h("PATCH", path, "{\"description\":null}", h_match, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "\"2\"");
    assert_true(removed(r.json, "description"));
    test_resp_free(&r);
    req("GET", path, NULL, &r);
    assert_true(removed(r.json, "description"));
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "Patched mug");
    test_resp_free(&r);

    /* Nothing changes: removing what is gone, restating the name. */
    req_h("PATCH", path, "{\"description\":null,\"name\":\"Patched mug\"}", h_any, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "\"2\"");
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 2);
    test_resp_free(&r);

    req_h("PATCH", path, "{\"name\":null}", h_any, &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "name");
    test_resp_free(&r);
    req_h("PATCH", path, "{\"clear\":[\"description\"]}", h_any, &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "clear");
    test_resp_free(&r);
}

/* A key longer than CL_IDEMPOTENCY_KEY_MAX is refused naming the header, never cut. */
static void test_overlong_idempotency_key_is_400(void **state)
{
    char key[CL_IDEMPOTENCY_KEY_MAX + 2];
    char header[sizeof(key) + 32];
    const char *h[] = {header, NULL};
    test_resp r;

    (void)state;
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    req_h("POST", "/api/v1/products",
          "{\"sku\":\"E2E-KEY\",\"name\":\"Keyed\",\"price\":{\"amount\":1,"
          "\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
          h, &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "Idempotency-Key");
    test_resp_free(&r);
    /* Refused before it ran: no product was made. */
    req("GET", "/api/v1/products?name_prefix=Keyed", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
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

/* --- caching, validators and sparse fieldsets (ADR 0040) ------------------------------- */

/*
 * A read with its own ETag again: 304 without a body, the same ETag and Cache-Control.
 * Returns the ETag (copied to etag[size]) the first read gave.
 */
static void expect_revalidates_for(const char *path, const char *cache_control, char *etag,
                                   size_t size)
{
    test_resp r;
    char inm[128];
    const char *h[] = {inm, NULL};

    req("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.etag[0] == '"');
    assert_string_equal(r.cache_control, cache_control);
    snprintf(etag, size, "%s", r.etag);
    test_resp_free(&r);
    snprintf(inm, sizeof(inm), "If-None-Match: \"nope\", %s", etag);
    req_h("GET", path, NULL, h, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.etag, etag);
    assert_string_equal(r.cache_control, cache_control);
    test_resp_free(&r);
}

static void expect_revalidates(const char *path, char *etag, size_t size)
{
    expect_revalidates_for(path, "public, max-age=10", etag, size);
}

/* A read with an ETag that is no longer current: 200, a body and a new ETag. */
static void expect_changed(const char *path, const char *old_etag)
{
    test_resp r;
    char inm[128];
    const char *h[] = {inm, NULL};

    snprintf(inm, sizeof(inm), "If-None-Match: %s", old_etag);
    req_h("GET", path, NULL, h, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len > 0);
    assert_true(r.etag[0] == '"');
    assert_string_not_equal(r.etag, old_etag);
    test_resp_free(&r);
}

static void test_catalog_reads_revalidate_until_they_change(void **state)
{
    test_resp r;
    char path[256], if_match[96];
    char product_tag[64], list_tag[64], categories_tag[64];
    const char *h_match[] = {if_match, NULL};
    const char *list = "/api/v1/products?name_prefix=Revalidated&limit=10";

    (void)state;
    req("POST", "/api/v1/products",
        "{\"sku\":\"E2E-CACHE-1\",\"name\":\"Revalidated kettle\",\"price\":{\"amount\":990,"
        "\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
        &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.cache_control, "no-store"); /* a write's answer is not kept */
    snprintf(path, sizeof(path), "%s", r.location);
    test_resp_free(&r);

    expect_revalidates(path, product_tag, sizeof(product_tag));
    assert_string_equal(product_tag, "\"1\""); /* the product's version */
    expect_revalidates(list, list_tag, sizeof(list_tag));
    expect_revalidates("/api/v1/categories", categories_tag, sizeof(categories_tag));

    snprintf(if_match, sizeof(if_match), "If-Match: %s", product_tag);
    req_h("PATCH", path, "{\"name\":\"Revalidated teapot\"}", h_match, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    expect_changed(path, product_tag);
    expect_changed(list, list_tag);

    /* A product more in the category changes its count. */
    req("POST", "/api/v1/products",
        "{\"sku\":\"E2E-CACHE-2\",\"name\":\"Counted cup\",\"price\":{\"amount\":5,"
        "\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
        &r);
    assert_int_equal(r.status, 201);
    test_resp_free(&r);
    expect_changed("/api/v1/categories", categories_tag);

    /* Errors are never kept. */
    req("GET", "/api/v1/products/999999999", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    assert_string_equal(r.cache_control, "no-store");
    assert_string_equal(r.etag, "");
    test_resp_free(&r);
}

/* The identity provider's public documents revalidate; a caller's own data is never kept. */
static void test_identity_documents_revalidate_and_per_user_answers_are_not_kept(void **state)
{
    test_resp r;
    char etag[64];

    (void)state;
    expect_revalidates_for("/oauth2/jwks", "public, max-age=300", etag, sizeof(etag));
    expect_revalidates_for("/.well-known/openid-configuration", "public, max-age=300", etag,
                           sizeof(etag));
    req("GET", "/oauth2/userinfo", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.cache_control, "no-store");
    assert_string_equal(r.etag, "");
    test_resp_free(&r);
}

static void test_malformed_if_none_match_is_400(void **state)
{
    test_resp r;
    const char *h[] = {"If-None-Match: 1", NULL};

    (void)state;
    req_h("GET", "/api/v1/products/1", NULL, h, &r);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "If-None-Match");
    test_resp_free(&r);
    assert_still_serving();
}

/* Whether obj has exactly the members named in names (NULL-terminated). */
static int has_exactly(const json_t *obj, const char *const *names)
{
    size_t n = 0;

    for (; names[n] != NULL; n++) {
        if (json_object_get(obj, names[n]) == NULL) {
            return 0;
        }
    }
    return json_object_size(obj) == n;
}

static void test_fields_select_top_level_product_fields(void **state)
{
    test_resp r;
    char inm[96];
    const char *h_inm[] = {inm, NULL};
    const char *id_name_price[] = {"id", "name", "price", NULL};
    const char *id_sku[] = {"id", "sku", NULL};
    json_t *items;

    (void)state;
    req("GET", "/api/v1/products/1?fields=name,price", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_exactly(r.json, id_name_price));
    /* The version still tags it, and revalidates it. */
    snprintf(inm, sizeof(inm), "If-None-Match: %s", r.etag);
    test_resp_free(&r);
    req_h("GET", "/api/v1/products/1?fields=name,price", NULL, h_inm, &r);
    assert_int_equal(r.status, 304);
    test_resp_free(&r);

    req("GET", "/api/v1/products?limit=3&fields=sku,id", NULL, &r);
    assert_int_equal(r.status, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 3);
    for (size_t i = 0; i < json_array_size(items); i++) {
        assert_true(has_exactly(json_array_get(items, i), id_sku));
    }
    assert_true(json_is_string(json_object_get(r.json, "next_cursor")));
    test_resp_free(&r);
}

static void test_unknown_or_empty_fields_are_400(void **state)
{
    static const char *const paths[] = {
        "/api/v1/products/1?fields=name,bogus",
        "/api/v1/products?fields=bogus",
        "/api/v1/products/1?fields=",
        "/api/v1/products?fields=name,,price",
        "/api/v1/products/1?fields=price.amount",
    };
    test_resp r;

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        req("GET", paths[i], NULL, &r);
        if (!test_is_problem(&r, 400)) {
            fail_msg("%s: %ld %s", paths[i], r.status, r.body);
        }
        assert_string_equal(problem_param(&r), "fields");
        assert_string_equal(r.cache_control, "no-store");
        test_resp_free(&r);
    }
    req("GET", paths[0], NULL, &r);
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "detail")), "\"bogus\""));
    test_resp_free(&r);
}

/*
 * Through the whole stack with gzip, decoded by curl's own zlib: a gzipped answer has its
 * own strong ETag, which revalidates it and serves If-Match on PATCH like the plain one.
 */
static void test_gzipped_reads_revalidate_and_their_etag_updates(void **state)
{
    test_resp r;
    char body[2600], path[256], tag[64], inm[96], if_match[96];
    const char *h_gzip[] = {"Accept-Encoding: gzip", NULL};
    const char *h_inm[] = {"Accept-Encoding: gzip", inm, NULL};
    const char *h_match[] = {if_match, NULL};
    char description[2001];

    (void)state;
    memset(description, 'd', sizeof(description) - 1);
    description[sizeof(description) - 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"sku\":\"E2E-GZIP-1\",\"name\":\"Long mug\",\"description\":\"%s\","
             "\"price\":{\"amount\":700,\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
             description);
    req("POST", "/api/v1/products", body, &r);
    assert_int_equal(r.status, 201);
    snprintf(path, sizeof(path), "%s", r.location);
    test_resp_free(&r);

    req_h("GET", path, NULL, h_gzip, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_encoding, "gzip");
    assert_string_equal(r.vary, "Accept-Encoding");
    assert_string_equal(r.etag, "\"1-gzip\"");
    assert_string_equal(json_string_value(json_object_get(r.json, "description")), description);
    snprintf(tag, sizeof(tag), "%s", r.etag);
    test_resp_free(&r);
    snprintf(inm, sizeof(inm), "If-None-Match: %s", tag);
    req_h("GET", path, NULL, h_inm, &r);
    assert_int_equal(r.status, 304);
    test_resp_free(&r);

    snprintf(if_match, sizeof(if_match), "If-Match: %s", tag);
    req_h("PATCH", path, "{\"name\":\"Longer mug\"}", h_match, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "\"2\"");
    test_resp_free(&r);

    req_h("GET", "/api/v1/products?limit=50", NULL, h_gzip, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_encoding, "gzip");
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 50);
    test_resp_free(&r);
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
        cmocka_unit_test(test_merge_patch_null_removes_and_a_no_op_keeps_the_etag),
        cmocka_unit_test(test_overlong_idempotency_key_is_400),
        cmocka_unit_test(test_malformed_json_is_400),
        cmocka_unit_test(test_oversized_body_is_413),
        cmocka_unit_test(test_wrong_content_type_is_415),
        cmocka_unit_test(test_unknown_route_is_404_and_wrong_method_405),
        cmocka_unit_test(test_bad_cursor_and_limits_are_400),
        cmocka_unit_test(test_head_answers_like_get),
        cmocka_unit_test(test_wrong_field_types_name_the_field),
        cmocka_unit_test(test_request_id_is_echoed),
        cmocka_unit_test(test_catalog_reads_revalidate_until_they_change),
        cmocka_unit_test(test_identity_documents_revalidate_and_per_user_answers_are_not_kept),
        cmocka_unit_test(test_malformed_if_none_match_is_400),
        cmocka_unit_test(test_fields_select_top_level_product_fields),
        cmocka_unit_test(test_unknown_or_empty_fields_are_400),
        cmocka_unit_test(test_gzipped_reads_revalidate_and_their_etag_updates),
    };

    if (argc > 1) {
        topology_name = argv[1];
    }
    return cmocka_run_group_tests_name(topology_name, tests, setup, teardown);
}
