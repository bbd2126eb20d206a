/*
 * Per-key order with two relays and two consumers running concurrently: four threads
 * publish interleaved events of eight keys while two relays drain the outbox and two
 * workers handle them, in process or over a real nats-server (argv[1]: in-process|nats).
 * Every event is handled exactly once and never after a later event of its key.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bus_harness.h"
#include "nats_server.h"

#define KEYS       8
#define PER_KEY    60
#define PUBLISHERS 4
#define BURST      200

static const char *transport = "in-process";
static bus_harness harness;

static int thread_ids[PUBLISHERS];

static void *publisher(void *arg)
{
    int t = *(const int *)arg;
    char keys[2][16];

    snprintf(keys[0], sizeof(keys[0]), "key-%d", 2 * t);
    snprintf(keys[1], sizeof(keys[1]), "key-%d", 2 * t + 1);
    /* Interleave the two keys, in transactions of one to three events. */
    for (int seq = 1; seq <= PER_KEY;) {
        int n = 1 + seq % 3;
        if (seq + n - 1 > PER_KEY) {
            n = PER_KEY - seq + 1;
        }
        for (int k = 0; k < 2; k++) {
            if (bus_harness_publish(&harness, keys[k], seq, n, n) != 0) {
                return (void *)1;
            }
        }
        seq += n;
    }
    return NULL;
}

/* The harness on the chosen transport, under a fresh dir (and nats-server, over NATS). */
static void open_bus(char *dir, size_t size, nats_server *nats, int relays, int workers)
{
    assert_int_equal(test_tmpdir(dir, size), 0);
    if (strcmp(transport, "nats") == 0) {
        assert_int_equal(nats_server_start(nats, dir), 0);
    }
    assert_int_equal(
        bus_harness_open(&harness, nats->url[0] != '\0' ? nats->url : NULL, relays, workers), 0);
}

/* Every event handled once, in order: any doubled or lost row, or one out of order, shows. */
static void assert_all_once_in_order(long total)
{
    bus_seen seen = {0};

    assert_int_equal(bus_harness_wait(&harness, total, 60000), 0);
    assert_int_equal(bus_harness_seen(&harness, &seen), 0);
    assert_int_equal(seen.rows, total);
    assert_int_equal(seen.distinct, total);
    assert_int_equal(seen.late, 0);
}

static void close_bus(char *dir, nats_server *nats)
{
    bus_harness_close(&harness);
    nats_server_stop(nats);
    test_rmrf(dir);
}

static void test_per_key_order_holds_with_two_relays_and_two_consumers(void **state)
{
    char dir[256];
    nats_server nats = {0};
    pthread_t threads[PUBLISHERS];

    (void)state;
    open_bus(dir, sizeof(dir), &nats, 2, 2);
    for (int t = 0; t < PUBLISHERS; t++) {
        thread_ids[t] = t;
        assert_int_equal(pthread_create(&threads[t], NULL, publisher, &thread_ids[t]), 0);
    }
    for (int t = 0; t < PUBLISHERS; t++) {
        void *r;
        pthread_join(threads[t], &r);
        assert_null(r);
    }
    assert_all_once_in_order((long)KEYS * PER_KEY);
    close_bus(dir, &nats);
}

/*
 * Workers handle what is queued in one transaction, a savepoint per message (ADR 0043).
 * One key, so one worker gets the whole burst in order; the handler of one event in the
 * middle writes its row and fails once. Its effects must go with its savepoint while the
 * events before it stay committed, and it and every later event must then be handled
 * once, in order.
 */
static void test_a_failing_handler_in_a_batch_rolls_back_alone(void **state)
{
    char dir[256];
    nats_server nats = {0};
    cl_bus_stats stats = {0};
    cl_error err = {0};

    (void)state;
    open_bus(dir, sizeof(dir), &nats, 1, 2);
    harness.fail_once_seq = BURST / 3;
    assert_int_equal(bus_harness_publish(&harness, "the-key", 1, BURST, BURST), 0);
    assert_all_once_in_order(BURST);
    assert_int_equal(atomic_load(&harness.failures), 1);
    /* The failed attempt counts as the message's first: one retry, nothing else. */
    assert_int_equal(cl_bus_stats_get(harness.bus, &stats, &err), CL_OK);
    assert_int_equal(stats.retries, 1);
    assert_int_equal(stats.dead_lettered, 0);
    close_bus(dir, &nats);
}

/*
 * A publish wakes the relay once its transaction has committed, not before: here the
 * transaction stays open a while after the publish, and the relays' idle poll is far
 * longer than the wait allowed, so the event arrives in time only if the commit woke them.
 * (Woken at the publish, a relay found nothing committed, looked again for 10 ms and then
 * slept out its poll.)
 */
static void test_a_publish_wakes_the_relay_after_its_commit(void **state)
{
    char dir[256];
    nats_server nats = {0};
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    json_t *payload = json_pack("{s:i}", "seq", 1);
    struct timespec open_a_while = {0, 100 * 1000000L}; /* the scenario: a long transaction */

    (void)state;
    bus_harness_poll_ms = 30000;
    open_bus(dir, sizeof(dir), &nats, 1, 1);
    bus_harness_poll_ms = 20;
    assert_int_equal(cl_db_acquire(harness.pub, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_begin(conn, &err), CL_OK);
    assert_int_equal(cl_bus_publish(conn, NULL, "pub.happened", "slow", payload, &err), CL_OK);
    nanosleep(&open_a_while, NULL);
    assert_int_equal(cl_db_commit(conn, &err), CL_OK);
    cl_db_release(conn);
    json_decref(payload);
    assert_int_equal(bus_harness_wait(&harness, 1, 5000), 0);
    close_bus(dir, &nats);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_key_order_holds_with_two_relays_and_two_consumers),
        cmocka_unit_test(test_a_failing_handler_in_a_batch_rolls_back_alone),
        cmocka_unit_test(test_a_publish_wakes_the_relay_after_its_commit),
    };

    if (argc > 1) {
        transport = argv[1];
    }
    return cmocka_run_group_tests_name(transport, tests, NULL, NULL);
}
