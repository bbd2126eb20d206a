/*
 * Introspection (GraphQL specification section 4.2): the __Schema, __Type, __Field,
 * __InputValue, __EnumValue and __Directive types, resolved from the schema being
 * executed. A __Type is the JSON {"__t": name} for a named type and {"__w": "LIST" or
 * "NON_NULL", "__of": <type>} for a wrapper, so that ofType chains cost nothing until asked.
 */
#include <string.h>

#include "schema_internal.h"

/* Which __Type field a resolver answers: cl_gql_field.data points at one of these. */
enum type_field {
    TF_KIND,
    TF_NAME,
    TF_DESCRIPTION,
    TF_FIELDS,
    TF_INTERFACES,
    TF_POSSIBLE,
    TF_ENUM_VALUES,
    TF_INPUT_FIELDS,
    TF_OF_TYPE,
    TF_SPECIFIED_BY,
};

static json_t *tref_json(const cl__gql_tref *t)
{
    if (t->kind == CL__GQL_T_NAMED) {
        return json_pack("{ss}", "__t", t->named->name);
    }
    return json_pack("{ssso}", "__w", t->kind == CL__GQL_T_LIST ? "LIST" : "NON_NULL", "__of",
                     tref_json(t->of));
}

static json_t *input_value_json(const cl__gql_sarg *a)
{
    json_t *v = json_pack("{sssosososbsn}", "name", a->name, "description",
                          a->description != NULL ? json_string(a->description) : json_null(),
                          "type", tref_json(a->type), "defaultValue",
                          a->default_text != NULL ? json_string(a->default_text) : json_null(),
                          "isDeprecated", 0, "deprecationReason");
    return v;
}

static json_t *input_values_json(const cl__gql_sarg *args, size_t n)
{
    json_t *list = json_array();

    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, input_value_json(&args[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *field_json(const cl__gql_sfield *f)
{
    const char *d = f->src->description;

    return json_pack("{sssosososbsn}", "name", f->name, "description",
                     d != NULL ? json_string(d) : json_null(), "args",
                     input_values_json(f->args, f->nargs), "type", tref_json(f->type),
                     "isDeprecated", 0, "deprecationReason");
}

static cl_status oom(cl_gql_call *call)
{
    return cl_gql_call_error(call, CL_INTERNAL, "out of memory");
}

static const cl__gql_stype *named_of(const cl__gql_schema_t *s, json_t *t)
{
    return cl__gql_find_type(s, json_string_value(json_object_get(t, "__t")));
}

static const int type_field_ids[] = {TF_KIND,       TF_NAME,        TF_DESCRIPTION, TF_FIELDS,
                                     TF_INTERFACES, TF_POSSIBLE,    TF_ENUM_VALUES, TF_INPUT_FIELDS,
                                     TF_OF_TYPE,    TF_SPECIFIED_BY};

static const char *const kinds[] = {"SCALAR", "OBJECT", "INPUT_OBJECT", "ENUM"};

static cl_status type_field(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    const cl__gql_schema_t *s = cl__gql_call_schema(call);
    const cl__gql_stype *t = named_of(s, parent);
    const char *wrapper = json_string_value(json_object_get(parent, "__w"));
    int which = *(const int *)cl_gql_call_field_data(call);
    json_t *list;

    (void)args;
    *out = NULL;
    if (wrapper != NULL) {
        if (which == TF_KIND) {
            *out = json_string(wrapper);
        } else if (which == TF_OF_TYPE) {
            *out = json_incref(json_object_get(parent, "__of"));
        } else {
            *out = json_null();
        }
        return *out != NULL ? CL_OK : oom(call);
    }
    if (t == NULL) {
        return cl_gql_call_error(call, CL_INTERNAL, "unknown type in introspection");
    }
    switch (which) {
    case TF_KIND:
        *out = json_string(kinds[t->kind]);
        break;
    case TF_NAME:
        *out = json_string(t->name);
        break;
    case TF_DESCRIPTION:
        *out = t->description != NULL ? json_string(t->description) : json_null();
        break;
    case TF_FIELDS:
        if (t->kind != CL_GQL_OBJECT) {
            *out = json_null();
            break;
        }
        list = json_array();
        for (size_t i = 0; list != NULL && i < t->nfields; i++) {
            json_array_append_new(list, field_json(&t->fields[i]));
        }
        *out = list;
        break;
    case TF_INTERFACES:
        *out = t->kind == CL_GQL_OBJECT ? json_array() : json_null();
        break;
    case TF_ENUM_VALUES:
        if (t->kind != CL_GQL_ENUM) {
            *out = json_null();
            break;
        }
        list = json_array();
        for (size_t i = 0; list != NULL && i < t->nvalues; i++) {
            json_array_append_new(list, json_pack("{sssnsbsn}", "name", t->values[i], "description",
                                                  "isDeprecated", 0, "deprecationReason"));
        }
        *out = list;
        break;
    case TF_INPUT_FIELDS:
        *out =
            t->kind == CL_GQL_INPUT_OBJECT ? input_values_json(t->inputs, t->ninputs) : json_null();
        break;
    default:
        *out = json_null();
        break;
    }
    return *out != NULL ? CL_OK : oom(call);
}

static cl_status schema_field(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    const cl__gql_schema_t *s = cl__gql_call_schema(call);
    const char *which = cl_gql_call_field_data(call);
    json_t *list;

    (void)parent;
    (void)args;
    if (strcmp(which, "types") == 0) {
        list = json_array();
        for (size_t i = 0; list != NULL && i < s->ntypes; i++) {
            json_array_append_new(list, json_pack("{ss}", "__t", s->types[i].name));
        }
        *out = list;
    } else if (strcmp(which, "queryType") == 0) {
        *out = json_pack("{ss}", "__t", s->query->name);
    } else if (strcmp(which, "mutationType") == 0) {
        *out = s->mutation != NULL ? json_pack("{ss}", "__t", s->mutation->name) : json_null();
    } else if (strcmp(which, "directives") == 0) {
        list = json_array();
        for (size_t i = 0; list != NULL && i < CL__GQL_NDIRECTIVES; i++) {
            const cl__gql_directive_def *d = &s->directives[i];
            json_t *locations = json_array();
            const char *p = d->locations;

            while (locations != NULL && *p != '\0') {
                size_t n = strcspn(p, " ");

                json_array_append_new(locations, json_stringn(p, n));
                p += n;
                p += *p == ' ';
            }
            json_array_append_new(list, json_pack("{sssssososb}", "name", d->name, "description",
                                                  d->description, "locations", locations, "args",
                                                  input_values_json(d->args, d->nargs),
                                                  "isRepeatable", 0));
        }
        *out = list;
    } else {
        *out = json_null();
    }
    return *out != NULL ? CL_OK : oom(call);
}

cl_status cl__gql_meta_schema(cl_gql_call *call, json_t *parent, json_t *args, json_t **out);
cl_status cl__gql_meta_type(cl_gql_call *call, json_t *parent, json_t *args, json_t **out);

cl_status cl__gql_meta_schema(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    (void)parent;
    (void)args;
    *out = json_object();
    return *out != NULL ? CL_OK : oom(call);
}

cl_status cl__gql_meta_type(cl_gql_call *call, json_t *parent, json_t *args, json_t **out)
{
    const cl__gql_schema_t *s = cl__gql_call_schema(call);
    const cl__gql_stype *t = cl__gql_find_type(s, json_string_value(json_object_get(args, "name")));

    (void)parent;
    *out = t != NULL ? json_pack("{ss}", "__t", t->name) : json_null();
    return *out != NULL ? CL_OK : oom(call);
}

#define TF(name, type, which, args)                                                                \
    {                                                                                              \
        name, type, NULL, args, type_field, NULL, &type_field_ids[which], 0                        \
    }
#define SF(name, type, desc)                                                                       \
    {                                                                                              \
        name, type, desc, NULL, schema_field, NULL, name, 0                                        \
    }

static const cl_gql_arg include_deprecated[] = {
    {"includeDeprecated", "Boolean", "false", NULL},
    {NULL, NULL, NULL, NULL},
};

static const cl_gql_field schema_fields[] = {
    {"description", "String", NULL, NULL, NULL, NULL, NULL, 0},
    SF("types", "[__Type!]!", "A list of all types supported by this server."),
    SF("queryType", "__Type!", "The type that query operations will be rooted at."),
    SF("mutationType", "__Type",
       "If this server supports mutation, the type that mutation operations will be rooted "
       "at."),
    SF("subscriptionType", "__Type",
       "If this server support subscription, the type that subscription operations will be "
       "rooted at."),
    SF("directives", "[__Directive!]!", "A list of all directives supported by this server."),
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

static const cl_gql_field type_fields[] = {
    TF("kind", "__TypeKind!", TF_KIND, NULL),
    TF("name", "String", TF_NAME, NULL),
    TF("description", "String", TF_DESCRIPTION, NULL),
    TF("specifiedByURL", "String", TF_SPECIFIED_BY, NULL),
    TF("fields", "[__Field!]", TF_FIELDS, include_deprecated),
    TF("interfaces", "[__Type!]", TF_INTERFACES, NULL),
    TF("possibleTypes", "[__Type!]", TF_POSSIBLE, NULL),
    TF("enumValues", "[__EnumValue!]", TF_ENUM_VALUES, include_deprecated),
    TF("inputFields", "[__InputValue!]", TF_INPUT_FIELDS, include_deprecated),
    TF("ofType", "__Type", TF_OF_TYPE, NULL),
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

/* The rest are materialized as JSON: the default resolver reads them. */
static const cl_gql_field field_fields[] = {
    {"name", "String!", NULL, NULL, NULL, NULL, NULL, 0},
    {"description", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {"args", "[__InputValue!]!", NULL, include_deprecated, NULL, NULL, NULL, 0},
    {"type", "__Type!", NULL, NULL, NULL, NULL, NULL, 0},
    {"isDeprecated", "Boolean!", NULL, NULL, NULL, NULL, NULL, 0},
    {"deprecationReason", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

static const cl_gql_field input_value_fields[] = {
    {"name", "String!", NULL, NULL, NULL, NULL, NULL, 0},
    {"description", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {"type", "__Type!", NULL, NULL, NULL, NULL, NULL, 0},
    {"defaultValue", "String",
     "A GraphQL-formatted string representing the default value for this input value.", NULL, NULL,
     NULL, NULL, 0},
    {"isDeprecated", "Boolean!", NULL, NULL, NULL, NULL, NULL, 0},
    {"deprecationReason", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

static const cl_gql_field enum_value_fields[] = {
    {"name", "String!", NULL, NULL, NULL, NULL, NULL, 0},
    {"description", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {"isDeprecated", "Boolean!", NULL, NULL, NULL, NULL, NULL, 0},
    {"deprecationReason", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

static const cl_gql_field directive_fields[] = {
    {"name", "String!", NULL, NULL, NULL, NULL, NULL, 0},
    {"description", "String", NULL, NULL, NULL, NULL, NULL, 0},
    {"isRepeatable", "Boolean!", NULL, NULL, NULL, NULL, NULL, 0},
    {"locations", "[__DirectiveLocation!]!", NULL, NULL, NULL, NULL, NULL, 0},
    {"args", "[__InputValue!]!", NULL, include_deprecated, NULL, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0},
};

static const char *const type_kinds[] = {"SCALAR",       "OBJECT", "INTERFACE", "UNION", "ENUM",
                                         "INPUT_OBJECT", "LIST",   "NON_NULL",  NULL};

static const char *const directive_locations[] = {"QUERY",
                                                  "MUTATION",
                                                  "SUBSCRIPTION",
                                                  "FIELD",
                                                  "FRAGMENT_DEFINITION",
                                                  "FRAGMENT_SPREAD",
                                                  "INLINE_FRAGMENT",
                                                  "VARIABLE_DEFINITION",
                                                  "SCHEMA",
                                                  "SCALAR",
                                                  "OBJECT",
                                                  "FIELD_DEFINITION",
                                                  "ARGUMENT_DEFINITION",
                                                  "INTERFACE",
                                                  "UNION",
                                                  "ENUM",
                                                  "ENUM_VALUE",
                                                  "INPUT_OBJECT",
                                                  "INPUT_FIELD_DEFINITION",
                                                  NULL};

const cl_gql_type cl__gql_introspection_types[] = {
    {CL_GQL_OBJECT, "__Schema",
     "A GraphQL Schema defines the capabilities of a GraphQL server. It exposes all available "
     "types and directives on the server, as well as the entry points for query, mutation, "
     "and subscription operations.",
     schema_fields, NULL, NULL},
    {CL_GQL_OBJECT, "__Type",
     "The fundamental unit of any GraphQL Schema is the type. There are many kinds of types "
     "in GraphQL as represented by the `__TypeKind` enum.",
     type_fields, NULL, NULL},
    {CL_GQL_ENUM, "__TypeKind", "An enum describing what kind of type a given `__Type` is.", NULL,
     NULL, type_kinds},
    {CL_GQL_OBJECT, "__Field",
     "Object and Interface types are described by a list of Fields, each of which has a "
     "name, potentially a list of arguments, and a return type.",
     field_fields, NULL, NULL},
    {CL_GQL_OBJECT, "__InputValue",
     "Arguments provided to Fields or Directives and the input fields of an InputObject are "
     "represented as Input Values which describe their type and optionally a default value.",
     input_value_fields, NULL, NULL},
    {CL_GQL_OBJECT, "__EnumValue",
     "One possible value for a given Enum. Enum values are unique values, not a placeholder "
     "for a string or numeric value. However an Enum value is returned in a JSON response as "
     "a string.",
     enum_value_fields, NULL, NULL},
    {CL_GQL_OBJECT, "__Directive",
     "A Directive provides a way to describe alternate runtime execution and type validation "
     "behavior in a GraphQL document.",
     directive_fields, NULL, NULL},
    {CL_GQL_ENUM, "__DirectiveLocation",
     "A Directive can be adjacent to many parts of the GraphQL language, a "
     "__DirectiveLocation describes one such possible adjacencies.",
     NULL, NULL, directive_locations},
    {0, NULL, NULL, NULL, NULL, NULL},
};
