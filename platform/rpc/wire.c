/*
 * One HTTP/1.1 exchange over a connection curl opened and keeps (wire.h). The answer is
 * read into one buffer that grows by doubling; a chunked body is decoded in place as it
 * arrives. Every size is bounded: the head by CL__RPC_MAX_HEAD, the body by
 * CL__RPC_MAX_RESPONSE.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "wire.h"

/* The first read's room: an RPC answer's head and body usually fit. */
#define WIRE_FIRST_ROOM ((size_t)4096)
/* A chunk-size or trailer line longer than this is not HTTP we accept. */
#define WIRE_LINE_MAX   ((size_t)1024)

int64_t cl__rpc_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static curl_socket_t socket_of(CURL *h)
{
    curl_socket_t fd = CURL_SOCKET_BAD;

    if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK) {
        return CURL_SOCKET_BAD;
    }
    return fd;
}

bool cl__rpc_conn_idle_ok(CURL *h)
{
    curl_socket_t fd = socket_of(h);
    struct pollfd p = {.fd = fd, .events = POLLIN};

    /* Readable while idle: the service closed it (or sent what nobody asked for). */
    return fd != CURL_SOCKET_BAD && poll(&p, 1, 0) == 0;
}

/* Waits until fd is ready for events or deadline_ns passes: 1 ready, 0 timed out, -1 error. */
static int wait_for(curl_socket_t fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int64_t left_ns = deadline_ns - cl__rpc_now_ns();
        struct pollfd p = {.fd = fd, .events = events};
        int n;

        if (left_ns <= 0) {
            return 0;
        }
        /* Rounded up, so that a wait never ends a little before the deadline and spins. */
        n = poll(&p, 1, (int)((left_ns + 999999) / 1000000));
        if (n > 0) {
            return (p.revents & (events | POLLHUP | POLLERR)) != 0 ? 1 : -1;
        }
        if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
}

static CURLcode send_all(CURL *h, curl_socket_t fd, const char *p, size_t len, int64_t deadline_ns)
{
    while (len > 0) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(h, p, len, &sent);

        if (rc == CURLE_AGAIN) {
            int w = wait_for(fd, POLLOUT, deadline_ns);

            if (w <= 0) {
                return w == 0 ? CURLE_OPERATION_TIMEDOUT : CURLE_SEND_ERROR;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            return CURLE_SEND_ERROR;
        }
        p += sent;
        len -= sent;
    }
    return CURLE_OK;
}

/* The answer being read: buf[0, end) arrived; the body starts at body_at once the head is read. */
typedef struct reader {
    char *buf;
    size_t cap;
    size_t end;
    size_t body_at;
    /* The body's framing once the head is read. */
    enum { BODY_LENGTH, BODY_CHUNKED, BODY_TO_CLOSE } framing;
    size_t length; /* BODY_LENGTH */
    /* BODY_CHUNKED, decoded in place: raw bytes from rd on, decoded ones end at wr. */
    enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE } ch;
    size_t rd;
    size_t wr;
    size_t chunk_left;
} reader;

/* Makes room for at least want more bytes, within limit bytes in all. */
static CURLcode grow(reader *r, size_t want, size_t limit)
{
    size_t cap = r->cap;
    char *p;

    if (r->end + want + 1 <= cap) {
        return CURLE_OK;
    }
    if (r->end + want + 1 > limit + 1) {
        return CURLE_FILESIZE_EXCEEDED;
    }
    while (cap < r->end + want + 1) {
        cap = cap < WIRE_FIRST_ROOM ? WIRE_FIRST_ROOM : cap * 2;
    }
    if (cap > limit + 1) {
        cap = limit + 1;
    }
    p = realloc(r->buf, cap);
    if (p == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    r->buf = p;
    r->cap = cap;
    return CURLE_OK;
}

/* Where "\r\n" starts in s[from, to), or to when it is not there yet. */
static size_t find_crlf(const char *s, size_t from, size_t to)
{
    for (size_t i = from; i + 1 < to; i++) {
        if (s[i] == '\r' && s[i + 1] == '\n') {
            return i;
        }
    }
    return to;
}

/* Where the blank line ending the head ("\r\n\r\n") starts in s[0, n), or n. */
static size_t find_blank(const char *s, size_t n)
{
    for (size_t i = find_crlf(s, 0, n); i + 3 < n; i = find_crlf(s, i + 2, n)) {
        if (s[i + 2] == '\r' && s[i + 3] == '\n') {
            return i;
        }
    }
    return n;
}

/* Whether header line [p, e) is named name (case-insensitive); *value is its trimmed value. */
static bool header_is(const char *p, const char *e, const char *name, const char **value)
{
    size_t n = strlen(name);

    if ((size_t)(e - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':') {
        return false;
    }
    p += n + 1;
    while (p < e && (*p == ' ' || *p == '\t')) {
        p++;
    }
    *value = p;
    return true;
}

/* Whether the comma-separated list [v, e) holds token (case-insensitive). */
static bool has_token(const char *v, const char *e, const char *token)
{
    size_t n = strlen(token);

    while (v < e) {
        const char *comma = memchr(v, ',', (size_t)(e - v));
        const char *stop = comma != NULL ? comma : e;
        const char *t = stop;

        while (v < stop && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }
        if ((size_t)(t - v) == n && strncasecmp(v, token, n) == 0) {
            return true;
        }
        v = comma != NULL ? comma + 1 : e;
    }
    return false;
}

/*
 * Reads the head in buf[0, head_end) (head_end at the blank line's "\r\n\r\n"): status,
 * framing and whether the connection stays open. CURLE_WEIRD_SERVER_REPLY when malformed.
 */
static CURLcode parse_head(reader *r, size_t head_end, cl__rpc_answer *a)
{
    const char *s = r->buf;
    size_t line_end = find_crlf(s, 0, head_end + 2);
    bool have_length = false, chunked = false, close = false;
    int minor;

    if (line_end < 12 || strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' ||
        s[11] > '9' || (line_end > 12 && s[12] != ' ')) {
        return CURLE_WEIRD_SERVER_REPLY;
    }
    minor = s[7] - '0';
    a->http = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    for (size_t at = line_end + 2; at < head_end + 2;) {
        size_t e = find_crlf(s, at, head_end + 2);
        const char *v = NULL;

        if (header_is(s + at, s + e, "Content-Length", &v)) {
            size_t n = 0;
            const char *p = v;

            /* Past the bound the digits only need to be read: the answer is refused anyway. */
            for (; p < s + e && *p >= '0' && *p <= '9'; p++) {
                n = n > CL__RPC_MAX_RESPONSE ? n : n * 10 + (size_t)(*p - '0');
            }
            while (p < s + e && (*p == ' ' || *p == '\t')) {
                p++;
            }
            /* Two different lengths mean two ways to frame the body: refused. */
            if (p == v || p != s + e || (have_length && n != r->length)) {
                return CURLE_WEIRD_SERVER_REPLY;
            }
            r->length = n;
            have_length = true;
        } else if (header_is(s + at, s + e, "Transfer-Encoding", &v)) {
            if (!has_token(v, s + e, "chunked")) {
                return CURLE_WEIRD_SERVER_REPLY;
            }
            chunked = true;
        } else if (header_is(s + at, s + e, "Connection", &v)) {
            close = close || has_token(v, s + e, "close");
        }
        at = e + 2;
    }
    r->body_at = head_end + 4;
    a->keep = minor == 1 && !close;
    if (a->http == 204 || a->http == 304) {
        r->framing = BODY_LENGTH;
        r->length = 0;
    } else if (chunked) {
        r->framing = BODY_CHUNKED;
        r->ch = CH_SIZE;
        r->rd = r->body_at;
        r->wr = r->body_at;
    } else if (have_length) {
        r->framing = BODY_LENGTH;
    } else {
        r->framing = BODY_TO_CLOSE;
        a->keep = false;
    }
    if (r->framing == BODY_LENGTH && r->length > CL__RPC_MAX_RESPONSE) {
        a->too_big = true;
        return CURLE_FILESIZE_EXCEEDED;
    }
    return CURLE_OK;
}

/* Parses a chunk-size line's hex digits [p, e) (extensions after ';' ignored). */
static CURLcode chunk_size(const char *p, const char *e, size_t *out)
{
    size_t n = 0;
    const char *start = p;

    for (; p < e; p++) {
        int d = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                         : -1;
        if (d < 0) {
            break;
        }
        if (n > CL__RPC_MAX_RESPONSE) {
            return CURLE_FILESIZE_EXCEEDED;
        }
        n = n * 16 + (size_t)d;
    }
    if (p == start || (p < e && *p != ';' && *p != ' ' && *p != '\t')) {
        return CURLE_WEIRD_SERVER_REPLY;
    }
    *out = n;
    return CURLE_OK;
}

/* Decodes the chunked bytes that arrived, in place; r->ch becomes CH_DONE at the end. */
static CURLcode dechunk(reader *r)
{
    CURLcode rc = CURLE_OK;
    bool more = true;

    while (more && r->ch != CH_DONE && r->rd < r->end) {
        if (r->ch == CH_DATA) {
            size_t n = r->end - r->rd < r->chunk_left ? r->end - r->rd : r->chunk_left;

            memmove(r->buf + r->wr, r->buf + r->rd, n);
            r->wr += n;
            r->rd += n;
            r->chunk_left -= n;
            r->ch = r->chunk_left == 0 ? CH_DATA_END : CH_DATA;
            continue;
        }
        if (r->ch == CH_DATA_END) {
            more = r->end - r->rd >= 2;
            if (more && (r->buf[r->rd] != '\r' || r->buf[r->rd + 1] != '\n')) {
                return CURLE_WEIRD_SERVER_REPLY;
            }
            if (more) {
                r->rd += 2;
                r->ch = CH_SIZE;
            }
            continue;
        }
        size_t e = find_crlf(r->buf, r->rd, r->end);
        if (e == r->end) {
            if (r->end - r->rd > WIRE_LINE_MAX) {
                return CURLE_WEIRD_SERVER_REPLY;
            }
            more = false;
            continue;
        }
        if (r->ch == CH_TRAILER) {
            /* Trailers are skipped; the empty line ends the message. */
            r->ch = e == r->rd ? CH_DONE : CH_TRAILER;
        } else {
            size_t n = 0;

            rc = chunk_size(r->buf + r->rd, r->buf + e, &n);
            if (rc != CURLE_OK) {
                return rc;
            }
            if (r->wr - r->body_at + n > CL__RPC_MAX_RESPONSE) {
                return CURLE_FILESIZE_EXCEEDED;
            }
            r->chunk_left = n;
            r->ch = n == 0 ? CH_TRAILER : CH_DATA;
        }
        r->rd = e + 2;
    }
    /* What is left undecoded moves down to the decoded bytes: the buffer holds no framing. */
    if (r->rd > r->wr) {
        memmove(r->buf + r->wr, r->buf + r->rd, r->end - r->rd + 1);
        r->end -= r->rd - r->wr;
        r->rd = r->wr;
    }
    return rc;
}

/* Whether the whole answer arrived (the head already read); *extra: bytes past its end. */
static bool complete(const reader *r, bool closed, bool *extra)
{
    *extra = false;
    switch (r->framing) {
    case BODY_LENGTH:
        *extra = r->end > r->body_at + r->length;
        return r->end >= r->body_at + r->length;
    case BODY_CHUNKED:
        *extra = r->ch == CH_DONE && r->rd < r->end;
        return r->ch == CH_DONE;
    case BODY_TO_CLOSE:
    default:
        return closed;
    }
}

/* Reads what is there into r (waiting for it first when wait_first): *closed at the end of stream.
 */
static CURLcode read_some(CURL *h, curl_socket_t fd, reader *r, bool *wait_first, bool *closed,
                          int64_t deadline_ns)
{
    size_t limit = (r->body_at != 0 ? r->body_at : CL__RPC_MAX_HEAD) + CL__RPC_MAX_RESPONSE;
    /* A chunked body carries its framing too: a little room for the chunk lines. */
    size_t room = r->body_at != 0 && r->framing == BODY_LENGTH
                      ? r->body_at + r->length - r->end
                      : (r->cap > r->end + 1 ? r->cap - r->end - 1 : WIRE_FIRST_ROOM);
    CURLcode rc;

    if (r->body_at != 0 && r->framing != BODY_LENGTH) {
        limit += limit / 8;
    }
    if (room == 0) {
        room = WIRE_FIRST_ROOM;
    }
    rc = grow(r, room, limit);
    if (rc != CURLE_OK) {
        return rc;
    }
    for (;;) {
        size_t n = 0;

        if (*wait_first) {
            int w = wait_for(fd, POLLIN, deadline_ns);

            if (w <= 0) {
                return w == 0 ? CURLE_OPERATION_TIMEDOUT : CURLE_RECV_ERROR;
            }
            *wait_first = false;
        }
        rc = curl_easy_recv(h, r->buf + r->end, r->cap - r->end - 1, &n);
        if (rc == CURLE_AGAIN) {
            *wait_first = true;
            continue;
        }
        if (rc != CURLE_OK) {
            return CURLE_RECV_ERROR;
        }
        r->end += n;
        r->buf[r->end] = '\0';
        *closed = n == 0;
        return CURLE_OK;
    }
}

CURLcode cl__rpc_exchange(CURL *h, bool tls, const char *req, size_t len, int64_t deadline_ns,
                          cl__rpc_answer *a)
{
    curl_socket_t fd = socket_of(h);
    reader r = {0};
    /*
     * The answer cannot be there yet when the request just went out: wait on the socket
     * before the first read rather than read in vain. Not with TLS, where curl may hold
     * decrypted bytes that the socket no longer shows.
     */
    bool wait_first = !tls;
    bool closed = false;
    bool extra = false;
    CURLcode rc;

    memset(a, 0, sizeof(*a));
    if (fd == CURL_SOCKET_BAD) {
        rc = CURLE_SEND_ERROR;
        goto out;
    }
    rc = send_all(h, fd, req, len, deadline_ns);
    while (rc == CURLE_OK) {
        if (r.body_at == 0) {
            size_t head_end = find_blank(r.buf, r.end);

            if (head_end < r.end) {
                rc = parse_head(&r, head_end, a);
                if (rc != CURLE_OK) {
                    break;
                }
                /* An interim answer (100 Continue): the real one follows it. */
                if (a->http < 200) {
                    memmove(r.buf, r.buf + r.body_at, r.end - r.body_at + 1);
                    r.end -= r.body_at;
                    r.body_at = 0;
                    continue;
                }
            }
        }
        if (r.body_at != 0) {
            if (r.framing == BODY_CHUNKED) {
                rc = dechunk(&r);
                if (rc != CURLE_OK) {
                    break;
                }
            }
            if (complete(&r, closed, &extra)) {
                break;
            }
        }
        if (closed) {
            rc = r.end == 0 ? CURLE_GOT_NOTHING : CURLE_RECV_ERROR;
            break;
        }
        if (r.body_at == 0 &&
            (r.end > CL__RPC_MAX_HEAD || (r.end > 0 && memchr(r.buf, '\0', r.end) != NULL))) {
            rc = CURLE_WEIRD_SERVER_REPLY;
            break;
        }
        rc = read_some(h, fd, &r, &wait_first, &closed, deadline_ns);
        a->received = a->received || r.end > 0;
    }
    if (rc == CURLE_FILESIZE_EXCEEDED) {
        a->too_big = true;
    }
    if (rc == CURLE_OK) {
        size_t body_len = r.framing == BODY_CHUNKED  ? r.wr - r.body_at
                          : r.framing == BODY_LENGTH ? r.length
                                                     : r.end - r.body_at;

        r.buf[r.body_at + body_len] = '\0';
        a->body = r.buf + r.body_at;
        a->len = body_len;
        /* Bytes past the answer belong to no request: the connection is not reused. */
        a->keep = a->keep && !extra && !closed;
    } else {
        a->keep = false;
    }
out:
    a->buf = r.buf;
    return rc;
}
