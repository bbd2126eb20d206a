/*
 * Migrations on PostgreSQL (ADR 0011): the runner of migrate.c, run by an admin session
 * that acts as the module's owner role, so that every table belongs to the owner and
 * the app role gets exactly the rights the default privileges give it.
 */
#include <stdio.h>

#include "cleave/extension.h"
#include "cleave/migrate.h"

cl_status cl_migrate_owner_target(const char *admin_url, const char *module, char *out, size_t size,
                                  cl_error *err)
{
    char options[256];

    if (admin_url == NULL || module == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_migrate_owner_target: missing argument");
    }
    /* module is checked by provisioning before anything runs with it. */
    snprintf(options, sizeof(options), "-c role=cleave_%s_owner -c search_path=%s", module, module);
    return cl_db_pg_target(admin_url, NULL, "cleave-migrate", options, out, size, err);
}

cl_status cl_migrate_postgres(const char *admin_url, const char *dir, const char *module,
                              int *applied, cl_error *err)
{
    cl_db_options opt = {.max_conns = 1};
    char target[2048];
    cl_db *db = NULL;
    cl_status st;

    st = cl_db_pg_target(admin_url, NULL, "cleave-admin", NULL, target, sizeof(target), err);
    if (st == CL_OK) {
        st = cl_db_pg_provision(target, module, err);
    }
    if (st != CL_OK) {
        return st;
    }
    st = cl_migrate_owner_target(admin_url, module, target, sizeof(target), err);
    if (st == CL_OK) {
        st = cl_db_open(&cl_db_postgres, module, target, &opt, &db, err);
    }
    if (st == CL_OK) {
        st = cl_migrate_apply(db, dir, module, applied, err);
    }
    cl_db_close(db);
    if (st != CL_OK) {
        return st;
    }
    st = cl_db_pg_target(admin_url, NULL, "cleave-admin", NULL, target, sizeof(target), err);
    if (st == CL_OK) {
        st = cl_db_pg_seal_migrations(target, module, err);
    }
    return st;
}

static const cl_db_server postgres_server = {
    .version = 1,
    .driver = &cl_db_postgres,
    .target = cl_db_pg_target,
    .provision = cl_db_pg_provision,
    .migrate = cl_migrate_postgres,
    .owner_target = cl_migrate_owner_target,
};

const cl_extension cl_postgres_extension = {"db", "postgres", &postgres_server};
