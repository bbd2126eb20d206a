/*
 * The gateway's access rules, as a client sees them (ADR 0028): every public route of the
 * shop × anonymous and every role gets the documented answer; customers reach only their
 * own accounts and orders; forged, tampered and foreign tokens are refused with 401 and
 * WWW-Authenticate. The matrix below is the documented one (ADR 0028's table), written out
 * here rather than read from the code, so that a change to app/rbac.c shows up as a diff
 * in this test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "cleave/jwt.h"
#include "cleave/util.h"
#include "topology.h"

static topology topo;

enum { ANON, CUSTOMER, STAFF, ADMIN, NROLES };
static const char *const role_names[NROLES] = {"anonymous", "customer", "staff", "admin"};
static char tokens[NROLES][4096];

/* One request per route; who may use it: A anonymous, C customer, S staff, D admin. */
static const struct {
    const char *method, *path, *body, *who;
} routes[] = {
    {"GET", "/api/v1/products?limit=2", NULL, "ACSD"},
    {"POST", "/api/v1/products", "{\"sku\":\"RBAC-X\"}", "SD"},
    {"GET", "/api/v1/products/1", NULL, "ACSD"},
    {"PATCH", "/api/v1/products/1", "{\"name\":\"x\"}", "SD"},
    {"GET", "/api/v1/categories", NULL, "ACSD"},
    {"GET", "/api/v1/inventory/SKU-000001", NULL, "SD"},
    {"PUT", "/api/v1/inventory/SKU-000001", "{\"on_hand\":-1}", "SD"},
    {"POST", "/api/v1/orders", "{\"account_id\":\"x\",\"lines\":[]}", "CD"},
    {"GET", "/api/v1/orders", NULL, "CSD"},
    {"GET", "/api/v1/orders/ord-none", NULL, "CSD"},
    {"POST", "/api/v1/accounts", "{\"owner\":\"\",\"currency\":\"EUR\"}", "CD"},
    {"GET", "/api/v1/accounts/demo", NULL, "CSD"},
    {"POST", "/api/v1/accounts/demo/deposits", "{\"amount\":{\"amount\":0,\"currency\":\"EUR\"}}",
     "SD"},
    {"POST", "/api/v1/shipments", "{\"order_ref\":\"\"}", "SD"},
    {"GET", "/api/v1/shipments?order=order:none", NULL, "SD"},
    {"GET", "/api/v1/shipments/none", NULL, "SD"},
    {"GET", "/api/v1/operations/none", NULL, "SD"},
};

static int setup(void **state)
{
    static const char *const users[NROLES][2] = {{NULL, NULL},
                                                 {TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD},
                                                 {TEST_STAFF, TEST_STAFF_PASSWORD},
                                                 {TEST_ADMIN, TEST_ADMIN_PASSWORD}};

    (void)state;
    if (topology_start(&topo, "monolith", TOPOLOGY_SEED_SMALL) != 0) {
        return -1;
    }
    for (int r = CUSTOMER; r < NROLES; r++) {
        if (test_password_token(topo.base_url, users[r][0], users[r][1], tokens[r],
                                sizeof(tokens[r])) != 0) {
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

/* method path body with token (NULL: none) into r; the answer's status. */
static long send_as(const char *token, const char *method, const char *path, const char *body,
                    test_resp *r)
{
    assert_int_equal(test_http_as(topo.base_url, token, method, path, body, r), 0);
    return r->status;
}

static void test_every_route_times_every_role_gets_the_documented_answer(void **state)
{
    static const char letters[NROLES] = {'A', 'C', 'S', 'D'};
    int checked = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        for (int role = ANON; role < NROLES; role++) {
            int allowed = strchr(routes[i].who, letters[role]) != NULL;
            test_resp r = {0};
            long status = send_as(role == ANON ? NULL : tokens[role], routes[i].method,
                                  routes[i].path, routes[i].body, &r);

            if (allowed && (status == 401 || status == 403)) {
                fail_msg("%s %s as %s: %ld, but the role may: %.200s", routes[i].method,
                         routes[i].path, role_names[role], status, r.body);
            }
            if (!allowed) {
                long want = role == ANON ? 401 : 403;

                if (status != want || !test_is_problem(&r, want)) {
                    fail_msg("%s %s as %s: %ld, wanted %ld: %.200s", routes[i].method,
                             routes[i].path, role_names[role], status, want, r.body);
                }
                if (want == 401 && strncmp(r.www_authenticate, "Bearer", 6) != 0) {
                    fail_msg("%s %s: 401 without WWW-Authenticate", routes[i].method,
                             routes[i].path);
                }
            }
            checked++;
            test_resp_free(&r);
        }
    }
    printf("checked %d route x role answers\n", checked);
}

/* The id of a new account opened by token's customer. */
static void open_account(const char *token, char *id, size_t size)
{
    test_resp r = {0};

    assert_int_equal(
        send_as(token, "POST", "/api/v1/accounts", "{\"owner\":\"Mine\",\"currency\":\"EUR\"}", &r),
        201);
    snprintf(id, size, "%s", json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);
}

static void test_a_customer_reaches_only_its_own_accounts_and_orders(void **state)
{
    char bob[4096], alice_acct[64], bob_acct[64], path[160], body[256], order[64];
    test_resp r = {0};

    (void)state;
    assert_int_equal(test_password_token(topo.base_url, TEST_CUSTOMER2, TEST_CUSTOMER2_PASSWORD,
                                         bob, sizeof(bob)),
                     0);
    open_account(tokens[CUSTOMER], alice_acct, sizeof(alice_acct));
    open_account(bob, bob_acct, sizeof(bob_acct));
    /* Staff fund both; alice orders from hers. */
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", alice_acct);
    assert_int_equal(send_as(tokens[STAFF], "POST", path,
                             "{\"amount\":{\"amount\":100000,\"currency\":\"EUR\"}}", &r),
                     200);
    test_resp_free(&r);
    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-000001\",\"quantity\":1}]}",
             alice_acct);
    assert_int_equal(send_as(tokens[CUSTOMER], "POST", "/api/v1/orders", body, &r), 202);
    snprintf(order, sizeof(order), "%s", json_string_value(json_object_get(r.json, "id")));
    test_resp_free(&r);

    /* Bob sees none of it: as if it did not exist. */
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", alice_acct);
    assert_int_equal(send_as(bob, "GET", path, NULL, &r), 404);
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
    assert_int_equal(send_as(bob, "GET", path, NULL, &r), 404);
    test_resp_free(&r);
    assert_int_equal(send_as(bob, "GET", "/api/v1/orders", NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    test_resp_free(&r);
    /* Nor can he order from her account. */
    assert_int_equal(send_as(bob, "POST", "/api/v1/orders", body, &r), 404);
    test_resp_free(&r);
    /* She sees hers; staff see both. */
    snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
    assert_int_equal(send_as(tokens[CUSTOMER], "GET", path, NULL, &r), 200);
    test_resp_free(&r);
    assert_int_equal(send_as(tokens[STAFF], "GET", path, NULL, &r), 200);
    test_resp_free(&r);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", bob_acct);
    assert_int_equal(send_as(tokens[STAFF], "GET", path, NULL, &r), 200);
    test_resp_free(&r);
}

/* A token whose header and payload are given, signed with key. */
static char *forge(const cl_jwk *key, const char *header, const char *payload)
{
    char *out = NULL;
    cl_error err;

    assert_int_equal(
        cl_jws_sign_raw(key, header, strlen(header), payload, strlen(payload), &out, &err), CL_OK);
    return out;
}

static void assert_refused(const char *what, const char *token)
{
    test_resp r = {0};

    if (send_as(token, "GET", "/api/v1/orders", NULL, &r) != 401 ||
        strstr(r.www_authenticate, "error=\"invalid_token\"") == NULL) {
        fail_msg("%s: %ld %.200s", what, r.status, r.body);
    }
    /* Even where anonymous callers may go: a bad token is not anonymity. */
    test_resp_free(&r);
    assert_int_equal(send_as(token, "GET", "/api/v1/products?limit=1", NULL, &r), 401);
    test_resp_free(&r);
}

static void test_forged_and_tampered_tokens_are_refused(void **state)
{
    char kid[160], header[300], payload[600], tampered[4096];
    const char *dot1;
    cl_jwk *mine = NULL;
    cl_error err;
    json_t *claims;
    char *t;
    int64_t now = cl_wall_ms() / 1000;

    (void)state;
    assert_int_equal(cl_jwk_generate("attacker", &mine, &err), CL_OK);
    /* The real kid, from a real token's header. */
    dot1 = strchr(tokens[ADMIN], '.');
    {
        char head[512];
        size_t n = 0;

        assert_int_equal(cl_base64url_decode(tokens[ADMIN], (size_t)(dot1 - tokens[ADMIN]), head,
                                             sizeof(head) - 1, &n, &err),
                         CL_OK);
        head[n] = '\0';
        claims = json_loads(head, 0, NULL);
        snprintf(kid, sizeof(kid), "%s", json_string_value(json_object_get(claims, "kid")));
        json_decref(claims);
    }
    snprintf(
        payload, sizeof(payload),
        "{\"iss\":\"http://cleave.test\",\"aud\":\"cleave\",\"sub\":\"1\",\"roles\":[\"admin\"],"
        "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":\"x\"}",
        (long long)now, (long long)now, (long long)now + 300);

    /* Our key under the real kid: the signature does not verify. */
    snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    t = forge(mine, header, payload);
    assert_refused("signed by another key under the real kid", t);
    free(t);
    /* A kid nobody knows. */
    t = forge(mine, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"attacker\"}", payload);
    assert_refused("unknown kid", t);
    free(t);
    /* alg none, with the real kid and an empty signature. */
    snprintf(header, sizeof(header), "{\"alg\":\"none\",\"kid\":\"%s\"}", kid);
    {
        char h64[400], p64[900];

        cl_base64url_encode(header, strlen(header), h64, sizeof(h64));
        cl_base64url_encode(payload, strlen(payload), p64, sizeof(p64));
        snprintf(tampered, sizeof(tampered), "%s.%s.", h64, p64);
        assert_refused("alg none", tampered);
    }
    /* The customer's real header and signature around a payload that claims admin. */
    {
        const char *head_end = strchr(tokens[CUSTOMER], '.');
        const char *sig = strchr(head_end + 1, '.');
        char p64[900];

        cl_base64url_encode(payload, strlen(payload), p64, sizeof(p64));
        snprintf(tampered, sizeof(tampered), "%.*s.%s%s", (int)(head_end - tokens[CUSTOMER]),
                 tokens[CUSTOMER], p64, sig);
        assert_refused("tampered payload", tampered);
    }
    /* A real token with one signature character changed. */
    snprintf(tampered, sizeof(tampered), "%s", tokens[ADMIN]);
    tampered[strlen(tampered) - 2] = tampered[strlen(tampered) - 2] == 'A' ? 'B' : 'A';
    assert_refused("tampered signature", tampered);
    /* Not a token at all. */
    assert_refused("garbage", "not-a-token");
    cl_jwk_free(mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_times_every_role_gets_the_documented_answer),
        cmocka_unit_test(test_a_customer_reaches_only_its_own_accounts_and_orders),
        cmocka_unit_test(test_forged_and_tampered_tokens_are_refused),
    };

    return cmocka_run_group_tests_name("rbac", tests, setup, teardown);
}
