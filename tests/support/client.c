/* A libcurl client for tests: one easy handle per thread, reused for keep-alive. */
#include "client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    buf *b = arg;
    size_t n = size * nmemb;
    char *d = realloc(b->data, b->len + n + 1);

    if (d == NULL) {
        return 0;
    }
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t size)
{
    size_t len = strlen(name);

    if (n > len + 1 && strncasecmp(line, name, len) == 0 && line[len] == ':') {
        const char *v = line + len + 1;
        size_t vn = n - len - 1;
        while (vn > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) {
            vn--;
        }
        if (vn >= size) {
            vn = size - 1;
        }
        memcpy(out, v, vn);
        out[vn] = '\0';
    }
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    test_resp *r = arg;
    size_t n = size * nmemb;

    header_value(line, n, "Content-Type", r->content_type, sizeof(r->content_type));
    header_value(line, n, "X-Request-Id", r->request_id, sizeof(r->request_id));
    header_value(line, n, "ETag", r->etag, sizeof(r->etag));
    header_value(line, n, "Location", r->location, sizeof(r->location));
    header_value(line, n, "Allow", r->allow, sizeof(r->allow));
    header_value(line, n, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
    header_value(line, n, "Cache-Status", r->cache_status, sizeof(r->cache_status));
    header_value(line, n, "Age", r->age, sizeof(r->age));
    header_value(line, n, "Cache-Control", r->cache_control, sizeof(r->cache_control));
    header_value(line, n, "Vary", r->vary, sizeof(r->vary));
    header_value(line, n, "Content-Encoding", r->content_encoding, sizeof(r->content_encoding));
    header_value(line, n, "Content-Length", r->content_length, sizeof(r->content_length));
    /* The blank line that ends the header block (of the final answer, after any 1xx). */
    if (n == 2 && line[0] == '\r' && line[1] == '\n') {
        r->complete = 1;
    }
    return n;
}

/*
 * Appends the exchange to the JSON-lines file that CL_TEST_EXCHANGES names, when it
 * is set: tests/docs/validate_exchanges.cjs then checks every response the suites saw
 * against docs/openapi.yaml, so the document cannot drift from what the server sends.
 * Suites with several client threads share the file, hence the lock; one line is
 * written with one call so a line is never split.
 */
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

static void record_exchange(const char *method, const char *path, const test_resp *r)
{
    const char *file = getenv("CL_TEST_EXCHANGES");
    const char *failure = "out of memory";
    json_t *line = NULL;
    json_t *text = NULL;
    char *out = NULL;
    FILE *f = NULL;

    if (file == NULL || file[0] == '\0') {
        return;
    }
    line = json_pack("{s:s, s:s, s:I, s:s, s:I}", "method", method, "path", path, "status",
                     (json_int_t)r->status, "content_type", r->content_type, "body_len",
                     (json_int_t)r->body_len);
    if (line == NULL) {
        goto out;
    }
    if (r->json != NULL) {
        json_object_set(line, "body", r->json);
    } else if (r->body_len > 0) {
        /* Not JSON (or not UTF-8, then null): the validator reports it where JSON is promised. */
        text = json_stringn(r->body, r->body_len);
        json_object_set(line, "body_text", text != NULL ? text : json_null());
    }
    out = json_dumps(line, JSON_COMPACT);
    if (out == NULL) {
        goto out;
    }
    pthread_mutex_lock(&record_lock);
    f = fopen(file, "a");
    if (f == NULL) {
        failure = strerror(errno);
    } else {
        fprintf(f, "%s\n", out);
        fclose(f);
        failure = NULL;
    }
    pthread_mutex_unlock(&record_lock);
out:
    if (failure != NULL) {
        /* A lost record would shrink what the validator checks without anyone noticing. */
        fprintf(stderr, "test client: cannot record %s %s in %s: %s\n", method, path, file,
                failure);
    }
    free(out);
    json_decref(text);
    json_decref(line);
}

static _Thread_local CURL *thread_curl;

/*
 * "Authorization: Bearer <token>" for requests that name no Authorization: the one set
 * for their base URL, else the default one, else none. Set before threads send requests.
 */
#define BEARER_BASES 8
static char default_authorization[8192];
static struct {
    char base[64];
    char header[8192];
} bearers[BEARER_BASES];

static void bearer_header(char *out, size_t size, const char *token)
{
    out[0] = '\0';
    if (token != NULL) {
        snprintf(out, size, "Authorization: Bearer %s", token);
    }
}

void test_http_set_bearer(const char *token)
{
    bearer_header(default_authorization, sizeof(default_authorization), token);
}

void test_http_set_bearer_for(const char *base, const char *token)
{
    int free_slot = -1;

    for (int i = 0; i < BEARER_BASES; i++) {
        if (strcmp(bearers[i].base, base) == 0 || (free_slot < 0 && bearers[i].base[0] == '\0')) {
            free_slot = i;
            if (strcmp(bearers[i].base, base) == 0) {
                break;
            }
        }
    }
    /* Full: the oldest entry makes room (tests start few gateways). */
    free_slot = free_slot < 0 ? 0 : free_slot;
    snprintf(bearers[free_slot].base, sizeof(bearers[free_slot].base), "%s", base);
    bearer_header(bearers[free_slot].header, sizeof(bearers[free_slot].header), token);
}

static const char *bearer_of(const char *base)
{
    for (int i = 0; i < BEARER_BASES; i++) {
        if (bearers[i].base[0] != '\0' && strcmp(bearers[i].base, base) == 0) {
            return bearers[i].header;
        }
    }
    return default_authorization;
}

/* test_http, or with raw test_http_raw: headers verbatim, the body as sent, not recorded. */
static int perform(const char *base, const char *method, const char *path, const char *body,
                   size_t body_len, const char *const *headers, int raw, test_resp *out)
{
    struct curl_slist *hdrs = NULL;
    buf b = {0};
    char url[4096];
    int has_ct = 0, has_auth = 0;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    if (thread_curl == NULL) {
        thread_curl = curl_easy_init();
    } else {
        curl_easy_reset(thread_curl);
    }
    snprintf(url, sizeof(url), "%s%s", base, path);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        /*
         * curl sends Accept-Encoding itself and then decodes the body with its own zlib, a
         * decoder independent of the server's encoder; out->content_encoding says it did.
         */
        if (!raw && strncasecmp(headers[i], "Accept-Encoding:", 16) == 0) {
            curl_easy_setopt(thread_curl, CURLOPT_ACCEPT_ENCODING,
                             headers[i] + 16 + strspn(headers[i] + 16, " "));
            continue;
        }
        hdrs = curl_slist_append(hdrs, headers[i]);
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0) {
            has_ct = 1;
        }
        if (strncasecmp(headers[i], "Authorization:", 14) == 0) {
            has_auth = 1;
        }
    }
    if (!has_auth && bearer_of(base)[0] != '\0') {
        hdrs = curl_slist_append(hdrs, bearer_of(base));
    }
    if (body != NULL && !has_ct) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(thread_curl, CURLOPT_URL, url);
    curl_easy_setopt(thread_curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(thread_curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(thread_curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(thread_curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(thread_curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(thread_curl, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(thread_curl, CURLOPT_TIMEOUT_MS, 30000L);
    if (raw) {
        curl_easy_setopt(thread_curl, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(thread_curl, CURLOPT_NOBODY, 1L);
    }
    if (body != NULL) {
        curl_easy_setopt(thread_curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(thread_curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    rc = curl_easy_perform(thread_curl);
    curl_slist_free_all(hdrs);
    /*
     * An answer cut short (the server killed while writing it) is no answer, even when
     * curl got a status line: its headers and body may be missing.
     */
    if (rc != CURLE_OK || !out->complete) {
        free(b.data);
        memset(out, 0, sizeof(*out));
        return -1;
    }
    curl_easy_getinfo(thread_curl, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = b.data != NULL ? b.data : calloc(1, 1);
    out->body_len = b.len;
    if (strstr(out->content_type, "json") != NULL) {
        out->json = json_loadb(out->body, out->body_len, 0, NULL);
    }
    if (!raw) {
        record_exchange(method, path, out);
    }
    return 0;
}

int test_http(const char *base, const char *method, const char *path, const char *body,
              size_t body_len, const char *const *headers, test_resp *out)
{
    return perform(base, method, path, body, body_len, headers, 0, out);
}

int test_http_raw(const char *base, const char *method, const char *path, const char *body,
                  size_t body_len, const char *const *headers, test_resp *out)
{
    return perform(base, method, path, body, body_len, headers, 1, out);
}

void test_http_thread_done(void)
{
    curl_easy_cleanup(thread_curl);
    thread_curl = NULL;
}

void test_resp_free(test_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

int test_is_problem(const test_resp *r, long status)
{
    json_t *j = r->json;

    return r->status == status && strncmp(r->content_type, "application/problem+json", 24) == 0 &&
           j != NULL && json_is_string(json_object_get(j, "type")) &&
           json_is_string(json_object_get(j, "title")) &&
           json_integer_value(json_object_get(j, "status")) == status &&
           json_is_string(json_object_get(j, "detail"));
}

/* POSTs the form body to base's token endpoint; its access token into out[size]. */
static int token_request(const char *base, const char *body, const char *who, char *out,
                         size_t size)
{
    const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                   "Authorization:", NULL};
    test_resp r = {0};
    const char *token;
    int rc = -1;

    if (test_http(base, "POST", "/oauth2/token", body, strlen(body), headers, &r) != 0) {
        fprintf(stderr, "token for %s: no answer from %s\n", who, base);
        return -1;
    }
    token = json_string_value(json_object_get(r.json, "access_token"));
    if (r.status == 200 && token != NULL && strlen(token) < size) {
        snprintf(out, size, "%s", token);
        rc = 0;
    } else {
        fprintf(stderr, "token for %s: %ld %.300s\n", who, r.status, r.body);
    }
    test_resp_free(&r);
    return rc;
}

int test_password_token(const char *base, const char *user, const char *password, char *out,
                        size_t size)
{
    char body[512];

    snprintf(body, sizeof(body),
             "grant_type=password&username=%s&password=%s&client_id=" TEST_DEMO_CLIENT
             "&client_secret=" TEST_DEMO_CLIENT_SECRET,
             user, password);
    return token_request(base, body, user, out, size);
}

int test_client_token(const char *base, const char *client_id, const char *secret,
                      const char *audience, char *out, size_t size)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "grant_type=client_credentials&client_id=%s&client_secret=%s&audience=%s", client_id,
             secret, audience);
    return token_request(base, body, client_id, out, size);
}

int test_http_as(const char *base, const char *token, const char *method, const char *path,
                 const char *body, test_resp *out)
{
    char auth[4200];
    const char *headers[] = {auth, NULL};

    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    } else {
        snprintf(auth, sizeof(auth), "Authorization:");
    }
    return test_http(base, method, path, body, body != NULL ? strlen(body) : 0, headers, out);
}
