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

/*
 * Folds the stream of account id (or payment id) into *out, zeroed by the caller: from
 * its latest snapshot when use_snapshot, else from its first event. A stream without
 * events leaves version 0. The caller frees *out with cl_schema_free.
 */
cl_status payments__load_account(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool use_snapshot,
                                 payments__account_state *out);
cl_status payments__load_payment(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool use_snapshot,
                                 payments__payment_state *out);

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
};

/* Whether the append that made a stream of self reach version is followed by a snapshot. */
bool payments__snapshot_due(const struct payments_self *self, int64_t version);

#endif /* PAYMENTS_SRC_INTERNAL_H */
