/* Test support: one module on a fresh database, in process or as a service (test_module.h). */
#include "test_module.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleave/extension.h"
#include "cleave/migrate.h"

/* --- a fresh database for child processes ------------------------------------------ */

int test_db_env_open(test_db_env *e, int replica)
{
    char url[512];

    memset(e, 0, sizeof(*e));
    if (!pgtest_enabled()) {
        return 0;
    }
    if (pgtest_load(&e->pg) != 0 || pgtest_db_create(&e->pg) != 0) {
        return -1;
    }
    pgtest_url(e->pg.primary, e->pg.db, e->admin_url, sizeof(e->admin_url));
    /* The user in the URL does not matter: each module connects as its own app role. */
    snprintf(e->url_env, sizeof(e->url_env), "CLEAVE_DATABASE_URL=%s", e->admin_url);
    snprintf(e->admin_env, sizeof(e->admin_env), "CLEAVE_DATABASE_ADMIN_URL=%s", e->admin_url);
    if (replica && e->pg.replica[0] != '\0') {
        pgtest_url(e->pg.replica, e->pg.db, url, sizeof(url));
        snprintf(e->replica_env, sizeof(e->replica_env), "CLEAVE_DATABASE_REPLICA_URL=%s", url);
    }
    return 0;
}

int test_db_env_add(const test_db_env *e, char **env, int at, int admin)
{
    if (e->url_env[0] != '\0') {
        env[at++] = (char *)e->url_env;
    }
    if (e->replica_env[0] != '\0') {
        env[at++] = (char *)e->replica_env;
    }
    if (admin && e->admin_env[0] != '\0') {
        env[at++] = (char *)e->admin_env;
    }
    env[at] = NULL;
    return at;
}

int test_db_env_close(test_db_env *e)
{
    e->admin_url[0] = '\0';
    return pgtest_db_drop(&e->pg);
}

cl_status test_module_db_open(const char *data_dir, const char *admin_url, const char *module,
                              cl_db **db, cl_error *err)
{
    char target[2048], options[128];

    if (admin_url == NULL || admin_url[0] == '\0') {
        snprintf(target, sizeof(target), "%s/%s.db", data_dir, module);
        return cl_db_open(&cl_db_sqlite, module, target, NULL, db, err);
    }
    snprintf(options, sizeof(options), "-c search_path=%s", module);
    if (cl_db_pg_target(admin_url, NULL, "cleave-test", options, target, sizeof(target), err) !=
        CL_OK) {
        return err->status;
    }
    return cl_db_open(&cl_db_postgres, module, target, NULL, db, err);
}

/* --- the module in process ---------------------------------------------------------- */

/* Removes dir and the files in it (the database, its WAL and shared-memory files). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL) {
        return;
    }
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* The module in a fresh PostgreSQL database: migrated as its owner, used as its app role. */
static cl_status open_postgres(test_local *t, const cl_db_options *dbopt, cl_error *err)
{
    const char *name = t->module->name;
    char replica[512], target[2048], role[96], app[96], app_replica[112], options[128];

    if (pgtest_load(&t->pg) != 0) {
        return cl_error_set(err, CL_UNAVAILABLE, NULL, "no PostgreSQL for the test");
    }
    /* Migrated as pgtest_migrate does, the bus's tables included (a copy of one that was). */
    if (pgtest_db_create_migrated(&t->pg, name, err) != CL_OK) {
        return err->status;
    }
    snprintf(role, sizeof(role), "cleave_%s", name);
    snprintf(app, sizeof(app), "cleave-%s", name);
    snprintf(app_replica, sizeof(app_replica), "cleave-%s-replica", name);
    snprintf(options, sizeof(options), "-c search_path=%s", name);
    pgtest_url(t->pg.primary, t->pg.db, t->admin_url, sizeof(t->admin_url));
    if (cl_db_pg_target(t->admin_url, role, app, options, target, sizeof(target), err) != CL_OK ||
        cl_db_open(&cl_db_postgres, name, target, dbopt, &t->db, err) != CL_OK) {
        return err->status;
    }
    if (t->pg.replica[0] != '\0') {
        pgtest_url(t->pg.replica, t->pg.db, replica, sizeof(replica));
        if (cl_db_pg_target(replica, role, app_replica, options, target, sizeof(target), err) !=
                CL_OK ||
            cl_db_attach_replica(t->db, target, NULL, err) != CL_OK) {
            return err->status;
        }
    }
    /* The schema was written through another pool: read it from the primary for now. */
    cl_db_mark_written(t->db);
    return CL_OK;
}

static cl_status open_sqlite(test_local *t, const cl_db_options *dbopt, cl_error *err)
{
    const char *name = t->module->name;
    char path[512];
    int applied = 0;

    snprintf(path, sizeof(path), "%s/%s.db", t->dir, name);
    if (cl_db_open(&cl_db_sqlite, name, path, dbopt, &t->db, err) != CL_OK ||
        cl_migrate_apply(t->db, CLEAVE_SOURCE_DIR "/migrations", name, &applied, err) != CL_OK ||
        cl_bus_schema_apply(t->db, err) != CL_OK) {
        return err->status;
    }
    return CL_OK;
}

int test_local_open(test_local *t, const cl_module *m, const test_local_options *opt)
{
    static const test_local_options defaults = {0};
    const char *tmp = getenv("TMPDIR");
    const cl_settings *owners[] = {&t->settings, NULL};
    char *const no_env[] = {NULL};
    /* As the host: a few connections, since runners, relays and callers share them. */
    cl_db_options dbopt = {.acquire_timeout_ms = 10000};
    cl_module_env env = {0};
    cl_error err = {0};

    memset(t, 0, sizeof(*t));
    t->module = m;
    if (opt == NULL) {
        opt = &defaults;
    }
    dbopt.max_conns = opt->max_conns;
    snprintf(t->dir, sizeof(t->dir), "%s/cleave-%s-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", m->name);
    if (mkdtemp(t->dir) == NULL) {
        perror("mkdtemp");
        t->dir[0] = '\0';
        return -1;
    }
    /*
     * Only opt->env is read (not this process's environment), so a CLEAVE_NATS_URL set
     * around the test cannot turn the in-process bus into a networked one. The module's
     * settings are declared by its interface (m->api).
     */
    t->settings = (cl_settings){m->name, true, NULL, 0};
    if (m->api != NULL) {
        t->settings.list = m->api->settings;
        t->settings.count = m->api->nsettings;
    }
    if (cl_config_load(NULL, opt->env != NULL ? opt->env : no_env, owners, &t->cfg, &err) !=
        CL_OK) {
        goto fail;
    }
    if ((pgtest_enabled() ? open_postgres(t, opt->max_conns > 0 ? &dbopt : NULL, &err)
                          : open_sqlite(t, opt->max_conns > 0 ? &dbopt : NULL, &err)) != CL_OK) {
        goto fail;
    }
    /* As a host's generated wiring does: NATS is an extension (cleave/extension.h). */
    if (opt->bus && (cl_extension_register(&cl_nats_extension, &err) != CL_OK ||
                     cl_bus_new(t->cfg, &t->bus, &err) != CL_OK ||
                     cl_bus_add_module(t->bus, m->name, t->db, &err) != CL_OK)) {
        goto fail;
    }
    env.config = t->cfg;
    env.db = t->db;
    env.bus = t->bus;
    env.module = opt->module;
    env.serving = opt->serving != 0;
    /* The host's order: the module subscribes and registers its kinds, then the bus runs. */
    t->handle.ops = m->ops;
    if (m->create(&env, &t->handle.self, &err) != CL_OK) {
        goto fail;
    }
    if (t->bus != NULL && cl_bus_start(t->bus, &err) != CL_OK) {
        goto fail;
    }
    if (opt->start) {
        if (m->start(t->handle.self, &err) != CL_OK) {
            goto fail;
        }
        t->started = 1;
    }
    return 0;
fail:
    fprintf(stderr, "local %s: %s: %s (%s)\n", m->name, cl_status_name(err.status), err.message,
            err.field);
    test_local_close(t);
    return -1;
}

void test_local_close(test_local *t)
{
    if (t->started) {
        t->module->stop(t->handle.self);
        t->started = 0;
    }
    /* The bus first: its runners use the database and the instance until they stop. */
    cl_bus_free(t->bus);
    t->bus = NULL;
    if (t->module != NULL) {
        t->module->destroy(t->handle.self);
    }
    t->handle.self = NULL;
    cl_db_close(t->db);
    t->db = NULL;
    free(t->rows_sql);
    t->rows_sql = NULL;
    cl_config_free(t->cfg);
    t->cfg = NULL;
    if (t->pg.db[0] != '\0') {
        pgtest_db_drop(&t->pg);
    }
    t->admin_url[0] = '\0';
    if (t->dir[0] != '\0') {
        remove_dir(t->dir);
        t->dir[0] = '\0';
    }
}

/*
 * Builds t->rows_sql: one statement that sums count(*) over every table of t's database.
 * One statement kept for t's life, because cl_db_prepare caches statements by the text's
 * address: a count built per table in one buffer would run the first table's count for
 * all of them. Returns 0, or -1 when the tables cannot be listed or memory runs out.
 */
static int rows_sql_build(test_local *t, cl_db_conn *conn)
{
    static const char sqlite_tables[] =
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'";
    static const char pg_tables[] = "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = current_schema()";
    /* Each table adds at most this much: its name (< 128) quoted inside the subquery. */
    const size_t per_table = 128 + 40;
    const size_t max_tables = 64;
    size_t cap = sizeof("SELECT 0") + max_tables * per_table;
    size_t len;
    char *sql;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;
    const char *name;
    size_t n = 0;

    if (cl_db_prepare(conn, t->pg.db[0] != '\0' ? pg_tables : sqlite_tables, &st, &err) != CL_OK) {
        return -1;
    }
    sql = malloc(cap);
    if (sql == NULL) {
        (void)cl_stmt_drain(st, NULL, &err);
        return -1;
    }
    len = (size_t)snprintf(sql, cap, "SELECT 0");
    for (;;) {
        if (cl_stmt_step(st, &row, &err) != CL_OK) {
            free(sql);
            return -1;
        }
        if (!row) {
            break;
        }
        name = cl_stmt_text(st, 0);
        if (n == max_tables || name == NULL || strlen(name) >= 128 || strchr(name, '"') != NULL) {
            (void)cl_stmt_drain(st, NULL, &err);
            free(sql);
            return -1;
        }
        len += (size_t)snprintf(sql + len, cap - len, " + (SELECT count(*) FROM \"%s\")", name);
        n++;
    }
    t->rows_sql = sql;
    return 0;
}

long test_local_rows(test_local *t)
{
    cl_db_conn *conn = NULL;
    cl_stmt *st;
    cl_error err = {0};
    bool row = false;
    long total = -1;

    if (cl_db_acquire(t->db, NULL, &conn, &err) != CL_OK) {
        return -1;
    }
    if (t->rows_sql == NULL && rows_sql_build(t, conn) != 0) {
        goto out;
    }
    if (cl_db_prepare(conn, t->rows_sql, &st, &err) == CL_OK &&
        cl_stmt_step(st, &row, &err) == CL_OK && row) {
        total = (long)cl_stmt_i64(st, 0);
        (void)cl_stmt_drain(st, NULL, &err);
    }
out:
    cl_db_release(conn);
    return total;
}

static struct {
    const cl_handle *(*setup)(void);
    void (*teardown)(void);
    int min_version;
} contract;

void test_contract_bind(const cl_handle *(*setup)(void), void (*teardown)(void), int min_version)
{
    contract.setup = setup;
    contract.teardown = teardown;
    contract.min_version = min_version;
}

int test_contract_setup(const cl_handle **module)
{
    /* Every operations table starts with its version (cleave/module.h). */
    *module = contract.setup();
    return *module != NULL && *(const int *)(*module)->ops >= contract.min_version ? 0 : -1;
}

int test_contract_teardown(void **state)
{
    (void)state;
    contract.teardown();
    return 0;
}

cl_ctx test_contract_ctx(void)
{
    cl_ctx ctx;

    cl_ctx_init(&ctx, TEST_CONTRACT_CALL_MS);
    ctx.read_primary = 1;
    return ctx;
}

/* The state of test_twins_run between its setup and teardown (the runners take no arg). */
static struct {
    const cl_module *module;
    const test_local_options *opt;
    test_local twin[2];
    int active;     /* the instance the suite runs against this pass */
    long idle_rows; /* the idle instance's rows when the test started */
    int failures;   /* idle databases found touched */
} twins;

static const cl_handle *twins_setup(void)
{
    int idle = 1 - twins.active;

    if (test_local_open(&twins.twin[0], twins.module, twins.opt) != 0) {
        return NULL;
    }
    if (test_local_open(&twins.twin[1], twins.module, twins.opt) != 0) {
        test_local_close(&twins.twin[0]);
        return NULL;
    }
    twins.idle_rows = test_local_rows(&twins.twin[idle]);
    return &twins.twin[twins.active].handle;
}

static void twins_teardown(void)
{
    int idle = 1 - twins.active;
    long rows = test_local_rows(&twins.twin[idle]);

    if (rows < 0 || rows != twins.idle_rows) {
        fprintf(stderr,
                "two instances of %s: the idle one's database went from %ld to %ld rows "
                "while the suite ran against the other\n",
                twins.module->name, twins.idle_rows, rows);
        twins.failures++;
    }
    test_local_close(&twins.twin[1]);
    test_local_close(&twins.twin[0]);
}

int test_twins_run(const char *name, const cl_module *m, const test_local_options *opt,
                   test_contract_run_fn run)
{
    char pass_name[128];
    int failed = 0;

    twins.module = m;
    twins.opt = opt;
    twins.failures = 0;
    for (twins.active = 0; twins.active < 2; twins.active++) {
        snprintf(pass_name, sizeof(pass_name), "%s (instance %c of 2)", name,
                 twins.active == 0 ? 'A' : 'B');
        failed += run(pass_name, twins_setup, twins_teardown);
    }
    return failed + twins.failures;
}

/* --- the module as a service --------------------------------------------------------- */

#define SERVICE_ENV_MAX 32

/* The variables every run of the service gets, then extra; returns the end of env. */
static int service_env(test_service *s, char **env, char *data_env, char *const *extra, int admin)
{
    static char migrations_env[] = "CLEAVE_MIGRATIONS_DIR=" CLEAVE_SOURCE_DIR "/migrations";
    int n = 0;

    env[n++] = data_env;
    env[n++] = "CLEAVE_LISTEN=127.0.0.1:0";
    env[n++] = "CLEAVE_DEV_SERVICE_TOKEN=" TEST_SERVICE_TOKEN;
    env[n++] = migrations_env;
    /* Its events' subscribers (or publishers) run elsewhere: a real broker carries them. */
    env[n++] = s->nats.env;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < SERVICE_ENV_MAX - 5; i++) {
        env[n++] = extra[i];
    }
    return test_db_env_add(&s->db, env, n, admin);
}

/* The value of key ("CLEAVE_...") in env ("K=V" strings, NULL-terminated), or NULL. */
static const char *env_value(char *const *env, const char *key)
{
    size_t len = strlen(key);

    for (int i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], key, len) == 0 && env[i][len] == '=') {
            return env[i] + len + 1;
        }
    }
    return NULL;
}

int test_service_start(test_service *s, const cl_module_api *api, char *const *env)
{
    char data_env[512], name[96], out[4096];
    char *argv[] = {name, "serve", NULL};
    char *margv[] = {name, "migrate", NULL};
    char *senv[SERVICE_ENV_MAX];
    cl_rpc_options opt = {.dev_token = TEST_SERVICE_TOKEN};
    cl_error err = {0};
    int port;

    memset(s, 0, sizeof(*s));
    s->api = api;
    snprintf(name, sizeof(name), "cleave-%s", api->name);
    if (test_tmpdir(s->dir, sizeof(s->dir)) != 0) {
        s->dir[0] = '\0';
        return -1;
    }
    snprintf(data_env, sizeof(data_env), "CLEAVE_DATA_DIR=%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/%s.log", s->dir, name);
    snprintf(s->bin, sizeof(s->bin), "%s/%s", CLEAVE_BIN_DIR, name);
    if (test_db_env_open(&s->db, 1) != 0 || test_nats_open(&s->nats, s->dir) != 0) {
        return -1;
    }
    /* On PostgreSQL an admin migrates; the service itself runs as its app role. */
    if (s->db.admin_url[0] != '\0') {
        service_env(s, senv, data_env, env, 1);
        if (test_run(s->bin, margv, senv, out, sizeof(out)) != 0) {
            fprintf(stderr, "%s migrate failed:\n%s\n", name, out);
            return -1;
        }
        /* The schema must have reached the replica before the service reads there. */
        if (pgtest_wait_replica(&s->db.pg, 30000) != 0) {
            return -1;
        }
    }
    service_env(s, senv, data_env, env, 0);
    if (test_proc_start(&s->proc, s->bin, argv, senv, s->log) != 0) {
        return -1;
    }
    port = test_proc_wait_port(&s->proc, 30000);
    if (port < 0) {
        fprintf(stderr, "%s did not start; see %s\n", name, s->log);
        return -1;
    }
    /* A service given CLEAVE_TLS_CERT serves mutual TLS only: the client uses env's
     * client certificate and CA, as a host given the same settings would. */
    snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d",
             env_value(env, "CLEAVE_TLS_CERT") != NULL ? "https" : "http", port);
    opt.tls_cert = env_value(env, "CLEAVE_TLS_CLIENT_CERT");
    opt.tls_key = env_value(env, "CLEAVE_TLS_CLIENT_KEY");
    opt.tls_ca = env_value(env, "CLEAVE_TLS_CA");
    if (cl_rpc_client_new(api->name, s->url, &opt, &s->client, &err) != CL_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    s->handle = (cl_handle){api->remote_ops, s->client};
    return 0;
}

int test_service_stop(test_service *s)
{
    int status = 0;

    /*
     * The client first: its idle keep-alive connection would hold the service's drain
     * until the service's keep-alive timeout closed it (ADR 0032).
     */
    cl_rpc_client_free(s->client);
    s->client = NULL;
    if (s->proc.pid > 0) {
        status = test_proc_stop(&s->proc, SIGTERM);
    }
    if (status != 0) {
        fprintf(stderr, "%s exited with %d; log kept in %s\n", s->bin, status, s->dir);
    } else if (s->dir[0] != '\0') {
        test_rmrf(s->dir);
    }
    s->dir[0] = '\0';
    s->handle = (cl_handle){NULL, NULL};
    test_db_env_close(&s->db);
    test_nats_close(&s->nats);
    return status;
}
