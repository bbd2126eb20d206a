/*
 * The C side of the interoperability check with jose (jose_interop.mjs):
 *
 *   jwt_tool issue ISS AUD      makes an ES256 key (cl_jwk_generate) and an RS256 key (an
 *                               OpenSSL PEM through cl_jwk_from_pem), signs a token with
 *                               each and prints {"jwks":..., "tokens":[{"kid","token"}]}.
 *   jwt_tool check FILE         reads {"iss","aud","jwks","pems":[{"kid","pem","jwk"}],
 *                               "accept":[{"name","token","sub"}],
 *                               "refuse":[{"name","token","reason"}]}: every accept token
 *                               must verify with that sub, every refuse token must be
 *                               refused with reason in the message, every PEM must load
 *                               as the key its JWK describes. Prints one line per case and
 *                               {"signed":[{"kid","token"}]}: a token signed with each PEM
 *                               key, for jose to verify. Exit status 1 on any mismatch.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/jwt.h"

static json_t *claims_for(const char *iss, const char *aud, const char *sub)
{
    int64_t now = (int64_t)time(NULL);

    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:[s,s]}", "iss", iss, "aud", aud,
                     "sub", sub, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                     (json_int_t)now + 600, "jti", "jti-1", "scope", "orders:read orders:write",
                     "roles", "customer", "support");
}

static char *rsa_pem(void)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *pem = NULL;
    long len = 0;

    if (pkey != NULL && bio != NULL &&
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        len = BIO_get_mem_data(bio, &data);
        pem = strndup(data, (size_t)len);
    }
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return pem;
}

/* Signs a token for sub with key and appends {"kid","token"} to list. */
static bool sign_into(json_t *list, const cl_jwk *key, const char *iss, const char *aud,
                      const char *sub)
{
    json_t *claims = claims_for(iss, aud, sub);
    char *token = NULL;
    cl_error err;
    bool ok = cl_jwt_sign(key, claims, &token, &err) == CL_OK;

    if (!ok) {
        fprintf(stderr, "signing with %s: %s\n", cl_jwk_kid(key), err.message);
    } else {
        json_array_append_new(list,
                              json_pack("{s:s, s:s}", "kid", cl_jwk_kid(key), "token", token));
    }
    json_decref(claims);
    free(token);
    return ok;
}

static int issue(const char *iss, const char *aud)
{
    cl_jwk *ec = NULL, *rsa = NULL;
    cl_jwks *keys = cl_jwks_new();
    json_t *tokens = json_array();
    json_t *out = NULL;
    char *pem = rsa_pem();
    cl_error err;
    int rc = 1;

    if (pem == NULL || cl_jwk_generate("c-es256", &ec, &err) != CL_OK ||
        cl_jwk_from_pem("c-rs256", pem, &rsa, &err) != CL_OK ||
        cl_jwks_add(keys, ec, &err) != CL_OK || cl_jwks_add(keys, rsa, &err) != CL_OK) {
        fprintf(stderr, "keys: %s\n", err.message);
        goto out;
    }
    if (!sign_into(tokens, ec, iss, aud, "c-user-es") ||
        !sign_into(tokens, rsa, iss, aud, "c-user-rs")) {
        goto out;
    }
    out = json_pack("{s:o, s:O}", "jwks", cl_jwks_json(keys), "tokens", tokens);
    json_dumpf(out, stdout, JSON_COMPACT);
    putchar('\n');
    rc = 0;
out:
    json_decref(out);
    json_decref(tokens);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
    cl_jwk_free(rsa);
    free(pem);
    return rc;
}

static bool check_accept(const json_t *c, const cl_jwks *keys, const cl_jwt_policy *p)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *token = json_string_value(json_object_get(c, "token"));
    const char *sub = json_string_value(json_object_get(c, "sub"));
    json_t *claims = NULL;
    cl_error err = {0};
    cl_status st = cl_jwt_verify(token, keys, p, &claims, &err);
    const char *got = json_string_value(json_object_get(claims, "sub"));
    bool ok = st == CL_OK && got != NULL && sub != NULL && strcmp(got, sub) == 0;

    printf("%s accept %s: %s\n", ok ? "ok" : "FAIL", name,
           st == CL_OK ? (got != NULL ? got : "(no sub)") : err.message);
    json_decref(claims);
    return ok;
}

static bool check_refuse(const json_t *c, const cl_jwks *keys, const cl_jwt_policy *p)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *token = json_string_value(json_object_get(c, "token"));
    const char *reason = json_string_value(json_object_get(c, "reason"));
    json_t *claims = NULL;
    cl_error err = {0};
    cl_status st = cl_jwt_verify(token, keys, p, &claims, &err);
    bool ok = st == CL_UNAUTHORIZED && reason != NULL && strstr(err.message, reason) != NULL;

    printf("%s refuse %s: %s\n", ok ? "ok" : "FAIL", name, st == CL_OK ? "accepted" : err.message);
    json_decref(claims);
    return ok;
}

/* The PEM loads, and as the key its JWK describes; a token it signs goes to signed. */
static bool check_pem(const json_t *c, const char *iss, const char *aud, json_t *signed_list)
{
    const char *kid = json_string_value(json_object_get(c, "kid"));
    const char *pem = json_string_value(json_object_get(c, "pem"));
    const json_t *want = json_object_get(c, "jwk");
    static const char *const members[] = {"kty", "crv", "x", "y", "n", "e"};
    cl_jwk *key = NULL;
    json_t *got = NULL;
    cl_error err = {0};
    bool ok = cl_jwk_from_pem(kid, pem, &key, &err) == CL_OK;

    got = ok ? cl_jwk_public_json(key) : NULL;
    for (size_t i = 0; ok && i < sizeof(members) / sizeof(members[0]); i++) {
        const json_t *a = json_object_get(got, members[i]);
        const json_t *b = json_object_get(want, members[i]);

        ok = (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
    }
    ok = ok && sign_into(signed_list, key, iss, aud, "jose-key-user");
    printf("%s pem %s: %s\n", ok ? "ok" : "FAIL", kid != NULL ? kid : "?",
           err.message[0] != '\0' ? err.message : "matches its JWK");
    json_decref(got);
    cl_jwk_free(key);
    return ok;
}

static int check(const char *path)
{
    json_error_t jerr;
    json_t *in = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *signed_list = json_array();
    cl_jwks *keys = NULL;
    cl_jwt_policy p = {0};
    char *jwks_text = NULL;
    const json_t *c = NULL;
    size_t i = 0;
    cl_error err = {0};
    bool ok = true;

    if (in == NULL) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        ok = false;
        goto out;
    }
    p.issuer = json_string_value(json_object_get(in, "iss"));
    p.audience = json_string_value(json_object_get(in, "aud"));
    p.leeway_s = 30;
    jwks_text = json_dumps(json_object_get(in, "jwks"), JSON_COMPACT);
    if (jwks_text == NULL || cl_jwks_parse(jwks_text, strlen(jwks_text), &keys, &err) != CL_OK) {
        fprintf(stderr, "jose's JWKS: %s\n", err.message);
        ok = false;
        goto out;
    }
    json_array_foreach (json_object_get(in, "accept"), i, c) {
        ok = check_accept(c, keys, &p) && ok;
    }
    json_array_foreach (json_object_get(in, "refuse"), i, c) {
        ok = check_refuse(c, keys, &p) && ok;
    }
    json_array_foreach (json_object_get(in, "pems"), i, c) {
        ok = check_pem(c, p.issuer, p.audience, signed_list) && ok;
    }
    printf("{\"signed\":");
    json_dumpf(signed_list, stdout, JSON_COMPACT);
    printf("}\n");
out:
    free(jwks_text);
    cl_jwks_free(keys);
    json_decref(signed_list);
    json_decref(in);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "issue") == 0) {
        return issue(argv[2], argv[3]);
    }
    if (argc == 3 && strcmp(argv[1], "check") == 0) {
        return check(argv[2]);
    }
    fprintf(stderr, "usage: %s issue ISS AUD | check FILE\n", argv[0]);
    return 2;
}
