/* Wiring: configuration, a database per module, migrations, module lifecycle, routes. */
#include "host.h"

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
        if (b->local != NULL) {
            char path[4096];
            /* No shared database: each module gets a file of its own (ADR 0003). */
            snprintf(path, sizeof(path), "%s/%s.db", h->data_dir, b->api->name);
            st = cl_db_open(&cl_db_sqlite, b->api->name, path, NULL, &m->db, err);
            if (st != CL_OK) {
                return st;
            }
            m->ops = b->local->ops;
        }
    }
    return CL_OK;
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
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
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
        env.config = h->config;
        env.db = m->db;
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

        st = m->binding->api->routes(h->router, m->ops, err);
        if (st != CL_OK) {
            return st;
        }
    }
    return CL_OK;
}

void host_close(host *h)
{
    cl_http_stop(h->server);
    h->server = NULL;
    for (int i = h->nmodules - 1; i >= 0; i--) {
        host_module *m = &h->modules[i];

        if (m->started) {
            m->binding->local->stop();
        }
        cl_db_close(m->db);
    }
    cl_router_free(h->router);
    cl_config_free(h->config);
    memset(h, 0, sizeof(*h));
}
