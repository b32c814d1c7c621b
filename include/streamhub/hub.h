/* include/streamhub/hub.h: one StreamHub instance.
 *
 * A hub owns one store, one bus and the services on them.  It is
 * thread-safe: every service call may come from any thread, concurrently.
 *
 * Callbacks (bus deliveries, see bus.h) never run inside the call that caused
 * them.  They are queued by the hub and run:
 *  - attached (sh_hub_attach()): on the thread running the embedder's
 *    libevent loop, the model of streamhubd and of C services with a loop;
 *  - standalone: only inside sh_hub_poll(), on the polling thread, the model
 *    of the Python and Go bindings and of programs without a loop.  The file
 *    descriptor of sh_hub_fd() is readable while callbacks are pending, so
 *    that any event loop (asyncio's add_reader, Go's poller, poll(2)) can wait
 *    for them without busy polling.
 * Callbacks must not block, nor call sh_hub_poll() or sh_hub_close().
 */
#ifndef STREAMHUB_HUB_H
#define STREAMHUB_HUB_H

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base; /* libevent's; a forward declaration, no include */

/* Open a hub: open the store named by `store`, apply its migrations, start
 * the bus named by `bus` and the write-behind writer.
 *
 * @conf  the configuration; taken on success only (the hub frees it), still
 *        the caller's on error.
 * @out   receives the hub; NULL on error.
 * Errors: SH_EINVAL (bad @conf or @out), SH_ESTORE (cannot open or migrate
 * the store; @errbuf says why), SH_EBUS, SH_EIO, SH_ENOMEM.
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_hub_open(sh_config_t *conf, sh_hub_t **out, char *errbuf,
                            size_t errbuf_len);

/* Close @hub: refuse new calls (SH_ECANCELED), wake a thread waiting in
 * sh_hub_poll(), wait for the calls already running on other threads to
 * return, cancel subscriptions, flush the write-behind queue to the store
 * (nothing acknowledged is lost), close the bus and the store, free
 * everything.  NULL is a no-op.
 * Every subscription still open gets its final callback (SH_ECANCELED)
 * before this returns, ON THE CALLING THREAD, for attached and standalone
 * hubs alike; events still queued for it are dropped, not delivered.
 * Subscription handles stay the caller's (sh_subscription_free()).
 * Threads: any thread but a callback's.  Calls on @hub from other threads
 * may run meanwhile: each completes, or returns SH_ECANCELED (-SH_ECANCELED
 * for sh_hub_poll()) once the close has begun.  No call may start after
 * this has returned (@hub is freed).  Since: 0.1
 */
SH_API void sh_hub_close(sh_hub_t *hub);

/* Run the callbacks pending on a standalone hub, waiting up to @timeout_ms
 * milliseconds (0: do not wait; -1: wait until one is pending) for the first.
 *
 * Returns the number of callbacks run (>= 0), or -SH_EINVAL when the hub is
 * attached to a loop (its callbacks run there), or -SH_ECANCELED when it is
 * closing (a poll waiting when the close begins returns 0 at once: the
 * close runs what is pending).
 * Threads: any one thread at a time.  Since: 0.1
 */
SH_API int sh_hub_poll(sh_hub_t *hub, int timeout_ms);

/* A file descriptor that is readable while callbacks are pending on a
 * standalone hub: wait on it for reading, then call sh_hub_poll(hub, 0).
 * Returns -1 when the hub is attached.
 * Ownership: the hub's; do not read, write or close it.  Since: 0.1
 */
SH_API int sh_hub_fd(const sh_hub_t *hub);

/* Make a standalone hub's sh_hub_poll() return now (0 when nothing ran)
 * and sh_hub_fd() readable, from any thread: for a binding that must stop
 * its poller or have it run an unsubscribe promptly.  Wakes spent while no
 * thread polls make the next poll return at once.  NULL is a no-op.
 * Threads: any.  Since: 0.1
 */
SH_API void sh_hub_wake(sh_hub_t *hub);

/* Attach @hub to the embedder's libevent @base: from now on its callbacks
 * run on the thread running @base's loop, and sh_hub_poll() is refused.
 * Call before any subscription.  @base must outlive the hub, and its loop
 * must be running for callbacks to run.
 * Errors: SH_EINVAL (already attached, or subscriptions exist), SH_ENOMEM.
 * Threads: any; @base must have been made thread-aware
 * (evthread_use_pthreads()).  Since: 0.1
 */
SH_API sh_err_t sh_hub_attach(sh_hub_t *hub, struct event_base *base,
                              char *errbuf, size_t errbuf_len);

/* The hub's log sink, for embedders and streamhubd that log through it.
 * @fields_json  NULL, or a JSON object text whose members join the line.
 * Threads: any.  Since: 0.1
 */
SH_API void sh_hub_log(sh_hub_t *hub, sh_log_level_t level, const char *msg,
                       const char *fields_json);

#ifdef __cplusplus
}
#endif

#endif
