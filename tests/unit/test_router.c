/* The router: patterns, matching, parameters, 404 versus 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../platform/http/http_internal.h"
#include "cleave/http.h"

static void handler_a(cl_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
}

static void handler_b(cl_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
}

static int setup(void **state)
{
    cl_router *r = cl_router_new();
    static int tag_get;
    const cl_route routes[] = {
        {"GET", "/api/v1/products", "catalog:read", handler_a, NULL,
         "category tag name_prefix cursor limit"},
        {"POST", "/api/v1/products", "catalog:write", handler_b, NULL, NULL},
        {"GET", "/api/v1/products/{id}", "catalog:read", handler_a, &tag_get, NULL},
        {"DELETE", "/api/v1/products/{id}", "catalog:write", handler_b, NULL, NULL},
        {"GET", "/api/v1/products/new", "catalog:read", handler_b, NULL, NULL},
        {"GET", "/api/v1/orders/{order}/items/{item}", "orders:read", handler_a, NULL, NULL},
        {"GET", "/", CL_PERM_PUBLIC, handler_a, NULL, NULL},
        {"GET", "/healthz", CL_PERM_PUBLIC, handler_a, NULL, NULL},
    };

    assert_non_null(r);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        cl_error err;
        assert_int_equal(cl_router_add(r, &routes[i], &err), CL_OK);
    }
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    cl_router_free(*state);
    return 0;
}

static void test_router_matches_literal_route(void **state)
{
    cl_route_match m;

    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products", &m, NULL, 0),
                     CL_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/api/v1/products");
    assert_string_equal(m.route->permission, "catalog:read");
    assert_int_equal(m.nparams, 0);
    assert_int_equal(cl_router_match(*state, "GET", "/", &m, NULL, 0), CL_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/");
}

static void test_router_matches_params(void **state)
{
    cl_route_match m;

    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/42", &m, NULL, 0),
                     CL_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/api/v1/products/{id}");
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "id");
    assert_string_equal(m.values[0], "42");

    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/orders/o-1/items/i-2", &m, NULL, 0),
                     CL_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "order");
    assert_string_equal(m.values[0], "o-1");
    assert_string_equal(m.names[1], "item");
    assert_string_equal(m.values[1], "i-2");
}

static void test_router_percent_decodes_params(void **state)
{
    cl_route_match m;

    assert_int_equal(
        cl_router_match(*state, "GET", "/api/v1/products/a%2Fb%20c%25d+e", &m, NULL, 0),
        CL_ROUTE_FOUND);
    /* '+' is only a space in query strings, never in paths. */
    assert_string_equal(m.values[0], "a/b c%d+e");
    /* Malformed escapes and encoded NULs never reach a handler. */
    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/a%2", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/a%zz", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/a%00", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
}

static void test_router_prefers_literal_over_param(void **state)
{
    cl_route_match m;

    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/new", &m, NULL, 0),
                     CL_ROUTE_FOUND);
    assert_string_equal(m.route->pattern, "/api/v1/products/new");
    assert_int_equal(m.nparams, 0);
    assert_ptr_equal(m.route->handler, handler_b);
}

static void test_router_not_found_for_unknown_path(void **state)
{
    cl_route_match m;
    char allow[64] = "junk";

    assert_int_equal(cl_router_match(*state, "GET", "/nope", &m, allow, sizeof(allow)),
                     CL_ROUTE_NOT_FOUND);
    assert_string_equal(allow, "");
    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(*state, "GET", "/api/v1/products/1/x", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(*state, "GET", "api/v1/products", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(*state, "GET", "/API/v1/products", &m, NULL, 0),
                     CL_ROUTE_NOT_FOUND);
}

static void test_router_bad_method_lists_allow(void **state)
{
    cl_route_match m;
    char allow[64];

    assert_int_equal(cl_router_match(*state, "PUT", "/api/v1/products", &m, allow, sizeof(allow)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, POST");
    assert_int_equal(
        cl_router_match(*state, "PATCH", "/api/v1/products/7", &m, allow, sizeof(allow)),
        CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    /* /products/new matches both the literal GET and the {id} routes: methods once each. */
    assert_int_equal(
        cl_router_match(*state, "POST", "/api/v1/products/new", &m, allow, sizeof(allow)),
        CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    /* An allow buffer too small is truncated, never overrun. */
    char tiny[6];
    assert_int_equal(cl_router_match(*state, "PUT", "/api/v1/products", &m, tiny, sizeof(tiny)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(tiny, "GET, ");
}

static void expect_refused(const char *method, const char *pattern, const char *permission,
                           cl_http_handler handler, const char *field)
{
    cl_router *r = cl_router_new();
    cl_route route = {method, pattern, permission, handler, NULL, NULL};
    cl_error err;

    assert_non_null(r);
    cl_error_clear(&err);
    assert_int_equal(cl_router_add(r, &route, &err), CL_INVALID);
    assert_int_equal(err.status, CL_INVALID);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 0);
    assert_int_equal(cl_router_count(r), 0);
    cl_router_free(r);
}

static void test_router_refuses_bad_patterns(void **state)
{
    static const char *const bad[] = {
        "",
        "products",
        "/products/",
        "//products",
        "/products//x",
        "/{",
        "/{}",
        "/{id",
        "/id}",
        "/x{id}",
        "/{id}x",
        "/{1d}",
        "/{i-d}",
        "/{id}/{id}",
        "/a b",
        "/a%20b",
        "/a?b",
        "/a#b",
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("GET", bad[i], CL_PERM_PUBLIC, handler_a, "pattern");
    }
    expect_refused("GET", NULL, CL_PERM_PUBLIC, handler_a, "pattern");
}

static void test_router_refuses_unknown_method(void **state)
{
    (void)state;
    expect_refused("BREW", "/pot", CL_PERM_PUBLIC, handler_a, "method");
    expect_refused("get", "/pot", CL_PERM_PUBLIC, handler_a, "method");
    expect_refused(NULL, "/pot", CL_PERM_PUBLIC, handler_a, "method");
}

static void test_router_refuses_missing_permission(void **state)
{
    (void)state;
    expect_refused("GET", "/x", NULL, handler_a, "permission");
    expect_refused("GET", "/x", "", handler_a, "permission");
    expect_refused("GET", "/x", "p", NULL, "handler");
}

static void test_router_refuses_duplicates(void **state)
{
    cl_router *r = *state;
    cl_route same = {"GET",          "/api/v1/products",
                     "catalog:read", handler_b,
                     NULL,           "category tag name_prefix cursor limit"};
    /* Same shape with another parameter name would be ambiguous too. */
    cl_route renamed = {"GET", "/api/v1/products/{sku}", "catalog:read", handler_b, NULL, NULL};
    cl_route other_method = {"PUT", "/api/v1/products/{sku}", "catalog:write", handler_b, NULL,
                             NULL};
    cl_error err;
    size_t before = cl_router_count(r);

    assert_int_equal(cl_router_add(r, &same, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "already"));
    assert_int_equal(cl_router_add(r, &renamed, &err), CL_INVALID);
    assert_int_equal(cl_router_count(r), before);
    assert_int_equal(cl_router_add(r, &other_method, &err), CL_OK);
    assert_int_equal(cl_router_count(r), before + 1);
}

static void test_router_count_and_at(void **state)
{
    cl_router *r = *state;
    const cl_route *first;
    const cl_route *third;

    assert_int_equal(cl_router_count(r), 8);
    first = cl_router_at(r, 0);
    assert_non_null(first);
    assert_string_equal(first->method, "GET");
    assert_string_equal(first->pattern, "/api/v1/products");
    third = cl_router_at(r, 2);
    assert_string_equal(third->pattern, "/api/v1/products/{id}");
    assert_non_null(third->arg);
    assert_null(cl_router_at(r, 8));
    assert_int_equal(cl_router_count(NULL), 0);
    assert_null(cl_router_at(NULL, 0));
}

static void test_router_copies_route_strings(void **state)
{
    cl_router *r = cl_router_new();
    char method[] = "GET";
    char pattern[] = "/copied/{x}";
    char perm[] = "p:q";
    cl_route route = {method, pattern, perm, handler_a, NULL, NULL};
    cl_route_match m;
    cl_error err;

    (void)state;
    assert_int_equal(cl_router_add(r, &route, &err), CL_OK);
    memset(method, 'X', 3);
    memset(pattern, 'X', sizeof(pattern) - 1);
    memset(perm, 'X', 3);
    assert_int_equal(cl_router_match(r, "GET", "/copied/1", &m, NULL, 0), CL_ROUTE_FOUND);
    assert_string_equal(m.route->permission, "p:q");
    assert_string_equal(m.route->pattern, "/copied/{x}");
    cl_router_free(r);
    cl_router_free(NULL);
}

static void test_router_add_all_stops_at_the_first_refused_route(void **state)
{
    const cl_route routes[] = {
        {"GET", "/a", CL_PERM_PUBLIC, handler_a, NULL, NULL},
        {"GET", "/b", "", handler_b, NULL, NULL}, /* no permission: refused */
        {"GET", "/c", CL_PERM_PUBLIC, handler_a, NULL, NULL},
    };
    cl_router *r = cl_router_new();
    cl_error err;

    (void)state;
    assert_non_null(r);
    assert_int_equal(cl_router_add_all(r, routes, 3, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "/b"));
    assert_int_equal(cl_router_count(r), 1);
    assert_int_equal(cl_router_add_all(r, &routes[2], 1, &err), CL_OK);
    assert_int_equal(cl_router_count(r), 2);
    cl_router_free(r);
}

/* HEAD is served by the GET route of every path that has one, and listed in Allow. */
static void test_router_head_matches_every_get_route(void **state)
{
    cl_router *r = *state;
    size_t checked = 0;

    for (size_t i = 0; i < cl_router_count(r); i++) {
        const cl_route *route = cl_router_at(r, i);
        char path[256];
        size_t o = 0;
        cl_route_match m;

        if (strcmp(route->method, "GET") != 0) {
            continue;
        }
        /* A concrete path for the pattern: each {param} becomes "x1". */
        for (const char *p = route->pattern; *p != '\0' && o + 3 < sizeof(path); p++) {
            if (*p == '{') {
                p = strchr(p, '}');
                path[o++] = 'x';
                path[o++] = '1';
            } else {
                path[o++] = *p;
            }
        }
        path[o] = '\0';
        if (cl_router_match(r, "HEAD", path, &m, NULL, 0) != CL_ROUTE_FOUND) {
            fail_msg("HEAD %s (route GET %s) is not served", path, route->pattern);
        }
        /* The very route GET finds, not just any route. */
        cl_route_match g;
        assert_int_equal(cl_router_match(r, "GET", path, &g, NULL, 0), CL_ROUTE_FOUND);
        assert_ptr_equal(m.route, g.route);
        checked++;
    }
    assert_true(checked >= 5);
}

static void test_router_allow_lists_head_with_get(void **state)
{
    cl_route_match m;
    char allow[64];

    assert_int_equal(cl_router_match(*state, "PUT", "/api/v1/products/7", &m, allow, sizeof(allow)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    /* HEAD on a path no route has is a 404, like GET. */
    assert_int_equal(cl_router_match(*state, "HEAD", "/nope", &m, NULL, 0), CL_ROUTE_NOT_FOUND);
}

static void test_router_refuses_malformed_query_declarations(void **state)
{
    static const char *const bad[] = {
        "limit limit",
        "1abc",
        "a-b",
        "ok b%d",
        "a,b",
        "q1 q2 q3 q4 q5 q6 q7 q8 q9 q10 q11 q12 q13 q14 q15 q16 q17",
        "a123456789012345678901234567890123456789012345678901234567890123",
    };
    cl_router *r = cl_router_new();
    cl_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_route route = {"GET", "/q", CL_PERM_PUBLIC, handler_a, NULL, bad[i]};
        assert_int_equal(cl_router_add(r, &route, &err), CL_INVALID);
        assert_string_equal(err.field, "query");
    }
    cl_route ok = {"GET", "/q", CL_PERM_PUBLIC, handler_a, NULL, " cursor  limit name_prefix "};
    assert_int_equal(cl_router_add(r, &ok, &err), CL_OK);
    assert_string_equal(cl_router_at(r, 0)->query, " cursor  limit name_prefix ");
    cl_router_free(r);
}

/* A router of the given routes (all handler_a); fails the test when one is refused. */
static cl_router *router_of(const char *const (*routes)[2], size_t n)
{
    cl_router *r = cl_router_new();
    cl_error err;

    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        cl_route route = {routes[i][0], routes[i][1], CL_PERM_PUBLIC, handler_a, NULL, NULL};
        assert_int_equal(cl_router_add(r, &route, &err), CL_OK);
    }
    return r;
}

static const char *found_pattern(const cl_router *r, const char *method, const char *path)
{
    cl_route_match m;

    if (cl_router_match(r, method, path, &m, NULL, 0) != CL_ROUTE_FOUND) {
        fail_msg("%s %s: not found", method, path);
    }
    return m.route->pattern;
}

/* A literal segment that leads nowhere gives way to the parameter beside it. */
static void test_router_backtracks_from_a_literal_dead_end(void **state)
{
    static const char *const routes[][2] = {
        {"GET", "/a/b/c"},
        {"GET", "/a/{x}/d"},
        {"GET", "/a/b"},
    };
    cl_router *r = router_of(routes, sizeof(routes) / sizeof(routes[0]));
    cl_route_match m;

    (void)state;
    assert_string_equal(found_pattern(r, "GET", "/a/b/c"), "/a/b/c");
    assert_string_equal(found_pattern(r, "GET", "/a/b/d"), "/a/{x}/d");
    assert_int_equal(cl_router_match(r, "GET", "/a/b/d", &m, NULL, 0), CL_ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.values[0], "b");
    assert_string_equal(found_pattern(r, "GET", "/a/b"), "/a/b");
    assert_int_equal(cl_router_match(r, "GET", "/a/c", &m, NULL, 0), CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(r, "GET", "/a/b/e", &m, NULL, 0), CL_ROUTE_NOT_FOUND);
    cl_router_free(r);
}

/* Parameters at different depths: the first literal where the other has one wins. */
static void test_router_params_at_different_depths(void **state)
{
    static const char *const routes[][2] = {
        {"GET", "/{p}/x/{q}"},
        {"GET", "/k/{p}/{q}"},
        {"GET", "/k/y/{q}"},
        {"GET", "/{p}/{q}/z"},
    };
    cl_router *r = router_of(routes, sizeof(routes) / sizeof(routes[0]));
    cl_route_match m;

    (void)state;
    assert_string_equal(found_pattern(r, "GET", "/k/y/w"), "/k/y/{q}");
    assert_string_equal(found_pattern(r, "GET", "/k/w/w"), "/k/{p}/{q}");
    /* /k/x/z matches all four: k is a literal at the first segment in two, y is not x. */
    assert_string_equal(found_pattern(r, "GET", "/k/x/z"), "/k/{p}/{q}");
    assert_string_equal(found_pattern(r, "GET", "/m/x/z"), "/{p}/x/{q}");
    assert_string_equal(found_pattern(r, "GET", "/m/w/z"), "/{p}/{q}/z");
    assert_int_equal(cl_router_match(r, "GET", "/m/x/z", &m, NULL, 0), CL_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "p");
    assert_string_equal(m.values[0], "m");
    assert_string_equal(m.names[1], "q");
    assert_string_equal(m.values[1], "z");
    /* A value that does not decode is no match for a parameter, so the path is not found. */
    assert_int_equal(cl_router_match(r, "GET", "/m/w/%zz", &m, NULL, 0), CL_ROUTE_NOT_FOUND);
    assert_int_equal(cl_router_match(r, "GET", "/m/w/", &m, NULL, 0), CL_ROUTE_NOT_FOUND);
    cl_router_free(r);
}

/* 405 gathers the methods of every matching route, on every branch, in order of adding. */
static void test_router_bad_method_across_branches(void **state)
{
    static const char *const routes[][2] = {
        {"POST", "/a/b"},
        {"GET", "/a/{x}"},
        {"DELETE", "/a/b"},
        {"PUT", "/a/c"},
    };
    cl_router *r = router_of(routes, sizeof(routes) / sizeof(routes[0]));
    char allow[64];

    (void)state;
    assert_int_equal(cl_router_match(r, "PATCH", "/a/b", NULL, allow, sizeof(allow)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "POST, GET, HEAD, DELETE");
    assert_int_equal(cl_router_match(r, "POST", "/a/c", NULL, allow, sizeof(allow)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, PUT");
    /* An unknown method is a 405 too, where the path exists. */
    assert_int_equal(cl_router_match(r, "OPTIONS", "/a/z", NULL, allow, sizeof(allow)),
                     CL_ROUTE_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(cl_router_match(r, "GET", "/a/b/c", NULL, allow, sizeof(allow)),
                     CL_ROUTE_NOT_FOUND);
    assert_string_equal(allow, "");
    assert_int_equal(cl_router_match(r, "GET", "/a", NULL, allow, sizeof(allow)),
                     CL_ROUTE_NOT_FOUND);
    cl_router_free(r);
}

static uint32_t next_random(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

#define AGREE_ROUTES 400
#define AGREE_PATHS  20000

/*
 * Many routes of every shape, and the trie agrees with comparing every route on every
 * path: the same result, route, parameters and Allow list. Segments come from a small
 * alphabet so that paths hit literals, parameters and both; some do not decode.
 */
static void test_router_many_routes_agree_with_the_scan(void **state)
{
    static const char *const methods[] = {"GET",    "POST", "PATCH",  "PUT",
                                          "DELETE", "HEAD", "OPTIONS"};
    static const char *const lits[] = {"a", "b", "c", "api", "v1"};
    static const char *const segs[] = {"a", "b", "c", "api", "v1", "%61", "%zz", "", "x y"};
    cl_router *r = cl_router_new();
    uint32_t seed = 0x2545f491u;
    size_t added = 0;
    size_t found = 0;
    size_t bad_method = 0;

    (void)state;
    assert_non_null(r);
    for (int i = 0; i < AGREE_ROUTES; i++) {
        char pattern[128] = "";
        size_t nseg = next_random(&seed) % 5;
        int nparam = 0;
        cl_route route = {
            methods[next_random(&seed) % 5], pattern, CL_PERM_PUBLIC, handler_a, NULL, NULL};
        cl_error err;

        for (size_t k = 0; k < nseg; k++) {
            size_t o = strlen(pattern);

            if (next_random(&seed) % 3 == 0) {
                snprintf(pattern + o, sizeof(pattern) - o, "/{p%d}", nparam++);
            } else {
                snprintf(pattern + o, sizeof(pattern) - o, "/%s",
                         lits[next_random(&seed) % (sizeof(lits) / sizeof(lits[0]))]);
            }
        }
        if (nseg == 0) {
            strcpy(pattern, "/");
        }
        /* Duplicates come up and are refused; everything else is added. */
        if (cl_router_add(r, &route, &err) == CL_OK) {
            added++;
        } else {
            assert_int_equal(err.status, CL_INVALID);
            assert_string_equal(err.field, "pattern");
        }
    }
    assert_true(added > 100);
    for (int i = 0; i < AGREE_PATHS; i++) {
        char path[128] = "";
        size_t nseg = next_random(&seed) % 6;
        const char *method = methods[next_random(&seed) % (sizeof(methods) / sizeof(methods[0]))];
        cl_route_match mt;
        cl_route_match ms;
        char at[64];
        char as[64];
        cl_route_result rt;
        cl_route_result rs;

        for (size_t k = 0; k < nseg; k++) {
            size_t o = strlen(path);

            snprintf(path + o, sizeof(path) - o, "/%s",
                     segs[next_random(&seed) % (sizeof(segs) / sizeof(segs[0]))]);
        }
        if (nseg == 0) {
            strcpy(path, "/");
        }
        rt = cl_router_match(r, method, path, &mt, at, sizeof(at));
        rs = cl__router_match_scan(r, method, path, &ms, as, sizeof(as));
        if (rt != rs || strcmp(at, as) != 0) {
            fail_msg("%s %s: trie %d [%s], scan %d [%s]", method, path, rt, at, rs, as);
        }
        if (rt == CL_ROUTE_FOUND) {
            found++;
            if (mt.route != ms.route) {
                fail_msg("%s %s: trie %s, scan %s", method, path, mt.route->pattern,
                         ms.route->pattern);
            }
            assert_int_equal(mt.nparams, ms.nparams);
            for (size_t k = 0; k < mt.nparams; k++) {
                assert_string_equal(mt.names[k], ms.names[k]);
                assert_string_equal(mt.values[k], ms.values[k]);
            }
        } else if (rt == CL_ROUTE_BAD_METHOD) {
            bad_method++;
        }
    }
    /* The paths exercised every outcome, not only 404. */
    assert_true(found > 1000);
    assert_true(bad_method > 1000);
    cl_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router_head_matches_every_get_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_allow_lists_head_with_get, setup, teardown),
        cmocka_unit_test(test_router_refuses_malformed_query_declarations),
        cmocka_unit_test_setup_teardown(test_router_matches_literal_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_matches_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_percent_decodes_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_prefers_literal_over_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_not_found_for_unknown_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_bad_method_lists_allow, setup, teardown),
        cmocka_unit_test(test_router_refuses_bad_patterns),
        cmocka_unit_test(test_router_refuses_unknown_method),
        cmocka_unit_test(test_router_refuses_missing_permission),
        cmocka_unit_test_setup_teardown(test_router_refuses_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_count_and_at, setup, teardown),
        cmocka_unit_test(test_router_copies_route_strings),
        cmocka_unit_test(test_router_add_all_stops_at_the_first_refused_route),
        cmocka_unit_test(test_router_backtracks_from_a_literal_dead_end),
        cmocka_unit_test(test_router_params_at_different_depths),
        cmocka_unit_test(test_router_bad_method_across_branches),
        cmocka_unit_test(test_router_many_routes_agree_with_the_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
