/*
 * The HTTP server over real HTTP: a server on 127.0.0.1:0 driven with libcurl. Covers JSON
 * bodies and their limits, problem+json errors, request ids, the router's 404/405, the
 * 500 for a handler that forgets to reply, the access log, and a stop that lets an
 * in-flight request finish.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "cleave/http.h"
#include "cleave/log.h"
#include "cleave/rpc.h"
#include "../../platform/http/http_internal.h"

/* --- a small HTTP client -------------------------------------------------------------- */

typedef struct response {
    long status;
    char *body;
    size_t body_len;
    char headers[8192];
    size_t headers_len;
    char header_value[1024];
    json_t *json; /* the body parsed, when it is JSON */
} response;

typedef struct upload {
    const char *data;
    size_t len;
    size_t off;
} upload;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    response *resp = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(resp->body, resp->body_len + n + 1);

    if (grown == NULL) {
        return 0;
    }
    resp->body = grown;
    memcpy(resp->body + resp->body_len, data, n);
    resp->body_len += n;
    resp->body[resp->body_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    response *resp = userdata;
    size_t n = size * nmemb;

    /* A status line starts a new header block (after 100 Continue, say). */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        resp->headers_len = 0;
    }
    if (resp->headers_len + n < sizeof(resp->headers)) {
        memcpy(resp->headers + resp->headers_len, data, n);
        resp->headers_len += n;
        resp->headers[resp->headers_len] = '\0';
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *userdata)
{
    upload *up = userdata;
    size_t n = size * nmemb;

    if (n > up->len - up->off) {
        n = up->len - up->off;
    }
    memcpy(buf, up->data + up->off, n);
    up->off += n;
    return n;
}

/* The value of a response header (case-insensitive), or NULL. Valid until the next call. */
static const char *header(response *resp, const char *name)
{
    size_t nlen = strlen(name);
    const char *line = resp->headers;

    while (line != NULL && *line != '\0') {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);

        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            size_t vlen;

            while (*v == ' ') {
                v++;
            }
            vlen = (size_t)(line + len - v);
            if (vlen >= sizeof(resp->header_value)) {
                vlen = sizeof(resp->header_value) - 1;
            }
            memcpy(resp->header_value, v, vlen);
            resp->header_value[vlen] = '\0';
            return resp->header_value;
        }
        line = end != NULL ? end + 2 : NULL;
    }
    return NULL;
}

static void response_free(response *resp)
{
    free(resp->body);
    json_decref(resp->json);
    free(resp);
}

typedef struct request {
    const char *method;
    const char *path;
    const char *content_type; /* NULL: no Content-Type */
    const char *body;         /* NULL: no body */
    size_t body_len;
    int chunked;            /* send the body without Content-Length */
    const char *request_id; /* NULL: no X-Request-Id */
    const char *header;     /* one more header line ("Name: value"), or NULL */
} request;

/*
 * Performs one request. No cmocka assertion in here: it also runs on helper threads,
 * where a failing assertion cannot unwind the test. Returns NULL when out of memory.
 */
static response *http_do_raw(int port, const request *rq, CURLcode *rc_out)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    response *resp = calloc(1, sizeof(*resp));
    upload up = {rq->body, rq->body_len, 0};
    char url[4096];
    char line[512];
    CURLcode rc;

    if (curl == NULL || resp == NULL) {
        curl_easy_cleanup(curl);
        free(resp);
        return NULL;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, rq->path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
    /* A HEAD response announces a body it does not send: curl must not wait for it. */
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    /* Keep the path exactly as written: the tests send dot segments and escapes on purpose. */
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    /* No "Expect: 100-continue" round trip: the server answers at once either way. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (rq->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", rq->content_type);
    } else {
        snprintf(line, sizeof(line), "Content-Type:");
    }
    hdrs = curl_slist_append(hdrs, line);
    if (rq->request_id != NULL) {
        snprintf(line, sizeof(line), "X-Request-Id: %s", rq->request_id);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (rq->header != NULL) {
        hdrs = curl_slist_append(hdrs, rq->header);
    }
    if (rq->body != NULL) {
        if (rq->chunked) {
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
            curl_easy_setopt(curl, CURLOPT_POST, 1L);
            curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(curl, CURLOPT_READDATA, &up);
        } else {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->body);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        }
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(curl);
    *rc_out = rc;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    if (resp->body != NULL) {
        resp->json = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    }
    return resp;
}

static response *http_do(int port, const request *rq)
{
    CURLcode rc = CURLE_OK;
    response *resp = http_do_raw(port, rq, &rc);

    assert_non_null(resp);
    if (rc != CURLE_OK) {
        fail_msg("curl %s %s: %s", rq->method, rq->path, curl_easy_strerror(rc));
    }
    return resp;
}

static response *http_simple(int port, const char *method, const char *path)
{
    request rq = {method, path, NULL, NULL, 0, 0, NULL, NULL};
    return http_do(port, &rq);
}

static response *http_json(int port, const char *path, const char *ctype, const char *body)
{
    request rq = {"POST", path, ctype, body, strlen(body), 0, NULL, NULL};
    return http_do(port, &rq);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL) {
        fail_msg("no string member \"%s\"", key);
    }
    return s;
}

static int is_hex32(const char *s)
{
    if (s == NULL || strlen(s) != 32) {
        return 0;
    }
    for (size_t i = 0; i < 32; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/*
 * Checks a problem+json response: its status, content type, the RFC 9457 members and
 * that request_id matches the X-Request-Id header.
 */
static void expect_problem(response *resp, long status, const char *slug, const char *instance)
{
    char type[128];
    const char *rid;

    assert_int_equal(resp->status, status);
    assert_non_null(header(resp, "Content-Type"));
    assert_string_equal(header(resp, "Content-Type"), "application/problem+json");
    assert_non_null(resp->json);
    assert_true(json_is_object(resp->json));
    snprintf(type, sizeof(type), "urn:cleave:problem:%s", slug);
    assert_string_equal(jstr(resp->json, "type"), type);
    assert_true(strlen(jstr(resp->json, "title")) > 0);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "status")), status);
    assert_true(json_is_string(json_object_get(resp->json, "detail")));
    assert_string_equal(jstr(resp->json, "instance"), instance);
    rid = header(resp, "X-Request-Id");
    assert_non_null(rid);
    assert_string_equal(jstr(resp->json, "request_id"), rid);
}

/* --- the routes under test ---------------------------------------------------------- */

static void h_echo(cl_http_req *req, void *arg)
{
    json_t *body = NULL;

    (void)arg;
    if (cl_http_read_json(req, 0, &body) != CL_OK) {
        return;
    }
    cl_http_reply_json(req, 200, body);
}

static void h_object(cl_http_req *req, void *arg)
{
    json_t *body = NULL;

    (void)arg;
    if (cl_http_read_json(req, 1, &body) != CL_OK) {
        return;
    }
    cl_http_reply_json(req, 201, body);
}

static void h_item(cl_http_req *req, void *arg)
{
    char q[64];
    int qn = cl_http_query(req, "q", q, sizeof(q));
    char tiny[4];
    int tn = cl_http_query(req, "q", tiny, sizeof(tiny));
    cl_ctx *ctx = cl_http_ctx(req);

    int set_ok;
    int refused;

    (void)arg;
    /* Handlers run on a worker thread, where cmocka cannot fail a test: report instead. */
    set_ok = cl_http_set_header(req, "X-Extra", "yes") == 0;
    /* Header injection and server-owned headers are refused. */
    refused = cl_http_set_header(req, "X-Bad", "a\r\nInjected: 1") == -1 &&
              cl_http_set_header(req, "Content-Length", "3") == -1 &&
              cl_http_set_header(req, "Bad Name", "x") == -1;
    cl_http_reply_json(
        req, 200,
        json_pack("{s:b,s:b,s:s,s:s?,s:i,s:i,s:s,s:b,s:s,s:s,s:s,s:s?}", "set_ok", set_ok,
                  "refused", refused, "id", cl_http_param(req, "id"), "q", qn >= 0 ? q : NULL,
                  "q_len", qn, "tiny", tn, "request_id", ctx->request_id, "deadline",
                  ctx->deadline_ms > 0, "method", cl_http_method(req), "path", cl_http_path(req),
                  "route", cl_http_route(req)->pattern, "ua", cl_http_header(req, "user-agent")));
}

static void h_delete(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_empty(req, 204);
}

static void h_silent(cl_http_req *req, void *arg)
{
    (void)req;
    (void)arg;
}

static void h_fail(cl_http_req *req, void *arg)
{
    const char *kind = cl_http_param(req, "kind");
    char why[1024];
    cl_error err;

    (void)arg;
    if (strcmp(kind, "invalid") == 0) {
        cl_error_set(&err, CL_INVALID, "price", "must be positive");
    } else if (kind[0] == 'f') {
        /* The field and the message quote the input, which may be long and non-ASCII. */
        cl_error_set(&err, CL_INVALID, kind, "%s is not a field of this thing", kind);
    } else if (strcmp(kind, "deadline") == 0) {
        cl_error_set(&err, CL_DEADLINE_EXCEEDED, NULL, "the catalog took too long");
    } else {
        if (cl_http_query(req, "why", why, sizeof(why)) >= 0) {
            cl_error_set(&err, CL_NOT_FOUND, NULL, "no product %s (%s)", kind, why);
        } else {
            cl_error_set(&err, CL_NOT_FOUND, NULL, "no product %s", kind);
        }
    }
    cl_http_reply_error(req, &err);
}

static void h_custom_problem(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_problem(
        req, 409, "custom-thing", "a custom problem", "custom detail",
        json_pack("{s:i,s:s,s:s}", "status", 999, "type", "forged", "hint", "try again"));
}

static void h_bytes(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_bytes(req, 200, "text/plain", "hello", 5);
    /* A second reply must not corrupt the connection. */
    cl_http_reply_json(req, 500, json_string("late"));
}

/* Echoes the "name" query parameter through cl_http_query_dup, capped at 5 bytes. */
static void h_dup(cl_http_req *req, void *arg)
{
    char *name = NULL;

    (void)arg;
    if (cl_http_query_dup(req, "name", 5, &name) != 0) {
        return; /* the 400 was sent */
    }
    cl_http_reply_json(req, 200, json_pack("{s:s?}", "name", name));
    free(name);
}

/* Replies with the strict integer query parameter n (1..100). */
static void h_num(cl_http_req *req, void *arg)
{
    int64_t n = -1;

    (void)arg;
    if (cl_http_query_int(req, "n", 1, 100, &n) < 0) {
        return; /* the 400 was sent */
    }
    cl_http_reply_json(req, 200, json_pack("{s:I}", "n", (json_int_t)n));
}

/* A handler whose body could not be built (cl_schema_to_json returned NULL, say). */
static void h_nobody(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_json(req, 200, NULL);
}

/*
 * A declared type written by cl_http_reply_type: ?n=N strings of 100 bytes (past the
 * worker's buffer from 319), ?bad=1 one that is not UTF-8.
 */
#define TYPED(X, T) X(T, STRS, words, _)
CL_TYPE_DECLARE(test_typed, TYPED)
CL_TYPE_DEFINE(test_typed, TYPED)

static void h_typed(cl_http_req *req, void *arg)
{
    char n_text[8] = "0";
    char bad[8];
    char word[101];
    test_typed t = {0};
    bool ok = true;

    (void)arg;
    (void)cl_http_query(req, "n", n_text, sizeof(n_text));
    memset(word, 'w', 100);
    word[100] = '\0';
    for (long i = 0; ok && i < strtol(n_text, NULL, 10); i++) {
        word[0] = (char)('a' + i % 26);
        ok = cl_strs_push(&t.words, word) == 0;
    }
    if (ok && cl_http_query(req, "bad", bad, sizeof(bad)) >= 0) {
        (void)cl_strs_push(&t.words, "\xff");
    }
    cl_http_reply_type(req, 200, &test_typed_type, &t);
    cl_schema_free(&test_typed_type, &t);
}

/* Echoes a form body as the JSON object cl_http_read_form made of it, with the peer. */
static void h_form(cl_http_req *req, void *arg)
{
    json_t *form = NULL;

    (void)arg;
    if (cl_http_read_form(req, &form) != CL_OK) {
        return;
    }
    cl_http_set_header(req, "X-Peer", cl_http_remote_addr(req));
    cl_http_reply_json(req, 200, form);
}

/* Answers the trace the request entered: its trace id and tracestate. */
static void h_trace(cl_http_req *req, void *arg)
{
    const cl_ctx *ctx = cl_http_ctx(req);

    (void)arg;
    cl_http_reply_json(
        req, 200, json_pack("{s:s,s:s}", "trace_id", ctx->trace_id, "tracestate", ctx->tracestate));
}

/* Answers what cl_http_basic_auth made of the Authorization header. */
static void h_basic(cl_http_req *req, void *arg)
{
    char user[16];
    char pass[16];
    int rc = cl_http_basic_auth(req, user, sizeof(user), pass, sizeof(pass));

    (void)arg;
    cl_http_reply_json(req, 200,
                       rc > 0 ? json_pack("{s:i,s:s,s:s}", "rc", rc, "user", user, "pass", pass)
                              : json_pack("{s:i}", "rc", rc));
}

static cl_router *g_router;
static cl_http_server *g_server;
static int g_port;

static int group_setup(void **state)
{
    const cl_route routes[] = {
        {"POST", "/echo", CL_PERM_PUBLIC, h_echo, NULL, NULL},
        {"POST", "/form", CL_PERM_PUBLIC, h_form, NULL, NULL},
        {"GET", "/basic", CL_PERM_PUBLIC, h_basic, NULL, NULL},
        {"GET", "/trace", CL_PERM_PUBLIC, h_trace, NULL, NULL},
        {"POST", "/objects", "things:write", h_object, NULL, NULL},
        {"GET", "/items/{id}", "things:read", h_item, NULL, "q x"},
        {"DELETE", "/items/{id}", "things:write", h_delete, NULL, NULL},
        {"GET", "/silent", CL_PERM_PUBLIC, h_silent, NULL, NULL},
        {"GET", "/fail/{kind}", CL_PERM_PUBLIC, h_fail, NULL, "why"},
        {"GET", "/custom", CL_PERM_PUBLIC, h_custom_problem, NULL, NULL},
        {"GET", "/bytes", CL_PERM_PUBLIC, h_bytes, NULL, NULL},
        {"GET", "/dup", CL_PERM_PUBLIC, h_dup, NULL, "name"},
        {"GET", "/num", CL_PERM_PUBLIC, h_num, NULL, "n"},
        {"GET", "/nobody", CL_PERM_PUBLIC, h_nobody, NULL, NULL},
        {"GET", "/typed", CL_PERM_PUBLIC, h_typed, NULL, "n bad"},
    };
    cl_http_options opt = {.listen = "127.0.0.1:0",
                           .threads = 4,
                           .max_body = 1024,
                           .max_json_depth = 8,
                           .request_timeout_ms = 5000,
                           .service = "test"};
    cl_error err;

    (void)state;
    g_router = cl_router_new();
    assert_non_null(g_router);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        assert_int_equal(cl_router_add(g_router, &routes[i], &err), CL_OK);
    }
    if (cl_http_start(&opt, g_router, &g_server, &err) != CL_OK) {
        fail_msg("start: %s", err.message);
    }
    g_port = cl_http_port(g_server);
    assert_true(g_port > 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cl_http_stop(g_server);
    cl_router_free(g_router);
    return 0;
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_http_echoes_json(void **state)
{
    const char *doc = "{\"a\":[1,2,{\"b\":\"c\"}],\"s\":\"[[[{{{\"}";
    response *resp = http_json(g_port, "/echo", "application/json", doc);
    json_t *want = json_loads(doc, 0, NULL);

    (void)state;
    assert_int_equal(resp->status, 200);
    assert_string_equal(header(resp, "Content-Type"), "application/json");
    assert_non_null(header(resp, "Content-Length"));
    assert_int_equal(strtol(header(resp, "Content-Length"), NULL, 10), (long)resp->body_len);
    assert_true(is_hex32(header(resp, "X-Request-Id")));
    assert_non_null(resp->json);
    assert_true(json_equal(resp->json, want));
    json_decref(want);
    response_free(resp);
}

static void test_http_accepts_json_variants(void **state)
{
    response *resp;

    (void)state;
    resp = http_json(g_port, "/echo", "application/merge-patch+json; charset=utf-8", "[1]");
    assert_int_equal(resp->status, 200);
    response_free(resp);
    resp = http_json(g_port, "/echo", "Application/JSON;charset=UTF-8", "\"scalar\"");
    assert_int_equal(resp->status, 200);
    assert_string_equal(json_string_value(resp->json), "scalar");
    response_free(resp);
}

static void test_http_malformed_json_is_400(void **state)
{
    response *resp = http_json(g_port, "/echo", "application/json", "{\"a\":\n  [1,}");
    const char *detail;

    (void)state;
    expect_problem(resp, 400, "malformed-json", "/echo");
    detail = jstr(resp->json, "detail");
    assert_non_null(strstr(detail, "line 2"));
    assert_non_null(strstr(detail, "column"));
    assert_int_equal(json_integer_value(json_object_get(resp->json, "line")), 2);
    assert_true(json_integer_value(json_object_get(resp->json, "column")) > 0);
    response_free(resp);

    resp = http_json(g_port, "/echo", "application/json", "{\"a\":1,\"a\":2}");
    expect_problem(resp, 400, "malformed-json", "/echo");
    assert_non_null(strstr(jstr(resp->json, "detail"), "duplicate"));
    response_free(resp);

    resp = http_json(g_port, "/echo", "application/json", "");
    expect_problem(resp, 400, "malformed-json", "/echo");
    response_free(resp);
}

static void test_http_wrong_content_type_is_415(void **state)
{
    response *resp;

    (void)state;
    resp = http_json(g_port, "/echo", "text/plain", "{}");
    expect_problem(resp, 415, "unsupported-media-type", "/echo");
    response_free(resp);
    resp = http_json(g_port, "/echo", "application/jsonx", "{}");
    expect_problem(resp, 415, "unsupported-media-type", "/echo");
    response_free(resp);
    resp = http_json(g_port, "/echo", NULL, "{}");
    expect_problem(resp, 415, "unsupported-media-type", "/echo");
    response_free(resp);
}

static void test_http_reads_form_bodies(void **state)
{
    static const char form[] = "application/x-www-form-urlencoded";
    response *resp;
    json_t *want;

    (void)state;
    /* '+' is a space, escapes are decoded, an empty value is kept, empty pairs skipped. */
    resp = http_json(g_port, "/form", "application/x-www-form-urlencoded; charset=UTF-8",
                     "grant_type=password&user+name=a%2Bb%20c&empty=&&scope=openid+profile&");
    assert_int_equal(resp->status, 200);
    want = json_pack("{s:s,s:s,s:s,s:s}", "grant_type", "password", "user name", "a+b c", "empty",
                     "", "scope", "openid profile");
    assert_true(json_equal(resp->json, want));
    assert_string_equal(header(resp, "X-Peer"), "127.0.0.1");
    json_decref(want);
    response_free(resp);
    resp = http_json(g_port, "/form", form, "");
    assert_int_equal(resp->status, 200);
    assert_int_equal(json_object_size(resp->json), 0);
    response_free(resp);
}

/* Each refusal is a 400 problem naming the field (or 415 for another media type). */
static void test_http_refuses_malformed_form_bodies(void **state)
{
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"a=1&a=2", "a"}, /* RFC 6749 section 3.2: never twice */
        {"a=%zz", "a"},   /* malformed escape */
        {"a=%00", "a"},   /* encoded NUL */
        {"a=%ff", "a"},   /* not UTF-8 */
        {"=1", "body"},   /* a value without a name */
        {"%zz=1", "%zz"}, /* a name that cannot be decoded */
    };
    static const char form[] = "application/x-www-form-urlencoded";
    char many[1024];
    size_t len = 0;
    response *resp;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *params;

        resp = http_json(g_port, "/form", form, bad[i].body);
        expect_problem(resp, 400, "invalid", "/form");
        params = json_array_get(json_object_get(resp->json, "invalid_params"), 0);
        if (params == NULL || strcmp(jstr(params, "name"), bad[i].field) != 0) {
            fail_msg("%s: want the problem to name %s", bad[i].body, bad[i].field);
        }
        response_free(resp);
    }
    for (int i = 0; i <= CL_HTTP_FORM_MAX_FIELDS; i++) {
        len += (size_t)snprintf(many + len, sizeof(many) - len, "%sf%d=1", i > 0 ? "&" : "", i);
    }
    resp = http_json(g_port, "/form", form, many);
    expect_problem(resp, 400, "invalid", "/form");
    response_free(resp);
    resp = http_json(g_port, "/form", "application/json", "{}");
    expect_problem(resp, 415, "unsupported-media-type", "/form");
    response_free(resp);
    resp = http_json(g_port, "/form", "application/x-www-form-urlencodedx", "a=1");
    expect_problem(resp, 415, "unsupported-media-type", "/form");
    response_free(resp);
}

static void test_http_basic_auth_decodes_or_refuses(void **state)
{
    static const struct {
        const char *header; /* NULL: no Authorization */
        int rc;
        const char *user, *pass;
    } cases[] = {
        {NULL, 0, NULL, NULL},
        {"Authorization: Basic d2ViOnMzY3I6dA==", 1, "web", "s3cr:t"}, /* web:s3cr:t */
        {"Authorization: basic d2ViOg==", 1, "web", ""},               /* web: */
        {"Authorization: Basic OnB3", 1, "", "pw"},                    /* :pw */
        {"Authorization: Bearer d2ViOnB3", -1, NULL, NULL},
        {"Authorization: Basic d2ViOnB3=", -1, NULL, NULL},    /* bad length */
        {"Authorization: Basic d2Vi", -1, NULL, NULL},         /* "web": no ':' */
        {"Authorization: Basic d2=iOnB3", -1, NULL, NULL},     /* '=' inside */
        {"Authorization: Basic d2ViAHg6cHc=", -1, NULL, NULL}, /* a NUL */
        /* a user longer than the caller's buffer: "aaaaaaaaaaaaaaaaaaaa:p" */
        {"Authorization: Basic YWFhYWFhYWFhYWFhYWFhYWFhYWE6cA==", -1, NULL, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request rq = {"GET", "/basic", NULL, NULL, 0, 0, NULL, cases[i].header};
        response *resp = http_do(g_port, &rq);

        assert_int_equal(resp->status, 200);
        if (json_integer_value(json_object_get(resp->json, "rc")) != cases[i].rc) {
            fail_msg("case %zu (%s): want %d", i, cases[i].header, cases[i].rc);
        }
        if (cases[i].rc > 0) {
            assert_string_equal(jstr(resp->json, "user"), cases[i].user);
            assert_string_equal(jstr(resp->json, "pass"), cases[i].pass);
        }
        response_free(resp);
    }
}

static void test_http_form_decode(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(cl_http_form_decode("a+b%2B%3a", out, sizeof(out)), 5);
    assert_string_equal(out, "a b+:");
    assert_int_equal(cl_http_form_decode("%zz", out, sizeof(out)), -1);
    assert_int_equal(cl_http_form_decode("%00", out, sizeof(out)), -1);
    assert_int_equal(cl_http_form_decode("12345678", out, sizeof(out)), -2);
    assert_int_equal(cl_http_form_decode(NULL, out, sizeof(out)), -1);
}

static char *make_array_body(size_t len)
{
    char *s = malloc(len + 1);

    assert_non_null(s);
    s[0] = '[';
    for (size_t i = 1; i + 1 < len; i++) {
        s[i] = (i % 2) ? '1' : ',';
    }
    s[len - 1] = ']';
    s[len] = '\0';
    return s;
}

static void test_http_oversized_body_is_413(void **state)
{
    char *big = make_array_body(4001);
    char *fits = make_array_body(1023);
    request rq = {"POST", "/echo", "application/json", big, strlen(big), 0, NULL, NULL};
    response *resp;

    (void)state;
    resp = http_do(g_port, &rq);
    expect_problem(resp, 413, "content-too-large", "/echo");
    response_free(resp);

    /* Without Content-Length the server reads at most max_body + 1 bytes, then refuses. */
    rq.chunked = 1;
    resp = http_do(g_port, &rq);
    expect_problem(resp, 413, "content-too-large", "/echo");
    response_free(resp);

    /* Just under the limit, either way, is fine. */
    rq.body = fits;
    rq.body_len = strlen(fits);
    resp = http_do(g_port, &rq);
    assert_int_equal(resp->status, 200);
    response_free(resp);
    rq.chunked = 0;
    resp = http_do(g_port, &rq);
    assert_int_equal(resp->status, 200);
    response_free(resp);
    free(big);
    free(fits);
}

static void test_http_too_deep_json_is_400(void **state)
{
    const char *ok = "[[[[[[[[1]]]]]]]]";                            /* 8 levels: the limit */
    const char *deep = "[[[[[[[[[1]]]]]]]]]";                        /* 9 levels */
    const char *deep_obj = "{\"a\":{\"b\":[{\"c\":[[[[[{}]]]]]}]}}"; /* 10 levels */
    char hostile[1001];
    response *resp;

    (void)state;
    resp = http_json(g_port, "/echo", "application/json", ok);
    assert_int_equal(resp->status, 200);
    response_free(resp);
    resp = http_json(g_port, "/echo", "application/json", deep);
    expect_problem(resp, 400, "json-too-deep", "/echo");
    response_free(resp);
    resp = http_json(g_port, "/echo", "application/json", deep_obj);
    expect_problem(resp, 400, "json-too-deep", "/echo");
    response_free(resp);
    /* Unbalanced and absurdly deep: refused for depth before any parser sees it. */
    memset(hostile, '[', sizeof(hostile) - 1);
    hostile[sizeof(hostile) - 1] = '\0';
    resp = http_json(g_port, "/echo", "application/json", hostile);
    expect_problem(resp, 400, "json-too-deep", "/echo");
    response_free(resp);
}

static void test_http_object_only_refuses_array(void **state)
{
    response *resp;

    (void)state;
    resp = http_json(g_port, "/objects", "application/json", "[1,2]");
    expect_problem(resp, 400, "not-an-object", "/objects");
    response_free(resp);
    resp = http_json(g_port, "/objects", "application/json", "{\"x\":1}");
    assert_int_equal(resp->status, 201);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "x")), 1);
    response_free(resp);
}

static void test_http_unknown_route_is_404(void **state)
{
    response *resp = http_simple(g_port, "GET", "/nowhere/at/all");

    (void)state;
    expect_problem(resp, 404, "not-found", "/nowhere/at/all");
    response_free(resp);
}

static void test_http_wrong_method_is_405_with_allow(void **state)
{
    response *resp = http_simple(g_port, "PUT", "/items/7");

    (void)state;
    expect_problem(resp, 405, "method-not-allowed", "/items/7");
    assert_non_null(header(resp, "Allow"));
    assert_string_equal(header(resp, "Allow"), "GET, HEAD, DELETE");
    response_free(resp);
}

static void test_http_request_id_echoed_or_generated(void **state)
{
    request rq = {"GET", "/items/1", NULL, NULL, 0, 0, "abc-123_x.Y", NULL};
    char too_long[65];
    response *resp;

    (void)state;
    resp = http_do(g_port, &rq);
    assert_int_equal(resp->status, 200);
    assert_string_equal(header(resp, "X-Request-Id"), "abc-123_x.Y");
    /* The handler's ctx carries the same id. */
    assert_string_equal(jstr(resp->json, "request_id"), "abc-123_x.Y");
    response_free(resp);

    /* Problems carry it too. */
    rq.path = "/missing";
    resp = http_do(g_port, &rq);
    expect_problem(resp, 404, "not-found", "/missing");
    assert_string_equal(jstr(resp->json, "request_id"), "abc-123_x.Y");
    response_free(resp);

    /* Unsafe or over-long ids are replaced by a fresh one. */
    rq.path = "/items/1";
    rq.request_id = "bad id\"}";
    resp = http_do(g_port, &rq);
    assert_true(is_hex32(header(resp, "X-Request-Id")));
    assert_string_equal(jstr(resp->json, "request_id"), header(resp, "X-Request-Id"));
    response_free(resp);
    memset(too_long, 'a', 64);
    too_long[64] = '\0';
    rq.request_id = too_long;
    resp = http_do(g_port, &rq);
    assert_true(is_hex32(header(resp, "X-Request-Id")));
    response_free(resp);

    /* Two requests without an id get different ids. */
    rq.request_id = NULL;
    resp = http_do(g_port, &rq);
    response *again = http_do(g_port, &rq);
    assert_true(is_hex32(header(resp, "X-Request-Id")));
    char first[64];
    snprintf(first, sizeof(first), "%s", header(resp, "X-Request-Id"));
    assert_string_not_equal(first, header(again, "X-Request-Id"));
    response_free(resp);
    response_free(again);
}

static void test_http_params_query_and_headers(void **state)
{
    response *resp = http_simple(g_port, "GET", "/items/a%2Fb%20c?x=1&q=x+y%26z");

    (void)state;
    assert_int_equal(resp->status, 200);
    assert_string_equal(jstr(resp->json, "id"), "a/b c");
    assert_string_equal(jstr(resp->json, "q"), "x y&z");
    assert_int_equal(json_integer_value(json_object_get(resp->json, "q_len")), 5);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "tiny")), -2);
    assert_true(json_is_true(json_object_get(resp->json, "deadline")));
    assert_string_equal(jstr(resp->json, "method"), "GET");
    assert_string_equal(jstr(resp->json, "path"), "/items/a%2Fb%20c");
    assert_string_equal(jstr(resp->json, "route"), "/items/{id}");
    assert_true(json_is_true(json_object_get(resp->json, "set_ok")));
    assert_true(json_is_true(json_object_get(resp->json, "refused")));
    assert_string_equal(header(resp, "X-Extra"), "yes");
    assert_null(header(resp, "Injected"));
    response_free(resp);

    resp = http_simple(g_port, "GET", "/items/1");
    assert_int_equal(resp->status, 200);
    assert_true(json_is_null(json_object_get(resp->json, "q")));
    assert_int_equal(json_integer_value(json_object_get(resp->json, "q_len")), -1);
    response_free(resp);
}

static void test_http_query_dup_copies_or_refuses_naming_the_parameter(void **state)
{
    response *resp = http_simple(g_port, "GET", "/dup?name=ab%20c");

    (void)state;
    assert_int_equal(resp->status, 200);
    assert_string_equal(jstr(resp->json, "name"), "ab c");
    response_free(resp);
    resp = http_simple(g_port, "GET", "/dup");
    assert_int_equal(resp->status, 200);
    assert_true(json_is_null(json_object_get(resp->json, "name")));
    response_free(resp);
    resp = http_simple(g_port, "GET", "/dup?name=abcdef");
    assert_int_equal(resp->status, 400);
    assert_string_equal(
        jstr(json_array_get(json_object_get(resp->json, "invalid_params"), 0), "name"), "name");
    response_free(resp);
}

static void test_http_handler_without_reply_is_500(void **state)
{
    response *resp = http_simple(g_port, "GET", "/silent");

    (void)state;
    expect_problem(resp, 500, "internal", "/silent");
    response_free(resp);
}

static void test_http_reply_error_problem_shape(void **state)
{
    response *resp = http_simple(g_port, "GET", "/fail/invalid");
    json_t *params;
    json_t *first;

    (void)state;
    expect_problem(resp, 400, "invalid", "/fail/invalid");
    assert_string_equal(jstr(resp->json, "title"), cl_status_message(CL_INVALID));
    assert_string_equal(jstr(resp->json, "detail"), "must be positive");
    params = json_object_get(resp->json, "invalid_params");
    assert_true(json_is_array(params));
    assert_int_equal(json_array_size(params), 1);
    first = json_array_get(params, 0);
    assert_string_equal(jstr(first, "name"), "price");
    assert_string_equal(jstr(first, "reason"), "must be positive");
    /* Exactly the documented members, nothing else. */
    assert_int_equal(json_object_size(resp->json), 7);
    response_free(resp);

    resp = http_simple(g_port, "GET", "/fail/deadline");
    expect_problem(resp, 504, "deadline-exceeded", "/fail/deadline");
    assert_string_equal(jstr(resp->json, "title"), cl_status_message(CL_DEADLINE_EXCEEDED));
    assert_null(json_object_get(resp->json, "invalid_params"));
    assert_int_equal(json_object_size(resp->json), 6);
    response_free(resp);

    resp = http_simple(g_port, "GET", "/fail/sku-9");
    expect_problem(resp, 404, "not-found", "/fail/sku-9");
    assert_string_equal(jstr(resp->json, "detail"), "no product sku-9");
    response_free(resp);
}

static void test_http_problem_extra_cannot_override(void **state)
{
    response *resp = http_simple(g_port, "GET", "/custom");

    (void)state;
    expect_problem(resp, 409, "custom-thing", "/custom");
    assert_string_equal(jstr(resp->json, "title"), "a custom problem");
    assert_string_equal(jstr(resp->json, "detail"), "custom detail");
    assert_string_equal(jstr(resp->json, "hint"), "try again");
    response_free(resp);
}

static void test_http_empty_and_bytes_replies(void **state)
{
    response *resp = http_simple(g_port, "DELETE", "/items/3");

    (void)state;
    assert_int_equal(resp->status, 204);
    assert_int_equal(resp->body_len, 0);
    assert_non_null(header(resp, "X-Request-Id"));
    response_free(resp);

    resp = http_simple(g_port, "GET", "/bytes");
    assert_int_equal(resp->status, 200);
    assert_string_equal(header(resp, "Content-Type"), "text/plain");
    assert_string_equal(header(resp, "Content-Length"), "5");
    assert_int_equal(resp->body_len, 5);
    assert_memory_equal(resp->body, "hello", 5);
    response_free(resp);
}

static void test_http_bounds_on_the_target(void **state)
{
    char path[3000];
    response *resp;

    (void)state;
    snprintf(path, sizeof(path), "/items/");
    memset(path + 7, 'x', 300);
    path[307] = '\0';
    resp = http_simple(g_port, "GET", path);
    assert_int_equal(resp->status, 414);
    assert_string_equal(jstr(resp->json, "type"), "urn:cleave:problem:uri-too-long");
    response_free(resp);

    for (size_t i = 0; i < 2500; i += 10) {
        memcpy(path + i, "/xxxxxxxxx", 10);
    }
    path[2500] = '\0';
    resp = http_simple(g_port, "GET", path);
    assert_int_equal(resp->status, 414);
    response_free(resp);

    resp = http_simple(g_port, "GET", "/items/%zz");
    expect_problem(resp, 400, "malformed-path", "/items/%zz");
    response_free(resp);
    resp = http_simple(g_port, "GET", "/items/a%00b");
    expect_problem(resp, 400, "malformed-path", "/items/a%00b");
    response_free(resp);
}

/* Reads log lines from fd until one is the access line of path; returns it (new ref). */
static json_t *read_access_line(int fd, const char *path)
{
    char buf[65536];
    size_t len = 0;

    for (;;) {
        char *nl;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = '\0';
        while ((nl = strchr(buf, '\n')) != NULL) {
            json_t *line;

            *nl = '\0';
            line = json_loads(buf, 0, NULL);
            memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf) + 1);
            len = strlen(buf);
            if (line != NULL && json_is_string(json_object_get(line, "url.path")) &&
                strcmp(json_string_value(json_object_get(line, "url.path")), path) == 0) {
                return line;
            }
            json_decref(line);
        }
    }
}

static void test_http_writes_access_log(void **state)
{
    int fds[2];
    request rq = {"GET", "/items/logged?q=1", NULL, NULL, 0, 0, "log-check-1", NULL};
    response *resp;
    json_t *line;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    cl_log_set_fd(fds[1]);
    resp = http_do(g_port, &rq);
    assert_int_equal(resp->status, 200);
    /* The line is written after the response, so wait for it rather than expect it. */
    line = read_access_line(fds[0], "/items/logged");
    cl_log_set_fd(1);
    assert_string_equal(jstr(line, "log.logger"), "http");
    assert_string_equal(jstr(line, "ecs.version"), "8.11.0");
    assert_string_equal(jstr(line, "http.request.method"), "GET");
    assert_string_equal(jstr(line, "url.path"), "/items/logged");
    assert_int_equal(json_integer_value(json_object_get(line, "http.response.status_code")), 200);
    assert_int_equal(json_integer_value(json_object_get(line, "http.response.body.bytes")),
                     (long)resp->body_len);
    /* Nanoseconds (ECS event.duration): a local request takes more than one. */
    assert_true(json_integer_value(json_object_get(line, "event.duration")) > 0);
    assert_string_equal(jstr(line, "client.ip"), "127.0.0.1");
    assert_string_equal(jstr(line, "http.request.id"), "log-check-1");
    /* A request that came without a trace starts one; its access line names it. */
    assert_int_equal(strlen(jstr(line, "trace.id")), 32);
    assert_int_equal(strlen(jstr(line, "span.id")), 16);
    json_decref(line);
    response_free(resp);
    close(fds[0]);
    close(fds[1]);
}

static void test_http_start_refuses_taken_port(void **state)
{
    cl_http_options opt = {.threads = 1, .service = "test"};
    char listen[64];
    cl_http_server *srv = NULL;
    cl_error err;

    (void)state;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", g_port);
    opt.listen = listen;
    assert_int_equal(cl_http_start(&opt, g_router, &srv, &err), CL_UNAVAILABLE);
    assert_null(srv);
    assert_true(strlen(err.message) > 0);
    opt.listen = "127.0.0.1:1,127.0.0.1:2";
    assert_int_equal(cl_http_start(&opt, g_router, &srv, &err), CL_INVALID);
    cl_http_stop(NULL);
}

/* --- raw bytes over a socket -------------------------------------------------------- */

typedef struct raw_response {
    int status;
    char content_type[128];
    json_t *json; /* the body parsed, when it is JSON */
    char *text;   /* the whole response, NUL-terminated */
} raw_response;

/*
 * Sends data as it is (no client fixes it up) and reads the answer until the server
 * closes the connection, which it does after every refusal: requests that ask for a
 * success send "Connection: close" themselves.
 */
static raw_response raw_exchange(int port, const char *data, size_t len)
{
    raw_response r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    struct timeval tv = {10, 0};
    size_t cap = 1 << 16;
    size_t got = 0;
    size_t sent = 0;
    const char *p;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    while (sent < len) {
        ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server may answer and close before it read everything */
        }
        sent += (size_t)n;
    }
    r.text = malloc(cap + 1);
    assert_non_null(r.text);
    for (;;) {
        ssize_t n = recv(fd, r.text + got, cap - got, 0);
        if (n <= 0 || got + (size_t)n == cap) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    r.text[got] = '\0';
    if (got < 12 || strncmp(r.text, "HTTP/1.", 7) != 0) {
        fail_msg("no status line in %zu bytes: %.200s", got, r.text);
    }
    r.status = (int)strtol(r.text + 9, NULL, 10);
    p = strstr(r.text, "\r\nContent-Type:"); /* both civetweb and we spell it so */
    if (p != NULL) {
        p += strlen("\r\nContent-Type:");
        p += strspn(p, " ");
        snprintf(r.content_type, sizeof(r.content_type), "%.*s", (int)strcspn(p, "\r\n"), p);
    }
    p = strstr(r.text, "\r\n\r\n");
    if (p != NULL) {
        r.json = json_loads(p + 4, JSON_DECODE_ANY, NULL);
    }
    return r;
}

static raw_response raw_str(int port, const char *data)
{
    return raw_exchange(port, data, strlen(data));
}

static void raw_free(raw_response *r)
{
    json_decref(r->json);
    free(r->text);
}

/* A problem+json answer with this status, whoever produced it (civetweb or our router). */
static void expect_raw_problem(raw_response *r, int status)
{
    if (r->status != status) {
        fail_msg("want %d, got: %.300s", status, r->text);
    }
    assert_string_equal(r->content_type, "application/problem+json");
    assert_non_null(r->json);
    assert_int_equal(json_integer_value(json_object_get(r->json, "status")), status);
    assert_non_null(strstr(jstr(r->json, "type"), "urn:cleave:problem:"));
    assert_true(strlen(jstr(r->json, "title")) > 0);
    assert_true(json_is_string(json_object_get(r->json, "detail")));
    assert_true(strlen(jstr(r->json, "request_id")) > 0);
}

/* --- what an answer writes of its worker's buffers ---------------------------------- */

#define SCRIBBLE 0xa5

/* Fills the buffers of this thread's worker (all it has before its request) with SCRIBBLE. */
static void h_scribble(cl_http_req *req, void *arg)
{
    (void)arg;
    memset(cl__http_worker_get(), SCRIBBLE, offsetof(cl__http_worker, gzip));
    cl_http_reply_empty(req, 204);
}

/*
 * A JSON answer of some 400 bytes, from a json_t or (?typed=1) from a declared type;
 * ?long=1 adds headers enough to make its head larger than CL__HTTP_HEAD_BYTES.
 */
static void h_some_json(cl_http_req *req, void *arg)
{
    char typed[4] = "";
    char flag[4] = "";
    char value[CL__HTTP_HEADER_VALUE_MAX];
    test_typed t = {0};
    json_t *list = json_array();

    (void)arg;
    if (cl_http_query(req, "long", flag, sizeof(flag)) > 0) {
        memset(value, 'v', sizeof(value) - 1);
        value[sizeof(value) - 1] = '\0';
        /* No assertion on a server thread: the test looks for the headers in the answer. */
        (void)cl_http_set_header(req, "X-Long-1", value);
        (void)cl_http_set_header(req, "X-Long-2", value);
    }
    for (int i = 0; i < 40; i++) {
        json_array_append_new(list, json_string("word"));
        (void)cl_strs_push(&t.words, "word");
    }
    if (cl_http_query(req, "typed", typed, sizeof(typed)) > 0) {
        json_decref(list);
        cl_http_reply_type(req, 200, &test_typed_type, &t);
    } else {
        cl_http_reply_json(req, 200, list);
    }
    cl_schema_free(&test_typed_type, &t);
}

/* How far the answers since the scribble wrote into the worker's buffers, in bytes. */
static void h_written(cl_http_req *req, void *arg)
{
    const unsigned char *w = (const unsigned char *)cl__http_worker_get();
    size_t end = offsetof(cl__http_worker, gzip);

    (void)arg;
    while (end > 0 && w[end - 1] == SCRIBBLE) {
        end--;
    }
    cl_http_reply_json(req, 200, json_pack("{s:I}", "end", (json_int_t)end));
}

/*
 * A JSON answer writes no more of its worker's buffers than the bytes it sends: the pages
 * of a worker that a rare answer alone touched stayed resident, and with 64 workers taken
 * in turn the process grew for minutes under a steady load (ADR 0063).
 */
static void test_http_json_answer_writes_only_what_it_sends(void **state)
{
    static const char *paths[] = {"/some-json", "/some-json?typed=1", "/some-json?long=1"};
    cl_router *r = cl_router_new();
    cl_route routes[] = {
        {"GET", "/scribble", CL_PERM_PUBLIC, h_scribble, NULL, NULL},
        {"GET", "/some-json", CL_PERM_PUBLIC, h_some_json, NULL, "typed long"},
        {"GET", "/written", CL_PERM_PUBLIC, h_written, NULL, NULL},
    };
    /* One worker: every request below is served by the same buffers. */
    cl_http_options opt = {.listen = "127.0.0.1:0", .threads = 1, .service = "test"};
    cl_http_server *srv = NULL;
    cl_error err;
    char line[128];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        assert_int_equal(cl_router_add(r, &routes[i], &err), CL_OK);
    }
    assert_int_equal(cl_http_start(&opt, r, &srv, &err), CL_OK);
    port = cl_http_port(srv);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        raw_response scribble = raw_str(port, "GET /scribble HTTP/1.1\r\nHost: x\r\n"
                                              "Connection: close\r\n\r\n");
        raw_response answer;
        raw_response written;
        json_int_t end;

        assert_int_equal(scribble.status, 204);
        snprintf(line, sizeof(line), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 paths[i]);
        answer = raw_str(port, line);
        assert_int_equal(answer.status, 200);
        assert_true(json_array_size(answer.json) == 40 ||
                    json_array_size(json_object_get(answer.json, "words")) == 40);
        if (strstr(paths[i], "long") != NULL) {
            assert_non_null(strstr(answer.text, "\r\nX-Long-2: vvv"));
            /* The head alone is past what is made aside on the stack: the heap's turn. */
            assert_true(strstr(answer.text, "\r\n\r\n") - answer.text > CL__HTTP_HEAD_BYTES);
        }
        written = raw_str(port, "GET /written HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_int_equal(written.status, 200);
        end = json_integer_value(json_object_get(written.json, "end"));
        if (end != (json_int_t)strlen(answer.text)) {
            fail_msg("%s sent %zu bytes and wrote its worker's buffers up to byte %lld", paths[i],
                     strlen(answer.text), (long long)end);
        }
        raw_free(&scribble);
        raw_free(&answer);
        raw_free(&written);
    }
    cl_http_stop(srv);
    cl_router_free(r);
}

/* Appends s to buf[size] at *len, failing the test when it does not fit. */
static void append(char *buf, size_t size, size_t *len, const char *s)
{
    int n = snprintf(buf + *len, size - *len, "%s", s);

    assert_true(n >= 0 && (size_t)n < size - *len);
    *len += (size_t)n;
}

static char *repeat_into(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t size = strlen(prefix) + n + strlen(suffix) + 1;
    size_t len = 0;
    char *s = malloc(size);

    assert_non_null(s);
    append(s, size, &len, prefix);
    memset(s + len, c, n);
    len += n;
    s[len] = '\0';
    append(s, size, &len, suffix);
    return s;
}

/* The headers every answer carries, the server's own refusals included (OWASP). */
static void assert_security_headers(const char *text)
{
    static const char *const want[] = {
        "X-Content-Type-Options: nosniff\r\n",
        "X-Frame-Options: DENY\r\n",
        "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n",
        "Referrer-Policy: no-referrer\r\n",
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(text, want[i]) == NULL) {
            fail_msg("no %.*s in:\n%.600s", (int)strlen(want[i]) - 2, want[i], text);
        }
    }
}

static void test_http_every_answer_has_the_security_headers(void **state)
{
    raw_response r;
    char *big;

    (void)state;
    r = raw_str(g_port, "GET /items/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_security_headers(r.text);
    raw_free(&r);
    r = raw_str(g_port, "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_security_headers(r.text);
    raw_free(&r);
    /* civetweb's own refusal, written by the server in one piece. */
    big = repeat_into("GET /items/1?q=", 'a', 20000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    r = raw_str(g_port, big);
    assert_int_equal(r.status, 414);
    assert_security_headers(r.text);
    raw_free(&r);
    free(big);
}

static void test_http_civetweb_refusals_are_problems(void **state)
{
    char buf[512];
    char *big;
    size_t len;
    raw_response r;

    (void)state;
    /* An over-long request line: 414, whether the path or the query is long. */
    big = repeat_into("GET /items/1?q=", 'a', 20000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    r = raw_str(g_port, big);
    expect_raw_problem(&r, 414);
    raw_free(&r);
    free(big);
    big = repeat_into("GET /items/", 'a', 20000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    r = raw_str(g_port, big);
    expect_raw_problem(&r, 414);
    raw_free(&r);
    free(big);

    /* A header block over the limit, by size or by count: 431. */
    big = repeat_into("GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: ", 'b', 30000, "\r\n\r\n");
    r = raw_str(g_port, big);
    expect_raw_problem(&r, 431);
    raw_free(&r);
    free(big);
    big = malloc(8192);
    assert_non_null(big);
    len = 0;
    append(big, 8192, &len, "GET /items/1 HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 70; i++) {
        snprintf(buf, sizeof(buf), "X-H%d: %d\r\n", i, i);
        append(big, 8192, &len, buf);
    }
    append(big, 8192, &len, "\r\n");
    r = raw_str(g_port, big);
    expect_raw_problem(&r, 431);
    raw_free(&r);
    free(big);

    /* What civetweb refuses itself: a head that fills its whole buffer, a control
     * character, an HTTP version it does not speak. */
    big = repeat_into("GET /", 'a', 65536 - 5, "");
    r = raw_str(g_port, big);
    expect_raw_problem(&r, 400);
    raw_free(&r);
    free(big);
    r = raw_str(g_port, "GET /items/1 HTTP/1.1\r\nHost: x\r\nX-A: a\001b\r\n\r\n");
    expect_raw_problem(&r, 400);
    raw_free(&r);
    r = raw_str(g_port, "GET /items/1 HTTP/3.0\r\nHost: x\r\n\r\n");
    expect_raw_problem(&r, 505);
    raw_free(&r);

    /* A method civetweb does not know is not implemented (501), and named; TRACE is one. */
    r = raw_str(g_port, "TRACE /items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_raw_problem(&r, 501);
    assert_string_equal(jstr(r.json, "detail"), "TRACE is not a method this server serves");
    raw_free(&r);
    r = raw_str(g_port, "BREW /items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_raw_problem(&r, 501);
    assert_string_equal(jstr(r.json, "detail"), "BREW is not a method this server serves");
    raw_free(&r);
    /* civetweb's other bad requests say what they may be, not "Bad request". */
    r = raw_str(g_port, "GET /items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n");
    expect_raw_problem(&r, 400);
    assert_non_null(strstr(jstr(r.json, "detail"), "Transfer-Encoding is not chunked"));
    raw_free(&r);

    /* Framing civetweb would repair silently is refused, naming the header. */
    r = raw_str(g_port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 2abc\r\n\r\n{}");
    expect_raw_problem(&r, 400);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "invalid_params"), 0), "name"),
                        "Content-Length");
    raw_free(&r);

    /* The absolute form (RFC 9112 3.2.2) is served like the origin form. */
    snprintf(buf, sizeof(buf),
             "GET http://127.0.0.1:%d/items/7?q=abs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Connection: close\r\n\r\n",
             g_port);
    r = raw_str(g_port, buf);
    if (r.status != 200) {
        fail_msg("absolute form: %.300s", r.text);
    }
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(jstr(r.json, "id"), "7");
    assert_string_equal(jstr(r.json, "q"), "abs");
    raw_free(&r);

    /* And the server still serves. */
    response *resp = http_simple(g_port, "GET", "/items/1");
    assert_int_equal(resp->status, 200);
    response_free(resp);
}

/* The number of answers in a raw exchange's text: each starts with its status line. */
static int answers_in(const raw_response *r)
{
    int n = 0;

    for (const char *p = r->text; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++) {
        n++;
    }
    return n;
}

/*
 * A field the server reads once may not come twice (RFC 9110 5.3): civetweb hands over
 * the first, so the second was ignored unseen, and for the framing fields a proxy that
 * reads the last would frame the connection otherwise (RFC 9112 6.3). An HTTP/1.1 request
 * must name its Host (RFC 9112 3.2). Fields that are lists may repeat.
 */
static void test_http_a_field_read_once_may_not_repeat(void **state)
{
    static const struct {
        const char *field;
        const char *lines;
    } twice[] = {
        {"Host", "Host: x\r\nhost: y\r\n"},
        {"Content-Length", "Host: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n"},
        {"Transfer-Encoding",
         "Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"},
        {"Content-Type",
         "Host: x\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n"},
        {"Authorization", "Host: x\r\nAuthorization: Bearer a\r\nAUTHORIZATION: Bearer b\r\n"},
        {"Idempotency-Key", "Host: x\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\n"},
        {"X-Request-Id", "Host: x\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n"},
        {"X-Cleave-Principal", "Host: x\r\nX-Cleave-Principal: a\r\nX-Cleave-Principal: b\r\n"},
    };
    char buf[512];
    char want[64];
    raw_response r;

    (void)state;
    for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
        snprintf(buf, sizeof(buf), "GET /basic HTTP/1.1\r\n%s\r\n", twice[i].lines);
        r = raw_str(g_port, buf);
        expect_raw_problem(&r, 400);
        assert_string_equal(
            jstr(json_array_get(json_object_get(r.json, "invalid_params"), 0), "name"),
            twice[i].field);
        snprintf(want, sizeof(want), "%s is given more than once", twice[i].field);
        assert_string_equal(jstr(r.json, "detail"), want);
        raw_free(&r);
    }

    /*
     * Two lengths: read by the first, the body was "{}" and a second request followed,
     * answered too. Refused, the connection ends with the one answer.
     */
    r = raw_str(g_port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 2\r\nContent-Length: 53\r\n\r\n"
                        "{}GET /basic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_raw_problem(&r, 400);
    if (answers_in(&r) != 1) {
        fail_msg("one answer expected: %.600s", r.text);
    }
    raw_free(&r);

    /* HTTP/1.1 needs Host; HTTP/1.0 does not. */
    r = raw_str(g_port, "GET /basic HTTP/1.1\r\nConnection: close\r\n\r\n");
    expect_raw_problem(&r, 400);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "invalid_params"), 0), "name"),
                        "Host");
    raw_free(&r);
    r = raw_str(g_port, "GET /basic HTTP/1.0\r\n\r\n");
    if (r.status != 200) {
        fail_msg("HTTP/1.0 without Host: %.300s", r.text);
    }
    raw_free(&r);

    /* Lists, and fields the server does not read, may repeat. */
    r = raw_str(g_port, "GET /basic HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n"
                        "Accept: application/json\r\nX-Other: 1\r\nX-Other: 2\r\n"
                        "Connection: close\r\n\r\n");
    if (r.status != 200) {
        fail_msg("repeated lists: %.300s", r.text);
    }
    raw_free(&r);
}

/*
 * W3C Trace Context (3.2): a request continues the trace its traceparent names, unless it
 * gives two, which is malformed and starts a new trace. tracestate may come on several
 * lines, joined in order; together too long, it is dropped whole.
 */
static void test_http_trace_context_per_w3c(void **state)
{
    static const char parent[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    char buf[2048];
    char big[301];
    raw_response r;

    (void)state;
    snprintf(buf, sizeof(buf),
             "GET /trace HTTP/1.1\r\nHost: x\r\ntraceparent: %s\r\ntracestate: a=1\r\n"
             "tracestate: b=2, c=3\r\nConnection: close\r\n\r\n",
             parent);
    r = raw_str(g_port, buf);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(jstr(r.json, "tracestate"), "a=1,b=2, c=3");
    raw_free(&r);

    snprintf(buf, sizeof(buf),
             "GET /trace HTTP/1.1\r\nHost: x\r\ntraceparent: %s\r\ntraceparent: %s\r\n"
             "tracestate: a=1\r\nConnection: close\r\n\r\n",
             parent, parent);
    r = raw_str(g_port, buf);
    assert_int_equal(r.status, 200);
    assert_int_equal(strlen(jstr(r.json, "trace_id")), 32);
    assert_string_not_equal(jstr(r.json, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(jstr(r.json, "tracestate"), "");
    raw_free(&r);

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(buf, sizeof(buf),
             "GET /trace HTTP/1.1\r\nHost: x\r\ntraceparent: %s\r\ntracestate: a=%s\r\n"
             "tracestate: b=%s\r\nConnection: close\r\n\r\n",
             parent, big, big);
    r = raw_str(g_port, buf);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(jstr(r.json, "tracestate"), "");
    raw_free(&r);
}

/* The name in invalid_params[0] of a 400 problem. */
static const char *invalid_param(response *resp)
{
    return jstr(json_array_get(json_object_get(resp->json, "invalid_params"), 0), "name");
}

static void test_http_query_is_checked_before_the_handler(void **state)
{
    static const struct {
        const char *path;
        const char *param;
    } bad[] = {
        {"/items/1?q=%%%garbage", "q"}, {"/items/1?q=%ZZ", "q"},     {"/items/1?q=a%00b", "q"},
        {"/items/1?q=abc%", "q"},       {"/items/1?nope=1", "nope"}, {"/items/1?q=1&q=2", "q"},
        {"/items/1?q=1&&x=2", "query"}, {"/items/1?%zz=1", "%zz"},   {"/silent?x=1", "x"},
        {"/items/1?x=1&", "query"},
    };
    response *resp;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *instance = bad[i].path;
        char path[64];

        snprintf(path, sizeof(path), "%.*s", (int)strcspn(instance, "?"), instance);
        resp = http_simple(g_port, "GET", bad[i].path);
        expect_problem(resp, 400, "invalid", path);
        assert_string_equal(invalid_param(resp), bad[i].param);
        response_free(resp);
    }
    /* A declared name without a value is present and empty. */
    resp = http_simple(g_port, "GET", "/items/1?q=&x");
    assert_int_equal(resp->status, 200);
    assert_string_equal(jstr(resp->json, "q"), "");
    response_free(resp);
}

static void test_http_query_int_is_strict(void **state)
{
    static const char *const bad[] = {
        "/num?n=+5",
        "/num?n=%205",
        "/num?n=5%00",
        "/num?n=%ZZ",
        "/num?n=",
        "/num?n=5x",
        "/num?n=0",
        "/num?n=101",
        "/num?n=-1",
        "/num?n=5%20",
        "/num?n",
        "/num?n=0x10",
        "/num?n=99999999999999999999999",
    };
    response *resp;

    (void)state;
    resp = http_simple(g_port, "GET", "/num?n=42");
    assert_int_equal(resp->status, 200);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "n")), 42);
    response_free(resp);
    resp = http_simple(g_port, "GET", "/num?n=%31%30%30");
    assert_int_equal(resp->status, 200);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "n")), 100);
    response_free(resp);
    resp = http_simple(g_port, "GET", "/num");
    assert_int_equal(resp->status, 200);
    assert_int_equal(json_integer_value(json_object_get(resp->json, "n")), -1);
    response_free(resp);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp = http_simple(g_port, "GET", bad[i]);
        if (resp->status != 400) {
            fail_msg("%s: %ld", bad[i], resp->status);
        }
        expect_problem(resp, 400, "invalid", "/num");
        assert_string_equal(invalid_param(resp), "n");
        response_free(resp);
    }
}

/* Every byte of s is part of well-formed UTF-8 (jansson would not have parsed it else). */
static void expect_problem_text_ok(const json_t *problem)
{
    assert_non_null(problem);
    assert_true(strlen(jstr(problem, "detail")) > 0);
}

static void test_http_problems_survive_any_input_bytes(void **state)
{
    char path[1024];
    size_t len;
    response *resp;
    raw_response r;

    (void)state;
    /* A long non-ASCII value quoted in a message cut at 255 bytes: a 404, not a 500. */
    len = 0;
    append(path, sizeof(path), &len, "/fail/sku-12?why="); /* 19 bytes before: 255 - 19 splits */
    for (int i = 0; i < 100; i++) {
        append(path, sizeof(path), &len, "%E2%82%AC"); /* U+20AC, three bytes */
    }
    resp = http_simple(g_port, "GET", path);
    expect_problem(resp, 404, "not-found", "/fail/sku-12");
    assert_non_null(strstr(jstr(resp->json, "detail"), "no product sku-12 (\xE2\x82\xAC"));
    assert_true(strlen(jstr(resp->json, "detail")) > 240);
    response_free(resp);

    /* A long non-ASCII field name cut at 63 bytes: a 400 naming (the start of) it. */
    len = 0;
    append(path, sizeof(path), &len, "/fail/ff");
    for (int i = 0; i < 40; i++) {
        append(path, sizeof(path), &len, "%C3%A9"); /* U+00E9, two bytes */
    }
    resp = http_simple(g_port, "GET", path);
    assert_int_equal(resp->status, 400);
    assert_non_null(resp->json);
    assert_int_equal(strncmp(invalid_param(resp), "ff\xC3\xA9", 4), 0);
    assert_int_equal(strlen(invalid_param(resp)) % 2, 0); /* "ff" + whole characters */
    expect_problem_text_ok(resp->json);
    response_free(resp);

    /* Bytes that are not UTF-8 at all are replaced, never refused by the encoder. */
    resp = http_simple(g_port, "GET", "/fail/%FF%FE");
    expect_problem(resp, 404, "not-found", "/fail/%FF%FE");
    assert_string_equal(jstr(resp->json, "detail"), "no product \xEF\xBF\xBD\xEF\xBF\xBD");
    response_free(resp);
    /* Raw bytes that are not ASCII in the target: civetweb refuses them, as a problem. */
    r = raw_str(g_port, "GET /fail/\xFF\xC3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_raw_problem(&r, 400);
    raw_free(&r);
}

static void test_http_unencodable_body_is_500(void **state)
{
    response *resp = http_simple(g_port, "GET", "/nobody");

    (void)state;
    expect_problem(resp, 500, "internal", "/nobody");
    response_free(resp);
}

/* cl_http_reply_type sends json_dumps' text of the struct, in the buffer or past it. */
static void test_http_typed_reply_is_what_jansson_writes(void **state)
{
    /*
     * The text is 11 + 103 n bytes: up to 318 it is written in the worker's buffer (from
     * some 314, with the head it no longer fits there and goes out in two writes), from
     * 319 in an allocation of its own.
     */
    static const int counts[] = {0, 1, 79, 80, 81, 200, 313, 316, 318, 319, 400};
    response *resp;

    (void)state;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        char path[32];
        json_t *want = json_pack("{s:[]}", "words");
        char *text;

        snprintf(path, sizeof(path), "/typed?n=%d", counts[i]);
        for (int k = 0; k < counts[i]; k++) {
            char word[101];
            memset(word, 'w', 100);
            word[100] = '\0';
            word[0] = (char)('a' + k % 26);
            json_array_append_new(json_object_get(want, "words"), json_string(word));
        }
        if (counts[i] == 0) {
            json_object_del(want, "words"); /* a list never given is left out */
        }
        text = json_dumps(want, JSON_COMPACT);
        resp = http_simple(g_port, "GET", path);
        assert_int_equal(resp->status, 200);
        assert_int_equal(resp->body_len, strlen(text));
        assert_memory_equal(resp->body, text, strlen(text));
        response_free(resp);
        free(text);
        json_decref(want);
    }
    resp = http_simple(g_port, "GET", "/typed?n=3&bad=1");
    expect_problem(resp, 500, "internal", "/typed");
    response_free(resp);
}

static void test_http_head_answers_like_get(void **state)
{
    static const char *const paths[] = {"/bytes",   "/fail/sku-1", "/fail/invalid",
                                        "/nowhere", "/num?n=7",    "/num?n=x"};
    request rq = {"GET", NULL, NULL, NULL, 0, 0, "head-check", NULL};

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        response *get;
        response *head;
        char length[32];
        char ctype[128];

        rq.path = paths[i];
        rq.method = "GET";
        get = http_do(g_port, &rq);
        snprintf(length, sizeof(length), "%s", header(get, "Content-Length"));
        snprintf(ctype, sizeof(ctype), "%s", header(get, "Content-Type"));
        rq.method = "HEAD";
        head = http_do(g_port, &rq);
        assert_int_equal(head->status, get->status);
        assert_int_equal(head->body_len, 0);
        assert_string_equal(header(head, "Content-Length"), length);
        assert_string_equal(header(head, "Content-Type"), ctype);
        assert_int_equal(strtol(length, NULL, 10), (long)get->body_len);
        response_free(get);
        response_free(head);
    }
}

/* --- the RPC server ------------------------------------------------------------------- */

static int64_t g_rpc_deadline;
static int64_t g_rpc_wait;

static cl_status fake_ping(const cl_handle *module, cl_ctx *ctx, const void *req, void *resp)
{
    (void)module;
    (void)req;
    (void)resp;
    g_rpc_deadline = ctx->deadline_ms;
    g_rpc_wait = ctx->wait_ms;
    return CL_OK;
}

#define RPC_TOKEN "unit-token"

static raw_response rpc_call_as(int port, const char *deadline, const char *authorization)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "POST /rpc/v1/fake/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 2\r\nX-Cleave-Deadline-Ms: %s\r\n%sConnection: close\r\n\r\n{}",
             deadline, authorization);
    return raw_str(port, buf);
}

static raw_response rpc_call(int port, const char *deadline)
{
    return rpc_call_as(port, deadline, "Authorization: Bearer " RPC_TOKEN "\r\n");
}

/*
 * A caller's wait (cl_ctx.wait_ms) reaches the operation of a remote module: the remote
 * binding sends it as X-Cleave-Wait-Ms, the service reads it back; without one it is 0, and
 * a value that is not a number of milliseconds is refused naming the header.
 */
static void test_rpc_wait_travels_to_the_callee(void **state)
{
    static const cl_op ops[] = {{"ping", &cl_empty_type, &cl_empty_type, 0, fake_ping}};
    static const cl_module_api api = {.name = "fake", .ops_version = 1, .ops = ops, .nops = 1};
    cl_rpc_service svc = {.api = &api, .dev_token = RPC_TOKEN};
    cl_http_options opt = {
        .listen = "127.0.0.1:0", .threads = 2, .request_timeout_ms = 5000, .service = "test"};
    cl_rpc_options copt = {.dev_token = RPC_TOKEN};
    cl_router *r = cl_router_new();
    cl_http_server *srv = NULL;
    cl_rpc_client *c = NULL;
    cl_empty none = {0}, out = {0};
    cl_error err;
    cl_ctx ctx;
    raw_response resp;
    char url[64];

    (void)state;
    assert_int_equal(cl_rpc_routes(r, &svc, &err), CL_OK);
    assert_int_equal(cl_http_start(&opt, r, &srv, &err), CL_OK);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", cl_http_port(srv));
    assert_int_equal(cl_rpc_client_new("fake", url, &copt, &c, &err), CL_OK);

    cl_ctx_init(&ctx, 5000);
    ctx.wait_ms = 1500;
    g_rpc_wait = -1;
    assert_int_equal(cl_rpc_call(c, &ops[0], &ctx, &none, &out), CL_OK);
    assert_int_equal(g_rpc_wait, 1500);
    cl_ctx_init(&ctx, 5000);
    assert_int_equal(cl_rpc_call(c, &ops[0], &ctx, &none, &out), CL_OK);
    assert_int_equal(g_rpc_wait, 0);

    resp = rpc_call_as(cl_http_port(srv), "1000",
                       "Authorization: Bearer " RPC_TOKEN "\r\nX-Cleave-Wait-Ms: soon\r\n");
    expect_raw_problem(&resp, 400);
    assert_string_equal(
        jstr(json_array_get(json_object_get(resp.json, "invalid_params"), 0), "name"),
        "X-Cleave-Wait-Ms");
    raw_free(&resp);

    cl_rpc_client_free(c);
    cl_http_stop(srv);
    cl_router_free(r);
}

/* Default deny: a process configured with no token accepts no service call at all. */
static void test_rpc_without_a_token_accepts_no_call(void **state)
{
    static const cl_op ops[] = {{"ping", &cl_empty_type, &cl_empty_type, 0, fake_ping}};
    static const cl_module_api api = {.name = "fake", .ops_version = 1, .ops = ops, .nops = 1};
    cl_rpc_service open = {&api, NULL, NULL, NULL, NULL};
    cl_http_options opt = {
        .listen = "127.0.0.1:0", .threads = 2, .request_timeout_ms = 5000, .service = "test"};
    cl_router *r = cl_router_new();
    cl_http_server *srv = NULL;
    cl_error err;
    raw_response resp;

    (void)state;
    assert_int_equal(cl_rpc_routes(r, &open, &err), CL_OK);
    assert_int_equal(cl_http_start(&opt, r, &srv, &err), CL_OK);
    resp = rpc_call_as(cl_http_port(srv), "1000", "");
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr(resp.text, "accepts no service calls"));
    raw_free(&resp);
    resp = rpc_call_as(cl_http_port(srv), "1000", "Authorization: Bearer anything\r\n");
    assert_int_equal(resp.status, 401);
    raw_free(&resp);
    cl_http_stop(srv);
    cl_router_free(r);
}

static void test_rpc_deadline_header_is_bounded(void **state)
{
    static const cl_op ops[] = {{"ping", &cl_empty_type, &cl_empty_type, 0, fake_ping}};
    static const cl_module_api api = {.name = "fake", .ops_version = 1, .ops = ops, .nops = 1};
    cl_rpc_service svc = {.api = &api, .dev_token = RPC_TOKEN};
    cl_http_options opt = {
        .listen = "127.0.0.1:0", .threads = 2, .request_timeout_ms = 5000, .service = "test"};
    cl_router *r = cl_router_new();
    cl_http_server *srv = NULL;
    cl_error err;
    raw_response resp;
    int64_t before;

    (void)state;
    assert_int_equal(cl_rpc_routes(r, &svc, &err), CL_OK);
    assert_int_equal(cl_http_start(&opt, r, &srv, &err), CL_OK);

    /* Past any sane deadline: clamped to the server's own timeout, no overflow. */
    before = cl_now_ms();
    resp = rpc_call(cl_http_port(srv), "9223372036854775807");
    assert_int_equal(resp.status, 200);
    raw_free(&resp);
    assert_true(g_rpc_deadline > before);
    assert_true(g_rpc_deadline <= cl_now_ms() + 5000);

    /* A sooner deadline wins. */
    before = cl_now_ms();
    resp = rpc_call(cl_http_port(srv), "250");
    assert_int_equal(resp.status, 200);
    raw_free(&resp);
    assert_true(g_rpc_deadline >= before + 250 && g_rpc_deadline <= cl_now_ms() + 250);

    /* Malformed: refused naming the header, never ignored. */
    resp = rpc_call(cl_http_port(srv), "-5");
    expect_raw_problem(&resp, 400);
    assert_string_equal(
        jstr(json_array_get(json_object_get(resp.json, "invalid_params"), 0), "name"),
        "X-Cleave-Deadline-Ms");
    raw_free(&resp);
    resp = rpc_call(cl_http_port(srv), "12abc");
    expect_raw_problem(&resp, 400);
    raw_free(&resp);

    /* Still up. */
    resp = rpc_call(cl_http_port(srv), "1000");
    assert_int_equal(resp.status, 200);
    raw_free(&resp);
    cl_http_stop(srv);
    cl_router_free(r);
}

/* --- stop with a request in flight -------------------------------------------------- */

typedef struct slow_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;
    int released;
    int stopped;
    cl_http_server *srv;
    int port;
    response *resp;
    CURLcode rc;
} slow_gate;

static void h_slow(cl_http_req *req, void *arg)
{
    slow_gate *g = arg;

    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->released) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    cl_http_reply_json(req, 200, json_pack("{s:b}", "slow", 1));
}

static void h_ping(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_json(req, 200, json_pack("{s:b}", "pong", 1));
}

static void *slow_client(void *arg)
{
    slow_gate *g = arg;
    request rq = {"GET", "/slow", NULL, NULL, 0, 0, NULL, NULL};

    g->resp = http_do_raw(g->port, &rq, &g->rc);
    return NULL;
}

static void *stopper(void *arg)
{
    slow_gate *g = arg;

    cl_http_stop(g->srv);
    pthread_mutex_lock(&g->mu);
    g->stopped = 1;
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void test_http_stop_lets_inflight_request_finish(void **state)
{
    slow_gate g;
    cl_router *r = cl_router_new();
    cl_route slow = {"GET", "/slow", CL_PERM_PUBLIC, h_slow, &g, NULL};
    cl_route ping = {"GET", "/ping", CL_PERM_PUBLIC, h_ping, NULL, NULL};
    cl_http_options opt = {.listen = "127.0.0.1:0", .threads = 2, .service = "test"};
    pthread_t client;
    pthread_t stop;
    cl_error err;
    response *resp;
    int polls = 0;

    (void)state;
    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    assert_int_equal(cl_router_add(r, &slow, &err), CL_OK);
    assert_int_equal(cl_router_add(r, &ping, &err), CL_OK);
    assert_int_equal(cl_http_start(&opt, r, &g.srv, &err), CL_OK);
    g.port = cl_http_port(g.srv);

    assert_int_equal(pthread_create(&client, NULL, slow_client, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) {
        pthread_cond_wait(&g.cv, &g.mu);
    }
    pthread_mutex_unlock(&g.mu);

    assert_int_equal(pthread_create(&stop, NULL, stopper, &g), 0);
    /*
     * The stop is under way once new requests are refused with 503. Nothing signals that
     * moment to a client, so ask until it happens; each try is a full round trip, and
     * the count bounds the loop.
     */
    for (;;) {
        resp = http_simple(g.port, "GET", "/ping");
        if (resp->status == 503) {
            break;
        }
        assert_int_equal(resp->status, 200);
        response_free(resp);
        assert_true(++polls < 100000);
    }
    expect_problem(resp, 503, "shutting-down", "/ping");
    assert_string_equal(header(resp, "Connection"), "close");
    response_free(resp);

    pthread_mutex_lock(&g.mu);
    /* The stop cannot have finished: a request is still in flight. */
    assert_int_equal(g.stopped, 0);
    g.released = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);

    pthread_join(client, NULL);
    pthread_join(stop, NULL);
    assert_int_equal(g.stopped, 1);
    assert_non_null(g.resp);
    assert_int_equal(g.rc, CURLE_OK);
    assert_int_equal(g.resp->status, 200);
    assert_true(json_is_true(json_object_get(g.resp->json, "slow")));
    response_free(g.resp);
    cl_router_free(r);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
}

/* --- a request as the server starts ---------------------------------------------------- */

/* A loopback port that was free a moment ago. */
static int port_free_now(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

typedef struct early_client {
    int port;
    int status; /* of the answer; -1: no connection within 10 s */
} early_client;

/* Connects the moment the port listens (trying again at once until then) and asks /ping. */
static void *early_ping(void *arg)
{
    static const char ask[] = "GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    early_client *c = arg;
    int64_t end = cl_now_ms() + 10000;
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)c->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->status = -1;
    while (cl_now_ms() < end) {
        char got[64] = {0};
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        if (fd < 0) {
            break;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            if (send(fd, ask, sizeof(ask) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(ask) - 1) &&
                recv(fd, got, sizeof(got) - 1, MSG_WAITALL) >= 12) {
                c->status = (int)strtol(got + 9, NULL, 10);
            }
            close(fd);
            break;
        }
        close(fd);
    }
    return NULL;
}

static atomic_int spinning;

/* Keeps a core busy until spinning is cleared: the starting server's thread gets preempted. */
static void *spin(void *arg)
{
    volatile uint64_t n = 0;

    (void)arg;
    while (atomic_load(&spinning)) {
        n++;
    }
    return NULL;
}

/*
 * The first request a server takes is routed like any other: no moment after it listens
 * where civetweb answers on its own (a 404 of its own, once, to a client of a host that
 * was restarting: saga_two_hosts_pg). The machine is kept busy meanwhile, as it was
 * then: with an idle one the request seldom came before the route did.
 */
static void test_http_routes_the_first_request_it_takes(void **state)
{
    cl_router *r = cl_router_new();
    cl_route ping = {"GET", "/ping", CL_PERM_PUBLIC, h_ping, NULL, NULL};
    pthread_t spinner[3];
    cl_error err;

    (void)state;
    assert_int_equal(cl_router_add(r, &ping, &err), CL_OK);
    atomic_store(&spinning, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&spinner[i], NULL, spin, NULL), 0);
    }
    for (int round = 0; round < 300; round++) {
        early_client c = {.port = port_free_now()};
        char listen[32];
        cl_http_options opt = {.listen = listen, .threads = 2, .service = "test"};
        cl_http_server *srv = NULL;
        pthread_t t;

        snprintf(listen, sizeof(listen), "127.0.0.1:%d", c.port);
        assert_int_equal(pthread_create(&t, NULL, early_ping, &c), 0);
        assert_int_equal(cl_http_start(&opt, r, &srv, &err), CL_OK);
        pthread_join(t, NULL);
        cl_http_stop(srv);
        if (c.status != 200) {
            atomic_store(&spinning, 0);
            fail_msg("round %d: the first request got %d", round, c.status);
        }
    }
    atomic_store(&spinning, 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(spinner[i], NULL);
    }
    cl_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_echoes_json),
        cmocka_unit_test(test_http_accepts_json_variants),
        cmocka_unit_test(test_http_malformed_json_is_400),
        cmocka_unit_test(test_http_wrong_content_type_is_415),
        cmocka_unit_test(test_http_oversized_body_is_413),
        cmocka_unit_test(test_http_too_deep_json_is_400),
        cmocka_unit_test(test_http_object_only_refuses_array),
        cmocka_unit_test(test_http_unknown_route_is_404),
        cmocka_unit_test(test_http_wrong_method_is_405_with_allow),
        cmocka_unit_test(test_http_request_id_echoed_or_generated),
        cmocka_unit_test(test_http_params_query_and_headers),
        cmocka_unit_test(test_http_query_dup_copies_or_refuses_naming_the_parameter),
        cmocka_unit_test(test_http_handler_without_reply_is_500),
        cmocka_unit_test(test_http_reply_error_problem_shape),
        cmocka_unit_test(test_http_problem_extra_cannot_override),
        cmocka_unit_test(test_http_empty_and_bytes_replies),
        cmocka_unit_test(test_http_bounds_on_the_target),
        cmocka_unit_test(test_http_writes_access_log),
        cmocka_unit_test(test_http_start_refuses_taken_port),
        cmocka_unit_test(test_http_civetweb_refusals_are_problems),
        cmocka_unit_test(test_http_a_field_read_once_may_not_repeat),
        cmocka_unit_test(test_http_trace_context_per_w3c),
        cmocka_unit_test(test_http_every_answer_has_the_security_headers),
        cmocka_unit_test(test_http_query_is_checked_before_the_handler),
        cmocka_unit_test(test_http_query_int_is_strict),
        cmocka_unit_test(test_http_problems_survive_any_input_bytes),
        cmocka_unit_test(test_http_unencodable_body_is_500),
        cmocka_unit_test(test_http_typed_reply_is_what_jansson_writes),
        cmocka_unit_test(test_http_head_answers_like_get),
        cmocka_unit_test(test_rpc_deadline_header_is_bounded),
        cmocka_unit_test(test_rpc_wait_travels_to_the_callee),
        cmocka_unit_test(test_rpc_without_a_token_accepts_no_call),
        cmocka_unit_test(test_http_stop_lets_inflight_request_finish),
        cmocka_unit_test(test_http_json_answer_writes_only_what_it_sends),
        cmocka_unit_test(test_http_routes_the_first_request_it_takes),
        cmocka_unit_test(test_http_reads_form_bodies),
        cmocka_unit_test(test_http_basic_auth_decodes_or_refuses),
        cmocka_unit_test(test_http_form_decode),
        cmocka_unit_test(test_http_refuses_malformed_form_bodies),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
