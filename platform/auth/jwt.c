/* Signing and verifying compact JWS tokens with ES256 and RS256 (cleave/jwt.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth_internal.h"

/*
 * A header is a few short members; one longer than this is refused before it is parsed,
 * so that a hostile token cannot make the header parser work on kilobytes.
 */
#define HEADER_MAX  1024
/* The decoded payload of a token of CL_JWT_MAX_LEN. */
#define PAYLOAD_MAX (CL_JWT_MAX_LEN / 4 * 3)
/* The most audiences an aud array may list. */
#define AUD_MAX     32

/* --- signing ---------------------------------------------------------------------- */

static cl_status check_signer(const cl_jwk *key, cl_error *err)
{
    if (key == NULL || !key->has_private) {
        return cl_error_set(err, CL_INVALID, "key", "signing needs a key with its private part");
    }
    return CL_OK;
}

cl_status cl_jws_sign_raw(const cl_jwk *key, const void *header, size_t header_len,
                          const void *payload, size_t payload_len, char **out, cl_error *err)
{
    unsigned char sig[CL__JWS_SIG_MAX];
    size_t sig_len = 0;
    size_t hlen = CL_BASE64URL_LEN(header_len);
    size_t plen = CL_BASE64URL_LEN(payload_len);
    size_t size = hlen + 1 + plen + 1 + CL_BASE64URL_LEN(sizeof(sig)) + 1;
    char *jws = NULL;
    cl_status st = CL_OK;

    st = check_signer(key, err);
    if (st != CL_OK) {
        goto out;
    }
    if (header_len == 0 || payload_len == 0) {
        st = cl_error_set(err, CL_INVALID, NULL, "header and payload must not be empty");
        goto out;
    }
    jws = malloc(size);
    if (jws == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    cl_base64url_encode(header, header_len, jws, size);
    jws[hlen] = '.';
    cl_base64url_encode(payload, payload_len, jws + hlen + 1, size - hlen - 1);
    st = cl__jwk_sign(key, jws, hlen + 1 + plen, sig, &sig_len, err);
    if (st != CL_OK) {
        goto out;
    }
    jws[hlen + 1 + plen] = '.';
    cl_base64url_encode(sig, sig_len, jws + hlen + 1 + plen + 1, size - hlen - plen - 2);
    *out = jws;
    jws = NULL;
out:
    free(jws);
    return st;
}

cl_status cl_jwt_sign(const cl_jwk *key, json_t *claims, char **out, cl_error *err)
{
    json_t *header = NULL;
    char *htext = NULL;
    char *ptext = NULL;
    cl_status st = CL_OK;

    st = check_signer(key, err);
    if (st != CL_OK) {
        goto out;
    }
    if (!json_is_object(claims)) {
        st = cl_error_set(err, CL_INVALID, "claims", "the claims must be a JSON object");
        goto out;
    }
    header = json_pack("{s:s, s:s, s:s}", "alg", cl__jwk_type_alg(key->type), "typ", "JWT", "kid",
                       key->kid);
    htext = header == NULL ? NULL : json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ptext = json_dumps(claims, JSON_COMPACT);
    if (htext == NULL || ptext == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = cl_jws_sign_raw(key, htext, strlen(htext), ptext, strlen(ptext), out, err);
out:
    free(ptext);
    free(htext);
    json_decref(header);
    return st;
}

/* --- verifying -------------------------------------------------------------------- */

static cl_status refuse(cl_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Every refusal is CL_UNAUTHORIZED; the message is for the log, never for the caller. */
static cl_status refuse(cl_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)cl_error_vset(err, CL_UNAUTHORIZED, NULL, fmt, ap);
    va_end(ap);
    return CL_UNAUTHORIZED;
}

/* s, or a placeholder when it could smuggle control characters into a log line. */
static const char *loggable(const char *s)
{
    return cl__kid_valid(s) ? s : "(not printable)";
}

/* refuse() for the functions that answer with a pointer: always NULL. */
#define refused(...) (refuse(__VA_ARGS__), NULL)

/* Parses part (a decoded header or payload) as a JSON object, or says why not. */
static cl_status parse_object(const char *what, const unsigned char *text, size_t n, json_t **out,
                              cl_error *err)
{
    json_error_t jerr;
    /* JSON_DECODE_ANY, so that a scalar is told apart from text that is not JSON at all. */
    json_t *obj =
        json_loadb((const char *)text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

    if (obj == NULL && json_error_code(&jerr) == json_error_duplicate_key) {
        return refuse(err, "%s repeats a member name", what);
    }
    if (obj == NULL) {
        return refuse(err, "%s is not JSON", what);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return refuse(err, "%s is not a JSON object", what);
    }
    *out = obj;
    return CL_OK;
}

/*
 * The key the header names, after its alg is checked against the two algorithms there
 * are and then against that key: a token never picks its own verification. NULL when the
 * token is refused (err says why).
 */
static const cl_jwk *header_key(const json_t *header, const cl_jwks *keys, cl_error *err)
{
    const char *alg = json_string_value(json_object_get(header, "alg"));
    const json_t *typ = json_object_get(header, "typ");
    const json_t *kidv = json_object_get(header, "kid");
    const char *kid = json_string_value(kidv);
    const cl_jwk *k = NULL;

    if (alg == NULL) {
        return refused(err, "header has no alg");
    }
    if (strcasecmp(alg, "none") == 0) {
        return refused(err, "alg none is refused: tokens must be signed");
    }
    if (strncasecmp(alg, "HS", 2) == 0) {
        return refused(err, "HMAC alg %s is refused: only ES256 and RS256 are accepted",
                       loggable(alg));
    }
    if (strcmp(alg, "ES256") != 0 && strcmp(alg, "RS256") != 0) {
        return refused(err, "alg %s is not accepted (ES256, RS256)", loggable(alg));
    }
    /* RFC 7515 section 4.1.11: a critical extension we do not know makes the token invalid. */
    if (json_object_get(header, "crit") != NULL) {
        return refused(err, "header has crit extensions, none of which are supported");
    }
    if (typ != NULL &&
        (!json_is_string(typ) || (strcasecmp(json_string_value(typ), "JWT") != 0 &&
                                  strcasecmp(json_string_value(typ), "at+jwt") != 0 &&
                                  strcasecmp(json_string_value(typ), "application/at+jwt") != 0))) {
        return refused(err, "typ is neither JWT nor at+jwt");
    }
    if (kidv == NULL) {
        return refused(err, "header has no kid");
    }
    if (!cl__kid_valid(kid)) {
        return refused(err, "kid is not 1 to %d printable characters", CL_JWK_KID_MAX);
    }
    k = cl_jwks_find(keys, kid);
    if (k == NULL) {
        return refused(err, "no key has kid %s", kid);
    }
    if (strcmp(alg, cl__jwk_type_alg(k->type)) != 0) {
        return refused(err, "alg %s does not match key %s, which is %s", alg, kid,
                       cl__jwk_type_alg(k->type));
    }
    return k;
}

/* Checks sig over input[n] with key; for ES256, sig is R || S and becomes DER here. */
static cl_status check_signature(const cl_jwk *key, const char *input, size_t n,
                                 const unsigned char *sig, size_t sig_len, cl_error *err)
{
    if (key->type == CL__JWK_EC && sig_len != CL__ES256_SIG_LEN) {
        return refuse(err, "ES256 signature is %zu bytes, not 64 (R || S)", sig_len);
    }
    if (!cl__jwk_verifies(key, input, n, sig, sig_len)) {
        return refuse(err, "signature does not verify with key %s", key->kid);
    }
    return CL_OK;
}

/*
 * The NumericDate claim name of claims in *out. CL_NOT_FOUND when absent; refused when
 * it is not a number in the range of int64_t seconds.
 */
static cl_status time_claim(const json_t *claims, const char *name, int64_t *out, cl_error *err)
{
    const json_t *v = json_object_get(claims, name);
    double d = 0;

    if (v == NULL) {
        return CL_NOT_FOUND;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return CL_OK;
    }
    d = json_is_real(v) ? json_real_value(v) : 0;
    if (!json_is_real(v) || !(d > -9.0e18 && d < 9.0e18)) {
        return refuse(err, "%s is not a number of seconds", name);
    }
    /* Fractions of a second count as the second they are in (RFC 7519 NumericDate). */
    *out = (int64_t)d;
    return CL_OK;
}

/* An optional time claim must not lie more than leeway in the future. */
static cl_status check_not_future(const json_t *claims, const char *name, const char *what,
                                  int64_t now, int64_t leeway, cl_error *err)
{
    int64_t at = 0;
    cl_status st = time_claim(claims, name, &at, err);

    if (st == CL_NOT_FOUND) {
        return CL_OK;
    }
    if (st == CL_OK && at > now + leeway) {
        return refuse(err, "token %s %lld (%s; now %lld, leeway %lld s)", what, (long long)at, name,
                      (long long)now, (long long)leeway);
    }
    return st;
}

static cl_status check_times(const json_t *claims, int64_t now, int64_t leeway, cl_error *err)
{
    int64_t exp = 0;
    cl_status st = time_claim(claims, "exp", &exp, err);

    if (st == CL_NOT_FOUND) {
        return refuse(err, "token has no exp: tokens must expire");
    }
    if (st != CL_OK) {
        return st;
    }
    /* Written so that no sum can overflow: now and leeway are small, exp is anything. */
    if (now - leeway >= exp) {
        return refuse(err, "token expired at %lld (now %lld, leeway %lld s)", (long long)exp,
                      (long long)now, (long long)leeway);
    }
    st = check_not_future(claims, "nbf", "is not valid before", now, leeway, err);
    if (st != CL_OK) {
        return st;
    }
    return check_not_future(claims, "iat", "is issued in the future at", now, leeway, err);
}

static cl_status check_audience(const json_t *claims, const char *audience, cl_error *err)
{
    const json_t *aud = json_object_get(claims, "aud");
    size_t i = 0;
    const json_t *one = NULL;

    if (json_is_string(aud)) {
        if (strcmp(json_string_value(aud), audience) == 0) {
            return CL_OK;
        }
        return refuse(err, "aud %s is not %s", loggable(json_string_value(aud)), audience);
    }
    if (!json_is_array(aud)) {
        return refuse(err, "token has no aud (a string or an array of strings)");
    }
    if (json_array_size(aud) > AUD_MAX) {
        return refuse(err, "aud lists %zu audiences, more than %d", json_array_size(aud), AUD_MAX);
    }
    json_array_foreach (aud, i, one) {
        if (json_is_string(one) && strcmp(json_string_value(one), audience) == 0) {
            return CL_OK;
        }
    }
    return refuse(err, "aud does not list %s", audience);
}

static cl_status check_claims(const json_t *claims, const cl_jwt_policy *p, int64_t now,
                              cl_error *err)
{
    const json_t *iss = json_object_get(claims, "iss");
    cl_status st = check_times(claims, now, p->leeway_s, err);

    if (st != CL_OK) {
        return st;
    }
    if (!json_is_string(iss)) {
        return refuse(err, "token has no iss");
    }
    if (strcmp(json_string_value(iss), p->issuer) != 0) {
        return refuse(err, "iss %s is not the expected issuer %s", loggable(json_string_value(iss)),
                      p->issuer);
    }
    return check_audience(claims, p->audience, err);
}

cl_status cl_jwt_verify(const char *token, const cl_jwks *keys, const cl_jwt_policy *p,
                        json_t **claims, cl_error *err)
{
    unsigned char header_bytes[HEADER_MAX];
    unsigned char payload_bytes[PAYLOAD_MAX];
    unsigned char sig[CL__JWS_SIG_MAX];
    size_t len = 0, header_len = 0, payload_len = 0, sig_len = 0;
    const char *dot1 = NULL, *dot2 = NULL;
    json_t *header = NULL, *payload = NULL;
    const cl_jwk *key = NULL;
    int64_t now = 0;
    cl_status st = CL_OK;

    if (p == NULL || p->issuer == NULL || p->audience == NULL || p->leeway_s < 0 ||
        p->leeway_s > CL_JWT_MAX_LEEWAY || keys == NULL) {
        st = cl_error_set(err, CL_INVALID, "policy",
                          "a policy needs an issuer, an audience and a leeway of 0 to %d s",
                          CL_JWT_MAX_LEEWAY);
        goto out;
    }
    now = p->now_s != 0 ? p->now_s : (int64_t)time(NULL);
    len = token == NULL ? 0 : strnlen(token, CL_JWT_MAX_LEN + 1);
    if (len > CL_JWT_MAX_LEN) {
        st = refuse(err, "token is longer than %d bytes", CL_JWT_MAX_LEN);
        goto out;
    }
    dot1 = token == NULL ? NULL : memchr(token, '.', len);
    dot2 = dot1 == NULL ? NULL : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    /*
     * An empty signature is let through to the header checks, so that an unsigned token
     * ("alg":"none", which has one) is refused for what it is.
     */
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL ||
        dot1 == token || dot2 == dot1 + 1) {
        st = refuse(err, "token is not three dot-separated parts (compact JWS)");
        goto out;
    }
    if (cl_base64url_decode(token, (size_t)(dot1 - token), header_bytes, sizeof(header_bytes),
                            &header_len, NULL) != CL_OK) {
        st = refuse(err, "header is not base64url (of at most %d bytes)", HEADER_MAX);
        goto out;
    }
    if (cl_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload_bytes,
                            sizeof(payload_bytes), &payload_len, NULL) != CL_OK) {
        st = refuse(err, "payload is not base64url");
        goto out;
    }
    if (cl_base64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig), &sig_len,
                            NULL) != CL_OK) {
        st = refuse(err, "signature is not base64url (of at most %d bytes)", CL__JWS_SIG_MAX);
        goto out;
    }
    st = parse_object("header", header_bytes, header_len, &header, err);
    if (st != CL_OK) {
        goto out;
    }
    key = header_key(header, keys, err);
    if (key == NULL) {
        st = CL_UNAUTHORIZED;
        goto out;
    }
    st = check_signature(key, token, (size_t)(dot2 - token), sig, sig_len, err);
    /* Only a payload whose signature holds is parsed at all. */
    st = st == CL_OK ? parse_object("payload", payload_bytes, payload_len, &payload, err) : st;
    st = st == CL_OK ? check_claims(payload, p, now, err) : st;
    if (st != CL_OK) {
        goto out;
    }
    *claims = payload;
    payload = NULL;
out:
    json_decref(payload);
    json_decref(header);
    return st;
}
