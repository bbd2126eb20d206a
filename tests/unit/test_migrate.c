/* Migrations against a throwaway SQLite file and a throwaway migrations directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/log_capture.h"
#include "../support/sqlite_counting.h"
#include "cleave/migrate.h"

#define MODULE "test"

typedef struct fixture {
    char root[64];    /* the temp dir */
    char dir[96];     /* root/migrations */
    char moddir[128]; /* root/migrations/test */
    char dbpath[128]; /* root/test.db */
    cl_db *db;
} fixture;

/* Removes root/migrations/test, root/migrations and the files directly in each. */
static void remove_files_in(const char *dir)
{
    char path[512];
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        return;
    }
    for (;;) {
        de = readdir(d);
        if (de == NULL) {
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void write_file(const fixture *f, const char *name, const char *text)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", f->moddir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    cl_error err = {0};

    if (f == NULL) {
        return -1;
    }
    strcpy(f->root, "/tmp/cleave-migrate-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/migrations", f->root);
    snprintf(f->moddir, sizeof(f->moddir), "%s/%s", f->dir, MODULE);
    snprintf(f->dbpath, sizeof(f->dbpath), "%s/test.db", f->root);
    if (mkdir(f->dir, 0700) != 0 || mkdir(f->moddir, 0700) != 0) {
        return -1;
    }
    if (cl_db_open(&cl_db_sqlite, MODULE, f->dbpath, NULL, &f->db, &err) != CL_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    /* A test's table of known migrations (cl_migrate_known) ends with it. */
    cl_migrate_known(NULL, 0);
    cl_db_close(f->db);
    remove_files_in(f->moddir);
    rmdir(f->moddir);
    rmdir(f->dir);
    remove_files_in(f->root);
    rmdir(f->root);
    free(f);
    return 0;
}

static int64_t query_i64(cl_db *db, const char *sql)
{
    cl_db_conn *c = NULL;
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = false;
    int64_t v;

    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_prepare(c, sql, &st, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    v = cl_stmt_i64(st, 0);
    cl_db_release(c);
    return v;
}

static bool table_exists(cl_db *db, const char *table)
{
    cl_db_conn *c = NULL;
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = false;
    bool found;

    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_prepare(c,
                                   "SELECT count(*) FROM sqlite_master "
                                   "WHERE type = 'table' AND name = ?",
                                   &st, &err),
                     CL_OK);
    assert_int_equal(cl_stmt_bind_text(st, 1, table, &err), CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    found = cl_stmt_i64(st, 0) == 1;
    cl_db_release(c);
    return found;
}

static const char init_sql[] = "CREATE TABLE a (id INTEGER PRIMARY KEY);\n";
static const char init_sha[] = "1a135f3506e1e509e8cea5ea63e883c5e9ca149cb442c612e03e4b6201d15f23";
/* Depends on table a: applying it before 0001 would fail. */
static const char second_sql[] = "CREATE TABLE b (a_id INTEGER NOT NULL REFERENCES a(id));\n"
                                 "CREATE INDEX b_a ON b (a_id);\n";

static void write_two(const fixture *f)
{
    /* Written in reverse order, so that directory order cannot pass for version order. */
    write_file(f, "0002_b.sql", second_sql);
    write_file(f, "0001_init.sql", init_sql);
}

static void apply_ok(const fixture *f, int want)
{
    cl_error err = {0};
    int applied = -1;
    cl_status st = cl_migrate_apply(f->db, f->dir, MODULE, &applied, &err);

    if (st != CL_OK) {
        fail_msg("apply: %s: %s", cl_status_name(st), err.message);
    }
    assert_int_equal(applied, want);
}

static void test_migrate_applies_in_version_order_and_records_checksums(void **state)
{
    fixture *f = *state;
    cl_db_conn *c = NULL;
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = false;

    write_two(f);
    apply_ok(f, 2);
    assert_true(table_exists(f->db, "a"));
    assert_true(table_exists(f->db, "b"));

    assert_int_equal(cl_db_acquire(f->db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_prepare(c,
                                   "SELECT version, name, checksum, applied_at "
                                   "FROM cl_migrations ORDER BY version",
                                   &st, &err),
                     CL_OK);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_int_equal(cl_stmt_i64(st, 0), 1);
    assert_string_equal(cl_stmt_text(st, 1), "0001_init.sql");
    assert_string_equal(cl_stmt_text(st, 2), init_sha);
    assert_int_equal(strlen(cl_stmt_text(st, 3)), 24);
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_true(row);
    assert_int_equal(cl_stmt_i64(st, 0), 2);
    assert_string_equal(cl_stmt_text(st, 1), "0002_b.sql");
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    assert_false(row);
    cl_db_release(c);

    /* Nothing left to do the second time. */
    apply_ok(f, 0);
    assert_int_equal(query_i64(f->db, "SELECT count(*) FROM cl_migrations"), 2);
}

static void test_migrate_refuses_edited_applied_migration(void **state)
{
    fixture *f = *state;
    cl_error err = {0};
    int applied = -1;

    write_two(f);
    apply_ok(f, 2);
    write_file(f, "0001_init.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);\n");
    write_file(f, "0003_c.sql", "CREATE TABLE c (id INTEGER);\n");
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, &applied, &err), CL_CONFLICT);
    assert_non_null(strstr(err.message, "test/0001_init.sql"));
    assert_non_null(strstr(err.message, "changed after it was applied"));
    assert_string_equal(err.field, "0001_init.sql");
    /* Nothing after the conflict was applied. */
    assert_false(table_exists(f->db, "c"));
    assert_int_equal(applied, -1);
}

static void test_migrate_refuses_missing_applied_migration(void **state)
{
    fixture *f = *state;
    char path[512];
    cl_error err = {0};

    write_two(f);
    apply_ok(f, 2);
    snprintf(path, sizeof(path), "%s/0002_b.sql", f->moddir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, NULL, &err), CL_CONFLICT);
    assert_non_null(strstr(err.message, "applied migration 0002 (0002_b.sql)"));
    assert_non_null(strstr(err.message, "missing"));
    assert_string_equal(err.field, "0002_b.sql");
}

static void test_migrate_failing_migration_leaves_no_trace(void **state)
{
    fixture *f = *state;
    cl_error err = {0};
    log_capture lc;
    char *logged;
    int applied = -1;

    write_two(f);
    write_file(f, "0003_bad.sql", "CREATE TABLE c (id INTEGER);\nCREATE TABLEX oops;\n");
    write_file(f, "0004_d.sql", "CREATE TABLE d (id INTEGER);\n");
    assert_int_equal(log_capture_begin(&lc), 0);
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, &applied, &err), CL_INTERNAL);
    assert_non_null(strstr(err.message, "migration test/0003_bad.sql failed: "));
    /* The driver's own words go to the operator's log, not into the error. */
    logged = log_capture_text(&lc);
    log_capture_end(&lc);
    assert_non_null(logged);
    assert_non_null(strstr(logged, "syntax error"));
    assert_null(strstr(err.message, "syntax error"));
    free(logged);
    assert_string_equal(err.field, "0003_bad.sql");

    /* 0001 and 0002 stay applied; of 0003 nothing remains, and 0004 never ran. */
    assert_true(table_exists(f->db, "b"));
    assert_false(table_exists(f->db, "c"));
    assert_false(table_exists(f->db, "d"));
    assert_int_equal(query_i64(f->db, "SELECT count(*) FROM cl_migrations"), 2);

    /* Once fixed (it was never applied, so editing it is fine), the rest goes through. */
    write_file(f, "0003_bad.sql", "CREATE TABLE c (id INTEGER);\n");
    apply_ok(f, 2);
    assert_true(table_exists(f->db, "d"));
}

static void test_migrate_prefers_dialect_specific_file(void **state)
{
    fixture *f = *state;
    cl_migration_info info[4];
    cl_error err = {0};
    int count = 0;

    write_file(f, "0001_init.sql", "CREATE TABLE plain_t (id INTEGER);\n");
    write_file(f, "0001_init.sqlite.sql", "CREATE TABLE lite_only (id INTEGER);\n");
    /* Another dialect's file is not for this database, even without a plain sibling. */
    write_file(f, "0002_pg_only.postgres.sql", "CREATE EXTENSION pgcrypto;\n");
    write_file(f, "README.md", "not a migration\n");
    apply_ok(f, 1);
    assert_true(table_exists(f->db, "lite_only"));
    assert_false(table_exists(f->db, "plain_t"));
    assert_int_equal(cl_migrate_status(f->db, f->dir, MODULE, info, 4, &count, &err), CL_OK);
    assert_int_equal(count, 1);
    assert_string_equal(info[0].name, "0001_init.sqlite.sql");
}

static void test_migrate_refuses_badly_named_files(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "001_short.sql",  "0001-init.sql",  "0001_.sql",         "0001_init.SQLITE.sql",
        "0001_init..sql", "x0001_init.sql", "0001_init.a.b.sql",
    };
    char path[512];
    cl_error err = {0};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(f, bad[i], "SELECT 1;\n");
        cl_error_clear(&err);
        assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, NULL, &err), CL_INVALID);
        assert_string_equal(err.field, bad[i]);
        assert_non_null(strstr(err.message, bad[i]));
        snprintf(path, sizeof(path), "%s/%s", f->moddir, bad[i]);
        assert_int_equal(unlink(path), 0);
    }
    /* With the bad names gone, nothing stands in the way. */
    write_two(f);
    apply_ok(f, 2);
}

static void test_migrate_refuses_duplicate_version(void **state)
{
    fixture *f = *state;
    cl_error err = {0};

    write_two(f);
    write_file(f, "0002_other.sql", "SELECT 1;\n");
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, NULL, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "0002_b.sql"));
    assert_non_null(strstr(err.message, "0002_other.sql"));
    assert_false(table_exists(f->db, "a"));
}

static void test_migrate_refuses_oversized_file(void **state)
{
    fixture *f = *state;
    char *big = malloc(1024 * 1024 + 2);
    cl_error err = {0};

    assert_non_null(big);
    memset(big, ' ', 1024 * 1024 + 1);
    big[1024 * 1024 + 1] = '\0';
    write_file(f, "0001_big.sql", big);
    free(big);
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, NULL, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "0001_big.sql"));
    assert_non_null(strstr(err.message, "larger than"));
}

static void test_migrate_missing_module_dir_is_not_found(void **state)
{
    fixture *f = *state;
    cl_error err = {0};

    assert_int_equal(cl_migrate_apply(f->db, f->dir, "nosuchmodule", NULL, &err), CL_NOT_FOUND);
    assert_non_null(strstr(err.message, "nosuchmodule"));
    assert_int_equal(cl_migrate_apply(f->db, f->dir, "../etc", NULL, &err), CL_INVALID);
}

static void test_migrate_status_lists_pending_and_applied(void **state)
{
    fixture *f = *state;
    cl_migration_info info[8];
    cl_error err = {0};
    int count = -1;

    write_two(f);
    apply_ok(f, 2);
    write_file(f, "0010_later.sql", "CREATE TABLE later (id INTEGER);\n");
    assert_int_equal(cl_migrate_status(f->db, f->dir, MODULE, info, 8, &count, &err), CL_OK);
    assert_int_equal(count, 3);
    assert_int_equal(info[0].version, 1);
    assert_string_equal(info[0].name, "0001_init.sql");
    assert_string_equal(info[0].checksum, init_sha);
    assert_true(info[0].applied);
    assert_int_equal(strlen(info[0].applied_at), 24);
    assert_int_equal(info[1].version, 2);
    assert_true(info[1].applied);
    assert_int_equal(info[2].version, 10);
    assert_string_equal(info[2].name, "0010_later.sql");
    assert_int_equal(strlen(info[2].checksum), 64);
    assert_false(info[2].applied);
    assert_string_equal(info[2].applied_at, "");

    count = -1;
    assert_int_equal(cl_migrate_status(f->db, f->dir, MODULE, info, 2, &count, &err), CL_INVALID);
    assert_int_equal(count, -1);
}

static void test_migrate_check_reports_pending_then_ok_then_conflict(void **state)
{
    fixture *f = *state;
    cl_error err = {0};

    write_two(f);
    assert_int_equal(cl_migrate_check(f->db, f->dir, MODULE, &err), CL_UNAVAILABLE);
    assert_non_null(strstr(err.message, "2 pending migrations"));
    assert_non_null(strstr(err.message, "0001_init.sql"));
    apply_ok(f, 2);
    cl_error_clear(&err);
    assert_int_equal(cl_migrate_check(f->db, f->dir, MODULE, &err), CL_OK);
    write_file(f, "0002_b.sql", "-- edited\n");
    assert_int_equal(cl_migrate_check(f->db, f->dir, MODULE, &err), CL_CONFLICT);
    assert_non_null(strstr(err.message, "test/0002_b.sql"));
}

#define MIGRATORS        3
#define CONCURRENT_FILES 6

typedef struct migrator {
    const fixture *f;
    cl_status st;
    int applied;
    cl_error err;
} migrator;

static void *migrator_main(void *arg)
{
    migrator *m = arg;
    cl_db *db = NULL;

    /* A pool of its own, as a second process would have. */
    m->st = cl_db_open(&cl_db_sqlite, MODULE, m->f->dbpath, NULL, &db, &m->err);
    if (m->st == CL_OK) {
        m->st = cl_migrate_apply(db, m->f->dir, MODULE, &m->applied, &m->err);
    }
    cl_db_close(db);
    return NULL;
}

static void test_migrate_concurrent_apply_applies_each_once(void **state)
{
    fixture *f = *state;
    migrator m[MIGRATORS];
    pthread_t t[MIGRATORS];
    char name[32];
    char sql[64];
    int total = 0;

    /* Each file creates a table, so applying one twice would fail loudly. */
    for (int i = 1; i <= CONCURRENT_FILES; i++) {
        snprintf(name, sizeof(name), "%04d_t%d.sql", i, i);
        snprintf(sql, sizeof(sql), "CREATE TABLE t%d (id INTEGER);\n", i);
        write_file(f, name, sql);
    }
    for (int i = 0; i < MIGRATORS; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].f = f;
        assert_int_equal(pthread_create(&t[i], NULL, migrator_main, &m[i]), 0);
    }
    for (int i = 0; i < MIGRATORS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    for (int i = 0; i < MIGRATORS; i++) {
        if (m[i].st != CL_OK) {
            fail_msg("migrator %d: %s: %s", i, cl_status_name(m[i].st), m[i].err.message);
        }
        total += m[i].applied;
    }
    assert_int_equal(total, CONCURRENT_FILES);
    assert_int_equal(query_i64(f->db, "SELECT count(*) FROM cl_migrations"), CONCURRENT_FILES);
}

/* A migration's checksum as status reports it (the first one of MODULE). */
static void first_checksum(const fixture *f, char out[65])
{
    cl_migration_info info[4];
    cl_error err = {0};
    int n = 0;

    assert_int_equal(cl_migrate_status(f->db, f->dir, MODULE, info, 4, &n, &err), CL_OK);
    assert_true(n >= 1);
    memcpy(out, info[0].checksum, 65);
}

/*
 * A file whose bytes the build read takes the build's checksum, with no digest computed:
 * the entry's is a marker here, so that the test sees which one was taken. The same name
 * with other bytes is hashed when read.
 */
static void test_migrate_known_bytes_take_the_builds_checksum(void **state)
{
    static const char marker[] = "0000000000000000000000000000000000000000000000000000000000000001";
    const cl_migration_text known[] = {
        {MODULE, "0001_init.sql", init_sql, sizeof(init_sql) - 1, marker},
    };
    fixture *f = *state;
    cl_error err = {0};
    char sum[65];

    cl_migrate_known(known, 1);
    write_file(f, "0001_init.sql", init_sql);
    apply_ok(f, 1);
    first_checksum(f, sum);
    assert_string_equal(sum, marker);

    /* One byte more and the marker no longer applies: the file is hashed and refused. */
    write_file(f, "0001_init.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n\n");
    assert_int_equal(cl_migrate_check(f->db, f->dir, MODULE, &err), CL_CONFLICT);
    assert_non_null(strstr(err.message, "changed after it was applied"));
}

/* With the build's table, an edit of an applied migration is refused as without it. */
static void test_migrate_refuses_edit_of_a_migration_the_build_knew(void **state)
{
    const cl_migration_text known[] = {
        {MODULE, "0001_init.sql", init_sql, sizeof(init_sql) - 1, init_sha},
    };
    fixture *f = *state;
    cl_error err = {0};
    char sum[65];

    cl_migrate_known(known, 1);
    write_two(f);
    apply_ok(f, 2);
    first_checksum(f, sum);
    assert_string_equal(sum, init_sha);
    write_file(f, "0001_init.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);\n");
    assert_int_equal(cl_migrate_apply(f->db, f->dir, MODULE, NULL, &err), CL_CONFLICT);
    assert_non_null(strstr(err.message, "changed after it was applied"));
    assert_string_equal(err.field, "0001_init.sql");
}

/*
 * With nothing to apply, as at most starts, applying only reads: no write lock (on SQLite
 * the pool's writer connection, opened and parsing the schema at every start, and the
 * WAL's write lock; on PostgreSQL a table lock that made replicas starting together wait).
 */
static void test_migrate_nothing_pending_takes_no_write_lock(void **state)
{
    fixture *f = *state;
    int locks;

    write_two(f);
    apply_ok(f, 2);
    locks = atomic_load(&sqlite_counted_write_locks);
    apply_ok(f, 0);
    assert_int_equal(atomic_load(&sqlite_counted_write_locks), locks);
    /* A new file is still applied, under the lock. */
    write_file(f, "0003_c.sql", "CREATE TABLE c (id INTEGER PRIMARY KEY);");
    apply_ok(f, 1);
    assert_true(atomic_load(&sqlite_counted_write_locks) > locks);
    assert_true(table_exists(f->db, "c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_migrate_applies_in_version_order_and_records_checksums),
        T(test_migrate_refuses_edited_applied_migration),
        T(test_migrate_refuses_missing_applied_migration),
        T(test_migrate_failing_migration_leaves_no_trace),
        T(test_migrate_prefers_dialect_specific_file),
        T(test_migrate_refuses_badly_named_files),
        T(test_migrate_refuses_duplicate_version),
        T(test_migrate_refuses_oversized_file),
        T(test_migrate_missing_module_dir_is_not_found),
        T(test_migrate_status_lists_pending_and_applied),
        T(test_migrate_check_reports_pending_then_ok_then_conflict),
        T(test_migrate_concurrent_apply_applies_each_once),
        T(test_migrate_known_bytes_take_the_builds_checksum),
        T(test_migrate_refuses_edit_of_a_migration_the_build_knew),
        T(test_migrate_nothing_pending_takes_no_write_lock),
#undef T
    };

    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
