/*
 * The cleave command line as a user runs it: migrations (status, refusal of an edited
 * one), configuration errors, `seed --limit` and a bad limit, readiness that names the
 * module that is not ready.
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
/* On PostgreSQL (CL_TEST_DB=postgres) each test gets a fresh database: pg.db. */
static pgtest pg;
static char db_env[600], admin_env[600];

static int pg_setup(void **state)
{
    char url[512];

    (void)state;
    if (!pgtest_enabled()) {
        return 0;
    }
    if (pgtest_load(&pg) != 0 || pgtest_db_create(&pg) != 0) {
        return -1;
    }
    pgtest_url(pg.primary, pg.db, url, sizeof(url));
    snprintf(db_env, sizeof(db_env), "CLEAVE_DATABASE_URL=%s", url);
    snprintf(admin_env, sizeof(admin_env), "CLEAVE_DATABASE_ADMIN_URL=%s", url);
    return 0;
}

static int pg_teardown(void **state)
{
    (void)state;
    return pgtest_db_drop(&pg);
}

/* The applied file of migration 0001 for the database under test. */
static const char *init_file(void)
{
    return pgtest_enabled() ? "0001_init.postgres.sql" : "0001_init.sql";
}

/* `cleave args...` (args NULL-terminated, at most 4) on dir's data; its exit status. */
static int run_args(const char *dir, const char *extra_env, char *out, size_t size,
                    const char *const *args)
{
    char data_env[512], mig_env[600];
    char *env[] = {data_env, mig_env, (char *)extra_env, NULL, NULL, NULL};
    char *argv[6] = {"cleave"};

    for (int i = 0; i < 4 && args[i] != NULL; i++) {
        argv[i + 1] = (char *)args[i];
    }

    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", dir);
    snprintf(mig_env, sizeof(mig_env), "CLEAVE_MIGRATIONS_DIR=%s/migrations", dir);
    if (pgtest_enabled()) {
        /* The command line gets the admin credentials: cleave migrate needs them. */
        env[extra_env != NULL ? 3 : 2] = db_env;
        env[extra_env != NULL ? 4 : 3] = admin_env;
    }
    return test_run(bin, argv, env, out, size);
}

static int run(const char *dir, const char *extra_env, char *out, size_t size, const char *a1,
               const char *a2)
{
    const char *args[] = {a1, a2, NULL};

    return run_args(dir, extra_env, out, size, args);
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
    assert_non_null(strstr(out, init_file()));
    test_rmrf(dir);
}

static void test_edited_applied_migration_is_refused_naming_the_file(void **state)
{
    char dir[256], out[8192], file[600];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    copy_migrations(dir);
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    snprintf(file, sizeof(file), "%s/migrations/catalog/%s", dir, init_file());
    append(file, "\n-- an innocent-looking edit\n");
    assert_int_not_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    assert_non_null(strstr(out, init_file()));
    /* serve refuses too, for the same reason. */
    assert_int_not_equal(run(dir, "CLEAVE_LISTEN=127.0.0.1:0", out, sizeof(out), "serve", NULL), 0);
    assert_non_null(strstr(out, init_file()));
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

/* `seed --limit N`: the demo's first N products and their stock; a bad N is refused. */
static void test_seed_limit_and_a_bad_one(void **state)
{
    static const char *const bad[] = {"0", "-3", "abc", "3x", "", "99999999999"};
    char dir[256], out[8192];

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    copy_migrations(dir);
    assert_int_equal(run(dir, NULL, out, sizeof(out), "migrate", NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {"seed", "--limit", bad[i], NULL};
        char want[64];

        assert_int_equal(run_args(dir, NULL, out, sizeof(out), args), 2);
        snprintf(want, sizeof(want), "--limit: '%s' is not a number", bad[i]);
        if (strstr(out, want) == NULL) {
            fail_msg("seed --limit '%s': %s", bad[i], out);
        }
    }
    /* Nothing was seeded by the refused runs. */
    {
        const char *args[] = {"seed", "--limit", "3", NULL};

        assert_int_equal(run_args(dir, NULL, out, sizeof(out), args), 0);
        assert_non_null(strstr(out, "catalog: created 3 demo records"));
        assert_non_null(strstr(out, "inventory: created 3 demo records"));
    }
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
    /* From cleave_module(orders DEPENDS ...), the one place dependencies are declared. */
    assert_non_null(strstr(out, "orders --> payments"));
    /* Event edges, from the subscribers' declarations: publisher -. event .-> subscriber. */
    assert_non_null(strstr(out, "orders -. order_confirmed .-> shipping"));
    assert_non_null(strstr(out, "catalog -. product_created .-> inventory"));
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
        cmocka_unit_test_setup_teardown(test_migrate_status_lists_applied_migrations, pg_setup,
                                        pg_teardown),
        cmocka_unit_test_setup_teardown(test_edited_applied_migration_is_refused_naming_the_file,
                                        pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_bad_configuration_stops_start_up_naming_the_key,
                                        pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_seed_limit_and_a_bad_one, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_modules_and_version, pg_setup, pg_teardown),
        cmocka_unit_test(test_readyz_names_the_module_with_pending_migrations),
    };

    topology_bin("cleave", bin, sizeof(bin));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
