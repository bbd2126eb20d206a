/*
 * Shipping's local binding: shipments over its own database, made from confirmed orders
 * (or on request) and booked by a long-running carrier operation (ADR 0012).
 *
 * Every shipment is created in one transaction with its carrier operation and its
 * shipping.shipment_created event; when created from an event, that transaction is the
 * bus's inbox transaction, so a redelivered event never makes a second shipment.
 */
#include "shipping/shipping.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/log.h"
#include "orders/orders.h"

#define CARRIER_KIND "shipping.carrier_booking"

/* An instance of shipping (cleave/module.h): everything it runs on. */
struct shipping_self {
    cl_db *db;                 /* borrowed from the host for the instance's life */
    int64_t carrier_ms;        /* CLEAVE_SHIPPING_CARRIER_MS */
    cl_operation_kind carrier; /* the carrier step, with this instance as its arg */
};

CL_LOCAL_DEFINE(shipping, SHIPPING_OPERATIONS, SHIPPING_OPS_VERSION)

static const char insert_sql[] =
    "INSERT INTO shipments (order_ref, status, created_at, updated_at) "
    "VALUES (?, 'pending', ?, ?) RETURNING id";
static const char set_operation_sql[] = "UPDATE shipments SET operation_id = ? WHERE id = ?";
static const char book_sql[] =
    "UPDATE shipments SET status = 'booked', carrier = ?, tracking = ?, updated_at = ? "
    "WHERE id = ? RETURNING order_ref";
#define SHIPMENT_COLUMNS                                                                           \
    "SELECT id, order_ref, status, carrier, tracking, operation_id, created_at, updated_at "       \
    "FROM shipments "
static const char get_sql[] = SHIPMENT_COLUMNS "WHERE id = ?";
static const char by_order_sql[] = SHIPMENT_COLUMNS "WHERE order_ref = ? ORDER BY id LIMIT ?";
static const char recent_sql[] = SHIPMENT_COLUMNS "ORDER BY id DESC LIMIT ?";

static cl_status oom(cl_ctx *ctx)
{
    return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
}

static bool valid_ref(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > SHIPPING_ORDER_REF_MAX) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            return false;
        }
    }
    return true;
}

/*
 * Creates a pending shipment for order_ref, its carrier operation and its event, in the
 * open transaction on conn.
 */
static cl_status create_shipment(cl_ctx *ctx, cl_db_conn *conn, const char *order_ref, int64_t *id,
                                 char op_id[CL_OPERATION_ID_MAX])
{
    char now[32], key[48];
    cl_stmt *st;
    bool row = false;
    json_t *j;
    cl_status rc;

    cl_now_rfc3339(now);
    rc = cl_db_prepare(conn, insert_sql, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, order_ref, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 2, now, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, now, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_INTERNAL, NULL, "insert returned no id");
    }
    if (rc != CL_OK) {
        return rc;
    }
    *id = cl_stmt_i64(st, 0);
    rc = cl_stmt_drain(st, NULL, &ctx->err);
    if (rc != CL_OK) {
        return rc;
    }
    j = json_pack("{s:I}", "shipment_id", (json_int_t)*id);
    rc = j != NULL ? cl_operation_create(conn, "shipping", CARRIER_KIND, j, op_id, &ctx->err)
                   : oom(ctx);
    json_decref(j);
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, set_operation_sql, &st, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, op_id, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, *id, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    snprintf(key, sizeof(key), "shipment:%" PRId64, *id);
    return shipping_publish_shipment_created(
        conn, ctx, key, &(shipping_shipment_created){*id, (char *)order_ref}, &ctx->err);
}

/* --- event handlers (inside the bus's inbox transaction) ---------------------------- */

/* orders.order_confirmed (orders/orders.h): one shipment per confirmed order. */
static cl_status on_order_confirmed(void *arg, cl_ctx *ctx, const cl_envelope *env,
                                    const void *payload, cl_db_conn *conn)
{
    const orders_order_confirmed *o = payload;
    char ref[SHIPPING_ORDER_REF_MAX + 1], op[CL_OPERATION_ID_MAX];
    int64_t shipment;
    int n;

    (void)arg;
    n = o->order_id != NULL ? snprintf(ref, sizeof(ref), "order:%s", o->order_id) : -1;
    if (n <= 6 || (size_t)n >= sizeof(ref)) {
        return cl_fail(ctx, CL_INVALID, "payload.order_id", "%s without an order id", env->type);
    }
    return create_shipment(ctx, conn, ref, &shipment, op);
}

/* --- the carrier step: a long-running operation --------------------------------------- */

static cl_status carrier_work(void *arg, const char *op_id, json_t *input, json_t **result,
                              cl_error *err)
{
    const struct shipping_self *self = arg;
    json_int_t id = json_integer_value(json_object_get(input, "shipment_id"));
    char tracking[32];
    struct timespec ts = {(time_t)(self->carrier_ms / 1000),
                          (long)(self->carrier_ms % 1000) * 1000000L};

    (void)op_id;
    if (id <= 0) {
        return cl_error_set(err, CL_INVALID, "shipment_id", "no shipment to book");
    }
    /* A stand-in for a carrier's API: slow, and idempotent (same shipment, same number). */
    while (nanosleep(&ts, &ts) != 0) {
    }
    snprintf(tracking, sizeof(tracking), "CP%010" JSON_INTEGER_FORMAT, id);
    *result = json_pack("{s:I,s:s,s:s}", "shipment_id", id, "carrier", "cleave-post", "tracking",
                        tracking);
    return *result != NULL ? CL_OK : cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
}

static cl_status carrier_complete(void *arg, cl_db_conn *conn, const char *op_id, json_t *input,
                                  json_t *result, cl_error *err)
{
    json_int_t id = json_integer_value(json_object_get(input, "shipment_id"));
    const char *carrier = json_string_value(json_object_get(result, "carrier"));
    const char *tracking = json_string_value(json_object_get(result, "tracking"));
    char now[32], key[48], order_ref[SHIPPING_ORDER_REF_MAX + 1] = "";
    cl_ctx ctx;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    (void)arg;
    (void)op_id;
    cl_now_rfc3339(now);
    rc = cl_db_prepare(conn, book_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, carrier, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 2, tracking, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 4, id, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && !row) {
        return cl_error_set(err, CL_NOT_FOUND, "shipment_id", "shipment %lld is gone",
                            (long long)id);
    }
    if (rc == CL_OK) {
        cl_strlcpy(order_ref, cl_stmt_text(st, 0), sizeof(order_ref));
        rc = cl_stmt_drain(st, NULL, err);
    }
    if (rc != CL_OK) {
        return rc;
    }
    cl_ctx_init(&ctx, 0);
    snprintf(key, sizeof(key), "shipment:%lld", (long long)id);
    return shipping_publish_shipment_booked(
        conn, &ctx, key,
        &(shipping_shipment_booked){id, order_ref, (char *)(carrier != NULL ? carrier : ""),
                                    (char *)(tracking != NULL ? tracking : "")},
        err);
}

/* --- operations ------------------------------------------------------------------- */

static cl_status acquire(struct shipping_self *self, cl_ctx *ctx, cl_db_conn **conn)
{
    return cl_db_acquire(self->db, ctx, conn, &ctx->err);
}

static cl_status shipping_local_request_shipment(struct shipping_self *self, cl_ctx *ctx,
                                                 const shipping_shipment_request *req,
                                                 shipping_accepted *resp)
{
    cl_db_conn *conn = NULL;
    char op[CL_OPERATION_ID_MAX];
    int64_t id = 0;
    cl_status rc;

    if (!valid_ref(req->order_ref)) {
        return cl_fail(ctx, CL_INVALID, "order_ref", "order_ref must be 1-%d printable bytes",
                       SHIPPING_ORDER_REF_MAX);
    }
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = create_shipment(ctx, conn, req->order_ref, &id, op);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &ctx->err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        return rc;
    }
    resp->shipment_id = id;
    resp->operation_id = cl_strdup(op);
    return resp->operation_id != NULL ? CL_OK : oom(ctx);
}

static cl_status read_shipment(cl_ctx *ctx, cl_stmt *st, shipping_shipment *s)
{
    s->id = cl_stmt_i64(st, 0);
    s->order_ref = cl_strdup(cl_stmt_text(st, 1));
    s->status = cl_strdup(cl_stmt_text(st, 2));
    s->carrier = cl_strdup(cl_stmt_text(st, 3));
    s->tracking = cl_strdup(cl_stmt_text(st, 4));
    s->operation_id = cl_strdup(cl_stmt_text(st, 5));
    s->created_at = cl_strdup(cl_stmt_text(st, 6));
    s->updated_at = cl_strdup(cl_stmt_text(st, 7));
    if (s->order_ref == NULL || s->status == NULL || s->created_at == NULL ||
        s->updated_at == NULL) {
        return oom(ctx);
    }
    return CL_OK;
}

static cl_status shipping_local_get_shipment(struct shipping_self *self, cl_ctx *ctx,
                                             const shipping_shipment_ref *req,
                                             shipping_shipment *resp)
{
    shipping_shipment s = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, get_sql, &st, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 1, req->id, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_fail(ctx, CL_NOT_FOUND, "id", "shipment %" PRId64 " does not exist", req->id);
    }
    if (rc == CL_OK) {
        rc = read_shipment(ctx, st, &s);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *resp = s;
    } else {
        cl_schema_free(&shipping_shipment_type, &s);
    }
    return rc;
}

static cl_status shipping_local_list_shipments(struct shipping_self *self, cl_ctx *ctx,
                                               const shipping_shipment_query *req,
                                               shipping_shipment_list *resp)
{
    shipping_shipment_list list = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    cl_status rc;

    if (req->order_ref != NULL && !valid_ref(req->order_ref)) {
        return cl_fail(ctx, CL_INVALID, "order_ref", "order_ref must be 1-%d printable bytes",
                       SHIPPING_ORDER_REF_MAX);
    }
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc =
            cl_db_prepare(conn, req->order_ref != NULL ? by_order_sql : recent_sql, &st, &ctx->err);
    }
    if (rc == CL_OK && req->order_ref != NULL) {
        rc = cl_stmt_bind_text(st, 1, req->order_ref, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, req->order_ref != NULL ? 2 : 1, SHIPPING_LIST_MAX, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    while (rc == CL_OK && row) {
        shipping_shipment *s = CL_LIST_PUSH(list.items);

        rc = s != NULL ? read_shipment(ctx, st, s) : oom(ctx);
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &ctx->err);
        }
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        *resp = list;
    } else {
        cl_schema_free(&shipping_shipment_list_type, &list);
    }
    return rc;
}

static cl_status shipping_local_get_operation(struct shipping_self *self, cl_ctx *ctx,
                                              const cl_operation_ref *req, cl_operation *resp)
{
    cl_db_conn *conn = NULL;
    cl_status rc;

    if (req->id == NULL || strncmp(req->id, "shipping-", 9) != 0 ||
        strlen(req->id) >= CL_OPERATION_ID_MAX) {
        return cl_fail(ctx, CL_NOT_FOUND, "id", "operation %s does not exist",
                       req->id != NULL ? req->id : "");
    }
    rc = acquire(self, ctx, &conn);
    if (rc == CL_OK) {
        rc = cl_operation_get(conn, req->id, resp, &ctx->err);
    }
    cl_db_release(conn);
    return rc;
}

static void shipping_destroy(void *self)
{
    free(self);
}

static cl_status shipping_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct shipping_self *self;
    cl_status rc = CL_OK;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "shipping needs its database");
    }
    if (env->config == NULL) {
        return cl_error_set(err, CL_INVALID, "config", "shipping needs its configuration");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    self->db = env->db;
    self->carrier_ms = cl_config_int(env->config, "CLEAVE_SHIPPING_CARRIER_MS");
    self->carrier = (cl_operation_kind){CARRIER_KIND, carrier_work, carrier_complete, self};
    /* Without a bus (a tool that only reads) there is nothing to subscribe to. */
    if (env->bus != NULL) {
        rc = cl_bus_on(env->bus, "shipping", &orders_event_order_confirmed, on_order_confirmed,
                       self, err);
        if (rc == CL_OK) {
            rc = cl_bus_operation_kind(env->bus, "shipping", &self->carrier, err);
        }
    }
    if (rc != CL_OK) {
        shipping_destroy(self);
        return rc;
    }
    *out = self;
    return CL_OK;
}

const cl_module shipping_module = {
    .abi = CL_MODULE_ABI,
    .name = "shipping",
    .version = "1.0.0",
    .ops = &shipping_local_ops,
    .create = shipping_create,
    .start = cl_module_noop_start,
    .stop = cl_module_noop_stop,
    .destroy = shipping_destroy,
    .api = &shipping_api,
};
