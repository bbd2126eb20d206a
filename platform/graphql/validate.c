/*
 * Validation (GraphQL specification section 5): the rules graphql-js's specifiedRules
 * check, each reported at the location graphql-js reports it, so that a client sees the
 * same error from us as from the reference implementation. Interfaces and unions do not
 * exist in our schemas, so every selection set has exactly one object type.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

typedef enum walk_mode {
    WALK_STRUCT, /* fields, arguments, literals, fragments: once per definition */
    WALK_VARS,   /* variable usages of one operation, through the fragments it spreads */
} walk_mode;

typedef struct validator {
    const cl__gql_schema_t *s;
    cl__gql_doc *doc;
    json_t *errors;
    walk_mode mode;
    cl__gql_def *op; /* WALK_VARS */
    /* Field pairs OverlappingFieldsCanBeMerged may still compare: its cost is quadratic. */
    long long overlap_budget;
    bool too_large;
} validator;

void cl__gql_add_error(json_t *errors, const cl__gql_loc *locs, size_t nlocs, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *e, *l;

    if (json_array_size(errors) >= CL__GQL_MAX_ERRORS) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    l = json_array();
    for (size_t i = 0; l != NULL && i < nlocs; i++) {
        json_array_append_new(l, json_pack("{sisi}", "line", locs[i].line, "column", locs[i].col));
    }
    e = json_pack("{ss*}", "message", msg);
    if (e != NULL && l != NULL && nlocs > 0) {
        json_object_set(e, "locations", l);
    }
    json_decref(l);
    json_array_append_new(errors, e);
}

static void err1(validator *v, cl__gql_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err1(validator *v, cl__gql_loc loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cl__gql_add_error(v->errors, &loc, 1, "%s", msg);
}

static void err2(validator *v, cl__gql_loc a, cl__gql_loc b, const char *msg)
{
    cl__gql_loc locs[2] = {a, b};

    cl__gql_add_error(v->errors, locs, 2, "%s", msg);
}

/* --- printing, for messages -------------------------------------------------------------- */

/* Appends s to buf[size] holding *len bytes, cutting what does not fit. */
static void put_text(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + 1 >= size) {
        return;
    }
    if (n > size - 1 - *len) {
        n = size - 1 - *len;
    }
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* A type reference as written ("[Product!]!"), appended in place: no copy per level. */
static void put_tref(const cl__gql_tref *t, char *buf, size_t size, size_t *len)
{
    if (t->kind == CL__GQL_T_NAMED) {
        put_text(buf, size, len, t->named->name);
    } else if (t->kind == CL__GQL_T_LIST) {
        put_text(buf, size, len, "[");
        put_tref(t->of, buf, size, len);
        put_text(buf, size, len, "]");
    } else {
        put_tref(t->of, buf, size, len);
        put_text(buf, size, len, "!");
    }
}

static void print_tref(const cl__gql_tref *t, char *buf, size_t size)
{
    size_t len = 0;

    if (size > 0) {
        buf[0] = '\0';
        put_tref(t, buf, size, &len);
    }
}

void cl__gql_print_tref(const cl__gql_tref *t, char *buf, size_t size)
{
    print_tref(t, buf, size);
}

/* buf = pre + in + post, cut to size (for messages only: a cut type name is fine). */
static void wrap(char *buf, size_t size, const char *pre, const char *in, const char *post)
{
    const char *parts[3] = {pre, in, post};
    size_t used = 0;

    if (size == 0) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p != '\0' && used + 1 < size; p++) {
            buf[used++] = *p;
        }
    }
    buf[used] = '\0';
}

static void print_typeref(const cl__gql_typeref *t, char *buf, size_t size)
{
    char inner[200];

    if (t->kind == CL__GQL_T_NAMED) {
        wrap(buf, size, "", t->name, "");
    } else if (t->kind == CL__GQL_T_LIST) {
        print_typeref(t->of, inner, sizeof(inner));
        wrap(buf, size, "[", inner, "]");
    } else {
        print_typeref(t->of, inner, sizeof(inner));
        wrap(buf, size, "", inner, "!");
    }
}

static void print_value(const cl__gql_value *v, char *buf, size_t size)
{
    switch (v->kind) {
    case CL__GQL_V_VAR:
        snprintf(buf, size, "$%s", v->s);
        break;
    case CL__GQL_V_INT:
    case CL__GQL_V_FLOAT:
    case CL__GQL_V_ENUM:
        snprintf(buf, size, "%s", v->s);
        break;
    case CL__GQL_V_STRING:
        snprintf(buf, size, "\"%.100s\"", v->s);
        break;
    case CL__GQL_V_BOOL:
        snprintf(buf, size, "%s", v->b ? "true" : "false");
        break;
    case CL__GQL_V_NULL:
        snprintf(buf, size, "null");
        break;
    case CL__GQL_V_LIST:
        snprintf(buf, size, "[...]");
        break;
    case CL__GQL_V_OBJECT:
        snprintf(buf, size, "{...}");
        break;
    }
}

/* --- types --------------------------------------------------------------------------------- */

/* The document's type as a schema type, in the document's arena; NULL for an unknown name. */
static const cl__gql_tref *resolve_typeref(validator *v, const cl__gql_typeref *t)
{
    cl__gql_tref *r = cl__gql_arena_alloc(v->doc->arena, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->kind = t->kind;
    if (t->kind == CL__GQL_T_NAMED) {
        r->named = cl__gql_find_type(v->s, t->name);
        return r->named != NULL ? r : NULL;
    }
    r->of = resolve_typeref(v, t->of);
    return r->of != NULL ? r : NULL;
}

/* Whether a variable of type var may be used where type loc is expected (isTypeSubTypeOf). */
static bool subtype(const cl__gql_tref *var, const cl__gql_tref *loc)
{
    if (loc->kind == CL__GQL_T_NON_NULL) {
        return var->kind == CL__GQL_T_NON_NULL && subtype(var->of, loc->of);
    }
    if (var->kind == CL__GQL_T_NON_NULL) {
        return subtype(var->of, loc);
    }
    if (loc->kind == CL__GQL_T_LIST) {
        return var->kind == CL__GQL_T_LIST && subtype(var->of, loc->of);
    }
    return var->kind == CL__GQL_T_NAMED && var->named == loc->named;
}

/* --- values --------------------------------------------------------------------------------- */

static cl__gql_vardef *find_var(const cl__gql_def *op, const char *name)
{
    for (cl__gql_vardef *d = op != NULL ? op->vars : NULL; d != NULL; d = d->next) {
        if (strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

static void var_usage(validator *v, const cl__gql_value *val, const cl__gql_tref *type,
                      bool has_default)
{
    cl__gql_vardef *d = find_var(v->op, val->s);
    char vt[200], lt[200], msg[512];

    if (d == NULL) {
        cl__gql_loc locs[2] = {val->loc, v->op->loc};

        if (v->op->name != NULL) {
            cl__gql_add_error(v->errors, locs, 2,
                              "Variable \"$%s\" is not defined by operation \"%s\".", val->s,
                              v->op->name);
        } else {
            cl__gql_add_error(v->errors, locs, 2, "Variable \"$%s\" is not defined.", val->s);
        }
        return;
    }
    d->used = true;
    if (d->rtype == NULL || type == NULL) {
        return;
    }
    {
        const cl__gql_tref *vt_ = d->rtype;
        bool ok;

        /* A nullable variable with a non-null default, or a location with a default. */
        if (type->kind == CL__GQL_T_NON_NULL && vt_->kind != CL__GQL_T_NON_NULL &&
            ((d->default_value != NULL && d->default_value->kind != CL__GQL_V_NULL) ||
             has_default)) {
            ok = subtype(vt_, type->of);
        } else {
            ok = subtype(vt_, type);
        }
        if (!ok) {
            print_tref(vt_, vt, sizeof(vt));
            print_tref(type, lt, sizeof(lt));
            snprintf(msg, sizeof(msg),
                     "Variable \"$%s\" of type \"%s\" used in position expecting type \"%s\".",
                     d->name, vt, lt);
            err2(v, d->loc, val->loc, msg);
        }
    }
}

static bool fits_int32(const char *s)
{
    long long n;
    char *end;

    n = strtoll(s, &end, 10);
    return *end == '\0' && n >= -2147483648LL && n <= 2147483647LL && strlen(s) < 15;
}

/*
 * ValuesOfCorrectType (WALK_STRUCT) or the variables' positions (WALK_VARS) of val against
 * type (NULL: unknown, only variables are looked at).
 */
static void check_value(validator *v, const cl__gql_value *val, const cl__gql_tref *type,
                        bool has_default)
{
    char buf[160], tn[200];
    const cl__gql_stype *named;

    if (val->kind == CL__GQL_V_VAR) {
        if (v->mode == WALK_VARS) {
            var_usage(v, val, type, has_default);
        }
        return;
    }
    if (type == NULL) {
        for (const cl__gql_value *i = val->items; i != NULL; i = i->next) {
            check_value(v, i, NULL, false);
        }
        return;
    }
    if (type->kind == CL__GQL_T_NON_NULL) {
        if (val->kind == CL__GQL_V_NULL) {
            if (v->mode == WALK_STRUCT) {
                print_tref(type, tn, sizeof(tn));
                err1(v, val->loc, "Expected value of type \"%s\", found null.", tn);
            }
            return;
        }
        check_value(v, val, type->of, false);
        return;
    }
    if (val->kind == CL__GQL_V_NULL) {
        return;
    }
    if (type->kind == CL__GQL_T_LIST) {
        if (val->kind == CL__GQL_V_LIST) {
            for (const cl__gql_value *i = val->items; i != NULL; i = i->next) {
                check_value(v, i, type->of, false);
            }
        } else {
            check_value(v, val, type->of, false);
        }
        return;
    }
    named = type->named;
    if (named->kind == CL_GQL_INPUT_OBJECT) {
        if (val->kind != CL__GQL_V_OBJECT) {
            if (v->mode == WALK_STRUCT) {
                print_value(val, buf, sizeof(buf));
                err1(v, val->loc, "Expected value of type \"%s\", found %s.", named->name, buf);
            }
            return;
        }
        for (const cl__gql_value *f = val->items; f != NULL; f = f->next) {
            const cl__gql_sarg *a = cl__gql_find_arg(named->inputs, named->ninputs, f->field);

            for (const cl__gql_value *g = val->items; v->mode == WALK_STRUCT && g != f;
                 g = g->next) {
                if (strcmp(g->field, f->field) == 0) {
                    snprintf(buf, sizeof(buf), "There can be only one input field named \"%s\".",
                             f->field);
                    err2(v, g->field_loc, f->field_loc, buf);
                    break;
                }
            }
            if (a == NULL) {
                if (v->mode == WALK_STRUCT) {
                    err1(v, f->field_loc, "Field \"%s\" is not defined by type \"%s\".", f->field,
                         named->name);
                }
                check_value(v, f, NULL, false);
                continue;
            }
            check_value(v, f, a->type, a->default_value != NULL);
        }
        for (size_t i = 0; v->mode == WALK_STRUCT && i < named->ninputs; i++) {
            const cl__gql_sarg *a = &named->inputs[i];
            bool given = false;

            for (const cl__gql_value *f = val->items; f != NULL; f = f->next) {
                given = given || strcmp(f->field, a->name) == 0;
            }
            if (!given && a->type->kind == CL__GQL_T_NON_NULL && a->default_value == NULL) {
                print_tref(a->type, tn, sizeof(tn));
                err1(v, val->loc, "Field \"%s.%s\" of required type \"%s\" was not provided.",
                     named->name, a->name, tn);
            }
        }
        return;
    }
    if (v->mode != WALK_STRUCT) {
        for (const cl__gql_value *i = val->items; i != NULL; i = i->next) {
            check_value(v, i, NULL, false);
        }
        return;
    }
    print_value(val, buf, sizeof(buf));
    if (named->kind == CL_GQL_ENUM) {
        bool known = false;

        for (size_t i = 0; val->kind == CL__GQL_V_ENUM && i < named->nvalues; i++) {
            known = known || strcmp(named->values[i], val->s) == 0;
        }
        if (val->kind != CL__GQL_V_ENUM) {
            err1(v, val->loc, "Enum \"%s\" cannot represent non-enum value: %s.", named->name, buf);
        } else if (!known) {
            err1(v, val->loc, "Value \"%s\" does not exist in \"%s\" enum.", val->s, named->name);
        }
        return;
    }
    if (strcmp(named->name, "Int") == 0) {
        if (val->kind != CL__GQL_V_INT) {
            err1(v, val->loc, "Int cannot represent non-integer value: %s", buf);
        } else if (!fits_int32(val->s)) {
            err1(v, val->loc, "Int cannot represent non 32-bit signed integer value: %s", buf);
        }
    } else if (strcmp(named->name, "Float") == 0) {
        if (val->kind != CL__GQL_V_INT && val->kind != CL__GQL_V_FLOAT) {
            err1(v, val->loc, "Float cannot represent non numeric value: %s", buf);
        }
    } else if (strcmp(named->name, "String") == 0) {
        if (val->kind != CL__GQL_V_STRING) {
            err1(v, val->loc, "String cannot represent a non string value: %s", buf);
        }
    } else if (strcmp(named->name, "Boolean") == 0) {
        if (val->kind != CL__GQL_V_BOOL) {
            err1(v, val->loc, "Boolean cannot represent a non boolean value: %s", buf);
        }
    } else if (strcmp(named->name, "ID") == 0) {
        if (val->kind != CL__GQL_V_STRING && val->kind != CL__GQL_V_INT) {
            err1(v, val->loc, "ID cannot represent a non-string and non-integer value: %s", buf);
        }
    }
}

/* --- arguments and directives ------------------------------------------------------------------
 */

static void check_args(validator *v, const cl__gql_arg *args, const cl__gql_sarg *defs,
                       size_t ndefs, const char *owner_kind, const char *owner, cl__gql_loc at)
{
    char msg[512], tn[200];

    for (const cl__gql_arg *a = args; a != NULL; a = a->next) {
        const cl__gql_sarg *d = cl__gql_find_arg(defs, ndefs, a->name);

        for (const cl__gql_arg *b = args; v->mode == WALK_STRUCT && b != a; b = b->next) {
            if (strcmp(a->name, b->name) == 0) {
                snprintf(msg, sizeof(msg), "There can be only one argument named \"%s\".", a->name);
                err2(v, b->loc, a->loc, msg);
                break;
            }
        }
        if (d == NULL && v->mode == WALK_STRUCT) {
            err1(v, a->loc, "Unknown argument \"%s\" on %s \"%s\".", a->name, owner_kind, owner);
        }
        check_value(v, a->value, d != NULL ? d->type : NULL, d != NULL && d->default_value != NULL);
    }
    for (size_t i = 0; v->mode == WALK_STRUCT && i < ndefs; i++) {
        bool given = false;

        for (const cl__gql_arg *a = args; a != NULL; a = a->next) {
            given = given || strcmp(a->name, defs[i].name) == 0;
        }
        if (!given && defs[i].type->kind == CL__GQL_T_NON_NULL && defs[i].default_value == NULL) {
            print_tref(defs[i].type, tn, sizeof(tn));
            if (strcmp(owner_kind, "directive") == 0) {
                err1(v, at,
                     "Directive \"@%s\" argument \"%s\" of type \"%s\" is required, but it was "
                     "not provided.",
                     owner, defs[i].name, tn);
            } else {
                err1(v, at,
                     "Field \"%s\" argument \"%s\" of type \"%s\" is required, but it was not "
                     "provided.",
                     strchr(owner, '.') + 1, defs[i].name, tn);
            }
        }
    }
}

static void check_directives(validator *v, const cl__gql_directive *dirs, const char *location)
{
    char msg[256];

    for (const cl__gql_directive *d = dirs; d != NULL; d = d->next) {
        const cl__gql_directive_def *def = NULL;

        for (int i = 0; i < CL__GQL_NDIRECTIVES; i++) {
            if (strcmp(v->s->directives[i].name, d->name) == 0) {
                def = &v->s->directives[i];
            }
        }
        if (def == NULL) {
            if (v->mode == WALK_STRUCT) {
                err1(v, d->loc, "Unknown directive \"@%s\".", d->name);
            }
            check_args(v, d->args, NULL, 0, "directive", d->name, d->loc);
            continue;
        }
        if (v->mode == WALK_STRUCT) {
            const char *p = strstr(def->locations, location);
            size_t n = strlen(location);

            if (p == NULL || (p[n] != ' ' && p[n] != '\0') ||
                (p != def->locations && p[-1] != ' ')) {
                err1(v, d->loc, "Directive \"@%s\" may not be used on %s.", d->name, location);
            }
            for (const cl__gql_directive *e = dirs; e != d; e = e->next) {
                if (strcmp(e->name, d->name) == 0) {
                    snprintf(msg, sizeof(msg),
                             "The directive \"@%s\" can only be used once at this location.",
                             d->name);
                    err2(v, e->loc, d->loc, msg);
                    break;
                }
            }
        }
        check_args(v, d->args, def->args, def->nargs, "directive", d->name, d->loc);
    }
}

/* --- selections ------------------------------------------------------------------------------- */

static cl__gql_def *find_fragment(const validator *v, const char *name)
{
    for (cl__gql_def *d = v->doc->defs; d != NULL; d = d->next) {
        if (d->fragment && d->name != NULL && strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

static void walk_sels(validator *v, const cl__gql_stype *type, cl__gql_sel *sels);

static void walk_field(validator *v, const cl__gql_stype *type, cl__gql_sel *f)
{
    const cl__gql_sfield *def = cl__gql_lookup_field(v->s, type, f->name);
    char owner[256], tn[200];
    const cl__gql_stype *named;

    check_directives(v, f->dirs, "FIELD");
    if (def == NULL) {
        if (v->mode == WALK_STRUCT) {
            err1(v, f->loc, "Cannot query field \"%s\" on type \"%s\".", f->name, type->name);
        }
        check_args(v, f->args, NULL, 0, "field", "", f->loc);
        return;
    }
    f->def = def;
    snprintf(owner, sizeof(owner), "%s.%s", type->name, f->name);
    check_args(v, f->args, def->args, def->nargs, "field", owner, f->loc);
    named = cl__gql_named(def->type);
    if (named->kind != CL_GQL_OBJECT && f->sels != NULL) {
        if (v->mode == WALK_STRUCT) {
            print_tref(def->type, tn, sizeof(tn));
            err1(v, f->sels_loc,
                 "Field \"%s\" must not have a selection since type \"%s\" has no subfields.",
                 f->name, tn);
        }
        return;
    }
    if (named->kind == CL_GQL_OBJECT && f->sels == NULL) {
        if (v->mode == WALK_STRUCT) {
            print_tref(def->type, tn, sizeof(tn));
            err1(v, f->loc,
                 "Field \"%s\" of type \"%s\" must have a selection of subfields. Did you mean "
                 "\"%s { ... }\"?",
                 f->name, tn, f->name);
        }
        return;
    }
    if (f->sels != NULL) {
        walk_sels(v, named, f->sels);
    }
}

/* Whether the current operation's walk entered frag already (and marks it entered). */
static bool entered(validator *v, cl__gql_def *frag)
{
    if (frag->walked == v->op) {
        return true;
    }
    frag->walked = v->op;
    return false;
}

static void walk_sel(validator *v, const cl__gql_stype *type, cl__gql_sel *sel)
{
    const cl__gql_stype *cond;
    cl__gql_def *frag;

    switch (sel->kind) {
    case CL__GQL_FIELD:
        walk_field(v, type, sel);
        break;
    case CL__GQL_SPREAD:
        check_directives(v, sel->dirs, "FRAGMENT_SPREAD");
        frag = find_fragment(v, sel->name);
        if (frag == NULL) {
            if (v->mode == WALK_STRUCT) {
                err1(v, sel->name_loc, "Unknown fragment \"%s\".", sel->name);
            }
            break;
        }
        cond = cl__gql_find_type(v->s, frag->type_cond->name);
        if (v->mode == WALK_STRUCT && cond != NULL && cond->kind == CL_GQL_OBJECT && cond != type) {
            err1(v, sel->loc,
                 "Fragment \"%s\" cannot be spread here as objects of type \"%s\" can never be "
                 "of type \"%s\".",
                 sel->name, type->name, cond->name);
        }
        if (v->mode == WALK_VARS && !entered(v, frag)) {
            frag->used = true;
            if (cond != NULL && cond->kind == CL_GQL_OBJECT) {
                walk_sels(v, cond, frag->sels);
            }
        }
        break;
    case CL__GQL_INLINE:
        check_directives(v, sel->dirs, "INLINE_FRAGMENT");
        cond = type;
        if (sel->type_cond != NULL) {
            cond = cl__gql_find_type(v->s, sel->type_cond->name);
            if (cond == NULL) {
                if (v->mode == WALK_STRUCT) {
                    err1(v, sel->type_cond->loc, "Unknown type \"%s\".", sel->type_cond->name);
                }
                break;
            }
            if (cond->kind != CL_GQL_OBJECT) {
                if (v->mode == WALK_STRUCT) {
                    err1(v, sel->type_cond->loc,
                         "Fragment cannot condition on non composite type \"%s\".", cond->name);
                }
                break;
            }
            if (cond != type && v->mode == WALK_STRUCT) {
                err1(v, sel->loc,
                     "Fragment cannot be spread here as objects of type \"%s\" can never be of "
                     "type \"%s\".",
                     type->name, cond->name);
            }
        }
        walk_sels(v, cond, sel->sels);
        break;
    }
}

/* Two argument lists ask for the same thing (the same names with equal values). */
static bool same_value(const cl__gql_value *a, const cl__gql_value *b)
{
    const cl__gql_value *x, *y;

    if (a->kind != b->kind) {
        return false;
    }
    switch (a->kind) {
    case CL__GQL_V_BOOL:
        return a->b == b->b;
    case CL__GQL_V_NULL:
        return true;
    case CL__GQL_V_LIST:
    case CL__GQL_V_OBJECT:
        for (x = a->items, y = b->items; x != NULL && y != NULL; x = x->next, y = y->next) {
            if (!same_value(x, y) ||
                (a->kind == CL__GQL_V_OBJECT && strcmp(x->field, y->field) != 0)) {
                return false;
            }
        }
        return x == NULL && y == NULL;
    default:
        return strcmp(a->s, b->s) == 0;
    }
}

static bool same_args(const cl__gql_arg *a, const cl__gql_arg *b)
{
    size_t na = 0, nb = 0;

    for (const cl__gql_arg *x = a; x != NULL; x = x->next) {
        bool found = false;

        na++;
        for (const cl__gql_arg *y = b; y != NULL && !found; y = y->next) {
            found = strcmp(x->name, y->name) == 0 && same_value(x->value, y->value);
        }
        if (!found) {
            return false;
        }
    }
    for (const cl__gql_arg *y = b; y != NULL; y = y->next) {
        nb++;
    }
    return na == nb;
}

typedef struct flat {
    cl__gql_sel *fields[512];
    size_t n;
    const cl__gql_def *seen[64];
    size_t nseen;
} flat;

/* The fields of a selection set, fragments flattened (each named fragment once). */
static void flatten(validator *v, cl__gql_sel *sels, flat *out)
{
    for (cl__gql_sel *s = sels; s != NULL; s = s->next) {
        if (s->kind == CL__GQL_FIELD) {
            if (out->n < sizeof(out->fields) / sizeof(out->fields[0])) {
                out->fields[out->n++] = s;
            }
        } else if (s->kind == CL__GQL_INLINE) {
            flatten(v, s->sels, out);
        } else {
            cl__gql_def *frag = find_fragment(v, s->name);
            bool seen = false;

            for (size_t i = 0; i < out->nseen; i++) {
                seen = seen || out->seen[i] == frag;
            }
            if (frag != NULL && !seen && out->nseen < sizeof(out->seen) / sizeof(out->seen[0])) {
                out->seen[out->nseen++] = frag;
                flatten(v, frag->sels, out);
            }
        }
    }
}

/* OverlappingFieldsCanBeMerged, for the fields of one selection set. */
static void check_overlaps(validator *v, cl__gql_sel *sels)
{
    flat *f = sels != NULL ? calloc(1, sizeof(*f)) : NULL;
    char msg[512];

    if (f == NULL) {
        return;
    }
    flatten(v, sels, f);
    v->overlap_budget -= (long long)f->n * (long long)f->n / 2;
    if (v->overlap_budget < 0) {
        if (!v->too_large) {
            v->too_large = true;
            err1(v, sels->loc, "the document is too large to validate: fewer fields or fragments");
        }
        free(f);
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        const char *ki = f->fields[i]->alias != NULL ? f->fields[i]->alias : f->fields[i]->name;

        for (size_t j = 0; j < i; j++) {
            const char *kj = f->fields[j]->alias != NULL ? f->fields[j]->alias : f->fields[j]->name;

            if (strcmp(ki, kj) != 0) {
                continue;
            }
            if (strcmp(f->fields[i]->name, f->fields[j]->name) != 0) {
                snprintf(msg, sizeof(msg),
                         "Fields \"%s\" conflict because \"%s\" and \"%s\" are different "
                         "fields. Use different aliases on the fields to fetch both if this was "
                         "intentional.",
                         ki, f->fields[j]->name, f->fields[i]->name);
                err2(v, f->fields[j]->loc, f->fields[i]->loc, msg);
            } else if (!same_args(f->fields[i]->args, f->fields[j]->args)) {
                snprintf(msg, sizeof(msg),
                         "Fields \"%s\" conflict because they have differing arguments. Use "
                         "different aliases on the fields to fetch both if this was "
                         "intentional.",
                         ki);
                err2(v, f->fields[j]->loc, f->fields[i]->loc, msg);
            } else {
                continue;
            }
            break;
        }
    }
    free(f);
}

static void walk_sels(validator *v, const cl__gql_stype *type, cl__gql_sel *sels)
{
    for (cl__gql_sel *s = sels; s != NULL; s = s->next) {
        walk_sel(v, type, s);
    }
    if (v->mode == WALK_STRUCT) {
        check_overlaps(v, sels);
    }
}

/* --- definitions ---------------------------------------------------------------------------------
 */

static const cl__gql_stype *root_of(validator *v, const cl__gql_def *op)
{
    switch (op->op) {
    case CL__GQL_QUERY:
        return v->s->query;
    case CL__GQL_MUTATION:
        return v->s->mutation;
    case CL__GQL_SUBSCRIPTION:
        return NULL;
    }
    return NULL;
}

static void check_vardefs(validator *v, cl__gql_def *op)
{
    char tn[200], msg[256];

    for (cl__gql_vardef *d = op->vars; d != NULL; d = d->next) {
        const cl__gql_typeref *named = d->type;

        for (cl__gql_vardef *e = op->vars; e != d; e = e->next) {
            if (strcmp(e->name, d->name) == 0) {
                snprintf(msg, sizeof(msg), "There can be only one variable named \"$%s\".",
                         d->name);
                err2(v, e->name_loc, d->name_loc, msg);
                break;
            }
        }
        while (named->kind != CL__GQL_T_NAMED) {
            named = named->of;
        }
        d->rtype = resolve_typeref(v, d->type);
        if (d->rtype == NULL) {
            err1(v, named->loc, "Unknown type \"%s\".", named->name);
            continue;
        }
        if (!cl__gql_is_input(cl__gql_named(d->rtype))) {
            print_typeref(d->type, tn, sizeof(tn));
            err1(v, d->type->loc, "Variable \"$%s\" cannot be non-input type \"%s\".", d->name, tn);
            d->rtype = NULL;
            continue;
        }
        if (d->default_value != NULL) {
            check_value(v, d->default_value, d->rtype, false);
        }
        check_directives(v, d->dirs, "VARIABLE_DEFINITION");
    }
}

/* NoFragmentCycles: depth-first through the spreads of frag's selections. */
static void cycles(validator *v, cl__gql_def *frag, cl__gql_sel *sels, cl__gql_loc *path,
                   const char **names, int depth)
{
    char msg[512];

    for (cl__gql_sel *s = sels; s != NULL; s = s->next) {
        cl__gql_def *target;

        if (s->kind != CL__GQL_SPREAD) {
            cycles(v, frag, s->sels, path, names, depth);
            continue;
        }
        target = find_fragment(v, s->name);
        if (target == NULL || depth >= 32) {
            continue;
        }
        path[depth] = s->loc;
        names[depth] = s->name;
        if (target == frag) {
            size_t n = (size_t)snprintf(msg, sizeof(msg),
                                        "Cannot spread fragment \"%s\" within "
                                        "itself",
                                        frag->name);
            for (int i = 0; i < depth && n < sizeof(msg); i++) {
                n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s\"%s\"", i == 0 ? " via " : ", ",
                                      names[i]);
            }
            if (n < sizeof(msg)) {
                snprintf(msg + n, sizeof(msg) - n, ".");
            }
            cl__gql_add_error(v->errors, path, (size_t)depth + 1, "%s", msg);
            continue;
        }
        /* Each fragment is explored once: a cycle is reported once, and never exponentially. */
        if (target->visiting == 0) {
            target->visiting = 1;
            cycles(v, frag, target->sels, path, names, depth + 1);
            target->visiting = 2;
        }
    }
}

void cl__gql_validate(const cl__gql_schema_t *s, cl__gql_doc *doc, json_t *errors)
{
    validator *v = calloc(1, sizeof(*v));
    size_t nops = 0;
    char msg[256];

    if (v == NULL) {
        cl__gql_add_error(errors, NULL, 0, "out of memory");
        return;
    }
    v->s = s;
    v->doc = doc;
    v->overlap_budget = 2000000;
    v->errors = errors;
    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        nops += !d->fragment;
    }
    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        v->mode = WALK_STRUCT;
        for (cl__gql_def *e = doc->defs; d->name != NULL && e != d; e = e->next) {
            if (e->fragment == d->fragment && e->name != NULL && strcmp(e->name, d->name) == 0) {
                snprintf(msg, sizeof(msg), "There can be only one %s named \"%s\".",
                         d->fragment ? "fragment" : "operation", d->name);
                err2(v, e->name_loc, d->name_loc, msg);
                break;
            }
        }
        if (d->fragment) {
            const cl__gql_stype *t = cl__gql_find_type(s, d->type_cond->name);

            check_directives(v, d->dirs, "FRAGMENT_DEFINITION");
            if (t == NULL) {
                err1(v, d->type_cond->loc, "Unknown type \"%s\".", d->type_cond->name);
            } else if (t->kind != CL_GQL_OBJECT) {
                err1(v, d->type_cond->loc,
                     "Fragment \"%s\" cannot condition on non composite type \"%s\".", d->name,
                     t->name);
            } else {
                walk_sels(v, t, d->sels);
            }
            continue;
        }
        if (d->name == NULL && nops > 1) {
            err1(v, d->loc, "This anonymous operation must be the only defined operation.");
        }
        check_vardefs(v, d);
        check_directives(v, d->dirs,
                         d->op == CL__GQL_MUTATION ? "MUTATION"
                         : d->op == CL__GQL_QUERY  ? "QUERY"
                                                   : "SUBSCRIPTION");
        if (root_of(v, d) == NULL) {
            err1(v, d->loc, "Schema is not configured to execute %s operation.",
                 d->op == CL__GQL_MUTATION ? "mutation" : "subscription");
            continue;
        }
        walk_sels(v, root_of(v, d), d->sels);
    }
    /* Per operation: its variables, through every fragment it spreads. */
    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        if (d->fragment || root_of(v, d) == NULL) {
            continue;
        }
        v->mode = WALK_VARS;
        v->op = d;
        walk_sels(v, root_of(v, d), d->sels);
        for (cl__gql_vardef *vd = d->vars; vd != NULL; vd = vd->next) {
            if (vd->used) {
                continue;
            }
            if (d->name != NULL) {
                err1(v, vd->loc, "Variable \"$%s\" is never used in operation \"%s\".", vd->name,
                     d->name);
            } else {
                err1(v, vd->loc, "Variable \"$%s\" is never used.", vd->name);
            }
        }
    }
    for (cl__gql_def *d = doc->defs; d != NULL; d = d->next) {
        cl__gql_loc path[33];
        const char *names[33];

        if (!d->fragment) {
            continue;
        }
        if (!d->used) {
            err1(v, d->loc, "Fragment \"%s\" is never used.", d->name);
        }
        if (d->visiting == 0) {
            d->visiting = 1;
            cycles(v, d, d->sels, path, names, 0);
            d->visiting = 2;
        }
    }
    free(v);
}
