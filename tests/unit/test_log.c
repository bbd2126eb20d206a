/* Structured logs: every line is one JSON object with the fixed fields first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../platform/log/log_internal.h"
#include "cleave/log.h"
#include "cleave/util.h"

#define ELLIPSIS "\xe2\x80\xa6"

/* Each test logs to its own temporary file, opened O_APPEND like a shared log file. */
static int setup(void **state)
{
    char path[] = "/tmp/cleave-log-XXXXXX";
    int *fd = malloc(sizeof(*fd));

    if (fd == NULL) {
        return -1;
    }
    *fd = mkstemp(path);
    if (*fd < 0) {
        free(fd);
        return -1;
    }
    unlink(path);
    fcntl(*fd, F_SETFL, O_APPEND);
    cl_log_set_fd(*fd);
    cl_log_set_level(CL_LOG_INFO);
    cl_log_bind(NULL);
    *state = fd;
    return 0;
}

static int teardown(void **state)
{
    int *fd = *state;

    cl_log_set_fd(STDOUT_FILENO);
    cl_log_set_level(CL_LOG_INFO);
    cl_log_bind(NULL);
    close(*fd);
    free(fd);
    return 0;
}

/* The whole log file as a new string. */
static char *read_log(void **state)
{
    int fd = *(int *)*state;
    struct stat st;
    char *buf;

    cl_log_flush();
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    buf[st.st_size] = '\0';
    return buf;
}

/* Every line parsed, as a new JSON array; fails the test on any line that is not an object. */
static json_t *read_lines(void **state)
{
    char *buf = read_log(state);
    json_t *lines = json_array();
    char *line = buf;

    assert_true(buf[0] == '\0' || buf[strlen(buf) - 1] == '\n');
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        json_error_t jerr;
        json_t *obj;

        assert_non_null(nl);
        *nl = '\0';
        /* A key twice would be a line that collectors read differently: none may. */
        obj = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(obj)) {
            fail_msg("line is not a JSON object (%s): %.200s", jerr.text, line);
        }
        json_array_append_new(lines, obj);
        line = nl + 1;
    }
    free(buf);
    return lines;
}

static const char *field(const json_t *line, const char *key)
{
    return json_string_value(json_object_get(line, key));
}

static void test_log_writes_the_fixed_fields_in_order(void **state)
{
    char *raw;
    json_t *lines;
    const json_t *line;
    const char *ts;

    cl_log_info("http", "hello %d", 42);
    raw = read_log(state);
    /* The fixed fields come first, in this order, on one line. */
    assert_true(strncmp(raw, "{\"@timestamp\":\"", 15) == 0);
    assert_true(strstr(raw, "\"log.level\":") < strstr(raw, "\"log.logger\":"));
    assert_true(strstr(raw, "\"log.logger\":") < strstr(raw, "\"message\":"));
    assert_non_null(
        strstr(raw, "\"log.level\":\"info\",\"log.logger\":\"http\",\"message\":\"hello 42\","
                    "\"ecs.version\":\"8.11.0\""));
    free(raw);

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 1);
    line = json_array_get(lines, 0);
    ts = field(line, "@timestamp");
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(field(line, "log.level"), "info");
    assert_string_equal(field(line, "log.logger"), "http");
    assert_string_equal(field(line, "message"), "hello 42");
    assert_null(json_object_get(line, "http.request.id"));
    assert_null(json_object_get(line, "trace.id"));
    assert_string_equal(field(line, "ecs.version"), "8.11.0");
    assert_int_equal(json_object_size(line), 5);
    json_decref(lines);
}

/*
 * Each line's @timestamp is the time it was written, to the millisecond, also when lines
 * of one thread cross into the next second (the writer keeps a second's text per thread).
 */
static void test_log_timestamps_each_line_across_a_second(void **state)
{
    int64_t start = cl_wall_ms();
    int64_t before[64], after[64];
    int n = 0;
    json_t *lines;

    /* Lines until the wall clock has passed a second boundary (bounded: ~1 s). */
    while (n < 64) {
        before[n] = cl_wall_ms();
        cl_log_info("t", "line %d", n);
        after[n] = cl_wall_ms();
        n++;
        if (after[n - 1] / 1000 != start / 1000 && n >= 4) {
            break;
        }
        if (n == 60) {
            /* Wait for the next second, so that the last lines come after it. */
            while (cl_wall_ms() / 1000 == start / 1000) {
                sched_yield();
            }
        }
    }
    lines = read_lines(state);
    assert_int_equal((int)json_array_size(lines), n);
    for (int i = 0; i < n; i++) {
        int64_t at = 0;

        assert_int_equal(
            cl_rfc3339_parse(field(json_array_get(lines, (size_t)i), "@timestamp"), &at), CL_OK);
        if (at < before[i] || at > after[i]) {
            fail_msg("line %d stamped %lld, written between %lld and %lld", i, (long long)at,
                     (long long)before[i], (long long)after[i]);
        }
    }
    assert_true(before[0] / 1000 != after[n - 1] / 1000);
    json_decref(lines);
}

static void test_log_drops_lines_below_the_level(void **state)
{
    static const char *const want[] = {"info", "warn", "error", "warn", "error"};
    json_t *lines;

    cl_log_debug("m", "debug at info");
    cl_log_info("m", "info at info");
    cl_log_set_level(CL_LOG_WARN);
    cl_log_debug("m", "debug at warn");
    cl_log_info("m", "info at warn");
    cl_log_warn("m", "warn at warn");
    cl_log_error("m", "error at warn");
    /* An out-of-range level is ignored rather than silencing everything. */
    cl_log_set_level((cl_log_level)42);
    cl_log((cl_log_level)42, "m", "bogus level");
    cl_log_info("m", "info still dropped");
    cl_log_warn("m", "warn again");
    cl_log_set_level(CL_LOG_ERROR);
    cl_log_error("m", "error at error");
    cl_log_set_level(CL_LOG_DEBUG);
    cl_log_debug("m", "debug at debug");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 6);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(field(json_array_get(lines, i), "log.level"), want[i]);
    }
    assert_string_equal(field(json_array_get(lines, 5), "message"), "debug at debug");
    json_decref(lines);
}

static void test_log_parses_levels(void **state)
{
    cl_log_level level = CL_LOG_ERROR;

    (void)state;
    assert_int_equal(cl_log_parse_level("debug", &level), CL_OK);
    assert_int_equal(level, CL_LOG_DEBUG);
    assert_int_equal(cl_log_parse_level("info", &level), CL_OK);
    assert_int_equal(level, CL_LOG_INFO);
    assert_int_equal(cl_log_parse_level("warn", &level), CL_OK);
    assert_int_equal(level, CL_LOG_WARN);
    assert_int_equal(cl_log_parse_level("error", &level), CL_OK);
    assert_int_equal(level, CL_LOG_ERROR);
    assert_int_equal(cl_log_parse_level("INFO", &level), CL_INVALID);
    assert_int_equal(cl_log_parse_level("warning", &level), CL_INVALID);
    assert_int_equal(cl_log_parse_level("", &level), CL_INVALID);
    assert_int_equal(cl_log_parse_level(NULL, &level), CL_INVALID);
    assert_int_equal(level, CL_LOG_ERROR);
}

static void test_log_carries_the_bound_request(void **state)
{
    cl_ctx ctx;
    cl_ctx no_trace;
    json_t *lines;
    const json_t *line;

    cl_ctx_init(&ctx, 0);
    strcpy(ctx.request_id, "req-1");
    strcpy(ctx.trace_id, "0af7651916cd43dd8448eb211c80319c");
    strcpy(ctx.span_id, "b7ad6b7169203331");
    cl_log_bind(&ctx);
    cl_log_info("http", "bound");
    /* The binding is a copy: changing or losing the ctx does not change the lines. */
    strcpy(ctx.request_id, "changed");
    cl_log_info("http", "after change");
    cl_log_bind(NULL);
    cl_log_info("http", "unbound");
    cl_ctx_init(&no_trace, 0);
    strcpy(no_trace.request_id, "req-2");
    cl_log_bind(&no_trace);
    cl_log_info("http", "no trace");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 4);
    line = json_array_get(lines, 0);
    assert_string_equal(field(line, "http.request.id"), "req-1");
    assert_string_equal(field(line, "trace.id"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(field(line, "span.id"), "b7ad6b7169203331");
    assert_string_equal(field(json_array_get(lines, 1), "http.request.id"), "req-1");
    line = json_array_get(lines, 2);
    assert_null(json_object_get(line, "http.request.id"));
    assert_null(json_object_get(line, "trace.id"));
    assert_null(json_object_get(line, "span.id"));
    line = json_array_get(lines, 3);
    assert_string_equal(field(line, "http.request.id"), "req-2");
    assert_null(json_object_get(line, "trace.id"));
    assert_null(json_object_get(line, "span.id"));
    json_decref(lines);
}

static void *log_unbound(void *arg)
{
    (void)arg;
    cl_log_info("worker", "other thread");
    return NULL;
}

static void test_log_binding_is_per_thread(void **state)
{
    cl_ctx ctx;
    pthread_t t;
    json_t *lines;

    cl_ctx_init(&ctx, 0);
    strcpy(ctx.request_id, "main-only");
    cl_log_bind(&ctx);
    assert_int_equal(pthread_create(&t, NULL, log_unbound, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 1);
    assert_null(json_object_get(json_array_get(lines, 0), "http.request.id"));
    json_decref(lines);
}

static void test_log_merges_extra_fields_without_override(void **state)
{
    cl_ctx ctx;
    json_t *lines;
    const json_t *line;

    cl_ctx_init(&ctx, 0);
    strcpy(ctx.request_id, "req-9");
    cl_log_bind(&ctx);
    cl_log_with(CL_LOG_INFO, "db",
                json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "rows", 3, "message", "evil",
                          "log.level", "fake", "@timestamp", "never", "log.logger", "other",
                          "http.request.id", "forged"),
                "query done in %d ms", 7);
    /* Fields of a dropped line are still released (the leak checker would say otherwise). */
    cl_log_with(CL_LOG_DEBUG, "db", json_pack("{s:s}", "dropped", "yes"), "below level");
    /* Anything but an object adds nothing, and NULL is fine. */
    cl_log_with(CL_LOG_INFO, "db", json_string("not an object"), "scalar fields");
    cl_log_with(CL_LOG_INFO, "db", NULL, "no fields");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 3);
    line = json_array_get(lines, 0);
    assert_int_equal(json_integer_value(json_object_get(line, "rows")), 3);
    assert_string_equal(field(line, "message"), "query done in 7 ms");
    assert_string_equal(field(line, "log.level"), "info");
    assert_string_equal(field(line, "log.logger"), "db");
    assert_string_equal(field(line, "http.request.id"), "req-9");
    assert_string_not_equal(field(line, "@timestamp"), "never");
    /* @timestamp, log.level, log.logger, message, ecs.version and http.request.id. */
    assert_int_equal(json_object_size(json_array_get(lines, 1)), 6);
    assert_string_equal(field(json_array_get(lines, 2), "message"), "no fields");
    json_decref(lines);
}

#define LOG_THREADS    4
#define LOG_PER_THREAD 500

static void *log_many(void *arg)
{
    int id = *(const int *)arg;
    char pad[301];
    cl_ctx ctx;

    /* Lines of a few hundred bytes make torn writes likely if they were possible. */
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    cl_ctx_init(&ctx, 0);
    snprintf(ctx.request_id, sizeof(ctx.request_id), "thread-%d", id);
    cl_log_bind(&ctx);
    for (int i = 0; i < LOG_PER_THREAD; i++) {
        cl_log_with(CL_LOG_INFO, "load", json_pack("{s:i, s:i}", "thread", id, "seq", i),
                    "line %d of thread %d %s", i, id, pad);
    }
    cl_log_bind(NULL);
    return NULL;
}

/* LOG_THREADS threads log LOG_PER_THREAD lines each, at once. 0 when all ran, else -1. */
static int log_from_threads(void)
{
    int ids[LOG_THREADS];
    pthread_t threads[LOG_THREADS];
    int started = 0;

    for (int t = 0; t < LOG_THREADS; t++) {
        ids[t] = t;
        if (pthread_create(&threads[t], NULL, log_many, &ids[t]) != 0) {
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
    }
    return started == LOG_THREADS ? 0 : -1;
}

/*
 * Every line of every thread once, and each thread's lines in the order it logged them
 * (the output is buffered, ADR 0041: ordering is the buffer's promise, not the kernel's).
 */
static void expect_every_line_in_thread_order(void **state)
{
    int seen[LOG_THREADS][LOG_PER_THREAD];
    int next[LOG_THREADS] = {0};
    json_t *lines;
    size_t i;
    json_t *line;

    memset(seen, 0, sizeof(seen));
    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), LOG_THREADS * LOG_PER_THREAD);
    json_array_foreach (lines, i, line) {
        json_int_t t = json_integer_value(json_object_get(line, "thread"));
        json_int_t seq = json_integer_value(json_object_get(line, "seq"));
        char want[32];

        assert_in_range(t, 0, LOG_THREADS - 1);
        assert_in_range(seq, 0, LOG_PER_THREAD - 1);
        snprintf(want, sizeof(want), "thread-%d", (int)t);
        assert_string_equal(field(line, "http.request.id"), want);
        assert_int_equal(seq, next[t]);
        next[t] = (int)seq + 1;
        seen[t][seq]++;
    }
    for (int t = 0; t < LOG_THREADS; t++) {
        for (int s = 0; s < LOG_PER_THREAD; s++) {
            assert_int_equal(seen[t][s], 1);
        }
    }
    json_decref(lines);
}

static void test_log_lines_from_threads_never_interleave(void **state)
{
    assert_int_equal(log_from_threads(), 0);
    expect_every_line_in_thread_order(state);
}

/*
 * A process that logs and exits normally loses nothing: its last lines are still in the
 * buffer when it calls exit, and no cl_log_flush is called. The process is this test
 * program run afresh (exec, so that ThreadSanitizer sees a clean start) as log_and_exit.
 */
static void test_log_keeps_every_line_at_exit(void **state)
{
    char fdarg[16];
    pid_t pid;
    int status = 0;

    snprintf(fdarg, sizeof(fdarg), "%d", *(int *)*state);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_log", "--log-and-exit", fdarg, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    expect_every_line_in_thread_order(state);
}

/* The log file's size, read without flushing (which would defeat the point). */
static off_t log_size(void **state)
{
    struct stat st;

    assert_int_equal(fstat(*(int *)*state, &st), 0);
    return st.st_size;
}

/* A line logged while nothing else happens is out within the time bound (100 ms). */
static void test_log_writes_an_idle_line_within_the_bound(void **state)
{
    int64_t start;
    int64_t waited;

    start = cl_now_ms();
    cl_log_info("idle", "alone");
    /* Poll the file, not the log: the flusher thread is the only one that can write it. */
    while (log_size(state) == 0 && cl_now_ms() - start < 2000) {
        struct timespec pause = {0, 2000000L};

        nanosleep(&pause, NULL);
    }
    waited = cl_now_ms() - start;
    assert_true(log_size(state) > 0);
    /* The bound plus scheduling slack on a loaded machine; never the 2 s of giving up. */
    assert_true(waited < 1000);
}

/* An error line and every line before it are out before cl_log returns. */
static void test_log_writes_error_lines_at_once(void **state)
{
    char *buf = malloc(65536);
    ssize_t n;

    assert_non_null(buf);
    cl_log_info("m", "before the error");
    cl_log_error("m", "the error");
    n = pread(*(int *)*state, buf, 65535, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "before the error"));
    assert_non_null(strstr(buf, "the error"));
    assert_true(strstr(buf, "before the error") < strstr(buf, "\"the error"));
    free(buf);
}

/* Changing the descriptor writes what was logged before to the old one. */
static void test_log_set_fd_writes_out_the_old_lines(void **state)
{
    int other[2];
    char buf[4096];
    ssize_t n;

    assert_int_equal(pipe(other), 0);
    cl_log_info("m", "for the file");
    cl_log_set_fd(other[1]);
    cl_log_info("m", "for the pipe");
    cl_log_set_fd(*(int *)*state);
    n = pread(*(int *)*state, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "for the file"));
    assert_null(strstr(buf, "for the pipe"));
    n = read(other[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "for the pipe"));
    close(other[0]);
    close(other[1]);
}

static void test_log_truncates_long_messages(void **state)
{
    char *big = malloc(10001);
    /* "é" is two bytes, so an odd cut would split a character. */
    char *wide = malloc(2 * 5000 + 2);
    json_t *lines;
    const char *msg;
    size_t len;

    assert_non_null(big);
    assert_non_null(wide);
    memset(big, 'a', 10000);
    big[10000] = '\0';
    wide[0] = 'x';
    for (size_t i = 0; i < 5000; i++) {
        memcpy(wide + 1 + 2 * i, "\xc3\xa9", 2);
    }
    wide[1 + 2 * 5000] = '\0';
    cl_log_info("m", "%s", big);
    cl_log_info("m", "%s", wide);
    cl_log_info("m", "short %s", "enough");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 3);
    for (size_t i = 0; i < 2; i++) {
        msg = field(json_array_get(lines, i), "message");
        assert_non_null(msg);
        len = strlen(msg);
        assert_true(len < 4096);
        assert_true(len > 4000);
        assert_string_equal(msg + len - 3, ELLIPSIS);
    }
    assert_true(strncmp(field(json_array_get(lines, 0), "message"), big, 4000) == 0);
    /* The cut fell on a whole character: nothing was replaced as invalid UTF-8. */
    msg = field(json_array_get(lines, 1), "message");
    assert_null(strchr(msg, '?'));
    assert_true(memcmp(msg + strlen(msg) - 5, "\xc3\xa9" ELLIPSIS, 5) == 0);
    assert_string_equal(field(json_array_get(lines, 2), "message"), "short enough");
    json_decref(lines);
    free(big);
    free(wide);
}

static void test_log_keeps_lines_with_bad_utf8_or_huge_fields(void **state)
{
    char *huge = malloc(40001);
    json_t *lines;
    const json_t *line;

    assert_non_null(huge);
    memset(huge, 'z', 40000);
    huge[40000] = '\0';
    cl_log_info("m", "bad \xff byte and \xc3 cut");
    cl_log_info("m", "controls \x01\x1f are escaped");
    cl_log_with(CL_LOG_INFO, "m", json_pack("{s:s}", "blob", huge), "with a huge field");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 3);
    assert_string_equal(field(json_array_get(lines, 0), "message"), "bad ? byte and ? cut");
    assert_string_equal(field(json_array_get(lines, 1), "message"),
                        "controls \x01\x1f are escaped");
    line = json_array_get(lines, 2);
    assert_string_equal(field(line, "message"), "with a huge field");
    assert_null(json_object_get(line, "blob"));
    assert_true(json_is_true(json_object_get(line, "fields_dropped")));
    json_decref(lines);
    free(huge);
}

/*
 * Plain fields (the access log's) are written by the log itself, not by jansson: the same
 * escapes, integers at their limits, no fixed field overridden, bad UTF-8 kept as '?'.
 */
static void test_log_writes_plain_fields_as_json(void **state)
{
    char *huge = malloc(40001);
    const cl__log_field f[] = {
        {"url.path", "/a\"b\\c\n\t\x01\x1f\x7f/\xc3\xa9\xff\xe2\x82", 0},
        {"low", NULL, INT64_MIN},
        {"high", NULL, INT64_MAX},
        {"zero", NULL, 0},
        {"message", "evil", 0},
        {"log.level", NULL, 7},
        {"empty", "", 0},
    };
    const cl__log_field big[] = {{"blob", huge, 0}, {"n", NULL, 1}};
    json_t *lines;
    const json_t *line;

    assert_non_null(huge);
    memset(huge, 'z', 40000);
    huge[40000] = '\0';
    cl__log_fields(CL_LOG_INFO, "http", f, sizeof(f) / sizeof(f[0]), "GET %s", "/x");
    cl__log_fields(CL_LOG_INFO, "http", big, 2, "too big");
    cl__log_fields(CL_LOG_INFO, "http", NULL, 0, "none");

    lines = read_lines(state);
    assert_int_equal(json_array_size(lines), 3);
    line = json_array_get(lines, 0);
    assert_string_equal(field(line, "url.path"), "/a\"b\\c\n\t\x01\x1f\x7f/\xc3\xa9???");
    assert_true(json_integer_value(json_object_get(line, "low")) == INT64_MIN);
    assert_true(json_integer_value(json_object_get(line, "high")) == INT64_MAX);
    assert_true(json_is_integer(json_object_get(line, "zero")));
    assert_int_equal(json_integer_value(json_object_get(line, "zero")), 0);
    assert_string_equal(field(line, "empty"), "");
    assert_string_equal(field(line, "message"), "GET /x");
    assert_string_equal(field(line, "log.level"), "info");
    line = json_array_get(lines, 1);
    assert_null(json_object_get(line, "blob"));
    assert_null(json_object_get(line, "n"));
    assert_true(json_is_true(json_object_get(line, "fields_dropped")));
    /* @timestamp, log.level, log.logger, message and ecs.version. */
    assert_int_equal(json_object_size(json_array_get(lines, 2)), 5);
    json_decref(lines);
    free(huge);
}

int main(int argc, char **argv)
{
    /* test_log_keeps_every_line_at_exit's child: log, then return from main. */
    if (argc == 3 && strcmp(argv[1], "--log-and-exit") == 0) {
        cl_log_set_fd((int)strtol(argv[2], NULL, 10));
        return log_from_threads() == 0 ? 0 : 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_writes_the_fixed_fields_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_drops_lines_below_the_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_timestamps_each_line_across_a_second, setup,
                                        teardown),
        cmocka_unit_test(test_log_parses_levels),
        cmocka_unit_test_setup_teardown(test_log_carries_the_bound_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_binding_is_per_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_merges_extra_fields_without_override, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_lines_from_threads_never_interleave, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_keeps_every_line_at_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_writes_an_idle_line_within_the_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_writes_error_lines_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_set_fd_writes_out_the_old_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_truncates_long_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_keeps_lines_with_bad_utf8_or_huge_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_writes_plain_fields_as_json, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
