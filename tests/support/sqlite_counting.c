/*
 * The default VFS with its sleep counted, and the files it opens given a copy of their
 * method table whose xRead, xSync and xShmLock count (and whose xWrite may slow a database
 * file's writes), then call the real ones. The default VFS gives its files one of a few
 * method tables (a WAL's is not a database's): each copy is found again by its place in
 * counted.
 */
#include "sqlite_counting.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include <sqlite3.h>

#define COUNTED_METHODS 4
#define WAL_WRITE_LOCK  0
#define WAL_READ_LOCK_0 3

atomic_int sqlite_counted_sleeps;
atomic_int sqlite_counted_syncs;
atomic_int sqlite_counted_db_syncs;
_Thread_local int sqlite_counted_db_syncs_here;
atomic_int sqlite_counted_db_write_delay_us;
atomic_int sqlite_counted_write_locks;
atomic_int sqlite_counted_write_lock_refusals;
atomic_int sqlite_counted_read_locks;
_Thread_local int sqlite_counted_read_locks_here;
atomic_int sqlite_counted_reads;

static sqlite3_vfs counting_vfs;
static int (*real_sleep)(sqlite3_vfs *vfs, int us);
static int (*real_open)(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                        int *out_flags);
static struct {
    const sqlite3_io_methods *real;
    sqlite3_io_methods copy;
} counted[COUNTED_METHODS];
static int ncounted;
static pthread_mutex_t counted_mu = PTHREAD_MUTEX_INITIALIZER;
/*
 * The main database files open now, one per connection, with the read marks each holds
 * (counted_mu). A connection asks for the WAL's write lock holding a read mark when it
 * begins to write; holding none when, beginning to read, it found the wal-index header
 * torn by a writer rewriting it and would recover it (it then retries as a reader).
 */
#define MAIN_FILES 64
static struct {
    const sqlite3_file *file;
    int marks;
} main_files[MAIN_FILES];

/* file's entry in main_files, or NULL; counted_mu held. */
static int *marks_of(const sqlite3_file *file)
{
    for (int i = 0; i < MAIN_FILES; i++) {
        if (main_files[i].file == file) {
            return &main_files[i].marks;
        }
    }
    return NULL;
}

static bool is_main_file(const sqlite3_file *file)
{
    bool found;

    pthread_mutex_lock(&counted_mu);
    found = marks_of(file) != NULL;
    pthread_mutex_unlock(&counted_mu);
    return found;
}

/* Puts file in main_files (from NULL) or takes it out (to NULL); counted_mu held. */
static void swap_main_file(const sqlite3_file *from, const sqlite3_file *to)
{
    for (int i = 0; i < MAIN_FILES; i++) {
        if (main_files[i].file == from) {
            main_files[i].file = to;
            main_files[i].marks = 0;
            return;
        }
    }
}

/* Adds d to the read marks file holds; what it held before. */
static int add_marks(const sqlite3_file *file, int d)
{
    int *marks;
    int before = 0;

    pthread_mutex_lock(&counted_mu);
    marks = marks_of(file);
    if (marks != NULL) {
        before = *marks;
        *marks += d;
    }
    pthread_mutex_unlock(&counted_mu);
    return before;
}

static int counting_sleep(sqlite3_vfs *vfs, int us)
{
    atomic_fetch_add(&sqlite_counted_sleeps, 1);
    return real_sleep(vfs, us);
}

static const sqlite3_io_methods *real_methods(const sqlite3_file *file)
{
    for (int i = 0; i < COUNTED_METHODS; i++) {
        if (file->pMethods == &counted[i].copy) {
            return counted[i].real;
        }
    }
    return NULL;
}

static int counting_sync(sqlite3_file *file, int flags)
{
    const sqlite3_io_methods *real = real_methods(file);

    if (real == NULL) {
        return SQLITE_INTERNAL;
    }
    atomic_fetch_add(&sqlite_counted_syncs, 1);
    if (is_main_file(file)) {
        atomic_fetch_add(&sqlite_counted_db_syncs, 1);
        sqlite_counted_db_syncs_here++;
    }
    return real->xSync(file, flags);
}

static int counting_close(sqlite3_file *file)
{
    const sqlite3_io_methods *real = real_methods(file);

    if (real == NULL) {
        return SQLITE_INTERNAL;
    }
    pthread_mutex_lock(&counted_mu);
    swap_main_file(file, NULL);
    pthread_mutex_unlock(&counted_mu);
    return real->xClose(file);
}

static int counting_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
    const sqlite3_io_methods *real = real_methods(file);

    if (real == NULL) {
        return SQLITE_INTERNAL;
    }
    atomic_fetch_add(&sqlite_counted_reads, 1);
    return real->xRead(file, data, amt, off);
}

static int counting_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    const sqlite3_io_methods *real = real_methods(file);
    int delay_us = atomic_load(&sqlite_counted_db_write_delay_us);

    if (real == NULL) {
        return SQLITE_INTERNAL;
    }
    if (delay_us > 0 && is_main_file(file)) {
        struct timespec delay = {delay_us / 1000000, (long)(delay_us % 1000000) * 1000L};

        nanosleep(&delay, NULL);
    }
    return real->xWrite(file, data, amt, off);
}

static int counting_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    const sqlite3_io_methods *real = real_methods(file);
    int rc;

    if (real == NULL) {
        return SQLITE_INTERNAL;
    }
    rc = real->xShmLock(file, offset, n, flags);
    if (offset == WAL_WRITE_LOCK && (flags & (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)) ==
                                        (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE)) {
        if (rc == SQLITE_OK) {
            atomic_fetch_add(&sqlite_counted_write_locks, 1);
        } else if (rc == SQLITE_BUSY && add_marks(file, 0) > 0) {
            atomic_fetch_add(&sqlite_counted_write_lock_refusals, 1);
        }
    }
    if (offset >= WAL_READ_LOCK_0 && (flags & SQLITE_SHM_SHARED) != 0) {
        if ((flags & SQLITE_SHM_LOCK) != 0 && rc == SQLITE_OK) {
            atomic_fetch_add(&sqlite_counted_read_locks, 1);
            sqlite_counted_read_locks_here++;
            (void)add_marks(file, n);
        } else if ((flags & SQLITE_SHM_UNLOCK) != 0) {
            (void)add_marks(file, -n);
        }
    }
    return rc;
}

static int counting_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                         int *out_flags)
{
    int rc = real_open(vfs, name, file, flags, out_flags);
    int i;

    if (rc != SQLITE_OK || file->pMethods == NULL) {
        return rc;
    }
    pthread_mutex_lock(&counted_mu);
    for (i = 0; i < ncounted && counted[i].real != file->pMethods; i++) {
    }
    if (i == ncounted && ncounted < COUNTED_METHODS) {
        counted[i].real = file->pMethods;
        counted[i].copy = *file->pMethods;
        counted[i].copy.xSync = counting_sync;
        counted[i].copy.xClose = counting_close;
        counted[i].copy.xRead = counting_read;
        counted[i].copy.xWrite = counting_write;
        if (file->pMethods->iVersion >= 2 && file->pMethods->xShmLock != NULL) {
            counted[i].copy.xShmLock = counting_shm_lock;
        }
        ncounted++;
    }
    if (i < ncounted) {
        file->pMethods = &counted[i].copy;
        if ((flags & SQLITE_OPEN_MAIN_DB) != 0) {
            swap_main_file(NULL, file);
        }
    }
    pthread_mutex_unlock(&counted_mu);
    return rc;
}

int sqlite_counting_install(void)
{
    sqlite3_vfs *def = sqlite3_vfs_find(NULL);

    if (def == NULL) {
        return -1;
    }
    counting_vfs = *def;
    counting_vfs.zName = "cleave-test-counting";
    counting_vfs.pNext = NULL;
    real_sleep = def->xSleep;
    counting_vfs.xSleep = counting_sleep;
    real_open = def->xOpen;
    counting_vfs.xOpen = counting_open;
    return sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK ? 0 : -1;
}
