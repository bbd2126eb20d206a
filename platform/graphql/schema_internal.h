/* The schema as validation and execution walk it (schema.c, introspection.c). */
#ifndef CLEAVE_GRAPHQL_SCHEMA_INTERNAL_H
#define CLEAVE_GRAPHQL_SCHEMA_INTERNAL_H

#include "graphql_internal.h"

typedef struct cl__gql_stype cl__gql_stype;

typedef struct cl__gql_tref {
    cl__gql_tkind kind;
    const cl__gql_stype *named; /* CL__GQL_T_NAMED */
    const struct cl__gql_tref *of;
    struct cl__gql_tref *next_alloc; /* every reference of the schema, for freeing */
} cl__gql_tref;

typedef struct cl__gql_sarg {
    const char *name;
    const char *description;
    const cl__gql_tref *type;
    const char *default_text;     /* as written, for introspection */
    cl__gql_value *default_value; /* parsed; NULL: none */
} cl__gql_sarg;

typedef struct cl__gql_sfield {
    const cl_gql_field *src;
    const char *name;
    const cl__gql_stype *owner;
    const cl__gql_tref *type;
    cl__gql_sarg *args;
    size_t nargs;
} cl__gql_sfield;

struct cl__gql_stype {
    const cl_gql_type *src;
    cl_gql_kind kind;
    const char *name;
    const char *description;
    cl__gql_sfield *fields;
    size_t nfields;
    cl__gql_sarg *inputs;
    size_t ninputs;
    const char *const *values;
    size_t nvalues;
};

/* The directives the engine knows: name, locations (space-separated), arguments. */
typedef struct cl__gql_directive_def {
    const char *name;
    const char *description;
    const char *locations;
    const cl__gql_sarg *args;
    size_t nargs;
} cl__gql_directive_def;

#define CL__GQL_NDIRECTIVES 4

/* The meta-fields every query root has (__schema, __type) and every object (__typename). */
enum { CL__GQL_META_SCHEMA, CL__GQL_META_TYPE, CL__GQL_META_TYPENAME, CL__GQL_META_COUNT };

typedef struct cl__gql_schema_t {
    cl__gql_stype *types;
    size_t ntypes;
    const cl__gql_stype *query;
    const cl__gql_stype *mutation;
    cl__gql_tref *trefs;
    cl__gql_arena *arena;
    cl__gql_sfield meta[CL__GQL_META_COUNT];
    cl__gql_sarg meta_args[1];
    cl__gql_directive_def directives[CL__GQL_NDIRECTIVES]; /* CL__GQL_NDIRECTIVES of them */
    cl__gql_sarg directive_args[4];
} cl__gql_schema_t;

extern const cl_gql_type cl__gql_introspection_types[];

const cl__gql_stype *cl__gql_find_type(const cl__gql_schema_t *s, const char *name);
const cl__gql_sfield *cl__gql_find_field(const cl__gql_stype *t, const char *name);
const cl__gql_sarg *cl__gql_find_arg(const cl__gql_sarg *args, size_t n, const char *name);
const cl__gql_stype *cl__gql_named(const cl__gql_tref *t);
bool cl__gql_is_input(const cl__gql_stype *t);
/* Fills s->meta (after every type is built). */
cl_status cl__gql_meta_fields(cl__gql_schema_t *s, cl_error *err);
/* The field of t called name, meta-fields included (__typename everywhere, roots' others). */
const cl__gql_sfield *cl__gql_lookup_field(const cl__gql_schema_t *s, const cl__gql_stype *t,
                                           const char *name);
/* The schema being executed, for the introspection resolvers. */
const cl__gql_schema_t *cl__gql_call_schema(const cl_gql_call *call);

#endif /* CLEAVE_GRAPHQL_SCHEMA_INTERNAL_H */
