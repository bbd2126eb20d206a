/*
 * The gateway's authentication (ADR 0028). A bearer token is verified before any module
 * is called: the key chosen by kid from the token issuer's JWKS (the identity module's),
 * fetched through its interface (cl_module_api.token_keys: so it works with identity
 * extracted) and held; the algorithm pinned by that
 * key (never none, never HMAC); exp and nbf with a small leeway; iss from identity's
 * configuration; aud this gateway's. Verified tokens are cached by their hash until their
 * exp. Then the caller's roles meet the route's permission in the RBAC table (rbac.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "host.h"
#include "cleave/jwt.h"
#include "cleave/log.h"
#include "cleave/util.h"

/* Verified tokens remembered at once; beyond that the soonest to expire make room. */
#define AUTH_CACHE_TOKENS     4096
/* How long fetched keys are used before identity is asked again, at the latest. */
#define AUTH_KEYS_TTL_MS      ((int64_t)5 * 60 * 1000)
/*
 * A token that does not verify may be signed by a key newer than those held: they are
 * fetched again, but not more often than this, so bad tokens cannot flood identity.
 */
#define AUTH_REFETCH_MS       ((int64_t)10 * 1000)
/* The deadline of a call to identity for its keys. */
#define AUTH_FETCH_TIMEOUT_MS 2000

struct host_auth {
    const cl_module_api *issuer_api; /* the module with token_keys, or NULL: none */
    const cl_handle *issuer_module;
    char audience[128];
    int64_t leeway_s;
    cl_jwt_cache *cache;
    /* Readers verify under the read lock; a fetch swaps keys and issuer under the write lock. */
    pthread_rwlock_t lock;
    cl_jwks *keys; /* NULL until the first fetch */
    char issuer[512];
    int64_t fetched_ms;
};

cl_status host_auth_new(const cl_module_api *issuer_api, const cl_handle *issuer_module,
                        const char *audience, int64_t leeway_s, host_auth **out, cl_error *err)
{
    host_auth *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (a == NULL || (a->cache = cl_jwt_cache_new(AUTH_CACHE_TOKENS)) == NULL) {
        free(a);
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    a->issuer_api = issuer_api;
    a->issuer_module = issuer_module;
    cl_strlcpy(a->audience, audience, sizeof(a->audience));
    a->leeway_s = leeway_s;
    pthread_rwlock_init(&a->lock, NULL);
    *out = a;
    return CL_OK;
}

void host_auth_free(host_auth *a)
{
    if (a == NULL) {
        return;
    }
    cl_jwt_cache_free(a->cache);
    cl_jwks_free(a->keys);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

/* Asks the token issuer for its keys and issuer; replaces what is held. */
static cl_status fetch_keys(host_auth *a, cl_error *err)
{
    cl_ctx ctx;
    cl_jwks *keys = NULL;
    char *text = NULL, *issuer = NULL;
    cl_status st;

    if (a->issuer_api == NULL) {
        return cl_error_set(err, CL_UNAUTHORIZED, NULL,
                            "no module of this deployment issues tokens (an identity provider)");
    }
    cl_ctx_init(&ctx, AUTH_FETCH_TIMEOUT_MS);
    cl_strlcpy(ctx.principal, "service:gateway", sizeof(ctx.principal));
    st = a->issuer_api->token_keys(a->issuer_module, &ctx, &text, &issuer);
    if (st != CL_OK) {
        st = cl_error_set(err, CL_UNAVAILABLE, NULL, "%s's keys are unavailable: %s",
                          a->issuer_api->name, ctx.err.message);
        goto out;
    }
    st = cl_jwks_parse(text, strlen(text), &keys, err);
    if (st != CL_OK) {
        goto out;
    }
    pthread_rwlock_wrlock(&a->lock);
    cl_jwks_free(a->keys);
    a->keys = keys;
    keys = NULL;
    cl_strlcpy(a->issuer, issuer, sizeof(a->issuer));
    a->fetched_ms = cl_now_ms();
    /* A key withdrawn from the set must stop verifying at once, cached or not. */
    cl_jwt_cache_clear(a->cache);
    pthread_rwlock_unlock(&a->lock);
out:
    cl_jwks_free(keys);
    free(text);
    free(issuer);
    return st;
}

/* Verifies with the keys held; *stale says whether fetching again may change the answer. */
static cl_status verify_held(host_auth *a, const char *token, json_t **claims, bool *stale,
                             cl_error *err)
{
    cl_status st;
    int64_t now = cl_now_ms();

    pthread_rwlock_rdlock(&a->lock);
    if (a->keys == NULL || now - a->fetched_ms > AUTH_KEYS_TTL_MS) {
        *stale = true;
        st = cl_error_set(err, CL_UNAUTHORIZED, NULL, "no keys held");
    } else {
        cl_jwt_policy p = {a->issuer, a->audience, a->leeway_s, 0};

        st = cl_jwt_verify_cached(a->cache, token, a->keys, &p, claims, err);
        *stale = st != CL_OK && now - a->fetched_ms > AUTH_REFETCH_MS;
    }
    pthread_rwlock_unlock(&a->lock);
    return st;
}

static cl_status verify(host_auth *a, const char *token, json_t **claims, cl_error *err)
{
    bool stale = false;
    cl_status st = verify_held(a, token, claims, &stale, err);

    if (st == CL_OK || !stale) {
        return st;
    }
    st = fetch_keys(a, err);
    if (st != CL_OK) {
        cl_log_warn("auth", "%s", err->message);
        return st;
    }
    return verify_held(a, token, claims, &stale, err);
}

/* 401: the header that tells the client what to do (RFC 6750 section 3). */
static cl_status unauthorized(cl_http_req *req, const char *error, const char *why)
{
    cl_ctx *ctx = cl_http_ctx(req);
    char header[256];

    if (error != NULL) {
        snprintf(header, sizeof(header), "Bearer realm=\"cleave\", error=\"%s\"", error);
        cl_http_set_header(req, "WWW-Authenticate", header);
    } else {
        cl_http_set_header(req, "WWW-Authenticate", "Bearer realm=\"cleave\"");
    }
    return cl_error_set(&ctx->err, CL_UNAUTHORIZED, NULL, "%s", why);
}

/* Whether any of the token's roles has permission, and whether only on its own objects. */
static bool roles_allow(json_t *claims, const char *permission, bool *own_only)
{
    json_t *roles = json_object_get(claims, "roles");
    bool allowed = false;
    size_t i;
    json_t *r;

    *own_only = true;
    json_array_foreach (roles, i, r) {
        bool own = false;

        if (json_is_string(r) && host_rbac_allows(json_string_value(r), permission, &own)) {
            allowed = true;
            /* The widest role wins: staff who also shop see everything. */
            *own_only = *own_only && own;
        }
    }
    return allowed;
}

cl_status host_auth_guard(void *arg, cl_http_req *req, const char *permission)
{
    host_auth *a = arg;
    cl_ctx *ctx = cl_http_ctx(req);
    const char *header = cl_http_header(req, "Authorization");
    const char *sub;
    json_t *claims = NULL;
    bool own_only = false;
    cl_status st;

    /* Open routes, and the RPC routes, whose callers prove themselves to the RPC layer. */
    if (strcmp(permission, CL_PERM_PUBLIC) == 0 || strcmp(permission, CL_PERM_SERVICE) == 0) {
        return CL_OK;
    }
    if (header == NULL) {
        if (host_rbac_allows(HOST_ROLE_ANONYMOUS, permission, &own_only)) {
            return CL_OK;
        }
        return unauthorized(req, NULL, "this request needs a bearer token");
    }
    if (strncasecmp(header, "Bearer ", 7) != 0 || header[7] == '\0') {
        return unauthorized(req, "invalid_request", "Authorization must be \"Bearer <token>\"");
    }
    st = verify(a, header + 7, &claims, &ctx->err);
    if (st == CL_UNAVAILABLE) {
        return st;
    }
    if (st != CL_OK) {
        /* The reason goes to the log; the client learns only that the token is refused. */
        cl_log_info("auth", "token refused: %s", ctx->err.message);
        return unauthorized(req, "invalid_token", "the bearer token is not valid");
    }
    sub = json_string_value(json_object_get(claims, "sub"));
    if (sub == NULL || sub[0] == '\0') {
        json_decref(claims);
        return unauthorized(req, "invalid_token", "the bearer token names no subject");
    }
    if (!roles_allow(claims, permission, &own_only)) {
        json_decref(claims);
        return cl_error_set(&ctx->err, CL_FORBIDDEN, NULL, "your roles do not allow %s",
                            permission);
    }
    snprintf(ctx->principal, sizeof(ctx->principal), "user:%s", sub);
    ctx->own_only = own_only;
    json_decref(claims);
    return CL_OK;
}

cl_status host_open_auth(host *h, cl_error *err)
{
    const cl_module_api *issuer = NULL;
    const cl_handle *module = NULL;

    h->auth = NULL;
    if (host_binary_role != HOST_GATEWAY) {
        return CL_OK;
    }
    for (int i = 0; i < h->nmodules; i++) {
        if (h->modules[i].binding->api->token_keys != NULL) {
            issuer = h->modules[i].binding->api;
            module = &h->modules[i].handle;
        }
    }
    if (issuer == NULL) {
        cl_log_warn("auth", "no module of this deployment issues tokens: only public routes "
                            "and those anonymous callers may use will answer");
    }
    return host_auth_new(issuer, module, cl_config_get(h->config, "CLEAVE_AUTH_AUDIENCE"),
                         cl_config_int(h->config, "CLEAVE_AUTH_LEEWAY_S"), &h->auth, err);
}
