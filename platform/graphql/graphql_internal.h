/*
 * The GraphQL engine's internals shared by its files: the document (an arena of nodes
 * made by the parser) and the schema as the validator and executor walk it.
 */
#ifndef CLEAVE_GRAPHQL_INTERNAL_H
#define CLEAVE_GRAPHQL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cleave/graphql.h"

/* Deepest nesting of selections, lists and objects the parser follows. */
#define CL__GQL_MAX_NESTING 64
/* Most errors a response carries; validation stops collecting beyond. */
#define CL__GQL_MAX_ERRORS  50

typedef struct cl__gql_loc {
    int line;
    int col;
} cl__gql_loc;

typedef struct cl__gql_arena cl__gql_arena;

typedef enum cl__gql_vkind {
    CL__GQL_V_VAR,
    CL__GQL_V_INT,
    CL__GQL_V_FLOAT,
    CL__GQL_V_STRING,
    CL__GQL_V_BOOL,
    CL__GQL_V_NULL,
    CL__GQL_V_ENUM,
    CL__GQL_V_LIST,
    CL__GQL_V_OBJECT,
} cl__gql_vkind;

typedef struct cl__gql_value {
    cl__gql_vkind kind;
    const char *s; /* variable or enum name, number text, decoded string */
    bool b;
    struct cl__gql_value *items; /* list items, object fields */
    const char *field;           /* as an object's field: its name */
    cl__gql_loc field_loc;
    struct cl__gql_value *next;
    cl__gql_loc loc;
} cl__gql_value;

/* A type as written: named, [of], or of! */
typedef enum cl__gql_tkind { CL__GQL_T_NAMED, CL__GQL_T_LIST, CL__GQL_T_NON_NULL } cl__gql_tkind;

typedef struct cl__gql_typeref {
    cl__gql_tkind kind;
    const char *name;
    struct cl__gql_typeref *of;
    cl__gql_loc loc;
} cl__gql_typeref;

typedef struct cl__gql_arg {
    const char *name;
    cl__gql_value *value;
    cl__gql_loc loc;
    struct cl__gql_arg *next;
} cl__gql_arg;

typedef struct cl__gql_directive {
    const char *name;
    cl__gql_arg *args;
    cl__gql_loc loc;
    struct cl__gql_directive *next;
} cl__gql_directive;

typedef enum cl__gql_skind { CL__GQL_FIELD, CL__GQL_SPREAD, CL__GQL_INLINE } cl__gql_skind;

struct cl__gql_stype;
struct cl__gql_sfield;
struct cl__gql_tref;

typedef struct cl__gql_sel {
    cl__gql_skind kind;
    const char *alias; /* NULL: none */
    const char *name;  /* field or fragment name */
    cl__gql_loc name_loc;
    cl__gql_arg *args;
    cl__gql_directive *dirs;
    struct cl__gql_sel *sels; /* NULL: no selection set */
    cl__gql_loc sels_loc;
    cl__gql_typeref *type_cond; /* inline fragments; NULL: none */
    cl__gql_loc loc;
    struct cl__gql_sel *next;
    /* Set by validation for fields: the definition and the type of its selection set. */
    const struct cl__gql_sfield *def;
} cl__gql_sel;

typedef struct cl__gql_vardef {
    const char *name;
    cl__gql_loc name_loc;
    cl__gql_typeref *type;
    cl__gql_value *default_value;
    cl__gql_directive *dirs;
    cl__gql_loc loc;
    bool used;
    const struct cl__gql_tref *rtype; /* set by validation: the type resolved */
    struct cl__gql_vardef *next;
} cl__gql_vardef;

typedef enum cl__gql_op { CL__GQL_QUERY, CL__GQL_MUTATION, CL__GQL_SUBSCRIPTION } cl__gql_op;

typedef struct cl__gql_def {
    bool fragment;
    cl__gql_op op;
    const char *name; /* NULL: anonymous operation */
    cl__gql_loc name_loc;
    cl__gql_vardef *vars;
    cl__gql_directive *dirs;
    cl__gql_sel *sels;
    cl__gql_typeref *type_cond; /* fragments */
    cl__gql_loc loc;
    bool used;
    int visiting;       /* cycle search: 0 not yet, 1 on the path, 2 explored */
    const void *walked; /* validation: the operation whose walk entered it last */
    int index;          /* fragments: 0, 1, ... in document order */
    struct cl__gql_def *next;
} cl__gql_def;

typedef struct cl__gql_doc {
    cl__gql_arena *arena;
    cl__gql_def *defs;
    int tokens;
} cl__gql_doc;

/* A parse error: its message and where. */
typedef struct cl__gql_error {
    char message[256];
    cl__gql_loc loc;
} cl__gql_error;

/*
 * Parses text[len] into *out (cl__gql_doc_free). CL_INVALID with e filled for a syntax
 * error, more than max_tokens tokens or nesting beyond CL__GQL_MAX_NESTING; CL_INTERNAL
 * when memory ran out.
 */
cl_status cl__gql_parse(const char *text, size_t len, int max_tokens, cl__gql_doc **out,
                        cl__gql_error *e);
void cl__gql_doc_free(cl__gql_doc *doc);
/* Parses one constant value (a default value in a schema table) into arena a. */
cl_status cl__gql_parse_value(cl__gql_arena *a, const char *text, cl__gql_value **out,
                              cl__gql_error *e);
cl__gql_arena *cl__gql_arena_new(void);
/* Zeroed memory from the arena, or NULL when out of memory. */
void *cl__gql_arena_alloc(cl__gql_arena *a, size_t n);
void cl__gql_arena_free(cl__gql_arena *a);

#endif /* CLEAVE_GRAPHQL_INTERNAL_H */
