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
 * A get_order call waiting for an order's saga to end (orders__saga_watch): id, borrowed
 * for as long as it is watched; ended once that saga ended here; cv, on the monotonic clock,
 * is signalled then; in_flight when, as it was registered, the saga waited or ran in this
 * executor and the caller may see the order (so it is not final yet, and reading it before
 * waiting would find it so). Lives on the caller's stack, linked into the executor under mu.
 */
typedef struct orders__waiter {
    struct orders__waiter *next;
    const char *id;
    pthread_cond_t cv;
    bool ended;
    bool in_flight;
} orders__waiter;

/* Longest order id ("ord-" and 24 hex digits) and payment id ("pay-" and that), with NUL. */
#define ORDERS__ID_SIZE          32
/* A host id (CLEAVE_HOST_ID, truncated), and an executor's: "<host id>/<32 hex digits>". */
#define ORDERS__HOST_ID_SIZE     64
#define ORDERS__EXECUTOR_ID_SIZE (ORDERS__HOST_ID_SIZE + 34)

/*
 * The checkout saga's executor (saga.c): a queue of order ids, the workers that run them
 * and the sweeper that queues sagas whose lease lapsed. mu guards everything but id,
 * threads, nthreads and sweeper, which only init, start and stop touch.
 */
typedef struct orders__executor {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* stop, for timed pauses; on the monotonic clock */
    pthread_cond_t work; /* an order was queued: one idle worker takes it */
    struct orders__qnode *head, *tail;
    size_t qlen;
    orders__waiter *waiters; /* get_order calls waiting for a saga's end */
    bool running, stopping;
    pthread_t threads[ORDERS__MAX_WORKERS];
    int nthreads;
    pthread_t sweeper;
    bool sweeping; /* the sweeper thread was started */
    /*
     * The orders this executor runs now, one thread per order in a process: a worker's in
     * the first ORDERS__MAX_WORKERS slots, a waiting placer's (orders__saga_run_here) in
     * the rest, at most CLEAVE_ORDERS_WORKERS of those at once (running_here).
     */
    char active[2 * ORDERS__MAX_WORKERS][ORDERS__ID_SIZE];
    /* Whose each is, as placed here (orders__saga_enqueue's ctx), or NULL: not known. */
    const char *active_owner[2 * ORDERS__MAX_WORKERS];
    int running_here;
    /* Owner of this executor's leases, random per instance, and its host (ADR 0034). */
    char id[ORDERS__EXECUTOR_ID_SIZE];
    char host[ORDERS__HOST_ID_SIZE];
} orders__executor;

/*
 * What an executor holds on one order's saga: its id as lease owner and the fencing
 * epoch of its acquisition. Every write of the saga is conditional on both.
 */
typedef struct orders__fence {
    const char *owner;
    int64_t epoch;
} orders__fence;

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
    int64_t lease_ms;        /* CLEAVE_ORDERS_LEASE_MS */
    int64_t renew_ms;        /* CLEAVE_ORDERS_LEASE_RENEW_MS */
    bool postgres;           /* the database's dialect: its clock reads differently */
    bool serving;            /* run the saga executor (cl_module_env.serving) */
    orders__executor saga;
};

/*
 * Reads order id into *out (zeroed by the caller); history too when asked. CL_NOT_FOUND,
 * also when owner is not NULL and the order is not that principal's.
 */
cl_status orders__load(cl_ctx *ctx, cl_db_conn *conn, const char *id, bool history,
                       const char *owner, orders_order *out);
/*
 * Appends an entry to the saga log of order id, in the caller's transaction, naming the
 * executor and epoch of fence (NULL: none, for the entry place_order writes).
 */
cl_status orders__log(cl_ctx *ctx, cl_db_conn *conn, const char *id, const orders__fence *fence,
                      const char *step, const char *outcome, const char *detail);

/* --- leases (saga.c; ADR 0034) ---------------------------------------------- */

/*
 * Takes the lease of order id's saga for owner (of host) for self->lease_ms, on the
 * database's clock, when the order is in flight and its lease is free, lapsed or held
 * under the same host id (this process's, or its dead predecessor's); the epoch goes up
 * by one. *taken says whether it was; fence->epoch is the new epoch.
 */
cl_status orders__lease_take(struct orders_self *self, cl_ctx *ctx, const char *id,
                             const char *host, const char *owner, orders__fence *fence,
                             bool *taken);
/* One entry of a saga's log: the step, its outcome ("ok", "failed", "retrying"), a detail. */
typedef struct orders__entry {
    const char *step, *outcome, *detail;
} orders__entry;

/*
 * Records, in one transaction, that the saga of order id moves to step next_step with
 * status (reason, when not NULL, is set), renews the lease, and appends the nlog entries
 * of log in order, all only while fence still holds the lease: CL_CONFLICT with field
 * "lease" when another executor took it over (nothing is written then). confirmed, when
 * not NULL, is published as orders.order_confirmed in the transaction. ended, when not
 * NULL, receives the order as the transaction leaves it, with its history, read in it (its
 * pages are the writer's, cached): zeroed unless the record committed.
 */
cl_status orders__saga_record(struct orders_self *self, cl_ctx *ctx, const char *id,
                              const orders__fence *fence, const char *next_step, const char *status,
                              const char *reason, const orders__entry *log, size_t nlog,
                              const orders_order *confirmed, orders_order *ended);
/*
 * The database's clock (cleave/db.h): lease expiry is read on one clock, the database's,
 * never on the hosts' own (ADR 0034). Each SQL that reads it comes in both
 * dialects, chosen by orders_self.postgres.
 */
#define ORDERS__NOW_SQLITE CL_DB_NOW_MS_SQLITE
#define ORDERS__NOW_PG     CL_DB_NOW_MS_POSTGRES

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
/*
 * Hands order id, committed as pending, to the executor. leased_ms (cl_now_ms), when not 0,
 * says this executor placed the order holding its lease (epoch 0) from that time on: a
 * worker that starts it within renew_ms runs it under that lease instead of taking it
 * again, and from placed (may be NULL), the order as its placing transaction committed it,
 * copied here, instead of reading it back. ctx (may be NULL) is the checkout's, whose trace
 * the saga continues.
 */
void orders__saga_enqueue(struct orders_self *self, const char *id, int64_t leased_ms,
                          const orders_order *placed, const cl_ctx *ctx);
/*
 * Runs order id's saga, placed as orders__saga_enqueue says, on the caller's thread when
 * the caller waits for its end (ctx->wait_ms) long enough for a step's call, the executor
 * runs and fewer sagas than it has workers run on callers' threads already; otherwise, and
 * from the first retry the saga would pause for (or once the wait leaves no room for
 * another call), a worker takes it over from the step it recorded last. True when the
 * saga ended here; *ended (zeroed by the caller) then holds the order as its last record
 * left it, with its history, unless that read failed (ended->id NULL).
 */
bool orders__saga_run_here(struct orders_self *self, const char *id, int64_t leased_ms,
                           const orders_order *placed, const cl_ctx *ctx, orders_order *ended);
/*
 * Registers w to hear when the saga of order id ends in this executor (a saga run by
 * another host is not heard of: the caller reads the order again now and then), and says
 * whether it is in flight here for a caller who sees only owner's orders (owner NULL: all
 * of them). id is borrowed until orders__saga_unwatch. CL_INTERNAL when the system has no
 * room for it.
 */
cl_status orders__saga_watch(struct orders_self *self, orders__waiter *w, const char *id,
                             const char *owner, cl_error *err);
/*
 * Waits until w's saga ended (since the last call), ms passed or the executor stops; false
 * when it stopped: the caller waits no longer.
 */
bool orders__saga_await(struct orders_self *self, orders__waiter *w, int64_t ms);
/* Unlinks w (registered by orders__saga_watch) and frees what it holds. */
void orders__saga_unwatch(struct orders_self *self, orders__waiter *w);

#endif /* ORDERS_SRC_INTERNAL_H */
