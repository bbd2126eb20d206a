/*
 * Access tokens and signing keys: ES256 JWTs (RFC 7519, RFC 7518 section 3.4) signed with
 * P-256 keys kept as private PEM in signing_keys (ADR 0023).
 *
 * The newest key without not_after signs. rotate_keys gives the signer a not_after of now
 * plus one access token lifetime and makes a new signer: the old key stays in the JWKS
 * exactly as long as a token it signed can still be valid, then leaves it.
 *
 * The JWS primitives here use OpenSSL directly; they are to move to the platform's
 * cleave_auth library (cleave/jwt.h) once it exists, leaving the key store here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "cleave/db.h"
#include "cleave/util.h"
#include "internal.h"

/* Tolerated clock difference for exp and nbf, in seconds. */
#define LEEWAY_S  30
#define COORD     32 /* bytes of a P-256 coordinate and of r and s */
#define TOKEN_MAX 8192
#define PEM_MAX   1024
#define KID_SIZE  44 /* base64url of a SHA-256 and the NUL */

static const char signer_sql[] = "SELECT kid, private_pem FROM signing_keys "
                                 "WHERE not_after_ms IS NULL ORDER BY created_ms DESC LIMIT 1";
static const char live_keys_sql[] = "SELECT kid, private_pem FROM signing_keys "
                                    "WHERE not_after_ms IS NULL OR not_after_ms > ? "
                                    "ORDER BY created_ms DESC";
static const char key_by_kid_sql[] = "SELECT private_pem FROM signing_keys "
                                     "WHERE kid = ? AND (not_after_ms IS NULL OR not_after_ms > ?)";
static const char retire_sql[] = "UPDATE signing_keys SET not_after_ms = ? "
                                 "WHERE not_after_ms IS NULL RETURNING kid";
static const char insert_key_sql[] = "INSERT INTO signing_keys (kid, private_pem, created_ms) "
                                     "VALUES (?, ?, ?)";
static const char count_keys_sql[] = "SELECT COUNT(*) FROM signing_keys WHERE not_after_ms IS NULL";

/* --- base64url (RFC 4648 section 5, no padding) ---------------------------------------- */

/* Encodes in[n] into out (at least 4 * ceil(n / 3) + 1 bytes). */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    while (len > 0 && out[len - 1] == '=') {
        len--;
    }
    out[len] = '\0';
    for (char *p = out; *p != '\0'; p++) {
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
}

/* Decodes s[n] into a new buffer (free) of *len bytes; NULL when s is not base64url. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *len)
{
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = NULL;
    unsigned char *out = NULL;
    int got;

    if (n % 4 == 1 ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") < n) {
        return NULL;
    }
    tmp = malloc(padded + 1);
    out = malloc(padded / 4 * 3 + 1);
    if (tmp == NULL || out == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < padded; i++) {
        char c = i < n ? s[i] : '=';
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    got = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
    if (got < 0) {
        goto fail;
    }
    /* EVP_DecodeBlock counts the padding's bytes as zeros. */
    *len = (size_t)got - (padded - n);
    free(tmp);
    return out;
fail:
    free(tmp);
    free(out);
    return NULL;
}

/* --- keys ---------------------------------------------------------------------------- */

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    return k;
}

/* The public point's coordinates, base64url, into x and y (each at least 44 bytes). */
static int key_xy(EVP_PKEY *k, char *x, char *y)
{
    BIGNUM *bx = NULL;
    BIGNUM *by = NULL;
    unsigned char raw[COORD];
    int ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
             EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1;

    if (ok && BN_bn2binpad(bx, raw, COORD) == COORD) {
        b64url(raw, COORD, x);
    } else {
        ok = 0;
    }
    if (ok && BN_bn2binpad(by, raw, COORD) == COORD) {
        b64url(raw, COORD, y);
    } else {
        ok = 0;
    }
    BN_free(bx);
    BN_free(by);
    return ok ? 0 : -1;
}

/* kid: the key's RFC 7638 thumbprint, so the same key always has the same kid. */
static int key_kid(EVP_PKEY *k, char kid[KID_SIZE])
{
    char x[48];
    char y[48];
    char canon[200];
    unsigned char md[SHA256_DIGEST_LENGTH];

    if (key_xy(k, x, y) != 0) {
        return -1;
    }
    snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             x, y);
    SHA256((const unsigned char *)canon, strlen(canon), md);
    b64url(md, sizeof(md), kid);
    return 0;
}

/* Inserts a new P-256 key into the open transaction on conn; kid receives its kid. */
static cl_status insert_new_key(cl_ctx *ctx, cl_db_conn *conn, char kid[KID_SIZE])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *pem = NULL;
    long n = 0;
    cl_stmt *st = NULL;
    cl_status rc = CL_OK;

    if (k == NULL || bio == NULL ||
        PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1 || key_kid(k, kid) != 0) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "could not make a P-256 key");
        goto out;
    }
    n = BIO_get_mem_data(bio, &data);
    /* The PEM in the BIO is not NUL-terminated; bind a copy that is. */
    pem = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (pem != NULL) {
        memcpy(pem, data, (size_t)n);
        pem[n] = '\0';
    }
    if (pem == NULL) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = cl_db_prepare_bind(ctx, conn, insert_key_sql, &st, "tti", kid, pem, cl_wall_ms());
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    free(pem);
out:
    BIO_free(bio);
    EVP_PKEY_free(k);
    return rc;
}

cl_status identity_tokens_ensure(struct identity_self *self, cl_ctx *ctx)
{
    char kid[KID_SIZE];
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    int64_t n = 0;
    cl_status rc;

    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, count_keys_sql, &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK) {
        n = row ? cl_stmt_i64(st, 0) : 0;
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK && n == 0) {
        rc = insert_new_key(ctx, conn, kid);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    return rc;
}

cl_status identity_tokens_rotate(struct identity_self *self, cl_ctx *ctx,
                                 identity_key_rotation *out)
{
    char kid[KID_SIZE];
    char previous[KID_SIZE] = "";
    char until[CL_RFC3339_SIZE];
    int64_t not_after = cl_wall_ms() + self->access_s * 1000;
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc;

    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, retire_sql, &st, "i", not_after);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        cl_strlcpy(previous, cl_stmt_text(st, 0), sizeof(previous));
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = insert_new_key(ctx, conn, kid);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
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
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc;

    /* The set is never empty: a verifier that fetched it before the first token must not
     * cache a set without the key that signs it. */
    rc = identity_tokens_ensure(self, ctx);
    if (rc == CL_OK) {
        rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, live_keys_sql, &st, "i", cl_wall_ms());
    }
    while (rc == CL_OK && (rc = cl_stmt_step(st, &row, &ctx->err)) == CL_OK && row) {
        EVP_PKEY *k = pem_key(cl_stmt_text(st, 1));
        identity_jwk *j = CL_LIST_PUSH(set.keys);
        char x[48];
        char y[48];

        if (k == NULL || j == NULL || key_xy(k, x, y) != 0) {
            rc = cl_fail(ctx, CL_INTERNAL, NULL, "a stored signing key is unreadable");
        } else {
            j->kty = cl_strdup("EC");
            j->crv = cl_strdup("P-256");
            j->x = cl_strdup(x);
            j->y = cl_strdup(y);
            j->kid = cl_strdup(cl_stmt_text(st, 0));
            j->use = cl_strdup("sig");
            j->alg = cl_strdup("ES256");
            if (j->kty == NULL || j->crv == NULL || j->x == NULL || j->y == NULL ||
                j->kid == NULL || j->use == NULL || j->alg == NULL) {
                rc = cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
            }
        }
        EVP_PKEY_free(k);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *out = set;
    } else {
        cl_schema_free(&identity_jwks_type, &set);
    }
    return rc;
}

/* --- signing ------------------------------------------------------------------------- */

/* The current signer, parsed once per key (the PEM is read each time, parsing is not). */
static cl_status current_signer(struct identity_self *self, cl_ctx *ctx, char kid[KID_SIZE],
                                EVP_PKEY **key)
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
        cl_strlcpy(kid, cl_stmt_text(st, 0), KID_SIZE);
        pthread_mutex_lock(&self->signer_lock);
        if (self->signer == NULL || strcmp(self->signer_kid, kid) != 0) {
            EVP_PKEY_free(self->signer);
            self->signer = pem_key(cl_stmt_text(st, 1));
            cl_strlcpy(self->signer_kid, kid, sizeof(self->signer_kid));
        }
        if (self->signer != NULL && EVP_PKEY_up_ref(self->signer) == 1) {
            *key = self->signer;
        } else {
            rc = cl_fail(ctx, CL_INTERNAL, NULL, "the signing key is unreadable");
        }
        pthread_mutex_unlock(&self->signer_lock);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
        if (rc != CL_OK) {
            EVP_PKEY_free(*key);
        }
    }
    cl_db_release(conn);
    return rc;
}

/* ES256 over input: the JWS signature r || s, base64url, into out (at least 88 bytes). */
static int es256_sign(EVP_PKEY *k, const char *input, char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[80];
    unsigned char raw[2 * COORD];
    const unsigned char *p = der;
    size_t n = sizeof(der);
    ECDSA_SIG *sig = NULL;
    int ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestSign(md, der, &n, (const unsigned char *)input, strlen(input)) == 1;

    sig = ok ? d2i_ECDSA_SIG(NULL, &p, (long)n) : NULL;
    ok = sig != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, COORD) == COORD &&
         BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + COORD, COORD) == COORD;
    if (ok) {
        b64url(raw, sizeof(raw), out);
    }
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* The base64url of a JSON value (stolen), in a new string. */
static char *b64url_json(json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    char *out = text != NULL ? malloc(strlen(text) / 3 * 4 + 8) : NULL;

    if (out != NULL) {
        b64url((const unsigned char *)text, strlen(text), out);
    }
    free(text);
    json_decref(j);
    return out;
}

cl_status identity_tokens_sign(struct identity_self *self, cl_ctx *ctx, const identity_claims *c,
                               char **out)
{
    char kid[KID_SIZE];
    char jti[CL_RANDOM_HEX_SIZE];
    char sig[100];
    EVP_PKEY *key = NULL;
    json_t *claims;
    char *header = NULL;
    char *payload = NULL;
    char *token = NULL;
    int64_t now = cl_wall_ms() / 1000;
    size_t len;
    cl_status rc;

    rc = current_signer(self, ctx, kid, &key);
    if (rc == CL_UNAVAILABLE) {
        /* An instance that was never started (no key yet) makes its first one now. */
        rc = identity_tokens_ensure(self, ctx);
        if (rc == CL_OK) {
            rc = current_signer(self, ctx, kid, &key);
        }
    }
    if (rc != CL_OK) {
        return rc;
    }
    cl_random_hex(jti);
    claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:[]}", "iss", self->issuer, "aud", c->aud,
                       "sub", c->sub, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                       (json_int_t)(now + self->access_s), "jti", jti, "scope", c->scope, "roles");
    if (claims != NULL && c->role != NULL) {
        json_array_append_new(json_object_get(claims, "roles"), json_string(c->role));
    }
    header = b64url_json(json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", "at+jwt", "kid", kid));
    payload = b64url_json(claims);
    len =
        header != NULL && payload != NULL ? strlen(header) + strlen(payload) + 2 + sizeof(sig) : 0;
    token = len > 0 ? malloc(len) : NULL;
    if (token == NULL) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    snprintf(token, len, "%s.%s", header, payload);
    if (es256_sign(key, token, sig) != 0) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "signing the token failed");
        goto out;
    }
    strcat(token, ".");
    strcat(token, sig);
    *out = token;
    token = NULL;
out:
    free(token);
    free(header);
    free(payload);
    EVP_PKEY_free(key);
    return rc;
}

/* --- verifying ----------------------------------------------------------------------- */

static int es256_verify(EVP_PKEY *k, const char *input, size_t n, const unsigned char *raw,
                        size_t rawlen)
{
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *sig = NULL;
    unsigned char *der = NULL;
    BIGNUM *r = NULL;
    BIGNUM *s = NULL;
    int derlen;
    int ok = 0;

    if (rawlen != 2 * COORD) {
        return 0;
    }
    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, COORD, NULL);
    s = BN_bin2bn(raw + COORD, COORD, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    derlen = i2d_ECDSA_SIG(sig, &der);
    md = EVP_MD_CTX_new();
    ok = derlen > 0 && md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
         EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)input, n) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(sig);
    return ok;
}

static json_t *b64url_json_parse(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *raw = b64url_decode(s, n, &len);
    json_t *j =
        raw != NULL ? json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL) : NULL;

    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static cl_status bad_token(cl_ctx *ctx, const char *why)
{
    return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the access token is invalid: %s", why);
}

cl_status identity_tokens_verify(struct identity_self *self, cl_ctx *ctx, const char *token,
                                 char *sub, size_t size)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    json_t *header = NULL;
    json_t *claims = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_PKEY *key = NULL;
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    const char *kid;
    int64_t now = cl_wall_ms() / 1000;
    cl_status rc = CL_OK;

    if (strlen(token) > TOKEN_MAX || dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        return bad_token(ctx, "not a compact JWS");
    }
    header = b64url_json_parse(token, (size_t)(dot1 - token));
    claims = b64url_json_parse(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &siglen);
    kid = json_string_value(json_object_get(header, "kid"));
    /* The algorithm is pinned: whatever else the header says, only ES256 verifies. */
    if (header == NULL || claims == NULL || sig == NULL || kid == NULL ||
        !json_is_string(json_object_get(header, "alg")) ||
        strcmp(json_string_value(json_object_get(header, "alg")), "ES256") != 0) {
        rc = bad_token(ctx, "malformed, or not ES256 with a kid");
        goto out;
    }
    rc = cl_db_acquire_read(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, key_by_kid_sql, &st, "ti", kid, cl_wall_ms());
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        key = pem_key(cl_stmt_text(st, 0));
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        goto out;
    }
    if (key == NULL) {
        rc = bad_token(ctx, "unknown kid");
        goto out;
    }
    if (!es256_verify(key, token, (size_t)(dot2 - token), sig, siglen)) {
        rc = bad_token(ctx, "bad signature");
        goto out;
    }
    if (!json_is_string(json_object_get(claims, "iss")) ||
        strcmp(json_string_value(json_object_get(claims, "iss")), self->issuer) != 0) {
        rc = bad_token(ctx, "wrong issuer");
        goto out;
    }
    if (!json_is_integer(json_object_get(claims, "exp")) ||
        json_integer_value(json_object_get(claims, "exp")) + LEEWAY_S <= now ||
        (json_object_get(claims, "nbf") != NULL &&
         (!json_is_integer(json_object_get(claims, "nbf")) ||
          json_integer_value(json_object_get(claims, "nbf")) - LEEWAY_S > now))) {
        rc = bad_token(ctx, "expired or not yet valid");
        goto out;
    }
    if (!json_is_string(json_object_get(claims, "sub")) ||
        cl_strlcpy(sub, json_string_value(json_object_get(claims, "sub")), size) != 0) {
        rc = bad_token(ctx, "no usable sub");
        goto out;
    }
out:
    EVP_PKEY_free(key);
    free(sig);
    json_decref(header);
    json_decref(claims);
    return rc;
}

void identity_tokens_destroy(struct identity_self *self)
{
    EVP_PKEY_free(self->signer);
    self->signer = NULL;
}
