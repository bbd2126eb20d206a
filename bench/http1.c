/* A lean keep-alive HTTP/1.1 client for the benchmarks' load (http1.h). */
#include "http1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REQUEST_MAX (16 * 1024)
#define TIMEOUT_S   30

static int fail(http1_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(http1_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    http1_close(c);
    return -1;
}

int http1_init(http1_conn *c, const char *base_url)
{
    const char *hp = strncmp(base_url, "http://", 7) == 0 ? base_url + 7 : NULL;
    const char *colon = hp != NULL ? strrchr(hp, ':') : NULL;
    char *end;
    long port;

    c->fd = -1;
    c->have = 0;
    c->error[0] = '\0';
    if (colon == NULL || (size_t)(colon - hp) >= sizeof(c->host)) {
        return fail(c, "not a base URL of the form http://host:port: %s", base_url);
    }
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || (*end != '\0' && strcmp(end, "/") != 0) || port < 1 || port > 65535) {
        return fail(c, "no port in %s", base_url);
    }
    memcpy(c->host, hp, (size_t)(colon - hp));
    c->host[colon - hp] = '\0';
    c->port = (int)port;
    return 0;
}

void http1_close(http1_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->have = 0;
}

static int connect_to(http1_conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    struct timeval tv = {.tv_sec = TIMEOUT_S};
    int one = 1;

    if (inet_pton(AF_INET, c->host, &sa.sin_addr) != 1) {
        return fail(c, "not an IPv4 address: %s", c->host);
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return fail(c, "socket: %s", strerror(errno));
    }
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        return fail(c, "connect to %s:%d: %s", c->host, c->port, strerror(errno));
    }
    return 0;
}

/* Reads more of the answer into c->buf; 0, or -1 (closed, timed out, full). */
static int fill(http1_conn *c)
{
    ssize_t n;

    if (c->have == sizeof(c->buf)) {
        return fail(c, "answer larger than %zu bytes", sizeof(c->buf));
    }
    do {
        n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        return fail(c, "the server closed the connection after %zu bytes of an answer", c->have);
    }
    if (n < 0) {
        return fail(c, "recv: %s", errno == EAGAIN ? "no answer within 30 s" : strerror(errno));
    }
    c->have += (size_t)n;
    return 0;
}

/* The value of header name in the head [p, end), or NULL; *len its length. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
    size_t n = strlen(name);

    for (p = memchr(p, '\n', (size_t)(end - p)); p != NULL && p + 1 < end;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        const char *line = p + 1, *eol = memchr(line, '\r', (size_t)(end - line));
        if (eol == NULL) {
            return NULL;
        }
        if ((size_t)(eol - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            *len = (size_t)(eol - v);
            return v;
        }
    }
    return NULL;
}

/* Where the head's blank line starts in c->buf, or NULL while it has not come. */
static const char *blank_line(const http1_conn *c)
{
    const char *p = c->buf, *end = c->buf + c->have;

    while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL && end - p >= 4) {
        if (memcmp(p, "\r\n\r\n", 4) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

/* Reads one answer into *a; 0 or -1. */
static int read_answer(http1_conn *c, http1_answer *a)
{
    const char *head_end = NULL, *v;
    size_t head_len, vlen, body_len;
    char *end;
    int keep;

    while ((head_end = blank_line(c)) == NULL) {
        if (fill(c) != 0) {
            return -1;
        }
    }
    head_len = (size_t)(head_end - c->buf) + 4;
    if (head_len < 13 || strncmp(c->buf, "HTTP/1.1 ", 9) != 0 || c->buf[12] != ' ' ||
        strspn(c->buf + 9, "0123456789") != 3 || c->buf[9] < '2' || c->buf[9] > '5') {
        return fail(c, "not an HTTP/1.1 final answer: %.40s", c->buf);
    }
    a->status = (c->buf[9] - '0') * 100 + (c->buf[10] - '0') * 10 + (c->buf[11] - '0');
    if (header(c->buf, head_end + 2, "Transfer-Encoding", &vlen) != NULL) {
        return fail(c, "a Transfer-Encoding answer: this client reads Content-Length only");
    }
    v = header(c->buf, head_end + 2, "Content-Length", &vlen);
    if (v == NULL) {
        return fail(c, "an answer without Content-Length (status %d)", a->status);
    }
    errno = 0;
    body_len = strtoul(v, &end, 10);
    if (end == v || end != v + vlen || errno != 0 || body_len > sizeof(c->buf) - head_len) {
        return fail(c, "Content-Length not a length this client can read: %.*s", (int)vlen, v);
    }
    while (c->have < head_len + body_len) {
        if (fill(c) != 0) {
            return -1;
        }
    }
    if (c->have > head_len + body_len) {
        return fail(c, "%zu bytes past the answer's end", c->have - head_len - body_len);
    }
    v = header(c->buf, head_end + 2, "Connection", &vlen);
    keep = v == NULL || !(vlen == 5 && strncasecmp(v, "close", 5) == 0);
    a->body = c->buf + head_len;
    a->body_len = body_len;
    if (!keep) {
        /* The answer stays readable: only the socket goes. */
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

int http1_request(http1_conn *c, const char *method, const char *path, const char *headers,
                  const char *body, size_t body_len, http1_answer *a)
{
    char req[REQUEST_MAX];
    int n;
    size_t sent = 0, len;

    memset(a, 0, sizeof(*a));
    c->have = 0;
    if (c->fd < 0 && connect_to(c) != 0) {
        return -1;
    }
    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s", method, path, c->host,
                 c->port, headers != NULL ? headers : "");
    if (n > 0 && body != NULL) {
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    }
    if (n < 0 || (size_t)n + 2 + body_len > sizeof(req)) {
        return fail(c, "request larger than %d bytes", REQUEST_MAX);
    }
    req[n] = '\r';
    req[n + 1] = '\n';
    len = (size_t)n + 2;
    if (body != NULL) {
        memcpy(req + len, body, body_len);
        len += body_len;
    }
    while (sent < len) {
        ssize_t w = send(c->fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return fail(c, "send: %s", strerror(errno));
        }
        sent += (size_t)w;
    }
    return read_answer(c, a);
}
