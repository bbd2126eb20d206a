/* Keys (JWK) and key sets (JWKS) for ES256 and RS256 (cleave/jwt.h). */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_internal.h"

/* P-256 coordinates are 32 bytes; an uncompressed point is 0x04 || X || Y. */
#define EC_COORD_LEN    32
/* RSA keys from 2048 bits (RFC 7518 section 3.3) to 8192: a larger one only costs time. */
#define RSA_MIN_BITS    2048
#define RSA_MAX_BITS    8192
/*
 * A public exponent is 65537 in practice; a long one makes every verification slow, so
 * a key that asks for more than 64 bits is refused rather than served.
 */
#define RSA_MAX_EXP_LEN 8

struct cl_jwks {
    cl_jwk *keys[CL_JWKS_MAX_KEYS];
    size_t count;
};

const char *cl__jwk_type_alg(cl__jwk_type type)
{
    return type == CL__JWK_EC ? "ES256" : "RS256";
}

bool cl__kid_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL) {
        return false;
    }
    for (; s[n] != '\0'; n++) {
        if (n >= CL_JWK_KID_MAX || s[n] <= ' ' || s[n] > '~') {
            return false;
        }
    }
    return n > 0;
}

static cl_status check_kid(const char *kid, cl_error *err)
{
    if (!cl__kid_valid(kid)) {
        return cl_error_set(err, CL_INVALID, "kid",
                            "kid must be 1 to %d printable ASCII characters without spaces",
                            CL_JWK_KID_MAX);
    }
    return CL_OK;
}

/*
 * Hands *pkey over to a new key named kid in *out; *pkey is then NULL. On failure *pkey
 * stays the caller's to free.
 */
static cl_status jwk_wrap(const char *kid, cl__jwk_type type, EVP_PKEY **pkey, bool has_private,
                          cl_jwk **out, cl_error *err)
{
    cl_jwk *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    /* The kid has been checked: it fits. */
    memcpy(k->kid, kid, strlen(kid) + 1);
    k->type = type;
    k->pkey = *pkey;
    k->has_private = has_private;
    *pkey = NULL;
    *out = k;
    return CL_OK;
}

cl_status cl_jwk_generate(const char *kid, cl_jwk **out, cl_error *err)
{
    EVP_PKEY *pkey = NULL;
    cl_status st = check_kid(kid, err);

    if (st != CL_OK) {
        goto out;
    }
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "OpenSSL could not generate a P-256 key");
        goto out;
    }
    st = jwk_wrap(kid, CL__JWK_EC, &pkey, true, out, err);
out:
    EVP_PKEY_free(pkey);
    return st;
}

/* Whether an EC key is on P-256 (OpenSSL calls the curve prime256v1). */
static bool ec_is_p256(const EVP_PKEY *pkey)
{
    char group[64];

    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1) {
        return false;
    }
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* The key type pkey is, when it is one we sign with; CL_INVALID naming why not. */
static cl_status classify(const EVP_PKEY *pkey, cl__jwk_type *type, cl_error *err)
{
    if (EVP_PKEY_is_a(pkey, "EC")) {
        if (!ec_is_p256(pkey)) {
            return cl_error_set(err, CL_INVALID, NULL, "EC key is not on P-256");
        }
        *type = CL__JWK_EC;
        return CL_OK;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);

        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            return cl_error_set(err, CL_INVALID, NULL, "RSA key of %d bits (%d to %d accepted)",
                                bits, RSA_MIN_BITS, RSA_MAX_BITS);
        }
        *type = CL__JWK_RSA;
        return CL_OK;
    }
    return cl_error_set(err, CL_INVALID, NULL, "key type %s is neither EC P-256 nor RSA",
                        EVP_PKEY_get0_type_name(pkey));
}

/* Never prompts for a passphrase: an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

cl_status cl_jwk_from_pem(const char *kid, const char *pem, cl_jwk **out, cl_error *err)
{
    static const char pkcs8[] = "-----BEGIN PRIVATE KEY-----";
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    cl__jwk_type type = CL__JWK_EC;
    cl_status st = check_kid(kid, err);

    if (st != CL_OK) {
        goto out;
    }
    if (pem == NULL) {
        st = cl_error_set(err, CL_INVALID, "pem", "no PEM given");
        goto out;
    }
    while (*pem == ' ' || *pem == '\t' || *pem == '\r' || *pem == '\n') {
        pem++;
    }
    if (strncmp(pem, pkcs8, sizeof(pkcs8) - 1) != 0) {
        st = cl_error_set(err, CL_INVALID, "pem", "not an unencrypted PKCS#8 private key PEM (%s)",
                          pkcs8);
        goto out;
    }
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        st = cl_error_set(err, CL_INVALID, "pem", "the PEM holds no readable private key");
        goto out;
    }
    st = classify(pkey, &type, err);
    if (st != CL_OK) {
        if (err != NULL) {
            (void)snprintf(err->field, sizeof(err->field), "pem");
        }
        goto out;
    }
    st = jwk_wrap(kid, type, &pkey, true, out, err);
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return st;
}

char *cl_jwk_private_pem(const cl_jwk *k)
{
    BIO *bio = NULL;
    char *pem = NULL;
    char *data = NULL;
    long len = 0;

    if (k == NULL || !k->has_private) {
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") since OpenSSL 1.0. */
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        goto out;
    }
    len = BIO_get_mem_data(bio, &data);
    if (len <= 0) {
        goto out;
    }
    pem = malloc((size_t)len + 1);
    if (pem == NULL) {
        goto out;
    }
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
out:
    BIO_free(bio);
    return pem;
}

/* Sets obj[name] to the base64url of bytes; false when out of memory. */
static bool set_b64(json_t *obj, const char *name, const unsigned char *bytes, size_t n)
{
    char text[CL_BASE64URL_LEN(RSA_MAX_BITS / 8) + 1];

    if (cl_base64url_encode(bytes, n, text, sizeof(text)) == 0) {
        return false;
    }
    return json_object_set_new(obj, name, json_string(text)) == 0;
}

/* obj[name] = the big-endian bytes of pkey's parameter param (padded to pad bytes). */
static bool set_bn_param(json_t *obj, const char *name, const EVP_PKEY *pkey, const char *param,
                         int pad)
{
    unsigned char bytes[RSA_MAX_BITS / 8];
    BIGNUM *bn = NULL;
    int n = -1;
    bool ok = false;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        goto out;
    }
    if (BN_num_bytes(bn) > (int)sizeof(bytes)) {
        goto out;
    }
    n = pad > 0 ? BN_bn2binpad(bn, bytes, pad) : BN_bn2bin(bn, bytes);
    ok = n > 0 && set_b64(obj, name, bytes, (size_t)n);
out:
    BN_free(bn);
    return ok;
}

json_t *cl_jwk_public_json(const cl_jwk *k)
{
    json_t *obj = json_object();
    bool ok = false;

    if (obj == NULL) {
        goto out;
    }
    if (k->type == CL__JWK_EC) {
        ok = json_object_set_new(obj, "kty", json_string("EC")) == 0 &&
             json_object_set_new(obj, "crv", json_string("P-256")) == 0 &&
             set_bn_param(obj, "x", k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, EC_COORD_LEN) &&
             set_bn_param(obj, "y", k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, EC_COORD_LEN);
    } else {
        ok = json_object_set_new(obj, "kty", json_string("RSA")) == 0 &&
             set_bn_param(obj, "n", k->pkey, OSSL_PKEY_PARAM_RSA_N, 0) &&
             set_bn_param(obj, "e", k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    }
    ok = ok && json_object_set_new(obj, "kid", json_string(k->kid)) == 0 &&
         json_object_set_new(obj, "use", json_string("sig")) == 0 &&
         json_object_set_new(obj, "alg", json_string(cl__jwk_type_alg(k->type))) == 0;
out:
    if (!ok) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

const char *cl_jwk_kid(const cl_jwk *k)
{
    return k->kid;
}

const char *cl_jwk_alg(const cl_jwk *k)
{
    return cl__jwk_type_alg(k->type);
}

bool cl_jwk_has_private(const cl_jwk *k)
{
    return k->has_private;
}

void cl_jwk_free(cl_jwk *k)
{
    if (k == NULL) {
        return;
    }
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* --- a public key from its JWK ---------------------------------------------------- */

/* Decodes the base64url member name of jwk into buf[size]; CL_INVALID naming it. */
static cl_status member_bytes(const json_t *jwk, const char *name, unsigned char *buf, size_t size,
                              size_t *len, cl_error *err)
{
    const char *text = json_string_value(json_object_get(jwk, name));

    if (text == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "\"%s\" is missing or not a string", name);
    }
    if (cl_base64url_decode(text, strlen(text), buf, size, len, NULL) != CL_OK || *len == 0) {
        return cl_error_set(err, CL_INVALID, NULL, "\"%s\" is not base64url of at most %zu bytes",
                            name, size);
    }
    return CL_OK;
}

/*
 * Builds a public key of key type name ("EC", "RSA") from params. An EC key gets OpenSSL's
 * public-key check (the point is on the curve and not at infinity). An RSA key does not:
 * OpenSSL's check (SP 800-56B) runs Miller-Rabin with random bases, so one modulus could
 * pass once and fail the next time, and costs milliseconds per key; rsa_modulus_ok's
 * deterministic checks stand in for it (a JWKS comes from the issuer we trust, and no
 * check of a public modulus makes a forged signature verify).
 */
static cl_status pkey_from_params(const char *name, OSSL_PARAM_BLD *bld, EVP_PKEY **out,
                                  cl_error *err)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *pkey = NULL;
    cl_status st = CL_OK;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "OpenSSL could not build a %s key", name);
        goto out;
    }
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        st = cl_error_set(err, CL_INVALID, NULL, "not a valid %s public key", name);
        goto out;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || (strcmp(name, "EC") == 0 && EVP_PKEY_public_check(check) != 1)) {
        st = cl_error_set(err, CL_INVALID, NULL, "not a valid %s public key", name);
        goto out;
    }
    *out = pkey;
    pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return st;
}

static cl_status ec_from_json(const json_t *jwk, EVP_PKEY **out, cl_error *err)
{
    unsigned char point[1 + 2 * EC_COORD_LEN];
    unsigned char coord[EC_COORD_LEN + 1];
    size_t len = 0;
    OSSL_PARAM_BLD *bld = NULL;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    cl_status st = CL_OK;

    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        st = cl_error_set(err, CL_INVALID, NULL, "crv must be P-256");
        goto out;
    }
    point[0] = 4;
    st = member_bytes(jwk, "x", coord, sizeof(coord), &len, err);
    if (st == CL_OK && len != EC_COORD_LEN) {
        st = cl_error_set(err, CL_INVALID, NULL, "\"x\" is %zu bytes, not 32", len);
    }
    if (st != CL_OK) {
        goto out;
    }
    memcpy(point + 1, coord, EC_COORD_LEN);
    st = member_bytes(jwk, "y", coord, sizeof(coord), &len, err);
    if (st == CL_OK && len != EC_COORD_LEN) {
        st = cl_error_set(err, CL_INVALID, NULL, "\"y\" is %zu bytes, not 32", len);
    }
    if (st != CL_OK) {
        goto out;
    }
    memcpy(point + 1 + EC_COORD_LEN, coord, EC_COORD_LEN);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = pkey_from_params("EC", bld, out, err);
out:
    OSSL_PARAM_BLD_free(bld);
    return st;
}

/*
 * The deterministic part of a modulus check: odd, and no factor among the small primes
 * (a product of two large primes has none), so every parse of one key gives one answer.
 */
static bool rsa_modulus_ok(const BIGNUM *n)
{
    static const unsigned short small_primes[] = {
        3,   5,   7,   11,  13,  17,  19,  23,  29,  31,  37,  41,  43,  47,  53,  59,  61,
        67,  71,  73,  79,  83,  89,  97,  101, 103, 107, 109, 113, 127, 131, 137, 139, 149,
        151, 157, 163, 167, 173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239,
        241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337, 347,
        349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419, 421, 431, 433, 439, 443,
        449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523, 541, 547, 557, 563,
        569, 571, 577, 587, 593, 599, 601, 607, 613, 617, 619, 631, 641, 643, 647, 653, 659,
        661, 673, 677, 683, 691, 701, 709, 719, 727, 733, 739, 743, 751, 757, 761, 769, 773,
        787, 797, 809, 811, 821, 823, 827, 829, 839, 853, 857, 859, 863, 877, 881, 883, 887,
        907, 911, 919, 929, 937, 941, 947, 953, 967, 971, 977, 983, 991, 997};

    if (!BN_is_odd(n)) {
        return false;
    }
    for (size_t i = 0; i < sizeof(small_primes) / sizeof(small_primes[0]); i++) {
        if (BN_mod_word(n, small_primes[i]) == 0) {
            return false;
        }
    }
    return true;
}

static cl_status rsa_from_json(const json_t *jwk, EVP_PKEY **out, cl_error *err)
{
    /* One more than the largest modulus: some encoders keep a leading zero byte. */
    unsigned char nbytes[RSA_MAX_BITS / 8 + 1];
    unsigned char ebytes[RSA_MAX_EXP_LEN];
    size_t nlen = 0, elen = 0;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int bits = 0;
    cl_status st = member_bytes(jwk, "n", nbytes, sizeof(nbytes), &nlen, err);

    if (st == CL_OK) {
        st = member_bytes(jwk, "e", ebytes, sizeof(ebytes), &elen, err);
    }
    if (st != CL_OK) {
        goto out;
    }
    n = BN_bin2bn(nbytes, (int)nlen, NULL);
    e = BN_bin2bn(ebytes, (int)elen, NULL);
    /* On the value, not the bytes: "AAAB" is 1 with leading zero bytes (found by fuzzing). */
    if (e != NULL && (!BN_is_odd(e) || BN_num_bits(e) < 2)) {
        st = cl_error_set(err, CL_INVALID, NULL, "\"e\" must be an odd exponent of at least 3");
        goto out;
    }
    bits = n == NULL ? 0 : BN_num_bits(n);
    if (n != NULL && (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)) {
        st = cl_error_set(err, CL_INVALID, NULL, "RSA key of %d bits (%d to %d accepted)", bits,
                          RSA_MIN_BITS, RSA_MAX_BITS);
        goto out;
    }
    if (n != NULL && !rsa_modulus_ok(n)) {
        st = cl_error_set(err, CL_INVALID, NULL,
                          "not a valid RSA public key: the modulus is even or has a small factor");
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (n == NULL || e == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = pkey_from_params("RSA", bld, out, err);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return st;
}

/* Whether the optional "alg", "use" and "key_ops" of jwk agree with a key of type. */
static cl_status check_usage(const json_t *jwk, cl__jwk_type type, cl_error *err)
{
    const json_t *alg = json_object_get(jwk, "alg");
    const json_t *use = json_object_get(jwk, "use");
    const json_t *ops = json_object_get(jwk, "key_ops");
    const char *want = cl__jwk_type_alg(type);

    if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), want) != 0)) {
        return cl_error_set(err, CL_INVALID, NULL, "\"alg\" must be %s for this key type", want);
    }
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        return cl_error_set(err, CL_INVALID, NULL, "\"use\" must be \"sig\"");
    }
    if (ops != NULL) {
        size_t i = 0;
        const json_t *op = NULL;
        bool verify = false;

        if (!json_is_array(ops)) {
            return cl_error_set(err, CL_INVALID, NULL, "\"key_ops\" must be an array");
        }
        json_array_foreach (ops, i, op) {
            verify = verify || (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0);
        }
        if (!verify) {
            return cl_error_set(err, CL_INVALID, NULL, "\"key_ops\" does not allow \"verify\"");
        }
    }
    return CL_OK;
}

/* A public key from one JWK object; CL_INVALID with the reason (not yet naming the key). */
static cl_status jwk_from_json(const json_t *jwk, cl_jwk **out, cl_error *err)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    const char *kty = NULL;
    const char *kid = NULL;
    cl__jwk_type type = CL__JWK_EC;
    EVP_PKEY *pkey = NULL;
    cl_status st = CL_OK;

    if (!json_is_object(jwk)) {
        st = cl_error_set(err, CL_INVALID, NULL, "a key must be a JSON object");
        goto out;
    }
    kid = json_string_value(json_object_get(jwk, "kid"));
    if (!cl__kid_valid(kid)) {
        st = cl_error_set(err, CL_INVALID, NULL,
                          "\"kid\" is missing or not 1 to %d printable characters", CL_JWK_KID_MAX);
        goto out;
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        if (json_object_get(jwk, private_members[i]) != NULL) {
            st = cl_error_set(err, CL_INVALID, NULL,
                              "holds private key material (\"%s\"): a JWKS is public",
                              private_members[i]);
            goto out;
        }
    }
    kty = json_string_value(json_object_get(jwk, "kty"));
    if (kty != NULL && strcmp(kty, "EC") == 0) {
        type = CL__JWK_EC;
        st = check_usage(jwk, type, err);
        st = st == CL_OK ? ec_from_json(jwk, &pkey, err) : st;
    } else if (kty != NULL && strcmp(kty, "RSA") == 0) {
        type = CL__JWK_RSA;
        st = check_usage(jwk, type, err);
        st = st == CL_OK ? rsa_from_json(jwk, &pkey, err) : st;
    } else {
        st = cl_error_set(err, CL_INVALID, NULL, "\"kty\" must be \"EC\" or \"RSA\"");
    }
    if (st != CL_OK) {
        goto out;
    }
    st = jwk_wrap(kid, type, &pkey, false, out, err);
out:
    EVP_PKEY_free(pkey);
    return st;
}

/* --- key sets --------------------------------------------------------------------- */

cl_jwks *cl_jwks_new(void)
{
    return calloc(1, sizeof(cl_jwks));
}

const cl_jwk *cl_jwks_find(const cl_jwks *s, const char *kid)
{
    if (s == NULL || kid == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->keys[i]->kid, kid) == 0) {
            return s->keys[i];
        }
    }
    return NULL;
}

/* Takes k (a public key) into s, or frees it and fails. */
static cl_status jwks_take(cl_jwks *s, cl_jwk *k, cl_error *err)
{
    cl_status st = CL_OK;

    if (k == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "no key to add");
    }
    if (cl_jwks_find(s, k->kid) != NULL) {
        st = cl_error_set(err, CL_INVALID, "kid", "the set already has a key with kid %s", k->kid);
    } else if (s->count == CL_JWKS_MAX_KEYS) {
        st = cl_error_set(err, CL_INVALID, "keys", "the set holds %d keys, the most it may",
                          CL_JWKS_MAX_KEYS);
    }
    if (st != CL_OK) {
        cl_jwk_free(k);
        return st;
    }
    s->keys[s->count++] = k;
    return CL_OK;
}

cl_status cl_jwks_add(cl_jwks *s, const cl_jwk *k, cl_error *err)
{
    /*
     * The copy goes through the key's public JWK, so that a key in a set is built the
     * one way every key from a JWKS document is, and can never carry a private part.
     */
    json_t *pub = cl_jwk_public_json(k);
    cl_jwk *copy = NULL;
    cl_status st = CL_OK;

    if (pub == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = jwk_from_json(pub, &copy, err);
    if (st != CL_OK) {
        goto out;
    }
    st = jwks_take(s, copy, err);
out:
    json_decref(pub);
    return st;
}

cl_status cl_jwks_remove(cl_jwks *s, const char *kid, cl_error *err)
{
    for (size_t i = 0; i < s->count; i++) {
        if (kid != NULL && strcmp(s->keys[i]->kid, kid) == 0) {
            cl_jwk_free(s->keys[i]);
            memmove(&s->keys[i], &s->keys[i + 1], (s->count - i - 1) * sizeof(s->keys[0]));
            s->count--;
            return CL_OK;
        }
    }
    return cl_error_set(err, CL_NOT_FOUND, "kid", "the set has no key with that kid");
}

/* Prefixes err's message with which key it is about, and names the field. */
static cl_status name_key(cl_error *err, cl_status st, size_t i, const json_t *jwk)
{
    char reason[sizeof(err->message)];
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    char field[32];

    if (err == NULL) {
        return st;
    }
    memcpy(reason, err->message, sizeof(reason));
    (void)snprintf(field, sizeof(field), "keys[%zu]", i);
    if (cl__kid_valid(kid)) {
        return cl_error_set(err, st, field, "JWKS key %zu (kid %.64s): %s", i, kid, reason);
    }
    return cl_error_set(err, st, field, "JWKS key %zu: %s", i, reason);
}

cl_status cl_jwks_parse(const char *json, size_t len, cl_jwks **out, cl_error *err)
{
    json_error_t jerr;
    json_t *doc = NULL;
    const json_t *keys = NULL;
    cl_jwks *s = NULL;
    cl_status st = CL_OK;

    if (json == NULL || len > CL_JWKS_MAX_LEN) {
        st = cl_error_set(err, CL_INVALID, NULL, "a JWKS document is at most %zu bytes",
                          (size_t)CL_JWKS_MAX_LEN);
        goto out;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        st = cl_error_set(err, CL_INVALID, NULL, "JWKS is not JSON: %s", jerr.text);
        goto out;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        st = cl_error_set(err, CL_INVALID, "keys", "JWKS has no \"keys\" array");
        goto out;
    }
    if (json_array_size(keys) > CL_JWKS_MAX_KEYS) {
        st = cl_error_set(err, CL_INVALID, "keys", "JWKS has %zu keys, at most %d are read",
                          json_array_size(keys), CL_JWKS_MAX_KEYS);
        goto out;
    }
    s = cl_jwks_new();
    if (s == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const json_t *jwk = json_array_get(keys, i);
        cl_jwk *k = NULL;

        st = jwk_from_json(jwk, &k, err);
        st = st == CL_OK ? jwks_take(s, k, err) : st;
        if (st != CL_OK) {
            st = name_key(err, st, i, jwk);
            goto out;
        }
    }
    *out = s;
    s = NULL;
out:
    cl_jwks_free(s);
    json_decref(doc);
    return st;
}

json_t *cl_jwks_json(const cl_jwks *s)
{
    json_t *keys = json_array();

    for (size_t i = 0; keys != NULL && i < s->count; i++) {
        if (json_array_append_new(keys, cl_jwk_public_json(s->keys[i])) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    return keys == NULL ? NULL : json_pack("{s:o}", "keys", keys);
}

size_t cl_jwks_count(const cl_jwks *s)
{
    return s == NULL ? 0 : s->count;
}

void cl_jwks_free(cl_jwks *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        cl_jwk_free(s->keys[i]);
    }
    free(s);
}
