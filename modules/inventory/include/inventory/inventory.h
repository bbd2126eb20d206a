/*
 * inventory/inventory.h - the inventory module's public interface: stock per SKU and
 * reservations of stock for orders, with expiry.
 *
 * This header is all that other modules and the host may use of the inventory. Types and
 * operations are declared once; the local binding, the remote binding and the REST
 * gateway are all built from these declarations.
 *
 * Quantities per SKU (see inventory_stock):
 *   on_hand    units in the warehouse: not yet shipped, reserved ones included
 *   reserved   units held for orders that are neither committed nor released
 *   available  on_hand - reserved: what a new reservation may take
 *   sold       units committed to orders (they left on_hand when committed)
 * A reservation moves units from available to reserved; release and expiry move them
 * back; commit moves them from reserved (and on_hand) to sold. So for a SKU whose stock
 * is not set again meanwhile, available + reserved + sold stays constant. No quantity
 * ever goes negative, whatever runs concurrently.
 *
 * Events it consumes (cleave/bus.h): catalog.product_created opens the new SKU's stock
 * record with nothing on hand (as set_stock with on_hand 0 would), unless the SKU has
 * stock already: stock set by the seed or set_stock is never overwritten by the event,
 * whichever comes first. So get_stock finds every catalog SKU once its event arrived.
 */
#ifndef INVENTORY_INVENTORY_H
#define INVENTORY_INVENTORY_H

#include "cleave/module.h"

#define INVENTORY_OPS_VERSION  1

/* Bounds of the inputs below; anything outside is CL_INVALID naming the field. */
#define INVENTORY_SKU_MAX      64       /* sku: 1-64 of [A-Z0-9-], as in the catalog */
#define INVENTORY_ORDER_ID_MAX 64       /* order_id: 1-64 of [A-Za-z0-9_.:-] */
#define INVENTORY_MAX_LINES    100      /* lines per reservation */
#define INVENTORY_MAX_QUANTITY 1000000  /* per line, and the largest on_hand */
#define INVENTORY_MAX_TTL_MS   86400000 /* a reservation lives at most a day */

/* The stock of one SKU. */
#define INVENTORY_STOCK(X, T)                                                                      \
    X(T, STR, sku, _)                                                                              \
    X(T, I64, on_hand, _)                                                                          \
    X(T, I64, reserved, _)                                                                         \
    X(T, I64, available, _)                                                                        \
    X(T, I64, sold, _)                                                                             \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(inventory_stock, INVENTORY_STOCK)

#define INVENTORY_SKU_REF(X, T) X(T, STR, sku, _)
CL_TYPE_DECLARE(inventory_sku_ref, INVENTORY_SKU_REF)

/* Sets on_hand of sku (0..INVENTORY_MAX_QUANTITY), creating the SKU when it is new. */
#define INVENTORY_STOCK_SET(X, T)                                                                  \
    X(T, STR, sku, _)                                                                              \
    X(T, I64, on_hand, _)
CL_TYPE_DECLARE(inventory_stock_set, INVENTORY_STOCK_SET)

/* One line of a reservation: quantity 1..INVENTORY_MAX_QUANTITY of sku. */
#define INVENTORY_LINE(X, T)                                                                       \
    X(T, STR, sku, _)                                                                              \
    X(T, I64, quantity, _)
CL_TYPE_DECLARE(inventory_line, INVENTORY_LINE)

/*
 * Reserve the lines for order_id, all or nothing. The order id is the idempotency key
 * of reserve, release and commit. ttl_ms: how long the reservation holds the stock
 * (1..INVENTORY_MAX_TTL_MS); 0 means the configured default
 * (CLEAVE_INVENTORY_RESERVATION_TTL_MS). Lines name distinct SKUs.
 */
#define INVENTORY_RESERVE_REQUEST(X, T)                                                            \
    X(T, STR, order_id, _)                                                                         \
    X(T, OBJS, lines, inventory_line)                                                              \
    X(T, I64, ttl_ms, _)
CL_TYPE_DECLARE(inventory_reserve_request, INVENTORY_RESERVE_REQUEST)

/*
 * A reservation. status: "reserved" (holding stock until expires_at), "committed"
 * (sold), "released" (given back by release), "expired" (given back by expiry).
 * Only "reserved" ever changes, and only into one of the three others.
 */
#define INVENTORY_RESERVATION(X, T)                                                                \
    X(T, STR, order_id, _)                                                                         \
    X(T, STR, status, _)                                                                           \
    X(T, OBJS, lines, inventory_line)                                                              \
    X(T, STR, created_at, _)                                                                       \
    X(T, STR, expires_at, _)                                                                       \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(inventory_reservation, INVENTORY_RESERVATION)

#define INVENTORY_ORDER_REF(X, T) X(T, STR, order_id, _)
CL_TYPE_DECLARE(inventory_order_ref, INVENTORY_ORDER_REF)

/* How many reservations an expiry sweep gave back. */
#define INVENTORY_EXPIRY_REPORT(X, T) X(T, I64, expired, _)
CL_TYPE_DECLARE(inventory_expiry_report, INVENTORY_EXPIRY_REPORT)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   get_stock        CL_INVALID (sku), CL_NOT_FOUND (no stock was ever set for sku)
 *   set_stock        CL_INVALID (sku, on_hand); CL_CONFLICT (on_hand, when below what is
 *                    reserved now: release or commit first)
 *   reserve          CL_INVALID (order_id, lines, lines[i].sku, lines[i].quantity, ttl_ms;
 *                    a SKU named twice is lines[j].sku);
 *                    CL_NOT_FOUND (lines[i].sku: no stock was ever set for it);
 *                    CL_CONFLICT (lines[i].sku: not enough available; nothing reserved);
 *                    CL_CONFLICT (order_id: the order already has a reservation with
 *                    other lines, or was released before it was reserved).
 *                    Replayed with the lines of the order's existing reservation, it
 *                    returns that reservation as it is now (any status) and changes
 *                    nothing. A reserve that failed left nothing behind: retrying it is
 *                    safe and may succeed once stock arrived.
 *   release          CL_INVALID (order_id); CL_CONFLICT (the reservation is committed).
 *                    Releasing a released or expired reservation returns it unchanged.
 *                    Releasing an order that has no reservation records it as released
 *                    with no lines, so that a late reserve for it is refused: a
 *                    compensation that overtakes its action is still safe.
 *   commit           CL_INVALID (order_id); CL_NOT_FOUND (no reservation);
 *                    CL_CONFLICT (released or expired: its stock was given back).
 *                    Committing a committed reservation returns it unchanged.
 *   get_reservation  CL_INVALID (order_id), CL_NOT_FOUND
 *   expire_reservations  -: gives back the stock of every reservation past its
 *                    expires_at (the module also does this by itself every
 *                    CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS).
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL.
 */
#define INVENTORY_OPERATIONS(X, M)                                                                 \
    X(M, get_stock, inventory_sku_ref, inventory_stock, CL_OP_READ)                                \
    X(M, set_stock, inventory_stock_set, inventory_stock, CL_OP_IDEMPOTENT)                        \
    X(M, reserve, inventory_reserve_request, inventory_reservation, CL_OP_IDEMPOTENT)              \
    X(M, release, inventory_order_ref, inventory_reservation, CL_OP_IDEMPOTENT)                    \
    X(M, commit, inventory_order_ref, inventory_reservation, CL_OP_IDEMPOTENT)                     \
    X(M, get_reservation, inventory_order_ref, inventory_reservation, CL_OP_READ)                  \
    X(M, expire_reservations, cl_empty, inventory_expiry_report, CL_OP_IDEMPOTENT)
CL_OPS_DECLARE(inventory, INVENTORY_OPERATIONS)

/* The inventory's interface side: REST routes, demo seed, operation list. */
extern const cl_module_api inventory_api;
/* The local binding: the implementation, when the inventory is compiled in. */
extern const cl_module inventory_module;

#endif /* INVENTORY_INVENTORY_H */
