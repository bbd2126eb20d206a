/*
 * Events per second end to end through the bus: published into an outbox (transactions
 * of 50 events over 64 keys), relayed, handled in the subscriber's inbox transaction.
 * The in-process transport and NATS JetStream (a throwaway nats-server) side by side in
 * one run, and their ratio. Never fails on timing. The time publishing alone took is shown
 * too: the relay runs while the publisher is still writing, so it bounds the end-to-end rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_harness.h"
#include "nats_server.h"
#include "proc.h"

#define EVENTS 6016 /* 94 per key */
#define KEYS   64
#define BATCH  50

/* Events per second end to end; *handled and *publish_ms (publishing alone) filled. */
static double run(const char *nats_url, long *handled, int64_t *publish_ms)
{
    bus_harness h;
    int64_t start;
    double secs;
    bus_seen seen = {0};

    if (bus_harness_open(&h, nats_url, 1, 2) != 0) {
        return -1;
    }
    start = cl_now_ms();
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "key-%d", k);
        if (bus_harness_publish(&h, key, 1, EVENTS / KEYS, BATCH) != 0) {
            bus_harness_close(&h);
            return -1;
        }
    }
    *publish_ms = cl_now_ms() - start;
    if (bus_harness_wait(&h, (long)(EVENTS / KEYS) * KEYS, 120000) != 0) {
        fprintf(stderr, "bench: not every event arrived\n");
    }
    secs = (double)(cl_now_ms() - start) / 1000.0;
    *handled = bus_harness_seen(&h, &seen) == 0 ? seen.rows : -1;
    bus_harness_close(&h);
    return secs > 0 ? (double)*handled / secs : 0;
}

int main(void)
{
    char dir[256];
    nats_server nats;
    long n_local = 0, n_nats = 0;
    int64_t p_local = 0, p_nats = 0;
    double local, remote;

    local = run(NULL, &n_local, &p_local);
    if (test_tmpdir(dir, sizeof(dir)) != 0 || nats_server_start(&nats, dir) != 0) {
        fprintf(stderr, "bench_bus: cannot start nats-server\n");
        return EXIT_FAILURE;
    }
    remote = run(nats.url, &n_nats, &p_nats);
    nats_server_stop(&nats);
    test_rmrf(dir);
    printf("bus end to end (%d events, %d keys, outbox transactions of %d):\n", EVENTS, KEYS,
           BATCH);
    printf("  in-process   %8.0f events/s  (%ld handled; publishing alone took %lld ms)\n", local,
           n_local, (long long)p_local);
    printf("  nats         %8.0f events/s  (%ld handled; publishing alone took %lld ms)\n", remote,
           n_nats, (long long)p_nats);
    if (remote > 0) {
        printf("  ratio        in-process is %.1fx nats\n", local / remote);
    }
    return EXIT_SUCCESS;
}
