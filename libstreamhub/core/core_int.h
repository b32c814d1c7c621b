/* libstreamhub/core/core_int.h: the core's internals shared by every area.
 *
 * The core knows no domain: errors, configuration, logging, clocks, ids,
 * and the callback dispatcher that moves work onto the hub's loop or poll
 * thread.  Nothing here includes another area's header.
 */
#ifndef SH_CORE_INT_H
#define SH_CORE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "streamhub/config.h"
#include "streamhub/error.h"
#include "streamhub/log.h"
#include "streamhub/types.h"
#include "streamhub/version.h"

#if defined(__GNUC__) || defined(__clang__)
#  define SH__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define SH__PRINTF(f, a)
#endif

/* ---- errbuf ---------------------------------------------------------- */

/* Format into the caller's error buffer; NULL/0 is a no-op; always
 * terminated, truncated to fit. */
void sh__errbuf(char *errbuf, size_t errbuf_len, const char *fmt, ...)
    SH__PRINTF(3, 4);

/* ---- configuration --------------------------------------------------- */

enum sh__conf_type {
    SH__CONF_STRING,
    SH__CONF_SECRET,   /* a string never logged nor printed */
    SH__CONF_INT,      /* int64 within [min, max] */
    SH__CONF_BOOL,
    SH__CONF_ENUM      /* one of a '|'-separated list in .choices */
};

struct sh__conf_key {
    const char *name;
    enum sh__conf_type type;
    const char *def;        /* default text; "" for none */
    int64_t min, max;       /* SH__CONF_INT only */
    const char *choices;    /* SH__CONF_ENUM only: "a|b|c" */
    const char *doc;        /* one sentence for --help and docs/CONFIG.md */
};

/* The table of every key (config_table.c), in documentation order. */
extern const struct sh__conf_key sh__conf_keys[];
extern const size_t sh__conf_nkeys;

/* Typed reads of a validated configuration.  The key must exist in the table
 * with the matching type: a wrong key is a bug of ours (asserted). */
const char *sh__config_str(const sh_config_t *conf, const char *key);
int64_t sh__config_int(const sh_config_t *conf, const char *key);
bool sh__config_bool(const sh_config_t *conf, const char *key);
/* True when @key was set explicitly (not left to its default). */
bool sh__config_is_set(const sh_config_t *conf, const char *key);
sh_log_cb sh__config_log_cb(const sh_config_t *conf, void **arg);

/* ---- logging --------------------------------------------------------- */

struct sh__log {
    sh_log_level_t level;
    sh_log_cb cb;          /* NULL: stderr */
    void *cb_arg;
};

void sh__log_init(struct sh__log *lg, const sh_config_t *conf);
/* Log @msg with @fields (a JSON object taken by the call, may be NULL). */
void sh__log(const struct sh__log *lg, sh_log_level_t level, const char *msg,
             json_object *fields);
/* Log @msg with string fields given as key, value pairs ending in NULL. */
void sh__log_kv(const struct sh__log *lg, sh_log_level_t level,
                const char *msg, ...);
static inline bool sh__log_on(const struct sh__log *lg, sh_log_level_t lv)
{
    return lv >= lg->level;
}
/* Parse "debug".."error"; false when unknown. */
bool sh__log_level_parse(const char *s, sh_log_level_t *out);
const char *sh__log_level_name(sh_log_level_t level);

/* ---- clocks, ids, text ----------------------------------------------- */

/* Wall clock, milliseconds since the Unix epoch (UTC). */
int64_t sh__now_ms(void);
/* Monotonic clock in milliseconds, for durations and token buckets. */
int64_t sh__mono_ms(void);
/* Format @ms as RFC 3339 UTC with milliseconds, "2026-11-27T05:33:42.123Z";
 * @buf holds at least SH__TS_LEN + 1 bytes. */
#define SH__TS_LEN 24
void sh__ts_format(int64_t ms, char *buf);
/* A random UUID (RFC 9562 version 4), lowercase, into @buf of at least
 * SH__UUID_LEN + 1 bytes; random bytes from libsodium. */
#define SH__UUID_LEN 36
void sh__uuid4(char *buf);
/* True when @s is a UUID in its canonical 36-character form. */
bool sh__uuid_valid(const char *s);

/* ---- the dispatcher -------------------------------------------------- */

/* The queue of callbacks that must run on the hub's loop thread (attached)
 * or inside sh_hub_poll() (standalone).  Any thread may post; one thread
 * runs.  An eventfd is readable while the queue is not empty.
 *
 * Invariants:
 *  1. The eventfd's counter is non-zero iff the queue may hold a job
 *     (it is drained before the queue is emptied, never after).
 *  2. A job runs exactly once: by sh__dispatch_run() or, at destroy, with
 *     canceled = true.
 */
typedef void (*sh__job_fn)(void *arg, bool canceled);
struct sh__dispatch;

sh_err_t sh__dispatch_new(struct sh__dispatch **out);
/* Run every queued job with canceled = true, then free.  NULL is a no-op. */
void sh__dispatch_free(struct sh__dispatch *d);
/* Queue @fn(@arg).  SH_ENOMEM leaves nothing queued; SH_ECANCELED once the
 * dispatcher is closing. */
sh_err_t sh__dispatch_post(struct sh__dispatch *d, sh__job_fn fn, void *arg);
/* Run the jobs queued now (not those they queue); returns how many. */
int sh__dispatch_run(struct sh__dispatch *d);
/* Wait up to @timeout_ms (-1: forever) until a job is queued. */
void sh__dispatch_wait(struct sh__dispatch *d, int timeout_ms);
int sh__dispatch_fd(const struct sh__dispatch *d);
/* Make the fd readable (and a waiting sh__dispatch_wait() return) without
 * queuing a job. */
void sh__dispatch_wake(struct sh__dispatch *d);
struct event_base;   /* libevent's; hub.h attaches a hub to one */
/* Run jobs on @base's loop from now on, a bounded batch per loop turn
 * (the rest wait for the next turn, in order), so that a burst of jobs
 * never holds the loop.  @base must be thread-aware. */
sh_err_t sh__dispatch_attach(struct sh__dispatch *d, struct event_base *base);
bool sh__dispatch_attached(const struct sh__dispatch *d);

#endif
