/*
 * The orders' contract suite against the local binding: the catalog, inventory, payments
 * and orders implementations in this process, each on a fresh database of its own (the
 * shared fixture, so on SQLite and with CL_TEST_DB=postgres on PostgreSQL), wired to each
 * other as the host wires them; the saga workers run.
 */
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "test_module.h"

#define NMODULES 4

/* Dependencies first: the orders' init looks the others up. */
static const cl_module *const modules[NMODULES] = {&catalog_module, &inventory_module,
                                                   &payments_module, &orders_module};
static test_local locals[NMODULES];

/* The host's module_ops: every module of this process, by name. */
static const void *lookup(const cl_module_env *env, const char *name)
{
    (void)env;
    for (int i = 0; i < NMODULES; i++) {
        if (strcmp(modules[i]->name, name) == 0) {
            return modules[i]->ops;
        }
    }
    return NULL;
}

static void local_teardown(void)
{
    /* The orders first: their saga workers call the others until they stop. */
    for (int i = NMODULES - 1; i >= 0; i--) {
        test_local_close(&locals[i]);
    }
}

static int local_catch_up(void)
{
    return pgtest_wait_replica(&locals[0].pg, 30000);
}

static int local_setup(orders_contract_world *w)
{
    const test_local_options opt = {.start = 1, .module_ops = lookup, .serving = 1};

    for (int i = 0; i < NMODULES; i++) {
        if (test_local_open(&locals[i], modules[i], &opt) != 0) {
            local_teardown();
            return -1;
        }
    }
    w->catalog = catalog_module.ops;
    w->inventory = inventory_module.ops;
    w->payments = payments_module.ops;
    w->orders = orders_module.ops;
    w->replica_catch_up = local_catch_up;
    return 0;
}

int main(void)
{
    return orders_contract_run("orders_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
