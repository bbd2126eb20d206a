/*
 * The shipping module's contract suite (see contract.h). Every test starts from a fresh
 * shipping module with no shipment and goes through the operations table only: no SQL,
 * no bus, no knowledge of how a binding stores or transports anything. The long-running
 * carrier operation is followed the way a client follows it, through get_operation,
 * polling the real state against a deadline.
 */
#include "contract.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_module.h"

/* Generous: a remote binding may be slow under sanitizers, but a hang must still fail. */
/* How long a carrier operation may take to finish, from its request, before we give up. */
#define OPERATION_DEADLINE_MS 30000
#define POLL_MS               5
#define CARRIER_KIND          "shipping.carrier_booking"
#define CARRIER_NAME          "cleave-post"

static const cl_handle *module;

static int setup(void **state)
{
    (void)state;
    return test_contract_setup(&module);
}

/* --- helpers ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
    struct timespec ts = {0, POLL_MS * 1000000L};

    nanosleep(&ts, NULL);
}

/* RFC 3339 UTC with milliseconds: "2026-01-02T03:04:05.678Z". */
static void assert_timestamp(const char *ts)
{
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
}

/* Same-format RFC 3339 timestamps order as strings: later is not before earlier. */
static void assert_not_before(const char *later, const char *earlier)
{
    assert_timestamp(later);
    assert_timestamp(earlier);
    if (strcmp(later, earlier) < 0) {
        fail_msg("%s is before %s", later, earlier);
    }
}

/* A string of n copies of c (n < size). */
static char *repeat(char *buf, size_t size, char c, size_t n)
{
    assert_true(n < size);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* Requests a shipment that must be accepted; *out: cl_schema_free. */
static void request(const char *order_ref, shipping_accepted *out)
{
    shipping_shipment_request in = {.order_ref = (char *)order_ref};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_request_shipment(module, &ctx, &in, out);

    if (st != CL_OK) {
        fail_msg("request %s: %s: %s (%s)", order_ref, cl_status_name(st), ctx.err.message,
                 ctx.err.field);
    }
    assert_true(out->shipment_id > 0);
    assert_non_null(out->operation_id);
    /* Operation ids name their module, so a gateway can route them (ADR 0012). */
    assert_memory_equal(out->operation_id, "shipping-", 9);
    assert_true(strlen(out->operation_id) < CL_OPERATION_ID_MAX);
}

/* Expects CL_INVALID naming order_ref from request_shipment, and nothing written. */
static void expect_request_invalid(const char *order_ref, const char *label)
{
    shipping_shipment_request in = {.order_ref = (char *)order_ref};
    shipping_accepted out = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_request_shipment(module, &ctx, &in, &out);

    if (st != CL_INVALID || strcmp(ctx.err.field, "order_ref") != 0) {
        fail_msg("%s: want invalid on order_ref, got %s on \"%s\" (%s)", label, cl_status_name(st),
                 ctx.err.field, ctx.err.message);
    }
    /* Outputs are written only on success. */
    assert_int_equal(out.shipment_id, 0);
    assert_null(out.operation_id);
}

static void get_shipment(int64_t id, shipping_shipment *out)
{
    shipping_shipment_ref ref = {.id = id};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_get_shipment(module, &ctx, &ref, out);

    if (st != CL_OK) {
        fail_msg("get_shipment %" PRId64 ": %s: %s", id, cl_status_name(st), ctx.err.message);
    }
    assert_int_equal(out->id, id);
    assert_timestamp(out->created_at);
    assert_not_before(out->updated_at, out->created_at);
}

static void get_operation(const char *id, cl_operation *out)
{
    cl_operation_ref ref = {.id = (char *)id};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_get_operation(module, &ctx, &ref, out);

    if (st != CL_OK) {
        fail_msg("get_operation %s: %s: %s", id, cl_status_name(st), ctx.err.message);
    }
    assert_string_equal(out->id, id);
    assert_string_equal(out->kind, CARRIER_KIND);
    assert_timestamp(out->created_at);
    assert_not_before(out->updated_at, out->created_at);
}

/* The place of an operation status in its lifecycle; -1 for anything else. */
static int stage(const char *status)
{
    static const char *const order[] = {"pending", "running", "succeeded", "failed"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(status, order[i]) == 0) {
            return i < 3 ? i : 2; /* succeeded and failed are both final */
        }
    }
    return -1;
}

/*
 * Follows operation id through get_operation until it is final or the deadline passes;
 * every status seen must be a lifecycle status, never going back (pending -> running ->
 * succeeded | failed). *saw_running tells whether it was seen running. *out (the final
 * state): cl_schema_free.
 */
static void follow(const char *id, cl_operation *out, bool *saw_running)
{
    int64_t deadline = now_ms() + OPERATION_DEADLINE_MS;
    int last = 0;

    *saw_running = false;
    for (;;) {
        cl_operation op = {0};
        int s;

        get_operation(id, &op);
        s = stage(op.status);
        if (s < 0 || s < last) {
            fail_msg("operation %s: status %s after stage %d", id, op.status, last);
        }
        last = s;
        *saw_running = *saw_running || strcmp(op.status, "running") == 0;
        if (s == 2) {
            *out = op;
            return;
        }
        cl_schema_free(&cl_operation_type, &op);
        if (now_ms() > deadline) {
            fail_msg("operation %s still not final after %d ms", id, OPERATION_DEADLINE_MS);
        }
        nap();
    }
}

/* Follows operation id to its end, which must be success; *out: cl_schema_free. */
static void expect_succeeded(const char *id, cl_operation *out, bool *saw_running)
{
    follow(id, out, saw_running);
    if (strcmp(out->status, "succeeded") != 0) {
        fail_msg("operation %s %s: %s %s", id, out->status, out->problem_status,
                 out->problem_detail);
    }
    assert_null(out->problem_status);
    assert_null(out->problem_detail);
    assert_non_null(out->result);
}

/* The carrier's tracking number of a shipment: "CP" and the id on ten digits. */
static void tracking_of(int64_t shipment_id, char *buf, size_t size)
{
    snprintf(buf, size, "CP%010" PRId64, shipment_id);
}

/* Checks a succeeded carrier operation's result against its shipment. */
static void assert_booking_result(const cl_operation *op, int64_t shipment_id)
{
    json_error_t jerr;
    json_t *r = json_loads(op->result, 0, &jerr);
    char tracking[32];

    if (r == NULL) {
        fail_msg("operation %s: result is not JSON: %s", op->id, op->result);
    }
    tracking_of(shipment_id, tracking, sizeof(tracking));
    assert_int_equal(json_integer_value(json_object_get(r, "shipment_id")), shipment_id);
    assert_string_equal(json_string_value(json_object_get(r, "carrier")), CARRIER_NAME);
    assert_string_equal(json_string_value(json_object_get(r, "tracking")), tracking);
    json_decref(r);
}

static void assert_booked(int64_t id, const char *order_ref, const char *op_id)
{
    shipping_shipment s = {0};
    char tracking[32];

    get_shipment(id, &s);
    tracking_of(id, tracking, sizeof(tracking));
    assert_string_equal(s.order_ref, order_ref);
    assert_string_equal(s.status, "booked");
    assert_string_equal(s.carrier, CARRIER_NAME);
    assert_string_equal(s.tracking, tracking);
    assert_string_equal(s.operation_id, op_id);
    cl_schema_free(&shipping_shipment_type, &s);
}

static void list(const char *order_ref, shipping_shipment_list *out)
{
    shipping_shipment_query q = {.order_ref = (char *)order_ref};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_list_shipments(module, &ctx, &q, out);

    if (st != CL_OK) {
        fail_msg("list %s: %s: %s (%s)", order_ref != NULL ? order_ref : "(all)",
                 cl_status_name(st), ctx.err.message, ctx.err.field);
    }
}

/* Expects CL_INVALID naming order_ref from list_shipments, and nothing written. */
static void expect_list_invalid(const char *order_ref, const char *label)
{
    shipping_shipment_query q = {.order_ref = (char *)order_ref};
    shipping_shipment_list out = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = shipping_list_shipments(module, &ctx, &q, &out);

    if (st != CL_INVALID || strcmp(ctx.err.field, "order_ref") != 0) {
        fail_msg("%s: want invalid on order_ref, got %s on \"%s\" (%s)", label, cl_status_name(st),
                 ctx.err.field, ctx.err.message);
    }
    assert_null(out.items.v);
    assert_int_equal(out.items.n, 0);
}

static size_t count_all(void)
{
    shipping_shipment_list l = {0};
    size_t n;

    list(NULL, &l);
    n = l.items.n;
    cl_schema_free(&shipping_shipment_list_type, &l);
    return n;
}

/* The listed shipment matches what get_shipment says of it, in its fields that never change. */
static void assert_listed_as_stored(const shipping_shipment *listed, const char *order_ref)
{
    shipping_shipment s = {0};

    assert_string_equal(listed->order_ref, order_ref);
    assert_timestamp(listed->created_at);
    assert_non_null(listed->operation_id);
    assert_true(stage(listed->status) >= 0);
    get_shipment(listed->id, &s);
    assert_string_equal(s.order_ref, listed->order_ref);
    assert_string_equal(s.operation_id, listed->operation_id);
    assert_string_equal(s.created_at, listed->created_at);
    cl_schema_free(&shipping_shipment_type, &s);
}

/* --- requesting ------------------------------------------------------------------------ */

static void test_request_answers_at_once_with_a_pending_shipment(void **state)
{
    shipping_accepted a = {0};
    shipping_shipment s = {0};
    cl_operation op = {0};

    (void)state;
    request("order:7", &a);
    /*
     * The answer comes before the carrier step (SHIPPING_CONTRACT_CARRIER_MS) is done:
     * the operation is still open and the shipment not yet booked.
     */
    get_operation(a.operation_id, &op);
    if (strcmp(op.status, "pending") != 0 && strcmp(op.status, "running") != 0) {
        fail_msg("operation %s is %s right after the request", op.id, op.status);
    }
    assert_null(op.result);
    assert_null(op.problem_status);
    get_shipment(a.shipment_id, &s);
    assert_string_equal(s.order_ref, "order:7");
    assert_string_equal(s.operation_id, a.operation_id);
    if (strcmp(s.status, "pending") == 0) {
        assert_null(s.carrier);
        assert_null(s.tracking);
    } else {
        /* Only if the carrier beat us, as the operation may have by now. */
        assert_string_equal(s.status, "booked");
    }
    cl_schema_free(&shipping_shipment_type, &s);
    cl_schema_free(&cl_operation_type, &op);
    cl_schema_free(&shipping_accepted_type, &a);
}

static void test_carrier_operation_runs_then_succeeds_and_books(void **state)
{
    shipping_accepted a = {0};
    cl_operation done = {0}, again = {0};
    bool saw_running = false;

    (void)state;
    request("order:8", &a);
    expect_succeeded(a.operation_id, &done, &saw_running);
    /* The carrier step takes hundreds of milliseconds; a poller sees it under way. */
    assert_true(saw_running);
    assert_booking_result(&done, a.shipment_id);
    assert_booked(a.shipment_id, "order:8", a.operation_id);
    /* A finished operation stays as it ended. */
    get_operation(a.operation_id, &again);
    assert_string_equal(again.status, "succeeded");
    assert_string_equal(again.result, done.result);
    assert_string_equal(again.updated_at, done.updated_at);
    cl_schema_free(&cl_operation_type, &again);
    cl_schema_free(&cl_operation_type, &done);
    cl_schema_free(&shipping_accepted_type, &a);
}

static void test_each_request_gets_its_own_shipment_and_operation(void **state)
{
    shipping_accepted a = {0}, b = {0};
    cl_operation da = {0}, db = {0};
    bool saw = false;

    (void)state;
    request("order:9", &a);
    request("order:9", &b);
    assert_true(b.shipment_id > a.shipment_id);
    assert_string_not_equal(a.operation_id, b.operation_id);
    expect_succeeded(a.operation_id, &da, &saw);
    expect_succeeded(b.operation_id, &db, &saw);
    assert_booking_result(&da, a.shipment_id);
    assert_booking_result(&db, b.shipment_id);
    assert_booked(a.shipment_id, "order:9", a.operation_id);
    assert_booked(b.shipment_id, "order:9", b.operation_id);
    cl_schema_free(&cl_operation_type, &da);
    cl_schema_free(&cl_operation_type, &db);
    cl_schema_free(&shipping_accepted_type, &a);
    cl_schema_free(&shipping_accepted_type, &b);
}

static void test_request_rejects_a_bad_order_ref(void **state)
{
    char buf[SHIPPING_ORDER_REF_MAX + 2];
    shipping_accepted a = {0};

    (void)state;
    expect_request_invalid(NULL, "absent");
    expect_request_invalid("", "empty");
    expect_request_invalid(repeat(buf, sizeof(buf), 'x', SHIPPING_ORDER_REF_MAX + 1), "too long");
    expect_request_invalid("order:\n7", "newline");
    expect_request_invalid("\torder:7", "tab");
    /* Nothing was created by the refusals. */
    assert_int_equal(count_all(), 0);
    /* The longest allowed is accepted. */
    request(repeat(buf, sizeof(buf), 'x', SHIPPING_ORDER_REF_MAX), &a);
    assert_int_equal(count_all(), 1);
    cl_schema_free(&shipping_accepted_type, &a);
}

/* --- reading --------------------------------------------------------------------------- */

static void test_get_shipment_of_an_unknown_id_is_not_found(void **state)
{
    static const int64_t ids[] = {1, 424242, 0, -1};
    shipping_accepted a = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        shipping_shipment_ref ref = {.id = ids[i]};
        shipping_shipment s = {0};
        cl_ctx ctx = test_contract_ctx();
        cl_status st = shipping_get_shipment(module, &ctx, &ref, &s);

        if (st != CL_NOT_FOUND || strcmp(ctx.err.field, "id") != 0) {
            fail_msg("get_shipment %" PRId64 ": want not_found on id, got %s on \"%s\"", ids[i],
                     cl_status_name(st), ctx.err.field);
        }
        assert_null(s.order_ref);
        assert_int_equal(s.id, 0);
    }
    /* Known ids stay apart from unknown ones. */
    request("order:10", &a);
    {
        shipping_shipment_ref ref = {.id = a.shipment_id + 1};
        shipping_shipment s = {0};
        cl_ctx ctx = test_contract_ctx();

        assert_int_equal(shipping_get_shipment(module, &ctx, &ref, &s), CL_NOT_FOUND);
    }
    cl_schema_free(&shipping_accepted_type, &a);
}

static void test_get_operation_of_an_unknown_id_is_not_found(void **state)
{
    char other[CL_OPERATION_ID_MAX], longer[200];
    shipping_accepted a = {0};
    const char *ids[8];
    size_t n = 0;

    (void)state;
    request("order:11", &a);
    /* A well-formed id that was never issued: the real one with its last digit changed. */
    cl_strlcpy(other, a.operation_id, sizeof(other));
    other[strlen(other) - 1] = other[strlen(other) - 1] == '0' ? '1' : '0';
    snprintf(longer, sizeof(longer), "%s%s%s", a.operation_id, a.operation_id, a.operation_id);
    ids[n++] = other;
    ids[n++] = "shipping-00000000000000000000000000000000";
    ids[n++] = "shipping-nope";
    /* Another module's operation is not shipping's to answer. */
    ids[n++] = "catalog-00000000000000000000000000000000";
    ids[n++] = "";
    ids[n++] = NULL;
    ids[n++] = longer;
    for (size_t i = 0; i < n; i++) {
        cl_operation_ref ref = {.id = (char *)ids[i]};
        cl_operation op = {0};
        cl_ctx ctx = test_contract_ctx();
        cl_status st = shipping_get_operation(module, &ctx, &ref, &op);

        if (st != CL_NOT_FOUND || strcmp(ctx.err.field, "id") != 0) {
            fail_msg("get_operation \"%s\": want not_found on id, got %s on \"%s\"",
                     ids[i] != NULL ? ids[i] : "(null)", cl_status_name(st), ctx.err.field);
        }
        assert_null(op.id);
        assert_null(op.status);
    }
    cl_schema_free(&shipping_accepted_type, &a);
}

/* --- listing --------------------------------------------------------------------------- */

static void test_list_by_order_ref_is_oldest_first_and_all_is_newest_first(void **state)
{
    shipping_accepted a1 = {0}, b = {0}, a2 = {0};
    shipping_shipment_list l = {0};

    (void)state;
    request("order:1", &a1);
    request("order:2", &b);
    request("order:1", &a2);

    list("order:1", &l);
    assert_int_equal(l.items.n, 2);
    assert_int_equal(l.items.v[0].id, a1.shipment_id);
    assert_int_equal(l.items.v[1].id, a2.shipment_id);
    assert_string_equal(l.items.v[0].operation_id, a1.operation_id);
    assert_string_equal(l.items.v[1].operation_id, a2.operation_id);
    for (size_t i = 0; i < l.items.n; i++) {
        assert_listed_as_stored(&l.items.v[i], "order:1");
    }
    cl_schema_free(&shipping_shipment_list_type, &l);

    memset(&l, 0, sizeof(l));
    list("order:2", &l);
    assert_int_equal(l.items.n, 1);
    assert_int_equal(l.items.v[0].id, b.shipment_id);
    assert_listed_as_stored(&l.items.v[0], "order:2");
    cl_schema_free(&shipping_shipment_list_type, &l);

    memset(&l, 0, sizeof(l));
    list("order:404", &l);
    assert_int_equal(l.items.n, 0);
    cl_schema_free(&shipping_shipment_list_type, &l);

    memset(&l, 0, sizeof(l));
    list(NULL, &l);
    assert_int_equal(l.items.n, 3);
    assert_int_equal(l.items.v[0].id, a2.shipment_id);
    assert_int_equal(l.items.v[1].id, b.shipment_id);
    assert_int_equal(l.items.v[2].id, a1.shipment_id);
    cl_schema_free(&shipping_shipment_list_type, &l);

    cl_schema_free(&shipping_accepted_type, &a1);
    cl_schema_free(&shipping_accepted_type, &b);
    cl_schema_free(&shipping_accepted_type, &a2);
}

static void test_list_rejects_a_bad_order_ref(void **state)
{
    char buf[SHIPPING_ORDER_REF_MAX + 2];

    (void)state;
    expect_list_invalid("", "empty");
    expect_list_invalid(repeat(buf, sizeof(buf), 'x', SHIPPING_ORDER_REF_MAX + 1), "too long");
    expect_list_invalid("order:\n1", "newline");
}

static void test_list_returns_at_most_list_max(void **state)
{
    int64_t ids[SHIPPING_LIST_MAX + 1];
    shipping_shipment_list l = {0};

    (void)state;
    for (int i = 0; i < SHIPPING_LIST_MAX + 1; i++) {
        shipping_accepted a = {0};

        request("order:bulk", &a);
        ids[i] = a.shipment_id;
        cl_schema_free(&shipping_accepted_type, &a);
    }
    /* All: the newest SHIPPING_LIST_MAX, so the very first is left out. */
    list(NULL, &l);
    assert_int_equal(l.items.n, SHIPPING_LIST_MAX);
    for (int i = 0; i < SHIPPING_LIST_MAX; i++) {
        assert_int_equal(l.items.v[i].id, ids[SHIPPING_LIST_MAX - i]);
    }
    cl_schema_free(&shipping_shipment_list_type, &l);
    /* By order: the oldest SHIPPING_LIST_MAX, so the very last is left out. */
    memset(&l, 0, sizeof(l));
    list("order:bulk", &l);
    assert_int_equal(l.items.n, SHIPPING_LIST_MAX);
    for (int i = 0; i < SHIPPING_LIST_MAX; i++) {
        assert_int_equal(l.items.v[i].id, ids[i]);
    }
    cl_schema_free(&shipping_shipment_list_type, &l);
}

/* --- the runner ------------------------------------------------------------------------ */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int shipping_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                          void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_request_answers_at_once_with_a_pending_shipment),
        CONTRACT_TEST(test_carrier_operation_runs_then_succeeds_and_books),
        CONTRACT_TEST(test_each_request_gets_its_own_shipment_and_operation),
        CONTRACT_TEST(test_request_rejects_a_bad_order_ref),
        CONTRACT_TEST(test_get_shipment_of_an_unknown_id_is_not_found),
        CONTRACT_TEST(test_get_operation_of_an_unknown_id_is_not_found),
        CONTRACT_TEST(test_list_by_order_ref_is_oldest_first_and_all_is_newest_first),
        CONTRACT_TEST(test_list_rejects_a_bad_order_ref),
        CONTRACT_TEST(test_list_returns_at_most_list_max),
    };

    test_contract_bind(setup_fn, teardown_fn, SHIPPING_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
