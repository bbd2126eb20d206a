/*
 * The payments' types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in payments.h.
 */
#include "api.h"

#include "cleave/rpc.h"

CL_TYPE_DEFINE(payments_account_input, PAYMENTS_ACCOUNT_INPUT)
CL_TYPE_DEFINE(payments_entry, PAYMENTS_ENTRY)
CL_TYPE_DEFINE(payments_account, PAYMENTS_ACCOUNT)
CL_TYPE_DEFINE(payments_account_ref, PAYMENTS_ACCOUNT_REF)
CL_TYPE_DEFINE(payments_deposit_request, PAYMENTS_DEPOSIT)
CL_TYPE_DEFINE(payments_authorization, PAYMENTS_AUTHORIZATION)
CL_TYPE_DEFINE(payments_payment, PAYMENTS_PAYMENT)
CL_TYPE_DEFINE(payments_payment_ref, PAYMENTS_PAYMENT_REF)
CL_TYPE_DEFINE(payments_refund, PAYMENTS_REFUND)
CL_TYPE_DEFINE(payments_rebuild_report, PAYMENTS_REBUILD_REPORT)

CL_OPS_DEFINE(payments, PAYMENTS_OPERATIONS)
CL_REMOTE_DEFINE(payments, PAYMENTS_OPERATIONS, PAYMENTS_OPS_VERSION)

/* Generated from cleave_module(payments DEPENDS ...) in modules/payments/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(payments);

/* The payments' configuration keys; payments.c reads them. */
static const cl_setting payments_settings[] = {
    {"CLEAVE_PAYMENTS_SNAPSHOT_EVERY", CL_SETTING_INT(1, 1000000), "50",
     "events between snapshots of a payments stream"},
};

const cl_module_api payments_api = {
    .name = "payments",
    .ops_version = PAYMENTS_OPS_VERSION,
    .ops = payments_op_list,
    .nops = sizeof(payments_op_list) / sizeof(payments_op_list[0]),
    .depends = payments_depends,
    .routes = payments_rest_routes,
    .seed = payments_seed,
    .remote_ops = &payments_remote_ops,
    .settings = payments_settings,
    .nsettings = sizeof(payments_settings) / sizeof(payments_settings[0]),
};
