/* Wiring: configuration, a database per module, migrations, module lifecycle, routes. */
#include "host.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "cleave/cache.h"
#include "cleave/extension.h"
#include "cleave/log.h"
#include "cleave/trace.h"
#include "cleave/util.h"
#include "cleave/migrate.h"

extern char **environ;

/*
 * The owners of the keys the configuration knows beyond the platform's: every module of
 * the deployment, so that each binary validates a shared file alike, and the test hooks
 * in a test build. h->owners is NULL-terminated and borrowed by h->config.
 */
static void config_owners(host *h)
{
    size_t n = 0;

    for (size_t i = 0; host_deployment[i] != NULL && i < HOST_MAX_MODULES; i++) {
        const cl_module_api *api = host_deployment[i];

        h->settings[i] = (cl_settings){api->name, true, api->settings, api->nsettings};
        h->owners[n++] = &h->settings[i];
    }
    if (host_test_hooks != NULL) {
        h->owners[n++] = host_test_hooks;
    }
    h->owners[n] = NULL;
}

/* mkdir -p for the data directory: a fresh checkout has none. */
static cl_status make_dirs(const char *path, cl_error *err)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf)) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_DATA_DIR", "bad data directory '%s'", path);
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                return cl_error_set(err, CL_UNAVAILABLE, "CLEAVE_DATA_DIR",
                                    "cannot create data directory %s: %s", buf, strerror(errno));
            }
            buf[i] = saved;
        }
    }
    return CL_OK;
}

/*
 * Rewrites err as "<prefix>: <its message><suffix>" with field (NULL keeps the field);
 * copies first, because err is both the source and the destination.
 */
static cl_status error_wrap(cl_error *err, const char *field, const char *prefix,
                            const char *suffix)
{
    char msg[sizeof(err->message)];
    char fld[sizeof(err->field)];

    cl_strlcpy(msg, err->message, sizeof(msg));
    cl_strlcpy(fld, field != NULL ? field : err->field, sizeof(fld));
    return cl_error_set(err, err->status, fld, "%s%s%s%s", prefix, prefix[0] != '\0' ? ": " : "",
                        msg, suffix);
}

/* The module's own key when set, else the global one (NULL when neither is). */
static const char *module_or_global(const host *h, const char *name, const char *suffix,
                                    const char *global)
{
    const char *v = cl_config_module(h->config, name, suffix);

    return v != NULL ? v : cl_config_get(h->config, global);
}

static cl_db_options pool_options(const host *h)
{
    cl_db_options opt = {0};

    opt.min_conns = (int)cl_config_int(h->config, "CLEAVE_DATABASE_POOL_MIN");
    opt.max_conns = (int)cl_config_int(h->config, "CLEAVE_DATABASE_POOL_MAX");
    opt.acquire_timeout_ms = cl_config_int(h->config, "CLEAVE_DATABASE_ACQUIRE_TIMEOUT_MS");
    if (opt.min_conns > opt.max_conns) {
        opt.min_conns = opt.max_conns;
    }
    return opt;
}

/*
 * A module on PostgreSQL (ADR 0011): its own schema, used through its own app role
 * cleave_<module>, with its own application_name so that the server shows who is who.
 */
static cl_status open_postgres(host *h, host_module *m, const char *url, const host_options *o,
                               cl_error *err)
{
    const char *name = m->binding->api->name;
    const char *replica = module_or_global(h, name, "REPLICA_URL", "CLEAVE_DATABASE_REPLICA_URL");
    cl_db_options opt = pool_options(h);
    char target[2048], role[96], app[96], options[256];
    const void *server = NULL;
    cl_status st;

    /* The PostgreSQL driver is an extension (cleave_postgres): a build may not have it. */
    st = cl_extension_require("db", "postgres", "CLEAVE_DATABASE_URL", &server, err);
    if (st != CL_OK) {
        return error_wrap(err, NULL, name, "");
    }
    m->server = server;
    m->postgres = true;
    m->admin_url = o->admin_url != NULL ? o->admin_url
                                        : module_or_global(h, name, "DATABASE_ADMIN_URL",
                                                           "CLEAVE_DATABASE_ADMIN_URL");
    if (o->provision && m->admin_url != NULL) {
        st = m->server->target(m->admin_url, NULL, "cleave-admin", NULL, target, sizeof(target),
                               err);
        if (st == CL_OK) {
            st = m->server->provision(target, name, err);
        }
        if (st != CL_OK) {
            return error_wrap(err, "CLEAVE_DATABASE_ADMIN_URL", name, "");
        }
    }
    snprintf(role, sizeof(role), "cleave_%s", name);
    snprintf(app, sizeof(app), "cleave-%s", name);
    /* No statement outlives the request that runs it. */
    snprintf(options, sizeof(options), "-c search_path=%s -c statement_timeout=%lld", name,
             (long long)cl_config_int(h->config, "CLEAVE_REQUEST_TIMEOUT_MS"));
    st = m->server->target(url, role, app, options, target, sizeof(target), err);
    if (st == CL_OK) {
        st = cl_db_open(m->server->driver, name, target, &opt, &m->db, err);
    }
    if (st != CL_OK) {
        return error_wrap(err, "CLEAVE_DATABASE_URL", name, "");
    }
    if (replica != NULL) {
        snprintf(app, sizeof(app), "cleave-%s-replica", name);
        st = m->server->target(replica, role, app, options, target, sizeof(target), err);
        if (st == CL_OK) {
            st = cl_db_attach_replica(m->db, target, &opt, err);
        }
        if (st != CL_OK) {
            return error_wrap(err, "CLEAVE_DATABASE_REPLICA_URL", name, "");
        }
    }
    return CL_OK;
}

static cl_status open_local(host *h, host_module *m, const host_options *o, cl_error *err)
{
    const char *name = m->binding->api->name;
    const char *url = module_or_global(h, name, "DATABASE_URL", "CLEAVE_DATABASE_URL");
    cl_db_options opt = pool_options(h);
    char path[4096];
    cl_status st;

    m->bound.ops = m->binding->local->ops;
    if (o->no_db) {
        return CL_OK;
    }
    if (url != NULL) {
        return open_postgres(h, m, url, o, err);
    }
    /* No shared database: each module gets a file of its own (ADR 0003). */
    snprintf(path, sizeof(path), "%s/%s.db", h->data_dir, name);
    st = cl_db_open(&cl_db_sqlite, name, path, &opt, &m->db, err);
    if (st != CL_OK) {
        return st;
    }
    return CL_OK;
}

/*
 * A remote-call setting for module name: CLEAVE_<MODULE>_<suffix> when set, else the
 * platform's CLEAVE_RPC_<suffix> (both validated as integers at load).
 */
static int64_t rpc_setting(host *h, const char *name, const char *suffix)
{
    const char *v = cl_config_module(h->config, name, suffix);
    char key[96];

    if (v != NULL) {
        return strtoll(v, NULL, 10);
    }
    snprintf(key, sizeof(key), "CLEAVE_RPC_%s", suffix);
    return cl_config_int(h->config, key);
}

/*
 * How this process proves itself to another: its client credentials when it has them,
 * else the development mode's static token (ADR 0030), else nothing.
 */
static void set_credential(host *h, cl_rpc_options *opt)
{
    if (h->creds != NULL) {
        opt->credential = host_creds_token;
        opt->credential_arg = h->creds;
    } else {
        opt->dev_token = cl_config_get(h->config, "CLEAVE_DEV_SERVICE_TOKEN");
    }
}

/*
 * The token issuer: a module bound here (local or remote), or else the deployment's issuer
 * at its URL, which a service binary reaches for its keys and its tokens only (public
 * operations). Without a URL there is none (host_open_auth says whether that may serve).
 */
static cl_status open_issuer(host *h, cl_error *err)
{
    const cl_module_api *api = NULL;
    const char *url;
    cl_rpc_options opt = {0};
    char key[96];

    for (int i = 0; i < h->nmodules; i++) {
        if (h->modules[i].binding->api->token_keys != NULL) {
            h->issuer_api = h->modules[i].binding->api;
            h->issuer = &h->modules[i].handle;
        }
    }
    for (size_t i = 0; h->issuer_api == NULL && host_deployment[i] != NULL; i++) {
        if (host_deployment[i]->token_keys != NULL) {
            api = host_deployment[i];
        }
    }
    if (api == NULL) {
        goto out;
    }
    url = cl_config_module(h->config, api->name, "URL");
    if (url == NULL) {
        goto out;
    }
    set_credential(h, &opt);
    snprintf(key, sizeof(key), "CLEAVE_%s_URL", api->name);
    for (char *p = key; *p != '\0'; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
    if (cl_rpc_client_new(api->name, url, &opt, &h->issuer_remote, err) != CL_OK) {
        return error_wrap(err, key, key, "");
    }
    h->issuer_handle = (cl_handle){api->remote_ops, h->issuer_remote};
    h->issuer_api = api;
    h->issuer = &h->issuer_handle;
out:
    if (h->creds != NULL) {
        host_creds_set_issuer(h->creds, h->issuer_api, h->issuer);
    }
    return CL_OK;
}

/*
 * The handles every caller in this process gets (host_module.callers, .gateway): one per
 * calling module and one for the gateway, so that cleave_module_calls_total says who
 * calls whom. They point at the callee's handle, whose instance is set later, at create.
 */
static void wire_callers(host *h)
{
    for (int j = 0; j < h->nmodules; j++) {
        host_module *callee = &h->modules[j];
        const char *binding = callee->binding->local != NULL ? "local" : "remote";

        callee->owner = h;
        callee->from_gateway = (cl_caller){CL_CALLER_GATEWAY, binding, &callee->handle};
        callee->gateway = (cl_handle){callee->binding->caller_ops, &callee->from_gateway};
        for (int i = 0; i < h->nmodules; i++) {
            callee->from[i] =
                (cl_caller){h->modules[i].binding->api->name, binding, &callee->handle};
            callee->callers[i] = (cl_handle){callee->binding->caller_ops, &callee->from[i]};
        }
    }
}

/* A module left out of this build is reached through its remote binding (ADR 0010). */
static cl_status open_remote(host *h, host_module *m, cl_error *err)
{
    const char *name = m->binding->api->name;
    const char *url = cl_config_module(h->config, name, "URL");
    const char *timeout;
    cl_rpc_options opt = {0};
    char key[96];
    cl_status st;

    snprintf(key, sizeof(key), "CLEAVE_%s_URL", name);
    for (char *p = key; *p != '\0'; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
    if (url == NULL) {
        return cl_error_set(err, CL_INVALID, key,
                            "%s is not compiled into %s (CLEAVE_EXTRACT): set %s to the URL of "
                            "its service (cleave-%s)",
                            name, host_binary_name, key, name);
    }
    set_credential(h, &opt);
    timeout = cl_config_module(h->config, name, "TIMEOUT_MS");
    /* Validated as an integer when the configuration was loaded. */
    opt.default_timeout_ms = timeout != NULL ? strtoll(timeout, NULL, 10) : 0;
    opt.breaker.failure_pct = (int)rpc_setting(h, name, "BREAKER_FAILURE_PCT");
    opt.breaker.min_calls = (int)rpc_setting(h, name, "BREAKER_MIN_CALLS");
    opt.breaker.window_ms = rpc_setting(h, name, "BREAKER_WINDOW_MS");
    opt.breaker.open_ms = rpc_setting(h, name, "BREAKER_OPEN_MS");
    opt.retry_max_attempts = (int)rpc_setting(h, name, "RETRY_MAX_ATTEMPTS");
    opt.retry_backoff_ms = cl_config_int(h->config, "CLEAVE_RPC_RETRY_BACKOFF_MS");
    opt.retry_backoff_max_ms = cl_config_int(h->config, "CLEAVE_RPC_RETRY_BACKOFF_MAX_MS");
    opt.retry_budget_pct = (int)rpc_setting(h, name, "RETRY_BUDGET_PCT");
    /* No budget is -1 to the client, whose 0 means its default. */
    opt.retry_budget_pct = opt.retry_budget_pct == 0 ? -1 : opt.retry_budget_pct;
    /* The stale fallback (ADR 0033); 0 entries turns it off, which is -1 to the client. */
    opt.stale_max_entries = (int)cl_config_int(h->config, "CLEAVE_RPC_STALE_MAX_ENTRIES");
    opt.stale_max_entries = opt.stale_max_entries == 0 ? -1 : opt.stale_max_entries;
    opt.stale_max_bytes = cl_config_int(h->config, "CLEAVE_RPC_STALE_MAX_BYTES");
    opt.stale_max_age_ms = cl_config_int(h->config, "CLEAVE_RPC_STALE_MAX_AGE_S") * 1000;
    /* Known to a test build only (tests/hooks): a production build refuses the key. */
    opt.fault = cl_config_get(h->config, "CLEAVE_TEST_RPC_FAULT");
    opt.tls_cert = cl_config_get(h->config, "CLEAVE_TLS_CLIENT_CERT");
    opt.tls_key = cl_config_get(h->config, "CLEAVE_TLS_CLIENT_KEY");
    opt.tls_ca = cl_config_get(h->config, "CLEAVE_TLS_CA");
    st = cl_rpc_client_new(name, url, &opt, &m->remote, err);
    if (st != CL_OK) {
        return error_wrap(err, key, key, "");
    }
    m->bound = (cl_handle){m->binding->api->remote_ops, m->remote};
    return CL_OK;
}

/* The shared level's word that scope's cached answers changed on some host: drop them here. */
static void cache_invalidated(void *arg, const char *scope)
{
    host *h = arg;

    for (int i = 0; i < h->nmodules; i++) {
        if (h->modules[i].cached != NULL && strcmp(h->modules[i].binding->api->name, scope) == 0) {
            cl_cached_invalidate(h->modules[i].cached);
        }
    }
}

/*
 * The read cache (ADR 0042): a caching decorator in front of every module that declares
 * cached operations, local or remote alike, which its callers (REST routes, GraphQL,
 * other modules, the RPC endpoint) then use instead of its binding; and, with
 * CLEAVE_REDIS_URL, the shared level behind them all. The decorators exist before the
 * shared level's subscriber thread starts, which only ever clears them.
 */
static cl_status open_caches(host *h, cl_error *err)
{
    const char *url = cl_config_get(h->config, "CLEAVE_REDIS_URL");
    cl_cached_options opt = {0};
    const void *server = NULL;
    cl_status st = CL_OK;

    opt.ttl_ms = cl_config_int(h->config, "CLEAVE_CACHE_TTL_MS");
    opt.max_entries = (int)cl_config_int(h->config, "CLEAVE_CACHE_MAX_ENTRIES");
    opt.max_bytes = (size_t)cl_config_int(h->config, "CLEAVE_CACHE_MAX_BYTES");
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];

        m->handle = m->bound;
        if (m->binding->api->cached_ops == NULL || opt.ttl_ms <= 0) {
            continue;
        }
        st = cl_cached_new(m->binding->api, &m->bound, &opt, &m->cached, err);
        if (st != CL_OK) {
            return st;
        }
        m->handle = (cl_handle){m->binding->api->cached_ops, m->cached};
    }
    if (url == NULL || opt.ttl_ms <= 0) {
        return CL_OK;
    }
    /* The Redis client is an extension (cleave_redis): a build may not have it. */
    st = cl_extension_require("cache", "redis", "CLEAVE_REDIS_URL", &server, err);
    if (st == CL_OK) {
        h->cache_server = server;
        st = h->cache_server->open(url, cache_invalidated, h, &h->cache_shared, err);
    }
    if (st != CL_OK) {
        h->cache_server = NULL;
        return st;
    }
    for (int i = 0; i < h->nmodules; i++) {
        if (h->modules[i].cached != NULL) {
            cl_cached_share(h->modules[i].cached, h->cache_server->ops, h->cache_shared);
        }
    }
    return CL_OK;
}

cl_status host_open(host *h, const char *config_file, cl_error *err)
{
    host_options opt = {0};

    opt.config_file = config_file;
    return host_open_with(h, &opt, err);
}

cl_status host_open_with(host *h, const host_options *opt, cl_error *err)
{
    cl_status st;
    cl_log_level level;
    double ratio = 1;

    memset(h, 0, sizeof(*h));
    /* Before any setting is read: a setting may ask for one of them. */
    for (int i = 0; host_extensions[i] != NULL; i++) {
        st = cl_extension_register(host_extensions[i], err);
        if (st != CL_OK) {
            return st;
        }
    }
    config_owners(h);
    st = cl_config_load(opt->config_file, environ, h->owners, &h->config, err);
    if (st != CL_OK) {
        return st;
    }
    if (cl_log_parse_level(cl_config_get(h->config, "CLEAVE_LOG_LEVEL"), &level) == CL_OK) {
        cl_log_set_level(level);
    }
    cl_log_set_service(host_binary_name);
    if (cl_trace_parse_ratio(cl_config_get(h->config, "CLEAVE_TRACE_SAMPLE"), &ratio) != CL_OK) {
        return cl_error_set(err, CL_INVALID, "CLEAVE_TRACE_SAMPLE",
                            "CLEAVE_TRACE_SAMPLE must be a number from 0 to 1");
    }
    cl_trace_set_ratio(ratio);
    /* Before any module starts a thread of its own. */
    cl_thread_background_nice((int)cl_config_int(h->config, "CLEAVE_BACKGROUND_NICE"));
    h->data_dir = cl_config_get(h->config, "CLEAVE_DATA_DIR");
    h->migrations_dir = cl_config_get(h->config, "CLEAVE_MIGRATIONS_DIR");
    if (h->migrations_dir == NULL) {
        h->migrations_dir = host_default_migrations_dir;
    }
    cl_migrate_known(host_known_migrations, host_nknown_migrations);
    st = make_dirs(h->data_dir, err);
    if (st != CL_OK) {
        return st;
    }
    st = cl_db_sqlite_exclusive(cl_config_int(h->config, "CLEAVE_SQLITE_EXCLUSIVE") != 0, err);
    if (st != CL_OK) {
        return error_wrap(err, "CLEAVE_SQLITE_EXCLUSIVE", "CLEAVE_SQLITE_EXCLUSIVE", "");
    }
    if (cl_config_get(h->config, "CLEAVE_CLIENT_ID") != NULL ||
        cl_config_get(h->config, "CLEAVE_CLIENT_SECRET") != NULL) {
        st = host_creds_new(cl_config_get(h->config, "CLEAVE_CLIENT_ID"),
                            cl_config_get(h->config, "CLEAVE_CLIENT_SECRET"), &h->creds, err);
        if (st != CL_OK) {
            return st;
        }
    }
    for (int i = 0; cl_bindings[i].api != NULL; i++) {
        host_module *m = &h->modules[h->nmodules];
        const cl_binding *b = &cl_bindings[i];

        if (h->nmodules == HOST_MAX_MODULES) {
            return cl_error_set(err, CL_INTERNAL, NULL, "too many modules");
        }
        m->binding = b;
        h->nmodules++;
        st = b->local != NULL ? open_local(h, m, opt, err) : open_remote(h, m, err);
        if (st != CL_OK) {
            return st;
        }
    }
    st = open_caches(h, err);
    if (st != CL_OK) {
        return st;
    }
    wire_callers(h);
    st = open_issuer(h, err);
    if (st != CL_OK) {
        return st;
    }
    /* The bus serves the local modules: their outboxes, inboxes and operations. */
    st = cl_bus_new(h->config, &h->bus, err);
    for (int i = 0; st == CL_OK && i < h->nmodules; i++) {
        if (h->modules[i].db != NULL) {
            st = cl_bus_add_module(h->bus, h->modules[i].binding->api->name, h->modules[i].db, err);
        }
    }
    return st;
}

cl_status host_migration_db(host *h, host_module *m, cl_db **db, bool *owned, cl_error *err)
{
    const char *name = m->binding->api->name;
    cl_db_options opt = {.max_conns = 1};
    char target[2048];
    cl_status st;

    (void)h;
    *owned = false;
    if (!m->postgres || m->admin_url == NULL) {
        *db = m->db;
        return CL_OK;
    }
    st = m->server->owner_target(m->admin_url, name, target, sizeof(target), err);
    if (st == CL_OK) {
        st = cl_db_open(m->server->driver, name, target, &opt, db, err);
    }
    if (st != CL_OK) {
        return error_wrap(err, "CLEAVE_DATABASE_ADMIN_URL", name, "");
    }
    *owned = true;
    return CL_OK;
}

/*
 * The platform's bus tables in a module's database (ADR 0012), created by whoever may
 * change its schema: on PostgreSQL the module's owner role, so that the app role gets
 * them through the schema's default privileges like the module's own tables.
 */
static cl_status apply_bus_schema(host *h, host_module *m, cl_error *err)
{
    cl_db *db = NULL;
    bool owned = false;
    cl_status st = host_migration_db(h, m, &db, &owned, err);

    if (st == CL_OK) {
        st = cl_bus_schema_apply(db, err);
    }
    if (owned) {
        cl_db_close(db);
    }
    return st;
}

/* Migrates one PostgreSQL module as its owner, then seals its history from the app role. */
static cl_status migrate_postgres(host *h, host_module *m, int *applied, cl_error *err)
{
    cl_status st;

    st = m->server->migrate(m->admin_url, h->migrations_dir, m->binding->api->name, applied, err);
    /* The owner's pool wrote the schema; the replica may not have it yet. */
    if (st == CL_OK && *applied > 0) {
        cl_db_mark_written(m->db);
    }
    return st;
}

cl_status host_migrate(host *h, bool verbose, cl_error *err)
{
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];
        const char *name = m->binding->api->name;
        int applied = 0;
        cl_status st;

        if (m->db == NULL) {
            continue;
        }
        if (m->postgres && m->admin_url == NULL) {
            /* Least privilege at run time: the app role checks, an admin migrates. */
            st = cl_migrate_check(m->db, h->migrations_dir, name, err);
            if (st == CL_OK) {
                st = cl_bus_schema_check(m->db, err);
            }
            if (st != CL_OK) {
                return error_wrap(err, NULL, "",
                                  " (run `cleave migrate` with CLEAVE_DATABASE_ADMIN_URL or "
                                  "--admin-url)");
            }
            continue;
        }
        st = m->postgres ? migrate_postgres(h, m, &applied, err)
                         : cl_migrate_apply(m->db, h->migrations_dir, name, &applied, err);
        if (st == CL_OK) {
            st = apply_bus_schema(h, m, err);
        }
        if (st != CL_OK) {
            return st;
        }
        if (verbose) {
            printf("%s: %d migration%s applied\n", m->binding->api->name, applied,
                   applied == 1 ? "" : "s");
        }
    }
    return CL_OK;
}

cl_status host_check_migrations(host *h, cl_error *err)
{
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];
        cl_status st;

        if (m->db == NULL) {
            continue;
        }
        st = cl_migrate_check(m->db, h->migrations_dir, m->binding->api->name, err);
        if (st == CL_OK) {
            st = cl_bus_schema_check(m->db, err);
        }
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

/*
 * cl_module_env.module: another module, local or remote alike, through the handle that
 * counts the asking module's calls to it (ADR 0039).
 */
static const cl_handle *env_module(const cl_module_env *env, const char *module)
{
    const host_module *caller = env->host;
    const host *h = caller != NULL ? caller->owner : NULL;

    for (int i = 0; h != NULL && module != NULL && i < h->nmodules; i++) {
        if (strcmp(h->modules[i].binding->api->name, module) == 0) {
            return &h->modules[i].callers[caller - h->modules];
        }
    }
    return NULL;
}

static cl_status start_modules(host *h, bool issuers, cl_error *err);

/* Whether m issues tokens (cl_module_api.client_token): the identity module. */
static bool issues_tokens(const host_module *m)
{
    return m->binding->api->client_token != NULL;
}

/*
 * Creates and starts the local modules, the token issuer first: a module's start may call
 * remote modules at once (the saga resumes checkouts), and each such call needs a service
 * token from the issuer (ADR 0030), whose handle has no instance before it is created.
 */
cl_status host_start_modules(host *h, cl_error *err)
{
    for (int pass = 0; pass < 2; pass++) {
        cl_status st = start_modules(h, pass == 0, err);

        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

/* host_start_modules' pass over the local modules that issue tokens, or over the others. */
static cl_status start_modules(host *h, bool issuers, cl_error *err)
{
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];
        const cl_module *local = m->binding->local;
        cl_module_env env;
        cl_status st;

        if (local == NULL || issues_tokens(m) != issuers) {
            continue;
        }
        memset(&env, 0, sizeof(env));
        env.config = h->config;
        env.db = m->db;
        env.bus = h->bus;
        env.module = env_module;
        env.host = m;
        env.serving = h->serving;
        st = local->create(&env, &m->bound.self, err);
        if (st != CL_OK) {
            return st;
        }
        /* The cache holds bound by reference; without one, callers use bound itself. */
        if (m->cached == NULL) {
            m->handle = m->bound;
        }
        st = local->start(m->bound.self, err);
        if (st != CL_OK) {
            return st;
        }
        m->started = true;
    }
    return CL_OK;
}

cl_status host_build_router(host *h, cl_error *err)
{
    cl_status st;

    h->router = cl_router_new();
    if (h->router == NULL) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    st = host_health_routes(h, h->router, err);
    if (st == CL_OK) {
        st = host_metrics_routes(h, h->router, err);
    }
    if (st != CL_OK) {
        return st;
    }
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];

        st = CL_OK;
        if (host_binary_role == HOST_GATEWAY) {
            st = m->binding->api->routes(h->router, &m->gateway, err);
        }
        /*
         * Every module compiled in is served over RPC too, on the gateway as on a service,
         * so that a module extracted from this process reaches the ones left in it: its
         * dependencies resolve on whichever side of the split they are (ADR 0010).
         */
        if (st == CL_OK && m->binding->local != NULL) {
            m->rpc.api = m->binding->api;
            m->rpc.module = &m->handle;
            m->rpc.dev_token = cl_config_get(h->config, "CLEAVE_DEV_SERVICE_TOKEN");
            if (h->auth != NULL) {
                m->rpc.authenticate = host_auth_rpc;
                m->rpc.auth_arg = h->auth;
            }
            st = cl_rpc_routes(h->router, &m->rpc, err);
        }
        if (st != CL_OK) {
            return st;
        }
    }
    if (host_binary_role != HOST_GATEWAY) {
        return CL_OK;
    }
    st = host_operation_routes(h, h->router, err);
    return st == CL_OK ? host_graphql_routes(h, h->router, err) : st;
}

cl_status host_start_bus(host *h, cl_error *err)
{
    return cl_bus_start(h->bus, err);
}

void host_close(host *h)
{
    host_metrics_stop(h);
    cl_http_stop(h->server);
    h->server = NULL;
    /* Handlers run module code: the bus stops before any module does. */
    cl_bus_free(h->bus);
    h->bus = NULL;
    /* Its subscriber clears the caches: it stops before they go. */
    if (h->cache_server != NULL) {
        h->cache_server->close(h->cache_shared);
    }
    /* In the reverse of the start's order: the token issuer last (host_start_modules). */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = h->nmodules - 1; i >= 0; i--) {
            host_module *m = &h->modules[i];

            if (issues_tokens(m) != (pass == 1)) {
                continue;
            }
            /* Its refresher calls the module: it stops first. */
            cl_cached_stop(m->cached);
            if (m->started) {
                m->binding->local->stop(m->bound.self);
            }
            if (m->binding->local != NULL) {
                m->binding->local->destroy(m->bound.self);
            }
            cl_cached_free(m->cached);
            cl_db_close(m->db);
            m->db = NULL;
            cl_rpc_client_free(m->remote);
        }
    }
    cl_router_free(h->router);
    host_graphql_free(h->graphql);
    host_auth_free(h->auth);
    cl_rpc_client_free(h->issuer_remote);
    host_creds_free(h->creds);
    cl_config_free(h->config);
    memset(h, 0, sizeof(*h));
}
