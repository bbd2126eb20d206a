/*
 * Reservation expiry: the sweep of one instance with an injected clock (exact
 * boundaries), and each instance's own sweeper thread giving the stock of its own
 * database back with nobody asking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cleave/util.h"
#include "internal.h"
#include "inventory/inventory.h"
#include "test_module.h"

/* A sweeper that wakes often, so that the tests wait milliseconds, not the default. */
static char *sweeper_env[] = {"CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS=10", NULL};

static test_local inv;
static test_local twin;

static int setup(void **state)
{
    (void)state;
    return test_local_open(&inv, &inventory_module, NULL);
}

/* As the host does when it serves: the instance's start hook runs its sweeper. */
static int setup_started(void **state)
{
    test_local_options opt = {.env = sweeper_env, .start = 1};

    (void)state;
    return test_local_open(&inv, &inventory_module, &opt);
}

/* Two started instances in this one process, each on a database of its own. */
static int setup_twins(void **state)
{
    test_local_options opt = {.env = sweeper_env, .start = 1};

    (void)state;
    if (test_local_open(&inv, &inventory_module, &opt) != 0) {
        return -1;
    }
    if (test_local_open(&twin, &inventory_module, &opt) != 0) {
        test_local_close(&inv);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_local_close(&twin);
    test_local_close(&inv);
    memset(&twin, 0, sizeof(twin));
    memset(&inv, 0, sizeof(inv));
    return 0;
}

static void stock_and_reserve(const cl_handle *m, const char *order, int64_t qty, int64_t ttl_ms)
{
    inventory_stock_set set = {.sku = "MUG-1", .on_hand = 10};
    inventory_line line = {.sku = "MUG-1", .quantity = qty};
    inventory_reserve_request req = {.order_id = (char *)order, .ttl_ms = ttl_ms};
    inventory_reservation r = {0};
    inventory_stock s = {0};
    cl_ctx ctx;

    cl_ctx_init(&ctx, 10000);
    assert_int_equal(inventory_set_stock(m, &ctx, &set, &s), CL_OK);
    cl_schema_free(&inventory_stock_type, &s);
    req.lines.v = &line;
    req.lines.n = 1;
    assert_int_equal(inventory_reserve(m, &ctx, &req, &r), CL_OK);
    cl_schema_free(&inventory_reservation_type, &r);
}

static int64_t reserved(const cl_handle *m)
{
    inventory_sku_ref ref = {.sku = "MUG-1"};
    inventory_stock s = {0};
    cl_ctx ctx;
    int64_t n;

    cl_ctx_init(&ctx, 10000);
    assert_int_equal(inventory_get_stock(m, &ctx, &ref, &s), CL_OK);
    n = s.reserved;
    cl_schema_free(&inventory_stock_type, &s);
    return n;
}

/* Polls until m has nothing reserved; fails after 10 seconds. */
static void wait_until_nothing_reserved(const cl_handle *m)
{
    struct timespec pause = {0, 5 * 1000000L};
    int64_t deadline = cl_now_ms() + 10000;

    while (reserved(m) != 0) {
        assert_true(cl_now_ms() < deadline);
        nanosleep(&pause, NULL);
    }
}

static void test_sweep_expires_exactly_at_the_deadline(void **state)
{
    int64_t before = cl_wall_ms();
    int64_t n = -1;
    cl_ctx ctx;

    (void)state;
    stock_and_reserve(&inv.handle, "order-1", 3, 60000);
    cl_ctx_init(&ctx, 10000);
    /* A minute minus a second (from before the call): not yet. */
    assert_int_equal(inventory__expire_at(inv.handle.self, &ctx, before + 59000, &n), CL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(reserved(&inv.handle), 3);
    /* Well past the deadline: given back, once. */
    assert_int_equal(inventory__expire_at(inv.handle.self, &ctx, before + 61000 + 10000, &n),
                     CL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(reserved(&inv.handle), 0);
    assert_int_equal(inventory__expire_at(inv.handle.self, &ctx, before + 61000 + 10000, &n),
                     CL_OK);
    assert_int_equal(n, 0);
}

static void test_sweeper_gives_stock_back_by_itself(void **state)
{
    (void)state;
    stock_and_reserve(&inv.handle, "order-1", 4, 1);
    /* Nobody calls expire: the instance's sweeper must notice within the deadline. */
    wait_until_nothing_reserved(&inv.handle);
}

static void test_each_instance_sweeps_its_own_database(void **state)
{
    (void)state;
    /* The same order id in both: each database has its own reservation to give back. */
    stock_and_reserve(&inv.handle, "order-1", 4, 1);
    stock_and_reserve(&twin.handle, "order-1", 2, 1);
    wait_until_nothing_reserved(&inv.handle);
    wait_until_nothing_reserved(&twin.handle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_expires_exactly_at_the_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_gives_stock_back_by_itself, setup_started,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_each_instance_sweeps_its_own_database, setup_twins,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
