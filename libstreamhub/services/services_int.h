/* libstreamhub/services/services_int.h: plumbing shared by the service areas.
 *
 * Result objects.  Every public result handle of the services (sh_stream_t,
 * sh_notification_t, ...) is backed by one json-c object holding exactly the
 * JSON of the matching GraphQL type (api/schema.graphql: field names, times
 * as RFC 3339 strings, ids as strings, a nested entity as {"id", ...} only).
 * That one representation serves the C getters, the REST bodies, the event
 * data on the bus and the GraphQL executor (sh__handle_obj()).  Each area
 * defines its public struct as `struct sh_<obj> { json_object *obj; }` (the
 * layout of struct sh__jh), so that the generic helpers here serve them all.
 *
 * Lists have the REST list shape {"items":[...],"nextCursor":...|null,
 * "totalCount":n} (struct sh__list); item handles are borrowed views into
 * the list's array.
 *
 * Cursors are opaque to clients: base64url (no padding) of a small JSON
 * array of the sort keys of the last row, e.g. [1732686822123,"<id>"].  A
 * cursor that does not decode to the expected shape is SH_EINVAL.
 *
 * Cross-area calls (chat, moderation and the gateway call these) are
 * declared at the end.
 */
#ifndef SH_SERVICES_INT_H
#define SH_SERVICES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus_int.h"
#include "services/export_int.h"
#include "services/hub_int.h"
#include "store/store_int.h"

/* ---- json-backed handles ---------------------------------------------- */

/* struct sh__jh and its readers: services/export_int.h. */

/* New handle owning @obj (a reference taken by the call, even on error).
 * NULL on ENOMEM. */
struct sh__jh *sh__jh_new(json_object *obj);
void sh__jh_free(struct sh__jh *h);

/* Add members; return false on ENOMEM.  A NULL @s adds JSON null. */
bool sh__jset_str(json_object *obj, const char *key, const char *s);
bool sh__jset_int(json_object *obj, const char *key, int64_t v);
bool sh__jset_bool(json_object *obj, const char *key, bool v);
/* @ms as RFC 3339; @null_if_zero: 0 (or negative) becomes null. */
bool sh__jset_time(json_object *obj, const char *key, int64_t ms,
                   bool null_if_zero);
/* Add @val (a reference taken by the call, even on error). */
bool sh__jset(json_object *obj, const char *key, json_object *val);
/* {"id": id, "username": username} */
json_object *sh__juser_ref(const char *id, const char *username);

/* ---- lists -------------------------------------------------------------- */

/* A page: {"items":[...],"nextCursor":...|null,"totalCount":n}.  The items
 * array holds the item handles' objects; items[i].obj are borrowed.
 * Invariant: n == json_object_array_length(items array). */
struct sh__list {
    json_object *obj;       /* owned */
    size_t n;
    struct sh__jh *items;   /* owned array of n borrowed views */
    json_object *cursors;   /* owned array of n cursor strings, or NULL */
};

/* A new empty list builder: items array, nextCursor null, totalCount 0. */
json_object *sh__list_obj_new(void);
/* Append @item (taken) to the builder's items; false on ENOMEM. */
bool sh__list_obj_append(json_object *list, json_object *item);
size_t sh__list_obj_len(json_object *list);
/* The builder's last item (borrowed), NULL when empty. */
json_object *sh__list_obj_last(json_object *list);
/* Wrap the builder (taken, even on error) as a list handle. */
struct sh__list *sh__list_new(json_object *list);
void sh__list_free(struct sh__list *l);
size_t sh__list_count(const struct sh__list *l);
const struct sh__jh *sh__list_at(const struct sh__list *l, size_t i);
const char *sh__list_next_cursor(const struct sh__list *l);
/* The cursor of item @i (GraphQL edges); NULL without cursors. */
const char *sh__list_cursor_at(const struct sh__list *l, size_t i);

/* A page under construction: rows come from a query with LIMIT first + 1;
 * the extra row only says that there is a next page. */
struct sh__page {
    json_object *list;      /* the builder (sh__list_obj_new()) */
    json_object *cursors;   /* array of the kept items' cursors */
    int first;
    bool more;              /* a row past @first was seen */
    bool oom;
};
bool sh__page_init(struct sh__page *p, int first);
/* Add one row: @item (taken) with its cursor @cursor (malloc'd, taken). */
void sh__page_add(struct sh__page *p, json_object *item, char *cursor);
/* Set nextCursor and totalCount and wrap as a list (p is emptied).
 * SH_ENOMEM when an add failed. */
sh_err_t sh__page_finish(struct sh__page *p, int64_t total,
                         struct sh__list **out);
/* Drop a page under construction.  */
void sh__page_drop(struct sh__page *p);

/* ---- pagination and cursors ------------------------------------------- */

#define SH__PAGE_MAX 100

/* Check a page size: 1..SH__PAGE_MAX is taken as is, larger values are
 * clamped to SH__PAGE_MAX, and 0 or negative values are SH_EINVAL. */
sh_err_t sh__page_first(int first, int *out, char *errbuf,
                        size_t errbuf_len);

/* Encode @keys (a JSON array, taken) as an opaque cursor into *@out
 * (malloc'd, the caller frees).  SH_ENOMEM. */
sh_err_t sh__cursor_encode(json_object *keys, char **out);
/* Decode @cursor into a JSON array (new reference in *@out).  NULL or ""
 * gives *@out = NULL and SH_OK (first page).  Anything that is not our
 * encoding of a JSON array of @nkeys elements is SH_EINVAL. */
sh_err_t sh__cursor_decode(const char *cursor, size_t nkeys,
                           json_object **out, char *errbuf,
                           size_t errbuf_len);
/* The common (time, id) cursor. */
sh_err_t sh__cursor_ti_encode(int64_t t, const char *id, char **out);
/* *@have false for a NULL/"" cursor; @id gets 36 + 1 bytes. */
sh_err_t sh__cursor_ti_decode(const char *cursor, bool *have, int64_t *t,
                              char id[SH__UUID_LEN + 1], char *errbuf,
                              size_t errbuf_len);

/* ---- text -------------------------------------------------------------- */

/* Code points of @s (@n bytes) into *@cps; false when @s is not valid
 * UTF-8 (overlongs, surrogates, > U+10FFFF, truncated) or holds a NUL. */
bool sh__text_count(const char *s, size_t n, size_t *cps);

/* ---- users and roles --------------------------------------------------- */

#define SH__ROLE_VIEWER    1u
#define SH__ROLE_MODERATOR 2u
#define SH__ROLE_ADMIN     4u

/* The role bits of @user_id read from the users table.  SH_ENOTFOUND when
 * no such user (or @user_id is not a UUID), SH_ESTORE. */
sh_err_t sh__user_roles_c(struct sh__conn *c, const char *user_id,
                          unsigned *roles, char *errbuf, size_t errbuf_len);
sh_err_t sh__user_roles(sh_hub_t *hub, const char *user_id,
                        unsigned *roles);
/* The username of @user_id into @name (at least 64 bytes).  SH_ENOTFOUND. */
sh_err_t sh__user_name_c(struct sh__conn *c, const char *user_id,
                         char *name, size_t name_len, char *errbuf,
                         size_t errbuf_len);
/* The acting user: NULL -> SH_EUNAUTHENTICATED; an id of no user ->
 * SH_EUNAUTHENTICATED (a token outliving its user).  @roles may be NULL. */
sh_err_t sh__actor_c(struct sh__conn *c, const char *actor_id,
                     unsigned *roles, char *errbuf, size_t errbuf_len);
/* A connection for a read of the users or streams @ids (@n of them):
 * the primary when any of them is fresh (sh__store_fresh), else as
 * sh__store_acquire_read(). */
sh_err_t sh__acquire_read_many(sh_hub_t *hub, const char *const *ids,
                               size_t n, struct sh__conn **out);
/* @username (case-insensitive) -> id.  SH_ENOTFOUND, SH_EINVAL. */
sh_err_t sh__user_by_username(sh_hub_t *hub, const char *username,
                              char id[SH__UUID_LEN + 1]);

/* ---- cross-area calls (follows, streams, notifications, stats) -------- */

/* Store a notification for @user_id and publish a `notification` event
 * (data: the Notification JSON) on user:<id>.
 * @type  STREAM_LIVE, NEW_FOLLOWER, RAID_INCOMING, SUBSCRIPTION_NEW, MENTION
 * @data  a JSON object, taken by the call (even on error); NULL for {}.
 * Errors: SH_EINVAL, SH_ESTORE, SH_ENOMEM.  Must not be called while the
 * calling thread holds a store connection (it acquires one). */
sh_err_t sh__notify_create(sh_hub_t *hub, const char *user_id,
                           const char *type, json_object *data,
                           char *errbuf, size_t errbuf_len);
/* The same on a connection the caller holds (inside its transaction): the
 * row is inserted, and *@out receives the Notification JSON (a new
 * reference) for the caller to publish with sh__notify_publish() after it
 * committed and released the connection. */
sh_err_t sh__notify_insert_c(struct sh__conn *c, const char *user_id,
                             const char *type, json_object *data,
                             json_object **out, char *errbuf,
                             size_t errbuf_len);
/* Publish @notif (taken) on user:<@user_id>; failures are logged only. */
void sh__notify_publish(sh_hub_t *hub, const char *user_id,
                        json_object *notif);

/* *@out: @follower_id follows @followed_id.  SH_ESTORE. */
sh_err_t sh__is_following(sh_hub_t *hub, const char *follower_id,
                          const char *followed_id, bool *out);

/* The broadcaster of @stream_id into @channel_id and whether the stream is
 * live (@live may be NULL).  SH_ENOTFOUND, SH_ESTORE. */
sh_err_t sh__stream_channel(sh_hub_t *hub, const char *stream_id,
                            char channel_id[SH__UUID_LEN + 1], bool *live);

/* Stats hook: the chat calls it for every accepted message (any thread).
 * Counts in memory; about once a second per stream (or every 256
 * messages) the calling thread stores the batch with upserts, so it must
 * not hold a store connection.  @now_ms  wall clock of the message. */
void sh__stats_chat_accepted(sh_hub_t *hub, const char *stream_id,
                             const char *author_id, int64_t now_ms);

/* Mentions: find @username tokens in @text (ASCII [A-Za-z0-9_]{3,25}
 * after an '@' at a word boundary), look them up in one query and create
 * one MENTION notification per mentioned user (never the author, each user
 * once).  @message (borrowed, may be NULL) is the ChatMessage JSON put in
 * the notification's data.  Off the hot path (write-behind thread).
 * Returns the number of notifications created, or a negative sh_err_t. */
int sh__notify_mentions(sh_hub_t *hub, const char *stream_id,
                        const char *author_id, const char *text, size_t len,
                        json_object *message);

/* Area init/fini for hub.c's table. */
sh_err_t sh__streams_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__streams_fini(sh_hub_t *hub);

/* stats.c keeps its state (per-stream chat rate rings) inside the streams
 * area's state: */
struct sh__stats;
sh_err_t sh__stats_new(struct sh__stats **out);
void sh__stats_free(struct sh__stats *st);
/* services/cache.c: hot reads cached in memory and in redis (see
 * there).  With neither tier (cache.memory-entries 0 and no cluster or
 * redis.cache-ttl-seconds 0), every get is a miss and the rest does
 * nothing.  @locality any but a loop */
enum sh__cache_kind {
    SH__CACHE_STREAM,     /* sh_stream_get: the Stream JSON */
    SH__CACHE_USER,       /* sh_user_get: the user row, no secret */
    SH__CACHE_UNREAD,     /* sh_notification_unread_count */
    /* In memory only: */
    SH__CACHE_LIVE,       /* sh_stream_live_list pages, by arguments */
    SH__CACHE_FOLLOWERS,  /* sh_follow_counts_many: "<followers> <following>" */
    SH__CACHE_NKINDS
};
/* A miss's permission to fill: refused if the key was invalidated since. */
struct sh__cache_ticket {
    bool valid;           /* redis */
    char token[48];
    bool mem_valid;       /* memory: the kind's epoch at the miss */
    uint64_t mem_epoch;
};
sh_err_t sh__cache_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__cache_fini(sh_hub_t *hub);
/* A hit: true, *@text (NUL-terminated, @len bytes) the caller's to free().
 * A miss (or redis failing): false, and *@t the ticket for the fill. */
bool sh__cache_get(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                   char **text, size_t *len, struct sh__cache_ticket *t);
/* sh__cache_get() of the memory tier only, for a caller that keeps its
 * own parse of a text: *@stamp names the text it holds (0: none).  A hit
 * on that same text: true, *@text NULL; a hit on another: true, *@text
 * as sh__cache_get() gives it and *@stamp its name. */
bool sh__cache_get_stamped(sh_hub_t *hub, enum sh__cache_kind kind,
                           const char *key, uint64_t *stamp, char **text,
                           size_t *len, struct sh__cache_ticket *t);
/* Whether this thread's caller keeps the handles it gets on this thread
 * (sh__results_stay_begin(), services_util.c). */
bool sh__results_stay(void);
/* A ticket is good only for what the primary said: a replica may lag
 * behind a write whose invalidation has already run on any node, and its
 * answer would then stay cached for the whole TTL.  Call right after the
 * store read's acquire. */
static inline void sh__cache_from(const struct sh__conn *c,
                                  struct sh__cache_ticket *t)
{
    if (sh__store_on_replica(c)) {
        t->valid = false;
        t->mem_valid = false;
    }
}
/* Whether a miss's ticket may fill either tier. */
static inline bool sh__cache_fillable(const struct sh__cache_ticket *t)
{
    return t->valid || t->mem_valid;
}
/* Fill @id's entry with @text read from the store after the get that
 * gave @t; nothing when the entry was invalidated since. */
void sh__cache_put(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                   const struct sh__cache_ticket *t, const char *text,
                   size_t len);
/* After a write's commit, before its response: drop @id's entry, or
 * every entry of @kind. */
void sh__cache_invalidate(sh_hub_t *hub, enum sh__cache_kind kind,
                          const char *id);
void sh__cache_invalidate_all(sh_hub_t *hub, enum sh__cache_kind kind);

struct sh__stats *sh__streams_stats(sh_hub_t *hub);
/* Store @count (the whole cluster's) as the viewer count of live stream
 * @stream_id and publish stream.viewers (coalesced to one a second), as
 * sh_stream_set_viewers() does without a cluster; also while the hub is
 * closing (a leaving node refreshes the counts it held).  Errors:
 * SH_ENOTFOUND (not live), SH_ESTORE.  @locality any but a loop */
sh_err_t sh__streams_viewers_store(sh_hub_t *hub, const char *stream_id,
                                   int64_t count, char *errbuf,
                                   size_t errbuf_len);
/* In a cluster: store @total, the sum over the live nodes just read from
 * redis, then read the sum again and store it again until they agree (a
 * few rounds at most; then the counts are written again later), so that
 * the stored count ends at the latest sum whatever order the nodes'
 * writes reach the store in.  Errors as sh__streams_viewers_store(). */
sh_err_t sh__streams_viewers_sync(sh_hub_t *hub, const char *stream_id,
                                  int64_t total, char *errbuf,
                                  size_t errbuf_len);
/* Store a stream's pending chat counts and forget its ring (the stream
 * ended). */
void sh__stats_forget(sh_hub_t *hub, const char *stream_id);
/* Store every stream's pending chat counts (the hub is closing). */
void sh__stats_flush(sh_hub_t *hub);

#endif
