/* Test support: a fresh local shipping module in a throwaway directory (local_shipping.h). */
#include "local_shipping.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/migrate.h"

/* Removes dir and the files in it (the database, its WAL and shared-memory files). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL) {
        return;
    }
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int local_shipping_open(local_shipping *ls, char *const *env_add)
{
    static const char *const modules[] = {"shipping", NULL};
    const char *tmp = getenv("TMPDIR");
    /* As the host: a few connections, since runners, relays and callers share them. */
    cl_db_options opt = {.max_conns = 8, .acquire_timeout_ms = 10000};
    char path[512];
    cl_module_env env = {0};
    cl_error err = {0};
    int applied = 0;

    memset(ls, 0, sizeof(*ls));
    snprintf(ls->dir, sizeof(ls->dir), "%s/cleave-shipping-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(ls->dir) == NULL) {
        perror("mkdtemp");
        ls->dir[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof(path), "%s/shipping.db", ls->dir);
    /*
     * Only env_add is read (not this process's environment), so a CLEAVE_NATS_URL set
     * around the test cannot turn the in-process bus into a networked one.
     */
    if (cl_config_load(NULL, env_add, modules, &ls->cfg, &err) != CL_OK ||
        cl_db_open(&cl_db_sqlite, "shipping", path, &opt, &ls->db, &err) != CL_OK ||
        cl_bus_schema_apply(ls->db, &err) != CL_OK ||
        cl_migrate_apply(ls->db, CLEAVE_SOURCE_DIR "/migrations", "shipping", &applied, &err) !=
            CL_OK ||
        cl_bus_new(ls->cfg, &ls->bus, &err) != CL_OK ||
        cl_bus_add_module(ls->bus, "shipping", ls->db, &err) != CL_OK) {
        goto fail;
    }
    env.config = ls->cfg;
    env.db = ls->db;
    env.bus = ls->bus;
    /* The host's order: the module subscribes and registers its kinds, then the bus runs. */
    if (shipping_module.init(&env, &err) != CL_OK || cl_bus_start(ls->bus, &err) != CL_OK) {
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "local shipping: %s: %s (%s)\n", cl_status_name(err.status), err.message,
            err.field);
    local_shipping_close(ls);
    return -1;
}

void local_shipping_close(local_shipping *ls)
{
    /* The bus first: its runners use the database until they stop. */
    cl_bus_free(ls->bus);
    ls->bus = NULL;
    cl_db_close(ls->db);
    ls->db = NULL;
    cl_config_free(ls->cfg);
    ls->cfg = NULL;
    if (ls->dir[0] != '\0') {
        remove_dir(ls->dir);
        ls->dir[0] = '\0';
    }
}
