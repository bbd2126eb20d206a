/*
 * The lazy shims (platform/lazy, ADR 0047): a library only some deployments need is not
 * mapped until the process first calls it, and a call through the shim reaches the
 * library with its arguments intact - curl_easy_setopt's of each type included.
 *
 * This binary links the platform only (no test support, which links libcurl itself), so
 * libcurl is mapped exactly when the shim loads it.
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

static int find_object(struct dl_phdr_info *info, size_t size, void *name)
{
    (void)size;
    return strstr(info->dlpi_name, name) != NULL;
}

/* Whether a shared object whose path contains name is mapped into this process. */
static int mapped(const char *name)
{
    return dl_iterate_phdr(find_object, (void *)name);
}

static void test_lazy_library_is_mapped_at_its_first_call_only(void **state)
{
    (void)state;
    /* Nothing of libcurl, nor of what it links, is there before a call. */
    assert_false(mapped("libcurl.so"));
    assert_false(mapped("libgnutls.so"));
    assert_false(mapped("libpq.so"));
    assert_false(mapped("libnats.so"));
    assert_false(mapped("libhiredis.so"));
    assert_string_equal(curl_easy_strerror(CURLE_OK), "No error");
    assert_true(mapped("libcurl.so"));
    /* The other shims' libraries stay unloaded: each loads its own only. */
    assert_false(mapped("libpq.so"));
    assert_false(mapped("libnats.so"));
}

typedef struct sink {
    char data[64];
    size_t len;
} sink;

static size_t collect(char *ptr, size_t size, size_t n, void *user)
{
    sink *s = user;
    size_t len = size * n;

    if (len > sizeof(s->data) - s->len) {
        return 0;
    }
    memcpy(s->data + s->len, ptr, len);
    s->len += len;
    return len;
}

/* A transfer of the file:// url from byte from on, its body collected in s. */
static CURLcode fetch(const char *url, curl_off_t from, sink *s)
{
    CURL *c = curl_easy_init();
    char *effective = NULL;
    long code = -1;
    CURLcode rc;

    assert_non_null(c);
    memset(s, 0, sizeof(*s));
    /* One option of each argument type: pointer, long, function pointer, curl_off_t. */
    assert_int_equal(curl_easy_setopt(c, CURLOPT_URL, url), CURLE_OK);
    assert_int_equal(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L), CURLE_OK);
    assert_int_equal(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect), CURLE_OK);
    assert_int_equal(curl_easy_setopt(c, CURLOPT_WRITEDATA, s), CURLE_OK);
    assert_int_equal(curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, from), CURLE_OK);
    rc = curl_easy_perform(c);
    /* getinfo's pointer to a string and to a long reach libcurl too. */
    assert_int_equal(curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective), CURLE_OK);
    assert_string_equal(effective, url);
    assert_int_equal(curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
    assert_int_equal(code, 0); /* file:// has no response code */
    curl_easy_cleanup(c);
    return rc;
}

static void test_lazy_curl_passes_every_argument_type_on(void **state)
{
    char path[] = "/tmp/cleave-lazy-XXXXXX";
    char url[64];
    sink s;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "lazy shim", 9), 9);
    close(fd);
    snprintf(url, sizeof(url), "file://%s", path);
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    /* The callback and its data pointer got the file, from the curl_off_t offset on. */
    assert_int_equal(fetch(url, 0, &s), CURLE_OK);
    assert_int_equal(s.len, 9);
    assert_memory_equal(s.data, "lazy shim", 9);
    assert_int_equal(fetch(url, 5, &s), CURLE_OK);
    assert_int_equal(s.len, 4);
    assert_memory_equal(s.data, "shim", 4);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_library_is_mapped_at_its_first_call_only),
        cmocka_unit_test(test_lazy_curl_passes_every_argument_type_on),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
