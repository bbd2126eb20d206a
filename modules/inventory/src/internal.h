/*
 * Private to the inventory's implementation. Names start with inventory__ because they
 * are shared between files of src/ (and the module's own unit tests) only.
 */
#ifndef INVENTORY_SRC_INTERNAL_H
#define INVENTORY_SRC_INTERNAL_H

#include <stdint.h>

#include "inventory/inventory.h"

/*
 * An instance of the inventory: what inventory_module.create makes and every operation
 * runs on (defined in inventory.c; a test gets it as test_local's handle.self).
 */
struct inventory_self;

/*
 * The expiry sweep of instance self with an injected clock: gives back every reservation
 * of its database whose deadline is at or before now_ms. *expired receives how many. The
 * public operation and the instance's background sweeper call it with cl_wall_ms() (wall clock:
 * reservation deadlines survive restarts).
 */
cl_status inventory__expire_at(struct inventory_self *self, cl_ctx *ctx, int64_t now_ms,
                               int64_t *expired);

#endif /* INVENTORY_SRC_INTERNAL_H */
