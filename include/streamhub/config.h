/* include/streamhub/config.h: the key/value configuration of a hub.
 *
 * One model serves the C API, the config file, environment variables and
 * streamhubd's flags (../api/PROTOCOL.md, Configuration).  Keys are lowercase
 * words joined by '-', with a '.' only to group a subsystem
 * ("chat.max-message-length"); units are in the name ("-ms", "-bytes",
 * "-seconds").  Every value is checked when it is set, and a bad key or value
 * is refused with a message naming it.  Keys rather than an options struct, so
 * that new settings never change the ABI.  docs/CONFIG.md lists every key.
 *
 * Threads: a config is not thread-safe; build it on one thread, then give it
 * to sh_hub_open(), which takes ownership on success.
 */
#ifndef STREAMHUB_CONFIG_H
#define STREAMHUB_CONFIG_H

#include "error.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Create a configuration holding every key's default.
 *
 * @out  receives the new configuration; NULL on error.
 * Errors: SH_EINVAL (@out is NULL), SH_ENOMEM.
 * Ownership: the caller owns *@out; release it with sh_config_free() unless
 * sh_hub_open() took it.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_config_new(sh_config_t **out);

/* Release @conf.  NULL is a no-op.  Since: 0.1 */
SH_API void sh_config_free(sh_config_t *conf);

/* Copy @conf, values and log callback included.
 * Ownership: the caller owns *@out.  Errors: SH_EINVAL, SH_ENOMEM.  Since: 0.1
 */
SH_API sh_err_t sh_config_dup(const sh_config_t *conf, sh_config_t **out);

/* Set @key to @value after checking both.
 *
 * @key    a key of docs/CONFIG.md, NUL-terminated.
 * @value  its text form, NUL-terminated: integers in decimal, booleans as
 *         true/false (also 1/0, yes/no, on/off), lists comma-separated.
 * Errors: SH_EINVAL with @errbuf naming the key ("unknown configuration key
 * 'x'", "chat.max-message-length: 5000 is out of range 1..2000"), SH_ENOMEM.
 * On error @conf is unchanged.
 * Ownership: both strings are copied.  Threads: see the file comment.
 * Since: 0.1
 */
SH_API sh_err_t sh_config_set(sh_config_t *conf, const char *key,
                              const char *value, char *errbuf,
                              size_t errbuf_len);

/* Copy the current text value of @key into @buf.
 *
 * @buf, @buf_len  the caller's buffer; on return *@buf_len holds the length
 *                 the value needs, terminator excluded.  With a buffer too
 *                 small (or NULL) the call returns SH_ETOOBIG and only sets
 *                 *@buf_len, so that a caller can size a second call.
 * Secrets (jwt-secret, api-key, ...) read back as they were set.
 * Errors: SH_EINVAL (unknown key), SH_ETOOBIG.  Since: 0.1
 */
SH_API sh_err_t sh_config_get(const sh_config_t *conf, const char *key,
                              char *buf, size_t *buf_len);

/* Read a config file: one `key = value` a line, blank lines and lines
 * starting with '#' ignored, spaces around key and value trimmed.
 *
 * Errors: SH_EIO (cannot read @path), SH_EINVAL with @errbuf naming the file,
 * the line and the key.  Keys before the bad line stay set.  Since: 0.1
 */
SH_API sh_err_t sh_config_load_file(sh_config_t *conf, const char *path,
                                    char *errbuf, size_t errbuf_len);

/* Apply the environment: for each key, STREAMHUB_ followed by the key in
 * capitals with '-' and '.' as '_' (chat.max-message-length is
 * STREAMHUB_CHAT_MAX_MESSAGE_LENGTH).  Unknown STREAMHUB_ variables are
 * ignored.  Errors: as sh_config_set(), naming the variable.
 * Threads: reads the process environment; do not call concurrently with
 * setenv().  Since: 0.1
 */
SH_API sh_err_t sh_config_load_env(sh_config_t *conf, char *errbuf,
                                   size_t errbuf_len);

/* Install the log sink used by the hub built from @conf.  With @cb NULL, log
 * lines go to stderr (the default).  See log.h for the line's shape and the
 * threads @cb is called on.
 * Ownership: @arg is the caller's; it must outlive the hub.  Since: 0.1
 */
SH_API void sh_config_set_log_cb(sh_config_t *conf, sh_log_cb cb, void *arg);

/* Describe the @index-th configuration key (0-based), for --help and docs.
 *
 * @name, @default_value, @doc  receive static strings (any may be NULL to
 * skip).  @default_value is "" for keys with no default.
 * Returns SH_OK, or SH_ENOTFOUND past the last key.
 * Ownership: static storage.  Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_config_describe(size_t index, const char **name,
                                   const char **default_value,
                                   const char **doc);

#ifdef __cplusplus
}
#endif

#endif
