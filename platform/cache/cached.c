/*
 * The caching decorator (cleave/cache.h, ADR 0042). An answer is cached as the JSON text of
 * the response, keyed by the operation's name and the request's JSON, so that the same
 * text can sit in the shared level that other hosts read. The caller that loaded an
 * answer keeps the typed response it got; every other caller decodes the answer the LRU
 * keeps parsed (parse_json), which it reads but never changes: the response it decodes
 * into owns copies of everything, so nothing downstream (ETags, sparse fieldsets, links)
 * can reach the shared value. A caller that only sends the answer on as JSON
 * (ctx->accept_cached_json) is handed the shared value itself, whose text is its bytes.
 *
 * With a TTL of REFRESH_MIN_TTL_MS or more, a thread of the decorator's own reloads the
 * answers being read before they expire, making the call again from its key, and frees the
 * values readers drop: a reload's memory is one thread's, not a worker's taken by chance
 * (ADR 0064).
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/cache.h"
#include "../log/log_internal.h"

struct cl_cached {
    const cl_module_api *api;
    const cl_handle *inner; /* borrowed: its instance may be set after the decorator is made */
    cl_cache *lru;          /* NULL: caching is off, every call passes through */
    int64_t ttl_ms;
    const cl_cache_shared *shared;
    void *shared_self;
    /* The refresher (ADR 0064): reloads the keys being read before they expire. */
    pthread_t refresher;
    bool refreshing; /* the refresher runs */
    bool stopping;   /* under mu: it is to end */
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

/*
 * The shortest TTL whose keys the refresher reloads ahead: it looks every TTL/8, and
 * reloads what was read and is 3/4 of the TTL old, so a kept key is reloaded before it
 * expires while the process does not wake more often than every 250 ms for it.
 */
#define REFRESH_MIN_TTL_MS 2000
/* The longest a reload may take; less with a TTL under 8 s (a quarter of it). */
#define RELOAD_MAX_MS      2000

/* One load of a missing answer: the call, and whether it filled the caller's response. */
typedef struct load_arg {
    cl_cached *d;
    const cl_op *op;
    cl_ctx *ctx;
    const void *req;
    void *resp;
    const char *key;
    bool filled;
} load_arg;

static int start_refresher(cl_cached *d);

/* Whether a decorator made with opt has a refresher. */
static bool refreshes(const cl_cached_options *opt)
{
    return opt->ttl_ms >= REFRESH_MIN_TTL_MS;
}

cl_status cl_cached_new(const cl_module_api *api, const cl_handle *inner,
                        const cl_cached_options *opt, cl_cached **out, cl_error *err)
{
    cl_cached *d;

    if (api == NULL || api->cached_ops == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "the module has no cached operations");
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    d->api = api;
    d->inner = inner;
    d->ttl_ms = opt->ttl_ms;
    if (opt->ttl_ms > 0) {
        d->lru = cl_cache_new(&(cl_cache_options){.name = api->name,
                                                  .max_entries = opt->max_entries,
                                                  .max_bytes = opt->max_bytes,
                                                  .ttl_ms = opt->ttl_ms,
                                                  .parse_json = true,
                                                  .free_on_refresh = refreshes(opt)});
        if (d->lru == NULL) {
            free(d);
            return cl_error_set(err, CL_INVALID, NULL, "bad read cache bounds");
        }
    }
    if (refreshes(opt) && start_refresher(d) != 0) {
        cl_cached_free(d);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the read cache's refresher");
    }
    *out = d;
    return CL_OK;
}

void cl_cached_stop(cl_cached *d)
{
    if (d == NULL || !d->refreshing) {
        return;
    }
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->refresher, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->mu);
    d->refreshing = false;
}

void cl_cached_free(cl_cached *d)
{
    if (d != NULL) {
        cl_cached_stop(d);
        cl_cache_free(d->lru);
        free(d);
    }
}

void cl_cached_share(cl_cached *d, const cl_cache_shared *shared, void *self)
{
    if (d->lru != NULL) {
        d->shared = shared;
        d->shared_self = self;
    }
}

void cl_cached_invalidate(cl_cached *d)
{
    if (d != NULL && d->lru != NULL) {
        cl_cache_clear(d->lru);
    }
}

void cl_cached_stats(cl_cached *d, cl_cache_stats *out)
{
    if (d->lru != NULL) {
        cl_cache_stats_get(d->lru, out);
    } else {
        memset(out, 0, sizeof(*out));
    }
}

/*
 * The JSON text of a response (malloc'd), or NULL when out of memory: compact, in the
 * type's declaration order, the bytes a caller that took the typed response would have
 * encoded itself (cl_schema_dump, as cl_http_reply_type does), so that a caller served the
 * cached text (ctx->accept_cached_json) sends what it would have sent.
 */
static char *to_text(const cl_type *type, const void *obj)
{
    return cl_schema_dump(type, obj, 0);
}

/* cl_cache_loader: the shared level, else the wrapped table. */
static cl_status load(void *arg, char **value, int64_t *stored_ms, int *keep, cl_error *err)
{
    load_arg *a = arg;
    cl_cached *d = a->d;
    int64_t gen = 0;
    int64_t age_ms = 0;
    cl_status st;

    if (d->shared != NULL) {
        gen = d->shared->generation(d->shared_self, d->api->name);
        if (d->shared->get(d->shared_self, d->api->name, gen, a->key, d->ttl_ms, value, &age_ms)) {
            /* It ages from when some host loaded it, so the TTL bounds it across hosts. */
            *stored_ms -= age_ms;
            return CL_OK;
        }
    }
    st = a->op->invoke(d->inner, a->ctx, a->req, a->resp);
    if (st != CL_OK) {
        if (err != &a->ctx->err) {
            *err = a->ctx->err;
        }
        return st;
    }
    a->filled = true;
    *value = to_text(a->op->resp, a->resp);
    if (*value == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    /* A last good answer served while the source is down (ADR 0033) is not a fresh one. */
    if (a->ctx->stale) {
        *keep = 0;
    } else if (d->shared != NULL) {
        d->shared->set(d->shared_self, d->api->name, gen, a->key, *value, d->ttl_ms);
    }
    return CL_OK;
}

/*
 * cl_cache_reloader: the call key names ("<operation>\n<request JSON>", as make_key writes
 * it), made again on the refresher's own context, as the first caller's load made it.
 */
static cl_status reload(void *arg, const char *key, char **value, int64_t *stored_ms, int *keep,
                        cl_error *err)
{
    cl_cached *d = arg;
    const char *nl = strchr(key, '\n');
    char name[128];
    const cl_op *op = NULL;
    json_t *json = NULL;
    void *req = NULL;
    void *resp = NULL;
    cl_ctx ctx;
    cl_status st;

    if (nl != NULL && (size_t)(nl - key) < sizeof(name)) {
        memcpy(name, key, (size_t)(nl - key));
        name[nl - key] = '\0';
        op = cl_op_find(d->api->ops, d->api->nops, name);
        json = json_loads(nl + 1, 0, NULL);
    }
    if (op == NULL || json == NULL) {
        json_decref(json);
        cl_log_warn("cache", "%s: not a key of its read cache: %s", d->api->name, key);
        return cl_error_set(err, CL_INTERNAL, NULL, "not a key of the read cache: %s", key);
    }
    req = calloc(1, op->req->size);
    resp = calloc(1, op->resp->size);
    if (req == NULL || resp == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    } else {
        st = cl_schema_from_json(op->req, json, CL_DECODE_STRICT, req, err);
    }
    if (st == CL_OK) {
        /*
         * A reload later than a quarter of the TTL would be in no reader's time, and one that
         * waits long on a source that hangs holds up cl_cached_stop, so the host's stop.
         */
        cl_ctx_init(&ctx, d->ttl_ms / 4 < RELOAD_MAX_MS ? d->ttl_ms / 4 : RELOAD_MAX_MS);
        st = load(&(load_arg){d, op, &ctx, req, resp, key, false}, value, stored_ms, keep, err);
    }
    if (st != CL_OK) {
        /* The entry expires as usual, and its next reader loads it (and meets the error). */
        cl_log_debug("cache", "%s: reloading %s failed: %s", d->api->name, op->name, err->message);
    }
    if (req != NULL) {
        cl_schema_free(op->req, req);
    }
    if (resp != NULL) {
        cl_schema_free(op->resp, resp);
    }
    free(req);
    free(resp);
    json_decref(json);
    return st;
}

/* The refresher's thread: every TTL/8, reloads the keys read and 3/4 of the TTL old. */
static void *refresher_main(void *arg)
{
    cl_cached *d = arg;
    int64_t every_ms = d->ttl_ms / 8;

    cl_thread_background(d->api->name, "refresh");
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        struct timespec at = cl_deadline_in(every_ms);

        while (!d->stopping && pthread_cond_timedwait(&d->wake, &d->mu, &at) == 0) {
        }
        if (d->stopping) {
            break;
        }
        pthread_mutex_unlock(&d->mu);
        cl_cache_refresh(d->lru, cl_now_ms(), d->ttl_ms - d->ttl_ms / 4, reload, d);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/*
 * Starts d's refresher; 0 or an errno value. It blocks every signal, as the log's flusher
 * does: the server takes SIGINT/SIGTERM with sigwait on one thread (ADR 0032).
 */
static int start_refresher(cl_cached *d)
{
    int rc = pthread_mutex_init(&d->mu, NULL);
    sigset_t all;
    sigset_t old;

    if (rc != 0) {
        return rc;
    }
    rc = cl_cond_init_monotonic(&d->wake);
    if (rc == 0) {
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&d->refresher, NULL, refresher_main, d);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            pthread_cond_destroy(&d->wake);
        }
    }
    if (rc != 0) {
        pthread_mutex_destroy(&d->mu);
        return rc;
    }
    d->refreshing = true;
    return 0;
}

/* Whether a write that ended with st may have changed what the cache holds. */
static bool may_have_written(cl_status st)
{
    return st == CL_OK || st == CL_UNAVAILABLE || st == CL_DEADLINE_EXCEEDED || st == CL_INTERNAL;
}

/* Decodes a kept answer, parsed already, or else its text. */
static cl_status decode(const cl_op *op, const char *text, const cl_cache_json *parsed, void *resp,
                        cl_error *err)
{
    json_error_t jerr;
    json_t *json = NULL;
    cl_status st;

    if (parsed != NULL) {
        /* cl_schema_from_json only reads json: the shared value stays as it was. */
        return cl_schema_from_json(op->resp, (json_t *)cl_cache_json_value(parsed),
                                   CL_DECODE_LENIENT, resp, err);
    }
    json = json_loads(text, 0, &jerr);
    if (json == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cached %s answer is not JSON: %s", op->name,
                            jerr.text);
    }
    st = cl_schema_from_json(op->resp, json, CL_DECODE_LENIENT, resp, err);
    json_decref(json);
    return st;
}

/* The most fields int_key sorts; a request with more is keyed through jansson. */
#define INT_KEY_FIELDS 8

/* Appends s[0..n) to buf[size] at *used; false when it does not fit (a NUL included). */
static bool put_bytes(char *buf, size_t size, size_t *used, const char *s, size_t n)
{
    if (size - *used <= n) {
        return false;
    }
    memcpy(buf + *used, s, n);
    *used += n;
    return true;
}

/* Appends v in decimal, as jansson prints an integer ("%lld"). */
static bool put_int(char *buf, size_t size, size_t *used, int64_t v)
{
    char digits[CL__JSON_INT_MAX];
    size_t at = cl__json_int(digits, v);

    return put_bytes(buf, size, used, digits + at, sizeof(digits) - at);
}

/*
 * The key of a request whose fields are all integers (a read by id, the usual cached call),
 * written directly into buf[size]: the bytes make_key's dump gives ("get_product\n{\"id\":1}",
 * members in strcmp order as JSON_SORT_KEYS puts them), without building, dumping and
 * freeing a json_t for each call (2% of the server CPU of a product read). Its length, or 0 when
 * req has a field of another kind, more than INT_KEY_FIELDS, or the key does not fit.
 */
static size_t int_key(const cl_op *op, const void *req, char *buf, size_t size)
{
    const cl_type *t = op->req;
    const char *prev = NULL;
    size_t used = 0;
    bool ok;

    if (t->nfields > INT_KEY_FIELDS) {
        return 0;
    }
    for (size_t i = 0; i < t->nfields; i++) {
        if (t->fields[i].kind != CL_KIND_I64) {
            return 0;
        }
    }
    ok = put_bytes(buf, size, &used, op->name, strlen(op->name)) &&
         put_bytes(buf, size, &used, "\n{", 2);
    /* Each round puts the field whose name comes next: a few fields, no sorting buffer. */
    for (size_t n = 0; ok && n < t->nfields; n++) {
        const cl_field *next = NULL;

        for (size_t i = 0; i < t->nfields; i++) {
            const cl_field *f = &t->fields[i];
            if ((prev == NULL || strcmp(f->name, prev) > 0) &&
                (next == NULL || strcmp(f->name, next->name) < 0)) {
                next = f;
            }
        }
        /* Field names are C identifiers: nothing in them needs escaping. */
        ok = (n == 0 || put_bytes(buf, size, &used, ",", 1)) &&
             put_bytes(buf, size, &used, "\"", 1) &&
             put_bytes(buf, size, &used, next->name, strlen(next->name)) &&
             put_bytes(buf, size, &used, "\":", 2) &&
             put_int(buf, size, &used, *(const int64_t *)((const char *)req + next->offset));
        prev = next->name;
    }
    ok = ok && put_bytes(buf, size, &used, "}", 1);
    if (!ok) {
        return 0;
    }
    buf[used] = '\0';
    return used;
}

/*
 * The key of op's call with req: the operation's name, a newline and the request's JSON
 * (sorted keys: two equal requests make one key whatever the encoder's order), into
 * buf[size] when it fits, which a read's small request does, else into *heap (malloc'd).
 * NULL when out of memory.
 */
static const char *make_key(const cl_op *op, const void *req, char *buf, size_t size, char **heap)
{
    json_t *json;
    size_t name_len = strlen(op->name);
    size_t n = 0;
    const char *key = NULL;

    *heap = NULL;
    if (int_key(op, req, buf, size) > 0) {
        return buf;
    }
    json = cl_schema_to_json(op->req, req);
    if (json == NULL) {
        return NULL;
    }
    if (name_len + 2 < size) {
        n = json_dumpb(json, buf + name_len + 1, size - name_len - 2,
                       JSON_COMPACT | JSON_SORT_KEYS);
    }
    if (n > 0 && name_len + n + 2 <= size) {
        memcpy(buf, op->name, name_len);
        buf[name_len] = '\n';
        buf[name_len + 1 + n] = '\0';
        key = buf;
    } else {
        char *text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
        size_t len = text != NULL ? name_len + strlen(text) + 2 : 0;

        *heap = text != NULL ? malloc(len) : NULL;
        if (*heap != NULL) {
            snprintf(*heap, len, "%s\n%s", op->name, text);
            key = *heap;
        }
        free(text);
    }
    json_decref(json);
    return key;
}

cl_status cl_cached_call(cl_cached *d, const cl_op *op, cl_ctx *ctx, const void *req, void *resp)
{
    load_arg a = {d, op, ctx, req, resp, NULL, false};
    char key_buf[256];
    char *key_heap = NULL;
    const char *key = NULL;
    char *text = NULL;
    cl_cache_json *parsed = NULL;
    cl_status st;

    if (d->lru == NULL || (op->flags & CL_OP_CACHED) == 0 || ctx == NULL) {
        st = op->invoke(d->inner, ctx, req, resp);
        if ((op->flags & CL_OP_READ) == 0 && d->lru != NULL && may_have_written(st)) {
            /* After the write, so that no load begun before it is kept (cl_cache_clear). */
            cl_cache_clear(d->lru);
            if (d->shared != NULL) {
                d->shared->invalidate(d->shared_self, d->api->name);
            }
        }
        return st;
    }
    /* On the stack: a hit then allocates only what the typed response owns. */
    key = make_key(op, req, key_buf, sizeof(key_buf), &key_heap);
    if (key == NULL) {
        st = cl_error_set(&ctx->err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    a.key = key;
    st = cl_cache_fetch_json(d->lru, key, load, &a, &text, &parsed, NULL, &ctx->err);
    if (st == CL_OK && !a.filled && parsed != NULL && ctx->accept_cached_json) {
        /* The caller sends the answer on as it is: no decoding here, no encoding there. */
        ctx->cached_json = parsed;
        parsed = NULL;
    } else if (st == CL_OK && !a.filled) {
        st = decode(op, text, parsed, resp, &ctx->err);
    }
out:
    cl_cache_json_release(parsed);
    free(text);
    free(key_heap);
    return st;
}
