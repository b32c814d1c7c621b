/* libstreamhub/gateway/workers.h: the worker pool of the gateway.
 *
 * DESIGN.md: the loop never waits on the store.  A request that touches it
 * is submitted here: @work runs on one of the pool's threads (it may block
 * on the store), then @done runs on the loop thread with the same argument,
 * where the response is written.  Completion goes through a dispatcher
 * (core_int.h) attached to the loop, the one hand-off mechanism of the
 * library.
 *
 * Threads: submit from the loop thread; free from the loop thread with the
 * loop not running a job's @done.
 */
#ifndef SH_GATEWAY_WORKERS_H
#define SH_GATEWAY_WORKERS_H

#include "core/core_int.h"

struct event_base;
struct sh__workers;

typedef void (*sh__work_fn)(void *arg);
/* @canceled: the pool is being freed; @work may not have run. */
typedef void (*sh__work_done_fn)(void *arg, bool canceled);

sh_err_t sh__workers_new(size_t nthreads, struct event_base *base,
                         struct sh__workers **out);
/* Queue one job.  Errors: SH_ENOMEM, SH_ECANCELED (closing): then neither
 * function runs. */
sh_err_t sh__workers_submit(struct sh__workers *w, sh__work_fn work,
                            sh__work_done_fn done, void *arg);
/* Jobs queued or running (for metrics and graceful shutdown). */
size_t sh__workers_pending(struct sh__workers *w);
/* Finish running jobs, cancel queued ones (their @done runs with canceled
 * true), join the threads, free.  NULL is a no-op. */
void sh__workers_free(struct sh__workers *w);

#endif
