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
#include "cleave/util.h"

#include "../trace/trace_internal.h"
#include "log_internal.h"

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
/* What a line is first written into, on the stack: an access line is some 500 bytes. */
#define LOG_SMALL_LINE 2048
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
    cl_thread_background("log", "flush");
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

/*
 * A line being written as JSON into a fixed buffer, without jansson's objects (ADR 0046):
 * building the fixed fields as a json_t cost some 15 allocations a line, and the access
 * line's fields as many again. full is set, and nothing more written, once something does
 * not fit; keys lists the fixed fields written, which the caller's fields may not repeat.
 */
typedef struct log_writer {
    char *buf;
    size_t size; /* room for the line and its newline */
    size_t len;
    bool full;
    const char *keys[9];
    size_t nkeys;
} log_writer;

static void put_bytes(log_writer *w, const char *s, size_t n)
{
    if (w->full || n >= w->size - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_char(log_writer *w, char c)
{
    put_bytes(w, &c, 1);
}

/* Appends the k bytes at p to out[0..room) at *len; false when they do not fit. */
static bool escape_put(char *out, size_t room, size_t *len, const void *p, size_t k)
{
    if (k > room - *len) {
        return false;
    }
    memcpy(out + *len, p, k);
    *len += k;
    return true;
}

size_t cl__json_escape(char *out, size_t room, const char *s, size_t n, char bad)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;
    size_t i = 0;
    bool ok = escape_put(out, room, &len, "\"", 1);

    while (ok && i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t run = i;

        /* The bytes that need nothing, copied at once. */
        while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x80 &&
               s[run] != '"' && s[run] != '\\') {
            run++;
        }
        if (run > i) {
            ok = escape_put(out, room, &len, s + i, run - i);
            i = run;
        } else if (c >= 0x80) {
            size_t k = cl_utf8_len(s + i, n - i);

            ok = (k > 0 || bad != '\0') &&
                 escape_put(out, room, &len, k > 0 ? s + i : &bad, k > 0 ? k : 1);
            i += k > 0 ? k : 1;
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};

            ok = escape_put(out, room, &len, esc, 2);
            i++;
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            const char *named = c == '\b'   ? "\\b"
                                : c == '\f' ? "\\f"
                                : c == '\n' ? "\\n"
                                : c == '\r' ? "\\r"
                                : c == '\t' ? "\\t"
                                            : NULL;

            ok = escape_put(out, room, &len, named != NULL ? named : esc, named != NULL ? 2 : 6);
            i++;
        }
    }
    ok = ok && escape_put(out, room, &len, "\"", 1);
    return ok ? len : SIZE_MAX;
}

/*
 * s as a JSON string (cl__json_escape), each byte that is not part of well-formed UTF-8
 * written as '?', as messages are: a line must not be lost for a stray byte in a path.
 */
static void put_string(log_writer *w, const char *s)
{
    size_t n;

    if (w->full) {
        return;
    }
    /* One byte stays free, as put_bytes keeps it: the line's '\n'. */
    n = cl__json_escape(w->buf + w->len, w->size - w->len - 1, s, strlen(s), '?');
    if (n == SIZE_MAX) {
        w->full = true;
        return;
    }
    w->len += n;
}

size_t cl__json_int(char digits[CL__JSON_INT_MAX], int64_t v)
{
    size_t at = CL__JSON_INT_MAX;
    /* In unsigned arithmetic, so that INT64_MIN has a magnitude. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        digits[--at] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag > 0);
    if (v < 0) {
        digits[--at] = '-';
    }
    return at;
}

static void put_int(log_writer *w, int64_t v)
{
    char digits[CL__JSON_INT_MAX];
    size_t at = cl__json_int(digits, v);

    put_bytes(w, digits + at, sizeof(digits) - at);
}

/* ,"key": before a value; the first field of the line opens it instead. */
static void put_key(log_writer *w, const char *key)
{
    put_char(w, w->len == 0 ? '{' : ',');
    put_string(w, key);
    put_char(w, ':');
}

/* One of the fixed fields, remembered so that no caller's field repeats it. */
static void put_fixed(log_writer *w, const char *key, const char *value)
{
    put_key(w, key);
    put_string(w, value);
    if (w->nkeys < sizeof(w->keys) / sizeof(w->keys[0])) {
        w->keys[w->nkeys++] = key;
    }
}

static bool is_fixed(const log_writer *w, const char *key)
{
    for (size_t i = 0; i < w->nkeys; i++) {
        /* The first byte first: most keys differ there, and a call to strcmp costs more. */
        if (w->keys[i][0] == key[0] && strcmp(w->keys[i], key) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * The line's @timestamp (cl_rfc3339_format's form). Lines of one thread mostly fall in the
 * same second, so the thread keeps that second's text and writes only the milliseconds:
 * formatting the whole date was a sixth of an access line's cost.
 */
static void log_timestamp(char ts[CL_RFC3339_SIZE])
{
    static _Thread_local int64_t second = -1;
    static _Thread_local char text[CL_RFC3339_SIZE];
    int64_t now_ms = cl_wall_ms();
    int64_t ms = now_ms % 1000;

    /* Outside 1970-9999 the slow path, which also clamps as cl_rfc3339_format does. */
    if (now_ms < 0 || now_ms >= INT64_C(253402300800000)) {
        cl_rfc3339_format(now_ms, ts);
        return;
    }
    if (now_ms / 1000 != second) {
        cl_rfc3339_format(now_ms, text);
        second = now_ms / 1000;
    }
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ": the milliseconds are the three digits before the Z. */
    memcpy(ts, text, CL_RFC3339_SIZE);
    ts[20] = (char)('0' + ms / 100);
    ts[21] = (char)('0' + ms / 10 % 10);
    ts[22] = (char)('0' + ms % 10);
}

/* The fixed fields and the bound ids, in this order. */
static void put_base(log_writer *w, cl_log_level level, const char *module, const char *msg)
{
    char ts[CL_RFC3339_SIZE];

    log_timestamp(ts);
    put_fixed(w, "@timestamp", ts);
    put_fixed(w, "log.level", log_level_names[level]);
    put_fixed(w, "log.logger", module);
    put_fixed(w, "message", msg);
    put_fixed(w, "ecs.version", LOG_ECS_VERSION);
    if (log_service[0] != '\0') {
        put_fixed(w, "service.name", log_service);
    }
    if (log_bound.request_id[0] != '\0') {
        put_fixed(w, "http.request.id", log_bound.request_id);
    }
    if (log_bound.trace_id[0] != '\0') {
        put_fixed(w, "trace.id", log_bound.trace_id);
    }
    if (log_bound.span_id[0] != '\0') {
        put_fixed(w, "span.id", log_bound.span_id);
    }
}

/* The caller's jansson fields that do not collide with a fixed one, in their order. */
static void put_json_fields(log_writer *w, json_t *fields)
{
    const char *key;
    json_t *value;

    if (!json_is_object(fields)) {
        return;
    }
    json_object_foreach (fields, key, value) {
        size_t n;

        if (is_fixed(w, key)) {
            continue;
        }
        put_key(w, key);
        if (w->full) {
            return;
        }
        n = json_dumpb(value, w->buf + w->len, w->size - w->len - 1,
                       JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0 || n >= w->size - w->len) {
            w->full = true;
            return;
        }
        w->len += n;
    }
}

/* The caller's typed fields that do not collide with a fixed one, in their order. */
static void put_typed_fields(log_writer *w, const cl__log_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fields[i].key == NULL || is_fixed(w, fields[i].key)) {
            continue;
        }
        put_key(w, fields[i].key);
        if (fields[i].text != NULL) {
            put_string(w, fields[i].text);
        } else {
            put_int(w, fields[i].number);
        }
    }
}

/* A whole line into w (reset first): the fixed fields, then the caller's, then '}'. */
static void write_line(log_writer *w, cl_log_level level, const char *module, const char *msg,
                       json_t *fields, const cl__log_field *typed, size_t ntyped, bool drop_fields)
{
    w->len = 0;
    w->full = false;
    w->nkeys = 0;
    put_base(w, level, module, msg);
    if (drop_fields) {
        put_key(w, "fields_dropped");
        put_bytes(w, "true", 4);
    } else {
        put_json_fields(w, fields);
        put_typed_fields(w, typed, ntyped);
    }
    put_char(w, '}');
}

static bool level_on(cl_log_level level)
{
    return (int)level >= 0 && (size_t)level < LOG_NLEVELS && (int)level >= atomic_load(&log_level);
}

/*
 * Appends one line with message msg (msg[LOG_MSG_MAX], changed in place: bad UTF-8 becomes
 * '?'). It is written into a buffer on the stack, which an access line fits, and only a
 * line that does not fit takes a buffer of LOG_LINE_MAX from the heap; beyond that the
 * caller's fields are dropped rather than the line lost.
 */
static void emit(cl_log_level level, const char *module, json_t *fields, const cl__log_field *typed,
                 size_t ntyped, char *msg)
{
    char mod[LOG_MODULE_MAX];
    char small[LOG_SMALL_LINE];
    char *big = NULL;
    log_writer w = {.buf = small, .size = sizeof(small)};

    utf8_sanitize(msg);
    cl_strlcpy(mod, module != NULL ? module : "", sizeof(mod));
    utf8_sanitize(mod);

    write_line(&w, level, mod, msg, fields, typed, ntyped, false);
    if (w.full) {
        big = malloc(LOG_LINE_MAX + 1);
        if (big == NULL) {
            return;
        }
        w.buf = big;
        w.size = LOG_LINE_MAX + 1;
        write_line(&w, level, mod, msg, fields, typed, ntyped, false);
    }
    if (w.full) {
        /* Too big with the caller's fields: keep the line, say what was dropped. */
        write_line(&w, level, mod, msg, NULL, NULL, 0, true);
    }
    if (!w.full) {
        w.buf[w.len] = '\n';
        log_append(w.buf, w.len + 1, level >= CL_LOG_ERROR);
    }
    free(big);
}

/* Formats the message, then emit. */
#if defined(__GNUC__)
__attribute__((format(printf, 6, 0)))
#endif
static void
log_emit(cl_log_level level, const char *module, json_t *fields, const cl__log_field *typed,
         size_t ntyped, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    int len;

    if (!level_on(level)) {
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
    emit(level, module, fields, typed, ntyped, msg);
out:
    json_decref(fields);
}

void cl_log(cl_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, module, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

void cl_log_with(cl_log_level level, const char *module, json_t *fields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, module, fields, NULL, 0, fmt, ap);
    va_end(ap);
}

void cl__log_fields_msg(cl_log_level level, const char *module, const cl__log_field *fields,
                        size_t n, const char *msg)
{
    char copy[LOG_MSG_MAX];

    if (!level_on(level)) {
        return;
    }
    if (cl_strlcpy(copy, msg != NULL ? msg : "", sizeof(copy)) != 0) {
        truncate_with_mark(copy, sizeof(copy));
    }
    emit(level, module, NULL, fields, n, copy);
}

void cl__log_fields(cl_log_level level, const char *module, const cl__log_field *fields, size_t n,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_emit(level, module, NULL, fields, n, fmt, ap);
    va_end(ap);
}
