/*
 * The in-process LRU (cleave/cache.h). The keys are split into shards by hash, each with
 * its own lock, hash table (chained, sized for the shard's share of max_entries), recency
 * list and share of the bounds, so that threads reading different keys rarely wait on each
 * other. A small cache (under 64 entries a shard) has one shard and is an exact LRU.
 *
 * Loads in flight are kept per shard in a short list: a caller that misses a key another
 * caller is loading waits on that load's condition instead of loading too. A clearing
 * bumps the shard's generation, and a load that began under an older one is served to its
 * callers but not kept.
 *
 * With parse_json an entry also holds its value parsed (a cl_cache_json), made outside the
 * lock when the entry is made, and a hit hands out a reference to it under the lock: the
 * text is parsed once per load instead of once per hit.
 *
 * An entry is marked when served; cl_cache_refresh reloads the marked entries that are old
 * enough, on its caller's thread, and with free_on_refresh the parsed values readers drop
 * last are pushed on a lock-free stack that the next refresh frees (ADR 0064).
 */
#include "cleave/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/metrics.h"
#include "cleave/util.h"

#define MAX_SHARDS        16
#define ENTRIES_PER_SHARD 64

typedef struct entry {
    struct entry *prev; /* recency list, most recent first */
    struct entry *next;
    struct entry *chain; /* hash bucket */
    uint64_t hash;
    char *key;
    char *value;
    cl_cache_json *parsed; /* NULL: not parsed (parse_json off, or not JSON) */
    size_t bytes;
    int64_t stored_ms;
    bool read; /* served since it was stored: cl_cache_refresh reloads it before it expires */
} entry;

struct cl_cache_json {
    atomic_int refs;
    cl_cache *owner;            /* with free_on_refresh: its last release hands it back here */
    struct cl_cache_json *dead; /* the next one handed back, not yet freed */
    json_t *json; /* the only jansson reference: never shared, so never counted by jansson */
    size_t len;
    char text[]; /* what json was parsed from, which its entry's value borrows */
};

typedef struct flight {
    struct flight *next;
    uint64_t hash;
    char *key;
    pthread_cond_t done_cv;
    bool done;
    int waiters;
    cl_status status;
    cl_error err;
    char *value;           /* NULL with CL_OK: an answer the loader did not share */
    cl_cache_json *parsed; /* the kept entry's, when parsed; a reference of the flight's */
    int64_t stored_ms;
} flight;

typedef struct shard {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets; /* a power of two */
    entry *head;
    entry *tail;
    int count;
    size_t bytes;
    int max_entries;
    size_t max_bytes;
    uint64_t generation;
    flight *flights;
} shard;

struct cl_cache {
    cl_cache_options opt;
    shard shards[MAX_SHARDS];
    int nshards;
    cl_series *hit;
    cl_series *miss;
    cl_series *evicted;
    atomic_llong hits, misses, loads, waits, evictions, refreshes;
    _Atomic(cl_cache_json *) dead; /* values released for the last time, to free (a stack) */
};

static cl_metric cache_requests = CL_METRIC_COUNTER(
    "cleave_cache_requests_total",
    "Lookups of the in-process read cache, by cache and result (hit or miss).", "cache", "result");
static cl_metric cache_evictions =
    CL_METRIC_COUNTER("cleave_cache_evictions_total",
                      "Entries the read cache dropped to stay within its bounds.", "cache");

/* FNV-1a, 64 bits. */
static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static shard *shard_of(cl_cache *c, uint64_t hash)
{
    /* The high bits pick the shard, the low ones the bucket: the two stay independent. */
    return &c->shards[(hash >> 56) % (uint64_t)c->nshards];
}

static entry **bucket_of(shard *s, uint64_t hash)
{
    return &s->buckets[hash & (s->nbuckets - 1)];
}

static void list_unlink(shard *s, entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        s->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        s->tail = e->prev;
    }
    e->prev = NULL;
    e->next = NULL;
}

static void list_push_front(shard *s, entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head != NULL) {
        s->head->prev = e;
    }
    s->head = e;
    if (s->tail == NULL) {
        s->tail = e;
    }
}

const json_t *cl_cache_json_value(const cl_cache_json *v)
{
    return v->json;
}

const char *cl_cache_json_text(const cl_cache_json *v, size_t *len)
{
    *len = v->len;
    return v->text;
}

static cl_cache_json *json_ref(cl_cache_json *v)
{
    if (v != NULL) {
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    }
    return v;
}

static void json_free(cl_cache_json *v)
{
    json_decref(v->json);
    free(v);
}

void cl_cache_json_release(cl_cache_json *v)
{
    cl_cache *c;
    cl_cache_json *top;

    /* acq_rel: every reader's last access happens before the one that frees it. */
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    c = v->owner;
    if (c == NULL) {
        json_free(v);
        return;
    }
    /* Pushed for the refresher to free (free_on_refresh); only a drain ever pops. */
    top = atomic_load_explicit(&c->dead, memory_order_relaxed);
    do {
        v->dead = top;
    } while (!atomic_compare_exchange_weak_explicit(&c->dead, &top, v, memory_order_release,
                                                    memory_order_relaxed));
}

/* Frees the values handed back to c since the last drain. */
static void drain_dead(cl_cache *c)
{
    cl_cache_json *v = atomic_exchange_explicit(&c->dead, NULL, memory_order_acquire);

    while (v != NULL) {
        cl_cache_json *next = v->dead;

        json_free(v);
        v = next;
    }
}

/* Roughly what jansson allocates for json (glibc malloc rounding included). */
static size_t json_bytes(const json_t *json)
{
    const char *key;
    json_t *v;
    size_t i;
    size_t n;

    switch (json_typeof(json)) {
    case JSON_OBJECT:
        n = 96 + 16 * json_object_size(json);
        json_object_foreach ((json_t *)json, key, v) {
            n += 48 + strlen(key) + json_bytes(v);
        }
        return n;
    case JSON_ARRAY:
        n = 48 + 8 * json_array_size(json);
        json_array_foreach (json, i, v) {
            n += json_bytes(v);
        }
        return n;
    case JSON_STRING:
        return 64 + json_string_length(json);
    default:
        return 32;
    }
}

/*
 * The parsed form of text, holding text too, or NULL when it is not JSON or out of memory.
 * *bytes: an estimate of the parsed value's memory (the text not counted).
 */
static cl_cache_json *parse(cl_cache *c, const char *text, size_t *bytes)
{
    size_t len = strlen(text);
    cl_cache_json *v = malloc(sizeof(*v) + len + 1);

    if (v == NULL) {
        return NULL;
    }
    v->json = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (v->json == NULL) {
        free(v);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    v->owner = c->opt.free_on_refresh ? c : NULL;
    v->dead = NULL;
    v->len = len;
    memcpy(v->text, text, len + 1);
    *bytes = json_bytes(v->json);
    return v;
}

static void entry_free(entry *e)
{
    free(e->key);
    /* A parsed entry's value is its parsed value's text, which may outlive the entry. */
    if (e->parsed == NULL) {
        free(e->value);
    }
    cl_cache_json_release(e->parsed);
    free(e);
}

static void drop(shard *s, entry *e)
{
    entry **p = bucket_of(s, e->hash);

    while (*p != e) {
        p = &(*p)->chain;
    }
    *p = e->chain;
    list_unlink(s, e);
    s->count--;
    s->bytes -= e->bytes;
    entry_free(e);
}

static entry *find(shard *s, const char *key, uint64_t hash)
{
    for (entry *e = *bucket_of(s, hash); e != NULL; e = e->chain) {
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            return e;
        }
    }
    return NULL;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;

    while (p < n) {
        p *= 2;
    }
    return p;
}

cl_cache *cl_cache_new(const cl_cache_options *opt)
{
    cl_cache *c;

    if (opt == NULL || opt->max_entries < 1 || opt->max_bytes < 1 || opt->ttl_ms < 1) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->opt = *opt;
    atomic_init(&c->dead, NULL);
    c->nshards = opt->max_entries / ENTRIES_PER_SHARD;
    c->nshards = c->nshards < 1 ? 1 : c->nshards > MAX_SHARDS ? MAX_SHARDS : c->nshards;
    for (int i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];

        s->max_entries = opt->max_entries / c->nshards;
        s->max_bytes = opt->max_bytes / (size_t)c->nshards;
        s->nbuckets = pow2_at_least((size_t)s->max_entries);
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        if (s->buckets == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->buckets);
            c->nshards = i;
            cl_cache_free(c);
            return NULL;
        }
    }
    if (opt->name != NULL) {
        c->hit = CL_METRIC_SERIES(&cache_requests, opt->name, "hit");
        c->miss = CL_METRIC_SERIES(&cache_requests, opt->name, "miss");
        c->evicted = CL_METRIC_SERIES(&cache_evictions, opt->name);
    }
    return c;
}

void cl_cache_free(cl_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        entry *e = s->head;

        while (e != NULL) {
            entry *next = e->next;

            entry_free(e);
            e = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    drain_dead(c);
    free(c);
}

/* Looks key up in s (locked): its entry when young enough, else NULL (an old one dropped). */
static entry *lookup_locked(cl_cache *c, shard *s, const char *key, uint64_t hash, int64_t now_ms)
{
    entry *e = find(s, key, hash);

    if (e != NULL && now_ms - e->stored_ms >= c->opt.ttl_ms) {
        drop(s, e);
        e = NULL;
    }
    if (e != NULL) {
        list_unlink(s, e);
        list_push_front(s, e);
        e->read = true;
    }
    return e;
}

static void count_lookup(cl_cache *c, bool hit)
{
    atomic_fetch_add(hit ? &c->hits : &c->misses, 1);
    cl_metric_add(hit ? c->hit : c->miss, 1);
}

int cl_cache_get(cl_cache *c, const char *key, int64_t now_ms, char **value, int64_t *age_ms)
{
    uint64_t hash = hash_key(key);
    shard *s = shard_of(c, hash);
    entry *e;
    int found = 0;

    pthread_mutex_lock(&s->mu);
    e = lookup_locked(c, s, key, hash, now_ms);
    if (e != NULL) {
        *value = strdup(e->value);
        found = *value != NULL;
        if (found && age_ms != NULL) {
            *age_ms = now_ms - e->stored_ms;
        }
    }
    pthread_mutex_unlock(&s->mu);
    count_lookup(c, found);
    return found;
}

/* Keeps e (owned) in s (locked), replacing an entry of the same key and evicting others. */
static void insert_locked(cl_cache *c, shard *s, entry *e)
{
    entry *old = find(s, e->key, e->hash);
    entry **b;

    if (old != NULL) {
        drop(s, old);
    }
    while (s->tail != NULL &&
           (s->count + 1 > s->max_entries || s->bytes + e->bytes > s->max_bytes)) {
        drop(s, s->tail);
        atomic_fetch_add(&c->evictions, 1);
        cl_metric_add(c->evicted, 1);
    }
    b = bucket_of(s, e->hash);
    e->chain = *b;
    *b = e;
    list_push_front(s, e);
    s->count++;
    s->bytes += e->bytes;
}

/* A new entry for key and value, or NULL when out of memory or too large for s. */
static entry *entry_new(cl_cache *c, const shard *s, const char *key, uint64_t hash,
                        const char *value, int64_t stored_ms)
{
    size_t bytes = strlen(key) + strlen(value);
    size_t parsed_bytes = 0;
    entry *e;

    if (bytes > s->max_bytes) {
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->key = strdup(key);
    /* A text that is not JSON is kept as text: its readers report it when they parse. */
    e->parsed = c->opt.parse_json ? parse(c, value, &parsed_bytes) : NULL;
    e->value = e->parsed != NULL ? e->parsed->text : strdup(value);
    bytes += parsed_bytes;
    if (e->key == NULL || e->value == NULL || bytes > s->max_bytes) {
        entry_free(e);
        return NULL;
    }
    e->hash = hash;
    e->bytes = bytes;
    e->stored_ms = stored_ms;
    return e;
}

void cl_cache_put(cl_cache *c, const char *key, const char *value, int64_t stored_ms)
{
    uint64_t hash = hash_key(key);
    shard *s = shard_of(c, hash);
    entry *e = entry_new(c, s, key, hash, value, stored_ms);

    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    insert_locked(c, s, e);
    pthread_mutex_unlock(&s->mu);
}

void cl_cache_clear(cl_cache *c)
{
    for (int i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];

        pthread_mutex_lock(&s->mu);
        while (s->head != NULL) {
            drop(s, s->head);
        }
        s->generation++;
        pthread_mutex_unlock(&s->mu);
    }
}

void cl_cache_stats_get(cl_cache *c, cl_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->loads = atomic_load(&c->loads);
    out->waits = atomic_load(&c->waits);
    out->evictions = atomic_load(&c->evictions);
    out->refreshes = atomic_load(&c->refreshes);
    for (int i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];

        pthread_mutex_lock(&s->mu);
        out->entries += s->count;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
}

static flight *find_flight(shard *s, const char *key, uint64_t hash)
{
    for (flight *f = s->flights; f != NULL; f = f->next) {
        if (f->hash == hash && strcmp(f->key, key) == 0) {
            return f;
        }
    }
    return NULL;
}

static void flight_free(flight *f)
{
    pthread_cond_destroy(&f->done_cv);
    free(f->key);
    free(f->value);
    cl_cache_json_release(f->parsed);
    free(f);
}

static void unlink_flight(shard *s, flight *f)
{
    flight **p = &s->flights;

    while (*p != f) {
        p = &(*p)->next;
    }
    *p = f->next;
}

/*
 * The value of a kept entry or a finished load (s locked): a reference to parsed when the
 * caller takes one (want_parsed) and there is one, else a copy of text.
 */
static cl_status hand_out(const char *text, cl_cache_json *parsed, char **value,
                          cl_cache_json **want_parsed, cl_error *err)
{
    if (want_parsed != NULL && parsed != NULL) {
        *want_parsed = json_ref(parsed);
        return CL_OK;
    }
    *value = strdup(text);
    return *value != NULL ? CL_OK : cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
}

/* Waits (s locked) for another caller's load f; its outcome, or -1 to load alone. */
static int wait_flight(shard *s, flight *f, char **value, cl_cache_json **parsed, cl_status *st,
                       cl_error *err)
{
    int share = 1;

    f->waiters++;
    while (!f->done) {
        pthread_cond_wait(&f->done_cv, &s->mu);
    }
    *st = f->status;
    if (f->status != CL_OK) {
        if (err != NULL) {
            *err = f->err;
        }
    } else if (f->value == NULL) {
        share = -1;
    } else {
        *st = hand_out(f->value, f->parsed, value, parsed, err);
    }
    f->waiters--;
    if (f->waiters == 0) {
        flight_free(f);
    }
    return share;
}

/* Runs load for key as f's loader, then keeps and shares what it made. */
static cl_status run_load(cl_cache *c, shard *s, flight *f, uint64_t generation,
                          cl_cache_loader load, void *arg, char **value, cl_cache_json **parsed,
                          cl_error *err)
{
    char *text = NULL;
    int64_t stored_ms = cl_now_ms();
    int keep = 1;
    cl_status st;
    entry *e = NULL;

    atomic_fetch_add(&c->loads, 1);
    st = load(arg, &text, &stored_ms, &keep, err);
    if (st == CL_OK && keep) {
        e = entry_new(c, s, f->key, f->hash, text, stored_ms);
        f->value = strdup(text);
        f->parsed = e != NULL ? json_ref(e->parsed) : NULL;
        /* Its loader's caller takes it parsed too: a shared level's value is parsed once. */
        if (parsed != NULL && f->parsed != NULL) {
            *parsed = json_ref(f->parsed);
        }
    }
    pthread_mutex_lock(&s->mu);
    unlink_flight(s, f);
    /* A clearing since the load began: it may have read what the write replaced. */
    if (e != NULL && s->generation == generation) {
        insert_locked(c, s, e);
        e = NULL;
    }
    f->status = st;
    if (st != CL_OK && err != NULL) {
        f->err = *err;
    }
    f->stored_ms = stored_ms;
    f->done = true;
    pthread_cond_broadcast(&f->done_cv);
    if (f->waiters == 0) {
        flight_free(f);
    }
    pthread_mutex_unlock(&s->mu);
    if (e != NULL) {
        entry_free(e);
    }
    if (st == CL_OK && (parsed == NULL || *parsed == NULL)) {
        *value = text;
    } else {
        free(text);
    }
    return st;
}

/* cl_cache_fetch, handing out parsed values when parsed is not NULL. */
static cl_status fetch(cl_cache *c, const char *key, cl_cache_loader load, void *arg, char **value,
                       cl_cache_json **parsed, int *loaded, cl_error *err)
{
    uint64_t hash = hash_key(key);
    shard *s = shard_of(c, hash);
    int64_t ignored_ms = 0;
    int ignored_keep = 1;
    entry *e;
    flight *f;
    uint64_t generation;
    cl_status st = CL_OK;

    if (loaded != NULL) {
        *loaded = 0;
    }
    pthread_mutex_lock(&s->mu);
    e = lookup_locked(c, s, key, hash, cl_now_ms());
    if (e != NULL) {
        st = hand_out(e->value, e->parsed, value, parsed, err);
        pthread_mutex_unlock(&s->mu);
        count_lookup(c, true);
        return st;
    }
    count_lookup(c, false);
    f = find_flight(s, key, hash);
    if (f != NULL) {
        int share;

        atomic_fetch_add(&c->waits, 1);
        share = wait_flight(s, f, value, parsed, &st, err);
        pthread_mutex_unlock(&s->mu);
        if (share > 0) {
            return st;
        }
        /* The loader's answer was for it alone (a stale fallback): this caller asks itself. */
        if (loaded != NULL) {
            *loaded = 1;
        }
        return load(arg, value, &ignored_ms, &ignored_keep, err);
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL || cl_cond_init_monotonic(&f->done_cv) != 0) {
        pthread_mutex_unlock(&s->mu);
        free(f);
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    f->key = strdup(key);
    if (f->key == NULL) {
        pthread_mutex_unlock(&s->mu);
        flight_free(f);
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    f->hash = hash;
    f->next = s->flights;
    s->flights = f;
    generation = s->generation;
    pthread_mutex_unlock(&s->mu);
    if (loaded != NULL) {
        *loaded = 1;
    }
    return run_load(c, s, f, generation, load, arg, value, parsed, err);
}

cl_status cl_cache_fetch(cl_cache *c, const char *key, cl_cache_loader load, void *arg,
                         char **value, int *loaded, cl_error *err)
{
    return fetch(c, key, load, arg, value, NULL, loaded, err);
}

cl_status cl_cache_fetch_json(cl_cache *c, const char *key, cl_cache_loader load, void *arg,
                              char **value, cl_cache_json **parsed, int *loaded, cl_error *err)
{
    *value = NULL;
    *parsed = NULL;
    return fetch(c, key, load, arg, value, parsed, loaded, err);
}

/*
 * The keys of s's entries read since they were stored and stored at or before due_ms
 * (malloc'd, each and the array; *n of them), their marks cleared, and s's generation.
 * NULL with *n 0 when there is none or memory runs out: the entries then expire as usual.
 */
static char **due_keys(shard *s, int64_t due_ms, size_t *n, uint64_t *generation)
{
    char **keys = NULL;
    size_t cap = 0;

    *n = 0;
    pthread_mutex_lock(&s->mu);
    *generation = s->generation;
    for (entry *e = s->head; e != NULL; e = e->next) {
        char *key;

        if (!e->read || e->stored_ms > due_ms) {
            continue;
        }
        if (*n == cap) {
            size_t more = cap == 0 ? 8 : cap * 2;
            char **grown = realloc(keys, more * sizeof(*keys));

            if (grown == NULL) {
                break;
            }
            keys = grown;
            cap = more;
        }
        key = strdup(e->key);
        if (key == NULL) {
            break;
        }
        keys[(*n)++] = key;
        e->read = false;
    }
    pthread_mutex_unlock(&s->mu);
    return keys;
}

int cl_cache_refresh(cl_cache *c, int64_t now_ms, int64_t min_age_ms, cl_cache_reloader load,
                     void *arg)
{
    int refreshed = 0;

    drain_dead(c);
    for (int i = 0; i < c->nshards; i++) {
        shard *s = &c->shards[i];
        uint64_t generation;
        size_t n;
        char **keys = due_keys(s, now_ms - min_age_ms, &n, &generation);

        for (size_t k = 0; k < n; k++) {
            char *text = NULL;
            int64_t stored_ms = cl_now_ms();
            int keep = 1;
            cl_error err = {0};
            entry *e = NULL;

            if (load(arg, keys[k], &text, &stored_ms, &keep, &err) == CL_OK && keep) {
                e = entry_new(c, s, keys[k], hash_key(keys[k]), text, stored_ms);
            }
            if (e != NULL) {
                pthread_mutex_lock(&s->mu);
                /* As a load's: a clearing since it began refuses what it read. */
                if (s->generation == generation) {
                    insert_locked(c, s, e);
                    e = NULL;
                    refreshed++;
                }
                pthread_mutex_unlock(&s->mu);
                if (e != NULL) {
                    entry_free(e);
                }
            }
            free(text);
            free(keys[k]);
        }
        free(keys);
    }
    atomic_fetch_add(&c->refreshes, refreshed);
    return refreshed;
}
