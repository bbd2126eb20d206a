/* Internal to the payments' interface side: the pieces payments_api is made of. */
#ifndef PAYMENTS_API_INTERNAL_H
#define PAYMENTS_API_INTERNAL_H

#include "payments/payments.h"

/* The demo account the seed opens: walkthroughs and tests may name it. */
#define PAYMENTS_DEMO_ACCOUNT "demo"

/* Adds the public REST routes (/api/v1/accounts...) over module. */
cl_status payments_rest_routes(cl_router *r, const cl_handle *module, cl_error *err);
/*
 * Opens the demo account (PAYMENTS_DEMO_ACCOUNT, EUR) with a deposit through module when it
 * does not exist. *created receives 1 when it was opened, else 0.
 */
cl_status payments_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                        int *created);

#endif /* PAYMENTS_API_INTERNAL_H */
