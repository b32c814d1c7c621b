/* libstreamhub/bus/bus_int.h: the bus as the rest of the library sees it.
 *
 * The bus knows no rules: it validates channel names, numbers events per
 * channel, keeps the bounded history and hands events to subscribers
 * through the hub's dispatcher (core_int.h).  Services publish through it;
 * the gateway subscribes once per channel per loop and fans out to its own
 * connections (DESIGN.md: "the bus handing each event once to each loop's
 * queue").
 *
 * Backends: local (bus_local.c, the default) and redis (bus_redis.c),
 * behind bus_be.h and the shared part (bus.c), picked by the `bus` key
 * behind the same calls.
 */
#ifndef SH_BUS_INT_H
#define SH_BUS_INT_H

#include <stdatomic.h>

#include "core/core_int.h"
#include "streamhub/bus.h"

struct sh__bus;

/* An event (public name sh_event_t).  Immutable once published, but for
 * `wire`, which the gateway fills once (compare-and-swap) with the event's
 * encoded WebSocket frame so that every connection shares one encoding.
 *
 * Invariants:
 *  1. refs >= 1 while anyone holds it; the last sh_event_free() frees.
 *  2. data_json, json and type never change after publish.
 *  3. It holds no json-c object: it is read and freed on any thread, and
 *     json-c's reference counts are not atomic, so its data is text only
 *     (a publisher's object is serialised and released at publish).
 */
struct sh_event {
    atomic_int refs;
    char *channel;             /* in the event's own allocation */
    char epoch[SH_EPOCH_SIZE];
    uint64_t offset;
    int64_t ts_ms;
    char *type;                /* in the event's own allocation */
    char *data_json;           /* data's text, in the event's allocation */
    size_t data_len;
    char *json;                /* the native protocol's frame text, ditto */
    size_t json_len;
    /* The gateway's cached encoding: NULL, or an object freed by
     * wire_free when the event dies. */
    _Atomic(void *) wire;
    void (*wire_free)(void *);
    /* The publishing span's traceparent (otel_int.h), or "". */
    char traceparent[56];
};

/* Make the bus named by `bus` of @conf (local or redis://...).  Deliveries
 * are posted to @dispatch.  Errors: SH_EINVAL (naming the value),
 * SH_ENOMEM, SH_EINTERNAL. */
sh_err_t sh__bus_new(const sh_config_t *conf, const struct sh__log *log,
                     struct sh__dispatch *dispatch, struct sh__bus **out,
                     char *errbuf, size_t errbuf_len);
/* End every subscription (final callbacks posted with SH_ECANCELED), then
 * free.  The dispatcher must still exist.  NULL is a no-op. */
void sh__bus_free(struct sh__bus *bus);

/* SH_OK, or SH_EINVAL with @errbuf naming @channel and why. */
sh_err_t sh__channel_check(const char *channel, char *errbuf,
                           size_t errbuf_len);

/* Builds an event's data once its offset is known (called under the
 * channel's lock: keep it short, never call the bus).  Returns a new
 * reference, or NULL on ENOMEM. */
typedef json_object *(*sh__bus_build_fn)(void *arg, uint64_t offset,
                                         int64_t ts_ms);

/* Publish on @channel an event of @type whose data @build makes with the
 * event's offset (so that a chat message can carry its own offset).
 * @ev_out (may be NULL) receives a reference to the event.
 * Errors: SH_EINVAL (channel), SH_ENOMEM, SH_ECANCELED. */
sh_err_t sh__bus_publish_build(struct sh__bus *bus, const char *channel,
                               const char *type, sh__bus_build_fn build,
                               void *arg, uint64_t *offset_out,
                               struct sh_event **ev_out, char *errbuf,
                               size_t errbuf_len);
/* Publish on @channel an event of @type whose data text is @head, the
 * event's offset in decimal, then @tail: JSON text the caller made with
 * json-c around a number, so that the event carries its own offset while
 * everything but a memcpy happens before the channel's lock (a chat
 * message).
 * Both texts borrowed for the call.  Errors as sh__bus_publish_build(). */
sh_err_t sh__bus_publish_spliced(struct sh__bus *bus, const char *channel,
                                 const char *type, const char *head,
                                 size_t head_len, const char *tail,
                                 size_t tail_len, uint64_t *offset_out,
                                 char *errbuf, size_t errbuf_len);
/* Publish @data (a reference taken by the call, even on error). */
sh_err_t sh__bus_publish(struct sh__bus *bus, const char *channel,
                         const char *type, json_object *data,
                         uint64_t *offset_out, char *errbuf,
                         size_t errbuf_len);

/* One event of a batch (sh__bus_publish_many): @data is JSON text of
 * @len bytes that the caller made with json-c (or spliced from such text
 * with fields that need no escaping).  Both borrowed for the call. */
struct sh__bus_item {
    const char *channel;
    const char *data;
    size_t len;
};

/* Publish @n events of @type, event i on items[i].channel with
 * items[i].data as its data, in order.  The channels are found or made
 * under one hold of the map's lock per call and each event costs one
 * allocation: the go-live fan-out publishes one event on each of many
 * channels.
 * Returns how many were published; a failed item (bad channel,
 * ENOMEM, closing) is skipped and the first failure explained in
 * @errbuf.  @locality any thread. */
size_t sh__bus_publish_many(struct sh__bus *bus, const char *type,
                            const struct sh__bus_item *items, size_t n,
                            char *errbuf, size_t errbuf_len);

/* Durable offsets.  The bus knows no store: the hub gives it this hook,
 * which reserves @n more offsets under @key in one durable step (the
 * stored value grows by @n, from 0 when absent) and puts the new stored
 * value in *@upto: the offsets (*@upto - @n, *@upto] are the caller's and
 * no one else's, before and after any crash.  It may wait on the store;
 * the bus calls it with none of its locks held.  @locality any thread */
typedef sh_err_t (*sh__bus_reserve_fn)(void *arg, const char *key,
                                       uint64_t n, uint64_t *upto);
/* Give back what was reserved and not used, at a clean close: lower
 * @key's stored value from @from to @to, only if it is still @from (a
 * reservation made meanwhile wins).  Failures only leave a gap. */
typedef void (*sh__bus_giveback_fn)(void *arg, const char *key,
                                    uint64_t from, uint64_t to);

/* Key of the floor under every channel without a sequence of its own. */
#define SH__BUS_FLOOR_KEY "*"
/* Offsets the floor reserves at a time: a restart moves every other
 * channel's numbering up by at most this much. */
#define SH__BUS_FLOOR_BLOCK (UINT64_C(1) << 24)

/* Make the numbering of the bus outlive the process (PROTOCOL.md,
 * "Channels": a crash may leave a gap, never a repeat).
 *  - A channel whose name starts with @own_prefix ("chat:", whose offsets
 *    are the stored messages' offsets) has a durable sequence of its own,
 *    keyed by its name: before its first offset, and whenever its
 *    reservation runs out, it reserves a block (1 at first, doubling up to
 *    @block) and starts above what was reserved before.
 *  - Every other channel starts its numbering, when it is made, above the
 *    floor (SH__BUS_FLOOR_KEY, reserved here and then in blocks of
 *    SH__BUS_FLOOR_BLOCK) and above every offset a channel reclaimed by
 *    this bus handed out; its offsets never pass the reserved floor.
 *  - sh__bus_free() gives back, through @giveback (may be NULL), what
 *    was reserved and not handed out, so that a clean restart continues
 *    the numbering without a gap; only a crash leaves one.
 * Call once, before anything is published; reserves the floor now.
 * Errors: what @fn returns (the bus is then unchanged). */
sh_err_t sh__bus_set_reserver(struct sh__bus *bus, sh__bus_reserve_fn fn,
                              sh__bus_giveback_fn giveback,
                              void *arg, const char *own_prefix,
                              uint64_t block, char *errbuf,
                              size_t errbuf_len);

/* An offset claimed now and published later (sh__bus_release): a chat
 * message gets its offset before its batch is stored, and reaches
 * subscribers only once stored.  Events published on the channel after
 * the claim (any publish call) wait behind it, so that subscribers still
 * see offsets in order.  Each claim must be released exactly once. */
struct sh__bus_claim {
    void *chan;                 /* pinned channel; NULL when released */
    struct sh_event *ev;        /* one reference */
    uint64_t offset;
};

/* Claim @channel's next offset for an event of @type whose data text is
 * @head, the offset, then @tail (as sh__bus_publish_spliced()).  The event
 * is made now; *@out holds it until sh__bus_release().
 * Errors: SH_EINVAL, SH_ENOMEM, SH_ECANCELED, SH_EBUS, a reservation's
 * error (SH_ESTORE); *@out is then empty and nothing was claimed. */
sh_err_t sh__bus_claim_spliced(struct sh__bus *bus, const char *channel,
                               const char *type, const char *head,
                               size_t head_len, const char *tail,
                               size_t tail_len, struct sh__bus_claim *out,
                               char *errbuf, size_t errbuf_len);

/* Publish the claimed event (@publish true) or give its offset up (false:
 * the offset stays unused, a gap).  Empties @cl; an empty claim is a
 * no-op.  @locality any thread */
void sh__bus_release(struct sh__bus *bus, struct sh__bus_claim *cl,
                     bool publish);

/* Rewrite history: for each event of @channel still in the history, call
 * @fn; when it returns a new data object (a reference), the history entry
 * is replaced by an event with the same channel, epoch, offset and type and
 * that data.  Subscribers that already received the old event keep it; any
 * later recovery replays the new one.  Used for redaction.  Returns the
 * number of entries replaced, or a negative sh_err_t. */
typedef json_object *(*sh__bus_rewrite_fn)(void *arg,
                                           const struct sh_event *ev);
int sh__bus_rewrite(struct sh__bus *bus, const char *channel,
                    sh__bus_rewrite_fn fn, void *arg);

/* Subscribe as in sh_subscribe() (bus.h). */
sh_err_t sh__bus_subscribe(struct sh__bus *bus, const char *channel,
                           const sh_position_t *since, sh_event_cb cb,
                           void *arg, struct sh_subscription **out,
                           sh_subscribe_result_t *result, char *errbuf,
                           size_t errbuf_len);
/* The same, for a caller that keeps the handle (sh_subscribe()): with @out
 * non-NULL the subscription stays valid after its final callback until
 * sh__bus_sub_release(), so that sh__bus_unsubscribe() from any thread, even
 * after the bus ended it (SH_EBUSY, close), is a no-op. */
sh_err_t sh__bus_subscribe_held(struct sh__bus *bus, const char *channel,
                                const sh_position_t *since, sh_event_cb cb,
                                void *arg, struct sh_subscription **out,
                                sh_subscribe_result_t *result, char *errbuf,
                                size_t errbuf_len);
/* Subscribe as sh__bus_subscribe() does, with the callbacks run by @d (a
 * gateway loop's dispatcher, attached to that loop) instead of the hub's:
 * each loop of a gateway takes each event from its own queue, on its own
 * thread.  @d (NULL: the hub's) must outlive the subscription's final
 * callback. */
sh_err_t sh__bus_subscribe_on(struct sh__bus *bus, struct sh__dispatch *d,
                              const char *channel,
                              const sh_position_t *since, sh_event_cb cb,
                              void *arg, struct sh_subscription **out,
                              sh_subscribe_result_t *result, char *errbuf,
                              size_t errbuf_len);
/* Subscribe as sh__bus_subscribe() does, on a thread that may wait on
 * the backend (a worker), leaving the subscription paused: events are
 * queued, in order, but no callback runs, final included, until
 * sh__bus_sub_resume(), so that a loop can answer its client with
 * @result before the first event.  On error nothing was made.  Ending a
 * paused subscription (sh__bus_unsubscribe, the bus closing) takes
 * effect at resume. */
sh_err_t sh__bus_subscribe_paused(struct sh__bus *bus, const char *channel,
                                  const sh_position_t *since,
                                  sh_event_cb cb, void *arg,
                                  struct sh_subscription **out,
                                  sh_subscribe_result_t *result,
                                  char *errbuf, size_t errbuf_len);
/* sh__bus_subscribe_paused() with the callbacks run by @d, as
 * sh__bus_subscribe_on(). */
sh_err_t sh__bus_subscribe_paused_on(struct sh__bus *bus,
                                     struct sh__dispatch *d,
                                     const char *channel,
                                     const sh_position_t *since,
                                     sh_event_cb cb, void *arg,
                                     struct sh_subscription **out,
                                     sh_subscribe_result_t *result,
                                     char *errbuf, size_t errbuf_len);
/* Let a paused subscription's callbacks run (from the callback thread or
 * any thread).  Once per sh__bus_subscribe_paused(). */
void sh__bus_sub_resume(struct sh_subscription *sub);
/* Inside @sub's event callback: how many events of the batch its drain
 * job took follow the one being delivered (0: the last one queued when
 * the batch began).  A receiver that writes to sockets writes at 0, once
 * for the whole batch.  Callback thread only, during the callback.
 * Since 0.1. */
size_t sh__bus_sub_batch_left(const struct sh_subscription *sub);
/* True when subscribing and reading a position may wait on a remote
 * backend (bus = redis): a loop thread must not call them then. */
bool sh__bus_remote(const struct sh__bus *bus);
/* End @sub unless ended already.  A subscription that is not held may be
 * freed once its final callback has returned: only its callback's thread
 * may then call this. */
void sh__bus_unsubscribe(struct sh_subscription *sub);
/* End a held subscription as sh__bus_unsubscribe() does and give up its
 * handle: freed now if its final callback has returned, else when it
 * has.  NULL is a no-op.  Valid even after sh__bus_free(). */
void sh__bus_sub_release(struct sh_subscription *sub);
sh_err_t sh__bus_position(struct sh__bus *bus, const char *channel,
                          sh_position_t *out);
/* Number of subscriptions on @channel right now (presence, tests). */
size_t sh__bus_subscribers(struct sh__bus *bus, const char *channel);
/* Number of channels held in memory, after reclaiming those with no
 * subscriber, an empty history and no activity for bus.history-ttl-seconds
 * (bounded memory; tests). */
size_t sh__bus_channels(struct sh__bus *bus);

/* Make an event (refs = 1) and serialise its texts.  Takes @data (NULL is
 * JSON null), even on error, and releases it before returning (invariant
 * 3): the caller's other references stay on the caller's thread.  NULL on
 * ENOMEM.  @locality any thread. */
struct sh_event *sh__event_new(const char *channel, const char *epoch,
                               uint64_t offset, int64_t ts_ms,
                               const char *type, json_object *data);

/* Make an event (refs = 1) whose data is @len bytes of JSON text @data
 * (copied; data stays NULL).  NULL on ENOMEM.  @locality any thread. */
struct sh_event *sh__event_new_text(const char *channel, const char *epoch,
                                    uint64_t offset, int64_t ts_ms,
                                    const char *type, const char *data,
                                    size_t len);

/* The same, the data being @head, the event's offset in decimal, then
 * @tail (sh__bus_publish_spliced).  NULL on ENOMEM. */
struct sh_event *sh__event_new_spliced(const char *channel,
                                       const char *epoch, uint64_t offset,
                                       int64_t ts_ms, const char *type,
                                       const char *head, size_t head_len,
                                       const char *tail, size_t tail_len);

/* Take / drop an event reference (NULL-safe drop). */
struct sh_event *sh__event_ref(struct sh_event *ev);
void sh__event_unref(struct sh_event *ev);

#endif
