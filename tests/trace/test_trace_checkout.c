/*
 * One checkout, one trace (issue 14): with inventory and payments extracted, a checkout
 * that comes in with a traceparent yields spans at a test collector (tests/trace/
 * collector.cjs, which decodes the OTLP export with OpenTelemetry's own definitions) that
 * form one tree under the caller's span across the three processes and across the bus,
 * and every log line of that checkout, in every process, carries the trace id.
 *
 * Usage: test_trace_checkout <node> <collector.cjs> <node_modules dir>
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "proc.h"
#include "shop.h"
#include "topology.h"

#define TRACE         "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT        "00f067aa0ba902b7"
#define REQUEST       "trace-checkout-1"
#define WAIT_MS       30000
/* The gateway names itself by its product, whichever modules it was built without. */
#define GATEWAY       "cleave"
#define SPAN_SERVER   2
#define SPAN_CLIENT   3
#define SPAN_PRODUCER 4
#define SPAN_CONSUMER 5

static const char *node_bin;
static const char *collector_js;
static const char *node_modules;
static topology topo;
static test_proc collector;
static char work_dir[] = "/tmp/cleave-trace-XXXXXX";
static char spans_path[600];
static char collector_log[600];

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *call(const char *method, const char *path, const char *body, long want)
{
    test_resp r;
    json_t *j;

    assert_int_equal(
        test_http(topo.base_url, method, path, body, body != NULL ? strlen(body) : 0, NULL, &r), 0);
    if (r.status != want) {
        fail_msg("%s %s: %ld, want %ld: %.300s", method, path, r.status, want, r.body);
    }
    j = json_incref(r.json);
    test_resp_free(&r);
    return j;
}

/* Every JSON line of path (an array, new reference); lines that are not JSON are skipped. */
static json_t *read_lines(const char *path)
{
    json_t *all = json_array();
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;

    if (f == NULL) {
        return all;
    }
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);

        if (json_is_object(j)) {
            json_array_append_new(all, j);
        } else {
            json_decref(j);
        }
    }
    free(line);
    fclose(f);
    return all;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static int jint(const json_t *o, const char *key)
{
    return (int)json_integer_value(json_object_get(o, key));
}

/* The span of spans (the checkout's) with id, or NULL. */
static const json_t *span_by_id(const json_t *spans, const char *id)
{
    size_t i;
    const json_t *s;

    json_array_foreach (spans, i, s) {
        if (strcmp(jstr(s, "span_id"), id) == 0) {
            return s;
        }
    }
    return NULL;
}

/* The collected spans of the checkout's trace (new reference); fails on a decode error. */
static json_t *trace_spans(void)
{
    json_t *all = read_lines(spans_path);
    json_t *mine = json_array();
    size_t i;
    json_t *s;

    json_array_foreach (all, i, s) {
        if (json_object_get(s, "decode_error") != NULL) {
            fail_msg("the collector could not decode an export: %s", jstr(s, "decode_error"));
        }
        if (strcmp(jstr(s, "trace_id"), TRACE) == 0) {
            json_array_append(mine, s);
        }
    }
    json_decref(all);
    return mine;
}

/* True when spans hold a span of service with kind whose name starts with prefix. */
static bool has_span(const json_t *spans, const char *service, int kind, const char *prefix)
{
    size_t i;
    const json_t *s;

    json_array_foreach (spans, i, s) {
        if (strcmp(jstr(s, "service"), service) == 0 && jint(s, "kind") == kind &&
            strncmp(jstr(s, "name"), prefix, strlen(prefix)) == 0) {
            return true;
        }
    }
    return false;
}

/* A consumer span whose parent is a producer span: the bus carried the trace. */
static bool bus_linked(const json_t *spans)
{
    size_t i;
    const json_t *s;

    json_array_foreach (spans, i, s) {
        const json_t *p = span_by_id(spans, jstr(s, "parent_id"));

        if (jint(s, "kind") == SPAN_CONSUMER && p != NULL && jint(p, "kind") == SPAN_PRODUCER) {
            return true;
        }
    }
    return false;
}

/*
 * True when every span's parent has arrived too (or is the caller's). Each process posts
 * its spans in batches of its own, up to OTLP_LINGER_MS (500 ms) apart: a service's span
 * may be at the collector before the gateway's client span of the same call.
 */
static bool closed(const json_t *spans)
{
    size_t i;
    const json_t *s;

    json_array_foreach (spans, i, s) {
        const char *parent = jstr(s, "parent_id");

        if (strcmp(parent, PARENT) != 0 && span_by_id(spans, parent) == NULL) {
            return false;
        }
    }
    return true;
}

static bool complete(const json_t *spans)
{
    return has_span(spans, GATEWAY, SPAN_SERVER, "POST /api/v1/orders") &&
           has_span(spans, "cleave-inventory", SPAN_SERVER, "POST /rpc/") &&
           has_span(spans, "cleave-payments", SPAN_SERVER, "POST /rpc/") &&
           has_span(spans, GATEWAY, SPAN_CLIENT, "payments.") && bus_linked(spans) && closed(spans);
}

static void test_checkout_is_one_trace(void **state)
{
    static const char *const headers[] = {
        "traceparent: 00-" TRACE "-" PARENT "-01",
        "X-Request-Id: " REQUEST,
        NULL,
    };
    char body[256], order_id[64], path[128];
    json_t *j, *spans = NULL;
    test_resp r;
    int64_t until;
    size_t i;
    json_t *s;
    int roots = 0;

    (void)state;
    j = call("PUT", "/api/v1/inventory/SKU-000003", "{\"on_hand\":5}", 200);
    json_decref(j);
    j = call("POST", "/api/v1/accounts", "{\"owner\":\"tracer\",\"currency\":\"EUR\"}", 201);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", jstr(j, "id"));
    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"SKU-000003\",\"quantity\":1}]}",
             jstr(j, "id"));
    json_decref(j);
    json_decref(call("POST", path, "{\"amount\":{\"amount\":100000,\"currency\":\"EUR\"}}", 200));

    assert_int_equal(
        test_http(topo.base_url, "POST", "/api/v1/orders", body, strlen(body), headers, &r), 0);
    if (r.status != 202) {
        fail_msg("checkout: %ld %.300s", r.status, r.body);
    }
    snprintf(order_id, sizeof(order_id), "%s", jstr(r.json, "id"));
    test_resp_free(&r);

    /* The saga confirms the order and the spans reach the collector: poll both. */
    snprintf(path, sizeof(path), "/api/v1/orders/%s", order_id);
    until = now_ms() + WAIT_MS;
    for (;;) {
        j = call("GET", path, NULL, 200);
        bool confirmed = strcmp(jstr(j, "status"), "confirmed") == 0;
        json_decref(j);
        json_decref(spans);
        spans = trace_spans();
        if (confirmed && complete(spans)) {
            break;
        }
        if (now_ms() > until) {
            json_array_foreach (spans, i, s) {
                fprintf(stderr, "  %s %s kind %d parent %s: %s\n", jstr(s, "service"),
                        jstr(s, "span_id"), jint(s, "kind"), jstr(s, "parent_id"), jstr(s, "name"));
            }
            fail_msg("after %d ms: order %s, %zu spans of the trace, complete: %d", WAIT_MS,
                     order_id, json_array_size(spans), complete(spans));
        }
        test_poll_pause();
    }

    /* One tree: each span's parent is a span of the trace, but the caller's (PARENT). */
    json_array_foreach (spans, i, s) {
        const char *parent = jstr(s, "parent_id");

        assert_int_equal(strlen(jstr(s, "span_id")), 16);
        if (strcmp(parent, PARENT) == 0) {
            roots++;
            assert_string_equal(jstr(s, "service"), GATEWAY);
            assert_int_equal(jint(s, "kind"), SPAN_SERVER);
            assert_string_equal(jstr(s, "name"), "POST /api/v1/orders");
            continue;
        }
        if (span_by_id(spans, parent) == NULL) {
            fail_msg("span %s (%s, %s) has parent %s, which is not in the trace",
                     jstr(s, "span_id"), jstr(s, "name"), jstr(s, "service"), parent);
        }
        /* A service's server span continues the gateway's client span. */
        if (jint(s, "kind") == SPAN_SERVER) {
            const json_t *p = span_by_id(spans, parent);
            assert_int_equal(jint(p, "kind"), SPAN_CLIENT);
            assert_string_equal(jstr(p, "service"), GATEWAY);
            assert_string_not_equal(jstr(s, "service"), GATEWAY);
        }
    }
    assert_int_equal(roots, 1);
    json_decref(spans);

    /* Every log line of the checkout, in every process, names the trace. */
    for (int p = 0; p < topo.nprocs; p++) {
        json_t *lines = read_lines(topo.procs[p].log_path);
        int mine = 0;

        json_array_foreach (lines, i, s) {
            const char *rid = jstr(s, "http.request.id");

            if (strcmp(rid, REQUEST) == 0 || strcmp(rid, order_id) == 0) {
                if (strcmp(jstr(s, "trace.id"), TRACE) != 0) {
                    fail_msg("%s: a line of the checkout without its trace: %s",
                             topo.procs[p].log_path, json_dumps(s, JSON_COMPACT));
                }
                assert_int_equal(strlen(jstr(s, "span.id")), 16);
                mine++;
            }
        }
        if (mine == 0) {
            fail_msg("%s logged nothing of the checkout", topo.procs[p].log_path);
        }
        json_decref(lines);
    }
}

static int setup(void **state)
{
    char *log = collector_log;
    char url[64];
    char *argv[] = {(char *)node_bin, (char *)collector_js, (char *)node_modules, spans_path, NULL};
    int port;

    (void)state;
    /* A throwaway directory for the collector's output and log. */
    if (mkdtemp(work_dir) == NULL) {
        return -1;
    }
    snprintf(spans_path, sizeof(spans_path), "%s/spans.jsonl", work_dir);
    snprintf(log, sizeof(collector_log), "%s/collector.log", work_dir);
    if (test_proc_start(&collector, node_bin, argv, NULL, log) != 0) {
        return -1;
    }
    port = test_proc_wait_port(&collector, 20000);
    if (port <= 0) {
        fprintf(stderr, "the collector did not start; see %s\n", log);
        return -1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    /* Every process of the topology inherits these. */
    setenv("CLEAVE_OTLP_ENDPOINT", url, 1);
    setenv("CLEAVE_TRACE_SAMPLE", "1", 1);
    return topology_start_with(&topo, "inventory+payments-extracted", TOPOLOGY_SEED_SMALL, NULL);
}

static int teardown(void **state)
{
    int rc;

    (void)state;
    rc = topology_stop(&topo);
    test_proc_stop(&collector, 15);
    remove(spans_path);
    remove(collector_log);
    rmdir(work_dir);
    return rc;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkout_is_one_trace),
    };

    if (argc < 4) {
        fprintf(stderr, "usage: test_trace_checkout <node> <collector.cjs> <node_modules>\n");
        return 2;
    }
    node_bin = argv[1];
    collector_js = argv[2];
    node_modules = argv[3];
    return cmocka_run_group_tests_name("trace checkout", tests, setup, teardown);
}
