/*
 * The demo stock: every SKU of the demo catalog (SKU-000001 .. SKU-001200, or as many as
 * opts->limit says, see modules/catalog/api/seed.c) gets a deterministic quantity, so that
 * walkthroughs and tests can name both. Made only through the operations table, so a remote
 * inventory is seeded the same way as a local one.
 */
#include <stdbool.h>
#include <stdio.h>

#include "api.h"

#define SEED_SKUS 1200

/* 5..104 units, spread by a multiplier prime to 100: the same on every machine. */
static int64_t demo_quantity(int i)
{
    return 5 + (int64_t)((i * 37) % 100);
}

/*
 * True when sku has stock that someone set: the seed leaves it alone. A record with
 * nothing on hand, reserved or sold is only the one the catalog's product_created event
 * opened (it may arrive before the seed when `cleave seed` runs beside `cleave serve`),
 * so the seed still stocks it. CL_OK or the error of get_stock.
 */
static cl_status stocked(const cl_handle *module, cl_ctx *ctx, const char *sku, bool *out)
{
    inventory_sku_ref ref = {.sku = (char *)sku};
    inventory_stock s = {0};
    cl_status rc;

    rc = inventory_get_stock(module, ctx, &ref, &s);
    *out = rc == CL_OK && (s.on_hand != 0 || s.reserved != 0 || s.sold != 0);
    cl_schema_free(&inventory_stock_type, &s);
    return rc == CL_NOT_FOUND ? CL_OK : rc;
}

cl_status inventory_seed(const cl_handle *module, cl_ctx *ctx, const cl_seed_opts *opts,
                         int *created)
{
    inventory_stock s = {0};
    char sku[16];
    bool done = false;
    int n = 0;
    cl_status rc;

    rc = stocked(module, ctx, "SKU-000001", &done);
    if (rc != CL_OK || done) {
        *created = 0;
        return rc;
    }
    for (int i = 1; i <= cl_seed_count(opts, SEED_SKUS); i++) {
        inventory_stock_set in = {.sku = sku, .on_hand = demo_quantity(i)};

        snprintf(sku, sizeof(sku), "SKU-%06d", i);
        rc = stocked(module, ctx, sku, &done);
        if (rc == CL_OK && !done) {
            rc = inventory_set_stock(module, ctx, &in, &s);
            cl_schema_free(&inventory_stock_type, &s);
            n++;
        }
        if (rc != CL_OK) {
            return rc;
        }
    }
    *created = n;
    return CL_OK;
}
