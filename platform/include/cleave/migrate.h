/*
 * cleave/migrate.h - versioned, checksummed migrations per module.
 *
 * Files live in <dir>/<module>/NNNN_description.sql. A file named
 * NNNN_description.<dialect>.sql is used instead of the plain one for that dialect.
 * Each migration runs in its own transaction and is recorded in the module's own
 * database (table cl_migrations: version, name, checksum, applied_at). An applied
 * migration whose file changed is refused, naming the file; a failing migration
 * leaves the database as it was.
 */
#ifndef CLEAVE_MIGRATE_H
#define CLEAVE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/db.h"

typedef struct cl_migration_info {
    int64_t version;
    char name[128];      /* file name */
    char checksum[65];   /* SHA-256 hex of the file's bytes */
    char applied_at[32]; /* RFC 3339, empty when pending */
    bool applied;
} cl_migration_info;

/*
 * A migration file as the build read it (cleave_wire embeds the tree's): its bytes and
 * the SHA-256 that CMake computed of them, as 64 lowercase hex digits.
 */
typedef struct cl_migration_text {
    const char *module;
    const char *name;
    const void *text;
    size_t len;
    const char *sha256;
} cl_migration_text;

/*
 * Gives the functions below the migrations the build knew, known[n], borrowed for the
 * life of the process; call it once, before any of them. A file whose module, name and
 * bytes are those of an entry takes the entry's checksum; any other is hashed when read.
 * Either way the checksum is the SHA-256 of the bytes on disk, so drift is refused alike;
 * a start with nothing new to apply merely computes none (OpenSSL 3's first digest makes
 * 2 MB of libcrypto resident, ADR 0047).
 */
void cl_migrate_known(const cl_migration_text *known, int n);

/*
 * Applies the pending migrations of module from dir to db, in version order.
 * *applied (may be NULL) receives how many were applied.
 * CL_CONFLICT naming the file when an applied migration changed or is missing;
 * CL_INVALID for a badly named or duplicate file; CL_INTERNAL when one fails (its
 * error in err->message, nothing of it applied); CL_NOT_FOUND when dir/module is missing.
 */
cl_status cl_migrate_apply(cl_db *db, const char *dir, const char *module, int *applied,
                           cl_error *err);

/*
 * Lists known migrations (files and applied rows) in version order into out[max];
 * *count receives how many. Also checks checksums: CL_CONFLICT as for apply.
 */
cl_status cl_migrate_status(cl_db *db, const char *dir, const char *module, cl_migration_info *out,
                            int max, int *count, cl_error *err);

/* CL_OK when every migration file of module is applied with a matching checksum. */
cl_status cl_migrate_check(cl_db *db, const char *dir, const char *module, cl_error *err);

/*
 * PostgreSQL (ADR 0011): with admin credentials (admin_url, a URL or connection string),
 * creates module's roles and schema (cl_db_pg_provision), applies its pending migrations
 * acting as its owner role with search_path set to its schema, then leaves its app role
 * only SELECT on cl_migrations. Idempotent. Statuses as cl_migrate_apply and
 * cl_db_pg_provision.
 */
cl_status cl_migrate_postgres(const char *admin_url, const char *dir, const char *module,
                              int *applied, cl_error *err);

/*
 * The connection string of a pool acting as module's owner role (for migrations and
 * their status) from admin_url, into out[size].
 */
cl_status cl_migrate_owner_target(const char *admin_url, const char *module, char *out, size_t size,
                                  cl_error *err);

/*
 * A database server (PostgreSQL, ADR 0011) as the host drives it: registered by
 * cleave_postgres as cl_postgres_extension (kind "db", cleave/extension.h), so that the
 * host reaches it only through this table and a build without it links no libpq. The
 * slots are the functions above and cl_db_pg_* of cleave/db.h; none is NULL.
 */
typedef struct cl_db_server {
    int version; /* 1 */
    const cl_db_driver *driver;
    cl_status (*target)(const char *url, const char *user, const char *application_name,
                        const char *options, char *out, size_t size, cl_error *err);
    cl_status (*provision)(const char *admin_target, const char *module, cl_error *err);
    cl_status (*migrate)(const char *admin_url, const char *dir, const char *module, int *applied,
                         cl_error *err);
    cl_status (*owner_target)(const char *admin_url, const char *module, char *out, size_t size,
                              cl_error *err);
} cl_db_server;

#endif /* CLEAVE_MIGRATE_H */
