/*
 * The orders' contract suite against two complete local worlds in one process (ADR 0016),
 * each with its own catalog, inventory, payments and orders instances on databases of
 * their own (world.h): the suite runs against world A's orders while world B stays idle,
 * then the other way round, and not one row of the idle world's databases may change. An
 * orders instance that kept its saga executor, its dependencies or its database where the
 * other instance can reach them (a file static) fails here.
 */
#include <stdio.h>
#include <stdlib.h>

#include "contract.h"
#include "world.h"

static orders_world worlds[2];
static int active;      /* the world the suite runs against this pass */
static long idle_rows;  /* the idle world's rows when the pass started */
static int idle_failed; /* idle worlds found touched */

static int twins_catch_up(void)
{
    return orders_world_catch_up(&worlds[active]);
}

static int twins_setup(orders_contract_world *w)
{
    if (orders_world_open(&worlds[0]) != 0) {
        return -1;
    }
    if (orders_world_open(&worlds[1]) != 0) {
        orders_world_close(&worlds[0]);
        return -1;
    }
    idle_rows = orders_world_rows(&worlds[1 - active]);
    if (idle_rows < 0) {
        fprintf(stderr, "two orders worlds: cannot count the idle one's rows\n");
        orders_world_close(&worlds[1]);
        orders_world_close(&worlds[0]);
        return -1;
    }
    orders_world_handles(&worlds[active], w);
    w->replica_catch_up = twins_catch_up;
    return 0;
}

static void twins_teardown(void)
{
    long rows = orders_world_rows(&worlds[1 - active]);

    if (rows < 0 || rows != idle_rows) {
        fprintf(stderr,
                "two orders worlds: the idle one's databases went from %ld to %ld rows while "
                "the suite ran against the other\n",
                idle_rows, rows);
        idle_failed++;
    }
    orders_world_close(&worlds[1]);
    orders_world_close(&worlds[0]);
}

int main(void)
{
    int failed = 0;

    for (active = 0; active < 2; active++) {
        failed += orders_contract_run(active == 0 ? "orders_contract_twins (world A of 2)"
                                                  : "orders_contract_twins (world B of 2)",
                                      twins_setup, twins_teardown);
    }
    return failed + idle_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
