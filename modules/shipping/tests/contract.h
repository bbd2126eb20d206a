/*
 * The shipping module's contract suite: written once against shipping_ops (through a cl_handle),
 * run against every binding (local: contract_local.c; remote: contract_remote.c). It uses nothing
 * but the operations table, so a binding passes it exactly when callers cannot tell it apart,
 * long-running carrier operations included.
 */
#ifndef SHIPPING_TESTS_CONTRACT_H
#define SHIPPING_TESTS_CONTRACT_H

#include "shipping/shipping.h"

/*
 * The carrier step every binding under test must be configured with
 * (CLEAVE_SHIPPING_CARRIER_MS): long enough that a client polling get_operation sees the
 * operation running, short enough to keep the suite quick.
 */
#define SHIPPING_CONTRACT_CARRIER_MS     "400"
#define SHIPPING_CONTRACT_CARRIER_MS_ENV "CLEAVE_SHIPPING_CARRIER_MS=" SHIPPING_CONTRACT_CARRIER_MS

/*
 * Runs every contract test as one cmocka group named after binding_name. Before each
 * test, setup must create a fresh shipping module with no shipment, whose long-running
 * operations run (a bus with shipping's operation kind registered and started), and
 * return its operations table (NULL on failure); teardown releases it afterwards.
 * Returns the number of failed tests (0: all passed).
 */
int shipping_contract_run(const char *binding_name, const cl_handle *(*setup)(void),
                          void (*teardown)(void));

#endif /* SHIPPING_TESTS_CONTRACT_H */
