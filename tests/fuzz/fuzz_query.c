/*
 * Fuzz target: the query-string check of ADR 0015 and the handlers' reads of it.
 *
 * Input: byte 0 picks a query declaration (every one the modules' routes declare, none,
 * and the most a route may declare); the rest is the raw query string. What the check
 * accepts, cl_http_query reads back for every declared name: the decoded length when it
 * fits, -2 when it does not, and never a byte past the buffer it was given.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_internal.h"

static const char *query_decls[64];
static size_t query_ndecls;
static cl_router *query_router;
static cl_handle query_handle;

static void query_init(void)
{
    cl_error err;

    query_decls[query_ndecls++] = NULL;
    query_decls[query_ndecls++] = "";
    query_decls[query_ndecls++] = "a b c d e f g h i j k l m n o p";
    query_router = cl_router_new();
    FUZZ_CHECK(query_router != NULL);
    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        FUZZ_CHECK(fuzz_modules[m]->routes(query_router, &query_handle, &err) == CL_OK);
    }
    for (size_t i = 0; i < cl_router_count(query_router); i++) {
        const char *decl = cl_router_at(query_router, i)->query;

        if (decl != NULL && query_ndecls < sizeof(query_decls) / sizeof(query_decls[0])) {
            query_decls[query_ndecls++] = decl;
        }
    }
}

/* Reads name into a buffer of exactly size bytes: what fits, or -2; nothing past it. */
static void query_read_into(const cl_http_req *req, const char *name, int full, const char *buf,
                            size_t size)
{
    char *small;
    int n;

    if (size == 0) {
        return;
    }
    small = malloc(size);
    FUZZ_CHECK(small != NULL);
    n = cl_http_query(req, name, small, size);
    FUZZ_CHECK(size > (size_t)full ? n == full : n == -2);
    FUZZ_CHECK(n < 0 || memcmp(small, buf, (size_t)n + 1) == 0);
    free(small);
}

/* Reads every declared parameter back as a handler would, into buffers of several sizes. */
static void query_read_back(cl_http_req *req)
{
    for (size_t i = 0; i < req->nquery; i++) {
        char name[CL_ROUTE_QUERY_NAME_MAX + 1];
        char buf[1024];
        size_t len = req->query_values[i].name_len;
        int full;

        FUZZ_CHECK(len < sizeof(name));
        memcpy(name, req->query_values[i].name, len);
        name[len] = '\0';
        full = cl_http_query(req, name, buf, sizeof(buf));
        if (req->query_values[i].raw == NULL) {
            FUZZ_CHECK(full == -1);
            continue;
        }
        FUZZ_CHECK(full >= 0 || full == -2);
        FUZZ_CHECK(full < 0 || (size_t)full == strlen(buf));
        /* The sizes around the boundary: every other size behaves like one of them. */
        for (size_t k = 0; full >= 0 && k < 5; k++) {
            const size_t sizes[] = {1, 2, (size_t)full, (size_t)full + 1, (size_t)full + 2};

            query_read_into(req, name, full, buf, sizes[k]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_http_req req;
    char *query;
    cl_error err = {0};

    if (query_router == NULL) {
        query_init();
    }
    if (size < 1) {
        return 0;
    }
    query = fuzz_cstr(data + 1, size - 1);
    memset(&req, 0, sizeof(req));
    if (cl__http_parse_query(query_decls[data[0] % query_ndecls], query, req.query_values,
                             &req.nquery, &err) == CL_OK) {
        FUZZ_CHECK(req.nquery <= CL_ROUTE_MAX_QUERY);
        query_read_back(&req);
    } else {
        /* A refusal names the parameter: the client must learn which one is wrong. */
        FUZZ_CHECK(err.status == CL_INVALID && err.field[0] != '\0');
    }
    free(query);
    return 0;
}
