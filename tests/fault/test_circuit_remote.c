/*
 * The remote binding under faults (ADR 0023): the inventory extracted into its own service
 * behind the fault proxy (tests/support/fault_proxy.h), called both by the gateway of the
 * "inventory-extracted" topology and by a remote binding made here, so that the test can
 * time single calls and read the client's circuit.
 *
 *   - blackhole: calls end with deadline_exceeded within their deadline; once enough of
 *     them failed the circuit opens and calls fail in under a millisecond, naming the
 *     target and the open circuit; the gateway's /readyz shows "circuit": "open" at once;
 *     restored, the circuit goes half-open after its cool-down and a probe closes it.
 *   - an outage that resets every connection: the attempts reaching the proxy stay under
 *     (1 + budget) x the calls offered; operations not declared idempotent are never retried.
 *   - added latency, a thin link and a half-open connection: calls still end by their
 *     deadline.
 *   - the test build's fault hook fails calls without a network call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "fault_proxy.h"
#include "inventory/inventory.h"
#include "topology.h"

#define BREAKER_MIN_CALLS 4
#define BREAKER_OPEN_MS   400
#define CALL_DEADLINE_MS  300
/* Milliseconds as microseconds, what now_us counts in. */
#define MS_US(ms)         ((int64_t)(ms)*1000)
/* Scheduling slack over a deadline, for a loaded machine and sanitizers. */
#define SLACK_MS          250
/*
 * "At once": a third of the deadline a hung link costs, so that a call that waited for it
 * cannot pass, while a loaded machine's scheduling cannot fail one that did not (a bound
 * of 1 ms failed a CI run under load). That it skips the network is asserted apart.
 */
#define AT_ONCE_MS        (CALL_DEADLINE_MS / 3)

static topology topo;
static fault_proxy *proxy;
static char proxy_url[64];
/* A service token for inventory, of the gateway's client: what the gateway itself sends. */
static char service_token[4096];

/* cl_rpc_options.credential: the token got at setup (it outlives the test). */
static cl_status credential(void *arg, const char *module, char *token, size_t size, cl_error *err)
{
    (void)arg;
    (void)module;
    if (cl_strlcpy(token, service_token, size) != 0) {
        return cl_error_set(err, CL_INTERNAL, NULL, "service token too long");
    }
    return CL_OK;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int setup(void **state)
{
    static char url_env[96];
    /*
     * Calls to inventory get a short deadline; the gateway's requests keep theirs, so that
     * getting the admin's token (a password hash) is not raced against it.
     */
    static char *extra[] = {url_env,
                            "CLEAVE_INVENTORY_BREAKER_MIN_CALLS=4",
                            "CLEAVE_INVENTORY_BREAKER_OPEN_MS=400",
                            "CLEAVE_INVENTORY_RETRY_MAX_ATTEMPTS=1",
                            "CLEAVE_INVENTORY_TIMEOUT_MS=300",
                            NULL};

    (void)state;
    proxy = fault_proxy_start(0);
    if (proxy == NULL) {
        return -1;
    }
    snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%d", fault_proxy_port(proxy));
    /* The gateway's own URL for the service, given later, wins over the topology's. */
    snprintf(url_env, sizeof(url_env), "CLEAVE_INVENTORY_URL=%s", proxy_url);
    if (topology_start_with(&topo, "inventory-extracted", TOPOLOGY_SEED_SMALL, extra) != 0) {
        return -1;
    }
    fault_proxy_set_upstream(proxy, topo.service_port);
    return topology_service_token(&topo, TOPOLOGY_GATEWAY_CLIENT, "cleave-inventory", service_token,
                                  sizeof(service_token));
}

static int teardown(void **state)
{
    int rc;

    (void)state;
    fault_proxy_stop(proxy);
    rc = topology_stop(&topo);
    return rc;
}

static cl_rpc_client *client_new(const cl_rpc_options *extra)
{
    cl_rpc_options opt = {0};
    cl_rpc_client *c = NULL;
    cl_error err = {0};

    if (extra != NULL) {
        opt = *extra;
    }
    opt.credential = credential;
    assert_int_equal(cl_rpc_client_new("inventory", proxy_url, &opt, &c, &err), CL_OK);
    return c;
}

/* get_stock of a seeded SKU through c with a deadline; the status, and the time in *us. */
static cl_status get_stock_op(cl_rpc_client *c, const cl_op *op, int64_t deadline_ms, int64_t *us,
                              cl_ctx *ctx)
{
    inventory_sku_ref ref = {.sku = "SKU-000001"};
    inventory_stock stock = {0};
    int64_t t0;
    cl_status st;

    cl_ctx_init(ctx, deadline_ms);
    t0 = now_us();
    st = cl_rpc_call(c, op, ctx, &ref, &stock);
    *us = now_us() - t0;
    if (st == CL_OK) {
        assert_string_equal(stock.sku, "SKU-000001");
    }
    cl_schema_free(&inventory_stock_type, &stock);
    return st;
}

static cl_status get_stock(cl_rpc_client *c, int64_t deadline_ms, int64_t *us, cl_ctx *ctx)
{
    return get_stock_op(c, &inventory_op_list[0], deadline_ms, us, ctx);
}

static cl_circuit_state circuit_of(cl_rpc_client *c)
{
    cl_rpc_circuit s;

    cl_rpc_client_circuit(c, &s);
    return s.breaker.state;
}

/* The gateway's /readyz check of the inventory: its "circuit", into buf; the HTTP status. */
static long gateway_circuit(char *buf, size_t size, int64_t *us)
{
    test_resp r = {0};
    json_t *checks, *check;
    size_t i;
    long status;
    int64_t t0 = now_us();

    buf[0] = '\0';
    assert_int_equal(test_http(topo.base_url, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    *us = now_us() - t0;
    status = r.status;
    checks = json_object_get(r.json, "checks");
    json_array_foreach (checks, i, check) {
        if (strcmp(json_string_value(json_object_get(check, "module")), "inventory") == 0) {
            const char *circuit = json_string_value(json_object_get(check, "circuit"));

            snprintf(buf, size, "%s", circuit != NULL ? circuit : "(none)");
        }
    }
    test_resp_free(&r);
    return status;
}

static void test_circuit_blackhole_opens_fails_fast_and_recovers(void **state)
{
    cl_rpc_options opt = {.breaker = {.min_calls = BREAKER_MIN_CALLS, .open_ms = BREAKER_OPEN_MS}};
    cl_rpc_client *c = client_new(&opt);
    char circuit[32];
    int64_t us, until;
    cl_ctx ctx;
    test_resp r = {0};
    int failed = 0;
    long status;

    (void)state;
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    /*
     * The gateway's first call to inventory also gets its service token from identity
     * (ADR 0030), a password hash that can take longer than a call's deadline on a loaded
     * machine: made here, while the link is good, so that the calls below count only the
     * link's failures.
     */
    assert_int_equal(
        test_http(topo.base_url, "GET", "/api/v1/inventory/SKU-000001", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    assert_int_equal(gateway_circuit(circuit, sizeof(circuit), &us), 200);
    assert_string_equal(circuit, "closed");

    /* A hung service: every call ends at its deadline, not later. */
    fault_proxy_set(proxy, FAULT_BLACKHOLE, 0);
    while (circuit_of(c) == CL_CIRCUIT_CLOSED && failed < 2 * BREAKER_MIN_CALLS) {
        assert_int_equal(get_stock(c, CALL_DEADLINE_MS, &us, &ctx), CL_DEADLINE_EXCEEDED);
        assert_true(us >= MS_US(CALL_DEADLINE_MS - 5));
        assert_true(us <= MS_US(CALL_DEADLINE_MS + SLACK_MS));
        failed++;
    }
    /*
     * It opens on the failure that makes the window hold BREAKER_MIN_CALLS calls of which
     * at least half failed: with the one success above, the third (3 of 4).
     */
    assert_int_equal(failed, BREAKER_MIN_CALLS - 1);
    /* Open: calls fail at once, without the network. */
    assert_int_equal(circuit_of(c), CL_CIRCUIT_OPEN);
    for (int i = 0; i < 20; i++) {
        fault_proxy_stats before, after;

        fault_proxy_stats_get(proxy, &before);
        assert_int_equal(get_stock(c, CALL_DEADLINE_MS, &us, &ctx), CL_UNAVAILABLE);
        fault_proxy_stats_get(proxy, &after);
        assert_true(us < MS_US(AT_ONCE_MS));
        assert_int_equal(after.requests, before.requests);
    }
    assert_non_null(strstr(ctx.err.message, "inventory service at"));
    assert_non_null(strstr(ctx.err.message, proxy_url));
    assert_non_null(strstr(ctx.err.message, "circuit open"));

    /* The gateway's circuit opens the same way on its own calls ... */
    for (int i = 0; i < BREAKER_MIN_CALLS; i++) {
        assert_int_equal(
            test_http(topo.base_url, "GET", "/api/v1/inventory/SKU-000001", NULL, 0, NULL, &r), 0);
        assert_true(r.status == 503 || r.status == 504);
        test_resp_free(&r);
    }
    /* ... and /readyz says so at once, without waiting on the hung service. */
    assert_int_equal(gateway_circuit(circuit, sizeof(circuit), &us), 503);
    assert_string_equal(circuit, "open");
    assert_true(us < MS_US(200));

    /* Restored: after the cool-down the circuit is half-open, and one good probe closes it. */
    fault_proxy_set(proxy, FAULT_PASS, 0);
    until = now_us() + MS_US(5000);
    while (circuit_of(c) == CL_CIRCUIT_OPEN && now_us() < until) {
        struct timespec ts = {0, 10 * 1000000L};

        nanosleep(&ts, NULL);
    }
    assert_int_equal(circuit_of(c), CL_CIRCUIT_HALF_OPEN);
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    assert_int_equal(circuit_of(c), CL_CIRCUIT_CLOSED);
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);

    /* The gateway: its next call probes and closes its circuit; /readyz follows. */
    until = now_us() + MS_US(5000);
    do {
        assert_int_equal(
            test_http(topo.base_url, "GET", "/api/v1/inventory/SKU-000001", NULL, 0, NULL, &r), 0);
        status = r.status;
        test_resp_free(&r);
    } while (status != 200 && now_us() < until);
    assert_int_equal(status, 200);
    assert_int_equal(gateway_circuit(circuit, sizeof(circuit), &us), 200);
    assert_string_equal(circuit, "closed");
    cl_rpc_client_free(c);
}

static void test_retry_outage_stays_within_the_budget(void **state)
{
    /* A breaker that never opens, so that every call is offered to the target. */
    cl_rpc_options opt = {.breaker = {.min_calls = 100000},
                          .retry_max_attempts = 3,
                          .retry_backoff_ms = 1,
                          .retry_backoff_max_ms = 2,
                          .retry_budget_pct = 10};
    cl_rpc_client *c = client_new(&opt);
    fault_proxy_stats before, after;
    cl_rpc_circuit s;
    const int calls = 200;
    cl_ctx ctx;
    int64_t us;

    (void)state;
    fault_proxy_set(proxy, FAULT_RESET, 0);
    fault_proxy_stats_get(proxy, &before);
    for (int i = 0; i < calls; i++) {
        assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_UNAVAILABLE);
    }
    fault_proxy_stats_get(proxy, &after);
    cl_rpc_client_circuit(c, &s);
    fprintf(stderr, "outage: %d calls, %ld connections at the proxy, %lld retries, %lld refused\n",
            calls, after.accepted - before.accepted, (long long)s.retries,
            (long long)s.retries_refused);
    /* Retries happened, but the budget cut them to its share of the calls. */
    assert_int_equal(s.calls, calls);
    assert_true(s.retries > 0);
    assert_true(s.retries_refused > 0);
    assert_true(s.attempts * 100 <= (int64_t)calls * 110);
    /* What the target saw: every attempt is a connection the proxy accepted and reset. */
    assert_true(after.accepted - before.accepted <= (long)calls * 110 / 100);
    assert_true(after.accepted - before.accepted >= calls);
    fault_proxy_set(proxy, FAULT_PASS, 0);
    cl_rpc_client_free(c);
}

static void test_retry_only_idempotent_operations(void **state)
{
    cl_rpc_options opt = {.breaker = {.min_calls = 100000},
                          .retry_max_attempts = 3,
                          .retry_backoff_ms = 1,
                          .retry_backoff_max_ms = 2};
    cl_rpc_client *c = client_new(&opt);
    /* get_stock as if it were declared a plain write. */
    cl_op write = inventory_op_list[0];
    cl_rpc_circuit s;
    cl_ctx ctx;
    int64_t us;

    (void)state;
    write.flags = CL_OP_WRITE;
    /* Healthy calls fill the budget, so only the flag can stop a retry. */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    }
    fault_proxy_set(proxy, FAULT_RESET, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get_stock_op(c, &write, 2000, &us, &ctx), CL_UNAVAILABLE);
    }
    cl_rpc_client_circuit(c, &s);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.attempts, s.calls);
    /* The same call, declared a read, is retried. */
    assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_UNAVAILABLE);
    cl_rpc_client_circuit(c, &s);
    assert_int_equal(s.retries, 2);
    fault_proxy_set(proxy, FAULT_PASS, 0);
    cl_rpc_client_free(c);
}

static void test_circuit_deadlines_hold_under_slow_and_half_open_links(void **state)
{
    cl_rpc_options opt = {.breaker = {.min_calls = 100000}};
    cl_rpc_client *c = client_new(&opt);
    cl_ctx ctx;
    int64_t us;

    (void)state;
    /* Slow but working: the answer comes, late by the added latency. */
    fault_proxy_set(proxy, FAULT_LATENCY, 150);
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    assert_true(us >= MS_US(150));
    /* Slower than the deadline: the call ends at its deadline. */
    fault_proxy_set(proxy, FAULT_LATENCY, 2000);
    assert_int_equal(get_stock(c, CALL_DEADLINE_MS, &us, &ctx), CL_DEADLINE_EXCEEDED);
    assert_true(us <= MS_US(CALL_DEADLINE_MS + SLACK_MS));
    /* A thin link still delivers. */
    fault_proxy_set(proxy, FAULT_BANDWIDTH, 20000);
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    /* A peer that vanished without a FIN: nothing comes back, the deadline ends it. */
    fault_proxy_set(proxy, FAULT_HALF_OPEN, 0);
    assert_int_equal(get_stock(c, CALL_DEADLINE_MS, &us, &ctx), CL_DEADLINE_EXCEEDED);
    assert_true(us <= MS_US(CALL_DEADLINE_MS + SLACK_MS));
    fault_proxy_set(proxy, FAULT_PASS, 0);
    assert_int_equal(get_stock(c, 5000, &us, &ctx), CL_OK);
    cl_rpc_client_free(c);
}

static void test_circuit_fault_hook_fails_calls_without_the_network(void **state)
{
    cl_rpc_options opt = {.fault = "catalog=delay:5,inventory=unavailable",
                          .credential = credential};
    cl_rpc_client *c = NULL;
    cl_rpc_client *bad = NULL;
    cl_error err = {0};
    char nowhere[64];
    int hold;
    int port = test_hold_port(&hold);
    cl_ctx ctx;
    int64_t us;

    (void)state;
    /*
     * Without the network: the client's address is a port this test holds and nobody
     * listens on, so a call that went out would fail to connect, with another message.
     * (Counting the proxy's requests could not tell: a request of the test before, read
     * late by the proxy on a loaded machine, was once counted in between.)
     */
    assert_true(port > 0);
    snprintf(nowhere, sizeof(nowhere), "http://127.0.0.1:%d", port);
    assert_int_equal(cl_rpc_client_new("inventory", nowhere, &opt, &c, &err), CL_OK);
    assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_UNAVAILABLE);
    assert_non_null(strstr(ctx.err.message, "injected fault"));
    cl_rpc_client_free(c);
    test_release_port(&hold);

    opt.fault = "inventory=fail:2";
    c = client_new(&opt);
    /* An empty budget: the two injected failures end two calls; the third goes through. */
    assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_UNAVAILABLE);
    assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_UNAVAILABLE);
    assert_int_equal(get_stock(c, 2000, &us, &ctx), CL_OK);
    cl_rpc_client_free(c);

    opt.fault = "inventory=sometimes";
    opt.credential = credential;
    assert_int_equal(cl_rpc_client_new("inventory", proxy_url, &opt, &bad, &err), CL_INVALID);
    assert_string_equal(err.field, "fault");
    assert_null(bad);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_circuit_blackhole_opens_fails_fast_and_recovers),
        cmocka_unit_test(test_retry_outage_stays_within_the_budget),
        cmocka_unit_test(test_retry_only_idempotent_operations),
        cmocka_unit_test(test_circuit_deadlines_hold_under_slow_and_half_open_links),
        cmocka_unit_test(test_circuit_fault_hook_fails_calls_without_the_network),
    };

    (void)argc;
    (void)argv;
    return cmocka_run_group_tests(tests, setup, teardown);
}
