/* The catalog's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "local_catalog.h"

static local_catalog current;

/* Each test gets its own database file, so no test sees another's products. */
static const catalog_ops *local_setup(void)
{
    if (local_catalog_open(&current) != 0) {
        return NULL;
    }
    return catalog_module.ops;
}

static void local_teardown(void)
{
    local_catalog_close(&current);
}

int main(void)
{
    return catalog_contract_run("catalog_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
