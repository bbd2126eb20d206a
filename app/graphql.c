/*
 * The shop's GraphQL endpoint (ADR 0038): POST and GET /graphql after the GraphQL over
 * HTTP specification, on the engine of cleave/graphql.h. Every field resolves through a
 * module's operation list (cl_module_api.ops) and its handle, local or remote alike, so a
 * module extracted from this process is queried unchanged; every field checks the same
 * permission its REST route needs, with the gateway's guard (auth.c, rbac.c), and the
 * modules apply their object-level checks (ctx->own_only) as for REST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "host.h"
#include "cleave/graphql.h"
#include "cleave/log.h"
#include "cleave/util.h"

/* Page sizes the modules accept (catalog.h, orders.h): refused here with the argument's name. */
#define GQL_PRODUCTS_MAX  100
#define GQL_ORDERS_MAX    200
#define GQL_HISTORY_MAX   100
/* get_products_by_sku takes at most this many SKUs at once (CATALOG_MAX_SKUS). */
#define GQL_SKUS_PER_CALL 100

typedef struct host_graphql {
    host *h;
    cl_gql_schema *schema;
} host_graphql;

/* One request: what resolvers need, and the module calls it made (extensions.calls). */
typedef struct gql_request {
    host_graphql *g;
    cl_http_req *req;
    json_t *calls; /* "module.operation" -> count */
} gql_request;

/* --- module calls ------------------------------------------------------------------------ */

static const host_module *find_module(const host *h, const char *name)
{
    for (int i = 0; i < h->nmodules; i++) {
        if (strcmp(h->modules[i].binding->api->name, name) == 0) {
            return &h->modules[i];
        }
    }
    return NULL;
}

/*
 * CL_OK when the caller may use permission, else the guard's status (unauthorized,
 * forbidden) with the field's error saying why: the check of the REST route's guard.
 */
static cl_status allow(cl_gql_call *call, const char *permission)
{
    gql_request *r = cl_gql_call_app(call);
    cl_status st;

    if (r->g->h->auth == NULL) {
        return CL_OK; /* a process serving without a guard (as cl_http_options.guard NULL) */
    }
    st = host_auth_guard(r->g->h->auth, r->req, permission);
    if (st != CL_OK) {
        cl_gql_call_error(call, st, "%s", cl_http_ctx(r->req)->err.message);
    }
    return st;
}

/* Members whose value is null are absent to the module (an input field not given). */
static void drop_nulls(json_t *obj)
{
    const char *k;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(obj, tmp, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(obj, k);
        } else if (json_is_object(v)) {
            drop_nulls(v);
        }
    }
}

/*
 * Calls module.operation with request (stolen) as its JSON request, through the module's
 * handle; *response receives the answer as JSON. Failures become the field's error with
 * the module's status and message (naming its field).
 */
static cl_status call_op(cl_gql_call *call, const char *module, const char *operation,
                         json_t *request, const char *idempotency_key, json_t **response)
{
    gql_request *r = cl_gql_call_app(call);
    const host_module *m = find_module(r->g->h, module);
    const cl_op *op =
        m != NULL ? cl_op_find(m->binding->api->ops, m->binding->api->nops, operation) : NULL;
    void *req = NULL, *resp = NULL;
    cl_ctx ctx = *cl_http_ctx(r->req);
    char key[128];
    cl_status st;

    *response = NULL;
    if (op == NULL || request == NULL) {
        st = cl_gql_call_error(call, CL_UNAVAILABLE, "%s.%s is not part of this deployment", module,
                               operation);
        goto out;
    }
    req = calloc(1, op->req->size);
    resp = calloc(1, op->resp->size);
    if (req == NULL || resp == NULL) {
        st = cl_gql_call_error(call, CL_INTERNAL, "out of memory");
        goto out;
    }
    drop_nulls(request);
    memset(&ctx.err, 0, sizeof(ctx.err));
    /* Without the argument, the Idempotency-Key header of the request (ctx) stands. */
    if (idempotency_key != NULL && cl_ctx_set_idempotency_key(&ctx, idempotency_key) != CL_OK) {
        st = cl_gql_call_error(call, CL_INVALID, "idempotency_key: %s", ctx.err.message);
        goto out;
    }
    st = cl_schema_from_json(op->req, request, CL_DECODE_STRICT, req, &ctx.err);
    if (st == CL_OK) {
        snprintf(key, sizeof(key), "%s.%s", module, operation);
        json_object_set_new(r->calls, key,
                            json_integer(json_integer_value(json_object_get(r->calls, key)) + 1));
        st = op->invoke(&m->gateway, &ctx, req, resp);
    }
    if (st == CL_OK) {
        *response = cl_schema_to_json(op->resp, resp);
        if (*response == NULL) {
            st = cl_gql_call_error(call, CL_INTERNAL, "out of memory");
        }
    } else if (ctx.err.field[0] != '\0') {
        cl_gql_call_error(call, st, "%s: %s", ctx.err.field, ctx.err.message);
    } else {
        cl_gql_call_error(call, st, "%s",
                          ctx.err.message[0] != '\0' ? ctx.err.message : cl_status_message(st));
    }
out:
    if (req != NULL) {
        cl_schema_free(op->req, req);
    }
    if (resp != NULL && st == CL_OK) {
        cl_schema_free(op->resp, resp);
    }
    free(req);
    free(resp);
    json_decref(request);
    return st;
}

/* A read of one object: not found is null (another's object looks the same, ADR 0025). */
static cl_status read_one(cl_gql_call *call, const char *permission, const char *module,
                          const char *operation, json_t *request, json_t **out)
{
    cl_status st;

    st = allow(call, permission);
    if (st != CL_OK) {
        json_decref(request);
        return st;
    }
    st = call_op(call, module, operation, request, NULL, out);
    if (st == CL_NOT_FOUND) {
        *out = json_null();
        return CL_OK;
    }
    return st;
}

/* A first argument in [1, max], or CL_INVALID naming it. */
static cl_status page_size(cl_gql_call *call, json_t *args, int64_t max, int64_t *out)
{
    json_t *first = json_object_get(args, "first");

    *out = json_is_integer(first) ? json_integer_value(first) : 20;
    if (*out < 1 || *out > max) {
        return cl_gql_call_error(call, CL_INVALID, "first must be an integer from 1 to %lld",
                                 (long long)max);
    }
    return CL_OK;
}

/* A numeric ID argument (product ids), or CL_INVALID naming it. */
static cl_status numeric_id(cl_gql_call *call, json_t *args, const char *name, int64_t *out)
{
    const char *s = json_string_value(json_object_get(args, name));
    char *end = NULL;

    *out = s != NULL ? strtoll(s, &end, 10) : 0;
    if (s == NULL || s[0] < '0' || s[0] > '9' || *end != '\0' || *out < 1) {
        return cl_gql_call_error(call, CL_INVALID, "%s must be a positive integer", name);
    }
    return CL_OK;
}

/* {nodes, page_info} from a module's page {items, next_cursor}. */
static json_t *connection(json_t *page)
{
    json_t *next = json_object_get(page, "next_cursor");
    json_t *c = json_pack("{sO*s{sbsO*}}", "nodes", json_object_get(page, "items"), "page_info",
                          "has_next_page", json_is_string(next), "end_cursor",
                          json_is_string(next) ? next : json_null());

    json_decref(page);
    return c;
}

/* --- resolvers ------------------------------------------------------------------------------- */

/*
 * A page of a module's list operation as a connection: request (stolen) gets the page size
 * (first, 1..max) as limit and the cursor (after), and the caller needs permission.
 */
static cl_status page(cl_gql_call *call, json_t *args, const char *permission, const char *module,
                      const char *operation, int64_t max, json_t *request, json_t **out)
{
    json_t *items = NULL;
    int64_t limit = 0;
    cl_status st = allow(call, permission);

    if (st == CL_OK) {
        st = page_size(call, args, max, &limit);
    }
    if (st != CL_OK || request == NULL) {
        json_decref(request);
        return st != CL_OK ? st : cl_gql_call_error(call, CL_INTERNAL, "out of memory");
    }
    json_object_set_new(request, "limit", json_integer((json_int_t)limit));
    if (json_is_string(json_object_get(args, "after"))) {
        json_object_set(request, "cursor", json_object_get(args, "after"));
    }
    st = call_op(call, module, operation, request, NULL, &items);
    if (st == CL_OK) {
        *out = connection(items);
    }
    return st;
}

static cl_status q_products(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    (void)parent;
    return page(call, args, "catalog:read", "catalog", "list_products", GQL_PRODUCTS_MAX,
                json_pack("{sO*sO*sO*}", "category", json_object_get(args, "category"), "tag",
                          json_object_get(args, "tag"), "name_prefix",
                          json_object_get(args, "name_prefix")),
                out);
}

static cl_status q_product(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    int64_t id;
    cl_status st = numeric_id(call, args, "id", &id);

    (void)parent;
    if (st != CL_OK) {
        return st;
    }
    return read_one(call, "catalog:read", "catalog", "get_product",
                    json_pack("{sI}", "id", (json_int_t)id), out);
}

static cl_status q_categories(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    json_t *list = NULL;
    cl_status st;

    (void)parent;
    (void)args;
    st = allow(call, "catalog:read");
    if (st != CL_OK) {
        return st;
    }
    st = call_op(call, "catalog", "list_categories", json_object(), NULL, &list);
    if (st == CL_OK) {
        *out = json_incref(json_object_get(list, "items"));
        json_decref(list);
    }
    return st;
}

static cl_status q_stock(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    json_t *sku = json_object_get(parent, "sku");

    if (sku == NULL) {
        sku = json_object_get(args, "sku");
    }
    return read_one(call, "inventory:read", "inventory", "get_stock",
                    json_pack("{sO*}", "sku", sku), out);
}

static cl_status q_orders(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    (void)parent;
    return page(call, args, "orders:read", "orders", "list_orders", GQL_ORDERS_MAX,
                json_pack("{sO*}", "status", json_object_get(args, "status")), out);
}

static cl_status q_order(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    (void)parent;
    return read_one(call, "orders:read", "orders", "get_order",
                    json_pack("{sO*}", "id", json_object_get(args, "id")), out);
}

static cl_status q_account(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    json_t *limit = json_object_get(args, "history_limit");

    (void)parent;
    if (json_integer_value(limit) < 1 || json_integer_value(limit) > GQL_HISTORY_MAX) {
        return cl_gql_call_error(call, CL_INVALID, "history_limit must be an integer from 1 to %d",
                                 GQL_HISTORY_MAX);
    }
    return read_one(
        call, "payments:read", "payments", "get_account",
        json_pack("{sO*sO*}", "id", json_object_get(args, "id"), "history_limit", limit), out);
}

/* Query.shipments(order_id) and Order.shipments: shipping's list for "order:<id>". */
static cl_status q_shipments(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    const char *id = json_string_value(json_object_get(parent, "id"));
    char ref[160];
    json_t *list = NULL;
    cl_status st;

    if (id == NULL) {
        id = json_string_value(json_object_get(args, "order_id"));
    }
    st = allow(call, "shipping:read");
    if (st != CL_OK) {
        return st;
    }
    snprintf(ref, sizeof(ref), "order:%s", id != NULL ? id : "");
    st = call_op(call, "shipping", "list_shipments", json_pack("{ss}", "order_ref", ref), NULL,
                 &list);
    if (st == CL_OK) {
        *out = json_incref(json_object_get(list, "items"));
        json_decref(list);
    }
    return st;
}

/*
 * OrderLine.product for every line of a response level at once: one get_products_by_sku
 * per GQL_SKUS_PER_CALL distinct SKUs, instead of one get_product per line (ADR 0038).
 */
static cl_status b_line_product(cl_gql_call *call, json_t *parents, json_t *args, json_t *outs)
{
    json_t *skus = json_array(), *found = json_object();
    size_t i;
    json_t *p;
    cl_status st = CL_OK;

    (void)args;
    st = allow(call, "catalog:read");
    if (st != CL_OK) {
        goto out;
    }
    json_array_foreach (parents, i, p) {
        json_t *sku = json_object_get(p, "sku");

        if (json_is_string(sku) && json_object_get(found, json_string_value(sku)) == NULL) {
            json_object_set_new(found, json_string_value(sku), json_null());
            json_array_append(skus, sku);
        }
    }
    for (size_t at = 0; st == CL_OK && at < json_array_size(skus); at += GQL_SKUS_PER_CALL) {
        json_t *chunk = json_array(), *list = NULL, *item;
        size_t j;

        for (j = at; j < json_array_size(skus) && j < at + GQL_SKUS_PER_CALL; j++) {
            json_array_append(chunk, json_array_get(skus, j));
        }
        st = call_op(call, "catalog", "get_products_by_sku", json_pack("{so}", "skus", chunk), NULL,
                     &list);
        json_array_foreach (json_object_get(list, "items"), j, item) {
            json_object_set(found, json_string_value(json_object_get(item, "sku")), item);
        }
        json_decref(list);
    }
    json_array_foreach (parents, i, p) {
        json_t *v = json_object_get(found, json_string_value(json_object_get(p, "sku")));

        json_array_append(outs, v != NULL ? v : json_null());
    }
out:
    json_decref(skus);
    json_decref(found);
    return st;
}

static cl_status m_checkout(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    cl_status st;

    (void)parent;
    st = allow(call, "orders:write");
    if (st != CL_OK) {
        return st;
    }
    return call_op(call, "orders", "place_order", json_deep_copy(json_object_get(args, "input")),
                   json_string_value(json_object_get(args, "idempotency_key")), out);
}

static cl_status m_create_product(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    cl_status st;

    (void)parent;
    st = allow(call, "catalog:write");
    if (st != CL_OK) {
        return st;
    }
    return call_op(call, "catalog", "create_product",
                   json_deep_copy(json_object_get(args, "input")), NULL, out);
}

static cl_status m_update_product(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    int64_t id;
    cl_status st = numeric_id(call, args, "id", &id);

    (void)parent;
    if (st != CL_OK) {
        return st;
    }
    st = allow(call, "catalog:write");
    if (st != CL_OK) {
        return st;
    }
    return call_op(call, "catalog", "update_product",
                   json_pack("{sIsO*so*}", "id", (json_int_t)id, "expected_version",
                             json_object_get(args, "expected_version"), "changes",
                             json_deep_copy(json_object_get(args, "changes"))),
                   NULL, out);
}

static cl_status m_set_stock(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    cl_status st;

    (void)parent;
    st = allow(call, "inventory:write");
    if (st != CL_OK) {
        return st;
    }
    return call_op(call, "inventory", "set_stock",
                   json_pack("{sO*sO*}", "sku", json_object_get(args, "sku"), "on_hand",
                             json_object_get(args, "on_hand")),
                   NULL, out);
}

/* --- the schema ------------------------------------------------------------------------------ */

#define END                                                                                        \
    {                                                                                              \
        NULL, NULL, NULL, NULL                                                                     \
    }
#define FEND                                                                                       \
    {                                                                                              \
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0                                                \
    }
/* A plain member of the module's answer. */
#define F(name, type, desc)                                                                        \
    {                                                                                              \
        name, type, desc, NULL, NULL, NULL, NULL, 0                                                \
    }

static const cl_gql_arg products_args[] = {
    {"first", "Int", "20", "How many products (1-100)."},
    {"after", "String", NULL, "The end_cursor of the previous page."},
    {"category", "String", NULL, "Only this category (its id)."},
    {"tag", "String", NULL, "Only products with this tag."},
    {"name_prefix", "String", NULL, "Only names starting with this (case-sensitive)."},
    END,
};
static const cl_gql_arg id_arg[] = {{"id", "ID!", NULL, NULL}, END};
static const cl_gql_arg sku_arg[] = {{"sku", "String!", NULL, NULL}, END};
static const cl_gql_arg orders_args[] = {
    {"first", "Int", "20", "How many orders (1-200)."},
    {"after", "String", NULL, "The end_cursor of the previous page."},
    {"status", "OrderStatus", NULL, "Only orders with this status."},
    END,
};
static const cl_gql_arg account_args[] = {
    {"id", "ID!", NULL, NULL},
    {"history_limit", "Int", "20", "How many of the latest events in history (1-100)."},
    END,
};
static const cl_gql_arg shipments_args[] = {{"order_id", "ID!", NULL, NULL}, END};
static const cl_gql_arg checkout_args[] = {
    {"input", "CheckoutInput!", NULL, NULL},
    {"idempotency_key", "String", NULL,
     "Placing again with the same key returns the same order (as the Idempotency-Key header)."},
    END,
};
static const cl_gql_arg create_product_args[] = {{"input", "ProductInput!", NULL, NULL}, END};
static const cl_gql_arg update_product_args[] = {
    {"id", "ID!", NULL, NULL},
    {"expected_version", "Int", NULL, "Refused (conflict) when the product's version differs."},
    {"changes", "ProductChanges!", NULL, NULL},
    END,
};
static const cl_gql_arg set_stock_args[] = {
    {"sku", "String!", NULL, NULL},
    {"on_hand", "Int!", NULL, NULL},
    END,
};

static const cl_gql_field query_fields[] = {
    {"products", "ProductConnection!", "Products in ascending id order (catalog:read).",
     products_args, q_products, NULL, NULL, 0},
    {"product", "Product", "A product by id, or null (catalog:read).", id_arg, q_product, NULL,
     NULL, 0},
    {"categories", "[Category!]!", "Every category (catalog:read).", NULL, q_categories, NULL, NULL,
     20},
    {"stock", "Stock", "A SKU's stock, or null (inventory:read).", sku_arg, q_stock, NULL, NULL, 0},
    {"orders", "OrderConnection!", "Orders, oldest first: a customer's own only (orders:read).",
     orders_args, q_orders, NULL, NULL, 0},
    {"order", "Order", "An order, or null: a customer sees only its own (orders:read).", id_arg,
     q_order, NULL, NULL, 0},
    {"account", "Account",
     "An account with its latest events, or null: a customer sees only its own (payments:read).",
     account_args, q_account, NULL, NULL, 0},
    {"shipments", "[Shipment!]!", "The shipments of an order (shipping:read).", shipments_args,
     q_shipments, NULL, NULL, 2},
    FEND,
};

static const cl_gql_field mutation_fields[] = {
    {"checkout", "Order!",
     "Places an order (status pending; the checkout saga confirms or rejects it) (orders:write).",
     checkout_args, m_checkout, NULL, NULL, 0},
    {"create_product", "Product!", "Creates a product (catalog:write).", create_product_args,
     m_create_product, NULL, NULL, 0},
    {"update_product", "Product!", "Changes a product (catalog:write).", update_product_args,
     m_update_product, NULL, NULL, 0},
    {"set_stock", "Stock!", "Sets what is on hand of a SKU (inventory:write).", set_stock_args,
     m_set_stock, NULL, NULL, 0},
    FEND,
};

static const cl_gql_field money_fields[] = {
    F("amount", "Int!", "Minor units (cents)."),
    F("currency", "String!", "ISO 4217 code."),
    FEND,
};

static const cl_gql_field product_fields[] = {
    F("id", "ID!", NULL),
    F("sku", "String!", NULL),
    F("name", "String!", NULL),
    F("description", "String", NULL),
    F("price", "Money!", NULL),
    F("category", "String!", "The category's id."),
    F("tags", "[String!]!", NULL),
    F("created_at", "String!", NULL),
    F("updated_at", "String!", NULL),
    F("version", "Int!", "Starts at 1, one more with every change."),
    {"stock", "Stock", "Its stock, or null when none was ever set (inventory:read).", NULL, q_stock,
     NULL, NULL, 0},
    FEND,
};

static const cl_gql_field page_info_fields[] = {
    F("has_next_page", "Boolean!", NULL),
    F("end_cursor", "String", "Pass as after for the next page; null on the last."),
    FEND,
};

static const cl_gql_field product_connection_fields[] = {
    {"nodes", "[Product!]!", NULL, NULL, NULL, NULL, NULL, 20},
    F("page_info", "PageInfo!", NULL),
    FEND,
};

static const cl_gql_field category_fields[] = {
    F("id", "ID!", NULL),
    F("name", "String!", NULL),
    F("product_count", "Int!", NULL),
    FEND,
};

static const cl_gql_field stock_fields[] = {
    F("sku", "String!", NULL),
    F("on_hand", "Int!", "In the warehouse, reserved units included."),
    F("reserved", "Int!", "Held for orders."),
    F("available", "Int!", "on_hand - reserved."),
    F("sold", "Int!", NULL),
    F("updated_at", "String!", NULL),
    FEND,
};

static const cl_gql_field line_fields[] = {
    F("sku", "String!", NULL),
    F("quantity", "Int!", NULL),
    F("unit_price", "Money!", NULL),
    F("line_total", "Money!", NULL),
    {"product", "Product",
     "The product of this SKU (catalog:read): the lines of a whole response level are looked "
     "up in one call.",
     NULL, NULL, b_line_product, NULL, 0},
    FEND,
};

static const cl_gql_field saga_entry_fields[] = {
    F("step", "String!", NULL),
    F("outcome", "String!", NULL),
    F("detail", "String", NULL),
    F("at", "String!", NULL),
    FEND,
};

static const cl_gql_field order_fields[] = {
    F("id", "ID!", NULL),
    F("account_id", "String!", NULL),
    F("status", "OrderStatus!", NULL),
    F("step", "String!", "The saga step to run next (done once final)."),
    F("reason", "String", "Why it was rejected."),
    F("payment_id", "String", NULL),
    {"lines", "[OrderLine!]!", NULL, NULL, NULL, NULL, NULL, 5},
    F("total", "Money!", NULL),
    {"history", "[SagaEntry!]!", "The saga's steps, oldest first (empty in lists).", NULL, NULL,
     NULL, NULL, 8},
    F("created_at", "String!", NULL),
    F("updated_at", "String!", NULL),
    {"shipments", "[Shipment!]!", "Its shipments (shipping:read).", NULL, q_shipments, NULL, NULL,
     2},
    FEND,
};

static const cl_gql_field order_connection_fields[] = {
    {"nodes", "[Order!]!", NULL, NULL, NULL, NULL, NULL, 20},
    F("page_info", "PageInfo!", NULL),
    FEND,
};

static const cl_gql_field account_entry_fields[] = {
    F("version", "Int!", NULL),      F("type", "String!", NULL),        F("amount", "Money", NULL),
    F("payment_id", "String", NULL), F("occurred_at", "String!", NULL), FEND,
};

static const cl_gql_field account_fields[] = {
    F("id", "ID!", NULL),
    F("owner", "String!", "The holder's name."),
    F("currency", "String!", NULL),
    F("available", "Money!", NULL),
    F("held", "Money!", NULL),
    F("version", "Int!", NULL),
    F("updated_at", "String!", NULL),
    {"history", "[AccountEntry!]!", "Its latest events, newest first.", NULL, NULL, NULL, NULL, 20},
    FEND,
};

static const cl_gql_field shipment_fields[] = {
    F("id", "ID!", NULL),
    F("order_ref", "String!", NULL),
    F("status", "String!", "pending, then booked."),
    F("carrier", "String", NULL),
    F("tracking", "String", NULL),
    F("operation_id", "String", NULL),
    F("created_at", "String!", NULL),
    F("updated_at", "String!", NULL),
    FEND,
};

static const cl_gql_arg line_input[] = {
    {"sku", "String!", NULL, NULL},
    {"quantity", "Int!", NULL, NULL},
    END,
};
static const cl_gql_arg checkout_input[] = {
    {"account_id", "String!", NULL, "The paying account (a customer's own)."},
    {"lines", "[LineInput!]!", NULL, NULL},
    END,
};
static const cl_gql_arg money_input[] = {
    {"amount", "Int!", NULL, NULL},
    {"currency", "String!", NULL, NULL},
    END,
};
static const cl_gql_arg product_input[] = {
    {"sku", "String!", NULL, NULL},
    {"name", "String!", NULL, NULL},
    {"description", "String", NULL, NULL},
    {"price", "MoneyInput!", NULL, NULL},
    {"category", "String!", NULL, NULL},
    {"tags", "[String!]", NULL, NULL},
    END,
};
static const cl_gql_arg product_changes[] = {
    {"name", "String", NULL, NULL},
    {"description", "String", NULL, NULL},
    {"price", "MoneyInput", NULL, NULL},
    {"category", "String", NULL, NULL},
    {"tags", "[String!]", NULL, NULL},
    {"clear", "[String!]", NULL, "Fields to remove (description only)."},
    END,
};

static const char *const order_statuses[] = {"pending", "compensating", "confirmed", "rejected",
                                             NULL};

static const cl_gql_type shop_types[] = {
    {CL_GQL_OBJECT, "Query", NULL, query_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Mutation", NULL, mutation_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Product", NULL, product_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Money", "Integer minor units and a currency, never floating point.",
     money_fields, NULL, NULL},
    {CL_GQL_OBJECT, "ProductConnection", NULL, product_connection_fields, NULL, NULL},
    {CL_GQL_OBJECT, "PageInfo", NULL, page_info_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Category", NULL, category_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Stock", NULL, stock_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Order", NULL, order_fields, NULL, NULL},
    {CL_GQL_ENUM, "OrderStatus", NULL, NULL, NULL, order_statuses},
    {CL_GQL_OBJECT, "OrderLine", NULL, line_fields, NULL, NULL},
    {CL_GQL_OBJECT, "SagaEntry", NULL, saga_entry_fields, NULL, NULL},
    {CL_GQL_OBJECT, "OrderConnection", NULL, order_connection_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Account", NULL, account_fields, NULL, NULL},
    {CL_GQL_OBJECT, "AccountEntry", NULL, account_entry_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Shipment", NULL, shipment_fields, NULL, NULL},
    {CL_GQL_INPUT_OBJECT, "LineInput", NULL, NULL, line_input, NULL},
    {CL_GQL_INPUT_OBJECT, "CheckoutInput", NULL, NULL, checkout_input, NULL},
    {CL_GQL_INPUT_OBJECT, "MoneyInput", NULL, NULL, money_input, NULL},
    {CL_GQL_INPUT_OBJECT, "ProductInput", NULL, NULL, product_input, NULL},
    {CL_GQL_INPUT_OBJECT, "ProductChanges", "Only the fields given change.", NULL, product_changes,
     NULL},
    {0, NULL, NULL, NULL, NULL, NULL},
};

/* --- HTTP ----------------------------------------------------------------------------------- */

#define GQL_RESPONSE_TYPE "application/graphql-response+json"

/* A request error before any GraphQL runs: the GraphQL error format (spec section 7.1.2). */
static void reply(cl_http_req *req, int status, bool gql_type, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    if (text == NULL) {
        cl_http_reply_problem(req, 500, "internal", "Internal error", "out of memory", NULL);
    } else {
        cl_http_reply_bytes(req, status,
                            gql_type ? GQL_RESPONSE_TYPE "; charset=utf-8"
                                     : "application/json; charset=utf-8",
                            text, strlen(text));
    }
    free(text);
    json_decref(body);
}

static void request_error(cl_http_req *req, bool gql_type, const char *param, const char *what)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s %s", param, what);
    reply(req, 400, gql_type, json_pack("{s[{ss}]}", "errors", "message", msg));
}

/* Whether list (an Accept header) names the media type, ignoring case. */
static bool names_type(const char *list, const char *type)
{
    size_t n = strlen(type);

    for (const char *p = list; *p != '\0'; p++) {
        if (strncasecmp(p, type, n) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Which media type answers (GraphQL over HTTP, section 6.4.1): graphql-response+json when
 * accepted, else application/json when accepted or no Accept; 0 when neither is.
 */
static int negotiate(const cl_http_req *req, bool *gql_type)
{
    const char *accept = cl_http_header(req, "Accept");

    *gql_type = false;
    if (accept == NULL || accept[0] == '\0') {
        return 1;
    }
    if (names_type(accept, GQL_RESPONSE_TYPE)) {
        *gql_type = true;
        return 1;
    }
    return names_type(accept, "application/json") || strstr(accept, "*/*") != NULL ||
           names_type(accept, "application/*");
}

static void run(host_graphql *g, cl_http_req *req, bool gql_type, const char *query, size_t len,
                json_t *variables, const char *operation_name, bool get)
{
    gql_request r = {g, req, json_object()};
    cl_gql_request q = {query, len, variables, operation_name, get, &r};
    cl_gql_outcome outcome;
    json_t *response = NULL;
    int status = 200;

    if (cl_gql_execute(g->schema, &q, NULL, &response, &outcome) != CL_OK) {
        json_decref(response);
        json_decref(r.calls);
        cl_http_reply_problem(req, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    if (outcome == CL_GQL_NOT_ALLOWED) {
        cl_http_set_header(req, "Allow", "POST");
        status = 405;
    } else if (outcome == CL_GQL_REJECTED && gql_type) {
        status = 400;
    }
    /* How many calls each operation took: the cost of this request, and the batching's proof. */
    if (outcome == CL_GQL_EXECUTED) {
        json_object_set_new(response, "extensions", json_pack("{sO*}", "calls", r.calls));
    }
    json_decref(r.calls);
    reply(req, status, gql_type, response);
}

static void handle_post(cl_http_req *req, void *arg)
{
    host_graphql *g = arg;
    json_t *body = NULL, *query, *variables, *name, *extensions;
    bool gql_type;

    if (!negotiate(req, &gql_type)) {
        cl_http_reply_problem(req, 406, "not_acceptable", "Not Acceptable",
                              "Accept must allow " GQL_RESPONSE_TYPE " or application/json", NULL);
        return;
    }
    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    query = json_object_get(body, "query");
    variables = json_object_get(body, "variables");
    name = json_object_get(body, "operationName");
    extensions = json_object_get(body, "extensions");
    if (!json_is_string(query)) {
        request_error(req, gql_type, "query", "must be a string holding the GraphQL document");
    } else if (variables != NULL && !json_is_null(variables) && !json_is_object(variables)) {
        request_error(req, gql_type, "variables", "must be an object");
    } else if (name != NULL && !json_is_null(name) && !json_is_string(name)) {
        request_error(req, gql_type, "operationName", "must be a string");
    } else if (extensions != NULL && !json_is_null(extensions) && !json_is_object(extensions)) {
        request_error(req, gql_type, "extensions", "must be an object");
    } else {
        run(g, req, gql_type, json_string_value(query), json_string_length(query),
            json_is_object(variables) ? variables : NULL, json_string_value(name), false);
    }
    json_decref(body);
}

/* A JSON-encoded query parameter (variables, extensions): -1 after replying 400. */
static int json_param(cl_http_req *req, bool gql_type, const char *name, char *buf, size_t size,
                      json_t **out)
{
    int n = cl_http_query(req, name, buf, size);
    json_error_t jerr;

    *out = NULL;
    if (n == -2) {
        request_error(req, gql_type, name, "is too long");
        return -1;
    }
    if (n < 0) {
        return 0;
    }
    *out = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        request_error(req, gql_type, name, "must be a JSON object");
        return -1;
    }
    return 0;
}

static void handle_get(cl_http_req *req, void *arg)
{
    host_graphql *g = arg;
    /* As large as the query limit allows (cl_gql_limits.max_bytes), plus one. */
    size_t size = 16385;
    char *query = malloc(size), *vars = malloc(size), name[256];
    json_t *variables = NULL, *extensions = NULL;
    bool gql_type;
    int n;

    if (query == NULL || vars == NULL) {
        cl_http_reply_problem(req, 500, "internal", "Internal error", "out of memory", NULL);
        goto out;
    }
    if (!negotiate(req, &gql_type)) {
        cl_http_reply_problem(req, 406, "not_acceptable", "Not Acceptable",
                              "Accept must allow " GQL_RESPONSE_TYPE " or application/json", NULL);
        goto out;
    }
    n = cl_http_query(req, "query", query, size);
    if (n == -1) {
        request_error(req, gql_type, "query", "is required (the GraphQL document)");
        goto out;
    }
    if (n == -2) {
        request_error(req, gql_type, "query", "is longer than 16384 bytes");
        goto out;
    }
    if (json_param(req, gql_type, "variables", vars, size, &variables) != 0 ||
        json_param(req, gql_type, "extensions", vars, size, &extensions) != 0) {
        goto out;
    }
    if (cl_http_query(req, "operationName", name, sizeof(name)) == -2) {
        request_error(req, gql_type, "operationName", "is too long");
        goto out;
    }
    run(g, req, gql_type, query, (size_t)n, variables,
        cl_http_query(req, "operationName", name, sizeof(name)) >= 0 ? name : NULL, true);
out:
    json_decref(variables);
    json_decref(extensions);
    free(query);
    free(vars);
}

cl_status host_graphql_routes(host *h, cl_router *r, cl_error *err)
{
    host_graphql *g = calloc(1, sizeof(*g));
    cl_status st;

    if (g == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    g->h = h;
    st = cl_gql_schema_new(shop_types, "Query", "Mutation", &g->schema, err);
    if (st != CL_OK) {
        free(g);
        return st;
    }
    h->graphql = g;
    {
        /* Each field checks its own permission (as its REST route does): the route is open. */
        const cl_route routes[] = {
            {"POST", "/graphql", CL_PERM_PUBLIC, handle_post, g, NULL},
            {"GET", "/graphql", CL_PERM_PUBLIC, handle_get, g,
             "query variables operationName extensions"},
        };

        return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
    }
}

void host_graphql_free(struct host_graphql *g)
{
    if (g == NULL) {
        return;
    }
    cl_gql_schema_free(g->schema);
    free(g);
}
