/* Topologies for end-to-end tests: the real binaries on free loopback ports. */
#include "topology.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *topology_bin(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", CLEAVE_BIN_DIR, name);
    return buf;
}

static int run_cleave(topology *t, char *const env[], const char *cmd)
{
    char bin[512];
    char out[8192];
    char *argv[] = {"cleave", (char *)cmd, NULL};
    int rc = test_run(topology_bin("cleave", bin, sizeof(bin)), argv, env, out, sizeof(out));

    if (rc != 0) {
        fprintf(stderr, "cleave %s failed (%d) in %s:\n%s\n", cmd, rc, t->dir, out);
        return -1;
    }
    return 0;
}

int topology_start(topology *t, const char *name, int seed)
{
    char data_env[512], mig_env[600], log[512], bin[512], cmd[1200], out[1024];
    char *env[] = {data_env, mig_env, "CLEAVE_LISTEN=127.0.0.1:0", "CLEAVE_LOG_LEVEL=info",
                   NULL};
    char *cp_argv[] = {"cp", "-r", NULL, NULL, NULL};
    char *serve_argv[] = {"cleave", "serve", NULL};
    int port;

    memset(t, 0, sizeof(*t));
    if (strcmp(name, "monolith") != 0) {
        fprintf(stderr, "unknown topology %s\n", name);
        return -1;
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
    snprintf(mig_env, sizeof(mig_env), "CLEAVE_MIGRATIONS_DIR=%s", t->migrations_dir);
    if (run_cleave(t, env, "migrate") != 0 || (seed && run_cleave(t, env, "seed") != 0)) {
        return -1;
    }
    snprintf(log, sizeof(log), "%s/cleave.log", t->dir);
    if (test_proc_start(&t->procs[0], topology_bin("cleave", bin, sizeof(bin)), serve_argv, env,
                        log) != 0) {
        return -1;
    }
    t->nprocs = 1;
    port = test_proc_wait_port(&t->procs[0], 30000);
    if (port < 0) {
        fprintf(stderr, "cleave serve did not start; see %s\n", log);
        return -1;
    }
    snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%d", port);
    return 0;
}

int topology_stop(topology *t)
{
    int rc = 0;

    for (int i = t->nprocs - 1; i >= 0; i--) {
        int st = test_proc_stop(&t->procs[i], SIGTERM);
        if (st != 0) {
            fprintf(stderr, "process %d exited with %d; log: %s\n", i, st,
                    t->procs[i].log_path);
            rc = -1;
        }
    }
    t->nprocs = 0;
    if (rc == 0) {
        test_rmrf(t->dir);
    }
    return rc;
}
