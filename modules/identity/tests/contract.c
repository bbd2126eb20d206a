/*
 * The identity module's contract suite (see contract.h). Every test starts from a fresh
 * identity module with no item and goes through the operations only: no SQL, no knowledge
 * of how a binding stores or transports anything.
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

#include <cmocka.h>

#include "test_module.h"

/* The binding under test, between setup and teardown (tests/support/test_module.h). */
static const cl_handle *module;

static int setup(void **state)
{
    (void)state;
    return test_contract_setup(&module);
}

/* --- helpers ------------------------------------------------------------------------ */

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

/* A string of n copies of c (n < size). */
static char *repeat(char *buf, size_t size, char c, size_t n)
{
    assert_true(n < size);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* Creates an item that must be accepted; *out: cl_schema_free. */
static void create(const char *name, identity_item *out)
{
    identity_item_request in = {.name = (char *)name};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = identity_create_item(module, &ctx, &in, out);

    if (st != CL_OK) {
        fail_msg("create %s: %s: %s (%s)", name, cl_status_name(st), ctx.err.message,
                 ctx.err.field);
    }
    assert_true(out->id > 0);
    assert_string_equal(out->name, name);
    assert_timestamp(out->created_at);
}

/* Reads an item that must exist; *out: cl_schema_free. */
static void get(int64_t id, identity_item *out)
{
    identity_item_ref ref = {.id = id};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = identity_get_item(module, &ctx, &ref, out);

    if (st != CL_OK) {
        fail_msg("get %" PRId64 ": %s: %s", id, cl_status_name(st), ctx.err.message);
    }
}

static void expect_create_invalid(const char *name, const char *why)
{
    identity_item_request in = {.name = (char *)name};
    identity_item out = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_status st = identity_create_item(module, &ctx, &in, &out);

    if (st != CL_INVALID || strcmp(ctx.err.field, "name") != 0) {
        fail_msg("create with a %s name: want invalid on name, got %s on \"%s\"", why,
                 cl_status_name(st), ctx.err.field);
    }
    assert_null(out.name);
    assert_int_equal(out.id, 0);
}

/* --- creating ---------------------------------------------------------------------- */

static void test_create_answers_with_the_item_as_stored(void **state)
{
    identity_item a = {0}, got = {0};

    (void)state;
    create("first", &a);
    get(a.id, &got);
    assert_int_equal(got.id, a.id);
    assert_string_equal(got.name, "first");
    assert_string_equal(got.created_at, a.created_at);
    cl_schema_free(&identity_item_type, &got);
    cl_schema_free(&identity_item_type, &a);
}

static void test_each_create_makes_its_own_item(void **state)
{
    identity_item a = {0}, b = {0}, got = {0};

    (void)state;
    create("same", &a);
    create("same", &b);
    assert_true(b.id > a.id);
    get(a.id, &got);
    assert_string_equal(got.name, "same");
    cl_schema_free(&identity_item_type, &got);
    memset(&got, 0, sizeof(got));
    get(b.id, &got);
    assert_int_equal(got.id, b.id);
    assert_string_equal(got.created_at, b.created_at);
    cl_schema_free(&identity_item_type, &got);
    cl_schema_free(&identity_item_type, &a);
    cl_schema_free(&identity_item_type, &b);
}

static void test_create_rejects_a_bad_name_and_writes_nothing(void **state)
{
    char buf[IDENTITY_CONTRACT_NAME_MAX + 2];
    identity_item before = {0}, longest = {0}, after = {0};

    (void)state;
    create("before", &before);
    expect_create_invalid(NULL, "absent");
    expect_create_invalid("", "empty");
    /* The configured limit (CLEAVE_IDENTITY_NAME_MAX), not the default, applies. */
    expect_create_invalid(repeat(buf, sizeof(buf), 'x', IDENTITY_CONTRACT_NAME_MAX + 1),
                          "too long");
    expect_create_invalid("new\nline", "newline");
    expect_create_invalid("\ttab", "tab");
    create(repeat(buf, sizeof(buf), 'x', IDENTITY_CONTRACT_NAME_MAX), &longest);
    create("after", &after);
    /* The refusals took no id: nothing was written for them. */
    assert_int_equal(longest.id, before.id + 1);
    assert_int_equal(after.id, longest.id + 1);
    cl_schema_free(&identity_item_type, &before);
    cl_schema_free(&identity_item_type, &longest);
    cl_schema_free(&identity_item_type, &after);
}

/* --- reading --------------------------------------------------------------------------- */

static void test_get_of_an_unknown_id_is_not_found(void **state)
{
    static const int64_t ids[] = {1, 424242, 0, -1};
    identity_item a = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        identity_item_ref ref = {.id = ids[i]};
        identity_item item = {0};
        cl_ctx ctx = test_contract_ctx();
        cl_status st = identity_get_item(module, &ctx, &ref, &item);

        if (st != CL_NOT_FOUND || strcmp(ctx.err.field, "id") != 0) {
            fail_msg("get_item %" PRId64 ": want not_found on id, got %s on \"%s\"", ids[i],
                     cl_status_name(st), ctx.err.field);
        }
        assert_null(item.name);
        assert_int_equal(item.id, 0);
    }
    /* Known ids stay apart from unknown ones. */
    create("known", &a);
    {
        identity_item_ref ref = {.id = a.id + 1};
        identity_item item = {0};
        cl_ctx ctx = test_contract_ctx();

        assert_int_equal(identity_get_item(module, &ctx, &ref, &item), CL_NOT_FOUND);
    }
    cl_schema_free(&identity_item_type, &a);
}

/* --- the runner ------------------------------------------------------------------------ */

#define CONTRACT_TEST(f) cmocka_unit_test_setup_teardown(f, setup, test_contract_teardown)

int identity_contract_run(const char *binding_name, const cl_handle *(*setup_fn)(void),
                          void (*teardown_fn)(void))
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(test_create_answers_with_the_item_as_stored),
        CONTRACT_TEST(test_each_create_makes_its_own_item),
        CONTRACT_TEST(test_create_rejects_a_bad_name_and_writes_nothing),
        CONTRACT_TEST(test_get_of_an_unknown_id_is_not_found),
    };

    test_contract_bind(setup_fn, teardown_fn, IDENTITY_OPS_VERSION);
    return cmocka_run_group_tests_name(binding_name, tests, NULL, NULL);
}
