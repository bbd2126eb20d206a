/* Test support: a fresh local catalog in a throwaway directory (local_catalog.h). */
#include "local_catalog.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/bus.h"
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

/* The catalog in a fresh PostgreSQL database: migrated as its owner, used as its app role. */
static int open_postgres(local_catalog *lc, cl_error *err)
{
    char admin[512], replica[512], target[2048];

    if (pgtest_load(&lc->pg) != 0 || pgtest_db_create(&lc->pg) != 0) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL, "no PostgreSQL for the test");
    }
    pgtest_url(lc->pg.primary, lc->pg.db, admin, sizeof(admin));
    if (pgtest_migrate(admin, "catalog", err) != CL_OK ||
        cl_db_pg_target(admin, "cleave_catalog", "cleave-catalog", "-c search_path=catalog", target,
                        sizeof(target), err) != CL_OK ||
        cl_db_open(&cl_db_postgres, "catalog", target, NULL, &lc->db, err) != CL_OK) {
        return err->status;
    }
    if (lc->pg.replica[0] != '\0') {
        pgtest_url(lc->pg.replica, lc->pg.db, replica, sizeof(replica));
        if (cl_db_pg_target(replica, "cleave_catalog", "cleave-catalog-replica",
                            "-c search_path=catalog", target, sizeof(target), err) != CL_OK ||
            cl_db_attach_replica(lc->db, target, NULL, err) != CL_OK) {
            return err->status;
        }
    }
    /* The schema was written through another pool: read it from the primary for now. */
    cl_db_mark_written(lc->db);
    return CL_OK;
}

int local_catalog_open(local_catalog *lc)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    cl_module_env env = {0};
    cl_error err = {0};
    int applied = 0;

    memset(lc, 0, sizeof(*lc));
    snprintf(lc->dir, sizeof(lc->dir), "%s/cleave-catalog-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(lc->dir) == NULL) {
        perror("mkdtemp");
        lc->dir[0] = '\0';
        return -1;
    }
    snprintf(path, sizeof(path), "%s/catalog.db", lc->dir);
    /* The bus's tables too: the catalog publishes its events into its outbox. */
    if (pgtest_enabled()) {
        if (open_postgres(lc, &err) != CL_OK) {
            goto fail;
        }
    } else if (cl_db_open(&cl_db_sqlite, "catalog", path, NULL, &lc->db, &err) != CL_OK ||
               cl_migrate_apply(lc->db, CLEAVE_SOURCE_DIR "/migrations", "catalog", &applied,
                                &err) != CL_OK ||
               cl_bus_schema_apply(lc->db, &err) != CL_OK) {
        goto fail;
    }
    env.db = lc->db;
    if (catalog_module.init(&env, &err) != CL_OK) {
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "local catalog: %s: %s (%s)\n", cl_status_name(err.status), err.message,
            err.field);
    local_catalog_close(lc);
    return -1;
}

void local_catalog_close(local_catalog *lc)
{
    cl_db_close(lc->db);
    lc->db = NULL;
    if (lc->pg.db[0] != '\0') {
        pgtest_db_drop(&lc->pg);
    }
    if (lc->dir[0] != '\0') {
        remove_dir(lc->dir);
        lc->dir[0] = '\0';
    }
}
