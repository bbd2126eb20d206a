/*
 * The orders' contract suite against the remote binding: a real cleave-orders process,
 * itself calling real cleave-catalog, cleave-inventory and cleave-payments processes
 * (each on its own data directory, database and loopback port: the shared fixture, so on
 * SQLite and with CL_TEST_DB=postgres on PostgreSQL), all through generated stubs.
 * Same assertions as the local run.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "contract.h"
#include "test_module.h"

#define NSERVICE 4

/* Dependencies first: cleave-orders is told where they listen. */
static const cl_module_api *const apis[NSERVICE] = {&catalog_api, &inventory_api, &payments_api,
                                                    &orders_api};
static test_service services[NSERVICE];
static char url_envs[NSERVICE][128];

static void remote_teardown(void)
{
    for (int i = NSERVICE - 1; i >= 0; i--) {
        /* test_service_stop says which service exited badly and keeps its log. */
        test_service_stop(&services[i]);
    }
}

static int remote_catch_up(void)
{
    return pgtest_wait_replica(&services[0].db.pg, 30000);
}

static int remote_setup(orders_contract_world *w)
{
    for (int i = 0; i < NSERVICE; i++) {
        const char *name = apis[i]->name;
        /* Only cleave-orders calls the others; the rest would refuse unknown keys. */
        char *env[NSERVICE + 1] = {NULL};
        char upper[32];
        size_t k = 0;

        for (int d = 0; apis[i] == &orders_api && d < i; d++) {
            env[d] = url_envs[d];
        }
        if (test_service_start(&services[i], apis[i], env) != 0) {
            remote_teardown();
            return -1;
        }
        for (; name[k] != '\0' && k < sizeof(upper) - 1; k++) {
            upper[k] = (char)toupper((unsigned char)name[k]);
        }
        upper[k] = '\0';
        snprintf(url_envs[i], sizeof(url_envs[i]), "CLEAVE_%s_URL=%s", upper, services[i].url);
    }
    w->catalog = &services[0].handle;
    w->inventory = &services[1].handle;
    w->payments = &services[2].handle;
    w->orders = &services[3].handle;
    w->replica_catch_up = remote_catch_up;
    return 0;
}

int main(void)
{
    return orders_contract_run("orders_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
