/*
 * cleave/graphql.h - a small GraphQL engine (ADR 0038): lexer, parser, validation, limits,
 * executor with per-level batching, and introspection. It knows no module: a schema is a
 * constant table of types whose fields name resolvers, and values are JSON (jansson).
 *
 * Type references are written as in GraphQL: "Int", "[Product!]!". Tables end with an
 * entry whose name is NULL.
 */
#ifndef CLEAVE_GRAPHQL_H
#define CLEAVE_GRAPHQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cleave/status.h"

typedef struct cl_gql_call cl_gql_call;

/*
 * Resolves a field of parent (a JSON object, borrowed) with its coerced arguments (a JSON
 * object, borrowed). On CL_OK *out is a new reference (json_null() for null); any other
 * status reports the message set with cl_gql_call_error (or the status's own) as a field
 * error with its path and location, and the field is null.
 */
typedef cl_status (*cl_gql_resolver)(cl_gql_call *call, json_t *parent, json_t *args, json_t **out);
/*
 * Resolves a field for every parent of one level of the response at once (parents: an
 * array, borrowed): on CL_OK outs (an empty array, borrowed) receives one value per parent
 * in order. A field with a batch resolver must be nullable.
 */
typedef cl_status (*cl_gql_batch_resolver)(cl_gql_call *call, json_t *parents, json_t *args,
                                           json_t *outs);

/* An argument, or a field of an input object. default_value: a GraphQL literal, or NULL. */
typedef struct cl_gql_arg {
    const char *name;
    const char *type;
    const char *default_value;
    const char *description;
} cl_gql_arg;

typedef struct cl_gql_field {
    const char *name;
    const char *type;
    const char *description;
    const cl_gql_arg *args;      /* NULL: none */
    cl_gql_resolver resolve;     /* NULL (and no batch): the parent's member of this name */
    cl_gql_batch_resolver batch; /* or NULL */
    const void *data;            /* for the resolver (cl_gql_call_field_data) */
    int list_size;               /* a list's expected length for the cost; 0: 10 */
} cl_gql_field;

typedef enum cl_gql_kind {
    CL_GQL_SCALAR,
    CL_GQL_OBJECT,
    CL_GQL_INPUT_OBJECT,
    CL_GQL_ENUM,
} cl_gql_kind;

typedef struct cl_gql_type {
    cl_gql_kind kind;
    const char *name;
    const char *description;
    const cl_gql_field *fields;     /* objects */
    const cl_gql_arg *input_fields; /* input objects */
    const char *const *values;      /* enums, NULL-terminated */
} cl_gql_type;

typedef struct cl_gql_schema cl_gql_schema;

/*
 * A schema of types (the built-in scalars Int, Float, String, Boolean, ID and the
 * introspection types are added), with its query type and mutation type (NULL: none).
 * types is borrowed for the schema's life. CL_INVALID naming the type for a reference to
 * an unknown type, a duplicate, a batched non-null field or a malformed type reference.
 */
cl_status cl_gql_schema_new(const cl_gql_type *types, const char *query, const char *mutation,
                            cl_gql_schema **out, cl_error *err);
void cl_gql_schema_free(cl_gql_schema *s);

/* Refused before anything executes, each with its own message. 0 means the default given. */
typedef struct cl_gql_limits {
    size_t max_bytes; /* the query text; 16 KiB */
    int max_depth;    /* nested selections; 15 (the standard introspection query needs 15) */
    int max_nodes;    /* fields once fragments are expanded; 2000 */
    int max_aliases;  /* response keys naming one field in one selection set; 10 */
    int64_t max_cost; /* fields weighted by the lists they are in; 50000 */
    int max_tokens;   /* lexical tokens; 20000 */
} cl_gql_limits;

typedef struct cl_gql_request {
    const char *query;
    size_t query_len;
    json_t *variables;          /* borrowed; NULL or an object */
    const char *operation_name; /* NULL: the only operation */
    bool queries_only;          /* GET: a mutation is refused (CL_GQL_NOT_ALLOWED) */
    void *app;                  /* for resolvers (cl_gql_call_app) */
} cl_gql_request;

typedef enum cl_gql_outcome {
    CL_GQL_EXECUTED,    /* the response has data (maybe with errors) */
    CL_GQL_REJECTED,    /* parse, validation, variable or limit errors: no data */
    CL_GQL_NOT_ALLOWED, /* a mutation in a queries_only request */
} cl_gql_outcome;

/*
 * Parses, validates, checks the limits, coerces the variables and executes. *response is
 * a new reference: {"data":...,"errors":[...]} as the GraphQL specification says (errors
 * with message, locations, path and extensions.code). Returns CL_INTERNAL only when
 * memory ran out (*response NULL).
 */
cl_status cl_gql_execute(const cl_gql_schema *s, const cl_gql_request *req,
                         const cl_gql_limits *limits, json_t **response, cl_gql_outcome *outcome);

/* For resolvers: the request's app pointer, the field's data, the error to fill. */
void *cl_gql_call_app(const cl_gql_call *call);
const void *cl_gql_call_field_data(const cl_gql_call *call);
/* Sets the field error's message and status (extensions.code); returns status. */
cl_status cl_gql_call_error(cl_gql_call *call, cl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether the field being resolved selects a sub-field of this name (fragments included). */
bool cl_gql_call_selects(const cl_gql_call *call, const char *name);

#endif /* CLEAVE_GRAPHQL_H */
