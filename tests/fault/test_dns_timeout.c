/*
 * A remote target whose name does not resolve in time: the call's timeout bounds the name
 * lookup too. The test runs in network and mount namespaces of its own (it needs root, as
 * CI runs; otherwise it is skipped): only loopback, and an /etc/resolv.conf naming a DNS
 * server on 127.0.0.1:53 that takes every query and never answers, as a resolver restarting
 * or a blackholed upstream does. The C library then waits seconds per query (here 3 s, 2
 * attempts, for each address family), while
 *
 *   - cl_rpc_ready, what /readyz asks of every remote module with a 1 s budget, must end
 *     within its budget (a container topology once saw /readyz take 60 s this way);
 *   - cl_rpc_call must end by its deadline, with unavailable or deadline_exceeded.
 *
 * The bound checked is the budget plus generous slack, far below the seconds the lookup
 * takes, so a loaded machine does not fail it and a lookup the timeout does not bound does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleave/rpc.h"
#include "inventory/inventory.h"

#define BUDGET_MS   500
/* Over a budget: scheduling on a loaded machine and the sanitizers. The lookup takes 6 s. */
#define SLACK_MS    1500
/* What the silent server makes the C library wait per query, and how often it asks. */
#define RESOLV_CONF "nameserver 127.0.0.1\noptions timeout:3 attempts:2\n"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The silent DNS server: bound, never read, open until the process ends. */
static int silent_dns(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("test_dns_timeout: bind 127.0.0.1:53");
        return -1;
    }
    return fd;
}

static int loopback_up(void)
{
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rc;

    if (fd < 0) {
        return -1;
    }
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/* Our own /etc/resolv.conf, over the real one in this mount namespace only. */
static int private_resolv_conf(void)
{
    char path[] = "/tmp/cleave-resolv-XXXXXX";
    int fd = mkstemp(path);
    int rc = -1;

    if (fd < 0) {
        return -1;
    }
    if (write(fd, RESOLV_CONF, strlen(RESOLV_CONF)) == (ssize_t)strlen(RESOLV_CONF) &&
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
        mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) == 0) {
        rc = 0;
    } else {
        perror("test_dns_timeout: /etc/resolv.conf");
    }
    close(fd);
    unlink(path);
    return rc;
}

static cl_rpc_client *client(void)
{
    cl_rpc_options opt = {.default_timeout_ms = BUDGET_MS,
                          .connect_timeout_ms = BUDGET_MS,
                          .retry_max_attempts = 1,
                          .dev_token = "dev"};
    cl_rpc_client *c = NULL;
    cl_error err = {0};

    assert_int_equal(
        cl_rpc_client_new("inventory", "http://inventory.cleave.test:8080", &opt, &c, &err), CL_OK);
    return c;
}

static void test_ready_ends_within_its_budget_while_the_name_does_not_resolve(void **state)
{
    cl_rpc_client *c = client();
    cl_error err = {0};
    int64_t t0 = now_ms();
    cl_status st;
    int64_t took;

    (void)state;
    st = cl_rpc_ready(c, BUDGET_MS, &err);
    took = now_ms() - t0;
    print_message("cl_rpc_ready: %s after %lld ms: %s\n", cl_status_name(st), (long long)took,
                  err.message);
    assert_int_equal(st, CL_UNAVAILABLE);
    assert_true(took < BUDGET_MS + SLACK_MS);
    assert_non_null(strstr(err.message, "inventory.cleave.test"));
    cl_rpc_client_free(c);
}

static void test_call_ends_by_its_deadline_while_the_name_does_not_resolve(void **state)
{
    cl_rpc_client *c = client();
    inventory_sku_ref ref = {.sku = "SKU-000001"};
    inventory_stock stock = {0};
    cl_ctx ctx;
    int64_t t0;
    int64_t took;
    cl_status st;

    (void)state;
    /* Twice: the first lookup's resolver may still be waiting when the second starts. */
    for (int i = 0; i < 2; i++) {
        cl_ctx_init(&ctx, 10000);
        t0 = now_ms();
        st = cl_rpc_call(c, &inventory_op_list[0], &ctx, &ref, &stock);
        took = now_ms() - t0;
        print_message("get_stock: %s after %lld ms: %s\n", cl_status_name(st), (long long)took,
                      ctx.err.message);
        assert_true(st == CL_UNAVAILABLE || st == CL_DEADLINE_EXCEEDED);
        assert_true(took < BUDGET_MS + SLACK_MS);
    }
    cl_schema_free(&inventory_stock_type, &stock);
    cl_rpc_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_ends_within_its_budget_while_the_name_does_not_resolve),
        cmocka_unit_test(test_call_ends_by_its_deadline_while_the_name_does_not_resolve),
    };

    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        printf("SKIPPED: no network namespace of its own (%s): needs root, as CI runs\n",
               strerror(errno));
        return 77;
    }
    if (loopback_up() != 0 || private_resolv_conf() != 0 || silent_dns() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
