/*
 * The gateway's cost of authentication: GET /api/v1/products/1 on the seeded monolith
 * with a valid bearer token (verified, RBAC-checked; after the first request its
 * verification is a cache hit) vs without one (an anonymous catalog read), measured by wrk
 * in interleaved rounds in one run, so that machine noise hits both alike.
 *
 *   bench_gateway [seconds per round, default 3] [rounds, default 4]
 *
 * wrk (Debian's package) runs with 2 threads and 32 keep-alive connections, as the
 * project's performance targets are stated (TARGETS.md). Prints requests/s and latency
 * per side and their ratios; it never fails on timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "topology.h"
#include "wrk.h"

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    char url[128], bearer[4200];
    wrk_side sides[2] = {{.label = "without a token (anonymous)"}, {.label = "with a valid token"}};
    wrk_figures f[2];
    topology t = {0};
    test_resp r = {0};
    int rc = EXIT_FAILURE;

    if (seconds < 1 || seconds > 60 || rounds < 1 || rounds > WRK_MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_gateway [seconds 1-60] [rounds 1-%d]\n", WRK_MAX_ROUNDS);
        return 2;
    }
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the monolith on SQLite, whatever the caller's shell */
    }
    if (topology_start_with(&t, "monolith", 1, NULL) != 0 || t.token[0] == '\0') {
        fprintf(stderr, "could not start the seeded monolith\n");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/api/v1/products/1", t.base_url);
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", t.token);
    sides[0].url = url;
    sides[1].url = url;
    sides[1].header = bearer;
    /* Both answers must be the product, or the figures compare different work. */
    if (test_http(t.base_url, "GET", "/api/v1/products/1", NULL, 0, NULL, &r) != 0 ||
        r.status != 200) {
        fprintf(stderr, "GET /api/v1/products/1 answered %ld\n", r.status);
        goto out;
    }
    printf("GET /api/v1/products/1, monolith on SQLite, wrk -t2 -c32, %d interleaved rounds of "
           "%d s\n",
           rounds, seconds);
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < 2; k++) {
            if (wrk_round(&sides[(i + k) % 2], seconds) != 0) {
                goto out;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        f[k] = wrk_medians(&sides[k]);
        printf("%-30s %9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   (medians of %d rounds)\n",
               sides[k].label, f[k].rps, f[k].p50_ms, f[k].p99_ms, sides[k].n);
    }
    printf("with a token vs without: %.2fx the throughput, %.2fx the p50, %.2fx the p99\n",
           f[1].rps / f[0].rps, f[1].p50_ms / f[0].p50_ms, f[1].p99_ms / f[0].p99_ms);
    rc = EXIT_SUCCESS;
out:
    test_resp_free(&r);
    if (t.nprocs > 0) {
        topology_stop(&t);
    }
    test_http_thread_done();
    return rc;
}
