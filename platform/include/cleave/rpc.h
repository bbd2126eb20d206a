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
 *   X-Request-Id, traceparent (W3C), X-Cleave-Principal, X-Cleave-Own-Only, Idempotency-Key,
 *   X-Cleave-Deadline-Ms (milliseconds left), Authorization: Bearer <service token>.
 * A caller sees exactly the status, message and field the module returned; transport
 * failures become CL_UNAVAILABLE, or CL_DEADLINE_EXCEEDED when the deadline ran out.
 */
#ifndef CLEAVE_RPC_H
#define CLEAVE_RPC_H

#include "cleave/http.h"
#include "cleave/module.h"

#define CL_RPC_PREFIX "/rpc/v1/"

/* --- server ----------------------------------------------------------------------- */

/* A module served over RPC. Owned by the caller; must outlive the router. */
typedef struct cl_rpc_service {
    const cl_module_api *api;
    const cl_handle *module; /* the instance served (borrowed) */
    const char *token; /* calls must carry it as a bearer token (else 401); NULL or "": none may */
} cl_rpc_service;

/* Adds POST /rpc/v1/<module>/{op} dispatching to svc. The route's permission is "service". */
cl_status cl_rpc_routes(cl_router *r, const cl_rpc_service *svc, cl_error *err);

/* --- client ----------------------------------------------------------------------- */

typedef struct cl_rpc_client cl_rpc_client;

typedef struct cl_rpc_options {
    int max_idle;               /* kept-alive connections per target; 0 means 8 */
    int64_t default_timeout_ms; /* used when the call has no deadline; 0 means 10 s */
    int64_t connect_timeout_ms; /* 0 means 1000 */
    const char *token;          /* service token sent as Authorization: Bearer, or NULL */
} cl_rpc_options;

/*
 * A client for the module service at base_url ("http://127.0.0.1:9101").
 * CL_INVALID for a URL that is not http(s)://host[:port]. Owned by the caller.
 */
cl_status cl_rpc_client_new(const char *module, const char *base_url, const cl_rpc_options *opt,
                            cl_rpc_client **out, cl_error *err);
void cl_rpc_client_free(cl_rpc_client *c);
const char *cl_rpc_client_url(const cl_rpc_client *c);

/* Calls op on the service. Same contract as the operation itself. Thread-safe. */
cl_status cl_rpc_call(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const void *req, void *resp);

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
        return cl_rpc_call((cl_rpc_client *)self, &M##_op_list[M##__op_index_##name], ctx, req,    \
                           resp);                                                                  \
    }
#define CL__REMOTE_SLOT(M, name, Req, Resp, flags) .name = M##__remote_##name,

/*
 * In one .c file of the module's interface library: the remote binding of M's table,
 * `const M_ops M_remote_ops`, whose instance is the cl_rpc_client of the module's
 * service: {&M_remote_ops, client} is a cl_handle like any other.
 */
#define CL_REMOTE_DEFINE(M, LIST, VERSION)                                                         \
    enum { LIST(CL__REMOTE_INDEX, M) M##__op_index_count };                                        \
    LIST(CL__REMOTE_STUB, M)                                                                       \
    const M##_ops M##_remote_ops = {.version = VERSION, LIST(CL__REMOTE_SLOT, M)};

#endif /* CLEAVE_RPC_H */
