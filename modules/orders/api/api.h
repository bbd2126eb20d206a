/* Internal to the orders' interface side: the pieces orders_api is made of. */
#ifndef ORDERS_API_INTERNAL_H
#define ORDERS_API_INTERNAL_H

#include "orders/orders.h"

/* Adds the public REST routes (/api/v1/orders...) over module. */
cl_status orders_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/* Orders have no demo data: a checkout is what the walkthrough does. *created = 0. */
cl_status orders_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts, int *created);

#endif /* ORDERS_API_INTERNAL_H */
