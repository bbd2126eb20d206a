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
#include "cleave/util.h"

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

/*
 * Default deny: a process configured with no token accepts no call, since its RPC routes
 * reach every operation of its modules with no permission check of their own.
 */
static int authorized(cl_http_req *req, const char *token)
{
    const char *auth;

    if (token == NULL || token[0] == '\0') {
        return 0;
    }
    auth = cl_http_header(req, "Authorization");
    return auth != NULL && strncmp(auth, "Bearer ", 7) == 0 && token_equal(auth + 7, token);
}

/* The longest deadline a caller may ask for; the request timeout is shorter anyway. */
#define RPC_DEADLINE_MAX_MS ((int64_t)24 * 60 * 60 * 1000)

/*
 * Copies header name into dst[size]; -1 after refusing (400 naming the header) a value
 * that does not fit, since a cut key or principal would silently become another one.
 */
static int copy_header(cl_http_req *req, const char *name, char *dst, size_t size)
{
    const char *v = cl_http_header(req, name);
    cl_error err;

    if (v == NULL || cl_strlcpy(dst, v, size) == 0) {
        return 0;
    }
    cl_error_set(&err, CL_INVALID, name, "%s must be under %zu bytes", name, size);
    cl_http_reply_error(req, &err);
    return -1;
}

/*
 * Parses X-Cleave-Deadline-Ms: milliseconds left, digits only. Values past a day are
 * clamped: they only mean "no sooner than our own timeout", and now + an unbounded
 * value would overflow. Returns -1 after refusing a malformed value (400 naming it).
 */
static int deadline_from_header(cl_http_req *req, cl_ctx *ctx)
{
    const char *v = cl_http_header(req, "X-Cleave-Deadline-Ms");
    int64_t left = 0;
    cl_error err;

    if (v == NULL) {
        return 0;
    }
    for (const char *p = v;; p++) {
        if (*p == '\0' && p != v) {
            break;
        }
        if (*p < '0' || *p > '9') {
            cl_error_set(&err, CL_INVALID, "X-Cleave-Deadline-Ms",
                         "X-Cleave-Deadline-Ms must be a number of milliseconds (digits only)");
            cl_http_reply_error(req, &err);
            return -1;
        }
        if (left < RPC_DEADLINE_MAX_MS) {
            left = left * 10 + (*p - '0');
        }
    }
    if (left > RPC_DEADLINE_MAX_MS) {
        left = RPC_DEADLINE_MAX_MS;
    }
    /* The caller's deadline wins when it is sooner than our own request timeout. */
    int64_t caller = cl_now_ms() + left;
    if (ctx->deadline_ms == 0 || caller < ctx->deadline_ms) {
        ctx->deadline_ms = caller;
    }
    return 0;
}

/*
 * Fills the call context from the caller's headers. The request id and the idempotency
 * key come from the HTTP layer, which refuses a key longer than CL_IDEMPOTENCY_KEY_MAX
 * rather than letting it be cut here. Returns -1 after refusing a header that is
 * malformed or too long.
 */
static int ctx_from_headers(cl_http_req *req, cl_ctx *ctx)
{
    const char *v;

    if (copy_header(req, "X-Cleave-Principal", ctx->principal, sizeof(ctx->principal)) != 0) {
        return -1;
    }
    /* A malformed traceparent only loses the trace (W3C Trace Context says to restart it). */
    (void)cl_traceparent_parse(cl_http_header(req, "traceparent"), ctx->trace_id, ctx->span_id);
    v = cl_http_header(req, "X-Cleave-Read-Primary");
    ctx->read_primary = v != NULL && strcmp(v, "1") == 0;
    v = cl_http_header(req, "X-Cleave-Own-Only");
    ctx->own_only = v != NULL && strcmp(v, "1") == 0;
    return deadline_from_header(req, ctx);
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
        cl_error_set(&ctx->err, CL_UNAUTHORIZED, NULL,
                     svc->token != NULL && svc->token[0] != '\0'
                         ? "a valid service token is required"
                         : "this process accepts no service calls: it has no "
                           "CLEAVE_SERVICE_TOKEN");
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
    if (ctx_from_headers(req, ctx) != 0) {
        return;
    }
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
        op->invoke(svc->module, ctx, in, out) != CL_OK) {
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
    cl_route route = {"POST", pattern, CL_PERM_SERVICE, dispatch, (void *)svc, NULL};

    snprintf(pattern, sizeof(pattern), CL_RPC_PREFIX "%s/{op}", svc->api->name);
    return cl_router_add(r, &route, err);
}
