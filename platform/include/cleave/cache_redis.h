/*
 * cleave/cache_redis.h - the read cache's shared level on a Redis server (ADR 0042), with
 * hiredis: a cl_cache_shared (cleave/cache.h) whose instance is a cl_redis_cache.
 *
 * Entries live under "cleave:cache:<scope>:<generation>:<key>" with the cache's TTL. An
 * invalidation of a scope increments "cleave:cache:<scope>:gen" and publishes
 * "<scope> <generation>" on the channel "cleave:cache:invalidate"; every host's subscriber
 * thread then moves to that generation and calls its invalidated callback, which clears
 * the host's in-process cache. A subscriber that (re)connects calls it for every scope it
 * knows, since it may have missed messages meanwhile.
 *
 * A server that cannot be reached is never an error to a caller: reads miss, writes and
 * invalidations are dropped (the TTL then bounds staleness), each failure is counted in
 * cleave_cache_shared_requests_total{result="error"}, and the loss and the recovery of the
 * server are logged once each. The client reconnects at most once a second.
 */
#ifndef CLEAVE_CACHE_REDIS_H
#define CLEAVE_CACHE_REDIS_H

#include "cleave/cache.h"

typedef struct cl_redis_cache cl_redis_cache;

/* Called on the subscriber's thread when another host (or this one) invalidated scope. */
typedef void (*cl_redis_invalidated)(void *arg, const char *scope);

/*
 * A client of the server at url, "redis://host[:port]" (port 6379 by default), that calls
 * invalidated(arg, scope) as described above; it starts the subscriber thread. It does not
 * wait for the server: one that is down is retried. CL_INVALID naming CLEAVE_REDIS_URL for
 * another form of URL. Owned by the caller.
 */
cl_status cl_redis_cache_new(const char *url, cl_redis_invalidated invalidated, void *arg,
                             cl_redis_cache **out, cl_error *err);
/* Stops the subscriber and closes the connections. NULL is a no-op. */
void cl_redis_cache_free(cl_redis_cache *r);

/* The shared-level table, for cl_cached_options.shared with the client as shared_self. */
extern const cl_cache_shared cl_redis_cache_ops;

#endif /* CLEAVE_CACHE_REDIS_H */
