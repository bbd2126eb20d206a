/*
 * The identity module's contract suite (see contract.h). Every test starts from a fresh
 * identity module with no user and goes through the operations only: no SQL, no knowledge
 * of how a binding stores or transports anything.
 */
#include "contract.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_module.h"

/* The binding under test, between setup and teardown (tests/support/test_module.h). */
static const cl_handle *module;

static int setup(void **state)
{
    (void)state;
    return test_contract_setup(&module);
}

/* --- helpers ------------------------------------------------------------------------ */

static void add_user(const char *name, const char *password, const char *role)
{
    identity_user_request in = {(char *)name, (char *)password, (char *)role};
    identity_user out = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = identity_add_user(module, &ctx, &in, &out);

    if (st != CL_OK) {
        fail_msg("add_user %s: %s: %s", name, cl_status_name(st), ctx.err.message);
    }
    assert_true(out.id > 0);
    assert_string_equal(out.username, name);
    assert_string_equal(out.role, role);
    cl_schema_free(&identity_user_type, &out);
}

/* Adds a client with grants (space-separated); *secret (free) receives its secret. */
static void add_client(const char *id, const char *grants, const char *aud, char **secret)
{
    char buf[128];
    char *v[4];
    size_t n = 0;
    identity_client_request in = {0};
    identity_client out = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st;

    snprintf(buf, sizeof(buf), "%s", grants);
    for (char *save = NULL, *g = strtok_r(buf, " ", &save); g != NULL && n < 4;
         g = strtok_r(NULL, " ", &save)) {
        v[n++] = g;
    }
    in.client_id = (char *)id;
    in.grants = (cl_strs){.v = v, .n = n, .set = true};
    in.audience = (char *)aud;
    st = identity_add_client(module, &ctx, &in, &out);
    if (st != CL_OK) {
        fail_msg("add_client %s: %s: %s", id, cl_status_name(st), ctx.err.message);
    }
    assert_non_null(out.client_secret);
    assert_true(strlen(out.client_secret) >= 32);
    *secret = strdup(out.client_secret);
    cl_schema_free(&identity_client_type, &out);
}

/* A token request; returns its status, with ctx's error in *err. */
static cl_status token(identity_token_request *in, identity_token *out, cl_error *err)
{
    cl_ctx ctx = test_contract_ctx();
    cl_status st;

    in->remote_addr = "192.0.2.1";
    st = identity_issue_token(module, &ctx, in, out);
    *err = ctx.err;
    return st;
}

static void expect_oauth_error(identity_token_request *in, cl_status status, const char *code)
{
    identity_token out = {0};
    cl_error err;
    cl_status st = token(in, &out, &err);

    if (st != status || strcmp(err.field, code) != 0) {
        fail_msg("want %s %s, got %s %s (%s)", cl_status_name(status), code, cl_status_name(st),
                 err.field, err.message);
    }
    assert_null(out.access_token);
}

/* A demo user and a first-party client that may use the password and refresh grants. */
static char *first_party(void)
{
    char *secret = NULL;

    add_user("alice", "alice-password", "customer");
    add_client("web", "password refresh_token", "cleave", &secret);
    return secret;
}

static void password_grant(const char *secret, identity_token *out)
{
    identity_token_request in = {.grant_type = "password",
                                 .client_id = "web",
                                 .client_secret = (char *)secret,
                                 .username = "alice",
                                 .password = "alice-password"};
    cl_error err;
    cl_status st = token(&in, out, &err);

    if (st != CL_OK) {
        fail_msg("password grant: %s %s: %s", cl_status_name(st), err.field, err.message);
    }
    assert_string_equal(out->token_type, "Bearer");
    assert_int_equal(out->expires_in, IDENTITY_CONTRACT_TTL);
    assert_non_null(out->refresh_token);
    /* A compact JWS: three base64url parts. */
    assert_non_null(strchr(strchr(out->access_token, '.') + 1, '.'));
}

static cl_status refresh(const char *secret, const char *rt, identity_token *out, cl_error *err)
{
    identity_token_request in = {.grant_type = "refresh_token",
                                 .client_id = "web",
                                 .client_secret = (char *)secret,
                                 .refresh_token = (char *)rt};
    return token(&in, out, err);
}

/* --- users and clients ------------------------------------------------------------ */

static void test_add_user_refuses_bad_input_and_taken_names(void **state)
{
    static const struct {
        const char *name, *password, *role, *field;
    } bad[] = {
        {NULL, "long-enough", "customer", "username"},
        {"", "long-enough", "customer", "username"},
        {"has space", "long-enough", "customer", "username"},
        {"bob", "short", "customer", "password"},
        {"bob", NULL, "customer", "password"},
        {"bob", "long-enough", "root", "role"},
        {"bob", "long-enough", NULL, "role"},
    };
    identity_user_request dup = {"bob", "long-enough", "staff"};
    identity_user out = {0};
    cl_ctx ctx;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        identity_user_request in = {(char *)bad[i].name, (char *)bad[i].password,
                                    (char *)bad[i].role};
        cl_status st;

        ctx = test_contract_ctx();
        st = identity_add_user(module, &ctx, &in, &out);
        if (st != CL_INVALID || strcmp(ctx.err.field, bad[i].field) != 0) {
            fail_msg("case %zu: want invalid %s, got %s %s", i, bad[i].field, cl_status_name(st),
                     ctx.err.field);
        }
        assert_null(out.username);
    }
    add_user("bob", "long-enough", "customer");
    ctx = test_contract_ctx();
    assert_int_equal(identity_add_user(module, &ctx, &dup, &out), CL_CONFLICT);
    assert_string_equal(ctx.err.field, "username");
}

/* --- the grants ----------------------------------------------------------------------- */

static void test_password_grant_checks_the_password(void **state)
{
    char *secret = first_party();
    identity_token tok = {0};
    identity_token_request wrong = {.grant_type = "password",
                                    .client_id = "web",
                                    .client_secret = secret,
                                    .username = "alice",
                                    .password = "alice-passworD"};
    identity_token_request nobody = {.grant_type = "password",
                                     .client_id = "web",
                                     .client_secret = secret,
                                     .username = "nobody",
                                     .password = "alice-password"};

    (void)state;
    password_grant(secret, &tok);
    assert_string_equal(tok.scope, "openid profile");
    cl_schema_free(&identity_token_type, &tok);
    expect_oauth_error(&wrong, CL_INVALID, "invalid_grant");
    expect_oauth_error(&nobody, CL_INVALID, "invalid_grant");
    free(secret);
}

/*
 * Only the scopes discovery names are granted: a token never claims one this server did
 * not define (RFC 6749 5.2). Before, alice asking "admin" got a token with scope "admin".
 */
static void test_unknown_scopes_are_invalid_scope(void **state)
{
    char *secret = first_party();
    char *svc = NULL;
    identity_token tok = {0};
    cl_error err;
    identity_token_request admin = {.grant_type = "password",
                                    .client_id = "web",
                                    .client_secret = secret,
                                    .username = "alice",
                                    .password = "alice-password",
                                    .scope = "openid admin"};
    identity_token_request openid = admin;
    identity_token_request cc = {
        .grant_type = "client_credentials", .client_id = "orders", .scope = "openid"};

    (void)state;
    expect_oauth_error(&admin, CL_INVALID, "invalid_scope");
    openid.scope = "openid";
    assert_int_equal(token(&openid, &tok, &err), CL_OK);
    assert_string_equal(tok.scope, "openid");
    cl_schema_free(&identity_token_type, &tok);
    add_client("orders", "client_credentials", "payments", &svc);
    cc.client_secret = svc;
    expect_oauth_error(&cc, CL_INVALID, "invalid_scope");
    cc.scope = "service";
    assert_int_equal(token(&cc, &tok, &err), CL_OK);
    assert_string_equal(tok.scope, "service");
    cl_schema_free(&identity_token_type, &tok);
    free(svc);
    free(secret);
}

static void test_client_authentication_and_grant_rules(void **state)
{
    char *secret = first_party();
    char *svc = NULL;
    identity_token tok = {0};
    cl_error err;
    identity_token_request bad_secret = {.grant_type = "password",
                                         .client_id = "web",
                                         .client_secret = "not-the-secret",
                                         .username = "alice",
                                         .password = "alice-password"};
    identity_token_request unknown = {
        .grant_type = "client_credentials", .client_id = "ghost", .client_secret = secret};
    identity_token_request not_allowed = {
        .grant_type = "client_credentials", .client_id = "web", .client_secret = secret};
    identity_token_request unsupported = {
        .grant_type = "implicit", .client_id = "web", .client_secret = secret};
    identity_token_request no_grant = {.client_id = "web", .client_secret = secret};
    identity_token_request cc = {.grant_type = "client_credentials", .client_id = "orders"};

    (void)state;
    expect_oauth_error(&bad_secret, CL_UNAUTHORIZED, "invalid_client");
    expect_oauth_error(&unknown, CL_UNAUTHORIZED, "invalid_client");
    expect_oauth_error(&not_allowed, CL_INVALID, "unauthorized_client");
    expect_oauth_error(&unsupported, CL_INVALID, "unsupported_grant_type");
    expect_oauth_error(&no_grant, CL_INVALID, "invalid_request");
    add_client("orders", "client_credentials", "payments", &svc);
    cc.client_secret = svc;
    assert_int_equal(token(&cc, &tok, &err), CL_OK);
    /* A service gets no refresh token: it can always ask again. */
    assert_null(tok.refresh_token);
    assert_string_equal(tok.scope, "service");
    cl_schema_free(&identity_token_type, &tok);
    free(svc);
    free(secret);
}

static void test_refresh_rotates_and_reuse_revokes_the_family(void **state)
{
    char *secret = first_party();
    identity_token first = {0}, second = {0}, third = {0}, again = {0};
    cl_error err;

    (void)state;
    password_grant(secret, &first);
    assert_int_equal(refresh(secret, first.refresh_token, &second, &err), CL_OK);
    assert_non_null(second.refresh_token);
    assert_string_not_equal(second.refresh_token, first.refresh_token);
    assert_string_equal(second.scope, "openid profile");
    /* The first token again: someone else holds it, so the whole family goes. */
    assert_int_equal(refresh(secret, first.refresh_token, &again, &err), CL_INVALID);
    assert_string_equal(err.field, "invalid_grant");
    /* Including the token the legitimate holder got by rotation. */
    assert_int_equal(refresh(secret, second.refresh_token, &third, &err), CL_INVALID);
    assert_string_equal(err.field, "invalid_grant");
    assert_null(third.access_token);
    /* A new login starts a new family that works. */
    cl_schema_free(&identity_token_type, &third);
    cl_schema_free(&identity_token_type, &first);
    password_grant(secret, &first);
    assert_int_equal(refresh(secret, first.refresh_token, &third, &err), CL_OK);
    cl_schema_free(&identity_token_type, &first);
    cl_schema_free(&identity_token_type, &second);
    cl_schema_free(&identity_token_type, &third);
    free(secret);
}

static void test_refresh_token_is_bound_to_its_client(void **state)
{
    char *secret = first_party();
    char *other = NULL;
    identity_token first = {0}, stolen = {0}, mine = {0};
    identity_token_request in = {.grant_type = "refresh_token", .client_id = "other"};
    cl_error err;

    (void)state;
    add_client("other", "password refresh_token", "cleave", &other);
    password_grant(secret, &first);
    in.client_secret = other;
    in.refresh_token = first.refresh_token;
    assert_int_equal(token(&in, &stolen, &err), CL_INVALID);
    assert_string_equal(err.field, "invalid_grant");
    /* The owner can still use it: another client's attempt did not consume it. */
    assert_int_equal(refresh(secret, first.refresh_token, &mine, &err), CL_OK);
    cl_schema_free(&identity_token_type, &first);
    cl_schema_free(&identity_token_type, &mine);
    free(other);
    free(secret);
}

static void test_revoke_ends_the_family(void **state)
{
    char *secret = first_party();
    identity_token first = {0}, after = {0};
    identity_revoke_request rv = {.client_id = "web", .remote_addr = "192.0.2.1"};
    cl_empty none = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_error err;

    (void)state;
    password_grant(secret, &first);
    rv.client_secret = secret;
    rv.token = first.refresh_token;
    assert_int_equal(identity_revoke(module, &ctx, &rv, &none), CL_OK);
    assert_int_equal(refresh(secret, first.refresh_token, &after, &err), CL_INVALID);
    /* An unknown token is no error (RFC 7009 section 2.2). */
    rv.token = "never-issued";
    ctx = test_contract_ctx();
    assert_int_equal(identity_revoke(module, &ctx, &rv, &none), CL_OK);
    cl_schema_free(&identity_token_type, &first);
    free(secret);
}

/* --- tokens, userinfo and keys -------------------------------------------------------- */

static void test_userinfo_answers_for_the_token_holder(void **state)
{
    char *secret = first_party();
    identity_token tok = {0};
    identity_userinfo u = {0};
    identity_userinfo_request in = {0};
    cl_ctx ctx = test_contract_ctx();
    char *tampered;

    (void)state;
    password_grant(secret, &tok);
    in.access_token = tok.access_token;
    assert_int_equal(identity_get_userinfo(module, &ctx, &in, &u), CL_OK);
    assert_string_equal(u.preferred_username, "alice");
    assert_int_equal(u.roles.n, 1);
    assert_string_equal(u.roles.v[0], "customer");
    assert_memory_equal(u.sub, "user:", 5);
    cl_schema_free(&identity_userinfo_type, &u);
    /* One character of the signature changed: refused. */
    tampered = strdup(tok.access_token);
    tampered[strlen(tampered) - 2] = tampered[strlen(tampered) - 2] == 'A' ? 'B' : 'A';
    in.access_token = tampered;
    ctx = test_contract_ctx();
    assert_int_equal(identity_get_userinfo(module, &ctx, &in, &u), CL_UNAUTHORIZED);
    assert_string_equal(ctx.err.field, "invalid_token");
    free(tampered);
    cl_schema_free(&identity_token_type, &tok);
    free(secret);
}

static void jwks(identity_jwks *out)
{
    cl_empty none = {0};
    cl_ctx ctx = test_contract_ctx();

    assert_int_equal(identity_get_jwks(module, &ctx, &none, out), CL_OK);
}

static void test_rotation_keeps_the_old_key_until_its_tokens_expire(void **state)
{
    char *secret = first_party();
    identity_jwks before = {0}, after = {0};
    identity_key_rotation rot = {0};
    identity_token tok = {0};
    identity_userinfo u = {0};
    identity_userinfo_request in = {0};
    cl_empty none = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    jwks(&before);
    assert_int_equal(before.keys.n, 1);
    assert_string_equal(before.keys.v[0].kty, "EC");
    assert_string_equal(before.keys.v[0].crv, "P-256");
    assert_string_equal(before.keys.v[0].alg, "ES256");
    /* A token signed before the rotation. */
    password_grant(secret, &tok);
    assert_int_equal(identity_rotate_keys(module, &ctx, &none, &rot), CL_OK);
    assert_string_equal(rot.previous_kid, before.keys.v[0].kid);
    assert_string_not_equal(rot.kid, rot.previous_kid);
    jwks(&after);
    assert_int_equal(after.keys.n, 2);
    assert_string_equal(after.keys.v[0].kid, rot.kid);
    assert_string_equal(after.keys.v[1].kid, rot.previous_kid);
    /* The old key still verifies its token. */
    in.access_token = tok.access_token;
    ctx = test_contract_ctx();
    assert_int_equal(identity_get_userinfo(module, &ctx, &in, &u), CL_OK);
    cl_schema_free(&identity_userinfo_type, &u);
    cl_schema_free(&identity_jwks_type, &before);
    cl_schema_free(&identity_jwks_type, &after);
    cl_schema_free(&identity_key_rotation_type, &rot);
    cl_schema_free(&identity_token_type, &tok);
    free(secret);
}

static void test_configuration_reports_the_settings(void **state)
{
    identity_configuration conf = {0};
    cl_empty none = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    assert_int_equal(identity_get_configuration(module, &ctx, &none, &conf), CL_OK);
    assert_int_equal(conf.access_token_seconds, IDENTITY_CONTRACT_TTL);
    assert_memory_equal(conf.issuer, "http", 4);
    cl_schema_free(&identity_configuration_type, &conf);
}

/* --- the runner ------------------------------------------------------------------------ */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int identity_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                          void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_add_user_refuses_bad_input_and_taken_names),
        CONTRACT_TEST(test_password_grant_checks_the_password),
        CONTRACT_TEST(test_client_authentication_and_grant_rules),
        CONTRACT_TEST(test_unknown_scopes_are_invalid_scope),
        CONTRACT_TEST(test_refresh_rotates_and_reuse_revokes_the_family),
        CONTRACT_TEST(test_refresh_token_is_bound_to_its_client),
        CONTRACT_TEST(test_revoke_ends_the_family),
        CONTRACT_TEST(test_userinfo_answers_for_the_token_holder),
        CONTRACT_TEST(test_rotation_keeps_the_old_key_until_its_tokens_expire),
        CONTRACT_TEST(test_configuration_reports_the_settings),
    };

    test_contract_bind(setup_fn, teardown_fn, IDENTITY_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
