/*
 * The bus's own schema upgrades keep what the tables hold (platform/bus/schema.c). Both
 * databases are brought to bus schema v4, given rows the way a v4 binary left them, then
 * upgraded to the current version before the bus starts: the undelivered row is relayed,
 * the message already in the inbox is skipped, and the outbox's counter goes on from
 * where it was, a purged row's seq included. Then v5's own changes: the outbox takes a
 * second row with an id it holds already (no unique index on it), and on SQLite the inbox
 * is a WITHOUT ROWID table. On PostgreSQL too as test_bus_schema_pg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bus_harness.h"
#include "bus_internal.h"
#include "shop.h"

static const char outbox_sql[] =
    "INSERT INTO cl_outbox (id, type, msg_key, occurred_at, occurred_ms, schema_version, "
    "traceparent, payload, delivered_ms) VALUES (?, 'pub.happened', 'k', "
    "'2026-12-01T00:00:00Z', 0, 1, '', ?, ?)";
static const char inbox_sql[] = "INSERT INTO cl_inbox (message_id, type, source, handled_at) "
                                "VALUES ('old-2', 'pub.happened', 'pub', '2026-12-01T00:00:00Z')";

/* Runs sql on db, committed; with id set, binds id, payload and delivered (-1: NULL). */
static cl_status exec_on(cl_db *db, const char *sql, const char *id, const char *payload,
                         int64_t delivered)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    cl_status rc = cl_db_acquire(db, NULL, &conn, &err);

    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, sql, &st, &err);
    }
    if (rc == CL_OK && id != NULL) {
        rc = cl_stmt_bind_text(st, 1, id, &err);
        if (rc == CL_OK) {
            rc = cl_stmt_bind_text(st, 2, payload, &err);
        }
        if (rc == CL_OK) {
            rc = delivered < 0 ? cl_stmt_bind_null(st, 3, &err)
                               : cl_stmt_bind_i64(st, 3, delivered, &err);
        }
    }
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &err);
    }
    cl_db_release(conn);
    return rc;
}

/* The first column of sql's rows on db, as text, joined by commas, into out. */
static void query(cl_db *db, const char *sql, char *out, size_t size)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;

    out[0] = '\0';
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    while (row) {
        size_t len = strlen(out);

        snprintf(out + len, size - len, "%s%s", len > 0 ? "," : "",
                 cl_stmt_null(st, 0) ? "" : cl_stmt_text(st, 0));
        assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    }
    cl_db_release(conn);
}

/*
 * As a v4 binary left them: old-1 delivered, old-2 undelivered but handled already (in the
 * subscriber's inbox), old-3 undelivered, old-4 delivered and purged (the highest seq, 4,
 * is gone); then both databases are upgraded.
 */
static int fill_v4_then_upgrade(bus_harness *h, void *arg)
{
    cl_error err = {0};

    (void)arg;
    if (exec_on(h->pub, outbox_sql, "old-1", "{\"seq\":1}", 1) != CL_OK ||
        exec_on(h->pub, outbox_sql, "old-2", "{\"seq\":2}", -1) != CL_OK ||
        exec_on(h->pub, outbox_sql, "old-3", "{\"seq\":3}", -1) != CL_OK ||
        exec_on(h->pub, outbox_sql, "old-4", "{\"seq\":4}", 1) != CL_OK ||
        exec_on(h->pub, "DELETE FROM cl_outbox WHERE id = 'old-4'", NULL, NULL, 0) != CL_OK ||
        exec_on(h->sub, inbox_sql, NULL, NULL, 0) != CL_OK) {
        return -1;
    }
    if (cl_bus_schema_apply(h->pub, &err) != CL_OK || cl_bus_schema_apply(h->sub, &err) != CL_OK) {
        fprintf(stderr, "upgrade: %s\n", err.message);
        return -1;
    }
    return 0;
}

static void test_the_upgrade_from_v4_keeps_the_rows(void **state)
{
    bus_harness h;
    cl_db_conn *conn = NULL;
    cl_bus_stats stats = {0};
    cl_error err = {0};
    json_t *payload = json_pack("{s:i}", "seq", 5);
    char out[512];

    (void)state;
    bus_harness_schema_version = 4;
    assert_int_equal(bus_harness_open_with(&h, NULL, 1, 1, fill_v4_then_upgrade, NULL), 0);
    bus_harness_schema_version = 0;
    assert_int_equal(cl_bus_schema_check(h.pub, &err), CL_OK);
    assert_int_equal(cl_bus_schema_check(h.sub, &err), CL_OK);

    assert_int_equal(cl_db_acquire(h.pub, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_begin(conn, &err), CL_OK);
    assert_int_equal(cl_bus_publish(conn, NULL, "pub.happened", "k", payload, &err), CL_OK);
    assert_int_equal(cl_db_commit(conn, &err), CL_OK);
    cl_db_release(conn);
    json_decref(payload);

    /* old-3 and the new event handled, in order; old-2 skipped by the inbox it was in. */
    assert_int_equal(bus_harness_wait(&h, 2, 20000), 0);
    query(h.sub, "SELECT seq FROM seen ORDER BY seq", out, sizeof(out));
    assert_string_equal(out, "3,5");
    for (int64_t end = cl_now_ms() + 20000; stats.duplicates < 1 && cl_now_ms() < end;) {
        assert_int_equal(cl_bus_stats_get(h.bus, &stats, &err), CL_OK);
        test_poll_pause();
    }
    assert_int_equal(stats.duplicates, 1);
    /* The new row took seq 5: the counter went on past the purged row's 4. */
    query(h.pub, "SELECT CAST(max(seq) AS TEXT) FROM cl_outbox", out, sizeof(out));
    assert_string_equal(out, "5");

    /* v5: an id the outbox holds already is not refused (delivered: the relay leaves it). */
    assert_int_equal(exec_on(h.pub, outbox_sql, "old-1", "{\"seq\":1}", 1), CL_OK);
    if (!cl_db_is_postgres(h.sub)) {
        query(h.sub, "SELECT sql FROM sqlite_master WHERE name = 'cl_inbox'", out, sizeof(out));
        assert_non_null(strstr(out, "WITHOUT ROWID"));
    }
    bus_harness_close(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_upgrade_from_v4_keeps_the_rows),
    };

    return cmocka_run_group_tests_name("bus_schema", tests, NULL, NULL);
}
