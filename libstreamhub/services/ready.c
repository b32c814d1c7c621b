/* libstreamhub/services/ready.c: readiness of the hub (GET /readyz).
 *
 * Liveness says the process runs; readiness says it can serve: the store
 * answers a round trip and the bus answers a position query.  Both are
 * checked every time (no caching), so that a load balancer sees a store that
 * went away within one probe.  The call may wait on the store: the gateway
 * runs it on a worker, never on the loop.  The wait is bounded: at most
 * store.statement-timeout-ms for a free connection, then as long again for
 * the round trip (PostgreSQL's deadline; SQLite's busy timeout).
 */
#include <stdio.h>
#include <string.h>

#include "outbox_int.h"
#include "services_int.h"

static const struct sh__sql SQL_PING = { "SELECT 1", NULL, NULL };

/* Row callback: the one row must hold 1. */
static int ping_row(void *arg, const struct sh__row *row)
{
    bool *ok = arg;

    *ok = !sh__row_null(row, 0) && sh__row_int(row, 0) == 1;
    return 1;
}

static sh_err_t store_ping(sh_hub_t *hub, char *why, size_t why_len)
{
    struct sh__conn *c = NULL;
    bool ok = false;
    sh_err_t rc;

    if (hub->store == NULL) {
        sh__errbuf(why, why_len, "no store");
        return SH_ESTORE;
    }
    /* Bounded: when every connection is held by a statement the store
     * does not answer, readiness says so rather than queue behind them. */
    rc = sh__store_acquire_within(hub->store,
                                  sh__config_int(hub->conf,
                                                 "store.statement-timeout-ms"),
                                  &c);
    if (rc == SH_ETIMEDOUT) {
        sh__errbuf(why, why_len, "every connection stayed busy for "
                   "store.statement-timeout-ms");
        return SH_ESTORE;
    }
    if (rc != SH_OK) {
        sh__errbuf(why, why_len, "no connection (closing)");
        return SH_ESTORE;
    }
    rc = sh__store_exec(c, &SQL_PING, NULL, 0, ping_row, &ok, NULL, why,
                        why_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return SH_ESTORE;
    if (!ok) {
        sh__errbuf(why, why_len, "SELECT 1 returned no 1");
        return SH_ESTORE;
    }
    return SH_OK;
}

static sh_err_t bus_ping(sh_hub_t *hub, char *why, size_t why_len)
{
    sh_position_t pos;
    sh_err_t rc;

    if (hub->bus == NULL) {
        sh__errbuf(why, why_len, "no bus");
        return SH_EBUS;
    }
    rc = sh__bus_position(hub->bus, "live", &pos);
    if (rc != SH_OK) {
        sh__errbuf(why, why_len, "%s", sh_strerror(rc));
        return SH_EBUS;
    }
    return SH_OK;
}

sh_err_t sh__hub_ready(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    char swhy[160] = "", bwhy[160] = "";
    sh_err_t rc = sh__hub_live(hub), src, brc;

    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "%s",
                   rc == SH_EINVAL ? "hub must not be NULL"
                                   : "hub is closing");
        return rc;
    }
    src = store_ping(hub, swhy, sizeof swhy);
    brc = bus_ping(hub, bwhy, sizeof bwhy);
    /* A sink the broker refuses (other arguments, access) needs an
     * operator: the store and bus answers come first in the message. */
    if (src == SH_OK && brc == SH_OK &&
        sh__outbox_ready(hub, swhy, sizeof swhy) != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "outbox: %s", swhy);
        return SH_EIO;
    }
    if (src != SH_OK && brc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "store: %s; bus: %s", swhy, bwhy);
    else if (src != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "store: %s", swhy);
    else if (brc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "bus: %s", bwhy);
    else
        sh__errbuf(errbuf, errbuf_len, "ready");
    return src != SH_OK ? src : brc;
}
