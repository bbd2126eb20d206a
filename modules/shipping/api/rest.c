/*
 * Shipping's public REST API. Handlers call only through the operations table they are
 * given, so they work unchanged whether shipping is local or extracted.
 *
 *   POST /api/v1/shipments        {"order_ref":...} -> 202 Accepted,
 *                                 Location: /api/v1/operations/{operation id}
 *   GET  /api/v1/shipments/{id}
 *   GET  /api/v1/shipments?order=<order_ref>
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"

static void request_shipment(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    shipping_shipment_request in = {0};
    shipping_accepted out = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    cl_error err = {0};
    json_t *body = NULL;
    char location[160];

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&shipping_shipment_request_type, body, CL_DECODE_STRICT, &in, &err) !=
        CL_OK) {
        cl_http_reply_error(req, &err);
        goto out;
    }
    if (shipping_request_shipment(module, ctx, &in, &out) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    /* The work goes on: the client follows the operation. */
    snprintf(location, sizeof(location), "/api/v1/operations/%s", out.operation_id);
    cl_http_set_header(req, "Location", location);
    cl_http_reply_json(req, 202,
                       json_pack("{s:I,s:s,s:s}", "shipment_id", (json_int_t)out.shipment_id,
                                 "operation_id", out.operation_id, "status", "pending"));
out:
    json_decref(body);
    cl_schema_free(&shipping_shipment_request_type, &in);
    cl_schema_free(&shipping_accepted_type, &out);
}

static void get_shipment(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    shipping_shipment_ref ref = {0};
    shipping_shipment s = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const char *id = cl_http_param(req, "id");
    char *end = NULL;

    errno = 0;
    ref.id = id != NULL ? strtoll(id, &end, 10) : 0;
    if (id == NULL || end == id || *end != '\0' || errno != 0 || ref.id <= 0) {
        cl_error err;
        cl_error_set(&err, CL_INVALID, "id", "shipment id must be a positive integer");
        cl_http_reply_error(req, &err);
        return;
    }
    if (shipping_get_shipment(module, ctx, &ref, &s) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_type(req, 200, &shipping_shipment_type, &s);
    cl_schema_free(&shipping_shipment_type, &s);
}

static void list_shipments(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    shipping_shipment_query q = {0};
    shipping_shipment_list list = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    char order[SHIPPING_ORDER_REF_MAX + 1];
    int n = cl_http_query(req, "order", order, sizeof(order));

    if (n == -2) {
        cl_error err;
        cl_error_set(&err, CL_INVALID, "order", "order must be at most %d bytes",
                     SHIPPING_ORDER_REF_MAX);
        cl_http_reply_error(req, &err);
        return;
    }
    q.order_ref = n >= 0 ? order : NULL;
    if (shipping_list_shipments(module, ctx, &q, &list) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_type(req, 200, &shipping_shipment_list_type, &list);
    cl_schema_free(&shipping_shipment_list_type, &list);
}

cl_status shipping_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/shipments", "shipping:write", request_shipment, arg, NULL},
        {"GET", "/api/v1/shipments", "shipping:read", list_shipments, arg, "order"},
        {"GET", "/api/v1/shipments/{id}", "shipping:read", get_shipment, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
