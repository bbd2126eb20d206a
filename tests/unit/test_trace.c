/* Unit tests of the tracer (cleave/trace.h) and the OTLP exporter's queue (cleave/otlp.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../platform/trace/trace_internal.h"
#include "cleave/log.h"
#include "cleave/otlp.h"
#include "cleave/trace.h"

#define TRACE "0af7651916cd43dd8448eb211c80319c"
#define SPAN  "b7ad6b7169203331"

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static void test_parse_reads_the_sampled_flag(void **state)
{
    char t[33], p[17];
    bool sampled = false;

    (void)state;
    assert_int_equal(cl_trace_parse("00-" TRACE "-" SPAN "-01", t, p, &sampled), CL_OK);
    assert_string_equal(t, TRACE);
    assert_string_equal(p, SPAN);
    assert_true(sampled);
    assert_int_equal(cl_trace_parse("00-" TRACE "-" SPAN "-00", t, p, &sampled), CL_OK);
    assert_false(sampled);
    /* Other flag bits do not make a trace sampled. */
    assert_int_equal(cl_trace_parse("00-" TRACE "-" SPAN "-02", t, p, &sampled), CL_OK);
    assert_false(sampled);
    assert_int_equal(cl_trace_parse("00-" TRACE "-" SPAN "-0x", t, p, &sampled), CL_INVALID);
    assert_int_equal(cl_trace_parse(NULL, t, p, &sampled), CL_INVALID);
}

static void test_format_writes_the_traces_own_flag(void **state)
{
    cl_ctx ctx;
    char out[CL_TRACEPARENT_SIZE];

    (void)state;
    cl_ctx_init(&ctx, 0);
    assert_int_equal(cl_trace_format(&ctx, out), CL_INVALID);
    strcpy(ctx.trace_id, TRACE);
    strcpy(ctx.span_id, SPAN);
    ctx.trace_sampled = 0;
    assert_int_equal(cl_trace_format(&ctx, out), CL_OK);
    assert_string_equal(out, "00-" TRACE "-" SPAN "-00");
    ctx.trace_sampled = 1;
    assert_int_equal(cl_trace_format(&ctx, out), CL_OK);
    assert_string_equal(out, "00-" TRACE "-" SPAN "-01");
}

static void test_enter_continues_a_valid_parent(void **state)
{
    cl_ctx ctx;

    (void)state;
    cl_trace_set_ratio(0);
    cl_ctx_init(&ctx, 0);
    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", "vendor=abc,other=1");
    assert_string_equal(ctx.trace_id, TRACE);
    assert_string_equal(ctx.span_id, SPAN);
    /* The parent's decision wins over the ratio. */
    assert_true(ctx.trace_sampled);
    assert_string_equal(ctx.tracestate, "vendor=abc,other=1");
    cl_trace_set_ratio(1);
}

static void test_enter_restarts_on_a_malformed_parent(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "00-" TRACE "-" SPAN,
        "00-00000000000000000000000000000000-" SPAN "-01",
        "00-" TRACE "-0000000000000000-01",
        "ff-" TRACE "-" SPAN "-01",
        "00-0AF7651916CD43DD8448EB211C80319C-" SPAN "-01",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_ctx ctx;

        cl_ctx_init(&ctx, 0);
        cl_trace_enter(&ctx, bad[i], "vendor=abc");
        assert_true(is_hex(ctx.trace_id, 32));
        assert_string_not_equal(ctx.trace_id, TRACE);
        assert_string_equal(ctx.span_id, "");
        assert_string_equal(ctx.tracestate, "");
    }
}

static void test_enter_drops_an_oversized_tracestate(void **state)
{
    char big[CL_TRACESTATE_MAX + 2];
    cl_ctx ctx;

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cl_ctx_init(&ctx, 0);
    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", big);
    assert_string_equal(ctx.trace_id, TRACE);
    assert_string_equal(ctx.tracestate, "");
}

static void test_parse_ratio_takes_zero_to_one(void **state)
{
    static const char *const bad[] = {"", "-0.1", "1.5", "abc", "0.5x", "nan", " 0.5"};
    double r = -1;

    (void)state;
    assert_int_equal(cl_trace_parse_ratio("0", &r), CL_OK);
    assert_true(r == 0);
    assert_int_equal(cl_trace_parse_ratio("0.01", &r), CL_OK);
    assert_true(r == 0.01);
    assert_int_equal(cl_trace_parse_ratio("1", &r), CL_OK);
    assert_true(r == 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cl_trace_parse_ratio(bad[i], &r), CL_INVALID);
    }
    assert_int_equal(cl_trace_parse_ratio(NULL, &r), CL_INVALID);
}

/* How many of n new traces are sampled at ratio. */
static int sampled_of(double ratio, int n)
{
    int hits = 0;

    cl_trace_set_ratio(ratio);
    for (int i = 0; i < n; i++) {
        cl_ctx ctx;

        cl_ctx_init(&ctx, 0);
        cl_trace_enter(&ctx, NULL, NULL);
        hits += ctx.trace_sampled != 0;
        /* The decision is the id's: anyone with the id decides alike. */
        assert_int_equal(cl_trace_sampled_at(ctx.trace_id, ratio), ctx.trace_sampled != 0);
    }
    cl_trace_set_ratio(1);
    return hits;
}

static void test_new_traces_are_sampled_at_the_ratio(void **state)
{
    int quarter;

    (void)state;
    assert_int_equal(sampled_of(0, 2000), 0);
    assert_int_equal(sampled_of(1, 2000), 2000);
    /* Binomial(8000, 0.25): mean 2000, standard deviation under 40. */
    quarter = sampled_of(0.25, 8000);
    assert_in_range(quarter, 1800, 2200);
    assert_in_range(sampled_of(0.01, 20000), 120, 280);
}

static void test_spans_nest_and_restore_the_parent(void **state)
{
    cl_ctx ctx;
    cl_span a, b;

    (void)state;
    cl_ctx_init(&ctx, 0);
    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", NULL);
    cl_span_start(&a, &ctx, CL_SPAN_SERVER, "GET /things/{id}");
    assert_string_equal(a.d.trace_id, TRACE);
    assert_string_equal(a.d.parent_id, SPAN);
    assert_true(is_hex(a.d.span_id, 16));
    assert_string_equal(ctx.span_id, a.d.span_id);
    assert_true(a.recording);

    cl_span_start(&b, &ctx, CL_SPAN_CLIENT, "inventory.reserve");
    assert_string_equal(b.d.parent_id, a.d.span_id);
    assert_string_not_equal(b.d.span_id, a.d.span_id);
    assert_string_equal(ctx.span_id, b.d.span_id);
    cl_span_end(&b);
    assert_string_equal(ctx.span_id, a.d.span_id);
    /* Ending twice changes nothing. */
    cl_span_end(&b);
    assert_string_equal(ctx.span_id, a.d.span_id);
    cl_span_end(&a);
    assert_string_equal(ctx.span_id, SPAN);
}

static void test_unsampled_parent_records_nothing(void **state)
{
    cl_ctx ctx;
    cl_span a;
    char tp[CL_TRACEPARENT_SIZE];

    (void)state;
    cl_trace_set_ratio(1);
    cl_ctx_init(&ctx, 0);
    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-00", NULL);
    cl_span_start(&a, &ctx, CL_SPAN_SERVER, "x");
    assert_false(a.recording);
    /* The trace still travels, flagged as not sampled. */
    assert_int_equal(cl_span_traceparent(&a, tp), CL_OK);
    assert_int_equal(strncmp(tp + 52, "-00", 3), 0);
    cl_span_end(&a);
}

static void test_detached_span_needs_a_trace_and_leaves_ctx(void **state)
{
    cl_ctx ctx;
    cl_span s;

    (void)state;
    cl_ctx_init(&ctx, 0);
    cl_span_start_detached(&s, &ctx, CL_SPAN_CLIENT, "db");
    assert_false(s.recording);
    cl_span_end(&s);
    cl_span_start_detached(&s, NULL, CL_SPAN_CLIENT, "db");
    assert_false(s.recording);

    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", NULL);
    cl_span_start_detached(&s, &ctx, CL_SPAN_CLIENT, "db");
    assert_true(s.recording);
    assert_string_equal(s.d.parent_id, SPAN);
    assert_string_equal(ctx.span_id, SPAN);
    cl_span_end(&s);
    assert_string_equal(ctx.span_id, SPAN);
}

/* Reads what was logged to the pipe so far. */
static json_t *last_line(int fd)
{
    static char buf[65536];
    ssize_t n;

    cl_log_flush();
    n = read(fd, buf, sizeof(buf) - 1);
    char *start;
    char *nl;

    assert_true(n > 0);
    buf[n] = '\0';
    nl = strrchr(buf, '\n');
    assert_non_null(nl);
    *nl = '\0';
    start = strrchr(buf, '\n');
    return json_loads(start != NULL ? start + 1 : buf, 0, NULL);
}

static void test_log_lines_carry_the_current_span(void **state)
{
    int fds[2];
    cl_ctx ctx;
    cl_span a;
    json_t *line;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    cl_log_set_fd(fds[1]);
    cl_ctx_init(&ctx, 0);
    strcpy(ctx.request_id, "req-t");
    cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", NULL);
    cl_log_bind(&ctx);
    cl_span_start(&a, &ctx, CL_SPAN_INTERNAL, "work");
    cl_log_info("test", "inside");
    line = last_line(fds[0]);
    assert_string_equal(json_string_value(json_object_get(line, "trace.id")), TRACE);
    assert_string_equal(json_string_value(json_object_get(line, "span.id")), a.d.span_id);
    json_decref(line);
    cl_span_end(&a);
    cl_log_info("test", "after");
    line = last_line(fds[0]);
    assert_string_equal(json_string_value(json_object_get(line, "span.id")), SPAN);
    json_decref(line);
    cl_log_bind(NULL);
    cl_log_set_fd(1);
    close(fds[0]);
    close(fds[1]);
}

#define PRODUCERS 4
#define PER       2000

static void *produce(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER; i++) {
        cl_ctx ctx;
        cl_span s;

        cl_ctx_init(&ctx, 0);
        cl_trace_enter(&ctx, "00-" TRACE "-" SPAN "-01", NULL);
        cl_span_start(&s, &ctx, CL_SPAN_INTERNAL, "p");
        cl_span_set_int(&s, "i", i);
        cl_span_end(&s);
    }
    return NULL;
}

static _Atomic size_t taken_total;
static _Atomic int producers_done;

static void *take(void *arg)
{
    cl_span_data *batch = calloc(64, sizeof(*batch));

    (void)arg;
    for (;;) {
        size_t n = cl__trace_queue_take(batch, 64, 20);

        for (size_t i = 0; i < n; i++) {
            assert_string_equal(batch[i].trace_id, TRACE);
            assert_string_equal(batch[i].name, "p");
        }
        taken_total += n;
        if (n == 0 && producers_done) {
            break;
        }
    }
    free(batch);
    return NULL;
}

/* Many threads end spans into a small queue while one takes: none lost uncounted. */
static void test_queue_counts_every_span_under_contention(void **state)
{
    pthread_t p[PRODUCERS], t;
    cl_trace_stats before, after;

    (void)state;
    cl_trace_stats_get(&before);
    assert_int_equal(cl__trace_queue_open(128), CL_OK);
    assert_int_equal(pthread_create(&t, NULL, take, NULL), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_create(&p[i], NULL, produce, NULL), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(p[i], NULL);
    }
    producers_done = 1;
    pthread_join(t, NULL);
    cl__trace_queue_close();
    cl__trace_queue_free();
    cl_trace_stats_get(&after);
    assert_int_equal(after.queued - before.queued, taken_total);
    assert_int_equal((after.queued - before.queued) + (after.dropped - before.dropped),
                     PRODUCERS * PER);
}

/* A port of 127.0.0.1 that nothing listens on. */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A collector that is down costs drops, counted, and a bounded stop; never a wait. */
static void test_exporter_drops_when_the_collector_is_down(void **state)
{
    cl_trace_stats before, after;
    cl_error err;
    int64_t t0, t1;
    char url[64];

    (void)state;
    /* Nothing listens there: the port was taken from the kernel and released. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
    cl_trace_stats_get(&before);
    assert_int_equal(cl_otlp_start("ftp://x", "test", "1", &err), CL_INVALID);
    assert_string_equal(err.field, "CLEAVE_OTLP_ENDPOINT");
    assert_int_equal(cl_otlp_start(url, "test_trace", "1.0", &err), CL_OK);
    t0 = cl_now_ms();
    produce(NULL);
    t1 = cl_now_ms();
    /* Ending spans never waited for the collector. */
    assert_true(t1 - t0 < 2000);
    cl_otlp_stop(1000);
    assert_true(cl_now_ms() - t1 < 4000);
    cl_trace_stats_get(&after);
    assert_int_equal(after.exported, before.exported);
    /* Every span that ended is counted as dropped: queued ones once their post failed. */
    assert_int_equal(after.dropped - before.dropped, PER);
    assert_true(after.queued - before.queued <= PER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_the_sampled_flag),
        cmocka_unit_test(test_format_writes_the_traces_own_flag),
        cmocka_unit_test(test_enter_continues_a_valid_parent),
        cmocka_unit_test(test_enter_restarts_on_a_malformed_parent),
        cmocka_unit_test(test_enter_drops_an_oversized_tracestate),
        cmocka_unit_test(test_parse_ratio_takes_zero_to_one),
        cmocka_unit_test(test_new_traces_are_sampled_at_the_ratio),
        cmocka_unit_test(test_spans_nest_and_restore_the_parent),
        cmocka_unit_test(test_unsampled_parent_records_nothing),
        cmocka_unit_test(test_detached_span_needs_a_trace_and_leaves_ctx),
        cmocka_unit_test(test_log_lines_carry_the_current_span),
        cmocka_unit_test(test_queue_counts_every_span_under_contention),
        cmocka_unit_test(test_exporter_drops_when_the_collector_is_down),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
