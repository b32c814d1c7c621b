/* libstreamhub/gateway/server.h: the gateway's bottom floor (private):
 * connections, HTTP framing, the ordered response queue and the respond
 * helpers (server.c), and the loops they live on.  It knows no route and no
 * protocol above HTTP: the floors above plug in through struct
 * sh__conn_ops (see gw.h for the floors).
 * @locality the connection's loop thread, unless a field says otherwise.
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
 * A connection lives on one loop (struct sh__loop) for its life.
 */
#ifndef SH_GATEWAY_SERVER_H
#define SH_GATEWAY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>

#include "core/metrics_int.h"
#include "core/otel_int.h"
#include "core/ratelimit_int.h"
#include "services/hub_int.h"
#include "streamhub/gateway.h"
#include "gateway_int.h"
#include "workers.h"

struct sh__conn;
struct sh__ws;
struct sh__fanout;
struct sh__loop;
struct sh__gql_http;
struct sh__usercount;
struct sh__presence;

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
     * request's work runs (the route, sh__req_offload). */
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
    struct sh__loop *loop;         /* the one it lives on, for life */
    struct sh__conn *prev, *next;  /* loop->conns */
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
    struct sh__member *watching;   /* its members that count (fanout.c) */
    bool in_input;                 /* http_input() is running */
    struct sh__ws *ws;             /* once upgraded */
    /* WebSocket output (plain TCP): frames are appended during a loop turn
     * and written by one writev per connection at its end (ws_conn.c's
     * flush), not through the bufferevent's write event, which would cost
     * an epoll_ctl per connection per event. */
    bool dirty;                    /* on loop->dirty, holding a reference */
    bool direct;                   /* plain TCP: we write the output */
    struct sh__conn *dirty_next;
};

/* What the floors above the connection layer do for it (gw.h): the
 * router and the protocol handlers give these functions; the connection
 * layer calls them, never the handlers by name.  Immutable, shared by
 * every loop. */
struct sh__conn_ops {
    /* Answer @req (any request but a WebSocket upgrade). */
    void (*route)(struct sh__req *req);
    /* Answer an upgrade request: refuse it with a response, or accept it
     * with sh__conn_switch(). */
    void (*upgrade)(struct sh__req *req);
    /* The 101 of @req (sh__conn_switch, @proto) has reached the head of
     * the queue and @c is a WebSocket now.  Consumes @req. */
    void (*ws_start)(struct sh__conn *c, struct sh__req *req, int proto);
    /* Input arrived on an upgraded connection. */
    void (*ws_read)(struct sh__conn *c);
    /* An upgraded connection's output drained below the low-water mark. */
    void (*ws_drain)(struct sh__conn *c);
    /* An upgraded connection is closing: drop its protocol state. */
    void (*ws_free)(struct sh__conn *c);
    /* Answer @req with 429 in the protocol of its route, or return false
     * to let the connection layer answer with the REST error body. */
    bool (*rate_limited)(struct sh__req *req, const char *message,
                         int retry_after_s);
};

/* One event loop and the connections that live on it.  Every field is
 * the loop thread's (@locality loop thread), but where it says.
 *
 * Loop 0 runs on the event_base the gateway was started on (the
 * embedder's or streamhubd's); loops 1..N-1 each on a base and a thread
 * of the gateway's own.  Nothing of one loop is touched by another's
 * thread: work for a loop is posted to its dispatcher, which runs it on
 * the loop (a connection handed over by the acceptor, the bus's events
 * for its channels, shutdown steps). */
struct sh__loop {
    struct sh_gateway *gw;
    unsigned index;                /* 0 .. gw->nloops-1, immutable */
    struct event_base *base;       /* immutable */
    /* Immutable; any thread posts: runs jobs on this loop (core_int.h),
     * among them the bus's deliveries to this loop's channels. */
    struct sh__dispatch *dispatch;
    pthread_t thread;              /* loops 1..: the loop's thread */
    bool threaded;                 /* thread runs (joined at free) */
    bool drained_sent;             /* reported drained (shutdown) */
    struct sh__conn *conns;
    size_t nconns, nws;
    struct sh__conn *dirty;        /* connections with output to write */
    struct event *flush_ev;        /* writes them, after the turn's work */
    /* Jobs answered back on this loop (workers.h). */
    struct sh__workers *workers;
    struct sh__fanout *fanout;     /* fanout.c: this loop's channels */
    struct sh__series *s_conns;    /* streamhub_loop_connections{loop} */
    uint64_t fanout_unflushed;     /* deliveries not yet in s_fanout */
    /* Made active when the loop's last connection closes while the
     * gateway shuts down (set by the listener floor). */
    struct event *drained;
};

struct sh_gateway {
    sh_hub_t *hub;
    const struct sh__conn_ops *ops;    /* immutable */
    struct evconnlistener *listener;
    struct sh__loop *loops;        /* nloops, immutable once started */
    size_t nloops;
    size_t next_loop;              /* loop 0: the next to get a socket */
    size_t ndrained;               /* loop 0: loops drained (shutdown) */
    /* Guards what the loops share and a handler changes: user_conns, and
     * what is made on first use (auth_limiter, gql_http). */
    pthread_mutex_t lock;
    /* Viewer counts for every loop (fanout.c; its own lock). */
    struct sh__presence *presence;
    char address[80];
    char id_prefix[9];             /* random, for request ids */
    atomic_uint_fast64_t next_request;  /* any loop */
    atomic_uint_fast64_t next_conn_id;  /* any loop */
    void *ssl_ctx;                 /* SSL_CTX *, or NULL */
    struct sh__limiter *ip_limiter;    /* http.rate-limit-per-ip */
    struct sh__cidr *trusted;          /* trusted-proxies, owned */
    size_t ntrusted;
    struct sh__limiter *rl_limiter;    /* @rateLimit and chat limits */
    struct sh__limiter *auth_limiter;  /* REST register/login per IP,
                                        * made on first use (rest.c) */
    /* WebSocket connections per user id: a list in ws_conn.c, counted
     * across loops.  @locks lock */
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
    atomic_bool shutting_down;     /* read by every loop */
    struct event *shutdown_timer;
    sh_gateway_done_cb done_cb;
    void *done_arg;
    /* Metrics (series looked up once). */
    struct sh__metrics *metrics;   /* the hub's */
    struct sh__metric *m_requests, *m_latency, *m_loop_conns;
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


/* Take the accepted socket @fd (peer @sa) as a new HTTP connection on @l.
 * On failure the socket is closed.  On @l's thread. */
void sh__conn_accept(struct sh__loop *l, evutil_socket_t fd,
                     const struct sockaddr *sa);
/* Accept the upgrade @req: the handshake response @resp (@n bytes) takes
 * @req's slot, and once it reaches the head of the queue the connection
 * becomes a WebSocket of protocol @proto (ops->ws_start).  Consumes
 * @req. */
void sh__conn_switch(struct sh__req *req, const char *resp, size_t n,
                     int proto);
#endif
