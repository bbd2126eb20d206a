/*
 * SHA-256, random ids, backoff, RFC 3339, monotonic deadlines, thread names and priorities,
 * and trace context (cleave/util.h).
 */
#include "cleave/util.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cleave/retry.h"

/* --- hashing --------------------------------------------------------------------- */

void cl_sha256(const void *data, size_t n, unsigned char out[CL_SHA256_SIZE])
{
    struct sha256_ctx c;

    sha256_init(&c);
    sha256_update(&c, n, data);
    sha256_digest(&c, CL_SHA256_SIZE, out);
}

/* --- randomness and ids ------------------------------------------------------------ */

static const char hex_digits[] = "0123456789abcdef";

cl_status cl_random_bytes(void *buf, size_t n, cl_error *err)
{
    unsigned char *p = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return cl_error_set(err, CL_INTERNAL, NULL, "no randomness available");
        }
        got += (size_t)r;
    }
    return CL_OK;
}

/*
 * Without kernel randomness: the wall clock, the monotonic clock and a process-wide
 * counter, mixed by splitmix64, so that two calls never give the same value in a process.
 */
static uint64_t fallback_u64(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t z = (uint64_t)cl_wall_ms() * 1000003u ^ (uint64_t)cl_now_ms() ^
                 (uint64_t)atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ULL;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t cl_random_u64(void)
{
    uint64_t v;

    if (cl_random_bytes(&v, sizeof(v), NULL) != CL_OK) {
        v = fallback_u64();
    }
    return v;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[b[i] >> 4];
        out[2 * i + 1] = hex_digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/*
 * Ids (request, message, token ids) come from a per-thread pool of the kernel's
 * randomness, refilled ID_POOL_BYTES at a time: one getrandom per 256 ids instead of one
 * per id (issue #16 counted one per request). Bytes are wiped as they are handed out, and
 * a child after fork() refills before its first id, so parent and child never share one.
 * The pool is the kernel's randomness read in bulk, so cl_random_id still suits secrets.
 *
 * The pool is on the heap, made by a thread's first id, and only a pointer is thread-local:
 * glibc zeroes every thread's static TLS when it starts the thread, so 4 KiB there cost
 * each of the monolith's 86 threads a resident page, though most (idle HTTP workers, the
 * relays) never make an id (ADR 0047).
 */
#define ID_POOL_BYTES 4096

struct id_pool {
    unsigned char bytes[ID_POOL_BYTES];
    size_t used;
    unsigned generation;
    bool filled;
};

static atomic_uint fork_generation;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;
static pthread_key_t id_pool_key; /* frees a thread's pool when the thread ends */
static bool id_pool_keyed;
static _Thread_local struct id_pool *id_pool;

static void after_fork_in_child(void)
{
    atomic_fetch_add(&fork_generation, 1);
}

/* At a thread's end: the bytes not handed out are wiped too, they were never used. */
static void id_pool_free(void *p)
{
    explicit_bzero(p, sizeof(struct id_pool));
    free(p);
    id_pool = NULL;
}

static void id_init(void)
{
    (void)pthread_atfork(NULL, NULL, after_fork_in_child);
    id_pool_keyed = pthread_key_create(&id_pool_key, id_pool_free) == 0;
}

/* The calling thread's pool (borrowed), made on its first call; NULL when out of memory. */
static struct id_pool *thread_pool(void)
{
    struct id_pool *p = id_pool;

    pthread_once(&id_once, id_init);
    if (p == NULL && id_pool_keyed) {
        p = calloc(1, sizeof(*p));
        if (p != NULL && pthread_setspecific(id_pool_key, p) != 0) {
            free(p);
            p = NULL;
        }
        id_pool = p;
    }
    return p;
}

/* n (at most ID_POOL_BYTES) random bytes for an id into out; false without randomness. */
static bool id_random(unsigned char *out, size_t n)
{
    struct id_pool *pool = thread_pool();
    unsigned generation = atomic_load(&fork_generation);

    if (pool == NULL) {
        return false;
    }
    if (!pool->filled || pool->generation != generation || ID_POOL_BYTES - pool->used < n) {
        pool->filled = cl_random_bytes(pool->bytes, ID_POOL_BYTES, NULL) == CL_OK;
        pool->used = 0;
        pool->generation = generation;
        if (!pool->filled) {
            return false;
        }
    }
    memcpy(out, pool->bytes + pool->used, n);
    memset(pool->bytes + pool->used, 0, n);
    pool->used += n;
    return true;
}

void cl_random_hex(char out[CL_RANDOM_HEX_SIZE])
{
    unsigned char b[16] = {0};

    if (!id_random(b, sizeof(b))) {
        uint64_t hi = fallback_u64(), lo = fallback_u64();

        for (size_t i = 0; i < 8; i++) {
            b[i] = (unsigned char)(hi >> (i * 8));
            b[8 + i] = (unsigned char)(lo >> (i * 8));
        }
    }
    to_hex(b, sizeof(b), out);
}

void cl_time_ordered_hex(char out[CL_RANDOM_HEX_SIZE])
{
    char rnd[CL_RANDOM_HEX_SIZE];
    unsigned long long ms = (unsigned long long)cl_wall_ms();

    cl_random_hex(rnd);
    snprintf(out, CL_RANDOM_HEX_SIZE, "%012llx%.20s", ms & 0xffffffffffffULL, rnd);
}

cl_status cl_random_id(const char *prefix, size_t nbytes, char *out, size_t size, cl_error *err)
{
    unsigned char b[32] = {0};
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    cl_status rc;

    if (out == NULL || nbytes < 1 || nbytes > sizeof(b) || plen + 2 * nbytes >= size) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_random_id: %zu bytes do not fit", nbytes);
    }
    rc = id_random(b, nbytes) ? CL_OK
                              : cl_error_set(err, CL_INTERNAL, NULL, "no randomness available");
    if (rc != CL_OK) {
        return rc;
    }
    if (prefix != NULL) {
        memcpy(out, prefix, plen + 1);
    }
    to_hex(b, nbytes, out + plen);
    return CL_OK;
}

/* --- retries ---------------------------------------------------------------------- */

int64_t cl_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt)
{
    int64_t cap = cl_retry_ceiling_ms(base_ms, max_ms, attempt);

    return cap / 2 + (int64_t)(cl_random_u64() % (uint64_t)(cap / 2 + 1));
}

/* --- wall-clock timestamps (RFC 3339) ----------------------------------------------- */

int64_t cl_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's
 * algorithms): exact for any year, unlike timegm, which is not standard C and depends on
 * the width of time_t.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Floor division, so that instants before 1970 land in the right day and second. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The instants RFC 3339's four-digit years can name: 0000-01-01 to 9999-12-31. */
#define RFC3339_MIN_MS ((int64_t)-62167219200000)
#define RFC3339_MAX_MS ((int64_t)253402300799999)

/* v (0 <= v < 10^n) as n decimal digits at p; the byte after them. */
static char *put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/*
 * Written digit by digit: a checkout stamps some two dozen rows and messages, and snprintf
 * took some 4,000 instructions a stamp (ADR 0054).
 */
void cl_rfc3339_format(int64_t epoch_ms, char out[CL_RFC3339_SIZE])
{
    int64_t days, in_day, year;
    int month, day;
    char *p = out;

    if (epoch_ms < RFC3339_MIN_MS) {
        epoch_ms = RFC3339_MIN_MS;
    } else if (epoch_ms > RFC3339_MAX_MS) {
        epoch_ms = RFC3339_MAX_MS;
    }
    days = floor_div(epoch_ms, 86400000);
    in_day = epoch_ms - days * 86400000;
    civil_from_days(days, &year, &month, &day);
    p = put_digits(p, year, 4);
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, in_day / 3600000, 2);
    *p++ = ':';
    p = put_digits(p, in_day / 60000 % 60, 2);
    *p++ = ':';
    p = put_digits(p, in_day / 1000 % 60, 2);
    *p++ = '.';
    p = put_digits(p, in_day % 1000, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* The n decimal digits at s as a number, or -1 when one of them is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

cl_status cl_rfc3339_parse(const char *s, int64_t *epoch_ms)
{
    int y, mo, d, h, mi, se, ms;

    if (s == NULL || epoch_ms == NULL || strlen(s) != 24 || s[4] != '-' || s[7] != '-' ||
        s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z') {
        return CL_INVALID;
    }
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    se = digits(s + 17, 2);
    ms = digits(s + 20, 3);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || se < 0 || se > 59 || ms < 0) {
        return CL_INVALID;
    }
    *epoch_ms = days_from_civil(y, mo, d) * 86400000 + (int64_t)h * 3600000 + (int64_t)mi * 60000 +
                (int64_t)se * 1000 + ms;
    return CL_OK;
}

/* --- monotonic deadlines ------------------------------------------------------------- */

int cl_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);

    if (rc != 0) {
        return rc;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cv, &attr);
    }
    pthread_condattr_destroy(&attr);
    return rc;
}

/* Now on clock, plus ms when ms > 0. */
static struct timespec clock_in(clockid_t clock, int64_t ms)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    if (ms > 0) {
        ts.tv_sec += (time_t)(ms / 1000);
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    return ts;
}

struct timespec cl_deadline_in(int64_t ms)
{
    return clock_in(CLOCK_MONOTONIC, ms);
}

struct timespec cl_deadline_at(int64_t at_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)floor_div(at_ms, 1000);
    ts.tv_nsec = (long)(at_ms - floor_div(at_ms, 1000) * 1000) * 1000000L;
    return ts;
}

int cl_mutex_init_errorcheck(pthread_mutex_t *mu)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);

    if (rc != 0) {
        return rc;
    }
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0) {
        rc = pthread_mutex_init(mu, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int cl_mutex_lock_within(pthread_mutex_t *mu, int64_t ms)
{
    struct timespec until = clock_in(CLOCK_REALTIME, ms);

    return pthread_mutex_timedlock(mu, &until);
}

/* --- threads ---------------------------------------------------------------------------- */

void cl_thread_name(const char *owner, const char *role)
{
#if defined(__linux__)
    char name[16];

    snprintf(name, sizeof(name), "%s.%s", owner, role);
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)owner;
    (void)role;
#endif
}

static atomic_int background_nice;

void cl_thread_background_nice(int nice)
{
    atomic_store(&background_nice, nice);
}

void cl_thread_background(const char *owner, const char *role)
{
    cl_thread_name(owner, role);
#if defined(__linux__)
    int nice = atomic_load(&background_nice);
    id_t tid;

    if (nice <= 0) {
        return;
    }
    /*
     * On Linux a nice value is each thread's own (PRIO_PROCESS with a thread id). Raising it
     * needs no privilege; one the thread already has above this is kept.
     */
    tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    if (getpriority(PRIO_PROCESS, tid) < nice && errno == 0) {
        (void)setpriority(PRIO_PROCESS, tid, nice);
    }
#endif
}

/* --- W3C trace context ----------------------------------------------------------------- */

/* n lowercase hex digits (the specification forbids capitals), not all of them zero. */
static bool lower_hex(const char *s, size_t n, bool nonzero)
{
    bool any = false;

    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
        any = any || s[i] != '0';
    }
    return any || !nonzero;
}

cl_status cl_traceparent_parse(const char *value, char trace_id[33], char span_id[17])
{
    size_t n;

    if (value == NULL) {
        return CL_INVALID;
    }
    /* version(2) - trace id(32) - parent id(16) - flags(2) */
    n = strlen(value);
    if (n < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-' ||
        !lower_hex(value, 2, false) || strncmp(value, "ff", 2) == 0 ||
        !lower_hex(value + 3, 32, true) || !lower_hex(value + 36, 16, true) ||
        !lower_hex(value + 53, 2, false)) {
        return CL_INVALID;
    }
    /* Version 00 ends at the flags; a later version may only add "-" and more fields. */
    if (n > 55 && (strncmp(value, "00", 2) == 0 || value[55] != '-')) {
        return CL_INVALID;
    }
    memcpy(trace_id, value + 3, 32);
    trace_id[32] = '\0';
    memcpy(span_id, value + 36, 16);
    span_id[16] = '\0';
    return CL_OK;
}

cl_status cl_traceparent_format(const char *trace_id, const char *span_id,
                                char out[CL_TRACEPARENT_SIZE])
{
    if (trace_id == NULL || span_id == NULL || strlen(trace_id) != 32 || strlen(span_id) != 16 ||
        !lower_hex(trace_id, 32, true) || !lower_hex(span_id, 16, true)) {
        return CL_INVALID;
    }
    snprintf(out, CL_TRACEPARENT_SIZE, "00-%s-%s-01", trace_id, span_id);
    return CL_OK;
}
