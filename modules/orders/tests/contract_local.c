/*
 * The orders' contract suite against the local binding: the catalog, inventory, payments
 * and orders implementations in this process, each on a fresh database of its own (the
 * shared fixture, so on SQLite and with CL_TEST_DB=postgres on PostgreSQL), wired to each
 * other as the host wires them; the saga workers run (world.h).
 */
#include <stdlib.h>

#include "contract.h"
#include "world.h"

static orders_world world;

static void local_teardown(void)
{
    orders_world_close(&world);
}

static int local_catch_up(void)
{
    return orders_world_catch_up(&world);
}

static int local_setup(orders_contract_world *w)
{
    if (orders_world_open(&world) != 0) {
        return -1;
    }
    orders_world_handles(&world, w);
    w->replica_catch_up = local_catch_up;
    return 0;
}

int main(void)
{
    return orders_contract_run("orders_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
