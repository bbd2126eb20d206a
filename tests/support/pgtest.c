/* Test support: the test run's PostgreSQL cluster and a database per test (pgtest.h). */
#include "pgtest.h"

#include <pthread.h>
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

/*
 * The admin sessions of this process, one per URL, kept for the process's life: a new
 * PostgreSQL session costs a server process, some 30 ms of CPU on the test machines, and
 * each test case used to open several just to create, drop and wait for its database.
 * A session found broken is opened again once. Only the process that opened a session
 * uses it: a forked child that does not exec opens its own.
 */
#define SESSIONS 4

static struct {
    pthread_mutex_t lock;
    pid_t pid;
    struct {
        char url[512];
        PGconn *conn;
    } slot[SESSIONS];
    int next;
} sessions = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * The session for url, opened when needed or when fresh is set (in the slot it had, else
 * the next one in turn); NULL with the reason printed. Under the lock.
 */
static PGconn *session(const char *url, int fresh)
{
    int i = 0;

    if (sessions.pid != getpid()) {
        /* Inherited from a parent: its sockets are the parent's, never to be written to. */
        memset(sessions.slot, 0, sizeof(sessions.slot));
        sessions.pid = getpid();
    }
    while (i < SESSIONS && strcmp(sessions.slot[i].url, url) != 0) {
        i++;
    }
    if (i == SESSIONS) {
        i = sessions.next;
        sessions.next = (sessions.next + 1) % SESSIONS;
        copy(sessions.slot[i].url, sizeof(sessions.slot[i].url), url);
    } else if (!fresh && sessions.slot[i].conn != NULL &&
               PQstatus(sessions.slot[i].conn) == CONNECTION_OK) {
        return sessions.slot[i].conn;
    }
    PQfinish(sessions.slot[i].conn);
    sessions.slot[i].conn = PQconnectdb(url);
    if (PQstatus(sessions.slot[i].conn) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: connect %s: %s", url, PQerrorMessage(sessions.slot[i].conn));
        PQfinish(sessions.slot[i].conn);
        sessions.slot[i].conn = NULL;
    }
    return sessions.slot[i].conn;
}

static int exec_at(const char *url, const char *sql, char *out, size_t size)
{
    PGresult *r = NULL;
    PGconn *c;
    int rc = -1;

    if (out != NULL && size > 0) {
        out[0] = '\0';
    }
    pthread_mutex_lock(&sessions.lock);
    c = session(url, 0);
    if (c != NULL) {
        r = PQexec(c, sql);
        /* A session the server ended since its last use: once more on a new one. */
        if (PQstatus(c) != CONNECTION_OK) {
            PQclear(r);
            r = NULL;
            c = session(url, 1);
            if (c != NULL) {
                r = PQexec(c, sql);
            }
        }
    }
    if (c == NULL) {
        goto done;
    }
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
    pthread_mutex_unlock(&sessions.lock);
    return rc;
}

int pgtest_query(const char *url, const char *sql, char *out, size_t size)
{
    return exec_at(url, sql, out, size);
}

/* Creates a database of a new unique name (t->db), a copy of template's files. */
static int create_db(pgtest *t, const char *template)
{
    static int counter;
    struct timespec ts;
    char sql[192];

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(t->db, sizeof(t->db), "t_%d_%d_%ld", (int)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), (long)(ts.tv_nsec % 100000));
    /*
     * FILE_COPY copies the template's files and logs one record, where the default strategy
     * (WAL_LOG) writes every page of it to the WAL for the replica to replay: 45 against
     * 81 ms of CPU per database created and dropped, on the tests' cluster (ADR 0011).
     */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", t->db,
             template);
    if (exec_at(t->primary, sql, NULL, 0) != 0) {
        t->db[0] = '\0';
        return -1;
    }
    return 0;
}

int pgtest_db_create(pgtest *t)
{
    return create_db(t, "template1");
}

/*
 * The migrated databases this process keeps as templates, one per module: the first case
 * that needs a module migrates a database of its own for it, and every case then gets a
 * copy, as it would have after migrating its own. Dropped when the process exits.
 */
#define TEMPLATES 8

static struct {
    pthread_mutex_t lock;
    pid_t pid;
    char primary[256];
    int n;
    struct {
        char module[32];
        char db[64];
    } t[TEMPLATES];
} templates = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void drop_templates(void)
{
    char sql[128];

    if (templates.pid != getpid()) {
        return;
    }
    for (int i = 0; i < templates.n; i++) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", templates.t[i].db);
        exec_at(templates.primary, sql, NULL, 0);
    }
    templates.n = 0;
}

/* The template of module, made on first use. NULL with err set. Under templates.lock. */
static const char *template_of(const pgtest *t, const char *module, cl_error *err)
{
    pgtest made = *t;
    char url[512];

    if (templates.pid != getpid()) {
        templates.n = 0;
        templates.pid = getpid();
        copy(templates.primary, sizeof(templates.primary), t->primary);
        atexit(drop_templates);
    }
    for (int i = 0; i < templates.n; i++) {
        if (strcmp(templates.t[i].module, module) == 0) {
            return templates.t[i].db;
        }
    }
    if (templates.n == TEMPLATES || strlen(module) >= sizeof(templates.t[0].module)) {
        cl_error_set(err, CL_INTERNAL, NULL, "pgtest: no room for a template of %s", module);
        return NULL;
    }
    if (pgtest_db_create(&made) != 0) {
        cl_error_set(err, CL_UNAVAILABLE, NULL, "pgtest: no database for the template");
        return NULL;
    }
    pgtest_url(t->primary, made.db, url, sizeof(url));
    if (pgtest_migrate(url, module, err) != CL_OK) {
        pgtest_db_drop(&made);
        return NULL;
    }
    copy(templates.t[templates.n].module, sizeof(templates.t[0].module), module);
    copy(templates.t[templates.n].db, sizeof(templates.t[0].db), made.db);
    return templates.t[templates.n++].db;
}

cl_status pgtest_db_create_migrated(pgtest *t, const char *module, cl_error *err)
{
    const char *template;
    char sql[256];
    int rc;

    pthread_mutex_lock(&templates.lock);
    template = template_of(t, module, err);
    rc = template != NULL ? create_db(t, template) : -1;
    pthread_mutex_unlock(&templates.lock);
    if (template == NULL) {
        return err->status;
    }
    if (rc != 0) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL, "pgtest: no copy of %s", template);
    }
    /* What provisioning grants on the database itself is not in the copy. */
    snprintf(sql, sizeof(sql),
             "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO cleave_%s",
             t->db, t->db, module);
    if (exec_at(t->primary, sql, NULL, 0) != 0) {
        pgtest_db_drop(t);
        return cl_error_set(err, CL_INTERNAL, NULL, "pgtest: cannot grant %s", t->db);
    }
    return CL_OK;
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
