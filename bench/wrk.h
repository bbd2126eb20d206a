/*
 * wrk (Debian's package) as the benchmarks' load generator: one run against a side's URL
 * adds a round of figures to it; the medians over the rounds are what the benches print.
 * Every run is wrk -t2 -c32 --latency, keep-alive, as TARGETS.md states the targets.
 */
#ifndef CLEAVE_BENCH_WRK_H
#define CLEAVE_BENCH_WRK_H

#define WRK_MAX_ROUNDS   20

/*
 * The environment entries of a Cleave server under wrk. Two runs back to back overlap on
 * the server: the last requests of one run's 32 connections still finish when the next
 * run's 32 arrive, which the default request slots (48, and 32 per route) answer with 503.
 * The benches measure serving, not load shedding (test_slow_clients tests that).
 */
#define WRK_SERVER_SLOTS "CLEAVE_HTTP_MAX_INFLIGHT=128", "CLEAVE_HTTP_ROUTE_MAX_INFLIGHT=64"

typedef struct wrk_side {
    const char *label;
    const char *url;
    const char *header; /* an extra request header ("Name: value"), or NULL */
    double rps[WRK_MAX_ROUNDS];
    double p50_ms[WRK_MAX_ROUNDS];
    double p99_ms[WRK_MAX_ROUNDS];
    double bytes[WRK_MAX_ROUNDS]; /* per answer on the wire, head included */
    int n;
} wrk_side;

/* The medians of a side's rounds. */
typedef struct wrk_figures {
    double rps;
    double p50_ms;
    double p99_ms;
    double bytes;
} wrk_figures;

/*
 * One wrk run of seconds against s->url: its figures become s's next round. -1, with the
 * reason and wrk's output on stderr, when wrk failed, printed no figures or saw an answer
 * other than 2xx (the figures would then measure other work).
 */
int wrk_round(wrk_side *s, int seconds);
/* The medians of s's rounds so far (s->n > 0). Reorders the rounds. */
wrk_figures wrk_medians(wrk_side *s);

#endif
