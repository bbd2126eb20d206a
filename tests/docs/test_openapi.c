/*
 * docs/openapi.yaml and the router agree: every route the host serves is documented,
 * and every documented operation is served.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host.h"

#define MAX_OPS 128

typedef struct op {
    char method[8];
    char path[256];
    int seen;
} op;

/*
 * Reads the operations under `paths:` from the YAML: a path is a two-space-indented key
 * starting with '/', an operation a four-space-indented HTTP method key below it.
 */
static int read_documented(op *ops)
{
    static const char *const methods[] = {"get", "post", "put", "patch", "delete"};
    FILE *f = fopen(CLEAVE_SOURCE_DIR "/docs/openapi.yaml", "r");
    char line[1024], path[256] = "";
    int in_paths = 0, n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] != ' ' && line[0] != '\n') {
            in_paths = strncmp(line, "paths:", 6) == 0;
            continue;
        }
        if (!in_paths) {
            continue;
        }
        if (strncmp(line, "  /", 3) == 0) {
            char *colon = strrchr(line, ':');
            assert_non_null(colon);
            *colon = '\0';
            if (snprintf(path, sizeof(path), "%s", line + 2) >= (int)sizeof(path)) {
                fail_msg("openapi.yaml: a path longer than %zu bytes: %s", sizeof(path) - 1,
                         line + 2);
            }
            continue;
        }
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            size_t len = strlen(methods[m]);
            if (strncmp(line, "    ", 4) == 0 && strncmp(line + 4, methods[m], len) == 0 &&
                line[4 + len] == ':') {
                assert_true(n < MAX_OPS);
                for (size_t k = 0; k <= len; k++) {
                    ops[n].method[k] = (char)toupper((unsigned char)methods[m][k]);
                }
                snprintf(ops[n].path, sizeof(ops[n].path), "%s", path);
                n++;
            }
        }
    }
    fclose(f);
    return n;
}

static cl_router *build_router(void)
{
    cl_router *r = cl_router_new();
    cl_error err;
    host h;

    memset(&h, 0, sizeof(h));
    assert_non_null(r);
    assert_int_equal(host_health_routes(&h, r, &err), CL_OK);
    assert_int_equal(host_metrics_routes(&h, r, &err), CL_OK);
    /* Only the route is wanted here: nothing renders h's figures. */
    host_metrics_stop(&h);
    assert_int_equal(host_operation_routes(&h, r, &err), CL_OK);
    assert_int_equal(host_graphql_routes(&h, r, &err), CL_OK);
    host_graphql_free(h.graphql);
    for (int i = 0; cl_bindings[i].api != NULL; i++) {
        /* Registering routes never calls an operation: no table needed here. */
        assert_int_equal(cl_bindings[i].api->routes(r, NULL, &err), CL_OK);
    }
    return r;
}

static void test_every_route_is_documented_and_every_documented_route_exists(void **state)
{
    op documented[MAX_OPS];
    int n = read_documented(documented);
    cl_router *r = build_router();

    (void)state;
    assert_true(n >= 7);
    for (size_t i = 0; i < cl_router_count(r); i++) {
        const cl_route *route = cl_router_at(r, i);
        int found = 0;
        for (int j = 0; j < n; j++) {
            if (strcmp(documented[j].method, route->method) == 0 &&
                strcmp(documented[j].path, route->pattern) == 0) {
                documented[j].seen = 1;
                found = 1;
            }
        }
        if (!found) {
            fail_msg("route %s %s is not in docs/openapi.yaml", route->method, route->pattern);
        }
    }
    for (int j = 0; j < n; j++) {
        if (!documented[j].seen) {
            fail_msg("docs/openapi.yaml documents %s %s, which no route serves",
                     documented[j].method, documented[j].path);
        }
    }
    cl_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_is_documented_and_every_documented_route_exists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
