/*
 * Shared between the tracer (trace.c), the log (log.c) and the OTLP exporter (otlp.c).
 */
#ifndef CLEAVE_TRACE_INTERNAL_H
#define CLEAVE_TRACE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cleave/trace.h"

/*
 * Opens the export queue with room for capacity spans: until then (and after
 * cl__trace_queue_close) finished spans are not kept. CL_OK, CL_INTERNAL out of memory.
 */
cl_status cl__trace_queue_open(size_t capacity);
/*
 * Takes up to max finished spans into out, waiting up to wait_ms for the first one or for
 * max of them. Returns how many; 0 once the queue is closed and empty.
 */
size_t cl__trace_queue_take(cl_span_data *out, size_t max, int64_t wait_ms);
/* Closes the queue: spans ended from now on are dropped (counted), takers are woken. */
void cl__trace_queue_close(void);
/* Frees the queue; the taker must be gone. */
void cl__trace_queue_free(void);
/* The exporter's outcome for n spans taken from the queue. */
void cl__trace_count(size_t n, bool exported);

/*
 * Binds trace_id and span_id to the calling thread's log lines, returning the previous
 * ones in saved_trace and saved_span (to restore with the same call).
 */
void cl__log_swap_trace(const char *trace_id, const char *span_id, char saved_trace[33],
                        char saved_span[17]);

#endif /* CLEAVE_TRACE_INTERNAL_H */
