/* Validation, limits and errors shared by the engine's files. */
#ifndef CLEAVE_GRAPHQL_VALIDATE_H
#define CLEAVE_GRAPHQL_VALIDATE_H

#include "schema_internal.h"

/* Appends {"message", "locations"} to errors (at most CL__GQL_MAX_ERRORS are kept). */
void cl__gql_add_error(json_t *errors, const cl__gql_loc *locs, size_t nlocs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Checks doc against s, appending every error found to errors; resolves fields and types. */
void cl__gql_validate(const cl__gql_schema_t *s, cl__gql_doc *doc, json_t *errors);
/* "[Int!]" of a type, into buf. */
void cl__gql_print_tref(const cl__gql_tref *t, char *buf, size_t size);

#endif /* CLEAVE_GRAPHQL_VALIDATE_H */
