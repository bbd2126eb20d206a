/*
 * The catalog's contract suite against the remote binding: every test talks to a real
 * cleave-catalog process of its own (fresh data directory, loopback port, service
 * token) through the generated client stub. Same assertions as the local run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cleave/rpc.h"
#include "contract.h"
#include "pgtest.h"
#include "proc.h"

#define TOKEN "contract-test-token"

static char dir[256];
static test_proc service;
static cl_rpc_client *client;
static pgtest pg;

/*
 * On PostgreSQL (CL_TEST_DB=postgres): a fresh database, migrated by `cleave-catalog
 * migrate` with admin credentials; the service then runs as the catalog's app role with
 * the replica for its reads. Adds the service's variables to env from index at.
 */
static int setup_postgres(char **env, int at, char *db_env, char *replica_env, size_t size)
{
    char url[512], admin_env[600], out[4096], bin[512];
    char *argv[] = {"cleave-catalog", "migrate", NULL};
    char *menv[] = {env[0], env[3], db_env, admin_env, NULL};

    if (pgtest_load(&pg) != 0 || pgtest_db_create(&pg) != 0) {
        return -1;
    }
    pgtest_url(pg.primary, pg.db, url, sizeof(url));
    snprintf(db_env, size, "CLEAVE_DATABASE_URL=%s", url);
    snprintf(admin_env, sizeof(admin_env), "CLEAVE_DATABASE_ADMIN_URL=%s", url);
    snprintf(bin, sizeof(bin), "%s/cleave-catalog", CLEAVE_BIN_DIR);
    if (test_run(bin, argv, menv, out, sizeof(out)) != 0) {
        fprintf(stderr, "cleave-catalog migrate failed:\n%s\n", out);
        return -1;
    }
    env[at++] = db_env;
    if (pg.replica[0] != '\0') {
        pgtest_url(pg.replica, pg.db, url, sizeof(url));
        snprintf(replica_env, size, "CLEAVE_DATABASE_REPLICA_URL=%s", url);
        env[at++] = replica_env;
        /* The schema must have reached the replica before the service reads there. */
        if (pgtest_wait_replica(&pg, 30000) != 0) {
            return -1;
        }
    }
    env[at] = NULL;
    return 0;
}

static const catalog_ops *remote_setup(void)
{
    char data_env[512], log[512], bin[512], url[64], db_env[600], replica_env[600];
    char *argv[] = {"cleave-catalog", "serve", NULL};
    char *env[8] = {data_env, "CLEAVE_LISTEN=127.0.0.1:0", "CLEAVE_SERVICE_TOKEN=" TOKEN,
                    "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations", NULL};
    cl_rpc_options opt = {.token = TOKEN};
    cl_error err = {0};
    int port;

    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return NULL;
    }
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", dir);
    snprintf(log, sizeof(log), "%s/cleave-catalog.log", dir);
    snprintf(bin, sizeof(bin), "%s/cleave-catalog", CLEAVE_BIN_DIR);
    if (pgtest_enabled() && setup_postgres(env, 4, db_env, replica_env, sizeof(db_env)) != 0) {
        return NULL;
    }
    if (test_proc_start(&service, bin, argv, env, log) != 0) {
        return NULL;
    }
    port = test_proc_wait_port(&service, 30000);
    if (port < 0) {
        fprintf(stderr, "cleave-catalog did not start; see %s\n", log);
        return NULL;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    if (cl_rpc_client_new("catalog", url, &opt, &client, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    return catalog_api.remote_ops(client);
}

static void remote_teardown(void)
{
    int status = test_proc_stop(&service, SIGTERM);

    if (status != 0) {
        fprintf(stderr, "cleave-catalog exited with %d; log kept in %s\n", status, dir);
    } else {
        test_rmrf(dir);
    }
    cl_rpc_client_free(client);
    client = NULL;
    pgtest_db_drop(&pg);
}

int main(void)
{
    return catalog_contract_run("catalog_contract_remote", remote_setup, remote_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
