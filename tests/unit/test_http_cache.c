/*
 * Content coding and caching over real HTTP (ADR 0040): a server on 127.0.0.1:0 driven by
 * the test client with curl's decoding off (test_http_raw), so that the test sees the
 * bytes on the wire; gzipped bodies are decoded by Python's gzip module, a decoder
 * independent of our zlib use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include "cleave/http.h"
#include "client.h"
#include "proc.h"

/* --- the client ------------------------------------------------------------------------- */

static char g_base[64];     /* the server with gzip on */
static char g_base_off[64]; /* and the one with gzip off */

/* Sends method path to base with the header lines in hdr (NULL-terminated, may be NULL). */
static void ask(const char *base, const char *method, const char *path, const char *const *hdr,
                test_resp *r)
{
    const char *body = strcmp(method, "POST") == 0 ? "{}" : NULL;

    assert_int_equal(test_http_raw(base, method, path, body, body != NULL ? 2 : 0, hdr, r), 0);
}

static void ask_with(const char *base, const char *method, const char *path, const char *h1,
                     test_resp *r)
{
    const char *hdr[] = {h1, NULL};
    ask(base, method, path, hdr, r);
}

/* Writes data[0..len) to a new temporary file; its name into path (a mkstemp template). */
static void write_temp(char *path, const char *data, size_t len)
{
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/*
 * Whether Python's gzip module decodes gz[0..gz_len) (checking its CRC and length) into
 * exactly plain[0..plain_len): a decoder independent of the server's zlib use.
 */
static int python_gunzips_to(const char *gz, size_t gz_len, const char *plain, size_t plain_len)
{
    char gz_path[] = "/tmp/cleave-gzip-XXXXXX";
    char plain_path[] = "/tmp/cleave-plain-XXXXXX";
    char out[4096];
    static char script[] = "import gzip,sys\n"
                           "got = gzip.decompress(open(sys.argv[1], 'rb').read())\n"
                           "sys.exit(0 if got == open(sys.argv[2], 'rb').read() else 3)\n";
    char *argv[] = {"python3", "-c", script, gz_path, plain_path, NULL};
    int rc;

    write_temp(gz_path, gz, gz_len);
    write_temp(plain_path, plain, plain_len);
    rc = test_run("/usr/bin/python3", argv, NULL, out, sizeof(out));
    unlink(gz_path);
    unlink(plain_path);
    if (rc != 0) {
        print_error("python3 exited %d: %s\n", rc, out);
    }
    return rc == 0;
}

/* --- the server -------------------------------------------------------------------------- */

/* A JSON text of about len bytes: what a product list looks like, repetitive keys. */
static char *json_of(size_t len)
{
    json_t *items = json_array();
    char *text;

    for (int i = 0; json_dumpb(items, NULL, 0, JSON_COMPACT) < len; i++) {
        json_array_append_new(items, json_pack("{s:i,s:s,s:s,s:{s:i,s:s}}", "id", i, "name",
                                               "Widget", "category", "tools", "price", "amount",
                                               100 + i, "currency", "EUR"));
    }
    text = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    return text;
}

/* /json?n=<bytes>: a JSON body of about n bytes; /text, /octets: 4 KiB of that type. */
static void h_json(cl_http_req *req, void *arg)
{
    int64_t n = 2048;
    char *text;

    (void)arg;
    if (cl_http_query_int(req, "n", 1, 1 << 22, &n) < 0) {
        return;
    }
    text = json_of((size_t)n);
    cl_http_reply_bytes(req, 200, "application/json", text, strlen(text));
    free(text);
}

static void h_typed(cl_http_req *req, void *arg)
{
    char *text = json_of(4096);

    cl_http_reply_bytes(req, 200, arg, text, strlen(text));
    free(text);
}

static void h_none(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_empty(req, 204);
}

/* A problem of more than 1 KiB (its detail is long). */
static void h_big_problem(cl_http_req *req, void *arg)
{
    char detail[1000];

    (void)arg;
    memset(detail, 'x', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    cl_http_reply_problem(req, 409, "conflict", "Conflict", detail,
                          json_pack("{s:s}", "more", detail));
}

/* /cached?v=<n>: a cacheable read whose body (and so its ETag) changes with v. */
static void h_cached(cl_http_req *req, void *arg)
{
    int64_t v = 1;
    char *text;
    json_t *body;

    (void)arg;
    if (cl_http_query_int(req, "v", 1, 1000, &v) < 0) {
        return;
    }
    text = json_of(64);
    body = json_pack("{s:I,s:s}", "v", (json_int_t)v, "pad", text);
    free(text);
    cl_http_cache_public(req, 7);
    cl_http_reply_json(req, 200, body);
}

/* /versioned?v=<n>: a cacheable read of 2 KiB whose ETag is the handler's "v<n>". */
static void h_versioned(cl_http_req *req, void *arg)
{
    int64_t v = 1;
    char tag[32];
    char *text = json_of(2048);

    (void)arg;
    if (cl_http_query_int(req, "v", 1, 1000, &v) < 0) {
        free(text);
        return;
    }
    snprintf(tag, sizeof(tag), "\"v%d\"", (int)v);
    cl_http_set_header(req, "ETag", tag);
    cl_http_cache_public(req, 0);
    cl_http_reply_bytes(req, 200, "application/json", text, strlen(text));
    free(text);
}

/* A cacheable read that fails: 404, whatever it said about caching. */
static void h_cached_missing(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_cache_public(req, 60);
    cl_http_set_header(req, "Cache-Control", "public, max-age=60");
    cl_http_reply_problem(req, 404, "not-found", "Not Found", "no such thing", NULL);
}

/* A handler with its own Cache-Control. */
static void h_own_policy(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_set_header(req, "Cache-Control", "public, max-age=300");
    cl_http_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static cl_router *g_router;
static cl_http_server *g_on;
static cl_http_server *g_off;

static int group_setup(void **state)
{
    const cl_route routes[] = {
        {"GET", "/json", CL_PERM_PUBLIC, h_json, NULL, "n"},
        {"GET", "/text", CL_PERM_PUBLIC, h_typed, "text/plain; charset=utf-8", NULL},
        {"GET", "/octets", CL_PERM_PUBLIC, h_typed, "application/octet-stream", NULL},
        {"GET", "/none", CL_PERM_PUBLIC, h_none, NULL, NULL},
        {"GET", "/big-problem", CL_PERM_PUBLIC, h_big_problem, NULL, NULL},
        {"GET", "/cached", CL_PERM_PUBLIC, h_cached, NULL, "v"},
        {"POST", "/cached", CL_PERM_PUBLIC, h_cached, NULL, "v"},
        {"GET", "/versioned", CL_PERM_PUBLIC, h_versioned, NULL, "v"},
        {"GET", "/cached-missing", CL_PERM_PUBLIC, h_cached_missing, NULL, NULL},
        {"GET", "/own-policy", CL_PERM_PUBLIC, h_own_policy, NULL, NULL},
    };
    cl_http_options on = {.listen = "127.0.0.1:0", .threads = 2, .service = "test"};
    cl_http_options off = {.listen = "127.0.0.1:0", .threads = 2, .service = "test", .gzip_off = 1};
    cl_error err;

    (void)state;
    g_router = cl_router_new();
    assert_non_null(g_router);
    assert_int_equal(cl_router_add_all(g_router, routes, sizeof(routes) / sizeof(routes[0]), &err),
                     CL_OK);
    if (cl_http_start(&on, g_router, &g_on, &err) != CL_OK ||
        cl_http_start(&off, g_router, &g_off, &err) != CL_OK) {
        fail_msg("start: %s", err.message);
    }
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", cl_http_port(g_on));
    snprintf(g_base_off, sizeof(g_base_off), "http://127.0.0.1:%d", cl_http_port(g_off));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_http_thread_done();
    cl_http_stop(g_on);
    cl_http_stop(g_off);
    cl_router_free(g_router);
    return 0;
}

/* --- content coding ---------------------------------------------------------------------- */

static void test_large_json_is_gzipped_for_a_client_that_accepts_it(void **state)
{
    test_resp plain;
    test_resp gz;
    char length[32];

    (void)state;
    ask(g_base, "GET", "/json?n=20000", NULL, &plain);
    ask_with(g_base, "GET", "/json?n=20000", "Accept-Encoding: gzip", &gz);
    assert_int_equal(plain.status, 200);
    assert_string_equal(plain.content_encoding, "");
    /* Whether it is gzipped depends on Accept-Encoding, even when it is not. */
    assert_string_equal(plain.vary, "Accept-Encoding");
    assert_int_equal(gz.status, 200);
    assert_string_equal(gz.content_encoding, "gzip");
    assert_string_equal(gz.vary, "Accept-Encoding");
    assert_string_equal(gz.content_type, "application/json");
    snprintf(length, sizeof(length), "%zu", gz.body_len);
    assert_string_equal(gz.content_length, length);
    assert_true(gz.body_len * 4 < plain.body_len); /* repetitive JSON shrinks a lot */
    assert_true(python_gunzips_to(gz.body, gz.body_len, plain.body, plain.body_len));
    test_resp_free(&plain);
    test_resp_free(&gz);
}

static void test_accept_encoding_qvalues_decide(void **state)
{
    static const struct {
        const char *header;
        int gzip;
    } cases[] = {
        {"Accept-Encoding: gzip", 1},
        {"Accept-Encoding: GZIP", 1},
        {"Accept-Encoding: x-gzip", 1},
        {"Accept-Encoding: br, gzip;q=0.5", 1},
        {"Accept-Encoding: gzip ; q=0.001", 1},
        {"Accept-Encoding: gzip;Q=1.000", 1},
        {"Accept-Encoding: *", 1},
        {"Accept-Encoding: identity;q=0.5, *;q=0.1", 1},
        {"Accept-Encoding: gzip;q=0", 0},
        {"Accept-Encoding: gzip;q=0.000", 0},
        {"Accept-Encoding: *;q=0", 0},
        {"Accept-Encoding: *, gzip;q=0", 0},
        {"Accept-Encoding: gzip;q=0, *", 0},
        {"Accept-Encoding: identity", 0},
        {"Accept-Encoding: deflate, br", 0},
        {"Accept-Encoding: gzipper", 0},
        {"Accept-Encoding: gzip;q=1.5", 0},    /* not a qvalue: accepts nothing */
        {"Accept-Encoding: gzip;q=0.0001", 0}, /* at most three decimals */
        {"Accept-Encoding: gzip;q=", 0},
        {NULL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_resp r;
        int gzipped;

        ask_with(g_base, "GET", "/json?n=4096", cases[i].header, &r);
        gzipped = strcmp(r.content_encoding, "gzip") == 0;
        if (gzipped != cases[i].gzip) {
            fail_msg("%s: gzipped %d, want %d", cases[i].header ? cases[i].header : "(none)",
                     gzipped, cases[i].gzip);
        }
        assert_true(gzipped || r.content_encoding[0] == '\0');
        test_resp_free(&r);
    }
}

#define RID "0123456789abcdef0123456789abcdef"

static void test_only_bodies_worth_it_are_gzipped(void **state)
{
    static const struct {
        const char *method;
        const char *path;
        long status;
        int gzip;
        int vary;
    } cases[] = {
        {"GET", "/json?n=900", 200, 0, 0},   /* under 1 KiB: not worth a round of zlib */
        {"GET", "/json?n=1100", 200, 1, 1},  /* over it */
        {"GET", "/text", 200, 1, 1},         /* text/plain with parameters */
        {"GET", "/octets", 200, 0, 0},       /* not a type that compresses */
        {"GET", "/big-problem", 409, 1, 1},  /* problem+json */
        {"GET", "/none", 204, 0, 0},         /* no body */
        {"HEAD", "/json?n=4096", 200, 0, 1}, /* no body sent: its headers describe identity */
    };
    /* One request id for both: a problem quotes it, and the bodies must be equal. */
    const char *gzip_h[] = {"Accept-Encoding: gzip", "X-Request-Id: " RID, NULL};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_resp r;

        ask(g_base, cases[i].method, cases[i].path, gzip_h, &r);
        if (r.status != cases[i].status ||
            (strcmp(r.content_encoding, "gzip") == 0) != cases[i].gzip ||
            (strcmp(r.vary, "Accept-Encoding") == 0) != cases[i].vary) {
            fail_msg("%s %s: status %ld, Content-Encoding \"%s\", Vary \"%s\"", cases[i].method,
                     cases[i].path, r.status, r.content_encoding, r.vary);
        }
        if (cases[i].gzip) {
            test_resp plain;
            ask_with(g_base, cases[i].method, cases[i].path, "X-Request-Id: " RID, &plain);
            assert_true(plain.body_len >= 1024);
            assert_true(python_gunzips_to(r.body, r.body_len, plain.body, plain.body_len));
            test_resp_free(&plain);
        }
        test_resp_free(&r);
    }
}

static void test_head_states_the_identity_length(void **state)
{
    test_resp get;
    test_resp head;
    char length[32];

    (void)state;
    ask(g_base, "GET", "/json?n=4096", NULL, &get);
    ask_with(g_base, "HEAD", "/json?n=4096", "Accept-Encoding: gzip", &head);
    snprintf(length, sizeof(length), "%zu", get.body_len);
    assert_string_equal(head.content_length, length);
    assert_int_equal(head.body_len, 0);
    test_resp_free(&get);
    test_resp_free(&head);
}

static void test_gzip_can_be_turned_off(void **state)
{
    test_resp r;

    (void)state;
    ask_with(g_base_off, "GET", "/json?n=20000", "Accept-Encoding: gzip", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_encoding, "");
    assert_string_equal(r.vary, "");
    assert_non_null(strstr(r.body, "\"Widget\""));
    test_resp_free(&r);
}

/* --- validators and Cache-Control -------------------------------------------------------- */

static void test_cacheable_read_has_etag_and_a_matching_one_gets_304(void **state)
{
    test_resp first;
    char line[256];
    /* Each list as the text before and after the tag. */
    const char *lists[][2] = {{"If-None-Match: ", ""},
                              {"If-None-Match: \"other\", ", ""},
                              {"If-None-Match: W/", ""},
                              {"If-None-Match: \"a\",,", " , \"b\""}};

    (void)state;
    ask(g_base, "GET", "/cached?v=1", NULL, &first);
    assert_int_equal(first.status, 200);
    assert_true(first.etag[0] == '"' && strlen(first.etag) == 34); /* strong, 32 hex digits */
    assert_string_equal(first.cache_control, "public, max-age=7");
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        test_resp again;
        snprintf(line, sizeof(line), "%s%s%s", lists[i][0], first.etag, lists[i][1]);
        ask_with(g_base, "GET", "/cached?v=1", line, &again);
        if (again.status != 304) {
            fail_msg("%s: %ld", line, again.status);
        }
        assert_int_equal(again.body_len, 0);
        assert_string_equal(again.content_length, "");
        assert_string_equal(again.content_type, "");
        assert_string_equal(again.etag, first.etag);
        assert_string_equal(again.cache_control, "public, max-age=7");
        test_resp_free(&again);
    }
    test_resp_free(&first);
}

static void test_star_matches_and_other_tags_do_not(void **state)
{
    test_resp star;
    test_resp other;

    (void)state;
    ask_with(g_base, "GET", "/cached?v=1", "If-None-Match: *", &star);
    ask_with(g_base, "GET", "/cached?v=1", "If-None-Match: \"nope\", W/\"no\"", &other);
    assert_int_equal(star.status, 304);
    assert_int_equal(other.status, 200);
    assert_true(other.body_len > 0);
    test_resp_free(&star);
    test_resp_free(&other);
}

static void test_changed_body_gets_a_new_etag_and_200(void **state)
{
    test_resp v1;
    test_resp v2;
    char line[256];

    (void)state;
    ask(g_base, "GET", "/cached?v=1", NULL, &v1);
    assert_true(v1.etag[0] == '"');
    snprintf(line, sizeof(line), "If-None-Match: %s", v1.etag);
    ask_with(g_base, "GET", "/cached?v=2", line, &v2);
    assert_int_equal(v2.status, 200);
    assert_true(v2.etag[0] == '"');
    assert_string_not_equal(v1.etag, v2.etag);
    test_resp_free(&v1);
    test_resp_free(&v2);
}

static void test_gzipped_answer_has_its_own_strong_etag(void **state)
{
    test_resp plain;
    test_resp gz;
    test_resp r;
    const char *gz_match[] = {"Accept-Encoding: gzip", "If-None-Match: \"v3-gzip\"", NULL};
    const char *plain_tag_gz[] = {"Accept-Encoding: gzip", "If-None-Match: \"v3\"", NULL};

    (void)state;
    ask(g_base, "GET", "/versioned?v=3", NULL, &plain);
    ask_with(g_base, "GET", "/versioned?v=3", "Accept-Encoding: gzip", &gz);
    assert_string_equal(plain.etag, "\"v3\"");
    assert_string_equal(plain.cache_control, "public, max-age=0");
    assert_string_equal(gz.content_encoding, "gzip");
    assert_string_equal(gz.etag, "\"v3-gzip\"");
    /* Each representation is revalidated with its own tag. */
    ask(g_base, "GET", "/versioned?v=3", gz_match, &r);
    assert_int_equal(r.status, 304);
    assert_string_equal(r.etag, "\"v3-gzip\"");
    assert_string_equal(r.vary, "Accept-Encoding");
    assert_string_equal(r.content_encoding, "");
    test_resp_free(&r);
    ask(g_base, "GET", "/versioned?v=3", plain_tag_gz, &r);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    ask_with(g_base, "GET", "/versioned?v=3", "If-None-Match: \"v3\"", &r);
    assert_int_equal(r.status, 304);
    test_resp_free(&r);
    test_resp_free(&plain);
    test_resp_free(&gz);
}

static void test_malformed_if_none_match_is_400(void **state)
{
    const char *bad[] = {"If-None-Match: v3", "If-None-Match: \"v3", "If-None-Match: \"a\" \"b\"",
                         "If-None-Match: *, \"a\"", "If-None-Match: w/\"a\""};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        test_resp r;
        json_t *param;

        ask_with(g_base, "GET", "/cached", bad[i], &r);
        if (!test_is_problem(&r, 400)) {
            fail_msg("%s: %ld", bad[i], r.status);
        }
        param = json_array_get(json_object_get(r.json, "invalid_params"), 0);
        assert_string_equal(json_string_value(json_object_get(param, "name")), "If-None-Match");
        assert_string_equal(r.cache_control, "no-store");
        test_resp_free(&r);
    }
}

static void test_cache_control_elsewhere_is_no_store(void **state)
{
    test_resp post, plain, missing, own, problem;

    (void)state;
    ask_with(g_base, "POST", "/cached", "If-None-Match: *", &post);
    ask(g_base, "GET", "/json?n=10", NULL, &plain);
    ask(g_base, "GET", "/cached-missing", NULL, &missing);
    ask(g_base, "GET", "/own-policy", NULL, &own);
    ask(g_base, "GET", "/big-problem", NULL, &problem);
    /* Only a read is cacheable; a POST runs whatever its If-None-Match says. */
    assert_int_equal(post.status, 200);
    assert_string_equal(post.cache_control, "no-store");
    assert_string_equal(post.etag, "");
    assert_string_equal(plain.cache_control, "no-store");
    assert_string_equal(plain.etag, "");
    /* An error is never kept, whatever the handler said. */
    assert_int_equal(missing.status, 404);
    assert_string_equal(missing.cache_control, "no-store");
    assert_string_equal(missing.etag, "");
    assert_string_equal(own.cache_control, "public, max-age=300");
    assert_string_equal(problem.cache_control, "no-store");
    test_resp_free(&post);
    test_resp_free(&plain);
    test_resp_free(&missing);
    test_resp_free(&own);
    test_resp_free(&problem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_json_is_gzipped_for_a_client_that_accepts_it),
        cmocka_unit_test(test_accept_encoding_qvalues_decide),
        cmocka_unit_test(test_only_bodies_worth_it_are_gzipped),
        cmocka_unit_test(test_head_states_the_identity_length),
        cmocka_unit_test(test_gzip_can_be_turned_off),
        cmocka_unit_test(test_cacheable_read_has_etag_and_a_matching_one_gets_304),
        cmocka_unit_test(test_star_matches_and_other_tags_do_not),
        cmocka_unit_test(test_changed_body_gets_a_new_etag_and_200),
        cmocka_unit_test(test_gzipped_answer_has_its_own_strong_etag),
        cmocka_unit_test(test_malformed_if_none_match_is_400),
        cmocka_unit_test(test_cache_control_elsewhere_is_no_store),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
