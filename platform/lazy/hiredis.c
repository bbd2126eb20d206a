/*
 * hiredis, loaded on the first call (lazy.h, ADR 0047): what the read cache's shared
 * level on Redis calls. A process without CLEAVE_REDIS_URL never maps it.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>

#include "lazy.h"

/*
 * Every function of hiredis the tree calls. The printf-like two are written out below:
 * they pass their arguments on to the va_list forms, which hiredis's own call.
 */
#define HIREDIS_FUNCTIONS(R, V, N)                                                                 \
    R(redisContext *, redisConnectWithTimeout,                                                     \
      (const char *ip, int port, const struct timeval tv), (ip, port, tv))                         \
    R(int, redisSetTimeout, (redisContext * c, const struct timeval tv), (c, tv))                  \
    V(redisFree, (redisContext * c), (c))                                                          \
    R(int, redisGetReply, (redisContext * c, void **reply), (c, reply))                            \
    V(freeReplyObject, (void *reply), (reply))                                                     \
    R(void *, redisvCommand, (redisContext * c, const char *format, va_list ap), (c, format, ap))  \
    R(int, redisvAppendCommand, (redisContext * c, const char *format, va_list ap), (c, format, ap))

CL__LAZY_SHIM(HIREDIS_FUNCTIONS, CLEAVE_LAZY_SONAME)

void *redisCommand(redisContext *c, const char *format, ...)
{
    void *reply;
    va_list ap;

    va_start(ap, format);
    reply = redisvCommand(c, format, ap);
    va_end(ap);
    return reply;
}

int redisAppendCommand(redisContext *c, const char *format, ...)
{
    int rc;
    va_list ap;

    va_start(ap, format);
    rc = redisvAppendCommand(c, format, ap);
    va_end(ap);
    return rc;
}
