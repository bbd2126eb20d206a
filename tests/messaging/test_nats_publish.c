/*
 * The NATS transport's publish of a relay round (nats.c, ADR 0043): every message of the
 * round is in flight at once, each on condition that the one sent before it is the
 * stream's last (Nats-Expected-Last-Msg-Id). What must hold:
 * - a round goes into the stream whole and in order, its envelopes intact (the body is
 *   written without jansson when it can be: keys that need escaping, and keys beyond ASCII);
 * - messages of the round already in the stream (a relay that died between JetStream's ack
 *   and marking them delivered) are acknowledged as duplicates and the rest still follow,
 *   each stored once and each key's in order (the chain breaks there: the rest go in
 *   waves, one message per key in flight);
 * - a message that is refused keeps every later message of the round out of the stream,
 *   whatever its key, so that no message can overtake an earlier one of its key.
 * A real nats-server of the test's own.
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

#include "bus_internal.h"
#include "cleave/config.h"
#include "cleave/extension.h"
#include "nats_server.h"

#define MAX_MSGS 200

static char dir[256];
static nats_server server;
static natsConnection *nc; /* the test's own, to read and seed the stream */
static jsCtx *js;
static cl_config *cfg;
static cl_bus *bus;
static cl_db *db;
static const cl__bus_transport *transport;
static int round_no; /* each test's messages have ids of their own */

static int setup(void **state)
{
    static const cl_settings pub = {"pub", true, NULL, 0};
    static const cl_settings *const modules[] = {&pub, NULL};
    char url_env[128], path[512];
    char *env[] = {url_env, NULL};
    cl_db_options opt = {.max_conns = 2, .acquire_timeout_ms = 5000};
    cl_error err = {0};

    (void)state;
    if (test_tmpdir(dir, sizeof(dir)) != 0 || nats_server_start(&server, dir) != 0 ||
        natsConnection_ConnectTo(&nc, server.url) != NATS_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        return -1;
    }
    snprintf(url_env, sizeof(url_env), "CLEAVE_NATS_URL=%s", server.url);
    snprintf(path, sizeof(path), "%s/pub.db", dir);
    if (cl_config_load(NULL, env, modules, &cfg, &err) != CL_OK ||
        cl_extension_register(&cl_nats_extension, &err) != CL_OK ||
        cl_bus_new(cfg, &bus, &err) != CL_OK ||
        cl_db_open(&cl_db_sqlite, "pub", path, &opt, &db, &err) != CL_OK ||
        cl_bus_add_module(bus, "pub", db, &err) != CL_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    transport = cl_nats_extension.impl;
    /* Connects and creates the module's stream CLEAVE_PUB (cleave.pub.>). */
    if (transport->connect(bus, &err) != CL_OK) {
        fprintf(stderr, "connect: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    transport->close(bus);
    cl_bus_free(bus);
    cl_db_close(db);
    cl_config_free(cfg);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_server_stop(&server);
    test_rmrf(dir);
    nats_Close();
    return 0;
}

/* Empties the stream, so that each test reads only its own messages. */
static int reset(void **state)
{
    jsErrCode jerr = 0;

    (void)state;
    round_no++;
    return js_PurgeStream(js, "CLEAVE_PUB", NULL, &jerr) == NATS_OK ? 0 : -1;
}

/* n messages of type pub.happened over keys[i % nkeys], payload {"n":i}. */
static void make_msgs(cl__msg *msgs, int n, const char *const *keys, int nkeys)
{
    for (int i = 0; i < n; i++) {
        char text[32];

        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].seq = i + 1;
        msgs[i].occurred_ms = 1700000000000 + i;
        msgs[i].schema_version = 1;
        snprintf(msgs[i].id, sizeof(msgs[i].id), "r%d-m%03d", round_no, i);
        snprintf(msgs[i].type, sizeof(msgs[i].type), "pub.happened");
        snprintf(msgs[i].key, sizeof(msgs[i].key), "%s", keys[i % nkeys]);
        snprintf(msgs[i].source, sizeof(msgs[i].source), "pub");
        snprintf(msgs[i].occurred_at, sizeof(msgs[i].occurred_at), "2026-12-01T00:00:00Z");
        snprintf(msgs[i].traceparent, sizeof(msgs[i].traceparent),
                 "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        snprintf(text, sizeof(text), "{\"n\":%d}", i);
        msgs[i].payload_text = strdup(text);
        assert_non_null(msgs[i].payload_text);
    }
}

static void free_msgs(cl__msg *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        cl__msg_free(&msgs[i]);
    }
}

/* The stream's messages, in stream order, decoded into out[0..*n) (at most max). */
static void read_stream(cl__msg *out, int max, int *n)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    int total;

    assert_int_equal(js_GetStreamInfo(&si, js, "CLEAVE_PUB", NULL, &jerr), NATS_OK);
    total = (int)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    assert_true(total <= max);
    *n = 0;
    if (total == 0) {
        return;
    }
    jsSubOptions_Init(&so);
    so.Stream = "CLEAVE_PUB";
    so.Config.DeliverPolicy = js_DeliverAll;
    assert_int_equal(js_SubscribeSync(&sub, js, "cleave.pub.>", NULL, &so, &jerr), NATS_OK);
    while (*n < total) {
        natsMsg *m = NULL;
        cl_error err = {0};

        assert_int_equal(natsSubscription_NextMsg(&m, sub, 5000), NATS_OK);
        memset(&out[*n], 0, sizeof(out[*n]));
        assert_int_equal(
            cl__msg_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &out[*n], &err),
            CL_OK);
        natsMsg_Destroy(m);
        (*n)++;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

/* got is sent's message: the same envelope, payload {"n":<its index>}. */
static void assert_same(const cl__msg *got, const cl__msg *sent)
{
    json_t *payload = json_loads(sent->payload_text, 0, NULL);

    assert_string_equal(got->id, sent->id);
    assert_string_equal(got->type, sent->type);
    assert_string_equal(got->key, sent->key);
    assert_string_equal(got->source, sent->source);
    assert_string_equal(got->occurred_at, sent->occurred_at);
    assert_string_equal(got->traceparent, sent->traceparent);
    assert_int_equal(got->occurred_ms, sent->occurred_ms);
    assert_int_equal(got->schema_version, sent->schema_version);
    assert_non_null(payload);
    assert_true(json_equal(got->payload, payload));
    json_decref(payload);
}

/* The index of the message with id in msgs[0..n), or -1. */
static int index_of(const cl__msg *msgs, int n, const char *id)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(msgs[i].id, id) == 0) {
            return i;
        }
    }
    return -1;
}

static void test_a_round_goes_into_the_stream_whole_and_in_order(void **state)
{
    /* Keys that the body writes itself, with escapes, and one that goes through jansson. */
    static const char *const keys[] = {"order-1", "quote\"and\\slash",
                                       "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"};
    cl__msg sent[MAX_MSGS], got[MAX_MSGS];
    bool ok[MAX_MSGS];
    cl_error err = {0};
    int n = 0;

    (void)state;
    make_msgs(sent, MAX_MSGS, keys, 3);
    transport->publish_batch(bus, sent, MAX_MSGS, ok, &err);
    assert_string_equal(err.message, "");
    for (int i = 0; i < MAX_MSGS; i++) {
        assert_true(ok[i]);
    }
    read_stream(got, MAX_MSGS, &n);
    assert_int_equal(n, MAX_MSGS);
    for (int i = 0; i < n; i++) {
        assert_same(&got[i], &sent[i]);
    }
    free_msgs(got, n);
    free_msgs(sent, MAX_MSGS);
}

static void test_messages_already_in_the_stream_are_acked_and_the_rest_follow(void **state)
{
    static const char *const keys[] = {"a", "b"};
    cl__msg sent[8], got[16];
    bool ok[8];
    cl_error err = {0};
    int n = 0;
    /* Stored before, as by a relay that died before marking them delivered. */
    static const int before[] = {1, 2, 5};

    (void)state;
    make_msgs(sent, 8, keys, 2);
    for (size_t k = 0; k < sizeof(before) / sizeof(before[0]); k++) {
        const cl__msg *m = &sent[before[k]];
        char *body;
        jsPubOptions po;
        jsErrCode jerr = 0;
        cl__msg copy = *m;

        copy.payload = json_loads(m->payload_text, 0, NULL);
        body = cl__msg_encode(&copy);
        json_decref(copy.payload);
        assert_non_null(body);
        jsPubOptions_Init(&po);
        po.MsgId = m->id;
        assert_int_equal(
            js_Publish(NULL, js, "cleave.pub.happened", body, (int)strlen(body), &po, &jerr),
            NATS_OK);
        free(body);
    }
    transport->publish_batch(bus, sent, 8, ok, &err);
    for (int i = 0; i < 8; i++) {
        assert_true(ok[i]);
    }
    /* Each once: the three from before, then the others, each key's in order. */
    read_stream(got, 16, &n);
    assert_int_equal(n, 8);
    assert_same(&got[0], &sent[1]);
    assert_same(&got[1], &sent[2]);
    assert_same(&got[2], &sent[5]);
    for (int i = 3, last[2] = {-1, -1}; i < n; i++) {
        int k = index_of(sent, 8, got[i].id);

        assert_true(k >= 0 && k != 1 && k != 2 && k != 5);
        assert_same(&got[i], &sent[k]);
        assert_true(k > last[k % 2]);
        last[k % 2] = k;
    }
    free_msgs(got, n);
    free_msgs(sent, 8);
}

static void test_a_refused_message_keeps_every_later_one_out(void **state)
{
    static const char *const keys[] = {"a", "b", "c"};
    cl__msg sent[9], got[16];
    bool ok[9];
    cl_error err = {0};
    int n = 0;

    (void)state;
    make_msgs(sent, 9, keys, 3);
    /* No stream takes this subject: JetStream has no answer for the fourth message. */
    snprintf(sent[3].type, sizeof(sent[3].type), "nostream.happened");
    transport->publish_batch(bus, sent, 9, ok, &err);
    assert_int_equal(err.status, CL_UNAVAILABLE);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(ok[i], i < 3);
    }
    /* Not one later message got in, of any key: they follow the refused one next round. */
    read_stream(got, 16, &n);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        assert_same(&got[i], &sent[i]);
    }
    free_msgs(got, n);
    free_msgs(sent, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_round_goes_into_the_stream_whole_and_in_order, reset),
        cmocka_unit_test_setup(test_messages_already_in_the_stream_are_acked_and_the_rest_follow,
                               reset),
        cmocka_unit_test_setup(test_a_refused_message_keeps_every_later_one_out, reset),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
