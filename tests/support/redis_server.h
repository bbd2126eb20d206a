/*
 * Test support: a throwaway redis-server on a free loopback port, its working directory
 * in the test's throwaway directory, persistence off, stopped by its PID (also when the
 * test process dies: test_proc's children get SIGTERM with their parent).
 */
#ifndef CLEAVE_TEST_REDIS_SERVER_H
#define CLEAVE_TEST_REDIS_SERVER_H

#include "proc.h"

typedef struct redis_server {
    test_proc proc;
    int port;
    char url[64]; /* redis://127.0.0.1:PORT */
    char env[96]; /* CLEAVE_REDIS_URL=redis://127.0.0.1:PORT */
} redis_server;

/* Starts redis-server with dir as its working directory; waits until it accepts. 0 or -1. */
int redis_server_start(redis_server *s, const char *dir);
/* Starts it again (stopping it first if it runs) on the same port, empty. 0 or -1. */
int redis_server_restart(redis_server *s, const char *dir);
/* Stops it (SIGTERM) and waits. A server that never started (or was stopped) is a no-op. */
void redis_server_stop(redis_server *s);

#endif
