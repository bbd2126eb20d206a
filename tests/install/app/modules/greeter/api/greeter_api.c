/* The greeter's types, operation list, remote binding, REST route and descriptor. */
#include <stddef.h>

#include "cleave/rpc.h"
#include "greeter/greeter.h"

CL_TYPE_DEFINE(greeter_request, GREETER_REQUEST)
CL_TYPE_DEFINE(greeter_greeting, GREETER_GREETING)

CL_OPS_DEFINE(greeter, GREETER_OPERATIONS)
CL_REMOTE_DEFINE(greeter, GREETER_OPERATIONS, GREETER_OPS_VERSION)

/* POST /api/v1/greetings {"name": ...} -> 201 {"message": ..., "count": n} */
static void greet(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    greeter_request in = {0};
    greeter_greeting out = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    cl_error err = {0};
    json_t *body = NULL;

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&greeter_request_type, body, CL_DECODE_STRICT, &in, &err) != CL_OK) {
        cl_http_reply_error(req, &err);
        goto out;
    }
    if (greeter_greet(module, ctx, &in, &out) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    cl_http_reply_type(req, 201, &greeter_greeting_type, &out);
out:
    json_decref(body);
    cl_schema_free(&greeter_request_type, &in);
    cl_schema_free(&greeter_greeting_type, &out);
}

static cl_status greeter_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    const cl_route routes[] = {
        {"POST", "/api/v1/greetings", CL_PERM_PUBLIC, greet, (void *)module, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}

static cl_status greeter_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                              int *created)
{
    (void)module;
    (void)ctx;
    (void)opts;
    *created = 0;
    return CL_OK;
}

CL_MODULE_DEPENDS_DECLARE(greeter);

const cl_module_api greeter_api = {
    .name = "greeter",
    .ops_version = GREETER_OPS_VERSION,
    .ops = greeter_op_list,
    .nops = sizeof(greeter_op_list) / sizeof(greeter_op_list[0]),
    .depends = greeter_depends,
    .routes = greeter_routes,
    .seed = greeter_seed,
    .remote_ops = &greeter_remote_ops,
};
