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
    orders_order o;           /* as loaded (no history) */
    step next;
    char reason[48];
    char pay_id[ORDERS__ID_SIZE + 8];
    char got[24];     /* status of the last successful call's resource */
    char detail[400]; /* of the last failed call */
    cl_ctx *trace;    /* its trace context: the checkout's, current span the step's */
} saga;

typedef struct orders__qnode {
    struct orders__qnode *next;
    char id[ORDERS__ID_SIZE];
    char traceparent[CL_TRACEPARENT_SIZE]; /* the checkout's, or "" (a resumed saga) */
} qnode;

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

void orders__saga_enqueue(struct orders_self *self, const char *id, const cl_ctx *ctx)
{
    orders__executor *x = &self->saga;
    qnode *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        cl_log_error("orders", "out of memory: order %s resumes at the next start", id);
        return;
    }
    cl_strlcpy(n->id, id, sizeof(n->id));
    if (ctx != NULL) {
        (void)cl_trace_format(ctx, n->traceparent);
    }
    pthread_mutex_lock(&x->mu);
    if (x->tail != NULL) {
        x->tail->next = n;
    } else {
        x->head = n;
    }
    x->tail = n;
    x->qlen++;
    pthread_cond_broadcast(&x->cv);
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
 * Exponential backoff with full jitter, the platform's one retry policy (cleave/retry.h);
 * attempt counts from 0 here, from 1 in cl_retry_backoff_ms.
 */
static int64_t backoff_ms(int attempt)
{
    return cl_retry_backoff_ms(BACKOFF_BASE, BACKOFF_MAX, attempt + 1);
}

/* --- persisting ------------------------------------------------------------------------ */

static const char sql_advance[] =
    "UPDATE orders SET step = ?, status = ?, reason = COALESCE(?, reason), updated_at = ? "
    "WHERE id = ?";

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

/*
 * Records, in one transaction, that the saga moves to next with status (reason, when not
 * NULL, is set), the log entry (log_step, outcome, detail) and, when confirming, the
 * event. Retries until the database takes it; false when the executor stops first.
 */
static bool persist(saga *s, step next, const char *status, const char *reason,
                    const char *log_step, const char *outcome, const char *detail)
{
    for (int attempt = 0;; attempt++) {
        cl_db_conn *conn = NULL;
        cl_stmt *st;
        char now[32];
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        cl_trace_inherit(&ctx, s->trace);
        cl_strlcpy(ctx.request_id, s->o.id, sizeof(ctx.request_id));
        cl_now_rfc3339(now);
        rc = cl_db_acquire(s->self->db, &ctx, &conn, &ctx.err);
        if (rc == CL_OK) {
            rc = cl_db_begin(conn, &ctx.err);
        }
        if (rc == CL_OK) {
            rc = cl_db_prepare_bind(&ctx, conn, sql_advance, &st, "sssss", step_names[next], status,
                                    reason, now, s->o.id);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx.err);
        }
        if (rc == CL_OK) {
            rc = orders__log(&ctx, conn, s->o.id, log_step, outcome, detail);
        }
        if (rc == CL_OK && next == S_DONE && strcmp(status, "confirmed") == 0) {
            rc = publish_confirmed(s->self, &ctx, conn, &s->o);
        }
        if (rc == CL_OK) {
            rc = cl_db_commit(conn, &ctx.err);
        }
        cl_db_release(conn);
        if (rc == CL_OK) {
            s->next = next;
            return true;
        }
        cl_log_warn("orders", "order %s: recording step %s failed: %s", s->o.id, log_step,
                    ctx.err.message);
        if (!pause_ms(s->self, backoff_ms(attempt))) {
            return false;
        }
    }
}

/* A log entry alone (a step that is retrying); best effort. */
static void note(saga *s, const char *log_step, const char *outcome, const char *detail)
{
    cl_db_conn *conn = NULL;
    cl_ctx ctx;

    cl_ctx_init(&ctx, 5000);
    if (cl_db_acquire(s->self->db, &ctx, &conn, &ctx.err) == CL_OK &&
        orders__log(&ctx, conn, s->o.id, log_step, outcome, detail) != CL_OK) {
        cl_log_warn("orders", "order %s: %s", s->o.id, ctx.err.message);
    }
    cl_db_release(conn);
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
 * the executor stopped meanwhile.
 */
static bool call(saga *s, step st, int64_t budget_ms, call_fn fn, cl_status *out, cl_error *err)
{
    int64_t started = cl_now_ms();
    bool noted = false;

    for (int attempt = 0;; attempt++) {
        cl_ctx ctx;
        cl_status rc;

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
            note(s, step_names[st], "retrying", s->detail);
            noted = true;
        }
        if (budget_ms != FOREVER && cl_now_ms() - started >= budget_ms) {
            return true;
        }
        if (!pause_ms(s->self, backoff_ms(attempt))) {
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

    switch (s->next) {
    case S_RESERVE:
        if (!call(s, S_RESERVE, s->self->step_timeout_ms, call_reserve, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point(s, "orders.after-reserve");
            if (strcmp(s->got, "reserved") == 0 || strcmp(s->got, "committed") == 0) {
                return persist(s, S_AUTHORIZE, "pending", NULL, "reserve", "ok", s->got);
            }
            snprintf(s->detail, sizeof(s->detail), "the reservation is %s", s->got);
            return compensate(s, S_RELEASE, "reservation_expired", S_RESERVE);
        }
        return compensate(s, S_RELEASE,
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
            return persist(s, S_CAPTURE, "pending", NULL, "commit", "ok", s->got);
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
            return persist(s, S_CONFIRM, "pending", NULL, "capture", "ok", s->got);
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

/* Runs order id's saga from its recorded step to a final state, or until stop. */
static void run(struct orders_self *self, const char *id, const char *traceparent)
{
    saga s;
    int attempt = 0;
    cl_ctx trace;

    memset(&s, 0, sizeof(s));
    s.self = self;
    /* The checkout's trace goes on in the saga's steps (a resumed saga starts its own). */
    cl_ctx_init(&trace, 0);
    cl_trace_enter(&trace, traceparent, NULL);
    s.trace = &trace;
    for (;;) {
        cl_db_conn *conn = NULL;
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        rc = cl_db_acquire(self->db, &ctx, &conn, &ctx.err);
        if (rc == CL_OK) {
            rc = orders__load(&ctx, conn, id, false, NULL, &s.o);
        }
        cl_db_release(conn);
        if (rc == CL_OK) {
            break;
        }
        if (rc == CL_NOT_FOUND) {
            cl_log_error("orders", "order %s vanished from the saga queue", id);
            return;
        }
        if (!pause_ms(self, backoff_ms(attempt++))) {
            return;
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
    for (bool go = true; go && s.next != S_DONE;) {
        char name[CL_SPAN_NAME_MAX];
        cl_span span;

        snprintf(name, sizeof(name), "orders.checkout %s", step_names[s.next]);
        cl_span_start(&span, &trace, CL_SPAN_INTERNAL, name);
        go = run_step(&s);
        cl_span_end(&span);
    }
    cl_schema_free(&orders_order_type, &s.o);
}

static void *worker(void *arg)
{
    struct orders_self *self = arg;
    orders__executor *x = &self->saga;

    pthread_mutex_lock(&x->mu);
    while (!x->stopping) {
        qnode *n = x->head;

        if (n == NULL) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        x->head = n->next;
        if (x->head == NULL) {
            x->tail = NULL;
        }
        x->qlen--;
        pthread_mutex_unlock(&x->mu);
        run(self, n->id, n->traceparent);
        free(n);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* --- start and stop -------------------------------------------------------------------- */

static const char sql_in_flight[] =
    "SELECT id FROM orders WHERE status IN ('pending', 'compensating') ORDER BY seq";

/* Queues every order whose saga is not final: they resume where they stopped. */
static cl_status queue_in_flight(struct orders_self *self, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    int n = 0;
    cl_ctx ctx;
    cl_status rc;

    cl_ctx_init(&ctx, 10000);
    rc = cl_db_acquire(self->db, &ctx, &conn, &ctx.err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(&ctx, conn, sql_in_flight, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx.err);
    }
    while (rc == CL_OK && row) {
        orders__saga_enqueue(self, cl_stmt_text(st, 0), NULL);
        n++;
        rc = cl_stmt_step(st, &row, &ctx.err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        *err = ctx.err;
        return rc;
    }
    if (n > 0) {
        cl_log_info("orders", "resuming %d checkout saga%s", n, n == 1 ? "" : "s");
    }
    return CL_OK;
}

/* Frees every queued order id; the caller holds x->mu or runs alone. */
static void drop_queue(orders__executor *x)
{
    while (x->head != NULL) {
        qnode *n = x->head;
        x->head = n->next;
        free(n);
    }
    x->tail = NULL;
    x->qlen = 0;
}

cl_status orders__saga_init(struct orders_self *self, cl_error *err)
{
    orders__executor *x = &self->saga;

    if (pthread_mutex_init(&x->mu, NULL) != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the saga executor");
    }
    /* pause_ms waits on a deadline of the monotonic clock. */
    if (cl_cond_init_monotonic(&x->cv) != 0) {
        pthread_mutex_destroy(&x->mu);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the saga executor");
    }
    return CL_OK;
}

void orders__saga_fini(struct orders_self *self)
{
    orders__executor *x = &self->saga;

    drop_queue(x);
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
    x->stopping = false;
    rc = queue_in_flight(self, err);
    if (rc != CL_OK) {
        drop_queue(x);
        return rc;
    }
    x->running = true;
    for (x->nthreads = 0; x->nthreads < self->workers && x->nthreads < ORDERS__MAX_WORKERS;
         x->nthreads++) {
        if (pthread_create(&x->threads[x->nthreads], NULL, worker, self) != 0) {
            orders__saga_stop(self);
            return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the saga workers");
        }
    }
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
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->nthreads; i++) {
        pthread_join(x->threads[i], NULL);
    }
    x->nthreads = 0;
    pthread_mutex_lock(&x->mu);
    drop_queue(x);
    x->running = false;
    pthread_mutex_unlock(&x->mu);
}
