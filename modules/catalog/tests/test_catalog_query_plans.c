/*
 * Every query the catalog runs is served by an index: no statement of src/store.h may
 * scan products or product tags, whatever the filters. The test asks SQLite for the
 * plan of each real statement on a migrated database with data, and then drops each
 * index in turn to prove that the check would notice its loss. And each read is one
 * snapshot: one read transaction, counted through the test VFS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "sqlite_counting.h"
#include "test_module.h"
#include "store.h"

static test_local lc;
static sqlite3 *raw;

/* A catalog with products in two categories, with tags, so the planner sees real tables. */
static int setup(void **state)
{
    const cl_handle *module;
    char path[512];
    char sku[32];
    char name[32];
    cl_ctx ctx;

    (void)state;
    if (test_local_open(&lc, &catalog_module, NULL) != 0) {
        return -1;
    }
    module = &lc.handle;
    for (int i = 0; i < 40; i++) {
        char *tags[] = {"sale", i % 3 == 0 ? "new" : "gift"};
        catalog_product_input in = {0};
        catalog_product out = {0};

        snprintf(sku, sizeof(sku), "PLAN-%d", i);
        snprintf(name, sizeof(name), "%s %d", i % 2 == 0 ? "Alpha" : "Beta", i);
        in.sku = sku;
        in.name = name;
        in.price.amount = 100 + i;
        in.price.currency = "EUR";
        in.category = i % 2 == 0 ? "books" : "toys";
        in.tags.v = tags;
        in.tags.n = 2;
        in.tags.set = true;
        cl_ctx_init(&ctx, 0);
        if (catalog_create_product(module, &ctx, &in, &out) != CL_OK) {
            fprintf(stderr, "create: %s\n", ctx.err.message);
            return -1;
        }
        cl_schema_free(&catalog_product_type, &out);
    }
    snprintf(path, sizeof(path), "%s/catalog.db", lc.dir);
    if (sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sqlite3_close(raw);
    raw = NULL;
    test_local_close(&lc);
    return 0;
}

/*
 * Whether one plan row reads more than the matching rows:
 *  - any SCAN, except of the categories (list_categories returns them all) in index order;
 *  - with a filter, an open range on the product id: that walks every product after the
 *    cursor and filters them one by one, a scan in disguise.
 */
static bool bad_plan_row(const char *detail, bool filtered)
{
    if (strncmp(detail, "SCAN ", 5) == 0) {
        return !(strncmp(detail, "SCAN categories USING ", 22) == 0 &&
                 strstr(detail, "INDEX") != NULL);
    }
    return filtered && strstr(detail, "(rowid>?)") != NULL;
}

/* Counts the bad rows of sql's plan, printing them when report is set. */
static int plan_problems(const char *sql, bool filtered, bool report)
{
    char explain[2048];
    sqlite3_stmt *st = NULL;
    int bad = 0;
    int rc;

    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    rc = sqlite3_prepare_v2(raw, explain, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(raw));
    }
    for (rc = sqlite3_step(st); rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);

        if (detail != NULL && bad_plan_row(detail, filtered)) {
            if (report) {
                fprintf(stderr, "reads more than it matches: %s\n  in: %s\n", detail, sql);
            }
            bad++;
        }
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    return bad;
}

/* Problems over every read statement of the catalog. */
static int all_problems(bool report)
{
    int bad = 0;

    for (int f = 0; f < CATALOG_FILTER_COMBINATIONS; f++) {
        bad += plan_problems(catalog__sql_list[f], f != 0, report);
    }
    for (int i = 0; catalog__sql_reads[i] != NULL; i++) {
        bad += plan_problems(catalog__sql_reads[i], true, report);
    }
    return bad;
}

static void test_every_catalog_query_uses_an_index(void **state)
{
    (void)state;
    assert_int_equal(all_problems(true), 0);
}

static void exec(const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(raw, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
    }
}

static void test_dropping_any_index_is_noticed(void **state)
{
    /* The catalog's own indexes; the bus's tables (cl_*) belong to the platform. */
    static const char find[] = "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL AND tbl_name NOT LIKE 'cl\\_%' ESCAPE '\\' "
                               "ORDER BY name";
    char names[16][64];
    char sql[128];
    sqlite3_stmt *st = NULL;
    int n = 0;

    (void)state;
    assert_int_equal(sqlite3_prepare_v2(raw, find, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && n < 16) {
        snprintf(names[n++], sizeof(names[0]), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    /* The migrations create three: category, name, and a product's tags. */
    assert_true(n >= 3);
    for (int i = 0; i < n; i++) {
        int bad;

        exec("BEGIN");
        if (snprintf(sql, sizeof(sql), "DROP INDEX %s", names[i]) >= (int)sizeof(sql)) {
            fail_msg("index name too long for this test: %s", names[i]);
        }
        exec(sql);
        bad = all_problems(false);
        exec("ROLLBACK");
        if (bad == 0) {
            fail_msg("without index %s no query plan changed for the worse", names[i]);
        }
    }
    assert_int_equal(all_problems(false), 0);
}

/*
 * A read of products is one snapshot: the rows and their tags in one read transaction.
 * They were one read transaction per statement, and an update between the row and its
 * tags could show the tags of the next version. Every read transaction takes one read mark.
 */
static void test_every_catalog_read_is_one_read_transaction(void **state)
{
    char *skus[] = {"PLAN-1", "PLAN-2"};
    catalog_sku_query by_sku = {.skus = {.v = skus, .n = 2, .set = true}};
    catalog_product_list list = {0};
    catalog_product_query query = {.category = "books", .limit = 5};
    catalog_product_page page = {0};
    catalog_product one = {0};
    catalog_product_ref ref;
    cl_ctx ctx;
    int before;

    (void)state;
    cl_ctx_init(&ctx, 0);
    before = atomic_load(&sqlite_counted_read_locks);
    assert_int_equal(catalog_get_products_by_sku(&lc.handle, &ctx, &by_sku, &list), CL_OK);
    assert_int_equal(atomic_load(&sqlite_counted_read_locks) - before, 1);
    assert_int_equal(list.items.n, 2);
    assert_int_equal(list.items.v[1].tags.n, 2);

    ref.id = list.items.v[0].id;
    before = atomic_load(&sqlite_counted_read_locks);
    assert_int_equal(catalog_get_product(&lc.handle, &ctx, &ref, &one), CL_OK);
    assert_int_equal(atomic_load(&sqlite_counted_read_locks) - before, 1);
    assert_string_equal(one.sku, "PLAN-1");
    assert_int_equal(one.tags.n, 2);

    before = atomic_load(&sqlite_counted_read_locks);
    assert_int_equal(catalog_list_products(&lc.handle, &ctx, &query, &page), CL_OK);
    assert_int_equal(atomic_load(&sqlite_counted_read_locks) - before, 1);
    assert_int_equal(page.items.n, 5);
    assert_int_equal(page.items.v[4].tags.n, 2);
    cl_schema_free(&catalog_product_list_type, &list);
    cl_schema_free(&catalog_product_type, &one);
    cl_schema_free(&catalog_product_page_type, &page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_catalog_query_uses_an_index),
        cmocka_unit_test(test_dropping_any_index_is_noticed),
        cmocka_unit_test(test_every_catalog_read_is_one_read_transaction),
    };

    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
