/*
 * The inventory module's contract suite against two instances in one process, each on a
 * database of its own (tests/support/test_module.h, test_twins_run): the suite passes on
 * either while the other's database stays untouched.
 */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

int main(void)
{
    return test_twins_run("inventory_contract_twins", &inventory_module, NULL,
                          inventory_contract_run) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
