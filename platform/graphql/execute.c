/*
 * Execution (GraphQL specification section 6): limits first, then variables, then the
 * selected operation's fields depth first, except fields with a batch resolver: those are
 * queued with their parent and resolved for every parent of a level in one call once the
 * level above is done, then completed (which may queue the next level).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

/* One response key of a selection set with the field nodes merged under it. */
typedef struct fgroup {
    const char *key;
    cl__gql_sel **nodes;
    size_t n;
    size_t cap;
} fgroup;

typedef struct fgroups {
    fgroup *v;
    size_t n;
    size_t cap;
} fgroups;

/* A batched field waiting for its level to be resolved. */
typedef struct pending {
    const cl__gql_sfield *def;
    fgroup group; /* nodes owned */
    json_t *parent;
    json_t *args;
    json_t *obj; /* where the value goes, under group.key */
    json_t *path;
    struct pending *next;
} pending;

typedef struct exec {
    const cl__gql_schema_t *s;
    cl__gql_doc *doc;
    cl__gql_def *op;
    json_t *vars; /* coerced */
    json_t *errors;
    void *app;
    pending *queue;
    bool oom;
    size_t nfrags; /* fragment definitions, numbered by cl__gql_def.index */
} exec;

struct cl_gql_call {
    exec *ex;
    const cl__gql_sfield *field;
    const fgroup *group;
    cl_status status;
    char message[512];
};

void *cl_gql_call_app(const cl_gql_call *call)
{
    return call->ex->app;
}

const void *cl_gql_call_field_data(const cl_gql_call *call)
{
    return call->field->src->data;
}

const cl__gql_schema_t *cl__gql_call_schema(const cl_gql_call *call)
{
    return call->ex->s;
}

cl_status cl_gql_call_error(cl_gql_call *call, cl_status status, const char *fmt, ...)
{
    va_list ap;

    call->status = status;
    va_start(ap, fmt);
    vsnprintf(call->message, sizeof(call->message), fmt, ap);
    va_end(ap);
    return status;
}

/* --- directives and field collection --------------------------------------------------- */

static cl__gql_def *find_fragment(const exec *ex, const char *name)
{
    for (cl__gql_def *d = ex->doc->defs; d != NULL; d = d->next) {
        if (d->fragment && strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

static bool value_true(const exec *ex, const cl__gql_value *v)
{
    if (v->kind == CL__GQL_V_VAR) {
        return json_is_true(json_object_get(ex->vars, v->s));
    }
    return v->kind == CL__GQL_V_BOOL && v->b;
}

/* @skip(if: true) or @include(if: false). */
static bool skipped(const exec *ex, const cl__gql_directive *dirs)
{
    for (const cl__gql_directive *d = dirs; d != NULL; d = d->next) {
        bool skip = strcmp(d->name, "skip") == 0, include = strcmp(d->name, "include") == 0;

        for (const cl__gql_arg *a = d->args; (skip || include) && a != NULL; a = a->next) {
            if (strcmp(a->name, "if") == 0 && value_true(ex, a->value) == skip) {
                return true;
            }
        }
    }
    return false;
}

static int group_add(fgroups *g, const char *key, cl__gql_sel *node)
{
    fgroup *f = NULL;

    for (size_t i = 0; i < g->n && f == NULL; i++) {
        if (strcmp(g->v[i].key, key) == 0) {
            f = &g->v[i];
        }
    }
    if (f == NULL) {
        if (g->n == g->cap) {
            size_t cap = g->cap == 0 ? 8 : g->cap * 2;
            fgroup *v = realloc(g->v, cap * sizeof(*v));

            if (v == NULL) {
                return -1;
            }
            g->v = v;
            g->cap = cap;
        }
        f = &g->v[g->n++];
        memset(f, 0, sizeof(*f));
        f->key = key;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap == 0 ? 2 : f->cap * 2;
        cl__gql_sel **v = realloc(f->nodes, cap * sizeof(*v));

        if (v == NULL) {
            return -1;
        }
        f->nodes = v;
        f->cap = cap;
    }
    f->nodes[f->n++] = node;
    return 0;
}

static void groups_free(fgroups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].nodes);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

/* CollectFields: fragments are entered once each per selection set (visited, by index). */
static int collect(exec *ex, cl__gql_sel *sels, fgroups *out, bool *visited)
{
    for (cl__gql_sel *s = sels; s != NULL; s = s->next) {
        if (skipped(ex, s->dirs)) {
            continue;
        }
        if (s->kind == CL__GQL_FIELD) {
            if (group_add(out, s->alias != NULL ? s->alias : s->name, s) != 0) {
                return -1;
            }
        } else if (s->kind == CL__GQL_INLINE) {
            if (collect(ex, s->sels, out, visited) != 0) {
                return -1;
            }
        } else {
            const cl__gql_def *frag = find_fragment(ex, s->name);

            if (frag == NULL || visited[frag->index]) {
                continue;
            }
            visited[frag->index] = true;
            if (collect(ex, frag->sels, out, visited) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* The fields of every node's selection set, merged. */
static int collect_sub(exec *ex, const fgroup *g, fgroups *out)
{
    bool *visited = calloc(ex->nfrags + 1, sizeof(*visited));
    int r = visited != NULL ? 0 : -1;

    for (size_t i = 0; r == 0 && i < g->n; i++) {
        r = collect(ex, g->nodes[i]->sels, out, visited);
    }
    free(visited);
    return r;
}

static bool selects(exec *ex, cl__gql_sel *sels, const char *name, int depth)
{
    for (cl__gql_sel *s = sels; s != NULL && depth < 16; s = s->next) {
        if (s->kind == CL__GQL_FIELD && strcmp(s->name, name) == 0 && !skipped(ex, s->dirs)) {
            return true;
        }
        if (s->kind == CL__GQL_INLINE && selects(ex, s->sels, name, depth + 1)) {
            return true;
        }
        if (s->kind == CL__GQL_SPREAD) {
            const cl__gql_def *frag = find_fragment(ex, s->name);

            if (frag != NULL && selects(ex, frag->sels, name, depth + 1)) {
                return true;
            }
        }
    }
    return false;
}

bool cl_gql_call_selects(const cl_gql_call *call, const char *name)
{
    for (size_t i = 0; i < call->group->n; i++) {
        if (selects(call->ex, call->group->nodes[i]->sels, name, 0)) {
            return true;
        }
    }
    return false;
}

/* --- input coercion ------------------------------------------------------------------------ */

/*
 * Coerces a JSON input value (a variable's) to type t: a new reference, or NULL with why.
 * A JSON null for a nullable type is json_null().
 */
static json_t *coerce_json(json_t *in, const cl__gql_tref *t, char *why, size_t size)
{
    const cl__gql_stype *named;
    char tn[200];

    if (t->kind == CL__GQL_T_NON_NULL) {
        if (in == NULL || json_is_null(in)) {
            cl__gql_print_tref(t, tn, sizeof(tn));
            snprintf(why, size, "Expected non-nullable type \"%s\" not to be null.", tn);
            return NULL;
        }
        return coerce_json(in, t->of, why, size);
    }
    if (in == NULL || json_is_null(in)) {
        return json_null();
    }
    if (t->kind == CL__GQL_T_LIST) {
        json_t *out = json_array();
        size_t i;
        json_t *item;

        if (!json_is_array(in)) {
            json_t *one = coerce_json(in, t->of, why, size);

            if (one == NULL || json_array_append_new(out, one) != 0) {
                json_decref(out);
                return NULL;
            }
            return out;
        }
        json_array_foreach (in, i, item) {
            json_t *c = coerce_json(item, t->of, why, size);

            if (c == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, c);
        }
        return out;
    }
    named = t->named;
    switch (named->kind) {
    case CL_GQL_INPUT_OBJECT: {
        json_t *out;
        const char *k;
        json_t *val;

        if (!json_is_object(in)) {
            snprintf(why, size, "Expected type \"%s\" to be an object.", named->name);
            return NULL;
        }
        json_object_foreach (in, k, val) {
            if (cl__gql_find_arg(named->inputs, named->ninputs, k) == NULL) {
                snprintf(why, size, "Field \"%.64s\" is not defined by type \"%s\".", k,
                         named->name);
                return NULL;
            }
        }
        out = json_object();
        for (size_t i = 0; out != NULL && i < named->ninputs; i++) {
            const cl__gql_sarg *a = &named->inputs[i];
            json_t *c;

            val = json_object_get(in, a->name);
            if (val == NULL) {
                if (a->type->kind == CL__GQL_T_NON_NULL && a->default_value == NULL) {
                    cl__gql_print_tref(a->type, tn, sizeof(tn));
                    snprintf(why, size, "Field \"%s\" of required type \"%s\" was not provided.",
                             a->name, tn);
                    json_decref(out);
                    return NULL;
                }
                continue;
            }
            c = coerce_json(val, a->type, why, size);
            if (c == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, a->name, c);
        }
        return out;
    }
    case CL_GQL_ENUM:
        for (size_t i = 0; json_is_string(in) && i < named->nvalues; i++) {
            if (strcmp(json_string_value(in), named->values[i]) == 0) {
                return json_incref(in);
            }
        }
        snprintf(why, size, "Value is not a valid \"%s\" enum value.", named->name);
        return NULL;
    default:
        break;
    }
    if (strcmp(named->name, "Int") == 0) {
        double d = json_number_value(in);

        if (json_is_integer(in) || (json_is_real(in) && d == floor(d))) {
            if (d < -2147483648.0 || d > 2147483647.0) {
                snprintf(why, size, "Int cannot represent non 32-bit signed integer value");
                return NULL;
            }
            return json_integer((json_int_t)d);
        }
        snprintf(why, size, "Int cannot represent non-integer value");
        return NULL;
    }
    if (strcmp(named->name, "Float") == 0) {
        if (json_is_number(in)) {
            return json_real(json_number_value(in));
        }
        snprintf(why, size, "Float cannot represent non numeric value");
        return NULL;
    }
    if (strcmp(named->name, "String") == 0 && json_is_string(in)) {
        return json_incref(in);
    }
    if (strcmp(named->name, "Boolean") == 0 && json_is_boolean(in)) {
        return json_incref(in);
    }
    if (strcmp(named->name, "ID") == 0) {
        if (json_is_string(in)) {
            return json_incref(in);
        }
        if (json_is_integer(in)) {
            char buf[32];

            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(in));
            return json_string(buf);
        }
        snprintf(why, size, "ID cannot represent value");
        return NULL;
    }
    snprintf(why, size, "%s cannot represent value", named->name);
    return NULL;
}

/*
 * A literal (validated) as JSON of type t, variables substituted. *absent is set for a
 * variable that was not provided (the argument then takes its default).
 */
static json_t *literal_json(exec *ex, const cl__gql_value *v, const cl__gql_tref *t, bool *absent)
{
    const cl__gql_stype *named;

    if (absent != NULL) {
        *absent = false;
    }
    if (v->kind == CL__GQL_V_VAR) {
        json_t *val = json_object_get(ex->vars, v->s);

        if (val == NULL && absent != NULL) {
            *absent = true;
        }
        return val != NULL ? json_incref(val) : json_null();
    }
    if (t->kind == CL__GQL_T_NON_NULL) {
        return literal_json(ex, v, t->of, NULL);
    }
    if (v->kind == CL__GQL_V_NULL) {
        return json_null();
    }
    if (t->kind == CL__GQL_T_LIST) {
        json_t *out = json_array();

        if (v->kind != CL__GQL_V_LIST) {
            json_array_append_new(out, literal_json(ex, v, t->of, NULL));
            return out;
        }
        for (const cl__gql_value *i = v->items; i != NULL; i = i->next) {
            json_array_append_new(out, literal_json(ex, i, t->of, NULL));
        }
        return out;
    }
    named = t->named;
    if (named->kind == CL_GQL_INPUT_OBJECT) {
        json_t *out = json_object();

        for (size_t i = 0; i < named->ninputs; i++) {
            const cl__gql_sarg *a = &named->inputs[i];
            const cl__gql_value *f = v->items;
            bool missing = true;

            while (f != NULL && strcmp(f->field, a->name) != 0) {
                f = f->next;
            }
            if (f != NULL) {
                json_t *val = literal_json(ex, f, a->type, &missing);

                if (!missing) {
                    json_object_set_new(out, a->name, val);
                } else {
                    json_decref(val);
                }
            }
            if (missing && a->default_value != NULL) {
                json_object_set_new(out, a->name,
                                    literal_json(ex, a->default_value, a->type, NULL));
            }
        }
        return out;
    }
    switch (v->kind) {
    case CL__GQL_V_INT:
        if (strcmp(named->name, "ID") == 0) {
            return json_string(v->s);
        }
        if (strcmp(named->name, "Float") == 0) {
            return json_real(strtod(v->s, NULL));
        }
        return json_integer(strtoll(v->s, NULL, 10));
    case CL__GQL_V_FLOAT:
        return json_real(strtod(v->s, NULL));
    case CL__GQL_V_STRING:
    case CL__GQL_V_ENUM:
        return json_string(v->s);
    case CL__GQL_V_BOOL:
        return json_boolean(v->b);
    default:
        return json_null();
    }
}

/* The arguments of a field or directive: given ones, then defaults. */
static json_t *args_json(exec *ex, const cl__gql_arg *given, const cl__gql_sarg *defs, size_t ndefs)
{
    json_t *out = json_object();

    for (size_t i = 0; out != NULL && i < ndefs; i++) {
        const cl__gql_arg *a = given;
        bool absent = true;

        while (a != NULL && strcmp(a->name, defs[i].name) != 0) {
            a = a->next;
        }
        if (a != NULL) {
            json_t *val = literal_json(ex, a->value, defs[i].type, &absent);

            if (!absent) {
                json_object_set_new(out, defs[i].name, val);
            } else {
                json_decref(val);
            }
        }
        if (absent && defs[i].default_value != NULL) {
            json_object_set_new(out, defs[i].name,
                                literal_json(ex, defs[i].default_value, defs[i].type, NULL));
        }
    }
    return out;
}

/* CoerceVariableValues: every error is reported (at its definition), none executes. */
static void coerce_variables(exec *ex, json_t *given, json_t *errors)
{
    char why[300];

    for (cl__gql_vardef *d = ex->op->vars; d != NULL; d = d->next) {
        json_t *val = given != NULL ? json_object_get(given, d->name) : NULL;
        json_t *c;

        if (val == NULL) {
            if (d->default_value != NULL) {
                json_object_set_new(ex->vars, d->name,
                                    literal_json(ex, d->default_value, d->rtype, NULL));
            } else if (d->rtype->kind == CL__GQL_T_NON_NULL) {
                char tn[200];

                cl__gql_print_tref(d->rtype, tn, sizeof(tn));
                cl__gql_add_error(errors, &d->loc, 1,
                                  "Variable \"$%s\" of required type \"%s\" was not provided.",
                                  d->name, tn);
            }
            continue;
        }
        c = coerce_json(val, d->rtype, why, sizeof(why));
        if (c == NULL) {
            cl__gql_add_error(errors, &d->loc, 1, "Variable \"$%s\" got invalid value; %s", d->name,
                              why);
            continue;
        }
        json_object_set_new(ex->vars, d->name, c);
    }
}

/* --- limits ------------------------------------------------------------------------------- */

typedef struct limiter {
    exec *ex;
    const cl_gql_limits *lim;
    int nodes;
    int depth;
    double cost;
    char why[256];
} limiter;

/*
 * A field's first or limit argument when it has one (a page size), else 0. A connection
 * field's page size sizes the lists within it (its nodes).
 */
static double page_arg(limiter *l, const cl__gql_sel *f)
{
    for (const cl__gql_arg *a = f->args; f->def != NULL && a != NULL; a = a->next) {
        const cl__gql_sarg *d = cl__gql_find_arg(f->def->args, f->def->nargs, a->name);

        if (d != NULL && (strcmp(a->name, "first") == 0 || strcmp(a->name, "limit") == 0)) {
            json_t *v = literal_json(l->ex, a->value, d->type, NULL);
            double n = json_is_number(v) ? json_number_value(v) : 0;

            json_decref(v);
            if (n > 0) {
                return n;
            }
        }
    }
    for (size_t i = 0; f->def != NULL && i < f->def->nargs; i++) {
        const cl__gql_sarg *d = &f->def->args[i];

        if ((strcmp(d->name, "first") == 0 || strcmp(d->name, "limit") == 0) &&
            d->default_value != NULL && d->default_value->kind == CL__GQL_V_INT) {
            return strtod(d->default_value->s, NULL);
        }
    }
    return 0;
}

static bool is_list(const cl__gql_tref *t)
{
    while (t->kind == CL__GQL_T_NON_NULL) {
        t = t->of;
    }
    return t->kind == CL__GQL_T_LIST;
}

/* Walks the operation with fragments expanded; false once a limit is passed (l->why). */
static bool measure(limiter *l, cl__gql_sel *sels, int depth, double *cost, int frag_depth,
                    double page)
{
    *cost = 0;
    if (depth > l->lim->max_depth) {
        snprintf(l->why, sizeof(l->why), "the query nests deeper than %d levels",
                 l->lim->max_depth);
        return false;
    }
    for (cl__gql_sel *s = sels; s != NULL; s = s->next) {
        double sub = 0, own;
        bool list;

        if (s->kind == CL__GQL_SPREAD || s->kind == CL__GQL_INLINE) {
            const cl__gql_def *frag =
                s->kind == CL__GQL_SPREAD ? find_fragment(l->ex, s->name) : NULL;

            if (frag_depth > 32) {
                snprintf(l->why, sizeof(l->why), "fragments spread too deep");
                return false;
            }
            if (!measure(l, frag != NULL ? frag->sels : s->sels, depth, &sub, frag_depth + 1,
                         page)) {
                return false;
            }
            *cost += sub;
            continue;
        }
        if (++l->nodes > l->lim->max_nodes) {
            snprintf(l->why, sizeof(l->why), "the query selects more than %d fields",
                     l->lim->max_nodes);
            return false;
        }
        if (s->alias != NULL) {
            /* Other response keys for this field in this selection set (an alias flood). */
            int others = 0;

            for (const cl__gql_sel *o = sels; o != s; o = o->next) {
                others += o->kind == CL__GQL_FIELD && strcmp(o->name, s->name) == 0 &&
                          strcmp(o->alias != NULL ? o->alias : o->name, s->alias) != 0;
            }
            if (others >= l->lim->max_aliases) {
                snprintf(l->why, sizeof(l->why),
                         "the query names field \"%s\" under more than %d aliases in one "
                         "selection",
                         s->name, l->lim->max_aliases);
                return false;
            }
        }
        own = page_arg(l, s);
        list = s->def != NULL && is_list(s->def->type);
        if (s->sels != NULL && !measure(l, s->sels, depth + 1, &sub, frag_depth, list ? 0 : own)) {
            return false;
        }
        if (list) {
            double n = own > 0                      ? own
                       : page > 0                   ? page
                       : s->def->src->list_size > 0 ? s->def->src->list_size
                                                    : 10;

            *cost += 1 + n * sub;
        } else {
            *cost += 1 + sub;
        }
        if (*cost > (double)l->lim->max_cost) {
            snprintf(l->why, sizeof(l->why),
                     "the query's estimated cost is above %lld (lists count as many times as "
                     "the items they ask for)",
                     (long long)l->lim->max_cost);
            return false;
        }
    }
    return true;
}

/* --- execution ------------------------------------------------------------------------------- */

static json_t *path_with(json_t *path, json_t *segment)
{
    json_t *p = json_copy(path);

    json_array_append_new(p, segment);
    return p;
}

static void field_error(exec *ex, const fgroup *g, json_t *path, cl_status st, const char *message)
{
    json_t *e;
    size_t before = json_array_size(ex->errors);

    cl__gql_add_error(ex->errors, &g->nodes[0]->loc, 1, "%s", message);
    if (json_array_size(ex->errors) > before) {
        e = json_array_get(ex->errors, before);
        json_object_set(e, "path", path);
        if (st != CL_OK) {
            json_object_set_new(e, "extensions", json_pack("{ss}", "code", cl_status_name(st)));
        }
    }
}

static int execute_fields(exec *ex, const cl__gql_stype *type, json_t *parent, fgroups *fields,
                          json_t *path, json_t **out);

/* Serializes a leaf; false when the value cannot be one of the type's. */
static json_t *serialize(const cl__gql_stype *t, json_t *v)
{
    if (t->kind == CL_GQL_ENUM) {
        for (size_t i = 0; json_is_string(v) && i < t->nvalues; i++) {
            if (strcmp(t->values[i], json_string_value(v)) == 0) {
                return json_incref(v);
            }
        }
        return NULL;
    }
    if (strcmp(t->name, "Int") == 0) {
        return json_is_integer(v) && json_integer_value(v) >= -2147483648LL &&
                       json_integer_value(v) <= 2147483647LL
                   ? json_incref(v)
                   : NULL;
    }
    if (strcmp(t->name, "Float") == 0) {
        return json_is_number(v) ? json_real(json_number_value(v)) : NULL;
    }
    if (strcmp(t->name, "Boolean") == 0) {
        return json_is_boolean(v) ? json_incref(v) : NULL;
    }
    if (strcmp(t->name, "ID") == 0 && json_is_integer(v)) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return json_string(buf);
    }
    return json_is_string(v) ? json_incref(v) : NULL;
}

static int complete(exec *ex, const cl__gql_tref *t, const fgroup *g, json_t *value, json_t *path,
                    json_t **out);

/* CompleteValue of a nullable type: -1 when an error must make the parent null. */
static int complete_inner(exec *ex, const cl__gql_tref *t, const fgroup *g, json_t *value,
                          json_t *path, json_t **out)
{
    char msg[300];

    *out = NULL;
    if (value == NULL || json_is_null(value)) {
        *out = json_null();
        return 0;
    }
    if (t->kind == CL__GQL_T_LIST) {
        json_t *list = json_array();
        size_t i;
        json_t *item;

        if (!json_is_array(value)) {
            json_decref(list);
            field_error(ex, g, path, CL_INTERNAL, "Expected a list for a list field.");
            return -1;
        }
        json_array_foreach (value, i, item) {
            json_t *p = path_with(path, json_integer((json_int_t)i));
            json_t *c = NULL;
            int r = complete(ex, t->of, g, item, p, &c);

            json_decref(p);
            if (r != 0) {
                json_decref(list);
                return -1;
            }
            json_array_append_new(list, c);
        }
        *out = list;
        return 0;
    }
    if (t->named->kind == CL_GQL_OBJECT) {
        fgroups sub = {0};
        int r;

        if (!json_is_object(value) || collect_sub(ex, g, &sub) != 0) {
            groups_free(&sub);
            field_error(ex, g, path, CL_INTERNAL, "Expected an object.");
            return -1;
        }
        r = execute_fields(ex, t->named, value, &sub, path, out);
        groups_free(&sub);
        return r;
    }
    *out = serialize(t->named, value);
    if (*out == NULL) {
        snprintf(msg, sizeof(msg), "%s cannot represent the value resolved.", t->named->name);
        field_error(ex, g, path, CL_INTERNAL, msg);
        return -1;
    }
    return 0;
}

static int complete(exec *ex, const cl__gql_tref *t, const fgroup *g, json_t *value, json_t *path,
                    json_t **out)
{
    char msg[300];
    int r;

    if (t->kind == CL__GQL_T_NON_NULL) {
        r = complete_inner(ex, t->of, g, value, path, out);
        if (r != 0) {
            return -1;
        }
        if (json_is_null(*out)) {
            json_decref(*out);
            *out = NULL;
            snprintf(msg, sizeof(msg), "Cannot return null for non-nullable field %s.%s.",
                     g->nodes[0]->def->owner != NULL ? g->nodes[0]->def->owner->name : "",
                     g->nodes[0]->name);
            field_error(ex, g, path, CL_INTERNAL, msg);
            return -1;
        }
        return 0;
    }
    r = complete_inner(ex, t, g, value, path, out);
    if (r != 0) {
        json_decref(*out);
        *out = json_null();
    }
    return 0;
}

static json_t *default_resolve(const cl__gql_sfield *def, json_t *parent)
{
    json_t *v = json_object_get(parent, def->name);

    return v != NULL ? json_incref(v) : json_null();
}

static int enqueue(exec *ex, const cl__gql_sfield *def, const fgroup *g, json_t *parent,
                   json_t *args, json_t *obj, json_t *path)
{
    pending *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->group.nodes = malloc(g->n * sizeof(*g->nodes))) == NULL) {
        free(p);
        json_decref(args);
        return -1;
    }
    memcpy(p->group.nodes, g->nodes, g->n * sizeof(*g->nodes));
    p->group.n = p->group.cap = g->n;
    p->group.key = g->key;
    p->def = def;
    p->parent = json_incref(parent);
    p->args = args;
    p->obj = json_incref(obj);
    p->path = json_incref(path);
    p->next = ex->queue;
    ex->queue = p;
    return 0;
}

/* ExecuteField: -1 when a non-null field failed and the object must be null. */
static int execute_field(exec *ex, const cl__gql_stype *type, json_t *parent, const fgroup *g,
                         json_t *path, json_t *obj)
{
    const cl__gql_sfield *def = g->nodes[0]->def;
    json_t *p = path_with(path, json_string(g->key));
    json_t *args, *value = NULL, *out = NULL;
    cl_gql_call call = {ex, def, g, CL_OK, ""};
    cl_status st = CL_OK;
    int r = 0;

    if (def == &ex->s->meta[CL__GQL_META_TYPENAME]) {
        json_object_set_new(obj, g->key, json_string(type->name));
        json_decref(p);
        return 0;
    }
    args = args_json(ex, g->nodes[0]->args, def->args, def->nargs);
    if (def->src->batch != NULL) {
        json_object_set_new(obj, g->key, json_null());
        if (enqueue(ex, def, g, parent, args, obj, p) != 0) {
            ex->oom = true;
        }
        json_decref(p);
        return 0;
    }
    if (def->src->resolve != NULL) {
        st = def->src->resolve(&call, parent, args, &value);
    } else {
        value = default_resolve(def, parent);
    }
    json_decref(args);
    if (st != CL_OK) {
        field_error(ex, g, p, st, call.message[0] != '\0' ? call.message : cl_status_message(st));
        json_decref(value);
        value = NULL;
        r = def->type->kind == CL__GQL_T_NON_NULL ? -1 : 0;
        out = json_null();
    } else {
        r = complete(ex, def->type, g, value, p, &out);
        json_decref(value);
    }
    if (r == 0) {
        json_object_set_new(obj, g->key, out);
    } else {
        json_decref(out);
    }
    json_decref(p);
    return r;
}

static int execute_fields(exec *ex, const cl__gql_stype *type, json_t *parent, fgroups *fields,
                          json_t *path, json_t **out)
{
    json_t *obj = json_object();

    *out = NULL;
    for (size_t i = 0; i < fields->n; i++) {
        if (execute_field(ex, type, parent, &fields->v[i], path, obj) != 0) {
            json_decref(obj);
            return -1;
        }
    }
    *out = obj;
    return 0;
}

static void pending_free(pending *p)
{
    free(p->group.nodes);
    json_decref(p->parent);
    json_decref(p->args);
    json_decref(p->obj);
    json_decref(p->path);
    free(p);
}

/* One level of batched fields: one call per field and arguments, then their completion. */
static void run_batches(exec *ex)
{
    while (ex->queue != NULL) {
        pending *level = NULL;

        /* The queue is newest first: reverse it so that parents keep response order. */
        while (ex->queue != NULL) {
            pending *p = ex->queue;

            ex->queue = p->next;
            p->next = level;
            level = p;
        }
        while (level != NULL) {
            pending *first = level, **pp = &level, *taken = NULL, **tail = &taken;
            json_t *parents = json_array(), *outs = json_array();
            cl_gql_call call = {ex, first->def, &first->group, CL_OK, ""};
            cl_status st;
            size_t n = 0;

            while (*pp != NULL) {
                pending *p = *pp;

                if (p->def == first->def && json_equal(p->args, first->args)) {
                    *pp = p->next;
                    p->next = NULL;
                    *tail = p;
                    tail = &p->next;
                    json_array_append(parents, p->parent);
                    n++;
                } else {
                    pp = &p->next;
                }
            }
            st = first->def->src->batch(&call, parents, first->args, outs);
            if (st == CL_OK && json_array_size(outs) != n) {
                st = cl_gql_call_error(&call, CL_INTERNAL, "a batch resolver answered %zu of %zu",
                                       json_array_size(outs), n);
            }
            for (size_t i = 0; taken != NULL; i++) {
                pending *p = taken;
                json_t *v = NULL;

                taken = p->next;
                if (st != CL_OK) {
                    field_error(ex, &p->group, p->path, st,
                                call.message[0] != '\0' ? call.message : cl_status_message(st));
                    v = json_null();
                } else {
                    complete(ex, p->def->type, &p->group, json_array_get(outs, i), p->path, &v);
                }
                json_object_set_new(p->obj, p->group.key, v);
                pending_free(p);
            }
            json_decref(parents);
            json_decref(outs);
        }
    }
}

/* --- the request ------------------------------------------------------------------------------ */

static cl__gql_def *select_operation(cl__gql_doc *doc, const char *name, json_t *errors)
{
    cl__gql_def *found = NULL;
    int n = 0;

    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        if (d->fragment) {
            continue;
        }
        n++;
        if (name == NULL || (d->name != NULL && strcmp(d->name, name) == 0)) {
            found = found == NULL ? d : found;
        }
    }
    if (name == NULL && n > 1) {
        cl__gql_add_error(errors, NULL, 0,
                          "Must provide operation name if query contains "
                          "multiple operations.");
        return NULL;
    }
    if (found == NULL) {
        if (name != NULL) {
            cl__gql_add_error(errors, NULL, 0, "Unknown operation named \"%.100s\".", name);
        } else {
            cl__gql_add_error(errors, NULL, 0, "Must provide an operation.");
        }
    }
    return found;
}

static void limits_defaults(const cl_gql_limits *in, cl_gql_limits *out)
{
    *out = in != NULL ? *in : (cl_gql_limits){0};
    out->max_bytes = out->max_bytes > 0 ? out->max_bytes : 16384;
    out->max_depth = out->max_depth > 0 ? out->max_depth : 15;
    out->max_nodes = out->max_nodes > 0 ? out->max_nodes : 2000;
    out->max_aliases = out->max_aliases > 0 ? out->max_aliases : 10;
    out->max_cost = out->max_cost > 0 ? out->max_cost : 50000;
    out->max_tokens = out->max_tokens > 0 ? out->max_tokens : 20000;
}

static json_t *limit_error(const char *why)
{
    return json_pack("{s[{sss{ss}}]}", "errors", "message", why, "extensions", "code",
                     "limit_exceeded");
}

cl_status cl_gql_execute(const cl_gql_schema *schema, const cl_gql_request *req,
                         const cl_gql_limits *limits, json_t **response, cl_gql_outcome *outcome)
{
    const cl__gql_schema_t *s = (const cl__gql_schema_t *)schema;
    cl_gql_limits lim;
    cl__gql_doc *doc = NULL;
    cl__gql_error pe;
    exec ex;
    json_t *errors = json_array(), *data = NULL;
    cl_status st;
    limiter l;
    double cost = 0;

    memset(&ex, 0, sizeof(ex));
    *response = NULL;
    *outcome = CL_GQL_REJECTED;
    limits_defaults(limits, &lim);
    if (errors == NULL) {
        return CL_INTERNAL;
    }
    if (req->query_len > lim.max_bytes) {
        char why[128];

        snprintf(why, sizeof(why), "the query is longer than %zu bytes", lim.max_bytes);
        *response = limit_error(why);
        goto out;
    }
    st = cl__gql_parse(req->query, req->query_len, lim.max_tokens, &doc, &pe);
    if (st == CL_INTERNAL) {
        goto out;
    }
    if (st != CL_OK) {
        cl__gql_add_error(errors, &pe.loc, 1, "%s", pe.message);
        goto reject;
    }
    cl__gql_validate(s, doc, errors);
    if (json_array_size(errors) > 0) {
        goto reject;
    }
    ex.s = s;
    ex.doc = doc;
    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        if (d->fragment) {
            d->index = (int)ex.nfrags++;
        }
    }
    ex.app = req->app;
    ex.errors = errors;
    ex.vars = json_object();
    ex.op = select_operation(doc, req->operation_name, errors);
    if (ex.op == NULL) {
        goto reject;
    }
    if (req->queries_only && ex.op->op != CL__GQL_QUERY) {
        cl__gql_add_error(errors, &ex.op->loc, 1,
                          "Only query operations are allowed on GET requests: use POST for a "
                          "mutation.");
        *outcome = CL_GQL_NOT_ALLOWED;
        *response = json_pack("{so}", "errors", json_incref(errors));
        goto out;
    }
    coerce_variables(&ex, req->variables, errors);
    if (json_array_size(errors) > 0) {
        goto reject;
    }
    memset(&l, 0, sizeof(l));
    l.ex = &ex;
    l.lim = &lim;
    if (!measure(&l, ex.op->sels, 1, &cost, 0, 0)) {
        *response = limit_error(l.why);
        goto out;
    }
    {
        fgroups top = {0};
        bool *visited = calloc(ex.nfrags + 1, sizeof(*visited));
        json_t *path = json_array(), *root_value = json_object();
        const cl__gql_stype *root = ex.op->op == CL__GQL_MUTATION ? s->mutation : s->query;

        if (visited != NULL && collect(&ex, ex.op->sels, &top, visited) == 0 &&
            execute_fields(&ex, root, root_value, &top, path, &data) != 0) {
            data = NULL;
        }
        run_batches(&ex);
        groups_free(&top);
        free(visited);
        json_decref(path);
        json_decref(root_value);
    }
    *outcome = CL_GQL_EXECUTED;
    *response = json_pack("{so}", "data", data != NULL ? data : json_null());
    if (*response != NULL && json_array_size(errors) > 0) {
        json_object_set(*response, "errors", errors);
    }
    goto out;
reject:
    *response = json_pack("{so}", "errors", json_incref(errors));
out:
    while (ex.queue != NULL) {
        pending *p = ex.queue;

        ex.queue = p->next;
        pending_free(p);
    }
    json_decref(ex.vars);
    json_decref(errors);
    cl__gql_doc_free(doc);
    return *response != NULL && !ex.oom ? CL_OK : CL_INTERNAL;
}
