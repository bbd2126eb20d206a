/*
 * Fuzz target: the RPC server's request decoding, in dispatch's order: the call
 * context's headers, the JSON body, then the operation's request codec (lenient, as the
 * wire API decodes).
 *
 * Input: byte 0 picks an operation of any module; then one line each for
 * X-Cleave-Principal, traceparent, X-Cleave-Read-Primary, X-Cleave-Own-Only,
 * X-Cleave-Deadline-Ms and Idempotency-Key (an empty line: the header is absent); the
 * rest is the body.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/trace.h"
#include "cleave/util.h"
#include "fuzz.h"
#include "http_internal.h"
#include "rpc_internal.h"

/* Hex digits only, exactly n of them. */
static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0') {
            return 0;
        }
    }
    return 1;
}

static void rpc_decode_body(const cl_op *op, const uint8_t *data, size_t size, cl_ctx *ctx)
{
    json_t *body = NULL;
    json_error_t jerr;
    void *in;

    /* 32: the server's default nesting limit (cl_http_options.max_json_depth). */
    if (cl__http_parse_json((const char *)data, size, 32, 1, &body, &jerr) != CL__HTTP_JSON_OK) {
        return;
    }
    FUZZ_CHECK(json_is_object(body));
    in = calloc(1, op->req->size);
    FUZZ_CHECK(in != NULL);
    if (cl_schema_from_json(op->req, body, CL_DECODE_LENIENT, in, &ctx->err) != CL_OK) {
        FUZZ_CHECK(ctx->err.status == CL_INVALID);
    }
    cl_schema_free(op->req, in);
    free(in);
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *lines[6];
    cl__rpc_headers h;
    const cl_op *op;
    cl_ctx ctx;
    cl_error err = {0};

    if (size < 1) {
        return 0;
    }
    op = fuzz_op(data[0] % fuzz_op_count());
    data++;
    size--;
    for (size_t i = 0; i < 6; i++) {
        lines[i] = fuzz_line(&data, &size);
    }
    h = (cl__rpc_headers){
        .principal = lines[0][0] != '\0' ? lines[0] : NULL,
        .read_primary = lines[2][0] != '\0' ? lines[2] : NULL,
        .own_only = lines[3][0] != '\0' ? lines[3] : NULL,
        .deadline_ms = lines[4][0] != '\0' ? lines[4] : NULL,
        .wait_ms = lines[4][0] != '\0' ? lines[4] : NULL, /* the same digits-only rule */
    };
    cl_ctx_init(&ctx, 10000);
    /* The HTTP layer continues or restarts the trace before the RPC headers are read. */
    cl_trace_enter(&ctx, lines[1][0] != '\0' ? lines[1] : NULL, NULL);
    if (lines[5][0] != '\0' && cl_ctx_set_idempotency_key(&ctx, lines[5]) != CL_OK) {
        FUZZ_CHECK(ctx.idempotency_key[0] == '\0');
        goto out;
    }
    if (cl__rpc_ctx_from_headers(&h, &ctx, &err) != CL_OK) {
        FUZZ_CHECK(err.status == CL_INVALID && err.field[0] != '\0');
        goto out;
    }
    /*
     * A trace is kept whole or restarted (no parent then); a deadline never moves later
     * than our own.
     */
    FUZZ_CHECK(is_hex(ctx.trace_id, 32) && (ctx.span_id[0] == '\0' || is_hex(ctx.span_id, 16)));
    FUZZ_CHECK(ctx.deadline_ms > 0 && ctx.deadline_ms <= cl_now_ms() + 10000);
    FUZZ_CHECK(ctx.wait_ms >= 0 && ctx.wait_ms <= (int64_t)24 * 60 * 60 * 1000);
    FUZZ_CHECK(h.principal == NULL || strcmp(ctx.principal, h.principal) == 0);
    rpc_decode_body(op, data, size, &ctx);
out:
    for (size_t i = 0; i < 6; i++) {
        free(lines[i]);
    }
    return 0;
}
