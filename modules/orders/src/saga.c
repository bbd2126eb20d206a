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
#include "cleave/util.h"
#include "internal.h"

#define QUEUE_MAX    10000
#define MAX_WORKERS  64
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
    orders_order o; /* as loaded (no history) */
    step next;
    char reason[48];
    char pay_id[ORDERS__ID_SIZE + 8];
    char got[24];     /* status of the last successful call's resource */
    char detail[400]; /* of the last failed call */
} saga;

typedef struct qnode {
    struct qnode *next;
    char id[ORDERS__ID_SIZE];
} qnode;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static qnode *head, *tail;
static size_t qlen;
static bool running, stopping;
static pthread_t threads[MAX_WORKERS];
static int nthreads;

/* --- the queue ----------------------------------------------------------------------- */

bool orders__saga_accepting(void)
{
    bool ok;

    pthread_mutex_lock(&mu);
    ok = running && !stopping && qlen < QUEUE_MAX;
    pthread_mutex_unlock(&mu);
    return ok;
}

void orders__saga_enqueue(const char *id)
{
    qnode *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        cl_log_error("orders", "out of memory: order %s resumes at the next start", id);
        return;
    }
    cl_strlcpy(n->id, id, sizeof(n->id));
    pthread_mutex_lock(&mu);
    if (tail != NULL) {
        tail->next = n;
    } else {
        head = n;
    }
    tail = n;
    qlen++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits ms unless the executor stops first; false when it stops. */
static bool pause_ms(int64_t ms)
{
    struct timespec until = cl_deadline_in(ms);
    bool go;

    pthread_mutex_lock(&mu);
    while (!stopping && pthread_cond_timedwait(&cv, &mu, &until) == 0) {
    }
    go = !stopping;
    pthread_mutex_unlock(&mu);
    return go;
}

/* Exponential backoff with jitter; attempt counts from 0 here, from 1 in cl_backoff_ms. */
static int64_t backoff_ms(int attempt)
{
    return cl_backoff_ms(BACKOFF_BASE, BACKOFF_MAX, attempt + 1);
}

/* --- persisting ------------------------------------------------------------------------ */

static const char sql_advance[] =
    "UPDATE orders SET step = ?, status = ?, reason = COALESCE(?, reason), updated_at = ? "
    "WHERE id = ?";

/* orders.order_confirmed {order_id, account_id, lines[{sku, quantity}], total}. */
static cl_status publish_confirmed(cl_ctx *ctx, cl_db_conn *conn, const orders_order *o)
{
    json_t *lines = json_array(), *payload;
    char key[ORDERS__ID_SIZE + 8];
    cl_status rc;

    for (size_t i = 0; lines != NULL && i < o->lines.n; i++) {
        if (json_array_append_new(lines,
                                  json_pack("{s:s,s:I}", "sku", o->lines.v[i].sku, "quantity",
                                            (json_int_t)o->lines.v[i].quantity)) != 0) {
            json_decref(lines);
            lines = NULL;
        }
    }
    payload = lines != NULL
                  ? json_pack("{s:s,s:s,s:o,s:{s:I,s:s}}", "order_id", o->id, "account_id",
                              o->account_id, "lines", lines, "total", "amount",
                              (json_int_t)o->total.amount, "currency", o->total.currency)
                  : NULL;
    if (payload == NULL) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    snprintf(key, sizeof(key), "order:%s", o->id);
    rc = cl_bus_publish(conn, ctx, "orders.order_confirmed", key, payload, &ctx->err);
    json_decref(payload);
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
        cl_strlcpy(ctx.request_id, s->o.id, sizeof(ctx.request_id));
        cl_now_rfc3339(now);
        rc = cl_db_acquire(orders__deps.db, &ctx, &conn, &ctx.err);
        if (rc == CL_OK) {
            rc = cl_db_begin(conn, &ctx.err);
        }
        if (rc == CL_OK) {
            rc = cl_db_prepare_bind(&ctx, conn, sql_advance, &st, "sssss", step_names[next], status,
                                    reason, now, s->o.id);
        }
        if (rc == CL_OK) {
            rc = orders__drain(&ctx, st);
        }
        if (rc == CL_OK) {
            rc = orders__log(&ctx, conn, s->o.id, log_step, outcome, detail);
        }
        if (rc == CL_OK && next == S_DONE && strcmp(status, "confirmed") == 0 &&
            orders__deps.bus != NULL) {
            rc = publish_confirmed(&ctx, conn, &s->o);
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
        if (!pause_ms(backoff_ms(attempt))) {
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
    if (cl_db_acquire(orders__deps.db, &ctx, &conn, &ctx.err) == CL_OK &&
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
    rc = orders__deps.inventory->reserve(ctx, &req, &r);
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
    rc = orders__deps.payments->authorize_payment(ctx, &req, &p);
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
    cl_status rc = commit ? orders__deps.inventory->commit(ctx, &ref, &r)
                          : orders__deps.inventory->release(ctx, &ref, &r);

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
    cl_status rc = capture ? orders__deps.payments->capture_payment(ctx, &ref, &p)
                           : orders__deps.payments->void_payment(ctx, &ref, &p);

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

        cl_ctx_init(&ctx, orders__deps.call_timeout_ms);
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
        if (!pause_ms(backoff_ms(attempt))) {
            return false;
        }
    }
}

static void crash_point(const char *point)
{
    cl_bus_crash_point(orders__deps.bus, point);
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
        if (!call(s, S_RESERVE, orders__deps.step_timeout_ms, call_reserve, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point("orders.after-reserve");
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
        if (!call(s, S_AUTHORIZE, orders__deps.step_timeout_ms, call_authorize, &rc, &err)) {
            return false;
        }
        if (rc == CL_OK) {
            crash_point("orders.after-authorize");
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
            crash_point("orders.after-commit");
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
            crash_point("orders.after-capture");
            return persist(s, S_CONFIRM, "pending", NULL, "capture", "ok", s->got);
        }
        /*
         * Voided behind the saga's back after the stock was sold: nothing can give the
         * stock back (commit has no inverse), so the order ends rejected and says why.
         */
        cl_log_error("orders", "order %s: capture failed after commit: %s", s->o.id, s->detail);
        return persist(s, S_DONE, "rejected", "payment_voided", "capture", "failed", s->detail);
    case S_CONFIRM:
        crash_point("orders.before-confirm");
        return persist(s, S_DONE, "confirmed", NULL, "confirm", "ok", "orders.order_confirmed");
    case S_VOID:
        if (!call(s, S_VOID, FOREVER, call_void, &rc, &err)) {
            return false;
        }
        crash_point("orders.after-void");
        ok = rc == CL_OK || rc == CL_NOT_FOUND;
        return persist(s, S_RELEASE, "compensating", NULL, "void", ok ? "ok" : "failed",
                       rc == CL_OK          ? s->got
                       : rc == CL_NOT_FOUND ? "no payment was held"
                                            : s->detail);
    case S_RELEASE:
        if (!call(s, S_RELEASE, FOREVER, call_release, &rc, &err)) {
            return false;
        }
        crash_point("orders.after-release");
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
static void run(const char *id)
{
    saga s;
    int attempt = 0;

    memset(&s, 0, sizeof(s));
    for (;;) {
        cl_db_conn *conn = NULL;
        cl_ctx ctx;
        cl_status rc;

        cl_ctx_init(&ctx, 10000);
        rc = cl_db_acquire(orders__deps.db, &ctx, &conn, &ctx.err);
        if (rc == CL_OK) {
            rc = orders__load(&ctx, conn, id, false, &s.o);
        }
        cl_db_release(conn);
        if (rc == CL_OK) {
            break;
        }
        if (rc == CL_NOT_FOUND) {
            cl_log_error("orders", "order %s vanished from the saga queue", id);
            return;
        }
        if (!pause_ms(backoff_ms(attempt++))) {
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
    while (s.next != S_DONE && run_step(&s)) {
    }
    cl_schema_free(&orders_order_type, &s.o);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        qnode *n = head;

        if (n == NULL) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        head = n->next;
        if (head == NULL) {
            tail = NULL;
        }
        qlen--;
        pthread_mutex_unlock(&mu);
        run(n->id);
        free(n);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* --- start and stop -------------------------------------------------------------------- */

static const char sql_in_flight[] =
    "SELECT id FROM orders WHERE status IN ('pending', 'compensating') ORDER BY seq";

/* Queues every order whose saga is not final: they resume where they stopped. */
static cl_status queue_in_flight(cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    int n = 0;
    cl_ctx ctx;
    cl_status rc;

    cl_ctx_init(&ctx, 10000);
    rc = cl_db_acquire(orders__deps.db, &ctx, &conn, &ctx.err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(&ctx, conn, sql_in_flight, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx.err);
    }
    while (rc == CL_OK && row) {
        orders__saga_enqueue(cl_stmt_text(st, 0));
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

cl_status orders__saga_start(cl_error *err)
{
    cl_status rc;

    if (running) {
        return CL_OK;
    }
    /* pause_ms waits on a deadline of the monotonic clock. */
    if (cl_cond_init_monotonic(&cv) != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the saga workers");
    }
    stopping = false;
    rc = queue_in_flight(err);
    if (rc != CL_OK) {
        pthread_cond_destroy(&cv);
        return rc;
    }
    running = true;
    for (nthreads = 0; nthreads < orders__deps.workers && nthreads < MAX_WORKERS; nthreads++) {
        if (pthread_create(&threads[nthreads], NULL, worker, NULL) != 0) {
            orders__saga_stop();
            return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the saga workers");
        }
    }
    return CL_OK;
}

void orders__saga_stop(void)
{
    if (!running) {
        return;
    }
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    nthreads = 0;
    while (head != NULL) {
        qnode *n = head;
        head = n->next;
        free(n);
    }
    tail = NULL;
    qlen = 0;
    pthread_cond_destroy(&cv);
    running = false;
}
