/*
 * identity's types, operation list, remote binding and interface descriptor, all
 * generated from the declarations in identity.h.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "cleave/rpc.h"

CL_TYPE_DEFINE(identity_user, IDENTITY_USER)
CL_TYPE_DEFINE(identity_user_request, IDENTITY_USER_REQUEST)
CL_TYPE_DEFINE(identity_client_request, IDENTITY_CLIENT_REQUEST)
CL_TYPE_DEFINE(identity_client, IDENTITY_CLIENT)
CL_TYPE_DEFINE(identity_token_request, IDENTITY_TOKEN_REQUEST)
CL_TYPE_DEFINE(identity_token, IDENTITY_TOKEN)
CL_TYPE_DEFINE(identity_revoke_request, IDENTITY_REVOKE_REQUEST)
CL_TYPE_DEFINE(identity_userinfo_request, IDENTITY_USERINFO_REQUEST)
CL_TYPE_DEFINE(identity_userinfo, IDENTITY_USERINFO)
CL_TYPE_DEFINE(identity_jwk, IDENTITY_JWK)
CL_TYPE_DEFINE(identity_jwks, IDENTITY_JWKS)
CL_TYPE_DEFINE(identity_configuration, IDENTITY_CONFIGURATION)
CL_TYPE_DEFINE(identity_key_rotation, IDENTITY_KEY_ROTATION)

CL_TYPE_DEFINE(identity_user_added, IDENTITY_USER_ADDED)

CL_OPS_DEFINE(identity, IDENTITY_OPERATIONS)
CL_EVENTS_DEFINE(identity, IDENTITY_EVENTS)
CL_REMOTE_DEFINE(identity, IDENTITY_OPERATIONS, IDENTITY_OPS_VERSION)

/* Generated from cleave_module(identity DEPENDS ...) in modules/identity/CMakeLists.txt. */
CL_MODULE_DEPENDS_DECLARE(identity);

/*
 * identity's configuration keys, with their defaults (declared here only); identity.c
 * reads them. The argon2id defaults are OWASP's password storage recommendation
 * (m=19 MiB, t=2, p=1): about 30 ms a hash here, and a guess costs an attacker as much.
 */
static const cl_setting identity_settings[] = {
    {"CLEAVE_IDENTITY_ISSUER", CL_SETTING_URL, NULL,
     "iss of the tokens and base of the endpoints; default http://CLEAVE_LISTEN"},
    {"CLEAVE_IDENTITY_ACCESS_TOKEN_SECONDS", CL_SETTING_INT(300, 900), "600",
     "lifetime of an access token"},
    {"CLEAVE_IDENTITY_REFRESH_TOKEN_SECONDS", CL_SETTING_INT(60, 7776000), "1209600",
     "lifetime of a refresh token"},
    {"CLEAVE_IDENTITY_ARGON2_T", CL_SETTING_INT(1, 10), "2", "argon2id passes (time cost)"},
    {"CLEAVE_IDENTITY_ARGON2_M_KIB", CL_SETTING_INT(1024, 1048576), "19456",
     "argon2id memory per hash, KiB"},
    {"CLEAVE_IDENTITY_ARGON2_P", CL_SETTING_INT(1, 8), "1", "argon2id lanes (parallelism)"},
    {"CLEAVE_IDENTITY_TOKEN_RATE", CL_SETTING_INT(1, 1000000), "60",
     "token and revocation requests a minute, per client and per address"},
};

/* cl_module_api.token_keys: the key set and issuer a gateway verifies tokens with. */
static cl_status token_keys(const cl_handle *m, cl_ctx *ctx, char **jwks, char **issuer)
{
    cl_empty none = {0};
    identity_jwks keys = {0};
    identity_configuration conf = {0};
    json_t *doc = NULL;
    cl_status st;

    *jwks = NULL;
    *issuer = NULL;
    st = identity_get_jwks(m, ctx, &none, &keys);
    if (st == CL_OK) {
        st = identity_get_configuration(m, ctx, &none, &conf);
    }
    if (st == CL_OK) {
        doc = cl_schema_to_json(&identity_jwks_type, &keys);
        *jwks = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        *issuer = conf.issuer != NULL ? strdup(conf.issuer) : NULL;
        if (*jwks == NULL || *issuer == NULL) {
            free(*jwks);
            free(*issuer);
            *jwks = NULL;
            *issuer = NULL;
            st = cl_error_set(&ctx->err, CL_INTERNAL, NULL, "out of memory");
        }
    }
    json_decref(doc);
    cl_schema_free(&identity_jwks_type, &keys);
    cl_schema_free(&identity_configuration_type, &conf);
    return st;
}

/* cl_module_api.client_token: a client_credentials grant through identity's interface. */
static cl_status client_token(const cl_handle *m, cl_ctx *ctx, const char *client_id,
                              const char *secret, const char *audience, char **token,
                              int64_t *expires_in)
{
    identity_token_request req = {.grant_type = "client_credentials",
                                  .client_id = (char *)client_id,
                                  .client_secret = (char *)secret,
                                  .audience = (char *)audience};
    identity_token resp = {0};
    cl_status st = identity_issue_token(m, ctx, &req, &resp);

    *token = NULL;
    *expires_in = 0;
    if (st == CL_OK) {
        *token = resp.access_token;
        *expires_in = resp.expires_in;
        resp.access_token = NULL;
    }
    cl_schema_free(&identity_token_type, &resp);
    return st;
}

const cl_module_api identity_api = {
    .name = "identity",
    .ops_version = IDENTITY_OPS_VERSION,
    .ops = identity_op_list,
    .nops = sizeof(identity_op_list) / sizeof(identity_op_list[0]),
    .depends = identity_depends,
    .routes = identity_rest_routes,
    .seed = identity_seed,
    .remote_ops = &identity_remote_ops,
    .events = identity_events,
    .nevents = sizeof(identity_events) / sizeof(identity_events[0]),
    .subscribes = NULL,
    .settings = identity_settings,
    .nsettings = sizeof(identity_settings) / sizeof(identity_settings[0]),
    .token_keys = token_keys,
    .client_token = client_token,
};
