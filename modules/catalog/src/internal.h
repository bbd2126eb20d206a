/*
 * Private to the catalog's implementation: input rules, list cursors and timestamps.
 * Names start with catalog__ because they are shared between files of src/ only.
 */
#ifndef CATALOG_SRC_INTERNAL_H
#define CATALOG_SRC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"

/* The bounds of catalog.h's rules. */
#define CATALOG_SKU_MAX             64
#define CATALOG_NAME_MAX            200
#define CATALOG_DESCRIPTION_MAX     4000
#define CATALOG_TAGS_MAX            20
#define CATALOG_TAG_MAX             32
/* No filter value can match beyond these lengths; longer ones are refused as input. */
#define CATALOG_CATEGORY_FILTER_MAX 64
#define CATALOG_PREFIX_MAX          CATALOG_NAME_MAX

/* A sorted, duplicate-free tag list; the strings are borrowed from the checked input. */
typedef struct catalog__tags {
    const char **v;
    size_t n;
} catalog__tags;

/* Frees the list (not the strings) and zeroes it. NULL is a no-op. */
void catalog__tags_free(catalog__tags *tags);

/*
 * Checks a new product against catalog.h's rules. On CL_OK *tags receives its tags
 * sorted without duplicates (the caller frees it with catalog__tags_free). Otherwise
 * CL_INVALID (or CL_INTERNAL when out of memory) with ctx->err naming the field, as in
 * JSON ("price.currency", "tags[3]"), and *tags untouched.
 */
cl_status catalog__check_input(cl_ctx *ctx, const catalog_product_input *in, catalog__tags *tags);

/*
 * Checks the fields an update sets; field names start with "changes.". On CL_OK *tags
 * receives the normalised tags when ch->tags.set, and stays empty otherwise.
 */
cl_status catalog__check_changes(cl_ctx *ctx, const catalog_product_changes *ch,
                                 catalog__tags *tags);

/* True when s is well-formed UTF-8 (no overlong forms, surrogates or values > U+10FFFF). */
bool catalog__utf8_valid(const char *s);

/* A digest of list_products' filters, so that a cursor only continues the same listing. */
uint64_t catalog__filters_digest(const char *category, const char *tag, const char *prefix);

/* A new cursor for the page after last_id (caller frees with free()), or NULL (no memory). */
char *catalog__cursor_encode(int64_t last_id, uint64_t digest);

/*
 * Reads a cursor made by catalog__cursor_encode for the same filters into *last_id.
 * CL_INVALID with field "cursor" for anything else.
 */
cl_status catalog__cursor_decode(cl_ctx *ctx, const char *cursor, uint64_t digest,
                                 int64_t *last_id);

/*
 * Writes to hi[size] the smallest string that is greater than every string starting
 * with prefix, byte-wise. Returns false when there is none (prefix is empty or only
 * 0xFF bytes) or hi is too small.
 */
bool catalog__prefix_successor(const char *prefix, char *hi, size_t size);

/*
 * The timestamp of a change to a row last changed at prev: now, or one millisecond
 * after prev when the clock has not passed it, so that updated_at always moves forward.
 */
void catalog__next_timestamp(const char *prev, char out[32]);

#endif /* CATALOG_SRC_INTERNAL_H */
