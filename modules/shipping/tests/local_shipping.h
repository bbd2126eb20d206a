/*
 * Test support: a fresh local shipping module (over its own SQLite file, migrated, with
 * the bus tables) in a throwaway directory, with a started in-process bus so that its
 * carrier operations run as they do in `cleave serve`.
 */
#ifndef SHIPPING_TESTS_LOCAL_SHIPPING_H
#define SHIPPING_TESTS_LOCAL_SHIPPING_H

#include "shipping/shipping.h"

typedef struct local_shipping {
    char dir[256];
    cl_config *cfg; /* owned; borrowed by the module and the bus */
    cl_db *db;      /* owned; the module and the bus borrow it until local_shipping_close */
    cl_bus *bus;    /* owned; started */
} local_shipping;

/*
 * Creates a temporary directory with a migrated shipping database, a bus for it, and
 * initialises shipping_module with both; env_add ("CLEAVE_...=value", NULL-terminated)
 * is its configuration. Returns 0, or -1 after printing why (nothing left behind).
 */
int local_shipping_open(local_shipping *ls, char *const *env_add);

/* Stops the bus, closes the database and removes the directory. A zeroed ls is a no-op. */
void local_shipping_close(local_shipping *ls);

#endif /* SHIPPING_TESTS_LOCAL_SHIPPING_H */
