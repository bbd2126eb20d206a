/*
 * End to end: the monolith as `make run` starts it (SQLite, the demo data) maps none of
 * the libraries only other deployments call (ADR 0047) - libpq and what it links (GnuTLS,
 * LDAP, Kerberos), libcurl, the NATS client, hiredis, and libssl and libcrypto without TLS
 * configured - neither at start nor after a login and a few reads. Tokens are signed and
 * checked with Nettle (ADR 0060): OpenSSL 3 made 4 MB of libcrypto resident for them.
 * Its background threads keep the process's nice value unless CLEAVE_BACKGROUND_NICE says
 * otherwise, and the threads that answer requests keep it always (ADR 0071).
 */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "client.h"
#include "proc.h"

static char dir[256];
static test_proc server;

/* The environment of make run, and extra (NULL: none). */
static void cleave_env(char *data_env, size_t size, char **env, char *extra)
{
    snprintf(data_env, size, "CLEAVE_DATA_DIR=%s/var", dir);
    env[0] = data_env;
    env[1] = "CLEAVE_LISTEN=127.0.0.1:0";
    env[2] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    env[3] = extra;
    env[4] = NULL;
}

/* The lines of /proc/pid/maps that name a path containing name. */
static int maps_with(int pid, const char *name)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    return test_lines_with(path, name);
}

/* Migrates, seeds and serves the monolith as `make run` does, with extra in its environment. */
static void start_monolith(char *base, size_t size, char *extra)
{
    char data_env[512], log[512], out[4096];
    char *env[5];
    char *migrate[] = {"cleave", "migrate", NULL};
    char *seed[] = {"cleave", "seed", "--if-empty", NULL};
    char *serve[] = {"cleave", "serve", NULL};
    int port;

    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    cleave_env(data_env, sizeof(data_env), env, extra);
    assert_int_equal(test_run(CLEAVE_BIN_DIR "/cleave", migrate, env, out, sizeof(out)), 0);
    assert_int_equal(test_run(CLEAVE_BIN_DIR "/cleave", seed, env, out, sizeof(out)), 0);
    snprintf(log, sizeof(log), "%s/serve.log", dir);
    assert_int_equal(test_proc_start(&server, CLEAVE_BIN_DIR "/cleave", serve, env, log), 0);
    port = test_proc_wait_port(&server, 30000);
    assert_true(port > 0);
    snprintf(base, size, "http://127.0.0.1:%d", port);
}

/*
 * /proc/pid/task/tid/file into buf[size] (at most size - 1 bytes, NUL-terminated); false when
 * the thread ended meanwhile.
 */
static bool read_task_file(int pid, const char *tid, const char *file, char *buf, size_t size)
{
    char path[96];
    size_t len;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%.16s/%s", pid, tid, file);
    f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    len = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[len] = '\0';
    return true;
}

/*
 * The threads of pid whose name ends in suffix, each checked to run at nice value want: how
 * many there are.
 */
static int threads_at(int pid, const char *suffix, int want)
{
    char path[96], comm[32], stat[1024];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        const char *rest;
        char *end;
        size_t len;
        int nice;

        /* A thread that ended between the directory's read and its files' is skipped. */
        if (e->d_name[0] == '.' || !read_task_file(pid, e->d_name, "comm", comm, sizeof(comm))) {
            continue;
        }
        comm[strcspn(comm, "\n")] = '\0';
        len = strlen(comm);
        if (len < strlen(suffix) || strcmp(comm + len - strlen(suffix), suffix) != 0 ||
            !read_task_file(pid, e->d_name, "stat", stat, sizeof(stat))) {
            continue;
        }
        /* After the name in parentheses, the 17th field is the nice value (proc(5)). */
        rest = strrchr(stat, ')');
        for (int field = 0; field < 17 && rest != NULL; field++) {
            rest = strchr(rest + 1, ' ');
        }
        nice = INT_MIN;
        if (rest != NULL) {
            nice = (int)strtol(rest + 1, &end, 10);
            assert_true(end > rest + 1);
        }
        if (nice != want) {
            fail_msg("thread %s (%s) runs at nice %d, not %d", comm, e->d_name, nice, want);
        }
        n++;
    }
    closedir(d);
    return n;
}

static void test_monolith_on_sqlite_maps_no_optional_library(void **state)
{
    static const char *const optional[] = {"libpq.so",      "libcurl.so", "libgnutls.so",
                                           "libldap",       "libkrb5",    "libnats.so",
                                           "libhiredis.so", "libssl.so",  "libcrypto.so"};
    char base[64], token[4096];
    test_resp r = {0};

    (void)state;
    start_monolith(base, sizeof(base), NULL);
    /* Ready: /readyz checks every migration's checksum (SHA-256). */
    assert_int_equal(test_http_as(base, NULL, "GET", "/readyz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    /* What the process does most: a login, an anonymous read and one with the token. */
    assert_int_equal(
        test_password_token(base, TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD, token, sizeof(token)), 0);
    assert_int_equal(test_http_as(base, NULL, "GET", "/api/v1/products/1", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    assert_int_equal(test_http_as(base, token, "GET", "/api/v1/products/1", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    /* The check itself can fail: the process does map the libraries it uses. */
    assert_true(maps_with(server.pid, "libsqlite3.so") > 0);
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        if (maps_with(server.pid, optional[i]) != 0) {
            fail_msg("cleave serve on SQLite maps %s", optional[i]);
        }
    }
    /* By default no thread is set apart: the relays run at the process's nice value. */
    assert_true(threads_at(server.pid, ".relay", getpriority(PRIO_PROCESS, 0)) > 0);
}

/*
 * With CLEAVE_BACKGROUND_NICE, the relays, the inbox workers and the operation runners run at
 * that nice value; the HTTP workers and the saga's executors (a checkout waits on them) at
 * the process's.
 */
static void test_background_threads_run_at_the_nice_value_set(void **state)
{
    char base[64];
    int own = getpriority(PRIO_PROCESS, 0);
    int background = own > 7 ? own : 7;
    test_resp r = {0};

    (void)state;
    start_monolith(base, sizeof(base), "CLEAVE_BACKGROUND_NICE=7");
    assert_int_equal(test_http_as(base, NULL, "GET", "/readyz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    /* Each module's relay, shipping's two inbox workers, its operation runners. */
    assert_true(threads_at(server.pid, ".relay", background) >= 5);
    assert_true(threads_at(server.pid, ".worker", background) >= 2);
    assert_true(threads_at(server.pid, ".runner", background) > 0);
    assert_true(threads_at(server.pid, "civetweb-worker", own) > 0);
    assert_true(threads_at(server.pid, "orders.saga", own) > 0);
}

#define BURST 32

typedef struct burst {
    pthread_barrier_t *start;
    const char *base;
    const char *token;
    long status;
} burst;

static void *burst_one(void *arg)
{
    burst *b = arg;
    test_resp r = {0};

    pthread_barrier_wait(b->start);
    b->status =
        test_http_as(b->base, b->token, "GET", "/api/v1/products/1", NULL, &r) == 0 ? r.status : -1;
    test_resp_free(&r);
    test_http_thread_done();
    return NULL;
}

/* The count of an exposition line that begins with prefix in /metrics, or -1. */
static long metric(const char *base, const char *prefix)
{
    test_resp r = {0};
    const char *line;
    long v = -1;

    if (test_http_as(base, NULL, "GET", "/metrics", NULL, &r) == 0 && r.status == 200 &&
        r.body != NULL) {
        line = strstr(r.body, prefix);
        if (line != NULL) {
            line = strchr(line, ' ');
            v = line != NULL ? strtol(line + 1, NULL, 10) : -1;
        }
    }
    test_resp_free(&r);
    return v;
}

/*
 * The first requests with a token all find the gateway without the issuer's keys. Each of
 * them used to fetch the keys, each fetch taking a connection of identity's pool, which
 * grew to its maximum of SQLite connections (1.5 MB) for one answer; one fetch serves them
 * all now.
 */
static void test_first_requests_with_a_token_fetch_the_keys_once(void **state)
{
    char base[64], token[4096];
    pthread_barrier_t start;
    pthread_t threads[BURST];
    burst b[BURST];

    (void)state;
    start_monolith(base, sizeof(base), NULL);
    assert_int_equal(
        test_password_token(base, TEST_CUSTOMER, TEST_CUSTOMER_PASSWORD, token, sizeof(token)), 0);
    assert_int_equal(pthread_barrier_init(&start, NULL, BURST), 0);
    for (int i = 0; i < BURST; i++) {
        b[i] = (burst){&start, base, token, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, burst_one, &b[i]), 0);
    }
    for (int i = 0; i < BURST; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(b[i].status, 200);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(metric(base, "cleave_module_operation_calls_total{module=\"identity\","
                                  "operation=\"get_jwks\",binding=\"local\",outcome=\"ok\"}"),
                     1);
}

/* Stops the server however the test ended. */
static int teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (server.pid > 0) {
        rc = test_proc_stop(&server, SIGTERM);
    }
    if (dir[0] != '\0') {
        test_rmrf(dir);
    }
    /* The next test starts a server of its own. */
    memset(&server, 0, sizeof(server));
    dir[0] = '\0';
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_monolith_on_sqlite_maps_no_optional_library, teardown),
        cmocka_unit_test_teardown(test_first_requests_with_a_token_fetch_the_keys_once, teardown),
        cmocka_unit_test_teardown(test_background_threads_run_at_the_nice_value_set, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
