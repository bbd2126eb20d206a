/*
 * cleave/otlp.h - exports the tracer's finished spans (cleave/trace.h) to an
 * OpenTelemetry collector over OTLP/HTTP, protobuf encoding.
 *
 * A background thread takes batches from the tracer's bounded queue and posts each to
 * <endpoint>/v1/traces. Requests never wait for it: when the queue is full, or the
 * collector is slow, down or refuses a batch, spans are dropped and counted
 * (cl_trace_stats_get).
 */
#ifndef CLEAVE_OTLP_H
#define CLEAVE_OTLP_H

#include <stdint.h>

#include "cleave/status.h"

/* Spans the queue holds; beyond them spans are dropped. */
#define CL_OTLP_QUEUE_MAX 4096
/* Spans per post. */
#define CL_OTLP_BATCH_MAX 512

/*
 * Starts the exporter for this process: endpoint is the collector's base URL
 * ("http://127.0.0.1:4318", as OTEL_EXPORTER_OTLP_ENDPOINT), service and version its
 * resource's service.name and service.version (copied). CL_OK; CL_INVALID (field
 * "CLEAVE_OTLP_ENDPOINT") for an endpoint that is not an http(s) URL; CL_CONFLICT when
 * one runs already; CL_INTERNAL when the thread or the queue cannot be made.
 */
cl_status cl_otlp_start(const char *endpoint, const char *service, const char *version,
                        cl_error *err);
/*
 * Stops the exporter: spans still queued are posted for at most flush_ms, then dropped
 * (counted). A no-op when none runs.
 */
void cl_otlp_stop(int64_t flush_ms);

#endif /* CLEAVE_OTLP_H */
