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

#include "bus/bus_int.h"
#include "core/metrics_int.h"
#include "core/core_int.h"
#include "store/store_int.h"

struct sh__accounts;   /* services/accounts.c: users, JWT keys, refresh */
struct sh__social;     /* services/follows.c */
struct sh__streams;    /* services/streams.c */
struct sh__chat;       /* services/chat*.c: rules, moderation cache, queue */
struct sh__notify;     /* services/notifications.c */
struct sh__gql_engine; /* graphql/engine.c (the area above the services) */

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
    atomic_bool closing;            /* set first by sh_hub_close() */
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

/* services/ready.c: readiness (GET /readyz): a store round trip (SELECT 1)
 * and a bus position query, both always run.  Returns SH_OK; SH_ESTORE when
 * the store failed (whatever the bus), SH_EBUS when only the bus failed,
 * SH_ECANCELED when closing.  @errbuf gets "store: <why>" and/or
 * "bus: <why>" (joined by "; ").  May wait on the store: never call it on
 * the loop thread.  @locality any */
sh_err_t sh__hub_ready(sh_hub_t *hub, char *errbuf, size_t errbuf_len);

/* SH_ECANCELED once the hub is closing; public calls check it first. */
static inline sh_err_t sh__hub_live(const sh_hub_t *hub)
{
    if (hub == NULL)
        return SH_EINVAL;
    return atomic_load(&hub->closing) ? SH_ECANCELED : SH_OK;
}

#endif
