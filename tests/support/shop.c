/* Reading the shop through its public API (see shop.h). */
#include "shop.h"

#include <stdio.h>
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
