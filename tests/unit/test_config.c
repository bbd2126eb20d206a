/* Configuration: defaults < file < environment, and errors that name key and source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/config.h"

/* A module with no settings of its own: only the per-module keys. */
static const cl_settings catalog = {"catalog", true, NULL, 0};
static const cl_settings *const no_modules[] = {NULL};
static const cl_settings *const catalog_only[] = {&catalog, NULL};

/* A module that declares settings, as a module's interface does. */
static const cl_setting widgets_list[] = {
    {"CLEAVE_WIDGETS_SPEED", CL_SETTING_INT(1, 10), "3", "widgets per second"},
    {"CLEAVE_WIDGETS_COLOUR", CL_SETTING_STRING, NULL, "paint"},
    {"CLEAVE_WIDGETS_HOME", CL_SETTING_URL, "http://widgets.example", "where widgets live"},
};
static const cl_settings widgets = {"widgets", true, widgets_list, 3};
static const cl_settings *const widgets_only[] = {&widgets, NULL};

/* A temporary config file holding text; its path is written to path[64]. */
static void write_temp(char path[64], const char *text, size_t len)
{
    int fd;

    snprintf(path, 64, "/tmp/cleave-config-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads from text (NULL: no file) and env; the file is removed again. */
static cl_status load(const char *text, char *const *env, const cl_settings *const *modules,
                      cl_config **out, cl_error *err, char path[64])
{
    char local[64];
    cl_status st;

    if (path == NULL) {
        path = local;
    }
    cl_error_clear(err);
    if (text == NULL) {
        return cl_config_load(NULL, env, modules, out, err);
    }
    write_temp(path, text, strlen(text));
    st = cl_config_load(path, env, modules, out, err);
    unlink(path);
    return st;
}

/* Stands in for "an output the function must not write". */
static char untouched;

/* Expects load to fail with status, naming field (unless NULL) and containing needle. */
static void expect_failure(const char *text, char *const *env, const cl_settings *const *modules,
                           cl_status status, const char *field, const char *needle)
{
    cl_config *cfg = (cl_config *)(void *)&untouched;
    cl_error err;

    assert_int_equal(load(text, env, modules, &cfg, &err, NULL), status);
    /* Outputs are written only on success. */
    assert_ptr_equal(cfg, (cl_config *)(void *)&untouched);
    assert_int_equal(err.status, status);
    if (field != NULL) {
        assert_string_equal(err.field, field);
    }
    if (strstr(err.message, needle) == NULL) {
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    }
}

/* Expects load to be refused with CL_INVALID naming field and containing needle. */
static void expect_refused(const char *text, char *const *env, const cl_settings *const *modules,
                           const char *field, const char *needle)
{
    expect_failure(text, env, modules, CL_INVALID, field, needle);
}

static void test_config_defaults(void **state)
{
    char *env[] = {NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load(NULL, env, no_modules, &cfg, &err, NULL), CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), "127.0.0.1:8080");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_DATA_DIR"), "./var");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LOG_LEVEL"), "info");
    assert_null(cl_config_get(cfg, "CLEAVE_MIGRATIONS_DIR"));
    assert_null(cl_config_get(cfg, "CLEAVE_DEV_SERVICE_TOKEN"));
    assert_int_equal(cl_config_int(cfg, "CLEAVE_HTTP_THREADS"), 64);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_MAX_BODY_BYTES"), 1048576);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_REQUEST_TIMEOUT_MS"), 10000);
    /* Unset, unknown, or no configuration at all: 0, as documented. */
    assert_int_equal(cl_config_int(cfg, "CLEAVE_MIGRATIONS_DIR"), 0);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_NO_SUCH_KEY"), 0);
    assert_int_equal(cl_config_int(NULL, "CLEAVE_HTTP_THREADS"), 0);
    assert_null(cl_config_get(cfg, "CLEAVE_NO_SUCH_KEY"));
    cl_config_free(cfg);
    cl_config_free(NULL);
}

static void test_config_null_env_and_modules_are_empty(void **state)
{
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load(NULL, NULL, NULL, &cfg, &err, NULL), CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), "127.0.0.1:8080");
    cl_config_free(cfg);
}

static void test_config_file_overrides_default(void **state)
{
    char *env[] = {NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_LISTEN = 0.0.0.0:9090\nCLEAVE_HTTP_THREADS=4\n", env, no_modules,
                          &cfg, &err, NULL),
                     CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), "0.0.0.0:9090");
    assert_int_equal(cl_config_int(cfg, "CLEAVE_HTTP_THREADS"), 4);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_DATA_DIR"), "./var");
    cl_config_free(cfg);
}

static void test_config_env_overrides_file(void **state)
{
    char *env[] = {"PATH=/usr/bin", "CLEAVEX=1", "CLEAVE_LISTEN=10.0.0.1:7000",
                   "cleave_listen=nonsense", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_LISTEN = 0.0.0.0:9090\nCLEAVE_HTTP_THREADS = 4\n", env,
                          no_modules, &cfg, &err, NULL),
                     CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), "10.0.0.1:7000");
    assert_int_equal(cl_config_int(cfg, "CLEAVE_HTTP_THREADS"), 4);
    cl_config_free(cfg);
}

static void test_config_source_names_the_winner(void **state)
{
    char *env[] = {"CLEAVE_LISTEN=10.0.0.1:7000", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_LISTEN = 0.0.0.0:9090\nCLEAVE_DATA_DIR = /srv\n", env, no_modules,
                          &cfg, &err, NULL),
                     CL_OK);
    assert_string_equal(cl_config_source(cfg, "CLEAVE_LISTEN"), "environment");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_DATA_DIR"), "file");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_LOG_LEVEL"), "default");
    assert_null(cl_config_source(cfg, "CLEAVE_MIGRATIONS_DIR"));
    assert_null(cl_config_source(cfg, "CLEAVE_NO_SUCH_KEY"));
    cl_config_free(cfg);
}

static void test_config_refuses_unknown_key_in_file(void **state)
{
    char *env[] = {NULL};
    char path[64];
    char want[128];
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(
        load("# settings\n\nCLEAVE_LISTN = 1.2.3.4:80\n", env, no_modules, &cfg, &err, path),
        CL_INVALID);
    assert_null(cfg);
    assert_string_equal(err.field, "CLEAVE_LISTN");
    snprintf(want, sizeof(want), "unknown configuration key CLEAVE_LISTN (from %s line 3)", path);
    assert_string_equal(err.message, want);
    /* A key without the CLEAVE_ prefix is just as unknown in the file. */
    expect_refused("listen = 1.2.3.4:80\n", env, no_modules, "listen", "unknown");
}

static void test_config_refuses_unknown_key_in_env(void **state)
{
    char *env[] = {"HOME=/root", "CLEAVE_LISTN=1.2.3.4:80", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load(NULL, env, no_modules, &cfg, &err, NULL), CL_INVALID);
    assert_null(cfg);
    assert_string_equal(err.field, "CLEAVE_LISTN");
    assert_string_equal(err.message, "unknown configuration key CLEAVE_LISTN (from environment)");
}

static void test_config_refuses_bad_listen(void **state)
{
    static const char *const bad[] = {"CLEAVE_LISTEN=nohost",   "CLEAVE_LISTEN=:80",
                                      "CLEAVE_LISTEN=host:",    "CLEAVE_LISTEN=host:http",
                                      "CLEAVE_LISTEN=h:123456", "CLEAVE_LISTEN=h:-1",
                                      "CLEAVE_LISTEN=a b:80",   "CLEAVE_LISTEN="};
    static const char *const good[] = {"CLEAVE_LISTEN=[::1]:0", "CLEAVE_LISTEN=localhost:65535"};
    char *env[] = {"CLEAVE_LISTEN=127.0.0.1:99999", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load(NULL, env, no_modules, &cfg, &err, NULL), CL_INVALID);
    assert_string_equal(err.field, "CLEAVE_LISTEN");
    assert_string_equal(err.message, "CLEAVE_LISTEN: '127.0.0.1:99999' is not host:port with a "
                                     "port 0-65535 (from environment)");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env[0] = (char *)bad[i];
        expect_refused(NULL, env, no_modules, "CLEAVE_LISTEN", "is not host:port");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        env[0] = (char *)good[i];
        assert_int_equal(load(NULL, env, no_modules, &cfg, &err, NULL), CL_OK);
        assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), strchr(good[i], '=') + 1);
        cl_config_free(cfg);
    }
}

static void test_config_refuses_bad_level(void **state)
{
    char *env[] = {NULL};
    char *env_upper[] = {"CLEAVE_LOG_LEVEL=INFO", NULL};
    char *env_ok[] = {"CLEAVE_LOG_LEVEL=debug", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    expect_refused("CLEAVE_LOG_LEVEL = verbose\n", env, no_modules, "CLEAVE_LOG_LEVEL",
                   "CLEAVE_LOG_LEVEL: 'verbose' is not one of debug, info, warn, error (from ");
    expect_refused(NULL, env_upper, no_modules, "CLEAVE_LOG_LEVEL", "'INFO'");
    assert_int_equal(load(NULL, env_ok, no_modules, &cfg, &err, NULL), CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LOG_LEVEL"), "debug");
    cl_config_free(cfg);
}

static void test_config_refuses_bad_ints(void **state)
{
    static const char *const bad[] = {"CLEAVE_HTTP_THREADS=0",
                                      "CLEAVE_HTTP_THREADS=1025",
                                      "CLEAVE_HTTP_THREADS=8x",
                                      "CLEAVE_HTTP_THREADS=",
                                      "CLEAVE_HTTP_THREADS= 8",
                                      "CLEAVE_HTTP_THREADS=-3",
                                      "CLEAVE_HTTP_THREADS=99999999999999999999999",
                                      "CLEAVE_MAX_BODY_BYTES=1023",
                                      "CLEAVE_MAX_BODY_BYTES=67108865",
                                      "CLEAVE_REQUEST_TIMEOUT_MS=600001"};
    char *env[] = {NULL, NULL};
    char *edges[] = {"CLEAVE_HTTP_THREADS=256", "CLEAVE_MAX_BODY_BYTES=1024",
                     "CLEAVE_REQUEST_TIMEOUT_MS=1", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char key[64];

        env[0] = (char *)bad[i];
        snprintf(key, sizeof(key), "%.*s", (int)(strchr(bad[i], '=') - bad[i]), bad[i]);
        expect_refused(NULL, env, no_modules, key, "is not an integer");
    }
    env[0] = "CLEAVE_HTTP_THREADS=0";
    expect_refused(NULL, env, no_modules, "CLEAVE_HTTP_THREADS",
                   "CLEAVE_HTTP_THREADS: '0' is not an integer 1-1024 (from environment)");
    assert_int_equal(load(NULL, edges, no_modules, &cfg, &err, NULL), CL_OK);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_HTTP_THREADS"), 256);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_MAX_BODY_BYTES"), 1024);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_REQUEST_TIMEOUT_MS"), 1);
    cl_config_free(cfg);
}

static void test_config_missing_file_is_not_found(void **state)
{
    char *env[] = {NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    cl_error_clear(&err);
    assert_int_equal(cl_config_load("/nonexistent/cleave.conf", env, no_modules, &cfg, &err),
                     CL_NOT_FOUND);
    assert_null(cfg);
    assert_non_null(strstr(err.message, "/nonexistent/cleave.conf"));
}

static void test_config_file_syntax(void **state)
{
    char *env[] = {NULL};
    cl_config *cfg = NULL;
    cl_error err;
    const char *text = "  # a comment\n"
                       "\n"
                       "\t CLEAVE_DATA_DIR\t=  \"/srv/my data\"  # trailing comment\n"
                       "CLEAVE_DEV_SERVICE_TOKEN = abc#def\n"
                       "CLEAVE_LISTEN=1.2.3.4:80 # inline comment\r\n"
                       "CLEAVE_MIGRATIONS_DIR = \"/m#x\"\n"
                       "   \n"
                       "CLEAVE_LOG_LEVEL = warn"; /* no final newline */

    (void)state;
    assert_int_equal(load(text, env, no_modules, &cfg, &err, NULL), CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_DATA_DIR"), "/srv/my data");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_DEV_SERVICE_TOKEN"), "abc#def");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LISTEN"), "1.2.3.4:80");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_MIGRATIONS_DIR"), "/m#x");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_LOG_LEVEL"), "warn");
    cl_config_free(cfg);
}

static void test_config_refuses_bad_lines(void **state)
{
    char *env[] = {NULL};
    char path[64];
    char want[128];
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_LISTEN = 1.2.3.4:80\nCLEAVE_DATA_DIR /srv\n", env, no_modules,
                          &cfg, &err, path),
                     CL_INVALID);
    snprintf(want, sizeof(want), "(from %s line 2)", path);
    if (strstr(err.message, want) == NULL) {
        fail_msg("message '%s' lacks '%s'", err.message, want);
    }
    expect_refused("CLEAVE_DATA_DIR = \"/srv\n", env, no_modules, "CLEAVE_DATA_DIR",
                   "unterminated quote");
    expect_refused("CLEAVE_DATA_DIR = \"/srv\" x\n", env, no_modules, "CLEAVE_DATA_DIR",
                   "after closing quote");
    expect_refused(" = x\n", env, no_modules, NULL, "missing key");
}

static void test_config_enforces_size_caps(void **state)
{
    char *env[] = {NULL, NULL};
    char *big = malloc((size_t)70 * 1024);
    char path[64];
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_non_null(big);
    /* A value of 1025 bytes, in the environment and in the file. */
    memcpy(big, "CLEAVE_CLIENT_SECRET=", 21);
    memset(big + 21, 'v', 1025);
    big[21 + 1025] = '\0';
    env[0] = big;
    expect_refused(NULL, env, no_modules, "CLEAVE_CLIENT_SECRET", "longer than 1024");
    big[21 + 1024] = '\0';
    assert_int_equal(load(NULL, env, no_modules, &cfg, &err, NULL), CL_OK);
    assert_int_equal(strlen(cl_config_get(cfg, "CLEAVE_CLIENT_SECRET")), 1024);
    cl_config_free(cfg);

    /* A line of 4097 bytes. */
    memset(big, '#', 4097);
    big[4097] = '\0';
    expect_refused(big, NULL, no_modules, NULL, "longer than 4096");
    big[4096] = '\0';
    assert_int_equal(load(big, NULL, no_modules, &cfg, &err, NULL), CL_OK);
    cl_config_free(cfg);

    /* A file of more than 64 KiB, made of harmless comment lines. */
    for (size_t i = 0; i < (size_t)65 * 1024; i += 64) {
        memset(big + i, '#', 63);
        big[i + 63] = '\n';
    }
    write_temp(path, big, (size_t)65 * 1024);
    assert_int_equal(cl_config_load(path, NULL, no_modules, &cfg, &err), CL_INVALID);
    assert_non_null(strstr(err.message, "larger than 65536"));
    unlink(path);
    write_temp(path, big, (size_t)64 * 1024);
    assert_int_equal(cl_config_load(path, NULL, no_modules, &cfg, &err), CL_OK);
    cl_config_free(cfg);
    unlink(path);
    free(big);
}

static void test_config_module_keys_only_for_listed_modules(void **state)
{
    char *env[] = {"CLEAVE_CATALOG_URL=http://catalog:8081", "CLEAVE_CATALOG_TIMEOUT_MS=500", NULL};
    char *nope[] = {"CLEAVE_NOPE_URL=http://nope:1", NULL};
    char *bad_url[] = {"CLEAVE_CATALOG_URL=ftp://catalog", NULL};
    char *bad_suffix[] = {"CLEAVE_CATALOG_COLOUR=blue", NULL};
    char *bad_timeout[] = {"CLEAVE_CATALOG_TIMEOUT_MS=0", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_CATALOG_DATABASE_URL = postgres://db/catalog\n", env,
                          catalog_only, &cfg, &err, NULL),
                     CL_OK);
    assert_string_equal(cl_config_module(cfg, "catalog", "URL"), "http://catalog:8081");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_CATALOG_URL"), "http://catalog:8081");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_CATALOG_URL"), "environment");
    assert_string_equal(cl_config_module(cfg, "catalog", "DATABASE_URL"), "postgres://db/catalog");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_CATALOG_DATABASE_URL"), "file");
    assert_null(cl_config_module(cfg, "catalog", "REPLICA_URL"));
    assert_null(cl_config_source(cfg, "CLEAVE_CATALOG_REPLICA_URL"));
    assert_int_equal(cl_config_int(cfg, "CLEAVE_CATALOG_TIMEOUT_MS"), 500);
    assert_null(cl_config_module(cfg, "nope", "URL"));
    cl_config_free(cfg);

    expect_refused(NULL, nope, catalog_only, "CLEAVE_NOPE_URL",
                   "unknown configuration key CLEAVE_NOPE_URL (from environment)");
    expect_refused(NULL, env, no_modules, "CLEAVE_CATALOG_URL", "unknown configuration key");
    expect_refused(NULL, bad_url, catalog_only, "CLEAVE_CATALOG_URL",
                   "is not an http:// or https:// URL");
    expect_refused(NULL, bad_suffix, catalog_only, "CLEAVE_CATALOG_COLOUR", "unknown");
    expect_refused(NULL, bad_timeout, catalog_only, "CLEAVE_CATALOG_TIMEOUT_MS",
                   "is not an integer 1-600000");
}

static void test_config_module_settings_have_declared_defaults(void **state)
{
    char *env[] = {"CLEAVE_WIDGETS_COLOUR=blue", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load("CLEAVE_WIDGETS_SPEED = 7\n", env, widgets_only, &cfg, &err, NULL),
                     CL_OK);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_WIDGETS_SPEED"), 7);
    assert_string_equal(cl_config_source(cfg, "CLEAVE_WIDGETS_SPEED"), "file");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_WIDGETS_COLOUR"), "blue");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_WIDGETS_COLOUR"), "environment");
    assert_string_equal(cl_config_get(cfg, "CLEAVE_WIDGETS_HOME"), "http://widgets.example");
    assert_string_equal(cl_config_source(cfg, "CLEAVE_WIDGETS_HOME"), "default");
    /* A module with settings still has the per-module keys. */
    assert_null(cl_config_module(cfg, "widgets", "URL"));
    cl_config_free(cfg);

    /* Nothing configured: the default stated once, in the declaration. */
    assert_int_equal(load(NULL, NULL, widgets_only, &cfg, &err, NULL), CL_OK);
    assert_int_equal(cl_config_int(cfg, "CLEAVE_WIDGETS_SPEED"), 3);
    assert_string_equal(cl_config_source(cfg, "CLEAVE_WIDGETS_SPEED"), "default");
    assert_null(cl_config_get(cfg, "CLEAVE_WIDGETS_COLOUR"));
    cl_config_free(cfg);
}

static void test_config_refuses_bad_module_value_naming_its_bounds(void **state)
{
    char *high[] = {"CLEAVE_WIDGETS_SPEED=11", NULL};
    char *low[] = {"CLEAVE_WIDGETS_SPEED=0", NULL};
    char *word[] = {"CLEAVE_WIDGETS_SPEED=fast", NULL};
    char *url[] = {"CLEAVE_WIDGETS_HOME=widgets.example", NULL};

    (void)state;
    expect_refused(NULL, high, widgets_only, "CLEAVE_WIDGETS_SPEED",
                   "CLEAVE_WIDGETS_SPEED: '11' is not an integer 1-10 (from environment)");
    expect_refused(NULL, low, widgets_only, "CLEAVE_WIDGETS_SPEED", "is not an integer 1-10");
    expect_refused(NULL, word, widgets_only, "CLEAVE_WIDGETS_SPEED", "is not an integer 1-10");
    expect_refused("CLEAVE_WIDGETS_SPEED = 99\n", NULL, widgets_only, "CLEAVE_WIDGETS_SPEED",
                   "is not an integer 1-10 (from ");
    expect_refused(NULL, url, widgets_only, "CLEAVE_WIDGETS_HOME",
                   "is not an http:// or https:// URL");
}

static void test_config_refuses_keys_of_modules_not_in_the_build(void **state)
{
    char *env[] = {"CLEAVE_WIDGETS_SPEED=3", NULL};
    char *typo[] = {"CLEAVE_WIDGETS_SPEEED=3", NULL};

    (void)state;
    expect_refused(NULL, env, no_modules, "CLEAVE_WIDGETS_SPEED",
                   "unknown configuration key CLEAVE_WIDGETS_SPEED (from environment)");
    expect_refused(NULL, env, catalog_only, "CLEAVE_WIDGETS_SPEED", "unknown configuration key");
    expect_refused("CLEAVE_WIDGETS_SPEED = 3\n", NULL, catalog_only, "CLEAVE_WIDGETS_SPEED",
                   "unknown configuration key");
    expect_refused(NULL, typo, widgets_only, "CLEAVE_WIDGETS_SPEEED", "unknown configuration key");
}

static void test_config_hooks_get_no_module_keys(void **state)
{
    static const cl_setting list[] = {{"CLEAVE_TEST_CRASH_AT", CL_SETTING_STRING, NULL, "crash"}};
    static const cl_settings hooks = {"test", false, list, 1};
    const cl_settings *const owners[] = {&hooks, NULL};
    char *env[] = {"CLEAVE_TEST_CRASH_AT=after-commit", NULL};
    char *url[] = {"CLEAVE_TEST_URL=http://x", NULL};
    cl_config *cfg = NULL;
    cl_error err;

    (void)state;
    assert_int_equal(load(NULL, env, owners, &cfg, &err, NULL), CL_OK);
    assert_string_equal(cl_config_get(cfg, "CLEAVE_TEST_CRASH_AT"), "after-commit");
    cl_config_free(cfg);
    expect_refused(NULL, url, owners, "CLEAVE_TEST_URL", "unknown configuration key");
    /* Without the hooks (a production build), the hook is an unknown key. */
    expect_refused(NULL, env, no_modules, "CLEAVE_TEST_CRASH_AT", "unknown configuration key");
}

/* Expects the declarations in owners to be refused as a programming error naming needle. */
static void expect_bad_declaration(const cl_settings *const *owners, const char *needle)
{
    expect_failure(NULL, NULL, owners, CL_INTERNAL, NULL, needle);
}

static void test_config_refuses_bad_declarations(void **state)
{
    static const cl_setting outside[] = {{"CLEAVE_GADGETS_SPEED", CL_SETTING_INT(1, 2), "1", ""}};
    static const cl_setting module_key[] = {{"CLEAVE_WIDGETS_URL", CL_SETTING_URL, NULL, ""}};
    static const cl_setting twice[] = {{"CLEAVE_WIDGETS_A", CL_SETTING_STRING, NULL, ""},
                                       {"CLEAVE_WIDGETS_A", CL_SETTING_STRING, NULL, ""}};
    static const cl_setting bad_default[] = {{"CLEAVE_WIDGETS_N", CL_SETTING_INT(1, 10), "0", ""}};
    static const cl_setting reversed[] = {{"CLEAVE_WIDGETS_N", CL_SETTING_INT(10, 1), NULL, ""}};
    static const cl_setting platform[] = {{"CLEAVE_BUS_RELAYS", CL_SETTING_INT(1, 2), NULL, ""}};
    static const cl_settings s_outside = {"widgets", true, outside, 1};
    static const cl_settings s_module_key = {"widgets", true, module_key, 1};
    static const cl_settings s_twice = {"widgets", true, twice, 2};
    static const cl_settings s_bad_default = {"widgets", true, bad_default, 1};
    static const cl_settings s_reversed = {"widgets", true, reversed, 1};
    static const cl_settings s_platform = {"bus", false, platform, 1};
    static const cl_settings s_upper = {"Widgets", true, NULL, 0};
    static const cl_settings *const o_outside[] = {&s_outside, NULL};
    static const cl_settings *const o_module_key[] = {&s_module_key, NULL};
    static const cl_settings *const o_twice[] = {&s_twice, NULL};
    static const cl_settings *const o_bad_default[] = {&s_bad_default, NULL};
    static const cl_settings *const o_reversed[] = {&s_reversed, NULL};
    static const cl_settings *const o_platform[] = {&s_platform, NULL};
    static const cl_settings *const o_upper[] = {&s_upper, NULL};
    static const cl_settings *const o_same_owner[] = {&widgets, &s_module_key, NULL};

    (void)state;
    expect_bad_declaration(o_outside, "widgets declares 'CLEAVE_GADGETS_SPEED'");
    expect_bad_declaration(o_module_key, "widgets declares CLEAVE_WIDGETS_URL, a key known");
    expect_bad_declaration(o_twice, "widgets declares CLEAVE_WIDGETS_A, a key known");
    expect_bad_declaration(o_bad_default, "bad built-in default: CLEAVE_WIDGETS_N: '0' is not");
    expect_bad_declaration(o_reversed, "CLEAVE_WIDGETS_N: bounds 10-1 are out of order");
    expect_bad_declaration(o_platform, "bus declares CLEAVE_BUS_RELAYS, a key known");
    expect_bad_declaration(o_upper, "'Widgets' is not lower-case");
    expect_bad_declaration(o_same_owner, "settings owner widgets is given twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_null_env_and_modules_are_empty),
        cmocka_unit_test(test_config_file_overrides_default),
        cmocka_unit_test(test_config_env_overrides_file),
        cmocka_unit_test(test_config_source_names_the_winner),
        cmocka_unit_test(test_config_refuses_unknown_key_in_file),
        cmocka_unit_test(test_config_refuses_unknown_key_in_env),
        cmocka_unit_test(test_config_refuses_bad_listen),
        cmocka_unit_test(test_config_refuses_bad_level),
        cmocka_unit_test(test_config_refuses_bad_ints),
        cmocka_unit_test(test_config_missing_file_is_not_found),
        cmocka_unit_test(test_config_file_syntax),
        cmocka_unit_test(test_config_refuses_bad_lines),
        cmocka_unit_test(test_config_enforces_size_caps),
        cmocka_unit_test(test_config_module_keys_only_for_listed_modules),
        cmocka_unit_test(test_config_module_settings_have_declared_defaults),
        cmocka_unit_test(test_config_refuses_bad_module_value_naming_its_bounds),
        cmocka_unit_test(test_config_refuses_keys_of_modules_not_in_the_build),
        cmocka_unit_test(test_config_hooks_get_no_module_keys),
        cmocka_unit_test(test_config_refuses_bad_declarations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
