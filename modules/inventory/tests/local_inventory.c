/* Test support: a fresh local inventory in a throwaway directory (local_inventory.h). */
#include "local_inventory.h"

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

int local_inventory_open(local_inventory *lc)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    cl_module_env env = {0};
    cl_error err = {0};
    int applied = 0;

    memset(lc, 0, sizeof(*lc));
    snprintf(lc->dir, sizeof(lc->dir), "%s/cleave-inventory-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(lc->dir) == NULL) {
        perror("mkdtemp");
        lc->dir[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof(path), "%s/inventory.db", lc->dir);
    if (cl_db_open(&cl_db_sqlite, "inventory", path, NULL, &lc->db, &err) != CL_OK ||
        cl_migrate_apply(lc->db, CLEAVE_SOURCE_DIR "/migrations", "inventory", &applied, &err) !=
            CL_OK) {
        goto fail;
    }
    env.db = lc->db;
    if (inventory_module.init(&env, &err) != CL_OK) {
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "local inventory: %s: %s (%s)\n", cl_status_name(err.status), err.message,
            err.field);
    local_inventory_close(lc);
    return -1;
}

void local_inventory_close(local_inventory *lc)
{
    cl_db_close(lc->db);
    lc->db = NULL;
    if (lc->dir[0] != '\0') {
        remove_dir(lc->dir);
        lc->dir[0] = '\0';
    }
}
