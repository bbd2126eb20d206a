/*
 * The orders module's local binding: orders over its own database, and the module's
 * lifecycle (the saga executor runs in saga.c).
 *
 * place_order prices the lines through the catalog, then records the order, its lines
 * and the first saga log entry in one transaction, and hands the order to the executor
 * after the commit: the 202 answer never waits for inventory or payments.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/log.h"
#include "cleave/trace.h"
#include "cleave/util.h"
#include "internal.h"

CL_LOCAL_DEFINE(orders, ORDERS_OPERATIONS, ORDERS_OPS_VERSION)

/* --- SQL (static storage: the statement cache is keyed by the text's address) --------- */

/*
 * A new order is leased to the executor of the instance that placed it (epoch 0: its
 * worker's acquisition makes it 1), so that no other host's sweeper queues it while it
 * waits in this instance's queue; should this host die, the lease lapses and another
 * host's sweeper takes the saga over (ADR 0034).
 */
#define SQL_INSERT_ORDER(now)                                                                      \
    "INSERT INTO orders (id, account_id, status, step, total_amount, currency, created_at, "       \
    "updated_at, principal, lease_owner, lease_host, lease_until, lease_epoch) "                   \
    "VALUES (?, ?, 'pending', 'reserve', ?, ?, ?, ?, ?, ?, ?, " now " + ?, 0)"
static const char sql_insert_order[] = SQL_INSERT_ORDER(ORDERS__NOW_SQLITE);
static const char sql_insert_order_pg[] = SQL_INSERT_ORDER(ORDERS__NOW_PG);
static const char sql_insert_line[] =
    "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_amount, currency) "
    "VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_get_order[] =
    "SELECT id, account_id, status, step, reason, total_amount, currency, created_at, "
    "updated_at, principal FROM orders WHERE id = ?";
static const char sql_get_lines[] = "SELECT sku, quantity, unit_amount, currency "
                                    "FROM order_lines WHERE order_id = ? ORDER BY line_no";
static const char sql_get_log[] =
    "SELECT step, outcome, detail, at FROM saga_log WHERE order_id = ? ORDER BY seq";
/* A key is the caller's, for one account: see migrations/orders/0002_idempotency_scope. */
static const char sql_by_key[] =
    "SELECT order_id, request FROM order_idempotency WHERE principal = ? "
    "AND operation = 'place_order' AND resource = ? AND idem_key = ?";
static const char sql_put_key[] =
    "INSERT INTO order_idempotency (principal, operation, resource, idem_key, request, order_id) "
    "VALUES (?, 'place_order', ?, ?, ?, ?)";
/*
 * The next seq from a scalar subquery in VALUES: an INSERT ... SELECT from its own table
 * makes SQLite gather the rows in a temporary B-tree first, at every entry.
 */
static const char sql_log[] =
    "INSERT INTO saga_log (order_id, seq, step, outcome, detail, at, executor, epoch) "
    "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_log WHERE order_id = ?), "
    "?, ?, ?, ?, ?, ?)";
static const char sql_page[] = "SELECT id, seq FROM orders WHERE seq > ? ORDER BY seq LIMIT ?";
static const char sql_page_status[] =
    "SELECT id, seq FROM orders WHERE status = ? AND seq > ? ORDER BY seq LIMIT ?";
/* An own_only caller's pages: its orders only (0003_order_principal.sql). */
static const char sql_page_mine[] =
    "SELECT id, seq FROM orders WHERE principal = ? AND seq > ? ORDER BY seq LIMIT ?";
static const char sql_page_mine_status[] = "SELECT id, seq FROM orders WHERE principal = ? "
                                           "AND status = ? AND seq > ? ORDER BY seq LIMIT ?";

/* --- helpers ---------------------------------------------------------------------- */

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static bool dup_col(cl_stmt *st, int col, char **out)
{
    const char *s = cl_stmt_text(st, col);

    *out = cl_strdup(s);
    return s == NULL || *out != NULL;
}

cl_status orders__log(cl_ctx *ctx, cl_db_conn *conn, const char *id, const orders__fence *fence,
                      const char *step, const char *outcome, const char *detail)
{
    char now[32];
    cl_stmt *st;
    cl_status rc;

    cl_now_rfc3339(now);
    rc = cl_db_prepare_bind(ctx, conn, sql_log, &st, "sssssssi", id, id, step, outcome, detail, now,
                            fence != NULL ? fence->owner : NULL,
                            fence != NULL ? fence->epoch : (int64_t)0);
    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

static cl_status load_lines(cl_ctx *ctx, cl_db_conn *conn, orders_order *o)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_lines, &st, "s", o->id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        orders_line *l = CL_LIST_PUSH(o->lines);

        if (l == NULL || !dup_col(st, 0, &l->sku) || !dup_col(st, 3, &l->unit_price.currency) ||
            !dup_col(st, 3, &l->line_total.currency)) {
            return oom(ctx);
        }
        l->quantity = cl_stmt_i64(st, 1);
        l->unit_price.amount = cl_stmt_i64(st, 2);
        l->line_total.amount = l->unit_price.amount * l->quantity; /* checked when placed */
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    return rc;
}

static cl_status load_history(cl_ctx *ctx, cl_db_conn *conn, orders_order *o)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_log, &st, "s", o->id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        orders_saga_entry *e = CL_LIST_PUSH(o->history);

        if (e == NULL || !dup_col(st, 0, &e->step) || !dup_col(st, 1, &e->outcome) ||
            !dup_col(st, 2, &e->detail) || !dup_col(st, 3, &e->at)) {
            return oom(ctx);
        }
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    return rc;
}

/*
 * The principal whose orders an own_only caller sees (ADR 0025): its
 * own, or, without a principal, none (no order has the empty principal: see insert).
 * NULL for every other caller: no object-level restriction.
 */
static const char *only_of(const cl_ctx *ctx)
{
    return ctx->own_only ? ctx->principal : NULL;
}

cl_status orders__load(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool history,
                       const char *owner, orders_order *out)
{
    orders_order o = {0};
    cl_stmt *st;
    bool row = false;
    char pay[ORDERS__ID_SIZE + 8];
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_order, &st, "s", id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    /* Another principal's order is answered exactly as one that does not exist. */
    if (rc == CL_OK && row && owner != NULL &&
        (cl_stmt_null(st, 9) || strcmp(cl_stmt_text(st, 9), owner) != 0)) {
        row = false;
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "id", "order %s does not exist", id);
    }
    if (rc == CL_OK) {
        if (!dup_col(st, 0, &o.id) || !dup_col(st, 1, &o.account_id) ||
            !dup_col(st, 2, &o.status) || !dup_col(st, 3, &o.step) || !dup_col(st, 4, &o.reason) ||
            !dup_col(st, 6, &o.total.currency) || !dup_col(st, 7, &o.created_at) ||
            !dup_col(st, 8, &o.updated_at)) {
            rc = oom(ctx);
        }
        o.total.amount = cl_stmt_i64(st, 5);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        snprintf(pay, sizeof(pay), "pay-%s", o.id);
        o.payment_id = cl_strdup(pay);
        rc = o.payment_id != NULL ? load_lines(ctx, conn, &o) : oom(ctx);
    }
    if (rc == CL_OK && history) {
        rc = load_history(ctx, conn, &o);
    }
    if (rc != CL_OK) {
        cl_schema_free(&orders_order_type, &o);
        return rc;
    }
    *out = o;
    return CL_OK;
}

static cl_status acquire(struct orders_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire(self->db, ctx, conn, &ctx->err);
}

/* --- validation ------------------------------------------------------------------- */

static bool valid_chars(const char *s, size_t max, const char *extra, bool lower)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > max) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  (lower && *p >= 'a' && *p <= 'z') || strchr(extra, *p) != NULL;
        if (!ok) {
            return false;
        }
    }
    return true;
}

static cl_status check_input(cl_ctx *ctx, const orders_order_input *in)
{
    char field[48];

    if (!valid_chars(in->account_id, ORDERS_ID_MAX, "_.:-", true)) {
        return cl_fail(ctx, CL_INVALID, "account_id",
                       "account_id must be 1-%d of A-Z a-z 0-9 _ . : -", ORDERS_ID_MAX);
    }
    if (in->lines.n == 0 || in->lines.n > ORDERS_MAX_LINES) {
        return cl_fail(ctx, CL_INVALID, "lines", "an order has 1-%d lines", ORDERS_MAX_LINES);
    }
    for (size_t i = 0; i < in->lines.n; i++) {
        const orders_line_input *l = &in->lines.v[i];

        snprintf(field, sizeof(field), "lines[%zu].sku", i);
        if (!valid_chars(l->sku, 64, "-", false)) {
            return cl_fail(ctx, CL_INVALID, field, "a SKU is 1-64 of A-Z 0-9 -");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(in->lines.v[j].sku, l->sku) == 0) {
                return cl_fail(ctx, CL_INVALID, field, "SKU %s is named twice", l->sku);
            }
        }
        if (l->quantity < 1 || l->quantity > ORDERS_MAX_QUANTITY) {
            snprintf(field, sizeof(field), "lines[%zu].quantity", i);
            return cl_fail(ctx, CL_INVALID, field, "quantity must be 1-%d", ORDERS_MAX_QUANTITY);
        }
    }
    return CL_OK;
}

/* A call context for a dependency: the caller's trace, a deadline of its own. */
static void child_ctx(const struct orders_self *self, const cl_ctx *parent, cl_ctx *child)
{
    int64_t left = cl_ctx_remaining_ms(parent);
    int64_t t = self->call_timeout_ms;

    cl_ctx_init(child, left < t ? (left > 0 ? left : 1) : t);
    cl_strlcpy(child->request_id, parent->request_id, sizeof(child->request_id));
    cl_trace_inherit(child, parent);
    cl_strlcpy(child->principal, "service:orders", sizeof(child->principal));
}

/*
 * For an own_only caller: the account must be one payments show that caller, asked with
 * the caller's principal and own_only, so that payments alone say whose an account is.
 * Another's account is answered as one that does not exist: CL_NOT_FOUND naming
 * account_id. Other callers may order for any account (the saga rejects unknown ones).
 */
static cl_status check_account(struct orders_self *self, cl_ctx *ctx, const char *account_id)
{
    payments_account_ref ref = {.id = (char *)account_id, .history_limit = 1};
    payments_account acc = {0};
    cl_ctx call;
    cl_status rc;

    if (!ctx->own_only) {
        return CL_OK;
    }
    child_ctx(self, ctx, &call);
    /* With the user's token: a payments service elsewhere derives the principal from it. */
    cl_ctx_act_for(&call, ctx);
    /* A check of who may pay: an account opened a moment ago must not look absent. */
    call.read_primary = 1;
    rc = payments_get_account(self->payments, &call, &ref, &acc);
    cl_schema_free(&payments_account_type, &acc);
    if (rc == CL_NOT_FOUND) {
        return cl_fail(ctx, CL_NOT_FOUND, "account_id", "account %s does not exist", account_id);
    }
    if (rc != CL_OK) {
        ctx->err = call.err;
        if (rc == CL_INVALID) {
            /* account_id was checked: payments disagree, which is ours to fix. */
            ctx->err.status = CL_INTERNAL;
        }
        rc = ctx->err.status;
    }
    return rc;
}

/* Prices every line from the catalog into o (lines and total). */
static cl_status price(struct orders_self *self, cl_ctx *ctx, const orders_order_input *in,
                       orders_order *o)
{
    catalog_sku_query q = {0};
    catalog_product_list found = {0};
    cl_ctx call;
    char field[48];
    cl_status rc = CL_OK;

    q.skus.v = calloc(in->lines.n, sizeof(char *));
    if (q.skus.v == NULL) {
        return oom(ctx);
    }
    q.skus.n = in->lines.n;
    q.skus.set = true;
    for (size_t i = 0; i < in->lines.n; i++) {
        q.skus.v[i] = in->lines.v[i].sku; /* borrowed: freed by hand below */
    }
    child_ctx(self, ctx, &call);
    if (catalog_get_products_by_sku(self->catalog, &call, &q, &found) != CL_OK) {
        ctx->err = call.err;
        if (call.err.status == CL_NOT_FOUND && strncmp(call.err.field, "skus[", 5) == 0) {
            unsigned long i = strtoul(call.err.field + 5, NULL, 10);
            snprintf(ctx->err.field, sizeof(ctx->err.field), "lines[%lu].sku", i);
        } else if (call.err.status == CL_INVALID) {
            ctx->err.status = CL_INTERNAL; /* our request was checked: the catalog disagrees */
        }
        rc = ctx->err.status;
    }
    free(q.skus.v);
    if (rc != CL_OK) {
        return rc;
    }
    if (found.items.n != in->lines.n) {
        cl_schema_free(&catalog_product_list_type, &found);
        return cl_fail(ctx, CL_INTERNAL, NULL, "the catalog answered %zu of %zu SKUs",
                       found.items.n, in->lines.n);
    }
    for (size_t i = 0; rc == CL_OK && i < in->lines.n; i++) {
        const cl_money *p = &found.items.v[i].price;
        orders_line *l = CL_LIST_PUSH(o->lines);
        int64_t line_total;

        snprintf(field, sizeof(field), "lines[%zu].sku", i);
        if (l == NULL) {
            rc = oom(ctx);
        } else if (i > 0 && strcmp(p->currency, o->total.currency) != 0) {
            rc = cl_fail(ctx, CL_INVALID, field, "%s is priced in %s, the order in %s",
                         in->lines.v[i].sku, p->currency, o->total.currency);
        } else if (__builtin_mul_overflow(p->amount, in->lines.v[i].quantity, &line_total) ||
                   __builtin_add_overflow(o->total.amount, line_total, &o->total.amount)) {
            rc = cl_fail(ctx, CL_INVALID, field, "the order's total is too large");
        } else {
            l->sku = cl_strdup(in->lines.v[i].sku);
            l->quantity = in->lines.v[i].quantity;
            l->unit_price.amount = p->amount;
            l->unit_price.currency = cl_strdup(p->currency);
            l->line_total.amount = line_total;
            l->line_total.currency = cl_strdup(p->currency);
            if (i == 0) {
                o->total.currency = cl_strdup(p->currency);
            }
            if (l->sku == NULL || l->unit_price.currency == NULL ||
                l->line_total.currency == NULL || o->total.currency == NULL) {
                rc = oom(ctx);
            }
        }
    }
    cl_schema_free(&catalog_product_list_type, &found);
    return rc;
}

/*
 * With the caller's idempotency key already used for this account: CL_OK and *found set
 * when the same request made an order, the documented CL_CONFLICT when another one did.
 * CL_OK and *found false when unused.
 */
static cl_status by_key(cl_ctx *ctx, cl_db_conn *conn, const orders_order_input *req,
                        const char *request, char *id, bool *found)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    *found = false;
    rc = cl_db_prepare_bind(ctx, conn, sql_by_key, &st, "sss", ctx->principal, req->account_id,
                            ctx->idempotency_key);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        const char *was = cl_stmt_text(st, 1);
        if (was == NULL || strcmp(was, request) != 0) {
            rc = cl_idempotency_conflict(ctx);
        } else {
            cl_strlcpy(id, cl_stmt_text(st, 0), ORDERS__ID_SIZE);
            *found = true;
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

static cl_status insert(struct orders_self *self, cl_ctx *ctx, cl_db_conn *conn,
                        const orders_order *o, const char *request)
{
    orders__fence placed = {.owner = self->saga.id, .epoch = 0};
    const char *key = ctx->idempotency_key[0] != '\0' ? ctx->idempotency_key : NULL;
    char detail[160];
    cl_stmt *st;
    cl_status rc;

    /* The caller owns the order; an anonymous one makes it nobody's (NULL). */
    rc = cl_db_prepare_bind(ctx, conn, self->postgres ? sql_insert_order_pg : sql_insert_order, &st,
                            "ssissssssi", o->id, o->account_id, o->total.amount, o->total.currency,
                            o->created_at, o->updated_at,
                            ctx->principal[0] != '\0' ? ctx->principal : NULL, self->saga.id,
                            self->saga.host, self->lease_ms);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    /*
     * The key's row goes in with the order. Of two requests racing with one key, the
     * second's insert fails on the primary key (after the first commits): place_order
     * then answers from the first's row.
     */
    if (rc == CL_OK && key != NULL) {
        rc = cl_db_prepare_bind(ctx, conn, sql_put_key, &st, "sssss", ctx->principal, o->account_id,
                                key, request, o->id);
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
    }
    for (size_t i = 0; rc == CL_OK && i < o->lines.n; i++) {
        const orders_line *l = &o->lines.v[i];
        rc = cl_db_prepare_bind(ctx, conn, sql_insert_line, &st, "sisiis", o->id, (int64_t)i,
                                l->sku, l->quantity, l->unit_price.amount, l->unit_price.currency);
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
    }
    snprintf(detail, sizeof(detail), "%zu line%s, total %" PRId64 " %s", o->lines.n,
             o->lines.n == 1 ? "" : "s", o->total.amount, o->total.currency);
    return rc == CL_OK ? orders__log(ctx, conn, o->id, &placed, "place", "ok", detail) : rc;
}

/*
 * A keyed insert failed with a conflict: most likely another request with the same key
 * committed first. Its row, read after rolling back, decides: the same request is a
 * replay (*found), another is the documented conflict. Without a row the conflict was
 * something else, and stays the answer.
 */
static cl_status lost_race(cl_ctx *ctx, cl_db_conn *conn, const orders_order_input *req,
                           const char *request, char *id, bool *found)
{
    cl_error lost = ctx->err;
    cl_status rc;

    cl_db_rollback(conn);
    rc = by_key(ctx, conn, req, request, id, found);
    if (rc == CL_OK && !*found) {
        ctx->err = lost;
        rc = lost.status;
    }
    return rc;
}

/* --- operations ------------------------------------------------------------------- */

/* Order id as get_order answers it, with its history, into *resp (zeroed by the caller). */
static cl_status load_one(struct orders_self *self, cl_ctx *ctx, const char *id, orders_order *resp)
{
    cl_db_conn *conn = NULL;
    cl_status rc = acquire(self, ctx, &conn);

    if (rc == CL_OK) {
        rc = cl_db_begin_read(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = orders__load(ctx, conn, id, true, only_of(ctx), resp);
    }
    cl_db_release(conn);
    return rc;
}

static bool final(const orders_order *o)
{
    return strcmp(o->status, "confirmed") == 0 || strcmp(o->status, "rejected") == 0;
}

/*
 * How long a waiting get_order sleeps at most before it reads the order again: the saga may
 * run on another host (ADR 0034), whose end this executor does not hear of.
 */
#define RECHECK_MS 100

static cl_status orders_local_get_order(struct orders_self *self, cl_ctx *ctx,
                                        const orders_order_ref *req, orders_order *resp)
{
    orders__waiter w;
    int64_t wait_ms, until;
    cl_status rc;

    if (req->id == NULL || strlen(req->id) >= ORDERS__ID_SIZE) {
        return cl_fail(ctx, CL_NOT_FOUND, "id", "order %s does not exist",
                       req->id != NULL ? req->id : "");
    }
    if (req->wait_ms < 0) {
        return cl_fail(ctx, CL_INVALID, "wait_ms", "wait_ms must not be negative");
    }
    /* The answer must leave before the caller's deadline: the wait ends a little earlier. */
    wait_ms = req->wait_ms < ORDERS_MAX_WAIT_MS ? req->wait_ms : ORDERS_MAX_WAIT_MS;
    if (wait_ms > cl_ctx_remaining_ms(ctx) - RECHECK_MS) {
        wait_ms = cl_ctx_remaining_ms(ctx) - RECHECK_MS;
    }
    if (wait_ms <= 0) {
        return load_one(self, ctx, req->id, resp);
    }
    /*
     * Watched before the first read: a saga that ends between the read and the wait has
     * marked the waiter already, so its end is never missed.
     */
    rc = orders__saga_watch(self, &w, req->id, only_of(ctx), &ctx->err);
    if (rc != CL_OK) {
        return rc;
    }
    until = cl_now_ms() + wait_ms;
    /*
     * A saga in flight here is not final: its order is read once it ended (or RECHECK_MS
     * passed), not also before, for an answer that could only say "pending".
     */
    if (w.in_flight) {
        (void)orders__saga_await(self, &w, wait_ms < RECHECK_MS ? wait_ms : RECHECK_MS);
    }
    for (;;) {
        int64_t left;

        rc = load_one(self, ctx, req->id, resp);
        left = until - cl_now_ms();
        if (rc != CL_OK || final(resp) || left <= 0 ||
            !orders__saga_await(self, &w, left < RECHECK_MS ? left : RECHECK_MS)) {
            break;
        }
        cl_schema_free(&orders_order_type, resp);
    }
    orders__saga_unwatch(self, &w);
    return rc;
}

static cl_status orders_local_place_order(struct orders_self *self, cl_ctx *ctx,
                                          const orders_order_input *req, orders_order *resp)
{
    orders_order o = {0};
    cl_db_conn *conn = NULL;
    char id[ORDERS__ID_SIZE], now[32], *request = NULL;
    int64_t leased_ms = 0;
    bool found = false;
    cl_status rc;

    rc = check_input(ctx, req);
    if (rc != CL_OK) {
        return rc;
    }
    if (!orders__saga_accepting(self)) {
        return cl_fail(ctx, CL_UNAVAILABLE, NULL, "the checkout saga is not running");
    }
    /* Before a replay too: a key names no account the caller may no longer pay from. */
    rc = check_account(self, ctx, req->account_id);
    if (rc != CL_OK) {
        return rc;
    }
    request = cl_schema_dump(&orders_order_input_type, req, CL_DUMP_SORTED);
    if (request == NULL) {
        return oom(ctx);
    }
    rc = acquire(self, ctx, &conn);
    /* A replay of a keyed request returns its order before anything is priced again. */
    if (rc == CL_OK && ctx->idempotency_key[0] != '\0') {
        rc = by_key(ctx, conn, req, request, id, &found);
    }
    if (rc == CL_OK && found) {
        goto replay;
    }
    if (rc == CL_OK) {
        cl_db_release(conn); /* no connection held while the catalog answers */
        conn = NULL;
        rc = price(self, ctx, req, &o);
    }
    if (rc == CL_OK) {
        /*
         * "ord-" and 24 hex digits, the wall clock's ms and 48 random bits: unique without
         * coordination, across restarts, and in time order, so that the indexes keyed by
         * an order (its own, its lines', its saga log's, its payment's events and
         * reservation in the other modules) grow at their right edge (ADR 0056).
         */
        char hex[CL_RANDOM_HEX_SIZE];

        cl_time_ordered_hex(hex);
        snprintf(id, sizeof(id), "ord-%.24s", hex);
    }
    if (rc == CL_OK) {
        cl_now_rfc3339(now);
        o.id = cl_strdup(id);
        o.account_id = cl_strdup(req->account_id);
        o.created_at = cl_strdup(now);
        o.updated_at = cl_strdup(now);
        if (o.id == NULL || o.account_id == NULL || o.created_at == NULL || o.updated_at == NULL) {
            rc = oom(ctx);
        }
    }
    if (rc == CL_OK) {
        rc = acquire(self, ctx, &conn);
    }
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        /* Not later than the lease the insert gives this executor starts. */
        leased_ms = cl_now_ms();
        rc = insert(self, ctx, conn, &o, request);
    }
    /* Read back in the transaction (its pages are cached there): the order as placed. */
    if (rc == CL_OK) {
        rc = orders__load(ctx, conn, id, true, NULL, resp);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
        if (rc != CL_OK) {
            cl_schema_free(&orders_order_type, resp);
            memset(resp, 0, sizeof(*resp));
        }
    }
    if (rc == CL_CONFLICT && ctx->idempotency_key[0] != '\0') {
        rc = lost_race(ctx, conn, req, request, id, &found);
        if (rc == CL_OK && found) {
            goto replay;
        }
    }
    if (rc == CL_OK) {
        /* Test-only: the order is recorded, its saga not started yet (resumes at start). */
        cl_bus_crash_point(self->bus, "orders.after-place");
        cl_db_release(conn); /* the saga takes its own */
        conn = NULL;
        if (ctx->wait_ms <= 0) {
            orders__saga_enqueue(self, id, leased_ms, resp, ctx);
        } else {
            /*
             * The saga runs on this thread when it can (ADR 0058). Ended here, the answer is
             * the order as its last record left it, read in that record's transaction or
             * else read again; without either read (or not ended), the order as placed.
             */
            orders_order ended = {0};

            if (orders__saga_run_here(self, id, leased_ms, resp, ctx, &ended) &&
                (ended.id != NULL || load_one(self, ctx, id, &ended) == CL_OK)) {
                cl_schema_free(&orders_order_type, resp);
                *resp = ended;
            } else {
                cl_schema_free(&orders_order_type, &ended);
                cl_error_clear(&ctx->err);
            }
        }
    }
    goto out;
replay:
    rc = orders__load(ctx, conn, id, true, NULL, resp);
out:
    cl_db_release(conn);
    cl_schema_free(&orders_order_type, &o);
    free(request);
    return rc;
}

static cl_status parse_cursor(cl_ctx *ctx, const char *s, int64_t *out)
{
    char *end;
    long long v;

    *out = 0;
    if (s == NULL || s[0] == '\0') {
        return CL_OK;
    }
    v = strtoll(s, &end, 10);
    if (*end != '\0' || v < 0 || s[0] < '0' || s[0] > '9' || strlen(s) > 18) {
        return cl_fail(ctx, CL_INVALID, "cursor", "not a cursor of this list");
    }
    *out = v;
    return CL_OK;
}

static cl_status orders_local_list_orders(struct orders_self *self, cl_ctx *ctx,
                                          const orders_order_query *req, orders_order_page *resp)
{
    static const char *const statuses[] = {"pending", "compensating", "confirmed", "rejected"};
    orders_order_page page = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    char(*ids)[ORDERS__ID_SIZE] = NULL;
    int64_t after, limit = req->limit != 0 ? req->limit : ORDERS_DEFAULT_LIMIT, last = 0;
    bool row = false, known = req->status == NULL;
    size_t n = 0;
    cl_status rc;

    for (size_t i = 0; !known && i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        known = strcmp(req->status, statuses[i]) == 0;
    }
    if (!known) {
        return cl_fail(ctx, CL_INVALID, "status",
                       "status must be pending, compensating, confirmed or rejected");
    }
    if (limit < 1 || limit > ORDERS_MAX_LIMIT) {
        return cl_fail(ctx, CL_INVALID, "limit", "limit must be 1-%d", ORDERS_MAX_LIMIT);
    }
    rc = parse_cursor(ctx, req->cursor, &after);
    if (rc != CL_OK) {
        return rc;
    }
    ids = calloc((size_t)limit, sizeof(*ids));
    if (ids == NULL) {
        return oom(ctx);
    }
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK && only_of(ctx) != NULL) {
        rc = req->status != NULL ? cl_db_prepare_bind(ctx, conn, sql_page_mine_status, &st, "ssii",
                                                      ctx->principal, req->status, after, limit)
                                 : cl_db_prepare_bind(ctx, conn, sql_page_mine, &st, "sii",
                                                      ctx->principal, after, limit);
    } else if (rc == CL_OK) {
        rc = req->status != NULL ? cl_db_prepare_bind(ctx, conn, sql_page_status, &st, "sii",
                                                      req->status, after, limit)
                                 : cl_db_prepare_bind(ctx, conn, sql_page, &st, "ii", after, limit);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        cl_strlcpy(ids[n++], cl_stmt_text(st, 0), ORDERS__ID_SIZE);
        last = cl_stmt_i64(st, 1);
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    for (size_t i = 0; rc == CL_OK && i < n; i++) {
        orders_order *o = CL_LIST_PUSH(page.items);
        rc = o != NULL ? orders__load(ctx, conn, ids[i], false, NULL, o) : oom(ctx);
    }
    if (rc == CL_OK && (int64_t)n == limit) {
        char cur[24];
        snprintf(cur, sizeof(cur), "%" PRId64, last);
        page.next_cursor = cl_strdup(cur);
        rc = page.next_cursor != NULL ? CL_OK : oom(ctx);
    }
    cl_db_release(conn);
    free(ids);
    if (rc != CL_OK) {
        cl_schema_free(&orders_order_page_type, &page);
        return rc;
    }
    *resp = page;
    return CL_OK;
}

/* --- lifecycle -------------------------------------------------------------------- */

static void orders_destroy(void *arg)
{
    struct orders_self *self = arg;

    if (self == NULL) {
        return;
    }
    orders__saga_fini(self);
    free(self);
}

/* The modules the orders call, from the host; CL_INVALID naming what is missing. */
static cl_status find_deps(const cl_module_env *env, struct orders_self *self, cl_error *err)
{
    if (env->module != NULL) {
        self->catalog = env->module(env, "catalog");
        self->inventory = env->module(env, "inventory");
        self->payments = env->module(env, "payments");
    }
    if (self->catalog == NULL || self->inventory == NULL || self->payments == NULL) {
        return cl_error_set(err, CL_INVALID, NULL,
                            "orders need the catalog, inventory and payments");
    }
    if (((const catalog_ops *)self->catalog->ops)->version < 2) {
        return cl_error_set(err, CL_INVALID, NULL, "orders need catalog operations version 2");
    }
    return CL_OK;
}

static cl_status orders_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct orders_self *self;
    cl_status rc;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "orders need their database");
    }
    if (env->config == NULL) {
        return cl_error_set(err, CL_INVALID, "config", "orders need their configuration");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    rc = find_deps(env, self, err);
    if (rc != CL_OK) {
        free(self);
        return rc;
    }
    cl_config_host_id(env->config, self->saga.host, sizeof(self->saga.host));
    rc = orders__saga_init(self, err);
    if (rc != CL_OK) {
        free(self);
        return rc;
    }
    self->db = env->db;
    self->bus = env->bus;
    /* Declared in orders_api.c and validated in range when the configuration was loaded. */
    self->step_timeout_ms = cl_config_int(env->config, "CLEAVE_ORDERS_STEP_TIMEOUT_MS");
    self->call_timeout_ms = cl_config_int(env->config, "CLEAVE_ORDERS_CALL_TIMEOUT_MS");
    self->workers = (int)cl_config_int(env->config, "CLEAVE_ORDERS_WORKERS");
    self->lease_ms = cl_config_int(env->config, "CLEAVE_ORDERS_LEASE_MS");
    self->renew_ms = cl_config_int(env->config, "CLEAVE_ORDERS_LEASE_RENEW_MS");
    self->postgres = cl_db_is_postgres(env->db);
    self->serving = env->serving;
    if (self->renew_ms >= self->lease_ms) {
        /* A lease renewed no sooner than it lapses would be taken over from a live host. */
        orders_destroy(self);
        return cl_error_set(err, CL_INVALID, "CLEAVE_ORDERS_LEASE_RENEW_MS",
                            "CLEAVE_ORDERS_LEASE_RENEW_MS must be less than "
                            "CLEAVE_ORDERS_LEASE_MS");
    }
    *out = self;
    return CL_OK;
}

static cl_status orders_start(void *arg, cl_error *err)
{
    struct orders_self *self = arg;

    return self->serving ? orders__saga_start(self, err) : CL_OK;
}

static void orders_stop(void *arg)
{
    orders__saga_stop(arg);
}

const cl_module orders_module = {
    .abi = CL_MODULE_ABI,
    .name = "orders",
    .version = "1.0.0",
    .ops = &orders_local_ops,
    .create = orders_create,
    .start = orders_start,
    .stop = orders_stop,
    .destroy = orders_destroy,
    .api = &orders_api,
};
