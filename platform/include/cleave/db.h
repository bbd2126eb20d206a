/*
 * cleave/db.h - databases behind one driver table.
 *
 * A module is handed one cl_db: its own database (an SQLite file of its own, or later
 * its own PostgreSQL schema and role) and nothing else. A cl_db is a pool of
 * connections; a unit of work acquires a connection, runs statements (optionally in a
 * transaction) and releases it. Prepared statements are cached per connection.
 *
 * SQL is written with positional `?` placeholders; each driver translates as needed.
 * Drivers implement cl_db_driver; the table is versioned and only grows at the end.
 */
#ifndef CLEAVE_DB_H
#define CLEAVE_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "cleave/status.h"

#define CL_DB_DRIVER_VERSION 1

/*
 * The driver table. conn and stmt are the driver's own opaque objects. Every slot is
 * set. Errors map to: unique/foreign key violations -> CL_CONFLICT, busy/locked or lost
 * connection -> CL_UNAVAILABLE, anything else -> CL_INTERNAL.
 */
typedef struct cl_db_driver {
    int version;
    const char *name;    /* "sqlite" */
    const char *dialect; /* picks migration files: "sqlite", "postgres" */
    cl_status (*connect)(const char *target, void **conn, cl_error *err);
    void (*disconnect)(void *conn);
    /* Runs one or more statements without parameters (migrations, BEGIN, COMMIT). */
    cl_status (*exec)(void *conn, const char *sql, cl_error *err);
    cl_status (*prepare)(void *conn, const char *sql, void **stmt, cl_error *err);
    void (*finalize)(void *stmt);
    /* Clears the bindings and rewinds the statement. */
    cl_status (*reset)(void *stmt, cl_error *err);
    cl_status (*bind_i64)(void *stmt, int idx, int64_t v, cl_error *err);
    cl_status (*bind_text)(void *stmt, int idx, const char *s, cl_error *err);
    cl_status (*bind_null)(void *stmt, int idx, cl_error *err);
    /* Advances; *row tells whether a row is available. */
    cl_status (*step)(void *stmt, bool *row, cl_error *err);
    int64_t (*col_i64)(void *stmt, int col);
    /* Borrowed until the next step or reset; NULL for SQL NULL. */
    const char *(*col_text)(void *stmt, int col);
    bool (*col_null)(void *stmt, int col);
    /* Cheap liveness check of a connection. */
    cl_status (*ping)(void *conn, cl_error *err);
} cl_db_driver;

/* The SQLite driver: target is a file path; WAL, foreign keys on, busy timeout. */
extern const cl_db_driver cl_db_sqlite;

typedef struct cl_db cl_db;
typedef struct cl_db_conn cl_db_conn;
typedef struct cl_stmt cl_stmt;

typedef struct cl_db_options {
    int max_conns;              /* 0 means 4 */
    int64_t acquire_timeout_ms; /* 0 means 2000; waiting longer gives CL_UNAVAILABLE */
} cl_db_options;

/*
 * Opens a database (pool) for one module. name is the module name (logs, metrics).
 * Connects once to check the target. On success *out is owned by the caller (cl_db_close).
 */
cl_status cl_db_open(const cl_db_driver *drv, const char *name, const char *target,
                     const cl_db_options *opt, cl_db **out, cl_error *err);
/* Closes every connection. Connections must have been released. NULL is a no-op. */
void cl_db_close(cl_db *db);
const char *cl_db_name(const cl_db *db);
const cl_db_driver *cl_db_driver_of(const cl_db *db);

/*
 * Takes a connection from the pool, waiting until ctx's deadline (or the acquire
 * timeout, whichever is sooner). CL_UNAVAILABLE or CL_DEADLINE_EXCEEDED on timeout.
 * ctx may be NULL. The connection is borrowed until cl_db_release.
 */
cl_status cl_db_acquire(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err);
/* Returns conn to the pool, rolling back a transaction left open. NULL is a no-op. */
void cl_db_release(cl_db_conn *conn);

cl_status cl_db_exec(cl_db_conn *conn, const char *sql, cl_error *err);
cl_status cl_db_begin(cl_db_conn *conn, cl_error *err);
cl_status cl_db_commit(cl_db_conn *conn, cl_error *err);
/* Rolls back the open transaction; a no-op without one. */
void cl_db_rollback(cl_db_conn *conn);

/*
 * A prepared statement for sql, cached on conn by its text: sql must be a string that
 * lives as long as the program (a literal). Borrowed; reset with bindings cleared.
 */
cl_status cl_db_prepare(cl_db_conn *conn, const char *sql, cl_stmt **out, cl_error *err);

/* Parameters are 1-based, as in SQL. */
cl_status cl_stmt_bind_i64(cl_stmt *st, int idx, int64_t v, cl_error *err);
/* Binds text (copied); NULL binds SQL NULL. */
cl_status cl_stmt_bind_text(cl_stmt *st, int idx, const char *s, cl_error *err);
cl_status cl_stmt_bind_null(cl_stmt *st, int idx, cl_error *err);
/*
 * Binds parameters 1..n in one call, one letter of types per parameter:
 *   't' const char * (NULL binds SQL NULL), 'i' int64_t, 'n' SQL NULL (no argument).
 * Stops at the first failure. CL_INTERNAL for an unknown letter.
 */
cl_status cl_stmt_bind_all(cl_stmt *st, cl_error *err, const char *types, ...);
/* Advances to the next row; *row false once done. */
cl_status cl_stmt_step(cl_stmt *st, bool *row, cl_error *err);
/* Columns are 0-based. Text is borrowed until the next step; NULL for SQL NULL. */
int64_t cl_stmt_i64(cl_stmt *st, int col);
const char *cl_stmt_text(cl_stmt *st, int col);
bool cl_stmt_null(cl_stmt *st, int col);

/* Pings one connection from the pool: CL_OK when the database answers. */
cl_status cl_db_ping(cl_db *db, cl_error *err);

#endif /* CLEAVE_DB_H */
