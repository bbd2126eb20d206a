/* Topologies for end-to-end tests: the real binaries on free loopback ports. */
#include "topology.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *topology_bin(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", CLEAVE_BIN_DIR, name);
    return buf;
}

/* The shared secret services require of their callers in every test topology. */
#define TOPOLOGY_TOKEN "CLEAVE_SERVICE_TOKEN=test-service-token"

static int run_host(topology *t, const char *host_bin, char *const env[], const char *cmd)
{
    char bin[512];
    char out[8192];
    char *argv[] = {(char *)host_bin, (char *)cmd, NULL};
    int rc = test_run(topology_bin(host_bin, bin, sizeof(bin)), argv, env, out, sizeof(out));

    if (rc != 0) {
        fprintf(stderr, "%s %s failed (%d) in %s:\n%s\n", host_bin, cmd, rc, t->dir, out);
        return -1;
    }
    return 0;
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

int topology_start(topology *t, const char *name, int seed)
{
    char data_env[512], url_env[128], host_bin[128], extracted[64] = "", cmd[1200], out[1024];
    char *env[12] = {data_env, t->migrations_env, "CLEAVE_LISTEN=127.0.0.1:0", TOPOLOGY_TOKEN,
                     NULL};
    char *admin_env[12];
    char *svc_env[12] = {t->service_data_env, t->migrations_env, "CLEAVE_LISTEN=127.0.0.1:0",
                         TOPOLOGY_TOKEN, NULL};
    char *svc_admin_env[12];
    char *cp_argv[] = {"cp", "-r", NULL, NULL, NULL};
    int port;
    int n;

    memset(t, 0, sizeof(*t));
    url_env[0] = '\0';
    if (test_db_env_open(&t->db, 1) != 0) {
        return -1;
    }
    n = topology_db_env(t, env, 4, 0);
    memcpy(svc_admin_env, svc_env, sizeof(svc_env));
    topology_db_env(t, svc_env, 4, 0);
    topology_db_env(t, svc_admin_env, 4, 1);
    /* "monolith", or "<module>-extracted": that module in its own service. */
    if (strcmp(name, "monolith") == 0) {
        snprintf(host_bin, sizeof(host_bin), "cleave");
    } else {
        const char *dash = strstr(name, "-extracted");
        if (dash == NULL || dash == name || (size_t)(dash - name) >= sizeof(extracted)) {
            fprintf(stderr, "unknown topology %s\n", name);
            return -1;
        }
        memcpy(extracted, name, (size_t)(dash - name));
        extracted[dash - name] = '\0';
        snprintf(host_bin, sizeof(host_bin), "cleave-without-%s", extracted);
    }
    if (test_tmpdir(t->dir, sizeof(t->dir)) != 0) {
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
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", t->dir);
    snprintf(t->migrations_env, sizeof(t->migrations_env), "CLEAVE_MIGRATIONS_DIR=%s",
             t->migrations_dir);
    if (extracted[0] != '\0') {
        char upper[64];
        /* The service owns its own data directory: no shared database. */
        snprintf(t->service_data_env, sizeof(t->service_data_env), "CLEAVE_DATA_DIR=%s/%s-data",
                 t->dir, extracted);
        snprintf(t->service, sizeof(t->service), "cleave-%s", extracted);
        /* On PostgreSQL an admin migrates; the service itself runs as its app role. */
        if (t->db.admin_env[0] != '\0' && run_host(t, t->service, svc_admin_env, "migrate") != 0) {
            return -1;
        }
        port = serve(t, t->service, svc_env);
        if (port < 0) {
            return -1;
        }
        t->service_port = port;
        for (size_t i = 0; i <= strlen(extracted); i++) {
            upper[i] = (char)toupper((unsigned char)extracted[i]);
        }
        snprintf(url_env, sizeof(url_env), "CLEAVE_%s_URL=http://127.0.0.1:%d", upper, port);
        env[n++] = url_env;
        env[n] = NULL;
        snprintf(t->service_url, sizeof(t->service_url), "http://127.0.0.1:%d", port);
    }
    memcpy(admin_env, env, sizeof(env));
    if (t->db.admin_env[0] != '\0') {
        admin_env[n] = t->db.admin_env;
        admin_env[n + 1] = NULL;
    }
    if (run_host(t, host_bin, admin_env, "migrate") != 0 ||
        (seed && run_host(t, host_bin, env, "seed") != 0)) {
        return -1;
    }
    /* Data written by those processes must be on the replica before anyone reads it there. */
    if (t->db.pg.db[0] != '\0' && pgtest_wait_replica(&t->db.pg, 30000) != 0) {
        return -1;
    }
    port = serve(t, host_bin, env);
    if (port < 0) {
        return -1;
    }
    snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%d", port);
    return 0;
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
    char listen[64];
    char *env[10] = {t->service_data_env, t->migrations_env, listen, TOPOLOGY_TOKEN, NULL};

    topology_db_env(t, env, 4, 0);
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", t->service_port);
    return serve_in(t, 0, t->service, env) == t->service_port ? 0 : -1;
}

int topology_stop(topology *t)
{
    int rc = 0;

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
    if (test_db_env_close(&t->db) != 0) {
        rc = -1;
    }
    if (rc == 0) {
        test_rmrf(t->dir);
    }
    return rc;
}
