/* libstreamhub/gateway/gw.h: the gateway's connections, requests and
 * routes (private).  @locality loop thread, unless a field says otherwise.
 *
 * A connection starts as HTTP/1.1 and may be upgraded to a WebSocket.  HTTP
 * requests are parsed by http_conn.c (Debian's http-parser underneath),
 * answered by a route on the loop or on a worker (workers.h), and their
 * responses written strictly in request order (pipelining): each request
 * takes a slot at the tail of the connection's response queue when parsed,
 * and the queue is written from its head as slots become ready.
 *
 * Lifetime: a connection is referenced by itself while open and by every
 * request in flight; it is freed when closed and unreferenced, so a worker
 * finishing after the peer left finds a dead connection and drops its answer.
 */
#ifndef SH_GATEWAY_GW_H
#define SH_GATEWAY_GW_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>

#include "core/metrics_int.h"
#include "core/otel_int.h"
#include "core/ratelimit_int.h"
#include "services/hub_int.h"
#include "streamhub/bus.h"
#include "streamhub/gateway.h"
#include "gateway_int.h"
#include "workers.h"

struct sh__conn;
struct sh__ws;
struct sh__fanout;

/* One parsed request on its way to an answer.  Owned by the gateway from
 * parse to sh__respond(), which consumes it. */
struct sh__req {
    struct sh__conn *conn;     /* a reference: conn stays allocated */
    struct sh__slot *slot;     /* where the response goes */
    struct sh__http_request *hr;  /* owned: method, target, headers, body */
    char *path;                /* percent-decoded path, no query */
    const char *query;         /* raw query after '?' in hr->target, or "" */
    char request_id[33];
    char trace_id[33];         /* from a valid traceparent, or "" */
    int64_t start_us;          /* monotonic, for the latency histogram */
    const char *route;         /* route label for metrics (static) */
    /* The client: the TCP peer's, or from a trusted proxy's headers
     * (trusted-proxies); what per-IP limits and the logs use. */
    char peer[64];             /* client address, no port */
    char ip_key[64];           /* per-IP limits' key (sh__ip_key) */
    /* Filled by sh__req_auth(): the verified bearer, if any. */
    bool authed;
    char user_id[64];
    char username[64];
    unsigned roles;
    /* A worker's result, for routes that offload. */
    int status;
    json_object *result;
    char *extra_headers;       /* owned, "Name: v\r\n"... or NULL */
    /* The request's server span (not recording without otlp-endpoint),
     * ended with the response; its context is current wherever the
     * request's work runs (sh__route, sh__req_offload). */
    struct sh__span span;
};

/* A response waiting its turn.  Invariant: slots leave the queue from the
 * head only, once ready. */
struct sh__slot {
    struct sh__slot *next;
    bool ready;
    bool close_after;          /* Connection: close once written */
    struct evbuffer *out;      /* the whole response */
    struct sh__req *req;       /* NULL once answered */
    /* An upgrade waits as a slot too: when it reaches the head the
     * connection switches protocol (see server.c). */
    bool upgrade;
};

enum sh__conn_state { SH__CONN_HTTP, SH__CONN_WS, SH__CONN_CLOSED };

struct sh__conn {
    struct sh_gateway *gw;
    struct sh__conn *prev, *next;  /* gw->conns */
    struct bufferevent *bev;       /* NULL once closed */
    struct sh__http_conn *http;    /* http_conn.c parser state */
    enum sh__conn_state state;
    int refs;                      /* open (1) + requests in flight */
    uint64_t id;
    /* The TCP peer until an upgrade; then the client of the upgrade
     * request (its sh__req's, from a trusted proxy's headers). */
    char peer[64];                 /* client address, no port */
    char ip_key[64];               /* per-IP limits' key (sh__ip_key) */
    char proxy[64];                /* the TCP peer when it is a trusted
                                      proxy, else "" */
    struct sh__slot *head, *tail;  /* response queue */
    struct event *timer;           /* header / idle timeout */
    bool closing;                  /* close once the queue is written */
    bool receiving;                /* a request's bytes have started: the
                                      header timer runs, not re-armed */
    bool peer_eof;                 /* the peer half-closed (FIN): answer
                                      what is queued, then close */
    bool read_paused;              /* reading stopped: output over the
                                      send buffer, or HTTP requests in
                                      flight at the limit (backpressure) */
    size_t nslots;                 /* HTTP responses queued (slots) */
    atomic_size_t in_flight;       /* jobs on the workers (workers.h) */
    size_t npresence;              /* streams it counts for (fanout.c) */
    bool in_input;                 /* http_input() is running */
    struct sh__ws *ws;             /* once upgraded */
    /* WebSocket output (plain TCP): frames are appended during a loop turn
     * and written by one writev per connection at its end (ws_conn.c's
     * flush), not through the bufferevent's write event, which would cost
     * an epoll_ctl per connection per event. */
    bool dirty;                    /* on gw->dirty, holding a reference */
    bool direct;                   /* plain TCP: we write the output */
    struct sh__conn *dirty_next;
};

struct sh_gateway {
    sh_hub_t *hub;
    struct event_base *base;
    struct evconnlistener *listener;
    struct sh__workers *workers;
    struct sh__fanout *fanout;
    char address[80];
    char id_prefix[9];             /* random, for request ids */
    uint64_t next_request;
    void *ssl_ctx;                 /* SSL_CTX *, or NULL */
    struct sh__conn *conns;
    size_t nconns, nws;
    struct sh__conn *dirty;        /* connections with output to write */
    struct event *flush_ev;        /* writes them, after the turn's work */
    uint64_t next_conn_id;
    struct sh__limiter *ip_limiter;    /* http.rate-limit-per-ip */
    struct sh__cidr *trusted;          /* trusted-proxies, owned */
    size_t ntrusted;
    struct sh__limiter *rl_limiter;    /* @rateLimit and chat limits */
    struct sh__limiter *auth_limiter;  /* REST register/login per IP,
                                        * made on first use (rest.c) */
    /* WebSocket connections per user id: a hash map in ws_conn.c. */
    struct sh__usercount *user_conns;
    /* Configuration read once at start. */
    size_t max_header_bytes, max_headers, max_body_bytes;
    int header_timeout_ms, idle_timeout_ms;
    size_t ws_max_message, ws_send_buffer;
    int ws_ping_ms, ws_pong_timeout_ms, ws_auth_timeout_ms;
    size_t ws_max_per_user;
    size_t max_in_flight_conn;     /* workers.max-in-flight-per-connection */
    bool allow_anonymous;
    enum sh__app_subscribe {
        SH__APP_ANYONE, SH__APP_AUTHENTICATED, SH__APP_APIKEY
    } app_subscribe;               /* app-subscribe */
    char *cors_origins;            /* "" same-origin, "*" any, or a list */
    char *api_key;                 /* "" off */
    /* Shutdown. */
    bool shutting_down;
    struct event *shutdown_timer;
    sh_gateway_done_cb done_cb;
    void *done_arg;
    /* Metrics (series looked up once). */
    struct sh__metrics *metrics;   /* the hub's */
    struct sh__metric *m_requests, *m_latency;
    uint64_t fanout_unflushed;     /* deliveries not yet in s_fanout */
    struct sh__series *s_ws_conns, *s_msgs_in, *s_msgs_out, *s_fanout,
        *s_slow_dropped, *s_rate_limited, *s_conns, *s_presence;
    /* graphql_http.c: persisted queries, made on first use, freed by
     * sh__graphql_http_free(). */
    struct sh__gql_http *gql_http;
};

/* ---- server.c ---------------------------------------------------- */

/* Queue the response of @req: status, extra header lines (each ending in
 * "\r\n", may be NULL), a body.  Adds Content-Length, Content-Type (when
 * @ctype is not NULL), Date-free minimal headers, CORS, X-Request-Id, and
 * Connection: close when the request asked for it.  Consumes @req. */
void sh__respond(struct sh__req *req, int status, const char *ctype,
                 const char *extra_headers, const void *body, size_t len);
/* Respond with @obj's JSON text (a reference taken) and status. */
void sh__respond_json(struct sh__req *req, int status, json_object *obj,
                      const char *extra_headers);
/* {"error":{"code":…,"message":…}} with the status of @code. */
void sh__respond_error(struct sh__req *req, int status, const char *code,
                       const char *message, int retry_after_s);
/* The REST code and HTTP status of an sh_err_t (PROTOCOL.md). */
const char *sh__err_code(sh_err_t err, int *status);

/* The value of header @name (case-insensitive), or NULL. */
const char *sh__req_header(const struct sh__req *req, const char *name);
/* Verify the bearer token of @req, if any: SH_OK and req->authed when
 * valid, SH_OK and !authed when absent, SH_EUNAUTHENTICATED when bad. */
sh_err_t sh__req_auth(struct sh__req *req);
/* A query parameter's decoded value (a new string, free()), or NULL. */
char *sh__query_param(const char *query, const char *name);

/* Run @work on a worker, then @done on the loop (workers.h), within the
 * in-flight bounds; on failure answers itself (rate_limited: 429 with
 * Retry-After, a GraphQL error on /graphql; 503 while stopping) and
 * returns false. */
bool sh__req_offload(struct sh__req *req, sh__work_fn work,
                     sh__work_done_fn done, void *arg);
/* sh__workers_submit_bounded() for a job of @c (a WebSocket command). */
sh_err_t sh__conn_offload(struct sh__conn *c, sh__work_fn work,
                          sh__work_done_fn done, void *arg);
/* Answer @req with 429 rate_limited and Retry-After: @retry_after_s (the
 * REST error body, or a GraphQL error with extensions.code RATE_LIMITED
 * and retryAfter on /graphql). */
void sh__respond_rate_limited(struct sh__req *req, const char *message,
                              int retry_after_s);
/* True when the connection of @req is gone (a worker result is moot). */
bool sh__req_dead(const struct sh__req *req);

/* True when @c's output holds more than its send buffer (ws.send-buffer-
 * bytes): every reply path stops reading from @c while this holds, and
 * fan-out closes a WebSocket that is over it (4408). */
bool sh__conn_out_over(const struct sh__conn *c);
/* Stop reading from @c (backpressure); sh__conn_resume() undoes it. */
void sh__conn_pause(struct sh__conn *c);
/* Resume reading from @c if it is paused and no longer over a bound; the
 * input already buffered is handled from a deferred read callback (never
 * from inside the caller). */
void sh__conn_resume(struct sh__conn *c);

void sh__conn_ref(struct sh__conn *c);
void sh__conn_unref(struct sh__conn *c);
void sh__conn_close(struct sh__conn *c);
/* The key of per-IP limits for a client at @sa: an IPv4 address as
 * text; an IPv6 address by its /64 prefix ("2001:db8:1:2::/64"), since
 * one subscriber gets a whole /64 and rotating within it must not walk
 * past the limits; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the
 * IPv4 address.  Other families: "".  @out gets at most @cap bytes,
 * NUL-terminated (64 hold any key).  Returns @out.  Any thread. */
char *sh__ip_key(const struct sockaddr *sa, char *out, size_t cap);

/* True when @origin may use the gateway (CORS and WebSocket Origin). */
bool sh__origin_allowed(const struct sh_gateway *gw, const char *origin,
                        const char *host);

/* ---- ws_conn.c --------------------------------------------------- */

enum sh__ws_proto { SH__WS_NATIVE, SH__WS_GRAPHQL };

struct sh__nsub;  /* a native subscription (ws_conn.c) */

/* A WebSocket session: one per upgraded connection. */
struct sh__ws {
    struct sh__conn *conn;
    enum sh__ws_proto proto;
    struct sh__ws_reader reader;
    /* Identity, once authenticated (auth op / connection_init). */
    bool authed;
    char user_id[64];
    char username[64];
    unsigned roles;
    int64_t exp_s;                 /* token expiry, seconds since epoch */
    struct sh__nsub *subs;         /* native subscriptions */
    size_t nsubs;
    int64_t last_rx_ms;            /* monotonic: last byte from the peer */
    struct event *ping_timer;      /* periodic: ping, dead-peer check */
    struct event *auth_timer;      /* auth deadline, then token expiry */
    struct event *close_timer;     /* grace after our close frame */
    bool close_sent;
    bool counted_user;             /* in gw->user_conns */
    bool online;                   /* sh__online_join()ed: leave at free */
    bool count_pending;            /* the cluster's cap is being checked:
                                    * no input is read meanwhile */
    void *gql;                     /* graphql_ws.c's state */
};

/* Queue @c's output for the end-of-turn write (see sh__conn.dirty). */
void sh__ws_mark_dirty(struct sh__conn *c);
/* The flush event's callback (server.c creates the event). */
void sh__ws_flush_cb(evutil_socket_t fd, short what, void *arg);

/* Send one text message (one frame, written by reference). */
void sh__ws_send_text(struct sh__conn *c, const char *text, size_t len);
/* Send @obj's JSON text (a reference taken). */
void sh__ws_send_json(struct sh__conn *c, json_object *obj);
/* Count @c (its ws->user_id set) as one of its user's connections, under
 * ws.max-connections-per-user.  Without a cluster this is done at once:
 * returns SH__COUNT_OK or SH__COUNT_REFUSED.  With a cluster the node's
 * own cap is checked at once (SH__COUNT_REFUSED), then the cluster's on a
 * worker (redis): returns SH__COUNT_PENDING, reading from @c stops, and
 * @k runs later on the loop with the outcome, then reading resumes; @k
 * does not run when @c was closed meanwhile (@arg is then released by
 * @arg_free, which may be NULL, as it is after @k). */
enum sh__count_res { SH__COUNT_OK, SH__COUNT_REFUSED, SH__COUNT_PENDING };
typedef void (*sh__count_k)(struct sh__conn *c, bool ok, void *arg);
enum sh__count_res sh__ws_count_user(struct sh__conn *c, sh__count_k k,
                                     void *arg, void (*arg_free)(void *));
/* Arm the token-expiry close (4401 for native, 4403 for graphql-ws) at
 * exp + grace. */
void sh__ws_arm_expiry(struct sh__conn *c, int64_t exp_s, int grace_s,
                       unsigned code);

/* graphql_ws.c: the graphql-transport-ws protocol on /graphql. */
void sh__gqlws_open(struct sh__conn *c);
void sh__gqlws_on_text(struct sh__conn *c, const char *text, size_t len);
void sh__gqlws_free(struct sh__conn *c);

/* Switch @c to WebSocket after the 101 response was queued; bytes already
 * read past the upgrade request are in the input buffer.  Consumes @req. */
void sh__ws_start(struct sh__conn *c, struct sh__req *req,
                  enum sh__ws_proto proto);
/* Input arrived on a WebSocket connection. */
void sh__ws_on_read(struct sh__conn *c);
/* The output drained below the low-water mark (resume fan-out). */
void sh__ws_on_drain(struct sh__conn *c);
/* Close with @code and @reason (a close frame, then the TCP close once
 * written, or after a short grace period). */
void sh__ws_close(struct sh__conn *c, unsigned code, const char *reason);
/* The connection is going away: drop subscriptions and per-user counts. */
void sh__ws_free(struct sh__conn *c);

/* ---- fanout.c ---------------------------------------------------- */

/* Local fan-out: one bus subscription per channel shared by every local
 * member (one encoded frame per event for all native connections), and a
 * member's own bus subscription only while it recovers from a position.
 * Presence (viewer counts) is counted here too. */
struct sh__member;

/* Deliver @ev to a member; @ev NULL: the channel's subscription ended
 * (hub closing), the member is left and must not be used again. */
typedef void (*sh__member_fn)(void *arg, const struct sh_event *ev);

sh_err_t sh__fanout_new(struct sh_gateway *gw, struct sh__fanout **out);
void sh__fanout_free(struct sh__fanout *f);
/* The answer to a join that completed later: @rc SH_OK with @res, or an
 * error (@err explains; the member is gone: drop it).  On the loop. */
typedef void (*sh__join_fn)(void *arg, sh_err_t rc,
                            const sh_subscribe_result_t *res,
                            const char *err);
/* Join @channel for @c.  @since NULL: live events only; else recovery as
 * in sh_subscribe().  @res gets the position and recovery answer, unless
 * *@later is set: on a remote bus the join needs Redis, which the loop
 * never waits on, so the answer comes later through @done (@done_arg),
 * before any event; the member may be left meanwhile (then @done is not
 * called).  Errors: SH_EINVAL (channel; @errbuf), SH_ENOMEM,
 * SH_ECANCELED. */
sh_err_t sh__fanout_join(struct sh__fanout *f, struct sh__conn *c,
                         const char *channel, const sh_position_t *since,
                         sh__member_fn fn, void *arg, sh__join_fn done,
                         void *done_arg, struct sh__member **out,
                         sh_subscribe_result_t *res, bool *later,
                         char *errbuf, size_t errbuf_len);
/* Leave; no delivery after this returns.  NULL is a no-op. */
void sh__fanout_leave(struct sh__member *m);
/* The stream id a member counts presence for ("" for other channels). */
const char *sh__member_stream(const struct sh__member *m);
/* ws_conn.c: does @c watch @stream_id through a member other than
 * @except?  (Presence counts a connection once per stream.) */
bool sh__ws_member_watches(struct sh__conn *c, const char *stream_id,
                           const struct sh__member *except);
/* Write @ev's shared text frame to @c (encoded once per event, shared by
 * reference); closes @c with 4408 when its send buffer is over the limit.
 * Returns false when @c is closing. */
bool sh__ws_send_event(struct sh__conn *c, const struct sh_event *ev);

/* Add the deliveries counted on the loop to the metrics (one atomic
 * update per event instead of one per delivery). */
static inline void sh__gw_flush_counts(struct sh_gateway *gw)
{
    if (gw->fanout_unflushed > 0) {
        sh__series_add(gw->s_fanout, (double)gw->fanout_unflushed);
        sh__series_add(gw->s_msgs_out, (double)gw->fanout_unflushed);
        gw->fanout_unflushed = 0;
    }
}

/* ---- routes.c ---------------------------------------------------- */

/* Answer @req (any route but WebSocket upgrades). */
void sh__route(struct sh__req *req);

/* ---- graphql_http.c ---------------------------------------------- */

/* GET and POST /graphql; always answers @req (true). */
bool sh__graphql_http(struct sh__req *req);
/* Free the persisted-query map; NULL state is a no-op. */
void sh__graphql_http_free(struct sh_gateway *gw);
/* The operation kind (enum sh__gql_op as int) that @op_name (NULL: the
 * only one) names in @query, or -1 when the document does not parse or
 * names no such operation.  Any thread. */
int sh__gql_op_kind(sh_hub_t *hub, const char *query, size_t len,
                    const char *op_name);
/* {"errors":[{"message":@msg,"extensions":{"code":@code}}]}, a new
 * object; @code may be NULL. */
json_object *sh__gql_error_response(const char *msg, const char *code);

/* ---- rest.c ------------------------------------------------------ */

/* /api/v1/...; false when no REST route matches the path. */
bool sh__rest_route(struct sh__req *req);

#endif
