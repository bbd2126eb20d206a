/*
 * The payments event store: append-only streams with optimistic concurrency, folded
 * into aggregates from their latest snapshot.
 *
 * An append names the version it expects the stream to be at. The check is made twice:
 * by reading the stream's head in the writer's transaction (exact on SQLite, where
 * writers are serialised), and by the primary key (stream_id, version), which makes a
 * racing writer on PostgreSQL fail with a unique violation; both are CL_CONFLICT.
 *
 * A load starts from the newest state it knows: the cache of states this instance folded
 * and committed, else the stream's latest snapshot.
 */
#include <inttypes.h>
#include <pthread.h>
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

/* --- the cache of folded states ----------------------------------------------------------- */

struct payments__cache {
    pthread_mutex_t mu;
    struct payments__folded slot[PAYMENTS__CACHE_SLOTS]; /* state NULL: empty */
};

payments__cache *payments__cache_new(void)
{
    payments__cache *c = calloc(1, sizeof(*c));

    if (c != NULL && pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

static void folded_clear(struct payments__folded *f)
{
    if (f->state != NULL) {
        cl_schema_free(f->t, f->state);
        free(f->state);
    }
    memset(f, 0, sizeof(*f));
}

void payments__cache_free(payments__cache *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < PAYMENTS__CACHE_SLOTS; i++) {
        folded_clear(&c->slot[i]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* FNV-1a of stream, onto a slot. */
static struct payments__folded *slot_of(payments__cache *c, const char *stream)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)stream; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return &c->slot[h % PAYMENTS__CACHE_SLOTS];
}

/* A copy of stream's state in c into state (zeroed, of type t); false when c has none. */
static bool cache_get(payments__cache *c, const char *stream, const cl_type *t, void *state)
{
    struct payments__folded *f;
    bool hit;

    if (c == NULL) {
        return false;
    }
    f = slot_of(c, stream);
    pthread_mutex_lock(&c->mu);
    hit = f->state != NULL && f->t == t && strcmp(f->stream, stream) == 0 &&
          cl_schema_copy(t, state, f->state) == CL_OK;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void payments__written_add(payments__written *w, const char *stream, const cl_type *t,
                           const void *state, int64_t version)
{
    struct payments__folded *f = NULL;
    void *copy = calloc(1, t->size);

    /* Out of memory, the state is only not cached: loads read the stream instead. */
    if (copy == NULL || cl_schema_copy(t, copy, state) != CL_OK) {
        free(copy);
        copy = NULL;
    }
    for (int i = 0; i < w->n; i++) {
        if (strcmp(w->v[i].stream, stream) == 0) {
            f = &w->v[i];
        }
    }
    if (f == NULL && w->n < (int)(sizeof(w->v) / sizeof(w->v[0]))) {
        f = &w->v[w->n++];
    }
    if (f == NULL) {
        cl_schema_free(t, copy);
        free(copy);
        return;
    }
    folded_clear(f);
    if (copy != NULL) {
        cl_strlcpy(f->stream, stream, sizeof(f->stream));
        f->t = t;
        f->state = copy;
        f->version = version;
    }
}

void payments__cache_put(payments__cache *c, payments__written *w)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < w->n; i++) {
        struct payments__folded *f = &w->v[i];
        struct payments__folded *s = slot_of(c, f->stream);

        /* Two writers of one stream may come back in either order: the newer stays. */
        if (f->state != NULL &&
            (s->state == NULL || strcmp(s->stream, f->stream) != 0 || s->version < f->version)) {
            struct payments__folded old = *s;
            *s = *f;
            *f = old; /* freed below, with what was not taken */
        }
    }
    pthread_mutex_unlock(&c->mu);
    payments__written_clear(w);
}

void payments__written_clear(payments__written *w)
{
    for (int i = 0; i < w->n; i++) {
        folded_clear(&w->v[i]);
    }
    w->n = 0;
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
 * Folds stream into state (of type t, zeroed): when use_snapshot, from its state in cache
 * or else its latest snapshot. *version points at the state's version field and
 * *updated_at at its updated_at, which the fold keeps current.
 */
static cl_status load(payments__cache *cache, cl_ctx *ctx, cl_db_conn *conn, const char *stream,
                      bool use_snapshot, const cl_type *t, void *state, int64_t *version,
                      char **updated_at, apply_fn apply)
{
    cl_stmt *st;
    bool row = false;
    cl_status rc = CL_OK;

    if (use_snapshot && !cache_get(cache, stream, t, state)) {
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

cl_status payments__load_account(payments__cache *cache, cl_ctx *ctx, cl_db_conn *conn,
                                 const char *id, bool use_snapshot, payments__account_state *out)
{
    char stream[PAYMENTS__STREAM_MAX];
    cl_status rc;

    snprintf(stream, sizeof(stream), "account-%s", id);
    rc = load(cache, ctx, conn, stream, use_snapshot, &payments__account_state_type, out,
              &out->version, &out->updated_at, apply_account);
    if (rc == CL_OK && out->id == NULL) {
        out->id = cl_strdup(id);
        rc = out->id != NULL ? CL_OK : oom(ctx);
    }
    return rc;
}

cl_status payments__load_payment(payments__cache *cache, cl_ctx *ctx, cl_db_conn *conn,
                                 const char *id, bool use_snapshot, payments__payment_state *out)
{
    char stream[PAYMENTS__STREAM_MAX];
    cl_status rc;

    snprintf(stream, sizeof(stream), "payment-%s", id);
    rc = load(cache, ctx, conn, stream, use_snapshot, &payments__payment_state_type, out,
              &out->version, &out->updated_at, apply_payment);
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
