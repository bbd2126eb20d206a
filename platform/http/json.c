/*
 * A JSON reply's text, written straight from the json_t (ADR 0041, issue #16).
 *
 * jansson's json_dumpb costs, for every object and array it writes, a "%p" snprintf and a
 * node allocated and freed in a hashtable of the containers being written (its loop check),
 * an allocated hashtable per call, and an snprintf per integer: with malloc's arena locks
 * shared by the workers, a product's reply was one eighth of the request. A reply body is
 * a tree the handler has just built, written here in one pass into the worker's buffer.
 * The text is byte for byte what json_dumpb(JSON_COMPACT | JSON_ENCODE_ANY) writes: the
 * same key order (insertion), the same escapes, reals formatted by jansson itself. Whatever
 * this writer does not handle (a string that is not UTF-8, nesting deeper than
 * JSON_OUT_MAX_DEPTH, a text larger than the buffer) makes it give up, and the caller falls
 * back on json_dumpb, which then decides as before.
 */
#include "http_internal.h"

#include "../log/log_internal.h"

#include <stdbool.h>
#include <string.h>

#include "cleave/util.h"

/* Deeper than this the writer gives up: jansson's own dump decides (and checks for loops). */
#define JSON_OUT_MAX_DEPTH 32

typedef struct json_out {
    char *buf;
    size_t size;
    size_t len;
    bool failed;
} json_out;

static void out_bytes(json_out *o, const char *s, size_t n)
{
    if (o->failed || n > o->size - o->len) {
        o->failed = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_char(json_out *o, char c)
{
    out_bytes(o, &c, 1);
}

/* s[0..n) as a JSON string (cl__json_escape); fails on a string that is not UTF-8. */
static void out_string(json_out *o, const char *s, size_t n)
{
    size_t k;

    if (o->failed) {
        return;
    }
    k = cl__json_escape(o->buf + o->len, o->size - o->len, s, n, '\0');
    if (k == SIZE_MAX) {
        o->failed = true;
        return;
    }
    o->len += k;
}

static void out_integer(json_out *o, json_int_t v)
{
    char digits[CL__JSON_INT_MAX];
    size_t at = cl__json_int(digits, (int64_t)v);

    out_bytes(o, digits + at, sizeof(digits) - at);
}

static void out_value(json_out *o, json_t *v, int depth)
{
    if (o->failed) {
        return;
    }
    if (depth > JSON_OUT_MAX_DEPTH) {
        o->failed = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *value;
        bool first = true;

        out_char(o, '{');
        json_object_keylen_foreach(v, key, key_len, value)
        {
            if (!first) {
                out_char(o, ',');
            }
            first = false;
            out_string(o, key, key_len);
            out_char(o, ':');
            out_value(o, value, depth + 1);
        }
        out_char(o, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *value;

        out_char(o, '[');
        json_array_foreach (v, i, value) {
            if (i > 0) {
                out_char(o, ',');
            }
            out_value(o, value, depth + 1);
        }
        out_char(o, ']');
        break;
    }
    case JSON_STRING:
        out_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        out_integer(o, json_integer_value(v));
        break;
    case JSON_REAL: {
        /* jansson's own formatting of reals (precision, exponent, ".0"): one call, no loop. */
        size_t n = json_dumpb(v, o->buf + o->len, o->size - o->len, JSON_ENCODE_ANY);

        if (n == 0 || n > o->size - o->len) {
            o->failed = true;
        } else {
            o->len += n;
        }
        break;
    }
    case JSON_TRUE:
        out_bytes(o, "true", 4);
        break;
    case JSON_FALSE:
        out_bytes(o, "false", 5);
        break;
    case JSON_NULL:
        out_bytes(o, "null", 4);
        break;
    default:
        o->failed = true;
        break;
    }
}

size_t cl__http_json_encode(json_t *json, char *buf, size_t size)
{
    json_out o = {buf, size, 0, false};

    if (json == NULL) {
        return 0;
    }
    out_value(&o, json, 0);
    return o.failed ? 0 : o.len;
}
