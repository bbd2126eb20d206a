/*
 * shipping/shipping.h - the shipping module's public interface: shipments.
 *
 * Shipments are made asynchronously: one per confirmed order, from the orders module's
 * orders.order_confirmed event (order_ref "order:<order id>"), or by request_shipment,
 * which answers at once with the long-running operation that books the carrier
 * (202 Accepted + Location: /api/v1/operations/{id} over REST). The carrier step
 * takes CLEAVE_SHIPPING_CARRIER_MS; when it completes the shipment is booked. The events
 * it publishes are declared below.
 */
#ifndef SHIPPING_SHIPPING_H
#define SHIPPING_SHIPPING_H

#include "cleave/bus.h"
#include "cleave/module.h"

#define SHIPPING_OPS_VERSION   1
/* Longest order_ref; list_shipments returns at most this many shipments. */
#define SHIPPING_ORDER_REF_MAX 128
#define SHIPPING_LIST_MAX      100

/* status: "pending" until the carrier booking completes, then "booked". */
#define SHIPPING_SHIPMENT(X, T)                                                                    \
    X(T, I64, id, _)                                                                               \
    X(T, STR, order_ref, _)                                                                        \
    X(T, STR, status, _)                                                                           \
    X(T, STR, carrier, _)                                                                          \
    X(T, STR, tracking, _)                                                                         \
    X(T, STR, operation_id, _)                                                                     \
    X(T, STR, created_at, _)                                                                       \
    X(T, STR, updated_at, _)
CL_TYPE_DECLARE(shipping_shipment, SHIPPING_SHIPMENT)

/* order_ref: 1-128 printable bytes, "order:<id>" by convention. */
#define SHIPPING_SHIPMENT_REQUEST(X, T) X(T, STR, order_ref, _)
CL_TYPE_DECLARE(shipping_shipment_request, SHIPPING_SHIPMENT_REQUEST)

/* The answer to a request: the new shipment and the operation booking its carrier. */
#define SHIPPING_ACCEPTED(X, T)                                                                    \
    X(T, I64, shipment_id, _)                                                                      \
    X(T, STR, operation_id, _)
CL_TYPE_DECLARE(shipping_accepted, SHIPPING_ACCEPTED)

#define SHIPPING_SHIPMENT_REF(X, T) X(T, I64, id, _)
CL_TYPE_DECLARE(shipping_shipment_ref, SHIPPING_SHIPMENT_REF)

/* order_ref absent: the most recent shipments. */
#define SHIPPING_SHIPMENT_QUERY(X, T) X(T, STR, order_ref, _)
CL_TYPE_DECLARE(shipping_shipment_query, SHIPPING_SHIPMENT_QUERY)

#define SHIPPING_SHIPMENT_LIST(X, T) X(T, OBJS, items, shipping_shipment)
CL_TYPE_DECLARE(shipping_shipment_list, SHIPPING_SHIPMENT_LIST)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   request_shipment  CL_INVALID (order_ref)
 *   get_shipment      CL_NOT_FOUND
 *   list_shipments    CL_INVALID (order_ref)
 *   get_operation     CL_NOT_FOUND (an operation of shipping, cleave/bus.h)
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL.
 */
#define SHIPPING_OPERATIONS(X, M)                                                                  \
    X(M, request_shipment, shipping_shipment_request, shipping_accepted, CL_OP_WRITE)              \
    X(M, get_shipment, shipping_shipment_ref, shipping_shipment, CL_OP_READ)                       \
    X(M, list_shipments, shipping_shipment_query, shipping_shipment_list, CL_OP_READ)              \
    X(M, get_operation, cl_operation_ref, cl_operation, CL_OP_READ)
CL_OPS_DECLARE(shipping, SHIPPING_OPERATIONS)

#define SHIPPING_SHIPMENT_CREATED(X, T)                                                            \
    X(T, I64, id, _)                                                                               \
    X(T, STR, order_ref, _)
CL_TYPE_DECLARE(shipping_shipment_created, SHIPPING_SHIPMENT_CREATED)

#define SHIPPING_SHIPMENT_BOOKED(X, T)                                                             \
    X(T, I64, id, _)                                                                               \
    X(T, STR, order_ref, _)                                                                        \
    X(T, STR, carrier, _)                                                                          \
    X(T, STR, tracking, _)
CL_TYPE_DECLARE(shipping_shipment_booked, SHIPPING_SHIPMENT_BOOKED)

/*
 * The events it publishes (cleave/bus.h), keyed "shipment:<id>": a shipment was made
 * (pending), and its carrier booked it. It handles orders.order_confirmed (orders.h).
 */
#define SHIPPING_EVENTS(X, M)                                                                      \
    X(M, shipment_created, 1, shipping_shipment_created)                                           \
    X(M, shipment_booked, 1, shipping_shipment_booked)
CL_EVENTS_DECLARE(shipping, SHIPPING_EVENTS)

/* The shipping module's interface side: REST routes, seed, operation list. */
extern const cl_module_api shipping_api;
/* The local binding: the implementation, when shipping is compiled in. */
extern const cl_module shipping_module;

#endif /* SHIPPING_SHIPPING_H */
