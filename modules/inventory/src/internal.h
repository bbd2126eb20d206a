/*
 * Private to the inventory's implementation. Names start with inventory__ because they
 * are shared between files of src/ (and the module's own unit tests) only.
 */
#ifndef INVENTORY_SRC_INTERNAL_H
#define INVENTORY_SRC_INTERNAL_H

#include <stdint.h>

#include "inventory/inventory.h"

/* Defaults of the configuration keys the inventory reads at init. */
#define INVENTORY_DEFAULT_TTL_MS             900000 /* CLEAVE_INVENTORY_RESERVATION_TTL_MS */
#define INVENTORY_DEFAULT_EXPIRY_INTERVAL_MS 1000   /* CLEAVE_INVENTORY_EXPIRY_INTERVAL_MS */

/* Wall-clock milliseconds since the epoch: reservation deadlines survive restarts. */
int64_t inventory__wall_ms(void);

/*
 * The expiry sweep with an injected clock: gives back every reservation whose deadline
 * is at or before now_ms. *expired receives how many. The public operation and the
 * background sweeper call it with inventory__wall_ms().
 */
cl_status inventory__expire_at(cl_ctx *ctx, int64_t now_ms, int64_t *expired);

#endif /* INVENTORY_SRC_INTERNAL_H */
