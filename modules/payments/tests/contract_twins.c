/*
 * The payments module's contract suite against two instances in one process, each on a
 * database of its own (tests/support/test_module.h, test_twins_run): the suite passes on
 * either while the other's database stays untouched.
 */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

int main(void)
{
    return test_twins_run("payments_contract_twins", &payments_module, NULL,
                          payments_contract_run) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
