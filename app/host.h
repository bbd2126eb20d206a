/*
 * The host: loads configuration, gives every compiled-in module its own database,
 * applies or checks migrations, wires the modules' REST routes to their operations
 * tables and serves. The cleave command line (cli.c) drives it.
 */
#ifndef CLEAVE_APP_HOST_H
#define CLEAVE_APP_HOST_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cleave/bus.h"
#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/extension.h"
#include "cleave/http.h"
#include "cleave/migrate.h"
#include "cleave/module.h"
#include "cleave/rpc.h"

#define HOST_MAX_MODULES 16

/* What a binary is: the public gateway, or one module's standalone service. */
typedef enum host_role { HOST_GATEWAY, HOST_SERVICE } host_role;

/* Generated per binary by cleave_wire (cmake/CleaveModule.cmake). */
extern const host_role host_binary_role;
extern const char host_binary_name[];
/* Where migrations are unless CLEAVE_MIGRATIONS_DIR says otherwise (cleave_wire MIGRATIONS). */
extern const char host_default_migrations_dir[];
/* Its migrations as the build read them, for cl_migrate_known (ADR 0047). */
extern const cl_migration_text host_known_migrations[];
extern const int host_nknown_migrations;
/* The optional subsystems wired in (cleave_wire WITH), NULL-terminated; registered by host_open. */
extern const cl_extension *const host_extensions[];
/* Every module of the deployment (bound in this binary or not), NULL-terminated. */
extern const cl_module_api *const host_deployment[];
/* The test hooks' settings in a test build (CLEAVE_TESTS=ON), else NULL. */
extern const cl_settings *const host_test_hooks;

typedef struct host_module {
    const cl_binding *binding;
    cl_db *db;                  /* its own database; NULL when the module is remote */
    bool postgres;              /* db is a PostgreSQL schema rather than an SQLite file */
    const cl_db_server *server; /* when postgres: the registered server (cleave_postgres) */
    const char *admin_url;      /* PostgreSQL admin credentials for migrating it, or NULL */
    cl_rpc_client *remote;      /* its service; NULL when the module is local */
    cl_handle bound;            /* its binding: local table and instance, or remote */
    /*
     * The read cache in front of bound (ADR 0042) when the module declares cached
     * operations and CLEAVE_CACHE_TTL_MS is not 0; else NULL.
     */
    struct cl_cached *cached;
    cl_handle handle; /* the module as called: the cache's table, or bound's */
    /*
     * What callers use (ADR 0039): the handle through which module i of the host calls
     * this one is callers[i], the public routes' and the host's own is gateway; each
     * counts its calls (cl_caller) and makes them through handle.
     */
    cl_caller from[HOST_MAX_MODULES];
    cl_handle callers[HOST_MAX_MODULES];
    cl_caller from_gateway;
    cl_handle gateway;
    struct host *owner; /* the host, for cl_module_env.module (env.host is the module) */
    cl_rpc_service rpc; /* how it is served to other processes, when local */
    bool started;
} host_module;

typedef struct host {
    cl_config *config;
    /* The keys config knows beyond the platform's, borrowed by it (host_deployment). */
    cl_settings settings[HOST_MAX_MODULES];
    const cl_settings *owners[HOST_MAX_MODULES + 2];
    const char *data_dir;
    const char *migrations_dir;
    host_module modules[HOST_MAX_MODULES];
    int nmodules;
    cl_router *router;
    cl_http_server *server;
    cl_bus *bus;  /* outbox relays, consumers, operations of the local modules (ADR 0012) */
    bool serving; /* set by `serve` before host_start_modules (cl_module_env.serving) */
    struct host_auth *auth; /* the token verifier (auth.h), once serving */
    /*
     * The module that issues tokens (cl_module_api.token_keys), or NULL: one of the modules
     * when bound here, else reached at CLEAVE_<ISSUER>_URL through issuer_remote.
     */
    const cl_module_api *issuer_api;
    const cl_handle *issuer;
    cl_rpc_client *issuer_remote;
    cl_handle issuer_handle;
    /* This process's client credentials for calling other processes (auth.h), or NULL. */
    struct host_creds *creds;
    atomic_bool draining;         /* set at SIGTERM: /readyz answers 503 (host_drain) */
    struct host_graphql *graphql; /* a gateway's GraphQL endpoint (graphql.c) */
    /* The read cache's shared level (CLEAVE_REDIS_URL) and its instance, or NULL. */
    const struct cl_cache_shared_server *cache_server;
    void *cache_shared;
} host;

/* The entry point of the cleave binary. Returns the process exit status. */
int cleave_main(int argc, char **argv);
/*
 * `advise [--url URL] [--module NAME]... [--samples N] [--json]` (advise.c): what extracting
 * each module would put on the network, from a running process's /metrics (ADR 0039).
 */
int cleave_advise(int argc, char **argv);
/* `new module NAME [--templates DIR] [--root DIR]` (new_module.c): the arguments after "new". */
int cleave_new(int argc, char **argv);

/* How a command wants the host opened. */
typedef struct host_options {
    const char *config_file; /* may be NULL */
    const char *admin_url;   /* PostgreSQL admin credentials given on the command line */
    bool provision;          /* with admin credentials: create roles and schemas first */
    bool no_db;              /* open no database (commands that only describe the wiring) */
} host_options;

/*
 * Loads the configuration (file may be NULL) from the environment and opens every local
 * module's database: its own PostgreSQL schema when CLEAVE_<MODULE>_DATABASE_URL or
 * CLEAVE_DATABASE_URL is set, its own SQLite file under the data directory otherwise.
 * On failure err says what and host holds nothing (host_close is still safe).
 */
cl_status host_open(host *h, const char *config_file, cl_error *err);
cl_status host_open_with(host *h, const host_options *opt, cl_error *err);
/*
 * Applies pending migrations of every local module; prints what it did when verbose.
 * A PostgreSQL module without admin credentials is only checked (its app role may not
 * change the schema): CL_UNAVAILABLE naming `cleave migrate` when it is behind.
 */
cl_status host_migrate(host *h, bool verbose, cl_error *err);
/*
 * The database migrations of m run on: for PostgreSQL with admin credentials a new
 * pool acting as the module's owner role (*owned true: the caller closes it), else m->db.
 */
cl_status host_migration_db(host *h, host_module *m, cl_db **db, bool *owned, cl_error *err);
/* Checks every local module's migrations are applied (used before create and by /readyz). */
cl_status host_check_migrations(host *h, cl_error *err);
/* Creates and starts an instance of every local module, in dependency order. */
cl_status host_start_modules(host *h, cl_error *err);
/*
 * Builds the router: health routes, on a gateway every module's public routes, and in
 * every binary the RPC routes of its local modules, for the processes they were extracted
 * from or into.
 */
cl_status host_build_router(host *h, cl_error *err);
/* Starts the bus's relays, consumers and operation runners (after host_start_modules). */
cl_status host_start_bus(host *h, cl_error *err);
/* The operation resource: GET /api/v1/operations/{id} (operations.c). */
cl_status host_operation_routes(host *h, cl_router *r, cl_error *err);
/*
 * Graceful drain after signal sig (drain.c, ADR 0032): /readyz answers 503, then after
 * CLEAVE_DRAIN_DELAY_MS the listener closes, the requests in flight finish and the
 * outboxes are flushed, within CLEAVE_DRAIN_GRACE_S of the signal. Returns 0, or 1 when a
 * second signal or the grace period cut it short (logged with what was cut). host_close
 * then stops the bus and the modules.
 */
int host_drain(host *h, int sig);
/* Stops and destroys the instances in reverse order, closes databases, frees everything. */
void host_close(host *h);

/*
 * Placement (placement.c): refuses, naming the event, both modules and CLEAVE_NATS_URL,
 * a process on the in-process bus with an event whose publisher and subscriber are not
 * both in it. host_print_placement prints what this process runs, calls, serves to other
 * processes and exchanges with them (`cleave modules`).
 */
cl_status host_check_placement(const host *h, cl_error *err);
void host_print_placement(const host *h);

/*
 * Authentication (auth.c), before host_build_router: the verifier of the deployment's
 * token issuer, into h->auth: on a gateway for cl_http_options.guard, in every binary for
 * the RPC endpoints of its modules. CL_INVALID naming the setting when the process could
 * not authenticate its callers (no issuer) or could not call the modules it reaches in
 * other processes (no client credentials), unless CLEAVE_DEV_SERVICE_TOKEN is set.
 */
cl_status host_open_auth(host *h, cl_error *err);

/*
 * The GraphQL endpoint (graphql.c, ADR 0038): POST and GET /graphql, whose fields resolve
 * through the modules' operations with the permissions of their REST routes. Keeps its
 * state in h->graphql (host_graphql_free).
 */
cl_status host_graphql_routes(host *h, cl_router *r, cl_error *err);
void host_graphql_free(struct host_graphql *g);

/* The health routes: GET /healthz and GET /readyz. */
cl_status host_health_routes(host *h, cl_router *r, cl_error *err);
/*
 * GET /metrics (metrics.c), public, on every binary; registers the collector of h's
 * pools, bus and circuits, which host_metrics_stop removes (host_close calls it).
 */
cl_status host_metrics_routes(host *h, cl_router *r, cl_error *err);
void host_metrics_stop(host *h);

#endif /* CLEAVE_APP_HOST_H */
