/*
 * A declared type straight from and to JSON text (ADR 0054): no jansson tree between the
 * text and the struct.
 *
 * Decoding: the outcome is, by construction, cl_schema_from_json's for the tree
 * json_loadb(text, len, 0) would build: the same grammar and limits (checked first, by
 * cl_json_check, in one pass that allocates nothing), then the same decode. An object's
 * members are first only located (a key's last value wins, as in jansson's tree); its
 * fields are then decoded in their declared order, so that the first field in error is the
 * one cl_schema_from_json names, with the same message.
 *
 * Encoding: the text json_dumps(cl_schema_to_json(...), JSON_COMPACT) writes, with
 * JSON_SORT_KEYS when asked, byte for byte, strings escaped as jansson escapes them.
 */
#include "schema_internal.h"

#include "../log/log_internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's JSON_PARSER_MAX_DEPTH: a value nested deeper is refused. */
#define MAX_DEPTH 2048

/* --- checking: the grammar json_loadb(text, len, 0) accepts ------------------------------ */

typedef struct scan {
    const char *p;
    const char *end;
    const char *start;
    char *why;
    size_t whysize;
} scan;

static bool refuse(scan *s, const char *what)
{
    if (s->why != NULL && s->whysize > 0) {
        snprintf(s->why, s->whysize, "%s at byte %zu", what, (size_t)(s->p - s->start));
    }
    return false;
}

static void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

/* A string from its opening quote: escapes, surrogate pairs, no \u0000, UTF-8 only. */
static bool check_string(scan *s)
{
    size_t n;

    s->p++;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;

        if (c < 0x20) {
            return refuse(s, "control character in a string");
        }
        if (c == '\\') {
            long v;

            if (s->end - s->p < 2) {
                return refuse(s, "premature end of input");
            }
            if (strchr("\"\\/bfnrt", s->p[1]) != NULL && s->p[1] != '\0') {
                s->p += 2;
                continue;
            }
            if (s->p[1] != 'u' || s->end - s->p < 6 || (v = cl_hex4(s->p + 2)) < 0) {
                return refuse(s, "invalid escape");
            }
            if (v == 0) {
                return refuse(s, "\\u0000 in a string");
            }
            if (v >= 0xDC00 && v <= 0xDFFF) {
                return refuse(s, "lone low surrogate");
            }
            if (v >= 0xD800 && v <= 0xDBFF) {
                long lo = s->end - s->p >= 12 && s->p[6] == '\\' && s->p[7] == 'u'
                              ? cl_hex4(s->p + 8)
                              : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    return refuse(s, "high surrogate without its low surrogate");
                }
                s->p += 6;
            }
            s->p += 6;
            continue;
        }
        n = cl_utf8_len(s->p, (size_t)(s->end - s->p));
        if (n == 0) {
            return refuse(s, "not UTF-8");
        }
        s->p += n;
    }
    if (s->p >= s->end) {
        return refuse(s, "premature end of input");
    }
    s->p++;
    return true;
}

static bool digit(const scan *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* One or more digits, consumed; false when there is none. */
static bool digit_run(scan *s)
{
    if (!digit(s)) {
        return false;
    }
    while (digit(s)) {
        s->p++;
    }
    return true;
}

/* Whether the number [from, to) overflows a double, as strtod says (jansson's test). */
static bool real_overflows(const char *from, const char *to)
{
    char small[64];
    char *text = small;
    size_t n = (size_t)(to - from);
    bool over;
    double v;

    if (n >= sizeof(small)) {
        text = malloc(n + 1);
        if (text == NULL) {
            return true;
        }
    }
    memcpy(text, from, n);
    text[n] = '\0';
    errno = 0;
    v = strtod(text, NULL);
    over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (text != small) {
        free(text);
    }
    return over;
}

/* Whether the integer [from, to) (an optional minus, digits) fits an int64_t. */
static bool int_fits(const char *from, const char *to)
{
    bool neg = *from == '-';
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

    for (const char *q = from + neg; q < to; q++) {
        uint64_t d = (uint64_t)(*q - '0');
        if (v > (limit - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    return true;
}

/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, an integer within int64_t. */
static bool check_number(scan *s)
{
    const char *from = s->p;
    bool real = false;

    if (*s->p == '-') {
        s->p++;
    }
    if (!digit(s)) {
        return refuse(s, "invalid number");
    }
    if (*s->p == '0') {
        s->p++;
        if (digit(s)) {
            return refuse(s, "invalid number");
        }
    } else {
        (void)digit_run(s);
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digit_run(s)) {
            return refuse(s, "invalid number");
        }
        real = true;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (!digit_run(s)) {
            return refuse(s, "invalid number");
        }
        real = true;
    }
    if (real ? real_overflows(from, s->p) : !int_fits(from, s->p)) {
        s->p = from;
        return refuse(s, real ? "real number overflow" : "too big integer");
    }
    return true;
}

static bool check_word(scan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return refuse(s, "invalid token");
    }
    s->p += n;
    return true;
}

/* A member's key and its colon, at the key's quote (else missing is what is wrong). */
static bool check_key(scan *s, const char *missing)
{
    if (s->p >= s->end || *s->p != '"') {
        return refuse(s, missing);
    }
    if (!check_string(s)) {
        return false;
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':') {
        return refuse(s, "':' expected");
    }
    s->p++;
    return true;
}

/* One value, containers and all, with an explicit stack of the containers open. */
static bool check_value(scan *s)
{
    char open[MAX_DEPTH];
    int depth = 0; /* containers open */

    for (;;) {
        skip_ws(s);
        if (s->p >= s->end) {
            return refuse(s, "premature end of input");
        }
        /* A value starts here, at depth + 1. */
        if (depth + 1 > MAX_DEPTH) {
            return refuse(s, "maximum parsing depth reached");
        }
        switch (*s->p) {
        case '{':
        case '[':
            open[depth++] = *s->p;
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (open[depth - 1] == '{' ? '}' : ']')) {
                s->p++;
                depth--;
                break;
            }
            if (open[depth - 1] == '{' && !check_key(s, "string or '}' expected")) {
                return false;
            }
            continue;
        case '"':
            if (!check_string(s)) {
                return false;
            }
            break;
        case 't':
            if (!check_word(s, "true", 4)) {
                return false;
            }
            break;
        case 'f':
            if (!check_word(s, "false", 5)) {
                return false;
            }
            break;
        case 'n':
            if (!check_word(s, "null", 4)) {
                return false;
            }
            break;
        default:
            if (*s->p != '-' && !digit(s)) {
                return refuse(s, "invalid token");
            }
            if (!check_number(s)) {
                return false;
            }
            break;
        }
        /* A value ended: close what ends with it, or go on to the next member or element. */
        for (;;) {
            char want;

            if (depth == 0) {
                return true;
            }
            skip_ws(s);
            want = open[depth - 1] == '{' ? '}' : ']';
            if (s->p < s->end && *s->p == want) {
                s->p++;
                depth--;
                continue;
            }
            if (s->p >= s->end || *s->p != ',') {
                return refuse(s, want == '}' ? "'}' expected" : "']' expected");
            }
            s->p++;
            if (want == '}') {
                skip_ws(s);
                if (!check_key(s, "string expected")) {
                    return false;
                }
            }
            break;
        }
    }
}

bool cl_json_check(const char *text, size_t len, char *why, size_t whysize)
{
    scan s = {text, text + len, text, why, whysize};

    skip_ws(&s);
    if (s.p >= s.end || (*s.p != '{' && *s.p != '[')) {
        return refuse(&s, "'[' or '{' expected");
    }
    if (!check_value(&s)) {
        return false;
    }
    skip_ws(&s);
    return s.p == s.end ? true : refuse(&s, "end of file expected");
}

/* --- decoding: text already checked ----------------------------------------------------- */

/* A value's text, from its first byte to just past its last. */
typedef struct span {
    const char *p;
    const char *end;
} span;

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    return p;
}

/* Past the checked string whose opening quote is at p. */
static const char *past_string(const char *p)
{
    for (p++; *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
    }
    return p + 1;
}

/* Past the checked value at p (no leading blank). */
static const char *past_value(const char *p)
{
    int depth = 0;

    do {
        switch (*p) {
        case '"':
            p = past_string(p);
            break;
        case '{':
        case '[':
            depth++;
            p++;
            break;
        case '}':
        case ']':
            depth--;
            p++;
            break;
        default: /* a ',' or ':', or a number or a word up to the byte that ends it */
            do {
                p++;
            } while (strchr(",:\"{}[] \t\n\r", *p) == NULL);
            break;
        }
    } while (depth > 0);
    return p;
}

/* The checked string at p, unescaped into out (room for its raw length + 1); its length. */
static size_t unescape(const char *p, char *out)
{
    size_t n = 0;

    for (p++; *p != '"'; p++) {
        long v;

        if (*p != '\\') {
            out[n++] = *p;
            continue;
        }
        p++;
        if (*p != 'u') {
            static const char from[] = "bfnrt\"\\/";
            static const char to[] = "\b\f\n\r\t\"\\/";
            out[n++] = to[strchr(from, *p) - from]; /* checked: one of them */
            continue;
        }
        v = cl_hex4(p + 1);
        p += 4;
        if (v >= 0xD800 && v <= 0xDBFF) {
            v = 0x10000 + ((v - 0xD800) << 10) + (cl_hex4(p + 3) - 0xDC00);
            p += 6;
        }
        n += cl_utf8_put(out + n, (uint32_t)v);
    }
    out[n] = '\0';
    return n;
}

static bool is_null(span v)
{
    return *v.p == 'n';
}

static cl_status parse_obj(const cl_type *type, span v, int flags, void *out, const char *base,
                           cl_error *err);

static cl_status parse_str(span v, char **out, const char *where, cl_error *err)
{
    size_t raw = (size_t)(v.end - v.p);
    size_t len;
    char *s;

    if (*v.p != '"') {
        return cl_error_set(err, CL_INVALID, where, "%s must be a string", where);
    }
    s = malloc(raw);
    if (s == NULL) {
        return cl_error_set(err, CL_INTERNAL, where, "out of memory");
    }
    len = unescape(v.p, s);
    if (len > CL_SCHEMA_MAX_STRING) {
        free(s);
        return cl_error_set(err, CL_INVALID, where, "%s is longer than %zu bytes", where,
                            CL_SCHEMA_MAX_STRING);
    }
    *out = s;
    return CL_OK;
}

static cl_status parse_i64(span v, int64_t *out, const char *where, cl_error *err)
{
    const char *p = v.p;
    bool neg = *p == '-';
    uint64_t u = 0;

    if (*p != '-' && (*p < '0' || *p > '9')) {
        return cl_error_set(err, CL_INVALID, where, "%s must be an integer", where);
    }
    for (p += neg; p < v.end && *p >= '0' && *p <= '9'; p++) {
        u = u * 10 + (uint64_t)(*p - '0');
    }
    if (p != v.end) { /* a fraction or an exponent: a real */
        return cl_error_set(err, CL_INVALID, where, "%s must be an integer", where);
    }
    /* Checked to fit: -u is INT64_MIN at most. */
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return CL_OK;
}

/* A walk over the elements of a checked array, in order (next_elem). */
typedef struct elems {
    const char *p;
} elems;

static bool next_elem(elems *it, span *e)
{
    const char *p = ws(it->p);

    if (*p == ']') {
        return false;
    }
    e->p = p;
    e->end = past_value(p);
    p = ws(e->end);
    it->p = *p == ',' ? p + 1 : p;
    return true;
}

static cl_status parse_array(span v, const char *where, size_t *n, cl_error *err)
{
    elems it = {v.p + 1};
    span e;

    if (*v.p != '[') {
        return cl_error_set(err, CL_INVALID, where, "%s must be an array", where);
    }
    *n = 0;
    while (next_elem(&it, &e)) {
        (*n)++;
    }
    if (*n > CL_SCHEMA_MAX_ITEMS) {
        return cl_error_set(err, CL_INVALID, where, "%s has more than %d items", where,
                            CL_SCHEMA_MAX_ITEMS);
    }
    return CL_OK;
}

static cl_status parse_field(const cl_field *f, span v, int flags, void *p, const char *where,
                             cl_error *err)
{
    cl_status st;
    size_t n = 0;

    switch (f->kind) {
    case CL_KIND_STR:
        return is_null(v) ? CL_OK : parse_str(v, (char **)p, where, err);
    case CL_KIND_I64:
        return parse_i64(v, (int64_t *)p, where, err);
    case CL_KIND_OPT_I64: {
        cl_opt_i64 *o = p;
        if (is_null(v)) {
            return CL_OK;
        }
        st = parse_i64(v, &o->v, where, err);
        o->set = st == CL_OK;
        return st;
    }
    case CL_KIND_BOOL:
        if (*v.p != 't' && *v.p != 'f') {
            return cl_error_set(err, CL_INVALID, where, "%s must be true or false", where);
        }
        *(bool *)p = *v.p == 't';
        return CL_OK;
    case CL_KIND_STRS: {
        cl_strs *s = p;
        elems it = {v.p + 1};
        span e;
        st = parse_array(v, where, &n, err);
        if (st != CL_OK) {
            return st;
        }
        s->v = cl__zalloc(n + 1, sizeof(char *));
        if (s->v == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        s->set = true;
        for (size_t j = 0; next_elem(&it, &e); j++) {
            cl__path item;
            cl__path_index(&item, where, j);
            st = parse_str(e, &s->v[j], item.buf, err);
            if (st != CL_OK) {
                return st;
            }
            s->n++;
        }
        return CL_OK;
    }
    case CL_KIND_OBJ:
        return parse_obj(f->sub, v, flags, p, where, err);
    case CL_KIND_OPT_OBJ: {
        void *sub;
        if (is_null(v)) {
            return CL_OK;
        }
        sub = cl__zalloc(1, f->sub->size);
        if (sub == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        *(void **)p = sub;
        return parse_obj(f->sub, v, flags, sub, where, err);
    }
    case CL_KIND_OBJS: {
        cl_list *l = p;
        elems it = {v.p + 1};
        span e;
        st = parse_array(v, where, &n, err);
        if (st != CL_OK) {
            return st;
        }
        l->v = cl__zalloc(n + 1, f->sub->size);
        if (l->v == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        for (size_t j = 0; next_elem(&it, &e); j++) {
            cl__path item;
            cl__path_index(&item, where, j);
            /* Count the element first so that a failure inside it is freed too. */
            l->n++;
            st = parse_obj(f->sub, e, flags, (char *)l->v + j * f->sub->size, item.buf, err);
            if (st != CL_OK) {
                return st;
            }
        }
        return CL_OK;
    }
    }
    return cl_error_set(err, CL_INTERNAL, where, "unknown field kind");
}

/* Field names are short: a longer key is no field's. */
#define KEY_MAX 128

/* "unknown field <base.key>" for the checked key string at key. */
static cl_status unknown_field(const char *base, const char *key, cl_error *err)
{
    char *name = malloc((size_t)(past_string(key) - key));
    cl__path where;

    if (name == NULL) {
        return cl_error_set(err, CL_INTERNAL, base, "out of memory");
    }
    unescape(key, name);
    cl__path_join(&where, base, name);
    free(name);
    return cl_error_set(err, CL_INVALID, where.buf, "unknown field %s", where.buf);
}

static cl_status parse_obj(const cl_type *type, span v, int flags, void *out, const char *base,
                           cl_error *err)
{
    span small[32] = {{0}};
    span *at = small;
    const char *p = ws(v.p + 1);
    const char *unknown = NULL; /* the first key that is no field's */
    cl_status st = CL_OK;

    if (*v.p != '{') {
        return cl_error_set(err, CL_INVALID, base, "%s must be an object",
                            base[0] != '\0' ? base : "the body");
    }
    if (type->nfields > sizeof(small) / sizeof(small[0])) {
        at = calloc(type->nfields, sizeof(*at));
        if (at == NULL) {
            return cl_error_set(err, CL_INTERNAL, base, "out of memory");
        }
    }
    /* Where each field's last value is. */
    while (*p == '"') {
        char key[KEY_MAX + 1];
        const char *after = past_string(p);
        const cl_field *f = NULL;
        const char *value = ws(ws(after) + 1); /* past the ':' */

        if ((size_t)(after - p) <= KEY_MAX) {
            unescape(p, key);
            f = cl__find_field(type, key);
        }
        if (f != NULL) {
            at[f - type->fields] = (span){value, past_value(value)};
        } else if (unknown == NULL) {
            unknown = p;
        }
        p = ws(past_value(value));
        if (*p == ',') {
            p = ws(p + 1);
        }
    }
    if (unknown != NULL && (flags & CL_DECODE_STRICT)) {
        st = unknown_field(base, unknown, err);
    }
    for (size_t i = 0; st == CL_OK && i < type->nfields; i++) {
        const cl_field *f = &type->fields[i];
        cl__path where;

        if (at[i].p == NULL) {
            continue;
        }
        cl__path_join(&where, base, f->name);
        st = parse_field(f, at[i], flags, CL__FIELD_PTR(out, f), where.buf, err);
    }
    if (at != small) {
        free(at);
    }
    return st;
}

cl_status cl_schema_parse(const cl_type *type, const char *text, size_t len, int flags, void *out,
                          bool *not_json, cl_error *err)
{
    char why[96];
    bool bad = !cl_json_check(text, len, why, sizeof(why));
    span top;
    cl_status st;

    if (not_json != NULL) {
        *not_json = bad;
    }
    if (bad) {
        return cl_error_set(err, CL_INVALID, "", "not JSON: %s", why);
    }
    /* Checked: one value between blanks, and no NUL inside it (a NUL is refused). */
    top.p = ws(text);
    top.end = past_value(top.p);
    st = parse_obj(type, top, flags, out, "", err);
    if (st != CL_OK) {
        cl_schema_free(type, out);
    }
    return st;
}

/* --- encoding ------------------------------------------------------------------------- */

typedef struct text_out {
    char *buf;
    size_t len;
    size_t size;
    bool fixed; /* the caller's buffer: no growing it */
    bool failed;
} text_out;

/* Room for n more bytes (and a NUL); false when out of memory or of the caller's buffer. */
static bool room(text_out *o, size_t n)
{
    size_t size;
    char *b;

    if (o->failed || n + 1 <= o->size - o->len) {
        return !o->failed;
    }
    size = o->size * 2 > o->len + n + 1 ? o->size * 2 : o->len + n + 1;
    b = o->fixed ? NULL : realloc(o->buf, size);
    if (b == NULL) {
        o->failed = true;
        return false;
    }
    o->buf = b;
    o->size = size;
    return true;
}

static void put_raw(text_out *o, const char *s, size_t n)
{
    if (room(o, n)) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
    }
}

/* A string as jansson writes it; a string that is not UTF-8 fails, as json_string refuses it. */
static void put_string(text_out *o, const char *s)
{
    size_t n;
    size_t k;

    if (s == NULL) {
        o->failed = true;
        return;
    }
    n = strlen(s);
    /* At most six bytes a byte (\u00XX), and the quotes; a fixed buffer may do with less. */
    if (!o->fixed && !room(o, n * 6 + 2)) {
        return;
    }
    k = cl__json_escape(o->buf + o->len, o->size - o->len, s, n, '\0');
    if (k == SIZE_MAX) {
        o->failed = true;
        return;
    }
    o->len += k;
}

static void put_i64(text_out *o, int64_t v)
{
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        digits[sizeof(digits) - ++n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        digits[sizeof(digits) - ++n] = '-';
    }
    put_raw(o, digits + sizeof(digits) - n, n);
}

static void put_obj(text_out *o, const cl_type *type, const void *obj, int flags);

/* Whether to_json writes f of obj (absent optionals and never-given lists are left out). */
static bool written(const cl_field *f, const void *p)
{
    switch (f->kind) {
    case CL_KIND_OPT_I64:
        return ((const cl_opt_i64 *)p)->set;
    case CL_KIND_STRS:
        return ((const cl_strs *)p)->set || ((const cl_strs *)p)->n > 0;
    case CL_KIND_OPT_OBJ:
        return *(const void *const *)p != NULL;
    default:
        return true;
    }
}

static void put_value(text_out *o, const cl_field *f, const void *p, int flags)
{
    switch (f->kind) {
    case CL_KIND_STR: {
        const char *s = *(const char *const *)p;
        if (s == NULL) {
            put_raw(o, "null", 4);
        } else {
            put_string(o, s);
        }
        break;
    }
    case CL_KIND_I64:
        put_i64(o, *(const int64_t *)p);
        break;
    case CL_KIND_OPT_I64:
        put_i64(o, ((const cl_opt_i64 *)p)->v);
        break;
    case CL_KIND_BOOL:
        if (*(const bool *)p) {
            put_raw(o, "true", 4);
        } else {
            put_raw(o, "false", 5);
        }
        break;
    case CL_KIND_STRS: {
        const cl_strs *s = p;
        put_raw(o, "[", 1);
        for (size_t j = 0; j < s->n; j++) {
            if (j > 0) {
                put_raw(o, ",", 1);
            }
            put_string(o, s->v[j]);
        }
        put_raw(o, "]", 1);
        break;
    }
    case CL_KIND_OBJ:
        put_obj(o, f->sub, p, flags);
        break;
    case CL_KIND_OPT_OBJ:
        put_obj(o, f->sub, *(const void *const *)p, flags);
        break;
    case CL_KIND_OBJS: {
        const cl_list *l = p;
        put_raw(o, "[", 1);
        for (size_t j = 0; j < l->n; j++) {
            if (j > 0) {
                put_raw(o, ",", 1);
            }
            put_obj(o, f->sub, (const char *)l->v + j * f->sub->size, flags);
        }
        put_raw(o, "]", 1);
        break;
    }
    }
}

static void put_obj(text_out *o, const cl_type *type, const void *obj, int flags)
{
    const cl_field *small[32];
    const cl_field **order = small;
    bool first = true;

    if (type->nfields > sizeof(small) / sizeof(small[0])) {
        order = malloc(type->nfields * sizeof(*order));
        if (order == NULL) {
            o->failed = true;
            return;
        }
    }
    /* Declared order, or by name (insertion sort: a type has a handful of fields). */
    for (size_t i = 0; i < type->nfields; i++) {
        size_t j = i;
        while ((flags & CL_DUMP_SORTED) && j > 0 &&
               strcmp(order[j - 1]->name, type->fields[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = &type->fields[i];
    }
    put_raw(o, "{", 1);
    for (size_t i = 0; i < type->nfields && !o->failed; i++) {
        const cl_field *f = order[i];
        const void *p = (const char *)obj + f->offset;

        if (!written(f, p)) {
            continue;
        }
        if (!first) {
            put_raw(o, ",", 1);
        }
        first = false;
        put_string(o, f->name);
        put_raw(o, ":", 1);
        put_value(o, f, p, flags);
    }
    put_raw(o, "}", 1);
    if (order != small) {
        free(order);
    }
}

size_t cl_schema_dump_to(const cl_type *type, const void *obj, int flags, char *buf, size_t size)
{
    text_out o = {buf, 0, size, true, false};

    if (size == 0) {
        return 0;
    }
    put_obj(&o, type, obj, flags);
    if (o.failed || o.len >= size) {
        return 0;
    }
    o.buf[o.len] = '\0';
    return o.len;
}

char *cl_schema_dump(const cl_type *type, const void *obj, int flags)
{
    text_out o = {malloc(256), 0, 256, false, false};

    if (o.buf == NULL) {
        return NULL;
    }
    put_obj(&o, type, obj, flags);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    o.buf[o.len] = '\0';
    return o.buf;
}
