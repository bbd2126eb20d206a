/*
 * The harness the end-to-end tests stand on (tests/support/topology.c, proc.c) leaves the
 * test's own descriptors alone: starting and stopping topologies closes none of them, and
 * no process it starts inherits another's. Both once went wrong together: a monolith's
 * start closed descriptor 0, the next pipe took its number, a later start closed that
 * pipe under its reader, and the server whose output it carried hung in write(2) once the
 * pipe was full, held open by the other servers that had inherited its read end.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "topology.h"

/* The target of /proc/<pid>/fd/<fd> ("pipe:[123]"), or "" when there is none. */
static void fd_target(pid_t pid, int fd, char *out, size_t size)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
    n = readlink(path, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

/* True when process pid has a descriptor on target. */
static int holds(pid_t pid, const char *target)
{
    char dir[64], path[PATH_MAX], link[256];
    struct dirent *e;
    DIR *d;
    int found = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        n = readlink(path, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = '\0';
            found |= strcmp(link, target) == 0;
        }
    }
    closedir(d);
    return found;
}

/* Descriptor 0 as the test got it, or /dev/null in its place when it is closed; its stat. */
static void stdin_open(struct stat *st)
{
    if (fstat(0, st) != 0) {
        assert_int_equal(open("/dev/null", O_RDONLY), 0);
        assert_int_equal(fstat(0, st), 0);
    }
}

static pid_t gateway_pid(const topology *t)
{
    return t->procs[t->gateway_slot].pid;
}

static void test_topologies_leave_the_tests_descriptors_alone(void **state)
{
    struct stat before, after;

    (void)state;
    stdin_open(&before);
    for (int i = 0; i < 2; i++) {
        topology t;

        assert_int_equal(topology_start(&t, "monolith", 0), 0);
        assert_int_equal(topology_stop(&t), 0);
    }
    assert_int_equal(fstat(0, &after), 0);
    assert_true(before.st_dev == after.st_dev && before.st_ino == after.st_ino);
}

static void test_no_process_inherits_anothers_output(void **state)
{
    topology first, second;
    struct stat in;
    char out[256];

    (void)state;
    stdin_open(&in);
    assert_int_equal(topology_start(&first, "monolith", 0), 0);
    assert_int_equal(topology_start(&second, "monolith", 0), 0);
    fd_target(gateway_pid(&first), STDOUT_FILENO, out, sizeof(out));
    assert_non_null(strstr(out, "pipe:"));
    /* The test reads the first server's output; nothing else may hold that pipe. */
    if (holds(gateway_pid(&second), out)) {
        fail_msg("the second server holds the first's output pipe %s", out);
    }
    assert_int_equal(topology_stop(&second), 0);
    assert_int_equal(topology_stop(&first), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topologies_leave_the_tests_descriptors_alone),
        cmocka_unit_test(test_no_process_inherits_anothers_output),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
