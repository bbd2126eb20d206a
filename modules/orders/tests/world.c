/* A local world for the orders' contract suite (see world.h). */
#include "world.h"

#include <string.h>

/* Dependencies first: the orders' create looks the others up. */
static const cl_module *const modules[WORLD_NMODULES] = {
    [WORLD_CATALOG] = &catalog_module,
    [WORLD_INVENTORY] = &inventory_module,
    [WORLD_PAYMENTS] = &payments_module,
    [WORLD_ORDERS] = &orders_module,
};

/*
 * The world being opened. The host's module lookup takes no argument of the caller's
 * (test_local_open leaves env->host NULL), and an instance looks its dependencies up only
 * in create, so the world under construction is where they come from.
 */
static orders_world *opening;

/* The host's module lookup: the modules of the world being opened, by name. */
static const cl_handle *lookup(const cl_module_env *env, const char *name)
{
    (void)env;
    for (int i = 0; opening != NULL && i < WORLD_NMODULES; i++) {
        if (strcmp(modules[i]->name, name) == 0) {
            return &opening->locals[i].handle;
        }
    }
    return NULL;
}

int orders_world_open(orders_world *wo)
{
    const test_local_options opt = {.start = 1, .module = lookup, .serving = 1};
    int rc = 0;

    memset(wo, 0, sizeof(*wo));
    opening = wo;
    for (int i = 0; rc == 0 && i < WORLD_NMODULES; i++) {
        rc = test_local_open(&wo->locals[i], modules[i], &opt);
    }
    opening = NULL;
    if (rc != 0) {
        orders_world_close(wo);
    }
    return rc;
}

void orders_world_close(orders_world *wo)
{
    for (int i = WORLD_NMODULES - 1; i >= 0; i--) {
        test_local_close(&wo->locals[i]);
    }
}

void orders_world_handles(orders_world *wo, orders_contract_world *w)
{
    w->catalog = &wo->locals[WORLD_CATALOG].handle;
    w->inventory = &wo->locals[WORLD_INVENTORY].handle;
    w->payments = &wo->locals[WORLD_PAYMENTS].handle;
    w->orders = &wo->locals[WORLD_ORDERS].handle;
}

int orders_world_catch_up(orders_world *wo)
{
    return pgtest_wait_replica(&wo->locals[WORLD_CATALOG].pg, 30000);
}

long orders_world_rows(orders_world *wo)
{
    long total = 0;

    for (int i = 0; i < WORLD_NMODULES; i++) {
        long n = test_local_rows(&wo->locals[i]);

        if (n < 0) {
            return -1;
        }
        total += n;
    }
    return total;
}
