/*
 * Fuzz target: the bus message envelope decoder (cl__msg_decode), as a consumer meets a
 * message from NATS or the outbox, then the declared event's payload codec when the
 * envelope names one (lenient, as the bus decodes events). An accepted envelope must
 * encode and decode again to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "fuzz.h"

static const cl_event *msg_event(const char *type)
{
    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        const cl_module_api *api = fuzz_modules[m];

        for (size_t i = 0; i < api->nevents; i++) {
            if (strcmp(api->events[i]->type, type) == 0) {
                return api->events[i];
            }
        }
    }
    return NULL;
}

static void msg_check_round_trip(const cl__msg *m)
{
    char *text = cl__msg_encode(m);
    cl__msg again = {0};
    cl_error err = {0};

    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(cl__msg_decode(text, strlen(text), &again, &err) == CL_OK);
    FUZZ_CHECK(strcmp(again.id, m->id) == 0 && strcmp(again.type, m->type) == 0);
    FUZZ_CHECK(strcmp(again.key, m->key) == 0 && strcmp(again.source, m->source) == 0);
    FUZZ_CHECK(strcmp(again.occurred_at, m->occurred_at) == 0);
    FUZZ_CHECK(strcmp(again.traceparent, m->traceparent) == 0);
    FUZZ_CHECK(again.occurred_ms == m->occurred_ms);
    FUZZ_CHECK(again.schema_version == m->schema_version);
    FUZZ_CHECK(json_equal(again.payload, m->payload));
    cl__msg_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl__msg m = {0};
    cl_error err = {0};
    const cl_event *ev;

    if (cl__msg_decode((const char *)data, size, &m, &err) != CL_OK) {
        FUZZ_CHECK(err.status == CL_INVALID && m.payload == NULL);
        return 0;
    }
    FUZZ_CHECK(json_is_object(m.payload));
    msg_check_round_trip(&m);
    ev = msg_event(m.type);
    if (ev != NULL) {
        void *payload = calloc(1, ev->payload->size);

        FUZZ_CHECK(payload != NULL);
        if (cl_schema_from_json(ev->payload, m.payload, CL_DECODE_LENIENT, payload, &err) ==
            CL_OK) {
            json_t *enc = cl_schema_to_json(ev->payload, payload);

            FUZZ_CHECK(enc != NULL);
            json_decref(enc);
        }
        cl_schema_free(ev->payload, payload);
        free(payload);
    }
    cl__msg_free(&m);
    return 0;
}
