/*
 * Compiled and linked with nothing but `pkg-config --cflags --libs cleave-platform`
 * (test_install.sh): opens an SQLite database through the platform, runs one statement
 * and prints the status table's name for CL_OK.
 */
#include <stdio.h>

#include "cleave/db.h"
#include "cleave/status.h"

int main(int argc, char **argv)
{
    cl_db *db = NULL;
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    cl_db_options opt = {.max_conns = 1};
    cl_status st;

    if (argc != 2) {
        fprintf(stderr, "usage: pkgconfig_check <database file>\n");
        return 2;
    }
    st = cl_db_open(&cl_db_sqlite, "check", argv[1], &opt, &db, &err);
    if (st == CL_OK) {
        st = cl_db_acquire(db, NULL, &conn, &err);
    }
    if (st == CL_OK) {
        st = cl_db_exec(conn, "CREATE TABLE t (x INTEGER)", &err);
    }
    cl_db_release(conn);
    cl_db_close(db);
    if (st != CL_OK) {
        fprintf(stderr, "pkgconfig_check: %s\n", err.message);
        return 1;
    }
    printf("%s\n", cl_status_name(st));
    return 0;
}
