/*
 * cleave/trace.h - distributed tracing (W3C Trace Context, OpenTelemetry spans).
 *
 * A trace is read or started where a request enters (cl_trace_enter), and each unit of
 * work is a span: started as a child of the ctx's current span, made current in the ctx
 * while it runs (so that calls, events and log lines made under it carry it) and ended,
 * which restores the parent. The context travels as ctx->trace_id, ctx->span_id and
 * ctx->trace_sampled: over HTTP as a traceparent header, in event envelopes as their
 * traceparent field (ADR 0036).
 *
 * Sampling is parent-based: a trace that comes with a parent keeps the parent's sampled
 * flag; a trace started here is sampled with the ratio CLEAVE_TRACE_SAMPLE (0..1). An
 * unsampled span costs a few id generations and no allocation; it still gives log lines
 * their trace and span ids. Finished sampled spans go to a bounded queue that an exporter
 * (cleave/otlp.h) drains; when it is full, spans are dropped and counted, never waited for.
 */
#ifndef CLEAVE_TRACE_H
#define CLEAVE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"
#include "cleave/util.h"

/* The OTLP SpanKind values, so that an exporter writes them as they are. */
typedef enum cl_span_kind {
    CL_SPAN_INTERNAL = 1,
    CL_SPAN_SERVER = 2,
    CL_SPAN_CLIENT = 3,
    CL_SPAN_PRODUCER = 4,
    CL_SPAN_CONSUMER = 5,
} cl_span_kind;

#define CL_SPAN_NAME_MAX  96
#define CL_SPAN_ATTRS     6
#define CL_SPAN_KEY_MAX   32
#define CL_SPAN_VALUE_MAX 96

typedef struct cl_span_attr {
    char key[CL_SPAN_KEY_MAX];
    char str[CL_SPAN_VALUE_MAX]; /* the value, when is_int is false */
    int64_t num;                 /* the value, when is_int is true */
    bool is_int;
} cl_span_attr;

/* What an exporter receives of a finished span: plain data. */
typedef struct cl_span_data {
    char trace_id[33];
    char span_id[17];
    char parent_id[17]; /* empty for a root span */
    char name[CL_SPAN_NAME_MAX];
    cl_span_kind kind;
    int64_t start_ns; /* Unix time, nanoseconds */
    int64_t end_ns;
    bool error; /* OTLP status code ERROR; unset otherwise */
    int nattrs;
    cl_span_attr attrs[CL_SPAN_ATTRS];
} cl_span_data;

/* A span under way, on the caller's stack; its fields are the tracer's. */
typedef struct cl_span {
    cl_span_data d;
    bool recording; /* sampled: it is queued when it ends */
    bool live;      /* started and not yet ended */
    cl_ctx *ctx;    /* the ctx it is current in, or NULL for a detached span */
    char saved_span_id[17];
    char saved_log_trace[33];
    char saved_log_span[17];
} cl_span;

/*
 * Sets the sampling ratio for traces started in this process: 0 records none, 1 all.
 * Values outside 0..1 are clamped. Default 1.
 */
void cl_trace_set_ratio(double ratio);
/*
 * Parses a CLEAVE_TRACE_SAMPLE value: a decimal number from 0 to 1. CL_OK; CL_INVALID
 * for anything else (the caller says so and refuses to start).
 */
cl_status cl_trace_parse_ratio(const char *s, double *out);
/*
 * True when a trace with this id is sampled at ratio: the decision depends on the id
 * alone (its last 16 hex digits against ratio), so every process that starts from the
 * same id decides alike, as OpenTelemetry's TraceIdRatioBased does.
 */
bool cl_trace_sampled_at(const char *trace_id, double ratio);

/*
 * Parses a traceparent value with its flags: as cl_traceparent_parse, and *sampled from
 * the sampled bit of trace-flags. CL_OK, or CL_INVALID with the outputs untouched.
 */
cl_status cl_trace_parse(const char *value, char trace_id[33], char parent_id[17], bool *sampled);
/*
 * Formats ctx's trace context as a traceparent value (its current span as the parent)
 * into out. CL_OK; CL_INVALID, out untouched, when ctx carries no valid trace.
 */
cl_status cl_trace_format(const cl_ctx *ctx, char out[CL_TRACEPARENT_SIZE]);

/*
 * Formats s's context as a traceparent value, s as the parent: what a message published
 * under s carries. CL_OK; CL_INVALID, out untouched, for a span that records nothing.
 */
cl_status cl_span_traceparent(const cl_span *s, char out[CL_TRACEPARENT_SIZE]);
/* Copies parent's trace context (ids, sampled flag, tracestate) into child. */
void cl_trace_inherit(cl_ctx *child, const cl_ctx *parent);

/*
 * The entry point's trace: continues the one in traceparent (and tracestate) when it is
 * valid; otherwise - missing or malformed, which never fails a request - starts a new
 * one, sampled at the process's ratio. ctx's current span is then the caller's (or none).
 */
void cl_trace_enter(cl_ctx *ctx, const char *traceparent, const char *tracestate);

/*
 * Starts span s as a child of ctx's current span (a new trace when ctx has none) and
 * makes it current in ctx until cl_span_end. name is copied (cut to CL_SPAN_NAME_MAX).
 */
void cl_span_start(cl_span *s, cl_ctx *ctx, cl_span_kind kind, const char *name);
/*
 * Starts s as a child of ctx's current span without making it current (ctx is only
 * read): for work under an operation that calls nothing further (a database use). s
 * records nothing when ctx is NULL or carries no trace.
 */
void cl_span_start_detached(cl_span *s, const cl_ctx *ctx, cl_span_kind kind, const char *name);
/* Renames s (a route span learns its route after matching). */
void cl_span_set_name(cl_span *s, const char *name);
/* Adds an attribute; beyond CL_SPAN_ATTRS ones are dropped. Values are cut to fit. */
void cl_span_set_str(cl_span *s, const char *key, const char *value);
void cl_span_set_int(cl_span *s, const char *key, int64_t value);
/* Marks s as failed (OTLP status ERROR) when st is not CL_OK; returns st. */
cl_status cl_span_status(cl_span *s, cl_status st);
/*
 * Ends s: restores ctx's current span and the log binding, and queues s for export when
 * it is sampled. Ending a span twice, or one never started (zeroed), does nothing.
 */
void cl_span_end(cl_span *s);

/* Counters of the export queue, for /metrics. */
typedef struct cl_trace_stats {
    uint64_t queued;   /* spans put on the queue */
    uint64_t dropped;  /* spans dropped: queue full, or the collector refused or was down */
    uint64_t exported; /* spans the collector accepted */
} cl_trace_stats;
void cl_trace_stats_get(cl_trace_stats *out);

#endif /* CLEAVE_TRACE_H */
