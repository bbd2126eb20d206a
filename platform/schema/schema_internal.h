/*
 * schema_internal.h - what the files of platform/schema share and nobody else may use.
 */
#ifndef CLEAVE_SCHEMA_INTERNAL_H
#define CLEAVE_SCHEMA_INTERNAL_H

#include <stddef.h>

#include "cleave/schema.h"

#define CL__FIELD_PTR(obj, f) ((void *)((char *)(obj) + (f)->offset))

/* Paths like "items[3].price.amount" for error messages; bounded by cl_error.field. */
typedef struct cl__path {
    char buf[64];
} cl__path;

void cl__path_join(cl__path *out, const char *base, const char *name);
void cl__path_index(cl__path *out, const char *base, size_t i);

/* count * size zeroed bytes through malloc; NULL for no bytes, on overflow or without memory. */
void *cl__zalloc(size_t count, size_t size);

/* The field of type named name, or NULL. */
const cl_field *cl__find_field(const cl_type *type, const char *name);

#endif /* CLEAVE_SCHEMA_INTERNAL_H */
