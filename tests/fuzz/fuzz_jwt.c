/*
 * Fuzz target: the JWT parser and verifier (cl_jwt_verify, cleave/jwt.h), the gateway's
 * first contact with a caller's bearer token.
 *
 * Input: byte 0 picks a mode.
 *   even: the rest is a compact token, verified against a fixed key set: every refusal
 *         before the signature (parts, base64url, header JSON, alg, kid) is reachable.
 *   odd:  the rest is a header line, then the payload; both are signed with the set's
 *         key (cl_jws_sign_raw signs whatever bytes it is given) and verified, so that
 *         the claims checks after a good signature are reachable too.
 * A token is accepted only with claims that are an object; a refusal is CL_UNAUTHORIZED
 * with a reason, and never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/jwt.h"
#include "fuzz.h"

/* A fixed time, so that the same input takes the same path in every run. */
#define JWT_NOW 1767225600

static cl_jwk *jwt_key;
static cl_jwks *jwt_keys;
static const cl_jwt_policy jwt_policy = {"https://issuer.example", "cleave", 60, JWT_NOW};

static void jwt_init(void)
{
    cl_error err;

    FUZZ_CHECK(cl_jwk_generate("k1", &jwt_key, &err) == CL_OK);
    jwt_keys = cl_jwks_new();
    FUZZ_CHECK(jwt_keys != NULL);
    FUZZ_CHECK(cl_jwks_add(jwt_keys, jwt_key, &err) == CL_OK);
}

static void jwt_verify(const char *token)
{
    json_t *claims = NULL;
    cl_error err = {0};
    cl_status st = cl_jwt_verify(token, jwt_keys, &jwt_policy, &claims, &err);

    if (st == CL_OK) {
        FUZZ_CHECK(json_is_object(claims));
        json_decref(claims);
    } else {
        FUZZ_CHECK(st == CL_UNAUTHORIZED && err.message[0] != '\0' && claims == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (jwt_keys == NULL) {
        jwt_init();
    }
    if (size < 1) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        char *token = fuzz_cstr(data + 1, size - 1);

        jwt_verify(token);
        free(token);
    } else {
        const uint8_t *rest = data + 1;
        size_t left = size - 1;
        char *header = fuzz_line(&rest, &left);
        char *token = NULL;
        cl_error err;
        cl_status st = cl_jws_sign_raw(jwt_key, header, strlen(header), rest, left, &token, &err);

        /* There is nothing to sign in an empty part. */
        if (header[0] == '\0' || left == 0) {
            FUZZ_CHECK(st == CL_INVALID);
        } else {
            FUZZ_CHECK(st == CL_OK);
            jwt_verify(token);
        }
        free(token);
        free(header);
    }
    return 0;
}
