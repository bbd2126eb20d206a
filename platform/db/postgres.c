/*
 * The PostgreSQL driver (libpq), behind the same table as SQLite (ADR 0011).
 *
 * Statements are written with `?` placeholders; prepare translates them to $1..$n and
 * prepares them on the connection under a generated name, so the generic layer's cache
 * (keyed by the SQL literal, per connection) saves the parse and plan on every later
 * use. Parameters and results travel as text, which is what the cl_stmt accessors
 * return anyway. A step runs the statement on its first call and then walks the
 * PGresult; the result sets of our statements are bounded pages, so fetching them
 * whole is the simplest correct choice.
 *
 * A connection that lost its server is reported as CL_UNAVAILABLE and as broken, so the
 * pool drops it instead of handing it out again; libpq's connect timeout and TCP
 * keepalives keep a dead server from turning into a hang.
 */
#include "cleave/db.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* Statements of one module never have more parameters than this; more is a bug. */
#define CL__PG_MAX_PARAMS 1000
/* Module names become role and schema names; these bounds keep them valid identifiers. */
#define CL__PG_MAX_MODULE 40

/* Evicted statements waiting to be deallocated on the server, at most this many. */
#define CL__PG_PENDING    8

typedef struct pg_conn {
    PGconn *pg;
    unsigned next_stmt; /* names the connection's prepared statements: cl_1, cl_2, ... */
    int npending;
    char pending[CL__PG_PENDING][24];
} pg_conn;

typedef struct pg_stmt {
    pg_conn *conn;
    char name[24];
    int nparams;
    char **values; /* nparams owned copies, NULL for SQL NULL */
    PGresult *res; /* NULL until the first step */
    int row;       /* the current row of res, -1 before the first */
} pg_stmt;

/* Libpq prints notices (e.g. "relation already exists, skipping") to stderr otherwise. */
static void pg_ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static cl_status pg_status_of_sqlstate(const char *state)
{
    if (state == NULL || strlen(state) != 5) {
        return CL_INTERNAL;
    }
    if (strcmp(state, "23505") == 0 || strcmp(state, "23503") == 0 || strcmp(state, "23P01") == 0) {
        return CL_CONFLICT;
    }
    /*
     * A serialization failure or deadlock says nothing about the request: the same call
     * succeeds when retried, so it is "unavailable" (503), not a conflict (409).
     */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return CL_UNAVAILABLE;
    }
    if (strcmp(state, "57014") == 0) {
        return CL_DEADLINE_EXCEEDED;
    }
    return CL_INTERNAL;
}

/* Copies a libpq message into err without its trailing newline. */
static cl_status pg_set(cl_error *err, cl_status st, const char *what, const char *msg)
{
    size_t n = msg != NULL ? strlen(msg) : 0;

    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        n--;
    }
    if (n == 0) {
        return cl_error_set(err, st, NULL, "%s failed", what);
    }
    return cl_error_set(err, st, NULL, "%.*s", (int)n, msg);
}

/* Maps a failed result (res may be NULL: libpq could not even send) into err. */
static cl_status pg_fail(PGconn *pg, const PGresult *res, const char *what, cl_error *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    cl_status st;

    /* No SQLSTATE: libpq failed on its side, which means the connection is in doubt. */
    if (PQstatus(pg) != CONNECTION_OK || state == NULL) {
        st = CL_UNAVAILABLE;
    } else {
        st = pg_status_of_sqlstate(state);
    }
    return pg_set(err, st, what,
                  res != NULL && PQresultErrorMessage(res)[0] != '\0' ? PQresultErrorMessage(res)
                                                                      : PQerrorMessage(pg));
}

static void pg_disconnect(void *conn)
{
    pg_conn *c = conn;

    if (c == NULL) {
        return;
    }
    PQfinish(c->pg);
    free(c);
}

static cl_status pg_connect(const char *target, void **conn, cl_error *err)
{
    /*
     * Defaults come first and the target after it (expanded), so that whatever the
     * target says wins: libpq uses the last value of a repeated keyword.
     */
    const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *const values[] = {"2", "1", "5", "2", "2", "5000", target, NULL};
    pg_conn *c = NULL;
    cl_status st;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    c->pg = PQconnectdbParams(keys, values, 1);
    if (c->pg == NULL) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        st = pg_set(err, CL_UNAVAILABLE, "connect", PQerrorMessage(c->pg));
        goto out;
    }
    PQsetNoticeProcessor(c->pg, pg_ignore_notice, NULL);
    *conn = c;
    c = NULL;
    st = CL_OK;
out:
    pg_disconnect(c);
    return st;
}

static cl_status pg_exec(void *conn, const char *sql, cl_error *err)
{
    pg_conn *c = conn;
    PGresult *res;
    ExecStatusType rs;
    cl_status st = CL_OK;

    /*
     * The generic layer says "BEGIN" for a unit of work. READ COMMITTED is PostgreSQL's
     * default and what our statements are written for: writers that must not lose an
     * update check a version in the UPDATE itself or lock rows with SELECT ... FOR UPDATE.
     */
    if (strcmp(sql, "BEGIN") == 0) {
        sql = "BEGIN ISOLATION LEVEL READ COMMITTED";
    }
    res = PQexec(c->pg, sql);
    rs = PQresultStatus(res);
    if (res == NULL ||
        (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_EMPTY_QUERY)) {
        st = pg_fail(c->pg, res, "statement", err);
    }
    PQclear(res);
    return st;
}

/*
 * Translates `?` placeholders into $1..$n, leaving alone those inside string literals
 * ('...', E'...' with backslash escapes), quoted identifiers, dollar-quoted strings and
 * comments. Returns a new string (caller frees) and the count in *nparams, or NULL when
 * out of memory or over CL__PG_MAX_PARAMS.
 */
char *cl__pg_translate(const char *sql, int *nparams);
char *cl__pg_translate(const char *sql, int *nparams)
{
    size_t len = strlen(sql);
    size_t cap;
    char *out;
    size_t o = 0;
    int n = 0;
    size_t i = 0;

    /* Every '?' grows into at most "$1000": five bytes for one. */
    cap = len * 5 + 1;
    out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    while (i < len) {
        char ch = sql[i];

        if (ch == '\'') {
            bool backslash = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                             (i < 2 || !(isalnum((unsigned char)sql[i - 2]) || sql[i - 2] == '_'));
            out[o++] = sql[i++];
            while (i < len) {
                if (backslash && sql[i] == '\\' && i + 1 < len) {
                    out[o++] = sql[i++];
                    out[o++] = sql[i++];
                    continue;
                }
                if (sql[i] == '\'') {
                    out[o++] = sql[i++];
                    if (i < len && sql[i] == '\'') { /* '' is a quote inside the literal */
                        out[o++] = sql[i++];
                        continue;
                    }
                    break;
                }
                out[o++] = sql[i++];
            }
        } else if (ch == '"') {
            out[o++] = sql[i++];
            while (i < len && sql[i] != '"') {
                out[o++] = sql[i++];
            }
            if (i < len) {
                out[o++] = sql[i++];
            }
        } else if (ch == '-' && i + 1 < len && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n') {
                out[o++] = sql[i++];
            }
        } else if (ch == '/' && i + 1 < len && sql[i + 1] == '*') {
            const char *end = strstr(sql + i + 2, "*/");
            size_t stop = end != NULL ? (size_t)(end - sql) + 2 : len;

            while (i < stop) {
                out[o++] = sql[i++];
            }
        } else if (ch == '$' &&
                   (i == 0 || !(isalnum((unsigned char)sql[i - 1]) || sql[i - 1] == '_'))) {
            /* $tag$ ... $tag$ (tag may be empty); $1 is a parameter, copied as is. */
            size_t t = i + 1;
            while (t < len && (isalpha((unsigned char)sql[t]) || sql[t] == '_')) {
                t++;
            }
            if (t < len && sql[t] == '$') {
                size_t taglen = t - i + 1;
                const char *end = NULL;
                size_t stop;

                for (size_t k = t + 1; k + taglen <= len; k++) {
                    if (strncmp(sql + k, sql + i, taglen) == 0) {
                        end = sql + k;
                        break;
                    }
                }
                stop = end != NULL ? (size_t)(end - sql) + taglen : len;
                while (i < stop) {
                    out[o++] = sql[i++];
                }
            } else {
                out[o++] = sql[i++];
            }
        } else if (ch == '?') {
            if (++n > CL__PG_MAX_PARAMS) {
                free(out);
                return NULL;
            }
            o += (size_t)snprintf(out + o, cap - o, "$%d", n);
            i++;
        } else {
            out[o++] = sql[i++];
        }
    }
    out[o] = '\0';
    *nparams = n;
    return out;
}

static void pg_clear_values(pg_stmt *s)
{
    for (int i = 0; i < s->nparams; i++) {
        free(s->values[i]);
        s->values[i] = NULL;
    }
}

/*
 * Deallocates the statements the cache evicted. Deferred to the next prepare (which is
 * what evicts one), so that closing a connection does not pay a round trip per cached
 * statement: the server forgets them all when the connection ends.
 */
static void pg_flush_pending(pg_conn *c)
{
    char sql[48];

    for (int i = 0; i < c->npending; i++) {
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", c->pending[i]);
        PQclear(PQexec(c->pg, sql));
    }
    c->npending = 0;
}

static void pg_finalize(void *stmt)
{
    pg_stmt *s = stmt;

    if (s == NULL) {
        return;
    }
    PQclear(s->res);
    pg_clear_values(s);
    free(s->values);
    if (s->conn->npending == CL__PG_PENDING) {
        pg_flush_pending(s->conn);
    }
    memcpy(s->conn->pending[s->conn->npending++], s->name, sizeof(s->name));
    free(s);
}

static cl_status pg_prepare(void *conn, const char *sql, void **stmt, cl_error *err)
{
    pg_conn *c = conn;
    pg_stmt *s = NULL;
    char *text = NULL;
    int nparams = 0;
    PGresult *res = NULL;
    cl_status st;

    if (c->npending > 0 && PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        pg_flush_pending(c);
    }
    text = cl__pg_translate(sql, &nparams);
    if (text == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "cannot translate \"%.64s\"", sql);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL ||
        (nparams > 0 && (s->values = calloc((size_t)nparams, sizeof(char *))) == NULL)) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
        goto out;
    }
    s->conn = c;
    s->nparams = nparams;
    s->row = -1;
    snprintf(s->name, sizeof(s->name), "cl_%u", ++c->next_stmt);
    res = PQprepare(c->pg, s->name, text, 0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        st = pg_fail(c->pg, res, "prepare", err);
        goto out;
    }
    *stmt = s;
    s = NULL;
    st = CL_OK;
out:
    PQclear(res);
    if (s != NULL) {
        free(s->values);
        free(s);
    }
    free(text);
    return st;
}

static cl_status pg_reset(void *stmt, cl_error *err)
{
    pg_stmt *s = stmt;

    (void)err;
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    pg_clear_values(s);
    return CL_OK;
}

static cl_status pg_bind(pg_stmt *s, int idx, char *copy, cl_error *err)
{
    if (idx < 1 || idx > s->nparams) {
        free(copy);
        return cl_error_set(err, CL_INTERNAL, NULL, "parameter %d of %d is out of range", idx,
                            s->nparams);
    }
    free(s->values[idx - 1]);
    s->values[idx - 1] = copy;
    return CL_OK;
}

static cl_status pg_bind_i64(void *stmt, int idx, int64_t v, cl_error *err)
{
    char buf[24];
    char *copy;

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    copy = strdup(buf);
    if (copy == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    return pg_bind(stmt, idx, copy, err);
}

static cl_status pg_bind_text(void *stmt, int idx, const char *s, cl_error *err)
{
    char *copy = strdup(s);

    if (copy == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    return pg_bind(stmt, idx, copy, err);
}

static cl_status pg_bind_null(void *stmt, int idx, cl_error *err)
{
    return pg_bind(stmt, idx, NULL, err);
}

static cl_status pg_step(void *stmt, bool *row, cl_error *err)
{
    pg_stmt *s = stmt;
    ExecStatusType rs;

    if (s->res == NULL) {
        s->res = PQexecPrepared(s->conn->pg, s->name, s->nparams, (const char *const *)s->values,
                                NULL, NULL, 0);
        rs = PQresultStatus(s->res);
        if (s->res == NULL || (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK)) {
            cl_status st = pg_fail(s->conn->pg, s->res, "statement", err);

            PQclear(s->res);
            s->res = NULL;
            return st;
        }
        s->row = -1;
    }
    if (s->row < PQntuples(s->res)) {
        s->row++;
    }
    *row = s->row < PQntuples(s->res);
    return CL_OK;
}

static bool pg_has_value(const pg_stmt *s, int col)
{
    return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res) && col >= 0 &&
           col < PQnfields(s->res);
}

static int64_t pg_col_i64(void *stmt, int col)
{
    pg_stmt *s = stmt;

    if (!pg_has_value(s, col) || PQgetisnull(s->res, s->row, col)) {
        return 0;
    }
    return (int64_t)strtoll(PQgetvalue(s->res, s->row, col), NULL, 10);
}

static const char *pg_col_text(void *stmt, int col)
{
    pg_stmt *s = stmt;

    if (!pg_has_value(s, col) || PQgetisnull(s->res, s->row, col)) {
        return NULL;
    }
    return PQgetvalue(s->res, s->row, col);
}

static bool pg_col_null(void *stmt, int col)
{
    pg_stmt *s = stmt;

    return !pg_has_value(s, col) || PQgetisnull(s->res, s->row, col);
}

static cl_status pg_ping(void *conn, cl_error *err)
{
    /* The empty query is the cheapest round trip the protocol has. */
    return pg_exec(conn, "", err);
}

static bool pg_broken(void *conn)
{
    pg_conn *c = conn;

    return PQstatus(c->pg) != CONNECTION_OK;
}

static int64_t pg_changes(void *stmt)
{
    pg_stmt *s = stmt;
    const char *n = s->res != NULL ? PQcmdTuples(s->res) : "";

    /* Empty for a command that counts no rows (anything but INSERT, UPDATE, DELETE ...). */
    return n[0] != '\0' ? (int64_t)strtoll(n, NULL, 10) : 0;
}

const cl_db_driver cl_db_postgres = {
    .version = CL_DB_DRIVER_VERSION,
    .name = "postgres",
    .dialect = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_i64 = pg_bind_i64,
    .bind_text = pg_bind_text,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .col_i64 = pg_col_i64,
    .col_text = pg_col_text,
    .col_null = pg_col_null,
    .ping = pg_ping,
    .broken = pg_broken,
    .changes = pg_changes,
    .shrink = NULL,
};

/* --- administration ------------------------------------------------------------------ */

/* Appends key='value' (libpq's quoting: backslash before ' and \) to out; false when full. */
static bool conninfo_add(char *out, size_t size, size_t *len, const char *key, const char *value)
{
    size_t n = *len;

    if (n + strlen(key) + 4 >= size) {
        return false;
    }
    n += (size_t)snprintf(out + n, size - n, "%s%s='", n > 0 ? " " : "", key);
    for (const char *p = value; *p != '\0'; p++) {
        if (n + 3 >= size) {
            return false;
        }
        if (*p == '\'' || *p == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *p;
    }
    if (n + 2 >= size) {
        return false;
    }
    out[n++] = '\'';
    out[n] = '\0';
    *len = n;
    return true;
}

cl_status cl_db_pg_target(const char *url, const char *user, const char *application_name,
                          const char *options, char *out, size_t size, cl_error *err)
{
    PQconninfoOption *opts = NULL;
    char *perr = NULL;
    size_t len = 0;
    cl_status st = CL_OK;

    if (url == NULL || out == NULL || size == 0) {
        return cl_error_set(err, CL_INVALID, NULL, "cl_db_pg_target: missing argument");
    }
    opts = PQconninfoParse(url, &perr);
    if (opts == NULL) {
        st = pg_set(err, CL_INVALID, "parse", perr != NULL ? perr : "bad connection URL");
        PQfreemem(perr);
        return st;
    }
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = o->val;

        if (user != NULL && strcmp(o->keyword, "user") == 0) {
            v = user;
        } else if (application_name != NULL && strcmp(o->keyword, "application_name") == 0) {
            v = application_name;
        } else if (options != NULL && strcmp(o->keyword, "options") == 0) {
            v = options;
        }
        if (v == NULL || v[0] == '\0') {
            continue;
        }
        if (!conninfo_add(out, size, &len, o->keyword, v)) {
            st = cl_error_set(err, CL_INVALID, NULL, "connection string is too long");
            break;
        }
    }
    PQconninfoFree(opts);
    return st;
}

static bool module_name_ok(const char *module)
{
    size_t n = module != NULL ? strlen(module) : 0;

    if (n == 0 || n > CL__PG_MAX_MODULE || !(module[0] >= 'a' && module[0] <= 'z')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = module[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
            return false;
        }
    }
    return true;
}

/*
 * Writes tmpl into out[size] with every '@' replaced by module (checked by
 * module_name_ok, so it is a valid unquoted identifier). False when out is too small.
 */
static bool expand(const char *tmpl, const char *module, char *out, size_t size)
{
    size_t n = 0;
    size_t mlen = strlen(module);

    for (const char *p = tmpl; *p != '\0'; p++) {
        if (*p == '@') {
            if (n + mlen >= size) {
                return false;
            }
            memcpy(out + n, module, mlen);
            n += mlen;
        } else {
            if (n + 1 >= size) {
                return false;
            }
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return true;
}

/* Runs sql on an admin connection; the one place provisioning reports a failure. */
static cl_status admin_exec(void *conn, const char *sql, cl_error *err)
{
    cl_status st = pg_exec(conn, sql, err);

    if (st != CL_OK) {
        char msg[sizeof(err->message)];

        cl_strlcpy(msg, err->message, sizeof(msg));
        cl_error_set(err, st, NULL, "provisioning: %s", msg);
    }
    return st;
}

cl_status cl_db_pg_provision(const char *admin_target, const char *module, cl_error *err)
{
    char sql[4096];
    void *conn = NULL;
    cl_status st;

    if (!module_name_ok(module)) {
        return cl_error_set(err, CL_INVALID, "module", "bad module name for PostgreSQL");
    }
    st = pg_connect(admin_target, &conn, err);
    if (st != CL_OK || conn == NULL) {
        return st;
    }
    /*
     * Roles belong to the whole server, so two databases (or two processes) may create
     * them at the same moment: the loser of that race gets duplicate_object or a unique
     * violation, which the blocks below take as "already there". Everything else is
     * IF NOT EXISTS or a GRANT/REVOKE, which are idempotent.
     */
    if (!expand("DO $cl$ BEGIN "
                "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cleave_@_owner') THEN "
                "BEGIN CREATE ROLE cleave_@_owner NOLOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; END IF; "
                "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cleave_@') THEN "
                "BEGIN CREATE ROLE cleave_@ LOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; END IF; "
                "END $cl$",
                module, sql, sizeof(sql))) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "provisioning statement too long");
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        st = admin_exec(conn, sql, err);
        /* "tuple concurrently updated" is the other face of the same race: try again. */
        if (st == CL_OK || attempt == 5 || strstr(err->message, "concurrently") == NULL) {
            break;
        }
    }
    if (st != CL_OK) {
        goto out;
    }
    if (!expand("CREATE SCHEMA IF NOT EXISTS @ AUTHORIZATION cleave_@_owner;"
                "ALTER SCHEMA @ OWNER TO cleave_@_owner;"
                "REVOKE ALL ON SCHEMA @ FROM PUBLIC;"
                "GRANT USAGE ON SCHEMA @ TO cleave_@;"
                "ALTER DEFAULT PRIVILEGES FOR ROLE cleave_@_owner IN SCHEMA @ "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cleave_@;"
                "ALTER DEFAULT PRIVILEGES FOR ROLE cleave_@_owner IN SCHEMA @ "
                "GRANT USAGE, SELECT ON SEQUENCES TO cleave_@;"
                "REVOKE ALL ON SCHEMA public FROM PUBLIC;"
                "DO $cl$ BEGIN "
                "EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());"
                "EXECUTE format('GRANT CONNECT ON DATABASE %I TO cleave_@', current_database());"
                "END $cl$;"
                "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
                module, sql, sizeof(sql))) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "provisioning statement too long");
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        st = admin_exec(conn, sql, err);
        if (st == CL_OK || attempt == 5 || strstr(err->message, "concurrently") == NULL) {
            break;
        }
    }
out:
    pg_disconnect(conn);
    return st;
}

cl_status cl_db_pg_seal_migrations(const char *admin_target, const char *module, cl_error *err)
{
    char sql[512];
    void *conn = NULL;
    cl_status st;

    if (!module_name_ok(module)) {
        return cl_error_set(err, CL_INVALID, "module", "bad module name for PostgreSQL");
    }
    st = pg_connect(admin_target, &conn, err);
    if (st != CL_OK || conn == NULL) {
        return st;
    }
    if (!expand("REVOKE ALL ON @.cl_migrations FROM cleave_@;"
                "GRANT SELECT ON @.cl_migrations TO cleave_@",
                module, sql, sizeof(sql))) {
        st = cl_error_set(err, CL_INTERNAL, NULL, "provisioning statement too long");
        goto out;
    }
    st = admin_exec(conn, sql, err);
out:
    pg_disconnect(conn);
    return st;
}
