/*
 * The SQLite driver: one database file per module, opened in WAL mode so that readers
 * never block the writer. Each connection is used by one thread at a time (the pool
 * guarantees it), so SQLite's own per-connection mutex is switched off.
 */
#include "cleave/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cleave/util.h"

/* How long a writer waits for another connection's write lock before giving up. */
#define CL__SQLITE_BUSY_TIMEOUT_MS         5000
/*
 * The longest a waiting writer sleeps before it tries the lock again without being woken:
 * what a commit this process did not see (another process's, or one that ended just before
 * the writer began to wait) can cost it.
 */
#define CL__SQLITE_BUSY_NAP_US             500
/*
 * The WAL's size, in frames, from which a commit checkpoints it and starts it again: 16,000
 * frames of 1 KiB pages (ADR 0057), about the 16 MB that 4,000 frames of 4 KiB were.
 */
#define CL__SQLITE_CHECKPOINT_FRAMES       16000
/*
 * How long that checkpoint waits for the readers still in the WAL (new writers wait for the
 * checkpoint meanwhile), and how many frames later it is tried again when they outlast that.
 * Each one they outlast in a row makes the next one wait four times as long, at most
 * CL__SQLITE_CHECKPOINT_STEPS times.
 */
#define CL__SQLITE_CHECKPOINT_WAIT_MS      20
#define CL__SQLITE_CHECKPOINT_STEPS        2
#define CL__SQLITE_CHECKPOINT_RETRY_FRAMES 500
/*
 * The WAL's size, in frames, from which a writer of this process that begins while a
 * checkpoint runs waits for it to end (see checkpoint_wait).
 */
#define CL__SQLITE_CHECKPOINT_HOLD_FRAMES  (CL__SQLITE_CHECKPOINT_FRAMES * 3 / 2)
/*
 * A checkpoint's PASSIVE passes before its RESTART (see copy_passively): at most
 * CL__SQLITE_CHECKPOINT_PASSES, fewer once one found at most CL__SQLITE_CHECKPOINT_TAIL_FRAMES
 * committed since the pass before.
 */
#define CL__SQLITE_CHECKPOINT_PASSES       4
#define CL__SQLITE_CHECKPOINT_TAIL_FRAMES  64

/*
 * Writers of this process that wait for the write lock sleep on busy_cv until any
 * connection of this process ends a write transaction (busy_ends counts them). SQLite's
 * own busy timeout sleeps 1, 2, 5, 10 ... 100 ms between tries whatever happens meanwhile:
 * with a few threads writing one file, a checkout spent most of its time in those sleeps.
 */
static pthread_once_t busy_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cv;
static uint64_t busy_ends;
/*
 * How long this thread has slept in the busy handler since SQLite began to call it for the
 * current call into SQLite (microseconds), and how long it may (milliseconds). The time
 * between two calls is not counted: in a checkpoint it is the copying and syncing done
 * between two waits for different locks, not a wait.
 */
static _Thread_local int64_t busy_slept_us;
static _Thread_local int64_t busy_limit_ms = CL__SQLITE_BUSY_TIMEOUT_MS;

static void busy_init(void)
{
    /* Failing, the condition stays on the realtime clock: naps then only last differently. */
    if (cl_cond_init_monotonic(&busy_cv) != 0) {
        (void)pthread_cond_init(&busy_cv, NULL);
    }
}

/* A write transaction of this process ended: the writers waiting for its lock try again. */
static void busy_wake(void)
{
    pthread_mutex_lock(&busy_mu);
    busy_ends++;
    pthread_cond_broadcast(&busy_cv);
    pthread_mutex_unlock(&busy_mu);
}

static int64_t monotonic_us(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    return (int64_t)ts->tv_sec * 1000000 + ts->tv_nsec / 1000;
}

/*
 * SQLite's busy handler (count: the calls so far in this call into SQLite): 1 to try again
 * after the next write transaction of this process ends or CL__SQLITE_BUSY_NAP_US passes,
 * 0 to give up (SQLITE_BUSY) once it has slept busy_limit_ms (CL__SQLITE_BUSY_TIMEOUT_MS
 * but in a checkpoint).
 */
static int sqlite_busy(void *arg, int count)
{
    struct timespec until;
    int64_t start;
    uint64_t seen;

    (void)arg;
    if (count == 0) {
        busy_slept_us = 0;
    }
    if (busy_slept_us >= busy_limit_ms * 1000) {
        return 0;
    }
    start = monotonic_us(&until);
    until.tv_nsec += CL__SQLITE_BUSY_NAP_US * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&busy_mu);
    seen = busy_ends;
    while (busy_ends == seen && pthread_cond_timedwait(&busy_cv, &busy_mu, &until) == 0) {
    }
    pthread_mutex_unlock(&busy_mu);
    busy_slept_us += monotonic_us(&until) - start;
    return 1;
}

/*
 * Where a database's checkpoints stand (see checkpoint): the WAL's frames at the last one
 * that could not restart the WAL (0: none), how many in a row readers outlasted, and
 * whether one runs now.
 */
typedef struct restart_state {
    atomic_int failed_at;
    atomic_int outlasted;
    atomic_bool running;
} restart_state;

static void restart_init(restart_state *r)
{
    atomic_init(&r->failed_at, 0);
    atomic_init(&r->outlasted, 0);
    atomic_init(&r->running, false);
}

/*
 * The writers of one database file in this process queue on its writer lock: a BEGIN takes
 * it before SQLite's write lock, and the end of the transaction gives it back, so each
 * waiting writer sleeps once and is woken once, by the transaction before its own. Without
 * it every waiting writer went to the busy handler, where any commit of the process (on
 * any file) woke all of them, and all but one found the lock taken again and slept again:
 * under bench_checkout those waits were a fifth of the monolith's context switches (#16).
 * The busy handler still serves the waits this lock does not cover: another process's
 * writers, a checkpoint's, and a write outside BEGIN.
 *
 * What the connections of one file share, found by the path SQLite resolved (refs): the
 * lock, an error-checking mutex (a thread that asks again for a lock it holds, two
 * connections to one file written at once by one thread, fails at once instead of waiting
 * for itself until the timeout), and the state of its checkpoints.
 */
typedef struct shared_file {
    struct shared_file *next;
    pthread_mutex_t writers;
    int refs;
    /*
     * The checkpoint (see sqlite_committed): due at the WAL's frames (0: none), left to the
     * pool's upkeep once it has called (upkept); where the last ones left the WAL (restart).
     */
    atomic_int due;
    atomic_bool upkept;
    restart_state restart;
    atomic_int frames; /* the WAL's, at the last commit of this process */
    /*
     * Its checkpointer (checkpointer_main): a thread with a connection of its own, started
     * when the pool's upkeep first finds a checkpoint due. ckpt_mu guards the flags; ckpt_cv
     * wakes the thread for a checkpoint due or for its stop.
     */
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_started;
    bool ckpt_failed; /* it could not start: the upkeep checkpoints itself */
    bool ckpt_stop;
    pthread_t ckpt_thread;
    struct sqlite_conn *ckpt_conn;
    char path[];
} shared_file;

static void checkpointer_stop(shared_file *w);

static pthread_mutex_t shared_files_mu = PTHREAD_MUTEX_INITIALIZER;
static shared_file *shared_files;

/* A new shared state for path, no references yet; NULL when out of memory. */
static shared_file *file_new(const char *path)
{
    size_t n = strlen(path) + 1;
    shared_file *w = calloc(1, sizeof(*w) + n);

    if (w == NULL) {
        return NULL;
    }
    if (cl_mutex_init_errorcheck(&w->writers) != 0) {
        goto no_writers;
    }
    if (pthread_mutex_init(&w->ckpt_mu, NULL) != 0) {
        goto no_ckpt_mu;
    }
    if (pthread_cond_init(&w->ckpt_cv, NULL) != 0) {
        goto no_ckpt_cv;
    }
    atomic_init(&w->due, 0);
    atomic_init(&w->upkept, false);
    atomic_init(&w->frames, 0);
    restart_init(&w->restart);
    memcpy(w->path, path, n);
    return w;
no_ckpt_cv:
    pthread_mutex_destroy(&w->ckpt_mu);
no_ckpt_mu:
    pthread_mutex_destroy(&w->writers);
no_writers:
    free(w);
    return NULL;
}

/* path's shared state, made on first use; NULL for a database of no file, or out of memory. */
static shared_file *file_ref(const char *path)
{
    shared_file *w;

    if (path == NULL || path[0] == '\0') {
        return NULL;
    }
    pthread_mutex_lock(&shared_files_mu);
    for (w = shared_files; w != NULL && strcmp(w->path, path) != 0; w = w->next) {
    }
    if (w == NULL) {
        w = file_new(path);
        if (w != NULL) {
            w->next = shared_files;
            shared_files = w;
        }
    }
    if (w != NULL) {
        w->refs++;
    }
    pthread_mutex_unlock(&shared_files_mu);
    return w;
}

static void file_unref(shared_file *w)
{
    shared_file **p;
    bool last;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&shared_files_mu);
    last = --w->refs == 0;
    if (last) {
        for (p = &shared_files; *p != w; p = &(*p)->next) {
        }
        *p = w->next;
    }
    pthread_mutex_unlock(&shared_files_mu);
    if (last) {
        checkpointer_stop(w);
        pthread_cond_destroy(&w->ckpt_cv);
        pthread_mutex_destroy(&w->ckpt_mu);
        pthread_mutex_destroy(&w->writers);
        free(w);
    }
}

/*
 * The statements that begin and end transactions, which the pool sends by the dozen per
 * checkout: prepared once per connection, not parsed, compiled and freed by sqlite3_exec
 * at each (3% of the monolith's CPU under bench_checkout, issue #16).
 */
static const char *const tx_sql[] = {"BEGIN IMMEDIATE", "BEGIN DEFERRED", "COMMIT", "ROLLBACK"};
#define TX_STMTS (sizeof(tx_sql) / sizeof(tx_sql[0]))

/* A connection: SQLite's, and where its checkpoints stand. */
typedef struct sqlite_conn {
    sqlite3 *db;
    restart_state restart;      /* its file's (w) when it has one */
    shared_file *w;             /* its file's, or NULL */
    bool writing;               /* holds w: in a transaction begun here */
    sqlite3_stmt *tx[TX_STMTS]; /* tx_sql's, prepared at first use */
} sqlite_conn;

/*
 * Once the WAL holds CL__SQLITE_CHECKPOINT_HOLD_FRAMES, a writer that begins while a
 * checkpoint of w runs waits for it to end, at most CL__SQLITE_BUSY_TIMEOUT_MS: the
 * checkpoint's PASSIVE copy holds up no one, and writers that append faster than it copies
 * (a slow disk, or a checkpointer starved of CPU) grew the WAL without bound: under three
 * test processes and two busy loops on two cores, by 3,200 frames during one checkpoint.
 * A checkpoint always ends (its RESTART waits for readers a bounded time); one that could
 * not restart the WAL lets the writers go on, and the next is tried
 * CL__SQLITE_CHECKPOINT_RETRY_FRAMES later, as always.
 */
static void checkpoint_wait(shared_file *w)
{
    struct timespec until;

    if (atomic_load(&w->frames) < CL__SQLITE_CHECKPOINT_HOLD_FRAMES ||
        !atomic_load(&w->restart.running)) {
        return;
    }
    (void)monotonic_us(&until);
    until.tv_sec += CL__SQLITE_BUSY_TIMEOUT_MS / 1000;
    /* checkpoint wakes busy_cv under busy_mu once it no longer runs. */
    pthread_mutex_lock(&busy_mu);
    while (atomic_load(&w->restart.running) &&
           pthread_cond_timedwait(&busy_cv, &busy_mu, &until) == 0) {
    }
    pthread_mutex_unlock(&busy_mu);
}

/* Queues for the file's writer lock, at most CL__SQLITE_BUSY_TIMEOUT_MS. 0, or the error. */
static int writer_take(sqlite_conn *c)
{
    int rc;

    if (c->w == NULL) {
        return 0;
    }
    rc = cl_mutex_lock_within(&c->w->writers, CL__SQLITE_BUSY_TIMEOUT_MS);
    c->writing = rc == 0;
    if (c->writing) {
        checkpoint_wait(c->w);
    }
    return rc;
}

static void writer_give(sqlite_conn *c)
{
    if (c->writing) {
        c->writing = false;
        pthread_mutex_unlock(&c->w->writers);
    }
}

/* Where the checkpoints of c's database stand: its file's, or its own. */
static restart_state *restart_of(sqlite_conn *c)
{
    return c->w != NULL ? &c->w->restart : &c->restart;
}

/*
 * The PASSIVE part of c's checkpoint: copies the WAL's frames into the database, holding up
 * no writer, then again the frames committed meanwhile, until a pass found few (at most
 * CL__SQLITE_CHECKPOINT_TAIL_FRAMES since the pass before), CL__SQLITE_CHECKPOINT_PASSES were
 * made, or the WAL reached the size from which writers wait for the checkpoint to end.
 *
 * The RESTART that follows copies what is left, syncing the WAL and the database file, with
 * every writer of the file held up. After one pass that was everything committed during it:
 * under bench_checkout's four clients, 150-900 frames of the busiest file's WAL and a
 * RESTART of 5-25 ms, the checkout's p99 (ADR 0044, eighth round). One that finds nothing
 * left to copy syncs nothing and takes some 10 us. Each pass syncs both files too, holding
 * up no writer.
 */
static void copy_passively(sqlite_conn *c)
{
    int before = -1;

    for (int pass = 0; pass < CL__SQLITE_CHECKPOINT_PASSES; pass++) {
        int wal = -1;
        int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &wal, NULL);

        /* Not run (another process checkpoints, or an error): the RESTART will say. */
        if (rc != SQLITE_OK || wal < 0) {
            return;
        }
        if (wal >= CL__SQLITE_CHECKPOINT_HOLD_FRAMES ||
            (before >= 0 && wal - before <= CL__SQLITE_CHECKPOINT_TAIL_FRAMES)) {
            return;
        }
        before = wal;
    }
}

/*
 * The checkpoint of c's database, due at frames: PASSIVE passes (copy_passively), then a
 * RESTART; nothing if another connection of this process checkpoints it now.
 *
 * A RESTART waits for the readers in the WAL with the writers held up, so its wait is short;
 * but readers that outlast it once are likely to again (a loaded machine, long reads), and
 * with a wait they always outlast the WAL only grows. Under three test processes on two cores
 * every RESTART failed with 20 ms, and the WAL reached 10,000 frames: so each one readers
 * outlast makes the next one wait four times as long (up to 320 ms), and one they leave
 * within an eighth of its wait lowers it a step again.
 */
static void checkpoint(sqlite_conn *c, int frames)
{
    restart_state *r = restart_of(c);
    int outlasted;
    int64_t wait_ms;
    int wal = -1;
    int rc;

    if (atomic_exchange(&r->running, true)) {
        return;
    }
    outlasted = atomic_load(&r->outlasted);
    wait_ms = (int64_t)CL__SQLITE_CHECKPOINT_WAIT_MS << (2 * outlasted);
    copy_passively(c);
    busy_limit_ms = wait_ms;
    busy_slept_us = 0;
    rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_RESTART, &wal, NULL);
    busy_limit_ms = CL__SQLITE_BUSY_TIMEOUT_MS;
    atomic_store(&r->failed_at, rc == SQLITE_OK ? 0 : frames);
    /* wal is -1 when it did not run at all (another process's checkpoint): no one outlasted. */
    if (rc == SQLITE_OK) {
        if (outlasted > 0 && busy_slept_us < wait_ms * 1000 / 8) {
            atomic_store(&r->outlasted, outlasted - 1);
        }
    } else if (wal >= 0 && outlasted < CL__SQLITE_CHECKPOINT_STEPS) {
        atomic_store(&r->outlasted, outlasted + 1);
    }
    atomic_store(&r->running, false);
    /* The writers that queued behind the checkpoint's write lock. */
    busy_wake();
}

/*
 * SQLite calls this after every commit in WAL mode, the write lock released. It replaces
 * the default hook, whose only task was the automatic checkpoint: that is done here too,
 * once the WAL holds CL__SQLITE_CHECKPOINT_FRAMES, after the waiting writers are woken, or
 * by the file's checkpointer, which the pool's upkeep wakes right after (sqlite_upkeep).
 *
 * The checkpoint also starts the WAL again from its first frame. SQLite restarts a WAL on
 * its own only when a writer begins on a WAL checkpointed to its end with no reader in it;
 * under a steady load of writers the next one has always begun before the checkpoint ended,
 * so a checkpoint that waits for no one (PASSIVE) alone let the WAL grow (253 MB under
 * bench_checkout), and from the mark on every commit checkpointed, with two fdatasync each
 * (issue #16). So: PASSIVE passes copy the frames and sync without holding up the writers
 * (copy_passively), then a RESTART takes the write lock, copies what was committed since, waits
 * for the readers still in the WAL (CL__SQLITE_CHECKPOINT_WAIT_MS of sleep at most, more
 * after failures: see checkpoint) and resets it. A RESTART that readers outlast (or that
 * finds another process's checkpoint running) is tried again
 * CL__SQLITE_CHECKPOINT_RETRY_FRAMES later, not at every commit.
 */
static int sqlite_committed(void *arg, sqlite3 *db, const char *name, int frames)
{
    sqlite_conn *c = arg;
    atomic_int *failed_at = &restart_of(c)->failed_at;
    int failed;

    (void)db;
    (void)name;
    if (c->w != NULL) {
        atomic_store(&c->w->frames, frames);
    }
    /* The next writer of this process begins while this one checkpoints. */
    writer_give(c);
    busy_wake();
    /* frames only falls when the WAL restarts: a failure before that is forgotten. */
    failed = atomic_load(failed_at);
    if (frames < failed) {
        failed = 0;
        atomic_store(failed_at, 0);
    }
    if (frames < CL__SQLITE_CHECKPOINT_FRAMES ||
        (failed > 0 && frames < failed + CL__SQLITE_CHECKPOINT_RETRY_FRAMES)) {
        return SQLITE_OK;
    }
    /*
     * A pool runs its transactions on one writer connection, held until the COMMIT
     * returns: a checkpoint here would hold up every writer of the file. The pool's upkeep,
     * once the writer is given back, hands it to the file's checkpointer (sqlite_upkeep).
     */
    if (c->w != NULL && atomic_load(&c->w->upkept)) {
        atomic_store(&c->w->due, frames);
        return SQLITE_OK;
    }
    checkpoint(c, frames);
    return SQLITE_OK;
}

/*
 * The WAL in one write per commit. SQLite appends a commit's frames to the -wal file two
 * writes each (the 24-byte frame header, then the page), some 80 pwrite calls per checkout;
 * on the virtual machines measured every system call costs its exit path (a fifth of the
 * monolith's CPU under bench_checkout). This VFS passes everything to the default (unix)
 * one, but a WAL file gathers its consecutive writes in a buffer and writes them at once
 * when the commit frame's page arrives (its header says the database's size after the
 * commit, never 0 in other frames), so that a failed write still fails the commit. Anything
 * else on the file (a read, a sync, a truncate, a size, a write elsewhere, a close) writes
 * the buffer first.
 *
 * What keeps other connections right does not depend on the sequence of SQLite's writes: the
 * database file's wal-index calls write the buffer too. SQLite shows frames to others only
 * by writing the wal-index header, twice with a barrier (xShmBarrier) between the copies
 * that readers compare (walIndexWriteHdr), and it ends a transaction by unlocking the
 * wal-index (xShmLock). So no one looks for a frame before it is written; whatever is left
 * in the buffer (checksums rewritten at commit, the spilled frames of a transaction rolled
 * back) is written before another connection may write the WAL; and a commit that returned
 * has its frames written (write(2)) exactly as before: durability is unchanged (ADR 0044).
 */
#define WAL_VFS_NAME   "cleave-wal"
#define WAL_FRAME_HDR  24
/*
 * The unix VFS writes at most 0x1ffff bytes per xWrite: its seekAndWriteFd masks the length
 * with 0x1ffff (SQLite's own writes, a page at most, never come near), so a longer write is
 * cut short, and unixWrite, retrying the rest, writes 0 bytes and fails with SQLITE_FULL.
 * The buffer, written in one xWrite, is never longer.
 */
#define WAL_BUFFER_MAX 0x1ffff

typedef struct db_file db_file;

typedef struct wal_file {
    sqlite3_file base; /* methods: wal_methods */
    sqlite3_file *real;
    db_file *db;        /* the database whose WAL this is, while both are open, or NULL */
    unsigned char *buf; /* grown on demand: a connection that never writes holds none */
    int cap;
    int n; /* bytes in buf, to be written at off */
    sqlite3_int64 off;
    sqlite3_int64 commit_page; /* after a commit frame's header, where its page goes; or -1 */
    sqlite3_int64 read_off;    /* after a read (the last call), its offset; or -1 */
} wal_file;

/* A database file: the default VFS's, and its WAL's buffer written at each wal-index call. */
struct db_file {
    sqlite3_file base; /* methods: db_methods */
    sqlite3_file *real;
    wal_file *wal;
    bool shm; /* its wal-index is mapped: never so in heap-memory (exclusive locking) mode */
};

static sqlite3_vfs wal_vfs;
static const sqlite3_vfs *wal_base;

/* Writes the buffer; every call but a write starts so, hence the state it resets. */
static int wal_flush(wal_file *f)
{
    int rc = SQLITE_OK;

    f->commit_page = -1;
    f->read_off = -1;
    if (f->n > 0) {
        rc = f->real->pMethods->xWrite(f->real, f->buf, f->n, f->off);
        f->n = 0;
    }
    return rc;
}

/* Makes room for need bytes in f's buffer, up to WAL_BUFFER_MAX; unchanged on failure. */
static int wal_grow(wal_file *f, int need)
{
    int cap = f->cap > 0 ? f->cap : 64 * 1024;
    unsigned char *buf;

    if (need > WAL_BUFFER_MAX) {
        return SQLITE_TOOBIG;
    }
    while (cap < need) {
        cap *= 2;
    }
    cap = cap < WAL_BUFFER_MAX ? cap : WAL_BUFFER_MAX;
    buf = sqlite3_realloc(f->buf, cap);
    if (buf == NULL) {
        return SQLITE_NOMEM;
    }
    f->buf = buf;
    f->cap = cap;
    return SQLITE_OK;
}

/*
 * True if this write goes straight to the file: when no wal-index call would write the
 * buffer (heap-memory mode), and for a frame header written over the frame the call before
 * read, which is SQLite rewriting checksums at commit (walRewriteChecksums): no page follows.
 */
static bool wal_writes_through(const wal_file *f, int amt, sqlite3_int64 off)
{
    return f->db == NULL || !f->db->shm || (amt == WAL_FRAME_HDR && off == f->read_off);
}

/* A frame header's bytes 4-7 hold the database's size after a commit, 0 in other frames. */
static bool wal_is_commit_header(const unsigned char *h, int amt)
{
    return amt == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int wal_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    wal_file *f = (wal_file *)file;
    bool through = wal_writes_through(f, amt, off);
    bool completes = off == f->commit_page;
    bool commit_header = !through && wal_is_commit_header(data, amt);
    int rc = SQLITE_OK;

    if (f->n > 0 && (through || off != f->off + f->n || f->n + amt > WAL_BUFFER_MAX)) {
        rc = wal_flush(f);
    }
    if (rc == SQLITE_OK && !through && f->n + amt > f->cap && wal_grow(f, f->n + amt) != 0) {
        through = true; /* no room: written as SQLite would have */
        rc = wal_flush(f);
    }
    f->commit_page = commit_header ? off + WAL_FRAME_HDR : -1;
    f->read_off = -1;
    if (rc != SQLITE_OK || through) {
        /* A failed write of the buffer fails the commit, as one of the frame itself would. */
        return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
    }
    if (f->n == 0) {
        f->off = off;
    }
    memcpy(f->buf + f->n, data, (size_t)amt);
    f->n += amt;
    /* The commit frame's page: the commit is complete, written before SQLite publishes it. */
    return completes ? wal_flush(f) : SQLITE_OK;
}

static int wal_close(sqlite3_file *file)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);
    int crc = f->real->pMethods->xClose(f->real);

    if (f->db != NULL) {
        f->db->wal = NULL;
    }
    sqlite3_free(f->buf);
    return rc != SQLITE_OK ? rc : crc;
}

static int wal_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);

    f->read_off = off;
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, data, amt, off);
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
    wal_file *f = (wal_file *)file;
    int rc = wal_flush(f);

    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

/* The rest only forward: a WAL file is never locked, mapped or shared by itself. */
static int wal_lock(sqlite3_file *file, int lock)
{
    return ((wal_file *)file)->real->pMethods->xLock(((wal_file *)file)->real, lock);
}

static int wal_unlock(sqlite3_file *file, int lock)
{
    return ((wal_file *)file)->real->pMethods->xUnlock(((wal_file *)file)->real, lock);
}

static int wal_check_reserved(sqlite3_file *file, int *out)
{
    return ((wal_file *)file)->real->pMethods->xCheckReservedLock(((wal_file *)file)->real, out);
}

static int wal_sector_size(sqlite3_file *file)
{
    return ((wal_file *)file)->real->pMethods->xSectorSize(((wal_file *)file)->real);
}

static int wal_device(sqlite3_file *file)
{
    sqlite3_file *real = ((wal_file *)file)->real;

    return real->pMethods->xDeviceCharacteristics(real);
}

static const sqlite3_io_methods wal_methods = {
    .iVersion = 1,
    .xClose = wal_close,
    .xRead = wal_read,
    .xWrite = wal_write,
    .xTruncate = wal_truncate,
    .xSync = wal_sync,
    .xFileSize = wal_file_size,
    .xLock = wal_lock,
    .xUnlock = wal_unlock,
    .xCheckReservedLock = wal_check_reserved,
    .xFileControl = wal_file_control,
    .xSectorSize = wal_sector_size,
    .xDeviceCharacteristics = wal_device,
};

/* Writes the buffer of d's WAL, if any: d's wal-index is about to be used. */
static int db_flush_wal(db_file *d)
{
    return d->wal != NULL ? wal_flush(d->wal) : SQLITE_OK;
}

#define DB_REAL(file) (((db_file *)(file))->real)

static int db_close(sqlite3_file *file)
{
    db_file *d = (db_file *)file;

    if (d->wal != NULL) {
        d->wal->db = NULL;
    }
    return d->real->pMethods->xClose(d->real);
}

static int db_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
    return DB_REAL(file)->pMethods->xRead(DB_REAL(file), data, amt, off);
}

static int db_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    return DB_REAL(file)->pMethods->xWrite(DB_REAL(file), data, amt, off);
}

static int db_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    return DB_REAL(file)->pMethods->xTruncate(DB_REAL(file), size);
}

static int db_sync(sqlite3_file *file, int flags)
{
    return DB_REAL(file)->pMethods->xSync(DB_REAL(file), flags);
}

static int db_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    return DB_REAL(file)->pMethods->xFileSize(DB_REAL(file), size);
}

static int db_lock(sqlite3_file *file, int lock)
{
    return DB_REAL(file)->pMethods->xLock(DB_REAL(file), lock);
}

static int db_unlock(sqlite3_file *file, int lock)
{
    return DB_REAL(file)->pMethods->xUnlock(DB_REAL(file), lock);
}

static int db_check_reserved(sqlite3_file *file, int *out)
{
    return DB_REAL(file)->pMethods->xCheckReservedLock(DB_REAL(file), out);
}

static int db_file_control(sqlite3_file *file, int op, void *arg)
{
    return DB_REAL(file)->pMethods->xFileControl(DB_REAL(file), op, arg);
}

static int db_sector_size(sqlite3_file *file)
{
    return DB_REAL(file)->pMethods->xSectorSize(DB_REAL(file));
}

static int db_device(sqlite3_file *file)
{
    return DB_REAL(file)->pMethods->xDeviceCharacteristics(DB_REAL(file));
}

static int db_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    db_file *d = (db_file *)file;
    int rc = d->real->pMethods->xShmMap(d->real, page, size, extend, out);

    d->shm = d->shm || rc == SQLITE_OK;
    return rc;
}

/* Locks and unlocks begin and end transactions: others may use the WAL after them. */
static int db_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    db_file *d = (db_file *)file;
    int rc = db_flush_wal(d);
    int lrc = d->real->pMethods->xShmLock(d->real, offset, n, flags);

    /* An unlock is made whatever happened before it: SQLite would not make it again. */
    return lrc != SQLITE_OK ? lrc : rc;
}

/*
 * The barrier of walIndexWriteHdr, before the header copy that makes new frames visible.
 * Nothing is normally left by then (a commit's page wrote the buffer, rewritten checksums
 * went straight to the file): this is the guarantee, not the path, for it cannot report a
 * failed write.
 */
static void db_shm_barrier(sqlite3_file *file)
{
    db_file *d = (db_file *)file;

    (void)db_flush_wal(d);
    d->real->pMethods->xShmBarrier(d->real);
}

static int db_shm_unmap(sqlite3_file *file, int delete_flag)
{
    db_file *d = (db_file *)file;
    int rc = db_flush_wal(d);

    d->shm = false;
    return rc != SQLITE_OK ? rc : d->real->pMethods->xShmUnmap(d->real, delete_flag);
}

static int db_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
    return DB_REAL(file)->pMethods->xFetch(DB_REAL(file), off, amt, out);
}

static int db_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    return DB_REAL(file)->pMethods->xUnfetch(DB_REAL(file), off, p);
}

/* Version 3, as the unix VFS's files are; db_open leaves files of older versions alone. */
static const sqlite3_io_methods db_methods = {
    .iVersion = 3,
    .xClose = db_close,
    .xRead = db_read,
    .xWrite = db_write,
    .xTruncate = db_truncate,
    .xSync = db_sync,
    .xFileSize = db_file_size,
    .xLock = db_lock,
    .xUnlock = db_unlock,
    .xCheckReservedLock = db_check_reserved,
    .xFileControl = db_file_control,
    .xSectorSize = db_sector_size,
    .xDeviceCharacteristics = db_device,
    .xShmMap = db_shm_map,
    .xShmLock = db_shm_lock,
    .xShmBarrier = db_shm_barrier,
    .xShmUnmap = db_shm_unmap,
    .xFetch = db_fetch,
    .xUnfetch = db_unfetch,
};

/* Opens name with the default VFS into real; failing, it leaves nothing open (os.c asserts it). */
static int open_real(sqlite3_filename name, sqlite3_file *real, int flags, int *out_flags)
{
    return wal_base->xOpen((sqlite3_vfs *)wal_base, name, real, flags, out_flags);
}

static int db_open(sqlite3_filename name, db_file *d, int flags, int *out_flags)
{
    int rc;

    memset(d, 0, sizeof(*d));
    d->real = (sqlite3_file *)(d + 1);
    rc = open_real(name, d->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (d->real->pMethods->iVersion < db_methods.iVersion) {
        /* Not a unix VFS file: opened in place instead, its WAL (if any) then unbuffered. */
        (void)d->real->pMethods->xClose(d->real);
        return open_real(name, (sqlite3_file *)d, flags, out_flags);
    }
    d->base.pMethods = &db_methods;
    return SQLITE_OK;
}

/* A WAL is tied to its database file, opened before it through this VFS, and only then buffers. */
static int wal_file_open(sqlite3_filename name, wal_file *f, int flags, int *out_flags)
{
    sqlite3_file *db = sqlite3_database_file_object(name);
    int rc;

    memset(f, 0, sizeof(*f));
    f->commit_page = -1;
    f->read_off = -1;
    f->real = (sqlite3_file *)(f + 1);
    rc = open_real(name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (db != NULL && db->pMethods == &db_methods && ((db_file *)db)->wal == NULL) {
        f->db = (db_file *)db;
        f->db->wal = f;
    }
    f->base.pMethods = &wal_methods;
    return SQLITE_OK;
}

/*
 * A main database file and its WAL are the default VFS's behind a db_file and a wal_file
 * (szOsFile leaves room for them); other files are the default's own, opened in place.
 */
static int wal_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    (void)vfs;
    if ((flags & SQLITE_OPEN_WAL) != 0) {
        return wal_file_open(name, (wal_file *)file, flags, out_flags);
    }
    if ((flags & SQLITE_OPEN_MAIN_DB) != 0) {
        return db_open(name, (db_file *)file, flags, out_flags);
    }
    return open_real(name, file, flags, out_flags);
}

static cl_status sqlite_status(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_FOREIGNKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return CL_CONFLICT;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
        return CL_UNAVAILABLE;
    default:
        return CL_INTERNAL;
    }
}

/* Maps the last error on db into err. rc is an extended result code. */
static cl_status sqlite_fail(sqlite3 *db, int rc, cl_error *err)
{
    return cl_error_set(err, sqlite_status(rc), NULL, "%s", sqlite3_errmsg(db));
}

static void sqlite_disconnect(void *conn)
{
    sqlite_conn *c = conn;

    for (size_t i = 0; i < TX_STMTS; i++) {
        sqlite3_finalize(c->tx[i]);
    }
    /* close_v2 never fails: statements still alive keep the handle as a zombie. */
    sqlite3_close_v2(c->db);
    writer_give(c);
    file_unref(c->w);
    free(c);
}

/*
 * Process-wide settings, made before SQLite initialises itself (the first open). Each
 * connection would otherwise allocate its first 20 page-cache slots in one block (some
 * 90 KB, every slot written to link it into the free list) whether it ever reads that
 * many pages; a module's database is small, and most of the pool's connections are
 * idle. Without the block a page's slot is allocated when the page is first read.
 * SQLITE_MISUSE (SQLite already initialised, by a test for instance) leaves its default.
 */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/*
 * Whether this process's files are its own (cl_db_sqlite_exclusive), fixed by config_init;
 * and the VFS every connection opens with: this file's, or the base when it could not be
 * registered.
 */
static pthread_mutex_t config_mu = PTHREAD_MUTEX_INITIALIZER;
static bool configured;
static bool exclusive_files;
static const char *conn_vfs;

/*
 * The VFS the files are opened with: the default one, or, for files kept to this process,
 * the unix VFS's twin "unix-excl". That one takes a lock on the whole file against other
 * processes at the first read and keeps it until the process's last connection to the file
 * closes; it then needs no lock system call for a transaction, and keeps the wal-index in
 * memory instead of the -shm file (ADR 0055). Another default (a test's counting VFS) is
 * kept as it is.
 */
static const sqlite3_vfs *base_vfs(bool exclusive)
{
    const sqlite3_vfs *dflt = sqlite3_vfs_find(NULL);
    const sqlite3_vfs *excl;

    if (!exclusive || dflt == NULL || strcmp(dflt->zName, "unix") != 0) {
        return dflt;
    }
    excl = sqlite3_vfs_find("unix-excl");
    return excl != NULL ? excl : dflt;
}

cl_status cl_db_sqlite_exclusive(bool exclusive, cl_error *err)
{
    cl_status st = CL_OK;

    pthread_mutex_lock(&config_mu);
    if (configured && exclusive != exclusive_files) {
        st = cl_error_set(err, CL_INVALID, NULL,
                          "SQLite files are already opened %s: the choice is made before the "
                          "process's first connection",
                          exclusive_files ? "exclusive to this process" : "shared");
    } else {
        exclusive_files = exclusive;
    }
    pthread_mutex_unlock(&config_mu);
    return st;
}

static void config_init(void)
{
    const sqlite3_vfs *base;
    bool exclusive;

    pthread_mutex_lock(&config_mu);
    configured = true;
    exclusive = exclusive_files;
    pthread_mutex_unlock(&config_mu);
    (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0);
    /*
     * SQLite counts the memory it holds (sqlite3_memory_used) under one process-wide
     * mutex taken by every allocation and free it makes: with a few threads in SQLite at
     * once that mutex was most of the futex calls a checkout made. Nothing here reads the
     * counts or sets a heap limit, which is all they are for.
     */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* After the settings: finding a VFS initialises SQLite. */
    base = base_vfs(exclusive);
    conn_vfs = base != NULL ? base->zName : NULL;
    if (base != NULL) {
        wal_base = base;
        wal_vfs = *wal_base;
        wal_vfs.zName = WAL_VFS_NAME;
        wal_vfs.szOsFile =
            (int)(sizeof(wal_file) > sizeof(db_file) ? sizeof(wal_file) : sizeof(db_file)) +
            wal_base->szOsFile;
        wal_vfs.xOpen = wal_open;
        wal_vfs.pNext = NULL;
        if (sqlite3_vfs_register(&wal_vfs, 0) == SQLITE_OK) {
            conn_vfs = WAL_VFS_NAME;
        } else {
            wal_base = NULL; /* connections then use the base directly */
        }
    }
}

/*
 * A file's checkpointer: runs the checkpoints the pool's upkeep finds due, on a connection
 * of its own, until the file's last connection closes. In the committing thread (the
 * upkeep's, after its commit) a checkpoint held up whoever committed: a saga's step waited
 * for the copy of 4000 frames, the syncs and the RESTART's wait for readers, and the 1% of
 * checkouts that met one made the p99 (26.6 ms with checkpoints under bench_checkout 1000 1,
 * 2.6-3.8 ms with none; issue #16).
 */
static void *checkpointer_main(void *arg)
{
    shared_file *w = arg;
    int frames;

    cl_thread_background("sqlite", "ckpt");

    pthread_mutex_lock(&w->ckpt_mu);
    while (!w->ckpt_stop) {
        frames = atomic_exchange(&w->due, 0);
        if (frames == 0) {
            pthread_cond_wait(&w->ckpt_cv, &w->ckpt_mu);
            continue;
        }
        pthread_mutex_unlock(&w->ckpt_mu);
        checkpoint(w->ckpt_conn, frames);
        /*
         * Commits past the mark during the checkpoint asked for it again, judged by where
         * the one before had left the WAL: the commits from now on judge by this one.
         */
        atomic_store(&w->due, 0);
        pthread_mutex_lock(&w->ckpt_mu);
    }
    pthread_mutex_unlock(&w->ckpt_mu);
    return NULL;
}

/* Opens w's checkpointer's connection and starts it; ckpt_mu held. False when it cannot. */
static bool checkpointer_start(shared_file *w)
{
    sqlite_conn *c = calloc(1, sizeof(*c));
    sqlite3 *db = NULL;

    if (c == NULL) {
        return false;
    }
    if (sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, conn_vfs) !=
        SQLITE_OK) {
        goto fail;
    }
    sqlite3_busy_handler(db, sqlite_busy, NULL);
    /* A connection checkpoints only once it has opened the WAL, which a read does. */
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) !=
        SQLITE_OK) {
        goto fail;
    }
    c->db = db;
    restart_init(&c->restart);
    c->w = w; /* not a reference: the thread ends before w is freed (file_unref) */
    w->ckpt_conn = c;
    if (pthread_create(&w->ckpt_thread, NULL, checkpointer_main, w) == 0) {
        return true;
    }
    w->ckpt_conn = NULL;
fail:
    sqlite3_close_v2(db);
    free(c);
    return false;
}

/* Ends w's checkpointer, if it started, once its checkpoint under way is over. */
static void checkpointer_stop(shared_file *w)
{
    bool started;

    pthread_mutex_lock(&w->ckpt_mu);
    started = w->ckpt_started;
    w->ckpt_stop = true;
    pthread_cond_signal(&w->ckpt_cv);
    pthread_mutex_unlock(&w->ckpt_mu);
    if (started) {
        pthread_join(w->ckpt_thread, NULL);
        sqlite3_close_v2(w->ckpt_conn->db);
        free(w->ckpt_conn);
    }
}

/*
 * After a transaction of the pool's writer, on a connection of the pool: a checkpoint due
 * goes to the file's checkpointer, or runs here if that cannot start.
 */
static void sqlite_upkeep(void *conn)
{
    sqlite_conn *c = conn;
    shared_file *w = c->w;
    bool handed = false;
    int frames;

    if (w == NULL) {
        return;
    }
    atomic_store(&w->upkept, true);
    if (atomic_load(&w->due) == 0) {
        return;
    }
    pthread_mutex_lock(&w->ckpt_mu);
    if (!w->ckpt_started && !w->ckpt_failed && !w->ckpt_stop) {
        w->ckpt_started = checkpointer_start(w);
        w->ckpt_failed = !w->ckpt_started;
    }
    if (w->ckpt_started) {
        pthread_cond_signal(&w->ckpt_cv);
        handed = true;
    }
    pthread_mutex_unlock(&w->ckpt_mu);
    frames = handed ? 0 : atomic_exchange(&w->due, 0);
    if (frames > 0) {
        checkpoint(c, frames);
    }
}

static cl_status sqlite_connect(const char *target, void **conn, cl_error *err)
{
    /*
     * The page size first: it applies only while the file is still empty, and a file that
     * exists keeps its own (SQLite changes it only by VACUUM). 1 KiB, not SQLite's 4 KiB
     * (ADR 0057): a commit writes each page it changed whole to the WAL, and a checkout's
     * commits change some 40 pages of a dozen B-trees, a few small rows on each.
     */
    static const char setup[] = "PRAGMA page_size=1024;"
                                "PRAGMA journal_mode=WAL;"
                                "PRAGMA foreign_keys=ON;"
                                "PRAGMA synchronous=NORMAL;";
    sqlite3 *db = NULL;
    sqlite_conn *c = NULL;
    int rc;
    cl_status st;

    (void)pthread_once(&config_once, config_init);
    rc = sqlite3_open_v2(
        target, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, conn_vfs);
    if (rc != SQLITE_OK) {
        st = cl_error_set(err, CL_UNAVAILABLE, NULL, "cannot open database %s: %s", target,
                          db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    /* Set before the pragmas: switching to WAL needs a lock another process may hold. */
    (void)pthread_once(&busy_once, busy_init);
    sqlite3_busy_handler(db, sqlite_busy, NULL);
    rc = sqlite3_exec(db, setup, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st = cl_error_set(err, CL_UNAVAILABLE, NULL, "cannot set up database %s: %s%s", target,
                          sqlite3_errmsg(db),
                          (rc & 0xff) == SQLITE_BUSY
                              ? " (another process holds it; a process that keeps its SQLite "
                                "files to itself holds them until it ends)"
                              : "");
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        st = cl_error_set(err, CL_UNAVAILABLE, NULL, "cannot open database %s: out of memory",
                          target);
        goto out;
    }
    c->db = db;
    restart_init(&c->restart);
    c->w = file_ref(sqlite3_db_filename(db, "main"));
    sqlite3_wal_hook(db, sqlite_committed, c);
    *conn = c;
    db = NULL;
    st = CL_OK;
out:
    sqlite3_close_v2(db);
    return st;
}

/* sql on c: one of tx_sql from its prepared statement, anything else by sqlite3_exec. */
static int run_sql(sqlite_conn *c, const char *sql)
{
    sqlite3_stmt **st = NULL;
    int rc;

    for (size_t i = 0; st == NULL && i < TX_STMTS; i++) {
        if (strcmp(sql, tx_sql[i]) == 0) {
            st = &c->tx[i];
        }
    }
    if (st == NULL) {
        return sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    if (*st == NULL) {
        rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    rc = sqlite3_step(*st);
    /* The error stays the connection's (sqlite3_errmsg) after the reset. */
    (void)sqlite3_reset(*st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static cl_status sqlite_exec(void *conn, const char *sql, cl_error *err)
{
    sqlite_conn *c = conn;
    sqlite3 *db = c->db;
    int rc;

    /*
     * A deferred BEGIN takes only a read lock; when two such transactions both try to
     * write, one upgrade fails with SQLITE_BUSY at once (waiting could deadlock), and the
     * busy timeout cannot help. The generic layer only ever says "BEGIN", for the
     * transactions of a unit of work, which may write: take the write lock up front so
     * writers queue on the busy timeout instead. WAL readers are not blocked by it.
     */
    if (strcmp(sql, "BEGIN READ") == 0) {
        sql = "BEGIN DEFERRED"; /* a read lock at the first read, as a statement alone takes */
    } else if (strcmp(sql, "BEGIN") == 0) {
        sql = "BEGIN IMMEDIATE";
        rc = writer_take(c);
        if (rc != 0) {
            return cl_error_set(err, CL_UNAVAILABLE, NULL, "database is locked: %s",
                                rc == EDEADLK ? "this thread is writing to it on another "
                                                "connection"
                                              : "another writer of this process held it too long");
        }
    }
    rc = run_sql(c, sql);
    /* Whatever ended the transaction (a COMMIT, a ROLLBACK, a failure), the next writer's turn. */
    if (c->writing && sqlite3_get_autocommit(db)) {
        writer_give(c);
    }
    /* A rollback ends a write transaction without a commit: the WAL hook does not see it. */
    if (strcmp(sql, "ROLLBACK") == 0) {
        busy_wake();
    }
    if (rc != SQLITE_OK) {
        return sqlite_fail(db, sqlite3_extended_errcode(db), err);
    }
    return CL_OK;
}

static cl_status sqlite_prepare(void *conn, const char *sql, void **stmt, cl_error *err)
{
    sqlite3 *db = ((sqlite_conn *)conn)->db;
    sqlite3_stmt *st = NULL;
    sqlite3_stmt *extra = NULL;
    const char *tail = NULL;
    bool more;
    int rc;

    /* PERSISTENT: these statements live in the pool's cache for the connection's life. */
    rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) {
        return sqlite_fail(db, sqlite3_extended_errcode(db), err);
    }
    if (st == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "no SQL statement in \"%.64s\"", sql);
    }
    /*
     * SQLite would silently ignore everything after the first statement; a tail that
     * holds only blanks, semicolons or comments compiles to no statement at all.
     */
    if (tail != NULL && *tail != '\0') {
        rc = sqlite3_prepare_v2(db, tail, -1, &extra, NULL);
        more = rc != SQLITE_OK || extra != NULL;
        sqlite3_finalize(extra);
        if (more) {
            sqlite3_finalize(st);
            return cl_error_set(err, CL_INTERNAL, NULL, "more than one SQL statement in \"%.64s\"",
                                sql);
        }
    }
    *stmt = st;
    return CL_OK;
}

static void sqlite_finalize(void *stmt)
{
    sqlite3_finalize(stmt);
}

static cl_status sqlite_reset(void *stmt, cl_error *err)
{
    (void)err;
    /*
     * sqlite3_reset repeats the error of the last step, which the caller has already
     * seen; rewinding itself cannot fail.
     */
    (void)sqlite3_reset(stmt);
    (void)sqlite3_clear_bindings(stmt);
    return CL_OK;
}

static cl_status sqlite_bind_result(void *stmt, int rc, cl_error *err)
{
    if (rc != SQLITE_OK) {
        return sqlite_fail(sqlite3_db_handle(stmt), rc, err);
    }
    return CL_OK;
}

static cl_status sqlite_bind_i64(void *stmt, int idx, int64_t v, cl_error *err)
{
    return sqlite_bind_result(stmt, sqlite3_bind_int64(stmt, idx, (sqlite3_int64)v), err);
}

static cl_status sqlite_bind_text(void *stmt, int idx, const char *s, cl_error *err)
{
    /* TRANSIENT: the caller's buffer may be gone before the statement steps. */
    return sqlite_bind_result(stmt, sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT), err);
}

static cl_status sqlite_bind_null(void *stmt, int idx, cl_error *err)
{
    return sqlite_bind_result(stmt, sqlite3_bind_null(stmt, idx), err);
}

static cl_status sqlite_step(void *stmt, bool *row, cl_error *err)
{
    sqlite3 *db = sqlite3_db_handle(stmt);
    int rc;

    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *row = true;
        return CL_OK;
    }
    if (rc == SQLITE_DONE) {
        *row = false;
        return CL_OK;
    }
    return sqlite_fail(db, sqlite3_extended_errcode(db), err);
}

static int64_t sqlite_changes(void *stmt)
{
    /* The connection's count is the last write's: a statement that writes nothing is 0. */
    return sqlite3_stmt_readonly(stmt) ? 0 : (int64_t)sqlite3_changes64(sqlite3_db_handle(stmt));
}

static int64_t sqlite_col_i64(void *stmt, int col)
{
    return (int64_t)sqlite3_column_int64(stmt, col);
}

static const char *sqlite_col_text(void *stmt, int col)
{
    return (const char *)sqlite3_column_text(stmt, col);
}

static bool sqlite_col_null(void *stmt, int col)
{
    return sqlite3_column_type(stmt, col) == SQLITE_NULL;
}

static cl_status sqlite_ping(void *conn, cl_error *err)
{
    return sqlite_exec(conn, "SELECT 1", err);
}

static void sqlite_shrink(void *conn)
{
    sqlite_conn *c = conn;

    (void)sqlite3_db_release_memory(c->db);
}

/* A file does not go away under an open connection the way a server does. */
static bool sqlite_broken(void *conn)
{
    (void)conn;
    return false;
}

const cl_db_driver cl_db_sqlite = {
    .version = CL_DB_DRIVER_VERSION,
    .name = "sqlite",
    .dialect = "sqlite",
    .connect = sqlite_connect,
    .disconnect = sqlite_disconnect,
    .exec = sqlite_exec,
    .prepare = sqlite_prepare,
    .finalize = sqlite_finalize,
    .reset = sqlite_reset,
    .bind_i64 = sqlite_bind_i64,
    .bind_text = sqlite_bind_text,
    .bind_null = sqlite_bind_null,
    .step = sqlite_step,
    .col_i64 = sqlite_col_i64,
    .col_text = sqlite_col_text,
    .col_null = sqlite_col_null,
    .ping = sqlite_ping,
    .broken = sqlite_broken,
    .one_writer = true,
    .upkeep = sqlite_upkeep,
    .changes = sqlite_changes,
    .shrink = sqlite_shrink,
};
