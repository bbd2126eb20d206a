/* Test support: a throwaway redis-server (redis_server.h). */
#include "redis_server.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int redis_server_start(redis_server *s, const char *dir)
{
    char port[16], log[512];
    /* No snapshot and no append-only file: nothing outlives the test but its directory. */
    char *argv[] = {"redis-server", "--bind",      "127.0.0.1", "--port", port,
                    "--dir",        (char *)dir,   "--save",    "",       "--appendonly",
                    "no",           "--daemonize", "no",        NULL};
    struct timespec nap = {0, 20 * 1000000L};

    memset(s, 0, sizeof(*s));
    s->port = test_free_port();
    if (s->port < 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/redis-server.log", dir);
    snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", s->port);
    snprintf(s->env, sizeof(s->env), "CLEAVE_REDIS_URL=%s", s->url);
    if (test_proc_start(&s->proc, "/usr/bin/redis-server", argv, NULL, log) != 0) {
        return -1;
    }
    for (int i = 0; i < 500; i++) {
        if (test_port_accepts(s->port)) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "redis-server did not start; see %s\n", log);
    redis_server_stop(s);
    return -1;
}

void redis_server_stop(redis_server *s)
{
    if (s->proc.pid > 0) {
        (void)test_proc_stop(&s->proc, SIGTERM);
        s->proc.pid = 0;
    }
}
