/* Test support: the test run's PostgreSQL cluster and a database per test (pgtest.h). */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cleave/bus.h"
#include "cleave/migrate.h"
#include "proc.h"

int pgtest_enabled(void)
{
    const char *v = getenv("CL_TEST_DB");
    return v != NULL && strcmp(v, "postgres") == 0;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
}

/* Copies src into dst[size], cut to fit, always terminated. */
static void copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int pgtest_load(pgtest *t)
{
    const char *path = getenv("CL_TEST_PG_ENV");
    char line[512];
    FILE *f;

    memset(t, 0, sizeof(*t));
    if (path == NULL || (f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "pgtest: no cluster env file (CL_TEST_PG_ENV=%s)\n",
                path != NULL ? path : "");
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        chomp(line);
        if (strncmp(line, "CLEAVE_TEST_PG_PRIMARY=", 23) == 0) {
            copy(t->primary, sizeof(t->primary), line + 23);
        } else if (strncmp(line, "CLEAVE_TEST_PG_REPLICA=", 23) == 0) {
            copy(t->replica, sizeof(t->replica), line + 23);
        } else if (strncmp(line, "CLEAVE_TEST_PG_DIR=", 19) == 0) {
            copy(t->dir, sizeof(t->dir), line + 19);
        }
    }
    fclose(f);
    if (t->primary[0] == '\0') {
        fprintf(stderr, "pgtest: %s names no primary\n", path);
        return -1;
    }
    return 0;
}

void pgtest_url(const char *base, const char *db, char *out, size_t size)
{
    const char *slash = strrchr(base, '/');
    int keep = slash != NULL ? (int)(slash - base) : (int)strlen(base);

    snprintf(out, size, "%.*s/%s", keep, base, db);
}

static int exec_at(const char *url, const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = NULL;
    int rc = -1;

    if (out != NULL && size > 0) {
        out[0] = '\0';
    }
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: connect %s: %s", url, PQerrorMessage(c));
        goto done;
    }
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(r));
        goto done;
    }
    if (out != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
        PQnfields(r) > 0) {
        snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    }
    rc = 0;
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int pgtest_query(const char *url, const char *sql, char *out, size_t size)
{
    return exec_at(url, sql, out, size);
}

int pgtest_db_create(pgtest *t)
{
    static int counter;
    struct timespec ts;
    char sql[128];

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(t->db, sizeof(t->db), "t_%d_%d_%ld", (int)getpid(), ++counter,
             (long)(ts.tv_nsec % 100000));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->db);
    if (exec_at(t->primary, sql, NULL, 0) != 0) {
        t->db[0] = '\0';
        return -1;
    }
    return 0;
}

int pgtest_db_drop(pgtest *t)
{
    char sql[128];

    if (t->db[0] == '\0') {
        return 0;
    }
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->db);
    t->db[0] = '\0';
    return exec_at(t->primary, sql, NULL, 0);
}

int pgtest_wait_replica(const pgtest *t, int timeout_ms)
{
    char target[64], sql[160], done[16];
    struct timespec ts;
    long long start, now;

    if (t->replica[0] == '\0') {
        return 0;
    }
    if (exec_at(t->primary, "SELECT pg_current_wal_insert_lsn()", target, sizeof(target)) != 0) {
        return -1;
    }
    snprintf(sql, sizeof(sql), "SELECT coalesce(pg_last_wal_replay_lsn() >= '%s'::pg_lsn, false)",
             target);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    start = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (;;) {
        if (exec_at(t->replica, sql, done, sizeof(done)) == 0 && strcmp(done, "t") == 0) {
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (now - start > timeout_ms) {
            fprintf(stderr, "pgtest: the replica did not catch up within %d ms\n", timeout_ms);
            return -1;
        }
        /* Polling a real condition; replay on loopback takes milliseconds. */
        usleep(10000);
    }
}

int pgtest_cluster(const pgtest *t, const char *cmd)
{
    char script[512], out[4096];
    char *argv[] = {"pg-cluster.sh", (char *)cmd, (char *)t->dir, NULL};
    int rc;

    snprintf(script, sizeof(script), "%s/tests/postgres/pg-cluster.sh", CLEAVE_SOURCE_DIR);
    rc = test_run(script, argv, NULL, out, sizeof(out));
    if (rc != 0) {
        fprintf(stderr, "pg-cluster.sh %s failed (%d):\n%s\n", cmd, rc, out);
        return -1;
    }
    return 0;
}

cl_status pgtest_migrate(const char *admin_url, const char *module, cl_error *err)
{
    cl_db_options opt = {.max_conns = 1};
    char target[2048];
    cl_db *owner = NULL;
    int applied = 0;
    cl_status st;

    st = cl_migrate_postgres(admin_url, CLEAVE_SOURCE_DIR "/migrations", module, &applied, err);
    if (st == CL_OK) {
        st = cl_migrate_owner_target(admin_url, module, target, sizeof(target), err);
    }
    if (st == CL_OK) {
        st = cl_db_open(&cl_db_postgres, module, target, &opt, &owner, err);
    }
    if (st == CL_OK) {
        st = cl_bus_schema_apply(owner, err);
    }
    cl_db_close(owner);
    return st;
}
