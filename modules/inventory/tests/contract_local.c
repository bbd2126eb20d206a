/* The inventory's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "local_inventory.h"

static local_inventory current;

/* Each test gets its own database file, so no test sees another's stock. */
static const inventory_ops *local_setup(void)
{
    if (local_inventory_open(&current) != 0) {
        return NULL;
    }
    return inventory_module.ops;
}

static void local_teardown(void)
{
    local_inventory_close(&current);
}

int main(void)
{
    return inventory_contract_run("inventory_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
