/*
 * List cursors, name prefix bounds and update timestamps.
 *
 * A cursor is base64url (no padding) of "c1:<last id>:<check>", where check digests the
 * listing's filters and the id. The version tag lets the format change later; the check
 * makes a cursor refuse to continue a listing with other filters (which would silently
 * skip or repeat products) and catches a cursor that was corrupted or edited. It is not
 * a secret: forging one only lets a caller start a listing after some id, which it can
 * do anyway.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/util.h"

/* Longer cursors are refused unread; ours are about 50 characters. */
#define CURSOR_MAX 128

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* FNV-1a, 64 bits: stable across machines and builds, which a cursor needs. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Marks absence apart from the empty string, and ends each value unambiguously. */
static uint64_t digest_field(uint64_t h, const char *s)
{
    unsigned char present = s != NULL;
    uint64_t len = s != NULL ? strlen(s) : 0;
    unsigned char lenbuf[8];

    for (int i = 0; i < 8; i++) {
        lenbuf[i] = (unsigned char)(len >> (8 * i));
    }
    h = fnv1a(h, &present, 1);
    h = fnv1a(h, lenbuf, sizeof(lenbuf));
    return s != NULL ? fnv1a(h, s, len) : h;
}

uint64_t catalog__filters_digest(const char *category, const char *tag, const char *prefix)
{
    uint64_t h = 0xcbf29ce484222325ull;

    h = digest_field(h, category);
    h = digest_field(h, tag);
    return digest_field(h, prefix);
}

/* Binds the id to the filters' digest, so that neither can be changed alone. */
static uint64_t cursor_check(int64_t last_id, uint64_t digest)
{
    unsigned char buf[16];

    for (int i = 0; i < 8; i++) {
        buf[i] = (unsigned char)(digest >> (8 * i));
        buf[8 + i] = (unsigned char)((uint64_t)last_id >> (8 * i));
    }
    return fnv1a(0xcbf29ce484222325ull, buf, sizeof(buf));
}

char *catalog__cursor_encode(int64_t last_id, uint64_t digest)
{
    char raw[64];
    int len;
    char *out;
    size_t o = 0;

    len = snprintf(raw, sizeof(raw), "c1:%" PRId64 ":%016" PRIx64, last_id,
                   cursor_check(last_id, digest));
    if (len < 0 || (size_t)len >= sizeof(raw)) {
        return NULL;
    }
    out = malloc(((size_t)len + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    for (int i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        int n = len - i < 3 ? len - i : 3;

        if (n > 1) {
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        }
        if (n > 2) {
            v |= (unsigned char)raw[i + 2];
        }
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (n > 1) {
            out[o++] = b64url[(v >> 6) & 63];
        }
        if (n > 2) {
            out[o++] = b64url[v & 63];
        }
    }
    out[o] = '\0';
    return out;
}

static int b64url_value(char c)
{
    const char *p = strchr(b64url, c);

    return c != '\0' && p != NULL ? (int)(p - b64url) : -1;
}

/*
 * Decodes base64url without padding into out[size], NUL-terminated. Only the canonical
 * form is accepted (unused low bits zero), so every cursor has exactly one spelling.
 */
static bool b64url_decode(const char *in, char *out, size_t size)
{
    size_t len = strlen(in);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1 || len / 4 * 3 + 3 >= size) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);

        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        return false;
    }
    out[o] = '\0';
    return true;
}

/* Reads 1-19 decimal digits at *p without sign or leading zero; advances *p. */
static bool parse_id(const char **p, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    int n = 0;

    if (*s < '1' || *s > '9') {
        return false;
    }
    for (; *s >= '0' && *s <= '9'; s++, n++) {
        if (v > (INT64_MAX - (*s - '0')) / 10) {
            return false;
        }
        v = v * 10 + (*s - '0');
    }
    *p = s;
    *out = v;
    return n > 0;
}

cl_status catalog__cursor_decode(cl_ctx *ctx, const char *cursor, uint64_t digest, int64_t *last_id)
{
    char raw[CURSOR_MAX] = "";
    char want[17];
    const char *p;
    int64_t id;

    if (strlen(cursor) > CURSOR_MAX || !b64url_decode(cursor, raw, sizeof(raw)) ||
        strncmp(raw, "c1:", 3) != 0) {
        return cl_fail(ctx, CL_INVALID, "cursor", "cursor is not one this API returned");
    }
    p = raw + 3;
    if (!parse_id(&p, &id) || *p != ':') {
        return cl_fail(ctx, CL_INVALID, "cursor", "cursor is not one this API returned");
    }
    snprintf(want, sizeof(want), "%016" PRIx64, cursor_check(id, digest));
    if (strcmp(p + 1, want) != 0) {
        return cl_fail(ctx, CL_INVALID, "cursor",
                       "cursor was altered or belongs to a listing with other filters");
    }
    *last_id = id;
    return CL_OK;
}

bool catalog__prefix_successor(const char *prefix, char *hi, size_t size)
{
    size_t n = strlen(prefix);

    if (n >= size) {
        return false;
    }
    memcpy(hi, prefix, n + 1);
    /* Trailing 0xFF bytes cannot be incremented: the successor is that of what precedes. */
    while (n > 0 && (unsigned char)hi[n - 1] == 0xFF) {
        n--;
    }
    if (n == 0) {
        return false;
    }
    hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1);
    hi[n] = '\0';
    return true;
}

void catalog__next_timestamp(const char *prev, char out[32])
{
    int64_t ms;

    cl_now_rfc3339(out);
    if (prev == NULL || strcmp(out, prev) > 0 || cl_rfc3339_parse(prev, &ms) != CL_OK) {
        return;
    }
    cl_rfc3339_format(ms + 1, out);
}
