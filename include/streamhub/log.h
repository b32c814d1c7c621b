/* include/streamhub/log.h: structured logging.
 *
 * A hub logs JSON lines, one object each:
 *   {"ts":"2026-11-27T05:33:42.123Z","level":"info","msg":"hub opened",
 *    "store":"sqlite:streamhub.db"}
 * "ts" is RFC 3339 UTC with milliseconds, "level" one of debug/info/warn/
 * error, "msg" a fixed English sentence, and the other members the fields of
 * the event.  Secrets (passwords, tokens, keys) are never logged.
 * The level comes from the `log-level` key; the sink from
 * sh_config_set_log_cb() (stderr by default).
 */
#ifndef STREAMHUB_LOG_H
#define STREAMHUB_LOG_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sh_log_level {
    SH_LOG_DEBUG = 10,
    SH_LOG_INFO = 20,
    SH_LOG_WARN = 30,
    SH_LOG_ERROR = 40
} sh_log_level_t;

/* A log sink.
 *
 * @arg    the pointer given to sh_config_set_log_cb().
 * @level  the line's level (already filtered by `log-level`).
 * @line   one JSON object, @len bytes, NUL-terminated, no trailing newline.
 * Ownership: @line dies when the callback returns.
 * Threads: called from any thread of the hub (service callers, the loop, the
 * write-behind writer), possibly concurrently: the sink serialises itself.  It
 * must not call back into the hub.
 */
typedef void (*sh_log_cb)(void *arg, sh_log_level_t level, const char *line,
                          size_t len);

#ifdef __cplusplus
}
#endif

#endif
