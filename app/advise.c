/*
 * `cleave advise`: what extracting a module would put on the network, predicted from a
 * running process's /metrics (ADR 0039).
 *
 * The process counts every call between modules by caller, callee, operation and binding
 * (cleave_module_calls_total). Extracting M turns into remote calls exactly the local
 * calls that cross the new boundary: those into M from anything that stays (other modules
 * and the gateway's routes), and those from M to modules that stay. Their count, over the
 * process's uptime and over its API requests, times the per-call cost of the remote
 * binding, measured here against the same process, is the prediction.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cleave/metrics.h"
#include "cleave/rpc.h"
#include "host.h"

#define EXIT_USAGE           2
#define ADVISE_MAX_MODULES   HOST_MAX_MODULES
#define ADVISE_MAX_CALLS     1024
#define ADVISE_MAX_BODY      (16L * 1024 * 1024)
#define ADVISE_NAME_MAX      64
#define ADVISE_DEFAULT_URL   "http://127.0.0.1:8080"
#define ADVISE_DEFAULT_PROBE 200
#define ADVISE_MAX_PROBE     100000

/* One series of cleave_module_calls_total. */
typedef struct advise_call {
    char caller[ADVISE_NAME_MAX];
    char callee[ADVISE_NAME_MAX];
    char operation[ADVISE_NAME_MAX];
    bool local;
    double calls;
} advise_call;

/* What advise reads from one scrape. */
typedef struct advise_scrape {
    bool has_calls; /* the family is declared: the process counts calls between modules */
    advise_call calls[ADVISE_MAX_CALLS];
    size_t ncalls;
    double api_requests;  /* answered requests of /api/ routes and /graphql */
    double start_seconds; /* process_start_time_seconds, 0 when absent */
    /* The probe operation's local calls there (probe below): their time and count. */
    const char *probe_module;
    const char *probe_op;
    double probe_seconds;
    double probe_calls;
} advise_scrape;

/* The prediction for one module. */
typedef struct advise_module {
    const char *name;
    double calls_in;  /* local calls into it from what stays */
    double calls_out; /* local calls from it to what stays */
    bool remote;      /* already reached through its remote binding here */
} advise_module;

/* One run of advise: where, and the remote binding's cost measured there. */
typedef struct advise_run {
    const char *url;
    double uptime;
    int samples;
    const char *probe_module; /* the operation calls were timed with (probe_op) */
    const char *probe_op;
    double rtt_mean; /* its remote round trip: the mean, */
    double rtt;      /* the median */
    double rtt_p90;  /* and the 90th percentile */
    double local;    /* its mean local time in the process, while probed */
    double overhead; /* what the remote binding adds per call: rtt_mean - local */
} advise_run;

/* A response body, bounded. */
typedef struct advise_body {
    char *data;
    size_t len;
    bool too_big;
} advise_body;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    advise_body *b = arg;
    size_t n = size * nmemb;
    char *grown;

    if (b->len + n > (size_t)ADVISE_MAX_BODY) {
        b->too_big = true;
        return 0;
    }
    grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A handle for base's paths: short timeouts, no signals, the RPC client's TCP_NODELAY. */
static CURL *new_handle(void)
{
    CURL *c = curl_easy_init();

    if (c != NULL) {
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    }
    return c;
}

/* GET url into *b with c; 0, or -1 after printing why. */
static int get(CURL *c, const char *url, advise_body *b)
{
    long status = 0;
    CURLcode rc;

    b->len = 0;
    b->too_big = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "cleave: advise: cannot read %s: %s\n", url,
                b->too_big ? "answer larger than 16 MiB" : curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        fprintf(stderr, "cleave: advise: %s answered %ld, not 200\n", url, status);
        return -1;
    }
    return 0;
}

/* --- the Prometheus text format, as much of it as advise reads ---------------------- */

/* Copies a label value starting after its opening quote; *p ends past the closing one. */
static int parse_value(const char **p, char *out, size_t size)
{
    size_t n = 0;
    const char *s = *p;

    while (*s != '"') {
        char ch = *s;

        if (ch == '\0' || ch == '\n') {
            return -1;
        }
        if (ch == '\\') {
            s++;
            ch = *s == 'n' ? '\n' : *s;
            if (*s != '\\' && *s != '"' && *s != 'n') {
                return -1;
            }
        }
        if (n + 1 < size) {
            out[n++] = ch;
        }
        s++;
    }
    out[n] = '\0';
    *p = s + 1;
    return 0;
}

#define LABEL_MAX 8

typedef struct sample {
    char name[128];
    int nlabels;
    char keys[LABEL_MAX][64];
    char values[LABEL_MAX][ADVISE_NAME_MAX * 4];
    double value;
} sample;

static const char *label(const sample *s, const char *key)
{
    for (int i = 0; i < s->nlabels; i++) {
        if (strcmp(s->keys[i], key) == 0) {
            return s->values[i];
        }
    }
    return "";
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* One sample line (no comment, not empty) into *s; 0, or -1 when it is not one. */
static int parse_sample(const char *line, sample *s)
{
    const char *p = line;
    size_t n = 0;
    char *end;

    memset(s, 0, sizeof(*s));
    while (name_char(*p, n == 0)) {
        if (n + 1 >= sizeof(s->name)) {
            return -1;
        }
        s->name[n++] = *p++;
    }
    if (n == 0) {
        return -1;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t k = 0;

            if (s->nlabels == LABEL_MAX) {
                return -1;
            }
            while (name_char(*p, k == 0) && *p != ':') {
                if (k + 1 >= sizeof(s->keys[0])) {
                    return -1;
                }
                s->keys[s->nlabels][k++] = *p++;
            }
            if (k == 0 || p[0] != '=' || p[1] != '"') {
                return -1;
            }
            p += 2;
            if (parse_value(&p, s->values[s->nlabels], sizeof(s->values[0])) != 0) {
                return -1;
            }
            s->nlabels++;
            if (*p == ',') {
                p++;
            } else if (*p != '}') {
                return -1;
            }
        }
        p++;
    }
    if (*p != ' ') {
        return -1;
    }
    errno = 0;
    s->value = strtod(p + 1, &end);
    /* An optional timestamp may follow; nothing else. */
    if (end == p + 1 || errno == ERANGE || (*end != '\0' && *end != ' ')) {
        return -1;
    }
    return 0;
}

static bool api_route(const char *route)
{
    return strncmp(route, "/api/", 5) == 0 || strcmp(route, "/graphql") == 0;
}

/* Whether s is the probe operation's local duration histogram's series suffix. */
static bool is_probe(const sample *s, const advise_scrape *sc, const char *suffix)
{
    static const char family[] = "cleave_module_operation_duration_seconds";
    size_t n = sizeof(family) - 1;

    return strncmp(s->name, family, n) == 0 && strcmp(s->name + n, suffix) == 0 &&
           strcmp(label(s, "module"), sc->probe_module) == 0 &&
           strcmp(label(s, "operation"), sc->probe_op) == 0 &&
           strcmp(label(s, "binding"), "local") == 0;
}

/* Reads what advise needs from text; 0, or -1 after printing the first bad line. */
static int parse_scrape(char *text, const char *url, advise_scrape *sc)
{
    int lineno = 0;

    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        sample s;

        lineno++;
        if (nl != NULL) {
            *nl = '\0';
        }
        if (strncmp(line, "# TYPE cleave_module_calls_total ", 33) == 0) {
            sc->has_calls = true;
        }
        if (line[0] != '#' && line[0] != '\0') {
            if (parse_sample(line, &s) != 0) {
                fprintf(stderr,
                        "cleave: advise: %s/metrics line %d is not a metric sample: %.80s\n", url,
                        lineno, line);
                return -1;
            }
            if (strcmp(s.name, "cleave_module_calls_total") == 0) {
                advise_call *c = &sc->calls[sc->ncalls];

                if (sc->ncalls == ADVISE_MAX_CALLS) {
                    fprintf(stderr,
                            "cleave: advise: more than %d series of "
                            "cleave_module_calls_total\n",
                            ADVISE_MAX_CALLS);
                    return -1;
                }
                snprintf(c->caller, sizeof(c->caller), "%s", label(&s, "caller"));
                snprintf(c->callee, sizeof(c->callee), "%s", label(&s, "callee"));
                snprintf(c->operation, sizeof(c->operation), "%s", label(&s, "operation"));
                c->local = strcmp(label(&s, "binding"), "local") == 0;
                c->calls = s.value;
                if (c->caller[0] == '\0' || c->callee[0] == '\0' || !isfinite(s.value)) {
                    fprintf(stderr,
                            "cleave: advise: %s/metrics line %d: a call without caller "
                            "or callee, or not a number\n",
                            url, lineno);
                    return -1;
                }
                sc->ncalls++;
            } else if (strcmp(s.name, "cleave_http_requests_total") == 0 &&
                       api_route(label(&s, "route"))) {
                sc->api_requests += s.value;
            } else if (strcmp(s.name, "process_start_time_seconds") == 0) {
                sc->start_seconds = s.value;
            } else if (sc->probe_op != NULL && is_probe(&s, sc, "_sum")) {
                sc->probe_seconds += s.value;
            } else if (sc->probe_op != NULL && is_probe(&s, sc, "_count")) {
                sc->probe_calls += s.value;
            }
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (!sc->has_calls) {
        fprintf(stderr,
                "cleave: advise: %s/metrics has no cleave_module_calls_total: not a "
                "cleave process, or one older than `cleave advise`\n",
                url);
        return -1;
    }
    return 0;
}

/* --- the per-call cost of the remote binding ----------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The operation advise calls to measure the remote binding: the first of the deployment
 * that anyone may call (CL_OP_PUBLIC), that reads (CL_OP_READ) and that takes no request,
 * so that calling it needs no credential and changes nothing (identity's get_jwks in the
 * shop). NULL when the deployment has none.
 */
static const cl_op *find_probe(const char **module)
{
    for (int i = 0; host_deployment[i] != NULL; i++) {
        const cl_module_api *api = host_deployment[i];

        for (size_t k = 0; k < api->nops; k++) {
            const cl_op *op = &api->ops[k];

            if ((op->flags & CL_OP_PUBLIC) != 0 && (op->flags & CL_OP_READ) != 0 &&
                op->req == &cl_empty_type) {
                *module = api->name;
                return op;
            }
        }
    }
    return NULL;
}

/*
 * r->samples calls of op at base through the remote binding itself (cl_rpc_call, one kept
 * connection, no retries), each timed: their median and 90th percentile into r. 0, or -1
 * after printing why.
 */
static int probe(const char *base, const cl_op *op, advise_run *r)
{
    cl_rpc_options opt = {.max_idle = 1, .retry_max_attempts = 1};
    cl_rpc_client *c = NULL;
    cl_error err = {0};
    int n = r->samples;
    double *t = calloc((size_t)n + 1, sizeof(*t));
    void *resp = calloc(1, op->resp->size);
    cl_empty req = {0};
    int rc = -1;

    if (t == NULL || resp == NULL) {
        fprintf(stderr, "cleave: advise: out of memory\n");
        goto out;
    }
    if (cl_rpc_client_new(r->probe_module, base, &opt, &c, &err) != CL_OK) {
        fprintf(stderr, "cleave: advise: --url: %s\n", err.message);
        goto out;
    }
    /* Call 0 opens the connection, which a caller's pool holds open already: not timed. */
    for (int i = 0; i <= n; i++) {
        cl_ctx ctx;
        double start = now_seconds();

        cl_ctx_init(&ctx, 10000);
        if (cl_rpc_call(c, op, &ctx, &req, resp) != CL_OK) {
            fprintf(stderr,
                    "cleave: advise: calling %s.%s at %s to measure the remote binding: %s\n",
                    r->probe_module, op->name, base, ctx.err.message);
            goto out;
        }
        t[i] = now_seconds() - start;
        cl_schema_free(op->resp, resp);
        memset(resp, 0, op->resp->size);
    }
    for (int i = 1; i <= n; i++) {
        r->rtt_mean += t[i] / n;
    }
    qsort(t + 1, (size_t)n, sizeof(*t), cmp_double);
    r->rtt = t[1 + n / 2];
    r->rtt_p90 = t[1 + (n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
    rc = 0;
out:
    cl_rpc_client_free(c);
    free(resp);
    free(t);
    return rc;
}

/* --- the prediction -------------------------------------------------------------------- */

static void predict(const advise_scrape *sc, advise_module *m)
{
    for (size_t i = 0; i < sc->ncalls; i++) {
        const advise_call *c = &sc->calls[i];
        bool into = strcmp(c->callee, m->name) == 0;
        bool from = strcmp(c->caller, m->name) == 0;

        if (into && !c->local) {
            m->remote = true;
        }
        /* A module's calls to itself stay inside it; remote calls cross already. */
        if (!c->local || into == from) {
            continue;
        }
        if (into) {
            m->calls_in += c->calls;
        } else {
            m->calls_out += c->calls;
        }
    }
}

static bool crosses(const advise_call *c, const char *module)
{
    return c->local && (strcmp(c->callee, module) == 0) != (strcmp(c->caller, module) == 0);
}

static double per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void print_table(const advise_run *r, const advise_scrape *sc, const advise_module *mods,
                        int n)
{
    printf("Extraction advice from %s/metrics: %.0f API requests in %.1f s of uptime.\n", r->url,
           sc->api_requests, r->uptime);
    printf("Remote binding's cost per call: %.3f ms: %d calls of %s.%s through it took %.3f ms "
           "on average (median %.3f, p90 %.3f), %.3f ms of which inside the process.\n\n",
           r->overhead * 1e3, r->samples, r->probe_module, r->probe_op, r->rtt_mean * 1e3,
           r->rtt * 1e3, r->rtt_p90 * 1e3, r->local * 1e3);
    printf("%-12s %10s %10s %10s %10s %12s %14s\n", "module", "calls in", "calls out", "crossing",
           "per s", "per request", "added ms/req");
    for (int i = 0; i < n; i++) {
        const advise_module *m = &mods[i];
        double crossing = m->calls_in + m->calls_out;

        if (m->remote) {
            printf("%-12s %s\n", m->name, "already remote here: its calls cross today");
            continue;
        }
        printf("%-12s %10.0f %10.0f %10.0f %10.2f %12.3f %14.3f\n", m->name, m->calls_in,
               m->calls_out, crossing, per(crossing, r->uptime), per(crossing, sc->api_requests),
               per(crossing, sc->api_requests) * r->overhead * 1e3);
    }
    for (int i = 0; i < n; i++) {
        bool header = false;

        for (size_t k = 0; !mods[i].remote && k < sc->ncalls; k++) {
            const advise_call *c = &sc->calls[k];

            if (!crosses(c, mods[i].name) || c->calls <= 0) {
                continue;
            }
            if (!header) {
                printf("\nCalls that extracting %s would make remote:\n", mods[i].name);
                header = true;
            }
            printf("  %-10s -> %s.%-28s %10.0f\n", c->caller, c->callee, c->operation, c->calls);
        }
    }
}

static int print_json(const advise_run *r, const advise_scrape *sc, const advise_module *mods,
                      int n)
{
    json_t *out = json_pack(
        "{s:s, s:f, s:f, s:f, s:{s:s, s:s, s:i, s:f, s:f, s:f, s:f}, s:[]}", "url", r->url,
        "uptime_seconds", r->uptime, "api_requests", sc->api_requests, "overhead_seconds",
        r->overhead, "probe", "module", r->probe_module, "operation", r->probe_op, "calls",
        r->samples, "round_trip_mean_seconds", r->rtt_mean, "round_trip_median_seconds", r->rtt,
        "round_trip_p90_seconds", r->rtt_p90, "local_mean_seconds", r->local, "modules");
    json_t *list = json_object_get(out, "modules");
    int rc = EXIT_FAILURE;

    for (int i = 0; list != NULL && i < n; i++) {
        const advise_module *m = &mods[i];
        double crossing = m->calls_in + m->calls_out;
        json_t *calls = json_array();
        json_t *o = json_pack("{s:s, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "module", m->name,
                              "already_remote", m->remote, "calls_in", m->calls_in, "calls_out",
                              m->calls_out, "crossing_calls", crossing, "crossing_calls_per_second",
                              per(crossing, r->uptime), "crossing_calls_per_request",
                              per(crossing, sc->api_requests), "added_seconds_per_request",
                              per(crossing, sc->api_requests) * r->overhead, "added_seconds_total",
                              crossing * r->overhead);

        for (size_t k = 0; calls != NULL && k < sc->ncalls; k++) {
            const advise_call *c = &sc->calls[k];

            if (crosses(c, m->name) && c->calls > 0) {
                json_array_append_new(calls, json_pack("{s:s, s:s, s:s, s:f}", "caller", c->caller,
                                                       "callee", c->callee, "operation",
                                                       c->operation, "calls", c->calls));
            }
        }
        if (o == NULL || calls == NULL) {
            json_decref(o);
            json_decref(calls);
            goto out;
        }
        json_object_set_new(o, "calls", calls);
        json_array_append_new(list, o);
    }
    if (list != NULL && json_dumpf(out, stdout, JSON_INDENT(2)) == 0) {
        putchar('\n');
        rc = EXIT_SUCCESS;
    }
out:
    json_decref(out);
    return rc;
}

/* The deployment's module named name, or NULL. */
static const char *deployment_module(const char *name)
{
    for (int i = 0; host_deployment[i] != NULL; i++) {
        if (strcmp(host_deployment[i]->name, name) == 0) {
            return host_deployment[i]->name;
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "cleave: advise: usage: advise [--url http://HOST:PORT] [--module NAME]... "
                    "[--samples N] [--json]\n");
}

/* Adds name to mods[*n] once; EXIT_SUCCESS, or EXIT_USAGE after saying which is unknown. */
static int add_module(advise_module *mods, int *n, const char *name)
{
    const char *known = deployment_module(name);

    if (known == NULL) {
        fprintf(stderr, "cleave: advise: --module: unknown module '%s'; the modules are:", name);
        for (int i = 0; host_deployment[i] != NULL; i++) {
            fprintf(stderr, " %s", host_deployment[i]->name);
        }
        fputc('\n', stderr);
        return EXIT_USAGE;
    }
    for (int i = 0; i < *n; i++) {
        if (mods[i].name == known) {
            return EXIT_SUCCESS;
        }
    }
    if (*n == ADVISE_MAX_MODULES) {
        fprintf(stderr, "cleave: advise: --module: more than %d modules\n", ADVISE_MAX_MODULES);
        return EXIT_USAGE;
    }
    mods[(*n)++] = (advise_module){.name = known};
    return EXIT_SUCCESS;
}

static int parse_args(int argc, char **argv, advise_run *r, bool *json, advise_module *mods, int *n)
{
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int rc = EXIT_SUCCESS;

        if (strcmp(argv[i], "--json") == 0) {
            *json = true;
            continue;
        }
        if (v == NULL) {
            usage();
            return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--url") == 0) {
            r->url = v;
            if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
                fprintf(stderr, "cleave: advise: --url: '%s' is not an http(s):// URL\n", v);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--module") == 0) {
            rc = add_module(mods, n, v);
        } else if (strcmp(argv[i], "--samples") == 0) {
            long s = strtol(v, &end, 10);

            if (*end != '\0' || s < 1 || s > ADVISE_MAX_PROBE) {
                fprintf(stderr, "cleave: advise: --samples: '%s' is not a number from 1 to %d\n", v,
                        ADVISE_MAX_PROBE);
                return EXIT_USAGE;
            }
            r->samples = (int)s;
        } else {
            usage();
            return EXIT_USAGE;
        }
        if (rc != EXIT_SUCCESS) {
            return rc;
        }
        i++;
    }
    return EXIT_SUCCESS;
}

/* GET base/metrics with c and reads it into *sc; 0, or -1 after printing why. */
static int read_metrics(CURL *c, const char *base, advise_scrape *sc)
{
    char url[1100];
    advise_body b = {0};
    int rc;

    snprintf(url, sizeof(url), "%s/metrics", base);
    rc = get(c, url, &b) == 0 && parse_scrape(b.data, base, sc) == 0 ? 0 : -1;
    free(b.data);
    return rc;
}

/*
 * Times the remote binding on the process at base (probe), and takes off the operation's
 * own time there, read from the process's metrics before and after (into after).
 */
static int measure_overhead(CURL *c, const char *base, const cl_op *op, const advise_scrape *sc,
                            advise_scrape *after, advise_run *r)
{
    double calls;

    if (probe(base, op, r) != 0 || read_metrics(c, base, after) != 0) {
        return -1;
    }
    calls = after->probe_calls - sc->probe_calls;
    r->local = calls > 0 ? (after->probe_seconds - sc->probe_seconds) / calls : 0;
    /* Means on both sides: what the calls add in total is what a prediction multiplies. */
    r->overhead = r->rtt_mean > r->local ? r->rtt_mean - r->local : 0;
    return 0;
}

int cleave_advise(int argc, char **argv)
{
    advise_run r = {.url = ADVISE_DEFAULT_URL, .samples = ADVISE_DEFAULT_PROBE};
    advise_module mods[ADVISE_MAX_MODULES];
    advise_scrape *sc = calloc(2, sizeof(*sc));
    const cl_op *op = find_probe(&r.probe_module);
    char base[1024];
    bool json = false;
    bool all;
    int n = 0;
    int rc = EXIT_FAILURE;
    CURL *c = NULL;

    if (sc == NULL) {
        fprintf(stderr, "cleave: advise: out of memory\n");
        return EXIT_FAILURE;
    }
    rc = parse_args(argc, argv, &r, &json, mods, &n);
    if (rc != EXIT_SUCCESS) {
        goto out;
    }
    rc = EXIT_FAILURE;
    if (op == NULL) {
        fprintf(stderr, "cleave: advise: no module has a public read operation without a "
                        "request to time the remote binding with\n");
        goto out;
    }
    if (strlen(r.url) >= sizeof(base)) {
        fprintf(stderr, "cleave: advise: --url: longer than %zu characters\n", sizeof(base) - 1);
        goto out;
    }
    /* base without a trailing slash, so that base + "/metrics" is one path. */
    snprintf(base, sizeof(base), "%s", r.url);
    while (strlen(base) > 0 && base[strlen(base) - 1] == '/') {
        base[strlen(base) - 1] = '\0';
    }
    r.url = base;
    r.probe_op = op->name;
    for (int i = 0; i < 2; i++) {
        sc[i].probe_module = r.probe_module;
        sc[i].probe_op = r.probe_op;
    }
    /* No --module: every module of the deployment. */
    all = n == 0;
    for (int i = 0; all && host_deployment[i] != NULL && n < ADVISE_MAX_MODULES; i++) {
        mods[n++] = (advise_module){.name = host_deployment[i]->name};
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = new_handle();
    if (c == NULL) {
        fprintf(stderr, "cleave: advise: out of memory\n");
        goto out;
    }
    /* The prediction's scrape first, so that the probe's calls are not among its counts. */
    if (read_metrics(c, base, &sc[0]) != 0 ||
        measure_overhead(c, base, op, &sc[0], &sc[1], &r) != 0) {
        goto out;
    }
    if (sc[0].start_seconds > 0) {
        r.uptime = (double)time(NULL) - sc[0].start_seconds;
    }
    for (int i = 0; i < n; i++) {
        predict(&sc[0], &mods[i]);
    }
    if (json) {
        rc = print_json(&r, &sc[0], mods, n);
    } else {
        print_table(&r, &sc[0], mods, n);
        rc = EXIT_SUCCESS;
    }
out:
    curl_easy_cleanup(c);
    free(sc);
    return rc;
}
