/*
 * cleave/schema.h - declare a plain-data type once; get its C struct, a descriptor,
 * a JSON codec and a free function from that one declaration.
 *
 * A type is declared with an X-macro list whose entries are X(T, KIND, name, sub):
 *
 *     #define CATALOG_PRODUCT_REF(X, T) X(T, STR, id, _)
 *     CL_TYPE_DECLARE(catalog_product_ref, CATALOG_PRODUCT_REF)   (in the public header)
 *     CL_TYPE_DEFINE(catalog_product_ref, CATALOG_PRODUCT_REF)    (in one .c file)
 *
 * KIND is one of
 *     STR      char *           owned, NUL-terminated; NULL means absent
 *     I64      int64_t          required number
 *     OPT_I64  cl_opt_i64       number that may be absent (.set)
 *     BOOL     bool
 *     STRS     cl_strs          list of owned strings; .set tells whether it was given
 *                               (an unset empty list is left out of the JSON)
 *     OBJ      sub              an embedded struct of another declared type
 *     OPT_OBJ  sub *            an owned struct that may be absent (NULL)
 *     OBJS     cl_list of sub   a list of structs of another declared type
 * sub is the element type for OBJ, OPT_OBJ and OBJS, and `_` otherwise.
 *
 * Because struct, descriptor and codec come from the same list they cannot drift apart;
 * the remote binding, the server dispatch and the REST gateway all use these codecs.
 */
#ifndef CLEAVE_SCHEMA_H
#define CLEAVE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cleave/status.h"

typedef struct cl_opt_i64 {
    bool set;
    int64_t v;
} cl_opt_i64;

typedef struct cl_strs {
    char **v;
    size_t n;
    bool set;
} cl_strs;

/* The layout of every OBJS member: a pointer to n elements of the sub type. */
typedef struct cl_list {
    void *v;
    size_t n;
} cl_list;

typedef enum cl_kind {
    CL_KIND_STR,
    CL_KIND_I64,
    CL_KIND_OPT_I64,
    CL_KIND_BOOL,
    CL_KIND_STRS,
    CL_KIND_OBJ,
    CL_KIND_OPT_OBJ,
    CL_KIND_OBJS
} cl_kind;

typedef struct cl_type cl_type;

typedef struct cl_field {
    const char *name;
    cl_kind kind;
    size_t offset;
    const cl_type *sub; /* element type for OBJ, OPT_OBJ and OBJS, else NULL */
} cl_field;

struct cl_type {
    const char *name;
    size_t size;
    const cl_field *fields;
    size_t nfields;
};

/* Hard limits on decoded input: a hostile peer cannot make us allocate without bound. */
#define CL_SCHEMA_MAX_STRING          ((size_t)64 * 1024)
#define CL_SCHEMA_MAX_ITEMS           1000

/* --- generation ------------------------------------------------------------------- */

#define CL__MEMBER_STR(name, sub)     char *name;
#define CL__MEMBER_I64(name, sub)     int64_t name;
#define CL__MEMBER_OPT_I64(name, sub) cl_opt_i64 name;
#define CL__MEMBER_BOOL(name, sub)    bool name;
#define CL__MEMBER_STRS(name, sub)    cl_strs name;
#define CL__MEMBER_OBJ(name, sub)     sub name;
#define CL__MEMBER_OPT_OBJ(name, sub) struct sub *name;
#define CL__MEMBER_OBJS(name, sub)                                                                 \
    struct {                                                                                       \
        sub *v;                                                                                    \
        size_t n;                                                                                  \
    } name;
#define CL__MEMBER(T, kind, name, sub) CL__MEMBER_##kind(name, sub)

#define CL__SUB_STR(sub)               NULL
#define CL__SUB_I64(sub)               NULL
#define CL__SUB_OPT_I64(sub)           NULL
#define CL__SUB_BOOL(sub)              NULL
#define CL__SUB_STRS(sub)              NULL
#define CL__SUB_OBJ(sub)               &sub##_type
#define CL__SUB_OPT_OBJ(sub)           &sub##_type
#define CL__SUB_OBJS(sub)              &sub##_type
#define CL__FIELD(T, kind, name, sub)                                                              \
    {#name, CL_KIND_##kind, offsetof(T, name), CL__SUB_##kind(sub)},

/* In a header: the struct T and its descriptor T_type. */
#define CL_TYPE_DECLARE(T, LIST)                                                                   \
    typedef struct T {                                                                             \
        LIST(CL__MEMBER, T)                                                                        \
    } T;                                                                                           \
    extern const cl_type T##_type;

/* In exactly one .c file: the descriptor's storage. */
#define CL_TYPE_DEFINE(T, LIST)                                                                    \
    static const cl_field T##__fields[] = {LIST(CL__FIELD, T)};                                    \
    const cl_type T##_type = {#T, sizeof(T), T##__fields,                                          \
                              sizeof(T##__fields) / sizeof(T##__fields[0])};

/* --- codec ------------------------------------------------------------------------ */

/* Returns a new reference to the JSON object for obj, or NULL when out of memory. */
json_t *cl_schema_to_json(const cl_type *type, const void *obj);

/* Decoding options. */
enum {
    CL_DECODE_LENIENT = 0, /* unknown fields are ignored (wire API: newer callers interoperate) */
    CL_DECODE_STRICT = 1   /* an unknown field is CL_INVALID (public REST input) */
};

/*
 * Decodes json into *out, which the caller zeroed. A field absent from json keeps its
 * zero value. On failure returns CL_INVALID with err->field naming the offending field
 * (e.g. "tags[3]"), and *out holds nothing that needs freeing.
 * On success the caller owns what *out points to: release with cl_schema_free.
 */
cl_status cl_schema_from_json(const cl_type *type, json_t *json, int flags, void *out,
                              cl_error *err);

/*
 * Whether text[0..len) is what json_loadb(text, len, 0) accepts: one object or array, UTF-8,
 * no \u0000, integers within int64_t, nesting at most 2,048 deep; but a NUL byte is refused
 * wherever it is (jansson skips one right after a number or a literal). When not, why
 * (whysize bytes, may be NULL) says what is wrong and at which byte. Allocates nothing.
 */
bool cl_json_check(const char *text, size_t len, char *why, size_t whysize);

/*
 * Decodes JSON text straight into *out (zeroed by the caller), building no json_t: the
 * outcome (status, err's field and message, *out) is cl_schema_from_json's for the tree of
 * json_loadb(text, len, 0), where a key given twice takes its last value. Text that is not
 * JSON (cl_json_check) is CL_INVALID with field "" and a message starting "not JSON: ", and
 * sets *not_json (when not NULL), so that a caller can tell it from a payload that does not
 * decode without checking the text a second time.
 */
cl_status cl_schema_parse(const cl_type *type, const char *text, size_t len, int flags, void *out,
                          bool *not_json, cl_error *err);

/* Encoding options. */
enum {
    CL_DUMP_SORTED = 1 /* keys in strcmp order (JSON_SORT_KEYS), not in declared order */
};

/*
 * obj as compact JSON text, a new string the caller frees: byte for byte json_dumps of
 * cl_schema_to_json(type, obj) with JSON_COMPACT (and JSON_SORT_KEYS with CL_DUMP_SORTED),
 * without building the tree. NULL when out of memory or a string is not UTF-8 (which
 * cl_schema_to_json refuses too).
 */
char *cl_schema_dump(const cl_type *type, const void *obj, int flags);
/* The same text into buf[0..size), NUL-terminated; its length, or 0 when it does not fit. */
size_t cl_schema_dump_to(const cl_type *type, const void *obj, int flags, char *buf, size_t size);

/* Frees everything obj owns (not obj itself) and zeroes it. obj may be NULL. */
void cl_schema_free(const cl_type *type, void *obj);

/*
 * Deep copy of src into *dst (zeroed by the caller), field by field. CL_INTERNAL when out of
 * memory, and *dst then holds nothing.
 */
cl_status cl_schema_copy(const cl_type *type, void *dst, const void *src);

/* Small helpers for module code that fills these structs. */
char *cl_strdup(const char *s);                      /* NULL-safe; NULL when s is NULL */
int cl_strs_push(cl_strs *list, const char *s);      /* 0, or -1 out of memory */
void *cl_list_push(cl_list *list, size_t elem_size); /* zeroed new element, or NULL */
/* Appends a zeroed element to an OBJS member and returns it (void *), or NULL. */
#define CL_LIST_PUSH(member) cl_list_push((cl_list *)(void *)&(member), sizeof(*(member).v))

#endif /* CLEAVE_SCHEMA_H */
