/* Internals shared by the files of cleave_auth; not installed. */
#ifndef CLEAVE_AUTH_INTERNAL_H
#define CLEAVE_AUTH_INTERNAL_H

#include <nettle/ecc.h>
#include <nettle/rsa.h>
#include <stdbool.h>

#include "cleave/jwt.h"

typedef enum cl__jwk_type { CL__JWK_EC, CL__JWK_RSA } cl__jwk_type;

/*
 * A key in GNU Nettle's types (ADR 0060): an EC key on P-256 (ec_pub, and ec_key when it
 * has its private part) or an RSA key (rsa_pub, and rsa_key likewise). Only the members of
 * its type are initialised.
 */
struct cl_jwk {
    char kid[CL_JWK_KID_MAX + 1];
    cl__jwk_type type;
    bool has_private;
    struct ecc_point ec_pub;
    struct ecc_scalar ec_key;
    struct rsa_public_key rsa_pub;
    struct rsa_private_key rsa_key;
};

/* The algorithm a key type signs with. */
const char *cl__jwk_type_alg(cl__jwk_type type);

/* Whether s is a usable kid: 1 to CL_JWK_KID_MAX printable ASCII characters, no space. */
bool cl__kid_valid(const char *s);

/* An ES256 signature in JWS: R || S, 32 bytes each (RFC 7518 section 3.4). */
#define CL__ES256_SIG_LEN ((size_t)64)
/* The largest signature: RS256 with an 8192-bit key. */
#define CL__JWS_SIG_MAX   1024

/*
 * Signs input[n] with key (which has its private part) into sig[CL__JWS_SIG_MAX] in JWS
 * form: R || S for ES256, the RSASSA-PKCS1-v1_5 signature of the modulus' length for RS256.
 */
cl_status cl__jwk_sign(const cl_jwk *key, const void *input, size_t n, unsigned char *sig,
                       size_t *sig_len, cl_error *err);

/* Whether sig[sig_len] (JWS form) is key's signature of input[n]. */
bool cl__jwk_verifies(const cl_jwk *key, const void *input, size_t n, const unsigned char *sig,
                      size_t sig_len);

#endif
