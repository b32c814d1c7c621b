/* libstreamhub/gateway/routes.c: the route table (gw.h).  The operations
 * doors; REST and GraphQL over HTTP join here. */
#include <stdlib.h>
#include <string.h>

#include "gw.h"

void sh__route(struct sh__req *req)
{
    const char *m = req->hr->method;

    if (strcmp(req->path, "/healthz") == 0) {
        req->route = "/healthz";
        if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
            sh__respond_error(req, 405, "bad_request", "method not allowed",
                              0);
            return;
        }
        sh__respond(req, 200, "application/json", NULL,
                    "{\"status\":\"ok\"}", 15);
        return;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        req->route = "/metrics";
        if (sh__metrics_render(req->conn->gw->metrics, &text, &len) !=
            SH_OK) {
            sh__respond_error(req, 500, "internal", "out of memory", 0);
            return;
        }
        sh__respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                    NULL, text, len);
        free(text);
        return;
    }
    sh__respond_error(req, 404, "not_found", "no such route", 0);
}
