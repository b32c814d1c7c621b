/* libstreamhub/gateway/gw.h: the gateway's protocol handlers (private).
 * @locality the connection's loop thread, unless a field says otherwise.
 *
 * The gateway has floors; each includes only the floors below it:
 *
 *   loops.c                   the listener and the loops (top)
 *   routes.c  (routes.h)      the router: which handler answers a request
 *   ws_conn.c graphql_ws.c    the protocol handlers (this header): the
 *   fanout.c  graphql_http.c  native and graphql-transport-ws protocols,
 *   rest.c                    fan-out, GraphQL over HTTP, REST
 *   server.c  (server.h)      connections, HTTP framing, the response
 *                             queue and the respond helpers (bottom)
 *
 * A lower floor calls an upper one only through the table of functions
 * the upper floor gives it (struct sh__conn_ops), never by name.
 */
#ifndef SH_GATEWAY_GW_H
#define SH_GATEWAY_GW_H

#include "streamhub/bus.h"
#include "server.h"

struct sh__ws;
struct sh__fanout;

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
/* The flush event's callback, @arg the loop (server.c creates the
 * event). */
void sh__ws_flush_cb(evutil_socket_t fd, short what, void *arg);
/* Write @c's waiting output now (plain TCP, bev set): one writev of whole
 * frames.  Returns evbuffer_write()'s result; the caller handles errors
 * (the flush closes). */
int sh__ws_write_out(struct sh__conn *c);

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
/* @traceparent: the upgrade request's W3C traceparent, or "": each
 * operation's span joins its trace. */
void sh__gqlws_open(struct sh__conn *c, const char *traceparent);
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

sh_err_t sh__fanout_new(struct sh__loop *l, struct sh__fanout **out);
void sh__fanout_free(struct sh__fanout *f);
/* The gateway's viewer counts, one table for all its loops (fanout.c),
 * made before the loops' fan-outs and freed after them. */
struct sh__presence;
sh_err_t sh__presence_new(struct sh_gateway *gw, struct sh__presence **out);
void sh__presence_free(struct sh__presence *pr);
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
/* Write @ev's shared text frame to @c (encoded once per event, shared by
 * reference); closes @c with 4408 when its send buffer is over the limit.
 * Returns false when @c is closing. */
bool sh__ws_send_event(struct sh__conn *c, const struct sh_event *ev);

/* Add the deliveries counted on the loop to the metrics (one atomic
 * update per event instead of one per delivery). */
static inline void sh__loop_flush_counts(struct sh__loop *l)
{
    if (l->fanout_unflushed > 0) {
        sh__series_add(l->gw->s_fanout, (double)l->fanout_unflushed);
        sh__series_add(l->gw->s_msgs_out, (double)l->fanout_unflushed);
        l->fanout_unflushed = 0;
    }
}

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

