/* Shared between the RPC client and server. */
#ifndef CLEAVE_RPC_INTERNAL_H
#define CLEAVE_RPC_INTERNAL_H

#include "cleave/status.h"

/* Reads a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>") into ctx; ignores a bad one. */
void cl__rpc_parse_traceparent(const char *v, cl_ctx *ctx);

#endif
