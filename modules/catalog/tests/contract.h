/*
 * The catalog's contract suite: written once against catalog_ops (through a cl_handle), run
 * against every binding (local: contract_local.c; remote: contract_remote.c; two instances in
 * one process: contract_twins.c). It uses nothing but the operations table, so a binding
 * passes it exactly when callers cannot tell it apart.
 */
#ifndef CATALOG_TESTS_CONTRACT_H
#define CATALOG_TESTS_CONTRACT_H

#include "catalog/catalog.h"

/*
 * Runs every contract test as one cmocka group named after binding_name. Before each
 * test, setup must create a fresh catalog that has its reference categories (those of
 * the migrations) and no product, and return its handle (NULL on failure);
 * teardown releases it afterwards. Returns the number of failed tests (0: all passed).
 */
int catalog_contract_run(const char *binding_name, const cl_handle *(*setup)(void),
                         void (*teardown)(void));

#endif /* CATALOG_TESTS_CONTRACT_H */
