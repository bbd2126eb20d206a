/*
 * The NATS JetStream transport (ADR 0012): chosen when CLEAVE_NATS_URL is set.
 *
 *   stream   CLEAVE_<MODULE> per publishing module, subjects cleave.<module>.>, file storage
 *   publish  js_PublishAsync on cleave.<module>.<event> with Nats-Msg-Id = envelope id, a
 *            relay's batch all in flight, each chained to the one before it (acks awaited
 *            in bulk; one message per key in flight once a chain broke),
 *            after which the relay marks the acknowledged rows delivered (a re-publish after
 *            a crash is dropped by JetStream's duplicate window, and skipped by the inbox)
 *   consume  a durable pull consumer named after the subscribing module on each stream it
 *            subscribes to, explicit acks; a message is acked only after the handler's
 *            inbox transaction committed (or it was dead-lettered)
 *
 * The consumer is created explicitly (js_AddConsumer) and the subscription binds to it, so
 * that closing the subscription never deletes the durable consumer.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bus_internal.h"
#include "nats_internal.h"
#include "cleave/extension.h"
#include "cleave/log.h"

/* Messages handed to workers but not yet acked, per subscribing module. */
#define MAX_INFLIGHT 512
#define FETCH_MS     200

/*
 * libnats 3.4 (Debian 12) delivers a message by looking its subscription up, then locking it
 * outside the lock that keeps it alive (nats.c issue 637, fixed in 3.6.1): a subscription
 * destroyed while a message for it arrives is locked after its mutex was destroyed (seen
 * under TSan at a bus stop: a pull fetch's late status message). So nothing here destroys a
 * subscription a message may still come for while the connection reads: the consumers' at
 * the stop only once the connection is closed (its read loop joined), and a publish context
 * whose acks may still come (a batch that timed out) is kept until then (retired).
 */
typedef struct cl__nats {
    natsConnection *nc;
    jsCtx *js;
    pthread_mutex_t mu; /* retired */
    jsCtx **retired;
    int nretired;
} cl__nats;

typedef struct fetcher {
    cl__module *mod;
    char publisher[CL__BUS_NAME];
    char stream[CL__BUS_NAME + 8];
    natsSubscription *sub;
    pthread_t thread;
} fetcher;

typedef struct nats_job {
    cl__job job;
    cl__msg msg;
    natsMsg *nm;
    cl__module *mod;
} nats_job;

static void stream_name(const char *module, char *out, size_t size)
{
    size_t i = 0;

    snprintf(out, size, "CLEAVE_%s", module);
    for (char *p = out; *p != '\0'; p++, i++) {
        *p = (char)toupper((unsigned char)*p);
    }
}

static cl_status nats_fail(cl_error *err, const char *what, natsStatus s, jsErrCode jerr)
{
    return cl_error_set(err, CL_UNAVAILABLE, "CLEAVE_NATS_URL", "NATS %s: %s (%d)", what,
                        natsStatus_GetText(s), (int)jerr);
}

/* Creates the stream of module unless it exists. */
static cl_status ensure_stream(cl__nats *n, const char *module, cl_error *err)
{
    char name[CL__BUS_NAME + 8], subject[CL__BUS_NAME + 16];
    const char *subjects[1] = {subject};
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    jsErrCode jerr = 0;
    natsStatus s;

    stream_name(module, name, sizeof(name));
    snprintf(subject, sizeof(subject), CL_BUS_SUBJECT_PREFIX "%s.>", module);
    s = js_GetStreamInfo(&si, n->js, name, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return CL_OK;
    }
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    s = js_AddStream(&si, n->js, &cfg, NULL, &jerr);
    if (s != NATS_OK) {
        /* Another process may have created it in between. */
        if (js_GetStreamInfo(&si, n->js, name, NULL, &jerr) == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return CL_OK;
        }
        return nats_fail(err, "add stream", s, jerr);
    }
    jsStreamInfo_Destroy(si);
    return CL_OK;
}

static cl_status transport_connect(cl_bus *bus, cl_error *err)
{
    cl__nats *n = calloc(1, sizeof(*n));
    natsOptions *opts = NULL;
    natsStatus s;
    cl_status rc = CL_OK;

    if (n == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    s = natsOptions_Create(&opts);
    if (s == NATS_OK) {
        s = natsOptions_SetURL(opts, bus->nats_url);
    }
    if (s == NATS_OK) {
        /* Keep reconnecting for as long as the process lives: the outbox holds the events. */
        s = natsOptions_SetMaxReconnect(opts, -1);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(opts, 250);
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(&n->nc, opts);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        free(n);
        return cl_error_set(err, CL_UNAVAILABLE, "CLEAVE_NATS_URL",
                            "cannot connect to NATS at %s: %s", bus->nats_url,
                            natsStatus_GetText(s));
    }
    s = natsConnection_JetStream(&n->js, n->nc, NULL);
    if (s != NATS_OK) {
        natsConnection_Destroy(n->nc);
        free(n);
        return nats_fail(err, "JetStream context", s, 0);
    }
    pthread_mutex_init(&n->mu, NULL);
    bus->nats = n;
    for (int i = 0; rc == CL_OK && i < bus->nmodules; i++) {
        rc = ensure_stream(n, bus->modules[i].name, err);
    }
    return rc;
}

/* Closes n's connection, its read loop joined; once. Acks, sent asynchronously, leave first. */
static void quiesce(cl__nats *n)
{
    if (!natsConnection_IsClosed(n->nc)) {
        (void)natsConnection_FlushTimeout(n->nc, 2000);
        natsConnection_Close(n->nc);
    }
}

/* A publish context acks may still come for: destroyed once the connection is closed. */
static void retire(cl__nats *n, jsCtx *js)
{
    jsCtx **more;

    pthread_mutex_lock(&n->mu);
    more = realloc(n->retired, (size_t)(n->nretired + 1) * sizeof(*more));
    if (more != NULL) {
        n->retired = more;
        n->retired[n->nretired++] = js;
    }
    pthread_mutex_unlock(&n->mu);
    /*
     * Out of memory, js is left undestroyed: a context leaked is a smaller harm than the
     * destroyed mutex a late ack would lock.
     */
}

static void transport_close(cl_bus *bus)
{
    cl__nats *n = bus->nats;

    if (n == NULL) {
        return;
    }
    quiesce(n);
    for (int i = 0; i < n->nretired; i++) {
        jsCtx_Destroy(n->retired[i]);
    }
    free(n->retired);
    pthread_mutex_destroy(&n->mu);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n);
    bus->nats = NULL;
}

/* Acks awaited for a batch at most (ms); a message without one by then counts as failed. */
#define PUBLISH_WAIT_MS 5000

/*
 * One publish_batch call: which messages JetStream acknowledged, fed by ack_handler on the
 * connection's thread. On the heap with a reference per message in flight (dropped by its
 * ack, or when taken back unacknowledged) and one for the relay, so that an ack arriving
 * late, after the relay gave up on the batch, never touches freed memory.
 *
 * Message states: 0 unsent, 's' sent, 'a' acknowledged (stored, or a duplicate already in
 * the stream), 'b' refused because the message it was chained to is not the stream's last
 * (JetStream's wrong-last-msg-id), 'f' failed otherwise.
 */
typedef struct pub_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool closed;         /* the relay gave up waiting: msgs is no longer to be read */
    const cl__msg *msgs; /* the relay's, while !closed */
    int n;
    int hint;     /* where the next ack's message is looked for first: acks come in order */
    int inflight; /* messages sent and not yet answered */
    bool waves;   /* the chain broke: one message per key in flight (send_ready) */
    char state[CL__BUS_BATCH];
    int prev[CL__BUS_BATCH]; /* in waves: the previous message of the same key, or -1 */
    char why[160];
} pub_batch;

/* Drops a reference with b->mu held; frees b (and unlocks) when it was the last. */
static void batch_unref_locked(pub_batch *b)
{
    bool last = --b->refs == 0;

    pthread_mutex_unlock(&b->mu);
    if (last) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
    }
}

static int find_msg(pub_batch *b, const char *id)
{
    for (int k = 0; k < b->n; k++) {
        int i = (b->hint + k) % b->n;

        if (strcmp(b->msgs[i].id, id) == 0) {
            b->hint = (i + 1) % b->n;
            return i;
        }
    }
    return -1;
}

/* Runs on the connection's reply thread, once per published message. */
static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    pub_batch *b = closure;
    const char *id = NULL;
    int i;

    (void)js;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) {
        id = NULL;
    }
    pthread_mutex_lock(&b->mu);
    i = !b->closed && id != NULL ? find_msg(b, id) : -1;
    if (i >= 0 && b->state[i] == 's') {
        bool acked = pa != NULL && pae == NULL;
        bool unchained = !acked && pae != NULL && pae->ErrCode == JSStreamWrongLastMsgIDErr;

        if (!acked && !unchained && b->why[0] == '\0') {
            snprintf(b->why, sizeof(b->why), "%s (%d)",
                     pae != NULL ? natsStatus_GetText(pae->Err) : "no ack",
                     pae != NULL ? (int)pae->ErrCode : 0);
        }
        b->state[i] = acked ? 'a' : (unchained ? 'b' : 'f');
        b->inflight--;
        if (b->inflight == 0) {
            pthread_cond_signal(&b->cv);
        }
    }
    batch_unref_locked(b);
    natsMsg_Destroy(msg);
}

/*
 * Writes s as a JSON string (quoted) at *p, at most end - *p bytes. False when s holds a
 * byte the fast path does not write itself (beyond ASCII: jansson checks its UTF-8), or
 * when it does not fit.
 */
static bool put_str(char **p, const char *end, const char *s)
{
    char *o = *p;

    if (o >= end) {
        return false;
    }
    *o++ = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c >= 0x80 || end - o < 3) {
            return false;
        }
        if (c == '"' || c == '\\') {
            *o++ = '\\';
        }
        *o++ = (char)c;
    }
    if (o >= end) {
        return false;
    }
    *o++ = '"';
    *p = o;
    return true;
}

static bool put_raw(char **p, const char *end, const char *s, size_t len)
{
    if ((size_t)(end - *p) < len) {
        return false;
    }
    memcpy(*p, s, len);
    *p += len;
    return true;
}

/*
 * The envelope of m as a NATS body, as cl__msg_encode writes it; caller frees. NULL without
 * memory. The payload is the outbox row's text, compact JSON written by cl_bus_publish,
 * copied as it is: parsing it only to print it again cost a third of the relay's CPU. The
 * other fields are ours (hex ids, checked type, RFC 3339 time, traceparent) and the key,
 * which goes through jansson when it is not plain ASCII.
 */
static char *encode_body(const cl__msg *m)
{
    size_t plen = strlen(m->payload_text);
    size_t size = plen +
                  2 * (sizeof(m->id) + sizeof(m->type) + sizeof(m->key) + sizeof(m->source) +
                       sizeof(m->occurred_at) + sizeof(m->traceparent)) +
                  192;
    char *body = malloc(size);
    char *p = body;
    const char *end = body + size;
    char num[64];
    bool fits;

    if (body == NULL) {
        return NULL;
    }
    fits = put_raw(&p, end, "{\"id\":", 6) && put_str(&p, end, m->id) &&
           put_raw(&p, end, ",\"type\":", 8) && put_str(&p, end, m->type) &&
           put_raw(&p, end, ",\"key\":", 7) && put_str(&p, end, m->key) &&
           put_raw(&p, end, ",\"source\":", 10) && put_str(&p, end, m->source) &&
           put_raw(&p, end, ",\"occurred_at\":", 15) && put_str(&p, end, m->occurred_at);
    if (fits) {
        int k = snprintf(num, sizeof(num), ",\"occurred_ms\":%lld,\"schema_version\":%d",
                         (long long)m->occurred_ms, m->schema_version);
        fits = k > 0 && put_raw(&p, end, num, (size_t)k) &&
               put_raw(&p, end, ",\"traceparent\":", 15) && put_str(&p, end, m->traceparent) &&
               put_raw(&p, end, ",\"payload\":", 11) && put_raw(&p, end, m->payload_text, plen) &&
               put_raw(&p, end, "}", 2);
    }
    if (!fits) {
        cl__msg copy = *m;
        json_error_t jerr;

        free(body);
        copy.payload = json_loads(m->payload_text, 0, &jerr);
        body = copy.payload != NULL ? cl__msg_encode(&copy) : NULL;
        json_decref(copy.payload);
    }
    return body;
}

/*
 * Sends, in order, unsent messages (the relay's thread, outside b->mu: the library calls
 * ack_handler with locks of its own held). Chained (b->waves false): every unsent
 * message, the first with no condition, each next one on condition that the one sent
 * before it is the stream's last message (JetStream's Nats-Expected-Last-Msg-Id).
 * Messages on one connection reach JetStream in order, so the chain holds unless one of
 * them is lost or refused, and then every later one is refused: nothing gets into the
 * stream ahead of an earlier message of its round, whatever its key. It stops at a
 * message it cannot send. In waves (b->waves): each unsent message whose previous message
 * of its key in the round is acknowledged (or that has none), with no condition.
 */
static void send_ready(jsCtx *js, pub_batch *b)
{
    const char *last = NULL; /* chained: the id of the message sent before, NULL at the start */

    for (int i = 0; i < b->n; i++) {
        char subject[CL_BUS_MAX_TYPE + 16];
        jsPubOptions po;
        char *body;
        bool go;
        natsStatus s;

        pthread_mutex_lock(&b->mu);
        go = b->state[i] == 0 && (!b->waves || b->prev[i] < 0 || b->state[b->prev[i]] == 'a');
        if (go) {
            b->state[i] = 's';
            b->inflight++;
            b->refs++; /* the message's, until its ack */
        }
        pthread_mutex_unlock(&b->mu);
        if (!go) {
            continue;
        }
        body = encode_body(&b->msgs[i]);
        snprintf(subject, sizeof(subject), CL_BUS_SUBJECT_PREFIX "%s", b->msgs[i].type);
        jsPubOptions_Init(&po);
        po.MsgId = b->msgs[i].id;
        po.ExpectLastMsgId = b->waves ? NULL : last;
        s = body != NULL ? js_PublishAsync(js, subject, body, (int)strlen(body), &po)
                         : NATS_NO_MEMORY;
        free(body);
        if (s != NATS_OK) {
            pthread_mutex_lock(&b->mu);
            if (b->why[0] == '\0') {
                snprintf(b->why, sizeof(b->why), "%s", natsStatus_GetText(s));
            }
            b->state[i] = 'f';
            b->inflight--;
            b->refs--; /* never in flight; the relay's own reference keeps b */
            pthread_mutex_unlock(&b->mu);
            if (!b->waves) {
                return;
            }
            continue;
        }
        last = b->msgs[i].id;
    }
}

/*
 * With b->mu held and nothing in flight: true when the batch goes on, in waves. That is
 * when the chain broke without a failure of its own: the first message not acknowledged
 * was refused only because the message it was chained to is not the stream's last. Either
 * that one was in the stream already (a relay that died after JetStream's ack publishes
 * it again, and a duplicate does not become the stream's last) or another process
 * published into the stream meanwhile (replicas of a module on one PostgreSQL). The
 * refused messages are sent again in waves, one per key in flight, which needs no chain.
 */
static bool unchain(pub_batch *b)
{
    int first = 0;

    while (first < b->n && b->state[first] == 'a') {
        first++;
    }
    if (b->waves || first == b->n || b->state[first] != 'b') {
        return false;
    }
    for (int i = first; i < b->n; i++) {
        if (b->state[i] == 'f') {
            return false;
        }
    }
    for (int i = first; i < b->n; i++) {
        if (b->state[i] == 'b') {
            b->state[i] = 0;
        }
    }
    for (int i = 0; i < b->n; i++) {
        b->prev[i] = -1;
        for (int j = i - 1; j >= 0; j--) {
            if (strcmp(b->msgs[j].key, b->msgs[i].key) == 0) {
                b->prev[i] = j;
                break;
            }
        }
    }
    b->waves = true;
    return true;
}

/* With b->mu held, in waves: whether a message can go out now (send_ready's rule). */
static bool ready(const pub_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        if (b->state[i] == 0 && (b->prev[i] < 0 || b->state[b->prev[i]] == 'a')) {
            return true;
        }
    }
    return false;
}

/*
 * Publishes a batch with acks awaited in bulk: every message is in flight at once, chained
 * to the one before it (send_ready), so that a lost or refused publish cannot let a later
 * message of its key into the stream ahead of it (per-key order). A chain broken by
 * another publisher or by a duplicate goes on in waves (unchain).
 */
static void transport_publish_batch(cl_bus *bus, const cl__msg *msgs, int n, bool *ok,
                                    cl_error *err)
{
    cl__nats *nats = bus->nats;
    pub_batch *b = calloc(1, sizeof(*b));
    struct timespec deadline = cl_deadline_in(PUBLISH_WAIT_MS);
    bool timed_out = false;
    jsOptions jo;
    jsCtx *js = NULL;
    natsStatus s;

    memset(ok, 0, (size_t)n * sizeof(*ok));
    if (b == NULL || cl_cond_init_monotonic(&b->cv) != 0) {
        free(b);
        cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        return;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->refs = 1;
    b->msgs = msgs;
    b->n = n;
    /* A context of this call's own: its acks, and the messages it may take back, are ours. */
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = ack_handler;
    jo.PublishAsync.AckHandlerClosure = b;
    jo.PublishAsync.MaxPending = CL__BUS_BATCH;
    s = natsConnection_JetStream(&js, nats->nc, &jo);
    if (s != NATS_OK) {
        nats_fail(err, "JetStream context", s, 0);
        pthread_mutex_lock(&b->mu);
        batch_unref_locked(b);
        return;
    }
    /* One chain; if it broke on its own, waves until no message can go out any more. */
    for (bool more = true; more && !timed_out;) {
        send_ready(js, b);
        pthread_mutex_lock(&b->mu);
        while (b->inflight > 0 && !timed_out) {
            timed_out = pthread_cond_timedwait(&b->cv, &b->mu, &deadline) == ETIMEDOUT;
        }
        more = !timed_out && (b->waves ? ready(b) : unchain(b));
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->mu);
    if (timed_out && b->why[0] == '\0') {
        snprintf(b->why, sizeof(b->why), "no acknowledgement within %d ms", PUBLISH_WAIT_MS);
    }
    if (b->why[0] == '\0') {
        for (int i = 0; i < n; i++) {
            if (b->state[i] != 'a') {
                snprintf(b->why, sizeof(b->why), "refused after an earlier message failed");
                break;
            }
        }
    }
    /* Unacknowledged by now counts as failed; a late ack finds the batch closed. */
    b->closed = true;
    for (int i = 0; i < n; i++) {
        ok[i] = b->state[i] == 'a';
    }
    if (b->why[0] != '\0') {
        cl_error_set(err, CL_UNAVAILABLE, "CLEAVE_NATS_URL", "NATS publish: %s", b->why);
    }
    pthread_mutex_unlock(&b->mu);
    {
        natsMsgList pending = {0};

        /* Taken back, they get no ack: their references go with them. */
        if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK) {
            pthread_mutex_lock(&b->mu);
            b->refs -= pending.Count;
            pthread_mutex_unlock(&b->mu);
            natsMsgList_Destroy(&pending);
        }
    }
    if (timed_out) {
        retire(nats, js);
    } else {
        jsCtx_Destroy(js);
    }
    pthread_mutex_lock(&b->mu);
    batch_unref_locked(b);
}

static void job_done(cl__job *job, cl__outcome outcome)
{
    nats_job *nj = (nats_job *)job;

    if (outcome == CL__DONE) {
        (void)natsMsg_Ack(nj->nm, NULL);
    }
    natsMsg_Destroy(nj->nm);
    cl__msg_free(&nj->msg);
    atomic_fetch_sub(&nj->mod->inflight, 1);
    free(nj);
}

/* Decodes nm into a job for a worker; NULL when there is nothing to handle. */
static cl__job *take(fetcher *f, natsMsg *nm)
{
    cl__module *mod = f->mod;
    nats_job *nj = calloc(1, sizeof(*nj));
    cl_error err = {0};
    const cl__sub *sub;

    if (nj == NULL) {
        natsMsg_Destroy(nm); /* not acked: redelivered after the ack wait */
        return NULL;
    }
    nj->nm = nm;
    nj->mod = mod;
    if (cl__msg_decode(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &nj->msg, &err) !=
        CL_OK) {
        /* Nothing can ever handle it; acking keeps it from blocking the stream. */
        cl_log_error("bus", "%s: dropping a malformed message on %s: %s", mod->name,
                     natsMsg_GetSubject(nm), err.message);
        (void)natsMsg_Ack(nm, NULL);
        natsMsg_Destroy(nm);
        cl__msg_free(&nj->msg);
        free(nj);
        return NULL;
    }
    /* Parsed once: the payload's text is printed only if a retry or a dead letter needs it. */
    nj->msg.raw = natsMsg_GetData(nm);
    nj->msg.raw_len = (size_t)natsMsg_GetDataLength(nm);
    sub = cl__bus_sub(mod, nj->msg.type);
    atomic_fetch_add(&mod->inflight, 1);
    nj->job = (cl__job){NULL, &nj->msg, sub, job_done, NULL, NULL};
    if (sub == NULL) {
        /* Another event of the publisher, which this module does not handle. */
        job_done(&nj->job, CL__DONE);
        return NULL;
    }
    return &nj->job;
}

/*
 * The NATS C client of Debian 12 (3.4.1) writes past its message array in a fetch that
 * starts with more than half a batch of messages already waiting in the subscription (a
 * pull whose answer came after the fetch gave up); nats.c fixed it in 3.10 (#749). So no
 * fetch here starts that way: messages already waiting are taken one per fetch (a batch
 * of one cannot overflow), a batch is asked with no_wait, which the server answers at once
 * and in full and so leaves nothing behind, and only when nothing is there does a fetch of
 * one wait, which leaves at most one message behind.
 */
natsStatus cl__nats_fetch(natsMsgList *list, natsSubscription *sub, int batch, int64_t wait_ms)
{
    jsFetchRequest req;
    jsErrCode jerr = 0;
    int waiting = 0, bytes = 0;
    natsStatus s;

    s = natsSubscription_GetPending(sub, &waiting, &bytes);
    if (s != NATS_OK || waiting > 0) {
        return natsSubscription_Fetch(list, sub, 1, wait_ms, &jerr);
    }
    jsFetchRequest_Init(&req);
    req.Batch = batch;
    req.NoWait = true;
    req.Expires = (int64_t)wait_ms * 1000000; /* only the client's wait: no_wait answers now */
    s = natsSubscription_FetchRequest(list, sub, &req);
    if (s == NATS_NOT_FOUND || s == NATS_TIMEOUT) {
        natsMsgList_Destroy(list);
        s = natsSubscription_Fetch(list, sub, 1, wait_ms, &jerr);
    }
    return s;
}

static void *fetch_main(void *arg)
{
    fetcher *f = arg;
    cl_bus *bus = f->mod->bus;

    cl_thread_background(f->mod->name, "fetch");
    while (!cl__bus_stopping(bus)) {
        natsMsgList list = {0};
        natsStatus s;

        if (atomic_load(&f->mod->inflight) >= MAX_INFLIGHT) {
            usleep(2000);
            continue;
        }
        s = cl__nats_fetch(&list, f->sub, CL__BUS_BATCH, FETCH_MS);
        if (s == NATS_OK) {
            cl__job *head = NULL, **tail = &head;

            /* The fetch's messages are queued at once: each worker is woken once for them. */
            for (int i = 0; i < list.Count; i++) {
                cl__job *job = take(f, list.Msgs[i]);

                list.Msgs[i] = NULL;
                if (job != NULL) {
                    *tail = job;
                    tail = &job->next;
                }
            }
            if (head != NULL) {
                cl__bus_enqueue(f->mod, head);
            }
        } else if (s != NATS_TIMEOUT) {
            cl_log_warn("bus", "%s: fetching from %s: %s", f->mod->name, f->stream,
                        natsStatus_GetText(s));
            usleep(100000);
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

static cl_status start_fetcher(cl__module *mod, const char *publisher, cl_error *err)
{
    cl_bus *bus = mod->bus;
    cl__nats *n = bus->nats;
    fetcher *f;
    jsConsumerConfig cc;
    jsSubOptions so;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    char subject[CL__BUS_NAME + 16];
    natsStatus s;
    cl_status rc;

    if (mod->nfetchers == CL_BUS_MAX_MODULES) {
        return cl_error_set(err, CL_INTERNAL, NULL, "too many streams");
    }
    rc = ensure_stream(n, publisher, err);
    if (rc != CL_OK) {
        return rc;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    f->mod = mod;
    cl_strlcpy(f->publisher, publisher, sizeof(f->publisher));
    stream_name(publisher, f->stream, sizeof(f->stream));
    snprintf(subject, sizeof(subject), CL_BUS_SUBJECT_PREFIX "%s.>", publisher);
    jsConsumerConfig_Init(&cc);
    cc.Durable = mod->name;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = bus->ack_wait_ms * (int64_t)1000000; /* nanoseconds */
    cc.MaxAckPending = (int64_t)MAX_INFLIGHT * 2;
    cc.FilterSubject = subject;
    cc.DeliverPolicy = js_DeliverAll;
    s = js_AddConsumer(&ci, n->js, f->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (s != NATS_OK &&
        js_GetConsumerInfo(&ci, n->js, f->stream, mod->name, NULL, &jerr) != NATS_OK) {
        free(f);
        return nats_fail(err, "add consumer", s, jerr);
    }
    jsConsumerInfo_Destroy(ci);
    jsSubOptions_Init(&so);
    so.Stream = f->stream;
    so.Consumer = mod->name;
    s = js_PullSubscribe(&f->sub, n->js, subject, mod->name, NULL, &so, &jerr);
    if (s != NATS_OK) {
        free(f);
        return nats_fail(err, "pull subscribe", s, jerr);
    }
    if (pthread_create(&f->thread, NULL, fetch_main, f) != 0) {
        natsSubscription_Destroy(f->sub);
        free(f);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start a NATS fetcher");
    }
    mod->nats_subs[mod->nfetchers++] = f;
    return CL_OK;
}

static cl_status transport_start_consumers(cl__module *mod, cl_error *err)
{
    /* One consumer per publishing module named by the subscriptions' type prefixes. */
    for (int i = 0; i < mod->nsubs; i++) {
        char publisher[CL__BUS_NAME];
        size_t len = strcspn(mod->subs[i].type, ".");
        bool seen = false;
        cl_status rc;

        if (len >= sizeof(publisher)) {
            continue;
        }
        memcpy(publisher, mod->subs[i].type, len);
        publisher[len] = '\0';
        for (int j = 0; j < mod->nfetchers; j++) {
            seen = seen || strcmp(((fetcher *)mod->nats_subs[j])->publisher, publisher) == 0;
        }
        if (seen) {
            continue;
        }
        rc = start_fetcher(mod, publisher, err);
        if (rc != CL_OK) {
            return rc;
        }
    }
    return CL_OK;
}

static void transport_stop_consumers(cl__module *mod)
{
    for (int i = 0; i < mod->nfetchers; i++) {
        fetcher *f = mod->nats_subs[i];

        pthread_join(f->thread, NULL);
    }
}

/* Called after the workers are joined, so no job still refers to a subscription. */
static void free_fetchers(cl__module *mod)
{
    for (int i = 0; i < mod->nfetchers; i++) {
        fetcher *f = mod->nats_subs[i];

        natsSubscription_Destroy(f->sub);
        free(f);
        mod->nats_subs[i] = NULL;
    }
    mod->nfetchers = 0;
}

static void transport_free_consumers(cl_bus *bus)
{
    if (bus->nats != NULL) {
        quiesce(bus->nats);
    }
    for (int i = 0; i < bus->nmodules; i++) {
        free_fetchers(&bus->modules[i]);
    }
}

static const cl__bus_transport nats_transport = {
    .version = 2,
    .connect = transport_connect,
    .publish_batch = transport_publish_batch,
    .start_consumers = transport_start_consumers,
    .stop_consumers = transport_stop_consumers,
    .free_consumers = transport_free_consumers,
    .close = transport_close,
};

const cl_extension cl_nats_extension = {"bus", "nats", &nats_transport};
