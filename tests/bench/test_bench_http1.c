/*
 * The benchmarks' lean HTTP/1.1 client (bench/http1.h) against a loopback server that
 * answers from a script: what it sends, that it keeps the connection, and that every answer
 * it cannot read is an error with its reason, never a figure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http1.h"

#define MAX_ANSWERS 4

/* Answers its connections' requests in turn from answers[]; closes after the last. */
typedef struct script {
    const char *answers[MAX_ANSWERS];
    int listener;
    int port;
    pthread_t thread;
    int connections; /* accepted */
    int requests;    /* read whole */
    char last[2048]; /* the last request as read */
} script;

/* Reads one request (head and Content-Length body) into s->last; 0, or -1 at the end. */
static int read_request(script *s, int fd)
{
    size_t have = 0;
    char *end;

    for (;;) {
        ssize_t n = recv(fd, s->last + have, sizeof(s->last) - 1 - have, 0);
        const char *cl;
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
        s->last[have] = '\0';
        end = strstr(s->last, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        cl = strstr(s->last, "Content-Length: ");
        if (cl == NULL || have >= (size_t)(end + 4 - s->last) + strtoul(cl + 16, NULL, 10)) {
            return 0;
        }
    }
}

static void *serve(void *arg)
{
    script *s = arg;
    int next = 0;

    while (next < MAX_ANSWERS && s->answers[next] != NULL) {
        int fd = accept(s->listener, NULL, NULL);
        if (fd < 0) {
            break;
        }
        s->connections++;
        while (next < MAX_ANSWERS && s->answers[next] != NULL && read_request(s, fd) == 0) {
            const char *a = s->answers[next++];
            s->requests++;
            (void)send(fd, a, strlen(a), MSG_NOSIGNAL);
            if (strstr(a, "Connection: close") != NULL ||
                strstr(a, "Content-Length: 10\r") != NULL) {
                break; /* the answer says so, or is cut short on purpose */
            }
        }
        close(fd);
    }
    return NULL;
}

static void start(script *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    s->listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listener >= 0);
    assert_int_equal(bind(s->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->listener, 4), 0);
    assert_int_equal(getsockname(s->listener, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void stop(script *s)
{
    shutdown(s->listener, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->listener);
}

static void connect_client(http1_conn *c, const script *s)
{
    char url[64];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
    assert_int_equal(http1_init(c, url), 0);
}

/* One request whose answer must be refused; the reason must contain want. */
static void refused(const char *answer, const char *want)
{
    static http1_conn c;
    script s = {.answers = {answer}};
    http1_answer a;

    start(&s);
    connect_client(&c, &s);
    assert_int_equal(http1_request(&c, "GET", "/x", NULL, NULL, 0, &a), -1);
    if (strstr(c.error, want) == NULL) {
        fail_msg("error \"%s\" does not say \"%s\"", c.error, want);
    }
    assert_int_equal(c.fd, -1);
    stop(&s);
}

static void keeps_the_connection_and_sends_one_request_each(void **state)
{
    static http1_conn c;
    script s = {.answers = {"HTTP/1.1 202 Accepted\r\nContent-Length: 9\r\n\r\n{\"id\":1}\n",
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"}};
    http1_answer a;

    (void)state;
    start(&s);
    connect_client(&c, &s);
    assert_int_equal(http1_request(&c, "POST", "/api/v1/orders", "Authorization: Bearer t\r\n",
                                   "{\"a\":1}", 7, &a),
                     0);
    assert_int_equal(a.status, 202);
    assert_int_equal(a.body_len, 9);
    assert_memory_equal(a.body, "{\"id\":1}\n", 9);
    assert_non_null(strstr(s.last, "POST /api/v1/orders HTTP/1.1\r\n"));
    assert_non_null(strstr(s.last, "\r\nAuthorization: Bearer t\r\n"));
    assert_non_null(strstr(s.last, "\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(s.last, "\r\n\r\n{\"a\":1}"));
    assert_int_equal(
        http1_request(&c, "GET", "/api/v1/orders/1", "Prefer: wait=5\r\n", NULL, 0, &a), 0);
    assert_int_equal(a.status, 200);
    assert_memory_equal(a.body, "ok", 2);
    assert_non_null(strstr(s.last, "GET /api/v1/orders/1 HTTP/1.1\r\nHost: 127.0.0.1:"));
    assert_null(strstr(s.last, "Content-Length"));
    assert_int_equal(s.connections, 1);
    assert_int_equal(s.requests, 2);
    http1_close(&c);
    stop(&s);
}

static void connection_close_opens_a_new_one(void **state)
{
    static http1_conn c;
    script s = {.answers = {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
                            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"}};
    http1_answer a;

    (void)state;
    start(&s);
    connect_client(&c, &s);
    assert_int_equal(http1_request(&c, "GET", "/1", NULL, NULL, 0, &a), 0);
    assert_memory_equal(a.body, "a", 1);
    assert_int_equal(c.fd, -1);
    assert_int_equal(http1_request(&c, "GET", "/2", NULL, NULL, 0, &a), 0);
    assert_memory_equal(a.body, "b", 1);
    assert_int_equal(s.connections, 2);
    http1_close(&c);
    stop(&s);
}

static void answers_it_cannot_read_are_errors(void **state)
{
    (void)state;
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
            "Transfer-Encoding");
    refused("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", "without Content-Length");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed the connection");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "past the answer's end");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\na", "Content-Length not a length");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\na", "Content-Length not a length");
    refused("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na", "not an HTTP/1.1 final answer");
    refused("HTTP/1.1 100 Continue\r\n\r\n", "not an HTTP/1.1 final answer");
}

static void base_urls_it_cannot_use_are_errors(void **state)
{
    static http1_conn c;

    (void)state;
    assert_int_equal(http1_init(&c, "https://127.0.0.1:8443"), -1);
    assert_non_null(strstr(c.error, "http://host:port"));
    assert_int_equal(http1_init(&c, "http://127.0.0.1"), -1);
    assert_int_equal(http1_init(&c, "http://127.0.0.1:0"), -1);
    assert_non_null(strstr(c.error, "no port"));
    assert_int_equal(http1_init(&c, "http://127.0.0.1:8080/"), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.host, "127.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keeps_the_connection_and_sends_one_request_each),
        cmocka_unit_test(connection_close_opens_a_new_one),
        cmocka_unit_test(answers_it_cannot_read_are_errors),
        cmocka_unit_test(base_urls_it_cannot_use_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
