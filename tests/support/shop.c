/* Reading the shop through its public API (see shop.h). */
#include "shop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "cleave/util.h"

json_t *test_call(const char *base, const char *method, const char *path, const char *body,
                  long want)
{
    test_resp r;
    json_t *j = NULL;

    if (test_http(base, method, path, body, body != NULL ? strlen(body) : 0, NULL, &r) != 0) {
        fprintf(stderr, "%s %s: no answer\n", method, path);
        return NULL;
    }
    if (r.status != want) {
        fprintf(stderr, "%s %s: %ld (wanted %ld) %s\n", method, path, r.status, want, r.body);
    } else {
        j = r.json != NULL ? json_incref(r.json) : json_null();
    }
    test_resp_free(&r);
    return j;
}

void test_poll_pause(void)
{
    struct timespec ts = {0, 20 * 1000000L};

    nanosleep(&ts, NULL);
}

int test_order_is_final(const char *status)
{
    return status != NULL && (strcmp(status, "confirmed") == 0 || strcmp(status, "rejected") == 0);
}

json_t *test_list_all(const char *base, const char *path)
{
    json_t *all = json_array();
    char url[512], cursor[128] = "";

    for (;;) {
        test_resp r;
        const char *next;

        snprintf(url, sizeof(url), "%s%s%s", path, cursor[0] ? "&cursor=" : "", cursor);
        if (test_http(base, "GET", url, NULL, 0, NULL, &r) != 0) {
            fprintf(stderr, "GET %s: no answer\n", url);
            json_decref(all);
            return NULL;
        }
        if (r.status != 200 || !json_is_array(json_object_get(r.json, "items"))) {
            fprintf(stderr, "GET %s: %ld %s\n", url, r.status, r.body);
            test_resp_free(&r);
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, json_object_get(r.json, "items"));
        next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (next == NULL) {
            test_resp_free(&r);
            return all;
        }
        snprintf(cursor, sizeof(cursor), "%s", next);
        test_resp_free(&r);
    }
}

json_t *test_orders_wait_final(const char *base, int timeout_ms)
{
    int64_t until = cl_now_ms() + timeout_ms;

    for (;;) {
        json_t *all = test_list_all(base, "/api/v1/orders?limit=200"), *o;
        size_t i;
        int open = 0;

        if (all == NULL) {
            return NULL;
        }
        json_array_foreach (all, i, o) {
            open += !test_order_is_final(json_string_value(json_object_get(o, "status")));
        }
        if (open == 0) {
            return all;
        }
        json_decref(all);
        if (cl_now_ms() > until) {
            fprintf(stderr, "%d orders are not final after %d ms\n", open, timeout_ms);
            return NULL;
        }
        test_poll_pause();
    }
}

/* The units of sku in order o when it is confirmed, else 0. */
static int64_t confirmed_units(json_t *o, const char *sku)
{
    const char *status = json_string_value(json_object_get(o, "status"));
    int64_t n = 0;
    json_t *l;
    size_t k;

    if (status == NULL || strcmp(status, "confirmed") != 0) {
        return 0;
    }
    json_array_foreach (json_object_get(o, "lines"), k, l) {
        const char *line_sku = json_string_value(json_object_get(l, "sku"));

        if (line_sku != NULL && strcmp(line_sku, sku) == 0) {
            n += json_integer_value(json_object_get(l, "quantity"));
        }
    }
    return n;
}

int64_t test_confirmed_quantity(json_t *orders, const char *sku)
{
    int64_t n = 0;
    const char *key;
    json_t *o;
    size_t i;

    if (json_is_array(orders)) {
        json_array_foreach (orders, i, o) {
            n += confirmed_units(o, sku);
        }
    } else {
        json_object_foreach (orders, key, o) {
            n += confirmed_units(o, sku);
        }
    }
    return n;
}

char *test_scrape(const char *base)
{
    test_resp r;
    char *text = NULL;

    if (test_http(base, "GET", "/metrics", NULL, 0, NULL, &r) != 0 || r.status != 200) {
        fprintf(stderr, "GET %s/metrics: %ld\n", base, r.status);
    } else {
        text = r.body;
        r.body = NULL;
    }
    test_resp_free(&r);
    return text;
}

double test_metrics_sum(const char *text, const char *prefix, ...)
{
    size_t n = strlen(prefix);
    double total = 0;

    for (const char *p = text; *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char line[1024];
        int match = len < sizeof(line) && strncmp(p, prefix, n) == 0;
        va_list ap;

        if (match) {
            memcpy(line, p, len);
            line[len] = '\0';
            va_start(ap, prefix);
            for (const char *part = va_arg(ap, const char *); match && part != NULL;
                 part = va_arg(ap, const char *)) {
                match = strstr(line, part) != NULL;
            }
            va_end(ap);
            if (match) {
                total += strtod(strrchr(line, ' ') + 1, NULL);
            }
        }
        p += len + (end != NULL);
    }
    return total;
}

/* Sends method path with body and checks the status; 0, or -1 after printing the answer. */
static int expect(const char *base, const char *method, const char *path, const char *body,
                  long want)
{
    json_t *j = test_call(base, method, path, body, want);

    json_decref(j);
    return j != NULL ? 0 : -1;
}

int test_load_prepare(const char *base)
{
    if (expect(base, "POST", "/api/v1/accounts",
               "{\"id\":\"load\",\"owner\":\"Load\",\"currency\":\"EUR\"}", 201) != 0 ||
        expect(base, "POST", "/api/v1/accounts/load/deposits",
               "{\"amount\":{\"amount\":100000000000,\"currency\":\"EUR\"}}", 200) != 0 ||
        expect(base, "PUT", "/api/v1/inventory/" TEST_LOAD_SKU, "{\"on_hand\":1000000}", 200) !=
            0) {
        return -1;
    }
    return 0;
}

/* One checkout to its final state; its duration in microseconds, or -1. */
static int64_t load_checkout(const char *base)
{
    static const char body[] =
        "{\"account_id\":\"load\",\"lines\":[{\"sku\":\"" TEST_LOAD_SKU "\",\"quantity\":1}]}";
    struct timespec start;
    struct timespec now;
    char path[128];
    json_t *order;
    int64_t us;

    clock_gettime(CLOCK_MONOTONIC, &start);
    order = test_call(base, "POST", "/api/v1/orders", body, 202);
    if (order == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "/api/v1/orders/%s",
             json_string_value(json_object_get(order, "id")));
    json_decref(order);
    for (int64_t until = cl_now_ms() + 20000; cl_now_ms() < until;) {
        json_t *o = test_call(base, "GET", path, NULL, 200);
        const char *st = json_string_value(json_object_get(o, "status"));
        int final = test_order_is_final(st);
        int confirmed = st != NULL && strcmp(st, "confirmed") == 0;

        json_decref(o);
        if (final) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!confirmed) {
                fprintf(stderr, "%s ended %s\n", path, st);
                return -1;
            }
            us = (int64_t)(now.tv_sec - start.tv_sec) * 1000000 +
                 (now.tv_nsec - start.tv_nsec) / 1000;
            return us;
        }
        test_poll_pause();
    }
    fprintf(stderr, "%s: not final after 20 s\n", path);
    return -1;
}

int test_load_run(const char *base, int n, int64_t *checkout_us)
{
    json_t *list = test_call(base, "GET", "/api/v1/products?limit=1", NULL, 200);
    json_t *id = json_object_get(json_array_get(json_object_get(list, "items"), 0), "id");
    char product[200];
    int rc = -1;

    if (!json_is_integer(id)) {
        fprintf(stderr, "no product to read at %s\n", base);
        goto out;
    }
    snprintf(product, sizeof(product), "/api/v1/products/%" JSON_INTEGER_FORMAT,
             json_integer_value(id));
    for (int i = 0; i < n; i++) {
        int64_t us = load_checkout(base);

        if (us < 0 || expect(base, "GET", product, NULL, 200) != 0 ||
            expect(base, "GET", "/api/v1/inventory/" TEST_LOAD_SKU, NULL, 200) != 0) {
            goto out;
        }
        if (checkout_us != NULL) {
            checkout_us[i] = us;
        }
    }
    rc = 0;
out:
    json_decref(list);
    return rc;
}

int test_load_settle(const char *base, int timeout_ms)
{
    for (int64_t until = cl_now_ms() + timeout_ms; cl_now_ms() < until;) {
        char *text = test_scrape(base);
        int running = text == NULL || test_metrics_sum(text, "cleave_sagas_running{", NULL) != 0;

        free(text);
        if (!running) {
            return 0;
        }
        test_poll_pause();
    }
    fprintf(stderr, "checkout sagas still running at %s after %d ms\n", base, timeout_ms);
    return -1;
}
