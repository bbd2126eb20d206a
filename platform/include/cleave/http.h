/*
 * cleave/http.h - the HTTP server: a civetweb wrapper with a router, JSON bodies with
 * limits, RFC 9457 problem+json errors, request ids, access logs and graceful shutdown.
 *
 * Every route names the permission it needs. A route without one cannot be added, so
 * the gateway's authorization (RBAC) covers every route by construction.
 */
#ifndef CLEAVE_HTTP_H
#define CLEAVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cleave/schema.h"
#include "cleave/status.h"

/* The permission of routes that anyone may call (health checks, discovery). */
#define CL_PERM_PUBLIC  "public"
/* The permission of RPC routes (cleave/rpc.h), whose callers the RPC layer authenticates. */
#define CL_PERM_SERVICE "service"

typedef struct cl_http_req cl_http_req;
typedef void (*cl_http_handler)(cl_http_req *req, void *arg);

typedef struct cl_route {
    const char *method;     /* "GET", "POST", "PATCH", "PUT", "DELETE" (GET also serves HEAD) */
    const char *pattern;    /* "/api/v1/products/{id}": literal segments and {name} params */
    const char *permission; /* "widgets:write", or CL_PERM_PUBLIC; never NULL or empty */
    cl_http_handler handler;
    void *arg; /* passed to handler */
    /*
     * The query parameters the route accepts, separated by spaces ("cursor limit"), each
     * at most once; NULL or "" accepts none. The server refuses (400 naming the parameter)
     * a query with a malformed pair, an encoded NUL, an undeclared or a repeated name
     * before the handler runs (ADR 0015).
     */
    const char *query;
} cl_route;

/* --- router ----------------------------------------------------------------------- */

#define CL_ROUTE_MAX_PARAMS     8
/* Most query parameters a route may declare, and the longest name. */
#define CL_ROUTE_MAX_QUERY      16
#define CL_ROUTE_QUERY_NAME_MAX 63

typedef struct cl_router cl_router;

typedef struct cl_route_match {
    const cl_route *route; /* borrowed from the router */
    size_t nparams;
    const char *names[CL_ROUTE_MAX_PARAMS];
    char values[CL_ROUTE_MAX_PARAMS][256]; /* percent-decoded */
} cl_route_match;

typedef enum cl_route_result {
    CL_ROUTE_FOUND,     /* *m is filled */
    CL_ROUTE_NOT_FOUND, /* no route has this path: 404 */
    CL_ROUTE_BAD_METHOD /* the path exists with other methods: 405, allow lists them */
} cl_route_result;

/* A new empty router owned by the caller, or NULL when out of memory. */
cl_router *cl_router_new(void);
void cl_router_free(cl_router *r);
/*
 * Adds a copy of route. CL_INVALID (naming the route) for a malformed pattern, an
 * unknown method, a missing permission or handler, a method+pattern already added, or a
 * query declaration with a name that is not an identifier, repeated, or too many names.
 */
cl_status cl_router_add(cl_router *r, const cl_route *route, cl_error *err);
/* Adds routes[0..n-1] in order, stopping at the first that cl_router_add refuses. */
cl_status cl_router_add_all(cl_router *r, const cl_route *routes, size_t n, cl_error *err);
/*
 * Matches method and path (without query string). HEAD matches the GET route of the path.
 * allow receives "GET, HEAD, POST" for 405.
 */
cl_route_result cl_router_match(const cl_router *r, const char *method, const char *path,
                                cl_route_match *m, char *allow, size_t allow_size);
/* Number of routes and the i-th route (borrowed), in the order they were added. */
size_t cl_router_count(const cl_router *r);
const cl_route *cl_router_at(const cl_router *r, size_t i);

/* --- server ----------------------------------------------------------------------- */

/*
 * The gateway's check of every matched route before its handler runs (authentication
 * and RBAC, in the application): CL_OK lets the handler run; any other status answers
 * the request with cl_http_ctx(req)->err (the guard may set headers first, such as
 * WWW-Authenticate). It may set the context's principal.
 */
typedef cl_status (*cl_http_guard)(void *arg, cl_http_req *req, const char *permission);
/* A bulkhead's max_inflight that exempts its route from admission limits altogether. */
#define CL_HTTP_UNBOUNDED (-1)

/*
 * A route's bulkhead: the most requests it may run at once; one more is answered 503
 * with Retry-After at once, so that one slow route cannot take every handler slot
 * (ADR 0029). CL_HTTP_UNBOUNDED exempts the route from this and from max_inflight: only
 * for cheap routes that must answer under load (liveness and readiness probes).
 */
typedef struct cl_http_bulkhead {
    const char *method; /* the route's method and pattern exactly as added */
    const char *pattern;
    int max_inflight; /* > 0, or CL_HTTP_UNBOUNDED */
} cl_http_bulkhead;

typedef struct cl_http_options {
    const char *listen;         /* "127.0.0.1:8080"; port 0 picks a free port */
    int threads;                /* worker threads; 0 means a default */
    size_t max_body;            /* largest accepted request body; 0 means 1 MiB */
    int max_json_depth;         /* deepest accepted JSON nesting; 0 means 32 */
    int64_t request_timeout_ms; /* deadline given to each request's ctx; 0 means 10 s */
    const char *service;        /* name used in logs ("cleave", "cleave-widgets") */
    cl_http_guard guard;        /* checks every route before its handler; NULL: none */
    void *guard_arg;
    /*
     * Slow and idle clients (ADR 0029). Each worker thread holds one connection, so these
     * bound how long a client that sends slowly, or nothing, can hold one; 0 means the
     * default given.
     */
    int64_t head_timeout_ms;  /* the request line and header fields, in total; 10 s */
    int64_t body_timeout_ms;  /* the whole body, in total (not per byte); 30 s */
    int64_t min_body_rate;    /* bytes per second a body must keep after its first
                                 second, -1 for no minimum; 1024 */
    int64_t keep_alive_ms;    /* idle time between requests on a connection; 500 ms */
    int max_conns_per_client; /* connections one address may hold; more are answered
                                 503 and closed; 0 or -1: no cap */
    /*
     * Load shedding: requests running handlers at once, over all routes but the
     * unbounded ones; one more is answered 503 with Retry-After at once. 0 means threads.
     */
    int max_inflight;
    int route_max_inflight; /* a route's bulkhead unless bulkheads name it; 0: max_inflight */
    const cl_http_bulkhead *bulkheads; /* borrowed during cl_http_start; may be NULL */
    size_t nbulkheads;
    /*
     * Mutual TLS (ADR 0035): PEM files, read once at start. All three
     * set: the listener serves only HTTPS and completes a handshake only with a client
     * whose certificate tls_client_ca signed. None set: plain HTTP. Some: CL_INVALID.
     */
    const char *tls_cert;      /* CLEAVE_TLS_CERT: the server's certificate chain */
    const char *tls_key;       /* CLEAVE_TLS_KEY: its private key, unencrypted */
    const char *tls_client_ca; /* CLEAVE_TLS_CLIENT_CA: the CA(s) client certificates need */
    /*
     * Content coding (ADR 0040): answers of 1 KiB and more of a JSON or text type are
     * gzipped for clients that accept it, unless this is set (CLEAVE_HTTP_GZIP=0): behind
     * a proxy that compresses anyway, say.
     */
    int gzip_off;
} cl_http_options;

typedef struct cl_http_server cl_http_server;

/*
 * Starts serving. router is borrowed and must outlive the server, and gets no routes
 * after this. On success *out is owned by the caller (cl_http_stop). CL_INVALID for an
 * option out of range, a bulkhead naming no route or TLS half configured or with a file
 * that cannot be used (naming its CLEAVE_TLS_ setting); CL_UNAVAILABLE when the address
 * cannot be bound.
 */
cl_status cl_http_start(const cl_http_options *opt, const cl_router *router, cl_http_server **out,
                        cl_error *err);
/* The port the server listens on (useful after listening on port 0). */
int cl_http_port(const cl_http_server *srv);
/* Stops accepting, lets in-flight requests finish, frees the server. NULL is a no-op. */
void cl_http_stop(cl_http_server *srv);

/*
 * Graceful drain (ADR 0032): closes the listening socket, so that new connections are
 * refused at once, while the connections already open keep being served; from now on
 * every answer closes its connection. CL_INTERNAL when the socket cannot be found or
 * replaced. NULL is a no-op.
 */
cl_status cl_http_stop_accepting(cl_http_server *srv, cl_error *err);

/* What a server still has open: requests running, connections held by workers. */
typedef struct cl_http_activity {
    int requests;
    int connections;
} cl_http_activity;

/*
 * Waits up to timeout_ms for no request in flight and no connection open (after
 * cl_http_stop_accepting, so that none comes). Returns 1 when idle, 0 when the time ran
 * out; *left (may be NULL) receives what is still open either way.
 */
int cl_http_wait_idle(cl_http_server *srv, int64_t timeout_ms, cl_http_activity *left);

/* Blocks SIGINT and SIGTERM in the calling thread (call before starting any thread). */
void cl_shutdown_prepare(void);
/* Waits for SIGINT or SIGTERM; returns the signal number. */
int cl_shutdown_wait(void);
/* Waits at most timeout_ms (0: only checks) for SIGINT or SIGTERM; the signal, or 0. */
int cl_shutdown_wait_ms(int64_t timeout_ms);

/* --- request ---------------------------------------------------------------------- */

const char *cl_http_method(const cl_http_req *req);
const char *cl_http_path(const cl_http_req *req);
/* A path parameter ("id" in /products/{id}), percent-decoded, borrowed; NULL if none. */
const char *cl_http_param(const cl_http_req *req, const char *name);
/*
 * Copies the percent-decoded query parameter name into buf[size] (buf is written only
 * when the value fits). name must be declared by the route (cl_route.query): the server
 * has already refused malformed, undeclared and repeated parameters.
 * Returns its length, -1 when absent (or undeclared), -2 when longer than size - 1.
 */
int cl_http_query(const cl_http_req *req, const char *name, char *buf, size_t size);
/*
 * Parses the query parameter name as a decimal integer in [min, max]: digits only (no
 * sign, space or other characters). Returns 0 when absent (*out untouched), 1 with *out
 * set, or -1 after replying 400 naming the parameter ("limit must be an integer from 1
 * to 100").
 */
int cl_http_query_int(cl_http_req *req, const char *name, int64_t min, int64_t max, int64_t *out);
/*
 * The percent-decoded query parameter name as a new string in *out (free), or NULL when
 * absent. Returns 0, or -1 after replying 400 naming the parameter when it is longer than
 * max bytes (max < 1024) or memory ran out.
 */
int cl_http_query_dup(cl_http_req *req, const char *name, size_t max, char **out);
/* A request header, borrowed; NULL if absent. Case-insensitive name. */
const char *cl_http_header(const cl_http_req *req, const char *name);
/* The route that matched (borrowed). */
const cl_route *cl_http_route(const cl_http_req *req);
/*
 * The call context of this request: request id, deadline, trace ids, principal.
 * Owned by the request; handlers pass it to module operations.
 */
cl_ctx *cl_http_ctx(cl_http_req *req);

/*
 * Reads the body as JSON: checks Content-Type (application/json or +json), the size
 * limit and the nesting limit. On success *out is a new reference (json_decref).
 * On failure the problem response (400, 413 or 415) has already been sent: the handler
 * just returns. A body that is not a JSON object is refused when object_only is set.
 */
cl_status cl_http_read_json(cl_http_req *req, int object_only, json_t **out);

/*
 * Reads an application/x-www-form-urlencoded body (HTML forms; the OAuth 2.0 token
 * endpoint, RFC 6749 appendix B) into *out, a new JSON object (json_decref) of every
 * name with its percent-decoded value as a string ('+' is a space). Checks Content-Type
 * (parameters such as charset ignored) and the size limit. Refuses, with the problem
 * response already sent (400 naming the parameter, 413 or 415), a pair without a name, a
 * malformed percent-escape or an encoded NUL, a value that is not UTF-8, a name given
 * more than once (RFC 6749 section 3.2) and more than CL_HTTP_FORM_MAX_FIELDS pairs.
 */
#define CL_HTTP_FORM_MAX_FIELDS 64
cl_status cl_http_read_form(cl_http_req *req, json_t **out);
/*
 * The credentials of an "Authorization: Basic" header (RFC 7617) into user[usize] and
 * password[psize]: base64 of "user:password", split at the first ':'. Returns 1 with both
 * set, 0 when the request has no Authorization header, -1 when it has one that is not
 * well-formed Basic credentials (another scheme, bad base64, no ':', a NUL, too long).
 */
int cl_http_basic_auth(const cl_http_req *req, char *user, size_t usize, char *password,
                       size_t psize);
/*
 * Decodes s as one application/x-www-form-urlencoded name or value ('+' is a space,
 * %XX escapes) into out[size]. Returns the length, -1 for a malformed escape or an
 * encoded NUL, -2 when out is too small.
 */
int cl_http_form_decode(const char *s, char *out, size_t size);
/* The address of the peer that sent the request ("127.0.0.1", "::1"), borrowed. */
const char *cl_http_remote_addr(const cl_http_req *req);

/* --- response --------------------------------------------------------------------- */

/*
 * Adds a response header (copied). At most 16 per response; -1 when full or too long.
 * Unless the handler sets Cache-Control itself, the server sends "Cache-Control: no-store"
 * with every answer but a cacheable one (cl_http_cache_public).
 */
int cl_http_set_header(cl_http_req *req, const char *name, const char *value);

/*
 * Caching (ADR 0040). Says that a 200 answer to this GET (or HEAD) is the same for every
 * caller and may be kept by any cache for max_age_s seconds (0: revalidated each time):
 * it then carries "Cache-Control: public, max-age=<max_age_s>" and an ETag, the handler's
 * own (set with cl_http_set_header before replying, a version say) or else a hash of the
 * body; a request whose If-None-Match matches it is answered 304 without a body. A
 * malformed If-None-Match is refused with 400 before any handler runs. Errors are never
 * cacheable, whatever the handler said.
 */
void cl_http_cache_public(cl_http_req *req, int max_age_s);
/*
 * A gzipped answer's strong ETag is the handler's with this inside its closing quote ("3"
 * becomes "3-gzip"): RFC 9110 8.8.3 wants distinct tags for distinct content codings. A
 * handler that checks If-Match against its own tags accepts both forms.
 */
#define CL_HTTP_GZIP_ETAG_SUFFIX "-gzip"
/*
 * Sends body with status as application/json. Steals body. A NULL body means building
 * it failed (cl_schema_to_json or json_pack returned NULL): the client gets a 500
 * problem, never the status with an empty body. Use cl_http_reply_empty for no body.
 */
void cl_http_reply_json(cl_http_req *req, int status, json_t *body);
/*
 * Sends obj, of the declared type, with status as application/json: the bytes
 * cl_http_reply_json(req, status, cl_schema_to_json(type, obj)) sends, written with no tree
 * (cl_schema_dump). obj is borrowed. A string that is not UTF-8 gets the client a 500.
 */
void cl_http_reply_type(cl_http_req *req, int status, const cl_type *type, const void *obj);
/* Sends an empty response (204, 304). */
void cl_http_reply_empty(cl_http_req *req, int status);
/* Sends raw bytes with a content type. */
void cl_http_reply_bytes(cl_http_req *req, int status, const char *content_type, const void *data,
                         size_t len);
/*
 * Sends an RFC 9457 application/problem+json response:
 *   {"type":"urn:cleave:problem:<slug>","title":...,"status":...,"detail":...,
 *    "instance":<path>,"request_id":...}
 * merged with extra (stolen, may be NULL).
 */
void cl_http_reply_problem(cl_http_req *req, int status, const char *slug, const char *title,
                           const char *detail, json_t *extra);
/*
 * Sends the problem for a failed module call: the HTTP status of err->status, slug and
 * title from the status table, detail from err->message, and for CL_INVALID with a
 * field: "invalid_params":[{"name":field,"reason":message}].
 */
void cl_http_reply_error(cl_http_req *req, const cl_error *err);

#endif /* CLEAVE_HTTP_H */
