/*
 * cleave/rpc.h - a module's operations over HTTP/JSON: the server dispatch and the
 * remote binding (client stub), both driven by the module's operation list.
 *
 * Wire API, version 1:
 *   POST /rpc/v1/<module>/<operation>      body: the request as JSON (unknown fields ignored)
 *   200 -> the response as JSON
 *   4xx/5xx -> application/problem+json with "cleave_status" (the wire status name),
 *              "cleave_field" (the field named by the error, if any) and, for invalid
 *              input, "invalid_params":[{"name","reason"}]
 * The call context travels in headers:
 *   X-Request-Id, traceparent (W3C), Idempotency-Key, X-Cleave-Deadline-Ms (milliseconds
 *   left), X-Cleave-Read-Primary, X-Cleave-Wait-Ms (cl_ctx.wait_ms, when not 0),
 *   Authorization: Bearer <the caller's service token, a JWT for this module>,
 *   X-Cleave-User-Token (the end user's access token, when the call acts for one).
 * The callee derives principal and own_only from the verified tokens, never from a header
 * the caller asserts (ADR 0030). Only in the insecure development mode (a shared
 * static token, cl_rpc_service.dev_token) do X-Cleave-Principal and X-Cleave-Own-Only
 * travel and get trusted as sent. Operations flagged CL_OP_PUBLIC need no service token.
 * A caller sees exactly the status, message and field the module returned; transport
 * failures become CL_UNAVAILABLE, or CL_DEADLINE_EXCEEDED when the deadline ran out.
 *
 * Each client guards its target (ADR 0023): a circuit breaker that fails calls at once
 * while the target is failing, and retries of operations declared CL_OP_READ or
 * CL_OP_IDEMPOTENT only, with backoff and full jitter, within the call's deadline and a
 * retry budget (retries at most a share of calls), so that an outage cannot multiply
 * the load on the target.
 */
#ifndef CLEAVE_RPC_H
#define CLEAVE_RPC_H

#include "cleave/http.h"
#include "cleave/metrics.h"
#include "cleave/module.h"
#include "cleave/retry.h"

#define CL_RPC_PREFIX "/rpc/v1/"

/* --- server ----------------------------------------------------------------------- */

/* A module served over RPC. Owned by the caller; must outlive the router. */
/*
 * Authenticates the caller of one call of module, before its body is read: on CL_OK it has
 * set ctx's principal, own_only and user_token from what it verified. Otherwise ctx->err
 * says why, with CL_UNAUTHORIZED (the answer is a 401; the authenticator sets its
 * WWW-Authenticate header) or CL_UNAVAILABLE (the keys could not be had: a 503).
 */
typedef cl_status (*cl_rpc_authenticate)(void *arg, cl_http_req *req, const char *module,
                                         cl_ctx *ctx);

typedef struct cl_rpc_service {
    const cl_module_api *api;
    const cl_handle *module; /* the instance served (borrowed) */
    /*
     * Development only: a shared static token a caller may present instead of a service
     * JWT; its caller's X-Cleave-Principal and X-Cleave-Own-Only are then trusted as sent.
     * NULL or "": not accepted.
     */
    const char *dev_token;
    /* Verifies every other call (NULL: none is accepted); auth_arg is its argument. */
    cl_rpc_authenticate authenticate;
    void *auth_arg;
} cl_rpc_service;

/* Adds POST /rpc/v1/<module>/{op} dispatching to svc. The route's permission is "service". */
cl_status cl_rpc_routes(cl_router *r, const cl_rpc_service *svc, cl_error *err);

/* --- client ----------------------------------------------------------------------- */

typedef struct cl_rpc_client cl_rpc_client;

typedef struct cl_rpc_options {
    /*
     * Kept-alive connections per target, at most 64; 0 means 16. Each holds a worker of
     * the service while idle, a quarter of a default service's 64 (ADR 0045).
     */
    int max_idle;
    /*
     * The longest one call may take (CLEAVE_<MODULE>_TIMEOUT_MS): it caps the caller's
     * deadline, and is the deadline of calls without one; 0: the caller's deadline, or 10 s.
     */
    int64_t default_timeout_ms;
    int64_t connect_timeout_ms; /* 0 means 1000 */
    /*
     * The caller's service credential for module, called before each request of an
     * operation not flagged CL_OP_PUBLIC: writes a bearer token for the module's audience
     * into token[size] (it caches and renews). Its failure fails the call with its status.
     * NULL: dev_token, if any, is sent instead.
     */
    cl_status (*credential)(void *arg, const char *module, char *token, size_t size, cl_error *err);
    void *credential_arg;
    /*
     * Development only: a shared static token sent as Authorization: Bearer with the
     * principal headers, when there is no credential. NULL: none.
     */
    const char *dev_token;
    /*
     * The circuit breaker; a field left 0 takes its default: open at 50 % failures of at
     * least 20 calls within 10 s, refuse for 5 s, then let 1 probe through.
     */
    cl_breaker_options breaker;
    int retry_max_attempts;       /* attempts of a retryable call; 0 means 3, 1 never retries */
    int64_t retry_backoff_ms;     /* ceiling of the first retry's wait; 0 means 25 */
    int64_t retry_backoff_max_ms; /* largest ceiling; 0 means 1000 */
    int retry_budget_pct;         /* retries per 100 calls at most; 0 means 10, -1 means none */
    /*
     * Test builds only (CLEAVE_TEST_RPC_FAULT): faults injected into every attempt,
     * "<module>=<fault>[,<module>=<fault>...]" where a fault is "unavailable" (fail as an
     * unreachable target, without a network call), "fail:N" (the first N attempts so),
     * or "delay:MS" (wait MS before each attempt, within the deadline). Entries for other
     * modules are ignored. NULL: none.
     */
    const char *fault;
    /*
     * The stale fallback of operations declared CL_OP_STALE_OK (ADR 0033): the last good
     * answers kept, at most this many (0 means 1000, -1 none), this many bytes (0 means
     * 4 MiB) and this old (0 means 300 s).
     */
    int stale_max_entries;
    int64_t stale_max_bytes;
    int64_t stale_max_age_ms;
    /*
     * Mutual TLS for https:// targets (ADR 0035), PEM files, or NULL:
     * the certificate and key this client presents (both or neither), and the CA the
     * target's certificate must chain to (NULL: the system's). Ignored for http://.
     */
    const char *tls_cert; /* CLEAVE_TLS_CLIENT_CERT */
    const char *tls_key;  /* CLEAVE_TLS_CLIENT_KEY */
    const char *tls_ca;   /* CLEAVE_TLS_CA */
} cl_rpc_options;

/*
 * A client for the module service at base_url ("http://127.0.0.1:9101").
 * CL_INVALID for a URL that is not http(s)://host[:port], or for a TLS file that is set
 * alone (certificate without key) or cannot be read, naming its CLEAVE_TLS_ setting.
 * Owned by the caller.
 */
cl_status cl_rpc_client_new(const char *module, const char *base_url, const cl_rpc_options *opt,
                            cl_rpc_client **out, cl_error *err);
void cl_rpc_client_free(cl_rpc_client *c);
const char *cl_rpc_client_url(const cl_rpc_client *c);

/*
 * Calls op on the service. Same contract as the operation itself. Thread-safe.
 * While the target's circuit is open it returns CL_UNAVAILABLE at once, naming the
 * target and that its circuit is open, without a network call. A call of an operation
 * flagged CL_OP_READ or CL_OP_IDEMPOTENT that failed with CL_UNAVAILABLE is retried
 * while attempts, the retry budget and the deadline allow; others are made once.
 */
cl_status cl_rpc_call(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const void *req, void *resp);

/* The target's circuit and what the client did, since it was made. */
typedef struct cl_rpc_circuit {
    cl_breaker_stats breaker; /* state, window, times opened, calls refused */
    int64_t calls;            /* calls that reached the point of sending */
    int64_t attempts;         /* requests sent (calls and their retries) */
    int64_t retries;          /* retries made */
    int64_t retries_refused;  /* retries the budget refused */
} cl_rpc_circuit;

/* Fills *out with c's circuit state and counters now. Thread-safe; no network call. */
void cl_rpc_client_circuit(cl_rpc_client *c, cl_rpc_circuit *out);

/*
 * GET <base_url>/readyz?module=<module> with a short timeout: CL_OK when the process there
 * runs the module and it is ready; CL_UNAVAILABLE saying which otherwise.
 */
cl_status cl_rpc_ready(cl_rpc_client *c, int64_t timeout_ms, cl_error *err);

/* --- the generated remote binding -------------------------------------------------- */

#define CL__REMOTE_INDEX(M, name, Req, Resp, flags) M##__op_index_##name,
#define CL__REMOTE_STUB(M, name, Req, Resp, flags)                                                 \
    static cl_status M##__remote_##name(void *self, cl_ctx *ctx, const Req *req, Resp *resp)       \
    {                                                                                              \
        int64_t start_ns = cl_metrics_now_ns();                                                    \
        cl_status st = cl_rpc_call((cl_rpc_client *)self, &M##_op_list[M##__op_index_##name], ctx, \
                                   req, resp);                                                     \
        cl_metrics_operation(#M, #name, "remote", st, start_ns);                                   \
        return st;                                                                                 \
    }
#define CL__REMOTE_SLOT(M, name, Req, Resp, flags) .name = M##__remote_##name,

/*
 * In one .c file of the module's interface library: the remote binding of M's table,
 * `const M_ops M_remote_ops`, whose instance is the cl_rpc_client of the module's
 * service: {&M_remote_ops, client} is a cl_handle like any other. Also the table that
 * counts one caller's calls, `const M_ops M_caller_ops` (cleave/module.h, cl_caller).
 */
#define CL_REMOTE_DEFINE(M, LIST, VERSION)                                                         \
    enum { LIST(CL__REMOTE_INDEX, M) M##__op_index_count };                                        \
    LIST(CL__REMOTE_STUB, M)                                                                       \
    const M##_ops M##_remote_ops = {.version = VERSION, LIST(CL__REMOTE_SLOT, M)};                 \
    CL__CALLER_DEFINE(M, LIST, VERSION)

#endif /* CLEAVE_RPC_H */
