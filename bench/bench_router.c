/*
 * Route lookup (ADR 0041): the router's trie against comparing the path with every route
 * in turn (the scan it replaced, kept as cl__router_match_scan), on the gateway's real
 * route table: health and metrics, every module's REST routes and RPC route, the
 * long-running operations and GraphQL. Paths: hits near the front and the back of the
 * table, a 405 and a 404. Prints ns per lookup for each and the ratio, side by side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../platform/http/http_internal.h"
#include "cleave/http.h"
#include "cleave/module.h"
#include "cleave/rpc.h"
#include "host.h"

typedef cl_route_result (*match_fn)(const cl_router *r, const char *method, const char *path,
                                    cl_route_match *m, char *allow, size_t allow_size);

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The gateway's routes as host_build_router adds them, without opening any module. */
static cl_router *real_router(cl_rpc_service *rpc, size_t nrpc)
{
    cl_router *r = cl_router_new();
    cl_error err;
    host h;

    memset(&h, 0, sizeof(h));
    if (r == NULL || host_health_routes(&h, r, &err) != CL_OK ||
        host_metrics_routes(&h, r, &err) != CL_OK) {
        goto fail;
    }
    host_metrics_stop(&h);
    for (size_t i = 0; cl_bindings[i].api != NULL && i < nrpc; i++) {
        /* Registering routes calls no operation: no module table is needed. */
        rpc[i].api = cl_bindings[i].api;
        if (cl_bindings[i].api->routes(r, NULL, &err) != CL_OK ||
            cl_rpc_routes(r, &rpc[i], &err) != CL_OK) {
            goto fail;
        }
    }
    if (host_operation_routes(&h, r, &err) != CL_OK || host_graphql_routes(&h, r, &err) != CL_OK) {
        goto fail;
    }
    host_graphql_free(h.graphql);
    return r;
fail:
    fprintf(stderr, "the route table could not be built: %s\n", err.message);
    cl_router_free(r);
    return NULL;
}

/* Nanoseconds per lookup of method + path with fn, over n lookups. */
static double time_lookups(match_fn fn, const cl_router *r, const char *method, const char *path,
                           int n, cl_route_result *result)
{
    cl_route_match m;
    char allow[128];
    double t0 = now_ns();

    for (int i = 0; i < n; i++) {
        *result = fn(r, method, path, &m, allow, sizeof(allow));
    }
    return (now_ns() - t0) / n;
}

int main(int argc, char **argv)
{
    static const char *const cases[][2] = {
        {"GET", "/healthz"},  {"GET", "/api/v1/products/1"},    {"POST", "/api/v1/orders"},
        {"POST", "/graphql"}, {"DELETE", "/api/v1/products/1"}, {"GET", "/api/v1/nothing/here"},
    };
    static const char *const names[] = {"found", "404", "405"};
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200000;
    cl_rpc_service rpc[32];
    cl_router *r;

    memset(rpc, 0, sizeof(rpc));
    r = real_router(rpc, sizeof(rpc) / sizeof(rpc[0]));
    if (r == NULL || n < 1) {
        return EXIT_FAILURE;
    }
    printf("%zu routes, %d lookups each\n", cl_router_count(r), n);
    printf("%-8s %-28s %-6s %12s %12s %8s\n", "method", "path", "result", "scan ns/op",
           "trie ns/op", "ratio");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cl_route_result rs = CL_ROUTE_NOT_FOUND;
        cl_route_result rt = CL_ROUTE_NOT_FOUND;
        double scan;
        double trie;

        /* Alternate rounds so that neither side gets the warmer cache or quieter machine. */
        scan = time_lookups(cl__router_match_scan, r, cases[i][0], cases[i][1], n / 2, &rs);
        trie = time_lookups(cl_router_match, r, cases[i][0], cases[i][1], n / 2, &rt);
        scan += time_lookups(cl__router_match_scan, r, cases[i][0], cases[i][1], n / 2, &rs);
        trie += time_lookups(cl_router_match, r, cases[i][0], cases[i][1], n / 2, &rt);
        if (rs != rt) {
            fprintf(stderr, "%s %s: the trie and the scan disagree\n", cases[i][0], cases[i][1]);
            cl_router_free(r);
            return EXIT_FAILURE;
        }
        printf("%-8s %-28s %-6s %12.1f %12.1f %7.1fx\n", cases[i][0], cases[i][1], names[rt],
               scan / 2, trie / 2, scan / trie);
    }
    cl_router_free(r);
    return EXIT_SUCCESS;
}
