/*
 * The HTTP server: civetweb underneath, one catch-all handler that runs our router, and
 * everything every request gets (request id, deadline, bounds, access log, a response
 * even when the handler forgets one).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../log/log_internal.h"
#include "cleave/log.h"
#include "cleave/metrics.h"
#include "cleave/util.h"
#include "http_internal.h"

#define HTTP_DEFAULT_THREADS    16
#define HTTP_DEFAULT_MAX_BODY   ((size_t)1 << 20)
#define HTTP_DEFAULT_JSON_DEPTH 32
#define HTTP_DEFAULT_TIMEOUT_MS 10000
/* Slow and idle clients (ADR 0029). */
#define HTTP_DEFAULT_HEAD_MS    10000
#define HTTP_DEFAULT_BODY_MS    30000
#define HTTP_DEFAULT_MIN_RATE   1024
#define HTTP_DEFAULT_KEEP_ALIVE 500
/* Accepted connections waiting for a worker, and handshakes waiting for accept. */
#define HTTP_LISTEN_BACKLOG     "511"
/* Bounds on what a client sends before any handler runs. */
#define HTTP_PATH_MAX           2048
#define HTTP_QUERY_MAX          4096
#define HTTP_SEGMENT_MAX        255
/*
 * The request line and header fields together: civetweb's per-connection buffer for them
 * (its max_request_size) is larger than our own limits, so that a request over a limit
 * reaches us and gets its precise answer (414, 431). civetweb 1.15 answers a request that
 * fills even this buffer with 400 "Malformed message", the same as one with a control
 * character in its head: on_http_error cannot tell them apart (ADR 0015).
 */
#define HTTP_HEAD_BUFFER        "65536"
#define HTTP_HEADER_FIELDS_MAX  16384
#define HTTP_REQUEST_ID_MAX     (sizeof(((cl_ctx *)0)->request_id) - 1)
#define HTTP_LISTEN_MAX         128

/* --- helpers ---------------------------------------------------------------------- */

static int is_request_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/*
 * An incoming X-Request-Id is kept only when it is short and made of safe characters:
 * it ends up in logs and in headers of calls to other services, so anything else could
 * forge log fields or inject headers. The limit is what cl_ctx.request_id can hold.
 */
static int request_id_ok(const char *id)
{
    size_t n;

    if (id == NULL) {
        return 0;
    }
    n = strlen(id);
    if (n == 0 || n > HTTP_REQUEST_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_request_id_char(id[i])) {
            return 0;
        }
    }
    return 1;
}
/*
 * Sent with every answer, the server's own refusals included: a JSON API is never a
 * page to render, frame or sniff, and names no referrer (OWASP secure headers).
 */
static const struct {
    const char *name, *value;
} security_headers[] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Referrer-Policy", "no-referrer"},
};

/* The security headers as header lines into buf[size] ("Name: value\r\n" each). */
static void security_header_lines(char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++) {
        int n = snprintf(buf + used, size - used, "%s: %s\r\n", security_headers[i].name,
                         security_headers[i].value);
        if (n < 0 || (size_t)n >= size - used) {
            break;
        }
        used += (size_t)n;
    }
}

/* --- responses -------------------------------------------------------------------- */

/* The Date header's value (RFC 9110 IMF-fixdate) of this second, formatted once a second. */
static const char *http_date(void)
{
    static _Thread_local time_t last;
    static _Thread_local char text[32];
    time_t now = time(NULL);
    struct tm tm;

    if (now != last || text[0] == '\0') {
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

/* Whether the comma-separated header value list names token (any case). */
static int has_token(const char *list, const char *token)
{
    size_t n = strlen(token);

    while (*list != '\0') {
        size_t len;

        list += strspn(list, " \t,");
        len = strcspn(list, " \t,");
        if (len == n && strncasecmp(list, token, n) == 0) {
            return 1;
        }
        list += len;
    }
    return 0;
}

/*
 * Whether civetweb keeps the connection open after this response, as its own header
 * functions decide it (RFC 9112 section 9.3): not when we close it, else as the client
 * asked, else by default from HTTP/1.1 on (keep-alive is enabled on every server).
 */
static int keeps_alive(const cl_http_req *req)
{
    const char *connection = mg_get_header(req->conn, "Connection");
    const char *version = req->ri != NULL ? req->ri->http_version : NULL;

    if (req->closing) {
        return 0;
    }
    if (connection != NULL) {
        return has_token(connection, "keep-alive");
    }
    return version != NULL && strcmp(version, "1.1") == 0;
}

/*
 * Appends the n bytes at s to buf[size] at *used, leaving room for a NUL as snprintf
 * would; 0 when they do not fit. The head is copied, not formatted: snprintf's parsing of
 * its format was a tenth of a /healthz answer's time.
 */
static int put_raw(char *buf, size_t size, size_t *used, const char *s, size_t n)
{
    if (n >= size - *used) {
        return 0;
    }
    memcpy(buf + *used, s, n);
    *used += n;
    return 1;
}

/* Appends "name: value\r\n" to buf[size] at *used; 0 when it does not fit. */
static int put_header(char *buf, size_t size, size_t *used, const char *name, const char *value)
{
    size_t start = *used;
    int ok = put_raw(buf, size, used, name, strlen(name)) && put_raw(buf, size, used, ": ", 2) &&
             put_raw(buf, size, used, value, strlen(value)) && put_raw(buf, size, used, "\r\n", 2);

    if (!ok) {
        *used = start;
    }
    return ok;
}

/* v in decimal into digits[24]; returns where the digits start. */
static const char *decimal(uint64_t v, char digits[24])
{
    size_t at = 23;

    digits[at] = '\0';
    do {
        digits[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return digits + at;
}

/*
 * An answer built from a stale read (ADR 0033) says so in the standard headers: Age (RFC
 * 9111) in whole seconds, and Cache-Status (RFC 9211) as a hit whose freshness ran out that
 * long ago, served because the module's service was unavailable. A stale answer has no
 * freshness left, so its ttl is negative however young it is: the age rounded up to a whole
 * second, never "ttl=0", which would read as an answer at the edge of fresh.
 */
static int stale_headers(char *buf, size_t size, size_t *used, int64_t age_ms)
{
    char age[32];
    char status[128];
    long long s = (long long)(age_ms / 1000);
    long long past = (long long)((age_ms + 999) / 1000);

    snprintf(age, sizeof(age), "%lld", s);
    snprintf(status, sizeof(status), "cleave; hit; ttl=-%lld; detail=stale-service-unavailable",
             past > 0 ? past : 1);
    return put_header(buf, size, used, "Age", age) &&
           put_header(buf, size, used, "Cache-Status", status);
}

/* Each worker thread's buffers (cl__http_worker), freed when the thread ends. */
static pthread_once_t worker_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t worker_key;

static void worker_free(void *p)
{
    cl__http_worker *w = p;

    cl__http_gzip_free(w->gzip);
    free(w);
}

static void worker_key_init(void)
{
    if (pthread_key_create(&worker_key, worker_free) != 0) {
        cl_log_with(CL_LOG_ERROR, "http", NULL, "no thread key for response buffers");
    }
}

cl__http_worker *cl__http_worker_get(void)
{
    cl__http_worker *w;

    pthread_once(&worker_key_once, worker_key_init);
    w = pthread_getspecific(worker_key);
    if (w == NULL) {
        /*
         * Not calloc: its 45 KB of buffers are written before they are read, and the
         * request's arrays are read only as far as filled (CL__HTTP_REQ_CLEARED). calloc
         * zeroed them all, which made each of the 64 workers' whole struct resident with
         * its first request - 2.9 MB of the growth under load (ADR 0047); unwritten, a
         * small answer touches a page or two of them.
         */
        w = malloc(sizeof(*w));
        if (w != NULL) {
            w->gzip = NULL;
            w->busy = 0;
            memset(&w->req, 0, CL__HTTP_REQ_CLEARED);
        }
        if (w != NULL && pthread_setspecific(worker_key, w) != 0) {
            free(w);
            w = NULL;
        }
    }
    return w;
}

/* The index of the handler's header name in req->headers, -1 when it set none. */
static int handler_header(const cl_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* What one answer says about caching and its content coding (ADR 0040). */
struct send_plan {
    int status;
    const char *ctype;
    const void *data;
    size_t len;
    int gzip;                  /* the body is gzipped: Content-Encoding: gzip */
    int vary;                  /* the answer depends on Accept-Encoding */
    int etag_slot;             /* the handler's ETag in req->headers, -1 for none */
    int cc_slot;               /* the handler's Cache-Control, -1 for none */
    const char *cache_control; /* ours, or NULL when the handler's goes out */
    char etag[CL__HTTP_HEADER_VALUE_MAX + sizeof(CL_HTTP_GZIP_ETAG_SUFFIX)]; /* "" for none */
    char cache_buf[48];
};

/*
 * Decides an answer's caching and content coding: whether its body is gzipped, its ETag
 * (the handler's, else for a cacheable answer a hash of the body; a gzipped body's strong
 * tag gets CL_HTTP_GZIP_ETAG_SUFFIX), whether If-None-Match turns it into a 304, and its
 * Cache-Control.
 */
static void plan_send(const cl_http_req *req, struct send_plan *p)
{
    int head = strcmp(req->method, "HEAD") == 0;
    int read = head || strcmp(req->method, "GET") == 0;
    int cacheable = req->cache_public && read && p->status == 200;
    const char *inm = cacheable ? mg_get_header(req->conn, "If-None-Match") : NULL;
    size_t n;

    p->etag_slot = handler_header(req, "ETag");
    p->cc_slot = handler_header(req, "Cache-Control");
    p->etag[0] = '\0';
    p->vary = req->srv->gzip && p->status >= 200 && p->status != 204 && p->status != 304 &&
              p->data != NULL && p->len >= CL__HTTP_GZIP_MIN_BYTES &&
              p->len <= CL__HTTP_GZIP_MAX_BYTES && cl__http_compressible(p->ctype);
    /* A HEAD answer describes the unencoded body: compressing one nobody gets costs time. */
    p->gzip =
        p->vary && !head && cl__http_accepts_gzip(mg_get_header(req->conn, "Accept-Encoding"));
    if (p->etag_slot >= 0) {
        cl_strlcpy(p->etag, req->headers[p->etag_slot].value, sizeof(p->etag));
    } else if (cacheable && cl__http_body_etag(p->data != NULL ? p->data : "", p->len, p->etag,
                                               sizeof(p->etag)) != 0) {
        p->etag[0] = '\0';
    }
    n = strlen(p->etag);
    if (p->gzip && n >= 2 && p->etag[0] == '"' && p->etag[n - 1] == '"') {
        memcpy(p->etag + n - 1, CL_HTTP_GZIP_ETAG_SUFFIX "\"",
               sizeof(CL_HTTP_GZIP_ETAG_SUFFIX) + 1);
    }
    if (inm != NULL && p->etag[0] != '\0' && cl__http_etag_match(inm, p->etag) == 1) {
        /* RFC 9110 15.4.5: a 304 keeps the 200's ETag, Cache-Control and Vary, and no body. */
        p->status = 304;
        p->ctype = NULL;
        p->data = NULL;
        p->len = 0;
        p->gzip = 0;
    }
    /* Errors are never kept, whatever the handler said; a cacheable read says for how long. */
    p->cache_control = "no-store";
    if (p->status < 400 && p->cc_slot >= 0) {
        p->cache_control = NULL;
    } else if (p->status < 400 && cacheable) {
        char digits[24];
        const char *age = decimal((uint64_t)req->cache_max_age, digits);
        size_t used = 0;

        /* cl_http_cache_public keeps the age >= 0: 16 bytes and at most 10 digits fit. */
        if (put_raw(p->cache_buf, sizeof(p->cache_buf), &used, "public, max-age=", 16)) {
            (void)put_raw(p->cache_buf, sizeof(p->cache_buf), &used, age, strlen(age));
        }
        p->cache_buf[used] = '\0';
        p->cache_control = p->cache_buf;
    }
}

/* Gzips p's body when planned; without memory the body goes out unencoded, with its own tag. */
static void encode_body(struct send_plan *p)
{
    const unsigned char *gz;
    size_t gz_len;
    size_t n;

    if (!p->gzip) {
        return;
    }
    if (cl__http_gzip(p->data, p->len, &gz, &gz_len) == 0) {
        p->data = gz;
        p->len = gz_len;
        return;
    }
    cl_log_with(CL_LOG_WARN, "http", NULL, "gzip failed: answering uncompressed");
    p->gzip = 0;
    n = strlen(p->etag);
    if (n > sizeof(CL_HTTP_GZIP_ETAG_SUFFIX) &&
        strcmp(p->etag + n - sizeof(CL_HTTP_GZIP_ETAG_SUFFIX), CL_HTTP_GZIP_ETAG_SUFFIX "\"") ==
            0) {
        memcpy(p->etag + n - sizeof(CL_HTTP_GZIP_ETAG_SUFFIX), "\"", 2);
    }
}

/* The caching and coding header lines of p into buf[size] at *used; 0 when they do not fit. */
static int cache_headers(char *buf, size_t size, size_t *used, const struct send_plan *p)
{
    int ok = 1;

    if (p->gzip) {
        ok = put_header(buf, size, used, "Content-Encoding", "gzip");
    }
    if (ok && p->vary) {
        ok = put_header(buf, size, used, "Vary", "Accept-Encoding");
    }
    if (ok && p->etag[0] != '\0') {
        ok = put_header(buf, size, used, "ETag", p->etag);
    }
    if (ok && p->cache_control != NULL) {
        ok = put_header(buf, size, used, "Cache-Control", p->cache_control);
    }
    return ok;
}

/*
 * The status line, the header lines and the blank line of the answer plan describes into
 * buf[size] at *used; 0 when they do not fit.
 */
static int put_head(cl_http_req *req, const struct send_plan *plan, int alive, char *buf,
                    size_t size, size_t *used)
{
    const char *reason = mg_get_response_code_text(req->conn, plan->status);
    int status = plan->status;
    char length[24];
    int ok;

    ok = put_raw(buf, size, used, "HTTP/1.1 ", 9) &&
         put_raw(buf, size, used, decimal((uint64_t)status, length), 3) &&
         put_raw(buf, size, used, " ", 1) && put_raw(buf, size, used, reason, strlen(reason)) &&
         put_raw(buf, size, used, "\r\n", 2);
    if (ok && plan->ctype != NULL) {
        ok = put_header(buf, size, used, "Content-Type", plan->ctype);
    }
    /* RFC 9110 forbids Content-Length on 1xx and 204; 304 describes the cached body. */
    if (ok && status >= 200 && status != 204 && status != 304) {
        ok = put_header(buf, size, used, "Content-Length", decimal(plan->len, length));
    }
    ok = ok && put_header(buf, size, used, "X-Request-Id", req->ctx.request_id);
    for (size_t i = 0; ok && i < sizeof(security_headers) / sizeof(security_headers[0]); i++) {
        ok = put_header(buf, size, used, security_headers[i].name, security_headers[i].value);
    }
    if (ok && req->ctx.stale && status >= 200 && status < 300) {
        ok = stale_headers(buf, size, used, req->ctx.stale_age_ms);
    }
    ok = ok && cache_headers(buf, size, used, plan);
    for (size_t i = 0; ok && i < req->nheaders; i++) {
        /* The plan's ETag and Cache-Control stand for the handler's. */
        if ((int)i == plan->etag_slot || ((int)i == plan->cc_slot && plan->cache_control != NULL)) {
            continue;
        }
        ok = put_header(buf, size, used, req->headers[i].name, req->headers[i].value);
    }
    ok = ok && put_header(buf, size, used, "Date", http_date());
    ok = ok && put_header(buf, size, used, "Connection", alive ? "keep-alive" : "close");
    return ok && put_raw(buf, size, used, "\r\n", 2);
}

/*
 * Sends the status line, the headers and the body in one write when they fit in
 * CL__HTTP_RESPONSE_BYTES (every answer but large lists), else the head and then the body:
 * civetweb's header functions send each header line on its own, which with TCP_NODELAY is
 * a packet each (issue #16 counted 13 sendto calls per product read). A body at the start
 * of the worker's buffer (cl_http_reply_json's) gets its head made aside and put in front.
 */
void cl__http_send(cl_http_req *req, int status, const char *ctype, const void *data, size_t len)
{
    struct mg_connection *conn = req->conn;
    cl__http_worker *worker = cl__http_worker_get();
    char *buf = worker != NULL ? worker->response : NULL;
    const size_t size = CL__HTTP_RESPONSE_BYTES;
    char aside[CL__HTTP_HEAD_BYTES];
    char *head;
    char *heap = NULL;
    size_t used = 0;
    int ok, alive, body, in_place;
    struct send_plan plan;

    if (req->replied) {
        cl_log_with(CL_LOG_WARN, "http", NULL, "second response to %s %s ignored (status %d)",
                    req->method, req->path, status);
        return;
    }
    req->replied = 1;
    if (status < 100 || status > 999) {
        status = 500;
    }
    if (buf == NULL) {
        req->status = status;
        cl_log_with(CL_LOG_ERROR, "http", NULL, "out of memory answering %s %s", req->method,
                    req->path);
        mg_disable_keep_alive(conn);
        return;
    }
    plan.status = status;
    plan.ctype = ctype;
    plan.data = data;
    plan.len = len;
    plan_send(req, &plan);
    encode_body(&plan);
    data = plan.data;
    len = plan.len;
    req->status = plan.status;
    alive = keeps_alive(req);
    if (!alive) {
        mg_disable_keep_alive(conn);
    }
    body = len > 0 && data != NULL && strcmp(req->method, "HEAD") != 0;
    /* A body in the buffer already: the head is made aside (a large one on the heap). */
    in_place = body && data == buf;
    head = in_place ? aside : buf;
    ok = put_head(req, &plan, alive, head, in_place ? sizeof(aside) : size, &used);
    if (!ok && in_place && (heap = malloc(size)) != NULL) {
        head = heap;
        used = 0;
        ok = put_head(req, &plan, alive, head, size, &used);
    }
    if (!ok) {
        /*
         * The headers are bounded in number and size (CL__HTTP_MAX_HEADERS), so only out of
         * memory for a head too large to make aside.
         */
        cl_log_with(CL_LOG_ERROR, "http", NULL, "response head of %s %s too large", req->method,
                    req->path);
        mg_disable_keep_alive(conn);
        free(heap);
        return;
    }
    if (body && len <= size - used) {
        /* memmove: an in-place body moves up by the head's length. */
        memmove(buf + used, data, len);
        if (head != buf) {
            memcpy(buf, head, used);
        }
        head = buf;
        used += len;
        body = 0;
        req->bytes = len;
    }
    if (mg_write(conn, head, used) > 0 && body && mg_write(conn, data, len) > 0) {
        req->bytes = len;
    }
    free(heap);
}

void cl_http_cache_public(cl_http_req *req, int max_age_s)
{
    if (req != NULL) {
        req->cache_public = 1;
        req->cache_max_age = max_age_s > 0 ? max_age_s : 0;
    }
}

void cl__http_close_after(cl_http_req *req)
{
    /* mg_disable_keep_alive is a Debian addition to civetweb 1.15 (our only target). */
    mg_disable_keep_alive(req->conn);
    req->closing = 1;
}

static int is_token_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int cl_http_set_header(cl_http_req *req, const char *name, const char *value)
{
    size_t nlen;
    size_t vlen;

    if (req == NULL || name == NULL || value == NULL || req->nheaders == CL__HTTP_MAX_HEADERS) {
        return -1;
    }
    nlen = strlen(name);
    vlen = strlen(value);
    if (nlen == 0 || nlen >= CL__HTTP_HEADER_NAME_MAX || vlen >= CL__HTTP_HEADER_VALUE_MAX) {
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!is_token_char(name[i])) {
            return -1;
        }
    }
    /* A CR or LF in a value would let it start a header (or a body) of its own. */
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] == '\r' || value[i] == '\n') {
            return -1;
        }
    }
    /* These are the server's to set; a second copy would confuse clients and proxies. */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Content-Type") == 0 ||
        strcasecmp(name, "X-Request-Id") == 0 || strcasecmp(name, "Connection") == 0 ||
        strcasecmp(name, "Transfer-Encoding") == 0) {
        return -1;
    }
    memcpy(req->headers[req->nheaders].name, name, nlen + 1);
    memcpy(req->headers[req->nheaders].value, value, vlen + 1);
    req->nheaders++;
    return 0;
}

/* The text of an answer that could not be built: logged, and a 500 problem instead. */
static void reply_unencodable(cl_http_req *req, int status)
{
    cl_log_with(CL_LOG_ERROR, "http", NULL, "the %d response to %s %s could not be encoded", status,
                req->method, req->path);
    cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                          "the response could not be encoded", NULL);
}

void cl_http_reply_json(cl_http_req *req, int status, json_t *body)
{
    cl__http_worker *worker = cl__http_worker_get();
    char *heap = NULL;
    const char *text = NULL;
    size_t len = 0;

    if (req == NULL) {
        json_decref(body);
        return;
    }
    /*
     * A NULL body is a body that could not be built: never a success without content.
     * Encoded at the start of the worker's response buffer when it fits (json.c, else
     * json_dumpb for what that writer leaves; cl__http_send puts the head in front), else
     * into one allocation of the size the first pass measured: json_dumps grows a string
     * from 16 bytes by reallocation.
     */
    if (body != NULL) {
        char *buf = worker != NULL ? worker->response : NULL;
        size_t room = worker != NULL ? sizeof(worker->response) : 0;

        len = buf != NULL ? cl__http_json_encode(body, buf, room) : 0;
        if (len == 0) {
            len = json_dumpb(body, buf, room, JSON_COMPACT | JSON_ENCODE_ANY);
        }
        if (len > room) {
            heap = malloc(len);
            buf = heap;
            room = heap != NULL ? json_dumpb(body, heap, len, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
        }
        text = len > 0 && len <= room ? buf : NULL;
    }
    json_decref(body);
    if (text == NULL) {
        reply_unencodable(req, status);
    } else {
        cl__http_send(req, status, "application/json", text, len);
    }
    free(heap);
}

void cl_http_reply_type(cl_http_req *req, int status, const cl_type *type, const void *obj)
{
    cl__http_worker *worker = cl__http_worker_get();
    size_t len = 0;
    char *heap = NULL;

    if (req == NULL) {
        return;
    }
    /* Into the worker's response buffer when it fits, else into an allocation of its own. */
    if (worker != NULL) {
        len = cl_schema_dump_to(type, obj, 0, worker->response, sizeof(worker->response));
    }
    if (len > 0) {
        cl__http_send(req, status, "application/json", worker->response, len);
        return;
    }
    heap = cl_schema_dump(type, obj, 0);
    if (heap == NULL) {
        reply_unencodable(req, status);
    } else {
        cl__http_send(req, status, "application/json", heap, strlen(heap));
    }
    free(heap);
}

void cl_http_reply_empty(cl_http_req *req, int status)
{
    if (req != NULL) {
        cl__http_send(req, status, NULL, NULL, 0);
    }
}

void cl_http_reply_bytes(cl_http_req *req, int status, const char *content_type, const void *data,
                         size_t len)
{
    if (req != NULL) {
        cl__http_send(req, status, content_type, data, len);
    }
}

/* --- request accessors ------------------------------------------------------------ */

const char *cl_http_method(const cl_http_req *req)
{
    return req != NULL ? req->method : NULL;
}

const char *cl_http_path(const cl_http_req *req)
{
    return req != NULL ? req->path : NULL;
}

const char *cl_http_param(const cl_http_req *req, const char *name)
{
    if (req == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < req->match.nparams; i++) {
        if (strcmp(req->match.names[i], name) == 0) {
            return req->match.values[i];
        }
    }
    return NULL;
}

/* The index of the declared query parameter name[0..len), or -1 when it is not declared. */
static int query_slot(const cl__http_query_value *values, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (values[i].name_len == len && memcmp(values[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static cl_status refuse_query(cl_http_req *req, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static cl_status refuse_query(cl_http_req *req, const char *field, const char *fmt, ...)
{
    cl_error err;
    va_list ap;

    va_start(ap, fmt);
    cl_error_vset(&err, CL_INVALID, field, fmt, ap);
    va_end(ap);
    cl_http_reply_error(req, &err);
    return CL_INVALID;
}

cl_status cl__http_parse_query(const char *decl, const char *query, cl__http_query_value *values,
                               size_t *nvalues, cl_error *err)
{
    const char *accepted = decl;
    const char *p = query;
    size_t n = 0;

    /* The slots are the declared names, each absent until the query gives it. */
    *nvalues = 0;
    while (decl != NULL && *decl != '\0') {
        size_t len = strcspn(decl, " ");

        if (len > 0 && n < CL_ROUTE_MAX_QUERY) {
            cl__http_query_value *v = &values[n++];
            v->name = decl;
            v->name_len = len;
            v->raw = NULL;
            v->raw_len = 0;
        }
        decl += len;
        decl += strspn(decl, " ");
    }
    *nvalues = n;
    if (p == NULL || *p == '\0') {
        return CL_OK;
    }
    for (;;) {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
        const char *v = eq != NULL ? eq + 1 : p + plen;
        size_t vlen = eq != NULL ? plen - klen - 1 : 0;
        char key[CL_ROUTE_QUERY_NAME_MAX + 1];
        char raw_key[CL_ROUTE_QUERY_NAME_MAX + 1];
        cl__http_query_value *slot;
        int kn;
        int at;

        /* The raw key names the parameter when it cannot be decoded. */
        snprintf(raw_key, sizeof(raw_key), "%.*s", (int)(klen < 63 ? klen : 63), p);
        if (klen == 0) {
            return cl_error_set(err, CL_INVALID, "query", "the query has a pair without a name");
        }
        kn = cl__http_pct_decode(p, klen, 1, key, sizeof(key));
        if (kn == -1) {
            return cl_error_set(err, CL_INVALID, raw_key, "query parameter name %s is malformed",
                                raw_key);
        }
        at = kn >= 0 ? query_slot(values, n, key, (size_t)kn) : -1;
        if (at < 0) {
            const char *name = kn >= 0 ? key : raw_key;

            if (accepted == NULL || accepted[0] == '\0') {
                return cl_error_set(err, CL_INVALID, name,
                                    "%s is not a query parameter of this resource (it has none)",
                                    name);
            }
            return cl_error_set(err, CL_INVALID, name,
                                "%s is not a query parameter of this resource (accepted: %s)", name,
                                accepted);
        }
        slot = &values[at];
        if (slot->raw != NULL) {
            return cl_error_set(err, CL_INVALID, key, "%s is given more than once", key);
        }
        if (cl__http_pct_decode(v, vlen, 1, NULL, 0) < 0) {
            return cl_error_set(err, CL_INVALID, key,
                                "%s has a malformed percent-escape or an encoded NUL", key);
        }
        slot->raw = v;
        slot->raw_len = vlen;
        if (amp == NULL) {
            return CL_OK;
        }
        p = amp + 1;
    }
}

int cl__http_check_query(cl_http_req *req)
{
    cl_error err;

    if (cl__http_parse_query(req->match.route->query, req->query, req->query_values, &req->nquery,
                             &err) != CL_OK) {
        cl_http_reply_error(req, &err);
        return 1;
    }
    return 0;
}

int cl_http_query(const cl_http_req *req, const char *name, char *buf, size_t size)
{
    const cl__http_query_value *slot;
    int at;
    int n;

    if (req == NULL || name == NULL) {
        return -1;
    }
    at = query_slot(req->query_values, req->nquery, name, strlen(name));
    if (at < 0 || req->query_values[at].raw == NULL) {
        return -1;
    }
    slot = &req->query_values[at];
    /* Checked before the handler ran, so this only measures; buf is written if it fits. */
    n = cl__http_pct_decode(slot->raw, slot->raw_len, 1, NULL, 0);
    if (n < 0) {
        return -1;
    }
    if ((size_t)n >= size) {
        return -2;
    }
    return cl__http_pct_decode(slot->raw, slot->raw_len, 1, buf, size);
}

int cl_http_query_int(cl_http_req *req, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char buf[32];
    int n = cl_http_query(req, name, buf, sizeof(buf));
    int64_t v = 0;
    int ok = n > 0;

    if (n == -1) {
        return 0;
    }
    /* Digits only: strtoll would take "+5", " 5" and "5 " as 5. */
    for (int i = 0; ok && i < n; i++) {
        int d = buf[i] - '0';

        if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10) {
            ok = 0;
        } else {
            v = v * 10 + d;
        }
    }
    if (!ok || v < min || v > max) {
        refuse_query(req, name, "%s must be an integer from %lld to %lld", name, (long long)min,
                     (long long)max);
        return -1;
    }
    *out = v;
    return 1;
}

int cl_http_query_dup(cl_http_req *req, const char *name, size_t max, char **out)
{
    char buf[1024];
    int n;
    cl_error err;

    *out = NULL;
    if (max >= sizeof(buf)) {
        max = sizeof(buf) - 1;
    }
    n = cl_http_query(req, name, buf, max + 1);
    if (n == -1) {
        return 0;
    }
    if (n >= 0) {
        *out = strdup(buf);
        if (*out != NULL) {
            return 0;
        }
        cl_error_set(&err, CL_INTERNAL, NULL, "out of memory");
    } else {
        cl_error_set(&err, CL_INVALID, name, "%s is longer than %zu bytes", name, max);
    }
    cl_http_reply_error(req, &err);
    return -1;
}

const char *cl_http_header(const cl_http_req *req, const char *name)
{
    if (req == NULL || name == NULL) {
        return NULL;
    }
    return mg_get_header(req->conn, name);
}

const cl_route *cl_http_route(const cl_http_req *req)
{
    return req != NULL ? req->match.route : NULL;
}

cl_ctx *cl_http_ctx(cl_http_req *req)
{
    return req != NULL ? &req->ctx : NULL;
}

/* --- JSON bodies ------------------------------------------------------------------ */

/* application/json or application/<anything>+json, parameters (charset) ignored. */
static int is_json_media_type(const char *ct)
{
    const char *end;
    const char *slash;
    size_t len;

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    end = strchr(ct, ';');
    if (end == NULL) {
        end = ct + strlen(ct);
    }
    while (end > ct && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    len = (size_t)(end - ct);
    if (len < 12 || strncasecmp(ct, "application/", 12) != 0) {
        return 0;
    }
    slash = ct + 12;
    len = (size_t)(end - slash);
    if (len == 4 && strncasecmp(slash, "json", 4) == 0) {
        return 1;
    }
    return len > 5 && strncasecmp(end - 5, "+json", 5) == 0;
}

/*
 * The deepest nesting of arrays and objects in text, counting brackets outside strings.
 * Run before parsing so that a hostile body never reaches a recursive parser with a
 * depth it would have to unwind; malformed text may give a wrong depth, but then the
 * parser refuses it anyway.
 */
static int json_depth(const char *text, size_t len, int limit)
{
    int depth = 0;
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            depth++;
            if (depth > limit) {
                return depth;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/*
 * How much the next mg_read may ask for. civetweb returns from mg_read only when it has
 * all it was asked for, or after its own read timeout (our head timeout), so asking for
 * much from a trickling client would blind the deadline checks for that long. Asking for
 * what the client sent in the last quarter second at its rate so far keeps each call
 * short; a fast client quickly earns the whole buffer (the size doubles each call).
 */
static size_t body_chunk(size_t got, int64_t elapsed_ms, size_t room)
{
    size_t chunk = elapsed_ms < 250 ? got : (size_t)((double)got * 250.0 / (double)elapsed_ms);

    if (chunk < 1) {
        chunk = 1;
    }
    if (chunk > 65536) {
        chunk = 65536;
    }
    return chunk < room ? chunk : room;
}

/* What a refused upload may still send us after the 413, and for how long we take it. */
#define LINGER_MAX_BYTES ((size_t)16 * 1024 * 1024)
#define LINGER_MAX_MS    2000

static void refuse_too_large(cl_http_req *req)
{
    const char *expect = cl_http_header(req, "Expect");
    int64_t until = cl_now_ms() + LINGER_MAX_MS;
    size_t drained = 0;
    char detail[128];
    char sink[16384];

    /*
     * Without this civetweb would read and discard the rest of the body to keep the
     * connection alive, which lets a client hold a worker with an endless upload.
     */
    cl__http_close_after(req);
    snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", req->srv->max_body);
    cl_http_reply_problem(req, 413, "content-too-large", "the request body is too large", detail,
                          NULL);
    /*
     * A lingering close, as nginx does: a client that sends its whole body before it reads
     * (no Expect: 100-continue) is still sending when we answer. Closing a socket with
     * unread data sends a reset, and a reset makes the client's kernel drop our answer
     * before the client reads it. So take what it sends, bounded in bytes and time, and
     * close only then. A client that asked to continue waits for us instead: nothing to take.
     */
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        return;
    }
    while (drained < LINGER_MAX_BYTES && cl_now_ms() < until) {
        int n = mg_read(req->conn, sink,
                        body_chunk(drained, cl_now_ms() - (until - LINGER_MAX_MS), sizeof(sink)));
        if (n <= 0) {
            break;
        }
        drained += (size_t)n;
    }
}

/* A client that sends its body too slowly loses the connection with a 408 problem. */
static void refuse_slow_body(cl_http_req *req, const char *detail)
{
    /* The rest of the body may still come: it cannot frame a next request. */
    cl__http_close_after(req);
    cl_http_reply_problem(req, 408, "request-timeout", "the request body came too slowly", detail,
                          NULL);
}

/*
 * Checks the body's total deadline and minimum rate after got bytes in elapsed_ms (ADR
 * 0025): returns 1 and says why in detail when the client is too slow.
 */
static int body_too_slow(const cl_http_server *srv, size_t got, int64_t elapsed_ms, char *detail,
                         size_t size)
{
    if (elapsed_ms > srv->body_timeout_ms) {
        snprintf(detail, size, "the body did not arrive within %lld ms",
                 (long long)srv->body_timeout_ms);
        return 1;
    }
    /* The first second is free: a client may be slow to start (TCP slow start, Expect). */
    if (srv->min_body_rate > 0 && elapsed_ms > 1000 &&
        (double)got * 1000.0 / (double)elapsed_ms < (double)srv->min_body_rate) {
        snprintf(detail, size, "the body came slower than %lld bytes per second",
                 (long long)srv->min_body_rate);
        return 1;
    }
    return 0;
}

/*
 * Reads and drops what is left of a body the handler did not read, under the same
 * deadline and rate, so that the connection can serve its next request. Without this
 * civetweb would drop it with only its per-read timeout, which a trickle defeats; a body
 * that is too slow or too large closes the connection instead.
 */
static void drain_body(cl_http_req *req)
{
    int64_t start = cl_now_ms();
    size_t got = 0;
    char sink[16384];
    char why[160];

    for (;;) {
        int n = mg_read(req->conn, sink, body_chunk(got, cl_now_ms() - start, sizeof(sink)));

        if (n == 0 && (req->ri->content_length < 0 || (long long)got >= req->ri->content_length)) {
            return;
        }
        if (n > 0) {
            got += (size_t)n;
        }
        if (n <= 0 || got > req->srv->max_body ||
            body_too_slow(req->srv, got, cl_now_ms() - start, why, sizeof(why))) {
            cl__http_close_after(req);
            return;
        }
    }
}

/*
 * Reads at most max_body + 1 bytes: one byte more than allowed proves the body too large.
 * The whole body must arrive within body_timeout_ms and keep min_body_rate: civetweb's
 * own read timeout restarts with every byte, so a trickle would hold the worker forever.
 */
static cl_status read_body(cl_http_req *req, char **out, size_t *out_len)
{
    size_t max = req->srv->max_body;
    long long declared = req->ri->content_length;
    size_t cap = declared >= 0 ? (size_t)declared + 1 : 4096;
    size_t len = 0;
    int64_t start = cl_now_ms();
    char detail[160];
    char *buf = NULL;
    cl_status st = CL_OK;

    if (declared >= 0 && (unsigned long long)declared > max) {
        refuse_too_large(req);
        return CL_INVALID;
    }
    if (cap > max + 1) {
        cap = max + 1;
    }
    buf = malloc(cap + 1);
    if (buf == NULL) {
        goto nomem;
    }
    for (;;) {
        int n;
        int64_t elapsed;

        if (len == cap) {
            if (cap == max + 1) {
                refuse_too_large(req);
                st = CL_INVALID;
                goto out;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap + 1);
            if (nbuf == NULL) {
                goto nomem;
            }
            buf = nbuf;
            cap = ncap;
        }
        n = mg_read(req->conn, buf + len, body_chunk(len, cl_now_ms() - start, cap - len));
        if (n < 0) {
            cl_http_reply_problem(req, 400, "unreadable-body", "the request body is unreadable",
                                  "the connection failed while reading the body", NULL);
            st = CL_INVALID;
            goto out;
        }
        len += (size_t)n;
        elapsed = cl_now_ms() - start;
        /*
         * civetweb also answers 0 when its read timeout passed with nothing read: with a
         * declared length, a body that ends early is a slow one, not a complete one.
         */
        if (n == 0 && (declared < 0 || (unsigned long long)len >= (unsigned long long)declared)) {
            break;
        }
        if (n == 0) {
            refuse_slow_body(req, "the body stopped before its Content-Length");
            st = CL_INVALID;
            goto out;
        }
        if (body_too_slow(req->srv, len, elapsed, detail, sizeof(detail))) {
            refuse_slow_body(req, detail);
            st = CL_INVALID;
            goto out;
        }
    }
    if (len > max) {
        refuse_too_large(req);
        st = CL_INVALID;
        goto out;
    }
    req->body_done = 1;
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    goto out;
nomem:
    cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                          "out of memory while reading the body", NULL);
    st = CL_INTERNAL;
out:
    free(buf);
    return st;
}

/*
 * Reads the body once, of a media type accepted_type says yes to, into *out (free) and
 * *out_len. On failure the problem (415 with title and detail, 413, 400, 500) was sent.
 */
static cl_status read_typed_body(cl_http_req *req, int (*accepted_type)(const char *),
                                 const char *title, const char *detail, char **out, size_t *out_len)
{
    if (req == NULL) {
        return CL_INTERNAL;
    }
    if (req->body_read) {
        cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                              "the request body was already read", NULL);
        return CL_INTERNAL;
    }
    req->body_read = 1;
    if (!accepted_type(mg_get_header(req->conn, "Content-Type"))) {
        cl_http_reply_problem(req, 415, "unsupported-media-type", title, detail, NULL);
        return CL_INVALID;
    }
    return read_body(req, out, out_len);
}

cl__http_json_result cl__http_parse_json(const char *text, size_t len, int max_depth,
                                         int object_only, json_t **out, json_error_t *jerr)
{
    json_t *json;

    if (json_depth(text, len, max_depth) > 0) {
        return CL__HTTP_JSON_TOO_DEEP;
    }
    json = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, jerr);
    if (json == NULL) {
        return CL__HTTP_JSON_MALFORMED;
    }
    if (object_only && !json_is_object(json)) {
        json_decref(json);
        return CL__HTTP_JSON_NOT_OBJECT;
    }
    *out = json;
    return CL__HTTP_JSON_OK;
}

cl_status cl_http_read_json(cl_http_req *req, int object_only, json_t **out)
{
    char *body = NULL;
    size_t len = 0;
    json_t *json = NULL;
    json_error_t jerr;
    char detail[256];
    cl_status st;

    if (out == NULL) {
        return CL_INTERNAL;
    }
    st =
        read_typed_body(req, is_json_media_type, "the request body must be JSON",
                        "Content-Type must be application/json or application/*+json", &body, &len);
    if (st != CL_OK) {
        goto out;
    }
    switch (cl__http_parse_json(body, len, req->srv->max_json_depth, object_only, &json, &jerr)) {
    case CL__HTTP_JSON_OK:
        *out = json;
        st = CL_OK;
        break;
    case CL__HTTP_JSON_TOO_DEEP:
        snprintf(detail, sizeof(detail), "the body nests arrays and objects deeper than %d",
                 req->srv->max_json_depth);
        cl_http_reply_problem(req, 400, "json-too-deep", "the JSON body is nested too deeply",
                              detail, NULL);
        st = CL_INVALID;
        break;
    case CL__HTTP_JSON_MALFORMED:
        snprintf(detail, sizeof(detail), "line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        cl_http_reply_problem(req, 400, "malformed-json", "the body is not valid JSON", detail,
                              json_pack("{s:i,s:i}", "line", jerr.line, "column", jerr.column));
        st = CL_INVALID;
        break;
    case CL__HTTP_JSON_NOT_OBJECT:
    default:
        cl_http_reply_problem(req, 400, "not-an-object", "the JSON body must be an object",
                              "the body is valid JSON but not an object", NULL);
        st = CL_INVALID;
        break;
    }
out:
    free(body);
    return st;
}

/* --- form bodies ---------------------------------------------------------------- */

static int is_form_media_type(const char *ct)
{
    static const char form[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(form) - 1;

    if (ct == NULL) {
        return 0;
    }
    ct += strspn(ct, " \t");
    if (strncasecmp(ct, form, n) != 0) {
        return 0;
    }
    ct += n;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

static cl_status refuse_form(cl_http_req *req, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static cl_status refuse_form(cl_http_req *req, const char *name, const char *fmt, ...)
{
    cl_error err;
    va_list ap;

    va_start(ap, fmt);
    cl_error_vset(&err, CL_INVALID, name, fmt, ap);
    va_end(ap);
    cl_http_reply_error(req, &err);
    return CL_INVALID;
}

/* Decodes one name or value of a form into a new string (free); NULL when malformed. */
static char *form_decode(const char *src, size_t n)
{
    int len = cl__http_pct_decode(src, n, 1, NULL, 0);
    char *out = len >= 0 ? malloc((size_t)len + 1) : NULL;

    if (out != NULL && cl__http_pct_decode(src, n, 1, out, (size_t)len + 1) != len) {
        free(out);
        out = NULL;
    }
    return out;
}

/* Splits body into obj; 0, or -1 after the refusal was sent. */
static int parse_form(cl_http_req *req, const char *body, json_t *obj)
{
    size_t nfields = 0;

    for (const char *p = body; *p != '\0';) {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
        char raw_key[64];
        char *key = NULL;
        char *value = NULL;
        json_t *v = NULL;
        int rc = -1;

        snprintf(raw_key, sizeof(raw_key), "%.*s", (int)(klen < 63 ? klen : 63), p);
        if (plen == 0) {
            /* "a=1&&b=2" or a trailing '&': an empty pair carries nothing; skip it. */
            p += p[0] == '&' ? 1 : 0;
            continue;
        }
        if (++nfields > CL_HTTP_FORM_MAX_FIELDS) {
            refuse_form(req, "body", "the form has more than %d fields", CL_HTTP_FORM_MAX_FIELDS);
            return -1;
        }
        key = klen > 0 ? form_decode(p, klen) : NULL;
        value = key != NULL
                    ? form_decode(eq != NULL ? eq + 1 : p + plen, eq != NULL ? plen - klen - 1 : 0)
                    : NULL;
        v = value != NULL ? json_string(value) : NULL;
        if (klen == 0) {
            refuse_form(req, "body", "the form has a pair without a name");
        } else if (key == NULL) {
            refuse_form(req, raw_key, "form field name %s is malformed", raw_key);
        } else if (value == NULL) {
            refuse_form(req, key, "%s has a malformed percent-escape or an encoded NUL", key);
        } else if (v == NULL) {
            refuse_form(req, key, "%s is not UTF-8", key);
        } else if (json_object_get(obj, key) != NULL) {
            refuse_form(req, key, "%s is given more than once", key);
        } else if (json_object_set(obj, key, v) != 0) {
            refuse_form(req, key, "%s cannot be stored", key);
        } else {
            rc = 0;
        }
        json_decref(v);
        free(key);
        free(value);
        if (rc != 0) {
            return -1;
        }
        p += plen;
        p += *p == '&' ? 1 : 0;
    }
    return 0;
}

cl_status cl_http_read_form(cl_http_req *req, json_t **out)
{
    char *body = NULL;
    size_t len = 0;
    json_t *obj = NULL;
    cl_status st;

    if (out == NULL) {
        return CL_INTERNAL;
    }
    st = read_typed_body(req, is_form_media_type, "the request body must be a form",
                         "Content-Type must be application/x-www-form-urlencoded", &body, &len);
    if (st != CL_OK) {
        goto out;
    }
    if (strlen(body) != len) {
        st = refuse_form(req, "body", "the body contains a NUL byte");
        goto out;
    }
    obj = json_object();
    if (obj == NULL) {
        cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                              "out of memory while reading the body", NULL);
        st = CL_INTERNAL;
        goto out;
    }
    if (parse_form(req, body, obj) != 0) {
        st = CL_INVALID;
        goto out;
    }
    *out = obj;
    obj = NULL;
    st = CL_OK;
out:
    json_decref(obj);
    free(body);
    return st;
}

int cl_http_form_decode(const char *s, char *out, size_t size)
{
    return s != NULL ? cl__http_pct_decode(s, strlen(s), 1, out, size) : -1;
}

/* The value of a standard base64 digit (RFC 4648 section 4), or -1. */
static int b64_digit(char c)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(digits, c) : NULL;

    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes padded standard base64 s into out[size] with a NUL; its length, or -1. */
static int b64_decode(const char *s, char *out, size_t size)
{
    size_t n = strlen(s);
    size_t len = 0;

    if (n % 4 != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;

        for (int k = 0; k < 4; k++) {
            /* '=' only as the last one or two characters of the whole input. */
            int is_pad = s[i + k] == '=' && i + 4 == n && (k == 3 || (k == 2 && s[i + 3] == '='));
            v[k] = is_pad ? 0 : b64_digit(s[i + k]);
            pad += is_pad;
            if (v[k] < 0) {
                return -1;
            }
        }
        if (len + 3 - (size_t)pad >= size) {
            return -1;
        }
        out[len++] = (char)((v[0] << 2) | (v[1] >> 4));
        if (pad < 2) {
            out[len++] = (char)(((v[1] & 15) << 4) | (v[2] >> 2));
        }
        if (pad < 1) {
            out[len++] = (char)(((v[2] & 3) << 6) | v[3]);
        }
    }
    out[len] = '\0';
    return strlen(out) == len ? (int)len : -1;
}

int cl_http_basic_auth(const cl_http_req *req, char *user, size_t usize, char *password,
                       size_t psize)
{
    const char *auth = cl_http_header(req, "Authorization");
    char decoded[1024];
    char *colon;

    if (auth == NULL) {
        return 0;
    }
    if (strncasecmp(auth, "Basic ", 6) != 0) {
        return -1;
    }
    auth += 6;
    auth += strspn(auth, " ");
    if (b64_decode(auth, decoded, sizeof(decoded)) < 0) {
        return -1;
    }
    colon = strchr(decoded, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = '\0';
    if (cl_strlcpy(user, decoded, usize) != 0 || cl_strlcpy(password, colon + 1, psize) != 0) {
        return -1;
    }
    return 1;
}

const char *cl_http_remote_addr(const cl_http_req *req)
{
    return req != NULL && req->ri != NULL ? req->ri->remote_addr : "";
}

/* --- dispatch --------------------------------------------------------------------- */

/*
 * Refuses what no route can want before routing: over-long paths and queries, segments
 * longer than a parameter buffer, and malformed percent-escapes. Returns 1 when a
 * problem was sent.
 */
static int refuse_bad_target(cl_http_req *req)
{
    const char *p = req->path;
    size_t seg = 0;

    if (strlen(req->path) > HTTP_PATH_MAX ||
        (req->query != NULL && strlen(req->query) > HTTP_QUERY_MAX)) {
        cl_http_reply_problem(req, 414, "uri-too-long", "the request target is too long",
                              "the path is limited to 2048 bytes and the query to 4096", NULL);
        return 1;
    }
    for (; *p != '\0'; p++) {
        if (*p == '/') {
            seg = 0;
            continue;
        }
        if (++seg > HTTP_SEGMENT_MAX) {
            cl_http_reply_problem(req, 414, "uri-too-long", "the request target is too long",
                                  "a path segment is longer than 255 bytes", NULL);
            return 1;
        }
        if (*p == '%') {
            char one[2];
            if (cl__http_pct_decode(p, strnlen(p, 3), 0, one, sizeof(one)) != 1) {
                cl_http_reply_problem(req, 400, "malformed-path", "the request path is malformed",
                                      "the path has a malformed percent-escape", NULL);
                return 1;
            }
        }
    }
    return 0;
}

static int is_digits(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

/*
 * The fields a request may carry once (RFC 9110 5.3: only a list may repeat), of those
 * anything here reads. civetweb hands over the first of each, so a second would be
 * ignored unseen; for Content-Length, Transfer-Encoding and Host it is a smuggling
 * vector (RFC 9112 3.2, 6.3): a proxy that reads the last and we the first disagree on
 * where the next request begins, or which host it is for.
 */
static const struct {
    const char *name;
    size_t len;
} once_fields[] = {
#define ONCE_FIELD(name)                                                                           \
    {                                                                                              \
        name, sizeof(name) - 1                                                                     \
    }
    ONCE_FIELD("Host"), /* first: refuse_bad_head reads its bit as bit 0 */
    ONCE_FIELD("Content-Length"),
    ONCE_FIELD("Transfer-Encoding"),
    ONCE_FIELD("Content-Type"),
    ONCE_FIELD("Authorization"),
    ONCE_FIELD("Idempotency-Key"),
    ONCE_FIELD("X-Request-Id"),
    ONCE_FIELD("X-Cleave-Principal"),
    ONCE_FIELD("X-Cleave-Own-Only"),
    ONCE_FIELD("X-Cleave-User-Token"),
    ONCE_FIELD("X-Cleave-Read-Primary"),
    ONCE_FIELD("X-Cleave-Deadline-Ms"),
    ONCE_FIELD("X-Cleave-Wait-Ms"),
#undef ONCE_FIELD
};

/* The index in once_fields of the field name[len], or -1. */
static int once_field(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(once_fields) / sizeof(once_fields[0]); i++) {
        if (once_fields[i].len == len && strcasecmp(once_fields[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * Refuses a request head over our limits or read two ways: a field of once_fields
 * repeated, an HTTP/1.1 request without Host (RFC 9112 3.2), and the framing civetweb
 * would silently repair: a Content-Length that is not a number ("5abc" counts as 5 there)
 * or one sent beside Transfer-Encoding (RFC 9112 6.3). Returns 1 when a problem was sent.
 */
static int refuse_bad_head(cl_http_req *req)
{
    const struct mg_request_info *ri = req->ri;
    size_t fields = 0;
    uint32_t seen = 0;
    const char *cl;
    cl_error err;

    /* civetweb keeps the first MG_MAX_HEADERS fields and drops the rest unseen. */
    if (ri->num_headers >= MG_MAX_HEADERS) {
        char detail[96];
        snprintf(detail, sizeof(detail), "a request may have at most %d header fields",
                 MG_MAX_HEADERS - 1);
        cl_http_reply_problem(req, 431, "request-header-fields-too-large",
                              "the request header fields are too large", detail, NULL);
        return 1;
    }
    for (int i = 0; i < ri->num_headers; i++) {
        size_t len = strlen(ri->http_headers[i].name);
        int once = once_field(ri->http_headers[i].name, len);

        fields += len + strlen(ri->http_headers[i].value) + 4;
        if (once >= 0 && (seen & (UINT32_C(1) << once)) != 0) {
            cl_error_set(&err, CL_INVALID, once_fields[once].name, "%s is given more than once",
                         once_fields[once].name);
            cl_http_reply_error(req, &err);
            return 1;
        }
        if (once >= 0) {
            seen |= UINT32_C(1) << once;
        }
    }
    if (fields > HTTP_HEADER_FIELDS_MAX) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the header fields are limited to %d bytes",
                 HTTP_HEADER_FIELDS_MAX);
        cl_http_reply_problem(req, 431, "request-header-fields-too-large",
                              "the request header fields are too large", detail, NULL);
        return 1;
    }
    /* Bit 0 is Host (once_fields[0]). */
    if ((seen & 1) == 0 && ri->http_version != NULL && strcmp(ri->http_version, "1.1") == 0) {
        cl_error_set(&err, CL_INVALID, "Host", "an HTTP/1.1 request must have a Host field");
        cl_http_reply_error(req, &err);
        return 1;
    }
    cl = mg_get_header(req->conn, "Content-Length");
    if (cl != NULL && !is_digits(cl)) {
        cl_error_set(&err, CL_INVALID, "Content-Length", "Content-Length must be digits only");
        cl_http_reply_error(req, &err);
        return 1;
    }
    if (cl != NULL && mg_get_header(req->conn, "Transfer-Encoding") != NULL) {
        cl_error_set(&err, CL_INVALID, "Transfer-Encoding",
                     "a request may not have both Transfer-Encoding and Content-Length");
        cl_http_reply_error(req, &err);
        return 1;
    }
    return 0;
}

/*
 * Refuses an If-None-Match that is neither "*" nor a list of entity tags: a precondition
 * we cannot read is not taken as "no match" (ADR 0040). The request is framed well, so the
 * connection stays open. Returns 1 when a problem was sent.
 */
static int refuse_bad_precondition(cl_http_req *req)
{
    const char *inm = mg_get_header(req->conn, "If-None-Match");
    cl_error err;

    if (inm == NULL || cl__http_etag_match(inm, NULL) >= 0) {
        return 0;
    }
    cl_error_set(&err, CL_INVALID, "If-None-Match",
                 "If-None-Match must be * or a list of entity tags like \"3\"");
    cl_http_reply_error(req, &err);
    return 1;
}

/* --- admission (ADR 0029) ------------------------------------------------------- */

/* route's index in the router, or nroutes for a route added after the server started. */
static size_t route_index(const cl_http_server *srv, const cl_route *route)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        if (cl_router_at(srv->router, i) == route) {
            return i;
        }
    }
    return srv->nroutes;
}

/* Each route's bulkhead: the configured one, or the server's route_max_inflight. */
static cl_status set_bulkheads(cl_http_server *srv, const cl_http_options *opt, cl_error *err)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        srv->route_limit[i] = srv->route_max_inflight;
    }
    for (size_t b = 0; b < opt->nbulkheads; b++) {
        const cl_http_bulkhead *bh = &opt->bulkheads[b];
        size_t i = 0;

        while (i < srv->nroutes && bh->method != NULL && bh->pattern != NULL &&
               (strcmp(cl_router_at(srv->router, i)->method, bh->method) != 0 ||
                strcmp(cl_router_at(srv->router, i)->pattern, bh->pattern) != 0)) {
            i++;
        }
        if (i == srv->nroutes) {
            return cl_error_set(err, CL_INVALID, "bulkheads", "bulkhead %s %s names no route",
                                bh->method != NULL ? bh->method : "(null)",
                                bh->pattern != NULL ? bh->pattern : "(null)");
        }
        if (bh->max_inflight < 1 && bh->max_inflight != CL_HTTP_UNBOUNDED) {
            return cl_error_set(err, CL_INVALID, "bulkheads",
                                "bulkhead %s %s: max_inflight must be positive or unbounded",
                                bh->method, bh->pattern);
        }
        srv->route_limit[i] = bh->max_inflight;
    }
    return CL_OK;
}

/*
 * Takes one of the limit slots counted by *count: false, counting nothing, when all are
 * taken. A compare-and-swap rather than a lock: every request of a route took the server's
 * mutex twice, and 32 workers on 2 cores queued on it (43% of the futex calls of a product
 * read, ADR 0049). The count never goes above limit.
 */
static bool take_slot(atomic_int *count, int limit)
{
    int n = atomic_load_explicit(count, memory_order_relaxed);

    do {
        if (n >= limit) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(count, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

/*
 * Takes a handler slot for the matched route: one of the route's own bulkhead and one of
 * max_inflight over all bounded routes. When either is taken up the request is answered
 * 503 with Retry-After at once instead of waiting: a client retries later, or elsewhere,
 * sooner than a queue would serve it. Returns 1 with *held set when admitted (release
 * with release()), 0 after replying 503.
 *
 * The route's slot is taken first and given back when the server has none: a request
 * refused for a full server then held a slot of its own route only while the server was
 * full, so it never makes another route's request look refused by a full server.
 */
static int admit(cl_http_req *req, size_t *held)
{
    cl_http_server *srv = req->srv;
    const cl_route *route = req->match.route;
    size_t at = route_index(srv, route);
    int limit = at < srv->nroutes ? srv->route_limit[at] : srv->route_max_inflight;
    int full = 0;
    char detail[160];

    *held = SIZE_MAX;
    if (limit == CL_HTTP_UNBOUNDED) {
        return 1;
    }
    if (at >= srv->nroutes || take_slot(&srv->route_admitted[at], limit)) {
        if (take_slot(&srv->admitted, srv->max_inflight)) {
            *held = at;
            return 1;
        }
        full = 1;
        if (at < srv->nroutes) {
            atomic_fetch_sub_explicit(&srv->route_admitted[at], 1, memory_order_relaxed);
        }
    }
    if (full) {
        snprintf(detail, sizeof(detail), "all %d request slots are busy; retry shortly",
                 srv->max_inflight);
    } else {
        snprintf(detail, sizeof(detail), "all %d request slots of %s %s are busy; retry shortly",
                 limit, route->method, route->pattern);
    }
    cl_http_set_header(req, "Retry-After", "1");
    cl_http_reply_problem(req, 503, "overloaded", cl_status_message(CL_UNAVAILABLE), detail, NULL);
    return 0;
}

static void release(cl_http_server *srv, size_t held)
{
    if (held == SIZE_MAX) {
        return;
    }
    atomic_fetch_sub_explicit(&srv->admitted, 1, memory_order_relaxed);
    if (held < srv->nroutes) {
        atomic_fetch_sub_explicit(&srv->route_admitted[held], 1, memory_order_relaxed);
    }
}

/*
 * Counts a connection against its client address at its first request, and answers 503
 * (closing it) when the address already holds max_conns_per_client. civetweb 1.15 gives
 * no earlier moment: init_connection runs before the request info (the address) exists.
 * So a connection that never sends a head is not counted; the head timeout bounds it.
 * The connection's data is its client's slot, or the server itself when it was refused.
 * Returns 1 when a problem was sent.
 */
static int refuse_over_cap(cl_http_req *req)
{
    cl_http_server *srv = req->srv;
    void *data = mg_get_user_connection_data(req->conn);
    cl__http_client *slot = NULL;
    cl__http_client *free_slot = NULL;
    char detail[128];

    if (data == NULL && srv->max_conns_per_client > 0) {
        pthread_mutex_lock(&srv->mu);
        for (int i = 0; i < srv->nclients && slot == NULL; i++) {
            if (srv->clients[i].conns > 0 &&
                strcmp(srv->clients[i].addr, req->ri->remote_addr) == 0) {
                slot = &srv->clients[i];
            } else if (srv->clients[i].conns == 0 && free_slot == NULL) {
                free_slot = &srv->clients[i];
            }
        }
        if (slot == NULL && free_slot != NULL) {
            slot = free_slot;
            cl_strlcpy(slot->addr, req->ri->remote_addr, sizeof(slot->addr));
        }
        if (slot == NULL || slot->conns >= srv->max_conns_per_client) {
            data = srv;
        } else {
            slot->conns++;
            data = slot;
        }
        pthread_mutex_unlock(&srv->mu);
        mg_set_user_connection_data(req->conn, data);
    }
    if (data != (void *)srv) {
        return 0;
    }
    snprintf(detail, sizeof(detail), "one client address may hold at most %d connections",
             srv->max_conns_per_client);
    cl__http_close_after(req);
    cl_http_set_header(req, "Retry-After", "1");
    cl_http_reply_problem(req, 503, "too-many-connections", cl_status_message(CL_UNAVAILABLE),
                          detail, NULL);
    return 1;
}

/* A worker took a connection: a drain waits for it to close (cl_http_wait_idle). */
static int on_init_connection(const struct mg_connection *conn, void **conn_data)
{
    cl_http_server *srv = mg_get_user_data(mg_get_context(conn));

    (void)conn_data;
    if (srv != NULL) {
        pthread_mutex_lock(&srv->mu);
        srv->conns++;
        pthread_mutex_unlock(&srv->mu);
    }
    return 0;
}

static void on_connection_close(const struct mg_connection *conn)
{
    cl_http_server *srv = mg_get_user_data(mg_get_context(conn));
    void *data = mg_get_user_connection_data(conn);

    if (srv == NULL) {
        return;
    }
    pthread_mutex_lock(&srv->mu);
    if (data != NULL && data != (void *)srv) {
        ((cl__http_client *)data)->conns--;
    }
    srv->conns--;
    if (srv->conns == 0 && atomic_load(&srv->inflight) == 0) {
        pthread_cond_broadcast(&srv->idle);
    }
    pthread_mutex_unlock(&srv->mu);
}

/* The server span is named by the route pattern: raw paths would make names unbounded. */
static void name_span(cl_http_req *req)
{
    char name[CL_SPAN_NAME_MAX];
    const char *pattern = req->match.route->pattern;
    size_t used = 0;

    /* "GET /api/v1/products/{id}", cut to fit as snprintf would cut it. */
    if (!put_raw(name, sizeof(name), &used, req->method, strlen(req->method)) ||
        !put_raw(name, sizeof(name), &used, " ", 1) ||
        !put_raw(name, sizeof(name), &used, pattern, strlen(pattern))) {
        snprintf(name, sizeof(name), "%s %s", req->method, pattern);
        used = strlen(name);
    }
    name[used] = '\0';
    cl_span_set_name(&req->span, name);
    cl_span_set_str(&req->span, "http.route", req->match.route->pattern);
}

static void route_and_run(cl_http_req *req, int draining)
{
    char allow[64];
    cl_route_result res;
    size_t held;

    if (draining) {
        /* Close the connection too, so that keep-alive clients reconnect elsewhere. */
        cl__http_close_after(req);
        cl_http_set_header(req, "Retry-After", "1");
        cl_http_reply_problem(req, 503, "shutting-down", cl_status_message(CL_UNAVAILABLE),
                              "the server is shutting down", NULL);
        return;
    }
    if (refuse_over_cap(req)) {
        return;
    }
    if (req->path[0] != '/') {
        cl_http_reply_problem(req, 400, "malformed-path", "the request path is malformed",
                              "the request target is not an absolute path", NULL);
        return;
    }
    if (refuse_bad_head(req) || refuse_bad_target(req)) {
        /* What follows the refused head cannot be trusted to frame a next request. */
        cl__http_close_after(req);
        return;
    }
    if (refuse_bad_precondition(req)) {
        return;
    }
    res = cl_router_match(req->srv->router, req->method, req->path, &req->match, allow,
                          sizeof(allow));
    if (res == CL_ROUTE_FOUND) {
        name_span(req);
    }
    if (res == CL_ROUTE_NOT_FOUND) {
        cl_http_reply_problem(req, 404, "not-found", cl_status_message(CL_NOT_FOUND),
                              "no route matches this path", NULL);
        return;
    }
    if (res == CL_ROUTE_BAD_METHOD) {
        char detail[128];
        snprintf(detail, sizeof(detail), "%s is not allowed here; allowed: %s", req->method, allow);
        cl_http_set_header(req, "Allow", allow);
        cl_http_reply_problem(req, 405, "method-not-allowed",
                              "the method is not allowed for this resource", detail, NULL);
        return;
    }
    /* Who may call it comes first: a caller without the right learns nothing more. */
    if (req->srv->guard != NULL &&
        req->srv->guard(req->srv->guard_arg, req, req->match.route->permission) != CL_OK) {
        if (!req->replied) {
            cl_http_reply_error(req, &req->ctx.err);
        }
        return;
    }
    if (cl__http_check_query(req) != 0 || !admit(req, &held)) {
        return;
    }
    req->match.route->handler(req, req->match.route->arg);
    release(req->srv, held);
    if (!req->replied) {
        cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                              "the handler did not send a response", NULL);
    }
}

/*
 * One line per request, with Elastic Common Schema field names (ADR 0036), written without
 * an allocation (ADR 0046).
 */
static void access_log(const cl_http_req *req, int64_t start_ns)
{
    const cl__log_field f[] = {
        {"http.request.method", req->method, 0},
        {"url.path", req->path, 0},
        {"http.response.status_code", NULL, req->status},
        {"http.response.body.bytes", NULL, (int64_t)req->bytes},
        {"event.duration", NULL, cl_metrics_now_ns() - start_ns},
        {"client.ip", req->ri->remote_addr, 0},
        {"service.name", req->srv->service, 0},
        {"event.dataset", "http.access", 0},
    };
    char msg[512];
    char digits[24];
    /* cl__http_send keeps every status within 100-999. */
    const char *code = decimal((uint64_t)(req->status > 0 ? req->status : 0), digits);
    size_t used = 0;

    /* "GET /path 200", copied rather than formatted; a longer one is formatted. */
    if (put_raw(msg, sizeof(msg), &used, req->method, strlen(req->method)) &&
        put_raw(msg, sizeof(msg), &used, " ", 1) &&
        put_raw(msg, sizeof(msg), &used, req->path, strlen(req->path)) &&
        put_raw(msg, sizeof(msg), &used, " ", 1) && req->status > 0 &&
        put_raw(msg, sizeof(msg), &used, code, strlen(code))) {
        msg[used] = '\0';
        cl__log_fields_msg(CL_LOG_INFO, "http", f, sizeof(f) / sizeof(f[0]), msg);
        return;
    }
    cl__log_fields(CL_LOG_INFO, "http", f, sizeof(f) / sizeof(f[0]), "%s %s %d", req->method,
                   req->path, req->status);
}

/*
 * Reads or starts the request's trace (W3C Trace Context 3.2). A traceparent given twice
 * is malformed and restarts the trace, as any malformed one does. tracestate is a list:
 * its field lines are joined with commas, in order, and dropped whole when together
 * longer than one may be.
 */
static void enter_trace(cl_http_req *req)
{
    const struct mg_request_info *ri = req->ri;
    const char *parent = NULL;
    char state[CL_TRACESTATE_MAX + 1];
    size_t used = 0;
    int parents = 0;
    bool state_fits = true;

    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name;
        const char *value = ri->http_headers[i].value;
        size_t len;

        if (strcasecmp(name, "traceparent") == 0) {
            parent = value;
            parents++;
            continue;
        }
        if (strcasecmp(name, "tracestate") != 0 || value[0] == '\0') {
            continue;
        }
        len = strlen(value);
        if (used + (used > 0 ? 1 : 0) + len > CL_TRACESTATE_MAX) {
            state_fits = false;
            continue;
        }
        if (used > 0) {
            state[used++] = ',';
        }
        memcpy(state + used, value, len);
        used += len;
    }
    state[used] = '\0';
    cl_trace_enter(&req->ctx, parents == 1 ? parent : NULL, state_fits && used > 0 ? state : NULL);
}

static int dispatch(struct mg_connection *conn, cl_http_server *srv)
{
    cl__http_worker *worker;
    cl_http_req *req;
    int64_t start_ns = cl_metrics_now_ns();
    const char *rid;
    int status;
    int draining;
    int not_accepting;

    /* Counted before draining is read: see cl_http_server.inflight. */
    atomic_fetch_add(&srv->inflight, 1);
    draining = atomic_load(&srv->draining);
    not_accepting = atomic_load(&srv->not_accepting);

    /*
     * The thread's own request, reused: the header buffers would take a big bite of a
     * worker's stack, and allocating it per request cost more than the rest of dispatch.
     */
    worker = cl__http_worker_get();
    if (worker == NULL || worker->busy) {
        mg_send_http_error(conn, 503, "%s", "out of memory");
        status = 503;
        goto out;
    }
    worker->busy = 1;
    req = &worker->req;
    memset(req, 0, CL__HTTP_REQ_CLEARED);
    req->conn = conn;
    req->srv = srv;
    req->ri = mg_get_request_info(conn);
    req->method = req->ri->request_method != NULL ? req->ri->request_method : "";
    req->path = req->ri->local_uri_raw != NULL ? req->ri->local_uri_raw : "";
    req->query = req->ri->query_string;
    /*
     * Draining: a request on a connection opened before the listener closed gets its
     * answer, and that answer ends the connection, so that kept-alive clients leave.
     */
    if (not_accepting) {
        cl__http_close_after(req);
    }
    cl_ctx_init(&req->ctx, srv->request_timeout_ms);
    rid = mg_get_header(conn, "X-Request-Id");
    if (request_id_ok(rid)) {
        cl_strlcpy(req->ctx.request_id, rid, sizeof(req->ctx.request_id));
    } else {
        char fresh[33];
        cl_random_hex(fresh);
        cl_strlcpy(req->ctx.request_id, fresh, sizeof(req->ctx.request_id));
    }
    /* Every line logged from here on, the access line included, names the request's span. */
    enter_trace(req);
    cl_log_bind(&req->ctx);
    cl_span_start(&req->span, &req->ctx, CL_SPAN_SERVER, req->method);
    cl_span_set_str(&req->span, "http.request.method", req->method);

    /*
     * The one door for an Idempotency-Key: REST handlers and RPC dispatch alike find it in
     * ctx, checked against the one limit, or the request is refused here, before it runs.
     */
    if (cl_ctx_set_idempotency_key(&req->ctx, mg_get_header(conn, "Idempotency-Key")) != CL_OK) {
        cl_http_reply_error(req, &req->ctx.err);
    } else {
        route_and_run(req, draining);
    }
    if (!req->body_done && !req->closing &&
        (req->ri->content_length > 0 || mg_get_header(conn, "Transfer-Encoding") != NULL)) {
        drain_body(req);
    }
    cl_metrics_http(req->match.route != NULL ? req->match.route->pattern : NULL, req->method,
                    req->status, start_ns);

    access_log(req, start_ns);
    status = req->status;
    cl_span_set_int(&req->span, "http.response.status_code", req->status);
    if (req->status >= 500) {
        cl_span_status(&req->span, CL_INTERNAL);
    }
    cl_span_end(&req->span);
    cl_log_bind(NULL);
    worker->busy = 0;
out:
    if (atomic_fetch_sub(&srv->inflight, 1) == 1) {
        /*
         * cl_http_stop waits for no request, cl_http_wait_idle for no connection either.
         * Under mu, so that a waiter between its test and its wait cannot miss it.
         */
        pthread_mutex_lock(&srv->mu);
        pthread_cond_broadcast(&srv->idle);
        pthread_mutex_unlock(&srv->mu);
    }
    return status;
}

/*
 * Every request civetweb reads goes to dispatch from here, before civetweb looks for a
 * handler or checks authorization of its own. So there is no moment, between civetweb
 * starting to listen and a handler being set, where it answers a request itself (a 404);
 * no lookup of a handler under civetweb's context lock per request; and no search for a
 * .htpasswd file (a stat(2) per request, issue #16, and a file of that name at the root
 * would put every route behind digest authentication). Authentication is ours, per route.
 */
static int on_begin_request(struct mg_connection *conn)
{
    int status = dispatch(conn, mg_get_request_info(conn)->user_data);

    /* Above 0 tells civetweb the request was answered; our answer always was. */
    return status > 0 ? status : 500;
}

/* civetweb's own complaints (bad request lines, socket errors) go to our log. */
static int log_civetweb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    cl_log_with(CL_LOG_WARN, "http", NULL, "civetweb: %s", message);
    return 1;
}

/* Whether s is an HTTP token (RFC 9110 5.6.2) of 1 to 32 characters. */
static int is_short_token(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (n == 32 || !(isalnum((unsigned char)s[n]) || strchr("!#$%&'*+-.^_`|~", s[n]) != NULL)) {
            return 0;
        }
    }
    return n > 0;
}

/* The methods some route may serve; civetweb passes these on, and refuses most others. */
static int is_served_method(const char *m)
{
    static const char *const served[] = {"GET",   "HEAD",   "POST",    "PUT",
                                         "PATCH", "DELETE", "OPTIONS", "CONNECT"};

    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
        if (strcmp(served[i], m) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The problem slug and title for a status civetweb answers on its own; method is the
 * request's method as far as civetweb read it, or NULL. civetweb 1.15 refuses a method it
 * does not know (TRACE, anything made up) as a bad request: that is 501 (RFC 9110 15.6.2),
 * with the method named, detail[size] holding the text.
 */
static void civetweb_problem(int *status, const char *errmsg, const char *method, const char **slug,
                             const char **title, const char **detail, char *buf, size_t size)
{
    *detail = errmsg;
    if (*status == 400 && strcmp(errmsg, "Bad request") == 0 && method != NULL &&
        is_short_token(method) && !is_served_method(method)) {
        *status = 501;
        *slug = "method-not-implemented";
        *title = "the method is not implemented";
        snprintf(buf, size, "%s is not a method this server serves", method);
        *detail = buf;
        return;
    }
    switch (*status) {
    case 400:
        *slug = "malformed-request";
        *title = "the request is malformed";
        if (strcmp(errmsg, "Malformed message") == 0) {
            /* The three causes civetweb 1.15 gives this one message for. */
            *detail = "the request line and header fields have a control character, ended "
                      "before their blank line, or exceed " HTTP_HEAD_BUFFER " bytes";
        } else if (strcmp(errmsg, "Bad request") == 0) {
            /* And the causes of this one. */
            *detail = "the request line is not a method, a target and HTTP/1.x, a header field "
                      "line is malformed, or Transfer-Encoding is not chunked";
        }
        break;
    case 411:
        *slug = "malformed-request";
        *title = "the request is malformed";
        *detail = "Content-Length is not a number";
        break;
    case 413:
    case 431:
        *slug = "request-header-fields-too-large";
        *title = "the request header fields are too large";
        *detail = "the request line and header fields exceed " HTTP_HEAD_BUFFER " bytes";
        break;
    case 505:
        *slug = "http-version-not-supported";
        *title = "the HTTP version is not supported";
        *detail = "only HTTP/1.0 and HTTP/1.1 are served";
        break;
    default:
        *slug = *status >= 500 ? "internal" : "malformed-request";
        *title = *status >= 500 ? cl_status_message(CL_INTERNAL) : "the request is malformed";
        break;
    }
}

/*
 * Answers what civetweb refuses before any handler runs (a malformed or over-long request
 * head, an unsupported HTTP version) with a problem like every other error, instead of
 * its text/plain page. No allocation: this also answers when memory ran out. The
 * response goes out in one write; civetweb closes the connection after it.
 */
static int on_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *slug;
    const char *title;
    const char *detail;
    const char *rid = mg_get_header(conn, "X-Request-Id");
    char fresh[33];
    char method_detail[80];
    char date[64];
    char body[1024];
    char security[256];
    char out[2048];
    time_t now = time(NULL);
    struct tm tm;
    int blen;
    int olen;
    int head_only =
        ri != NULL && ri->request_method != NULL && strcmp(ri->request_method, "HEAD") == 0;

    if (status < 400 || status > 599) {
        return 1; /* not an error: let civetweb send it */
    }
    if (!request_id_ok(rid)) {
        cl_random_hex(fresh);
        rid = fresh;
    }
    civetweb_problem(&status, errmsg != NULL ? errmsg : "", ri != NULL ? ri->request_method : NULL,
                     &slug, &title, &detail, method_detail, sizeof(method_detail));
    /*
     * Every string here is either ours or checked to need no escaping: the request id
     * (request_id_ok) and the detail (civetweb's fixed messages, or ours). The path is
     * left out: it was not parsed, or not trusted, when civetweb gave up.
     */
    for (const char *p = detail; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            detail = "civetweb refused the request";
            break;
        }
    }
    blen = snprintf(body, sizeof(body),
                    "{\"type\":\"urn:cleave:problem:%s\",\"title\":\"%s\",\"status\":%d,"
                    "\"detail\":\"%s\",\"request_id\":\"%s\"}",
                    slug, title, status, detail, rid);
    if (blen < 0 || (size_t)blen >= sizeof(body)) {
        return 1;
    }
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    security_header_lines(security, sizeof(security));
    olen = snprintf(out, sizeof(out),
                    "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                    "Content-Length: %d\r\nX-Request-Id: %s\r\nDate: %s\r\n"
                    "%sConnection: close\r\n\r\n%s",
                    status, mg_get_response_code_text(conn, status), blen, rid, date, security,
                    head_only ? "" : body);
    if (olen < 0 || (size_t)olen >= sizeof(out)) {
        return 1;
    }
    mg_disable_keep_alive(conn);
    mg_write(conn, out, (size_t)olen);
    cl_log_with(CL_LOG_WARN, "http",
                json_pack("{s:i,s:s,s:s,s:s}", "status", status, "reason",
                          errmsg != NULL ? errmsg : "", "remote", ri != NULL ? ri->remote_addr : "",
                          "request_id", rid),
                "civetweb refused a request: %d %s", status, errmsg != NULL ? errmsg : "");
    return 0;
}

/* --- lifecycle -------------------------------------------------------------------- */

/*
 * civetweb asks for the TLS context when it starts (and again when it stops, to learn
 * whether to free it): 1 says the context is ours, made and freed by us.
 */
static int on_external_ssl_ctx(void **ssl_ctx, void *user_data)
{
    cl_http_server *srv = user_data;

    *ssl_ctx = srv->tls;
    return 1;
}

static bool tls_wanted(const cl_http_options *opt)
{
    return (opt->tls_cert != NULL && opt->tls_cert[0] != '\0') ||
           (opt->tls_key != NULL && opt->tls_key[0] != '\0') ||
           (opt->tls_client_ca != NULL && opt->tls_client_ca[0] != '\0');
}

cl_status cl_http_start(const cl_http_options *opt, const cl_router *router, cl_http_server **out,
                        cl_error *err)
{
    cl_http_server *srv = NULL;
    char threads[16];
    char queue[16];
    char head_timeout[32];
    char keep_alive[32];
    char listen[HTTP_LISTEN_MAX + 2];
    int nthreads;
    char errtext[256] = "";
    unsigned errcode = 0;
    struct mg_callbacks callbacks;
    struct mg_init_data init;
    struct mg_error_data error;
    struct mg_server_port ports[4];
    cl_status st = CL_OK;

    if (opt == NULL || router == NULL || out == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "no options, router or output");
    }
    if (opt->listen == NULL || opt->listen[0] == '\0' || strlen(opt->listen) > HTTP_LISTEN_MAX ||
        strchr(opt->listen, ',') != NULL) {
        return cl_error_set(err, CL_INVALID, "listen", "listen must be one \"host:port\"");
    }
    if (opt->threads < 0 || opt->threads > 1024 || opt->max_json_depth < 0 ||
        opt->request_timeout_ms < 0 || opt->head_timeout_ms < 0 || opt->body_timeout_ms < 0 ||
        opt->min_body_rate < -1 || opt->keep_alive_ms < 0 || opt->max_conns_per_client < -1 ||
        opt->max_inflight < 0 || opt->route_max_inflight < 0) {
        return cl_error_set(err, CL_INVALID, NULL,
                            "threads, limits and timeouts of the HTTP options must be in range");
    }
    nthreads = opt->threads > 0 ? opt->threads : HTTP_DEFAULT_THREADS;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    if (pthread_mutex_init(&srv->mu, NULL) != 0) {
        free(srv);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot create a mutex");
    }
    /* The drain timeout is measured on the monotonic clock, immune to wall-clock jumps. */
    if (cl_cond_init_monotonic(&srv->idle) != 0) {
        pthread_mutex_destroy(&srv->mu);
        free(srv);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot create a condition variable");
    }
    srv->listener_wake = -1;
    srv->listener_old = -1;
    srv->router = router;
    srv->max_body = opt->max_body > 0 ? opt->max_body : HTTP_DEFAULT_MAX_BODY;
    srv->max_json_depth = opt->max_json_depth > 0 ? opt->max_json_depth : HTTP_DEFAULT_JSON_DEPTH;
    srv->request_timeout_ms =
        opt->request_timeout_ms > 0 ? opt->request_timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    cl_strlcpy(srv->service, opt->service != NULL ? opt->service : "cleave", sizeof(srv->service));
    srv->guard = opt->guard;
    srv->guard_arg = opt->guard_arg;
    srv->body_timeout_ms = opt->body_timeout_ms > 0 ? opt->body_timeout_ms : HTTP_DEFAULT_BODY_MS;
    srv->min_body_rate = opt->min_body_rate == 0  ? HTTP_DEFAULT_MIN_RATE
                         : opt->min_body_rate < 0 ? 0
                                                  : opt->min_body_rate;
    srv->max_inflight = opt->max_inflight > 0 ? opt->max_inflight : nthreads;
    srv->gzip = !opt->gzip_off;
    srv->route_max_inflight =
        opt->route_max_inflight > 0 ? opt->route_max_inflight : srv->max_inflight;
    /*
     * No cap unless asked: behind a gateway or an edge proxy every request comes from one
     * address, and a cap would throttle exactly the pooled connections that carry them.
     */
    srv->max_conns_per_client = opt->max_conns_per_client > 0 ? opt->max_conns_per_client : 0;
    /* One slot per worker: a worker holds one connection, so no more addresses than that. */
    srv->nclients = nthreads;
    srv->nroutes = cl_router_count(router);
    srv->clients = calloc((size_t)nthreads, sizeof(*srv->clients));
    srv->route_admitted = calloc(srv->nroutes + 1, sizeof(*srv->route_admitted));
    srv->route_limit = calloc(srv->nroutes + 1, sizeof(*srv->route_limit));
    if (srv->clients == NULL || srv->route_admitted == NULL || srv->route_limit == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    st = set_bulkheads(srv, opt, err);
    if (st != CL_OK) {
        goto out;
    }
    /* civetweb serves TLS on a port whose number ends in 's'. */
    snprintf(listen, sizeof(listen), "%s", opt->listen);
    if (tls_wanted(opt)) {
        st = cl__http_tls_server_ctx(opt, &srv->tls, err);
        if (st != CL_OK) {
            goto out;
        }
        snprintf(listen, sizeof(listen), "%ss", opt->listen);
    }
    snprintf(threads, sizeof(threads), "%d", nthreads);
    snprintf(queue, sizeof(queue), "%d", nthreads);
    snprintf(head_timeout, sizeof(head_timeout), "%lld",
             (long long)(opt->head_timeout_ms > 0 ? opt->head_timeout_ms : HTTP_DEFAULT_HEAD_MS));
    snprintf(keep_alive, sizeof(keep_alive), "%lld",
             (long long)(opt->keep_alive_ms > 0 ? opt->keep_alive_ms : HTTP_DEFAULT_KEEP_ALIVE));

    /*
     * decode_url=no: the router must see the raw path, or an encoded '/' inside a
     * parameter (%2F) would split it and a literal '%' would be decoded twice.
     * No document_root: nothing is ever served from the file system.
     * tcp_nodelay=1: a response goes out as headers then body; with Nagle's algorithm
     * the body waits for the client's delayed ACK (~40 ms per keep-alive request).
     * request_timeout_ms is civetweb's deadline for a whole request head (and each wait
     * of a read or write); keep_alive_timeout_ms the one for the next head on a kept
     * connection, idle time included. connection_queue and listen_backlog bound what
     * waits for a worker (ADR 0029).
     */
    const char *options[] = {
        "listening_ports",
        listen,
        "num_threads",
        threads,
        "request_timeout_ms",
        head_timeout,
        "keep_alive_timeout_ms",
        keep_alive,
        "connection_queue",
        queue,
        "listen_backlog",
        HTTP_LISTEN_BACKLOG,
        "enable_keep_alive",
        "yes",
        "decode_url",
        "no",
        "tcp_nodelay",
        "1",
        "max_request_size",
        HTTP_HEAD_BUFFER,
        "enable_auth_domain_check",
        "no",
        NULL,
    };
    memset(&callbacks, 0, sizeof(callbacks));
    callbacks.begin_request = on_begin_request;
    callbacks.log_message = log_civetweb;
    callbacks.http_error = on_http_error;
    callbacks.connection_close = on_connection_close;
    callbacks.init_connection = on_init_connection;
    if (srv->tls != NULL) {
        callbacks.external_ssl_ctx = on_external_ssl_ctx;
    }
    memset(&init, 0, sizeof(init));
    init.callbacks = &callbacks;
    init.user_data = srv;
    init.configuration_options = options;
    memset(&error, 0, sizeof(error));
    error.code = &errcode;
    error.text = errtext;
    error.text_buffer_size = sizeof(errtext);

    srv->mg = mg_start2(&init, &error);
    if (srv->mg == NULL) {
        st = cl_error_set(err, CL_UNAVAILABLE, "listen", "cannot serve on %s: %s", opt->listen,
                          errtext[0] != '\0' ? errtext : "civetweb failed");
        goto out;
    }
    memset(ports, 0, sizeof(ports));
    if (mg_get_server_ports(srv->mg, 4, ports) < 1) {
        st =
            cl_error_set(err, CL_UNAVAILABLE, "listen", "cannot learn the port of %s", opt->listen);
        goto out;
    }
    srv->port = ports[0].port;
    *out = srv;
    srv = NULL;
out:
    if (srv != NULL) {
        if (srv->mg != NULL) {
            mg_stop(srv->mg);
        }
        cl__http_tls_free(srv->tls);
        pthread_cond_destroy(&srv->idle);
        pthread_mutex_destroy(&srv->mu);
        free(srv->clients);
        free(srv->route_admitted);
        free(srv->route_limit);
        free(srv);
    }
    return st;
}

int cl_http_port(const cl_http_server *srv)
{
    return srv != NULL ? srv->port : -1;
}

static void wake_master(cl_http_server *srv);

void cl_http_stop(cl_http_server *srv)
{
    struct timespec until;
    int64_t grace;

    if (srv == NULL) {
        return;
    }
    /*
     * Drain first: from now on new requests get a 503, and the ones in flight finish
     * while civetweb still writes their responses. The wait is bounded by the request
     * timeout so that a stuck handler cannot hold the shutdown forever.
     */
    pthread_mutex_lock(&srv->mu);
    /* After cl_http_stop_accepting the caller has waited already, within its own grace. */
    grace = atomic_load(&srv->not_accepting) ? 0 : srv->request_timeout_ms;
    until = cl_deadline_in(grace);
    atomic_store(&srv->draining, 1);
    while (atomic_load(&srv->inflight) > 0 && grace > 0) {
        if (pthread_cond_timedwait(&srv->idle, &srv->mu, &until) == ETIMEDOUT) {
            cl_log_with(CL_LOG_WARN, "http",
                        json_pack("{s:i}", "inflight", atomic_load(&srv->inflight)),
                        "stopping with requests still in flight");
            break;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    wake_master(srv);
    /* Closes the listeners and joins the workers (and any handler still running). */
    mg_stop(srv->mg);
    cl__http_tls_free(srv->tls);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    free(srv->clients);
    free(srv->route_admitted);
    free(srv->route_limit);
    free(srv);
}

/* --- graceful drain (ADR 0032) ------------------------------------------------------ */

/* The listening socket of port: a TCP socket of ours that accepts, bound to it; or -1. */
static int find_listener(int port)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    if (d == NULL) {
        return -1;
    }
    e = readdir(d);
    while (e != NULL && found < 0) {
        char *end = NULL;
        long fd = strtol(e->d_name, &end, 10);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int accepting = 0;
        socklen_t alen = sizeof(accepting);

        if (end != e->d_name && *end == '\0' && fd != dirfd(d) &&
            getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) == 0 && accepting &&
            getsockname((int)fd, (struct sockaddr *)&ss, &len) == 0) {
            int p = ss.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                    : ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : -1;
            found = p == port ? (int)fd : -1;
        }
        e = readdir(d);
    }
    closedir(d);
    return found;
}

/*
 * ThreadSanitizer builds: the descriptor swap below is hidden from it. civetweb, which is
 * not built with it, closes the listener's descriptor number in its master thread when
 * mg_stop (called later on this thread) raises its stop flag; that flag puts the close
 * after the swap, but the sanitizer cannot see a flag of an uninstrumented library, so it
 * would report the two as a race.
 */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define HIDDEN_FROM_TSAN_BEGIN()                                                                   \
    (AnnotateIgnoreReadsBegin(__FILE__, __LINE__), AnnotateIgnoreWritesBegin(__FILE__, __LINE__))
#define HIDDEN_FROM_TSAN_END()                                                                     \
    (AnnotateIgnoreWritesEnd(__FILE__, __LINE__), AnnotateIgnoreReadsEnd(__FILE__, __LINE__))
#else
#define HIDDEN_FROM_TSAN_BEGIN() ((void)0)
#define HIDDEN_FROM_TSAN_END()   ((void)0)
#endif

/*
 * civetweb 1.15 can close its listeners only in mg_stop, which also drops every write of
 * the requests still running. So the listening socket is closed under it: the kernel stops
 * accepting at once (connects are refused), and the descriptor number civetweb polls now
 * holds the read end of a pipe, never readable, whose write end srv keeps. The socket is
 * shut down through a duplicate, which srv keeps too: a poll in progress waits on the
 * socket's queue until it returns. Returns CL_OK, or CL_INTERNAL in err.
 */
static cl_status swap_listener(cl_http_server *srv, cl_error *err)
{
    int fd;
    int old;
    int quiet[2] = {-1, -1};
    int failure;
    bool swapped;

    if (srv->listener_old >= 0) {
        return CL_OK;
    }
    fd = find_listener(srv->port);
    if (fd < 0) {
        return cl_error_set(err, CL_INTERNAL, "listen",
                            "cannot find the listening socket of port %d", srv->port);
    }
    HIDDEN_FROM_TSAN_BEGIN();
    old = dup(fd);
    swapped = old >= 0 && pipe(quiet) == 0 && fcntl(quiet[1], F_SETFD, FD_CLOEXEC) == 0 &&
              dup2(quiet[0], fd) >= 0;
    HIDDEN_FROM_TSAN_END();
    failure = errno;
    if (quiet[0] >= 0) {
        close(quiet[0]);
    }
    if (!swapped) {
        if (quiet[1] >= 0) {
            close(quiet[1]);
        }
        if (old >= 0) {
            close(old);
        }
        return cl_error_set(err, CL_INTERNAL, "listen", "cannot close the listener of port %d: %s",
                            srv->port, strerror(failure));
    }
    shutdown(old, SHUT_RDWR);
    srv->listener_wake = quiet[1];
    srv->listener_old = old;
    return CL_OK;
}

/*
 * Right before mg_stop: civetweb's master thread polls the listener with a 2 s quantum and
 * sees the stop flag only when its poll returns, so every stop would last up to 2 s more.
 * The pipe standing in for the listener hangs up (POLLHUP, never POLLIN: nothing is
 * accepted), and a second shutdown of the old socket wakes a poll still waiting on that
 * socket's queue to look at the descriptor again: the master thread finds the stop flag
 * that mg_stop raises next.
 */
static void wake_master(cl_http_server *srv)
{
    cl_error err = {0};

    if (swap_listener(srv, &err) != CL_OK) {
        return; /* mg_stop still stops, after the quantum */
    }
    close(srv->listener_wake);
    shutdown(srv->listener_old, SHUT_RDWR);
    close(srv->listener_old);
    srv->listener_wake = -1;
    srv->listener_old = -1;
}

cl_status cl_http_stop_accepting(cl_http_server *srv, cl_error *err)
{
    cl_status st;

    if (srv == NULL) {
        return CL_OK;
    }
    st = swap_listener(srv, err);
    /*
     * Only now do answers close their connections (dispatch): a client told to reconnect
     * while the listener still took connections would land in its backlog, which the
     * shutdown resets (test_drain saw ECONNRESET on such requests). After the shutdown its
     * connect is refused, and it goes elsewhere.
     */
    atomic_store(&srv->not_accepting, 1);
    return st;
}

int cl_http_wait_idle(cl_http_server *srv, int64_t timeout_ms, cl_http_activity *left)
{
    struct timespec until = cl_deadline_in(timeout_ms > 0 ? timeout_ms : 0);
    int idle;

    if (srv == NULL) {
        if (left != NULL) {
            *left = (cl_http_activity){0};
        }
        return 1;
    }
    pthread_mutex_lock(&srv->mu);
    while (atomic_load(&srv->inflight) > 0 || srv->conns > 0) {
        if (pthread_cond_timedwait(&srv->idle, &srv->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    idle = atomic_load(&srv->inflight) == 0 && srv->conns == 0;
    if (left != NULL) {
        left->requests = atomic_load(&srv->inflight);
        left->connections = srv->conns;
    }
    pthread_mutex_unlock(&srv->mu);
    return idle;
}

/* --- shutdown signals ------------------------------------------------------------- */

static void shutdown_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void cl_shutdown_prepare(void)
{
    sigset_t set;

    /* Threads inherit the mask, so only the thread in sigwait ever sees these signals. */
    shutdown_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int cl_shutdown_wait_ms(int64_t timeout_ms)
{
    sigset_t set;
    struct timespec ts;
    int sig;

    shutdown_set(&set);
    ts.tv_sec = (time_t)(timeout_ms > 0 ? timeout_ms / 1000 : 0);
    ts.tv_nsec = (long)(timeout_ms > 0 ? timeout_ms % 1000 : 0) * 1000000L;
    do {
        sig = sigtimedwait(&set, NULL, &ts);
        /* EINTR: another signal (not ours) interrupted the wait; wait again. */
    } while (sig < 0 && errno == EINTR);
    return sig > 0 ? sig : 0;
}

int cl_shutdown_wait(void)
{
    sigset_t set;
    int sig = 0;

    shutdown_set(&set);
    while (sigwait(&set, &sig) != 0) {
        /* sigwait only fails for an invalid set; retrying keeps the contract simple. */
    }
    return sig;
}
