/*
 * Test support: run the real cleave binaries as child processes, find the port they
 * listen on from their JSON log, and stop them by PID.
 */
#ifndef CLEAVE_TEST_PROC_H
#define CLEAVE_TEST_PROC_H

#include <pthread.h>
#include <sys/types.h>

typedef struct test_proc {
    pid_t pid;
    int port;   /* from the "serving on port" log line, 0 until seen */
    int out_fd; /* read end of the child's stdout */
    pthread_t reader;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int eof;
    char log_path[512]; /* everything the child printed, for failure reports */
} test_proc;

/*
 * Starts bin (a path) with argv (NULL-terminated, argv[0] included) and the current
 * environment plus env_add ("K=V" strings, NULL-terminated). stdout is captured;
 * stderr goes to the log file too. Returns 0 or -1.
 */
int test_proc_start(test_proc *p, const char *bin, char *const argv[], char *const env_add[],
                    const char *log_path);
/* Waits until the child logs its port (returns it) or exits/timeout_ms passes (-1). */
int test_proc_wait_port(test_proc *p, int timeout_ms);
/*
 * Waits up to timeout_ms for the child to exit by itself (its output closes); its exit
 * status (128+signal when killed), or -1 when it still runs (or never started).
 */
int test_proc_wait_exit(test_proc *p, int timeout_ms);
/* Sends sig and waits for the exit; returns the exit status, or 128+signal. */
int test_proc_stop(test_proc *p, int sig);

/*
 * Runs bin with argv and env_add to completion; captures stdout+stderr into out[size]
 * (NUL-terminated, truncated). Returns the exit status, or -1.
 */
int test_run(const char *bin, char *const argv[], char *const env_add[], char *out, size_t size);

/*
 * A loopback port nobody listens on, for a server whose address others must know before
 * it starts; below the kernel's ephemeral range, so that no outgoing connection takes it
 * meanwhile. -1 when none was found.
 */
int test_free_port(void);
/*
 * test_free_port, the port kept bound (not listening, without SO_REUSEADDR) by *fd until
 * test_release_port: meanwhile no other test's test_free_port picks it and no server binds
 * it. For a port planned long before its server starts: released just before it does.
 */
int test_hold_port(int *fd);
/* Closes *fd (when >= 0) and sets it to -1. */
void test_release_port(int *fd);

/*
 * Starts a server (bin, argv as for test_proc_start, its output into log_path) and waits
 * up to 10 s until it accepts connections on 127.0.0.1:port. 0, or -1 with the server
 * stopped and the reason printed.
 */
int test_proc_start_server(test_proc *p, const char *bin, char *const argv[], const char *log_path,
                           int port);

/* How many lines of the file at path (a process's log) contain needle; -1 when unreadable. */
int test_lines_with(const char *path, const char *needle);

/* A process's resident memory, in MB (-1 when unknown), and its threads: /proc/<pid>/status. */
typedef struct test_rss {
    double total; /* VmRSS */
    double anon;  /* RssAnon: heap, arenas, stacks */
    double file;  /* RssFile: the executable's and shared libraries' pages */
    int threads;
} test_rss;

test_rss test_proc_rss(int pid);

/* Creates a fresh temporary directory into buf[size]; 0 or -1. */
int test_tmpdir(char *buf, size_t size);
/* rm -rf path (only under /tmp). */
void test_rmrf(const char *path);

#endif
