/*
 * The GraphQL lexer and parser (GraphQL specification, October 2021, sections 2 and
 * appendix B): executable documents only. Every node lives in one arena freed at once;
 * nesting and the number of tokens are bounded, since the text comes from the network.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql_internal.h"

/* --- arena ------------------------------------------------------------------------- */

#define ARENA_BLOCK 16384

typedef struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t size;
    _Alignas(max_align_t) unsigned char data[];
} arena_block;

struct cl__gql_arena {
    arena_block *head;
};

cl__gql_arena *cl__gql_arena_new(void)
{
    return calloc(1, sizeof(cl__gql_arena));
}

void cl__gql_arena_free(cl__gql_arena *a)
{
    if (a == NULL) {
        return;
    }
    while (a->head != NULL) {
        arena_block *next = a->head->next;

        free(a->head);
        a->head = next;
    }
    free(a);
}

void *cl__gql_arena_alloc(cl__gql_arena *a, size_t n)
{
    arena_block *b = a->head;

    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (b == NULL || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;

        b = malloc(sizeof(*b) + size);
        if (b == NULL) {
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->size = size;
        a->head = b;
    }
    memset(b->data + b->used, 0, n);
    b->used += n;
    return b->data + b->used - n;
}

static char *arena_strndup(cl__gql_arena *a, const char *s, size_t n)
{
    char *p = cl__gql_arena_alloc(a, n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* --- lexer ------------------------------------------------------------------------- */

typedef enum tok_kind {
    TOK_EOF,
    TOK_PUNCT, /* one of !$&()...:=@[]{}| ; "..." is '.' */
    TOK_NAME,
    TOK_INT,
    TOK_FLOAT,
    TOK_STRING,
} tok_kind;

typedef struct token {
    tok_kind kind;
    char punct;
    const char *start;
    size_t len;
    char *value; /* TOK_STRING: decoded; TOK_NAME, numbers: a copy */
    cl__gql_loc loc;
} token;

typedef struct parser {
    const char *text;
    size_t len;
    size_t pos;
    int line;
    size_t line_start;
    token tok;
    cl__gql_arena *arena;
    cl__gql_error *e;
    int tokens;
    int max_tokens;
    int depth;
    bool failed;
} parser;

static void fail(parser *p, cl__gql_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(parser *p, cl__gql_loc loc, const char *fmt, ...)
{
    va_list ap;

    if (p->failed) {
        return;
    }
    p->failed = true;
    p->e->loc = loc;
    va_start(ap, fmt);
    vsnprintf(p->e->message, sizeof(p->e->message), fmt, ap);
    va_end(ap);
}

static cl__gql_loc here(const parser *p)
{
    /* Columns count characters: UTF-8 continuation bytes do not start one. */
    int col = 1;

    for (size_t i = p->line_start; i < p->pos; i++) {
        col += ((unsigned char)p->text[i] & 0xC0) != 0x80;
    }
    return (cl__gql_loc){p->line, col};
}

static int peekc(const parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? (unsigned char)p->text[p->pos + ahead] : -1;
}

static void newline(parser *p)
{
    if (p->text[p->pos] == '\r' && peekc(p, 1) == '\n') {
        p->pos++;
    }
    p->pos++;
    p->line++;
    p->line_start = p->pos;
}

static void skip_ignored(parser *p)
{
    while (p->pos < p->len) {
        int c = peekc(p, 0);

        if (c == ' ' || c == '\t' || c == ',') {
            p->pos++;
        } else if (c == '\n' || c == '\r') {
            newline(p);
        } else if (c == 0xEF && peekc(p, 1) == 0xBB && peekc(p, 2) == 0xBF) {
            p->pos += 3; /* a byte order mark */
        } else if (c == '#') {
            while (p->pos < p->len && p->text[p->pos] != '\n' && p->text[p->pos] != '\r') {
                p->pos++;
            }
        } else {
            return;
        }
    }
}

static bool is_name_start(int c)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static void lex_string(parser *p)
{
    /* The decoded string is never longer than the source. */
    char *out = cl__gql_arena_alloc(p->arena, p->len - p->pos + 1);
    size_t n = 0;

    if (out == NULL) {
        fail(p, p->tok.loc, "out of memory");
        return;
    }
    p->pos++;
    for (;;) {
        int c = peekc(p, 0);

        if (c < 0 || c == '\n' || c == '\r') {
            fail(p, here(p), "Syntax Error: Unterminated string.");
            return;
        }
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20 && c != '\t') {
            fail(p, here(p), "Syntax Error: Invalid character within String: 0x%02x.", c);
            return;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->pos++;
            continue;
        }
        c = peekc(p, 1);
        if (c == 'u') {
            long cp = p->pos + 6 > p->len ? -1 : cl_hex4(p->text + p->pos + 2);
            long lo;

            if (cp < 0) {
                fail(p, here(p), "Syntax Error: Invalid Unicode escape sequence.");
                return;
            }
            p->pos += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                lo = p->pos + 6 > p->len || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u'
                         ? -1
                         : cl_hex4(p->text + p->pos + 2);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, here(p), "Syntax Error: Invalid Unicode escape sequence.");
                    return;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, here(p), "Syntax Error: Invalid Unicode escape sequence.");
                return;
            }
            n += cl_utf8_put(out + n, (uint32_t)cp);
            continue;
        }
        {
            /* The single-character escapes and what each stands for, position by position. */
            static const char escapes[] = "\"\\/bfnrt", meanings[] = "\"\\/\b\f\n\r\t";
            const char *e = c > 0 ? strchr(escapes, c) : NULL;

            if (e == NULL) {
                fail(p, here(p), "Syntax Error: Invalid character escape sequence.");
                return;
            }
            out[n++] = meanings[e - escapes];
        }
        p->pos += 2;
    }
    out[n] = '\0';
    p->tok.kind = TOK_STRING;
    p->tok.value = out;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t') {
            return false;
        }
    }
    return true;
}

/* Splits raw into lines, drops common indentation and blank first and last lines. */
static char *block_value(parser *p, const char *raw, size_t len)
{
    char *out = cl__gql_arena_alloc(p->arena, len + 1);
    size_t common = SIZE_MAX, n = 0;
    size_t starts[2] = {0, 0};
    int first = 1;
    size_t i = 0;
    size_t first_line = SIZE_MAX, last_line = 0, line_no = 0;

    (void)starts;
    if (out == NULL) {
        return NULL;
    }
    /* Pass 1: common indentation of every line but the first, and the non-blank range. */
    while (i <= len) {
        size_t start = i, end, indent = 0;

        while (i < len && raw[i] != '\n' && raw[i] != '\r') {
            i++;
        }
        end = i;
        while (start + indent < end &&
               (raw[start + indent] == ' ' || raw[start + indent] == '\t')) {
            indent++;
        }
        if (!first && start + indent < end && indent < common) {
            common = indent;
        }
        if (!blank(raw + start, end - start)) {
            if (first_line == SIZE_MAX) {
                first_line = line_no;
            }
            last_line = line_no;
        }
        first = 0;
        line_no++;
        if (i < len && raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n') {
            i++;
        }
        i++;
    }
    if (common == SIZE_MAX) {
        common = 0;
    }
    /* Pass 2: the lines from the first to the last non-blank one, joined by \n. */
    i = 0;
    line_no = 0;
    while (i <= len && first_line != SIZE_MAX) {
        size_t start = i, end;

        while (i < len && raw[i] != '\n' && raw[i] != '\r') {
            i++;
        }
        end = i;
        if (line_no >= first_line && line_no <= last_line) {
            size_t skip = line_no == 0 ? 0 : common;

            if (line_no > first_line) {
                out[n++] = '\n';
            }
            if (start + skip > end) {
                skip = end - start;
            }
            memcpy(out + n, raw + start + skip, end - start - skip);
            n += end - start - skip;
        }
        line_no++;
        if (i < len && raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n') {
            i++;
        }
        i++;
    }
    out[n] = '\0';
    return out;
}

static void lex_block_string(parser *p)
{
    char *raw = cl__gql_arena_alloc(p->arena, p->len - p->pos + 1);
    size_t n = 0;

    if (raw == NULL) {
        fail(p, p->tok.loc, "out of memory");
        return;
    }
    p->pos += 3;
    for (;;) {
        int c = peekc(p, 0);

        if (c < 0) {
            fail(p, here(p), "Syntax Error: Unterminated string.");
            return;
        }
        if (c == '"' && peekc(p, 1) == '"' && peekc(p, 2) == '"') {
            p->pos += 3;
            break;
        }
        if (c == '\\' && peekc(p, 1) == '"' && peekc(p, 2) == '"' && peekc(p, 3) == '"') {
            /* An escaped triple quote is three quotes of the value. */
            raw[n++] = '"';
            raw[n++] = '"';
            raw[n++] = '"';
            p->pos += 4;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            fail(p, here(p), "Syntax Error: Invalid character within String: 0x%02x.", c);
            return;
        }
        raw[n++] = (char)c;
        if (c == '\n' || c == '\r') {
            newline(p);
            if (c == '\r' && p->text[p->pos - 1] == '\n') {
                raw[n++] = '\n';
            }
        } else {
            p->pos++;
        }
    }
    p->tok.kind = TOK_STRING;
    p->tok.value = block_value(p, raw, n);
    if (p->tok.value == NULL) {
        fail(p, p->tok.loc, "out of memory");
    }
}

static void lex_number(parser *p)
{
    size_t start = p->pos;
    bool is_float = false;

    if (peekc(p, 0) == '-') {
        p->pos++;
    }
    if (peekc(p, 0) == '0') {
        p->pos++;
        if (is_digit(peekc(p, 0))) {
            fail(p, here(p), "Syntax Error: Invalid number, unexpected digit after 0: \"%c\".",
                 peekc(p, 0));
            return;
        }
    } else if (is_digit(peekc(p, 0))) {
        while (is_digit(peekc(p, 0))) {
            p->pos++;
        }
    } else {
        fail(p, here(p), "Syntax Error: Invalid number, expected digit.");
        return;
    }
    if (peekc(p, 0) == '.') {
        is_float = true;
        p->pos++;
        if (!is_digit(peekc(p, 0))) {
            fail(p, here(p), "Syntax Error: Invalid number, expected digit.");
            return;
        }
        while (is_digit(peekc(p, 0))) {
            p->pos++;
        }
    }
    if (peekc(p, 0) == 'e' || peekc(p, 0) == 'E') {
        is_float = true;
        p->pos++;
        if (peekc(p, 0) == '+' || peekc(p, 0) == '-') {
            p->pos++;
        }
        if (!is_digit(peekc(p, 0))) {
            fail(p, here(p), "Syntax Error: Invalid number, expected digit.");
            return;
        }
        while (is_digit(peekc(p, 0))) {
            p->pos++;
        }
    }
    if (peekc(p, 0) == '.' || is_name_start(peekc(p, 0))) {
        fail(p, here(p), "Syntax Error: Invalid number, expected digit.");
        return;
    }
    p->tok.kind = is_float ? TOK_FLOAT : TOK_INT;
    p->tok.value = arena_strndup(p->arena, p->text + start, p->pos - start);
    if (p->tok.value == NULL) {
        fail(p, p->tok.loc, "out of memory");
    }
}

/* Reads the next token into p->tok. */
static void next(parser *p)
{
    int c;

    if (p->failed) {
        p->tok.kind = TOK_EOF;
        return;
    }
    skip_ignored(p);
    memset(&p->tok, 0, sizeof(p->tok));
    p->tok.loc = here(p);
    p->tok.start = p->text + p->pos;
    if (p->pos >= p->len) {
        p->tok.kind = TOK_EOF;
        return;
    }
    if (++p->tokens > p->max_tokens) {
        fail(p, p->tok.loc, "the document has more than %d tokens", p->max_tokens);
        p->tok.kind = TOK_EOF;
        return;
    }
    c = peekc(p, 0);
    if (strchr("!$&()=:@[]{}|", c) != NULL && c != 0) {
        p->tok.kind = TOK_PUNCT;
        p->tok.punct = (char)c;
        p->pos++;
    } else if (c == '.') {
        if (peekc(p, 1) != '.' || peekc(p, 2) != '.') {
            fail(p, p->tok.loc, "Syntax Error: Unexpected \".\".");
            p->tok.kind = TOK_EOF;
            return;
        }
        p->tok.kind = TOK_PUNCT;
        p->tok.punct = '.';
        p->pos += 3;
    } else if (is_name_start(c)) {
        size_t start = p->pos;

        while (is_name_start(peekc(p, 0)) || is_digit(peekc(p, 0))) {
            p->pos++;
        }
        p->tok.kind = TOK_NAME;
        p->tok.value = arena_strndup(p->arena, p->text + start, p->pos - start);
        if (p->tok.value == NULL) {
            fail(p, p->tok.loc, "out of memory");
        }
    } else if (c == '-' || is_digit(c)) {
        lex_number(p);
    } else if (c == '"') {
        if (peekc(p, 1) == '"' && peekc(p, 2) == '"') {
            lex_block_string(p);
        } else {
            lex_string(p);
        }
    } else if (c == '\'') {
        fail(p, p->tok.loc,
             "Syntax Error: Unexpected single quote character ('), did you mean "
             "to use a double quote (\")?");
    } else {
        fail(p, p->tok.loc, "Syntax Error: Unexpected character: 0x%02x.", c);
    }
    p->tok.len = (size_t)(p->text + p->pos - p->tok.start);
    if (p->failed) {
        p->tok.kind = TOK_EOF;
    }
}

/* --- parser ------------------------------------------------------------------------ */

static const char *describe(const token *t, char *buf, size_t size)
{
    switch (t->kind) {
    case TOK_EOF:
        return "<EOF>";
    case TOK_PUNCT:
        snprintf(buf, size, "\"%s\"", t->punct == '.' ? "..." : (char[]){t->punct, '\0'});
        return buf;
    case TOK_NAME:
        snprintf(buf, size, "Name \"%.64s\"", t->value);
        return buf;
    case TOK_INT:
        snprintf(buf, size, "Int \"%.64s\"", t->value);
        return buf;
    case TOK_FLOAT:
        snprintf(buf, size, "Float \"%.64s\"", t->value);
        return buf;
    case TOK_STRING:
        return "String";
    }
    return "?";
}

static void unexpected(parser *p, const char *expected)
{
    char buf[96];

    if (expected != NULL) {
        fail(p, p->tok.loc, "Syntax Error: Expected %s, found %s.", expected,
             describe(&p->tok, buf, sizeof(buf)));
    } else {
        fail(p, p->tok.loc, "Syntax Error: Unexpected %s.", describe(&p->tok, buf, sizeof(buf)));
    }
}

static bool is_punct(const parser *p, char c)
{
    return p->tok.kind == TOK_PUNCT && p->tok.punct == c;
}

static bool is_keyword(const parser *p, const char *word)
{
    return p->tok.kind == TOK_NAME && strcmp(p->tok.value, word) == 0;
}

static bool expect(parser *p, char c)
{
    char want[8];

    if (is_punct(p, c)) {
        next(p);
        return true;
    }
    snprintf(want, sizeof(want), "\"%s\"", c == '.' ? "..." : (char[]){c, '\0'});
    unexpected(p, want);
    return false;
}

static const char *parse_name(parser *p, cl__gql_loc *loc)
{
    const char *name;

    if (p->tok.kind != TOK_NAME) {
        unexpected(p, "Name");
        return NULL;
    }
    name = p->tok.value;
    if (loc != NULL) {
        *loc = p->tok.loc;
    }
    next(p);
    return name;
}

static void *node(parser *p, size_t size)
{
    void *n = cl__gql_arena_alloc(p->arena, size);

    if (n == NULL) {
        fail(p, p->tok.loc, "out of memory");
    }
    return n;
}

static bool enter(parser *p)
{
    if (++p->depth > CL__GQL_MAX_NESTING) {
        fail(p, p->tok.loc, "the document nests deeper than %d levels", CL__GQL_MAX_NESTING);
        return false;
    }
    return true;
}

static cl__gql_value *parse_value(parser *p, bool is_const)
{
    cl__gql_value *v = node(p, sizeof(*v));

    if (v == NULL || !enter(p)) {
        return NULL;
    }
    v->loc = p->tok.loc;
    if (is_punct(p, '$') && !is_const) {
        next(p);
        v->kind = CL__GQL_V_VAR;
        v->s = parse_name(p, NULL);
    } else if (is_punct(p, '[')) {
        cl__gql_value **tail = &v->items;

        v->kind = CL__GQL_V_LIST;
        next(p);
        while (!p->failed && !is_punct(p, ']')) {
            if (p->tok.kind == TOK_EOF) {
                unexpected(p, NULL);
                break;
            }
            *tail = parse_value(p, is_const);
            if (*tail != NULL) {
                tail = &(*tail)->next;
            }
        }
        next(p);
    } else if (is_punct(p, '{')) {
        cl__gql_value **tail = &v->items;

        v->kind = CL__GQL_V_OBJECT;
        next(p);
        while (!p->failed && !is_punct(p, '}')) {
            cl__gql_loc floc;
            const char *name = parse_name(p, &floc);

            if (name == NULL || !expect(p, ':')) {
                break;
            }
            *tail = parse_value(p, is_const);
            if (*tail != NULL) {
                (*tail)->field = name;
                (*tail)->field_loc = floc;
                tail = &(*tail)->next;
            }
        }
        next(p);
    } else if (p->tok.kind == TOK_INT || p->tok.kind == TOK_FLOAT || p->tok.kind == TOK_STRING) {
        v->kind = p->tok.kind == TOK_INT     ? CL__GQL_V_INT
                  : p->tok.kind == TOK_FLOAT ? CL__GQL_V_FLOAT
                                             : CL__GQL_V_STRING;
        v->s = p->tok.value;
        next(p);
    } else if (p->tok.kind == TOK_NAME) {
        if (is_keyword(p, "true") || is_keyword(p, "false")) {
            v->kind = CL__GQL_V_BOOL;
            v->b = is_keyword(p, "true");
        } else if (is_keyword(p, "null")) {
            v->kind = CL__GQL_V_NULL;
        } else {
            v->kind = CL__GQL_V_ENUM;
            v->s = p->tok.value;
        }
        next(p);
    } else {
        unexpected(p, NULL);
    }
    p->depth--;
    return p->failed ? NULL : v;
}

static cl__gql_arg *parse_args(parser *p, bool is_const)
{
    cl__gql_arg *head = NULL, **tail = &head;

    if (!is_punct(p, '(')) {
        return NULL;
    }
    next(p);
    do {
        cl__gql_arg *a = node(p, sizeof(*a));

        if (a == NULL) {
            return NULL;
        }
        a->name = parse_name(p, &a->loc);
        if (a->name == NULL || !expect(p, ':')) {
            return NULL;
        }
        a->value = parse_value(p, is_const);
        *tail = a;
        tail = &a->next;
    } while (!p->failed && !is_punct(p, ')'));
    next(p);
    return head;
}

static cl__gql_directive *parse_directives(parser *p, bool is_const)
{
    cl__gql_directive *head = NULL, **tail = &head;

    while (!p->failed && is_punct(p, '@')) {
        cl__gql_directive *d = node(p, sizeof(*d));

        if (d == NULL) {
            return NULL;
        }
        d->loc = p->tok.loc;
        next(p);
        d->name = parse_name(p, NULL);
        d->args = parse_args(p, is_const);
        *tail = d;
        tail = &d->next;
    }
    return head;
}

static cl__gql_typeref *parse_type(parser *p)
{
    cl__gql_typeref *t = node(p, sizeof(*t));

    if (t == NULL || !enter(p)) {
        return NULL;
    }
    t->loc = p->tok.loc;
    if (is_punct(p, '[')) {
        next(p);
        t->kind = CL__GQL_T_LIST;
        t->of = parse_type(p);
        expect(p, ']');
    } else {
        t->kind = CL__GQL_T_NAMED;
        t->name = parse_name(p, NULL);
    }
    if (!p->failed && is_punct(p, '!')) {
        cl__gql_typeref *nn = node(p, sizeof(*nn));

        if (nn != NULL) {
            nn->kind = CL__GQL_T_NON_NULL;
            nn->of = t;
            nn->loc = t->loc;
            t = nn;
        }
        next(p);
    }
    p->depth--;
    return p->failed ? NULL : t;
}

static cl__gql_sel *parse_selection_set(parser *p, cl__gql_loc *loc);

static cl__gql_sel *parse_selection(parser *p)
{
    cl__gql_sel *s = node(p, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->loc = p->tok.loc;
    if (is_punct(p, '.')) {
        next(p);
        if (p->tok.kind == TOK_NAME && !is_keyword(p, "on")) {
            s->kind = CL__GQL_SPREAD;
            s->name = parse_name(p, &s->name_loc);
            s->dirs = parse_directives(p, false);
            return s;
        }
        s->kind = CL__GQL_INLINE;
        if (is_keyword(p, "on")) {
            next(p);
            s->type_cond = node(p, sizeof(*s->type_cond));
            if (s->type_cond != NULL) {
                s->type_cond->loc = p->tok.loc;
                s->type_cond->name = parse_name(p, NULL);
            }
        }
        s->dirs = parse_directives(p, false);
        s->sels = parse_selection_set(p, &s->sels_loc);
        return s;
    }
    s->kind = CL__GQL_FIELD;
    s->name = parse_name(p, &s->name_loc);
    if (!p->failed && is_punct(p, ':')) {
        next(p);
        s->alias = s->name;
        s->name = parse_name(p, &s->name_loc);
    }
    s->args = parse_args(p, false);
    s->dirs = parse_directives(p, false);
    if (!p->failed && is_punct(p, '{')) {
        s->sels = parse_selection_set(p, &s->sels_loc);
    }
    return s;
}

static cl__gql_sel *parse_selection_set(parser *p, cl__gql_loc *loc)
{
    cl__gql_sel *head = NULL, **tail = &head;

    if (loc != NULL) {
        *loc = p->tok.loc;
    }
    if (!expect(p, '{') || !enter(p)) {
        return NULL;
    }
    do {
        cl__gql_sel *s = parse_selection(p);

        if (s == NULL) {
            break;
        }
        *tail = s;
        tail = &s->next;
    } while (!p->failed && !is_punct(p, '}'));
    next(p);
    p->depth--;
    return p->failed ? NULL : head;
}

static cl__gql_vardef *parse_vardefs(parser *p)
{
    cl__gql_vardef *head = NULL, **tail = &head;

    if (!is_punct(p, '(')) {
        return NULL;
    }
    next(p);
    do {
        cl__gql_vardef *v = node(p, sizeof(*v));

        if (v == NULL) {
            return NULL;
        }
        v->loc = p->tok.loc;
        if (!expect(p, '$')) {
            return NULL;
        }
        v->name = parse_name(p, &v->name_loc);
        if (v->name == NULL || !expect(p, ':')) {
            return NULL;
        }
        v->type = parse_type(p);
        if (!p->failed && is_punct(p, '=')) {
            next(p);
            v->default_value = parse_value(p, true);
        }
        v->dirs = parse_directives(p, true);
        *tail = v;
        tail = &v->next;
    } while (!p->failed && !is_punct(p, ')'));
    next(p);
    return head;
}

static cl__gql_def *parse_definition(parser *p)
{
    cl__gql_def *d = node(p, sizeof(*d));

    if (d == NULL) {
        return NULL;
    }
    d->loc = p->tok.loc;
    if (is_punct(p, '{')) {
        d->op = CL__GQL_QUERY;
        d->sels = parse_selection_set(p, NULL);
        return d;
    }
    if (is_keyword(p, "fragment")) {
        next(p);
        d->fragment = true;
        if (is_keyword(p, "on")) {
            unexpected(p, NULL);
            return NULL;
        }
        d->name = parse_name(p, &d->name_loc);
        if (!is_keyword(p, "on")) {
            unexpected(p, "\"on\"");
            return NULL;
        }
        next(p);
        d->type_cond = node(p, sizeof(*d->type_cond));
        if (d->type_cond == NULL) {
            return NULL;
        }
        d->type_cond->loc = p->tok.loc;
        d->type_cond->name = parse_name(p, NULL);
        d->dirs = parse_directives(p, false);
        d->sels = parse_selection_set(p, NULL);
        return d;
    }
    if (is_keyword(p, "query") || is_keyword(p, "mutation") || is_keyword(p, "subscription")) {
        d->op = is_keyword(p, "query")      ? CL__GQL_QUERY
                : is_keyword(p, "mutation") ? CL__GQL_MUTATION
                                            : CL__GQL_SUBSCRIPTION;
        next(p);
        if (p->tok.kind == TOK_NAME) {
            d->name = parse_name(p, &d->name_loc);
        }
        d->vars = parse_vardefs(p);
        d->dirs = parse_directives(p, false);
        d->sels = parse_selection_set(p, NULL);
        return d;
    }
    unexpected(p, NULL);
    return NULL;
}

static void parser_init(parser *p, const char *text, size_t len, int max_tokens, cl__gql_arena *a,
                        cl__gql_error *e)
{
    memset(p, 0, sizeof(*p));
    p->text = text;
    p->len = len;
    p->line = 1;
    p->arena = a;
    p->e = e;
    p->max_tokens = max_tokens;
    memset(e, 0, sizeof(*e));
}

cl_status cl__gql_parse(const char *text, size_t len, int max_tokens, cl__gql_doc **out,
                        cl__gql_error *e)
{
    parser p;
    cl__gql_doc *doc = calloc(1, sizeof(*doc));
    cl__gql_def **tail;

    *out = NULL;
    if (doc == NULL || (doc->arena = cl__gql_arena_new()) == NULL) {
        free(doc);
        snprintf(e->message, sizeof(e->message), "out of memory");
        return CL_INTERNAL;
    }
    tail = &doc->defs;
    parser_init(&p, text, len, max_tokens, doc->arena, e);
    if (memchr(text, '\0', len) != NULL) {
        fail(&p, (cl__gql_loc){1, 1}, "Syntax Error: the document holds a NUL character.");
    }
    next(&p);
    if (!p.failed && p.tok.kind == TOK_EOF) {
        unexpected(&p, "Name");
    }
    while (!p.failed && p.tok.kind != TOK_EOF) {
        cl__gql_def *d = parse_definition(&p);

        if (d == NULL) {
            break;
        }
        *tail = d;
        tail = &d->next;
    }
    doc->tokens = p.tokens;
    if (p.failed) {
        cl__gql_doc_free(doc);
        return strcmp(e->message, "out of memory") == 0 ? CL_INTERNAL : CL_INVALID;
    }
    *out = doc;
    return CL_OK;
}

void cl__gql_doc_free(cl__gql_doc *doc)
{
    if (doc == NULL) {
        return;
    }
    cl__gql_arena_free(doc->arena);
    free(doc);
}

cl_status cl__gql_parse_value(cl__gql_arena *a, const char *text, cl__gql_value **out,
                              cl__gql_error *e)
{
    parser p;

    parser_init(&p, text, strlen(text), 1000, a, e);
    next(&p);
    *out = parse_value(&p, true);
    if (!p.failed && p.tok.kind != TOK_EOF) {
        unexpected(&p, NULL);
    }
    return p.failed ? CL_INVALID : CL_OK;
}
