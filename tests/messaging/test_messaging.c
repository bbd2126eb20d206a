/*
 * The bus end to end, with the real binaries: catalog.product_created events open each new
 * SKU's stock record in the inventory, and every product must end up with its record,
 * each event recorded once in the inventory's inbox.
 *
 *   test_messaging in-process after-commit|after-deliver
 *       one `cleave serve`, killed with SIGKILL (CLEAVE_TEST_CRASH_AT) between the
 *       business commit and delivery, or between delivery and the outbox ack; restarted.
 *   test_messaging nats after-commit|after-publish|after-deliver
 *       two processes over a real nats-server: the gateway with the catalog
 *       (cleave-without-inventory) and cleave-inventory; the process at that step is killed
 *       and restarted.
 *   test_messaging dlq
 *       a poisoned message is dead-lettered after N attempts; `cleave dlq replay` delivers
 *       it once the handler works again; bad ids are refused.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "nats_server.h"
#include "proc.h"
#include "test_module.h"

#define PRODUCTS 6

static const char *mode = "in-process";
static const char *point = "after-commit";

typedef struct world {
    char dir[256];
    nats_server nats;
    char nats_env[128];
    test_proc gateway;
    test_proc subscriber; /* the inventory's service, over NATS */
    int subscriber_port;
    char base[64];
    test_db_env db; /* on PostgreSQL: one database, each module in its own schema */
} world;

static world *current; /* the world of the running test, for env_common */

static void env_common(char **env, int *n, const char *dir, const char *data)
{
    static char data_env[4][512];
    static int next;
    char *slot = data_env[next++ % 4];

    snprintf(slot, 512, "CLEAVE_DATA_DIR=%s/%s", dir, data);
    env[(*n)++] = slot;
    env[(*n)++] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    env[(*n)++] = "CLEAVE_SHIPPING_CARRIER_MS=5";
    env[(*n)++] = "CLEAVE_BUS_POLL_MS=20";
    env[(*n)++] = "CLEAVE_BUS_BACKOFF_MS=5";
    env[(*n)++] = "CLEAVE_BUS_BACKOFF_MAX_MS=20";
    env[(*n)++] = "CLEAVE_BUS_MAX_ATTEMPTS=3";
    env[(*n)++] = "CLEAVE_BUS_ACK_WAIT_MS=1000";
    env[(*n)++] = "CLEAVE_DEV_SERVICE_TOKEN=messaging-test";
    /*
     * On PostgreSQL every process gets admin credentials too, so that `serve` migrates
     * as it does on SQLite; it then runs as each module's app role. No replica: these
     * tests are about the bus, and a process restarted right after a write must not read
     * a replica that lags.
     */
    *n = test_db_env_add(&current->db, env, *n, 1);
}

/* Starts bin serve; crash (may be NULL) arms the crash hook. Returns the port or -1. */
static int start(world *w, test_proc *p, const char *bin, const char *data, const char *listen,
                 const char *extra1, const char *extra2)
{
    char path[512], log[512];
    char *argv[] = {(char *)bin, "serve", NULL};
    char *env[28];
    int n = 0;

    env_common(env, &n, w->dir, data);
    env[n++] = (char *)listen;
    if (w->nats_env[0] != '\0') {
        env[n++] = w->nats_env;
    }
    if (extra1 != NULL) {
        env[n++] = (char *)extra1;
    }
    if (extra2 != NULL) {
        env[n++] = (char *)extra2;
    }
    env[n] = NULL;
    snprintf(path, sizeof(path), "%s/%s", CLEAVE_BIN_DIR, bin);
    snprintf(log, sizeof(log), "%s/%s.log", w->dir, bin);
    if (test_proc_start(p, path, argv, env, log) != 0) {
        return -1;
    }
    return test_proc_wait_port(p, 30000);
}

/* Waits until p has exited by itself (the crash hook), up to timeout_ms. */
static int wait_exit(test_proc *p, int timeout_ms)
{
    struct timespec nap = {0, 10 * 1000000L};
    int done = 0;

    for (int64_t i = 0; i < timeout_ms / 10 && !done; i++) {
        pthread_mutex_lock(&p->mu);
        done = p->eof;
        pthread_mutex_unlock(&p->mu);
        if (!done) {
            nanosleep(&nap, NULL);
        }
    }
    return done ? test_proc_stop(p, SIGKILL) : -1;
}

/*
 * Creates product i through the catalog's RPC API as a service caller (the token every
 * process of the world shares): these tests are about the bus, and the public API's
 * token issuer would publish events of its own that the crash points would count.
 */
static int create_product(const char *base, int i)
{
    static const char *const service[] = {"Authorization: Bearer messaging-test", NULL};
    char body[256];
    test_resp r = {0};
    int rc;

    snprintf(body, sizeof(body),
             "{\"sku\":\"MSG-%d\",\"name\":\"%s %d\",\"price\":{\"amount\":100,\"currency\":"
             "\"EUR\"},\"category\":\"kitchen\"}",
             i, i == 99 ? "POISON" : "Parcel", i);
    rc = test_http(base, "POST", "/rpc/v1/catalog/create_product", body, strlen(body), service, &r);
    rc = rc == 0 && r.status == 200 ? (int)json_integer_value(json_object_get(r.json, "id")) : -1;
    test_resp_free(&r);
    return rc;
}

/*
 * How many stock records the inventory has for sku (0 or 1), or -1 on failure: asked of
 * the process that runs the inventory, through its RPC API, as create_product does.
 */
static long stock_records_of(const world *w, const char *sku)
{
    static const char *const service[] = {"Authorization: Bearer messaging-test", NULL};
    char body[128], base[64];
    test_resp r = {0};
    long n = -1;

    if (snprintf(body, sizeof(body), "{\"sku\":\"%s\"}", sku) >= (int)sizeof(body)) {
        fail_msg("SKU %.40s... does not fit a request", sku);
    }
    snprintf(base, sizeof(base), "%s", w->base);
    if (w->subscriber_port > 0) {
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", w->subscriber_port);
    }
    if (test_http(base, "POST", "/rpc/v1/inventory/get_stock", body, strlen(body), service, &r) ==
            0 &&
        (r.status == 200 || r.status == 404)) {
        n = r.status == 200 ? 1 : 0;
    }
    test_resp_free(&r);
    return n;
}

/* The SKUs of every product in the catalog (the source of truth after a crash). */
static int product_skus(const char *base, char (*skus)[32], int max)
{
    test_resp r = {0};
    json_t *items;
    int n = 0;

    assert_int_equal(test_http(base, "GET", "/api/v1/products?limit=100", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    items = json_object_get(r.json, "items");
    for (size_t i = 0; i < json_array_size(items) && n < max; i++) {
        snprintf(skus[n++], 32, "%s",
                 json_string_value(json_object_get(json_array_get(items, i), "sku")));
    }
    test_resp_free(&r);
    return n;
}

/* Runs a count query (one row, one column) on conn; -1 on failure. */
static long count_of(cl_db_conn *conn, const char *sql, const char *arg)
{
    cl_stmt *st = NULL;
    cl_error err = {0};
    bool row = false;
    long n = -1;

    if (cl_db_prepare(conn, sql, &st, &err) == CL_OK &&
        (arg == NULL || cl_stmt_bind_text(st, 1, arg, &err) == CL_OK) &&
        cl_stmt_step(st, &row, &err) == CL_OK && row) {
        n = (long)cl_stmt_i64(st, 0);
    }
    while (row && cl_stmt_step(st, &row, &err) == CL_OK) {
    }
    return n;
}

/*
 * Polls, with a deadline, until delivery has settled: the catalog's outbox holds no
 * undelivered message, and every product_created it delivered is recorded in the
 * inventory's inbox (so a redelivery still on its way is one the inbox drops).
 * Reads both databases the way the processes left them.
 */
static void wait_settled(world *w)
{
    static const char backlog_sql[] = "SELECT count(*) FROM cl_outbox WHERE delivered_ms IS NULL";
    static const char delivered_sql[] = "SELECT id FROM cl_outbox WHERE delivered_ms IS NOT NULL "
                                        "AND type = 'catalog.product_created' ORDER BY seq";
    static const char inbox_sql[] = "SELECT count(*) FROM cl_inbox WHERE message_id = ?";
    bool nats = w->nats_env[0] != '\0';
    char pub_dir[512], sub_dir[512];
    struct timespec nap = {0, 20 * 1000000L};
    cl_db *pub = NULL, *sub = NULL;
    cl_error err = {0};
    long backlog = -1, missing = -1;

    snprintf(pub_dir, sizeof(pub_dir), "%s/%s", w->dir, nats ? "gateway" : "data");
    snprintf(sub_dir, sizeof(sub_dir), "%s/%s", w->dir, nats ? "inventory" : "data");
    if (test_module_db_open(pub_dir, w->db.admin_url, "catalog", &pub, &err) != CL_OK ||
        test_module_db_open(sub_dir, w->db.admin_url, "inventory", &sub, &err) != CL_OK) {
        fail_msg("opening the databases: %s", err.message);
    }
    for (int64_t end = cl_now_ms() + 30000; cl_now_ms() < end; nanosleep(&nap, NULL)) {
        cl_db_conn *pc = NULL, *sc = NULL;
        cl_stmt *st = NULL;
        bool row = false;

        if (cl_db_acquire(pub, NULL, &pc, &err) != CL_OK ||
            cl_db_acquire(sub, NULL, &sc, &err) != CL_OK) {
            fail_msg("acquire: %s", err.message);
        }
        backlog = count_of(pc, backlog_sql, NULL);
        missing = 0;
        if (cl_db_prepare(pc, delivered_sql, &st, &err) != CL_OK ||
            cl_stmt_step(st, &row, &err) != CL_OK) {
            missing = -1;
        }
        while (missing >= 0 && row) {
            if (count_of(sc, inbox_sql, cl_stmt_text(st, 0)) != 1) {
                missing++;
            }
            if (cl_stmt_step(st, &row, &err) != CL_OK) {
                missing = -1;
            }
        }
        cl_db_release(sc);
        cl_db_release(pc);
        if (backlog == 0 && missing == 0) {
            break;
        }
    }
    cl_db_close(sub);
    cl_db_close(pub);
    if (backlog != 0 || missing != 0) {
        fail_msg("delivery did not settle: outbox backlog %ld, delivered but not in the inbox %ld",
                 backlog, missing);
    }
}

/*
 * Every product's SKU gets its stock record (polling a real condition); then delivery
 * settles with each delivered event in the inventory's inbox once, and every record is
 * still there.
 */
static void assert_exactly_once(world *w, int min_products)
{
    char skus[128][32];
    int n = product_skus(w->base, skus, 128);
    struct timespec nap = {0, 20 * 1000000L};

    assert_true(n >= min_products);
    for (int i = 0; i < n; i++) {
        long c = 0;
        for (int t = 0; t < 1500 && (c = stock_records_of(w, skus[i])) < 1; t++) {
            nanosleep(&nap, NULL);
        }
        if (c != 1) {
            fail_msg("product %s has %ld stock records, want 1", skus[i], c);
        }
    }
    /* Once every delivered message is in the inbox, no redelivery can change anything. */
    wait_settled(w);
    for (int i = 0; i < n; i++) {
        long c = stock_records_of(w, skus[i]);
        if (c != 1) {
            fail_msg("product %s has %ld stock records after settling, want 1", skus[i], c);
        }
    }
}

static void world_open(world *w)
{
    memset(w, 0, sizeof(*w));
    current = w;
    assert_int_equal(test_tmpdir(w->dir, sizeof(w->dir)), 0);
    assert_int_equal(test_db_env_open(&w->db, 0), 0);
}

static void world_close(world *w)
{
    if (w->gateway.pid > 0) {
        assert_int_equal(test_proc_stop(&w->gateway, SIGTERM), 0);
    }
    if (w->subscriber.pid > 0) {
        assert_int_equal(test_proc_stop(&w->subscriber, SIGTERM), 0);
    }
    nats_server_stop(&w->nats);
    test_db_env_close(&w->db);
    test_rmrf(w->dir);
}

static int run_cli(world *w, const char *a1, const char *a2, const char *a3, const char *extra,
                   char *out, size_t size)
{
    char *argv[] = {"cleave", (char *)a1, (char *)a2, (char *)a3, NULL};
    char *env[28];
    int n = 0;

    env_common(env, &n, w->dir, "data");
    if (extra != NULL) {
        env[n++] = (char *)extra;
    }
    env[n] = NULL;
    return test_run(CLEAVE_BIN_DIR "/cleave", argv, env, out, size);
}

static void test_in_process_crash_then_restart_gives_exactly_once(void **state)
{
    world w;
    char crash[64], out[4096];
    int port;

    (void)state;
    world_open(&w);
    snprintf(crash, sizeof(crash), "CLEAVE_TEST_CRASH_AT=%s:3", point);
    assert_int_equal(run_cli(&w, "migrate", NULL, NULL, NULL, out, sizeof(out)), 0);
    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0", crash, NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    for (int i = 1; i <= PRODUCTS; i++) {
        (void)create_product(w.base, i); /* the later ones meet a dead process */
    }
    assert_int_equal(wait_exit(&w.gateway, 30000), 128 + SIGKILL);
    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0", NULL, NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    assert_true(create_product(w.base, 50) > 0);
    assert_exactly_once(&w, 3);
    world_close(&w);
}

static void test_nats_crash_then_restart_gives_exactly_once(void **state)
{
    world w;
    char crash[64], url[96], listen[64];
    bool in_subscriber = strcmp(point, "after-deliver") == 0;
    test_proc *victim;
    int port;

    (void)state;
    world_open(&w);
    assert_int_equal(nats_server_start(&w.nats, w.dir), 0);
    snprintf(w.nats_env, sizeof(w.nats_env), "CLEAVE_NATS_URL=%s", w.nats.url);
    snprintf(crash, sizeof(crash), "CLEAVE_TEST_CRASH_AT=%s:3", point);
    w.subscriber_port = start(&w, &w.subscriber, "cleave-inventory", "inventory",
                              "CLEAVE_LISTEN=127.0.0.1:0", in_subscriber ? crash : NULL, NULL);
    assert_true(w.subscriber_port > 0);
    snprintf(url, sizeof(url), "CLEAVE_INVENTORY_URL=http://127.0.0.1:%d", w.subscriber_port);
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", w.subscriber_port);
    port = start(&w, &w.gateway, "cleave-without-inventory", "gateway", "CLEAVE_LISTEN=127.0.0.1:0",
                 url, in_subscriber ? NULL : crash);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    for (int i = 1; i <= PRODUCTS; i++) {
        (void)create_product(w.base, i);
    }
    victim = in_subscriber ? &w.subscriber : &w.gateway;
    assert_int_equal(wait_exit(victim, 30000), 128 + SIGKILL);
    if (in_subscriber) {
        assert_true(start(&w, &w.subscriber, "cleave-inventory", "inventory", listen, NULL, NULL) >
                    0);
    } else {
        port = start(&w, &w.gateway, "cleave-without-inventory", "gateway",
                     "CLEAVE_LISTEN=127.0.0.1:0", url, NULL);
        assert_true(port > 0);
        snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    }
    assert_true(create_product(w.base, 50) > 0);
    assert_exactly_once(&w, 3);
    world_close(&w);
}

/* Polls `cleave dlq list` until it shows ref. */
static int wait_dead_letter(world *w, const char *ref)
{
    char out[8192];
    struct timespec nap = {0, 50 * 1000000L};

    for (int t = 0; t < 400; t++) {
        if (run_cli(w, "dlq", "list", NULL, NULL, out, sizeof(out)) == 0 &&
            strstr(out, ref) != NULL) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    return -1;
}

static void test_poison_is_dead_lettered_and_replayed_once_fixed(void **state)
{
    world w;
    char out[8192];
    int port;

    (void)state;
    world_open(&w);
    assert_int_equal(run_cli(&w, "migrate", NULL, NULL, NULL, out, sizeof(out)), 0);
    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0",
                 "CLEAVE_TEST_POISON=POISON", NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    assert_true(create_product(w.base, 99) > 0);
    assert_true(create_product(w.base, 1) > 0);
    assert_int_equal(wait_dead_letter(&w, "inventory:1 "), 0);
    assert_int_equal(run_cli(&w, "dlq", "list", NULL, NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "attempts=3"));
    assert_non_null(strstr(out, "poisoned by CLEAVE_TEST_POISON"));
    assert_int_equal(stock_records_of(&w, "MSG-99"), 0);
    assert_int_equal(stock_records_of(&w, "MSG-1") >= 0, 1);
    assert_int_equal(test_proc_stop(&w.gateway, SIGTERM), 0);

    /* Still broken: the replay fails and the dead letter stays. */
    assert_int_not_equal(
        run_cli(&w, "dlq", "replay", "inventory:1", "CLEAVE_TEST_POISON=POISON", out, sizeof(out)),
        0);
    /* Bad ids: a message and a non-zero exit. */
    assert_int_not_equal(run_cli(&w, "dlq", "replay", "inventory:999", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "999"));
    assert_int_not_equal(run_cli(&w, "dlq", "drop", "nonsense", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "MODULE:ID"));
    /* Fixed: delivered once, gone from the dead letters. */
    assert_int_equal(run_cli(&w, "dlq", "replay", "inventory:1", NULL, out, sizeof(out)), 0);
    assert_int_equal(run_cli(&w, "dlq", "list", NULL, NULL, out, sizeof(out)), 0);
    assert_null(strstr(out, "inventory:1 "));
    assert_int_not_equal(run_cli(&w, "dlq", "replay", "inventory:1", NULL, out, sizeof(out)), 0);

    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0", NULL, NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    assert_exactly_once(&w, 2);
    world_close(&w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest in_process[] = {
        cmocka_unit_test(test_in_process_crash_then_restart_gives_exactly_once),
    };
    const struct CMUnitTest nats[] = {
        cmocka_unit_test(test_nats_crash_then_restart_gives_exactly_once),
    };
    const struct CMUnitTest dlq[] = {
        cmocka_unit_test(test_poison_is_dead_lettered_and_replayed_once_fixed),
    };
    char name[64];

    if (argc > 1) {
        mode = argv[1];
    }
    if (argc > 2) {
        point = argv[2];
    }
    snprintf(name, sizeof(name), "%s %s", mode, argc > 2 ? point : "");
    if (strcmp(mode, "nats") == 0) {
        return cmocka_run_group_tests_name(name, nats, NULL, NULL);
    }
    if (strcmp(mode, "dlq") == 0) {
        return cmocka_run_group_tests_name(name, dlq, NULL, NULL);
    }
    return cmocka_run_group_tests_name(name, in_process, NULL, NULL);
}
