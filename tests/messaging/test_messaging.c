/*
 * The bus end to end, with the real binaries: catalog.product_created events make
 * shipments ("product:<id>"), and each product must end up with exactly one.
 *
 *   test_messaging in-process after-commit|after-deliver
 *       one `cleave serve`, killed with SIGKILL (CLEAVE_TEST_CRASH_AT) between the
 *       business commit and delivery, or between delivery and the outbox ack; restarted.
 *   test_messaging nats after-commit|after-publish|after-deliver
 *       two processes over a real nats-server: the gateway with the catalog
 *       (cleave-without-shipping) and cleave-shipping; the process at that step is killed
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

#define PRODUCTS 6

static const char *mode = "in-process";
static const char *point = "after-commit";

typedef struct world {
    char dir[256];
    nats_server nats;
    char nats_env[128];
    test_proc gateway;
    test_proc shipping;
    int shipping_port;
    char base[64];
} world;

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
    env[(*n)++] = "CLEAVE_SERVICE_TOKEN=messaging-test";
}

/* Starts bin serve; crash (may be NULL) arms the crash hook. Returns the port or -1. */
static int start(world *w, test_proc *p, const char *bin, const char *data, const char *listen,
                 const char *extra1, const char *extra2)
{
    char path[512], log[512];
    char *argv[] = {(char *)bin, "serve", NULL};
    char *env[24];
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

static int create_product(const char *base, int i)
{
    char body[256];
    test_resp r = {0};
    int rc;

    snprintf(body, sizeof(body),
             "{\"sku\":\"MSG-%d\",\"name\":\"%s %d\",\"price\":{\"amount\":100,\"currency\":"
             "\"EUR\"},\"category\":\"kitchen\"}",
             i, i == 99 ? "POISON" : "Parcel", i);
    rc = test_http(base, "POST", "/api/v1/products", body, strlen(body), NULL, &r);
    rc = rc == 0 && r.status == 201 ? (int)json_integer_value(json_object_get(r.json, "id")) : -1;
    test_resp_free(&r);
    return rc;
}

static long shipments_of(const char *base, long product)
{
    char path[128];
    test_resp r = {0};
    long n = -1;

    snprintf(path, sizeof(path), "/api/v1/shipments?order=product:%ld", product);
    if (test_http(base, "GET", path, NULL, 0, NULL, &r) == 0 && r.status == 200) {
        n = (long)json_array_size(json_object_get(r.json, "items"));
    }
    test_resp_free(&r);
    return n;
}

/* The ids of every product in the catalog (the source of truth after a crash). */
static int product_ids(const char *base, long *ids, int max)
{
    test_resp r = {0};
    json_t *items;
    int n = 0;

    assert_int_equal(test_http(base, "GET", "/api/v1/products?limit=100", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    items = json_object_get(r.json, "items");
    for (size_t i = 0; i < json_array_size(items) && n < max; i++) {
        ids[n++] = (long)json_integer_value(json_object_get(json_array_get(items, i), "id"));
    }
    test_resp_free(&r);
    return n;
}

/* Every product gets its shipment (polling a real condition), then exactly one each. */
static void assert_exactly_once(const char *base, int min_products)
{
    long ids[128];
    int n = product_ids(base, ids, 128);
    struct timespec nap = {0, 20 * 1000000L};

    assert_true(n >= min_products);
    for (int i = 0; i < n; i++) {
        long c = 0;
        for (int t = 0; t < 1500 && (c = shipments_of(base, ids[i])) < 1; t++) {
            nanosleep(&nap, NULL);
        }
        if (c != 1) {
            fail_msg("product %ld has %ld shipments, want 1", ids[i], c);
        }
    }
    /* Redeliveries that were still on their way have had time to arrive: count again. */
    nanosleep(&(struct timespec){1, 500 * 1000000L}, NULL);
    for (int i = 0; i < n; i++) {
        long c = shipments_of(base, ids[i]);
        if (c != 1) {
            fail_msg("product %ld has %ld shipments after settling, want 1", ids[i], c);
        }
    }
}

static void world_open(world *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(test_tmpdir(w->dir, sizeof(w->dir)), 0);
}

static void world_close(world *w)
{
    if (w->gateway.pid > 0) {
        assert_int_equal(test_proc_stop(&w->gateway, SIGTERM), 0);
    }
    if (w->shipping.pid > 0) {
        assert_int_equal(test_proc_stop(&w->shipping, SIGTERM), 0);
    }
    nats_server_stop(&w->nats);
    test_rmrf(w->dir);
}

static int run_cli(world *w, const char *a1, const char *a2, const char *a3, const char *extra,
                   char *out, size_t size)
{
    char *argv[] = {"cleave", (char *)a1, (char *)a2, (char *)a3, NULL};
    char *env[24];
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
    assert_exactly_once(w.base, 3);
    world_close(&w);
}

static void test_nats_crash_then_restart_gives_exactly_once(void **state)
{
    world w;
    char crash[64], url[96], listen[64];
    bool in_shipping = strcmp(point, "after-deliver") == 0;
    test_proc *victim;
    int port;

    (void)state;
    world_open(&w);
    assert_int_equal(nats_server_start(&w.nats, w.dir), 0);
    snprintf(w.nats_env, sizeof(w.nats_env), "CLEAVE_NATS_URL=%s", w.nats.url);
    snprintf(crash, sizeof(crash), "CLEAVE_TEST_CRASH_AT=%s:3", point);
    w.shipping_port = start(&w, &w.shipping, "cleave-shipping", "shipping",
                            "CLEAVE_LISTEN=127.0.0.1:0", in_shipping ? crash : NULL, NULL);
    assert_true(w.shipping_port > 0);
    snprintf(url, sizeof(url), "CLEAVE_SHIPPING_URL=http://127.0.0.1:%d", w.shipping_port);
    snprintf(listen, sizeof(listen), "CLEAVE_LISTEN=127.0.0.1:%d", w.shipping_port);
    port = start(&w, &w.gateway, "cleave-without-shipping", "gateway", "CLEAVE_LISTEN=127.0.0.1:0",
                 url, in_shipping ? NULL : crash);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    for (int i = 1; i <= PRODUCTS; i++) {
        (void)create_product(w.base, i);
    }
    victim = in_shipping ? &w.shipping : &w.gateway;
    assert_int_equal(wait_exit(victim, 30000), 128 + SIGKILL);
    if (in_shipping) {
        assert_true(start(&w, &w.shipping, "cleave-shipping", "shipping", listen, NULL, NULL) > 0);
    } else {
        port = start(&w, &w.gateway, "cleave-without-shipping", "gateway",
                     "CLEAVE_LISTEN=127.0.0.1:0", url, NULL);
        assert_true(port > 0);
        snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    }
    assert_true(create_product(w.base, 50) > 0);
    assert_exactly_once(w.base, 3);
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
    int port, poison, fine;

    (void)state;
    world_open(&w);
    assert_int_equal(run_cli(&w, "migrate", NULL, NULL, NULL, out, sizeof(out)), 0);
    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0",
                 "CLEAVE_TEST_POISON=POISON", NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    poison = create_product(w.base, 99);
    fine = create_product(w.base, 1);
    assert_true(poison > 0 && fine > 0);
    assert_int_equal(wait_dead_letter(&w, "shipping:1 "), 0);
    assert_int_equal(run_cli(&w, "dlq", "list", NULL, NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "attempts=3"));
    assert_non_null(strstr(out, "poisoned by CLEAVE_TEST_POISON"));
    assert_int_equal(shipments_of(w.base, poison), 0);
    assert_int_equal(shipments_of(w.base, fine) >= 0, 1);
    assert_int_equal(test_proc_stop(&w.gateway, SIGTERM), 0);

    /* Still broken: the replay fails and the dead letter stays. */
    assert_int_not_equal(
        run_cli(&w, "dlq", "replay", "shipping:1", "CLEAVE_TEST_POISON=POISON", out, sizeof(out)),
        0);
    /* Bad ids: a message and a non-zero exit. */
    assert_int_not_equal(run_cli(&w, "dlq", "replay", "shipping:999", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "999"));
    assert_int_not_equal(run_cli(&w, "dlq", "drop", "nonsense", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "MODULE:ID"));
    /* Fixed: delivered once, gone from the dead letters. */
    assert_int_equal(run_cli(&w, "dlq", "replay", "shipping:1", NULL, out, sizeof(out)), 0);
    assert_int_equal(run_cli(&w, "dlq", "list", NULL, NULL, out, sizeof(out)), 0);
    assert_null(strstr(out, "shipping:1 "));
    assert_int_not_equal(run_cli(&w, "dlq", "replay", "shipping:1", NULL, out, sizeof(out)), 0);

    port = start(&w, &w.gateway, "cleave", "data", "CLEAVE_LISTEN=127.0.0.1:0", NULL, NULL);
    assert_true(port > 0);
    snprintf(w.base, sizeof(w.base), "http://127.0.0.1:%d", port);
    assert_exactly_once(w.base, 2);
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
