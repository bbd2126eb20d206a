/*
 * The stale fallback (ADR 0033). With the catalog extracted, a product read while its
 * service is up is answered again, with the same body, while the service is down: 200,
 * marked Cache-Status (a hit, stale) and Age. A product never read answers 503
 * problem+json. With inventory and payments extracted, stock and balances are never
 * served stale: 503 as soon as their services are down, however recently they were read.
 * And no operation but the catalog's three public reads is declared stale-tolerant.
 * The gateway's read cache is off here: within its TTL it answers before the fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "client.h"
#include "identity/identity.h"
#include "inventory/inventory.h"
#include "orders/orders.h"
#include "payments/payments.h"
#include "shipping/shipping.h"
#include "shop.h"
#include "topology.h"

static topology topo;

static void get(const char *path, test_resp *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(test_http(topo.base_url, "GET", path, NULL, 0, NULL, r), 0);
}

static void test_catalog_reads_are_served_stale_while_catalog_is_down(void **state)
{
    test_resp warm, stale, never, list_warm, list_stale;

    (void)state;
    get("/api/v1/products/17", &warm);
    assert_int_equal(warm.status, 200);
    assert_string_equal(warm.cache_status, "");
    get("/api/v1/products?limit=5", &list_warm);
    assert_int_equal(list_warm.status, 200);

    assert_int_equal(topology_stop_module(&topo, "catalog"), 0);

    get("/api/v1/products/17", &stale);
    assert_int_equal(stale.status, 200);
    assert_string_equal(stale.body, warm.body);
    assert_non_null(strstr(stale.cache_status, "hit"));
    assert_non_null(strstr(stale.cache_status, "ttl=-"));
    assert_non_null(strstr(stale.cache_status, "stale"));
    assert_true(stale.age[0] != '\0');
    get("/api/v1/products?limit=5", &list_stale);
    assert_int_equal(list_stale.status, 200);
    assert_string_equal(list_stale.body, list_warm.body);
    assert_non_null(strstr(list_stale.cache_status, "stale"));

    /* Never read: nothing to fall back on. */
    get("/api/v1/products/18", &never);
    assert_true(test_is_problem(&never, 503));
    assert_string_equal(never.cache_status, "");

    test_resp_free(&warm);
    test_resp_free(&stale);
    test_resp_free(&never);
    test_resp_free(&list_warm);
    test_resp_free(&list_stale);
    assert_int_equal(topology_restart_module(&topo, "catalog"), 0);
}

static void test_stock_and_balances_are_never_stale(void **state)
{
    test_resp stock, account, r;
    json_t *acc;
    char path[128];

    (void)state;
    acc = test_call(topo.base_url, "POST", "/api/v1/accounts",
                    "{\"owner\":\"Stale\",\"currency\":\"EUR\"}", 201);
    assert_non_null(acc);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s",
             json_string_value(json_object_get(acc, "id")));
    json_decref(acc);
    get("/api/v1/inventory/SKU-000001", &stock);
    assert_int_equal(stock.status, 200);
    get(path, &account);
    assert_int_equal(account.status, 200);

    assert_int_equal(topology_stop_module(&topo, "inventory"), 0);
    assert_int_equal(topology_stop_module(&topo, "payments"), 0);

    get("/api/v1/inventory/SKU-000001", &r);
    assert_true(test_is_problem(&r, 503));
    assert_string_equal(r.cache_status, "");
    test_resp_free(&r);
    get(path, &r);
    assert_true(test_is_problem(&r, 503));
    assert_string_equal(r.cache_status, "");
    test_resp_free(&r);
    test_resp_free(&stock);
    test_resp_free(&account);
}

/* Only reads may opt in, and of the shop's only the catalog's public ones. */
static void test_only_catalog_reads_are_declared_stale_tolerant(void **state)
{
    const struct {
        const cl_op *ops;
        size_t n;
    } modules[] = {
        {catalog_op_list, catalog_op_count},   {inventory_op_list, inventory_op_count},
        {payments_op_list, payments_op_count}, {orders_op_list, orders_op_count},
        {identity_op_list, identity_op_count}, {shipping_op_list, shipping_op_count},
    };
    int stale = 0;

    (void)state;
    for (size_t m = 0; m < sizeof(modules) / sizeof(modules[0]); m++) {
        for (size_t i = 0; i < modules[m].n; i++) {
            const cl_op *op = &modules[m].ops[i];

            if ((op->flags & CL_OP_STALE_OK) == 0) {
                continue;
            }
            assert_true((op->flags & CL_OP_READ) != 0);
            assert_ptr_equal(modules[m].ops, catalog_op_list);
            assert_true(strcmp(op->name, "get_product") == 0 ||
                        strcmp(op->name, "list_products") == 0 ||
                        strcmp(op->name, "list_categories") == 0);
            stale++;
        }
    }
    assert_int_equal(stale, 3);
}

static int start_catalog(void **state)
{
    /*
     * The gateway's read cache (ADR 0042) would answer a read made within its TTL, fresh
     * and unmarked, before the remote binding is asked: off, so that every read here
     * reaches the binding whose fallback is under test.
     */
    char *const extra[] = {"CLEAVE_CACHE_TTL_MS=0", NULL};

    (void)state;
    return topology_start_with(&topo, "catalog-extracted", TOPOLOGY_SEED_SMALL, extra);
}

static int start_inventory_payments(void **state)
{
    (void)state;
    return topology_start(&topo, "inventory+payments-extracted", TOPOLOGY_SEED_SMALL);
}

static int stop(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

int main(void)
{
    const struct CMUnitTest catalog[] = {
        cmocka_unit_test(test_only_catalog_reads_are_declared_stale_tolerant),
        cmocka_unit_test(test_catalog_reads_are_served_stale_while_catalog_is_down),
    };
    const struct CMUnitTest money[] = {
        cmocka_unit_test(test_stock_and_balances_are_never_stale),
    };
    int failed = cmocka_run_group_tests_name("catalog", catalog, start_catalog, stop);

    failed += cmocka_run_group_tests_name("stock-and-money", money, start_inventory_payments, stop);
    return failed;
}
