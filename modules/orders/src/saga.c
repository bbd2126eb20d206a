/*
 * The checkout saga's executor (ADR 0014): a bounded pool of worker threads that takes
 * orders from a queue and runs each one's saga to a final state.
 *
 * The order row is the saga's state: its step column names the step to run next and is
 * written, with a saga_log entry, in one transaction after every step. A process that
 * dies anywhere re-runs at most the step it was in, which is safe because every step is
 * idempotent: inventory's reserve, commit and release by order id, payments' authorize
 * by payment id ("pay-<order id>"), capture and void by themselves; each call also
 * carries the idempotency key "<order id>:<step>".
 *
 * Several hosts may share the database (ADR 0034): an executor runs a saga only
 * under a lease it took on the order (owner, expiry on the database's clock, and a fencing
 * epoch raised on every acquisition), renews it while it works, and every write of the
 * saga is conditional on the owner and epoch it holds. A sweeper queues the sagas whose
 * lease lapsed (their host died), so they resume elsewhere without waiting for a restart.
 *
 * Retries: a dependency that is unavailable (or answers too late) is retried with
 * exponential backoff and jitter. Before the pivot (reserve, authorize) for at most
 * CLEAVE_ORDERS_STEP_TIMEOUT_MS, then the saga compensates; from commit on, and for
 * every compensation, until the step succeeds or the process stops.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/log.h"
#include "cleave/metrics.h"
#include "cleave/trace.h"
#include "cleave/retry.h"
#include "cleave/util.h"
#include "internal.h"

#define QUEUE_MAX    10000
#define BACKOFF_BASE 20   /* ms, first retry */
#define BACKOFF_MAX  1000 /* ms, longest wait between two attempts */
#define FOREVER      (-1)

typedef enum step {
    S_RESERVE,
    S_AUTHORIZE,
    S_COMMIT,
    S_CAPTURE,
    S_CONFIRM,
    S_VOID,
    S_RELEASE,
    S_REJECT,
    S_DONE,
    S_COUNT
} step;

static const char *const step_names[S_COUNT] = {
    "reserve", "authorize", "commit", "capture", "confirm", "void", "release", "reject", "done",
};

/* One order's saga as a worker runs it. */
typedef struct saga {
    struct orders_self *self; /* the instance whose executor runs it */
    orders_order o;           /* as loaded (no history), or as placed (history: "place") */
    orders__fence fence;      /* the lease it runs under */
    int64_t renewed_ms;       /* when the lease was last renewed (cl_now_ms) */
    step next;
    char reason[48];
    char pay_id[ORDERS__ID_SIZE + 8];
    char got[24];          /* status of the last successful call's resource */
    char detail[400];      /* of the last failed call */
    int64_t step_start_ns; /* when run_step began the current step (metrics) */
    /*
     * Steps that succeeded and are not recorded yet (at most two: reserve, or commit and
     * capture), logged with the saga's next record; see defer.
     */
    struct {
        step st;
        char detail[ORDERS__ID_SIZE + 8];
    } done[2];
    int ndone;
    bool fresh;    /* this run started at the order's placing: no step of it ran before */
    cl_ctx *trace; /* its trace context: the checkout's, current span the step's */
    /*
     * Run on its placer's thread (orders__saga_run_here): the cl_now_ms by which it is
     * handed to a worker, else 0; handed once it was.
     */
    int64_t until_ms;
    bool handed;
    orders_order *ended; /* its placer's (or NULL): the order as the saga's end leaves it */
} saga;

/* The saga's name in metrics (cleave_saga_*). */
#define SAGA_NAME "checkout"

/* A step recorded as ended: its outcome and duration, and the saga's end when next is done. */
static void observe_step(const saga *s, step next, const char *status, const char *log_step,
                         const char *outcome)
{
    cl_metrics_saga_step(SAGA_NAME, log_step, outcome, cl_metrics_since(s->step_start_ns));
    if (next == S_DONE) {
        cl_metrics_saga_done(SAGA_NAME, status);
    }
}

typedef struct orders__qnode {
    struct orders__qnode *next;
    char id[ORDERS__ID_SIZE];
    char traceparent[CL_TRACEPARENT_SIZE]; /* the checkout's, or "" (a resumed saga) */
    bool placed_here;                      /* principal is whose the order is */
    char principal[sizeof(((cl_ctx *)0)->principal)];
    int64_t leased_ms;    /* placed here under this executor's lease since then, or 0 */
    orders_order *placed; /* with leased_ms: the order as placed (owned), or NULL */
    bool resumed;         /* begun on its placer's thread: goes on from its record */
} qnode;

static void qnode_free(qnode *n)
{
    if (n->placed != NULL) {
        cl_schema_free(&orders_order_type, n->placed);
        free(n->placed);
    }
    free(n);
}

/* --- the queue ----------------------------------------------------------------------- */

bool orders__saga_accepting(struct orders_self *self)
{
    orders__executor *x = &self->saga;
    bool ok;

    pthread_mutex_lock(&x->mu);
    ok = x->running && !x->stopping && x->qlen < QUEUE_MAX;
    pthread_mutex_unlock(&x->mu);
    return ok;
}

/* A queue entry for order id, as orders__saga_enqueue describes it; NULL out of memory. */
static qnode *qnode_make(const char *id, int64_t leased_ms, const orders_order *placed,
                         const cl_ctx *ctx)
{
    qnode *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        cl_log_error("orders", "out of memory: order %s resumes at the next start", id);
        return NULL;
    }
    cl_strlcpy(n->id, id, sizeof(n->id));
    n->leased_ms = leased_ms;
    /* Without the copy (out of memory) the saga reads the order back: no harm done. */
    if (leased_ms > 0 && placed != NULL) {
        n->placed = calloc(1, sizeof(*n->placed));
        if (n->placed != NULL && cl_schema_copy(&orders_order_type, n->placed, placed) != CL_OK) {
            free(n->placed);
            n->placed = NULL;
        }
    }
    if (ctx != NULL) {
        (void)cl_trace_format(ctx, n->traceparent);
        n->placed_here = true;
        cl_strlcpy(n->principal, ctx->principal, sizeof(n->principal));
    }
    return n;
}

/* Queues n for the workers and wakes one. x->mu held. */
static void push(orders__executor *x, qnode *n)
{
    if (x->tail != NULL) {
        x->tail->next = n;
    } else {
        x->head = n;
    }
    x->tail = n;
    x->qlen++;
    /*
     * One idle worker is enough (a busy one looks at the queue when it is done); waking
     * every worker, and every saga pausing for a retry, cost a futex round each per order.
     */
    pthread_cond_signal(&x->work);
}

void orders__saga_enqueue(struct orders_self *self, const char *id, int64_t leased_ms,
                          const orders_order *placed, const cl_ctx *ctx)
{
    orders__executor *x = &self->saga;
    qnode *n = qnode_make(id, leased_ms, placed, ctx);

    if (n != NULL) {
        pthread_mutex_lock(&x->mu);
        push(x, n);
        pthread_mutex_unlock(&x->mu);
    }
}

/* --- waiting for a saga's end (get_order's wait_ms) ------------------------------------- */

/*
 * Whether a caller who sees only owner's orders (NULL: all) may see an order placed by
 * principal (NULL: not known here); an order placed without a principal is nobody's.
 */
static bool visible(const char *owner, const char *principal)
{
    return principal != NULL &&
           (owner == NULL || (owner[0] != '\0' && strcmp(owner, principal) == 0));
}

/*
 * True when order id waits in x's queue or runs in one of its workers; *placer (may be NULL)
 * then receives whose it is, as placed here, or NULL when not known. x->mu held.
 */
static bool known(const orders__executor *x, const char *id, const char **placer)
{
    const char *who = NULL;
    bool found = false;

    for (const qnode *n = x->head; n != NULL && !found; n = n->next) {
        found = strcmp(n->id, id) == 0;
        who = found && n->placed_here ? n->principal : NULL;
    }
    for (int i = 0; i < 2 * ORDERS__MAX_WORKERS && !found; i++) {
        found = strcmp(x->active[i], id) == 0;
        who = found ? x->active_owner[i] : NULL;
    }
    if (placer != NULL) {
        *placer = who;
    }
    return found;
}

cl_status orders__saga_watch(struct orders_self *self, orders__waiter *w, const char *id,
                             const char *owner, cl_error *err)
{
    orders__executor *x = &self->saga;
    const char *placer = NULL;

    memset(w, 0, sizeof(*w));
    w->id = id;
    if (cl_cond_init_monotonic(&w->cv) != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot wait for order %s", id);
    }
    pthread_mutex_lock(&x->mu);
    w->next = x->waiters;
    x->waiters = w;
    w->in_flight = known(x, id, &placer) && visible(owner, placer);
    pthread_mutex_unlock(&x->mu);
    return CL_OK;
}

bool orders__saga_await(struct orders_self *self, orders__waiter *w, int64_t ms)
{
    orders__executor *x = &self->saga;
    struct timespec until = cl_deadline_in(ms);
    bool go;

    pthread_mutex_lock(&x->mu);
    while (!x->stopping && !w->ended && pthread_cond_timedwait(&w->cv, &x->mu, &until) == 0) {
    }
    go = !x->stopping;
    /*
     * Heard once: a read that still finds the order in flight (a replica behind the
     * primary) waits the full ms next time rather than spinning.
     */
    w->ended = false;
    pthread_mutex_unlock(&x->mu);
    return go;
}

void orders__saga_unwatch(struct orders_self *self, orders__waiter *w)
{
    orders__executor *x = &self->saga;

    pthread_mutex_lock(&x->mu);
    for (orders__waiter **p = &x->waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&x->mu);
    pthread_cond_destroy(&w->cv);
}

/*
 * Wakes the get_order calls waiting for order id, whose saga just ended (its final state
 * committed): only those, so that an order's end costs no wake-up of the others' waiters.
 */
static void ended(struct orders_self *self, const char *id)
{
    orders__executor *x = &self->saga;

    pthread_mutex_lock(&x->mu);
    for (orders__waiter *w = x->waiters; w != NULL; w = w->next) {
        if (strcmp(w->id, id) == 0) {
            w->ended = true;
            pthread_cond_signal(&w->cv);
        }
    }
    pthread_mutex_unlock(&x->mu);
}

/* Waits ms unless the executor stops first; false when it stops. */
static bool pause_ms(struct orders_self *self, int64_t ms)
{
    orders__executor *x = &self->saga;
    struct timespec until = cl_deadline_in(ms);
    bool go;

    pthread_mutex_lock(&x->mu);
    while (!x->stopping && pthread_cond_timedwait(&x->cv, &x->mu, &until) == 0) {
    }
    go = !x->stopping;
    pthread_mutex_unlock(&x->mu);
    return go;
}

/*
 * Pauses ms before a retry of s; false when the executor stops first. A saga run on its
 * placer's thread does not pause there: it is handed to a worker (false, s->handed).
 */
static bool retry_after(saga *s, int64_t ms)
{
    if (s->until_ms != 0) {
        s->handed = true;
        return false;
    }
    return pause_ms(s->self, ms);
}

/*
 * Exponential backoff with full jitter, the platform's one retry policy (cleave/retry.h);
 * attempt counts from 0 here, from 1 in cl_retry_backoff_ms.
 */
static int64_t backoff_ms(int attempt)
{
    return cl_retry_backoff_ms(BACKOFF_BASE, BACKOFF_MAX, attempt + 1);
}

/* --- leases and persisting ------------------------------------------------------------- */

/* SQL texts that read the database's clock, in both dialects (internal.h). */
#define SQL_TAKE(now)                                                                              \
    "UPDATE orders SET lease_owner = ?, lease_host = ?, lease_epoch = lease_epoch + 1, "           \
    "lease_until = " now " + ? WHERE id = ? AND status IN ('pending', 'compensating') AND "        \
    "(lease_owner IS NULL OR lease_until IS NULL OR lease_until < " now " OR lease_host = ?) "     \
    "RETURNING lease_epoch"
#define SQL_ADVANCE(now)                                                                           \
    "UPDATE orders SET step = ?, status = ?, reason = COALESCE(?, reason), updated_at = ?, "       \
    "lease_until = " now " + ? WHERE id = ? AND lease_owner = ? AND lease_epoch = ?"
#define SQL_RENEW(now)                                                                             \
    "UPDATE orders SET lease_until = " now " + ? WHERE id = ? AND lease_owner = ? "                \
    "AND lease_epoch = ?"
#define SQL_IN_FLIGHT(now)                                                                         \
    "SELECT id FROM orders WHERE status IN ('pending', 'compensating') AND (lease_until IS NULL "  \
    "OR lease_until < " now " OR (lease_host = ? AND lease_owner <> ?)) ORDER BY seq LIMIT ?"

static const char sql_take[] = SQL_TAKE(ORDERS__NOW_SQLITE);
static const char sql_take_pg[] = SQL_TAKE(ORDERS__NOW_PG);
static const char sql_advance[] = SQL_ADVANCE(ORDERS__NOW_SQLITE);
static const char sql_advance_pg[] = SQL_ADVANCE(ORDERS__NOW_PG);
static const char sql_renew[] = SQL_RENEW(ORDERS__NOW_SQLITE);
static const char sql_renew_pg[] = SQL_RENEW(ORDERS__NOW_PG);
static const char sql_in_flight[] = SQL_IN_FLIGHT(ORDERS__NOW_SQLITE);
static const char sql_in_flight_pg[] = SQL_IN_FLIGHT(ORDERS__NOW_PG);

/* Runs a fenced write: CL_CONFLICT on "lease" when it changed no row. */
static cl_status fenced(cl_ctx *ctx, cl_stmt *st, const char *id)
{
    int rows = 0;
    cl_status rc = cl_stmt_run(st, &rows, &ctx->err);

    if (rc == CL_OK && rows == 0) {
        rc = cl_fail(ctx, CL_CONFLICT, "lease", "order %s: the saga's lease is another executor's",
                     id);
    }
    return rc;
}

cl_status orders__lease_take(struct orders_self *self, cl_ctx *ctx, const char *id,
                             const char *host, const char *owner, orders__fence *fence, bool *taken)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    *taken = false;
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, self->postgres ? sql_take_pg : sql_take, &st, "ssiss",
                                owner, host, self->lease_ms, id, host);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        fence->owner = owner;
        fence->epoch = cl_stmt_i64(st, 0);
        *taken = true;
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    cl_db_release(conn);
    return rc;
}

/* Renews the lease in the caller's transaction (or alone); CL_CONFLICT when it was lost. */
static cl_status renew(struct orders_self *self, cl_ctx *ctx, cl_db_conn *conn, const char *id,
                       const orders__fence *fence)
{
    cl_stmt *st;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, self->postgres ? sql_renew_pg : sql_renew, &st, "issi",
                            self->lease_ms, id, fence->owner, fence->epoch);
    return rc == CL_OK ? fenced(ctx, st, id) : rc;
}

/* orders.order_confirmed (orders/orders.h): what o bought, from which account, for how much. */
static cl_status publish_confirmed(struct orders_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                   const orders_order *o)
{
    orders_order_confirmed ev = {0};
    char key[ORDERS__ID_SIZE + 8];
    cl_status rc;

    ev.lines.v = calloc(o->lines.n, sizeof(orders_line_input));
    if (ev.lines.v == NULL) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    ev.lines.n = o->lines.n;
    /* Every string is borrowed from o: only the list itself is freed below. */
    for (size_t i = 0; i < o->lines.n; i++) {
        ev.lines.v[i].sku = o->lines.v[i].sku;
        ev.lines.v[i].quantity = o->lines.v[i].quantity;
    }
    ev.order_id = o->id;
    ev.account_id = o->account_id;
    ev.total = o->total;
    snprintf(key, sizeof(key), "order:%s", o->id);
    rc = self->bus != NULL ? orders_publish_order_confirmed(conn, ctx, key, &ev, &ctx->err) : CL_OK;
    free(ev.lines.v);
    return rc;
}

cl_status orders__saga_record(struct orders_self *self, cl_ctx *ctx, const char *id,
                              const orders__fence *fence, const char *next_step, const char *status,
                              const char *reason, const orders__entry *log, size_t nlog,
                              const orders_order *confirmed, orders_order *ended)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    char now[32];
    cl_status rc;

    cl_now_rfc3339(now);
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    /* The order row first: its row lock orders this write after any takeover's. */
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, self->postgres ? sql_advance_pg : sql_advance, &st,
                                "ssssissi", next_step, status, reason, now, self->lease_ms, id,
                                fence->owner, fence->epoch);
    }
    if (rc == CL_OK) {
        rc = fenced(ctx, st, id);
    }
    for (size_t i = 0; rc == CL_OK && i < nlog; i++) {
        rc = orders__log(ctx, conn, id, fence, log[i].step, log[i].outcome, log[i].detail);
    }
    if (rc == CL_OK && confirmed != NULL) {
        rc = publish_confirmed(self, ctx, conn, confirmed);
    }
    /*
     * A read that fails leaves *ended empty and its caller reads the order itself; a driver
     * that aborts the transaction on it fails the commit below, and the record is retried.
     */
    if (rc == CL_OK && ended != NULL && orders__load(ctx, conn, id, true, NULL, ended) != CL_OK) {
        cl_error_clear(&ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    if (rc != CL_OK && ended != NULL) {
        cl_schema_free(&orders_order_type, ended);
        memset(ended, 0, sizeof(*ended));
    }
    cl_db_release(conn); /* rolls back what did not commit */
    return rc;
}

/* True when rc says the lease went to another executor: this one stops the saga. */
static bool lost(const saga *s, cl_status rc, const cl_error *err)
{
    if (rc != CL_CONFLICT || strcmp(err->field, "lease") != 0) {
        return false;
    }
    cl_log_warn("orders", "order %s: executor %s lost the lease (epoch %" PRId64 "); stopping",
                s->o.id, s->fence.owner, s->fence.epoch);
    return true;
}

/*
 * Records, in one transaction, that the saga moves to next with status (reason, when not
 * NULL, is set), the log entry (log_step, outcome, detail) and, when confirming, the
 * event; only while the saga's lease is still this executor's. Retries until the
 * database takes it; false when the executor stops first or the lease was lost.
 */
static bool persist(saga *s, step next, const char *status, const char *reason,
                    const char *log_step, const char *outcome, const char *detail)
{
    bool confirming = next == S_DONE && strcmp(status, "confirmed") == 0;
    orders__entry log[3];
    size_t nlog = 0;

    /* The steps deferred first, in the order they ran; log_step NULL records only them. */
    for (int i = 0; i < s->ndone; i++) {
        log[nlog++] = (orders__entry){step_names[s->done[i].st], "ok", s->done[i].detail};
    }
    if (log_step != NULL) {
        log[nlog++] = (orders__entry){log_step, outcome, detail};
    }
    for (int attempt = 0;; attempt++) {
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        cl_trace_inherit(&ctx, s->trace);
        cl_strlcpy(ctx.request_id, s->o.id, sizeof(ctx.request_id));
        rc = orders__saga_record(s->self, &ctx, s->o.id, &s->fence, step_names[next], status,
                                 reason, log, nlog, confirming ? &s->o : NULL,
                                 next == S_DONE ? s->ended : NULL);
        if (rc == CL_OK) {
            s->next = next;
            s->ndone = 0;
            s->renewed_ms = cl_now_ms();
            if (log_step != NULL) {
                observe_step(s, next, status, log_step, outcome);
            }
            if (next == S_DONE) {
                ended(s->self, s->o.id);
            }
            return true;
        }
        if (lost(s, rc, &ctx.err)) {
            return false;
        }
        cl_log_warn("orders", "order %s: recording step %s failed: %s", s->o.id, step_names[next],
                    ctx.err.message);
        if (!retry_after(s, backoff_ms(attempt))) {
            return false;
        }
    }
}

/*
 * Moves the saga on to next after step st succeeded (detail), without a transaction of its
 * own: the step is recorded, with its log entry, by the saga's next record (persist), one
 * write instead of two. A process that dies before that record re-runs st, which is safe
 * for the reason every re-run is (each step is idempotent and replays its first answer),
 * and only for the forward steps deferred: reserve (recorded with authorize) and commit and
 * capture (recorded with confirm). A saga resumed at reserve therefore may have had its
 * payment authorized already: its compensation starts with the void (see run_step).
 */
static bool defer(saga *s, step st, step next, const char *detail)
{
    cl_strlcpy(s->done[s->ndone].detail, detail, sizeof(s->done[s->ndone].detail));
    s->done[s->ndone].st = st;
    s->ndone++;
    cl_metrics_saga_step(SAGA_NAME, step_names[st], "ok", cl_metrics_since(s->step_start_ns));
    s->next = next;
    return true;
}

/*
 * Renews the saga's lease when renew_ms passed since the last renewal, and with log_step
 * (not NULL) appends a log entry (a step that is retrying) in the same transaction. false
 * only when the lease was lost; a database that does not answer is only logged (the
 * lease holds for lease_ms, and the step's record is fenced anyway).
 */
static bool keep_lease(saga *s, const char *log_step, const char *outcome, const char *detail)
{
    cl_db_conn *conn = NULL;
    cl_ctx ctx;
    cl_status rc;

    if (log_step == NULL && cl_now_ms() - s->renewed_ms < s->self->renew_ms) {
        return true;
    }
    cl_ctx_init(&ctx, 5000);
    rc = cl_db_acquire(s->self->db, &ctx, &conn, &ctx.err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx.err);
    }
    if (rc == CL_OK) {
        rc = renew(s->self, &ctx, conn, s->o.id, &s->fence);
    }
    if (rc == CL_OK && log_step != NULL) {
        rc = orders__log(&ctx, conn, s->o.id, &s->fence, log_step, outcome, detail);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx.err);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        s->renewed_ms = cl_now_ms();
        return true;
    }
    if (lost(s, rc, &ctx.err)) {
        return false;
    }
    cl_log_warn("orders", "order %s: %s", s->o.id, ctx.err.message);
    return true;
}

/* --- the calls --------------------------------------------------------------------------- */

typedef cl_status (*call_fn)(saga *s, cl_ctx *ctx);

static void keep_status(saga *s, const char *status)
{
    cl_strlcpy(s->got, status != NULL ? status : "", sizeof(s->got));
}

static cl_status call_reserve(saga *s, cl_ctx *ctx)
{
    inventory_reserve_request req = {0};
    inventory_reservation r = {0};
    cl_status rc;

    req.order_id = s->o.id;
    req.lines.v = calloc(s->o.lines.n, sizeof(inventory_line));
    if (req.lines.v == NULL) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    req.lines.n = s->o.lines.n;
    for (size_t i = 0; i < s->o.lines.n; i++) {
        req.lines.v[i].sku = s->o.lines.v[i].sku; /* borrowed */
        req.lines.v[i].quantity = s->o.lines.v[i].quantity;
    }
    rc = inventory_reserve(s->self->inventory, ctx, &req, &r);
    free(req.lines.v);
    if (rc == CL_OK) {
        keep_status(s, r.status);
        cl_schema_free(&inventory_reservation_type, &r);
    }
    return rc;
}

static cl_status call_authorize(saga *s, cl_ctx *ctx)
{
    payments_authorization req = {0};
    payments_payment p = {0};
    cl_status rc;

    req.payment_id = s->pay_id;
    req.account_id = s->o.account_id;
    req.order_id = s->o.id;
    req.amount = s->o.total;
    rc = payments_authorize_payment(s->self->payments, ctx, &req, &p);
    if (rc == CL_OK) {
        keep_status(s, p.status);
        cl_schema_free(&payments_payment_type, &p);
    }
    return rc;
}

static cl_status call_inventory(saga *s, cl_ctx *ctx, bool commit)
{
    inventory_order_ref ref = {.order_id = s->o.id};
    inventory_reservation r = {0};
    cl_status rc = commit ? inventory_commit(s->self->inventory, ctx, &ref, &r)
                          : inventory_release(s->self->inventory, ctx, &ref, &r);

    if (rc == CL_OK) {
        keep_status(s, r.status);
        cl_schema_free(&inventory_reservation_type, &r);
    }
    return rc;
}

static cl_status call_commit(saga *s, cl_ctx *ctx)
{
    return call_inventory(s, ctx, true);
}

static cl_status call_release(saga *s, cl_ctx *ctx)
{
    return call_inventory(s, ctx, false);
}

static cl_status call_payment(saga *s, cl_ctx *ctx, bool capture)
{
    payments_payment_ref ref = {.payment_id = s->pay_id};
    payments_payment p = {0};
    cl_status rc = capture ? payments_capture_payment(s->self->payments, ctx, &ref, &p)
                           : payments_void_payment(s->self->payments, ctx, &ref, &p);

    if (rc == CL_OK) {
        keep_status(s, p.status);
        cl_schema_free(&payments_payment_type, &p);
    }
    return rc;
}

static cl_status call_capture(saga *s, cl_ctx *ctx)
{
    return call_payment(s, ctx, true);
}

static cl_status call_void(saga *s, cl_ctx *ctx)
{
    return call_payment(s, ctx, false);
}

/* Worth another try: the dependency was away or slow, or a concurrent writer won. */
static bool transient(cl_status rc, const cl_error *err)
{
    return rc == CL_UNAVAILABLE || rc == CL_DEADLINE_EXCEEDED || rc == CL_INTERNAL ||
           (rc == CL_CONFLICT && strcmp(err->field, "expected_version") == 0);
}

/*
 * Runs fn for step st until it answers something other than a transient failure, or
 * budget_ms (FOREVER: no limit) has passed. *err receives the last failure. false when
 * the executor stopped meanwhile or the saga's lease was lost.
 */
static bool call(saga *s, step st, int64_t budget_ms, call_fn fn, cl_status *out, cl_error *err)
{
    int64_t started = cl_now_ms();
    bool noted = false;

    for (int attempt = 0;; attempt++) {
        cl_ctx ctx;
        cl_status rc;

        /* A saga that retries for long keeps its lease; one that lost it stops here. */
        if (!keep_lease(s, NULL, NULL, NULL)) {
            return false;
        }
        cl_ctx_init(&ctx, s->self->call_timeout_ms);
        cl_trace_inherit(&ctx, s->trace);
        cl_strlcpy(ctx.request_id, s->o.id, sizeof(ctx.request_id));
        cl_strlcpy(ctx.principal, "service:orders", sizeof(ctx.principal));
        snprintf(ctx.idempotency_key, sizeof(ctx.idempotency_key), "%s:%s", s->o.id,
                 step_names[st]);
        rc = fn(s, &ctx);
        *out = rc;
        *err = ctx.err;
        if (rc != CL_OK) {
            snprintf(s->detail, sizeof(s->detail), "%s: %s%s%s%s", cl_status_name(rc),
                     ctx.err.message, ctx.err.field[0] != '\0' ? " (" : "", ctx.err.field,
                     ctx.err.field[0] != '\0' ? ")" : "");
        }
        if (rc == CL_OK || !transient(rc, &ctx.err)) {
            return true;
        }
        if (!noted) {
            /*
             * A step that must wait first records those deferred before it, as they ran:
             * a retry can take long, and the order should show how far it got.
             */
            if (s->ndone > 0 && !persist(s, s->next, "pending", NULL, NULL, NULL, NULL)) {
                return false;
            }
            if (!keep_lease(s, step_names[st], "retrying", s->detail)) {
                return false;
            }
            noted = true;
        }
        if (budget_ms != FOREVER && cl_now_ms() - started >= budget_ms) {
            return true;
        }
        if (!retry_after(s, backoff_ms(attempt))) {
            return false;
        }
    }
}

static void crash_point(const saga *s, const char *point)
{
    cl_bus_crash_point(s->self->bus, point);
}

/* Starts the compensations at from: status compensating with reason. */
static bool compensate(saga *s, step from, const char *reason, step failed)
{
    cl_strlcpy(s->reason, reason, sizeof(s->reason));
    return persist(s, from, "compensating", reason, step_names[failed], "failed", s->detail);
}

/* --- the steps ------------------------------------------------------------------------- */

/* Runs the saga's next step and records it; false when the executor stopped. */
static bool run_step(saga *s)
{
    cl_status rc = CL_OK;
    cl_error err = {0};
    bool ok;

    s->step_start_ns = cl_metrics_now_ns();
    switch (s->next) {
    case S_RESERVE:
        if (!call(s, S_RESERVE, s->self->step_timeout_ms, call_reserve, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point(s, "orders.after-reserve");
            if (strcmp(s->got, "reserved") == 0 || strcmp(s->got, "committed") == 0) {
                return defer(s, S_RESERVE, S_AUTHORIZE, s->got);
            }
            snprintf(s->detail, sizeof(s->detail), "the reservation is %s", s->got);
            return compensate(s, s->fresh ? S_RELEASE : S_VOID, "reservation_expired", S_RESERVE);
        }
        /* Resumed, the saga may have authorized before it died (defer): void that first. */
        return compensate(s, s->fresh ? S_RELEASE : S_VOID,
                          transient(rc, &err)  ? "inventory_unavailable"
                          : rc == CL_NOT_FOUND ? "unknown_sku"
                          : rc == CL_CONFLICT && strncmp(err.field, "lines", 5) == 0
                              ? "out_of_stock"
                              : "reservation_refused",
                          S_RESERVE);
    case S_AUTHORIZE:
        if (!call(s, S_AUTHORIZE, s->self->step_timeout_ms, call_authorize, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point(s, "orders.after-authorize");
            if (strcmp(s->got, "authorized") == 0 || strcmp(s->got, "captured") == 0) {
                return persist(s, S_COMMIT, "pending", NULL, "authorize", "ok", s->pay_id);
            }
            snprintf(s->detail, sizeof(s->detail), "payment %s is %s", s->pay_id, s->got);
            return compensate(s, S_VOID, "payment_refused", S_AUTHORIZE);
        }
        return compensate(s, S_VOID,
                          transient(rc, &err)  ? "payments_unavailable"
                          : rc == CL_NOT_FOUND ? "unknown_account"
                          : rc == CL_CONFLICT && strcmp(err.field, "amount") == 0
                              ? "insufficient_funds"
                              : "payment_refused",
                          S_AUTHORIZE);
    case S_COMMIT:
        /* The pivot: from here on the saga goes forward, however long it takes. */
        if (!call(s, S_COMMIT, FOREVER, call_commit, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK && strcmp(s->got, "committed") == 0) {
            crash_point(s, "orders.after-commit");
            return defer(s, S_COMMIT, S_CAPTURE, s->got);
        }
        if (rc == CL_OK) {
            snprintf(s->detail, sizeof(s->detail), "the reservation is %s", s->got);
        }
        /* Released or expired before it was committed: its stock went back already. */
        return compensate(s, S_VOID, "reservation_expired", S_COMMIT);
    case S_CAPTURE:
        if (!call(s, S_CAPTURE, FOREVER, call_capture, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point(s, "orders.after-capture");
            return defer(s, S_CAPTURE, S_CONFIRM, s->got);
        }
        /*
         * Voided behind the saga's back after the stock was sold: nothing can give the
         * stock back (commit has no inverse), so the order ends rejected and says why.
         */
        cl_log_error("orders", "order %s: capture failed after commit: %s", s->o.id, s->detail);
        return persist(s, S_DONE, "rejected", "payment_voided", "capture", "failed", s->detail);
    case S_CONFIRM:
        crash_point(s, "orders.before-confirm");
        return persist(s, S_DONE, "confirmed", NULL, "confirm", "ok", "orders.order_confirmed");
    case S_VOID:
        if (!call(s, S_VOID, FOREVER, call_void, &rc, &err)) {
            return false;
        }
        crash_point(s, "orders.after-void");
        ok = rc == CL_OK || rc == CL_NOT_FOUND;
        return persist(s, S_RELEASE, "compensating", NULL, "void", ok ? "ok" : "failed",
                       rc == CL_OK          ? s->got
                       : rc == CL_NOT_FOUND ? "no payment was held"
                                            : s->detail);
    case S_RELEASE:
        if (!call(s, S_RELEASE, FOREVER, call_release, &rc, &err)) {
            return false;
        }
        crash_point(s, "orders.after-release");
        return persist(s, S_REJECT, "compensating", NULL, "release", rc == CL_OK ? "ok" : "failed",
                       rc == CL_OK ? s->got : s->detail);
    case S_REJECT:
        return persist(s, S_DONE, "rejected", NULL, "reject", "ok", s->reason);
    case S_DONE:
    case S_COUNT:
        break;
    }
    return false;
}

/*
 * Marks n's order active in this executor (one worker per order in a process): false when
 * another worker runs it already. The caller holds x->mu.
 */
static bool activate(orders__executor *x, int slot, const qnode *n)
{
    for (int i = 0; i < 2 * ORDERS__MAX_WORKERS; i++) {
        if (strcmp(x->active[i], n->id) == 0) {
            return false;
        }
    }
    cl_strlcpy(x->active[slot], n->id, sizeof(x->active[slot]));
    x->active_owner[slot] = n->placed_here ? n->principal : NULL;
    return true;
}

/* Takes order id's lease for this executor; false when it is another's, final, or on stop. */
static bool take(struct orders_self *self, const char *id, orders__fence *fence)
{
    for (int attempt = 0;; attempt++) {
        bool taken = false;
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        rc = orders__lease_take(self, &ctx, id, self->saga.host, self->saga.id, fence, &taken);
        if (rc == CL_OK) {
            return taken;
        }
        cl_log_warn("orders", "order %s: cannot take its saga's lease: %s", id, ctx.err.message);
        if (!pause_ms(self, backoff_ms(attempt))) {
            return false;
        }
    }
}

/*
 * The queue entry that gives order n->id's saga, begun on its placer's thread under this
 * executor's lease (renewed at renewed_ms), to the workers: they go on from the step it
 * recorded last. NULL out of memory (the saga resumes once its lease lapses).
 */
static qnode *handed_over(const qnode *n, int64_t renewed_ms)
{
    qnode *next = malloc(sizeof(*next));

    if (next == NULL) {
        cl_log_error("orders", "out of memory: order %s resumes when its lease lapses", n->id);
        return NULL;
    }
    /* Its id, trace and placer; not the order as placed, which the workers read back. */
    *next = *n;
    next->next = NULL;
    next->placed = NULL;
    next->leased_ms = renewed_ms;
    next->resumed = true;
    return next;
}

/*
 * Runs order n->id's saga from its recorded step to a final state, or until stop.
 *
 * An order this executor placed a moment ago is its own already: place_order inserted it
 * with this executor's lease at epoch 0, which nobody else can take before it lapses.
 * Taking it again would cost a write transaction per checkout for nothing; its lease is
 * renewed as any other, counting from when it was placed. Past renew_ms in the queue it is
 * taken as a resumed one is, so that no saga starts on a lease close to lapsing.
 *
 * until_ms (0: none) is for a saga run on its placer's thread: it stops at its first retry,
 * or before a step when no call fits before until_ms any more, and *handed (not NULL then)
 * receives the entry that gives it to the workers. True when the saga ended here; ended
 * (NULL for a worker) then receives the order as its end left it (orders__saga_run_here).
 */
static bool run(struct orders_self *self, qnode *n, int64_t until_ms, qnode **handed,
                orders_order *ended)
{
    const char *id = n->id;
    saga s;
    int attempt = 0;
    cl_ctx trace;
    bool done;

    memset(&s, 0, sizeof(s));
    s.self = self;
    s.until_ms = until_ms;
    s.ended = ended;
    s.fresh = n->leased_ms > 0 && !n->resumed;
    if (n->leased_ms > 0 && cl_now_ms() - n->leased_ms < self->renew_ms) {
        s.fence.owner = self->saga.id;
        s.fence.epoch = 0;
        s.renewed_ms = n->leased_ms;
        /*
         * Under the lease it was placed with, nobody else wrote the order since: it is as
         * place_order committed it, which is what the saga would read back.
         */
        if (n->placed != NULL) {
            s.o = *n->placed;
            free(n->placed);
            n->placed = NULL;
        }
    } else if (take(self, id, &s.fence)) {
        s.renewed_ms = cl_now_ms();
    } else {
        return false; /* another host runs it, or it ended: nothing to do here */
    }
    /* The checkout's trace goes on in the saga's steps (a resumed saga starts its own). */
    cl_ctx_init(&trace, 0);
    cl_trace_enter(&trace, n->traceparent, NULL);
    s.trace = &trace;
    while (s.o.id == NULL) {
        cl_db_conn *conn = NULL;
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        rc = cl_db_acquire(self->db, &ctx, &conn, &ctx.err);
        if (rc == CL_OK) {
            rc = cl_db_begin_read(conn, &ctx.err);
        }
        if (rc == CL_OK) {
            rc = orders__load(&ctx, conn, id, false, NULL, &s.o);
        }
        cl_db_release(conn);
        if (rc == CL_OK) {
            break;
        }
        if (rc == CL_NOT_FOUND) {
            cl_log_error("orders", "order %s vanished from the saga queue", id);
            return false;
        }
        if (!pause_ms(self, backoff_ms(attempt++))) {
            return false;
        }
    }
    s.next = S_DONE;
    for (int i = 0; i < S_COUNT; i++) {
        if (strcmp(s.o.step, step_names[i]) == 0) {
            s.next = (step)i;
        }
    }
    cl_strlcpy(s.reason, s.o.reason != NULL ? s.o.reason : "", sizeof(s.reason));
    snprintf(s.pay_id, sizeof(s.pay_id), "pay-%s", s.o.id);
    cl_metrics_saga_running(SAGA_NAME, 1);
    for (bool go = true; go && s.next != S_DONE;) {
        char name[CL_SPAN_NAME_MAX];
        cl_span span;

        if (until_ms != 0 && cl_now_ms() + self->call_timeout_ms > until_ms) {
            s.handed = true; /* the placer's wait has no room for another call */
            break;
        }
        snprintf(name, sizeof(name), "orders.checkout %s", step_names[s.next]);
        cl_span_start(&span, &trace, CL_SPAN_INTERNAL, name);
        go = run_step(&s);
        cl_span_end(&span);
    }
    cl_metrics_saga_running(SAGA_NAME, -1);
    done = s.next == S_DONE;
    cl_schema_free(&orders_order_type, &s.o);
    if (s.handed) {
        *handed = handed_over(n, s.renewed_ms);
    }
    return done;
}

bool orders__saga_run_here(struct orders_self *self, const char *id, int64_t leased_ms,
                           const orders_order *placed, const cl_ctx *ctx, orders_order *ended)
{
    orders__executor *x = &self->saga;
    int64_t wait =
        ctx->wait_ms < cl_ctx_remaining_ms(ctx) ? ctx->wait_ms : cl_ctx_remaining_ms(ctx);
    qnode *n = qnode_make(id, leased_ms, placed, ctx), *handed = NULL;
    int slot = -1;
    bool done;

    if (n == NULL) {
        return false;
    }
    pthread_mutex_lock(&x->mu);
    if (wait > self->call_timeout_ms && x->running && !x->stopping &&
        x->running_here < self->workers) {
        for (int i = ORDERS__MAX_WORKERS; i < 2 * ORDERS__MAX_WORKERS && slot < 0; i++) {
            slot = x->active[i][0] == '\0' ? i : -1;
        }
    }
    if (slot < 0 || !activate(x, slot, n)) {
        push(x, n);
        pthread_mutex_unlock(&x->mu);
        return false;
    }
    x->running_here++;
    pthread_mutex_unlock(&x->mu);

    done = run(self, n, cl_now_ms() + wait, &handed, ended);

    pthread_mutex_lock(&x->mu);
    x->active[slot][0] = '\0';
    x->active_owner[slot] = NULL;
    x->running_here--;
    /* Once no longer active here: a worker takes only an order no other thread runs. */
    if (handed != NULL) {
        push(x, handed);
    }
    /* orders__saga_stop waits for the last one (only then: x->cv also paces the sweeper). */
    if (x->stopping) {
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
    qnode_free(n);
    return done;
}

static void *worker(void *arg)
{
    struct orders_self *self = arg;
    orders__executor *x = &self->saga;
    int slot;

    cl_thread_name("orders", "saga");

    pthread_mutex_lock(&x->mu);
    /* Threads start in order, each under mu: the count so far is this one's slot. */
    for (slot = 0; slot < ORDERS__MAX_WORKERS - 1 && x->active[slot][0] != '\0'; slot++) {
    }
    x->active[slot][0] = '-'; /* taken, running nothing */
    while (!x->stopping) {
        qnode *n = x->head;

        if (n == NULL) {
            pthread_cond_wait(&x->work, &x->mu);
            continue;
        }
        x->head = n->next;
        if (x->head == NULL) {
            x->tail = NULL;
        }
        x->qlen--;
        if (activate(x, slot, n)) {
            pthread_mutex_unlock(&x->mu);
            (void)run(self, n, 0, NULL, NULL);
            pthread_mutex_lock(&x->mu);
            cl_strlcpy(x->active[slot], "-", sizeof(x->active[slot]));
            x->active_owner[slot] = NULL;
        }
        qnode_free(n);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* --- start and stop -------------------------------------------------------------------- */

/*
 * Queues at most limit orders whose saga is not final and whose lease is free, lapsed
 * (their executor died) or this host's previous process's (dead: one process per host id):
 * they resume where they stopped. Orders this executor knows already are skipped.
 * *queued (may be NULL) receives how many were queued.
 */
static cl_status queue_in_flight(struct orders_self *self, int64_t limit, int *queued,
                                 cl_error *err)
{
    orders__executor *x = &self->saga;
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    int n = 0;
    cl_ctx ctx;
    cl_status rc;

    cl_ctx_init(&ctx, 10000);
    rc = cl_db_acquire(self->db, &ctx, &conn, &ctx.err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(&ctx, conn, self->postgres ? sql_in_flight_pg : sql_in_flight, &st,
                                "ssi", x->host, x->id, limit);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx.err);
    }
    while (rc == CL_OK && row) {
        const char *id = cl_stmt_text(st, 0);
        bool fresh;

        pthread_mutex_lock(&x->mu);
        fresh = !known(x, id, NULL);
        pthread_mutex_unlock(&x->mu);
        if (fresh) {
            orders__saga_enqueue(self, id, 0, NULL, NULL);
            n++;
        }
        rc = cl_stmt_step(st, &row, &ctx.err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        *err = ctx.err;
        return rc;
    }
    if (queued != NULL) {
        *queued = n;
    }
    return CL_OK;
}

/*
 * Every renew_ms, while this executor has idle workers, queues sagas whose lease lapsed:
 * a host that died leaves its sagas to whoever has room, without waiting for its restart.
 * A busy executor takes nothing more, so the sagas go where there is capacity.
 */
static void *sweeper(void *arg)
{
    struct orders_self *self = arg;
    orders__executor *x = &self->saga;

    cl_thread_background("orders", "sweeper");
    while (pause_ms(self, self->renew_ms)) {
        int64_t room;
        int n = 0;
        cl_error err = {0};

        pthread_mutex_lock(&x->mu);
        room = (int64_t)x->nthreads - (int64_t)x->qlen;
        pthread_mutex_unlock(&x->mu);
        if (room <= 0) {
            continue;
        }
        if (queue_in_flight(self, room, &n, &err) != CL_OK) {
            cl_log_warn("orders", "looking for sagas to take over: %s", err.message);
        } else if (n > 0) {
            cl_log_info("orders", "taking over %d checkout saga%s whose lease lapsed", n,
                        n == 1 ? "" : "s");
        }
    }
    return NULL;
}

/* Frees every queued order id; the caller holds x->mu or runs alone. */
static void drop_queue(orders__executor *x)
{
    while (x->head != NULL) {
        qnode *n = x->head;
        x->head = n->next;
        qnode_free(n);
    }
    x->tail = NULL;
    x->qlen = 0;
}

cl_status orders__saga_init(struct orders_self *self, cl_error *err)
{
    orders__executor *x = &self->saga;

    char hex[CL_RANDOM_HEX_SIZE];

    /*
     * The host's id (a restarted process takes back its predecessor's leases) and a
     * random part: each process, each instance, is another executor with leases of its own.
     */
    cl_random_hex(hex);
    snprintf(x->id, sizeof(x->id), "%s/%s", x->host, hex);
    if (pthread_mutex_init(&x->mu, NULL) != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the saga executor");
    }
    /* pause_ms waits on a deadline of the monotonic clock. */
    if (cl_cond_init_monotonic(&x->cv) != 0) {
        pthread_mutex_destroy(&x->mu);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the saga executor");
    }
    if (pthread_cond_init(&x->work, NULL) != 0) {
        pthread_cond_destroy(&x->cv);
        pthread_mutex_destroy(&x->mu);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the saga executor");
    }
    return CL_OK;
}

void orders__saga_fini(struct orders_self *self)
{
    orders__executor *x = &self->saga;

    drop_queue(x);
    pthread_cond_destroy(&x->work);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
}

cl_status orders__saga_start(struct orders_self *self, cl_error *err)
{
    orders__executor *x = &self->saga;
    cl_status rc;

    if (x->running) {
        return CL_OK;
    }
    int n = 0;

    x->stopping = false;
    memset(x->active, 0, sizeof(x->active));
    rc = queue_in_flight(self, QUEUE_MAX, &n, err);
    if (rc != CL_OK) {
        drop_queue(x);
        return rc;
    }
    if (n > 0) {
        cl_log_info("orders", "resuming %d checkout saga%s", n, n == 1 ? "" : "s");
    }
    x->running = true;
    for (x->nthreads = 0; x->nthreads < self->workers && x->nthreads < ORDERS__MAX_WORKERS;
         x->nthreads++) {
        if (pthread_create(&x->threads[x->nthreads], NULL, worker, self) != 0) {
            orders__saga_stop(self);
            return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the saga workers");
        }
    }
    if (pthread_create(&x->sweeper, NULL, sweeper, self) != 0) {
        orders__saga_stop(self);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the saga sweeper");
    }
    x->sweeping = true;
    return CL_OK;
}

void orders__saga_stop(struct orders_self *self)
{
    orders__executor *x = &self->saga;

    if (!x->running) {
        return;
    }
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    pthread_cond_broadcast(&x->cv);
    pthread_cond_broadcast(&x->work);
    /* A get_order waiting for a saga's end answers now: no saga ends here any more. */
    for (orders__waiter *w = x->waiters; w != NULL; w = w->next) {
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->nthreads; i++) {
        pthread_join(x->threads[i], NULL);
    }
    x->nthreads = 0;
    if (x->sweeping) {
        pthread_join(x->sweeper, NULL);
        x->sweeping = false;
    }
    pthread_mutex_lock(&x->mu);
    /* Sagas on their placers' threads stop at their next pause, as the workers' did. */
    while (x->running_here > 0) {
        pthread_cond_wait(&x->cv, &x->mu);
    }
    drop_queue(x);
    x->running = false;
    pthread_mutex_unlock(&x->mu);
}
