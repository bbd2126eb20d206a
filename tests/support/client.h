/* Test support: a real HTTP client (libcurl) for driving the servers under test. */
#ifndef CLEAVE_TEST_CLIENT_H
#define CLEAVE_TEST_CLIENT_H

#include <stddef.h>

#include <jansson.h>

typedef struct test_resp {
    long status;
    char content_type[128];
    char request_id[128];
    char etag[64];
    char location[256];
    char allow[128];
    char www_authenticate[256];
    char cache_status[128]; /* an answer served stale (ADR 0033) */
    char age[32];
    char cache_control[128];
    char vary[64];
    char content_encoding[32]; /* "" unless the server encoded the body */
    char content_length[32];   /* "" when the answer had none */
    char *body;                /* NUL-terminated, owned */
    size_t body_len;
    json_t *json; /* parsed body when it is JSON, else NULL; owned */
    int complete; /* the header block ended (a process killed mid-answer leaves it open) */
} test_resp;

/*
 * Sends method base+path with the optional body and extra headers ("Name: value",
 * NULL-terminated). Content-Type defaults to application/json when body is given and
 * no Content-Type header is passed. An Accept-Encoding header is left to curl, which then
 * decodes the body (out->content_encoding names the coding it undid). Returns 0 (even for 4xx/5xx)
 * or -1 on transport error. When the environment variable CL_TEST_EXCHANGES names a file, each
 * answered exchange (method, path, status, content type, body) is appended to it as one JSON line,
 * for the check of docs/openapi.yaml against what the server sends (tests/docs/).
 */
int test_http(const char *base, const char *method, const char *path, const char *body,
              size_t body_len, const char *const *headers, test_resp *out);
/*
 * test_http as on the wire: the headers are sent as given (Accept-Encoding too), the body
 * is kept as sent (curl undoes no content coding), and the exchange is not recorded.
 */
int test_http_raw(const char *base, const char *method, const char *path, const char *body,
                  size_t body_len, const char *const *headers, test_resp *out);
void test_resp_free(test_resp *r);
/*
 * test_http as token's user: "Authorization: Bearer <token>", or with token NULL none at
 * all (not even the default bearer of test_http_set_bearer). Same returns as test_http.
 */
int test_http_as(const char *base, const char *token, const char *method, const char *path,
                 const char *body, test_resp *out);
/*
 * Sends "Authorization: Bearer <token>" with every later request that names no
 * Authorization header of its own (NULL: none). A request may pass "Authorization:" (no
 * value) to go without. Set it before any thread sends requests.
 */
void test_http_set_bearer(const char *token);
/* The same for requests to base ("http://127.0.0.1:PORT") only; it wins over the default. */
void test_http_set_bearer_for(const char *base, const char *token);

/* The demo data `cleave seed` makes (README): the first-party client and one user per role. */
#define TEST_DEMO_CLIENT        "cleave-demo"
#define TEST_DEMO_CLIENT_SECRET "cleave-demo-secret-for-make-run-only"
#define TEST_ADMIN              "ada"
#define TEST_ADMIN_PASSWORD     "ada-admin-pw"
#define TEST_STAFF              "sam"
#define TEST_STAFF_PASSWORD     "sam-staff-pw"
#define TEST_CUSTOMER           "alice"
#define TEST_CUSTOMER_PASSWORD  "alice-customer-pw"
#define TEST_CUSTOMER2          "bob"
#define TEST_CUSTOMER2_PASSWORD "bob-customer-pw"

/*
 * An access token for a seeded user from base's token endpoint (password grant, the demo
 * client) into out[size]; 0, or -1 after printing why.
 */
int test_password_token(const char *base, const char *user, const char *password, char *out,
                        size_t size);
/*
 * A service token (client_credentials grant) for client_id with aud audience from base's
 * token endpoint into out[size]; 0, or -1 after printing why. The secret must need no
 * form encoding (generated secrets do not).
 */
int test_client_token(const char *base, const char *client_id, const char *secret,
                      const char *audience, char *out, size_t size);
/* Releases the calling thread's handle; a thread that used test_http calls it before exiting. */
void test_http_thread_done(void);

/* True when r is an RFC 9457 problem with this status (type, title, status, detail). */
int test_is_problem(const test_resp *r, long status);

#endif
