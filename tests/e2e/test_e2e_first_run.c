/*
 * End to end: the first run, as a new user sees it. The real `cleave`, started as
 * `make run` starts it (migrate, seed --if-empty, serve; no test-only settings) on a
 * throwaway data directory and a free port, then:
 *
 *   - the README's walkthroughs of stock and accounts, of a checkout and of tokens, their
 *     shell commands taken from README.md itself (so that the README cannot drift) and run
 *     by bash with set -e: every command exits 0 and every request answers 2xx; the ORDER
 *     the checkout extracts is the order it placed, and that order is confirmed and its
 *     shipment booked within 5 s of being placed;
 *   - the inventory's consumer of catalog.product_created: a new product's SKU gets a
 *     stock record with nothing on hand, and stock set by the seed or by a PUT before the
 *     event arrives is kept.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client.h"
#include "proc.h"

/* What the README promises a new user: the order's shipment is booked this soon. */
#define BOOKED_WITHIN_MS 5000
/* The paragraphs that open the walkthroughs tested here; the first sh block after each. */
#define STOCK_ANCHOR     "Stock and money (integer minor units"
#define CHECKOUT_ANCHOR  "Check out (ADR 0014)"
#define TOKENS_ANCHOR    "Tokens (the identity module, an OAuth 2.0"
#define SCRIPT_MAX       16384
#define OUTPUT_MAX       ((size_t)256 * 1024)

static char dir[256];
static char base[64];
static char hostport[32];
static test_proc server;

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The environment of every cleave command: only what `make run` leaves to its defaults
 * plus a throwaway data directory, a free port and the tree's migrations. */
static void cleave_env(char *data_env, char *listen_env, char **env)
{
    snprintf(data_env, 512, "CLEAVE_DATA_DIR=%s/var", dir);
    env[0] = data_env;
    env[1] = listen_env;
    env[2] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    env[3] = NULL;
}

static int cleave(const char *a1, const char *a2, char *out, size_t size)
{
    char data_env[512];
    char *env[4];
    char *argv[] = {"cleave", (char *)a1, (char *)a2, NULL};

    cleave_env(data_env, "CLEAVE_LISTEN=127.0.0.1:0", env);
    return test_run(CLEAVE_BIN_DIR "/cleave", argv, env, out, size);
}

/* As `make run`: cleave migrate; cleave seed --if-empty; exec cleave serve. */
static int setup(void **state)
{
    char data_env[512], log[512], out[4096], token[4096];
    char *env[4];
    char *argv[] = {"cleave", "serve", NULL};
    int port;

    (void)state;
    if (test_tmpdir(dir, sizeof(dir)) != 0) {
        return -1;
    }
    if (cleave("migrate", NULL, out, sizeof(out)) != 0 ||
        cleave("seed", "--if-empty", out, sizeof(out)) != 0) {
        fprintf(stderr, "make run's set-up failed: %s\n", out);
        return -1;
    }
    cleave_env(data_env, "CLEAVE_LISTEN=127.0.0.1:0", env);
    snprintf(log, sizeof(log), "%s/serve.log", dir);
    if (test_proc_start(&server, CLEAVE_BIN_DIR "/cleave", argv, env, log) != 0) {
        return -1;
    }
    port = test_proc_wait_port(&server, 30000);
    if (port <= 0) {
        return -1;
    }
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
    snprintf(base, sizeof(base), "http://%s", hostport);
    /* The test's own checks act as the seeded admin; the README's commands get their own. */
    if (test_password_token(base, TEST_ADMIN, TEST_ADMIN_PASSWORD, token, sizeof(token)) != 0) {
        return -1;
    }
    test_http_set_bearer(token);
    return 0;
}

static int teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (server.pid > 0) {
        rc = test_proc_stop(&server, SIGTERM);
    }
    test_rmrf(dir);
    return rc == 0 ? 0 : -1;
}

/* --- the README ------------------------------------------------------------------------ */

/*
 * The first ```sh block after anchor in README.md into script[SCRIPT_MAX], with every
 * localhost:8080 replaced by the server's address and every build/bin/cleave by the
 * binary under test (its commands then find the data directory in the environment).
 */
static void walkthrough_script(const char *anchor, char *script)
{
    static char readme[256 * 1024];
    const char *from[] = {"localhost:8080", "build/bin/cleave"};
    const char *to[] = {hostport, CLEAVE_BIN_DIR "/cleave"};
    FILE *f = fopen(CLEAVE_SOURCE_DIR "/README.md", "r");
    size_t n, used = 0;
    const char *p, *end;

    assert_non_null(f);
    n = fread(readme, 1, sizeof(readme) - 1, f);
    fclose(f);
    readme[n] = '\0';
    p = strstr(readme, anchor);
    if (p == NULL) {
        fail_msg("README.md has no \"%s\" section", anchor);
        return;
    }
    p = strstr(p, "\n```sh\n");
    assert_non_null(p);
    p += strlen("\n```sh\n");
    end = strstr(p, "\n```");
    assert_non_null(end);
    while (p <= end) {
        size_t k = 0;

        while (k < 2 && strncmp(p, from[k], strlen(from[k])) != 0) {
            k++;
        }
        if (k < 2) {
            assert_true(used + strlen(to[k]) < SCRIPT_MAX);
            used += (size_t)snprintf(script + used, SCRIPT_MAX - used, "%s", to[k]);
            p += strlen(from[k]);
        } else {
            assert_true(used + 1 < SCRIPT_MAX);
            script[used++] = *p++;
        }
    }
    script[used] = '\0';
}

/* How many times s occurs in text. */
static int occurrences(const char *text, const char *s)
{
    int n = 0;

    for (const char *p = strstr(text, s); p != NULL; p = strstr(p + 1, s)) {
        n++;
    }
    return n;
}

/* One request the walkthrough made, as the curl wrapper recorded it. */
typedef struct request {
    int64_t started_ms;
    int status;
    char method[16];
    char url[256];
} request;

/*
 * Runs a walkthrough with bash, in the environment of the server's own commands. A curl
 * function in front of it records, for every request, when it started, its status, method
 * and URL on stderr ("@@ ..." lines); everything else is the README's own commands,
 * untouched, run with set -e: fails unless each of them exits 0. With order, ORDER's value
 * after them.
 */
static void run_walkthrough(const char *script, char *out, request *reqs, int *nreqs, char *order,
                            size_t order_size)
{
    static const char prelude[] =
        "set -e\n"
        "curl() {\n"
        "  local t0; t0=$(date +%s%3N)\n"
        "  command curl -w \"%{stderr}\\n@@ $t0 %{http_code} %{method} %{url_effective}\\n\" "
        "\"$@\"\n"
        "}\n";
    static char full[SCRIPT_MAX + 512];
    char *argv[] = {"bash", "-c", full, NULL};
    char data_env[512];
    char *env[4];
    const char *p;
    int rc, n = 0;

    cleave_env(data_env, "CLEAVE_LISTEN=127.0.0.1:0", env);
    snprintf(full, sizeof(full), "%s%s\nrc=$?\nprintf '\\n@@ORDER %%s\\n' \"$ORDER\"\nexit $rc\n",
             prelude, script);
    rc = test_run("/bin/bash", argv, env, out, OUTPUT_MAX);
    if (rc != 0) {
        /* cmocka cuts its messages at 1 KiB: the whole output goes out first. */
        printf("%s\n", out);
        fflush(stdout);
        fail_msg("the walkthrough's commands exited %d (their output above)", rc);
    }
    for (p = strstr(out, "\n@@ "); p != NULL; p = strstr(p + 1, "\n@@ ")) {
        request *r = &reqs[n];
        char *rest;

        assert_true(n < 64);
        r->started_ms = strtoll(p + 4, &rest, 10);
        r->status = (int)strtol(rest, &rest, 10);
        if (r->started_ms <= 0 || sscanf(rest, "%15s %255s", r->method, r->url) != 2) {
            fail_msg("cannot read the request record at: %.80s", p + 1);
        }
        n++;
    }
    *nreqs = n;
    if (order != NULL) {
        p = strstr(out, "\n@@ORDER ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "\n@@ORDER %63s", order), 1);
        assert_true(strlen(order) < order_size);
    }
}

/* Every command of script ran its request, and every request answered 2xx. */
static void assert_all_2xx(const char *script, const char *out, const request *reqs, int nreqs)
{
    assert_int_equal(nreqs, occurrences(script, "curl "));
    for (int i = 0; i < nreqs; i++) {
        if (reqs[i].status < 200 || reqs[i].status > 299) {
            printf("%s\n", out);
            fflush(stdout);
            fail_msg("%s %s answered %d (the output above)", reqs[i].method, reqs[i].url,
                     reqs[i].status);
        }
    }
}

/* The order id in the first "Location: /api/v1/orders/<id>" header of out. */
static void placed_order(const char *out, char *id, size_t size)
{
    const char *p = strstr(out, "Location: /api/v1/orders/");
    size_t n = 0;

    if (p == NULL) {
        fail_msg("the walkthrough placed no order (no Location header):\n%s", out);
        return;
    }
    p += strlen("Location: /api/v1/orders/");
    while (p[n] != '\0' && p[n] != '\r' && p[n] != '\n' && n + 1 < size) {
        n++;
    }
    memcpy(id, p, n);
    id[n] = '\0';
}

/* The len-digit number at s[at], or -1 when those are not all digits. */
static int digits(const char *s, size_t at, size_t len)
{
    int v = 0;

    for (size_t i = at; i < at + len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "2026-11-30T12:21:37.520Z" (the server's timestamps) as wall-clock milliseconds, or -1. */
static int64_t rfc3339_ms(const char *s)
{
    struct tm tm;
    int ms;

    if (s == NULL || strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z') {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = digits(s, 0, 4) - 1900;
    tm.tm_mon = digits(s, 5, 2) - 1;
    tm.tm_mday = digits(s, 8, 2);
    tm.tm_hour = digits(s, 11, 2);
    tm.tm_min = digits(s, 14, 2);
    tm.tm_sec = digits(s, 17, 2);
    ms = digits(s, 20, 3);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mday < 0 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0 || ms < 0) {
        return -1;
    }
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* GET path's JSON string at key (NULL-safe), into out[size]; the HTTP status. */
static long get_string(const char *path, const char *array_key, const char *key, char *out,
                       size_t size)
{
    test_resp r = {0};
    json_t *obj;
    long status;

    out[0] = '\0';
    assert_int_equal(test_http(base, "GET", path, NULL, 0, NULL, &r), 0);
    status = r.status;
    obj = array_key != NULL ? json_array_get(json_object_get(r.json, array_key), 0) : r.json;
    if (json_is_string(json_object_get(obj, key))) {
        snprintf(out, size, "%s", json_string_value(json_object_get(obj, key)));
    }
    test_resp_free(&r);
    return status;
}

/*
 * The block after anchor, which must hold must_run (a command the test is there for), run
 * whole: every command exits 0 and every request answers 2xx.
 */
static void walkthrough_answers_2xx(const char *anchor, const char *must_run)
{
    static char script[SCRIPT_MAX], out[OUTPUT_MAX];
    request reqs[64];
    int nreqs = 0;

    walkthrough_script(anchor, script);
    assert_non_null(strstr(script, must_run));
    run_walkthrough(script, out, reqs, &nreqs, NULL, 0);
    assert_all_2xx(script, out, reqs, nreqs);
}

/*
 * Stock and accounts, as staff and a customer (a role the README uses where RBAC refuses
 * it shows here), and the payments rebuild next to the running shop.
 */
static void test_readme_stock_and_accounts_walkthrough_answers_2xx(void **state)
{
    (void)state;
    walkthrough_answers_2xx(STOCK_ANCHOR, CLEAVE_BIN_DIR "/cleave payments rebuild");
}

/*
 * Tokens: discovery, a password grant, userinfo, and the identity commands next to the
 * running shop (a new client, a new user, a key rotation).
 */
static void test_readme_tokens_walkthrough_answers_2xx(void **state)
{
    (void)state;
    walkthrough_answers_2xx(TOKENS_ANCHOR, CLEAVE_BIN_DIR "/cleave users add");
}

static void test_readme_checkout_walkthrough_books_the_order_within_5s(void **state)
{
    static char script[SCRIPT_MAX], out[OUTPUT_MAX];
    request reqs[64];
    char order[64], located[64], path[160], status[32] = "", shipment[32] = "";
    char booked_at[40] = "";
    int nreqs = 0, posts = 0;
    int64_t placed_ms = -1, seen_ms = -1, booked_ms;

    (void)state;
    walkthrough_script(CHECKOUT_ANCHOR, script);
    run_walkthrough(script, out, reqs, &nreqs, order, sizeof(order));
    assert_all_2xx(script, out, reqs, nreqs);
    for (int i = 0; i < nreqs; i++) {
        if (strcmp(reqs[i].method, "POST") == 0 && strstr(reqs[i].url, "/api/v1/orders") &&
            posts++ == 0) {
            placed_ms = reqs[i].started_ms;
        }
    }
    assert_int_equal(posts, 2); /* the order, then the one that ends rejected */

    /* The README's ORDER=... picks the order it placed, not another one. */
    placed_order(out, located, sizeof(located));
    assert_string_equal(order, located);

    /* Confirmed and booked within BOOKED_WITHIN_MS of being placed, polled with a deadline. */
    while (seen_ms < 0 && wall_ms() < placed_ms + BOOKED_WITHIN_MS) {
        snprintf(path, sizeof(path), "/api/v1/orders/%s", order);
        assert_int_equal(get_string(path, NULL, "status", status, sizeof(status)), 200);
        snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", order);
        assert_int_equal(get_string(path, "items", "status", shipment, sizeof(shipment)), 200);
        if (strcmp(status, "confirmed") == 0 && strcmp(shipment, "booked") == 0) {
            seen_ms = wall_ms();
        } else {
            nap_ms(20);
        }
    }
    if (seen_ms < 0) {
        fail_msg("%d ms after order %s was placed: order %s, shipment %s", BOOKED_WITHIN_MS, order,
                 status, shipment[0] != '\0' ? shipment : "(none)");
    }
    get_string(path, "items", "updated_at", booked_at, sizeof(booked_at));
    booked_ms = rfc3339_ms(booked_at);
    assert_true(booked_ms >= 0);
    print_message("order placed -> shipment booked: %lld ms (server clock; seen by the test "
                  "after %lld ms, the README's own sleep included)\n",
                  (long long)(booked_ms - placed_ms), (long long)(seen_ms - placed_ms));
    assert_true(booked_ms - placed_ms <= BOOKED_WITHIN_MS);
}

/* --- the inventory's consumer of catalog.product_created ------------------------------- */

static void create_product(const char *sku)
{
    char body[256];
    test_resp r = {0};

    snprintf(body, sizeof(body),
             "{\"sku\":\"%s\",\"name\":\"First run %s\",\"price\":{\"amount\":990,"
             "\"currency\":\"EUR\"},\"category\":\"kitchen\"}",
             sku, sku);
    assert_int_equal(test_http(base, "POST", "/api/v1/products", body, strlen(body), NULL, &r), 0);
    if (r.status != 201) {
        fail_msg("POST /api/v1/products %s: %ld %s", sku, r.status, r.body);
    }
    test_resp_free(&r);
}

/* GET the stock of sku: its HTTP status, and on_hand into *on_hand when 200. */
static long stock_of(const char *sku, int64_t *on_hand)
{
    char path[128];
    test_resp r = {0};
    long status;

    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    assert_int_equal(test_http(base, "GET", path, NULL, 0, NULL, &r), 0);
    status = r.status;
    if (status == 200) {
        *on_hand = json_integer_value(json_object_get(r.json, "on_hand"));
    }
    test_resp_free(&r);
    return status;
}

/* Waits, with a deadline, until the catalog's outbox holds nothing undelivered. */
static void wait_catalog_events_delivered(void)
{
    static char out[8192];
    int64_t end = wall_ms() + 30000;

    while (wall_ms() < end) {
        const char *line;

        assert_int_equal(cleave("bus", "stats", out, sizeof(out)), 0);
        line = strstr(out, "catalog ");
        assert_non_null(line);
        if (strncmp(strstr(line, "outbox_backlog="), "outbox_backlog=0 ", 17) == 0) {
            return;
        }
        nap_ms(50);
    }
    fail_msg("the catalog's events were not delivered within 30 s:\n%s", out);
}

static void test_a_new_product_gets_a_stock_record_with_nothing_on_hand(void **state)
{
    int64_t on_hand = -1, end = wall_ms() + 5000;
    long status = 0;

    (void)state;
    create_product("FIRST-RUN-1");
    while (wall_ms() < end && (status = stock_of("FIRST-RUN-1", &on_hand)) == 404) {
        nap_ms(20);
    }
    assert_int_equal(status, 200);
    assert_int_equal(on_hand, 0);
}

static void test_stock_set_before_the_product_event_is_kept(void **state)
{
    test_resp r = {0};
    int64_t on_hand = -1;

    (void)state;
    /* The PUT creates the SKU's stock first; the catalog's event arrives after it. */
    assert_int_equal(
        test_http(base, "PUT", "/api/v1/inventory/FIRST-RUN-2", "{\"on_hand\":9}", 13, NULL, &r),
        0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    create_product("FIRST-RUN-2");
    wait_catalog_events_delivered();
    assert_int_equal(stock_of("FIRST-RUN-2", &on_hand), 200);
    assert_int_equal(on_hand, 9);
}

static void test_seeded_stock_is_kept_when_the_seed_products_events_arrive(void **state)
{
    int64_t on_hand = -1;

    (void)state;
    /* `cleave seed` stocked every demo SKU before `serve` delivered their product events. */
    wait_catalog_events_delivered();
    assert_int_equal(stock_of("SKU-000003", &on_hand), 200);
    assert_int_equal(on_hand, 5 + (3 * 37) % 100);
    assert_int_equal(stock_of("SKU-001200", &on_hand), 200);
    assert_int_equal(on_hand, 5 + (1200 * 37) % 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First: the walkthrough runs right after start, as a new user would run it. */
        cmocka_unit_test(test_readme_stock_and_accounts_walkthrough_answers_2xx),
        cmocka_unit_test(test_readme_checkout_walkthrough_books_the_order_within_5s),
        cmocka_unit_test(test_readme_tokens_walkthrough_answers_2xx),
        cmocka_unit_test(test_a_new_product_gets_a_stock_record_with_nothing_on_hand),
        cmocka_unit_test(test_stock_set_before_the_product_event_is_kept),
        cmocka_unit_test(test_seeded_stock_is_kept_when_the_seed_products_events_arrive),
    };

    return cmocka_run_group_tests_name("first run", tests, setup, teardown);
}
