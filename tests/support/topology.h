/*
 * Test support: the shop as a running system, for end-to-end tests. A topology is the
 * set of processes serving the public API: the monolith alone, or (later) the host
 * with modules extracted into their own services. Tests only see base_url.
 */
#ifndef CLEAVE_TEST_TOPOLOGY_H
#define CLEAVE_TEST_TOPOLOGY_H

#include "proc.h"

#define TOPOLOGY_MAX_PROCS 8

typedef struct topology {
    char dir[256];              /* throwaway directory: data, logs, migrations copy */
    char base_url[64];          /* http://127.0.0.1:PORT of the public API */
    char migrations_dir[512];   /* a private copy the test may change */
    test_proc procs[TOPOLOGY_MAX_PROCS];
    int nprocs;
} topology;

/*
 * Builds a data directory, migrates it, seeds it when seed is set, and starts the
 * processes of the named topology ("monolith"). Returns 0, or -1 with the reason printed.
 */
int topology_start(topology *t, const char *name, int seed);
/* Stops every process (SIGTERM), returns 0 when all exited 0; removes the directory. */
int topology_stop(topology *t);
/* Path of a cleave binary in the build ("cleave", "cleave-catalog"). */
const char *topology_bin(const char *name, char *buf, size_t size);

#endif
