/*
 * The retry policy (cleave/retry.h): backoff with full jitter stays within its ceiling
 * and spreads over it; the retry budget never grants more than its share of calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cleave/retry.h"

static void test_backoff_is_full_jitter_under_a_doubling_ceiling(void **state)
{
    (void)state;
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t ceiling = 10LL << (attempt - 1);
        int64_t lo = INT64_MAX, hi = -1;

        ceiling = ceiling > 500 ? 500 : ceiling;
        for (int i = 0; i < 2000; i++) {
            int64_t d = cl_retry_backoff_ms(10, 500, attempt);

            assert_in_range(d, 0, ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Full jitter: the waits reach down near zero and up near the ceiling. */
        assert_true(lo <= ceiling / 10);
        assert_true(hi >= ceiling - ceiling / 10);
    }
}

static void test_backoff_clamps_its_arguments(void **state)
{
    (void)state;
    assert_in_range(cl_retry_backoff_ms(0, -5, -3), 0, 1);
    assert_in_range(cl_retry_backoff_ms(100, 10, 1), 0, 100);
    assert_in_range(cl_retry_backoff_ms(50, 2000, INT32_MAX), 0, 2000);
    assert_in_range(cl_retry_backoff_ms(1, INT64_MAX, 200), 0, INT64_MAX);
}

static void test_budget_starts_empty(void **state)
{
    cl_retry_budget b;

    (void)state;
    cl_retry_budget_init(&b, 10, 100);
    assert_false(cl_retry_budget_take(&b));
    for (int i = 0; i < 9; i++) {
        cl_retry_budget_call(&b);
    }
    assert_false(cl_retry_budget_take(&b));
    cl_retry_budget_call(&b);
    assert_true(cl_retry_budget_take(&b));
    assert_false(cl_retry_budget_take(&b));
    assert_int_equal(b.retries, 1);
    assert_int_equal(b.exhausted, 3);
}

static void test_budget_bounds_retries_to_its_share_of_calls(void **state)
{
    cl_retry_budget b;

    (void)state;
    cl_retry_budget_init(&b, 10, 10);
    /* An outage: every call wants as many retries as it can get. */
    for (int i = 1; i <= 1000; i++) {
        cl_retry_budget_call(&b);
        while (cl_retry_budget_take(&b)) {
        }
        assert_true(b.retries * 100 <= 10 * b.calls);
    }
    assert_int_equal(b.retries, 100);
}

static void test_budget_caps_saved_tokens(void **state)
{
    cl_retry_budget b;
    int granted = 0;

    (void)state;
    cl_retry_budget_init(&b, 10, 5);
    /* A long healthy spell saves at most 5 retries for the next outage. */
    for (int i = 0; i < 10000; i++) {
        cl_retry_budget_call(&b);
    }
    while (cl_retry_budget_take(&b)) {
        granted++;
    }
    assert_int_equal(granted, 5);
}

static void test_budget_zero_percent_never_retries(void **state)
{
    cl_retry_budget b;

    (void)state;
    cl_retry_budget_init(&b, 0, 10);
    for (int i = 0; i < 1000; i++) {
        cl_retry_budget_call(&b);
    }
    assert_false(cl_retry_budget_take(&b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_is_full_jitter_under_a_doubling_ceiling),
        cmocka_unit_test(test_backoff_clamps_its_arguments),
        cmocka_unit_test(test_budget_starts_empty),
        cmocka_unit_test(test_budget_bounds_retries_to_its_share_of_calls),
        cmocka_unit_test(test_budget_caps_saved_tokens),
        cmocka_unit_test(test_budget_zero_percent_never_retries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
