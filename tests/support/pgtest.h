/*
 * Test support: the throwaway PostgreSQL cluster that tests/postgres/pg-cluster.sh
 * started for this ctest run (a primary and a streaming replica), and a fresh database
 * per test so that tests run in parallel without seeing each other's data.
 *
 * A test runs against PostgreSQL when CL_TEST_DB=postgres; CL_TEST_PG_ENV names
 * the env file the cluster script wrote.
 */
#ifndef CLEAVE_TEST_PGTEST_H
#define CLEAVE_TEST_PGTEST_H

#include <stddef.h>

#include "cleave/status.h"

typedef struct pgtest {
    char primary[256]; /* admin URL of the primary (database postgres) */
    char replica[256]; /* the replica's, or empty */
    char dir[256];     /* the cluster's directory */
    char db[64];       /* the fresh database of this test, once created */
} pgtest;

/* True when this test should run against PostgreSQL (CL_TEST_DB=postgres). */
int pgtest_enabled(void);
/* Reads the cluster's env file into *t. 0, or -1 with the reason printed. */
int pgtest_load(pgtest *t);
/* Creates a database of a new unique name (t->db). 0 or -1. */
int pgtest_db_create(pgtest *t);
/* Drops t->db (forcing out sessions still connected). 0 or -1. */
int pgtest_db_drop(pgtest *t);
/* base (an admin URL) with its database replaced by db, into out[size]. */
void pgtest_url(const char *base, const char *db, char *out, size_t size);
/* Runs sql at url and copies the first column of the first row into out[size] ("" when none). */
int pgtest_query(const char *url, const char *sql, char *out, size_t size);
/*
 * Waits until the replica has replayed everything the primary has written so far, so that
 * data written by another process is visible there. 0, or -1 after timeout_ms.
 */
int pgtest_wait_replica(const pgtest *t, int timeout_ms);
/* Runs the cluster script with cmd ("stop-primary", "start-primary") on t->dir. 0 or -1. */
int pgtest_cluster(const pgtest *t, const char *cmd);

/*
 * Migrates module in the database at admin_url as `cleave migrate` does: its roles,
 * schema and migrations (from the tree's migrations/), then the bus's tables created by
 * the module's owner role. CL_OK or the failure in err.
 */
cl_status pgtest_migrate(const char *admin_url, const char *module, cl_error *err);
/*
 * Creates t->db as pgtest_db_create does, then as pgtest_migrate would leave it for module:
 * a copy of a database this process migrated once for module (made by the first call), with
 * the grants on the database itself that provisioning makes. CL_OK or the failure in err.
 */
cl_status pgtest_db_create_migrated(pgtest *t, const char *module, cl_error *err);

#endif
