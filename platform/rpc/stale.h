/*
 * The remote binding's stale fallback (ADR 0033): the last good answers of the operations
 * declared CL_OP_STALE_OK, kept per target so that while the target is unavailable a
 * caller may get the last answer instead of an error. Bounded in entries, bytes and age;
 * least recently used entries go first. Thread-safe: it takes its own lock.
 */
#ifndef CLEAVE_RPC_STALE_H
#define CLEAVE_RPC_STALE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cl__stale_cache cl__stale_cache;

typedef struct cl__stale_options {
    int max_entries;    /* 0 or less: no cache (cl__stale_new returns NULL) */
    size_t max_bytes;   /* keys and answers together */
    int64_t max_age_ms; /* an answer older than this is never served */
} cl__stale_options;

/* A new cache owned by the caller, or NULL when disabled or out of memory. */
cl__stale_cache *cl__stale_new(const cl__stale_options *opt);
/* NULL is a no-op. */
void cl__stale_free(cl__stale_cache *c);
/*
 * Remembers answer (a JSON text, copied) as the last good answer of op for the request
 * req (its JSON text) at time now_ms, evicting the least recently used entries to stay
 * within the bounds. An entry larger than the byte bound is not kept. c may be NULL.
 */
void cl__stale_put(cl__stale_cache *c, const char *op, const char *req, const char *answer,
                   int64_t now_ms);
/*
 * The last good answer of op for req when one younger than the age bound is kept: 1, with
 * *answer a new string (free) and *age_ms its age; else 0 (and an expired entry is dropped).
 */
int cl__stale_get(cl__stale_cache *c, const char *op, const char *req, int64_t now_ms,
                  char **answer, int64_t *age_ms);

#endif /* CLEAVE_RPC_STALE_H */
