/*
 * The demo stock: every SKU of the demo catalog (SKU-000001 .. SKU-001200, see
 * modules/catalog/api/seed.c) gets a deterministic quantity, so that walkthroughs and
 * tests can name both. Made only through the operations table, so a remote inventory
 * is seeded the same way as a local one.
 */
#include <stdio.h>

#include "api.h"

#define SEED_SKUS 1200

/* 5..104 units, spread by a multiplier prime to 100: the same on every machine. */
static int64_t demo_quantity(int i)
{
    return 5 + (int64_t)((i * 37) % 100);
}

cl_status inventory_seed(const void *ops_, cl_ctx *ctx, int *created)
{
    const inventory_ops *ops = ops_;
    inventory_sku_ref first = {.sku = "SKU-000001"};
    inventory_stock s = {0};
    char sku[16];
    int n;
    cl_status rc;

    rc = ops->get_stock(ctx, &first, &s);
    cl_schema_free(&inventory_stock_type, &s);
    if (rc == CL_OK) {
        *created = 0;
        return CL_OK;
    }
    if (rc != CL_NOT_FOUND) {
        return rc;
    }
    for (n = 0; n < SEED_SKUS; n++) {
        inventory_stock_set in = {.sku = sku, .on_hand = demo_quantity(n + 1)};

        snprintf(sku, sizeof(sku), "SKU-%06d", n + 1);
        rc = ops->set_stock(ctx, &in, &s);
        cl_schema_free(&inventory_stock_type, &s);
        if (rc != CL_OK) {
            return rc;
        }
    }
    *created = n;
    return CL_OK;
}
