/*
 * The process's malloc policy (app/memory.c, ADR 0046): the memory of an argon2id password
 * check (identity's cost, 19 MiB) goes back to the kernel when it ends, whichever worker
 * ran it. Without the policy each worker's arena kept it: the gateway's resident size grew
 * by 19 MiB with each worker that served a login.
 *
 * Built without the sanitizers (they replace malloc with their own, which keeps freed
 * blocks in quarantine), so that it measures glibc's allocator as the binaries run it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <cmocka.h>

#include "memory.h"

/* What one argon2id check takes (identity's default cost, m = 19 MiB). */
#define BLOCK_BYTES ((size_t)19 << 20)
#define NTHREADS    4
#define ROUNDS      3

/*
 * Each round ends when every thread holds its block; freed is passed when every thread has
 * freed its last, measured when main has read the resident size.
 */
static pthread_barrier_t round_end;
static pthread_barrier_t freed;
static pthread_barrier_t measured;

/* VmRSS of this process in KiB, or -1. */
static long rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kib;
}

/*
 * A worker: round after round, a password check (libargon2 allocates its memory, fills it
 * and frees it) and a small block allocated after it and kept, as the objects a server
 * keeps. The thread lives on until main has measured, as a server's workers do.
 */
static void *worker(void *arg)
{
    void *live[ROUNDS] = {0};
    int failed = 0;

    for (int r = 0; r < ROUNDS; r++) {
        uint8_t hash[32];
        uint8_t salt[16] = {1};

        live[r] = malloc(64);
        if (live[r] == NULL || argon2id_hash_raw(2, BLOCK_BYTES >> 10, 1, "pw", 2, salt,
                                                 sizeof(salt), hash, sizeof(hash)) != ARGON2_OK) {
            failed = 1;
        }
        pthread_barrier_wait(&round_end);
    }
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&measured);
    for (int r = 0; r < ROUNDS; r++) {
        free(live[r]);
    }
    return failed ? NULL : arg;
}

/*
 * Threads that check passwords at the same time, round after round (logins on several
 * workers): with glibc's dynamic mmap threshold, the rounds after the first took their
 * memory from the threads' arenas, where it stayed resident once freed.
 */
static void test_big_blocks_freed_by_threads_leave_no_resident_memory(void **state)
{
    pthread_t t[NTHREADS];
    long before;
    long after;

    (void)state;
    host_memory_policy();
    before = rss_kib();
    assert_true(before > 0);
    assert_int_equal(pthread_barrier_init(&round_end, NULL, NTHREADS), 0);
    assert_int_equal(pthread_barrier_init(&freed, NULL, NTHREADS + 1), 0);
    assert_int_equal(pthread_barrier_init(&measured, NULL, NTHREADS + 1), 0);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, worker, &round_end), 0);
    }
    pthread_barrier_wait(&freed);
    after = rss_kib();
    pthread_barrier_wait(&measured);
    for (int i = 0; i < NTHREADS; i++) {
        void *ok = NULL;

        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_non_null(ok);
    }
    pthread_barrier_destroy(&round_end);
    pthread_barrier_destroy(&freed);
    pthread_barrier_destroy(&measured);
    printf("RSS before %ld KiB, after %d rounds of %d x %zu MiB: %ld KiB\n", before, ROUNDS,
           NTHREADS, BLOCK_BYTES >> 20, after);
    /* Thread stacks and arena headers stay; not half a block may. */
    assert_true(after - before < (long)(BLOCK_BYTES >> 10) / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_blocks_freed_by_threads_leave_no_resident_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
