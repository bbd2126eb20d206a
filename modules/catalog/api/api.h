/* Internal to the catalog's interface side: the pieces catalog_api is made of. */
#ifndef CATALOG_API_INTERNAL_H
#define CATALOG_API_INTERNAL_H

#include "catalog/catalog.h"

/* Adds the public REST routes (/api/v1/products, /api/v1/categories) over module. */
cl_status catalog_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/*
 * Creates the deterministic demo catalog through module when it has no product.
 * *created receives how many products were made (0 when there were some already).
 */
cl_status catalog_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                       int *created);

#endif /* CATALOG_API_INTERNAL_H */
