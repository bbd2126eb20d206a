/*
 * Test support: a throwaway nats-server with JetStream, on a free loopback port with its
 * store in a temporary directory, stopped by its PID (also when the test process dies).
 */
#ifndef CLEAVE_TEST_NATS_SERVER_H
#define CLEAVE_TEST_NATS_SERVER_H

#include "proc.h"

typedef struct nats_server {
    test_proc proc;
    int port;
    char url[64]; /* nats://127.0.0.1:PORT */
} nats_server;

/* Starts nats-server -js with its store under dir; waits until it accepts. 0 or -1. */
int nats_server_start(nats_server *s, const char *dir);
/* Stops it (SIGTERM) and waits. A server that never started is a no-op. */
void nats_server_stop(nats_server *s);

/*
 * The bus of a test's processes: an account of the run's shared nats-server when there
 * is one (CL_TEST_NATS_DIR, tests/support/nats-fixture.sh) that nobody else holds, its
 * streams deleted so that no earlier test's events remain; else a nats-server of its own
 * with its store under dir. env is "CLEAVE_NATS_URL=...".
 */
typedef struct test_nats {
    nats_server own;
    char env[160];
    char claim[600]; /* the claim file of the shared account, removed by test_nats_close */
} test_nats;

int test_nats_open(test_nats *n, const char *dir);
void test_nats_close(test_nats *n);

#endif
