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
#include "cleave/util.h"
#include "nats_server.h"
#include "sqlite_counting.h"

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

/*
 * A relay that goes idle after a round must not miss what was committed while it delivered
 * that round: the relay's poll is far longer than the wait allowed, so every event arrives
 * in time only if each commit's wake-up reached a relay that had read before it. One
 * relay, events published one per transaction, back to back, while it delivers.
 */
static void
test_events_committed_during_a_round_are_relayed_without_waiting_for_the_poll(void **state)
{
    char dir[256];
    nats_server nats = {0};

    (void)state;
    bus_harness_poll_ms = 30000;
    open_bus(dir, sizeof(dir), &nats, 1, 1);
    bus_harness_poll_ms = 20;
    assert_int_equal(bus_harness_publish(&harness, "one-by-one", 1, BURST, 1), 0);
    assert_int_equal(bus_harness_wait(&harness, BURST, 10000), 0);
    close_bus(dir, &nats);
}

/*
 * Reads the bus's counters into *stats until *field, one of them, reaches want (10 s at
 * most): a worker counts what it handled just after its inbox commit, whose rows the
 * test may already have seen.
 */
static void stats_reach(cl_bus_stats *stats, const int64_t *field, int64_t want)
{
    cl_error err = {0};

    for (int64_t end = cl_now_ms() + 10000;;) {
        struct timespec nap = {0, 10 * 1000000L};

        assert_int_equal(cl_bus_stats_get(harness.bus, stats, &err), CL_OK);
        if (*field >= want || cl_now_ms() >= end) {
            return;
        }
        nanosleep(&nap, NULL);
    }
}

/*
 * A relay round reaches a worker as one batch, in one inbox transaction: the relay queues
 * the round's messages at once and wakes the worker once. (Queued and woken one by one,
 * the worker woke at the first message and ran it alone, in a transaction and a commit of
 * its own, then the rest a few at a time.) One worker; the events, of distinct keys, are
 * committed in one transaction, so the relay's first round holds them all.
 */
static void test_a_relay_round_reaches_a_worker_as_one_batch(void **state)
{
    enum { EVENTS = 64 };
    char dir[256];
    nats_server nats = {0};
    cl_bus_stats stats = {0};
    cl_db_conn *conn = NULL;
    cl_error err = {0};

    (void)state;
    if (strcmp(transport, "nats") == 0) {
        skip(); /* over NATS, a batch is whatever one fetch brought */
    }
    open_bus(dir, sizeof(dir), &nats, 1, 1);
    assert_int_equal(cl_db_acquire(harness.pub, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_begin(conn, &err), CL_OK);
    for (int i = 1; i <= EVENTS; i++) {
        char key[16];
        json_t *payload = json_pack("{s:i}", "seq", 1);

        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(cl_bus_publish(conn, NULL, "pub.happened", key, payload, &err), CL_OK);
        json_decref(payload);
    }
    assert_int_equal(cl_db_commit(conn, &err), CL_OK);
    cl_db_release(conn);
    assert_all_once_in_order(EVENTS);
    stats_reach(&stats, &stats.handled, EVENTS);
    assert_int_equal(stats.handled, EVENTS);
    assert_int_equal(stats.inbox_commits, 1);
    close_bus(dir, &nats);
}

/* Runs sql with the texts args[0..n) bound, on db, committed. */
static void exec_on(cl_db *db, const char *sql, const char *const *args, int n)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};

    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(cl_stmt_bind_text(st, i + 1, args[i], &err), CL_OK);
    }
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);
}

/*
 * The inbox check is the inbox row's own insert (ADR 0043): a message whose id is in the
 * subscriber's inbox, or in its dead letters, is skipped; the others of the same batch are
 * handled, in order. Five rows of one key go into the outbox at once (one relay round, one
 * worker batch); the second is in the inbox already and the fourth was dead-lettered.
 */
static void test_messages_in_the_inbox_or_dead_letters_are_skipped(void **state)
{
    static const char inbox_sql[] = "INSERT INTO cl_inbox (message_id, type, source, handled_at) "
                                    "VALUES (?, 'pub.happened', 'pub', '2026-12-01T00:00:00Z')";
    static const char dead_sql[] =
        "INSERT INTO cl_dead_letters (message_id, type, msg_key, source, envelope, attempts, "
        "last_error, failed_at) VALUES (?, 'pub.happened', 'k', 'pub', '{}', 1, 'x', "
        "'2026-12-01T00:00:00Z')";
    static const char outbox_sql[] =
        "INSERT INTO cl_outbox (id, type, msg_key, occurred_at, occurred_ms, schema_version, "
        "traceparent, payload) VALUES (?, 'pub.happened', 'k', '2026-12-01T00:00:00Z', 0, 1, '', "
        "?)";
    static const char *const ids[] = {"msg-1", "msg-2-handled", "msg-3", "msg-4-dead", "msg-5"};
    char dir[256];
    nats_server nats = {0};
    cl_bus_stats stats = {0};
    cl_error err = {0};
    bus_seen seen = {0};
    cl_db_conn *conn = NULL;

    (void)state;
    open_bus(dir, sizeof(dir), &nats, 1, 1);
    exec_on(harness.sub, inbox_sql, &ids[1], 1);
    exec_on(harness.sub, dead_sql, &ids[3], 1);
    assert_int_equal(cl_db_acquire(harness.pub, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_begin(conn, &err), CL_OK);
    for (int i = 0; i < 5; i++) {
        char payload[32];
        cl_stmt *st;

        snprintf(payload, sizeof(payload), "{\"seq\":%d}", i + 1);
        assert_int_equal(cl_db_prepare(conn, outbox_sql, &st, &err), CL_OK);
        assert_int_equal(cl_stmt_bind_text(st, 1, ids[i], &err), CL_OK);
        assert_int_equal(cl_stmt_bind_text(st, 2, payload, &err), CL_OK);
        assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    }
    assert_int_equal(cl_db_commit(conn, &err), CL_OK);
    cl_db_release(conn);
    /* Written behind the bus's back: the relays' poll finds them. */
    assert_int_equal(bus_harness_wait(&harness, 3, 10000), 0);
    stats_reach(&stats, &stats.duplicates, 2);
    assert_int_equal(stats.duplicates, 2);
    assert_int_equal(bus_harness_seen(&harness, &seen), 0);
    assert_int_equal(seen.rows, 3);
    assert_int_equal(seen.distinct, 3);
    assert_int_equal(seen.late, 0);
    close_bus(dir, &nats);
}

/*
 * A relay round whose events all fall to one idle worker is handled on the relay's own
 * thread (deliver_local borrows the worker): no hand-off to the worker's thread and back,
 * two thread wake-ups a round. One key, 20 events published one at a time, each waited
 * for: the worker is idle at every round, so every event must be handled by "pub.relay".
 * Over NATS the fetcher hands every message to a worker; the test is in process only.
 */
static void test_a_round_for_one_idle_worker_runs_on_the_relay(void **state)
{
    static const char sql[] = "SELECT count(*) FROM seen WHERE thread = ?";
    char dir[256];
    nats_server nats = {0};
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;

    (void)state;
    if (strcmp(transport, "nats") == 0) {
        skip();
    }
    open_bus(dir, sizeof(dir), &nats, 1, 2);
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(bus_harness_publish(&harness, "one-key", i, 1, 1), 0);
        assert_int_equal(bus_harness_wait(&harness, i, 10000), 0);
    }
    assert_all_once_in_order(20);
    assert_int_equal(cl_db_acquire(harness.sub, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_text(st, 1, "pub.relay", &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    /* Before: 0, every event on "sub.worker". */
    assert_int_equal(cl_stmt_i64(st, 0), 20);
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);
    close_bus(dir, &nats);
}

/*
 * A lone relay on SQLite marks what it delivered many rounds at a time (bus.c, MARK_MS): 40
 * events, each published in a transaction of its own and waited for until its handler
 * committed, so 40 rounds. Write transactions in both databases: the 40 publishes, the 40
 * inbox transactions, one mark per MARK_MS (100 ms) of the run at most, plus one, and each
 * of the two relays' purge of old delivered rows (once a minute, the first soon after its
 * start). With a mark per round there were 40 more (121-122 in all), and the test failed
 * unless the run took over 3.8 s. On PostgreSQL the relays lease their rows and settle
 * with each claim.
 */
#define MARK_EVENTS 40
#define MARK_MS     100

static void test_a_lone_relay_marks_many_rounds_in_one_write(void **state)
{
    char dir[256];
    nats_server nats = {0};
    int writes;
    int64_t start;

    (void)state;
    open_bus(dir, sizeof(dir), &nats, 1, 2);
    if (harness.pg.db[0] != '\0') {
        close_bus(dir, &nats);
        skip();
    }
    /* The first event opens each pool's writer connection (ADR 0052): not counted. */
    assert_int_equal(bus_harness_publish(&harness, "one-key", 0, 1, 1), 0);
    assert_int_equal(bus_harness_wait(&harness, 1, 10000), 0);
    start = cl_now_ms();
    writes = atomic_load(&sqlite_counted_write_locks);
    for (int i = 1; i <= MARK_EVENTS; i++) {
        assert_int_equal(bus_harness_publish(&harness, "one-key", i, 1, 1), 0);
        assert_int_equal(bus_harness_wait(&harness, i + 1, 10000), 0);
    }
    writes = atomic_load(&sqlite_counted_write_locks) - writes;
    assert_in_range(writes, 2 * MARK_EVENTS,
                    2 * MARK_EVENTS + 3 + (int)((cl_now_ms() - start) / MARK_MS));
    assert_all_once_in_order(MARK_EVENTS + 1);
    close_bus(dir, &nats);
}

/*
 * Under load a relay's rounds gather the rows committed since the last (ADR 0070): after a
 * round that was not full, the next begins no sooner than the linger after it. 40 events,
 * each published as soon as the one before was seen handled, with a linger of 20 ms: the
 * rounds that carried them number at most one more than the whole 20 ms periods of the run
 * (from before the first commit to the last event seen handled), however slow the machine.
 * Without the linger each event was a round of its own, at once: 40 rounds in a few periods.
 */
#define LINGER_EVENTS 40
#define LINGER_MS     20

static void test_a_relays_rounds_under_load_are_a_linger_apart(void **state)
{
    char dir[256];
    nats_server nats = {0};
    cl_bus_stats stats = {0};
    int64_t start, periods;

    (void)state;
    bus_harness_linger_ms = LINGER_MS;
    open_bus(dir, sizeof(dir), &nats, 1, 1);
    bus_harness_linger_ms = -1;
    start = cl_now_ms();
    for (int i = 1; i <= LINGER_EVENTS; i++) {
        assert_int_equal(bus_harness_publish(&harness, "one-key", i, 1, 1), 0);
        assert_int_equal(bus_harness_wait(&harness, i, 10000), 0);
    }
    periods = (cl_now_ms() - start) / LINGER_MS;
    assert_all_once_in_order(LINGER_EVENTS);
    /* Over NATS the last event can be handled before its relay counts it. */
    stats_reach(&stats, &stats.published, LINGER_EVENTS);
    close_bus(dir, &nats);
    assert_int_equal(stats.published, LINGER_EVENTS);
    if (stats.relay_rounds > periods + 1) {
        fail_msg("%d events came in %lld rounds in %lld periods of the %d ms linger: at most "
                 "%lld rounds",
                 LINGER_EVENTS, (long long)stats.relay_rounds, (long long)periods, LINGER_MS,
                 (long long)periods + 1);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_key_order_holds_with_two_relays_and_two_consumers),
        cmocka_unit_test(test_a_failing_handler_in_a_batch_rolls_back_alone),
        cmocka_unit_test(test_a_publish_wakes_the_relay_after_its_commit),
        cmocka_unit_test(
            test_events_committed_during_a_round_are_relayed_without_waiting_for_the_poll),
        cmocka_unit_test(test_messages_in_the_inbox_or_dead_letters_are_skipped),
        cmocka_unit_test(test_a_relay_round_reaches_a_worker_as_one_batch),
        cmocka_unit_test(test_a_round_for_one_idle_worker_runs_on_the_relay),
        cmocka_unit_test(test_a_lone_relay_marks_many_rounds_in_one_write),
        cmocka_unit_test(test_a_relays_rounds_under_load_are_a_linger_apart),
    };

    if (argc > 1) {
        transport = argv[1];
    }
    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests_name(transport, tests, NULL, NULL);
}
