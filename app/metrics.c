/*
 * GET /metrics: the process's metrics in the Prometheus text format, on the gateway and
 * on every module service alike (ADR 0031). Public like /healthz: it is for the
 * monitoring network, and the edge proxy does not forward it.
 *
 * The figures the host's own objects keep (each local module's pool and bus tables, each
 * remote module's circuit) are read by a collector when /metrics is rendered, so that
 * nothing on their hot paths changes for metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "cleave/metrics.h"
#include "cleave/trace.h"
#include "host.h"

static cl_metric pool_connections = CL_METRIC_GAUGE(
    "cleave_db_pool_connections",
    "Open database connections of a module's pool, by state (idle, in_use).", "pool", "state");
static cl_metric pool_max = CL_METRIC_GAUGE("cleave_db_pool_max_connections",
                                            "Configured bound on a module's pool.", "pool");
static cl_metric pool_waits = CL_METRIC_COUNTER(
    "cleave_db_pool_waits_total", "Connection acquires that waited for a free connection.", "pool");
static cl_metric pool_timeouts =
    CL_METRIC_COUNTER("cleave_db_pool_acquire_timeouts_total",
                      "Connection acquires that gave up (unavailable or deadline).", "pool");
static cl_metric pool_opened = CL_METRIC_COUNTER(
    "cleave_db_pool_opened_total",
    "Connections a module's pool opened: at start, when every open one was in use, and after "
    "one was closed.",
    "pool");
static cl_metric pool_closed = CL_METRIC_COUNTER(
    "cleave_db_pool_closed_total",
    "Connections a module's pool closed, by reason: idle (beyond its minimum, unused for a "
    "minute) or broken (its server gone, or a ping failed).",
    "pool", "reason");
static cl_metric outbox_backlog = CL_METRIC_GAUGE(
    "cleave_bus_outbox_backlog",
    "Outbox rows not marked delivered in a module's database (a lone relay marks within 100 ms).",
    "module");
static cl_metric operations_open = CL_METRIC_GAUGE(
    "cleave_operations_open",
    "Long-running operations (/api/v1/operations) pending or running in a module's database.",
    "module");
static cl_metric operations_finished = CL_METRIC_COUNTER(
    "cleave_operations_finished_total",
    "Long-running operations this process recorded as succeeded or failed.", NULL);
static cl_metric dead_letters =
    CL_METRIC_GAUGE("cleave_bus_dead_letters", "Rows in a module's dead-letter table.", "module");
static cl_metric bus_published = CL_METRIC_COUNTER(
    "cleave_bus_published_total", "Outbox rows relayed to the bus by this process.", NULL);
static cl_metric bus_rounds = CL_METRIC_COUNTER(
    "cleave_bus_relay_rounds_total",
    "Relay rounds that carried outbox rows; published over rounds is the rows a round carried.",
    NULL);
static cl_metric bus_handled = CL_METRIC_COUNTER(
    "cleave_bus_handled_total", "Messages handled (committed) by this process.", NULL);
static cl_metric bus_retries = CL_METRIC_COUNTER(
    "cleave_bus_handler_retries_total", "Failed handler attempts that were retried.", NULL);
static cl_metric bus_dead_lettered = CL_METRIC_COUNTER(
    "cleave_bus_dead_lettered_total", "Messages moved to a dead-letter table.", NULL);
static cl_metric bus_lag_avg = CL_METRIC_GAUGE(
    "cleave_bus_delivery_lag_avg_seconds",
    "Mean time from a message's business commit to its handling, since start.", NULL);
static cl_metric bus_lag_max = CL_METRIC_GAUGE(
    "cleave_bus_delivery_lag_max_seconds",
    "Longest time from a message's business commit to its handling, since start.", NULL);
static cl_metric circuit_state = CL_METRIC_GAUGE(
    "cleave_rpc_circuit_state",
    "1 for the state a remote module's circuit is in (closed, open, half_open), else 0.", "target",
    "state");
static cl_metric circuit_opened = CL_METRIC_COUNTER(
    "cleave_rpc_circuit_opened_total", "Times a remote module's circuit opened.", "target");
static cl_metric rpc_retries = CL_METRIC_COUNTER(
    "cleave_rpc_retries_total", "Retries of remote calls made, by target module.", "target");
static cl_metric rpc_retries_refused = CL_METRIC_COUNTER(
    "cleave_rpc_retries_refused_total",
    "Retries of remote calls the retry budget refused, by target module.", "target");

static cl_metric spans = CL_METRIC_COUNTER(
    "cleave_trace_spans_total",
    "Finished sampled spans by what became of them: queued for export, exported (the collector "
    "accepted them), dropped (queue full, collector slow, down or refusing).",
    "outcome");

static void collect_pool(const char *name, cl_db *db)
{
    cl_db_stats s;
    cl_bus_db_counts c;
    cl_error err = {0};

    cl_db_stats_get(db, &s);
    cl_metric_set(CL_METRIC_SERIES(&pool_connections, name, "idle"), s.idle);
    cl_metric_set(CL_METRIC_SERIES(&pool_connections, name, "in_use"), s.in_use);
    cl_metric_set(CL_METRIC_SERIES(&pool_max, name), s.max);
    cl_metric_set(CL_METRIC_SERIES(&pool_waits, name), (double)s.waits);
    cl_metric_set(CL_METRIC_SERIES(&pool_timeouts, name), (double)s.timeouts);
    cl_metric_set(CL_METRIC_SERIES(&pool_opened, name), (double)s.connects);
    cl_metric_set(CL_METRIC_SERIES(&pool_closed, name, "idle"), (double)s.idle_closed);
    cl_metric_set(CL_METRIC_SERIES(&pool_closed, name, "broken"), (double)s.dropped);
    /* A database the bus tables are not in yet (before migrate) has no figures to give. */
    if (cl_bus_db_count(db, &c, &err) == CL_OK) {
        cl_metric_set(CL_METRIC_SERIES(&outbox_backlog, name), (double)c.outbox_backlog);
        cl_metric_set(CL_METRIC_SERIES(&dead_letters, name), (double)c.dead_letters);
        cl_metric_set(CL_METRIC_SERIES(&operations_open, name), (double)c.operations_open);
    }
}

static void collect_circuit(const char *name, cl_rpc_client *remote)
{
    static const cl_circuit_state states[] = {CL_CIRCUIT_CLOSED, CL_CIRCUIT_OPEN,
                                              CL_CIRCUIT_HALF_OPEN};
    cl_rpc_circuit c;

    cl_rpc_client_circuit(remote, &c);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        cl_metric_set(CL_METRIC_SERIES(&circuit_state, name, cl_circuit_state_name(states[i])),
                      c.breaker.state == states[i] ? 1 : 0);
    }
    cl_metric_set(CL_METRIC_SERIES(&circuit_opened, name), (double)c.breaker.opened);
    cl_metric_set(CL_METRIC_SERIES(&rpc_retries, name), (double)c.retries);
    cl_metric_set(CL_METRIC_SERIES(&rpc_retries_refused, name), (double)c.retries_refused);
}

static void collect_bus(cl_bus *bus)
{
    cl_bus_stats s;
    cl_error err = {0};

    if (cl_bus_stats_get(bus, &s, &err) != CL_OK) {
        return;
    }
    cl_metric_set(cl_metric_series(&bus_published, NULL, 0), (double)s.published);
    cl_metric_set(cl_metric_series(&bus_rounds, NULL, 0), (double)s.relay_rounds);
    cl_metric_set(cl_metric_series(&bus_handled, NULL, 0), (double)s.handled);
    cl_metric_set(cl_metric_series(&bus_retries, NULL, 0), (double)s.retries);
    cl_metric_set(cl_metric_series(&bus_dead_lettered, NULL, 0), (double)s.dead_lettered);
    cl_metric_set(cl_metric_series(&operations_finished, NULL, 0), (double)s.operations_finished);
    cl_metric_set(cl_metric_series(&bus_lag_avg, NULL, 0), (double)s.latency_avg_ms / 1000.0);
    cl_metric_set(cl_metric_series(&bus_lag_max, NULL, 0), (double)s.latency_max_ms / 1000.0);
}

/* The span exporter's counts (cleave/trace.h): a growing "dropped" means a lost collector. */
static void collect_spans(void)
{
    cl_trace_stats t;

    cl_trace_stats_get(&t);
    cl_metric_set(CL_METRIC_SERIES(&spans, "queued"), (double)t.queued);
    cl_metric_set(CL_METRIC_SERIES(&spans, "exported"), (double)t.exported);
    cl_metric_set(CL_METRIC_SERIES(&spans, "dropped"), (double)t.dropped);
}

static void collect_host(void *arg)
{
    host *h = arg;

    collect_spans();

    for (int i = 0; i < h->nmodules; i++) {
        const host_module *m = &h->modules[i];

        if (m->db != NULL) {
            collect_pool(m->binding->api->name, m->db);
        }
        if (m->remote != NULL) {
            collect_circuit(m->binding->api->name, m->remote);
        }
    }
    if (h->bus != NULL) {
        collect_bus(h->bus);
    }
}

static void metrics(cl_http_req *req, void *arg)
{
    char *text = NULL;
    size_t len = 0;

    (void)arg;
    if (cl_metrics_render(&text, &len) != CL_OK) {
        cl_http_reply_problem(req, 500, "internal", cl_status_message(CL_INTERNAL),
                              "out of memory rendering the metrics", NULL);
        return;
    }
    cl_http_reply_bytes(req, 200, CL_METRICS_CONTENT_TYPE, text, len);
    free(text);
}

cl_status host_metrics_routes(host *h, cl_router *r, cl_error *err)
{
    const cl_route route = {"GET", "/metrics", CL_PERM_PUBLIC, metrics, h, NULL};

    if (cl_metrics_collector_add(collect_host, h) != CL_OK) {
        return cl_error_set(err, CL_INTERNAL, NULL, "out of memory");
    }
    cl_metrics_build_info(host_binary_name, CLEAVE_VERSION);
    return cl_router_add_all(r, &route, 1, err);
}

void host_metrics_stop(host *h)
{
    cl_metrics_collector_remove(collect_host, h);
}
