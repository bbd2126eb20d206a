/*
 * The remote binding's connections (ADR 0045), against a small HTTP/1.1 server of the
 * test's own on loopback that counts the connections it accepts and the requests it reads:
 *
 *   - sequential calls reuse one kept-alive connection, and a large body goes out without
 *     "Expect: 100-continue" (libcurl would otherwise wait for a 100 response);
 *   - a slow call holds only its own connection: a call made while it is under way is
 *     answered while the server still holds the slow one;
 *   - callers that come in bursts of 12 at once reuse their 12 connections burst after
 *     burst, rather than closing some between bursts and opening them again;
 *   - the client frames HTTP/1.1 itself (ADR rpc-own-framing): chunked answers, answers
 *     that close the connection, a kept connection the server closed, and malformed or
 *     oversized answers are each handled, and a header value that is not one line is
 *     refused rather than sent.
 *
 * Nothing is timed: the server holds answers until a condition on its own state holds,
 * with a deadline only so that a broken client fails instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleave/rpc.h"
#include "cleave/util.h"

#define ECHO_MSG(X, T) X(T, STR, text, _)
CL_TYPE_DECLARE(echo_msg, ECHO_MSG)
CL_TYPE_DEFINE(echo_msg, ECHO_MSG)

static const cl_op echo_op = {"echo", &echo_msg_type, &echo_msg_type, CL_OP_READ, NULL};

#define MAX_CONNS     64
#define ROUND_CALLERS 12
#define ROUNDS        5
/* How long the server holds an answer for its condition before giving up on it. */
#define HOLD_MS       5000
/*
 * A request body over 1 MiB: libcurl adds "Expect: 100-continue" to larger bodies (over
 * 1 KiB before 7.69) and then waits up to a second for a 100 response before sending it.
 */
#define BIG_BODY      ((size_t)1100 * 1024)
#define REQUEST_MAX   (BIG_BODY + 65536)

typedef struct server {
    int lfd;
    int port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    int nconns;
    int fds[MAX_CONNS];
    pthread_t threads[MAX_CONNS];
    int requests;
    int expect_seen;
    int slow_waiting;  /* a "slow" request is being held */
    int release_slow;  /* the test lets the held "slow" request be answered */
    int slow_answered; /* the "slow" request was answered */
    int gave_up;       /* a hold ran out: hold no more answers, so a broken client fails fast */
    int round_arrived; /* "round" requests read so far */
    int dropped;       /* "droponce" requests closed without an answer */
} server;

static server srv;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on srv.cond (srv.mu held) until *flag >= want or deadline (ms, realtime). */
static int wait_for(const int *flag, int want, int64_t deadline)
{
    while (*flag < want) {
        struct timespec ts = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};

        if (pthread_cond_timedwait(&srv.cond, &srv.mu, &ts) == ETIMEDOUT) {
            return *flag >= want;
        }
    }
    return 1;
}

/* The server's hold of an answer until *flag >= want: none once a hold ran out. */
static void hold(const int *flag, int want)
{
    if (!srv.gave_up && !wait_for(flag, want, now_ms() + HOLD_MS)) {
        srv.gave_up = 1;
        pthread_cond_broadcast(&srv.cond);
    }
}

/* The header line starting "\r\n<name>:" in head[0..len), any case; NULL when absent. */
static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i + n + 3 <= len; i++) {
        if (head[i] == '\r' && head[i + 1] == '\n' && strncasecmp(head + i + 2, name, n) == 0 &&
            head[i + 2 + n] == ':') {
            return head + i + 3 + n;
        }
    }
    return NULL;
}

/* Reads one request (head and Content-Length body) into buf; its length, or -1 at EOF. */
static ssize_t read_request(int fd, char *buf, size_t size, size_t *head_len)
{
    size_t len = 0;
    char *end = NULL;
    const char *cl;
    size_t body = 0;

    while (end == NULL) {
        ssize_t n = read(fd, buf + len, size - 1 - len);

        if (n <= 0) {
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *head_len = (size_t)(end - buf) + 4;
    cl = find_header(buf, *head_len, "Content-Length");
    if (cl != NULL) {
        body = (size_t)strtoul(cl, NULL, 10);
    }
    while (len < *head_len + body && len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);

        if (n <= 0) {
            return -1;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

#define OK_BODY "{\"text\":\"ok\"}"

/*
 * The answer to a request whose body is text (see conn_main); *then_close: the server
 * closes the connection after it.
 */
static const char *answer_for(const char *text, int *then_close)
{
    *then_close = 1;
    if (strstr(text, "\"chunked\"") != NULL || strstr(text, "\"trickle\"") != NULL) {
        /* {"text":"ok"} in three chunks, one with an extension, and a trailer. */
        *then_close = 0;
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"
               "4\r\n{\"te\r\n5;x=1\r\nxt\":\"\r\n4\r\nok\"}\r\n0\r\nX-Trailer: 1\r\n\r\n";
    }
    if (strstr(text, "\"close\"") != NULL) {
        return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\n" OK_BODY;
    }
    if (strstr(text, "\"idleclose\"") != NULL) {
        /* As a keep-alive that runs out: a normal answer, then the server closes. */
        return "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" OK_BODY;
    }
    if (strstr(text, "\"huge\"") != NULL) {
        return "HTTP/1.1 200 OK\r\nContent-Length: 17000000\r\n\r\n";
    }
    if (strstr(text, "\"weird\"") != NULL) {
        return "HTTP/1.1 2x0 OK\r\nContent-Length: 13\r\n\r\n" OK_BODY;
    }
    *then_close = 0;
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           "Content-Length: 13\r\n\r\n" OK_BODY;
}

/* arg: the connection's slot in srv.fds, set before the thread starts. */
static void *conn_main(void *arg)
{
    int fd = *(const int *)arg;
    char *buf = malloc(REQUEST_MAX);
    size_t head_len = 0;

    while (buf != NULL && read_request(fd, buf, REQUEST_MAX, &head_len) > 0) {
        const char *body = buf + head_len;
        int then_close = 0;
        const char *answer = answer_for(body, &then_close);
        int drop = 0;

        pthread_mutex_lock(&srv.mu);
        srv.requests++;
        if (find_header(buf, head_len, "Expect") != NULL) {
            srv.expect_seen++;
        }
        if (strstr(body, "\"slow\"") != NULL) {
            srv.slow_waiting = 1;
            pthread_cond_broadcast(&srv.cond);
            hold(&srv.release_slow, 1);
        } else if (strstr(body, "\"round\"") != NULL) {
            /* Every caller of this round must have arrived before any is answered. */
            int round = srv.round_arrived++ / ROUND_CALLERS;

            pthread_cond_broadcast(&srv.cond);
            hold(&srv.round_arrived, (round + 1) * ROUND_CALLERS);
        } else if (strstr(body, "\"droponce\"") != NULL && srv.dropped == 0) {
            /* Closed as the request arrived, unanswered: a keep-alive running out just then. */
            srv.dropped++;
            drop = 1;
        }
        pthread_mutex_unlock(&srv.mu);
        if (drop) {
            shutdown(fd, SHUT_RDWR);
            break;
        }
        if (strstr(body, "\"trickle\"") != NULL) {
            int one = 1;
            size_t i = 0;

            /* A byte per segment: the client meets every part of the answer cut anywhere. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            while (answer[i] != '\0' && write(fd, answer + i, 1) == 1) {
                i++;
            }
            if (answer[i] != '\0') {
                break;
            }
        } else if (write(fd, answer, strlen(answer)) != (ssize_t)strlen(answer)) {
            break;
        }
        if (then_close) {
            shutdown(fd, SHUT_RDWR);
            break;
        }
        if (strstr(body, "\"slow\"") != NULL) {
            pthread_mutex_lock(&srv.mu);
            srv.slow_answered = 1;
            pthread_mutex_unlock(&srv.mu);
        }
    }
    free(buf);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {srv.lfd, POLLIN, 0};
        int fd;
        int stop;

        pthread_mutex_lock(&srv.mu);
        stop = srv.stop;
        pthread_mutex_unlock(&srv.mu);
        if (stop) {
            break;
        }
        /* A short poll, so that the stop flag is seen without a connection to wake us. */
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&srv.mu);
        if (srv.nconns < MAX_CONNS) {
            srv.fds[srv.nconns] = fd;
        }
        if (srv.nconns < MAX_CONNS &&
            pthread_create(&srv.threads[srv.nconns], NULL, conn_main, &srv.fds[srv.nconns]) == 0) {
            srv.nconns++;
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&srv.mu);
    }
    return NULL;
}

static int setup(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    (void)state;
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.cond, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(srv.lfd, 64) != 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &alen) != 0) {
        return -1;
    }
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.acceptor, NULL, acceptor_main, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pthread_mutex_lock(&srv.mu);
    srv.stop = 1;
    pthread_mutex_unlock(&srv.mu);
    pthread_join(srv.acceptor, NULL);
    for (int i = 0; i < srv.nconns; i++) {
        shutdown(srv.fds[i], SHUT_RDWR);
        pthread_join(srv.threads[i], NULL);
        close(srv.fds[i]);
    }
    close(srv.lfd);
    pthread_cond_destroy(&srv.cond);
    pthread_mutex_destroy(&srv.mu);
    return 0;
}

static cl_rpc_client *new_client(void)
{
    char url[64];
    cl_rpc_options opt = {.dev_token = "test-token"};
    cl_rpc_client *c = NULL;
    cl_error err = {0};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
    assert_int_equal(cl_rpc_client_new("echo", url, &opt, &c, &err), CL_OK);
    return c;
}

/* One call of echo with text; its status (the message printed when it failed). */
static cl_status call(cl_rpc_client *c, const char *text, int64_t deadline_ms)
{
    echo_msg req = {.text = (char *)text};
    echo_msg resp = {0};
    cl_ctx ctx;
    cl_status st;

    cl_ctx_init(&ctx, deadline_ms);
    st = cl_rpc_call(c, &echo_op, &ctx, &req, &resp);
    if (st != CL_OK) {
        print_message("echo(%.20s): %s\n", text, ctx.err.message);
    } else {
        assert_string_equal(resp.text, "ok");
    }
    cl_schema_free(&echo_msg_type, &resp);
    return st;
}

static int server_count(const int *what)
{
    int n;

    pthread_mutex_lock(&srv.mu);
    n = *what;
    pthread_mutex_unlock(&srv.mu);
    return n;
}

static void test_sequential_calls_share_one_connection_without_expect(void **state)
{
    cl_rpc_client *c = new_client();
    char *big = malloc(BIG_BODY + 1);

    (void)state;
    assert_non_null(big);
    memset(big, 'a', BIG_BODY);
    big[BIG_BODY] = '\0';
    for (int i = 0; i < 30; i++) {
        assert_int_equal(call(c, i % 10 == 0 ? big : "small", 5000), CL_OK);
    }
    assert_int_equal(server_count(&srv.requests), 30);
    assert_int_equal(server_count(&srv.nconns), 1);
    assert_int_equal(server_count(&srv.expect_seen), 0);
    cl_rpc_client_free(c);
    free(big);
}

typedef struct slow_call {
    cl_rpc_client *c;
    cl_status st;
} slow_call;

static void *slow_main(void *arg)
{
    slow_call *s = arg;

    s->st = call(s->c, "slow", 10000);
    return NULL;
}

static void test_a_slow_call_does_not_stall_a_concurrent_fast_call(void **state)
{
    cl_rpc_client *c = new_client();
    slow_call s = {c, CL_INTERNAL};
    pthread_t t;
    int held;

    (void)state;
    /* Two calls first, so that the pool holds a kept-alive connection either call may take. */
    assert_int_equal(call(c, "warm", 5000), CL_OK);
    assert_int_equal(call(c, "warm", 5000), CL_OK);
    assert_int_equal(pthread_create(&t, NULL, slow_main, &s), 0);
    pthread_mutex_lock(&srv.mu);
    held = wait_for(&srv.slow_waiting, 1, now_ms() + HOLD_MS);
    pthread_mutex_unlock(&srv.mu);
    assert_true(held);
    /*
     * The server holds the slow call until it is let go below (or gives up on it): queued
     * behind the slow call, on its connection or behind a lock, this call would end only
     * once the slow one was answered.
     */
    assert_int_equal(call(c, "fast", 10000), CL_OK);
    assert_int_equal(server_count(&srv.slow_answered), 0);
    pthread_mutex_lock(&srv.mu);
    srv.release_slow = 1;
    pthread_cond_broadcast(&srv.cond);
    pthread_mutex_unlock(&srv.mu);
    pthread_join(t, NULL);
    assert_int_equal(s.st, CL_OK);
    assert_int_equal(server_count(&srv.nconns), 2);
    cl_rpc_client_free(c);
}

static pthread_barrier_t between_rounds;

typedef struct round_caller {
    pthread_t thread;
    cl_rpc_client *c;
    int failed;
} round_caller;

static void *round_main(void *arg)
{
    round_caller *r = arg;

    for (int i = 0; i < ROUNDS; i++) {
        r->failed += call(r->c, "round", 10000) != CL_OK;
        /* A burst, then a lull: every connection is back in the pool before the next. */
        pthread_barrier_wait(&between_rounds);
    }
    return NULL;
}

static void test_concurrent_callers_keep_their_connections(void **state)
{
    cl_rpc_client *c = new_client();
    round_caller r[ROUND_CALLERS];
    int failed = 0;

    (void)state;
    assert_int_equal(pthread_barrier_init(&between_rounds, NULL, ROUND_CALLERS), 0);
    for (int i = 0; i < ROUND_CALLERS; i++) {
        r[i] = (round_caller){.c = c};
        assert_int_equal(pthread_create(&r[i].thread, NULL, round_main, &r[i]), 0);
    }
    for (int i = 0; i < ROUND_CALLERS; i++) {
        pthread_join(r[i].thread, NULL);
        failed += r[i].failed;
    }
    pthread_barrier_destroy(&between_rounds);
    assert_int_equal(failed, 0);
    assert_int_equal(server_count(&srv.round_arrived), ROUND_CALLERS * ROUNDS);
    /*
     * Each burst has 12 calls in flight at once, so 12 connections are needed, and are
     * enough: a pool that closed some of them between bursts opens new ones every burst.
     */
    assert_int_equal(server_count(&srv.nconns), ROUND_CALLERS);
    cl_rpc_client_free(c);
}

static void test_chunked_answers_are_read_on_a_kept_connection(void **state)
{
    cl_rpc_client *c = new_client();

    (void)state;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call(c, "chunked", 5000), CL_OK);
    }
    assert_int_equal(call(c, "trickle", 5000), CL_OK);
    assert_int_equal(call(c, "small", 5000), CL_OK);
    assert_int_equal(server_count(&srv.requests), 5);
    assert_int_equal(server_count(&srv.nconns), 1);
    cl_rpc_client_free(c);
}

static void test_a_connection_the_server_closes_is_not_reused(void **state)
{
    cl_rpc_client *c = new_client();

    (void)state;
    /* "Connection: close": a client that kept it would wait for an answer that never comes. */
    assert_int_equal(call(c, "close", 5000), CL_OK);
    assert_int_equal(call(c, "small", 5000), CL_OK);
    assert_int_equal(server_count(&srv.nconns), 2);
    /* Closed after a normal answer, as a keep-alive that ran out. */
    assert_int_equal(call(c, "idleclose", 5000), CL_OK);
    assert_int_equal(call(c, "small", 5000), CL_OK);
    assert_int_equal(server_count(&srv.nconns), 3);
    /* Closed as the request arrived: sent once more, on a new connection. */
    assert_int_equal(call(c, "droponce", 5000), CL_OK);
    assert_int_equal(server_count(&srv.dropped), 1);
    assert_int_equal(server_count(&srv.nconns), 4);
    assert_int_equal(server_count(&srv.requests), 6);
    cl_rpc_client_free(c);
}

static void test_malformed_and_oversized_answers_fail_clearly(void **state)
{
    cl_rpc_client *c = new_client();

    (void)state;
    assert_int_equal(call(c, "weird", 2000), CL_UNAVAILABLE);
    /* Refused on its announced length, before 16 MiB are read. */
    assert_int_equal(call(c, "huge", 2000), CL_INTERNAL);
    assert_int_equal(call(c, "small", 2000), CL_OK);
    cl_rpc_client_free(c);
}

static void test_a_header_value_with_a_line_break_is_not_sent(void **state)
{
    cl_rpc_client *c = new_client();
    echo_msg req = {.text = "small"};
    echo_msg resp = {0};
    cl_ctx ctx;

    (void)state;
    cl_ctx_init(&ctx, 5000);
    /* Sent as is, the line break would start a header of the principal's choosing. */
    cl_strlcpy(ctx.principal, "alice\r\nX-Cleave-Own-Only: 0", sizeof(ctx.principal));
    assert_int_equal(cl_rpc_call(c, &echo_op, &ctx, &req, &resp), CL_INVALID);
    assert_string_equal(ctx.err.field, "X-Cleave-Principal");
    assert_int_equal(server_count(&srv.requests), 0);
    cl_schema_free(&echo_msg_type, &resp);
    cl_rpc_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequential_calls_share_one_connection_without_expect,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_slow_call_does_not_stall_a_concurrent_fast_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_callers_keep_their_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chunked_answers_are_read_on_a_kept_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_connection_the_server_closes_is_not_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_and_oversized_answers_fail_clearly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_header_value_with_a_line_break_is_not_sent, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
