/* The codec every declared type goes through: round trips, limits, error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/module.h"

#include "../support/schema_agrees.h"

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

/* cl_schema_parse against jansson's parse and cl_schema_from_json, both flags, one text. */
static void expect_agreement(const char *text, size_t len)
{
    for (int strict = 0; strict < 2; strict++) {
        const char *diff = schema_agrees(&test_order_type, text, len,
                                         strict ? CL_DECODE_STRICT : CL_DECODE_LENIENT);
        if (diff != NULL) {
            fail_msg("%s on %.200s (%zu bytes)", diff, text, len);
        }
    }
}

/* n copies of s, then tail, in a new string. */
static char *repeat(const char *head, const char *s, size_t n, const char *tail)
{
    size_t hl = strlen(head), sl = strlen(s), tl = strlen(tail);
    char *out = malloc(hl + sl * n + tl + 1);
    char *p = out;

    assert_non_null(out);
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++, p += sl) {
        memcpy(p, s, sl);
    }
    memcpy(p, tail, tl + 1);
    return out;
}

static void test_schema_parse_agrees_with_jansson_on_chosen_texts(void **state)
{
    static const char whole[] =
        "{\"id\":7,\"expected\":3,\"paid\":true,\"tags\":[\"a\",\"b\"],\"items\":[{\"name\":\"x\","
        "\"price\":{\"amount\":150,\"currency\":\"EUR\"}}],\"discount\":{\"amount\":5,"
        "\"currency\":\"EUR\"},\"note\":null}";
    static const char walked[] =
        "{\"items\":[{\"name\":\"a b\",\"price\":{\"amount\":1,\"currency\":\"E U\"}},"
        "{\"name\":\"c]} ,\"}],\"id\":3,\"note\":\"{[\"}";
    static const char *const texts[] = {
        whole,
        " \t\r\n{ \"id\" : 1 , \"tags\" : [ ] , \"items\" : [ ] } \n",
        "{}",
        "[]",
        "[1]",
        "[{\"id\":1}]",
        "1",
        "\"x\"",
        "null",
        "",
        "   ",
        "{",
        "}",
        "{}}",
        "{} x",
        "{\"id\":1,}",
        "{\"id\":1 \"paid\":true}",
        "{\"id\" 1}",
        "{id:1}",
        "{\"id\":}",
        "{\"tags\":[\"a\",]}",
        "{\"tags\":[,]}",
        "{\"tags\":[\"a\" \"b\"]}",
        /* A key given twice takes its last value; errors follow the declared order. */
        "{\"id\":1,\"id\":\"x\"}",
        "{\"id\":\"x\",\"id\":2}",
        "{\"note\":5,\"id\":\"x\"}",
        "{\"items\":[{\"price\":{\"amount\":\"1\"}}],\"tags\":[1]}",
        "{\"discount\":{\"amount\":1,\"amount\":true},\"discount\":null}",
        /* Unknown fields: refused when strict, the first named; before any field's error. */
        "{\"zz\":1,\"id\":\"x\",\"yy\":2}",
        "{\"items\":[{\"name\":\"a\",\"extra\":[1,{\"b\":2}]}]}",
        "{\"\\u0069d\":5}",
        "{\"i\\u0064\":\"no\"}",
        "{\"x\":{\"deep\":[[[[{\"a\":[true,false,null,1.5e3,-0,\"s\"]}]]]]},\"id\":2}",
        /* Values walked past: strings with blanks and brackets, numbers before keys. */
        walked,
        "{\"x\":[1,\"a b\",{\"k\":\"v w\"},2],\"id\":4,\"tags\":[\"p q\",\"r\"]}",
        /* Kinds. */
        "{\"id\":null}",
        "{\"id\":true}",
        "{\"id\":1.0}",
        "{\"id\":1e5}",
        "{\"id\":-0}",
        "{\"expected\":null}",
        "{\"expected\":\"3\"}",
        "{\"paid\":null}",
        "{\"paid\":0}",
        "{\"tags\":null}",
        "{\"tags\":\"a\"}",
        "{\"tags\":[null]}",
        "{\"items\":{}}",
        "{\"items\":[null]}",
        "{\"items\":[[]]}",
        "{\"discount\":[]}",
        "{\"discount\":5}",
        "{\"note\":[]}",
        "{\"note\":\"\"}",
        /* Numbers. */
        "{\"id\":9223372036854775807}",
        "{\"id\":9223372036854775808}",
        "{\"id\":-9223372036854775808}",
        "{\"id\":-9223372036854775809}",
        "{\"id\":99999999999999999999999}",
        "{\"x\":1e400}",
        "{\"x\":-1e400}",
        "{\"x\":1e-400}",
        "{\"x\":01}",
        "{\"x\":-}",
        "{\"x\":1.}",
        "{\"x\":.5}",
        "{\"x\":1e}",
        "{\"x\":1e+}",
        "{\"x\":+1}",
        "{\"x\":1.5E-7}",
        "{\"x\":0.0}",
        "{\"x\":--1}",
        "{\"x\":1x}",
        /* Words. */
        "{\"x\":tru}",
        "{\"x\":truex}",
        "{\"x\":nul}",
        "{\"x\":nulls}",
        "{\"x\":False}",
        /* Strings: escapes, surrogates, UTF-8. */
        "{\"note\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "{\"note\":\"\\u00e9\\u20ac\"}",
        "{\"note\":\"\\ud83d\\ude00\"}",
        "{\"note\":\"\\ud83d\"}",
        "{\"note\":\"\\ude00\"}",
        "{\"note\":\"\\ud83d\\u0041\"}",
        "{\"note\":\"\\u0000\"}",
        "{\"note\":\"\\x\"}",
        "{\"note\":\"\\u12\"}",
        "{\"note\":\"\\u12g4\"}",
        "{\"note\":\"a\tb\"}",
        "{\"note\":\"a\nb\"}",
        "{\"note\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        "{\"note\":\"\xc0\x80\"}",
        "{\"note\":\"\xed\xa0\x80\"}",
        "{\"note\":\"\xf4\x90\x80\x80\"}",
        "{\"note\":\"\xe2\x82\"}",
        "{\"note\":\"\x80\"}",
        "{\"note\":\"\xff\"}",
        "{\"note\":\"unterminated}",
        "{\"note\":\"\\",
    };
    static const char nul_inside[] = "{\"id\":1,\0\"paid\":true}";
    static const char nul_after_number[] = "{\"id\":40\0}"; /* jansson takes it */
    char *text;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        expect_agreement(texts[i], strlen(texts[i]));
    }
    expect_agreement(nul_inside, sizeof(nul_inside) - 1);
    expect_agreement(nul_after_number, sizeof(nul_after_number) - 1);
    assert_false(cl_json_check(nul_after_number, sizeof(nul_after_number) - 1, NULL, 0));
    /* The length bounds the text: what follows it is not read. */
    expect_agreement("{\"id\":1}garbage", 8);
    /* Nesting: 2,048 values deep is the limit (an empty array innermost), one more is not. */
    {
        char *open = repeat("{\"x\":", "[", 2047, "");
        char *deep = repeat(open, "]", 2047, "}");
        char *open2 = repeat("{\"x\":", "[", 2048, "");
        char *deeper = repeat(open2, "]", 2048, "}");
        expect_agreement(deep, strlen(deep));
        expect_agreement(deeper, strlen(deeper));
        assert_true(cl_json_check(deep, strlen(deep), NULL, 0));
        assert_false(cl_json_check(deeper, strlen(deeper), NULL, 0));
        free(open);
        free(deep);
        free(open2);
        free(deeper);
    }
    /* Limits: items (the count is refused before a bad item), a string's length, a long key. */
    text = repeat("{\"tags\":[", "\"t\",", 1000, "\"t\"]}");
    expect_agreement(text, strlen(text));
    free(text);
    text = repeat("{\"tags\":[1,", "\"t\",", 1000, "\"t\"]}");
    expect_agreement(text, strlen(text));
    free(text);
    text = repeat("{\"note\":\"", "x", CL_SCHEMA_MAX_STRING + 1, "\"}");
    expect_agreement(text, strlen(text));
    free(text);
    text = repeat("{\"note\":\"", "x", CL_SCHEMA_MAX_STRING, "\"}");
    expect_agreement(text, strlen(text));
    free(text);
    text = repeat("{\"", "k", 300, "\":1}");
    expect_agreement(text, strlen(text));
    free(text);
}

/* Every one-byte change of a few texts, over bytes that matter to the grammar. */
static void test_schema_parse_agrees_with_jansson_on_mutated_texts(void **state)
{
    static const char *const seeds[] = {
        "{\"id\":7,\"expected\":-3,\"paid\":false,\"tags\":[\"a\\u00e9\",\"\\ud83d\\ude00\"],"
        "\"items\":[{\"name\":\"x\",\"price\":{\"amount\":150,\"currency\":\"EUR\"}},{}],"
        "\"discount\":{\"amount\":5,\"currency\":\"EUR\"},\"note\":null,\"u\":[1.5e3,true]}",
        "{\"id\":1,\"id\":2,\"x\":{\"y\":[[],{}]},\"note\":\"\\n\"}",
    };
    static const char bytes[] = "{}[]:,\"\\ -+.eE01u9ntfalsx\t\n\x80\xc3\xed";
    unsigned seed = 1;
    int checked = 0;

    (void)state;
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        size_t len = strlen(seeds[s]);
        char *text = malloc(len + 2);

        assert_non_null(text);
        for (size_t i = 0; i < len; i++) {
            for (size_t b = 0; b < sizeof(bytes) - 1; b++) {
                memcpy(text, seeds[s], len + 1);
                text[i] = bytes[b];
                expect_agreement(text, len);
                /* And with the byte removed, and a second change further on. */
                memmove(text + i, text + i + 1, len - i);
                seed = seed * 1103515245u + 12345u;
                if (len > 1) {
                    text[(seed >> 8) % (len - 1)] = bytes[(seed >> 16) % (sizeof(bytes) - 1)];
                }
                expect_agreement(text, len - 1);
                checked += 2;
            }
        }
        free(text);
    }
    assert_true(checked > 1000);
}

/* Strings jansson escapes, or refuses (not UTF-8), written by cl_schema_dump as json_dumps. */
static void test_schema_dump_writes_what_jansson_writes(void **state)
{
    static const char *const notes[] = {
        "",
        "plain",
        "q\"uote b\\slash /slash",
        "\x01\x1f\x7f\b\f\n\r\t",
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
        "\xc3",
        "\xff",
        "\xed\xa0\x80",
    };
    test_item items[2] = {{"a", {-9223372036854775807LL - 1, "EUR"}}, {NULL, {0, NULL}}};
    char *tags[] = {"x", "\xc3\xa9"};
    cl_money discount = {9223372036854775807LL, "USD"};
    test_order o = {0};

    (void)state;
    o.id = -42;
    o.expected = (cl_opt_i64){true, 0};
    o.paid = true;
    o.tags = (cl_strs){tags, 2, true};
    o.items.v = items;
    o.items.n = 2;
    o.discount = &discount;
    for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
        const char *diff;
        o.note = (char *)notes[i];
        diff = schema_dump_agrees(&test_order_type, &o);
        if (diff != NULL) {
            fail_msg("%s for note %zu", diff, i);
        }
    }
    /* Into a buffer: exactly the text when it fits with its NUL, nothing when it does not. */
    o.note = "n";
    {
        char *whole = cl_schema_dump(&test_order_type, &o, 0);
        size_t n = strlen(whole);
        char *buf = malloc(n + 1);

        assert_int_equal(cl_schema_dump_to(&test_order_type, &o, 0, buf, n + 1), n);
        assert_string_equal(buf, whole);
        assert_int_equal(cl_schema_dump_to(&test_order_type, &o, 0, buf, n), 0);
        assert_int_equal(cl_schema_dump_to(&test_order_type, &o, 0, buf, 1), 0);
        o.note = "\xff";
        assert_int_equal(cl_schema_dump_to(&test_order_type, &o, 0, buf, n + 1), 0);
        free(buf);
        free(whole);
    }
    /* Left out as to_json leaves them out: an unset optional, a list never given, no object. */
    o = (test_order){0};
    assert_null(schema_dump_agrees(&test_order_type, &o));
    {
        char *text = cl_schema_dump(&test_order_type, &o, CL_DUMP_SORTED);
        assert_string_equal(text, "{\"id\":0,\"items\":[],\"note\":null,\"paid\":false}");
        free(text);
    }
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
        cmocka_unit_test(test_schema_parse_agrees_with_jansson_on_chosen_texts),
        cmocka_unit_test(test_schema_parse_agrees_with_jansson_on_mutated_texts),
        cmocka_unit_test(test_schema_dump_writes_what_jansson_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
