/*
 * Test support: one module on a fresh database of its own, the same for every module and
 * on both databases (ADR 0011), so that a module's tests are written once and run twice
 * (`<test>` on SQLite, `<test>_pg` with CL_TEST_DB=postgres).
 *
 *   test_local    the module in this process (its local binding): a fresh database,
 *                 migrated, with the bus's tables; optionally an in-process bus, started.
 *   test_service  the module as a real service (cleave-<m> serve) on a free loopback
 *                 port with a fresh data directory and database, called through its
 *                 remote binding.
 *   test_db_env   the variables that point child processes at a fresh PostgreSQL
 *                 database (nothing on SQLite), for tests that run the real binaries.
 *
 * A new module's contract runners are a few lines each: see
 * modules/inventory/tests/contract_local.c and contract_remote.c.
 */
#ifndef CLEAVE_TEST_MODULE_H
#define CLEAVE_TEST_MODULE_H

#include "cleave/bus.h"
#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/module.h"
#include "cleave/rpc.h"
#include "nats_server.h"
#include "pgtest.h"
#include "proc.h"

/* --- a fresh database for child processes ------------------------------------------ */

typedef struct test_db_env {
    pgtest pg;             /* the database, when pg.db is set (PostgreSQL only) */
    char admin_url[512];   /* its admin URL (superuser), or empty on SQLite */
    char url_env[600];     /* CLEAVE_DATABASE_URL=..., or empty */
    char replica_env[600]; /* CLEAVE_DATABASE_REPLICA_URL=..., or empty */
    char admin_env[600];   /* CLEAVE_DATABASE_ADMIN_URL=..., or empty */
} test_db_env;

/*
 * On PostgreSQL (pgtest_enabled()): creates a fresh database of the test run's cluster and
 * fills e's variables; with replica set, also the replica's URL (when the cluster has one).
 * On SQLite: zeroes e and does nothing else. Returns 0, or -1 with the reason printed.
 */
int test_db_env_open(test_db_env *e, int replica);
/*
 * Appends e's variables (none on SQLite) to env[] from index at, the admin URL too when
 * admin is set, and NULL-terminates; returns the new end. env must have room for 4 more.
 */
int test_db_env_add(const test_db_env *e, char **env, int at, int admin);
/* Drops the database, when there is one; 0 or -1. A zeroed e is a no-op that returns 0. */
int test_db_env_close(test_db_env *e);

/*
 * Opens module's database as a running system left it, for a test to read: on SQLite the
 * file <data_dir>/<module>.db; on PostgreSQL (admin_url not empty) the database of
 * admin_url as its superuser, in the module's schema. The caller owns *db (cl_db_close).
 */
cl_status test_module_db_open(const char *data_dir, const char *admin_url, const char *module,
                              cl_db **db, cl_error *err);

/* --- the module in process ---------------------------------------------------------- */

typedef struct test_local_options {
    /*
     * Configuration ("CLEAVE_...=value", NULL-terminated), handed to init as env.config.
     * Only these are read, never this process's environment. NULL: init gets the
     * declared defaults, as a tool that configures nothing would.
     */
    char *const *env;
    int bus;       /* create an in-process bus for the module, and start it after init */
    int start;     /* call the module's start hook after init (stop is called at close) */
    int max_conns; /* the pool's size; 0: the driver's default */
    /*
     * For a module that calls others (api->depends): their handles by name, as the host
     * hands them to create (cl_module_env.module; env->host is NULL). NULL: the module has
     * no others to call, as outside a host.
     */
    const cl_handle *(*module)(const cl_module_env *env, const char *name);
    int serving; /* cl_module_env.serving: the module runs its background work (sagas) */
} test_local_options;

typedef struct test_local {
    const cl_module *module; /* borrowed */
    char dir[256];           /* the throwaway directory (the SQLite file lives here) */
    cl_config *cfg;          /* owned; borrowed by the module and the bus */
    cl_settings settings;    /* the module's settings (m->api), borrowed by cfg */
    cl_db *db;               /* owned; the module (and bus) borrow it until close */
    cl_bus *bus;             /* owned and started, or NULL */
    pgtest pg;               /* the PostgreSQL database, when pg.db is set */
    char admin_url[512];     /* its admin URL, or empty on SQLite */
    cl_handle handle;        /* the instance: m->ops and what m->create made */
    int started;             /* the module's start hook ran */
    /*
     * test_local_rows's query, built on its first call and kept until close: the
     * statement cache is keyed by the text's address, so the text must outlive db.
     */
    char *rows_sql;
} test_local;

/*
 * A fresh database for module m: on SQLite a file in a new temporary directory, migrated
 * from the tree's migrations/; with CL_TEST_DB=postgres a new database of the test run's
 * cluster, migrated as `cleave migrate` does (pgtest_migrate) and opened as the module's
 * app role with the replica attached. Then the bus's tables, the bus when opt asks for
 * one, m->create (t->handle is the new instance), and m->start when asked. opt may be NULL
 * (no bus, no start, defaults). Returns 0, or -1 after printing why (nothing left behind).
 */
int test_local_open(test_local *t, const cl_module *m, const test_local_options *opt);

/*
 * Stops the instance (when started) and the bus, destroys the instance, closes the
 * database, drops it (PostgreSQL) and removes the directory. A zeroed t is a no-op.
 */
void test_local_close(test_local *t);

/* --- what every contract suite shares ----------------------------------------------- */

/* The deadline of one contract call: generous (a remote binding under sanitizers), but a
 * hang still fails. */
#define TEST_CONTRACT_CALL_MS 30000

/*
 * A contract suite is written once and run against every binding: each runner hands it
 * the binding's setup (a fresh, empty module; NULL on failure) and teardown. Call before
 * running the suite's tests; min_version is the operations table version it needs.
 */
void test_contract_bind(const cl_handle *(*setup)(void), void (*teardown)(void), int min_version);
/*
 * cmocka's per-test setup: runs the binding's setup and stores the module it made in
 * *module; -1 when there is none or its table is older than min_version.
 */
int test_contract_setup(const cl_handle **module);
/* cmocka's per-test teardown: runs the binding's teardown. Always 0. */
int test_contract_teardown(void **state);
/*
 * A call context with the suite's deadline. Reads go to the primary: a suite reads what it
 * has just written, which behind a replica only such a caller is promised (ADR 0011).
 */
cl_ctx test_contract_ctx(void);

/* --- two instances in one process ------------------------------------------------- */

/* A module's contract runner: runs every test, each between setup and teardown. */
typedef int (*test_contract_run_fn)(const char *name, const cl_handle *(*setup)(void),
                                    void (*teardown)(void));

/*
 * Runs a module's contract suite against two instances of m in this one process, each on
 * a database of its own (ADR 0021): for every test, setup opens both instances fresh (as
 * test_local_open with opt), hands the suite one and leaves the other idle, and teardown
 * checks that not one row of the idle instance's database changed - so an instance that
 * kept state where another can reach it (a file static) fails. The suite runs twice, once
 * against each instance. Returns the number of failures (failed tests and touched idle
 * databases), printed as they happen.
 */
int test_twins_run(const char *name, const cl_module *m, const test_local_options *opt,
                   test_contract_run_fn run);

/*
 * The number of rows in every table of t's database (the module's own and the platform's
 * bus tables), or -1 when it cannot be read.
 */
long test_local_rows(test_local *t);

/* --- the module as a service --------------------------------------------------------- */

/* The service token test services require of their callers. */
#define TEST_SERVICE_TOKEN "contract-test-token"

typedef struct test_service {
    const cl_module_api *api; /* borrowed */
    char dir[256];            /* data directory and log; kept when the service failed */
    char bin[512];
    char log[512];
    char url[64]; /* http://127.0.0.1:PORT (https:// with TLS) */
    test_proc proc;
    cl_rpc_client *client; /* owned */
    cl_handle handle;      /* {api->remote_ops, client}: the remote binding */
    test_db_env db;
    test_nats nats; /* its bus: events cross to and from the processes around it */
} test_service;

/*
 * Starts cleave-<api->name> serve on a free loopback port with a fresh data directory, the
 * service token and the tree's migrations, plus env ("CLEAVE_...=value", NULL-terminated,
 * may be NULL); on PostgreSQL on a fresh database, migrated first by `cleave-<m> migrate`
 * with admin credentials, the service itself running as the module's app role with the
 * replica for its reads. Then builds the remote binding (s->handle). With
 * CLEAVE_TLS_CERT in env the service serves mutual TLS: s->url is https:// and the remote
 * binding presents env's CLEAVE_TLS_CLIENT_CERT and _KEY and trusts its CLEAVE_TLS_CA.
 * Returns 0, or -1 after printing why; test_service_stop cleans up either way.
 */
int test_service_start(test_service *s, const cl_module_api *api, char *const *env);

/*
 * Stops the service (SIGTERM) and frees the client; removes the directory when the
 * service exited 0 (else keeps it and says where). Returns the exit status. A zeroed s is
 * a no-op that returns 0.
 */
int test_service_stop(test_service *s);

#endif /* CLEAVE_TEST_MODULE_H */
