/*
 * The demo seed is deterministic: two fresh catalogs seeded apart hold the same
 * products; it makes DEMO_PRODUCTS of them over every category, or the first N of them
 * when limited to N; it adds nothing to a catalog that has products.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "catalog/catalog.h"
#include "test_module.h"

#define MAX_PRODUCTS  5000
/* The whole demo catalog (README). */
#define DEMO_PRODUCTS 1200

/* One product as a line of text, without its timestamps (they tell when, not what). */
static char *describe(const catalog_product *p)
{
    char tags[512] = "";
    char line[1024];

    for (size_t i = 0; i < p->tags.n; i++) {
        strncat(tags, p->tags.v[i], sizeof(tags) - strlen(tags) - 2);
        strncat(tags, ",", sizeof(tags) - strlen(tags) - 1);
    }
    snprintf(line, sizeof(line), "%lld|%s|%s|%s|%lld %s|%s|%s|%lld", (long long)p->id, p->sku,
             p->name, p->description != NULL ? p->description : "-", (long long)p->price.amount,
             p->price.currency, p->category, tags, (long long)p->version);
    return cl_strdup(line);
}

/*
 * Lists the whole catalog through its operations into lines[]; returns the count. Every
 * snapshot follows this test's own writes, and a replica promises them only to a reader
 * that asks for the primary (ADR 0011), so it does.
 */
static size_t snapshot(const cl_handle *module, char **lines)
{
    char *cursor = NULL;
    size_t n = 0;

    do {
        catalog_product_query q = {.limit = CATALOG_MAX_LIMIT, .cursor = cursor};
        catalog_product_page page = {0};
        cl_ctx ctx;

        cl_ctx_init(&ctx, 0);
        ctx.read_primary = 1;
        assert_int_equal(catalog_list_products(module, &ctx, &q, &page), CL_OK);
        for (size_t i = 0; i < page.items.n; i++) {
            assert_true(n < MAX_PRODUCTS);
            lines[n] = describe(&page.items.v[i]);
            assert_non_null(lines[n]);
            n++;
        }
        free(cursor);
        cursor = cl_strdup(page.next_cursor);
        cl_schema_free(&catalog_product_page_type, &page);
    } while (cursor != NULL);
    return n;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(lines[i]);
    }
}

/*
 * Seeds a fresh catalog with `seed --limit limit` (0: none), checks that it made products
 * products over every category (any when they are fewer than the categories), and returns
 * its snapshot.
 */
static size_t seed_fresh(char **lines, int limit, int products)
{
    cl_seed_opts opts = {.limit = limit};
    test_local lc;
    const cl_handle *module;
    catalog_category_list cats = {0};
    cl_empty none = {0};
    cl_ctx ctx;
    int created = -1;
    int64_t total = 0;
    size_t n;

    assert_int_equal(test_local_open(&lc, &catalog_module, NULL), 0);
    module = &lc.handle;
    cl_ctx_init(&ctx, 0);
    /* Reads after the seed's writes, and the second seed's "is it empty?", as `cleave seed`. */
    ctx.read_primary = 1;
    assert_int_equal(catalog_seed(module, &ctx, &opts, &created), CL_OK);
    assert_int_equal(created, products);

    assert_int_equal(catalog_list_categories(module, &ctx, &none, &cats), CL_OK);
    assert_true(cats.items.n >= 8);
    for (size_t i = 0; i < cats.items.n; i++) {
        if (cats.items.v[i].product_count == 0 && products == DEMO_PRODUCTS) {
            fail_msg("category %s got no product", cats.items.v[i].id);
        }
        total += cats.items.v[i].product_count;
    }
    assert_int_equal(total, created);
    cl_schema_free(&catalog_category_list_type, &cats);

    n = snapshot(module, lines);
    assert_int_equal(n, (size_t)created);

    /* A second run finds products and leaves them alone. */
    assert_int_equal(catalog_seed(module, &ctx, &opts, &created), CL_OK);
    assert_int_equal(created, 0);
    test_local_close(&lc);
    return n;
}

/*
 * The same products on every seed, and `cleave seed --limit N` makes the first N of them; a
 * limit beyond the demo's size is no limit.
 */
static void test_seed_is_deterministic_and_a_limit_takes_its_start(void **state)
{
    static char *first[MAX_PRODUCTS];
    static char *second[MAX_PRODUCTS];
    static char *part[MAX_PRODUCTS];
    size_t n1;
    size_t n2;
    size_t n_part;

    (void)state;
    n1 = seed_fresh(first, 0, DEMO_PRODUCTS);
    n2 = seed_fresh(second, DEMO_PRODUCTS + 1, DEMO_PRODUCTS);
    n_part = seed_fresh(part, 30, 30);
    for (size_t i = 0; i < n1; i++) {
        assert_string_equal(first[i], second[i]);
        if (i < n_part) {
            assert_string_equal(part[i], first[i]);
        }
    }
    /* The first product is the same on every machine, so docs and tests may name it. */
    assert_non_null(strstr(first[0], "|SKU-000001|"));
    free_lines(first, n1);
    free_lines(second, n2);
    free_lines(part, n_part);
}

static void test_seed_leaves_a_catalog_with_products_alone(void **state)
{
    cl_seed_opts opts = {0};
    test_local lc;
    const cl_handle *module;
    catalog_product_input in = {0};
    catalog_product out = {0};
    char *lines[4] = {NULL};
    cl_ctx ctx;
    int created = -1;

    (void)state;
    assert_int_equal(test_local_open(&lc, &catalog_module, NULL), 0);
    module = &lc.handle;
    in.sku = "ONLY-1";
    in.name = "The only product";
    in.price.amount = 1;
    in.price.currency = "EUR";
    in.category = "books";
    cl_ctx_init(&ctx, 0);
    ctx.read_primary = 1; /* the seed must see the product just created */
    assert_int_equal(catalog_create_product(module, &ctx, &in, &out), CL_OK);
    cl_schema_free(&catalog_product_type, &out);
    assert_int_equal(catalog_seed(module, &ctx, &opts, &created), CL_OK);
    assert_int_equal(created, 0);
    assert_int_equal(snapshot(module, lines), 1);
    free_lines(lines, 1);
    test_local_close(&lc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_is_deterministic_and_a_limit_takes_its_start),
        cmocka_unit_test(test_seed_leaves_a_catalog_with_products_alone),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
