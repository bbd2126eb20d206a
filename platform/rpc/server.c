/*
 * The RPC server dispatch: one route per module, POST /rpc/v1/<module>/{op}, driven by
 * the module's operation list. Decoding, the call and encoding are the same code for
 * every operation of every module.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/rpc.h"
#include "rpc_internal.h"

/* Compares without an early exit, so timing does not reveal how much of a token matched. */
static int token_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);

    for (size_t i = 0; i < na && i < nb; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static int authorized(cl_http_req *req, const char *token)
{
    const char *auth;

    if (token == NULL || token[0] == '\0') {
        return 1;
    }
    auth = cl_http_header(req, "Authorization");
    return auth != NULL && strncmp(auth, "Bearer ", 7) == 0 && token_equal(auth + 7, token);
}

/*
 * Fills the call context from the caller's headers. The request id and the idempotency
 * key come from the HTTP layer, which refuses a key longer than CL_IDEMPOTENCY_KEY_MAX
 * rather than letting it be cut here.
 */
static void ctx_from_headers(cl_http_req *req, cl_ctx *ctx)
{
    const char *v;

    v = cl_http_header(req, "X-Cleave-Principal");
    cl_strlcpy(ctx->principal, v, sizeof(ctx->principal));
    v = cl_http_header(req, "traceparent");
    if (v != NULL) {
        cl__rpc_parse_traceparent(v, ctx);
    }
    v = cl_http_header(req, "X-Cleave-Read-Primary");
    ctx->read_primary = v != NULL && strcmp(v, "1") == 0;
    v = cl_http_header(req, "X-Cleave-Deadline-Ms");
    if (v != NULL) {
        char *end;
        long long left = strtoll(v, &end, 10);
        /* The caller's deadline wins when it is sooner than our own request timeout. */
        if (*end == '\0' && left >= 0) {
            int64_t caller = cl_now_ms() + left;
            if (ctx->deadline_ms == 0 || caller < ctx->deadline_ms) {
                ctx->deadline_ms = caller;
            }
        }
    }
}

static void reply_failure(cl_http_req *req, const cl_error *err)
{
    json_t *extra = json_pack("{s:s}", "cleave_status", cl_status_name(err->status));
    char slug[32];

    /* The field travels for every status (a conflict on "sku"), not only for invalid. */
    if (err->field[0] != '\0') {
        json_object_set_new(extra, "cleave_field", json_string(err->field));
    }
    if (err->status == CL_INVALID && err->field[0] != '\0') {
        json_object_set_new(extra, "invalid_params",
                            json_pack("[{s:s,s:s}]", "name", err->field, "reason", err->message));
    }
    cl_strlcpy(slug, cl_status_name(err->status), sizeof(slug));
    for (char *p = slug; *p != '\0'; p++) {
        if (*p == '_') {
            *p = '-';
        }
    }
    cl_http_reply_problem(req, cl_status_http(err->status), slug, cl_status_message(err->status),
                          err->message, extra);
}

static void dispatch(cl_http_req *req, void *arg)
{
    const cl_rpc_service *svc = arg;
    const char *name = cl_http_param(req, "op");
    const cl_op *op = cl_op_find(svc->api->ops, svc->api->nops, name != NULL ? name : "");
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    void *in = NULL;
    void *out = NULL;

    if (!authorized(req, svc->token)) {
        cl_error_set(&ctx->err, CL_UNAUTHORIZED, NULL, "a valid service token is required");
        cl_http_set_header(req, "WWW-Authenticate", "Bearer");
        reply_failure(req, &ctx->err);
        return;
    }
    if (op == NULL) {
        cl_error_set(&ctx->err, CL_NOT_FOUND, NULL, "%s has no operation '%s'", svc->api->name,
                     name != NULL ? name : "");
        reply_failure(req, &ctx->err);
        return;
    }
    ctx_from_headers(req, ctx);
    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    in = calloc(1, op->req->size);
    out = calloc(1, op->resp->size);
    if (in == NULL || out == NULL) {
        cl_error_set(&ctx->err, CL_INTERNAL, NULL, "out of memory");
        reply_failure(req, &ctx->err);
        goto out;
    }
    /* Lenient: a newer caller may send fields this service does not know yet. */
    if (cl_schema_from_json(op->req, body, CL_DECODE_LENIENT, in, &ctx->err) != CL_OK ||
        op->invoke(svc->ops, ctx, in, out) != CL_OK) {
        reply_failure(req, &ctx->err);
        goto out;
    }
    cl_http_reply_json(req, 200, cl_schema_to_json(op->resp, out));
    cl_schema_free(op->resp, out);
out:
    cl_schema_free(op->req, in);
    free(in);
    free(out);
    json_decref(body);
}

cl_status cl_rpc_routes(cl_router *r, const cl_rpc_service *svc, cl_error *err)
{
    char pattern[128];
    cl_route route = {"POST", pattern, "service", dispatch, (void *)svc};

    snprintf(pattern, sizeof(pattern), CL_RPC_PREFIX "%s/{op}", svc->api->name);
    return cl_router_add(r, &route, err);
}
