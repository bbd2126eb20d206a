/*
 * The gateway's authentication and authorization (ADR 0028): every public route's
 * permission is checked before its handler, against the caller's bearer token (a JWT
 * issued by the identity module) and the one RBAC table (rbac.c).
 */
#ifndef CLEAVE_APP_AUTH_H
#define CLEAVE_APP_AUTH_H

#include <stdbool.h>

#include "cleave/http.h"
#include "cleave/module.h"

/* The role of a caller without a token. */
#define HOST_ROLE_ANONYMOUS "anonymous"

/*
 * Whether role may use permission; *own_only says it may only on what the caller owns
 * (cl_ctx.own_only). An unknown role may nothing.
 */
bool host_rbac_allows(const char *role, const char *permission, bool *own_only);

typedef struct host_auth host_auth;

/*
 * The gateway's verifier: keys and issuer come from the module that issues tokens
 * (issuer_api->token_keys through issuer_module, local or remote, both borrowed; NULL when
 * the deployment has none: then no token is accepted), fetched on first use and again when
 * a token does not verify with keys held for a while; audience is the aud every access
 * token must name.
 */
cl_status host_auth_new(const cl_module_api *issuer_api, const cl_handle *issuer_module,
                        const char *audience, int64_t leeway_s, host_auth **out, cl_error *err);
void host_auth_free(host_auth *a);

/*
 * The cl_http_guard of the gateway (arg: host_auth): 401 with WWW-Authenticate for a
 * missing or bad token on a route anonymous callers may not use, 403 for a role without
 * the permission; on success ctx->principal ("user:<sub>" or "client:<sub>") and
 * ctx->own_only are set.
 */
cl_status host_auth_guard(void *arg, cl_http_req *req, const char *permission);

#endif /* CLEAVE_APP_AUTH_H */
