/*
 * memory.h - the process's malloc policy (ADR 0046). On its own, without the host's
 * headers, so that a test can build it without the sanitizers, which replace malloc.
 */
#ifndef CLEAVE_APP_MEMORY_H
#define CLEAVE_APP_MEMORY_H

/* Blocks from this size up are mmap'ed and go back to the kernel when freed (glibc's). */
#define HOST_MMAP_THRESHOLD  (128 * 1024)
/* Malloc arenas: this many per core, at most HOST_ARENA_MAX in all. */
#define HOST_ARENAS_PER_CORE 4
#define HOST_ARENA_MAX       8

/*
 * Sets glibc's malloc options for a long-running process of many threads: a fixed mmap
 * threshold and HOST_ARENAS_PER_CORE arenas per core (up to HOST_ARENA_MAX), unless the
 * environment sets them. Call first in main, before any thread starts; a no-op without
 * glibc.
 */
void host_memory_policy(void);

#endif
