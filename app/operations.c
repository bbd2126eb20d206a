/*
 * The operation resource of long-running work (ADR 0012): GET /api/v1/operations/{id}.
 *
 * An operation id starts with the name of the module that owns it ("shipping-<hex>"); the
 * gateway asks that module through its operations table (slot get_operation), so the
 * resource works the same whether the module is local or extracted.
 */
#include <string.h>

#include "host.h"

static json_t *render(const cl_operation *op)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", op->id, "kind", op->kind, "status",
                          op->status, "created_at", op->created_at, "updated_at", op->updated_at);

    if (o == NULL) {
        return NULL;
    }
    if (op->result != NULL) {
        json_error_t jerr;
        json_t *r = json_loads(op->result, 0, &jerr);
        json_object_set_new(o, "result", r != NULL ? r : json_string(op->result));
    }
    if (op->problem_status != NULL) {
        cl_status st = CL_INTERNAL;
        (void)cl_status_parse(op->problem_status, &st);
        json_object_set_new(o, "problem",
                            json_pack("{s:s,s:s,s:i,s:s}", "type",
                                      "urn:cleave:problem:operation-failed", "title",
                                      cl_status_message(st), "status", cl_status_http(st), "detail",
                                      op->problem_detail != NULL ? op->problem_detail : ""));
    }
    return o;
}

static void get_operation(cl_http_req *req, void *arg)
{
    host *h = arg;
    const char *id = cl_http_param(req, "id");
    size_t len = strcspn(id, "-");
    cl_operation_ref ref = {0};
    cl_operation op = {0};
    cl_ctx *ctx = cl_http_ctx(req);
    const cl_op *getter = NULL;
    host_module *m = NULL;

    for (int i = 0; i < h->nmodules; i++) {
        const char *name = h->modules[i].binding->api->name;
        if (strlen(name) == len && strncmp(name, id, len) == 0 && id[len] == '-') {
            m = &h->modules[i];
        }
    }
    if (m != NULL) {
        getter = cl_op_find(m->binding->api->ops, m->binding->api->nops, CL_OPERATION_GET);
    }
    if (getter == NULL || strlen(id) >= CL_OPERATION_ID_MAX) {
        cl_http_reply_problem(req, 404, "not-found", cl_status_message(CL_NOT_FOUND),
                              "no such operation", NULL);
        return;
    }
    ref.id = (char *)id;
    if (getter->invoke(&m->gateway, ctx, &ref, &op) != CL_OK) {
        cl_http_reply_error(req, &ctx->err);
        return;
    }
    cl_http_reply_json(req, 200, render(&op));
    cl_schema_free(&cl_operation_type, &op);
}

cl_status host_operation_routes(host *h, cl_router *r, cl_error *err)
{
    const cl_route route = {"GET", "/api/v1/operations/{id}", "operations:read", get_operation, h,
                            NULL};

    return cl_router_add(r, &route, err);
}
