/*
 * Test support, header only: whether cl_schema_parse and cl_json_check agree with jansson
 * (json_loadb(text, len, 0), then cl_schema_from_json) on one text - the same texts
 * accepted, the same status, error field and message, the same struct - and whether
 * cl_schema_dump writes what json_dumps writes of that struct. Used by test_schema on
 * chosen texts and by fuzz_codec on every input.
 */
#ifndef CLEAVE_TEST_SCHEMA_AGREES_H
#define CLEAVE_TEST_SCHEMA_AGREES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleave/schema.h"

/* NULL when cl_schema_dump of obj is json_dumps' text, sorted and not; else what differs. */
static inline const char *schema_dump_agrees(const cl_type *type, const void *obj)
{
    const char *diff = NULL;

    for (int sorted = 0; sorted < 2 && diff == NULL; sorted++) {
        json_t *tree = cl_schema_to_json(type, obj);
        char *want =
            tree != NULL ? json_dumps(tree, JSON_COMPACT | (sorted ? JSON_SORT_KEYS : 0)) : NULL;
        char *got = cl_schema_dump(type, obj, sorted ? CL_DUMP_SORTED : 0);

        if ((want == NULL) != (got == NULL) || (want != NULL && strcmp(want, got) != 0)) {
            diff = sorted ? "cl_schema_dump (sorted) differs from json_dumps"
                          : "cl_schema_dump differs from json_dumps";
        }
        free(want);
        free(got);
        json_decref(tree);
    }
    return diff;
}

/* NULL when both ways agree on text; else what differs (a static string). */
static inline const char *schema_agrees(const cl_type *type, const char *text, size_t len,
                                        int flags)
{
    static char what[1024];
    json_t *tree = json_loadb(text, len, 0, NULL);
    void *a = calloc(1, type->size);
    void *b = calloc(1, type->size);
    cl_error ea = {0};
    cl_error eb = {0};
    cl_status sa, sb;
    bool not_json = false;
    const char *diff = NULL;

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        json_decref(tree);
        return "out of memory";
    }
    /* A NUL byte is never JSON; jansson skips one right after a number or a literal. */
    if (memchr(text, '\0', len) != NULL) {
        json_decref(tree);
        tree = NULL;
    }
    if ((tree != NULL) != cl_json_check(text, len, NULL, 0)) {
        diff = tree != NULL ? "jansson accepts the text, cl_json_check refuses it"
                            : "jansson refuses the text, cl_json_check accepts it";
    }
    sb = cl_schema_parse(type, text, len, flags, b, &not_json, &eb);
    if (diff == NULL && not_json != (tree == NULL)) {
        diff = "cl_schema_parse's not_json differs from jansson";
    } else if (diff == NULL && tree == NULL) {
        if (sb != CL_INVALID || eb.field[0] != '\0' || strncmp(eb.message, "not JSON: ", 10) != 0) {
            diff = "cl_schema_parse of a text that is not JSON";
        }
    } else if (diff == NULL) {
        sa = cl_schema_from_json(type, tree, flags, a, &ea);
        if (sa != sb || strcmp(ea.field, eb.field) != 0 || strcmp(ea.message, eb.message) != 0) {
            snprintf(what, sizeof(what), "jansson: %d %s: %s; cl_schema_parse: %d %s: %s", (int)sa,
                     ea.field, ea.message, (int)sb, eb.field, eb.message);
            diff = what;
        } else if (sa == CL_OK) {
            json_t *ja = cl_schema_to_json(type, a);
            json_t *jb = cl_schema_to_json(type, b);
            if (ja == NULL || jb == NULL || !json_equal(ja, jb)) {
                diff = "the structs differ";
            } else {
                diff = schema_dump_agrees(type, b);
            }
            json_decref(ja);
            json_decref(jb);
        }
    }
    cl_schema_free(type, a);
    cl_schema_free(type, b);
    free(a);
    free(b);
    json_decref(tree);
    return diff;
}

#endif /* CLEAVE_TEST_SCHEMA_AGREES_H */
