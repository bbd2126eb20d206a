/*
 * RFC 9457 problem details: every error response of the platform has this one shape, so
 * clients handle errors from any route (or any module, local or remote) alike.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

#define PROBLEM_TYPE_PREFIX  "urn:cleave:problem:"
/* The request path is echoed as "instance"; a client's endless path is not echoed whole. */
#define PROBLEM_INSTANCE_MAX 2048

json_t *cl__http_json_text(const char *s, size_t max)
{
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t n = strlen((const char *)p);
    size_t o = 0;
    char *buf;
    json_t *json;

    if (n > max) {
        n = cl_utf8_cut((const char *)p, max);
    }
    /* Every byte becomes at most the three bytes of U+FFFD. */
    buf = malloc(n * 3 + 1);
    if (buf == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n;) {
        size_t len = cl_utf8_len((const char *)p + i, n - i);

        if (len == 0) {
            memcpy(buf + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, p + i, len);
            o += len;
            i += len;
        }
    }
    buf[o] = '\0';
    json = json_stringn_nocheck(buf, o);
    free(buf);
    return json;
}

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
    /*
     * Detail and instance quote the client's input, which may be any bytes: they are made
     * valid UTF-8 here, so that a problem can always be built (jansson refuses the rest).
     */
    body = json_pack("{s:o,s:o,s:i,s:o,s:o,s:s}", "type", cl__http_json_text(type, sizeof(type)),
                     "title", cl__http_json_text(title != NULL ? title : "error", 256), "status",
                     status, "detail", cl__http_json_text(detail, 1024), "instance",
                     cl__http_json_text(req->path, PROBLEM_INSTANCE_MAX), "request_id",
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
        extra = json_pack("{s:[{s:o,s:o}]}", "invalid_params", "name",
                          cl__http_json_text(err->field, sizeof(err->field)), "reason",
                          cl__http_json_text(detail, sizeof(err->message)));
    }
    cl_http_reply_problem(req, cl_status_http(st), slug, cl_status_message(st), detail, extra);
}
