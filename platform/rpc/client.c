/*
 * The remote binding's transport: connections that libcurl opened (name lookup, connect,
 * TLS) kept in a small pool per target, so calls reuse them; each call frames its HTTP/1.1
 * exchange itself (wire.h, ADR 0048); the call context travels as headers; every
 * answer maps back to the status, message and field the module returned. Each target
 * has a circuit breaker and a retry budget (ADR 0023).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleave/rpc.h"
#include "cleave/log.h"
#include "cleave/trace.h"
#include "cleave/util.h"
#include "stale.h"
#include "wire.h"

#define RPC_MAX_IDLE          64
/*
 * Idle connections kept per target by default. Each kept-alive connection holds one worker
 * of the service while it waits for its next request (civetweb; up to the keep-alive time,
 * 500 ms), and a process serves with 64 workers unless told otherwise
 * (CLEAVE_HTTP_THREADS): 16 lets a burst of up to 16 calls find its connections kept from
 * the last one while holding at most a quarter of a default service's workers. 8 closed
 * the surplus after every burst wider than that, and opened it again on the next (ADR
 * 0045).
 */
#define RPC_DEFAULT_IDLE      16
/* Tokens a target's retry budget saves at most: the retries a quiet spell can bank. */
#define RPC_BUDGET_MAX_TOKENS 10

/* A test build's injected fault (cl_rpc_options.fault). */
typedef enum rpc_fault {
    RPC_FAULT_NONE,
    RPC_FAULT_UNAVAILABLE,
    RPC_FAULT_FAIL,
    RPC_FAULT_DELAY
} rpc_fault;

struct cl_rpc_client {
    char module[64];
    char base_url[256];
    /* base_url's parts: where curl connects, the Host header, the path prefix of every call. */
    char origin[256];
    char host[256];
    const char *path_prefix; /* into base_url: "" or "/prefix" */
    bool tls;
    char dev_token[256];
    cl_status (*credential)(void *arg, const char *module, char *token, size_t size, cl_error *err);
    void *credential_arg;
    /* Mutual TLS (cl_rpc_options): PEM paths, "" when unset. */
    char tls_cert[512];
    char tls_key[512];
    char tls_ca[512];
    int64_t default_timeout_ms;
    int64_t call_timeout_ms; /* cl_rpc_options.default_timeout_ms as given: 0 when unset */
    int64_t connect_timeout_ms;
    int max_idle;
    int max_attempts;
    int64_t backoff_ms;
    int64_t backoff_max_ms;
    rpc_fault fault;
    int64_t fault_arg;
    pthread_mutex_t mu; /* guards the pool, the breaker, the budget and the counters */
    CURL *idle[RPC_MAX_IDLE];
    int nidle;
    cl_breaker breaker;
    cl_retry_budget budget;
    int64_t calls;
    int64_t attempts;
    int64_t faults_injected;
    cl__stale_cache *stale; /* last good answers of CL_OP_STALE_OK operations, or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int valid_base_url(const char *url)
{
    const char *host;

    if (strncmp(url, "http://", 7) == 0) {
        host = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;
    } else {
        return 0;
    }
    if (*host == '\0' || *host == '/' || *host == ':') {
        return 0;
    }
    for (const char *p = host; *p != '\0'; p++) {
        if (*p == '?' || *p == '#' || *p == ' ') {
            return 0;
        }
    }
    return 1;
}

/*
 * Finds module's entry in a fault list "<module>=<fault>,...": its kind and argument.
 * CL_INVALID naming the entry when it cannot be read; no entry for module is no fault.
 */
static cl_status parse_fault(const char *module, const char *list, rpc_fault *kind, int64_t *arg,
                             cl_error *err)
{
    size_t mlen = strlen(module);
    const char *p = list;

    *kind = RPC_FAULT_NONE;
    *arg = 0;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char entry[96];
        char *num = NULL;
        const char *f;

        if (len < mlen + 1 || strncmp(p, module, mlen) != 0 || p[mlen] != '=') {
            p = end != NULL ? end + 1 : NULL;
            continue;
        }
        if (len >= sizeof(entry)) {
            goto bad;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        f = entry + mlen + 1;
        if (strcmp(f, "unavailable") == 0) {
            *kind = RPC_FAULT_UNAVAILABLE;
            return CL_OK;
        }
        if (strncmp(f, "fail:", 5) == 0 || strncmp(f, "delay:", 6) == 0) {
            const char *digits = strchr(f, ':') + 1;

            errno = 0;
            *arg = strtoll(digits, &num, 10);
            if (errno != 0 || num == digits || *num != '\0' || *arg < 0 || *arg > 600000) {
                goto bad;
            }
            *kind = f[0] == 'f' ? RPC_FAULT_FAIL : RPC_FAULT_DELAY;
            return CL_OK;
        }
    bad:
        return cl_error_set(err, CL_INVALID, "fault",
                            "fault '%.*s' for %s is not unavailable, fail:N or delay:MS",
                            (int)(len < 80 ? len : 80), p, module);
    }
    return CL_OK;
}

/*
 * Checks the TLS files of opt, as given (all may be NULL): a certificate and its key come
 * together, and every file set can be read. CL_INVALID naming the setting otherwise.
 */
static cl_status check_tls(const cl_rpc_options *opt, cl_error *err)
{
    const struct {
        const char *setting;
        const char *path;
    } files[] = {
        {"CLEAVE_TLS_CLIENT_CERT", opt->tls_cert},
        {"CLEAVE_TLS_CLIENT_KEY", opt->tls_key},
        {"CLEAVE_TLS_CA", opt->tls_ca},
    };
    bool has_cert = opt->tls_cert != NULL && opt->tls_cert[0] != '\0';
    bool has_key = opt->tls_key != NULL && opt->tls_key[0] != '\0';

    if (has_cert != has_key) {
        return cl_error_set(err, CL_INVALID,
                            has_cert ? "CLEAVE_TLS_CLIENT_KEY" : "CLEAVE_TLS_CLIENT_CERT",
                            "TLS is half configured: %s is set but %s is not",
                            has_cert ? "CLEAVE_TLS_CLIENT_CERT" : "CLEAVE_TLS_CLIENT_KEY",
                            has_cert ? "CLEAVE_TLS_CLIENT_KEY" : "CLEAVE_TLS_CLIENT_CERT");
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *path = files[i].path;

        if (path == NULL || path[0] == '\0') {
            continue;
        }
        if (strlen(path) >= sizeof(((cl_rpc_client *)NULL)->tls_cert)) {
            return cl_error_set(err, CL_INVALID, files[i].setting, "%s is too long",
                                files[i].setting);
        }
        if (access(path, R_OK) != 0) {
            return cl_error_set(err, CL_INVALID, files[i].setting, "%s: cannot read '%s': %s",
                                files[i].setting, path, strerror(errno));
        }
    }
    return CL_OK;
}

/*
 * Sets the TLS options of a request to c's target, on a handle that curl_easy_reset may
 * have cleared. The same options on every request, so that curl reuses the connection.
 */
static void set_tls(const cl_rpc_client *c, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->tls_cert[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls_key);
    }
    if (c->tls_ca[0] != '\0') {
        /* This CA only: the system's directory of CAs vouches for the whole web. */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->tls_ca);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    }
}

/*
 * Splits c's base URL (valid_base_url) into where to connect (scheme and authority), the
 * Host header (the authority without user information) and the path prefix of calls.
 */
static void split_base_url(cl_rpc_client *c)
{
    const char *authority = strstr(c->base_url, "://") + 3;
    const char *slash = strchr(authority, '/');
    size_t alen = slash != NULL ? (size_t)(slash - authority) : strlen(authority);
    const char *at = memchr(authority, '@', alen);
    const char *host = at != NULL ? at + 1 : authority;

    c->tls = strncmp(c->base_url, "https://", 8) == 0;
    c->path_prefix = slash != NULL ? slash : "";
    snprintf(c->origin, sizeof(c->origin), "%.*s/", (int)(authority + alen - c->base_url),
             c->base_url);
    snprintf(c->host, sizeof(c->host), "%.*s", (int)(authority + alen - host), host);
}

cl_status cl_rpc_client_new(const char *module, const char *base_url, const cl_rpc_options *opt,
                            cl_rpc_client **out, cl_error *err)
{
    static const cl_rpc_options none = {0};
    cl_rpc_client *c;
    cl_breaker_options bo;
    rpc_fault fault = RPC_FAULT_NONE;
    int64_t fault_arg = 0;
    int pct;
    size_t n;

    if (base_url == NULL || !valid_base_url(base_url) || strlen(base_url) >= sizeof(c->base_url)) {
        return cl_error_set(err, CL_INVALID, "url",
                            "%s service URL '%s' is not http(s)://host[:port]", module,
                            base_url != NULL ? base_url : "");
    }
    if (opt == NULL) {
        opt = &none;
    }
    if (opt->fault != NULL && parse_fault(module, opt->fault, &fault, &fault_arg, err) != CL_OK) {
        return CL_INVALID;
    }
    if (check_tls(opt, err) != CL_OK) {
        return CL_INVALID;
    }
    pthread_once(&curl_once, curl_init_once);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    cl_strlcpy(c->module, module, sizeof(c->module));
    cl_strlcpy(c->base_url, base_url, sizeof(c->base_url));
    n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/') {
        c->base_url[--n] = '\0';
    }
    split_base_url(c);
    c->max_idle = opt->max_idle > 0 ? opt->max_idle : RPC_DEFAULT_IDLE;
    if (c->max_idle > RPC_MAX_IDLE) {
        c->max_idle = RPC_MAX_IDLE;
    }
    c->default_timeout_ms = opt->default_timeout_ms > 0 ? opt->default_timeout_ms : 10000;
    c->call_timeout_ms = opt->default_timeout_ms > 0 ? opt->default_timeout_ms : 0;
    c->connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 1000;
    if (opt->dev_token != NULL) {
        cl_strlcpy(c->dev_token, opt->dev_token, sizeof(c->dev_token));
    }
    c->credential = opt->credential;
    c->credential_arg = opt->credential_arg;
    cl_strlcpy(c->tls_cert, opt->tls_cert != NULL ? opt->tls_cert : "", sizeof(c->tls_cert));
    cl_strlcpy(c->tls_key, opt->tls_key != NULL ? opt->tls_key : "", sizeof(c->tls_key));
    cl_strlcpy(c->tls_ca, opt->tls_ca != NULL ? opt->tls_ca : "", sizeof(c->tls_ca));
    bo.failure_pct = opt->breaker.failure_pct > 0 ? opt->breaker.failure_pct : 50;
    bo.min_calls = opt->breaker.min_calls > 0 ? opt->breaker.min_calls : 20;
    bo.window_ms = opt->breaker.window_ms > 0 ? opt->breaker.window_ms : 10000;
    bo.open_ms = opt->breaker.open_ms > 0 ? opt->breaker.open_ms : 5000;
    bo.half_open_probes = opt->breaker.half_open_probes > 0 ? opt->breaker.half_open_probes : 1;
    cl_breaker_init(&c->breaker, &bo);
    pct = opt->retry_budget_pct == 0 ? 10 : opt->retry_budget_pct < 0 ? 0 : opt->retry_budget_pct;
    cl_retry_budget_init(&c->budget, pct, RPC_BUDGET_MAX_TOKENS);
    c->max_attempts = opt->retry_max_attempts > 0 ? opt->retry_max_attempts : 3;
    c->backoff_ms = opt->retry_backoff_ms > 0 ? opt->retry_backoff_ms : 25;
    c->backoff_max_ms = opt->retry_backoff_max_ms > 0 ? opt->retry_backoff_max_ms : 1000;
    c->fault = fault;
    c->fault_arg = fault_arg;
    c->stale = cl__stale_new(&(cl__stale_options){
        .max_entries = opt->stale_max_entries == 0 ? 1000 : opt->stale_max_entries,
        .max_bytes = opt->stale_max_bytes > 0 ? (size_t)opt->stale_max_bytes : 4194304,
        .max_age_ms = opt->stale_max_age_ms > 0 ? opt->stale_max_age_ms : 300000});
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return CL_OK;
}

void cl_rpc_client_free(cl_rpc_client *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->nidle; i++) {
        curl_easy_cleanup(c->idle[i]);
    }
    pthread_mutex_destroy(&c->mu);
    cl__stale_free(c->stale);
    free(c);
}

const char *cl_rpc_client_url(const cl_rpc_client *c)
{
    return c->base_url;
}

/*
 * Opens a connection to c's target on a new handle (*out), within timeout_ms: curl looks
 * the name up, connects and, for https, does the TLS handshake, then leaves the
 * connection to us (CURLOPT_CONNECT_ONLY).
 */
static CURLcode open_conn(cl_rpc_client *c, int64_t timeout_ms, CURL **out)
{
    CURL *h = curl_easy_init();
    CURLcode rc;

    *out = NULL;
    if (h == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->origin);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    /*
     * A timeout ends the name lookup too: without QUICK_EXIT curl waits for its resolver
     * thread, which a DNS server that does not answer holds for many seconds whatever the
     * timeout (the thread is left to finish on its own). Worker threads get no SIGALRM.
     */
    curl_easy_setopt(h, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /*
     * Straight to the target: the requests framed here are for it (origin-form), and a
     * proxy named by the environment would receive them as its own.
     */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->connect_timeout_ms < timeout_ms ? c->connect_timeout_ms
                            : timeout_ms > 0                   ? timeout_ms
                                                               : 1));
    set_tls(c, h);
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        curl_easy_cleanup(h);
        return rc;
    }
    *out = h;
    return CURLE_OK;
}

/*
 * A connection for one exchange (*out): the most recently used idle one that is still
 * open (*fresh false), else a new one. Idle connections the service closed meanwhile
 * (its keep-alive ran out) are dropped on the way.
 */
static CURLcode take_conn(cl_rpc_client *c, int64_t timeout_ms, CURL **out, bool *fresh)
{
    for (;;) {
        CURL *h = NULL;

        pthread_mutex_lock(&c->mu);
        if (c->nidle > 0) {
            h = c->idle[--c->nidle];
        }
        pthread_mutex_unlock(&c->mu);
        if (h == NULL) {
            *fresh = true;
            return open_conn(c, timeout_ms, out);
        }
        if (cl__rpc_conn_idle_ok(h)) {
            *fresh = false;
            *out = h;
            return CURLE_OK;
        }
        curl_easy_cleanup(h);
    }
}

/* Returns a connection to the pool; one that cannot carry another request is closed. */
static void give_conn(cl_rpc_client *c, CURL *h, bool reusable)
{
    if (h == NULL) {
        return;
    }
    if (reusable) {
        pthread_mutex_lock(&c->mu);
        if (c->nidle < c->max_idle) {
            c->idle[c->nidle++] = h;
            h = NULL;
        }
        pthread_mutex_unlock(&c->mu);
    }
    curl_easy_cleanup(h);
}

/*
 * One request (req[len], a whole HTTP/1.1 message) and its answer (*a, whose buf the caller
 * frees), within timeout_ms. *spent_ms: how long it took. A kept connection that breaks
 * before any byte of the answer came is one the service closed as the request went out
 * (its keep-alive ran out): the request goes once more, on a new connection, as curl does.
 */
static CURLcode exchange(cl_rpc_client *c, const char *req, size_t len, int64_t timeout_ms,
                         cl__rpc_answer *a, int64_t *spent_ms)
{
    int64_t start = cl__rpc_now_ns();
    int64_t deadline = start + timeout_ms * 1000000;
    CURLcode rc;

    memset(a, 0, sizeof(*a));
    for (;;) {
        CURL *h = NULL;
        bool fresh = true;

        rc = take_conn(c, (deadline - cl__rpc_now_ns()) / 1000000, &h, &fresh);
        if (rc != CURLE_OK) {
            break;
        }
        rc = cl__rpc_exchange(h, c->tls, req, len, deadline, a);
        give_conn(c, h, rc == CURLE_OK && a->keep);
        if (rc == CURLE_OK || fresh || a->received ||
            (rc != CURLE_SEND_ERROR && rc != CURLE_RECV_ERROR && rc != CURLE_GOT_NOTHING)) {
            break;
        }
        free(a->buf);
        memset(a, 0, sizeof(*a));
    }
    *spent_ms = (cl__rpc_now_ns() - start) / 1000000;
    return rc;
}

/* A request being framed; failed once a header could not be added or memory ran out. */
typedef struct req_buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} req_buf;

static void put(req_buf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 1024;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(req_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The longest header line sent: a bearer token of the longest user token fits. */
#define RPC_HEADER_LINE_MAX (CL_CTX_USER_TOKEN_MAX + 64)

/*
 * Appends "name: <prefix><value>" (nothing for an empty value). A line longer than
 * RPC_HEADER_LINE_MAX, or a value that is not one line, is left out and named in *cut: a
 * key or principal cut short would mean another key, and a line break would start a
 * header of the value's choosing, so the call must fail rather than send it.
 */
static void add_header_checked(req_buf *b, const char *name, const char *prefix, const char *value,
                               const char **cut)
{
    if (value == NULL || value[0] == '\0') {
        return;
    }
    if (strlen(name) + 2 + strlen(prefix) + strlen(value) >= RPC_HEADER_LINE_MAX ||
        strpbrk(value, "\r\n") != NULL) {
        *cut = name;
        return;
    }
    puts_(b, name);
    put(b, ": ", 2);
    puts_(b, prefix);
    puts_(b, value);
    put(b, "\r\n", 2);
}

static void add_header(req_buf *b, const char *name, const char *value)
{
    const char *cut = NULL;

    add_header_checked(b, name, "", value, &cut);
}

/*
 * The request line and the headers every request to c carries, for method on path (after
 * the target's path prefix, with its query).
 */
static void start_request(const cl_rpc_client *c, req_buf *b, const char *method, const char *path)
{
    puts_(b, method);
    put(b, " ", 1);
    puts_(b, c->path_prefix);
    puts_(b, path);
    put(b, " HTTP/1.1\r\n", 11);
    add_header(b, "Host", c->host);
    add_header(b, "Accept", "application/json");
}

/*
 * The call context's headers. bearer is the service token for this call (the credential's
 * JWT, the development token, or NULL for a public operation). The principal travels
 * signed, as the user's own token; only to a development-mode service does it travel as
 * the bare principal headers that such a service trusts. No "Expect": the body goes with
 * the head, without waiting for a 100 Continue.
 */
static void ctx_headers(req_buf *b, const cl_ctx *ctx, int64_t left, const char *bearer, bool dev,
                        const char **cut)
{
    char buf[CL_TRACEPARENT_SIZE + 32];

    add_header(b, "Content-Type", "application/json");
    add_header_checked(b, "X-Request-Id", "", ctx->request_id, cut);
    if (dev) {
        add_header_checked(b, "X-Cleave-Principal", "", ctx->principal, cut);
        if (ctx->own_only) {
            add_header(b, "X-Cleave-Own-Only", "1");
        }
    } else {
        add_header_checked(b, "X-Cleave-User-Token", "", ctx->user_token, cut);
    }
    add_header_checked(b, "Idempotency-Key", "", ctx->idempotency_key, cut);
    /* Read-your-writes survives extraction: the service routes the reads the same way. */
    if (ctx->read_primary) {
        add_header(b, "X-Cleave-Read-Primary", "1");
    }
    if (cl_trace_format(ctx, buf) == CL_OK) {
        add_header(b, "traceparent", buf);
        add_header_checked(b, "tracestate", "", ctx->tracestate, cut);
    }
    if (ctx->deadline_ms != 0) {
        snprintf(buf, sizeof(buf), "%" PRId64, left);
        add_header(b, "X-Cleave-Deadline-Ms", buf);
    }
    /* A callee may do the work on the thread that answers the call (cleave/status.h). */
    if (ctx->wait_ms > 0) {
        snprintf(buf, sizeof(buf), "%" PRId64, ctx->wait_ms);
        add_header(b, "X-Cleave-Wait-Ms", buf);
    }
    if (bearer != NULL && bearer[0] != '\0') {
        add_header_checked(b, "Authorization", "Bearer ", bearer, cut);
    }
}

/*
 * The service token of a call of op into bearer[size] (empty for a public operation), and
 * whether it is the development mode's. A call restricted to its user's objects that
 * carries no user token is refused: sent without it, the callee would see the service
 * alone, which may reach everyone's objects.
 */
static cl_status call_bearer(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, char *bearer,
                             size_t size, bool *dev)
{
    cl_error err;

    bearer[0] = '\0';
    *dev = c->credential == NULL;
    if ((op->flags & CL_OP_PUBLIC) != 0) {
        return CL_OK;
    }
    if (c->credential == NULL) {
        cl_strlcpy(bearer, c->dev_token, size);
        return CL_OK;
    }
    if (ctx->own_only && ctx->user_token[0] == '\0') {
        return cl_fail(ctx, CL_INTERNAL, NULL,
                       "%s.%s: a call restricted to its principal's objects carries no user "
                       "token to prove it",
                       c->module, op->name);
    }
    if (c->credential(c->credential_arg, c->module, bearer, size, &err) != CL_OK) {
        return cl_fail(ctx, err.status, NULL, "no service token to call %s: %s", c->module,
                       err.message);
    }
    return CL_OK;
}

/* A status for an HTTP error without our own status name (a proxy, an older service). */
static cl_status status_of_http(long http)
{
    for (int st = 0; st < CL_STATUS_COUNT; st++) {
        if (st != CL_OK && cl_status_http((cl_status)st) == http) {
            return (cl_status)st;
        }
    }
    if (http == 413 || http == 415 || http == 422) {
        return CL_INVALID;
    }
    if (http == 502) {
        return CL_UNAVAILABLE;
    }
    return CL_INTERNAL;
}

/* Maps a problem+json answer back to exactly what the module reported. */
static cl_status map_failure(cl_rpc_client *c, const cl__rpc_answer *a, cl_ctx *ctx)
{
    long http = a->http;
    json_t *j = a->len > 0 ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(j, "cleave_status"));
    const char *detail = json_string_value(json_object_get(j, "detail"));
    const char *field = json_string_value(json_object_get(j, "cleave_field"));
    cl_status st;

    if (name == NULL || cl_status_parse(name, &st) != CL_OK || st == CL_OK) {
        st = status_of_http(http);
    }
    if (detail == NULL) {
        cl_fail(ctx, st, field, "%s service answered HTTP %ld", c->module, http);
    } else {
        cl_fail(ctx, st, field, "%s", detail);
    }
    json_decref(j);
    return st;
}

/* Sleeps ms milliseconds (signals do not cut it short). */
static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * A test build's injected fault, before an attempt: CL_OK to go on (after the delay of
 * "delay:MS"), or the status of an unreachable target for "unavailable" and the first
 * N attempts of "fail:N".
 */
static cl_status inject_fault(cl_rpc_client *c, cl_ctx *ctx)
{
    int fail = 0;

    if (c->fault == RPC_FAULT_NONE) {
        return CL_OK;
    }
    if (c->fault == RPC_FAULT_DELAY) {
        int64_t left = cl_ctx_remaining_ms(ctx);

        sleep_ms(ctx->deadline_ms != 0 && left < c->fault_arg ? left : c->fault_arg);
        return CL_OK;
    }
    pthread_mutex_lock(&c->mu);
    if (c->fault == RPC_FAULT_UNAVAILABLE || c->faults_injected < c->fault_arg) {
        c->faults_injected++;
        fail = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (!fail) {
        return CL_OK;
    }
    return cl_fail(ctx, CL_UNAVAILABLE, NULL, "%s service at %s is unreachable: injected fault",
                   c->module, c->base_url);
}

/* One request to the service: the body is already encoded, the bearer chosen (call_bearer). */
static cl_status attempt(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const char *body,
                         const char *bearer, bool dev, void *resp)
{
    char path[256];
    req_buf rb = {0};
    cl__rpc_answer a = {0};
    CURLcode rc;
    int64_t left = cl_ctx_remaining_ms(ctx);
    /*
     * The module's own timeout (CLEAVE_<MODULE>_TIMEOUT_MS) bounds every call, the caller's
     * deadline too when it is nearer; without either, 10 s. The service is told the nearer.
     */
    int64_t timeout = ctx->deadline_ms == 0                                 ? c->default_timeout_ms
                      : c->call_timeout_ms > 0 && c->call_timeout_ms < left ? c->call_timeout_ms
                                                                            : left;
    int64_t spent_ms = 0;
    size_t body_len = strlen(body);
    char length[32];
    const char *cut = NULL;
    cl_status st;

    st = inject_fault(c, ctx);
    if (st != CL_OK) {
        return st;
    }
    snprintf(path, sizeof(path), CL_RPC_PREFIX "%s/%s", c->module, op->name);
    snprintf(length, sizeof(length), "%zu", body_len);
    start_request(c, &rb, "POST", path);
    ctx_headers(&rb, ctx, timeout, bearer, dev, &cut);
    add_header(&rb, "Content-Length", length);
    put(&rb, "\r\n", 2);
    put(&rb, body, body_len);
    if (cut != NULL) {
        st = cl_fail(ctx, CL_INVALID, cut, "%s is too long or not one line: not sent to %s", cut,
                     c->module);
        goto out;
    }
    if (rb.oom) {
        st = cl_fail(ctx, CL_INTERNAL, NULL, "out of memory calling %s.%s", c->module, op->name);
        goto out;
    }
    rc = exchange(c, rb.p, rb.len, timeout, &a, &spent_ms);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        /*
         * The whole exchange ran for the deadline's time (rather than the connect
         * timeout): the deadline ran out, even when the clock read a millisecond short.
         */
        st = ctx->deadline_ms != 0 && (cl_ctx_remaining_ms(ctx) == 0 || spent_ms >= timeout - 1)
                 ? cl_fail(ctx, CL_DEADLINE_EXCEEDED, NULL,
                           "%s.%s did not answer before the deadline", c->module, op->name)
                 : cl_fail(ctx, CL_UNAVAILABLE, NULL, "%s service at %s timed out", c->module,
                           c->base_url);
        goto out;
    }
    if (rc != CURLE_OK) {
        st = cl_fail(ctx, a.too_big ? CL_INTERNAL : CL_UNAVAILABLE, NULL,
                     "%s service at %s is unreachable: %s", c->module, c->base_url,
                     a.too_big ? "response too large" : curl_easy_strerror(rc));
        goto out;
    }
    if (a.http != 200) {
        st = map_failure(c, &a, ctx);
        goto out;
    }
    {
        bool not_json = false;

        /* Decoded straight from the text, with no tree (ADR 0054). */
        st =
            cl_schema_parse(op->resp, a.body, a.len, CL_DECODE_LENIENT, resp, &not_json, &ctx->err);
        if (not_json) {
            /* ctx->err.message is "not JSON: <why>". */
            st = cl_fail(ctx, CL_INTERNAL, NULL, "%s.%s answered malformed JSON: %s", c->module,
                         op->name, ctx->err.message + strlen("not JSON: "));
        } else if (st != CL_OK) {
            /* The service broke the contract: that is not the caller's invalid input. */
            st = cl_fail(ctx, CL_INTERNAL, NULL, "%s.%s answered an unreadable %s: %s", c->module,
                         op->name, op->resp->name, ctx->err.message);
        } else if ((op->flags & CL_OP_STALE_OK) != 0) {
            /*
             * The stale fallback keeps the answer as it came (it just decoded): encoding
             * the decoded answer again would cost a second JSON encode on every call.
             */
            cl__stale_put(c->stale, op->name, body, a.body, cl_now_ms());
        }
    }
out:
    free(rb.p);
    free(a.buf);
    return st;
}

/* The target failed (rather than refused the call): what the breaker counts. */
static bool target_failed(cl_status st)
{
    return st == CL_UNAVAILABLE || st == CL_DEADLINE_EXCEEDED;
}

/*
 * May the call be tried again after failing with st, waiting *wait_ms first? Only
 * operations declared safe to repeat, only when the target was unavailable (a deadline
 * that ran out leaves no time), within the attempts, the deadline and the budget.
 */
static bool may_retry(cl_rpc_client *c, const cl_op *op, const cl_ctx *ctx, cl_status st, int n,
                      int64_t *wait_ms)
{
    bool ok;

    if (st != CL_UNAVAILABLE || (op->flags & (CL_OP_READ | CL_OP_IDEMPOTENT)) == 0 ||
        n >= c->max_attempts) {
        return false;
    }
    *wait_ms = cl_retry_backoff_ms(c->backoff_ms, c->backoff_max_ms, n);
    /* A retry that could not finish before the deadline is load for nothing. */
    if (ctx->deadline_ms != 0 && cl_ctx_remaining_ms(ctx) <= *wait_ms) {
        return false;
    }
    pthread_mutex_lock(&c->mu);
    ok = cl_retry_budget_take(&c->budget);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/*
 * The stale fallback (ADR 0033), for operations declared CL_OP_STALE_OK only: a good
 * answer is remembered for its request (by attempt, as received); a call that failed because the
 * target did (down, hung, circuit open) gets the last good answer when one is young enough, and ctx
 * says that it is stale and how old. Any other failure stands. Returns the call's status.
 */
static cl_status stale_fallback(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const char *body,
                                void *resp, cl_status st)
{
    char *text = NULL;
    int64_t age = 0;
    cl_error err = {0};

    if ((op->flags & CL_OP_STALE_OK) == 0 || body == NULL || c->stale == NULL) {
        return st;
    }
    /* A good answer was kept where it arrived (attempt). */
    if (st == CL_OK || !target_failed(st) ||
        !cl__stale_get(c->stale, op->name, body, cl_now_ms(), &text, &age)) {
        goto out;
    }
    if (cl_schema_parse(op->resp, text, strlen(text), CL_DECODE_LENIENT, resp, NULL, &err) !=
        CL_OK) {
        goto out;
    }
    cl_log_with(CL_LOG_WARN, "rpc",
                json_pack("{s:s,s:s,s:I,s:s}", "module", c->module, "op", op->name, "age_ms",
                          (json_int_t)age, "cause", ctx->err.message),
                "%s.%s answered from its last good answer, %lld ms old: %s", c->module, op->name,
                (long long)age, ctx->err.message);
    ctx->stale = 1;
    ctx->stale_age_ms = age > ctx->stale_age_ms ? age : ctx->stale_age_ms;
    st = CL_OK;
out:
    free(text);
    return st;
}

static cl_status rpc_call(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const void *req,
                          void *resp);

/* The remote binding's client span wraps the call, retries included (cleave/trace.h). */
cl_status cl_rpc_call(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const void *req, void *resp)
{
    char name[CL_SPAN_NAME_MAX];
    cl_span span;
    cl_status st;

    snprintf(name, sizeof(name), "%s.%s", c->module, op->name);
    cl_span_start(&span, ctx, CL_SPAN_CLIENT, name);
    cl_span_set_str(&span, "rpc.system", "cleave");
    cl_span_set_str(&span, "rpc.service", c->module);
    cl_span_set_str(&span, "rpc.method", op->name);
    st = cl_span_status(&span, rpc_call(c, op, ctx, req, resp));
    cl_span_end(&span);
    return st;
}

static cl_status rpc_call(cl_rpc_client *c, const cl_op *op, cl_ctx *ctx, const void *req,
                          void *resp)
{
    char *body = NULL;
    /*
     * Chosen once, before the breaker: no token is no failure of the target. On the heap:
     * calls nest (a credential may call the token issuer) on civetweb's small worker stacks.
     */
    char *bearer = NULL;
    bool dev = false;
    cl_status st;
    cl_breaker_stats bs;
    int64_t wait_ms = 0;
    bool probe = false;
    bool refused = false;

    if (cl_ctx_remaining_ms(ctx) == 0) {
        return cl_fail(ctx, CL_DEADLINE_EXCEEDED, NULL, "deadline expired before calling %s.%s",
                       c->module, op->name);
    }
    bearer = malloc(CL_CTX_USER_TOKEN_MAX + 1);
    if (bearer == NULL) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory calling %s.%s", c->module, op->name);
    }
    st = call_bearer(c, op, ctx, bearer, CL_CTX_USER_TOKEN_MAX + 1, &dev);
    if (st != CL_OK) {
        free(bearer);
        return st;
    }
    body = cl_schema_dump(op->req, req, 0);
    if (body == NULL) {
        st = cl_fail(ctx, CL_INTERNAL, NULL, "out of memory calling %s.%s", c->module, op->name);
        goto out;
    }
    for (int n = 1;; n++) {
        int64_t now = cl_now_ms();

        pthread_mutex_lock(&c->mu);
        st = cl_breaker_admit(&c->breaker, now, &probe);
        cl_breaker_stats_at(&c->breaker, now, &bs);
        if (st == CL_OK) {
            c->attempts++;
            if (n == 1) {
                c->calls++;
                cl_retry_budget_call(&c->budget);
            }
        }
        pthread_mutex_unlock(&c->mu);
        refused = st != CL_OK;
        if (st != CL_OK && bs.state == CL_CIRCUIT_HALF_OPEN) {
            st = cl_fail(ctx, CL_UNAVAILABLE, NULL,
                         "%s service at %s: circuit open, a probe call is under way", c->module,
                         c->base_url);
            goto out;
        }
        if (st != CL_OK) {
            st = cl_fail(ctx, CL_UNAVAILABLE, NULL,
                         "%s service at %s: circuit open after %" PRId64 " of %" PRId64
                         " calls failed; next try in %" PRId64 " ms",
                         c->module, c->base_url, bs.window_failures, bs.window_calls,
                         bs.retry_in_ms);
            goto out;
        }
        st = attempt(c, op, ctx, body, bearer, dev, resp);
        pthread_mutex_lock(&c->mu);
        cl_breaker_record(&c->breaker, cl_now_ms(), probe, target_failed(st));
        pthread_mutex_unlock(&c->mu);
        /* A probe that failed opened the circuit again: a retry would only be refused. */
        if (st == CL_OK || probe || !may_retry(c, op, ctx, st, n, &wait_ms)) {
            goto out;
        }
        sleep_ms(wait_ms);
    }
out:
    cl_metrics_remote_outcome(c->module, refused ? "circuit_open" : cl_status_name(st));
    st = stale_fallback(c, op, ctx, body, resp, st);
    free(bearer);
    free(body);
    return st;
}

void cl_rpc_client_circuit(cl_rpc_client *c, cl_rpc_circuit *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    cl_breaker_stats_at(&c->breaker, cl_now_ms(), &out->breaker);
    out->calls = c->calls;
    out->attempts = c->attempts;
    out->retries = c->budget.retries;
    out->retries_refused = c->budget.exhausted;
    pthread_mutex_unlock(&c->mu);
}

cl_status cl_rpc_ready(cl_rpc_client *c, int64_t timeout_ms, cl_error *err)
{
    char path[128];
    req_buf rb = {0};
    cl__rpc_answer a = {0};
    int64_t spent_ms = 0;
    CURLcode rc;
    long http;

    /* Only the module it serves: asking for the whole process would recurse between two
     * processes that each call a module of the other. */
    snprintf(path, sizeof(path), "/readyz?module=%s", c->module);
    start_request(c, &rb, "GET", path);
    put(&rb, "\r\n", 2);
    rc = rb.oom ? CURLE_OUT_OF_MEMORY : exchange(c, rb.p, rb.len, timeout_ms, &a, &spent_ms);
    http = a.http;
    free(a.buf);
    free(rb.p);
    if (rc != CURLE_OK) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL, "%s service at %s is unreachable: %s",
                            c->module, c->base_url, curl_easy_strerror(rc));
    }
    if (http == 404) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL,
                            "%s is not served at %s: that process does not run it", c->module,
                            c->base_url);
    }
    if (http != 200) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL, "%s service at %s is not ready (HTTP %ld)",
                            c->module, c->base_url, http);
    }
    return CL_OK;
}
