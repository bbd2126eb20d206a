/*
 * The payments' contract suite: written once against payments_ops (through a cl_handle), run
 * against every binding (local: contract_local.c; remote: contract_remote.c). It uses nothing but
 * the operations table, so a binding passes it exactly when callers cannot tell it apart.
 */
#ifndef PAYMENTS_TESTS_CONTRACT_H
#define PAYMENTS_TESTS_CONTRACT_H

#include "payments/payments.h"

/*
 * Runs every contract test as one cmocka group named after binding_name. Before each
 * test, setup must create a fresh, empty ledger and return its operations table (NULL
 * on failure); teardown releases it afterwards. Returns the number of failed tests.
 */
int payments_contract_run(const char *binding_name, const cl_handle *(*setup)(void),
                          void (*teardown)(void));

#endif /* PAYMENTS_TESTS_CONTRACT_H */
