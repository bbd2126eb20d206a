/*
 * `cleave advise` against what happens (ADR 0039): the same deterministic load (checkouts
 * to their final state, product and stock reads) runs on the monolith and on the
 * inventory-extracted topology. advise's prediction for extracting inventory, read from
 * the monolith, must be exactly the remote calls the extracted topology then makes across
 * inventory's boundary, counted by the callers (cleave_module_calls_total) and by the
 * remote binding itself (cleave_module_operation_calls_total). Call counts are
 * deterministic; latency is not and is left to bench/bench_advise.c.
 *
 * Also: bad input (an unknown module, an unreachable URL, an answer that is not metrics)
 * is refused with a message and a non-zero exit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "client.h"
#include "shop.h"
#include "topology.h"

#define LOAD 6

/* `cleave advise ARGS...` (NULL-terminated): its exit status, its output into out[size]. */
static int advise(char *out, size_t size, ...)
{
    char bin[512];
    char *argv[16] = {"cleave", "advise"};
    int n = 2;
    va_list ap;

    va_start(ap, size);
    for (const char *a = va_arg(ap, const char *); a != NULL && n < 15;
         a = va_arg(ap, const char *)) {
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
    return test_run(topology_bin("cleave", bin, sizeof(bin)), argv, NULL, out, size);
}

/* Starts name, prepares and runs the load, waits for its sagas; 0 or -1. */
static int loaded(topology *t, const char *name)
{
    if (topology_start(t, name, TOPOLOGY_SEED_SMALL) != 0 || test_load_prepare(t->base_url) != 0 ||
        test_load_run(t->base_url, LOAD, NULL) != 0 || test_load_settle(t->base_url, 20000) != 0) {
        return -1;
    }
    return 0;
}

/*
 * A server that answers one request with 200 and a body that is not the metrics text
 * format, as a misconfigured --url (a proxy's page, another service) would.
 */
typedef struct not_metrics {
    int fd;
    pthread_t thread;
} not_metrics;

static void *serve_not_metrics(void *arg)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                 "Content-Length: 28\r\nConnection: close\r\n\r\n"
                                 "<html>Welcome {here}</html>\n";
    not_metrics *s = arg;
    char buf[4096];
    int c = accept(s->fd, NULL, NULL);

    if (c >= 0) {
        (void)!read(c, buf, sizeof(buf));
        (void)!write(c, answer, sizeof(answer) - 1);
        close(c);
    }
    return NULL;
}

/* Starts it on a free loopback port, written into *port; 0 or -1. */
static int not_metrics_start(not_metrics *s, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 1) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    *port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, serve_not_metrics, s) == 0 ? 0 : -1;
}

#define CALLS "cleave_module_calls_total{"

static void test_advise_predicts_the_calls_extracting_inventory_makes_remote(void **state)
{
    static char out[65536];
    topology mono = {0};
    topology split = {0};
    json_error_t jerr;
    json_t *advice = NULL;
    json_t *inv;
    double predicted;
    double predicted_out;
    char *gw = NULL;
    char *svc = NULL;
    double by_callers;
    double by_binding;
    double out_of_inventory;

    (void)state;
    assert_int_equal(loaded(&mono, "monolith"), 0);
    assert_int_equal(advise(out, sizeof(out), "--url", mono.base_url, "--module", "inventory",
                            "--samples", "20", "--json", NULL),
                     0);
    advice = json_loads(out, 0, &jerr);
    if (advice == NULL) {
        fail_msg("advise --json printed no JSON (%s):\n%s", jerr.text, out);
    }
    assert_int_equal(json_array_size(json_object_get(advice, "modules")), 1);
    inv = json_array_get(json_object_get(advice, "modules"), 0);
    assert_string_equal(json_string_value(json_object_get(inv, "module")), "inventory");
    predicted = json_number_value(json_object_get(inv, "crossing_calls"));
    predicted_out = json_number_value(json_object_get(inv, "calls_out"));
    /* Every checkout reserves and every round reads stock: the load crosses the boundary. */
    assert_true(predicted >= 2 * LOAD);
    assert_true(json_number_value(json_object_get(advice, "overhead_seconds")) > 0);
    assert_int_equal(topology_stop(&mono), 0);

    assert_int_equal(loaded(&split, "inventory-extracted"), 0);
    gw = test_scrape(split.base_url);
    svc = test_scrape(split.service_url);
    assert_non_null(gw);
    assert_non_null(svc);
    /* Counted by the callers: into inventory on the gateway, out of it in its service. */
    by_callers = test_metrics_sum(gw, CALLS, "callee=\"inventory\"", "binding=\"remote\"", NULL);
    out_of_inventory =
        test_metrics_sum(svc, CALLS, "caller=\"inventory\"", "binding=\"remote\"", NULL);
    /* Counted by the remote binding, which knows nothing of callers. */
    by_binding = test_metrics_sum(gw, "cleave_module_operation_calls_total{module=\"inventory\"",
                                  "binding=\"remote\"", NULL);
    print_message("inventory extracted: predicted %.0f remote calls (%.0f out), measured %.0f by "
                  "callers (%.0f out), %.0f by the remote binding\n",
                  predicted, predicted_out, by_callers + out_of_inventory, out_of_inventory,
                  by_binding);
    assert_true(by_callers + out_of_inventory == predicted);
    assert_true(out_of_inventory == predicted_out);
    assert_true(by_binding == by_callers);
    /* Nothing of inventory's is local on the gateway any more. */
    assert_true(test_metrics_sum(gw, CALLS, "callee=\"inventory\"", "binding=\"local\"", NULL) ==
                0);
    free(gw);
    free(svc);
    json_decref(advice);
    assert_int_equal(topology_stop(&split), 0);
}

static void test_advise_refuses_bad_input(void **state)
{
    static char out[65536];
    topology mono = {0};
    not_metrics other = {.fd = -1};
    char url[200];
    int port = test_free_port();

    (void)state;
    assert_int_equal(advise(out, sizeof(out), "--module", "warehouse", NULL), 2);
    assert_non_null(strstr(out, "unknown module 'warehouse'"));
    assert_non_null(strstr(out, "inventory"));
    assert_int_equal(advise(out, sizeof(out), "--url", "ftp://example", NULL), 2);
    assert_non_null(strstr(out, "--url"));
    assert_int_equal(advise(out, sizeof(out), "--samples", "0", NULL), 2);
    assert_non_null(strstr(out, "--samples"));

    /* Nobody listens there. */
    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    assert_int_equal(advise(out, sizeof(out), "--url", url, NULL), 1);
    assert_non_null(strstr(out, "cannot read"));
    assert_non_null(strstr(out, url));

    /* A 200 answer that is not metrics. */
    assert_int_equal(not_metrics_start(&other, &port), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    assert_int_equal(advise(out, sizeof(out), "--url", url, NULL), 1);
    pthread_join(other.thread, NULL);
    close(other.fd);
    if (strstr(out, "is not a metric sample") == NULL) {
        fail_msg("advise on a JSON answer said:\n%s", out);
    }
    assert_int_equal(topology_start(&mono, "monolith", TOPOLOGY_SEED_SMALL), 0);
    /* A path that is not there. */
    snprintf(url, sizeof(url), "%s/nowhere", mono.base_url);
    assert_int_equal(advise(out, sizeof(out), "--url", url, NULL), 1);
    assert_non_null(strstr(out, "answered 404"));
    /* And the table, for every module, on a process just started. */
    assert_int_equal(advise(out, sizeof(out), "--url", mono.base_url, "--samples", "5", NULL), 0);
    assert_non_null(strstr(out, "Remote binding's cost per call"));
    assert_non_null(strstr(out, "inventory"));
    assert_non_null(strstr(out, "catalog"));
    assert_int_equal(topology_stop(&mono), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advise_predicts_the_calls_extracting_inventory_makes_remote),
        cmocka_unit_test(test_advise_refuses_bad_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
