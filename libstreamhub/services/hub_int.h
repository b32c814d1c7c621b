/* libstreamhub/services/hub_int.h: the hub's layout, for the services.
 *
 * The hub is the composition root: it owns the configuration, the logger,
 * the dispatcher, the store, the bus and each service area's state.  Areas
 * register an init/fini pair in hub.c's table and keep their state behind
 * an opaque pointer here, so that areas do not see each other's internals.
 */
#ifndef SH_HUB_INT_H
#define SH_HUB_INT_H

#include <stdatomic.h>

#include "core/metrics_int.h"
#include "core/core_int.h"
#include "streamhub/hub.h"

/* Only pointers to the store and the bus: the areas above the services
 * (graphql, gateway) include this header and never touch the store. */
struct sh__store;
struct sh__bus;

struct sh__accounts;   /* services/accounts.c: users, JWT keys, refresh */
struct sh__social;     /* services/follows.c */
struct sh__streams;    /* services/streams.c */
struct sh__chat;       /* services/chat*.c: rules, moderation cache, queue */
struct sh__notify;     /* services/notifications.c */
struct sh__gql_engine; /* graphql/engine.c (the area above the services) */
struct sh__online;     /* services/online.c: users with a connection */
struct sh__cluster;    /* services/cluster.c: state shared in redis */
struct sh__redis;      /* core/redis_int.h */
struct sh__cache;      /* services/cache.c: hot reads in redis */
struct sh__otel;       /* core/otel_int.h: spans, OTLP exporter */
struct sh__outbox;     /* services/outbox.c: events out, relays */

struct sh_hub {
    sh_config_t *conf;              /* owned; read-only after open */
    struct sh__log log;
    struct sh__dispatch *dispatch;  /* owned */
    struct sh__store *store;        /* owned */
    struct sh__bus *bus;            /* owned */
    struct sh__metrics *metrics;    /* owned: Prometheus registry */
    struct sh__accounts *accounts;  /* owned by its area */
    struct sh__social *social;
    struct sh__streams *streams;
    struct sh__chat *chat;
    struct sh__notify *notify;
    struct sh__online *online;
    struct sh__cluster *cluster;    /* NULL: one node, counts local */
    struct sh__cache *cache;        /* NULL: no cache */
    struct sh__otel *otel;          /* NULL: no otlp-endpoint, no spans */
    struct sh__outbox *outbox;      /* NULL: none (no sink) until init */
    atomic_bool closing;            /* set first by sh_hub_close() */
    /* Public calls in flight (SH__HUB_CALL): sh_hub_close() waits until
     * none is left before it frees what they use. */
    atomic_uint calls;
    /* The GraphQL engine, built by the graphql area at its first request
     * (published by compare-and-swap) together with graphql_free, which
     * sh_hub_close() calls: the services never see inside it. */
    _Atomic(struct sh__gql_engine *) graphql;
    void (*_Atomic graphql_free)(struct sh__gql_engine *eng);
};

/* services/offsets.c: make the bus reserve its offsets durably in the
 * store (bus_int.h, sh__bus_set_reserver), right after both opened.
 * Errors: SH_ESTORE, SH_ECANCELED. */
sh_err_t sh__offsets_attach(sh_hub_t *hub, char *errbuf, size_t errbuf_len);

/* services/accounts.c: creates hub->accounts (the JWT keys); fini frees. */
sh_err_t sh__accounts_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__accounts_fini(sh_hub_t *hub);

/* services/online.c: creates hub->online; fini frees. */
sh_err_t sh__online_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__online_fini(sh_hub_t *hub);
/* Count @delta (+1 or -1) authenticated real-time connections of
 * @user_id: the gateway adds one when a connection authenticates and
 * takes it back when that connection closes, so the count is bounded by
 * the open connections.  Returns false when an addition could not be
 * counted (ENOMEM, a bad id): the caller then must not take it back.
 * @locality any */
bool sh__online_add(sh_hub_t *hub, const char *user_id, int delta);
/* True while @user_id has an open authenticated connection on a gateway
 * of @hub (User.online).  @locality any */
bool sh__online(sh_hub_t *hub, const char *user_id);

/* services/cluster.c: state shared by the nodes of a cluster in redis
 * (see the top of cluster.c).  hub->cluster is NULL without a redis URI:
 * then every caller keeps its local behaviour.  Every call may wait on
 * redis: never on a loop thread.  @locality any but a loop */
sh_err_t sh__cluster_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__cluster_fini(sh_hub_t *hub);
/* The heartbeat: started after every other area, stopped (with this
 * node's counts removed from redis) before any other area closes. */
sh_err_t sh__cluster_start(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__cluster_stop(sh_hub_t *hub);

enum sh__count_kind {
    SH__COUNT_CONNS,      /* a user's authenticated connections */
    SH__COUNT_VIEWERS     /* a stream's viewers */
};
/* Change this node's count of @kind for @id: add @value (@set false) or
 * set it to @value.  With @cap > 0, an increase that would take the sum
 * over every live node past @cap changes nothing: SH_ERATELIMITED (*@total
 * gets the sum).  *@mine gets this node's count after the change, *@total
 * the sum over live nodes (either may be NULL).  Errors: SH_EBUS (redis:
 * @errbuf), SH_EINVAL (no cluster, a bad id). */
sh_err_t sh__cluster_count(sh_hub_t *hub, enum sh__count_kind kind,
                           const char *id, bool set, int64_t value,
                           int64_t cap, int64_t *mine, int64_t *total,
                           char *errbuf, size_t errbuf_len);
/* The sum of @kind for @id over every live node.  Errors as above. */
sh_err_t sh__cluster_total(sh_hub_t *hub, enum sh__count_kind kind,
                           const char *id, int64_t *total, char *errbuf,
                           size_t errbuf_len);
/* The pool (borrowed until the hub closes), or NULL without a cluster. */
struct sh__redis *sh__cluster_redis(sh_hub_t *hub);
/* redis.rate-limit-down is closed: shared limits refuse while redis
 * fails (else they fall back to this node's buckets). */
bool sh__cluster_rl_closed(sh_hub_t *hub);
/* Share limiter @l (core/ratelimit_int.h) over the cluster under
 * "<redis.key-prefix>rl:<name>", failing as redis.rate-limit-down says.
 * False without a cluster (then @l stays local).  Before @l is used. */
struct sh__limiter;
bool sh__cluster_share_limiter(sh_hub_t *hub, struct sh__limiter *l,
                               const char *name);
/* redis.key-prefix (borrowed), or NULL without a cluster. */
const char *sh__cluster_prefix(sh_hub_t *hub);
/* This node's id (borrowed), or NULL without a cluster. */
const char *sh__cluster_node(sh_hub_t *hub);
/* A number that changes whenever this node's counts in redis may have
 * been lost (re-registered after a lapse, a write that failed): the
 * gateway then writes its viewer counts again in full.  0 without a
 * cluster. */
unsigned sh__cluster_epoch(sh_hub_t *hub);
/* Raise the epoch and have the next heartbeat write the online counts
 * again (a write to redis failed). */
void sh__cluster_resync_later(sh_hub_t *hub);

/* services/online.c, with a cluster: write every local count to redis
 * again (after this node was reaped).  Called by the heartbeat. */
void sh__online_resync(sh_hub_t *hub);
/* Count one more authenticated connection of @user_id here and, with a
 * cluster, in redis, refused past @cap (> 0) connections across the
 * cluster.  Returns SH_OK (counted), SH_ERATELIMITED (at the cap: nothing
 * counted), SH_ENOMEM, SH_EINVAL.  Redis unreachable: counted here only
 * (fail open; the gateway's own cap per node still holds) and written to
 * redis again by the heartbeat once it answers.  Without a cluster it is
 * sh__online_add(+1).  Each SH_OK is paired with one sh__online_leave().
 * With a cluster both may wait on redis: worker threads only. */
sh_err_t sh__online_join(sh_hub_t *hub, const char *user_id, int64_t cap);
void sh__online_leave(sh_hub_t *hub, const char *user_id);

/* services/ready.c: readiness (GET /readyz): a store round trip (SELECT 1)
 * and a bus position query, both always run.  Returns SH_OK; SH_ESTORE when
 * the store failed (whatever the bus), SH_EBUS when only the bus failed,
 * SH_ECANCELED when closing.  @errbuf gets "store: <why>" and/or
 * "bus: <why>" (joined by "; ").  May wait on the store: never call it on
 * the loop thread.  @locality any */
sh_err_t sh__hub_ready(sh_hub_t *hub, char *errbuf, size_t errbuf_len);

/* SH_ECANCELED once the hub is closing; public calls check it first,
 * after SH__HUB_CALL. */
static inline sh_err_t sh__hub_live(const sh_hub_t *hub)
{
    if (hub == NULL)
        return SH_EINVAL;
    return atomic_load(&hub->closing) ? SH_ECANCELED : SH_OK;
}

/* One public call on a hub, counted in hub->calls from SH__HUB_CALL to the
 * end of the enclosing block (the function's return), so that
 * sh_hub_close() run by another thread waits for it instead of freeing
 * what it uses.  The count is raised before the call reads `closing`
 * (sh__hub_live()), and the close sets `closing` before it reads the
 * count (both sequentially consistent): either the call sees the close
 * and refuses (SH_ECANCELED), or the close sees the call and waits.
 * After its decrement a call touches nothing of the hub. */
struct sh__hub_call {
    sh_hub_t *hub;
};

static inline struct sh__hub_call sh__hub_call_begin(const sh_hub_t *hub)
{
    /* The count is the one field a const hub lets a call change. */
    sh_hub_t *h = (sh_hub_t *)(uintptr_t)hub;

    if (h != NULL)
        atomic_fetch_add(&h->calls, 1);
    return (struct sh__hub_call){ h };
}

static inline void sh__hub_call_end(struct sh__hub_call *call)
{
    if (call->hub != NULL)
        atomic_fetch_sub_explicit(&call->hub->calls, 1,
                                  memory_order_release);
}

#if defined(__GNUC__) || defined(__clang__)
/* The first statement of every public function that takes a hub. */
#  define SH__HUB_CALL(hub)                                              \
    struct sh__hub_call sh__hub_call_                                     \
        __attribute__((cleanup(sh__hub_call_end))) =                      \
        sh__hub_call_begin(hub)
#else
#  error "SH__HUB_CALL needs the cleanup attribute (GCC or Clang)"
#endif

#endif
