/* The reply writer (platform/http/json.c) against jansson's json_dumpb, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../platform/http/http_internal.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Our text of json equals jansson's, or both give up; returns our length. */
static size_t same_as_jansson(json_t *json)
{
    char ours[4096];
    char theirs[4096];
    size_t n = cl__http_json_encode(json, ours, sizeof(ours));
    size_t m = json_dumpb(json, theirs, sizeof(theirs), FLAGS);

    if (n > 0) {
        if (n != m || memcmp(ours, theirs, n) != 0) {
            fail_msg("ours %.*s, jansson's %.*s", (int)n, ours, (int)m, theirs);
        }
    }
    return n;
}

/* A product as the catalog answers it, with deeper nesting added. */
static const char product[] =
    "{\"id\":1,\"sku\":\"SKU-000001\",\"price\":{\"amount\":6149,\"currency\":\"EUR\"},"
    "\"tags\":[\"handmade\"],\"nested\":{\"a\":[[],{},[{\"b\":[1,[2,[3]]]}]]}}";
/* Every escape jansson writes, in a key and a value. */
static const char escapes[] =
    "{\"quote\\\"back\\\\slash/\":\"tab\\tnl\\nret\\rff\\fbs\\bbell\\u0007us\\u001f "
    "del\\u007f\"}";

static void test_http_json_writes_what_jansson_writes(void **state)
{
    const char *texts[] = {
        "{}",
        "[]",
        "\"\"",
        "null",
        "[true,false,null,0,-1,9223372036854775807,-9223372036854775808]",
        "[0.5,1e300,-2.25,3.0,1e-7,123456789.125]",
        product,
        escapes,
        "[\"caf\\u00e9\",\"\\u20ac\",\"\\ud83d\\ude00\",\"\\u2028\\u2029\",\"nul\\u0000inside\"]",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":true,\"b\":false}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_error_t err;
        json_t *json = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

        if (json == NULL) {
            fail_msg("bad case %zu: %s", i, err.text);
        }
        assert_true(same_as_jansson(json) > 0);
        json_decref(json);
    }
}

static void test_http_json_keeps_insertion_order_and_nul_in_keys(void **state)
{
    json_t *obj = json_object();

    (void)state;
    json_object_set_new(obj, "second", json_integer(2));
    json_object_set_new(obj, "first", json_integer(1));
    json_object_setn_new(obj, "k\0ey", 4, json_string("v"));
    assert_true(same_as_jansson(obj) > 0);
    json_decref(obj);
}

/* What the writer leaves to json_dumpb: no text, so the caller falls back. */
static void test_http_json_gives_up_where_jansson_decides(void **state)
{
    char small[8];
    char buf[64];
    json_t *deep = json_array();
    json_t *bad = json_stringn_nocheck("\xff\xfe", 2);
    json_t *long_one = json_string("more than eight bytes");

    (void)state;
    for (int i = 0; i < 40; i++) {
        deep = json_pack("[o]", deep);
    }
    assert_int_equal(cl__http_json_encode(deep, buf, sizeof(buf)), 0);
    /* Not UTF-8: jansson refuses it, and so does the reply. */
    assert_int_equal(cl__http_json_encode(bad, buf, sizeof(buf)), 0);
    assert_int_equal(json_dumpb(bad, buf, sizeof(buf), FLAGS), 0);
    assert_int_equal(cl__http_json_encode(long_one, small, sizeof(small)), 0);
    assert_int_equal(cl__http_json_encode(NULL, buf, sizeof(buf)), 0);
    /* Exactly the size of the text fits. */
    assert_int_equal(cl__http_json_encode(long_one, buf, 23), 23);
    json_decref(deep);
    json_decref(bad);
    json_decref(long_one);
}

/* Random trees of every kind of value, compared with jansson's text. */
static json_t *random_value(unsigned *seed, int depth)
{
    static const char *const strings[] = {"",
                                          "a",
                                          "\"",
                                          "\\",
                                          "\x01",
                                          "\xc3\xa9t\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "/",
                                          "\t\n",
                                          "\xf0\x9f\x98\x80"};
    int kind = rand_r(seed) % (depth > 3 ? 6 : 8);

    switch (kind) {
    case 0:
        return json_integer((json_int_t)rand_r(seed) - RAND_MAX / 2);
    case 1:
        return json_real((double)rand_r(seed) / 7.0);
    case 2:
        return json_string(strings[rand_r(seed) % 10]);
    case 3:
        return json_true();
    case 4:
        return json_false();
    case 5:
        return json_null();
    case 6: {
        json_t *a = json_array();
        int n = rand_r(seed) % 4;

        for (int i = 0; i < n; i++) {
            json_array_append_new(a, random_value(seed, depth + 1));
        }
        return a;
    }
    default: {
        json_t *o = json_object();
        int n = rand_r(seed) % 4;

        for (int i = 0; i < n; i++) {
            char key[16];

            snprintf(key, sizeof(key), "%s%d", strings[rand_r(seed) % 10], i);
            json_object_set_new(o, key, random_value(seed, depth + 1));
        }
        return o;
    }
    }
}

static void test_http_json_matches_jansson_on_random_trees(void **state)
{
    unsigned seed = 16;

    (void)state;
    for (int i = 0; i < 500; i++) {
        json_t *json = random_value(&seed, 0);

        assert_true(same_as_jansson(json) > 0);
        json_decref(json);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_json_writes_what_jansson_writes),
        cmocka_unit_test(test_http_json_keeps_insertion_order_and_nul_in_keys),
        cmocka_unit_test(test_http_json_gives_up_where_jansson_decides),
        cmocka_unit_test(test_http_json_matches_jansson_on_random_trees),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
