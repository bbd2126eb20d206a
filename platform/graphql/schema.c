/*
 * The schema as the engine walks it: the application's tables with their type references
 * resolved, plus the built-in scalars and the introspection types (GraphQL specification
 * section 4), whose resolvers read this very structure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

/* --- type references ---------------------------------------------------------------- */

static cl__gql_tref *tref_new(cl__gql_schema_t *s)
{
    cl__gql_tref *t = calloc(1, sizeof(*t));

    if (t != NULL) {
        t->next_alloc = s->trefs;
        s->trefs = t;
    }
    return t;
}

const cl__gql_stype *cl__gql_find_type(const cl__gql_schema_t *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->ntypes; i++) {
        if (strcmp(s->types[i].name, name) == 0) {
            return &s->types[i];
        }
    }
    return NULL;
}

const cl__gql_sfield *cl__gql_find_field(const cl__gql_stype *t, const char *name)
{
    for (size_t i = 0; t != NULL && name != NULL && i < t->nfields; i++) {
        if (strcmp(t->fields[i].name, name) == 0) {
            return &t->fields[i];
        }
    }
    return NULL;
}

const cl__gql_sarg *cl__gql_find_arg(const cl__gql_sarg *args, size_t n, const char *name)
{
    for (size_t i = 0; name != NULL && i < n; i++) {
        if (strcmp(args[i].name, name) == 0) {
            return &args[i];
        }
    }
    return NULL;
}

/* Parses "[Name!]!" from *p; NULL on a malformed reference or an unknown name. */
static cl__gql_tref *parse_tref(cl__gql_schema_t *s, const char **p)
{
    cl__gql_tref *t = tref_new(s);

    if (t == NULL) {
        return NULL;
    }
    if (**p == '[') {
        (*p)++;
        t->kind = CL__GQL_T_LIST;
        t->of = parse_tref(s, p);
        if (t->of == NULL || **p != ']') {
            return NULL;
        }
        (*p)++;
    } else {
        char name[128];
        size_t n = strspn(*p, "_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");

        if (n == 0 || n >= sizeof(name)) {
            return NULL;
        }
        memcpy(name, *p, n);
        name[n] = '\0';
        *p += n;
        t->kind = CL__GQL_T_NAMED;
        t->named = cl__gql_find_type(s, name);
        if (t->named == NULL) {
            return NULL;
        }
    }
    if (**p == '!') {
        cl__gql_tref *nn = tref_new(s);

        (*p)++;
        if (nn == NULL) {
            return NULL;
        }
        nn->kind = CL__GQL_T_NON_NULL;
        nn->of = t;
        t = nn;
    }
    return t;
}

static cl__gql_tref *tref_from(cl__gql_schema_t *s, const char *text)
{
    const char *p = text;
    cl__gql_tref *t = text != NULL ? parse_tref(s, &p) : NULL;

    return t != NULL && *p == '\0' ? t : NULL;
}

const cl__gql_stype *cl__gql_named(const cl__gql_tref *t)
{
    while (t->kind != CL__GQL_T_NAMED) {
        t = t->of;
    }
    return t->named;
}

bool cl__gql_is_input(const cl__gql_stype *t)
{
    return t->kind != CL_GQL_OBJECT;
}

/* --- building ----------------------------------------------------------------------- */

static const cl_gql_type builtin_scalars[] = {
    {CL_GQL_SCALAR, "Int",
     "The `Int` scalar type represents non-fractional signed whole "
     "numeric values. Int can represent values between -(2^31) and "
     "2^31 - 1.",
     NULL, NULL, NULL},
    {CL_GQL_SCALAR, "Float",
     "The `Float` scalar type represents signed double-precision "
     "fractional values as specified by [IEEE 754]"
     "(https://en.wikipedia.org/wiki/IEEE_floating_point).",
     NULL, NULL, NULL},
    {CL_GQL_SCALAR, "String",
     "The `String` scalar type represents textual data, represented "
     "as UTF-8 character sequences. The String type is most often "
     "used by GraphQL to represent free-form human-readable text.",
     NULL, NULL, NULL},
    {CL_GQL_SCALAR, "Boolean", "The `Boolean` scalar type represents `true` or `false`.", NULL,
     NULL, NULL},
    {CL_GQL_SCALAR, "ID",
     "The `ID` scalar type represents a unique identifier, often used to "
     "refetch an object or as key for a cache. The ID type appears in a "
     "JSON response as a String; however, it is not intended to be "
     "human-readable. When expected as an input type, any string (such "
     "as `\"4\"`) or integer (such as `4`) input value will be accepted "
     "as an ID.",
     NULL, NULL, NULL},
    {0, NULL, NULL, NULL, NULL, NULL},
};

static size_t count_types(const cl_gql_type *t)
{
    size_t n = 0;

    while (t != NULL && t[n].name != NULL) {
        n++;
    }
    return n;
}

static size_t count_args(const cl_gql_arg *a)
{
    size_t n = 0;

    while (a != NULL && a[n].name != NULL) {
        n++;
    }
    return n;
}

static cl_status bad(cl_error *err, const char *type, const char *what, const char *name)
{
    return cl_error_set(err, CL_INVALID, type, "GraphQL schema: %s %s.%s", what, type,
                        name != NULL ? name : "");
}

static cl_status build_args(cl__gql_schema_t *s, const char *owner, const cl_gql_arg *in,
                            cl__gql_sarg **out, size_t *nout, cl_error *err)
{
    size_t n = count_args(in);

    *nout = n;
    *out = n > 0 ? calloc(n, sizeof(**out)) : NULL;
    if (n > 0 && *out == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cl__gql_sarg *a = &(*out)[i];
        cl__gql_error pe;

        a->name = in[i].name;
        a->description = in[i].description;
        a->default_text = in[i].default_value;
        a->type = tref_from(s, in[i].type);
        if (a->type == NULL || !cl__gql_is_input(cl__gql_named(a->type))) {
            return bad(err, owner, "argument with a bad type", in[i].name);
        }
        if (in[i].default_value != NULL &&
            cl__gql_parse_value(s->arena, in[i].default_value, &a->default_value, &pe) != CL_OK) {
            return bad(err, owner, "argument with a bad default", in[i].name);
        }
    }
    return CL_OK;
}

static cl_status add_type(cl__gql_schema_t *s, const cl_gql_type *t, cl_error *err)
{
    if (cl__gql_find_type(s, t->name) != NULL) {
        return bad(err, t->name, "duplicate type", "");
    }
    s->types[s->ntypes].src = t;
    s->types[s->ntypes].name = t->name;
    s->types[s->ntypes].kind = t->kind;
    s->types[s->ntypes].description = t->description;
    s->types[s->ntypes].values = t->values;
    s->ntypes++;
    return CL_OK;
}

static cl_status build_fields(cl__gql_schema_t *s, cl__gql_stype *t, cl_error *err)
{
    const cl_gql_field *f = t->src->fields;
    size_t n = 0;
    cl_status st;

    while (f != NULL && f[n].name != NULL) {
        n++;
    }
    t->nfields = n;
    t->fields = n > 0 ? calloc(n, sizeof(*t->fields)) : NULL;
    if (n > 0 && t->fields == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cl__gql_sfield *sf = &t->fields[i];

        sf->src = &f[i];
        sf->name = f[i].name;
        sf->owner = t;
        sf->type = tref_from(s, f[i].type);
        if (sf->type == NULL || cl__gql_named(sf->type)->kind == CL_GQL_INPUT_OBJECT) {
            return bad(err, t->name, "field with a bad type", f[i].name);
        }
        if (f[i].batch != NULL && sf->type->kind == CL__GQL_T_NON_NULL) {
            return bad(err, t->name, "batched field that is non-null", f[i].name);
        }
        st = build_args(s, t->name, f[i].args, &sf->args, &sf->nargs, err);
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

cl_status cl_gql_schema_new(const cl_gql_type *types, const char *query, const char *mutation,
                            cl_gql_schema **out, cl_error *err)
{
    cl__gql_schema_t *s = calloc(1, sizeof(*s));
    size_t n = count_types(types) + count_types(builtin_scalars) +
               count_types(cl__gql_introspection_types);
    cl_status st = CL_OK;

    *out = NULL;
    if (s == NULL || (s->types = calloc(n + 1, sizeof(*s->types))) == NULL ||
        (s->arena = cl__gql_arena_new()) == NULL) {
        cl_gql_schema_free((cl_gql_schema *)s);
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; st == CL_OK && i < count_types(types); i++) {
        st = add_type(s, &types[i], err);
    }
    for (size_t i = 0; st == CL_OK && builtin_scalars[i].name != NULL; i++) {
        st = add_type(s, &builtin_scalars[i], err);
    }
    for (size_t i = 0; st == CL_OK && cl__gql_introspection_types[i].name != NULL; i++) {
        st = add_type(s, &cl__gql_introspection_types[i], err);
    }
    for (size_t i = 0; st == CL_OK && i < s->ntypes; i++) {
        cl__gql_stype *t = &s->types[i];

        if (t->kind == CL_GQL_OBJECT) {
            st = build_fields(s, t, err);
        } else if (t->kind == CL_GQL_INPUT_OBJECT) {
            st = build_args(s, t->name, t->src->input_fields, &t->inputs, &t->ninputs, err);
        }
        for (t->nvalues = 0; t->values != NULL && t->values[t->nvalues] != NULL; t->nvalues++) {
        }
    }
    if (st == CL_OK) {
        s->query = cl__gql_find_type(s, query);
        s->mutation = mutation != NULL ? cl__gql_find_type(s, mutation) : NULL;
        if (s->query == NULL || s->query->kind != CL_GQL_OBJECT ||
            (mutation != NULL && (s->mutation == NULL || s->mutation->kind != CL_GQL_OBJECT))) {
            st = bad(err, query, "root type missing or not an object", mutation);
        }
    }
    if (st == CL_OK) {
        st = cl__gql_meta_fields(s, err);
    }
    if (st != CL_OK) {
        cl_gql_schema_free((cl_gql_schema *)s);
        return st;
    }
    *out = (cl_gql_schema *)s;
    return CL_OK;
}

void cl_gql_schema_free(cl_gql_schema *schema)
{
    cl__gql_schema_t *s = (cl__gql_schema_t *)schema;

    if (s == NULL) {
        return;
    }
    for (size_t i = 0; s->types != NULL && i < s->ntypes; i++) {
        for (size_t j = 0; j < s->types[i].nfields; j++) {
            free(s->types[i].fields[j].args);
        }
        free(s->types[i].fields);
        free(s->types[i].inputs);
    }
    while (s->trefs != NULL) {
        cl__gql_tref *next = s->trefs->next_alloc;

        free(s->trefs);
        s->trefs = next;
    }
    free(s->types);
    cl__gql_arena_free(s->arena);
    free(s);
}

/* --- meta-fields and directives ------------------------------------------------------ */

cl_status cl__gql_meta_schema(cl_gql_call *call, json_t *parent, json_t *args, json_t **out);
cl_status cl__gql_meta_type(cl_gql_call *call, json_t *parent, json_t *args, json_t **out);

static const cl_gql_field meta_src[CL__GQL_META_COUNT] = {
    {"__schema", "__Schema!", "Access the current type schema of this server.", NULL,
     cl__gql_meta_schema, NULL, NULL, 0},
    {"__type", "__Type", "Request the type information of a single type.", NULL, cl__gql_meta_type,
     NULL, NULL, 0},
    {"__typename", "String!", "The name of the current Object type at runtime.", NULL, NULL, NULL,
     NULL, 0},
};

static cl_status arg_of(cl__gql_schema_t *s, cl__gql_sarg *a, const char *name, const char *type,
                        const char *def, const char *description, cl_error *err)
{
    cl__gql_error pe;

    a->name = name;
    a->type = tref_from(s, type);
    a->description = description;
    a->default_text = def;
    if (a->type == NULL ||
        (def != NULL && cl__gql_parse_value(s->arena, def, &a->default_value, &pe) != CL_OK)) {
        return cl_error_set(err, CL_INTERNAL, NULL, "GraphQL schema: directive %s", name);
    }
    return CL_OK;
}

cl_status cl__gql_meta_fields(cl__gql_schema_t *s, cl_error *err)
{
    cl__gql_sarg *da = s->directive_args;
    cl_status st;

    for (int i = 0; i < CL__GQL_META_COUNT; i++) {
        s->meta[i].src = &meta_src[i];
        s->meta[i].name = meta_src[i].name;
        s->meta[i].type = tref_from(s, meta_src[i].type);
        if (s->meta[i].type == NULL) {
            return cl_error_set(err, CL_INTERNAL, NULL, "GraphQL schema: meta-field %s",
                                meta_src[i].name);
        }
    }
    st = arg_of(s, &s->meta_args[0], "name", "String!", NULL, NULL, err);
    s->meta[CL__GQL_META_TYPE].args = s->meta_args;
    s->meta[CL__GQL_META_TYPE].nargs = 1;
    if (st == CL_OK) {
        st = arg_of(s, &da[0], "if", "Boolean!", NULL, "Included when true.", err);
    }
    if (st == CL_OK) {
        st = arg_of(s, &da[1], "if", "Boolean!", NULL, "Skipped when true.", err);
    }
    if (st == CL_OK) {
        st = arg_of(s, &da[2], "reason", "String", "\"No longer supported\"",
                    "Explains why this element was deprecated, usually also including a "
                    "suggestion for how to access supported similar data. Formatted using the "
                    "Markdown syntax, as specified by [CommonMark](https://commonmark.org/).",
                    err);
    }
    if (st == CL_OK) {
        st = arg_of(s, &da[3], "url", "String!", NULL,
                    "The URL that specifies the behavior of this scalar.", err);
    }
    s->directives[0] = (cl__gql_directive_def){
        "include",
        "Directs the executor to include this field or fragment only when the `if` argument "
        "is true.",
        "FIELD FRAGMENT_SPREAD INLINE_FRAGMENT", &da[0], 1};
    s->directives[1] = (cl__gql_directive_def){
        "skip",
        "Directs the executor to skip this field or fragment when the `if` argument is true.",
        "FIELD FRAGMENT_SPREAD INLINE_FRAGMENT", &da[1], 1};
    s->directives[2] = (cl__gql_directive_def){
        "deprecated", "Marks an element of a GraphQL schema as no longer supported.",
        "FIELD_DEFINITION ARGUMENT_DEFINITION INPUT_FIELD_DEFINITION ENUM_VALUE", &da[2], 1};
    s->directives[3] = (cl__gql_directive_def){
        "specifiedBy", "Exposes a URL that specifies the behavior of this scalar.", "SCALAR",
        &da[3], 1};
    return st;
}

const cl__gql_sfield *cl__gql_lookup_field(const cl__gql_schema_t *s, const cl__gql_stype *t,
                                           const char *name)
{
    if (strcmp(name, "__typename") == 0 && t->kind == CL_GQL_OBJECT) {
        return &s->meta[CL__GQL_META_TYPENAME];
    }
    if (t == s->query && strcmp(name, "__schema") == 0) {
        return &s->meta[CL__GQL_META_SCHEMA];
    }
    if (t == s->query && strcmp(name, "__type") == 0) {
        return &s->meta[CL__GQL_META_TYPE];
    }
    return cl__gql_find_field(t, name);
}
