/*
 * The generic database layer: a connection pool and a per-connection statement cache
 * over a cl_db_driver. Nothing here knows which database is behind the driver, so that
 * the PostgreSQL driver plugs in without touching this file.
 */
#include "cleave/db.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * A connection keeps at most this many prepared statements. Modules prepare a few dozen
 * distinct literals at most; the bound only protects against a caller that builds SQL
 * at run time and would otherwise grow the cache without limit.
 */
#define CL__DB_STMT_CACHE         64
/* More connections than this to one embedded or remote database is a configuration error. */
#define CL__DB_MAX_CONNS          256
#define CL__DB_DEFAULT_CONNS      4
#define CL__DB_DEFAULT_ACQUIRE_MS 2000

struct cl_stmt {
    cl_db_conn *conn;
    const char *sql; /* the cache key: the caller's literal, compared by address */
    void *drv_stmt;
    uint64_t last_used;
};

struct cl_db_conn {
    cl_db *db;
    void *drv_conn;
    bool in_tx;
    uint64_t tick; /* LRU clock for the statement cache */
    int nstmts;
    cl_stmt stmts[CL__DB_STMT_CACHE];
};

struct cl_db {
    const cl_db_driver *drv;
    char name[64];
    char *target;
    int max_conns;
    int64_t acquire_timeout_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a connection is released or a slot frees up */
    cl_db_conn **all;  /* every open connection, max_conns slots */
    int nall;
    cl_db_conn **idle; /* a stack, so that the warmest connection is reused first */
    int nidle;
    int nconnecting; /* slots reserved by acquirers that are connecting unlocked */
};

static void conn_destroy(cl_db_conn *c)
{
    const cl_db_driver *drv;

    if (c == NULL) {
        return;
    }
    drv = c->db->drv;
    for (int i = 0; i < c->nstmts; i++) {
        drv->finalize(c->stmts[i].drv_stmt);
    }
    drv->disconnect(c->drv_conn);
    free(c);
}

static cl_status conn_create(cl_db *db, cl_db_conn **out, cl_error *err)
{
    cl_db_conn *c;
    cl_status st;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    c->db = db;
    st = db->drv->connect(db->target, &c->drv_conn, err);
    if (st != CL_OK) {
        free(c);
        return st;
    }
    *out = c;
    return CL_OK;
}

cl_status cl_db_open(const cl_db_driver *drv, const char *name, const char *target,
                     const cl_db_options *opt, cl_db **out, cl_error *err)
{
    cl_db *db = NULL;
    cl_db_conn *first = NULL;
    pthread_condattr_t ca;
    bool mu_ok = false;
    bool cv_ok = false;
    cl_status st;

    if (drv == NULL || name == NULL || target == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_open: missing argument");
    }
    if (drv->version < 1) {
        return cl_error_set(err, CL_INVALID, NULL, "database driver %s has version %d",
                            drv->name != NULL ? drv->name : "?", drv->version);
    }
    if (strlen(name) >= sizeof(db->name)) {
        return cl_error_set(err, CL_INVALID, "name", "database name is too long");
    }
    if (opt != NULL && (opt->max_conns < 0 || opt->max_conns > CL__DB_MAX_CONNS)) {
        return cl_error_set(err, CL_INVALID, "max_conns", "max_conns must be 0..%d",
                            CL__DB_MAX_CONNS);
    }
    if (opt != NULL && opt->acquire_timeout_ms < 0) {
        return cl_error_set(err, CL_INVALID, "acquire_timeout_ms",
                            "acquire_timeout_ms must not be negative");
    }

    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    db->drv = drv;
    cl_strlcpy(db->name, name, sizeof(db->name));
    db->max_conns = CL__DB_DEFAULT_CONNS;
    db->acquire_timeout_ms = CL__DB_DEFAULT_ACQUIRE_MS;
    if (opt != NULL && opt->max_conns > 0) {
        db->max_conns = opt->max_conns;
    }
    if (opt != NULL && opt->acquire_timeout_ms > 0) {
        db->acquire_timeout_ms = opt->acquire_timeout_ms;
    }
    db->target = strdup(target);
    db->all = calloc((size_t)db->max_conns, sizeof(*db->all));
    db->idle = calloc((size_t)db->max_conns, sizeof(*db->idle));
    if (db->target == NULL || db->all == NULL || db->idle == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (pthread_mutex_init(&db->mu, NULL) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot create the pool mutex");
        goto out;
    }
    mu_ok = true;
    /*
     * Waits are measured on the monotonic clock (the one cl_now_ms and ctx deadlines use),
     * so that a wall clock step cannot stretch or cut short an acquire.
     */
    if (pthread_condattr_init(&ca) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot create the pool condition");
        goto out;
    }
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(&db->cv, &ca) == 0) {
        cv_ok = true;
    }
    pthread_condattr_destroy(&ca);
    if (!cv_ok) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot create the pool condition");
        goto out;
    }

    /* Connecting once now turns a bad target into an error at startup, not at first use. */
    st = conn_create(db, &first, err);
    if (st != CL_OK) {
        goto out;
    }
    db->all[db->nall++] = first;
    db->idle[db->nidle++] = first;
    *out = db;
    db = NULL;
    st = CL_OK;
out:
    if (db != NULL) {
        if (cv_ok) {
            pthread_cond_destroy(&db->cv);
        }
        if (mu_ok) {
            pthread_mutex_destroy(&db->mu);
        }
        free(db->idle);
        free(db->all);
        free(db->target);
        free(db);
    }
    return st;
}

void cl_db_close(cl_db *db)
{
    if (db == NULL) {
        return;
    }
    for (int i = 0; i < db->nall; i++) {
        conn_destroy(db->all[i]);
    }
    pthread_cond_destroy(&db->cv);
    pthread_mutex_destroy(&db->mu);
    free(db->idle);
    free(db->all);
    free(db->target);
    free(db);
}

const char *cl_db_name(const cl_db *db)
{
    return db != NULL ? db->name : NULL;
}

const cl_db_driver *cl_db_driver_of(const cl_db *db)
{
    return db != NULL ? db->drv : NULL;
}

/* Removes c from the pool's list of open connections. Called with db->mu held. */
static void pool_forget(cl_db *db, cl_db_conn *c)
{
    for (int i = 0; i < db->nall; i++) {
        if (db->all[i] == c) {
            db->all[i] = db->all[--db->nall];
            return;
        }
    }
}

cl_status cl_db_acquire(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err)
{
    cl_db_conn *c = NULL;
    int64_t now;
    int64_t end;
    bool ctx_ends_first = false;
    struct timespec ts;
    cl_status st = CL_OK;

    if (db == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_acquire: missing argument");
    }
    now = cl_now_ms();
    /* Work whose caller has already given up is not worth a connection. */
    if (ctx != NULL && ctx->deadline_ms != 0 && ctx->deadline_ms <= now) {
        return cl_error_set(err, CL_DEADLINE_EXCEEDED, NULL,
                            "deadline expired before acquiring a connection to %s", db->name);
    }
    end = now + db->acquire_timeout_ms;
    if (ctx != NULL && ctx->deadline_ms != 0 && ctx->deadline_ms < end) {
        end = ctx->deadline_ms;
        ctx_ends_first = true;
    }

    pthread_mutex_lock(&db->mu);
    for (;;) {
        if (db->nidle > 0) {
            c = db->idle[--db->nidle];
            break;
        }
        if (db->nall + db->nconnecting < db->max_conns) {
            /* Connecting can be slow (a network round trip): reserve a slot, then unlock. */
            db->nconnecting++;
            pthread_mutex_unlock(&db->mu);
            st = conn_create(db, &c, err);
            pthread_mutex_lock(&db->mu);
            db->nconnecting--;
            if (st != CL_OK) {
                /* The slot is free again; a waiter may try its own luck. */
                pthread_cond_signal(&db->cv);
                c = NULL;
                break;
            }
            db->all[db->nall++] = c;
            break;
        }
        if (cl_now_ms() >= end) {
            if (ctx_ends_first) {
                st = cl_error_set(err, CL_DEADLINE_EXCEEDED, NULL,
                                  "deadline expired waiting for a connection to %s", db->name);
            } else {
                st = cl_error_set(err, CL_UNAVAILABLE, NULL,
                                  "no connection to %s became free within %lld ms (max %d)",
                                  db->name, (long long)db->acquire_timeout_ms, db->max_conns);
            }
            break;
        }
        ts.tv_sec = (time_t)(end / 1000);
        ts.tv_nsec = (long)(end % 1000) * 1000000L;
        /* ETIMEDOUT and spurious wakeups both land in the checks above. */
        (void)pthread_cond_timedwait(&db->cv, &db->mu, &ts);
    }
    pthread_mutex_unlock(&db->mu);

    if (st == CL_OK) {
        *out = c;
    }
    return st;
}

void cl_db_release(cl_db_conn *conn)
{
    cl_db *db;
    const cl_db_driver *drv;
    bool broken = false;
    cl_error e;

    if (conn == NULL) {
        return;
    }
    db = conn->db;
    drv = db->drv;
    /*
     * A statement left mid-result keeps a read snapshot open (and in SQLite blocks WAL
     * checkpoints), so every cached statement is rewound before the next borrower.
     */
    for (int i = 0; i < conn->nstmts; i++) {
        (void)drv->reset(conn->stmts[i].drv_stmt, &e);
    }
    if (conn->in_tx) {
        conn->in_tx = false;
        /* A connection whose transaction state is unknown must not be handed out again. */
        broken = drv->exec(conn->drv_conn, "ROLLBACK", &e) != CL_OK;
    }

    pthread_mutex_lock(&db->mu);
    if (broken) {
        pool_forget(db, conn);
    } else {
        db->idle[db->nidle++] = conn;
    }
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    if (broken) {
        conn_destroy(conn);
    }
}

cl_status cl_db_exec(cl_db_conn *conn, const char *sql, cl_error *err)
{
    if (conn == NULL || sql == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_exec: missing argument");
    }
    return conn->db->drv->exec(conn->drv_conn, sql, err);
}

cl_status cl_db_begin(cl_db_conn *conn, cl_error *err)
{
    cl_status st;

    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_begin: missing argument");
    }
    if (conn->in_tx) {
        return cl_error_set(err, CL_INTERNAL, NULL,
                            "a transaction is already open on this connection to %s",
                            conn->db->name);
    }
    /* The driver decides what kind of BEGIN this is (SQLite takes the write lock). */
    st = conn->db->drv->exec(conn->drv_conn, "BEGIN", err);
    if (st == CL_OK) {
        conn->in_tx = true;
    }
    return st;
}

cl_status cl_db_commit(cl_db_conn *conn, cl_error *err)
{
    const cl_db_driver *drv;
    cl_error ignored;
    cl_status st;

    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_commit: missing argument");
    }
    if (!conn->in_tx) {
        return cl_error_set(err, CL_INTERNAL, NULL, "commit without an open transaction");
    }
    drv = conn->db->drv;
    st = drv->exec(conn->drv_conn, "COMMIT", err);
    if (st != CL_OK) {
        /*
         * Some failed COMMITs leave the transaction open (SQLite on BUSY), others end it.
         * Rolling back makes the outcome the same for every driver: nothing committed.
         */
        (void)drv->exec(conn->drv_conn, "ROLLBACK", &ignored);
    }
    conn->in_tx = false;
    return st;
}

void cl_db_rollback(cl_db_conn *conn)
{
    cl_error ignored;

    if (conn == NULL || !conn->in_tx) {
        return;
    }
    conn->in_tx = false;
    (void)conn->db->drv->exec(conn->drv_conn, "ROLLBACK", &ignored);
}

cl_status cl_db_prepare(cl_db_conn *conn, const char *sql, cl_stmt **out, cl_error *err)
{
    const cl_db_driver *drv;
    cl_stmt *s = NULL;
    void *drv_stmt = NULL;
    cl_status st;

    if (conn == NULL || sql == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_prepare: missing argument");
    }
    drv = conn->db->drv;
    for (int i = 0; i < conn->nstmts; i++) {
        if (conn->stmts[i].sql == sql) {
            s = &conn->stmts[i];
            break;
        }
    }
    if (s != NULL) {
        st = drv->reset(s->drv_stmt, err);
        if (st != CL_OK) {
            return st;
        }
        s->last_used = ++conn->tick;
        *out = s;
        return CL_OK;
    }

    st = drv->prepare(conn->drv_conn, sql, &drv_stmt, err);
    if (st != CL_OK) {
        return st;
    }
    if (conn->nstmts < CL__DB_STMT_CACHE) {
        s = &conn->stmts[conn->nstmts++];
    } else {
        s = &conn->stmts[0];
        for (int i = 1; i < conn->nstmts; i++) {
            if (conn->stmts[i].last_used < s->last_used) {
                s = &conn->stmts[i];
            }
        }
        drv->finalize(s->drv_stmt);
    }
    s->conn = conn;
    s->sql = sql;
    s->drv_stmt = drv_stmt;
    s->last_used = ++conn->tick;
    *out = s;
    return CL_OK;
}

cl_status cl_stmt_bind_i64(cl_stmt *st, int idx, int64_t v, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_i64: missing statement");
    }
    return st->conn->db->drv->bind_i64(st->drv_stmt, idx, v, err);
}

cl_status cl_stmt_bind_text(cl_stmt *st, int idx, const char *s, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_text: missing statement");
    }
    if (s == NULL) {
        return st->conn->db->drv->bind_null(st->drv_stmt, idx, err);
    }
    return st->conn->db->drv->bind_text(st->drv_stmt, idx, s, err);
}

cl_status cl_stmt_bind_null(cl_stmt *st, int idx, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_null: missing statement");
    }
    return st->conn->db->drv->bind_null(st->drv_stmt, idx, err);
}

cl_status cl_stmt_step(cl_stmt *st, bool *row, cl_error *err)
{
    if (st == NULL || row == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_step: missing argument");
    }
    return st->conn->db->drv->step(st->drv_stmt, row, err);
}

int64_t cl_stmt_i64(cl_stmt *st, int col)
{
    if (st == NULL) {
        return 0;
    }
    return st->conn->db->drv->col_i64(st->drv_stmt, col);
}

const char *cl_stmt_text(cl_stmt *st, int col)
{
    if (st == NULL) {
        return NULL;
    }
    return st->conn->db->drv->col_text(st->drv_stmt, col);
}

bool cl_stmt_null(cl_stmt *st, int col)
{
    if (st == NULL) {
        return true;
    }
    return st->conn->db->drv->col_null(st->drv_stmt, col);
}

cl_status cl_db_ping(cl_db *db, cl_error *err)
{
    cl_db_conn *c = NULL;
    cl_status st;

    st = cl_db_acquire(db, NULL, &c, err);
    if (st != CL_OK || c == NULL) {
        return st;
    }
    st = db->drv->ping(c->drv_conn, err);
    cl_db_release(c);
    return st;
}
