/* Internal to shipping's interface side: the pieces shipping_api is made of. */
#ifndef SHIPPING_API_INTERNAL_H
#define SHIPPING_API_INTERNAL_H

#include "shipping/shipping.h"

/* Adds the public REST routes (/api/v1/shipments) over module. */
cl_status shipping_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/* Shipping has no demo data of its own: shipments come from events. *created = 0. */
cl_status shipping_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                        int *created);

#endif /* SHIPPING_API_INTERNAL_H */
