/*
 * What a relay leaves behind (issue #16: the demo seed's 1,200 events left 1.5 MB of SQLite's
 * page cache in the monolith, 780 KB of it read by the purge alone).
 * - Its purge of delivered outbox rows (cl__bus_purge_sql, once a minute) deletes the rows
 *   delivered before its cutoff from the oldest on, up to the first row that stays, and reads
 *   no further. Asked for every old row wherever it was, it read the whole outbox each minute
 *   (nothing indexes delivered_ms).
 * - After a burst (full rounds) it frees what the database's connections cache once every row
 *   is marked (cl_db_shrink): outbox pages nothing reads again.
 * - Its rounds reuse the room they read rows into (ADR 0069): a round's 120 KB taken and
 *   given back each time cost it heap trims and page faults under a steady load.
 * On PostgreSQL too as test_bus_cleanup_pg (the purge's rows and the rounds' room).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "bus_harness.h"
#include "bus_internal.h"
#include "cleave/util.h"
#include "shop.h"
#include "sqlite_counting.h"

#define OLD    1000 /* delivered_ms of a row delivered long ago */
#define CUTOFF 5000 /* the purge's: rows delivered before it go */
#define RECENT 9000 /* delivered_ms of a row delivered since */
/* Rows after the old ones at the head of the outbox, for the cost of a purge. */
#define KEPT   1000

/* Runs sql on db, committed, with v bound to its one parameter when bind. 0 or -1. */
static int run(cl_db *db, const char *sql, bool bind, int64_t v)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    cl_status rc = cl_db_acquire(db, NULL, &conn, &err);

    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, sql, &st, &err);
    }
    if (rc == CL_OK && bind) {
        rc = cl_stmt_bind_i64(st, 1, v, &err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        fprintf(stderr, "%s: %s\n", sql, err.message);
        return -1;
    }
    return 0;
}

/*
 * The SQL of the rows added: literals, since cl_db_prepare caches a statement by its text's
 * address. Built in stack buffers, the test failed in an optimised build ("4" left, not
 * "4,5,6"): the 1,000 rows' INSERT ran as the one-row INSERT cached before it.
 */
#define ROW_INSERT                                                                                 \
    "INSERT INTO cl_outbox (id, type, msg_key, occurred_at, occurred_ms, schema_version, "         \
    "traceparent, payload, delivered_ms) "
#define ROW_VALUES "'e', 'pub.happened', 'k', '2026-12-01T00:00:00Z', 0, 1, '', '{}'"
#define STR_(x)    #x
#define STR(x)     STR_(x)

/* An outbox row delivered at delivered (-1: not delivered yet), the next seq. 0 or -1. */
static int add_row(cl_db *db, int64_t delivered)
{
    static const char delivered_sql[] = ROW_INSERT "VALUES (" ROW_VALUES ", ?)";
    static const char pending_sql[] = ROW_INSERT "VALUES (" ROW_VALUES ", NULL)";

    return run(db, delivered < 0 ? pending_sql : delivered_sql, delivered >= 0, delivered);
}

/* The outbox's seqs, in order, joined by commas, into out. 0 or -1. */
static int seqs(cl_db *db, char *out, size_t size)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;
    cl_status rc = cl_db_acquire(db, NULL, &conn, &err);

    out[0] = '\0';
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, "SELECT seq FROM cl_outbox ORDER BY seq", &st, &err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &err);
    }
    while (rc == CL_OK && row) {
        size_t len = strlen(out);

        snprintf(out + len, size - len, "%s%lld", len > 0 ? "," : "",
                 (long long)cl_stmt_i64(st, 0));
        rc = cl_stmt_step(st, &row, &err);
    }
    cl_db_release(conn);
    return rc == CL_OK ? 0 : -1;
}

typedef struct purged {
    char after_first[128]; /* the seqs left by each purge */
    char after_second[128];
    char after_third[128];
} purged;

/*
 * Before the bus starts, so that no relay purges meanwhile: seqs 1-2 delivered long ago,
 * 3 not delivered, 4 delivered long ago, 5 delivered since.
 */
static int purge_in_turn(bus_harness *h, void *arg)
{
    purged *p = arg;
    int64_t rows[] = {OLD, OLD, -1, OLD, RECENT};

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (add_row(h->pub, rows[i]) != 0) {
            return -1;
        }
    }
    if (run(h->pub, cl__bus_purge_sql, true, CUTOFF) != 0 ||
        seqs(h->pub, p->after_first, sizeof(p->after_first)) != 0 ||
        run(h->pub, "UPDATE cl_outbox SET delivered_ms = ? WHERE seq = 3", true, OLD) != 0 ||
        run(h->pub, cl__bus_purge_sql, true, CUTOFF) != 0 ||
        seqs(h->pub, p->after_second, sizeof(p->after_second)) != 0 ||
        run(h->pub, "UPDATE cl_outbox SET delivered_ms = ?", true, OLD) != 0 ||
        run(h->pub, cl__bus_purge_sql, true, CUTOFF) != 0 ||
        seqs(h->pub, p->after_third, sizeof(p->after_third)) != 0) {
        return -1;
    }
    return 0;
}

static void test_the_purge_deletes_old_delivered_rows_from_the_oldest_on(void **state)
{
    bus_harness h;
    purged p = {0};

    (void)state;
    assert_int_equal(bus_harness_open_with(&h, NULL, 1, 1, purge_in_turn, &p), 0);
    /* 3 is not delivered: it stays, and so does 4 behind it, until a purge after 3's. */
    assert_string_equal(p.after_first, "3,4,5");
    /* 5 was delivered since the cutoff. */
    assert_string_equal(p.after_second, "5");
    /* An outbox of old delivered rows only goes whole. */
    assert_string_equal(p.after_third, "");
    bus_harness_close(&h);
}

/* Rows stepped through by full scans in a purge of the SQLite file path, or -1. */
static int purge_scan_steps(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int steps = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, cl__bus_purge_sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, CUTOFF) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE) {
        steps = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    } else {
        fprintf(stderr, "purge: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return steps;
}

typedef struct scanned {
    bool pg;        /* on PostgreSQL: the rows only are checked */
    int steps;      /* rows the purge stepped through in full scans (SQLite) */
    char left[128]; /* the outbox's first seqs after it */
} scanned;

/*
 * Before the bus starts (its relay purges at once): 3 rows delivered long ago, then KEPT
 * delivered since, and on SQLite the purge, through a connection of its own that counts.
 */
static int old_head_then_recent(bus_harness *h, void *arg)
{
    static const char kept_sql[] =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " STR(
            KEPT) ") " ROW_INSERT "SELECT " ROW_VALUES ", ? FROM n";
    scanned *s = arg;
    char path[300];

    for (int i = 0; i < 3; i++) {
        if (add_row(h->pub, OLD) != 0) {
            return -1;
        }
    }
    if (run(h->pub, kept_sql, true, RECENT) != 0) {
        return -1;
    }
    s->pg = h->pg.db[0] != '\0';
    if (!s->pg) {
        snprintf(path, sizeof(path), "%s/pub.db", h->dir);
        s->steps = purge_scan_steps(path);
    } else if (run(h->pub, cl__bus_purge_sql, true, CUTOFF) != 0) {
        return -1;
    }
    return run(h->pub, "DELETE FROM cl_outbox WHERE seq > 6", false, 0) != 0 ||
                   seqs(h->pub, s->left, sizeof(s->left)) != 0
               ? -1
               : 0;
}

/* On SQLite: the purge steps through the rows it deletes and the first it keeps, no more. */
static void test_the_purge_reads_what_it_deletes_not_the_outbox(void **state)
{
    bus_harness h;
    scanned s = {0};

    (void)state;
    assert_int_equal(bus_harness_open_with(&h, NULL, 1, 1, old_head_then_recent, &s), 0);
    bus_harness_close(&h);
    assert_string_equal(s.left, "4,5,6");
    if (!s.pg && (s.steps < 0 || s.steps > 3 + 1)) {
        fail_msg("the purge of 3 rows stepped through %d rows of an outbox of %d", s.steps,
                 3 + KEPT);
    }
}

/* File reads (pages no cache held) of a read of the whole outbox on the pool's writer, or -1. */
static int outbox_reads_on_the_writer(cl_db *db)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;
    int reads = atomic_load(&sqlite_counted_reads);
    cl_status rc = cl_db_acquire(db, NULL, &conn, &err);

    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, "SELECT sum(length(payload)) FROM cl_outbox", &st, &err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &err);
    }
    if (rc == CL_OK) {
        reads = atomic_load(&sqlite_counted_reads) - reads;
        rc = cl_db_commit(conn, &err);
    }
    cl_db_release(conn);
    if (rc != CL_OK || !row) {
        fprintf(stderr, "reading the outbox: %s\n", err.message);
        return -1;
    }
    return reads;
}

/*
 * BURST events in one transaction, so that the relay claims full rounds. The writer wrote
 * and marked every outbox page, so holds them all; once the relay went idle, a read of the
 * outbox on it comes from the files.
 */
#define BURST     (CL__BUS_BATCH * 2 + 100)
#define MIN_READS 40 /* the outbox's pages: BURST rows of some 150 bytes on 1 KiB pages */

static void test_after_a_burst_the_relay_frees_the_cached_pages(void **state)
{
    bus_harness h;
    int reads = 0;

    (void)state;
    assert_int_equal(bus_harness_open(&h, NULL, 1, 2), 0);
    if (h.pg.db[0] != '\0') {
        bus_harness_close(&h);
        skip();
    }
    assert_int_equal(bus_harness_publish(&h, "k", 1, BURST, BURST), 0);
    assert_int_equal(bus_harness_wait(&h, BURST, 20000), 0);
    for (int64_t end = cl_now_ms() + 20000; reads < MIN_READS && cl_now_ms() < end;) {
        reads = outbox_reads_on_the_writer(h.pub);
        assert_true(reads >= 0);
        test_poll_pause();
    }
    bus_harness_close(&h);
    if (reads < MIN_READS) {
        fail_msg("20 s after a burst of %d events the writer still held the outbox (a read of "
                 "it took %d pages from the files)",
                 BURST, reads);
    }
}

/*
 * Allocations of room for a relay's round (CL__BUS_BATCH messages), counted as the process
 * makes them: this test links with --wrap=malloc, so that the bus's calls come here.
 */
static atomic_int round_rooms;

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

void *__wrap_malloc(size_t size)
{
    if (size == CL__BUS_BATCH * sizeof(cl__msg)) {
        atomic_fetch_add(&round_rooms, 1);
    }
    return __real_malloc(size);
}

#define ROUNDS 20

/*
 * ROUNDS events, each published once the one before was handled, so that each is a round of
 * its own. Two modules, a relay each: each relay takes room for its rounds as it starts, and
 * the publisher's relay room for the next round at its first row; then no more, however many
 * rounds come. Counted once the bus stopped, so that every relay has ended.
 */
static void test_a_relays_rounds_reuse_their_room(void **state)
{
    bus_harness h;
    int rooms;

    (void)state;
    atomic_store(&round_rooms, 0);
    assert_int_equal(bus_harness_open(&h, NULL, 1, 1), 0);
    for (int i = 1; i <= ROUNDS; i++) {
        assert_int_equal(bus_harness_publish(&h, "k", i, 1, 1), 0);
        assert_int_equal(bus_harness_wait(&h, i, 20000), 0);
    }
    bus_harness_close(&h);
    rooms = atomic_load(&round_rooms);
    if (rooms != 3) {
        fail_msg("two relays over %d rounds took room for a round %d times, not 3", ROUNDS, rooms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_purge_deletes_old_delivered_rows_from_the_oldest_on),
        cmocka_unit_test(test_the_purge_reads_what_it_deletes_not_the_outbox),
        cmocka_unit_test(test_after_a_burst_the_relay_frees_the_cached_pages),
        cmocka_unit_test(test_a_relays_rounds_reuse_their_room),
    };

    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests_name("bus_cleanup", tests, NULL, NULL);
}
