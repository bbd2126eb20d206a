/*
 * The bus: relays that read each module's outbox in order, worker pools that run the
 * subscribers' handlers in inbox transactions, retries with backoff, dead letters.
 *
 * Ordering: a relay claims, in order, a prefix of the undelivered rows of keys no other
 * relay holds a lease on (ADR 0043), so a later event of a key cannot overtake an earlier
 * one, however many relays run; a claimed row is leased to its relay. A subscriber's
 * worker is chosen by a hash of the key, and each worker runs its queue in order, in
 * batches of one transaction with a savepoint per message.
 *
 * Durability: a row is marked delivered only after every local subscriber has committed
 * its handler's transaction (or dead-lettered it), or after JetStream acknowledged it; a
 * crash in between delivers it again and the subscriber's inbox skips it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus_internal.h"
#include "cleave/extension.h"
#include "cleave/log.h"
#include "cleave/metrics.h"
#include "cleave/retry.h"
#include "cleave/trace.h"

/*
 * Process-wide wake-ups, per kind of row (cl__bus_kind) and per database: a publish wakes
 * the relays of the database it was written to, an operation created the runners of its
 * database; no other thread, which would only look and find nothing (a checkout's three
 * publishes woke every module's relays and runners, a query each). A slot with db NULL
 * hears every kick of its kind. Slots are made on first use and kept (a database freed and
 * another allocated at its address costs a spurious wake-up at most); with every slot
 * taken, a waiter uses its kind's NULL slot. The cvs measure their timed waits on the
 * monotonic clock; kick_once sets that up before first use. kick_mu guards them all.
 */
#define KICK_SLOTS 64
static pthread_mutex_t kick_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static struct kick_slot {
    bool used;
    cl__bus_kind kind;
    const cl_db *db;
    pthread_cond_t cv;
    uint64_t gen;
    int waiters; /* threads in cl__bus_idle_for's wait */
} kicks[KICK_SLOTS];

/*
 * The buses of this process that run in-process (no transport), chained by next_local from
 * cl_bus_start to cl_bus_stop: publishers ask them whether anything handles a type
 * (cl__bus_nobody_handles). A bus's modules and subscriptions do not change while it runs.
 */
static pthread_rwlock_t local_mu = PTHREAD_RWLOCK_INITIALIZER;
static cl_bus *local_buses;

/* A lease outlives any batch by far; leases of a previous process are cleared at start. */
#define LEASE_MS        30000
#define RETAIN_MS       ((int64_t)3600 * 1000)
#define HANDLER_TIMEOUT 30000
/*
 * How long a lone relay may leave rows it delivered unmarked (relay_main): the marks of many
 * rounds go in one write. A crash redelivers at most that much, which the inboxes skip.
 */
#define MARK_MS         100

/*
 * A relay claims, in seq order, undelivered rows of the keys that no live lease holds:
 * several rows of a key at once (a prefix of that key's undelivered rows, since a key
 * qualifies or not as a whole), so that one round moves a batch, not one row per key. A
 * key some relay is working on is left alone until that relay settles it, which is what
 * keeps per-key order with any number of relays. The leased keys are read once per claim
 * (an uncorrelated subquery on the index of leases), not once per candidate row.
 */
#define CLAIM_COLUMNS                                                                              \
    "seq, o.id, o.type, o.msg_key, o.occurred_at, o.occurred_ms, o.schema_version, "               \
    "o.traceparent, o.payload"
#define CLAIM_FREE                                                                                 \
    "o.delivered_ms IS NULL AND o.msg_key NOT IN (SELECT l.msg_key FROM cl_outbox l "              \
    "WHERE l.delivered_ms IS NULL AND l.lease_until >= ?)"
static const char claim_sql[] = "SELECT o." CLAIM_COLUMNS " FROM cl_outbox o WHERE " CLAIM_FREE
                                " AND o.seq > ? ORDER BY o.seq LIMIT ?";
/*
 * PostgreSQL: relays of a module take turns to claim (a transaction-scoped advisory lock),
 * as SQLite's single writer makes them. Row locks with SKIP LOCKED cannot do it: a relay
 * would skip the rows of a key another relay is claiming and take that key's later rows.
 */
static const char claim_lock_pg_sql[] =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.cl_outbox'))";
/* Rows are leased and settled 16 at a time; unused places are bound to seq -1 (no row). */
#define SEQS_PER_UPDATE 16
#define SEQ_LIST        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
static const char lease_sql[] = "UPDATE cl_outbox SET lease_until = ? WHERE seq IN " SEQ_LIST;
static const char release_sql[] = "UPDATE cl_outbox SET lease_until = NULL WHERE seq IN " SEQ_LIST;
static const char delivered_sql[] =
    "UPDATE cl_outbox SET delivered_ms = ?, lease_until = NULL WHERE seq IN " SEQ_LIST;
/* A lone relay's rows delivered so far, marked at once (relay_main, MARK_MS). */
static const char delivered_upto_sql[] =
    "UPDATE cl_outbox SET delivered_ms = ? WHERE delivered_ms IS NULL AND seq <= ?";
/* Anything to relay? Asked without a transaction, so an idle relay takes no write lock. */
static const char peek_sql[] = "SELECT 1 FROM cl_outbox WHERE delivered_ms IS NULL LIMIT 1";
static const char clear_leases_sql[] = "UPDATE cl_outbox SET lease_until = NULL "
                                       "WHERE delivered_ms IS NULL AND lease_until IS NOT NULL";
/*
 * The delivered rows older than ? go, oldest first: up to the first row that stays (not
 * delivered yet, or delivered since), so that the purge reads what it deletes and one row
 * more. Asked for every old delivered row, it read the whole outbox each minute, nothing
 * indexing delivered_ms (ADR 0047), and left it in a connection's page cache. A row that
 * waits behind a younger one goes with the next purge after it: rows are kept at least
 * RETAIN_MS. An outbox of purgeable rows only goes whole.
 */
const char cl__bus_purge_sql[] =
    "DELETE FROM cl_outbox WHERE seq < coalesce((SELECT seq FROM cl_outbox "
    "WHERE delivered_ms IS NULL OR delivered_ms >= ? ORDER BY seq LIMIT 1), "
    "(SELECT max(seq) + 1 FROM cl_outbox))";
/*
 * A message's inbox row, unless it is there already or the message was dead-lettered: one
 * statement is the inbox check and the row (a row written: new; none: handled before).
 */
static const char inbox_claim_sql[] =
    "INSERT INTO cl_inbox (message_id, type, source, handled_at) SELECT ?, ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM cl_dead_letters WHERE message_id = ?) "
    "ON CONFLICT (message_id) DO NOTHING";
static const char inbox_sql[] =
    "INSERT INTO cl_inbox (message_id, type, source, handled_at) VALUES (?, ?, ?, ?)";
static const char dead_sql[] =
    "INSERT INTO cl_dead_letters (message_id, type, msg_key, source, envelope, attempts, "
    "last_error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char dead_get_sql[] = "SELECT envelope, attempts FROM cl_dead_letters WHERE id = ?";
static const char dead_delete_sql[] = "DELETE FROM cl_dead_letters WHERE id = ?";
static const char dead_fail_sql[] =
    "UPDATE cl_dead_letters SET attempts = attempts + 1, last_error = ?, failed_at = ? "
    "WHERE id = ?";

/* --- small pieces ----------------------------------------------------------------- */

static void kick_init(void)
{
    /* The first slots are the NULL ones, one per kind: kick_slot always finds those. */
    for (int k = 0; k < CL__BUS_KINDS; k++) {
        kicks[k].used = true;
        kicks[k].kind = (cl__bus_kind)k;
    }
    for (int i = 0; i < KICK_SLOTS; i++) {
        /* Fails only without memory; the cv then waits on the wall clock. */
        if (cl_cond_init_monotonic(&kicks[i].cv) != 0) {
            (void)pthread_cond_init(&kicks[i].cv, NULL);
        }
    }
}

/* Wakes every waiter; kick_mu held. */
static void kick_all(void)
{
    for (int i = 0; i < KICK_SLOTS; i++) {
        pthread_cond_broadcast(&kicks[i].cv);
    }
}

/* The slot of kind k and db, made when missing (NULL's slot when all are taken); kick_mu held. */
static struct kick_slot *kick_slot(cl__bus_kind k, const cl_db *db)
{
    struct kick_slot *spare = NULL;

    for (int i = 0; i < KICK_SLOTS; i++) {
        if (kicks[i].used && kicks[i].kind == k && kicks[i].db == db) {
            return &kicks[i];
        }
        if (!kicks[i].used && spare == NULL) {
            spare = &kicks[i];
        }
    }
    if (spare == NULL) {
        return &kicks[k]; /* its kind's NULL slot (kick_init) */
    }
    spare->used = true;
    spare->kind = k;
    spare->db = db;
    return spare;
}

/*
 * Bumps slot s and wakes its waiters, if any (a busy thread looks again anyway): all of
 * them, or one when all is false.
 */
static void kick_one(struct kick_slot *s, bool all)
{
    s->gen++;
    if (s->waiters > 0) {
        if (all) {
            pthread_cond_broadcast(&s->cv);
        } else {
            pthread_cond_signal(&s->cv);
        }
    }
}

/*
 * A database's runners are woken one at a time (an operation is claimed by one; a runner
 * that sees another wakes the next, cl__operation_runner); its relays all at once. A
 * kind's NULL slot, which may serve several databases, wakes all.
 */
static void kick(cl__bus_kind k, const cl_db *db)
{
    struct kick_slot *s;

    pthread_once(&kick_once, kick_init);
    pthread_mutex_lock(&kick_mu);
    s = kick_slot(k, db);
    kick_one(s, k != CL__BUS_OPERATIONS || s == &kicks[k]);
    /* Those waiting for any database hear it too. */
    if (s != &kicks[k]) {
        kick_one(&kicks[k], true);
    }
    pthread_mutex_unlock(&kick_mu);
}

void cl__bus_kick(cl_db *db)
{
    kick(CL__BUS_OUTBOX, db);
}

void cl__bus_kick_operations(cl_db *db)
{
    kick(CL__BUS_OPERATIONS, db);
}

bool cl__bus_stopping(cl_bus *bus)
{
    bool s;

    pthread_mutex_lock(&kick_mu);
    s = bus->stopping;
    pthread_mutex_unlock(&kick_mu);
    return s;
}

int cl__bus_idle_for(cl_bus *bus, cl__bus_kind k, const cl_db *db, uint64_t *seen, int64_t ms)
{
    struct timespec ts = cl_deadline_in(ms);
    struct kick_slot *s;
    int r;

    pthread_once(&kick_once, kick_init);
    pthread_mutex_lock(&kick_mu);
    s = kick_slot(k, db);
    if (!bus->stopping && s->gen == *seen) {
        s->waiters++;
        (void)pthread_cond_timedwait(&s->cv, &kick_mu, &ts);
        s->waiters--;
    }
    r = bus->stopping ? -1 : (s->gen != *seen ? 1 : 0);
    *seen = s->gen;
    pthread_mutex_unlock(&kick_mu);
    return r;
}

int cl__bus_idle(cl_bus *bus, const cl_db *db, uint64_t *seen, int64_t ms)
{
    return cl__bus_idle_for(bus, CL__BUS_OUTBOX, db, seen, ms);
}

void cl__bus_crash_point(cl_bus *bus, const char *point)
{
    if (bus->crash_at[0] == '\0' || strcmp(bus->crash_at, point) != 0) {
        return;
    }
    if (atomic_fetch_add(&bus->crash_hits, 1) + 1 == bus->crash_n) {
        /* Test-only (CLEAVE_TEST_CRASH_AT): die as a power cut would, with no clean-up. */
        static const char msg[] = "{\"log.level\":\"warn\",\"log.logger\":\"bus\","
                                  "\"message\":\"CLEAVE_TEST_CRASH_AT: killing the process\"}\n";
        /* The lines before it are evidence for the test that crashed it: out first. */
        cl_log_flush();
        (void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
        raise(SIGKILL);
    }
}

void cl_bus_crash_point(cl_bus *bus, const char *point)
{
    if (bus != NULL && point != NULL) {
        cl__bus_crash_point(bus, point);
    }
}

cl__module *cl__bus_module(cl_bus *bus, const char *name)
{
    for (int i = 0; i < bus->nmodules; i++) {
        if (strcmp(bus->modules[i].name, name) == 0) {
            return &bus->modules[i];
        }
    }
    return NULL;
}

const cl__sub *cl__bus_sub(const cl__module *mod, const char *type)
{
    for (int i = 0; i < mod->nsubs; i++) {
        if (strcmp(mod->subs[i].type, type) == 0) {
            return &mod->subs[i];
        }
    }
    return NULL;
}

static uint32_t key_hash(const char *key)
{
    uint32_t h = 2166136261u;

    if (key == NULL) {
        return h;
    }
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

/* Calls done(CL__ABORTED) for each job of chain: nobody will run them. */
static void abort_jobs(cl__job *chain)
{
    while (chain != NULL) {
        cl__job *next = chain->next;

        if (chain->done != NULL) {
            chain->done(chain, CL__ABORTED);
        }
        chain = next;
    }
}

/*
 * Each worker that got jobs is signalled once, after the whole chain is queued: signalled
 * per job, a worker woke at the first, took it alone (a transaction and a commit for one
 * message) and the rest a few at a time, so a relay round of 256 cost dozens of commits.
 */
void cl__bus_enqueue(cl__module *mod, cl__job *chain)
{
    bool woken[CL__BUS_MAX_WORKERS] = {false};
    cl__job *aborted = NULL;

    pthread_mutex_lock(&mod->mu);
    if (mod->bus->stopping || mod->nworkers == 0) {
        pthread_mutex_unlock(&mod->mu);
        abort_jobs(chain);
        return;
    }
    while (chain != NULL) {
        cl__job *job = chain;
        int i;

        chain = job->next;
        if (job->msg == NULL) {
            job->next = aborted;
            aborted = job;
            continue;
        }
        job->next = NULL;
        i = (int)(key_hash(job->msg->key) % (uint32_t)mod->nworkers);
        if (mod->workers[i].tail != NULL) {
            mod->workers[i].tail->next = job;
        } else {
            mod->workers[i].head = job;
        }
        mod->workers[i].tail = job;
        woken[i] = true;
    }
    for (int i = 0; i < mod->nworkers; i++) {
        if (woken[i]) {
            pthread_cond_signal(&mod->workers[i].cv);
        }
    }
    pthread_mutex_unlock(&mod->mu);
    abort_jobs(aborted);
}

/* --- settings --------------------------------------------------------------------- */

cl_status cl_bus_new(const cl_config *cfg, cl_bus **out, cl_error *err)
{
    cl_bus *bus = calloc(1, sizeof(*bus));
    const void *transport = NULL;
    const char *s;

    if (bus == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    if (cfg == NULL) {
        free(bus);
        return cl_error_set(err, CL_INVALID, NULL, "cl_bus_new: missing configuration");
    }
    /* The defaults are declared once, with the keys, in platform/config. */
    bus->relays = (int)cl_config_int(cfg, "CLEAVE_BUS_RELAYS");
    bus->workers = (int)cl_config_int(cfg, "CLEAVE_BUS_WORKERS");
    bus->max_attempts = (int)cl_config_int(cfg, "CLEAVE_BUS_MAX_ATTEMPTS");
    bus->backoff_ms = cl_config_int(cfg, "CLEAVE_BUS_BACKOFF_MS");
    bus->backoff_max_ms = cl_config_int(cfg, "CLEAVE_BUS_BACKOFF_MAX_MS");
    bus->poll_ms = cl_config_int(cfg, "CLEAVE_BUS_POLL_MS");
    bus->linger_ms = cl_config_int(cfg, "CLEAVE_BUS_LINGER_MS");
    bus->ack_wait_ms = cl_config_int(cfg, "CLEAVE_BUS_ACK_WAIT_MS");
    bus->op_lease_ms = cl_config_int(cfg, "CLEAVE_BUS_OPERATION_LEASE_MS");
    bus->op_renew_ms = cl_config_int(cfg, "CLEAVE_BUS_OPERATION_RENEW_MS");
    if (bus->op_renew_ms >= bus->op_lease_ms) {
        free(bus);
        return cl_error_set(err, CL_INVALID, "CLEAVE_BUS_OPERATION_RENEW_MS",
                            "CLEAVE_BUS_OPERATION_RENEW_MS must be less than "
                            "CLEAVE_BUS_OPERATION_LEASE_MS");
    }
    {
        char hex[CL_RANDOM_HEX_SIZE];

        /* A process is an owner of its own; its host id lets its successor take over at once. */
        cl_config_host_id(cfg, bus->op_host, sizeof(bus->op_host));
        cl_random_hex(hex);
        snprintf(bus->op_owner, sizeof(bus->op_owner), "%s/%s", bus->op_host, hex);
    }
    if (bus->relays < 1 || bus->relays > CL__BUS_MAX_RELAYS || bus->workers < 1 ||
        bus->workers > CL__BUS_MAX_WORKERS || bus->max_attempts < 1 || bus->backoff_ms < 1 ||
        bus->backoff_max_ms < bus->backoff_ms || bus->poll_ms < 1 || bus->linger_ms < 0 ||
        bus->ack_wait_ms < 100) {
        free(bus);
        return cl_error_set(err, CL_INVALID, "CLEAVE_BUS_RELAYS", "bad CLEAVE_BUS_* setting");
    }
    s = cl_config_get(cfg, "CLEAVE_NATS_URL");
    if (s != NULL && s[0] != '\0' && cl_strlcpy(bus->nats_url, s, sizeof(bus->nats_url)) != 0) {
        free(bus);
        return cl_error_set(err, CL_INVALID, "CLEAVE_NATS_URL", "CLEAVE_NATS_URL is too long");
    }
    /* The NATS transport is an extension (cleave_nats): a build may not have it. */
    if (bus->nats_url[0] != '\0') {
        cl_status st = cl_extension_require("bus", "nats", "CLEAVE_NATS_URL", &transport, err);

        if (st != CL_OK) {
            free(bus);
            return st;
        }
        bus->transport = transport;
    }
    /* Test hooks: keys that only a test build declares (tests/hooks), unset elsewhere. */
    s = cl_config_get(cfg, "CLEAVE_TEST_CRASH_AT");
    if (s != NULL && s[0] != '\0') {
        const char *colon = strchr(s, ':');
        size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);

        if (n >= sizeof(bus->crash_at)) {
            free(bus);
            return cl_error_set(err, CL_INVALID, "CLEAVE_TEST_CRASH_AT", "unknown crash point");
        }
        memcpy(bus->crash_at, s, n);
        bus->crash_at[n] = '\0';
        bus->crash_n = colon != NULL ? strtol(colon + 1, NULL, 10) : 1;
        /* Points named "<module>.<point>" belong to modules (cl_bus_crash_point). */
        if (bus->crash_n < 1 ||
            (strcmp(bus->crash_at, "after-commit") != 0 &&
             strcmp(bus->crash_at, "after-deliver") != 0 &&
             strcmp(bus->crash_at, "after-publish") != 0 && strchr(bus->crash_at, '.') == NULL)) {
            free(bus);
            return cl_error_set(err, CL_INVALID, "CLEAVE_TEST_CRASH_AT",
                                "CLEAVE_TEST_CRASH_AT must be after-commit, after-publish, "
                                "after-deliver or a module's <module>.<point>, optionally :N");
        }
    }
    s = cl_config_get(cfg, "CLEAVE_TEST_POISON");
    if (s != NULL) {
        cl_strlcpy(bus->poison, s, sizeof(bus->poison));
    }
    pthread_mutex_init(&bus->mu, NULL);
    *out = bus;
    return CL_OK;
}

const char *cl_bus_transport(const cl_bus *bus)
{
    return bus != NULL && bus->nats_url[0] != '\0' ? "nats" : "in-process";
}

cl_status cl_bus_add_module(cl_bus *bus, const char *module, cl_db *db, cl_error *err)
{
    cl__module *m;

    if (bus == NULL || module == NULL || db == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_bus_add_module: missing argument");
    }
    if (bus->nmodules == CL_BUS_MAX_MODULES || strlen(module) >= CL__BUS_NAME ||
        cl__bus_module(bus, module) != NULL) {
        return cl_error_set(err, CL_INVALID, "module", "cannot add module %s to the bus", module);
    }
    m = &bus->modules[bus->nmodules++];
    memset(m, 0, sizeof(*m));
    m->bus = bus;
    cl_strlcpy(m->name, module, sizeof(m->name));
    m->db = db;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->publish_mu, NULL);
    return CL_OK;
}

/* Adds a subscription of module to type; *out receives it for the caller to fill. */
static cl_status add_sub(cl_bus *bus, const char *module, const char *type, bool has_fn,
                         cl__sub **out, cl_error *err)
{
    cl__module *m = bus != NULL && module != NULL ? cl__bus_module(bus, module) : NULL;

    if (m == NULL || !has_fn) {
        return cl_error_set(err, CL_INVALID, "module", "%s is not a local module of the bus",
                            module != NULL ? module : "(null)");
    }
    if (bus->running) {
        return cl_error_set(err, CL_CONFLICT, NULL, "subscribe at init, before the bus runs");
    }
    if (type == NULL || strchr(type, '.') == NULL || strlen(type) >= CL_BUS_MAX_TYPE ||
        cl__bus_sub(m, type) != NULL || m->nsubs == CL_BUS_MAX_SUBS) {
        return cl_error_set(err, CL_INVALID, "type", "%s cannot subscribe to '%s'", module,
                            type != NULL ? type : "");
    }
    *out = &m->subs[m->nsubs++];
    memset(*out, 0, sizeof(**out));
    cl_strlcpy((*out)->type, type, sizeof((*out)->type));
    return CL_OK;
}

cl_status cl_bus_subscribe(cl_bus *bus, const char *module, const char *type, cl_bus_handler fn,
                           void *arg, cl_error *err)
{
    cl__sub *s = NULL;
    cl_status rc = add_sub(bus, module, type, fn != NULL, &s, err);

    if (rc == CL_OK && s != NULL) {
        s->fn = fn;
        s->arg = arg;
    }
    return rc;
}

cl_status cl_bus_on(cl_bus *bus, const char *module, const cl_event *ev, cl_event_handler fn,
                    void *arg, cl_error *err)
{
    cl__sub *s = NULL;
    cl_status rc;

    if (ev == NULL || ev->payload == NULL || ev->version < 1) {
        return cl_error_set(err, CL_INVALID, "event", "%s: not a declared event",
                            module != NULL ? module : "(null)");
    }
    rc = add_sub(bus, module, ev->type, fn != NULL, &s, err);
    if (rc == CL_OK && s != NULL) {
        s->event = ev;
        s->efn = fn;
        s->arg = arg;
    }
    return rc;
}

cl_status cl_bus_operation_kind(cl_bus *bus, const char *module, const cl_operation_kind *kind,
                                cl_error *err)
{
    cl__module *m = bus != NULL && module != NULL ? cl__bus_module(bus, module) : NULL;

    if (m == NULL || kind == NULL || kind->kind == NULL || kind->work == NULL) {
        return cl_error_set(err, CL_INVALID, "module", "bad operation kind for %s",
                            module != NULL ? module : "(null)");
    }
    if (bus->running || m->nkinds == CL__BUS_MAX_KINDS) {
        return cl_error_set(err, CL_CONFLICT, NULL, "register operation kinds at init");
    }
    m->kinds[m->nkinds++] = kind;
    return CL_OK;
}

/* --- consuming: one message, one handler, one inbox transaction -------------------- */

/*
 * REJECTED: the subscriber cannot understand the message; retrying cannot help.
 * NOT_TRIED: no attempt counted yet (a batch's transaction was lost before it got there).
 */
typedef enum attempt_result { HANDLED, DUPLICATE, FAILED, REJECTED, NOT_TRIED } attempt_result;

/* Messages a worker handles in one transaction at most (batch_attempt). */
#define WORKER_BATCH 64

static void fill_ctx(cl_ctx *ctx, const cl__msg *m)
{
    cl_ctx_init(ctx, HANDLER_TIMEOUT);
    cl_strlcpy(ctx->request_id, m->id, sizeof(ctx->request_id));
    cl_strlcpy(ctx->principal, "service:bus", sizeof(ctx->principal));
    /* A malformed traceparent only loses the trace: the message is handled all the same. */
    cl_trace_enter(ctx, m->traceparent, NULL);
}

static cl_status bind_texts(cl_stmt *st, const char *const *v, int n, cl_error *err)
{
    cl_status rc = CL_OK;

    for (int i = 0; rc == CL_OK && i < n; i++) {
        rc = cl_stmt_bind_text(st, i + 1, v[i], err);
    }
    return rc;
}

/*
 * Runs sub's handler for env in the transaction on conn. For a declared event, decodes the
 * payload with the event's codec first, from env->payload or, when that is NULL, straight
 * from text; *rejected is set when it cannot be understood (a payload that does not decode,
 * a newer schema version), which no retry can fix.
 */
static cl_status run_handler(const cl__sub *sub, cl_ctx *ctx, const cl_envelope *env,
                             const char *text, cl_db_conn *conn, bool *rejected, cl_error *err);

/* The handler's span is a child of the publisher's (the envelope's traceparent). */
static cl_status call_handler(const cl__sub *sub, cl_ctx *ctx, const cl_envelope *env,
                              const char *text, cl_db_conn *conn, bool *rejected, cl_error *err)
{
    cl_span span;
    cl_status rc;

    cl_span_start(&span, ctx, CL_SPAN_CONSUMER, env->type);
    cl_span_set_str(&span, "messaging.system", "cleave");
    cl_span_set_str(&span, "messaging.operation", "process");
    cl_span_set_str(&span, "messaging.message.id", env->id);
    rc = cl_span_status(&span, run_handler(sub, ctx, env, text, conn, rejected, err));
    cl_span_end(&span);
    return rc;
}

static cl_status run_handler(const cl__sub *sub, cl_ctx *ctx, const cl_envelope *env,
                             const char *text, cl_db_conn *conn, bool *rejected, cl_error *err)
{
    const cl_event *ev = sub->event;
    cl_envelope decoded = *env;
    void *payload = NULL;
    cl_error derr = {0};
    cl_status rc;

    *rejected = false;
    if (ev == NULL) {
        rc = sub->fn(sub->arg, ctx, env, conn);
        goto out;
    }
    if (env->schema_version > ev->version) {
        *rejected = true;
        return cl_error_set(err, CL_INVALID, "schema_version",
                            "%s version %d is newer than this subscriber's version %d", ev->type,
                            env->schema_version, ev->version);
    }
    payload = calloc(1, ev->payload->size);
    if (payload == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    /* Lenient: a publisher's newer optional fields do not break an older subscriber. */
    if (env->payload != NULL) {
        rc = cl_schema_from_json(ev->payload, env->payload, CL_DECODE_LENIENT, payload, &derr);
    } else if (text != NULL) {
        bool not_json = false;

        rc = cl_schema_parse(ev->payload, text, strlen(text), CL_DECODE_LENIENT, payload, &not_json,
                             &derr);
        if (not_json) {
            /* As a tree that would not parse: a failed attempt, not a rejection. */
            free(payload);
            return cl_error_set(err, CL_INVALID, "payload", "payload is %s", derr.message);
        }
    } else {
        rc = cl_error_set(&derr, CL_INVALID, "", "no payload");
    }
    if (rc != CL_OK) {
        free(payload);
        *rejected = rc == CL_INVALID;
        return cl_error_set(err, rc, derr.field, "%s version %d does not decode: %s%s%s", ev->type,
                            env->schema_version, derr.field, derr.field[0] != '\0' ? ": " : "",
                            derr.message);
    }
    decoded.payload = NULL; /* the handler's is the decoded one (cleave/bus.h) */
    rc = sub->efn(sub->arg, ctx, &decoded, payload, conn);
    cl_schema_free(ev->payload, payload);
    free(payload);
out:
    if (rc != CL_OK) {
        *err = ctx->err;
        err->status = rc;
    }
    return rc;
}

/*
 * Writes m's inbox row unless it is there already or m was dead-lettered, in the
 * transaction open on conn; *inserted tells which.
 */
static cl_status inbox_claim(cl_db_conn *conn, const cl__msg *m, const char *now, bool *inserted,
                             cl_error *err)
{
    cl_stmt *st;
    int rows = 0;
    cl_status rc;

    rc = cl_db_prepare(conn, inbox_claim_sql, &st, err);
    if (rc == CL_OK) {
        rc = bind_texts(st, (const char *const[]){m->id, m->type, m->source, now, m->id}, 5, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_run(st, &rows, err);
    }
    if (rc == CL_OK) {
        *inserted = rows > 0;
    }
    return rc;
}

/*
 * The inbox row and the handler of m's n-th attempt, in the transaction open on conn;
 * nothing is committed here. The inbox row goes first: that it can be written is the
 * check that m was neither handled nor dead-lettered before, and a handler that fails
 * takes it with it when its transaction (or savepoint) rolls back. now is the inbox row's
 * handled_at: one per transaction, formatted once for a batch. On FAILED or REJECTED, err
 * says why.
 */
static attempt_result handle_in(cl__module *mod, const cl__sub *sub, cl__msg *m, int n,
                                const char *now, cl_db_conn *conn, cl_error *err)
{
    cl_bus *bus = mod->bus;
    cl_ctx ctx;
    cl_envelope env;
    json_error_t jerr;
    json_t *payload = NULL;
    const char *text = NULL;
    bool inserted = false;
    bool rejected = false;
    cl_status rc;

    rc = inbox_claim(conn, m, now, &inserted, err);
    if (rc == CL_OK && !inserted) {
        return DUPLICATE;
    }
    fill_ctx(&ctx, m);
    if (rc == CL_OK && bus->poison[0] != '\0' &&
        (cl__msg_text(m) == NULL || strstr(m->payload_text, bus->poison) != NULL)) {
        rc = cl_error_set(err, CL_INTERNAL, NULL, "poisoned by CLEAVE_TEST_POISON");
    }
    if (rc == CL_OK) {
        /*
         * Each handler gets its own copy: jansson's reference counts are not thread-safe.
         * A message from NATS comes parsed, its job's own: its first attempt takes that.
         * An outbox row's message is shared by the subscribers' workers: only read here,
         * and for a declared event decoded from its text with no tree (ADR 0054).
         */
        if (m->payload != NULL) {
            payload = m->payload;
            m->payload = NULL;
        } else if (sub->event != NULL) {
            text = cl__msg_text(m);
            if (text == NULL) {
                rc = cl_error_set(err, CL_INVALID, "payload",
                                  "payload is not JSON: unreadable envelope");
            }
        } else {
            payload = cl__msg_text(m) != NULL ? json_loads(m->payload_text, 0, &jerr) : NULL;
            if (payload == NULL) {
                rc = cl_error_set(err, CL_INVALID, "payload", "payload is not JSON: %s",
                                  m->payload_text != NULL ? jerr.text : "unreadable envelope");
            }
        }
    }
    if (rc == CL_OK) {
        env = (cl_envelope){m->id,          m->type,           m->key, m->source, m->occurred_at,
                            m->traceparent, m->schema_version, n,      payload};
        rc = call_handler(sub, &ctx, &env, text, conn, &rejected, err);
    }
    json_decref(payload);
    if (rc == CL_OK) {
        return HANDLED;
    }
    return rejected ? REJECTED : FAILED;
}

/* Runs the handler once, in a transaction of its own. On FAILED, err says why. */
static attempt_result attempt(cl__module *mod, const cl__sub *sub, cl__msg *m, int n, cl_error *err)
{
    cl_db_conn *conn = NULL;
    attempt_result r = FAILED;
    cl_status rc;

    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        char now[32];

        cl_now_rfc3339(now);
        r = handle_in(mod, sub, m, n, now, conn, err);
    }
    if (rc == CL_OK && r == HANDLED) {
        rc = cl_db_commit(conn, err);
        r = rc == CL_OK ? HANDLED : FAILED;
    }
    if (r == HANDLED) {
        atomic_fetch_add(&mod->bus->inbox_commits, 1);
    }
    /* Released without a commit, the transaction rolls back (a duplicate wrote nothing). */
    cl_db_release(conn);
    return r;
}

/* The figures and the crash point of a message whose handling was committed. */
static void count_handled(cl_bus *bus, const cl__msg *m)
{
    int64_t lat = cl_wall_ms() - m->occurred_ms;

    atomic_fetch_add(&bus->handled, 1);
    lat = lat < 0 ? 0 : lat;
    atomic_fetch_add(&bus->latency_count, 1);
    atomic_fetch_add(&bus->latency_sum_ms, lat);
    for (long long max = atomic_load(&bus->latency_max_ms); lat > max;) {
        if (atomic_compare_exchange_weak(&bus->latency_max_ms, &max, lat)) {
            break;
        }
    }
    cl__bus_crash_point(bus, "after-deliver");
}

/*
 * True when the crash hook would kill the process at point after `ahead` more hits: a
 * batch ends at that message, so that the hook still dies right after the N-th delivery
 * is committed, not after a batch that took later ones with it.
 */
static bool crash_due(cl_bus *bus, const char *point, long ahead)
{
    return bus->crash_at[0] != '\0' && strcmp(bus->crash_at, point) == 0 &&
           atomic_load(&bus->crash_hits) + ahead == bus->crash_n;
}

static const char savepoint_sql[] = "SAVEPOINT cl_bus_msg";
static const char release_savepoint_sql[] = "RELEASE SAVEPOINT cl_bus_msg";
static const char rollback_savepoint_sql[] = "ROLLBACK TO SAVEPOINT cl_bus_msg";

/*
 * Runs one of the savepoint statements: prepared once per connection on SQLite (three per
 * message, parsed each time otherwise); PostgreSQL runs it as plain text.
 */
static cl_status savepoint(cl__module *mod, cl_db_conn *conn, const char *sql, cl_error *err)
{
    cl_stmt *st;
    cl_status rc;

    if (cl_db_is_postgres(mod->db)) {
        return cl_db_exec(conn, sql, err);
    }
    rc = cl_db_prepare(conn, sql, &st, err);
    return rc == CL_OK ? cl_stmt_drain(st, NULL, err) : rc;
}

/*
 * Handles jobs[0..n) in one transaction, each message in a savepoint of its own, and
 * commits once: one commit for the batch instead of one per message. A failing handler's
 * effects are rolled back to its savepoint and the batch ends before it, so the messages
 * committed are a prefix of the queue (per-key order). Returns how many jobs, from the
 * first, were settled (handled or skipped as duplicates, committed); *r and err tell what
 * happened to the next one's first attempt (NOT_TRIED when the transaction was lost).
 */
static int batch_attempt(cl__module *mod, cl__job **jobs, int n, attempt_result *r, cl_error *err)
{
    cl_bus *bus = mod->bus;
    cl_db_conn *conn = NULL;
    attempt_result res[WORKER_BATCH];
    cl_error ignored = {0};
    long handled = 0;
    char now[32];
    int done = 0;
    cl_status rc;

    *r = NOT_TRIED;
    cl_now_rfc3339(now);
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    while (rc == CL_OK && done < n) {
        rc = savepoint(mod, conn, savepoint_sql, err);
        if (rc != CL_OK) {
            break;
        }
        res[done] = handle_in(mod, jobs[done]->sub, jobs[done]->msg, 1, now, conn, err);
        if (res[done] != HANDLED && res[done] != DUPLICATE) {
            *r = res[done];
            /* Its effects go; the ones before it stay. Failing that, the batch is lost. */
            rc = savepoint(mod, conn, rollback_savepoint_sql, &ignored);
            if (rc == CL_OK) {
                rc = savepoint(mod, conn, release_savepoint_sql, &ignored);
            }
            if (rc != CL_OK) {
                *r = NOT_TRIED;
                *err = ignored;
            }
            break;
        }
        rc = savepoint(mod, conn, release_savepoint_sql, err);
        if (rc != CL_OK) {
            break;
        }
        done++;
        if (res[done - 1] == HANDLED && crash_due(bus, "after-deliver", ++handled)) {
            break;
        }
    }
    if (rc == CL_OK && done > 0) {
        rc = cl_db_commit(conn, err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        /* Nothing was committed: every job of the batch is tried again, one by one. */
        *r = NOT_TRIED;
        return 0;
    }
    if (done > 0) {
        atomic_fetch_add(&bus->inbox_commits, 1);
    }
    for (int i = 0; i < done; i++) {
        if (res[i] == HANDLED) {
            count_handled(bus, jobs[i]->msg);
        } else {
            atomic_fetch_add(&bus->duplicates, 1);
        }
    }
    return done;
}

static cl_status dead_letter(cl__module *mod, cl__msg *m, int attempts, const cl_error *last,
                             cl_error *err)
{
    cl_db_conn *conn = NULL;
    char *envelope = NULL;
    char now[32];
    char reason[300];
    cl__msg copy = *m;
    cl_stmt *st;
    json_error_t jerr;
    cl_status rc;

    copy.payload = cl__msg_text(m) != NULL ? json_loads(m->payload_text, 0, &jerr) : NULL;
    envelope = copy.payload != NULL ? cl__msg_encode(&copy) : NULL;
    json_decref(copy.payload);
    if (envelope == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot encode the envelope");
    }
    snprintf(reason, sizeof(reason), "%s: %s", cl_status_name(last->status), last->message);
    cl_now_rfc3339(now);
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, dead_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = bind_texts(st, (const char *const[]){m->id, m->type, m->key, m->source, envelope}, 5,
                        err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 6, attempts, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 7, reason, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 8, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    }
    /* Already there: a redelivery of a message that was dead-lettered before. */
    if (rc == CL_CONFLICT) {
        rc = CL_OK;
    }
    cl_db_release(conn);
    free(envelope);
    return rc;
}

/* Waits ms on the worker's condition; false when the bus is stopping. */
static bool worker_sleep(cl__worker *w, int64_t ms)
{
    cl__module *mod = w->mod;
    struct timespec ts = cl_deadline_in(ms);
    bool running;

    pthread_mutex_lock(&mod->mu);
    if (!mod->bus->stopping) {
        (void)pthread_cond_timedwait(&w->cv, &mod->mu, &ts);
    }
    running = !mod->bus->stopping;
    pthread_mutex_unlock(&mod->mu);
    return running;
}

/*
 * Settles job: tries it until it is handled, skipped or dead-lettered, with backoff. n
 * attempts were made already, the last with result r and error *err (n == 0: none).
 */
static cl__outcome process(cl__worker *w, cl__job *job, int n, attempt_result r, cl_error *err)
{
    cl__module *mod = w->mod;
    cl_bus *bus = mod->bus;
    cl__msg *m = job->msg;

    if (n == 0 || r == NOT_TRIED) {
        n = 1;
        r = attempt(mod, job->sub, m, n, err);
    }
    for (;; r = attempt(mod, job->sub, m, ++n, err)) {
        if (r == DUPLICATE) {
            atomic_fetch_add(&bus->duplicates, 1);
            return CL__DONE;
        }
        if (r == HANDLED) {
            count_handled(bus, m);
            return CL__DONE;
        }
        if (n >= bus->max_attempts || r == REJECTED) {
            cl_error derr = {0};

            while (dead_letter(mod, m, n, err, &derr) != CL_OK) {
                cl_log_error("bus", "%s: cannot dead-letter %s: %s", mod->name, m->id,
                             derr.message);
                if (!worker_sleep(w, bus->backoff_max_ms)) {
                    return CL__ABORTED;
                }
            }
            atomic_fetch_add(&bus->dead_lettered, 1);
            cl_log_with(CL_LOG_ERROR, "bus",
                        json_pack("{s:s,s:s,s:s,s:i}", "message_id", m->id, "type", m->type,
                                  "subscriber", mod->name, "attempts", n),
                        "%s: message %s dead-lettered after %d attempts: %s", mod->name, m->id, n,
                        err->message);
            return CL__DONE;
        }
        atomic_fetch_add(&bus->retries, 1);
        cl_log_with(CL_LOG_WARN, "bus",
                    json_pack("{s:s,s:s,s:s,s:i}", "message_id", m->id, "type", m->type,
                              "subscriber", mod->name, "attempt", n),
                    "%s: handling %s failed (attempt %d): %s", mod->name, m->type, n, err->message);
        if (!worker_sleep(w, cl_retry_backoff_ms(bus->backoff_ms, bus->backoff_max_ms, n))) {
            return CL__ABORTED;
        }
    }
}

/*
 * Runs jobs[0..n) in queue order: as many as possible in batches of one transaction
 * (batch_attempt), a job whose handler fails on its own with retries (process), then the
 * rest. Each job's done is called once it is settled.
 */
static void run_jobs(cl__worker *w, cl__job **jobs, int n)
{
    cl__module *mod = w->mod;

    for (int i = 0; i < n;) {
        attempt_result r = NOT_TRIED;
        cl_error err = {0};
        int k = 0;

        if (mod->bus->stopping) {
            jobs[i]->done(jobs[i], CL__ABORTED);
            i++;
            continue;
        }
        if (n - i > 1) {
            k = batch_attempt(mod, &jobs[i], n - i, &r, &err);
        }
        for (int j = 0; j < k; j++) {
            jobs[i + j]->done(jobs[i + j], CL__DONE);
        }
        i += k;
        if (i < n) {
            jobs[i]->done(jobs[i], process(w, jobs[i], r == NOT_TRIED ? 0 : 1, r, &err));
            i++;
        }
    }
}

static void *worker_main(void *arg)
{
    cl__worker *w = arg;
    cl__module *mod = w->mod;
    cl__job *jobs[WORKER_BATCH];

    cl_thread_background(mod->name, "worker");
    pthread_mutex_lock(&mod->mu);
    for (;;) {
        int n = 0;

        w->running = false;
        while ((w->head == NULL || w->borrowed) && !mod->bus->stopping) {
            pthread_cond_wait(&w->cv, &mod->mu);
        }
        if (w->head == NULL) {
            pthread_mutex_unlock(&mod->mu);
            return NULL;
        }
        w->running = true;
        /* Whatever is queued now, up to a batch: waiting for more would only add latency. */
        while (w->head != NULL && n < WORKER_BATCH) {
            jobs[n++] = w->head;
            w->head = w->head->next;
        }
        if (w->head == NULL) {
            w->tail = NULL;
        }
        pthread_mutex_unlock(&mod->mu);
        run_jobs(w, jobs, n);
        pthread_mutex_lock(&mod->mu);
    }
}

/*
 * The worker of mod that runs every job of chain (n of them), when that is one worker and
 * it is idle: borrowed then, until give_back. NULL otherwise.
 */
static cl__worker *borrow(cl__module *mod, cl__job *chain, int n)
{
    uint32_t first = 0;
    cl__worker *w = NULL;
    bool one = n <= WORKER_BATCH;

    /* Under mu: the workers' count is set there when the module's workers start. */
    pthread_mutex_lock(&mod->mu);
    one = one && mod->nworkers > 0 && !mod->bus->stopping;
    if (one) {
        first = key_hash(chain->msg->key) % (uint32_t)mod->nworkers;
    }
    for (cl__job *j = chain->next; one && j != NULL; j = j->next) {
        one = key_hash(j->msg->key) % (uint32_t)mod->nworkers == first;
    }
    if (one && mod->workers[first].head == NULL && !mod->workers[first].running &&
        !mod->workers[first].borrowed) {
        w = &mod->workers[first];
        w->borrowed = true;
    }
    pthread_mutex_unlock(&mod->mu);
    return w;
}

/* Ends a borrow: the worker's thread takes what was queued for it meanwhile. */
static void give_back(cl__worker *w)
{
    pthread_mutex_lock(&w->mod->mu);
    w->borrowed = false;
    if (w->head != NULL || w->mod->bus->stopping) {
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mod->mu);
}

/* --- relaying ----------------------------------------------------------------------- */

/* A relay's batch of in-process deliveries; the relay waits until every job is done. */
typedef struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    bool *aborted; /* per message */
} batch;

typedef struct batch_job {
    cl__job job;
    batch *b;
    int index;
} batch_job;

static void batch_done(cl__job *job, cl__outcome outcome)
{
    batch_job *bj = (batch_job *)job;
    batch *b = bj->b;

    pthread_mutex_lock(&b->mu);
    if (outcome == CL__ABORTED) {
        b->aborted[bj->index] = true;
    }
    if (--b->pending == 0) {
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

/* Hands msgs to every local subscriber and waits; ok[i] tells which were fully handled. */
static void deliver_local(cl_bus *bus, cl__msg *msgs, int n, bool *ok)
{
    batch_job *jobs = calloc((size_t)n * (size_t)bus->nmodules + 1, sizeof(*jobs));
    bool aborted[CL__BUS_BATCH] = {false};
    batch b = {.aborted = aborted};
    cl__job *chains[CL_BUS_MAX_MODULES] = {NULL};
    int counts[CL_BUS_MAX_MODULES] = {0};
    cl__worker *here = NULL; /* the worker borrowed to run here_chain on this thread */
    cl__job *here_chain = NULL;
    int njobs = 0;

    if (jobs == NULL) {
        memset(ok, 0, (size_t)n * sizeof(*ok));
        return;
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    /*
     * Each module's jobs chained in message order, to be queued at once; all counted
     * first, so that a job finishing early cannot see pending reach zero.
     */
    for (int j = 0; j < bus->nmodules; j++) {
        cl__job **tail = &chains[j];

        for (int i = 0; i < n; i++) {
            const cl__sub *s = cl__bus_sub(&bus->modules[j], msgs[i].type);
            if (s != NULL) {
                jobs[njobs] = (batch_job){{NULL, &msgs[i], s, batch_done, NULL, NULL}, &b, i};
                *tail = &jobs[njobs].job;
                tail = &jobs[njobs].job.next;
                njobs++;
                counts[j]++;
            }
        }
    }
    b.pending = njobs;
    /*
     * One module's jobs, when they all fall to one idle worker, are run here rather than
     * handed to that worker and waited for: two thread wake-ups fewer a round (a round of
     * one event, say). The other modules' go to their workers first, to run meanwhile.
     */
    for (int j = bus->nmodules - 1; j >= 0 && here == NULL; j--) {
        if (chains[j] != NULL && (here = borrow(&bus->modules[j], chains[j], counts[j])) != NULL) {
            here_chain = chains[j];
            chains[j] = NULL;
        }
    }
    for (int j = 0; j < bus->nmodules; j++) {
        if (chains[j] != NULL) {
            cl__bus_enqueue(&bus->modules[j], chains[j]);
        }
    }
    if (here != NULL) {
        cl__job *run[WORKER_BATCH];
        int nrun = 0;

        for (cl__job *j = here_chain; j != NULL; j = j->next) {
            run[nrun++] = j;
        }
        run_jobs(here, run, nrun);
        give_back(here);
    }
    pthread_mutex_lock(&b.mu);
    while (b.pending > 0) {
        pthread_cond_wait(&b.cv, &b.mu);
    }
    pthread_mutex_unlock(&b.mu);
    for (int i = 0; i < n; i++) {
        ok[i] = !aborted[i];
    }
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    free(jobs);
}

static cl_status read_row(cl__module *mod, cl_stmt *st, cl__msg *m)
{
    const char *payload = cl_stmt_text(st, 8);

    m->seq = cl_stmt_i64(st, 0);
    cl_strlcpy(m->id, cl_stmt_text(st, 1), sizeof(m->id));
    cl_strlcpy(m->type, cl_stmt_text(st, 2), sizeof(m->type));
    cl_strlcpy(m->key, cl_stmt_text(st, 3), sizeof(m->key));
    cl_strlcpy(m->occurred_at, cl_stmt_text(st, 4), sizeof(m->occurred_at));
    m->occurred_ms = cl_stmt_i64(st, 5);
    m->schema_version = (int)cl_stmt_i64(st, 6);
    cl_strlcpy(m->traceparent, cl_stmt_text(st, 7), sizeof(m->traceparent));
    cl_strlcpy(m->source, mod->name, sizeof(m->source));
    m->payload_text = cl_strdup(payload != NULL ? payload : "{}");
    return m->payload_text != NULL ? CL_OK : CL_INTERNAL;
}

/*
 * Runs sql (an UPDATE with the leading parameter lead, when has_lead, then SEQS_PER_UPDATE
 * seqs) over the rows i of msgs with pick[i] == want (pick NULL: every row), so that a batch
 * costs a few statements instead of one per row.
 */
static cl_status update_rows(cl_db_conn *conn, const char *sql, bool has_lead, int64_t lead,
                             const cl__msg *msgs, int n, const bool *pick, bool want, cl_error *err)
{
    cl_status rc = CL_OK;
    int first = has_lead ? 2 : 1;

    for (int i = 0; rc == CL_OK && i < n;) {
        cl_stmt *st = NULL;
        int bound = 0;

        while (i < n && pick != NULL && pick[i] != want) {
            i++;
        }
        if (i == n) {
            break;
        }
        rc = cl_db_prepare(conn, sql, &st, err);
        if (rc == CL_OK && has_lead) {
            rc = cl_stmt_bind_i64(st, 1, lead, err);
        }
        for (; rc == CL_OK && i < n && bound < SEQS_PER_UPDATE; i++) {
            if (pick == NULL || pick[i] == want) {
                rc = cl_stmt_bind_i64(st, first + bound++, msgs[i].seq, err);
            }
        }
        for (; rc == CL_OK && bound < SEQS_PER_UPDATE; bound++) {
            rc = cl_stmt_bind_i64(st, first + bound, -1, err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, err);
        }
    }
    return rc;
}

/*
 * True when mod's relays lease the rows they claim, to keep each other off the keys they
 * work on: when there are several, and on PostgreSQL, where replicas of a process share a
 * module's schema (docs/extracting-a-module.md). A lone relay on SQLite (the file belongs
 * to one process) has no one to keep off, and the rows it has not settled are simply
 * undelivered still, relayed again after a crash as leased ones are: it saves the two
 * writes per row of a lease and its release.
 */
static bool leasing(const cl__module *mod)
{
    return mod->bus->relays > 1 || cl_db_is_postgres(mod->db);
}

/* Marks delivered the rows with ok[i], releases the others' leases, on conn. */
static cl_status settle_on(const cl__module *mod, cl_db_conn *conn, const cl__msg *msgs, int n,
                           const bool *ok, cl_error *err)
{
    cl_status rc = update_rows(conn, delivered_sql, true, cl_wall_ms(), msgs, n, ok, true, err);

    if (rc == CL_OK && leasing(mod)) {
        rc = update_rows(conn, release_sql, false, 0, msgs, n, ok, false, err);
    }
    return rc;
}

static void free_msgs(cl__msg *msgs, int *n)
{
    for (int i = 0; i < *n; i++) {
        cl__msg_free(&msgs[i]);
    }
    *n = 0;
}

/*
 * Leasing relays, in one transaction (so concurrent relays serialise, and a round takes the
 * write lock once): settles the previous round's *n rows of *msgs (ok[i]: delivered, else
 * released), then claims up to CL__BUS_BATCH rows (in order) and leases them. A lone relay
 * comes with no rows (it marks its own, relay_main) and only reads, rows after seq after
 * (those up to it it delivered).
 *
 * The rows are read into *spare, the relay's room for a round besides *msgs, allocated at
 * the first row read (a poll that finds nothing, most of them, allocates nothing, ADR
 * 0067) and kept: a batch's 120 KB taken and given back every round cost the relay a heap
 * trim, its madvise and the page faults of the next round (ADR 0069). Not zeroed as a
 * whole: an entry is cleared when a row is read into it, so that a short round writes few
 * of its pages (ADR 0047). Once rows came, the two swap: *msgs holds them, *n their count.
 * On failure nothing changed in the database, and *msgs still holds the previous round's.
 */
static cl_status claim(cl__module *mod, cl__msg **msgs, cl__msg **spare, int *n, const bool *ok,
                       int64_t after, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl__msg *got = *spare;
    bool row = false;
    int64_t now = cl_wall_ms();
    bool lease = leasing(mod);
    int ngot = 0;
    cl_status rc;

    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK && *n == 0 && lease) {
        rc = cl_db_prepare(conn, peek_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, err);
        }
        if (rc == CL_OK && row) {
            rc = cl_stmt_drain(st, NULL, err);
        }
        if (rc == CL_OK && !row) {
            goto out;
        }
        row = false;
    }
    if (rc == CL_OK && lease) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK && lease && *n > 0) {
        rc = settle_on(mod, conn, *msgs, *n, ok, err);
    }
    if (rc == CL_OK && lease && cl_db_is_postgres(mod->db)) {
        rc = cl_db_prepare(conn, claim_lock_pg_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, err);
        }
    }
    /* Unleased, the read is on its own: a consistent read, no write lock. */
    if (rc == CL_OK && !lease) {
        rc = cl_db_begin_read(conn, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, claim_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 1, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, after, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 3, CL__BUS_BATCH, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    while (rc == CL_OK && row) {
        if (got == NULL && (got = *spare = malloc(CL__BUS_BATCH * sizeof(*got))) == NULL) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
            break;
        }
        memset(&got[ngot], 0, sizeof(got[ngot]));
        rc = read_row(mod, st, &got[ngot]);
        ngot++;
        if (rc != CL_OK) {
            cl_error_set(err, rc, NULL, "out of memory");
            break;
        }
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && lease) {
        rc = update_rows(conn, lease_sql, true, now + LEASE_MS, got, ngot, NULL, true, err);
    }
    if (rc == CL_OK && lease) {
        rc = cl_db_commit(conn, err);
    }
out:
    cl_db_release(conn);
    if (rc != CL_OK) {
        free_msgs(got, &ngot);
        return rc;
    }
    free_msgs(*msgs, n);
    if (ngot > 0) {
        *spare = *msgs;
        *msgs = got;
        *n = ngot;
    }
    return CL_OK;
}

/* A round's rows to settle (settle_on), for marked. */
typedef struct settle_args {
    const cl__msg *msgs;
    int n;
    const bool *ok;
} settle_args;

static cl_status settle_round(const cl__module *mod, cl_db_conn *conn, const void *arg,
                              cl_error *err)
{
    const settle_args *r = arg;

    return settle_on(mod, conn, r->msgs, r->n, r->ok, err);
}

/* Every unmarked row up to seq *(const int64_t *)arg marked delivered (mark_upto). */
static cl_status mark_rows(const cl__module *mod, cl_db_conn *conn, const void *arg, cl_error *err)
{
    cl_stmt *st;
    cl_status rc;

    (void)mod;
    rc = cl_db_prepare(conn, delivered_upto_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, err, "ii", cl_wall_ms(), *(const int64_t *)arg);
    }
    return rc == CL_OK ? cl_stmt_drain(st, NULL, err) : rc;
}

/*
 * Runs write in a write transaction of its own on mod's database. On failure the rows stay
 * undelivered, to be delivered again (later, or at the next start) and skipped by the
 * inboxes; logged. true when committed.
 */
static bool marked(cl__module *mod,
                   cl_status (*write)(const cl__module *, cl_db_conn *, const void *, cl_error *),
                   const void *arg)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    cl_status rc;

    rc = cl_db_acquire(mod->db, NULL, &conn, &err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &err);
    }
    if (rc == CL_OK) {
        rc = write(mod, conn, arg, &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        cl_log_warn("bus", "%s: cannot mark delivered: %s", mod->name, err.message);
    }
    return rc == CL_OK;
}

/* settle_on in a transaction of its own; then frees msgs, whatever happened. */
static void settle(cl__module *mod, cl__msg *msgs, int *n, const bool *ok)
{
    settle_args r = {msgs, *n, ok};

    (void)marked(mod, settle_round, &r);
    free_msgs(msgs, n);
}

/*
 * A lone relay's delivered rows (every unmarked row up to seq *upto: it claims in order and
 * delivers a round whole or settles it at once) marked delivered in one write; *upto is 0
 * after, or kept when the write failed (tried again later; until then the rows are not
 * claimed again by this relay, and are relayed again by the next start if it never comes).
 */
static void mark_upto(cl__module *mod, int64_t *upto)
{
    if (marked(mod, mark_rows, upto)) {
        *upto = 0;
    }
}

static cl_status exec_i64(cl_db *db, const char *sql, bool bind, int64_t v, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_status rc;

    rc = cl_db_acquire(db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, sql, &st, err);
    }
    if (rc == CL_OK && bind) {
        rc = cl_stmt_bind_i64(st, 1, v, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, err);
    }
    cl_db_release(conn);
    return rc;
}

/*
 * Whether the relay, which found nothing to relay, has found nothing for ms: *since is when
 * it first did (set here), 0 from its next delivery on.
 */
static bool quiet(int64_t *since, int64_t ms)
{
    int64_t now = cl_now_ms();

    if (*since == 0) {
        *since = now;
    }
    return now - *since >= ms;
}

/* How long an idle relay waits: the poll interval, or less when it has rows to mark by then. */
static int64_t idle_ms(const cl_bus *bus, int64_t upto, int64_t upto_ms)
{
    int64_t left = upto_ms + MARK_MS - cl_now_ms();

    if (upto == 0 || left >= bus->poll_ms) {
        return bus->poll_ms;
    }
    return left > 0 ? left : 1;
}

/*
 * Under load a relay's rounds come back to back, each with the row or two committed since the
 * last, and each pays a claim, a delivery (an inbox transaction, or a publish) and a wake-up.
 * After a round that was not full, the next begins no sooner than the bus's linger after it
 * (round_ns, monotonic): the rows committed meanwhile go in one round. A round after a quiet
 * spell longer than the linger begins at once, so an event alone waits for nothing (ADR 0070).
 */
static void linger(const cl_bus *bus, int64_t round_ns)
{
    int64_t left = round_ns + bus->linger_ms * 1000000 - cl_metrics_now_ns();
    struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};

    if (left <= 0) {
        return;
    }
    /* At most CLEAVE_BUS_LINGER_MS (20 ms): a stop waits that long for it at worst. */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *relay_main(void *arg)
{
    cl__module *mod = arg;
    cl_bus *bus = mod->bus;
    /*
     * The round's rows are entries [0, n) of msgs; the rest is never read, so not zeroed
     * either. spare is claim's room for the next round's, swapped with msgs when rows came.
     */
    cl__msg *msgs = malloc(CL__BUS_BATCH * sizeof(*msgs));
    cl__msg *spare = NULL;
    bool ok[CL__BUS_BATCH];
    int n = 0; /* rows in msgs: handed out, to be settled by the next claim */
    int64_t last_purge = 0;
    uint64_t seen = 0;
    /* A lone relay's rows delivered up to this seq and not marked yet (0: none), and since. */
    int64_t upto = 0, upto_ms = 0;
    /*
     * Whether a full round came since the relay last freed its database's caches, and since
     * when it has found nothing to relay with every row marked (0: it has not).
     */
    bool burst = false;
    int64_t quiet_ms = 0;
    /* When the last round began, if it had rows and was not full (see linger), else 0. */
    int64_t round_ns = 0;

    cl_thread_background(mod->name, "relay");
    if (msgs == NULL) {
        cl_log_error("bus", "%s: relay out of memory", mod->name);
        return NULL;
    }
    while (!cl__bus_stopping(bus)) {
        cl_error err = {0};
        bool failed = false;
        int64_t began_ns;

        if (upto > 0 && cl_now_ms() - upto_ms >= MARK_MS) {
            mark_upto(mod, &upto);
        }
        if (round_ns > 0) {
            linger(bus, round_ns);
            round_ns = 0;
        }
        began_ns = cl_metrics_now_ns();
        if (claim(mod, &msgs, &spare, &n, ok, upto, &err) != CL_OK) {
            cl_log_warn("bus", "%s: relay cannot read the outbox: %s", mod->name, err.message);
            if (n > 0) {
                settle(mod, msgs, &n, ok);
            }
            (void)cl__bus_idle(bus, mod->db, &seen, idle_ms(bus, upto, upto_ms));
            continue;
        }
        if (n == 0) {
            /*
             * After a burst (the seed's events, a backlog) the connections keep in cache
             * the outbox pages it read and marked, which nothing reads again: freed once
             * every row is marked and a poll interval passed with nothing to relay, so that
             * a burst that pauses does not pay it (ADR 0061). So is the room for a round
             * that only a burst fills.
             */
            if (burst && upto == 0 && quiet(&quiet_ms, bus->poll_ms)) {
                cl_db_shrink(mod->db);
                free(spare);
                spare = NULL;
                burst = false;
            }
            /*
             * A publish in this process wakes us once its transaction committed
             * (cl_db_after_commit); the poll interval covers rows written by others.
             */
            (void)cl__bus_idle(bus, mod->db, &seen, idle_ms(bus, upto, upto_ms));
            if (cl_wall_ms() - last_purge > 60000) {
                last_purge = cl_wall_ms();
                (void)exec_i64(mod->db, cl__bus_purge_sql, true, last_purge - RETAIN_MS, &err);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            cl__bus_crash_point(bus, "after-commit");
        }
        if (bus->transport != NULL) {
            /*
             * A round's messages are chained in the stream (nats.c): the relays of a module
             * publish one round at a time, or their chains would break each other's.
             */
            pthread_mutex_lock(&mod->publish_mu);
            bus->transport->publish_batch(bus, msgs, n, ok, &err);
            pthread_mutex_unlock(&mod->publish_mu);
            for (int i = 0; i < n; i++) {
                if (ok[i]) {
                    cl__bus_crash_point(bus, "after-publish");
                }
            }
            if (err.message[0] != '\0') {
                cl_log_warn("bus", "%s: publishing failed: %s", mod->name, err.message);
            }
        } else {
            deliver_local(bus, msgs, n, ok);
        }
        for (int i = 0; i < n; i++) {
            if (ok[i]) {
                atomic_fetch_add(&bus->published, 1);
            }
            failed = failed || !ok[i];
        }
        atomic_fetch_add(&bus->relay_rounds, 1);
        burst = burst || n == CL__BUS_BATCH;
        quiet_ms = 0;
        round_ns = failed || n == CL__BUS_BATCH ? 0 : began_ns;
        /*
         * Something failed (a publish, a stop): settle now, back off before retrying; the
         * failed rows are after upto, so a lone relay claims them again.
         * Otherwise a lone relay leaves its rows unmarked for up to MARK_MS, then marks every
         * row up to the last it delivered in one write: its rounds come in seq order (SQLite
         * commits one writer at a time, so a row's seq is above every row committed before),
         * each delivered whole, and its claims read after upto. Its claim read every row
         * committed before it began, and the publish of any row committed since kicked after
         * it, so after seen: a round that was not full is followed by a wait for that kick
         * (it returns at once if it came), instead of a read of an empty outbox after every
         * round. Leasing relays settle with their next claim, in one transaction.
         */
        if (failed) {
            settle(mod, msgs, &n, ok);
            (void)cl__bus_idle(bus, mod->db, &seen, idle_ms(bus, upto, upto_ms));
        } else if (!leasing(mod)) {
            bool full = n == CL__BUS_BATCH;

            upto_ms = upto == 0 ? cl_now_ms() : upto_ms;
            upto = msgs[n - 1].seq;
            free_msgs(msgs, &n);
            if (!full) {
                (void)cl__bus_idle(bus, mod->db, &seen, idle_ms(bus, upto, upto_ms));
            }
        }
    }
    /* The last round's rows, settled before the relay ends. */
    if (n > 0) {
        settle(mod, msgs, &n, ok);
    }
    if (upto > 0) {
        mark_upto(mod, &upto);
    }
    free(msgs);
    free(spare);
    return NULL;
}

/* --- lifecycle -------------------------------------------------------------------- */

static cl_status start_module(cl_bus *bus, cl__module *mod, cl_error *err)
{
    cl_status rc;

    /* One process owns a module's database, so leases left behind are a dead process's. */
    rc = exec_i64(mod->db, clear_leases_sql, false, 0, err);
    if (rc != CL_OK) {
        return rc;
    }
    if (mod->nsubs > 0) {
        /*
         * Relays of modules started earlier already deliver here (cl__bus_enqueue): they
         * must see every worker ready, and the same count from the first job on, since a
         * key's worker is its hash modulo the count (per-key order).
         */
        for (int i = 0; i < bus->workers; i++) {
            mod->workers[i].mod = mod;
            /* worker_sleep's retry waits are deadlines on the monotonic clock. */
            if (cl_cond_init_monotonic(&mod->workers[i].cv) != 0) {
                return cl_error_set(err, CL_INTERNAL, NULL, "cannot start a bus worker");
            }
        }
        pthread_mutex_lock(&mod->mu);
        mod->nworkers = bus->workers;
        pthread_mutex_unlock(&mod->mu);
        for (int i = 0; i < bus->workers; i++) {
            cl__worker *w = &mod->workers[i];

            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                return cl_error_set(err, CL_INTERNAL, NULL, "cannot start a bus worker");
            }
            w->started = true;
        }
    }
    for (int i = 0; i < bus->relays; i++) {
        if (pthread_create(&mod->relays[i], NULL, relay_main, mod) != 0) {
            return cl_error_set(err, CL_INTERNAL, NULL, "cannot start a relay");
        }
        mod->nrelays++;
    }
    if (mod->nkinds > 0) {
        /*
         * Operations left running by a dead process are claimed again by the runners once
         * their lease lapsed, at once when it was this host id's (ADR 0034).
         */
        if (pthread_create(&mod->keeper, NULL, cl__operation_keeper, mod) != 0) {
            return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the operation lease keeper");
        }
        mod->keeping = true;
        for (int i = 0; i < bus->workers; i++) {
            if (pthread_create(&mod->runners[i], NULL, cl__operation_runner, mod) != 0) {
                return cl_error_set(err, CL_INTERNAL, NULL, "cannot start an operation runner");
            }
            mod->nrunners++;
        }
    }
    if (bus->transport != NULL && mod->nsubs > 0) {
        return bus->transport->start_consumers(mod, err);
    }
    return CL_OK;
}

bool cl__bus_nobody_handles(const cl_db *db, const char *type)
{
    bool found = false;
    bool handled = false;

    pthread_rwlock_rdlock(&local_mu);
    for (const cl_bus *b = local_buses; b != NULL && !found; b = b->next_local) {
        for (int i = 0; i < b->nmodules && !found; i++) {
            found = b->modules[i].db == db;
        }
        for (int i = 0; found && i < b->nmodules && !handled; i++) {
            handled = cl__bus_sub(&b->modules[i], type) != NULL;
        }
    }
    pthread_rwlock_unlock(&local_mu);
    return found && !handled;
}

static void local_add(cl_bus *bus)
{
    pthread_rwlock_wrlock(&local_mu);
    bus->next_local = local_buses;
    local_buses = bus;
    pthread_rwlock_unlock(&local_mu);
}

static void local_remove(cl_bus *bus)
{
    pthread_rwlock_wrlock(&local_mu);
    for (cl_bus **p = &local_buses; *p != NULL; p = &(*p)->next_local) {
        if (*p == bus) {
            *p = bus->next_local;
            break;
        }
    }
    bus->next_local = NULL;
    pthread_rwlock_unlock(&local_mu);
}

cl_status cl_bus_start(cl_bus *bus, cl_error *err)
{
    cl_status rc = CL_OK;

    if (bus == NULL || bus->running) {
        return CL_OK;
    }
    bus->running = true;
    if (bus->transport != NULL) {
        rc = bus->transport->connect(bus, err);
    }
    for (int i = 0; rc == CL_OK && i < bus->nmodules; i++) {
        rc = start_module(bus, &bus->modules[i], err);
    }
    if (rc != CL_OK) {
        cl_bus_stop(bus);
        return rc;
    }
    if (bus->transport == NULL) {
        local_add(bus);
    }
    cl_log_with(CL_LOG_INFO, "bus",
                json_pack("{s:s,s:i,s:i}", "transport", cl_bus_transport(bus), "relays",
                          bus->relays, "workers", bus->workers),
                "bus started (%s)", cl_bus_transport(bus));
    return CL_OK;
}

void cl_bus_stop(cl_bus *bus)
{
    if (bus == NULL || !bus->running) {
        return;
    }
    /* From here on an event nothing handles is left for the relay of the next start. */
    local_remove(bus);
    pthread_once(&kick_once, kick_init);
    pthread_mutex_lock(&kick_mu);
    bus->stopping = true;
    kick_all();
    pthread_mutex_unlock(&kick_mu);
    for (int i = 0; i < bus->nmodules; i++) {
        cl__module *mod = &bus->modules[i];

        pthread_mutex_lock(&mod->mu);
        for (int w = 0; w < mod->nworkers; w++) {
            pthread_cond_broadcast(&mod->workers[w].cv);
        }
        pthread_mutex_unlock(&mod->mu);
    }
    /* Relays and fetchers first: they wait for jobs the workers finish or abandon. */
    for (int i = 0; i < bus->nmodules; i++) {
        cl__module *mod = &bus->modules[i];

        for (int r = 0; r < mod->nrelays; r++) {
            pthread_join(mod->relays[r], NULL);
        }
        mod->nrelays = 0;
        if (bus->transport != NULL) {
            bus->transport->stop_consumers(mod);
        }
    }
    for (int i = 0; i < bus->nmodules; i++) {
        cl__module *mod = &bus->modules[i];

        for (int w = 0; w < mod->nworkers; w++) {
            if (mod->workers[w].started) {
                pthread_join(mod->workers[w].thread, NULL);
            }
            pthread_cond_destroy(&mod->workers[w].cv);
            mod->workers[w].started = false;
        }
        mod->nworkers = 0;
        for (int r = 0; r < mod->nrunners; r++) {
            pthread_join(mod->runners[r], NULL);
        }
        mod->nrunners = 0;
        if (mod->keeping) {
            pthread_join(mod->keeper, NULL);
            mod->keeping = false;
        }
    }
    if (bus->transport != NULL) {
        bus->transport->free_consumers(bus);
        bus->transport->close(bus);
    }
    bus->running = false;
    pthread_mutex_lock(&kick_mu);
    bus->stopping = false;
    pthread_mutex_unlock(&kick_mu);
}

void cl_bus_free(cl_bus *bus)
{
    if (bus == NULL) {
        return;
    }
    cl_bus_stop(bus);
    for (int i = 0; i < bus->nmodules; i++) {
        pthread_mutex_destroy(&bus->modules[i].mu);
        pthread_mutex_destroy(&bus->modules[i].publish_mu);
    }
    pthread_mutex_destroy(&bus->mu);
    free(bus);
}

cl_status cl_bus_stats_get(cl_bus *bus, cl_bus_stats *out, cl_error *err)
{
    cl_bus_stats s = {0};

    for (int i = 0; i < bus->nmodules; i++) {
        cl_bus_db_counts c;
        cl_status rc = cl_bus_db_count(bus->modules[i].db, &c, err);

        if (rc != CL_OK) {
            return rc;
        }
        s.outbox_backlog += c.outbox_backlog;
        s.dead_letters += c.dead_letters;
        s.operations_open += c.operations_open;
    }
    s.published = atomic_load(&bus->published);
    s.relay_rounds = atomic_load(&bus->relay_rounds);
    s.handled = atomic_load(&bus->handled);
    s.duplicates = atomic_load(&bus->duplicates);
    s.retries = atomic_load(&bus->retries);
    s.dead_lettered = atomic_load(&bus->dead_lettered);
    s.latency_count = atomic_load(&bus->latency_count);
    s.latency_avg_ms =
        s.latency_count > 0 ? atomic_load(&bus->latency_sum_ms) / s.latency_count : 0;
    s.latency_max_ms = atomic_load(&bus->latency_max_ms);
    s.inbox_commits = atomic_load(&bus->inbox_commits);
    s.operations_finished = atomic_load(&bus->operations_finished);
    *out = s;
    return CL_OK;
}

/* --- dead-letter replay ------------------------------------------------------------- */

cl_status cl_bus_dlq_replay(cl_bus *bus, const char *module, int64_t id, cl_error *err)
{
    cl__module *mod = bus != NULL && module != NULL ? cl__bus_module(bus, module) : NULL;
    const cl__sub *sub;
    cl_db_conn *conn = NULL;
    cl__msg m = {0};
    cl_ctx ctx;
    cl_envelope env;
    cl_stmt *st;
    bool row = false;
    int64_t attempts = 0;
    char now[32];
    cl_status rc;

    if (mod == NULL) {
        return cl_error_set(err, CL_NOT_FOUND, "module", "%s is not a local module",
                            module != NULL ? module : "(null)");
    }
    rc = cl_db_acquire(mod->db, NULL, &conn, err);
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, dead_get_sql, &st, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 1, id, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    if (rc == CL_OK && !row) {
        rc = cl_error_set(err, CL_NOT_FOUND, "id", "no dead letter %lld in %s", (long long)id,
                          module);
    }
    if (rc == CL_OK) {
        const char *text = cl_stmt_text(st, 0);
        attempts = cl_stmt_i64(st, 1);
        rc = cl__msg_decode(text, strlen(text), &m, err);
        (void)cl_stmt_drain(st, NULL, err);
    }
    sub = rc == CL_OK ? cl__bus_sub(mod, m.type) : NULL;
    if (rc == CL_OK && sub == NULL) {
        rc = cl_error_set(err, CL_NOT_FOUND, "type", "%s has no handler for %s", module, m.type);
    }
    if (rc == CL_OK && bus->poison[0] != '\0') {
        char *text = json_dumps(m.payload, JSON_COMPACT);
        if (text == NULL || strstr(text, bus->poison) != NULL) {
            rc = cl_error_set(err, CL_INTERNAL, NULL, "poisoned by CLEAVE_TEST_POISON");
        }
        free(text);
    }
    if (rc == CL_OK && sub != NULL) {
        fill_ctx(&ctx, &m);
        env = (cl_envelope){m.id,
                            m.type,
                            m.key,
                            m.source,
                            m.occurred_at,
                            m.traceparent,
                            m.schema_version,
                            (int)attempts + 1,
                            m.payload};
        bool rejected;
        rc = call_handler(sub, &ctx, &env, NULL, conn, &rejected, err);
    }
    if (rc == CL_OK) {
        cl_now_rfc3339(now);
        rc = cl_db_prepare(conn, inbox_sql, &st, err);
        if (rc == CL_OK) {
            rc = bind_texts(st, (const char *const[]){m.id, m.type, m.source, now}, 4, err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, dead_delete_sql, &st, err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_i64(st, 1, id, err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_drain(st, NULL, err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, err);
    } else if (m.id[0] != '\0' && rc != CL_NOT_FOUND) {
        /* Failed again: keep it, with its new error. */
        cl_error ignored;
        char reason[300];
        cl_db_rollback(conn);
        snprintf(reason, sizeof(reason), "%s: %s", cl_status_name(rc), err->message);
        cl_now_rfc3339(now);
        if (cl_db_prepare(conn, dead_fail_sql, &st, &ignored) == CL_OK &&
            cl_stmt_bind_text(st, 1, reason, &ignored) == CL_OK &&
            cl_stmt_bind_text(st, 2, now, &ignored) == CL_OK &&
            cl_stmt_bind_i64(st, 3, id, &ignored) == CL_OK) {
            (void)cl_stmt_drain(st, NULL, &ignored);
        }
    }
    cl_db_release(conn);
    cl__msg_free(&m);
    return rc;
}
