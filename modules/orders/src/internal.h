/*
 * Private to the orders implementation. Names start with orders__ because they are shared
 * between the files of src/ (and the module's own tests) only.
 */
#ifndef ORDERS_SRC_INTERNAL_H
#define ORDERS_SRC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "inventory/inventory.h"
#include "orders/orders.h"
#include "payments/payments.h"

/* What init hands the implementation: borrowed for the process's life. */
typedef struct orders__env {
    cl_db *db;
    cl_bus *bus; /* NULL without a bus: no event is published then */
    const catalog_ops *catalog;
    const inventory_ops *inventory;
    const payments_ops *payments;
    int64_t step_timeout_ms; /* CLEAVE_ORDERS_STEP_TIMEOUT_MS */
    int64_t call_timeout_ms; /* CLEAVE_ORDERS_CALL_TIMEOUT_MS */
    int workers;             /* CLEAVE_ORDERS_WORKERS */
    bool serving;            /* run the saga executor (cl_module_env.serving) */
} orders__env;

extern orders__env orders__deps;

/* Longest order id ("ord-" and 24 hex digits) and payment id ("pay-" and that), with NUL. */
#define ORDERS__ID_SIZE 32

/* Steps st to its end. */
cl_status orders__drain(cl_ctx *ctx, cl_stmt *st);
/* Reads order id into *out (zeroed by the caller); history too when asked. CL_NOT_FOUND. */
cl_status orders__load(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool history,
                       orders_order *out);
/* Appends an entry to the saga log of order id, in the caller's transaction. */
cl_status orders__log(cl_ctx *ctx, cl_db_conn *conn, const char *id, const char *step,
                      const char *outcome, const char *detail);

/* --- the saga executor (saga.c) --------------------------------------------------- */

/* Starts the workers and queues every order that is not final. */
cl_status orders__saga_start(cl_error *err);
/* Stops the workers; a saga between steps stays where it is, for the next start. */
void orders__saga_stop(void);
/* True when the executor runs and can take one more order. */
bool orders__saga_accepting(void);
/* Hands order id, committed as pending, to the executor. */
void orders__saga_enqueue(const char *id);

#endif /* ORDERS_SRC_INTERNAL_H */
