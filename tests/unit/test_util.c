/*
 * cleave/util.h: random ids, backoff, RFC 3339, monotonic deadlines, trace context.
 *
 * The deadline tests move the wall clock: this executable defines clock_gettime, which
 * every caller in it (the platform library included) reaches instead of the C library's,
 * and which can report CLOCK_REALTIME an hour behind. A deadline computed on the wall
 * clock then lies in the past for the kernel, and its wait returns at once.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../platform/bus/bus_internal.h"
#include "cleave/util.h"

static atomic_llong wall_shift_s;

/* Replaces the C library's clock_gettime, whose header names the parameters its own way. */
// NOLINTNEXTLINE(readability-inconsistent-declaration-parameter-name)
int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = (int)syscall(SYS_clock_gettime, id, ts);

    if (rc == 0 && id == CLOCK_REALTIME) {
        ts->tv_sec += (time_t)atomic_load(&wall_shift_s);
    }
    return rc;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* --- ids ---------------------------------------------------------------------------- */

static void test_random_hex_is_well_formed_and_unique(void **state)
{
    static char seen[1000][CL_RANDOM_HEX_SIZE];

    (void)state;
    for (int i = 0; i < 1000; i++) {
        memset(seen[i], 'x', sizeof(seen[i]));
        cl_random_hex(seen[i]);
        assert_int_equal(strlen(seen[i]), 32);
        assert_true(is_lower_hex(seen[i], 32));
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(seen[i], seen[j]);
        }
    }
}

static void test_random_id_has_prefix_and_digits(void **state)
{
    char a[32], b[32];

    (void)state;
    assert_int_equal(cl_random_id("ord-", 12, a, sizeof(a), NULL), CL_OK);
    assert_int_equal(strlen(a), 4 + 24);
    assert_memory_equal(a, "ord-", 4);
    assert_true(is_lower_hex(a + 4, 24));
    assert_int_equal(cl_random_id("ord-", 12, b, sizeof(b), NULL), CL_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(cl_random_id(NULL, 8, a, 17, NULL), CL_OK);
    assert_int_equal(strlen(a), 16);
}

/*
 * Time-ordered ids (ADR 0056): the wall clock's ms in the first 12 digits, 80 random bits
 * after; one made in a later millisecond sorts after, and ids of one millisecond differ.
 */
static void test_time_ordered_hex_sorts_by_time_and_is_unique(void **state)
{
    static char seen[1000][CL_RANDOM_HEX_SIZE];
    char ms[16], later[CL_RANDOM_HEX_SIZE];
    int64_t before = cl_wall_ms(), after;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        cl_time_ordered_hex(seen[i]);
        assert_int_equal(strlen(seen[i]), 32);
        assert_true(is_lower_hex(seen[i], 32));
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(seen[i], seen[j]);
        }
    }
    after = cl_wall_ms();
    snprintf(ms, sizeof(ms), "%012llx", (unsigned long long)before);
    assert_true(memcmp(seen[0], ms, 12) >= 0);
    snprintf(ms, sizeof(ms), "%012llx", (unsigned long long)after);
    assert_true(memcmp(seen[999], ms, 12) <= 0);
    /* The next millisecond's id sorts after every one made before it. */
    while (cl_wall_ms() <= after) {
    }
    cl_time_ordered_hex(later);
    for (int i = 0; i < 1000; i++) {
        assert_true(strcmp(later, seen[i]) > 0);
    }
}

/*
 * Ids come from a per-thread pool of randomness: a child after fork() must not hand out
 * the ids its parent has yet to use.
 */
static void test_random_ids_differ_between_parent_and_forked_child(void **state)
{
    char first[CL_RANDOM_HEX_SIZE], parent[CL_RANDOM_HEX_SIZE], child[CL_RANDOM_HEX_SIZE];
    int fds[2];
    pid_t pid;
    int status = 0;

    (void)state;
    cl_random_hex(first); /* the pool is filled */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[CL_RANDOM_HEX_SIZE];

        cl_random_hex(id);
        _exit(write(fds[1], id, sizeof(id)) == (ssize_t)sizeof(id) ? 0 : 1);
    }
    cl_random_hex(parent);
    close(fds[1]);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_not_equal(parent, child);
    assert_string_not_equal(first, child);
}

/* Ids of other threads are not the ids of this one (each has its own pool). */
static void *hex_in_thread(void *arg)
{
    cl_random_hex(arg);
    return NULL;
}

static void test_random_ids_differ_between_threads(void **state)
{
    char mine[CL_RANDOM_HEX_SIZE], theirs[CL_RANDOM_HEX_SIZE];
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, hex_in_thread, theirs), 0);
    cl_random_hex(mine);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_not_equal(mine, theirs);
}

static void test_random_id_refuses_what_does_not_fit(void **state)
{
    char out[16] = "untouched";
    cl_error err;

    (void)state;
    /* "acc_" and 16 digits need 21 bytes. */
    assert_int_equal(cl_random_id("acc_", 8, out, sizeof(out), &err), CL_INVALID);
    assert_int_equal(err.status, CL_INVALID);
    assert_string_equal(out, "untouched");
    assert_int_equal(cl_random_id("a", 0, out, sizeof(out), NULL), CL_INVALID);
    assert_int_equal(cl_random_id("a", 33, out, sizeof(out), NULL), CL_INVALID);
    assert_string_equal(out, "untouched");
}

/* --- backoff ------------------------------------------------------------------------ */

static void test_backoff_doubles_within_jitter_bounds(void **state)
{
    (void)state;
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t cap = 50LL << (attempt - 1) < 2000 ? 50LL << (attempt - 1) : 2000;
        int64_t lo = INT64_MAX, hi = 0;

        for (int i = 0; i < 500; i++) {
            int64_t d = cl_backoff_ms(50, 2000, attempt);
            assert_in_range(d, cap / 2, cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Jittered: 500 draws over [cap/2, cap] do not all land on one value. */
        assert_true(hi > lo);
    }
}

static void test_backoff_never_overflows(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        assert_in_range(cl_backoff_ms(50, 2000, INT32_MAX), 1000, 2000);
        assert_in_range(cl_backoff_ms(1, INT64_MAX, 200), 0, INT64_MAX);
        assert_in_range(cl_backoff_ms(INT64_MAX / 3 * 2, INT64_MAX, INT32_MAX), INT64_MAX / 2 - 1,
                        INT64_MAX);
    }
    /* Out-of-range arguments are clamped, not trusted. */
    assert_in_range(cl_backoff_ms(0, -5, -3), 0, 1);
    assert_in_range(cl_backoff_ms(100, 10, 1), 50, 100);
}

/* --- RFC 3339 ------------------------------------------------------------------------- */

static void test_rfc3339_formats_known_instants(void **state)
{
    char out[CL_RFC3339_SIZE];

    (void)state;
    cl_rfc3339_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    cl_rfc3339_format(1767323045678LL, out);
    assert_string_equal(out, "2026-01-02T03:04:05.678Z");
    cl_rfc3339_format(951782400000LL, out); /* a leap day of a year divisible by 400 */
    assert_string_equal(out, "2000-02-29T00:00:00.000Z");
    cl_rfc3339_format(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    cl_rfc3339_format(253402300799999LL, out);
    assert_string_equal(out, "9999-12-31T23:59:59.999Z");
}

/* The same text as libc's gmtime_r and strftime, over instants spread across 1900-9999. */
static void test_rfc3339_agrees_with_gmtime(void **state)
{
    uint64_t x = 88172645463325252ULL;
    char out[CL_RFC3339_SIZE];
    char want[64];

    (void)state;
    for (int i = 0; i < 20000; i++) {
        const int64_t lo = -2208988800000LL; /* 1900-01-01 */
        const int64_t hi = 253402300799999LL;
        int64_t ms;
        time_t secs;
        struct tm tm;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms = lo + (int64_t)(x % (uint64_t)(hi - lo));
        secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        assert_non_null(gmtime_r(&secs, &tm));
        assert_true(strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm) > 0);
        snprintf(want + strlen(want), sizeof(want) - strlen(want), ".%03dZ",
                 (int)(ms - (int64_t)secs * 1000));
        cl_rfc3339_format(ms, out);
        assert_string_equal(out, want);
    }
}

static void test_rfc3339_round_trips(void **state)
{
    static const int64_t samples[] = {
        0, 1, -1, 86399999, 951868799999LL, 1767323045678LL, -62135596800000LL, 253402300799999LL};
    char out[CL_RFC3339_SIZE];
    int64_t back = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        cl_rfc3339_format(samples[i], out);
        assert_int_equal(cl_rfc3339_parse(out, &back), CL_OK);
        assert_int_equal(back, samples[i]);
    }
    /* Every millisecond step of a day boundary, and now. */
    for (int64_t ms = 1767225599990LL; ms < 1767225600010LL; ms++) {
        cl_rfc3339_format(ms, out);
        assert_int_equal(cl_rfc3339_parse(out, &back), CL_OK);
        assert_int_equal(back, ms);
    }
    cl_now_rfc3339(out);
    assert_int_equal(cl_rfc3339_parse(out, &back), CL_OK);
    assert_in_range(back, cl_wall_ms() - 5000, cl_wall_ms());
}

static void test_rfc3339_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "2026-01-02T03:04:05Z",          /* no milliseconds */
        "2026-01-02T03:04:05.678+00:00", /* only UTC "Z" is written */
        "2026-01-02 03:04:05.678Z",      /* space for T */
        "2026-13-02T03:04:05.678Z",      /* month 13 */
        "2026-02-29T03:04:05.678Z",      /* not a leap year */
        "1900-02-29T00:00:00.000Z",      /* divisible by 100, not by 400 */
        "2026-04-31T03:04:05.678Z",      /* April has 30 days */
        "2026-01-00T03:04:05.678Z",      /* day 0 */
        "2026-01-02T24:04:05.678Z",      /* hour 24 */
        "2026-01-02T03:60:05.678Z",      /* minute 60 */
        "2026-01-02T03:04:60.678Z",      /* second 60 */
        "2026-01-02T03:04:05.6a8Z",      /* not a digit */
        "+026-01-02T03:04:05.678Z",      /* sign */
        "2026-01-02T03:04:05.678Zx",     /* trailing byte */
    };
    int64_t ms = 42;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cl_rfc3339_parse(bad[i], &ms), CL_INVALID);
    }
    assert_int_equal(cl_rfc3339_parse(NULL, &ms), CL_INVALID);
    assert_int_equal(ms, 42);
    assert_int_equal(cl_rfc3339_parse("2024-02-29T00:00:00.000Z", &ms), CL_OK);
}

/* --- monotonic deadlines ------------------------------------------------------------- */

static void test_deadline_in_is_on_the_monotonic_clock(void **state)
{
    struct timespec mono, ts;

    (void)state;
    atomic_store(&wall_shift_s, -3600);
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &mono);
    ts = cl_deadline_in(1500);
    atomic_store(&wall_shift_s, 0);
    assert_in_range(ts.tv_nsec, 0, 999999999);
    assert_in_range((ts.tv_sec - mono.tv_sec) * 1000 + (ts.tv_nsec - mono.tv_nsec) / 1000000, 1500,
                    2500);
    ts = cl_deadline_at(12345);
    assert_int_equal(ts.tv_sec, 12);
    assert_int_equal(ts.tv_nsec, 345000000L);
}

/* Milliseconds a timed wait of ms on a monotonic condition lasts with the wall clock off. */
static int64_t timed_wait_ms(int64_t ms)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    struct timespec until;
    int64_t t0, rc = 0;

    assert_int_equal(cl_cond_init_monotonic(&cv), 0);
    atomic_store(&wall_shift_s, -3600);
    t0 = cl_now_ms();
    until = cl_deadline_in(ms);
    pthread_mutex_lock(&mu);
    while (rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    }
    pthread_mutex_unlock(&mu);
    t0 = cl_now_ms() - t0;
    atomic_store(&wall_shift_s, 0);
    pthread_cond_destroy(&cv);
    return t0;
}

static void test_cond_wait_ignores_a_wall_clock_jump(void **state)
{
    (void)state;
    assert_in_range(timed_wait_ms(150), 140, 10000);
}

/* The bus relays' idle wait: it once measured its deadline on the wall clock. */
static void test_bus_idle_wait_ignores_a_wall_clock_jump(void **state)
{
    static cl_bus bus;
    uint64_t seen = 0;
    int64_t t0;
    int r;

    (void)state;
    atomic_store(&wall_shift_s, -3600);
    t0 = cl_now_ms();
    r = cl__bus_idle(&bus, NULL, &seen, 200);
    t0 = cl_now_ms() - t0;
    atomic_store(&wall_shift_s, 0);
    assert_int_equal(r, 0);
    assert_in_range(t0, 190, 10000);
}

/* --- trace context ------------------------------------------------------------------- */

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN  "00f067aa0ba902b7"

static void test_traceparent_parses_a_valid_header(void **state)
{
    char trace[33], span[17];

    (void)state;
    assert_int_equal(cl_traceparent_parse("00-" TRACE "-" SPAN "-01", trace, span), CL_OK);
    assert_string_equal(trace, TRACE);
    assert_string_equal(span, SPAN);
    /* A later version may carry more fields after the flags. */
    assert_int_equal(
        cl_traceparent_parse("cc-" TRACE "-" SPAN "-00-what-the-future-holds", trace, span), CL_OK);
}

static void test_traceparent_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "00-" TRACE "-" SPAN,                              /* no flags */
        "00-" TRACE "-" SPAN "-0",                         /* short flags */
        "00-" TRACE "-" SPAN "-01-",                       /* version 00 ends there */
        "00-" TRACE "0-" SPAN "-01",                       /* trace id too long */
        "00-" TRACE "-" SPAN "0-01",                       /* span id too long */
        "ff-" TRACE "-" SPAN "-01",                        /* version ff is invalid */
        "00-00000000000000000000000000000000-" SPAN "-01", /* all-zero trace id */
        "00-" TRACE "-0000000000000000-01",                /* all-zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01", /* uppercase */
        "00-" TRACE "-00F067AA0BA902B7-01",                /* uppercase */
        "0g-" TRACE "-" SPAN "-01",                        /* version not hex */
        "00-" TRACE "-" SPAN "-0x",                        /* flags not hex */
        "00_" TRACE "-" SPAN "-01",                        /* separator */
        "cc-" TRACE "-" SPAN "-01x",                       /* later version, no dash */
    };
    char trace[33] = "keep", span[17] = "keep";

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cl_traceparent_parse(bad[i], trace, span), CL_INVALID);
    }
    assert_int_equal(cl_traceparent_parse(NULL, trace, span), CL_INVALID);
    assert_string_equal(trace, "keep");
    assert_string_equal(span, "keep");
}

static void test_traceparent_formats_and_round_trips(void **state)
{
    char out[CL_TRACEPARENT_SIZE] = "keep", trace[33], span[17];

    (void)state;
    assert_int_equal(cl_traceparent_format(TRACE, SPAN, out), CL_OK);
    assert_string_equal(out, "00-" TRACE "-" SPAN "-01");
    assert_int_equal(cl_traceparent_parse(out, trace, span), CL_OK);
    assert_string_equal(trace, TRACE);
    assert_string_equal(span, SPAN);

    strcpy(out, "keep");
    assert_int_equal(cl_traceparent_format("", "", out), CL_INVALID);
    assert_int_equal(cl_traceparent_format(TRACE, "", out), CL_INVALID);
    assert_int_equal(cl_traceparent_format("4BF92F3577B34DA6A3CE929D0E0E4736", SPAN, out),
                     CL_INVALID);
    assert_int_equal(cl_traceparent_format("00000000000000000000000000000000", SPAN, out),
                     CL_INVALID);
    assert_int_equal(cl_traceparent_format(TRACE, SPAN "0", out), CL_INVALID);
    assert_int_equal(cl_traceparent_format(NULL, SPAN, out), CL_INVALID);
    assert_string_equal(out, "keep");
}

/* A thread's name is "<owner>.<role>", cut to the 15 bytes Linux keeps (not refused). */
static void *name_me(void *arg)
{
    char *out = arg;

    cl_thread_name("catalog", "relay");
    (void)prctl(PR_GET_NAME, out, 0, 0, 0);
    cl_thread_name("inventory", "worker");
    (void)prctl(PR_GET_NAME, out + 16, 0, 0, 0);
    return NULL;
}

static void test_thread_name_is_owner_dot_role_cut_to_fifteen_bytes(void **state)
{
    char names[32] = "";
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, name_me, names), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(names, "catalog.relay");
    assert_string_equal(names + 16, "inventory.worke");
}

/* What a thread saw of itself before and after cl_thread_background. */
typedef struct background_seen {
    int before;
    int after;
    char name[16];
} background_seen;

static void *go_background(void *arg)
{
    background_seen *seen = arg;
    id_t tid = (id_t)syscall(SYS_gettid);

    seen->before = getpriority(PRIO_PROCESS, tid);
    cl_thread_background("shipping", "runner");
    seen->after = getpriority(PRIO_PROCESS, tid);
    (void)prctl(PR_GET_NAME, seen->name, 0, 0, 0);
    return NULL;
}

static background_seen run_background(void)
{
    background_seen seen = {0};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, go_background, &seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return seen;
}

/*
 * A background thread takes the nice value set (when above its own), on its own: the thread
 * that started it keeps the process's. 0, the default, changes nothing.
 */
static void test_background_thread_takes_the_nice_value_set(void **state)
{
    int base = getpriority(PRIO_PROCESS, 0);
    background_seen seen;

    (void)state;
    seen = run_background();
    assert_int_equal(seen.before, base);
    assert_int_equal(seen.after, base);
    assert_string_equal(seen.name, "shipping.runner");
    cl_thread_background_nice(7);
    seen = run_background();
    cl_thread_background_nice(0);
    assert_int_equal(seen.before, base);
    assert_int_equal(seen.after, base > 7 ? base : 7);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_hex_is_well_formed_and_unique),
        cmocka_unit_test(test_random_id_has_prefix_and_digits),
        cmocka_unit_test(test_time_ordered_hex_sorts_by_time_and_is_unique),
        cmocka_unit_test(test_random_id_refuses_what_does_not_fit),
        cmocka_unit_test(test_random_ids_differ_between_parent_and_forked_child),
        cmocka_unit_test(test_random_ids_differ_between_threads),
        cmocka_unit_test(test_backoff_doubles_within_jitter_bounds),
        cmocka_unit_test(test_backoff_never_overflows),
        cmocka_unit_test(test_rfc3339_formats_known_instants),
        cmocka_unit_test(test_rfc3339_agrees_with_gmtime),
        cmocka_unit_test(test_rfc3339_round_trips),
        cmocka_unit_test(test_rfc3339_parse_rejects_malformed),
        cmocka_unit_test(test_deadline_in_is_on_the_monotonic_clock),
        cmocka_unit_test(test_cond_wait_ignores_a_wall_clock_jump),
        cmocka_unit_test(test_bus_idle_wait_ignores_a_wall_clock_jump),
        cmocka_unit_test(test_traceparent_parses_a_valid_header),
        cmocka_unit_test(test_traceparent_rejects_malformed),
        cmocka_unit_test(test_traceparent_formats_and_round_trips),
        cmocka_unit_test(test_thread_name_is_owner_dot_role_cut_to_fifteen_bytes),
        cmocka_unit_test(test_background_thread_takes_the_nice_value_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
