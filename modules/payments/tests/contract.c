/*
 * The payments' contract suite (see contract.h). Every test starts from an empty ledger
 * and goes through the operations table only.
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

#include <cmocka.h>

#include "test_module.h"

#define RACERS 8

static const cl_handle *module;

static int setup(void **state)
{
    (void)state;
    return test_contract_setup(&module);
}

/* --- helpers ------------------------------------------------------------------------ */

static cl_ctx key_ctx(const char *key)
{
    cl_ctx ctx = test_contract_ctx();

    cl_strlcpy(ctx.idempotency_key, key, sizeof(ctx.idempotency_key));
    return ctx;
}

static void expect(cl_status got, cl_status want, const cl_ctx *ctx, const char *field)
{
    if (got != want || (field != NULL && strcmp(ctx->err.field, field) != 0)) {
        fail_msg("want %s on \"%s\", got %s on \"%s\" (%s)", cl_status_name(want),
                 field != NULL ? field : "", cl_status_name(got), ctx->err.field, ctx->err.message);
    }
}

static void ok(cl_status got, const cl_ctx *ctx)
{
    if (got != CL_OK) {
        fail_msg("%s: %s (%s)", cl_status_name(got), ctx->err.message, ctx->err.field);
    }
}

/* Opens account id (owner "Ann", EUR) with deposit minor units in it (0: none). */
static void open_with(const char *id, int64_t deposit)
{
    payments_account_input in = {.id = (char *)id, .owner = "Ann", .currency = "EUR"};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();

    ok(payments_open_account(module, &ctx, &in, &a), &ctx);
    cl_schema_free(&payments_account_type, &a);
    if (deposit > 0) {
        payments_deposit_request d = {.account_id = (char *)id, .amount = {deposit, "EUR"}};
        ctx = test_contract_ctx();
        ok(payments_deposit(module, &ctx, &d, &a), &ctx);
        cl_schema_free(&payments_account_type, &a);
    }
}

typedef struct balance {
    int64_t available, held, version;
} balance;

static balance get_balance(const char *id)
{
    payments_account_ref ref = {.id = (char *)id};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();
    balance b;

    ok(payments_get_account(module, &ctx, &ref, &a), &ctx);
    assert_string_equal(a.available.currency, a.currency);
    assert_string_equal(a.held.currency, a.currency);
    b.available = a.available.amount;
    b.held = a.held.amount;
    b.version = a.version;
    cl_schema_free(&payments_account_type, &a);
    return b;
}

static void assert_balance(const char *id, int64_t available, int64_t held)
{
    balance b = get_balance(id);

    assert_int_equal(b.available, available);
    assert_int_equal(b.held, held);
}

static cl_status authorize(cl_ctx *ctx, const char *pid, const char *account, int64_t amount,
                           payments_payment *out)
{
    payments_authorization in = {.payment_id = (char *)pid,
                                 .account_id = (char *)account,
                                 .order_id = "order-1",
                                 .amount = {amount, "EUR"}};

    return payments_authorize_payment(module, ctx, &in, out);
}

static cl_status on_payment(cl_status (*op)(const cl_handle *, cl_ctx *,
                                            const payments_payment_ref *, payments_payment *),
                            cl_ctx *ctx, const char *pid, payments_payment *out)
{
    payments_payment_ref ref = {.payment_id = (char *)pid};

    return op(module, ctx, &ref, out);
}

static cl_status refund(cl_ctx *ctx, const char *pid, int64_t amount, payments_payment *out)
{
    payments_refund in = {.payment_id = (char *)pid, .amount = {amount, "EUR"}};

    return payments_refund_payment(module, ctx, &in, out);
}

static void free_pay(payments_payment *p)
{
    cl_schema_free(&payments_payment_type, p);
}

/* --- accounts ----------------------------------------------------------------------- */

static void test_open_account_then_get(void **state)
{
    payments_account_input in = {.owner = "Bea", .currency = "USD"};
    payments_account a = {0}, b = {0};
    payments_account_ref ref = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    ok(payments_open_account(module, &ctx, &in, &a), &ctx);
    assert_non_null(a.id);
    assert_string_equal(a.owner, "Bea");
    assert_string_equal(a.currency, "USD");
    assert_int_equal(a.available.amount, 0);
    assert_string_equal(a.available.currency, "USD");
    assert_int_equal(a.held.amount, 0);
    assert_int_equal(a.version, 1);
    assert_int_equal(a.history.n, 1);
    assert_string_equal(a.history.v[0].type, "account_opened");
    ref.id = a.id;
    ctx = test_contract_ctx();
    ok(payments_get_account(module, &ctx, &ref, &b), &ctx);
    assert_string_equal(b.id, a.id);
    assert_int_equal(b.version, 1);
    assert_string_equal(b.updated_at, a.updated_at);
    cl_schema_free(&payments_account_type, &a);
    cl_schema_free(&payments_account_type, &b);
}

static void test_open_account_rejects_bad_input_and_taken_ids(void **state)
{
    payments_account a = {0};
    payments_account_input in = {.owner = "", .currency = "EUR"};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    expect(payments_open_account(module, &ctx, &in, &a), CL_INVALID, &ctx, "owner");
    in.owner = "Ann";
    in.currency = "eur";
    ctx = test_contract_ctx();
    expect(payments_open_account(module, &ctx, &in, &a), CL_INVALID, &ctx, "currency");
    in.currency = "EUR";
    in.id = "has space";
    ctx = test_contract_ctx();
    expect(payments_open_account(module, &ctx, &in, &a), CL_INVALID, &ctx, "id");
    assert_null(a.id);
    open_with("acc-1", 0);
    in.id = "acc-1";
    ctx = test_contract_ctx();
    expect(payments_open_account(module, &ctx, &in, &a), CL_CONFLICT, &ctx, "id");
    assert_int_equal(get_balance("acc-1").version, 1);
}

static void test_get_unknown_account_is_not_found(void **state)
{
    payments_account_ref ref = {.id = "nobody"};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    expect(payments_get_account(module, &ctx, &ref, &a), CL_NOT_FOUND, &ctx, "id");
    ref.history_limit = PAYMENTS_MAX_HISTORY + 1;
    ctx = test_contract_ctx();
    expect(payments_get_account(module, &ctx, &ref, &a), CL_INVALID, &ctx, "history_limit");
}

static void test_deposits_add_up_with_history_newest_first(void **state)
{
    payments_deposit_request d = {.account_id = "acc-1", .amount = {0, "EUR"}};
    payments_account_ref ref = {.id = "acc-1", .history_limit = 2};
    payments_account a = {0};
    cl_ctx ctx;

    (void)state;
    open_with("acc-1", 0);
    for (int64_t i = 1; i <= 3; i++) {
        d.amount.amount = i * 100;
        ctx = test_contract_ctx();
        ok(payments_deposit(module, &ctx, &d, &a), &ctx);
        assert_int_equal(a.version, 1 + i);
        cl_schema_free(&payments_account_type, &a);
    }
    assert_balance("acc-1", 600, 0);
    ctx = test_contract_ctx();
    ok(payments_get_account(module, &ctx, &ref, &a), &ctx);
    assert_int_equal(a.history.n, 2);
    assert_int_equal(a.history.v[0].version, 4);
    assert_string_equal(a.history.v[0].type, "funds_deposited");
    assert_non_null(a.history.v[0].amount);
    assert_int_equal(a.history.v[0].amount->amount, 300);
    assert_string_equal(a.history.v[0].amount->currency, "EUR");
    assert_int_equal(a.history.v[1].version, 3);
    cl_schema_free(&payments_account_type, &a);
}

static void test_deposit_rejects_bad_amounts_and_unknown_accounts(void **state)
{
    payments_deposit_request d = {.account_id = "acc-1", .amount = {0, "EUR"}};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 0);
    expect(payments_deposit(module, &ctx, &d, &a), CL_INVALID, &ctx, "amount.amount");
    d.amount.amount = -5;
    ctx = test_contract_ctx();
    expect(payments_deposit(module, &ctx, &d, &a), CL_INVALID, &ctx, "amount.amount");
    d.amount.amount = 5;
    d.amount.currency = "USD";
    ctx = test_contract_ctx();
    expect(payments_deposit(module, &ctx, &d, &a), CL_INVALID, &ctx, "amount.currency");
    d.amount.currency = "EUR";
    d.account_id = "nobody";
    ctx = test_contract_ctx();
    expect(payments_deposit(module, &ctx, &d, &a), CL_NOT_FOUND, &ctx, "account_id");
    assert_null(a.id);
    assert_balance("acc-1", 0, 0);
}

static void test_deposit_with_stale_expected_version_conflicts(void **state)
{
    payments_deposit_request d = {
        .account_id = "acc-1", .amount = {50, "EUR"}, .expected_version = {true, 1}};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 0);
    ok(payments_deposit(module, &ctx, &d, &a), &ctx);
    cl_schema_free(&payments_account_type, &a);
    ctx = test_contract_ctx();
    expect(payments_deposit(module, &ctx, &d, &a), CL_CONFLICT, &ctx, "expected_version");
    assert_balance("acc-1", 50, 0);
}

static void test_idempotency_key_replays_and_refuses_other_requests(void **state)
{
    payments_deposit_request d = {.account_id = "acc-1", .amount = {70, "EUR"}};
    payments_account a = {0}, b = {0};
    cl_ctx ctx = key_ctx("dep-1");

    (void)state;
    open_with("acc-1", 0);
    ok(payments_deposit(module, &ctx, &d, &a), &ctx);
    ctx = key_ctx("dep-1");
    ok(payments_deposit(module, &ctx, &d, &b), &ctx);
    /* The stored outcome, not a second deposit. */
    assert_int_equal(b.version, a.version);
    assert_int_equal(b.available.amount, 70);
    assert_balance("acc-1", 70, 0);
    d.amount.amount = 71;
    ctx = key_ctx("dep-1");
    cl_schema_free(&payments_account_type, &b);
    expect(payments_deposit(module, &ctx, &d, &b), CL_CONFLICT, &ctx, "idempotency_key");
    assert_string_equal(ctx.err.message, CL_IDEMPOTENCY_CONFLICT_DETAIL);
    assert_balance("acc-1", 70, 0);
    cl_schema_free(&payments_account_type, &a);
}

static void test_idempotency_key_is_scoped_to_account_and_caller(void **state)
{
    payments_deposit_request d = {.account_id = "acc-1", .amount = {70, "EUR"}};
    payments_account a = {0}, b = {0};
    cl_ctx ctx = key_ctx("dep-shared");

    (void)state;
    open_with("acc-1", 0);
    open_with("acc-2", 0);
    ok(payments_deposit(module, &ctx, &d, &a), &ctx);
    /* The same key for a deposit to another account is another key: it deposits. */
    d.account_id = "acc-2";
    d.amount.amount = 30;
    ctx = key_ctx("dep-shared");
    ok(payments_deposit(module, &ctx, &d, &b), &ctx);
    assert_balance("acc-2", 30, 0);
    cl_schema_free(&payments_account_type, &b);
    /* Another caller's key is not this caller's, even for the same account. */
    d.account_id = "acc-1";
    d.amount.amount = 5;
    ctx = key_ctx("dep-shared");
    cl_strlcpy(ctx.principal, "user:other", sizeof(ctx.principal));
    ok(payments_deposit(module, &ctx, &d, &b), &ctx);
    assert_balance("acc-1", 75, 0);
    cl_schema_free(&payments_account_type, &b);
    /* The first caller's retry still replays, once. */
    d.amount.amount = 70;
    ctx = key_ctx("dep-shared");
    ok(payments_deposit(module, &ctx, &d, &b), &ctx);
    assert_int_equal(b.version, a.version);
    assert_balance("acc-1", 75, 0);
    cl_schema_free(&payments_account_type, &b);
    cl_schema_free(&payments_account_type, &a);
}

/* A key of exactly CL_IDEMPOTENCY_KEY_MAX bytes arrives whole: one byte more is another key. */
static void test_idempotency_key_of_max_length_travels_whole(void **state)
{
    payments_deposit_request d = {.account_id = "acc-1", .amount = {10, "EUR"}};
    char key[CL_IDEMPOTENCY_KEY_MAX + 1];
    payments_account a = {0};
    cl_ctx ctx;

    (void)state;
    open_with("acc-1", 0);
    memset(key, 'k', CL_IDEMPOTENCY_KEY_MAX);
    key[CL_IDEMPOTENCY_KEY_MAX] = '\0';
    for (int i = 0; i < 2; i++) {
        ctx = test_contract_ctx();
        ok(cl_ctx_set_idempotency_key(&ctx, key), &ctx);
        ok(payments_deposit(module, &ctx, &d, &a), &ctx);
        cl_schema_free(&payments_account_type, &a);
    }
    assert_balance("acc-1", 10, 0);
    /* Differing only in the last byte: were keys cut on the way, this would replay. */
    key[CL_IDEMPOTENCY_KEY_MAX - 1] = 'x';
    ctx = test_contract_ctx();
    ok(cl_ctx_set_idempotency_key(&ctx, key), &ctx);
    ok(payments_deposit(module, &ctx, &d, &a), &ctx);
    cl_schema_free(&payments_account_type, &a);
    assert_balance("acc-1", 20, 0);
}

/* --- payments --------------------------------------------------------------------------- */

static void test_authorize_holds_then_capture_takes(void **state)
{
    payments_payment p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 1000);
    ok(authorize(&ctx, "pay-1", "acc-1", 300, &p), &ctx);
    assert_string_equal(p.id, "pay-1");
    assert_string_equal(p.status, "authorized");
    assert_string_equal(p.account_id, "acc-1");
    assert_string_equal(p.order_id, "order-1");
    assert_int_equal(p.amount.amount, 300);
    assert_string_equal(p.amount.currency, "EUR");
    free_pay(&p);
    assert_balance("acc-1", 700, 300);
    for (int i = 0; i < 2; i++) { /* the second capture is a replay */
        ctx = test_contract_ctx();
        ok(on_payment(payments_capture_payment, &ctx, "pay-1", &p), &ctx);
        assert_string_equal(p.status, "captured");
        assert_int_equal(p.captured.amount, 300);
        free_pay(&p);
        assert_balance("acc-1", 700, 0);
    }
    ctx = test_contract_ctx();
    ok(on_payment(payments_get_payment, &ctx, "pay-1", &p), &ctx);
    assert_string_equal(p.status, "captured");
    free_pay(&p);
    ctx = test_contract_ctx();
    expect(on_payment(payments_void_payment, &ctx, "pay-1", &p), CL_CONFLICT, &ctx, "payment_id");
}

static void test_void_releases_the_hold(void **state)
{
    payments_payment p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 1000);
    ok(authorize(&ctx, "pay-1", "acc-1", 400, &p), &ctx);
    free_pay(&p);
    for (int i = 0; i < 2; i++) {
        ctx = test_contract_ctx();
        ok(on_payment(payments_void_payment, &ctx, "pay-1", &p), &ctx);
        assert_string_equal(p.status, "voided");
        free_pay(&p);
        assert_balance("acc-1", 1000, 0);
    }
    ctx = test_contract_ctx();
    expect(on_payment(payments_capture_payment, &ctx, "pay-1", &p), CL_CONFLICT, &ctx,
           "payment_id");
    ctx = test_contract_ctx();
    expect(on_payment(payments_capture_payment, &ctx, "pay-404", &p), CL_NOT_FOUND, &ctx,
           "payment_id");
}

static void test_insufficient_funds_fails_cleanly(void **state)
{
    payments_payment p = {0};
    balance before;
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 500);
    before = get_balance("acc-1");
    expect(authorize(&ctx, "pay-1", "acc-1", 501, &p), CL_CONFLICT, &ctx, "amount");
    assert_non_null(strstr(ctx.err.message, "insufficient funds"));
    assert_null(p.id);
    /* Nothing held, nothing appended, no payment. */
    assert_int_equal(get_balance("acc-1").version, before.version);
    assert_balance("acc-1", 500, 0);
    ctx = test_contract_ctx();
    expect(on_payment(payments_get_payment, &ctx, "pay-1", &p), CL_NOT_FOUND, &ctx, "payment_id");
    /* Exactly what is there may be held. */
    ctx = test_contract_ctx();
    ok(authorize(&ctx, "pay-2", "acc-1", 500, &p), &ctx);
    free_pay(&p);
    assert_balance("acc-1", 0, 500);
}

static void test_authorize_replay_holds_once(void **state)
{
    payments_payment p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 1000);
    ok(authorize(&ctx, "pay-1", "acc-1", 100, &p), &ctx);
    free_pay(&p);
    ctx = test_contract_ctx();
    ok(authorize(&ctx, "pay-1", "acc-1", 100, &p), &ctx);
    assert_string_equal(p.status, "authorized");
    free_pay(&p);
    assert_balance("acc-1", 900, 100);
    ctx = test_contract_ctx();
    expect(authorize(&ctx, "pay-1", "acc-1", 200, &p), CL_CONFLICT, &ctx, "payment_id");
    assert_balance("acc-1", 900, 100);
    /* Without a payment id, the idempotency key makes a retry safe. */
    ctx = key_ctx("auth-x");
    ok(authorize(&ctx, NULL, "acc-1", 50, &p), &ctx);
    assert_non_null(p.id);
    {
        char first[PAYMENTS_ID_MAX + 1];
        cl_strlcpy(first, p.id, sizeof(first));
        free_pay(&p);
        ctx = key_ctx("auth-x");
        ok(authorize(&ctx, NULL, "acc-1", 50, &p), &ctx);
        assert_string_equal(p.id, first);
        free_pay(&p);
    }
    assert_balance("acc-1", 850, 150);
}

static void test_refunds_up_to_what_was_captured(void **state)
{
    payments_payment p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-1", 1000);
    ok(authorize(&ctx, "pay-1", "acc-1", 300, &p), &ctx);
    free_pay(&p);
    ctx = test_contract_ctx();
    expect(refund(&ctx, "pay-1", 10, &p), CL_CONFLICT, &ctx, "payment_id"); /* not captured */
    ctx = test_contract_ctx();
    ok(on_payment(payments_capture_payment, &ctx, "pay-1", &p), &ctx);
    free_pay(&p);
    ctx = key_ctx("refund-1");
    ok(refund(&ctx, "pay-1", 100, &p), &ctx);
    assert_string_equal(p.status, "captured");
    assert_int_equal(p.refunded.amount, 100);
    free_pay(&p);
    ctx = key_ctx("refund-1"); /* a retried refund refunds once */
    ok(refund(&ctx, "pay-1", 100, &p), &ctx);
    free_pay(&p);
    assert_balance("acc-1", 800, 0);
    ctx = test_contract_ctx();
    expect(refund(&ctx, "pay-1", 201, &p), CL_CONFLICT, &ctx, "amount");
    ctx = test_contract_ctx();
    ok(refund(&ctx, "pay-1", 200, &p), &ctx);
    assert_string_equal(p.status, "refunded");
    assert_int_equal(p.refunded.amount, 300);
    free_pay(&p);
    assert_balance("acc-1", 1000, 0);
    ctx = test_contract_ctx();
    expect(refund(&ctx, "pay-1", 1, &p), CL_CONFLICT, &ctx, "payment_id");
}

static void test_rebuild_gives_the_same_projections(void **state)
{
    payments_rebuild_report r = {0};
    payments_payment p = {0};
    cl_empty none = {0};
    balance a_before, b_before;
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_with("acc-a", 1000);
    open_with("acc-b", 50);
    ok(authorize(&ctx, "pay-1", "acc-a", 300, &p), &ctx);
    free_pay(&p);
    ctx = test_contract_ctx();
    ok(on_payment(payments_capture_payment, &ctx, "pay-1", &p), &ctx);
    free_pay(&p);
    ctx = test_contract_ctx();
    ok(refund(&ctx, "pay-1", 20, &p), &ctx);
    free_pay(&p);
    ctx = test_contract_ctx();
    ok(authorize(&ctx, "pay-2", "acc-b", 50, &p), &ctx);
    free_pay(&p);
    a_before = get_balance("acc-a");
    b_before = get_balance("acc-b");
    ctx = test_contract_ctx();
    ok(payments_rebuild_projections(module, &ctx, &none, &r), &ctx);
    assert_true(r.unchanged);
    assert_int_equal(r.streams, 4);
    assert_int_equal(r.accounts, 2);
    assert_int_equal(r.payments, 2);
    /* acc-a: opened, deposit, held, captured, refunded; acc-b: opened, deposit, held;
     * pay-1: authorized, captured, refunded; pay-2: authorized. */
    assert_int_equal(r.events, 5 + 3 + 3 + 1);
    assert_balance("acc-a", a_before.available, a_before.held);
    assert_balance("acc-b", b_before.available, b_before.held);
    assert_int_equal(get_balance("acc-a").version, a_before.version);
    ctx = test_contract_ctx();
    ok(on_payment(payments_get_payment, &ctx, "pay-1", &p), &ctx);
    assert_int_equal(p.refunded.amount, 20);
    free_pay(&p);
}

/* --- object-level access: own_only ------------------------------------------------------ */

/* A caller who may act only on what it owns (a customer, as the gateway marks one). */
static cl_ctx own_ctx(const char *principal)
{
    cl_ctx ctx = test_contract_ctx();

    cl_strlcpy(ctx.principal, principal, sizeof(ctx.principal));
    ctx.own_only = 1;
    return ctx;
}

/* Staff: a named caller who may act on everything (own_only 0). */
static cl_ctx staff_ctx(void)
{
    cl_ctx ctx = test_contract_ctx();

    cl_strlcpy(ctx.principal, "user:staff", sizeof(ctx.principal));
    return ctx;
}

/* Opens account id as principal (own_only), with deposit minor units in it. */
static void open_as(const char *principal, const char *id, int64_t deposit)
{
    payments_account_input in = {.id = (char *)id, .owner = "Own", .currency = "EUR"};
    payments_deposit_request d = {.account_id = (char *)id, .amount = {deposit, "EUR"}};
    payments_account a = {0};
    cl_ctx ctx = own_ctx(principal);

    ok(payments_open_account(module, &ctx, &in, &a), &ctx);
    cl_schema_free(&payments_account_type, &a);
    ctx = own_ctx(principal);
    ok(payments_deposit(module, &ctx, &d, &a), &ctx);
    cl_schema_free(&payments_account_type, &a);
}

/* What get_account answers ctx for id: the status, with ctx->err on failure. */
static cl_status get_as(cl_ctx *ctx, const char *id)
{
    payments_account_ref ref = {.id = (char *)id};
    payments_account a = {0};
    cl_status rc = payments_get_account(module, ctx, &ref, &a);

    cl_schema_free(&payments_account_type, &a);
    return rc;
}

/*
 * A customer reads and pays into its own account only: another's, or one of nobody's,
 * answers not_found as if it did not exist (even for a request that would be invalid
 * there); staff see them all.
 */
static void test_own_only_caller_reaches_only_its_own_accounts(void **state)
{
    payments_deposit_request d = {.account_id = "own-b", .amount = {5, "EUR"}};
    payments_account a = {0};
    payments_payment p = {0};
    cl_ctx ctx = own_ctx("user:a");

    (void)state;
    open_as("user:a", "own-a", 100);
    open_as("user:b", "own-b", 200);
    ok(get_as(&ctx, "own-a"), &ctx);
    ctx = own_ctx("user:a");
    expect(get_as(&ctx, "own-b"), CL_NOT_FOUND, &ctx, "id");
    ctx = own_ctx("user:b");
    ok(get_as(&ctx, "own-b"), &ctx);
    ctx = own_ctx("user:a");
    expect(payments_deposit(module, &ctx, &d, &a), CL_NOT_FOUND, &ctx, "account_id");
    /* The account's currency is not revealed by the answer either. */
    d.amount.currency = "USD";
    ctx = own_ctx("user:a");
    expect(payments_deposit(module, &ctx, &d, &a), CL_NOT_FOUND, &ctx, "account_id");
    ctx = own_ctx("user:a");
    expect(authorize(&ctx, "pay-x", "own-b", 10, &p), CL_NOT_FOUND, &ctx, "account_id");
    /* Nothing of it reached B's account; staff see both, unchanged. */
    ctx = staff_ctx();
    ok(get_as(&ctx, "own-a"), &ctx);
    ctx = staff_ctx();
    ok(get_as(&ctx, "own-b"), &ctx);
    assert_balance("own-a", 100, 0);
    assert_balance("own-b", 200, 0);
    /* An own_only caller without a principal owns nothing. */
    ctx = own_ctx("");
    expect(get_as(&ctx, "own-a"), CL_NOT_FOUND, &ctx, "id");
    /* An account opened anonymously (or before owners were kept) is nobody's. */
    open_with("acc-anon", 100);
    ctx = own_ctx("user:a");
    expect(get_as(&ctx, "acc-anon"), CL_NOT_FOUND, &ctx, "id");
    ctx = own_ctx("");
    expect(get_as(&ctx, "acc-anon"), CL_NOT_FOUND, &ctx, "id");
    ctx = staff_ctx();
    ok(get_as(&ctx, "acc-anon"), &ctx);
}

/*
 * A payment is its account's: an own_only caller reaches the payments of its own
 * accounts only, while the saga (service:orders, own_only 0) settles anyone's.
 */
static void test_own_only_caller_reaches_only_payments_of_its_accounts(void **state)
{
    payments_payment p = {0};
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    open_as("user:a", "own-a", 100);
    open_as("user:b", "own-b", 200);
    cl_strlcpy(ctx.principal, "service:orders", sizeof(ctx.principal));
    ok(authorize(&ctx, "pay-b", "own-b", 50, &p), &ctx);
    free_pay(&p);
    ctx = own_ctx("user:a");
    expect(on_payment(payments_get_payment, &ctx, "pay-b", &p), CL_NOT_FOUND, &ctx, "payment_id");
    ctx = own_ctx("user:a");
    expect(on_payment(payments_capture_payment, &ctx, "pay-b", &p), CL_NOT_FOUND, &ctx,
           "payment_id");
    ctx = own_ctx("user:a");
    expect(on_payment(payments_void_payment, &ctx, "pay-b", &p), CL_NOT_FOUND, &ctx, "payment_id");
    ctx = own_ctx("user:b");
    ok(on_payment(payments_get_payment, &ctx, "pay-b", &p), &ctx);
    assert_string_equal(p.status, "authorized");
    free_pay(&p);
    ctx = test_contract_ctx();
    cl_strlcpy(ctx.principal, "service:orders", sizeof(ctx.principal));
    ok(on_payment(payments_capture_payment, &ctx, "pay-b", &p), &ctx);
    free_pay(&p);
    ctx = own_ctx("user:a");
    expect(refund(&ctx, "pay-b", 10, &p), CL_NOT_FOUND, &ctx, "payment_id");
    assert_balance("own-b", 150, 0);
}

/*
 * Ownership lives in the events: it survives snapshots (CLEAVE_PAYMENTS_SNAPSHOT_EVERY is
 * 50 by default, crossed here) and a rebuild of the projections, which an own_only caller
 * may not run (it is about every account).
 */
static void test_ownership_survives_snapshots_and_rebuilds(void **state)
{
    payments_deposit_request d = {.account_id = "own-a", .amount = {1, "EUR"}};
    payments_rebuild_report r = {0};
    payments_account a = {0};
    cl_empty none = {0};
    cl_ctx ctx;

    (void)state;
    open_as("user:a", "own-a", 100);
    for (int i = 0; i < 60; i++) {
        ctx = own_ctx("user:a");
        ok(payments_deposit(module, &ctx, &d, &a), &ctx);
        cl_schema_free(&payments_account_type, &a);
    }
    ctx = own_ctx("user:b");
    expect(payments_deposit(module, &ctx, &d, &a), CL_NOT_FOUND, &ctx, "account_id");
    ctx = own_ctx("user:a");
    expect(payments_rebuild_projections(module, &ctx, &none, &r), CL_FORBIDDEN, &ctx, NULL);
    ctx = staff_ctx();
    ok(payments_rebuild_projections(module, &ctx, &none, &r), &ctx);
    assert_true(r.unchanged);
    ctx = own_ctx("user:a");
    ok(get_as(&ctx, "own-a"), &ctx);
    ctx = own_ctx("user:b");
    expect(get_as(&ctx, "own-a"), CL_NOT_FOUND, &ctx, "id");
    assert_balance("own-a", 160, 0);
}

/* --- concurrency ------------------------------------------------------------------------ */

typedef struct racer {
    pthread_t thread;
    cl_status got;
} racer;

static pthread_barrier_t start_line;

static void *race(void *arg)
{
    racer *me = arg;
    payments_deposit_request d = {
        .account_id = "acc-1", .amount = {10, "EUR"}, .expected_version = {true, 1}};
    payments_account a = {0};
    cl_ctx ctx = test_contract_ctx();

    pthread_barrier_wait(&start_line);
    me->got = payments_deposit(module, &ctx, &d, &a);
    cl_schema_free(&payments_account_type, &a);
    return NULL;
}

/*
 * Racers with one key, half of them with another amount: one deposit happens; every
 * racer with the winner's request gets its outcome, every other one the documented
 * conflict (never a database's words), whoever won.
 */
typedef struct key_racer {
    pthread_t thread;
    int64_t amount;
    cl_status got;
    int64_t version;
    char detail[256];
} key_racer;

static void *race_with_key(void *arg)
{
    key_racer *me = arg;
    payments_deposit_request d = {.account_id = "acc-1", .amount = {me->amount, "EUR"}};
    payments_account a = {0};
    cl_ctx ctx = key_ctx("race-key");

    pthread_barrier_wait(&start_line);
    me->got = payments_deposit(module, &ctx, &d, &a);
    me->version = me->got == CL_OK ? a.version : -1;
    cl_strlcpy(me->detail, ctx.err.message, sizeof(me->detail));
    cl_schema_free(&payments_account_type, &a);
    return NULL;
}

static void test_concurrent_requests_with_one_key_get_one_answer(void **state)
{
    key_racer racers[RACERS];
    int64_t won_amount = 0, won_version = -1;

    (void)state;
    open_with("acc-1", 0);
    pthread_barrier_init(&start_line, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i].amount = i % 2 == 0 ? 10 : 20;
        assert_int_equal(pthread_create(&racers[i].thread, NULL, race_with_key, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(racers[i].thread, NULL);
    }
    pthread_barrier_destroy(&start_line);
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].got == CL_OK) {
            assert_true(won_version == -1 || won_amount == racers[i].amount);
            assert_true(won_version == -1 || won_version == racers[i].version);
            won_amount = racers[i].amount;
            won_version = racers[i].version;
        }
    }
    assert_int_not_equal(won_version, -1);
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].amount == won_amount) {
            assert_int_equal(racers[i].got, CL_OK);
        } else {
            assert_int_equal(racers[i].got, CL_CONFLICT);
            assert_string_equal(racers[i].detail, CL_IDEMPOTENCY_CONFLICT_DETAIL);
        }
    }
    assert_balance("acc-1", won_amount, 0);
    assert_int_equal(get_balance("acc-1").version, 2);
}

static void test_concurrent_writers_of_one_version_one_wins(void **state)
{
    racer racers[RACERS];
    int won = 0, conflict = 0;

    (void)state;
    open_with("acc-1", 0);
    pthread_barrier_init(&start_line, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(racers[i].thread, NULL);
        won += racers[i].got == CL_OK;
        conflict += racers[i].got == CL_CONFLICT;
    }
    pthread_barrier_destroy(&start_line);
    assert_int_equal(won, 1);
    assert_int_equal(conflict, RACERS - 1);
    assert_balance("acc-1", 10, 0);
    assert_int_equal(get_balance("acc-1").version, 2);
}

/* --- the runner ----------------------------------------------------------------------------- */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int payments_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                          void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_open_account_then_get),
        CONTRACT_TEST(test_open_account_rejects_bad_input_and_taken_ids),
        CONTRACT_TEST(test_get_unknown_account_is_not_found),
        CONTRACT_TEST(test_deposits_add_up_with_history_newest_first),
        CONTRACT_TEST(test_deposit_rejects_bad_amounts_and_unknown_accounts),
        CONTRACT_TEST(test_deposit_with_stale_expected_version_conflicts),
        CONTRACT_TEST(test_idempotency_key_replays_and_refuses_other_requests),
        CONTRACT_TEST(test_idempotency_key_is_scoped_to_account_and_caller),
        CONTRACT_TEST(test_idempotency_key_of_max_length_travels_whole),
        CONTRACT_TEST(test_concurrent_requests_with_one_key_get_one_answer),
        CONTRACT_TEST(test_authorize_holds_then_capture_takes),
        CONTRACT_TEST(test_void_releases_the_hold),
        CONTRACT_TEST(test_insufficient_funds_fails_cleanly),
        CONTRACT_TEST(test_authorize_replay_holds_once),
        CONTRACT_TEST(test_refunds_up_to_what_was_captured),
        CONTRACT_TEST(test_rebuild_gives_the_same_projections),
        CONTRACT_TEST(test_concurrent_writers_of_one_version_one_wins),
        CONTRACT_TEST(test_own_only_caller_reaches_only_its_own_accounts),
        CONTRACT_TEST(test_own_only_caller_reaches_only_payments_of_its_accounts),
        CONTRACT_TEST(test_ownership_survives_snapshots_and_rebuilds),
    };

    test_contract_bind(setup_fn, teardown_fn, PAYMENTS_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
