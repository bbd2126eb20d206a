/*
 * The orders' public REST API. Handlers call only through the operations table they are
 * given, so they work unchanged whether orders are local or extracted.
 *   POST /api/v1/orders        202 Accepted + Location: the order, its saga under way
 *   GET  /api/v1/orders/{id}   status, lines, totals, saga history; with "Prefer: wait=N"
 *                              (RFC 7240) once the saga ended, or after N seconds
 *   GET  /api/v1/orders        pages of orders (?status=&cursor=&limit=)
 * A client's Idempotency-Key header (checked and put in ctx by the HTTP layer) makes a
 * retried POST return the same order.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

/* Whether o's saga ended: confirmed or rejected. */
static bool ended(const orders_order *o)
{
    return o->status != NULL &&
           (strcmp(o->status, "confirmed") == 0 || strcmp(o->status, "rejected") == 0);
}

static void reply_order(cl_http_req *req, int status, const orders_order *o)
{
    cl_http_reply_type(req, status, &orders_order_type, o);
}

/*
 * The wait preference of a Prefer header (RFC 7240: preferences separated by commas, each
 * a token, "=" and a value, then parameters after ";"; tokens are case-insensitive): its
 * seconds into *ms, 0 without one. Other preferences are not ours and are left alone, as
 * the RFC says; a wait whose value is not a number of seconds is -1.
 */
static int prefer_wait(const char *h, int64_t *ms)
{
    *ms = 0;
    while (h != NULL && *h != '\0') {
        const char *v;
        char *end;
        long long secs;

        while (*h == ' ' || *h == '\t' || *h == ',') {
            h++;
        }
        if (strncasecmp(h, "wait", 4) != 0 || strchr("= \t,;", h[4]) == NULL) {
            h = strchr(h, ',');
            continue;
        }
        v = h + 4;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (*v != '=') {
            return -1;
        }
        v++;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        v += *v == '"';
        if (!isdigit((unsigned char)*v)) {
            return -1;
        }
        secs = strtoll(v, &end, 10);
        end += *end == '"';
        while (*end == ' ' || *end == '\t') {
            end++;
        }
        if (*end != '\0' && *end != ',' && *end != ';') {
            return -1;
        }
        /* More than the longest wait is that wait (RFC 7240: the server may wait less). */
        *ms = secs > ORDERS_MAX_WAIT_MS / 1000 ? ORDERS_MAX_WAIT_MS : (int64_t)secs * 1000;
        return 0;
    }
    return 0;
}

static void place_order(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_input in = {0};
    orders_order o = {0};
    orders_order_ref ref = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    json_t *body = NULL;
    char location[96];
    int64_t placing = cl_now_ms();
    bool waits;

    if (prefer_wait(cl_http_header(req, "Prefer"), &ref.wait_ms) != 0) {
        cl_error_set(&ctx->err, CL_INVALID, "Prefer",
                     "Prefer: wait takes a number of seconds (wait=5)");
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    waits = ref.wait_ms > 0;
    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    if (cl_schema_from_json(&orders_order_input_type, body, CL_DECODE_STRICT, &in, &ctx->err) !=
        CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    /* The orders may run the saga on this thread, answering with its end (ADR 0058). */
    ctx->wait_ms = ref.wait_ms;
    if (orders_place_order(module, ctx, &in, &o) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    ctx->wait_ms = 0;
    snprintf(location, sizeof(location), "/api/v1/orders/%s", o.id);
    cl_http_set_header(req, "Location", location);
    ref.wait_ms -= cl_now_ms() - placing;
    if (ref.wait_ms > 0 && !ended(&o)) {
        orders_order later = {0};

        /* The order is placed whatever the wait gives: an error here leaves the answer 202. */
        ref.id = o.id;
        if (orders_get_order(module, ctx, &ref, &later) == CL_OK) {
            cl_schema_free(&orders_order_type, &o);
            o = later;
        } else {
            cl_schema_free(&orders_order_type, &later);
            cl_error_clear(&ctx->err);
        }
    }
    /* 201 only to a client that asked to wait: without one, 202 as always. */
    reply_order(req, waits && ended(&o) ? 201 : 202, &o);
out:
    cl_schema_free(&orders_order_type, &o);
    cl_schema_free(&orders_order_input_type, &in);
    json_decref(body);
}

static void get_order(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_ref ref = {0};
    orders_order o = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (prefer_wait(cl_http_header(req, "Prefer"), &ref.wait_ms) != 0) {
        cl_error_set(&ctx->err, CL_INVALID, "Prefer",
                     "Prefer: wait takes a number of seconds (wait=5)");
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    ref.id = (char *)cl_http_param(req, "id");
    if (orders_get_order(module, ctx, &ref, &o) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    reply_order(req, 200, &o);
    cl_schema_free(&orders_order_type, &o);
}

static void list_orders(cl_http_req *req, void *arg)
{
    const cl_handle *module = arg;
    orders_order_query q = {0};
    orders_order_page page = {0};
    cl_ctx *ctx = cl_http_ctx(req);

    if (cl_http_query_dup(req, "status", 127, &q.status) != 0 ||
        cl_http_query_dup(req, "cursor", 127, &q.cursor) != 0) {
        goto out;
    }
    if (cl_http_query_int(req, "limit", 1, ORDERS_MAX_LIMIT, &q.limit) < 0) {
        goto out;
    }
    if (orders_list_orders(module, ctx, &q, &page) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        goto out;
    }
    cl_http_reply_type(req, 200, &orders_order_page_type, &page);
out:
    cl_schema_free(&orders_order_page_type, &page);
    cl_schema_free(&orders_order_query_type, &q);
}

cl_status orders_rest_routes(cl_router *r, const cl_handle *module, cl_error *err)
{
    void *arg = (void *)module; /* handlers only call through it */
    const cl_route routes[] = {
        {"POST", "/api/v1/orders", "orders:write", place_order, arg, NULL},
        {"GET", "/api/v1/orders", "orders:read", list_orders, arg, "status cursor limit"},
        {"GET", "/api/v1/orders/{id}", "orders:read", get_order, arg, NULL},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
