/*
 * The gateway's cost of authentication: GET /api/v1/products/1 on the seeded monolith
 * with a valid bearer token (verified, RBAC-checked; after the first request its
 * verification is a cache hit) vs without one (an anonymous catalog read), measured by wrk
 * in interleaved rounds in one run, so that machine noise hits both alike. Then the cost
 * and gain of gzip (ADR 0040): a page of 100 products asked for with and without
 * "Accept-Encoding: gzip", bytes per answer on the wire and throughput, and the time zlib
 * takes for that page at level 1 (the server's) and level 6 (zlib's default).
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
#include <time.h>

#include <zlib.h>

#include "client.h"
#include "topology.h"
#include "wrk.h"

/* Runs both sides against url in interleaved rounds and prints each side's medians. */
static int compare(wrk_side sides[2], const char *url, int seconds, int rounds, wrk_figures f[2])
{
    sides[0].url = url;
    sides[1].url = url;
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < 2; k++) {
            if (wrk_round(&sides[(i + k) % 2], seconds) != 0) {
                return -1;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        f[k] = wrk_medians(&sides[k]);
        printf("%-30s %9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   %7.0f B/answer   (medians of "
               "%d rounds)\n",
               sides[k].label, f[k].rps, f[k].p50_ms, f[k].p99_ms, f[k].bytes, sides[k].n);
    }
    return 0;
}

/* Microseconds zlib takes to gzip text[0..len) at level, the best of a few hundred runs. */
static double gzip_us(const char *text, size_t len, int level, size_t *out_len)
{
    static unsigned char out[1 << 20];
    double best = -1;

    for (int i = 0; i < 300; i++) {
        z_stream zs = {0};
        struct timespec t0, t1;
        double us;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            return -1;
        }
        zs.next_in = (Bytef *)text; /* zlib's API is not const; it only reads */
        zs.avail_in = (uInt)len;
        zs.next_out = out;
        zs.avail_out = sizeof(out);
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
            deflateEnd(&zs);
            return -1;
        }
        *out_len = zs.total_out;
        deflateEnd(&zs);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
        best = best < 0 || us < best ? us : best;
    }
    return best;
}

/* The gzip figures: a page of 100 products with and without Accept-Encoding, and zlib alone. */
static int bench_gzip(const topology *t, int seconds, int rounds)
{
    static const char page[] = "/api/v1/products?limit=100";
    wrk_side sides[2] = {{.label = "identity (no Accept-Encoding)"},
                         {.label = "gzip", .header = "Accept-Encoding: gzip"}};
    wrk_figures f[2];
    size_t gz1 = 0, gz6 = 0;
    double us1, us6;
    char url[160];
    test_resp r = {0};
    int rc = -1;

    snprintf(url, sizeof(url), "%s%s", t->base_url, page);
    if (test_http(t->base_url, "GET", page, NULL, 0, NULL, &r) != 0 || r.status != 200) {
        fprintf(stderr, "GET %s answered %ld\n", page, r.status);
        goto out;
    }
    printf("\nGET %s (%zu bytes of JSON), wrk -t2 -c32, %d interleaved rounds of %d s\n", page,
           r.body_len, rounds, seconds);
    if (compare(sides, url, seconds, rounds, f) != 0) {
        goto out;
    }
    printf("gzip vs identity: %.2fx the bytes per answer, %.2fx the throughput, %.2fx the p50, "
           "%.2fx the p99\n",
           f[1].bytes / f[0].bytes, f[1].rps / f[0].rps, f[1].p50_ms / f[0].p50_ms,
           f[1].p99_ms / f[0].p99_ms);
    us1 = gzip_us(r.body, r.body_len, 1, &gz1);
    us6 = gzip_us(r.body, r.body_len, 6, &gz6);
    if (us1 < 0 || us6 < 0) {
        fprintf(stderr, "zlib failed\n");
        goto out;
    }
    printf("zlib on that page: level 1 %zu bytes (%.1f%%) in %.0f us, level 6 %zu bytes (%.1f%%) "
           "in %.0f us: level 6 takes %.2fx the time for %.2fx the bytes\n",
           gz1, 100.0 * (double)gz1 / (double)r.body_len, us1, gz6,
           100.0 * (double)gz6 / (double)r.body_len, us6, us6 / us1, (double)gz6 / (double)gz1);
    rc = 0;
out:
    test_resp_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    char url[128], bearer[4200];
    wrk_side sides[2] = {{.label = "without a token (anonymous)"}, {.label = "with a valid token"}};
    wrk_figures f[2];
    topology t = {0};
    test_resp r = {0};
    char *env[] = {WRK_SERVER_SLOTS, NULL};
    int rc = EXIT_FAILURE;

    if (seconds < 1 || seconds > 60 || rounds < 1 || rounds > WRK_MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_gateway [seconds 1-60] [rounds 1-%d]\n", WRK_MAX_ROUNDS);
        return 2;
    }
    if (getenv("CL_TEST_DB") != NULL) {
        unsetenv("CL_TEST_DB"); /* the monolith on SQLite, whatever the caller's shell */
    }
    if (topology_start_with(&t, "monolith", TOPOLOGY_SEED_DEMO, env) != 0 || t.token[0] == '\0') {
        fprintf(stderr, "could not start the seeded monolith\n");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/api/v1/products/1", t.base_url);
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", t.token);
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
    if (compare(sides, url, seconds, rounds, f) != 0) {
        goto out;
    }
    printf("with a token vs without: %.2fx the throughput, %.2fx the p50, %.2fx the p99\n",
           f[1].rps / f[0].rps, f[1].p50_ms / f[0].p50_ms, f[1].p99_ms / f[0].p99_ms);
    if (bench_gzip(&t, seconds, rounds) != 0) {
        goto out;
    }
    rc = EXIT_SUCCESS;
out:
    test_resp_free(&r);
    if (t.nprocs > 0) {
        topology_stop(&t);
    }
    test_http_thread_done();
    return rc;
}
