/*
 * Shipping's types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in shipping.h.
 */
#include "api.h"

#include "cleave/rpc.h"
#include "orders/orders.h"

CL_TYPE_DEFINE(shipping_shipment, SHIPPING_SHIPMENT)
CL_TYPE_DEFINE(shipping_shipment_request, SHIPPING_SHIPMENT_REQUEST)
CL_TYPE_DEFINE(shipping_accepted, SHIPPING_ACCEPTED)
CL_TYPE_DEFINE(shipping_shipment_ref, SHIPPING_SHIPMENT_REF)
CL_TYPE_DEFINE(shipping_shipment_query, SHIPPING_SHIPMENT_QUERY)
CL_TYPE_DEFINE(shipping_shipment_list, SHIPPING_SHIPMENT_LIST)

CL_TYPE_DEFINE(shipping_shipment_created, SHIPPING_SHIPMENT_CREATED)
CL_TYPE_DEFINE(shipping_shipment_booked, SHIPPING_SHIPMENT_BOOKED)

CL_OPS_DEFINE(shipping, SHIPPING_OPERATIONS)
CL_EVENTS_DEFINE(shipping, SHIPPING_EVENTS)
CL_REMOTE_DEFINE(shipping, SHIPPING_OPERATIONS, SHIPPING_OPS_VERSION)

/* Generated from cleave_module(shipping DEPENDS ...) in modules/shipping/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(shipping);

/* Shipping's configuration keys; shipping.c reads them. */
static const cl_setting shipping_settings[] = {
    {"CLEAVE_SHIPPING_CARRIER_MS", CL_SETTING_INT(0, 600000), "200",
     "length of shipping's long-running carrier step"},
};

const cl_module_api shipping_api = {
    .name = "shipping",
    .ops_version = SHIPPING_OPS_VERSION,
    .ops = shipping_op_list,
    .nops = sizeof(shipping_op_list) / sizeof(shipping_op_list[0]),
    .depends = shipping_depends,
    .routes = shipping_rest_routes,
    .seed = shipping_seed,
    .remote_ops = &shipping_remote_ops,
    .events = shipping_events,
    .nevents = sizeof(shipping_events) / sizeof(shipping_events[0]),
    .subscribes = (const cl_event *const[]){&orders_event_order_confirmed, NULL},
    .settings = shipping_settings,
    .nsettings = sizeof(shipping_settings) / sizeof(shipping_settings[0]),
};
