/*
 * The bus's pull from JetStream when a pull's answer arrived after its fetch gave up: the
 * messages wait in the subscription. A fetch of the NATS C client 3.4.1 that starts with
 * more than half a batch waiting loses count of its batch and writes past its array as soon
 * as more messages arrive than its own pull asked for (nats.c #749, fixed in 3.10); the
 * bus's fetch (cl__nats_fetch) never starts one that way. Here 200 messages wait and a batch
 * is 256: every message must come out once and in order. Whether late messages arrive during
 * a fetch is a matter of timing, so this test cannot force the overflow itself; it checks
 * that the path the bus takes with messages waiting delivers them all. A real nats-server
 * of the test's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nats/nats.h>

#include "cleave/util.h"
#include "nats_internal.h"
#include "nats_server.h"

#define TOTAL   400 /* in the stream */
#define WAITING 200 /* already delivered to the subscription before the first fetch */
#define BATCH   256 /* the bus's batch */

static char dir[256];
static nats_server server;
static natsConnection *nc;
static jsCtx *js;
static natsSubscription *sub;

static int setup(void **state)
{
    jsStreamConfig sc;
    jsErrCode jerr = 0;
    const char *subjects[] = {"fetch.>"};

    (void)state;
    if (test_tmpdir(dir, sizeof(dir)) != 0 || nats_server_start(&server, dir) != 0 ||
        natsConnection_ConnectTo(&nc, server.url) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        return -1;
    }
    jsStreamConfig_Init(&sc);
    sc.Name = "FETCH";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    if (js_AddStream(NULL, js, &sc, NULL, &jerr) != NATS_OK) {
        return -1;
    }
    for (int i = 0; i < TOTAL; i++) {
        char body[16];

        snprintf(body, sizeof(body), "%d", i);
        if (js_Publish(NULL, js, "fetch.n", body, (int)strlen(body), NULL, &jerr) != NATS_OK) {
            return -1;
        }
    }
    return js_PullSubscribe(&sub, js, "fetch.>", "reader", NULL, NULL, &jerr) == NATS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_server_stop(&server);
    test_rmrf(dir);
    nats_Close();
    return 0;
}

static void test_messages_waiting_before_a_fetch_come_out_once_in_order(void **state)
{
    char request[64];
    int waiting = 0, bytes = 0, next = 0;
    int64_t deadline = cl_now_ms() + 10000;

    (void)state;
    /* A pull answered after its fetch gave up, as the server sends it: straight to the inbox. */
    snprintf(request, sizeof(request), "{\"batch\":%d,\"no_wait\":true}", WAITING);
    assert_int_equal(natsConnection_PublishRequestString(nc,
                                                         "$JS.API.CONSUMER.MSG.NEXT.FETCH.reader",
                                                         natsSubscription_GetSubject(sub), request),
                     NATS_OK);
    while (waiting < WAITING && cl_now_ms() < deadline) {
        assert_int_equal(natsSubscription_GetPending(sub, &waiting, &bytes), NATS_OK);
        if (waiting < WAITING) {
            natsConnection_Flush(nc);
        }
    }
    assert_true(waiting >= WAITING);

    deadline = cl_now_ms() + 20000;
    while (next < TOTAL && cl_now_ms() < deadline) {
        natsMsgList list = {0};
        natsStatus s = cl__nats_fetch(&list, sub, BATCH, 200);

        if (s == NATS_TIMEOUT) {
            continue;
        }
        assert_int_equal(s, NATS_OK);
        assert_true(list.Count >= 1 && list.Count <= BATCH);
        for (int i = 0; i < list.Count; i++) {
            const char *data = natsMsg_GetData(list.Msgs[i]);

            assert_non_null(data);
            assert_int_equal(strtol(data, NULL, 10), next);
            next++;
            assert_int_equal(natsMsg_Ack(list.Msgs[i], NULL), NATS_OK);
        }
        natsMsgList_Destroy(&list);
    }
    assert_int_equal(next, TOTAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_waiting_before_a_fetch_come_out_once_in_order),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
