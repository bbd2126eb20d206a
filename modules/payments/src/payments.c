/*
 * The payments' local binding: commands that fold a stream, decide, and append events;
 * projections kept in the same transaction; queries served from the projections.
 *
 * Every write is one transaction on one pooled connection: the idempotency check, the
 * appends (an authorization appends to the account's stream and to the payment's), the
 * projection rows, the snapshot when one is due, and the stored outcome for the
 * idempotency key. Either all of it happens or none.
 */
#include "payments/payments.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/util.h"
#include "internal.h"

CL_TYPE_DEFINE(payments__account_state, PAYMENTS__ACCOUNT_STATE)
CL_TYPE_DEFINE(payments__payment_state, PAYMENTS__PAYMENT_STATE)

CL_LOCAL_DEFINE(payments, PAYMENTS_OPERATIONS, PAYMENTS_OPS_VERSION)

/* A key is the caller's, for one operation on one resource (0002_idempotency_scope.sql). */
static const char sql_idem_get[] =
    "SELECT request, response FROM idempotency_records WHERE principal = ? AND operation = ? "
    "AND resource = ? AND idem_key = ?";
static const char sql_idem_put[] =
    "INSERT INTO idempotency_records (principal, operation, resource, idem_key, request, "
    "response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char sql_snapshot_put[] =
    "INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state";
static const char sql_project_account[] =
    "INSERT INTO account_balances (account_id, owner, currency, available, held, version, "
    "updated_at, principal) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE "
    "SET owner = excluded.owner, currency = excluded.currency, available = excluded.available, "
    "held = excluded.held, version = excluded.version, updated_at = excluded.updated_at, "
    "principal = excluded.principal";
static const char sql_project_payment[] =
    "INSERT INTO payment_history (payment_id, account_id, order_id, amount, currency, status, "
    "captured, refunded, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (payment_id) DO UPDATE SET account_id = excluded.account_id, "
    "order_id = excluded.order_id, amount = excluded.amount, currency = excluded.currency, "
    "status = excluded.status, captured = excluded.captured, refunded = excluded.refunded, "
    "version = excluded.version, updated_at = excluded.updated_at";
static const char sql_get_balance[] =
    "SELECT account_id, owner, currency, available, held, version, updated_at, principal "
    "FROM account_balances WHERE account_id = ?";
/* Whose an account is (0003_account_principal.sql), for the payments on it. */
static const char sql_account_principal[] =
    "SELECT principal FROM account_balances WHERE account_id = ?";
static const char sql_get_payment[] =
    "SELECT payment_id, account_id, order_id, currency, amount, status, captured, refunded, "
    "version, updated_at FROM payment_history WHERE payment_id = ?";
static const char sql_history[] = "SELECT version, type, data, occurred_at FROM events "
                                  "WHERE stream_id = ? ORDER BY version DESC LIMIT ?";
static const char sql_all_balances[] =
    "SELECT account_id, owner, currency, available, held, version, updated_at, principal "
    "FROM account_balances ORDER BY account_id";
static const char sql_all_payments[] =
    "SELECT payment_id, account_id, order_id, currency, amount, status, captured, refunded, "
    "version, updated_at FROM payment_history ORDER BY payment_id";
static const char sql_clear_balances[] = "DELETE FROM account_balances";
static const char sql_clear_payments[] = "DELETE FROM payment_history";
static const char sql_streams[] = "SELECT stream_id, COUNT(*) FROM events GROUP BY stream_id "
                                  "ORDER BY stream_id";

/* --- helpers ------------------------------------------------------------------------ */

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static cl_status acquire(const struct payments_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire(self->db, ctx, conn, &ctx->err);
}

/* Steps st to its end. */
static bool valid_id(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    bool ok = n > 0 && n <= PAYMENTS_ID_MAX;

    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == ':' || c == '-';
    }
    return ok;
}

static cl_status check_id(cl_ctx *ctx, const char *s, const char *field)
{
    if (!valid_id(s)) {
        return cl_fail(ctx, CL_INVALID, field, "%s must be 1-%d of A-Z, a-z, 0-9, _.:-", field,
                       PAYMENTS_ID_MAX);
    }
    return CL_OK;
}

static bool valid_currency(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
           s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

/* A positive amount in want's currency; field is "amount". */
static cl_status check_amount(cl_ctx *ctx, const cl_money *m, const char *want)
{
    if (m->amount <= 0 || m->amount > PAYMENTS_MAX_AMOUNT) {
        return cl_fail(ctx, CL_INVALID, "amount.amount",
                       "amount must be 1 to %" PRId64 " minor units", PAYMENTS_MAX_AMOUNT);
    }
    if (!valid_currency(m->currency)) {
        return cl_fail(ctx, CL_INVALID, "amount.currency",
                       "currency must be three capital letters (ISO 4217)");
    }
    if (want != NULL && strcmp(m->currency, want) != 0) {
        return cl_fail(ctx, CL_INVALID, "amount.currency", "the account is in %s, not %s", want,
                       m->currency);
    }
    return CL_OK;
}

/*
 * Whether ctx may reach an object of principal owner (ADR 0025): any
 * caller may, unless marked own_only (a customer); then only the owner itself. An object
 * of no principal (NULL) is nobody's, and a caller without a principal owns nothing.
 * Callers answer CL_NOT_FOUND otherwise, exactly as for an object that does not exist.
 */
static bool reachable(const cl_ctx *ctx, const char *owner)
{
    return !ctx->own_only ||
           (owner != NULL && ctx->principal[0] != '\0' && strcmp(owner, ctx->principal) == 0);
}

/* JSON text of obj (compact, sorted keys) that the caller frees, or NULL. */
static char *dump(const cl_type *t, const void *obj)
{
    return cl_schema_dump(t, obj, CL_DUMP_SORTED);
}

/* --- appending: event, fold, projection, snapshot ------------------------------------- */

static cl_status project_account(cl_ctx *ctx, cl_db_conn *conn, const payments__account_state *a)
{
    cl_stmt *st;
    cl_status rc;

    rc =
        cl_db_prepare_bind(ctx, conn, sql_project_account, &st, "sssiiiss", (const char *)a->id,
                           (const char *)a->owner, (const char *)a->currency, a->available, a->held,
                           a->version, (const char *)a->updated_at, (const char *)a->principal);
    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

static cl_status project_payment(cl_ctx *ctx, cl_db_conn *conn, const payments__payment_state *p)
{
    cl_stmt *st;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_project_payment, &st, "sssissiiis", (const char *)p->id,
                            (const char *)p->account_id, (const char *)p->order_id, p->amount,
                            (const char *)p->currency, (const char *)p->status, p->captured,
                            p->refunded, p->version, (const char *)p->updated_at);
    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

static cl_status snapshot(cl_ctx *ctx, cl_db_conn *conn, const char *stream, const cl_type *t,
                          const void *state, int64_t version)
{
    char *text = dump(t, state);
    cl_stmt *st;
    cl_status rc;

    if (text == NULL) {
        return oom(ctx);
    }
    rc = cl_db_prepare_bind(ctx, conn, sql_snapshot_put, &st, "sis", stream, version,
                            (const char *)text);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    free(text);
    return rc;
}

/*
 * Appends one event, data, to the stream <kind>-<id> at the version the caller folded;
 * stream receives the stream's name and now the event's time.
 */
static cl_status append_event(cl_ctx *ctx, cl_db_conn *conn, const char *kind, const char *id,
                              int64_t version, const char *type, const json_t *data,
                              char stream[PAYMENTS_ID_MAX + 16], char now[32])
{
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    cl_status rc;

    if (text == NULL) {
        return oom(ctx);
    }
    snprintf(stream, PAYMENTS_ID_MAX + 16, "%s-%s", kind, id);
    cl_now_rfc3339(now);
    rc = payments__append(ctx, conn, stream, version, type, text, now);
    free(text);
    return rc;
}

/*
 * Appends one event to the account's stream, folds it into *a (the fold is the only place
 * that knows the rules: the stream is not read again), and brings the projection and the
 * snapshot up to date. data is stolen.
 */
static cl_status append_account(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                payments__written *w, payments__account_state *a, const char *type,
                                json_t *data)
{
    char stream[PAYMENTS__STREAM_MAX];
    char now[32];
    cl_status rc = append_event(ctx, conn, "account", a->id, a->version, type, data, stream, now);

    if (rc == CL_OK) {
        rc = payments__fold_account(ctx, a, type, data, now);
    }
    json_decref(data);
    if (rc == CL_OK) {
        rc = project_account(ctx, conn, a);
    }
    if (rc == CL_OK && payments__snapshot_due(self, a->version)) {
        rc = snapshot(ctx, conn, stream, &payments__account_state_type, a, a->version);
    }
    if (rc == CL_OK) {
        payments__written_add(w, stream, &payments__account_state_type, a, a->version);
    }
    return rc;
}

/* As append_account, for a payment's stream. */
static cl_status append_payment(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                payments__written *w, payments__payment_state *p, const char *type,
                                json_t *data)
{
    char stream[PAYMENTS__STREAM_MAX];
    char now[32];
    cl_status rc = append_event(ctx, conn, "payment", p->id, p->version, type, data, stream, now);

    if (rc == CL_OK) {
        rc = payments__fold_payment(ctx, p, type, data, now);
    }
    json_decref(data);
    if (rc == CL_OK) {
        rc = project_payment(ctx, conn, p);
    }
    if (rc == CL_OK && payments__snapshot_due(self, p->version)) {
        rc = snapshot(ctx, conn, stream, &payments__payment_state_type, p, p->version);
    }
    if (rc == CL_OK) {
        payments__written_add(w, stream, &payments__payment_state_type, p, p->version);
    }
    return rc;
}

/* --- views ------------------------------------------------------------------------- */

static cl_status money(cl_ctx *ctx, cl_money *m, int64_t amount, const char *currency)
{
    m->amount = amount;
    m->currency = cl_strdup(currency);
    return m->currency != NULL ? CL_OK : oom(ctx);
}

/* The newest limit events of account a as history. */
static cl_status load_history(cl_ctx *ctx, cl_db_conn *conn, const payments__account_state *a,
                              int64_t limit, payments_account *out)
{
    char stream[PAYMENTS_ID_MAX + 16];
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    snprintf(stream, sizeof(stream), "account-%s", a->id);
    rc = cl_db_prepare_bind(ctx, conn, sql_history, &st, "si", (const char *)stream, limit);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        payments_entry *e = CL_LIST_PUSH(out->history);
        json_t *data = json_loads(cl_stmt_text(st, 2), 0, NULL);
        json_t *amount = json_object_get(data, "amount");
        const char *pid = json_string_value(json_object_get(data, "payment_id"));
        bool has_amount = json_is_integer(amount);
        bool has_pid = pid != NULL;

        if (e == NULL) {
            json_decref(data);
            return oom(ctx);
        }
        e->version = cl_stmt_i64(st, 0);
        e->type = cl_strdup(cl_stmt_text(st, 1));
        e->occurred_at = cl_strdup(cl_stmt_text(st, 3));
        e->payment_id = cl_strdup(pid);
        if (has_amount) {
            e->amount = calloc(1, sizeof(*e->amount));
            if (e->amount != NULL) {
                rc = money(ctx, e->amount, json_integer_value(amount), a->currency);
            }
        }
        json_decref(data);
        if (e->type == NULL || e->occurred_at == NULL || (has_pid && e->payment_id == NULL) ||
            (has_amount && e->amount == NULL)) {
            return oom(ctx);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
    }
    return rc;
}

static cl_status account_view(cl_ctx *ctx, cl_db_conn *conn, const payments__account_state *a,
                              int64_t limit, payments_account *out)
{
    payments_account v = {0};
    cl_status rc;

    v.version = a->version;
    v.id = cl_strdup(a->id);
    v.owner = cl_strdup(a->owner);
    v.currency = cl_strdup(a->currency);
    v.updated_at = cl_strdup(a->updated_at);
    rc = v.id != NULL && v.owner != NULL && v.currency != NULL && v.updated_at != NULL ? CL_OK
                                                                                       : oom(ctx);
    if (rc == CL_OK) {
        rc = money(ctx, &v.available, a->available, a->currency);
    }
    if (rc == CL_OK) {
        rc = money(ctx, &v.held, a->held, a->currency);
    }
    if (rc == CL_OK) {
        rc = load_history(ctx, conn, a, limit, &v);
    }
    if (rc == CL_OK) {
        *out = v;
        memset(&v, 0, sizeof(v));
    }
    cl_schema_free(&payments_account_type, &v);
    return rc;
}

static cl_status payment_view(cl_ctx *ctx, const payments__payment_state *p, payments_payment *out)
{
    payments_payment v = {0};
    cl_status rc;

    v.version = p->version;
    v.id = cl_strdup(p->id);
    v.account_id = cl_strdup(p->account_id);
    v.order_id = cl_strdup(p->order_id);
    v.status = cl_strdup(p->status);
    v.updated_at = cl_strdup(p->updated_at);
    rc = v.id != NULL && v.account_id != NULL && v.status != NULL && v.updated_at != NULL &&
                 (p->order_id == NULL || v.order_id != NULL)
             ? CL_OK
             : oom(ctx);
    if (rc == CL_OK) {
        rc = money(ctx, &v.amount, p->amount, p->currency);
    }
    if (rc == CL_OK) {
        rc = money(ctx, &v.captured, p->captured, p->currency);
    }
    if (rc == CL_OK) {
        rc = money(ctx, &v.refunded, p->refunded, p->currency);
    }
    if (rc == CL_OK) {
        *out = v;
        memset(&v, 0, sizeof(v));
    }
    cl_schema_free(&payments_payment_type, &v);
    return rc;
}

/* --- the write runner: transaction + idempotency key ----------------------------------- */

/* A write's body, in run_write's transaction: the states it folds go into w. */
typedef cl_status (*command)(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                             payments__written *w, const void *req, void *resp);

/* Where a write happens: what an idempotency key is scoped to, besides its caller. */
typedef struct write_scope {
    const char *op;       /* the operation's name */
    const char *resource; /* the account or payment it is about; NULL for none */
} write_scope;

/*
 * Looks up the outcome stored for the caller's key in scope: *found and the outcome in
 * resp when req_text is the request stored with it, the documented CL_CONFLICT when
 * another request was; CL_OK and !*found when the key is unused there.
 */
static cl_status stored_outcome(cl_ctx *ctx, cl_db_conn *conn, const write_scope *scope,
                                const char *req_text, const cl_type *resp_t, void *resp,
                                bool *found)
{
    const char *resource = scope->resource != NULL ? scope->resource : "";
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    *found = false;
    rc = cl_db_prepare_bind(ctx, conn, sql_idem_get, &st, "ssss", ctx->principal, scope->op,
                            resource, ctx->idempotency_key);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        if (strcmp(cl_stmt_text(st, 0), req_text) != 0) {
            rc = cl_idempotency_conflict(ctx);
        } else {
            json_t *j = json_loads(cl_stmt_text(st, 1), 0, NULL);
            rc = j != NULL ? cl_schema_from_json(resp_t, j, CL_DECODE_LENIENT, resp, &ctx->err)
                           : cl_fail(ctx, CL_INTERNAL, NULL, "stored outcome does not parse");
            json_decref(j);
            *found = rc == CL_OK;
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

/* Stores what the write answered, with its changes, for the caller's key in scope. */
static cl_status store_outcome(cl_ctx *ctx, cl_db_conn *conn, const write_scope *scope,
                               const char *req_text, const char *resp_text)
{
    char now[32];
    cl_stmt *st;
    cl_status rc;

    cl_now_rfc3339(now);
    rc = cl_db_prepare_bind(ctx, conn, sql_idem_put, &st, "sssssss", ctx->principal, scope->op,
                            scope->resource != NULL ? scope->resource : "", ctx->idempotency_key,
                            req_text, resp_text, (const char *)now);
    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

/*
 * Runs cmd in one transaction. With ctx->idempotency_key, a key the caller already used
 * in scope returns its stored outcome (when the request is the same) or the documented
 * CL_CONFLICT; a new one stores the outcome with the changes. Two requests racing with
 * one key: the loser's write fails with a conflict (its stream append or the key's row,
 * after the winner commits), and the winner's stored outcome answers it instead.
 */
static cl_status run_write(const struct payments_self *self, cl_ctx *ctx, const write_scope *scope,
                           const cl_type *req_t, const void *req, const cl_type *resp_t, void *resp,
                           command cmd)
{
    const bool keyed = ctx->idempotency_key[0] != '\0';
    payments__written w = {0};
    void *tmp = calloc(1, resp_t->size);
    cl_db_conn *conn = NULL;
    char *req_text = NULL;
    char *resp_text = NULL;
    bool replayed = false;
    bool ran = false;
    cl_status rc;

    if (tmp == NULL) {
        return oom(ctx);
    }
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK && keyed) {
        req_text = dump(req_t, req);
        rc = req_text != NULL ? stored_outcome(ctx, conn, scope, req_text, resp_t, tmp, &replayed)
                              : oom(ctx);
    }
    if (rc == CL_OK && !replayed) {
        ran = true;
        rc = cmd(self, ctx, conn, &w, req, tmp);
        if (rc == CL_OK && keyed) {
            resp_text = dump(resp_t, tmp);
            rc =
                resp_text != NULL ? store_outcome(ctx, conn, scope, req_text, resp_text) : oom(ctx);
        }
        if (rc == CL_OK) {
            rc = cl_db_commit(conn, &ctx->err);
        }
        /* Only what committed is a state the streams went through: the cache's to keep. */
        if (rc == CL_OK) {
            payments__cache_put(self->cache, &w);
        }
    }
    if (rc == CL_CONFLICT && keyed && ran && req_text != NULL) {
        cl_error lost = ctx->err;

        cl_db_rollback(conn);
        cl_schema_free(resp_t, tmp);
        memset(tmp, 0, resp_t->size);
        rc = stored_outcome(ctx, conn, scope, req_text, resp_t, tmp, &replayed);
        if (rc == CL_OK && !replayed) {
            /* No winner with this key: the conflict was the write's own, and stays. */
            ctx->err = lost;
            rc = lost.status;
        }
    }
    if (rc == CL_OK) {
        memcpy(resp, tmp, resp_t->size);
    } else {
        cl_schema_free(resp_t, tmp);
    }
    /* Releasing rolls back a failed transaction: nothing of it stays. */
    cl_db_release(conn);
    payments__written_clear(&w);
    free(tmp);
    free(req_text);
    free(resp_text);
    return rc;
}

/* --- accounts --------------------------------------------------------------------------- */

static cl_status cmd_open(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                          payments__written *w, const void *req_, void *resp)
{
    const payments_account_input *req = req_;
    payments__account_state a = {0};
    char id[PAYMENTS_ID_MAX + 1];
    cl_status rc;

    if (req->id != NULL) {
        rc = check_id(ctx, req->id, "id");
        if (rc != CL_OK) {
            return rc;
        }
        cl_strlcpy(id, req->id, sizeof(id));
    } else {
        rc = cl_random_id("acc_", 8, id, sizeof(id), &ctx->err);
        if (rc != CL_OK) {
            return rc;
        }
    }
    if (req->owner == NULL || req->owner[0] == '\0' || strlen(req->owner) > PAYMENTS_OWNER_MAX) {
        return cl_fail(ctx, CL_INVALID, "owner", "owner must be 1-%d bytes", PAYMENTS_OWNER_MAX);
    }
    if (!valid_currency(req->currency)) {
        return cl_fail(ctx, CL_INVALID, "currency",
                       "currency must be three capital letters (ISO 4217)");
    }
    rc = payments__load_account(self->cache, ctx, conn, id, true, &a);
    if (rc == CL_OK && a.version > 0) {
        rc = cl_fail(ctx, CL_CONFLICT, "id", "account %s exists already", id);
    }
    if (rc == CL_OK) {
        /* The opener owns the account; an anonymous one makes it nobody's (NULL). */
        rc = append_account(self, ctx, conn, w, &a, "account_opened",
                            json_pack("{s:s,s:s,s:s?}", "owner", req->owner, "currency",
                                      req->currency, "principal",
                                      ctx->principal[0] != '\0' ? ctx->principal : NULL));
    }
    if (rc == CL_OK) {
        rc = account_view(ctx, conn, &a, PAYMENTS_DEFAULT_HISTORY, resp);
    }
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

static cl_status payments_local_open_account(struct payments_self *self, cl_ctx *ctx,
                                             const payments_account_input *req,
                                             payments_account *resp)
{
    const write_scope scope = {"open_account", req->id};

    return run_write(self, ctx, &scope, &payments_account_input_type, req, &payments_account_type,
                     resp, cmd_open);
}

/* Loads an existing account ctx may reach, or CL_NOT_FOUND naming field. */
static cl_status existing_account(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                  const char *id, const char *field, payments__account_state *a)
{
    cl_status rc = check_id(ctx, id, field);

    if (rc == CL_OK) {
        rc = payments__load_account(self->cache, ctx, conn, id, true, a);
    }
    if (rc == CL_OK && (a->version == 0 || !reachable(ctx, a->principal))) {
        rc = cl_fail(ctx, CL_NOT_FOUND, field, "account %s does not exist", id);
    }
    return rc;
}

static cl_status cmd_deposit(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                             payments__written *w, const void *req_, void *resp)
{
    const payments_deposit_request *req = req_;
    payments__account_state a = {0};
    cl_status rc;

    rc = existing_account(self, ctx, conn, req->account_id, "account_id", &a);
    if (rc == CL_OK) {
        rc = check_amount(ctx, &req->amount, a.currency);
    }
    if (rc == CL_OK && req->expected_version.set && req->expected_version.v != a.version) {
        rc = cl_fail(ctx, CL_CONFLICT, "expected_version",
                     "account %s is at version %" PRId64 ", not %" PRId64, a.id, a.version,
                     req->expected_version.v);
    }
    if (rc == CL_OK) {
        rc = append_account(self, ctx, conn, w, &a, "funds_deposited",
                            json_pack("{s:I}", "amount", (json_int_t)req->amount.amount));
    }
    if (rc == CL_OK) {
        rc = account_view(ctx, conn, &a, PAYMENTS_DEFAULT_HISTORY, resp);
    }
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

static cl_status payments_local_deposit(struct payments_self *self, cl_ctx *ctx,
                                        const payments_deposit_request *req, payments_account *resp)
{
    const write_scope scope = {"deposit", req->account_id};

    return run_write(self, ctx, &scope, &payments_deposit_request_type, req, &payments_account_type,
                     resp, cmd_deposit);
}

/* Reads account id, if ctx may reach it, from its projection into *a; CL_NOT_FOUND naming "id". */
static cl_status read_balance(cl_ctx *ctx, cl_db_conn *conn, const char *id,
                              payments__account_state *a)
{
    cl_stmt *st;
    bool row = false;
    bool found = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_get_balance, &st, "s", id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        a->id = cl_strdup(cl_stmt_text(st, 0));
        a->owner = cl_strdup(cl_stmt_text(st, 1));
        a->currency = cl_strdup(cl_stmt_text(st, 2));
        a->available = cl_stmt_i64(st, 3);
        a->held = cl_stmt_i64(st, 4);
        a->version = cl_stmt_i64(st, 5);
        a->updated_at = cl_strdup(cl_stmt_text(st, 6));
        a->principal = cl_strdup(cl_stmt_text(st, 7));
        if (a->id == NULL || a->owner == NULL || a->currency == NULL || a->updated_at == NULL ||
            (!cl_stmt_null(st, 7) && a->principal == NULL)) {
            rc = oom(ctx);
        }
        found = rc == CL_OK && reachable(ctx, a->principal);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && !found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "id", "account %s does not exist", id);
    }
    return rc;
}

static cl_status payments_local_get_account(struct payments_self *self, cl_ctx *ctx,
                                            const payments_account_ref *req, payments_account *resp)
{
    payments__account_state a = {0};
    cl_db_conn *conn = NULL;
    int64_t limit = req->history_limit == 0 ? PAYMENTS_DEFAULT_HISTORY : req->history_limit;
    cl_status rc;

    rc = check_id(ctx, req->id, "id");
    if (rc != CL_OK) {
        return rc;
    }
    if (limit < 1 || limit > PAYMENTS_MAX_HISTORY) {
        return cl_fail(ctx, CL_INVALID, "history_limit", "history_limit must be 0 to %d",
                       PAYMENTS_MAX_HISTORY);
    }
    rc = acquire(self, ctx, &conn);
    /* A transaction, so that the balance and its history are one snapshot of the ledger. */
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = read_balance(ctx, conn, req->id, &a);
    }
    if (rc == CL_OK) {
        rc = account_view(ctx, conn, &a, limit, resp);
    }
    cl_db_release(conn);
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

/* --- payments ----------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static cl_status cmd_authorize(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                               payments__written *w, const void *req_, void *resp)
{
    const payments_authorization *req = req_;
    payments__payment_state p = {0};
    payments__account_state a = {0};
    char id[PAYMENTS_ID_MAX + 1];
    cl_status rc = CL_OK;

    if (req->payment_id != NULL) {
        rc = check_id(ctx, req->payment_id, "payment_id");
        cl_strlcpy(id, req->payment_id != NULL ? req->payment_id : "", sizeof(id));
    } else {
        rc = cl_random_id("pay_", 8, id, sizeof(id), &ctx->err);
    }
    if (rc == CL_OK && req->order_id != NULL) {
        rc = check_id(ctx, req->order_id, "order_id");
    }
    if (rc == CL_OK) {
        rc = existing_account(self, ctx, conn, req->account_id, "account_id", &a);
    }
    if (rc == CL_OK) {
        rc = check_amount(ctx, &req->amount, a.currency);
    }
    if (rc == CL_OK) {
        rc = payments__load_payment(self->cache, ctx, conn, id, true, &p);
    }
    if (rc == CL_OK && p.version > 0) {
        /* The payment exists: a replay gets it as it is now, anything else is a clash. */
        if (!str_eq(p.account_id, req->account_id) || !str_eq(p.order_id, req->order_id) ||
            p.amount != req->amount.amount || !str_eq(p.currency, req->amount.currency)) {
            rc = cl_fail(ctx, CL_CONFLICT, "payment_id",
                         "payment %s exists with another account, order or amount", id);
        } else {
            rc = payment_view(ctx, &p, resp);
        }
        goto out;
    }
    if (rc == CL_OK && a.available < req->amount.amount) {
        rc = cl_fail(ctx, CL_CONFLICT, "amount",
                     "insufficient funds: account %s has %" PRId64 " %s available, %" PRId64
                     " needed",
                     a.id, a.available, a.currency, req->amount.amount);
    }
    if (rc == CL_OK) {
        rc = append_account(
            self, ctx, conn, w, &a, "funds_held",
            json_pack("{s:s,s:I}", "payment_id", id, "amount", (json_int_t)req->amount.amount));
    }
    if (rc == CL_OK) {
        rc = append_payment(self, ctx, conn, w, &p, "payment_authorized",
                            json_pack("{s:s,s:s?,s:I,s:s}", "account_id", req->account_id,
                                      "order_id", req->order_id, "amount",
                                      (json_int_t)req->amount.amount, "currency", a.currency));
    }
    if (rc == CL_OK) {
        rc = payment_view(ctx, &p, resp);
    }
out:
    cl_schema_free(&payments__payment_state_type, &p);
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

static cl_status payments_local_authorize_payment(struct payments_self *self, cl_ctx *ctx,
                                                  const payments_authorization *req,
                                                  payments_payment *resp)
{
    const write_scope scope = {"authorize_payment", req->account_id};

    return run_write(self, ctx, &scope, &payments_authorization_type, req, &payments_payment_type,
                     resp, cmd_authorize);
}

/*
 * Whether ctx may reach a payment on account_id: it is the account's, so its owner's
 * (read from the projection, which is written in the transaction of every append).
 */
static cl_status payment_reachable(cl_ctx *ctx, cl_db_conn *conn, const char *account_id, bool *yes)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    *yes = !ctx->own_only;
    if (*yes) {
        return CL_OK;
    }
    rc = cl_db_prepare_bind(ctx, conn, sql_account_principal, &st, "s", account_id);
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        *yes = reachable(ctx, cl_stmt_text(st, 0));
    }
    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

/* Loads an existing payment ctx may reach, or CL_NOT_FOUND naming payment_id. */
static cl_status existing_payment(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                  const char *id, payments__payment_state *p)
{
    bool mine = true;
    cl_status rc = check_id(ctx, id, "payment_id");

    if (rc == CL_OK) {
        rc = payments__load_payment(self->cache, ctx, conn, id, true, p);
    }
    if (rc == CL_OK && p->version > 0) {
        rc = payment_reachable(ctx, conn, p->account_id, &mine);
    }
    if (rc == CL_OK && (p->version == 0 || !mine)) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "payment_id", "payment %s does not exist", id);
    }
    return rc;
}

/*
 * capture and void: from "authorized", append event to the payment and account_event
 * (with the held amount) to its account; from done_status (or "refunded" for capture)
 * return the payment unchanged; from anything else CL_CONFLICT.
 */
static cl_status settle(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                        payments__written *w, const payments_payment_ref *req, const char *event,
                        const char *account_event, const char *done_status, payments_payment *resp)
{
    payments__payment_state p = {0};
    payments__account_state a = {0};
    bool capture = strcmp(done_status, "captured") == 0;
    cl_status rc;

    rc = existing_payment(self, ctx, conn, req->payment_id, &p);
    if (rc != CL_OK) {
        goto out;
    }
    if (strcmp(p.status, done_status) == 0 || (capture && strcmp(p.status, "refunded") == 0)) {
        rc = payment_view(ctx, &p, resp);
        goto out;
    }
    if (strcmp(p.status, "authorized") != 0) {
        rc = cl_fail(ctx, CL_CONFLICT, "payment_id", "payment %s is %s; it cannot be %s", p.id,
                     p.status, done_status);
        goto out;
    }
    rc = existing_account(self, ctx, conn, p.account_id, "account_id", &a);
    if (rc == CL_OK) {
        rc = append_payment(self, ctx, conn, w, &p, event,
                            capture ? json_pack("{s:I}", "amount", (json_int_t)p.amount)
                                    : json_object());
    }
    if (rc == CL_OK) {
        rc = append_account(
            self, ctx, conn, w, &a, account_event,
            json_pack("{s:s,s:I}", "payment_id", p.id, "amount", (json_int_t)p.amount));
    }
    if (rc == CL_OK) {
        rc = payment_view(ctx, &p, resp);
    }
out:
    cl_schema_free(&payments__payment_state_type, &p);
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

static cl_status cmd_capture(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                             payments__written *w, const void *req, void *resp)
{
    return settle(self, ctx, conn, w, req, "payment_captured", "hold_captured", "captured", resp);
}

static cl_status cmd_void(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                          payments__written *w, const void *req, void *resp)
{
    return settle(self, ctx, conn, w, req, "payment_voided", "hold_released", "voided", resp);
}

static cl_status payments_local_capture_payment(struct payments_self *self, cl_ctx *ctx,
                                                const payments_payment_ref *req,
                                                payments_payment *resp)
{
    const write_scope scope = {"capture_payment", req->payment_id};

    return run_write(self, ctx, &scope, &payments_payment_ref_type, req, &payments_payment_type,
                     resp, cmd_capture);
}

static cl_status payments_local_void_payment(struct payments_self *self, cl_ctx *ctx,
                                             const payments_payment_ref *req,
                                             payments_payment *resp)
{
    const write_scope scope = {"void_payment", req->payment_id};

    return run_write(self, ctx, &scope, &payments_payment_ref_type, req, &payments_payment_type,
                     resp, cmd_void);
}

static cl_status cmd_refund(const struct payments_self *self, cl_ctx *ctx, cl_db_conn *conn,
                            payments__written *w, const void *req_, void *resp)
{
    const payments_refund *req = req_;
    payments__payment_state p = {0};
    payments__account_state a = {0};
    cl_status rc;

    rc = existing_payment(self, ctx, conn, req->payment_id, &p);
    if (rc == CL_OK) {
        rc = check_amount(ctx, &req->amount, p.currency);
    }
    if (rc == CL_OK && strcmp(p.status, "captured") != 0) {
        rc = cl_fail(ctx, CL_CONFLICT, "payment_id",
                     "payment %s is %s; only a captured payment "
                     "can be refunded",
                     p.id, p.status);
    }
    if (rc == CL_OK && req->amount.amount > p.captured - p.refunded) {
        rc = cl_fail(ctx, CL_CONFLICT, "amount",
                     "payment %s has %" PRId64 " %s left to refund, not %" PRId64, p.id,
                     p.captured - p.refunded, p.currency, req->amount.amount);
    }
    if (rc == CL_OK) {
        rc = existing_account(self, ctx, conn, p.account_id, "account_id", &a);
    }
    if (rc == CL_OK) {
        rc = append_payment(self, ctx, conn, w, &p, "payment_refunded",
                            json_pack("{s:I}", "amount", (json_int_t)req->amount.amount));
    }
    if (rc == CL_OK) {
        rc = append_account(
            self, ctx, conn, w, &a, "funds_refunded",
            json_pack("{s:s,s:I}", "payment_id", p.id, "amount", (json_int_t)req->amount.amount));
    }
    if (rc == CL_OK) {
        rc = payment_view(ctx, &p, resp);
    }
    cl_schema_free(&payments__payment_state_type, &p);
    cl_schema_free(&payments__account_state_type, &a);
    return rc;
}

static cl_status payments_local_refund_payment(struct payments_self *self, cl_ctx *ctx,
                                               const payments_refund *req, payments_payment *resp)
{
    const write_scope scope = {"refund_payment", req->payment_id};

    return run_write(self, ctx, &scope, &payments_refund_type, req, &payments_payment_type, resp,
                     cmd_refund);
}

/* Reads a payment's projection row from the current row of st. */
static cl_status read_payment_row(cl_ctx *ctx, cl_stmt *st, payments__payment_state *p)
{
    p->id = cl_strdup(cl_stmt_text(st, 0));
    p->account_id = cl_strdup(cl_stmt_text(st, 1));
    p->order_id = cl_strdup(cl_stmt_text(st, 2));
    p->currency = cl_strdup(cl_stmt_text(st, 3));
    p->amount = cl_stmt_i64(st, 4);
    p->status = cl_strdup(cl_stmt_text(st, 5));
    p->captured = cl_stmt_i64(st, 6);
    p->refunded = cl_stmt_i64(st, 7);
    p->version = cl_stmt_i64(st, 8);
    p->updated_at = cl_strdup(cl_stmt_text(st, 9));
    if (p->id == NULL || p->account_id == NULL || p->currency == NULL || p->status == NULL ||
        p->updated_at == NULL || (!cl_stmt_null(st, 2) && p->order_id == NULL)) {
        return oom(ctx);
    }
    return CL_OK;
}

static cl_status payments_local_get_payment(struct payments_self *self, cl_ctx *ctx,
                                            const payments_payment_ref *req, payments_payment *resp)
{
    payments__payment_state p = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    bool found = false;
    cl_status rc;

    rc = check_id(ctx, req->payment_id, "payment_id");
    if (rc == CL_OK) {
        rc = acquire(self, ctx, &conn);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, sql_get_payment, &st, "s", req->payment_id);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        found = true;
        rc = read_payment_row(ctx, st, &p);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && found) {
        rc = payment_reachable(ctx, conn, p.account_id, &found);
    }
    if (rc == CL_OK && !found) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "payment_id", "payment %s does not exist", req->payment_id);
    }
    if (rc == CL_OK) {
        rc = payment_view(ctx, &p, resp);
    }
    cl_db_release(conn);
    cl_schema_free(&payments__payment_state_type, &p);
    return rc;
}

/* --- rebuilding the projections from the events ----------------------------------------- */

/* Every projection row, in key order, as one JSON text (caller frees): what "equal" means. */
static cl_status dump_projections(cl_ctx *ctx, cl_db_conn *conn, char **out, int64_t *accounts,
                                  int64_t *payments)
{
    const char *const queries[2] = {sql_all_balances, sql_all_payments};
    const int ncols[2] = {8, 10};
    json_t *all = json_array();
    cl_status rc = all != NULL ? CL_OK : oom(ctx);

    *accounts = 0;
    *payments = 0;
    for (int q = 0; rc == CL_OK && q < 2; q++) {
        cl_stmt *st;
        bool row = false;

        rc = cl_db_prepare_bind(ctx, conn, queries[q], &st, "");
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
        while (rc == CL_OK && row) {
            json_t *r = json_array();
            for (int c = 0; r != NULL && c < ncols[q]; c++) {
                const char *s = cl_stmt_text(st, c);
                json_array_append_new(r, s != NULL ? json_string(s) : json_null());
            }
            if (r == NULL || json_array_append_new(all, r) != 0) {
                rc = oom(ctx);
                break;
            }
            *(q == 0 ? accounts : payments) += 1;
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
    }
    if (rc == CL_OK) {
        *out = json_dumps(all, JSON_COMPACT);
        rc = *out != NULL ? CL_OK : oom(ctx);
    }
    json_decref(all);
    return rc;
}

/* The streams of the store with their event counts. */
typedef struct stream_list {
    char **ids;
    int64_t *counts;
    size_t n, cap;
} stream_list;

static void stream_list_free(stream_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->ids[i]);
    }
    free(l->ids);
    free(l->counts);
    memset(l, 0, sizeof(*l));
}

static cl_status list_streams(cl_ctx *ctx, cl_db_conn *conn, stream_list *l)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = cl_db_prepare_bind(ctx, conn, sql_streams, &st, "");
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        if (l->n == l->cap) {
            size_t cap = l->cap == 0 ? 64 : l->cap * 2;
            char **ids = realloc(l->ids, cap * sizeof(*ids));
            int64_t *counts = ids != NULL ? realloc(l->counts, cap * sizeof(*counts)) : NULL;
            if (ids != NULL) {
                l->ids = ids;
            }
            if (counts == NULL) {
                return oom(ctx);
            }
            l->counts = counts;
            l->cap = cap;
        }
        l->ids[l->n] = cl_strdup(cl_stmt_text(st, 0));
        if (l->ids[l->n] == NULL) {
            return oom(ctx);
        }
        l->counts[l->n] = cl_stmt_i64(st, 1);
        l->n++;
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    return rc;
}

/* Folds one stream from its first event (no snapshot) and writes its projection row. */
static cl_status replay(cl_ctx *ctx, cl_db_conn *conn, const char *stream)
{
    cl_status rc;

    if (strncmp(stream, "account-", 8) == 0) {
        payments__account_state a = {0};
        rc = payments__load_account(NULL, ctx, conn, stream + 8, false, &a);
        if (rc == CL_OK) {
            rc = project_account(ctx, conn, &a);
        }
        cl_schema_free(&payments__account_state_type, &a);
    } else if (strncmp(stream, "payment-", 8) == 0) {
        payments__payment_state p = {0};
        rc = payments__load_payment(NULL, ctx, conn, stream + 8, false, &p);
        if (rc == CL_OK) {
            rc = project_payment(ctx, conn, &p);
        }
        cl_schema_free(&payments__payment_state_type, &p);
    } else {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "unknown stream %s", stream);
    }
    return rc;
}

static cl_status payments_local_rebuild_projections(struct payments_self *self, cl_ctx *ctx,
                                                    const cl_empty *req,
                                                    payments_rebuild_report *resp)
{
    payments_rebuild_report r = {0};
    stream_list streams = {0};
    cl_db_conn *conn = NULL;
    char *before = NULL;
    char *after = NULL;
    int64_t n0 = 0, n1 = 0;
    cl_stmt *st;
    cl_status rc;

    (void)req;
    /* It is about every account: not something a caller limited to its own may run. */
    if (ctx->own_only) {
        return cl_fail(ctx, CL_FORBIDDEN, NULL, "rebuild_projections is not for own_only callers");
    }
    rc = acquire(self, ctx, &conn);
    /* One transaction: readers see the old projections or the new, never a half. */
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = dump_projections(ctx, conn, &before, &n0, &n1);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, sql_clear_balances, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, sql_clear_payments, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = list_streams(ctx, conn, &streams);
    }
    for (size_t i = 0; rc == CL_OK && i < streams.n; i++) {
        rc = replay(ctx, conn, streams.ids[i]);
        r.events += streams.counts[i];
    }
    r.streams = (int64_t)streams.n;
    if (rc == CL_OK) {
        rc = dump_projections(ctx, conn, &after, &r.accounts, &r.payments);
    }
    if (rc == CL_OK) {
        r.unchanged = strcmp(before, after) == 0;
        rc = cl_db_commit(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        *resp = r;
    }
    cl_db_release(conn);
    stream_list_free(&streams);
    free(before);
    free(after);
    return rc;
}

/* --- the module ---------------------------------------------------------------------------- */

static void payments_destroy(void *self_)
{
    struct payments_self *self = self_;

    if (self != NULL) {
        payments__cache_free(self->cache);
        free(self);
    }
}

static cl_status payments_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct payments_self *self;
    int64_t snapshot_every;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "payments need their database");
    }
    if (env->config == NULL) {
        return cl_error_set(err, CL_INVALID, "config", "payments need their configuration");
    }
    /*
     * Declared in payments_api.c and validated in range when the configuration was loaded;
     * 0 only from a configuration loaded without the payments' settings, which cannot run
     * them (the interval divides).
     */
    snapshot_every = cl_config_int(env->config, "CLEAVE_PAYMENTS_SNAPSHOT_EVERY");
    if (snapshot_every < 1) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_PAYMENTS_SNAPSHOT_EVERY",
                            "CLEAVE_PAYMENTS_SNAPSHOT_EVERY must be at least 1");
    }
    self = calloc(1, sizeof(*self));
    if (self != NULL) {
        self->cache = payments__cache_new();
    }
    if (self == NULL || self->cache == NULL) {
        free(self);
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    self->db = env->db;
    self->snapshot_every = snapshot_every;
    *out = self;
    return CL_OK;
}

const cl_module payments_module = {
    .abi = CL_MODULE_ABI,
    .name = "payments",
    .version = "1.0.0",
    .ops = &payments_local_ops,
    .create = payments_create,
    .start = cl_module_noop_start,
    .stop = cl_module_noop_stop,
    .destroy = payments_destroy,
    .api = &payments_api,
};
