/*
 * The stale fallback's cache (stale.h): the platform's LRU (cleave/cache.h) keyed by
 * "<op>\n<request>", whose time to live is the age bound, unnamed so that its lookups do
 * not count as read-cache hits and misses in the metrics.
 */
#include "stale.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleave/cache.h"

struct cl__stale_cache {
    cl_cache *lru;
};

static char *make_key(const char *op, const char *req)
{
    size_t size = strlen(op) + strlen(req) + 2;
    char *key = malloc(size);

    if (key != NULL) {
        snprintf(key, size, "%s\n%s", op, req);
    }
    return key;
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
    /* An answer exactly max_age_ms old is still served: the LRU serves ages below its TTL. */
    c->lru = cl_cache_new(&(cl_cache_options){.max_entries = opt->max_entries,
                                              .max_bytes = opt->max_bytes,
                                              .ttl_ms = opt->max_age_ms + 1});
    if (c->lru == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void cl__stale_free(cl__stale_cache *c)
{
    if (c != NULL) {
        cl_cache_free(c->lru);
        free(c);
    }
}

void cl__stale_put(cl__stale_cache *c, const char *op, const char *req, const char *answer,
                   int64_t now_ms)
{
    char *key;

    if (c == NULL) {
        return;
    }
    key = make_key(op, req);
    if (key != NULL) {
        cl_cache_put(c->lru, key, answer, now_ms);
    }
    free(key);
}

int cl__stale_get(cl__stale_cache *c, const char *op, const char *req, int64_t now_ms,
                  char **answer, int64_t *age_ms)
{
    char *key;
    int found = 0;

    if (c == NULL) {
        return 0;
    }
    key = make_key(op, req);
    if (key != NULL) {
        found = cl_cache_get(c->lru, key, now_ms, answer, age_ms);
    }
    free(key);
    return found;
}
