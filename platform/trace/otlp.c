/*
 * The OTLP/HTTP exporter (cleave/otlp.h): a thread, the tracer's queue, libcurl and a
 * protobuf encoder for the few messages of ExportTraceServiceRequest
 * (opentelemetry/proto/collector/trace/v1/trace_service.proto) that spans need.
 */
#include "cleave/otlp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cleave/log.h"
#include "cleave/util.h"
#include "trace_internal.h"

#define OTLP_URL_MAX   512
#define OTLP_NAME_MAX  128
/* One post may take this long; the queue fills (and drops) meanwhile, requests do not wait. */
#define OTLP_POST_MS   2000
/* A batch is posted when it is full or after this long. */
#define OTLP_LINGER_MS 500
/* The encoded request's cap: a full batch of the largest spans stays well below it. */
#define OTLP_BODY_MAX  (8u << 20)

/* Protobuf wire types. */
enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2 };

typedef struct pb_buf {
    unsigned char *p;
    size_t len;
    size_t cap;
    bool failed; /* out of memory or over OTLP_BODY_MAX: the whole batch is dropped */
} pb_buf;

static struct {
    pthread_t thread;
    bool running;
    char url[OTLP_URL_MAX];
    char service[OTLP_NAME_MAX];
    char version[OTLP_NAME_MAX];
    _Atomic int64_t flush_until; /* cl_now_ms() after which queued spans are dropped */
} ex;

static void pb_put(pb_buf *b, const void *data, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        unsigned char *p;

        while (cap < b->len + n) {
            cap *= 2;
        }
        p = cap <= OTLP_BODY_MAX ? realloc(b->p, cap) : NULL;
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void pb_varint(pb_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0) {
            tmp[n] |= 0x80;
        }
        n++;
    } while (v != 0);
    pb_put(b, tmp, n);
}

static void pb_tag(pb_buf *b, unsigned field, unsigned wire)
{
    pb_varint(b, ((uint64_t)field << 3) | wire);
}

static void pb_bytes(pb_buf *b, unsigned field, const void *data, size_t n)
{
    pb_tag(b, field, WIRE_LEN);
    pb_varint(b, n);
    pb_put(b, data, n);
}

static void pb_string(pb_buf *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void pb_fixed64(pb_buf *b, unsigned field, uint64_t v)
{
    unsigned char le[8];

    for (int i = 0; i < 8; i++) {
        le[i] = (unsigned char)(v >> (8 * i));
    }
    pb_tag(b, field, WIRE_I64);
    pb_put(b, le, sizeof(le));
}

/* Appends the embedded message in sub as field, and empties sub for reuse. */
static void pb_message(pb_buf *b, unsigned field, pb_buf *sub)
{
    if (sub->failed) {
        b->failed = true;
    } else {
        pb_bytes(b, field, sub->p, sub->len);
    }
    sub->len = 0;
    sub->failed = false;
}

/* A hex id as its bytes; hex is checked by the tracer. */
static void pb_hex_id(pb_buf *b, unsigned field, const char *hex)
{
    unsigned char raw[16];
    size_t n = strlen(hex) / 2;

    for (size_t i = 0; i < n && i < sizeof(raw); i++) {
        char hi = hex[2 * i];
        char lo = hex[2 * i + 1];
        raw[i] = (unsigned char)(((hi <= '9' ? hi - '0' : hi - 'a' + 10) << 4) |
                                 (lo <= '9' ? lo - '0' : lo - 'a' + 10));
    }
    pb_bytes(b, field, raw, n < sizeof(raw) ? n : sizeof(raw));
}

/* KeyValue{1: key, 2: AnyValue{1: string_value | 3: int_value}} as field. */
static void pb_attr(pb_buf *b, unsigned field, const cl_span_attr *a, pb_buf *tmp, pb_buf *val)
{
    if (a->is_int) {
        pb_tag(val, 3, WIRE_VARINT);
        pb_varint(val, (uint64_t)a->num);
    } else {
        pb_string(val, 1, a->str);
    }
    pb_string(tmp, 1, a->key);
    pb_message(tmp, 2, val);
    pb_message(b, field, tmp);
}

static void pb_span(pb_buf *b, const cl_span_data *d, pb_buf *tmp, pb_buf *kv, pb_buf *val)
{
    pb_hex_id(b, 1, d->trace_id);
    pb_hex_id(b, 2, d->span_id);
    if (d->parent_id[0] != '\0') {
        pb_hex_id(b, 4, d->parent_id);
    }
    pb_string(b, 5, d->name);
    pb_tag(b, 6, WIRE_VARINT);
    pb_varint(b, (uint64_t)d->kind);
    pb_fixed64(b, 7, (uint64_t)d->start_ns);
    pb_fixed64(b, 8, (uint64_t)d->end_ns);
    for (int i = 0; i < d->nattrs; i++) {
        pb_attr(b, 9, &d->attrs[i], kv, val);
    }
    if (d->error) {
        /* Status{3: code}: STATUS_CODE_ERROR is 2. */
        pb_tag(tmp, 3, WIRE_VARINT);
        pb_varint(tmp, 2);
        pb_message(b, 15, tmp);
    }
}

/* ExportTraceServiceRequest{1: ResourceSpans{1: Resource, 2: ScopeSpans{1: scope, 2: spans}}}. */
static void encode_request(pb_buf *out, const cl_span_data *spans, size_t n)
{
    pb_buf rs = {0}, res = {0}, ss = {0}, sp = {0}, tmp = {0}, kv = {0}, val = {0};
    cl_span_attr a = {0};

    cl_strlcpy(a.key, "service.name", sizeof(a.key));
    cl_strlcpy(a.str, ex.service, sizeof(a.str));
    pb_attr(&res, 1, &a, &kv, &val);
    cl_strlcpy(a.key, "service.version", sizeof(a.key));
    cl_strlcpy(a.str, ex.version, sizeof(a.str));
    pb_attr(&res, 1, &a, &kv, &val);
    pb_message(&rs, 1, &res);

    pb_string(&tmp, 1, "cleave");
    pb_string(&tmp, 2, ex.version);
    pb_message(&ss, 1, &tmp);
    for (size_t i = 0; i < n; i++) {
        pb_span(&sp, &spans[i], &tmp, &kv, &val);
        pb_message(&ss, 2, &sp);
    }
    pb_message(&rs, 2, &ss);
    pb_message(out, 1, &rs);
    free(rs.p);
    free(res.p);
    free(ss.p);
    free(sp.p);
    free(tmp.p);
    free(kv.p);
    free(val.p);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Posts one batch; true when the collector took it (2xx). */
static bool post(CURL *curl, const pb_buf *body, int64_t timeout_ms)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    long code = 0;
    CURLcode rc;

    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, ex.url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body->p);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    /* The timeout bounds a name lookup too (see take_handle in platform/rpc/client.c). */
    curl_easy_setopt(curl, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(h);
    return rc == CURLE_OK && code >= 200 && code < 300;
}

static void *export_loop(void *arg)
{
    cl_span_data *batch = calloc(CL_OTLP_BATCH_MAX, sizeof(*batch));
    CURL *curl = curl_easy_init();
    bool warned = false;
    size_t n;

    cl_thread_background("otlp", "export");

    (void)arg;
    for (;;) {
        pb_buf body = {0};
        int64_t left = OTLP_POST_MS;
        int64_t until = atomic_load(&ex.flush_until);
        bool ok;

        n = batch != NULL ? cl__trace_queue_take(batch, CL_OTLP_BATCH_MAX, OTLP_LINGER_MS) : 0;
        if (n == 0 && until != 0) {
            break;
        }
        if (n == 0) {
            continue;
        }
        if (until != 0) {
            left = until - cl_now_ms();
        }
        encode_request(&body, batch, n);
        ok = curl != NULL && !body.failed && left > 0 && post(curl, &body, left);
        free(body.p);
        cl__trace_count(n, ok);
        /* One line when the collector goes away, not one per batch. */
        if (!ok && !warned) {
            cl_log_warn("trace", "the collector at %s did not take %zu spans; dropping", ex.url, n);
        }
        warned = !ok;
    }
    curl_easy_cleanup(curl);
    free(batch);
    return NULL;
}

static bool endpoint_ok(const char *e)
{
    return e != NULL && (strncmp(e, "http://", 7) == 0 || strncmp(e, "https://", 8) == 0) &&
           strlen(e) + sizeof("/v1/traces") < OTLP_URL_MAX;
}

cl_status cl_otlp_start(const char *endpoint, const char *service, const char *version,
                        cl_error *err)
{
    size_t len;

    if (!endpoint_ok(endpoint)) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_OTLP_ENDPOINT",
                            "the collector endpoint must be an http:// or https:// URL of at "
                            "most %d bytes",
                            OTLP_URL_MAX - (int)sizeof("/v1/traces"));
    }
    if (ex.running) {
        return cl_error_set(err, CL_CONFLICT, NULL, "the span exporter runs already");
    }
    /* The signal's path goes after the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT says. */
    len = strlen(endpoint);
    if (len > 0 && endpoint[len - 1] == '/') {
        len--;
    }
    snprintf(ex.url, sizeof(ex.url), "%.*s/v1/traces", (int)len, endpoint);
    cl_strlcpy(ex.service, service != NULL ? service : "cleave", sizeof(ex.service));
    cl_strlcpy(ex.version, version != NULL ? version : "", sizeof(ex.version));
    atomic_store(&ex.flush_until, 0);
    if (cl__trace_queue_open(CL_OTLP_QUEUE_MAX) != CL_OK) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot make the span queue");
    }
    if (pthread_create(&ex.thread, NULL, export_loop, NULL) != 0) {
        cl__trace_queue_close();
        cl__trace_queue_free();
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the span exporter");
    }
    ex.running = true;
    return CL_OK;
}

void cl_otlp_stop(int64_t flush_ms)
{
    if (!ex.running) {
        return;
    }
    atomic_store(&ex.flush_until, cl_now_ms() + (flush_ms > 0 ? flush_ms : 1));
    cl__trace_queue_close();
    pthread_join(ex.thread, NULL);
    cl__trace_queue_free();
    ex.running = false;
}
