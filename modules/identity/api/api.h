/* Internal to identity's interface side: the pieces identity_api is made of. */
#ifndef IDENTITY_API_INTERNAL_H
#define IDENTITY_API_INTERNAL_H

#include "identity/identity.h"

/* Adds the OAuth 2.0 / OpenID Connect endpoints (rest.c) over module. */
cl_status identity_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/* The demo users and client (seed.c); *created counts what it added. */
cl_status identity_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                        int *created);

#endif /* IDENTITY_API_INTERNAL_H */
