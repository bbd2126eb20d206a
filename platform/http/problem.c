/*
 * RFC 9457 problem details: every error response of the platform has this one shape, so
 * clients handle errors from any route (or any module, local or remote) alike.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define PROBLEM_TYPE_PREFIX "urn:cleave:problem:"

void cl_http_reply_problem(cl_http_req *req, int status, const char *slug, const char *title,
                           const char *detail, json_t *extra)
{
    char type[128];
    json_t *body = NULL;
    char *text = NULL;

    if (req == NULL) {
        json_decref(extra);
        return;
    }
    snprintf(type, sizeof(type), PROBLEM_TYPE_PREFIX "%s", slug != NULL ? slug : "internal");
    body = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "type", type, "title",
                     title != NULL ? title : "error", "status", status, "detail",
                     detail != NULL ? detail : "", "instance", req->path, "request_id",
                     req->ctx.request_id);
    /* The standard members win: extra may add fields, never disguise the problem. */
    if (body != NULL && json_is_object(extra)) {
        json_object_update_missing(body, extra);
    }
    json_decref(extra);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
    }
    json_decref(body);
    if (text == NULL) {
        /* Out of memory: still answer, with a body that needs no allocation. */
        static const char fallback[] = "{\"type\":\"" PROBLEM_TYPE_PREFIX "internal\","
                                       "\"title\":\"out of memory\",\"status\":500}";
        cl__http_send(req, 500, "application/problem+json", fallback, sizeof(fallback) - 1);
        return;
    }
    cl__http_send(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

void cl_http_reply_error(cl_http_req *req, const cl_error *err)
{
    cl_status st = err != NULL ? err->status : CL_INTERNAL;
    char slug[64];
    const char *detail;
    json_t *extra = NULL;

    /* A "failure" with status OK is a bug in the caller; never send it as a success. */
    if (st == CL_OK || (int)st < 0 || st >= CL_STATUS_COUNT) {
        st = CL_INTERNAL;
    }
    cl_strlcpy(slug, cl_status_name(st), sizeof(slug));
    for (char *p = slug; *p != '\0'; p++) {
        if (*p == '_') {
            *p = '-';
        }
    }
    detail = err != NULL && err->message[0] != '\0' ? err->message : cl_status_message(st);
    if (st == CL_INVALID && err != NULL && err->field[0] != '\0') {
        extra =
            json_pack("{s:[{s:s,s:s}]}", "invalid_params", "name", err->field, "reason", detail);
    }
    cl_http_reply_problem(req, cl_status_http(st), slug, cl_status_message(st), detail, extra);
}
