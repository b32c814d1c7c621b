/* libstreamhub/gateway/workers.h: the worker pool of the gateway.
 *
 * DESIGN.md: the loop never waits on the store.  A request that touches it
 * is submitted here: @work runs on one of the pool's threads (it may block
 * on the store), then @done runs on the loop thread with the same argument,
 * where the response is written.  Completion goes through a dispatcher
 * (core_int.h) attached to the loop, the one hand-off mechanism of the
 * library.
 *
 * Bounds: work a client asks for goes through sh__workers_submit_bounded()
 * and counts as in flight from submit until its @done runs; it is refused
 * (SH_EBUSY, answered `rate_limited`) past @max_in_flight such jobs in all
 * or past its connection's own limit.  The gateway's own jobs (event
 * formatting, presence flushes, each bounded by what it serves: one job
 * at a time per operation, one flush at a time) use sh__workers_submit()
 * and are never refused.
 *
 * Loops: one pool serves every loop of the gateway.  Each loop submits
 * through its own handle (sh__workers_attach()), whose @done callbacks run
 * on that loop; the bounds are the pool's, shared by all handles.
 *
 * Threads: submit from the handle's loop thread; free from the loop thread
 * with the loop not running a job's @done.
 */
#ifndef SH_GATEWAY_WORKERS_H
#define SH_GATEWAY_WORKERS_H

#include <stdatomic.h>

#include "core/core_int.h"

struct event_base;
struct sh__workers;

typedef void (*sh__work_fn)(void *arg);
/* @canceled: the pool is being freed; @work may not have run. */
typedef void (*sh__work_done_fn)(void *arg, bool canceled);

/* @max_in_flight >= 1: the bound of sh__workers_submit_bounded(). */
sh_err_t sh__workers_new(size_t nthreads, size_t max_in_flight,
                         struct event_base *base, struct sh__workers **out);
/* Another handle on @w's pool whose jobs' @done run on @base's loop.
 * Free every such handle after sh__workers_stop() of the first, and
 * before sh__workers_free() of it.  Errors: SH_ENOMEM, SH_EIO. */
sh_err_t sh__workers_attach(struct sh__workers *w, struct event_base *base,
                            struct sh__workers **out);
/* Queue one job.  Errors: SH_ENOMEM, SH_ECANCELED (closing): then neither
 * function runs. */
sh_err_t sh__workers_submit(struct sh__workers *w, sh__work_fn work,
                            sh__work_done_fn done, void *arg);
/* Queue one job for a client's request, within bounds: refused when
 * max_in_flight jobs are in flight in all, or *@conn_in_flight (the
 * connection's count) has reached @conn_max.  On success *@conn_in_flight
 * is incremented, and decremented just before @done runs: the counter
 * must live until then (the job holds a reference to its connection).
 * Errors: SH_EBUSY (a bound is reached: answer rate_limited), SH_ENOMEM,
 * SH_ECANCELED; then neither function runs and nothing is counted. */
sh_err_t sh__workers_submit_bounded(struct sh__workers *w,
                                    atomic_size_t *conn_in_flight,
                                    size_t conn_max, sh__work_fn work,
                                    sh__work_done_fn done, void *arg);
/* Jobs queued or running (for metrics and graceful shutdown). */
size_t sh__workers_pending(struct sh__workers *w);
/* Finish running jobs, cancel queued ones and join the threads: every
 * job's @done is then queued on its handle's loop, where it runs, or runs
 * (canceled) when the handle is freed.  Idempotent; any handle.  NULL is
 * a no-op. */
void sh__workers_stop(struct sh__workers *w);
/* Stop (when this is the pool's first handle), run the completions still
 * queued on this handle's loop with canceled true, free.  NULL is a
 * no-op. */
void sh__workers_free(struct sh__workers *w);

#endif
