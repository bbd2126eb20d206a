/*
 * Graceful shutdown signals. A process of its own: blocking signals changes the whole
 * process, and SIGTERM must stay pending here rather than kill another test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleave/http.h"

static void *send_signal(void *arg)
{
    kill(getpid(), *(int *)arg);
    return NULL;
}

static void test_shutdown_wait_returns_sigterm(void **state)
{
    (void)state;
    cl_shutdown_prepare();
    /* Blocked, so the signal stays pending instead of terminating the process. */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(cl_shutdown_wait(), SIGTERM);
}

static void test_shutdown_wait_returns_sigint_from_other_thread(void **state)
{
    static int sig = SIGINT;
    pthread_t t;

    (void)state;
    cl_shutdown_prepare();
    /* The new thread inherits the mask, as civetweb's workers do. */
    assert_int_equal(pthread_create(&t, NULL, send_signal, &sig), 0);
    assert_int_equal(cl_shutdown_wait(), SIGINT);
    pthread_join(t, NULL);
}

static void test_shutdown_prepare_blocks_both_signals(void **state)
{
    sigset_t cur;

    (void)state;
    cl_shutdown_prepare();
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    assert_true(sigismember(&cur, SIGINT));
    assert_true(sigismember(&cur, SIGTERM));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_wait_returns_sigterm),
        cmocka_unit_test(test_shutdown_wait_returns_sigint_from_other_thread),
        cmocka_unit_test(test_shutdown_prepare_blocks_both_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
