/* Internal to identity's interface side: the pieces identity_api is made of. */
#ifndef IDENTITY_API_INTERNAL_H
#define IDENTITY_API_INTERNAL_H

#include "identity/identity.h"

/* Adds the public REST routes (/api/v1/identity/items) over module. */
cl_status identity_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/* identity has no demo data yet: *created = 0. */
cl_status identity_seed(const cl_handle *module, cl_ctx *ctx, int *created);

#endif /* IDENTITY_API_INTERNAL_H */
