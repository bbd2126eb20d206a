/*
 * The orders' contract suite against the remote binding: a real cleave-orders process,
 * itself calling real cleave-catalog, cleave-inventory and cleave-payments processes
 * (each on its own data directory and loopback port), all through generated stubs.
 * Same assertions as the local run.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/rpc.h"
#include "contract.h"
#include "proc.h"

#define TOKEN    "contract-test-token"
#define NSERVICE 4

/* Dependencies first: cleave-orders is told where they listen. */
static const cl_module_api *const apis[NSERVICE] = {&catalog_api, &inventory_api, &payments_api,
                                                    &orders_api};
static char dir[256];
static test_proc procs[NSERVICE];
static bool running[NSERVICE];
static cl_rpc_client *clients[NSERVICE];
static char url_envs[NSERVICE][128];

static void remote_teardown(void)
{
    bool clean = true;

    for (int i = NSERVICE - 1; i >= 0; i--) {
        if (running[i]) {
            int status = test_proc_stop(&procs[i], SIGTERM);
            if (status != 0) {
                fprintf(stderr, "cleave-%s exited with %d\n", apis[i]->name, status);
                clean = false;
            }
            running[i] = false;
        }
        cl_rpc_client_free(clients[i]);
        clients[i] = NULL;
    }
    if (clean && dir[0] != '\0') {
        test_rmrf(dir);
    } else if (dir[0] != '\0') {
        fprintf(stderr, "logs kept in %s\n", dir);
    }
    dir[0] = '\0';
}

static int remote_setup(orders_contract_world *w)
{
    cl_rpc_options opt = {.token = TOKEN};
    cl_error err = {0};

    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return -1;
    }
    for (int i = 0; i < NSERVICE; i++) {
        const char *name = apis[i]->name;
        char data_env[512], log[512], bin[512], url[64], upper[32];
        char *argv[] = {bin, "serve", NULL};
        char *env[5 + NSERVICE] = {data_env, "CLEAVE_LISTEN=127.0.0.1:0",
                                   "CLEAVE_SERVICE_TOKEN=" TOKEN,
                                   "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations"};
        size_t k = 0;
        int port;

        /* Only cleave-orders calls the others; the rest would refuse unknown keys. */
        for (int d = 0; apis[i] == &orders_api && d < i; d++) {
            env[4 + d] = url_envs[d];
        }
        snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/%s-data", dir, name);
        snprintf(log, sizeof(log), "%s/cleave-%s.log", dir, name);
        snprintf(bin, sizeof(bin), "%s/cleave-%s", CLEAVE_BIN_DIR, name);
        if (test_proc_start(&procs[i], bin, argv, env, log) != 0) {
            return -1;
        }
        running[i] = true;
        port = test_proc_wait_port(&procs[i], 30000);
        if (port < 0) {
            fprintf(stderr, "cleave-%s did not start; see %s\n", name, log);
            return -1;
        }
        for (; name[k] != '\0' && k < sizeof(upper) - 1; k++) {
            upper[k] = (char)toupper((unsigned char)name[k]);
        }
        upper[k] = '\0';
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
        snprintf(url_envs[i], sizeof(url_envs[i]), "CLEAVE_%s_URL=%s", upper, url);
        if (cl_rpc_client_new(name, url, &opt, &clients[i], &err) != CL_OK) {
            fprintf(stderr, "%s\n", err.message);
            return -1;
        }
    }
    w->catalog = catalog_api.remote_ops(clients[0]);
    w->inventory = inventory_api.remote_ops(clients[1]);
    w->payments = payments_api.remote_ops(clients[2]);
    w->orders = orders_api.remote_ops(clients[3]);
    return 0;
}

int main(void)
{
    return orders_contract_run("orders_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
