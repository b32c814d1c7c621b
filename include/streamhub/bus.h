/* include/streamhub/bus.h: publish/subscribe on named channels.
 *
 * Channels (../api/PROTOCOL.md, Channels): `chat:<streamId>`,
 * `stream:<streamId>`, `live`, `user:<userId>`, `app:<name>`.  A name is at
 * most SH_CHANNEL_MAX bytes; after the kind's prefix come 1 or more of
 * [A-Za-z0-9._-].  Any other name is SH_EINVAL with a message naming it.
 *
 * Every channel has an epoch (a string that changes when the channel's
 * history is lost, e.g. when a local bus restarts) and a 64-bit offset that
 * increases by one with each event.  The bus keeps a bounded history per
 * channel (`bus.history-size` events, `bus.history-ttl-seconds` old).  A
 * subscriber that gives back the position it last saw receives exactly what
 * it missed, in order, then live events: no gap, no duplicate.  When that is
 * impossible it is told so (recovered = 0) and receives live events only.
 *
 * Event payloads are JSON built once per event and shared, by reference,
 * among every subscriber: an event is immutable once published.
 */
#ifndef STREAMHUB_BUS_H
#define STREAMHUB_BUS_H

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SH_CHANNEL_MAX 128  /* bytes, terminator excluded */
#define SH_EPOCH_SIZE 40    /* bytes, terminator included */

/* One published event: immutable, reference-counted. */
typedef struct sh_event sh_event_t;
/* One subscriber's registration on one channel. */
typedef struct sh_subscription sh_subscription_t;

/* A position in a channel: the epoch and the offset of the last event seen.
 * Frozen value type (48 bytes).  Offset 0 with the current epoch means
 * "before the first event".  An empty epoch ("") means "no position". */
typedef struct sh_position {
    char epoch[SH_EPOCH_SIZE];
    uint64_t offset;
} sh_position_t;

/* What a subscription found (frozen value type, 56 bytes). */
typedef struct sh_subscribe_result {
    /* The channel's current epoch and top offset (the last event's offset,
     * 0 before the first), always set. */
    sh_position_t current;
    /* 1 when every event after `since` will be delivered (true also when
     * nothing was missed, even with an empty history); 0 when `since` was
     * NULL or empty, its epoch is not the current one, its offset lies
     * beyond the top, or the history no longer reaches it. */
    int recovered;
    int reserved;
} sh_subscribe_result_t;

/* A subscription's callback.
 *
 * @arg     the pointer given to sh_subscribe().
 * @ev      the event (status SH_OK), borrowed until the callback returns;
 *          sh_event_dup() keeps it.  NULL on the final call.
 * @status  SH_OK for an event.  Otherwise this is the final call, exactly
 *          once, after which @arg is never used again: SH_ECANCELED
 *          (sh_unsubscribe() or the hub closing) or SH_EBUSY (the subscriber
 *          fell more than `bus.subscriber-queue` events behind and was
 *          dropped: subscribe again with the last position to recover).
 * Threads: the hub's loop thread, or sh_hub_poll()'s (hub.h); never
 * concurrently for one subscription; must not block.
 */
typedef void (*sh_event_cb)(void *arg, const sh_event_t *ev, sh_err_t status);

/* Subscribe to @channel.
 *
 * @since   NULL for live events only, or the position last seen (recovery).
 * @cb, @arg  the callback and its argument (see sh_event_cb).
 * @out     receives the subscription handle (may be NULL when the caller
 *          never unsubscribes explicitly); NULL on error.  The handle is
 *          the caller's until sh_subscription_free(): it stays valid after
 *          the final callback (a subscription the bus ended, with SH_EBUSY
 *          or when the hub closed, may still be given to sh_unsubscribe()
 *          from any thread), and sh_hub_close() does not free it.
 * @result  may be NULL; receives the epoch, top offset and recovery answer.
 * Errors: SH_EINVAL (bad channel, with @errbuf naming it), SH_EBUS,
 * SH_ECANCELED, SH_ENOMEM.  On error @cb never runs.
 * Ownership: @channel and @since are copied; *@out is the caller's
 * (sh_subscription_free()).  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_subscribe(sh_hub_t *hub, const char *channel,
                             const sh_position_t *since, sh_event_cb cb,
                             void *arg, sh_subscription_t **out,
                             sh_subscribe_result_t *result, char *errbuf,
                             size_t errbuf_len);

/* End @sub: no event is delivered after this call returns when it is made
 * on the callback thread; from another thread, at most the events already
 * being delivered.  The final callback (SH_ECANCELED) follows.  NULL, a
 * second call, and a call after the bus ended @sub (its final callback
 * came with SH_EBUSY or SH_ECANCELED, the hub may be closed) are no-ops.
 * Ownership: @sub stays the caller's (sh_subscription_free()).
 * Threads: any, concurrently with the final callback and with
 * sh_hub_close().  Since: 0.1
 */
SH_API void sh_unsubscribe(sh_subscription_t *sub);

/* Release the handle @sub given by sh_subscribe(): end the subscription
 * as sh_unsubscribe() does if it still runs, then free the handle (once
 * the final callback has returned, if it is still due).  @sub must not be
 * used afterwards; its callback still gets its final call if it had not.
 * A handle never released is kept (a small tombstone) until the process
 * ends: release each, also after sh_hub_close().  NULL is a no-op.
 * Threads: any, once per handle.  Since: 0.1
 */
SH_API void sh_subscription_free(sh_subscription_t *sub);

/* Publish one event on @channel.
 *
 * @type       the event type, e.g. "app.score" (1..64 bytes of
 *             [A-Za-z0-9._-]).
 * @data_json  one JSON value, @len bytes (need not be terminated).
 * @offset_out may be NULL; receives the event's offset.
 * Errors: SH_EINVAL (bad channel, type or JSON), SH_ETOOBIG (over
 * `ws.max-message-bytes`), SH_EBUS, SH_ECANCELED, SH_ENOMEM.
 * Ownership: all copied.  Threads: any.
 * Security: the C API is trusted; any channel may be published to.  The
 * gateway only lets API-key holders publish, and only to `app:` channels.
 * Since: 0.1
 */
SH_API sh_err_t sh_publish(sh_hub_t *hub, const char *channel,
                           const char *type, const char *data_json,
                           size_t len, uint64_t *offset_out, char *errbuf,
                           size_t errbuf_len);

/* The current epoch and top offset of @channel (offset 0 when nothing was
 * published yet).  Errors: SH_EINVAL, SH_EBUS.  Since: 0.1 */
SH_API sh_err_t sh_channel_position(sh_hub_t *hub, const char *channel,
                                    sh_position_t *out, char *errbuf,
                                    size_t errbuf_len);

/* Accessors of an event; the strings are borrowed for as long as the
 * caller holds the event (the callback, or until sh_event_free()). */
SH_API const char *sh_event_channel(const sh_event_t *ev);
SH_API const char *sh_event_epoch(const sh_event_t *ev);
SH_API uint64_t sh_event_offset(const sh_event_t *ev);
/* The event type, e.g. "chat.message". */
SH_API const char *sh_event_type(const sh_event_t *ev);
/* The event's data: JSON text of the matching GraphQL type, @len bytes
 * (may be NULL), NUL-terminated. */
SH_API const char *sh_event_data(const sh_event_t *ev, size_t *len);
/* The whole event as the native protocol sends it:
 * {"channel":…,"offset":…,"event":{"type":…,"data":…}}. */
SH_API const char *sh_event_json(const sh_event_t *ev, size_t *len);
/* Milliseconds since the Unix epoch when the event was published. */
SH_API int64_t sh_event_time_ms(const sh_event_t *ev);
/* The W3C Trace Context traceparent of the span that published @ev
 * ("00-<32 hex trace id>-<16 hex span id>-01"), so that a consumer's
 * span can join the producer's trace; "" when the publish was not traced
 * (no otlp-endpoint, or no traced request behind it).  Never NULL.
 * Ownership: borrowed for as long as the caller holds the event.
 * Threads: any.  Since: 0.2 */
SH_API const char *sh_event_traceparent(const sh_event_t *ev);

/* Take a reference to @ev (returns @ev).  Threads: any.  Since: 0.1 */
SH_API sh_event_t *sh_event_dup(const sh_event_t *ev);
/* Drop a reference taken by sh_event_dup().  NULL is a no-op. */
SH_API void sh_event_free(sh_event_t *ev);

#ifdef __cplusplus
}
#endif

#endif
