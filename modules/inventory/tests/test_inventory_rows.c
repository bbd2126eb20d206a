/*
 * The row count the twins test relies on (test_local_rows) sees a write to any table of
 * the inventory's database, not just the first one it lists: otherwise an instance that
 * wrote into its idle twin's database would go unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "inventory/inventory.h"
#include "test_module.h"

static test_local inv;

static int setup(void **state)
{
    (void)state;
    return test_local_open(&inv, &inventory_module, NULL);
}

static int teardown(void **state)
{
    (void)state;
    test_local_close(&inv);
    return 0;
}

static void test_rows_count_a_new_stock_record(void **state)
{
    inventory_stock_set set = {.sku = "MUG-1", .on_hand = 10};
    inventory_stock s = {0};
    long before, after;
    cl_ctx ctx;

    (void)state;
    before = test_local_rows(&inv);
    assert_true(before >= 0);
    cl_ctx_init(&ctx, 10000);
    assert_int_equal(inventory_set_stock(&inv.handle, &ctx, &set, &s), CL_OK);
    cl_schema_free(&inventory_stock_type, &s);
    after = test_local_rows(&inv);
    /* Exactly one row more: the new SKU's stock record. */
    assert_int_equal(after, before + 1);
    /* Counting again changes nothing. */
    assert_int_equal(test_local_rows(&inv), after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_count_a_new_stock_record, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
