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
#include "cleave/cache.h"

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

/*
 * How long any cache may serve a catalog read without asking again (ADR 0040): an edit
 * shows within this many seconds, and a burst of reads of one page costs one.
 */
#define CATALOG_MAX_AGE_S               10
/* The number of a product's fields, counted from its one declaration. */
#define COUNT_FIELD(T, kind, name, sub) +1
enum { PRODUCT_NFIELDS = 0 CATALOG_PRODUCT(COUNT_FIELD, _) };
#undef COUNT_FIELD

/* The longest fields= value: every field of a product, named once, fits many times over. */
#define CATALOG_FIELDS_MAX 512

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
    cl_http_reply_type(req, status, &catalog_product_type, p);
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

/* The index in catalog_product_type of the field named s[0..n), -1 when none has it. */
static int product_field(const char *s, size_t n)
{
    for (size_t i = 0; i < catalog_product_type.nfields; i++) {
        const char *name = catalog_product_type.fields[i].name;
        if (strlen(name) == n && strncmp(name, s, n) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * Reads fields= (a sparse fieldset: top-level product fields, comma-separated) into
 * keep[catalog_product_type.nfields], one flag per field in declaration order. id is
 * always kept, so that a partial product still says which it is. Returns 0 when absent,
 * 1 with the flags set, -1 after replying 400 naming the parameter and the field it does
 * not know.
 */
static int read_fields(cl_http_req *req, bool *keep)
{
    char buf[CATALOG_FIELDS_MAX + 1];
    const char *s = buf;
    cl_error err;
    int n = cl_http_query(req, "fields", buf, sizeof(buf));

    if (n == -1) {
        return 0;
    }
    if (n == -2) {
        cl_error_set(&err, CL_INVALID, "fields", "fields may be at most %d bytes",
                     CATALOG_FIELDS_MAX);
        goto refuse;
    }
    for (size_t i = 0; i < catalog_product_type.nfields; i++) {
        keep[i] = strcmp(catalog_product_type.fields[i].name, "id") == 0;
    }
    for (;;) {
        size_t len = strcspn(s, ",");
        int field = product_field(s, len);

        if (len == 0) {
            cl_error_set(&err, CL_INVALID, "fields",
                         "fields must be product field names separated by commas");
            goto refuse;
        }
        if (field < 0) {
            cl_error_set(&err, CL_INVALID, "fields", "a product has no field \"%.*s\"",
                         (int)(len < 64 ? len : 64), s);
            goto refuse;
        }
        keep[field] = true;
        if (s[len] == '\0') {
            break;
        }
        s += len + 1;
    }
    return 1;
refuse:
    cl_http_reply_error(req, &err);
    return -1;
}

/* Takes the fields keep does not flag out of the product object obj (NULL: no-op). */
static void keep_fields(json_t *obj, const bool *keep)
{
    for (size_t i = 0; obj != NULL && i < catalog_product_type.nfields; i++) {
        if (!keep[i]) {
            json_object_del(obj, catalog_product_type.fields[i].name);
        }
    }
}

static void list_products(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    catalog_product_query q = {0};
    catalog_product_page page = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    bool keep[PRODUCT_NFIELDS] = {false};
    json_t *body;
    int sparse;

    if (cl_http_query_dup(req, "category", 1023, &q.category) != 0 ||
        cl_http_query_dup(req, "tag", 1023, &q.tag) != 0 ||
        cl_http_query_dup(req, "name_prefix", 1023, &q.name_prefix) != 0 ||
        cl_http_query_dup(req, "cursor", 1023, &q.cursor) != 0) {
        goto out;
    }
    if (cl_http_query_int(req, "limit", 1, CATALOG_MAX_LIMIT, &q.limit) < 0) {
        goto out;
    }
    sparse = read_fields(req, keep);
    if (sparse < 0) {
        goto out;
    }
    if (catalog_list_products(module, ctx, &q, &page) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    body = cl_schema_to_json(&catalog_product_page_type, &page);
    if (sparse) {
        size_t i;
        json_t *item;
        json_array_foreach (json_object_get(body, "items"), i, item) {
            keep_fields(item, keep);
        }
    }
    /* The same page for every caller: the server hashes it into the ETag. */
    cl_http_cache_public(req, CATALOG_MAX_AGE_S);
    cl_http_reply_json(req, 200, body);
    cl_schema_free(&catalog_product_page_type, &page);
out:
    cl_schema_free(&catalog_product_query_type, &q);
}

/*
 * Sends a product the read cache answered with (ctx->accept_cached_json): its bytes as the
 * cache keeps them, which are the typed product's encoding (cleave/status.h), and its
 * version as the ETag. Takes answer.
 */
static void reply_cached_product(cl_http_req *req, cl_cache_json *answer)
{
    size_t len;
    const char *text = cl_cache_json_text(answer, &len);
    /* As decoding would: a product without a version (none has one) is version 0. */
    json_int_t version =
        json_integer_value(json_object_get(cl_cache_json_value(answer), "version"));

    set_etag(req, (int64_t)version);
    cl_http_cache_public(req, CATALOG_MAX_AGE_S);
    cl_http_reply_bytes(req, 200, "application/json", text, len);
    cl_cache_json_release(answer);
}

static void get_product(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    catalog_product_ref ref = {0};
    catalog_product p = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    bool keep[PRODUCT_NFIELDS] = {false};
    json_t *body;
    int sparse;
    cl_status st;

    ref.id = path_id(req);
    if (ref.id < 0) {
        return;
    }
    sparse = read_fields(req, keep);
    if (sparse < 0) {
        return;
    }
    /* A whole product goes out as the cache keeps it; a sparse one is made from the fields. */
    ctx->accept_cached_json = !sparse;
    st = catalog_get_product(module, ctx, &ref, &p);
    ctx->accept_cached_json = 0;
    if (st != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    if (ctx->cached_json != NULL) {
        reply_cached_product(req, ctx->cached_json);
        ctx->cached_json = NULL;
        return;
    }
    /*
     * The version is the ETag of every representation of the product, a sparse one too
     * (fields= makes it another URI): the server answers a matching If-None-Match with
     * 304, and the same tag serves If-Match on PATCH.
     */
    body = cl_schema_to_json(&catalog_product_type, &p);
    if (sparse) {
        keep_fields(body, keep);
    }
    set_etag(req, p.version);
    cl_http_cache_public(req, CATALOG_MAX_AGE_S);
    cl_http_reply_json(req, 200, body);
    cl_schema_free(&catalog_product_type, &p);
}

static void create_product(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
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
        catalog_create_product(module, ctx, &in, &p) != CL_OK) {
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
 * Parses If-Match: "*" (any version) or one entity tag "N" (or "N-gzip") as sent in ETag.
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
    if (n < 3 || n > sizeof(digits) + sizeof(CL_HTTP_GZIP_ETAG_SUFFIX) || s[0] != '"' ||
        s[n - 1] != '"') {
        return -1;
    }
    n -= 2; /* the quotes */
    /* A gzipped answer carried the version's tag with the coding's suffix (ADR 0040). */
    if (n > strlen(CL_HTTP_GZIP_ETAG_SUFFIX) &&
        strncmp(s + 1 + n - strlen(CL_HTTP_GZIP_ETAG_SUFFIX), CL_HTTP_GZIP_ETAG_SUFFIX,
                strlen(CL_HTTP_GZIP_ETAG_SUFFIX)) == 0) {
        n -= strlen(CL_HTTP_GZIP_ETAG_SUFFIX);
    }
    if (n >= sizeof(digits)) {
        return -1;
    }
    memcpy(digits, s + 1, n);
    digits[n] = '\0';
    *version = parse_id(digits);
    return *version > 0 ? 1 : -1;
}

/* What a JSON merge patch removes: null members, taken out of the body before decoding. */
typedef struct patch_removals {
    bool description; /* removed */
    bool tags;        /* removed: the product keeps no tags */
} patch_removals;

/*
 * A JSON merge patch (RFC 7396) says "remove" with null, which the operation says with
 * changes.clear: description null is removed, tags null leaves no tags, and a required
 * field (name, price, category) cannot be removed. The null members are taken out of
 * body, so that decoding sees only the values to set. "clear" is the operation's own
 * spelling, not the patch's, and is refused like any unknown member.
 */
static cl_status take_merge_patch_nulls(json_t *body, patch_removals *rm, cl_error *err)
{
    const char *name;
    json_t *v, *tmp;

    memset(rm, 0, sizeof(*rm));
    if (!json_is_object(body)) {
        return CL_OK; /* decoding names the problem */
    }
    if (json_object_get(body, "clear") != NULL) {
        return cl_error_set(err, CL_INVALID, "clear", "clear is not a member of a product");
    }
    json_object_foreach_safe(body, tmp, name, v)
    {
        if (!json_is_null(v)) {
            continue;
        }
        if (strcmp(name, "description") == 0) {
            rm->description = true;
        } else if (strcmp(name, "tags") == 0) {
            rm->tags = true;
        } else {
            return cl_error_set(err, CL_INVALID, name, "%s is required and cannot be removed",
                                name);
        }
        json_object_del(body, name);
    }
    return CL_OK;
}

/* Puts the removals into the decoded changes; CL_INTERNAL when out of memory. */
static cl_status apply_removals(const patch_removals *rm, catalog_product_changes *ch,
                                cl_error *err)
{
    if (rm->tags) {
        ch->tags.set = true;
    }
    if (!rm->description) {
        return CL_OK;
    }
    ch->clear.v = calloc(2, sizeof(char *));
    if (ch->clear.v != NULL) {
        ch->clear.v[0] = cl_strdup("description");
    }
    if (ch->clear.v == NULL || ch->clear.v[0] == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    ch->clear.n = 1;
    ch->clear.set = true;
    return CL_OK;
}

static void update_product(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    catalog_product_update up = {0};
    catalog_product p = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const char *if_match = cl_http_header(req, "If-Match");
    json_t *body = NULL;
    patch_removals removals;
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
    if (take_merge_patch_nulls(body, &removals, &ctx->err) != CL_OK ||
        cl_schema_from_json(&catalog_product_changes_type, body, CL_DECODE_STRICT, &up.changes,
                            &ctx->err) != CL_OK ||
        apply_removals(&removals, &up.changes, &ctx->err) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    if (catalog_update_product(module, ctx, &up, &p) != CL_OK) {
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
    const cl_handle *module = arg;
    cl_empty none = {0};
    catalog_category_list list = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (catalog_list_categories(module, ctx, &none, &list) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_cache_public(req, CATALOG_MAX_AGE_S);
    cl_http_reply_type(req, 200, &catalog_category_list_type, &list);
    cl_schema_free(&catalog_category_list_type, &list);
}

cl_status catalog_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"GET", "/api/v1/products", "catalog:read", list_products, arg,
         "category tag name_prefix cursor limit fields"},
        {"POST", "/api/v1/products", "catalog:write", create_product, arg, NULL},
        {"GET", "/api/v1/products/{id}", "catalog:read", get_product, arg, "fields"},
        {"PATCH", "/api/v1/products/{id}", "catalog:write", update_product, arg, NULL},
        {"GET", "/api/v1/categories", "catalog:read", list_categories, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
