/*
 * cleave/retry.h - the platform's one retry policy: backoff with full jitter, a retry
 * budget and a circuit breaker (ADR 0023). The remote binding uses all three per target;
 * the bus and other retry loops use the backoff.
 *
 * Nothing here reads a clock or takes a lock: every function that depends on time takes
 * the current time (cl_now_ms() in production, any value in a test), and a caller that
 * shares a budget or a breaker between threads holds its own lock around the calls.
 */
#ifndef CLEAVE_RETRY_H
#define CLEAVE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "cleave/status.h"

/* --- backoff ---------------------------------------------------------------------- */

/*
 * The ceiling of the wait before retry number attempt (1 for the first retry):
 * base_ms * 2^(attempt - 1), at most max_ms. attempt below 1 counts as 1, base_ms below 1
 * as 1, max_ms below base_ms as base_ms; no attempt count overflows.
 */
int64_t cl_retry_ceiling_ms(int64_t base_ms, int64_t max_ms, int attempt);

/*
 * How long to wait before retry number attempt (1 for the first retry): a uniformly
 * random wait in [0, ceiling], where ceiling is base_ms * 2^(attempt - 1) but at most
 * max_ms ("full jitter": the retries of many callers spread over the whole interval
 * instead of arriving together). attempt below 1 counts as 1, base_ms below 1 as 1,
 * max_ms below base_ms as base_ms; no attempt count overflows.
 */
int64_t cl_retry_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt);

/* --- retry budget ----------------------------------------------------------------- */

/*
 * A token bucket that bounds retries to a share of calls: every call deposits pct
 * hundredths of a token, every retry withdraws a whole token, and the bucket holds at
 * most max_tokens. Starting empty, retries can never exceed pct percent of the calls
 * made so far, so an outage cannot multiply the load on a target by more than
 * (1 + pct / 100). Plain data: zero it with cl_retry_budget_init.
 */
typedef struct cl_retry_budget {
    int pct;           /* 0..100 */
    int64_t cap;       /* max_tokens in hundredths */
    int64_t tokens;    /* in hundredths of a token */
    int64_t calls;     /* calls deposited */
    int64_t retries;   /* retries granted */
    int64_t exhausted; /* retries refused for lack of tokens */
} cl_retry_budget;

/* An empty budget; pct is clamped to 0..100, max_tokens below 1 counts as 1. */
void cl_retry_budget_init(cl_retry_budget *b, int pct, int max_tokens);
/* A call was made (its first attempt). */
void cl_retry_budget_call(cl_retry_budget *b);
/* True, and one token withdrawn, when a retry may be made now; false when exhausted. */
bool cl_retry_budget_take(cl_retry_budget *b);

/* --- circuit breaker -------------------------------------------------------------- */

typedef enum cl_circuit_state {
    CL_CIRCUIT_CLOSED,    /* calls flow; failures are counted in the rolling window */
    CL_CIRCUIT_OPEN,      /* calls fail at once, until the cool-down is over */
    CL_CIRCUIT_HALF_OPEN, /* the cool-down is over: a few probe calls decide */
} cl_circuit_state;

/* "closed", "open" or "half_open". */
const char *cl_circuit_state_name(cl_circuit_state s);

#define CL_BREAKER_BUCKETS 10

typedef struct cl_breaker_options {
    int failure_pct;      /* opens when at least this share of the window's calls failed */
    int min_calls;        /* ... and the window holds at least this many calls */
    int64_t window_ms;    /* the rolling window, kept as CL_BREAKER_BUCKETS buckets */
    int64_t open_ms;      /* cool-down: how long an opened circuit refuses every call */
    int half_open_probes; /* calls let through at once when half-open; below 1 counts as 1 */
} cl_breaker_options;

/* Counters since the breaker was made, for /readyz and logs. */
typedef struct cl_breaker_stats {
    cl_circuit_state state;
    int64_t window_calls;    /* calls in the rolling window */
    int64_t window_failures; /* of which failed */
    int64_t opened;          /* times the circuit opened */
    int64_t rejected;        /* calls refused because it was open (or probes were busy) */
    int64_t retry_in_ms;     /* when open: how long until probes are let through, else 0 */
} cl_breaker_stats;

typedef struct cl_breaker {
    cl_breaker_options opt;
    cl_circuit_state state;
    int64_t opened_at;
    int probes; /* probe calls in flight while half-open */
    struct {
        int64_t start; /* start of the bucket's slice of time; 0: empty */
        int64_t calls;
        int64_t failures;
    } bucket[CL_BREAKER_BUCKETS];
    int64_t opened;
    int64_t rejected;
} cl_breaker;

/* A closed breaker with these options (bounds are clamped to sane values). */
void cl_breaker_init(cl_breaker *b, const cl_breaker_options *opt);
/*
 * Asks to make a call at now. CL_OK: go ahead, then report its outcome with
 * cl_breaker_record (*probe tells it whether this call was a half-open probe).
 * CL_UNAVAILABLE: the circuit is open (or its probes are all taken); do not call.
 */
cl_status cl_breaker_admit(cl_breaker *b, int64_t now, bool *probe);
/*
 * The outcome of an admitted call: failed means the target failed (unreachable, timed
 * out, overloaded), not that it refused bad input. A failed probe opens the circuit
 * again; a successful one closes it with an empty window.
 */
void cl_breaker_record(cl_breaker *b, int64_t now, bool probe, bool failed);
/* The state and counters at now (an open circuit whose cool-down is over is half-open). */
void cl_breaker_stats_at(const cl_breaker *b, int64_t now, cl_breaker_stats *out);

#endif /* CLEAVE_RETRY_H */
