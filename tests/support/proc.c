/* Child processes for tests: the real binaries, stopped by their PID, even on failure. */
/*
 * For pipe2, so that every descriptor the harness opens is close-on-exec from its first
 * instant (and for environ).
 */
#define _GNU_SOURCE
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleave/util.h"

/*
 * A process a test starts waits no load balancer's delay when it drains (ADR 0032):
 * nothing routes to it but the test, which stops it when it is done with it. A test that
 * measures the delay sets the variable itself.
 */
#define NO_DRAIN_DELAY "CLEAVE_DRAIN_DELAY_MS=0"

static int env_names(const char *a, const char *b)
{
    size_t len = strcspn(a, "=");

    return strncmp(a, b, len) == 0 && (b[len] == '=' || b[len] == '\0');
}

static char **make_env(char *const env_add[])
{
    size_t n = 0, k = 0, j = 0;
    char **env;
    int delay_set = getenv("CLEAVE_DRAIN_DELAY_MS") != NULL;

    while (environ[n] != NULL) {
        n++;
    }
    while (env_add != NULL && env_add[k] != NULL) {
        k++;
    }
    for (size_t a = 0; a < k; a++) {
        delay_set |= env_names(NO_DRAIN_DELAY, env_add[a]);
    }
    env = calloc(n + k + 2, sizeof(*env));
    if (env == NULL) {
        return NULL;
    }
    /* Added variables win: drop inherited ones with the same name. */
    for (size_t i = 0; i < n; i++) {
        int shadowed = 0;
        for (size_t a = 0; a < k; a++) {
            size_t len = strcspn(env_add[a], "=");
            if (strncmp(environ[i], env_add[a], len + 1) == 0) {
                shadowed = 1;
            }
        }
        if (!shadowed) {
            env[j++] = environ[i];
        }
    }
    for (size_t a = 0; a < k; a++) {
        env[j++] = env_add[a];
    }
    if (!delay_set) {
        env[j++] = NO_DRAIN_DELAY;
    }
    return env;
}

static void *reader_main(void *arg)
{
    test_proc *p = arg;
    FILE *in = fdopen(p->out_fd, "r");
    FILE *log = fopen(p->log_path, "ae");
    char line[8192];

    while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
        const char *at = strstr(line, "\"port\":");
        if (log != NULL) {
            fputs(line, log);
            fflush(log);
        }
        if (at != NULL && strstr(line, "serving on port") != NULL) {
            pthread_mutex_lock(&p->mu);
            p->port = (int)strtol(at + 7, NULL, 10);
            pthread_cond_broadcast(&p->cond);
            pthread_mutex_unlock(&p->mu);
        }
    }
    if (log != NULL) {
        fclose(log);
    }
    if (in != NULL) {
        fclose(in);
    }
    pthread_mutex_lock(&p->mu);
    p->eof = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int test_proc_start(test_proc *p, const char *bin, char *const argv[], char *const env_add[],
                    const char *log_path)
{
    int fds[2];
    char **env;

    memset(p, 0, sizeof(*p));
    snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
    env = make_env(env_add);
    if (env == NULL || pipe2(fds, O_CLOEXEC) != 0) {
        free(env);
        return -1;
    }
    p->pid = fork();
    if (p->pid < 0) {
        free(env);
        return -1;
    }
    if (p->pid == 0) {
        int errfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        /* A test that crashes must not leave its server running. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], STDOUT_FILENO);
        if (errfd >= 0) {
            dup2(errfd, STDERR_FILENO);
        }
        close(fds[0]);
        close(fds[1]);
        execve(bin, argv, env);
        _exit(127);
    }
    free(env);
    close(fds[1]);
    p->out_fd = fds[0];
    pthread_mutex_init(&p->mu, NULL);
    cl_cond_init_monotonic(&p->cond);
    return pthread_create(&p->reader, NULL, reader_main, p) == 0 ? 0 : -1;
}

int test_proc_wait_port(test_proc *p, int timeout_ms)
{
    struct timespec until = cl_deadline_in(timeout_ms);
    int port;

    pthread_mutex_lock(&p->mu);
    while (p->port == 0 && !p->eof) {
        if (pthread_cond_timedwait(&p->cond, &p->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    port = p->port > 0 ? p->port : -1;
    pthread_mutex_unlock(&p->mu);
    return port;
}

/*
 * A process that has not exited this long after the signal is hung: its threads' stacks
 * go to its log (gdb, when installed) and it is killed, so that a hang fails the test
 * with the evidence instead of running into ctest's timeout without any.
 */
#define STOP_WAIT_MS 60000

static void dump_stacks(const test_proc *p)
{
    char pid[16], out[65536];
    char *argv[] = {"gdb", "-p", pid, "-batch", "-ex", "thread apply all bt", NULL};
    FILE *log;

    snprintf(pid, sizeof(pid), "%d", (int)p->pid);
    if (test_run("/usr/bin/gdb", argv, NULL, out, sizeof(out)) < 0) {
        snprintf(out, sizeof(out), "(no gdb to show the stacks)\n");
    }
    fprintf(stderr, "process %d did not exit within %d ms of the signal:\n%s\n", (int)p->pid,
            STOP_WAIT_MS, out);
    log = fopen(p->log_path, "ae");
    if (log != NULL) {
        fprintf(log, "\n--- hung on stop; stacks:\n%s\n", out);
        fclose(log);
    }
}

int test_proc_wait_exit(test_proc *p, int timeout_ms)
{
    struct timespec until;
    int eof;

    if (p->pid == 0) {
        return -1;
    }
    until = cl_deadline_in(timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (!p->eof && pthread_cond_timedwait(&p->cond, &p->mu, &until) == 0) {
    }
    eof = p->eof;
    pthread_mutex_unlock(&p->mu);
    /* Its output closed: it is gone (or going); reap it. */
    return eof ? test_proc_stop(p, SIGKILL) : -1;
}

int test_proc_stop(test_proc *p, int sig)
{
    struct timespec nap = {0, 10 * 1000000L};
    struct timespec until = cl_deadline_in(STOP_WAIT_MS), now;
    int status = 0;
    pid_t r;

    if (p->pid <= 0) {
        return -1;
    }
    kill(p->pid, sig);
    for (;;) {
        r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR)) {
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > until.tv_sec ||
            (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec)) {
            dump_stacks(p);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        nanosleep(&nap, NULL);
    }
    p->pid = 0;
    pthread_join(p->reader, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

int test_run(const char *bin, char *const argv[], char *const env_add[], char *out, size_t size)
{
    int fds[2];
    char **env = make_env(env_add);
    pid_t pid;
    size_t used = 0;
    int status = 0;

    if (env == NULL || pipe2(fds, O_CLOEXEC) != 0) {
        free(env);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execve(bin, argv, env);
        _exit(127);
    }
    free(env);
    close(fds[1]);
    for (;;) {
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (out != NULL && used + 1 < size) {
            size_t take = (size_t)n < size - 1 - used ? (size_t)n : size - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    close(fds[0]);
    if (out != NULL && size > 0) {
        out[used] = '\0';
    }
    if (pid < 0) {
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int test_hold_port(int *fd)
{
    static atomic_uint counter;
    unsigned seed =
        (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ atomic_fetch_add(&counter, 7919u);

    *fd = -1;
    for (int i = 0; i < 200; i++) {
        struct sockaddr_in a = {0};
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int port = 10000 + (int)(rand_r(&seed) % 22000u);

        if (s < 0) {
            return -1;
        }
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
            *fd = s;
            return port;
        }
        close(s);
    }
    return -1;
}

void test_release_port(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
    *fd = -1;
}

int test_free_port(void)
{
    int fd;
    int port = test_hold_port(&fd);

    test_release_port(&fd);
    return port;
}

static int port_accepts(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

int test_proc_start_server(test_proc *p, const char *bin, char *const argv[], const char *log_path,
                           int port)
{
    struct timespec nap = {0, 20 * 1000000L};

    if (test_proc_start(p, bin, argv, NULL, log_path) != 0) {
        return -1;
    }
    for (int i = 0; i < 500; i++) {
        if (port_accepts(port)) {
            return 0;
        }
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "%s did not start; see %s\n", bin, log_path);
    (void)test_proc_stop(p, SIGTERM);
    p->pid = 0;
    return -1;
}

int test_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    int n = 0;

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

int test_tmpdir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/cleave-test-XXXXXX");
    return mkdtemp(buf) != NULL ? 0 : -1;
}

void test_rmrf(const char *path)
{
    char *argv[] = {"rm", "-rf", NULL, NULL};
    char out[256];

    if (strncmp(path, "/tmp/cleave-test-", 17) != 0) {
        return;
    }
    argv[2] = (char *)path;
    test_run("/bin/rm", argv, NULL, out, sizeof(out));
}

test_rss test_proc_rss(int pid)
{
    test_rss r = {-1, -1, -1, 0};
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return r;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            r.total = strtod(line + 6, NULL) / 1024;
        } else if (strncmp(line, "RssAnon:", 8) == 0) {
            r.anon = strtod(line + 8, NULL) / 1024;
        } else if (strncmp(line, "RssFile:", 8) == 0) {
            r.file = strtod(line + 8, NULL) / 1024;
        } else if (strncmp(line, "Threads:", 8) == 0) {
            r.threads = (int)strtol(line + 8, NULL, 10);
        }
    }
    fclose(f);
    return r;
}
