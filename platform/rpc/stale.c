/*
 * The stale fallback's cache (stale.h): a doubly linked list in recency order, the most
 * recent first. Lookups scan it comparing a 64-bit hash before the key: the list is
 * bounded (a thousand entries by default) and a scan of hashes costs about a microsecond,
 * less than the network call it stands beside; a hash table can come if the bound grows.
 */
#include "stale.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stale_entry {
    struct stale_entry *prev;
    struct stale_entry *next;
    uint64_t hash;
    char *key; /* "<op>\n<request>" */
    char *answer;
    size_t bytes; /* key and answer */
    int64_t stored_ms;
} stale_entry;

struct cl__stale_cache {
    pthread_mutex_t mu;
    cl__stale_options opt;
    stale_entry *head; /* most recently used */
    stale_entry *tail;
    int count;
    size_t bytes;
};

/* FNV-1a: cheap, and only a filter before the comparison of whole keys. */
static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static char *make_key(const char *op, const char *req)
{
    size_t olen = strlen(op);
    size_t rlen = strlen(req);
    char *key = malloc(olen + rlen + 2);

    if (key != NULL) {
        snprintf(key, olen + rlen + 2, "%s\n%s", op, req);
    }
    return key;
}

static void unlink_entry(cl__stale_cache *c, stale_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        c->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        c->tail = e->prev;
    }
    e->prev = NULL;
    e->next = NULL;
}

static void push_front(cl__stale_cache *c, stale_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head != NULL) {
        c->head->prev = e;
    }
    c->head = e;
    if (c->tail == NULL) {
        c->tail = e;
    }
}

static void drop(cl__stale_cache *c, stale_entry *e)
{
    unlink_entry(c, e);
    c->count--;
    c->bytes -= e->bytes;
    free(e->key);
    free(e->answer);
    free(e);
}

static stale_entry *find(cl__stale_cache *c, const char *key, uint64_t hash)
{
    for (stale_entry *e = c->head; e != NULL; e = e->next) {
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            return e;
        }
    }
    return NULL;
}

cl__stale_cache *cl__stale_new(const cl__stale_options *opt)
{
    cl__stale_cache *c;

    if (opt == NULL || opt->max_entries <= 0 || opt->max_bytes == 0 || opt->max_age_ms <= 0) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->opt = *opt;
    return c;
}

void cl__stale_free(cl__stale_cache *c)
{
    stale_entry *e;

    if (c == NULL) {
        return;
    }
    e = c->head;
    while (e != NULL) {
        stale_entry *next = e->next;

        free(e->key);
        free(e->answer);
        free(e);
        e = next;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void cl__stale_put(cl__stale_cache *c, const char *op, const char *req, const char *answer,
                   int64_t now_ms)
{
    stale_entry *e;
    stale_entry *old;
    stale_entry *victim;
    char *key;
    size_t bytes;

    if (c == NULL) {
        return;
    }
    key = make_key(op, req);
    e = calloc(1, sizeof(*e));
    if (key == NULL || e == NULL) {
        goto fail;
    }
    bytes = strlen(key) + strlen(answer);
    if (bytes > c->opt.max_bytes) {
        goto fail;
    }
    e->answer = strdup(answer);
    if (e->answer == NULL) {
        goto fail;
    }
    e->key = key;
    e->hash = hash_key(key);
    e->bytes = bytes;
    e->stored_ms = now_ms;
    pthread_mutex_lock(&c->mu);
    old = find(c, key, e->hash);
    if (old != NULL) {
        drop(c, old);
    }
    victim = c->tail;
    while (victim != NULL &&
           (c->count + 1 > c->opt.max_entries || c->bytes + bytes > c->opt.max_bytes)) {
        stale_entry *prev = victim->prev;

        drop(c, victim);
        victim = prev;
    }
    push_front(c, e);
    c->count++;
    c->bytes += bytes;
    pthread_mutex_unlock(&c->mu);
    return;
fail:
    if (e != NULL) {
        free(e->answer);
    }
    free(e);
    free(key);
}

int cl__stale_get(cl__stale_cache *c, const char *op, const char *req, int64_t now_ms,
                  char **answer, int64_t *age_ms)
{
    stale_entry *e;
    char *key;
    int found = 0;

    if (c == NULL) {
        return 0;
    }
    key = make_key(op, req);
    if (key == NULL) {
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    e = find(c, key, hash_key(key));
    if (e != NULL && now_ms - e->stored_ms > c->opt.max_age_ms) {
        drop(c, e);
        e = NULL;
    }
    if (e != NULL) {
        *answer = strdup(e->answer);
        found = *answer != NULL;
        *age_ms = now_ms - e->stored_ms;
        unlink_entry(c, e);
        push_front(c, e);
    }
    pthread_mutex_unlock(&c->mu);
    free(key);
    return found;
}
