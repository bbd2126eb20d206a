/*
 * Liveness and readiness. /healthz says the process answers; /readyz says every local
 * module's database is reachable and fully migrated and every remote module's service is
 * ready, and names the one that is not. A remote module's check shows its circuit
 * ("closed", "open", "half_open"); while open, the service is not asked at all.
 * /readyz?module=M answers for local module M alone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cleave/migrate.h"
#include "host.h"

static void healthz(cl_http_req *req, void *arg)
{
    (void)arg;
    cl_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static json_t *module_check(host *h, host_module *m, int *ok)
{
    const char *name = m->binding->api->name;
    cl_error err = {0};
    cl_status st;

    if (m->remote != NULL) {
        cl_rpc_circuit c;
        const char *circuit;

        cl_rpc_client_circuit(m->remote, &c);
        circuit = cl_circuit_state_name(c.breaker.state);
        /* An open circuit already knows the service is failing: asking it again would wait. */
        if (c.breaker.state == CL_CIRCUIT_OPEN) {
            *ok = 0;
            snprintf(err.message, sizeof(err.message),
                     "circuit open: %" PRId64 " of %" PRId64 " calls failed; next probe in %" PRId64
                     " ms",
                     c.breaker.window_failures, c.breaker.window_calls, c.breaker.retry_in_ms);
            return json_pack("{s:s,s:s,s:s,s:s,s:s}", "module", name, "status", "down", "url",
                             cl_rpc_client_url(m->remote), "circuit", circuit, "detail",
                             err.message);
        }
        /* A gateway is ready only when the services it depends on are. */
        st = cl_rpc_ready(m->remote, 1000, &err);
        if (st != CL_OK) {
            *ok = 0;
            return json_pack("{s:s,s:s,s:s,s:s,s:s}", "module", name, "status", "down", "url",
                             cl_rpc_client_url(m->remote), "circuit", circuit, "detail",
                             err.message);
        }
        return json_pack("{s:s,s:s,s:s,s:s}", "module", name, "status", "up", "url",
                         cl_rpc_client_url(m->remote), "circuit", circuit);
    }
    st = cl_db_ping(m->db, &err);
    if (st == CL_OK) {
        st = cl_migrate_check(m->db, h->migrations_dir, name, &err);
    }
    if (st != CL_OK) {
        *ok = 0;
        return json_pack("{s:s,s:s,s:s}", "module", name, "status", "down", "detail", err.message);
    }
    return json_pack("{s:s,s:s}", "module", name, "status", "up");
}

static void readyz(cl_http_req *req, void *arg)
{
    host *h = arg;
    json_t *checks;
    int ok = 1;
    char detail[256] = "";
    char only[64] = "";
    int found = 0;
    bool asked;
    cl_error err = {0};

    /* Draining (ADR 0032): a load balancer must stop sending before the listener closes. */
    if (atomic_load(&h->draining)) {
        cl_http_set_header(req, "Retry-After", "1");
        cl_http_reply_problem(req, 503, "not-ready", "Not ready",
                              "draining: the process is stopping", NULL);
        return;
    }

    /* ?module=M: another process asks about the one module it calls here (cl_rpc_ready). */
    asked = cl_http_query(req, "module", only, sizeof(only)) != -1;
    for (int i = 0; asked && i < h->nmodules; i++) {
        found |= h->modules[i].binding->local != NULL &&
                 strcmp(h->modules[i].binding->api->name, only) == 0;
    }
    if (asked && !found) {
        cl_error_set(&err, CL_NOT_FOUND, "module", "%s does not run module '%s'", host_binary_name,
                     only);
        cl_http_reply_error(req, &err);
        return;
    }
    checks = json_array();
    for (int i = 0; i < h->nmodules; i++) {
        json_t *check;

        if (asked && strcmp(h->modules[i].binding->api->name, only) != 0) {
            continue;
        }
        check = module_check(h, &h->modules[i], &ok);
        const char *d = json_string_value(json_object_get(check, "detail"));

        if (d != NULL && detail[0] == '\0') {
            cl_strlcpy(detail, h->modules[i].binding->api->name, sizeof(detail));
            strncat(detail, ": ", sizeof(detail) - strlen(detail) - 1);
            strncat(detail, d, sizeof(detail) - strlen(detail) - 1);
        }
        json_array_append_new(checks, check);
    }
    if (!ok) {
        cl_http_reply_problem(req, 503, "not-ready", "Not ready", detail,
                              json_pack("{s:o}", "checks", checks));
        return;
    }
    cl_http_reply_json(req, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", checks));
}

cl_status host_health_routes(host *h, cl_router *r, cl_error *err)
{
    const cl_route routes[] = {
        {"GET", "/healthz", CL_PERM_PUBLIC, healthz, h, NULL},
        {"GET", "/readyz", CL_PERM_PUBLIC, readyz, h, "module"},
    };

    return cl_router_add_all(r, routes, sizeof(routes) / sizeof(routes[0]), err);
}
