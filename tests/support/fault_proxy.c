/* A user-space TCP fault proxy for tests (fault_proxy.h). */
#include "fault_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

/* Connections served at once; more are reset, which a test would notice. */
#define PROXY_MAX_CONNS 256
/* How often a connection's thread looks at the mode and the stop flag. */
#define PROXY_TICK_MS   10
#define PROXY_CHUNK     16384

typedef struct proxy_conn {
    fault_proxy *proxy;
    int client;
    int upstream; /* -1 until connected */
    pthread_t thread;
    atomic_int done;
} proxy_conn;

struct fault_proxy {
    int listen_fd;
    int port;
    atomic_int upstream_port;
    atomic_int mode;
    atomic_llong arg;
    atomic_int stopping;
    atomic_long accepted;
    atomic_long requests;
    atomic_long forwarded;
    pthread_t acceptor;
    pthread_mutex_t mu; /* guards conns */
    proxy_conn *conns[PROXY_MAX_CONNS];
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Closes fd with a reset (RST) rather than an orderly FIN. */
static void close_reset(int fd)
{
    struct linger lg = {1, 0};

    if (fd < 0) {
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static int connect_upstream(int port)
{
    struct sockaddr_in a = {0};
    int fd;
    int one = 1;

    if (port <= 0) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int starts_request(const char *buf, ssize_t n)
{
    static const char *const methods[] = {"GET ", "POST ", "PUT ", "PATCH ", "DELETE ", "HEAD "};

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t len = strlen(methods[i]);

        if ((size_t)n >= len && memcmp(buf, methods[i], len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Writes all of buf[n] to fd; 0, or -1 when the peer is gone. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Forwards what is readable on from to to, as the mode says; 0 to go on, -1 when the
 * connection is over. Bandwidth limits each tick's read to the tick's share of the rate.
 */
static int pump(fault_proxy *p, int from, int to, int from_client)
{
    char buf[PROXY_CHUNK];
    fault_mode mode = (fault_mode)atomic_load(&p->mode);
    long long arg = atomic_load(&p->arg);
    size_t want = sizeof(buf);
    ssize_t n;

    if (mode == FAULT_BANDWIDTH) {
        long long share = arg * PROXY_TICK_MS / 1000;

        want = share < 1 ? 1 : share < (long long)sizeof(buf) ? (size_t)share : sizeof(buf);
    }
    n = recv(from, buf, want, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    if (n <= 0) {
        return -1;
    }
    if (from_client && starts_request(buf, n)) {
        atomic_fetch_add(&p->requests, 1);
    }
    if (mode == FAULT_BLACKHOLE || to < 0) {
        return 0; /* read and dropped: never answered */
    }
    if (mode == FAULT_LATENCY) {
        sleep_ms(arg);
    }
    if (from_client && starts_request(buf, n)) {
        atomic_fetch_add(&p->forwarded, 1);
    }
    if (write_all(to, buf, (size_t)n) != 0) {
        return -1;
    }
    if (mode == FAULT_BANDWIDTH) {
        sleep_ms(PROXY_TICK_MS);
    }
    return 0;
}

static void *conn_main(void *arg)
{
    proxy_conn *c = arg;
    fault_proxy *p = c->proxy;

    while (!atomic_load(&p->stopping)) {
        fault_mode mode = (fault_mode)atomic_load(&p->mode);
        struct pollfd fds[2] = {{c->client, POLLIN, 0}, {c->upstream, POLLIN, 0}};
        int n;

        if (mode == FAULT_RESET) {
            break;
        }
        if (mode == FAULT_HALF_OPEN) {
            sleep_ms(PROXY_TICK_MS);
            continue;
        }
        if (c->upstream < 0 && mode != FAULT_BLACKHOLE) {
            c->upstream = connect_upstream(atomic_load(&p->upstream_port));
            if (c->upstream < 0) {
                break;
            }
            fds[1].fd = c->upstream;
        }
        n = poll(fds, 2, PROXY_TICK_MS);
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (n <= 0) {
            continue;
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
            pump(p, c->client, c->upstream, 1) != 0) {
            break;
        }
        /* While blackholed the service's late answers are dropped too. */
        if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
            pump(p, c->upstream, mode == FAULT_BLACKHOLE ? -1 : c->client, 0) != 0) {
            break;
        }
    }
    close_reset(c->client);
    close_reset(c->upstream);
    c->client = -1;
    c->upstream = -1;
    atomic_store(&c->done, 1);
    return NULL;
}

/* Joins and frees the connections that ended (all of them when all is set). */
static void reap(fault_proxy *p, int all)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PROXY_MAX_CONNS; i++) {
        proxy_conn *c = p->conns[i];

        if (c != NULL && (all || atomic_load(&c->done))) {
            pthread_join(c->thread, NULL);
            free(c);
            p->conns[i] = NULL;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static void accept_one(fault_proxy *p, int fd)
{
    proxy_conn *c = NULL;
    int slot = -1;

    atomic_fetch_add(&p->accepted, 1);
    reap(p, 0);
    if (atomic_load(&p->mode) == FAULT_RESET) {
        close_reset(fd);
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PROXY_MAX_CONNS && slot < 0; i++) {
        if (p->conns[i] == NULL) {
            slot = i;
        }
    }
    c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
    if (c != NULL) {
        c->proxy = p;
        c->client = fd;
        c->upstream = -1;
        if (pthread_create(&c->thread, NULL, conn_main, c) == 0) {
            p->conns[slot] = c;
            fd = -1;
        } else {
            free(c);
        }
    }
    pthread_mutex_unlock(&p->mu);
    close_reset(fd);
}

static void *accept_main(void *arg)
{
    fault_proxy *p = arg;

    while (!atomic_load(&p->stopping)) {
        struct pollfd pfd = {p->listen_fd, POLLIN, 0};
        int fd;

        if (poll(&pfd, 1, PROXY_TICK_MS) <= 0) {
            continue;
        }
        fd = accept(p->listen_fd, NULL, NULL);
        if (fd >= 0) {
            /* Not inherited by the processes the test starts. */
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            accept_one(p, fd);
        }
    }
    return NULL;
}

fault_proxy *fault_proxy_start(int upstream_port)
{
    fault_proxy *p = calloc(1, sizeof(*p));
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);

    if (p == NULL) {
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    atomic_store(&p->upstream_port, upstream_port);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->listen_fd, 128) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "fault proxy: cannot listen: %s\n", strerror(errno));
        goto fail;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->acceptor, NULL, accept_main, p) != 0) {
        fprintf(stderr, "fault proxy: cannot start its thread\n");
        goto fail;
    }
    return p;
fail:
    if (p->listen_fd >= 0) {
        close(p->listen_fd);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

int fault_proxy_port(const fault_proxy *p)
{
    return p->port;
}

void fault_proxy_set_upstream(fault_proxy *p, int upstream_port)
{
    atomic_store(&p->upstream_port, upstream_port);
}

void fault_proxy_set(fault_proxy *p, fault_mode mode, int64_t arg)
{
    atomic_store(&p->arg, (long long)arg);
    atomic_store(&p->mode, (int)mode);
}

void fault_proxy_stats_get(fault_proxy *p, fault_proxy_stats *out)
{
    out->accepted = atomic_load(&p->accepted);
    out->requests = atomic_load(&p->requests);
    out->forwarded = atomic_load(&p->forwarded);
}

void fault_proxy_stop(fault_proxy *p)
{
    if (p == NULL) {
        return;
    }
    atomic_store(&p->stopping, 1);
    pthread_join(p->acceptor, NULL);
    close(p->listen_fd);
    reap(p, 1);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
