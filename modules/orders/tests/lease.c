/*
 * The saga's lease and fencing (ADR 0034), on the orders' own database: a lease
 * is exclusive while it lasts, another executor takes it over once it lapsed (on the
 * database's clock), each acquisition raises the epoch, and the old owner's step write is
 * refused after the takeover, leaving the order and its log as the new owner wrote them.
 * Runs on SQLite and, as orders_lease_pg, on PostgreSQL.
 *
 * The orders instance runs no executor (serving off): the test plays both executors
 * through the functions the saga's workers use. The modules it calls are never called,
 * so stand-ins with the right table versions do.
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
#include "test_module.h"

#define ORDER "ord-000000000000000000000001"

static const catalog_ops fake_catalog = {.version = CATALOG_OPS_VERSION};
static const inventory_ops fake_inventory = {.version = INVENTORY_OPS_VERSION};
static const payments_ops fake_payments = {.version = PAYMENTS_OPS_VERSION};
static const cl_handle catalog_handle = {.ops = &fake_catalog};
static const cl_handle inventory_handle = {.ops = &fake_inventory};
static const cl_handle payments_handle = {.ops = &fake_payments};

static const cl_handle *deps(const cl_module_env *env, const char *name)
{
    (void)env;
    return strcmp(name, "catalog") == 0     ? &catalog_handle
           : strcmp(name, "inventory") == 0 ? &inventory_handle
           : strcmp(name, "payments") == 0  ? &payments_handle
                                            : NULL;
}

static test_local t;

/* Runs sql (no parameters, no rows) on the orders' database. */
static void exec(const char *sql)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};

    assert_int_equal(cl_db_acquire(t.db, NULL, &conn, &err), CL_OK);
    if (cl_db_exec(conn, sql, &err) != CL_OK) {
        fail_msg("%s: %s", sql, err.message);
    }
    cl_db_release(conn);
}

/* The first column of the first row of sql (text), into out[size]; "" when NULL. */
static void query(const char *sql, char *out, size_t size)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;

    assert_int_equal(cl_db_acquire(t.db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    snprintf(out, size, "%s", cl_stmt_text(st, 0) != NULL ? cl_stmt_text(st, 0) : "");
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);
}

static int setup(void **state)
{
    static char *const config[] = {"CLEAVE_ORDERS_LEASE_MS=60000",
                                   "CLEAVE_ORDERS_LEASE_RENEW_MS=1000", NULL};
    test_local_options opt = {.env = config, .module = deps};

    (void)state;
    if (test_local_open(&t, &orders_module, &opt) != 0) {
        return -1;
    }
    /* An order in flight with no lease, as one placed before leases existed. */
    exec("INSERT INTO orders (id, account_id, status, step, total_amount, currency, created_at, "
         "updated_at) VALUES ('" ORDER "', 'acc-1', 'pending', 'reserve', 100, 'EUR', "
         "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_local_close(&t);
    return 0;
}

static bool take(const char *owner, orders__fence *fence)
{
    struct orders_self *self = t.handle.self;
    bool taken = false;
    cl_ctx ctx;

    cl_ctx_init(&ctx, 10000);
    /* Each executor on a host of its own: a host's own leases are its to take back. */
    if (orders__lease_take(self, &ctx, ORDER, owner, owner, fence, &taken) != CL_OK) {
        fail_msg("taking the lease: %s", ctx.err.message);
    }
    return taken;
}

static cl_status record(const orders__fence *fence, const char *next, cl_ctx *ctx)
{
    const orders__entry entry = {"reserve", "ok", "reserved"};

    cl_ctx_init(ctx, 10000);
    return orders__saga_record(t.handle.self, ctx, ORDER, fence, next, "pending", NULL, &entry, 1,
                               NULL, NULL);
}

static void test_orders_lease_refuses_a_stale_executors_write(void **state)
{
    orders__fence a = {0}, b = {0}, again = {0};
    char out[128];
    cl_ctx ctx;

    (void)state;
    assert_true(take("exe-a", &a));
    assert_int_equal(a.epoch, 1);
    /* A live lease is exclusive: b cannot have it while it lasts (60 s). */
    assert_false(take("exe-b", &b));

    /* a stalls past its lease (a pause, a partition): its expiry is behind the database's clock. */
    exec("UPDATE orders SET lease_until = lease_until - 120000 WHERE id = '" ORDER "'");
    assert_true(take("exe-b", &b));
    assert_int_equal(b.epoch, 2);
    /* Taken over: the lease is b's again for 60 s, a cannot take it back. */
    assert_false(take("exe-a", &again));

    /* a's step write, with the epoch it held, is refused and writes nothing. */
    assert_int_equal(record(&a, "authorize", &ctx), CL_CONFLICT);
    assert_string_equal(ctx.err.field, "lease");
    query("SELECT step FROM orders WHERE id = '" ORDER "'", out, sizeof(out));
    assert_string_equal(out, "reserve");
    query("SELECT count(*) FROM saga_log WHERE order_id = '" ORDER "'", out, sizeof(out));
    assert_string_equal(out, "0");

    /* b's goes through, and the log names who wrote it under which epoch. */
    assert_int_equal(record(&b, "authorize", &ctx), CL_OK);
    query("SELECT step FROM orders WHERE id = '" ORDER "'", out, sizeof(out));
    assert_string_equal(out, "authorize");
    query("SELECT executor || ':' || CAST(epoch AS TEXT) FROM saga_log WHERE order_id = '" ORDER
          "'",
          out, sizeof(out));
    assert_string_equal(out, "exe-b:2");

    /* The same executor under an older epoch of its own is stale too. */
    assert_true(take("exe-b", &again));
    assert_int_equal(again.epoch, 3);
    assert_int_equal(record(&b, "commit", &ctx), CL_CONFLICT);
    assert_int_equal(record(&again, "commit", &ctx), CL_OK);

    /* A restarted process under b's host id takes b's lease back at once: b is dead. */
    {
        struct orders_self *self = t.handle.self;
        orders__fence next = {0};
        bool taken = false;

        cl_ctx_init(&ctx, 10000);
        assert_int_equal(orders__lease_take(self, &ctx, ORDER, "exe-b", "exe-b2", &next, &taken),
                         CL_OK);
        assert_true(taken);
        assert_int_equal(next.epoch, 4);
        assert_int_equal(record(&again, "capture", &ctx), CL_CONFLICT);
    }

    /* A final order is leased by nobody. */
    exec("UPDATE orders SET status = 'confirmed', step = 'done', lease_until = 0 WHERE id = '" ORDER
         "'");
    assert_false(take("exe-c", &again));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_orders_lease_refuses_a_stale_executors_write, setup,
                                        teardown),
    };

    return cmocka_run_group_tests_name("orders_lease", tests, NULL, NULL);
}
