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

/*
 * Whether role is known; *own_only then says whether it acts only on what it owns, for
 * every permission it has (the rule a service applies to an end user's forwarded token,
 * which names no route).
 */
bool host_rbac_role_own_only(const char *role, bool *own_only);

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

/*
 * Makes a verify the service tokens of module's RPC endpoint: their aud must name
 * "cleave-<module>" (host_service_audience). CL_INTERNAL when out of memory or slots.
 */
cl_status host_auth_add_service(host_auth *a, const char *module, cl_error *err);

/* The audience of module's RPC endpoint, "cleave-<module>", into buf[size]. */
void host_service_audience(const char *module, char *buf, size_t size);

/*
 * The cl_rpc_authenticate of every RPC endpoint (arg: host_auth, module added with
 * host_auth_add_service): the bearer must be a service token (sub "service:...") for the
 * module's audience, else 401 with WWW-Authenticate. X-Cleave-User-Token, when present,
 * must be an end user's access token for the gateway's audience; principal and own_only
 * come from it (the RBAC table's rule for its roles) and it is kept in ctx to travel on.
 * Without it the call acts as the calling service (principal its sub, own_only 0).
 */
cl_status host_auth_rpc(void *arg, cl_http_req *req, const char *module, cl_ctx *ctx);

/*
 * A process's client credentials (CLEAVE_CLIENT_ID, CLEAVE_CLIENT_SECRET): service tokens
 * from the issuer (issuer_api->client_token through issuer, both borrowed, may be set
 * later with host_creds_set_issuer), one per callee audience, cached and renewed before
 * they expire.
 */
typedef struct host_creds host_creds;

cl_status host_creds_new(const char *client_id, const char *secret, host_creds **out,
                         cl_error *err);
void host_creds_set_issuer(host_creds *c, const cl_module_api *issuer_api, const cl_handle *issuer);
void host_creds_free(host_creds *c);

/* cl_rpc_options.credential (arg: host_creds): a token for module's audience. */
cl_status host_creds_token(void *arg, const char *module, char *token, size_t size, cl_error *err);

#endif /* CLEAVE_APP_AUTH_H */
