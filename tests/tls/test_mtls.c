/*
 * Mutual TLS between the host and a service (ADR 0035): a real
 * cleave-inventory serving with CLEAVE_TLS_CERT, _KEY and _CLIENT_CA, and a throwaway CA,
 * server and client certificates made by the openssl command in a temporary directory
 * (tls_certs.h).
 *
 *   - the remote binding with the CA's client certificate calls operations, over
 *     connections that stay open between requests;
 *   - a client without a certificate, or with one from another CA, fails the TLS
 *     handshake: a TLS error from curl and no HTTP answer at all (never a 401);
 *   - plain HTTP to the TLS port gets no HTTP answer;
 *   - a server with TLS half configured, or with a file it cannot use, refuses to start
 *     and names the setting; a client half configured is refused too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "inventory/inventory.h"
#include "proc.h"
#include "test_module.h"
#include "tls_certs.h"

#define PATH_LEN 320

static char dir[256];
static test_service svc;

/* <dir>/<name>.<ext> into buf[PATH_LEN]. */
static void file_in(char *buf, const char *name, const char *ext)
{
    test_tls_file(buf, PATH_LEN, dir, name, ext);
}

/* "KEY=<dir>/<name>.<ext>" into a static slot of 8, for a service's environment. */
static char *setting(const char *key, const char *name, const char *ext)
{
    static char slots[8][PATH_LEN + 40];
    static int next;
    char *s = slots[next++ % 8];

    return test_tls_setting(s, sizeof(slots[0]), key, dir, name, ext);
}

static int setup(void **state)
{
    char *env[7];

    (void)state;
    if (test_tmpdir(dir, sizeof(dir)) != 0 || test_tls_make(dir) != 0) {
        return -1;
    }
    env[0] = setting("CLEAVE_TLS_CERT", "server", "crt");
    env[1] = setting("CLEAVE_TLS_KEY", "server", "key");
    env[2] = setting("CLEAVE_TLS_CLIENT_CA", "ca", "crt");
    env[3] = setting("CLEAVE_TLS_CLIENT_CERT", "host", "crt");
    env[4] = setting("CLEAVE_TLS_CLIENT_KEY", "host", "key");
    env[5] = setting("CLEAVE_TLS_CA", "ca", "crt");
    env[6] = NULL;
    return test_service_start(&svc, &inventory_api, env);
}

static int teardown(void **state)
{
    (void)state;
    test_service_stop(&svc);
    if (dir[0] != '\0') {
        test_rmrf(dir);
    }
    return 0;
}

/*
 * GET <url>/healthz with the client certificate <client> (NULL: none), trusting our CA;
 * tls12 caps the protocol at TLS 1.2, where the server refuses a client inside the
 * handshake itself (with TLS 1.3 the refusal reaches the client after it). Returns curl's
 * code; *http is the HTTP status, 0 when no HTTP answer came.
 */
static CURLcode get_healthz(const char *url, const char *client, int tls12, long *http)
{
    char target[128], ca[PATH_LEN], crt[PATH_LEN], key[PATH_LEN];
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    FILE *sink = fopen("/dev/null", "w");
    CURLcode rc;

    assert_non_null(h);
    assert_non_null(sink);
    snprintf(target, sizeof(target), "%s/healthz", url);
    file_in(ca, "ca", "crt");
    curl_easy_setopt(h, CURLOPT_URL, target);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (client != NULL) {
        file_in(crt, client, "crt");
        file_in(key, client, "key");
        curl_easy_setopt(h, CURLOPT_SSLCERT, crt);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    if (tls12) {
        curl_easy_setopt(h, CURLOPT_SSLVERSION,
                         (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    }
    rc = curl_easy_perform(h);
    *http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
    fprintf(stderr, "GET %s as %s%s: %s (%s), HTTP %ld\n", target,
            client != NULL ? client : "nobody", tls12 ? " over TLS 1.2" : "",
            curl_easy_strerror(rc), errbuf, *http);
    curl_easy_cleanup(h);
    fclose(sink);
    return rc;
}

/* A TLS failure during or right after the handshake, as curl reports one for TLS 1.3. */
static int handshake_failure(CURLcode rc)
{
    return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR;
}

/* get_stock of sku through a remote binding to the service presenting client (NULL: none). */
static cl_status get_stock_as(const char *client, cl_ctx *ctx)
{
    char crt[PATH_LEN], key[PATH_LEN], ca[PATH_LEN];
    cl_rpc_options opt = {.dev_token = TEST_SERVICE_TOKEN, .retry_max_attempts = 1};
    cl_rpc_client *c = NULL;
    cl_error err = {0};
    inventory_sku_ref ref = {.sku = "MUG-1"};
    inventory_stock s = {0};
    cl_handle handle;
    cl_status st;

    file_in(ca, "ca", "crt");
    opt.tls_ca = ca;
    if (client != NULL) {
        file_in(crt, client, "crt");
        file_in(key, client, "key");
        opt.tls_cert = crt;
        opt.tls_key = key;
    }
    if (cl_rpc_client_new("inventory", svc.url, &opt, &c, &err) != CL_OK) {
        fail_msg("%s", err.message);
    }
    handle = (cl_handle){inventory_api.remote_ops, c};
    st = inventory_get_stock(&handle, ctx, &ref, &s);
    cl_schema_free(&inventory_stock_type, &s);
    cl_rpc_client_free(c);
    return st;
}

static void test_mtls_remote_binding_with_client_certificate_works(void **state)
{
    inventory_stock_set in = {.sku = "MUG-1", .on_hand = 7};
    inventory_stock s = {0};
    cl_ctx ctx = test_contract_ctx();
    cl_error err = {0};

    (void)state;
    assert_memory_equal(svc.url, "https://", 8);
    assert_int_equal(inventory_set_stock(&svc.handle, &ctx, &in, &s), CL_OK);
    cl_schema_free(&inventory_stock_type, &s);
    ctx = test_contract_ctx();
    assert_int_equal(get_stock_as("host", &ctx), CL_OK);
    assert_int_equal(cl_rpc_ready(svc.client, 5000, &err), CL_OK);
}

/* curl reuses a TLS connection to the service: the second request opens none. */
static void test_mtls_connection_is_kept_alive(void **state)
{
    char target[128], ca[PATH_LEN], crt[PATH_LEN], key[PATH_LEN];
    CURL *h = curl_easy_init();
    FILE *sink = fopen("/dev/null", "w");
    long opened = -1;
    long http = 0;

    (void)state;
    assert_non_null(h);
    assert_non_null(sink);
    snprintf(target, sizeof(target), "%s/healthz", svc.url);
    file_in(ca, "ca", "crt");
    file_in(crt, "host", "crt");
    file_in(key, "host", "key");
    curl_easy_setopt(h, CURLOPT_URL, target);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, crt);
    curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
        assert_int_equal(http, 200);
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &opened);
        assert_int_equal(opened, i == 0 ? 1 : 0);
    }
    curl_easy_cleanup(h);
    fclose(sink);
}

static void test_mtls_without_client_certificate_fails_handshake(void **state)
{
    long http = -1;
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    assert_int_equal(get_healthz(svc.url, NULL, 1, &http), CURLE_SSL_CONNECT_ERROR);
    assert_int_equal(http, 0);
    assert_true(handshake_failure(get_healthz(svc.url, NULL, 0, &http)));
    assert_int_equal(http, 0);
    /* The remote binding gets no answer to map either: unavailable, not unauthenticated. */
    assert_int_equal(get_stock_as(NULL, &ctx), CL_UNAVAILABLE);
    assert_non_null(strstr(ctx.err.message, "unreachable"));
}

static void test_mtls_client_certificate_of_another_ca_fails_handshake(void **state)
{
    long http = -1;
    cl_ctx ctx = test_contract_ctx();

    (void)state;
    assert_int_equal(get_healthz(svc.url, "stranger", 1, &http), CURLE_SSL_CONNECT_ERROR);
    assert_int_equal(http, 0);
    assert_true(handshake_failure(get_healthz(svc.url, "stranger", 0, &http)));
    assert_int_equal(http, 0);
    assert_int_equal(get_stock_as("stranger", &ctx), CL_UNAVAILABLE);
}

static void test_mtls_plain_http_gets_no_answer(void **state)
{
    char plain[80];
    long http = -1;
    int n;

    (void)state;
    n = snprintf(plain, sizeof(plain), "http://%s", svc.url + strlen("https://"));
    assert_true(n > 0 && (size_t)n < sizeof(plain));
    assert_int_not_equal(get_healthz(plain, "host", 0, &http), CURLE_OK);
    assert_int_equal(http, 0);
}

/* Starts a second service with env; it must exit non-zero with a log naming setting. */
static void expect_refused(char *const *env, const char *setting_name)
{
    test_service bad;
    char log[8192] = "";
    char kept[256];
    FILE *f;
    size_t n;

    assert_int_equal(test_service_start(&bad, &inventory_api, env), -1);
    f = fopen(bad.log, "r");
    assert_non_null(f);
    n = fread(log, 1, sizeof(log) - 1, f);
    log[n] = '\0';
    fclose(f);
    snprintf(kept, sizeof(kept), "%s", bad.dir);
    assert_int_not_equal(test_service_stop(&bad), 0);
    test_rmrf(kept);
    if (strstr(log, setting_name) == NULL) {
        fail_msg("the refusal does not name %s:\n%s", setting_name, log);
    }
}

static void test_mtls_half_configured_server_refuses_to_start(void **state)
{
    char missing_ca[PATH_LEN + 40];
    char *cert_only[] = {setting("CLEAVE_TLS_CERT", "server", "crt"), NULL};
    char *no_ca[] = {setting("CLEAVE_TLS_CERT", "server", "crt"),
                     setting("CLEAVE_TLS_KEY", "server", "key"), missing_ca, NULL};
    char *wrong_key[] = {setting("CLEAVE_TLS_CERT", "server", "crt"),
                         setting("CLEAVE_TLS_KEY", "stranger", "key"),
                         setting("CLEAVE_TLS_CLIENT_CA", "ca", "crt"), NULL};

    (void)state;
    snprintf(missing_ca, sizeof(missing_ca), "CLEAVE_TLS_CLIENT_CA=%s/no-such-ca.crt", dir);
    expect_refused(cert_only, "CLEAVE_TLS_KEY is not set");
    expect_refused(no_ca, "CLEAVE_TLS_CLIENT_CA: cannot read");
    expect_refused(wrong_key, "CLEAVE_TLS_KEY");
}

static void test_mtls_half_configured_client_is_refused(void **state)
{
    char crt[PATH_LEN];
    cl_rpc_options opt = {0};
    cl_rpc_client *c = NULL;
    cl_error err = {0};

    (void)state;
    file_in(crt, "host", "crt");
    opt.tls_cert = crt;
    assert_int_equal(cl_rpc_client_new("inventory", svc.url, &opt, &c, &err), CL_INVALID);
    assert_string_equal(err.field, "CLEAVE_TLS_CLIENT_KEY");
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mtls_remote_binding_with_client_certificate_works),
        cmocka_unit_test(test_mtls_connection_is_kept_alive),
        cmocka_unit_test(test_mtls_without_client_certificate_fails_handshake),
        cmocka_unit_test(test_mtls_client_certificate_of_another_ca_fails_handshake),
        cmocka_unit_test(test_mtls_plain_http_gets_no_answer),
        cmocka_unit_test(test_mtls_half_configured_server_refuses_to_start),
        cmocka_unit_test(test_mtls_half_configured_client_is_refused),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
