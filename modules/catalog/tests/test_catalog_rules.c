/*
 * The local binding's own rules that the contract suite cannot reach: byte-level input
 * a JSON transport could not even carry (invalid UTF-8, 0xFF bytes), cursors, prefix
 * bounds and timestamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "catalog/catalog.h"
#include "test_module.h"

static void test_utf8_validation(void **state)
{
    static const char *const good[] = {
        "", "abc", "\xc3\x84pfel", "\xe2\x82\xac 5", "\xf0\x9d\x84\x9e", "\xf4\x8f\xbf\xbf"};
    static const char *const bad[] = {
        "\xff",             /* never in UTF-8 */
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xe2\x82",         /* cut short */
        "caf\xe9",          /* Latin-1 */
        "\x80",             /* lone continuation byte */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(catalog__utf8_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (catalog__utf8_valid(bad[i])) {
            fail_msg("bad UTF-8 case %zu accepted", i);
        }
    }
}

static void test_prefix_successor(void **state)
{
    char hi[8];

    (void)state;
    assert_true(catalog__prefix_successor("ab", hi, sizeof(hi)));
    assert_string_equal(hi, "ac");
    assert_true(catalog__prefix_successor("a\xff\xff", hi, sizeof(hi)));
    assert_string_equal(hi, "b");
    assert_true(catalog__prefix_successor("\xc3\x84", hi, sizeof(hi)));
    assert_string_equal(hi, "\xc3\x85");
    assert_false(catalog__prefix_successor("\xff\xff", hi, sizeof(hi)));
    assert_false(catalog__prefix_successor("", hi, sizeof(hi)));
    assert_false(catalog__prefix_successor("too long!", hi, sizeof(hi)));
}

static void test_cursor_round_trip(void **state)
{
    uint64_t d1 = catalog__filters_digest("books", NULL, NULL);
    uint64_t d2 = catalog__filters_digest(NULL, "books", NULL);
    uint64_t d3 = catalog__filters_digest("books", "", NULL);
    int64_t ids[] = {1, 42, INT64_MAX};
    cl_ctx ctx;

    (void)state;
    /* Which filter a value is given for, and absent versus empty, all count. */
    assert_true(d1 != d2);
    assert_true(d1 != d3);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *c = catalog__cursor_encode(ids[i], d1);
        int64_t got = 0;

        assert_non_null(c);
        /* URL-safe as it is: no padding, no '+' or '/'. */
        assert_null(strpbrk(c, "+/="));
        cl_ctx_init(&ctx, 0);
        assert_int_equal(catalog__cursor_decode(&ctx, c, d1, &got), CL_OK);
        assert_int_equal(got, ids[i]);
        assert_int_equal(catalog__cursor_decode(&ctx, c, d2, &got), CL_INVALID);
        assert_string_equal(ctx.err.field, "cursor");
        free(c);
    }
}

static void test_next_timestamp_always_moves_forward(void **state)
{
    char ts[32];

    (void)state;
    catalog__next_timestamp("2999-12-31T23:59:59.999Z", ts);
    assert_string_equal(ts, "3000-01-01T00:00:00.000Z");
    catalog__next_timestamp("2999-06-01T10:00:00.123Z", ts);
    assert_string_equal(ts, "2999-06-01T10:00:00.124Z");
    catalog__next_timestamp("2000-01-01T00:00:00.000Z", ts);
    assert_true(strcmp(ts, "2000-01-01T00:00:00.000Z") > 0);
    assert_int_equal(strlen(ts), 24);
}

static void test_local_refuses_bytes_json_cannot_carry(void **state)
{
    test_local lc;
    const cl_handle *module;
    catalog_product_input in = {0};
    catalog_product_update up = {0};
    catalog_product_query q = {0};
    catalog_product_page page = {0};
    catalog_product out = {0};
    cl_ctx ctx;

    (void)state;
    assert_int_equal(test_local_open(&lc, &catalog_module, NULL), 0);
    module = &lc.handle;
    in.sku = "UTF-1";
    in.name = "Caf\xe9";
    in.price.currency = "EUR";
    in.category = "books";
    cl_ctx_init(&ctx, 0);
    assert_int_equal(catalog_create_product(module, &ctx, &in, &out), CL_INVALID);
    assert_string_equal(ctx.err.field, "name");
    in.name = "Caf\xc3\xa9";
    in.description = "\xff";
    assert_int_equal(catalog_create_product(module, &ctx, &in, &out), CL_INVALID);
    assert_string_equal(ctx.err.field, "description");
    in.description = NULL;
    assert_int_equal(catalog_create_product(module, &ctx, &in, &out), CL_OK);
    up.id = out.id;
    up.changes.name = "\xc0\x80";
    cl_schema_free(&catalog_product_type, &out);
    assert_int_equal(catalog_update_product(module, &ctx, &up, &out), CL_INVALID);
    assert_string_equal(ctx.err.field, "changes.name");

    /*
     * Filters are refused unless they are UTF-8, like the names they match: PostgreSQL
     * cannot take such a parameter, and JSON cannot carry one. A valid prefix that ends
     * on a character boundary still matches.
     */
    q.name_prefix = "\xff";
    assert_int_equal(catalog_list_products(module, &ctx, &q, &page), CL_INVALID);
    assert_string_equal(ctx.err.field, "name_prefix");
    q.name_prefix = "Caf\xc3";
    assert_int_equal(catalog_list_products(module, &ctx, &q, &page), CL_INVALID);
    q.name_prefix = NULL;
    q.tag = "\xc0\x80";
    assert_int_equal(catalog_list_products(module, &ctx, &q, &page), CL_INVALID);
    assert_string_equal(ctx.err.field, "tag");
    q.tag = NULL;
    q.name_prefix = "Caf\xc3\xa9";
    ctx.read_primary = 1; /* the product created above, which a replica may not have yet */
    assert_int_equal(catalog_list_products(module, &ctx, &q, &page), CL_OK);
    assert_int_equal(page.items.n, 1);
    cl_schema_free(&catalog_product_page_type, &page);
    test_local_close(&lc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_prefix_successor),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_next_timestamp_always_moves_forward),
        cmocka_unit_test(test_local_refuses_bytes_json_cannot_carry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
