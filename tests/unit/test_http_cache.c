/*
 * Content coding and caching over real HTTP (ADR 0040): a server on 127.0.0.1:0 driven by
 * libcurl with its decoding off, so that the test sees the bytes on the wire; gzipped
 * bodies are decoded by Python's gzip module, a decoder independent of our zlib use.
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
#include <curl/curl.h>

#include "cleave/http.h"
#include "proc.h"

/* --- the client ------------------------------------------------------------------------- */

typedef struct answer {
    long status;
    char head[8192];
    size_t head_len;
    char *body;
    size_t body_len;
} answer;

static size_t take_body(char *data, size_t size, size_t nmemb, void *arg)
{
    answer *a = arg;
    size_t n = size * nmemb;
    char *grown = realloc(a->body, a->body_len + n + 1);

    if (grown == NULL) {
        return 0;
    }
    a->body = grown;
    memcpy(a->body + a->body_len, data, n);
    a->body_len += n;
    a->body[a->body_len] = '\0';
    return n;
}

static size_t take_head(char *data, size_t size, size_t nmemb, void *arg)
{
    answer *a = arg;
    size_t n = size * nmemb;

    if (a->head_len + n < sizeof(a->head)) {
        memcpy(a->head + a->head_len, data, n);
        a->head_len += n;
        a->head[a->head_len] = '\0';
    }
    return n;
}

/* The value of header name in a (copied into out[size]), or NULL when a has none. */
static const char *field(const answer *a, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);

    for (const char *line = a->head; *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);

        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1 + strspn(line + nlen + 1, " ");
            size_t vlen = (size_t)(line + len - v);
            if (vlen >= size) {
                vlen = size - 1;
            }
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        if (end == NULL) {
            break;
        }
        line = end + 2;
    }
    return NULL;
}

/* Sends method path to port with the header lines in hdr (NULL-terminated, may be NULL). */
static answer *ask(int port, const char *method, const char *path, const char *const *hdr)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    answer *a = calloc(1, sizeof(*a));
    char url[512];

    assert_non_null(curl);
    assert_non_null(a);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    for (size_t i = 0; hdr != NULL && hdr[i] != NULL; i++) {
        list = curl_slist_append(list, hdr[i]);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{}");
        list = curl_slist_append(list, "Content-Type: application/json");
    }
    /* The bytes as sent: curl must not undo a content coding. */
    curl_easy_setopt(curl, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, take_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, take_head);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return a;
}

static answer *ask_with(int port, const char *method, const char *path, const char *h1)
{
    const char *hdr[] = {h1, NULL};
    return ask(port, method, path, hdr);
}

static void answer_free(answer *a)
{
    if (a != NULL) {
        free(a->body);
        free(a);
    }
}

/* Whether a has header name with exactly value. */
static int has(const answer *a, const char *name, const char *value)
{
    char v[1024];
    return field(a, name, v, sizeof(v)) != NULL && strcmp(v, value) == 0;
}

static int lacks(const answer *a, const char *name)
{
    char v[1024];
    return field(a, name, v, sizeof(v)) == NULL;
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
static int g_port;
static int g_port_off;

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
    g_port = cl_http_port(g_on);
    g_port_off = cl_http_port(g_off);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cl_http_stop(g_on);
    cl_http_stop(g_off);
    cl_router_free(g_router);
    return 0;
}

/* --- content coding ---------------------------------------------------------------------- */

static void test_large_json_is_gzipped_for_a_client_that_accepts_it(void **state)
{
    answer *plain = ask(g_port, "GET", "/json?n=20000", NULL);
    answer *gz = ask_with(g_port, "GET", "/json?n=20000", "Accept-Encoding: gzip");
    char length[32];

    (void)state;
    assert_int_equal(plain->status, 200);
    assert_true(lacks(plain, "Content-Encoding"));
    /* Whether it is gzipped depends on Accept-Encoding, even when it is not. */
    assert_true(has(plain, "Vary", "Accept-Encoding"));
    assert_int_equal(gz->status, 200);
    assert_true(has(gz, "Content-Encoding", "gzip"));
    assert_true(has(gz, "Vary", "Accept-Encoding"));
    assert_true(has(gz, "Content-Type", "application/json"));
    snprintf(length, sizeof(length), "%zu", gz->body_len);
    assert_true(has(gz, "Content-Length", length));
    assert_true(gz->body_len * 4 < plain->body_len); /* repetitive JSON shrinks a lot */
    assert_true(python_gunzips_to(gz->body, gz->body_len, plain->body, plain->body_len));
    answer_free(plain);
    answer_free(gz);
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
        {"Accept-Encoding:", 0},
        {NULL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        answer *a = ask_with(g_port, "GET", "/json?n=4096", cases[i].header);
        int gzipped = has(a, "Content-Encoding", "gzip");

        if (gzipped != cases[i].gzip) {
            fail_msg("%s: gzipped %d, want %d", cases[i].header ? cases[i].header : "(none)",
                     gzipped, cases[i].gzip);
        }
        assert_true(gzipped || lacks(a, "Content-Encoding"));
        answer_free(a);
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

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* One request id for both: a problem quotes it, and the bodies must be equal. */
        const char *gzip_h[] = {"Accept-Encoding: gzip", "X-Request-Id: " RID, NULL};
        answer *a = ask(g_port, cases[i].method, cases[i].path, gzip_h);

        if (a->status != cases[i].status || has(a, "Content-Encoding", "gzip") != cases[i].gzip ||
            has(a, "Vary", "Accept-Encoding") != cases[i].vary) {
            fail_msg("%s %s: status %ld, head\n%s", cases[i].method, cases[i].path, a->status,
                     a->head);
        }
        if (cases[i].gzip) {
            answer *plain = ask_with(g_port, cases[i].method, cases[i].path, "X-Request-Id: " RID);
            assert_true(plain->body_len >= 1024);
            assert_true(python_gunzips_to(a->body, a->body_len, plain->body, plain->body_len));
            answer_free(plain);
        }
        answer_free(a);
    }
}

static void test_head_states_the_identity_length(void **state)
{
    answer *get = ask(g_port, "GET", "/json?n=4096", NULL);
    answer *head = ask_with(g_port, "HEAD", "/json?n=4096", "Accept-Encoding: gzip");
    char length[32];

    (void)state;
    snprintf(length, sizeof(length), "%zu", get->body_len);
    assert_true(has(head, "Content-Length", length));
    assert_int_equal(head->body_len, 0);
    answer_free(get);
    answer_free(head);
}

static void test_gzip_can_be_turned_off(void **state)
{
    answer *a = ask_with(g_port_off, "GET", "/json?n=20000", "Accept-Encoding: gzip");

    (void)state;
    assert_int_equal(a->status, 200);
    assert_true(lacks(a, "Content-Encoding"));
    assert_true(lacks(a, "Vary"));
    assert_non_null(strstr(a->body, "\"Widget\""));
    answer_free(a);
}

/* --- validators and Cache-Control -------------------------------------------------------- */

static void test_cacheable_read_has_etag_and_a_matching_one_gets_304(void **state)
{
    answer *first = ask(g_port, "GET", "/cached?v=1", NULL);
    char etag[128];
    char line[256];
    /* Each list as the text before and after the tag. */
    const char *lists[][2] = {{"If-None-Match: ", ""},
                              {"If-None-Match: \"other\", ", ""},
                              {"If-None-Match: W/", ""},
                              {"If-None-Match: \"a\",,", " , \"b\""}};

    (void)state;
    assert_int_equal(first->status, 200);
    assert_non_null(field(first, "ETag", etag, sizeof(etag)));
    assert_true(etag[0] == '"' && strlen(etag) == 34); /* strong, 32 hex digits */
    assert_true(has(first, "Cache-Control", "public, max-age=7"));
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        answer *again;
        snprintf(line, sizeof(line), "%s%s%s", lists[i][0], etag, lists[i][1]);
        again = ask_with(g_port, "GET", "/cached?v=1", line);
        if (again->status != 304) {
            fail_msg("%s: %ld", line, again->status);
        }
        assert_int_equal(again->body_len, 0);
        assert_true(lacks(again, "Content-Length"));
        assert_true(lacks(again, "Content-Type"));
        assert_true(has(again, "ETag", etag));
        assert_true(has(again, "Cache-Control", "public, max-age=7"));
        answer_free(again);
    }
    answer_free(first);
}

static void test_star_matches_and_other_tags_do_not(void **state)
{
    answer *star = ask_with(g_port, "GET", "/cached?v=1", "If-None-Match: *");
    answer *other = ask_with(g_port, "GET", "/cached?v=1", "If-None-Match: \"nope\", W/\"no\"");

    (void)state;
    assert_int_equal(star->status, 304);
    assert_int_equal(other->status, 200);
    assert_true(other->body_len > 0);
    answer_free(star);
    answer_free(other);
}

static void test_changed_body_gets_a_new_etag_and_200(void **state)
{
    answer *v1 = ask(g_port, "GET", "/cached?v=1", NULL);
    answer *v2;
    char etag1[128];
    char etag2[128];
    char line[256];

    (void)state;
    assert_non_null(field(v1, "ETag", etag1, sizeof(etag1)));
    snprintf(line, sizeof(line), "If-None-Match: %s", etag1);
    v2 = ask_with(g_port, "GET", "/cached?v=2", line);
    assert_int_equal(v2->status, 200);
    assert_non_null(field(v2, "ETag", etag2, sizeof(etag2)));
    assert_string_not_equal(etag1, etag2);
    answer_free(v1);
    answer_free(v2);
}

static void test_gzipped_answer_has_its_own_strong_etag(void **state)
{
    answer *plain = ask(g_port, "GET", "/versioned?v=3", NULL);
    answer *gz = ask_with(g_port, "GET", "/versioned?v=3", "Accept-Encoding: gzip");
    const char *gz_match[] = {"Accept-Encoding: gzip", "If-None-Match: \"v3-gzip\"", NULL};
    const char *plain_tag_gz[] = {"Accept-Encoding: gzip", "If-None-Match: \"v3\"", NULL};
    answer *a;

    (void)state;
    assert_true(has(plain, "ETag", "\"v3\""));
    assert_true(has(plain, "Cache-Control", "public, max-age=0"));
    assert_true(has(gz, "Content-Encoding", "gzip"));
    assert_true(has(gz, "ETag", "\"v3-gzip\""));
    /* Each representation is revalidated with its own tag. */
    a = ask(g_port, "GET", "/versioned?v=3", gz_match);
    assert_int_equal(a->status, 304);
    assert_true(has(a, "ETag", "\"v3-gzip\""));
    assert_true(has(a, "Vary", "Accept-Encoding"));
    assert_true(lacks(a, "Content-Encoding"));
    answer_free(a);
    a = ask(g_port, "GET", "/versioned?v=3", plain_tag_gz);
    assert_int_equal(a->status, 200);
    answer_free(a);
    a = ask_with(g_port, "GET", "/versioned?v=3", "If-None-Match: \"v3\"");
    assert_int_equal(a->status, 304);
    answer_free(a);
    answer_free(plain);
    answer_free(gz);
}

static void test_malformed_if_none_match_is_400(void **state)
{
    const char *bad[] = {"If-None-Match: v3", "If-None-Match: \"v3", "If-None-Match: \"a\" \"b\"",
                         "If-None-Match: *, \"a\"", "If-None-Match: w/\"a\""};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        answer *a = ask_with(g_port, "GET", "/cached", bad[i]);
        json_t *j = json_loads(a->body != NULL ? a->body : "", 0, NULL);
        json_t *param = json_array_get(json_object_get(j, "invalid_params"), 0);

        if (a->status != 400) {
            fail_msg("%s: %ld", bad[i], a->status);
        }
        assert_true(has(a, "Content-Type", "application/problem+json"));
        assert_string_equal(json_string_value(json_object_get(param, "name")), "If-None-Match");
        assert_true(has(a, "Cache-Control", "no-store"));
        json_decref(j);
        answer_free(a);
    }
}

static void test_cache_control_elsewhere_is_no_store(void **state)
{
    answer *post = ask_with(g_port, "POST", "/cached", "If-None-Match: *");
    answer *plain = ask(g_port, "GET", "/json?n=10", NULL);
    answer *missing = ask(g_port, "GET", "/cached-missing", NULL);
    answer *own = ask(g_port, "GET", "/own-policy", NULL);
    answer *problem = ask(g_port, "GET", "/big-problem", NULL);

    (void)state;
    /* Only a read is cacheable; a POST runs whatever its If-None-Match says. */
    assert_int_equal(post->status, 200);
    assert_true(has(post, "Cache-Control", "no-store"));
    assert_true(lacks(post, "ETag"));
    assert_true(has(plain, "Cache-Control", "no-store"));
    assert_true(lacks(plain, "ETag"));
    /* An error is never kept, whatever the handler said. */
    assert_int_equal(missing->status, 404);
    assert_true(has(missing, "Cache-Control", "no-store"));
    assert_true(lacks(missing, "ETag"));
    assert_true(has(own, "Cache-Control", "public, max-age=300"));
    assert_true(has(problem, "Cache-Control", "no-store"));
    answer_free(post);
    answer_free(plain);
    answer_free(missing);
    answer_free(own);
    answer_free(problem);
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

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
