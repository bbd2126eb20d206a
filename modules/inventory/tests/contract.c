/*
 * The inventory's contract suite (see contract.h). Every test starts from an empty
 * inventory and goes through the operations table only.
 */
#include "contract.h"

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

#include "test_module.h"

/* Generous: a remote binding may be slow under sanitizers, but a hang must still fail. */
#define RACERS 16

static const cl_handle *module;

static int setup(void **state)
{
    (void)state;
    return test_contract_setup(&module);
}

/* --- helpers ------------------------------------------------------------------------ */

static void set_stock(const char *sku, int64_t on_hand)
{
    inventory_stock_set in = {.sku = (char *)sku, .on_hand = on_hand};
    inventory_stock s = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = inventory_set_stock(module, &ctx, &in, &s);

    if (st != CL_OK) {
        fail_msg("set_stock %s: %s: %s", sku, cl_status_name(st), ctx.err.message);
    }
    assert_int_equal(s.on_hand, on_hand);
    cl_schema_free(&inventory_stock_type, &s);
}

/* The stock of sku, which must exist: on_hand, reserved, available, sold. */
static inventory_stock stock(const char *sku)
{
    inventory_sku_ref ref = {.sku = (char *)sku};
    inventory_stock s = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = inventory_get_stock(module, &ctx, &ref, &s);

    if (st != CL_OK) {
        fail_msg("get_stock %s: %s: %s", sku, cl_status_name(st), ctx.err.message);
    }
    assert_string_equal(s.sku, sku);
    assert_non_null(s.updated_at);
    /* The invariants hold for every read. */
    assert_int_equal(s.available, s.on_hand - s.reserved);
    assert_true(s.on_hand >= 0 && s.reserved >= 0 && s.available >= 0 && s.sold >= 0);
    {
        /* cl_schema_free zeroes what it frees: keep the numbers. */
        inventory_stock nums = {
            .on_hand = s.on_hand, .reserved = s.reserved, .available = s.available, .sold = s.sold};
        cl_schema_free(&inventory_stock_type, &s);
        return nums;
    }
}

static void assert_stock(const char *sku, int64_t on_hand, int64_t reserved, int64_t sold)
{
    inventory_stock s = stock(sku);

    assert_int_equal(s.on_hand, on_hand);
    assert_int_equal(s.reserved, reserved);
    assert_int_equal(s.sold, sold);
}

/* Calls reserve for order with lines "SKU:qty" (NULL-terminated) and returns the status. */
static cl_status reserve_v(cl_ctx *ctx, const char *order, int64_t ttl_ms,
                           inventory_reservation *out, const char *const *lines)
{
    inventory_reserve_request req = {.order_id = (char *)order, .ttl_ms = ttl_ms};
    inventory_line buf[8];
    char skus[8][32];
    size_t n = 0;

    for (; lines[n] != NULL; n++) {
        const char *colon = strchr(lines[n], ':');
        assert_non_null(colon);
        snprintf(skus[n], sizeof(skus[n]), "%.*s", (int)(colon - lines[n]), lines[n]);
        buf[n].sku = skus[n];
        buf[n].quantity = strtoll(colon + 1, NULL, 10);
    }
    req.lines.v = buf;
    req.lines.n = n;
    return inventory_reserve(module, ctx, &req, out);
}

#define RESERVE(ctx, order, out, ...)                                                              \
    reserve_v(ctx, order, 0, out, (const char *const[]){__VA_ARGS__, NULL})

static void expect(cl_status got, cl_status want, const cl_ctx *ctx, const char *field)
{
    if (got != want || (field != NULL && strcmp(ctx->err.field, field) != 0)) {
        fail_msg("want %s on \"%s\", got %s on \"%s\" (%s)", cl_status_name(want),
                 field != NULL ? field : "", cl_status_name(got), ctx->err.field, ctx->err.message);
    }
}

static cl_status on_order(cl_status (*op)(const cl_handle *, cl_ctx *, const inventory_order_ref *,
                                          inventory_reservation *),
                          cl_ctx *ctx, const char *order, inventory_reservation *out)
{
    inventory_order_ref ref = {.order_id = (char *)order};

    return op(module, ctx, &ref, out);
}

static void free_res(inventory_reservation *r)
{
    cl_schema_free(&inventory_reservation_type, r);
}

/* --- stock ---------------------------------------------------------------------------- */

static void test_set_then_get_stock(void **state)
{
    inventory_sku_ref ref = {.sku = "NOPE-1"};
    inventory_stock s = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 12);
    assert_stock("MUG-1", 12, 0, 0);
    set_stock("MUG-1", 3);
    assert_stock("MUG-1", 3, 0, 0);
    expect(inventory_get_stock(module, &ctx, &ref, &s), CL_NOT_FOUND, &ctx, "sku");
    assert_null(s.sku);
}

static void test_set_stock_rejects_bad_input(void **state)
{
    const char *bad_skus[] = {"", "mug-1", "MUG 1",
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLM"};
    inventory_stock s = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad_skus) / sizeof(bad_skus[0]); i++) {
        inventory_stock_set in = {.sku = (char *)bad_skus[i], .on_hand = 1};
        cl_ctx ctx = test_contract_ctx();
        expect(inventory_set_stock(module, &ctx, &in, &s), CL_INVALID, &ctx, "sku");
    }
    {
        inventory_stock_set in = {.sku = "MUG-1", .on_hand = -1};
        cl_ctx ctx = test_contract_ctx();
        expect(inventory_set_stock(module, &ctx, &in, &s), CL_INVALID, &ctx, "on_hand");
        in.on_hand = INVENTORY_MAX_QUANTITY + 1;
        ctx = test_contract_ctx();
        expect(inventory_set_stock(module, &ctx, &in, &s), CL_INVALID, &ctx, "on_hand");
    }
    assert_null(s.sku);
}

static void test_set_stock_below_reserved_conflicts(void **state)
{
    inventory_reservation r = {0};
    inventory_stock_set in = {.sku = "MUG-1", .on_hand = 2};
    inventory_stock s = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 10);
    assert_int_equal(RESERVE(&ctx, "o-1", &r, "MUG-1:4"), CL_OK);
    free_res(&r);
    ctx = test_contract_ctx();
    expect(inventory_set_stock(module, &ctx, &in, &s), CL_CONFLICT, &ctx, "on_hand");
    assert_stock("MUG-1", 10, 4, 0);
    set_stock("MUG-1", 4); /* exactly what is reserved is fine */
    assert_stock("MUG-1", 4, 4, 0);
}

/* --- reservations ---------------------------------------------------------------------- */

static void test_reserve_then_commit_sells(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 10);
    set_stock("PLATE-2", 5);
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "MUG-1:3", "PLATE-2:5"), CL_OK);
    assert_string_equal(r.order_id, "order-1");
    assert_string_equal(r.status, "reserved");
    assert_int_equal(r.lines.n, 2);
    assert_string_equal(r.lines.v[0].sku, "MUG-1");
    assert_int_equal(r.lines.v[0].quantity, 3);
    assert_string_equal(r.lines.v[1].sku, "PLATE-2");
    assert_non_null(r.expires_at);
    assert_true(strcmp(r.expires_at, r.created_at) > 0);
    free_res(&r);
    assert_stock("MUG-1", 10, 3, 0);
    assert_int_equal(stock("PLATE-2").available, 0);

    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_commit, &ctx, "order-1", &r), CL_OK);
    assert_string_equal(r.status, "committed");
    free_res(&r);
    /* Sold units left the warehouse: available + reserved + sold is what there was. */
    assert_stock("MUG-1", 7, 0, 3);
    assert_stock("PLATE-2", 0, 0, 5);
    /* Committing again is a replay: same reservation, nothing sold twice. */
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_commit, &ctx, "order-1", &r), CL_OK);
    assert_string_equal(r.status, "committed");
    free_res(&r);
    assert_stock("MUG-1", 7, 0, 3);
}

/* r, an answer of reserve, commit or release, is what a read of the reservation gives. */
static void assert_as_stored(const inventory_reservation *r)
{
    inventory_reservation got = {0};
    cl_ctx ctx = test_contract_ctx();

    assert_int_equal(on_order(inventory_get_reservation, &ctx, r->order_id, &got), CL_OK);
    assert_string_equal(r->order_id, got.order_id);
    assert_string_equal(r->status, got.status);
    assert_string_equal(r->created_at, got.created_at);
    assert_string_equal(r->expires_at, got.expires_at);
    assert_string_equal(r->updated_at, got.updated_at);
    assert_int_equal(r->lines.n, got.lines.n);
    for (size_t i = 0; i < r->lines.n; i++) {
        assert_string_equal(r->lines.v[i].sku, got.lines.v[i].sku);
        assert_int_equal(r->lines.v[i].quantity, got.lines.v[i].quantity);
    }
    free_res(&got);
}

static void test_every_answer_is_the_reservation_as_stored(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 10);
    set_stock("PLATE-2", 5);
    /* Lines not in sku order: they come back in the request's. */
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "PLATE-2:1", "MUG-1:3"), CL_OK);
    assert_string_equal(r.lines.v[0].sku, "PLATE-2");
    assert_as_stored(&r);
    free_res(&r);
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_commit, &ctx, "order-1", &r), CL_OK);
    assert_string_equal(r.status, "committed");
    assert_true(strcmp(r.updated_at, r.created_at) >= 0);
    assert_as_stored(&r);
    free_res(&r);

    ctx = test_contract_ctx();
    assert_int_equal(RESERVE(&ctx, "order-2", &r, "MUG-1:1"), CL_OK);
    free_res(&r);
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_release, &ctx, "order-2", &r), CL_OK);
    assert_string_equal(r.status, "released");
    assert_as_stored(&r);
    free_res(&r);
    /* Released before it was ever reserved: the tombstone, without lines. */
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_release, &ctx, "order-3", &r), CL_OK);
    assert_string_equal(r.status, "released");
    assert_int_equal(r.lines.n, 0);
    assert_as_stored(&r);
    free_res(&r);
}

static void test_reserve_is_all_or_nothing(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    set_stock("PLATE-2", 1);
    expect(RESERVE(&ctx, "order-1", &r, "MUG-1:2", "PLATE-2:2"), CL_CONFLICT, &ctx, "lines[1].sku");
    assert_null(r.order_id);
    assert_stock("MUG-1", 5, 0, 0);
    assert_stock("PLATE-2", 1, 0, 0);
    /* Nothing of the failed call stays: the order can reserve what there is. */
    ctx = test_contract_ctx();
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "MUG-1:2", "PLATE-2:1"), CL_OK);
    free_res(&r);
    assert_stock("PLATE-2", 1, 1, 0);
}

static void test_reserve_unknown_sku_is_not_found(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    expect(RESERVE(&ctx, "order-1", &r, "MUG-1:1", "GHOST-9:1"), CL_NOT_FOUND, &ctx,
           "lines[1].sku");
    assert_stock("MUG-1", 5, 0, 0);
}

static void test_reserve_rejects_bad_input(void **state)
{
    inventory_reservation r = {0};
    inventory_reserve_request empty = {.order_id = "order-1"};
    cl_ctx ctx;

    (void)state;
    set_stock("MUG-1", 5);
    ctx = test_contract_ctx();
    expect(inventory_reserve(module, &ctx, &empty, &r), CL_INVALID, &ctx, "lines");
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order 1", &r, "MUG-1:1"), CL_INVALID, &ctx, "order_id");
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "", &r, "MUG-1:1"), CL_INVALID, &ctx, "order_id");
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order-1", &r, "MUG-1:0"), CL_INVALID, &ctx, "lines[0].quantity");
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order-1", &r, "MUG-1:1", "mug:1"), CL_INVALID, &ctx, "lines[1].sku");
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order-1", &r, "MUG-1:1", "MUG-1:2"), CL_INVALID, &ctx, "lines[1].sku");
    ctx = test_contract_ctx();
    expect(reserve_v(&ctx, "order-1", -5, &r, (const char *const[]){"MUG-1:1", NULL}), CL_INVALID,
           &ctx, "ttl_ms");
    ctx = test_contract_ctx();
    expect(reserve_v(&ctx, "order-1", INVENTORY_MAX_TTL_MS + 1, &r,
                     (const char *const[]){"MUG-1:1", NULL}),
           CL_INVALID, &ctx, "ttl_ms");
    assert_null(r.order_id);
    assert_stock("MUG-1", 5, 0, 0);
}

static void test_reserve_replay_takes_stock_once(void **state)
{
    inventory_reservation a = {0}, b = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    set_stock("PLATE-2", 5);
    assert_int_equal(RESERVE(&ctx, "order-1", &a, "MUG-1:2", "PLATE-2:1"), CL_OK);
    /* The same lines, in another order: the same reservation back. */
    ctx = test_contract_ctx();
    assert_int_equal(RESERVE(&ctx, "order-1", &b, "PLATE-2:1", "MUG-1:2"), CL_OK);
    assert_string_equal(a.created_at, b.created_at);
    assert_string_equal(a.expires_at, b.expires_at);
    assert_string_equal(b.status, "reserved");
    free_res(&b);
    assert_stock("MUG-1", 5, 2, 0);
    /* Other lines under the same order id: a clash, not a second reservation. */
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order-1", &b, "MUG-1:3"), CL_CONFLICT, &ctx, "order_id");
    assert_null(b.order_id);
    assert_stock("MUG-1", 5, 2, 0);
    free_res(&a);
}

static void test_release_gives_back_and_is_idempotent(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "MUG-1:4"), CL_OK);
    free_res(&r);
    for (int i = 0; i < 2; i++) {
        ctx = test_contract_ctx();
        assert_int_equal(on_order(inventory_release, &ctx, "order-1", &r), CL_OK);
        assert_string_equal(r.status, "released");
        assert_int_equal(r.lines.n, 1);
        free_res(&r);
        assert_stock("MUG-1", 5, 0, 0);
    }
    /* Its stock went back: it cannot be sold any more. */
    ctx = test_contract_ctx();
    expect(on_order(inventory_commit, &ctx, "order-1", &r), CL_CONFLICT, &ctx, "order_id");
    /* A replayed reserve reports the released reservation and takes nothing. */
    ctx = test_contract_ctx();
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "MUG-1:4"), CL_OK);
    assert_string_equal(r.status, "released");
    free_res(&r);
    assert_stock("MUG-1", 5, 0, 0);
}

static void test_release_after_commit_conflicts(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    assert_int_equal(RESERVE(&ctx, "order-1", &r, "MUG-1:1"), CL_OK);
    free_res(&r);
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_commit, &ctx, "order-1", &r), CL_OK);
    free_res(&r);
    ctx = test_contract_ctx();
    expect(on_order(inventory_release, &ctx, "order-1", &r), CL_CONFLICT, &ctx, "order_id");
    assert_stock("MUG-1", 4, 0, 1);
}

static void test_release_before_reserve_blocks_a_late_reserve(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    assert_int_equal(on_order(inventory_release, &ctx, "order-9", &r), CL_OK);
    assert_string_equal(r.status, "released");
    assert_int_equal(r.lines.n, 0);
    free_res(&r);
    ctx = test_contract_ctx();
    expect(RESERVE(&ctx, "order-9", &r, "MUG-1:1"), CL_CONFLICT, &ctx, "order_id");
    assert_stock("MUG-1", 5, 0, 0);
}

static void test_commit_and_get_of_unknown_order_are_not_found(void **state)
{
    inventory_reservation r = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    expect(on_order(inventory_commit, &ctx, "order-404", &r), CL_NOT_FOUND, &ctx, "order_id");
    ctx = test_contract_ctx();
    expect(on_order(inventory_get_reservation, &ctx, "order-404", &r), CL_NOT_FOUND, &ctx,
           "order_id");
    ctx = test_contract_ctx();
    expect(on_order(inventory_get_reservation, &ctx, "bad id", &r), CL_INVALID, &ctx, "order_id");
    assert_null(r.order_id);
}

/* Waits, with a deadline, until the reservation of order has expired by itself. */
static void wait_expired(const char *order)
{
    struct timespec pause = {0, 5 * 1000000L};
    int64_t deadline = cl_now_ms() + 10000;

    for (;;) {
        inventory_expiry_report rep = {0};
        inventory_reservation r = {0};
        cl_empty none = {0};
        cl_ctx ctx = test_contract_ctx();
        bool expired;

        assert_int_equal(inventory_expire_reservations(module, &ctx, &none, &rep), CL_OK);
        ctx = test_contract_ctx();
        assert_int_equal(on_order(inventory_get_reservation, &ctx, order, &r), CL_OK);
        expired = strcmp(r.status, "expired") == 0;
        free_res(&r);
        if (expired) {
            return;
        }
        assert_true(cl_now_ms() < deadline);
        nanosleep(&pause, NULL); /* the reservation's 1 ms must pass on the wall clock */
    }
}

static void test_expired_reservation_gives_stock_back(void **state)
{
    inventory_reservation r = {0}, keep = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    set_stock("MUG-1", 5);
    assert_int_equal(reserve_v(&ctx, "short", 1, &r, (const char *const[]){"MUG-1:2", NULL}),
                     CL_OK);
    free_res(&r);
    ctx = test_contract_ctx();
    assert_int_equal(RESERVE(&ctx, "long", &keep, "MUG-1:1"), CL_OK);
    free_res(&keep);
    wait_expired("short");
    /* Only the expired one gave its stock back. */
    assert_stock("MUG-1", 5, 1, 0);
    ctx = test_contract_ctx();
    expect(on_order(inventory_commit, &ctx, "short", &r), CL_CONFLICT, &ctx, "order_id");
    ctx = test_contract_ctx();
    assert_int_equal(on_order(inventory_commit, &ctx, "long", &r), CL_OK);
    free_res(&r);
    assert_stock("MUG-1", 4, 0, 1);
}

/* --- concurrency ------------------------------------------------------------------------ */

typedef struct racer {
    pthread_t thread;
    int n;
    cl_status got;
    char field[64];
} racer;

static pthread_barrier_t start_line;

static void *race(void *arg)
{
    racer *me = arg;
    inventory_reservation r = {0};
    char order[32];
    cl_ctx ctx = test_contract_ctx();

    snprintf(order, sizeof(order), "racer-%d", me->n);
    pthread_barrier_wait(&start_line);
    me->got = RESERVE(&ctx, order, &r, "HOT-1:1");
    cl_strlcpy(me->field, ctx.err.field, sizeof(me->field));
    free_res(&r);
    return NULL;
}

static void test_concurrent_reservations_never_oversell(void **state)
{
    racer racers[RACERS];
    int ok = 0, conflict = 0;

    (void)state;
    set_stock("HOT-1", 5);
    pthread_barrier_init(&start_line, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i].n = i;
        assert_int_equal(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(racers[i].thread, NULL);
        if (racers[i].got == CL_OK) {
            ok++;
        } else if (racers[i].got == CL_CONFLICT) {
            assert_string_equal(racers[i].field, "lines[0].sku");
            conflict++;
        } else {
            fail_msg("racer %d: %s", i, cl_status_name(racers[i].got));
        }
    }
    pthread_barrier_destroy(&start_line);
    assert_int_equal(ok, 5);
    assert_int_equal(conflict, RACERS - 5);
    assert_stock("HOT-1", 5, 5, 0);
    assert_int_equal(stock("HOT-1").available, 0);
}

/* --- the runner --------------------------------------------------------------------------- */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int inventory_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                           void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_set_then_get_stock),
        CONTRACT_TEST(test_set_stock_rejects_bad_input),
        CONTRACT_TEST(test_set_stock_below_reserved_conflicts),
        CONTRACT_TEST(test_reserve_then_commit_sells),
        CONTRACT_TEST(test_every_answer_is_the_reservation_as_stored),
        CONTRACT_TEST(test_reserve_is_all_or_nothing),
        CONTRACT_TEST(test_reserve_unknown_sku_is_not_found),
        CONTRACT_TEST(test_reserve_rejects_bad_input),
        CONTRACT_TEST(test_reserve_replay_takes_stock_once),
        CONTRACT_TEST(test_release_gives_back_and_is_idempotent),
        CONTRACT_TEST(test_release_after_commit_conflicts),
        CONTRACT_TEST(test_release_before_reserve_blocks_a_late_reserve),
        CONTRACT_TEST(test_commit_and_get_of_unknown_order_are_not_found),
        CONTRACT_TEST(test_expired_reservation_gives_stock_back),
        CONTRACT_TEST(test_concurrent_reservations_never_oversell),
    };

    test_contract_bind(setup_fn, teardown_fn, INVENTORY_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
