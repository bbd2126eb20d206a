/*
 * The inventory's types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in inventory.h.
 */
#include "api.h"

#include "cleave/rpc.h"
#include "catalog/catalog.h"

CL_TYPE_DEFINE(inventory_stock, INVENTORY_STOCK)
CL_TYPE_DEFINE(inventory_sku_ref, INVENTORY_SKU_REF)
CL_TYPE_DEFINE(inventory_stock_set, INVENTORY_STOCK_SET)
CL_TYPE_DEFINE(inventory_line, INVENTORY_LINE)
CL_TYPE_DEFINE(inventory_reserve_request, INVENTORY_RESERVE_REQUEST)
CL_TYPE_DEFINE(inventory_reservation, INVENTORY_RESERVATION)
CL_TYPE_DEFINE(inventory_order_ref, INVENTORY_ORDER_REF)
CL_TYPE_DEFINE(inventory_expiry_report, INVENTORY_EXPIRY_REPORT)

CL_OPS_DEFINE(inventory, INVENTORY_OPERATIONS)
CL_REMOTE_DEFINE(inventory, INVENTORY_OPERATIONS, INVENTORY_OPS_VERSION)

/* Generated from cleave_module(inventory DEPENDS ...) in modules/inventory/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(inventory);

/* The inventory's configuration keys; inventory.c reads them. */
static const cl_setting inventory_settings[] = {
    {"CLEAVE_INVENTORY_RESERVATION_TTL_MS", CL_SETTING_INT(1, 86400000), "900000",
     "how long a reservation holds stock unless the caller says"},
    {"CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS", CL_SETTING_INT(10, 3600000), "1000",
     "how often expired reservations give their stock back"},
};

const cl_module_api inventory_api = {
    .name = "inventory",
    .ops_version = INVENTORY_OPS_VERSION,
    .ops = inventory_op_list,
    .nops = sizeof(inventory_op_list) / sizeof(inventory_op_list[0]),
    .depends = inventory_depends,
    .routes = inventory_rest_routes,
    .seed = inventory_seed,
    .remote_ops = &inventory_remote_ops,
    .subscribes = (const cl_event *const[]){&catalog_event_product_created, NULL},
    .settings = inventory_settings,
    .nsettings = sizeof(inventory_settings) / sizeof(inventory_settings[0]),
};
