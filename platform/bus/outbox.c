/*
 * Publishing into the outbox, and the envelope's wire form.
 *
 * The envelope travels as one JSON object:
 *   {"id","type","key","source","occurred_at","occurred_ms","schema_version",
 *    "traceparent","payload":{...}}
 * over NATS (the message body) and in the dead-letter table.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleave/trace.h"
#include "bus_internal.h"

#define INSERT_COLUMNS                                                                             \
    "INSERT INTO cl_outbox (id, type, msg_key, occurred_at, occurred_ms, schema_version, "         \
    "traceparent, payload"
static const char insert_sql[] = INSERT_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/*
 * An event no module of the running in-process bus handles (cl__bus_nobody_handles): its
 * relay would read it, hand it to no one and mark it delivered, a wake-up, a read and a
 * write transaction for nothing (two per checkout, the shipment's events, issue #16). It
 * is written delivered at once, in the publisher's transaction, and kept as relayed rows
 * are until the purge.
 */
static const char insert_delivered_sql[] =
    INSERT_COLUMNS ", delivered_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* "<module>.<event>": both parts [a-z0-9_], the module at most 63 bytes. */
static bool valid_type(const char *type)
{
    const char *dot;
    size_t n;

    if (type == NULL) {
        return false;
    }
    n = strlen(type);
    dot = strchr(type, '.');
    if (n == 0 || n >= CL_BUS_MAX_TYPE || dot == NULL || dot == type || dot[1] == '\0' ||
        (size_t)(dot - type) >= CL__BUS_NAME || strchr(dot + 1, '.') != NULL) {
        return false;
    }
    for (const char *p = type; *p != '\0'; p++) {
        if (p != dot && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return true;
}

static bool valid_key(const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;

    if (n == 0 || n > CL_BUS_MAX_KEY) {
        return false;
    }
    for (const char *p = key; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            return false;
        }
    }
    return true;
}

/* What a publication names: a connection, a type, a key, a version. */
static cl_status check_publish(const cl_db_conn *conn, const char *type, const char *key,
                               int schema_version, cl_error *err)
{
    if (conn == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_bus_publish: no connection");
    }
    if (!valid_type(type)) {
        return cl_error_set(err, CL_INVALID, "type", "event type '%s' is not <module>.<event>",
                            type != NULL ? type : "");
    }
    if (!valid_key(key)) {
        return cl_error_set(err, CL_INVALID, "key", "event key must be 1-%d printable bytes",
                            CL_BUS_MAX_KEY);
    }
    if (schema_version < 1) {
        return cl_error_set(err, CL_INVALID, "schema_version", "schema version must be >= 1");
    }
    return CL_OK;
}

/*
 * As cl_bus_publish_version once check_publish passed, for a payload already written as
 * text (taken and freed; NULL when writing it ran out of memory).
 */
static cl_status publish_text(cl_db_conn *conn, const cl_ctx *ctx, const char *type,
                              const char *key, int schema_version, char *text, cl_error *err)
{
    char id[CL_RANDOM_HEX_SIZE], now[32], trace[64] = "";
    cl_span span;
    cl_stmt *st;
    bool row;
    bool delivered;
    cl_status rc;

    if (text == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    if (strlen(text) > CL_BUS_MAX_PAYLOAD) {
        free(text);
        return cl_error_set(err, CL_INVALID, "payload", "event payload is larger than %zu bytes",
                            CL_BUS_MAX_PAYLOAD);
    }
    /* The publish span is the parent the handler's span names (cleave/trace.h). */
    cl_span_start_detached(&span, ctx, CL_SPAN_PRODUCER, type);
    cl_span_set_str(&span, "messaging.system", "cleave");
    cl_span_set_str(&span, "messaging.operation", "publish");
    (void)cl_span_traceparent(&span, trace);
    /* In time order: the outbox's and the inboxes' unique indexes grow at their right edge. */
    cl_time_ordered_hex(id);
    cl_now_rfc3339(now);
    delivered = cl__bus_nobody_handles(cl_db_of(conn), type);
    rc = cl_db_prepare(conn, delivered ? insert_delivered_sql : insert_sql, &st, err);
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 1, id, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 2, type, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 3, key, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 4, now, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 5, cl_wall_ms(), err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_i64(st, 6, schema_version, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 7, trace, err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_bind_text(st, 8, text, err);
    }
    if (rc == CL_OK && delivered) {
        rc = cl_stmt_bind_i64(st, 9, cl_wall_ms(), err);
    }
    if (rc == CL_OK) {
        rc = cl_stmt_step(st, &row, err);
    }
    free(text);
    cl_span_status(&span, rc);
    cl_span_end(&span);
    if (rc == CL_OK && !delivered) {
        /* The relay looks once the row is there to see: after the caller's commit. */
        cl_db_after_commit(conn, cl__bus_kick);
    }
    return rc;
}

cl_status cl_bus_publish_version(cl_db_conn *conn, const cl_ctx *ctx, const char *type,
                                 const char *key, int schema_version, json_t *payload,
                                 cl_error *err)
{
    cl_status rc = check_publish(conn, type, key, schema_version, err);

    if (rc != CL_OK) {
        return rc;
    }
    if (!json_is_object(payload)) {
        return cl_error_set(err, CL_INVALID, "payload", "event payload must be a JSON object");
    }
    return publish_text(conn, ctx, type, key, schema_version, json_dumps(payload, JSON_COMPACT),
                        err);
}

cl_status cl_bus_publish(cl_db_conn *conn, const cl_ctx *ctx, const char *type, const char *key,
                         json_t *payload, cl_error *err)
{
    return cl_bus_publish_version(conn, ctx, type, key, 1, payload, err);
}

cl_status cl_event_publish(cl_db_conn *conn, const cl_ctx *ctx, const cl_event *ev, const char *key,
                           const void *payload, cl_error *err)
{
    cl_status rc;

    if (ev == NULL || payload == NULL) {
        return cl_error_set(err, CL_INVALID, "event", "cl_event_publish: missing argument");
    }
    rc = check_publish(conn, ev->type, key, ev->version, err);
    if (rc != CL_OK) {
        return rc;
    }
    /* The same text as through a tree and json_dumps, without the tree (ADR 0054). */
    return publish_text(conn, ctx, ev->type, key, ev->version,
                        cl_schema_dump(ev->payload, payload, 0), err);
}

void cl__msg_free(cl__msg *m)
{
    if (m == NULL) {
        return;
    }
    free(m->payload_text);
    json_decref(m->payload);
    m->payload_text = NULL;
    m->payload = NULL;
}

const char *cl__msg_text(cl__msg *m)
{
    cl__msg again = {0};
    cl_error err = {0};

    if (m->payload_text != NULL) {
        return m->payload_text;
    }
    if (m->payload != NULL) {
        m->payload_text = json_dumps(m->payload, JSON_COMPACT);
    } else if (m->raw != NULL && cl__msg_decode(m->raw, m->raw_len, &again, &err) == CL_OK) {
        /* Its first attempt took the parsed payload: the envelope has it still. */
        m->payload_text = json_dumps(again.payload, JSON_COMPACT);
        cl__msg_free(&again);
    }
    return m->payload_text;
}

char *cl__msg_encode(const cl__msg *m)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:i,s:s,s:O}", "id", m->id, "type", m->type,
                          "key", m->key, "source", m->source, "occurred_at", m->occurred_at,
                          "occurred_ms", (json_int_t)m->occurred_ms, "schema_version",
                          m->schema_version, "traceparent", m->traceparent, "payload", m->payload);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return s;
}

static bool copy_field(json_t *o, const char *name, char *dst, size_t size)
{
    const char *s = json_string_value(json_object_get(o, name));

    return s != NULL && cl_strlcpy(dst, s, size) == 0;
}

cl_status cl__msg_decode(const char *data, size_t len, cl__msg *m, cl_error *err)
{
    json_error_t jerr;
    json_t *o;
    json_t *payload;

    if (len > CL_BUS_MAX_PAYLOAD + 4096) {
        return cl_error_set(err, CL_INVALID, NULL, "message of %zu bytes is too large", len);
    }
    o = json_loadb(data, len, 0, &jerr);
    if (o == NULL) {
        return cl_error_set(err, CL_INVALID, NULL, "message is not JSON: %s", jerr.text);
    }
    payload = json_object_get(o, "payload");
    if (!copy_field(o, "id", m->id, sizeof(m->id)) ||
        !copy_field(o, "type", m->type, sizeof(m->type)) ||
        !copy_field(o, "key", m->key, sizeof(m->key)) ||
        !copy_field(o, "source", m->source, sizeof(m->source)) ||
        !copy_field(o, "occurred_at", m->occurred_at, sizeof(m->occurred_at)) ||
        !copy_field(o, "traceparent", m->traceparent, sizeof(m->traceparent)) ||
        !json_is_object(payload) || !valid_type(m->type)) {
        json_decref(o);
        return cl_error_set(err, CL_INVALID, NULL, "message is not a cleave envelope");
    }
    m->occurred_ms = (int64_t)json_integer_value(json_object_get(o, "occurred_ms"));
    m->schema_version = (int)json_integer_value(json_object_get(o, "schema_version"));
    m->payload = json_incref(payload);
    json_decref(o);
    return CL_OK;
}
