/*
 * The identity module's contract suite: written once against identity_ops (through a
 * cl_handle), run against every binding (local: contract_local.c; remote:
 * contract_remote.c; two instances in one process: contract_twins.c). It uses nothing but
 * the operations, so a binding passes it exactly when callers cannot tell them apart.
 */
#ifndef IDENTITY_TESTS_CONTRACT_H
#define IDENTITY_TESTS_CONTRACT_H

#include "identity/identity.h"

/*
 * Settings every binding under test must be configured with: a cheaper argon2id (the
 * suite hashes dozens of passwords) and the shortest access token lifetime, not the
 * default, so the suite shows both settings are read.
 */
#define IDENTITY_CONTRACT_ENV_ARGON2 "CLEAVE_IDENTITY_ARGON2_M_KIB=4096"
#define IDENTITY_CONTRACT_ENV_TTL    "CLEAVE_IDENTITY_ACCESS_TOKEN_SECONDS=300"
#define IDENTITY_CONTRACT_TTL        300

/*
 * Runs every contract test as one cmocka group named after binding_name. Before each
 * test, setup must create a fresh identity module with no user and return its handle
 * (NULL on failure); teardown releases it afterwards. Returns the number of failed tests.
 */
int identity_contract_run(const char *binding_name, const cl_handle *(*setup)(void),
                          void (*teardown)(void));

#endif /* IDENTITY_TESTS_CONTRACT_H */
