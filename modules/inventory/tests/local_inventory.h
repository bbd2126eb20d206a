/*
 * Test support: a fresh local inventory (the inventory module over its own SQLite file,
 * migrated) in a throwaway directory.
 */
#ifndef INVENTORY_TESTS_LOCAL_INVENTORY_H
#define INVENTORY_TESTS_LOCAL_INVENTORY_H

#include "inventory/inventory.h"

typedef struct local_inventory {
    char dir[256];
    cl_db *db; /* owned; the inventory module borrows it until local_inventory_close */
} local_inventory;

/*
 * Creates a temporary directory with a migrated inventory database and initialises
 * inventory_module with it. Returns 0, or -1 after printing why (nothing left behind).
 */
int local_inventory_open(local_inventory *lc);

/* Closes the database and removes the directory. A zeroed lc is a no-op. */
void local_inventory_close(local_inventory *lc);

#endif /* INVENTORY_TESTS_LOCAL_INVENTORY_H */
