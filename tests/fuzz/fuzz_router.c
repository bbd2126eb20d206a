/*
 * Fuzz target: the router's pattern parsing and path matching.
 *
 * Input: byte 0 picks a mode.
 *   even: byte 1 picks a method; the rest is a request path, matched against the routes
 *         of every module's REST interface and RPC service (as the cleave host has them).
 *   odd:  the rest is lines: method, pattern, query declaration, then request paths. The
 *         route is added to an empty router; when accepted, adding it again must be
 *         refused, and each path is matched against it.
 * A match must fill what it promises: a route, at most CL_ROUTE_MAX_PARAMS decoded values,
 * and the Allow list exactly when the method was wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/rpc.h"
#include "fuzz.h"

static const char *const router_methods[] = {"GET", "HEAD",   "POST",    "PATCH",
                                             "PUT", "DELETE", "OPTIONS", "get"};

static cl_router *router_all;
static cl_handle router_handle; /* the routes keep it; nothing is called through it */
static cl_rpc_service router_rpc[32];

static void router_noop(cl_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
}

static void router_init(void)
{
    cl_error err;
    size_t n = 0;

    router_all = cl_router_new();
    FUZZ_CHECK(router_all != NULL);
    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        const cl_module_api *api = fuzz_modules[m];

        FUZZ_CHECK(api->routes(router_all, &router_handle, &err) == CL_OK);
        FUZZ_CHECK(n < sizeof(router_rpc) / sizeof(router_rpc[0]));
        router_rpc[n] = (cl_rpc_service){.api = api, .module = &router_handle};
        FUZZ_CHECK(cl_rpc_routes(router_all, &router_rpc[n], &err) == CL_OK);
        n++;
    }
}

static void router_check_match(const cl_router *r, const char *method, const char *path)
{
    cl_route_match m;
    char allow[128];
    cl_route_result res = cl_router_match(r, method, path, &m, allow, sizeof(allow));

    FUZZ_CHECK(strlen(allow) < sizeof(allow));
    switch (res) {
    case CL_ROUTE_FOUND:
        FUZZ_CHECK(m.route != NULL && m.nparams <= CL_ROUTE_MAX_PARAMS);
        FUZZ_CHECK(allow[0] == '\0');
        for (size_t i = 0; i < m.nparams; i++) {
            FUZZ_CHECK(m.names[i] != NULL && m.names[i][0] != '\0');
            FUZZ_CHECK(memchr(m.values[i], '\0', sizeof(m.values[i])) != NULL);
            FUZZ_CHECK(strstr(m.route->pattern, m.names[i]) != NULL);
        }
        break;
    case CL_ROUTE_BAD_METHOD:
        FUZZ_CHECK(allow[0] != '\0');
        break;
    case CL_ROUTE_NOT_FOUND:
        FUZZ_CHECK(allow[0] == '\0');
        break;
    default:
        fuzz_fail(__FILE__, __LINE__, "an unknown route result");
    }
}

static void router_one_route(const uint8_t *data, size_t size)
{
    char *method = fuzz_line(&data, &size);
    char *pattern = fuzz_line(&data, &size);
    char *query = fuzz_line(&data, &size);
    cl_route route = {method,      pattern, "fuzz:read",
                      router_noop, NULL,    query[0] != '\0' ? query : NULL};
    cl_router *r = cl_router_new();
    cl_error err;

    FUZZ_CHECK(r != NULL);
    if (cl_router_add(r, &route, &err) == CL_OK) {
        FUZZ_CHECK(cl_router_count(r) == 1);
        FUZZ_CHECK(strcmp(cl_router_at(r, 0)->pattern, pattern) == 0);
        /* Two routes of one shape would make matching ambiguous. */
        FUZZ_CHECK(cl_router_add(r, &route, &err) == CL_INVALID);
        FUZZ_CHECK(cl_router_count(r) == 1);
        /* Its own pattern is a path of its shape where it has no parameter. */
        router_check_match(r, method, pattern);
        while (size > 0) {
            char *path = fuzz_line(&data, &size);

            router_check_match(r, method, path);
            router_check_match(r, "HEAD", path);
            free(path);
        }
    } else {
        FUZZ_CHECK(err.status == CL_INVALID && err.message[0] != '\0');
        FUZZ_CHECK(cl_router_count(r) == 0);
    }
    cl_router_free(r);
    free(query);
    free(pattern);
    free(method);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (router_all == NULL) {
        router_init();
    }
    if (size < 2) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        const char *method = router_methods[data[1] % (sizeof(router_methods) / sizeof(char *))];
        char *path = fuzz_cstr(data + 2, size - 2);

        router_check_match(router_all, method, path);
        free(path);
    } else {
        router_one_route(data + 1, size - 1);
    }
    return 0;
}
