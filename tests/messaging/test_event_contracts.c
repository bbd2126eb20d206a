/*
 * A contract test for every event every module declares (ADR 0021), in process or over a
 * real nats-server (argv[1]: in-process|nats): a sample payload that fills every field of
 * the event's declared type is published with the publisher's generated codec, from a
 * database named after the publishing module, and a subscriber decoding with the same
 * declared type gets exactly that payload back. An event added to a module's header is
 * covered without writing a test for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bus_harness.h"
#include "catalog/catalog.h"
#include "inventory/inventory.h"
#include "nats_server.h"
#include "orders/orders.h"
#include "payments/payments.h"
#include "shipping/shipping.h"

static const char *transport = "in-process";

/* Every module's interface: the events come from their descriptors. */
static const cl_module_api *const apis[] = {&catalog_api, &inventory_api, &orders_api,
                                            &payments_api, &shipping_api};
#define NAPIS (sizeof(apis) / sizeof(apis[0]))

static const char seen_ddl[] =
    "CREATE TABLE events_seen (type TEXT NOT NULL, payload TEXT NOT NULL)";
static const char seen_insert_sql[] = "INSERT INTO events_seen (type, payload) VALUES (?, ?)";
static const char seen_sql[] = "SELECT payload FROM events_seen WHERE type = ?";
static const char seen_count_sql[] = "SELECT count(*) FROM events_seen";

/* Fills every field of obj (of type t, zeroed) with a value that names the field. */
static void fill_sample(const cl_type *t, void *obj, int depth)
{
    for (size_t i = 0; i < t->nfields; i++) {
        const cl_field *f = &t->fields[i];
        char *at = (char *)obj + f->offset;
        char text[96];

        snprintf(text, sizeof(text), "%s-%d", f->name, depth);
        switch (f->kind) {
        case CL_KIND_STR:
            *(char **)(void *)at = cl_strdup(text);
            break;
        case CL_KIND_I64:
            *(int64_t *)(void *)at = 1000 + (int64_t)i;
            break;
        case CL_KIND_OPT_I64:
            *(cl_opt_i64 *)(void *)at = (cl_opt_i64){true, -7};
            break;
        case CL_KIND_BOOL:
            *(bool *)(void *)at = true;
            break;
        case CL_KIND_STRS:
            assert_int_equal(cl_strs_push((cl_strs *)(void *)at, text), 0);
            assert_int_equal(cl_strs_push((cl_strs *)(void *)at, "second"), 0);
            ((cl_strs *)(void *)at)->set = true;
            break;
        case CL_KIND_OBJ:
            fill_sample(f->sub, at, depth + 1);
            break;
        case CL_KIND_OPT_OBJ:
            *(void **)(void *)at = calloc(1, f->sub->size);
            assert_non_null(*(void **)(void *)at);
            fill_sample(f->sub, *(void **)(void *)at, depth + 1);
            break;
        case CL_KIND_OBJS:
            for (int k = 0; k < 2; k++) {
                void *e = cl_list_push((cl_list *)(void *)at, f->sub->size);
                assert_non_null(e);
                fill_sample(f->sub, e, depth + 1);
            }
            break;
        }
    }
}

/* The subscriber: re-encodes what it decoded, in the inbox transaction. */
static cl_status on_event(void *arg, cl_ctx *ctx, const cl_envelope *env, const void *payload,
                          cl_db_conn *conn)
{
    const cl_event *ev = arg;
    json_t *j = cl_schema_to_json(ev->payload, payload);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    cl_stmt *st;
    cl_status rc;

    json_decref(j);
    if (text == NULL) {
        return cl_fail(ctx, CL_INTERNAL, NULL, "out of memory");
    }
    rc = cl_db_prepare_bind(ctx, conn, seen_insert_sql, &st, "ss", env->type, (const char *)text);
    if (rc == CL_OK) {
        rc = cl_stmt_drain(st, NULL, &ctx->err);
    }
    free(text);
    return rc;
}

static cl_db *publishers[NAPIS];

static int subscribe_to_every_event(bus_harness *h, void *arg)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};

    (void)arg;
    if (cl_db_acquire(h->sub, NULL, &conn, &err) != CL_OK ||
        cl_db_exec(conn, seen_ddl, &err) != CL_OK) {
        cl_db_release(conn);
        return -1;
    }
    cl_db_release(conn);
    for (size_t a = 0; a < NAPIS; a++) {
        if (apis[a]->nevents == 0) {
            continue;
        }
        if (bus_harness_add_module(h, apis[a]->name, &publishers[a]) != 0) {
            return -1;
        }
        for (size_t e = 0; e < apis[a]->nevents; e++) {
            const cl_event *ev = apis[a]->events[e];
            if (cl_bus_on(h->bus, "sub", ev, on_event, (void *)ev, &err) != CL_OK) {
                fprintf(stderr, "subscribe to %s: %s\n", ev->type, err.message);
                return -1;
            }
        }
    }
    return 0;
}

static long seen_count(bus_harness *h)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err;
    bool row = false;
    long n = -1;

    if (cl_db_acquire(h->sub, NULL, &conn, &err) == CL_OK &&
        cl_db_prepare(conn, seen_count_sql, &st, &err) == CL_OK &&
        cl_stmt_step(st, &row, &err) == CL_OK && row) {
        n = (long)cl_stmt_i64(st, 0);
        (void)cl_stmt_drain(st, NULL, &err);
    }
    cl_db_release(conn);
    return n;
}

/* The payload the subscriber recorded for type, as a new JSON value, or NULL. */
static json_t *seen_payload(bus_harness *h, const char *type)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err;
    bool row = false;
    json_t *j = NULL;

    if (cl_db_acquire(h->sub, NULL, &conn, &err) == CL_OK &&
        cl_db_prepare(conn, seen_sql, &st, &err) == CL_OK &&
        cl_stmt_bind_text(st, 1, type, &err) == CL_OK && cl_stmt_step(st, &row, &err) == CL_OK &&
        row) {
        j = json_loads(cl_stmt_text(st, 0), 0, NULL);
        (void)cl_stmt_drain(st, NULL, &err);
    }
    cl_db_release(conn);
    return j;
}

static void test_every_declared_event_reaches_its_subscriber_whole(void **state)
{
    bus_harness h;
    nats_server nats = {0};
    char dir[256];
    json_t *sent[64];
    const cl_event *events[64];
    size_t n = 0;
    struct timespec nap = {0, 5 * 1000000L};
    cl_error err = {0};

    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir)), 0);
    if (strcmp(transport, "nats") == 0) {
        assert_int_equal(nats_server_start(&nats, dir), 0);
    }
    assert_int_equal(bus_harness_open_with(&h, nats.url[0] != '\0' ? nats.url : NULL, 1, 1,
                                           subscribe_to_every_event, NULL),
                     0);
    for (size_t a = 0; a < NAPIS; a++) {
        for (size_t e = 0; e < apis[a]->nevents; e++) {
            const cl_event *ev = apis[a]->events[e];
            void *sample = calloc(1, ev->payload->size);
            cl_db_conn *conn = NULL;

            assert_non_null(sample);
            assert_true(n < 64);
            /* The descriptor agrees with the module that lists it. */
            assert_string_equal(ev->module, apis[a]->name);
            fill_sample(ev->payload, sample, 0);
            sent[n] = cl_schema_to_json(ev->payload, sample);
            events[n++] = ev;
            assert_int_equal(cl_db_acquire(publishers[a], NULL, &conn, &err), CL_OK);
            assert_int_equal(cl_db_begin(conn, &err), CL_OK);
            assert_int_equal(cl_event_publish(conn, NULL, ev, "contract:1", sample, &err), CL_OK);
            assert_int_equal(cl_db_commit(conn, &err), CL_OK);
            cl_db_release(conn);
            cl_schema_free(ev->payload, sample);
            free(sample);
        }
    }
    /* catalog (2), orders (1) and shipping (2) declare events today; at least those. */
    assert_true(n >= 5);
    for (int64_t end = cl_now_ms() + 30000; cl_now_ms() < end && seen_count(&h) < (long)n;) {
        nanosleep(&nap, NULL);
    }
    assert_int_equal(seen_count(&h), (long)n);
    for (size_t i = 0; i < n; i++) {
        json_t *got = seen_payload(&h, events[i]->type);

        if (got == NULL || !json_equal(got, sent[i])) {
            char *want = json_dumps(sent[i], JSON_COMPACT | JSON_SORT_KEYS);
            char *have = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            fail_msg("%s: sent %s, the subscriber decoded %s", events[i]->type, want,
                     have != NULL ? have : "nothing");
        }
        json_decref(got);
        json_decref(sent[i]);
    }
    bus_harness_close(&h);
    nats_server_stop(&nats);
    test_rmrf(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_declared_event_reaches_its_subscriber_whole),
    };

    if (argc > 1) {
        transport = argv[1];
    }
    return cmocka_run_group_tests_name(transport, tests, NULL, NULL);
}
