/*
 * Local vs remote binding of the catalog: catalog.get_product through the in-process
 * operations table, and through the remote binding to a real cleave-catalog on
 * loopback. Both run interleaved in rounds in one process, so machine noise hits both
 * alike; the ratio is the figure to read.
 *
 *   bench_binding [calls per binding, default 20000]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "cleave/migrate.h"
#include "cleave/rpc.h"
#include "nats_server.h"
#include "proc.h"

#define ROUNDS 10

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

/* One call, timed; exits on failure so that a broken binding cannot look fast. */
static int64_t timed_get(const cl_handle *m, int64_t id)
{
    catalog_product_ref ref = {id};
    catalog_product p = {0};
    cl_ctx ctx;
    int64_t t0, t1;

    cl_ctx_init(&ctx, 5000);
    t0 = now_ns();
    if (catalog_get_product(m, &ctx, &ref, &p) != CL_OK) {
        fprintf(stderr, "get_product(%lld): %s\n", (long long)id, ctx.err.message);
        exit(1);
    }
    t1 = now_ns();
    cl_schema_free(&catalog_product_type, &p);
    return t1 - t0;
}

/* A catalog instance on a new database in dir (*db receives it); exits on failure. */
static cl_handle open_local(const char *dir, cl_db **db)
{
    cl_handle m = {catalog_module.ops, NULL};
    char path[600];
    cl_error err = {0};
    cl_module_env env = {0};

    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    if (cl_db_open(&cl_db_sqlite, "catalog", path, NULL, db, &err) != CL_OK ||
        cl_bus_schema_apply(*db, &err) != CL_OK ||
        cl_migrate_apply(*db, CLEAVE_SOURCE_DIR "/migrations", "catalog", NULL, &err) != CL_OK) {
        fprintf(stderr, "local catalog: %s\n", err.message);
        exit(1);
    }
    env.db = *db;
    if (catalog_module.create(&env, &m.self, &err) != CL_OK) {
        fprintf(stderr, "catalog create: %s\n", err.message);
        exit(1);
    }
    return m;
}

static void seed(const cl_handle *m, const char *what)
{
    cl_ctx ctx;
    int created = 0;

    cl_ctx_init(&ctx, 0);
    if (catalog_api.seed(m, &ctx, &created) != CL_OK || created == 0) {
        fprintf(stderr, "seeding the %s catalog failed: %s\n", what, ctx.err.message);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    size_t per = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 20000;
    char dir[256], svc_dir[600], data_env[700], log[700], url[64], bin[512];
    char *svc_argv[] = {"cleave-catalog", "serve", NULL};
    /* A service accepts calls with the deployment's token only, and its events need NATS. */
    static test_nats nats;
    static char migrations_env[] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    char *svc_env[] = {data_env,       "CLEAVE_LISTEN=127.0.0.1:0",
                       migrations_env, "CLEAVE_DEV_SERVICE_TOKEN=bench-token",
                       nats.env,       NULL};
    cl_rpc_options opt = {.dev_token = "bench-token"};
    int64_t *local_ns, *remote_ns;
    cl_handle local, remote;
    cl_rpc_client *client = NULL;
    cl_error err = {0};
    cl_db *db = NULL;
    test_proc svc;
    int port;
    unsigned rng = 12345;

    if (per < ROUNDS) {
        fprintf(stderr, "usage: bench_binding [calls >= %d]\n", ROUNDS);
        return 2;
    }
    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return 1;
    }
    local_ns = calloc(per, sizeof(*local_ns));
    remote_ns = calloc(per, sizeof(*remote_ns));
    if (local_ns == NULL || remote_ns == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    local = open_local(dir, &db);
    seed(&local, "local");

    if (test_nats_open(&nats, dir) != 0) {
        exit(1);
    }
    snprintf(svc_dir, sizeof(svc_dir), "%s/service", dir);
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s", svc_dir);
    snprintf(log, sizeof(log), "%s/service.log", dir);
    snprintf(bin, sizeof(bin), "%s/cleave-catalog", CLEAVE_BIN_DIR);
    port = test_proc_start(&svc, bin, svc_argv, svc_env, log) == 0
               ? test_proc_wait_port(&svc, 30000)
               : -1;
    if (port < 0) {
        fprintf(stderr, "cleave-catalog did not start; see %s\n", log);
        exit(1);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (cl_rpc_client_new("catalog", url, &opt, &client, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    remote = (cl_handle){catalog_api.remote_ops, client};
    seed(&remote, "remote");

    /* Warm both paths (statement cache, connection, page cache) before measuring. */
    for (int i = 0; i < 200; i++) {
        timed_get(&local, 1 + i % 1000);
        timed_get(&remote, 1 + i % 1000);
    }
    for (int round = 0; round < ROUNDS; round++) {
        size_t from = per / ROUNDS * (size_t)round;
        size_t to = round == ROUNDS - 1 ? per : from + per / ROUNDS;
        for (size_t i = from; i < to; i++) {
            int64_t id = 1 + (int64_t)((rng = rng * 1103515245u + 12345u) >> 8) % 1000;
            local_ns[i] = timed_get(&local, id);
            remote_ns[i] = timed_get(&remote, id);
        }
    }
    qsort(local_ns, per, sizeof(*local_ns), cmp_i64);
    qsort(remote_ns, per, sizeof(*remote_ns), cmp_i64);
    printf("catalog.get_product, %zu calls per binding, interleaved in %d rounds\n", per, ROUNDS);
    printf("%-8s %10s %10s %10s\n", "binding", "p50 us", "p99 us", "max us");
    printf("%-8s %10.1f %10.1f %10.1f\n", "local", pct(local_ns, per, 0.50),
           pct(local_ns, per, 0.99), pct(local_ns, per, 1.0));
    printf("%-8s %10.1f %10.1f %10.1f\n", "remote", pct(remote_ns, per, 0.50),
           pct(remote_ns, per, 0.99), pct(remote_ns, per, 1.0));
    printf("ratio remote/local: p50 %.1fx, p99 %.1fx\n",
           pct(remote_ns, per, 0.50) / pct(local_ns, per, 0.50),
           pct(remote_ns, per, 0.99) / pct(local_ns, per, 0.99));
    printf("remote overhead (p50 remote - p50 local): %.1f us per call\n",
           pct(remote_ns, per, 0.50) - pct(local_ns, per, 0.50));

    test_proc_stop(&svc, SIGTERM);
    test_nats_close(&nats);
    cl_rpc_client_free(client);
    catalog_module.destroy(local.self);
    cl_db_close(db);
    test_rmrf(dir);
    free(local_ns);
    free(remote_ns);
    return 0;
}
