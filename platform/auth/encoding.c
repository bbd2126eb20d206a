/* base64url and the constant-time comparison (cleave/jwt.h). */
#include "cleave/jwt.h"

#include <nettle/memops.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cl_base64url_encode(const void *in, size_t n, char *out, size_t size)
{
    const unsigned char *p = in;
    size_t len = CL_BASE64URL_LEN(n);
    size_t o = 0;
    size_t i = 0;

    if (n == 0 || len >= size) {
        return 0;
    }
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* The 6-bit value of a base64url character, or -1 for any other byte. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

cl_status cl_base64url_decode(const char *in, size_t n, void *out, size_t size, size_t *out_len,
                              cl_error *err)
{
    unsigned char *o = out;
    size_t len = (n / 4) * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    size_t w = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    /* One character alone carries 6 bits, not a byte: no encoder makes that length. */
    if (n % 4 == 1) {
        return cl_error_set(err, CL_INVALID, NULL, "base64url of impossible length %zu", n);
    }
    if (len > size) {
        return cl_error_set(err, CL_INVALID, NULL, "base64url decodes to %zu bytes, over %zu", len,
                            size);
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);

        if (v < 0) {
            return cl_error_set(err, CL_INVALID, NULL, "not base64url at offset %zu", i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /*
     * Unused trailing bits must be zero, so that every byte string has exactly one
     * encoding: a token cannot be altered into another that still verifies.
     */
    if (acc != 0) {
        return cl_error_set(err, CL_INVALID, NULL, "base64url with nonzero trailing bits");
    }
    *out_len = w;
    return CL_OK;
}

bool cl_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    if (alen == 0) {
        return true;
    }
    return memeql_sec(a, b, alen) != 0;
}
