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

/* Whether the call presents the development mode's static token (never when it has none). */
static int dev_token_presented(cl_http_req *req, const char *token)
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
 * Copies the value of header name (v, NULL when absent) into dst[size]. A value that does
 * not fit is refused, since a cut key or principal would silently become another one.
 */
static cl_status copy_header(const char *name, const char *v, char *dst, size_t size, cl_error *err)
{
    if (v == NULL || cl_strlcpy(dst, v, size) == 0) {
        return CL_OK;
    }
    return cl_error_set(err, CL_INVALID, name, "%s must be under %zu bytes", name, size);
}

/*
 * Parses a header of milliseconds (v, NULL when absent: 0) into *ms: digits only. Values past
 * a day are clamped: as a deadline they only mean "no sooner than our own timeout", and
 * now + an unbounded value would overflow.
 */
static cl_status ms_header(const char *name, const char *v, int64_t *ms, cl_error *err)
{
    int64_t n = 0;

    *ms = 0;
    if (v == NULL) {
        return CL_OK;
    }
    for (const char *p = v;; p++) {
        if (*p == '\0' && p != v) {
            break;
        }
        if (*p < '0' || *p > '9') {
            return cl_error_set(err, CL_INVALID, name,
                                "%s must be a number of milliseconds (digits only)", name);
        }
        if (n < RPC_DEADLINE_MAX_MS) {
            n = n * 10 + (*p - '0');
        }
    }
    *ms = n < RPC_DEADLINE_MAX_MS ? n : RPC_DEADLINE_MAX_MS;
    return CL_OK;
}

/* X-Cleave-Deadline-Ms (v): the caller's deadline, when sooner than our own request timeout. */
static cl_status deadline_from_header(const char *v, cl_ctx *ctx, cl_error *err)
{
    int64_t left;
    cl_status st = ms_header("X-Cleave-Deadline-Ms", v, &left, err);

    if (st == CL_OK && v != NULL) {
        int64_t caller = cl_now_ms() + left;
        if (ctx->deadline_ms == 0 || caller < ctx->deadline_ms) {
            ctx->deadline_ms = caller;
        }
    }
    return st;
}

cl_status cl__rpc_ctx_from_headers(const cl__rpc_headers *h, cl_ctx *ctx, cl_error *err)
{
    cl_status st = copy_header("X-Cleave-Principal", h->principal, ctx->principal,
                               sizeof(ctx->principal), err);

    if (st != CL_OK) {
        return st;
    }
    /* The trace (traceparent) was continued where the request came in (cl_trace_enter). */
    ctx->read_primary = h->read_primary != NULL && strcmp(h->read_primary, "1") == 0;
    if (h->principal != NULL || h->own_only != NULL) {
        ctx->own_only = h->own_only != NULL && strcmp(h->own_only, "1") == 0;
    }
    st = ms_header("X-Cleave-Wait-Ms", h->wait_ms, &ctx->wait_ms, err);
    return st == CL_OK ? deadline_from_header(h->deadline_ms, ctx, err) : st;
}

/*
 * Fills the call context from the caller's headers; -1 after refusing one (400 naming it).
 * The principal headers are read only when trusted (development mode): otherwise the
 * authenticator has set principal and own_only from verified tokens, and a caller's claim
 * of either is ignored.
 */
static int ctx_from_headers(cl_http_req *req, cl_ctx *ctx, int trusted)
{
    cl__rpc_headers h = {
        .principal = trusted ? cl_http_header(req, "X-Cleave-Principal") : NULL,
        .read_primary = cl_http_header(req, "X-Cleave-Read-Primary"),
        .own_only = trusted ? cl_http_header(req, "X-Cleave-Own-Only") : NULL,
        .deadline_ms = cl_http_header(req, "X-Cleave-Deadline-Ms"),
        .wait_ms = cl_http_header(req, "X-Cleave-Wait-Ms"),
    };
    cl_error err;

    if (cl__rpc_ctx_from_headers(&h, ctx, &err) != CL_OK) {
        cl_http_reply_error(req, &err);
        return -1;
    }
    return 0;
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

/*
 * Default deny: a call is served only when it proves who makes it, since the RPC routes
 * reach every operation of a module with no permission check of their own. A public
 * operation (it authenticates its callers itself) acts for nobody; the development mode's
 * static token makes the principal headers trusted (*trusted); anything else goes to the
 * service's authenticator. A process with neither accepts no call but public ones.
 */
static cl_status authenticate(cl_http_req *req, const cl_rpc_service *svc, const cl_op *op,
                              cl_ctx *ctx, int *trusted)
{
    *trusted = 0;
    ctx->principal[0] = '\0';
    ctx->user_token[0] = '\0';
    ctx->own_only = 0;
    if ((op->flags & CL_OP_PUBLIC) != 0) {
        return CL_OK;
    }
    if (dev_token_presented(req, svc->dev_token)) {
        *trusted = 1;
        return CL_OK;
    }
    if (svc->authenticate != NULL) {
        return svc->authenticate(svc->auth_arg, req, svc->api->name, ctx);
    }
    cl_http_set_header(req, "WWW-Authenticate", "Bearer");
    return cl_error_set(&ctx->err, CL_UNAUTHORIZED, NULL,
                        svc->dev_token != NULL && svc->dev_token[0] != '\0'
                            ? "a valid service token is required"
                            : "this process accepts no service calls: it has no way to "
                              "authenticate them");
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
    int trusted = 0;

    if (op == NULL) {
        cl_error_set(&ctx->err, CL_NOT_FOUND, NULL, "%s has no operation '%s'", svc->api->name,
                     name != NULL ? name : "");
        reply_failure(req, &ctx->err);
        return;
    }
    if (authenticate(req, svc, op, ctx, &trusted) != CL_OK) {
        reply_failure(req, &ctx->err);
        return;
    }
    if (ctx_from_headers(req, ctx, trusted) != 0) {
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
    cl_http_reply_type(req, 200, op->resp, out);
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
