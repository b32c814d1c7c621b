/* libstreamhub/gateway/routes.c: the route table of HTTP requests (gw.h).
 *
 * Every HTTP request that is not a WebSocket upgrade arrives here on the
 * loop thread.  The table is small and fixed, so it is plain code, in this
 * order:
 *
 *   OPTIONS <any>            CORS preflight (204, or 403 for an origin
 *                            that is not allowed)
 *   /healthz                 liveness: answered on the loop, no store
 *   /readyz                  readiness: sh__hub_ready() on a worker
 *   /metrics                 Prometheus text format 0.0.4
 *   /api/v1/openapi.json     the OpenAPI document, compiled in
 *                            (docs/openapi.json)
 *   /api/v1/...              rest.c
 *   /graphql, /ws            GraphQL over HTTP; /ws without an upgrade: 426
 *   anything else            404
 *
 * A known path with a method it does not take is 405 with an Allow header.
 * req->route is always a static label (the metrics' `route` label), never
 * the raw path, so that the series stay bounded whatever clients send.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "services/export_int.h"

/* docs/openapi.json, embedded at build time (see meson.build). */
extern const char sh__openapi_json[];
extern const size_t sh__openapi_json_len;

static const char WS_REQUIRED[] =
    "{\"error\":{\"code\":\"bad_request\",\"message\":"
    "\"WebSocket upgrade required\"}}";

/* Set when graphql_http.c joins the build (GraphQL over HTTP). */
#define SH_HAVE_GRAPHQL_HTTP 1
#ifdef SH_HAVE_GRAPHQL_HTTP
bool sh__graphql_http(struct sh__req *req);
#endif

static bool method_is(const struct sh__req *req, const char *m)
{
    return strcmp(req->hr->method, m) == 0;
}

static void method_not_allowed(struct sh__req *req, const char *allow)
{
    char extra[96];
    json_object *o = json_object_new_object(), *e = json_object_new_object();

    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    json_object_object_add(e, "code", json_object_new_string("bad_request"));
    json_object_object_add(e, "message",
                           json_object_new_string("method not allowed"));
    json_object_object_add(o, "error", e);
    sh__respond_json(req, 405, o, extra);
}

/* CORS preflight.  Only a browser sends Origin; a preflight without one is
 * answered the same way (nothing to protect), one with an origin that is
 * not allowed is refused so the browser blocks the real request. */
static void preflight(struct sh__req *req)
{
    struct sh_gateway *gw = req->conn->gw;

    req->route = "OPTIONS";
    if (!sh__origin_allowed(gw, sh__req_header(req, "Origin"),
                            sh__req_header(req, "Host"))) {
        sh__respond_error(req, 403, "forbidden", "origin not allowed", 0);
        return;
    }
    sh__respond(req, 204, NULL,
                "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                "Access-Control-Allow-Headers: Authorization, "
                "Content-Type, traceparent\r\n"
                "Access-Control-Max-Age: 600\r\n",
                NULL, 0);
}

/* ---- /readyz --------------------------------------------------------- */

static void ready_work(void *arg)
{
    struct sh__req *req = arg;
    char why[320] = "";
    sh_err_t rc = sh__hub_ready(req->conn->gw->hub, why, sizeof why);
    json_object *o = json_object_new_object();
    bool store_ok = rc == SH_OK || rc == SH_EBUS;
    bool bus_ok = rc == SH_OK ||
                  (rc == SH_ESTORE && strstr(why, "bus: ") == NULL);

    if (rc == SH_ECANCELED)
        store_ok = bus_ok = false;
    /* SH_EIO: both answered, an outbox sink is refused (ready.c). */
    if (rc == SH_EIO)
        store_ok = bus_ok = true;
    json_object_object_add(o, "status", json_object_new_string(
                                            rc == SH_OK ? "ready"
                                                        : "unavailable"));
    json_object_object_add(o, "store", json_object_new_string(
                                           store_ok ? "ok" : "error"));
    json_object_object_add(o, "bus", json_object_new_string(
                                         bus_ok ? "ok" : "error"));
    if (rc == SH_EIO)
        json_object_object_add(o, "outbox", json_object_new_string("error"));
    /* The reason stays in the log: it may name hosts of the store. */
    if (rc != SH_OK)
        sh__log_kv(&req->conn->gw->hub->log, SH_LOG_WARN,
                   "readiness check failed", "reason", why, (char *)NULL);
    req->status = rc == SH_OK ? 200 : 503;
    req->result = o;
}

static void ready_done(void *arg, bool canceled)
{
    struct sh__req *req = arg;
    json_object *o = req->result;

    req->result = NULL;
    if (canceled || o == NULL) {
        json_object_put(o);
        sh__respond_error(req, 503, "internal", "shutting down", 1);
        return;
    }
    sh__respond_json(req, req->status, o, NULL);
}

/* ---- /metrics -------------------------------------------------------- */

static double chat_queue_depth(void *arg)
{
    return (double)sh__chat_queue_depth(arg);
}

static void metrics(struct sh__req *req)
{
    struct sh_gateway *gw = req->conn->gw;
    char *text = NULL;
    size_t len = 0;

    /* Registering again with the same function is a no-op, so the gauge
     * needs no start-up hook: the first scrape adds it. */
    (void)sh__metrics_add_callback(
        gw->metrics, "streamhub_chat_write_behind_depth",
        "Chat messages waiting in the write-behind queue.",
        chat_queue_depth, gw->hub);
    if (sh__metrics_render(gw->metrics, &text, &len) != SH_OK) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return;
    }
    sh__respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                text, len);
    free(text);
}

/* ---- the table ------------------------------------------------------- */

/* A GET-only operations door: true when @req was answered (405). */
static bool refuse_non_get(struct sh__req *req)
{
    if (method_is(req, "GET") || method_is(req, "HEAD"))
        return false;
    method_not_allowed(req, "GET, HEAD");
    return true;
}

void sh__route(struct sh__req *req)
{
    const char *p = req->path;

    if (method_is(req, "OPTIONS")) {
        preflight(req);
        return;
    }
    if (strcmp(p, "/healthz") == 0) {
        req->route = "/healthz";
        if (!refuse_non_get(req))
            sh__respond(req, 200, "application/json", NULL,
                        "{\"status\":\"ok\"}", 15);
        return;
    }
    if (strcmp(p, "/readyz") == 0) {
        req->route = "/readyz";
        if (!refuse_non_get(req))
            (void)sh__req_offload(req, ready_work, ready_done, req);
        return;
    }
    if (strcmp(p, "/metrics") == 0) {
        req->route = "/metrics";
        if (!refuse_non_get(req))
            metrics(req);
        return;
    }
    if (strcmp(p, "/api/v1/openapi.json") == 0) {
        req->route = "/api/v1/openapi.json";
        if (!refuse_non_get(req))
            sh__respond(req, 200, "application/json", NULL,
                        sh__openapi_json, sh__openapi_json_len);
        return;
    }
    if (strncmp(p, "/api/v1/", 8) == 0 || strcmp(p, "/api/v1") == 0) {
        if (sh__rest_route(req))
            return;
        req->route = "/api/v1/other";
        sh__respond_error(req, 404, "not_found", "no such route", 0);
        return;
    }
    if (strcmp(p, "/graphql") == 0) {
        req->route = "/graphql";
        if (!method_is(req, "GET") && !method_is(req, "POST")) {
            method_not_allowed(req, "GET, POST, OPTIONS");
            return;
        }
#ifdef SH_HAVE_GRAPHQL_HTTP
        if (sh__graphql_http(req))
            return;
#endif
        /* GraphQL over HTTP: not built yet.  graphql_http.c plugs in
         * above (SH_HAVE_GRAPHQL_HTTP). */
        sh__respond_error(req, 501, "internal", "GraphQL not built yet", 0);
        return;
    }
    if (strcmp(p, "/ws") == 0) {
        req->route = "/ws";
        sh__respond(req, 426, "application/json",
                    "Upgrade: websocket\r\n",
                    WS_REQUIRED, sizeof WS_REQUIRED - 1);
        return;
    }
    req->route = "other";
    sh__respond_error(req, 404, "not_found", "no such route", 0);
}
