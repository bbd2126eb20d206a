/*
 * The payments' public REST API. Handlers call only through the operations table they
 * are given, so they work unchanged whether payments are local or extracted.
 * A client's Idempotency-Key header becomes the call's idempotency key, so a retried
 * POST opens one account and deposits once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static void take_idempotency_key(cl_http_req *req, cl_ctx *ctx)
{
    const char *key = cl_http_header(req, "Idempotency-Key");

    if (key != NULL) {
        cl_strlcpy(ctx->idempotency_key, key, sizeof(ctx->idempotency_key));
    }
}

/* Idempotency keys are compared whole: a key that does not fit is refused, not cut. */
static int key_too_long(cl_http_req *req)
{
    const char *key = cl_http_header(req, "Idempotency-Key");
    cl_error err;

    if (key == NULL || strlen(key) < sizeof(((cl_ctx *)NULL)->idempotency_key)) {
        return 0;
    }
    cl_error_set(&err, CL_INVALID, "Idempotency-Key", "Idempotency-Key must be under %zu bytes",
                 sizeof(((cl_ctx *)NULL)->idempotency_key));
    cl_http_reply_error(req, &err);
    return 1;
}

static void reply_account(cl_http_req *req, int status, const payments_account *a)
{
    cl_http_reply_json(req, status, cl_schema_to_json(&payments_account_type, a));
}

static void open_account(cl_http_req *req, void *arg)
{
    const payments_ops *ops = arg;
    payments_account_input in = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    char location[128];

    if (key_too_long(req) || cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    take_idempotency_key(req, ctx);
    if (cl_schema_from_json(&payments_account_input_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
            CL_OK ||
        ops->open_account(ctx, &in, &a) != CL_OK) {
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
    const payments_ops *ops = arg;
    deposit_body in = {0};
    payments_deposit dep = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;

    if (key_too_long(req) || cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    take_idempotency_key(req, ctx);
    if (cl_schema_from_json(&deposit_body_type, body, CL_DECODE_STRICT, &in, &ctx->err) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    dep.account_id = (char *)cl_http_param(req, "id");
    dep.amount = in.amount;
    if (ops->deposit(ctx, &dep, &a) != CL_OK) {
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
    const payments_ops *ops = arg;
    payments_account_ref ref = {0};
    payments_account a = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    ref.id = (char *)cl_http_param(req, "id");
    if (cl_http_query_int(req, "history_limit", 1, PAYMENTS_MAX_HISTORY, &ref.history_limit) < 0) {
        return;
    }
    if (ops->get_account(ctx, &ref, &a) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    reply_account(req, 200, &a);
    cl_schema_free(&payments_account_type, &a);
}

cl_status payments_rest_routes(cl_router *r, const void *ops, cl_error *err)
{
    void *arg = (void *)ops; /* handlers only read through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/accounts", "payments:write", open_account, arg, NULL},
        {"GET", "/api/v1/accounts/{id}", "payments:read", get_account, arg, "history_limit"},
        {"POST", "/api/v1/accounts/{id}/deposits", "payments:write", deposit, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
