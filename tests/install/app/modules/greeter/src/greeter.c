/* The greeter's implementation: one table in its own database. */
#include <stdio.h>
#include <string.h>

#include "greeter/greeter.h"

static cl_db *greeter_db;

static cl_status greet(cl_ctx *ctx, const greeter_request *req, greeter_greeting *resp)
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
    rc = cl_db_acquire(greeter_db, ctx, &conn, &ctx->err);
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

static const greeter_ops greeter_local_ops = {.version = GREETER_OPS_VERSION, .greet = greet};

static cl_status greeter_init(const cl_module_env *env, cl_error *err)
{
    if (env == NULL || env->db == NULL) {
        return cl_error_set(err, CL_INVALID, "db", "greeter needs its database");
    }
    greeter_db = env->db;
    return CL_OK;
}

const cl_module greeter_module = {
    .abi = CL_MODULE_ABI,
    .name = "greeter",
    .version = "1.0.0",
    .ops = &greeter_local_ops,
    .init = greeter_init,
    .start = cl_module_noop_start,
    .stop = cl_module_noop_stop,
};
