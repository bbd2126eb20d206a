/*
 * identity's public HTTP endpoints: OpenID Connect Discovery 1.0, the JWKS (RFC 7517),
 * the token endpoint (RFC 6749), userinfo (OIDC Core 5.3) and revocation (RFC 7009).
 * Handlers call only through the module handle they are given, so they work unchanged
 * whether identity is local or extracted.
 *
 * The token and revocation endpoints answer errors as OAuth's JSON
 * {"error":"invalid_grant","error_description":...} (RFC 6749 section 5.2): that is what
 * OAuth clients parse, so there it replaces problem+json. A body that is not a form at
 * all, and the rate limit (429), are the HTTP layer's problems and stay problem+json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"

/* --- client authentication ----------------------------------------------------------- */

/* Sends an OAuth error (RFC 6749 section 5.2) with status. */
/* How long caches keep the key set and the provider's metadata (seconds). */
#define IDENTITY_METADATA_MAX_AGE_S 300

static void reply_oauth(cl_http_req *req, int status, const char *error, const char *description)
{
    cl_http_set_header(req, "Cache-Control", "no-store");
    if (status == 401) {
        cl_http_set_header(req, "WWW-Authenticate", "Basic realm=\"cleave\"");
    }
    cl_http_reply_json(req, status,
                       json_pack("{s:s,s:s}", "error", error, "error_description", description));
}

/* The longest client id and secret the token endpoint reads. */
#define CREDENTIAL_MAX 256

/*
 * Takes the client's credentials from HTTP Basic, both halves form-encoded as RFC 6749
 * section 2.3.1 says, or from the form (client_secret_post), into *id and *secret (new
 * strings, free). Returns 0, or -1 after replying.
 */
static int client_credentials(cl_http_req *req, json_t *form, char **id, char **secret)
{
    const char *form_id = json_string_value(json_object_get(form, "client_id"));
    const char *form_secret = json_string_value(json_object_get(form, "client_secret"));
    char user[CREDENTIAL_MAX + 1];
    char pass[CREDENTIAL_MAX + 1];
    char user_dec[CREDENTIAL_MAX + 1];
    char pass_dec[CREDENTIAL_MAX + 1];
    int basic = cl_http_basic_auth(req, user, sizeof(user), pass, sizeof(pass));

    if (basic == 0) {
        *id = form_id != NULL ? strdup(form_id) : NULL;
        *secret = form_secret != NULL ? strdup(form_secret) : NULL;
        return 0;
    }
    if (basic > 0 && form_secret != NULL) {
        reply_oauth(req, 400, "invalid_request", "use one client authentication method, not two");
        return -1;
    }
    if (basic < 0 || cl_http_form_decode(user, user_dec, sizeof(user_dec)) < 0 ||
        cl_http_form_decode(pass, pass_dec, sizeof(pass_dec)) < 0 ||
        (form_id != NULL && strcmp(form_id, user_dec) != 0)) {
        reply_oauth(req, 401, "invalid_client", "the client credentials are not valid HTTP Basic");
        return -1;
    }
    *id = strdup(user_dec);
    *secret = strdup(pass_dec);
    return 0;
}

/*
 * Reads a token or revocation request's form and its client's credentials into *form (a
 * new reference), *id and *secret; remote_addr receives the caller's address. Returns 0,
 * or -1 after replying.
 */
static int read_client_form(cl_http_req *req, json_t **form, char **id, char **secret,
                            char **remote_addr)
{
    if (cl_http_read_form(req, form) != CL_OK) {
        return -1;
    }
    *remote_addr = strdup(cl_http_remote_addr(req));
    return client_credentials(req, *form, id, secret);
}

/* Answers a failed token or revocation call: OAuth's error, or the rate limit's 429. */
static void reply_failure(cl_http_req *req, const cl_error *err)
{
    static const char *const oauth[] = {
        "invalid_request",        "invalid_client", "invalid_grant", "unauthorized_client",
        "unsupported_grant_type", "invalid_scope",  "invalid_target"};
    char retry[16];

    if (err->status == CL_UNAVAILABLE && strcmp(err->field, "rate_limit") == 0) {
        /* The module's window is the wall-clock minute. */
        snprintf(retry, sizeof(retry), "%d", 60 - (int)(time(NULL) % 60));
        cl_http_set_header(req, "Retry-After", retry);
        cl_http_reply_problem(req, 429, "too-many-requests", "too many requests", err->message,
                              NULL);
        return;
    }
    for (size_t i = 0; i < sizeof(oauth) / sizeof(oauth[0]); i++) {
        if (strcmp(err->field, oauth[i]) == 0) {
            reply_oauth(req, err->status == CL_UNAUTHORIZED ? 401 : 400, oauth[i], err->message);
            return;
        }
    }
    cl_http_reply_error(req, err);
}

/*
 * RFC 6749 section 5.1 leaves an absent member out; a null refresh_token is not a string
 * and openid-client rightly refuses the response (found by test_oidc_clients_against_cleave).
 */
static json_t *without_nulls(json_t *obj)
{
    const char *key;
    json_t *value;
    void *tmp;

    json_object_foreach_safe(obj, tmp, key, value)
    {
        if (json_is_null(value)) {
            json_object_del(obj, key);
        }
    }
    return obj;
}

static char *form_str(json_t *form, const char *name)
{
    const char *s = json_string_value(json_object_get(form, name));

    return s != NULL ? strdup(s) : NULL;
}

/* --- endpoints --------------------------------------------------------------------- */

static void token(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    identity_token_request in = {0};
    identity_token out = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *form = NULL;

    if (read_client_form(req, &form, &in.client_id, &in.client_secret, &in.remote_addr) != 0) {
        goto out;
    }
    in.grant_type = form_str(form, "grant_type");
    in.username = form_str(form, "username");
    in.password = form_str(form, "password");
    in.refresh_token = form_str(form, "refresh_token");
    in.scope = form_str(form, "scope");
    in.audience = form_str(form, "audience");
    if (identity_issue_token(module, ctx, &in, &out) != CL_OK) {
        reply_failure(req, &ctx->err);
        goto out;
    }
    /* RFC 6749 section 5.1: a response with tokens is never cached. */
    cl_http_set_header(req, "Cache-Control", "no-store");
    cl_http_set_header(req, "Pragma", "no-cache");
    cl_http_reply_json(req, 200, without_nulls(cl_schema_to_json(&identity_token_type, &out)));
out:
    json_decref(form);
    cl_schema_free(&identity_token_request_type, &in);
    cl_schema_free(&identity_token_type, &out);
}

static void revoke(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    identity_revoke_request in = {0};
    cl_empty none = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *form = NULL;

    if (read_client_form(req, &form, &in.client_id, &in.client_secret, &in.remote_addr) != 0) {
        goto out;
    }
    in.token = form_str(form, "token");
    in.token_type_hint = form_str(form, "token_type_hint");
    if (identity_revoke(module, ctx, &in, &none) != CL_OK) {
        reply_failure(req, &ctx->err);
        goto out;
    }
    cl_http_reply_empty(req, 200);
out:
    json_decref(form);
    cl_schema_free(&identity_revoke_request_type, &in);
}

static void userinfo(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    const char *auth = cl_http_header(req, "Authorization");
    identity_userinfo_request in = {0};
    identity_userinfo out = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        /* RFC 6750 section 3.1: no credentials, no error code. */
        cl_http_set_header(req, "WWW-Authenticate", "Bearer realm=\"cleave\"");
        cl_http_reply_problem(req, 401, "unauthorized", "authentication is required",
                              "send an access token: Authorization: Bearer <token>", NULL);
        return;
    }
    in.access_token = (char *)auth + 7;
    if (identity_get_userinfo(module, ctx, &in, &out) != CL_OK) {
        if (ctx->err.status == CL_UNAUTHORIZED) {
            cl_http_set_header(req, "WWW-Authenticate",
                               "Bearer realm=\"cleave\", error=\"invalid_token\"");
        }
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_type(req, 200, &identity_userinfo_type, &out);
    cl_schema_free(&identity_userinfo_type, &out);
}

static void jwks(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    identity_jwks out = {0};
    cl_empty none = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (identity_get_jwks(module, ctx, &none, &out) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    /*
     * Verifiers cache it, and revalidate it with its ETag (ADR 0040); a rotated-in key must
     * still be seen within minutes.
     */
    cl_http_cache_public(req, IDENTITY_METADATA_MAX_AGE_S);
    cl_http_reply_type(req, 200, &identity_jwks_type, &out);
    cl_schema_free(&identity_jwks_type, &out);
}

/* Joins the issuer and path into a new JSON string. */
static json_t *endpoint(const char *issuer, const char *path)
{
    char url[512];

    snprintf(url, sizeof(url), "%s%s", issuer, path);
    return json_string(url);
}

static void discovery(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    identity_configuration conf = {0};
    cl_empty none = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const char *iss;

    if (identity_get_configuration(module, ctx, &none, &conf) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    iss = conf.issuer;
    cl_http_cache_public(req, IDENTITY_METADATA_MAX_AGE_S);
    cl_http_reply_json(
        req, 200,
        json_pack("{s:s,s:o,s:o,s:o,s:o,s:[sss],s:[ss],s:[s],s:[s],s:[s],s:[s],s:[sss],s:[s]}",
                  "issuer", iss, "jwks_uri", endpoint(iss, "/oauth2/jwks"), "token_endpoint",
                  endpoint(iss, "/oauth2/token"), "userinfo_endpoint",
                  endpoint(iss, "/oauth2/userinfo"), "revocation_endpoint",
                  endpoint(iss, "/oauth2/revoke"), "grant_types_supported", "password",
                  "client_credentials", "refresh_token", "token_endpoint_auth_methods_supported",
                  "client_secret_basic", "client_secret_post",
                  "id_token_signing_alg_values_supported", "ES256", "response_types_supported",
                  "token", "subject_types_supported", "public",
                  "revocation_endpoint_auth_methods_supported", "client_secret_basic",
                  "scopes_supported", "openid", "profile", "service", "claims_supported", "sub"));
    cl_schema_free(&identity_configuration_type, &conf);
}

cl_status identity_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    /*
     * Public by design: discovery and keys are for anyone; the token and revocation
     * endpoints authenticate the client themselves, userinfo checks its bearer token.
     */
    const cl_route routes[] = {
        {"GET", "/.well-known/openid-configuration", CL_PERM_PUBLIC, discovery, arg, NULL},
        {"GET", "/oauth2/jwks", CL_PERM_PUBLIC, jwks, arg, NULL},
        {"POST", "/oauth2/token", CL_PERM_PUBLIC, token, arg, NULL},
        {"POST", "/oauth2/revoke", CL_PERM_PUBLIC, revoke, arg, NULL},
        {"GET", "/oauth2/userinfo", CL_PERM_PUBLIC, userinfo, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
