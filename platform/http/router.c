/*
 * The router: method + path patterns with literal and {name} segments.
 *
 * Routes are kept in a trie of segments (ADR 0041): a node's literal children sorted by
 * their text, at most one parameter child (any name), and at each node the routes whose
 * pattern ends there, one per method. A lookup walks the request's segments, trying the
 * literal child before the parameter child, so it touches only the nodes that share a
 * prefix with the path, not every route: with a hundred routes under /api/v1 the scan it
 * replaced compared each of them. The router is written once at start-up and only read
 * while the server runs, so concurrent matches from civetweb's workers need no lock.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define ROUTER_PATTERN_MAX    512
#define ROUTER_SEGMENTS_MAX   32
#define ROUTER_PARAM_NAME_MAX 63
#define ROUTER_METHODS_MAX    8
#define ROUTER_NMETHODS       (sizeof(known_methods) / sizeof(known_methods[0]))

typedef struct route_entry {
    cl_route route;   /* its strings point into method, pattern and permission below */
    size_t index;     /* its place in the order of adding (cl_router_at) */
    size_t method_id; /* its method's index in known_methods */
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

static const char *const known_methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};

typedef struct route_node {
    const char *seg; /* a literal child's text (borrowed from the first route through it) */
    size_t seglen;
    struct route_node **lit; /* literal children, ordered by seglen, then bytes */
    size_t nlit;
    size_t litcap;
    struct route_node *param; /* the {name} child */
    /* The routes that end here, by method: two would have the same shape and method. */
    route_entry *here[ROUTER_NMETHODS];
} route_node;

struct cl_router {
    /* Pointers, so that the cl_route handed out stays put when the array grows. */
    route_entry **routes;
    size_t count;
    size_t cap;
    route_node root; /* the pattern "/" ends at the root */
};

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
            hi = cl_hex_value(src[i + 1]);
            lo = cl_hex_value(src[i + 2]);
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

/* Frees what node owns (its children), not node itself. */
static void node_clear(route_node *node)
{
    for (size_t i = 0; i < node->nlit; i++) {
        node_clear(node->lit[i]);
        free(node->lit[i]);
    }
    free(node->lit);
    if (node->param != NULL) {
        node_clear(node->param);
        free(node->param);
    }
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
    node_clear(&r->root);
    free(r);
}

/* The method's index in known_methods, or -1 for one the router does not know. */
static int method_id(const char *method)
{
    for (size_t i = 0; i < ROUTER_NMETHODS; i++) {
        if (strcmp(method, known_methods[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
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

/* Sorts literal segments: by length, then bytes (any total order would do). */
static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) {
        return alen < blen ? -1 : 1;
    }
    return memcmp(a, b, alen);
}

/* The literal child of node for seg[0..len), or where it would go (*at) when there is none. */
static route_node *find_literal(const route_node *node, const char *seg, size_t len, size_t *at)
{
    size_t lo = 0;
    size_t hi = node->nlit;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(node->lit[mid]->seg, node->lit[mid]->seglen, seg, len);

        if (c == 0) {
            return node->lit[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (at != NULL) {
        *at = lo;
    }
    return NULL;
}

/* The child of node for segment i of e, made when missing; NULL when out of memory. */
static route_node *node_child(route_node *node, const route_entry *e, size_t i)
{
    route_node *child;
    size_t at = 0;

    if (e->is_param[i]) {
        if (node->param == NULL) {
            node->param = calloc(1, sizeof(*node->param));
        }
        return node->param;
    }
    child = find_literal(node, e->seg[i], e->seglen[i], &at);
    if (child != NULL) {
        return child;
    }
    if (node->nlit == node->litcap) {
        size_t cap = node->litcap == 0 ? 4 : node->litcap * 2;
        route_node **lit = realloc(node->lit, cap * sizeof(*lit));

        if (lit == NULL) {
            return NULL;
        }
        node->lit = lit;
        node->litcap = cap;
    }
    child = calloc(1, sizeof(*child));
    if (child == NULL) {
        return NULL;
    }
    child->seg = e->seg[i];
    child->seglen = e->seglen[i];
    memmove(node->lit + at + 1, node->lit + at, (node->nlit - at) * sizeof(*node->lit));
    node->lit[at] = child;
    node->nlit++;
    return child;
}

/*
 * The node where e's pattern ends, made as needed; NULL when out of memory. Routes of one
 * method and one shape (the same literals, parameters at the same places, whatever their
 * names) end at the same node, which is how a duplicate is found.
 */
static route_node *node_for(cl_router *r, const route_entry *e)
{
    route_node *node = &r->root;

    for (size_t i = 0; i < e->nseg && node != NULL; i++) {
        node = node_child(node, e, i);
    }
    return node;
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
    route_node *node;
    cl_status st = CL_OK;

    if (r == NULL || route == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "no router or no route");
    }
    method = route->method != NULL ? route->method : "(null)";
    pattern = route->pattern != NULL ? route->pattern : "(null)";
    if (route->method == NULL || method_id(route->method) < 0) {
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
    e->method_id = (size_t)method_id(e->method);
    node = node_for(r, e);
    if (node == NULL || (r->count == r->cap && router_grow(r) != 0)) {
        /* Nodes made on the way stay: empty ones match nothing. */
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (node->here[e->method_id] != NULL) {
        st = cl_error_set(err, CL_INVALID, "pattern", "route %s %s: already added (as %s)", method,
                          pattern, node->here[e->method_id]->pattern);
        goto out;
    }
    e->index = r->count;
    node->here[e->method_id] = e;
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

/* A parameter's value must be present and decodable into the fixed match buffer. */
static int param_value_ok(const char *seg, size_t len)
{
    char scratch[sizeof(((cl_route_match *)0)->values[0])];

    return len > 0 && cl__http_pct_decode(seg, len, 0, scratch, sizeof(scratch)) >= 0;
}

/* The method to look for: HEAD is GET without the body (RFC 9110 9.3.2). */
static const char *wanted_method(const char *method)
{
    return strcmp(method, "HEAD") == 0 ? "GET" : method;
}

/* The Allow list of a 405: the matching routes' methods, ordered by their first route. */
static void fill_allow(char *allow, size_t allow_size, const size_t first[ROUTER_NMETHODS])
{
    size_t done[ROUTER_NMETHODS] = {0};

    for (;;) {
        size_t pick = ROUTER_NMETHODS;

        for (size_t k = 0; k < ROUTER_NMETHODS; k++) {
            if (!done[k] && first[k] != SIZE_MAX &&
                (pick == ROUTER_NMETHODS || first[k] < first[pick])) {
                pick = k;
            }
        }
        if (pick == ROUTER_NMETHODS) {
            return;
        }
        done[pick] = 1;
        append_allow(allow, allow_size, known_methods[pick]);
        if (pick == 0) {
            append_allow(allow, allow_size, "HEAD");
        }
    }
}

/* The match of a found route: its parameters' names and decoded values. */
static void fill_match(const route_entry *best, const path_segs *ps, cl_route_match *m)
{
    if (m == NULL) {
        return;
    }
    /* Not a memset of the whole: the values are 2 KiB, and each is written below or emptied. */
    m->route = &best->route;
    m->nparams = 0;
    memset(m->names, 0, sizeof(m->names));
    for (size_t i = 0; i < best->nseg; i++) {
        if (!best->is_param[i]) {
            continue;
        }
        m->names[m->nparams] = best->seg[i];
        /* Cannot fail: matching decoded the same bytes into a buffer this size. */
        cl__http_pct_decode(ps->seg[i], ps->len[i], 0, m->values[m->nparams],
                            sizeof(m->values[m->nparams]));
        m->nparams++;
    }
    for (size_t k = m->nparams; k < CL_ROUTE_MAX_PARAMS; k++) {
        m->values[k][0] = '\0';
    }
}

/* The result of a lookup from the best route (or none) and the other methods' first routes. */
static cl_route_result finish_match(const route_entry *best, const path_segs *ps,
                                    const size_t first[ROUTER_NMETHODS], cl_route_match *m,
                                    char *allow, size_t allow_size)
{
    if (best != NULL) {
        fill_match(best, ps, m);
        return CL_ROUTE_FOUND;
    }
    for (size_t k = 0; k < ROUTER_NMETHODS; k++) {
        if (first[k] != SIZE_MAX) {
            fill_allow(allow, allow_size, first);
            return CL_ROUTE_BAD_METHOD;
        }
    }
    return CL_ROUTE_NOT_FOUND;
}

typedef struct route_walk {
    const path_segs *ps;
    int want; /* the method's index in known_methods, -1 for one no route has */
    const route_entry *best;
    size_t first[ROUTER_NMETHODS]; /* per method, the least index of a matching route */
} route_walk;

/*
 * Visits the nodes that match the path from segment depth on, the literal child before the
 * parameter child: the first route of the wanted method so found is the one whose first
 * literal-versus-parameter difference from any other is a literal (/products/new beats
 * /products/{id}). Each node is visited at most once, so a lookup costs at most the trie's
 * size even on a path made to match many patterns.
 */
static void walk(const route_node *node, size_t depth, route_walk *w)
{
    const route_node *lit;

    if (depth == w->ps->n) {
        if (w->want >= 0 && node->here[w->want] != NULL) {
            w->best = node->here[w->want];
            return;
        }
        for (size_t k = 0; k < ROUTER_NMETHODS; k++) {
            if (node->here[k] != NULL && node->here[k]->index < w->first[k]) {
                w->first[k] = node->here[k]->index;
            }
        }
        return;
    }
    lit = find_literal(node, w->ps->seg[depth], w->ps->len[depth], NULL);
    if (lit != NULL) {
        walk(lit, depth + 1, w);
    }
    if (w->best == NULL && node->param != NULL &&
        param_value_ok(w->ps->seg[depth], w->ps->len[depth])) {
        walk(node->param, depth + 1, w);
    }
}

static void reset_allow(char *allow, size_t allow_size)
{
    if (allow != NULL && allow_size > 0) {
        allow[0] = '\0';
    }
}

cl_route_result cl_router_match(const cl_router *r, const char *method, const char *path,
                                cl_route_match *m, char *allow, size_t allow_size)
{
    path_segs ps = {0};
    route_walk w = {.ps = &ps};

    reset_allow(allow, allow_size);
    if (r == NULL || method == NULL || split_path(path, &ps) != 0) {
        return CL_ROUTE_NOT_FOUND;
    }
    w.want = method_id(wanted_method(method));
    for (size_t k = 0; k < ROUTER_NMETHODS; k++) {
        w.first[k] = SIZE_MAX;
    }
    walk(&r->root, 0, &w);
    return finish_match(w.best, &ps, w.first, m, allow, allow_size);
}

static int entry_matches(const route_entry *e, const path_segs *ps)
{
    if (e->nseg != ps->n) {
        return 0;
    }
    for (size_t i = 0; i < e->nseg; i++) {
        if (e->is_param[i]) {
            if (!param_value_ok(ps->seg[i], ps->len[i])) {
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

cl_route_result cl__router_match_scan(const cl_router *r, const char *method, const char *path,
                                      cl_route_match *m, char *allow, size_t allow_size)
{
    path_segs ps = {0};
    const route_entry *best = NULL;
    size_t first[ROUTER_NMETHODS];
    const char *want;

    reset_allow(allow, allow_size);
    if (r == NULL || method == NULL || split_path(path, &ps) != 0) {
        return CL_ROUTE_NOT_FOUND;
    }
    want = wanted_method(method);
    for (size_t k = 0; k < ROUTER_NMETHODS; k++) {
        first[k] = SIZE_MAX;
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
        } else if (first[e->method_id] == SIZE_MAX) {
            first[e->method_id] = i;
        }
    }
    return finish_match(best, &ps, first, m, allow, allow_size);
}
