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
#include <stdatomic.h>
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
#define AUTH_CACHE_TOKENS      4096
/* How long fetched keys are used before identity is asked again, at the latest. */
#define AUTH_KEYS_TTL_MS       ((int64_t)5 * 60 * 1000)
/*
 * A token that does not verify may be signed by a key newer than those held: they are
 * fetched again, but not more often than this, so bad tokens cannot flood identity.
 */
#define AUTH_REFETCH_MS        ((int64_t)10 * 1000)
/* The deadline of a call to identity for its keys or a service token. */
#define AUTH_FETCH_TIMEOUT_MS  2000
/* A service token is not sent in its last seconds: the callee's clock may be ahead. */
#define CREDS_EXPIRY_MARGIN_MS 5000
/* With a token held, how long after a failed renewal the issuer is asked again. */
#define CREDS_RETRY_MS         5000

/* The verifier of the service tokens of one module served over RPC: aud cleave-<module>. */
typedef struct service_audience {
    char module[64];
    char audience[80];
    cl_jwt_cache *cache; /* one cache serves one policy (ADR 0024) */
} service_audience;

struct host_auth {
    const cl_module_api *issuer_api; /* the module with token_keys, or NULL: none */
    const cl_handle *issuer_module;
    char audience[128]; /* of the end users' access tokens */
    int64_t leeway_s;
    cl_jwt_cache *cache;
    service_audience services[HOST_MAX_MODULES];
    int nservices;
    /* Readers verify under the read lock; a fetch swaps keys and issuer under the write lock. */
    pthread_rwlock_t lock;
    /*
     * One fetch at a time: the first requests with a token (or those after the keys
     * expire) all find the keys stale at once, and each fetching them took a connection of
     * the issuer's pool, which grew to its maximum (eight SQLite connections, each with its
     * schema and statements: 1.5 MB) for one answer (ADR 0047).
     */
    pthread_mutex_t fetch_lock;
    atomic_uint_fast64_t fetches; /* fetches ended, to tell a waiter one ended meanwhile */
    cl_status fetch_status;       /* how the last one ended, and why; under fetch_lock */
    cl_error fetch_err;
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
    pthread_mutex_init(&a->fetch_lock, NULL);
    atomic_init(&a->fetches, 0);
    *out = a;
    return CL_OK;
}

void host_auth_free(host_auth *a)
{
    if (a == NULL) {
        return;
    }
    cl_jwt_cache_free(a->cache);
    for (int i = 0; i < a->nservices; i++) {
        cl_jwt_cache_free(a->services[i].cache);
    }
    cl_jwks_free(a->keys);
    pthread_mutex_destroy(&a->fetch_lock);
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
    for (int i = 0; i < a->nservices; i++) {
        cl_jwt_cache_clear(a->services[i].cache);
    }
    pthread_rwlock_unlock(&a->lock);
out:
    cl_jwks_free(keys);
    free(text);
    free(issuer);
    return st;
}

/*
 * Verifies with the keys held, for audience with its cache; *stale says whether fetching
 * again may change the answer.
 */
/*
 * The shared claims' object, to read: jansson's getters take no const, and nothing here
 * writes to it (other requests read the same object, ADR 0046).
 */
static json_t *claims_json(const cl_jwt_claims *claims)
{
    return (json_t *)cl_jwt_claims_json(claims);
}

static cl_status verify_held(host_auth *a, cl_jwt_cache *cache, const char *audience,
                             const char *token, cl_jwt_claims **claims, bool *stale, cl_error *err)
{
    cl_status st;
    int64_t now = cl_now_ms();

    pthread_rwlock_rdlock(&a->lock);
    if (a->keys == NULL || now - a->fetched_ms > AUTH_KEYS_TTL_MS) {
        *stale = true;
        st = cl_error_set(err, CL_UNAUTHORIZED, NULL, "no keys held");
    } else {
        cl_jwt_policy p = {a->issuer, audience, a->leeway_s, 0};

        st = cl_jwt_verify_shared(cache, token, a->keys, &p, claims, err);
        *stale = st != CL_OK && now - a->fetched_ms > AUTH_REFETCH_MS;
    }
    pthread_rwlock_unlock(&a->lock);
    return st;
}

static cl_status verify(host_auth *a, cl_jwt_cache *cache, const char *audience, const char *token,
                        cl_jwt_claims **claims, cl_error *err)
{
    bool stale = false;
    uint_fast64_t seen = atomic_load(&a->fetches);
    cl_status st = verify_held(a, cache, audience, token, claims, &stale, err);

    if (st == CL_OK || !stale) {
        return st;
    }
    /*
     * A request that waited here while another fetched takes that fetch's outcome rather
     * than fetching again: with the issuer down, each would otherwise wait its own timeout
     * in turn.
     */
    pthread_mutex_lock(&a->fetch_lock);
    if (atomic_load(&a->fetches) == seen) {
        cl_error_clear(&a->fetch_err);
        st = fetch_keys(a, &a->fetch_err);
        a->fetch_status = st;
        atomic_fetch_add(&a->fetches, 1);
        if (st != CL_OK) {
            cl_log_warn("auth", "%s", a->fetch_err.message);
        }
    } else {
        st = a->fetch_status;
    }
    if (st != CL_OK && err != NULL) {
        *err = a->fetch_err;
    }
    pthread_mutex_unlock(&a->fetch_lock);
    if (st != CL_OK) {
        return st;
    }
    return verify_held(a, cache, audience, token, claims, &stale, err);
}

/* 401 in realm: the header that tells the client what to do (RFC 6750 section 3). */
static cl_status unauthorized_in(cl_http_req *req, const char *realm, const char *error,
                                 const char *why)
{
    cl_ctx *ctx = cl_http_ctx(req);
    char header[256];

    if (error != NULL) {
        snprintf(header, sizeof(header), "Bearer realm=\"%s\", error=\"%s\"", realm, error);
    } else {
        snprintf(header, sizeof(header), "Bearer realm=\"%s\"", realm);
    }
    cl_http_set_header(req, "WWW-Authenticate", header);
    return cl_error_set(&ctx->err, CL_UNAUTHORIZED, NULL, "%s", why);
}

static cl_status unauthorized(cl_http_req *req, const char *error, const char *why)
{
    return unauthorized_in(req, "cleave", error, why);
}

/*
 * Whether any of the token's roles has permission, and whether only on its own objects.
 * permission NULL asks about the roles alone (a callee knows no route): any known role.
 */
static bool roles_allow(const cl_jwt_claims *claims, const char *permission, bool *own_only)
{
    json_t *roles = json_object_get(claims_json(claims), "roles");
    bool allowed = false;
    size_t i;
    json_t *r;

    *own_only = true;
    json_array_foreach (roles, i, r) {
        bool own = false;

        if (json_is_string(r) &&
            (permission != NULL ? host_rbac_allows(json_string_value(r), permission, &own)
                                : host_rbac_role_own_only(json_string_value(r), &own))) {
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
    cl_jwt_claims *claims = NULL;
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
    st = verify(a, a->cache, a->audience, header + 7, &claims, &ctx->err);
    if (st == CL_UNAVAILABLE) {
        return st;
    }
    if (st != CL_OK) {
        /* The reason goes to the log; the client learns only that the token is refused. */
        cl_log_info("auth", "token refused: %s", ctx->err.message);
        return unauthorized(req, "invalid_token", "the bearer token is not valid");
    }
    sub = json_string_value(json_object_get(claims_json(claims), "sub"));
    if (sub == NULL || sub[0] == '\0') {
        cl_jwt_claims_release(claims);
        return unauthorized(req, "invalid_token", "the bearer token names no subject");
    }
    /* It travels to extracted modules whole, or the call would lose its user (cl_ctx). */
    if (cl_strlcpy(ctx->user_token, header + 7, sizeof(ctx->user_token)) != 0) {
        cl_jwt_claims_release(claims);
        return unauthorized(req, "invalid_token", "the bearer token is too long");
    }
    if (!roles_allow(claims, permission, &own_only)) {
        cl_jwt_claims_release(claims);
        return cl_error_set(&ctx->err, CL_FORBIDDEN, NULL, "your roles do not allow %s",
                            permission);
    }
    snprintf(ctx->principal, sizeof(ctx->principal), "user:%s", sub);
    ctx->own_only = own_only;
    cl_jwt_claims_release(claims);
    return CL_OK;
}

void host_service_audience(const char *module, char *buf, size_t size)
{
    snprintf(buf, size, "cleave-%s", module);
}

cl_status host_auth_add_service(host_auth *a, const char *module, cl_error *err)
{
    service_audience *s;

    if (a->nservices == HOST_MAX_MODULES) {
        return cl_error_set(err, CL_INTERNAL, NULL, "too many modules served over RPC");
    }
    s = &a->services[a->nservices];
    s->cache = cl_jwt_cache_new(AUTH_CACHE_TOKENS);
    if (s->cache == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    cl_strlcpy(s->module, module, sizeof(s->module));
    host_service_audience(module, s->audience, sizeof(s->audience));
    a->nservices++;
    return CL_OK;
}

/*
 * An end user's principal and own_only from their verified access token, for a callee
 * that knows no route permission: own_only unless one of the user's roles reaches every
 * principal's objects (the widest role wins, as at the gateway). A role this table does
 * not know widens nothing.
 */
static void user_from_claims(const cl_jwt_claims *claims, const char *sub, cl_ctx *ctx)
{
    bool own_only = true;

    /* No known role leaves own_only set: the narrowest answer. */
    (void)roles_allow(claims, NULL, &own_only);
    snprintf(ctx->principal, sizeof(ctx->principal), "user:%s", sub);
    ctx->own_only = own_only;
}

/* Verifies token for audience (cache); its sub must start with prefix. CL_OK or a reason. */
static cl_status verify_subject(host_auth *a, cl_jwt_cache *cache, const char *audience,
                                const char *token, const char *prefix, cl_jwt_claims **claims,
                                const char **sub, cl_error *err)
{
    cl_status st = verify(a, cache, audience, token, claims, err);

    if (st != CL_OK) {
        return st;
    }
    *sub = json_string_value(json_object_get(claims_json(*claims), "sub"));
    if (*sub == NULL || strncmp(*sub, prefix, strlen(prefix)) != 0 ||
        (*sub)[strlen(prefix)] == '\0') {
        cl_jwt_claims_release(*claims);
        *claims = NULL;
        return cl_error_set(err, CL_UNAUTHORIZED, NULL, "the token's subject is not a %s one",
                            prefix);
    }
    return CL_OK;
}

cl_status host_auth_rpc(void *arg, cl_http_req *req, const char *module, cl_ctx *ctx)
{
    host_auth *a = arg;
    const char *header = cl_http_header(req, "Authorization");
    const char *user = cl_http_header(req, "X-Cleave-User-Token");
    service_audience *svc = NULL;
    cl_jwt_claims *claims = NULL;
    const char *sub = NULL;
    cl_error why = {0};
    cl_status st;

    for (int i = 0; i < a->nservices; i++) {
        if (strcmp(a->services[i].module, module) == 0) {
            svc = &a->services[i];
        }
    }
    if (svc == NULL) {
        return cl_error_set(&ctx->err, CL_INTERNAL, NULL, "%s is not served here", module);
    }
    if (header == NULL) {
        return unauthorized_in(req, svc->audience, NULL, "this call needs a service token");
    }
    if (strncasecmp(header, "Bearer ", 7) != 0 || header[7] == '\0') {
        return unauthorized_in(req, svc->audience, "invalid_request",
                               "Authorization must be \"Bearer <token>\"");
    }
    st = verify_subject(a, svc->cache, svc->audience, header + 7, "service:", &claims, &sub, &why);
    if (st == CL_UNAVAILABLE) {
        return cl_error_set(&ctx->err, st, NULL, "%s", why.message);
    }
    if (st != CL_OK) {
        cl_log_info("auth", "service token refused for %s: %s", svc->audience, why.message);
        return unauthorized_in(req, svc->audience, "invalid_token",
                               "the service token is not valid for this service");
    }
    cl_strlcpy(ctx->principal, sub, sizeof(ctx->principal));
    cl_jwt_claims_release(claims);
    claims = NULL;
    if (user == NULL) {
        return CL_OK;
    }
    /* The user the call acts for, proven by their own token, never by the caller's word. */
    st = verify_subject(a, a->cache, a->audience, user, "user:", &claims, &sub, &why);
    if (st == CL_UNAVAILABLE) {
        return cl_error_set(&ctx->err, st, NULL, "%s", why.message);
    }
    if (st != CL_OK || cl_strlcpy(ctx->user_token, user, sizeof(ctx->user_token)) != 0) {
        cl_jwt_claims_release(claims);
        ctx->principal[0] = '\0';
        ctx->user_token[0] = '\0';
        cl_log_info("auth", "user token refused for %s: %s", svc->audience,
                    st != CL_OK ? why.message : "too long");
        return unauthorized_in(req, svc->audience, "invalid_token",
                               "X-Cleave-User-Token is not a valid access token");
    }
    user_from_claims(claims, sub, ctx);
    cl_jwt_claims_release(claims);
    return CL_OK;
}

/* --- a process's own credentials ------------------------------------------------------ */

/* Service tokens held at once: one per callee audience. */
#define CREDS_MAX 16

typedef struct creds_token {
    char audience[80];
    char token[CL_CTX_USER_TOKEN_MAX + 1];
    int64_t renew_ms;   /* asked for again from then on */
    int64_t expires_ms; /* usable until then (less a margin for the callee's clock) */
} creds_token;

struct host_creds {
    const cl_module_api *issuer_api;
    const cl_handle *issuer;
    char client_id[128];
    char secret[300];
    /* Held while a token is asked for too: one request per audience at a time. */
    pthread_mutex_t mu;
    creds_token tokens[CREDS_MAX];
    int ntokens;
};

cl_status host_creds_new(const char *client_id, const char *secret, host_creds **out, cl_error *err)
{
    host_creds *c;

    *out = NULL;
    if (client_id == NULL || secret == NULL || client_id[0] == '\0' || secret[0] == '\0') {
        return cl_error_set(err, CL_INVALID,
                            client_id == NULL ? "CLEAVE_CLIENT_ID" : "CLEAVE_CLIENT_SECRET",
                            "CLEAVE_CLIENT_ID and CLEAVE_CLIENT_SECRET go together");
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    if (cl_strlcpy(c->client_id, client_id, sizeof(c->client_id)) != 0 ||
        cl_strlcpy(c->secret, secret, sizeof(c->secret)) != 0) {
        free(c);
        return cl_error_set(err, CL_INVALID, "CLEAVE_CLIENT_SECRET",
                            "CLEAVE_CLIENT_ID or CLEAVE_CLIENT_SECRET is too long");
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return CL_OK;
}

void host_creds_set_issuer(host_creds *c, const cl_module_api *issuer_api, const cl_handle *issuer)
{
    c->issuer_api = issuer_api;
    c->issuer = issuer;
}

void host_creds_free(host_creds *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_destroy(&c->mu);
    /* The secret and the tokens leave no copy behind in freed memory. */
    explicit_bzero(c, sizeof(*c));
    free(c);
}

/* The slot of audience (a new one when there is room), or NULL. */
static creds_token *creds_slot(host_creds *c, const char *audience)
{
    for (int i = 0; i < c->ntokens; i++) {
        if (strcmp(c->tokens[i].audience, audience) == 0) {
            return &c->tokens[i];
        }
    }
    if (c->ntokens == CREDS_MAX) {
        return NULL;
    }
    cl_strlcpy(c->tokens[c->ntokens].audience, audience, sizeof(c->tokens[0].audience));
    return &c->tokens[c->ntokens++];
}

/* Asks the issuer for a token for t's audience; t is replaced only on success. */
static cl_status creds_fetch(host_creds *c, creds_token *t, cl_error *err)
{
    /* On the heap: this runs inside a remote call, on a worker's small stack. */
    cl_ctx *ctx = NULL;
    char *token = NULL;
    int64_t expires_in = 0;
    int64_t now = cl_now_ms();
    cl_status st;

    if (c->issuer_api == NULL || c->issuer_api->client_token == NULL) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL,
                            "no module of this deployment issues service tokens (set "
                            "CLEAVE_IDENTITY_URL)");
    }
    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    cl_ctx_init(ctx, AUTH_FETCH_TIMEOUT_MS);
    st = c->issuer_api->client_token(c->issuer, ctx, c->client_id, c->secret, t->audience, &token,
                                     &expires_in);
    if (st != CL_OK) {
        cl_error_set(err,
                     st == CL_UNAVAILABLE || st == CL_DEADLINE_EXCEEDED ? CL_UNAVAILABLE
                                                                        : CL_UNAUTHORIZED,
                     NULL, "%s refused client %s a token for %s: %s", c->issuer_api->name,
                     c->client_id, t->audience, ctx->err.message);
        goto out;
    }
    if (token == NULL || expires_in <= 0 || cl_strlcpy(t->token, token, sizeof(t->token)) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "%s answered an unusable token for %s",
                          c->issuer_api->name, t->audience);
        t->token[0] = '\0';
        t->expires_ms = 0;
        goto out;
    }
    /*
     * Renewed at three quarters of its life, so that a call never leaves with a token about
     * to expire and an issuer down for a while leaves the last quarter to ride it out.
     */
    t->renew_ms = now + expires_in * 1000 * 3 / 4;
    t->expires_ms = now + expires_in * 1000 - CREDS_EXPIRY_MARGIN_MS;
out:
    if (token != NULL) {
        explicit_bzero(token, strlen(token));
    }
    free(token);
    free(ctx);
    return st;
}

cl_status host_creds_token(void *arg, const char *module, char *token, size_t size, cl_error *err)
{
    host_creds *c = arg;
    char audience[80];
    creds_token *t;
    cl_status st = CL_OK;
    int64_t now = cl_now_ms();

    host_service_audience(module, audience, sizeof(audience));
    pthread_mutex_lock(&c->mu);
    t = creds_slot(c, audience);
    if (t == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "too many audiences for one process");
        goto out;
    }
    if (now >= t->renew_ms) {
        cl_error ferr;

        st = creds_fetch(c, t, &ferr);
        if (st != CL_OK && now < t->expires_ms) {
            /*
             * The issuer is down: the token held still works for a while, and the issuer
             * is asked again only after a pause, so that every call does not wait on it.
             */
            t->renew_ms = now + CREDS_RETRY_MS;
            cl_log_warn("auth",
                        "renewing the service token for %s failed, the held one is "
                        "used until it expires: %s",
                        audience, ferr.message);
            st = CL_OK;
        } else if (st != CL_OK) {
            *err = ferr;
            goto out;
        }
    }
    if (cl_strlcpy(token, t->token, size) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "the service token for %s is too long", audience);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* Whether this process calls a module in another process (it needs a credential then). */
static bool calls_remote(const host *h)
{
    for (int i = 0; i < h->nmodules; i++) {
        if (h->modules[i].binding->local == NULL) {
            return true;
        }
    }
    return false;
}

cl_status host_open_auth(host *h, cl_error *err)
{
    const char *dev = cl_config_get(h->config, "CLEAVE_DEV_SERVICE_TOKEN");
    bool dev_mode = dev != NULL && dev[0] != '\0';
    cl_status st;

    h->auth = NULL;
    if (dev_mode) {
        cl_log_warn("auth", "INSECURE: CLEAVE_DEV_SERVICE_TOKEN is set: any holder of that one "
                            "static token may call this process's modules and act as any user "
                            "(development only; deployments use client_credentials tokens, "
                            "CLEAVE_CLIENT_ID and CLEAVE_CLIENT_SECRET)");
    }
    /* Default deny, said at start rather than by refusing every call later. */
    if (h->issuer_api == NULL && !dev_mode) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_IDENTITY_URL",
                            "%s cannot authenticate the callers of its modules: no token issuer "
                            "is compiled in or reachable; set CLEAVE_IDENTITY_URL to the identity "
                            "service (whose keys verify service tokens), or "
                            "CLEAVE_DEV_SERVICE_TOKEN for development only",
                            host_binary_name);
    }
    if (calls_remote(h) && h->creds == NULL && !dev_mode) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_CLIENT_ID",
                            "%s calls modules in other processes but has no credentials to "
                            "call them with: set CLEAVE_CLIENT_ID and CLEAVE_CLIENT_SECRET (a "
                            "client_credentials client, `cleave clients add`), or "
                            "CLEAVE_DEV_SERVICE_TOKEN for development only",
                            host_binary_name);
    }
    if (h->issuer_api == NULL) {
        cl_log_warn("auth", "no module of this deployment issues tokens: only public routes "
                            "and those anonymous callers may use will answer");
    }
    st = host_auth_new(h->issuer_api, h->issuer, cl_config_get(h->config, "CLEAVE_AUTH_AUDIENCE"),
                       cl_config_int(h->config, "CLEAVE_AUTH_LEEWAY_S"), &h->auth, err);
    for (int i = 0; st == CL_OK && h->auth != NULL && i < h->nmodules; i++) {
        if (h->modules[i].binding->local != NULL) {
            st = host_auth_add_service(h->auth, h->modules[i].binding->api->name, err);
        }
    }
    return st;
}
