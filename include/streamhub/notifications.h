/* include/streamhub/notifications.h: a user's notifications.
 *
 * The hub stores a notification when a followed user goes live
 * (STREAM_LIVE), someone follows the user (NEW_FOLLOWER), a raid comes in
 * (RAID_INCOMING), someone subscribes to the user's channel
 * (SUBSCRIPTION_NEW) or mentions the user in chat (MENTION), and publishes
 * it as a `notification` event on the bus channel `user:<id>`.  A
 * Notification (../api/schema.graphql):
 *   {"id":"…","type":"STREAM_LIVE","data":{…},"read":false,
 *    "createdAt":"2026-11-27T05:33:42.123Z"}
 * A user only ever sees their own notifications.
 *
 * Threads: every call may come from any thread, concurrently.
 */
#ifndef STREAMHUB_NOTIFICATIONS_H
#define STREAMHUB_NOTIFICATIONS_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sh_notification sh_notification_t;
/* A page: {"items":[…],"nextCursor":…|null,"totalCount":n,
 * "unreadCount":n} (totalCount counts what the filter selects). */
typedef struct sh_notification_list sh_notification_list_t;

/* The notifications of @actor_id, newest first, a page of at most @first
 * (1..SH_PAGE_MAX; larger: clamped; < 1: SH_EINVAL) after the cursor
 * @after (NULL or "" for the first page).
 *
 * @unread_only  true: only unread ones.
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (first, cursor), SH_ESTORE,
 * SH_ENOMEM.
 * Ownership: *@out is the caller's (sh_notification_list_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_notification_list(sh_hub_t *hub, const char *actor_id,
                                     int first, const char *after,
                                     bool unread_only,
                                     sh_notification_list_t **out,
                                     char *errbuf, size_t errbuf_len);

/* The number of unread notifications of @actor_id.
 * Errors: SH_EUNAUTHENTICATED, SH_ESTORE.  Since: 0.1 */
SH_API sh_err_t sh_notification_unread_count(sh_hub_t *hub,
                                             const char *actor_id,
                                             int64_t *out, char *errbuf,
                                             size_t errbuf_len);

/* Mark read the notifications @ids (@nids of them) of @actor_id, or all of
 * them when @ids is NULL.  Ids of another user's notifications, unknown
 * ids and ids already read are ignored.
 *
 * @changed  may be NULL; receives how many went from unread to read.
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (NULL id, more than 1000 ids),
 * SH_ESTORE.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_notification_mark_read(sh_hub_t *hub,
                                          const char *actor_id,
                                          const char *const *ids,
                                          size_t nids, int64_t *changed,
                                          char *errbuf, size_t errbuf_len);

SH_API const char *sh_notification_id(const sh_notification_t *n);
/* "STREAM_LIVE", "NEW_FOLLOWER", "RAID_INCOMING", "SUBSCRIPTION_NEW",
 * "MENTION". */
SH_API const char *sh_notification_type(const sh_notification_t *n);
SH_API bool sh_notification_read(const sh_notification_t *n);
/* The data member's JSON text; borrowed until the owner is freed. */
SH_API const char *sh_notification_data_json(const sh_notification_t *n,
                                             size_t *len);
SH_API const char *sh_notification_json(const sh_notification_t *n,
                                        size_t *len);

SH_API size_t sh_notification_list_count(const sh_notification_list_t *l);
SH_API const sh_notification_t *
sh_notification_list_at(const sh_notification_list_t *l, size_t i);
SH_API const char *
sh_notification_list_cursor_at(const sh_notification_list_t *l, size_t i);
SH_API const char *
sh_notification_list_next_cursor(const sh_notification_list_t *l);
SH_API bool sh_notification_list_has_next(const sh_notification_list_t *l);
SH_API int64_t
sh_notification_list_total_count(const sh_notification_list_t *l);
SH_API int64_t
sh_notification_list_unread_count(const sh_notification_list_t *l);
SH_API const char *
sh_notification_list_json(const sh_notification_list_t *l, size_t *len);
SH_API void sh_notification_list_free(sh_notification_list_t *l);

#ifdef __cplusplus
}
#endif

#endif
