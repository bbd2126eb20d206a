/* The status table, error details and the call context. */
#include "cleave/status.h"
#include "cleave/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct status_row {
    const char *name;
    int http;
    const char *message;
} status_row;

static const status_row status_rows[] = {
#define CL__STATUS_ROW(e, name, http, msg) {#name, http, msg},
    CL_STATUS_MAP(CL__STATUS_ROW)
#undef CL__STATUS_ROW
};

static const status_row *status_lookup(cl_status st)
{
    if ((int)st < 0 || st >= CL_STATUS_COUNT) {
        return NULL;
    }
    return &status_rows[st];
}

const char *cl_status_name(cl_status st)
{
    const status_row *row = status_lookup(st);
    return row != NULL ? row->name : "unknown";
}

int cl_status_http(cl_status st)
{
    const status_row *row = status_lookup(st);
    return row != NULL ? row->http : 500;
}

const char *cl_status_message(cl_status st)
{
    const status_row *row = status_lookup(st);
    return row != NULL ? row->message : "unknown status";
}

cl_status cl_status_parse(const char *name, cl_status *out)
{
    if (name == NULL) {
        return CL_INVALID;
    }
    for (int i = 0; i < CL_STATUS_COUNT; i++) {
        if (strcmp(status_rows[i].name, name) == 0) {
            *out = (cl_status)i;
            return CL_OK;
        }
    }
    return CL_INVALID;
}

size_t cl_utf8_len(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

int cl_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

long cl_hex4(const char *s)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        int h = cl_hex_value(s[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

size_t cl_utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t cl_utf8_cut(const char *s, size_t n)
{
    size_t start = n;
    size_t need;
    unsigned char lead;

    /* Step back over at most three continuation bytes (10xxxxxx) to the lead byte. */
    while (start > 0 && n - start < 3 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) {
        start--;
    }
    if (start == 0) {
        return n;
    }
    lead = (unsigned char)s[start - 1];
    if (lead >= 0xF0) {
        need = 4;
    } else if (lead >= 0xE0) {
        need = 3;
    } else if (lead >= 0xC0) {
        need = 2;
    } else {
        return n; /* ASCII, or stray continuation bytes: nothing to keep whole */
    }
    /* The character starting at start - 1 has n - start + 1 of its need bytes. */
    return n - start + 1 < need ? start - 1 : n;
}

int cl_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n;

    if (size == 0) {
        return -1;
    }
    if (src == NULL) {
        src = "";
    }
    n = strlen(src);
    if (n >= size) {
        n = cl_utf8_cut(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

cl_status cl_error_vset(cl_error *err, cl_status st, const char *field, const char *fmt, va_list ap)
{
    if (err == NULL) {
        return st;
    }
    err->status = st;
    cl_strlcpy(err->field, field, sizeof(err->field));
    if (fmt != NULL) {
        /* Written aside first: the arguments may quote err->message itself. */
        char message[sizeof(err->message)];
        int n = vsnprintf(message, sizeof(message), fmt, ap);
        /* A message cut short must not end inside a character of the input it quotes. */
        if (n >= (int)sizeof(message)) {
            message[cl_utf8_cut(message, sizeof(message) - 1)] = '\0';
        }
        memcpy(err->message, message, sizeof(message));
    } else {
        cl_strlcpy(err->message, cl_status_message(st), sizeof(err->message));
    }
    return st;
}

cl_status cl_error_set(cl_error *err, cl_status st, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cl_error_vset(err, st, field, fmt, ap);
    va_end(ap);
    return st;
}

void cl_error_clear(cl_error *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

int64_t cl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cl_now_rfc3339(char buf[32])
{
    cl_rfc3339_format(cl_wall_ms(), buf);
}

void cl_ctx_init(cl_ctx *ctx, int64_t timeout_ms)
{
    memset(ctx, 0, sizeof(*ctx));
    if (timeout_ms > 0) {
        ctx->deadline_ms = cl_now_ms() + timeout_ms;
    }
}

void cl_ctx_act_for(cl_ctx *ctx, const cl_ctx *from)
{
    memcpy(ctx->principal, from->principal, sizeof(ctx->principal));
    memcpy(ctx->user_token, from->user_token, sizeof(ctx->user_token));
    ctx->own_only = from->own_only;
}

cl_status cl_ctx_set_idempotency_key(cl_ctx *ctx, const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;

    ctx->idempotency_key[0] = '\0';
    if (key == NULL) {
        return CL_OK;
    }
    if (n == 0 || n > CL_IDEMPOTENCY_KEY_MAX) {
        return cl_fail(ctx, CL_INVALID, "Idempotency-Key", "Idempotency-Key must be 1 to %d bytes",
                       CL_IDEMPOTENCY_KEY_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f) {
            return cl_fail(ctx, CL_INVALID, "Idempotency-Key",
                           "Idempotency-Key must not contain control characters");
        }
    }
    memcpy(ctx->idempotency_key, key, n + 1);
    return CL_OK;
}

cl_status cl_idempotency_conflict(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_CONFLICT, "idempotency_key", "%s", CL_IDEMPOTENCY_CONFLICT_DETAIL);
}

int64_t cl_ctx_remaining_ms(const cl_ctx *ctx)
{
    int64_t left;

    if (ctx == NULL || ctx->deadline_ms == 0) {
        return INT64_MAX;
    }
    left = ctx->deadline_ms - cl_now_ms();
    return left > 0 ? left : 0;
}

cl_status cl_fail(cl_ctx *ctx, cl_status st, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cl_error_vset(ctx != NULL ? &ctx->err : NULL, st, field, fmt, ap);
    va_end(ap);
    return st;
}
