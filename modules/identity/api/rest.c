/*
 * identity's public REST API. Handlers call only through the module handle they are given,
 * so they work unchanged whether identity is local or extracted.
 *
 *   POST /api/v1/identity/items     {"name":...} -> 201 Created, the item,
 *                                 Location: /api/v1/identity/items/{id}
 */
#include <stdio.h>

#include "api.h"

static void create_item(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    identity_item_request in = {0};
    identity_item out = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    cl_error err = {0};
    json_t *body = NULL;
    char location[96];

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&identity_item_request_type, body, CL_DECODE_STRICT, &in, &err) !=
        CL_OK) {
        cl_http_reply_error(req, &err);
        goto out;
    }
    if (identity_create_item(module, ctx, &in, &out) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    snprintf(location, sizeof(location), "/api/v1/identity/items/%lld", (long long)out.id);
    cl_http_set_header(req, "Location", location);
    cl_http_reply_json(req, 201, cl_schema_to_json(&identity_item_type, &out));
out:
    json_decref(body);
    cl_schema_free(&identity_item_request_type, &in);
    cl_schema_free(&identity_item_type, &out);
}

cl_status identity_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/identity/items", "identity:write", create_item, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
