/*
 * Access tokens and signing keys: JWTs signed with the platform's cleave_auth
 * (cleave/jwt.h, ES256 over P-256 keys) whose keys this module keeps as PKCS#8 PEM in
 * signing_keys (ADR 0027).
 *
 * The newest key without not_after signs. rotate_keys gives the signer a not_after of now
 * plus one access token lifetime and makes a new signer: the old key stays in the JWKS
 * exactly as long as a token it signed can still be valid, then leaves it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleave/db.h"
#include "cleave/jwt.h"
#include "cleave/util.h"
#include "internal.h"

/* Tolerated clock difference for exp and nbf, in seconds (the gateway's too, ADR 0024). */
#define LEEWAY_S 30
/* "k" and 16 hex digits: a kid says nothing about the key, it only names it. */
#define KID_SIZE 40

static const char signer_sql[] = "SELECT kid, private_pem FROM signing_keys "
                                 "WHERE not_after_ms IS NULL ORDER BY created_ms DESC LIMIT 1";
static const char live_keys_sql[] = "SELECT kid, private_pem FROM signing_keys "
                                    "WHERE not_after_ms IS NULL OR not_after_ms > ? "
                                    "ORDER BY created_ms DESC";
static const char retire_sql[] = "UPDATE signing_keys SET not_after_ms = ? "
                                 "WHERE not_after_ms IS NULL RETURNING kid";
static const char insert_key_sql[] = "INSERT INTO signing_keys (kid, private_pem, created_ms) "
                                     "VALUES (?, ?, ?)";

/* --- keys ---------------------------------------------------------------------------- */

/* Inserts a new P-256 key into the open transaction on conn; kid receives its kid. */
static cl_status insert_new_key(cl_ctx *ctx, cl_db_conn *conn, char kid[KID_SIZE])
{
    cl_jwk *k = NULL;
    char *pem = NULL;
    cl_stmt *st = NULL;
    cl_status rc;

    rc = cl_random_id("k", 8, kid, KID_SIZE, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_jwk_generate(kid, &k, &ctx->err);
    }
    if (rc == CL_OK) {
        pem = cl_jwk_private_pem(k);
        rc = pem != NULL ? CL_OK : cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, insert_key_sql, &st, "tti", kid, pem, cl_wall_ms());
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    free(pem);
    cl_jwk_free(k);
    return rc;
}

/* A stored key, parsed; CL_INTERNAL naming the kid when the row is unreadable. */
static cl_status stored_key(cl_ctx *ctx, const char *kid, const char *pem, cl_jwk **out)
{
    if (cl_jwk_from_pem(kid, pem, out, &ctx->err) != CL_OK) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "stored signing key %s is unreadable: %s", kid,
                       ctx->err.message);
    }
    return CL_OK;
}

/*
 * The keys of tokens that may still be valid (the signer and those it replaced less than
 * one token lifetime ago) into *out (cl_jwks_free), newest first.
 */
static cl_status live_keys(struct identity_self *self, cl_ctx *ctx, cl_jwks **out)
{
    cl_jwks *set = cl_jwks_new();
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc = set != NULL ? CL_OK : cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");

    if (rc == CL_OK) {
        rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, live_keys_sql, &st, "i", cl_wall_ms());
    }
    while (rc == CL_OK && (rc = cl_stmt_step(st, &row, &ctx->err)) == CL_OK && row) {
        cl_jwk *k = NULL;

        rc = stored_key(ctx, cl_stmt_text(st, 0), cl_stmt_text(st, 1), &k);
        if (rc == CL_OK) {
            rc = cl_jwks_add(set, k, &ctx->err);
        }
        cl_jwk_free(k);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *out = set;
    } else {
        cl_jwks_free(set);
    }
    return rc;
}

/*
 * In one transaction: runs sql (retiring the signer, or only looking for it), whose first
 * row's first column is the signer it found, into previous; then makes a new signer
 * (kid), unless only_if_none and there was one.
 */
static cl_status new_signer(struct identity_self *self, cl_ctx *ctx, const char *sql,
                            int64_t not_after, bool only_if_none, char previous[KID_SIZE],
                            char kid[KID_SIZE])
{
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc;

    previous[0] = '\0';
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = only_if_none ? cl_db_prepare_bind(ctx, conn, sql, &st, "")
                          : cl_db_prepare_bind(ctx, conn, sql, &st, "i", not_after);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        cl_strlcpy(previous, cl_stmt_text(st, 0), KID_SIZE);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && !(only_if_none && row)) {
        rc = insert_new_key(ctx, conn, kid);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    return rc;
}

cl_status identity_tokens_ensure(struct identity_self *self, cl_ctx *ctx)
{
    char previous[KID_SIZE];
    char kid[KID_SIZE];

    return new_signer(self, ctx, signer_sql, 0, true, previous, kid);
}

cl_status identity_tokens_rotate(struct identity_self *self, cl_ctx *ctx,
                                 identity_key_rotation *out)
{
    char kid[KID_SIZE];
    char previous[KID_SIZE];
    char until[CL_RFC3339_SIZE];
    int64_t not_after = cl_wall_ms() + self->access_s * 1000;
    cl_status rc = new_signer(self, ctx, retire_sql, not_after, false, previous, kid);

    if (rc != CL_OK) {
        return rc;
    }
    cl_rfc3339_format(not_after, until);
    out->kid = cl_strdup(kid);
    out->previous_kid = previous[0] != '\0' ? cl_strdup(previous) : NULL;
    out->previous_not_after = previous[0] != '\0' ? cl_strdup(until) : NULL;
    if (out->kid == NULL || (previous[0] != '\0' && out->previous_not_after == NULL)) {
        cl_schema_free(&identity_key_rotation_type, out);
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    return CL_OK;
}

cl_status identity_tokens_jwks(struct identity_self *self, cl_ctx *ctx, identity_jwks *out)
{
    identity_jwks set = {0};
    cl_jwks *keys = NULL;
    json_t *doc = NULL;
    cl_status rc = live_keys(self, ctx, &keys);

    if (rc == CL_OK && cl_jwks_count(keys) == 0) {
        /*
         * Never an empty set: a verifier that fetched it before the first token would
         * cache a set without the key that signs it. An instance never started makes its
         * first key now.
         */
        cl_jwks_free(keys);
        keys = NULL;
        rc = identity_tokens_ensure(self, ctx);
        if (rc == CL_OK) {
            rc = live_keys(self, ctx, &keys);
        }
    }
    if (rc == CL_OK) {
        doc = cl_jwks_json(keys);
        rc = doc != NULL ? cl_schema_from_json(&identity_jwks_type, doc, 0, &set, &ctx->err)
                         : cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    json_decref(doc);
    cl_jwks_free(keys);
    if (rc == CL_OK) {
        *out = set;
    } else {
        cl_schema_free(&identity_jwks_type, &set);
    }
    return rc;
}

/* --- signing ------------------------------------------------------------------------- */

/*
 * The current signer's kid and PEM from the database, into kid and *pem (free).
 * CL_UNAVAILABLE when there is no key yet.
 */
static cl_status current_signer(struct identity_self *self, cl_ctx *ctx, char *kid, size_t size,
                                char **pem)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc;

    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, signer_sql, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_UNAVAILABLE, NULL, "identity has no signing key");
    }
    if (rc == CL_OK) {
        cl_strlcpy(kid, cl_stmt_text(st, 0), size);
        *pem = cl_strdup(cl_stmt_text(st, 1));
        rc = *pem != NULL ? cl_stmt_drain(st, NULL, &ctx->err)
                          : cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    cl_db_release(conn);
    return rc;
}

/*
 * Signs claims with the signer named kid. The parsed key is kept in the instance and
 * replaced only when rotation changed the signer; signing holds the lock, so a key is
 * never freed while another thread signs with it (an ES256 signature takes microseconds,
 * next to the argon2id hash of a password grant).
 */
static cl_status sign_with(struct identity_self *self, cl_ctx *ctx, const char *kid,
                           const char *pem, json_t *claims, char **out)
{
    cl_status rc = CL_OK;

    pthread_mutex_lock(&self->signer_lock);
    if (self->signer == NULL || strcmp(self->signer_kid, kid) != 0) {
        cl_jwk *fresh = NULL;

        rc = stored_key(ctx, kid, pem, &fresh);
        if (rc == CL_OK) {
            cl_jwk_free(self->signer);
            self->signer = fresh;
            cl_strlcpy(self->signer_kid, kid, sizeof(self->signer_kid));
        }
    }
    if (rc == CL_OK) {
        rc = cl_jwt_sign(self->signer, claims, out, &ctx->err);
    }
    pthread_mutex_unlock(&self->signer_lock);
    return rc;
}

cl_status identity_tokens_sign(struct identity_self *self, cl_ctx *ctx, const identity_claims *c,
                               char **out)
{
    char jti[CL_RANDOM_HEX_SIZE];
    char kid[KID_SIZE];
    char *pem = NULL;
    json_t *claims = NULL;
    json_int_t now = (json_int_t)(cl_wall_ms() / 1000);
    cl_status rc;

    rc = current_signer(self, ctx, kid, sizeof(kid), &pem);
    if (rc == CL_UNAVAILABLE) {
        /* An instance that was never started (no key yet) makes its first one now. */
        rc = identity_tokens_ensure(self, ctx);
        if (rc == CL_OK) {
            rc = current_signer(self, ctx, kid, sizeof(kid), &pem);
        }
    }
    if (rc != CL_OK) {
        return rc;
    }
    cl_random_hex(jti);
    claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:[]}", "iss", self->issuer, "aud", c->aud,
                       "sub", c->sub, "iat", now, "nbf", now, "exp",
                       now + (json_int_t)self->access_s, "jti", jti, "scope", c->scope, "roles");
    if (claims != NULL && c->role != NULL &&
        json_array_append_new(json_object_get(claims, "roles"), json_string(c->role)) != 0) {
        json_decref(claims);
        claims = NULL;
    }
    rc = claims != NULL ? sign_with(self, ctx, kid, pem, claims, out)
                        : cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    json_decref(claims);
    free(pem);
    return rc;
}

/* --- verifying ----------------------------------------------------------------------- */

/*
 * The audience a token names (its aud, or aud's first entry), read before verifying only
 * to tell the verifier which audience to require: userinfo serves a token this issuer
 * signed for any of its clients' audiences. Everything else is checked by cl_jwt_verify.
 */
static int token_audience(const char *token, char *aud, size_t size)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    char payload[CL_JWT_MAX_LEN];
    size_t len = 0;
    json_t *claims;
    json_t *a;
    int rc = -1;

    if (dot2 == NULL || cl_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload,
                                            sizeof(payload), &len, NULL) != CL_OK) {
        return -1;
    }
    claims = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    a = json_object_get(claims, "aud");
    if (json_is_array(a)) {
        a = json_array_get(a, 0);
    }
    if (json_is_string(a) && json_string_length(a) > 0) {
        rc = cl_strlcpy(aud, json_string_value(a), size);
    }
    json_decref(claims);
    return rc;
}

cl_status identity_tokens_verify(struct identity_self *self, cl_ctx *ctx, const char *token,
                                 char *sub, size_t size)
{
    char aud[IDENTITY_NAME_MAX + 1];
    cl_jwks *keys = NULL;
    json_t *claims = NULL;
    cl_status rc;

    if (strlen(token) > CL_JWT_MAX_LEN || token_audience(token, aud, sizeof(aud)) != 0) {
        return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the access token is malformed");
    }
    rc = live_keys(self, ctx, &keys);
    if (rc == CL_OK) {
        cl_jwt_policy p = {.issuer = self->issuer, .audience = aud, .leeway_s = LEEWAY_S};
        cl_error why = {0};

        if (cl_jwt_verify(token, keys, &p, &claims, &why) != CL_OK) {
            rc = cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the access token is invalid: %s",
                         why.message);
        }
    }
    if (rc == CL_OK &&
        (!json_is_string(json_object_get(claims, "sub")) ||
         cl_strlcpy(sub, json_string_value(json_object_get(claims, "sub")), size) != 0)) {
        rc = cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the access token has no usable sub");
    }
    json_decref(claims);
    cl_jwks_free(keys);
    return rc;
}

void identity_tokens_destroy(struct identity_self *self)
{
    cl_jwk_free(self->signer);
    self->signer = NULL;
}
