/*
 * The orders' contract suite against the local binding: the catalog, inventory, payments
 * and orders implementations in this process, each on its own SQLite file in a throwaway
 * directory, wired to each other as the host wires them; the saga workers run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/bus.h"
#include "cleave/migrate.h"
#include "contract.h"

#define NMODULES 4

static const cl_module *const modules[NMODULES] = {&catalog_module, &inventory_module,
                                                   &payments_module, &orders_module};
static cl_db *dbs[NMODULES];
static bool started[NMODULES];
static char dir[256];

static const void *lookup(const cl_module_env *env, const char *name)
{
    (void)env;
    for (int i = 0; i < NMODULES; i++) {
        if (strcmp(modules[i]->name, name) == 0) {
            return modules[i]->ops;
        }
    }
    return NULL;
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char file[512];

    if (d == NULL) {
        return;
    }
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
            unlink(file);
        }
    }
    closedir(d);
    rmdir(path);
}

static void local_teardown(void)
{
    for (int i = NMODULES - 1; i >= 0; i--) {
        if (started[i]) {
            modules[i]->stop();
            started[i] = false;
        }
        cl_db_close(dbs[i]);
        dbs[i] = NULL;
    }
    if (dir[0] != '\0') {
        remove_dir(dir);
        dir[0] = '\0';
    }
}

static int local_setup(orders_contract_world *w)
{
    const char *tmp = getenv("TMPDIR");
    cl_error err = {0};

    snprintf(dir, sizeof(dir), "%s/cleave-orders-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < NMODULES; i++) {
        char path[512];
        int applied = 0;

        snprintf(path, sizeof(path), "%s/%s.db", dir, modules[i]->name);
        if (cl_db_open(&cl_db_sqlite, modules[i]->name, path, NULL, &dbs[i], &err) != CL_OK ||
            cl_bus_schema_apply(dbs[i], &err) != CL_OK ||
            cl_migrate_apply(dbs[i], CLEAVE_SOURCE_DIR "/migrations", modules[i]->name, &applied,
                             &err) != CL_OK) {
            goto fail;
        }
    }
    for (int i = 0; i < NMODULES; i++) {
        cl_module_env env = {0};

        env.db = dbs[i];
        env.module_ops = lookup;
        env.serving = true;
        if (modules[i]->init(&env, &err) != CL_OK || modules[i]->start(&err) != CL_OK) {
            goto fail;
        }
        started[i] = true;
    }
    w->catalog = catalog_module.ops;
    w->inventory = inventory_module.ops;
    w->payments = payments_module.ops;
    w->orders = orders_module.ops;
    return 0;
fail:
    fprintf(stderr, "local orders: %s: %s (%s)\n", cl_status_name(err.status), err.message,
            err.field);
    local_teardown();
    return -1;
}

int main(void)
{
    return orders_contract_run("orders_contract_local", local_setup, local_teardown) == 0
               ? EXIT_SUCCESS
               : EXIT_FAILURE;
}
