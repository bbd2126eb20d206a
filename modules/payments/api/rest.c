/*
 * The payments' public REST API. Handlers call only through the operations table they
 * are given, so they work unchanged whether payments are local or extracted.
 * A client's Idempotency-Key header becomes the call's idempotency key (the HTTP layer
 * checks it and puts it in ctx), so a retried POST opens one account and deposits once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static void reply_account(cl_http_req *req, int status, const payments_account *a)
{
    cl_http_reply_type(req, status, &payments_account_type, a);
}

static void open_account(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    payments_account_input in = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    char location[128];

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&payments_account_input_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
            CL_OK ||
        payments_open_account(module, ctx, &in, &a) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    snprintf(location, sizeof(location), "/api/v1/accounts/%s", a.id);
    cl_http_set_header(req, "Location", location);
    reply_account(req, 201, &a);
out:
    cl_schema_free(&payments_account_type, &a);
    cl_schema_free(&payments_account_input_type, &in);
    json_decref(body);
}

/* The body of POST /accounts/{id}/deposits: {"amount": {"amount": 1000, "currency": "EUR"}}. */
#define DEPOSIT_BODY(X, T) X(T, OBJ, amount, cl_money)
CL_TYPE_DECLARE(deposit_body, DEPOSIT_BODY)
CL_TYPE_DEFINE(deposit_body, DEPOSIT_BODY)

static void deposit(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    deposit_body in = {0};
    payments_deposit_request dep = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&deposit_body_type, body, CL_DECODE_STRICT, &in, &ctx->err) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    dep.account_id = (char *)cl_http_param(req, "id");
    dep.amount = in.amount;
    if (payments_deposit(module, ctx, &dep, &a) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    reply_account(req, 200, &a);
out:
    cl_schema_free(&payments_account_type, &a);
    cl_schema_free(&deposit_body_type, &in);
    json_decref(body);
}

static void get_account(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    payments_account_ref ref = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    ref.id = (char *)cl_http_param(req, "id");
    if (cl_http_query_int(req, "history_limit", 1, PAYMENTS_MAX_HISTORY, &ref.history_limit) < 0) {
        return;
    }
    if (payments_get_account(module, ctx, &ref, &a) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    reply_account(req, 200, &a);
    cl_schema_free(&payments_account_type, &a);
}

cl_status payments_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/accounts", "payments:write", open_account, arg, NULL},
        {"GET", "/api/v1/accounts/{id}", "payments:read", get_account, arg, "history_limit"},
        {"POST", "/api/v1/accounts/{id}/deposits", "payments:deposit", deposit, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
