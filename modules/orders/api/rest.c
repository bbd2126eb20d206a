/*
 * The orders' public REST API. Handlers call only through the operations table they are
 * given, so they work unchanged whether orders are local or extracted.
 *   POST /api/v1/orders        202 Accepted + Location: the order, its saga under way
 *   GET  /api/v1/orders/{id}   status, lines, totals, saga history
 *   GET  /api/v1/orders        pages of orders (?status=&cursor=&limit=)
 * A client's Idempotency-Key header (checked and put in ctx by the HTTP layer) makes a
 * retried POST return the same order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static void reply_order(cl_http_req *req, int status, const orders_order *o)
{
    cl_http_reply_json(req, status, cl_schema_to_json(&orders_order_type, o));
}

static void place_order(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_input in = {0};
    orders_order o = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    char location[96];

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&orders_order_input_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
            CL_OK ||
        orders_place_order(module, ctx, &in, &o) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    snprintf(location, sizeof(location), "/api/v1/orders/%s", o.id);
    cl_http_set_header(req, "Location", location);
    reply_order(req, 202, &o);
out:
    cl_schema_free(&orders_order_type, &o);
    cl_schema_free(&orders_order_input_type, &in);
    json_decref(body);
}

static void get_order(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_ref ref = {0};
    orders_order o = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    ref.id = (char *)cl_http_param(req, "id");
    if (orders_get_order(module, ctx, &ref, &o) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    reply_order(req, 200, &o);
    cl_schema_free(&orders_order_type, &o);
}

static void list_orders(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_query q = {0};
    orders_order_page page = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (cl_http_query_dup(req, "status", 127, &q.status) != 0 ||
        cl_http_query_dup(req, "cursor", 127, &q.cursor) != 0) {
        goto out;
    }
    if (cl_http_query_int(req, "limit", 1, ORDERS_MAX_LIMIT, &q.limit) < 0) {
        goto out;
    }
    if (orders_list_orders(module, ctx, &q, &page) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    cl_http_reply_json(req, 200, cl_schema_to_json(&orders_order_page_type, &page));
out:
    cl_schema_free(&orders_order_page_type, &page);
    cl_schema_free(&orders_order_query_type, &q);
}

cl_status orders_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/orders", "orders:write", place_order, arg, NULL},
        {"GET", "/api/v1/orders", "orders:read", list_orders, arg, "status cursor limit"},
        {"GET", "/api/v1/orders/{id}", "orders:read", get_order, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
