/*
 * The demo account: "demo", in EUR, with 1,000.00 deposited, so that a walkthrough can
 * pay for an order at once. Made only through the operations table, with idempotency
 * keys, so that a seed that died half-way completes on the next run without paying in
 * twice.
 */
#include "api.h"

#define DEMO_DEPOSIT 100000 /* minor units: 1,000.00 EUR */

cl_status payments_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                        int *created)
{
    payments_account_ref ref = {.id = PAYMENTS_DEMO_ACCOUNT, .history_limit = 1};
    payments_account_input in = {
        .id = PAYMENTS_DEMO_ACCOUNT, .owner = "Demo Shopper", .currency = "EUR"};
    payments_deposit_request dep = {.account_id = PAYMENTS_DEMO_ACCOUNT,
                                    .amount = {.amount = DEMO_DEPOSIT, .currency = "EUR"}};
    payments_account acc = {0};
    int64_t version = 0;
    cl_status rc;

    (void)opts; /* one account, whatever the catalog's size */
    rc = payments_get_account(module, ctx, &ref, &acc);
    version = acc.version;
    cl_schema_free(&payments_account_type, &acc);
    if (rc == CL_NOT_FOUND) {
        cl_strlcpy(ctx->idempotency_key, "seed:demo:open", sizeof(ctx->idempotency_key));
        rc = payments_open_account(module, ctx, &in, &acc);
        version = acc.version;
        cl_schema_free(&payments_account_type, &acc);
    }
    /* Version 1 is the opening alone: the deposit is still to be made. */
    if (rc == CL_OK && version == 1) {
        cl_strlcpy(ctx->idempotency_key, "seed:demo:deposit", sizeof(ctx->idempotency_key));
        rc = payments_deposit(module, ctx, &dep, &acc);
        cl_schema_free(&payments_account_type, &acc);
        *created = 1;
    } else if (rc == CL_OK) {
        *created = 0;
    }
    ctx->idempotency_key[0] = '\0';
    return rc;
}
