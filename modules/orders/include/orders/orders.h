/*
 * orders/orders.h - the orders module's public interface: orders and the checkout saga.
 *
 * place_order records an order (status "pending") and answers at once; the saga then
 * runs in the orders module, persisted in its own database after every step (ADR 0014):
 *
 *   reserve   inventory.reserve (order id as its idempotency key)
 *   authorize payments.authorize_payment (payment id "pay-<order id>")
 *   commit    inventory.commit            \  the pivot: from here the saga only goes
 *   capture   payments.capture_payment    /  forward, retrying until each step succeeds
 *   confirm   status "confirmed" and the event orders.order_confirmed, one transaction
 *
 * A failure before the pivot runs the compensations in reverse (void the payment,
 * release the reservation; status "compensating" meanwhile) and ends the order
 * "rejected" with a reason:
 *   out_of_stock, unknown_sku, unknown_account, insufficient_funds, payment_refused,
 *   reservation_expired, inventory_unavailable, payments_unavailable.
 * The last two: the dependency stayed unreachable for CLEAVE_ORDERS_STEP_TIMEOUT_MS.
 * Compensations retry until they succeed, so an order may stay "compensating" while a
 * dependency is down. A serving process resumes every order that is not final at start.
 *
 * Money is integer minor units plus a currency code (cl_money); unit prices come from
 * the catalog when the order is placed. The events it publishes are declared below.
 *
 * Ownership (ADR 0025): an order belongs to the principal that placed
 * it (ctx->principal; none for an anonymous caller or an order placed before owners
 * were kept: then it is nobody's). A caller with ctx->own_only (a customer) pays only
 * from an account the payments module shows it (asked with its principal and
 * own_only), reads only its own orders (another's is CL_NOT_FOUND exactly as one that
 * does not exist) and lists only its own. Callers without own_only (staff, seed, CLI)
 * order for any account and see every order; the saga runs as "service:orders".
 */
#ifndef ORDERS_ORDERS_H
#define ORDERS_ORDERS_H

#include "cleave/module.h"

#define ORDERS_OPS_VERSION   1

#define ORDERS_MAX_LINES     100     /* lines per order, as a reservation */
#define ORDERS_MAX_QUANTITY  1000000 /* per line */
#define ORDERS_ID_MAX        64      /* account_id: 1-64 of [A-Za-z0-9_.:-] */
#define ORDERS_DEFAULT_LIMIT 20
#define ORDERS_MAX_LIMIT     200
#define ORDERS_MAX_WAIT_MS   60000 /* get_order's longest wait for a saga's end */

/* One line asked for: quantity 1..ORDERS_MAX_QUANTITY of sku (distinct per order). */
#define ORDERS_LINE_INPUT(X, T)                                                                    \
    X(T, STR, sku, _)                                                                              \
    X(T, I64, quantity, _)
CL_TYPE_DECLARE(orders_line_input, ORDERS_LINE_INPUT)

/* A checkout: the paying account and 1..ORDERS_MAX_LINES lines. */
#define ORDERS_ORDER_INPUT(X, T)                                                                   \
    X(T, STR, account_id, _)                                                                       \
    X(T, OBJS, lines, orders_line_input)
CL_TYPE_DECLARE(orders_order_input, ORDERS_ORDER_INPUT)

/* A line as priced: unit price from the catalog, line total = unit price * quantity. */
#define ORDERS_LINE(X, T)                                                                          \
    X(T, STR, sku, _)                                                                              \
    X(T, I64, quantity, _)                                                                         \
    X(T, OBJ, unit_price, cl_money)                                                                \
    X(T, OBJ, line_total, cl_money)
CL_TYPE_DECLARE(orders_line, ORDERS_LINE)

/*
 * One entry of the saga's history, oldest first. step: reserve, authorize, commit,
 * capture, confirm, void, release, reject. outcome: "ok", or "failed" (detail says why;
 * a failure before the pivot starts the compensations), or "retrying" (the dependency
 * was unavailable; logged once per step and process).
 */
#define ORDERS_SAGA_ENTRY(X, T)                                                                    \
    X(T, STR, step, _)                                                                             \
    X(T, STR, outcome, _)                                                                          \
    X(T, STR, detail, _)                                                                           \
    X(T, STR, at, _)
CL_TYPE_DECLARE(orders_saga_entry, ORDERS_SAGA_ENTRY)

/*
 * An order. status: pending, compensating, confirmed, rejected. step: the saga step to
 * run next ("done" once final). reason: why it was rejected, else absent.
 */
#define ORDERS_ORDER(X, T)                                                                         \
    X(T, STR, id, _)                                                                               \
    X(T, STR, account_id, _)                                                                       \
    X(T, STR, status, _)                                                                           \
    X(T, STR, step, _)                                                                             \
    X(T, STR, reason, _)                                                                           \
    X(T, STR, payment_id, _)                                                                       \
    X(T, OBJS, lines, orders_line)                                                                 \
    X(T, OBJ, total, cl_money)                                                                     \
    X(T, OBJS, history, orders_saga_entry)                                                         \
    X(T, STR, created_at, _)                                                                       \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(orders_order, ORDERS_ORDER)

/*
 * id names the order. wait_ms (0: answer at once) asks, for an order whose saga has not
 * ended (status pending or compensating), to answer as soon as it ends, or after wait_ms
 * with the order as it is then: at most ORDERS_MAX_WAIT_MS, and never past the caller's
 * deadline. A caller that gets a pending order asks again. An older service, which does not
 * know the field, answers at once (the wire API decodes leniently).
 */
#define ORDERS_ORDER_REF(X, T)                                                                     \
    X(T, STR, id, _)                                                                               \
    X(T, I64, wait_ms, _)
CL_TYPE_DECLARE(orders_order_ref, ORDERS_ORDER_REF)

/*
 * A page of orders, oldest first, without their history. status filters (optional);
 * cursor: the next_cursor of the previous page; limit 1..ORDERS_MAX_LIMIT, 0 = default.
 */
#define ORDERS_ORDER_QUERY(X, T)                                                                   \
    X(T, STR, status, _)                                                                           \
    X(T, STR, cursor, _)                                                                           \
    X(T, I64, limit, _)
CL_TYPE_DECLARE(orders_order_query, ORDERS_ORDER_QUERY)

#define ORDERS_ORDER_PAGE(X, T)                                                                    \
    X(T, OBJS, items, orders_order)                                                                \
    X(T, STR, next_cursor, _)
CL_TYPE_DECLARE(orders_order_page, ORDERS_ORDER_PAGE)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   place_order  CL_INVALID (account_id, lines, lines[i].sku, lines[i].quantity; a SKU
 *                named twice is lines[j].sku; prices in more than one currency is
 *                lines[j].sku); CL_NOT_FOUND (lines[i].sku: not in the catalog);
 *                CL_NOT_FOUND (account_id: with own_only, an account payments do not
 *                show the caller: another's, or none; checked before anything is
 *                priced or replayed); CL_CONFLICT (idempotency_key: used for another
 *                order).
 *                With ctx->idempotency_key, placing again returns the same order.
 *                CL_UNAVAILABLE also when the catalog (or, with own_only, payments)
 *                cannot be reached.
 *   get_order    CL_NOT_FOUND (id; with own_only: not the caller's); CL_INVALID (wait_ms:
 *                negative)
 *   list_orders  CL_INVALID (status, cursor, limit); with own_only, the caller's only
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL.
 */
#define ORDERS_OPERATIONS(X, M)                                                                    \
    X(M, place_order, orders_order_input, orders_order, CL_OP_WRITE)                               \
    X(M, get_order, orders_order_ref, orders_order, CL_OP_READ)                                    \
    X(M, list_orders, orders_order_query, orders_order_page, CL_OP_READ)
CL_OPS_DECLARE(orders, ORDERS_OPERATIONS)

/* An order whose payment is captured: what it bought, from which account, for how much. */
#define ORDERS_ORDER_CONFIRMED(X, T)                                                               \
    X(T, STR, order_id, _)                                                                         \
    X(T, STR, account_id, _)                                                                       \
    X(T, OBJS, lines, orders_line_input)                                                           \
    X(T, OBJ, total, cl_money)
CL_TYPE_DECLARE(orders_order_confirmed, ORDERS_ORDER_CONFIRMED)

/* The events it publishes (cleave/bus.h), keyed "order:<id>". */
#define ORDERS_EVENTS(X, M) X(M, order_confirmed, 1, orders_order_confirmed)
CL_EVENTS_DECLARE(orders, ORDERS_EVENTS)

/* The orders' interface side: REST routes, seed, operation list. */
extern const cl_module_api orders_api;
/* The local binding: the implementation, when orders are compiled in. */
extern const cl_module orders_module;

#endif /* ORDERS_ORDERS_H */
