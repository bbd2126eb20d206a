/*
 * The catalog's types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in catalog.h.
 */
#include "api.h"

#include "cleave/cache.h"
#include "cleave/rpc.h"

CL_TYPE_DEFINE(catalog_product, CATALOG_PRODUCT)
CL_TYPE_DEFINE(catalog_product_input, CATALOG_PRODUCT_INPUT)
CL_TYPE_DEFINE(catalog_product_changes, CATALOG_PRODUCT_CHANGES)
CL_TYPE_DEFINE(catalog_product_update, CATALOG_PRODUCT_UPDATE)
CL_TYPE_DEFINE(catalog_product_ref, CATALOG_PRODUCT_REF)
CL_TYPE_DEFINE(catalog_product_query, CATALOG_PRODUCT_QUERY)
CL_TYPE_DEFINE(catalog_product_page, CATALOG_PRODUCT_PAGE)
CL_TYPE_DEFINE(catalog_category, CATALOG_CATEGORY)
CL_TYPE_DEFINE(catalog_category_list, CATALOG_CATEGORY_LIST)
CL_TYPE_DEFINE(catalog_sku_query, CATALOG_SKU_QUERY)
CL_TYPE_DEFINE(catalog_product_list, CATALOG_PRODUCT_LIST)

CL_OPS_DEFINE(catalog, CATALOG_OPERATIONS)
CL_EVENTS_DEFINE(catalog, CATALOG_EVENTS)
CL_REMOTE_DEFINE(catalog, CATALOG_OPERATIONS, CATALOG_OPS_VERSION)
CL_CACHED_DEFINE(catalog, CATALOG_OPERATIONS, CATALOG_OPS_VERSION)

/* Generated from cleave_module(catalog DEPENDS ...) in modules/catalog/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(catalog);

const cl_module_api catalog_api = {
    .name = "catalog",
    .ops_version = CATALOG_OPS_VERSION,
    .ops = catalog_op_list,
    .nops = sizeof(catalog_op_list) / sizeof(catalog_op_list[0]),
    .depends = catalog_depends,
    .routes = catalog_rest_routes,
    .seed = catalog_seed,
    .remote_ops = &catalog_remote_ops,
    .cached_ops = &catalog_cached_ops,
    .events = catalog_events,
    .nevents = sizeof(catalog_events) / sizeof(catalog_events[0]),
};
