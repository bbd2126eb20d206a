/* Backoff with full jitter, the retry budget and the circuit breaker (cleave/retry.h). */
#include "cleave/retry.h"

#include <string.h>

#include "cleave/util.h"

/* --- backoff ---------------------------------------------------------------------- */

int64_t cl_retry_ceiling_ms(int64_t base_ms, int64_t max_ms, int attempt)
{
    int64_t cap = base_ms < 1 ? 1 : base_ms;

    if (max_ms < cap) {
        max_ms = cap;
    }
    /* Doubling stops at max_ms, so cap never exceeds it and never overflows. */
    for (int i = 1; i < attempt && cap < max_ms; i++) {
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    }
    return cap;
}

int64_t cl_retry_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt)
{
    int64_t cap = cl_retry_ceiling_ms(base_ms, max_ms, attempt);

    /* cap + 1 would overflow at the very top; a wait one millisecond short is harmless. */
    return (int64_t)(cl_random_u64() % (uint64_t)(cap == INT64_MAX ? cap : cap + 1));
}

/* --- retry budget ----------------------------------------------------------------- */

void cl_retry_budget_init(cl_retry_budget *b, int pct, int max_tokens)
{
    memset(b, 0, sizeof(*b));
    b->pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    b->cap = (int64_t)(max_tokens < 1 ? 1 : max_tokens) * 100;
}

void cl_retry_budget_call(cl_retry_budget *b)
{
    b->calls++;
    b->tokens += b->pct;
    if (b->tokens > b->cap) {
        b->tokens = b->cap;
    }
}

bool cl_retry_budget_take(cl_retry_budget *b)
{
    if (b->tokens < 100) {
        b->exhausted++;
        return false;
    }
    b->tokens -= 100;
    b->retries++;
    return true;
}

/* --- circuit breaker -------------------------------------------------------------- */

const char *cl_circuit_state_name(cl_circuit_state s)
{
    switch (s) {
    case CL_CIRCUIT_OPEN:
        return "open";
    case CL_CIRCUIT_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}

void cl_breaker_init(cl_breaker *b, const cl_breaker_options *opt)
{
    memset(b, 0, sizeof(*b));
    b->opt = *opt;
    if (b->opt.failure_pct < 1) {
        b->opt.failure_pct = 1;
    }
    if (b->opt.failure_pct > 100) {
        b->opt.failure_pct = 100;
    }
    if (b->opt.min_calls < 1) {
        b->opt.min_calls = 1;
    }
    /* Each bucket must span at least a millisecond. */
    if (b->opt.window_ms < CL_BREAKER_BUCKETS) {
        b->opt.window_ms = CL_BREAKER_BUCKETS;
    }
    if (b->opt.open_ms < 1) {
        b->opt.open_ms = 1;
    }
    if (b->opt.half_open_probes < 1) {
        b->opt.half_open_probes = 1;
    }
    b->state = CL_CIRCUIT_CLOSED;
}

static int64_t bucket_width(const cl_breaker *b)
{
    return b->opt.window_ms / CL_BREAKER_BUCKETS;
}

/*
 * The window's totals at now: the buckets whose slice of time is among the last
 * CL_BREAKER_BUCKETS slices. A bucket's start is its slice number, so a bucket left
 * over from an older round of the ring is recognised and skipped.
 */
static void window_sum(const cl_breaker *b, int64_t now, int64_t *calls, int64_t *failures)
{
    int64_t slice = now / bucket_width(b);

    *calls = 0;
    *failures = 0;
    for (int i = 0; i < CL_BREAKER_BUCKETS; i++) {
        if (slice - b->bucket[i].start < CL_BREAKER_BUCKETS && b->bucket[i].start <= slice) {
            *calls += b->bucket[i].calls;
            *failures += b->bucket[i].failures;
        }
    }
}

static void window_clear(cl_breaker *b)
{
    memset(b->bucket, 0, sizeof(b->bucket));
}

static void trip(cl_breaker *b, int64_t now)
{
    b->state = CL_CIRCUIT_OPEN;
    b->opened_at = now;
    b->probes = 0;
    b->opened++;
}

cl_status cl_breaker_admit(cl_breaker *b, int64_t now, bool *probe)
{
    *probe = false;
    if (b->state == CL_CIRCUIT_OPEN && now - b->opened_at >= b->opt.open_ms) {
        b->state = CL_CIRCUIT_HALF_OPEN;
        b->probes = 0;
    }
    if (b->state == CL_CIRCUIT_CLOSED) {
        return CL_OK;
    }
    if (b->state == CL_CIRCUIT_HALF_OPEN && b->probes < b->opt.half_open_probes) {
        b->probes++;
        *probe = true;
        return CL_OK;
    }
    b->rejected++;
    return CL_UNAVAILABLE;
}

void cl_breaker_record(cl_breaker *b, int64_t now, bool probe, bool failed)
{
    int64_t slice, calls, failures;
    int i;

    if (probe) {
        if (b->probes > 0) {
            b->probes--;
        }
        /* A probe that ends after another probe reopened the circuit changes nothing. */
        if (b->state != CL_CIRCUIT_HALF_OPEN) {
            return;
        }
        if (failed) {
            trip(b, now);
        } else {
            b->state = CL_CIRCUIT_CLOSED;
            window_clear(b);
        }
        return;
    }
    /* A call admitted before the circuit opened says nothing about the target now. */
    if (b->state != CL_CIRCUIT_CLOSED) {
        return;
    }
    slice = now / bucket_width(b);
    i = (int)(slice % CL_BREAKER_BUCKETS);
    if (b->bucket[i].start != slice) {
        b->bucket[i].start = slice;
        b->bucket[i].calls = 0;
        b->bucket[i].failures = 0;
    }
    b->bucket[i].calls++;
    if (!failed) {
        return;
    }
    b->bucket[i].failures++;
    window_sum(b, now, &calls, &failures);
    if (calls >= b->opt.min_calls && failures * 100 >= (int64_t)b->opt.failure_pct * calls) {
        trip(b, now);
    }
}

void cl_breaker_stats_at(const cl_breaker *b, int64_t now, cl_breaker_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->state = b->state;
    if (b->state == CL_CIRCUIT_OPEN) {
        int64_t left = b->opened_at + b->opt.open_ms - now;

        if (left <= 0) {
            out->state = CL_CIRCUIT_HALF_OPEN;
        } else {
            out->retry_in_ms = left;
        }
    }
    window_sum(b, now, &out->window_calls, &out->window_failures);
    out->opened = b->opened;
    out->rejected = b->rejected;
}
