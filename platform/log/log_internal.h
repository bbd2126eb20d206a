/*
 * log_internal.h - what the platform's own files may use of the log and nobody else.
 */
#ifndef CLEAVE_LOG_INTERNAL_H
#define CLEAVE_LOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cleave/log.h"

/* One extra field of a line: a string (text, borrowed) or, with text NULL, an integer. */
typedef struct cl__log_field {
    const char *key;
    const char *text;
    int64_t number;
} cl__log_field;

/*
 * As cl_log_with, with the extra fields[0..n) given as plain values rather than a json_t:
 * the line is written without a single allocation (the access log, once per request). A
 * field whose key is one of the fixed fields is left out; keys must differ from each other.
 * Strings need not be valid UTF-8 (a bad byte is written as '?').
 */
/*
 * cl__log_fields with the message as it is, not a format: for a caller that has its message
 * at hand (the access line), the cost of printf's format parsing saved. A message longer
 * than a formatted one may be is cut and marked the same way.
 */
void cl__log_fields_msg(cl_log_level level, const char *module, const cl__log_field *fields,
                        size_t n, const char *msg);

void cl__log_fields(cl_log_level level, const char *module, const cl__log_field *fields, size_t n,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif /* CLEAVE_LOG_INTERNAL_H */
