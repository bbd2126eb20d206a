/*
 * get_order's wait (wait_ms; "Prefer: wait" on HTTP) on an order whose saga is in flight in
 * this process: the order is read once, when the saga has ended, not also before the wait
 * (that read could only say "pending"). White-box, on a world of local modules (world.h) on
 * SQLite, whose read transactions the counting VFS counts per thread: the saga is held at
 * its first step (reserve) by a write transaction the test keeps open on the inventory's
 * database, and let go once the waiting call is registered with the executor (internal.h).
 * A caller who may not see the order is answered at once, as for an order that does not
 * exist, without waiting for the saga.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "internal.h"
#include "sqlite_counting.h"
#include "world.h"

#define CALL_TIMEOUT_MS 30000
#define OWNER           "user:waits"
#define RECHECK_MS      100 /* orders.c: a waiting get_order reads again at least this often */

static orders_world wo;
static orders_contract_world w;

/* A caller who may act only on what it owns, as the gateway marks a customer. */
static cl_ctx own_ctx(const char *principal)
{
    cl_ctx ctx;

    cl_ctx_init(&ctx, CALL_TIMEOUT_MS);
    cl_strlcpy(ctx.principal, principal, sizeof(ctx.principal));
    ctx.own_only = 1;
    return ctx;
}

/* What the waiting caller got, on its own thread. */
typedef struct waiting {
    pthread_t thread;
    char id[64];
    orders_order o;
    cl_status rc;
    int reads;       /* read transactions this thread began in the call */
    int64_t elapsed; /* ms the call took */
} waiting;

static void *wait_for_order(void *arg)
{
    waiting *g = arg;
    orders_order_ref ref = {.id = g->id, .wait_ms = 20000};
    cl_ctx ctx = own_ctx(OWNER);
    int reads = sqlite_counted_read_locks_here;
    int64_t start = cl_now_ms();

    g->rc = orders_get_order(w.orders, &ctx, &ref, &g->o);
    g->reads = sqlite_counted_read_locks_here - reads;
    g->elapsed = cl_now_ms() - start;
    return NULL;
}

/* Whether a get_order call waits on order id's saga in the executor. */
static bool someone_waits(const char *id)
{
    orders__executor *x = &((struct orders_self *)w.orders->self)->saga;
    bool found = false;

    pthread_mutex_lock(&x->mu);
    for (const orders__waiter *p = x->waiters; p != NULL; p = p->next) {
        found = found || strcmp(p->id, id) == 0;
    }
    pthread_mutex_unlock(&x->mu);
    return found;
}

static void setup_shop(void)
{
    catalog_category_list cats = {0};
    catalog_product_input in = {.sku = "WT-1", .name = "Waited for", .price = {250, "EUR"}};
    catalog_product p = {0};
    inventory_stock_set set = {.sku = "WT-1", .on_hand = 50};
    inventory_stock s = {0};
    payments_account_input acc = {.id = "wt-acc", .owner = "Waits", .currency = "EUR"};
    payments_deposit_request dep = {.account_id = "wt-acc", .amount = {10000, "EUR"}};
    payments_account a = {0};
    cl_empty none = {0};
    cl_ctx ctx; /* staff: sets up the catalog and the stock */
    cl_ctx own = own_ctx(OWNER);

    cl_ctx_init(&ctx, CALL_TIMEOUT_MS);
    assert_int_equal(catalog_list_categories(w.catalog, &ctx, &none, &cats), CL_OK);
    assert_true(cats.items.n > 0);
    in.category = cats.items.v[0].id;
    assert_int_equal(catalog_create_product(w.catalog, &ctx, &in, &p), CL_OK);
    assert_int_equal(inventory_set_stock(w.inventory, &ctx, &set, &s), CL_OK);
    assert_int_equal(payments_open_account(w.payments, &own, &acc, &a), CL_OK);
    cl_schema_free(&payments_account_type, &a);
    assert_int_equal(payments_deposit(w.payments, &own, &dep, &a), CL_OK);
    cl_schema_free(&payments_account_type, &a);
    cl_schema_free(&inventory_stock_type, &s);
    cl_schema_free(&catalog_product_type, &p);
    cl_schema_free(&catalog_category_list_type, &cats);
}

static void test_a_wait_on_a_saga_in_flight_reads_the_order_once(void **state)
{
    orders_line_input line = {.sku = "WT-1", .quantity = 1};
    orders_order_input in = {.account_id = "wt-acc", .lines = {.v = &line, .n = 1}};
    orders_order placed = {0}, other = {0};
    orders_order_ref ref = {.wait_ms = 20000};
    cl_ctx own = own_ctx(OWNER), stranger = own_ctx("user:someone-else");
    cl_db_conn *held = NULL;
    cl_error err = {0};
    waiting g = {0};
    int reads;

    (void)state;
    /* The saga's reserve waits for the inventory's writer, which this holds. */
    assert_int_equal(cl_db_acquire(wo.locals[WORLD_INVENTORY].db, NULL, &held, &err), CL_OK);
    assert_int_equal(cl_db_begin(held, &err), CL_OK);
    assert_int_equal(orders_place_order(w.orders, &own, &in, &placed), CL_OK);
    assert_string_equal(placed.status, "pending");

    /* Not the stranger's order: not found at once, with one read, the saga still held. */
    ref.id = placed.id;
    reads = sqlite_counted_read_locks_here;
    assert_int_equal(orders_get_order(w.orders, &stranger, &ref, &other), CL_NOT_FOUND);
    assert_int_equal(sqlite_counted_read_locks_here - reads, 1);

    cl_strlcpy(g.id, placed.id, sizeof(g.id));
    assert_int_equal(pthread_create(&g.thread, NULL, wait_for_order, &g), 0);
    for (int64_t end = cl_now_ms() + CALL_TIMEOUT_MS; !someone_waits(placed.id);) {
        struct timespec pause = {0, 1000000L};

        assert_true(cl_now_ms() < end);
        nanosleep(&pause, NULL);
    }
    assert_int_equal(cl_db_commit(held, &err), CL_OK);
    cl_db_release(held);
    assert_int_equal(pthread_join(g.thread, NULL), 0);

    assert_int_equal(g.rc, CL_OK);
    assert_string_equal(g.o.status, "confirmed");
    /*
     * One read when the saga ended, and one more per RECHECK_MS the saga outlasted under a
     * loaded machine; reading first as well, it was 2 (+1 per RECHECK_MS).
     */
    assert_in_range(g.reads, 1, 1 + g.elapsed / RECHECK_MS);
    cl_schema_free(&orders_order_type, &g.o);
    cl_schema_free(&orders_order_type, &placed);
}

/* The steps of o's history with their outcomes: "place ok,reserve ok,...". */
static void history_of(const orders_order *o, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < o->history.n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s %s", i > 0 ? "," : "", o->history.v[i].step,
                 o->history.v[i].outcome);
    }
}

/* How many sagas run on their placers' threads now. */
static int running_here(void)
{
    orders__executor *x = &((struct orders_self *)w.orders->self)->saga;
    int n;

    pthread_mutex_lock(&x->mu);
    n = x->running_here;
    pthread_mutex_unlock(&x->mu);
    return n;
}

/*
 * A placer that will wait (ctx.wait_ms, as "Prefer: wait" sets it) gets the order as its
 * saga ended: the saga ran on its thread before place_order answered, which, queued for a
 * worker, answers the order as placed (pending).
 */
static void test_a_placer_that_waits_gets_the_end_of_its_saga(void **state)
{
    orders_line_input line = {.sku = "WT-1", .quantity = 1};
    orders_order_input in = {.account_id = "wt-acc", .lines = {.v = &line, .n = 1}};
    orders_order o = {0};
    cl_ctx own = own_ctx(OWNER);
    char steps[512];

    (void)state;
    own.wait_ms = 10000;
    assert_int_equal(orders_place_order(w.orders, &own, &in, &o), CL_OK);
    assert_string_equal(o.status, "confirmed");
    history_of(&o, steps, sizeof(steps));
    assert_string_equal(steps, "place ok,reserve ok,authorize ok,commit ok,capture ok,confirm ok");
    assert_int_equal(running_here(), 0);
    cl_schema_free(&orders_order_type, &o);
}

/*
 * A saga begun on its placer's thread that must retry a step is handed to a worker there,
 * and the placer is answered (pending) without waiting for the retries: the worker goes on
 * from the step recorded, at once, not when the lease lapses (30 s, past the wait below).
 */
static void test_a_saga_that_must_retry_goes_on_in_a_worker(void **state)
{
    orders_line_input line = {.sku = "WT-1", .quantity = 1};
    orders_order_input in = {.account_id = "wt-acc", .lines = {.v = &line, .n = 1}};
    orders_order placed = {0}, o = {0};
    orders_order_ref ref = {.wait_ms = 20000};
    cl_ctx own = own_ctx(OWNER), get = own_ctx(OWNER);
    cl_db_conn *held = NULL;
    cl_error err = {0};
    char steps[512];

    (void)state;
    /* reserve waits for the inventory's writer, held here past its 2 s of waiting. */
    assert_int_equal(cl_db_acquire(wo.locals[WORLD_INVENTORY].db, NULL, &held, &err), CL_OK);
    assert_int_equal(cl_db_begin(held, &err), CL_OK);
    own.wait_ms = 10000;
    assert_int_equal(orders_place_order(w.orders, &own, &in, &placed), CL_OK);
    assert_string_equal(placed.status, "pending");
    assert_int_equal(running_here(), 0);
    assert_int_equal(cl_db_commit(held, &err), CL_OK);
    cl_db_release(held);

    ref.id = placed.id;
    assert_int_equal(orders_get_order(w.orders, &get, &ref, &o), CL_OK);
    assert_string_equal(o.status, "confirmed");
    history_of(&o, steps, sizeof(steps));
    assert_string_equal(steps, "place ok,reserve retrying,reserve ok,authorize ok,commit ok,"
                               "capture ok,confirm ok");
    cl_schema_free(&orders_order_type, &o);
    cl_schema_free(&orders_order_type, &placed);
}

/* Times the saga sweeper of this process went to sleep so far (its voluntary switches). */
static long sweeper_sleeps(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long n = -1;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[320], name[32] = "", line[128];
        FILE *f;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        (void)fgets(name, sizeof(name), f);
        fclose(f);
        if (strncmp(name, "orders.sweeper", 14) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) {
                n = strtol(line + 24, NULL, 10);
            }
        }
        fclose(f);
    }
    closedir(d);
    assert_true(n >= 0);
    return n;
}

/*
 * Sagas run on their placers' threads do not wake the sweeper, which paces itself on the
 * executor's condition variable: each of them woke it once when it ended, before it was
 * told only when the executor stops.
 */
static void test_sagas_run_by_their_placers_leave_the_sweeper_asleep(void **state)
{
    orders_line_input line = {.sku = "WT-1", .quantity = 1};
    orders_order_input in = {.account_id = "wt-acc", .lines = {.v = &line, .n = 1}};
    cl_ctx own = own_ctx(OWNER);
    long before = sweeper_sleeps();

    (void)state;
    own.wait_ms = 10000;
    for (int i = 0; i < 20; i++) {
        orders_order o = {0};

        assert_int_equal(orders_place_order(w.orders, &own, &in, &o), CL_OK);
        assert_string_equal(o.status, "confirmed");
        cl_schema_free(&orders_order_type, &o);
    }
    /* Its own pace is one sleep per pass (seconds apart); 20 would be one per saga. */
    assert_in_range(sweeper_sleeps() - before, 0, 4);
}

static int group_setup(void **state)
{
    (void)state;
    if (orders_world_open(&wo) != 0) {
        return -1;
    }
    orders_world_handles(&wo, &w);
    setup_shop();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    orders_world_close(&wo);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_wait_on_a_saga_in_flight_reads_the_order_once),
        cmocka_unit_test(test_a_placer_that_waits_gets_the_end_of_its_saga),
        cmocka_unit_test(test_a_saga_that_must_retry_goes_on_in_a_worker),
        cmocka_unit_test(test_sagas_run_by_their_placers_leave_the_sweeper_asleep),
    };

    if (sqlite_counting_install() != 0) {
        fprintf(stderr, "cannot register the counting VFS\n");
        return 1;
    }
    return cmocka_run_group_tests_name("orders_wait", tests, group_setup, group_teardown);
}
