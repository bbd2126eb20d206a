/*
 * Passwords and secrets: argon2id (Debian's libargon2) for what people choose, SHA-256
 * for what the module makes itself. A generated secret has 256 random bits, so a fast
 * hash is enough to make its stored form useless; a password has far fewer, so its hash
 * must be slow and memory-hard (ADR 0027).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#include <argon2.h>

#include "cleave/jwt.h"
#include "cleave/util.h"

#define SALT_BYTES 16
#define HASH_BYTES 32

cl_status identity_password_hash(const identity_argon2 *cost, const char *password,
                                 char out[IDENTITY_HASH_MAX], cl_error *err)
{
    unsigned char salt[SALT_BYTES];
    int rc;

    if (cl_random_bytes(salt, sizeof(salt), err) != CL_OK) {
        return CL_INTERNAL;
    }
    rc = argon2id_hash_encoded(cost->t, cost->m_kib, cost->p, password, strlen(password), salt,
                               sizeof(salt), HASH_BYTES, out, IDENTITY_HASH_MAX);
    if (rc != ARGON2_OK) {
        return cl_error_set(err, CL_INTERNAL, NULL, "argon2id failed: %s",
                            argon2_error_message(rc));
    }
    return CL_OK;
}

int identity_password_verify(const char *encoded, const char *password)
{
    if (encoded == NULL || password == NULL || strncmp(encoded, "$argon2id$", 10) != 0) {
        return 0;
    }
    return argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

/*
 * argon2 writes salt and hash in standard base64 without padding (its encoding.c), so the
 * base64url text is translated: the two alphabets differ only in '+' and '/'.
 */
static void base64_std(const unsigned char *in, size_t n, char *out, size_t size)
{
    cl_base64url_encode(in, n, out, size);
    for (char *c = out; *c != '\0'; c++) {
        if (*c == '-') {
            *c = '+';
        } else if (*c == '_') {
            *c = '/';
        }
    }
}

cl_status identity_password_decoy(const identity_argon2 *cost, char out[IDENTITY_HASH_MAX],
                                  cl_error *err)
{
    /* One draw: a salt, then hash bytes that no hashing made, so that nothing verifies. */
    unsigned char bytes[SALT_BYTES + HASH_BYTES];
    char salt[SALT_BYTES * 2];
    char hash[HASH_BYTES * 2];
    int n;

    if (cl_random_bytes(bytes, sizeof(bytes), err) != CL_OK) {
        return CL_INTERNAL;
    }
    base64_std(bytes, SALT_BYTES, salt, sizeof(salt));
    base64_std(bytes + SALT_BYTES, HASH_BYTES, hash, sizeof(hash));
    n = snprintf(out, IDENTITY_HASH_MAX, "$argon2id$v=%d$m=%u,t=%u,p=%u$%s$%s", ARGON2_VERSION_13,
                 cost->m_kib, cost->t, cost->p, salt, hash);
    if (n < 0 || n >= IDENTITY_HASH_MAX) {
        return cl_error_set(err, CL_INTERNAL, NULL, "the argon2id decoy does not fit");
    }
    return CL_OK;
}

cl_status identity_secret_new(char out[IDENTITY_SECRET_SIZE], cl_error *err)
{
    return cl_random_id("", 32, out, IDENTITY_SECRET_SIZE, err);
}

void identity_digest(const char *s, char out[IDENTITY_DIGEST_SIZE])
{
    unsigned char md[CL_SHA256_SIZE];

    cl_sha256(s, strlen(s), md);
    for (size_t i = 0; i < sizeof(md); i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}
