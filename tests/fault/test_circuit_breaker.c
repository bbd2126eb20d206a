/*
 * The circuit breaker's state machine (cleave/retry.h) on an injected clock: it opens on
 * a failure rate over the rolling window once enough calls were seen, refuses calls while
 * open, lets probes through after the cool-down and closes on a successful probe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cleave/retry.h"

static const cl_breaker_options opts = {
    .failure_pct = 50, .min_calls = 10, .window_ms = 1000, .open_ms = 500, .half_open_probes = 1};

/* Admits and records one call at now; returns what admit said. */
static cl_status call(cl_breaker *b, int64_t now, bool failed)
{
    bool probe = false;
    cl_status st = cl_breaker_admit(b, now, &probe);

    if (st == CL_OK) {
        cl_breaker_record(b, now, probe, failed);
    }
    return st;
}

static cl_circuit_state state_at(const cl_breaker *b, int64_t now)
{
    cl_breaker_stats s;

    cl_breaker_stats_at(b, now, &s);
    return s.state;
}

static void test_breaker_stays_closed_below_min_calls(void **state)
{
    cl_breaker b;

    (void)state;
    cl_breaker_init(&b, &opts);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(call(&b, 100 + i, true), CL_OK);
    }
    /* Nine failures out of nine: a rate of 100 %, but too few calls to judge. */
    assert_int_equal(state_at(&b, 110), CL_CIRCUIT_CLOSED);
    assert_int_equal(call(&b, 110, true), CL_OK);
    assert_int_equal(state_at(&b, 110), CL_CIRCUIT_OPEN);
}

static void test_breaker_opens_at_the_failure_rate_only(void **state)
{
    cl_breaker b;
    int64_t t = 1000;

    (void)state;
    cl_breaker_init(&b, &opts);
    /* 6 successes then 5 failures: 5/11 is below 50 %. */
    for (int i = 0; i < 6; i++) {
        call(&b, t++, false);
    }
    for (int i = 0; i < 5; i++) {
        call(&b, t++, true);
    }
    assert_int_equal(state_at(&b, t), CL_CIRCUIT_CLOSED);
    /* The sixth failure: 6/12 reaches 50 %. */
    call(&b, t, true);
    assert_int_equal(state_at(&b, t), CL_CIRCUIT_OPEN);
}

static void test_breaker_forgets_failures_outside_the_window(void **state)
{
    cl_breaker b;
    cl_breaker_stats s;

    (void)state;
    cl_breaker_init(&b, &opts);
    for (int i = 0; i < 9; i++) {
        call(&b, 2000, true);
    }
    /* A whole window later the nine failures are gone: one more does not open it. */
    call(&b, 3100, true);
    cl_breaker_stats_at(&b, 3100, &s);
    assert_int_equal(s.state, CL_CIRCUIT_CLOSED);
    assert_int_equal(s.window_calls, 1);
    assert_int_equal(s.window_failures, 1);
    /* Half a window later, failures from both halves count together. */
    for (int i = 0; i < 8; i++) {
        call(&b, 3600, true);
    }
    assert_int_equal(state_at(&b, 3600), CL_CIRCUIT_CLOSED);
    call(&b, 3650, true);
    assert_int_equal(state_at(&b, 3650), CL_CIRCUIT_OPEN);
}

static void test_breaker_open_refuses_until_cool_down(void **state)
{
    cl_breaker b;
    cl_breaker_stats s;
    bool probe = true;

    (void)state;
    cl_breaker_init(&b, &opts);
    for (int i = 0; i < 10; i++) {
        call(&b, 5000, true);
    }
    assert_int_equal(cl_breaker_admit(&b, 5001, &probe), CL_UNAVAILABLE);
    assert_false(probe);
    assert_int_equal(cl_breaker_admit(&b, 5499, &probe), CL_UNAVAILABLE);
    cl_breaker_stats_at(&b, 5400, &s);
    assert_int_equal(s.state, CL_CIRCUIT_OPEN);
    assert_int_equal(s.retry_in_ms, 100);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.rejected, 2);
    /* Cool-down over: half-open, one probe at a time. */
    assert_int_equal(state_at(&b, 5500), CL_CIRCUIT_HALF_OPEN);
    assert_int_equal(cl_breaker_admit(&b, 5500, &probe), CL_OK);
    assert_true(probe);
    assert_int_equal(cl_breaker_admit(&b, 5501, &probe), CL_UNAVAILABLE);
    /* The probe succeeds: closed, with a fresh window. */
    cl_breaker_record(&b, 5510, true, false);
    cl_breaker_stats_at(&b, 5510, &s);
    assert_int_equal(s.state, CL_CIRCUIT_CLOSED);
    assert_int_equal(s.window_calls, 0);
    assert_int_equal(call(&b, 5511, true), CL_OK);
    assert_int_equal(state_at(&b, 5511), CL_CIRCUIT_CLOSED);
}

static void test_breaker_failed_probe_opens_again(void **state)
{
    cl_breaker b;
    cl_breaker_stats s;
    bool probe = false;

    (void)state;
    cl_breaker_init(&b, &opts);
    for (int i = 0; i < 10; i++) {
        call(&b, 0, true);
    }
    assert_int_equal(cl_breaker_admit(&b, 600, &probe), CL_OK);
    assert_true(probe);
    cl_breaker_record(&b, 700, true, true);
    /* A new cool-down from the failed probe. */
    cl_breaker_stats_at(&b, 700, &s);
    assert_int_equal(s.state, CL_CIRCUIT_OPEN);
    assert_int_equal(s.retry_in_ms, 500);
    assert_int_equal(s.opened, 2);
    assert_int_equal(cl_breaker_admit(&b, 1199, &probe), CL_UNAVAILABLE);
    assert_int_equal(cl_breaker_admit(&b, 1200, &probe), CL_OK);
}

static void test_breaker_ignores_calls_admitted_before_it_opened(void **state)
{
    cl_breaker b;
    bool slow = true;

    (void)state;
    cl_breaker_init(&b, &opts);
    /* A slow call admitted while closed ... */
    assert_int_equal(cl_breaker_admit(&b, 0, &slow), CL_OK);
    assert_false(slow);
    for (int i = 0; i < 10; i++) {
        call(&b, 10, true);
    }
    assert_int_equal(state_at(&b, 10), CL_CIRCUIT_OPEN);
    /* ... that succeeds late does not close the open circuit. */
    cl_breaker_record(&b, 20, slow, false);
    assert_int_equal(state_at(&b, 20), CL_CIRCUIT_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_stays_closed_below_min_calls),
        cmocka_unit_test(test_breaker_opens_at_the_failure_rate_only),
        cmocka_unit_test(test_breaker_forgets_failures_outside_the_window),
        cmocka_unit_test(test_breaker_open_refuses_until_cool_down),
        cmocka_unit_test(test_breaker_failed_probe_opens_again),
        cmocka_unit_test(test_breaker_ignores_calls_admitted_before_it_opened),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
