/*
 * The orders' contract suite: written once against orders_ops (through a cl_handle), run
 * against every binding (local: contract_local.c; remote: contract_remote.c, a real
 * cleave-orders process; twins: contract_twins.c, two local worlds in one process).
 * Orders call the catalog, inventory and payments, so a binding comes with theirs: the
 * suite makes its products, stock and accounts through them, never through SQL.
 */
#ifndef ORDERS_TESTS_CONTRACT_H
#define ORDERS_TESTS_CONTRACT_H

#include "catalog/catalog.h"
#include "inventory/inventory.h"
#include "orders/orders.h"
#include "payments/payments.h"

typedef struct orders_contract_world {
    const cl_handle *orders; /* each borrowed from the binding until teardown */
    const cl_handle *catalog;
    const cl_handle *inventory;
    const cl_handle *payments;
    /*
     * Waits until the catalog's read replica, if any, has what the suite wrote: the orders
     * price lines from it, and a replica does not promise another caller's writes (ADR
     * 0011). 0, or -1 after a deadline.
     */
    int (*replica_catch_up)(void);
} orders_contract_world;

/*
 * Runs every contract test as one cmocka group named binding_name. setup is called once
 * before the group: a fresh shop whose orders run their sagas (tests use names of their
 * own, so they share it); teardown once after. Returns the number of failed tests.
 */
int orders_contract_run(const char *binding_name, int (*setup)(orders_contract_world *w),
                        void (*teardown)(void));

#endif /* ORDERS_TESTS_CONTRACT_H */
