/*
 * identity's local binding: users, OAuth clients and refresh token families over its own
 * database (ADR 0027). Access tokens and signing keys are in tokens.c, password hashing
 * in password.c, the token endpoint's rate limit in ratelimit.c.
 *
 * The module's state lives in its instance (struct identity_self, internal.h), never in
 * file statics, so that two instances run in one process on two databases (ADR 0021).
 */
#include "identity/identity.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/jwt.h"
#include "cleave/util.h"
#include "internal.h"

CL_LOCAL_DEFINE(identity, IDENTITY_OPERATIONS, IDENTITY_OPS_VERSION)

static const char insert_user_sql[] =
    "INSERT INTO users (username, password_hash, role, created_at) "
    "VALUES (?, ?, ?, ?) RETURNING id";
static const char user_by_name_sql[] =
    "SELECT id, password_hash, role FROM users WHERE username = ?";
static const char user_by_id_sql[] = "SELECT username, role FROM users WHERE id = ?";
static const char insert_client_sql[] =
    "INSERT INTO clients (client_id, secret_hash, grants, audience, created_at) "
    "VALUES (?, ?, ?, ?, ?)";
static const char client_sql[] = "SELECT secret_hash, grants, audience FROM clients "
                                 "WHERE client_id = ?";
static const char insert_refresh_sql[] =
    "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, expires_ms, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
static const char refresh_sql[] =
    "SELECT family_id, client_id, user_id, scope, expires_ms, used, revoked "
    "FROM refresh_tokens WHERE token_hash = ?";
/* RETURNING makes the claim atomic: of two requests with one token only one gets a row. */
static const char use_refresh_sql[] = "UPDATE refresh_tokens SET used = 1 "
                                      "WHERE token_hash = ? AND used = 0 RETURNING token_hash";
static const char revoke_family_sql[] = "UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?";

static const char *const roles[] = {"customer", "staff", "admin"};
static const char *const grant_types[] = {"password", "client_credentials", "refresh_token"};

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, set[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* 1-64 bytes of letters, digits and ._@- : names that need no escaping anywhere. */
static bool valid_name(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > IDENTITY_NAME_MAX) {
        return false;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-") == n;
}

/* Printable ASCII without space: a secret that survives every transport unescaped. */
static bool printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* Whether word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len == n && strncmp(p, word, n) == 0) {
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* RFC 6749 section 3.3: scope-tokens of %x21 / %x23-5B / %x5D-7E separated by one space. */
static bool valid_scope(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 256 || s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  ") != NULL) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != ' ' && (c < 0x21 || c > 0x7e || c == '"' || c == '\\')) {
            return false;
        }
    }
    return true;
}

/* Every word of want is a word of have. */
static bool scope_within(const char *want, const char *have)
{
    char word[257];

    for (const char *p = want; *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        memcpy(word, p, len);
        word[len] = '\0';
        if (!has_word(have, word)) {
            return false;
        }
        p = end != NULL ? end + 1 : p + len;
    }
    return true;
}

/* --- users and clients -------------------------------------------------------------- */

static cl_status identity_local_add_user(struct identity_self *self, cl_ctx *ctx,
                                         const identity_user_request *req, identity_user *resp)
{
    char hash[IDENTITY_HASH_MAX];
    char now[32];
    char key[48];
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    int64_t id = 0;
    size_t plen = req->password != NULL ? strlen(req->password) : 0;
    cl_status rc;

    if (!valid_name(req->username)) {
        return cl_fail(ctx, CL_INVALID, "username", "username must be 1-%d letters, digits or ._@-",
                       IDENTITY_NAME_MAX);
    }
    if (plen < 8 || plen > IDENTITY_PASSWORD_MAX) {
        return cl_fail(ctx, CL_INVALID, "password", "password must be 8-%d bytes",
                       IDENTITY_PASSWORD_MAX);
    }
    if (!one_of(req->role, roles, sizeof(roles) / sizeof(roles[0]))) {
        return cl_fail(ctx, CL_INVALID, "role", "role must be customer, staff or admin");
    }
    /* Hashing takes tens of milliseconds: before the transaction, never inside it. */
    rc = identity_password_hash(&self->cost, req->password, hash, &ctx->err);
    if (rc != CL_OK) {
        return rc;
    }
    cl_now_rfc3339(now);
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, insert_user_sql, &st, "tttt", req->username, hash,
                                req->role, now);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_CONFLICT) {
        rc = cl_fail(ctx, CL_CONFLICT, "username", "username %s is already taken", req->username);
    }
    if (rc == CL_OK) {
        id = cl_stmt_i64(st, 0);
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_OK) {
        snprintf(key, sizeof(key), "user:%" PRId64, id);
        rc = identity_publish_user_added(
            conn, ctx, key, &(identity_user_added){id, req->username, req->role}, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    resp->id = id;
    resp->username = cl_strdup(req->username);
    resp->role = cl_strdup(req->role);
    resp->created_at = cl_strdup(now);
    if (resp->username == NULL || resp->role == NULL || resp->created_at == NULL) {
        cl_schema_free(&identity_user_type, resp);
        return oom(ctx);
    }
    return CL_OK;
}

static int copy_strs(cl_strs *to, const cl_strs *from)
{
    for (size_t i = 0; i < from->n; i++) {
        if (cl_strs_push(to, from->v[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The grants as stored: "password refresh_token". */
static cl_status join_grants(cl_ctx *ctx, const cl_strs *grants, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    if (grants->n == 0) {
        return cl_fail(ctx, CL_INVALID, "grants", "grants must name at least one grant type");
    }
    for (size_t i = 0; i < grants->n; i++) {
        const char *g = grants->v[i];
        if (!one_of(g, grant_types, sizeof(grant_types) / sizeof(grant_types[0]))) {
            return cl_fail(ctx, CL_INVALID, "grants",
                           "grants may be password, client_credentials and refresh_token");
        }
        if (has_word(out, g)) {
            return cl_fail(ctx, CL_INVALID, "grants", "grants names %s twice", g);
        }
        len += (size_t)snprintf(out + len, size - len, "%s%s", i > 0 ? " " : "", g);
    }
    return CL_OK;
}

/*
 * Whether s is a client's audience list: 1 to IDENTITY_AUDIENCES_MAX names, each a valid
 * name, separated by single spaces, none twice.
 */
static bool valid_audiences(const char *s)
{
    char seen[IDENTITY_AUDIENCES_MAX * (IDENTITY_NAME_MAX + 1)] = "";
    char name[IDENTITY_NAME_MAX + 1];
    size_t len = 0;
    int n = 0;

    if (s == NULL || s[0] == '\0') {
        return false;
    }
    for (const char *p = s;; p++) {
        size_t w = strcspn(p, " ");

        if (w == 0 || w > IDENTITY_NAME_MAX || n == IDENTITY_AUDIENCES_MAX) {
            return false;
        }
        memcpy(name, p, w);
        name[w] = '\0';
        if (!valid_name(name) || has_word(seen, name)) {
            return false;
        }
        len += (size_t)snprintf(seen + len, sizeof(seen) - len, "%s%s", n > 0 ? " " : "", name);
        n++;
        p += w;
        if (*p == '\0') {
            return true;
        }
    }
}

static cl_status identity_local_add_client(struct identity_self *self, cl_ctx *ctx,
                                           const identity_client_request *req,
                                           identity_client *resp)
{
    char secret[257];
    char digest[IDENTITY_DIGEST_SIZE];
    char grants[64];
    char now[32];
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    cl_status rc;

    if (!valid_name(req->client_id)) {
        return cl_fail(ctx, CL_INVALID, "client_id",
                       "client_id must be 1-%d letters, digits or ._@-", IDENTITY_NAME_MAX);
    }
    if (!valid_audiences(req->audience)) {
        return cl_fail(ctx, CL_INVALID, "audience",
                       "audience must be 1-%d different space-separated names of 1-%d letters, "
                       "digits or ._@-",
                       IDENTITY_AUDIENCES_MAX, IDENTITY_NAME_MAX);
    }
    if (req->client_secret != NULL &&
        (strlen(req->client_secret) < 32 || strlen(req->client_secret) > 256 ||
         !printable(req->client_secret))) {
        return cl_fail(ctx, CL_INVALID, "client_secret",
                       "client_secret must be 32-256 printable bytes, or absent");
    }
    rc = join_grants(ctx, &req->grants, grants, sizeof(grants));
    if (rc == CL_OK && req->client_secret == NULL) {
        rc = identity_secret_new(secret, &ctx->err);
    } else if (rc == CL_OK) {
        cl_strlcpy(secret, req->client_secret, sizeof(secret));
    }
    if (rc != CL_OK) {
        return rc;
    }
    identity_digest(secret, digest);
    cl_now_rfc3339(now);
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, insert_client_sql, &st, "ttttt", req->client_id, digest,
                                grants, req->audience, now);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc == CL_CONFLICT) {
        rc = cl_fail(ctx, CL_CONFLICT, "client_id", "client %s already exists", req->client_id);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    resp->client_id = cl_strdup(req->client_id);
    resp->client_secret = cl_strdup(secret);
    resp->audience = cl_strdup(req->audience);
    if (resp->client_id == NULL || resp->client_secret == NULL || resp->audience == NULL ||
        copy_strs(&resp->grants, &req->grants) != 0) {
        cl_schema_free(&identity_client_type, resp);
        return oom(ctx);
    }
    return CL_OK;
}

/* --- the token endpoint --------------------------------------------------------------- */

/* A client as the token endpoint sees it, once authenticated. */
typedef struct client_row {
    char grants[64];
    /* Its audiences as registered; once a token request is read, the one it asked for. */
    char audience[IDENTITY_AUDIENCES_MAX * (IDENTITY_NAME_MAX + 1)];
} client_row;

/*
 * Narrows client->audience to the token's: the requested one, which must be among the
 * client's (RFC 8707's invalid_target otherwise), or without a request the first.
 */
static cl_status choose_audience(cl_ctx *ctx, const char *requested, client_row *client)
{
    if (requested == NULL) {
        client->audience[strcspn(client->audience, " ")] = '\0';
        return CL_OK;
    }
    if (!valid_name(requested) || !has_word(client->audience, requested)) {
        return cl_fail(ctx, CL_INVALID, "invalid_target",
                       "this client may not have tokens for that audience");
    }
    cl_strlcpy(client->audience, requested, sizeof(client->audience));
    return CL_OK;
}

/*
 * Counts the request against its client's and its address's minute. Both are counted
 * before the client is authenticated, so that guessing secrets is limited too.
 */
static cl_status rate_limit(struct identity_self *self, cl_ctx *ctx, const char *client_id,
                            const char *addr)
{
    char key[IDENTITY_RATE_KEY];
    int64_t now = cl_wall_ms();
    int64_t retry = 0;
    int ok = 1;

    if (client_id != NULL) {
        snprintf(key, sizeof(key), "c:%s", client_id);
        ok = identity_rate_take(&self->rate, key, now, &retry);
    }
    if (addr != NULL && addr[0] != '\0') {
        snprintf(key, sizeof(key), "a:%s", addr);
        ok = identity_rate_take(&self->rate, key, now, &retry) && ok;
    }
    if (!ok) {
        return cl_fail(ctx, CL_UNAVAILABLE, "rate_limit",
                       "too many token requests; retry after %" PRId64 " s", retry);
    }
    return CL_OK;
}

/*
 * Authenticates the client by its secret (RFC 6749 section 2.3.1). An unknown client and
 * a wrong secret get the same answer after the same work, so neither tells which it was.
 */
static cl_status authenticate_client(struct identity_self *self, cl_ctx *ctx, const char *id,
                                     const char *secret, client_row *out)
{
    char digest[IDENTITY_DIGEST_SIZE];
    char stored[IDENTITY_DIGEST_SIZE] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    cl_status rc;

    if (id == NULL || secret == NULL || !valid_name(id) || strlen(secret) > 256) {
        return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    rc = cl_db_acquire_read(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, client_sql, &st, "t", id);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        cl_strlcpy(stored, cl_stmt_text(st, 0), sizeof(stored));
        cl_strlcpy(out->grants, cl_stmt_text(st, 1), sizeof(out->grants));
        cl_strlcpy(out->audience, cl_stmt_text(st, 2), sizeof(out->audience));
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    identity_digest(secret, digest);
    if (!cl_secret_equal(digest, strlen(digest), stored, strlen(stored)) || !row) {
        return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    return CL_OK;
}

/* Inserts a refresh token of family for user into the open transaction on conn. */
static cl_status insert_refresh(struct identity_self *self, cl_ctx *ctx, cl_db_conn *conn,
                                const char *family, const char *client_id, int64_t user_id,
                                const char *scope, char token[IDENTITY_SECRET_SIZE])
{
    char digest[IDENTITY_DIGEST_SIZE];
    char now[32];
    cl_stmt *st = NULL;
    cl_status rc = identity_secret_new(token, &ctx->err);

    if (rc != CL_OK) {
        return rc;
    }
    identity_digest(token, digest);
    cl_now_rfc3339(now);
    rc = cl_db_prepare_bind(ctx, conn, insert_refresh_sql, &st, "tttitit", digest, family,
                            client_id, user_id, scope, cl_wall_ms() + self->refresh_s * 1000, now);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

/* Fills resp with an access token for c and, when refresh is given, that refresh token. */
static cl_status answer(struct identity_self *self, cl_ctx *ctx, const identity_claims *c,
                        const char *refresh, identity_token *resp)
{
    char *jwt = NULL;
    cl_status rc = identity_tokens_sign(self, ctx, c, &jwt);

    if (rc != CL_OK) {
        return rc;
    }
    resp->access_token = jwt;
    resp->token_type = cl_strdup("Bearer");
    resp->expires_in = self->access_s;
    resp->scope = cl_strdup(c->scope);
    resp->refresh_token = refresh != NULL ? cl_strdup(refresh) : NULL;
    if (resp->token_type == NULL || resp->scope == NULL ||
        (refresh != NULL && resp->refresh_token == NULL)) {
        cl_schema_free(&identity_token_type, resp);
        return oom(ctx);
    }
    return CL_OK;
}

static cl_status password_grant(struct identity_self *self, cl_ctx *ctx,
                                const identity_token_request *req, const client_row *client,
                                const char *scope, identity_token *resp)
{
    char hash[IDENTITY_HASH_MAX] = "";
    char role[16] = "";
    char sub[48];
    char family[IDENTITY_SECRET_SIZE];
    char refresh[IDENTITY_SECRET_SIZE];
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    int64_t user_id = 0;
    cl_status rc;

    if (req->username == NULL || req->password == NULL) {
        return cl_fail(ctx, CL_INVALID, "invalid_request",
                       "the password grant needs username and password");
    }
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, user_by_name_sql, &st, "t", req->username);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row) {
        user_id = cl_stmt_i64(st, 0);
        cl_strlcpy(hash, cl_stmt_text(st, 1), sizeof(hash));
        cl_strlcpy(role, cl_stmt_text(st, 2), sizeof(role));
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    cl_db_release(conn);
    conn = NULL;
    if (rc != CL_OK) {
        return rc;
    }
    /* An unknown user costs one hash too, so timing does not tell which usernames exist. */
    if (!identity_password_verify(row ? hash : self->decoy, req->password) || !row) {
        return cl_fail(ctx, CL_INVALID, "invalid_grant", "the username or password is wrong");
    }
    snprintf(sub, sizeof(sub), "user:%" PRId64, user_id);
    rc = identity_secret_new(family, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = insert_refresh(self, ctx, conn, family, req->client_id, user_id, scope, refresh);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    return answer(
        self, ctx,
        &(identity_claims){.sub = sub, .aud = client->audience, .scope = scope, .role = role},
        has_word(client->grants, "refresh_token") ? refresh : NULL, resp);
}

/* What a stored refresh token says. */
typedef struct refresh_row {
    char family[IDENTITY_SECRET_SIZE];
    char client_id[IDENTITY_NAME_MAX + 1];
    int64_t user_id;
    char scope[257];
    int64_t expires_ms;
    int64_t used;
    int64_t revoked;
} refresh_row;

static cl_status read_refresh(cl_ctx *ctx, cl_db_conn *conn, const char *digest, refresh_row *r,
                              bool *found)
{
    cl_stmt *st = NULL;
    cl_status rc = cl_db_prepare_bind(ctx, conn, refresh_sql, &st, "t", digest);

    if (rc == CL_OK) {
        rc = cl_stmt_step(st, found, &ctx->err);
    }
    if (rc == CL_OK && *found) {
        cl_strlcpy(r->family, cl_stmt_text(st, 0), sizeof(r->family));
        cl_strlcpy(r->client_id, cl_stmt_text(st, 1), sizeof(r->client_id));
        r->user_id = cl_stmt_i64(st, 2);
        cl_strlcpy(r->scope, cl_stmt_text(st, 3), sizeof(r->scope));
        r->expires_ms = cl_stmt_i64(st, 4);
        r->used = cl_stmt_i64(st, 5);
        r->revoked = cl_stmt_i64(st, 6);
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    return rc;
}

static cl_status revoke_family(cl_ctx *ctx, cl_db_conn *conn, const char *family)
{
    cl_stmt *st = NULL;
    cl_status rc = cl_db_prepare_bind(ctx, conn, revoke_family_sql, &st, "t", family);

    return rc == CL_OK ? cl_stmt_drain(st, NULL, &ctx->err) : rc;
}

/*
 * Exchanges a refresh token (RFC 6749 section 6) for a new one of the same family and an
 * access token. A token presented after it was used means two parties hold it: one of them
 * stole it. The family is revoked (OAuth 2.0 Security BCP, section 4.14.2), committed even
 * though the request fails, so that neither party can go on.
 */
static cl_status refresh_grant(struct identity_self *self, cl_ctx *ctx,
                               const identity_token_request *req, const client_row *client,
                               identity_token *resp)
{
    char digest[IDENTITY_DIGEST_SIZE];
    char refresh[IDENTITY_SECRET_SIZE];
    char sub[48];
    char role[16] = "";
    refresh_row r = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool found = false;
    bool claimed = false;
    bool reused = false;
    cl_status rc;

    if (req->refresh_token == NULL) {
        return cl_fail(ctx, CL_INVALID, "invalid_request",
                       "the refresh_token grant needs refresh_token");
    }
    identity_digest(req->refresh_token, digest);
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = read_refresh(ctx, conn, digest, &r, &found);
    }
    if (rc == CL_OK && found && !r.revoked && strcmp(r.client_id, req->client_id) == 0) {
        rc = cl_db_prepare_bind(ctx, conn, use_refresh_sql, &st, "t", digest);
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &claimed, &ctx->err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
        reused = rc == CL_OK && !claimed;
        if (reused) {
            rc = revoke_family(ctx, conn, r.family);
        }
    }
    if (rc == CL_OK && claimed && r.expires_ms > cl_wall_ms() &&
        (req->scope == NULL || scope_within(req->scope, r.scope))) {
        rc = cl_db_prepare_bind(ctx, conn, user_by_id_sql, &st, "i", r.user_id);
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &found, &ctx->err);
        }
        if (rc == CL_OK && found) {
            cl_strlcpy(role, cl_stmt_text(st, 1), sizeof(role));
            rc = cl_stmt_drain(st, NULL, &ctx->err);
        }
        if (rc == CL_OK && found) {
            rc =
                insert_refresh(self, ctx, conn, r.family, r.client_id, r.user_id, r.scope, refresh);
        }
    } else {
        claimed = false;
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    if (reused) {
        return cl_fail(ctx, CL_INVALID, "invalid_grant",
                       "the refresh token was already used; its family is revoked");
    }
    if (!claimed || !found) {
        return cl_fail(ctx, CL_INVALID, "invalid_grant",
                       "the refresh token is unknown, expired, revoked or not this client's");
    }
    snprintf(sub, sizeof(sub), "user:%" PRId64, r.user_id);
    return answer(self, ctx,
                  &(identity_claims){.sub = sub,
                                     .aud = client->audience,
                                     .scope = req->scope != NULL ? req->scope : r.scope,
                                     .role = role},
                  refresh, resp);
}

static cl_status identity_local_issue_token(struct identity_self *self, cl_ctx *ctx,
                                            const identity_token_request *req, identity_token *resp)
{
    client_row client = {0};
    char sub[IDENTITY_NAME_MAX + 16];
    cl_status rc;

    rc = rate_limit(self, ctx, req->client_id, req->remote_addr);
    if (rc != CL_OK) {
        return rc;
    }
    if (req->grant_type == NULL) {
        return cl_fail(ctx, CL_INVALID, "invalid_request", "grant_type is required");
    }
    rc = authenticate_client(self, ctx, req->client_id, req->client_secret, &client);
    if (rc != CL_OK) {
        return rc;
    }
    if (!one_of(req->grant_type, grant_types, sizeof(grant_types) / sizeof(grant_types[0]))) {
        return cl_fail(ctx, CL_INVALID, "unsupported_grant_type",
                       "grant_type must be password, client_credentials or refresh_token");
    }
    if (!has_word(client.grants, req->grant_type)) {
        return cl_fail(ctx, CL_INVALID, "unauthorized_client",
                       "this client may not use the %s grant", req->grant_type);
    }
    if (req->scope != NULL && !valid_scope(req->scope)) {
        return cl_fail(ctx, CL_INVALID, "invalid_scope",
                       "scope must be space-separated printable words");
    }
    /*
     * Only the scopes discovery names (RFC 6749 5.2: an unknown scope is invalid_scope): a
     * token must not claim a scope this server never defined, for any resource server
     * that reads it. A user's token has openid and profile, a service's has service; a
     * refresh keeps to its family's scope (refresh_grant).
     */
    if (req->scope != NULL && strcmp(req->grant_type, "refresh_token") != 0) {
        const char *known = strcmp(req->grant_type, "password") == 0 ? "openid profile" : "service";

        if (!scope_within(req->scope, known)) {
            return cl_fail(ctx, CL_INVALID, "invalid_scope",
                           "scope may name only %s with the %s grant", known, req->grant_type);
        }
    }
    rc = choose_audience(ctx, req->audience, &client);
    if (rc != CL_OK) {
        return rc;
    }
    if (strcmp(req->grant_type, "password") == 0) {
        return password_grant(self, ctx, req, &client,
                              req->scope != NULL ? req->scope : "openid profile", resp);
    }
    if (strcmp(req->grant_type, "refresh_token") == 0) {
        return refresh_grant(self, ctx, req, &client, resp);
    }
    snprintf(sub, sizeof(sub), "service:%s", req->client_id);
    return answer(self, ctx,
                  &(identity_claims){.sub = sub,
                                     .aud = client.audience,
                                     .scope = req->scope != NULL ? req->scope : "service",
                                     .role = NULL},
                  NULL, resp);
}

/*
 * RFC 7009: revoking a refresh token revokes its family. Access tokens are not stored, so
 * there is nothing to revoke for them (they expire within minutes); the answer is 200 for
 * them and for unknown tokens alike, as section 2.2 asks.
 */
static cl_status identity_local_revoke(struct identity_self *self, cl_ctx *ctx,
                                       const identity_revoke_request *req, cl_empty *resp)
{
    char digest[IDENTITY_DIGEST_SIZE];
    client_row client = {0};
    refresh_row r = {0};
    cl_db_conn *conn = NULL;
    bool found = false;
    cl_status rc;

    (void)resp;
    rc = rate_limit(self, ctx, req->client_id, req->remote_addr);
    if (rc == CL_OK) {
        rc = authenticate_client(self, ctx, req->client_id, req->client_secret, &client);
    }
    if (rc != CL_OK) {
        return rc;
    }
    if (req->token == NULL || req->token[0] == '\0') {
        return cl_fail(ctx, CL_INVALID, "invalid_request", "token is required");
    }
    identity_digest(req->token, digest);
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = read_refresh(ctx, conn, digest, &r, &found);
    }
    /* Another client's token is left alone: a client may revoke only its own. */
    if (rc == CL_OK && found && strcmp(r.client_id, req->client_id) == 0) {
        rc = revoke_family(ctx, conn, r.family);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    return rc;
}

static cl_status identity_local_get_userinfo(struct identity_self *self, cl_ctx *ctx,
                                             const identity_userinfo_request *req,
                                             identity_userinfo *resp)
{
    char sub[64];
    identity_userinfo u = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    char *end = NULL;
    int64_t id;
    cl_status rc;

    if (req->access_token == NULL) {
        return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "an access token is required");
    }
    rc = identity_tokens_verify(self, ctx, req->access_token, sub, sizeof(sub));
    if (rc != CL_OK) {
        return rc;
    }
    id = strncmp(sub, "user:", 5) == 0 ? strtoll(sub + 5, &end, 10) : 0;
    if (id <= 0 || end == NULL || *end != '\0') {
        return cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the token is not a user's");
    }
    rc = cl_db_acquire_read(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, user_by_id_sql, &st, "i", id);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_UNAUTHORIZED, "invalid_token", "the token's user no longer exists");
    }
    if (rc == CL_OK) {
        u.sub = cl_strdup(sub);
        u.preferred_username = cl_strdup(cl_stmt_text(st, 0));
        if (u.sub == NULL || u.preferred_username == NULL ||
            cl_strs_push(&u.roles, cl_stmt_text(st, 1)) != 0) {
            rc = oom(ctx);
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *resp = u;
    } else {
        cl_schema_free(&identity_userinfo_type, &u);
    }
    return rc;
}

static cl_status identity_local_get_jwks(struct identity_self *self, cl_ctx *ctx,
                                         const cl_empty *req, identity_jwks *resp)
{
    (void)req;
    return identity_tokens_jwks(self, ctx, resp);
}

static cl_status identity_local_get_configuration(struct identity_self *self, cl_ctx *ctx,
                                                  const cl_empty *req, identity_configuration *resp)
{
    (void)req;
    resp->issuer = cl_strdup(self->issuer);
    resp->access_token_seconds = self->access_s;
    return resp->issuer != NULL ? CL_OK : oom(ctx);
}

static cl_status identity_local_rotate_keys(struct identity_self *self, cl_ctx *ctx,
                                            const cl_empty *req, identity_key_rotation *resp)
{
    (void)req;
    return identity_tokens_rotate(self, ctx, resp);
}

/* --- the instance ------------------------------------------------------------------- */

static void identity_destroy(void *p)
{
    struct identity_self *self = p;

    if (self == NULL) {
        return;
    }
    identity_tokens_destroy(self);
    identity_rate_destroy(&self->rate);
    pthread_mutex_destroy(&self->signer_lock);
    free(self);
}

static cl_status identity_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct identity_self *self;
    const char *issuer;
    cl_status rc;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "identity needs its database");
    }
    if (env->config == NULL) {
        return cl_error_set(err, CL_INVALID, "config", "identity needs its configuration");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    self->db = env->db;
    /* The defaults are declared once, in api/identity_api.c. */
    issuer = cl_config_get(env->config, "CLEAVE_IDENTITY_ISSUER");
    if (issuer != NULL) {
        cl_strlcpy(self->issuer, issuer, sizeof(self->issuer));
    } else {
        snprintf(self->issuer, sizeof(self->issuer), "http://%s",
                 cl_config_get(env->config, "CLEAVE_LISTEN"));
    }
    /* An issuer is compared as a string (RFC 8414 section 3.3): one spelling, no slash. */
    if (self->issuer[strlen(self->issuer) - 1] == '/') {
        self->issuer[strlen(self->issuer) - 1] = '\0';
    }
    self->access_s = cl_config_int(env->config, "CLEAVE_IDENTITY_ACCESS_TOKEN_SECONDS");
    self->refresh_s = cl_config_int(env->config, "CLEAVE_IDENTITY_REFRESH_TOKEN_SECONDS");
    self->cost.t = (uint32_t)cl_config_int(env->config, "CLEAVE_IDENTITY_ARGON2_T");
    self->cost.m_kib = (uint32_t)cl_config_int(env->config, "CLEAVE_IDENTITY_ARGON2_M_KIB");
    self->cost.p = (uint32_t)cl_config_int(env->config, "CLEAVE_IDENTITY_ARGON2_P");
    identity_rate_init(&self->rate, cl_config_int(env->config, "CLEAVE_IDENTITY_TOKEN_RATE"));
    pthread_mutex_init(&self->signer_lock, NULL);
    /*
     * Made, not hashed: an argon2id run at start-up only to have something to fail against
     * cost most of the start's time and a 19 MiB block.
     */
    rc = identity_password_decoy(&self->cost, self->decoy, err);
    if (rc != CL_OK) {
        identity_destroy(self);
        return rc;
    }
    *out = self;
    return CL_OK;
}

/* The first start on an empty database makes the first signing key. */
static cl_status identity_start(void *p, cl_error *err)
{
    cl_ctx ctx;
    cl_status rc;

    cl_ctx_init(&ctx, 30000);
    rc = identity_tokens_ensure(p, &ctx);
    if (rc != CL_OK) {
        *err = ctx.err;
    }
    return rc;
}

const cl_module identity_module = {
    .abi = CL_MODULE_ABI,
    .name = "identity",
    .version = "0.1.0",
    .ops = &identity_local_ops,
    .create = identity_create,
    .start = identity_start,
    .stop = cl_module_noop_stop,
    .destroy = identity_destroy,
    .api = &identity_api,
};
