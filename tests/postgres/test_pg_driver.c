/*
 * The PostgreSQL driver and the pool over it, on a fresh database of the test run's
 * cluster: placeholders, statements and their cache, status mapping, transactions left
 * open, pool bounds and figures, and what happens when the server drops a connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleave/db.h"
#include "db_changes.h"
#include "log_capture.h"
#include "pgtest.h"

/* Internal to the driver (platform/db/postgres.c), tested here directly. */
char *cl__pg_translate(const char *sql, int *nparams);

static pgtest pg;
static char admin[512];

static int setup(void **state)
{
    (void)state;
    if (pgtest_load(&pg) != 0 || pgtest_db_create(&pg) != 0) {
        return -1;
    }
    pgtest_url(pg.primary, pg.db, admin, sizeof(admin));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return pgtest_db_drop(&pg);
}

/* A pool as the superuser with a recognisable application_name. */
static cl_db *open_db(const char *app, const cl_db_options *opt)
{
    char target[2048];
    cl_error err = {0};
    cl_db *db = NULL;

    assert_int_equal(cl_db_pg_target(admin, NULL, app, NULL, target, sizeof(target), &err), CL_OK);
    if (cl_db_open(&cl_db_postgres, "drvtest", target, opt, &db, &err) != CL_OK) {
        fail_msg("open: %s", err.message);
    }
    return db;
}

static void exec_ok(cl_db_conn *c, const char *sql)
{
    cl_error err = {0};
    if (cl_db_exec(c, sql, &err) != CL_OK) {
        fail_msg("%s: %s", sql, err.message);
    }
}

static void test_placeholders_are_translated_outside_literals(void **state)
{
    static const struct {
        const char *in;
        const char *out;
        int n;
    } cases[] = {
        {"SELECT ?", "SELECT $1", 1},
        {"SELECT a FROM t WHERE a = ? AND b < ? LIMIT ?",
         "SELECT a FROM t WHERE a = $1 AND b < $2 LIMIT $3", 3},
        {"SELECT '?', ? FROM t", "SELECT '?', $1 FROM t", 1},
        {"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1},
        {"SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1},
        {"SELECT \"odd?name\" FROM t WHERE x = ?", "SELECT \"odd?name\" FROM t WHERE x = $1", 1},
        {"SELECT 1 -- why?\n, ?", "SELECT 1 -- why?\n, $1", 1},
        {"SELECT /* ? */ ?", "SELECT /* ? */ $1", 1},
        {"SELECT $x$ ? $x$, ?", "SELECT $x$ ? $x$, $1", 1},
        {"SELECT 1", "SELECT 1", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = -1;
        char *out = cl__pg_translate(cases[i].in, &n);

        assert_non_null(out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, cases[i].n);
        free(out);
    }
}

static void test_statements_bind_step_and_are_cached(void **state)
{
    static const char ins[] = "INSERT INTO things (id, name, note) VALUES (?, ?, ?)";
    static const char sel[] = "SELECT id, name, note FROM things WHERE id >= ? ORDER BY id";
    cl_db *db = open_db("cleave-drvtest", NULL);
    cl_db_conn *c = NULL;
    cl_stmt *st, *again;
    cl_error err = {0};
    bool row = false;

    (void)state;
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    exec_ok(c, "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL, note TEXT)");
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(cl_db_prepare(c, ins, &st, &err), CL_OK);
        assert_int_equal(cl_stmt_bind_i64(st, 1, (int64_t)i * 5000000000LL, &err), CL_OK);
        assert_int_equal(cl_stmt_bind_text(st, 2, i == 2 ? "caf\xc3\xa9 'q'" : "plain", &err),
                         CL_OK);
        assert_int_equal(cl_stmt_bind_text(st, 3, i == 3 ? "n" : NULL, &err), CL_OK);
        assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
        assert_false(row);
    }
    assert_int_equal(cl_db_prepare(c, sel, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_i64(st, 1, 10000000000LL, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_int_equal(cl_stmt_i64(st, 0), 10000000000LL);
    assert_string_equal(cl_stmt_text(st, 1), "caf\xc3\xa9 'q'");
    assert_true(cl_stmt_null(st, 2));
    assert_null(cl_stmt_text(st, 2));
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_string_equal(cl_stmt_text(st, 2), "n");
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    /* The same literal is the same prepared statement, rewound with bindings cleared. */
    assert_int_equal(cl_db_prepare(c, sel, &again, &err), CL_OK);
    assert_ptr_equal(again, st);
    assert_int_equal(cl_stmt_bind_i64(again, 1, 0, &err), CL_OK);
    assert_int_equal(cl_stmt_step(again, &row, &err), CL_OK);
    assert_true(row);
    assert_int_equal(cl_stmt_i64(again, 0), 5000000000LL);
    cl_db_release(c);
    cl_db_close(db);
}

static void test_run_counts_the_rows_a_write_changed(void **state)
{
    cl_db *db = open_db("cleave-drvtest", NULL);
    cl_db_conn *c = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    db_changes_check(c);
    cl_db_release(c);
    cl_db_close(db);
}

static void test_finished_statement_runs_nothing_when_stepped(void **state)
{
    cl_db *db = open_db("cleave-drvtest", NULL);
    cl_db_conn *c = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    db_finished_check(c);
    cl_db_release(c);
    cl_db_close(db);
}

static void test_sqlstates_map_to_statuses(void **state)
{
    static const char ins_parent[] = "INSERT INTO parent (id) VALUES (?)";
    static const char ins_child[] = "INSERT INTO child (parent_id) VALUES (?)";
    static const char bad[] = "SELEC nonsense";
    cl_db *db = open_db("cleave-drvtest", NULL);
    cl_db_conn *c = NULL;
    cl_stmt *st;
    cl_error err = {0};
    log_capture lc;
    char *logged;
    cl_ctx ctx;
    bool row;

    (void)state;
    cl_ctx_init(&ctx, 0);
    cl_strlcpy(ctx.request_id, "req-pg-test", sizeof(ctx.request_id));
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    exec_ok(c, "CREATE TABLE parent (id BIGINT PRIMARY KEY);"
               "CREATE TABLE child (parent_id BIGINT REFERENCES parent (id))");
    assert_int_equal(cl_db_prepare(c, ins_parent, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_i64(st, 1, 1, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_int_equal(cl_db_prepare(c, ins_parent, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_i64(st, 1, 1, &err), CL_OK);
    cl_log_bind(&ctx);
    /* A conflict is logged at debug level only (platform/db/db.c, driver_failed). */
    cl_log_set_level(CL_LOG_DEBUG);
    assert_int_equal(log_capture_begin(&lc), 0);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_CONFLICT);
    /* PostgreSQL's text goes to the log with the request id, never into the answer. */
    logged = log_capture_text(&lc);
    log_capture_end(&lc);
    cl_log_set_level(CL_LOG_INFO);
    cl_log_bind(NULL);
    assert_non_null(logged);
    assert_null(strstr(err.message, "duplicate key"));
    assert_non_null(strstr(logged, "duplicate key"));
    assert_non_null(strstr(logged, "\"http.request.id\":\"req-pg-test\""));
    free(logged);
    assert_int_equal(cl_db_prepare(c, ins_child, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_i64(st, 1, 42, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_CONFLICT);
    assert_int_equal(cl_db_prepare(c, bad, &st, &err), CL_INTERNAL);
    assert_int_equal(cl_db_exec(c, "SET statement_timeout = 50; SELECT pg_sleep(2)", &err),
                     CL_DEADLINE_EXCEEDED);
    exec_ok(c, "SET statement_timeout = 0");
    cl_db_release(c);
    cl_db_close(db);
}

static void test_transaction_left_open_is_rolled_back(void **state)
{
    cl_db *db = open_db("cleave-drvtest", &(cl_db_options){.max_conns = 1});
    cl_db_conn *c = NULL;
    cl_error err = {0};
    char out[16];

    (void)state;
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    exec_ok(c, "CREATE TABLE t (id INT)");
    assert_int_equal(cl_db_begin(c, &err), CL_OK);
    exec_ok(c, "INSERT INTO t VALUES (1)");
    cl_db_release(c);
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_begin(c, &err), CL_OK);
    exec_ok(c, "INSERT INTO t VALUES (2)");
    assert_int_equal(cl_db_commit(c, &err), CL_OK);
    cl_db_release(c);
    assert_int_equal(
        pgtest_query(admin, "SELECT string_agg(id::text, ',') FROM t", out, sizeof(out)), 0);
    assert_string_equal(out, "2");
    cl_db_close(db);
}

static void test_pool_bounds_timeouts_and_figures(void **state)
{
    cl_db_options opt = {.min_conns = 2, .max_conns = 2, .acquire_timeout_ms = 100};
    cl_db *db = open_db("cleave-drvtest", &opt);
    cl_db_conn *a = NULL, *b = NULL, *c = NULL;
    cl_db_stats s;
    cl_error err = {0};

    (void)state;
    cl_db_stats_get(db, &s);
    assert_int_equal(s.size, 2); /* min_conns are open before first use */
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.min, 2);
    assert_int_equal(s.max, 2);
    assert_int_equal(cl_db_acquire(db, NULL, &a, &err), CL_OK);
    assert_int_equal(cl_db_acquire(db, NULL, &b, &err), CL_OK);
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_UNAVAILABLE);
    cl_db_stats_get(db, &s);
    assert_int_equal(s.in_use, 2);
    assert_int_equal(s.acquires, 2);
    assert_int_equal(s.waits, 1);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.connects, 2);
    cl_db_release(a);
    cl_db_release(b);
    cl_db_stats_get(db, &s);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.in_use, 0);
    cl_db_close(db);
}

/* Ends the server side of every connection called app, waiting until they are gone. */
static void terminate(const char *app)
{
    char sql[256], out[16];

    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
             "WHERE application_name = '%s' AND datname = current_database()",
             app);
    assert_int_equal(pgtest_query(admin, sql, out, sizeof(out)), 0);
    assert_int_not_equal(strtol(out, NULL, 10), 0);
}

static void test_dead_connection_fails_fast_and_is_replaced(void **state)
{
    /* A long idle check, so that the dead connection is handed out as it is. */
    cl_db_options opt = {.max_conns = 1, .idle_check_ms = 600000};
    cl_db *db = open_db("cleave-drvtest-dead", &opt);
    cl_db_conn *c = NULL;
    cl_db_stats s;
    cl_error err = {0};

    (void)state;
    terminate("cleave-drvtest-dead");
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_exec(c, "SELECT 1", &err), CL_UNAVAILABLE);
    cl_db_release(c);
    cl_db_stats_get(db, &s);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.size, 0);
    /* The next borrower gets a new connection: no restart of anything. */
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    exec_ok(c, "SELECT 1");
    cl_db_release(c);
    cl_db_stats_get(db, &s);
    assert_int_equal(s.connects, 2);
    cl_db_close(db);
}

static void test_idle_health_check_replaces_dead_connection_before_use(void **state)
{
    cl_db_options opt = {.max_conns = 2, .min_conns = 2, .idle_check_ms = 1};
    cl_db *db = open_db("cleave-drvtest-idle", &opt);
    cl_db_conn *c = NULL;
    cl_db_stats s;
    cl_error err = {0};

    (void)state;
    terminate("cleave-drvtest-idle");
    /* Both idle connections are dead; the pool finds out by pinging, not by failing. */
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    exec_ok(c, "SELECT 1");
    cl_db_release(c);
    cl_db_stats_get(db, &s);
    assert_true(s.pings >= 2);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(cl_db_ping(db, &err), CL_OK);
    cl_db_close(db);
}

static void test_unreachable_server_is_unavailable_quickly(void **state)
{
    cl_error err = {0};
    cl_db *db = NULL;

    (void)state;
    /* Port 1 on loopback refuses at once. */
    assert_int_equal(cl_db_open(&cl_db_postgres, "nowhere", "host=127.0.0.1 port=1 dbname=x user=x",
                                NULL, &db, &err),
                     CL_UNAVAILABLE);
    assert_null(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placeholders_are_translated_outside_literals),
        cmocka_unit_test(test_statements_bind_step_and_are_cached),
        cmocka_unit_test(test_run_counts_the_rows_a_write_changed),
        cmocka_unit_test(test_finished_statement_runs_nothing_when_stepped),
        cmocka_unit_test(test_sqlstates_map_to_statuses),
        cmocka_unit_test(test_transaction_left_open_is_rolled_back),
        cmocka_unit_test(test_pool_bounds_timeouts_and_figures),
        cmocka_unit_test(test_dead_connection_fails_fast_and_is_replaced),
        cmocka_unit_test(test_idle_health_check_replaces_dead_connection_before_use),
        cmocka_unit_test(test_unreachable_server_is_unavailable_quickly),
    };
    return cmocka_run_group_tests_name("postgres driver", tests, setup, teardown);
}
