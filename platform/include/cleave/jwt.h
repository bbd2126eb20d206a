/*
 * cleave/jwt.h - signed tokens (JWT, RFC 7519) with asymmetric keys (JWK and JWKS,
 * RFC 7517/7518), a cache of verified tokens and a constant-time comparison for secrets.
 * Library cleave_auth (Cleave::auth); ADR 0024 (signed tokens) says why it is shaped so.
 *
 * Algorithms: ES256 (ECDSA on P-256 with SHA-256, the signature the 64-byte R||S form of
 * RFC 7518 section 3.4) and RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 to
 * 8192 bits). Nothing else is ever accepted: not "none", not HMAC (HS256, HS384, HS512),
 * and a token's "alg" must be the algorithm of the key its "kid" names, so a token can
 * never choose how it is checked.
 *
 * Ownership follows jansson: "new ref" is the caller's to json_decref, "borrowed" is not.
 * Every function accepts a NULL err. Free functions accept NULL. Keys and key sets are
 * immutable once built and may be shared by threads; the cache is thread-safe.
 */
#ifndef CLEAVE_JWT_H
#define CLEAVE_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"

/* The longest compact token cl_jwt_verify reads, in bytes; a longer one is refused. */
#define CL_JWT_MAX_LEN    8192
/* The longest kid, in bytes (printable ASCII without spaces, at least one character). */
#define CL_JWK_KID_MAX    128
/* The most keys a JWKS may hold, and the longest JWKS document cl_jwks_parse reads. */
#define CL_JWKS_MAX_KEYS  64
#define CL_JWKS_MAX_LEN   ((size_t)256 * 1024)
/* The largest clock skew a policy may allow, in seconds. */
#define CL_JWT_MAX_LEEWAY 300

typedef struct cl_jwk cl_jwk;   /* one key: public only, or with its private part */
typedef struct cl_jwks cl_jwks; /* a set of public keys, looked up by kid */

/* --- keys ------------------------------------------------------------------------- */

/*
 * A new P-256 key pair (alg ES256) named kid, in *out (the caller's; cl_jwk_free).
 * CL_OK; CL_INVALID for a kid that is empty, too long or not printable ASCII;
 * CL_INTERNAL when OpenSSL fails.
 */
cl_status cl_jwk_generate(const char *kid, cl_jwk **out, cl_error *err);

/*
 * A key pair from an unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"): EC on P-256
 * (alg ES256) or RSA of 2048 to 8192 bits (alg RS256). CL_OK and *out (the caller's);
 * CL_INVALID for anything else (another curve, a short RSA key, an encrypted or public
 * key, a traditional "EC/RSA PRIVATE KEY" PEM, garbage), with the reason in err.
 */
cl_status cl_jwk_from_pem(const char *kid, const char *pem, cl_jwk **out, cl_error *err);

/* The private key as a PKCS#8 PEM (malloc'd, the caller frees); NULL for a public key. */
char *cl_jwk_private_pem(const cl_jwk *k);

/*
 * The public key as a JWK (new ref): {"kty":"EC","crv":"P-256","x","y"} or
 * {"kty":"RSA","n","e"}, plus "kid", "use":"sig" and "alg". Never the private part.
 * NULL only when out of memory.
 */
json_t *cl_jwk_public_json(const cl_jwk *k);

/* Borrowed, valid as long as k: the key's id and its algorithm ("ES256" or "RS256"). */
const char *cl_jwk_kid(const cl_jwk *k);
const char *cl_jwk_alg(const cl_jwk *k);
/* Whether k holds a private part (can sign). */
bool cl_jwk_has_private(const cl_jwk *k);

void cl_jwk_free(cl_jwk *k);

/* --- key sets --------------------------------------------------------------------- */

/* An empty set (the caller's; cl_jwks_free); NULL only when out of memory. */
cl_jwks *cl_jwks_new(void);

/*
 * Adds the public part of k (a copy: k stays the caller's). CL_OK; CL_INVALID when the
 * set already has a key with k's kid or holds CL_JWKS_MAX_KEYS; CL_INTERNAL on failure.
 */
cl_status cl_jwks_add(cl_jwks *s, const cl_jwk *k, cl_error *err);

/*
 * Removes the key named kid (when a rotated-out key's last token has expired).
 * CL_OK; CL_NOT_FOUND when there is none.
 */
cl_status cl_jwks_remove(cl_jwks *s, const char *kid, cl_error *err);

/*
 * A set from a JWKS document ({"keys":[...]}, at most CL_JWKS_MAX_LEN bytes). Every key
 * must be a public EC P-256 or RSA (>= 2048 bits) signing key with a kid; "alg", "use"
 * and "key_ops", when present, must agree (ES256/RS256, "sig", containing "verify").
 * A key that does not qualify, private members ("d", ...), a duplicate kid or duplicate
 * JSON member names make the whole document CL_INVALID with err naming the key
 * (field "keys[2]"): a bad key is never silently skipped. CL_OK and *out (the caller's).
 */
cl_status cl_jwks_parse(const char *json, size_t len, cl_jwks **out, cl_error *err);

/* The set as a JWKS document (new ref): {"keys":[...]} in the order the keys were added. */
json_t *cl_jwks_json(const cl_jwks *s);

size_t cl_jwks_count(const cl_jwks *s);
/* The key named kid (borrowed, valid until it is removed or s freed), or NULL. */
const cl_jwk *cl_jwks_find(const cl_jwks *s, const char *kid);

void cl_jwks_free(cl_jwks *s);

/* --- signing and verifying -------------------------------------------------------- */

/*
 * Signs claims (borrowed; a JSON object) with key: header {"alg","typ":"JWT","kid"}.
 * CL_OK and *out, the compact JWS (malloc'd, the caller frees); CL_INVALID when key has
 * no private part or claims is not an object; CL_INTERNAL when OpenSSL fails. The
 * claims are signed as given: the issuer sets iss, aud, sub, exp, iat, nbf, jti.
 */
cl_status cl_jwt_sign(const cl_jwk *key, json_t *claims, char **out, cl_error *err);

/*
 * Signs the exact bytes header.payload with key's own algorithm, whatever the header
 * says (malloc'd compact JWS in *out). For tests and tools that must make tokens
 * cl_jwt_sign would not (a header with another alg, a payload that is not JSON); an
 * issuer uses cl_jwt_sign. CL_INVALID without a private part; CL_INTERNAL on failure.
 */
cl_status cl_jws_sign_raw(const cl_jwk *key, const void *header, size_t header_len,
                          const void *payload, size_t payload_len, char **out, cl_error *err);

typedef struct cl_jwt_policy {
    const char *issuer;   /* iss must equal this (required) */
    const char *audience; /* aud (string, or array) must contain this (required) */
    int64_t leeway_s;     /* allowed clock skew for exp, nbf, iat: 0 to CL_JWT_MAX_LEEWAY */
    int64_t now_s;        /* 0 means the real clock (tests pass a fixed time) */
} cl_jwt_policy;

/*
 * Verifies a compact JWS token against keys and policy p.
 *
 * CL_OK and *claims (new ref: the payload object). CL_UNAUTHORIZED when the token is
 * refused, with err->message saying exactly why (for logs; it never quotes the token):
 * longer than CL_JWT_MAX_LEN, not three base64url parts, a header or payload that is not
 * a JSON object or repeats a member, alg none, an HMAC alg, an alg other than ES256 and
 * RS256, a "crit" header, an unexpected "typ", no kid, an unknown kid, an alg that is not
 * the key's, a bad signature (an ES256 one must be 64 bytes of R||S), no exp, exp past
 * (now >= exp + leeway), nbf or iat in the future (> now + leeway), a time claim that is
 * not a number, an iss other than p->issuer, an aud without p->audience.
 * CL_INVALID when p is not a usable policy (no issuer or audience, leeway out of range).
 *
 * The signature is checked before any claim is read. No locks; safe from any thread.
 */
cl_status cl_jwt_verify(const char *token, const cl_jwks *keys, const cl_jwt_policy *p,
                        json_t **claims, cl_error *err);

/* --- the cache of verified tokens ------------------------------------------------- */

/*
 * Verified tokens' claims by the SHA-256 of the token, each until its exp. At most
 * capacity entries: when a token's slots are full the one that expires first makes room.
 * Thread-safe: the table is split into 16 stripes, each behind its own read-write lock,
 * chosen by the hash; lookups share a stripe's read lock, so the many requests bearing one
 * token do not queue behind each other. A hit costs a SHA-256 and a read lock; the claims
 * it hands out are either a copy (cl_jwt_cache_get, cl_jwt_verify_cached) or the cached
 * claims themselves, read-only and counted (cl_jwt_verify_shared).
 */
typedef struct cl_jwt_cache cl_jwt_cache;

/* A cache of at most capacity (>= 1) entries; NULL when capacity is 0 or out of memory. */
cl_jwt_cache *cl_jwt_cache_new(size_t capacity);

/*
 * A copy of the claims cached for token if it is there and now_s < its exp (new ref, the
 * caller's alone), else NULL (also when out of memory).
 */
json_t *cl_jwt_cache_get(cl_jwt_cache *c, const char *token, int64_t now_s);

/* Caches a copy of claims (borrowed) for token until exp_s. Put again to replace. */
void cl_jwt_cache_put(cl_jwt_cache *c, const char *token, json_t *claims, int64_t exp_s);

/*
 * Forgets every entry: call it when a key is removed from the set, so that tokens of a
 * withdrawn key stop being accepted before they expire.
 */
void cl_jwt_cache_clear(cl_jwt_cache *c);

/* How many unexpired entries the cache holds at now_s (for tests and metrics). */
size_t cl_jwt_cache_count(cl_jwt_cache *c, int64_t now_s);

void cl_jwt_cache_free(cl_jwt_cache *c);

/*
 * cl_jwt_verify through cache c (which may be NULL): a hit returns a copy of the cached
 * claims without checking the signature again; a miss verifies and caches
 * the claims until their exp. Same statuses as cl_jwt_verify. A cache remembers what
 * passed one policy and one key set: use one cache per policy, and clear it when a key
 * is removed from the set.
 */
cl_status cl_jwt_verify_cached(cl_jwt_cache *c, const char *token, const cl_jwks *keys,
                               const cl_jwt_policy *p, json_t **claims, cl_error *err);

/*
 * Verified claims shared by the cache and its readers: immutable once made, counted by
 * reference (an atomic count), freed with the last reference.
 */
typedef struct cl_jwt_claims cl_jwt_claims;

/* The claims object (borrowed, valid while c is held). Read it only: others share it. */
const json_t *cl_jwt_claims_json(const cl_jwt_claims *c);

/* Gives back a reference from cl_jwt_verify_shared; NULL is a no-op. */
void cl_jwt_claims_release(cl_jwt_claims *c);

/*
 * cl_jwt_verify_cached without the copy: *claims is a new reference to the cached claims
 * (or, when the cache is NULL or full of nothing, to fresh ones), to be given back with
 * cl_jwt_claims_release. A hit allocates nothing. Same statuses as cl_jwt_verify.
 */
cl_status cl_jwt_verify_shared(cl_jwt_cache *c, const char *token, const cl_jwks *keys,
                               const cl_jwt_policy *p, cl_jwt_claims **claims, cl_error *err);

/* --- helpers ---------------------------------------------------------------------- */

/*
 * Whether a[alen] and b[blen] are equal, in time that depends on the lengths only, never
 * on the contents (for client secrets, PKCE verifiers, tokens). Different lengths are
 * unequal (lengths are not secret: hash both sides first when they are).
 */
bool cl_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

/* The base64url (RFC 4648 section 5, no padding) length of n bytes, without the NUL. */
#define CL_BASE64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/*
 * Encodes in[n] as base64url without padding into out[size] with a NUL. Returns the
 * length written, or 0 (out untouched) when it does not fit (n == 0 also returns 0).
 */
size_t cl_base64url_encode(const void *in, size_t n, char *out, size_t size);

/*
 * Decodes in[n] (base64url, no padding, no other characters, unused bits zero) into
 * out[size]; *out_len is the decoded length. CL_OK; CL_INVALID for a bad encoding or an
 * output that does not fit (out is then unspecified).
 */
cl_status cl_base64url_decode(const char *in, size_t n, void *out, size_t size, size_t *out_len,
                              cl_error *err);

#endif
