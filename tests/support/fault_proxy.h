/*
 * Test support: a user-space TCP fault proxy, since the kernel here has no netem. It
 * listens on a free loopback port, forwards each connection to an upstream loopback port,
 * and misbehaves on demand; the test switches the mode at run time, and the switch also
 * applies to connections already open:
 *
 *   FAULT_PASS       forward both ways
 *   FAULT_LATENCY    forward, each chunk arg milliseconds late
 *   FAULT_BANDWIDTH  forward at most arg bytes per second each way
 *   FAULT_RESET      reset (RST) every connection, new and open
 *   FAULT_BLACKHOLE  accept and read, never answer (a hung service)
 *   FAULT_HALF_OPEN  accept, then neither read nor answer nor close (a peer that vanished
 *                    without a FIN: the client's bytes pile up in the socket buffers)
 *
 * One thread accepts, one thread serves each connection; fault_proxy_stop ends them all.
 */
#ifndef CLEAVE_TEST_FAULT_PROXY_H
#define CLEAVE_TEST_FAULT_PROXY_H

#include <stdint.h>

typedef enum fault_mode {
    FAULT_PASS,
    FAULT_LATENCY,
    FAULT_BANDWIDTH,
    FAULT_RESET,
    FAULT_BLACKHOLE,
    FAULT_HALF_OPEN,
} fault_mode;

typedef struct fault_proxy fault_proxy;

/* What went through the proxy since it started. */
typedef struct fault_proxy_stats {
    long accepted; /* connections accepted */
    /*
     * Requests that reached the proxy: chunks from a client that begin with an HTTP
     * method ("GET ", "POST "). curl writes each request's head in one go, so this counts
     * every request attempt, whatever the mode, even those never forwarded.
     */
    long requests;
    long forwarded; /* of those, forwarded upstream */
} fault_proxy_stats;

/*
 * Starts a proxy on 127.0.0.1 (a free port) to 127.0.0.1:upstream_port (0: not known
 * yet; connections are reset until fault_proxy_set_upstream). Mode FAULT_PASS.
 * Returns the proxy, or NULL after printing why.
 */
fault_proxy *fault_proxy_start(int upstream_port);
/* The port the proxy listens on. */
int fault_proxy_port(const fault_proxy *p);
void fault_proxy_set_upstream(fault_proxy *p, int upstream_port);
/* Switches the mode; arg is the latency in ms or the bandwidth in bytes/s, else unused. */
void fault_proxy_set(fault_proxy *p, fault_mode mode, int64_t arg);
void fault_proxy_stats_get(fault_proxy *p, fault_proxy_stats *out);
/* Closes every connection, stops the threads and frees p. NULL is a no-op. */
void fault_proxy_stop(fault_proxy *p);

#endif
