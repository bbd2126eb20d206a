/*
 * Placement (ADR 0010): which modules run in this process, which run elsewhere, and what
 * that asks of the deployment. Everything comes from what modules declare once: their
 * dependencies (cleave_module DEPENDS), the events they publish and the events they
 * handle. A publisher and a subscriber in two processes can only meet on a broker, so a
 * process on the in-process bus refuses to start when one of its events crosses.
 */
#include <stdio.h>
#include <string.h>

#include "host.h"

/* Whether the module named is compiled into this process (false: it runs elsewhere). */
static bool is_local(const host *h, const char *name)
{
    for (int i = 0; i < h->nmodules; i++) {
        if (strcmp(h->modules[i].binding->api->name, name) == 0) {
            return h->modules[i].binding->local != NULL;
        }
    }
    return false;
}

/* Calls fn for every (event, subscriber) pair whose two modules are in different processes. */
static int each_crossing(const host *h,
                         int (*fn)(void *arg, const cl_event *ev, const char *subscriber,
                                   bool publisher_here),
                         void *arg)
{
    int rc = 0;

    for (int i = 0; rc == 0 && host_deployment[i] != NULL; i++) {
        const cl_module_api *sub = host_deployment[i];

        for (size_t k = 0; rc == 0 && sub->subscribes != NULL && sub->subscribes[k] != NULL; k++) {
            const cl_event *ev = sub->subscribes[k];
            bool pub_here = is_local(h, ev->module);

            if (pub_here != is_local(h, sub->name)) {
                rc = fn(arg, ev, sub->name, pub_here);
            }
        }
    }
    return rc;
}

static int refuse_crossing(void *arg, const cl_event *ev, const char *subscriber,
                           bool publisher_here)
{
    cl_error *err = arg;

    cl_error_set(err, CL_INVALID, "CLEAVE_NATS_URL",
                 "event %s is published by %s (%s) and handled by %s (%s): events between "
                 "processes need the NATS transport, but this process has the in-process "
                 "bus; set CLEAVE_NATS_URL in every process of the deployment",
                 ev->type, ev->module, publisher_here ? "here" : "in another process", subscriber,
                 publisher_here ? "in another process" : "here");
    return -1;
}

cl_status host_check_placement(const host *h, cl_error *err)
{
    if (strcmp(cl_bus_transport(h->bus), "nats") == 0) {
        return CL_OK;
    }
    return each_crossing(h, refuse_crossing, err) == 0 ? CL_OK : err->status;
}

static int print_crossing(void *arg, const cl_event *ev, const char *subscriber,
                          bool publisher_here)
{
    (void)arg;
    printf("  event   %-28s %s (%s) -> %s (%s)\n", ev->type, ev->module,
           publisher_here ? "here" : "elsewhere", subscriber,
           publisher_here ? "elsewhere" : "here");
    return 0;
}

/* Whether a module of this process is called by a module elsewhere (so it is served over RPC). */
static void print_callers(const host *h)
{
    for (int i = 0; host_deployment[i] != NULL; i++) {
        const cl_module_api *caller = host_deployment[i];

        if (is_local(h, caller->name)) {
            continue;
        }
        for (size_t k = 0; caller->depends != NULL && caller->depends[k] != NULL; k++) {
            if (is_local(h, caller->depends[k])) {
                printf("  serves  %-28s to %s (elsewhere) at " CL_RPC_PREFIX "%s/\n",
                       caller->depends[k], caller->name, caller->depends[k]);
            }
        }
    }
}

void host_print_placement(const host *h)
{
    cl_error err = {0};

    printf("\nplacement of %s:\n", host_binary_name);
    for (int i = 0; i < h->nmodules; i++) {
        const host_module *m = &h->modules[i];

        if (m->binding->local == NULL) {
            printf("  calls   %-28s elsewhere, at %s\n", m->binding->api->name,
                   cl_rpc_client_url(m->remote));
        }
    }
    print_callers(h);
    (void)each_crossing(h, print_crossing, NULL);
    printf("  bus     %s\n", cl_bus_transport(h->bus));
    if (host_check_placement(h, &err) != CL_OK) {
        printf("  refused %s\n", err.message);
    }
}
