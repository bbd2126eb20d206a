/*
 * Test support: a fresh local payments (the payments module over its own SQLite file,
 * migrated) in a throwaway directory.
 */
#ifndef PAYMENTS_TESTS_LOCAL_PAYMENTS_H
#define PAYMENTS_TESTS_LOCAL_PAYMENTS_H

#include "payments/payments.h"

typedef struct local_payments {
    char dir[256];
    cl_db *db; /* owned; the payments module borrows it until local_payments_close */
} local_payments;

/*
 * Creates a temporary directory with a migrated payments database and initialises
 * payments_module with it. Returns 0, or -1 after printing why (nothing left behind).
 */
int local_payments_open(local_payments *lc);

/* Closes the database and removes the directory. A zeroed lc is a no-op. */
void local_payments_close(local_payments *lc);

#endif /* PAYMENTS_TESTS_LOCAL_PAYMENTS_H */
