/* Internals shared by the files of cleave_auth; not installed. */
#ifndef CLEAVE_AUTH_INTERNAL_H
#define CLEAVE_AUTH_INTERNAL_H

#include <openssl/evp.h>
#include <stdbool.h>

#include "cleave/jwt.h"

typedef enum cl__jwk_type { CL__JWK_EC, CL__JWK_RSA } cl__jwk_type;

struct cl_jwk {
    char kid[CL_JWK_KID_MAX + 1];
    cl__jwk_type type;
    EVP_PKEY *pkey;
    bool has_private;
};

/* The algorithm a key type signs with. */
const char *cl__jwk_type_alg(cl__jwk_type type);

/* Whether s is a usable kid: 1 to CL_JWK_KID_MAX printable ASCII characters, no space. */
bool cl__kid_valid(const char *s);

#endif
