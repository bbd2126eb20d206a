/*
 * The data move of docs/extracting-a-module.md, rehearsed: the inventory leaves the
 * monolith for cleave-inventory and comes back, its data moved the way the playbook says
 * (SQLite: `sqlite3 .backup`; PostgreSQL with CL_TEST_DB=postgres: `pg_dump --schema`
 * restored with psql into a database of its own), with messages in flight.
 *
 *  1. The monolith (the real `cleave`, seeded) is filled through the public API: products,
 *     stock, accounts with deposits, checkouts that confirm and some that are rejected,
 *     shipments booked. Everything is read back through the API: the "before".
 *  2. Messages in flight: a product whose catalog.product_created the inventory fails to
 *     handle (CLEAVE_TEST_POISON, retried) blocks the catalog's relay, so a second one stays
 *     in the outbox; the monolith is stopped (SIGTERM) with both undelivered. Started again
 *     with CLEAVE_TEST_CRASH_AT=after-deliver, it handles the first (the inbox has it) and
 *     dies before the outbox learns it: one event handled but to be delivered again, one not
 *     handled at all, when the move begins.
 *  3. The move, literally as the playbook says; then cleave-inventory and the host built
 *     without it (cleave-without-inventory), over NATS. Every record read through the API
 *     equals the "before", the invariants hold, the event in flight is handled once, the one
 *     handled before is not handled again (the inventory's inbox moved with its data), and a
 *     new checkout confirms and ships.
 *  4. The roll-back the same way, and the same checks, with what was written while extracted.
 * No sleeps: every wait polls real state with a deadline.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "client.h"
#include "shop.h"
#include "topology.h"

#include "cleave/util.h"

#define WAIT_MS    60000
#define NPRODUCTS  8
#define NACCOUNTS  6
#define NORDERS    24
#define TOKEN_ENV  "CLEAVE_DEV_SERVICE_TOKEN=data-move-token"
/* The text that makes the inventory's handler fail in the monolith: the first product's SKU. */
#define INFLIGHT_1 "MOVE-INFLIGHT-1"
#define INFLIGHT_2 "MOVE-INFLIGHT-2"

/* Every module of the shop: where each runs is told to every process of the split. */
static const char *const modules[] = {"catalog", "inventory", "orders", "payments", "shipping"};
#define NMODULES ((int)(sizeof(modules) / sizeof(modules[0])))

static topology topo;
static char base[64];       /* the public API now: the monolith's, or the host's */
static test_proc svc, host; /* the extracted phase */
static char svc_dir[512];   /* cleave-inventory's data directory */
static test_db_env svc_db;  /* on PostgreSQL, its database */
static char data_dir[512];  /* the monolith's (and the host's) data directory */

/* What the test set up, for the invariants. */
static struct {
    char sku[NPRODUCTS][16];
    int64_t initial[NPRODUCTS];
    char account[NACCOUNTS][64];
    int64_t deposited[NACCOUNTS];
} world;

/* --- HTTP ------------------------------------------------------------------------------ */

static void req(const char *method, const char *path, const char *body, test_resp *r)
{
    assert_int_equal(test_http(base, method, path, body, body ? strlen(body) : 0, NULL, r), 0);
}

static int64_t num(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* GET path; the body on 200, NULL on 404 (new reference); anything else fails the test. */
static json_t *get_or_null(const char *path)
{
    test_resp r;
    json_t *j = NULL;

    req("GET", path, NULL, &r);
    if (r.status != 200 && r.status != 404) {
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    }
    if (r.status == 200) {
        j = json_incref(r.json);
    }
    test_resp_free(&r);
    return j;
}

/* Sends method path with body and expects status; the answer's JSON (new reference). */
static json_t *call(const char *method, const char *path, const char *body, long status)
{
    json_t *j = test_call(base, method, path, body, status);

    if (j == NULL) {
        fail_msg("%s %s failed", method, path);
    }
    return j;
}

static json_t *get_json(const char *path)
{
    return call("GET", path, NULL, 200);
}

static json_t *stock_of(const char *sku)
{
    char path[96];

    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    return get_or_null(path);
}

/* Every item of a paginated list, or the test fails. New reference: an array. */
static json_t *all_pages(const char *path)
{
    json_t *all = test_list_all(base, path);

    if (all == NULL) {
        fail_msg("cannot list %s", path);
    }
    return all;
}

/* Polls until every order is final; returns them all (new reference). */
static json_t *wait_all_final(void)
{
    json_t *all = test_orders_wait_final(base, WAIT_MS);

    if (all == NULL) {
        fail_msg("the orders did not all end");
    }
    return all;
}

/* Polls until the order's shipment is booked; returns its shipments (new reference). */
static json_t *wait_shipment_booked(const char *order_id)
{
    char path[160];
    int64_t until = cl_now_ms() + WAIT_MS;

    snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", order_id);
    for (;;) {
        json_t *sh = get_json(path);
        json_t *items = json_object_get(sh, "items");

        if (json_array_size(items) == 1 &&
            strcmp(str(json_array_get(items, 0), "status"), "booked") == 0) {
            return sh;
        }
        if (cl_now_ms() > until) {
            fail_msg("order %s: no booked shipment after %d ms: %s", order_id, WAIT_MS,
                     json_dumps(sh, 0));
        }
        json_decref(sh);
        test_poll_pause();
    }
}

/* Polls until the SKU has a stock record (an event opened it); returns it. */
static json_t *wait_stock(const char *sku)
{
    int64_t until = cl_now_ms() + WAIT_MS;

    for (;;) {
        json_t *st = stock_of(sku);

        if (st != NULL) {
            return st;
        }
        if (cl_now_ms() > until) {
            fail_msg("%s has no stock record after %d ms", sku, WAIT_MS);
        }
        test_poll_pause();
    }
}

/* --- processes, commands and databases ------------------------------------------------- */

/* Runs argv[0] (a path) with env; its exit status must be 0. Its output into out[size]. */
static void run_ok(char *const argv[], char *const env[], char *out, size_t size)
{
    int rc = test_run(argv[0], argv, env, out, size);

    if (rc != 0) {
        fail_msg("%s exited %d:\n%s", argv[0], rc, out);
    }
}

/* Runs a bash script with "$1".."$3" = a1..a3 (may be NULL): the playbook's commands as written. */
static void shell(const char *script, const char *a1, const char *a2, const char *a3)
{
    char out[8192];
    char *argv[] = {"/bin/bash", "-euo",     "pipefail", "-c",       (char *)script,
                    "bash",      (char *)a1, (char *)a2, (char *)a3, NULL};

    run_ok(argv, NULL, out, sizeof(out));
}

/*
 * The outbox backlog of every module in `cleave bus stats` on the monolith's data (what the
 * playbook has an operator look at before the stop), into backlog[NMODULES].
 */
static void backlogs(long backlog[])
{
    char bin[512], out[4096], key[64];
    char *env[TOPOLOGY_ENV_MAX];
    char *argv[] = {NULL, "bus", "stats", NULL};

    topology_env(&topo, 0, env);
    argv[0] = (char *)topology_bin("cleave", bin, sizeof(bin));
    run_ok(argv, env, out, sizeof(out));
    for (int m = 0; m < NMODULES; m++) {
        const char *p;

        snprintf(key, sizeof(key), "\n%s ", modules[m]);
        p = strstr(out, key);
        p = p != NULL ? strstr(p, "outbox_backlog=") : NULL;
        backlog[m] = p != NULL ? strtol(p + strlen("outbox_backlog="), NULL, 10) : -1;
        if (p == NULL) {
            fail_msg("no backlog of %s in:\n%s", modules[m], out);
        }
    }
}

/* Polls `cleave bus stats` until no module has anything left to deliver. */
static void wait_no_backlog(void)
{
    int64_t until = cl_now_ms() + WAIT_MS;
    long backlog[NMODULES];

    for (;;) {
        long total = 0;

        backlogs(backlog);
        for (int m = 0; m < NMODULES; m++) {
            total += backlog[m];
        }
        if (total == 0) {
            return;
        }
        if (cl_now_ms() > until) {
            fail_msg("%ld events still undelivered after %d ms", total, WAIT_MS);
        }
        test_poll_pause();
    }
}

/*
 * The first column of every row of sql (one text parameter, may be NULL) in module's
 * database, joined with ',' into out[size]: read directly, for what the API does not show
 * (outbox and inbox). dir and admin_url as test_module_db_open.
 */
static void db_rows(const char *dir, const char *admin_url, const char *module, const char *sql,
                    const char *param, char *out, size_t size)
{
    cl_error err = {0};
    cl_db *db = NULL;
    cl_db_conn *conn = NULL;
    cl_stmt *st = NULL;
    bool row = false;

    out[0] = '\0';
    if (test_module_db_open(dir, admin_url, module, &db, &err) != CL_OK ||
        cl_db_acquire(db, NULL, &conn, &err) != CL_OK ||
        cl_db_prepare(conn, sql, &st, &err) != CL_OK ||
        (param != NULL && cl_stmt_bind_text(st, 1, param, &err) != CL_OK) ||
        cl_stmt_step(st, &row, &err) != CL_OK) {
        fail_msg("reading %s's database: %s", module, err.message);
    }
    while (row) {
        const char *v = cl_stmt_text(st, 0);

        snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? "," : "", v ? v : "");
        if (cl_stmt_step(st, &row, &err) != CL_OK) {
            fail_msg("reading %s's database: %s", module, err.message);
        }
    }
    cl_db_release(conn);
    cl_db_close(db);
}

static const char undelivered_sql[] =
    "SELECT id FROM cl_outbox WHERE delivered_ms IS NULL ORDER BY seq";
static const char inbox_count_sql[] = "SELECT count(*) FROM cl_inbox";
static const char inbox_row_sql[] =
    "SELECT message_id || ' ' || type || ' ' || source || ' ' || handled_at FROM cl_inbox "
    "WHERE message_id = ?";

/* Starts `<name> serve` with env on the port in its CLEAVE_LISTEN; fails the test otherwise. */
static void serve(test_proc *p, const char *name, char *const env[], int port)
{
    char bin[512], log[600];
    char *argv[] = {(char *)name, "serve", NULL};

    snprintf(log, sizeof(log), "%s/%s.log", topo.dir, name);
    assert_int_equal(test_proc_start(p, topology_bin(name, bin, sizeof(bin)), argv, env, log), 0);
    if (test_proc_wait_port(p, 30000) != port) {
        fail_msg("%s serve did not start on port %d; see %s", name, port, log);
    }
}

/* Waits until the process's log contains text; fails after WAIT_MS. */
static void wait_log(const test_proc *p, const char *text)
{
    int64_t until = cl_now_ms() + WAIT_MS;

    for (;;) {
        FILE *f = fopen(p->log_path, "r");
        char line[4096];
        int found = 0;

        while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
            found = strstr(line, text) != NULL;
        }
        if (f != NULL) {
            fclose(f);
        }
        if (found) {
            return;
        }
        if (cl_now_ms() > until) {
            fail_msg("%s never logged \"%s\"", p->log_path, text);
        }
        test_poll_pause();
    }
}

static int on_postgres(void)
{
    return topo.db.admin_url[0] != '\0';
}

/* --- the fill --------------------------------------------------------------------------- */

static void create_product(const char *sku, const char *name, int64_t price, const char *category)
{
    char body[512];

    snprintf(body, sizeof(body),
             "{\"sku\":\"%s\",\"name\":\"%s\",\"price\":{\"amount\":%lld,\"currency\":\"EUR\"},"
             "\"category\":\"%s\"}",
             sku, name, (long long)price, category);
    json_decref(call("POST", "/api/v1/products", body, 201));
}

static void set_stock(const char *sku, int64_t on_hand)
{
    char path[96], body[64];

    snprintf(path, sizeof(path), "/api/v1/inventory/%s", sku);
    snprintf(body, sizeof(body), "{\"on_hand\":%lld}", (long long)on_hand);
    json_decref(call("PUT", path, body, 200));
}

/* POSTs an order of qty of sku for account; its id into id[64]. */
static void place(const char *account, const char *sku, int64_t qty, char id[64])
{
    char body[512];
    json_t *o;

    snprintf(body, sizeof(body),
             "{\"account_id\":\"%s\",\"lines\":[{\"sku\":\"%s\",\"quantity\":%lld}]}", account, sku,
             (long long)qty);
    o = call("POST", "/api/v1/orders", body, 202);
    snprintf(id, 64, "%s", str(o, "id"));
    json_decref(o);
}

static void fill(void)
{
    json_t *cats = get_json("/api/v1/categories"), *orders, *o;
    const char *category = str(json_array_get(json_object_get(cats, "items"), 0), "id");
    char body[256], path[128], id[64];
    size_t i;
    int confirmed = 0, rejected = 0;

    assert_non_null(category);
    for (int p = 0; p < NPRODUCTS; p++) {
        snprintf(world.sku[p], sizeof(world.sku[p]), "MOVE-%06d", p + 1);
        snprintf(body, sizeof(body), "Moved thing %d", p + 1);
        create_product(world.sku[p], body, 1000 + 250 * p, category);
        world.initial[p] = 4 + p;
        set_stock(world.sku[p], world.initial[p]);
    }
    json_decref(cats);
    for (int a = 0; a < NACCOUNTS; a++) {
        json_t *acc;

        /* The last account cannot pay for anything: its orders are rejected. */
        world.deposited[a] = a == NACCOUNTS - 1 ? 300 : 40000 + 1000 * a;
        snprintf(body, sizeof(body), "{\"owner\":\"Mover %d\",\"currency\":\"EUR\"}", a);
        acc = call("POST", "/api/v1/accounts", body, 201);
        snprintf(world.account[a], sizeof(world.account[a]), "%s", str(acc, "id"));
        json_decref(acc);
        snprintf(path, sizeof(path), "/api/v1/accounts/%s/deposits", world.account[a]);
        snprintf(body, sizeof(body), "{\"amount\":{\"amount\":%lld,\"currency\":\"EUR\"}}",
                 (long long)world.deposited[a]);
        json_decref(call("POST", path, body, 200));
    }
    /* More is asked of some SKUs than they hold: those orders are rejected out of stock. */
    for (int k = 0; k < NORDERS; k++) {
        place(world.account[k % NACCOUNTS], world.sku[k % NPRODUCTS], 1 + k % 3, id);
    }
    orders = wait_all_final();
    json_array_foreach (orders, i, o) {
        if (strcmp(str(o, "status"), "confirmed") == 0) {
            confirmed++;
            json_decref(wait_shipment_booked(str(o, "id")));
        } else {
            rejected++;
        }
    }
    json_decref(orders);
    /* The fill must hold both kinds, or the rehearsal compares less than it claims. */
    assert_true(confirmed >= 5);
    assert_true(rejected >= 3);
}

/* --- snapshots and invariants ------------------------------------------------------------ */

/* Readers of the stock records in parallel: a snapshot reads every product's. */
#define READERS 4

typedef struct stock_reader {
    pthread_t thread;
    json_t *products; /* borrowed: the catalog */
    json_t **stock;   /* stock[i]: product i's record, or NULL when it could not be read */
    size_t first, step;
} stock_reader;

static void *read_stock(void *arg)
{
    stock_reader *r = arg;
    char path[128];

    for (size_t i = r->first; i < json_array_size(r->products); i += r->step) {
        snprintf(path, sizeof(path), "/api/v1/inventory/%s",
                 str(json_array_get(r->products, i), "sku"));
        r->stock[i] = test_call(base, "GET", path, NULL, 200);
    }
    test_http_thread_done();
    return NULL;
}

/*
 * Everything the API shows of what the move touches, keyed for comparison: the stock of
 * every product in the catalog, every order, the test's accounts (and the seed's "demo"),
 * the shipments of every order. New reference.
 */
static json_t *snapshot(void)
{
    json_t *snap = json_pack("{s:o,s:o,s:o,s:o}", "stock", json_object(), "orders", json_object(),
                             "accounts", json_object(), "shipments", json_object());
    json_t *products = all_pages("/api/v1/products?limit=100");
    json_t *orders = wait_all_final(), *o;
    json_t **stock = calloc(json_array_size(products) + 1, sizeof(*stock));
    stock_reader readers[READERS];
    char path[160];
    size_t i;

    assert_non_null(stock);
    for (int k = 0; k < READERS; k++) {
        readers[k] = (stock_reader){
            .products = products, .stock = stock, .first = (size_t)k, .step = READERS};
        assert_int_equal(pthread_create(&readers[k].thread, NULL, read_stock, &readers[k]), 0);
    }
    for (int k = 0; k < READERS; k++) {
        pthread_join(readers[k].thread, NULL);
    }
    json_array_foreach (products, i, o) {
        if (stock[i] == NULL) {
            fail_msg("product %s has no stock record", str(o, "sku"));
        }
        json_object_set_new(json_object_get(snap, "stock"), str(o, "sku"), stock[i]);
    }
    free(stock);
    json_array_foreach (orders, i, o) {
        json_object_set(json_object_get(snap, "orders"), str(o, "id"), o);
        snprintf(path, sizeof(path), "/api/v1/shipments?order=order:%s", str(o, "id"));
        json_object_set_new(json_object_get(snap, "shipments"), str(o, "id"), get_json(path));
    }
    for (int a = 0; a <= NACCOUNTS; a++) {
        const char *id = a < NACCOUNTS ? world.account[a] : "demo";

        snprintf(path, sizeof(path), "/api/v1/accounts/%s?history_limit=100", id);
        json_object_set_new(json_object_get(snap, "accounts"), id, get_json(path));
    }
    json_decref(products);
    json_decref(orders);
    return snap;
}

/*
 * Every record of want equals the one in got, field for field (updated_at included: the
 * data moved, nothing rewrote it); got has exactly want's keys plus the ones in extra.
 * Prints and returns the number of records compared.
 */
static size_t compare_kind(json_t *want, json_t *got, const char *kind, const char *const *extra)
{
    json_t *w = json_object_get(want, kind), *g = json_object_get(got, kind), *v;
    const char *key;
    size_t n = 0, nextra = 0;

    json_object_foreach (w, key, v) {
        json_t *other = json_object_get(g, key);

        if (other == NULL || !json_equal(v, other)) {
            char *a = json_dumps(v, JSON_SORT_KEYS), *b = json_dumps(other, JSON_SORT_KEYS);

            fail_msg("%s %s changed:\nbefore %s\nafter  %s", kind, key, a, b ? b : "(missing)");
        }
        n++;
    }
    for (; extra != NULL && extra[nextra] != NULL; nextra++) {
        assert_non_null(json_object_get(g, extra[nextra]));
        assert_null(json_object_get(w, extra[nextra]));
    }
    assert_int_equal(json_object_size(g), n + nextra);
    return n;
}

/* Compares two snapshots and prints the counts compared. */
static void compare(json_t *want, json_t *got, const char *when, const char *const *new_skus)
{
    size_t s = compare_kind(want, got, "stock", new_skus);
    size_t o = compare_kind(want, got, "orders", NULL);
    size_t a = compare_kind(want, got, "accounts", NULL);
    size_t h = 0, extra = 0;
    const char *key;
    json_t *v;

    (void)compare_kind(want, got, "shipments", NULL);
    json_object_foreach (json_object_get(want, "shipments"), key, v) {
        h += json_array_size(json_object_get(v, "items"));
    }
    while (new_skus != NULL && new_skus[extra] != NULL) {
        extra++;
    }
    printf("%s: compared %zu stock records (and %zu new), %zu orders, %zu accounts, %zu "
           "shipments: all equal\n",
           when, s, extra, o, a, h);
}

/*
 * The invariants, through the public API: for the test's SKUs available + reserved + sold =
 * the stock set, nothing reserved, sold = what confirmed orders bought; for its accounts
 * nothing held, and deposits - available = what confirmed orders cost; a shipment booked for
 * every confirmed order, none for a rejected one.
 */
static void assert_invariants(json_t *snap)
{
    json_t *orders = json_object_get(snap, "orders"), *o;
    const char *key;

    for (int s = 0; s < NPRODUCTS; s++) {
        json_t *st = json_object_get(json_object_get(snap, "stock"), world.sku[s]);
        int64_t bought = test_confirmed_quantity(orders, world.sku[s]);

        assert_int_equal(num(st, "available") + num(st, "reserved") + num(st, "sold"),
                         world.initial[s]);
        assert_int_equal(num(st, "reserved"), 0);
        assert_int_equal(num(st, "sold"), bought);
    }
    for (int a = 0; a < NACCOUNTS; a++) {
        json_t *acc = json_object_get(json_object_get(snap, "accounts"), world.account[a]);
        int64_t spent = 0;

        json_object_foreach (orders, key, o) {
            if (strcmp(str(o, "account_id"), world.account[a]) == 0 &&
                strcmp(str(o, "status"), "confirmed") == 0) {
                spent += num(json_object_get(o, "total"), "amount");
            }
        }
        assert_int_equal(num(json_object_get(acc, "held"), "amount"), 0);
        assert_int_equal(world.deposited[a] - num(json_object_get(acc, "available"), "amount"),
                         spent);
    }
    json_object_foreach (orders, key, o) {
        json_t *items =
            json_object_get(json_object_get(json_object_get(snap, "shipments"), key), "items");

        if (strcmp(str(o, "status"), "confirmed") == 0) {
            assert_int_equal(json_array_size(items), 1);
            assert_string_equal(str(json_array_get(items, 0), "status"), "booked");
        } else {
            assert_int_equal(json_array_size(items), 0);
        }
    }
}

/* A new checkout confirms and its shipment is booked: the system keeps working. */
static void checkout_confirms_and_ships(int account, int sku)
{
    char id[64], path[128];
    json_t *o, *sh;
    int64_t until = cl_now_ms() + WAIT_MS;

    place(world.account[account], world.sku[sku], 1, id);
    snprintf(path, sizeof(path), "/api/v1/orders/%s", id);
    for (o = get_json(path); !test_order_is_final(str(o, "status")); o = get_json(path)) {
        if (cl_now_ms() > until) {
            fail_msg("order %s not final after %d ms", id, WAIT_MS);
        }
        json_decref(o);
        test_poll_pause();
    }
    assert_string_equal(str(o, "status"), "confirmed");
    json_decref(o);
    sh = wait_shipment_booked(id);
    json_decref(sh);
}

/* --- the move --------------------------------------------------------------------------- */

/* The monolith's inventory data into cleave-inventory's (playbook, step "Move the data"). */
static void move_out(void)
{
    if (!on_postgres()) {
        char from[600], to[600], aside[600];

        snprintf(from, sizeof(from), "%s/inventory.db", data_dir);
        snprintf(to, sizeof(to), "%s/inventory.db", svc_dir);
        snprintf(aside, sizeof(aside), "%s/inventory.db.moved", data_dir);
        shell("mkdir -p \"$(dirname \"$2\")\" && sqlite3 \"$1\" \".backup '$2'\" && "
              "mv \"$1\" \"$3\" && rm -f \"$1-wal\" \"$1-shm\"",
              from, to, aside);
        return;
    }
    /* A database of its own for the inventory, on the same cluster (the roles are there). */
    assert_int_equal(test_db_env_open(&svc_db, 0), 0);
    shell("pg_dump --schema=inventory \"$1\" | psql -q -v ON_ERROR_STOP=1 -d \"$2\" >/dev/null && "
          "psql -q -v ON_ERROR_STOP=1 -d \"$1\" -c 'ALTER SCHEMA inventory RENAME TO "
          "inventory_moved' >/dev/null",
          topo.db.admin_url, svc_db.admin_url, NULL);
    /* `cleave-inventory migrate` as an admin: grants on the new database, nothing to apply. */
    {
        char bin[512], out[8192], dir_env[600];
        char *env[] = {dir_env, topo.migrations_env, svc_db.url_env, svc_db.admin_env, NULL};
        char *argv[] = {NULL, "migrate", NULL};

        snprintf(dir_env, sizeof(dir_env), "CLEAVE_DATA_DIR=%s", svc_dir);
        argv[0] = (char *)topology_bin("cleave-inventory", bin, sizeof(bin));
        run_ok(argv, env, out, sizeof(out));
    }
}

/* Back into the monolith's data, the same way (playbook, "Roll back"). */
static void move_back(void)
{
    if (!on_postgres()) {
        char from[600], to[600];

        snprintf(from, sizeof(from), "%s/inventory.db", svc_dir);
        snprintf(to, sizeof(to), "%s/inventory.db", data_dir);
        shell("sqlite3 \"$1\" \".backup '$2'\" && rm -f \"$2.moved\"", from, to, NULL);
        return;
    }
    shell("psql -q -v ON_ERROR_STOP=1 -d \"$2\" -c 'DROP SCHEMA inventory_moved CASCADE' "
          ">/dev/null && pg_dump --schema=inventory \"$1\" | "
          "psql -q -v ON_ERROR_STOP=1 -d \"$2\" >/dev/null",
          svc_db.admin_url, topo.db.admin_url, NULL);
    /* The monolith reads from the replica: the schema must be there first. */
    assert_int_equal(pgtest_wait_replica(&topo.db.pg, 30000), 0);
}

/*
 * cleave-inventory on its data, then the host built without the inventory on the
 * monolith's, both over NATS and told where every module runs; base becomes the host's.
 */
static void start_extracted(void)
{
    char urls[NMODULES][96], svc_listen[64], host_listen[64], svc_data[600];
    char *env[TOPOLOGY_ENV_MAX + 8];
    int svc_port = test_free_port(), host_port = test_free_port(), n = 0;

    assert_true(svc_port > 0 && host_port > 0 && svc_port != host_port);
    /*
     * The split's bus, as a split topology gets it; the topology keeps (and closes) it, and
     * restarts the monolith with it from now on.
     */
    if (topo.nats.env[0] == '\0') {
        assert_int_equal(test_nats_open(&topo.nats, topo.dir), 0);
    }
    for (int i = 0; i < NMODULES; i++) {
        char upper[16];
        size_t k = 0;

        for (; modules[i][k] != '\0'; k++) {
            upper[k] = (char)(modules[i][k] - 'a' + 'A');
        }
        upper[k] = '\0';
        snprintf(urls[i], sizeof(urls[i]), "CLEAVE_%s_URL=http://127.0.0.1:%d", upper,
                 strcmp(modules[i], "inventory") == 0 ? svc_port : host_port);
    }
    snprintf(svc_listen, sizeof(svc_listen), "CLEAVE_LISTEN=127.0.0.1:%d", svc_port);
    snprintf(host_listen, sizeof(host_listen), "CLEAVE_LISTEN=127.0.0.1:%d", host_port);
    snprintf(svc_data, sizeof(svc_data), "CLEAVE_DATA_DIR=%s", svc_dir);

    /*
     * One handler thread: the event handled before the move (redelivered first, it is older)
     * is behind the one in flight in the same queue, so the second's record proves the first
     * was seen.
     */
    env[n++] = svc_data;
    env[n++] = topo.migrations_env;
    env[n++] = svc_listen;
    env[n++] = TOKEN_ENV;
    env[n++] = TOPOLOGY_ISSUER_ENV;
    env[n++] = topo.nats.env;
    env[n++] = "CLEAVE_BUS_WORKERS=1";
    for (int i = 0; i < NMODULES; i++) {
        env[n++] = urls[i];
    }
    (void)test_db_env_add(&svc_db, env, n, 0);
    serve(&svc, "cleave-inventory", env, svc_port);

    n = 0;
    env[n++] = topo.data_env;
    env[n++] = topo.migrations_env;
    env[n++] = host_listen;
    env[n++] = TOKEN_ENV;
    env[n++] = TOPOLOGY_ISSUER_ENV;
    env[n++] = topo.nats.env;
    for (int i = 0; i < NMODULES; i++) {
        env[n++] = urls[i];
    }
    (void)topology_db_env(&topo, env, n, 0);
    serve(&host, "cleave-without-inventory", env, host_port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", host_port);
}

/*
 * The monolith again on its data; since start_extracted it has CLEAVE_NATS_URL, as the
 * playbook rolls back: what JetStream acknowledged but nobody consumed yet is taken there.
 */
static void restart_monolith(char *const extra[])
{
    assert_int_equal(topology_restart_gateway(&topo, extra), 0);
    snprintf(base, sizeof(base), "%s", topo.base_url);
}

/* --- the rehearsal ---------------------------------------------------------------------- */

/* Prints how long the phase that ends took, for the note on the suite's time. */
static void phase_done(const char *phase)
{
    static int64_t last;
    int64_t now = cl_now_ms();

    if (last != 0 && phase != NULL) {
        printf("  %s: %lld ms\n", phase, (long long)(now - last));
    }
    last = now;
}

static void test_inventory_moves_out_and_back(void **state)
{
    char *const poisoned[] = {"CLEAVE_TEST_POISON=" INFLIGHT_1, "CLEAVE_BUS_MAX_ATTEMPTS=100",
                              NULL};
    /*
     * One handler thread: both events are claimed together at start and queue in order, so
     * the first is handled and the process dies before the second is.
     */
    char *const crash[] = {"CLEAVE_TEST_CRASH_AT=after-deliver", "CLEAVE_BUS_WORKERS=1", NULL};
    static const char *const inflight[] = {INFLIGHT_1, INFLIGHT_2, NULL};
    char pending[256], id1[128], id2[128], handled_1[512], row[512], count_before[32], count[32];
    char category[64];
    const char *comma;
    long backlog[NMODULES];
    json_t *before, *after, *extracted, *back, *st;
    int64_t started = cl_now_ms();

    (void)state;
    phase_done(NULL);
    /* 1. The monolith, seeded and filled; the "before". */
    assert_int_equal(topology_start_with(&topo, "monolith", TOPOLOGY_SEED_DEMO, poisoned), 0);
    snprintf(base, sizeof(base), "%s", topo.base_url);
    assert_true(
        cl_strlcpy(data_dir, topo.data_env + strlen("CLEAVE_DATA_DIR="), sizeof(data_dir)) == 0);
    snprintf(svc_dir, sizeof(svc_dir), "%s/inventory-data", topo.dir);
    fill();
    phase_done("start and fill");
    wait_no_backlog();
    before = snapshot();
    assert_invariants(before);
    phase_done("snapshot");

    /* 2. In flight: the first product's event keeps failing, the second waits behind it. */
    {
        json_t *cats = get_json("/api/v1/categories");

        snprintf(category, sizeof(category), "%s",
                 str(json_array_get(json_object_get(cats, "items"), 0), "id"));
        json_decref(cats);
    }
    create_product(INFLIGHT_1, "In flight one", 1500, category);
    wait_log(&topo.procs[topo.gateway_slot], "handling catalog.product_created failed");
    create_product(INFLIGHT_2, "In flight two", 1500, category);
    backlogs(backlog);
    for (int m = 0; m < NMODULES; m++) {
        assert_int_equal(backlog[m], strcmp(modules[m], "catalog") == 0 ? 2 : 0);
    }
    /* Playbook step 1: stop the monolith (SIGTERM). */
    assert_int_equal(test_proc_stop(&topo.procs[topo.gateway_slot], SIGTERM), 0);
    db_rows(data_dir, topo.db.admin_url, "catalog", undelivered_sql, NULL, pending,
            sizeof(pending));
    comma = strchr(pending, ',');
    assert_non_null(comma);
    snprintf(id1, sizeof(id1), "%.*s", (int)(comma - pending), pending);
    snprintf(id2, sizeof(id2), "%s", comma + 1);
    /* Started again, it handles the first and dies before the outbox records the delivery. */
    printf("the monolith is started to die after its first delivery (CLEAVE_TEST_CRASH_AT): "
           "it may not get to serve\n");
    (void)topology_restart_gateway(&topo, crash);
    assert_int_equal(topology_gateway_wait_exit(&topo, WAIT_MS), 128 + SIGKILL);
    wait_log(&topo.procs[topo.gateway_slot], "CLEAVE_TEST_CRASH_AT: killing the process");
    db_rows(data_dir, topo.db.admin_url, "catalog", undelivered_sql, NULL, row, sizeof(row));
    assert_string_equal(row, pending);
    db_rows(data_dir, topo.db.admin_url, "inventory", inbox_row_sql, id1, handled_1,
            sizeof(handled_1));
    assert_true(strstr(handled_1, "catalog.product_created") != NULL);
    db_rows(data_dir, topo.db.admin_url, "inventory", inbox_row_sql, id2, row, sizeof(row));
    assert_string_equal(row, "");
    db_rows(data_dir, topo.db.admin_url, "inventory", inbox_count_sql, NULL, count_before,
            sizeof(count_before));

    phase_done("messages in flight");
    /* 3. The move, then the split deployment. */
    move_out();
    start_extracted();
    phase_done("move and start the split");
    /* The event in flight reaches cleave-inventory: the record opens, once. */
    st = wait_stock(INFLIGHT_2);
    assert_int_equal(num(st, "on_hand") + num(st, "reserved") + num(st, "sold"), 0);
    json_decref(st);
    after = snapshot();
    compare(before, after, "after the move", inflight);
    assert_invariants(after);
    phase_done("snapshot");
    /* The host's catalog relayed both again; the inbox that moved skipped the first. */
    db_rows(data_dir, topo.db.admin_url, "catalog", undelivered_sql, NULL, row, sizeof(row));
    assert_string_equal(row, "");
    db_rows(svc_dir, svc_db.admin_url, "inventory", inbox_row_sql, id1, row, sizeof(row));
    assert_string_equal(row, handled_1);
    db_rows(svc_dir, svc_db.admin_url, "inventory", inbox_row_sql, id2, row, sizeof(row));
    assert_true(strstr(row, "catalog.product_created") != NULL);
    db_rows(svc_dir, svc_db.admin_url, "inventory", inbox_count_sql, NULL, count, sizeof(count));
    assert_int_equal(strtol(count, NULL, 10), strtol(count_before, NULL, 10) + 1);
    printf("in flight: 1 event handled before the move skipped after it, 1 handled after it; "
           "inbox %s -> %s\n",
           count_before, count);
    /* The split keeps working: a stock write, a checkout that confirms and ships. */
    set_stock(INFLIGHT_1, 3);
    checkout_confirms_and_ships(0, NPRODUCTS - 1);
    phase_done("checkout while extracted");
    extracted = snapshot();
    assert_invariants(extracted);
    phase_done("snapshot");

    /* 4. Roll back the same way: stop both, data back, the monolith. */
    assert_int_equal(test_proc_stop(&host, SIGTERM), 0);
    assert_int_equal(test_proc_stop(&svc, SIGTERM), 0);
    move_back();
    restart_monolith(NULL);
    phase_done("roll back");
    back = snapshot();
    compare(extracted, back, "after the roll-back", NULL);
    assert_invariants(back);
    phase_done("snapshot");
    checkout_confirms_and_ships(1, NPRODUCTS - 2);
    phase_done("checkout after the roll-back");
    printf("the rehearsal took %lld ms\n", (long long)(cl_now_ms() - started));

    json_decref(before);
    json_decref(after);
    json_decref(extracted);
    json_decref(back);
}

static int teardown(void **state)
{
    (void)state;
    if (host.pid > 0) {
        test_proc_stop(&host, SIGTERM);
    }
    if (svc.pid > 0) {
        test_proc_stop(&svc, SIGTERM);
    }
    test_db_env_close(&svc_db);
    return topology_stop(&topo) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_inventory_moves_out_and_back, teardown),
    };

    return cmocka_run_group_tests_name(pgtest_enabled() ? "data_move_pg" : "data_move_sqlite",
                                       tests, NULL, NULL);
}
