/*
 * SQLite files kept to one process (cl_db_sqlite_exclusive, CLEAVE_SQLITE_EXCLUSIVE, ADR
 * 0055), seen from another process: this binary runs itself again as the process that holds
 * a file (--hold exclusive|shared PATH: opens a pool on PATH, writes a row, says "ready" on
 * its standard output and keeps the pool open until its standard input ends).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cleave/db.h"
#include "cleave/util.h"

/* The holder: 0 when it held the file until told to let go, 1 on any failure (named). */
static int hold(const char *mode, const char *path)
{
    cl_db *db = NULL;
    cl_db_conn *c = NULL;
    cl_error err = {0};
    char buf[64];

    if (cl_db_sqlite_exclusive(strcmp(mode, "exclusive") == 0, &err) != CL_OK ||
        cl_db_open(&cl_db_sqlite, "held", path, NULL, &db, &err) != CL_OK ||
        cl_db_acquire(db, NULL, &c, &err) != CL_OK ||
        cl_db_exec(c, "CREATE TABLE t(v TEXT NOT NULL); INSERT INTO t VALUES ('written')", &err) !=
            CL_OK) {
        fprintf(stderr, "holder: %s\n", err.message);
        return 1;
    }
    cl_db_release(c);
    printf("ready\n");
    fflush(stdout);
    while (fgets(buf, sizeof(buf), stdin) != NULL) {
    }
    cl_db_close(db);
    return 0;
}

typedef struct holder {
    pid_t pid;
    FILE *out; /* its standard output */
    int in;    /* its standard input: closed, it lets go */
} holder;

/* Starts this binary as the holder of path and waits for its "ready". */
static void holder_start(holder *h, const char *mode, const char *path)
{
    int to[2], from[2];
    char line[64] = "";

    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        char *argv[] = {"test_sqlite_exclusive", "--hold", (char *)mode, (char *)path, NULL};

        dup2(to[0], STDIN_FILENO);
        dup2(from[1], STDOUT_FILENO);
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    h->in = to[1];
    h->out = fdopen(from[0], "r");
    assert_non_null(h->out);
    assert_non_null(fgets(line, sizeof(line), h->out));
    assert_string_equal(line, "ready\n");
}

/* Tells the holder to let go; its exit status. */
static int holder_stop(holder *h)
{
    int status = 0;

    close(h->in);
    assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
    fclose(h->out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * What SELECT count(*) FROM t gives to a plain SQLite connection of this process, which
 * does not wait for locks: the count, or -rc when SQLite refused.
 */
static int count_elsewhere(const char *path)
{
    sqlite3 *other = NULL;
    sqlite3_stmt *st = NULL;
    int rc, n;

    assert_int_equal(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(other, 0);
    rc = sqlite3_prepare_v2(other, "SELECT count(*) FROM t", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -rc;
    sqlite3_finalize(st);
    sqlite3_close(other);
    return n;
}

static void temp_path(char *path, size_t size)
{
    char dir[] = "/tmp/cleave-excl-XXXXXX";

    assert_non_null(mkdtemp(dir));
    snprintf(path, size, "%s/held.db", dir);
}

static void remove_all(const char *path)
{
    char name[600];
    const char *suffix[] = {"", "-wal", "-shm"};

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(name, sizeof(name), "%s%s", path, suffix[i]);
        (void)unlink(name);
    }
    cl_strlcpy(name, path, sizeof(name));
    *strrchr(name, '/') = '\0';
    assert_int_equal(rmdir(name), 0);
}

/*
 * A process that keeps its files: another process can neither read nor open them while it
 * runs (a cleave command gets an error that says why), and has them, with what was written,
 * once it let go.
 */
static void test_exclusive_files_keep_other_processes_out(void **state)
{
    char path[512];
    holder h;
    cl_db *db = NULL;
    void *conn = NULL;
    cl_error err = {0};

    (void)state;
    temp_path(path, sizeof(path));
    holder_start(&h, "exclusive", path);
    assert_int_equal(count_elsewhere(path), -SQLITE_BUSY);
    /* The pool says unavailable and logs the driver's message, which names file and cause. */
    assert_int_equal(cl_db_open(&cl_db_sqlite, "other", path, NULL, &db, &err), CL_UNAVAILABLE);
    assert_null(db);
    assert_int_equal(cl_db_sqlite.connect(path, &conn, &err), CL_UNAVAILABLE);
    assert_null(conn);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "database is locked (another process holds it"));
    assert_int_equal(holder_stop(&h), 0);
    assert_int_equal(count_elsewhere(path), 1);
    remove_all(path);
}

/* The default: another process reads and writes the files while their owner runs. */
static void test_shared_files_are_open_to_other_processes(void **state)
{
    char path[512];
    holder h;
    cl_db *db = NULL;
    cl_db_conn *c = NULL;
    cl_error err = {0};

    (void)state;
    temp_path(path, sizeof(path));
    holder_start(&h, "shared", path);
    assert_int_equal(count_elsewhere(path), 1);
    assert_int_equal(cl_db_open(&cl_db_sqlite, "other", path, NULL, &db, &err), CL_OK);
    assert_int_equal(cl_db_acquire(db, NULL, &c, &err), CL_OK);
    assert_int_equal(cl_db_exec(c, "INSERT INTO t VALUES ('from elsewhere')", &err), CL_OK);
    cl_db_release(c);
    cl_db_close(db);
    assert_int_equal(count_elsewhere(path), 2);
    assert_int_equal(holder_stop(&h), 0);
    remove_all(path);
}

/* The choice is the process's, made before its first connection: changing it later fails. */
static void test_the_choice_is_fixed_at_the_first_connection(void **state)
{
    char path[512];
    cl_db *db = NULL;
    cl_error err = {0};

    (void)state;
    temp_path(path, sizeof(path));
    assert_int_equal(cl_db_open(&cl_db_sqlite, "mine", path, NULL, &db, &err), CL_OK);
    assert_int_equal(cl_db_sqlite_exclusive(true, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "already opened shared"));
    assert_int_equal(cl_db_sqlite_exclusive(false, &err), CL_OK);
    cl_db_close(db);
    remove_all(path);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusive_files_keep_other_processes_out),
        cmocka_unit_test(test_shared_files_are_open_to_other_processes),
        cmocka_unit_test(test_the_choice_is_fixed_at_the_first_connection),
    };

    if (argc == 4 && strcmp(argv[1], "--hold") == 0) {
        return hold(argv[2], argv[3]);
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
