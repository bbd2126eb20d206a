/* Test support: a throwaway nats-server (nats_server.h). */
#include "nats_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

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

int nats_server_start(nats_server *s, const char *dir)
{
    char port[16], store[512], log[512];
    char *argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", store, NULL};
    memset(s, 0, sizeof(*s));
    s->port = free_port();
    if (s->port < 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(store, sizeof(store), "%s/jetstream", dir);
    snprintf(log, sizeof(log), "%s/nats-server.log", dir);
    snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
    return test_proc_start_server(&s->proc, "/usr/sbin/nats-server", argv, log, s->port);
}

void nats_server_stop(nats_server *s)
{
    if (s->proc.pid > 0) {
        (void)test_proc_stop(&s->proc, SIGTERM);
    }
}

/* The first line of dir/name as an integer; -1 when unreadable. */
static int read_int(const char *dir, const char *name)
{
    char path[600], buf[32];
    FILE *f;
    int v = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) != NULL) {
            v = (int)strtol(buf, NULL, 10);
        }
        fclose(f);
    }
    return v;
}

/* Deletes every stream of the account at url: it starts as empty as a new server. */
static int empty_account(const char *url)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamNamesList *names = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    int rc = 0;

    if (s == NATS_OK) {
        s = natsConnection_JetStream(&js, nc, NULL);
    }
    if (s == NATS_OK) {
        s = js_StreamNames(&names, js, NULL, &jerr);
    }
    if (s == NATS_OK) {
        for (int i = 0; i < names->Count; i++) {
            if (js_DeleteStream(js, names->List[i], NULL, &jerr) != NATS_OK) {
                rc = -1;
            }
        }
    } else if (s != NATS_NOT_FOUND) {
        fprintf(stderr, "cannot list the streams at %s: %s\n", url, natsStatus_GetText(s));
        rc = -1;
    }
    jsStreamNamesList_Destroy(names);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}

int test_nats_open(test_nats *n, const char *dir)
{
    const char *shared = getenv("CL_TEST_NATS_DIR");
    char url[128];
    int port, accounts;

    memset(n, 0, sizeof(*n));
    if (shared == NULL || shared[0] == '\0') {
        if (nats_server_start(&n->own, dir) != 0) {
            return -1;
        }
        snprintf(n->env, sizeof(n->env), "CLEAVE_NATS_URL=%s", n->own.url);
        return 0;
    }
    port = read_int(shared, "port");
    accounts = read_int(shared, "accounts");
    for (int i = 0; port > 0 && i < accounts; i++) {
        int fd;

        snprintf(n->claim, sizeof(n->claim), "%s/claims/%d", shared, i);
        fd = open(n->claim, O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0 && errno == EEXIST) {
            continue;
        }
        if (fd < 0) {
            break;
        }
        close(fd);
        snprintf(url, sizeof(url), "nats://t%d:t%d@127.0.0.1:%d", i, i, port);
        snprintf(n->env, sizeof(n->env), "CLEAVE_NATS_URL=%s", url);
        if (empty_account(url) != 0) {
            test_nats_close(n);
            return -1;
        }
        return 0;
    }
    n->claim[0] = '\0';
    fprintf(stderr, "no NATS account free on the shared server in %s\n", shared);
    return -1;
}

void test_nats_close(test_nats *n)
{
    nats_server_stop(&n->own);
    if (n->claim[0] != '\0') {
        unlink(n->claim);
        n->claim[0] = '\0';
    }
    n->env[0] = '\0';
}
