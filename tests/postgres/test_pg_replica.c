/*
 * Read-replica routing (ADR 0011), through the catalog's real operations: reads land on
 * the streaming replica (its pg_stat_activity shows the catalog's replica connection
 * running them), writes never do, a caller that must see its own write reads the
 * primary, and a replica that is down sends reads to the primary without failing them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "cleave/migrate.h"
#include "pgtest.h"

static pgtest pg;
static char primary_url[512], replica_url[512];

static int setup(void **state)
{
    cl_error err = {0};

    (void)state;
    if (pgtest_load(&pg) != 0 || pg.replica[0] == '\0' || pgtest_db_create(&pg) != 0) {
        return -1;
    }
    pgtest_url(pg.primary, pg.db, primary_url, sizeof(primary_url));
    pgtest_url(pg.replica, pg.db, replica_url, sizeof(replica_url));
    if (pgtest_migrate(primary_url, "catalog", &err) != CL_OK) {
        fprintf(stderr, "migrate: %s\n", err.message);
        return -1;
    }
    return pgtest_wait_replica(&pg, 30000);
}

static int teardown(void **state)
{
    (void)state;
    return pgtest_db_drop(&pg);
}

/* A catalog instance and the database it runs on, which the test owns. */
typedef struct test_catalog {
    cl_db *db;
    cl_handle m;
} test_catalog;

/* The catalog over its app role, with replica (a URL) attached, as the host wires it. */
static test_catalog open_catalog(const char *replica, int64_t read_after_write_ms)
{
    test_catalog c = {NULL, {catalog_module.ops, NULL}};
    cl_db_options opt = {.read_after_write_ms = read_after_write_ms};
    char target[2048];
    cl_module_env env = {0};
    cl_error err = {0};
    cl_db *db = NULL;

    assert_int_equal(cl_db_pg_target(primary_url, "cleave_catalog", "cleave-catalog",
                                     "-c search_path=catalog", target, sizeof(target), &err),
                     CL_OK);
    assert_int_equal(cl_db_open(&cl_db_postgres, "catalog", target, &opt, &db, &err), CL_OK);
    assert_int_equal(cl_db_pg_target(replica, "cleave_catalog", "cleave-catalog-replica",
                                     "-c search_path=catalog", target, sizeof(target), &err),
                     CL_OK);
    assert_int_equal(cl_db_attach_replica(db, target, &opt, &err), CL_OK);
    env.db = db;
    assert_int_equal(catalog_module.create(&env, &c.m.self, &err), CL_OK);
    c.db = db;
    return c;
}

static void close_catalog(test_catalog *c)
{
    catalog_module.destroy(c->m.self);
    cl_db_close(c->db);
    *c = (test_catalog){0};
}

static int64_t create(const cl_handle *m, const char *sku)
{
    catalog_product_input in = {0};
    catalog_product out = {0};
    cl_ctx ctx;
    int64_t id;

    in.sku = (char *)sku;
    in.name = "Replica mug";
    in.price.amount = 100;
    in.price.currency = "EUR";
    in.category = "kitchen";
    cl_ctx_init(&ctx, 5000);
    assert_int_equal(catalog_create_product(m, &ctx, &in, &out), CL_OK);
    id = out.id;
    cl_schema_free(&catalog_product_type, &out);
    return id;
}

static cl_status get(const cl_handle *m, int64_t id, int read_primary)
{
    catalog_product_ref ref = {.id = id};
    catalog_product out = {0};
    cl_ctx ctx;
    cl_status st;

    cl_ctx_init(&ctx, 5000);
    ctx.read_primary = read_primary;
    st = catalog_get_product(m, &ctx, &ref, &out);
    cl_schema_free(&catalog_product_type, &out);
    return st;
}

static void list(const cl_handle *m)
{
    catalog_product_query q = {.limit = 10};
    catalog_product_page page = {0};
    cl_ctx ctx;

    cl_ctx_init(&ctx, 5000);
    assert_int_equal(catalog_list_products(m, &ctx, &q, &page), CL_OK);
    assert_true(page.items.n >= 1);
    cl_schema_free(&catalog_product_page_type, &page);
}

/* The first column of sql's first row on the replica server, as an integer. */
static long on_server(const char *url, const char *sql)
{
    char out[64];

    assert_int_equal(pgtest_query(url, sql, out, sizeof(out)), 0);
    return strtol(out, NULL, 10);
}

static void test_reads_hit_the_replica_and_writes_never_do(void **state)
{
    test_catalog c = open_catalog(replica_url, -1); /* route every read to the replica */
    cl_db_stats s;
    int64_t id;

    (void)state;
    /* A write: the replica is read-only, so it would fail there. */
    id = create(&c.m, "REP-1");
    /* The product reaches the replica by streaming; wait for that, not for a time. */
    assert_int_equal(pgtest_wait_replica(&pg, 30000), 0);
    list(&c.m);
    list(&c.m);
    assert_int_equal(get(&c.m, id, 0), CL_OK);
    cl_db_stats_get(c.db, &s);
    assert_int_equal(s.replica_reads, 3);
    assert_int_equal(s.primary_reads, 0);

    /* The replica's own view: the catalog's replica connection ran the reads there... */
    assert_true(on_server(replica_url,
                          "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          "'cleave-catalog-replica' AND query LIKE 'SELECT%FROM product%'") >= 1);
    /* ...and nothing of the catalog ever wrote there, nor read on the primary as replica. */
    assert_int_equal(on_server(replica_url,
                               "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "LIKE 'cleave-catalog%' AND query ~* '^\\s*(insert|update|delete)'"),
                     0);
    assert_int_equal(on_server(primary_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                                            "application_name = 'cleave-catalog-replica'"),
                     0);
    close_catalog(&c);
}

static void test_reads_that_must_see_own_write_go_to_the_primary(void **state)
{
    test_catalog c = open_catalog(replica_url, 60000);
    cl_db_stats s;
    int64_t id;

    (void)state;
    /* Right after the commit the replica may lag: this process reads the primary. */
    id = create(&c.m, "REP-2");
    assert_int_equal(get(&c.m, id, 0), CL_OK);
    cl_db_stats_get(c.db, &s);
    assert_int_equal(s.primary_reads, 1);
    assert_int_equal(s.replica_reads, 0);
    close_catalog(&c);

    /* A caller can ask for it explicitly (it travels as X-Cleave-Read-Primary). */
    c = open_catalog(replica_url, -1);
    assert_int_equal(get(&c.m, id, 1), CL_OK);
    cl_db_stats_get(c.db, &s);
    assert_int_equal(s.primary_reads, 1);
    assert_int_equal(s.replica_reads, 0);
    close_catalog(&c);
}

static void test_primary_serves_reads_when_the_replica_is_down(void **state)
{
    /* Nothing listens on port 1: a replica that is down, refusing connections. */
    test_catalog c = open_catalog("postgresql://127.0.0.1:1/nothing", -1);
    cl_db_stats s, r;
    int64_t t0;

    (void)state;
    create(&c.m, "REP-3");
    t0 = cl_now_ms();
    list(&c.m);
    list(&c.m);
    list(&c.m);
    cl_db_stats_get(c.db, &s);
    cl_db_stats_get(cl_db_replica(c.db), &r);
    assert_int_equal(s.primary_reads, 3);
    assert_int_equal(s.replica_reads, 0);
    /* Tried once, then remembered as down rather than tried on every read. */
    assert_int_equal(r.connect_failures, 1);
    assert_true(cl_now_ms() - t0 < 3000);
    close_catalog(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_hit_the_replica_and_writes_never_do),
        cmocka_unit_test(test_reads_that_must_see_own_write_go_to_the_primary),
        cmocka_unit_test(test_primary_serves_reads_when_the_replica_is_down),
    };
    return cmocka_run_group_tests_name("postgres replica", tests, setup, teardown);
}
