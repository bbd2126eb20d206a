/*
 * cleave/status.h - the one status enum of the whole platform, and the call context.
 *
 * Every module operation takes a cl_ctx and returns a cl_status. The statuses are
 * generated from one X-macro table so that the enum, the names used on the wire,
 * the HTTP status and the default message can never drift apart (libuv's UV_ERRNO_MAP).
 */
#ifndef CLEAVE_STATUS_H
#define CLEAVE_STATUS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* X(ENUM, wire name, HTTP status, default message) */
#define CL_STATUS_MAP(X)                                                                           \
    X(OK, ok, 200, "ok")                                                                           \
    X(INVALID, invalid, 400, "the request is invalid")                                             \
    X(NOT_FOUND, not_found, 404, "the resource does not exist")                                    \
    X(CONFLICT, conflict, 409, "the request conflicts with the current state")                     \
    X(UNAUTHORIZED, unauthorized, 401, "authentication is required")                               \
    X(FORBIDDEN, forbidden, 403, "the caller lacks the permission")                                \
    X(UNAVAILABLE, unavailable, 503, "a dependency is unavailable")                                \
    X(DEADLINE_EXCEEDED, deadline_exceeded, 504, "the deadline expired")                           \
    X(INTERNAL, internal, 500, "an internal error occurred")

typedef enum cl_status {
#define CL__STATUS_ENUM(e, name, http, msg) CL_##e,
    CL_STATUS_MAP(CL__STATUS_ENUM)
#undef CL__STATUS_ENUM
        CL_STATUS_COUNT
} cl_status;

/* The wire name ("not_found"); "unknown" for a value outside the table. Static storage. */
const char *cl_status_name(cl_status st);
/* The HTTP status that represents st; 500 for a value outside the table. */
int cl_status_http(cl_status st);
/* The default human message for st. Static storage. */
const char *cl_status_message(cl_status st);
/* Parses a wire name. Returns CL_OK and writes *out on success, CL_INVALID otherwise. */
cl_status cl_status_parse(const char *name, cl_status *out);

/*
 * Error details live in fixed buffers owned by the caller, so that reporting an error
 * never allocates (jansson's json_error_t). field names the offending input field for
 * CL_INVALID ("price", "items[2].sku"), or is empty.
 */
typedef struct cl_error {
    cl_status status;
    char message[256];
    char field[64];
} cl_error;

/* Fills err (which may be NULL) and returns st. message is printf-style; field may be NULL. */
cl_status cl_error_set(cl_error *err, cl_status st, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
cl_status cl_error_vset(cl_error *err, cl_status st, const char *field, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 0)))
#endif
    ;
/* Resets err to CL_OK with empty message and field. */
void cl_error_clear(cl_error *err);

/*
 * The longest Idempotency-Key, in bytes. Declared once: the REST side, the RPC server and
 * cl_ctx all take their limit from here, so a key the API accepts travels whole to the
 * module that stores it, and a longer one is refused everywhere alike, never cut.
 */
#define CL_IDEMPOTENCY_KEY_MAX         127
/*
 * The one answer (CL_CONFLICT, field "idempotency_key") for a key reused with another
 * request, whichever module, binding or race produced it: clients match on it.
 */
#define CL_IDEMPOTENCY_CONFLICT_DETAIL "Idempotency-Key was already used with a different request"

/*
 * The longest end user's access token a call context carries (cl_ctx.user_token). The
 * gateway refuses a longer bearer token rather than let a call lose the user it acts for.
 */
#define CL_CTX_USER_TOKEN_MAX          4096

/*
 * The call context, passed to every module operation. Plain data, so that a remote
 * binding carries it across the network unchanged (as headers). It is owned by the
 * caller and lives on the caller's stack for the length of one call.
 */
/* W3C Trace Context: at least 512 characters of tracestate are to be passed on. */
#define CL_TRACESTATE_MAX              512

typedef struct cl_ctx {
    int64_t deadline_ms;                    /* absolute, cl_now_ms() clock; 0 means none */
    char request_id[64];                    /* X-Request-Id of the request that caused this call */
    char trace_id[33];                      /* W3C trace context: 32 hex digits, or empty */
    char span_id[17];                       /* 16 hex digits, or empty */
    int trace_sampled;                      /* the trace's spans are recorded (cleave/trace.h) */
    char tracestate[CL_TRACESTATE_MAX + 1]; /* W3C tracestate, passed on as it came */
    char principal[128]; /* who is calling: "user:42", "service:widgets", or empty */
    /* Makes a retried write safe, or empty; set it with cl_ctx_set_idempotency_key. */
    char idempotency_key[CL_IDEMPOTENCY_KEY_MAX + 1];
    cl_error err; /* details of the last failed operation */
    /*
     * Set by a caller that must see its own earlier write (reading an order right after
     * creating it): reads go to the primary database, never to a replica. Travels as
     * X-Cleave-Read-Primary: 1.
     */
    int read_primary;
    /*
     * Set by a caller that will wait up to this many milliseconds for the outcome of the
     * work a call starts (a REST handler, from RFC 7240's "Prefer: wait"), or 0: a module
     * may then do that work on the caller's thread within that time, instead of handing it
     * to a thread of its own. It changes where the work runs, never what the call answers.
     * Travels as X-Cleave-Wait-Ms.
     */
    int64_t wait_ms;
    /*
     * Set by the gateway for a caller who may act only on what it owns (a customer, by
     * its role): modules answer not_found for another principal's objects and list only
     * the caller's. Between services it never travels as a claim of the caller: the callee
     * derives it from user_token's verified roles (ADR 0030).
     */
    int own_only;
    /*
     * The end user's access token the gateway verified, or empty (sagas, relays, other
     * background work act as the service alone). It travels to extracted modules as
     * X-Cleave-User-Token, where principal and own_only are derived from it again, so
     * that who the user is crosses the network signed. A call that copies principal
     * and own_only into a new context copies this too (cl_ctx_act_for).
     */
    char user_token[CL_CTX_USER_TOKEN_MAX + 1];
    /*
     * Set by the remote binding when an answer of this call came from its stale fallback
     * (ADR 0033), with the oldest such answer's age: the HTTP server then marks the
     * response (Cache-Status, Age). Never sent across the network.
     */
    int stale;
    int64_t stale_age_ms;
    /*
     * Set by a caller that sends a read's answer on as JSON without reading it (a REST
     * handler), for one call: a caching decorator (cleave/cache.h) that holds the answer
     * parsed then puts a new reference to it in cached_json (cl_cache_json_text gives its
     * bytes) and leaves the typed response empty, instead of decoding the answer into it
     * for the caller to encode again. On CL_OK the caller finds exactly one of the two
     * filled, and releases cached_json (cl_cache_json_release). Never sent across the
     * network; a context copied for another call must not carry it.
     */
    int accept_cached_json;
    struct cl_cache_json *cached_json;
} cl_ctx;

/* Zeroes ctx and sets a deadline timeout_ms from now (no deadline when timeout_ms <= 0). */
void cl_ctx_init(cl_ctx *ctx, int64_t timeout_ms);
/*
 * Sets ctx's idempotency key from an Idempotency-Key header value; NULL clears it.
 * CL_INVALID (field "Idempotency-Key") for an empty key, one longer than
 * CL_IDEMPOTENCY_KEY_MAX bytes or one with control characters; ctx keeps no key then.
 */
cl_status cl_ctx_set_idempotency_key(cl_ctx *ctx, const char *key);
/* Fails ctx with the documented conflict of a reused key: CL_IDEMPOTENCY_CONFLICT_DETAIL. */
cl_status cl_idempotency_conflict(cl_ctx *ctx);
/*
 * Makes ctx act for the same caller as from: principal, own_only and user token. Use it
 * instead of copying principal and own_only alone, which would lose the signed token and
 * with it the user at a remote callee.
 */
void cl_ctx_act_for(cl_ctx *ctx, const cl_ctx *from);
/* Milliseconds left before ctx's deadline (INT64_MAX without one, 0 once it has passed). */
int64_t cl_ctx_remaining_ms(const cl_ctx *ctx);
/* Sets ctx->err and returns st: the one-line way an operation fails. */
cl_status cl_fail(cl_ctx *ctx, cl_status st, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* A monotonic clock in milliseconds, for deadlines and durations. */
int64_t cl_now_ms(void);
/* Wall clock as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z") into buf[32]. */
void cl_now_rfc3339(char buf[32]);

/*
 * Copies src into dst[size] always NUL-terminated; returns 0, or -1 when truncated. A
 * truncated copy ends on a UTF-8 character boundary, never inside a character.
 */
int cl_strlcpy(char *dst, const char *src, size_t size);
/*
 * The largest length <= n at which s[0..n) can be cut without splitting a UTF-8 character:
 * n itself unless the bytes just before it start a multi-byte sequence that n cuts short.
 */
size_t cl_utf8_cut(const char *s, size_t n);
/* The length of the well-formed UTF-8 character at text[0..len) (RFC 3629), or 0 when the
 * bytes there are not one (len > 0). */
size_t cl_utf8_len(const char *text, size_t len);
/* The value of the hex digit c (either case), or -1. */
int cl_hex_value(char c);
/* The 4 hex digits at s as a number (0 to 0xFFFF), or -1 when one of them is not hex. */
long cl_hex4(const char *s);
/* The UTF-8 of code point cp (below 0x110000) into out, which has 4 bytes free; its length. */
size_t cl_utf8_put(char *out, uint32_t cp);

#endif /* CLEAVE_STATUS_H */
