/* The codec every declared type goes through: round trips, limits, error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/module.h"

#define ITEM(X, T)                                                                                 \
    X(T, STR, name, _)                                                                             \
    X(T, OBJ, price, cl_money)
CL_TYPE_DECLARE(test_item, ITEM)
CL_TYPE_DEFINE(test_item, ITEM)

#define ORDER(X, T)                                                                                \
    X(T, I64, id, _)                                                                               \
    X(T, OPT_I64, expected, _)                                                                     \
    X(T, BOOL, paid, _)                                                                            \
    X(T, STRS, tags, _)                                                                            \
    X(T, OBJS, items, test_item)                                                                   \
    X(T, OPT_OBJ, discount, cl_money)                                                              \
    X(T, STR, note, _)
CL_TYPE_DECLARE(test_order, ORDER)
CL_TYPE_DEFINE(test_order, ORDER)

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    return j;
}

static void test_schema_round_trip_keeps_every_kind(void **state)
{
    json_t *in =
        parse("{\"id\":7,\"expected\":3,\"paid\":true,\"tags\":[\"a\",\"b\"],"
              "\"items\":[{\"name\":\"x\",\"price\":{\"amount\":150,\"currency\":\"EUR\"}}],"
              "\"discount\":{\"amount\":5,\"currency\":\"EUR\"},\"note\":null}");
    test_order o = {0};
    cl_error err = {0};
    json_t *out;

    (void)state;
    assert_int_equal(cl_schema_from_json(&test_order_type, in, CL_DECODE_STRICT, &o, &err), CL_OK);
    assert_int_equal(o.id, 7);
    assert_true(o.expected.set);
    assert_int_equal(o.expected.v, 3);
    assert_true(o.paid);
    assert_int_equal(o.tags.n, 2);
    assert_string_equal(o.tags.v[1], "b");
    assert_int_equal(o.items.n, 1);
    assert_string_equal(o.items.v[0].name, "x");
    assert_int_equal(o.items.v[0].price.amount, 150);
    assert_non_null(o.discount);
    assert_int_equal(o.discount->amount, 5);
    assert_null(o.note);

    out = cl_schema_to_json(&test_order_type, &o);
    assert_non_null(out);
    /* note is null either way; every other member survives the trip unchanged. */
    json_object_set_new(in, "note", json_null());
    assert_true(json_equal(in, out));
    json_decref(out);
    json_decref(in);
    cl_schema_free(&test_order_type, &o);
    assert_null(o.tags.v);
}

static void test_schema_absent_optionals_stay_unset(void **state)
{
    json_t *in = parse("{\"id\":1}");
    test_order o = {0};
    cl_error err = {0};
    json_t *out;

    (void)state;
    assert_int_equal(cl_schema_from_json(&test_order_type, in, CL_DECODE_STRICT, &o, &err), CL_OK);
    assert_false(o.expected.set);
    assert_false(o.tags.set);
    assert_null(o.discount);
    out = cl_schema_to_json(&test_order_type, &o);
    assert_null(json_object_get(out, "expected"));
    assert_null(json_object_get(out, "discount"));
    assert_null(json_object_get(out, "tags"));
    json_decref(out);
    json_decref(in);
    cl_schema_free(&test_order_type, &o);
}

static void expect_invalid(const char *text, int flags, const char *field)
{
    json_t *in = parse(text);
    test_order o = {0};
    cl_error err = {0};

    assert_int_equal(cl_schema_from_json(&test_order_type, in, flags, &o, &err), CL_INVALID);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 0);
    /* Nothing is left allocated on failure: ASan's leak check holds us to it. */
    assert_null(o.tags.v);
    assert_null(o.items.v);
    json_decref(in);
}

static void test_schema_names_the_offending_field(void **state)
{
    (void)state;
    expect_invalid("{\"id\":\"7\"}", 0, "id");
    expect_invalid("{\"paid\":1}", 0, "paid");
    expect_invalid("{\"tags\":[\"a\",2]}", 0, "tags[1]");
    expect_invalid("{\"tags\":\"a\"}", 0, "tags");
    expect_invalid("{\"items\":[{\"name\":\"a\"},{\"price\":{\"amount\":1.5}}]}", 0,
                   "items[1].price.amount");
    expect_invalid("{\"discount\":[]}", 0, "discount");
    expect_invalid("{\"id\":1,\"colour\":\"red\"}", CL_DECODE_STRICT, "colour");
    expect_invalid("{\"items\":[{\"name\":\"a\",\"x\":1}]}", CL_DECODE_STRICT, "items[0].x");
}

static void test_schema_lenient_ignores_unknown_fields(void **state)
{
    json_t *in = parse("{\"id\":1,\"added_in_v2\":{\"deep\":true}}");
    test_order o = {0};
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_schema_from_json(&test_order_type, in, CL_DECODE_LENIENT, &o, &err), CL_OK);
    assert_int_equal(o.id, 1);
    json_decref(in);
    cl_schema_free(&test_order_type, &o);
}

static void test_schema_refuses_too_many_items(void **state)
{
    json_t *in = json_pack("{s:[]}", "tags");
    json_t *tags = json_object_get(in, "tags");
    test_order o = {0};
    cl_error err = {0};

    (void)state;
    for (int i = 0; i <= CL_SCHEMA_MAX_ITEMS; i++) {
        json_array_append_new(tags, json_string("t"));
    }
    assert_int_equal(cl_schema_from_json(&test_order_type, in, 0, &o, &err), CL_INVALID);
    assert_string_equal(err.field, "tags");
    json_decref(in);
}

static void test_schema_copy_is_deep(void **state)
{
    json_t *in =
        parse("{\"id\":9,\"expected\":0,\"paid\":true,\"tags\":[\"red\",\"blue\"],"
              "\"items\":[{\"name\":\"widget\",\"price\":{\"amount\":150,\"currency\":\"EUR\"}},"
              "{\"price\":{\"amount\":1,\"currency\":\"USD\"}}],"
              "\"discount\":{\"amount\":5,\"currency\":\"EUR\"},\"note\":\"n\"}");
    test_order a = {0};
    test_order b = {0};
    test_order empty = {0};
    cl_error err = {0};
    json_t *before, *after;

    (void)state;
    assert_int_equal(cl_schema_from_json(&test_order_type, in, CL_DECODE_STRICT, &a, &err), CL_OK);
    before = cl_schema_to_json(&test_order_type, &a);
    assert_int_equal(cl_schema_copy(&test_order_type, &b, &a), CL_OK);
    /* Nothing of b is a's: a freed, b still reads the same. */
    assert_ptr_not_equal(b.tags.v, a.tags.v);
    assert_ptr_not_equal(b.items.v, a.items.v);
    assert_ptr_not_equal(b.discount, a.discount);
    cl_schema_free(&test_order_type, &a);
    after = cl_schema_to_json(&test_order_type, &b);
    assert_true(json_equal(before, after));
    assert_true(b.expected.set);
    assert_null(b.items.v[1].name);
    cl_schema_free(&test_order_type, &b);
    /* An empty object copies to an empty one: nothing allocated, nothing set. */
    assert_int_equal(cl_schema_copy(&test_order_type, &b, &empty), CL_OK);
    assert_null(b.tags.v);
    assert_null(b.items.v);
    assert_null(b.discount);
    assert_false(b.expected.set);
    cl_schema_free(&test_order_type, &b);
    json_decref(after);
    json_decref(before);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_round_trip_keeps_every_kind),
        cmocka_unit_test(test_schema_absent_optionals_stay_unset),
        cmocka_unit_test(test_schema_names_the_offending_field),
        cmocka_unit_test(test_schema_lenient_ignores_unknown_fields),
        cmocka_unit_test(test_schema_refuses_too_many_items),
        cmocka_unit_test(test_schema_copy_is_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
