/*
 * The bus's own tables, created in every local module's database (ADR 0012): the outbox
 * of what the module publishes, the inbox and dead letters of what it consumes, and its
 * long-running operations. Versioned in cl_bus_schema, separately from the module's own
 * migrations (cl_migrations), so that the platform can evolve them without touching any
 * module's migrations folder. Types are the portable subset (BIGINT, TEXT); only the
 * auto-numbered keys differ between the dialects.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"

static const char schema_table_sql[] = "CREATE TABLE IF NOT EXISTS cl_bus_schema ("
                                       "version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)";
static const char schema_version_sql[] = "SELECT max(version) FROM cl_bus_schema";
static const char schema_record_sql[] =
    "INSERT INTO cl_bus_schema (version, applied_at) VALUES (?, ?)";

#define OUTBOX_COLUMNS                                                                             \
    "id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, msg_key TEXT NOT NULL, "                         \
    "occurred_at TEXT NOT NULL, occurred_ms BIGINT NOT NULL, schema_version BIGINT NOT NULL, "     \
    "traceparent TEXT NOT NULL, payload TEXT NOT NULL, lease_until BIGINT, delivered_ms BIGINT)"
/* The outbox's columns from v5 on: id is no longer UNIQUE (ddl_v5_sqlite). */
#define OUTBOX_V5_COLUMNS                                                                          \
    "id TEXT NOT NULL, type TEXT NOT NULL, msg_key TEXT NOT NULL, "                                \
    "occurred_at TEXT NOT NULL, occurred_ms BIGINT NOT NULL, schema_version BIGINT NOT NULL, "     \
    "traceparent TEXT NOT NULL, payload TEXT NOT NULL, lease_until BIGINT, delivered_ms BIGINT)"
#define OUTBOX_NAMES                                                                               \
    "seq, id, type, msg_key, occurred_at, occurred_ms, schema_version, traceparent, payload, "     \
    "lease_until, delivered_ms"
#define DEAD_COLUMNS                                                                               \
    "message_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, msg_key TEXT NOT NULL, "                 \
    "source TEXT NOT NULL, envelope TEXT NOT NULL, attempts BIGINT NOT NULL, "                     \
    "last_error TEXT NOT NULL, failed_at TEXT NOT NULL)"
#define COMMON_DDL                                                                                 \
    "CREATE INDEX cl_outbox_pending ON cl_outbox (seq) WHERE delivered_ms IS NULL;"                \
    "CREATE INDEX cl_outbox_pending_key ON cl_outbox (msg_key, seq) WHERE delivered_ms IS NULL;"   \
    "CREATE TABLE cl_inbox (message_id TEXT PRIMARY KEY, type TEXT NOT NULL, "                     \
    "source TEXT NOT NULL, handled_at TEXT NOT NULL);"                                             \
    "CREATE TABLE cl_operations (id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, "  \
    "input TEXT NOT NULL, result TEXT, problem_status TEXT, problem_detail TEXT, "                 \
    "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_ms BIGINT NOT NULL);"             \
    "CREATE INDEX cl_operations_open ON cl_operations (status, created_ms);"

/*
 * v2: operations are leased to the process that runs them (ADR 0034): owner,
 * its host id, expiry on the database's clock, and the fencing epoch raised on every
 * claim, which the runner's final write is conditional on.
 */
static const char ddl_v2[] = "ALTER TABLE cl_operations ADD COLUMN lease_owner TEXT;"
                             "ALTER TABLE cl_operations ADD COLUMN lease_host TEXT;"
                             "ALTER TABLE cl_operations ADD COLUMN lease_until BIGINT;"
                             "ALTER TABLE cl_operations ADD COLUMN lease_epoch BIGINT "
                             "NOT NULL DEFAULT 0;";

/*
 * v3: the relay's claim asks which keys hold a live lease (ADR 0043); only the rows being
 * relayed have one, and this index holds just those, so the question costs no scan and a
 * publish no index entry.
 */
static const char ddl_v3[] = "CREATE INDEX cl_outbox_leased ON cl_outbox (lease_until) "
                             "WHERE delivered_ms IS NULL AND lease_until IS NOT NULL;";

/*
 * v4: the index of pending rows by key served the relay's claim of each key's head (ADR
 * 0012), which ADR 0043 replaced; nothing reads it, and every publish and settle wrote it.
 */
static const char ddl_v4[] = "DROP INDEX IF EXISTS cl_outbox_pending_key;";

/*
 * v5 (ADR 0043, third round): each row an event publishes or handles costs fewer B-trees.
 * The outbox's id loses its unique index: nothing looks a row up by id, ids are made
 * unique by construction (the clock and 80 random bits), and the index was a third of
 * the pages each publishing commit wrote. The inbox becomes a WITHOUT ROWID table keyed
 * by message id, one B-tree instead of a table and its primary-key index. SQLite can do
 * neither in place: both tables are rebuilt, rows kept, and the outbox's AUTOINCREMENT
 * counter carried over, so a seq is never handed out twice even after a purge.
 */
static const char ddl_v5_sqlite[] =
    "CREATE TABLE cl_outbox_v5 (seq INTEGER PRIMARY KEY AUTOINCREMENT, " OUTBOX_V5_COLUMNS ";"
    "INSERT INTO cl_outbox_v5 (" OUTBOX_NAMES ") SELECT " OUTBOX_NAMES " FROM cl_outbox;"
    "DELETE FROM sqlite_sequence WHERE name = 'cl_outbox_v5';"
    "UPDATE sqlite_sequence SET name = 'cl_outbox_v5' WHERE name = 'cl_outbox';"
    "DROP TABLE cl_outbox;"
    "ALTER TABLE cl_outbox_v5 RENAME TO cl_outbox;"
    "CREATE INDEX cl_outbox_pending ON cl_outbox (seq) WHERE delivered_ms IS NULL;"
    "CREATE INDEX cl_outbox_leased ON cl_outbox (lease_until) "
    "WHERE delivered_ms IS NULL AND lease_until IS NOT NULL;"
    "CREATE TABLE cl_inbox_v5 (message_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
    "source TEXT NOT NULL, handled_at TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO cl_inbox_v5 (message_id, type, source, handled_at) "
    "SELECT message_id, type, source, handled_at FROM cl_inbox;"
    "DROP TABLE cl_inbox;"
    "ALTER TABLE cl_inbox_v5 RENAME TO cl_inbox;";
/* PostgreSQL drops the constraint in place; its inbox is a heap and an index either way. */
static const char ddl_v5_postgres[] = "ALTER TABLE cl_outbox DROP CONSTRAINT cl_outbox_id_key;";

/*
 * v6 (ADR 0053): a runner's claim takes the oldest open operation from an index that holds
 * only the open ones (pending or running), in age order, so the claim stops at its first
 * row and sorts nothing. The index by (status, created_ms) could serve each status alone,
 * and the claim, asking for either, sorted them in a temporary B-tree at every claim.
 */
static const char ddl_v6[] = "DROP INDEX IF EXISTS cl_operations_open;"
                             "CREATE INDEX cl_operations_open ON cl_operations (created_ms) "
                             "WHERE status IN ('pending', 'running');";

static const char ddl_v1_sqlite[] =
    "CREATE TABLE cl_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, " OUTBOX_COLUMNS ";"
    "CREATE TABLE cl_dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, " DEAD_COLUMNS
    ";" COMMON_DDL;
static const char ddl_v1_postgres[] =
    "CREATE TABLE cl_outbox (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, " OUTBOX_COLUMNS
    ";"
    "CREATE TABLE cl_dead_letters (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY "
    "KEY, " DEAD_COLUMNS ";" COMMON_DDL;

static cl_status read_version(cl_db_conn *conn, int64_t *version, cl_error *err)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare(conn, schema_version_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    *version = rc == CL_OK && row && !cl_stmt_null(st, 0) ? cl_stmt_i64(st, 0) : 0;
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, err);
    }
    return rc;
}

cl_status cl_bus_schema_apply(cl_db *db, cl_error *err)
{
    return cl__bus_schema_apply_to(db, CL__BUS_SCHEMA_VERSION, err);
}

cl_status cl__bus_schema_apply_to(cl_db *db, int64_t target, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    int64_t version = 0;
    bool row;
    char now[32];
    cl_status rc;

    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc != CL_OK) {
        return rc;
    }
    rc = cl_db_exec(conn, schema_table_sql, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        rc = read_version(conn, &version, err);
    }
    /* Each version once, in order, in this one transaction; a shipped version never changes. */
    for (int64_t v = version + 1; rc == CL_OK && v <= target; v++) {
        bool pg = cl_db_is_postgres(db);
        const char *ddl = v == 6   ? ddl_v6
                          : v == 5 ? (pg ? ddl_v5_postgres : ddl_v5_sqlite)
                          : v == 4 ? ddl_v4
                          : v == 3 ? ddl_v3
                          : v == 2 ? ddl_v2
                          : pg     ? ddl_v1_postgres
                                   : ddl_v1_sqlite;

        rc = cl_db_exec(conn, ddl, err);
        if (rc == CL_OK) {
            cl_now_rfc3339(now);
            rc = cl_db_prepare(conn, schema_record_sql, &st, err);
            if (rc == CL_OK) {
                rc = cl_stmt_bind_i64(st, 1, v, err);
            }
            if (rc == CL_OK) {
                rc = cl_stmt_bind_text(st, 2, now, err);
            }
            if (rc == CL_OK) {
                rc = cl_stmt_step(st, &row, err);
            }
        }
        if (rc != CL_OK) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "bus schema v%lld in %s: %s", (long long)v,
                              cl_db_name(db), err != NULL ? err->message : "failed");
        }
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    }
    cl_db_release(conn);
    return rc;
}

cl_status cl_bus_schema_check(cl_db *db, cl_error *err)
{
    cl_db_conn *conn = NULL;
    int64_t version = 0;
    cl_status rc;

    /*
     * Only reads: a check runs at start-up and from /readyz, possibly as a role that may
     * not change the schema. A missing table reads as "not applied".
     */
    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = read_version(conn, &version, err);
        if (rc == CL_INTERNAL || rc == CL_CONFLICT) {
            rc = CL_OK;
            version = 0;
        }
    }
    cl_db_release(conn);
    if (rc == CL_OK && version != CL__BUS_SCHEMA_VERSION) {
        rc = cl_error_set(err, CL_CONFLICT, NULL,
                          "%s: bus tables at version %lld, this binary needs %d (run migrate)",
                          cl_db_name(db), (long long)version, CL__BUS_SCHEMA_VERSION);
    }
    return rc;
}

static const char count_backlog_sql[] = "SELECT count(*) FROM cl_outbox WHERE delivered_ms IS NULL";
static const char count_dead_sql[] = "SELECT count(*) FROM cl_dead_letters";
/* The condition of the index of open operations (bus schema v6), which the count reads. */
static const char count_open_sql[] =
    "SELECT count(*) FROM cl_operations WHERE status IN ('pending', 'running')";

static cl_status count(cl_db_conn *conn, const char *sql, int64_t *out, cl_error *err)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare(conn, sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    *out = rc == CL_OK && row ? cl_stmt_i64(st, 0) : 0;
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, err);
    }
    return rc;
}

cl_status cl_bus_db_count(cl_db *db, cl_bus_db_counts *out, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_status rc;

    *out = (cl_bus_db_counts){0};
    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = count(conn, count_backlog_sql, &out->outbox_backlog, err);
    }
    if (rc == CL_OK) {
        rc = count(conn, count_dead_sql, &out->dead_letters, err);
    }
    if (rc == CL_OK) {
        rc = count(conn, count_open_sql, &out->operations_open, err);
    }
    cl_db_release(conn);
    return rc;
}

/* --- dead letters ----------------------------------------------------------------- */

CL_TYPE_DEFINE(cl_dead_letter, CL_DEAD_LETTER)
CL_TYPE_DEFINE(cl_dead_letter_list, CL_DEAD_LETTER_LIST)

static const char dlq_list_sql[] =
    "SELECT id, message_id, type, msg_key, source, attempts, last_error, failed_at "
    "FROM cl_dead_letters ORDER BY id LIMIT 1000";
static const char dlq_drop_sql[] = "DELETE FROM cl_dead_letters WHERE id = ? RETURNING id";

cl_status cl_bus_dlq_list(cl_db *db, cl_dead_letter_list *out, cl_error *err)
{
    cl_dead_letter_list list = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, dlq_list_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    while (rc == CL_OK && row) {
        cl_dead_letter *d = CL_LIST_PUSH(list.items);

        if (d == NULL) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
            break;
        }
        d->id = cl_stmt_i64(st, 0);
        d->message_id = cl_strdup(cl_stmt_text(st, 1));
        d->type = cl_strdup(cl_stmt_text(st, 2));
        d->key = cl_strdup(cl_stmt_text(st, 3));
        d->source = cl_strdup(cl_stmt_text(st, 4));
        d->attempts = cl_stmt_i64(st, 5);
        d->last_error = cl_strdup(cl_stmt_text(st, 6));
        d->failed_at = cl_strdup(cl_stmt_text(st, 7));
        if (d->message_id == NULL || d->type == NULL || d->key == NULL || d->source == NULL ||
            d->last_error == NULL || d->failed_at == NULL) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
            break;
        }
        rc = cl_stmt_step(st, &row, err);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *out = list;
    } else {
        cl_schema_free(&cl_dead_letter_list_type, &list);
    }
    return rc;
}

cl_status cl_bus_dlq_drop(cl_db *db, int64_t id, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    bool found = false;
    cl_status rc;

    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, dlq_drop_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 1, id, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    found = rc == CL_OK && row;
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && !found) {
        rc = cl_error_set(err, CL_NOT_FOUND, "id", "no dead letter %lld in %s", (long long)id,
                          cl_db_name(db));
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    }
    cl_db_release(conn);
    return rc;
}
