/*
 * A local world for the orders' contract suite: the catalog, inventory, payments and
 * orders implementations in this process, each an instance on a fresh database of its
 * own (the shared fixture: SQLite, or PostgreSQL with CL_TEST_DB=postgres), wired to each
 * other as the host wires them, with the saga workers running. Several worlds can live in
 * one process (contract_twins.c): each orders instance calls its own world's modules.
 */
#ifndef ORDERS_TESTS_WORLD_H
#define ORDERS_TESTS_WORLD_H

#include "contract.h"
#include "test_module.h"

enum { WORLD_CATALOG, WORLD_INVENTORY, WORLD_PAYMENTS, WORLD_ORDERS, WORLD_NMODULES };

typedef struct orders_world {
    test_local locals[WORLD_NMODULES]; /* indexed by the WORLD_ names */
} orders_world;

/*
 * Opens every module of wo, dependencies first (the orders' create looks the others up
 * in wo). wo must stay where it is until orders_world_close. Returns 0, or -1 after
 * printing why, with wo closed.
 */
int orders_world_open(orders_world *wo);

/* Closes wo, the orders first (their workers call the others until they stop). */
void orders_world_close(orders_world *wo);

/* Fills w with wo's handles (borrowed from wo until it closes); not replica_catch_up. */
void orders_world_handles(orders_world *wo, orders_contract_world *w);

/* Waits until wo's catalog replica, if any, has caught up: 0, or -1 after a deadline. */
int orders_world_catch_up(orders_world *wo);

/* The rows in every database of wo (test_local_rows), or -1 when one cannot be read. */
long orders_world_rows(orders_world *wo);

#endif /* ORDERS_TESTS_WORLD_H */
