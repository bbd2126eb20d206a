/* Binding several parameters in one call, so that module SQL code stays short. */
#include <stdarg.h>

#include "cleave/db.h"

static cl_status bind_list(cl_stmt *st, cl_error *err, const char *types, va_list *ap)
{
    cl_status rc = CL_OK;

    for (int i = 0; rc == CL_OK && types[i] != '\0'; i++) {
        switch (types[i]) {
        case 't':
        case 's':
            rc = cl_stmt_bind_text(st, i + 1, va_arg(*ap, const char *), err);
            break;
        case 'i':
            rc = cl_stmt_bind_i64(st, i + 1, va_arg(*ap, int64_t), err);
            break;
        case 'n':
            rc = cl_stmt_bind_null(st, i + 1, err);
            break;
        default:
            rc = cl_error_set(err, CL_INTERNAL, NULL, "bad bind type '%c'", types[i]);
            break;
        }
    }
    return rc;
}

cl_status cl_stmt_bind_all(cl_stmt *st, cl_error *err, const char *types, ...)
{
    va_list ap;
    cl_status rc;

    va_start(ap, types);
    rc = bind_list(st, err, types, &ap);
    va_end(ap);
    return rc;
}

cl_status cl_db_prepare_bind(cl_ctx *ctx, cl_db_conn *conn, const char *sql, cl_stmt **out,
                             const char *types, ...)
{
    cl_stmt *st = NULL;
    va_list ap;
    cl_status rc = cl_db_prepare(conn, sql, &st, &ctx->err);

    if (rc == CL_OK) {
        va_start(ap, types);
        rc = bind_list(st, &ctx->err, types, &ap);
        va_end(ap);
    }
    if (rc == CL_OK) {
        *out = st;
    }
    return rc;
}
