/*
 * The catalog's public REST API. Handlers call only through the operations table they
 * are given, so they work unchanged whether the catalog is local or extracted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* Parses a positive decimal id; -1 when s is not one. */
static int64_t parse_id(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0) {
        return -1;
    }
    return (int64_t)v;
}

static void set_etag(cl_http_req *req, int64_t version)
{
    char etag[32];

    snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", version);
    cl_http_set_header(req, "ETag", etag);
}

/* Sends a product with its ETag (the version). */
static void reply_product(cl_http_req *req, int status, const catalog_product *p)
{
    set_etag(req, p->version);
    cl_http_reply_json(req, status, cl_schema_to_json(&catalog_product_type, p));
}

static int64_t path_id(cl_http_req *req)
{
    int64_t id = parse_id(cl_http_param(req, "id"));

    if (id < 0) {
        cl_error err;
        cl_error_set(&err, CL_INVALID, "id", "product id must be a positive integer");
        cl_http_reply_error(req, &err);
    }
    return id;
}

static void list_products(cl_http_req *req, void *arg)
{
    const catalog_ops *ops = arg;
    catalog_product_query q = {0};
    catalog_product_page page = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (cl_http_query_dup(req, "category", 1023, &q.category) != 0 ||
        cl_http_query_dup(req, "tag", 1023, &q.tag) != 0 ||
        cl_http_query_dup(req, "name_prefix", 1023, &q.name_prefix) != 0 ||
        cl_http_query_dup(req, "cursor", 1023, &q.cursor) != 0) {
        goto out;
    }
    if (cl_http_query_int(req, "limit", 1, CATALOG_MAX_LIMIT, &q.limit) < 0) {
        goto out;
    }
    if (ops->list_products(ctx, &q, &page) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    cl_http_reply_json(req, 200, cl_schema_to_json(&catalog_product_page_type, &page));
    cl_schema_free(&catalog_product_page_type, &page);
out:
    cl_schema_free(&catalog_product_query_type, &q);
}

static void get_product(cl_http_req *req, void *arg)
{
    const catalog_ops *ops = arg;
    catalog_product_ref ref = {0};
    catalog_product p = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const char *inm;
    char etag[32];

    ref.id = path_id(req);
    if (ref.id < 0) {
        return;
    }
    if (ops->get_product(ctx, &ref, &p) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    /* A client holding the current version gets 304 and no body. */
    inm = cl_http_header(req, "If-None-Match");
    snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", p.version);
    if (inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
        set_etag(req, p.version);
        cl_http_reply_empty(req, 304);
    } else {
        reply_product(req, 200, &p);
    }
    cl_schema_free(&catalog_product_type, &p);
}

static void create_product(cl_http_req *req, void *arg)
{
    const catalog_ops *ops = arg;
    catalog_product_input in = {0};
    catalog_product p = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    char location[64];

    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&catalog_product_input_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
            CL_OK ||
        ops->create_product(ctx, &in, &p) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    snprintf(location, sizeof(location), "/api/v1/products/%" PRId64, p.id);
    cl_http_set_header(req, "Location", location);
    reply_product(req, 201, &p);
out:
    cl_schema_free(&catalog_product_type, &p);
    cl_schema_free(&catalog_product_input_type, &in);
    json_decref(body);
}

/*
 * Parses If-Match: "*" (any version) or one entity tag "N" as sent in ETag.
 * Returns 1 with *version set, 0 for "*", -1 when malformed.
 */
static int parse_if_match(const char *s, int64_t *version)
{
    char digits[24];
    size_t n;

    if (strcmp(s, "*") == 0) {
        return 0;
    }
    if (strncmp(s, "W/", 2) == 0) {
        return -1; /* weak tags never match for If-Match (RFC 9110 13.1.1) */
    }
    n = strlen(s);
    if (n < 3 || n > sizeof(digits) || s[0] != '"' || s[n - 1] != '"') {
        return -1;
    }
    memcpy(digits, s + 1, n - 2);
    digits[n - 2] = '\0';
    *version = parse_id(digits);
    return *version > 0 ? 1 : -1;
}

static void update_product(cl_http_req *req, void *arg)
{
    const catalog_ops *ops = arg;
    catalog_product_update up = {0};
    catalog_product p = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const char *if_match = cl_http_header(req, "If-Match");
    json_t *body = NULL;
    int m;

    up.id = path_id(req);
    if (up.id < 0) {
        return;
    }
    /* Lost updates are refused: a client must say which version it changes. */
    if (if_match == NULL) {
        cl_http_reply_problem(req, 428, "precondition-required", "Precondition Required",
                              "send If-Match with the product's ETag (or *)", NULL);
        return;
    }
    m = parse_if_match(if_match, &up.expected_version.v);
    if (m < 0) {
        cl_error err;
        cl_error_set(&err, CL_INVALID, "If-Match", "If-Match must be an ETag like \"3\" or *");
        cl_http_reply_error(req, &err);
        return;
    }
    up.expected_version.set = m == 1;
    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&catalog_product_changes_type, body, CL_DECODE_STRICT, &up.changes,
                            &ctx->err) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    if (ops->update_product(ctx, &up, &p) != CL_OK) {
        if (ctx->err.status == CL_CONFLICT && up.expected_version.set) {
            cl_http_reply_problem(req, 412, "precondition-failed", "Precondition Failed",
                                  ctx->err.message, NULL);
        } else {
            cl_http_reply_error(req, &ctx->err);
        }
        goto out;
    }
    reply_product(req, 200, &p);
out:
    cl_schema_free(&catalog_product_type, &p);
    cl_schema_free(&catalog_product_update_type, &up);
    json_decref(body);
}

static void list_categories(cl_http_req *req, void *arg)
{
    const catalog_ops *ops = arg;
    cl_empty none = {0};
    catalog_category_list list = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (ops->list_categories(ctx, &none, &list) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_json(req, 200, cl_schema_to_json(&catalog_category_list_type, &list));
    cl_schema_free(&catalog_category_list_type, &list);
}

cl_status catalog_rest_routes(cl_router *r, const void *ops, cl_error *err)
{
    void *arg = (void *)ops; /* handlers only read through it */
    const cl_route routes[] = {
        {"GET", "/api/v1/products", "catalog:read", list_products, arg,
         "category tag name_prefix cursor limit"},
        {"POST", "/api/v1/products", "catalog:write", create_product, arg, NULL},
        {"GET", "/api/v1/products/{id}", "catalog:read", get_product, arg, NULL},
        {"PATCH", "/api/v1/products/{id}", "catalog:write", update_product, arg, NULL},
        {"GET", "/api/v1/categories", "catalog:read", list_categories, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
