/*
 * `cleave advise` against what happens (ADR 0039), in one run: the monolith and the
 * inventory-extracted topology take the same bounded load (checkouts to their final state,
 * product and stock reads) in interleaved rounds; advise predicts from the monolith's
 * /metrics what extracting inventory adds; the extracted topology's measured remote calls
 * and latency are printed next to the prediction, with the ratios.
 *
 *   bench_advise [checkouts, default 100]
 *
 * The latency of a checkout is the saga's own time (the sum of its steps' durations, from
 * cleave_saga_step_duration_seconds), not the time a client polling the order sees, which
 * moves in steps of the poll interval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shop.h"
#include "topology.h"

#define SAGA_SUM "cleave_saga_step_duration_seconds_sum{saga=\"checkout\""
#define CALLS    "cleave_module_calls_total{"
#define OP_SUM   "cleave_module_operation_duration_seconds_sum{module=\"inventory\""
#define OP_COUNT "cleave_module_operation_duration_seconds_count{module=\"inventory\""
#define ROUNDS   4

/* One side's figures, after its load. */
typedef struct side {
    double saga_seconds;     /* the sagas' steps, summed */
    double checkout_calls;   /* orders -> inventory calls (on a checkout's path) */
    double crossing;         /* calls across inventory's boundary (remote ones when split) */
    double op_seconds;       /* inventory operation time as its callers see it */
    double op_calls;         /* and how many */
    double mean_checkout_ms; /* time to final state, as a polling client sees it */
} side;

static double ratio(double a, double b)
{
    return b != 0 ? a / b : 0;
}

/* Starts name and prepares its load; 0 or -1. */
static int start(topology *t, const char *name)
{
    return topology_start(t, name, TOPOLOGY_SEED_DEMO) == 0 && test_load_prepare(t->base_url) == 0
               ? 0
               : -1;
}

/* Runs n of the load's rounds on t, adding to the total of its checkouts' times; 0 or -1. */
static int run(topology *t, int n, side *s)
{
    int64_t *us = calloc((size_t)n, sizeof(*us));
    int rc = -1;

    if (us != NULL && test_load_run(t->base_url, n, us) == 0) {
        for (int i = 0; i < n; i++) {
            s->mean_checkout_ms += (double)us[i] / 1000.0;
        }
        rc = 0;
    }
    free(us);
    return rc;
}

/*
 * `cleave advise --url base --module inventory [ARG]` (arg may be NULL) into out[size]; its
 * exit status.
 */
static int advise(const char *base, const char *arg, char *out, size_t size)
{
    char bin[512];
    char *argv[] = {"cleave",   "advise",    "--url",     (char *)base,
                    "--module", "inventory", (char *)arg, NULL};

    return test_run(topology_bin("cleave", bin, sizeof(bin)), argv, NULL, out, size);
}

/* The figures of one scrape of the process that runs the sagas (the gateway). */
static void read_side(const char *text, const char *binding, side *s)
{
    s->saga_seconds = test_metrics_sum(text, SAGA_SUM, NULL);
    s->checkout_calls =
        test_metrics_sum(text, CALLS, "caller=\"orders\"", "callee=\"inventory\"", binding, NULL);
    s->op_seconds = test_metrics_sum(text, OP_SUM, binding, NULL);
    s->op_calls = test_metrics_sum(text, OP_COUNT, binding, NULL);
}

int main(int argc, char **argv)
{
    static char out[65536];
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100;
    topology mono = {0};
    topology split = {0};
    side m = {0};
    side x = {0};
    json_t *advice = NULL;
    json_t *inv;
    json_error_t jerr;
    char *text = NULL;
    char *svc = NULL;
    double overhead;
    double predicted;
    double predicted_per_checkout;
    double measured_added;
    double measured_overhead;
    int rc = EXIT_FAILURE;

    if (n < 1 || n > 100000) {
        fprintf(stderr, "usage: bench_advise [checkouts, 1-100000]\n");
        return 2;
    }
    unsetenv("CL_TEST_DB"); /* SQLite, whatever the caller's shell says */
    if (start(&mono, "monolith") != 0 || start(&split, "inventory-extracted") != 0) {
        fprintf(stderr, "could not start both topologies\n");
        goto out;
    }
    /* Interleaved rounds, so that machine noise hits both sides alike. */
    for (int r = 0; r < ROUNDS; r++) {
        int count = n / ROUNDS + (r < n % ROUNDS ? 1 : 0);
        topology *first = r % 2 == 0 ? &mono : &split;
        topology *second = r % 2 == 0 ? &split : &mono;

        if (count > 0 && (run(first, count, first == &mono ? &m : &x) != 0 ||
                          run(second, count, second == &mono ? &m : &x) != 0)) {
            fprintf(stderr, "the load failed\n");
            goto out;
        }
    }
    m.mean_checkout_ms /= n;
    x.mean_checkout_ms /= n;
    if (test_load_settle(mono.base_url, 60000) != 0 ||
        test_load_settle(split.base_url, 60000) != 0) {
        goto out;
    }
    if (advise(mono.base_url, "--json", out, sizeof(out)) != 0 ||
        (advice = json_loads(out, 0, &jerr)) == NULL) {
        fprintf(stderr, "advise failed:\n%s\n", out);
        goto out;
    }
    inv = json_array_get(json_object_get(advice, "modules"), 0);
    overhead = json_number_value(json_object_get(advice, "overhead_seconds"));
    predicted = json_number_value(json_object_get(inv, "crossing_calls"));
    text = test_scrape(mono.base_url);
    if (text == NULL) {
        goto out;
    }
    read_side(text, "binding=\"local\"", &m);
    predicted_per_checkout = m.checkout_calls / n;
    /* What an operator reads: the table. */
    if (advise(mono.base_url, NULL, out, sizeof(out)) == 0) {
        printf("%s\n", out);
    }
    free(text);
    text = test_scrape(split.base_url);
    svc = test_scrape(split.service_url);
    if (text == NULL || svc == NULL) {
        goto out;
    }
    read_side(text, "binding=\"remote\"", &x);
    x.crossing = test_metrics_sum(text, CALLS, "callee=\"inventory\"", "binding=\"remote\"", NULL) +
                 test_metrics_sum(svc, CALLS, "caller=\"inventory\"", "binding=\"remote\"", NULL);
    measured_added = (x.saga_seconds - m.saga_seconds) / n;
    measured_overhead = ratio(x.op_seconds, x.op_calls) - ratio(m.op_seconds, m.op_calls);

    printf("extracting inventory: %d checkouts (+ %d product and %d stock reads), monolith vs "
           "inventory-extracted\n\n",
           n, n, n);
    printf("%-44s %12s %12s %8s\n", "", "predicted", "measured", "ratio");
    printf("%-44s %12.0f %12.0f %8.3f\n", "calls across the boundary", predicted, x.crossing,
           ratio(predicted, x.crossing));
    printf("%-44s %12.2f %12.2f %8.3f\n", "remote calls per checkout (orders->inventory)",
           predicted_per_checkout, x.checkout_calls / n,
           ratio(predicted_per_checkout, x.checkout_calls / n));
    printf("%-44s %12.3f %12.3f %8.3f\n", "cost per remote call, ms", overhead * 1e3,
           measured_overhead * 1e3, ratio(overhead, measured_overhead));
    printf("%-44s %12.3f %12.3f %8.3f\n", "added latency per checkout (saga), ms",
           predicted_per_checkout * overhead * 1e3, measured_added * 1e3,
           ratio(predicted_per_checkout * overhead, measured_added));
    printf("\nsaga time per checkout: monolith %.3f ms, extracted %.3f ms; time to a final state "
           "as a client polling every 20 ms sees it: %.1f ms vs %.1f ms\n",
           m.saga_seconds / n * 1e3, x.saga_seconds / n * 1e3, m.mean_checkout_ms,
           x.mean_checkout_ms);
    printf("cost per remote call: predicted = advise's calls through the remote binding less "
           "their time inside the process; measured = the mean inventory call as its callers "
           "saw it, remote minus local\n");
    rc = EXIT_SUCCESS;
out:
    free(text);
    free(svc);
    json_decref(advice);
    if (mono.nprocs > 0) {
        topology_stop(&mono);
    }
    if (split.nprocs > 0) {
        topology_stop(&split);
    }
    return rc;
}
