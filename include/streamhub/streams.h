/* include/streamhub/streams.h: live streams, their statistics and raids.
 *
 * A broadcaster starts a stream (at most one live at a time), may change its
 * title and category, and stops it.  Going live publishes `stream.live` on
 * the bus channels `live` and `stream:<id>` and notifies every follower
 * (notifications.h).  Results are opaque handles holding the JSON of the
 * GraphQL type of ../api/schema.graphql, which is also the event data and
 * the REST body.  A Stream:
 *   {"id":"…","broadcaster":{"id":"…","username":"…"},"title":"…",
 *    "category":"…"|null,"status":"LIVE"|"OFFLINE","viewerCount":0,
 *    "startedAt":"2026-11-27T05:33:42.123Z","endedAt":null}
 * (stats and chatSettings are separate calls: sh_stream_stats_get() and
 * chat settings in moderation.h).
 *
 * Lists hold {"items":[…],"nextCursor":"…"|null,"totalCount":n}.  Page
 * sizes (@first) run 1..SH_PAGE_MAX; larger values are clamped to
 * SH_PAGE_MAX, 0 and negative values are SH_EINVAL.  Cursors are opaque;
 * a cursor that is not one of ours is SH_EINVAL.
 *
 * Threads: every call may come from any thread, concurrently.  A handle is
 * immutable; several threads may read it at once once its _json() text was
 * made (the first _json() call makes and caches it: make that call on one
 * thread).  Free it once.
 */
#ifndef STREAMHUB_STREAMS_H
#define STREAMHUB_STREAMS_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SH_PAGE_MAX 100
#define SH_STREAM_TITLE_MAX 140     /* code points */
#define SH_STREAM_CATEGORY_MAX 64   /* code points */

/* One stream (GraphQL Stream). */
typedef struct sh_stream sh_stream_t;
/* A page of streams (GraphQL StreamConnection). */
typedef struct sh_stream_list sh_stream_list_t;
/* A stream's statistics (GraphQL StreamStats). */
typedef struct sh_stream_stats sh_stream_stats_t;
/* One raid (GraphQL Raid). */
typedef struct sh_raid sh_raid_t;

/* Start a live stream for @actor_id.
 *
 * @actor_id  the authenticated user (the broadcaster); NULL refused.
 * @title     UTF-8, 1..SH_STREAM_TITLE_MAX code points, NUL-terminated.
 * @category  NULL or "" for none, else UTF-8 of 1..SH_STREAM_CATEGORY_MAX
 *            code points.
 * @out       may be NULL; receives the new stream (status LIVE).
 * Publishes `stream.live` (data: the Stream) on `live` and `stream:<id>`,
 * then stores one STREAM_LIVE notification per follower with one
 * set-based statement and publishes each on the follower's `user:<id>`.
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (title, category: @errbuf names
 * it), SH_ECONFLICT (the broadcaster is live already), SH_ESTORE,
 * SH_ECANCELED, SH_ENOMEM.  On error nothing was stored nor published.
 * Ownership: arguments borrowed; *@out is the caller's (sh_stream_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_start(sh_hub_t *hub, const char *actor_id,
                                const char *title, const char *category,
                                sh_stream_t **out, char *errbuf,
                                size_t errbuf_len);

/* End stream @stream_id: status OFFLINE, endedAt set, viewerCount 0;
 * publishes `stream.offline` on `live` and `stream:<id>`.
 *
 * @actor_id  the broadcaster or an admin.
 * @out       may be NULL; receives the ended stream.
 * Errors: SH_EUNAUTHENTICATED, SH_ENOTFOUND (no such stream),
 * SH_EFORBIDDEN (neither its broadcaster nor an admin), SH_ECONFLICT (the
 * stream is offline already: stopping is not idempotent, so that a client
 * learns that its stop raced another), SH_ESTORE, SH_ECANCELED, SH_ENOMEM.
 * Ownership: as sh_stream_start().  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_stop(sh_hub_t *hub, const char *actor_id,
                               const char *stream_id, sh_stream_t **out,
                               char *errbuf, size_t errbuf_len);

/* Change the title and/or category of stream @stream_id (live or not);
 * publishes `stream.updated` on `stream:<id>`.
 *
 * @title     NULL keeps it; else as in sh_stream_start().
 * @category  NULL keeps it; "" clears it; else as in sh_stream_start().
 * Errors: SH_EUNAUTHENTICATED, SH_ENOTFOUND, SH_EFORBIDDEN (neither its
 * broadcaster nor an admin), SH_EINVAL, SH_ESTORE, SH_ENOMEM.
 * Ownership: as sh_stream_start().  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_update(sh_hub_t *hub, const char *actor_id,
                                 const char *stream_id, const char *title,
                                 const char *category, sh_stream_t **out,
                                 char *errbuf, size_t errbuf_len);

/* Read stream @stream_id.  Errors: SH_ENOTFOUND, SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out is the caller's.  Threads: any.  Since: 0.1 */
SH_API sh_err_t sh_stream_get(sh_hub_t *hub, const char *stream_id,
                              sh_stream_t **out, char *errbuf,
                              size_t errbuf_len);

/* Live streams, most viewers first, then most recently started, then by
 * id; one page of at most @first after the cursor @after.
 *
 * @first     1..SH_PAGE_MAX (larger: clamped; < 1: SH_EINVAL).
 * @after     NULL or "" for the first page, else a nextCursor.
 * @category  NULL for every category, else only streams of exactly it.
 * Errors: SH_EINVAL (first, cursor), SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out is the caller's (sh_stream_list_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_live_list(sh_hub_t *hub, int first,
                                    const char *after, const char *category,
                                    sh_stream_list_t **out, char *errbuf,
                                    size_t errbuf_len);

/* Full-text search over titles and categories: streams matching every word
 * of @query (words are split on white space and each searched as a quoted
 * phrase, so no query syntax applies: "a OR b" finds streams with the
 * three words a, OR and b).  Live streams first, then most recently
 * started.
 *
 * @query  UTF-8, 1..256 bytes; a query with no word gives an empty page.
 * Errors: SH_EINVAL (query, first, cursor), SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out is the caller's.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_search(sh_hub_t *hub, const char *query,
                                 int first, const char *after,
                                 sh_stream_list_t **out, char *errbuf,
                                 size_t errbuf_len);

/* Set the viewer count of live stream @stream_id (the gateway's presence),
 * raising its peak.  Publishes `stream.viewers` (data: the Stream) on
 * `stream:<id>` at most once a second per stream: a call within a second of
 * the last publish only records the value, and the latest recorded value
 * is published by the next call after that second, or by
 * sh_stream_flush_viewers(), which the caller runs on a one-second tick.
 *
 * In a cluster (the `redis` key, or a redis:// bus) @count is this hub's
 * viewers only: the stream's count is the sum over the live hubs of the
 * cluster (each hub's share is dropped when it stops, or a
 * redis.node-ttl-ms after it stopped heart-beating), and may block on
 * redis (redis.timeout-ms).
 *
 * @count  0..2147483647 viewers.
 * Errors: SH_EINVAL (count), SH_ENOTFOUND (no such live stream),
 * SH_ESTORE, SH_EBUS (in a cluster, redis failed: nothing changed).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_set_viewers(sh_hub_t *hub, const char *stream_id,
                                      int64_t count, char *errbuf,
                                      size_t errbuf_len);

/* Publish the viewer counts recorded but not yet published whose stream's
 * last publish is at least a second old.  Returns how many were published.
 * Threads: any.  Since: 0.1 */
SH_API int sh_stream_flush_viewers(sh_hub_t *hub);

/* Accessors; strings are borrowed until sh_stream_free(). */
SH_API const char *sh_stream_id(const sh_stream_t *s);
SH_API const char *sh_stream_broadcaster_id(const sh_stream_t *s);
SH_API const char *sh_stream_broadcaster_username(const sh_stream_t *s);
SH_API const char *sh_stream_title(const sh_stream_t *s);
/* NULL when the stream has no category. */
SH_API const char *sh_stream_category(const sh_stream_t *s);
SH_API bool sh_stream_is_live(const sh_stream_t *s);
SH_API int64_t sh_stream_viewer_count(const sh_stream_t *s);
/* RFC 3339 text; NULL when unset (endedAt of a live stream). */
SH_API const char *sh_stream_started_at(const sh_stream_t *s);
SH_API const char *sh_stream_ended_at(const sh_stream_t *s);
/* The Stream JSON, @len (may be NULL) bytes; borrowed until free. */
SH_API const char *sh_stream_json(const sh_stream_t *s, size_t *len);
SH_API void sh_stream_free(sh_stream_t *s);

SH_API size_t sh_stream_list_count(const sh_stream_list_t *l);
/* Item @i, borrowed until the list is freed; NULL past the end. */
SH_API const sh_stream_t *sh_stream_list_at(const sh_stream_list_t *l,
                                            size_t i);
/* The cursor of item @i (for GraphQL edges); borrowed until free. */
SH_API const char *sh_stream_list_cursor_at(const sh_stream_list_t *l,
                                            size_t i);
/* The cursor of the next page, NULL on the last page. */
SH_API const char *sh_stream_list_next_cursor(const sh_stream_list_t *l);
SH_API bool sh_stream_list_has_next(const sh_stream_list_t *l);
/* Every match, not only this page's. */
SH_API int64_t sh_stream_list_total_count(const sh_stream_list_t *l);
SH_API const char *sh_stream_list_json(const sh_stream_list_t *l,
                                       size_t *len);
SH_API void sh_stream_list_free(sh_stream_list_t *l);

/* ---- statistics ------------------------------------------------------ */

/* Statistics of stream @stream_id: peakViewers, chatMessages,
 * uniqueChatters, newFollowers (follows of the broadcaster made while the
 * stream was live) and messagesPerMinute (chat messages accepted by this
 * hub in the last 60 seconds).
 * Errors: SH_ENOTFOUND, SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out is the caller's (sh_stream_stats_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_stream_stats_get(sh_hub_t *hub, const char *stream_id,
                                    sh_stream_stats_t **out, char *errbuf,
                                    size_t errbuf_len);
SH_API int64_t sh_stream_stats_peak_viewers(const sh_stream_stats_t *st);
SH_API int64_t sh_stream_stats_chat_messages(const sh_stream_stats_t *st);
SH_API int64_t sh_stream_stats_unique_chatters(const sh_stream_stats_t *st);
SH_API int64_t sh_stream_stats_new_followers(const sh_stream_stats_t *st);
SH_API int64_t
sh_stream_stats_messages_per_minute(const sh_stream_stats_t *st);
SH_API const char *sh_stream_stats_json(const sh_stream_stats_t *st,
                                        size_t *len);
SH_API void sh_stream_stats_free(sh_stream_stats_t *st);

/* ---- raids ----------------------------------------------------------- */

/* Send the viewers of live stream @from_stream_id to user @to_user_id.
 *
 * @actor_id  the stream's broadcaster or an admin.
 * Records the raid with the stream's current viewer count, publishes
 * `raid.incoming` (data: the Raid) on `user:<to>` and, when the target is
 * live, on its `stream:<id>`, and notifies the target (RAID_INCOMING).
 * Errors: SH_EUNAUTHENTICATED, SH_ENOTFOUND (no such stream or user),
 * SH_EFORBIDDEN (not the broadcaster nor an admin), SH_ECONFLICT (the
 * stream is not live), SH_EINVAL (raiding oneself), SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out (may be NULL) is the caller's (sh_raid_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_raid_start(sh_hub_t *hub, const char *actor_id,
                              const char *from_stream_id,
                              const char *to_user_id, sh_raid_t **out,
                              char *errbuf, size_t errbuf_len);
SH_API const char *sh_raid_id(const sh_raid_t *r);
SH_API const char *sh_raid_from_stream_id(const sh_raid_t *r);
SH_API const char *sh_raid_to_user_id(const sh_raid_t *r);
SH_API int64_t sh_raid_viewer_count(const sh_raid_t *r);
/* The Raid JSON: {"id","from":{"id"},"to":{"id","username"},
 * "viewerCount","createdAt"}; borrowed until sh_raid_free(). */
SH_API const char *sh_raid_json(const sh_raid_t *r, size_t *len);
SH_API void sh_raid_free(sh_raid_t *r);

#ifdef __cplusplus
}
#endif

#endif
