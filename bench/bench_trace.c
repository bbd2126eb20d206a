/*
 * What tracing costs (issue #14): GET /api/v1/products/1 on three monoliths started side
 * by side - tracing off (CLEAVE_TRACE_SAMPLE=0, no exporter), 1% of traces recorded and
 * exported, and all of them - measured in interleaved rounds in one run, so that machine
 * noise hits them alike. The exporters post to a sink in this process (the platform's own
 * HTTP server answering 200 to /v1/traces), so the 100% side pays for real exports.
 *
 *   bench_trace [requests per side, default 20000] [client threads, default 4]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleave/http.h"
#include "cleave/log.h"
#include "client.h"
#include "topology.h"

#define ROUNDS      10
#define MAX_THREADS 32
#define NSIDES      3
#define PATH        "/api/v1/products/1"

typedef struct side {
    const char *label;
    const char *sample; /* CLEAVE_TRACE_SAMPLE */
    int export;         /* point CLEAVE_OTLP_ENDPOINT at the sink */
    topology topo;
    _Atomic long done;
    _Atomic long failed;
    int64_t busy_ns;
} side;

typedef struct job {
    side *s;
    int count;
} job;

static _Atomic long sink_posts;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sink(cl_http_req *req, void *arg)
{
    (void)arg;
    sink_posts++;
    cl_http_reply_empty(req, 200);
}

static void *client(void *arg)
{
    job *j = arg;

    for (int i = 0; i < j->count; i++) {
        test_resp r;
        int ok =
            test_http(j->s->topo.base_url, "GET", PATH, NULL, 0, NULL, &r) == 0 && r.status == 200;

        test_resp_free(&r);
        if (ok) {
            j->s->done++;
        } else {
            j->s->failed++;
        }
    }
    test_http_thread_done();
    return NULL;
}

static void run_round(side *s, int count, int threads)
{
    pthread_t th[MAX_THREADS];
    job jobs[MAX_THREADS];
    int64_t t0 = now_ns();

    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){s, count / threads + (i < count % threads ? 1 : 0)};
        pthread_create(&th[i], NULL, client, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    s->busy_ns += now_ns() - t0;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
    int threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    side sides[NSIDES] = {
        {.label = "tracing off", .sample = "CLEAVE_TRACE_SAMPLE=0"},
        {.label = "sampling 1%", .sample = "CLEAVE_TRACE_SAMPLE=0.01", .export = 1},
        {.label = "sampling 100%", .sample = "CLEAVE_TRACE_SAMPLE=1", .export = 1},
    };
    cl_route route = {"POST", "/v1/traces", CL_PERM_PUBLIC, sink, NULL, NULL};
    cl_http_options opt = {
        .listen = "127.0.0.1:0", .threads = 4, .max_body = 16u << 20, .service = "bench-sink"};
    cl_router *router = cl_router_new();
    cl_http_server *srv = NULL;
    char endpoint[96];
    double rate[NSIDES];
    cl_error err;
    int rc = EXIT_SUCCESS;

    if (total < ROUNDS || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_trace [requests >= %d] [threads 1-%d]\n", ROUNDS,
                MAX_THREADS);
        return 2;
    }
    cl_log_set_level(CL_LOG_WARN);
    if (router == NULL || cl_router_add(router, &route, &err) != CL_OK ||
        cl_http_start(&opt, router, &srv, &err) != CL_OK) {
        fprintf(stderr, "the sink did not start\n");
        rc = EXIT_FAILURE;
        goto out;
    }
    snprintf(endpoint, sizeof(endpoint), "CLEAVE_OTLP_ENDPOINT=http://127.0.0.1:%d",
             cl_http_port(srv));
    for (int i = 0; i < NSIDES; i++) {
        char *env[] = {(char *)sides[i].sample, sides[i].export ? endpoint : NULL, NULL};

        if (topology_start_with(&sides[i].topo, "monolith", TOPOLOGY_SEED_DEMO, env) != 0) {
            fprintf(stderr, "could not start %s\n", sides[i].label);
            rc = EXIT_FAILURE;
            goto out;
        }
    }
    /* A warm-up round each, not measured. */
    for (int i = 0; i < NSIDES; i++) {
        run_round(&sides[i], 200, threads);
        sides[i].done = 0;
        sides[i].failed = 0;
        sides[i].busy_ns = 0;
    }
    printf("GET %s, %d per side, %d client threads, %d interleaved rounds\n", PATH, total, threads,
           ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        int count = total / ROUNDS + (r < total % ROUNDS ? 1 : 0);
        for (int i = 0; i < NSIDES; i++) {
            run_round(&sides[(r + i) % NSIDES], count, threads);
        }
    }
    for (int i = 0; i < NSIDES; i++) {
        side *s = &sides[i];

        rate[i] = s->busy_ns > 0 ? (double)s->done * 1e9 / (double)s->busy_ns : 0;
        printf("%-16s %9.1f requests/s   (%ld done, %ld failed)\n", s->label, rate[i],
               (long)s->done, (long)s->failed);
    }
    if (rate[0] > 0) {
        printf("cost vs off: sampling 1%% %+.1f%%, sampling 100%% %+.1f%% of the throughput\n",
               (rate[1] / rate[0] - 1) * 100, (rate[2] / rate[0] - 1) * 100);
    }
out:
    for (int i = 0; i < NSIDES; i++) {
        if (sides[i].topo.nprocs > 0) {
            topology_stop(&sides[i].topo);
        }
    }
    printf("the sink took %ld export posts\n", (long)sink_posts);
    cl_http_stop(srv);
    cl_router_free(router);
    test_http_thread_done();
    return rc;
}
