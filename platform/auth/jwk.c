/*
 * Keys (JWK) and key sets (JWKS) for ES256 and RS256 (cleave/jwt.h), with GNU Nettle's
 * P-256 and RSA and our PKCS#8 codec (pkcs8.c): OpenSSL 3 made 4 MB of libcrypto resident
 * in every process that signed or checked a token (ADR 0060).
 */
#include <gmp.h>
#include <nettle/bignum.h>
#include <nettle/dsa.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecdsa.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_internal.h"
#include "cleave/util.h"
#include "pkcs8.h"

/* P-256 coordinates and scalars are 32 bytes; an uncompressed point is 0x04 || X || Y. */
#define EC_COORD_LEN    32
#define EC_POINT_LEN    (1 + 2 * EC_COORD_LEN)
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
 * Nettle's source of randomness for key generation, ECDSA nonces and RSA blinding: the
 * kernel's. Nettle's callback cannot fail, and a nonce from anything weaker would give the
 * key away, so a kernel without getrandom (Linux before 3.17) ends the process instead.
 */
static void kernel_random(void *ctx, size_t n, uint8_t *dst)
{
    (void)ctx;
    if (cl_random_bytes(dst, n, NULL) != CL_OK) {
        fputs("cleave: no kernel randomness for a signature; stopping\n", stderr);
        abort();
    }
}

/*
 * GMP's numbers (Nettle's keys, and every intermediate of a signature) are wiped when GMP
 * frees or moves them, as OpenSSL clears a private key's numbers: GMP hands the size to
 * these, and aborts itself when it cannot allocate, so they do too.
 */
static void *gmp_realloc_wiped(void *p, size_t old_size, size_t new_size)
{
    void *q = malloc(new_size);

    if (q == NULL) {
        fputs("cleave: out of memory for a number\n", stderr);
        abort();
    }
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    explicit_bzero(p, old_size);
    free(p);
    return q;
}

static void gmp_free_wiped(void *p, size_t size)
{
    explicit_bzero(p, size);
    free(p);
}

static pthread_once_t gmp_once = PTHREAD_ONCE_INIT;

static void gmp_wipe_freed(void)
{
    mp_set_memory_functions(NULL, gmp_realloc_wiped, gmp_free_wiped);
}

/* A new key named kid (checked) of type, its members initialised; NULL when out of memory. */
static cl_jwk *jwk_new(const char *kid, cl__jwk_type type, bool has_private)
{
    cl_jwk *k = NULL;

    /* Before the first number: every key, and so every signature, comes through here. */
    (void)pthread_once(&gmp_once, gmp_wipe_freed);
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return NULL;
    }
    memcpy(k->kid, kid, strlen(kid) + 1);
    k->type = type;
    k->has_private = has_private;
    if (type == CL__JWK_EC) {
        ecc_point_init(&k->ec_pub, nettle_get_secp_256r1());
        ecc_scalar_init(&k->ec_key, nettle_get_secp_256r1());
    } else {
        rsa_public_key_init(&k->rsa_pub);
        rsa_private_key_init(&k->rsa_key);
    }
    return k;
}

void cl_jwk_free(cl_jwk *k)
{
    if (k == NULL) {
        return;
    }
    /* Nettle's clear functions free the numbers, which wipes them (gmp_free_wiped). */
    if (k->type == CL__JWK_EC) {
        ecc_point_clear(&k->ec_pub);
        ecc_scalar_clear(&k->ec_key);
    } else {
        rsa_public_key_clear(&k->rsa_pub);
        rsa_private_key_clear(&k->rsa_key);
    }
    free(k);
}

cl_status cl_jwk_generate(const char *kid, cl_jwk **out, cl_error *err)
{
    cl_jwk *k = NULL;
    cl_status st = check_kid(kid, err);

    if (st != CL_OK) {
        return st;
    }
    k = jwk_new(kid, CL__JWK_EC, true);
    if (k == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    ecdsa_generate_keypair(&k->ec_pub, &k->ec_key, NULL, kernel_random);
    *out = k;
    return CL_OK;
}

/* x (non-negative) as big-endian bytes into out[len], padded with leading zeros. */
static void mpz_bytes(const mpz_t x, unsigned char *out, size_t len)
{
    nettle_mpz_get_str_256(len, out, x);
}

/* The EC key's public point as 0x04 || X || Y. */
static void ec_point_bytes(const cl_jwk *k, unsigned char out[EC_POINT_LEN])
{
    mpz_t x, y;

    mpz_init(x);
    mpz_init(y);
    ecc_point_get(&k->ec_pub, x, y);
    out[0] = 4;
    mpz_bytes(x, out + 1, EC_COORD_LEN);
    mpz_bytes(y, out + 1 + EC_COORD_LEN, EC_COORD_LEN);
    mpz_clear(x);
    mpz_clear(y);
}

/* The EC private key of a PKCS#8 into k: the scalar in range, its point the one stored. */
static cl_status ec_from_pkcs8(cl_jwk *k, const cl__pkcs8 *p, cl_error *err)
{
    unsigned char point[EC_POINT_LEN];
    mpz_t d;
    int in_range;

    mpz_init(d);
    nettle_mpz_set_str_256_u(d, p->d.n, p->d.p);
    in_range = ecc_scalar_set(&k->ec_key, d);
    mpz_clear(d);
    if (!in_range) {
        return cl_error_set(err, CL_INVALID, "pem", "the EC private key is out of P-256's range");
    }
    ecc_point_mul_g(&k->ec_pub, &k->ec_key);
    ec_point_bytes(k, point);
    if (p->pub.n != 0 && (p->pub.n != EC_POINT_LEN || memcmp(point, p->pub.p, EC_POINT_LEN) != 0)) {
        return cl_error_set(err, CL_INVALID, "pem",
                            "the EC key's public point is not its private key's");
    }
    return CL_OK;
}

/* The RSA private key of a PKCS#8 into k: its size in range and n = p * q. */
static cl_status rsa_from_pkcs8(cl_jwk *k, const cl__pkcs8 *p, cl_error *err)
{
    size_t bits = 0;
    mpz_t pq;
    bool consistent;

    nettle_mpz_set_str_256_u(k->rsa_pub.n, p->rsa_n.n, p->rsa_n.p);
    nettle_mpz_set_str_256_u(k->rsa_pub.e, p->rsa_e.n, p->rsa_e.p);
    nettle_mpz_set_str_256_u(k->rsa_key.d, p->rsa_d.n, p->rsa_d.p);
    nettle_mpz_set_str_256_u(k->rsa_key.p, p->rsa_p.n, p->rsa_p.p);
    nettle_mpz_set_str_256_u(k->rsa_key.q, p->rsa_q.n, p->rsa_q.p);
    nettle_mpz_set_str_256_u(k->rsa_key.a, p->rsa_dp.n, p->rsa_dp.p);
    nettle_mpz_set_str_256_u(k->rsa_key.b, p->rsa_dq.n, p->rsa_dq.p);
    nettle_mpz_set_str_256_u(k->rsa_key.c, p->rsa_qi.n, p->rsa_qi.p);
    bits = mpz_sgn(k->rsa_pub.n) > 0 ? mpz_sizeinbase(k->rsa_pub.n, 2) : 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        return cl_error_set(err, CL_INVALID, "pem", "RSA key of %zu bits (%d to %d accepted)", bits,
                            RSA_MIN_BITS, RSA_MAX_BITS);
    }
    mpz_init(pq);
    mpz_mul(pq, k->rsa_key.p, k->rsa_key.q);
    consistent = mpz_cmp(pq, k->rsa_pub.n) == 0;
    mpz_clear(pq);
    if (!consistent || !rsa_public_key_prepare(&k->rsa_pub) ||
        !rsa_private_key_prepare(&k->rsa_key) || k->rsa_key.size != k->rsa_pub.size) {
        return cl_error_set(err, CL_INVALID, "pem", "the RSA key's numbers do not make a key");
    }
    return CL_OK;
}

cl_status cl_jwk_from_pem(const char *kid, const char *pem, cl_jwk **out, cl_error *err)
{
    cl__pkcs8 p = {0};
    cl_jwk *k = NULL;
    cl_status st = check_kid(kid, err);

    if (st != CL_OK) {
        return st;
    }
    /* The codec refuses what is not an unencrypted PKCS#8 PEM, naming what it is instead. */
    st = cl__pkcs8_read(pem, &p, err);
    if (st != CL_OK) {
        if (err != NULL) {
            (void)snprintf(err->field, sizeof(err->field), "pem");
        }
        goto out;
    }
    k = jwk_new(kid, p.type == CL__PKCS8_EC_P256 ? CL__JWK_EC : CL__JWK_RSA, true);
    if (k == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = k->type == CL__JWK_EC ? ec_from_pkcs8(k, &p, err) : rsa_from_pkcs8(k, &p, err);
    if (st == CL_OK) {
        *out = k;
        k = NULL;
    }
out:
    cl_jwk_free(k);
    cl__pkcs8_free(&p);
    return st;
}

/* x's big-endian bytes, without leading zeros, into a new buffer (wiped by free_number). */
static cl__bytes number_of(const mpz_t x)
{
    size_t n = nettle_mpz_sizeinbase_256_u(x);
    unsigned char *p = malloc(n);

    if (p != NULL) {
        mpz_bytes(x, p, n);
    }
    return (cl__bytes){p, p != NULL ? n : 0};
}

static void free_number(cl__bytes *b)
{
    if (b->p != NULL) {
        explicit_bzero((void *)b->p, b->n);
        free((void *)b->p);
    }
}

char *cl_jwk_private_pem(const cl_jwk *k)
{
    char *pem = NULL;

    if (k == NULL || !k->has_private) {
        return NULL;
    }
    if (k->type == CL__JWK_EC) {
        unsigned char d[EC_COORD_LEN], point[EC_POINT_LEN];
        mpz_t z;

        mpz_init(z);
        ecc_scalar_get(&k->ec_key, z);
        mpz_bytes(z, d, sizeof(d));
        mpz_clear(z);
        ec_point_bytes(k, point);
        pem = cl__pkcs8_write_ec(d, point);
        explicit_bzero(d, sizeof(d));
    } else {
        const mpz_srcptr nums[8] = {k->rsa_pub.n, k->rsa_pub.e, k->rsa_key.d, k->rsa_key.p,
                                    k->rsa_key.q, k->rsa_key.a, k->rsa_key.b, k->rsa_key.c};
        cl__bytes v[8] = {{0}};
        bool ok = true;

        for (int i = 0; i < 8; i++) {
            v[i] = number_of(nums[i]);
            ok = ok && v[i].p != NULL;
        }
        pem = ok ? cl__pkcs8_write_rsa(v) : NULL;
        for (int i = 0; i < 8; i++) {
            free_number(&v[i]);
        }
    }
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

/* obj[name] = the big-endian bytes of x, without leading zeros. */
static bool set_number(json_t *obj, const char *name, const mpz_t x)
{
    unsigned char bytes[RSA_MAX_BITS / 8];
    size_t n = nettle_mpz_sizeinbase_256_u(x);

    if (n > sizeof(bytes)) {
        return false;
    }
    mpz_bytes(x, bytes, n);
    return set_b64(obj, name, bytes, n);
}

json_t *cl_jwk_public_json(const cl_jwk *k)
{
    json_t *obj = json_object();
    bool ok = false;

    if (obj == NULL) {
        goto out;
    }
    if (k->type == CL__JWK_EC) {
        unsigned char point[EC_POINT_LEN];

        ec_point_bytes(k, point);
        ok = json_object_set_new(obj, "kty", json_string("EC")) == 0 &&
             json_object_set_new(obj, "crv", json_string("P-256")) == 0 &&
             set_b64(obj, "x", point + 1, EC_COORD_LEN) &&
             set_b64(obj, "y", point + 1 + EC_COORD_LEN, EC_COORD_LEN);
    } else {
        ok = json_object_set_new(obj, "kty", json_string("RSA")) == 0 &&
             set_number(obj, "n", k->rsa_pub.n) && set_number(obj, "e", k->rsa_pub.e);
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

/* --- signing and verifying --------------------------------------------------------- */

cl_status cl__jwk_sign(const cl_jwk *key, const void *input, size_t n, unsigned char *sig,
                       size_t *sig_len, cl_error *err)
{
    unsigned char digest[SHA256_DIGEST_SIZE];
    cl_status st = CL_OK;

    cl_sha256(input, n, digest);
    if (key->type == CL__JWK_EC) {
        struct dsa_signature s;

        dsa_signature_init(&s);
        ecdsa_sign(&key->ec_key, NULL, kernel_random, sizeof(digest), digest, &s);
        /* JWS wants the two numbers side by side, 32 bytes each (RFC 7518 section 3.4). */
        mpz_bytes(s.r, sig, EC_COORD_LEN);
        mpz_bytes(s.s, sig + EC_COORD_LEN, EC_COORD_LEN);
        *sig_len = CL__ES256_SIG_LEN;
        dsa_signature_clear(&s);
    } else {
        mpz_t s;

        mpz_init(s);
        /* _tr: blinded, and checked with the public key before it is given out. */
        if (key->rsa_pub.size > CL__JWS_SIG_MAX ||
            !rsa_sha256_sign_digest_tr(&key->rsa_pub, &key->rsa_key, NULL, kernel_random, digest,
                                       s)) {
            st = cl_error_set(err, CL_INTERNAL, NULL, "could not sign with key %s", key->kid);
        } else {
            mpz_bytes(s, sig, key->rsa_pub.size);
            *sig_len = key->rsa_pub.size;
        }
        mpz_clear(s);
    }
    return st;
}

bool cl__jwk_verifies(const cl_jwk *key, const void *input, size_t n, const unsigned char *sig,
                      size_t sig_len)
{
    unsigned char digest[SHA256_DIGEST_SIZE];
    bool ok = false;

    cl_sha256(input, n, digest);
    if (key->type == CL__JWK_EC) {
        struct dsa_signature s;

        if (sig_len != CL__ES256_SIG_LEN) {
            return false;
        }
        dsa_signature_init(&s);
        nettle_mpz_set_str_256_u(s.r, EC_COORD_LEN, sig);
        nettle_mpz_set_str_256_u(s.s, EC_COORD_LEN, sig + EC_COORD_LEN);
        /* Refuses r or s of 0 or not below the group's order. */
        ok = ecdsa_verify(&key->ec_pub, sizeof(digest), digest, &s) == 1;
        dsa_signature_clear(&s);
    } else {
        mpz_t s;

        /* RFC 8017 section 8.2.2: the signature is exactly the modulus' length. */
        if (sig_len != key->rsa_pub.size) {
            return false;
        }
        mpz_init(s);
        nettle_mpz_set_str_256_u(s, sig_len, sig);
        /* Refuses s not below n. */
        ok = rsa_sha256_verify_digest(&key->rsa_pub, digest, s) == 1;
        mpz_clear(s);
    }
    return ok;
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

/* A coordinate of exactly 32 bytes into x. */
static cl_status ec_coordinate(const json_t *jwk, const char *name, mpz_t x, cl_error *err)
{
    unsigned char coord[EC_COORD_LEN + 1];
    size_t len = 0;
    cl_status st = member_bytes(jwk, name, coord, sizeof(coord), &len, err);

    if (st == CL_OK && len != EC_COORD_LEN) {
        st = cl_error_set(err, CL_INVALID, NULL, "\"%s\" is %zu bytes, not 32", name, len);
    }
    if (st == CL_OK) {
        nettle_mpz_set_str_256_u(x, EC_COORD_LEN, coord);
    }
    return st;
}

static cl_status ec_from_json(const json_t *jwk, cl_jwk *k, cl_error *err)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    mpz_t x, y;
    cl_status st = CL_OK;

    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        return cl_error_set(err, CL_INVALID, NULL, "crv must be P-256");
    }
    mpz_init(x);
    mpz_init(y);
    st = ec_coordinate(jwk, "x", x, err);
    st = st == CL_OK ? ec_coordinate(jwk, "y", y, err) : st;
    /* Nettle takes only a point on the curve (both coordinates below p). */
    if (st == CL_OK && !ecc_point_set(&k->ec_pub, x, y)) {
        st = cl_error_set(err, CL_INVALID, NULL, "not a valid EC public key");
    }
    mpz_clear(x);
    mpz_clear(y);
    return st;
}

/*
 * The deterministic part of a modulus check: odd, and no factor among the small primes
 * (a product of two large primes has none), so every parse of one key gives one answer.
 * A JWKS comes from the issuer we trust, and no check of a public modulus makes a forged
 * signature verify.
 */
static bool rsa_modulus_ok(const mpz_t n)
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

    if (!mpz_odd_p(n)) {
        return false;
    }
    for (size_t i = 0; i < sizeof(small_primes) / sizeof(small_primes[0]); i++) {
        if (mpz_divisible_ui_p(n, small_primes[i])) {
            return false;
        }
    }
    return true;
}

static cl_status rsa_from_json(const json_t *jwk, cl_jwk *k, cl_error *err)
{
    /* One more than the largest modulus: some encoders keep a leading zero byte. */
    unsigned char nbytes[RSA_MAX_BITS / 8 + 1];
    unsigned char ebytes[RSA_MAX_EXP_LEN];
    size_t nlen = 0, elen = 0, bits = 0;
    cl_status st = member_bytes(jwk, "n", nbytes, sizeof(nbytes), &nlen, err);

    if (st == CL_OK) {
        st = member_bytes(jwk, "e", ebytes, sizeof(ebytes), &elen, err);
    }
    if (st != CL_OK) {
        return st;
    }
    nettle_mpz_set_str_256_u(k->rsa_pub.n, nlen, nbytes);
    nettle_mpz_set_str_256_u(k->rsa_pub.e, elen, ebytes);
    /* On the value, not the bytes: "AAAB" is 1 with leading zero bytes (found by fuzzing). */
    if (!mpz_odd_p(k->rsa_pub.e) || mpz_sizeinbase(k->rsa_pub.e, 2) < 2) {
        return cl_error_set(err, CL_INVALID, NULL, "\"e\" must be an odd exponent of at least 3");
    }
    bits = mpz_sgn(k->rsa_pub.n) > 0 ? mpz_sizeinbase(k->rsa_pub.n, 2) : 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        return cl_error_set(err, CL_INVALID, NULL, "RSA key of %zu bits (%d to %d accepted)", bits,
                            RSA_MIN_BITS, RSA_MAX_BITS);
    }
    if (!rsa_modulus_ok(k->rsa_pub.n)) {
        return cl_error_set(
            err, CL_INVALID, NULL,
            "not a valid RSA public key: the modulus is even or has a small factor");
    }
    if (!rsa_public_key_prepare(&k->rsa_pub)) {
        return cl_error_set(err, CL_INVALID, NULL, "not a valid RSA public key");
    }
    return CL_OK;
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
    cl_jwk *k = NULL;
    cl_status st = CL_OK;

    if (!json_is_object(jwk)) {
        return cl_error_set(err, CL_INVALID, NULL, "a key must be a JSON object");
    }
    kid = json_string_value(json_object_get(jwk, "kid"));
    if (!cl__kid_valid(kid)) {
        return cl_error_set(err, CL_INVALID, NULL,
                            "\"kid\" is missing or not 1 to %d printable characters",
                            CL_JWK_KID_MAX);
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        if (json_object_get(jwk, private_members[i]) != NULL) {
            return cl_error_set(err, CL_INVALID, NULL,
                                "holds private key material (\"%s\"): a JWKS is public",
                                private_members[i]);
        }
    }
    kty = json_string_value(json_object_get(jwk, "kty"));
    if (kty != NULL && strcmp(kty, "EC") == 0) {
        type = CL__JWK_EC;
    } else if (kty != NULL && strcmp(kty, "RSA") == 0) {
        type = CL__JWK_RSA;
    } else {
        return cl_error_set(err, CL_INVALID, NULL, "\"kty\" must be \"EC\" or \"RSA\"");
    }
    st = check_usage(jwk, type, err);
    if (st != CL_OK) {
        return st;
    }
    k = jwk_new(kid, type, false);
    if (k == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    st = type == CL__JWK_EC ? ec_from_json(jwk, k, err) : rsa_from_json(jwk, k, err);
    if (st != CL_OK) {
        cl_jwk_free(k);
        return st;
    }
    *out = k;
    return CL_OK;
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
