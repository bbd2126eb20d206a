/*
 * /metrics as Prometheus scrapes it, from the real binaries: the monolith, or the gateway
 * and cleave-catalog with the catalog extracted (the topology is the first argument).
 * Every scrape passes `promtool check metrics`; requests sent are counted exactly under
 * their route pattern (never the raw path); the catalog's operations show up with the
 * binding they went through, "remote" on a gateway without the catalog and "local" in
 * the process that runs it. A checkout the saga rejects (an unknown account) shows up in
 * the saga's outcomes and steps. A shipment's carrier booking, a long-running operation,
 * is counted finished and leaves none open.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/util.h"
#include "client.h"
#include "shop.h"
#include "topology.h"

#define REQUESTS 7

static topology topo;
static const char *topology_name = "monolith";

static int setup(void **state)
{
    (void)state;
    return topology_start(&topo, topology_name, TOPOLOGY_SEED_SMALL);
}

static int teardown(void **state)
{
    (void)state;
    return topology_stop(&topo);
}

/* base's /metrics, checked by promtool; the caller frees it. */
static char *scrape(const char *base)
{
    char path[400];
    char cmd[1024];
    char out[4096];
    char *sh_argv[] = {"sh", "-c", cmd, NULL};
    test_resp r;
    FILE *f;
    char *text;

    assert_int_equal(test_http(base, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    snprintf(path, sizeof(path), "%s/scrape.txt", topo.dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(r.body, 1, r.body_len, f), r.body_len);
    fclose(f);
    /* promtool lints too: names, units, _total on counters, HELP on every family. */
    snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s'", CLEAVE_PROMTOOL, path);
    if (test_run("/bin/sh", sh_argv, NULL, out, sizeof(out)) != 0) {
        fail_msg("promtool check metrics failed on %s/metrics:\n%s", base, out);
    }
    text = r.body;
    r.body = NULL;
    test_resp_free(&r);
    return text;
}

#define PRODUCTS_REQUESTS                                                                          \
    "cleave_http_requests_total{route=\"/api/v1/products\",method=\"GET\",status_class=\"2xx\"}"
#define PRODUCTS_DURATION                                                                          \
    "cleave_http_request_duration_seconds_count{route=\"/api/v1/products\",method=\"GET\"}"
#define CATALOG_CALLS "cleave_module_operation_calls_total{module=\"catalog\","
#define POOL_OPENED   "cleave_db_pool_opened_total{pool=\"catalog\"}"
#define POOL_CLOSED   "cleave_db_pool_closed_total{pool=\"catalog\""

static void test_metrics_count_requests_by_route_and_calls_by_binding(void **state)
{
    const char *service = topo.service_url[0] != '\0' ? topo.service_url : NULL;
    char *before;
    char *after;
    char *svc_before = NULL;
    char *svc_after;
    test_resp r;

    (void)state;
    before = scrape(topo.base_url);
    if (service != NULL) {
        svc_before = scrape(service);
    }
    for (int i = 0; i < REQUESTS; i++) {
        assert_int_equal(test_http(topo.base_url, "GET", "/api/v1/products", NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        test_resp_free(&r);
    }
    /* An id in the path: counted under the route's pattern, the id itself nowhere. */
    assert_int_equal(test_http(topo.base_url, "GET", "/api/v1/products/zz-no-such-product-4711",
                               NULL, 0, NULL, &r),
                     0);
    test_resp_free(&r);
    after = scrape(topo.base_url);

    assert_true(test_metrics_sum(after, PRODUCTS_REQUESTS, NULL) ==
                test_metrics_sum(before, PRODUCTS_REQUESTS, NULL) + REQUESTS);
    assert_true(test_metrics_sum(after, PRODUCTS_DURATION, NULL) ==
                test_metrics_sum(before, PRODUCTS_DURATION, NULL) + REQUESTS);
    assert_true(test_metrics_sum(
                    after, "cleave_http_requests_total{route=\"/api/v1/products/{id}\"", NULL) ==
                test_metrics_sum(
                    before, "cleave_http_requests_total{route=\"/api/v1/products/{id}\"", NULL) +
                    1);
    assert_null(strstr(after, "zz-no-such-product-4711"));
    assert_true(test_metrics_sum(after, "cleave_build_info{", "version=\"", NULL) == 1);
    assert_true(test_metrics_sum(after, "process_resident_memory_bytes", NULL) > 0);
    assert_true(test_metrics_sum(after, "process_open_fds", NULL) > 0);

    if (service == NULL) {
        /* The monolith runs the catalog: every call is local, none remote. */
        assert_true(
            test_metrics_sum(after, CATALOG_CALLS, "binding=\"local\"", "outcome=\"ok\"", NULL) >=
            test_metrics_sum(before, CATALOG_CALLS, "binding=\"local\"", "outcome=\"ok\"", NULL) +
                REQUESTS);
        assert_true(test_metrics_sum(after, CATALOG_CALLS, "binding=\"remote\"", NULL) == 0);
        assert_true(
            test_metrics_sum(after, "cleave_db_pool_max_connections{pool=\"catalog\"}", NULL) > 0);
        /* Every connection the pool opened is open still or was closed, for a reason. */
        assert_true(test_metrics_sum(after, POOL_OPENED, NULL) >= 1);
        assert_true(test_metrics_sum(after, POOL_OPENED, NULL) -
                        test_metrics_sum(after, POOL_CLOSED, NULL) ==
                    test_metrics_sum(after, "cleave_db_pool_connections{pool=\"catalog\"", NULL));
        assert_non_null(strstr(after, POOL_CLOSED ",reason=\"idle\"} "));
        assert_non_null(strstr(after, POOL_CLOSED ",reason=\"broken\"} "));
        goto out;
    }
    /* The gateway reaches the catalog over RPC, through a closed circuit... */
    assert_true(
        test_metrics_sum(after, CATALOG_CALLS, "binding=\"remote\"", "outcome=\"ok\"", NULL) >=
        test_metrics_sum(before, CATALOG_CALLS, "binding=\"remote\"", "outcome=\"ok\"", NULL) +
            REQUESTS);
    assert_true(test_metrics_sum(after, CATALOG_CALLS, "binding=\"local\"", NULL) == 0);
    assert_true(
        test_metrics_sum(after, "cleave_rpc_client_calls_total{target=\"catalog\",outcome=\"ok\"}",
                         NULL) >=
        test_metrics_sum(before, "cleave_rpc_client_calls_total{target=\"catalog\",outcome=\"ok\"}",
                         NULL) +
            REQUESTS);
    assert_true(test_metrics_sum(after,
                                 "cleave_rpc_circuit_state{target=\"catalog\",state=\"closed\"}",
                                 NULL) == 1);
    assert_true(test_metrics_sum(after, "cleave_db_pool_max_connections{pool=\"catalog\"}", NULL) ==
                0);
    /* ...and the service runs those calls locally, and serves its own /metrics. */
    svc_after = scrape(service);
    assert_true(
        test_metrics_sum(svc_after, CATALOG_CALLS, "binding=\"local\"", "outcome=\"ok\"", NULL) >=
        test_metrics_sum(svc_before, CATALOG_CALLS, "binding=\"local\"", "outcome=\"ok\"", NULL) +
            REQUESTS);
    assert_true(test_metrics_sum(svc_after, "cleave_build_info{service=\"cleave-catalog\"", NULL) ==
                1);
    assert_true(
        test_metrics_sum(svc_after, "cleave_db_pool_max_connections{pool=\"catalog\"}", NULL) > 0);
    free(svc_after);
out:
    free(svc_before);
    free(before);
    free(after);
}

#define SAGAS_REJECTED "cleave_sagas_total{saga=\"checkout\",outcome=\"rejected\"}"
#define SAGA_STEP(step, outcome)                                                                   \
    "cleave_saga_steps_total{saga=\"checkout\",step=\"" step "\",outcome=\"" outcome "\"}"

static void test_metrics_count_saga_outcomes_and_steps(void **state)
{
    json_t *products = test_call(topo.base_url, "GET", "/api/v1/products?limit=1", NULL, 200);
    const char *sku = json_string_value(
        json_object_get(json_array_get(json_object_get(products, "items"), 0), "sku"));
    char body[256];
    json_t *order;
    char *before;
    char *after = NULL;
    int64_t until = cl_now_ms() + 20000;

    (void)state;
    assert_non_null(sku);
    before = scrape(topo.base_url);
    /* No such account: the payment is refused, and the saga compensates and rejects. */
    snprintf(body, sizeof(body),
             "{\"account_id\":\"acc-metrics-nobody\",\"lines\":[{\"sku\":\"%s\",\"quantity\":1}]}",
             sku);
    order = test_call(topo.base_url, "POST", "/api/v1/orders", body, 202);
    assert_non_null(order);
    json_decref(order);
    json_decref(products);
    for (;;) {
        after = scrape(topo.base_url);
        /* The saga stops running just after its end is counted: wait for both. */
        if ((test_metrics_sum(after, SAGAS_REJECTED, NULL) >
                 test_metrics_sum(before, SAGAS_REJECTED, NULL) &&
             test_metrics_sum(after, "cleave_sagas_running{saga=\"checkout\"}", NULL) == 0) ||
            cl_now_ms() > until) {
            break;
        }
        free(after);
        test_poll_pause();
    }
    assert_true(test_metrics_sum(after, SAGAS_REJECTED, NULL) ==
                test_metrics_sum(before, SAGAS_REJECTED, NULL) + 1);
    assert_true(test_metrics_sum(after, SAGA_STEP("reserve", "ok"), NULL) ==
                test_metrics_sum(before, SAGA_STEP("reserve", "ok"), NULL) + 1);
    assert_true(test_metrics_sum(after, SAGA_STEP("authorize", "failed"), NULL) ==
                test_metrics_sum(before, SAGA_STEP("authorize", "failed"), NULL) + 1);
    assert_true(test_metrics_sum(after, SAGA_STEP("reject", "ok"), NULL) ==
                test_metrics_sum(before, SAGA_STEP("reject", "ok"), NULL) + 1);
    assert_true(
        test_metrics_sum(
            after, "cleave_saga_step_duration_seconds_count{saga=\"checkout\",step=\"reserve\"}",
            NULL) ==
        test_metrics_sum(
            before, "cleave_saga_step_duration_seconds_count{saga=\"checkout\",step=\"reserve\"}",
            NULL) +
            1);
    assert_true(test_metrics_sum(after, "cleave_sagas_running{saga=\"checkout\"}", NULL) == 0);
    free(before);
    free(after);
}

#define OPS_FINISHED  "cleave_operations_finished_total"
#define SHIPPING_OPEN "cleave_operations_open{module=\"shipping\"}"

/* A shipment's carrier booking, a long-running operation, is counted finished, none left open. */
static void test_metrics_count_long_running_operations(void **state)
{
    const char *body = "{\"order_ref\":\"order:metrics-operation\"}";
    json_t *accepted;
    const char *op_id;
    char path[200];
    char *before;
    char *after = NULL;
    int64_t until = cl_now_ms() + 20000;

    (void)state;
    /* From a settled count: no operation of an earlier event still open. */
    for (;;) {
        before = scrape(topo.base_url);
        if (test_metrics_sum(before, SHIPPING_OPEN, NULL) == 0 || cl_now_ms() > until) {
            break;
        }
        free(before);
        test_poll_pause();
    }
    assert_true(test_metrics_sum(before, SHIPPING_OPEN, NULL) == 0);
    accepted = test_call(topo.base_url, "POST", "/api/v1/shipments", body, 202);
    assert_non_null(accepted);
    op_id = json_string_value(json_object_get(accepted, "operation_id"));
    assert_non_null(op_id);
    snprintf(path, sizeof(path), "/api/v1/operations/%s", op_id);
    json_decref(accepted);
    for (;;) {
        json_t *op = test_call(topo.base_url, "GET", path, NULL, 200);
        const char *status = json_string_value(json_object_get(op, "status"));
        int done = status != NULL && strcmp(status, "succeeded") == 0;

        json_decref(op);
        if (done || cl_now_ms() > until) {
            break;
        }
        test_poll_pause();
    }
    after = scrape(topo.base_url);
    assert_true(test_metrics_sum(after, OPS_FINISHED, NULL) ==
                test_metrics_sum(before, OPS_FINISHED, NULL) + 1);
    assert_true(test_metrics_sum(after, SHIPPING_OPEN, NULL) == 0);
    free(before);
    free(after);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_count_requests_by_route_and_calls_by_binding),
        cmocka_unit_test(test_metrics_count_saga_outcomes_and_steps),
        cmocka_unit_test(test_metrics_count_long_running_operations),
    };

    if (argc > 1) {
        topology_name = argv[1];
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
