/*
 * The identity module's contract suite: written once against identity_ops (through a cl_handle),
 * run against every binding (local: contract_local.c; remote: contract_remote.c; two
 * instances in one process: contract_twins.c). It uses nothing but the operations, so a
 * binding passes it exactly when callers cannot tell it apart.
 */
#ifndef IDENTITY_TESTS_CONTRACT_H
#define IDENTITY_TESTS_CONTRACT_H

#include "identity/identity.h"

/*
 * The longest name every binding under test must be configured with
 * (CLEAVE_IDENTITY_NAME_MAX): not the default, so the suite shows the setting is read.
 */
#define IDENTITY_CONTRACT_NAME_MAX     16
#define IDENTITY_CONTRACT_NAME_MAX_ENV "CLEAVE_IDENTITY_NAME_MAX=16"

/*
 * Runs every contract test as one cmocka group named after binding_name. Before each
 * test, setup must create a fresh identity module with no item and return its handle (NULL
 * on failure); teardown releases it afterwards. Returns the number of failed tests (0: all
 * passed).
 */
int identity_contract_run(const char *binding_name, const cl_handle *(*setup)(void),
                          void (*teardown)(void));

#endif /* IDENTITY_TESTS_CONTRACT_H */
