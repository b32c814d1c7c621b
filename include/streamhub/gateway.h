/* include/streamhub/gateway.h: the network face of a hub.
 *
 * A gateway serves every door of ../api/PROTOCOL.md on one listening
 * address (`listen`): GraphQL over HTTP and WebSocket, the native WebSocket
 * protocol on /ws, REST under /api/v1, /healthz, /readyz and /metrics.  An
 * embedder gets the same doors as streamhubd.
 *
 * The gateway runs on libevent loops, where it does only network I/O,
 * framing and fan-out: the embedder's (give its event_base; the hub must be
 * attached to the same base, hub.h), and, when `loops` asks for more than
 * one (0, the default: one per online core), loops of its own, each on a
 * thread the gateway starts and stops.  The listener is on the embedder's
 * loop, which hands each new connection to the loops in turn; a
 * connection stays on its loop for its life.  With `loops = 1` the
 * embedder's loop is the only one and the gateway starts no loop thread.
 * Requests that touch the store run on the gateway's worker threads
 * (`workers`) and come back to their connection's loop to be written.
 *
 * Threads: every call but sh_gateway_shutdown() and sh_gateway_free() may
 * come from any thread; those two from the embedder's loop's thread, or
 * from any thread while that loop is not running.  The gateway's callbacks
 * (sh_gateway_done_cb) run on the embedder's loop.
 */
#ifndef STREAMHUB_GATEWAY_H
#define STREAMHUB_GATEWAY_H

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct sh_gateway sh_gateway_t;

/* Create a gateway for @hub on @base and start listening on the `listen`
 * address of the hub's configuration (with TLS when `tls-cert` and
 * `tls-key` are set).
 *
 * The process must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN), before any
 * thread starts): the gateway's writes go through libevent and OpenSSL,
 * which do not pass MSG_NOSIGNAL, so a write to a connection its client
 * has reset would otherwise end the process.  A warning is logged when
 * SIGPIPE is at its default.  (CPython ignores it at start-up.)
 *
 * @hub   borrowed; must outlive the gateway, and be attached to @base.
 * @base  borrowed; thread-aware (evthread_use_pthreads() before creating it).
 * @out   receives the gateway; NULL on error.
 * Errors: SH_EINVAL (hub not attached to @base), SH_EIO (cannot bind or
 * listen, or TLS files unreadable; @errbuf says which), SH_ENOMEM.
 * Since: 0.1
 */
SH_API sh_err_t sh_gateway_start(sh_hub_t *hub, struct event_base *base,
                                 sh_gateway_t **out, char *errbuf,
                                 size_t errbuf_len);

/* The bound address as "HOST:PORT" (the actual port when `listen` asked
 * for port 0).  Borrowed until sh_gateway_free().  Since: 0.1 */
SH_API const char *sh_gateway_address(const sh_gateway_t *gw);

/* Callback run once, on the loop, when a graceful shutdown has finished. */
typedef void (*sh_gateway_done_cb)(void *arg);

/* Stop gracefully: stop accepting, send close 1001 ("going away") to every
 * WebSocket, finish the HTTP requests in flight, on every loop, then call
 * @done (on the embedder's loop).  After @timeout_ms milliseconds,
 * connections still open are cut and @done runs.  A second call is a
 * no-op.  Since: 0.1
 */
SH_API void sh_gateway_shutdown(sh_gateway_t *gw, int timeout_ms,
                                sh_gateway_done_cb done, void *arg);

/* Stop the gateway's own loops, close every connection at once and free
 * @gw.  NULL is a no-op.  Since: 0.1 */
SH_API void sh_gateway_free(sh_gateway_t *gw);

#ifdef __cplusplus
}
#endif

#endif
