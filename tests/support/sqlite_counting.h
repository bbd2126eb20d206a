/*
 * SQLite's default VFS, counted: a test installs it before its first connection (the
 * driver's own VFS then sits on top of it) and reads what SQLite asked of the files.
 */
#ifndef CLEAVE_TEST_SQLITE_COUNTING_H
#define CLEAVE_TEST_SQLITE_COUNTING_H

#include <stdatomic.h>

/* xSleep calls: SQLite's own busy timeout waits for a lock in them (1, 2, 5 ... 100 ms). */
extern atomic_int sqlite_counted_sleeps;
/* Syncs of any file: database, WAL or journal. */
extern atomic_int sqlite_counted_syncs;
/* Syncs of a main database file (only checkpoints sync one in WAL mode): all, this thread's. */
extern atomic_int sqlite_counted_db_syncs;
extern _Thread_local int sqlite_counted_db_syncs_here;
/*
 * Microseconds a write to a main database file sleeps first (0: none), as on a slow disk:
 * in WAL mode only checkpoints write it, so this slows their copying.
 */
extern atomic_int sqlite_counted_db_write_delay_us;
/*
 * The WAL's write lock (wal-index lock 0, exclusive) granted, which every write
 * transaction takes, and refused to a writer (a connection holding a read mark), which
 * sends it to its busy handler. A reader that finds the wal-index header torn by a commit
 * under way asks for the lock too, holding no read mark, and retries as a reader: its
 * refusals are not counted (under three TSan runs at once they were, and failed a test).
 */
extern atomic_int sqlite_counted_write_locks;
extern atomic_int sqlite_counted_write_lock_refusals;
/* Read marks (wal-index locks 3 to 7) taken shared: every read transaction takes one. All, this
 * thread's. */
extern atomic_int sqlite_counted_read_locks;
extern _Thread_local int sqlite_counted_read_locks_here;

/* Reads of any file: a page of the database or of its WAL that SQLite's cache did not hold. */
extern atomic_int sqlite_counted_reads;

/* Makes the counting copy of the default VFS the default. 0, or -1. */
int sqlite_counting_install(void);

#endif
