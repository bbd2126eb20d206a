/*
 * payments/payments.h - the payments module's public interface: an event-sourced ledger
 * of accounts and payments.
 *
 * Every change is an event appended to a stream ("account-<id>", "payment-<id>") with
 * the version the writer expected; the state of an account or payment is the fold of
 * its stream (from the latest snapshot on). Reads (get_account, get_payment) are served
 * from projections kept in the same transaction as each append, which
 * rebuild_projections can drop and replay from the events alone.
 *
 * Money is integer minor units plus an ISO 4217 currency code (cl_money), never
 * floating point; every amount must be in its account's currency.
 *
 * A payment: authorize_payment holds funds (available -> held); then either
 * capture_payment takes them (held -> gone) or void_payment gives them back
 * (held -> available); a captured payment can be refunded, in parts, up to what was
 * captured (-> available). Account balance: available + held = deposits - captured +
 * refunded.
 *
 * Idempotency: a write called with ctx->idempotency_key (the Idempotency-Key header)
 * that already succeeded with that key returns the stored outcome again without
 * doing anything; the same key with a different request is CL_CONFLICT naming
 * "idempotency_key". Failed calls are not stored: they changed nothing, so a retry is
 * safe. Besides, authorize_payment with a payment_id, capture_payment and void_payment
 * are idempotent by themselves (see below).
 *
 * Ownership (ADR 0025): an account belongs to the principal that opened
 * it (ctx->principal; none for an anonymous caller or an account opened before owners
 * were kept: then it is nobody's), and a payment to its account's owner. A caller with
 * ctx->own_only (a customer) reaches only its own: another principal's account or
 * payment, or one of nobody's, answers CL_NOT_FOUND exactly as one that does not exist,
 * before anything else about it is checked. Callers without own_only (staff, the saga's
 * "service:orders", seed, CLI) reach every account and payment. The owner is not part of
 * the account as answered; the free-text owner field is the holder's name, not a
 * principal.
 */
#ifndef PAYMENTS_PAYMENTS_H
#define PAYMENTS_PAYMENTS_H

#include "cleave/module.h"

#define PAYMENTS_OPS_VERSION     1

#define PAYMENTS_OWNER_MAX       200                    /* owner: 1-200 bytes */
#define PAYMENTS_ID_MAX          64                     /* ids: 1-64 of [A-Za-z0-9_.:-] */
#define PAYMENTS_MAX_AMOUNT      INT64_C(1000000000000) /* per call, minor units */
#define PAYMENTS_DEFAULT_HISTORY 20
#define PAYMENTS_MAX_HISTORY     100

/*
 * A new account: id (optional: 1-64 of [A-Za-z0-9_.:-], generated when absent), owner
 * (1-200 bytes), currency (three capital letters).
 */
#define PAYMENTS_ACCOUNT_INPUT(X, T)                                                               \
    X(T, STR, id, _)                                                                               \
    X(T, STR, owner, _)                                                                            \
    X(T, STR, currency, _)
CL_TYPE_DECLARE(payments_account_input, PAYMENTS_ACCOUNT_INPUT)

/*
 * One event of an account's stream, as history. type: account_opened, funds_deposited,
 * funds_held, hold_released, hold_captured, funds_refunded. amount and payment_id are
 * absent where the event has none.
 */
#define PAYMENTS_ENTRY(X, T)                                                                       \
    X(T, I64, version, _)                                                                          \
    X(T, STR, type, _)                                                                             \
    X(T, OPT_OBJ, amount, cl_money)                                                                \
    X(T, STR, payment_id, _)                                                                       \
    X(T, STR, occurred_at, _)
CL_TYPE_DECLARE(payments_entry, PAYMENTS_ENTRY)

/*
 * An account: its balance (available to authorize, held by authorized payments), the
 * version of its stream (the number of its events), and its latest events, newest first.
 */
#define PAYMENTS_ACCOUNT(X, T)                                                                     \
    X(T, STR, id, _)                                                                               \
    X(T, STR, owner, _)                                                                            \
    X(T, STR, currency, _)                                                                         \
    X(T, OBJ, available, cl_money)                                                                 \
    X(T, OBJ, held, cl_money)                                                                      \
    X(T, I64, version, _)                                                                          \
    X(T, STR, updated_at, _)                                                                       \
    X(T, OBJS, history, payments_entry)
CL_TYPE_DECLARE(payments_account, PAYMENTS_ACCOUNT)

/* history_limit: 0..PAYMENTS_MAX_HISTORY events in history; 0 means the default (20). */
#define PAYMENTS_ACCOUNT_REF(X, T)                                                                 \
    X(T, STR, id, _)                                                                               \
    X(T, I64, history_limit, _)
CL_TYPE_DECLARE(payments_account_ref, PAYMENTS_ACCOUNT_REF)

/*
 * A deposit of amount (> 0, the account's currency). expected_version, when set, must be
 * the account's current version (optimistic concurrency for callers that read first).
 */
#define PAYMENTS_DEPOSIT(X, T)                                                                     \
    X(T, STR, account_id, _)                                                                       \
    X(T, OBJ, amount, cl_money)                                                                    \
    X(T, OPT_I64, expected_version, _)
CL_TYPE_DECLARE(payments_deposit_request, PAYMENTS_DEPOSIT)

/*
 * Authorize amount (> 0, the account's currency) for order_id (optional, 0-64 of the id
 * characters). payment_id: the caller's id for the payment (recommended: it makes the
 * call idempotent), or absent for a generated one.
 */
#define PAYMENTS_AUTHORIZATION(X, T)                                                               \
    X(T, STR, payment_id, _)                                                                       \
    X(T, STR, account_id, _)                                                                       \
    X(T, STR, order_id, _)                                                                         \
    X(T, OBJ, amount, cl_money)
CL_TYPE_DECLARE(payments_authorization, PAYMENTS_AUTHORIZATION)

/* A payment. status: authorized, captured, voided, refunded (fully). */
#define PAYMENTS_PAYMENT(X, T)                                                                     \
    X(T, STR, id, _)                                                                               \
    X(T, STR, account_id, _)                                                                       \
    X(T, STR, order_id, _)                                                                         \
    X(T, OBJ, amount, cl_money)                                                                    \
    X(T, STR, status, _)                                                                           \
    X(T, OBJ, captured, cl_money)                                                                  \
    X(T, OBJ, refunded, cl_money)                                                                  \
    X(T, I64, version, _)                                                                          \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(payments_payment, PAYMENTS_PAYMENT)

#define PAYMENTS_PAYMENT_REF(X, T) X(T, STR, payment_id, _)
CL_TYPE_DECLARE(payments_payment_ref, PAYMENTS_PAYMENT_REF)

/* A refund of amount (> 0, the payment's currency) of a captured payment. */
#define PAYMENTS_REFUND(X, T)                                                                      \
    X(T, STR, payment_id, _)                                                                       \
    X(T, OBJ, amount, cl_money)
CL_TYPE_DECLARE(payments_refund, PAYMENTS_REFUND)

/*
 * What rebuild_projections did: streams and events replayed, rows rebuilt, and whether
 * the rebuilt projections equal those that were there before (they must, unless a
 * projection had been damaged: then the rebuild repaired it).
 */
#define PAYMENTS_REBUILD_REPORT(X, T)                                                              \
    X(T, I64, streams, _)                                                                          \
    X(T, I64, events, _)                                                                           \
    X(T, I64, accounts, _)                                                                         \
    X(T, I64, payments, _)                                                                         \
    X(T, BOOL, unchanged, _)
CL_TYPE_DECLARE(payments_rebuild_report, PAYMENTS_REBUILD_REPORT)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   open_account       CL_INVALID (id, owner, currency); CL_CONFLICT (id: taken, by
 *                      whoever; idempotency_key). The caller's principal owns it.
 *   deposit            CL_INVALID (account_id, amount.amount, amount.currency);
 *                      CL_NOT_FOUND (account_id; with own_only: not the caller's);
 *                      CL_CONFLICT (expected_version: the account moved on;
 *                      idempotency_key)
 *   get_account        CL_INVALID (id, history_limit); CL_NOT_FOUND (id; with own_only:
 *                      not the caller's)
 *   authorize_payment  CL_INVALID (payment_id, account_id, order_id, amount.amount,
 *                      amount.currency); CL_NOT_FOUND (account_id; with own_only:
 *                      not the caller's);
 *                      CL_CONFLICT (amount: insufficient funds, nothing held;
 *                      payment_id: that id names a payment with another account,
 *                      order or amount; idempotency_key). The same payment_id with the
 *                      same request returns the payment as it is now, holding nothing
 *                      twice.
 *   capture_payment    CL_INVALID (payment_id); CL_NOT_FOUND (payment_id; with
 *                      own_only: not on the caller's account);
 *                      CL_CONFLICT (payment_id: voided). Capturing a captured or
 *                      refunded payment returns it unchanged.
 *   void_payment       CL_INVALID, CL_NOT_FOUND as capture; CL_CONFLICT (payment_id:
 *                      captured or refunded). Voiding a voided payment returns it.
 *   refund_payment     CL_INVALID (payment_id, amount.amount, amount.currency);
 *                      CL_NOT_FOUND (payment_id, as capture); CL_CONFLICT (payment_id:
 *                      not captured;
 *                      amount: more than captured and not yet refunded;
 *                      idempotency_key). Without an idempotency key every call refunds.
 *   get_payment        CL_INVALID (payment_id), CL_NOT_FOUND (payment_id, as capture)
 *   rebuild_projections  CL_FORBIDDEN with own_only (it is about every account)
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL. A concurrent
 * writer to the same stream makes an append fail with CL_CONFLICT; nothing is written
 * then and the call may be retried.
 */
#define PAYMENTS_OPERATIONS(X, M)                                                                  \
    X(M, open_account, payments_account_input, payments_account, CL_OP_WRITE)                      \
    X(M, deposit, payments_deposit_request, payments_account, CL_OP_WRITE)                         \
    X(M, get_account, payments_account_ref, payments_account, CL_OP_READ)                          \
    X(M, authorize_payment, payments_authorization, payments_payment, CL_OP_WRITE)                 \
    X(M, capture_payment, payments_payment_ref, payments_payment, CL_OP_IDEMPOTENT)                \
    X(M, void_payment, payments_payment_ref, payments_payment, CL_OP_IDEMPOTENT)                   \
    X(M, refund_payment, payments_refund, payments_payment, CL_OP_WRITE)                           \
    X(M, get_payment, payments_payment_ref, payments_payment, CL_OP_READ)                          \
    X(M, rebuild_projections, cl_empty, payments_rebuild_report, CL_OP_IDEMPOTENT)
CL_OPS_DECLARE(payments, PAYMENTS_OPERATIONS)

/* The payments' interface side: REST routes, demo seed, operation list. */
extern const cl_module_api payments_api;
/* The local binding: the implementation, when payments are compiled in. */
extern const cl_module payments_module;

#endif /* PAYMENTS_PAYMENTS_H */
