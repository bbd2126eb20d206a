/*
 * Fuzz target: the GraphQL engine (platform/graphql, ADR 0038) end to end - lexer, parser,
 * validation, limits, variable coercion and execution with batching - on a small schema of
 * its own whose resolvers return fixed data.
 *
 * Input: byte 0 bit 0 makes the request a GET (queries only); the rest is the document.
 * Whatever the input, the engine answers (CL_OK) with a JSON object: errors and no data
 * when it refused the document, data when it executed it, and every error has a message.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/graphql.h"
#include "fuzz.h"

static cl_status item(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    const char *id = json_string_value(json_object_get(args, "id"));

    (void)call;
    (void)parent;
    *out = id != NULL && strcmp(id, "0") == 0
               ? json_null()
               : json_pack("{sssss[ss]}", "id", id != NULL ? id : "1", "name", "thing", "tags", "a",
                           "b");
    return CL_OK;
}

static cl_status items(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    json_int_t n = json_integer_value(json_object_get(args, "first"));

    (void)parent;
    if (n < 0 || n > 50) {
        return cl_gql_call_error(call, CL_INVALID, "first out of range");
    }
    *out = json_array();
    for (json_int_t i = 0; i < n; i++) {
        json_array_append_new(*out, json_pack("{sIss}", "id", i, "name", "x"));
    }
    return CL_OK;
}

static cl_status echo(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    char *text = json_dumps(args, JSON_COMPACT);

    (void)call;
    (void)parent;
    *out = json_string(text != NULL ? text : "");
    free(text);
    return CL_OK;
}

/* Every parent's next item in one call; a name of "x" has none. */
static cl_status next_batch(cl_gql_call *call, json_t *parents, json_t *args, json_t *outs)
{
    size_t i;
    json_t *p;

    (void)call;
    (void)args;
    json_array_foreach (parents, i, p) {
        json_array_append_new(outs,
                              json_pack("{sOss}", "id", json_object_get(p, "id"), "name", "x"));
    }
    return CL_OK;
}

static cl_status set(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    (void)parent;
    if (json_integer_value(json_object_get(args, "v")) == 13) {
        return cl_gql_call_error(call, CL_CONFLICT, "unlucky");
    }
    *out = json_incref(json_object_get(args, "v"));
    return CL_OK;
}

static const cl_gql_arg id_arg[] = {{"id", "ID!", NULL, NULL}, {NULL, NULL, NULL, NULL}};
static const cl_gql_arg first_arg[] = {{"first", "Int", "2", NULL}, {NULL, NULL, NULL, NULL}};
static const cl_gql_arg echo_args[] = {
    {"s", "String", "\"d\"", NULL}, {"i", "Int", NULL, NULL},      {"e", "Color", "RED", NULL},
    {"in", "Input", NULL, NULL},    {"l", "[[Int!]]", NULL, NULL}, {NULL, NULL, NULL, NULL},
};
static const cl_gql_arg v_arg[] = {{"v", "Int!", NULL, NULL}, {NULL, NULL, NULL, NULL}};
static const cl_gql_arg input_fields[] = {
    {"a", "Int!", NULL, NULL},
    {"b", "[String]", NULL, NULL},
    {"c", "Float", "1.5", NULL},
    {NULL, NULL, NULL, NULL},
};

static const cl_gql_field query_fields[] = {
    {"item", "Item", NULL, id_arg, item, NULL, NULL, 0},
    {"items", "[Item!]!", NULL, first_arg, items, NULL, NULL, 0},
    {"echo", "String", NULL, echo_args, echo, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
static const cl_gql_field item_fields[] = {
    {"id", "ID!", NULL, NULL, NULL, NULL, NULL, 0},
    {"name", "String!", NULL, NULL, NULL, NULL, NULL, 0},
    {"tags", "[String!]", NULL, NULL, NULL, NULL, NULL, 0},
    {"next", "Item", NULL, NULL, NULL, next_batch, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
static const cl_gql_field mutation_fields[] = {
    {"set", "Int", NULL, v_arg, set, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
static const char *const colors[] = {"RED", "GREEN", NULL};
static const cl_gql_type types[] = {
    {CL_GQL_OBJECT, "Query", NULL, query_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Mutation", NULL, mutation_fields, NULL, NULL},
    {CL_GQL_OBJECT, "Item", NULL, item_fields, NULL, NULL},
    {CL_GQL_ENUM, "Color", NULL, NULL, NULL, colors},
    {CL_GQL_INPUT_OBJECT, "Input", NULL, NULL, input_fields, NULL},
    {0, NULL, NULL, NULL, NULL, NULL},
};

static cl_gql_schema *schema;
static json_t *variables;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_gql_request req = {0};
    cl_gql_outcome outcome;
    json_t *response = NULL, *errors;
    char *text;
    size_t i;
    json_t *e;

    if (schema == NULL) {
        cl_error err;

        FUZZ_CHECK(cl_gql_schema_new(types, "Query", "Mutation", &schema, &err) == CL_OK);
        variables = json_pack("{sssis[si]s{si}}", "id", "7", "n", 3, "list", "x", 2, "in", "a", 1);
        FUZZ_CHECK(variables != NULL);
    }
    if (size == 0) {
        return 0;
    }
    text = fuzz_cstr(data + 1, size - 1);
    req.query = text;
    req.query_len = size - 1;
    req.variables = variables;
    req.queries_only = (data[0] & 1) != 0;
    FUZZ_CHECK(cl_gql_execute(schema, &req, NULL, &response, &outcome) == CL_OK);
    FUZZ_CHECK(json_is_object(response));
    errors = json_object_get(response, "errors");
    if (outcome == CL_GQL_EXECUTED) {
        FUZZ_CHECK(json_object_get(response, "data") != NULL);
    } else {
        FUZZ_CHECK(json_object_get(response, "data") == NULL && json_array_size(errors) > 0);
    }
    json_array_foreach (errors, i, e) {
        FUZZ_CHECK(json_is_string(json_object_get(e, "message")));
    }
    text = json_dumps(response, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    free(text);
    free((void *)req.query);
    json_decref(response);
    return 0;
}
