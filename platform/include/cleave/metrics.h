/*
 * cleave/metrics.h - process metrics in the Prometheus text format (ADR 0031).
 *
 * A metric family is a static value at the site that records it, registered with the
 * process's one registry the first time it is used:
 *
 *     static cl_metric widgets_made = CL_METRIC_COUNTER(
 *         "cleave_widgets_made_total", "Widgets made, by colour.", "colour");
 *     cl_metric_add(CL_METRIC_SERIES(&widgets_made, "red"), 1);
 *
 * Label values must come from bounded sets (route patterns, module and operation names,
 * outcomes), never from request data such as paths or ids: a family holds at most
 * CL_METRIC_MAX_SERIES label combinations, and a new combination past that is not
 * recorded (it is counted in cleave_metrics_series_dropped_total instead).
 *
 * Recording is lock-free: a series is found by a lock-free lookup and updated with
 * atomic operations. Only the first use of a family or of a label combination takes a
 * lock, as does rendering.
 */
#ifndef CLEAVE_METRICS_H
#define CLEAVE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/status.h"

#define CL_METRIC_MAX_LABELS  6
#define CL_METRIC_MAX_SERIES  1024
#define CL_METRIC_MAX_BUCKETS 24

typedef enum cl_metric_kind {
    CL_METRIC_COUNTER,
    CL_METRIC_GAUGE,
    CL_METRIC_HISTOGRAM
} cl_metric_kind;

/* The registry's state of a family (platform/metrics); opaque. */
struct cl__metric_state;

/*
 * A metric family: its name (base units, "_total" for counters, "_seconds" for
 * durations), help text, label names (NULL-terminated) and, for a histogram, its bucket
 * upper bounds in increasing order (+Inf is implied). Declare it static with the
 * CL_METRIC_* initialisers; the registry owns what hangs off state.
 */
typedef struct cl_metric {
    cl_metric_kind kind;
    const char *name;
    const char *help;
    const char *labels[CL_METRIC_MAX_LABELS + 1];
    const double *buckets;
    size_t nbuckets;
    _Atomic(struct cl__metric_state *) state;
} cl_metric;

#define CL_METRIC_COUNTER(name, help, ...)                                                         \
    {                                                                                              \
        CL_METRIC_COUNTER, (name), (help), {__VA_ARGS__, NULL}, NULL, 0, NULL                      \
    }
#define CL_METRIC_GAUGE(name, help, ...)                                                           \
    {                                                                                              \
        CL_METRIC_GAUGE, (name), (help), {__VA_ARGS__, NULL}, NULL, 0, NULL                        \
    }
/* buckets is a static array of doubles. */
#define CL_METRIC_HISTOGRAM(name, help, buckets, ...)                                              \
    {                                                                                              \
        CL_METRIC_HISTOGRAM, (name), (help), {__VA_ARGS__, NULL}, (buckets),                       \
            sizeof(buckets) / sizeof((buckets)[0]), NULL                                           \
    }

/* Buckets for request and call durations in seconds, 1 ms to 10 s. */
extern const double cl_metric_duration_buckets[14];

/* One label combination of a family; owned by the registry for the process's life. */
typedef struct cl_series cl_series;

/*
 * The series of m for values[nvalues] (one per label name of m, in order; none when m
 * has no labels, then values may be NULL). Registers m on its first use. NULL when m is
 * malformed (a name or label that Prometheus does not accept, too many buckets, a name
 * registered already as a different family), when nvalues is not m's label count, when a
 * value is NULL or when m holds CL_METRIC_MAX_SERIES combinations already; recording into
 * NULL does nothing. Thread-safe; lock-free once the combination exists.
 */
cl_series *cl_metric_series(cl_metric *m, const char *const *values, size_t nvalues);
/* cl_metric_series(m, {values...}, their count), for a family with labels. */
#define CL_METRIC_SERIES(m, ...)                                                                   \
    cl_metric_series((m), (const char *const[]){__VA_ARGS__},                                      \
                     sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Adds v to a gauge, or v >= 0 to a counter (a negative one is ignored). Lock-free. */
void cl_metric_add(cl_series *s, double v);
/*
 * Sets a gauge, or a counter that mirrors a cumulative figure kept elsewhere (a pool's
 * waits, the process's CPU time), read when the registry is rendered. Lock-free.
 */
void cl_metric_set(cl_series *s, double v);
/* Records one observation into a histogram. Lock-free. */
void cl_metric_observe(cl_series *s, double v);
/* The current value of a counter or gauge, or the observation count of a histogram. */
double cl_metric_value(const cl_series *s);
/* The sum of a histogram's observations (0 for other kinds). */
double cl_metric_sum(const cl_series *s);

/* A monotonic clock in nanoseconds, for durations; and seconds between two of them. */
int64_t cl_metrics_now_ns(void);
double cl_metrics_since(int64_t start_ns);

/*
 * A collector runs at each rendering, before the families are written, and sets the
 * families that mirror state held elsewhere (a pool's size, a circuit's state). It runs
 * with the registry's collector lock held, so it must not add or remove collectors.
 */
typedef void (*cl_metrics_collect_fn)(void *arg);
/* Adds fn(arg). CL_INVALID for a NULL fn; CL_INTERNAL when out of memory. */
cl_status cl_metrics_collector_add(cl_metrics_collect_fn fn, void *arg);
/* Removes fn(arg); waits for a rendering in progress. A pair never added is a no-op. */
void cl_metrics_collector_remove(cl_metrics_collect_fn fn, void *arg);

/*
 * The registry in the Prometheus text exposition format 0.0.4, with the process's own
 * figures (process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
 * process_max_fds, process_virtual_memory_bytes, process_start_time_seconds). *out
 * receives a NUL-terminated text the caller frees with free(); *len its length.
 * CL_INTERNAL when out of memory.
 */
cl_status cl_metrics_render(char **out, size_t *len);
/* The content type of that text. */
#define CL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* cleave_build_info{service, version} 1: what runs here. Call once at startup. */
void cl_metrics_build_info(const char *service, const char *version);

/* --- the platform's shared families, recorded at one call per site ---------------- */

/*
 * One HTTP request answered: route is the matched pattern (NULL when none matched),
 * method the request's, status the answer's; start_ns from cl_metrics_now_ns.
 */
void cl_metrics_http(const char *route, const char *method, int status, int64_t start_ns);

/*
 * One call of a module's operation through its local or remote binding ("local" or
 * "remote"), with the status it returned; start_ns from cl_metrics_now_ns.
 */
void cl_metrics_operation(const char *module, const char *operation, const char *binding,
                          cl_status st, int64_t start_ns);

/*
 * One call of module callee's operation made by caller (a module, or "gateway" for code
 * of no module: routes, GraphQL, the host), through callee's "local" or "remote" binding:
 * cleave_module_calls_total, from which `cleave advise` reads what an extraction would
 * put on the network (ADR 0039). Counted where the call is made, once per call.
 */
void cl_metrics_module_call(const char *caller, const char *callee, const char *operation,
                            const char *binding);

/*
 * One remote call's outcome by target module: "ok", "circuit_open" (refused without a
 * network call), or the status name of the failure ("deadline_exceeded", "unavailable").
 */
void cl_metrics_remote_outcome(const char *target, const char *outcome);

/*
 * A saga (a process manager, ADR 0014): one step ended with outcome ("ok", "failed",
 * "compensated"...) after seconds; and a saga instance ended with outcome ("completed",
 * "compensated", "failed"). saga and step are the saga's declared names.
 */
void cl_metrics_saga_step(const char *saga, const char *step, const char *outcome, double seconds);
void cl_metrics_saga_done(const char *saga, const char *outcome);
/* A saga instance began (+1) or stopped (-1) running in this process: cleave_sagas_running. */
void cl_metrics_saga_running(const char *saga, int delta);

#endif /* CLEAVE_METRICS_H */
