/*
 * The payments event store: append-only streams with optimistic concurrency, folded
 * into aggregates from their latest snapshot.
 *
 * An append names the version it expects the stream to be at. The check is made twice:
 * by reading the stream's head in the writer's transaction (exact on SQLite, where
 * writers are serialised), and by the primary key (stream_id, version), which makes a
 * racing writer on PostgreSQL fail with a unique violation; both are CL_CONFLICT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char sql_head[] = "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?";
static const char sql_append[] =
    "INSERT INTO events (stream_id, version, type, data, occurred_at) VALUES (?, ?, ?, ?, ?)";
static const char sql_snapshot_get[] = "SELECT version, state FROM snapshots WHERE stream_id = ?";
static const char sql_events_after[] = "SELECT version, type, data, occurred_at FROM events "
                                       "WHERE stream_id = ? AND version > ? ORDER BY version";

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

/* Steps st to its end. */
cl_status payments__append(cl_ctx *ctx, cl_db_conn *conn, const char *stream, int64_t expected,
                           const char *type, const char *data, const char *occurred_at)
{
    cl_stmt *st;
    bool row = false;
    int64_t head = 0;
    cl_status rc;

    rc = cl_db_prepare(conn, sql_head, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, stream, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        head = cl_stmt_i64(st, 0);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    if (head != expected) {
        return cl_fail(ctx, CL_CONFLICT, "expected_version",
                       "stream %s is at version %" PRId64 ", not %" PRId64, stream, head, expected);
    }
    rc = cl_db_prepare(conn, sql_append, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, stream, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, expected + 1, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, type, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 4, data, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 5, occurred_at, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_CONFLICT) {
        return cl_fail(ctx, CL_CONFLICT, "expected_version",
                       "stream %s moved past version %" PRId64 " concurrently", stream, expected);
    }
    return rc;
}

/* How an aggregate folds its events. */
typedef cl_status (*apply_fn)(cl_ctx *ctx, void *state, const char *type, json_t *data);

static int64_t get_i64(json_t *data, const char *key)
{
    return json_integer_value(json_object_get(data, key));
}

/* Replaces *dst with a copy of data's string key; false only when out of memory. */
static bool set_str(char **dst, json_t *data, const char *key)
{
    const char *s = json_string_value(json_object_get(data, key));
    char *copy = cl_strdup(s);

    if (s != NULL && copy == NULL) {
        return false;
    }
    free(*dst);
    *dst = copy;
    return true;
}

static cl_status apply_account(cl_ctx *ctx, void *state, const char *type, json_t *data)
{
    payments__account_state *a = state;
    int64_t amount = get_i64(data, "amount");

    if (strcmp(type, "account_opened") == 0) {
        if (!set_str(&a->owner, data, "owner") || !set_str(&a->currency, data, "currency") ||
            !set_str(&a->principal, data, "principal")) {
            return oom(ctx);
        }
    } else if (strcmp(type, "funds_deposited") == 0 || strcmp(type, "funds_refunded") == 0) {
        a->available += amount;
    } else if (strcmp(type, "funds_held") == 0) {
        a->available -= amount;
        a->held += amount;
    } else if (strcmp(type, "hold_released") == 0) {
        a->held -= amount;
        a->available += amount;
    } else if (strcmp(type, "hold_captured") == 0) {
        a->held -= amount;
    } else {
        return cl_fail(ctx, CL_INTERNAL, NULL, "unknown account event %s", type);
    }
    return CL_OK;
}

static cl_status apply_payment(cl_ctx *ctx, void *state, const char *type, json_t *data)
{
    payments__payment_state *p = state;
    const char *status = NULL;

    if (strcmp(type, "payment_authorized") == 0) {
        if (!set_str(&p->account_id, data, "account_id") ||
            !set_str(&p->order_id, data, "order_id") || !set_str(&p->currency, data, "currency")) {
            return oom(ctx);
        }
        p->amount = get_i64(data, "amount");
        status = "authorized";
    } else if (strcmp(type, "payment_captured") == 0) {
        p->captured = get_i64(data, "amount");
        status = "captured";
    } else if (strcmp(type, "payment_voided") == 0) {
        status = "voided";
    } else if (strcmp(type, "payment_refunded") == 0) {
        p->refunded += get_i64(data, "amount");
        status = p->refunded >= p->captured ? "refunded" : "captured";
    } else {
        return cl_fail(ctx, CL_INTERNAL, NULL, "unknown payment event %s", type);
    }
    free(p->status);
    p->status = cl_strdup(status);
    return p->status != NULL ? CL_OK : oom(ctx);
}

/*
 * Folds the event at *version + 1 (of type, with data, appended at occurred_at) into state:
 * its version and updated_at (*version, *updated_at) follow.
 */
static cl_status fold(cl_ctx *ctx, void *state, int64_t *version, char **updated_at, apply_fn apply,
                      const char *type, json_t *data, const char *occurred_at)
{
    char *at;
    cl_status rc = apply(ctx, state, type, data);

    if (rc != CL_OK) {
        return rc;
    }
    at = cl_strdup(occurred_at);
    if (at == NULL) {
        return oom(ctx);
    }
    free(*updated_at);
    *updated_at = at;
    (*version)++;
    return CL_OK;
}

/*
 * Folds stream into state (of type t, zeroed). *version points at the state's version
 * field and *updated_at at its updated_at, which the fold keeps current.
 */
static cl_status load(cl_ctx *ctx, cl_db_conn *conn, const char *stream, bool use_snapshot,
                      const cl_type *t, void *state, int64_t *version, char **updated_at,
                      apply_fn apply)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc = CL_OK;

    if (use_snapshot) {
        rc = cl_db_prepare(conn, sql_snapshot_get, &st, &ctx->err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 1, stream, &ctx->err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
        if (rc == CL_OK && row) {
            json_t *j = json_loads(cl_stmt_text(st, 1), 0, NULL);
            if (j == NULL) {
                rc = cl_fail(ctx, CL_INTERNAL, NULL, "snapshot of %s does not parse", stream);
            } else {
                rc = cl_schema_from_json(t, j, CL_DECODE_LENIENT, state, &ctx->err);
                json_decref(j);
            }
            /* The row's version is the truth; the state's copy must agree. */
            if (rc == CL_OK && *version != cl_stmt_i64(st, 0)) {
                rc = cl_fail(ctx, CL_INTERNAL, NULL, "snapshot of %s is inconsistent", stream);
            }
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, sql_events_after, &st, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, stream, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, *version, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        int64_t v = cl_stmt_i64(st, 0);
        json_t *data = json_loads(cl_stmt_text(st, 2), 0, NULL);

        if (v != *version + 1 || data == NULL) {
            json_decref(data);
            return cl_fail(ctx, CL_INTERNAL, NULL, "stream %s is damaged at version %" PRId64,
                           stream, v);
        }
        rc = fold(ctx, state, version, updated_at, apply, cl_stmt_text(st, 1), data,
                  cl_stmt_text(st, 3));
        json_decref(data);
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
    }
    return rc;
}

cl_status payments__load_account(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool use_snapshot,
                                 payments__account_state *out)
{
    char stream[PAYMENTS_ID_MAX + 16];
    cl_status rc;

    snprintf(stream, sizeof(stream), "account-%s", id);
    rc = load(ctx, conn, stream, use_snapshot, &payments__account_state_type, out, &out->version,
              &out->updated_at, apply_account);
    if (rc == CL_OK && out->id == NULL) {
        out->id = cl_strdup(id);
        rc = out->id != NULL ? CL_OK : oom(ctx);
    }
    return rc;
}

cl_status payments__load_payment(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool use_snapshot,
                                 payments__payment_state *out)
{
    char stream[PAYMENTS_ID_MAX + 16];
    cl_status rc;

    snprintf(stream, sizeof(stream), "payment-%s", id);
    rc = load(ctx, conn, stream, use_snapshot, &payments__payment_state_type, out, &out->version,
              &out->updated_at, apply_payment);
    if (rc == CL_OK && out->id == NULL) {
        out->id = cl_strdup(id);
        rc = out->id != NULL ? CL_OK : oom(ctx);
    }
    return rc;
}

cl_status payments__fold_account(cl_ctx *ctx, payments__account_state *a, const char *type,
                                 json_t *data, const char *occurred_at)
{
    return fold(ctx, a, &a->version, &a->updated_at, apply_account, type, data, occurred_at);
}

cl_status payments__fold_payment(cl_ctx *ctx, payments__payment_state *p, const char *type,
                                 json_t *data, const char *occurred_at)
{
    return fold(ctx, p, &p->version, &p->updated_at, apply_payment, type, data, occurred_at);
}

bool payments__snapshot_due(const struct payments_self *self, int64_t version)
{
    return version % self->snapshot_every == 0;
}
