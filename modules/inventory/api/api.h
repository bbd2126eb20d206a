/* Internal to the inventory's interface side: the pieces inventory_api is made of. */
#ifndef INVENTORY_API_INTERNAL_H
#define INVENTORY_API_INTERNAL_H

#include "inventory/inventory.h"

/* Adds the public REST routes (/api/v1/inventory/{sku}) over module. */
cl_status inventory_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/*
 * Sets the stock of the demo catalog's SKUs through module when the first of them has none.
 * *created receives how many SKUs were stocked (0 when there was stock already).
 */
cl_status inventory_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                         int *created);

#endif /* INVENTORY_API_INTERNAL_H */
