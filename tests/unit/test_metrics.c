/*
 * The metrics registry: the Prometheus text format 0.0.4 as rendered (HELP and TYPE,
 * escaping, histogram buckets, _sum and _count), the bounds on families and label
 * combinations, and increments from many threads at once adding up exactly.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/metrics.h"

/* The rendered registry; the caller frees it. */
static char *render(void)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(cl_metrics_render(&text, &len), CL_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample whose line starts with series (name and labels, exactly). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    fail_msg("no sample %s in:\n%s", series, text);
    return -1;
}

static cl_metric escaped =
    CL_METRIC_COUNTER("test_escaped_total", "Help with a backslash \\ and a\nnewline.", "value");

static void test_metrics_escape_label_values_and_help(void **state)
{
    char *text;

    (void)state;
    cl_metric_add(CL_METRIC_SERIES(&escaped, "quote \" back \\ nl \n end"), 2);
    text = render();
    assert_non_null(strstr(text, "# HELP test_escaped_total Help with a backslash \\\\ and "
                                 "a\\nnewline.\n# TYPE test_escaped_total counter\n"));
    assert_non_null(
        strstr(text, "test_escaped_total{value=\"quote \\\" back \\\\ nl \\n end\"} 2\n"));
    free(text);
}

static const double buckets[] = {0.1, 1, 10};
static cl_metric hist = CL_METRIC_HISTOGRAM("test_wait_seconds", "Waits.", buckets, "kind");

static void test_metrics_histogram_buckets_are_cumulative(void **state)
{
    cl_series *s = CL_METRIC_SERIES(&hist, "a");
    char *text;

    (void)state;
    cl_metric_observe(s, 0.05);
    cl_metric_observe(s, 0.1); /* on a bound: counted in that bucket (le) */
    cl_metric_observe(s, 5);
    cl_metric_observe(s, 50);
    text = render();
    assert_non_null(strstr(text, "# TYPE test_wait_seconds histogram\n"));
    assert_true(sample(text, "test_wait_seconds_bucket{kind=\"a\",le=\"0.1\"}") == 2);
    assert_true(sample(text, "test_wait_seconds_bucket{kind=\"a\",le=\"1\"}") == 2);
    assert_true(sample(text, "test_wait_seconds_bucket{kind=\"a\",le=\"10\"}") == 3);
    assert_true(sample(text, "test_wait_seconds_bucket{kind=\"a\",le=\"+Inf\"}") == 4);
    assert_true(sample(text, "test_wait_seconds_count{kind=\"a\"}") == 4);
    assert_true(sample(text, "test_wait_seconds_sum{kind=\"a\"}") == 55.15);
    free(text);
}

static cl_metric gauge = CL_METRIC_GAUGE("test_level", "A level.", NULL);

static void test_metrics_gauge_without_labels(void **state)
{
    char *text;

    (void)state;
    cl_metric_set(cl_metric_series(&gauge, NULL, 0), 0.25);
    text = render();
    assert_true(sample(text, "test_level") == 0.25);
    assert_non_null(strstr(text, "\ntest_level 0.25\n"));
    free(text);
}

static cl_metric bad_name = CL_METRIC_COUNTER("test-bad-name_total", "Bad.", NULL);
static cl_metric bad_label = CL_METRIC_COUNTER("test_bad_label_total", "Bad.", "__reserved");
static cl_metric bad_le = CL_METRIC_HISTOGRAM("test_bad_le_seconds", "Bad.", buckets, "le");
static cl_metric twin = CL_METRIC_GAUGE("test_level", "The same name again.", NULL);

static void test_metrics_refuse_malformed_families(void **state)
{
    (void)state;
    assert_null(cl_metric_series(&bad_name, NULL, 0));
    assert_null(CL_METRIC_SERIES(&bad_label, "x"));
    assert_null(CL_METRIC_SERIES(&bad_le, "x"));
    /* A second family under a name already registered would render twice. */
    assert_non_null(cl_metric_series(&gauge, NULL, 0));
    assert_null(cl_metric_series(&twin, NULL, 0));
    /* A value count other than the family's label count is refused. */
    assert_null(cl_metric_series(&escaped, (const char *[]){"a", "b"}, 2));
    assert_null(cl_metric_series(&escaped, NULL, 0));
    /* A missing label value is refused, not recorded under a made-up one. */
    assert_null(CL_METRIC_SERIES(&escaped, NULL));
    cl_metric_add(NULL, 1); /* recording into a refused series does nothing */
}

static cl_metric many = CL_METRIC_COUNTER("test_many_total", "Many.", "n");

static void test_metrics_bound_the_label_combinations(void **state)
{
    char value[32];
    char *text;
    double dropped;

    (void)state;
    for (int i = 0; i < CL_METRIC_MAX_SERIES; i++) {
        snprintf(value, sizeof(value), "%d", i);
        assert_non_null(CL_METRIC_SERIES(&many, value));
    }
    text = render();
    dropped = sample(text, "cleave_metrics_series_dropped_total");
    free(text);
    assert_null(CL_METRIC_SERIES(&many, "one too many"));
    /* Existing combinations are still found. */
    assert_non_null(CL_METRIC_SERIES(&many, "7"));
    text = render();
    assert_true(sample(text, "cleave_metrics_series_dropped_total") == dropped + 1);
    assert_null(strstr(text, "one too many"));
    free(text);
}

#define THREADS    8
#define INCREMENTS 20000
/* What each lane must hold at the end: half of all increments. */
#define PER_LANE   ((double)THREADS * INCREMENTS / 2)

static cl_metric racing = CL_METRIC_COUNTER("test_racing_total", "Raced.", "lane");
static cl_metric racing_hist =
    CL_METRIC_HISTOGRAM("test_racing_seconds", "Raced.", buckets, "lane");

/* Each thread adds to two lanes, creating them concurrently on its first pass. */
static void *race(void *arg)
{
    (void)arg;
    for (int i = 0; i < INCREMENTS; i++) {
        const char *lane = i % 2 == 0 ? "even" : "odd";

        cl_metric_add(CL_METRIC_SERIES(&racing, lane), 1);
        cl_metric_observe(CL_METRIC_SERIES(&racing_hist, lane), 0.5);
    }
    return NULL;
}

static void test_metrics_concurrent_increments_add_up(void **state)
{
    pthread_t t[THREADS];
    char *text;

    (void)state;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, race, NULL), 0);
    }
    /* Rendering while they run must be safe too. */
    free(render());
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    text = render();
    assert_true(sample(text, "test_racing_total{lane=\"even\"}") == PER_LANE);
    assert_true(sample(text, "test_racing_total{lane=\"odd\"}") == PER_LANE);
    assert_true(sample(text, "test_racing_seconds_count{lane=\"odd\"}") == PER_LANE);
    assert_true(sample(text, "test_racing_seconds_sum{lane=\"odd\"}") == 0.5 * PER_LANE);
    free(text);
}

static int collected;
static void collect(void *arg)
{
    cl_metric_set(cl_metric_series(&gauge, NULL, 0), *(double *)arg);
    collected++;
}

static void test_metrics_collectors_run_at_each_rendering(void **state)
{
    double v = 42;
    char *text;

    (void)state;
    assert_int_equal(cl_metrics_collector_add(collect, &v), CL_OK);
    text = render();
    assert_int_equal(collected, 1);
    assert_true(sample(text, "test_level") == 42);
    free(text);
    cl_metrics_collector_remove(collect, &v);
    free(render());
    assert_int_equal(collected, 1);
}

static void test_metrics_process_figures_and_build_info(void **state)
{
    char *text;

    (void)state;
    cl_metrics_build_info("test", "1.2.3");
    text = render();
    assert_true(sample(text, "cleave_build_info{service=\"test\",version=\"1.2.3\"}") == 1);
    assert_true(sample(text, "process_resident_memory_bytes") > 0);
    assert_true(sample(text, "process_open_fds") >= 3);
    assert_true(sample(text, "process_start_time_seconds") > 1.6e9);
    assert_true(sample(text, "process_cpu_seconds_total") >= 0);
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_escape_label_values_and_help),
        cmocka_unit_test(test_metrics_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_metrics_gauge_without_labels),
        cmocka_unit_test(test_metrics_refuse_malformed_families),
        cmocka_unit_test(test_metrics_bound_the_label_combinations),
        cmocka_unit_test(test_metrics_concurrent_increments_add_up),
        cmocka_unit_test(test_metrics_collectors_run_at_each_rendering),
        cmocka_unit_test(test_metrics_process_figures_and_build_info),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
