/*
 * cleave/bus.h - asynchronous messaging: transactional outbox, idempotent inbox, relays,
 * retries with a dead-letter table, and long-running operations (ADR 0012).
 *
 * Publishing: a module inserts an event into the outbox table of its OWN database with
 * cl_bus_publish, on the connection and inside the transaction of its business write, so
 * the event exists exactly when the write does.
 *
 * Delivery: relays read each publishing module's outbox in order and deliver every row,
 * at least once, never re-ordered within its key:
 *   - in process (the embedded default): to the handlers of the local subscribers, run by
 *     a bounded pool of worker threads per subscriber;
 *   - over NATS JetStream when CLEAVE_NATS_URL is set: a stream per publishing module
 *     (subjects cleave.<module>.>), a durable consumer per subscribing module, explicit
 *     acks, the envelope id as Nats-Msg-Id.
 * A consumer runs each handler in a transaction on the subscriber's own database that also
 * records the message id in its inbox table; a message already in the inbox is skipped,
 * so effects happen once. A failing handler is retried with exponential backoff and full
 * jitter (cl_retry_backoff_ms); after CLEAVE_BUS_MAX_ATTEMPTS the message goes to the
 * subscriber's dead-letter table with its last error (cl_bus_dlq_*).
 *
 * Long-running operations: cl_operation_create queues work in the module's own database
 * (in the caller's transaction); the bus runs it on a worker thread through the kind's
 * registered functions and records pending -> running -> succeeded | failed.
 *
 * The tables (cl_outbox, cl_inbox, cl_dead_letters, cl_operations) belong to the platform
 * and are created in every local module's database by cl_bus_schema_apply, versioned in
 * the table cl_bus_schema.
 */
#ifndef CLEAVE_BUS_H
#define CLEAVE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/schema.h"
#include "cleave/status.h"

/* Limits on what an event may carry; larger values are CL_INVALID. */
#define CL_BUS_MAX_TYPE    96
#define CL_BUS_MAX_KEY     128
#define CL_BUS_MAX_PAYLOAD ((size_t)256 * 1024)
/* Subscriptions and operation kinds per module. */
#define CL_BUS_MAX_SUBS    16
#define CL_BUS_MAX_MODULES 16

/* --- schema ----------------------------------------------------------------------- */

/*
 * Creates or upgrades the bus tables in db (one transaction per schema version, recorded
 * in cl_bus_schema). Safe to call on every start. CL_INTERNAL when the DDL fails.
 */
cl_status cl_bus_schema_apply(cl_db *db, cl_error *err);
/* CL_OK when db has the bus tables at the version this binary expects; else CL_CONFLICT. */
cl_status cl_bus_schema_check(cl_db *db, cl_error *err);

/* --- publishing ------------------------------------------------------------------- */

/*
 * Inserts an event into the outbox of the database conn belongs to, inside the caller's
 * open transaction (the event commits or rolls back with the business write).
 * type is "<module>.<event>" ("widgets.widget_created"); key is the aggregate id that
 * sequences the events (events with the same key are delivered in publish order); payload
 * is a JSON object, borrowed. The envelope gets a fresh unique id, the wall-clock time,
 * schema version 1 and ctx's trace context (ctx may be NULL).
 * CL_INVALID for a malformed type, key or payload; db errors as cleave/db.h.
 */
cl_status cl_bus_publish(cl_db_conn *conn, const cl_ctx *ctx, const char *type, const char *key,
                         json_t *payload, cl_error *err);
/* As cl_bus_publish with an explicit payload schema version (>= 1). */
cl_status cl_bus_publish_version(cl_db_conn *conn, const cl_ctx *ctx, const char *type,
                                 const char *key, int schema_version, json_t *payload,
                                 cl_error *err);

/* --- events declared once ------------------------------------------------------------ */
/*
 * A module declares the events it publishes once, in its public header, next to its
 * operations: an X-macro list of X(M, name, version, Payload), Payload being a type
 * declared with CL_TYPE_DECLARE (cleave/schema.h):
 *
 *     #define WIDGETS_EVENTS(X, M) X(M, widget_made, 1, widgets_widget)
 *     CL_EVENTS_DECLARE(widgets, WIDGETS_EVENTS)      (in the public header)
 *     CL_EVENTS_DEFINE(widgets, WIDGETS_EVENTS)       (in one .c file of its interface)
 *
 * which gives, per event, the descriptor widgets_event_widget_made and a typed
 * widgets_publish_widget_made(conn, ctx, key, payload, err), plus the list
 * widgets_events[widgets_nevents]. The publisher encodes and every subscriber decodes
 * with the same generated codec, so the asynchronous contract is as checked as the
 * synchronous one. version is the payload's schema version: a compatible change (a new
 * optional field) keeps it, anything else bumps it.
 */

/* The prefix of every NATS subject: an event of type "<module>.<name>" travels on
 * CL_BUS_SUBJECT_PREFIX "<module>.<name>". */
#define CL_BUS_SUBJECT_PREFIX "cleave."

typedef struct cl_event {
    const char *module;     /* the publishing module */
    const char *name;       /* the event's name within it */
    const char *type;       /* "<module>.<name>": the envelope's type */
    const char *subject;    /* the NATS subject it travels on */
    int version;            /* the payload's schema version */
    const cl_type *payload; /* the payload's declared type */
} cl_event;

/*
 * Encodes payload (of ev->payload's type, borrowed) and inserts the event into the outbox
 * inside the caller's transaction on conn, as cl_bus_publish_version with ev's type and
 * version. CL_INVALID for a bad key; CL_INTERNAL when out of memory; db errors.
 */
cl_status cl_event_publish(cl_db_conn *conn, const cl_ctx *ctx, const cl_event *ev, const char *key,
                           const void *payload, cl_error *err);

#define CL__EVENT_EXTERN(M, name, version, Payload) extern const cl_event M##_event_##name;
#define CL__EVENT_PUBLISH(M, name, version, Payload)                                               \
    static inline cl_status M##_publish_##name(cl_db_conn *conn, const cl_ctx *ctx,                \
                                               const char *key, const Payload *payload,            \
                                               cl_error *err)                                      \
    {                                                                                              \
        return cl_event_publish(conn, ctx, &M##_event_##name, key, payload, err);                  \
    }
#define CL__EVENT_DEFINE(M, name, version, Payload)                                                \
    const cl_event M##_event_##name = {                                                            \
        #M, #name, #M "." #name, CL_BUS_SUBJECT_PREFIX #M "." #name, version, &Payload##_type};
#define CL__EVENT_REF(M, name, version, Payload) &M##_event_##name,

/* In the public header: the descriptors, the typed publish functions and the list. */
#define CL_EVENTS_DECLARE(M, LIST)                                                                 \
    LIST(CL__EVENT_EXTERN, M)                                                                      \
    LIST(CL__EVENT_PUBLISH, M)                                                                     \
    extern const cl_event *const M##_events[];                                                     \
    extern const size_t M##_nevents;

/* In one .c file of the module's interface library. */
#define CL_EVENTS_DEFINE(M, LIST)                                                                  \
    LIST(CL__EVENT_DEFINE, M)                                                                      \
    const cl_event *const M##_events[] = {LIST(CL__EVENT_REF, M)};                                 \
    const size_t M##_nevents = sizeof(M##_events) / sizeof(M##_events[0]);

/* --- the bus ---------------------------------------------------------------------- */

typedef struct cl_bus cl_bus;

/* An event as a handler sees it. Everything is borrowed for the length of the call. */
typedef struct cl_envelope {
    const char *id;          /* unique message id (also Nats-Msg-Id) */
    const char *type;        /* "<module>.<event>" */
    const char *key;         /* ordering key: the aggregate id */
    const char *source;      /* the publishing module */
    const char *occurred_at; /* RFC 3339 UTC, when the business write happened */
    const char *traceparent; /* W3C trace context of the publisher, or "" */
    int schema_version;
    int attempt; /* 1 for the first delivery to this handler in this process */
    json_t *payload;
} cl_envelope;

/*
 * A subscriber's handler. It runs inside a transaction on conn, a connection to the
 * subscriber's own database, which also records env->id in the inbox; it must not commit
 * or roll back. CL_OK commits; anything else rolls back and counts as a failed attempt
 * (ctx->err says why).
 */
typedef cl_status (*cl_bus_handler)(void *arg, cl_ctx *ctx, const cl_envelope *env,
                                    cl_db_conn *conn);

/*
 * The bus of one process. Reads its settings from cfg (CLEAVE_NATS_URL, CLEAVE_BUS_*,
 * CLEAVE_TEST_*). Owned by the caller (cl_bus_free). CL_INVALID for a bad setting.
 */
cl_status cl_bus_new(const cl_config *cfg, cl_bus **out, cl_error *err);
/* Stops it if running and frees it. NULL is a no-op. */
void cl_bus_free(cl_bus *bus);
/* "in-process" or "nats". */
const char *cl_bus_transport(const cl_bus *bus);

/* Registers a local module and its database (borrowed; must outlive the bus). */
cl_status cl_bus_add_module(cl_bus *bus, const char *module, cl_db *db, cl_error *err);

/*
 * Declares, at module init, that module handles events of type with fn (arg is passed
 * back). One handler per module and type. CL_INVALID for an unknown module, a malformed
 * type or a duplicate; CL_CONFLICT once the bus runs.
 */
cl_status cl_bus_subscribe(cl_bus *bus, const char *module, const char *type, cl_bus_handler fn,
                           void *arg, cl_error *err);

/*
 * A subscriber's handler for a declared event: payload is the decoded payload, of the
 * event's declared type (cast it to that type), borrowed for the call; env->payload is NULL.
 * Otherwise as cl_bus_handler.
 */
typedef cl_status (*cl_event_handler)(void *arg, cl_ctx *ctx, const cl_envelope *env,
                                      const void *payload, cl_db_conn *conn);

/*
 * As cl_bus_subscribe, for a declared event: the bus decodes each payload with the
 * event's generated codec before calling fn. A message this subscriber cannot
 * understand - a payload that does not decode as the declared type, or a schema version
 * newer than the declared one - is not retried: it goes to the dead-letter table at once,
 * with a last error naming the event, the version and the offending field.
 */
cl_status cl_bus_on(cl_bus *bus, const char *module, const cl_event *ev, cl_event_handler fn,
                    void *arg, cl_error *err);

/*
 * Starts the relays, consumers and operation runners (threads, a bounded number per
 * module). CL_UNAVAILABLE when NATS is configured and cannot be reached.
 */
cl_status cl_bus_start(cl_bus *bus, cl_error *err);
/*
 * Stops every thread: in-flight handlers finish, retries waiting for their backoff are
 * abandoned (their messages stay undelivered and are delivered again on the next start).
 * Idempotent.
 */
void cl_bus_stop(cl_bus *bus);

/* --- figures (for the observability work) ----------------------------------------- */

typedef struct cl_bus_stats {
    int64_t outbox_backlog; /* undelivered outbox rows in the local modules' databases */
    int64_t dead_letters;   /* rows in the local modules' dead-letter tables */
    int64_t published;      /* rows relayed by this process since start */
    int64_t handled;        /* messages handled (committed) since start */
    int64_t duplicates;     /* deliveries skipped because the inbox had the id */
    int64_t retries;        /* failed handler attempts that were retried */
    int64_t dead_lettered;  /* messages moved to a dead-letter table since start */
    int64_t latency_count;  /* handled messages measured below */
    int64_t latency_avg_ms; /* publish (business commit) to handled, wall clock */
    int64_t latency_max_ms;
    int64_t inbox_commits;   /* workers' inbox transactions committed (one message or a batch) */
    int64_t operations_open; /* long-running operations pending or running, local databases */
    int64_t operations_finished; /* operations this process recorded as succeeded or failed */
    int64_t relay_rounds; /* relay rounds that carried rows: published / relay_rounds a round */
} cl_bus_stats;

/* Fills *out (queries each local database for its counts below). */
cl_status cl_bus_stats_get(cl_bus *bus, cl_bus_stats *out, cl_error *err);

/* What one database's bus tables hold now. */
typedef struct cl_bus_db_counts {
    int64_t outbox_backlog;  /* outbox rows not marked delivered */
    int64_t dead_letters;    /* rows of the dead-letter table */
    int64_t operations_open; /* long-running operations pending or running (any process's) */
} cl_bus_db_counts;

/* The counts of one database, without a running bus (the CLI). */
cl_status cl_bus_db_count(cl_db *db, cl_bus_db_counts *out, cl_error *err);

/* --- dead letters ----------------------------------------------------------------- */

#define CL_DEAD_LETTER(X, T)                                                                       \
    X(T, I64, id, _)                                                                               \
    X(T, STR, message_id, _)                                                                       \
    X(T, STR, type, _)                                                                             \
    X(T, STR, key, _)                                                                              \
    X(T, STR, source, _)                                                                           \
    X(T, I64, attempts, _)                                                                         \
    X(T, STR, last_error, _)                                                                       \
    X(T, STR, failed_at, _)
CL_TYPE_DECLARE(cl_dead_letter, CL_DEAD_LETTER)

#define CL_DEAD_LETTER_LIST(X, T) X(T, OBJS, items, cl_dead_letter)
CL_TYPE_DECLARE(cl_dead_letter_list, CL_DEAD_LETTER_LIST)

/* Lists the dead letters of db, oldest first (at most 1000). *out: cl_schema_free. */
cl_status cl_bus_dlq_list(cl_db *db, cl_dead_letter_list *out, cl_error *err);
/*
 * Delivers dead letter id of module again through the handler module subscribed with
 * (which must be registered on bus): handler, inbox row and removal of the dead letter in
 * one transaction. CL_NOT_FOUND for an unknown id; the handler's status when it fails
 * again (the dead letter stays, with the new error and one more attempt).
 */
cl_status cl_bus_dlq_replay(cl_bus *bus, const char *module, int64_t id, cl_error *err);
/* Deletes dead letter id from db. CL_NOT_FOUND when there is none. */
cl_status cl_bus_dlq_drop(cl_db *db, int64_t id, cl_error *err);

/* --- long-running operations ------------------------------------------------------ */

/*
 * An operation as callers see it. status: "pending", "running", "succeeded", "failed".
 * result: the JSON text of the result once succeeded; problem_status (a wire status name)
 * and problem_detail once failed.
 */
#define CL_OPERATION(X, T)                                                                         \
    X(T, STR, id, _)                                                                               \
    X(T, STR, kind, _)                                                                             \
    X(T, STR, status, _)                                                                           \
    X(T, STR, created_at, _)                                                                       \
    X(T, STR, updated_at, _)                                                                       \
    X(T, STR, result, _)                                                                           \
    X(T, STR, problem_status, _)                                                                   \
    X(T, STR, problem_detail, _)
CL_TYPE_DECLARE(cl_operation, CL_OPERATION)

#define CL_OPERATION_REF(X, T) X(T, STR, id, _)
CL_TYPE_DECLARE(cl_operation_ref, CL_OPERATION_REF)

/* The name of the operation every module with long-running work adds to its table. */
#define CL_OPERATION_GET    "get_operation"
/* Longest operation id: "<module>-" and 32 hex digits. */
#define CL_OPERATION_ID_MAX 96

/*
 * The work of one kind of operation, registered by the module at init.
 *   work:     runs outside any transaction, may take long; input is borrowed. On CL_OK
 *             *result receives a new JSON object (or NULL). Must be safe to run again for
 *             the same operation (a restart resumes an operation that was running).
 *   complete: runs in the transaction that marks the operation succeeded, on conn (the
 *             module's database), so that the work's effect and the status commit
 *             together; may publish events. May be NULL.
 * Failing statuses mark the operation failed with that status and message.
 */
typedef struct cl_operation_kind {
    const char *kind; /* "widgets.paint_job" */
    cl_status (*work)(void *arg, const char *op_id, json_t *input, json_t **result, cl_error *err);
    cl_status (*complete)(void *arg, cl_db_conn *conn, const char *op_id, json_t *input,
                          json_t *result, cl_error *err);
    void *arg;
} cl_operation_kind;

/* Registers kind (borrowed, static storage) for module at init. */
cl_status cl_bus_operation_kind(cl_bus *bus, const char *module, const cl_operation_kind *kind,
                                cl_error *err);

/*
 * Queues an operation of kind for module inside the caller's transaction on conn; input
 * is borrowed. id receives "<module>-<32 hex>". The bus runs it after the commit.
 */
cl_status cl_operation_create(cl_db_conn *conn, const char *module, const char *kind, json_t *input,
                              char id[CL_OPERATION_ID_MAX], cl_error *err);
/* Reads operation id from conn's database into *out (cl_schema_free). CL_NOT_FOUND. */
cl_status cl_operation_get(cl_db_conn *conn, const char *id, cl_operation *out, cl_error *err);

/* --- test-only crash hook --------------------------------------------------------- */
/*
 * Tests only (CLEAVE_TEST_CRASH_AT=point[:n]): kills the process with SIGKILL, as a power
 * cut would, the n-th time (default 1) execution reaches point. Besides the bus's own
 * points, a module may declare points named "<module>.<point>" ("widgets.after-paint")
 * and mark them with this call. A no-op unless configured; bus may be NULL.
 */
void cl_bus_crash_point(cl_bus *bus, const char *point);

#endif /* CLEAVE_BUS_H */
