/*
 * The generic database layer: a connection pool and a per-connection statement cache
 * over a cl_db_driver. Nothing here knows which database is behind the driver, so that
 * the PostgreSQL driver plugs in without touching this file.
 */
#include "cleave/db.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/log.h"
#include "cleave/trace.h"
#include "cleave/util.h"

/*
 * A connection keeps at most this many prepared statements. Modules prepare a few dozen
 * distinct literals at most; the bound only protects against a caller that builds SQL
 * at run time and would otherwise grow the cache without limit.
 */
#define CL__DB_STMT_CACHE         64
#define CL__DB_TX_ENDED           4 /* distinct cl_db_after_commit callbacks per transaction */
/* More connections than this to one embedded or remote database is a configuration error. */
#define CL__DB_MAX_CONNS          256
#define CL__DB_DEFAULT_CONNS      4
#define CL__DB_DEFAULT_ACQUIRE_MS 2000
#define CL__DB_DEFAULT_IDLE_CHECK 1000
#define CL__DB_DEFAULT_MAX_IDLE   60000
#define CL__DB_DEFAULT_READ_AFTER 1000
/* A replica that failed is left alone this long before reads try it again. */
#define CL__DB_REPLICA_BACKOFF_MS 3000
/* Reads wait at most this long for a busy replica before taking the primary instead. */
#define CL__DB_REPLICA_ACQUIRE_MS 250

typedef struct conn_core conn_core;

struct cl_stmt {
    cl_db_conn *conn;
    conn_core *core; /* the driver connection it belongs to: usable while conn runs on it */
    const char *sql; /* the cache key: the caller's literal, compared by address */
    void *drv_stmt;
    uint64_t last_used;
    /*
     * It said it has no more rows: until it is prepared again, a step says so again and runs
     * nothing (SQLite's own would run it again from the start: an INSERT twice).
     */
    bool done;
};

/* A driver connection and its statement cache. */
struct conn_core {
    void *drv_conn;
    uint64_t tick;     /* LRU clock for the statement cache */
    uint64_t released; /* tick when it was last rewound: statements used later are not yet */
    int nstmts;
    cl_stmt stmts[CL__DB_STMT_CACHE];
};

struct cl_db_conn {
    cl_db *db;
    /* What statements run on: own, or the pool's writer during a transaction (one_writer). */
    conn_core *core;
    conn_core own;
    bool in_tx;
    bool reading; /* in a read section (cl_db_begin_read) */
    bool lost;    /* its transaction state is unknown: closed at release, not reused */
    int nended;
    void (*ended[CL__DB_TX_ENDED])(cl_db *); /* cl_db_after_commit's, run when in_tx ends */
    bool suspect;       /* a sibling was found broken: ping this one before use */
    int64_t idle_since; /* cl_now_ms() when it was last released */
    /* From acquire to release: the statements of one borrower (cleave/trace.h). */
    cl_span span;
};

struct cl_db {
    const cl_db_driver *drv;
    char name[64];
    char *target;
    int max_conns;
    int min_conns;
    int64_t acquire_timeout_ms;
    int64_t idle_check_ms;
    int64_t max_idle_ms;
    int64_t read_after_write_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a connection is released or a slot frees up */
    cl_db_conn **all;  /* every open connection, max_conns slots */
    int nall;
    cl_db_conn **idle; /* a stack, so that the warmest connection is reused first */
    int nidle;
    int nconnecting; /* slots reserved by acquirers that are connecting unlocked */
    cl_db_stats stats;

    /* Read replica (ADR 0011). Guarded by mu of the primary. */
    cl_db *replica;
    cl_db *primary;             /* set on a replica pool: the pool it serves reads for */
    int64_t replica_down_until; /* cl_now_ms() before which reads skip the replica */
    int64_t last_commit_ms;     /* the last commit of this process on this pool */

    /*
     * A driver with one_writer (SQLite): every transaction begun with cl_db_begin runs on
     * this connection of the pool's own, one at a time (writer_mu, error-checking), made at
     * the first. Its page cache stays valid from one transaction to the next; a commit on
     * any other connection would have made SQLite drop it (issue #16: a hundred page reads
     * per checkout, about half of them by writers re-reading what they had just written).
     */
    bool one_writer;
    pthread_mutex_t writer_mu;
    conn_core *writer;
};

/*
 * A driver's message (SQLite's or PostgreSQL's text, with table, column and constraint
 * names, sometimes values) is for the operator, never for a client: it goes to the log,
 * with the request id bound to this thread, and err keeps only a generic message for
 * the status. Every failure a driver reports passes through here. A conflict is an answer
 * the caller expects and handles (a unique key taken, an event stream moved on: the
 * idempotent seed, the ledger's optimistic appends), not a fault: it is logged at debug
 * level, where the operator who wants to know which constraint turns it on; every other
 * failure is an error.
 */
static cl_status driver_failed(const cl_db *db, const char *what, cl_status st, cl_error *err)
{
    const char *generic;

    switch (st) {
    case CL_CONFLICT:
        generic = "the request conflicts with data already stored";
        break;
    case CL_UNAVAILABLE:
        generic = "the database is unavailable";
        break;
    case CL_DEADLINE_EXCEEDED:
        generic = "the database did not answer in time";
        break;
    default:
        generic = "the database failed to carry out the request";
        break;
    }
    cl_log_with(st == CL_CONFLICT ? CL_LOG_DEBUG : CL_LOG_ERROR, "db",
                json_pack("{s:s,s:s,s:s,s:s}", "db", db->name, "driver", db->drv->name, "status",
                          cl_status_name(st), "driver_message", err != NULL ? err->message : ""),
                "%s: %s failed", db->name, what);
    return cl_error_set(err, st, NULL, "%s", generic);
}

static void core_close(const cl_db_driver *drv, conn_core *core)
{
    for (int i = 0; i < core->nstmts; i++) {
        drv->finalize(core->stmts[i].drv_stmt);
    }
    drv->disconnect(core->drv_conn);
}

static void conn_destroy(cl_db_conn *c)
{
    if (c == NULL) {
        return;
    }
    core_close(c->db->drv, &c->own);
    free(c);
}

/* Rewinds the statements of core used since it was last rewound. */
static void core_rewind(const cl_db_driver *drv, conn_core *core)
{
    cl_error e;

    for (int i = 0; i < core->nstmts; i++) {
        if (core->stmts[i].last_used > core->released) {
            (void)drv->reset(core->stmts[i].drv_stmt, &e);
        }
    }
    core->released = core->tick;
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
    c->core = &c->own;
    st = db->drv->connect(db->target, &c->own.drv_conn, err);
    if (st != CL_OK) {
        free(c);
        return driver_failed(db, "connect", st, err);
    }
    *out = c;
    return CL_OK;
}

static bool conn_broken(const cl_db_conn *c)
{
    const cl_db_driver *drv = c->db->drv;

    return drv->version >= 2 && drv->broken(c->own.drv_conn);
}

static cl_status check_options(const cl_db_options *opt, cl_error *err)
{
    if (opt == NULL) {
        return CL_OK;
    }
    if (opt->max_conns < 0 || opt->max_conns > CL__DB_MAX_CONNS) {
        return cl_error_set(err, CL_INVALID, "max_conns", "max_conns must be 0..%d",
                            CL__DB_MAX_CONNS);
    }
    if (opt->min_conns < 0 || opt->min_conns > CL__DB_MAX_CONNS) {
        return cl_error_set(err, CL_INVALID, "min_conns", "min_conns must be 0..%d",
                            CL__DB_MAX_CONNS);
    }
    if (opt->acquire_timeout_ms < 0) {
        return cl_error_set(err, CL_INVALID, "acquire_timeout_ms",
                            "acquire_timeout_ms must not be negative");
    }
    if (opt->idle_check_ms < 0 || opt->max_idle_ms < 0) {
        return cl_error_set(err, CL_INVALID, "idle_check_ms",
                            "idle_check_ms and max_idle_ms must not be negative");
    }
    return CL_OK;
}

static void pool_free(cl_db *db, bool mu_ok, bool cv_ok)
{
    if (db == NULL) {
        return;
    }
    if (cv_ok) {
        pthread_cond_destroy(&db->cv);
    }
    if (mu_ok) {
        pthread_mutex_destroy(&db->mu);
        pthread_mutex_destroy(&db->writer_mu);
    }
    free(db->idle);
    free(db->all);
    free(db->target);
    free(db);
}

/* A pool with no connection yet (the replica's), or with min_conns of them (connect). */
static cl_status pool_new(const cl_db_driver *drv, const char *name, const char *target,
                          const cl_db_options *opt, bool connect, cl_db **out, cl_error *err)
{
    cl_db *db = NULL;
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
    st = check_options(opt, err);
    if (st != CL_OK) {
        return st;
    }

    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    db->drv = drv;
    cl_strlcpy(db->name, name, sizeof(db->name));
    db->max_conns = CL__DB_DEFAULT_CONNS;
    db->min_conns = 1;
    db->acquire_timeout_ms = CL__DB_DEFAULT_ACQUIRE_MS;
    db->idle_check_ms = CL__DB_DEFAULT_IDLE_CHECK;
    db->max_idle_ms = CL__DB_DEFAULT_MAX_IDLE;
    db->read_after_write_ms = CL__DB_DEFAULT_READ_AFTER;
    if (opt != NULL) {
        db->max_conns = opt->max_conns > 0 ? opt->max_conns : db->max_conns;
        db->min_conns = opt->min_conns > 0 ? opt->min_conns : db->min_conns;
        db->acquire_timeout_ms =
            opt->acquire_timeout_ms > 0 ? opt->acquire_timeout_ms : db->acquire_timeout_ms;
        db->idle_check_ms = opt->idle_check_ms > 0 ? opt->idle_check_ms : db->idle_check_ms;
        db->max_idle_ms = opt->max_idle_ms > 0 ? opt->max_idle_ms : db->max_idle_ms;
        db->read_after_write_ms =
            opt->read_after_write_ms != 0 ? opt->read_after_write_ms : db->read_after_write_ms;
    }
    if (db->min_conns > db->max_conns) {
        st = cl_error_set(err, CL_INVALID, "min_conns", "min_conns (%d) exceeds max_conns (%d)",
                          db->min_conns, db->max_conns);
        goto out;
    }
    db->stats.min = db->min_conns;
    db->stats.max = db->max_conns;
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
    if (cl_mutex_init_errorcheck(&db->writer_mu) != 0) {
        pthread_mutex_destroy(&db->mu);
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot create the pool's writer mutex");
        goto out;
    }
    mu_ok = true;
    db->one_writer = drv->version >= 3 && drv->one_writer;
    /*
     * Waits are measured on the monotonic clock (the one cl_now_ms and ctx deadlines use),
     * so that a wall clock step cannot stretch or cut short an acquire.
     */
    if (cl_cond_init_monotonic(&db->cv) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "cannot create the pool condition");
        goto out;
    }
    cv_ok = true;

    /* Connecting now turns a bad target into an error at startup, not at first use. */
    for (int i = 0; connect && i < db->min_conns; i++) {
        cl_db_conn *c = NULL;

        st = conn_create(db, &c, err);
        if (st != CL_OK || c == NULL) {
            for (int j = 0; j < db->nall; j++) {
                conn_destroy(db->all[j]);
            }
            goto out;
        }
        c->idle_since = cl_now_ms();
        db->all[db->nall++] = c;
        db->idle[db->nidle++] = c;
        db->stats.connects++;
    }
    *out = db;
    db = NULL;
    st = CL_OK;
out:
    pool_free(db, mu_ok, cv_ok);
    return st;
}

cl_status cl_db_open(const cl_db_driver *drv, const char *name, const char *target,
                     const cl_db_options *opt, cl_db **out, cl_error *err)
{
    return pool_new(drv, name, target, opt, true, out, err);
}

void cl_db_close(cl_db *db)
{
    if (db == NULL) {
        return;
    }
    cl_db_close(db->replica);
    for (int i = 0; i < db->nall; i++) {
        conn_destroy(db->all[i]);
    }
    if (db->writer != NULL) {
        core_close(db->drv, db->writer);
        free(db->writer);
    }
    pool_free(db, true, true);
}

const char *cl_db_name(const cl_db *db)
{
    return db != NULL ? db->name : NULL;
}

const cl_db_driver *cl_db_driver_of(const cl_db *db)
{
    return db != NULL ? db->drv : NULL;
}

bool cl_db_is_postgres(const cl_db *db)
{
    return db != NULL && db->drv->dialect != NULL && strcmp(db->drv->dialect, "postgres") == 0;
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

/*
 * A connection was found broken: the server probably restarted, so every idle sibling
 * is checked before its next use instead of failing one request each. With db->mu held.
 */
static void pool_suspect_all(cl_db *db)
{
    for (int i = 0; i < db->nidle; i++) {
        db->idle[i]->suspect = true;
    }
}

/* Marks the replica of a primary as down for a while (db is the replica pool). */
static void replica_failed(cl_db *replica)
{
    cl_db *primary = replica->primary;

    if (primary == NULL) {
        return;
    }
    pthread_mutex_lock(&primary->mu);
    primary->replica_down_until = cl_now_ms() + CL__DB_REPLICA_BACKOFF_MS;
    pthread_mutex_unlock(&primary->mu);
}

cl_status cl_db_acquire(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err)
{
    cl_db_conn *c = NULL;
    int64_t now;
    int64_t end;
    bool ctx_ends_first = false;
    bool waited = false;
    bool dropped_any = false;
    bool connect_failed = false;
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
            cl_error perr;
            bool alive;

            c = db->idle[--db->nidle];
            now = cl_now_ms();
            if (!c->suspect && now - c->idle_since < db->idle_check_ms) {
                break;
            }
            /*
             * Idle long enough for the server (or a firewall) to have dropped it: one
             * round trip now is cheaper than a failed request. Unlocked, as connecting.
             */
            db->stats.pings++;
            pthread_mutex_unlock(&db->mu);
            alive = db->drv->ping(c->own.drv_conn, &perr) == CL_OK && !conn_broken(c);
            pthread_mutex_lock(&db->mu);
            if (alive) {
                c->suspect = false;
                break;
            }
            pool_forget(db, c);
            pool_suspect_all(db);
            db->stats.dropped++;
            dropped_any = true;
            pthread_mutex_unlock(&db->mu);
            conn_destroy(c);
            pthread_mutex_lock(&db->mu);
            c = NULL;
            continue;
        }
        if (db->nall + db->nconnecting < db->max_conns) {
            /* Connecting can be slow (a network round trip): reserve a slot, then unlock. */
            db->nconnecting++;
            pthread_mutex_unlock(&db->mu);
            st = conn_create(db, &c, err);
            pthread_mutex_lock(&db->mu);
            db->nconnecting--;
            if (st != CL_OK) {
                db->stats.connect_failures++;
                db->stats.timeouts++;
                connect_failed = true;
                /* The slot is free again; a waiter may try its own luck. */
                pthread_cond_signal(&db->cv);
                c = NULL;
                break;
            }
            db->stats.connects++;
            db->all[db->nall++] = c;
            break;
        }
        if (cl_now_ms() >= end) {
            db->stats.timeouts++;
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
        if (!waited) {
            waited = true;
            db->stats.waits++;
        }
        ts = cl_deadline_at(end);
        /* ETIMEDOUT and spurious wakeups both land in the checks above. */
        (void)pthread_cond_timedwait(&db->cv, &db->mu, &ts);
    }
    if (st == CL_OK) {
        db->stats.acquires++;
    }
    pthread_mutex_unlock(&db->mu);

    if (dropped_any) {
        cl_log_warn("db", "%s: dropped a dead database connection", db->name);
    }
    /* A replica that cannot be reached is skipped for a while (cl_db_acquire_read). */
    if (connect_failed) {
        replica_failed(db);
    }
    if (st == CL_OK) {
        /* One span per borrowing, named by the database: statements carry parameters. */
        cl_span_start_detached(&c->span, ctx, CL_SPAN_CLIENT, db->name);
        cl_span_set_str(&c->span, "db.system", db->drv->name);
        cl_span_set_str(&c->span, "db.namespace", db->name);
        *out = c;
    }
    return st;
}

/* Takes an idle connection beyond min_conns unused for max_idle_ms, or NULL. With mu held. */
static cl_db_conn *pool_reap_one(cl_db *db, int64_t now)
{
    cl_db_conn *c;

    /* The bottom of the stack is the coldest connection. */
    if (db->nidle == 0 || db->nall <= db->min_conns ||
        now - db->idle[0]->idle_since < db->max_idle_ms) {
        return NULL;
    }
    c = db->idle[0];
    memmove(&db->idle[0], &db->idle[1], (size_t)(db->nidle - 1) * sizeof(db->idle[0]));
    db->nidle--;
    pool_forget(db, c);
    db->stats.idle_closed++;
    return c;
}

/* Runs, once each, what cl_db_after_commit asked of the transaction that just ended. */
static void tx_ended(cl_db_conn *conn)
{
    int n = conn->nended;

    conn->nended = 0;
    for (int i = 0; i < n; i++) {
        conn->ended[i](conn->db);
    }
}

cl_db *cl_db_of(cl_db_conn *conn)
{
    return conn != NULL ? conn->db : NULL;
}

void cl_db_after_commit(cl_db_conn *conn, void (*fn)(cl_db *db))
{
    if (conn == NULL || fn == NULL) {
        return;
    }
    if (!conn->in_tx) {
        fn(conn->db);
        return;
    }
    for (int i = 0; i < conn->nended; i++) {
        if (conn->ended[i] == fn) {
            return;
        }
    }
    if (conn->nended == CL__DB_TX_ENDED) {
        fn(conn->db); /* early rather than never: the callbacks only wake someone to look */
        return;
    }
    conn->ended[conn->nended++] = fn;
}

/*
 * With one_writer, moves conn onto the pool's writer for the transaction it begins,
 * waiting for the one before to end (at most the acquire timeout). The writer connects
 * at the first transaction.
 */
static cl_status writer_take(cl_db_conn *conn, cl_error *err)
{
    cl_db *db = conn->db;
    conn_core *w;
    cl_status st;
    int rc;

    if (!db->one_writer) {
        return CL_OK;
    }
    rc = cl_mutex_lock_within(&db->writer_mu, db->acquire_timeout_ms);
    if (rc == EDEADLK) {
        return cl_error_set(err, CL_INTERNAL, NULL,
                            "this thread already has a transaction open on %s", db->name);
    }
    if (rc != 0) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL,
                            "no transaction on %s could begin within %lld ms: another one "
                            "is still open",
                            db->name, (long long)db->acquire_timeout_ms);
    }
    if (db->writer == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL) {
            pthread_mutex_unlock(&db->writer_mu);
            return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        }
        st = db->drv->connect(db->target, &w->drv_conn, err);
        if (st != CL_OK) {
            free(w);
            pthread_mutex_unlock(&db->writer_mu);
            return driver_failed(db, "connect", st, err);
        }
        db->writer = w;
    }
    conn->core = db->writer;
    return CL_OK;
}

/*
 * Gives the writer back once conn's transaction ended: its statements rewound first, since
 * one left mid-result would keep a read snapshot the next transaction could not write from.
 * A writer whose ROLLBACK failed (ended false: its transaction may still be open) is closed;
 * the next transaction opens another.
 */
static void writer_return(cl_db_conn *conn, bool ended)
{
    cl_db *db = conn->db;

    if (conn->core == &conn->own) {
        return;
    }
    core_rewind(db->drv, conn->core);
    if (!ended) {
        core_close(db->drv, db->writer);
        free(db->writer);
        db->writer = NULL;
    }
    conn->core = &conn->own;
    pthread_mutex_unlock(&db->writer_mu);
}

void cl_db_release(cl_db_conn *conn)
{
    cl_db *db;
    const cl_db_driver *drv;
    cl_db_conn *reaped;
    bool broken = false;
    cl_error e;

    if (conn == NULL) {
        return;
    }
    db = conn->db;
    drv = db->drv;
    cl_span_end(&conn->span);
    cl_db_end_read(conn);
    if (conn->in_tx) {
        conn->in_tx = false;
        /* A connection whose transaction state is unknown must not be handed out again. */
        broken = drv->exec(conn->core->drv_conn, "ROLLBACK", &e) != CL_OK;
        if (conn->core != &conn->own) {
            writer_return(conn, !broken);
            broken = false; /* the writer's state, not this connection's */
        }
    }
    /*
     * A statement left mid-result keeps a read snapshot open (and in SQLite blocks WAL
     * checkpoints), so every cached statement this borrower used is rewound before the next
     * borrower; the others were rewound when their last borrower released them.
     */
    core_rewind(drv, &conn->own);
    tx_ended(conn);
    /* A connection whose server went away is dropped; the next acquire opens a new one. */
    broken = broken || conn->lost || conn_broken(conn);

    pthread_mutex_lock(&db->mu);
    conn->idle_since = cl_now_ms();
    if (broken) {
        pool_forget(db, conn);
        pool_suspect_all(db);
        db->stats.dropped++;
    } else {
        db->idle[db->nidle++] = conn;
    }
    reaped = pool_reap_one(db, conn->idle_since);
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    if (broken) {
        conn_destroy(conn);
        replica_failed(db);
    }
    conn_destroy(reaped);
}

void cl_db_shrink(cl_db *db)
{
    const cl_db_driver *drv = db->drv;

    if (drv->version < 5 || drv->shrink == NULL) {
        return;
    }
    pthread_mutex_lock(&db->mu);
    for (int i = 0; i < db->nidle; i++) {
        drv->shrink(db->idle[i]->own.drv_conn);
    }
    pthread_mutex_unlock(&db->mu);
    if (db->one_writer && pthread_mutex_trylock(&db->writer_mu) == 0) {
        if (db->writer != NULL) {
            drv->shrink(db->writer->drv_conn);
        }
        pthread_mutex_unlock(&db->writer_mu);
    }
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

cl_status cl_db_exec(cl_db_conn *conn, const char *sql, cl_error *err)
{
    cl_status st;

    if (conn == NULL || sql == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_exec: missing argument");
    }
    st = conn->db->drv->exec(conn->core->drv_conn, sql, err);
    return st == CL_OK ? CL_OK : driver_failed(conn->db, "exec", st, err);
}

cl_status cl_db_begin(cl_db_conn *conn, cl_error *err)
{
    cl_status st;

    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_begin: missing argument");
    }
    if (conn->in_tx || conn->reading) {
        return cl_error_set(err, CL_INTERNAL, NULL, "a %s is already open on this connection to %s",
                            conn->in_tx ? "transaction" : "read section", conn->db->name);
    }
    st = writer_take(conn, err);
    if (st != CL_OK) {
        return st;
    }
    /* The driver decides what kind of BEGIN this is (SQLite takes the write lock). */
    st = conn->db->drv->exec(conn->core->drv_conn, "BEGIN", err);
    if (st != CL_OK) {
        writer_return(conn, true);
        return driver_failed(conn->db, "begin", st, err);
    }
    conn->in_tx = true;
    return CL_OK;
}

cl_status cl_db_commit(cl_db_conn *conn, cl_error *err)
{
    const cl_db_driver *drv;
    cl_error ignored;
    bool ended = true;
    cl_status st;

    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_commit: missing argument");
    }
    if (!conn->in_tx) {
        return cl_error_set(err, CL_INTERNAL, NULL, "commit without an open transaction");
    }
    drv = conn->db->drv;
    st = drv->exec(conn->core->drv_conn, "COMMIT", err);
    if (st == CL_OK) {
        /* Reads of this process go to the primary for a while (cl_db_acquire_read). */
        pthread_mutex_lock(&conn->db->mu);
        conn->db->last_commit_ms = cl_now_ms();
        pthread_mutex_unlock(&conn->db->mu);
    } else {
        /*
         * Some failed COMMITs leave the transaction open (SQLite on BUSY), others end it.
         * Rolling back makes the outcome the same for every driver: nothing committed.
         */
        ended = drv->exec(conn->core->drv_conn, "ROLLBACK", &ignored) == CL_OK;
        st = driver_failed(conn->db, "commit", st, err);
    }
    conn->in_tx = false;
    if (conn->core != &conn->own) {
        writer_return(conn, ended);
        if (drv->version >= 3 && drv->upkeep != NULL) {
            drv->upkeep(conn->own.drv_conn);
        }
    }
    tx_ended(conn);
    return st;
}

void cl_db_rollback(cl_db_conn *conn)
{
    cl_error ignored;

    if (conn == NULL || !conn->in_tx) {
        return;
    }
    conn->in_tx = false;
    writer_return(conn, conn->db->drv->exec(conn->core->drv_conn, "ROLLBACK", &ignored) == CL_OK);
    tx_ended(conn);
}

/*
 * With one_writer, a read section runs on the pool's writer when no transaction holds it at
 * this moment: its pages are cached there (a commit of any other connection would have made
 * SQLite drop the reading connection's cache; most reads of the checkout came after one).
 * It never waits for the writer: when a transaction holds it, the section runs on conn's own
 * connection. Either way in one read transaction ("BEGIN READ"), one snapshot.
 */
cl_status cl_db_begin_read(cl_db_conn *conn, cl_error *err)
{
    cl_db *db;
    cl_status st;

    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_begin_read: missing argument");
    }
    db = conn->db;
    if (conn->in_tx || conn->reading) {
        return cl_error_set(err, CL_INTERNAL, NULL, "a %s is already open on this connection to %s",
                            conn->in_tx ? "transaction" : "read section", db->name);
    }
    if (!db->one_writer) {
        conn->reading = true;
        return CL_OK;
    }
    if (pthread_mutex_trylock(&db->writer_mu) == 0) {
        if (db->writer != NULL) {
            conn->core = db->writer;
        } else {
            pthread_mutex_unlock(&db->writer_mu); /* no transaction yet: nothing cached */
        }
    }
    st = db->drv->exec(conn->core->drv_conn, "BEGIN READ", err);
    if (st != CL_OK) {
        writer_return(conn, true);
        return driver_failed(db, "begin", st, err);
    }
    conn->reading = true;
    return CL_OK;
}

void cl_db_end_read(cl_db_conn *conn)
{
    const cl_db_driver *drv;
    cl_error ignored;
    bool ended;

    if (conn == NULL || !conn->reading) {
        return;
    }
    conn->reading = false;
    if (!conn->db->one_writer) {
        return;
    }
    drv = conn->db->drv;
    /* A statement left mid-result would go on reading, in a read transaction of its own. */
    core_rewind(drv, conn->core);
    ended = drv->exec(conn->core->drv_conn, "COMMIT", &ignored) == CL_OK ||
            drv->exec(conn->core->drv_conn, "ROLLBACK", &ignored) == CL_OK;
    if (conn->core != &conn->own) {
        writer_return(conn, ended);
    } else if (!ended) {
        conn->lost = true;
    }
}

cl_status cl_db_prepare(cl_db_conn *conn, const char *sql, cl_stmt **out, cl_error *err)
{
    const cl_db_driver *drv;
    conn_core *core;
    cl_stmt *s = NULL;
    void *drv_stmt = NULL;
    cl_status st;

    if (conn == NULL || sql == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_prepare: missing argument");
    }
    drv = conn->db->drv;
    core = conn->core;
    for (int i = 0; i < core->nstmts; i++) {
        if (core->stmts[i].sql == sql) {
            s = &core->stmts[i];
            break;
        }
    }
    if (s != NULL) {
        st = drv->reset(s->drv_stmt, err);
        if (st != CL_OK) {
            return driver_failed(conn->db, "reset", st, err);
        }
        s->conn = conn; /* the writer's statements serve one borrower after another */
        s->last_used = ++core->tick;
        s->done = false;
        *out = s;
        return CL_OK;
    }

    st = drv->prepare(core->drv_conn, sql, &drv_stmt, err);
    if (st != CL_OK) {
        return driver_failed(conn->db, "prepare", st, err);
    }
    if (core->nstmts < CL__DB_STMT_CACHE) {
        s = &core->stmts[core->nstmts++];
    } else {
        s = &core->stmts[0];
        for (int i = 1; i < core->nstmts; i++) {
            if (core->stmts[i].last_used < s->last_used) {
                s = &core->stmts[i];
            }
        }
        drv->finalize(s->drv_stmt);
    }
    s->conn = conn;
    s->core = core;
    s->sql = sql;
    s->drv_stmt = drv_stmt;
    s->last_used = ++core->tick;
    s->done = false;
    *out = s;
    return CL_OK;
}

/* What a driver's bind call returned, its message kept out of err as driver_failed says. */
static cl_status bind_done(const cl_stmt *st, cl_status rc, cl_error *err)
{
    return rc == CL_OK ? CL_OK : driver_failed(st->conn->db, "bind", rc, err);
}

/*
 * A statement belongs to the driver connection its connection ran on when it was prepared:
 * one prepared before cl_db_begin (or inside the transaction, used after it ended) would
 * run outside the transaction, on another connection, with the pool's writer (one_writer).
 */
static cl_status check_core(const cl_stmt *st, cl_error *err)
{
    if (st->core == st->conn->core) {
        return CL_OK;
    }
    return cl_error_set(err, CL_INTERNAL, NULL,
                        "a statement of %s was prepared outside the transaction or read section "
                        "it is used in",
                        st->conn->db->name);
}

cl_status cl_stmt_bind_i64(cl_stmt *st, int idx, int64_t v, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_i64: missing statement");
    }
    if (check_core(st, err) != CL_OK) {
        return CL_INTERNAL;
    }
    return bind_done(st, st->conn->db->drv->bind_i64(st->drv_stmt, idx, v, err), err);
}

cl_status cl_stmt_bind_text(cl_stmt *st, int idx, const char *s, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_text: missing statement");
    }
    if (check_core(st, err) != CL_OK) {
        return CL_INTERNAL;
    }
    if (s == NULL) {
        return bind_done(st, st->conn->db->drv->bind_null(st->drv_stmt, idx, err), err);
    }
    return bind_done(st, st->conn->db->drv->bind_text(st->drv_stmt, idx, s, err), err);
}

cl_status cl_stmt_bind_null(cl_stmt *st, int idx, cl_error *err)
{
    if (st == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_bind_null: missing statement");
    }
    if (check_core(st, err) != CL_OK) {
        return CL_INTERNAL;
    }
    return bind_done(st, st->conn->db->drv->bind_null(st->drv_stmt, idx, err), err);
}

cl_status cl_stmt_step(cl_stmt *st, bool *row, cl_error *err)
{
    cl_status rc;

    if (st == NULL || row == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_stmt_step: missing argument");
    }
    if (check_core(st, err) != CL_OK) {
        return CL_INTERNAL;
    }
    if (st->done) {
        *row = false;
        return CL_OK;
    }
    rc = st->conn->db->drv->step(st->drv_stmt, row, err);
    if (rc != CL_OK) {
        return driver_failed(st->conn->db, "step", rc, err);
    }
    st->done = !*row;
    return CL_OK;
}

cl_status cl_stmt_drain(cl_stmt *st, int *rows, cl_error *err)
{
    bool row = true;
    int n = 0;
    cl_status rc = CL_OK;

    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, err);
        n += rc == CL_OK && row && n < INT_MAX ? 1 : 0;
    }
    if (rc == CL_OK && rows != NULL) {
        *rows = n;
    }
    return rc;
}

cl_status cl_stmt_run(cl_stmt *st, int *changed, cl_error *err)
{
    const cl_db_driver *drv;
    int rows = 0;
    int64_t n;
    cl_status rc = cl_stmt_drain(st, &rows, err);

    if (rc != CL_OK) {
        return rc;
    }
    drv = st->conn->db->drv;
    if (rows > 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cl_stmt_run: the statement returned rows");
    }
    if (changed != NULL) {
        if (drv->version < 4 || drv->changes == NULL) {
            return cl_error_set(err, CL_INTERNAL, NULL,
                                "database driver %s cannot count the rows a statement changed",
                                drv->name);
        }
        n = drv->changes(st->drv_stmt);
        *changed = n > INT_MAX ? INT_MAX : (int)n;
    }
    return CL_OK;
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
    st = db->drv->ping(c->own.drv_conn, err);
    if (st != CL_OK) {
        st = driver_failed(db, "ping", st, err);
    }
    cl_db_release(c);
    return st;
}

void cl_db_stats_get(cl_db *db, cl_db_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (db == NULL) {
        return;
    }
    pthread_mutex_lock(&db->mu);
    *out = db->stats;
    out->size = db->nall;
    out->idle = db->nidle;
    out->in_use = db->nall - db->nidle;
    pthread_mutex_unlock(&db->mu);
}

cl_status cl_db_attach_replica(cl_db *db, const char *target, const cl_db_options *opt,
                               cl_error *err)
{
    cl_db_options ropt = {0};
    cl_db *replica = NULL;
    char name[64];
    cl_status st;

    if (db == NULL || target == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_attach_replica: missing argument");
    }
    if (db->replica != NULL || db->primary != NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "%s already has a replica", db->name);
    }
    if (opt != NULL) {
        ropt = *opt;
    }
    /* A busy replica is no reason to make a read wait: the primary can serve it. */
    if (ropt.acquire_timeout_ms == 0 || ropt.acquire_timeout_ms > CL__DB_REPLICA_ACQUIRE_MS) {
        ropt.acquire_timeout_ms = CL__DB_REPLICA_ACQUIRE_MS;
    }
    snprintf(name, sizeof(name), "%.48s-replica", db->name);
    st = pool_new(db->drv, name, target, &ropt, false, &replica, err);
    if (st != CL_OK || replica == NULL) {
        return st;
    }
    replica->primary = db;
    pthread_mutex_lock(&db->mu);
    db->replica = replica;
    pthread_mutex_unlock(&db->mu);
    return CL_OK;
}

void cl_db_mark_written(cl_db *db)
{
    if (db == NULL) {
        return;
    }
    pthread_mutex_lock(&db->mu);
    db->last_commit_ms = cl_now_ms();
    pthread_mutex_unlock(&db->mu);
}

cl_db *cl_db_replica(cl_db *db)
{
    return db != NULL ? db->replica : NULL;
}

cl_status cl_db_acquire_read(cl_db *db, const cl_ctx *ctx, cl_db_conn **out, cl_error *err)
{
    cl_error rerr;
    bool use_replica = false;
    int64_t now;
    cl_status st;

    if (db == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_acquire_read: missing argument");
    }
    now = cl_now_ms();
    pthread_mutex_lock(&db->mu);
    if (db->replica != NULL && (ctx == NULL || !ctx->read_primary) &&
        now >= db->replica_down_until) {
        /* The replica may not have replayed this process's last commit yet. */
        use_replica = db->last_commit_ms == 0 || db->read_after_write_ms < 0 ||
                      now - db->last_commit_ms >= db->read_after_write_ms;
    }
    pthread_mutex_unlock(&db->mu);

    if (use_replica) {
        st = cl_db_acquire(db->replica, ctx, out, &rerr);
        if (st == CL_OK) {
            pthread_mutex_lock(&db->mu);
            db->stats.replica_reads++;
            pthread_mutex_unlock(&db->mu);
            return CL_OK;
        }
        if (st == CL_DEADLINE_EXCEEDED) {
            return cl_error_set(err, st, NULL, "%s", rerr.message);
        }
        /* acquire marked it down; the primary serves this read and the next few. */
        cl_log_warn("db", "%s: replica unavailable, reading from the primary: %s", db->name,
                    rerr.message);
    }
    st = cl_db_acquire(db, ctx, out, err);
    if (st == CL_OK && db->replica != NULL) {
        pthread_mutex_lock(&db->mu);
        db->stats.primary_reads++;
        pthread_mutex_unlock(&db->mu);
    }
    return st;
}
