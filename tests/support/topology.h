/*
 * Test support: the shop as a running system, for end-to-end tests. A topology is the
 * set of processes serving the public API: the monolith alone, or (later) the host
 * with modules extracted into their own services. Tests only see base_url.
 */
#ifndef CLEAVE_TEST_TOPOLOGY_H
#define CLEAVE_TEST_TOPOLOGY_H

#include <limits.h>

#include "test_module.h"
#include "proc.h"

#include "nats_server.h"

#define TOPOLOGY_MAX_PROCS    8
#define TOPOLOGY_MAX_SERVICES 6
#define TOPOLOGY_MAX_MODULES  8
/* The most variables given to every process of a topology (topology_start_every). */
#define TOPOLOGY_EVERY_MAX    4
/* The most variables a topology gives one process: data, migrations, listen, client id and
 * secret, issuer, up to 3 database ones, the bus, the modules' URLs, 8 extra, 6 of TLS, those
 * for every process, NULL. */
#define TOPOLOGY_ENV_MAX      (10 + TOPOLOGY_MAX_MODULES + 8 + 6 + TOPOLOGY_EVERY_MAX + 1)

typedef struct topology {
    char dir[256];        /* throwaway directory: data, logs, migrations copy */
    char base_url[64];    /* http://127.0.0.1:PORT of the public API */
    char service_url[64]; /* the extracted module's service, or empty */
    char service[80];     /* its binary ("cleave-catalog"), or empty */
    int service_port;
    char service_data_env[512]; /* its CLEAVE_DATA_DIR=... */
    char migrations_env[600];   /* CLEAVE_MIGRATIONS_DIR=... */
    char migrations_dir[512];   /* a private copy the test may change */
    test_proc procs[TOPOLOGY_MAX_PROCS];
    int nprocs;
    /* Every extracted module ("a+b-extracted"): service i runs in procs[i]. */
    int nservices;
    char services[TOPOLOGY_MAX_SERVICES][80];
    int service_ports[TOPOLOGY_MAX_SERVICES];
    char service_data_envs[TOPOLOGY_MAX_SERVICES][512];
    /* How the gateway was started, so that it can be started again. */
    char gateway_bin[128];
    char data_env[512];
    /*
     * With modules extracted every process is told, before any starts, where every
     * module runs: CLEAVE_<MODULE>_URL of the gateway or of the module's service, so the
     * gateway keeps its port across restarts (gateway_port; 0 on a monolith).
     */
    int gateway_port;
    /*
     * The planned ports stay bound by the test (test_hold_port) until their process starts:
     * a topology plans them seconds before, and another test once took the gateway's.
     * -1 when not held.
     */
    int gateway_hold;
    int service_holds[TOPOLOGY_MAX_SERVICES];
    char url_envs[TOPOLOGY_MAX_MODULES][128];
    int nurl_envs;
    /* With modules extracted events cross processes: the bus (nats.env empty on a monolith). */
    test_nats nats;
    int gateway_slot;
    char token[4096]; /* the seeded admin's access token, when seeded */
    /*
     * With modules extracted every process calls the others with its own client_credentials
     * client, registered in identity before any serves: CLEAVE_CLIENT_ID and
     * CLEAVE_CLIENT_SECRET of the gateway (slot TOPOLOGY_MAX_SERVICES) and of service i.
     */
    char client_ids[TOPOLOGY_MAX_SERVICES + 1][128];
    char client_secrets[TOPOLOGY_MAX_SERVICES + 1][400];
    /*
     * With CL_TEST_DB=postgres: a fresh database of the test run's cluster, and the
     * variables that point every process at it (empty strings on SQLite). Serving
     * processes get db_env (app roles, replica); `migrate` also gets admin_env.
     */
    test_db_env db;
    /*
     * A topology named "...-extracted:mtls": the services serve mutual TLS only and every
     * process calls them over https:// with a client certificate (tls_certs.h, in
     * <dir>/tls). tls_envs[0..2] are every process's client settings, [3..5] the services'
     * server settings.
     */
    int mtls;
    char tls_envs[6][600];
    /* Variables every process gets (topology_start_every), its tools' runs among them. */
    char every_env[TOPOLOGY_EVERY_MAX][160];
    int nevery;
} topology;

/*
 * The issuer every process of a topology names in its tokens: fixed, so that tokens stay
 * valid when the gateway moves to another port or identity to another process (in a
 * deployment, the public URL of the gateway).
 */
#define TOPOLOGY_ISSUER_ENV     "CLEAVE_IDENTITY_ISSUER=http://cleave.test"

/* The gateway's slot in client_ids and client_secrets. */
#define TOPOLOGY_GATEWAY_CLIENT TOPOLOGY_MAX_SERVICES

/*
 * Registers one more client_credentials client in t's identity (whichever process holds
 * it), allowed the audiences (space-separated); its secret into secret[size]. 0 or -1.
 */
int topology_add_client(topology *t, const char *client_id, const char *audiences, char *secret,
                        size_t size);

/*
 * A service token of the gateway's client (slot TOPOLOGY_GATEWAY_CLIENT) or of service i's
 * for audience ("cleave-<module>") into out[size]; 0 or -1.
 */
int topology_service_token(topology *t, int slot, const char *audience, char *out, size_t size);

/* Appends t's database variables (none on SQLite) to env[] from index at; returns the new end. */
int topology_db_env(topology *t, char **env, int at, int admin);
/*
 * The gateway's variables but its listen address, for running one of its commands:
 * data, migrations, token, database (with the admin's when admin is set), bus, every
 * module's URL; env[TOPOLOGY_ENV_MAX], NULL-terminated.
 */
void topology_env(topology *t, int admin, char **env);

/*
 * topology_start's seed: how many of the demo catalog's products `seed` makes (its
 * --limit), with the rest of the demo data; 0: no seed; TOPOLOGY_SEED_DEMO: no limit, the
 * whole demo, whatever its size. Tests that list or page the whole catalog take all of it,
 * the others its start: SKU-000001 to SKU-000024, ids 1 to 24.
 */
#define TOPOLOGY_SEED_DEMO  INT_MAX
#define TOPOLOGY_SEED_SMALL 24

/*
 * Builds a data directory, migrates it, seeds it when seed is not 0, and starts the
 * processes of the named topology: "monolith", or "<module>-extracted" (cleave-<module>
 * on its own port and data directory, and the gateway built without it, configured with
 * its URL), or "all-extracted" (every module in its own service). With modules extracted
 * every process also gets the NATS transport. An extracted topology's name may end in
 * ":mtls" ("inventory+payments-extracted:mtls"): its services then serve mutual TLS only
 * (t->mtls). Returns 0, or -1 with the reason printed; topology_stop cleans up either way.
 */
int topology_start(topology *t, const char *name, int seed);
/*
 * As topology_start; name may also extract several modules ("inventory+payments-extracted":
 * gateway cleave-without-inventory-payments), and gateway_env ("K=V", NULL-terminated, may
 * be NULL) is added to the gateway's `serve` only.
 */
int topology_start_with(topology *t, const char *name, int seed, char *const extra[]);
/*
 * As topology_start_with, and every ("K=V", NULL-terminated, at most TOPOLOGY_EVERY_MAX, may
 * be NULL) is given to every process alike: the gateway, each service, and the tools a
 * topology runs on their data (migrate, seed, topology_env).
 */
int topology_start_every(topology *t, const char *name, int seed, char *const extra[],
                         char *const every[]);
/*
 * A topology started with a seed makes the seeded admin's token (test_password_token,
 * in t->token) the bearer of requests to its gateway (test_http_set_bearer_for) and the
 * default one: tests act with every permission unless they say otherwise.
 */
/* Waits up to timeout_ms for the gateway to exit by itself; its exit status, or -1. */
int topology_gateway_wait_exit(topology *t, int timeout_ms);
/* Starts the gateway again on the same data (a new port: base_url changes); 0 or -1. */
int topology_restart_gateway(topology *t, char *const extra[]);
/* Stops (SIGTERM) / starts again the service of an extracted module by name; as below. */
int topology_stop_module(topology *t, const char *module);
int topology_restart_module(topology *t, const char *module);
/* Stops every process (SIGTERM), returns 0 when all exited 0; removes the directory. */
/* Stops the extracted module's service (SIGTERM); returns its exit status. */
int topology_stop_service(topology *t);
/* Starts the extracted module's service again on the same port and data; 0 or -1. */
int topology_restart_service(topology *t);
int topology_stop(topology *t);
/* Path of a cleave binary in the build ("cleave", "cleave-catalog"). */
const char *topology_bin(const char *name, char *buf, size_t size);

#endif
