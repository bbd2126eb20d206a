/*
 * The read cache's shared level on Redis (cleave/cache_redis.h). Commands go over one
 * connection behind a mutex: each is one loopback or LAN round trip of a few small
 * values, and a pool can come when a measurement asks for it. Subscribing needs a
 * connection of its own, held by the subscriber thread in a blocking read; stopping
 * shuts its socket down, which ends the read.
 */
#include "cleave/cache_redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleave/extension.h"
#include "cleave/log.h"
#include "cleave/metrics.h"
#include "cleave/util.h"

#define CHANNEL      "cleave:cache:invalidate"
#define MAX_SCOPES   16
#define SCOPE_MAX    64
#define TIMEOUT_MS   250
#define RECONNECT_MS 1000
#define GEN_UNKNOWN  (-1)

typedef struct scope {
    char name[SCOPE_MAX];
    atomic_llong gen; /* GEN_UNKNOWN until read from the server */
} scope;

struct cl_redis_cache {
    char host[256];
    int port;
    cl_redis_invalidated invalidated;
    void *arg;

    pthread_mutex_t mu; /* the command connection and the scopes list */
    redisContext *cmd;  /* NULL while down */
    int64_t retry_at_ms;
    bool down; /* logged as lost; the next success logs the recovery */
    scope scopes[MAX_SCOPES];
    int nscopes;

    pthread_mutex_t sub_mu; /* the subscriber's connection and stop flag */
    pthread_cond_t sub_cv;
    redisContext *sub;
    bool stopping;
    pthread_t thread;
    bool started;
};

static cl_metric shared_requests = CL_METRIC_COUNTER(
    "cleave_cache_shared_requests_total",
    "Reads of the read cache's shared level (Redis), by cache and result (hit, miss or error).",
    "cache", "result");
static cl_metric shared_invalidations =
    CL_METRIC_COUNTER("cleave_cache_invalidations_total",
                      "Invalidations of a read cache, by cache and origin (write here, or "
                      "received from the shared level).",
                      "cache", "origin");

static void count(cl_metric *m, const char *cache, const char *what)
{
    cl_metric_add(CL_METRIC_SERIES(m, cache, what), 1);
}

static cl_status parse_url(cl_redis_cache *r, const char *url, cl_error *err)
{
    const char *p;
    const char *colon;
    size_t len;
    char *end = NULL;
    long port = 6379;

    if (url == NULL || strncmp(url, "redis://", 8) != 0) {
        goto bad;
    }
    p = url + 8;
    colon = strchr(p, ':');
    len = colon != NULL ? (size_t)(colon - p) : strlen(p);
    if (len == 0 || len >= sizeof(r->host) || strpbrk(p, "/@?#") != NULL) {
        goto bad;
    }
    if (colon != NULL) {
        port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
            goto bad;
        }
    }
    memcpy(r->host, p, len);
    r->host[len] = '\0';
    r->port = (int)port;
    return CL_OK;
bad:
    return cl_error_set(err, CL_INVALID, "CLEAVE_REDIS_URL",
                        "CLEAVE_REDIS_URL must be redis://host[:port]");
}

static redisContext *connect_to(const cl_redis_cache *r)
{
    struct timeval tv = {0, (suseconds_t)TIMEOUT_MS * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);

    if (c != NULL && c->err != 0) {
        redisFree(c);
        c = NULL;
    }
    if (c != NULL && redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

/* The command connection (mu held), connecting when it is time to try; NULL while down. */
static redisContext *cmd_conn(cl_redis_cache *r)
{
    int64_t now = cl_now_ms();

    if (r->cmd == NULL && now >= r->retry_at_ms) {
        r->cmd = connect_to(r);
        if (r->cmd == NULL) {
            r->retry_at_ms = now + RECONNECT_MS;
            if (!r->down) {
                r->down = true;
                cl_log_warn("cache",
                            "redis at %s:%d unreachable: the read cache runs without "
                            "its shared level until it is back",
                            r->host, r->port);
            }
        } else if (r->down) {
            r->down = false;
            cl_log_info("cache", "redis at %s:%d reachable again", r->host, r->port);
        }
    }
    return r->cmd;
}

/* A failed command (mu held): the connection is dropped and retried later. */
static void cmd_failed(cl_redis_cache *r)
{
    if (!r->down) {
        r->down = true;
        cl_log_warn("cache", "redis at %s:%d failed: %s", r->host, r->port,
                    r->cmd != NULL && r->cmd->err != 0 ? r->cmd->errstr : "unexpected reply");
    }
    redisFree(r->cmd);
    r->cmd = NULL;
    r->retry_at_ms = cl_now_ms() + RECONNECT_MS;
}

/* A command's reply (mu held), or NULL after a failure (counted and logged). */
static redisReply *command(cl_redis_cache *r, const char *fmt, ...)
{
    redisContext *c = cmd_conn(r);
    redisReply *reply = NULL;
    va_list ap;

    if (c == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        cmd_failed(r);
        return NULL;
    }
    return reply;
}

/* The scope named name (mu held), added when new; NULL past MAX_SCOPES. */
static scope *scope_of(cl_redis_cache *r, const char *name)
{
    for (int i = 0; i < r->nscopes; i++) {
        if (strcmp(r->scopes[i].name, name) == 0) {
            return &r->scopes[i];
        }
    }
    if (r->nscopes == MAX_SCOPES || strlen(name) >= SCOPE_MAX) {
        return NULL;
    }
    snprintf(r->scopes[r->nscopes].name, SCOPE_MAX, "%s", name);
    atomic_store(&r->scopes[r->nscopes].gen, GEN_UNKNOWN);
    return &r->scopes[r->nscopes++];
}

static int64_t reply_int(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_INTEGER) {
        return reply->integer;
    }
    if (reply->type == REDIS_REPLY_STRING) {
        return strtoll(reply->str, NULL, 10);
    }
    return 0; /* nil: no invalidation yet */
}

static int64_t redis_generation(void *self, const char *name)
{
    cl_redis_cache *r = self;
    scope *s;
    int64_t gen = 0;
    redisReply *reply;

    pthread_mutex_lock(&r->mu);
    s = scope_of(r, name);
    if (s != NULL) {
        gen = atomic_load(&s->gen);
        if (gen == GEN_UNKNOWN) {
            reply = command(r, "GET cleave:cache:%s:gen", name);
            gen = reply != NULL ? reply_int(reply) : GEN_UNKNOWN;
            /* A message may have raised it meanwhile: never go back. */
            if (gen != GEN_UNKNOWN && gen > atomic_load(&s->gen)) {
                atomic_store(&s->gen, gen);
            }
            gen = atomic_load(&s->gen);
            freeReplyObject(reply);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return gen;
}

static int redis_get(void *self, const char *name, int64_t gen, const char *key, int64_t ttl_ms,
                     char **value, int64_t *age_ms)
{
    cl_redis_cache *r = self;
    redisContext *c;
    redisReply *got = NULL;
    redisReply *left = NULL;
    int found = 0;

    /* Without a known generation an entry cannot be told current: read the source. */
    if (gen == GEN_UNKNOWN) {
        count(&shared_requests, name, "error");
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    c = cmd_conn(r);
    if (c == NULL) {
        goto out;
    }
    /* The value and its time left, in one round trip. */
    redisAppendCommand(c, "GET cleave:cache:%s:%lld:%s", name, (long long)gen, key);
    redisAppendCommand(c, "PTTL cleave:cache:%s:%lld:%s", name, (long long)gen, key);
    if (redisGetReply(c, (void **)&got) != REDIS_OK ||
        redisGetReply(c, (void **)&left) != REDIS_OK) {
        cmd_failed(r);
        goto out;
    }
    if (got->type == REDIS_REPLY_STRING && left->type == REDIS_REPLY_INTEGER && left->integer > 0) {
        *value = strdup(got->str);
        found = *value != NULL;
        *age_ms = ttl_ms > left->integer ? ttl_ms - left->integer : 0;
    }
out:
    pthread_mutex_unlock(&r->mu);
    count(&shared_requests, name, got == NULL || left == NULL ? "error" : found ? "hit" : "miss");
    freeReplyObject(got);
    freeReplyObject(left);
    return found;
}

static void redis_set(void *self, const char *name, int64_t gen, const char *key, const char *value,
                      int64_t ttl_ms)
{
    cl_redis_cache *r = self;

    if (gen == GEN_UNKNOWN) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    freeReplyObject(command(r, "SET cleave:cache:%s:%lld:%s %s PX %lld", name, (long long)gen, key,
                            value, (long long)ttl_ms));
    pthread_mutex_unlock(&r->mu);
}

static void redis_invalidate(void *self, const char *name)
{
    cl_redis_cache *r = self;
    redisReply *reply;
    scope *s;

    count(&shared_invalidations, name, "write");
    pthread_mutex_lock(&r->mu);
    reply = command(r, "INCR cleave:cache:%s:gen", name);
    s = scope_of(r, name);
    if (reply != NULL) {
        if (s != NULL && reply->integer > atomic_load(&s->gen)) {
            atomic_store(&s->gen, reply->integer);
        }
        freeReplyObject(command(r, "PUBLISH " CHANNEL " %s:%lld", name, reply->integer));
    } else if (s != NULL) {
        /* Unsure now which generation is current: read the source until it is known. */
        atomic_store(&s->gen, GEN_UNKNOWN);
    }
    freeReplyObject(reply);
    pthread_mutex_unlock(&r->mu);
}

const cl_cache_shared cl_redis_cache_ops = {
    .version = 1,
    .generation = redis_generation,
    .get = redis_get,
    .set = redis_set,
    .invalidate = redis_invalidate,
};

/* A message "<scope>:<generation>" from the channel: move to it, clear the host's cache. */
static void on_message(cl_redis_cache *r, const char *text)
{
    const char *colon = strrchr(text, ':');
    char name[SCOPE_MAX];
    int64_t gen;
    scope *s;

    if (colon == NULL || (size_t)(colon - text) >= sizeof(name)) {
        return;
    }
    memcpy(name, text, (size_t)(colon - text));
    name[colon - text] = '\0';
    gen = strtoll(colon + 1, NULL, 10);
    pthread_mutex_lock(&r->mu);
    s = scope_of(r, name);
    if (s != NULL && gen > atomic_load(&s->gen)) {
        atomic_store(&s->gen, gen);
    }
    pthread_mutex_unlock(&r->mu);
    count(&shared_invalidations, name, "received");
    r->invalidated(r->arg, name);
}

/* After (re)subscribing: what was missed meanwhile is unknown, so every scope starts over. */
static void forget_all(cl_redis_cache *r)
{
    char names[MAX_SCOPES][SCOPE_MAX];
    int n;

    pthread_mutex_lock(&r->mu);
    n = r->nscopes;
    for (int i = 0; i < n; i++) {
        atomic_store(&r->scopes[i].gen, GEN_UNKNOWN);
        memcpy(names[i], r->scopes[i].name, SCOPE_MAX);
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++) {
        r->invalidated(r->arg, names[i]);
    }
}

/* Reads messages until the connection fails or is shut down. */
static void listen_on(cl_redis_cache *r, redisContext *c)
{
    redisReply *reply = redisCommand(c, "SUBSCRIBE " CHANNEL);

    if (reply == NULL) {
        return;
    }
    freeReplyObject(reply);
    forget_all(r);
    for (;;) {
        reply = NULL;
        if (redisGetReply(c, (void **)&reply) != REDIS_OK || reply == NULL) {
            return;
        }
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
            reply->element[0]->type == REDIS_REPLY_STRING &&
            reply->element[2]->type == REDIS_REPLY_STRING &&
            strcmp(reply->element[0]->str, "message") == 0) {
            on_message(r, reply->element[2]->str);
        }
        freeReplyObject(reply);
    }
}

static void *subscriber(void *arg)
{
    cl_redis_cache *r = arg;
    struct timeval forever = {0, 0};

    cl_thread_background("cache", "redis");

    pthread_mutex_lock(&r->sub_mu);
    while (!r->stopping) {
        redisContext *c;

        pthread_mutex_unlock(&r->sub_mu);
        c = connect_to(r);
        /* A subscriber waits for messages however long none comes. */
        if (c != NULL && redisSetTimeout(c, forever) != REDIS_OK) {
            redisFree(c);
            c = NULL;
        }
        pthread_mutex_lock(&r->sub_mu);
        if (c != NULL && !r->stopping) {
            r->sub = c;
            pthread_mutex_unlock(&r->sub_mu);
            listen_on(r, c);
            pthread_mutex_lock(&r->sub_mu);
            r->sub = NULL;
        }
        redisFree(c);
        if (!r->stopping) {
            struct timespec at = cl_deadline_in(RECONNECT_MS);

            pthread_cond_timedwait(&r->sub_cv, &r->sub_mu, &at);
        }
    }
    pthread_mutex_unlock(&r->sub_mu);
    return NULL;
}

cl_status cl_redis_cache_new(const char *url, cl_redis_invalidated invalidated, void *arg,
                             cl_redis_cache **out, cl_error *err)
{
    cl_redis_cache *r = calloc(1, sizeof(*r));
    cl_status st;

    if (r == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    st = parse_url(r, url, err);
    if (st != CL_OK) {
        free(r);
        return st;
    }
    r->invalidated = invalidated;
    r->arg = arg;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->sub_mu, NULL);
    if (cl_cond_init_monotonic(&r->sub_cv) != 0 ||
        pthread_create(&r->thread, NULL, subscriber, r) != 0) {
        cl_redis_cache_free(r);
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot start the redis subscriber");
    }
    r->started = true;
    *out = r;
    return CL_OK;
}

void cl_redis_cache_free(cl_redis_cache *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->sub_mu);
    r->stopping = true;
    if (r->sub != NULL) {
        shutdown(r->sub->fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&r->sub_cv);
    pthread_mutex_unlock(&r->sub_mu);
    if (r->started) {
        pthread_join(r->thread, NULL);
    }
    redisFree(r->cmd);
    pthread_cond_destroy(&r->sub_cv);
    pthread_mutex_destroy(&r->sub_mu);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static cl_status server_open(const char *url, void (*invalidated)(void *arg, const char *scope),
                             void *arg, void **self, cl_error *err)
{
    cl_redis_cache *r = NULL;
    cl_status st = cl_redis_cache_new(url, invalidated, arg, &r, err);

    if (st == CL_OK) {
        *self = r;
    }
    return st;
}

static void server_close(void *self)
{
    cl_redis_cache_free(self);
}

static const cl_cache_shared_server redis_server = {
    .version = 1,
    .open = server_open,
    .close = server_close,
    .ops = &cl_redis_cache_ops,
};

const cl_extension cl_redis_extension = {"cache", "redis", &redis_server};
