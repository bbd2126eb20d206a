/* Test support: the bus between two throwaway databases (bus_harness.h). */
#include "bus_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "bus_internal.h"
#include "cleave/extension.h"
#include "pgtest.h"
#include "proc.h"

/*
 * What the handler observed is written in its own transaction ("late": the event came
 * after a later one of its key; "thread": the name of the thread it ran on), so that only attempts
 * the bus committed count: an attempt that rolls back (a duplicate delivery losing the inbox race,
 * a failed commit) leaves no trace, and the test reads what happened from committed rows alone.
 */
static const char seen_ddl[] = "CREATE TABLE IF NOT EXISTS seen (msg_key TEXT NOT NULL, "
                               "seq BIGINT NOT NULL, late INTEGER NOT NULL, thread TEXT NOT NULL)";
/* The handler looks up its key's last seq: without an index, a scan of every row so far. */
static const char seen_index_ddl[] = "CREATE INDEX IF NOT EXISTS seen_key ON seen (msg_key, seq)";
static const char last_sql[] = "SELECT max(seq) FROM seen WHERE msg_key = ?";
static const char insert_sql[] =
    "INSERT INTO seen (msg_key, seq, late, thread) VALUES (?, ?, ?, ?)";
static const char rows_sql[] = "SELECT count(*) FROM seen";
static const char count_sql[] = "SELECT count(*), count(DISTINCT msg_key || ':' || seq), "
                                "coalesce(sum(late), 0) FROM seen";

static cl_status on_event(void *arg, cl_ctx *ctx, const cl_envelope *env, cl_db_conn *conn)
{
    bus_harness *h = arg;
    json_int_t seq = json_integer_value(json_object_get(env->payload, "seq"));
    char thread[16] = "";
    cl_stmt *st;
    bool row = false;
    int64_t late = 0;
    cl_status rc;

    rc = cl_db_prepare(conn, last_sql, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, env->key, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && row && !cl_stmt_null(st, 0) && cl_stmt_i64(st, 0) >= seq) {
        late = 1;
    }
    while (rc == CL_OK && row) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_db_prepare(conn, insert_sql, &st, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, env->key, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, seq, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 3, late, &ctx->err);
    }
    (void)prctl(PR_GET_NAME, thread, 0, 0, 0);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 4, thread, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    if (rc == CL_OK && h->fail_once_seq != 0 && seq == h->fail_once_seq &&
        atomic_compare_exchange_strong(&h->failures, &(int){0}, 1)) {
        rc = cl_error_set(&ctx->err, CL_UNAVAILABLE, NULL, "failing seq %lld once", (long long)seq);
    }
    return rc;
}

static int setup_db(bus_harness *h, const char *name, cl_db **db, cl_error *err)
{
    char path[2048];
    cl_db_options opt = {.max_conns = 8, .acquire_timeout_ms = 10000};
    cl_db_conn *conn = NULL;

    if (h->pg.db[0] != '\0') {
        /* On PostgreSQL: a schema of its own in the harness's database, as a module has. */
        char admin[512], sql[128], app[64], options[96];

        pgtest_url(h->pg.primary, h->pg.db, admin, sizeof(admin));
        snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", name);
        snprintf(app, sizeof(app), "cleave-test-%s", name);
        snprintf(options, sizeof(options), "-c search_path=%s", name);
        if (pgtest_query(admin, sql, NULL, 0) != 0 ||
            cl_db_pg_target(admin, NULL, app, options, path, sizeof(path), err) != CL_OK ||
            cl_db_open(&cl_db_postgres, name, path, &opt, db, err) != CL_OK) {
            return -1;
        }
    } else {
        snprintf(path, sizeof(path), "%s/%s.db", h->dir, name);
        if (cl_db_open(&cl_db_sqlite, name, path, &opt, db, err) != CL_OK) {
            return -1;
        }
    }
    if ((bus_harness_schema_version > 0
             ? cl__bus_schema_apply_to(*db, bus_harness_schema_version, err)
             : cl_bus_schema_apply(*db, err)) != CL_OK ||
        cl_db_acquire(*db, NULL, &conn, err) != CL_OK) {
        return -1;
    }
    if (cl_db_exec(conn, seen_ddl, err) != CL_OK ||
        cl_db_exec(conn, seen_index_ddl, err) != CL_OK) {
        cl_db_release(conn);
        return -1;
    }
    cl_db_release(conn);
    return cl_bus_add_module(h->bus, name, *db, err) == CL_OK ? 0 : -1;
}

int bus_harness_poll_ms = 20;
int bus_harness_linger_ms = -1;
int bus_harness_schema_version = 0;

int bus_harness_open(bus_harness *h, const char *nats_url, int relays, int workers)
{
    return bus_harness_open_with(h, nats_url, relays, workers, NULL, NULL);
}

int bus_harness_open_with(bus_harness *h, const char *nats_url, int relays, int workers,
                          int (*before_start)(bus_harness *h, void *arg), void *arg)
{
    static const cl_settings pub = {"pub", true, NULL, 0};
    static const cl_settings sub = {"sub", true, NULL, 0};
    static const cl_settings *const modules[] = {&pub, &sub, NULL};
    char relays_env[64], workers_env[64], poll_env[64], linger_env[64], nats_env[128];
    char *env[7] = {relays_env, workers_env, "CLEAVE_BUS_ACK_WAIT_MS=2000", poll_env};
    int n = 4;
    cl_error err = {0};

    memset(h, 0, sizeof(*h));
    snprintf(relays_env, sizeof(relays_env), "CLEAVE_BUS_RELAYS=%d", relays);
    snprintf(workers_env, sizeof(workers_env), "CLEAVE_BUS_WORKERS=%d", workers);
    snprintf(poll_env, sizeof(poll_env), "CLEAVE_BUS_POLL_MS=%d", bus_harness_poll_ms);
    if (bus_harness_linger_ms >= 0) {
        snprintf(linger_env, sizeof(linger_env), "CLEAVE_BUS_LINGER_MS=%d", bus_harness_linger_ms);
        env[n++] = linger_env;
    }
    if (nats_url != NULL) {
        snprintf(nats_env, sizeof(nats_env), "CLEAVE_NATS_URL=%s", nats_url);
        env[n++] = nats_env;
    }
    env[n] = NULL;
    if (pgtest_enabled() && (pgtest_load(&h->pg) != 0 || pgtest_db_create(&h->pg) != 0)) {
        return -1;
    }
    if (test_tmpdir(h->dir, sizeof(h->dir)) != 0 ||
        cl_config_load(NULL, env, modules, &h->cfg, &err) != CL_OK ||
        /* As a host's generated wiring does: NATS is an extension (cleave/extension.h). */
        cl_extension_register(&cl_nats_extension, &err) != CL_OK ||
        cl_bus_new(h->cfg, &h->bus, &err) != CL_OK || setup_db(h, "pub", &h->pub, &err) != 0 ||
        setup_db(h, "sub", &h->sub, &err) != 0 ||
        cl_bus_subscribe(h->bus, "sub", "pub.happened", on_event, h, &err) != CL_OK ||
        (before_start != NULL && before_start(h, arg) != 0) ||
        cl_bus_start(h->bus, &err) != CL_OK) {
        fprintf(stderr, "bus harness: %s: %s\n", cl_status_name(err.status), err.message);
        return -1;
    }
    return 0;
}

int bus_harness_add_module(bus_harness *h, const char *name, cl_db **db)
{
    cl_error err = {0};

    if (h->nextra == (int)(sizeof(h->extra) / sizeof(h->extra[0])) ||
        setup_db(h, name, &h->extra[h->nextra], &err) != 0) {
        fprintf(stderr, "bus harness: cannot add %s: %s\n", name, err.message);
        return -1;
    }
    *db = h->extra[h->nextra++];
    return 0;
}

void bus_harness_close(bus_harness *h)
{
    cl_bus_free(h->bus);
    for (int i = 0; i < h->nextra; i++) {
        cl_db_close(h->extra[i]);
    }
    cl_db_close(h->pub);
    cl_db_close(h->sub);
    cl_config_free(h->cfg);
    pgtest_db_drop(&h->pg);
    if (h->dir[0] != '\0') {
        test_rmrf(h->dir);
    }
    memset(h, 0, sizeof(*h));
}

int bus_harness_publish(bus_harness *h, const char *key, int first, int n, int batch)
{
    cl_error err = {0};

    for (int i = 0; i < n;) {
        cl_db_conn *conn = NULL;
        cl_status rc = cl_db_acquire(h->pub, NULL, &conn, &err);

        if (rc == CL_OK) {
            rc = cl_db_begin(conn, &err);
        }
        for (int k = 0; rc == CL_OK && k < batch && i + k < n; k++) {
            json_t *p = json_pack("{s:i}", "seq", first + i + k);
            rc = cl_bus_publish(conn, NULL, "pub.happened", key, p, &err);
            json_decref(p);
        }
        if (rc == CL_OK) {
            rc = cl_db_commit(conn, &err);
        }
        cl_db_release(conn);
        if (rc != CL_OK) {
            fprintf(stderr, "publish: %s\n", err.message);
            return -1;
        }
        i += batch;
    }
    return 0;
}

/* Reads the subscriber's committed rows: 0 and *c filled, or -1 (err says why). */
static int count_seen(bus_harness *h, bus_seen *c, cl_error *err)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    bool row = false;
    int ret = -1;

    if (cl_db_acquire(h->sub, NULL, &conn, err) == CL_OK &&
        cl_db_prepare(conn, count_sql, &st, err) == CL_OK && cl_stmt_step(st, &row, err) == CL_OK &&
        row) {
        c->rows = (long)cl_stmt_i64(st, 0);
        c->distinct = (long)cl_stmt_i64(st, 1);
        c->late = (long)cl_stmt_i64(st, 2);
        ret = 0;
    }
    cl_db_release(conn);
    return ret;
}

int bus_harness_wait(bus_harness *h, long total, int timeout_ms)
{
    struct timespec nap = {0, 10 * 1000000L};
    cl_error err = {0};
    long rows = 0;

    /* Only the row count while waiting: it is polled every 10 ms next to the bus at work. */
    for (int64_t end = cl_now_ms() + timeout_ms; cl_now_ms() < end;) {
        cl_db_conn *conn = NULL;
        cl_stmt *st;
        bool row = false;
        cl_status rc = cl_db_acquire(h->sub, NULL, &conn, &err);

        if (rc == CL_OK) {
            rc = cl_db_prepare(conn, rows_sql, &st, &err);
        }
        if (rc == CL_OK) {
            rc = cl_stmt_step(st, &row, &err);
        }
        if (rc == CL_OK && row) {
            rows = (long)cl_stmt_i64(st, 0);
            rc = cl_stmt_drain(st, NULL, &err);
        }
        cl_db_release(conn);
        if (rc != CL_OK) {
            fprintf(stderr, "bus harness: counting: %s\n", err.message);
            return -1;
        }
        if (rows >= total) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "bus harness: %ld of %ld events committed after %d ms\n", rows, total,
            timeout_ms);
    return -1;
}

int bus_harness_seen(bus_harness *h, bus_seen *out)
{
    cl_error err = {0};

    if (count_seen(h, out, &err) != 0) {
        fprintf(stderr, "bus harness: counting: %s\n", err.message);
        return -1;
    }
    return 0;
}
