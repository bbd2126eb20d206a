/* The status table: every status has a distinct name, an HTTP status and a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/status.h"

static void test_status_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < CL_STATUS_COUNT; i++) {
        cl_status parsed = CL_INTERNAL;
        assert_int_equal(cl_status_parse(cl_status_name((cl_status)i), &parsed), CL_OK);
        assert_int_equal(parsed, i);
        assert_true(strlen(cl_status_message((cl_status)i)) > 0);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(cl_status_name((cl_status)i), cl_status_name((cl_status)j));
        }
    }
    assert_int_equal(cl_status_parse("no_such_status", &(cl_status){0}), CL_INVALID);
}

static void test_status_maps_to_http(void **state)
{
    (void)state;
    assert_int_equal(cl_status_http(CL_OK), 200);
    assert_int_equal(cl_status_http(CL_INVALID), 400);
    assert_int_equal(cl_status_http(CL_UNAUTHORIZED), 401);
    assert_int_equal(cl_status_http(CL_FORBIDDEN), 403);
    assert_int_equal(cl_status_http(CL_NOT_FOUND), 404);
    assert_int_equal(cl_status_http(CL_CONFLICT), 409);
    assert_int_equal(cl_status_http(CL_INTERNAL), 500);
    assert_int_equal(cl_status_http(CL_UNAVAILABLE), 503);
    assert_int_equal(cl_status_http(CL_DEADLINE_EXCEEDED), 504);
    assert_int_equal(cl_status_http((cl_status)999), 500);
    assert_string_equal(cl_status_name((cl_status)-1), "unknown");
}

static void test_error_set_fills_fixed_buffers(void **state)
{
    cl_error err;
    char longer[600];

    (void)state;
    assert_int_equal(cl_error_set(&err, CL_INVALID, "price", "must be >= %d", 0), CL_INVALID);
    assert_int_equal(err.status, CL_INVALID);
    assert_string_equal(err.field, "price");
    assert_string_equal(err.message, "must be >= 0");
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    cl_error_set(&err, CL_INTERNAL, longer, "%s", longer);
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
    assert_int_equal(strlen(err.field), sizeof(err.field) - 1);
    cl_error_set(&err, CL_NOT_FOUND, NULL, NULL);
    assert_string_equal(err.message, cl_status_message(CL_NOT_FOUND));
    assert_int_equal(cl_error_set(NULL, CL_CONFLICT, NULL, "x"), CL_CONFLICT);
}

static void test_ctx_deadline(void **state)
{
    cl_ctx ctx;

    (void)state;
    cl_ctx_init(&ctx, 0);
    assert_int_equal(cl_ctx_remaining_ms(&ctx), INT64_MAX);
    cl_ctx_init(&ctx, 60000);
    assert_true(cl_ctx_remaining_ms(&ctx) > 50000);
    ctx.deadline_ms = cl_now_ms() - 1;
    assert_int_equal(cl_ctx_remaining_ms(&ctx), 0);
    assert_int_equal(cl_fail(&ctx, CL_NOT_FOUND, "id", "no product %d", 4), CL_NOT_FOUND);
    assert_string_equal(ctx.err.message, "no product 4");
}

/* A message may quote the error it replaces: the remote binding wraps what decoding said. */
static void test_fail_may_quote_its_own_message(void **state)
{
    cl_ctx ctx;

    (void)state;
    cl_ctx_init(&ctx, 0);
    (void)cl_fail(&ctx, CL_INVALID, "price", "price must be an integer");
    (void)cl_fail(&ctx, CL_INTERNAL, NULL, "catalog.get_product answered an unreadable %s: %s",
                  "catalog_product", ctx.err.message);
    assert_string_equal(ctx.err.message, "catalog.get_product answered an unreadable "
                                         "catalog_product: price must be an integer");
    assert_string_equal(ctx.err.field, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_round_trip),
        cmocka_unit_test(test_status_maps_to_http),
        cmocka_unit_test(test_error_set_fills_fixed_buffers),
        cmocka_unit_test(test_ctx_deadline),
        cmocka_unit_test(test_fail_may_quote_its_own_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
