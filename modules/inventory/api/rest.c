/*
 * The inventory's public REST API. Handlers call only through the operations table they
 * are given, so they work unchanged whether the inventory is local or extracted.
 * Reservations have no public route: the checkout saga makes them through the table.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"

static void get_stock(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    inventory_sku_ref ref = {0};
    inventory_stock s = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    ref.sku = (char *)cl_http_param(req, "sku");
    if (inventory_get_stock(module, ctx, &ref, &s) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_type(req, 200, &inventory_stock_type, &s);
    cl_schema_free(&inventory_stock_type, &s);
}

/* PUT {"on_hand": N}: the SKU comes from the path; a "sku" in the body must agree. */
static void set_stock(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    const char *sku = cl_http_param(req, "sku");
    inventory_stock_set in = {0};
    inventory_stock s = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&inventory_stock_set_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
        CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    if (json_object_get(body, "on_hand") == NULL) {
        cl_fail(ctx, CL_INVALID, "on_hand", "on_hand is required");
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    if (in.sku != NULL && sku != NULL && strcmp(in.sku, sku) != 0) {
        cl_fail(ctx, CL_INVALID, "sku", "the body's sku differs from the path's");
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    free(in.sku);
    in.sku = cl_strdup(sku);
    if (inventory_set_stock(module, ctx, &in, &s) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    cl_http_reply_type(req, 200, &inventory_stock_type, &s);
out:
    cl_schema_free(&inventory_stock_type, &s);
    cl_schema_free(&inventory_stock_set_type, &in);
    json_decref(body);
}

cl_status inventory_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"GET", "/api/v1/inventory/{sku}", "inventory:read", get_stock, arg, NULL},
        {"PUT", "/api/v1/inventory/{sku}", "inventory:write", set_stock, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
