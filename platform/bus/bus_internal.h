/*
 * Internal to platform/bus: the structures the relay, the consumers, the NATS transport
 * and the operation runners share. Names start with cl__ (platform internals).
 */
#ifndef CLEAVE_BUS_INTERNAL_H
#define CLEAVE_BUS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleave/bus.h"
#include "cleave/util.h"

#define CL__BUS_SCHEMA_VERSION 6
#define CL__BUS_MAX_WORKERS    64
#define CL__BUS_MAX_RELAYS     16
/* Outbox rows a relay claims, publishes and settles per round; messages fetched per pull. */
#define CL__BUS_BATCH          256
#define CL__BUS_MAX_KINDS      8
#define CL__BUS_NAME           64

/* One message in flight: an outbox row, or a message fetched from NATS. Owned. */
typedef struct cl__msg {
    int64_t seq;         /* outbox row, 0 for a message from NATS */
    int64_t occurred_ms; /* wall clock, for the delivery latency */
    /*
     * The payload as text (an outbox row's; NULL for a message from NATS until it is needed,
     * cl__msg_text) and parsed (a message from NATS, until its first attempt takes it).
     */
    char *payload_text;
    json_t *payload;
    const char *raw; /* a message from NATS: its envelope, borrowed from the NATS message */
    size_t raw_len;
    int schema_version;
    char id[40];
    char type[CL_BUS_MAX_TYPE];
    char key[CL_BUS_MAX_KEY + 1];
    char source[CL__BUS_NAME];
    char occurred_at[32];
    char traceparent[64];
} cl__msg;

void cl__msg_free(cl__msg *m);
/*
 * m's payload as text (m->payload_text), printed from the parsed payload or the raw
 * envelope the first time it is asked for; NULL without memory. Only a message with one
 * owner (from NATS) lacks the text, so only such a message is written to here.
 */
const char *cl__msg_text(cl__msg *m);
/* The envelope as JSON text (NATS body, dead-letter row); caller frees with free(). */
char *cl__msg_encode(const cl__msg *m);
/* Parses an encoded envelope into *m (zeroed by the caller). CL_INVALID when malformed. */
cl_status cl__msg_decode(const char *data, size_t len, cl__msg *m, cl_error *err);

typedef struct cl__sub {
    char type[CL_BUS_MAX_TYPE];
    cl_bus_handler fn;     /* a raw subscription (cl_bus_subscribe), or NULL */
    const cl_event *event; /* a declared event (cl_bus_on), or NULL */
    cl_event_handler efn;  /* its handler */
    void *arg;
} cl__sub;

struct cl__module;
struct cl__job;

/* What happened to a job: handled (or skipped, or dead-lettered), or abandoned at stop. */
typedef enum cl__outcome { CL__DONE, CL__ABORTED } cl__outcome;

typedef struct cl__job {
    struct cl__job *next;
    cl__msg *msg; /* borrowed from whoever queued the job */
    const cl__sub *sub;
    void (*done)(struct cl__job *job, cl__outcome outcome);
    void *owner; /* for done */
    void *extra; /* for done (a NATS message) */
} cl__job;

typedef struct cl__worker {
    struct cl__module *mod;
    pthread_t thread;
    bool started;
    pthread_cond_t cv;
    cl__job *head;
    cl__job *tail;
    /*
     * Under mod->mu. running: the worker's thread runs jobs it took. borrowed: a relay runs
     * jobs of this worker's keys on its own thread (deliver_local), and the worker's thread
     * waits until it is done; so a key's jobs still run one at a time, in order.
     */
    bool running;
    bool borrowed;
} cl__worker;

typedef struct cl__module {
    cl_bus *bus;
    char name[CL__BUS_NAME];
    cl_db *db;
    cl__sub subs[CL_BUS_MAX_SUBS];
    int nsubs;
    const cl_operation_kind *kinds[CL__BUS_MAX_KINDS];
    int nkinds;

    pthread_mutex_t mu; /* the workers' queues */
    /* Held by a relay while it publishes a round to NATS: one chain at a time (nats.c). */
    pthread_mutex_t publish_mu;
    cl__worker workers[CL__BUS_MAX_WORKERS];
    int nworkers;
    pthread_t relays[CL__BUS_MAX_RELAYS];
    int nrelays;
    pthread_t runners[CL__BUS_MAX_WORKERS];
    int nrunners;
    pthread_t keeper; /* renews this process's operation leases (operation.c) */
    bool keeping;

    /* NATS: one durable consumer per publishing module this module subscribes to. */
    pthread_t fetchers[CL_BUS_MAX_MODULES];
    void *nats_subs[CL_BUS_MAX_MODULES];
    int nfetchers;
    atomic_int inflight;
} cl__module;

struct cl_bus {
    /* settings */
    char nats_url[256];
    int relays;
    int workers;
    int max_attempts;
    int64_t backoff_ms;
    int64_t backoff_max_ms;
    int64_t poll_ms;
    int64_t linger_ms; /* CLEAVE_BUS_LINGER_MS: see relay_main */
    int64_t ack_wait_ms;
    int64_t op_lease_ms; /* CLEAVE_BUS_OPERATION_LEASE_MS */
    int64_t op_renew_ms; /* CLEAVE_BUS_OPERATION_RENEW_MS */
    /* Owner of this process's operation leases ("<host id>/<random>") and its host id. */
    char op_host[64];
    char op_owner[100];
    char crash_at[32];
    long crash_n;
    atomic_long crash_hits;
    char poison[128];

    pthread_mutex_t mu; /* running/stopping, and the wait of idle threads */
    pthread_cond_t cv;
    bool running;
    /*
     * Set by cl_bus_stop under the kick mutex, read by workers under their module's mutex
     * and by relays and fetchers under the kick mutex: no one mutex covers every reader,
     * so it is atomic (a data race otherwise, ThreadSanitizer's report in make tsan).
     */
    atomic_bool stopping;

    cl__module modules[CL_BUS_MAX_MODULES];
    int nmodules;

    const struct cl__bus_transport *transport; /* NULL: in-process (CLEAVE_NATS_URL unset) */
    struct cl_bus *next_local; /* running in-process: the next such bus (bus.c, local_buses) */
    void *nats;                /* cl__nats, when the transport is NATS */

    atomic_llong published;
    atomic_llong relay_rounds; /* rounds that carried rows */
    atomic_llong handled;
    atomic_llong duplicates;
    atomic_llong retries;
    atomic_llong dead_lettered;
    atomic_llong latency_count;
    atomic_llong latency_sum_ms;
    atomic_llong latency_max_ms;
    atomic_llong inbox_commits;
    atomic_llong operations_finished;
};

/* The kinds of rows whose writing wakes the threads that wait for them. */
typedef enum cl__bus_kind {
    CL__BUS_OUTBOX,     /* a publish: the relays */
    CL__BUS_OPERATIONS, /* an operation created: the runners */
    CL__BUS_TIMER,      /* nothing: a thread that waits only for its time or the bus's stop */
    CL__BUS_KINDS
} cl__bus_kind;

/* Wakes the idle relays of db (an outbox row was written to it) in every bus of the process. */
void cl__bus_kick(cl_db *db);
/* Wakes the idle operation runners of db (an operation was created in it). */
void cl__bus_kick_operations(cl_db *db);
/*
 * Waits up to ms, or until a write of kind k to db (NULL: to any database) anywhere in the
 * process since *seen (the caller's own counter, 0 at first), or until the bus stops.
 * Returns -1 when stopping, 1 when kicked, else 0.
 */
int cl__bus_idle_for(cl_bus *bus, cl__bus_kind k, const cl_db *db, uint64_t *seen, int64_t ms);
/* cl__bus_idle_for of the outbox: what relays wait for. */
int cl__bus_idle(cl_bus *bus, const cl_db *db, uint64_t *seen, int64_t ms);
bool cl__bus_stopping(cl_bus *bus);

/*
 * The test-only crash hook (CLEAVE_TEST_CRASH_AT=point[:n]): at the n-th time point is
 * reached, the process kills itself with SIGKILL. A no-op unless configured.
 */
void cl__bus_crash_point(cl_bus *bus, const char *point);

/* Finds a local module by name; NULL when absent. */
cl__module *cl__bus_module(cl_bus *bus, const char *name);
/* The subscription of mod for type, or NULL. */
const cl__sub *cl__bus_sub(const cl__module *mod, const char *type);
/*
 * True when db is a module's of a bus of this process that runs in-process (no transport)
 * and no module of that bus subscribes to type: its relay would hand such an event to no
 * one and only mark it delivered (outbox.c writes it delivered instead).
 */
bool cl__bus_nobody_handles(const cl_db *db, const char *type);

/*
 * Queues the jobs of chain (linked by next, in order), each for mod's worker that owns its
 * key (per-key order), and wakes each of those workers once. Jobs that cannot be queued
 * (the bus is stopping) are done with CL__ABORTED.
 */
void cl__bus_enqueue(cl__module *mod, cl__job *chain);

/*
 * A transport other than the in-process one (the NATS transport, nats.c, in cleave_nats),
 * registered as a cl_extension of kind "bus" (cleave/extension.h). The bus reaches it
 * only through this table, so that a build without it links no NATS client.
 */
typedef struct cl__bus_transport {
    int version; /* 2 */
    cl_status (*connect)(cl_bus *bus, cl_error *err);
    /*
     * Publishes msgs[0..n) (in seq order) on subjects cleave.<source>.<event> with
     * Nats-Msg-Id, and sets ok[i] once JetStream acknowledged msgs[i]. All are in flight
     * together, each on condition that the one before it is the stream's last, so that a
     * message never gets into the stream ahead of an earlier one that was lost or refused
     * (per-key order); the caller publishes one batch of a module at a time. err says why
     * the first failure failed.
     */
    void (*publish_batch)(cl_bus *bus, const cl__msg *msgs, int n, bool *ok, cl_error *err);
    /* Starts the durable consumers of mod (one per publishing module it subscribes to). */
    cl_status (*start_consumers)(cl__module *mod, cl_error *err);
    void (*stop_consumers)(cl__module *mod);
    /* Frees the consumers' subscriptions once every worker has stopped. */
    void (*free_consumers)(cl_bus *bus);
    void (*close)(cl_bus *bus);
} cl__bus_transport;

/* Operation runners (operation.c). */
void *cl__operation_runner(void *arg);
/*
 * Renews, every op_renew_ms, the leases of the operations this process runs (one thread
 * per module with operation kinds).
 */
void *cl__operation_keeper(void *arg);

/*
 * cl_bus_schema_apply up to version target only (<= CL__BUS_SCHEMA_VERSION): what a
 * database of an older binary holds, for the tests of the upgrades.
 */
cl_status cl__bus_schema_apply_to(cl_db *db, int64_t target, cl_error *err);

/* The relay's purge of delivered rows older than its one parameter, in ms (bus.c). */
extern const char cl__bus_purge_sql[];

#endif /* CLEAVE_BUS_INTERNAL_H */
