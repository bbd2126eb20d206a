/*
 * Test support, header only: what cl_stmt_run tells of the rows a statement changed, and
 * what stepping a statement that is done does, the same checks for every driver
 * (test_db_sqlite, test_pg_driver). c is a connection with no table named changed_rows or
 * finished_rows.
 */
#ifndef CLEAVE_TEST_DB_CHANGES_H
#define CLEAVE_TEST_DB_CHANGES_H

#include "cleave/db.h"

/* Runs sql (with one text parameter when arg is not NULL); the rows it changed, or -1. */
static inline int db_changes_run(cl_db_conn *c, const char *sql, const char *arg, cl_status want)
{
    cl_stmt *st = NULL;
    cl_error err = {0};
    int changed = -1;

    assert_int_equal(cl_db_prepare(c, sql, &st, &err), CL_OK);
    if (arg != NULL) {
        assert_int_equal(cl_stmt_bind_text(st, 1, arg, &err), CL_OK);
    }
    assert_int_equal(cl_stmt_run(st, &changed, &err), want);
    if (want != CL_OK) {
        assert_true(err.message[0] != '\0');
        return -1;
    }
    return changed;
}

static inline void db_changes_check(cl_db_conn *c)
{
    cl_error err = {0};

    assert_int_equal(
        cl_db_exec(c,
                   "CREATE TABLE changed_rows (k TEXT PRIMARY KEY, v BIGINT NOT NULL);"
                   "INSERT INTO changed_rows (k, v) VALUES ('a', 1), ('b', 1), ('c', 2)",
                   &err),
        CL_OK);
    assert_int_equal(
        db_changes_run(c, "UPDATE changed_rows SET v = v + 10 WHERE v = 1", NULL, CL_OK), 2);
    assert_int_equal(db_changes_run(c, "UPDATE changed_rows SET v = 0 WHERE k = ?", "none", CL_OK),
                     0);
    assert_int_equal(db_changes_run(c,
                                    "INSERT INTO changed_rows (k, v) VALUES (?, 5) "
                                    "ON CONFLICT (k) DO NOTHING",
                                    "a", CL_OK),
                     0);
    assert_int_equal(db_changes_run(c,
                                    "INSERT INTO changed_rows (k, v) VALUES (?, 5) "
                                    "ON CONFLICT (k) DO NOTHING",
                                    "d", CL_OK),
                     1);
    /* An upsert whose update the WHERE refuses changes nothing. */
    assert_int_equal(db_changes_run(c,
                                    "INSERT INTO changed_rows (k, v) VALUES (?, 7) "
                                    "ON CONFLICT (k) DO UPDATE SET v = excluded.v "
                                    "WHERE changed_rows.v > 100",
                                    "c", CL_OK),
                     0);
    assert_int_equal(db_changes_run(c, "DELETE FROM changed_rows WHERE k <> ?", "a", CL_OK), 3);
    /* A statement that writes nothing changed nothing, whatever ran before it. */
    assert_int_equal(db_changes_run(c, "SELECT 1 WHERE 1 = 0", NULL, CL_OK), 0);
    /* One that returns rows is not for cl_stmt_run. */
    db_changes_run(c, "SELECT k FROM changed_rows", NULL, CL_INTERNAL);
    assert_int_equal(db_changes_run(c, "DELETE FROM changed_rows", NULL, CL_OK), 1);
}

/*
 * A statement that said it is done stays done until it is prepared again: stepping it runs
 * nothing. SQLite's own step runs a finished statement again from the start.
 */
static inline void db_finished_check(cl_db_conn *c)
{
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = true;
    int rows = -1;

    assert_int_equal(cl_db_exec(c, "CREATE TABLE finished_rows (k TEXT NOT NULL)", &err), CL_OK);
    /* An INSERT stepped, then drained (as a caller that steps before it drains does): one row. */
    assert_int_equal(cl_db_prepare(c, "INSERT INTO finished_rows (k) VALUES ('a')", &st, &err),
                     CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    assert_int_equal(cl_stmt_drain(st, &rows, &err), CL_OK);
    assert_int_equal(rows, 0);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    assert_int_equal(db_changes_run(c, "DELETE FROM finished_rows WHERE k = ?", "a", CL_OK), 1);
    /* A read that found nothing finds nothing again, though a row came since. */
    assert_int_equal(cl_db_prepare(c, "SELECT k FROM finished_rows", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    assert_int_equal(db_changes_run(c, "INSERT INTO finished_rows (k) VALUES (?)", "b", CL_OK), 1);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    /* Prepared again, it runs again. */
    assert_int_equal(cl_db_prepare(c, "SELECT k FROM finished_rows", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_string_equal(cl_stmt_text(st, 0), "b");
}

#endif
