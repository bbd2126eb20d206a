/*
 * Long-running operations: rows of cl_operations in the module's own database, run by a
 * bounded pool of runner threads per module.
 *
 * pending -> running -> succeeded | failed. A runner claims the oldest pending operation
 * in a transaction (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single writer
 * serialises the claim), runs the kind's work outside any transaction, then records the
 * outcome together with the kind's completion in one transaction, which claims the
 * runner's next operation too when one waits (ADR 0068).
 *
 * Several processes may share the database (ADR 0034): a claim leases the
 * operation to this process (owner, its host id, expiry on the database's clock, and an
 * epoch raised on every claim), a keeper thread renews the process's leases, and the
 * final write is conditional on owner and epoch, so a stale runner's outcome is refused
 * (its transaction, the kind's completion included, rolls back). An operation left
 * running is claimed again once its lease lapsed, or at once by the next process of the
 * same host id (the previous one is dead); work may thus run twice, and must be safe to.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "cleave/log.h"

CL_TYPE_DEFINE(cl_operation, CL_OPERATION)
CL_TYPE_DEFINE(cl_operation_ref, CL_OPERATION_REF)

static const char insert_sql[] =
    "INSERT INTO cl_operations (id, kind, status, input, created_at, updated_at, created_ms) "
    "VALUES (?, ?, 'pending', ?, ?, ?, ?)";
static const char get_sql[] =
    "SELECT id, kind, status, created_at, updated_at, result, problem_status, problem_detail "
    "FROM cl_operations WHERE id = ?";
/*
 * Pending, or running under a lease that lapsed or is this host id's previous process's,
 * oldest first. The first condition is what the index of open operations holds (bus
 * schema v6): the claim reads it in age order and stops at its first match. A runner's
 * look (peek) reads two: whether another runner is wanted too.
 */
#define CLAIM_SQL(now, limit)                                                                      \
    "SELECT id, kind, input, lease_epoch FROM cl_operations "                                      \
    "WHERE status IN ('pending', 'running') AND (status = 'pending' OR lease_until IS NULL "       \
    "OR lease_until < " now " OR (lease_host = ? AND lease_owner <> ?)) "                          \
    "ORDER BY created_ms LIMIT " limit
static const char claim_sql[] = CLAIM_SQL(CL_DB_NOW_MS_SQLITE, "1");
static const char claim_pg_sql[] = CLAIM_SQL(CL_DB_NOW_MS_POSTGRES, "1") " FOR UPDATE SKIP LOCKED";
static const char peek_sql[] = CLAIM_SQL(CL_DB_NOW_MS_SQLITE, "2");
static const char peek_pg_sql[] = CLAIM_SQL(CL_DB_NOW_MS_POSTGRES, "2");
/*
 * The claimed row is the claim's own (SQLite's one writer, PostgreSQL's row lock): its
 * new epoch is the one read plus one, with no RETURNING (a temporary B-tree in SQLite).
 */
#define RUNNING_SQL(now)                                                                           \
    "UPDATE cl_operations SET status = 'running', updated_at = ?, lease_owner = ?, "               \
    "lease_host = ?, lease_epoch = ?, lease_until = " now " + ? WHERE id = ?"
static const char running_sql[] = RUNNING_SQL(CL_DB_NOW_MS_SQLITE);
static const char running_pg_sql[] = RUNNING_SQL(CL_DB_NOW_MS_POSTGRES);
/* The outcome, only while the lease is still the runner's. */
static const char succeeded_sql[] =
    "UPDATE cl_operations SET status = 'succeeded', result = ?, updated_at = ? WHERE id = ? "
    "AND lease_owner = ? AND lease_epoch = ?";
static const char failed_sql[] = "UPDATE cl_operations SET status = 'failed', problem_status = ?, "
                                 "problem_detail = ?, updated_at = ? WHERE id = ? "
                                 "AND lease_owner = ? AND lease_epoch = ?";
/* The first condition repeats the index's, which the index then serves. */
#define RENEW_SQL(now)                                                                             \
    "UPDATE cl_operations SET lease_until = " now " + ? WHERE status IN ('pending', 'running') "   \
    "AND status = 'running' AND lease_owner = ?"
static const char renew_sql[] = RENEW_SQL(CL_DB_NOW_MS_SQLITE);
static const char renew_pg_sql[] = RENEW_SQL(CL_DB_NOW_MS_POSTGRES);

cl_status cl_operation_create(cl_db_conn *conn, const char *module, const char *kind, json_t *input,
                              char id[CL_OPERATION_ID_MAX], cl_error *err)
{
    char hex[33], now[32], newid[CL_OPERATION_ID_MAX];
    char *text;
    cl_stmt *st;
    cl_status rc;

    if (conn == NULL || module == NULL || kind == NULL || strlen(module) >= CL__BUS_NAME) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_operation_create: bad argument");
    }
    /* No input is an empty object, made here and freed here. */
    text = input != NULL ? json_dumps(input, JSON_COMPACT) : cl_strdup("{}");
    if (text == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    /* In time order: the operations' unique index grows at its right edge. */
    cl_time_ordered_hex(hex);
    snprintf(newid, sizeof(newid), "%s-%s", module, hex);
    cl_now_rfc3339(now);
    rc = cl_db_prepare(conn, insert_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, newid, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 2, kind, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, text, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 4, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 5, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 6, cl_wall_ms(), err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, err);
    }
    free(text);
    if (rc == CL_OK) {
        memcpy(id, newid, sizeof(newid));
        /* Runners look once the operation is there to see: after the caller's commit. */
        cl_db_after_commit(conn, cl__bus_kick_operations);
    }
    return rc;
}

static char *dup_col(cl_stmt *st, int col)
{
    return cl_strdup(cl_stmt_text(st, col));
}

cl_status cl_operation_get(cl_db_conn *conn, const char *id, cl_operation *out, cl_error *err)
{
    cl_operation op = {0};
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare(conn, get_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, id, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && !row) {
        return cl_error_set(err, CL_NOT_FOUND, "id", "operation %s does not exist", id);
    }
    if (rc == CL_OK) {
        op.id = dup_col(st, 0);
        op.kind = dup_col(st, 1);
        op.status = dup_col(st, 2);
        op.created_at = dup_col(st, 3);
        op.updated_at = dup_col(st, 4);
        op.result = dup_col(st, 5);
        op.problem_status = dup_col(st, 6);
        op.problem_detail = dup_col(st, 7);
        if (op.id == NULL || op.kind == NULL || op.status == NULL || op.created_at == NULL ||
            op.updated_at == NULL) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        }
        (void)cl_stmt_drain(st, NULL, err);
    }
    if (rc == CL_OK) {
        *out = op;
    } else {
        cl_schema_free(&cl_operation_type, &op);
    }
    return rc;
}

/*
 * How many operations are there to claim, none, one or more (2), looked for outside a
 * transaction: a runner with nothing to run writes nothing (on SQLite a transaction begins
 * with the write lock, which every writer of the module would wait behind: half a write
 * transaction per checkout).
 */
static cl_status peek(cl__module *mod, int *ready, cl_error *err)
{
    bool pg = cl_db_is_postgres(mod->db);
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    *ready = 0;
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin_read(conn, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, pg ? peek_pg_sql : peek_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, err, "ss", mod->bus->op_host, mod->bus->op_owner);
    }
    while (rc == CL_OK && (rc = cl_stmt_step(st, &row, err)) == CL_OK && row) {
        (*ready)++;
    }
    cl_db_end_read(conn);
    cl_db_release(conn);
    return rc;
}

/* An operation a runner of this process claimed, under the lease of epoch. */
typedef struct claimed {
    char id[CL_OPERATION_ID_MAX];
    char kind[128];
    json_t *input;
    int64_t epoch;
} claimed;

/*
 * Claims the oldest claimable operation under a new lease, in the transaction open on
 * conn: *found false when there is none.
 */
static cl_status claim_on(cl__module *mod, cl_db_conn *conn, claimed *c, bool *found, cl_error *err)
{
    cl_bus *bus = mod->bus;
    bool pg = cl_db_is_postgres(mod->db);
    cl_stmt *st;
    bool row = false;
    char now[32];
    cl_status rc;

    *found = false;
    rc = cl_db_prepare(conn, pg ? claim_pg_sql : claim_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, err, "ss", bus->op_host, bus->op_owner);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && row) {
        json_error_t jerr;
        cl_strlcpy(c->id, cl_stmt_text(st, 0), sizeof(c->id));
        cl_strlcpy(c->kind, cl_stmt_text(st, 1), sizeof(c->kind));
        c->input = json_loads(cl_stmt_text(st, 2), 0, &jerr);
        if (c->input == NULL) {
            c->input = json_object();
        }
        c->epoch = cl_stmt_i64(st, 3) + 1;
        *found = true;
        rc = cl_stmt_drain(st, NULL, err);
    }
    if (rc == CL_OK && *found) {
        int changed = 0;

        cl_now_rfc3339(now);
        rc = cl_db_prepare(conn, pg ? running_pg_sql : running_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_all(st, err, "sssiis", now, bus->op_owner, bus->op_host, c->epoch,
                                  bus->op_lease_ms, c->id);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_run(st, &changed, err);
        }
        if (rc == CL_OK && changed != 1) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "operation %s vanished", c->id);
        }
    }
    if (rc != CL_OK && *found) {
        json_decref(c->input);
        c->input = NULL;
        *found = false;
    }
    return rc;
}

/* claim_on in a transaction of its own. */
static cl_status claim(cl__module *mod, claimed *c, bool *found, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_status rc;

    *found = false;
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        rc = claim_on(mod, conn, c, found, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    }
    cl_db_release(conn);
    if (rc != CL_OK && *found) {
        json_decref(c->input);
        c->input = NULL;
        *found = false;
    }
    return rc;
}

/* Binds the operation and the lease it is written under from parameter at on. */
static cl_status bind_fence(cl_stmt *st, int at, const char *id, const char *owner, int64_t epoch,
                            cl_error *err)
{
    cl_status rc = cl_stmt_bind_text(st, at, id, err);

    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, at + 1, owner, err);
    }
    return rc == CL_OK ? cl_stmt_bind_i64(st, at + 2, epoch, err) : rc;
}

/*
 * Records the outcome of c (with the kind's completion on success) in one transaction,
 * only while the lease of c->epoch is still this process's: CL_CONFLICT on "lease"
 * otherwise, and nothing is written. With next, the same transaction claims the operation
 * the runner runs next (*chained): under a backlog, a runner's claims cost no transaction
 * and no look of their own (ADR 0068). A claim that fails is not made, the outcome still is.
 */
static cl_status finish(cl__module *mod, const cl_operation_kind *k, const claimed *c,
                        json_t *result, const cl_error *failure, claimed *next, bool *chained,
                        cl_error *err)
{
    int rows = 0;
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    char now[32];
    char *text = NULL;
    cl_status rc;

    *chained = false;
    cl_now_rfc3339(now);
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK && failure == NULL && k != NULL && k->complete != NULL) {
        rc = k->complete(k->arg, conn, c->id, c->input, result, err);
        if (rc != CL_OK) {
            /* The completion failed: the operation fails with its reason, nothing else. */
            cl_error why = *err;
            why.status = rc;
            cl_db_release(conn);
            return finish(mod, NULL, c, NULL, &why, next, chained, err);
        }
    }
    if (rc == CL_OK && failure == NULL) {
        text = json_dumps(result != NULL ? result : json_object(), JSON_COMPACT);
        rc = cl_db_prepare(conn, succeeded_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 1, text != NULL ? text : "{}", err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 2, now, err);
        }
        if (rc == CL_OK) {
            rc = bind_fence(st, 3, c->id, mod->bus->op_owner, c->epoch, err);
        }
    } else if (rc == CL_OK) {
        rc = cl_db_prepare(conn, failed_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 1, cl_status_name(failure->status), err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 2, failure->message, err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 3, now, err);
        }
        if (rc == CL_OK) {
            rc = bind_fence(st, 4, c->id, mod->bus->op_owner, c->epoch, err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_run(st, &rows, err);
    }
    if (rc == CL_OK && rows == 0) {
        rc = cl_error_set(err, CL_CONFLICT, "lease",
                          "operation %s: its lease went to another process (epoch %lld was ours)",
                          c->id, (long long)c->epoch);
    }
    free(text);
    if (rc == CL_OK && next != NULL && !cl__bus_stopping(mod->bus)) {
        cl_error cerr = {0};

        if (claim_on(mod, conn, next, chained, &cerr) != CL_OK) {
            /* Rolled back (PostgreSQL aborts it on any error): the outcome again, no claim. */
            cl_db_release(conn);
            return finish(mod, k, c, result, failure, NULL, chained, err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    }
    if (rc == CL_OK) {
        atomic_fetch_add(&mod->bus->operations_finished, 1);
    }
    cl_db_release(conn);
    if (rc != CL_OK && *chained) {
        json_decref(next->input);
        next->input = NULL;
        *chained = false;
    }
    return rc;
}

/*
 * Runs c and records its outcome, claiming the next operation to run into *next when
 * there is one (*chained). Frees c's input.
 */
static void run(cl__module *mod, claimed *c, claimed *next, bool *chained)
{
    const cl_operation_kind *k = NULL;
    json_t *result = NULL;
    cl_error err = {0};
    cl_error werr = {0};
    cl_status rc;

    *chained = false;
    for (int i = 0; i < mod->nkinds; i++) {
        if (strcmp(mod->kinds[i]->kind, c->kind) == 0) {
            k = mod->kinds[i];
        }
    }
    if (k == NULL) {
        rc = cl_error_set(&werr, CL_INTERNAL, NULL, "no runner for operation kind %s", c->kind);
    } else {
        rc = k->work(k->arg, c->id, c->input, &result, &werr);
        werr.status = rc;
    }
    if (rc == CL_OK || !cl__bus_stopping(mod->bus)) {
        rc = finish(mod, k, c, result, rc == CL_OK ? NULL : &werr, next, chained, &err);
        if (rc != CL_OK) {
            /* Left running: claimed again once its lease lapses (or was taken over). */
            cl_log_error("bus", "%s: cannot record operation %s: %s", mod->name, c->id,
                         err.message);
        }
    }
    json_decref(result);
    json_decref(c->input);
    c->input = NULL;
}

void *cl__operation_runner(void *arg)
{
    cl__module *mod = arg;
    cl_bus *bus = mod->bus;
    uint64_t seen = 0;
    claimed ops[2];
    int cur = 0;

    cl_thread_background(mod->name, "runner");
    while (!cl__bus_stopping(bus)) {
        cl_error err = {0};
        bool found = false;
        int ready = 0;
        cl_status rc;

        /*
         * Looks, then waits for the next operation of this process (one runner is woken for
         * it), or for poll_ms (another process's, a lease that lapsed). A runner that sees
         * two wakes another for the second. One that finished an operation claimed the next
         * in the same transaction, and runs it at once; one that found none there looks
         * again at once only if woken meanwhile.
         */
        rc = peek(mod, &ready, &err);
        if (rc == CL_OK && ready > 1) {
            cl__bus_kick_operations(mod->db);
        }
        if (rc == CL_OK && ready > 0) {
            rc = claim(mod, &ops[cur], &found, &err);
        }
        while (rc == CL_OK && found) {
            run(mod, &ops[cur], &ops[1 - cur], &found);
            cur = 1 - cur;
        }
        (void)cl__bus_idle_for(bus, CL__BUS_OPERATIONS, mod->db, &seen, bus->poll_ms);
    }
    return NULL;
}

void *cl__operation_keeper(void *arg)
{
    cl__module *mod = arg;
    cl_bus *bus = mod->bus;
    uint64_t seen = 0;
    int64_t last = 0;

    cl_thread_background(mod->name, "keeper");
    while (!cl__bus_stopping(bus)) {
        if (cl_now_ms() - last >= bus->op_renew_ms) {
            cl_db_conn *conn = NULL;
            cl_stmt *st;
            cl_error err = {0};
            cl_status rc;

            /* One statement renews every operation this process runs in the module. */
            rc = cl_db_acquire(mod->db, NULL, &conn, &err);
            if (rc == CL_OK) {
                rc = cl_db_prepare(conn, cl_db_is_postgres(mod->db) ? renew_pg_sql : renew_sql, &st,
                                   &err);
            }
            if (rc == CL_OK) {
                rc = cl_stmt_bind_all(st, &err, "is", bus->op_lease_ms, bus->op_owner);
            }
            if (rc == CL_OK) {
                rc = cl_stmt_drain(st, NULL, &err);
            }
            cl_db_release(conn);
            if (rc == CL_OK) {
                last = cl_now_ms();
            } else {
                cl_log_warn("bus", "%s: cannot renew the operations' leases: %s", mod->name,
                            err.message);
            }
        }
        /*
         * Not woken by new operations: the runners take those, and the renewal is due by
         * time alone (every operation created used to cost this thread a wake-up).
         */
        (void)cl__bus_idle_for(bus, CL__BUS_TIMER, NULL, &seen, bus->op_renew_ms);
    }
    return NULL;
}
