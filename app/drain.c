/*
 * Graceful drain (ADR 0032): what `serve` does between SIGTERM and exit. Readiness goes
 * first, so that a load balancer stops sending; the listener closes after a delay that
 * lets it notice; the requests already accepted finish; the outboxes are flushed; then
 * host_close stops the bus and the modules, whose workers finish the saga steps they run.
 * Each phase is logged with its duration; a second signal or the grace period cuts the
 * drain short, and the log says what was cut.
 */
#include <stdatomic.h>

#include "cleave/log.h"
#include "host.h"

/* How long the waits of a phase last at most between two checks for a second signal. */
#define DRAIN_SLICE_MS        50
/* The outbox phase ends when the backlog has not shrunk for this long. */
#define DRAIN_OUTBOX_STALL_MS 1000

/* The rest of the grace period, at most cap; 0 once it ran out. */
static int64_t remaining(int64_t deadline, int64_t cap)
{
    int64_t left = deadline - cl_now_ms();

    if (left <= 0) {
        return 0;
    }
    return left < cap ? left : cap;
}

static void log_phase(const char *phase, int64_t since, const char *what)
{
    int64_t ms = cl_now_ms() - since;

    cl_log_with(CL_LOG_INFO, "drain", json_pack("{s:s,s:I}", "phase", phase, "duration_ms", ms),
                "%s in %lld ms", what, (long long)ms);
}

/* Unpublished outbox rows of every local module; errors count as none left to wait for. */
static int64_t outbox_backlog(host *h)
{
    int64_t total = 0;

    for (int i = 0; i < h->nmodules; i++) {
        cl_bus_db_counts c;
        cl_error err = {0};

        if (h->modules[i].db != NULL && cl_bus_db_count(h->modules[i].db, &c, &err) == CL_OK) {
            total += c.outbox_backlog;
        }
    }
    return total;
}

int host_drain(host *h, int sig)
{
    int64_t start = cl_now_ms();
    int64_t delay = cl_config_int(h->config, "CLEAVE_DRAIN_DELAY_MS");
    int64_t deadline = start + cl_config_int(h->config, "CLEAVE_DRAIN_GRACE_S") * 1000;
    int64_t phase;
    int again = 0;
    int idle = 0;
    int64_t backlog = 0;
    int64_t progress;
    cl_http_activity left = {0};
    cl_error err = {0};

    /* Readiness first: a load balancer needs time to stop sending before anything stops. */
    atomic_store(&h->draining, true);
    cl_log_with(
        CL_LOG_INFO, "drain",
        json_pack("{s:i,s:I,s:I}", "signal", sig, "delay_ms", delay, "grace_ms", deadline - start),
        "signal %d: draining; /readyz answers 503", sig);
    phase = cl_now_ms();
    again = cl_shutdown_wait_ms(remaining(deadline, delay));
    log_phase("not-ready", phase, "readiness withdrawn before closing the listener");

    phase = cl_now_ms();
    if (cl_http_stop_accepting(h->server, &err) != CL_OK) {
        /* Still safe: cl_http_stop answers 503 to what comes after, as before. */
        cl_log_with(CL_LOG_WARN, "drain", NULL, "cannot close the listener: %s", err.message);
    }
    while (!again && !idle && remaining(deadline, 1) > 0) {
        idle = cl_http_wait_idle(h->server, remaining(deadline, DRAIN_SLICE_MS), &left);
        if (!idle) {
            again = cl_shutdown_wait_ms(0);
        }
    }
    if (!idle) {
        cl_http_wait_idle(h->server, 0, &left);
    }
    log_phase("requests", phase, "listener closed; requests in flight finished");

    /*
     * What the finished requests wrote to the outboxes goes out before the relays stop,
     * while it goes out: a message whose handler keeps failing would hold the drain to the
     * end of the grace, and the outbox is durable, so it waits for the next start.
     */
    phase = cl_now_ms();
    backlog = outbox_backlog(h);
    progress = cl_now_ms();
    while (!again && backlog > 0 && remaining(deadline, 1) > 0 &&
           cl_now_ms() - progress < DRAIN_OUTBOX_STALL_MS) {
        int64_t before = backlog;

        again = cl_shutdown_wait_ms(remaining(deadline, DRAIN_SLICE_MS));
        backlog = outbox_backlog(h);
        progress = backlog < before ? cl_now_ms() : progress;
    }
    log_phase("outbox", phase, "outbox relays flushed");
    if (backlog > 0) {
        cl_log_with(CL_LOG_WARN, "drain", json_pack("{s:I}", "outbox_backlog", (json_int_t)backlog),
                    "%lld outbox messages left for the next start", (long long)backlog);
    }

    if (left.requests > 0 || left.connections > 0) {
        cl_log_with(CL_LOG_WARN, "drain",
                    json_pack("{s:s,s:i,s:i,s:I,s:I}", "cut_by",
                              again ? "second signal" : "grace period", "requests", left.requests,
                              "connections", left.connections, "outbox_backlog", backlog,
                              "duration_ms", cl_now_ms() - start),
                    "drain cut short by the %s: %d requests in flight, %d connections open, "
                    "%lld outbox messages unpublished (left for the next start)",
                    again ? "second signal" : "grace period", left.requests, left.connections,
                    (long long)backlog);
        return 1;
    }
    return 0;
}
