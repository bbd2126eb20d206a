/*
 * http_internal.h - what the files of platform/http share and nobody else may use.
 */
#ifndef CLEAVE_HTTP_INTERNAL_H
#define CLEAVE_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>

#include "cleave/http.h"
#include "cleave/trace.h"

/* Extra response headers a handler may set, and their size limits (header docs say 16). */
#define CL__HTTP_MAX_HEADERS      16
#define CL__HTTP_HEADER_NAME_MAX  64
#define CL__HTTP_HEADER_VALUE_MAX 1024

/*
 * A response's head and body are sent in one write when they fit in this many bytes (a
 * buffer per worker thread); the head alone always fits: every extra header at its limits,
 * and the status line and our own headers in the rest.
 */
#define CL__HTTP_RESPONSE_BYTES   32768
_Static_assert(CL__HTTP_MAX_HEADERS *(CL__HTTP_HEADER_NAME_MAX + CL__HTTP_HEADER_VALUE_MAX + 4) +
                       4096 <
                   CL__HTTP_RESPONSE_BYTES,
               "a response head must fit the response buffer");

/*
 * Content coding (ADR 0040): a body of a compressible type from CL__HTTP_GZIP_MIN_BYTES to
 * CL__HTTP_GZIP_MAX_BYTES is gzipped at zlib's level CL__HTTP_GZIP_LEVEL (its fastest: the
 * ratio on JSON is close to level 6's at a fraction of the time, bench_gzip). Smaller
 * bodies fit a packet anyway; larger ones would make each worker keep a large buffer.
 */
#define CL__HTTP_GZIP_MIN_BYTES 1024
#define CL__HTTP_GZIP_MAX_BYTES ((size_t)1 << 20)
#define CL__HTTP_GZIP_LEVEL     1

typedef struct cl__http_header {
    char name[CL__HTTP_HEADER_NAME_MAX];
    char value[CL__HTTP_HEADER_VALUE_MAX];
} cl__http_header;

/* The connections one client address holds (a worker thread each), for the per-address cap. */
typedef struct cl__http_client {
    char addr[48]; /* civetweb's remote_addr; "" when the slot is free */
    int conns;
} cl__http_client;

struct cl_http_server {
    struct mg_context *mg;
    const cl_router *router;
    size_t max_body;
    int max_json_depth;
    int64_t request_timeout_ms;
    int64_t body_timeout_ms;
    int64_t min_body_rate; /* bytes per second; 0 for none */
    int port;
    /*
     * Admission (ADR 0029): handler slots in use over all bounded routes, and per route
     * (indexed as cl_router_at), atomics that a slot is taken from only below its bound
     * (ADR 0049); the connections of each client address, under mu, one slot per worker
     * thread since a worker holds at most one connection.
     */
    int max_inflight;
    int route_max_inflight;
    int max_conns_per_client; /* 0 for no cap */
    atomic_int admitted;
    size_t nroutes;
    atomic_int *route_admitted;
    int *route_limit; /* each route's bulkhead, CL_HTTP_UNBOUNDED for none */
    int nclients;
    cl__http_client *clients;
    char service[64];
    cl_http_guard guard;
    void *guard_arg;
    /*
     * civetweb drops every write once mg_stop has begun, so a graceful stop must drain
     * our in-flight requests before calling it. inflight and draining are atomics, so that
     * a request counts itself without a lock (two lock round trips per request were a
     * queue on one mutex among 32 busy workers); a request increments inflight before it
     * reads draining and a stop sets draining before it reads inflight (both sequentially
     * consistent), so either the request sees the drain or the stop waits for it. idle is
     * signalled under mu when inflight drops to zero, and waiters test it under mu.
     */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    atomic_int inflight;
    atomic_int draining;
    /*
     * Graceful drain (ADR 0032): under mu, the connections workers hold (from civetweb's
     * init_connection to its connection_close); an atomic, whether the listener was closed,
     * after which every answer closes its connection.
     */
    int conns;
    atomic_int not_accepting;
    /*
     * Once the listener is closed (cl_http_stop_accepting): the write end of the pipe whose
     * read end stands in for it, and a duplicate of the shut-down socket; else -1. mg_stop
     * closes both to wake civetweb's master thread at once (wake_master).
     */
    int listener_wake;
    int listener_old;
    void *tls; /* the SSL_CTX civetweb serves TLS with (tls.c), or NULL for plain HTTP */
    int gzip;  /* answers may be gzipped (cl_http_options.gzip_off not set) */
};

/* One declared query parameter as it came in: raw (still percent-encoded), borrowed. */
typedef struct cl__http_query_value {
    const char *name; /* points into the route's declaration; not NUL-terminated there */
    size_t name_len;
    const char *raw; /* NULL when absent */
    size_t raw_len;
} cl__http_query_value;

/* One request, owned by the dispatch that serves it, for the length of that dispatch. */
struct cl_http_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    cl_http_server *srv;
    const char *method; /* borrowed from civetweb */
    const char *path;   /* raw (still percent-encoded) path, borrowed from civetweb */
    const char *query;  /* raw query string or NULL, borrowed from civetweb */
    cl_route_match match;
    size_t nquery; /* query_values filled (before the handler) */
    cl_ctx ctx;
    size_t nheaders;
    int replied;       /* a response has been sent; nothing more may be written */
    int body_read;     /* cl_http_read_json consumed the body */
    int body_done;     /* the body was read to its end */
    int closing;       /* the connection closes after this response (cl__http_close_after) */
    int status;        /* the status sent, for the access log */
    size_t bytes;      /* body bytes sent, for the access log */
    int cache_public;  /* cl_http_cache_public was called: a 200 to GET is cacheable */
    int cache_max_age; /* its max-age in seconds */
    cl_span span;      /* the request's server span (cleave/trace.h) */
    /*
     * Last, and not cleared between requests (CL__HTTP_REQ_CLEARED): only the first
     * nquery and nheaders entries are ever read. The route's declared query parameters and
     * their values; the extra response headers the handler set.
     */
    cl__http_query_value query_values[CL_ROUTE_MAX_QUERY];
    cl__http_header headers[CL__HTTP_MAX_HEADERS];
};

/*
 * A JSON body is encoded at the start of the worker's response buffer when it fits (else
 * into an allocation of its own); its head is then made in this many bytes on the stack
 * (a product's is some 450; a larger one, on the heap) and goes in front of it. Every
 * answer so writes the buffer from its start, as far as it sends (ADR 0063).
 */
#define CL__HTTP_HEAD_BYTES  2048

/* The bytes of a cl_http_req that each request starts with zeroed: all but the arrays. */
#define CL__HTTP_REQ_CLEARED offsetof(struct cl_http_req, query_values)

/*
 * What each worker thread keeps between requests (ADR 0046): made on its first, freed
 * when it ends; not on the stack, which civetweb makes small (100 KiB), nor allocated per
 * request (a 30 KiB calloc made malloc consolidate its free lists each time).
 */
typedef struct cl__http_worker {
    char response[CL__HTTP_RESPONSE_BYTES]; /* head and body, written at once */
    void *gzip; /* cache.c's deflate stream, NULL until the thread's first gzipped answer */
    int busy;   /* req serves a request now (a handler never runs dispatch again) */
    struct cl_http_req req; /* the request the thread serves */
} cl__http_worker;

/* This thread's worker buffers, or NULL when out of memory. */
cl__http_worker *cl__http_worker_get(void);

/*
 * Percent-decodes src[0..n) into dst[size], NUL-terminated. plus_as_space turns '+' into
 * ' ' (query strings only). Returns the decoded length, -1 for a malformed escape or an
 * encoded NUL (which no C string can carry), -2 when dst is too small. With dst NULL it
 * only checks src and returns the length the decoded text would have (n fits in an int:
 * callers bound it first).
 */
int cl__http_pct_decode(const char *src, size_t n, int plus_as_space, char *dst, size_t size);

/*
 * cl_router_match by comparing the path with every route in turn: the router's definition
 * of a match, which the trie it uses must agree with on every path (test_router checks
 * that on many; bench_router measures what the trie saves). Same results and outputs.
 */
cl_route_result cl__router_match_scan(const cl_router *r, const char *method, const char *path,
                                      cl_route_match *m, char *allow, size_t allow_size);

/*
 * s as a new JSON string (a new reference; NULL when out of memory): at most max bytes,
 * cut at a character boundary, each byte that is not part of well-formed UTF-8 replaced
 * by U+FFFD. Problems quote client input, which may be any bytes; jansson refuses
 * invalid UTF-8, so every string from input goes through here.
 */
json_t *cl__http_json_text(const char *s, size_t max);

/*
 * Checks query (the raw query string, NULL when none) against decl, a route's declared
 * names (cl_route.query, NULL when none), and fills values[CL_ROUTE_MAX_QUERY] with a
 * slot per declared name (pointing into decl and query, which must outlive them) and
 * *nvalues with their number. CL_INVALID naming the parameter (err->field) for a pair
 * without a name, a malformed name or value, an undeclared or a repeated name. Pure: the
 * HTTP side is cl__http_check_query, which replies; fuzzing calls this directly.
 */
cl_status cl__http_parse_query(const char *decl, const char *query, cl__http_query_value *values,
                               size_t *nvalues, cl_error *err);

/*
 * Checks the query of req against the route's declaration and fills req->query_values.
 * Returns 0, or 1 after replying 400 naming the offending parameter.
 */
int cl__http_check_query(cl_http_req *req);

/* What cl__http_parse_json made of a body; the caller turns a refusal into its problem. */
typedef enum cl__http_json_result {
    CL__HTTP_JSON_OK,
    CL__HTTP_JSON_TOO_DEEP,   /* nests arrays and objects deeper than max_depth */
    CL__HTTP_JSON_MALFORMED,  /* not JSON, or an object repeats a key: *jerr says where */
    CL__HTTP_JSON_NOT_OBJECT, /* valid JSON, but object_only and not an object */
} cl__http_json_result;

/*
 * Parses a request body text[0..len) as cl_http_read_json does, without the transport:
 * nesting checked against max_depth before jansson sees it, duplicate keys refused, any
 * value accepted unless object_only. On CL__HTTP_JSON_OK *out is a new reference.
 */
cl__http_json_result cl__http_parse_json(const char *text, size_t len, int max_depth,
                                         int object_only, json_t **out, json_error_t *jerr);

/*
 * Sends the one response of req: status line, Content-Type (when ctype is not NULL),
 * Content-Length, X-Request-Id, the headers the handler set, then the body. A second
 * call is ignored, so a handler cannot corrupt the connection by replying twice.
 */
void cl__http_send(cl_http_req *req, int status, const char *ctype, const void *data, size_t len);

/*
 * Closes the connection after this response: what the client still sends cannot be
 * trusted, or waited for, to frame a next request.
 */
void cl__http_close_after(cl_http_req *req);

/* --- caching and content coding (cache.c, ADR 0040) ------------------------------ */

/*
 * Whether an Accept-Encoding value (NULL when absent) accepts gzip: named as gzip or x-gzip
 * with a qvalue above 0, or not named and "*" with a qvalue above 0. A malformed member
 * accepts nothing (an unencoded body is always acceptable, so the answer is still one the client
 * reads).
 */
int cl__http_accepts_gzip(const char *accept_encoding);
/* Whether a body of media type ctype is worth gzipping: text/ *, application/json, +json. */
int cl__http_compressible(const char *ctype);
/*
 * Matches an If-None-Match value against etag (one entity-tag, or NULL when the
 * representation has none) by weak comparison: 1 when list is "*" or names etag, 0 when
 * not, -1 when list is not "*" or a comma-separated list of entity-tags.
 */
int cl__http_etag_match(const char *list, const char *etag);
/* A strong ETag ("..." with 32 hex digits of SHA-256) of data into out[size >= 35]; 0 or -1. */
int cl__http_body_etag(const void *data, size_t len, char *out, size_t size);
/*
 * Gzips data[0..len) with this thread's stream: *out (borrowed, valid until this thread's
 * next call) and *out_len. 0, or -1 when out of memory.
 */
int cl__http_gzip(const void *data, size_t len, const unsigned char **out, size_t *out_len);
/* Frees a cl__http_worker's gzip stream; NULL is a no-op. */
void cl__http_gzip_free(void *gzip);

/* --- TLS (tls.c) ------------------------------------------------------------------ */

/*
 * Loads, once per process, the objects civetweb 1.15 needs to run TLS with OpenSSL 3.
 * CL_OK, or CL_UNAVAILABLE saying what could not be loaded.
 */
cl_status cl__http_tls_load_compat(cl_error *err);
/*
 * The server's SSL_CTX for mutual TLS from opt's tls_cert, tls_key and tls_client_ca: TLS
 * 1.2 or newer, a client certificate required and verified against tls_client_ca only.
 * On success *out is owned by the caller (cl__http_tls_free). CL_INVALID naming the
 * setting (CLEAVE_TLS_...) that is missing, unreadable or unusable; CL_UNAVAILABLE when
 * the compatibility objects cannot be loaded.
 */
cl_status cl__http_tls_server_ctx(const cl_http_options *opt, void **out, cl_error *err);
/* Frees a context from cl__http_tls_server_ctx; NULL is a no-op. */
void cl__http_tls_free(void *ctx);

/*
 * json as json_dumpb(JSON_COMPACT | JSON_ENCODE_ANY) writes it, into buf[size], without
 * an allocation (json.c): the text's length, or 0 when this writer leaves it to json_dumpb
 * (the text does not fit, a string is not UTF-8, the nesting is deep, json is NULL).
 */
size_t cl__http_json_encode(json_t *json, char *buf, size_t size);

#endif /* CLEAVE_HTTP_INTERNAL_H */
