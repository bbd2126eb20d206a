/* Test support: a throwaway redis-server (redis_server.h). */
#include "redis_server.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Starts it on s->port, or on a free port when that is 0. */
static int start_on(redis_server *s, const char *dir, int port_number)
{
    char port[16], log[512];
    /* No snapshot and no append-only file: nothing outlives the test but its directory. */
    char *argv[] = {"redis-server", "--bind",      "127.0.0.1", "--port", port,
                    "--dir",        (char *)dir,   "--save",    "",       "--appendonly",
                    "no",           "--daemonize", "no",        NULL};
    memset(s, 0, sizeof(*s));
    s->port = port_number > 0 ? port_number : test_free_port();
    if (s->port < 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/redis-server.log", dir);
    snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", s->port);
    snprintf(s->env, sizeof(s->env), "CLEAVE_REDIS_URL=%s", s->url);
    return test_proc_start_server(&s->proc, "/usr/bin/redis-server", argv, log, s->port);
}

int redis_server_start(redis_server *s, const char *dir)
{
    return start_on(s, dir, 0);
}

int redis_server_restart(redis_server *s, const char *dir)
{
    redis_server_stop(s);
    return start_on(s, dir, s->port);
}

void redis_server_stop(redis_server *s)
{
    if (s->proc.pid > 0) {
        (void)test_proc_stop(&s->proc, SIGTERM);
        s->proc.pid = 0;
    }
}
