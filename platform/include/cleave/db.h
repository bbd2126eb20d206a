/*
 * cleave/db.h - databases behind one driver table.
 *
 * A module is handed one cl_db: its own database (an SQLite file of its own, or its own
 * PostgreSQL schema used through its own role) and nothing else. A cl_db is a pool of
 * connections; a unit of work acquires a connection, runs statements (optionally in a
 * transaction) and releases it. Prepared statements are cached per connection. A cl_db
 * may have a read replica: read-only work acquires with cl_db_acquire_read (ADR 0011).
 *
 * SQL is written with positional `?` placeholders; each driver translates as needed.
 * Drivers implement cl_db_driver; the table is versioned and only grows at the end.
 */
#ifndef CLEAVE_DB_H
#define CLEAVE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"

#define CL_DB_DRIVER_VERSION 5

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
    /* Version 2. True when conn is known to be unusable (the server went away). */
    bool (*broken)(void *conn);
    /*
     * Version 3. The database takes one writer at a time (SQLite): the pool then runs every
     * transaction begun with cl_db_begin on one connection of its own, so that the pages it
     * reads stay cached between transactions (no other connection's commit invalidates them).
     * Such a driver also takes "BEGIN READ" (cl_db_begin_read): a transaction that only
     * reads, from one snapshot, and waits for no writer.
     */
    bool one_writer;
    /*
     * Version 3, may be NULL. Called on a connection of the pool, outside any transaction,
     * after a commit on the pool's writer once the writer is given back: work the commit
     * left due that no writer should wait for (SQLite's WAL checkpoint).
     */
    void (*upkeep)(void *conn);
    /*
     * Version 4. How many rows stmt, an INSERT, UPDATE or DELETE stepped to its end,
     * inserted, updated or deleted (0 for a statement that writes nothing).
     */
    int64_t (*changes)(void *stmt);
    /*
     * Version 5, may be NULL. Frees what conn caches of the database (SQLite's page cache),
     * on a connection outside any transaction (cl_db_shrink).
     */
    void (*shrink)(void *conn);
} cl_db_driver;

/* The SQLite driver: target is a file path; WAL, foreign keys on, busy timeout. */
extern const cl_db_driver cl_db_sqlite;
/*
 * Whether the SQLite files of this process are its alone (ADR 0055). Exclusive: the first
 * connection to a file locks it against every other process until the process's last
 * connection to it closes, and no transaction costs a lock system call; another process
 * (the sqlite3 shell, a cleave command) cannot open it meanwhile and gets CL_UNAVAILABLE.
 * Shared, the default: SQLite's locking, any process may open the file. Called before the
 * process's first SQLite connection; after it, asking for the other mode is CL_INVALID.
 */
cl_status cl_db_sqlite_exclusive(bool exclusive, cl_error *err);
/*
 * The PostgreSQL driver (libpq): target is a libpq connection string or URL, best built
 * with cl_db_pg_target. Placeholders become $1..$n (outside literals, identifiers and
 * comments); statements are prepared per connection; text parameters and results.
 * SQLSTATE 23505/23503 -> CL_CONFLICT; class 08, 57P01-57P03, 53xxx, 40001, 40P01 and a
 * lost connection -> CL_UNAVAILABLE; 57014 (statement timeout) -> CL_DEADLINE_EXCEEDED;
 * anything else -> CL_INTERNAL.
 */
extern const cl_db_driver cl_db_postgres;

typedef struct cl_db cl_db;
typedef struct cl_db_conn cl_db_conn;
typedef struct cl_stmt cl_stmt;

typedef struct cl_db_options {
    int max_conns;              /* 0 means 4 */
    int64_t acquire_timeout_ms; /* 0 means 2000; waiting longer gives CL_UNAVAILABLE */
    /* Connections opened at cl_db_open and kept open; 0 means 1. At most max_conns. */
    int min_conns;
    /* An idle connection older than this is pinged before it is handed out; 0 means 1000. */
    int64_t idle_check_ms;
    /* Idle connections beyond min_conns are closed after this long; 0 means 60000. */
    int64_t max_idle_ms;
    /*
     * After a commit on the primary, reads go to the primary for this long, so that a
     * process reads its own writes although the replica lags; 0 means 1000, < 0 never.
     */
    int64_t read_after_write_ms;
} cl_db_options;

/* Figures of one pool, for metrics. Counters only grow. */
typedef struct cl_db_stats {
    int size;   /* open connections */
    int idle;   /* of which idle */
    int in_use; /* of which borrowed */
    int min;    /* configured bounds */
    int max;
    uint64_t acquires; /* successful acquires */
    uint64_t waits;    /* acquires that had to wait for a free connection */
    uint64_t timeouts; /* acquires that gave up (unavailable or deadline) */
    uint64_t connects; /* connections opened */
    uint64_t connect_failures;
    uint64_t dropped;       /* connections closed because they were broken or failed a ping */
    uint64_t idle_closed;   /* connections beyond min_conns closed after max_idle_ms idle */
    uint64_t pings;         /* health checks of idle connections */
    uint64_t replica_reads; /* cl_db_acquire_read served by the replica */
    uint64_t primary_reads; /* cl_db_acquire_read served by the primary */
} cl_db_stats;

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
/* True when db's driver speaks PostgreSQL's dialect; false for SQLite's and for NULL. */
bool cl_db_is_postgres(const cl_db *db);

/*
 * Takes a connection from the pool, waiting until ctx's deadline (or the acquire
 * timeout, whichever is sooner). CL_UNAVAILABLE or CL_DEADLINE_EXCEEDED on timeout.
 * ctx may be NULL. The connection is borrowed until cl_db_release.
 */
cl_status cl_db_acquire(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err);
/* Returns conn to the pool, rolling back a transaction left open. NULL is a no-op. */
void cl_db_release(cl_db_conn *conn);
/*
 * Frees what the pool's idle connections (and its writer, when no transaction holds it)
 * cache of the database, and gives the memory freed back to the system: for a caller that
 * just read or wrote much it will not touch again (a relay after a burst of events).
 */
void cl_db_shrink(cl_db *db);

cl_status cl_db_exec(cl_db_conn *conn, const char *sql, cl_error *err);
cl_status cl_db_begin(cl_db_conn *conn, cl_error *err);
cl_status cl_db_commit(cl_db_conn *conn, cl_error *err);
/* Rolls back the open transaction; a no-op without one. */
void cl_db_rollback(cl_db_conn *conn);
/*
 * A read section: statements that only read, run together, ended by cl_db_end_read (or by
 * cl_db_release). With a one_writer driver (SQLite) the section is one read transaction (one
 * snapshot), on the pool's writer when no transaction holds it at that moment, so that the
 * pages it reads are most likely cached; it never waits for the writer. Other drivers run
 * the statements as they would without it, each on its own. Inside a section: no writes, no
 * cl_db_begin, no other connection of the same pool, nothing slow (a transaction of the
 * pool may be waiting for the writer). Statements prepared inside are used inside only.
 */
cl_status cl_db_begin_read(cl_db_conn *conn, cl_error *err);
/* Ends the read section open on conn; a no-op without one. */
void cl_db_end_read(cl_db_conn *conn);
/*
 * Has fn run once the transaction open on conn ends: after its COMMIT (or its rollback, or
 * the release of the connection, where it ends too), once however often it was asked; at
 * once when no transaction is open. For wake-ups that must not come before the commit they
 * announce, such as a publish waking the bus's relay: fn must be cheap and must not use conn.
 * fn is given conn's database (borrowed), so that it wakes only who reads that one.
 */
void cl_db_after_commit(cl_db_conn *conn, void (*fn)(cl_db *db));
/* The database conn was acquired from (borrowed). */
cl_db *cl_db_of(cl_db_conn *conn);

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
 *   't' or 's' const char * (NULL binds SQL NULL), 'i' int64_t, 'n' SQL NULL (no argument).
 * Stops at the first failure. CL_INTERNAL for an unknown letter.
 */
cl_status cl_stmt_bind_all(cl_stmt *st, cl_error *err, const char *types, ...);
/*
 * cl_db_prepare then cl_stmt_bind_all, reporting in ctx->err: the one call most module
 * SQL needs. Letters as for cl_stmt_bind_all ('s' is accepted for text too).
 * *out is written only on CL_OK.
 */
cl_status cl_db_prepare_bind(cl_ctx *ctx, cl_db_conn *conn, const char *sql, cl_stmt **out,
                             const char *types, ...);
/*
 * Advances to the next row; *row false once done, and again at every step after that,
 * running nothing, until the statement is prepared again (ADR 0065).
 */
cl_status cl_stmt_step(cl_stmt *st, bool *row, cl_error *err);
/*
 * Steps st to its end (a write, or rows nobody reads). *rows (may be NULL) receives how
 * many rows it returned, at most INT_MAX, and is written only on CL_OK. Statuses as for
 * cl_stmt_step.
 */
cl_status cl_stmt_drain(cl_stmt *st, int *rows, cl_error *err);
/*
 * Steps st, an INSERT, UPDATE or DELETE without RETURNING, to its end. *changed (may be
 * NULL) receives how many rows it inserted, updated or deleted, at most INT_MAX, and is
 * written only on CL_OK; a statement that returns a row is CL_INTERNAL. A write whose
 * caller needs only that count asks for it so rather than counting RETURNING rows: SQLite
 * gathers those in a temporary B-tree at every run, some 2.5 us each (issue #16).
 */
cl_status cl_stmt_run(cl_stmt *st, int *changed, cl_error *err);
/* Columns are 0-based. Text is borrowed until the next step; NULL for SQL NULL. */
int64_t cl_stmt_i64(cl_stmt *st, int col);
const char *cl_stmt_text(cl_stmt *st, int col);
bool cl_stmt_null(cl_stmt *st, int col);

/*
 * The database's clock as milliseconds since the Unix epoch, as an SQL expression per
 * dialect, for expiries every process must read on one clock (leases: ADR 0034).
 * Macros, so that SQL texts using them stay static (the statement cache is keyed by the
 * text's address). PostgreSQL's is clock_timestamp(): now() stands still in a transaction.
 */
#define CL_DB_NOW_MS_SQLITE   "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS BIGINT)"
#define CL_DB_NOW_MS_POSTGRES "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)"

/* Pings one connection from the pool: CL_OK when the database answers. */
cl_status cl_db_ping(cl_db *db, cl_error *err);

/* Copies the pool's figures into *out. */
void cl_db_stats_get(cl_db *db, cl_db_stats *out);

/*
 * Gives db a read replica: a second pool (same driver, opt as for cl_db_open) at target.
 * It does not connect yet: a replica that is down at start-up only sends reads to the
 * primary. db owns the replica; cl_db_close closes it. CL_INVALID when db has one.
 */
cl_status cl_db_attach_replica(cl_db *db, const char *target, const cl_db_options *opt,
                               cl_error *err);
/*
 * Tells db that its database was written outside of it (migrations through another
 * pool, another process): reads go to the primary for read_after_write_ms from now.
 */
void cl_db_mark_written(cl_db *db);

/* The replica pool (borrowed, for its figures), or NULL. */
cl_db *cl_db_replica(cl_db *db);

/*
 * Takes a connection for read-only work: from the replica when db has one, ctx does not
 * ask for the primary (ctx->read_primary), this process has not committed a write within
 * read_after_write_ms, and the replica answers; from the primary otherwise. A replica
 * that fails to connect or to answer a health check is not tried again for a few
 * seconds. Statuses as cl_db_acquire. Release with cl_db_release.
 */
cl_status cl_db_acquire_read(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err);

/* --- PostgreSQL administration (ADR 0011) ----------------------------------------- */

/*
 * Builds a libpq connection string into out[size] from url (a postgresql:// URL or a
 * key=value string), overriding user, application_name and options (the -c settings)
 * when they are not NULL, and adding connect_timeout and TCP keepalive defaults the URL
 * does not set. CL_INVALID when url does not parse or out is too small.
 */
cl_status cl_db_pg_target(const char *url, const char *user, const char *application_name,
                          const char *options, char *out, size_t size, cl_error *err);

/*
 * Creates, idempotently, what module needs on the server that admin_target (a superuser
 * or a role with CREATEROLE and CREATE on the database) reaches: the owner role
 * cleave_<module>_owner (NOLOGIN), the app role cleave_<module> (LOGIN), the schema
 * <module> owned by the owner, USAGE for the app role, DML on the owner's future tables
 * and sequences; and revokes what PUBLIC may do on schema public and on the database.
 * module: lower-case letters, digits and '_'. CL_UNAVAILABLE when the server cannot be
 * reached, CL_INTERNAL when a statement fails.
 */
cl_status cl_db_pg_provision(const char *admin_target, const char *module, cl_error *err);

/*
 * After migrations: takes back from the app role of module every right on its schema's
 * cl_migrations table but SELECT, so that it can check but not forge the history.
 */
cl_status cl_db_pg_seal_migrations(const char *admin_target, const char *module, cl_error *err);

#endif /* CLEAVE_DB_H */
