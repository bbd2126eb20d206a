/*
 * The remote binding's HTTP/1.1 exchange (ADR rpc-own-framing): curl opens the connection
 * (name lookup with its deadline, connect, TLS with the client's certificate) and keeps
 * it; the request and its answer go over it with curl_easy_send and curl_easy_recv,
 * framed here. One call is then one send, one poll and one receive, without curl's
 * per-transfer set-up (its multi handle, wake-up pipe, liveness polls, header parsing).
 */
#ifndef CLEAVE_RPC_WIRE_H
#define CLEAVE_RPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* The largest answer body accepted; a larger one fails the call (too_big). */
#define CL__RPC_MAX_RESPONSE ((size_t)16 * 1024 * 1024)
/* The largest answer head (status line and headers) accepted. */
#define CL__RPC_MAX_HEAD     ((size_t)16 * 1024)

/* One answer as read: body points into buf (free buf only), NUL-terminated. */
typedef struct cl__rpc_answer {
    char *buf;
    char *body;
    size_t len;
    long http;
    bool too_big;  /* the body exceeded CL__RPC_MAX_RESPONSE */
    bool keep;     /* the connection may carry another request */
    bool received; /* any byte of the answer arrived (a failed reused connection without
                      one may be replaced and the request sent again) */
} cl__rpc_answer;

/*
 * Sends req[len] (a whole HTTP/1.1 request) on h's connection (opened with
 * CURLOPT_CONNECT_ONLY) and reads its answer into *a, waiting until deadline_ns
 * (CLOCK_MONOTONIC) at the latest. tls says whether curl may hold decrypted data the
 * socket no longer shows. Returns CURLE_OK with the answer, CURLE_OPERATION_TIMEDOUT,
 * CURLE_SEND_ERROR, CURLE_RECV_ERROR or CURLE_GOT_NOTHING (the connection broke or closed;
 * a->received says whether anything came), CURLE_WEIRD_SERVER_REPLY (not HTTP/1.x, or
 * malformed framing), CURLE_FILESIZE_EXCEEDED (a->too_big), CURLE_OUT_OF_MEMORY. a->buf
 * is set (free it) whatever the result.
 */
CURLcode cl__rpc_exchange(CURL *h, bool tls, const char *req, size_t len, int64_t deadline_ns,
                          cl__rpc_answer *a);

/* Whether an idle kept connection of h is still usable: nothing to read, not closed. */
bool cl__rpc_conn_idle_ok(CURL *h);

/* CLOCK_MONOTONIC now, in nanoseconds. */
int64_t cl__rpc_now_ns(void);

#endif /* CLEAVE_RPC_WIRE_H */
