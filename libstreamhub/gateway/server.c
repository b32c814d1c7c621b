/* libstreamhub/gateway/server.c: connections, HTTP/1.1 requests, the
 * ordered response queue and the respond helpers (server.h): the
 * gateway's bottom floor.  Routes and protocols above HTTP are reached through
 * gw->ops only.
 *
 * A connection's life:
 *
 *   accept --> HTTP --(upgrade slot reaches the head)--> WS --> CLOSED
 *                \--(error, Connection: close, timeout, EOF)-----^
 *
 * Reading: the input buffer is fed to the http-parser layer (http_conn.c),
 * which hands back complete requests in order; each takes a slot at the
 * tail of the response queue and is routed.  Writing: flush() moves ready
 * slots from the head to the output, so responses leave in request order
 * whatever order the workers finish in.
 *
 * Timeouts (slowloris): while a request is being received the connection
 * has http.header-timeout-ms to complete it, counted from its first byte
 * and not extended by further bytes; while idle between requests,
 * http.idle-timeout-ms.  While requests are in flight no timer runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "core/cidr_int.h"
#include "streamhub/auth.h"
#include "server.h"

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void flush(struct sh__conn *c);
static void eof_check(struct sh__conn *c);

/* Requests a connection may have parsed and not yet answered: reading
 * pauses there (and the parser holds at most as many more). */
#define MAX_PIPELINED 16

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connection lifetime ---------------------------------------- */

void sh__conn_ref(struct sh__conn *c)
{
    c->refs++;
}

static void conn_destroy(struct sh__conn *c)
{
    struct sh__loop *l = c->loop;

    while (c->head != NULL) {
        struct sh__slot *s = c->head;
        c->head = s->next;
        if (s->out != NULL)
            evbuffer_free(s->out);
        free(s);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->nconns--;
    free(c);
}

void sh__conn_unref(struct sh__conn *c)
{
    if (--c->refs == 0)
        conn_destroy(c);
}

void sh__conn_close(struct sh__conn *c)
{
    struct sh_gateway *gw = c->gw;
    struct sh__loop *l = c->loop;

    if (c->state == SH__CONN_CLOSED)
        return;
    if (c->ws != NULL)
        gw->ops->ws_free(c);
    c->state = SH__CONN_CLOSED;
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    sh__http_conn_free(c->http);
    c->http = NULL;
    sh__series_add(gw->s_conns, -1);
    sh__series_add(l->s_conns, -1);
    sh__conn_unref(c);   /* the connection's own reference */
    if (gw->shutting_down && l->nconns == 0 && l->drained != NULL) {
        /* Last one out: this loop's part of the graceful shutdown is
         * complete. */
        event_active(l->drained, EV_TIMEOUT, 0);
    }
}

/* ---- backpressure ------------------------------------------------ */

/* Every reply path (HTTP responses, native replies, graphql-ws messages,
 * pongs) appends to one output buffer per connection, as fan-out does.
 * Replies are answers to what the peer sends, so their bound is on input:
 * while the output is over the send buffer, or an HTTP connection has
 * MAX_PIPELINED requests unanswered, nothing more is read from it (the
 * kernel's buffers fill and TCP flow control holds the peer).  Reading
 * resumes once the output is down to half the send buffer (hysteresis)
 * and the requests have been answered.  Fan-out cannot wait for a peer:
 * it closes one over the send buffer with 4408 (sh__ws_send_event). */

bool sh__conn_out_over(const struct sh__conn *c)
{
    return c->bev != NULL &&
           evbuffer_get_length(bufferevent_get_output(c->bev)) >
               c->gw->ws_send_buffer;
}

static bool input_blocked(const struct sh__conn *c)
{
    return sh__conn_out_over(c) ||
           (c->state == SH__CONN_HTTP && c->nslots >= MAX_PIPELINED);
}

void sh__conn_pause(struct sh__conn *c)
{
    if (c->bev == NULL || c->read_paused)
        return;
    c->read_paused = true;
    bufferevent_disable(c->bev, EV_READ);
}

void sh__conn_resume(struct sh__conn *c)
{
    if (!c->read_paused || c->bev == NULL || c->closing ||
        c->state == SH__CONN_CLOSED)
        return;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
            c->gw->ws_send_buffer / 2 ||
        (c->state == SH__CONN_HTTP && c->nslots >= MAX_PIPELINED))
        return;
    c->read_paused = false;
    if (!c->peer_eof)
        bufferevent_enable(c->bev, EV_READ);
    /* What was read before the pause is still in the input buffer and
     * no socket event will announce it: run the read callback, deferred
     * so that it never runs inside our caller. */
    bufferevent_trigger(c->bev, EV_READ,
                        BEV_TRIG_DEFER_CALLBACKS |
                            BEV_TRIG_IGNORE_WATERMARKS);
}

/* ---- timers ------------------------------------------------------ */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__conn *c = arg;

    (void)fd;
    (void)what;
    if (c->state == SH__CONN_HTTP)
        sh__conn_close(c);
}

static void arm(struct sh__conn *c, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (c->timer == NULL)
        return;
    if (ms < 0)
        evtimer_del(c->timer);
    else
        evtimer_add(c->timer, &tv);
}

/* ---- accepting (the socket comes from the listener floor) -------- */

char *sh__ip_key(const struct sockaddr *sa, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN];

    if (cap == 0)
        return out;
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text) != NULL)
            snprintf(out, cap, "%s", text);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        struct in6_addr a = s6->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            if (inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof text) !=
                NULL)
                snprintf(out, cap, "%s", text);
            return out;
        }
        memset(&a.s6_addr[8], 0, 8);
        if (inet_ntop(AF_INET6, &a, text, sizeof text) != NULL)
            snprintf(out, cap, "%s/64", text);
    }
    return out;
}

void sh__conn_accept(struct sh__loop *l, evutil_socket_t fd,
                     const struct sockaddr *sa)
{
    struct sh_gateway *gw = l->gw;
    struct sh__http_limits lim = {
        .max_header_bytes = gw->max_header_bytes,
        .max_headers = gw->max_headers,
        .max_body_bytes = gw->max_body_bytes,
        .max_pipelined = MAX_PIPELINED,
    };
    struct sh__conn *c;
    int one = 1;

    c = calloc(1, sizeof *c);
    if (c == NULL || sh__http_conn_new(&lim, &c->http) != SH_OK) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->gw = gw;
    c->loop = l;
    c->refs = 1;
    atomic_init(&c->in_flight, 0);
    c->id = atomic_fetch_add(&gw->next_conn_id, 1) + 1;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                  c->peer, sizeof c->peer);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  c->peer, sizeof c->peer);
    sh__ip_key(sa, c->ip_key, sizeof c->ip_key);
    if (gw->ntrusted > 0 && sh__cidr_match(gw->trusted, gw->ntrusted, sa))
        snprintf(c->proxy, sizeof c->proxy, "%s", c->peer);
    if (gw->ssl_ctx != NULL) {
        SSL *ssl = SSL_new(gw->ssl_ctx);
        c->bev = ssl == NULL ? NULL
                             : bufferevent_openssl_socket_new(
                                   l->base, fd, ssl,
                                   BUFFEREVENT_SSL_ACCEPTING,
                                   BEV_OPT_CLOSE_ON_FREE);
    } else {
        c->bev = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->timer = evtimer_new(l->base, timer_cb, c);
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->timer != NULL)
            event_free(c->timer);
        sh__http_conn_free(c->http);
        free(c);
        return;
    }
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    sh__series_add(gw->s_conns, 1);
    sh__series_add(l->s_conns, 1);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    /* The write callback runs once the output is down to half the send
     * buffer: where paused reading resumes (sh__conn_resume). */
    bufferevent_setwatermark(c->bev, EV_WRITE, gw->ws_send_buffer / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm(c, gw->header_timeout_ms);
}

/* ---- requests ---------------------------------------------------- */

/* The client address of @req (trusted-proxies).  A TCP peer outside the
 * trusted blocks is the client, whatever its headers say: anyone can send
 * them.  Behind a trusted proxy, X-Forwarded-For lists the hops, each
 * proxy appending the address it was reached from, so only the right end
 * is vouched for: walk it from the right past trusted hops; the first
 * untrusted hop is the client (all trusted: the leftmost).  Without that
 * header, X-Real-IP.  A hop that cannot be read (garbage, "unknown") stops
 * the walk and the peer's own address stays: nothing past it can be
 * attributed. */
static void client_address(struct sh__req *req)
{
    const struct sh__conn *c = req->conn;
    const struct sh_gateway *gw = c->gw;
    const struct sh__http_request *hr = req->hr;
    const struct sh__http_header *real;
    struct sockaddr_storage hop, client;
    bool have = false, any_xff = false, stop = false, found = false;
    char text[INET6_ADDRSTRLEN];

    snprintf(req->peer, sizeof req->peer, "%s", c->peer);
    snprintf(req->ip_key, sizeof req->ip_key, "%s", c->ip_key);
    if (c->proxy[0] == '\0')
        return;
    /* Several X-Forwarded-For fields are one list in field order: the
     * last field holds the right end. */
    for (size_t i = hr->nheaders; i-- > 0 && !stop && !found;) {
        const struct sh__http_header *h = &hr->headers[i];
        size_t e = h->value_len, b;

        if (strcasecmp(h->name, "X-Forwarded-For") != 0)
            continue;
        any_xff = true;
        for (;;) {
            for (b = e; b > 0 && h->value[b - 1] != ','; b--)
                ;
            if (!sh__ip_parse(h->value + b, e - b, &hop)) {
                stop = true;
                break;
            }
            client = hop;
            have = true;
            if (!sh__cidr_match(gw->trusted, gw->ntrusted,
                                (const struct sockaddr *)&hop)) {
                found = true;
                break;
            }
            if (b == 0)
                break;
            e = b - 1;
        }
    }
    if (stop)
        return;
    if (!any_xff) {
        real = sh__http_request_header(hr, "X-Real-IP", NULL);
        if (real == NULL || !sh__ip_parse(real->value, real->value_len,
                                          &client))
            return;
        have = true;
    }
    if (!have)
        return;
    if (client.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&client)->sin_addr, text,
                  sizeof text);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&client)->sin6_addr,
                  text, sizeof text);
    snprintf(req->peer, sizeof req->peer, "%s", text);
    sh__ip_key((const struct sockaddr *)&client, req->ip_key,
               sizeof req->ip_key);
}

const char *sh__req_header(const struct sh__req *req, const char *name)
{
    const struct sh__http_header *h =
        sh__http_request_header(req->hr, name, NULL);

    return h != NULL ? h->value : NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode @n bytes of @s ('+' as space when @plus); NULL when the
 * encoding is bad or decodes to NUL. */
static char *pct_decode(const char *s, size_t n, bool plus)
{
    char *out = malloc(n + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

char *sh__query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
            return pct_decode(p + nl + 1, len - nl - 1, true);
        if (len == nl && strncmp(p, name, nl) == 0)
            return strdup("");
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

/* W3C Trace Context: "00-<32 hex trace>-<16 hex parent>-<2 hex flags>",
 * trace and parent not all zeros.  Copies the trace id when valid. */
static void parse_traceparent(const char *tp, char out[33])
{
    out[0] = '\0';
    if (tp == NULL || strlen(tp) < 55 || tp[2] != '-' || tp[35] != '-' ||
        tp[52] != '-' || (tp[0] == 'f' && tp[1] == 'f'))
        return;
    bool nonzero = false;
    for (int i = 3; i < 35; i++) {
        int v = hexval(tp[i]);
        if (v < 0 || (tp[i] >= 'A' && tp[i] <= 'F'))
            return;
        nonzero |= v != 0;
    }
    if (!nonzero)
        return;
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
}

sh_err_t sh__req_auth(struct sh__req *req)
{
    const char *h = sh__req_header(req, "Authorization");
    sh_principal_t *p = NULL;
    sh_err_t rc;

    req->authed = false;
    if (h == NULL)
        return SH_OK;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return strncasecmp(h, "Apikey ", 7) == 0 ? SH_OK
                                                 : SH_EUNAUTHENTICATED;
    h += 7;
    while (*h == ' ')
        h++;
    rc = sh_auth_verify(req->conn->gw->hub, h, strlen(h), &p);
    if (rc != SH_OK)
        return SH_EUNAUTHENTICATED;
    snprintf(req->user_id, sizeof req->user_id, "%s",
             sh_principal_user_id(p));
    snprintf(req->username, sizeof req->username, "%s",
             sh_principal_username(p));
    req->roles = sh_principal_roles(p);
    req->authed = true;
    sh_principal_free(p);
    return SH_OK;
}

bool sh__origin_allowed(const struct sh_gateway *gw, const char *origin,
                        const char *host)
{
    const char *list = gw->cors_origins, *p;
    size_t ol;

    if (origin == NULL)
        return true;      /* not a browser: nothing to protect */
    if (strcmp(list, "*") == 0)
        return true;
    ol = strlen(origin);
    for (p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == ol && strncmp(p, origin, ol) == 0)
            return true;
        p += len;
        while (*p == ' ' || *p == ',')
            p++;
    }
    /* Same origin: the Origin's authority equals Host. */
    if (host != NULL) {
        const char *auth = strstr(origin, "://");
        if (auth != NULL && strcasecmp(auth + 3, host) == 0)
            return true;
    }
    return false;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

static void req_free(struct sh__req *req)
{
    sh__http_request_free(req->hr);
    free(req->path);
    free(req->extra_headers);
    json_object_put(req->result);
    sh__conn_unref(req->conn);
    free(req);
}

static void access_log(struct sh__req *req, int status, size_t len)
{
    struct sh_gateway *gw = req->conn->gw;
    double secs = (double)(mono_us() - req->start_us) / 1e6;
    char labels[96];

    if (sh__span_on(&req->span)) {
        char name[SH__SPAN_NAME_MAX];
        snprintf(name, sizeof name, "%s %s", req->hr->method, req->route);
        sh__span_set_name(&req->span, name);
        sh__span_attr_str(&req->span, "http.request.method", req->hr->method);
        sh__span_attr_str(&req->span, "http.route", req->route);
        sh__span_attr_str(&req->span, "url.path", req->path);
        sh__span_attr_int(&req->span, "http.response.status_code", status);
        if (status >= 500)
            sh__span_fail(&req->span);
        sh__span_end(&req->span);
    }
    snprintf(labels, sizeof labels, "%s,%d", req->route, status);
    sh__series_add(sh__metric_series(gw->m_requests, labels), 1);
    sh__series_observe(sh__metric_series(gw->m_latency, req->route), secs);
    if (!sh__log_on(&gw->hub->log, SH_LOG_INFO))
        return;
    json_object *f = json_object_new_object();
    json_object_object_add(f, "request_id",
                           json_object_new_string(req->request_id));
    if (req->trace_id[0] != '\0')
        json_object_object_add(f, "trace_id",
                               json_object_new_string(req->trace_id));
    json_object_object_add(f, "method",
                           json_object_new_string(req->hr->method));
    json_object_object_add(f, "path", json_object_new_string(req->path));
    json_object_object_add(f, "status", json_object_new_int(status));
    json_object_object_add(f, "bytes", json_object_new_int64((int64_t)len));
    json_object *ms = json_object_new_double(secs * 1000.0);
    json_object_set_serializer(ms, json_object_double_to_json_string,
                               (void *)"%.3f", NULL);
    json_object_object_add(f, "duration_ms", ms);
    json_object_object_add(f, "peer", json_object_new_string(req->peer));
    if (req->conn->proxy[0] != '\0')
        json_object_object_add(f, "proxy",
                               json_object_new_string(req->conn->proxy));
    sh__log(&gw->hub->log, SH_LOG_INFO, "request", f);
}

void sh__respond(struct sh__req *req, int status, const char *ctype,
                 const char *extra_headers, const void *body, size_t len)
{
    struct sh__conn *c = req->conn;
    struct sh__slot *slot = req->slot;
    struct sh_gateway *gw = c->gw;
    const char *origin = sh__req_header(req, "Origin");
    bool close_after = !req->hr->keep_alive || gw->shutting_down ||
                       slot->close_after;

    access_log(req, status, len);
    if (c->state == SH__CONN_CLOSED) {
        req_free(req);
        return;
    }
    slot->out = evbuffer_new();
    if (slot->out == NULL) {
        close_after = true;
    } else {
        evbuffer_add_printf(slot->out, "HTTP/1.1 %d %s\r\n", status,
                            reason_phrase(status));
        /* A 304's Content-Length would have to be the 200's (RFC 9110
         * 8.6): none is simpler. */
        if (status != 304)
            evbuffer_add_printf(slot->out, "Content-Length: %zu\r\n", len);
        evbuffer_add_printf(slot->out, "X-Request-Id: %s\r\n",
                            req->request_id);
        if (ctype != NULL)
            evbuffer_add_printf(slot->out, "Content-Type: %s\r\n", ctype);
        if (origin != NULL &&
            sh__origin_allowed(gw, origin, sh__req_header(req, "Host")))
            evbuffer_add_printf(slot->out,
                                "Access-Control-Allow-Origin: %s\r\n"
                                "Access-Control-Allow-Credentials: true\r\n"
                                "Access-Control-Expose-Headers: "
                                "X-Request-Id, Retry-After\r\n"
                                "Vary: Origin\r\n", origin);
        if (close_after)
            evbuffer_add(slot->out, "Connection: close\r\n", 19);
        if (extra_headers != NULL)
            evbuffer_add(slot->out, extra_headers, strlen(extra_headers));
        evbuffer_add(slot->out, "\r\n", 2);
        if (len > 0 && strcmp(req->hr->method, "HEAD") != 0)
            evbuffer_add(slot->out, body, len);
    }
    slot->close_after = close_after;
    slot->ready = true;
    slot->req = NULL;
    req_free(req);
    flush(c);
}

void sh__respond_json(struct sh__req *req, int status, json_object *obj,
                      const char *extra_headers)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (text == NULL) {
        json_object_put(obj);
        sh__respond(req, 500, "application/json", NULL,
                    "{\"error\":{\"code\":\"internal\",\"message\":"
                    "\"out of memory\"}}", 56);
        return;
    }
    sh__respond(req, status, "application/json", extra_headers, text, len);
    json_object_put(obj);
}

const char *sh__err_code(sh_err_t err, int *status)
{
    int st;
    const char *code;

    switch (err) {
    case SH_OK: st = 200; code = "ok"; break;
    case SH_EINVAL: case SH_ETOOLONG: case SH_EBADUTF8: case SH_EEMPTY:
    case SH_EBLOCKEDTERM:
        st = 400; code = "bad_request"; break;
    case SH_EUNAUTHENTICATED: st = 401; code = "unauthenticated"; break;
    case SH_EFORBIDDEN: case SH_EBANNED: case SH_ETIMEDOUT_USER:
    case SH_EFOLLOWERSONLY:
        st = 403; code = "forbidden"; break;
    case SH_ENOTFOUND: st = 404; code = "not_found"; break;
    case SH_ECONFLICT: st = 409; code = "conflict"; break;
    case SH_ETOOBIG: st = 413; code = "too_large"; break;
    case SH_ERATELIMITED: case SH_ESLOWMODE: case SH_EBUSY:
        st = 429; code = "rate_limited"; break;
    /* The bus is down (bus = redis): refused, retry later or elsewhere. */
    case SH_EBUS: st = 503; code = "internal"; break;
    default: st = 500; code = "internal"; break;
    }
    if (status != NULL)
        *status = st;
    return code;
}

void sh__respond_error(struct sh__req *req, int status, const char *code,
                       const char *message, int retry_after_s)
{
    json_object *o = json_object_new_object(), *e = json_object_new_object();
    char extra[64];

    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    if (retry_after_s > 0)
        json_object_object_add(e, "retryAfter",
                               json_object_new_int(retry_after_s));
    json_object_object_add(o, "error", e);
    if (retry_after_s > 0)
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", retry_after_s);
    if (status == 429)
        sh__series_add(req->conn->gw->s_rate_limited, 1);
    sh__respond_json(req, status, o, retry_after_s > 0 ? extra : NULL);
}

bool sh__req_dead(const struct sh__req *req)
{
    return req->conn->state == SH__CONN_CLOSED;
}

void sh__respond_rate_limited(struct sh__req *req, const char *message,
                              int retry_after_s)
{
    if (retry_after_s < 1)
        retry_after_s = 1;
    if (req->conn->gw->ops->rate_limited(req, message, retry_after_s))
        return;
    sh__respond_error(req, 429, "rate_limited", message, retry_after_s);
}

sh_err_t sh__conn_offload(struct sh__conn *c, sh__work_fn work,
                          sh__work_done_fn done, void *arg)
{
    sh_err_t rc = sh__workers_submit_bounded(c->loop->workers, &c->in_flight,
                                             c->gw->max_in_flight_conn,
                                             work, done, arg);

    if (rc == SH_EBUSY)
        sh__series_add(c->gw->s_rate_limited, 1);
    return rc;
}

/* A traced request's job: its span's context is current on the worker
 * while @work runs, so the store and bus calls in it join the trace. */
struct traced_job {
    sh__work_fn work;
    sh__work_done_fn done;
    void *arg;
    struct sh__trace_ctx ctx;
};

static void traced_work(void *arg)
{
    struct traced_job *t = arg;
    const struct sh__trace_ctx *saved = sh__trace_cur;

    sh__trace_cur = &t->ctx;
    t->work(t->arg);
    sh__trace_cur = saved;
}

static void traced_done(void *arg, bool canceled)
{
    struct traced_job *t = arg;
    sh__work_done_fn done = t->done;
    void *a = t->arg;

    free(t);
    done(a, canceled);
}

bool sh__req_offload(struct sh__req *req, sh__work_fn work,
                     sh__work_done_fn done, void *arg)
{
    struct traced_job *t = NULL;
    sh_err_t rc;

    /* Only a recording span costs this allocation. */
    if (sh__span_on(&req->span) &&
        (t = malloc(sizeof *t)) != NULL) {
        *t = (struct traced_job){ work, done, arg, req->span.ctx };
        work = traced_work;
        done = traced_done;
        arg = t;
    }
    rc = sh__workers_submit_bounded(
        req->conn->loop->workers, &req->conn->in_flight,
        req->conn->gw->max_in_flight_conn, work, done, arg);
    if (rc != SH_OK)
        free(t);

    if (rc == SH_OK)
        return true;
    if (rc == SH_EBUSY)
        sh__respond_rate_limited(req, "server busy: too many requests in "
                                 "flight", 1);
    else
        sh__respond_error(req, 503, "internal", "server busy or stopping",
                          1);
    return false;
}

/* A new slot at the tail of @c's queue. */
static struct sh__slot *slot_push(struct sh__conn *c)
{
    struct sh__slot *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    if (c->tail != NULL)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    c->nslots++;
    return s;
}

static void handle_request(struct sh__conn *c, struct sh__http_request *hr)
{
    struct sh_gateway *gw = c->gw;
    struct sh__req *req = calloc(1, sizeof *req);
    const char *q;
    int64_t retry_ms = 0;

    if (req == NULL || (req->slot = slot_push(c)) == NULL) {
        free(req);
        sh__http_request_free(hr);
        sh__conn_close(c);
        return;
    }
    req->conn = c;
    sh__conn_ref(c);
    c->receiving = false;          /* this request is complete */
    req->slot->req = req;
    req->hr = hr;
    req->start_us = mono_us();
    req->route = "other";
    snprintf(req->request_id, sizeof req->request_id, "%s%024" PRIx64,
             gw->id_prefix,
             (uint64_t)atomic_fetch_add(&gw->next_request, 1) + 1);
    parse_traceparent(sh__req_header(req, "traceparent"), req->trace_id);
    sh__span_start_server(gw->hub->otel, &req->span, hr->method,
                          sh__req_header(req, "traceparent"));
    client_address(req);
    q = memchr(hr->target, '?', hr->target_len);
    req->query = q != NULL ? q + 1 : "";
    req->path = pct_decode(hr->target,
                           q != NULL ? (size_t)(q - hr->target)
                                     : hr->target_len, false);
    if (req->path == NULL || req->path[0] != '/') {
        if (req->path == NULL)
            req->path = strdup("?");
        req->slot->close_after = true;
        sh__respond_error(req, 400, "bad_request", "bad request target", 0);
        return;
    }
    if (!sh__limiter_take(gw->ip_limiter, req->ip_key, strlen(req->ip_key), 1,
                          sh__mono_ms(), &retry_ms)) {
        sh__respond_rate_limited(req, "too many requests",
                                 (int)((retry_ms + 999) / 1000));
        return;
    }
    if (hr->upgrade) {
        gw->ops->upgrade(req);
        return;
    }
    /* A copy: @req may be answered (and freed) inside the route. */
    struct sh__trace_ctx ctx = req->span.ctx;
    const struct sh__trace_ctx *saved = sh__trace_cur;
    if (ctx.otel != NULL)
        sh__trace_cur = &ctx;
    gw->ops->route(req);
    sh__trace_cur = saved;
}

void sh__conn_switch(struct sh__req *req, const char *resp, size_t n,
                     int proto)
{
    struct sh__conn *c = req->conn;

    /* The WebSocket is this client's for its life. */
    snprintf(c->peer, sizeof c->peer, "%s", req->peer);
    snprintf(c->ip_key, sizeof c->ip_key, "%s", req->ip_key);
    access_log(req, 101, 0);
    req->slot->out = evbuffer_new();
    if (req->slot->out == NULL || n == 0) {
        sh__conn_close(c);
        return;
    }
    evbuffer_add(req->slot->out, resp, n);
    req->slot->upgrade = true;
    req->slot->ready = true;
    req->status = proto;
    flush(c);
}

/* Write ready slots from the head, in order. */
static void flush(struct sh__conn *c)
{
    while (c->state == SH__CONN_HTTP && c->head != NULL && c->head->ready) {
        struct sh__slot *s = c->head;
        struct evbuffer *out = bufferevent_get_output(c->bev);

        c->head = s->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->nslots--;
        if (s->out != NULL) {
            evbuffer_add_buffer(out, s->out);
            evbuffer_free(s->out);
        }
        if (s->upgrade) {
            struct sh__req *req = s->req;
            free(s);
            arm(c, -1);
            c->state = SH__CONN_WS;
            c->in_input = false;
            if (c->read_paused) {   /* HTTP's bound is not WebSocket's */
                c->read_paused = false;
                bufferevent_enable(c->bev, EV_READ);
            }
            c->gw->ops->ws_start(c, req, req->status);
            return;
        }
        if (s->close_after) {
            free(s);
            c->closing = true;
            bufferevent_disable(c->bev, EV_READ);
            /* The write callback closes once the output is written. */
            if (evbuffer_get_length(out) == 0)
                sh__conn_close(c);
            return;
        }
        free(s);
    }
    if (c->state != SH__CONN_HTTP || c->closing)
        return;
    sh__conn_resume(c);
    if (c->peer_eof)
        eof_check(c);
    else if (c->head == NULL)
        arm(c, c->gw->idle_timeout_ms);
}

/* After a half-close: once every request read has been answered and
 * written, close.  Not while the input is being handled (a response
 * written in between is not the last) nor while reading is paused (the
 * input may still hold requests). */
static void eof_check(struct sh__conn *c)
{
    if (!c->peer_eof || c->in_input || c->state != SH__CONN_HTTP ||
        c->closing || c->head != NULL || c->read_paused)
        return;
    c->closing = true;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        sh__conn_close(c);
}

static void http_input(struct sh__conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    c->in_input = true;

    while (c->state == SH__CONN_HTTP && !c->closing) {
        size_t n = evbuffer_get_length(in), used = 0;
        struct sh__http_request *hr;
        enum sh__http_status st;
        bool got = false;

        if (n == 0)
            break;
        if (input_blocked(c)) {
            sh__conn_pause(c);      /* flush() or the drain resumes */
            break;
        }
        /* The request's first bytes start its clock; later bytes do not
         * extend it (a slowloris client trickles them). */
        if (c->head == NULL && !c->receiving) {
            arm(c, c->gw->header_timeout_ms);
            c->receiving = true;
        }
        st = sh__http_conn_feed(c->http, evbuffer_pullup(in, -1), n, &used);
        evbuffer_drain(in, used);
        while (c->state == SH__CONN_HTTP &&
               (hr = sh__http_conn_next(c->http)) != NULL) {
            got = true;
            handle_request(c, hr);
        }
        if (c->state != SH__CONN_HTTP) {
            c->in_input = false;
            return;
        }
        if (st == SH__HTTP_ERROR) {
            c->in_input = false;
            const char *why = "";
            int status = sh__http_conn_error(c->http, &why);
            struct sh__slot *s = slot_push(c);
            if (s == NULL) {
                sh__conn_close(c);
                return;
            }
            s->out = evbuffer_new();
            if (s->out != NULL) {
                char body[160];
                int blen = snprintf(body, sizeof body,
                                    "{\"error\":{\"code\":\"%s\",\"message\":"
                                    "\"%s\"}}",
                                    status == 413 ? "too_large"
                                                  : "bad_request", why);
                evbuffer_add_printf(s->out,
                                    "HTTP/1.1 %d %s\r\nContent-Type: "
                                    "application/json\r\nContent-Length: "
                                    "%d\r\nConnection: close\r\n\r\n%s",
                                    status, reason_phrase(status), blen,
                                    body);
            }
            sh__log_kv(&c->gw->hub->log, SH_LOG_INFO, "bad request",
                       "peer", c->peer, "why", why, (char *)NULL);
            s->ready = true;
            s->close_after = true;
            bufferevent_disable(c->bev, EV_READ);
            flush(c);
            return;
        }
        if (st == SH__HTTP_UPGRADE || (!got && used == 0))
            break;
        if (used == 0 && got)
            continue;   /* the pipeline had filled: try again */
        if (used == n)
            break;
    }
    c->in_input = false;
    eof_check(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct sh__conn *c = arg;

    (void)bev;
    sh__conn_ref(c);     /* handlers may close it under us */
    if (c->state == SH__CONN_HTTP)
        http_input(c);
    else if (c->state == SH__CONN_WS)
        c->gw->ops->ws_read(c);
    sh__conn_unref(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct sh__conn *c = arg;

    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        sh__conn_close(c);
        return;
    }
    sh__conn_ref(c);
    if (c->state == SH__CONN_WS)
        c->gw->ops->ws_drain(c);
    if (c->state != SH__CONN_CLOSED)
        sh__conn_resume(c);         /* the output is down to half */
    sh__conn_unref(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct sh__conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        c->state == SH__CONN_HTTP && !c->closing) {
        /* A half-close (FIN after the last request) is not a hang-up:
         * the responses queued for the peer are still owed.  Reading
         * has stopped; what was read is handled, and the connection
         * closes once its queue is written (eof_check). */
        c->peer_eof = true;
        sh__conn_ref(c);
        http_input(c);
        eof_check(c);
        sh__conn_unref(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        sh__conn_close(c);
}
