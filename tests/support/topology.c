/* Topologies for end-to-end tests: the real binaries on free loopback ports. */
#include "topology.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "cleave/util.h"
#include "tls_certs.h"

const char *topology_bin(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", CLEAVE_BIN_DIR, name);
    return buf;
}

/* Runs `<host_bin> <argv...>` (argv[0] is the command) with env; its output into out. */
static int run_host_argv(topology *t, const char *host_bin, char *const env[], char **argv,
                         char *out, size_t size)
{
    char bin[512];
    char *full[12] = {(char *)host_bin};
    int rc;

    for (int i = 0; argv[i] != NULL && i < 10; i++) {
        full[i + 1] = argv[i];
    }
    rc = test_run(topology_bin(host_bin, bin, sizeof(bin)), full, env, out, size);
    if (rc != 0) {
        fprintf(stderr, "%s %s failed (%d) in %s:\n%s\n", host_bin, argv[0], rc, t->dir, out);
        return -1;
    }
    return 0;
}

static int run_host(topology *t, const char *host_bin, char *const env[], const char *cmd)
{
    char out[8192];
    char *argv[] = {(char *)cmd, NULL};

    return run_host_argv(t, host_bin, env, argv, out, sizeof(out));
}

/* Starts `<bin> serve` with env as process slot, and returns its port (-1 on failure). */
static int serve_in(topology *t, int slot, const char *name, char *const env[])
{
    char bin[512], log[600];
    char *argv[] = {(char *)name, "serve", NULL};
    test_proc *p = &t->procs[slot];
    int port;

    snprintf(log, sizeof(log), "%s/%s.log", t->dir, name);
    if (test_proc_start(p, topology_bin(name, bin, sizeof(bin)), argv, env, log) != 0) {
        return -1;
    }
    port = test_proc_wait_port(p, 30000);
    if (port < 0) {
        fprintf(stderr, "%s serve did not start; see %s\n", name, log);
    }
    return port;
}

/* Starts `<bin> serve` with env as the next process, and returns its port (-1 on failure). */
static int serve(topology *t, const char *name, char *const env[])
{
    if (t->nprocs == TOPOLOGY_MAX_PROCS) {
        return -1;
    }
    t->nprocs++;
    return serve_in(t, t->nprocs - 1, name, env);
}

int topology_db_env(topology *t, char **env, int at, int admin)
{
    return test_db_env_add(&t->db, env, at, admin);
}

/* "a b c" (the build's module list) into t->services. */
static int parse_modules(topology *t, const char *list)
{
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, " ");

        if (n > 0) {
            if (t->nservices == TOPOLOGY_MAX_SERVICES) {
                fprintf(stderr, "too many modules for a topology: %s\n", list);
                return -1;
            }
            snprintf(t->services[t->nservices++], sizeof(t->services[0]), "cleave-%.*s", (int)n, p);
        }
        p += n + (p[n] != '\0' ? 1 : 0);
    }
    return 0;
}

/* "a+b" into t->services; the gateway's binary is cleave-without-a-b. */
static int parse_extracted(topology *t, const char *name, char *host_bin, size_t size)
{
    const char *dash = strstr(name, "-extracted");
    const char *p = name;

    if (dash == NULL || dash == name || dash[10] != '\0') {
        fprintf(stderr, "unknown topology %s\n", name);
        return -1;
    }
    snprintf(host_bin, size, "cleave-without-");
    if (strcmp(name, "all-extracted") == 0) {
        /* Every module in a service of its own; the gateway only routes. */
        snprintf(host_bin, size, "cleave-without-all");
        return parse_modules(t, CLEAVE_TEST_MODULES);
    }
    while (p < dash) {
        const char *plus = memchr(p, '+', (size_t)(dash - p));
        size_t n = (size_t)((plus != NULL ? plus : dash) - p);

        if (n == 0 || n >= 64 || t->nservices == TOPOLOGY_MAX_SERVICES) {
            fprintf(stderr, "unknown topology %s\n", name);
            return -1;
        }
        snprintf(t->services[t->nservices], sizeof(t->services[0]), "cleave-%.*s", (int)n, p);
        snprintf(host_bin + strlen(host_bin), size - strlen(host_bin), "%s%.*s",
                 t->nservices > 0 ? "-" : "", (int)n, p);
        t->nservices++;
        p += n + (plus != NULL ? 1 : 0);
    }
    return 0;
}

/*
 * t's process variables: the client credentials of slot client (when registered), the
 * issuer, database (with the admin's when admin is set), bus, URLs.
 */
static int common_env(topology *t, int client, int admin, char **env, int n)
{
    if (t->client_ids[client][0] != '\0') {
        env[n++] = t->client_ids[client];
        env[n++] = t->client_secrets[client];
    }
    env[n++] = TOPOLOGY_ISSUER_ENV;
    n = topology_db_env(t, env, n, admin);
    if (t->nats.env[0] != '\0') {
        env[n++] = t->nats.env;
    }
    for (int i = 0; i < t->nurl_envs; i++) {
        env[n++] = t->url_envs[i];
    }
    for (int i = 0; t->mtls && i < 3; i++) {
        env[n++] = t->tls_envs[i];
    }
    for (int i = 0; i < t->nevery; i++) {
        env[n++] = t->every_env[i];
    }
    env[n] = NULL;
    return n;
}

/* The gateway's environment: data, migrations, listen, the common variables, then extra. */
static void gateway_env(topology *t, const char *listen, char *const extra[], int admin, char **env)
{
    int n = 0;

    env[n++] = t->data_env;
    env[n++] = t->migrations_env;
    env[n++] = (char *)listen;
    n = common_env(t, TOPOLOGY_GATEWAY_CLIENT, admin, env, n);
    for (int i = 0; extra != NULL && extra[i] != NULL && i < 8; i++) {
        env[n++] = extra[i];
    }
    env[n] = NULL;
}

void topology_env(topology *t, int admin, char **env)
{
    int n = 0;

    env[n++] = t->data_env;
    env[n++] = t->migrations_env;
    common_env(t, TOPOLOGY_GATEWAY_CLIENT, admin, env, n);
}

/* Service i's environment: its own data directory, migrations, its port, the common ones. */
static void service_env(topology *t, int i, char *listen, size_t size, int admin, char **env)
{
    int n;

    snprintf(listen, size, "CLEAVE_LISTEN=127.0.0.1:%d", t->service_ports[i]);
    env[0] = t->service_data_envs[i];
    env[1] = t->migrations_env;
    env[2] = listen;
    n = common_env(t, i, admin, env, 3);
    for (int k = 3; t->mtls && k < 6; k++) {
        env[n++] = t->tls_envs[k];
    }
    env[n] = NULL;
}

/* "CLEAVE_<MODULE>_URL=http://127.0.0.1:<port>" into url_envs. */
static void add_url_env(topology *t, const char *module, size_t len, int port)
{
    char upper[64];
    size_t k = 0;

    for (; k < len && k < sizeof(upper) - 1; k++) {
        upper[k] = (char)toupper((unsigned char)module[k]);
    }
    upper[k] = '\0';
    /* Over mutual TLS the services are https://; the gateway's own modules are not. */
    snprintf(t->url_envs[t->nurl_envs++], sizeof(t->url_envs[0]), "CLEAVE_%s_URL=%s://127.0.0.1:%d",
             upper, t->mtls && port != t->gateway_port ? "https" : "http", port);
}

/* Lets go of the ports still held (all of them after a start that failed). */
static void release_ports(topology *t)
{
    test_release_port(&t->gateway_hold);
    for (int i = 0; i < TOPOLOGY_MAX_SERVICES; i++) {
        test_release_port(&t->service_holds[i]);
    }
}

/*
 * Before any process starts: a fixed port for each, and where every module runs, so that
 * extracted modules and the gateway can call each other whatever the order they start in.
 */
static int plan_ports(topology *t)
{
    const char *p = CLEAVE_TEST_MODULES;

    t->gateway_port = test_hold_port(&t->gateway_hold);
    for (int i = 0; i < t->nservices; i++) {
        t->service_ports[i] = test_hold_port(&t->service_holds[i]);
        if (t->service_ports[i] < 0) {
            return -1;
        }
    }
    if (t->gateway_port < 0) {
        return -1;
    }
    while (*p != '\0' && t->nurl_envs < TOPOLOGY_MAX_MODULES) {
        size_t n = strcspn(p, " ");
        int port = t->gateway_port;

        for (int i = 0; i < t->nservices; i++) {
            if (strlen(t->services[i] + 7) == n && strncmp(t->services[i] + 7, p, n) == 0) {
                port = t->service_ports[i];
            }
        }
        if (n > 0) {
            add_url_env(t, p, n, port);
        }
        p += n + (p[n] != '\0' ? 1 : 0);
    }
    return 0;
}

static int service_index(const topology *t, const char *module);

/*
 * `seed --limit products` on the gateway's data (the demo catalog's first products, and
 * the rest of the demo data with them), or `seed` for TOPOLOGY_SEED_DEMO; then waits for
 * the replica to have what it wrote.
 */
static int seed_gateway(topology *t, const char *listen, int products)
{
    char *env[TOPOLOGY_ENV_MAX];
    char out[8192], n[16];
    char *argv[] = {"seed", "--limit", n, NULL};

    gateway_env(t, listen, NULL, 0, env);
    snprintf(n, sizeof(n), "%d", products);
    if (products == TOPOLOGY_SEED_DEMO) {
        argv[1] = NULL;
    }
    if (run_host_argv(t, t->gateway_bin, env, argv, out, sizeof(out)) != 0) {
        return -1;
    }
    /* Data written by those processes must be on the replica before anyone reads it there. */
    if (t->db.pg.db[0] != '\0' && pgtest_wait_replica(&t->db.pg, 30000) != 0) {
        return -1;
    }
    return 0;
}

int topology_add_client(topology *t, const char *client_id, const char *audiences, char *secret,
                        size_t size)
{
    char out[8192], listen[64];
    char *env[TOPOLOGY_ENV_MAX];
    char *argv[] = {
        "clients",         "add", (char *)client_id, "--grant", "client_credentials", "--audience",
        (char *)audiences, NULL};
    int i = service_index(t, "identity");
    const char *line;
    size_t n;

    /* Identity's own process registers it: no credential is needed to do so there. */
    if (i >= 0) {
        service_env(t, i, listen, sizeof(listen), 0, env);
    } else {
        topology_env(t, 0, env);
    }
    if (run_host_argv(t, i >= 0 ? t->services[i] : t->gateway_bin, env, argv, out, sizeof(out)) !=
        0) {
        return -1;
    }
    line = strstr(out, "client_secret=");
    if (line == NULL) {
        fprintf(stderr, "clients add printed no secret:\n%s\n", out);
        return -1;
    }
    line += strlen("client_secret=");
    n = strcspn(line, "\n");
    if (n == 0 || n >= size) {
        return -1;
    }
    memcpy(secret, line, n);
    secret[n] = '\0';
    return 0;
}

int topology_service_token(topology *t, int slot, const char *audience, char *out, size_t size)
{
    const char *id = strchr(t->client_ids[slot], '=');
    const char *secret = strchr(t->client_secrets[slot], '=');

    if (id == NULL || secret == NULL) {
        fprintf(stderr, "topology %s has no client in slot %d\n", t->dir, slot);
        return -1;
    }
    return test_client_token(t->base_url, id + 1, secret + 1, audience, out, size);
}

/* Registers client id in slot (the gateway's or service i's) and fills its variables. */
static int register_client(topology *t, int slot, const char *id, const char *audiences)
{
    char secret[300];

    if (topology_add_client(t, id, audiences, secret, sizeof(secret)) != 0) {
        return -1;
    }
    snprintf(t->client_ids[slot], sizeof(t->client_ids[slot]), "CLEAVE_CLIENT_ID=%s", id);
    snprintf(t->client_secrets[slot], sizeof(t->client_secrets[slot]), "CLEAVE_CLIENT_SECRET=%s",
             secret);
    return 0;
}

/*
 * With modules extracted, before any process serves: identity's database migrated by the
 * process that holds it, then a client_credentials client for every process, allowed to
 * call every module ("cleave-<module>"), so that every call between them carries a real
 * service JWT. *gateway_migrated says whether the gateway's migrate ran here.
 */
static int register_clients(topology *t, int *gateway_migrated)
{
    char audiences[512] = "", listen[64];
    char *env[TOPOLOGY_ENV_MAX];
    const char *p = CLEAVE_TEST_MODULES;
    int i = service_index(t, "identity");

    while (*p != '\0') {
        size_t n = strcspn(p, " ");

        if (n > 0) {
            snprintf(audiences + strlen(audiences), sizeof(audiences) - strlen(audiences),
                     "%scleave-%.*s", audiences[0] != '\0' ? " " : "", (int)n, p);
        }
        p += n + (p[n] != '\0' ? 1 : 0);
    }
    if (i >= 0) {
        service_env(t, i, listen, sizeof(listen), 1, env);
        if (run_host(t, t->services[i], env, "migrate") != 0) {
            return -1;
        }
    } else {
        topology_env(t, 1, env);
        if (run_host(t, t->gateway_bin, env, "migrate") != 0) {
            return -1;
        }
        *gateway_migrated = 1;
    }
    for (int k = 0; k < t->nservices; k++) {
        if (register_client(t, k, t->services[k], audiences) != 0) {
            return -1;
        }
    }
    return register_client(t, TOPOLOGY_GATEWAY_CLIENT, "cleave-gateway", audiences);
}

int topology_start(topology *t, const char *name, int seed)
{
    return topology_start_with(t, name, seed, NULL);
}

/*
 * A throwaway PKI in <dir>/tls and the settings that use it: every process's client
 * certificate and CA, and the services' server certificate and client CA.
 */
static int make_tls(topology *t)
{
    static const struct {
        const char *key, *name, *ext;
    } settings[6] = {
        {"CLEAVE_TLS_CLIENT_CERT", "host", "crt"},
        {"CLEAVE_TLS_CLIENT_KEY", "host", "key"},
        {"CLEAVE_TLS_CA", "ca", "crt"},
        {"CLEAVE_TLS_CERT", "server", "crt"},
        {"CLEAVE_TLS_KEY", "server", "key"},
        {"CLEAVE_TLS_CLIENT_CA", "ca", "crt"},
    };
    char dir[300];

    snprintf(dir, sizeof(dir), "%s/tls", t->dir);
    if (mkdir(dir, 0700) != 0 || test_tls_make(dir) != 0) {
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        test_tls_setting(t->tls_envs[i], sizeof(t->tls_envs[i]), settings[i].key, dir,
                         settings[i].name, settings[i].ext);
    }
    return 0;
}

int topology_start_with(topology *t, const char *name, int seed, char *const extra[])
{
    return topology_start_every(t, name, seed, extra, NULL);
}

int topology_start_every(topology *t, const char *name, int seed, char *const extra[],
                         char *const every[])
{
    char cmd[1200], out[1024], listen[64], plain[128];
    const char *suffix;
    char *env[TOPOLOGY_ENV_MAX];
    char *cp_argv[] = {"cp", "-r", NULL, NULL, NULL};
    int gateway_migrated = 0;
    int seed_late;
    int port;

    memset(t, 0, sizeof(*t));
    /* No port held yet: none to let go of, whatever fails first (descriptor 0 is not one). */
    t->gateway_hold = -1;
    for (int i = 0; i < TOPOLOGY_MAX_SERVICES; i++) {
        t->service_holds[i] = -1;
    }
    for (; every != NULL && every[t->nevery] != NULL; t->nevery++) {
        if (t->nevery == TOPOLOGY_EVERY_MAX ||
            strlen(every[t->nevery]) >= sizeof(t->every_env[0])) {
            fprintf(stderr, "topology: more or longer variables for every process than %d of %zu\n",
                    TOPOLOGY_EVERY_MAX, sizeof(t->every_env[0]) - 1);
            return -1;
        }
        snprintf(t->every_env[t->nevery], sizeof(t->every_env[0]), "%s", every[t->nevery]);
    }
    if (test_db_env_open(&t->db, 1) != 0) {
        return -1;
    }
    /* "<extracted topology>:mtls": the same processes, the services behind mutual TLS. */
    suffix = strstr(name, ":mtls");
    if (suffix != NULL && suffix[5] == '\0' && (size_t)(suffix - name) < sizeof(plain)) {
        snprintf(plain, sizeof(plain), "%.*s", (int)(suffix - name), name);
        name = plain;
        t->mtls = 1;
    }
    /* "monolith", or "<module>[+<module>...]-extracted": those modules in their own services. */
    if (strcmp(name, "monolith") == 0) {
        snprintf(t->gateway_bin, sizeof(t->gateway_bin), "cleave");
    } else if (parse_extracted(t, name, t->gateway_bin, sizeof(t->gateway_bin)) != 0) {
        return -1;
    }
    if (test_tmpdir(t->dir, sizeof(t->dir)) != 0) {
        return -1;
    }
    if (t->mtls && (t->nservices == 0 || make_tls(t) != 0)) {
        return -1;
    }
    if (t->nservices > 0 && (plan_ports(t) != 0 || test_nats_open(&t->nats, t->dir) != 0)) {
        return -1;
    }
    /* A private copy of the migrations, so that a test may change them. */
    snprintf(t->migrations_dir, sizeof(t->migrations_dir), "%s/migrations", t->dir);
    snprintf(cmd, sizeof(cmd), "%s/migrations", CLEAVE_SOURCE_DIR);
    cp_argv[2] = cmd;
    cp_argv[3] = t->migrations_dir;
    if (test_run("/bin/cp", cp_argv, NULL, out, sizeof(out)) != 0) {
        fprintf(stderr, "copying migrations failed: %s\n", out);
        return -1;
    }
    snprintf(t->data_env, sizeof(t->data_env), "CLEAVE_DATA_DIR=%s/data", t->dir);
    snprintf(t->migrations_env, sizeof(t->migrations_env), "CLEAVE_MIGRATIONS_DIR=%s",
             t->migrations_dir);
    for (int i = 0; i < t->nservices; i++) {
        const char *module = t->services[i] + 7;

        /* Each service owns its own data directory: no shared database. */
        snprintf(t->service_data_envs[i], sizeof(t->service_data_envs[i]),
                 "CLEAVE_DATA_DIR=%s/%s-data", t->dir, module);
    }
    if (t->nservices > 0 && register_clients(t, &gateway_migrated) != 0) {
        return -1;
    }
    for (int i = 0; i < t->nservices; i++) {
        /* On PostgreSQL an admin migrates; the service itself runs as its app role. */
        if (t->db.admin_env[0] != '\0') {
            service_env(t, i, listen, sizeof(listen), 1, env);
            if (run_host(t, t->services[i], env, "migrate") != 0) {
                return -1;
            }
        }
        service_env(t, i, listen, sizeof(listen), 0, env);
        test_release_port(&t->service_holds[i]);
        port = serve(t, t->services[i], env);
        if (port != t->service_ports[i]) {
            return -1;
        }
    }
    if (t->nservices > 0) {
        /* The first extracted module, for tests written for one. */
        snprintf(t->service, sizeof(t->service), "%s", t->services[0]);
        snprintf(t->service_data_env, sizeof(t->service_data_env), "%s", t->service_data_envs[0]);
        t->service_port = t->service_ports[0];
        snprintf(t->service_url, sizeof(t->service_url), "%s://127.0.0.1:%d",
                 t->mtls ? "https" : "http", t->service_port);
    }
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", t->gateway_port);
    gateway_env(t, listen, NULL, 1, env);
    if (!gateway_migrated && run_host(t, t->gateway_bin, env, "migrate") != 0) {
        return -1;
    }
    /*
     * Services verify the seed's calls with identity's keys: when identity is the gateway's,
     * the gateway must be serving them before the seed runs.
     */
    seed_late = t->nservices > 0 && service_index(t, "identity") < 0;
    if (seed && !seed_late && seed_gateway(t, listen, seed) != 0) {
        return -1;
    }
    /* What the migrations wrote must be on the replica before anyone reads it there. */
    if ((!seed || seed_late) && t->db.pg.db[0] != '\0' &&
        pgtest_wait_replica(&t->db.pg, 30000) != 0) {
        return -1;
    }
    gateway_env(t, listen, extra, 0, env);
    t->gateway_slot = t->nprocs;
    test_release_port(&t->gateway_hold);
    port = serve(t, t->gateway_bin, env);
    if (port < 0 || (seed && seed_late && seed_gateway(t, listen, seed) != 0)) {
        return -1;
    }
    snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%d", port);
    if (seed) {
        if (test_password_token(t->base_url, TEST_ADMIN, TEST_ADMIN_PASSWORD, t->token,
                                sizeof(t->token)) != 0) {
            return -1;
        }
        test_http_set_bearer_for(t->base_url, t->token);
        test_http_set_bearer(t->token);
    }
    return 0;
}

int topology_gateway_wait_exit(topology *t, int timeout_ms)
{
    return test_proc_wait_exit(&t->procs[t->gateway_slot], timeout_ms);
}

int topology_restart_gateway(topology *t, char *const extra[])
{
    char *env[TOPOLOGY_ENV_MAX];
    char listen[64];
    int port;

    if (t->procs[t->gateway_slot].pid != 0) {
        return -1;
    }
    /* On the same port when others call it (t->gateway_port), else on a new one. */
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", t->gateway_port);
    gateway_env(t, listen, extra, 0, env);
    port = serve_in(t, t->gateway_slot, t->gateway_bin, env);
    if (port < 0) {
        return -1;
    }
    snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%d", port);
    /* Its tokens outlive it (the issuer is fixed): they go to its new address too. */
    if (t->token[0] != '\0') {
        test_http_set_bearer_for(t->base_url, t->token);
    }
    return 0;
}

static int service_index(const topology *t, const char *module)
{
    for (int i = 0; i < t->nservices; i++) {
        if (strcmp(t->services[i] + 7, module) == 0) {
            return i;
        }
    }
    return -1;
}

int topology_stop_module(topology *t, const char *module)
{
    int i = service_index(t, module);

    return i < 0 ? -1 : test_proc_stop(&t->procs[i], SIGTERM);
}

int topology_restart_module(topology *t, const char *module)
{
    int i = service_index(t, module);
    char listen[64];
    char *env[TOPOLOGY_ENV_MAX];

    if (i < 0) {
        return -1;
    }
    service_env(t, i, listen, sizeof(listen), 0, env);
    return serve_in(t, i, t->services[i], env) == t->service_ports[i] ? 0 : -1;
}

int topology_stop_service(topology *t)
{
    if (t->service[0] == '\0') {
        return -1;
    }
    return test_proc_stop(&t->procs[0], SIGTERM);
}

int topology_restart_service(topology *t)
{
    return t->nservices > 0 ? topology_restart_module(t, t->services[0] + 7) : -1;
}

int topology_stop(topology *t)
{
    int rc = 0;

    /* This thread's keep-alive connections would hold the gateway's drain until its
     * keep-alive timeout closed them (ADR 0032); the next request opens new ones. */
    test_http_thread_done();

    for (int i = t->nprocs - 1; i >= 0; i--) {
        int st;
        if (t->procs[i].pid == 0) {
            continue; /* stopped by the test already */
        }
        st = test_proc_stop(&t->procs[i], SIGTERM);
        if (st != 0) {
            fprintf(stderr, "process %d exited with %d; log: %s\n", i, st, t->procs[i].log_path);
            rc = -1;
        }
    }
    t->nprocs = 0;
    release_ports(t);
    test_nats_close(&t->nats);
    if (test_db_env_close(&t->db) != 0) {
        rc = -1;
    }
    if (rc == 0) {
        test_rmrf(t->dir);
    }
    return rc;
}
