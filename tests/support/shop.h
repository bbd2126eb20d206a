/*
 * Test support: reading the shop through its public API, for the end-to-end tests that
 * check orders across a whole run (the saga, the data move).
 */
#ifndef CLEAVE_TEST_SHOP_H
#define CLEAVE_TEST_SHOP_H

#include <stdint.h>

#include <jansson.h>

/*
 * Sends method base+path with body (may be NULL) and expects the status want: the answer's
 * JSON (new reference; JSON null when it had no JSON body), or NULL after printing what came
 * instead.
 */
json_t *test_call(const char *base, const char *method, const char *path, const char *body,
                  long want);

/* A short pause between two polls of real state (not a wait for it). */
void test_poll_pause(void);

/* True when an order's status is final: confirmed or rejected. */
int test_order_is_final(const char *status);

/*
 * Every item of the keyset-paginated list at base+path (path ends with its query, e.g.
 * "/api/v1/orders?limit=200"), following next_cursor. New reference (an array), or NULL
 * after printing why (a transport error or an answer other than 200).
 */
json_t *test_list_all(const char *base, const char *path);

/*
 * Polls base's order list until every order is final; returns them all (new reference),
 * or NULL after printing how many are still open after timeout_ms (or why it could not
 * read them).
 */
json_t *test_orders_wait_final(const char *base, int timeout_ms);

/*
 * How many units of sku the confirmed orders among orders bought (orders: an array of
 * orders, or an object whose values are orders; borrowed).
 */
int64_t test_confirmed_quantity(json_t *orders, const char *sku);

/*
 * The metrics text of base's /metrics (malloc'd, the caller frees), or NULL after printing
 * why.
 */
char *test_scrape(const char *base);

/*
 * The sum of the samples of a metrics text whose line starts with prefix and contains every
 * one of the NULL-terminated parts; 0 when there is none.
 */
double test_metrics_sum(const char *text, const char *prefix, ...);

/* The SKU the load below buys and reads. */
#define TEST_LOAD_SKU "SKU-000010"

/*
 * A bounded, deterministic load on a seeded topology at base (ADR 0039): prepare makes the
 * account "load" with ample funds and ample stock of TEST_LOAD_SKU; run places n checkouts
 * one after the other, each polled to its final state (their durations in microseconds into
 * checkout_us[n] when not NULL), and reads the product and its stock n times. 0, or -1 after
 * printing what failed (an order that ended rejected is a failure: every one can confirm).
 */
int test_load_prepare(const char *base);
int test_load_run(const char *base, int n, int64_t *checkout_us);

/* Waits up to timeout_ms until no checkout saga runs at base; 0, or -1. */
int test_load_settle(const char *base, int timeout_ms);

#endif
