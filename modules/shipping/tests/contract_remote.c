/*
 * The shipping module's contract suite against the remote binding: every test talks to a
 * real cleave-shipping process of its own (fresh data directory, loopback port, service
 * token) through the generated client stub. Same assertions as the local run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cleave/rpc.h"
#include "contract.h"
#include "proc.h"

#define TOKEN "contract-test-token"

static char dir[256];
static test_proc service;
static cl_rpc_client *client;

static const shipping_ops *remote_setup(void)
{
    char data_env[512], log[512], bin[512], url[64];
    char *argv[] = {"cleave-shipping", "serve", NULL};
    char *env[] = {data_env,
                   "CLEAVE_LISTEN=127.0.0.1:0",
                   "CLEAVE_SERVICE_TOKEN=" TOKEN,
                   "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations",
                   SHIPPING_CONTRACT_CARRIER_MS_ENV,
                   "CLEAVE_BUS_POLL_MS=20",
                   NULL};
    cl_rpc_options opt = {.token = TOKEN};
    cl_error err = {0};
    int port;

    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return NULL;
    }
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", dir);
    snprintf(log, sizeof(log), "%s/cleave-shipping.log", dir);
    snprintf(bin, sizeof(bin), "%s/cleave-shipping", CLEAVE_BIN_DIR);
    if (test_proc_start(&service, bin, argv, env, log) != 0) {
        return NULL;
    }
    port = test_proc_wait_port(&service, 30000);
    if (port < 0) {
        fprintf(stderr, "cleave-shipping did not start; see %s\n", log);
        return NULL;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (cl_rpc_client_new("shipping", url, &opt, &client, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    return shipping_api.remote_ops(client);
}

static void remote_teardown(void)
{
    int status = test_proc_stop(&service, SIGTERM);

    if (status != 0) {
        fprintf(stderr, "cleave-shipping exited with %d; log kept in %s\n", status, dir);
    } else {
        test_rmrf(dir);
    }
    cl_rpc_client_free(client);
    client = NULL;
}

int main(void)
{
    return shipping_contract_run("shipping_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
