/*
 * What HTTP caches and content codings need from the server (ADR 0040): the request's
 * Accept-Encoding weighed for gzip, entity-tag lists matched (If-None-Match), an ETag made
 * from a body, and gzip itself with a zlib stream kept per worker thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "cleave/log.h"
#include "cleave/util.h"
#include "http_internal.h"

/* RFC 9110 5.6.3: optional white space. */
static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/*
 * A qvalue (RFC 9110 12.4.2) s[0..n) in thousandths: "0" ["." 0*3DIGIT] or "1" ["."
 * 0*3("0")]. -1 when malformed.
 */
static int parse_qvalue(const char *s, size_t n)
{
    int q;
    int scale = 100;

    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && s[1] != '.') || n > 5) {
        return -1;
    }
    q = (s[0] - '0') * 1000;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        q += (s[i] - '0') * scale;
        scale /= 10;
    }
    return q <= 1000 ? q : -1;
}

/*
 * The weight of one Accept-Encoding member m[0..n) ("gzip;q=0.5"): its coding's length in
 * *name_len and the qvalue in thousandths (1000 without q), -1 when the member is
 * malformed (a malformed member accepts nothing).
 */
static int member_weight(const char *m, size_t n, size_t *name_len)
{
    size_t len = 0;
    int q = 1000;

    while (len < n && m[len] != ';' && m[len] != ' ' && m[len] != '\t') {
        len++;
    }
    *name_len = len;
    for (size_t i = len; i < n;) {
        size_t start;
        size_t end;

        while (i < n && (m[i] == ' ' || m[i] == '\t')) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (m[i] != ';') {
            return -1;
        }
        i++;
        while (i < n && (m[i] == ' ' || m[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < n && m[i] != ';') {
            i++;
        }
        end = i;
        while (end > start && (m[end - 1] == ' ' || m[end - 1] == '\t')) {
            end--;
        }
        if (end - start >= 2 && (m[start] == 'q' || m[start] == 'Q') && m[start + 1] == '=') {
            q = parse_qvalue(m + start + 2, end - start - 2);
        }
        if (q < 0) {
            return -1;
        }
    }
    return q;
}

int cl__http_accepts_gzip(const char *accept_encoding)
{
    const char *s = accept_encoding;
    int gzip = -1; /* the weight gzip (or x-gzip) is given by name; -1 when not named */
    int any = -1;  /* the weight of "*" */

    if (s == NULL) {
        return 0;
    }
    while (*s != '\0') {
        size_t n;
        size_t name_len;
        int w;

        s = skip_ows(s);
        n = strcspn(s, ",");
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
            n--;
        }
        if (n > 0) {
            w = member_weight(s, n, &name_len);
            if ((name_len == 4 && strncasecmp(s, "gzip", 4) == 0) ||
                (name_len == 6 && strncasecmp(s, "x-gzip", 6) == 0)) {
                gzip = w > gzip ? w : gzip;
            } else if (name_len == 1 && s[0] == '*') {
                any = w > any ? w : any;
            }
        }
        s += strcspn(s, ",");
        if (*s == ',') {
            s++;
        }
    }
    /* A coding named explicitly wins over "*" (RFC 9110 12.5.3), so gzip;q=0 refuses. */
    return gzip >= 0 ? gzip > 0 : any > 0;
}

int cl__http_compressible(const char *ctype)
{
    size_t n;

    if (ctype == NULL) {
        return 0;
    }
    n = strcspn(ctype, "; \t");
    if (n >= 5 && strncasecmp(ctype, "text/", 5) == 0) {
        return 1;
    }
    if (n == 16 && strncasecmp(ctype, "application/json", 16) == 0) {
        return 1;
    }
    /* Structured syntax suffix (RFC 6839): problem+json, merge-patch+json and the like. */
    return n > 5 && strncasecmp(ctype + n - 5, "+json", 5) == 0;
}

/* Whether c may appear inside an entity-tag's quotes (RFC 9110 8.8.3: etagc). */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/*
 * Reads one entity-tag at s: [W/] DQUOTE *etagc DQUOTE. Returns its length, 0 when s
 * does not start with one; *opaque and *opaque_len receive the quoted part (quotes
 * included), which is what the weak comparison compares.
 */
static size_t read_etag(const char *s, const char **opaque, size_t *opaque_len)
{
    size_t i = 0;

    if (s[0] == 'W' && s[1] == '/') {
        i = 2;
    }
    if (s[i] != '"') {
        return 0;
    }
    *opaque = s + i;
    i++;
    while (is_etagc((unsigned char)s[i])) {
        i++;
    }
    if (s[i] != '"') {
        return 0;
    }
    i++;
    *opaque_len = (size_t)(s + i - *opaque);
    return i;
}

int cl__http_etag_match(const char *list, const char *etag)
{
    const char *mine = NULL;
    size_t mine_len = 0;
    const char *s;
    int matched = 0;

    if (etag != NULL && read_etag(etag, &mine, &mine_len) != strlen(etag)) {
        mine = NULL;
    }
    s = skip_ows(list);
    if (*s == '*' && *skip_ows(s + 1) == '\0') {
        return 1;
    }
    /* 1#entity-tag, whose empty members a recipient accepts (RFC 9110 5.6.1.2). */
    while (*s != '\0') {
        const char *opaque;
        size_t opaque_len;
        size_t n;

        s = skip_ows(s);
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\0') {
            break;
        }
        n = read_etag(s, &opaque, &opaque_len);
        if (n == 0) {
            return -1;
        }
        /* The weak comparison (RFC 9110 8.8.3.2) ignores W/ on both sides. */
        if (mine != NULL && opaque_len == mine_len && memcmp(opaque, mine, mine_len) == 0) {
            matched = 1;
        }
        s = skip_ows(s + n);
        if (*s != ',' && *s != '\0') {
            return -1;
        }
    }
    return matched;
}

int cl__http_body_etag(const void *data, size_t len, char *out, size_t size)
{
    unsigned char md[CL_SHA256_SIZE];
    size_t used = 0;

    /* 128 bits of SHA-256: a collision would serve a stale body; a guessable hash could. */
    if (size < 35) {
        return -1;
    }
    cl_sha256(data, len, md);
    out[used++] = '"';
    for (unsigned int i = 0; i < 16; i++) {
        snprintf(out + used, size - used, "%02x", md[i]);
        used += 2;
    }
    out[used++] = '"';
    out[used] = '\0';
    return 0;
}

/*
 * A worker thread's deflate stream and output buffer (cl__http_worker.gzip): deflateInit2
 * allocates about 256 KiB and clears part of it, which per response would cost more than
 * compressing a small body; deflateReset makes the stream as new.
 */
typedef struct gzip_state {
    z_stream zs;
    unsigned char *out;
    size_t cap;
} gzip_state;

void cl__http_gzip_free(void *gzip)
{
    gzip_state *g = gzip;

    if (g != NULL) {
        deflateEnd(&g->zs);
        free(g->out);
        free(g);
    }
}

static gzip_state *gzip_thread_state(void)
{
    cl__http_worker *w = cl__http_worker_get();
    gzip_state *g;

    if (w == NULL || w->gzip != NULL) {
        return w != NULL ? w->gzip : NULL;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    /* 15 + 16: a 32 KiB window with the gzip wrapper (RFC 1952) instead of zlib's. */
    if (deflateInit2(&g->zs, CL__HTTP_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        free(g);
        return NULL;
    }
    w->gzip = g;
    return g;
}

int cl__http_gzip(const void *data, size_t len, const unsigned char **out, size_t *out_len)
{
    gzip_state *g = gzip_thread_state();
    size_t bound;
    int rc;

    if (g == NULL || len > (size_t)UINT32_MAX) {
        return -1;
    }
    bound = deflateBound(&g->zs, (uLong)len);
    if (bound > g->cap) {
        unsigned char *grown = realloc(g->out, bound);
        if (grown == NULL) {
            return -1;
        }
        g->out = grown;
        g->cap = bound;
    }
    if (deflateReset(&g->zs) != Z_OK) {
        return -1;
    }
    g->zs.next_in = (Bytef *)data; /* zlib's API is not const; it only reads */
    g->zs.avail_in = (uInt)len;
    g->zs.next_out = g->out;
    g->zs.avail_out = (uInt)g->cap;
    rc = deflate(&g->zs, Z_FINISH);
    if (rc != Z_STREAM_END) {
        return -1;
    }
    *out = g->out;
    *out_len = g->zs.total_out;
    return 0;
}
