/*
 * cleave/util.h - small helpers the platform and the modules would otherwise each write
 * again: random ids, retry backoff, wall-clock timestamps (RFC 3339), monotonic
 * deadlines for condition variables, and W3C trace context.
 *
 * Nothing here allocates or keeps state the caller sees; every function is safe to call
 * from any thread. Outputs go to caller-owned buffers of the sizes named below.
 */
#ifndef CLEAVE_UTIL_H
#define CLEAVE_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cleave/status.h"

/* --- hashing --------------------------------------------------------------------- */

#define CL_SHA256_SIZE 32

/* The SHA-256 of data[n] into out (GNU Nettle's: no library state, nothing to fail; ADR 0060). */
void cl_sha256(const void *data, size_t n, unsigned char out[CL_SHA256_SIZE]);

/* --- randomness and ids ------------------------------------------------------------ */

/* 32 hex digits and a NUL: the size cl_random_hex writes. */
#define CL_RANDOM_HEX_SIZE 33

/*
 * Fills buf[n] from the kernel's random source (getrandom, retried after a signal or a
 * short read). CL_OK; CL_INTERNAL in err when the kernel has no randomness to give
 * (buf is then unspecified). err may be NULL.
 */
cl_status cl_random_bytes(void *buf, size_t n, cl_error *err);

/*
 * A random 64-bit value for spreading things out (jitter), not for secrets. Never fails:
 * without kernel randomness it mixes the clock with a process-wide counter.
 */
uint64_t cl_random_u64(void);

/*
 * 32 lowercase hex digits from 16 random bytes into out[CL_RANDOM_HEX_SIZE]. Never fails:
 * without kernel randomness, the clock and a process-wide counter still make the value
 * unique within the process (but guessable), which is all a message or request id needs.
 */
void cl_random_hex(char out[CL_RANDOM_HEX_SIZE]);

/*
 * As cl_random_hex, but the first 12 digits are the wall clock in milliseconds (to the
 * year 10889) and only the other 20 random (80 bits): ids made later sort after, so rows
 * keyed by them go in at the right edge of their indexes (a few pages a commit, where
 * random keys touched a page a row; ADR 0056). A prefix of it (ms and the first random
 * digits) sorts the same way. Not for secrets: it tells when it was made.
 */
void cl_time_ordered_hex(char out[CL_RANDOM_HEX_SIZE]);

/*
 * An id "<prefix><2 * nbytes lowercase hex digits>" from nbytes (1 to 32) random bytes,
 * into out[size]: unique without coordination, across processes and restarts.
 * CL_OK; CL_INVALID when nbytes is out of range or the id does not fit in size;
 * CL_INTERNAL when there is no randomness. out is written only on CL_OK. err may be NULL.
 */
cl_status cl_random_id(const char *prefix, size_t nbytes, char *out, size_t size, cl_error *err);

/* --- retries ---------------------------------------------------------------------- */

/*
 * How long to wait before retry number attempt (1 for the first retry): the ceiling
 * base_ms * 2^(attempt - 1), at most max_ms, and a random wait in [ceiling / 2, ceiling]
 * ("equal jitter": retries of many callers spread out, yet none retries at once).
 * attempt below 1 counts as 1, base_ms below 1 as 1, max_ms below base_ms as base_ms;
 * no attempt count, however large, overflows.
 */
int64_t cl_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt);

/* --- wall-clock timestamps (RFC 3339) ----------------------------------------------- */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" and a NUL fit in 25 bytes; buffers of 32 leave room. */
#define CL_RFC3339_SIZE 32

/* The wall clock (CLOCK_REALTIME) in milliseconds since 1970 UTC: for timestamps only. */
int64_t cl_wall_ms(void);

/*
 * epoch_ms (milliseconds since 1970-01-01T00:00:00Z, may be negative) as RFC 3339 UTC with
 * milliseconds, "2026-01-02T03:04:05.678Z", into out[CL_RFC3339_SIZE]. Years 0 to 9999
 * give the 24-character form; outside that range the year has as many digits as it needs.
 */
void cl_rfc3339_format(int64_t epoch_ms, char out[CL_RFC3339_SIZE]);

/*
 * Parses exactly the form cl_rfc3339_format writes (24 characters, UTC "Z", three digits
 * of milliseconds, a real calendar date, seconds 00 to 59) into *epoch_ms.
 * CL_OK; CL_INVALID for anything else. *epoch_ms is written only on CL_OK.
 */
cl_status cl_rfc3339_parse(const char *s, int64_t *epoch_ms);

/* --- monotonic deadlines ------------------------------------------------------------- */

/*
 * Initialises cv so that pthread_cond_timedwait measures its deadline on CLOCK_MONOTONIC
 * (the clock of cl_now_ms): a wall-clock step then neither stretches nor cuts short a
 * timeout. Returns 0 or the errno value of the failing pthread call. Destroy cv with
 * pthread_cond_destroy.
 */
int cl_cond_init_monotonic(pthread_cond_t *cv);

/*
 * The CLOCK_MONOTONIC instant ms milliseconds from now (now when ms <= 0), for
 * pthread_cond_timedwait on a condition made by cl_cond_init_monotonic.
 */
struct timespec cl_deadline_in(int64_t ms);

/* The CLOCK_MONOTONIC instant at cl_now_ms() value at_ms, as a timespec (same use). */
struct timespec cl_deadline_at(int64_t at_ms);

/* --- mutexes ---------------------------------------------------------------------------- */

/*
 * Initialises mu as an error-checking mutex: a thread that locks it again while holding it
 * gets EDEADLK at once instead of waiting for itself. 0 or the errno value of the failing
 * pthread call.
 */
int cl_mutex_init_errorcheck(pthread_mutex_t *mu);

/*
 * Locks mu, waiting at most ms milliseconds: 0, ETIMEDOUT, or EDEADLK (an error-checking
 * mutex this thread holds). The wait is measured on CLOCK_REALTIME, the clock of
 * pthread_mutex_timedlock: pthread_mutex_clocklock is not known to the thread sanitizer.
 */
int cl_mutex_lock_within(pthread_mutex_t *mu, int64_t ms);

/* --- threads ---------------------------------------------------------------------------- */

/*
 * Names the calling thread "<owner>.<role>", cut to the 15 bytes Linux keeps, as top -H,
 * perf and gdb show it (a no-op elsewhere).
 */
void cl_thread_name(const char *owner, const char *role);

/*
 * The nice value the process's background threads take from now on (cl_thread_background):
 * 0 (the default) leaves them at the process's own; 1-19 lowers their share of the CPU
 * against the threads that answer requests (ADR 0071). Set by the host before its modules
 * start (CLEAVE_BACKGROUND_NICE).
 */
void cl_thread_background_nice(int nice);

/*
 * Names the calling thread (cl_thread_name) and marks it a background thread: one whose
 * work no request waits on (relays, inbox workers, runners, sweepers, checkpoints, flushes).
 * On Linux it takes the nice value set above when that is higher than its own (a thread
 * never gains priority by it); elsewhere only the name is set.
 */
void cl_thread_background(const char *owner, const char *role);

/* --- W3C trace context ----------------------------------------------------------------- */

/* "00-<32 hex>-<16 hex>-<2 hex>" and a NUL. */
#define CL_TRACEPARENT_SIZE 56

/*
 * Parses a traceparent header value (W3C Trace Context, level 1) into trace_id[33] and
 * span_id[17] (the parent id), NUL-terminated. CL_OK; CL_INVALID for NULL, a wrong length,
 * a version "ff", a field that is not lowercase hex, an all-zero trace or parent id, or
 * version 00 with anything after the flags (a later version may append "-..." fields).
 * The outputs are written only on CL_OK.
 */
cl_status cl_traceparent_parse(const char *value, char trace_id[33], char span_id[17]);

/*
 * Formats "00-<trace_id>-<span_id>-01" (sampled) into out[CL_TRACEPARENT_SIZE].
 * CL_OK; CL_INVALID, with out untouched, unless trace_id is 32 and span_id 16 lowercase
 * hex digits, not all zero.
 */
cl_status cl_traceparent_format(const char *trace_id, const char *span_id,
                                char out[CL_TRACEPARENT_SIZE]);

#endif /* CLEAVE_UTIL_H */
