/* The greeter's implementation: one table in its own database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeter/greeter.h"

/* An instance of the greeter: its database. */
struct greeter_self {
    cl_db *db;
};

CL_LOCAL_DEFINE(greeter, GREETER_OPERATIONS, GREETER_OPS_VERSION)

static cl_status greeter_local_greet(struct greeter_self *self, cl_ctx *ctx,
                                     const greeter_request *req, greeter_greeting *resp)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;
    char message[GREETER_NAME_MAX + 16];
    cl_status rc;

    if (req->name == NULL || req->name[0] == '\0' || strlen(req->name) > GREETER_NAME_MAX) {
        return cl_error_set(&ctx->err, CL_INVALID, "name", "name must be 1-%d bytes",
                            GREETER_NAME_MAX);
    }
    rc = cl_db_acquire(self->db, ctx, &conn, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, "INSERT INTO greetings (name) VALUES (?)", &st, "t",
                                req->name);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare_bind(ctx, conn, "SELECT count(*) FROM greetings", &st, "");
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK) {
        snprintf(message, sizeof(message), "hello, %s", req->name);
        resp->count = cl_stmt_i64(st, 0);
        resp->message = strdup(message);
        rc = resp->message != NULL ? CL_OK
                                   : cl_error_set(&ctx->err, CL_INTERNAL, NULL, "out of memory");
    }
    cl_db_release(conn);
    return rc;
}

static void greeter_destroy(void *self)
{
    free(self);
}

static cl_status greeter_create(const cl_module_env *env, void **out, cl_error *err)
{
    struct greeter_self *self;

    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "greeter needs its database");
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    self->db = env->db;
    *out = self;
    return CL_OK;
}

const cl_module greeter_module = {
    .abi = CL_MODULE_ABI,
    .name = "greeter",
    .version = "1.0.0",
    .ops = &greeter_local_ops,
    .create = greeter_create,
    .start = cl_module_noop_start,
    .stop = cl_module_noop_stop,
    .destroy = greeter_destroy,
    .api = &greeter_api,
};
