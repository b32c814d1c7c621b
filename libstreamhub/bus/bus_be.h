/* libstreamhub/bus/bus_be.h: what the bus shares with a remote backend
 * (private to the bus area).
 *
 * The bus (bus_local.c) owns what every backend has in common: the channel
 * map, subscriber lists and queues, the hand-off of deliveries to the hub's
 * dispatcher, the splice of a recovery window with live events, channel
 * reclaiming.  With `bus = local` it also numbers events and keeps their
 * history itself.  A remote backend (bus_redis.c) takes over numbering,
 * history, epochs, claims and the transport between nodes: every event,
 * this node's included, reaches local subscribers through
 * sh__bus_deliver() from the backend's thread, in offset order.
 *
 * Locking: the bus calls the backend with no bus lock held, except
 * unwatch(), which it calls under a channel's lock; the backend calls
 * sh__bus_deliver() and sh__bus_fail() holding none of its own locks.
 */
#ifndef SH_BUS_BE_H
#define SH_BUS_BE_H

#include "bus_int.h"

/* A recovery window: the position now and, when recovered, the events
 * after the position asked for, in offset order. */
struct sh__bus_window {
    sh_position_t current;
    bool recovered;
    struct sh_event **evs;      /* owned, n references */
    size_t n;
};

void sh__bus_window_clear(struct sh__bus_window *w);

/* The channel's offsets start above *@floor when its epoch is (re)made:
 * the bus fills it from the durable reservation (bus_int.h), so that an
 * own channel's new epoch never repeats an offset the store holds. */
typedef sh_err_t (*sh__bus_floor_fn)(struct sh__bus *bus, const char *channel,
                                     uint64_t *floor);

struct sh__bus_backend {
    const char *name;
    /* Stop the backend's thread and free it: no call into the bus after
     * this returns. */
    void (*free)(void *be);
    /* Publish an event whose data is @head, then (with @splice) its
     * offset in decimal and @tail.  Fills @epoch (SH_EPOCH_SIZE) and
     * *@offset.  Errors: SH_EBUS (backend down or silent), SH_ENOMEM, the
     * floor's error. */
    sh_err_t (*publish)(void *be, const char *channel, const char *type,
                        int64_t ts_ms, const char *head, size_t head_len,
                        const char *tail, size_t tail_len, bool splice,
                        char *epoch, uint64_t *offset, char *errbuf,
                        size_t errbuf_len);
    /* Claim the channel's next offset (published by release()). */
    sh_err_t (*claim)(void *be, const char *channel, char *epoch,
                      uint64_t *offset, char *errbuf, size_t errbuf_len);
    /* Publish claimed @ev (or give its offset up: NULL).  @offset and
     * @epoch as claim() answered. */
    void (*release)(void *be, const char *channel, const char *epoch,
                    uint64_t offset, const struct sh_event *ev);
    /* Make sure this node receives @channel's events; waits until it
     * does.  Each successful watch is paired with one unwatch. */
    sh_err_t (*watch)(void *be, const char *channel, char *errbuf,
                      size_t errbuf_len);
    void (*unwatch)(void *be, const char *channel);
    /* The position of @channel and, when @since is in its history, the
     * events after it (into @w). */
    sh_err_t (*window)(void *be, const char *channel,
                       const sh_position_t *since, bool events,
                       struct sh__bus_window *w, char *errbuf,
                       size_t errbuf_len);
    int (*rewrite)(void *be, const char *channel, sh__bus_rewrite_fn fn,
                   void *arg);
};

/* Start the Redis backend for @uri (redis://[:password@]host:port[/db]).
 * Errors: SH_EINVAL (bad URI, naming it), SH_ENOMEM, SH_EINTERNAL. */
sh_err_t sh__bus_redis_new(struct sh__bus *bus, const sh_config_t *conf,
                           const struct sh__log *log, const char *uri,
                           sh__bus_floor_fn floor, void **out,
                           char *errbuf, size_t errbuf_len);
extern const struct sh__bus_backend sh__bus_redis_backend;

/* An event the backend received for @channel: queue it to the channel's
 * local subscribers (a reference is taken).  A new epoch ends them with
 * SH_EBUS first: they cannot know what they missed.  @locality the
 * backend's thread. */
void sh__bus_deliver(struct sh__bus *bus, struct sh_event *ev);
/* The backend lost events (connection lost): end every local
 * subscription with SH_EBUS, so that clients resume and learn the truth. */
void sh__bus_fail(struct sh__bus *bus);

#endif
