/* Test support: a throwaway nats-server (nats_server.h). */
#include "nats_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A port the kernel just handed out; nats-server binds it right after. */
static int free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int accepts(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

int nats_server_start(nats_server *s, const char *dir)
{
    char port[16], store[512], log[512];
    char *argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", store, NULL};
    struct timespec nap = {0, 20 * 1000000L};

    memset(s, 0, sizeof(*s));
    s->port = free_port();
    if (s->port < 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(store, sizeof(store), "%s/jetstream", dir);
    snprintf(log, sizeof(log), "%s/nats-server.log", dir);
    snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
    if (test_proc_start(&s->proc, "/usr/sbin/nats-server", argv, NULL, log) != 0) {
        return -1;
    }
    for (int i = 0; i < 500; i++) {
        if (accepts(s->port)) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "nats-server did not start; see %s\n", log);
    nats_server_stop(s);
    return -1;
}

void nats_server_stop(nats_server *s)
{
    if (s->proc.pid > 0) {
        (void)test_proc_stop(&s->proc, SIGTERM);
    }
}
