/*
 * cleave/cache.h - the read cache (ADR 0042): an in-process LRU with a time to live, and
 * the caching decorator of a module's operations table built on it.
 *
 * The LRU (cl_cache) maps a key to a text (a JSON answer), bounded in entries and in bytes
 * (keys and values), each entry served for at most ttl_ms after it was loaded. It is
 * thread-safe, split into shards that each take their own lock. A miss is loaded once per
 * key however many callers ask at the same time (cl_cache_fetch): the others wait for that
 * one load and share its outcome, so that an expired hot key does not send every waiting
 * request to the source at once. Clearing the cache also refuses the results of the loads
 * in flight, which may have read the source before the write that caused the clearing.
 *
 * The decorator (CL_CACHED_DEFINE) is one more binding of a module's table, like the
 * remote one (cleave/rpc.h): its instance, a cl_cached, holds the table it wraps (local or
 * remote). Operations declared CL_OP_CACHED are answered from the cache; every other
 * operation passes through, and each successful write (an operation not CL_OP_READ)
 * clears the module's cached answers here and, through the shared level, on every host.
 */
#ifndef CLEAVE_CACHE_H
#define CLEAVE_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleave/module.h"
#include "cleave/status.h"

/* --- the LRU ------------------------------------------------------------------------ */

typedef struct cl_cache cl_cache;

typedef struct cl_cache_options {
    /* The cache's name in metrics (cleave_cache_requests_total{cache=...}); NULL: none. */
    const char *name;
    int max_entries;  /* at least 1 */
    size_t max_bytes; /* keys and values together; at least 1 */
    int64_t ttl_ms;   /* an entry older than this is never served; at least 1 */
    /*
     * Also keep each value parsed as JSON, for cl_cache_fetch_json: a hit then costs no
     * parse. The byte bound then counts an estimate of the parsed value's memory too.
     */
    bool parse_json;
    /*
     * With parse_json: a parsed value's last release hands it back to the cache, and the
     * next cl_cache_refresh (or cl_cache_free) frees it, on the refreshing thread, rather
     * than the reader that released it (ADR 0064). Every reference must then be released
     * before the cache is freed.
     */
    bool free_on_refresh;
} cl_cache_options;

/* What a cache did since it was made. */
typedef struct cl_cache_stats {
    int64_t hits;
    int64_t misses;    /* lookups that found nothing young enough */
    int64_t loads;     /* loads run by cl_cache_fetch (a miss that others waited on is one) */
    int64_t waits;     /* callers that waited for another's load instead of loading */
    int64_t evictions; /* entries dropped to stay within the bounds */
    int64_t refreshes; /* entries reloaded before they expired (cl_cache_refresh) */
    int entries;
    size_t bytes;
} cl_cache_stats;

/* A new cache owned by the caller (cl_cache_free); NULL for a bad option or out of memory. */
cl_cache *cl_cache_new(const cl_cache_options *opt);
/* NULL is a no-op. No call may be in progress. */
void cl_cache_free(cl_cache *c);

/*
 * The value of key when an entry younger than the TTL is kept at now_ms: 1, with *value a
 * new string (the caller frees it) and *age_ms its age (may be NULL); else 0 (an expired
 * entry is dropped). Counts a hit or a miss.
 */
int cl_cache_get(cl_cache *c, const char *key, int64_t now_ms, char **value, int64_t *age_ms);
/*
 * Keeps a copy of value under key, loaded at stored_ms (now, or earlier for a value that
 * had aged elsewhere), evicting the least recently used entries of its shard to stay
 * within the bounds. A value larger than a shard's share of the byte bound is not kept.
 */
void cl_cache_put(cl_cache *c, const char *key, const char *value, int64_t stored_ms);
/* Drops every entry and refuses the results of the loads in flight. */
void cl_cache_clear(cl_cache *c);
void cl_cache_stats_get(cl_cache *c, cl_cache_stats *out);

/*
 * A load of one missing key (cl_cache_fetch): on CL_OK *value is a new string (the cache
 * takes it) and *stored_ms when it was loaded (preset to now; a value that aged elsewhere
 * may set it earlier); *keep 0 serves it to this caller alone without caching it or sharing
 * it. On failure err says why and *value is left NULL.
 */
typedef cl_status (*cl_cache_loader)(void *arg, char **value, int64_t *stored_ms, int *keep,
                                     cl_error *err);

/*
 * The value of key (*value, a new string the caller frees): from the cache when kept, else
 * from load(arg). One caller per key loads at a time; the others wait for it and get its
 * value or its error (an answer it did not keep, they load themselves). *loaded is set to
 * 1 when this caller's own load made the value (may be NULL). The loader's statuses.
 */
cl_status cl_cache_fetch(cl_cache *c, const char *key, cl_cache_loader load, void *arg,
                         char **value, int *loaded, cl_error *err);

/*
 * A parsed value shared by reference between the cache and its readers, made once when
 * the value is kept. It is read-only: no caller may change the JSON it holds (take a
 * json_deep_copy to change one). Its own count is atomic, unlike jansson's reference
 * counts, whose json_decref reads the count without an atomic load.
 */
typedef struct cl_cache_json cl_cache_json;

/* The JSON of v, valid until v is released. */
const json_t *cl_cache_json_value(const cl_cache_json *v);
/*
 * The text v was parsed from (*len bytes, then a NUL), valid until v is released: the bytes
 * the value was kept as, which a caller may send on as they are.
 */
const char *cl_cache_json_text(const cl_cache_json *v, size_t *len);
/*
 * Drops the caller's reference; NULL is a no-op. The last frees v, or, from a cache made
 * with free_on_refresh, hands it back to be freed by its refresher.
 */
void cl_cache_json_release(cl_cache_json *v);

/*
 * cl_cache_fetch for a cache made with parse_json: on CL_OK exactly one of *parsed (a
 * new reference the caller releases: a value the cache keeps parsed, never parsed again)
 * and *value (a new string the caller frees: a value not kept, as too large, not JSON or
 * served to its loader alone) is set; the other is NULL.
 */
cl_status cl_cache_fetch_json(cl_cache *c, const char *key, cl_cache_loader load, void *arg,
                              char **value, cl_cache_json **parsed, int *loaded, cl_error *err);

/*
 * A reload of key for cl_cache_refresh: as a cl_cache_loader, with the key to load. It
 * runs on the refreshing thread, with no reader waiting for it.
 */
typedef cl_status (*cl_cache_reloader)(void *arg, const char *key, char **value, int64_t *stored_ms,
                                       int *keep, cl_error *err);

/*
 * Reloads with load, on the caller's thread, every entry that was served since it was
 * stored and is at least min_age_ms old at now_ms, and keeps what it loads as a fresh entry
 * (unless a clearing came in between, as for a load). A key that is read all the time is
 * then reloaded here before it expires, never by a reader: the memory each reload takes
 * and frees is one thread's (ADR 0064). An entry whose reload fails or is not kept expires
 * as usual. Returns how many entries were reloaded.
 */
int cl_cache_refresh(cl_cache *c, int64_t now_ms, int64_t min_age_ms, cl_cache_reloader load,
                     void *arg);

/* --- the shared level (a Redis server, cleave/cache_redis.h) ------------------------ */

/*
 * A cache every host of a deployment shares, behind the in-process one: a versioned table
 * (it only grows at the end; no slot is NULL). scope is a module's name; its entries are
 * all dropped together by invalidate. A failing server is a miss, never an error: the
 * decorator then reads the source.
 */
typedef struct cl_cache_shared {
    int version; /* 1 */
    /*
     * The scope's current generation, to pass to get and set: entries written under an
     * older one are never read again.
     */
    int64_t (*generation)(void *self, const char *scope);
    /*
     * 1 with *value (malloc'd) and *age_ms (how long ago it was set with ttl_ms) when kept,
     * 0 when not or on failure.
     */
    int (*get)(void *self, const char *scope, int64_t gen, const char *key, int64_t ttl_ms,
               char **value, int64_t *age_ms);
    void (*set)(void *self, const char *scope, int64_t gen, const char *key, const char *value,
                int64_t ttl_ms);
    /* Starts a new generation of scope and tells every host (their on_invalidate runs). */
    void (*invalidate)(void *self, const char *scope);
} cl_cache_shared;

/*
 * A shared level's client library, registered as the extension of kind "cache"
 * (cleave/extension.h; cleave_redis's is "redis"), so that a binary without it links
 * neither it nor its third-party client. open connects to url (or keeps trying) and calls
 * invalidated(arg, scope) on its own thread whenever scope was invalidated by any host;
 * CL_INVALID naming setting for a bad URL. close (NULL is a no-op) stops those calls.
 */
typedef struct cl_cache_shared_server {
    int version; /* 1 */
    cl_status (*open)(const char *url, void (*invalidated)(void *arg, const char *scope), void *arg,
                      void **self, cl_error *err);
    void (*close)(void *self);
    const cl_cache_shared *ops;
} cl_cache_shared_server;

/* --- the caching decorator ---------------------------------------------------------- */

typedef struct cl_cached cl_cached;

typedef struct cl_cached_options {
    int max_entries;
    size_t max_bytes;
    int64_t ttl_ms; /* 0 or less: nothing is cached, every call passes through */
} cl_cached_options;

/*
 * A decorator of inner (borrowed, kept) for the module api, whose cached_ops table is the
 * decorator's: {api->cached_ops, *out} is a cl_handle like any other. Owned by the caller.
 * CL_INVALID when api has no cached operations; CL_INTERNAL when out of memory.
 */
cl_status cl_cached_new(const cl_module_api *api, const cl_handle *inner,
                        const cl_cached_options *opt, cl_cached **out, cl_error *err);
/*
 * Stops d's refresher (NULL is a no-op): with a TTL of 2 s or more, a thread of d's own
 * reloads the answers being read before they expire, calling inner (ADR 0064). Call it
 * before inner stops; d still serves calls, loading them on the caller's thread.
 */
void cl_cached_stop(cl_cached *d);
/* Stops d's refresher if it runs and frees d; NULL is a no-op. */
void cl_cached_free(cl_cached *d);
/*
 * Puts the shared level shared (borrowed, with its instance self; both must outlive d)
 * behind d's in-process cache. Before the first call of d; a no-op when caching is off.
 */
void cl_cached_share(cl_cached *d, const cl_cache_shared *shared, void *self);
/* Drops the cached answers (another host's write, told by the shared level). */
void cl_cached_invalidate(cl_cached *d);
/* Its in-process cache's figures. */
void cl_cached_stats(cl_cached *d, cl_cache_stats *out);

/* The decorator's call of op: the body of every slot of its table. */
cl_status cl_cached_call(cl_cached *d, const cl_op *op, cl_ctx *ctx, const void *req, void *resp);

#define CL__CACHED_INDEX(M, name, Req, Resp, flags) M##__cached_index_##name,
#define CL__CACHED_STUB(M, name, Req, Resp, flags)                                                 \
    static cl_status M##__cached_##name(void *self, cl_ctx *ctx, const Req *req, Resp *resp)       \
    {                                                                                              \
        return cl_cached_call((cl_cached *)self, &M##_op_list[M##__cached_index_##name], ctx, req, \
                              resp);                                                               \
    }
#define CL__CACHED_SLOT(M, name, Req, Resp, flags) .name = M##__cached_##name,

/*
 * In one .c file of the module's interface library: the caching decorator of M's table,
 * `const M_ops M_cached_ops`, whose instance is a cl_cached.
 */
#define CL_CACHED_DEFINE(M, LIST, VERSION)                                                         \
    enum { LIST(CL__CACHED_INDEX, M) M##__cached_index_count };                                    \
    LIST(CL__CACHED_STUB, M)                                                                       \
    const M##_ops M##_cached_ops = {.version = VERSION, LIST(CL__CACHED_SLOT, M)};

#endif /* CLEAVE_CACHE_H */
