/*
 * What each thread of the monolith costs before it does anything (ADR 0047): glibc zeroes a
 * thread's static TLS when it starts the thread, so every byte of a _Thread_local in the
 * executable is written in each of its 86 threads (64 of them HTTP workers that mostly
 * wait). The per-thread id pool (4 KiB) lived there and cost each thread a resident page;
 * it is now on the heap of the threads that make ids, freed when they end.
 */
#include <elf.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/util.h"

/* The thread-locals of the whole tree fit with glibc's thread descriptor in one page. */
#define TLS_BUDGET 1024

/* The size in memory of the TLS segment of the ELF executable at path, or -1. */
static long tls_memsz(const char *path)
{
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    long size = 0;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        return -1;
    }
    if (fread(&eh, sizeof(eh), 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64) {
        size = -1;
    }
    for (int i = 0; size == 0 && i < eh.e_phnum; i++) {
        if (fseek(f, (long)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize), SEEK_SET) != 0 ||
            fread(&ph, sizeof(ph), 1, f) != 1) {
            size = -1;
        } else if (ph.p_type == PT_TLS) {
            size = (long)ph.p_memsz;
        }
    }
    fclose(f);
    return size;
}

static void test_monolith_thread_locals_fit_in_a_page_with_the_descriptor(void **state)
{
    long size = tls_memsz(CLEAVE_BIN_DIR "/cleave");

    (void)state;
    assert_true(size >= 0);
    if (size > TLS_BUDGET) {
        fail_msg("cleave's thread-locals are %ld bytes (budget %d): each of its threads "
                 "writes them at start",
                 size, TLS_BUDGET);
    }
}

static void *make_ids(void *arg)
{
    char *out = arg;

    for (int i = 0; i < 300; i++) { /* past one refill of the pool */
        if (cl_random_id("t", 16, out, 64, NULL) != CL_OK) {
            out[0] = '\0';
            break;
        }
    }
    return NULL;
}

/* Threads that make ids and end: each has its own pool, freed with it (ASan's leak check). */
static void test_ids_from_threads_that_end(void **state)
{
    char a[64], b[64];
    pthread_t t1, t2;

    (void)state;
    assert_int_equal(pthread_create(&t1, NULL, make_ids, a), 0);
    assert_int_equal(pthread_create(&t2, NULL, make_ids, b), 0);
    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);
    assert_int_equal(strlen(a), 33);
    assert_int_equal(strlen(b), 33);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monolith_thread_locals_fit_in_a_page_with_the_descriptor),
        cmocka_unit_test(test_ids_from_threads_that_end),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
