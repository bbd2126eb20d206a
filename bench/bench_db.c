/*
 * The catalog's list_products (a page of 20 with their tags) on SQLite vs PostgreSQL,
 * and on PostgreSQL with the pool (connections and prepared statements reused) vs
 * without it (a new connection, hence new statements, per operation). All three run
 * interleaved in rounds in one process against the same demo data, so machine noise
 * hits them alike; the ratios are the figures to read. PostgreSQL is a throwaway server
 * the benchmark starts and stops itself (tests/postgres/pg-cluster.sh).
 *
 *   bench_db [calls per variant, default 2000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "cleave/migrate.h"
#include "pgtest.h"
#include "proc.h"

#define ROUNDS 10
#define PAGE   20

static char dir[200];
static pgtest pg;
static int cluster_started;

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

/* Runs on every exit, so that the throwaway server never outlives the benchmark. */
static void cleanup(void)
{
    if (cluster_started) {
        cluster_started = 0;
        pgtest_cluster(&pg, "stop");
    }
    if (dir[0] != '\0') {
        test_rmrf(dir);
    }
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_db: %s: %s\n", what, msg);
    exit(1);
}

/* A catalog instance on db (borrowed for the instance's life); exits on failure. */
static cl_handle open_catalog(cl_db *db)
{
    cl_module_env env = {.db = db};
    cl_handle m = {catalog_module.ops, NULL};
    cl_error err = {0};

    if (catalog_module.create(&env, &m.self, &err) != CL_OK) {
        die("catalog create", err.message);
    }
    return m;
}

static void close_catalog(cl_handle *m)
{
    catalog_module.destroy(m->self);
    m->self = NULL;
}

/* One page through m, timed; exits on failure so that a broken variant cannot look fast. */
static int64_t timed_list(const cl_handle *m, const char *category)
{
    catalog_product_query q = {.limit = PAGE, .category = (char *)category};
    catalog_product_page page = {0};
    cl_ctx ctx;
    int64_t t0, t1;

    cl_ctx_init(&ctx, 10000);
    t0 = now_ns();
    if (catalog_list_products(m, &ctx, &q, &page) != CL_OK || page.items.n == 0) {
        die("list_products", ctx.err.message);
    }
    t1 = now_ns();
    cl_schema_free(&catalog_product_page_type, &page);
    return t1 - t0;
}

static char app_target[2048];

static cl_db *open_pg(void)
{
    cl_error err = {0};
    cl_db *db = NULL;

    if (cl_db_open(&cl_db_postgres, "catalog", app_target, NULL, &db, &err) != CL_OK) {
        die("PostgreSQL", err.message);
    }
    return db;
}

/* Without a pool: connect, prepare, run, disconnect, every operation. */
static int64_t timed_list_unpooled(const char *category)
{
    int64_t t0 = now_ns(), t1;
    cl_db *db = open_pg();
    cl_handle m = open_catalog(db);

    (void)timed_list(&m, category);
    close_catalog(&m);
    cl_db_close(db);
    t1 = now_ns();
    return t1 - t0;
}

static void seed(const cl_handle *m, const char *what)
{
    cl_ctx ctx;
    cl_seed_opts opts = {0}; /* the whole demo */
    int created = 0;

    cl_ctx_init(&ctx, 0);
    ctx.read_primary = 1;
    if (catalog_api.seed(m, &ctx, &opts, &created) != CL_OK || created == 0) {
        die(what, ctx.err.message);
    }
}

static void row(const char *name, int64_t *v, size_t n)
{
    printf("%-22s %10.1f %10.1f %10.1f\n", name, pct(v, n, 0.50), pct(v, n, 0.99), pct(v, n, 1.0));
}

/* The bus schema in the catalog's PostgreSQL schema, as its owner role (ADR 0012). */
static cl_status apply_bus_schema_as_owner(const char *admin, cl_error *err)
{
    char owner[2048];
    cl_db *db = NULL;
    cl_status st = cl_migrate_owner_target(admin, "catalog", owner, sizeof(owner), err);

    if (st == CL_OK) {
        st = cl_db_open(&cl_db_postgres, "catalog", owner, NULL, &db, err);
    }
    if (st == CL_OK) {
        st = cl_bus_schema_apply(db, err);
    }
    cl_db_close(db);
    return st;
}

int main(int argc, char **argv)
{
    static const char *const categories[] = {NULL, "books", "kitchen", "toys", "garden"};
    size_t per = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2000;
    char path[600], admin[512];
    int64_t *lite, *pool, *nopool;
    cl_error err = {0};
    cl_db *sqlite = NULL, *pooled = NULL;
    cl_handle on_sqlite, on_pooled;

    if (per < ROUNDS) {
        fprintf(stderr, "usage: bench_db [calls >= %d]\n", ROUNDS);
        return 2;
    }
    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return 1;
    }
    atexit(cleanup);
    lite = calloc(per, sizeof(*lite));
    pool = calloc(per, sizeof(*pool));
    nopool = calloc(per, sizeof(*nopool));
    if (lite == NULL || pool == NULL || nopool == NULL) {
        die("memory", "out of memory");
    }

    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    if (cl_db_open(&cl_db_sqlite, "catalog", path, NULL, &sqlite, &err) != CL_OK ||
        cl_bus_schema_apply(sqlite, &err) != CL_OK ||
        cl_migrate_apply(sqlite, CLEAVE_SOURCE_DIR "/migrations", "catalog", NULL, &err) != CL_OK) {
        die("SQLite", err.message);
    }
    on_sqlite = open_catalog(sqlite);
    seed(&on_sqlite, "seeding SQLite");

    /* Not under dir: the server's user must be able to reach its directory. */
    snprintf(pg.dir, sizeof(pg.dir), "/tmp/cleave-bench-pg-%d", (int)getpid());
    {
        char script[512], out[4096], env_path[600];
        char *args[] = {"pg-cluster.sh", "start", pg.dir, "--no-replica", NULL};

        snprintf(script, sizeof(script), "%s/tests/postgres/pg-cluster.sh", CLEAVE_SOURCE_DIR);
        if (test_run(script, args, NULL, out, sizeof(out)) != 0) {
            die("starting PostgreSQL", out);
        }
        cluster_started = 1;
        snprintf(env_path, sizeof(env_path), "%s/env", pg.dir);
        setenv("CL_TEST_PG_ENV", env_path, 1);
        if (pgtest_load(&pg) != 0 || pgtest_db_create(&pg) != 0) {
            die("PostgreSQL", "no database");
        }
    }
    pgtest_url(pg.primary, pg.db, admin, sizeof(admin));
    /* The bus's tables too (the catalog publishes events), made by the owner as the host does. */
    if (cl_migrate_postgres(admin, CLEAVE_SOURCE_DIR "/migrations", "catalog", NULL, &err) !=
            CL_OK ||
        apply_bus_schema_as_owner(admin, &err) != CL_OK ||
        cl_db_pg_target(admin, "cleave_catalog", "cleave-catalog", "-c search_path=catalog",
                        app_target, sizeof(app_target), &err) != CL_OK) {
        die("migrating PostgreSQL", err.message);
    }
    pooled = open_pg();
    on_pooled = open_catalog(pooled);
    seed(&on_pooled, "seeding PostgreSQL");

    /* Warm every path (statement caches, pools, page caches) before measuring. */
    for (int i = 0; i < 50; i++) {
        (void)timed_list(&on_sqlite, categories[i % 5]);
        (void)timed_list(&on_pooled, categories[i % 5]);
        (void)timed_list_unpooled(categories[i % 5]);
    }
    for (int round = 0; round < ROUNDS; round++) {
        size_t from = per / ROUNDS * (size_t)round;
        size_t to = round == ROUNDS - 1 ? per : from + per / ROUNDS;

        for (size_t i = from; i < to; i++) {
            const char *cat = categories[i % 5];

            lite[i] = timed_list(&on_sqlite, cat);
            pool[i] = timed_list(&on_pooled, cat);
            nopool[i] = timed_list_unpooled(cat);
        }
    }
    qsort(lite, per, sizeof(*lite), cmp_i64);
    qsort(pool, per, sizeof(*pool), cmp_i64);
    qsort(nopool, per, sizeof(*nopool), cmp_i64);
    printf("catalog.list_products (%d per page, with tags, 1200 products), %zu calls per "
           "variant, interleaved in %d rounds\n",
           PAGE, per, ROUNDS);
    printf("%-22s %10s %10s %10s\n", "variant", "p50 us", "p99 us", "max us");
    row("sqlite", lite, per);
    row("postgres, pool", pool, per);
    row("postgres, no pool", nopool, per);
    printf("ratio postgres(pool)/sqlite:       p50 %.1fx, p99 %.1fx\n",
           pct(pool, per, 0.50) / pct(lite, per, 0.50),
           pct(pool, per, 0.99) / pct(lite, per, 0.99));
    printf("ratio postgres no pool/pool:       p50 %.1fx, p99 %.1fx\n",
           pct(nopool, per, 0.50) / pct(pool, per, 0.50),
           pct(nopool, per, 0.99) / pct(pool, per, 0.99));
    printf("checkout on sqlite vs postgres: see bench_checkout\n");

    close_catalog(&on_pooled);
    close_catalog(&on_sqlite);
    cl_db_close(pooled);
    cl_db_close(sqlite);
    pgtest_db_drop(&pg);
    free(lite);
    free(pool);
    free(nopool);
    return 0;
}
