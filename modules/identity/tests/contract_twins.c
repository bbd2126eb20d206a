/*
 * The identity module's contract suite against two instances in one process, each on a
 * database of its own (tests/support/test_module.h, test_twins_run): the suite passes on
 * either while the other's database stays untouched.
 */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

int main(void)
{
    char *env[] = {IDENTITY_CONTRACT_ENV_ARGON2, IDENTITY_CONTRACT_ENV_TTL, "CLEAVE_BUS_POLL_MS=20",
                   NULL};
    test_local_options opt = {.env = env, .bus = 1, .max_conns = 8};

    return test_twins_run("identity_contract_twins", &identity_module, &opt,
                          identity_contract_run) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
