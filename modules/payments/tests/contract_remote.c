/*
 * The payments module's contract suite against the remote binding: every test talks to a real
 * cleave-payments process of its own (fresh data directory and database, loopback port,
 * service token) through the generated client stub. Same assertions as the local run.
 * Besides, what only the remote binding has: the service's own door for an over-long key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "contract.h"
#include "test_module.h"

static test_service service;

static const cl_handle *remote_setup(void)
{
    return test_service_start(&service, &payments_api, NULL) == 0 ? &service.handle : NULL;
}

static void remote_teardown(void)
{
    test_service_stop(&service);
}

/*
 * A key one byte over CL_IDEMPOTENCY_KEY_MAX, sent straight to the RPC endpoint, is
 * refused naming Idempotency-Key: cut to the limit it would silently be another key.
 */
static void test_rpc_refuses_a_key_over_the_limit(void **state)
{
    char key[CL_IDEMPOTENCY_KEY_MAX + 2];
    char key_header[sizeof(key) + 32];
    const char *headers[] = {"Authorization: Bearer " TEST_SERVICE_TOKEN, key_header, NULL};
    static const char body[] = "{\"account_id\":\"acc-1\",\"amount\":{\"amount\":5,"
                               "\"currency\":\"EUR\"}}";
    const char *name;
    test_resp r = {0};

    (void)state;
    assert_non_null(remote_setup());
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(key_header, sizeof(key_header), "Idempotency-Key: %s", key);
    assert_int_equal(
        test_http(service.url, "POST", "/rpc/v1/payments/deposit", body, strlen(body), headers, &r),
        0);
    assert_true(test_is_problem(&r, 400));
    name = json_string_value(
        json_object_get(json_array_get(json_object_get(r.json, "invalid_params"), 0), "name"));
    assert_non_null(name);
    assert_string_equal(name, "Idempotency-Key");
    test_resp_free(&r);
    remote_teardown();
}

int main(void)
{
    const struct CMUnitTest remote_only[] = {
        cmocka_unit_test(test_rpc_refuses_a_key_over_the_limit),
    };
    int failed = payments_contract_run("payments_contract_remote", remote_setup, remote_teardown);

    failed |= cmocka_run_group_tests_name("payments_remote_only", remote_only, NULL, NULL);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
