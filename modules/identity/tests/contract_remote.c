/*
 * The identity module's contract suite against the remote binding: every test talks to a real
 * cleave-identity process of its own (fresh data directory and database, loopback port,
 * service token) through the generated client stub. Same assertions as the local run.
 */
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

static test_service service;

static const cl_handle *remote_setup(void)
{
    char *env[] = {IDENTITY_CONTRACT_ENV_ARGON2, IDENTITY_CONTRACT_ENV_TTL, "CLEAVE_BUS_POLL_MS=20",
                   NULL};

    return test_service_start(&service, &identity_api, env) == 0 ? &service.handle : NULL;
}

static void remote_teardown(void)
{
    test_service_stop(&service);
}

int main(void)
{
    return identity_contract_run("identity_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
