/*
 * Test support: a fresh local catalog (the catalog module over its own SQLite file,
 * migrated) in a throwaway directory; with CL_TEST_DB=postgres, over a fresh
 * database of the test run's PostgreSQL cluster instead (its own schema and app role,
 * its replica attached), dropped again at close.
 */
#ifndef CATALOG_TESTS_LOCAL_CATALOG_H
#define CATALOG_TESTS_LOCAL_CATALOG_H

#include "catalog/catalog.h"
#include "pgtest.h"

typedef struct local_catalog {
    char dir[256];
    cl_db *db; /* owned; the catalog module borrows it until local_catalog_close */
    pgtest pg; /* the PostgreSQL database, when pg.db is set */
} local_catalog;

/*
 * Creates a temporary directory with a migrated catalog database and initialises
 * catalog_module with it. Returns 0, or -1 after printing why (nothing left behind).
 */
int local_catalog_open(local_catalog *lc);

/* Closes the database and removes the directory. A zeroed lc is a no-op. */
void local_catalog_close(local_catalog *lc);

#endif /* CATALOG_TESTS_LOCAL_CATALOG_H */
