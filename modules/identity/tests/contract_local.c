/* The identity module's contract suite against the local binding: the module in process. */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

static test_local current;

/* Each test gets its own database, so no test sees another's items. */
static const cl_handle *local_setup(void)
{
    char *env[] = {IDENTITY_CONTRACT_ENV_ARGON2, IDENTITY_CONTRACT_ENV_TTL, "CLEAVE_BUS_POLL_MS=20",
                   NULL};
    /* As the host: an in-process bus relays the outbox; a few connections. */
    test_local_options opt = {.env = env, .bus = 1, .max_conns = 8};

    return test_local_open(&current, &identity_module, &opt) == 0 ? &current.handle : NULL;
}

static void local_teardown(void)
{
    test_local_close(&current);
}

int main(void)
{
    return identity_contract_run("identity_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
