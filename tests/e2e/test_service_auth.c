/*
 * Service-to-service authentication (ADR 0030), with identity, inventory and
 * payments each in a service of its own and orders in the gateway: every call between the
 * processes carries a client_credentials JWT for the callee's audience, and the end user
 * travels as their own signed access token, never as a header the callee trusts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "cleave/db.h"
#include "cleave/jwt.h"
#include "cleave/util.h"
#include "shop.h"
#include "topology.h"

#define TOPOLOGY       "identity+inventory+payments-extracted"
/* How long an order may take to become final through three processes and the bus. */
#define ORDER_FINAL_MS 20000

static topology topo;
static char alice[4096], bob[4096], staff[4096];
/* The gateway's own service token for payments: a valid credential to misuse. */
static char gateway_payments[4096];

static int setup(void **state)
{
    (void)state;
    if (topology_start(&topo, TOPOLOGY, TOPOLOGY_SEED_SMALL) != 0 ||
        test_password_token(topo.base_url, TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD, alice,
                            sizeof(alice)) != 0 ||
        test_password_token(topo.base_url, TEST_CUSTOMER2, TEST_CUSTOMER2_PASSWORD, bob,
                            sizeof(bob)) != 0 ||
        test_password_token(topo.base_url, TEST_STAFF, TEST_STAFF_PASSWORD, staff, sizeof(staff)) !=
            0) {
        return -1;
    }
    return topology_service_token(&topo, TOPOLOGY_GATEWAY_CLIENT, "cleave-payments",
                                  gateway_payments, sizeof(gateway_payments));
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

/* The base URL of module's service into url[size]. */
static void service_url(const char *module, char *url, size_t size)
{
    for (int i = 0; i < topo.nservices; i++) {
        if (strcmp(topo.services[i] + 7, module) == 0) {
            snprintf(url, size, "http://127.0.0.1:%d", topo.service_ports[i]);
            return;
        }
    }
    fail_msg("%s is not extracted in %s", module, TOPOLOGY);
}

/* POST /rpc/v1/<module>/<op> body to module's service with headers; the status. */
static long rpc(const char *module, const char *op, const char *body, const char *const *headers,
                test_resp *r)
{
    char url[64], path[128];

    service_url(module, url, sizeof(url));
    snprintf(path, sizeof(path), "/rpc/v1/%s/%s", module, op);
    assert_int_equal(test_http(url, "POST", path, body, strlen(body), headers, r), 0);
    return r->status;
}

/* A refusal of the service's RPC endpoint: 401 problem+json with a Bearer challenge. */
static void assert_refused(const char *what, test_resp *r)
{
    if (!test_is_problem(r, 401) || strncmp(r->www_authenticate, "Bearer", 6) != 0) {
        fail_msg("%s: wanted 401 with WWW-Authenticate: Bearer, got %ld (%s) %.300s", what,
                 r->status, r->www_authenticate, r->body);
    }
    test_resp_free(r);
}

/* method path body through the gateway as token's user; the status. */
static long as_user(const char *token, const char *method, const char *path, const char *body,
                    test_resp *r)
{
    assert_int_equal(test_http_as(topo.base_url, token, method, path, body, r), 0);
    return r->status;
}

/* The id of a new account opened by token's customer, funded by staff. */
static void open_funded_account(const char *token, char *id, size_t size)
{
    test_resp r = {0};
    char path[128];

    assert_int_equal(
        as_user(token, "POST", "/api/v1/accounts", "{\"owner\":\"Mine\",\"currency\":\"EUR\"}", &r),
        201);
    snprintf(id, size, "%s", json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", id);
    assert_int_equal(
        as_user(staff, "POST", path, "{\"amount\":{\"amount\":100000,\"currency\":\"EUR\"}}", &r),
        200);
    test_resp_free(&r);
}

/* A new order of one SKU-000001 from account by token's customer; its id into id. */
static void place_order(const char *token, const char *account, char *id, size_t size)
{
    char body[256];
    test_resp r = {0};

    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-000001\",\"quantity\":1}]}",
             account);
    assert_int_equal(as_user(token, "POST", "/api/v1/orders", body, &r), 202);
    snprintf(id, size, "%s", json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);
}

/*
 * The whole checkout crosses four processes (the gateway's orders call inventory and
 * payments, every service asks identity for keys): it confirms, as on the monolith.
 */
static void test_the_shop_works_end_to_end_with_the_services_extracted(void **state)
{
    char account[64], order[64], path[128];
    int64_t until = cl_now_ms() + ORDER_FINAL_MS;
    const char *status = NULL;
    test_resp r = {0};

    (void)state;
    open_funded_account(alice, account, sizeof(account));
    place_order(alice, account, order, sizeof(order));
    snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
    for (;;) {
        assert_int_equal(as_user(alice, "GET", path, NULL, &r), 200);
        status = json_string_value(json_object_get(r.json, "status"));
        if ((status != NULL && test_order_is_final(status)) || cl_now_ms() > until) {
            break;
        }
        test_resp_free(&r);
        test_poll_pause();
    }
    if (status == NULL || strcmp(status, "confirmed") != 0) {
        fail_msg("order %s is %s after %d ms: %.300s", order, status ? status : "?", ORDER_FINAL_MS,
                 r.body);
    }
    test_resp_free(&r);
    /* Her account (payments, extracted) shows the charge to her, with her own token. */
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", account);
    assert_int_equal(as_user(alice, "GET", path, NULL, &r), 200);
    test_resp_free(&r);
}

/* No token: every service refuses; only token issuance and the keys are public. */
static void test_anonymous_rpc_calls_are_refused_by_every_service(void **state)
{
    const char *const none[] = {"Authorization:", NULL};
    test_resp r = {0};

    (void)state;
    rpc("payments", "get_account", "{\"id\":\"demo\"}", none, &r);
    assert_refused("payments.get_account without a token", &r);
    rpc("inventory", "get_stock", "{\"sku\":\"SKU-000001\"}", none, &r);
    assert_refused("inventory.get_stock without a token", &r);
    rpc("identity", "add_user",
        "{\"username\":\"mallory\",\"password\":\"mallory-pw-1\",\"role\":\"admin\"}", none, &r);
    assert_refused("identity.add_user without a token", &r);
    rpc("identity", "rotate_keys", "{}", none, &r);
    assert_refused("identity.rotate_keys without a token", &r);
    /* The exceptions, which authenticate by client secret or are public. */
    assert_int_equal(rpc("identity", "get_jwks", "{}", none, &r), 200);
    test_resp_free(&r);
}

/* A valid token for another audience is no token here. */
static void test_tokens_for_another_audience_are_refused(void **state)
{
    char with_payments[4200], with_user[4200];
    const char *const payments_token[] = {with_payments, NULL};
    const char *const user_token[] = {with_user, NULL};
    test_resp r = {0};

    (void)state;
    snprintf(with_payments, sizeof(with_payments), "Authorization: Bearer %s", gateway_payments);
    snprintf(with_user, sizeof(with_user), "Authorization: Bearer %s", alice);
    /* The control: payments accept their own audience (demo is the seeded account). */
    assert_int_equal(rpc("payments", "get_account", "{\"id\":\"demo\"}", payments_token, &r), 200);
    test_resp_free(&r);
    rpc("inventory", "get_stock", "{\"sku\":\"SKU-000001\"}", payments_token, &r);
    assert_refused("payments' token at inventory", &r);
    rpc("payments", "get_account", "{\"id\":\"demo\"}", user_token, &r);
    assert_refused("a user's access token (aud cleave) at payments", &r);
}

/* The signing key of identity's service (SQLite), read from its own database. */
static cl_jwk *identity_signing_key(void)
{
    char path[512];
    cl_db *db = NULL;
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    cl_jwk *key = NULL;
    cl_ctx ctx;
    cl_error err;
    bool row = false;

    cl_ctx_init(&ctx, 5000);
    snprintf(path, sizeof(path), "%s/identity-data/identity.db", topo.dir);
    assert_int_equal(cl_db_open(&cl_db_sqlite, "identity", path, NULL, &db, &err), CL_OK);
    assert_int_equal(cl_db_acquire(db, &ctx, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare_bind(&ctx, conn,
                                        "SELECT kid, private_pem FROM signing_keys WHERE "
                                        "not_after_ms IS NULL ORDER BY created_ms DESC LIMIT 1",
                                        &st, ""),
                     CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_int_equal(cl_jwk_from_pem(cl_stmt_text(st, 0), cl_stmt_text(st, 1), &key, &err), CL_OK);
    cl_stmt_drain(st, NULL, &err);
    cl_db_release(conn);
    cl_db_close(db);
    return key;
}

/* A service token for payments signed by key, expiring exp_s from now (may be negative). */
static char *signed_token(const cl_jwk *key, int64_t exp_s)
{
    json_int_t now = (json_int_t)(cl_wall_ms() / 1000);
    json_int_t exp = now + (json_int_t)exp_s;
    json_int_t past = now - 900;
    json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "iss", "http://cleave.test", "aud",
                               "cleave-payments", "sub", "service:cleave-gateway", "exp", exp,
                               "iat", past, "nbf", past, "jti", "test-service-auth");
    char *out = NULL;
    cl_error err;

    assert_int_equal(cl_jwt_sign(key, claims, &out, &err), CL_OK);
    json_decref(claims);
    return out;
}

static long rpc_with_bearer(const char *token, test_resp *r)
{
    char auth[4200];
    const char *const headers[] = {auth, NULL};

    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    return rpc("payments", "get_account", "{\"id\":\"demo\"}", headers, r);
}

/* Expired, re-signed by another key, or with its signature changed: all refused alike. */
static void test_expired_and_forged_service_tokens_are_refused(void **state)
{
    cl_jwk *key = identity_signing_key();
    cl_jwk *other = NULL;
    char *valid = signed_token(key, 300);
    char *expired = signed_token(key, -120);
    char *forged = NULL;
    char tampered[4096];
    char *sig;
    cl_error err;
    test_resp r = {0};

    (void)state;
    /* The control: the same making with a live exp is accepted, so the key is the real one. */
    assert_int_equal(rpc_with_bearer(valid, &r), 200);
    test_resp_free(&r);
    /* Past exp by more than the leeway. */
    rpc_with_bearer(expired, &r);
    assert_refused("an expired service token", &r);
    /* Another key under the real key's kid. */
    assert_int_equal(cl_jwk_generate(cl_jwk_kid(key), &other, &err), CL_OK);
    forged = signed_token(other, 300);
    rpc_with_bearer(forged, &r);
    assert_refused("a token signed by another key under identity's kid", &r);
    /* The gateway's real token with one character of its signature changed. */
    snprintf(tampered, sizeof(tampered), "%s", gateway_payments);
    sig = strrchr(tampered, '.');
    assert_non_null(sig);
    sig[8] = sig[8] == 'A' ? 'B' : 'A';
    rpc_with_bearer(tampered, &r);
    assert_refused("a token with a changed signature", &r);
    free(valid);
    free(expired);
    free(forged);
    cl_jwk_free(other);
    cl_jwk_free(key);
}

/*
 * The principal is the user's token's, never a header: with a valid service token, alice's
 * token and headers claiming another principal and no own-only restriction, payments still
 * show her only her own; through the gateway she reads neither bob's account nor his order.
 */
static void test_forged_principal_headers_reach_no_other_customers_data(void **state)
{
    char alice_acct[64], bob_acct[64], bob_order[64], path[128], body[128];
    char auth[4200], user[4200];
    const char *const forged[] = {auth, user, "X-Cleave-Principal: user:user:2",
                                  "X-Cleave-Own-Only: 0", NULL};
    const char *const garbage_user[] = {auth, "X-Cleave-User-Token: not.a.token", NULL};
    test_resp r = {0};

    (void)state;
    open_funded_account(alice, alice_acct, sizeof(alice_acct));
    open_funded_account(bob, bob_acct, sizeof(bob_acct));
    place_order(bob, bob_acct, bob_order, sizeof(bob_order));

    /* Through the gateway, with payments extracted. */
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", bob_acct);
    assert_int_equal(as_user(alice, "GET", path, NULL, &r), 404);
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/orders/%s", bob_order);
    assert_int_equal(as_user(alice, "GET", path, NULL, &r), 404);
    test_resp_free(&r);
    assert_int_equal(as_user(staff, "GET", path, NULL, &r), 200);
    test_resp_free(&r);

    /* Straight at payments, with the gateway's valid credential and forged headers. */
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", gateway_payments);
    snprintf(user, sizeof(user), "X-Cleave-User-Token: %s", alice);
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", bob_acct);
    if (rpc("payments", "get_account", body, forged, &r) != 404) {
        fail_msg("forged principal headers reached bob's account: %ld %.300s", r.status, r.body);
    }
    test_resp_free(&r);
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", alice_acct);
    assert_int_equal(rpc("payments", "get_account", body, forged, &r), 200);
    test_resp_free(&r);
    /* A user token that does not verify is refused, not ignored. */
    rpc("payments", "get_account", body, garbage_user, &r);
    assert_refused("a garbage X-Cleave-User-Token", &r);
}

/* Runs bin serve with env; its exit status, output in out. */
static int serve_once(const char *bin, char *const env[], char *out, size_t size)
{
    char path[512];
    char *argv[] = {(char *)bin, "serve", NULL};

    return test_run(topology_bin(bin, path, sizeof(path)), argv, env, out, size);
}

/* Without a way to check its callers, or to prove itself to others, a process will not serve. */
static void test_a_process_without_auth_config_refuses_to_start(void **state)
{
    char data[600], out[8192];
    char *service_env[] = {data, topo.migrations_env, "CLEAVE_LISTEN=127.0.0.1:0", NULL};
    char *gateway_env[] = {data,
                           topo.migrations_env,
                           "CLEAVE_LISTEN=127.0.0.1:0",
                           "CLEAVE_IDENTITY_URL=http://127.0.0.1:9",
                           "CLEAVE_INVENTORY_URL=http://127.0.0.1:9",
                           "CLEAVE_PAYMENTS_URL=http://127.0.0.1:9",
                           topo.nats.env,
                           NULL};
    int rc;

    (void)state;
    snprintf(data, sizeof(data), "CLEAVE_DATA_DIR=%s/refused", topo.dir);
    rc = serve_once("cleave-payments", service_env, out, sizeof(out));
    if (rc == 0 || strstr(out, "cannot authenticate the callers") == NULL ||
        strstr(out, "CLEAVE_IDENTITY_URL") == NULL) {
        fail_msg("cleave-payments without auth config exited %d:\n%s", rc, out);
    }
    printf("cleave-payments refused: %s", strstr(out, "cannot"));
    rc = serve_once("cleave-without-identity-inventory-payments", gateway_env, out, sizeof(out));
    if (rc == 0 || strstr(out, "no credentials") == NULL ||
        strstr(out, "CLEAVE_CLIENT_ID") == NULL) {
        fail_msg("a gateway without client credentials exited %d:\n%s", rc, out);
    }
    printf("the gateway refused: %s", strstr(out, "calls modules"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_shop_works_end_to_end_with_the_services_extracted),
        cmocka_unit_test(test_anonymous_rpc_calls_are_refused_by_every_service),
        cmocka_unit_test(test_tokens_for_another_audience_are_refused),
        cmocka_unit_test(test_expired_and_forged_service_tokens_are_refused),
        cmocka_unit_test(test_forged_principal_headers_reach_no_other_customers_data),
        cmocka_unit_test(test_a_process_without_auth_config_refuses_to_start),
    };

    return cmocka_run_group_tests_name(TOPOLOGY, tests, setup, teardown);
}
