/*
 * Events declared once (cleave/bus.h): the publisher encodes and the subscriber decodes
 * with the same generated codec, in process or over a real nats-server (argv[1]:
 * in-process|nats). A message the subscriber cannot understand - a payload of the wrong
 * shape, a newer schema version - goes to the dead-letter table at once, naming why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bus_harness.h"
#include "nats_server.h"

/* The publisher "pub" declares one event, as a module does in its public header. */
#define PUB_THING(X, T)                                                                            \
    X(T, STR, id, _)                                                                               \
    X(T, I64, count, _)                                                                            \
    X(T, STRS, tags, _)
CL_TYPE_DECLARE(pub_thing, PUB_THING)
CL_TYPE_DEFINE(pub_thing, PUB_THING)

#define PUB_EVENTS(X, M) X(M, thing_made, 1, pub_thing)
CL_EVENTS_DECLARE(pub, PUB_EVENTS)
CL_EVENTS_DEFINE(pub, PUB_EVENTS)

static const char *transport = "in-process";

static const char things_ddl[] = "CREATE TABLE things (id TEXT NOT NULL, count BIGINT NOT NULL, "
                                 "tags TEXT NOT NULL, version BIGINT NOT NULL)";
static const char thing_insert_sql[] =
    "INSERT INTO things (id, count, tags, version) VALUES (?, ?, ?, ?)";
static const char things_sql[] = "SELECT id, count, tags, version FROM things ORDER BY id";

/* The subscriber's handler: sees the decoded payload, records it in its own table. */
static cl_status on_thing(void *arg, cl_ctx *ctx, const cl_envelope *env, const void *payload,
                          cl_db_conn *conn)
{
    const pub_thing *t = payload;
    char tags[256] = "";
    cl_stmt *st;
    bool row;
    cl_status rc;

    (void)arg;
    for (size_t i = 0; i < t->tags.n; i++) {
        size_t len = strlen(tags);
        snprintf(tags + len, sizeof(tags) - len, "%s%s", i > 0 ? "," : "", t->tags.v[i]);
    }
    rc = cl_db_prepare(conn, thing_insert_sql, &st, &ctx->err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, t->id, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 2, t->count, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, tags, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 4, env->schema_version, &ctx->err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, &ctx->err);
    }
    return rc;
}

static int subscribe(bus_harness *h, void *arg)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    cl_status rc;

    (void)arg;
    rc = cl_db_acquire(h->sub, NULL, &conn, &err);
    if (rc == CL_OK) {
        rc = cl_db_exec(conn, things_ddl, &err);
    }
    cl_db_release(conn);
    if (rc == CL_OK) {
        rc = cl_bus_on(h->bus, "sub", &pub_event_thing_made, on_thing, NULL, &err);
    }
    if (rc != CL_OK) {
        fprintf(stderr, "subscribe: %s\n", err.message);
        return -1;
    }
    return 0;
}

/*
 * Publishes in one transaction on pub's database: typed (payload) or raw (json, version, of
 * type; NULL: thing_made's).
 */
static cl_status publish_as(bus_harness *h, const char *type, const char *key,
                            const pub_thing *payload, json_t *raw, int version)
{
    cl_db_conn *conn = NULL;
    cl_error err = {0};
    cl_status rc = cl_db_acquire(h->pub, NULL, &conn, &err);

    if (rc == CL_OK) {
        rc = cl_db_begin(conn, &err);
    }
    if (rc == CL_OK) {
        rc = payload != NULL
                 ? pub_publish_thing_made(conn, NULL, key, payload, &err)
                 : cl_bus_publish_version(conn, NULL,
                                          type != NULL ? type : pub_event_thing_made.type, key,
                                          version, raw, &err);
    }
    if (rc == CL_OK) {
        rc = cl_db_commit(conn, &err);
    }
    cl_db_release(conn);
    json_decref(raw);
    if (rc != CL_OK) {
        fprintf(stderr, "publish: %s\n", err.message);
    }
    return rc;
}

static cl_status publish(bus_harness *h, const char *key, const pub_thing *payload, json_t *raw,
                         int version)
{
    return publish_as(h, NULL, key, payload, raw, version);
}

/* Rows of the subscriber's things table, committed, into text "id:count:tags:version;...". */
static long read_things(bus_harness *h, char *out, size_t size)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err;
    bool row = false;
    long n = 0;

    out[0] = '\0';
    if (cl_db_acquire(h->sub, NULL, &conn, &err) != CL_OK) {
        return -1;
    }
    if (cl_db_prepare(conn, things_sql, &st, &err) == CL_OK) {
        while (cl_stmt_step(st, &row, &err) == CL_OK && row) {
            size_t len = strlen(out);
            snprintf(out + len, size - len, "%s:%lld:%s:%lld;", cl_stmt_text(st, 0),
                     (long long)cl_stmt_i64(st, 1), cl_stmt_text(st, 2),
                     (long long)cl_stmt_i64(st, 3));
            n++;
        }
    }
    cl_db_release(conn);
    return n;
}

/* Waits (up to 30 s) until the subscriber's dead-letter table holds want rows. */
static int wait_dead_letters(bus_harness *h, size_t want, cl_dead_letter_list *out)
{
    struct timespec nap = {0, 5 * 1000000L};
    cl_error err;

    for (int64_t end = cl_now_ms() + 30000; cl_now_ms() < end;) {
        memset(out, 0, sizeof(*out));
        if (cl_bus_dlq_list(h->sub, out, &err) == CL_OK && out->items.n >= want) {
            return 0;
        }
        cl_schema_free(&cl_dead_letter_list_type, out);
        nanosleep(&nap, NULL);
    }
    return -1;
}

static void open_harness(bus_harness *h, nats_server *nats, char *dir, size_t size)
{
    assert_int_equal(test_tmpdir(dir, size), 0);
    if (strcmp(transport, "nats") == 0) {
        assert_int_equal(nats_server_start(nats, dir), 0);
    }
    assert_int_equal(
        bus_harness_open_with(h, nats->url[0] != '\0' ? nats->url : NULL, 1, 1, subscribe, NULL),
        0);
}

static void close_harness(bus_harness *h, nats_server *nats, const char *dir)
{
    bus_harness_close(h);
    nats_server_stop(nats);
    test_rmrf(dir);
}

static void test_event_descriptor_names_type_subject_and_version(void **state)
{
    (void)state;
    assert_string_equal(pub_event_thing_made.module, "pub");
    assert_string_equal(pub_event_thing_made.type, "pub.thing_made");
    assert_string_equal(pub_event_thing_made.subject, "cleave.pub.thing_made");
    assert_int_equal(pub_event_thing_made.version, 1);
    assert_ptr_equal(pub_event_thing_made.payload, &pub_thing_type);
    assert_int_equal(pub_nevents, 1);
    assert_ptr_equal(pub_events[0], &pub_event_thing_made);
}

static void test_subscriber_gets_the_payload_the_publisher_declared(void **state)
{
    bus_harness h;
    nats_server nats = {0};
    char dir[256], rows[512] = "";
    char *tags_a[] = {"red", "big"};
    pub_thing a = {.id = "a", .count = 3, .tags = {tags_a, 2, true}};
    pub_thing b = {.id = "b", .count = -7, .tags = {NULL, 0, true}};
    struct timespec nap = {0, 5 * 1000000L};
    cl_dead_letter_list dl = {0};
    cl_error err;

    (void)state;
    open_harness(&h, &nats, dir, sizeof(dir));
    assert_int_equal(publish(&h, "thing:a", &a, NULL, 0), CL_OK);
    assert_int_equal(publish(&h, "thing:b", &b, NULL, 0), CL_OK);
    for (int64_t end = cl_now_ms() + 30000;
         cl_now_ms() < end && read_things(&h, rows, sizeof(rows)) < 2;) {
        nanosleep(&nap, NULL);
    }
    assert_string_equal(rows, "a:3:red,big:1;b:-7::1;");
    assert_int_equal(cl_bus_dlq_list(h.sub, &dl, &err), CL_OK);
    assert_int_equal(dl.items.n, 0);
    cl_schema_free(&cl_dead_letter_list_type, &dl);
    close_harness(&h, &nats, dir);
}

static void test_payload_that_does_not_decode_is_dead_lettered_at_once(void **state)
{
    bus_harness h;
    nats_server nats = {0};
    char dir[256], rows[512];
    cl_dead_letter_list dl = {0};
    const cl_dead_letter *d;

    (void)state;
    open_harness(&h, &nats, dir, sizeof(dir));
    /* "id" must be a string: an integer is a payload of another shape. */
    assert_int_equal(publish(&h, "thing:bad", NULL, json_pack("{s:i,s:i}", "id", 5, "count", 1), 1),
                     CL_OK);
    assert_int_equal(wait_dead_letters(&h, 1, &dl), 0);
    d = &dl.items.v[0];
    assert_string_equal(d->type, "pub.thing_made");
    /* Not retried: CLEAVE_BUS_MAX_ATTEMPTS (5) would have taken four backoffs. */
    assert_int_equal(d->attempts, 1);
    assert_non_null(strstr(d->last_error, "pub.thing_made version 1 does not decode"));
    assert_non_null(strstr(d->last_error, "id"));
    assert_int_equal(read_things(&h, rows, sizeof(rows)), 0);
    cl_schema_free(&cl_dead_letter_list_type, &dl);
    close_harness(&h, &nats, dir);
}

static void test_newer_schema_version_is_dead_lettered_naming_both_versions(void **state)
{
    bus_harness h;
    nats_server nats = {0};
    char dir[256], rows[512];
    cl_dead_letter_list dl = {0};

    (void)state;
    open_harness(&h, &nats, dir, sizeof(dir));
    assert_int_equal(publish(&h, "thing:v2", NULL,
                             json_pack("{s:s,s:i,s:[]}", "id", "v2", "count", 1, "tags"), 2),
                     CL_OK);
    assert_int_equal(wait_dead_letters(&h, 1, &dl), 0);
    assert_int_equal(dl.items.v[0].attempts, 1);
    assert_non_null(
        strstr(dl.items.v[0].last_error, "version 2 is newer than this subscriber's version 1"));
    assert_int_equal(read_things(&h, rows, sizeof(rows)), 0);
    cl_schema_free(&cl_dead_letter_list_type, &dl);
    close_harness(&h, &nats, dir);
}

/* How many of pub's outbox rows of type are marked delivered, or -1. */
static long delivered_rows(bus_harness *h, const char *type)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err;
    bool row = false;
    long n = -1;

    if (cl_db_acquire(h->pub, NULL, &conn, &err) == CL_OK &&
        cl_db_prepare(conn,
                      "SELECT count(*) FROM cl_outbox WHERE type = ? AND delivered_ms IS NOT NULL",
                      &st, &err) == CL_OK &&
        cl_stmt_bind_text(st, 1, type, &err) == CL_OK && cl_stmt_step(st, &row, &err) == CL_OK &&
        row) {
        n = (long)cl_stmt_i64(st, 0);
        (void)cl_stmt_drain(st, NULL, &err);
    }
    cl_db_release(conn);
    return n;
}

/*
 * An event that no module of the process handles: in process, its relay would hand it to
 * no one, so it is written delivered in the publishing transaction and never relayed; over
 * NATS, other processes may handle it, so it is relayed as any other. The subscribed event
 * published after it is handled once the relay went past it (one relay, in seq order).
 */
static void test_event_nobody_here_handles_is_relayed_only_over_nats(void **state)
{
    static const char nobody[] = "pub.thing_noticed";
    bus_harness h;
    nats_server nats = {0};
    char dir[256], rows[512] = "";
    pub_thing a = {.id = "a", .count = 1, .tags = {NULL, 0, true}};
    struct timespec nap = {0, 5 * 1000000L};
    bool in_process = strcmp(transport, "nats") != 0;
    cl_bus_stats stats = {0};
    cl_error err;

    (void)state;
    open_harness(&h, &nats, dir, sizeof(dir));
    assert_int_equal(publish_as(&h, nobody, "thing:a", NULL, json_pack("{s:s}", "id", "a"), 1),
                     CL_OK);
    if (in_process) {
        assert_int_equal(delivered_rows(&h, nobody), 1);
    }
    assert_int_equal(publish(&h, "thing:a", &a, NULL, 0), CL_OK);
    for (int64_t end = cl_now_ms() + 30000;
         cl_now_ms() < end && read_things(&h, rows, sizeof(rows)) < 1;) {
        nanosleep(&nap, NULL);
    }
    assert_string_equal(rows, "a:1::1;");
    /* A relay counts a round before it marks it delivered (in its next claim). */
    for (int64_t end = cl_now_ms() + 30000;
         cl_now_ms() < end && delivered_rows(&h, pub_event_thing_made.type) < 1;) {
        nanosleep(&nap, NULL);
    }
    assert_int_equal(delivered_rows(&h, pub_event_thing_made.type), 1);
    assert_int_equal(delivered_rows(&h, nobody), 1);
    assert_int_equal(cl_bus_stats_get(h.bus, &stats, &err), CL_OK);
    /* Relayed: thing_made, and over NATS the other one too. */
    assert_int_equal(stats.published, in_process ? 1 : 2);
    close_harness(&h, &nats, dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_descriptor_names_type_subject_and_version),
        cmocka_unit_test(test_subscriber_gets_the_payload_the_publisher_declared),
        cmocka_unit_test(test_payload_that_does_not_decode_is_dead_lettered_at_once),
        cmocka_unit_test(test_newer_schema_version_is_dead_lettered_naming_both_versions),
        cmocka_unit_test(test_event_nobody_here_handles_is_relayed_only_over_nats),
    };

    if (argc > 1) {
        transport = argv[1];
    }
    return cmocka_run_group_tests_name(transport, tests, NULL, NULL);
}
