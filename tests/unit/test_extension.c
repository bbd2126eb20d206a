/*
 * Optional subsystems register themselves (cleave/extension.h): a setting that asks for
 * one a binary lacks is an error naming its library; once registered, it is found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cleave/bus.h"
#include "cleave/extension.h"

static cl_config *config_with_nats(void)
{
    char *env[] = {"CLEAVE_NATS_URL=nats://127.0.0.1:1", NULL};
    const cl_settings *const owners[] = {NULL};
    cl_config *cfg = NULL;
    cl_error err = {0};

    assert_int_equal(cl_config_load(NULL, env, owners, &cfg, &err), CL_OK);
    return cfg;
}

static void test_nats_url_without_the_nats_extension_names_cleave_nats(void **state)
{
    cl_config *cfg = config_with_nats();
    cl_bus *bus = NULL;
    cl_error err = {0};

    (void)state;
    assert_int_equal(cl_bus_new(cfg, &bus, &err), CL_INVALID);
    assert_null(bus);
    assert_string_equal(err.field, "CLEAVE_NATS_URL");
    assert_non_null(strstr(err.message, "built without cleave_nats"));

    /* Registered (as the generated wiring does), the same setting is accepted. */
    assert_int_equal(cl_extension_register(&cl_nats_extension, &err), CL_OK);
    assert_int_equal(cl_bus_new(cfg, &bus, &err), CL_OK);
    assert_string_equal(cl_bus_transport(bus), "nats");
    cl_bus_free(bus);
    cl_config_free(cfg);
}

static void test_register_is_idempotent_and_bounded(void **state)
{
    static const int impl = 1;
    static cl_extension many[CL_MAX_EXTENSIONS + 1];
    static char names[CL_MAX_EXTENSIONS + 1][8];
    const void *found = NULL;
    cl_error err = {0};
    int i;

    (void)state;
    assert_int_equal(cl_extension_register(&cl_postgres_extension, &err), CL_OK);
    assert_int_equal(cl_extension_register(&cl_postgres_extension, &err), CL_OK);
    assert_ptr_equal(cl_extension_find("db", "postgres"), cl_postgres_extension.impl);
    assert_null(cl_extension_find("bus", "postgres"));
    assert_int_equal(cl_extension_require("db", "mysql", "CLEAVE_DATABASE_URL", &found, &err),
                     CL_INVALID);
    assert_null(found);
    assert_non_null(strstr(err.message, "cleave_mysql"));
    assert_int_equal(cl_extension_register(&(cl_extension){"db", "x", NULL}, &err), CL_INVALID);

    /* The table holds CL_MAX_EXTENSIONS entries; one more is refused, not dropped. */
    for (i = 0; i <= CL_MAX_EXTENSIONS; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        many[i] = (cl_extension){"test", names[i], &impl};
        if (cl_extension_register(&many[i], &err) != CL_OK) {
            break;
        }
    }
    assert_true(i < CL_MAX_EXTENSIONS);
    assert_int_equal(err.status, CL_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nats_url_without_the_nats_extension_names_cleave_nats),
        cmocka_unit_test(test_register_is_idempotent_and_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
