/*
 * The cleave command line as a user runs it: migrations (status, refusal of an edited
 * one), configuration errors, readiness that names the module that is not ready.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "topology.h"

static char bin[512];

static int run(const char *dir, const char *extra_env, char *out, size_t size, const char *a1,
               const char *a2)
{
    char data_env[512], mig_env[600];
    char *env[] = {data_env, mig_env, (char *)extra_env, NULL};
    char *argv[] = {"cleave", (char *)a1, (char *)a2, NULL};

    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", dir);
    snprintf(mig_env, sizeof(mig_env), "CLEAVE_MIGRATIONS_DIR=%s/migrations", dir);
    return test_run(bin, argv, env, out, size);
}

static void copy_migrations(const char *dir)
{
    char src[600], dst[600], out[512];
    char *argv[] = {"cp", "-r", src, dst, NULL};

    snprintf(src, sizeof(src), "%s/migrations", CLEAVE_SOURCE_DIR);
    snprintf(dst, sizeof(dst), "%s/migrations", dir);
    assert_int_equal(test_run("/bin/cp", argv, NULL, out, sizeof(out)), 0);
}

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_migrate_status_lists_applied_migrations(void **state)
{
    char dir[256], out[8192];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    copy_migrations(dir);
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", "--status"), 0);
    assert_non_null(strstr(out, "catalog:"));
    assert_non_null(strstr(out, "pending"));
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    assert_non_null(strstr(out, "catalog:"));
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", "--status"), 0);
    assert_null(strstr(out, "pending"));
    assert_non_null(strstr(out, "0001_init.sql"));
    test_rmrf(dir);
}

static void test_edited_applied_migration_is_refused_naming_the_file(void **state)
{
    char dir[256], out[8192], file[600];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    copy_migrations(dir);
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    snprintf(file, sizeof(file), "%s/migrations/catalog/0001_init.sql", dir);
    append(file, "\n-- an innocent-looking edit\n");
    assert_int_not_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    assert_non_null(strstr(out, "0001_init.sql"));
    /* serve refuses too, for the same reason. */
    assert_int_not_equal(run(dir, "CLEAVE_LISTEN=127.0.0.1:0", out, sizeof(out), "serve", NULL), 0);
    assert_non_null(strstr(out, "0001_init.sql"));
    test_rmrf(dir);
}

static void test_bad_configuration_stops_start_up_naming_the_key(void **state)
{
    char dir[256], out[8192];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    copy_migrations(dir);
    assert_int_not_equal(run(dir, "CLEAVE_LISTN=127.0.0.1:1", out, sizeof(out), "migrate", NULL),
                         0);
    assert_non_null(strstr(out, "CLEAVE_LISTN"));
    assert_int_not_equal(run(dir, "CLEAVE_LISTEN=127.0.0.1:99999", out, sizeof(out), "serve", NULL),
                         0);
    assert_non_null(strstr(out, "CLEAVE_LISTEN"));
    assert_int_not_equal(run(dir, NULL, out, sizeof(out), "frobnicate", NULL), 0);
    assert_non_null(strstr(out, "frobnicate"));
    test_rmrf(dir);
}

static void test_modules_and_version(void **state)
{
    char dir[256], out[8192];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    assert_int_equal(run(dir, NULL, out, sizeof(out), "modules", NULL), 0);
    assert_non_null(strstr(out, "catalog"));
    assert_non_null(strstr(out, "local"));
    assert_int_equal(run(dir, NULL, out, sizeof(out), "modules", "--graph"), 0);
    assert_non_null(strstr(out, "graph LR"));
    assert_non_null(strstr(out, "catalog["));
    assert_int_equal(run(dir, NULL, out, sizeof(out), "version", NULL), 0);
    assert_non_null(strstr(out, "cleave "));
    test_rmrf(dir);
}

static void test_readyz_names_the_module_with_pending_migrations(void **state)
{
    topology t;
    test_resp r;
    char extra[700];

    (void)state;
    assert_int_equal(topology_start(&t, "monolith", 0), 0);
    test_http(t.base_url, "GET", "/readyz", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);

    /* A deployment brought a migration this database has not had yet. */
    snprintf(extra, sizeof(extra), "%s/catalog/9999_later.sql", t.migrations_dir);
    append(extra, "CREATE TABLE later (id INTEGER);\n");
    assert_int_equal(test_http(t.base_url, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    assert_true(test_is_problem(&r, 503));
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "detail")), "catalog"));
    test_resp_free(&r);

    assert_int_equal(unlink(extra), 0);
    test_http(t.base_url, "GET", "/readyz", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    assert_int_equal(topology_stop(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_status_lists_applied_migrations),
        cmocka_unit_test(test_edited_applied_migration_is_refused_naming_the_file),
        cmocka_unit_test(test_bad_configuration_stops_start_up_naming_the_key),
        cmocka_unit_test(test_modules_and_version),
        cmocka_unit_test(test_readyz_names_the_module_with_pending_migrations),
    };

    topology_bin("cleave", bin, sizeof(bin));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
