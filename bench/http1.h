/*
 * A lean HTTP/1.1 client for load: one keep-alive connection, each request written with
 * one send, each answer read by its Content-Length into the connection's buffer. It does
 * what a load generator like wrk does, so that the benchmark's own client spends little of
 * the cores it shares with the server; the tests' libcurl client (tests/support/client.c)
 * made some 19 system calls a request. Plain http:// only; an answer it cannot read (no
 * Content-Length, chunked, larger than the buffer, cut short) is an error with its reason.
 */
#ifndef CLEAVE_BENCH_HTTP1_H
#define CLEAVE_BENCH_HTTP1_H

#include <stddef.h>

#define HTTP1_BUF (64 * 1024)

typedef struct http1_conn {
    char host[64];
    int port;
    int fd;      /* -1 until the first request, and after the server closed */
    size_t have; /* bytes of the answer in buf */
    char error[160];
    char buf[HTTP1_BUF];
} http1_conn;

typedef struct http1_answer {
    int status;
    const char *body; /* in the connection's buffer, until its next request */
    size_t body_len;
} http1_answer;

/* Takes base_url ("http://host:port"); connects at the first request. 0, or -1 with c->error. */
int http1_init(http1_conn *c, const char *base_url);

/*
 * One request and its answer. headers: extra header lines, each ending in "\r\n" (or NULL);
 * a body is sent as application/json. 0, or -1 with the reason in c->error (the connection
 * is then closed: the next request opens a new one).
 */
int http1_request(http1_conn *c, const char *method, const char *path, const char *headers,
                  const char *body, size_t body_len, http1_answer *a);

void http1_close(http1_conn *c);

#endif
