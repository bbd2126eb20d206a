/*
 * The orders' types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in orders.h.
 */
#include "api.h"

#include "cleave/rpc.h"

CL_TYPE_DEFINE(orders_line_input, ORDERS_LINE_INPUT)
CL_TYPE_DEFINE(orders_order_input, ORDERS_ORDER_INPUT)
CL_TYPE_DEFINE(orders_line, ORDERS_LINE)
CL_TYPE_DEFINE(orders_saga_entry, ORDERS_SAGA_ENTRY)
CL_TYPE_DEFINE(orders_order, ORDERS_ORDER)
CL_TYPE_DEFINE(orders_order_ref, ORDERS_ORDER_REF)
CL_TYPE_DEFINE(orders_order_query, ORDERS_ORDER_QUERY)
CL_TYPE_DEFINE(orders_order_page, ORDERS_ORDER_PAGE)

CL_TYPE_DEFINE(orders_order_confirmed, ORDERS_ORDER_CONFIRMED)

CL_OPS_DEFINE(orders, ORDERS_OPERATIONS)
CL_EVENTS_DEFINE(orders, ORDERS_EVENTS)
CL_REMOTE_DEFINE(orders, ORDERS_OPERATIONS, ORDERS_OPS_VERSION)

/* Generated from cleave_module(orders DEPENDS ...) in modules/orders/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(orders);

/* The orders' configuration keys; orders.c reads them. */
static const cl_setting orders_settings[] = {
    {"CLEAVE_ORDERS_WORKERS", CL_SETTING_INT(1, 64), "4", "checkout saga executor threads"},
    {"CLEAVE_ORDERS_STEP_TIMEOUT_MS", CL_SETTING_INT(1, 3600000), "10000",
     "how long a saga step retries an unavailable dependency before compensating"},
    {"CLEAVE_ORDERS_CALL_TIMEOUT_MS", CL_SETTING_INT(1, 600000), "2000",
     "deadline of one call to inventory, payments or the catalog"},
    {"CLEAVE_ORDERS_LEASE_MS", CL_SETTING_INT(1000, 3600000), "30000",
     "how long an executor's lease on a saga lasts unrenewed (other hosts wait that long "
     "before taking over the saga of a host that died)"},
    {"CLEAVE_ORDERS_LEASE_RENEW_MS", CL_SETTING_INT(100, 600000), "10000",
     "how often a live executor renews its leases and looks for sagas whose lease lapsed; "
     "less than CLEAVE_ORDERS_LEASE_MS"},
};

const cl_module_api orders_api = {
    .name = "orders",
    .ops_version = ORDERS_OPS_VERSION,
    .ops = orders_op_list,
    .nops = sizeof(orders_op_list) / sizeof(orders_op_list[0]),
    .depends = orders_depends,
    .routes = orders_rest_routes,
    .seed = orders_seed,
    .remote_ops = &orders_remote_ops,
    .events = orders_events,
    .nevents = sizeof(orders_events) / sizeof(orders_events[0]),
    .settings = orders_settings,
    .nsettings = sizeof(orders_settings) / sizeof(orders_settings[0]),
};
