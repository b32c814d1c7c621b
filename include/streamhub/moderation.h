/* include/streamhub/moderation.h: moderating a channel's chat.
 *
 * A channel is a user (the broadcaster); its moderation state (bans,
 * timeouts, moderators, chat settings) applies to the chat of every stream
 * the broadcaster runs.  Each change takes effect for the very next
 * sh_chat_send() (chat.h) and is published on `chat:<streamId>` of the
 * channel's live stream, if any:
 *   chat.user_timed_out  {"userId","until","reason"}
 *   chat.user_banned     {"userId","reason"}
 *   chat.settings_changed  the ChatSettings JSON (below)
 * A ban or a timeout also redacts the user's messages of the last
 * `chat.redact-window-seconds` seconds in the channel, in the store and in
 * the bus history: neither the history nor a recovering subscriber shows
 * their text again (deleted true, empty text).
 *
 * Who may do what:
 *  - timeouts, bans, unbans and chat settings: the broadcaster, the
 *    channel's moderators and admins;
 *  - adding and removing moderators: the broadcaster and admins;
 *  - nobody can time out or ban the broadcaster (SH_EFORBIDDEN), and a
 *    moderator cannot time out or ban another moderator (SH_EFORBIDDEN:
 *    only the broadcaster or an admin can, after removing them or not).
 *
 * Threads: every call may come from any thread, concurrently.
 */
#ifndef STREAMHUB_MODERATION_H
#define STREAMHUB_MODERATION_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A channel's chat settings (GraphQL ChatSettings):
 *   {"slowModeSeconds":0,"followersOnly":false,"maxMessageLength":500,
 *    "blockedTerms":["…"]} */
typedef struct sh_chat_settings sh_chat_settings_t;

#define SH_TIMEOUT_MAX_SECONDS 1209600  /* 14 days */
#define SH_SLOW_MODE_MAX_SECONDS 86400
#define SH_MESSAGE_LENGTH_MAX 2000      /* code points */
#define SH_BLOCKED_TERMS_MAX 1000
#define SH_BLOCKED_TERM_MAX 100         /* code points */
#define SH_REASON_MAX 500               /* code points */

/* Time @user_id out of @channel_id's chat for @seconds (1..
 * SH_TIMEOUT_MAX_SECONDS), replacing any earlier timeout.
 *
 * @reason  NULL, or UTF-8 of at most SH_REASON_MAX code points.
 * Errors: SH_EUNAUTHENTICATED (@actor_id NULL), SH_EINVAL (bad argument),
 * SH_ENOTFOUND (no such channel or user), SH_EFORBIDDEN (see the file
 * comment), SH_ESTORE, SH_ECANCELED, SH_ENOMEM.
 * Ownership: borrowed.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_moderation_timeout(sh_hub_t *hub, const char *actor_id,
                                      const char *channel_id,
                                      const char *user_id, int64_t seconds,
                                      const char *reason, char *errbuf,
                                      size_t errbuf_len);

/* Ban @user_id from @channel_id's chat until unbanned.  Banning a banned
 * user updates the reason.  Errors as sh_moderation_timeout().  Since: 0.1
 */
SH_API sh_err_t sh_moderation_ban(sh_hub_t *hub, const char *actor_id,
                                  const char *channel_id, const char *user_id,
                                  const char *reason, char *errbuf,
                                  size_t errbuf_len);

/* Lift a ban (and a timeout) of @user_id in @channel_id.  Unbanning a user
 * who is not banned succeeds.  Errors as sh_moderation_timeout().
 * Since: 0.1 */
SH_API sh_err_t sh_moderation_unban(sh_hub_t *hub, const char *actor_id,
                                    const char *channel_id,
                                    const char *user_id, char *errbuf,
                                    size_t errbuf_len);

/* Make @user_id a moderator of @channel_id (idempotent).  Only the
 * broadcaster or an admin.  The broadcaster cannot be their own moderator
 * (SH_EINVAL).  Errors as sh_moderation_timeout().  Since: 0.1 */
SH_API sh_err_t sh_moderation_add_moderator(sh_hub_t *hub,
                                            const char *actor_id,
                                            const char *channel_id,
                                            const char *user_id,
                                            char *errbuf, size_t errbuf_len);

/* Remove @user_id from @channel_id's moderators (idempotent).  Since: 0.1 */
SH_API sh_err_t sh_moderation_remove_moderator(sh_hub_t *hub,
                                               const char *actor_id,
                                               const char *channel_id,
                                               const char *user_id,
                                               char *errbuf,
                                               size_t errbuf_len);

/* True in *@out when @user_id moderates @channel_id.
 * Errors: SH_EINVAL, SH_ESTORE, SH_ECANCELED.  Since: 0.1 */
SH_API sh_err_t sh_moderation_is_moderator(sh_hub_t *hub,
                                           const char *channel_id,
                                           const char *user_id, bool *out,
                                           char *errbuf, size_t errbuf_len);

/* Change some of @channel_id's chat settings.
 *
 * @patch_json  a JSON object, @len bytes, with any of "slowModeSeconds"
 *              (0..SH_SLOW_MODE_MAX_SECONDS), "followersOnly" (boolean),
 *              "maxMessageLength" (1..SH_MESSAGE_LENGTH_MAX) and
 *              "blockedTerms" (an array of at most SH_BLOCKED_TERMS_MAX
 *              strings of 1..SH_BLOCKED_TERM_MAX code points, valid UTF-8,
 *              no control characters; it replaces the whole list).  Absent
 *              or null members keep their value: the mutation
 *              updateChatSettings' arguments, as they are named.
 * @out         may be NULL; receives the settings after the change.
 * Errors: SH_EINVAL (bad JSON, unknown member, bad value: @errbuf names
 * it), SH_EUNAUTHENTICATED, SH_EFORBIDDEN, SH_ENOTFOUND, SH_ESTORE,
 * SH_ECANCELED, SH_ENOMEM.  On error nothing changed.
 * Ownership: borrowed; *@out is the caller's (sh_chat_settings_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_chat_settings_update(sh_hub_t *hub, const char *actor_id,
                                        const char *channel_id,
                                        const char *patch_json, size_t len,
                                        sh_chat_settings_t **out,
                                        char *errbuf, size_t errbuf_len);

/* The chat settings of @channel_id (the defaults when never changed:
 * maxMessageLength from `chat.max-message-length`).
 * Errors: SH_EINVAL, SH_ENOTFOUND (no such user), SH_ESTORE, SH_ECANCELED,
 * SH_ENOMEM.  Ownership: *@out is the caller's.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_chat_settings_get(sh_hub_t *hub, const char *channel_id,
                                     sh_chat_settings_t **out, char *errbuf,
                                     size_t errbuf_len);

/* Getters; strings borrowed until sh_chat_settings_free().  Since: 0.1 */
SH_API int64_t sh_chat_settings_slow_mode_seconds(
    const sh_chat_settings_t *s);
SH_API bool sh_chat_settings_followers_only(const sh_chat_settings_t *s);
SH_API int64_t sh_chat_settings_max_message_length(
    const sh_chat_settings_t *s);
SH_API size_t sh_chat_settings_blocked_term_count(
    const sh_chat_settings_t *s);
SH_API const char *sh_chat_settings_blocked_term_at(
    const sh_chat_settings_t *s, size_t i);
SH_API const char *sh_chat_settings_json(const sh_chat_settings_t *s,
                                         size_t *len);
/* NULL is a no-op.  Since: 0.1 */
SH_API void sh_chat_settings_free(sh_chat_settings_t *s);

#ifdef __cplusplus
}
#endif

#endif
