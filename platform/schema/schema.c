/*
 * The codec behind every declared type: walks a type's field descriptors to encode,
 * decode, copy and free, so no module writes JSON by hand for its plain data.
 */
#include "schema_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_PTR(obj, f)  CL__FIELD_PTR(obj, f)
#define FIELD_CPTR(obj, f) ((const void *)((const char *)(obj) + (f)->offset))

/*
 * calloc's result, through malloc: glibc's calloc (2.36) skips the per-thread cache and
 * takes its arena's lock on every call, where malloc does not; a decode makes a few such
 * blocks per request, on every worker at once (ADR 0049). NULL for no bytes, on overflow or
 * without memory.
 */
void *cl__zalloc(size_t count, size_t size)
{
    void *p;

    if (count == 0 || size == 0 || count > SIZE_MAX / size) {
        return NULL;
    }
    p = malloc(count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}

/* A path too deep to fit is cut; it only names a field in an error message. */
static void path_truncated(cl__path *out, int n)
{
    if (n < 0 || (size_t)n >= sizeof(out->buf)) {
        out->buf[sizeof(out->buf) - 1] = '\0';
    }
}

void cl__path_join(cl__path *out, const char *base, const char *name)
{
    if (base == NULL || base[0] == '\0') {
        cl_strlcpy(out->buf, name, sizeof(out->buf));
    } else {
        path_truncated(out, snprintf(out->buf, sizeof(out->buf), "%s.%s", base, name));
    }
}

void cl__path_index(cl__path *out, const char *base, size_t i)
{
    path_truncated(out, snprintf(out->buf, sizeof(out->buf), "%s[%zu]", base, i));
}

char *cl_strdup(const char *s)
{
    size_t n;
    char *p;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

int cl_strs_push(cl_strs *list, const char *s)
{
    char **v;
    char *copy;

    if (list->n >= CL_SCHEMA_MAX_ITEMS) {
        return -1;
    }
    copy = cl_strdup(s);
    if (copy == NULL) {
        return -1;
    }
    v = realloc(list->v, (list->n + 1) * sizeof(*v));
    if (v == NULL) {
        free(copy);
        return -1;
    }
    v[list->n++] = copy;
    list->v = v;
    list->set = true;
    return 0;
}

void *cl_list_push(cl_list *list, size_t elem_size)
{
    char *v;
    void *elem;

    if (list->n >= CL_SCHEMA_MAX_ITEMS) {
        return NULL;
    }
    v = realloc(list->v, (list->n + 1) * elem_size);
    if (v == NULL) {
        return NULL;
    }
    list->v = v;
    elem = v + list->n * elem_size;
    memset(elem, 0, elem_size);
    list->n++;
    return elem;
}

/* --- free ------------------------------------------------------------------------- */

void cl_schema_free(const cl_type *type, void *obj)
{
    if (obj == NULL) {
        return;
    }
    for (size_t i = 0; i < type->nfields; i++) {
        const cl_field *f = &type->fields[i];
        void *p = FIELD_PTR(obj, f);

        switch (f->kind) {
        case CL_KIND_STR:
            free(*(char **)p);
            break;
        case CL_KIND_STRS: {
            cl_strs *s = p;
            for (size_t j = 0; j < s->n; j++) {
                free(s->v[j]);
            }
            free(s->v);
            break;
        }
        case CL_KIND_OBJ:
            cl_schema_free(f->sub, p);
            break;
        case CL_KIND_OPT_OBJ: {
            void *sub = *(void **)p;
            cl_schema_free(f->sub, sub);
            free(sub);
            break;
        }
        case CL_KIND_OBJS: {
            cl_list *l = p;
            for (size_t j = 0; j < l->n; j++) {
                cl_schema_free(f->sub, (char *)l->v + j * f->sub->size);
            }
            free(l->v);
            break;
        }
        case CL_KIND_I64:
        case CL_KIND_OPT_I64:
        case CL_KIND_BOOL:
            break;
        }
    }
    memset(obj, 0, type->size);
}

/* --- encode ----------------------------------------------------------------------- */

/* Adds key to obj, stealing value; returns -1 (and drops value) when either fails. */
static int put(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL) {
        return -1;
    }
    return json_object_set_new(obj, key, value);
}

json_t *cl_schema_to_json(const cl_type *type, const void *obj)
{
    json_t *out = json_object();

    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < type->nfields; i++) {
        const cl_field *f = &type->fields[i];
        const void *p = FIELD_CPTR(obj, f);
        int rc = 0;

        switch (f->kind) {
        case CL_KIND_STR: {
            const char *s = *(char *const *)p;
            rc = put(out, f->name, s != NULL ? json_string(s) : json_null());
            break;
        }
        case CL_KIND_I64:
            rc = put(out, f->name, json_integer(*(const int64_t *)p));
            break;
        case CL_KIND_OPT_I64: {
            const cl_opt_i64 *o = p;
            if (o->set) {
                rc = put(out, f->name, json_integer(o->v));
            }
            break;
        }
        case CL_KIND_BOOL:
            rc = put(out, f->name, json_boolean(*(const bool *)p));
            break;
        case CL_KIND_STRS: {
            const cl_strs *s = p;
            json_t *arr;
            /* A list never given stays absent, so "leave it as it is" survives the wire. */
            if (!s->set && s->n == 0) {
                break;
            }
            arr = json_array();
            for (size_t j = 0; arr != NULL && j < s->n; j++) {
                if (json_array_append_new(arr, json_string(s->v[j])) != 0) {
                    json_decref(arr);
                    arr = NULL;
                }
            }
            rc = put(out, f->name, arr);
            break;
        }
        case CL_KIND_OBJ:
            rc = put(out, f->name, cl_schema_to_json(f->sub, p));
            break;
        case CL_KIND_OPT_OBJ: {
            const void *sub = *(const void *const *)p;
            if (sub != NULL) {
                rc = put(out, f->name, cl_schema_to_json(f->sub, sub));
            }
            break;
        }
        case CL_KIND_OBJS: {
            const cl_list *l = p;
            json_t *arr = json_array();
            for (size_t j = 0; arr != NULL && j < l->n; j++) {
                const void *elem = (const char *)l->v + j * f->sub->size;
                if (json_array_append_new(arr, cl_schema_to_json(f->sub, elem)) != 0) {
                    json_decref(arr);
                    arr = NULL;
                }
            }
            rc = put(out, f->name, arr);
            break;
        }
        }
        if (rc != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* --- decode ----------------------------------------------------------------------- */

static cl_status decode_obj(const cl_type *type, json_t *json, int flags, void *out,
                            const char *base, cl_error *err);

static cl_status decode_str(json_t *v, char **out, const char *where, cl_error *err)
{
    size_t len;

    if (!json_is_string(v)) {
        return cl_error_set(err, CL_INVALID, where, "%s must be a string", where);
    }
    len = json_string_length(v);
    if (len > CL_SCHEMA_MAX_STRING) {
        return cl_error_set(err, CL_INVALID, where, "%s is longer than %zu bytes", where,
                            CL_SCHEMA_MAX_STRING);
    }
    if (memchr(json_string_value(v), '\0', len) != NULL) {
        return cl_error_set(err, CL_INVALID, where, "%s contains a NUL character", where);
    }
    *out = cl_strdup(json_string_value(v));
    if (*out == NULL) {
        return cl_error_set(err, CL_INTERNAL, where, "out of memory");
    }
    return CL_OK;
}

static cl_status decode_i64(json_t *v, int64_t *out, const char *where, cl_error *err)
{
    if (!json_is_integer(v)) {
        return cl_error_set(err, CL_INVALID, where, "%s must be an integer", where);
    }
    *out = json_integer_value(v);
    return CL_OK;
}

static cl_status decode_array(json_t *v, const char *where, cl_error *err)
{
    if (!json_is_array(v)) {
        return cl_error_set(err, CL_INVALID, where, "%s must be an array", where);
    }
    if (json_array_size(v) > CL_SCHEMA_MAX_ITEMS) {
        return cl_error_set(err, CL_INVALID, where, "%s has more than %d items", where,
                            CL_SCHEMA_MAX_ITEMS);
    }
    return CL_OK;
}

static cl_status decode_field(const cl_field *f, json_t *v, int flags, void *p, const char *where,
                              cl_error *err)
{
    cl_status st = CL_OK;

    switch (f->kind) {
    case CL_KIND_STR:
        /* null is the same as absent for an optional string. */
        if (json_is_null(v)) {
            return CL_OK;
        }
        return decode_str(v, (char **)p, where, err);
    case CL_KIND_I64:
        return decode_i64(v, (int64_t *)p, where, err);
    case CL_KIND_OPT_I64: {
        cl_opt_i64 *o = p;
        if (json_is_null(v)) {
            return CL_OK;
        }
        st = decode_i64(v, &o->v, where, err);
        o->set = st == CL_OK;
        return st;
    }
    case CL_KIND_BOOL:
        if (!json_is_boolean(v)) {
            return cl_error_set(err, CL_INVALID, where, "%s must be true or false", where);
        }
        *(bool *)p = json_is_true(v);
        return CL_OK;
    case CL_KIND_STRS: {
        cl_strs *s = p;
        st = decode_array(v, where, err);
        if (st != CL_OK) {
            return st;
        }
        s->v = cl__zalloc(json_array_size(v) + 1, sizeof(char *));
        if (s->v == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        s->set = true;
        for (size_t j = 0; j < json_array_size(v); j++) {
            cl__path item;
            cl__path_index(&item, where, j);
            st = decode_str(json_array_get(v, j), &s->v[j], item.buf, err);
            if (st != CL_OK) {
                return st;
            }
            s->n++;
        }
        return CL_OK;
    }
    case CL_KIND_OBJ:
        return decode_obj(f->sub, v, flags, p, where, err);
    case CL_KIND_OPT_OBJ: {
        void *sub;
        if (json_is_null(v)) {
            return CL_OK;
        }
        sub = cl__zalloc(1, f->sub->size);
        if (sub == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        *(void **)p = sub;
        return decode_obj(f->sub, v, flags, sub, where, err);
    }
    case CL_KIND_OBJS: {
        cl_list *l = p;
        st = decode_array(v, where, err);
        if (st != CL_OK) {
            return st;
        }
        l->v = cl__zalloc(json_array_size(v) + 1, f->sub->size);
        if (l->v == NULL) {
            return cl_error_set(err, CL_INTERNAL, where, "out of memory");
        }
        for (size_t j = 0; j < json_array_size(v); j++) {
            cl__path item;
            cl__path_index(&item, where, j);
            /* Count the element first so that a failure inside it is freed too. */
            l->n++;
            st = decode_obj(f->sub, json_array_get(v, j), flags, (char *)l->v + j * f->sub->size,
                            item.buf, err);
            if (st != CL_OK) {
                return st;
            }
        }
        return CL_OK;
    }
    }
    return cl_error_set(err, CL_INTERNAL, where, "unknown field kind");
}

const cl_field *cl__find_field(const cl_type *type, const char *name)
{
    for (size_t i = 0; i < type->nfields; i++) {
        if (strcmp(type->fields[i].name, name) == 0) {
            return &type->fields[i];
        }
    }
    return NULL;
}

static cl_status decode_obj(const cl_type *type, json_t *json, int flags, void *out,
                            const char *base, cl_error *err)
{
    const char *key;
    json_t *value;

    if (!json_is_object(json)) {
        return cl_error_set(err, CL_INVALID, base, "%s must be an object",
                            base[0] != '\0' ? base : "the body");
    }
    if (flags & CL_DECODE_STRICT) {
        json_object_foreach (json, key, value) {
            if (cl__find_field(type, key) == NULL) {
                cl__path where;
                cl__path_join(&where, base, key);
                return cl_error_set(err, CL_INVALID, where.buf, "unknown field %s", where.buf);
            }
        }
    }
    for (size_t i = 0; i < type->nfields; i++) {
        const cl_field *f = &type->fields[i];
        json_t *v = json_object_get(json, f->name);
        cl__path where;
        cl_status st;

        if (v == NULL) {
            continue;
        }
        cl__path_join(&where, base, f->name);
        st = decode_field(f, v, flags, FIELD_PTR(out, f), where.buf, err);
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

cl_status cl_schema_from_json(const cl_type *type, json_t *json, int flags, void *out,
                              cl_error *err)
{
    cl_status st = decode_obj(type, json, flags, out, "", err);

    if (st != CL_OK) {
        cl_schema_free(type, out);
    }
    return st;
}

/* --- copy ------------------------------------------------------------------------- */

/* Copies the strings of src into dst (zeroed); -1 when out of memory, with dst->n done. */
static int copy_strs(cl_strs *dst, const cl_strs *src)
{
    dst->set = src->set;
    if (src->n == 0) {
        return 0;
    }
    dst->v = calloc(src->n, sizeof(char *));
    if (dst->v == NULL) {
        return -1;
    }
    for (; dst->n < src->n; dst->n++) {
        dst->v[dst->n] = cl_strdup(src->v[dst->n]);
        if (src->v[dst->n] != NULL && dst->v[dst->n] == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Field by field into dst (zeroed): -1 when out of memory, with dst holding what it got. */
static int copy_obj(const cl_type *type, void *dst, const void *src)
{
    for (size_t i = 0; i < type->nfields; i++) {
        const cl_field *f = &type->fields[i];
        void *d = FIELD_PTR(dst, f);
        const void *s = FIELD_PTR(src, f);

        switch (f->kind) {
        case CL_KIND_STR:
            *(char **)d = cl_strdup(*(char *const *)s);
            if (*(char *const *)s != NULL && *(char **)d == NULL) {
                return -1;
            }
            break;
        case CL_KIND_I64:
            *(int64_t *)d = *(const int64_t *)s;
            break;
        case CL_KIND_OPT_I64:
            *(cl_opt_i64 *)d = *(const cl_opt_i64 *)s;
            break;
        case CL_KIND_BOOL:
            *(bool *)d = *(const bool *)s;
            break;
        case CL_KIND_STRS:
            if (copy_strs(d, s) != 0) {
                return -1;
            }
            break;
        case CL_KIND_OBJ:
            if (copy_obj(f->sub, d, s) != 0) {
                return -1;
            }
            break;
        case CL_KIND_OPT_OBJ: {
            const void *sub = *(void *const *)s;
            if (sub != NULL) {
                *(void **)d = calloc(1, f->sub->size);
                if (*(void **)d == NULL || copy_obj(f->sub, *(void **)d, sub) != 0) {
                    return -1;
                }
            }
            break;
        }
        case CL_KIND_OBJS: {
            cl_list *dl = d;
            const cl_list *sl = s;
            if (sl->n > 0) {
                dl->v = calloc(sl->n, f->sub->size);
                if (dl->v == NULL) {
                    return -1;
                }
            }
            /* Counted as they start: a failed one holds what it got, freed with the rest. */
            for (; dl->n < sl->n; dl->n++) {
                if (copy_obj(f->sub, (char *)dl->v + dl->n * f->sub->size,
                             (const char *)sl->v + dl->n * f->sub->size) != 0) {
                    dl->n++;
                    return -1;
                }
            }
            break;
        }
        }
    }
    return 0;
}

cl_status cl_schema_copy(const cl_type *type, void *dst, const void *src)
{
    if (copy_obj(type, dst, src) != 0) {
        cl_schema_free(type, dst);
        return CL_INTERNAL;
    }
    return CL_OK;
}
