/*
 * The checkout saga end to end (ADR 0014): the real binaries over real HTTP, in the
 * topology named by argv[1] ("monolith" or "inventory+payments-extracted"), one case
 * named by argv[2]:
 *   happy                 a two-line order confirms, sells, captures and ships
 *   out_of_stock          rejected, its reservation released, nothing charged
 *   insufficient_funds    rejected after void and release; an unknown account too
 *   payments_unreachable  (extracted only) payments' service stopped: the order waits in
 *                         compensating, and ends rejected with everything given back once
 *                         the service returns
 *   crash <point>         the gateway is killed with SIGKILL at a saga step boundary
 *                         (CLEAVE_TEST_CRASH_AT), restarted, and every saga ends
 *   concurrency           20 parallel checkouts of a SKU with stock 5: exactly 5 confirm
 *   kill_restart          (extracted only; label fault) inventory's service SIGKILLed and
 *                         restarted under 15 s of checkouts from 4 clients, each following
 *                         its order and reading stock: no request outlives its deadline,
 *                         and every checkout ends
 *   two_hosts             (PostgreSQL only) a second host on the same database, killed
 *                         with SIGKILL (or by a crash point mid-saga) and restarted every
 *                         few seconds while checkouts go to both: every saga ends, and the
 *                         saga log shows each step run by one executor under one lease,
 *                         no write of a stale lease accepted (ADR 0034)
 * After each case the invariants hold: every order final; for every SKU available +
 * reserved + sold = the stock set, nothing reserved, sold = what confirmed orders bought;
 * every account's held is 0 and its deposits minus its available = what its confirmed
 * orders cost; the ledger's events replay into the same projections; a payment is
 * captured exactly when its order is confirmed. No sleeps: every wait polls real state
 * with a deadline.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "shop.h"
#include "topology.h"

#define WAIT_MS     60000
#define MAX_ORDERS  64
#define MAX_SKUS    4
#define MAX_ACCOUNT 4

static const char *topology_name = "monolith";
static const char *case_name = "happy";
static const char *crash_at = "";
static topology topo;

/* What the test set up, for the invariants. */
static struct {
    char sku[MAX_SKUS][16];
    int64_t initial[MAX_SKUS];
    int nskus;
    char account[MAX_ACCOUNT][64];
    int64_t deposited[MAX_ACCOUNT];
    int naccounts;
} world;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void req(const char *method, const char *path, const char *body, test_resp *r)
{
    assert_int_equal(test_http(topo.base_url, method, path, body, body ? strlen(body) : 0, NULL, r),
                     0);
}

static int64_t num(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* --- set-up through the public API ------------------------------------------------------ */

static void set_stock(const char *sku, int64_t on_hand)
{
    char path[96], body[64];
    test_resp r;

    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    snprintf(body, sizeof(body), "{\"on_hand\":%lld}", (long long)on_hand);
    req("PUT", path, body, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    assert_true(world.nskus < MAX_SKUS);
    snprintf(world.sku[world.nskus], sizeof(world.sku[0]), "%s", sku);
    world.initial[world.nskus++] = on_hand;
}

/* Opens an account in EUR with deposit (minor units; 0: none); returns its id. */
static const char *open_account(const char *owner, int64_t deposit)
{
    char path[128], body[128];
    test_resp r;
    const char *id;

    snprintf(body, sizeof(body), "{\"owner\":\"%s\",\"currency\":\"EUR\"}", owner);
    req("POST", "/api/v1/accounts", body, &r);
    assert_int_equal(r.status, 201);
    assert_true(world.naccounts < MAX_ACCOUNT);
    snprintf(world.account[world.naccounts], sizeof(world.account[0]), "%s", str(r.json, "id"));
    test_resp_free(&r);
    id = world.account[world.naccounts];
    world.deposited[world.naccounts++] = deposit;
    if (deposit > 0) {
        snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", id);
        snprintf(body, sizeof(body), "{\"amount\":{\"amount\":%lld,\"currency\":\"EUR\"}}",
                 (long long)deposit);
        req("POST", path, body, &r);
        assert_int_equal(r.status, 200);
        test_resp_free(&r);
    }
    return id;
}

/*
 * POSTs an order of qty of sku (and qty2 of sku2 when sku2 is not NULL). Returns the HTTP
 * status (0 when the server went away) and the order's id into id[64].
 */
static long place_with(const char *prefer, const char *account, const char *sku, int64_t qty,
                       const char *sku2, int64_t qty2, char id[64])
{
    const char *const headers[] = {prefer, NULL};
    char body[512];
    test_resp r;
    long status;

    if (sku2 != NULL) {
        snprintf(body, sizeof(body),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"%s\",\"quantity\":%lld},"
                 "{\"sku\":\"%s\",\"quantity\":%lld}]}",
                 account, sku, (long long)qty, sku2, (long long)qty2);
    } else {
        snprintf(body, sizeof(body),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"%s\",\"quantity\":%lld}]}", account,
                 sku, (long long)qty);
    }
    id[0] = '\0';
    if (test_http(topo.base_url, "POST", "/api/v1/orders", body, strlen(body),
                  prefer != NULL ? headers : NULL, &r) != 0) {
        return 0;
    }
    status = r.status;
    if (status == 202) {
        if (str(r.json, "id") == NULL || str(r.json, "status") == NULL) {
            fail_msg("202 without an order: %.200s", r.body);
        }
        snprintf(id, 64, "%s", str(r.json, "id"));
        /* Not final: pending, or compensating after a wait (prefer). */
        if (prefer == NULL) {
            assert_string_equal(str(r.json, "status"), "pending");
        } else {
            assert_false(test_order_is_final(str(r.json, "status")));
        }
    }
    test_resp_free(&r);
    return status;
}

static long place(const char *account, const char *sku, int64_t qty, const char *sku2, int64_t qty2,
                  char id[64])
{
    return place_with(NULL, account, sku, qty, sku2, qty2, id);
}

/* place of one line with the header prefer ("Prefer: ..."). */
static long place_preferring(const char *prefer, const char *account, const char *sku, int64_t qty,
                             char id[64])
{
    return place_with(prefer, account, sku, qty, NULL, 0, id);
}

/* Polls GET /orders/{id} until its status is want (NULL: any final one); the order JSON. */
static json_t *wait_order(const char *id, const char *want)
{
    char path[128];
    int64_t until = now_ms() + WAIT_MS;

    snprintf(path, sizeof(path), "/api/v1/orders/%s", id);
    for (;;) {
        test_resp r;
        const char *status;

        req("GET", path, NULL, &r);
        assert_int_equal(r.status, 200);
        status = str(r.json, "status");
        if (want != NULL ? strcmp(status, want) == 0 : test_order_is_final(status)) {
            json_t *o = json_incref(r.json);
            test_resp_free(&r);
            return o;
        }
        if (now_ms() > until) {
            fail_msg("order %s still %s after %d ms: %s", id, status, WAIT_MS, r.body);
        }
        test_resp_free(&r);
        test_poll_pause();
    }
}

/*
 * GET /orders/{id} once with the header prefer ("Prefer: ..."): the answer into *r, the
 * milliseconds it took into *took_ms.
 */
static void get_preferring(const char *id, const char *prefer, test_resp *r, int64_t *took_ms)
{
    const char *const headers[] = {prefer, NULL};
    char path[128];
    int64_t t0 = now_ms();

    snprintf(path, sizeof(path), "/api/v1/orders/%s", id);
    assert_int_equal(test_http(topo.base_url, "GET", path, NULL, 0, headers, r), 0);
    *took_ms = now_ms() - t0;
}

/* The name of the first invalid parameter of a problem answer, or "". */
static const char *problem_param(const test_resp *r)
{
    const char *name = str(json_array_get(json_object_get(r->json, "invalid_params"), 0), "name");
    return name != NULL ? name : "";
}

/* Polls until every order is final; returns them all. */
static json_t *wait_all_final(void)
{
    json_t *all = test_orders_wait_final(topo.base_url, WAIT_MS);

    if (all == NULL) {
        fail_msg("the orders did not all end");
    }
    return all;
}

static json_t *get_json(const char *path)
{
    json_t *j = test_call(topo.base_url, "GET", path, NULL, 200);

    if (j == NULL) {
        fail_msg("GET %s failed", path);
    }
    return j;
}

static json_t *stock_of(const char *sku)
{
    char path[96];

    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    return get_json(path);
}

static json_t *account_of(const char *id)
{
    char path[128];

    snprintf(path, sizeof(path), "/api/v1/accounts/%s?history_limit=100", id);
    return get_json(path);
}

/* The steps of an order's saga history, joined: "place,reserve,authorize,...". */
static void steps_of(json_t *order, char *out, size_t size)
{
    json_t *e;
    size_t i;

    out[0] = '\0';
    json_array_foreach (json_object_get(order, "history"), i, e) {
        if (strcmp(str(e, "outcome"), "retrying") == 0) {
            continue;
        }
        snprintf(out + strlen(out), size - strlen(out), "%s%s%s", out[0] ? "," : "", str(e, "step"),
                 strcmp(str(e, "outcome"), "ok") == 0 ? "" : "!");
    }
}

/* `payments rebuild` through the gateway binary: the ledger's events make its projections. */
static void assert_ledger_replays_unchanged(void)
{
    char bin[512], out[4096];
    char *env[TOPOLOGY_ENV_MAX];
    char *argv[] = {topo.gateway_bin, "payments", "rebuild", NULL};
    int rc;

    /* On PostgreSQL the ledger is in the topology's database, not under the data directory. */
    topology_env(&topo, 0, env);
    rc = test_run(topology_bin(topo.gateway_bin, bin, sizeof(bin)), argv, env, out, sizeof(out));
    if (rc != 0 || strstr(out, "projections unchanged") == NULL) {
        fail_msg("payments rebuild exited %d:\n%s", rc, out);
    }
}

/* The invariants of the module header, checked through the public API only. */
static void assert_invariants(void)
{
    json_t *orders = wait_all_final(), *o, *e;
    size_t i, k;

    for (int s = 0; s < world.nskus; s++) {
        json_t *st = stock_of(world.sku[s]);
        int64_t bought = test_confirmed_quantity(orders, world.sku[s]);

        assert_int_equal(num(st, "available") + num(st, "reserved") + num(st, "sold"),
                         world.initial[s]);
        assert_int_equal(num(st, "reserved"), 0);
        assert_int_equal(num(st, "sold"), bought);
        json_decref(st);
    }
    for (int a = 0; a < world.naccounts; a++) {
        json_t *acc = account_of(world.account[a]);
        int64_t spent = 0;
        int captured = 0, confirmed = 0;

        json_array_foreach (orders, i, o) {
            char pay[96];
            int found = 0;

            if (strcmp(str(o, "account_id"), world.account[a]) != 0) {
                continue;
            }
            snprintf(pay, sizeof(pay), "pay-%s", str(o, "id"));
            json_array_foreach (json_object_get(acc, "history"), k, e) {
                found += strcmp(str(e, "type"), "hold_captured") == 0 && str(e, "payment_id") &&
                         strcmp(str(e, "payment_id"), pay) == 0;
            }
            /* Captured exactly when confirmed, and only once. */
            if (strcmp(str(o, "status"), "confirmed") == 0) {
                assert_int_equal(found, 1);
                spent += num(json_object_get(o, "total"), "amount");
                confirmed++;
            } else {
                assert_int_equal(found, 0);
            }
        }
        json_array_foreach (json_object_get(acc, "history"), k, e) {
            captured += strcmp(str(e, "type"), "hold_captured") == 0;
        }
        assert_int_equal(captured, confirmed);
        assert_int_equal(num(json_object_get(acc, "held"), "amount"), 0);
        assert_int_equal(world.deposited[a] - num(json_object_get(acc, "available"), "amount"),
                         spent);
        json_decref(acc);
    }
    json_decref(orders);
    assert_ledger_replays_unchanged();
}

/* --- the cases ----------------------------------------------------------------------------- */

static void test_happy_path_confirms_and_ships(void)
{
    const char *acc = open_account("Happy", 100000);
    char id[64], again[64], steps[256], path[160];
    json_t *o, *sh;
    int64_t until, took;
    test_resp r;
    const char *const key[] = {"Idempotency-Key: happy-1", NULL};
    const char *body =
        "{\"account_id\":\"demo\",\"lines\":[{\"sku\":\"SKU-000003\",\"quantity\":1}]}";

    set_stock("SKU-000001", 10);
    set_stock("SKU-000002", 10);
    assert_int_equal(place(acc, "SKU-000001", 2, "SKU-000002", 1, id), 202);
    /*
     * Prefer: wait (RFC 7240), among other preferences: one GET, sent as soon as the order
     * is placed, answers once the saga ended.
     */
    get_preferring(id, "Prefer: respond-async, wait=30; x=1", &r, &took);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.json, "status"), "confirmed");
    test_resp_free(&r);
    /* A wait that is not a number of seconds is refused, naming the header. */
    get_preferring(id, "Prefer: wait=soon", &r, &took);
    assert_true(test_is_problem(&r, 400));
    assert_string_equal(problem_param(&r), "Prefer");
    test_resp_free(&r);
    o = wait_order(id, NULL);
    assert_string_equal(str(o, "status"), "confirmed");
    steps_of(o, steps, sizeof(steps));
    assert_string_equal(steps, "place,reserve,authorize,commit,capture,confirm");
    assert_int_equal(json_array_size(json_object_get(o, "lines")), 2);
    {
        json_t *l0 = json_array_get(json_object_get(o, "lines"), 0);
        json_t *l1 = json_array_get(json_object_get(o, "lines"), 1);
        int64_t total = num(json_object_get(l0, "line_total"), "amount") +
                        num(json_object_get(l1, "line_total"), "amount");
        assert_int_equal(num(json_object_get(l0, "line_total"), "amount"),
                         2 * num(json_object_get(l0, "unit_price"), "amount"));
        assert_int_equal(num(json_object_get(o, "total"), "amount"), total);
        assert_string_equal(str(json_object_get(o, "total"), "currency"), "EUR");
    }
    /* Shipping reacts to orders.order_confirmed: one shipment for the order. */
    snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", id);
    until = now_ms() + WAIT_MS;
    for (;;) {
        sh = get_json(path);
        if (json_array_size(json_object_get(sh, "items")) > 0 || now_ms() > until) {
            break;
        }
        json_decref(sh);
        test_poll_pause();
    }
    assert_int_equal(json_array_size(json_object_get(sh, "items")), 1);
    json_decref(sh);
    json_decref(o);

    /* The same Idempotency-Key places one order, whatever the retries. */
    assert_int_equal(
        test_http(topo.base_url, "POST", "/api/v1/orders", body, strlen(body), key, &r), 0);
    assert_int_equal(r.status, 202);
    snprintf(again, sizeof(again), "%s", str(r.json, "id"));
    test_resp_free(&r);
    assert_int_equal(
        test_http(topo.base_url, "POST", "/api/v1/orders", body, strlen(body), key, &r), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(str(r.json, "id"), again);
    test_resp_free(&r);
    /* It is the demo account's (not one of this test's): only its end is checked. */
    json_decref(wait_order(again, NULL));

    /*
     * Prefer: wait on the POST itself: one request, answered once the saga ended, 201 with
     * the final order and its Location.
     */
    {
        const char *const wait[] = {"Prefer: wait=30", NULL};
        const char *const soon[] = {"Prefer: wait=soon", NULL};
        char one[256];
        size_t before;

        snprintf(one, sizeof(one),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-000001\",\"quantity\":1}]}",
                 acc);
        assert_int_equal(
            test_http(topo.base_url, "POST", "/api/v1/orders", one, strlen(one), wait, &r), 0);
        assert_int_equal(r.status, 201);
        assert_string_equal(str(r.json, "status"), "confirmed");
        snprintf(path, sizeof(path), "/api/v1/orders/%s", str(r.json, "id"));
        assert_string_equal(r.location, path);
        steps_of(r.json, steps, sizeof(steps));
        assert_string_equal(steps, "place,reserve,authorize,commit,capture,confirm");
        test_resp_free(&r);
        /* A wait that is not a number of seconds is refused, naming the header: no order. */
        o = wait_all_final();
        before = json_array_size(o);
        json_decref(o);
        assert_int_equal(
            test_http(topo.base_url, "POST", "/api/v1/orders", one, strlen(one), soon, &r), 0);
        assert_true(test_is_problem(&r, 400));
        assert_string_equal(problem_param(&r), "Prefer");
        test_resp_free(&r);
        o = wait_all_final();
        assert_int_equal(json_array_size(o), before);
        json_decref(o);
    }

    /* Bad input names its field; an unknown SKU is 404; an unknown order too. */
    req("POST", "/api/v1/orders", "{\"account_id\":\"demo\",\"lines\":[]}", &r);
    assert_true(test_is_problem(&r, 400));
    test_resp_free(&r);
    req("POST", "/api/v1/orders",
        "{\"account_id\":\"demo\",\"lines\":[{\"sku\":\"NO-SUCH\",\"quantity\":1}]}", &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
    req("GET", "/api/v1/orders/ord-nothing", NULL, &r);
    assert_true(test_is_problem(&r, 404));
    test_resp_free(&r);
}

static void test_out_of_stock_is_rejected(void)
{
    const char *acc = open_account("Short", 100000);
    char id[64], steps[256];
    json_t *o;

    set_stock("SKU-000004", 1);
    assert_int_equal(place(acc, "SKU-000004", 2, NULL, 0, id), 202);
    o = wait_order(id, NULL);
    assert_string_equal(str(o, "status"), "rejected");
    assert_string_equal(str(o, "reason"), "out_of_stock");
    steps_of(o, steps, sizeof(steps));
    assert_string_equal(steps, "place,reserve!,release,reject");
    json_decref(o);
}

static void test_insufficient_funds_is_rejected(void)
{
    const char *poor = open_account("Poor", 100);
    char id[64], steps[256];
    json_t *o;

    set_stock("SKU-000005", 3);
    assert_int_equal(place(poor, "SKU-000005", 1, NULL, 0, id), 202);
    o = wait_order(id, NULL);
    assert_string_equal(str(o, "status"), "rejected");
    assert_string_equal(str(o, "reason"), "insufficient_funds");
    steps_of(o, steps, sizeof(steps));
    assert_string_equal(steps, "place,reserve,authorize!,void,release,reject");
    json_decref(o);

    assert_int_equal(place("nobody-has-this", "SKU-000005", 1, NULL, 0, id), 202);
    o = wait_order(id, NULL);
    assert_string_equal(str(o, "reason"), "unknown_account");
    json_decref(o);
}

static void test_payments_unreachable_compensates(void)
{
    const char *acc = open_account("Waiting", 100000);
    char id[64], steps[256];
    json_t *o, *st;
    test_resp r;
    int64_t took;

    set_stock("SKU-000006", 4);
    assert_int_equal(topology_stop_module(&topo, "payments"), 0);
    /* A POST that would wait for a saga that does not end answers 202 after the wait. */
    took = now_ms();
    assert_int_equal(place_preferring("Prefer: wait=1", acc, "SKU-000006", 3, id), 202);
    assert_true(now_ms() - took >= 1000);
    /* Past its retry budget the saga compensates; the void waits for payments. */
    o = wait_order(id, "compensating");
    assert_string_equal(str(o, "reason"), "payments_unavailable");
    json_decref(o);
    /* A saga that does not end: Prefer: wait=1 answers after that second, as it is then. */
    get_preferring(id, "Prefer: wait=1", &r, &took);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.json, "status"), "compensating");
    assert_true(took >= 1000);
    test_resp_free(&r);
    st = stock_of("SKU-000006");
    assert_int_equal(num(st, "reserved"), 3);
    json_decref(st);
    assert_int_equal(topology_restart_module(&topo, "payments"), 0);
    /* Payments is back: one waiting GET sees the compensation through to its end. */
    get_preferring(id, "Prefer: wait=60", &r, &took);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.json, "status"), "rejected");
    test_resp_free(&r);
    o = wait_order(id, NULL);
    assert_string_equal(str(o, "status"), "rejected");
    assert_string_equal(str(o, "reason"), "payments_unavailable");
    steps_of(o, steps, sizeof(steps));
    assert_string_equal(steps, "place,reserve,authorize!,void,release,reject");
    json_decref(o);
}

/*
 * Two orders, one that can confirm and one that cannot pay, so that every crash point
 * (forward and compensating) is reached. The gateway dies there; restarted, it resumes.
 */
static void test_crash_then_restart_ends_every_saga(void)
{
    const char *rich = open_account("Rich", 100000);
    const char *poor = open_account("Poor", 100);
    char a[64], b[64];
    json_t *orders, *o;
    size_t i;
    int status;

    set_stock("SKU-000007", 5);
    set_stock("SKU-000008", 5);
    /*
     * Either POST may find the gateway gone already: the orders list is the truth. The
     * first asks to wait, so that its saga runs on the thread that placed it (ADR 0058) and
     * meets the forward crash points there; the second's, queued, meets the compensating
     * ones in a worker.
     */
    place_preferring("Prefer: wait=30", rich, "SKU-000007", 2, a);
    place(poor, "SKU-000008", 1, NULL, 0, b);
    status = topology_gateway_wait_exit(&topo, WAIT_MS);
    if (status != 128 + 9) {
        fail_msg("the gateway should have been killed at %s; it exited %d", crash_at, status);
    }
    assert_int_equal(topology_restart_gateway(&topo, NULL), 0);
    orders = wait_all_final();
    assert_true(json_array_size(orders) >= 1);
    json_array_foreach (orders, i, o) {
        if (strcmp(str(o, "account_id"), rich) == 0) {
            assert_string_equal(str(o, "status"), "confirmed");
        } else {
            assert_string_equal(str(o, "status"), "rejected");
            assert_string_equal(str(o, "reason"), "insufficient_funds");
        }
    }
    json_decref(orders);
}

#define PARALLEL 20
#define STOCK    5

static void *checkout_thread(void *arg)
{
    char *id = arg;
    char body[256];
    test_resp r;

    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-000009\",\"quantity\":1}]}",
             world.account[0]);
    id[0] = '\0';
    if (test_http(topo.base_url, "POST", "/api/v1/orders", body, strlen(body), NULL, &r) == 0) {
        if (r.status == 202) {
            snprintf(id, 64, "%s", json_string_value(json_object_get(r.json, "id")));
        }
        test_resp_free(&r);
    }
    test_http_thread_done();
    return NULL;
}

static void test_parallel_checkouts_never_oversell(void)
{
    static char ids[PARALLEL][64];
    pthread_t th[PARALLEL];
    int confirmed = 0, rejected = 0;

    open_account("Crowd", 100000000);
    set_stock("SKU-000009", STOCK);
    for (int i = 0; i < PARALLEL; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, checkout_thread, ids[i]), 0);
    }
    for (int i = 0; i < PARALLEL; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < PARALLEL; i++) {
        json_t *o;

        assert_true(ids[i][0] != '\0');
        o = wait_order(ids[i], NULL);
        if (strcmp(str(o, "status"), "confirmed") == 0) {
            confirmed++;
        } else {
            assert_string_equal(str(o, "reason"), "out_of_stock");
            rejected++;
        }
        json_decref(o);
    }
    assert_int_equal(confirmed, STOCK);
    assert_int_equal(rejected, PARALLEL - STOCK);
}

/* --- two hosts on one database (ADR 0034) ----------------------------------- */

#define TWO_HOSTS_RUN_MS   30000 /* how long host B is killed and restarted */
#define TWO_HOSTS_CYCLE_MS 3000  /* how long each life of host B lasts at most */
#define TWO_HOSTS_ORDERS   90    /* at most: keeps each account's history in one page */
#define TWO_HOSTS_CLIENTS  2
/* Short leases, so that a dead host's sagas move to the other within the run. */

static struct {
    pthread_mutex_t mu;
    int stop;
    int placed; /* POSTs sent */
    int accepted;
    char ids[TWO_HOSTS_ORDERS][64];
    char b_url[64];
} hosts = {.mu = PTHREAD_MUTEX_INITIALIZER};

static test_proc host_b;
static char host_b_listen[64];

/*
 * Starts host B: the gateway's binary on the same database, its port fixed across lives.
 * 0 once it serves; 1 when it reached its crash point before it served (resuming its
 * predecessor's sagas at start), and is gone.
 */
static int start_host_b(const char *crash)
{
    char *env[TOPOLOGY_ENV_MAX + 8];
    char bin[512], log[600], crash_env[96];
    char *argv[] = {topo.gateway_bin, "serve", NULL};
    int n = 0;

    topology_env(&topo, 0, env);
    while (env[n] != NULL) {
        n++;
    }
    env[n++] = host_b_listen;
    env[n++] = "CLEAVE_HOST_ID=host-b"; /* the same machine as host A, another host */
    env[n++] = "CLEAVE_SHIPPING_CARRIER_MS=10";
    env[n++] = "CLEAVE_ORDERS_LEASE_MS=2000";
    env[n++] = "CLEAVE_ORDERS_LEASE_RENEW_MS=500";
    if (crash != NULL) {
        snprintf(crash_env, sizeof(crash_env), "CLEAVE_TEST_CRASH_AT=%s", crash);
        env[n++] = crash_env;
    }
    env[n] = NULL;
    snprintf(log, sizeof(log), "%s/host-b.log", topo.dir);
    assert_int_equal(
        test_proc_start(&host_b, topology_bin(topo.gateway_bin, bin, sizeof(bin)), argv, env, log),
        0);
    if (test_proc_wait_port(&host_b, 30000) < 0) {
        FILE *f;
        char tail[2048];
        size_t got = 0;

        if (test_proc_wait_exit(&host_b, 5000) == 128 + 9) {
            return 1;
        }
        /* The directory goes at teardown: show the end of its log here. */
        f = fopen(log, "rb");
        if (f != NULL) {
            (void)fseek(f, -(long)(sizeof(tail) - 1), SEEK_END);
            got = fread(tail, 1, sizeof(tail) - 1, f);
            (void)fclose(f);
        }
        tail[got] = '\0';
        fail_msg("host B did not start:\n%s", tail);
    }
    return 0;
}

/* Places orders of one unit on host A and B in turn until told to stop or the cap. */
static void *two_hosts_client(void *arg)
{
    int me = *(const int *)arg;
    char body[256], base[64];
    test_resp r;

    for (int i = 0;; i++) {
        const struct timespec pace = {0, 250 * 1000000L}; /* the offered load, not a wait */
        int slot;

        pthread_mutex_lock(&hosts.mu);
        slot = hosts.stop || hosts.placed == TWO_HOSTS_ORDERS ? -1 : hosts.placed++;
        snprintf(base, sizeof(base), "%s", (i + me) % 2 == 0 ? topo.base_url : hosts.b_url);
        pthread_mutex_unlock(&hosts.mu);
        if (slot < 0) {
            break;
        }
        snprintf(body, sizeof(body),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"%s\",\"quantity\":1}]}",
                 world.account[slot % 3], world.sku[slot % 2]);
        /* A host killed meanwhile may have placed the order or not: the list is the truth. */
        if (test_http(base, "POST", "/api/v1/orders", body, strlen(body), NULL, &r) == 0) {
            if (r.status == 202) {
                pthread_mutex_lock(&hosts.mu);
                snprintf(hosts.ids[hosts.accepted++], sizeof(hosts.ids[0]), "%s",
                         str(r.json, "id"));
                pthread_mutex_unlock(&hosts.mu);
            }
            test_resp_free(&r);
        }
        nanosleep(&pace, NULL);
    }
    test_http_thread_done();
    return NULL;
}

/* The first column of the first row of sql on the topology's database, as a number. */
static long long pg_number(const char *sql)
{
    char out[64];

    if (pgtest_query(topo.db.admin_url, sql, out, sizeof(out)) != 0) {
        fail_msg("query failed: %s", sql);
    }
    return strtoll(out, NULL, 10);
}

static void test_two_hosts_one_executor_per_saga(void)
{
    /* Host B dies by itself at these points (lease held, step half done) or by SIGKILL. */
    static const char *const crashes[] = {
        "orders.after-reserve:2", "orders.after-authorize:2", "orders.after-commit:2",
        "orders.after-capture:2", "orders.before-confirm:2",  NULL,
    };
    static const int client_no[TWO_HOSTS_CLIENTS] = {0, 1};
    pthread_t th[TWO_HOSTS_CLIENTS];
    json_t *orders, *o;
    int64_t until;
    size_t i;
    int lives = 0, crashed = 0;
    long long stale, shared, twice, taken_over;

    if (topo.db.admin_url[0] == '\0') {
        fail_msg("two_hosts needs PostgreSQL (CL_TEST_DB=postgres): hosts share one database");
    }
    open_account("Rich", 100000000);
    open_account("Wealthy", 100000000);
    open_account("Poor", 1);
    set_stock("SKU-000011", 40);
    set_stock("SKU-000012", 40);
    snprintf(host_b_listen, sizeof(host_b_listen), "CLEAVE_LISTEN=127.0.0.1:%d", test_free_port());
    snprintf(hosts.b_url, sizeof(hosts.b_url), "http://%s",
             host_b_listen + strlen("CLEAVE_LISTEN="));
    test_http_set_bearer_for(hosts.b_url, topo.token);
    assert_int_equal(start_host_b(NULL), 0);
    for (int c = 0; c < TWO_HOSTS_CLIENTS; c++) {
        assert_int_equal(pthread_create(&th[c], NULL, two_hosts_client, (void *)&client_no[c]), 0);
    }
    until = now_ms() + TWO_HOSTS_RUN_MS;
    while (now_ms() < until) {
        int status = 128 + 9, at_point = 1;

        /* One life of host B: it ends by its crash point, or by SIGKILL at the cycle's end. */
        if (host_b.pid != 0) {
            status = test_proc_wait_exit(&host_b, TWO_HOSTS_CYCLE_MS);
            if (status < 0) {
                status = test_proc_stop(&host_b, SIGKILL);
                at_point = 0;
            } else {
                crashed++;
            }
        } else {
            crashed++; /* at its crash point while it started */
        }
        assert_int_equal(status, 128 + 9);
        lives++;
        /*
         * Killed at a crash point, host B left a saga half-way: it stays down until host
         * A took over every saga it left (their leases must lapse first). Killed by
         * SIGKILL it comes straight back and takes its sagas back itself (a restarted
         * host id is known dead).
         */
        if (at_point) {
            int64_t deadline = now_ms() + WAIT_MS;

            while (pg_number("SELECT count(*) FROM orders.orders WHERE status IN "
                             "('pending', 'compensating') AND lease_host = 'host-b'") > 0) {
                if (now_ms() > deadline) {
                    fail_msg("host A did not take over host B's sagas in %d ms", WAIT_MS);
                }
                test_poll_pause();
            }
        }
        (void)start_host_b(crashes[lives % (int)(sizeof(crashes) / sizeof(crashes[0]))]);
    }
    pthread_mutex_lock(&hosts.mu);
    hosts.stop = 1;
    pthread_mutex_unlock(&hosts.mu);
    for (int c = 0; c < TWO_HOSTS_CLIENTS; c++) {
        pthread_join(th[c], NULL);
    }
    print_message("host B: %d lives, %d ended at a crash point; %d orders accepted of %d placed\n",
                  lives, crashed, hosts.accepted, hosts.placed);
    assert_true(lives >= 5);
    assert_true(hosts.accepted > 0);

    /* Every accepted order ends, whichever host took it and whichever finished it. */
    orders = wait_all_final();
    for (int k = 0; k < hosts.accepted; k++) {
        int found = 0;

        json_array_foreach (orders, i, o) {
            found += strcmp(str(o, "id"), hosts.ids[k]) == 0;
        }
        assert_int_equal(found, 1);
    }
    json_decref(orders);

    /*
     * The log, written only under a lease: an entry never carries an epoch older than one
     * before it in the same order (no stale executor's write was accepted), one epoch is
     * one executor's, and no step was recorded twice (two executors running it at once).
     */
    stale = pg_number("SELECT count(*) FROM (SELECT epoch, max(epoch) OVER (PARTITION BY order_id "
                      "ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before "
                      "FROM orders.saga_log) x WHERE epoch < before");
    shared = pg_number("SELECT count(*) FROM (SELECT order_id, epoch FROM orders.saga_log "
                       "WHERE epoch > 0 GROUP BY order_id, epoch "
                       "HAVING count(DISTINCT executor) > 1) x");
    twice = pg_number("SELECT count(*) FROM (SELECT order_id, step FROM orders.saga_log "
                      "WHERE outcome <> 'retrying' GROUP BY order_id, step "
                      "HAVING count(*) > 1) x");
    /* Sagas that host B placed or started and host A finished, or the other way round. */
    taken_over = pg_number("SELECT count(*) FROM (SELECT order_id FROM orders.saga_log "
                           "WHERE executor IS NOT NULL GROUP BY order_id HAVING "
                           "count(DISTINCT executor LIKE 'host-b/%') > 1) x");
    print_message("saga log: %lld stale writes, %lld shared epochs, %lld steps recorded twice, "
                  "%lld sagas run by both hosts\n",
                  stale, shared, twice, taken_over);
    assert_int_equal(stale, 0);
    assert_int_equal(shared, 0);
    assert_int_equal(twice, 0);
    /* The run did what it is for: sagas left by a dead host were taken over. */
    assert_true(taken_over > 0);
}

#define LOAD_CLIENTS      4
#define LOAD_MS           15000
/* The gateway's CLEAVE_REQUEST_TIMEOUT_MS in this case, and the slack a loaded machine adds. */
#define LOAD_DEADLINE_MS  2000
#define DEADLINE_SLACK_MS 1000
/* How long a client of the load follows its order before placing the next. */
#define ORDER_POLL_MS     3000

/* What the load's clients saw; written under load_mu, asserted by the main thread. */
static struct {
    pthread_mutex_t mu;
    int64_t until;
    int placed, refused, reads_ok, reads_failed, unexpected;
    int64_t slowest_ms;
    char slowest[160];
    char what[256];
} load = {.mu = PTHREAD_MUTEX_INITIALIZER};

/*
 * One request of the load, timed: its answer's JSON into *out when out is given and it
 * answered as hoped (new reference), else NULL there.
 */
static void load_request(const char *method, const char *path, const char *body, json_t **out)
{
    test_resp r;
    int64_t t0 = now_ms(), took;
    long status = 0;
    int post = strcmp(method, "POST") == 0;
    int ok;

    memset(&r, 0, sizeof(r));
    if (out != NULL) {
        *out = NULL;
    }
    if (test_http(topo.base_url, method, path, body, body ? strlen(body) : 0, NULL, &r) == 0) {
        status = r.status;
    }
    took = now_ms() - t0;
    /* Checkouts are accepted, reads answered, or refused 503/504 while inventory is away. */
    ok = post ? status == 202 : status == 200;
    if (ok && out != NULL) {
        *out = json_incref(r.json);
    }
    test_resp_free(&r);
    pthread_mutex_lock(&load.mu);
    if (took > load.slowest_ms) {
        load.slowest_ms = took;
        snprintf(load.slowest, sizeof(load.slowest), "%s %s: %ld", method, path, status);
    }
    if (ok) {
        *(post ? &load.placed : &load.reads_ok) += 1;
    } else if (status == 503 || status == 504) {
        *(post ? &load.refused : &load.reads_failed) += 1;
    } else {
        load.unexpected++;
        snprintf(load.what, sizeof(load.what), "%s %s answered %ld", method, path, status);
    }
    pthread_mutex_unlock(&load.mu);
}

/* Polls an order the load placed until it is final or ORDER_POLL_MS passed (then the
 * invariants wait for it). */
static void follow_order(const char *id)
{
    char path[128];
    int64_t until = now_ms() + ORDER_POLL_MS;

    snprintf(path, sizeof(path), "/api/v1/orders/%s", id);
    while (now_ms() < until) {
        json_t *o = NULL;
        int final;

        load_request("GET", path, NULL, &o);
        final = o != NULL && test_order_is_final(str(o, "status"));
        json_decref(o);
        if (final) {
            return;
        }
        test_poll_pause();
    }
}

static void *load_thread(void *arg)
{
    int n = *(const int *)arg;
    char body[256], path[96];

    for (int i = 0; now_ms() < load.until; i++) {
        int s = (n + i) % world.nskus;
        json_t *placed = NULL;

        snprintf(body, sizeof(body),
                 "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"%s\",\"quantity\":%d}]}",
                 world.account[(n + i) % world.naccounts], world.sku[s], 1 + i % 2);
        load_request("POST", "/api/v1/orders", body, &placed);
        if (placed != NULL && str(placed, "id") != NULL) {
            follow_order(str(placed, "id"));
        }
        json_decref(placed);
        snprintf(path, sizeof(path), "/api/v1/inventory/%s", world.sku[s]);
        load_request("GET", path, NULL, NULL);
    }
    test_http_thread_done();
    return NULL;
}

/* Reads a load counter under its lock. */
static int load_count(const int *counter)
{
    int v;

    pthread_mutex_lock(&load.mu);
    v = *counter;
    pthread_mutex_unlock(&load.mu);
    return v;
}

/* Polls until *counter reaches at least want, for at most WAIT_MS. */
static void wait_load(const int *counter, int want, const char *what)
{
    int64_t until = now_ms() + WAIT_MS;

    while (load_count(counter) < want) {
        if (now_ms() > until) {
            fail_msg("%s: still %d of %d after %d ms", what, load_count(counter), want, WAIT_MS);
        }
        test_poll_pause();
    }
}

static void test_kill_restart_under_load(void)
{
    pthread_t th[LOAD_CLIENTS];
    static int client[LOAD_CLIENTS];
    test_proc *inventory = NULL;
    int reads_before;

    open_account("Load A", 100000000);
    open_account("Load B", 100000000);
    open_account("Load Poor", 1500);
    set_stock("SKU-000001", 40);
    set_stock("SKU-000002", 25);
    set_stock("SKU-000003", 10);
    for (int i = 0; i < topo.nservices; i++) {
        if (strcmp(topo.services[i], "cleave-inventory") == 0) {
            inventory = &topo.procs[i];
        }
    }
    assert_non_null(inventory);
    load.until = now_ms() + LOAD_MS;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        client[i] = i;
        assert_int_equal(pthread_create(&th[i], NULL, load_thread, &client[i]), 0);
    }
    wait_load(&load.placed, 2 * LOAD_CLIENTS, "checkouts before the kill");
    assert_int_equal(test_proc_stop(inventory, SIGKILL), 128 + SIGKILL);
    wait_load(&load.reads_failed, LOAD_CLIENTS, "reads refused while inventory is down");
    assert_int_equal(topology_restart_module(&topo, "inventory"), 0);
    reads_before = load_count(&load.reads_ok);
    wait_load(&load.reads_ok, reads_before + LOAD_CLIENTS, "reads after the restart");
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(th[i], NULL);
    }
    printf("kill_restart: %d checkouts accepted, %d refused; %d reads answered, %d "
           "refused; slowest request %lld ms (%s), deadline %d ms\n",
           load.placed, load.refused, load.reads_ok, load.reads_failed, (long long)load.slowest_ms,
           load.slowest, LOAD_DEADLINE_MS);
    if (load.unexpected > 0) {
        fail_msg("%d unexpected answers, e.g. %s", load.unexpected, load.what);
    }
    if (load.slowest_ms > LOAD_DEADLINE_MS + DEADLINE_SLACK_MS) {
        fail_msg("%s took %lld ms, past its %d ms deadline", load.slowest,
                 (long long)load.slowest_ms, LOAD_DEADLINE_MS);
    }
    /* The invariants (test_case) wait for every order to end confirmed or rejected. */
}

static void test_case(void **state)
{
    (void)state;
    if (strcmp(case_name, "happy") == 0) {
        test_happy_path_confirms_and_ships();
    } else if (strcmp(case_name, "out_of_stock") == 0) {
        test_out_of_stock_is_rejected();
    } else if (strcmp(case_name, "insufficient_funds") == 0) {
        test_insufficient_funds_is_rejected();
    } else if (strcmp(case_name, "payments_unreachable") == 0) {
        test_payments_unreachable_compensates();
    } else if (strcmp(case_name, "crash") == 0) {
        test_crash_then_restart_ends_every_saga();
    } else if (strcmp(case_name, "concurrency") == 0) {
        test_parallel_checkouts_never_oversell();
    } else if (strcmp(case_name, "two_hosts") == 0) {
        test_two_hosts_one_executor_per_saga();
    } else if (strcmp(case_name, "kill_restart") == 0) {
        test_kill_restart_under_load();
    } else {
        fail_msg("unknown case %s", case_name);
    }
    assert_invariants();
}

static int setup(void **state)
{
    char crash_env[128];
    char *env[4] = {"CLEAVE_SHIPPING_CARRIER_MS=10", NULL, NULL, NULL};

    (void)state;
    if (strcmp(case_name, "crash") == 0) {
        snprintf(crash_env, sizeof(crash_env), "CLEAVE_TEST_CRASH_AT=%s", crash_at);
        env[1] = crash_env;
    } else if (strcmp(case_name, "payments_unreachable") == 0) {
        env[1] = "CLEAVE_ORDERS_STEP_TIMEOUT_MS=1000";
        env[2] = "CLEAVE_ORDERS_CALL_TIMEOUT_MS=500";
    } else if (strcmp(case_name, "kill_restart") == 0) {
        env[1] = "CLEAVE_REQUEST_TIMEOUT_MS=2000";
    } else if (strcmp(case_name, "two_hosts") == 0) {
        env[1] = "CLEAVE_ORDERS_LEASE_MS=2000";
        env[2] = "CLEAVE_ORDERS_LEASE_RENEW_MS=500";
    }
    return topology_start_with(&topo, topology_name, TOPOLOGY_SEED_SMALL, env);
}

static int teardown(void **state)
{
    (void)state;
    if (host_b.pid != 0) {
        (void)test_proc_stop(&host_b, SIGTERM);
    }
    return topology_stop(&topo);
}

int main(int argc, char **argv)
{
    char name[160];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case),
    };

    if (argc < 3) {
        fprintf(stderr, "usage: test_saga <topology> <case> [crash point]\n");
        return 2;
    }
    topology_name = argv[1];
    case_name = argv[2];
    crash_at = argc > 3 ? argv[3] : "";
    snprintf(name, sizeof(name), "saga %s %s %s", topology_name, case_name, crash_at);
    return cmocka_run_group_tests_name(name, tests, setup, teardown);
}
