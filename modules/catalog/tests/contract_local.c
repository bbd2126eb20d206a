/* The catalog module's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

static test_local current;

/* Each test gets its own database, so no test sees another's products. */
static const cl_handle *local_setup(void)
{
    return test_local_open(&current, &catalog_module, NULL) == 0 ? &current.handle : NULL;
}

static void local_teardown(void)
{
    test_local_close(&current);
}

int main(void)
{
    return catalog_contract_run("catalog_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
