/*
 * cl_stmt_bind_all binds each letter's argument to its parameter, in order; and the SQLite
 * driver's process-wide settings, which this file's process is the first to make (nothing
 * here calls SQLite before the driver's first open).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cleave/db.h"

static char dir[64];
static cl_db *db;
static cl_db_conn *conn;

static int setup(void **state)
{
    char path[128];
    cl_error err;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cleave-test-bind-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/t.db", dir);
    if (cl_db_open(&cl_db_sqlite, "t", path, NULL, &db, &err) != CL_OK ||
        cl_db_acquire(db, NULL, &conn, &err) != CL_OK) {
        return -1;
    }
    return cl_db_exec(conn, "CREATE TABLE t (a TEXT, b INTEGER, c TEXT, d INTEGER)", &err) == CL_OK
               ? 0
               : -1;
}

static int teardown(void **state)
{
    char path[128];

    (void)state;
    cl_db_release(conn);
    cl_db_close(db);
    snprintf(path, sizeof(path), "%s/t.db", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

static void test_bind_all_binds_in_order_with_nulls(void **state)
{
    cl_stmt *st;
    cl_error err;
    bool row;

    (void)state;
    assert_int_equal(cl_db_prepare(conn, "INSERT INTO t VALUES (?, ?, ?, ?)", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_all(st, &err, "titn", "x", (int64_t)42, (const char *)NULL),
                     CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, "SELECT a, b, c, d FROM t", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_string_equal(cl_stmt_text(st, 0), "x");
    assert_int_equal(cl_stmt_i64(st, 1), 42);
    assert_true(cl_stmt_null(st, 2));
    assert_true(cl_stmt_null(st, 3));
}

static void test_bind_all_refuses_an_unknown_letter(void **state)
{
    cl_stmt *st;
    cl_error err;

    (void)state;
    assert_int_equal(cl_db_prepare(conn, "SELECT ?", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_all(st, &err, "x", 1), CL_INTERNAL);
    assert_non_null(strstr(err.message, "'x'"));
}

/*
 * SQLite's memory statistics are off: with them on, every allocation SQLite makes takes one
 * process-wide mutex (ADR 0044, "Checkpoints"). They are counted from SQLite's start, so a
 * process whose SQLite holds memory (an open connection and its statements) reads 0.
 */
static void test_sqlite_keeps_no_memory_statistics(void **state)
{
    sqlite3_int64 used = -1, highwater = -1;

    (void)state;
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &highwater, 0), SQLITE_OK);
    assert_int_equal(used, 0);
    assert_int_equal(highwater, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_all_binds_in_order_with_nulls),
        cmocka_unit_test(test_bind_all_refuses_an_unknown_letter),
        cmocka_unit_test(test_sqlite_keeps_no_memory_statistics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
