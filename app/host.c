/* Wiring: configuration, a database per module, migrations, module lifecycle, routes. */
#include "host.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleave/log.h"
#include "cleave/migrate.h"

extern char **environ;

static const char *const *module_names(void)
{
    static const char *names[HOST_MAX_MODULES + 1];

    for (int i = 0; cl_bindings[i].api != NULL && i < HOST_MAX_MODULES; i++) {
        names[i] = cl_bindings[i].api->name;
    }
    return names;
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

static cl_status open_local(host *h, host_module *m, cl_error *err)
{
    const char *name = m->binding->api->name;
    char path[4096];
    cl_status st;

    /* No shared database: each module gets a file of its own (ADR 0003). */
    snprintf(path, sizeof(path), "%s/%s.db", h->data_dir, name);
    st = cl_db_open(&cl_db_sqlite, name, path, NULL, &m->db, err);
    if (st != CL_OK) {
        return st;
    }
    m->ops = m->binding->local->ops;
    return CL_OK;
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
    opt.token = cl_config_get(h->config, "CLEAVE_SERVICE_TOKEN");
    timeout = cl_config_module(h->config, name, "TIMEOUT_MS");
    /* Validated as an integer when the configuration was loaded. */
    opt.default_timeout_ms = timeout != NULL ? strtoll(timeout, NULL, 10) : 0;
    st = cl_rpc_client_new(name, url, &opt, &m->remote, err);
    if (st != CL_OK) {
        return cl_error_set(err, st, key, "%s: %s", key, err->message);
    }
    m->ops = m->binding->api->remote_ops(m->remote);
    return CL_OK;
}

cl_status host_open(host *h, const char *config_file, cl_error *err)
{
    cl_status st;
    cl_log_level level;

    memset(h, 0, sizeof(*h));
    st = cl_config_load(config_file, environ, module_names(), &h->config, err);
    if (st != CL_OK) {
        return st;
    }
    if (cl_log_parse_level(cl_config_get(h->config, "CLEAVE_LOG_LEVEL"), &level) == CL_OK) {
        cl_log_set_level(level);
    }
    h->data_dir = cl_config_get(h->config, "CLEAVE_DATA_DIR");
    h->migrations_dir = cl_config_get(h->config, "CLEAVE_MIGRATIONS_DIR");
    if (h->migrations_dir == NULL) {
        h->migrations_dir = CLEAVE_DEFAULT_MIGRATIONS_DIR;
    }
    st = make_dirs(h->data_dir, err);
    if (st != CL_OK) {
        return st;
    }
    for (int i = 0; cl_bindings[i].api != NULL; i++) {
        host_module *m = &h->modules[h->nmodules];
        const cl_binding *b = &cl_bindings[i];

        if (h->nmodules == HOST_MAX_MODULES) {
            return cl_error_set(err, CL_INTERNAL, NULL, "too many modules");
        }
        m->binding = b;
        h->nmodules++;
        st = b->local != NULL ? open_local(h, m, err) : open_remote(h, m, err);
        if (st != CL_OK) {
            return st;
        }
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

cl_status host_migrate(host *h, bool verbose, cl_error *err)
{
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];
        int applied = 0;
        cl_status st;

        if (m->db == NULL) {
            continue;
        }
        /* The platform's bus tables first; the module's migrations never depend on them. */
        st = cl_bus_schema_apply(m->db, err);
        if (st != CL_OK) {
            return st;
        }
        st = cl_migrate_apply(m->db, h->migrations_dir, m->binding->api->name, &applied, err);
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

/* cl_module_env.module_ops: another module's table, local or remote alike. */
static const void *env_module_ops(const cl_module_env *env, const char *module)
{
    const host *h = env->host;

    for (int i = 0; h != NULL && module != NULL && i < h->nmodules; i++) {
        if (strcmp(h->modules[i].binding->api->name, module) == 0) {
            return h->modules[i].ops;
        }
    }
    return NULL;
}

cl_status host_start_modules(host *h, cl_error *err)
{
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];
        const cl_module *local = m->binding->local;
        cl_module_env env;
        cl_status st;

        if (local == NULL) {
            continue;
        }
        memset(&env, 0, sizeof(env));
        env.config = h->config;
        env.db = m->db;
        env.bus = h->bus;
        env.module_ops = env_module_ops;
        env.host = h;
        env.serving = h->serving;
        st = local->init(&env, err);
        if (st != CL_OK) {
            return st;
        }
        m->initialised = true;
        st = local->start(err);
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
    if (st != CL_OK) {
        return st;
    }
    for (int i = 0; i < h->nmodules; i++) {
        host_module *m = &h->modules[i];

        if (host_binary_role == HOST_GATEWAY) {
            st = m->binding->api->routes(h->router, m->ops, err);
        } else if (m->binding->local != NULL) {
            m->rpc.api = m->binding->api;
            m->rpc.ops = m->ops;
            m->rpc.token = cl_config_get(h->config, "CLEAVE_SERVICE_TOKEN");
            st = cl_rpc_routes(h->router, &m->rpc, err);
        } else {
            st = CL_OK;
        }
        if (st != CL_OK) {
            return st;
        }
    }
    return host_binary_role == HOST_GATEWAY ? host_operation_routes(h, h->router, err) : CL_OK;
}

cl_status host_start_bus(host *h, cl_error *err)
{
    return cl_bus_start(h->bus, err);
}

void host_close(host *h)
{
    cl_http_stop(h->server);
    h->server = NULL;
    /* Handlers run module code: the bus stops before any module does. */
    cl_bus_free(h->bus);
    h->bus = NULL;
    for (int i = h->nmodules - 1; i >= 0; i--) {
        host_module *m = &h->modules[i];

        if (m->started) {
            m->binding->local->stop();
        }
        cl_db_close(m->db);
        cl_rpc_client_free(m->remote);
    }
    cl_router_free(h->router);
    cl_config_free(h->config);
    memset(h, 0, sizeof(*h));
}
