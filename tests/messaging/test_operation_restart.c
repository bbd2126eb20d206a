/*
 * Long-running operations outlive the process that accepted them (ADR 0012): the real
 * `cleave serve` accepts three shipments (202 + Location) with a carrier step far longer
 * than the test waits, so two operations are running on the two runners and the third is
 * pending when the process is stopped; a new process on the same data directory then
 * finishes all three, and each shipment is booked exactly once.
 *
 *   test_operation_restart sigkill
 *       a crash: nothing is recorded on the way out; the running operations are found
 *       running at start and resumed, the pending one is run.
 *   test_operation_restart sigterm
 *       a clean stop: the in-flight carrier steps finish and are recorded before exit
 *       (cl_bus_stop lets in-flight work finish), the pending one stays pending and is
 *       run by the next process.
 *
 * Between the two processes the test reads the shipping database itself (the platform's
 * cl_operation_get and the outbox), to show what the first process left behind.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cleave/bus.h"
#include "cleave/db.h"
#include "client.h"
#include "proc.h"
#include "test_module.h"

#define SHIPMENTS    3
/* The two runners (CLEAVE_BUS_WORKERS) are busy this long with the first two shipments. */
#define SLOW_CARRIER "CLEAVE_SHIPPING_CARRIER_MS=3000"
#define FAST_CARRIER "CLEAVE_SHIPPING_CARRIER_MS=50"
#define DEADLINE_MS  30000
#define POLL_MS      10

static const char *mode = "sigkill";
static char migrations_env[] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";

typedef struct accepted {
    long shipment_id;
    char order_ref[32];
    char operation_id[CL_OPERATION_ID_MAX];
    char location[256];
} accepted;

typedef struct world {
    char dir[256];
    char data_env[512];
    test_proc serve;
    char base[64];
    accepted shipments[SHIPMENTS];
    test_db_env db; /* on PostgreSQL: the database both processes use */
} world;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
    struct timespec ts = {0, POLL_MS * 1000000L};

    nanosleep(&ts, NULL);
}

/* Starts `cleave serve` on the world's data directory with carrier (a CLEAVE_... line). */
static void start(world *w, const char *carrier)
{
    char log[512];
    char *argv[] = {"cleave", "serve", NULL};
    char *env[12] = {w->data_env,
                     "CLEAVE_LISTEN=127.0.0.1:0",
                     migrations_env,
                     "CLEAVE_BUS_WORKERS=2",
                     "CLEAVE_BUS_POLL_MS=20",
                     (char *)carrier,
                     NULL};
    char *seed_argv[] = {"cleave", "seed", "--module", "identity", NULL};
    char out[4096] = "", token[4096];
    int port;

    /* On PostgreSQL with admin credentials, so that serve migrates as it does on SQLite. */
    test_db_env_add(&w->db, env, 6, 1);

    snprintf(log, sizeof(log), "%s/cleave.log", w->dir);
    assert_int_equal(test_proc_start(&w->serve, CLEAVE_BIN_DIR "/cleave", argv, env, log), 0);
    port = test_proc_wait_port(&w->serve, DEADLINE_MS);
    if (port <= 0) {
        fail_msg("cleave serve did not start; see %s", log);
    }
    snprintf(w->base, sizeof(w->base), "http://127.0.0.1:%d", port);
    /* The public API needs a token: the seeded admin's (seeding again finds it there). */
    if (test_run(CLEAVE_BIN_DIR "/cleave", seed_argv, env, out, sizeof(out)) != 0 ||
        test_password_token(w->base, TEST_ADMIN, TEST_ADMIN_PASSWORD, token, sizeof(token)) != 0) {
        fail_msg("no token for the operation's requests: %s", out);
    }
    test_http_set_bearer(token);
}

/* POST /api/v1/shipments: 202, Location naming the operation, the body agreeing with it. */
static void request(world *w, accepted *a, int n)
{
    char body[128];
    test_resp r = {0};
    const char *op;

    snprintf(a->order_ref, sizeof(a->order_ref), "order:restart-%d", n);
    snprintf(body, sizeof(body), "{\"order_ref\":\"%s\"}", a->order_ref);
    assert_int_equal(test_http(w->base, "POST", "/api/v1/shipments", body, strlen(body), NULL, &r),
                     0);
    if (r.status != 202) {
        fail_msg("POST /api/v1/shipments: %ld %s", r.status, r.body);
    }
    op = json_string_value(json_object_get(r.json, "operation_id"));
    assert_non_null(op);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "pending");
    a->shipment_id = (long)json_integer_value(json_object_get(r.json, "shipment_id"));
    assert_true(a->shipment_id > 0);
    cl_strlcpy(a->operation_id, op, sizeof(a->operation_id));
    snprintf(a->location, sizeof(a->location), "/api/v1/operations/%s", op);
    assert_string_equal(r.location, a->location);
    test_resp_free(&r);
}

/* GET the operation's Location: its status (into status[size]); 200 required. */
static void operation_status(world *w, const accepted *a, char *status, size_t size,
                             test_resp *keep)
{
    test_resp r = {0};

    assert_int_equal(test_http(w->base, "GET", a->location, NULL, 0, NULL, &r), 0);
    if (r.status != 200) {
        fail_msg("GET %s: %ld %s", a->location, r.status, r.body);
    }
    assert_string_equal(json_string_value(json_object_get(r.json, "id")), a->operation_id);
    cl_strlcpy(status, json_string_value(json_object_get(r.json, "status")), size);
    if (keep != NULL) {
        *keep = r;
    } else {
        test_resp_free(&r);
    }
}

/* Polls until the runners hold two operations running and the third waits, pending. */
static void wait_two_running_one_pending(world *w)
{
    int64_t deadline = now_ms() + DEADLINE_MS;

    for (;;) {
        int running = 0, pending = 0;

        for (int i = 0; i < SHIPMENTS; i++) {
            char status[32];

            operation_status(w, &w->shipments[i], status, sizeof(status), NULL);
            running += strcmp(status, "running") == 0;
            pending += strcmp(status, "pending") == 0;
        }
        if (running == 2 && pending == 1) {
            return;
        }
        if (now_ms() > deadline) {
            fail_msg("not 2 running and 1 pending after %d ms (%d, %d)", DEADLINE_MS, running,
                     pending);
        }
        nap();
    }
}

/* Polls the operation until it is final; it must have succeeded with the shipment's booking. */
static void wait_succeeded(world *w, const accepted *a)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    char status[32] = "", tracking[32];
    test_resp r = {0};
    json_t *result;

    for (;;) {
        operation_status(w, a, status, sizeof(status), &r);
        if (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0) {
            break;
        }
        test_resp_free(&r);
        if (now_ms() > deadline) {
            fail_msg("operation %s still %s after %d ms", a->operation_id, status, DEADLINE_MS);
        }
        nap();
    }
    if (strcmp(status, "succeeded") != 0) {
        fail_msg("operation %s failed: %s", a->operation_id, r.body);
    }
    assert_null(json_object_get(r.json, "problem"));
    result = json_object_get(r.json, "result");
    snprintf(tracking, sizeof(tracking), "CP%010ld", a->shipment_id);
    assert_int_equal(json_integer_value(json_object_get(result, "shipment_id")), a->shipment_id);
    assert_string_equal(json_string_value(json_object_get(result, "tracking")), tracking);
    test_resp_free(&r);
}

/* The shipment is booked under its operation, and its order has that one shipment only. */
static void assert_booked_once(world *w, const accepted *a)
{
    char path[128], tracking[32];
    test_resp r = {0};
    json_t *items;

    snprintf(path, sizeof(path), "/api/v1/shipments/%ld", a->shipment_id);
    assert_int_equal(test_http(w->base, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(tracking, sizeof(tracking), "CP%010ld", a->shipment_id);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "booked");
    assert_string_equal(json_string_value(json_object_get(r.json, "tracking")), tracking);
    assert_string_equal(json_string_value(json_object_get(r.json, "operation_id")),
                        a->operation_id);
    test_resp_free(&r);

    snprintf(path, sizeof(path), "/api/v1/shipments?order=%s", a->order_ref);
    assert_int_equal(test_http(w->base, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")),
                     a->shipment_id);
    test_resp_free(&r);
}

/* --- what the stopped process left in the shipping database -------------------------- */

typedef struct left_behind {
    char status[SHIPMENTS][16]; /* each operation's status, as stored */
    long booked_events;         /* shipping.shipment_booked rows in the outbox */
    long booked_keys;           /* distinct shipments among them */
} left_behind;

static void read_database(world *w, left_behind *out)
{
    static const char count_sql[] = "SELECT count(*), count(DISTINCT msg_key) FROM cl_outbox "
                                    "WHERE type = 'shipping.shipment_booked'";
    char path[512];
    cl_db *db = NULL;
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = false;

    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/data", w->dir);
    if (test_module_db_open(path, w->db.admin_url, "shipping", &db, &err) != CL_OK ||
        cl_db_acquire(db, NULL, &conn, &err) != CL_OK) {
        fail_msg("%s: %s", path, err.message);
    }
    for (int i = 0; i < SHIPMENTS; i++) {
        cl_operation op = {0};

        if (cl_operation_get(conn, w->shipments[i].operation_id, &op, &err) != CL_OK) {
            fail_msg("operation %s: %s", w->shipments[i].operation_id, err.message);
        }
        cl_strlcpy(out->status[i], op.status, sizeof(out->status[i]));
        cl_schema_free(&cl_operation_type, &op);
    }
    if (cl_db_prepare(conn, count_sql, &st, &err) != CL_OK ||
        cl_stmt_step(st, &row, &err) != CL_OK || !row) {
        fail_msg("outbox: %s", err.message);
    }
    out->booked_events = (long)cl_stmt_i64(st, 0);
    out->booked_keys = (long)cl_stmt_i64(st, 1);
    while (row && cl_stmt_step(st, &row, &err) == CL_OK) {
    }
    cl_db_release(conn);
    cl_db_close(db);
}

static int count_status(const left_behind *l, const char *status)
{
    int n = 0;

    for (int i = 0; i < SHIPMENTS; i++) {
        n += strcmp(l->status[i], status) == 0;
    }
    return n;
}

/* --- the test -------------------------------------------------------------------------- */

static void test_operations_survive_a_restart(void **state)
{
    bool crash = strcmp(mode, "sigkill") == 0;
    world w;
    left_behind left;
    int status;

    (void)state;
    memset(&w, 0, sizeof(w));
    assert_int_equal(test_tmpdir(w.dir, sizeof(w.dir)), 0);
    assert_int_equal(test_db_env_open(&w.db, 0), 0);
    snprintf(w.data_env, sizeof(w.data_env), "CLEAVE_DATA_DIR=%s/data", w.dir);

    start(&w, SLOW_CARRIER);
    for (int i = 0; i < SHIPMENTS; i++) {
        request(&w, &w.shipments[i], i + 1);
    }
    wait_two_running_one_pending(&w);
    status = test_proc_stop(&w.serve, crash ? SIGKILL : SIGTERM);
    assert_int_equal(status, crash ? 128 + SIGKILL : 0);

    read_database(&w, &left);
    assert_int_equal(count_status(&left, "pending"), 1);
    if (crash) {
        /* Killed mid-step: the two stay running, nothing booked, nothing published. */
        assert_int_equal(count_status(&left, "running"), 2);
        assert_int_equal(left.booked_events, 0);
    } else {
        /* Stopped cleanly: the two in-flight steps finished and were recorded. */
        assert_int_equal(count_status(&left, "succeeded"), 2);
        assert_int_equal(left.booked_events, 2);
        assert_int_equal(left.booked_keys, 2);
    }

    /* A new process on the same data finishes everything the first one accepted. */
    start(&w, FAST_CARRIER);
    for (int i = 0; i < SHIPMENTS; i++) {
        wait_succeeded(&w, &w.shipments[i]);
        assert_booked_once(&w, &w.shipments[i]);
    }
    assert_int_equal(test_proc_stop(&w.serve, SIGTERM), 0);

    /* Each booking took effect once: one shipment_booked event per shipment. */
    read_database(&w, &left);
    assert_int_equal(count_status(&left, "succeeded"), SHIPMENTS);
    assert_int_equal(left.booked_events, SHIPMENTS);
    assert_int_equal(left.booked_keys, SHIPMENTS);
    test_db_env_close(&w.db);
    test_rmrf(w.dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations_survive_a_restart),
    };
    char name[64];

    if (argc > 1) {
        mode = argv[1];
    }
    if (strcmp(mode, "sigkill") != 0 && strcmp(mode, "sigterm") != 0) {
        fprintf(stderr, "usage: test_operation_restart sigkill|sigterm\n");
        return EXIT_FAILURE;
    }
    snprintf(name, sizeof(name), "operation restart after %s", mode);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
