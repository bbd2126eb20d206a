/*
 * The tracer: trace context in and out, spans, parent-based ratio sampling and the
 * bounded queue of finished spans an exporter drains (cleave/trace.h).
 *
 * The hot path takes no lock unless a sampled span ends; then one mutex is held for a
 * copy into the ring. Ids come from a per-thread generator seeded from the system's
 * random source, so that a request does not pay a system call per span.
 */
#include "trace_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/util.h"

/* The ratio as a fraction of 2^63, read without a lock on every new trace. */
static _Atomic uint64_t trace_threshold = UINT64_C(1) << 63;

typedef struct trace_queue {
    pthread_mutex_t mu;
    pthread_cond_t ready;
    cl_span_data *ring;
    size_t cap;
    size_t head; /* next to take */
    size_t len;
    bool open;
} trace_queue;

static trace_queue tq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, false};
static pthread_once_t tq_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t stat_queued;
static _Atomic uint64_t stat_dropped;
static _Atomic uint64_t stat_exported;

static _Thread_local uint64_t rng_state[2];

/* xorshift128+: fast and, seeded from the system, unpredictable enough for ids. */
static uint64_t next_random(void)
{
    uint64_t s1 = rng_state[0];
    uint64_t s0 = rng_state[1];

    if (s1 == 0 && s0 == 0) {
        unsigned char seed[16];

        if (cl_random_bytes(seed, sizeof(seed), NULL) != CL_OK) {
            /* The clock and the thread's own address still tell threads and runs apart. */
            uint64_t t = (uint64_t)cl_now_ms();
            memcpy(seed, &t, sizeof(t));
            t ^= (uint64_t)(uintptr_t)&rng_state;
            memcpy(seed + 8, &t, sizeof(t));
        }
        memcpy(&s1, seed, 8);
        memcpy(&s0, seed + 8, 8);
        s1 |= 1;
    }
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

/* n random bytes as 2n lowercase hex digits, never all zero (W3C forbids it). */
static void random_id(char *out, size_t nbytes)
{
    static const char digits[] = "0123456789abcdef";
    uint64_t v = 0;

    for (size_t i = 0; i < nbytes; i++) {
        if (i % 8 == 0) {
            do {
                v = next_random();
            } while (v == 0);
        }
        out[2 * i] = digits[(v >> 4) & 0xf];
        out[2 * i + 1] = digits[v & 0xf];
        v >>= 8;
    }
    out[2 * nbytes] = '\0';
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cl_trace_set_ratio(double ratio)
{
    uint64_t t;

    if (!(ratio > 0)) {
        t = 0;
    } else if (ratio >= 1) {
        t = UINT64_C(1) << 63;
    } else {
        t = (uint64_t)(ratio * 9223372036854775808.0);
    }
    atomic_store(&trace_threshold, t);
}

cl_status cl_trace_parse_ratio(const char *s, double *out)
{
    char *end = NULL;
    double v;

    /* strtod would skip blanks and take "inf" or hex: only plain decimals are meant. */
    if (s == NULL || *s < '0' || *s > '9') {
        return CL_INVALID;
    }
    v = strtod(s, &end);
    if (end == s || *end != '\0' || isnan(v) || v < 0 || v > 1) {
        return CL_INVALID;
    }
    *out = v;
    return CL_OK;
}

/* The last 16 hex digits as a number below 2^63, the part of the id the decision reads. */
static uint64_t id_tail(const char *trace_id)
{
    uint64_t v = 0;

    for (size_t i = 16; i < 32 && trace_id[i] != '\0'; i++) {
        char c = trace_id[i];
        v = (v << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v >> 1;
}

static bool sampled_below(const char *trace_id, uint64_t threshold)
{
    if (threshold >= UINT64_C(1) << 63) {
        return true;
    }
    return id_tail(trace_id) < threshold;
}

bool cl_trace_sampled_at(const char *trace_id, double ratio)
{
    uint64_t t;

    if (!(ratio > 0)) {
        return false;
    }
    t = ratio >= 1 ? UINT64_C(1) << 63 : (uint64_t)(ratio * 9223372036854775808.0);
    return sampled_below(trace_id, t);
}

cl_status cl_trace_parse(const char *value, char trace_id[33], char parent_id[17], bool *sampled)
{
    char t[33];
    char p[17];
    int flags;

    if (cl_traceparent_parse(value, t, p) != CL_OK) {
        return CL_INVALID;
    }
    /* cl_traceparent_parse checked that the flags are two hex digits. */
    flags = (int)strtol(value + 53, NULL, 16);
    memcpy(trace_id, t, sizeof(t));
    memcpy(parent_id, p, sizeof(p));
    *sampled = (flags & 1) != 0;
    return CL_OK;
}

cl_status cl_trace_format(const cl_ctx *ctx, char out[CL_TRACEPARENT_SIZE])
{
    char buf[CL_TRACEPARENT_SIZE];

    if (ctx == NULL || cl_traceparent_format(ctx->trace_id, ctx->span_id, buf) != CL_OK) {
        return CL_INVALID;
    }
    /* cl_traceparent_format always says sampled; the flags are the trace's own. */
    buf[54] = ctx->trace_sampled ? '1' : '0';
    memcpy(out, buf, sizeof(buf));
    return CL_OK;
}

cl_status cl_span_traceparent(const cl_span *s, char out[CL_TRACEPARENT_SIZE])
{
    char buf[CL_TRACEPARENT_SIZE];

    if (!s->live || cl_traceparent_format(s->d.trace_id, s->d.span_id, buf) != CL_OK) {
        return CL_INVALID;
    }
    buf[54] = s->recording ? '1' : '0';
    memcpy(out, buf, sizeof(buf));
    return CL_OK;
}

void cl_trace_inherit(cl_ctx *child, const cl_ctx *parent)
{
    cl_strlcpy(child->trace_id, parent->trace_id, sizeof(child->trace_id));
    cl_strlcpy(child->span_id, parent->span_id, sizeof(child->span_id));
    cl_strlcpy(child->tracestate, parent->tracestate, sizeof(child->tracestate));
    child->trace_sampled = parent->trace_sampled;
}

/* A fresh trace on ctx with no parent span, sampled at the process's ratio. */
static void new_trace(cl_ctx *ctx)
{
    random_id(ctx->trace_id, 16);
    ctx->span_id[0] = '\0';
    ctx->tracestate[0] = '\0';
    ctx->trace_sampled = sampled_below(ctx->trace_id, atomic_load(&trace_threshold));
}

void cl_trace_enter(cl_ctx *ctx, const char *traceparent, const char *tracestate)
{
    bool sampled = false;

    if (cl_trace_parse(traceparent, ctx->trace_id, ctx->span_id, &sampled) != CL_OK) {
        /* W3C Trace Context: a malformed parent restarts the trace; the request goes on. */
        new_trace(ctx);
        return;
    }
    ctx->trace_sampled = sampled;
    /* An oversized tracestate is dropped whole rather than cut into a wrong one. */
    if (tracestate != NULL && strlen(tracestate) <= CL_TRACESTATE_MAX) {
        cl_strlcpy(ctx->tracestate, tracestate, sizeof(ctx->tracestate));
    } else {
        ctx->tracestate[0] = '\0';
    }
}

static void span_init(cl_span *s, const char *trace_id, const char *parent_id, bool sampled,
                      cl_span_kind kind, const char *name)
{
    memset(s, 0, sizeof(*s));
    cl_strlcpy(s->d.trace_id, trace_id, sizeof(s->d.trace_id));
    cl_strlcpy(s->d.parent_id, parent_id, sizeof(s->d.parent_id));
    random_id(s->d.span_id, 8);
    cl_strlcpy(s->d.name, name != NULL ? name : "", sizeof(s->d.name));
    s->d.kind = kind;
    s->recording = sampled;
    s->live = true;
    if (sampled) {
        s->d.start_ns = now_ns();
    }
}

void cl_span_start(cl_span *s, cl_ctx *ctx, cl_span_kind kind, const char *name)
{
    if (ctx->trace_id[0] == '\0') {
        new_trace(ctx);
    }
    span_init(s, ctx->trace_id, ctx->span_id, ctx->trace_sampled != 0, kind, name);
    s->ctx = ctx;
    cl_strlcpy(s->saved_span_id, ctx->span_id, sizeof(s->saved_span_id));
    cl_strlcpy(ctx->span_id, s->d.span_id, sizeof(ctx->span_id));
    cl__log_swap_trace(ctx->trace_id, ctx->span_id, s->saved_log_trace, s->saved_log_span);
}

void cl_span_start_detached(cl_span *s, const cl_ctx *ctx, cl_span_kind kind, const char *name)
{
    if (ctx == NULL || ctx->trace_id[0] == '\0') {
        memset(s, 0, sizeof(*s));
        return;
    }
    span_init(s, ctx->trace_id, ctx->span_id, ctx->trace_sampled != 0, kind, name);
}

void cl_span_set_name(cl_span *s, const char *name)
{
    if (s->recording && name != NULL) {
        cl_strlcpy(s->d.name, name, sizeof(s->d.name));
    }
}

static cl_span_attr *new_attr(cl_span *s, const char *key)
{
    cl_span_attr *a;

    if (!s->recording || key == NULL || s->d.nattrs == CL_SPAN_ATTRS) {
        return NULL;
    }
    a = &s->d.attrs[s->d.nattrs++];
    cl_strlcpy(a->key, key, sizeof(a->key));
    return a;
}

void cl_span_set_str(cl_span *s, const char *key, const char *value)
{
    cl_span_attr *a = new_attr(s, key);

    if (a != NULL) {
        cl_strlcpy(a->str, value != NULL ? value : "", sizeof(a->str));
    }
}

void cl_span_set_int(cl_span *s, const char *key, int64_t value)
{
    cl_span_attr *a = new_attr(s, key);

    if (a != NULL) {
        a->num = value;
        a->is_int = true;
    }
}

cl_status cl_span_status(cl_span *s, cl_status st)
{
    if (st != CL_OK) {
        s->d.error = true;
    }
    return st;
}

static void queue_put(const cl_span_data *d)
{
    bool kept = false;

    bool open;

    pthread_mutex_lock(&tq.mu);
    open = tq.open;
    if (open && tq.len < tq.cap) {
        tq.ring[(tq.head + tq.len) % tq.cap] = *d;
        tq.len++;
        kept = true;
        pthread_cond_signal(&tq.ready);
    }
    pthread_mutex_unlock(&tq.mu);
    /* Without an exporter spans are not kept, and not counted as lost either. */
    if (open) {
        atomic_fetch_add(kept ? &stat_queued : &stat_dropped, 1);
    }
}

void cl_span_end(cl_span *s)
{
    if (!s->live) {
        return;
    }
    s->live = false;
    if (s->ctx != NULL) {
        cl_strlcpy(s->ctx->span_id, s->saved_span_id, sizeof(s->ctx->span_id));
        cl__log_swap_trace(s->saved_log_trace, s->saved_log_span, s->saved_log_trace,
                           s->saved_log_span);
    }
    if (s->recording) {
        s->d.end_ns = now_ns();
        queue_put(&s->d);
    }
}

void cl_trace_stats_get(cl_trace_stats *out)
{
    out->queued = atomic_load(&stat_queued);
    out->dropped = atomic_load(&stat_dropped);
    out->exported = atomic_load(&stat_exported);
}

/* cl_deadline_at gives CLOCK_MONOTONIC instants: the wait must use that clock. */
static void queue_init_clock(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_destroy(&tq.ready);
    pthread_cond_init(&tq.ready, &attr);
    pthread_condattr_destroy(&attr);
}

cl_status cl__trace_queue_open(size_t capacity)
{
    cl_span_data *ring = calloc(capacity, sizeof(*ring));
    cl_status rc = CL_OK;

    if (ring == NULL || capacity == 0) {
        free(ring);
        return CL_INTERNAL;
    }
    pthread_once(&tq_once, queue_init_clock);
    pthread_mutex_lock(&tq.mu);
    if (tq.ring != NULL) {
        rc = CL_CONFLICT;
    } else {
        tq.ring = ring;
        tq.cap = capacity;
        tq.head = 0;
        tq.len = 0;
        tq.open = true;
        ring = NULL;
    }
    pthread_mutex_unlock(&tq.mu);
    free(ring);
    return rc;
}

size_t cl__trace_queue_take(cl_span_data *out, size_t max, int64_t wait_ms)
{
    struct timespec until = cl_deadline_at(cl_now_ms() + wait_ms);
    size_t n = 0;

    pthread_mutex_lock(&tq.mu);
    /* Wait for a full batch (or the deadline, or the close), so that posts are few. */
    while (tq.open && tq.len < max) {
        if (pthread_cond_timedwait(&tq.ready, &tq.mu, &until) != 0) {
            break;
        }
    }
    while (n < max && tq.len > 0) {
        out[n++] = tq.ring[tq.head];
        tq.head = (tq.head + 1) % tq.cap;
        tq.len--;
    }
    pthread_mutex_unlock(&tq.mu);
    return n;
}

void cl__trace_queue_close(void)
{
    pthread_mutex_lock(&tq.mu);
    tq.open = false;
    pthread_cond_broadcast(&tq.ready);
    pthread_mutex_unlock(&tq.mu);
}

void cl__trace_queue_free(void)
{
    pthread_mutex_lock(&tq.mu);
    atomic_fetch_add(&stat_dropped, tq.len);
    free(tq.ring);
    tq.ring = NULL;
    tq.cap = 0;
    tq.len = 0;
    tq.open = false;
    pthread_mutex_unlock(&tq.mu);
}

void cl__trace_count(size_t n, bool exported)
{
    atomic_fetch_add(exported ? &stat_exported : &stat_dropped, n);
}
