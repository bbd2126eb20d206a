/*
 * Reservation expiry: the sweep with an injected clock (exact boundaries), and the
 * module's own sweeper thread giving stock back with nobody asking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cleave/config.h"
#include "internal.h"
#include "inventory/inventory.h"
#include "test_module.h"

static test_local inv;
static const inventory_ops *ops;

static int setup(void **state)
{
    (void)state;
    ops = inventory_module.ops;
    return test_local_open(&inv, &inventory_module, NULL);
}

static int teardown(void **state)
{
    (void)state;
    test_local_close(&inv);
    return 0;
}

static void stock_and_reserve(const char *order, int64_t qty, int64_t ttl_ms)
{
    inventory_stock_set set = {.sku = "MUG-1", .on_hand = 10};
    inventory_line line = {.sku = "MUG-1", .quantity = qty};
    inventory_reserve_request req = {.order_id = (char *)order, .ttl_ms = ttl_ms};
    inventory_reservation r = {0};
    inventory_stock s = {0};
    cl_ctx ctx;

    cl_ctx_init(&ctx, 10000);
    assert_int_equal(ops->set_stock(&ctx, &set, &s), CL_OK);
    cl_schema_free(&inventory_stock_type, &s);
    req.lines.v = &line;
    req.lines.n = 1;
    assert_int_equal(ops->reserve(&ctx, &req, &r), CL_OK);
    cl_schema_free(&inventory_reservation_type, &r);
}

static int64_t reserved(void)
{
    inventory_sku_ref ref = {.sku = "MUG-1"};
    inventory_stock s = {0};
    cl_ctx ctx;
    int64_t n;

    cl_ctx_init(&ctx, 10000);
    assert_int_equal(ops->get_stock(&ctx, &ref, &s), CL_OK);
    n = s.reserved;
    cl_schema_free(&inventory_stock_type, &s);
    return n;
}

static void test_sweep_expires_exactly_at_the_deadline(void **state)
{
    int64_t before = inventory__wall_ms();
    int64_t n = -1;
    cl_ctx ctx;

    (void)state;
    stock_and_reserve("order-1", 3, 60000);
    cl_ctx_init(&ctx, 10000);
    /* A minute minus a second (from before the call): not yet. */
    assert_int_equal(inventory__expire_at(&ctx, before + 59000, &n), CL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(reserved(), 3);
    /* Well past the deadline: given back, once. */
    assert_int_equal(inventory__expire_at(&ctx, before + 61000 + 10000, &n), CL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(reserved(), 0);
    assert_int_equal(inventory__expire_at(&ctx, before + 61000 + 10000, &n), CL_OK);
    assert_int_equal(n, 0);
}

static void test_sweeper_gives_stock_back_by_itself(void **state)
{
    char *env[] = {"CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS=10", NULL};
    const cl_settings settings = {"inventory", true, inventory_api.settings,
                                  inventory_api.nsettings};
    const cl_settings *modules[] = {&settings, NULL};
    struct timespec pause = {0, 5 * 1000000L};
    cl_module_env menv = {0};
    cl_config *cfg = NULL;
    cl_error err = {0};
    int64_t deadline;

    (void)state;
    assert_int_equal(cl_config_load(NULL, env, modules, &cfg, &err), CL_OK);
    menv.config = cfg;
    menv.db = inv.db;
    assert_int_equal(inventory_module.init(&menv, &err), CL_OK);
    assert_int_equal(inventory_module.start(&err), CL_OK);
    stock_and_reserve("order-1", 4, 1);
    /* Nobody calls expire: the module's sweeper must notice within the deadline. */
    deadline = cl_now_ms() + 10000;
    while (reserved() != 0) {
        assert_true(cl_now_ms() < deadline);
        nanosleep(&pause, NULL);
    }
    inventory_module.stop();
    cl_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_expires_exactly_at_the_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_gives_stock_back_by_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
