/* Internal to identity's implementation: the pieces identity.c is made of. */
#ifndef IDENTITY_INTERNAL_H
#define IDENTITY_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"
#include "identity/identity.h"

/* --- passwords (password.c) ---------------------------------------------------------- */

/* argon2id's costs: passes, memory in KiB, lanes (CLEAVE_IDENTITY_ARGON2_*). */
typedef struct identity_argon2 {
    uint32_t t;
    uint32_t m_kib;
    uint32_t p;
} identity_argon2;

/* Longest encoded hash ("$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>") plus NUL. */
#define IDENTITY_HASH_MAX 160

/*
 * Hashes password with argon2id at cost, a fresh 16-byte salt and a 32-byte hash, into
 * out[IDENTITY_HASH_MAX] in the PHC string format (the parameters travel with the hash,
 * so changing the settings never locks out a stored password). CL_INTERNAL in err when
 * there is no randomness or argon2 fails (out of memory).
 */
cl_status identity_password_hash(const identity_argon2 *cost, const char *password,
                                 char out[IDENTITY_HASH_MAX], cl_error *err);
/*
 * 1 when password matches encoded, 0 otherwise (a malformed encoded string included).
 * The comparison inside argon2 is constant-time.
 */
int identity_password_verify(const char *encoded, const char *password);
/*
 * A stored form no password matches, with cost's parameters: random salt and random
 * "hash" bytes encoded as argon2 encodes them. Verifying a password against it costs one
 * argon2id run at cost (what a known user's check costs) and always fails, yet making it
 * costs no hash. CL_INTERNAL in err when there is no randomness.
 */
cl_status identity_password_decoy(const identity_argon2 *cost, char out[IDENTITY_HASH_MAX],
                                  cl_error *err);

/* --- secrets (password.c) ------------------------------------------------------------ */

/* A random secret: 64 lowercase hex digits (32 bytes) and the NUL. */
#define IDENTITY_SECRET_SIZE 65
/* The SHA-256 of a secret, as stored: 64 lowercase hex digits and the NUL. */
#define IDENTITY_DIGEST_SIZE 65

cl_status identity_secret_new(char out[IDENTITY_SECRET_SIZE], cl_error *err);
/* SHA-256 of s as lowercase hex. */
void identity_digest(const char *s, char out[IDENTITY_DIGEST_SIZE]);

/* --- the token endpoint's rate limit (ratelimit.c) ----------------------------------- */

#define IDENTITY_RATE_SLOTS 1024
#define IDENTITY_RATE_KEY   96
/* Slots per chunk: a chunk (7 KiB) is allocated with the first key that hashes into it. */
#define IDENTITY_RATE_CHUNK 64

typedef struct identity_rate_slot {
    char key[IDENTITY_RATE_KEY];
    int64_t window; /* the minute this count belongs to (wall clock ms / 60000) */
    int64_t count;
} identity_rate_slot;

/*
 * A fixed window of one minute per key, in memory: a bounded table (never grows), a
 * key's slot found by hashing and probing a few neighbours; a slot whose minute has passed
 * is free. When every probed slot is taken by another live key, the key shares the first
 * one's count: a caller may then be limited early, never late.
 *
 * The table (112 KiB) is in chunks that come with their first key: written in full at
 * start, it was resident in every process, most of which never see a login (ADR 0047).
 */
typedef struct identity_rate {
    pthread_mutex_t lock;
    int64_t per_minute;
    identity_rate_slot *chunks[IDENTITY_RATE_SLOTS / IDENTITY_RATE_CHUNK];
} identity_rate;

void identity_rate_init(identity_rate *r, int64_t per_minute);
void identity_rate_destroy(identity_rate *r);
/*
 * Counts one request of key at now_ms: 1 when it is within the limit, 0 when over (or
 * when its slot cannot be allocated), with *retry_after_s the seconds until the window ends.
 */
int identity_rate_take(identity_rate *r, const char *key, int64_t now_ms, int64_t *retry_after_s);

/* --- the instance ---------------------------------------------------------------- */

struct cl_db;
struct cl_db_conn;
struct cl_jwk;

/* An instance of identity (cleave/module.h): everything it runs on. */
struct identity_self {
    struct cl_db *db;     /* borrowed from the host for the instance's life */
    char issuer[256];     /* CLEAVE_IDENTITY_ISSUER, or http://CLEAVE_LISTEN */
    int64_t access_s;     /* CLEAVE_IDENTITY_ACCESS_TOKEN_SECONDS */
    int64_t refresh_s;    /* CLEAVE_IDENTITY_REFRESH_TOKEN_SECONDS */
    identity_argon2 cost; /* CLEAVE_IDENTITY_ARGON2_* */
    identity_rate rate;   /* CLEAVE_IDENTITY_TOKEN_RATE */
    /* A stored form no password matches, verified when a user is unknown (identity.c). */
    char decoy[IDENTITY_HASH_MAX];
    /* The current signer, parsed once: kid says which row it is (tokens.c). */
    pthread_mutex_t signer_lock;
    char signer_kid[128];
    struct cl_jwk *signer;
};

/* --- access tokens and signing keys (tokens.c) ---------------------------------------- */

/* What an access token says beyond iss, iat, nbf, exp and jti. */
typedef struct identity_claims {
    const char *sub;
    const char *aud;
    const char *scope;
    const char *role; /* NULL: no role (a service) */
} identity_claims;

/*
 * Signs an access token for c with the current key, lifetime self->access_s; *out is a
 * new string (free). Makes the first key when there is none.
 */
cl_status identity_tokens_sign(struct identity_self *self, cl_ctx *ctx, const identity_claims *c,
                               char **out);
/*
 * Verifies token against the keys in the JWKS (signature, alg ES256, iss, exp, nbf) and
 * returns its sub in sub[size]. CL_UNAUTHORIZED (field "invalid_token") otherwise.
 */
cl_status identity_tokens_verify(struct identity_self *self, cl_ctx *ctx, const char *token,
                                 char *sub, size_t size);
/* The public keys that verify tokens not yet expired: the signer and those it replaced. */
cl_status identity_tokens_jwks(struct identity_self *self, cl_ctx *ctx, identity_jwks *out);
/* Makes a new signer; the old one stays in the JWKS for one access token lifetime. */
cl_status identity_tokens_rotate(struct identity_self *self, cl_ctx *ctx,
                                 identity_key_rotation *out);
/* Makes a signing key when there is none (start-up). */
cl_status identity_tokens_ensure(struct identity_self *self, cl_ctx *ctx);
void identity_tokens_destroy(struct identity_self *self);

#endif /* IDENTITY_INTERNAL_H */
