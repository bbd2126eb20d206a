/* The shipping module's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "local_shipping.h"

static local_shipping current;

/* Each test gets its own database file and bus, so no test sees another's shipments. */
static const shipping_ops *local_setup(void)
{
    char *env[] = {SHIPPING_CONTRACT_CARRIER_MS_ENV, "CLEAVE_BUS_POLL_MS=20", NULL};

    if (local_shipping_open(&current, env) != 0) {
        return NULL;
    }
    return shipping_module.ops;
}

static void local_teardown(void)
{
    local_shipping_close(&current);
}

int main(void)
{
    return shipping_contract_run("shipping_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
