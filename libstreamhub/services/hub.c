/* libstreamhub/services/hub.c: opening and closing a hub (hub.h).
 *
 * Open order: logger, dispatcher, store (with migrations), bus, then each
 * service area in table order.  Close runs the same steps backwards, so an
 * area may rely on everything above it in the table, and the write-behind
 * queue (chat) is flushed while the store is still open.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_int.h"
#include "core/otel_int.h"
#include "hub_int.h"
#include "outbox_int.h"
#include "services_int.h"

struct area {
    const char *name;
    sh_err_t (*init)(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
    void (*fini)(sh_hub_t *hub);
};

/* Service areas, in dependency order. */
static const struct area areas[] = {
    { "cluster", sh__cluster_init, sh__cluster_fini },
    { "cache", sh__cache_init, sh__cache_fini },
    { "online", sh__online_init, sh__online_fini },
    { "accounts", sh__accounts_init, sh__accounts_fini },
    /* Before the writers of events (streams, chat): closed after them, so
     * that the chat's last batch still writes its outbox rows. */
    { "outbox", sh__outbox_init, sh__outbox_fini },
    { "streams", sh__streams_init, sh__streams_fini },
    { "chat", sh__chat_init, sh__chat_fini },
    /* Last: the heartbeat may call every area above; stopped first. */
    { "cluster-heartbeat", sh__cluster_start, sh__cluster_stop },
};

#define NAREAS (sizeof areas / sizeof areas[0])

static void close_areas(sh_hub_t *hub, size_t n)
{
    while (n-- > 0) {
        if (areas[n].fini != NULL)
            areas[n].fini(hub);
    }
}

SH_API sh_err_t sh_hub_open(sh_config_t *conf, sh_hub_t **out, char *errbuf,
                            size_t errbuf_len)
{
    sh_hub_t *hub;
    sh_err_t rc;
    size_t i;

    if (out != NULL)
        *out = NULL;
    if (conf == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "configuration and out must not be "
                   "NULL");
        return SH_EINVAL;
    }
    hub = calloc(1, sizeof *hub);
    if (hub == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    hub->conf = conf;
    sh__log_init(&hub->log, conf);
    rc = sh__dispatch_new(&hub->dispatch);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "cannot create the dispatcher: %s",
                   sh_strerror(rc));
        goto fail;
    }
    rc = sh__metrics_new(&hub->metrics);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        goto fail;
    }
    rc = sh__otel_new(conf, hub->metrics, &hub->log, &hub->otel, errbuf,
                      errbuf_len);
    if (rc != SH_OK)
        goto fail;
    rc = sh__store_open(conf, &hub->log, &hub->store, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto fail;
    rc = sh__bus_new(conf, &hub->log, hub->dispatch, &hub->bus, errbuf,
                     errbuf_len);
    if (rc != SH_OK)
        goto fail;
    rc = sh__offsets_attach(hub, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto fail;
    for (i = 0; i < NAREAS; i++) {
        if (areas[i].init == NULL)
            continue;
        rc = areas[i].init(hub, errbuf, errbuf_len);
        if (rc != SH_OK) {
            close_areas(hub, i);
            goto fail;
        }
    }
    sh__log_kv(&hub->log, SH_LOG_INFO, "hub opened",
               "version", sh_version(),
               "store", sh__store_backend(hub->store),
               "bus", sh__config_str(conf, "bus"), (char *)NULL);
    *out = hub;
    return SH_OK;
fail:
    sh__bus_free(hub->bus);
    sh__store_close(hub->store);
    sh__dispatch_free(hub->dispatch);
    sh__otel_free(hub->otel);
    sh__metrics_free(hub->metrics);
    free(hub);
    return rc;
}

/* Wait until no public call is in flight (SH__HUB_CALL).  Calls last
 * microseconds to a store round trip; a poll is woken by the caller. */
static void wait_for_calls(sh_hub_t *hub)
{
    const struct timespec ms = { 0, 1000000 };

    while (atomic_load(&hub->calls) > 0)
        nanosleep(&ms, NULL);
}

SH_API void sh_hub_close(sh_hub_t *hub)
{
    if (hub == NULL)
        return;
    /* Refuse new calls, end a poll that waits, then wait for the calls
     * already running: nothing below is freed under them. */
    atomic_store(&hub->closing, true);
    if (!sh__dispatch_attached(hub->dispatch))
        sh__dispatch_wake(hub->dispatch);
    wait_for_calls(hub);
    if (atomic_load(&hub->graphql_free) != NULL)
        atomic_load(&hub->graphql_free)(atomic_load(&hub->graphql));
    close_areas(hub, NAREAS);
    sh__bus_free(hub->bus);          /* posts final callbacks */
    sh__log_kv(&hub->log, SH_LOG_INFO, "hub closed", (char *)NULL);
    sh__dispatch_free(hub->dispatch); /* runs them, canceled */
    sh__store_close(hub->store);
    /* Last: what the close itself traced is sent (within a deadline). */
    sh__otel_free(hub->otel);
    sh__metrics_free(hub->metrics);
    sh_config_free(hub->conf);
    /* A call that began during the close only read `closing` and left;
     * wait for the last to leave before the count goes. */
    wait_for_calls(hub);
    free(hub);
}

SH_API int sh_hub_poll(sh_hub_t *hub, int timeout_ms)
{
    SH__HUB_CALL(hub);
    int n;

    if (hub == NULL || sh__dispatch_attached(hub->dispatch))
        return -SH_EINVAL;
    if (sh__hub_live(hub) != SH_OK)
        return -SH_ECANCELED;
    /* Wait first: the fd is readable while jobs are queued (invariant 1 of
     * the dispatcher) or after sh_hub_wake(), so either returns at once. */
    if (timeout_ms != 0)
        sh__dispatch_wait(hub->dispatch, timeout_ms);
    /* Woken by a close: leave it the callbacks (it runs them). */
    if (sh__hub_live(hub) != SH_OK)
        return 0;
    n = sh__dispatch_run(hub->dispatch);
    return n;
}

SH_API void sh_hub_wake(sh_hub_t *hub)
{
    SH__HUB_CALL(hub);

    if (sh__hub_live(hub) == SH_OK)
        sh__dispatch_wake(hub->dispatch);
}

SH_API int sh_hub_fd(const sh_hub_t *hub)
{
    SH__HUB_CALL(hub);

    if (sh__hub_live(hub) != SH_OK || sh__dispatch_attached(hub->dispatch))
        return -1;
    return sh__dispatch_fd(hub->dispatch);
}

SH_API sh_err_t sh_hub_attach(sh_hub_t *hub, struct event_base *base,
                              char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc;

    if (hub == NULL || base == NULL) {
        sh__errbuf(errbuf, errbuf_len, "hub and base must not be NULL");
        return SH_EINVAL;
    }
    if (sh__hub_live(hub) != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "hub is closing");
        return SH_ECANCELED;
    }
    rc = sh__dispatch_attach(hub->dispatch, base);
    if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "cannot attach: %s",
                   rc == SH_EINVAL ? "already attached" : sh_strerror(rc));
    return rc;
}

SH_API void sh_hub_log(sh_hub_t *hub, sh_log_level_t level, const char *msg,
                       const char *fields_json)
{
    SH__HUB_CALL(hub);
    json_object *fields = NULL;

    if (sh__hub_live(hub) != SH_OK || msg == NULL ||
        !sh__log_on(&hub->log, level))
        return;
    if (fields_json != NULL)
        fields = json_tokener_parse(fields_json);
    sh__log(&hub->log, level, msg, fields);
}
