/*
 * Fuzz target: the JWKS parser (cl_jwks_parse, cleave/jwt.h), which reads the key set an
 * identity provider publishes. Input: the document. A set it accepts holds at most
 * CL_JWKS_MAX_KEYS keys, each found by its kid, and prints as a JWKS that parses back to
 * a set of the same size.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/jwt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_jwks *keys = NULL;
    cl_jwks *again = NULL;
    cl_error err = {0};
    json_t *doc;
    char *text;

    if (cl_jwks_parse((const char *)data, size, &keys, &err) != CL_OK) {
        FUZZ_CHECK(keys == NULL && err.status == CL_INVALID && err.message[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(cl_jwks_count(keys) <= CL_JWKS_MAX_KEYS);
    doc = cl_jwks_json(keys);
    FUZZ_CHECK(doc != NULL);
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "keys")); i++) {
        json_t *k = json_array_get(json_object_get(doc, "keys"), i);
        const cl_jwk *found = cl_jwks_find(keys, json_string_value(json_object_get(k, "kid")));

        FUZZ_CHECK(found != NULL && !cl_jwk_has_private(found));
    }
    text = json_dumps(doc, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    /* Every check is deterministic, so what was accepted once is accepted again. */
    FUZZ_CHECK(cl_jwks_parse(text, strlen(text), &again, &err) == CL_OK);
    FUZZ_CHECK(cl_jwks_count(again) == cl_jwks_count(keys));
    cl_jwks_free(again);
    free(text);
    json_decref(doc);
    cl_jwks_free(keys);
    return 0;
}
