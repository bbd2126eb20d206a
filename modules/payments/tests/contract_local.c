/* The payments's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "local_payments.h"

static local_payments current;

/* Each test gets its own database file, so no test sees another's accounts. */
static const payments_ops *local_setup(void)
{
    if (local_payments_open(&current) != 0) {
        return NULL;
    }
    return payments_module.ops;
}

static void local_teardown(void)
{
    local_payments_close(&current);
}

int main(void)
{
    return payments_contract_run("payments_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
