/*
 * The process's malloc policy (ADR 0046), set before any thread starts.
 *
 * glibc's defaults cost a server of many threads dearly:
 *   - the mmap threshold is dynamic: after a block above it is freed, the threshold rises to
 *     that block's size (up to 32 MiB), so the next block of that size comes from an arena
 *     and stays resident after it is freed. One argon2id password check (19 MiB) left 19 MiB
 *     in the arena of the worker that ran it, and the next login on another worker another
 *     19 MiB: the resident size grew with each arena that served a login.
 *   - up to 8 arenas per core, each a heap of its own that keeps what its threads freed.
 * A fixed threshold keeps big blocks in mmap (handed back on free), and a bounded number of
 * arenas bounds what freed memory they keep. Not one per core, though: SQLite's page
 * buffers (4 KiB, past glibc's per-thread cache) are allocated and freed by every thread
 * that reads, and with two arenas for some 85 threads their locks were about half the futex
 * calls of a checkout (ADR 0046). MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ in the environment
 * (glibc's own) still win, for an operator who measured otherwise.
 */
#include "memory.h"

#include <stdlib.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void host_memory_policy(void)
{
#if defined(__GLIBC__)
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL) {
        (void)mallopt(M_MMAP_THRESHOLD, HOST_MMAP_THRESHOLD);
    }
    if (getenv("MALLOC_ARENA_MAX") == NULL) {
        (void)mallopt(M_ARENA_MAX, cores > 0 && cores < HOST_ARENA_MAX / HOST_ARENAS_PER_CORE
                                       ? (int)cores * HOST_ARENAS_PER_CORE
                                       : HOST_ARENA_MAX);
    }
#endif
}
