/*
 * The read cache (cleave/cache.h, ADR 0042): the LRU's bounds, TTL and clearing, one load
 * per key under concurrent misses, and the caching decorator of an operations table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/cache.h"
#include "cleave/util.h"

static cl_cache *new_cache(int entries, size_t bytes, int64_t ttl_ms)
{
    cl_cache *c = cl_cache_new(
        &(cl_cache_options){.max_entries = entries, .max_bytes = bytes, .ttl_ms = ttl_ms});

    assert_non_null(c);
    return c;
}

static int has(cl_cache *c, const char *key, int64_t now_ms, const char *want)
{
    char *v = NULL;
    int found = cl_cache_get(c, key, now_ms, &v, NULL);

    if (found && want != NULL) {
        assert_string_equal(v, want);
    }
    free(v);
    return found;
}

static void test_cache_serves_a_value_until_its_ttl(void **state)
{
    cl_cache *c = new_cache(10, 1000, 100);
    char *v = NULL;
    int64_t age = -1;
    cl_cache_stats s;

    (void)state;
    cl_cache_put(c, "k", "v1", 1000);
    assert_int_equal(cl_cache_get(c, "k", 1099, &v, &age), 1);
    assert_string_equal(v, "v1");
    assert_int_equal(age, 99);
    free(v);
    assert_false(has(c, "k", 1100, NULL));
    assert_false(has(c, "other", 1000, NULL));
    cl_cache_stats_get(c, &s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.entries, 0); /* the expired entry was dropped */
    cl_cache_free(c);
}

static void test_cache_evicts_the_least_recently_used(void **state)
{
    cl_cache *c = new_cache(2, 1000, 1000);
    cl_cache_stats s;

    (void)state;
    cl_cache_put(c, "a", "1", 0);
    cl_cache_put(c, "b", "2", 0);
    assert_true(has(c, "a", 1, "1")); /* a is now more recent than b */
    cl_cache_put(c, "c", "3", 0);
    assert_true(has(c, "a", 1, "1"));
    assert_false(has(c, "b", 1, NULL));
    assert_true(has(c, "c", 1, "3"));
    cl_cache_put(c, "a", "4", 0); /* a replaced, not added */
    assert_true(has(c, "a", 1, "4"));
    cl_cache_stats_get(c, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.evictions, 1);
    cl_cache_free(c);
}

static void test_cache_stays_within_its_bytes(void **state)
{
    cl_cache *c = new_cache(100, 10, 1000);
    cl_cache_stats s;

    (void)state;
    cl_cache_put(c, "a", "1234", 0); /* 5 bytes */
    cl_cache_put(c, "b", "1234", 0); /* 10 */
    cl_cache_put(c, "c", "1234", 0); /* a goes */
    assert_false(has(c, "a", 1, NULL));
    assert_true(has(c, "b", 1, "1234"));
    assert_true(has(c, "c", 1, "1234"));
    cl_cache_put(c, "d", "12345678910", 0); /* larger than the whole bound: not kept */
    assert_false(has(c, "d", 1, NULL));
    assert_true(has(c, "b", 1, "1234"));
    cl_cache_stats_get(c, &s);
    assert_true(s.bytes <= 10);
    cl_cache_free(c);
}

/* A loader that clears the cache while it loads, as a write landing meanwhile does. */
static cl_status clearing_loader(void *arg, char **value, int64_t *stored_ms, int *keep,
                                 cl_error *err)
{
    (void)stored_ms;
    (void)keep;
    (void)err;
    cl_cache_clear(arg);
    *value = strdup("read before the write");
    return CL_OK;
}

static void test_cache_clear_refuses_loads_in_flight(void **state)
{
    cl_cache *c = new_cache(10, 1000, 60000);
    char *v = NULL;
    int loaded = 0;

    (void)state;
    cl_cache_put(c, "x", "old", cl_now_ms());
    cl_cache_clear(c);
    assert_false(has(c, "x", cl_now_ms(), NULL));
    assert_int_equal(cl_cache_fetch(c, "k", clearing_loader, c, &v, &loaded, NULL), CL_OK);
    assert_string_equal(v, "read before the write"); /* served to its caller */
    assert_int_equal(loaded, 1);
    free(v);
    assert_false(has(c, "k", cl_now_ms(), NULL)); /* but not kept */
    cl_cache_free(c);
}

/* --- reloads ahead of the TTL (cl_cache_refresh, ADR 0064) ------------------------------ */

/* What a refresh asked for, and how its reloads answer. */
typedef struct reloads {
    cl_cache *c;
    char keys[4][16];
    int n;
    int64_t at_ms;  /* when each reload says it loaded */
    cl_status fail; /* CL_OK: answer "new-<key>" */
    int clear;      /* clear the cache during the reload */
} reloads;

static cl_status reloader(void *arg, const char *key, char **value, int64_t *stored_ms, int *keep,
                          cl_error *err)
{
    reloads *r = arg;
    char text[32];

    (void)keep;
    assert_true(r->n < 4);
    snprintf(r->keys[r->n++], sizeof(r->keys[0]), "%s", key);
    if (r->fail != CL_OK) {
        return cl_error_set(err, r->fail, NULL, "the source is down");
    }
    if (r->clear) {
        cl_cache_clear(r->c);
    }
    snprintf(text, sizeof(text), "new-%s", key);
    *value = strdup(text);
    *stored_ms = r->at_ms;
    return CL_OK;
}

static void test_cache_refresh_reloads_what_was_read_and_is_old_enough(void **state)
{
    cl_cache *c = new_cache(10, 1000, 100);
    reloads r = {.c = c, .at_ms = 1060};
    cl_cache_stats s;

    (void)state;
    cl_cache_put(c, "read", "v", 1000);
    cl_cache_put(c, "unread", "v", 1000);
    cl_cache_put(c, "young", "v", 1030);
    assert_true(has(c, "read", 1050, "v"));
    assert_true(has(c, "young", 1050, "v"));
    /* Due: stored at 1010 or before, and read since. */
    assert_int_equal(cl_cache_refresh(c, 1060, 50, reloader, &r), 1);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.keys[0], "read");
    /* Reloaded, it lives past the old entry's TTL; the others do not. */
    assert_true(has(c, "read", 1100, "new-read"));
    assert_false(has(c, "unread", 1100, NULL));
    assert_true(has(c, "young", 1120, "v"));
    /* Its mark went with the reload: read once more, it is due once more. */
    r.n = 0;
    assert_int_equal(cl_cache_refresh(c, 1150, 50, reloader, &r), 2);
    assert_int_equal(r.n, 2);
    cl_cache_stats_get(c, &s);
    assert_int_equal(s.refreshes, 3);
    assert_int_equal(s.loads, 0); /* no reader loaded */
    cl_cache_free(c);
}

static void test_cache_refresh_keeps_nothing_it_should_not(void **state)
{
    cl_cache *c = new_cache(10, 1000, 100);
    reloads r = {.c = c, .at_ms = 1060, .fail = CL_UNAVAILABLE};
    cl_cache_stats s;

    (void)state;
    /* A failed reload leaves the entry to expire as usual. */
    cl_cache_put(c, "k", "v", 1000);
    assert_true(has(c, "k", 1050, "v"));
    assert_int_equal(cl_cache_refresh(c, 1060, 50, reloader, &r), 0);
    assert_int_equal(r.n, 1);
    assert_true(has(c, "k", 1099, "v"));
    assert_false(has(c, "k", 1100, NULL));
    /* A clearing during a reload refuses what it read, as it does a load's. */
    r = (reloads){.c = c, .at_ms = 2060, .clear = 1};
    cl_cache_put(c, "k", "v", 2000);
    assert_true(has(c, "k", 2050, "v"));
    assert_int_equal(cl_cache_refresh(c, 2060, 50, reloader, &r), 0);
    assert_int_equal(r.n, 1);
    assert_false(has(c, "k", 2061, NULL));
    cl_cache_stats_get(c, &s);
    assert_int_equal(s.refreshes, 0);
    assert_int_equal(s.entries, 0);
    cl_cache_free(c);
}

/* --- one load per key ------------------------------------------------------------------ */

#define CALLERS 12

typedef struct herd {
    cl_cache *c;
    atomic_int loads;
    cl_status outcome; /* what the loader answers */
    cl_status got[CALLERS];
    char *values[CALLERS];
    char messages[CALLERS][256];
} herd;

typedef struct caller {
    herd *h;
    int i;
} caller;

/* Loads only once every other caller waits on this load: a second load would be a herd. */
static cl_status slow_loader(void *arg, char **value, int64_t *stored_ms, int *keep, cl_error *err)
{
    herd *h = arg;
    int64_t deadline = cl_now_ms() + 5000;
    cl_cache_stats s;

    (void)stored_ms;
    (void)keep;
    atomic_fetch_add(&h->loads, 1);
    do {
        struct timespec nap = {0, 1000000};

        nanosleep(&nap, NULL);
        cl_cache_stats_get(h->c, &s);
    } while (s.waits < CALLERS - 1 && cl_now_ms() < deadline);
    if (h->outcome != CL_OK) {
        return cl_error_set(err, h->outcome, "id", "the source is down");
    }
    *value = strdup("loaded");
    return CL_OK;
}

static void *call(void *arg)
{
    caller *k = arg;
    cl_error err = {0};

    k->h->got[k->i] =
        cl_cache_fetch(k->h->c, "hot", slow_loader, k->h, &k->h->values[k->i], NULL, &err);
    snprintf(k->h->messages[k->i], sizeof(k->h->messages[k->i]), "%s", err.message);
    return NULL;
}

static void run_herd(herd *h)
{
    pthread_t t[CALLERS];
    caller k[CALLERS];

    for (int i = 0; i < CALLERS; i++) {
        k[i] = (caller){h, i};
        assert_int_equal(pthread_create(&t[i], NULL, call, &k[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(t[i], NULL);
    }
}

static void test_cache_loads_a_missing_key_once_for_concurrent_callers(void **state)
{
    herd h = {.c = new_cache(10, 1000, 60000), .outcome = CL_OK};
    cl_cache_stats s;

    (void)state;
    run_herd(&h);
    assert_int_equal(atomic_load(&h.loads), 1);
    for (int i = 0; i < CALLERS; i++) {
        assert_int_equal(h.got[i], CL_OK);
        assert_string_equal(h.values[i], "loaded");
        free(h.values[i]);
    }
    cl_cache_stats_get(h.c, &s);
    assert_int_equal(s.loads, 1);
    assert_int_equal(s.waits, CALLERS - 1);
    assert_true(has(h.c, "hot", cl_now_ms(), "loaded"));
    cl_cache_free(h.c);
}

static void test_cache_shares_a_failed_load_and_keeps_nothing(void **state)
{
    herd h = {.c = new_cache(10, 1000, 60000), .outcome = CL_UNAVAILABLE};

    (void)state;
    run_herd(&h);
    assert_int_equal(atomic_load(&h.loads), 1);
    for (int i = 0; i < CALLERS; i++) {
        assert_int_equal(h.got[i], CL_UNAVAILABLE);
        assert_string_equal(h.messages[i], "the source is down");
        assert_null(h.values[i]);
    }
    assert_false(has(h.c, "hot", cl_now_ms(), NULL));
    cl_cache_free(h.c);
}

/* --- many threads at once (run under TSan too) ----------------------------------------- */

#define WORKERS 6
#define ROUNDS  3000

static cl_status echo_loader(void *arg, char **value, int64_t *stored_ms, int *keep, cl_error *err)
{
    (void)stored_ms;
    (void)keep;
    (void)err;
    *value = strdup(arg);
    return *value != NULL ? CL_OK : CL_INTERNAL;
}

static void *churn(void *arg)
{
    cl_cache *c = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();

    for (int i = 0; i < ROUNDS; i++) {
        char key[32];
        char *v = NULL;
        int r = rand_r(&seed);

        snprintf(key, sizeof(key), "key-%d", r % 300);
        switch (r % 7) {
        case 0:
            cl_cache_put(c, key, key, cl_now_ms());
            break;
        case 1:
            if (r % 50 == 1) {
                cl_cache_clear(c);
            }
            break;
        case 2:
            if (cl_cache_get(c, key, cl_now_ms(), &v, NULL)) {
                assert_string_equal(v, key);
            }
            break;
        default:
            assert_int_equal(cl_cache_fetch(c, key, echo_loader, key, &v, NULL, NULL), CL_OK);
            assert_string_equal(v, key);
            break;
        }
        free(v);
    }
    return NULL;
}

static void test_cache_under_concurrent_use_stays_consistent(void **state)
{
    /* Enough entries for several shards, few enough to evict all the time. */
    cl_cache *c = new_cache(256, 4096, 60000);
    pthread_t t[WORKERS];
    cl_cache_stats s;

    (void)state;
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, churn, c), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    cl_cache_stats_get(c, &s);
    assert_true(s.entries <= 256);
    assert_true(s.bytes <= 4096);
    assert_true(s.hits > 0);
    assert_true(s.evictions > 0);
    cl_cache_free(c);
}

static cl_status unkept_loader(void *arg, char **value, int64_t *stored_ms, int *keep,
                               cl_error *err)
{
    *keep = 0;
    return echo_loader(arg, value, stored_ms, keep, err);
}

/* A cache made with parse_json hands a kept value out parsed and shared, never re-parsed. */
static void test_cache_shares_parsed_values(void **state)
{
    cl_cache *c = cl_cache_new(&(cl_cache_options){
        .max_entries = 8, .max_bytes = 4096, .ttl_ms = 60000, .parse_json = true});
    const char *text = "{\"name\":\"gear\"}";
    char *v = NULL;
    cl_cache_json *p1 = NULL;
    cl_cache_json *p2 = NULL;
    int loaded = 0;
    cl_cache_stats s;

    (void)state;
    assert_non_null(c);
    /* An answer served to its loader alone comes as text, and is not kept. */
    assert_int_equal(cl_cache_fetch_json(c, "k", unkept_loader, (void *)text, &v, &p1, NULL, NULL),
                     CL_OK);
    assert_string_equal(v, text);
    assert_null(p1);
    free(v);
    /* The loader's own caller gets the value parsed, as kept. */
    assert_int_equal(cl_cache_fetch_json(c, "k", echo_loader, (void *)text, &v, &p1, &loaded, NULL),
                     CL_OK);
    assert_int_equal(loaded, 1);
    assert_null(v);
    assert_non_null(p1);
    cl_cache_json_release(p1);
    /* Every hit gets the one parsed value. */
    assert_int_equal(cl_cache_fetch_json(c, "k", echo_loader, "{}", &v, &p1, &loaded, NULL), CL_OK);
    assert_int_equal(loaded, 0);
    assert_null(v);
    assert_non_null(p1);
    assert_string_equal(json_string_value(json_object_get(cl_cache_json_value(p1), "name")),
                        "gear");
    assert_int_equal(cl_cache_fetch_json(c, "k", echo_loader, "{}", &v, &p2, NULL, NULL), CL_OK);
    assert_ptr_equal(cl_cache_json_value(p1), cl_cache_json_value(p2));
    /* The text API still serves the text. */
    assert_true(has(c, "k", cl_now_ms(), text));
    /* The byte bound counts the parsed value too, not the text alone. */
    cl_cache_stats_get(c, &s);
    assert_true(s.bytes > strlen("k") + strlen(text) + 64);
    /* A reader's reference outlives the entry (ASan: no use after free). */
    cl_cache_clear(c);
    cl_cache_json_release(p2);
    assert_string_equal(json_string_value(json_object_get(cl_cache_json_value(p1), "name")),
                        "gear");
    cl_cache_json_release(p1);
    /* A text that is not JSON is kept and handed out as text. */
    assert_int_equal(cl_cache_fetch_json(c, "t", echo_loader, "not json", &v, &p1, NULL, NULL),
                     CL_OK);
    free(v);
    assert_int_equal(cl_cache_fetch_json(c, "t", echo_loader, "{}", &v, &p1, &loaded, NULL), CL_OK);
    assert_int_equal(loaded, 0);
    assert_null(p1);
    assert_string_equal(v, "not json");
    free(v);
    cl_cache_json_release(NULL);
    cl_cache_free(c);
}

/* Parsed values read by several threads while others replace, evict and clear them. */
static void *churn_parsed(void *arg)
{
    cl_cache *c = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();

    for (int i = 0; i < ROUNDS; i++) {
        char key[32];
        char text[48];
        char *v = NULL;
        cl_cache_json *p = NULL;
        int r = rand_r(&seed);

        snprintf(key, sizeof(key), "key-%d", r % 100);
        snprintf(text, sizeof(text), "{\"k\":\"%s\"}", key);
        if (r % 40 == 0) {
            cl_cache_clear(c);
            continue;
        }
        assert_int_equal(cl_cache_fetch_json(c, key, echo_loader, text, &v, &p, NULL, NULL), CL_OK);
        if (p != NULL) {
            assert_string_equal(json_string_value(json_object_get(cl_cache_json_value(p), "k")),
                                key);
        } else {
            assert_string_equal(v, text);
        }
        cl_cache_json_release(p);
        free(v);
    }
    return NULL;
}

/* cl_cache_reloader: what churn_parsed's loads answer for key. */
static cl_status key_reloader(void *arg, const char *key, char **value, int64_t *stored_ms,
                              int *keep, cl_error *err)
{
    char text[48];

    (void)arg;
    (void)stored_ms;
    (void)keep;
    (void)err;
    snprintf(text, sizeof(text), "{\"k\":\"%s\"}", key);
    *value = strdup(text);
    return CL_OK;
}

typedef struct refresher {
    cl_cache *c;
    atomic_int done;
    int passes;
} refresher;

/* Reloads whatever was read, again and again, until the readers are done. */
static void *refresh_all(void *arg)
{
    refresher *r = arg;

    while (!atomic_load(&r->done) || r->passes == 0) {
        cl_cache_refresh(r->c, cl_now_ms(), 0, key_reloader, NULL);
        r->passes++;
    }
    return NULL;
}

/* churn_parsed on WORKERS threads, with a thread refreshing beside them when refresh is set. */
static void churn_between_threads(bool refresh)
{
    cl_cache *c = cl_cache_new(&(cl_cache_options){.max_entries = 128,
                                                   .max_bytes = 16384,
                                                   .ttl_ms = 60000,
                                                   .parse_json = true,
                                                   .free_on_refresh = refresh});
    refresher r = {.c = c};
    pthread_t t[WORKERS];
    pthread_t rt;
    cl_cache_stats s;

    assert_non_null(c);
    if (refresh) {
        assert_int_equal(pthread_create(&rt, NULL, refresh_all, &r), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, churn_parsed, c), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&r.done, 1);
    if (refresh) {
        pthread_join(rt, NULL);
    }
    cl_cache_stats_get(c, &s);
    assert_true(s.entries <= 128);
    assert_true(s.bytes <= 16384);
    assert_true(s.hits > 0);
    assert_true(!refresh || s.refreshes > 0);
    /* With free_on_refresh, what was released since the last refresh is freed here (ASan). */
    cl_cache_free(c);
}

static void test_cache_shares_parsed_values_between_threads(void **state)
{
    (void)state;
    churn_between_threads(false);
}

/*
 * The same while a refresher reloads what is read and frees what readers released last
 * (free_on_refresh, ADR 0064): under ThreadSanitizer, no race between them.
 */
static void test_cache_frees_released_values_on_its_refresher(void **state)
{
    (void)state;
    churn_between_threads(true);
}

/* --- the decorator ----------------------------------------------------------------------- */

/* Not in the keys' sorted order, so that an answer's text shows the order it was made in. */
#define WIDGET(X, T)                                                                               \
    X(T, STR, name, _)                                                                             \
    X(T, I64, id, _)
CL_TYPE_DECLARE(widget, WIDGET)
CL_TYPE_DEFINE(widget, WIDGET)
#define WIDGET_REF(X, T) X(T, I64, id, _)
CL_TYPE_DECLARE(widget_ref, WIDGET_REF)
CL_TYPE_DEFINE(widget_ref, WIDGET_REF)

/* Integers only, not in sorted order: keyed without jansson, in jansson's order. */
#define WIDGET_SPAN(X, T)                                                                          \
    X(T, I64, zeta, _)                                                                             \
    X(T, I64, alpha, _)                                                                            \
    X(T, I64, alp, _)
CL_TYPE_DECLARE(widget_span, WIDGET_SPAN)
CL_TYPE_DEFINE(widget_span, WIDGET_SPAN)

#define WIDGETS_OPERATIONS(X, M)                                                                   \
    X(M, get, widget_ref, widget, CL_OP_READ | CL_OP_CACHED)                                       \
    X(M, span, widget_span, widget, CL_OP_READ | CL_OP_CACHED)                                     \
    X(M, find, widget, widget, CL_OP_READ | CL_OP_CACHED)                                          \
    X(M, peek, widget_ref, widget, CL_OP_READ)                                                     \
    X(M, rename, widget, widget, CL_OP_WRITE)
CL_OPS_DECLARE(widgets, WIDGETS_OPERATIONS)
CL_OPS_DEFINE(widgets, WIDGETS_OPERATIONS)
CL_CACHED_DEFINE(widgets, WIDGETS_OPERATIONS, 1)

/* The wrapped table: one widget whose name a write changes; counts the reads it answers. */
typedef struct store {
    char name[64];
    int reads;
    int stale; /* answer as a stale fallback would */
} store;

static cl_status store_get(void *self, cl_ctx *ctx, const widget_ref *req, widget *resp)
{
    store *s = self;

    s->reads++;
    if (req->id != 1) {
        return cl_error_set(&ctx->err, CL_NOT_FOUND, "id", "no widget %lld", (long long)req->id);
    }
    ctx->stale = s->stale;
    resp->id = 1;
    resp->name = strdup(s->name);
    return CL_OK;
}

/* Answers the widget asked for, whatever its name. */
static cl_status store_find(void *self, cl_ctx *ctx, const widget *req, widget *resp)
{
    store *s = self;

    (void)ctx;
    s->reads++;
    resp->id = req->id;
    resp->name = strdup(req->name);
    return CL_OK;
}

static cl_status store_rename(void *self, cl_ctx *ctx, const widget *req, widget *resp)
{
    store *s = self;

    (void)ctx;
    snprintf(s->name, sizeof(s->name), "%s", req->name);
    resp->id = 1;
    resp->name = strdup(s->name);
    return CL_OK;
}

/* Answers widget 1 for any span. */
static cl_status store_span(void *self, cl_ctx *ctx, const widget_span *req, widget *resp)
{
    widget_ref ref = {.id = 1};

    (void)req;
    return store_get(self, ctx, &ref, resp);
}

static const widgets_ops store_ops = {.version = 1,
                                      .get = store_get,
                                      .span = store_span,
                                      .find = store_find,
                                      .peek = store_get,
                                      .rename = store_rename};

static const cl_module_api widgets_api = {
    .name = "widgets",
    .ops = widgets_op_list,
    .nops = sizeof(widgets_op_list) / sizeof(widgets_op_list[0]),
    .cached_ops = &widgets_cached_ops,
};

/* The name widget id has through h, or the status when the read fails. */
static cl_status read_name(const cl_handle *h, int64_t id, char *name, size_t size)
{
    cl_ctx ctx = {0};
    widget_ref ref = {.id = id};
    widget w = {0};
    cl_status st = widgets_get(h, &ctx, &ref, &w);

    if (st == CL_OK) {
        snprintf(name, size, "%s", w.name);
    }
    cl_schema_free(&widget_type, &w);
    return st;
}

/* A decorator of inner that keeps answers a minute; the handle its callers use. */
static cl_handle new_decorator(const cl_handle *inner, cl_cached **d)
{
    cl_cached_options opt = {.max_entries = 100, .max_bytes = 10000, .ttl_ms = 60000};

    assert_int_equal(cl_cached_new(&widgets_api, inner, &opt, d, NULL), CL_OK);
    return (cl_handle){widgets_api.cached_ops, *d};
}

/* A wrapped table read from two threads: counts its reads and names the last reader. */
typedef struct watched {
    pthread_mutex_t mu;
    char name[64];
    int reads;
    pthread_t last_reader;
} watched;

static cl_status watched_get(void *self, cl_ctx *ctx, const widget_ref *req, widget *resp)
{
    watched *w = self;

    (void)ctx;
    pthread_mutex_lock(&w->mu);
    w->reads++;
    w->last_reader = pthread_self();
    resp->id = req->id;
    resp->name = strdup(w->name);
    pthread_mutex_unlock(&w->mu);
    return CL_OK;
}

static const widgets_ops watched_ops = {.version = 1, .get = watched_get};

/*
 * A key read all the time is reloaded by the decorator's own thread before its TTL ends:
 * its readers only ever hit (ADR 0064).
 */
static void test_cached_decorator_reloads_what_is_read_on_its_own_thread(void **state)
{
    watched w = {.name = "first"};
    cl_handle inner = {&watched_ops, &w};
    cl_cached_options opt = {.max_entries = 100, .max_bytes = 10000, .ttl_ms = 2000};
    cl_cached *d = NULL;
    cl_handle h;
    char name[64];
    cl_cache_stats st = {0};
    int64_t deadline;

    (void)state;
    assert_int_equal(pthread_mutex_init(&w.mu, NULL), 0);
    assert_int_equal(cl_cached_new(&widgets_api, &inner, &opt, &d, NULL), CL_OK);
    h = (cl_handle){widgets_api.cached_ops, d};
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK); /* loads */
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK); /* a hit: read since kept */
    pthread_mutex_lock(&w.mu);
    snprintf(w.name, sizeof(w.name), "second");
    pthread_mutex_unlock(&w.mu);
    /* Due at 3/4 of the TTL, looked for every 1/8: some 1.5-1.75 s after the load. */
    deadline = cl_now_ms() + 20000;
    while (st.refreshes == 0 && cl_now_ms() < deadline) {
        struct timespec nap = {0, 10L * 1000000};

        nanosleep(&nap, NULL);
        cl_cached_stats(d, &st);
    }
    assert_int_equal(st.refreshes, 1);
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.reads, 2);
    assert_false(pthread_equal(w.last_reader, pthread_self()));
    pthread_mutex_unlock(&w.mu);
    /* The reloaded answer, as a hit: no reader missed since the first. */
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "second");
    cl_cached_stats(d, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.hits, 2);
    cl_cached_free(d);
    pthread_mutex_destroy(&w.mu);
}

static void test_cached_decorator_answers_reads_and_clears_on_writes(void **state)
{
    store s = {.name = "first"};
    cl_handle inner = {&store_ops, &s};
    cl_cached *d = NULL;
    cl_handle h;
    cl_ctx ctx = {0};
    widget w = {.id = 1, .name = "second"};
    widget out = {0};
    widget_ref ref = {.id = 1};
    char name[64];
    cl_cache_stats st;

    (void)state;
    h = new_decorator(&inner, &d);
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "first");
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "first");
    assert_int_equal(s.reads, 1); /* the second from the cache */
    /* An operation not declared cached passes through every time. */
    assert_int_equal(widgets_peek(&h, &ctx, &ref, &out), CL_OK);
    cl_schema_free(&widget_type, &out);
    assert_int_equal(s.reads, 2);
    /* A failure is the source's, and nothing is kept of it. */
    assert_int_equal(read_name(&h, 2, name, sizeof(name)), CL_NOT_FOUND);
    assert_int_equal(read_name(&h, 2, name, sizeof(name)), CL_NOT_FOUND);
    assert_int_equal(s.reads, 4);
    /* Its own write is visible at once. */
    assert_int_equal(widgets_rename(&h, &ctx, &w, &out), CL_OK);
    cl_schema_free(&widget_type, &out);
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "second");
    assert_int_equal(s.reads, 5);
    /* So is another host's, once the shared level says so. */
    snprintf(s.name, sizeof(s.name), "third");
    cl_cached_invalidate(d);
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "third");
    cl_cached_stats(d, &st);
    assert_int_equal(st.hits, 1);
    cl_cached_free(d);
}

/* Requests longer than the key's buffer on the stack are keyed whole, not by a prefix. */
static void test_cached_decorator_keys_long_requests_whole(void **state)
{
    store s = {.name = "unused"};
    cl_handle inner = {&store_ops, &s};
    cl_cached *d = NULL;
    cl_handle h;
    char names[3][600];
    const char *want[] = {"a", "b", "a"};

    (void)state;
    h = new_decorator(&inner, &d);
    for (int i = 0; i < 3; i++) {
        /* The same 590 bytes, then the one that differs. */
        memset(names[i], 'x', 590);
        snprintf(names[i] + 590, 10, "%s", want[i]);
    }
    for (int i = 0; i < 3; i++) {
        cl_ctx ctx = {0};
        widget req = {.id = 7, .name = names[i]};
        widget out = {0};

        assert_int_equal(widgets_find(&h, &ctx, &req, &out), CL_OK);
        assert_string_equal(out.name, names[i]);
        cl_schema_free(&widget_type, &out);
    }
    /* "a" twice, "b" once: the third came from the cache, the second did not. */
    assert_int_equal(s.reads, 2);
    cl_cached_free(d);
}

static void test_cached_decorator_keeps_no_stale_fallback_answer(void **state)
{
    store s = {.name = "last good", .stale = 1};
    cl_handle inner = {&store_ops, &s};
    cl_cached *d = NULL;
    cl_handle h;
    char name[64];

    (void)state;
    h = new_decorator(&inner, &d);
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_int_equal(s.reads, 2);
    cl_cached_free(d);
}

/* A widget read through h by a caller that takes a cached answer as it is; its status. */
static cl_status read_as_sent(const cl_handle *h, cl_ctx *ctx, widget *out)
{
    widget_ref ref = {.id = 1};
    cl_status st;

    ctx->accept_cached_json = 1;
    st = widgets_get(h, ctx, &ref, out);
    ctx->accept_cached_json = 0;
    return st;
}

/*
 * A caller that sends an answer on as JSON (a REST handler) is handed a hit as the cache
 * keeps it: the bytes it would have encoded from the typed response, in the type's order.
 */
static void test_cached_decorator_hands_a_hit_as_its_json(void **state)
{
    store s = {.name = "first"};
    cl_handle inner = {&store_ops, &s};
    cl_cached *d = NULL;
    cl_handle h;
    cl_ctx ctx = {0};
    widget loaded = {0}, hit = {0};
    json_t *typed;
    char *want;
    char name[64];
    const char *text;
    size_t len;

    (void)state;
    h = new_decorator(&inner, &d);
    /* The caller whose call loaded the answer has it typed already. */
    assert_int_equal(read_as_sent(&h, &ctx, &loaded), CL_OK);
    assert_null(ctx.cached_json);
    assert_string_equal(loaded.name, "first");
    typed = cl_schema_to_json(&widget_type, &loaded);
    want = json_dumps(typed, JSON_COMPACT);
    assert_string_equal(want, "{\"name\":\"first\",\"id\":1}");
    /* A hit: the shared answer, and a typed response left empty. */
    assert_int_equal(read_as_sent(&h, &ctx, &hit), CL_OK);
    assert_non_null(ctx.cached_json);
    assert_null(hit.name);
    text = cl_cache_json_text(ctx.cached_json, &len);
    assert_int_equal(len, strlen(want));
    assert_string_equal(text, want);
    assert_int_equal(
        json_integer_value(json_object_get(cl_cache_json_value(ctx.cached_json), "id")), 1);
    cl_cache_json_release(ctx.cached_json);
    ctx.cached_json = NULL;
    /* A caller that did not ask still gets its typed response. */
    assert_int_equal(read_name(&h, 1, name, sizeof(name)), CL_OK);
    assert_string_equal(name, "first");
    assert_int_equal(s.reads, 1);
    free(want);
    json_decref(typed);
    cl_schema_free(&widget_type, &loaded);
    cl_cached_free(d);
}

/* An answer the cache does not keep (a stale fallback's) reaches every caller typed. */
static void test_cached_decorator_types_an_unkept_answer_for_every_caller(void **state)
{
    store s = {.name = "last good", .stale = 1};
    cl_handle inner = {&store_ops, &s};
    cl_cached *d = NULL;
    cl_handle h;

    (void)state;
    h = new_decorator(&inner, &d);
    for (int i = 0; i < 2; i++) {
        cl_ctx ctx = {0};
        widget w = {0};

        assert_int_equal(read_as_sent(&h, &ctx, &w), CL_OK);
        assert_null(ctx.cached_json);
        assert_string_equal(w.name, "last good");
        cl_schema_free(&widget_type, &w);
    }
    assert_int_equal(s.reads, 2);
    cl_cached_free(d);
}

/* A shared level that keeps nothing and records the keys it is asked for. */
typedef struct key_log {
    char keys[4][1024];
    int n;
} key_log;

static int64_t log_generation(void *self, const char *scope)
{
    (void)self;
    (void)scope;
    return 0;
}

static int log_get(void *self, const char *scope, int64_t gen, const char *key, int64_t ttl_ms,
                   char **value, int64_t *age_ms)
{
    key_log *l = self;

    (void)scope, (void)gen, (void)ttl_ms, (void)value, (void)age_ms;
    if (l->n < 4) {
        snprintf(l->keys[l->n++], sizeof(l->keys[0]), "%s", key);
    }
    return 0;
}

static void log_set(void *self, const char *scope, int64_t gen, const char *key, const char *value,
                    int64_t ttl_ms)
{
    (void)self, (void)scope, (void)gen, (void)key, (void)value, (void)ttl_ms;
}

static void log_invalidate(void *self, const char *scope)
{
    (void)self, (void)scope;
}

/*
 * A call's key is the operation's name and its request as JSON with sorted members, which
 * other hosts (and older builds) sharing the level make too, however it is written.
 */
static void test_cached_decorator_keys_calls_as_sorted_json(void **state)
{
    static const cl_cache_shared shared = {1, log_generation, log_get, log_set, log_invalidate};
    store s = {.name = "first"};
    cl_handle inner = {&store_ops, &s};
    key_log l = {0};
    cl_cached *d = NULL;
    cl_handle h;
    widget_span span = {.zeta = -9223372036854775807LL - 1, .alpha = 0, .alp = 42};
    widget req = {.id = -3, .name = "a\"b"};
    widget_ref ref = {.id = 1234567890123};
    json_t *want;
    char *text;

    (void)state;
    h = new_decorator(&inner, &d);
    cl_cached_share(d, &shared, &l);
    for (int i = 0; i < 3; i++) {
        cl_ctx ctx = {0};
        widget out = {0};
        cl_status st = i == 0   ? widgets_get(&h, &ctx, &ref, &out)
                       : i == 1 ? widgets_span(&h, &ctx, &span, &out)
                                : widgets_find(&h, &ctx, &req, &out);

        assert_int_equal(st, i == 0 ? CL_NOT_FOUND : CL_OK);
        cl_schema_free(&widget_type, &out);
    }
    assert_int_equal(l.n, 3);
    assert_string_equal(l.keys[0], "get\n{\"id\":1234567890123}");
    assert_string_equal(l.keys[1], "span\n{\"alp\":42,\"alpha\":0,\"zeta\":-9223372036854775808}");
    /* What jansson itself makes of a request, the key every build wrote. */
    want = cl_schema_to_json(&widget_span_type, &span);
    text = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(strchr(l.keys[1], '\n') + 1, text);
    free(text);
    json_decref(want);
    assert_string_equal(l.keys[2], "find\n{\"id\":-3,\"name\":\"a\\\"b\"}");
    cl_cached_free(d);
}

/* A request too long for the key's buffer on the stack is keyed as sorted JSON all the same. */
static void test_cached_decorator_keys_long_requests_as_sorted_json(void **state)
{
    static const cl_cache_shared shared = {1, log_generation, log_get, log_set, log_invalidate};
    store s = {.name = "first"};
    cl_handle inner = {&store_ops, &s};
    key_log l = {0};
    cl_cached *d = NULL;
    cl_handle h;
    char name[600];
    char want[700];
    cl_ctx ctx = {0};
    widget out = {0};

    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    h = new_decorator(&inner, &d);
    cl_cached_share(d, &shared, &l);
    /* widget declares name before id: sorted, id comes first. */
    assert_int_equal(widgets_find(&h, &ctx, &(widget){.id = 7, .name = name}, &out), CL_OK);
    cl_schema_free(&widget_type, &out);
    snprintf(want, sizeof(want), "find\n{\"id\":7,\"name\":\"%s\"}", name);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.keys[0], want);
    cl_cached_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_serves_a_value_until_its_ttl),
        cmocka_unit_test(test_cache_evicts_the_least_recently_used),
        cmocka_unit_test(test_cache_stays_within_its_bytes),
        cmocka_unit_test(test_cache_clear_refuses_loads_in_flight),
        cmocka_unit_test(test_cache_refresh_reloads_what_was_read_and_is_old_enough),
        cmocka_unit_test(test_cache_refresh_keeps_nothing_it_should_not),
        cmocka_unit_test(test_cache_loads_a_missing_key_once_for_concurrent_callers),
        cmocka_unit_test(test_cache_shares_a_failed_load_and_keeps_nothing),
        cmocka_unit_test(test_cache_under_concurrent_use_stays_consistent),
        cmocka_unit_test(test_cache_shares_parsed_values),
        cmocka_unit_test(test_cache_shares_parsed_values_between_threads),
        cmocka_unit_test(test_cache_frees_released_values_on_its_refresher),
        cmocka_unit_test(test_cached_decorator_reloads_what_is_read_on_its_own_thread),
        cmocka_unit_test(test_cached_decorator_answers_reads_and_clears_on_writes),
        cmocka_unit_test(test_cached_decorator_keys_long_requests_whole),
        cmocka_unit_test(test_cached_decorator_keeps_no_stale_fallback_answer),
        cmocka_unit_test(test_cached_decorator_keys_calls_as_sorted_json),
        cmocka_unit_test(test_cached_decorator_keys_long_requests_as_sorted_json),
        cmocka_unit_test(test_cached_decorator_hands_a_hit_as_its_json),
        cmocka_unit_test(test_cached_decorator_types_an_unkept_answer_for_every_caller),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
