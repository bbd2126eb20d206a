/*
 * A backlog of long-running operations run by two runners that claim each one's next in the
 * transaction of its outcome (ADR 0068): every operation runs and completes once, each
 * claimed once (epoch 1), none left open. On SQLite (one writer) and, as
 * test_operation_backlog_pg, on PostgreSQL, where the two runners' claims meet under
 * FOR UPDATE SKIP LOCKED.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_harness.h"
#include "cleave/util.h"
#include "shop.h"

#define BACKLOG 200
#define WAIT_MS 60000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int works;

static cl_status work(void *arg, const char *op_id, json_t *input, json_t **result, cl_error *err)
{
    (void)arg;
    (void)input;
    pthread_mutex_lock(&mu);
    works++;
    pthread_mutex_unlock(&mu);
    *result = json_pack("{s:s}", "op", op_id);
    return *result != NULL ? CL_OK : cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
}

/* The outcome's effect: one row per operation, which a second completion could not add. */
static cl_status complete(void *arg, cl_db_conn *conn, const char *op_id, json_t *input,
                          json_t *result, cl_error *err)
{
    cl_stmt *st;
    cl_status rc;

    (void)arg;
    (void)input;
    (void)result;
    rc = cl_db_prepare(conn, "INSERT INTO effects (op) VALUES (?)", &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, op_id, err);
    }
    return rc == CL_OK ? cl_stmt_drain(st, NULL, err) : rc;
}

static const cl_operation_kind kind = {"pub.paint", work, complete, NULL};

/* Registers the kind and creates the backlog, in one transaction, before the bus starts. */
static int before_start(bus_harness *h, void *arg)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    cl_status rc;

    (void)arg;
    rc = cl_bus_operation_kind(h->bus, "pub", &kind, &err);
    if (rc == CL_OK) {
        rc = cl_db_acquire(h->pub, NULL, &conn, &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_exec(conn, "CREATE TABLE effects (op TEXT PRIMARY KEY)", &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &err);
    }
    for (int i = 0; rc == CL_OK && i < BACKLOG; i++) {
        char id[CL_OPERATION_ID_MAX];

        rc = cl_operation_create(conn, "pub", "pub.paint", NULL, id, &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &err);
    }
    cl_db_release(conn);
    if (rc != CL_OK) {
        fprintf(stderr, "backlog: %s\n", err.message);
        return -1;
    }
    return 0;
}

/* The integer the first column of sql's one row holds, as text (SQLite and PostgreSQL). */
static long count(cl_db *db, const char *sql)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;
    long n = -1;

    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    n = strtol(cl_stmt_text(st, 0), NULL, 10);
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);
    return n;
}

static void test_two_runners_run_a_backlog_once_each(void **state)
{
    bus_harness h;
    cl_bus_stats stats;
    cl_error err = {0};
    int64_t until = cl_now_ms() + WAIT_MS;

    (void)state;
    memset(&h, 0, sizeof(h));
    /* Runners that do not poll: each run after the first was claimed by an outcome or a kick. */
    bus_harness_poll_ms = 60000;
    assert_int_equal(bus_harness_open_with(&h, NULL, 1, 2, before_start, NULL), 0);
    bus_harness_poll_ms = 20;
    for (;;) {
        assert_int_equal(cl_bus_stats_get(h.bus, &stats, &err), CL_OK);
        if (stats.operations_finished >= BACKLOG) {
            break;
        }
        if (cl_now_ms() >= until) {
            fail_msg("%lld of %d operations finished", (long long)stats.operations_finished,
                     BACKLOG);
        }
        test_poll_pause();
    }
    cl_bus_stop(h.bus);
    assert_int_equal(cl_bus_stats_get(h.bus, &stats, &err), CL_OK);
    assert_int_equal(stats.operations_finished, BACKLOG);
    pthread_mutex_lock(&mu);
    assert_int_equal(works, BACKLOG);
    pthread_mutex_unlock(&mu);
    assert_int_equal(count(h.pub, "SELECT CAST(count(*) AS TEXT) FROM effects"), BACKLOG);
    assert_int_equal(count(h.pub, "SELECT CAST(count(*) AS TEXT) FROM cl_operations "
                                  "WHERE status = 'succeeded' AND lease_epoch = 1"),
                     BACKLOG);
    bus_harness_close(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_runners_run_a_backlog_once_each),
    };

    return cmocka_run_group_tests_name("operation_backlog", tests, NULL, NULL);
}
