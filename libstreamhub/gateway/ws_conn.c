/* libstreamhub/gateway/ws_conn.c: WebSocket sessions and the native
 * protocol of ../api/PROTOCOL.md (/ws, subprotocol streamhub.v1).
 *
 * Input: the connection's input buffer goes through the message reader of
 * ws_codec.c, which enforces RFC 6455 framing, fragmentation, UTF-8 and the
 * size limit, answering each violation with its close code.  Text messages
 * go to the protocol: native commands here, graphql-transport-ws in
 * graphql_ws.c.
 *
 * Output: every chain of the output buffer holds whole frames (shared
 * fan-out frames by reference, replies encoded in place; see send_frame).
 * That lets a slow consumer be cut cleanly: keep the partly written first
 * chain, drop the rest, append the 4408 close.  Replies are bounded by
 * input: while the output is over ws.send-buffer-bytes, nothing more is
 * read (server.c, backpressure).
 *
 * Liveness: a ping every ws.ping-interval-ms; a peer silent for
 * ws.pong-timeout-ms is cut.  Authentication: where anonymous access is off,
 * a session that has not authenticated within ws.auth-timeout-ms is closed
 * with 4401; an authenticated one whose token expired is closed 30 s after
 * expiry unless it refreshed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/chat.h"
#include "gw.h"
#include "native_cmd.h"

#define MAX_SUBS_PER_CONN 256
/* After our close frame, the peer has this long to take what is left
 * (little: a slow consumer's backlog is dropped first) before the TCP
 * connection is cut. */
#define CLOSE_GRACE_MS 5000
#define EXPIRY_GRACE_S 30

struct sh__nsub {
    struct sh__nsub *next;
    char *channel;
    struct sh__member *member;
    struct sh__conn *conn;
    json_object *id;                /* a join answered later: its id */
};

/* ---- per-user connection counts ---------------------------------- */

struct sh__usercount {
    struct sh__usercount *next;
    char user_id[64];
    size_t n;
};

/* Take @c out of gw->user_conns (shared by the loops: under gw->lock). */
static void uncount_local(struct sh__conn *c)
{
    struct sh_gateway *gw = c->gw;
    struct sh__usercount **pp = &gw->user_conns;

    if (!c->ws->counted_user)
        return;
    c->ws->counted_user = false;
    pthread_mutex_lock(&gw->lock);
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct sh__usercount *u = *pp;
        if (strcmp(u->user_id, c->ws->user_id) != 0)
            continue;
        if (--u->n == 0) {
            *pp = u->next;
            free(u);
        }
        break;
    }
    pthread_mutex_unlock(&gw->lock);
}

/* Count @c in gw->user_conns under the node's cap: the check and the
 * count are one step under gw->lock, whichever loops the user's
 * connections are on. */
static bool count_local(struct sh__conn *c)
{
    struct sh_gateway *gw = c->gw;
    struct sh__ws *ws = c->ws;
    struct sh__usercount *u;
    bool ok = false;

    pthread_mutex_lock(&gw->lock);
    for (u = gw->user_conns; u != NULL; u = u->next) {
        if (strcmp(u->user_id, ws->user_id) == 0)
            break;
    }
    if (u == NULL && (u = calloc(1, sizeof *u)) != NULL) {
        snprintf(u->user_id, sizeof u->user_id, "%s", ws->user_id);
        u->next = gw->user_conns;
        gw->user_conns = u;
    }
    if (u != NULL && u->n < gw->ws_max_per_user) {
        u->n++;
        ok = true;
    }
    pthread_mutex_unlock(&gw->lock);
    ws->counted_user = ok;
    return ok;
}

/* A worker's part of counting a connection in the cluster, or of taking
 * it back (leave). */
struct count_job {
    struct sh__conn *c;            /* a reference; NULL for a leave */
    sh_hub_t *hub;
    char user_id[64];
    int64_t cap;
    sh_err_t rc;
    sh__count_k k;
    void *arg;
    void (*arg_free)(void *);
};

static void count_work(void *arg)
{
    struct count_job *j = arg;

    if (j->c == NULL)
        sh__online_leave(j->hub, j->user_id);
    else
        j->rc = sh__online_join(j->hub, j->user_id, j->cap);
}

static void leave_done(void *arg, bool canceled)
{
    struct count_job *j = arg;

    /* Not run (shutting down): this node's count at least; the hub's
     * clean stop removes its counts from redis. */
    if (canceled)
        (void)sh__online_add(j->hub, j->user_id, -1);
    free(j);
}

/* Take back a connection of @user_id counted by sh__online_join(). */
static void online_leave(struct sh__loop *l, const char *user_id)
{
    struct sh_gateway *gw = l->gw;
    struct count_job *j;

    if (gw->hub->cluster == NULL) {
        sh__online_add(gw->hub, user_id, -1);
        return;
    }
    j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->hub = gw->hub;
        snprintf(j->user_id, sizeof j->user_id, "%s", user_id);
        if (sh__workers_submit(l->workers, count_work, leave_done, j) ==
            SH_OK)
            return;
        free(j);
    }
    (void)sh__online_add(gw->hub, user_id, -1);
}

static void count_done(void *arg, bool canceled)
{
    struct count_job *j = arg;
    struct sh__conn *c = j->c;
    struct sh__ws *ws = c->ws;
    bool alive = !canceled && ws != NULL && c->state == SH__CONN_WS &&
                 !ws->close_sent;

    if (ws != NULL)
        ws->count_pending = false;
    if (!canceled && j->rc == SH_OK && !alive) {
        /* Counted for a connection that is gone: take it back. */
        online_leave(c->loop, j->user_id);
    } else if (alive && j->rc == SH_OK) {
        ws->online = true;
    } else if (ws != NULL) {
        uncount_local(c);
    }
    if (alive)
        j->k(c, j->rc == SH_OK, j->arg);
    if (j->arg_free != NULL)
        j->arg_free(j->arg);
    if (alive)
        sh__conn_resume(c);
    sh__conn_unref(c);
    free(j);
}

enum sh__count_res sh__ws_count_user(struct sh__conn *c, sh__count_k k,
                                     void *arg, void (*arg_free)(void *))
{
    struct sh_gateway *gw = c->gw;
    struct sh__ws *ws = c->ws;
    struct count_job *j;

    if (ws->counted_user || ws->count_pending || !count_local(c))
        return SH__COUNT_REFUSED;
    if (gw->hub->cluster == NULL) {
        /* One node: User.online at once, as the cap was. */
        if (!sh__online_add(gw->hub, ws->user_id, 1)) {
            uncount_local(c);
            return SH__COUNT_REFUSED;
        }
        ws->online = true;
        return SH__COUNT_OK;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        uncount_local(c);
        return SH__COUNT_REFUSED;
    }
    j->c = c;
    j->hub = gw->hub;
    snprintf(j->user_id, sizeof j->user_id, "%s", ws->user_id);
    j->cap = (int64_t)gw->ws_max_per_user;
    j->k = k;
    j->arg = arg;
    j->arg_free = arg_free;
    sh__conn_ref(c);
    if (sh__workers_submit(c->loop->workers, count_work, count_done, j) !=
        SH_OK) {
        sh__conn_unref(c);
        free(j);
        uncount_local(c);
        return SH__COUNT_REFUSED;
    }
    ws->count_pending = true;
    sh__conn_pause(c);
    return SH__COUNT_PENDING;
}

static void uncount_user(struct sh__conn *c)
{
    uncount_local(c);
    if (c->ws->online) {
        c->ws->online = false;
        online_leave(c->loop, c->ws->user_id);
    }
}

/* ---- output ------------------------------------------------------ */

void sh__ws_mark_dirty(struct sh__conn *c)
{
    struct sh__loop *l = c->loop;

    if (!c->direct) {
        return;                     /* the bufferevent writes it (TLS) */
    }
    if (c->dirty)
        return;
    c->dirty = true;
    sh__conn_ref(c);
    c->dirty_next = l->dirty;
    if (l->dirty == NULL)
        event_active(l->flush_ev, EV_TIMEOUT, 0);
    l->dirty = c;
}

static void output_added(struct evbuffer *buf,
                         const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    if (info->n_added > 0)
        sh__ws_mark_dirty(arg);
}

/* Write what waits in @c's output now: one writev of up to libevent's
 * NUM_WRITE_IOVEC (128) chains, whole frames each (see the file comment),
 * so that several events waiting for one socket leave in one write.  A
 * bufferevent freezes the front of its output so that only it drains it;
 * we are its writer here, as libevent's own write callback is, so thaw it
 * for the write.  Returns evbuffer_write()'s result, errno set. */
int sh__ws_write_out(struct sh__conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int w;

    if (evbuffer_get_length(out) == 0)
        return 0;
    evbuffer_unfreeze(out, 1);
    w = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    return w;
}

/* End of a loop turn's work: one writev per connection with output.
 * What the socket does not take now is left to the bufferevent's write
 * event, enabled only then. */
void sh__ws_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__loop *l = arg;
    struct sh__conn *c = l->dirty;

    (void)fd;
    (void)what;
    l->dirty = NULL;
    while (c != NULL) {
        struct sh__conn *next = c->dirty_next;

        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state == SH__CONN_WS && c->bev != NULL) {
            struct evbuffer *out = bufferevent_get_output(c->bev);
            int w = sh__ws_write_out(c);

            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                sh__conn_close(c);
            } else if (evbuffer_get_length(out) > 0) {
                bufferevent_enable(c->bev, EV_WRITE);
                sh__conn_resume(c);
            } else if (c->closing) {
                sh__conn_close(c);
            } else {
                sh__conn_resume(c);
            }
        }
        sh__conn_unref(c);
        c = next;
    }
}

/* A frame for this connection alone (a reply, a pong) is encoded straight
 * into the output, in one contiguous extent (evbuffer_reserve_space with
 * one vector), so that no frame straddles two chains and the cut of a slow
 * consumer (sh__ws_close) still ends on a frame boundary.  Small replies
 * then share chains: libevent gives every reference (evbuffer_add_
 * reference) a chain of at least 1 KiB, which for a 40-byte reply made
 * the memory behind the send buffer 25 times its byte count.  Shared
 * frames (fan-out) stay references: their bytes are one copy for all. */
static void send_frame(struct sh__conn *c, uint8_t opcode, const void *p,
                       size_t len)
{
    struct evbuffer *out;
    struct evbuffer_iovec v;
    size_t n = sh__ws_header_size(len) + len;

    if (c->bev == NULL || c->ws->close_sent)
        return;
    out = bufferevent_get_output(c->bev);
    if (evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) != 1 ||
        v.iov_len < n)
        return;
    v.iov_len = sh__ws_frame_encode(opcode, p, len, v.iov_base);
    evbuffer_commit_space(out, &v, 1);
}

void sh__ws_send_text(struct sh__conn *c, const char *text, size_t len)
{
    if (c->state != SH__CONN_WS)
        return;
    send_frame(c, SH__WS_OP_TEXT, text, len);
    sh__series_add(c->gw->s_msgs_out, 1);
}

void sh__ws_send_json(struct sh__conn *c, json_object *obj)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (text != NULL)
        sh__ws_send_text(c, text, len);
    json_object_put(obj);
}

static void close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sh__conn_close(arg);
}

static void drop_subscriptions(struct sh__conn *c)
{
    struct sh__ws *ws = c->ws;

    while (ws->subs != NULL) {
        struct sh__nsub *s = ws->subs;
        ws->subs = s->next;
        ws->nsubs--;
        sh__fanout_leave(s->member);
        json_object_put(s->id);
        free(s->channel);
        free(s);
    }
}

void sh__ws_close(struct sh__conn *c, unsigned code, const char *reason)
{
    struct sh__ws *ws = c->ws;
    uint8_t buf[2 + 125];
    size_t n = 0;
    struct timeval tv = { CLOSE_GRACE_MS / 1000,
                          (CLOSE_GRACE_MS % 1000) * 1000 };

    if (c->state != SH__CONN_WS || ws == NULL || ws->close_sent)
        return;
    drop_subscriptions(c);
    if (ws->proto == SH__WS_GRAPHQL)
        sh__gqlws_free(c);
    if (code == SH__WS_CLOSE_TOO_SLOW) {
        /* Keep only the partly written first frame (see the file
         * comment), so that the close frame is next on the wire. */
        struct evbuffer *out = bufferevent_get_output(c->bev);
        struct evbuffer_iovec first;
        struct evbuffer *keep = evbuffer_new();
        /* The bufferevent freezes its output's front (see flush): thaw
         * it, or nothing can be taken off. */
        evbuffer_unfreeze(out, 1);
        if (keep != NULL && evbuffer_peek(out, -1, NULL, &first, 1) > 0) {
            evbuffer_remove_buffer(out, keep, first.iov_len);
            evbuffer_drain(out, evbuffer_get_length(out));
            evbuffer_add_buffer(out, keep);
        }
        evbuffer_freeze(out, 1);
        if (keep != NULL)
            evbuffer_free(keep);
    }
    /* sh__ws_close_encode() writes the whole frame, header included; it is
     * the last frame, so a copied chain is fine. */
    if (sh__ws_close_encode(code, reason, reason != NULL ? strlen(reason) : 0,
                            buf, &n) == SH_OK)
        evbuffer_add(bufferevent_get_output(c->bev), buf, n);
    ws->close_sent = true;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    ws->close_timer = evtimer_new(c->loop->base, close_timer_cb, c);
    if (ws->close_timer != NULL)
        evtimer_add(ws->close_timer, &tv);
    if (!c->dirty &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        sh__conn_close(c);
}

/* ---- timers ------------------------------------------------------ */

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__conn *c = arg;
    struct sh__ws *ws = c->ws;

    (void)fd;
    (void)what;
    if (sh__mono_ms() - ws->last_rx_ms > c->gw->ws_pong_timeout_ms) {
        sh__log_kv(&c->gw->hub->log, SH_LOG_INFO, "websocket peer silent",
                   "peer", c->peer, (char *)NULL);
        sh__conn_close(c);          /* dead peer: nothing to say to it */
        return;
    }
    send_frame(c, SH__WS_OP_PING, "sh", 2);
}

static void auth_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__conn *c = arg;
    struct sh__ws *ws = c->ws;

    (void)fd;
    (void)what;
    if (ws->proto == SH__WS_GRAPHQL && ws->authed)
        sh__ws_close(c, 4403, "Forbidden: token expired");
    else
        sh__ws_close(c, SH__WS_CLOSE_UNAUTHENTICATED,
                     ws->authed ? "token expired" : "authentication timeout");
}

/* The auth deadline's timer, made when first armed: most sessions never
 * arm it (anonymous access, no token), and an event is a tenth of what a
 * subscribed connection keeps.  NULL when out of memory. */
static struct event *auth_timer(struct sh__conn *c)
{
    struct sh__ws *ws = c->ws;

    if (ws->auth_timer == NULL)
        ws->auth_timer = evtimer_new(c->loop->base, auth_cb, c);
    return ws->auth_timer;
}

void sh__ws_arm_expiry(struct sh__conn *c, int64_t exp_s, int grace_s,
                       unsigned code)
{
    int64_t ms = (exp_s + grace_s) * 1000 - sh__now_ms();
    struct timeval tv;

    (void)code;
    if (ms < 0)
        ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    if (auth_timer(c) != NULL)
        evtimer_add(c->ws->auth_timer, &tv);
}

/* ---- session start and end --------------------------------------- */

void sh__ws_start(struct sh__conn *c, struct sh__req *req,
                  enum sh__ws_proto proto)
{
    struct sh_gateway *gw = c->gw;
    struct sh__ws *ws = calloc(1, sizeof *ws);
    struct timeval ping = { gw->ws_ping_ms / 1000,
                            (gw->ws_ping_ms % 1000) * 1000 };
    char tp[SH__TRACEPARENT_LEN + 1] = "";
    const char *h;

    /* Kept for graphql_ws.c's spans (the request goes now). */
    if (proto == SH__WS_GRAPHQL && gw->hub->otel != NULL &&
        (h = sh__req_header(req, "traceparent")) != NULL &&
        strlen(h) == SH__TRACEPARENT_LEN)
        memcpy(tp, h, sizeof tp);
    sh__http_request_free(req->hr);
    req->hr = NULL;
    free(req->path);
    req->path = NULL;
    sh__conn_unref(req->conn);
    free(req);
    if (ws == NULL) {
        sh__conn_close(c);
        return;
    }
    c->ws = ws;
    ws->conn = c;
    ws->proto = proto;
    ws->last_rx_ms = sh__mono_ms();
    sh__ws_reader_init(&ws->reader, gw->ws_max_message);
    sh__http_conn_free(c->http);
    c->http = NULL;
    /* The HTTP header and idle timer has no more work (it acts on HTTP
     * connections only): give its memory back for the session's life. */
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    ws->ping_timer = event_new(c->loop->base, -1, EV_PERSIST, ping_cb, c);
    if (ws->ping_timer == NULL ||
        (proto != SH__WS_GRAPHQL && !gw->allow_anonymous &&
         auth_timer(c) == NULL)) {
        sh__conn_close(c);
        return;
    }
    evtimer_add(ws->ping_timer, &ping);
    c->loop->nws++;
    sh__series_add(gw->s_ws_conns, 1);
    /* Plain TCP: our flush writes (see sh__conn.dirty); the bufferevent's
     * write event runs only while a socket is full.  The 101 answer may
     * still be in the output: the first flush sends it. */
    c->direct = gw->ssl_ctx == NULL;
    if (c->direct) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        bufferevent_disable(c->bev, EV_WRITE);
        /* Whoever appends (fan-out, replies, graphql_ws.c), the
         * connection is queued for the end-of-turn write. */
        evbuffer_add_cb(out, output_added, c);
        if (evbuffer_get_length(out) > 0)
            sh__ws_mark_dirty(c);
    }
    if (proto == SH__WS_GRAPHQL) {
        sh__gqlws_open(c, tp);
    } else if (!gw->allow_anonymous) {
        struct timeval tv = { gw->ws_auth_timeout_ms / 1000,
                              (gw->ws_auth_timeout_ms % 1000) * 1000 };
        evtimer_add(ws->auth_timer, &tv);
    }
    /* Bytes that followed the upgrade request are already buffered. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        sh__ws_on_read(c);
}

void sh__ws_free(struct sh__conn *c)
{
    struct sh__ws *ws = c->ws;

    if (ws == NULL)
        return;
    drop_subscriptions(c);
    if (ws->proto == SH__WS_GRAPHQL)
        sh__gqlws_free(c);
    uncount_user(c);
    if (ws->ping_timer != NULL)
        event_free(ws->ping_timer);
    if (ws->auth_timer != NULL)
        event_free(ws->auth_timer);
    if (ws->close_timer != NULL)
        event_free(ws->close_timer);
    sh__ws_reader_clear(&ws->reader);
    c->loop->nws--;
    sh__series_add(c->gw->s_ws_conns, -1);
    free(ws);
    c->ws = NULL;
}

void sh__ws_on_drain(struct sh__conn *c)
{
    /* The socket took the backlog: back to end-of-turn writes. */
    if (c->direct && c->bev != NULL &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        bufferevent_disable(c->bev, EV_WRITE);
}

/* ---- the native protocol ----------------------------------------- */

static json_object *reply_ok(json_object *id, json_object *result)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_get(id));
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "result",
                           result != NULL ? result
                                          : json_object_new_object());
    return o;
}

static void send_error(struct sh__conn *c, json_object *id, const char *code,
                       const char *message, int retry_after_s)
{
    json_object *o = json_object_new_object(), *e = json_object_new_object();

    json_object_object_add(o, "id", json_object_get(id));
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    if (retry_after_s > 0)
        json_object_object_add(e, "retryAfter",
                               json_object_new_int(retry_after_s));
    json_object_object_add(o, "error", e);
    sh__ws_send_json(c, o);
}

/* The end of a successful auth or refresh: arm the expiry, answer. */
static void auth_reply(struct sh__conn *c, json_object *id)
{
    struct sh__ws *ws = c->ws;
    json_object *res, *user;
    char client[32];

    if (ws->auth_timer != NULL)
        evtimer_del(ws->auth_timer);
    sh__ws_arm_expiry(c, ws->exp_s, EXPIRY_GRACE_S,
                      SH__WS_CLOSE_UNAUTHENTICATED);
    res = json_object_new_object();
    user = json_object_new_object();
    json_object_object_add(user, "id", json_object_new_string(ws->user_id));
    json_object_object_add(user, "username",
                           json_object_new_string(ws->username));
    json_object_object_add(res, "user", user);
    snprintf(client, sizeof client, "%" PRIu64, c->id);
    json_object_object_add(res, "client", json_object_new_string(client));
    json_object_object_add(res, "expiresAt",
                           json_object_new_int64(ws->exp_s));
    sh__ws_send_json(c, reply_ok(id, res));
}

/* The connection count of a first auth is known (sh__ws_count_user). */
static void auth_counted(struct sh__conn *c, bool ok, void *arg)
{
    struct sh__ws *ws = c->ws;
    json_object *id = arg;

    if (!ok) {
        ws->user_id[0] = '\0';
        ws->username[0] = '\0';
        ws->roles = 0;
        ws->exp_s = 0;
        sh__series_add(c->gw->s_rate_limited, 1);
        send_error(c, id, "rate_limited",
                   "too many connections for this user", 0);
        return;
    }
    ws->authed = true;
    auth_reply(c, id);
}

static void put_json(void *arg)
{
    json_object_put(arg);
}

static void op_auth(struct sh__conn *c, const struct sh__native_cmd *cmd)
{
    struct sh__ws *ws = c->ws;
    json_object *id = cmd->id;
    const char *token = cmd->token;
    bool refresh = cmd->op == SH__OP_REFRESH;
    sh_principal_t *p = NULL;
    enum sh__count_res cr;

    if (sh_auth_verify(c->gw->hub, token, strlen(token), &p) != SH_OK) {
        send_error(c, id, "unauthenticated", "invalid or expired token", 0);
        return;
    }
    if (ws->authed && strcmp(ws->user_id, sh_principal_user_id(p)) != 0) {
        sh_principal_free(p);
        send_error(c, id, "forbidden",
                   "the connection is bound to another user", 0);
        return;
    }
    if (refresh && !ws->authed) {
        sh_principal_free(p);
        send_error(c, id, "unauthenticated", "authenticate first", 0);
        return;
    }
    if (ws->authed) {
        ws->exp_s = sh_principal_exp(p);
        sh_principal_free(p);
        auth_reply(c, id);
        return;
    }
    snprintf(ws->user_id, sizeof ws->user_id, "%s", sh_principal_user_id(p));
    snprintf(ws->username, sizeof ws->username, "%s",
             sh_principal_username(p));
    ws->roles = sh_principal_roles(p);
    ws->exp_s = sh_principal_exp(p);
    sh_principal_free(p);
    /* The reply waits for the count (the cluster's, on a worker): the
     * id is kept until then. */
    cr = sh__ws_count_user(c, auth_counted, json_object_get(id), put_json);
    if (cr == SH__COUNT_PENDING)
        return;
    auth_counted(c, cr == SH__COUNT_OK, id);
    json_object_put(id);
}

/* A native member's delivery: the shared frame, by reference. */
static void native_deliver(void *arg, const struct sh_event *ev)
{
    struct sh__nsub *s = arg;

    if (ev == NULL) {
        s->member = NULL;           /* left by the fan-out: hub closing */
        return;
    }
    sh__ws_send_event(s->conn, ev);
}

/* True when @key (may be NULL) is the configured API key. */
static bool api_key_ok(const struct sh_gateway *gw, const char *key)
{
    size_t n = strlen(gw->api_key);

    return key != NULL && n > 0 && strlen(key) == n &&
           sodium_memcmp(key, gw->api_key, n) == 0;
}

static bool may_subscribe(struct sh__conn *c, const char *channel,
                          const char *api_key, const char **code,
                          const char **why)
{
    struct sh__ws *ws = c->ws;
    struct sh_gateway *gw = c->gw;

    if (strncmp(channel, "app:", 4) == 0 && api_key_ok(gw, api_key))
        return true;                /* a publisher's credential */
    if (strncmp(channel, "app:", 4) == 0 &&
        gw->app_subscribe == SH__APP_APIKEY &&
        !(ws->authed && (ws->roles & SH_ROLE_ADMIN))) {
        *code = ws->authed ? "forbidden" : "unauthenticated";
        *why = "app: channels need the API key (app-subscribe = apikey)";
        return false;
    }
    if (strncmp(channel, "app:", 4) == 0 && !ws->authed &&
        gw->app_subscribe == SH__APP_AUTHENTICATED) {
        *code = "unauthenticated";
        *why = "app: channels need an authenticated connection";
        return false;
    }
    if (!ws->authed && !c->gw->allow_anonymous) {
        *code = "unauthenticated";
        *why = "authenticate first";
        return false;
    }
    if (strncmp(channel, "user:", 5) == 0 &&
        (!ws->authed || strcmp(channel + 5, ws->user_id) != 0)) {
        *code = ws->authed ? "forbidden" : "unauthenticated";
        *why = "user channels are for their user only";
        return false;
    }
    return true;
}

static void subscribed(struct sh__conn *c, json_object *id,
                       const char *channel, const sh_subscribe_result_t *rp);
static void native_joined(void *arg, sh_err_t rc,
                          const sh_subscribe_result_t *r, const char *err);

static void op_subscribe(struct sh__conn *c, const struct sh__native_cmd *cmd)
{
    struct sh__ws *ws = c->ws;
    json_object *id = cmd->id;
    const char *channel = cmd->channel, *code, *why;
    const sh_position_t *sincep = cmd->has_since ? &cmd->since : NULL;
    sh_subscribe_result_t r;
    struct sh__nsub *s;
    char err[SH_ERRBUF_SIZE];
    bool later;
    sh_err_t rc;

    if (!may_subscribe(c, channel, cmd->api_key, &code, &why)) {
        send_error(c, id, code, why, 0);
        return;
    }
    for (s = ws->subs; s != NULL; s = s->next) {
        if (strcmp(s->channel, channel) == 0) {
            send_error(c, id, "conflict", "already subscribed", 0);
            return;
        }
    }
    if (ws->nsubs >= MAX_SUBS_PER_CONN) {
        send_error(c, id, "too_large", "too many subscriptions", 0);
        return;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
        free(s);
        send_error(c, id, "internal", "out of memory", 0);
        return;
    }
    s->conn = c;
    /* Join before answering, and answer before any event can go out:
     * deliveries only happen from the dispatcher, later on this loop (on
     * a remote bus, once joined: native_joined). */
    memset(&r, 0, sizeof r);
    err[0] = '\0';
    rc = sh__fanout_join(c->loop->fanout, c, channel, sincep, native_deliver,
                         s, native_joined, s, &s->member, &r, &later, err,
                         sizeof err);
    if (rc != SH_OK) {
        free(s->channel);
        free(s);
        /* The bus names what it lacks ("bus: redis unavailable"), as
         * chat.send tells it; "bus error" alone says nothing. */
        send_error(c, id, sh__err_code(rc, NULL),
                   rc == SH_EINVAL || (rc == SH_EBUS && err[0] != '\0')
                   ? err : sh_strerror(rc), 0);
        return;
    }
    s->next = ws->subs;
    ws->subs = s;
    ws->nsubs++;
    if (later) {
        s->id = id != NULL ? json_object_get(id) : NULL;
        return;
    }
    subscribed(c, id, channel, &r);
}

/* The answer to a join that completed on a worker (a remote bus). */
static void native_joined(void *arg, sh_err_t rc,
                          const sh_subscribe_result_t *r, const char *err)
{
    struct sh__nsub *s = arg;
    struct sh__conn *c = s->conn;
    json_object *id = s->id;

    s->id = NULL;
    if (rc == SH_OK) {
        subscribed(c, id, s->channel, r);
    } else {
        /* The member is gone: so is the subscription. */
        struct sh__ws *ws = c->ws;

        for (struct sh__nsub **pp = &ws->subs; *pp != NULL;
             pp = &(*pp)->next) {
            if (*pp == s) {
                *pp = s->next;
                ws->nsubs--;
                break;
            }
        }
        send_error(c, id, sh__err_code(rc, NULL),
                   rc == SH_EINVAL ? err : sh_strerror(rc), 0);
        free(s->channel);
        free(s);
    }
    json_object_put(id);
}

static void subscribed(struct sh__conn *c, json_object *id,
                       const char *channel, const sh_subscribe_result_t *rp)
{
    sh_subscribe_result_t r = *rp;
    json_object *res;

    res = json_object_new_object();
    json_object_object_add(res, "channel", json_object_new_string(channel));
    json_object_object_add(res, "epoch",
                           json_object_new_string(r.current.epoch));
    json_object_object_add(res, "offset",
                           json_object_new_int64((int64_t)r.current.offset));
    json_object_object_add(res, "recovered",
                           json_object_new_boolean(r.recovered != 0));
    sh__ws_send_json(c, reply_ok(id, res));
}

static void op_unsubscribe(struct sh__conn *c,
                           const struct sh__native_cmd *cmd)
{
    struct sh__ws *ws = c->ws;
    json_object *id = cmd->id;
    const char *channel = cmd->channel;

    for (struct sh__nsub **pp = &ws->subs; *pp != NULL; pp = &(*pp)->next) {
        struct sh__nsub *s = *pp;
        if (strcmp(s->channel, channel) != 0)
            continue;
        *pp = s->next;
        ws->nsubs--;
        sh__fanout_leave(s->member);
        if (s->id != NULL)          /* its subscribe is answered too */
            send_error(c, s->id, "conflict",
                       "unsubscribed before the subscription was made", 0);
        json_object_put(s->id);
        free(s->channel);
        free(s);
        sh__ws_send_json(c, reply_ok(id, NULL));
        return;
    }
    send_error(c, id, "not_found", "not subscribed to that channel", 0);
}

/* chat.send runs on a worker: the chat service may wait on the store. */
struct chat_job {
    struct sh__conn *conn;
    json_object *id;
    char user_id[64];
    char *stream_id;
    char *text;
    size_t len;
    sh_err_t rc;
    sh_chat_message_t *msg;
    int64_t retry_ms;
    char err[SH_ERRBUF_SIZE];
};

static void chat_work(void *arg)
{
    struct chat_job *j = arg;

    j->rc = sh_chat_send(j->conn->gw->hub, j->user_id, j->stream_id, j->text,
                         j->len, &j->msg, &j->retry_ms, j->err,
                         sizeof j->err);
}

static void chat_done(void *arg, bool canceled)
{
    struct chat_job *j = arg;
    struct sh__conn *c = j->conn;

    if (!canceled && c->state == SH__CONN_WS && !c->ws->close_sent) {
        if (j->rc == SH_OK) {
            size_t len = 0;
            const char *text = sh_chat_message_json(j->msg, &len);
            json_object *res = json_object_new_object();
            json_object *m = json_tokener_parse(text != NULL ? text : "{}");
            json_object_object_add(res, "message", m);
            sh__ws_send_json(c, reply_ok(j->id, res));
        } else {
            int retry = (int)((j->retry_ms + 999) / 1000);
            if (j->rc == SH_ERATELIMITED || j->rc == SH_ESLOWMODE)
                sh__series_add(c->gw->s_rate_limited, 1);
            send_error(c, j->id, sh__err_code(j->rc, NULL),
                       j->err[0] != '\0' ? j->err : sh_strerror(j->rc),
                       retry);
        }
    }
    sh_chat_message_free(j->msg);
    json_object_put(j->id);
    free(j->stream_id);
    free(j->text);
    sh__conn_unref(c);
    free(j);
}

static void op_chat_send(struct sh__conn *c, const struct sh__native_cmd *cmd)
{
    struct sh__ws *ws = c->ws;
    json_object *id = cmd->id;
    struct chat_job *j;
    sh_err_t rc;

    if (!ws->authed) {
        send_error(c, id, "unauthenticated", "authenticate first", 0);
        return;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        send_error(c, id, "internal", "out of memory", 0);
        return;
    }
    j->conn = c;
    j->id = json_object_get(id);
    snprintf(j->user_id, sizeof j->user_id, "%s", ws->user_id);
    j->stream_id = strdup(cmd->stream_id);
    j->len = cmd->text_len;
    j->text = malloc(j->len + 1);
    if (j->stream_id == NULL || j->text == NULL) {
        free(j->stream_id);
        free(j->text);
        json_object_put(j->id);
        free(j);
        send_error(c, id, "internal", "out of memory", 0);
        return;
    }
    memcpy(j->text, cmd->text, j->len);
    j->text[j->len] = '\0';
    sh__conn_ref(c);
    rc = sh__conn_offload(c, chat_work, chat_done, j);
    if (rc != SH_OK) {
        sh__conn_unref(c);
        free(j->stream_id);
        free(j->text);
        json_object_put(j->id);
        free(j);
        if (rc == SH_EBUSY)
            send_error(c, id, "rate_limited",
                       "too many commands in flight", 1);
        else
            send_error(c, id, "internal", "server busy", 1);
    }
}

static void op_publish(struct sh__conn *c, const struct sh__native_cmd *cmd)
{
    struct sh__ws *ws = c->ws;
    struct sh_gateway *gw = c->gw;
    json_object *id = cmd->id, *data = cmd->data, *res;
    const char *channel = cmd->channel, *type = cmd->type,
               *key = cmd->api_key;
    const char *text;
    size_t len = 0;
    uint64_t offset = 0;
    char err[SH_ERRBUF_SIZE];
    bool key_ok;
    sh_err_t rc;

    key_ok = api_key_ok(gw, key);
    if (!key_ok && !(ws->authed && (ws->roles & SH_ROLE_ADMIN))) {
        send_error(c, id, ws->authed ? "forbidden" : "unauthenticated",
                   "publishing needs the API key or an admin", 0);
        return;
    }
    if (strncmp(channel, "app:", 4) != 0) {
        send_error(c, id, "forbidden", "only app: channels take publishes",
                   0);
        return;
    }
    text = json_object_to_json_string_length(data, JSON_C_TO_STRING_PLAIN,
                                             &len);
    rc = sh_publish(gw->hub, channel, type != NULL ? type : "app.message",
                    text, len, &offset, err, sizeof err);
    if (rc != SH_OK) {
        send_error(c, id, sh__err_code(rc, NULL), err, 0);
        return;
    }
    res = json_object_new_object();
    json_object_object_add(res, "channel", json_object_new_string(channel));
    json_object_object_add(res, "offset",
                           json_object_new_int64((int64_t)offset));
    sh__ws_send_json(c, reply_ok(id, res));
}

static void native_on_text(struct sh__conn *c, const char *text, size_t len)
{
    struct sh__native_cmd cmd;
    const char *why;

    switch (sh__native_parse(text, len, &cmd, &why)) {
    case SH__NATIVE_CLOSE:
        sh__ws_close(c, SH__WS_CLOSE_NOT_JSON, "not a JSON object");
        break;
    case SH__NATIVE_REPLY:
        send_error(c, cmd.id, "bad_request", why, 0);
        break;
    case SH__NATIVE_OK:
        switch (cmd.op) {
        case SH__OP_AUTH:
        case SH__OP_REFRESH:
            op_auth(c, &cmd);
            break;
        case SH__OP_SUBSCRIBE:
            op_subscribe(c, &cmd);
            break;
        case SH__OP_UNSUBSCRIBE:
            op_unsubscribe(c, &cmd);
            break;
        case SH__OP_CHAT_SEND:
            op_chat_send(c, &cmd);
            break;
        case SH__OP_PUBLISH:
            op_publish(c, &cmd);
            break;
        case SH__OP_PING:
            sh__ws_send_json(c, reply_ok(cmd.id, NULL));
            break;
        }
        break;
    }
    sh__native_cmd_clear(&cmd);
}

/* ---- input ------------------------------------------------------- */

void sh__ws_on_read(struct sh__conn *c)
{
    struct sh_gateway *gw = c->gw;

    while (c->state == SH__CONN_WS && c->ws != NULL && !c->ws->close_sent) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        size_t n = evbuffer_get_length(in), used = 0;
        struct sh__ws_event ev;
        uint16_t code = 0;
        enum sh__ws_status st;
        uint8_t *data;

        if (n == 0)
            return;
        /* A count in the cluster decides the auth this input follows. */
        if (c->ws->count_pending) {
            sh__conn_pause(c);
            return;
        }
        /* Every message may be answered: while the answers wait in the
         * output over the send buffer, read no more (server.c,
         * backpressure).  The drain resumes reading. */
        if (sh__conn_out_over(c)) {
            sh__conn_pause(c);
            return;
        }
        c->ws->last_rx_ms = sh__mono_ms();
        data = evbuffer_pullup(in, -1);
        st = sh__ws_reader_feed(&c->ws->reader, data, n, &used, &ev, &code);
        if (st == SH__WS_ERROR) {
            sh__ws_close(c, code, code == SH__WS_CLOSE_BAD_DATA
                                      ? "invalid UTF-8"
                                  : code == SH__WS_CLOSE_TOO_BIG
                                      ? "message too big"
                                  : code == SH__WS_CLOSE_UNSUPPORTED
                                      ? "binary messages are not accepted"
                                      : "protocol error");
            return;
        }
        if (st == SH__WS_NEED_MORE) {
            evbuffer_drain(in, used);
            return;
        }
        /* ev's bytes live in @in until drained: handle, then drain. */
        switch (ev.kind) {
        case SH__WS_EV_TEXT:
            sh__series_add(gw->s_msgs_in, 1);
            if (c->ws->proto == SH__WS_GRAPHQL)
                sh__gqlws_on_text(c, (const char *)ev.data, ev.len);
            else
                native_on_text(c, (const char *)ev.data, ev.len);
            break;
        case SH__WS_EV_PING:
            send_frame(c, SH__WS_OP_PONG, ev.data, ev.len);
            break;
        case SH__WS_EV_PONG:
            break;
        case SH__WS_EV_CLOSE:
            /* Echo the peer's code (RFC 6455 5.5.1); none -> 1000. */
            sh__ws_close(c, ev.close_code == SH__WS_CLOSE_NO_STATUS
                                ? SH__WS_CLOSE_NORMAL
                                : ev.close_code, NULL);
            break;
        }
        if (c->state == SH__CONN_CLOSED || c->bev == NULL)
            return;
        evbuffer_drain(bufferevent_get_input(c->bev), used);
    }
}
