/*
 * cleave/jwt.h: ES256 and RS256 tokens, keys and key sets, the attacks a verifier must
 * refuse (each with its own reason), key rotation, the verified-token cache and the
 * constant-time comparison.
 */
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/jwt.h"

#define NOW 1700000000LL
#define ISS "https://issuer.test"
#define AUD "cleave-api"

static const cl_jwt_policy policy = {ISS, AUD, 30, NOW};

/* One RSA key for the whole run: generating one under the sanitizers takes a while. */
static cl_jwk *rsa_key;
static char *rsa_pem;

/* A fresh PKCS#8 PEM of a key OpenSSL makes with algorithm alg and parameter arg. */
static char *pem_of(EVP_PKEY *pkey, bool traditional)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *pem = NULL;
    long len = 0;
    int rc = traditional
                 ? PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);

    assert_int_equal(rc, 1);
    len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    BIO_free(bio);
    return pem;
}

static int setup_rsa(void **state)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    cl_error err;

    (void)state;
    if (pkey == NULL) {
        return -1;
    }
    rsa_pem = pem_of(pkey, false);
    EVP_PKEY_free(pkey);
    return cl_jwk_from_pem("rsa-1", rsa_pem, &rsa_key, &err) == CL_OK ? 0 : -1;
}

static int teardown_rsa(void **state)
{
    (void)state;
    cl_jwk_free(rsa_key);
    free(rsa_pem);
    return 0;
}

static json_t *claims_at(int64_t iat, int64_t exp)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:[s]}", "iss", ISS, "aud", AUD,
                     "sub", "user-1", "iat", (json_int_t)iat, "nbf", (json_int_t)iat, "exp",
                     (json_int_t)exp, "jti", "j-1", "scope", "orders:read", "roles", "customer");
}

static char *sign(const cl_jwk *key, json_t *claims)
{
    char *token = NULL;
    cl_error err;

    assert_int_equal(cl_jwt_sign(key, claims, &token, &err), CL_OK);
    json_decref(claims);
    return token;
}

static cl_jwk *new_ec(const char *kid)
{
    cl_jwk *k = NULL;
    cl_error err;

    assert_int_equal(cl_jwk_generate(kid, &k, &err), CL_OK);
    return k;
}

static cl_jwks *set_of(const cl_jwk *a, const cl_jwk *b)
{
    cl_jwks *s = cl_jwks_new();
    cl_error err;

    assert_int_equal(cl_jwks_add(s, a, &err), CL_OK);
    if (b != NULL) {
        assert_int_equal(cl_jwks_add(s, b, &err), CL_OK);
    }
    return s;
}

/* Verifies token and expects CL_OK with sub user-1. */
static void expect_accepted(const char *token, const cl_jwks *keys, const cl_jwt_policy *p)
{
    json_t *claims = NULL;
    cl_error err = {0};
    cl_status st = cl_jwt_verify(token, keys, p, &claims, &err);

    if (st != CL_OK) {
        fail_msg("refused: %s", err.message);
    }
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "user-1");
    json_decref(claims);
}

/* Verifies token and expects CL_UNAUTHORIZED with reason in the message; returns it. */
static void expect_refused(const char *token, const cl_jwks *keys, const cl_jwt_policy *p,
                           const char *reason, char *message, size_t size)
{
    json_t *claims = NULL;
    cl_error err = {0};
    cl_status st = cl_jwt_verify(token, keys, p, &claims, &err);

    if (st != CL_UNAUTHORIZED || strstr(err.message, reason) == NULL) {
        fail_msg("wanted a refusal with \"%s\", got %s: %s", reason, cl_status_name(st),
                 err.message);
    }
    assert_null(claims);
    if (message != NULL) {
        (void)snprintf(message, size, "%s", err.message);
    }
}

/* base64url(a) "." base64url(b) "." c: a token assembled by hand. */
static char *assemble(const char *header, const char *payload, const char *sig)
{
    char h[4096], p[4096];
    char *out = malloc(9000);

    cl_base64url_encode(header, strlen(header), h, sizeof(h));
    cl_base64url_encode(payload, strlen(payload), p, sizeof(p));
    (void)snprintf(out, 9000, "%s.%s.%s", h, p, sig);
    return out;
}

static char *sign_raw(const cl_jwk *key, const char *header, const char *payload)
{
    char *token = NULL;
    cl_error err;

    assert_int_equal(
        cl_jws_sign_raw(key, header, strlen(header), payload, strlen(payload), &token, &err),
        CL_OK);
    return token;
}

/* --- round trips ------------------------------------------------------------------ */

static void test_jwt_es256_round_trip(void **state)
{
    cl_jwk *k = new_ec("ec-1");
    cl_jwks *keys = set_of(k, NULL);
    char *token = sign(k, claims_at(NOW - 5, NOW + 600));
    unsigned char sig[128];
    size_t sig_len = 0;
    cl_error err;
    const char *last = strrchr(token, '.') + 1;

    (void)state;
    assert_string_equal(cl_jwk_alg(k), "ES256");
    expect_accepted(token, keys, &policy);
    /* RFC 7518: R || S, 64 bytes, not DER. */
    assert_int_equal(cl_base64url_decode(last, strlen(last), sig, sizeof(sig), &sig_len, &err),
                     CL_OK);
    assert_int_equal(sig_len, 64);
    free(token);
    cl_jwks_free(keys);
    cl_jwk_free(k);
}

static void test_jwt_rs256_round_trip(void **state)
{
    cl_jwks *keys = set_of(rsa_key, NULL);
    char *token = sign(rsa_key, claims_at(NOW, NOW + 900));

    (void)state;
    assert_string_equal(cl_jwk_alg(rsa_key), "RS256");
    expect_accepted(token, keys, &policy);
    free(token);
    cl_jwks_free(keys);
}

static void test_jwt_header_names_alg_typ_and_kid(void **state)
{
    cl_jwk *k = new_ec("ec-h");
    char *token = sign(k, claims_at(NOW, NOW + 60));
    char header[256];
    size_t len = 0;
    json_t *h = NULL;

    (void)state;
    assert_int_equal(cl_base64url_decode(token, (size_t)(strchr(token, '.') - token), header,
                                         sizeof(header) - 1, &len, NULL),
                     CL_OK);
    h = json_loadb(header, len, 0, NULL);
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), "ec-h");
    json_decref(h);
    free(token);
    cl_jwk_free(k);
}

/* --- keys and sets ---------------------------------------------------------------- */

static void test_jwk_pem_round_trip_keeps_the_key(void **state)
{
    cl_jwk *k = new_ec("ec-p");
    char *pem = cl_jwk_private_pem(k);
    cl_jwk *again = NULL;
    json_t *a = cl_jwk_public_json(k);
    json_t *b = NULL;
    cl_error err;

    (void)state;
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(cl_jwk_from_pem("ec-p", pem, &again, &err), CL_OK);
    b = cl_jwk_public_json(again);
    assert_true(json_equal(a, b));
    assert_null(json_object_get(a, "d"));
    assert_string_equal(json_string_value(json_object_get(a, "use")), "sig");
    json_decref(a);
    json_decref(b);
    free(pem);
    cl_jwk_free(again);
    cl_jwk_free(k);
}

static void expect_pem_refused(EVP_PKEY *pkey, bool traditional, const char *reason)
{
    char *pem = pem_of(pkey, traditional);
    cl_jwk *k = NULL;
    cl_error err = {0};

    assert_int_equal(cl_jwk_from_pem("k", pem, &k, &err), CL_INVALID);
    if (strstr(err.message, reason) == NULL) {
        fail_msg("wanted \"%s\", got \"%s\"", reason, err.message);
    }
    assert_null(k);
    free(pem);
    EVP_PKEY_free(pkey);
}

static void test_jwk_from_pem_refuses_other_keys(void **state)
{
    cl_jwk *k = NULL;
    cl_error err;

    (void)state;
    expect_pem_refused(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), false, "not on P-256");
    expect_pem_refused(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), false, "1024 bits");
    expect_pem_refused(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), false, "neither");
    expect_pem_refused(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), true, "PKCS#8");
    assert_int_equal(cl_jwk_from_pem("k", "-----BEGIN PRIVATE KEY-----\nnot base64\n", &k, &err),
                     CL_INVALID);
    assert_int_equal(cl_jwk_from_pem("bad kid", rsa_pem, &k, &err), CL_INVALID);
    assert_null(k);
}

static void test_jwks_round_trip_and_lookup(void **state)
{
    cl_jwk *k = new_ec("ec-s");
    cl_jwks *keys = set_of(k, rsa_key);
    json_t *doc = cl_jwks_json(keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    cl_jwks *parsed = NULL;
    json_t *doc2 = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(cl_jwks_count(keys), 2);
    assert_int_equal(cl_jwks_parse(text, strlen(text), &parsed, &err), CL_OK);
    doc2 = cl_jwks_json(parsed);
    assert_true(json_equal(doc, doc2));
    assert_false(cl_jwk_has_private(cl_jwks_find(parsed, "rsa-1")));
    assert_null(cl_jwks_find(parsed, "nope"));
    /* A set never signs: it holds public keys only. */
    {
        json_t *claims = claims_at(NOW, NOW + 60);
        json_t *list = json_array();
        char *token = NULL;

        assert_null(cl_jwk_private_pem(cl_jwks_find(parsed, "ec-s")));
        assert_int_equal(cl_jwt_sign(cl_jwks_find(parsed, "ec-s"), claims, &token, &err),
                         CL_INVALID);
        assert_string_equal(err.field, "key");
        assert_int_equal(cl_jwt_sign(k, list, &token, &err), CL_INVALID);
        assert_string_equal(err.field, "claims");
        assert_null(token);
        json_decref(claims);
        json_decref(list);
    }
    assert_int_equal(cl_jwks_add(keys, k, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "already has a key with kid ec-s"));
    json_decref(doc);
    json_decref(doc2);
    free(text);
    cl_jwks_free(parsed);
    cl_jwks_free(keys);
    cl_jwk_free(k);
}

/* Parses a JWKS whose keys[1] is {good key with member set to value} and expects reason. */
static void expect_jwks_refused(const json_t *good, const char *member, json_t *value,
                                const char *reason)
{
    json_t *bad = json_deep_copy(good);
    json_t *doc = NULL;
    char *text = NULL;
    cl_jwks *s = NULL;
    cl_error err = {0};

    json_object_set_new(bad, "kid", json_string("bad-one"));
    if (value == NULL) {
        json_object_del(bad, member);
    } else {
        json_object_set_new(bad, member, value);
    }
    doc = json_pack("{s:[O,o]}", "keys", good, bad);
    text = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(cl_jwks_parse(text, strlen(text), &s, &err), CL_INVALID);
    assert_null(s);
    if (strstr(err.message, reason) == NULL ||
        (strcmp(member, "kid") != 0 && strstr(err.message, "bad-one") == NULL)) {
        fail_msg("wanted \"%s\" naming bad-one, got \"%s\"", reason, err.message);
    }
    assert_string_equal(err.field, "keys[1]");
    json_decref(doc);
    free(text);
}

static void test_jwks_parse_names_the_bad_key(void **state)
{
    cl_jwk *k = new_ec("ec-good");
    json_t *ec = cl_jwk_public_json(k);
    json_t *rsa = cl_jwk_public_json(rsa_key);
    cl_jwks *s = NULL;
    cl_error err;
    char y[64];
    const char *dup = "{\"keys\":[],\"keys\":[]}";
    const char *short_rsa = "AQAB";

    (void)state;
    expect_jwks_refused(ec, "crv", json_string("P-384"), "crv must be P-256");
    expect_jwks_refused(ec, "kty", json_string("OKP"), "kty");
    expect_jwks_refused(ec, "alg", json_string("RS256"), "\"alg\" must be ES256");
    expect_jwks_refused(ec, "use", json_string("enc"), "\"use\" must be \"sig\"");
    expect_jwks_refused(ec, "d", json_string("AAAA"), "private key material");
    expect_jwks_refused(ec, "x", json_string("AAAA"), "\"x\" is 3 bytes");
    expect_jwks_refused(ec, "x", NULL, "\"x\" is missing");
    /* A point off the curve: the same x with another y. */
    (void)snprintf(y, sizeof(y), "%s", json_string_value(json_object_get(ec, "y")));
    y[0] = y[0] == 'A' ? 'B' : 'A';
    expect_jwks_refused(ec, "y", json_string(y), "not a valid EC public key");
    expect_jwks_refused(rsa, "n", json_string(short_rsa), "RSA key of");
    expect_jwks_refused(rsa, "e", json_string("AAAAAAAAAAAAAAAA"), "\"e\" is not base64url");
    /* 1 with leading zero bytes (a fuzzer found it accepted, then refused once printed). */
    expect_jwks_refused(rsa, "e", json_string("AAAB"), "odd exponent of at least 3");
    expect_jwks_refused(rsa, "alg", json_string("ES256"), "\"alg\" must be RS256");
    expect_jwks_refused(ec, "kid", NULL, "\"kid\" is missing");
    expect_jwks_refused(ec, "kid", json_string("ec-good"), "already has a key with kid ec-good");
    assert_int_equal(cl_jwks_parse(dup, strlen(dup), &s, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "duplicate"));
    json_decref(ec);
    json_decref(rsa);
    cl_jwk_free(k);
}

/* --- attacks: each refused, each for its own reason -------------------------------- */

typedef struct attack {
    const char *name;
    char *token;
    const char *reason;
} attack;

static char *claims_text(json_t *claims)
{
    char *text = json_dumps(claims, JSON_COMPACT);

    json_decref(claims);
    return text;
}

/* HMAC-SHA256 over header.payload with secret, as an attacker holding the public key would. */
static char *hs256_token(const char *kid, const void *secret, size_t secret_len)
{
    char header[128];
    char *unsigned_token = NULL;
    unsigned char mac[32];
    unsigned int mac_len = sizeof(mac);
    char sig[64];
    char *token = NULL;
    char *claims = claims_text(claims_at(NOW, NOW + 60));

    (void)snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                   kid);
    unsigned_token = assemble(header, claims, "");
    unsigned_token[strlen(unsigned_token) - 1] = '\0';
    HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)unsigned_token,
         strlen(unsigned_token), mac, &mac_len);
    cl_base64url_encode(mac, mac_len, sig, sizeof(sig));
    token = malloc(strlen(unsigned_token) + strlen(sig) + 2);
    (void)sprintf(token, "%s.%s", unsigned_token, sig);
    free(unsigned_token);
    free(claims);
    return token;
}

/* A token of key with the claims changed: member set to value (NULL: removed). */
static char *with_claim(const cl_jwk *key, const char *member, json_t *value)
{
    json_t *c = claims_at(NOW, NOW + 600);

    if (value == NULL) {
        json_object_del(c, member);
    } else {
        json_object_set_new(c, member, value);
    }
    return sign(key, c);
}

/* The RSA key's modulus minus delta, then made odd or even as asked, as base64url. */
static json_t *modulus_changed(const json_t *rsa, BN_ULONG delta, bool odd)
{
    const char *n64 = json_string_value(json_object_get(rsa, "n"));
    unsigned char bytes[1024];
    char text[CL_BASE64URL_LEN(sizeof(bytes)) + 1];
    size_t len = 0;
    cl_error err;
    BIGNUM *n;

    assert_int_equal(cl_base64url_decode(n64, strlen(n64), bytes, sizeof(bytes), &len, &err),
                     CL_OK);
    n = BN_bin2bn(bytes, (int)len, NULL);
    assert_non_null(n);
    assert_int_equal(BN_sub_word(n, delta), 1);
    if (BN_is_odd(n) != odd) {
        /* Three keeps a multiple of three one, and flips odd and even. */
        assert_int_equal(BN_sub_word(n, 3), 1);
    }
    len = (size_t)BN_bn2bin(n, bytes);
    BN_free(n);
    (void)cl_base64url_encode(bytes, len, text, sizeof(text));
    return json_string(text);
}

/*
 * An RSA modulus is checked the same way on every parse: OpenSSL's own check tests it
 * with random Miller-Rabin bases, and a fuzzer found a modulus it passed only sometimes
 * (tests/fuzz/regressions/jwks/rsa-modulus-checked-at-random).
 */
static void test_jwks_rsa_modulus_checks_are_deterministic(void **state)
{
    json_t *rsa = cl_jwk_public_json(rsa_key);
    const char *n64 = json_string_value(json_object_get(rsa, "n"));
    unsigned char bytes[1024];
    size_t len = 0;
    cl_error err;
    BIGNUM *n;
    BN_ULONG to_three;
    FILE *f =
        fopen(CLEAVE_SOURCE_DIR "/tests/fuzz/regressions/jwks/rsa-modulus-checked-at-random", "rb");
    char doc[16384];
    size_t doc_len;
    int accepted = 0;

    (void)state;
    expect_jwks_refused(rsa, "n", modulus_changed(rsa, 1, false), "modulus is even");
    assert_int_equal(cl_base64url_decode(n64, strlen(n64), bytes, sizeof(bytes), &len, &err),
                     CL_OK);
    n = BN_bin2bn(bytes, (int)len, NULL);
    to_three = BN_mod_word(n, 3);
    BN_free(n);
    expect_jwks_refused(rsa, "n", modulus_changed(rsa, to_three, true), "small factor");

    assert_non_null(f);
    doc_len = fread(doc, 1, sizeof(doc), f);
    fclose(f);
    for (int i = 0; i < 50; i++) {
        cl_jwks *s = NULL;

        if (cl_jwks_parse(doc, doc_len, &s, &err) == CL_OK) {
            accepted++;
        }
        cl_jwks_free(s);
    }
    if (accepted != 0 && accepted != 50) {
        fail_msg("one JWKS accepted %d times out of 50", accepted);
    }
    json_decref(rsa);
}

static void test_jwt_refuses_every_attack_for_its_own_reason(void **state)
{
    cl_jwk *ec = new_ec("ec-a");
    cl_jwks *keys = set_of(ec, rsa_key);
    char *good = sign(ec, claims_at(NOW, NOW + 600));
    char *payload = claims_text(claims_at(NOW, NOW + 600));
    char *other = claims_text(claims_at(NOW, NOW + 6000));
    char *long_token = calloc(CL_JWT_MAX_LEN + 2, 1);
    char *jwk_text = claims_text(cl_jwk_public_json(ec));
    char *tampered_payload = NULL, *tampered_sig = NULL, *der_sig = NULL;
    char messages[64][256];
    size_t n = 0;

    (void)state;
    memset(long_token, 'a', CL_JWT_MAX_LEN + 1);
    /* The payload of another token, under this one's header and signature. */
    {
        char *t2 = sign(ec, claims_at(NOW, NOW + 6000));
        const char *p1 = strchr(good, '.');
        const char *s1 = strrchr(good, '.');
        const char *p2 = strchr(t2, '.');
        const char *s2 = strrchr(t2, '.');

        tampered_payload = calloc(strlen(good) + strlen(t2), 1);
        (void)sprintf(tampered_payload, "%.*s%.*s%s", (int)(p1 - good), good, (int)(s2 - p2), p2,
                      s1);
        free(t2);
    }
    /* The first character of the signature changed (the last could only touch padding). */
    tampered_sig = strdup(good);
    {
        char *s = strrchr(tampered_sig, '.') + 1;

        *s = *s == 'A' ? 'B' : 'A';
    }
    /* A DER signature, as OpenSSL makes it, where JWS wants R || S. */
    {
        EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[128];
        size_t der_len = sizeof(der);
        char der64[200];
        const char *s1 = strrchr(good, '.');

        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
        assert_int_equal(
            EVP_DigestSign(md, der, &der_len, (const unsigned char *)good, (size_t)(s1 - good)), 1);
        cl_base64url_encode(der, der_len, der64, sizeof(der64));
        der_sig = malloc(strlen(good) + sizeof(der64));
        (void)sprintf(der_sig, "%.*s.%s", (int)(s1 - good), good, der64);
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(pkey);
    }
    attack attacks[] = {
        {"too long", strdup(long_token), "longer than 8192 bytes"},
        {"two parts", strdup("abc.def"), "not three dot-separated parts"},
        {"four parts", strdup("a.b.c.d"), "not three dot-separated parts"},
        {"header not base64url", strdup("a+b.YQ.YQ"), "header is not base64url"},
        {"payload not base64url", strdup("YQ.a/b.YQ"), "payload is not base64url"},
        {"signature not base64url", strdup("YQ.YQ.YQ=="), "signature is not base64url"},
        {"header not JSON", assemble("{alg", payload, "YQ"), "header is not JSON"},
        {"header not an object", assemble("[1]", payload, "YQ"), "header is not a JSON object"},
        {"header repeats alg",
         sign_raw(ec, "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"ec-a\"}", payload),
         "header repeats a member name"},
        {"alg none", assemble("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, ""),
         "alg none is refused"},
        {"HS256 keyed with the public JWK", hs256_token("ec-a", jwk_text, strlen(jwk_text)),
         "HMAC alg HS256 is refused"},
        {"HS256 keyed with the RSA PEM", hs256_token("rsa-1", rsa_pem, strlen(rsa_pem)),
         "HMAC alg HS256 is refused"},
        {"unknown alg", sign_raw(ec, "{\"alg\":\"PS256\",\"kid\":\"ec-a\"}", payload),
         "alg PS256 is not accepted"},
        {"alg of the other key type", sign_raw(ec, "{\"alg\":\"RS256\",\"kid\":\"ec-a\"}", payload),
         "alg RS256 does not match key ec-a, which is ES256"},
        {"RSA key named as ES256",
         sign_raw(rsa_key, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", payload),
         "alg ES256 does not match key rsa-1, which is RS256"},
        {"crit", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-a\",\"crit\":[\"exp\"]}", payload),
         "crit extensions"},
        {"typ", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-a\",\"typ\":\"JWE\"}", payload),
         "typ is neither JWT nor at+jwt"},
        {"no kid", sign_raw(ec, "{\"alg\":\"ES256\"}", payload), "header has no kid"},
        {"kid not a string", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":7}", payload),
         "kid is not 1 to 128 printable"},
        {"unknown kid", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-z\"}", payload),
         "no key has kid ec-z"},
        {"tampered payload", strdup(tampered_payload), "signature does not verify with key ec-a"},
        {"tampered signature", strdup(tampered_sig), "signature does not verify with key ec-a"},
        {"DER signature", strdup(der_sig), "ES256 signature is"},
        {"payload not JSON", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-a\"}", "{\"sub\""),
         "payload is not JSON"},
        {"payload not an object", sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-a\"}", "\"x\""),
         "payload is not a JSON object"},
        {"payload repeats sub",
         sign_raw(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-a\"}", "{\"sub\":\"a\",\"sub\":\"b\"}"),
         "payload repeats a member name"},
        {"no exp", with_claim(ec, "exp", NULL), "token has no exp"},
        {"exp a string", with_claim(ec, "exp", json_string("2099")), "exp is not a number"},
        {"expired beyond leeway", with_claim(ec, "exp", json_integer(NOW - 30)),
         "token expired at"},
        {"nbf beyond leeway", with_claim(ec, "nbf", json_integer(NOW + 31)),
         "token is not valid before"},
        {"iat beyond leeway", with_claim(ec, "iat", json_integer(NOW + 31)),
         "token is issued in the future"},
        {"no iss", with_claim(ec, "iss", NULL), "token has no iss"},
        {"wrong iss", with_claim(ec, "iss", json_string("https://evil.test")),
         "iss https://evil.test is not the expected issuer"},
        {"no aud", with_claim(ec, "aud", NULL), "token has no aud"},
        {"wrong aud", with_claim(ec, "aud", json_string("other-api")),
         "aud other-api is not cleave-api"},
        {"aud list without ours", with_claim(ec, "aud", json_pack("[s,s]", "a", "b")),
         "aud does not list cleave-api"},
    };
    size_t count = sizeof(attacks) / sizeof(attacks[0]);

    for (size_t i = 0; i < count; i++) {
        print_message("%s\n", attacks[i].name);
        expect_refused(attacks[i].token, keys, &policy, attacks[i].reason, messages[n++],
                       sizeof(messages[0]));
    }
    /* Each reason is its own: attacks share a message only where they are the same fault. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(attacks[i].reason, attacks[j].reason) != 0 &&
                strcmp(messages[i], messages[j]) == 0) {
                fail_msg("\"%s\" and \"%s\" share \"%s\"", attacks[i].name, attacks[j].name,
                         messages[i]);
            }
        }
    }
    /* The messages never quote the token. */
    for (size_t i = 0; i < n; i++) {
        assert_null(strstr(messages[i], strrchr(good, '.') + 1));
    }
    for (size_t i = 0; i < count; i++) {
        free(attacks[i].token);
    }
    free(tampered_payload);
    free(tampered_sig);
    free(der_sig);
    free(jwk_text);
    free(long_token);
    free(other);
    free(payload);
    free(good);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
}

static void test_jwt_leeway_and_audience_lists(void **state)
{
    cl_jwk *ec = new_ec("ec-l");
    cl_jwks *keys = set_of(ec, NULL);
    char *just_expired = with_claim(ec, "exp", json_integer(NOW - 29));
    char *nbf_soon = with_claim(ec, "nbf", json_integer(NOW + 30));
    char *aud_list = with_claim(ec, "aud", json_pack("[s,s]", "other", AUD));
    char *real_exp = with_claim(ec, "exp", json_real((double)NOW + 10.5));
    cl_jwt_policy strict = {ISS, AUD, 0, NOW};
    cl_jwt_policy no_issuer = {NULL, AUD, 0, NOW};
    cl_jwt_policy wide = {ISS, AUD, CL_JWT_MAX_LEEWAY + 1, NOW};
    json_t *claims = NULL;
    cl_error err;

    (void)state;
    expect_accepted(just_expired, keys, &policy);
    expect_accepted(nbf_soon, keys, &policy);
    expect_accepted(aud_list, keys, &policy);
    expect_accepted(real_exp, keys, &policy);
    expect_refused(just_expired, keys, &strict, "token expired at", NULL, 0);
    expect_refused(nbf_soon, keys, &strict, "not valid before", NULL, 0);
    /* A policy that pins nothing is the caller's mistake, not the token's. */
    assert_int_equal(cl_jwt_verify(aud_list, keys, &no_issuer, &claims, &err), CL_INVALID);
    assert_int_equal(cl_jwt_verify(aud_list, keys, &wide, &claims, &err), CL_INVALID);
    assert_null(claims);
    free(just_expired);
    free(nbf_soon);
    free(aud_list);
    free(real_exp);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
}

/* --- rotation --------------------------------------------------------------------- */

static void test_jwt_rotation_old_key_verifies_until_removed(void **state)
{
    cl_jwk *old_key = new_ec("2026-10");
    cl_jwk *new_key = new_ec("2026-11");
    cl_jwks *keys = set_of(old_key, new_key);
    char *old_token = sign(old_key, claims_at(NOW, NOW + 600));
    char *new_token = sign(new_key, claims_at(NOW, NOW + 600));
    cl_error err;

    (void)state;
    expect_accepted(old_token, keys, &policy);
    expect_accepted(new_token, keys, &policy);
    assert_int_equal(cl_jwks_remove(keys, "2026-10", &err), CL_OK);
    assert_int_equal(cl_jwks_count(keys), 1);
    expect_refused(old_token, keys, &policy, "no key has kid 2026-10", NULL, 0);
    expect_accepted(new_token, keys, &policy);
    assert_int_equal(cl_jwks_remove(keys, "2026-10", &err), CL_NOT_FOUND);
    free(old_token);
    free(new_token);
    cl_jwks_free(keys);
    cl_jwk_free(old_key);
    cl_jwk_free(new_key);
}

/* --- the cache -------------------------------------------------------------------- */

static void test_jwt_cache_hits_until_exp(void **state)
{
    cl_jwt_cache *c = cl_jwt_cache_new(8);
    json_t *claims = json_pack("{s:s}", "sub", "user-1");
    json_t *got = NULL;

    (void)state;
    assert_null(cl_jwt_cache_get(c, "t1", NOW));
    cl_jwt_cache_put(c, "t1", claims, NOW + 10);
    /* The cache keeps its own copy: changing ours afterwards changes nothing there. */
    json_object_set_new(claims, "sub", json_string("changed"));
    got = cl_jwt_cache_get(c, "t1", NOW + 9);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "sub")), "user-1");
    /* What a hit returns is the caller's: changing it leaves the cache as it was. */
    json_object_set_new(got, "sub", json_string("mine"));
    json_decref(got);
    got = cl_jwt_cache_get(c, "t1", NOW + 9);
    assert_string_equal(json_string_value(json_object_get(got, "sub")), "user-1");
    json_decref(got);
    assert_null(cl_jwt_cache_get(c, "t1", NOW + 10));
    assert_null(cl_jwt_cache_get(c, "t2", NOW));
    assert_int_equal(cl_jwt_cache_count(c, NOW), 1);
    cl_jwt_cache_clear(c);
    assert_null(cl_jwt_cache_get(c, "t1", NOW));
    assert_null(cl_jwt_cache_new(0));
    json_decref(claims);
    cl_jwt_cache_free(c);
    cl_jwt_cache_free(NULL);
}

/*
 * A thread remembers its last hit: never across caches (each is one policy's), never after
 * a clear, never past the token's exp, and only for the very same token.
 */
static void test_jwt_cache_memo_stays_within_its_cache(void **state)
{
    cl_jwt_cache *a = cl_jwt_cache_new(8);
    cl_jwt_cache *b = cl_jwt_cache_new(8);
    json_t *claims = json_pack("{s:s}", "sub", "user-1");
    json_t *got = NULL;

    (void)state;
    cl_jwt_cache_put(a, "tok", claims, NOW + 10);
    got = cl_jwt_cache_get(a, "tok", NOW);
    assert_non_null(got);
    json_decref(got);
    assert_null(cl_jwt_cache_get(b, "tok", NOW));
    assert_null(cl_jwt_cache_get(a, "tok2", NOW));
    assert_null(cl_jwt_cache_get(a, "to", NOW));
    got = cl_jwt_cache_get(a, "tok", NOW);
    assert_non_null(got);
    json_decref(got);
    assert_null(cl_jwt_cache_get(a, "tok", NOW + 10));
    /* A cache freed and another made (perhaps at the same address) knows nothing. */
    cl_jwt_cache_free(a);
    a = cl_jwt_cache_new(8);
    assert_null(cl_jwt_cache_get(a, "tok", NOW));
    cl_jwt_cache_put(a, "tok", claims, NOW + 10);
    got = cl_jwt_cache_get(a, "tok", NOW);
    assert_non_null(got);
    json_decref(got);
    cl_jwt_cache_clear(a);
    assert_null(cl_jwt_cache_get(a, "tok", NOW));
    json_decref(claims);
    cl_jwt_cache_free(a);
    cl_jwt_cache_free(b);
}

static void test_jwt_cache_is_bounded(void **state)
{
    int64_t far = (int64_t)time(NULL) + 3600;
    cl_jwt_cache *c = cl_jwt_cache_new(20);
    json_t *claims = json_pack("{s:s}", "sub", "u");
    char token[32];
    json_t *got = NULL;

    (void)state;
    for (int i = 0; i < 500; i++) {
        (void)snprintf(token, sizeof(token), "token-%d", i);
        cl_jwt_cache_put(c, token, claims, far + i);
        assert_true(cl_jwt_cache_count(c, NOW) <= 20);
    }
    assert_int_equal(cl_jwt_cache_count(c, NOW), 20);
    /* The last one put is always there: a put never loses to older entries. */
    got = cl_jwt_cache_get(c, token, NOW);
    assert_non_null(got);
    json_decref(got);
    json_decref(claims);
    cl_jwt_cache_free(c);
}

typedef struct reader_arg {
    cl_jwt_cache *cache;
    cl_jwks *keys;
    char **tokens;
    int ntokens;
    int failures;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;

    for (int round = 0; round < 200; round++) {
        const char *token = a->tokens[round % a->ntokens];
        json_t *claims = NULL;
        cl_error err;

        if (cl_jwt_verify_cached(a->cache, token, a->keys, &policy, &claims, &err) != CL_OK ||
            strcmp(json_string_value(json_object_get(claims, "sub")), "user-1") != 0) {
            a->failures++;
        }
        json_decref(claims);
    }
    return NULL;
}

/* Four threads running reader over six tokens through a cache of four: none may fail. */
static void run_readers(void *(*reader_fn)(void *), const char *kid)
{
    cl_jwk *ec = new_ec(kid);
    cl_jwks *keys = set_of(ec, NULL);
    char *tokens[6];
    pthread_t threads[4];
    reader_arg args[4];
    cl_jwt_cache *c = cl_jwt_cache_new(4);

    for (int i = 0; i < 6; i++) {
        json_t *claims = claims_at(NOW, NOW + 600);

        json_object_set_new(claims, "jti", json_integer(i));
        tokens[i] = sign(ec, claims);
    }
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){c, keys, tokens, 6, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, reader_fn, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    assert_true(cl_jwt_cache_count(c, NOW) <= 4);
    for (int i = 0; i < 6; i++) {
        free(tokens[i]);
    }
    cl_jwt_cache_free(c);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
}

static void test_jwt_cache_serves_concurrent_readers(void **state)
{
    (void)state;
    run_readers(reader, "ec-c");
}

static void test_jwt_verify_cached_skips_verification_on_a_hit(void **state)
{
    cl_jwk *ec = new_ec("ec-v");
    cl_jwks *keys = set_of(ec, NULL);
    cl_jwks *empty = cl_jwks_new();
    char *token = sign(ec, claims_at(NOW, NOW + 600));
    cl_jwt_cache *c = cl_jwt_cache_new(16);
    json_t *claims = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_jwt_verify_cached(c, token, keys, &policy, &claims, &err), CL_OK);
    json_decref(claims);
    /* A hit needs no key: proof that the signature was not checked again. */
    assert_int_equal(cl_jwt_verify_cached(c, token, empty, &policy, &claims, &err), CL_OK);
    json_decref(claims);
    cl_jwt_cache_clear(c);
    assert_int_equal(cl_jwt_verify_cached(c, token, empty, &policy, &claims, &err),
                     CL_UNAUTHORIZED);
    free(token);
    cl_jwt_cache_free(c);
    cl_jwks_free(empty);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
}

/* A hit shares the cached claims: the same object, readable after a clear until released. */
static void test_jwt_verify_shared_hands_out_the_cached_claims(void **state)
{
    cl_jwk *ec = new_ec("ec-s");
    cl_jwks *keys = set_of(ec, NULL);
    cl_jwks *empty = cl_jwks_new();
    char *token = sign(ec, claims_at(NOW, NOW + 600));
    cl_jwt_cache *c = cl_jwt_cache_new(16);
    cl_jwt_claims *first = NULL;
    cl_jwt_claims *second = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_jwt_verify_shared(c, token, keys, &policy, &first, &err), CL_OK);
    /* A hit needs no key, and hands out the very claims the miss cached. */
    assert_int_equal(cl_jwt_verify_shared(c, token, empty, &policy, &second, &err), CL_OK);
    assert_ptr_equal(cl_jwt_claims_json(first), cl_jwt_claims_json(second));
    assert_string_equal(
        json_string_value(json_object_get((json_t *)cl_jwt_claims_json(second), "sub")), "user-1");
    cl_jwt_claims_release(first);
    /* Cleared from the cache, the claims still held stay readable (ASan sees any misuse). */
    cl_jwt_cache_clear(c);
    assert_string_equal(
        json_string_value(json_object_get((json_t *)cl_jwt_claims_json(second), "sub")), "user-1");
    cl_jwt_claims_release(second);
    cl_jwt_claims_release(NULL);
    assert_int_equal(cl_jwt_verify_shared(c, token, empty, &policy, &first, &err), CL_UNAUTHORIZED);
    /* Without a cache, fresh claims of the caller's own. */
    assert_int_equal(cl_jwt_verify_shared(NULL, token, keys, &policy, &first, &err), CL_OK);
    assert_string_equal(
        json_string_value(json_object_get((json_t *)cl_jwt_claims_json(first), "sub")), "user-1");
    cl_jwt_claims_release(first);
    free(token);
    cl_jwt_cache_free(c);
    cl_jwks_free(empty);
    cl_jwks_free(keys);
    cl_jwk_free(ec);
}

static void *shared_reader(void *p)
{
    reader_arg *a = p;

    for (int round = 0; round < 200; round++) {
        const char *token = a->tokens[round % a->ntokens];
        cl_jwt_claims *claims = NULL;
        cl_error err;

        if (cl_jwt_verify_shared(a->cache, token, a->keys, &policy, &claims, &err) != CL_OK ||
            strcmp(json_string_value(json_object_get((json_t *)cl_jwt_claims_json(claims), "sub")),
                   "user-1") != 0) {
            a->failures++;
        }
        cl_jwt_claims_release(claims);
        if (round % 50 == 49) {
            /* A clear while others hold claims: they keep reading what they hold. */
            cl_jwt_cache_clear(a->cache);
        }
    }
    return NULL;
}

/* More tokens than slots, shared claims, clears: every reader reads whole claims. */
static void test_jwt_verify_shared_serves_concurrent_readers(void **state)
{
    (void)state;
    run_readers(shared_reader, "ec-t");
}

/* --- helpers ---------------------------------------------------------------------- */

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(cl_secret_equal("s3cret", 6, "s3cret", 6));
    assert_false(cl_secret_equal("s3cret", 6, "s3creT", 6));
    assert_false(cl_secret_equal("s3cret", 6, "s3cre", 5));
    assert_false(cl_secret_equal("Xs3cre", 6, "s3cret", 6));
    assert_true(cl_secret_equal(NULL, 0, "", 0));
}

static void test_base64url_is_strict(void **state)
{
    char text[16];
    unsigned char bytes[16];
    size_t len = 0;

    (void)state;
    /* RFC 4648 section 10, without padding. */
    assert_int_equal(cl_base64url_encode("foob", 4, text, sizeof(text)), 6);
    assert_string_equal(text, "Zm9vYg");
    assert_int_equal(cl_base64url_encode("\xfb\xff", 2, text, sizeof(text)), 3);
    assert_string_equal(text, "-_8");
    assert_int_equal(cl_base64url_encode("foob", 4, text, 6), 0);
    assert_int_equal(cl_base64url_decode("Zm9vYg", 6, bytes, sizeof(bytes), &len, NULL), CL_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(bytes, "foob", 4);
    assert_int_equal(cl_base64url_decode("Zm9vYg==", 8, bytes, sizeof(bytes), &len, NULL),
                     CL_INVALID);
    assert_int_equal(cl_base64url_decode("+/8", 3, bytes, sizeof(bytes), &len, NULL), CL_INVALID);
    /* "Zm9vYh" is "foob" with a trailing bit set: a second spelling, refused. */
    assert_int_equal(cl_base64url_decode("Zm9vYh", 6, bytes, sizeof(bytes), &len, NULL),
                     CL_INVALID);
    assert_int_equal(cl_base64url_decode("Zm9vY", 5, bytes, sizeof(bytes), &len, NULL), CL_INVALID);
    assert_int_equal(cl_base64url_decode("Zm9vYg", 6, bytes, 3, &len, NULL), CL_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_es256_round_trip),
        cmocka_unit_test(test_jwt_rs256_round_trip),
        cmocka_unit_test(test_jwt_header_names_alg_typ_and_kid),
        cmocka_unit_test(test_jwk_pem_round_trip_keeps_the_key),
        cmocka_unit_test(test_jwk_from_pem_refuses_other_keys),
        cmocka_unit_test(test_jwks_round_trip_and_lookup),
        cmocka_unit_test(test_jwks_parse_names_the_bad_key),
        cmocka_unit_test(test_jwks_rsa_modulus_checks_are_deterministic),
        cmocka_unit_test(test_jwt_refuses_every_attack_for_its_own_reason),
        cmocka_unit_test(test_jwt_leeway_and_audience_lists),
        cmocka_unit_test(test_jwt_rotation_old_key_verifies_until_removed),
        cmocka_unit_test(test_jwt_cache_hits_until_exp),
        cmocka_unit_test(test_jwt_cache_memo_stays_within_its_cache),
        cmocka_unit_test(test_jwt_cache_is_bounded),
        cmocka_unit_test(test_jwt_cache_serves_concurrent_readers),
        cmocka_unit_test(test_jwt_verify_cached_skips_verification_on_a_hit),
        cmocka_unit_test(test_jwt_verify_shared_hands_out_the_cached_claims),
        cmocka_unit_test(test_jwt_verify_shared_serves_concurrent_readers),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_base64url_is_strict),
    };

    return cmocka_run_group_tests(tests, setup_rsa, teardown_rsa);
}
