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
 * s[0..n) as a JSON string with its quotes, escaped as jansson escapes (quote, backslash;
 * control characters as \b \f \n \r \t or \u00XX), into out[0..room): the log's lines and
 * the HTTP replies (platform/http/json.c) write strings alike. A byte that is not part of
 * well-formed UTF-8 is written as bad, or, with bad '\0', refused. Returns the bytes
 * written, or SIZE_MAX when they do not fit or a byte was refused.
 */
size_t cl__json_escape(char *out, size_t room, const char *s, size_t n, char bad);

/*
 * v in decimal, as JSON writes an integer, at the end of digits[0..CL__JSON_INT_MAX):
 * returns where the text starts (it runs to the end). Both writers of JSON text use it.
 */
#define CL__JSON_INT_MAX 24
size_t cl__json_int(char digits[CL__JSON_INT_MAX], int64_t v);

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
