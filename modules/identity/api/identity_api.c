/*
 * identity's types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in identity.h.
 */
#include "api.h"

#include "cleave/rpc.h"

CL_TYPE_DEFINE(identity_item, IDENTITY_ITEM)
CL_TYPE_DEFINE(identity_item_request, IDENTITY_ITEM_REQUEST)
CL_TYPE_DEFINE(identity_item_ref, IDENTITY_ITEM_REF)

CL_TYPE_DEFINE(identity_item_created, IDENTITY_ITEM_CREATED)

CL_OPS_DEFINE(identity, IDENTITY_OPERATIONS)
CL_EVENTS_DEFINE(identity, IDENTITY_EVENTS)
CL_REMOTE_DEFINE(identity, IDENTITY_OPERATIONS, IDENTITY_OPS_VERSION)

/* Generated from cleave_module(identity DEPENDS ...) in modules/identity/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(identity);

/* identity's configuration keys, with their defaults (declared here only); identity.c reads them.
 */
static const cl_setting identity_settings[] = {
    {"CLEAVE_IDENTITY_NAME_MAX", CL_SETTING_INT(1, 1000), "100",
     "longest name of an item, in bytes"},
};

const cl_module_api identity_api = {
    .name = "identity",
    .ops_version = IDENTITY_OPS_VERSION,
    .ops = identity_op_list,
    .nops = sizeof(identity_op_list) / sizeof(identity_op_list[0]),
    .depends = identity_depends,
    .routes = identity_rest_routes,
    .seed = identity_seed,
    .remote_ops = &identity_remote_ops,
    .events = identity_events,
    .nevents = sizeof(identity_events) / sizeof(identity_events[0]),
    .subscribes = NULL,
    .settings = identity_settings,
    .nsettings = sizeof(identity_settings) / sizeof(identity_settings[0]),
};
