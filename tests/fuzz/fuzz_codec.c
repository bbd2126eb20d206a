/*
 * Fuzz target: every module's operation codec, and every declared event's payload codec.
 *
 * Input: byte 0 picks a declared type (an operation's request or response, or an event's
 * payload, over all modules), bit 0 of byte 1 picks strict or lenient decoding, the rest
 * is JSON text. What a decode accepts must encode, decode again strictly to the same
 * JSON, survive a text round trip, and deep-copy to the same JSON. The decoder from text
 * (cl_schema_parse) and the writer (cl_schema_dump) must agree with jansson on every input.
 */
#include <stdlib.h>

#include <jansson.h>

#include "fuzz.h"

#include "../support/schema_agrees.h"

/* Every declared type, gathered on the first input. */
static const cl_type *codec_types[256];
static size_t codec_ntypes;

static void codec_add(const cl_type *type)
{
    FUZZ_CHECK(codec_ntypes < sizeof(codec_types) / sizeof(codec_types[0]));
    codec_types[codec_ntypes++] = type;
}

static void codec_init(void)
{
    for (size_t m = 0; fuzz_modules[m] != NULL; m++) {
        const cl_module_api *api = fuzz_modules[m];

        for (size_t i = 0; i < api->nops; i++) {
            codec_add(api->ops[i].req);
            codec_add(api->ops[i].resp);
        }
        for (size_t i = 0; i < api->nevents; i++) {
            codec_add(api->events[i]->payload);
        }
    }
    FUZZ_CHECK(codec_ntypes > 0);
}

/* Decodes json with flags into a new object (free with codec_free) and checks it encodes. */
static void *codec_decode(const cl_type *type, json_t *json, int flags, cl_status *st)
{
    void *obj = calloc(1, type->size);
    cl_error err = {0};

    FUZZ_CHECK(obj != NULL);
    *st = cl_schema_from_json(type, json, flags, obj, &err);
    if (*st != CL_OK) {
        /* A refusal is CL_INVALID and names a field or says why (cleave/schema.h). */
        FUZZ_CHECK(*st == CL_INVALID);
        FUZZ_CHECK(err.message[0] != '\0');
    }
    return obj;
}

static void codec_free(const cl_type *type, void *obj)
{
    cl_schema_free(type, obj);
    free(obj);
}

static void codec_round_trip(const cl_type *type, const void *obj)
{
    json_t *enc = cl_schema_to_json(type, obj);
    json_t *enc2 = NULL;
    json_t *reparsed = NULL;
    json_t *copied = NULL;
    void *again = NULL;
    void *copy = NULL;
    char *text = NULL;
    cl_status st;

    FUZZ_CHECK(enc != NULL);
    /* Our own output is valid input, even to the strict public decoder. */
    again = codec_decode(type, enc, CL_DECODE_STRICT, &st);
    FUZZ_CHECK(st == CL_OK);
    enc2 = cl_schema_to_json(type, again);
    FUZZ_CHECK(enc2 != NULL && json_equal(enc, enc2));
    /* The text a peer receives parses back to the same JSON. */
    text = json_dumps(enc, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    reparsed = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(reparsed != NULL && json_equal(enc, reparsed));
    copy = calloc(1, type->size);
    FUZZ_CHECK(copy != NULL);
    FUZZ_CHECK(cl_schema_copy(type, copy, obj) == CL_OK);
    copied = cl_schema_to_json(type, copy);
    FUZZ_CHECK(copied != NULL && json_equal(enc, copied));
    codec_free(type, copy);
    codec_free(type, again);
    free(text);
    json_decref(copied);
    json_decref(reparsed);
    json_decref(enc2);
    json_decref(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const cl_type *type;
    json_t *json;
    void *obj;
    int flags;
    cl_status st;

    if (codec_ntypes == 0) {
        codec_init();
    }
    if (size < 2) {
        return 0;
    }
    type = codec_types[data[0] % codec_ntypes];
    flags = (data[1] & 1) != 0 ? CL_DECODE_STRICT : CL_DECODE_LENIENT;
    /* As the bus decodes a declared event's payload: straight from the text. */
    FUZZ_CHECK(schema_agrees(type, (const char *)data + 2, size - 2, flags) == NULL);
    /* As the HTTP server and the RPC client parse bodies. */
    json = json_loadb((const char *)data + 2, size - 2, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      NULL);
    if (json == NULL) {
        return 0;
    }
    obj = codec_decode(type, json, flags, &st);
    if (st == CL_OK) {
        codec_round_trip(type, obj);
    }
    codec_free(type, obj);
    json_decref(json);
    return 0;
}
