/*
 * Fuzz target: a private key's PEM (cl_jwk_from_pem, cleave/jwt.h), read by our own PKCS#8
 * codec (platform/auth/pkcs8.c, ADR 0060) from what an operator hands `cleave keys` or what
 * identity stored. Input: the PEM text. A key it accepts has its private part, is written
 * back as a PEM it reads again, and both give the same public JWK.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/jwt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pem = fuzz_cstr(data, size);
    cl_jwk *key = NULL;
    cl_jwk *again = NULL;
    cl_error err = {0};
    json_t *a, *b;
    char *text;

    if (cl_jwk_from_pem("fuzz", pem, &key, &err) != CL_OK) {
        FUZZ_CHECK(key == NULL && err.status == CL_INVALID && err.message[0] != '\0');
        free(pem);
        return 0;
    }
    FUZZ_CHECK(cl_jwk_has_private(key));
    text = cl_jwk_private_pem(key);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(cl_jwk_from_pem("fuzz", text, &again, &err) == CL_OK);
    a = cl_jwk_public_json(key);
    b = cl_jwk_public_json(again);
    FUZZ_CHECK(a != NULL && b != NULL && json_equal(a, b));
    json_decref(a);
    json_decref(b);
    free(text);
    cl_jwk_free(again);
    cl_jwk_free(key);
    free(pem);
    return 0;
}
