/* include/streamhub/follows.h: follows and paid channel subscriptions.
 *
 * A user follows another (never themself).  Following is idempotent: a
 * second follow, or an unfollow of someone not followed, changes nothing
 * and succeeds.  A new follow notifies the followed user (NEW_FOLLOWER,
 * notifications.h) and counts in the newFollowers statistic of their live
 * stream, if any.
 *
 * Follower lists hold User JSON (../api/schema.graphql), newest follow
 * first: {"items":[{"id":"…","username":"…","email":null,
 * "createdAt":"…"}],"nextCursor":"…"|null,"totalCount":n}.  Page sizes
 * (@first) run 1..SH_PAGE_MAX (streams.h); larger values are clamped, 0 and
 * negative values are SH_EINVAL; a cursor that is not ours is SH_EINVAL.
 *
 * Threads: every call may come from any thread, concurrently.  Handles are
 * immutable; free each once.
 */
#ifndef STREAMHUB_FOLLOWS_H
#define STREAMHUB_FOLLOWS_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A page of users (GraphQL UserConnection). */
typedef struct sh_user_list sh_user_list_t;
/* One paid channel subscription (GraphQL ChannelSubscription). */
typedef struct sh_channel_subscription sh_channel_subscription_t;

/* @actor_id follows @user_id.
 *
 * @created  may be NULL; receives true when the follow is new (false when
 *           it existed already: nothing else happened then).
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (following oneself),
 * SH_ENOTFOUND (no such user), SH_ESTORE, SH_ECANCELED, SH_ENOMEM.
 * Ownership: all borrowed.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_follow(sh_hub_t *hub, const char *actor_id,
                          const char *user_id, bool *created, char *errbuf,
                          size_t errbuf_len);

/* @actor_id stops following @user_id.
 *
 * @removed  may be NULL; receives true when a follow was removed.
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (oneself), SH_ENOTFOUND (no such
 * user), SH_ESTORE, SH_ECANCELED.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_unfollow(sh_hub_t *hub, const char *actor_id,
                            const char *user_id, bool *removed,
                            char *errbuf, size_t errbuf_len);

/* *@out: @follower_id follows @followed_id (false for unknown users).
 * Errors: SH_EINVAL (NULL argument), SH_ESTORE.  Since: 0.1 */
SH_API sh_err_t sh_follow_check(sh_hub_t *hub, const char *follower_id,
                                const char *followed_id, bool *out,
                                char *errbuf, size_t errbuf_len);

/* The number of followers of @user_id and of users it follows (either
 * output may be NULL).  Errors: SH_ENOTFOUND, SH_ESTORE.  Since: 0.1 */
SH_API sh_err_t sh_follow_counts(sh_hub_t *hub, const char *user_id,
                                 int64_t *followers, int64_t *following,
                                 char *errbuf, size_t errbuf_len);

/* Most ids one sh_follow_counts_many() call takes. */
#define SH_FOLLOW_COUNTS_MANY_MAX 1000

/* The counts of sh_follow_counts() for each of @n users at once, in as few
 * store statements as possible (one per 50 distinct ids), for lists that
 * show many users (GraphQL User.followerCount on every item).
 *
 * @user_ids   @n NUL-terminated ids, 0..SH_FOLLOW_COUNTS_MANY_MAX;
 *             duplicates are looked up once and answered at each place.
 * @followers  NULL, or @n entries: [i] receives the number of followers
 *             of @user_ids[i], or -1 when it names no user (malformed ids
 *             included; that is not an error).
 * @following  NULL, or @n entries: the same for the users it follows.
 * Returns SH_OK (also for @n == 0, with nothing written).
 * Errors: SH_EINVAL (NULL @user_ids with @n > 0, a NULL id, @n over the
 * maximum: the arrays are not written), SH_ECANCELED, SH_ESTORE (see
 * @errbuf), SH_ENOMEM; on those the @n entries of each array are 0.
 * Ownership: all borrowed for the call.
 * Threads: any, concurrently.  Since: 0.1
 */
SH_API sh_err_t sh_follow_counts_many(sh_hub_t *hub,
                                      const char *const *user_ids, size_t n,
                                      int64_t *followers, int64_t *following,
                                      char *errbuf, size_t errbuf_len);

/* The followers of @user_id (sh_followers_list) or the users it follows
 * (sh_following_list), most recent follow first, a page of at most @first
 * after the cursor @after (NULL or "" for the first page).
 * Errors: SH_ENOTFOUND (no such user), SH_EINVAL (first, cursor),
 * SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out is the caller's (sh_user_list_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_followers_list(sh_hub_t *hub, const char *user_id,
                                  int first, const char *after,
                                  sh_user_list_t **out, char *errbuf,
                                  size_t errbuf_len);
SH_API sh_err_t sh_following_list(sh_hub_t *hub, const char *user_id,
                                  int first, const char *after,
                                  sh_user_list_t **out, char *errbuf,
                                  size_t errbuf_len);

SH_API size_t sh_user_list_count(const sh_user_list_t *l);
/* Item @i's fields, borrowed until the list is freed; NULL past the end. */
SH_API const char *sh_user_list_id_at(const sh_user_list_t *l, size_t i);
SH_API const char *sh_user_list_username_at(const sh_user_list_t *l,
                                            size_t i);
/* Item @i's User JSON and its cursor (for GraphQL edges). */
SH_API const char *sh_user_list_json_at(const sh_user_list_t *l, size_t i,
                                        size_t *len);
SH_API const char *sh_user_list_cursor_at(const sh_user_list_t *l,
                                          size_t i);
SH_API const char *sh_user_list_next_cursor(const sh_user_list_t *l);
SH_API bool sh_user_list_has_next(const sh_user_list_t *l);
SH_API int64_t sh_user_list_total_count(const sh_user_list_t *l);
SH_API const char *sh_user_list_json(const sh_user_list_t *l, size_t *len);
SH_API void sh_user_list_free(sh_user_list_t *l);

/* ---- paid channel subscriptions ------------------------------------- */

/* @actor_id subscribes to channel @channel_id (a user) at @tier.
 *
 * @tier  1..3 (0 means the default, 1).
 * Records the subscription, notifies the channel (SUBSCRIPTION_NEW: a
 * `notification` event on its `user:<id>`).  Each call records a new
 * subscription (a renewal or a change of tier is a new record).
 * Errors: SH_EUNAUTHENTICATED, SH_EINVAL (tier, oneself), SH_ENOTFOUND
 * (no such channel), SH_ESTORE, SH_ENOMEM.
 * Ownership: *@out (may be NULL) is the caller's
 * (sh_channel_subscription_free()).  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_channel_subscribe(sh_hub_t *hub, const char *actor_id,
                                     const char *channel_id, int tier,
                                     sh_channel_subscription_t **out,
                                     char *errbuf, size_t errbuf_len);
SH_API const char *
sh_channel_subscription_id(const sh_channel_subscription_t *s);
SH_API const char *
sh_channel_subscription_subscriber_id(const sh_channel_subscription_t *s);
SH_API const char *
sh_channel_subscription_channel_id(const sh_channel_subscription_t *s);
SH_API int sh_channel_subscription_tier(const sh_channel_subscription_t *s);
/* {"id","subscriber":{"id","username"},"channel":{"id","username"},
 * "tier","createdAt"}; borrowed until free. */
SH_API const char *
sh_channel_subscription_json(const sh_channel_subscription_t *s,
                             size_t *len);
SH_API void sh_channel_subscription_free(sh_channel_subscription_t *s);

#ifdef __cplusplus
}
#endif

#endif
