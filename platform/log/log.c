/*
 * Structured logs: one JSON object per line.
 *
 * Each line is formatted into a bounded per-thread buffer without any lock, then copied
 * into the process's output buffer under a short lock (ADR 0041): a write(2) per line was
 * a system call per request for the access log alone. The buffer goes out when it fills
 * (LOG_BUF_SIZE), at most LOG_FLUSH_MS after its oldest line (a background flusher), at
 * once for an error line, on cl_log_flush, on cl_log_set_fd, before fork and at exit. The
 * level is an atomic; the request binding is thread-local.
 */
#include "cleave/log.h"

#include "../trace/trace_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The formatted message, NUL included; longer ones are cut and marked. */
#define LOG_MSG_MAX    4096
/*
 * The whole line. A message escaped at worst as \u00XX is six times its size and still
 * fits; beyond the cap the caller's extra fields are dropped rather than the line lost.
 */
#define LOG_LINE_MAX   32768
#define LOG_MODULE_MAX 64
/* U+2026 HORIZONTAL ELLIPSIS, the mark of a truncated message. */
#define LOG_ELLIPSIS   "\xe2\x80\xa6"

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};
/* The version of the Elastic Common Schema whose field names the lines use. */
#define LOG_ECS_VERSION "8.11.0"
#define LOG_SERVICE_MAX 64
#define LOG_NLEVELS     (sizeof(log_level_names) / sizeof(log_level_names[0]))

/*
 * The output buffer: one line at most is LOG_LINE_MAX + 1 bytes, so any line fits an empty
 * buffer. 64 KiB is some 150 access lines, one write(2) under load.
 */
#define LOG_BUF_SIZE    65536
/* The longest a line waits in the buffer while the process is idle. */
#define LOG_FLUSH_MS    100

static atomic_int log_level = CL_LOG_INFO;

/*
 * One buffer for the process rather than one per thread: the order of the output is the
 * order in which lines were appended, so each thread's lines keep their order and lines of
 * different threads come out in the order they were logged (their timestamps ascend, up
 * to the formatting time of each). Under the lock only a memcpy runs; the JSON is built
 * before it. Two halves: a flush swaps them under mu and writes the full one outside it,
 * so appending never waits for a write(2); write_mu keeps one flush at a time, which keeps
 * the halves in order.
 */
static struct {
    pthread_mutex_t write_mu; /* taken before mu, never after it */
    pthread_mutex_t mu;       /* everything below */
    pthread_cond_t wake;      /* the flusher waits on it, on CLOCK_MONOTONIC */
    char half[2][LOG_BUF_SIZE];
    int active;       /* the half being appended to */
    size_t len;       /* bytes in it */
    int64_t first_ms; /* cl_now_ms() when its first line came */
    int fd;
    bool flusher_idle;   /* waiting without a deadline: an append must wake it */
    bool flusher_up;     /* the flusher thread runs */
    bool flusher_failed; /* it could not be started: every line is written at once */
} log_out = {
    .write_mu = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .fd = STDOUT_FILENO,
};
static pthread_once_t log_out_once = PTHREAD_ONCE_INIT;
/* Set once at startup, before threads log; read on every line. */
static char log_service[LOG_SERVICE_MAX];

/*
 * A copy, not a pointer: the ctx lives on a caller's stack and may be gone before the
 * thread logs again.
 */
typedef struct log_binding {
    char request_id[sizeof(((cl_ctx *)0)->request_id)];
    char trace_id[sizeof(((cl_ctx *)0)->trace_id)];
    char span_id[sizeof(((cl_ctx *)0)->span_id)];
} log_binding;

static _Thread_local log_binding log_bound;

static void utf8_sanitize(char *s);
/* Per thread rather than on the stack, so that small worker stacks are not at risk. */
static _Thread_local char log_line[LOG_LINE_MAX + 1];

void cl_log_set_level(cl_log_level level)
{
    if ((int)level >= 0 && (size_t)level < LOG_NLEVELS) {
        atomic_store(&log_level, (int)level);
    }
}

cl_status cl_log_parse_level(const char *s, cl_log_level *out)
{
    if (s == NULL) {
        return CL_INVALID;
    }
    for (size_t i = 0; i < LOG_NLEVELS; i++) {
        if (strcmp(s, log_level_names[i]) == 0) {
            *out = (cl_log_level)i;
            return CL_OK;
        }
    }
    return CL_INVALID;
}

static void write_all(int fd, const char *buf, size_t len);

/*
 * Takes write_mu and mu (in that order; the caller releases them) and the buffered lines,
 * with the descriptor they go to.
 */
static size_t lock_and_take(const char **out, int *fd)
{
    size_t n;

    pthread_mutex_lock(&log_out.write_mu);
    pthread_mutex_lock(&log_out.mu);
    n = log_out.len;
    *out = log_out.half[log_out.active];
    *fd = log_out.fd;
    log_out.active ^= 1;
    log_out.len = 0;
    return n;
}

/* Writes out what is buffered, newfd (>= 0) becoming the descriptor for what follows. */
static void flush_switch(int newfd)
{
    const char *out;
    size_t n;
    int fd;

    n = lock_and_take(&out, &fd);
    if (newfd >= 0) {
        log_out.fd = newfd;
    }
    pthread_mutex_unlock(&log_out.mu);
    write_all(fd, out, n);
    pthread_mutex_unlock(&log_out.write_mu);
}

void cl_log_flush(void)
{
    flush_switch(-1);
}

void cl_log_set_fd(int fd)
{
    /* What was logged before goes where it was meant to go. */
    flush_switch(fd >= 0 ? fd : STDOUT_FILENO);
}

/* Writes out the buffer once its oldest line is LOG_FLUSH_MS old; runs for good. */
static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_out.mu);
    for (;;) {
        if (log_out.len == 0) {
            log_out.flusher_idle = true;
            pthread_cond_wait(&log_out.wake, &log_out.mu);
            log_out.flusher_idle = false;
        } else if (cl_now_ms() < log_out.first_ms + LOG_FLUSH_MS) {
            struct timespec due = cl_deadline_at(log_out.first_ms + LOG_FLUSH_MS);

            pthread_cond_timedwait(&log_out.wake, &log_out.mu, &due);
        } else {
            pthread_mutex_unlock(&log_out.mu);
            cl_log_flush();
            pthread_mutex_lock(&log_out.mu);
        }
    }
    return NULL;
}

/*
 * Starts the flusher; call with mu held. It blocks every signal: the server waits for
 * SIGINT/SIGTERM with sigwait in one thread and has them blocked in all others, and a
 * thread started before that mask was set must not take them (ADR 0032).
 */
static void start_flusher_locked(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all;
    sigset_t old;
    int rc;

    if (pthread_attr_init(&attr) != 0) {
        log_out.flusher_failed = true;
        return;
    }
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, &attr, flusher_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    log_out.flusher_up = rc == 0;
    log_out.flusher_failed = rc != 0;
}

/* fork: the child gets an empty buffer and starts a flusher of its own when it logs. */
static void before_fork(void)
{
    const char *out;
    size_t n;
    int fd;

    n = lock_and_take(&out, &fd);
    write_all(fd, out, n);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&log_out.mu);
    pthread_mutex_unlock(&log_out.write_mu);
}

static void after_fork_child(void)
{
    log_out.flusher_up = false;
    log_out.flusher_idle = false;
    log_out.flusher_failed = false;
    pthread_mutex_unlock(&log_out.mu);
    pthread_mutex_unlock(&log_out.write_mu);
}

static void log_out_init(void)
{
    if (cl_cond_init_monotonic(&log_out.wake) != 0) {
        log_out.flusher_failed = true;
    }
    /* A normal exit (return from main, exit) writes out what is buffered. */
    (void)atexit(cl_log_flush);
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/*
 * Appends one line (newline included). An error line is written out at once, with every
 * line before it, so that it is never lost in a buffer when the process crashes next.
 */
static void log_append(const char *line, size_t n, bool urgent)
{
    bool wake;

    pthread_once(&log_out_once, log_out_init);
    pthread_mutex_lock(&log_out.mu);
    if (!log_out.flusher_up && !log_out.flusher_failed) {
        start_flusher_locked();
    }
    /* Without a flusher nothing bounds the wait, so nothing waits. */
    urgent = urgent || log_out.flusher_failed;
    while (log_out.len + n > LOG_BUF_SIZE) {
        pthread_mutex_unlock(&log_out.mu);
        cl_log_flush();
        pthread_mutex_lock(&log_out.mu);
    }
    if (log_out.len == 0) {
        log_out.first_ms = cl_now_ms();
    }
    memcpy(log_out.half[log_out.active] + log_out.len, line, n);
    log_out.len += n;
    wake = log_out.flusher_idle;
    log_out.flusher_idle = false;
    pthread_mutex_unlock(&log_out.mu);
    if (wake) {
        pthread_cond_signal(&log_out.wake);
    }
    if (urgent) {
        cl_log_flush();
    }
}

void cl_log_set_service(const char *name)
{
    cl_strlcpy(log_service, name != NULL ? name : "", sizeof(log_service));
    utf8_sanitize(log_service);
}

void cl__log_swap_trace(const char *trace_id, const char *span_id, char saved_trace[33],
                        char saved_span[17])
{
    char t[sizeof(log_bound.trace_id)];
    char s[sizeof(log_bound.span_id)];

    cl_strlcpy(t, trace_id, sizeof(t));
    cl_strlcpy(s, span_id, sizeof(s));
    cl_strlcpy(saved_trace, log_bound.trace_id, sizeof(log_bound.trace_id));
    cl_strlcpy(saved_span, log_bound.span_id, sizeof(log_bound.span_id));
    cl_strlcpy(log_bound.trace_id, t, sizeof(log_bound.trace_id));
    cl_strlcpy(log_bound.span_id, s, sizeof(log_bound.span_id));
}

void cl_log_bind(const cl_ctx *ctx)
{
    if (ctx == NULL) {
        memset(&log_bound, 0, sizeof(log_bound));
        return;
    }
    cl_strlcpy(log_bound.request_id, ctx->request_id, sizeof(log_bound.request_id));
    cl_strlcpy(log_bound.trace_id, ctx->trace_id, sizeof(log_bound.trace_id));
    cl_strlcpy(log_bound.span_id, ctx->span_id, sizeof(log_bound.span_id));
}

/*
 * jansson refuses strings that are not UTF-8, and a log line must not be lost for a stray
 * byte in a message, so each invalid byte becomes '?' in place.
 */
static void utf8_sanitize(char *s)
{
    size_t len = strlen(s);
    size_t i = 0;

    while (i < len) {
        size_t n = cl_utf8_len(s + i, len - i);

        if (n == 0) {
            s[i] = '?';
            n = 1;
        }
        i += n;
    }
}

/* Cuts s (in buf[size]) so that the ellipsis fits, at a character boundary. */
static void truncate_with_mark(char *buf, size_t size)
{
    size_t cut = size - sizeof(LOG_ELLIPSIS);

    /* Back up over continuation bytes so that no character is split. */
    while (cut > 0 && ((unsigned char)buf[cut] & 0xc0) == 0x80) {
        cut--;
    }
    memcpy(buf + cut, LOG_ELLIPSIS, sizeof(LOG_ELLIPSIS));
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* Nowhere left to report a failure to log; drop the line. */
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int set_string(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value));
}

/* The fixed fields and the bound ids; a new reference, or NULL when out of memory. */
static json_t *log_base(cl_log_level level, const char *module, const char *msg)
{
    char ts[32];
    json_t *obj = json_object();

    if (obj == NULL) {
        return NULL;
    }
    cl_now_rfc3339(ts);
    if (set_string(obj, "@timestamp", ts) != 0 ||
        set_string(obj, "log.level", log_level_names[level]) != 0 ||
        set_string(obj, "log.logger", module) != 0 || set_string(obj, "message", msg) != 0 ||
        set_string(obj, "ecs.version", LOG_ECS_VERSION) != 0) {
        goto fail;
    }
    if (log_service[0] != '\0' && set_string(obj, "service.name", log_service) != 0) {
        goto fail;
    }
    if (log_bound.request_id[0] != '\0' &&
        set_string(obj, "http.request.id", log_bound.request_id) != 0) {
        goto fail;
    }
    if (log_bound.trace_id[0] != '\0' && set_string(obj, "trace.id", log_bound.trace_id) != 0) {
        goto fail;
    }
    if (log_bound.span_id[0] != '\0' && set_string(obj, "span.id", log_bound.span_id) != 0) {
        goto fail;
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* Adds the caller's fields that do not collide with one already on the line. */
static void merge_fields(json_t *obj, json_t *fields)
{
    const char *key;
    json_t *value;

    if (!json_is_object(fields)) {
        return;
    }
    json_object_foreach (fields, key, value) {
        if (json_object_get(obj, key) == NULL) {
            json_object_set(obj, key, value);
        }
    }
}

/* Dumps obj into line[size - 1] and returns its length, or 0 when it does not fit. */
static size_t dump_line(const json_t *obj, char *line, size_t size)
{
    size_t n = json_dumpb(obj, line, size - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (n == 0 || n > size - 1) {
        return 0;
    }
    return n;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 0)))
#endif
static void
log_emit(cl_log_level level, const char *module, json_t *fields, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    char mod[LOG_MODULE_MAX];
    json_t *obj = NULL;
    size_t n;
    int len;

    if ((int)level < 0 || (size_t)level >= LOG_NLEVELS || (int)level < atomic_load(&log_level)) {
        goto out;
    }
    if (fmt == NULL) {
        msg[0] = '\0';
        len = 0;
    } else {
        len = vsnprintf(msg, sizeof(msg), fmt, ap);
    }
    if (len < 0) {
        cl_strlcpy(msg, "(unformattable message)", sizeof(msg));
    } else if ((size_t)len >= sizeof(msg)) {
        truncate_with_mark(msg, sizeof(msg));
    }
    utf8_sanitize(msg);
    cl_strlcpy(mod, module != NULL ? module : "", sizeof(mod));
    utf8_sanitize(mod);

    obj = log_base(level, mod, msg);
    if (obj == NULL) {
        goto out;
    }
    merge_fields(obj, fields);
    n = dump_line(obj, log_line, sizeof(log_line));
    if (n == 0) {
        /* Too big with the caller's fields: keep the line, say what was dropped. */
        json_decref(obj);
        obj = log_base(level, mod, msg);
        if (obj == NULL || json_object_set_new(obj, "fields_dropped", json_true()) != 0) {
            goto out;
        }
        n = dump_line(obj, log_line, sizeof(log_line));
        if (n == 0) {
            goto out;
        }
    }
    log_line[n] = '\n';
    log_append(log_line, n + 1, level >= CL_LOG_ERROR);
out:
    json_decref(obj);
    json_decref(fields);
}

void cl_log(cl_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, module, NULL, fmt, ap);
    va_end(ap);
}

void cl_log_with(cl_log_level level, const char *module, json_t *fields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, module, fields, fmt, ap);
    va_end(ap);
}
