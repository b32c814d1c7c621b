/* libstreamhub/bus/bus_be.h: what the bus shares with its backends
 * (private to the bus area).
 *
 * The bus (bus.c) owns what every backend has in common: the channel map,
 * subscriber lists and queues, the hand-off of deliveries to the hub's
 * dispatcher, the splice of a recovery window with live events, channel
 * reclaiming.  A backend, picked by the `bus` key, numbers events, keeps
 * their history, epochs and claims:
 *  - local (bus_local.c, the default): in this process, in the channel
 *    itself (the fields of struct sh__bus_chan it owns), handing each
 *    event to the subscribers at once (sh__bus_push) under the channel's
 *    lock, so that numbering and queueing are one step;
 *  - redis (bus_redis.c): in Redis, which also carries events between
 *    nodes: every event, this node's included, reaches local subscribers
 *    through sh__bus_deliver() from the backend's thread, in offset order.
 *
 * Locking: the bus calls the backend with no bus lock held, except
 * unwatch() (under a channel's lock) and the chan_* hooks (as each says);
 * the backend calls sh__bus_deliver() and sh__bus_fail() holding none of
 * its own locks.
 */
#ifndef SH_BUS_BE_H
#define SH_BUS_BE_H

#include <pthread.h>

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

/* The durable numbering the hub gave the bus (sh__bus_set_reserver). */
struct sh__bus_reserver {
    sh__bus_reserve_fn fn;      /* NULL: none (no store) */
    sh__bus_giveback_fn giveback;
    void *arg;
    char own_prefix[16];
    uint64_t block;
};

/* Drain jobs claimed under a channel's lock by sh__bus_push(), posted
 * after releasing it by sh__bus_posts_flush(): the dispatcher's lock, its
 * allocation and its wake-up then never lengthen the channel's critical
 * section. */
#define SH__BUS_POSTS_MAX 128
struct sh__bus_posts {
    struct sh_subscription *s[SH__BUS_POSTS_MAX];
    size_t n;
};

/* A history entry of the local backend. */
struct sh__bus_hent {
    struct sh_event *ev;        /* one reference */
    int64_t mono_ms;            /* when it entered the history */
};

/* An event released out of order, waiting for top to reach it. */
struct sh__bus_pend {
    uint64_t offset;
    struct sh_event *ev;        /* one reference; NULL: a gap */
};

/* The local backend's epochs: 12 hex characters of the bus instance,
 * 8 of the channel instance (bus_local.c). */
#define SH__BUS_LOCAL_EPOCH_LEN 20

/* A channel of the map (bus.c), made on first use, freed by the sweep
 * once nobody pins it and the backend calls it idle. */
struct sh__bus_chan {
    struct sh__bus_chan *next;  /* hash chain; @locks the map's lock */
    uint64_t hash;
    atomic_uint pins;           /* raised only under the map's lock */
    char *name;                 /* immutable; points into this block */
    pthread_mutex_t lock;
    pthread_cond_t cv;          /* the backend's (a reservation ended) */
    /* @locks lock: */
    int64_t last_mono;          /* last publish, seed or unsubscribe */
    struct sh_subscription *subs;   /* live subscriptions */
    size_t nsubs;
    /* Delivered by a remote backend: the epoch and offset of the last
     * event (sh__bus_deliver drops what is not newer). */
    char repoch[SH_EPOCH_SIZE];
    uint64_t dtop;
    /* The local backend's (bus_local.c), @locks lock but for those
     * marked immutable: */
    char epoch[SH__BUS_LOCAL_EPOCH_LEN + 1];   /* immutable */
    bool own;                   /* immutable: its own durable sequence */
    uint64_t top;               /* the last offset published */
    uint64_t claimed;           /* the last offset handed out */
    uint64_t base;              /* the numbering starts above */
    uint64_t reserved;          /* own: reserved durably up to */
    uint64_t block;             /* own: the next reservation's size */
    bool loaded;                /* own: reserved at least once */
    bool reserving;             /* own: a reservation is under way */
    struct sh__bus_pend *pend;  /* owned, pcap slots, npend used */
    size_t npend, pcap;
    struct sh__bus_hent *hist;  /* owned ring, hcap slots */
    size_t hcap, hhead, hlen;
};

struct sh__bus_backend {
    const char *name;
    /* The bus checks an own channel's offsets against the durable
     * reservation after each publish or claim (own_cover in bus.c): the
     * backend's numbering may start over in a new epoch without the
     * store knowing (Redis losing its data). */
    bool cover_own;
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
    /* Publish @n events of @type, event i on items[i].channel with
     * items[i].data as its data (pipelined).  Fills offsets[i] (0: not
     * published) and returns how many were; the first failure is
     * explained in @errbuf. */
    size_t (*publish_many)(void *be, const char *type,
                           const struct sh__bus_item *items, size_t n,
                           int64_t ts_ms, uint64_t *offsets, char *errbuf,
                           size_t errbuf_len);
    /* Claim the channel's next offset (published by release()). */
    sh_err_t (*claim)(void *be, const char *channel, char *epoch,
                      uint64_t *offset, char *errbuf, size_t errbuf_len);
    /* Publish claimed @ev (or give its offset up: NULL).  @offset and
     * @epoch as claim() answered. */
    void (*release)(void *be, const char *channel, const char *epoch,
                    uint64_t offset, const struct sh_event *ev);
    /* Optional (NULL: every event is in process).  Make sure this node
     * receives @channel's events; waits until it does.  Each successful
     * watch is paired with one unwatch. */
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
    /* Optional (NULL: a claim, @build, then its release): publish an
     * event whose data @build makes with its offset, as
     * sh__bus_publish_build() (@channel valid); a failed build consumes
     * no offset. */
    sh_err_t (*publish_build)(void *be, const char *channel,
                              const char *type, sh__bus_build_fn build,
                              void *arg, uint64_t *offset_out,
                              struct sh_event **ev_out, char *errbuf,
                              size_t errbuf_len);
    /* Optional (NULL: nothing to do).  @r is about to become the bus's
     * durable numbering (sh__bus_set_reserver); an error leaves the bus
     * as it was. */
    sh_err_t (*set_reserver)(void *be, const struct sh__bus_reserver *r,
                             char *errbuf, size_t errbuf_len);
    /* Optional: the bus is closing, before its subscriptions end. */
    void (*close)(void *be);
    /* Optional hooks on channels the backend keeps state in:
     * chan_init when one is made (under the map's lock); chan_idle,
     * whether it may be reclaimed as far as the backend goes (under the
     * channel's lock; NULL: yes); chan_gone just before it is reclaimed
     * (under the map's lock); chan_fini when it is freed (also after
     * free(), hence no state). */
    void (*chan_init)(void *be, struct sh__bus_chan *c);
    bool (*chan_idle)(void *be, struct sh__bus_chan *c, int64_t now);
    void (*chan_gone)(void *be, struct sh__bus_chan *c);
    void (*chan_fini)(struct sh__bus_chan *c);
};

/* True when @channel has a durable sequence of its own (bus_int.h,
 * sh__bus_set_reserver): its floor costs a store round trip. */
bool sh__bus_own(const struct sh__bus *bus, const char *channel);

/* Start the Redis backend for @uri (redis://[:password@]host:port[/db]).
 * Errors: SH_EINVAL (bad URI, naming it), SH_ENOMEM, SH_EINTERNAL. */
sh_err_t sh__bus_redis_new(struct sh__bus *bus, const sh_config_t *conf,
                           const struct sh__log *log, const char *uri,
                           sh__bus_floor_fn floor, void **out,
                           char *errbuf, size_t errbuf_len);
extern const struct sh__bus_backend sh__bus_redis_backend;

/* Start the local backend.  Errors: SH_ENOMEM, SH_EINTERNAL. */
sh_err_t sh__bus_local_new(struct sh__bus *bus, const sh_config_t *conf,
                           void **out, char *errbuf, size_t errbuf_len);
extern const struct sh__bus_backend sh__bus_local_backend;

/* For backends that number in process (bus_local.c). */

/* Find (or, with @create, make) @name and pin it: it stays until
 * sh__bus_chan_unpin().  NULL with *@rc SH_OK when absent and not made,
 * SH_ECANCELED when closing, SH_ENOMEM. */
struct sh__bus_chan *sh__bus_chan_pin(struct sh__bus *bus, const char *name,
                                      bool create, sh_err_t *rc);
/* Pin the channels of items[0 .. k) (names valid) under one hold of the
 * map's lock into out[i] (NULL when not made: *@first then holds the
 * first error, unless already set). */
void sh__bus_chan_pin_items(struct sh__bus *bus,
                            const struct sh__bus_item *items, size_t k,
                            struct sh__bus_chan **out, sh_err_t *first);
void sh__bus_chan_unpin(struct sh__bus *bus, struct sh__bus_chan *c);
/* Call @fn on every channel, under the map's lock. */
void sh__bus_each_chan(struct sh__bus *bus,
                       void (*fn)(void *arg, struct sh__bus_chan *c),
                       void *arg);
/* Queue @ev to every live subscriber of @c (the references are taken)
 * and note the activity at @now.  @locks c->lock */
void sh__bus_push(struct sh__bus *bus, struct sh__bus_chan *c,
                  struct sh_event *ev, int64_t now,
                  struct sh__bus_posts *posts);
/* Post the drain jobs sh__bus_push() claimed; without c->lock. */
void sh__bus_posts_flush(struct sh__bus *bus, struct sh__bus_chan *c,
                         struct sh__bus_posts *posts);

/* An event the backend received for @channel: queue it to the channel's
 * local subscribers (a reference is taken).  A new epoch ends them with
 * SH_EBUS first: they cannot know what they missed.  @locality the
 * backend's thread. */
void sh__bus_deliver(struct sh__bus *bus, struct sh_event *ev);
/* The backend lost events (connection lost): end every local
 * subscription with SH_EBUS, so that clients resume and learn the truth. */
void sh__bus_fail(struct sh__bus *bus);

#endif
