/*
 * No shared database, enforced by PostgreSQL itself (ADR 0011): on one server and one
 * database, the catalog and a second module ("ledger", test-only migrations) each get a
 * schema owned by their owner role and used through their app role. Each app role is
 * refused the other's tables, may not change even its own schema, may not forge its
 * migration history, and may not connect to the postgres database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cleave/migrate.h"
#include "log_capture.h"
#include "pgtest.h"
#include "proc.h"

static pgtest pg;
static char admin[512];
static char ledger_dir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    char path[512];
    cl_error err = {0};
    int applied = 0;

    (void)state;
    if (pgtest_load(&pg) != 0 || pgtest_db_create(&pg) != 0 ||
        test_tmpdir(ledger_dir, sizeof(ledger_dir)) != 0) {
        return -1;
    }
    pgtest_url(pg.primary, pg.db, admin, sizeof(admin));
    snprintf(path, sizeof(path), "%s/ledger", ledger_dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/ledger/0001_init.sql", ledger_dir);
    write_file(path, "CREATE TABLE entries (id BIGINT PRIMARY KEY, amount BIGINT NOT NULL);\n"
                     "INSERT INTO entries VALUES (1, 100);\n");
    if (cl_migrate_postgres(admin, CLEAVE_SOURCE_DIR "/migrations", "catalog", &applied, &err) !=
            CL_OK ||
        cl_migrate_postgres(admin, ledger_dir, "ledger", &applied, &err) != CL_OK) {
        fprintf(stderr, "migrate: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_rmrf(ledger_dir);
    return pgtest_db_drop(&pg);
}

/* A pool as module's app role, as the host opens it. */
static cl_db *open_app(const char *module, const char *url)
{
    char target[2048], role[64], options[128];
    cl_error err = {0};
    cl_db *db = NULL;

    snprintf(role, sizeof(role), "cleave_%s", module);
    snprintf(options, sizeof(options), "-c search_path=%s", module);
    assert_int_equal(cl_db_pg_target(url, role, role, options, target, sizeof(target), &err),
                     CL_OK);
    if (cl_db_open(&cl_db_postgres, module, target, NULL, &db, &err) != CL_OK) {
        fail_msg("open %s: %s", module, err.message);
    }
    return db;
}

/* Runs sql on db; returns its status and copies what was logged (the driver's message). */
static cl_status run(cl_db *db, const char *sql, char *msg, size_t size)
{
    cl_db_conn *c = NULL;
    cl_error err = {0};
    cl_status st;

    log_capture lc;
    char *logged;

    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(log_capture_begin(&lc), 0);
    st = cl_db_exec(c, sql, &err);
    logged = log_capture_text(&lc);
    log_capture_end(&lc);
    cl_db_release(c);
    /* The database's own words are in the log; the error carries a generic message. */
    assert_non_null(logged);
    snprintf(msg, size, "%s", logged);
    free(logged);
    return st;
}

static void assert_denied(cl_db *db, const char *sql)
{
    char msg[2048];

    assert_int_equal(run(db, sql, msg, sizeof(msg)), CL_INTERNAL);
    /*
     * Without USAGE on a schema its tables are not even visible through search_path,
     * and only the owner may drop a table: each is the database saying no.
     */
    if (strstr(msg, "permission denied") == NULL && strstr(msg, "does not exist") == NULL &&
        strstr(msg, "must be owner") == NULL) {
        fail_msg("%s: expected a refusal, got: %s", sql, msg);
    }
}

static void test_app_role_is_refused_another_modules_tables(void **state)
{
    cl_db *catalog = open_app("catalog", admin);
    cl_db *ledger = open_app("ledger", admin);
    char msg[256];

    (void)state;
    /* Each reads its own tables... */
    assert_int_equal(run(catalog, "SELECT count(*) FROM products", msg, sizeof(msg)), CL_OK);
    assert_int_equal(run(ledger, "SELECT count(*) FROM entries", msg, sizeof(msg)), CL_OK);
    /* ...and neither the other's, qualified or through its own search_path. */
    assert_denied(catalog, "SELECT * FROM ledger.entries");
    assert_denied(catalog, "SET search_path = ledger; SELECT * FROM entries");
    assert_denied(ledger, "SELECT * FROM catalog.products");
    assert_denied(ledger, "UPDATE catalog.products SET name = 'x'");
    cl_db_close(catalog);
    cl_db_close(ledger);
}

static void test_app_role_cannot_change_schemas_or_history(void **state)
{
    cl_db *catalog = open_app("catalog", admin);
    char msg[256];

    (void)state;
    assert_denied(catalog, "CREATE TABLE sneaky (id INT)");
    assert_denied(catalog, "CREATE TABLE public.sneaky (id INT)");
    assert_denied(catalog, "DROP TABLE products");
    assert_denied(catalog, "INSERT INTO cl_migrations VALUES (9999, 'x', 'x', 'x')");
    assert_denied(catalog, "DELETE FROM cl_migrations");
    /* Reading its history is what /readyz does. */
    assert_int_equal(run(catalog, "SELECT count(*) FROM cl_migrations", msg, sizeof(msg)), CL_OK);
    cl_db_close(catalog);
}

static void test_app_role_cannot_connect_to_the_postgres_database(void **state)
{
    char url[512], target[2048];
    cl_error err = {0};
    cl_db *db = NULL;
    log_capture lc;
    char *logged;

    (void)state;
    pgtest_url(pg.primary, "postgres", url, sizeof(url));
    assert_int_equal(
        cl_db_pg_target(url, "cleave_catalog", NULL, NULL, target, sizeof(target), &err), CL_OK);
    assert_int_equal(log_capture_begin(&lc), 0);
    assert_int_equal(cl_db_open(&cl_db_postgres, "catalog", target, NULL, &db, &err),
                     CL_UNAVAILABLE);
    logged = log_capture_text(&lc);
    log_capture_end(&lc);
    assert_non_null(logged);
    assert_non_null(strstr(logged, "permission denied"));
    assert_null(strstr(err.message, "permission denied"));
    free(logged);
}

static void test_provisioning_and_migrating_again_changes_nothing(void **state)
{
    cl_error err = {0};
    int applied = -1;
    char out[64];

    (void)state;
    assert_int_equal(
        cl_migrate_postgres(admin, CLEAVE_SOURCE_DIR "/migrations", "catalog", &applied, &err),
        CL_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(pgtest_query(admin,
                                  "SELECT rolcanlogin::text FROM pg_roles "
                                  "WHERE rolname = 'cleave_catalog_owner'",
                                  out, sizeof(out)),
                     0);
    assert_string_equal(out, "false");
    assert_int_equal(
        pgtest_query(admin,
                     "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'catalog'",
                     out, sizeof(out)),
        0);
    assert_string_equal(out, "cleave_catalog_owner");
}

/*
 * The PostgreSQL counterpart of test_catalog_query_plans, as far as it is cheap: a plan on
 * a tiny table proves nothing (PostgreSQL rightly scans it), so check that the indexes
 * the catalog's queries rely on exist, with the byte-order collation on text keys.
 */
static void test_catalog_indexes_exist_with_c_collation(void **state)
{
    static const char *const indexes[] = {"products_pkey",        "products_sku_key",
                                          "products_category_id", "products_name",
                                          "product_tags_pkey",    "product_tags_product_id"};
    char sql[256], out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_indexes WHERE schemaname = 'catalog' "
                 "AND indexname = '%s'",
                 indexes[i]);
        assert_int_equal(pgtest_query(admin, sql, out, sizeof(out)), 0);
        if (strcmp(out, "1") != 0) {
            fail_msg("index catalog.%s is missing", indexes[i]);
        }
    }
    assert_int_equal(pgtest_query(admin,
                                  "SELECT collation_name FROM information_schema.columns "
                                  "WHERE table_schema = 'catalog' AND table_name = 'products' "
                                  "AND column_name = 'name'",
                                  out, sizeof(out)),
                     0);
    assert_string_equal(out, "C");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_role_is_refused_another_modules_tables),
        cmocka_unit_test(test_app_role_cannot_change_schemas_or_history),
        cmocka_unit_test(test_app_role_cannot_connect_to_the_postgres_database),
        cmocka_unit_test(test_provisioning_and_migrating_again_changes_nothing),
        cmocka_unit_test(test_catalog_indexes_exist_with_c_collation),
    };
    return cmocka_run_group_tests_name("postgres isolation", tests, setup, teardown);
}
