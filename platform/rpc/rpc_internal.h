/*
 * rpc_internal.h - what the RPC server's request decoding exposes to the platform's own
 * tests and fuzz targets, and to nobody else.
 */
#ifndef CLEAVE_RPC_INTERNAL_H
#define CLEAVE_RPC_INTERNAL_H

#include "cleave/status.h"

/* The call context's headers of one RPC request, as received: borrowed, NULL when absent. */
typedef struct cl__rpc_headers {
    const char *principal;    /* X-Cleave-Principal */
    const char *read_primary; /* X-Cleave-Read-Primary */
    const char *own_only;     /* X-Cleave-Own-Only */
    const char *deadline_ms;  /* X-Cleave-Deadline-Ms */
    const char *wait_ms;      /* X-Cleave-Wait-Ms */
} cl__rpc_headers;

/*
 * Fills ctx's principal, trace ids, read_primary, own_only, wait_ms and deadline (the sooner of its
 * own and the caller's, counted from now) from h. CL_INVALID naming the header (err->field) for a
 * principal that does not fit or a deadline or wait that is not digits only; ctx may then be partly
 * filled. A malformed traceparent only loses the trace. Pure: the HTTP side refuses with the error
 * as a 400 problem.
 */
cl_status cl__rpc_ctx_from_headers(const cl__rpc_headers *h, cl_ctx *ctx, cl_error *err);

#endif /* CLEAVE_RPC_INTERNAL_H */
