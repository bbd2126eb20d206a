/*
 * The router: method + path patterns with literal and {name} segments.
 *
 * Routes are few (tens) and matched by a linear scan; a trie would only pay off with
 * thousands of routes. The router is written once at start-up and only read while the
 * server runs, so concurrent matches from civetweb's workers need no lock.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define ROUTER_PATTERN_MAX    512
#define ROUTER_SEGMENTS_MAX   32
#define ROUTER_PARAM_NAME_MAX 63
#define ROUTER_METHODS_MAX    8

typedef struct route_entry {
    cl_route route; /* its strings point into method, pattern and permission below */
    char *method;
    char *pattern;
    char *permission;
    char *query;  /* the declared query parameter names, or NULL */
    char *segbuf; /* a copy of pattern cut into NUL-terminated segments */
    size_t nseg;
    const char *seg[ROUTER_SEGMENTS_MAX];
    size_t seglen[ROUTER_SEGMENTS_MAX];
    unsigned char is_param[ROUTER_SEGMENTS_MAX];
    size_t nparams;
} route_entry;

struct cl_router {
    /* Pointers, so that the cl_route handed out stays put when the array grows. */
    route_entry **routes;
    size_t count;
    size_t cap;
};

static const char *const known_methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int cl__http_pct_decode(const char *src, size_t n, int plus_as_space, char *dst, size_t size)
{
    size_t i = 0;
    size_t o = 0;

    while (i < n) {
        char c = src[i];

        if (c == '\0') {
            return -1;
        }
        if (c == '%') {
            int hi;
            int lo;

            if (n - i < 3) {
                return -1;
            }
            hi = hex_value(src[i + 1]);
            lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            c = (char)(hi * 16 + lo);
            i += 3;
        } else {
            if (c == '+' && plus_as_space) {
                c = ' ';
            }
            i++;
        }
        if (dst != NULL) {
            if (o + 1 >= size) {
                return -2;
            }
            dst[o] = c;
        }
        o++;
    }
    if (dst == NULL) {
        return (int)o;
    }
    if (size == 0) {
        return -2;
    }
    dst[o] = '\0';
    return (int)o;
}

static void entry_free(route_entry *e)
{
    if (e == NULL) {
        return;
    }
    free(e->method);
    free(e->pattern);
    free(e->permission);
    free(e->query);
    free(e->segbuf);
    free(e);
}

cl_router *cl_router_new(void)
{
    return calloc(1, sizeof(cl_router));
}

void cl_router_free(cl_router *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        entry_free(r->routes[i]);
    }
    free(r->routes);
    free(r);
}

static int is_known_method(const char *method)
{
    for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
        if (strcmp(method, known_methods[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* RFC 3986 pchar without percent-encodings: patterns are plain text, never encoded. */
static int is_literal_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static int is_name_char(char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        return 1;
    }
    return !first && c >= '0' && c <= '9';
}

/* Checks one segment of a pattern (s[0..len), already cut out). Returns 1 for a param. */
static int check_segment(const char *s, size_t len, const char **why)
{
    if (len == 0) {
        *why = "has an empty segment";
        return -1;
    }
    if (s[0] == '{') {
        if (len < 3 || s[len - 1] != '}') {
            *why = "has a parameter that is not a whole {name} segment";
            return -1;
        }
        if (len - 2 > ROUTER_PARAM_NAME_MAX) {
            *why = "has a parameter name that is too long";
            return -1;
        }
        for (size_t i = 1; i + 1 < len; i++) {
            if (!is_name_char(s[i], i == 1)) {
                *why = "has a parameter name that is not an identifier";
                return -1;
            }
        }
        return 1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_literal_char(s[i])) {
            *why = "has a character that is not allowed in a literal segment";
            return -1;
        }
    }
    return 0;
}

/* Cuts e->pattern into segments. Returns NULL on success, else why it is malformed. */
static const char *parse_pattern(route_entry *e)
{
    const char *why = NULL;
    char *p;
    size_t len = strlen(e->pattern);

    if (len == 0 || e->pattern[0] != '/') {
        return "does not start with '/'";
    }
    if (len > ROUTER_PATTERN_MAX) {
        return "is too long";
    }
    e->segbuf = strdup(e->pattern);
    if (e->segbuf == NULL) {
        return "cannot be copied (out of memory)";
    }
    if (len == 1) {
        return NULL; /* "/" has no segments */
    }
    p = e->segbuf + 1;
    for (;;) {
        char *slash = strchr(p, '/');
        size_t seglen = slash != NULL ? (size_t)(slash - p) : strlen(p);
        int kind;

        if (e->nseg == ROUTER_SEGMENTS_MAX) {
            return "has too many segments";
        }
        kind = check_segment(p, seglen, &why);
        if (kind < 0) {
            return why;
        }
        if (kind == 1) {
            if (e->nparams == CL_ROUTE_MAX_PARAMS) {
                return "has too many parameters";
            }
            /* Keep the name only: drop the braces. */
            p[seglen - 1] = '\0';
            p++;
            seglen -= 2;
            for (size_t i = 0; i < e->nseg; i++) {
                if (e->is_param[i] && strcmp(e->seg[i], p) == 0) {
                    return "repeats a parameter name";
                }
            }
            e->nparams++;
        }
        e->seg[e->nseg] = p;
        e->seglen[e->nseg] = seglen;
        e->is_param[e->nseg] = (unsigned char)kind;
        e->nseg++;
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        p = slash + 1;
    }
    return NULL;
}

/*
 * Checks a query declaration: space-separated identifiers, none repeated, at most
 * CL_ROUTE_MAX_QUERY. Returns NULL when it is well-formed, else why it is not.
 */
static const char *check_query_decl(const char *decl)
{
    const char *names[CL_ROUTE_MAX_QUERY];
    size_t lens[CL_ROUTE_MAX_QUERY];
    size_t n = 0;
    const char *p = decl;

    while (*p != '\0') {
        size_t len = 0;

        if (*p == ' ') {
            p++;
            continue;
        }
        while (p[len] != '\0' && p[len] != ' ') {
            if (!is_name_char(p[len], len == 0)) {
                return "declares a query parameter name that is not an identifier";
            }
            len++;
        }
        if (len > CL_ROUTE_QUERY_NAME_MAX) {
            return "declares a query parameter name that is too long";
        }
        if (n == CL_ROUTE_MAX_QUERY) {
            return "declares too many query parameters";
        }
        for (size_t i = 0; i < n; i++) {
            if (lens[i] == len && memcmp(names[i], p, len) == 0) {
                return "declares a query parameter twice";
            }
        }
        names[n] = p;
        lens[n] = len;
        n++;
        p += len;
    }
    return NULL;
}

/* Two routes with one method whose shapes coincide would make matching ambiguous. */
static int same_shape(const route_entry *a, const route_entry *b)
{
    if (a->nseg != b->nseg) {
        return 0;
    }
    for (size_t i = 0; i < a->nseg; i++) {
        if (a->is_param[i] != b->is_param[i]) {
            return 0;
        }
        if (!a->is_param[i] && strcmp(a->seg[i], b->seg[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static int router_grow(cl_router *r)
{
    size_t cap = r->cap == 0 ? 16 : r->cap * 2;
    route_entry **routes = realloc(r->routes, cap * sizeof(*routes));

    if (routes == NULL) {
        return -1;
    }
    r->routes = routes;
    r->cap = cap;
    return 0;
}

cl_status cl_router_add(cl_router *r, const cl_route *route, cl_error *err)
{
    route_entry *e = NULL;
    const char *why;
    const char *method;
    const char *pattern;
    cl_status st = CL_OK;

    if (r == NULL || route == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "no router or no route");
    }
    method = route->method != NULL ? route->method : "(null)";
    pattern = route->pattern != NULL ? route->pattern : "(null)";
    if (route->method == NULL || !is_known_method(route->method)) {
        st =
            cl_error_set(err, CL_INVALID, "method", "route %s %s: unknown method", method, pattern);
        goto out;
    }
    if (route->pattern == NULL) {
        st = cl_error_set(err, CL_INVALID, "pattern", "route %s: no pattern", method);
        goto out;
    }
    if (route->permission == NULL || route->permission[0] == '\0') {
        st = cl_error_set(err, CL_INVALID, "permission",
                          "route %s %s: no permission (use CL_PERM_PUBLIC for open routes)", method,
                          pattern);
        goto out;
    }
    if (route->handler == NULL) {
        st = cl_error_set(err, CL_INVALID, "handler", "route %s %s: no handler", method, pattern);
        goto out;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (route->query != NULL) {
        why = check_query_decl(route->query);
        if (why != NULL) {
            st = cl_error_set(err, CL_INVALID, "query", "route %s %s: the route %s", method,
                              pattern, why);
            goto out;
        }
    }
    e->method = strdup(route->method);
    e->pattern = strdup(route->pattern);
    e->permission = strdup(route->permission);
    e->query = route->query != NULL ? strdup(route->query) : NULL;
    if (e->method == NULL || e->pattern == NULL || e->permission == NULL ||
        (route->query != NULL && e->query == NULL)) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    why = parse_pattern(e);
    if (why != NULL) {
        st = cl_error_set(err, CL_INVALID, "pattern", "route %s %s: the pattern %s", method,
                          pattern, why);
        goto out;
    }
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->routes[i]->method, e->method) == 0 && same_shape(r->routes[i], e)) {
            st = cl_error_set(err, CL_INVALID, "pattern", "route %s %s: already added (as %s)",
                              method, pattern, r->routes[i]->pattern);
            goto out;
        }
    }
    if (r->count == r->cap && router_grow(r) != 0) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    e->route = *route;
    e->route.method = e->method;
    e->route.pattern = e->pattern;
    e->route.permission = e->permission;
    e->route.query = e->query;
    r->routes[r->count++] = e;
    e = NULL;
out:
    entry_free(e);
    return st;
}

size_t cl_router_count(const cl_router *r)
{
    return r != NULL ? r->count : 0;
}

const cl_route *cl_router_at(const cl_router *r, size_t i)
{
    if (r == NULL || i >= r->count) {
        return NULL;
    }
    return &r->routes[i]->route;
}

typedef struct path_segs {
    size_t n;
    const char *seg[ROUTER_SEGMENTS_MAX];
    size_t len[ROUTER_SEGMENTS_MAX];
} path_segs;

/* Splits a request path; -1 when it is not absolute or has more segments than any route. */
static int split_path(const char *path, path_segs *ps)
{
    const char *p;

    ps->n = 0;
    if (path == NULL || path[0] != '/') {
        return -1;
    }
    if (path[1] == '\0') {
        return 0;
    }
    p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);

        if (ps->n == ROUTER_SEGMENTS_MAX) {
            return -1;
        }
        ps->seg[ps->n] = p;
        ps->len[ps->n] = len;
        ps->n++;
        if (slash == NULL) {
            return 0;
        }
        p = slash + 1;
    }
}

static int entry_matches(const route_entry *e, const path_segs *ps)
{
    char scratch[sizeof(((cl_route_match *)0)->values[0])];

    if (e->nseg != ps->n) {
        return 0;
    }
    for (size_t i = 0; i < e->nseg; i++) {
        if (e->is_param[i]) {
            /* A value must be present and decodable into the fixed match buffer. */
            if (ps->len[i] == 0 ||
                cl__http_pct_decode(ps->seg[i], ps->len[i], 0, scratch, sizeof(scratch)) < 0) {
                return 0;
            }
        } else if (e->seglen[i] != ps->len[i] || memcmp(e->seg[i], ps->seg[i], ps->len[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* /products/new beats /products/{id}: the first literal where the other has a param wins. */
static int more_specific(const route_entry *a, const route_entry *b)
{
    for (size_t i = 0; i < a->nseg; i++) {
        if (a->is_param[i] != b->is_param[i]) {
            return !a->is_param[i];
        }
    }
    return 0;
}

static void append_allow(char *allow, size_t allow_size, const char *method)
{
    size_t used;

    if (allow == NULL || allow_size == 0) {
        return;
    }
    used = strlen(allow);
    if (used > 0) {
        cl_strlcpy(allow + used, ", ", allow_size - used);
        used = strlen(allow);
    }
    cl_strlcpy(allow + used, method, allow_size - used);
}

cl_status cl_router_add_all(cl_router *r, const cl_route *routes, size_t n, cl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        cl_status st = cl_router_add(r, &routes[i], err);
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

cl_route_result cl_router_match(const cl_router *r, const char *method, const char *path,
                                cl_route_match *m, char *allow, size_t allow_size)
{
    path_segs ps = {0};
    const route_entry *best = NULL;
    const char *others[ROUTER_METHODS_MAX];
    size_t nothers = 0;
    const char *want = method;

    if (allow != NULL && allow_size > 0) {
        allow[0] = '\0';
    }
    if (r == NULL || method == NULL || split_path(path, &ps) != 0) {
        return CL_ROUTE_NOT_FOUND;
    }
    /* HEAD is GET without the body (RFC 9110 9.3.2): the server drops the body it sends. */
    if (strcmp(method, "HEAD") == 0) {
        want = "GET";
    }
    for (size_t i = 0; i < r->count; i++) {
        const route_entry *e = r->routes[i];

        if (!entry_matches(e, &ps)) {
            continue;
        }
        if (strcmp(e->method, want) == 0) {
            if (best == NULL || more_specific(e, best)) {
                best = e;
            }
            continue;
        }
        int seen = 0;
        for (size_t k = 0; k < nothers; k++) {
            if (strcmp(others[k], e->method) == 0) {
                seen = 1;
            }
        }
        if (!seen && nothers < ROUTER_METHODS_MAX) {
            others[nothers++] = e->method;
        }
    }
    if (best == NULL) {
        if (nothers == 0) {
            return CL_ROUTE_NOT_FOUND;
        }
        for (size_t k = 0; k < nothers; k++) {
            append_allow(allow, allow_size, others[k]);
            if (strcmp(others[k], "GET") == 0) {
                append_allow(allow, allow_size, "HEAD");
            }
        }
        return CL_ROUTE_BAD_METHOD;
    }
    if (m != NULL) {
        memset(m, 0, sizeof(*m));
        m->route = &best->route;
        for (size_t i = 0; i < best->nseg; i++) {
            if (!best->is_param[i]) {
                continue;
            }
            m->names[m->nparams] = best->seg[i];
            /* Cannot fail: entry_matches decoded the same bytes into a buffer this size. */
            cl__http_pct_decode(ps.seg[i], ps.len[i], 0, m->values[m->nparams],
                                sizeof(m->values[m->nparams]));
            m->nparams++;
        }
    }
    return CL_ROUTE_FOUND;
}
