/*
 * http_internal.h - what the files of platform/http share and nobody else may use.
 */
#ifndef CLEAVE_HTTP_INTERNAL_H
#define CLEAVE_HTTP_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>

#include "cleave/http.h"

/* Extra response headers a handler may set, and their size limits (header docs say 16). */
#define CL__HTTP_MAX_HEADERS      16
#define CL__HTTP_HEADER_NAME_MAX  64
#define CL__HTTP_HEADER_VALUE_MAX 1024

typedef struct cl__http_header {
    char name[CL__HTTP_HEADER_NAME_MAX];
    char value[CL__HTTP_HEADER_VALUE_MAX];
} cl__http_header;

struct cl_http_server {
    struct mg_context *mg;
    const cl_router *router;
    size_t max_body;
    int max_json_depth;
    int64_t request_timeout_ms;
    int port;
    char service[64];
    /*
     * civetweb drops every write once mg_stop has begun, so a graceful stop must drain
     * our in-flight requests before calling it: mu guards inflight and draining, and idle
     * is signalled when inflight drops to zero.
     */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int inflight;
    int draining;
};

/* One request, owned by the dispatch that serves it, for the length of that dispatch. */
struct cl_http_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    cl_http_server *srv;
    const char *method; /* borrowed from civetweb */
    const char *path;   /* raw (still percent-encoded) path, borrowed from civetweb */
    const char *query;  /* raw query string or NULL, borrowed from civetweb */
    cl_route_match match;
    cl_ctx ctx;
    size_t nheaders;
    cl__http_header headers[CL__HTTP_MAX_HEADERS];
    int replied;   /* a response has been sent; nothing more may be written */
    int body_read; /* cl_http_read_json consumed the body */
    int status;    /* the status sent, for the access log */
    size_t bytes;  /* body bytes sent, for the access log */
};

/*
 * Percent-decodes src[0..n) into dst[size], NUL-terminated. plus_as_space turns '+' into
 * ' ' (query strings only). Returns the decoded length, -1 for a malformed escape or an
 * encoded NUL (which no C string can carry), -2 when dst is too small.
 */
int cl__http_pct_decode(const char *src, size_t n, int plus_as_space, char *dst, size_t size);

/*
 * Sends the one response of req: status line, Content-Type (when ctype is not NULL),
 * Content-Length, X-Request-Id, the headers the handler set, then the body. A second
 * call is ignored, so a handler cannot corrupt the connection by replying twice.
 */
void cl__http_send(cl_http_req *req, int status, const char *ctype, const void *data, size_t len);

#endif /* CLEAVE_HTTP_INTERNAL_H */
