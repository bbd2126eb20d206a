/*
 * Private to the orders implementation. Names start with orders__ because they are shared
 * between the files of src/ (and the module's own tests) only.
 */
#ifndef ORDERS_SRC_INTERNAL_H
#define ORDERS_SRC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "cleave/bus.h"
#include "inventory/inventory.h"
#include "orders/orders.h"
#include "payments/payments.h"

/* Most saga worker threads an instance runs (CLEAVE_ORDERS_WORKERS is bounded below it). */
#define ORDERS__MAX_WORKERS 64

struct orders__qnode;

/*
 * The checkout saga's executor (saga.c): a queue of order ids and the workers that run
 * them. mu guards everything but threads and nthreads, which only start and stop touch.
 */
typedef struct orders__executor {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on the monotonic clock (cl_cond_init_monotonic) */
    struct orders__qnode *head, *tail;
    size_t qlen;
    bool running, stopping;
    pthread_t threads[ORDERS__MAX_WORKERS];
    int nthreads;
} orders__executor;

/* An instance of orders (cleave/module.h): everything it runs on. */
struct orders_self {
    cl_db *db;                /* borrowed from the host for the instance's life */
    cl_bus *bus;              /* borrowed; NULL without a bus: no event is published then */
    const cl_handle *catalog; /* the modules it calls, borrowed from the host */
    const cl_handle *inventory;
    const cl_handle *payments;
    int64_t step_timeout_ms; /* CLEAVE_ORDERS_STEP_TIMEOUT_MS */
    int64_t call_timeout_ms; /* CLEAVE_ORDERS_CALL_TIMEOUT_MS */
    int workers;             /* CLEAVE_ORDERS_WORKERS */
    bool serving;            /* run the saga executor (cl_module_env.serving) */
    orders__executor saga;
};

/* Longest order id ("ord-" and 24 hex digits) and payment id ("pay-" and that), with NUL. */
#define ORDERS__ID_SIZE 32

/*
 * Reads order id into *out (zeroed by the caller); history too when asked. CL_NOT_FOUND,
 * also when owner is not NULL and the order is not that principal's.
 */
cl_status orders__load(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool history,
                       const char *owner, orders_order *out);
/* Appends an entry to the saga log of order id, in the caller's transaction. */
cl_status orders__log(cl_ctx *ctx, cl_db_conn *conn, const char *id, const char *step,
                      const char *outcome, const char *detail);

/* --- the saga executor (saga.c) --------------------------------------------------- */

/* Makes self's executor (stopped); CL_INTERNAL when the system has no room for it. */
cl_status orders__saga_init(struct orders_self *self, cl_error *err);
/* Frees what orders__saga_init made, after orders__saga_stop. */
void orders__saga_fini(struct orders_self *self);
/* Starts the workers and queues every order that is not final. */
cl_status orders__saga_start(struct orders_self *self, cl_error *err);
/* Stops the workers; a saga between steps stays where it is, for the next start. */
void orders__saga_stop(struct orders_self *self);
/* True when the executor runs and can take one more order. */
bool orders__saga_accepting(struct orders_self *self);
/* Hands order id, committed as pending, to the executor. */
void orders__saga_enqueue(struct orders_self *self, const char *id, const cl_ctx *ctx);

#endif /* ORDERS_SRC_INTERNAL_H */
