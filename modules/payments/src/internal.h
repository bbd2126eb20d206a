/*
 * Private to the payments implementation: the event store and the aggregates folded
 * from it. Names start with payments__ because they are shared between files of src/
 * (and the module's own unit tests) only.
 */
#ifndef PAYMENTS_SRC_INTERNAL_H
#define PAYMENTS_SRC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "payments/payments.h"

/*
 * The state of an account, folded from its stream "account-<id>". version is the
 * number of events folded; updated_at the time of the last one; principal the caller
 * that opened it (NULL: nobody's, see ADR 0025). Also what a snapshot
 * stores (as JSON, through this descriptor: a snapshot from before principal was kept
 * decodes without it, which is right, since its opening event had none either).
 */
#define PAYMENTS__ACCOUNT_STATE(X, T)                                                              \
    X(T, STR, id, _)                                                                               \
    X(T, STR, owner, _)                                                                            \
    X(T, STR, currency, _)                                                                         \
    X(T, I64, available, _)                                                                        \
    X(T, I64, held, _)                                                                             \
    X(T, I64, version, _)                                                                          \
    X(T, STR, updated_at, _)                                                                       \
    X(T, STR, principal, _)
CL_TYPE_DECLARE(payments__account_state, PAYMENTS__ACCOUNT_STATE)

/* The state of a payment, folded from "payment-<id>". */
#define PAYMENTS__PAYMENT_STATE(X, T)                                                              \
    X(T, STR, id, _)                                                                               \
    X(T, STR, account_id, _)                                                                       \
    X(T, STR, order_id, _)                                                                         \
    X(T, STR, currency, _)                                                                         \
    X(T, I64, amount, _)                                                                           \
    X(T, STR, status, _)                                                                           \
    X(T, I64, captured, _)                                                                         \
    X(T, I64, refunded, _)                                                                         \
    X(T, I64, version, _)                                                                          \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(payments__payment_state, PAYMENTS__PAYMENT_STATE)

/*
 * Appends one event to stream at version expected + 1 (data: a JSON object text).
 * CL_CONFLICT when the stream is not at version expected: nothing is written. Runs in
 * the caller's transaction on conn.
 */
cl_status payments__append(cl_ctx *ctx, cl_db_conn *conn, const char *stream, int64_t expected,
                           const char *type, const char *data, const char *occurred_at);

/* A stream's name: "account-<id>" or "payment-<id>". */
#define PAYMENTS__STREAM_MAX  (PAYMENTS_ID_MAX + 16)

/*
 * The states an instance folded last of the streams it wrote, one per slot of
 * PAYMENTS__CACHE_SLOTS (a stream hashes to one; a newer stream takes it over). Only a
 * state whose transaction committed gets in (payments__cache_put), and only over an
 * older version of its stream: every state it holds is one its stream went through, so
 * a load starts from it and reads the events appended after it, by any process, as it
 * would after a snapshot (ADR 0013). Thread-safe.
 */
#define PAYMENTS__CACHE_SLOTS 256
typedef struct payments__cache payments__cache;

payments__cache *payments__cache_new(void); /* NULL when out of memory */
void payments__cache_free(payments__cache *c);

/* What one write folded, kept until its transaction ends: at most two streams. */
typedef struct payments__written {
    int n;
    struct payments__folded {
        char stream[PAYMENTS__STREAM_MAX];
        const cl_type *t;
        void *state; /* a copy, of type t */
        int64_t version;
    } v[2];
} payments__written;

/* Keeps a copy of state (of type t, at version), replacing an earlier one of stream. */
void payments__written_add(payments__written *w, const char *stream, const cl_type *t,
                           const void *state, int64_t version);
/* The write committed: its states go into c, and w is empty again. */
void payments__cache_put(payments__cache *c, payments__written *w);
/* The write ended without committing (or c took what it wanted): w is empty again. */
void payments__written_clear(payments__written *w);

/*
 * Folds the stream of account id (or payment id) into *out, zeroed by the caller: when
 * use_snapshot, from its state in cache (NULL: none) or else its latest snapshot, and
 * otherwise from its first event. A stream without events leaves version 0. The caller
 * frees *out with cl_schema_free.
 */
cl_status payments__load_account(payments__cache *cache, cl_ctx *ctx, cl_db_conn *conn,
                                 const char *id, bool use_snapshot, payments__account_state *out);
cl_status payments__load_payment(payments__cache *cache, cl_ctx *ctx, cl_db_conn *conn,
                                 const char *id, bool use_snapshot, payments__payment_state *out);

/*
 * Folds into *a (or *p) the event of type, with data, that the caller has just appended to
 * its stream at occurred_at (payments__append at a->version): what loading the stream
 * again would give, without reading it.
 */
cl_status payments__fold_account(cl_ctx *ctx, payments__account_state *a, const char *type,
                                 json_t *data, const char *occurred_at);
cl_status payments__fold_payment(cl_ctx *ctx, payments__payment_state *p, const char *type,
                                 json_t *data, const char *occurred_at);

/*
 * An instance of payments (cleave/module.h): everything it runs on. Made by create in
 * payments.c; the store's functions read what they need of it.
 */
struct payments_self {
    cl_db *db;              /* borrowed from the host for the instance's life */
    int64_t snapshot_every; /* CLEAVE_PAYMENTS_SNAPSHOT_EVERY: >= 1, since it divides */
    payments__cache *cache; /* the states folded last, owned */
};

/* Whether the append that made a stream of self reach version is followed by a snapshot. */
bool payments__snapshot_due(const struct payments_self *self, int64_t version);

#endif /* PAYMENTS_SRC_INTERNAL_H */
