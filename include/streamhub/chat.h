/* include/streamhub/chat.h: chat messages of a live stream.
 *
 * A message is sent to a stream's chat with sh_chat_send(), which checks it
 * (authentication, the stream, the channel's moderation state, its length,
 * its text, the author's rate limit), publishes it as a `chat.message` event
 * on the bus channel `chat:<streamId>` and stores it.  The event's offset
 * is the message's `offset`: increasing with each event of the channel,
 * and never handed out twice, even across a crash (offsets are reserved
 * in the store ahead of use, `chat.offset-block` at most at a time: a
 * crash may leave a gap, never a repeat).
 *
 * Messages are stored in batches by one writer thread (group commit, the
 * `chat.write-behind-*` keys).  What an SH_OK from sh_chat_send() means
 * depends on `chat.durability`:
 *  - commit (the default): the message is stored (its batch committed)
 *    and then published; it survives kill -9.  The call waits for the
 *    commit: never call it on an event loop thread.
 *  - async: the message is published and queued, not yet stored; a crash
 *    may lose up to `chat.write-behind-queue` acknowledged messages.
 * Either way an acknowledged message is never lost on a clean
 * sh_hub_close(), and sh_chat_history() always sees it.
 *
 * Results are opaque handles holding the JSON of the GraphQL type of
 * ../api/schema.graphql (ChatMessage), which is also the event's data and
 * the REST body:
 *   {"id":"…","streamId":"…","author":{"id":"…","username":"…"},
 *    "text":"…","offset":42,"createdAt":"2026-11-27T05:33:42.123Z",
 *    "deleted":false}
 *
 * Threads: every call may come from any thread, concurrently.  A handle is
 * immutable and may be read from several threads at once; free it once.
 */
#ifndef STREAMHUB_CHAT_H
#define STREAMHUB_CHAT_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One chat message (GraphQL ChatMessage). */
typedef struct sh_chat_message sh_chat_message_t;
/* A page of chat history, newest last (GraphQL ChatMessageConnection). */
typedef struct sh_chat_message_list sh_chat_message_list_t;

/* Most messages one sh_chat_history() call returns. */
#define SH_CHAT_HISTORY_MAX 100

/* Send @text to the chat of stream @stream_id as @actor_id.
 *
 * @actor_id   the authenticated user's id; NULL for anonymous (refused).
 * @stream_id  the stream's id, NUL-terminated.
 * @text       UTF-8, @len bytes, need not be terminated; may hold NUL bytes
 *             (control characters, removed like the others).
 * @msg_out    may be NULL; receives the accepted message (text as stored:
 *             control characters of category Cc, "\n" included, removed;
 *             format characters such as ZWJ kept byte for byte).
 * @retry_after_ms  may be NULL; receives, with SH_ETIMEDOUT_USER,
 *             SH_ESLOWMODE and SH_ERATELIMITED, the milliseconds to wait
 *             before the next attempt can pass (>= 1); else 0.
 *
 * Checks, in this order; the first that fails is the error returned:
 *   1. SH_EUNAUTHENTICATED  @actor_id is NULL or not a user;
 *   2. SH_ENOTFOUND  no such stream; SH_ECONFLICT  the stream is offline;
 *   3. SH_EBANNED  the author is banned from the channel;
 *   4. SH_ETIMEDOUT_USER  the author is timed out (retry = time left);
 *   5. SH_EFOLLOWERSONLY  followers-only chat and the author does not
 *      follow the broadcaster;
 *   6. SH_ESLOWMODE  slow mode, too soon after the author's last message
 *      (retry = time left);
 *      (5 and 6 exempt the broadcaster, the channel's moderators and
 *      admins)
 *   7. SH_ETOOLONG  more code points than the channel's maxMessageLength;
 *   8. SH_EBADUTF8  @text is not valid UTF-8 (refused, never repaired);
 *   9. SH_EEMPTY  nothing left once control characters are removed;
 *  10. SH_EBLOCKEDTERM  the text holds a blocked term (case-insensitive,
 *      default-ignorable code points such as U+200B disregarded);
 *  11. SH_ERATELIMITED  more than `chat.rate-limit` messages in
 *      `chat.rate-window-seconds` (retry = until the next token).
 * Other errors: SH_EINVAL (NULL @stream_id, or NULL @text with @len > 0),
 * SH_EBUSY (the write-behind queue is full: the store is behind; retry
 * later), SH_ESTORE (the store failed: with chat.durability = commit, also
 * a message that could not be stored before the hub closed), SH_EBUS,
 * SH_ECANCELED (the hub is closing), SH_ENOMEM.
 * On error nothing was published nor stored, and *@msg_out is NULL.
 * Ownership: arguments borrowed for the call; *@msg_out is the caller's,
 * released with sh_chat_message_free().
 * Threads: any but an event loop's with chat.durability = commit (the
 * call waits for the store; concurrent calls share one commit).
 * Since: 0.1
 */
SH_API sh_err_t sh_chat_send(sh_hub_t *hub, const char *actor_id,
                             const char *stream_id, const char *text,
                             size_t len, sh_chat_message_t **msg_out,
                             int64_t *retry_after_ms, char *errbuf,
                             size_t errbuf_len);

/* The chat history of @stream_id: the @last messages before @before_cursor
 * (all the newest when NULL), newest last.
 *
 * @last           messages wanted: 0 means the default, 50; above
 *                 SH_CHAT_HISTORY_MAX it is clamped to it (as every paged
 *                 call of the library clamps); negative is SH_EINVAL.
 * @before_cursor  NULL, or a cursor of an earlier page
 *                 (sh_chat_message_list_start_cursor()).
 * @out            receives the page.
 * Messages still in the write-behind queue are included: the call waits
 * until everything queued before it reached the store.  Deleted messages,
 * and those removed by a ban or timeout, appear with deleted true and an
 * empty text.
 * Errors: SH_EINVAL (bad @last or cursor), SH_ENOTFOUND (no such stream),
 * SH_ESTORE, SH_ECANCELED, SH_ENOMEM.
 * Ownership: *@out is the caller's (sh_chat_message_list_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_chat_history(sh_hub_t *hub, const char *stream_id,
                                int last, const char *before_cursor,
                                sh_chat_message_list_t **out, char *errbuf,
                                size_t errbuf_len);

/* Delete message @message_id: its text is removed from the store and from
 * the bus history (recovering subscribers replay it with deleted true and an
 * empty text), and `chat.message_deleted` {"messageId","offset"} is
 * published on its stream's chat channel.  Deleting a deleted message
 * succeeds and publishes nothing.
 *
 * @actor_id  the broadcaster of the message's channel, one of its
 *            moderators, or an admin.
 * Errors: SH_EUNAUTHENTICATED, SH_EFORBIDDEN, SH_ENOTFOUND, SH_EINVAL,
 * SH_ESTORE, SH_ECANCELED, SH_ENOMEM.
 * Ownership: borrowed.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_chat_delete(sh_hub_t *hub, const char *actor_id,
                               const char *message_id, char *errbuf,
                               size_t errbuf_len);

/* Getters of a message.  Strings are borrowed until sh_chat_message_free().
 * All return NULL/0 for a NULL handle.  Since: 0.1 */
SH_API const char *sh_chat_message_id(const sh_chat_message_t *m);
SH_API const char *sh_chat_message_stream_id(const sh_chat_message_t *m);
SH_API const char *sh_chat_message_author_id(const sh_chat_message_t *m);
SH_API const char *sh_chat_message_author_username(
    const sh_chat_message_t *m);
/* The text, @len (may be NULL) its bytes; NUL-terminated. */
SH_API const char *sh_chat_message_text(const sh_chat_message_t *m,
                                        size_t *len);
SH_API int64_t sh_chat_message_offset(const sh_chat_message_t *m);
/* RFC 3339 UTC, e.g. "2026-11-27T05:33:42.123Z". */
SH_API const char *sh_chat_message_created_at(const sh_chat_message_t *m);
SH_API bool sh_chat_message_deleted(const sh_chat_message_t *m);
/* The ChatMessage JSON text, @len (may be NULL) its bytes. */
SH_API const char *sh_chat_message_json(const sh_chat_message_t *m,
                                        size_t *len);
/* Release @m.  NULL is a no-op.  Since: 0.1 */
SH_API void sh_chat_message_free(sh_chat_message_t *m);

/* A history page.  Its JSON is
 *   {"items":[ChatMessage…],"cursors":["…"…],"hasPreviousPage":bool,
 *    "hasNextPage":bool,"startCursor":"…"|null,"endCursor":"…"|null}
 * (items newest last; cursors[i] is the cursor of items[i]).
 * The message handles of _at() and the strings are borrowed until
 * sh_chat_message_list_free().  Since: 0.1 */
SH_API size_t sh_chat_message_list_count(const sh_chat_message_list_t *l);
SH_API const sh_chat_message_t *sh_chat_message_list_at(
    const sh_chat_message_list_t *l, size_t i);
SH_API const char *sh_chat_message_list_cursor_at(
    const sh_chat_message_list_t *l, size_t i);
/* True when older messages exist before the first of this page. */
SH_API bool sh_chat_message_list_has_previous(
    const sh_chat_message_list_t *l);
/* The cursor to pass as @before_cursor for the previous (older) page;
 * NULL for an empty page. */
SH_API const char *sh_chat_message_list_start_cursor(
    const sh_chat_message_list_t *l);
SH_API const char *sh_chat_message_list_json(const sh_chat_message_list_t *l,
                                             size_t *len);
SH_API void sh_chat_message_list_free(sh_chat_message_list_t *l);

#ifdef __cplusplus
}
#endif

#endif
