/*
 * The inventory's local binding: stock and reservations over its own database.
 *
 * Every write runs in one transaction on one pooled connection. Stock moves only through
 * conditional updates ("... WHERE on_hand - reserved >= ?", rows changed counted), so that the
 * check and the change are one statement: on SQLite writers are serialised anyway
 * (BEGIN IMMEDIATE), on PostgreSQL the row lock of the UPDATE makes concurrent
 * reservations of one SKU queue, and in both a reservation that would overdraw a SKU
 * changes no row instead. The table's CHECK constraints are the last line of defence.
 * Outputs are built in locals and handed over only on CL_OK.
 */
#include "inventory/inventory.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "cleave/log.h"
#include "cleave/util.h"
#include "internal.h"

/* An instance of the inventory (cleave/module.h): everything it runs on. */
struct inventory_self {
    cl_db *db;           /* borrowed from the host for the instance's life */
    int64_t ttl_ms;      /* CLEAVE_INVENTORY_RESERVATION_TTL_MS */
    int64_t interval_ms; /* CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS */
    /*
     * The instance's own expiry sweeper, so that every instance gives back the stock of
     * its own database. mu guards stopping; cond wakes the sweeper when stop asks.
     */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t sweeper;
    bool running;  /* the sweeper thread exists (touched by start and stop only) */
    bool stopping; /* under mu */
};

CL_LOCAL_DEFINE(inventory, INVENTORY_OPERATIONS, INVENTORY_OPS_VERSION)

/* How many reservations one sweep transaction expires: keeps write transactions short. */
#define EXPIRY_BATCH 100

/* --- SQL (static storage: the statement cache is keyed by the text's address) --------- */

static const char sql_get_stock[] =
    "SELECT sku, on_hand, reserved, sold, updated_at FROM stock WHERE sku = ?";
/* Creates the SKU, or sets on_hand unless that would drop below what is reserved. */
static const char sql_set_stock[] =
    "INSERT INTO stock (sku, on_hand, reserved, sold, updated_at) VALUES (?, ?, 0, 0, ?) "
    "ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand, updated_at = excluded.updated_at "
    "WHERE stock.reserved <= excluded.on_hand";
/*
 * Opens the stock record of a SKU the catalog just created, with nothing on hand. A SKU
 * that already has a record keeps it untouched: the seed or a PUT may have set its stock
 * before the catalog's event arrived, and the event must never undo that.
 */
static const char sql_open_stock[] =
    "INSERT INTO stock (sku, on_hand, reserved, sold, updated_at) VALUES (?, 0, 0, 0, ?) "
    "ON CONFLICT (sku) DO NOTHING";
static const char sql_take[] = "UPDATE stock SET reserved = reserved + ?, updated_at = ? "
                               "WHERE sku = ? AND on_hand - reserved >= ?";
static const char sql_give_back[] =
    "UPDATE stock SET reserved = reserved - ?, updated_at = ? WHERE sku = ?";
static const char sql_sell[] =
    "UPDATE stock SET reserved = reserved - ?, on_hand = on_hand - ?, sold = sold + ?, "
    "updated_at = ? WHERE sku = ?";
static const char sql_get_reservation[] =
    "SELECT order_id, status, created_at, expires_at, updated_at, expires_at_ms "
    "FROM reservations WHERE order_id = ?";
static const char sql_get_lines[] =
    "SELECT sku, quantity FROM reservation_lines WHERE order_id = ? ORDER BY line_no";
static const char sql_insert_reservation[] =
    "INSERT INTO reservations (order_id, status, created_at, expires_at_ms, expires_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_insert_line[] =
    "INSERT INTO reservation_lines (order_id, line_no, sku, quantity) VALUES (?, ?, ?, ?)";
/* Moves a reservation out of 'reserved' only: no second transition can win. */
static const char sql_finish_reservation[] = "UPDATE reservations SET status = ?, updated_at = ? "
                                             "WHERE order_id = ? AND status = 'reserved'";
static const char sql_due[] = "SELECT order_id FROM reservations "
                              "WHERE status = 'reserved' AND expires_at_ms <= ? "
                              "ORDER BY expires_at_ms LIMIT ?";

/* --- small helpers -------------------------------------------------------------------- */

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static cl_status acquire(struct inventory_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire(self->db, ctx, conn, &ctx->err);
}

/* Steps st to its end; *rows (may be NULL) receives how many rows it returned. */
static bool valid_sku(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > INVENTORY_SKU_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static cl_status check_sku(cl_ctx *ctx, const char *sku, const char *field)
{
    if (!valid_sku(sku)) {
        return cl_fail(ctx, CL_INVALID, field, "%s must be 1-%d of A-Z, 0-9 and '-'", field,
                       INVENTORY_SKU_MAX);
    }
    return CL_OK;
}

static cl_status check_order_id(cl_ctx *ctx, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    bool ok = n > 0 && n <= INVENTORY_ORDER_ID_MAX;

    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == ':' || c == '-';
    }
    if (!ok) {
        return cl_fail(ctx, CL_INVALID, "order_id", "order_id must be 1-%d of A-Z, a-z, 0-9, _.:-",
                       INVENTORY_ORDER_ID_MAX);
    }
    return CL_OK;
}

/* --- stock ------------------------------------------------------------------------------ */

/* Reads the stock of sku into *s (zeroed by the caller); CL_NOT_FOUND naming field. */
static cl_status load_stock(cl_ctx *ctx, cl_db_conn *conn, const char *sku, const char *field,
                            inventory_stock *s)
{
    cl_stmt *st;
    bool row = false;
    bool found = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_stock, &st, "s", sku);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        found = true;
        s->on_hand = cl_stmt_i64(st, 1);
        s->reserved = cl_stmt_i64(st, 2);
        s->available = s->on_hand - s->reserved;
        s->sold = cl_stmt_i64(st, 3);
        s->sku = cl_strdup(cl_stmt_text(st, 0));
        s->updated_at = cl_strdup(cl_stmt_text(st, 4));
        if (s->sku == NULL || s->updated_at == NULL) {
            rc = oom(ctx);
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && !found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, field, "no stock is recorded for sku %s", sku);
    }
    return rc;
}

static cl_status inventory_local_get_stock(struct inventory_self *self, cl_ctx *ctx,
                                           const inventory_sku_ref *req, inventory_stock *resp)
{
    inventory_stock s = {0};
    cl_db_conn *conn = NULL;
    cl_status rc;

    rc = check_sku(ctx, req->sku, "sku");
    if (rc == CL_OK) {
        rc = acquire(self, ctx, &conn);
    }
    /* A single-row read needs no transaction (which would take SQLite's write lock). */
    if (rc == CL_OK) {
        rc = load_stock(ctx, conn, req->sku, "sku", &s);
    }
    if (rc == CL_OK) {
        *resp = s;
        memset(&s, 0, sizeof(s));
    }
    cl_db_release(conn);
    cl_schema_free(&inventory_stock_type, &s);
    return rc;
}

static cl_status inventory_local_set_stock(struct inventory_self *self, cl_ctx *ctx,
                                           const inventory_stock_set *req, inventory_stock *resp)
{
    inventory_stock s = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    char now[32];
    int rows = 0;
    cl_status rc;

    rc = check_sku(ctx, req->sku, "sku");
    if (rc != CL_OK) {
        return rc;
    }
    if (req->on_hand < 0 || req->on_hand > INVENTORY_MAX_QUANTITY) {
        return cl_fail(ctx, CL_INVALID, "on_hand", "on_hand must be 0 to %d",
                       INVENTORY_MAX_QUANTITY);
    }
    cl_rfc3339_format(cl_wall_ms(), now);
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, sql_set_stock, &st, "sis", req->sku, req->on_hand,
                                (const char *)now);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_run(st, &rows, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = load_stock(ctx, conn, req->sku, "sku", &s);
    }
    if (rc == CL_OK && rows == 0) {
        rc = cl_fail(ctx, CL_CONFLICT, "on_hand",
                     "sku %s has %" PRId64 " units reserved; on_hand cannot drop to %" PRId64,
                     req->sku, s.reserved, req->on_hand);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        *resp = s;
        memset(&s, 0, sizeof(s));
    }
    cl_db_release(conn);
    cl_schema_free(&inventory_stock_type, &s);
    return rc;
}

/*
 * catalog.product_created (catalog/catalog.h, a catalog_product): a new product is a new SKU the
 * warehouse can stock, so it gets its stock record (on_hand 0) and can be read and set at once.
 * Runs in the bus's inbox transaction on conn, so a redelivered event is skipped; and the insert
 * leaves an existing record alone, so whichever of the event, the seed and a PUT comes first, the
 * stock that was set stays.
 */
static cl_status on_product_created(void *arg, cl_ctx *ctx, const cl_envelope *env,
                                    const void *payload, cl_db_conn *conn)
{
    const catalog_product *p = payload;
    const char *sku = p->sku;
    char now[32];
    cl_stmt *st;
    cl_status rc;

    (void)arg;
    if (!valid_sku(sku)) {
        return cl_fail(ctx, CL_INVALID, "payload.sku", "%s without a valid sku", env->type);
    }
    cl_rfc3339_format(cl_wall_ms(), now);
    rc = cl_db_prepare_bind(ctx, conn, sql_open_stock, &st, "ss", sku, (const char *)now);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

/* --- reservations ------------------------------------------------------------------------ */

/* A reservation row as stored, besides what inventory_reservation shows. */
typedef struct stored {
    inventory_reservation r;
    int64_t expires_at_ms;
    bool found;
} stored;

static cl_status load_lines(cl_ctx *ctx, cl_db_conn *conn, inventory_reservation *r)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_lines, &st, "s", r->order_id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        inventory_line *l = CL_LIST_PUSH(r->lines);

        if (l == NULL) {
            return oom(ctx);
        }
        l->quantity = cl_stmt_i64(st, 1);
        l->sku = cl_strdup(cl_stmt_text(st, 0));
        if (l->sku == NULL) {
            return oom(ctx);
        }
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    return rc;
}

/* Reads the reservation of order_id into *out (zeroed by the caller); out->found says. */
static cl_status load_reservation(cl_ctx *ctx, cl_db_conn *conn, const char *order_id, stored *out)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_reservation, &st, "s", order_id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        out->found = true;
        out->expires_at_ms = cl_stmt_i64(st, 5);
        out->r.order_id = cl_strdup(cl_stmt_text(st, 0));
        out->r.status = cl_strdup(cl_stmt_text(st, 1));
        out->r.created_at = cl_strdup(cl_stmt_text(st, 2));
        out->r.expires_at = cl_strdup(cl_stmt_text(st, 3));
        out->r.updated_at = cl_strdup(cl_stmt_text(st, 4));
        if (out->r.order_id == NULL || out->r.status == NULL || out->r.created_at == NULL ||
            out->r.expires_at == NULL || out->r.updated_at == NULL) {
            rc = oom(ctx);
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && out->found) {
        out->r.lines.n = 0;
        rc = load_lines(ctx, conn, &out->r);
    }
    return rc;
}

/*
 * Sets *out (zeroed by the caller) to the reservation just inserted in this transaction, as
 * load_reservation would read it: the same texts, and lines (NULL: none) in line_no order,
 * which is theirs in the request.
 */
static cl_status as_inserted(cl_ctx *ctx, stored *out, const char *order_id, const char *status,
                             const char *now, int64_t expires_ms, const char *expires,
                             const inventory_reserve_request *lines)
{
    out->found = true;
    out->expires_at_ms = expires_ms;
    out->r.order_id = cl_strdup(order_id);
    out->r.status = cl_strdup(status);
    out->r.created_at = cl_strdup(now);
    out->r.expires_at = cl_strdup(expires);
    out->r.updated_at = cl_strdup(now);
    if (out->r.order_id == NULL || out->r.status == NULL || out->r.created_at == NULL ||
        out->r.expires_at == NULL || out->r.updated_at == NULL) {
        return oom(ctx);
    }
    for (size_t i = 0; lines != NULL && i < lines->lines.n; i++) {
        inventory_line *l = CL_LIST_PUSH(out->r.lines);

        if (l == NULL) {
            return oom(ctx);
        }
        l->quantity = lines->lines.v[i].quantity;
        l->sku = cl_strdup(lines->lines.v[i].sku);
        if (l->sku == NULL) {
            return oom(ctx);
        }
    }
    return CL_OK;
}

/* True when the request asks for exactly the stored lines (in any order). */
static bool same_lines(const inventory_reserve_request *req, const inventory_reservation *r)
{
    if (req->lines.n != r->lines.n) {
        return false;
    }
    for (size_t i = 0; i < req->lines.n; i++) {
        bool match = false;
        for (size_t j = 0; j < r->lines.n && !match; j++) {
            match = strcmp(req->lines.v[i].sku, r->lines.v[j].sku) == 0 &&
                    req->lines.v[i].quantity == r->lines.v[j].quantity;
        }
        if (!match) {
            return false;
        }
    }
    return true;
}

static cl_status check_reserve(cl_ctx *ctx, const inventory_reserve_request *req)
{
    char field[64];
    cl_status rc;

    rc = check_order_id(ctx, req->order_id);
    if (rc != CL_OK) {
        return rc;
    }
    if (req->lines.n == 0 || req->lines.n > INVENTORY_MAX_LINES) {
        return cl_fail(ctx, CL_INVALID, "lines", "lines must hold 1 to %d lines",
                       INVENTORY_MAX_LINES);
    }
    if (req->ttl_ms < 0 || req->ttl_ms > INVENTORY_MAX_TTL_MS) {
        return cl_fail(ctx, CL_INVALID, "ttl_ms", "ttl_ms must be 1 to %d (0: the default)",
                       INVENTORY_MAX_TTL_MS);
    }
    for (size_t i = 0; i < req->lines.n; i++) {
        const inventory_line *l = &req->lines.v[i];

        snprintf(field, sizeof(field), "lines[%zu].sku", i);
        rc = check_sku(ctx, l->sku, field);
        if (rc != CL_OK) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(req->lines.v[j].sku, l->sku) == 0) {
                return cl_fail(ctx, CL_INVALID, field, "sku %s is named by lines[%zu] already",
                               l->sku, j);
            }
        }
        if (l->quantity < 1 || l->quantity > INVENTORY_MAX_QUANTITY) {
            snprintf(field, sizeof(field), "lines[%zu].quantity", i);
            return cl_fail(ctx, CL_INVALID, field, "%s must be 1 to %d", field,
                           INVENTORY_MAX_QUANTITY);
        }
    }
    return CL_OK;
}

/* Takes quantity of line i's sku from available, or fails naming lines[i].sku. */
static cl_status take(cl_ctx *ctx, cl_db_conn *conn, const inventory_line *l, size_t i,
                      const char *now)
{
    inventory_stock s = {0};
    cl_stmt *st;
    char field[64];
    int rows = 0;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_take, &st, "issi", l->quantity, now,
                            (const char *)l->sku, l->quantity);
    if (rc == CL_OK) {
        rc = cl_stmt_run(st, &rows, &ctx->err);
    }
    if (rc != CL_OK || rows == 1) {
        return rc;
    }
    /* Nothing changed: the SKU is unknown or short. Say which, with the numbers. */
    snprintf(field, sizeof(field), "lines[%zu].sku", i);
    rc = load_stock(ctx, conn, l->sku, field, &s);
    if (rc == CL_OK) {
        rc = cl_fail(ctx, CL_CONFLICT, field,
                     "not enough stock of %s: %" PRId64 " available, %" PRId64 " requested", l->sku,
                     s.available, l->quantity);
    }
    cl_schema_free(&inventory_stock_type, &s);
    return rc;
}

/*
 * Orders the line indexes by sku into order[], so that concurrent reservations lock
 * stock rows in one order (no deadlock on PostgreSQL). Insertion sort: at most
 * INVENTORY_MAX_LINES lines, and no shared state as qsort's comparator would need.
 */
static void sort_by_sku(const inventory_reserve_request *req, size_t *order)
{
    for (size_t i = 0; i < req->lines.n; i++) {
        size_t j = i;

        while (j > 0 && strcmp(req->lines.v[order[j - 1]].sku, req->lines.v[i].sku) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

static cl_status insert_reservation(cl_ctx *ctx, cl_db_conn *conn, const char *order_id,
                                    const char *status, const char *now, int64_t expires_ms,
                                    const char *expires)
{
    cl_stmt *st;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_insert_reservation, &st, "sssiss", order_id, status, now,
                            expires_ms, expires, now);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

static cl_status inventory_local_reserve(struct inventory_self *self, cl_ctx *ctx,
                                         const inventory_reserve_request *req,
                                         inventory_reservation *resp)
{
    stored cur = {0};
    cl_db_conn *conn = NULL;
    size_t order[INVENTORY_MAX_LINES];
    int64_t now_ms = cl_wall_ms();
    int64_t ttl;
    int64_t expires_ms;
    char now[32], expires[32];
    cl_status rc;

    rc = check_reserve(ctx, req);
    if (rc != CL_OK) {
        return rc;
    }
    ttl = req->ttl_ms > 0 ? req->ttl_ms : self->ttl_ms;
    expires_ms = now_ms + ttl;
    cl_rfc3339_format(now_ms, now);
    cl_rfc3339_format(expires_ms, expires);
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = load_reservation(ctx, conn, req->order_id, &cur);
    }
    if (rc != CL_OK) {
        goto out;
    }
    if (cur.found) {
        /* A replay: answer with the reservation as it is, never take stock twice. */
        if (!same_lines(req, &cur.r)) {
            rc = cl_fail(ctx, CL_CONFLICT, "order_id",
                         strcmp(cur.r.status, "released") == 0 && cur.r.lines.n == 0
                             ? "order %s was released before it was reserved"
                             : "order %s already has a reservation with other lines",
                         req->order_id);
            goto out;
        }
        *resp = cur.r;
        memset(&cur.r, 0, sizeof(cur.r));
        goto out;
    }
    sort_by_sku(req, order);
    rc = insert_reservation(ctx, conn, req->order_id, "reserved", now, expires_ms, expires);
    for (size_t k = 0; rc == CL_OK && k < req->lines.n; k++) {
        rc = take(ctx, conn, &req->lines.v[order[k]], order[k], now);
    }
    for (size_t i = 0; rc == CL_OK && i < req->lines.n; i++) {
        cl_stmt *st;
        rc = cl_db_prepare_bind(ctx, conn, sql_insert_line, &st, "sisi", req->order_id, (int64_t)i,
                                (const char *)req->lines.v[i].sku, req->lines.v[i].quantity);
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
    }
    /* The answer is what was written: no read of it back. */
    if (rc == CL_OK) {
        cl_schema_free(&inventory_reservation_type, &cur.r);
        memset(&cur, 0, sizeof(cur));
        rc = as_inserted(ctx, &cur, req->order_id, "reserved", now, expires_ms, expires, req);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        *resp = cur.r;
        memset(&cur.r, 0, sizeof(cur.r));
    }
out:
    /* Releasing rolls back whatever a failure left open: all or nothing. */
    cl_db_release(conn);
    cl_schema_free(&inventory_reservation_type, &cur.r);
    return rc;
}

/*
 * Moves a 'reserved' reservation to status: gives its stock back (released, expired) or
 * sells it (committed). *cur then says what was written: status, and updated_at now.
 */
static cl_status finish(cl_ctx *ctx, cl_db_conn *conn, stored *cur, const char *status,
                        const char *now)
{
    const char *order_id = cur->r.order_id;
    bool sell = strcmp(status, "committed") == 0;
    cl_stmt *st;
    char *to, *at;
    int rows = 0;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_finish_reservation, &st, "sss", status, now, order_id);
    if (rc == CL_OK) {
        rc = cl_stmt_run(st, &rows, &ctx->err);
    }
    if (rc == CL_OK && rows != 1) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "reservation %s changed under a transaction",
                       order_id);
    }
    for (size_t i = 0; rc == CL_OK && i < cur->r.lines.n; i++) {
        const inventory_line *l = &cur->r.lines.v[i];

        if (sell) {
            rc = cl_db_prepare_bind(ctx, conn, sql_sell, &st, "iiiss", l->quantity, l->quantity,
                                    l->quantity, now, (const char *)l->sku);
        } else {
            rc = cl_db_prepare_bind(ctx, conn, sql_give_back, &st, "iss", l->quantity, now,
                                    (const char *)l->sku);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_run(st, &rows, &ctx->err);
        }
        if (rc == CL_OK && rows != 1) {
            rc = cl_fail(ctx, CL_INTERNAL, NULL, "stock of %s vanished", l->sku);
        }
    }
    if (rc != CL_OK) {
        return rc;
    }
    to = cl_strdup(status);
    at = cl_strdup(now);
    if (to == NULL || at == NULL) {
        free(to);
        free(at);
        return oom(ctx);
    }
    free(cur->r.status);
    cur->r.status = to;
    free(cur->r.updated_at);
    cur->r.updated_at = at;
    return CL_OK;
}

/* release and commit: one transaction that loads the order's reservation and acts on it. */
typedef cl_status (*transition)(cl_ctx *ctx, cl_db_conn *conn, const char *order_id, stored *cur,
                                const char *now, int64_t now_ms, bool *keep);

static cl_status on_reservation(struct inventory_self *self, cl_ctx *ctx,
                                const inventory_order_ref *req, transition act,
                                inventory_reservation *resp)
{
    stored cur = {0};
    cl_db_conn *conn = NULL;
    int64_t now_ms = cl_wall_ms();
    char now[32];
    bool keep = false;
    cl_status rc;

    rc = check_order_id(ctx, req->order_id);
    if (rc != CL_OK) {
        return rc;
    }
    cl_rfc3339_format(now_ms, now);
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = load_reservation(ctx, conn, req->order_id, &cur);
    }
    if (rc == CL_OK) {
        rc = act(ctx, conn, req->order_id, &cur, now, now_ms, &keep);
    }
    /* keep: the transaction holds a change worth committing even though the call fails. */
    if (rc == CL_OK || keep) {
        cl_error saved = ctx->err;
        cl_status crc = cl_db_commit(conn, &ctx->err);
        if (crc != CL_OK) {
            rc = crc;
        } else if (rc != CL_OK) {
            ctx->err = saved;
        }
    }
    if (rc == CL_OK) {
        *resp = cur.r;
        memset(&cur.r, 0, sizeof(cur.r));
    }
    cl_db_release(conn);
    cl_schema_free(&inventory_reservation_type, &cur.r);
    return rc;
}

static cl_status do_release(cl_ctx *ctx, cl_db_conn *conn, const char *order_id, stored *cur,
                            const char *now, int64_t now_ms, bool *keep)
{
    (void)keep;
    if (!cur->found) {
        /* A tombstone: a reserve that arrives after its compensation is refused. */
        cl_status rc = insert_reservation(ctx, conn, order_id, "released", now, now_ms, now);
        return rc == CL_OK ? as_inserted(ctx, cur, order_id, "released", now, now_ms, now, NULL)
                           : rc;
    }
    if (strcmp(cur->r.status, "reserved") == 0) {
        return finish(ctx, conn, cur, "released", now);
    }
    if (strcmp(cur->r.status, "committed") == 0) {
        return cl_fail(ctx, CL_CONFLICT, "order_id",
                       "order %s is committed; its stock can no longer be released", order_id);
    }
    return CL_OK; /* released or expired already: the stock is back */
}

static cl_status do_commit(cl_ctx *ctx, cl_db_conn *conn, const char *order_id, stored *cur,
                           const char *now, int64_t now_ms, bool *keep)
{
    cl_status rc;

    if (!cur->found) {
        return cl_fail(ctx, CL_NOT_FOUND, "order_id", "order %s has no reservation", order_id);
    }
    if (strcmp(cur->r.status, "reserved") == 0 && cur->expires_at_ms <= now_ms) {
        /* Past its deadline though not swept yet: expire it now, the same way a sweep would. */
        rc = finish(ctx, conn, cur, "expired", now);
        if (rc != CL_OK) {
            return rc;
        }
        *keep = true;
    }
    if (strcmp(cur->r.status, "reserved") == 0) {
        return finish(ctx, conn, cur, "committed", now);
    }
    if (strcmp(cur->r.status, "committed") == 0) {
        return CL_OK;
    }
    return cl_fail(ctx, CL_CONFLICT, "order_id",
                   "order %s's reservation is %s; its stock was given back", order_id,
                   cur->r.status);
}

static cl_status inventory_local_release(struct inventory_self *self, cl_ctx *ctx,
                                         const inventory_order_ref *req,
                                         inventory_reservation *resp)
{
    return on_reservation(self, ctx, req, do_release, resp);
}

static cl_status inventory_local_commit(struct inventory_self *self, cl_ctx *ctx,
                                        const inventory_order_ref *req, inventory_reservation *resp)
{
    return on_reservation(self, ctx, req, do_commit, resp);
}

static cl_status inventory_local_get_reservation(struct inventory_self *self, cl_ctx *ctx,
                                                 const inventory_order_ref *req,
                                                 inventory_reservation *resp)
{
    stored cur = {0};
    cl_db_conn *conn = NULL;
    cl_status rc;

    rc = check_order_id(ctx, req->order_id);
    if (rc == CL_OK) {
        rc = acquire(self, ctx, &conn);
    }
    /*
     * A transaction, so that the row and its lines are one snapshot; reads of a
     * reservation are rare (the saga's recovery), so taking the write lock is cheap.
     */
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = load_reservation(ctx, conn, req->order_id, &cur);
    }
    if (rc == CL_OK && !cur.found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "order_id", "order %s has no reservation", req->order_id);
    }
    if (rc == CL_OK) {
        *resp = cur.r;
        memset(&cur.r, 0, sizeof(cur.r));
    }
    cl_db_release(conn);
    cl_schema_free(&inventory_reservation_type, &cur.r);
    return rc;
}

/* One sweep transaction: up to EXPIRY_BATCH due reservations. *n receives how many. */
static cl_status expire_batch(cl_ctx *ctx, cl_db_conn *conn, int64_t now_ms, int64_t *n)
{
    char *due[EXPIRY_BATCH];
    size_t ndue = 0;
    cl_stmt *st;
    bool row = false;
    char now[32];
    cl_status rc;

    cl_rfc3339_format(now_ms, now);
    rc = cl_db_begin(conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, sql_due, &st, "ii", now_ms, (int64_t)EXPIRY_BATCH);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row && ndue < EXPIRY_BATCH) {
        due[ndue] = cl_strdup(cl_stmt_text(st, 0));
        if (due[ndue] == NULL) {
            rc = oom(ctx);
            break;
        }
        ndue++;
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    for (size_t i = 0; rc == CL_OK && i < ndue; i++) {
        stored cur = {0};

        rc = load_reservation(ctx, conn, due[i], &cur);
        if (rc == CL_OK && cur.found) {
            rc = finish(ctx, conn, &cur, "expired", now);
        }
        cl_schema_free(&inventory_reservation_type, &cur.r);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    } else {
        cl_db_rollback(conn);
    }
    for (size_t i = 0; i < ndue; i++) {
        free(due[i]);
    }
    if (rc == CL_OK) {
        *n = (int64_t)ndue;
    }
    return rc;
}

cl_status inventory__expire_at(struct inventory_self *self, cl_ctx *ctx, int64_t now_ms,
                               int64_t *expired)
{
    cl_db_conn *conn = NULL;
    int64_t total = 0;
    int64_t n = EXPIRY_BATCH;
    cl_status rc;

    rc = acquire(self, ctx, &conn);
    while (rc == CL_OK && n == EXPIRY_BATCH) {
        rc = expire_batch(ctx, conn, now_ms, &n);
        total += rc == CL_OK ? n : 0;
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *expired = total;
    }
    return rc;
}

static cl_status inventory_local_expire_reservations(struct inventory_self *self, cl_ctx *ctx,
                                                     const cl_empty *req,
                                                     inventory_expiry_report *resp)
{
    int64_t n = 0;
    cl_status rc;

    (void)req;
    rc = inventory__expire_at(self, ctx, cl_wall_ms(), &n);
    if (rc == CL_OK) {
        resp->expired = n;
    }
    return rc;
}

/* --- the expiry sweeper: reservations give their stock back by themselves ---------------- */

static void *sweep_loop(void *arg)
{
    struct inventory_self *self = arg;

    cl_thread_background("inventory", "sweep");
    pthread_mutex_lock(&self->mu);
    while (!self->stopping) {
        struct timespec until;
        int64_t n = 0;
        cl_ctx ctx;

        until = cl_deadline_in(self->interval_ms);
        while (!self->stopping && pthread_cond_timedwait(&self->cond, &self->mu, &until) == 0) {
        }
        if (self->stopping) {
            break;
        }
        pthread_mutex_unlock(&self->mu);
        cl_ctx_init(&ctx, 10000);
        cl_strlcpy(ctx.principal, "service:inventory-expiry", sizeof(ctx.principal));
        if (inventory__expire_at(self, &ctx, cl_wall_ms(), &n) != CL_OK) {
            cl_log_warn("inventory", "expiry sweep failed: %s", ctx.err.message);
        } else if (n > 0) {
            cl_log_info("inventory", "expired %" PRId64 " reservation%s", n, n == 1 ? "" : "s");
        }
        pthread_mutex_lock(&self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

static cl_status inventory_start(void *self_, cl_error *err)
{
    struct inventory_self *self = self_;
    int rc;

    if (self->running) {
        return CL_OK;
    }
    rc = cl_cond_init_monotonic(&self->cond);
    if (rc != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the expiry sweeper");
    }
    self->stopping = false;
    rc = pthread_create(&self->sweeper, NULL, sweep_loop, self);
    if (rc != 0) {
        pthread_cond_destroy(&self->cond);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the expiry sweeper");
    }
    self->running = true;
    return CL_OK;
}

static void inventory_stop(void *self_)
{
    struct inventory_self *self = self_;

    if (!self->running) {
        return;
    }
    pthread_mutex_lock(&self->mu);
    self->stopping = true;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->sweeper, NULL);
    pthread_cond_destroy(&self->cond);
    self->running = false;
}

static void inventory_destroy(void *self_)
{
    struct inventory_self *self = self_;

    if (self == NULL) {
        return;
    }
    /* The host stops an instance before destroying it; stopping again is harmless. */
    inventory_stop(self);
    pthread_mutex_destroy(&self->mu);
    free(self);
}

static cl_status inventory_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct inventory_self *self;
    cl_status rc = CL_OK;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "the inventory needs its database");
    }
    if (env->config == NULL) {
        return cl_error_set(err, CL_INVALID, "config", "the inventory needs its configuration");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    if (pthread_mutex_init(&self->mu, NULL) != 0) {
        free(self);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot create the sweeper's mutex");
    }
    self->db = env->db;
    /* Declared in inventory_api.c and validated in range when the configuration was loaded. */
    self->ttl_ms = cl_config_int(env->config, "CLEAVE_INVENTORY_RESERVATION_TTL_MS");
    self->interval_ms = cl_config_int(env->config, "CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS");
    /* Without a bus (a tool that only reads or seeds) there is nothing to subscribe to. */
    if (env->bus != NULL) {
        rc = cl_bus_on(env->bus, "inventory", &catalog_event_product_created, on_product_created,
                       self, err);
    }
    if (rc != CL_OK) {
        inventory_destroy(self);
        return rc;
    }
    *out = self;
    return CL_OK;
}

const cl_module inventory_module = {
    .abi = CL_MODULE_ABI,
    .name = "inventory",
    .version = "1.0.0",
    .ops = &inventory_local_ops,
    .create = inventory_create,
    .start = inventory_start,
    .stop = inventory_stop,
    .destroy = inventory_destroy,
    .api = &inventory_api,
};
