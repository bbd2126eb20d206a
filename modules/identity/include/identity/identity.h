/*
 * identity/identity.h - the identity module's public interface: an OAuth 2.0 / OpenID
 * Connect provider (ADR 0027).
 *
 * It owns users (argon2id password hashes, one role each), OAuth clients (hashed
 * secrets, the grants they may use, the audience of their tokens), refresh tokens
 * (hashed, in families: using one rotates it, presenting a used one again revokes its
 * whole family) and the signing keys of its access tokens (P-256; rotate_keys makes a new
 * signer and keeps the old one in the JWKS until its last token has expired).
 *
 * The token endpoint's errors are OAuth's (RFC 6749 section 5.2): an operation that
 * refuses a grant fails with the OAuth error code as ctx->err.field ("invalid_client",
 * "invalid_grant", "unsupported_grant_type", "unauthorized_client", "invalid_request",
 * "invalid_scope"), CL_UNAUTHORIZED for invalid_client and CL_INVALID otherwise; a caller
 * over the token endpoint's rate limit gets CL_UNAVAILABLE with field "rate_limit".
 */
#ifndef IDENTITY_IDENTITY_H
#define IDENTITY_IDENTITY_H

#include "cleave/bus.h"
#include "cleave/module.h"

#define IDENTITY_OPS_VERSION   1
/* Longest username and client id, in bytes; longest password. */
#define IDENTITY_NAME_MAX      64
/* The most audiences one client may be registered with (space-separated in audience). */
#define IDENTITY_AUDIENCES_MAX 16
#define IDENTITY_PASSWORD_MAX  1024

/* role: "customer", "staff" or "admin". */
#define IDENTITY_USER(X, T)                                                                        \
    X(T, I64, id, _)                                                                               \
    X(T, STR, username, _)                                                                         \
    X(T, STR, role, _)                                                                             \
    X(T, STR, created_at, _)
CL_TYPE_DECLARE(identity_user, IDENTITY_USER)

/* username: 1-64 bytes of [A-Za-z0-9._@-]; password: 8-1024 bytes. */
#define IDENTITY_USER_REQUEST(X, T)                                                                \
    X(T, STR, username, _)                                                                         \
    X(T, STR, password, _)                                                                         \
    X(T, STR, role, _)
CL_TYPE_DECLARE(identity_user_request, IDENTITY_USER_REQUEST)

/*
 * A new OAuth client. grants: any of "password", "client_credentials", "refresh_token";
 * audience: the audiences its access tokens may name, space-separated (1 to
 * IDENTITY_AUDIENCES_MAX names; a service client lists the services it calls,
 * "cleave-payments cleave-inventory"): a token names one of them, the one the token request
 * asks for (RFC 8707's resource indicator, here by name) or else the first. client_secret: absent,
 * the module makes one (256 random bits); given, 32-256 printable bytes (the seeded demo client's
 * documented one). It is returned once, in identity_client; only its hash is stored.
 */
#define IDENTITY_CLIENT_REQUEST(X, T)                                                              \
    X(T, STR, client_id, _)                                                                        \
    X(T, STR, client_secret, _)                                                                    \
    X(T, STRS, grants, _)                                                                          \
    X(T, STR, audience, _)
CL_TYPE_DECLARE(identity_client_request, IDENTITY_CLIENT_REQUEST)

#define IDENTITY_CLIENT(X, T)                                                                      \
    X(T, STR, client_id, _)                                                                        \
    X(T, STR, client_secret, _)                                                                    \
    X(T, STRS, grants, _)                                                                          \
    X(T, STR, audience, _)
CL_TYPE_DECLARE(identity_client, IDENTITY_CLIENT)

/*
 * A token request as RFC 6749 section 4 sends it, the client authenticated either way
 * (HTTP Basic or client_secret_post, the REST side decodes both into client_id and
 * client_secret). remote_addr is the caller's address, for the rate limit. audience, when
 * present, is the one of the client's audiences the token is for ("invalid_target" when
 * the client has no such audience, as RFC 8707 section 2 answers an unknown resource).
 */
#define IDENTITY_TOKEN_REQUEST(X, T)                                                               \
    X(T, STR, grant_type, _)                                                                       \
    X(T, STR, client_id, _)                                                                        \
    X(T, STR, client_secret, _)                                                                    \
    X(T, STR, username, _)                                                                         \
    X(T, STR, password, _)                                                                         \
    X(T, STR, refresh_token, _)                                                                    \
    X(T, STR, scope, _)                                                                            \
    X(T, STR, remote_addr, _)                                                                      \
    X(T, STR, audience, _)
CL_TYPE_DECLARE(identity_token_request, IDENTITY_TOKEN_REQUEST)

/* RFC 6749 section 5.1; refresh_token only for the password and refresh_token grants. */
#define IDENTITY_TOKEN(X, T)                                                                       \
    X(T, STR, access_token, _)                                                                     \
    X(T, STR, token_type, _)                                                                       \
    X(T, I64, expires_in, _)                                                                       \
    X(T, STR, refresh_token, _)                                                                    \
    X(T, STR, scope, _)
CL_TYPE_DECLARE(identity_token, IDENTITY_TOKEN)

/* An RFC 7009 revocation request; the client authenticates as for the token endpoint. */
#define IDENTITY_REVOKE_REQUEST(X, T)                                                              \
    X(T, STR, token, _)                                                                            \
    X(T, STR, token_type_hint, _)                                                                  \
    X(T, STR, client_id, _)                                                                        \
    X(T, STR, client_secret, _)                                                                    \
    X(T, STR, remote_addr, _)
CL_TYPE_DECLARE(identity_revoke_request, IDENTITY_REVOKE_REQUEST)

#define IDENTITY_USERINFO_REQUEST(X, T) X(T, STR, access_token, _)
CL_TYPE_DECLARE(identity_userinfo_request, IDENTITY_USERINFO_REQUEST)

/* OpenID Connect Core section 5.3.2: sub is "user:<id>". */
#define IDENTITY_USERINFO(X, T)                                                                    \
    X(T, STR, sub, _)                                                                              \
    X(T, STR, preferred_username, _)                                                               \
    X(T, STRS, roles, _)
CL_TYPE_DECLARE(identity_userinfo, IDENTITY_USERINFO)

/* A public signing key as RFC 7517/7518 write it (EC P-256, ES256). */
#define IDENTITY_JWK(X, T)                                                                         \
    X(T, STR, kty, _)                                                                              \
    X(T, STR, crv, _)                                                                              \
    X(T, STR, x, _)                                                                                \
    X(T, STR, y, _)                                                                                \
    X(T, STR, kid, _)                                                                              \
    X(T, STR, use, _)                                                                              \
    X(T, STR, alg, _)
CL_TYPE_DECLARE(identity_jwk, IDENTITY_JWK)

#define IDENTITY_JWKS(X, T) X(T, OBJS, keys, identity_jwk)
CL_TYPE_DECLARE(identity_jwks, IDENTITY_JWKS)

/* What discovery documents: the issuer (iss of every token) and the access token lifetime. */
#define IDENTITY_CONFIGURATION(X, T)                                                               \
    X(T, STR, issuer, _)                                                                           \
    X(T, I64, access_token_seconds, _)
CL_TYPE_DECLARE(identity_configuration, IDENTITY_CONFIGURATION)

/* The signer rotate_keys made; not_after of the one it replaced. */
#define IDENTITY_KEY_ROTATION(X, T)                                                                \
    X(T, STR, kid, _)                                                                              \
    X(T, STR, previous_kid, _)                                                                     \
    X(T, STR, previous_not_after, _)
CL_TYPE_DECLARE(identity_key_rotation, IDENTITY_KEY_ROTATION)

/*
 * The operations. Statuses each may return besides CL_OK:
 *   add_user           CL_INVALID (username, password, role), CL_CONFLICT (username)
 *   add_client         CL_INVALID (client_id, client_secret, grants, audience), CL_CONFLICT
 * (client_id) token              the OAuth errors above; CL_UNAVAILABLE (rate_limit) revoke
 * CL_UNAUTHORIZED (invalid_client), CL_INVALID (invalid_request); an unknown or already revoked
 * token is CL_OK (RFC 7009 section 2.2) userinfo           CL_UNAUTHORIZED (invalid_token) jwks -
 *   get_configuration  -
 *   rotate_keys        -
 * and any of them CL_UNAVAILABLE, CL_DEADLINE_EXCEEDED, CL_INTERNAL.
 */
#define IDENTITY_OPERATIONS(X, M)                                                                  \
    X(M, add_user, identity_user_request, identity_user, CL_OP_WRITE)                              \
    X(M, add_client, identity_client_request, identity_client, CL_OP_WRITE)                        \
    X(M, issue_token, identity_token_request, identity_token, CL_OP_WRITE | CL_OP_PUBLIC)          \
    X(M, revoke, identity_revoke_request, cl_empty, CL_OP_WRITE)                                   \
    X(M, get_userinfo, identity_userinfo_request, identity_userinfo, CL_OP_READ)                   \
    X(M, get_jwks, cl_empty, identity_jwks, CL_OP_READ | CL_OP_PUBLIC)                             \
    X(M, get_configuration, cl_empty, identity_configuration, CL_OP_READ | CL_OP_PUBLIC)           \
    X(M, rotate_keys, cl_empty, identity_key_rotation, CL_OP_WRITE)
CL_OPS_DECLARE(identity, IDENTITY_OPERATIONS)

#define IDENTITY_USER_ADDED(X, T)                                                                  \
    X(T, I64, id, _)                                                                               \
    X(T, STR, username, _)                                                                         \
    X(T, STR, role, _)
CL_TYPE_DECLARE(identity_user_added, IDENTITY_USER_ADDED)

/* The events it publishes (cleave/bus.h), keyed "user:<id>": a user was added. */
#define IDENTITY_EVENTS(X, M) X(M, user_added, 1, identity_user_added)
CL_EVENTS_DECLARE(identity, IDENTITY_EVENTS)

/* The identity module's interface side: REST routes, seed, operation list. */
extern const cl_module_api identity_api;
/* The local binding: the implementation, when identity is compiled in. */
extern const cl_module identity_module;

#endif /* IDENTITY_IDENTITY_H */
