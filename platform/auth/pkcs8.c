/*
 * Unencrypted PKCS#8 private keys (EC P-256 and RSA) in PEM, read and written by hand:
 * Nettle has no PEM or PKCS#8 code. The DER reader below accepts only canonical DER, so
 * each key has one spelling and a malformed one is refused for a reason the message names.
 */
#include "pkcs8.h"

#include <nettle/base64.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PEM_BEGIN[] = "-----BEGIN PRIVATE KEY-----";
static const char PEM_BEGIN_ENCRYPTED[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
static const char PEM_BEGIN_ANY[] = "-----BEGIN ";
static const char PEM_END[] = "-----END PRIVATE KEY-----";

/* The contents of the object identifiers we know (tag and length not included). */
static const unsigned char OID_EC_PUBLIC_KEY[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const unsigned char OID_P256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char OID_RSA_ENCRYPTION[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                   0x0d, 0x01, 0x01, 0x01};

enum {
    TAG_INTEGER = 0x02,
    TAG_BIT_STRING = 0x03,
    TAG_OCTET_STRING = 0x04,
    TAG_NULL = 0x05,
    TAG_OID = 0x06,
    TAG_SEQUENCE = 0x30,
    TAG_CONTEXT_0 = 0xa0, /* [0], constructed */
    TAG_CONTEXT_1 = 0xa1, /* [1], constructed */
};

#define EC_SCALAR_BYTES 32
#define EC_POINT_BYTES  65

/* Fills err for an input that is refused. Returns CL_INVALID, which callers pass on. */
static cl_status invalid(cl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cl_status invalid(cl_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cl_error_vset(err, CL_INVALID, NULL, fmt, ap);
    va_end(ap);
    return CL_INVALID;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool bytes_are(cl__bytes b, const unsigned char *p, size_t n)
{
    return b.n == n && memcmp(b.p, p, n) == 0;
}

/*
 * Takes the element with tag at the front of *in: *val gets its contents and *in moves past
 * it. what names the element in the error. Tags are single bytes (no key uses a high tag
 * number), and lengths take the one form DER allows: short below 128, else the fewest
 * length bytes, three at most, which is more than any key within CL__PKCS8_PEM_MAX needs.
 */
static cl_status der_take(cl__bytes *in, unsigned char tag, cl__bytes *val, const char *what,
                          cl_error *err)
{
    size_t len = 0;
    size_t head = 2;

    /* Cleared first, so that no caller can read a value a refused element did not set. */
    val->p = NULL;
    val->n = 0;
    if (in->n == 0) {
        return invalid(err, "the PKCS#8 DER ends where %s should be", what);
    }
    if (in->p[0] != tag) {
        return invalid(err, "the PKCS#8 DER has tag 0x%02x where %s should be", in->p[0], what);
    }
    if (in->n < 2) {
        return invalid(err, "a DER length runs past its container (%s)", what);
    }
    if (in->p[1] < 0x80) {
        len = in->p[1];
    } else if (in->p[1] == 0x80) {
        return invalid(err, "the PKCS#8 DER has an indefinite length (%s), which DER forbids",
                       what);
    } else {
        size_t count = in->p[1] & 0x7fu;

        if (count > 3) {
            return invalid(err, "the PKCS#8 DER has a length too large for a key (%s)", what);
        }
        if (in->n - 2 < count) {
            return invalid(err, "a DER length runs past its container (%s)", what);
        }
        for (size_t i = 0; i < count; i++) {
            len = len << 8 | in->p[2 + i];
        }
        head += count;
        /* A leading zero byte, or the long form for what fits the short one: not minimal. */
        if (in->p[2] == 0 || len < 0x80) {
            return invalid(err, "the PKCS#8 DER has a non-minimal length (%s)", what);
        }
    }
    if (len > in->n - head) {
        return invalid(err, "a DER length runs past its container (%s)", what);
    }
    val->p = in->p + head;
    val->n = len;
    in->p += head + len;
    in->n -= head + len;
    return CL_OK;
}

static cl_status der_end(cl__bytes in, const char *after, cl_error *err)
{
    if (in.n != 0) {
        return invalid(err, "trailing bytes after %s", after);
    }
    return CL_OK;
}

/* Takes a non-negative, minimally encoded INTEGER; *val gets it without leading zero bytes. */
static cl_status der_uint(cl__bytes *in, cl__bytes *val, const char *what, cl_error *err)
{
    cl__bytes v = {NULL, 0};
    cl_status st = der_take(in, TAG_INTEGER, &v, what, err);

    if (st != CL_OK) {
        return st;
    }
    if (v.n == 0) {
        return invalid(err, "the PKCS#8 DER has an empty INTEGER (%s)", what);
    }
    if (v.p[0] & 0x80) {
        return invalid(err, "the PKCS#8 DER has a negative INTEGER (%s)", what);
    }
    if (v.n > 1 && v.p[0] == 0 && !(v.p[1] & 0x80)) {
        return invalid(err, "the PKCS#8 DER has a non-minimally encoded INTEGER (%s)", what);
    }
    /* Minimal encoding leaves at most the one zero byte that keeps the sign, or zero itself. */
    if (v.p[0] == 0) {
        v.p++;
        v.n--;
    }
    *val = v;
    return CL_OK;
}

/* Takes a version INTEGER, which must be the small number expected. */
static cl_status der_version(cl__bytes *in, unsigned expected, const char *what, cl_error *err)
{
    cl__bytes v = {NULL, 0};
    cl_status st = der_uint(in, &v, what, err);

    if (st != CL_OK) {
        return st;
    }
    if (!(v.n == 0 && expected == 0) && !(v.n == 1 && v.p[0] == expected)) {
        return invalid(err, "%s is not %u", what, expected);
    }
    return CL_OK;
}

/* The dotted form of an OID's contents into buf, for messages; "?" where it is malformed. */
static void oid_text(cl__bytes oid, char *buf, size_t size)
{
    size_t used = 0;
    unsigned long arc = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < oid.n && used < size; i++) {
        arc = arc << 7 | (oid.p[i] & 0x7fu);
        if (arc > 0xffffffffu) {
            snprintf(buf, size, "?");
            return;
        }
        if (oid.p[i] & 0x80) {
            continue;
        }
        if (used == 0) {
            unsigned long first = arc < 80 ? arc / 40 : 2;
            used += (size_t)snprintf(buf, size, "%lu.%lu", first, arc - first * 40);
        } else {
            used += (size_t)snprintf(buf + used, size - used, ".%lu", arc);
        }
        arc = 0;
    }
}

/* SEC1 ECPrivateKey (RFC 5915), version 1, on P-256. */
static cl_status parse_ec(cl__bytes key, cl__pkcs8 *k, cl_error *err)
{
    cl__bytes ec;
    cl__bytes d;
    size_t zeros = 0;
    cl_status st = der_take(&key, TAG_SEQUENCE, &ec, "the ECPrivateKey SEQUENCE", err);

    if (st == CL_OK) {
        st = der_end(key, "the ECPrivateKey", err);
    }
    if (st == CL_OK) {
        st = der_version(&ec, 1, "the ECPrivateKey version", err);
    }
    if (st == CL_OK) {
        st = der_take(&ec, TAG_OCTET_STRING, &d, "the EC private key OCTET STRING", err);
    }
    if (st != CL_OK) {
        return st;
    }
    while (zeros < d.n && d.p[zeros] == 0) {
        zeros++;
    }
    if (d.n == 0) {
        return invalid(err, "the EC private key is empty");
    }
    if (d.n - zeros > EC_SCALAR_BYTES) {
        return invalid(err, "the EC private key is longer than 32 bytes, too long for P-256");
    }
    if (ec.n > 0 && ec.p[0] == TAG_CONTEXT_0) {
        cl__bytes params;
        cl__bytes curve;

        st = der_take(&ec, TAG_CONTEXT_0, &params, "the ECPrivateKey parameters", err);
        if (st == CL_OK) {
            st = der_take(&params, TAG_OID, &curve, "the ECPrivateKey's curve OID", err);
        }
        if (st == CL_OK) {
            st = der_end(params, "the ECPrivateKey's curve OID", err);
        }
        if (st != CL_OK) {
            return st;
        }
        if (!bytes_are(curve, OID_P256, sizeof(OID_P256))) {
            return invalid(
                err,
                "the ECPrivateKey is not on P-256 (prime256v1): its parameters name another curve");
        }
    }
    k->pub.p = NULL;
    k->pub.n = 0;
    if (ec.n > 0 && ec.p[0] == TAG_CONTEXT_1) {
        cl__bytes wrapper;
        cl__bytes bits;

        st = der_take(&ec, TAG_CONTEXT_1, &wrapper, "the ECPrivateKey public key", err);
        if (st == CL_OK) {
            st = der_take(&wrapper, TAG_BIT_STRING, &bits, "the EC public key BIT STRING", err);
        }
        if (st == CL_OK) {
            st = der_end(wrapper, "the EC public key BIT STRING", err);
        }
        if (st != CL_OK) {
            return st;
        }
        if (bits.n != 1 + EC_POINT_BYTES || bits.p[0] != 0 || bits.p[1] != 0x04) {
            return invalid(err, "the EC public key is not an uncompressed P-256 point (a BIT "
                                "STRING of 65 bytes starting 0x04, no unused bits)");
        }
        k->pub.p = bits.p + 1;
        k->pub.n = EC_POINT_BYTES;
    }
    st = der_end(ec, "the ECPrivateKey's fields", err);
    if (st != CL_OK) {
        return st;
    }
    k->type = CL__PKCS8_EC_P256;
    k->d = d;
    return CL_OK;
}

/* PKCS#1 RSAPrivateKey, version 0: two primes, no otherPrimeInfos. */
static cl_status parse_rsa(cl__bytes key, cl__pkcs8 *k, cl_error *err)
{
    static const char *const names[8] = {
        "the RSA modulus",     "the RSA public exponent",  "the RSA private exponent",
        "the RSA prime p",     "the RSA prime q",          "the RSA exponent dp",
        "the RSA exponent dq", "the RSA coefficient qinv",
    };
    cl__bytes *fields[8] = {&k->rsa_n, &k->rsa_e,  &k->rsa_d,  &k->rsa_p,
                            &k->rsa_q, &k->rsa_dp, &k->rsa_dq, &k->rsa_qi};
    cl__bytes rsa;
    cl_status st = der_take(&key, TAG_SEQUENCE, &rsa, "the RSAPrivateKey SEQUENCE", err);

    if (st == CL_OK) {
        st = der_end(key, "the RSAPrivateKey", err);
    }
    if (st == CL_OK) {
        st = der_version(&rsa, 0, "the RSAPrivateKey version (multi-prime keys are not supported)",
                         err);
    }
    for (size_t i = 0; i < 8 && st == CL_OK; i++) {
        st = der_uint(&rsa, fields[i], names[i], err);
    }
    if (st == CL_OK) {
        st = der_end(rsa, "the RSAPrivateKey's coefficient", err);
    }
    if (st == CL_OK) {
        k->type = CL__PKCS8_RSA;
    }
    return st;
}

/* PrivateKeyInfo (RFC 5208), version 0; the attributes are skipped. */
static cl_status parse_der(cl__bytes in, cl__pkcs8 *k, cl_error *err)
{
    cl__bytes info;
    cl__bytes alg;
    cl__bytes oid;
    cl__bytes key;
    char dotted[64];
    cl_status st = der_take(&in, TAG_SEQUENCE, &info, "the PrivateKeyInfo SEQUENCE", err);

    if (st == CL_OK) {
        st = der_end(in, "the key", err);
    }
    if (st == CL_OK) {
        st = der_version(&info, 0, "the PrivateKeyInfo version", err);
    }
    if (st == CL_OK) {
        st = der_take(&info, TAG_SEQUENCE, &alg, "the AlgorithmIdentifier", err);
    }
    if (st == CL_OK) {
        st = der_take(&alg, TAG_OID, &oid, "the key algorithm OID", err);
    }
    if (st == CL_OK) {
        st = der_take(&info, TAG_OCTET_STRING, &key, "the privateKey OCTET STRING", err);
    }
    if (st == CL_OK && info.n > 0 && info.p[0] == TAG_CONTEXT_0) {
        cl__bytes attributes;
        st = der_take(&info, TAG_CONTEXT_0, &attributes, "the attributes", err);
    }
    if (st == CL_OK) {
        st = der_end(info, "the PrivateKeyInfo's privateKey", err);
    }
    if (st != CL_OK) {
        return st;
    }

    if (bytes_are(oid, OID_EC_PUBLIC_KEY, sizeof(OID_EC_PUBLIC_KEY))) {
        cl__bytes curve;

        if (alg.n > 0 && alg.p[0] != TAG_OID) {
            return invalid(err, "the EC key is not on P-256: its curve is not a named curve");
        }
        st = der_take(&alg, TAG_OID, &curve, "the EC key's curve OID", err);
        if (st == CL_OK) {
            st = der_end(alg, "the EC key's curve OID", err);
        }
        if (st != CL_OK) {
            return st;
        }
        if (!bytes_are(curve, OID_P256, sizeof(OID_P256))) {
            oid_text(curve, dotted, sizeof(dotted));
            return invalid(err, "the EC key is not on P-256 (prime256v1): its curve is %s", dotted);
        }
        return parse_ec(key, k, err);
    }
    if (bytes_are(oid, OID_RSA_ENCRYPTION, sizeof(OID_RSA_ENCRYPTION))) {
        /* RFC 8017 says NULL; absent parameters are a common enough slip to forgive. */
        if (alg.n > 0) {
            cl__bytes null;

            if (alg.p[0] != TAG_NULL) {
                return invalid(err, "the rsaEncryption parameters are not NULL");
            }
            st = der_take(&alg, TAG_NULL, &null, "the rsaEncryption NULL", err);
            if (st == CL_OK && null.n != 0) {
                st = invalid(err, "the rsaEncryption NULL is not empty");
            }
            if (st == CL_OK) {
                st = der_end(alg, "the rsaEncryption parameters", err);
            }
            if (st != CL_OK) {
                return st;
            }
        }
        return parse_rsa(key, k, err);
    }
    oid_text(oid, dotted, sizeof(dotted));
    return invalid(err,
                   "PKCS#8 key algorithm %s is neither id-ecPublicKey on P-256 nor "
                   "rsaEncryption",
                   dotted);
}

/* Finds the base64 between the BEGIN and END lines, refusing any other PEM. */
static cl_status pem_body(const char *pem, const char **body, size_t *len, cl_error *err)
{
    const char *s = pem;
    const char *end;

    while (is_space(*s)) {
        s++;
    }
    if (starts_with(s, PEM_BEGIN_ENCRYPTED)) {
        return invalid(err, "the key is encrypted PKCS#8 (BEGIN ENCRYPTED PRIVATE KEY); only "
                            "unencrypted keys are supported");
    }
    if (!starts_with(s, PEM_BEGIN_ANY)) {
        return invalid(err, "the text is not PEM: it does not start with -----BEGIN");
    }
    if (!starts_with(s, PEM_BEGIN)) {
        const char *label = s + strlen(PEM_BEGIN_ANY);
        int n = 0;

        while (n < 40 && label[n] != '\0' && label[n] != '-' && label[n] != '\n') {
            n++;
        }
        return invalid(err,
                       "the PEM label is \"%.*s\", not \"PRIVATE KEY\" (unencrypted PKCS#8; "
                       "`openssl pkey` converts a key to it)",
                       n, label);
    }
    s += strlen(PEM_BEGIN);
    if (*s == '\r') {
        s++;
    }
    if (*s != '\n') {
        return invalid(err, "the PEM's BEGIN line has text after it");
    }
    end = strstr(s, PEM_END);
    if (end == NULL) {
        return invalid(err, "the PEM has no %s line", PEM_END);
    }
    for (const char *t = end + strlen(PEM_END); *t != '\0'; t++) {
        if (!is_space(*t)) {
            return invalid(err, "the PEM has text after its END line");
        }
    }
    *body = s;
    *len = (size_t)(end - s);
    return CL_OK;
}

cl_status cl__pkcs8_read(const char *pem, cl__pkcs8 *out, cl_error *err)
{
    cl__pkcs8 k;
    struct base64_decode_ctx b64;
    const char *body = NULL;
    size_t len = 0;
    size_t der_len = 0;
    cl_status st;

    memset(&k, 0, sizeof(k));
    if (pem == NULL) {
        return invalid(err, "no PEM was given");
    }
    if (strnlen(pem, CL__PKCS8_PEM_MAX + 1) > CL__PKCS8_PEM_MAX) {
        return invalid(err, "the PEM is longer than %d bytes", CL__PKCS8_PEM_MAX);
    }
    st = pem_body(pem, &body, &len, err);
    if (st != CL_OK) {
        return st;
    }
    /* One byte more, so that an empty body still gets a buffer of its own. */
    k.der = malloc(BASE64_DECODE_LENGTH(len) + 1);
    if (k.der == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory reading a PKCS#8 key");
    }
    /*
     * Nettle skips whitespace anywhere and refuses other characters, missing or misplaced
     * padding and non-zero bits left over at the end, so each DER has one base64 spelling.
     */
    base64_decode_init(&b64);
    if (!base64_decode_update(&b64, &der_len, k.der, len, body) || !base64_decode_final(&b64)) {
        st = invalid(err, "the PEM's base64 is malformed");
        goto out;
    }
    st = parse_der((cl__bytes){k.der, der_len}, &k, err);
out:
    /* The decoder's state holds the last bits of the key it decoded. */
    explicit_bzero(&b64, sizeof(b64));
    if (st != CL_OK) {
        explicit_bzero(k.der, BASE64_DECODE_LENGTH(len) + 1);
        free(k.der);
        return st;
    }
    *out = k;
    return CL_OK;
}

void cl__pkcs8_free(cl__pkcs8 *k)
{
    if (k == NULL) {
        return;
    }
    if (k->der != NULL) {
        /*
         * The struct keeps no length, but the DER has one: cl__pkcs8_read accepted its outer
         * SEQUENCE, whose header says where the key ends.
         */
        cl__bytes whole = {k->der, (size_t)-1};
        cl__bytes info;
        size_t n = 0;

        if (der_take(&whole, TAG_SEQUENCE, &info, "the PrivateKeyInfo SEQUENCE", NULL) == CL_OK) {
            n = (size_t)(info.p + info.n - k->der);
        }
        explicit_bzero(k->der, n);
        free(k->der);
    }
    memset(k, 0, sizeof(*k));
}

/* The bytes a DER length takes; the writers' lengths stay below 2^24 (see the callers). */
static size_t der_length_size(size_t n)
{
    return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 4;
}

static size_t der_size(size_t content)
{
    return 1 + der_length_size(content) + content;
}

static unsigned char *put_header(unsigned char *w, unsigned char tag, size_t n)
{
    size_t count = der_length_size(n) - 1;

    *w++ = tag;
    if (count == 0) {
        *w++ = (unsigned char)n;
        return w;
    }
    *w++ = (unsigned char)(0x80 | count);
    for (size_t i = count; i > 0; i--) {
        *w++ = (unsigned char)(n >> (8 * (i - 1)));
    }
    return w;
}

static unsigned char *put_tlv(unsigned char *w, unsigned char tag, const void *p, size_t n)
{
    w = put_header(w, tag, n);
    memcpy(w, p, n);
    return w + n;
}

/* The contents of the INTEGER of unsigned b, which has no leading zero bytes. */
static size_t uint_size(cl__bytes b)
{
    return b.n == 0 ? 1 : b.n + (b.p[0] >> 7);
}

static unsigned char *put_uint(unsigned char *w, cl__bytes b)
{
    w = put_header(w, TAG_INTEGER, uint_size(b));
    if (b.n == 0) {
        *w++ = 0;
        return w;
    }
    if (b.p[0] & 0x80) {
        *w++ = 0;
    }
    memcpy(w, b.p, b.n);
    return w + b.n;
}

/* Wraps der in PEM with 64-character lines, as OpenSSL does; then wipes and frees der. */
static char *pem_wrap(unsigned char *der, size_t n)
{
    size_t lines = (n + 47) / 48;
    size_t size = strlen(PEM_BEGIN) + 1 + BASE64_ENCODE_RAW_LENGTH(n) + lines + strlen(PEM_END) + 2;
    char *pem = malloc(size);
    char *w = pem;

    if (pem != NULL) {
        w += sprintf(w, "%s\n", PEM_BEGIN);
        for (size_t off = 0; off < n; off += 48) {
            size_t chunk = n - off < 48 ? n - off : 48;

            base64_encode_raw(w, chunk, der + off);
            w += BASE64_ENCODE_RAW_LENGTH(chunk);
            *w++ = '\n';
        }
        sprintf(w, "%s\n", PEM_END);
    }
    explicit_bzero(der, n);
    free(der);
    return pem;
}

char *cl__pkcs8_write_ec(const unsigned char d[32], const unsigned char pub[65])
{
    static const unsigned char version_0[] = {0};
    static const unsigned char version_1[] = {1};
    size_t alg = der_size(sizeof(OID_EC_PUBLIC_KEY)) + der_size(sizeof(OID_P256));
    size_t bits = 1 + EC_POINT_BYTES;
    size_t ec = der_size(sizeof(version_1)) + der_size(EC_SCALAR_BYTES) + der_size(der_size(bits));
    size_t info = der_size(sizeof(version_0)) + der_size(alg) + der_size(der_size(ec));
    size_t n = der_size(info);
    unsigned char *der = malloc(n);
    unsigned char *w = der;

    if (der == NULL) {
        return NULL;
    }
    w = put_header(w, TAG_SEQUENCE, info);
    w = put_tlv(w, TAG_INTEGER, version_0, sizeof(version_0));
    w = put_header(w, TAG_SEQUENCE, alg);
    w = put_tlv(w, TAG_OID, OID_EC_PUBLIC_KEY, sizeof(OID_EC_PUBLIC_KEY));
    w = put_tlv(w, TAG_OID, OID_P256, sizeof(OID_P256));
    w = put_header(w, TAG_OCTET_STRING, der_size(ec));
    w = put_header(w, TAG_SEQUENCE, ec);
    w = put_tlv(w, TAG_INTEGER, version_1, sizeof(version_1));
    w = put_tlv(w, TAG_OCTET_STRING, d, EC_SCALAR_BYTES);
    w = put_header(w, TAG_CONTEXT_1, der_size(bits));
    w = put_header(w, TAG_BIT_STRING, bits);
    *w++ = 0; /* no unused bits */
    memcpy(w, pub, EC_POINT_BYTES);
    return pem_wrap(der, n);
}

char *cl__pkcs8_write_rsa(const cl__bytes v[8])
{
    static const unsigned char version_0[] = {0};
    cl__bytes ints[8];
    size_t alg = der_size(sizeof(OID_RSA_ENCRYPTION)) + der_size(0);
    size_t rsa = der_size(sizeof(version_0));
    size_t info;
    size_t n;
    unsigned char *der;
    unsigned char *w;

    for (size_t i = 0; i < 8; i++) {
        ints[i] = v[i];
        while (ints[i].n > 0 && ints[i].p[0] == 0) {
            ints[i].p++;
            ints[i].n--;
        }
        /* The cap keeps every length below 2^24, which der_length_size assumes. */
        if (ints[i].n > CL__PKCS8_RSA_INT_MAX) {
            return NULL;
        }
        rsa += der_size(uint_size(ints[i]));
    }
    info = der_size(sizeof(version_0)) + der_size(alg) + der_size(der_size(rsa));
    n = der_size(info);
    der = malloc(n);
    if (der == NULL) {
        return NULL;
    }
    w = put_header(der, TAG_SEQUENCE, info);
    w = put_tlv(w, TAG_INTEGER, version_0, sizeof(version_0));
    w = put_header(w, TAG_SEQUENCE, alg);
    w = put_tlv(w, TAG_OID, OID_RSA_ENCRYPTION, sizeof(OID_RSA_ENCRYPTION));
    w = put_header(w, TAG_NULL, 0);
    w = put_header(w, TAG_OCTET_STRING, der_size(rsa));
    w = put_header(w, TAG_SEQUENCE, rsa);
    w = put_tlv(w, TAG_INTEGER, version_0, sizeof(version_0));
    for (size_t i = 0; i < 8; i++) {
        w = put_uint(w, ints[i]);
    }
    return pem_wrap(der, n);
}
