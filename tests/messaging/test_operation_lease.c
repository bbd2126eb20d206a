/*
 * A long-running operation runs in one process at a time, and a stale runner's outcome is
 * refused (ADR 0034): two buses (two "processes", hosts a and b) share one
 * module database. a claims the operation and its work blocks, as a paused or
 * partitioned process would; its lease lapses (the test moves its expiry behind the
 * database's clock), b claims it under a new epoch and completes it. When a's work
 * returns, its completion and outcome are refused: the operation keeps b's result and
 * only b's completion left an effect, though a's completion ran (and rolled back).
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

#include "cleave/bus.h"
#include "cleave/config.h"
#include "cleave/db.h"
#include "cleave/util.h"
#include "proc.h"
#include "shop.h"
#include "sqlite_counting.h"

#define WAIT_MS 20000

/* One runner's side: a's work blocks until released. */
typedef struct side {
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, release, completes;
} side;

static side a = {"a", PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
static side b = {"b", PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1, 0};

static cl_status work(void *arg, const char *op_id, json_t *input, json_t **result, cl_error *err)
{
    side *s = arg;

    (void)op_id;
    (void)input;
    (void)err;
    pthread_mutex_lock(&s->mu);
    s->started++;
    while (!s->release) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    *result = json_pack("{s:s}", "by", s->name);
    return CL_OK;
}

static const char effect_sql[] = "INSERT INTO effects (op, by_runner) VALUES (?, ?)";

static cl_status complete(void *arg, cl_db_conn *conn, const char *op_id, json_t *input,
                          json_t *result, cl_error *err)
{
    side *s = arg;
    cl_stmt *st;
    cl_status rc;

    (void)input;
    (void)result;
    pthread_mutex_lock(&s->mu);
    s->completes++;
    pthread_mutex_unlock(&s->mu);
    rc = cl_db_prepare(conn, effect_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_all(st, err, "ss", op_id, s->name);
    }
    return rc == CL_OK ? cl_stmt_drain(st, NULL, err) : rc;
}

static const cl_operation_kind kind_a = {"widgets.paint", work, complete, &a};
static const cl_operation_kind kind_b = {"widgets.paint", work, complete, &b};

static int counter(side *s, int which)
{
    int v;

    pthread_mutex_lock(&s->mu);
    v = which == 0 ? s->started : s->completes;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/*
 * The first column of the first row of sql (text), with arg bound to its one parameter
 * unless NULL, into out[size]; "" for NULL.
 */
static void query_with(cl_db *db, const char *sql, const char *arg, char *out, size_t size)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;

    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_prepare(conn, sql, &st, &err), CL_OK);
    if (arg != NULL) {
        assert_int_equal(cl_stmt_bind_text(st, 1, arg, &err), CL_OK);
    }
    assert_int_equal(cl_stmt_step(st, &row, &err), CL_OK);
    snprintf(out, size, "%s", row && cl_stmt_text(st, 0) != NULL ? cl_stmt_text(st, 0) : "");
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);
}

static void query(cl_db *db, const char *sql, char *out, size_t size)
{
    query_with(db, sql, NULL, out, size);
}

/* A bus of one module, widgets, on db, with workers runners that poll every poll_ms. */
static cl_bus *bus_for(const char *host, const cl_operation_kind *kind, cl_db *db, int workers,
                       int poll_ms, cl_config **cfg)
{
    static const cl_settings widgets = {"widgets", true, NULL, 0};
    static const cl_settings *const modules[] = {&widgets, NULL};
    char host_env[64], workers_env[64], poll_env[64];
    char *env[] = {host_env, poll_env, workers_env,
                   /* Renewal rare: the test alone decides when a's lease lapses. */
                   "CLEAVE_BUS_OPERATION_LEASE_MS=3600000", "CLEAVE_BUS_OPERATION_RENEW_MS=600000",
                   NULL};
    cl_bus *bus = NULL;
    cl_error err = {0};

    snprintf(host_env, sizeof(host_env), "CLEAVE_HOST_ID=%s", host);
    snprintf(workers_env, sizeof(workers_env), "CLEAVE_BUS_WORKERS=%d", workers);
    snprintf(poll_env, sizeof(poll_env), "CLEAVE_BUS_POLL_MS=%d", poll_ms);
    if (cl_config_load(NULL, env, modules, cfg, &err) != CL_OK ||
        cl_bus_new(*cfg, &bus, &err) != CL_OK ||
        cl_bus_add_module(bus, "widgets", db, &err) != CL_OK ||
        cl_bus_operation_kind(bus, "widgets", kind, &err) != CL_OK ||
        cl_bus_start(bus, &err) != CL_OK) {
        fail_msg("bus for %s: %s", host, err.message);
    }
    return bus;
}

/* The module's database, with the bus's tables and effects, in a new directory dir[256]. */
static cl_db *widgets_db(char *dir)
{
    cl_db_options opt = {.max_conns = 8, .acquire_timeout_ms = 10000};
    char path[300];
    cl_db *db = NULL;
    cl_db_conn *conn = NULL;
    cl_error err = {0};

    assert_int_equal(test_tmpdir(dir, 256), 0);
    snprintf(path, sizeof(path), "%s/widgets.db", dir);
    assert_int_equal(cl_db_open(&cl_db_sqlite, "widgets", path, &opt, &db, &err), CL_OK);
    assert_int_equal(cl_bus_schema_apply(db, &err), CL_OK);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_exec(conn, "CREATE TABLE effects (op TEXT, by_runner TEXT)", &err),
                     CL_OK);
    cl_db_release(conn);
    return db;
}

/* The bus's figures (and /metrics'): operations open in the database, finished by bus. */
static void stats_check(cl_bus *bus, int64_t open, int64_t finished)
{
    cl_bus_stats stats;
    cl_error err = {0};

    assert_int_equal(cl_bus_stats_get(bus, &stats, &err), CL_OK);
    assert_int_equal(stats.operations_open, open);
    assert_int_equal(stats.operations_finished, finished);
}

static void test_operation_lease_refuses_a_stale_runner(void **state)
{
    char dir[256], id[CL_OPERATION_ID_MAX], out[256];
    cl_config *cfg_a = NULL, *cfg_b = NULL;
    cl_bus *bus_a, *bus_b;
    cl_db *db;
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    int64_t until;

    (void)state;
    db = widgets_db(dir);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    bus_a = bus_for("a", &kind_a, db, 1, 20, &cfg_a);
    assert_int_equal(cl_operation_create(conn, "widgets", "widgets.paint", NULL, id, &err), CL_OK);
    cl_db_release(conn);

    /* a claims it and works (blocked). */
    until = cl_now_ms() + WAIT_MS;
    while (counter(&a, 0) == 0) {
        assert_true(cl_now_ms() < until);
        test_poll_pause();
    }
    query(db, "SELECT lease_owner || ' ' || CAST(lease_epoch AS TEXT) FROM cl_operations", out,
          sizeof(out));
    assert_true(strncmp(out, "a/", 2) == 0 && strstr(out, " 1") != NULL);
    stats_check(bus_a, 1, 0);

    /* a's lease lapses; b, another host, takes the operation over and completes it. */
    bus_b = bus_for("b", &kind_b, db, 1, 20, &cfg_b);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(
        cl_db_exec(conn, "UPDATE cl_operations SET lease_until = lease_until - 7200000", &err),
        CL_OK);
    cl_db_release(conn);
    until = cl_now_ms() + WAIT_MS;
    for (;;) {
        query(db, "SELECT status FROM cl_operations", out, sizeof(out));
        if (strcmp(out, "succeeded") == 0) {
            break;
        }
        assert_true(cl_now_ms() < until);
        test_poll_pause();
    }
    query(db, "SELECT lease_owner || ' ' || CAST(lease_epoch AS TEXT) FROM cl_operations", out,
          sizeof(out));
    assert_true(strncmp(out, "b/", 2) == 0 && strstr(out, " 2") != NULL);
    stats_check(bus_b, 0, 1);

    /* a comes back: its completion runs and is refused with its outcome (stop waits for it). */
    pthread_mutex_lock(&a.mu);
    a.release = 1;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
    cl_bus_stop(bus_a);
    assert_int_equal(counter(&a, 1), 1);
    assert_int_equal(counter(&b, 1), 1);
    query(db, "SELECT result FROM cl_operations", out, sizeof(out));
    assert_string_equal(out, "{\"by\":\"b\"}");
    query(db, "SELECT group_concat(by_runner) FROM effects", out, sizeof(out));
    assert_string_equal(out, "b");
    /* a's refused outcome finished nothing. */
    stats_check(bus_a, 0, 0);

    cl_bus_stop(bus_b);
    cl_bus_free(bus_a);
    cl_bus_free(bus_b);
    cl_config_free(cfg_a);
    cl_config_free(cfg_b);
    cl_db_close(db);
    test_rmrf(dir);
}

/* Read transactions of an idle bus in one round of counting: some 20 polls of each poller. */
#define IDLE_READS 60

/*
 * A runner with nothing to run looks without taking the write lock. Its claim began
 * with BEGIN IMMEDIATE, found nothing and committed: a write transaction per poll, and
 * under bench_checkout half a write transaction per checkout that the publishers and
 * the saga waited behind (#16). The relay looks first too: an idle bus writes nothing.
 */
static void test_operation_idle_runner_takes_no_write_lock(void **state)
{
    char dir[256];
    cl_config *cfg = NULL;
    cl_bus *bus;
    cl_db *db;
    int reads, writes;
    int64_t until;

    (void)state;
    db = widgets_db(dir);
    bus = bus_for("idle", &kind_b, db, 1, 20, &cfg);
    /*
     * Counted from the second round of reads on: the first holds the writes a bus makes once
     * as it starts (the relay's first purge of old rows, the keeper's first renewal).
     */
    writes = 0;
    until = cl_now_ms() + WAIT_MS;
    for (int round = 0; round < 2; round++) {
        reads = atomic_load(&sqlite_counted_read_locks);
        writes = atomic_load(&sqlite_counted_write_locks);
        while (atomic_load(&sqlite_counted_read_locks) - reads < IDLE_READS) {
            assert_true(cl_now_ms() < until);
            test_poll_pause();
        }
        writes = atomic_load(&sqlite_counted_write_locks) - writes;
    }
    cl_bus_stop(bus);
    if (writes != 0) {
        fail_msg("an idle bus took the write lock %d times in %d read transactions", writes,
                 IDLE_READS);
    }
    cl_bus_free(bus);
    cl_config_free(cfg);
    cl_db_close(db);
    test_rmrf(dir);
}

/*
 * One operation, one claim: one runner is woken for it, looks, claims and runs it; the
 * others sleep on. Every runner used to be woken, look and claim (the one that came second
 * claimed nothing: a write transaction for nothing), and each looked again after its run.
 * Two runners that do not poll, RUN_OPS operations one after another, each created once
 * the one before ran; counted from the first one's creation to the bus's stop, in read
 * transactions (a write transaction begins with one): per operation its creation, one look,
 * its claim and its outcome.
 */
#define RUN_OPS 20

static void test_operation_is_claimed_once_by_one_runner(void **state)
{
    char dir[256];
    cl_config *cfg = NULL;
    cl_bus *bus;
    cl_db *db;
    int base = counter(&b, 1);
    int reads = 0;
    int64_t until = cl_now_ms() + WAIT_MS;

    (void)state;
    db = widgets_db(dir);
    bus = bus_for("one", &kind_b, db, 2, 60000, &cfg);
    /* A first operation run: the runners are up and have looked once (as they start). */
    for (int i = 0; i <= RUN_OPS; i++) {
        char id[CL_OPERATION_ID_MAX];
        cl_db_conn *conn = NULL;
        cl_error err = {0};

        if (i == 1) {
            reads = atomic_load(&sqlite_counted_read_locks);
        }
        assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
        assert_int_equal(cl_db_begin(conn, &err), CL_OK);
        if (cl_operation_create(conn, "widgets", "widgets.paint", NULL, id, &err) != CL_OK) {
            fail_msg("create: %s", err.message);
        }
        assert_int_equal(cl_db_commit(conn, &err), CL_OK);
        cl_db_release(conn);
        while (counter(&b, 1) < base + i + 1) {
            if (cl_now_ms() >= until) {
                fail_msg("operation %d of %d did not run", i + 1, RUN_OPS + 1);
            }
            test_poll_pause();
        }
    }
    cl_bus_stop(bus);
    reads = atomic_load(&sqlite_counted_read_locks) - reads;
    /* 81 seen (one more: a runner's look as it stops); 129-131 before, 6.5 per operation. */
    if (reads > 4 * RUN_OPS + 5) {
        fail_msg("%d read transactions for %d operations created, claimed and run: runners "
                 "woken for nothing",
                 reads, RUN_OPS);
    }
    cl_bus_free(bus);
    cl_config_free(cfg);
    cl_db_close(db);
    test_rmrf(dir);
}

/*
 * A backlog is claimed in the outcomes' transactions (ADR 0068): a runner that records an
 * outcome claims its next operation in the same transaction and runs it at once, with no
 * look and no claim of its own. BACKLOG operations created before the bus starts, one
 * runner: the bus's start, the first claim and one transaction per operation, in write
 * transactions counted from before the start to the stop. Each claimed once (epoch 1).
 */
#define BACKLOG 20

static void test_operation_backlog_is_claimed_in_the_outcomes_transactions(void **state)
{
    char dir[256], out[64];
    cl_config *cfg = NULL;
    cl_bus *bus;
    cl_db *db;
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    int base = counter(&b, 1);
    int writes;
    int64_t until = cl_now_ms() + WAIT_MS;

    (void)state;
    db = widgets_db(dir);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_begin(conn, &err), CL_OK);
    for (int i = 0; i < BACKLOG; i++) {
        char id[CL_OPERATION_ID_MAX];

        assert_int_equal(cl_operation_create(conn, "widgets", "widgets.paint", NULL, id, &err),
                         CL_OK);
    }
    assert_int_equal(cl_db_commit(conn, &err), CL_OK);
    cl_db_release(conn);
    writes = atomic_load(&sqlite_counted_write_locks);
    bus = bus_for("backlog", &kind_b, db, 1, 60000, &cfg);
    while (counter(&b, 1) < base + BACKLOG) {
        if (cl_now_ms() >= until) {
            fail_msg("%d of %d operations ran", counter(&b, 1) - base, BACKLOG);
        }
        test_poll_pause();
    }
    cl_bus_stop(bus);
    writes = atomic_load(&sqlite_counted_write_locks) - writes;
    query(db,
          "SELECT CAST(count(*) AS TEXT) FROM cl_operations WHERE status = 'succeeded' "
          "AND lease_epoch = 1",
          out, sizeof(out));
    assert_int_equal(strtol(out, NULL, 10), BACKLOG);
    /* 24 seen: the bus's start (3), the first claim, 20 outcomes; 43 before, a claim each. */
    if (writes > BACKLOG + 5) {
        fail_msg("%d write transactions to run a backlog of %d operations: claims of their own",
                 writes, BACKLOG);
    }
    cl_bus_free(bus);
    cl_config_free(cfg);
    cl_db_close(db);
    test_rmrf(dir);
}

/*
 * Waits until the first column of sql (a literal: statements are cached by their text's
 * address), with arg bound to its one parameter, reads want; fails after WAIT_MS.
 */
static void wait_for(cl_db *db, const char *sql, const char *arg, const char *want)
{
    int64_t until = cl_now_ms() + WAIT_MS;

    for (;;) {
        char out[64];

        query_with(db, sql, arg, out, sizeof(out));
        if (strcmp(out, want) == 0) {
            return;
        }
        if (cl_now_ms() >= until) {
            fail_msg("%s (%s): %s, not %s after %d ms", sql, arg, out, want, WAIT_MS);
        }
        test_poll_pause();
    }
}

static const char status_sql[] = "SELECT status FROM cl_operations WHERE id = ?";
static const char effects_sql[] = "SELECT CAST(count(*) AS TEXT) FROM effects WHERE op = ?";

/*
 * A claim made with an outcome that fails costs the outcome nothing (ADR 0068): it is
 * written again, completion included, without the claim. A trigger refuses the second
 * operation's claims while the test wants: the first operation's outcome claims it, is
 * refused, and the first still succeeds with one completion; the second waits, pending,
 * and runs once its claims are let through.
 */
static void test_operation_outcome_survives_a_refused_claim(void **state)
{
    char dir[256], first[CL_OPERATION_ID_MAX], second[CL_OPERATION_ID_MAX];
    cl_config *cfg = NULL;
    cl_bus *bus;
    cl_db *db;
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};

    (void)state;
    db = widgets_db(dir);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_exec(conn,
                                "CREATE TABLE refused (id TEXT);"
                                "CREATE TRIGGER refuse_claim BEFORE UPDATE OF status ON "
                                "cl_operations WHEN NEW.status = 'running' AND NEW.id IN "
                                "(SELECT id FROM refused) BEGIN "
                                "SELECT RAISE(ABORT, 'claim refused by the test'); END",
                                &err),
                     CL_OK);
    assert_int_equal(cl_operation_create(conn, "widgets", "widgets.paint", NULL, first, &err),
                     CL_OK);
    assert_int_equal(cl_operation_create(conn, "widgets", "widgets.paint", NULL, second, &err),
                     CL_OK);
    assert_int_equal(cl_db_prepare(conn, "INSERT INTO refused (id) VALUES (?)", &st, &err), CL_OK);
    assert_int_equal(cl_stmt_bind_text(st, 1, second, &err), CL_OK);
    assert_int_equal(cl_stmt_drain(st, NULL, &err), CL_OK);
    cl_db_release(conn);

    bus = bus_for("refused", &kind_b, db, 1, 20, &cfg);
    wait_for(db, status_sql, first, "succeeded");
    wait_for(db, effects_sql, first, "1");
    wait_for(db, status_sql, second, "pending");

    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    assert_int_equal(cl_db_exec(conn, "DELETE FROM refused", &err), CL_OK);
    cl_db_release(conn);
    wait_for(db, status_sql, second, "succeeded");
    wait_for(db, effects_sql, second, "1");
    cl_bus_stop(bus);
    wait_for(db, effects_sql, first, "1");
    cl_bus_free(bus);
    cl_config_free(cfg);
    cl_db_close(db);
    test_rmrf(dir);
}

/*
 * Operation ids are "<module>-" and 32 hex digits in time order (ADR 0056): one created in a
 * later millisecond sorts after, so the operations' unique index grows at its right edge.
 * Eight, each in a millisecond of its own: random ids would come in order once in 40,320 runs.
 */
static void test_operation_ids_sort_in_the_order_created(void **state)
{
    char dir[256], prev[CL_OPERATION_ID_MAX] = "", id[CL_OPERATION_ID_MAX];
    cl_db *db;
    cl_db_conn *conn = NULL;
    cl_error err = {0};

    (void)state;
    db = widgets_db(dir);
    assert_int_equal(cl_db_acquire(db, NULL, &conn, &err), CL_OK);
    for (int i = 0; i < 8; i++) {
        int64_t made;

        assert_int_equal(cl_operation_create(conn, "widgets", "widgets.paint", NULL, id, &err),
                         CL_OK);
        assert_int_equal(strlen(id), strlen("widgets-") + 32);
        assert_memory_equal(id, "widgets-", strlen("widgets-"));
        if (i > 0 && strcmp(id, prev) <= 0) {
            fail_msg("%s created after %s sorts before it", id, prev);
        }
        memcpy(prev, id, sizeof(prev));
        made = cl_wall_ms();
        while (cl_wall_ms() <= made) {
            /* the next operation in the next millisecond */
        }
    }
    cl_db_release(conn);
    cl_db_close(db);
    test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operation_lease_refuses_a_stale_runner),
        cmocka_unit_test(test_operation_idle_runner_takes_no_write_lock),
        cmocka_unit_test(test_operation_is_claimed_once_by_one_runner),
        cmocka_unit_test(test_operation_backlog_is_claimed_in_the_outcomes_transactions),
        cmocka_unit_test(test_operation_outcome_survives_a_refused_claim),
        cmocka_unit_test(test_operation_ids_sort_in_the_order_created),
    };

    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests_name("operation_lease", tests, NULL, NULL);
}
