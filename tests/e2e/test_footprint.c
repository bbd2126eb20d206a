/*
 * End to end: the monolith as `make run` starts it (SQLite, the demo data) maps none of
 * the libraries only other deployments call (ADR 0047) - libpq and what it links (GnuTLS,
 * LDAP, Kerberos), libcurl, the NATS client, hiredis, and libssl without TLS configured -
 * neither at start nor after a login and a few reads.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "proc.h"

static char dir[256];
static test_proc server;

static void cleave_env(char *data_env, size_t size, char **env)
{
    snprintf(data_env, size, "CLEAVE_DATA_DIR=%s/var", dir);
    env[0] = data_env;
    env[1] = "CLEAVE_LISTEN=127.0.0.1:0";
    env[2] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    env[3] = NULL;
}

/* The lines of /proc/pid/maps that name a path containing name. */
static int maps_with(int pid, const char *name)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    return test_lines_with(path, name);
}

static void test_monolith_on_sqlite_maps_no_optional_library(void **state)
{
    static const char *const optional[] = {"libpq.so", "libcurl.so", "libgnutls.so",  "libldap",
                                           "libkrb5",  "libnats.so", "libhiredis.so", "libssl.so"};
    char data_env[512], log[512], out[4096], base[64], token[4096];
    char *env[4];
    char *migrate[] = {"cleave", "migrate", NULL};
    char *seed[] = {"cleave", "seed", "--if-empty", NULL};
    char *serve[] = {"cleave", "serve", NULL};
    test_resp r = {0};
    int port;

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    cleave_env(data_env, sizeof(data_env), env);
    assert_int_equal(test_run(CLEAVE_BIN_DIR "/cleave", migrate, env, out, sizeof(out)), 0);
    assert_int_equal(test_run(CLEAVE_BIN_DIR "/cleave", seed, env, out, sizeof(out)), 0);
    snprintf(log, sizeof(log), "%s/serve.log", dir);
    assert_int_equal(test_proc_start(&server, CLEAVE_BIN_DIR "/cleave", serve, env, log), 0);
    port = test_proc_wait_port(&server, 30000);
    assert_true(port > 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
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
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_monolith_on_sqlite_maps_no_optional_library, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
