/*
 * The metrics registry and its Prometheus text rendering (cleave/metrics.h).
 *
 * Each family keeps its series in an open-addressing hash table of fixed size whose slots
 * are atomic pointers. A series, once published in a slot, is never moved or freed, so a
 * lookup walks the slots without a lock; only inserting takes the family's mutex. Values
 * are doubles held as their bits in atomic 64-bit words, updated by compare-and-swap.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cleave/metrics.h"

/* Twice the series bound, so that probes stay short when a family is full. */
#define SLOTS ((size_t)2 * CL_METRIC_MAX_SERIES)

struct cl_series {
    const cl_metric *family;
    char **values;
    _Atomic uint64_t value;   /* counter and gauge: the double's bits; histogram: the sum's */
    _Atomic uint64_t *counts; /* histogram: observations per bucket, nbuckets + 1 (+Inf) */
};

struct cl__metric_state {
    cl_metric *family;
    size_t nlabels;
    pthread_mutex_t mu; /* inserting only */
    _Atomic size_t nseries;
    _Atomic(cl_series *) slots[SLOTS];
    struct cl__metric_state *next; /* the registry's list, under registry_mu */
};

typedef struct collector {
    cl_metrics_collect_fn fn;
    void *arg;
    struct collector *next;
} collector;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cl__metric_state *families;
static struct cl__metric_state **families_tail = &families;
static pthread_mutex_t collectors_mu = PTHREAD_MUTEX_INITIALIZER;
static collector *collectors;
static _Atomic uint64_t series_dropped;

const double cl_metric_duration_buckets[14] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10,   30};

/* --- values ----------------------------------------------------------------------- */

static double bits_to_double(uint64_t bits)
{
    double v;

    memcpy(&v, &bits, sizeof(v));
    return v;
}

static uint64_t double_to_bits(double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));
    return bits;
}

static void atomic_double_add(_Atomic uint64_t *word, double v)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(word, &old,
                                                  double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void cl_metric_add(cl_series *s, double v)
{
    /* A counter only grows: a negative or NaN addition is a bug at the site, not a value. */
    if (s == NULL || s->family->kind == CL_METRIC_HISTOGRAM ||
        (s->family->kind == CL_METRIC_COUNTER && !(v >= 0))) {
        return;
    }
    atomic_double_add(&s->value, v);
}

void cl_metric_set(cl_series *s, double v)
{
    if (s == NULL || s->family->kind == CL_METRIC_HISTOGRAM) {
        return;
    }
    atomic_store_explicit(&s->value, double_to_bits(v), memory_order_relaxed);
}

void cl_metric_observe(cl_series *s, double v)
{
    const cl_metric *m;
    size_t b = 0;

    if (s == NULL || s->family->kind != CL_METRIC_HISTOGRAM || isnan(v)) {
        return;
    }
    m = s->family;
    while (b < m->nbuckets && v > m->buckets[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&s->counts[b], 1, memory_order_relaxed);
    atomic_double_add(&s->value, v);
}

double cl_metric_value(const cl_series *s)
{
    uint64_t n = 0;

    if (s == NULL) {
        return 0;
    }
    if (s->family->kind != CL_METRIC_HISTOGRAM) {
        return bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed));
    }
    for (size_t b = 0; b <= s->family->nbuckets; b++) {
        n += atomic_load_explicit(&s->counts[b], memory_order_relaxed);
    }
    return (double)n;
}

double cl_metric_sum(const cl_series *s)
{
    if (s == NULL || s->family->kind != CL_METRIC_HISTOGRAM) {
        return 0;
    }
    return bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed));
}

int64_t cl_metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double cl_metrics_since(int64_t start_ns)
{
    return (double)(cl_metrics_now_ns() - start_ns) / 1e9;
}

/* --- registration ----------------------------------------------------------------- */

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; labels the same without ':' (and no "__"). */
static int name_ok(const char *s, int label)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9')) {
        return 0;
    }
    if (label && s[0] == '_' && s[1] == '_') {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_' || (!label && *p == ':');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int family_ok(const cl_metric *m, size_t *nlabels)
{
    size_t n = 0;

    if (!name_ok(m->name, 0) || m->help == NULL) {
        return 0;
    }
    while (n < CL_METRIC_MAX_LABELS && m->labels[n] != NULL) {
        if (!name_ok(m->labels[n], 1) ||
            (m->kind == CL_METRIC_HISTOGRAM && strcmp(m->labels[n], "le") == 0)) {
            return 0;
        }
        n++;
    }
    if (m->labels[n] != NULL) {
        return 0;
    }
    if (m->kind == CL_METRIC_HISTOGRAM) {
        if (m->buckets == NULL || m->nbuckets == 0 || m->nbuckets > CL_METRIC_MAX_BUCKETS) {
            return 0;
        }
        for (size_t b = 1; b < m->nbuckets; b++) {
            if (!(m->buckets[b] > m->buckets[b - 1])) {
                return 0;
            }
        }
    }
    *nlabels = n;
    return 1;
}

/* m's state, registering it on first use; NULL when it cannot be. */
static struct cl__metric_state *family_state(cl_metric *m)
{
    struct cl__metric_state *st = atomic_load_explicit(&m->state, memory_order_acquire);
    size_t nlabels = 0;

    if (st != NULL) {
        return st;
    }
    pthread_mutex_lock(&registry_mu);
    st = atomic_load_explicit(&m->state, memory_order_acquire);
    if (st != NULL || !family_ok(m, &nlabels)) {
        goto out;
    }
    /* One name, one family: a second declaration elsewhere would render a duplicate. */
    for (struct cl__metric_state *f = families; f != NULL; f = f->next) {
        if (strcmp(f->family->name, m->name) == 0) {
            goto out;
        }
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        goto out;
    }
    st->family = m;
    st->nlabels = nlabels;
    pthread_mutex_init(&st->mu, NULL);
    *families_tail = st;
    families_tail = &st->next;
    atomic_store_explicit(&m->state, st, memory_order_release);
out:
    pthread_mutex_unlock(&registry_mu);
    return st;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        for (const char *p = values[i]; *p != '\0'; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        }
        h = (h ^ 0xffu) * 1099511628211ULL;
    }
    return h;
}

static int same_values(const cl_series *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s->values[i], values[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static void series_free(cl_series *s, size_t n)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; s->values != NULL && i < n; i++) {
        free(s->values[i]);
    }
    free(s->values);
    free(s->counts);
    free(s);
}

static cl_series *series_new(const cl_metric *m, const char *const *values, size_t n)
{
    cl_series *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->family = m;
    s->values = calloc(n + 1, sizeof(*s->values));
    if (s->values == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        s->values[i] = strdup(values[i]);
        if (s->values[i] == NULL) {
            goto fail;
        }
    }
    if (m->kind == CL_METRIC_HISTOGRAM) {
        s->counts = calloc(m->nbuckets + 1, sizeof(*s->counts));
        if (s->counts == NULL) {
            goto fail;
        }
    }
    atomic_init(&s->value, double_to_bits(0));
    return s;
fail:
    series_free(s, n);
    return NULL;
}

/*
 * Probes from values[n]'s home slot: the series when found; else NULL with *free_slot the
 * first empty slot seen (SLOTS when none).
 */
static cl_series *probe(struct cl__metric_state *st, const char *const *values, size_t n,
                        size_t *free_slot)
{
    size_t at = (size_t)(hash_values(values, n) % SLOTS);

    *free_slot = SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        size_t k = (at + i) % SLOTS;
        cl_series *s = atomic_load_explicit(&st->slots[k], memory_order_acquire);

        if (s == NULL) {
            *free_slot = k;
            return NULL;
        }
        if (same_values(s, values, n)) {
            return s;
        }
    }
    return NULL;
}

cl_series *cl_metric_series(cl_metric *m, const char *const *values, size_t nvalues)
{
    static const char *const none[1] = {NULL};
    struct cl__metric_state *st;
    cl_series *s;
    size_t slot;
    size_t n;

    if (m == NULL) {
        return NULL;
    }
    st = family_state(m);
    if (st == NULL) {
        return NULL;
    }
    /* Fixed at registration; read once, so that every use below agrees on it. */
    n = st->nlabels;
    if (nvalues != n || (values == NULL && n != 0)) {
        return NULL;
    }
    if (values == NULL) {
        values = none;
    }
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            return NULL;
        }
    }
    s = probe(st, values, n, &slot);
    if (s != NULL) {
        return s;
    }
    pthread_mutex_lock(&st->mu);
    /* Another thread may have added it since the lock-free probe. */
    s = probe(st, values, n, &slot);
    if (s != NULL) {
        goto out;
    }
    if (slot == SLOTS ||
        atomic_load_explicit(&st->nseries, memory_order_relaxed) >= CL_METRIC_MAX_SERIES) {
        atomic_fetch_add_explicit(&series_dropped, 1, memory_order_relaxed);
        goto out;
    }
    s = series_new(m, values, n);
    if (s == NULL) {
        goto out;
    }
    atomic_fetch_add_explicit(&st->nseries, 1, memory_order_relaxed);
    atomic_store_explicit(&st->slots[slot], s, memory_order_release);
out:
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* --- collectors ------------------------------------------------------------------- */

cl_status cl_metrics_collector_add(cl_metrics_collect_fn fn, void *arg)
{
    collector *c;

    if (fn == NULL) {
        return CL_INVALID;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return CL_INTERNAL;
    }
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&collectors_mu);
    c->next = collectors;
    collectors = c;
    pthread_mutex_unlock(&collectors_mu);
    return CL_OK;
}

void cl_metrics_collector_remove(cl_metrics_collect_fn fn, void *arg)
{
    pthread_mutex_lock(&collectors_mu);
    for (collector **p = &collectors; *p != NULL; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->arg == arg) {
            collector *gone = *p;
            *p = gone->next;
            free(gone);
            break;
        }
    }
    pthread_mutex_unlock(&collectors_mu);
}

/* --- the process's own figures ------------------------------------------------------ */

static cl_metric process_cpu = CL_METRIC_COUNTER(
    "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", NULL);
static cl_metric process_rss =
    CL_METRIC_GAUGE("process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
static cl_metric process_vsize =
    CL_METRIC_GAUGE("process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
static cl_metric process_fds =
    CL_METRIC_GAUGE("process_open_fds", "Number of open file descriptors.", NULL);
static cl_metric process_max_fds =
    CL_METRIC_GAUGE("process_max_fds", "Maximum number of open file descriptors.", NULL);
static cl_metric process_start = CL_METRIC_GAUGE(
    "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", NULL);
static cl_metric dropped_family =
    CL_METRIC_COUNTER("cleave_metrics_series_dropped_total",
                      "Label combinations not recorded because their family was full.", NULL);

/* The system's boot time in seconds since the epoch (btime of /proc/stat), or 0. */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    double btime = 0;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(f);
    return btime;
}

/*
 * Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize) and 24 (rss) of proc(5)'s
 * /proc/[pid]/stat, as doubles: exact for every figure a process reaches.
 */
static void collect_stat(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n;
    char *p;
    char *save = NULL;
    int field = 3;
    double v[25] = {0};
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);

    if (f == NULL) {
        return;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: start after its last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL) {
        return;
    }
    for (char *tok = strtok_r(p + 1, " ", &save); tok != NULL && field < 25;
         tok = strtok_r(NULL, " ", &save), field++) {
        v[field] = strtod(tok, NULL);
    }
    if (field < 25) {
        return;
    }
    cl_metric_set(cl_metric_series(&process_cpu, NULL, 0), (v[14] + v[15]) / ticks);
    cl_metric_set(cl_metric_series(&process_vsize, NULL, 0), v[23]);
    cl_metric_set(cl_metric_series(&process_rss, NULL, 0), v[24] * page);
    cl_metric_set(cl_metric_series(&process_start, NULL, 0), boot_time() + v[22] / ticks);
}

static void collect_process(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct rlimit rl;
    int fds = 0;

    collect_stat();
    if (d != NULL) {
        const struct dirent *e;

        /* readdir is thread-safe on distinct streams (glibc); this one is ours alone. */
        while ((e = readdir(d)) != NULL) { /* NOLINT(concurrency-mt-unsafe) */
            fds += e->d_name[0] != '.';
        }
        closedir(d);
        /* Less the descriptor of the listing itself. */
        cl_metric_set(cl_metric_series(&process_fds, NULL, 0), (double)(fds - 1));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        cl_metric_set(cl_metric_series(&process_max_fds, NULL, 0), (double)rl.rlim_cur);
    }
    cl_metric_set(cl_metric_series(&dropped_family, NULL, 0),
                  (double)atomic_load_explicit(&series_dropped, memory_order_relaxed));
}

/* --- rendering -------------------------------------------------------------------- */

/* A sample value as Prometheus parses it (Go's ParseFloat): shortest exact form. */
static void put_number(FILE *f, double v)
{
    char buf[64];

    if (isnan(v)) {
        fputs("NaN", f);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "+Inf" : "-Inf", f);
        return;
    }
    snprintf(buf, sizeof(buf), "%.15g", v);
    if (strtod(buf, NULL) != v) {
        snprintf(buf, sizeof(buf), "%.17g", v);
    }
    fputs(buf, f);
}

/* HELP text escapes '\' and newline; label values also '"' (format 0.0.4). */
static void put_escaped(FILE *f, const char *s, int quote)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\\') {
            fputs("\\\\", f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (quote && *p == '"') {
            fputs("\\\"", f);
        } else {
            fputc(*p, f);
        }
    }
}

/* name{labels[,le="bound"]} value */
static void put_sample(FILE *f, const struct cl__metric_state *st, const cl_series *s,
                       const char *suffix, const double *le, double v)
{
    const cl_metric *m = st->family;
    int any = st->nlabels > 0 || le != NULL;

    fputs(m->name, f);
    fputs(suffix, f);
    if (any) {
        fputc('{', f);
    }
    for (size_t i = 0; i < st->nlabels; i++) {
        fprintf(f, "%s%s=\"", i > 0 ? "," : "", m->labels[i]);
        put_escaped(f, s->values[i], 1);
        fputc('"', f);
    }
    if (le != NULL) {
        fprintf(f, "%sle=\"", st->nlabels > 0 ? "," : "");
        put_number(f, *le);
        fputc('"', f);
    }
    if (any) {
        fputc('}', f);
    }
    fputc(' ', f);
    put_number(f, v);
    fputc('\n', f);
}

static void put_histogram(FILE *f, const struct cl__metric_state *st, const cl_series *s)
{
    const cl_metric *m = st->family;
    uint64_t cumulative = 0;
    double inf = INFINITY;

    for (size_t b = 0; b <= m->nbuckets; b++) {
        cumulative += atomic_load_explicit(&s->counts[b], memory_order_relaxed);
        put_sample(f, st, s, "_bucket", b < m->nbuckets ? &m->buckets[b] : &inf,
                   (double)cumulative);
    }
    put_sample(f, st, s, "_sum", NULL, cl_metric_sum(s));
    /* The count is the +Inf bucket, so that the two agree under concurrent observations. */
    put_sample(f, st, s, "_count", NULL, (double)cumulative);
}

static void put_family(FILE *f, const struct cl__metric_state *st)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const cl_metric *m = st->family;

    if (atomic_load_explicit(&st->nseries, memory_order_acquire) == 0) {
        return;
    }
    fprintf(f, "# HELP %s ", m->name);
    put_escaped(f, m->help, 0);
    fprintf(f, "\n# TYPE %s %s\n", m->name, types[m->kind]);
    for (size_t k = 0; k < SLOTS; k++) {
        const cl_series *s = atomic_load_explicit(&st->slots[k], memory_order_acquire);

        if (s == NULL) {
            continue;
        }
        if (m->kind == CL_METRIC_HISTOGRAM) {
            put_histogram(f, st, s);
        } else {
            put_sample(f, st, s, "", NULL, cl_metric_value(s));
        }
    }
}

cl_status cl_metrics_render(char **out, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f;

    pthread_mutex_lock(&collectors_mu);
    collect_process();
    for (const collector *c = collectors; c != NULL; c = c->next) {
        c->fn(c->arg);
    }
    pthread_mutex_unlock(&collectors_mu);

    f = open_memstream(&text, &n);
    if (f == NULL) {
        return CL_INTERNAL;
    }
    pthread_mutex_lock(&registry_mu);
    for (const struct cl__metric_state *st = families; st != NULL; st = st->next) {
        put_family(f, st);
    }
    pthread_mutex_unlock(&registry_mu);
    if (fclose(f) != 0) {
        free(text);
        return CL_INTERNAL;
    }
    *out = text;
    *len = n;
    return CL_OK;
}

/* --- the platform's shared families --------------------------------------------- */

static cl_metric build_info = CL_METRIC_GAUGE(
    "cleave_build_info", "What runs in this process: 1, labelled with its service and version.",
    "service", "version");

void cl_metrics_build_info(const char *service, const char *version)
{
    cl_metric_set(CL_METRIC_SERIES(&build_info, service, version), 1);
}

static cl_metric http_requests =
    CL_METRIC_COUNTER("cleave_http_requests_total",
                      "HTTP requests answered, by route pattern, method and status class.", "route",
                      "method", "status_class");
static cl_metric http_duration = CL_METRIC_HISTOGRAM(
    "cleave_http_request_duration_seconds",
    "Time from reading an HTTP request to its answer, by route pattern and method.",
    cl_metric_duration_buckets, "route", "method");

/* The method as a label: the standard ones, and "other" for whatever else a client sends. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "TRACE"};

    for (size_t i = 0; method != NULL && i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(method, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

void cl_metrics_http(const char *route, const char *method, int status, int64_t start_ns)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const char *cls = status >= 100 && status < 600 ? classes[status / 100 - 1] : "5xx";
    const char *r = route != NULL ? route : "unmatched";
    const char *meth = method_label(method);

    cl_metric_add(CL_METRIC_SERIES(&http_requests, r, meth, cls), 1);
    cl_metric_observe(CL_METRIC_SERIES(&http_duration, r, meth), cl_metrics_since(start_ns));
}

static cl_metric op_calls = CL_METRIC_COUNTER(
    "cleave_module_operation_calls_total",
    "Calls of module operations, by module, operation, binding (local or remote) and outcome.",
    "module", "operation", "binding", "outcome");
static cl_metric op_duration =
    CL_METRIC_HISTOGRAM("cleave_module_operation_duration_seconds",
                        "Duration of module operation calls, by module, operation and binding.",
                        cl_metric_duration_buckets, "module", "operation", "binding");

void cl_metrics_operation(const char *module, const char *operation, const char *binding,
                          cl_status st, int64_t start_ns)
{
    cl_metric_add(CL_METRIC_SERIES(&op_calls, module, operation, binding, cl_status_name(st)), 1);
    cl_metric_observe(CL_METRIC_SERIES(&op_duration, module, operation, binding),
                      cl_metrics_since(start_ns));
}

static cl_metric module_calls = CL_METRIC_COUNTER(
    "cleave_module_calls_total",
    "Calls between modules, by calling module (gateway: routes and the host), called module, "
    "operation and the called module's binding (local or remote), counted by the caller.",
    "caller", "callee", "operation", "binding");

void cl_metrics_module_call(const char *caller, const char *callee, const char *operation,
                            const char *binding)
{
    cl_metric_add(CL_METRIC_SERIES(&module_calls, caller, callee, operation, binding), 1);
}

static cl_metric remote_outcomes = CL_METRIC_COUNTER(
    "cleave_rpc_client_calls_total",
    "Remote calls made by this process, by target module and outcome.", "target", "outcome");

void cl_metrics_remote_outcome(const char *target, const char *outcome)
{
    cl_metric_add(CL_METRIC_SERIES(&remote_outcomes, target, outcome), 1);
}

static const double step_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60,   300};
static cl_metric saga_steps =
    CL_METRIC_COUNTER("cleave_saga_steps_total", "Saga steps ended, by saga, step and outcome.",
                      "saga", "step", "outcome");
static cl_metric saga_step_duration =
    CL_METRIC_HISTOGRAM("cleave_saga_step_duration_seconds",
                        "Duration of saga steps, by saga and step.", step_buckets, "saga", "step");
static cl_metric saga_done =
    CL_METRIC_COUNTER("cleave_sagas_total", "Sagas ended, by saga and outcome.", "saga", "outcome");

void cl_metrics_saga_step(const char *saga, const char *step, const char *outcome, double seconds)
{
    cl_metric_add(CL_METRIC_SERIES(&saga_steps, saga, step, outcome), 1);
    cl_metric_observe(CL_METRIC_SERIES(&saga_step_duration, saga, step), seconds);
}

void cl_metrics_saga_done(const char *saga, const char *outcome)
{
    cl_metric_add(CL_METRIC_SERIES(&saga_done, saga, outcome), 1);
}

static cl_metric saga_running = CL_METRIC_GAUGE(
    "cleave_sagas_running", "Saga instances being run by this process, by saga.", "saga");

void cl_metrics_saga_running(const char *saga, int delta)
{
    cl_metric_add(CL_METRIC_SERIES(&saga_running, saga), (double)delta);
}
