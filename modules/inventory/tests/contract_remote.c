/*
 * The inventory module's contract suite against the remote binding: every test talks to a real
 * cleave-inventory process of its own (fresh data directory and database, loopback port,
 * service token) through the generated client stub. Same assertions as the local run.
 */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

static test_service service;

static const cl_handle *remote_setup(void)
{
    return test_service_start(&service, &inventory_api, NULL) == 0 ? &service.handle : NULL;
}

static void remote_teardown(void)
{
    test_service_stop(&service);
}

int main(void)
{
    return inventory_contract_run("inventory_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
