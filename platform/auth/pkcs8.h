/*
 * A strict codec for unencrypted PKCS#8 private keys (RFC 5208 PrivateKeyInfo, PEM label
 * "PRIVATE KEY") of the two key types cleave_auth signs with: EC on P-256 (SEC1
 * ECPrivateKey, RFC 5915) and RSA (PKCS#1 RSAPrivateKey, RFC 8017). Nettle, which does the
 * cryptography, reads neither PEM nor PKCS#8. Internal to cleave_auth; not installed.
 *
 * Reading only parses: whether the EC scalar is in range, the point is on the curve and
 * matches it, or the RSA numbers fit together is for the caller to check.
 */
#ifndef CLEAVE_AUTH_PKCS8_H
#define CLEAVE_AUTH_PKCS8_H

#include <stddef.h>

#include "cleave/status.h"

/* The longest PEM text cl__pkcs8_read accepts, which covers a 16384-bit RSA key twice. */
#define CL__PKCS8_PEM_MAX     65536
/* The longest RSA integer cl__pkcs8_write_rsa writes, in bytes (a 16384-bit modulus). */
#define CL__PKCS8_RSA_INT_MAX 2048

/* A big-endian unsigned integer or a byte string, borrowed from a buffer held elsewhere. */
typedef struct cl__bytes {
    const unsigned char *p;
    size_t n;
} cl__bytes;

typedef enum cl__pkcs8_type { CL__PKCS8_EC_P256, CL__PKCS8_RSA } cl__pkcs8_type;

/* A private key read from PKCS#8: every cl__bytes points into der, which the struct owns. */
typedef struct cl__pkcs8 {
    cl__pkcs8_type type;
    /*
     * EC P-256. d: the private scalar as stored, big-endian; 1 to 32 bytes once leading zero
     * bytes are stripped, but it may be stored with more (leading zeros), so d.n may exceed
     * 32, and old writers stored it with fewer than 32. pub: the uncompressed point
     * 0x04||X||Y (exactly 65 bytes) when the key carries it; pub.n == 0 (pub.p NULL) when
     * it does not, and the caller must then derive it from d.
     */
    cl__bytes d, pub;
    /*
     * RSA, from a version 0 (two-prime) RSAPrivateKey: n, e, d, p, q, dp, dq, qinv, each
     * big-endian without leading zero bytes (so a zero is n == 0).
     */
    cl__bytes rsa_n, rsa_e, rsa_d, rsa_p, rsa_q, rsa_dp, rsa_dq, rsa_qi;
    unsigned char *der; /* owned: the decoded DER; released by cl__pkcs8_free */
} cl__pkcs8;

/*
 * Reads the first PEM block of pem, which must be "-----BEGIN PRIVATE KEY-----" (after any
 * whitespace), base64 with line breaks, "-----END PRIVATE KEY-----", then nothing but
 * whitespace. Its DER must be canonical and hold an EC P-256 or an RSA key as described
 * above; attributes after the key are skipped.
 *
 * On CL_OK fills *out, which the caller releases with cl__pkcs8_free; *out is untouched
 * otherwise. CL_INVALID (err says what is wrong) for anything else: another label, an
 * encrypted key, malformed base64 or DER, another algorithm or curve, another version;
 * CL_INTERNAL when out of memory.
 */
cl_status cl__pkcs8_read(const char *pem, cl__pkcs8 *out, cl_error *err);

/* Wipes and frees k->der and zeroes *k. k may be NULL, zeroed, or already freed. */
void cl__pkcs8_free(cl__pkcs8 *k);

/*
 * The PKCS#8 PEM of an EC P-256 key, as OpenSSL 3 writes it: version 0, id-ecPublicKey with
 * prime256v1, an ECPrivateKey of version 1 holding d (exactly 32 bytes) and the [1]
 * publicKey pub, with no [0] parameters; base64 in lines of 64 characters. d is big-endian,
 * pub is 0x04||X||Y; neither is checked. Returns a NUL-terminated string the caller owns
 * (free it, after wiping it: it is the private key), or NULL when out of memory.
 */
char *cl__pkcs8_write_ec(const unsigned char d[32], const unsigned char pub[65]);

/*
 * The PKCS#8 PEM of an RSA key (rsaEncryption with NULL parameters, RSAPrivateKey version 0)
 * from its eight integers in the order n, e, d, p, q, dp, dq, qi, big-endian; leading zero
 * bytes are dropped and a 0x00 is put before a set top bit, as DER wants. Returns a
 * NUL-terminated string the caller owns (as above), or NULL when out of memory or when an
 * integer is longer than CL__PKCS8_RSA_INT_MAX bytes.
 */
char *cl__pkcs8_write_rsa(const cl__bytes v[8]);

#endif
