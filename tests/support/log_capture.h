/*
 * Test support, header only (unit tests link nothing but the platform): captures the
 * platform's log lines in a temporary file, for tests that check what was logged (a
 * driver's message goes to the log, never into an answer).
 */
#ifndef CLEAVE_TEST_LOG_CAPTURE_H
#define CLEAVE_TEST_LOG_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleave/log.h"

typedef struct log_capture {
    FILE *f;
} log_capture;

/* Sends the log to a fresh temporary file. Returns 0, or -1 when none can be made. */
static inline int log_capture_begin(log_capture *lc)
{
    lc->f = tmpfile();
    if (lc->f == NULL) {
        return -1;
    }
    cl_log_set_fd(fileno(lc->f));
    return 0;
}

/* The lines logged since log_capture_begin, NUL-terminated; the caller frees them. */
static inline char *log_capture_text(const log_capture *lc)
{
    long n;
    char *text;

    /* Lines sit in the log's buffer for a while; the caller wants them all now. */
    cl_log_flush();
    if (lc->f == NULL || fseek(lc->f, 0, SEEK_END) != 0) {
        return NULL;
    }
    n = ftell(lc->f);
    text = n >= 0 ? calloc(1, (size_t)n + 1) : NULL;
    if (text == NULL || pread(fileno(lc->f), text, (size_t)n, 0) != (ssize_t)n) {
        free(text);
        return NULL;
    }
    return text;
}

/* The log goes back to stdout and the file is removed. */
static inline void log_capture_end(log_capture *lc)
{
    cl_log_set_fd(STDOUT_FILENO);
    if (lc->f != NULL) {
        fclose(lc->f);
        lc->f = NULL;
    }
}

#endif /* CLEAVE_TEST_LOG_CAPTURE_H */
