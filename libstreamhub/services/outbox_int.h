/* libstreamhub/services/outbox_int.h: the transactional outbox and the
 * interface of its sinks (private to the services).
 *
 * Each event a service stores (stream.live, stream.offline,
 * user.new_follower, chat.message, raid.incoming, subscription.new) is
 * written with sh__outbox_add() in the same transaction as the rows it
 * describes, once per configured sink.  One relay thread per sink (never a
 * loop thread) reads the rows back in order, hands them to the sink, and
 * deletes each row only once the sink confirmed it.  So an event is
 * forwarded if and only if its transaction committed, a crash at any
 * point loses nothing and at worst repeats, and every event keeps the one
 * id (a UUID) that consumers drop repeats by.
 *
 * Order: the rows of one channel share a lane (a hash of the channel), a
 * lane is relayed by one node at a time (a lease claimed with FOR UPDATE
 * SKIP LOCKED on PostgreSQL), in seq order.  A dead node's leases lapse
 * after outbox.lease-ms and another node takes its lanes over.
 *
 * A sink: a struct that embeds `struct sh__sink` first, built by the open
 * function of its row in outbox.c's table of sink kinds (keyed by the
 * config key that turns it on).  Its calls run on its own relay thread
 * but health() and interrupt(), which any thread may call.
 */
#ifndef SH_OUTBOX_INT_H
#define SH_OUTBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/hub_int.h"

struct sh__conn;

/* One outbox row as a sink sees it.  Every pointer is borrowed for the
 * deliver() call that carries the row (text, NUL-terminated). */
struct sh__outbox_row {
    int64_t seq;             /* the store's order (within a lane) */
    const char *id;          /* the event's id: a UUID, stable across
                                repeats and the same for every sink */
    const char *channel;     /* "stream:<id>", "chat:<id>", "user:<id>" */
    const char *type;        /* "stream.live", "chat.message", ... */
    const char *payload;     /* the event's data: JSON text of the
                                GraphQL type (PROTOCOL.md) */
    size_t payload_len;
    int64_t created_ms;      /* wall ms when it was stored */
    int64_t attempts;        /* deliveries tried before this one */
    const char *traceparent; /* W3C traceparent of the storing request,
                                or NULL */
};

struct sh__sink;

struct sh__sink_ops {
    /* Short, stable name: the `sink` column of the rows and the `sink`
     * label of the metrics ("amqp", "webhook"). */
    const char *name;
    /* Deliver @rows[0..@n) (in order: seq within each channel) and set
     * @ok[i] for each row the sink confirmed (it is then deleted; every
     * other row is delivered again later, so a confirmation must mean
     * "taken durably", never "tried").  Return by @deadline_ms
     * (sh__mono_ms()) whatever the peer does: every socket operation
     * has a timeout.  Returns SH_OK when the rows were tried (some @ok
     * may still be false), or an error when none could be (not
     * connected: the relay then backs off and calls again; that retry
     * is the sink's reconnect), @errbuf saying why.  With @n == 0
     * (@rows and @ok NULL) only connect: the relay probes a sink so at
     * start and after a failure, so that /readyz and the log see a peer
     * that refuses before any event waits on it.
     * @locality the sink's relay thread */
    sh_err_t (*deliver)(struct sh__sink *s, const struct sh__outbox_row *rows,
                        size_t n, int64_t deadline_ms, bool *ok,
                        char *errbuf, size_t errbuf_len);
    /* SH_OK when the sink can deliver, else an error and in @why the
     * reason (a broker that refused our exchange, unreachable): it
     * feeds /readyz.  Must not wait.  @locality any thread */
    sh_err_t (*health)(struct sh__sink *s, char *why, size_t why_len);
    /* Make a deliver() that waits return soon (the hub closes).  May be
     * NULL.  @locality any thread */
    void (*interrupt)(struct sh__sink *s);
    /* Free the sink; its relay thread has ended.  NULL-safe. */
    void (*close)(struct sh__sink *s);
};

/* The head of every sink. */
struct sh__sink {
    const struct sh__sink_ops *ops;
};

/* Open a sink of one kind from the value of its config key (@value, not
 * empty), e.g. events-amqp's URI.  Errors: SH_EINVAL (a bad value,
 * @errbuf names the key), SH_ENOMEM.  Must not wait on the network: a
 * peer that is down at start is the first deliver()'s business. */
typedef sh_err_t (*sh__sink_open_fn)(sh_hub_t *hub, const char *value,
                                     struct sh__sink **out, char *errbuf,
                                     size_t errbuf_len);

/* sinks/amqp: events-amqp (services/sink_amqp.c). */
sh_err_t sh__sink_amqp_open(sh_hub_t *hub, const char *value,
                            struct sh__sink **out, char *errbuf,
                            size_t errbuf_len);

/* push-webhook (services/sink_webhook.c). */
sh_err_t sh__sink_webhook_open(sh_hub_t *hub, const char *value,
                               struct sh__sink **out, char *errbuf,
                               size_t errbuf_len);

/* ---- the hub's side ---------------------------------------------------- */

/* The outbox area: creates hub->outbox with one relay per configured
 * sink (none: every call below is a cheap no-op); fini stops the relays
 * (rows left stay stored for the next start) and frees. */
sh_err_t sh__outbox_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__outbox_fini(sh_hub_t *hub);

/* Whether any sink is configured (the writers skip building payloads
 * otherwise).  @locality any */
bool sh__outbox_on(const sh_hub_t *hub);

/* Write one event into the outbox, one row per sink, on @c inside the
 * caller's transaction (between sh__store_begin and sh__store_commit):
 * it commits or rolls back with the caller's rows.
 * @channel  the bus channel the event belongs to ("stream:<id>"...): the
 *           unit of order.
 * @type     the event type.
 * @payload  JSON text, @len bytes (NUL-terminated or not).
 * @traceparent  W3C traceparent or NULL.
 * @id_out   NULL, or SH__UUID_LEN + 1 bytes that get the event's id.
 * Errors: SH_ESTORE (@errbuf), SH_ENOMEM.  SH_OK at once without sinks.
 * @locality any thread holding @c */
sh_err_t sh__outbox_add(sh_hub_t *hub, struct sh__conn *c,
                        const char *channel, const char *type,
                        const char *payload, size_t len,
                        const char *traceparent, char *id_out,
                        char *errbuf, size_t errbuf_len);

/* The same for the JSON of @obj (read only: serialised on the calling
 * thread, which must own it) on channel @prefix@id ("stream:" + an id). */
sh_err_t sh__outbox_add_obj(sh_hub_t *hub, struct sh__conn *c,
                            const char *prefix, const char *id,
                            const char *type, json_object *obj,
                            char *errbuf, size_t errbuf_len);

/* Wake the relays after a commit that added rows, so that they do not
 * wait for their next poll.  Cheap; no-op without sinks.  @locality any */
void sh__outbox_kick(sh_hub_t *hub);

/* Readiness of the sinks (/readyz): SH_OK, or SH_EIO with every failing
 * sink's "<name>: <why>" in @errbuf.  Never waits.  @locality any */
sh_err_t sh__outbox_ready(sh_hub_t *hub, char *errbuf, size_t errbuf_len);

#endif
