/*
 * cleave/log.h - structured logs: one JSON object per line on stdout.
 *
 * Field names are the Elastic Common Schema's, so that a log shipper (Filebeat, Loki)
 * ingests them without parsing rules: @timestamp (RFC 3339 UTC, milliseconds), log.level,
 * log.logger (the module), message, ecs.version, service.name, and the request id
 * (http.request.id), trace.id and span.id bound to the current thread:
 *   {"@timestamp":"2026-01-02T03:04:05.678Z","log.level":"info","log.logger":"http",
 *    "message":"...","ecs.version":"8.11.0","service.name":"cleave","trace.id":"..."}
 * Lines are buffered and written whole, so lines from worker threads never interleave; they
 * come out in the order they were logged, each thread's in its own order. The buffer is
 * written out when full (64 KiB), at most 100 ms after its oldest line, at once for an
 * error line, on cl_log_flush and cl_log_set_fd, before fork() and at a normal exit
 * (ADR 0041). A process killed by a signal loses up to 100 ms of lines below error.
 */
#ifndef CLEAVE_LOG_H
#define CLEAVE_LOG_H

#include <jansson.h>

#include "cleave/status.h"

typedef enum cl_log_level { CL_LOG_DEBUG, CL_LOG_INFO, CL_LOG_WARN, CL_LOG_ERROR } cl_log_level;

/* Lines below level are dropped. Default CL_LOG_INFO. */
void cl_log_set_level(cl_log_level level);
/* Parses "debug", "info", "warn", "error". CL_OK or CL_INVALID. */
cl_status cl_log_parse_level(const char *s, cl_log_level *out);
/* Writes out the lines logged so far and sends what follows to fd (tests); -1 is stdout. */
void cl_log_set_fd(int fd);
/* Writes out every line logged so far (before the caller reads the log, or dies). */
void cl_log_flush(void);

/* Names the process in every line (service.name); call once at startup. NULL clears. */
void cl_log_set_service(const char *name);

/* Binds the request id and trace ids of ctx to the calling thread; NULL unbinds. */
void cl_log_bind(const cl_ctx *ctx);

void cl_log(cl_log_level level, const char *module, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* As cl_log, with extra fields merged into the line. Steals the reference to fields. */
void cl_log_with(cl_log_level level, const char *module, json_t *fields, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#define cl_log_debug(mod, ...) cl_log(CL_LOG_DEBUG, mod, __VA_ARGS__)
#define cl_log_info(mod, ...)  cl_log(CL_LOG_INFO, mod, __VA_ARGS__)
#define cl_log_warn(mod, ...)  cl_log(CL_LOG_WARN, mod, __VA_ARGS__)
#define cl_log_error(mod, ...) cl_log(CL_LOG_ERROR, mod, __VA_ARGS__)

#endif /* CLEAVE_LOG_H */
