/* The cache of verified tokens (cleave/jwt.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth_internal.h"
#include "cleave/util.h"

/*
 * The table is split into stripes, each behind its own read-write lock, and chosen by the
 * first bytes of the token's hash, so that threads verifying different tokens rarely wait
 * on each other, and lookups, which change nothing in a slot, share the lock: under load
 * most requests bear a few tokens, and with a mutex every one of them queued on one stripe
 * (a futex wait whenever a holder was preempted). A token may sit in any of PROBES slots from its
 * home slot; when they are all taken by live entries, the one that expires first is replaced.
 * Entries are never removed but overwritten, so a lookup scans the same PROBES slots a put did.
 *
 * A slot's claims are immutable and counted by reference (with an atomic count of ours:
 * jansson's json_decref reads its count without an atomic load, which ThreadSanitizer
 * reports), so that a hit takes a reference under the lock and either hands it out
 * (cl_jwt_verify_shared: no allocation) or copies the claims after releasing it.
 */
#define STRIPES 16
#define PROBES  8

/* Claims shared by a slot and its hits; never changed once made. */
struct cl_jwt_claims {
    atomic_int refs;
    json_t *json; /* the only jansson reference */
};
typedef struct cl_jwt_claims shared_claims;

typedef struct cache_slot {
    unsigned char hash[CL_SHA256_SIZE];
    int64_t exp;
    shared_claims *claims; /* NULL: the slot is free */
} cache_slot;

typedef struct cache_stripe {
    pthread_rwlock_t lock;
    cache_slot *slots;
    size_t size;
} cache_stripe;

struct cl_jwt_cache {
    cache_stripe stripes[STRIPES];
    size_t nstripes;
    uint64_t id;                     /* unique in the process: a memo names its cache by it */
    atomic_uint_fast64_t generation; /* counts clears: a memo from before one is void */
};

/* Caches' ids, never reused (an address may be, after a free). */
static atomic_uint_fast64_t next_cache_id = 1;

/*
 * Each thread's last hit, so that the next request bearing the same token (a client on a
 * kept-alive connection stays on one worker) is found by comparing the token with the one
 * remembered, not by hashing it: SHA-256 of a token was most of a hit's cost. The memo
 * holds a reference to the claims and is void after a clear of its cache (generation),
 * past the token's exp, or when the token differs. Freed with the thread.
 */
typedef struct thread_memo {
    uint64_t cache_id;
    uint64_t generation;
    int64_t exp;
    shared_claims *claims; /* a reference, or NULL: nothing remembered */
    char *token;
    size_t len;
    size_t cap;
} thread_memo;

static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;
static bool memo_ready;

static void claims_release(shared_claims *c)
{
    /* acq_rel: every read of it happens before the one that frees it. */
    if (c != NULL && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        json_decref(c->json);
        free(c);
    }
}

/* Shares claims (stolen), or NULL (claims released) when out of memory. */
static shared_claims *claims_share(json_t *claims)
{
    shared_claims *c = claims != NULL ? malloc(sizeof(*c)) : NULL;

    if (c == NULL) {
        json_decref(claims);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->json = claims;
    return c;
}

static void memo_free(void *p)
{
    thread_memo *m = p;

    claims_release(m->claims);
    free(m->token);
    free(m);
}

static void memo_init(void)
{
    memo_ready = pthread_key_create(&memo_key, memo_free) == 0;
}

/* The thread's memo, or NULL when out of memory (a lookup then hashes). */
static thread_memo *memo_get(void)
{
    thread_memo *m = NULL;

    if (pthread_once(&memo_once, memo_init) != 0 || !memo_ready) {
        return NULL;
    }
    m = pthread_getspecific(memo_key);
    if (m == NULL) {
        m = calloc(1, sizeof(*m));
        if (m != NULL && pthread_setspecific(memo_key, m) != 0) {
            free(m);
            m = NULL;
        }
    }
    return m;
}

/* A new reference to the memo's claims when they are token's in c, still valid. */
static shared_claims *memo_hit(const thread_memo *m, const cl_jwt_cache *c, const char *token,
                               size_t len, uint64_t generation, int64_t now_s)
{
    if (m == NULL || m->claims == NULL || m->cache_id != c->id || m->generation != generation ||
        m->exp <= now_s || m->len != len || !cl_secret_equal(m->token, len, token, len)) {
        return NULL;
    }
    atomic_fetch_add_explicit(&m->claims->refs, 1, memory_order_relaxed);
    return m->claims;
}

/* Remembers claims (a reference of the memo's own) as token's in c, found at generation. */
static void memo_keep(thread_memo *m, const cl_jwt_cache *c, const char *token, size_t len,
                      uint64_t generation, shared_claims *claims, int64_t exp)
{
    if (m == NULL) {
        return;
    }
    if (m->cap < len + 1) {
        char *grown = realloc(m->token, len + 1);

        if (grown == NULL) {
            return;
        }
        m->token = grown;
        m->cap = len + 1;
    }
    claims_release(m->claims);
    atomic_fetch_add_explicit(&claims->refs, 1, memory_order_relaxed);
    m->claims = claims;
    memcpy(m->token, token, len);
    m->len = len;
    m->cache_id = c->id;
    m->generation = generation;
    m->exp = exp;
}

const json_t *cl_jwt_claims_json(const cl_jwt_claims *c)
{
    return c->json;
}

void cl_jwt_claims_release(cl_jwt_claims *c)
{
    claims_release(c);
}

cl_jwt_cache *cl_jwt_cache_new(size_t capacity)
{
    cl_jwt_cache *c = NULL;
    size_t n = capacity < STRIPES ? capacity : STRIPES;

    if (capacity == 0 || capacity > SIZE_MAX / sizeof(cache_slot)) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->id = atomic_fetch_add(&next_cache_id, 1);
    atomic_init(&c->generation, 0);
    /* capacity is split exactly, so that the cache never holds more than it was given. */
    for (size_t i = 0; i < n; i++) {
        cache_stripe *s = &c->stripes[i];

        /* The slots come with the stripe's first token (insert): see slots_of. */
        s->size = capacity / n + (i < capacity % n ? 1 : 0);
        if (pthread_rwlock_init(&s->lock, NULL) != 0) {
            s->size = 0;
            cl_jwt_cache_free(c);
            return NULL;
        }
        c->nstripes = i + 1;
    }
    return c;
}

/*
 * How many slots s has: none until its first token. A process makes a cache per audience
 * it accepts (seven in the monolith, 4096 tokens each), and most of them never see a token:
 * their slots, written at start, were 1.4 MB of its idle memory (ADR 0047). Under s's lock.
 */
static size_t slots_of(const cache_stripe *s)
{
    return s->slots != NULL ? s->size : 0;
}

/* The stripe and home slot of a hash. */
static cache_stripe *locate(cl_jwt_cache *c, const unsigned char *hash, size_t *home)
{
    uint32_t top =
        (uint32_t)hash[0] << 24 | (uint32_t)hash[1] << 16 | (uint32_t)hash[2] << 8 | hash[3];
    uint64_t low = 0;
    cache_stripe *s = &c->stripes[top % c->nstripes];

    for (size_t i = 4; i < 12; i++) {
        low = low << 8 | hash[i];
    }
    *home = (size_t)(low % s->size);
    return s;
}

/* A new reference to token's unexpired claims at now_s, or NULL. */
static shared_claims *lookup(cl_jwt_cache *c, const char *token, int64_t now_s)
{
    unsigned char hash[CL_SHA256_SIZE];
    shared_claims *found = NULL;
    thread_memo *memo = NULL;
    uint64_t generation;
    int64_t exp = 0;
    size_t len;
    size_t home = 0;
    cache_stripe *s = NULL;

    if (c == NULL || token == NULL) {
        return NULL;
    }
    /* Read before the slots: a clear that empties them afterwards voids what is kept here. */
    generation = atomic_load_explicit(&c->generation, memory_order_acquire);
    len = strlen(token);
    memo = memo_get();
    found = memo_hit(memo, c, token, len, generation, now_s);
    if (found != NULL) {
        return found;
    }
    cl_sha256(token, strlen(token), hash);
    s = locate(c, hash, &home);
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < PROBES && i < slots_of(s); i++) {
        const cache_slot *slot = &s->slots[(home + i) % s->size];

        if (slot->claims != NULL && slot->exp > now_s &&
            cl_secret_equal(slot->hash, sizeof(hash), hash, sizeof(hash))) {
            found = slot->claims;
            exp = slot->exp;
            atomic_fetch_add_explicit(&found->refs, 1, memory_order_relaxed);
            break;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    if (found != NULL) {
        memo_keep(memo, c, token, len, generation, found, exp);
    }
    return found;
}

json_t *cl_jwt_cache_get(cl_jwt_cache *c, const char *token, int64_t now_s)
{
    shared_claims *found = lookup(c, token, now_s);
    json_t *copy = NULL;

    if (found != NULL) {
        /* A copy, never the cached object: the caller may change its claims as it likes. */
        copy = json_deep_copy(found->json);
        claims_release(found);
    }
    return copy;
}

/* Keeps a reference to shared (the caller keeps its own) for token until exp_s. */
static void insert(cl_jwt_cache *c, const char *token, shared_claims *shared, int64_t exp_s)
{
    unsigned char hash[CL_SHA256_SIZE];
    shared_claims *old = NULL;
    cache_slot *victim = NULL, *same = NULL, *free_slot = NULL, *soonest = NULL;
    size_t home = 0;
    cache_stripe *s = NULL;
    int64_t now = (int64_t)time(NULL);

    cl_sha256(token, strlen(token), hash);
    s = locate(c, hash, &home);
    pthread_rwlock_wrlock(&s->lock);
    if (s->slots == NULL) {
        s->slots = calloc(s->size, sizeof(cache_slot));
    }
    if (s->slots == NULL) {
        /* Out of memory: the token is not kept, as if it had been replaced at once. */
        pthread_rwlock_unlock(&s->lock);
        return;
    }
    atomic_fetch_add_explicit(&shared->refs, 1, memory_order_relaxed);
    /* The home slot is live or free: either way a valid victim for the comparisons below. */
    soonest = &s->slots[home];
    for (size_t i = 0; i < PROBES && i < s->size; i++) {
        cache_slot *slot = &s->slots[(home + i) % s->size];

        if (slot->claims != NULL && memcmp(slot->hash, hash, sizeof(hash)) == 0) {
            same = slot;
            break;
        }
        if (slot->claims == NULL || slot->exp <= now) {
            free_slot = free_slot == NULL ? slot : free_slot;
        } else if (slot->exp < soonest->exp) {
            soonest = slot;
        }
    }
    /* The token's own slot, else a free or dead one, else the live one that dies first. */
    victim = same != NULL ? same : (free_slot != NULL ? free_slot : soonest);
    old = victim->claims;
    memcpy(victim->hash, hash, sizeof(hash));
    victim->exp = exp_s;
    victim->claims = shared;
    pthread_rwlock_unlock(&s->lock);
    claims_release(old);
}

void cl_jwt_cache_put(cl_jwt_cache *c, const char *token, json_t *claims, int64_t exp_s)
{
    shared_claims *copy = NULL;

    if (c == NULL || token == NULL || claims == NULL) {
        return;
    }
    /* A copy: the caller may change its object afterwards. Only the cache refers to it. */
    copy = claims_share(json_deep_copy(claims));
    if (copy != NULL) {
        insert(c, token, copy, exp_s);
        claims_release(copy);
    }
}

void cl_jwt_cache_clear(cl_jwt_cache *c)
{
    for (size_t i = 0; c != NULL && i < c->nstripes; i++) {
        cache_stripe *s = &c->stripes[i];

        pthread_rwlock_wrlock(&s->lock);
        for (size_t j = 0; j < slots_of(s); j++) {
            claims_release(s->slots[j].claims);
            s->slots[j].claims = NULL;
        }
        pthread_rwlock_unlock(&s->lock);
    }
    /* After the slots are empty, so that no memo made from one of them outlives this. */
    if (c != NULL) {
        atomic_fetch_add_explicit(&c->generation, 1, memory_order_acq_rel);
    }
}

size_t cl_jwt_cache_count(cl_jwt_cache *c, int64_t now_s)
{
    size_t n = 0;

    for (size_t i = 0; c != NULL && i < c->nstripes; i++) {
        cache_stripe *s = &c->stripes[i];

        pthread_rwlock_rdlock(&s->lock);
        for (size_t j = 0; j < slots_of(s); j++) {
            n += s->slots[j].claims != NULL && s->slots[j].exp > now_s ? 1 : 0;
        }
        pthread_rwlock_unlock(&s->lock);
    }
    return n;
}

void cl_jwt_cache_free(cl_jwt_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->nstripes; i++) {
        cache_stripe *s = &c->stripes[i];

        for (size_t j = 0; j < slots_of(s); j++) {
            claims_release(s->slots[j].claims);
        }
        free(s->slots);
        pthread_rwlock_destroy(&s->lock);
    }
    free(c);
}

cl_status cl_jwt_verify_shared(cl_jwt_cache *c, const char *token, const cl_jwks *keys,
                               const cl_jwt_policy *p, cl_jwt_claims **claims, cl_error *err)
{
    int64_t now = p != NULL && p->now_s != 0 ? p->now_s : (int64_t)time(NULL);
    shared_claims *shared = NULL;
    json_t *fresh = NULL;
    const json_t *exp = NULL;
    int64_t exp_s;
    cl_status st = CL_OK;

    if (token != NULL && strnlen(token, CL_JWT_MAX_LEN + 1) <= CL_JWT_MAX_LEN) {
        shared = lookup(c, token, now);
    }
    if (shared != NULL) {
        *claims = shared;
        return CL_OK;
    }
    st = cl_jwt_verify(token, keys, p, &fresh, err);
    if (st != CL_OK) {
        return st;
    }
    /* Verification has made sure exp is there and a number. */
    exp = json_object_get(fresh, "exp");
    exp_s = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : (int64_t)json_real_value(exp);
    shared = claims_share(fresh);
    if (shared == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    /* cl_jwt_verify refuses a NULL token; the analyzer cannot see it. */
    if (c != NULL && token != NULL) {
        insert(c, token, shared, exp_s);
    }
    *claims = shared;
    return CL_OK;
}

cl_status cl_jwt_verify_cached(cl_jwt_cache *c, const char *token, const cl_jwks *keys,
                               const cl_jwt_policy *p, json_t **claims, cl_error *err)
{
    shared_claims *shared = NULL;
    json_t *copy = NULL;
    cl_status st = cl_jwt_verify_shared(c, token, keys, p, &shared, err);

    if (st != CL_OK) {
        return st;
    }
    /* The caller's own claims, which it may change: never the cached object. */
    copy = json_deep_copy(shared->json);
    claims_release(shared);
    if (copy == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    *claims = copy;
    return CL_OK;
}
