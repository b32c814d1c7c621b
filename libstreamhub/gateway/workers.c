/* libstreamhub/gateway/workers.c: a fixed pool of threads (workers.h).
 *
 * Invariants:
 *  1. Each job's @work runs at most once and its @done exactly once.
 *  2. pending counts jobs from submit until their @done has been posted.
 *  3. in_flight counts bounded jobs (clients') from submit until just
 *     before their @done runs, and a job's conn counter likewise.  Both
 *     are atomic: @done runs on the loop, except when the dispatcher
 *     cannot take it (see worker_main), and only the loop thread
 *     increments them, so a check followed by an increment on the loop
 *     cannot overshoot a bound.
 */
#include <pthread.h>
#include <stdlib.h>

#include "workers.h"

struct wjob {
    struct wjob *next;
    struct sh__workers *w;
    sh__work_fn work;
    sh__work_done_fn done;
    void *arg;
    atomic_size_t *conn;         /* the connection's counter, or NULL */
    bool counted;                /* in w->in_flight (a bounded job) */
    bool canceled;
};

struct sh__workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wjob *head, *tail;    /* @locks lock */
    bool stopping;               /* @locks lock */
    size_t pending;              /* @locks lock */
    atomic_size_t in_flight;     /* invariant 3 */
    size_t max_in_flight;
    pthread_t *threads;
    size_t nthreads;
    struct sh__dispatch *back;   /* completions, attached to the loop */
};

/* Invariant 3: uncount, then complete. */
static void complete(struct wjob *j, bool canceled)
{
    if (j->counted)
        atomic_fetch_sub(&j->w->in_flight, 1);
    if (j->conn != NULL)
        atomic_fetch_sub(j->conn, 1);
    j->done(j->arg, canceled);
    free(j);
}

static void run_done(void *arg, bool canceled)
{
    struct wjob *j = arg;

    complete(j, canceled || j->canceled);
}

static void *worker_main(void *arg)
{
    struct sh__workers *w = arg;

    for (;;) {
        struct wjob *j;

        pthread_mutex_lock(&w->lock);
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        j = w->head;
        if (j == NULL) {           /* stopping and nothing left */
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        w->head = j->next;
        if (w->head == NULL)
            w->tail = NULL;
        j->canceled = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (!j->canceled)
            j->work(j->arg);
        if (sh__dispatch_post(w->back, run_done, j) != SH_OK) {
            /* Dispatcher closing or out of memory: complete here, as
             * canceled, rather than leak the job (invariant 1). */
            complete(j, true);
        }
        pthread_mutex_lock(&w->lock);
        w->pending--;
        pthread_mutex_unlock(&w->lock);
    }
}

sh_err_t sh__workers_new(size_t nthreads, size_t max_in_flight,
                         struct event_base *base, struct sh__workers **out)
{
    struct sh__workers *w = calloc(1, sizeof *w);
    sh_err_t rc;

    *out = NULL;
    if (w == NULL)
        return SH_ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    atomic_init(&w->in_flight, 0);
    w->max_in_flight = max_in_flight > 0 ? max_in_flight : 1;
    rc = sh__dispatch_new(&w->back);
    if (rc == SH_OK)
        rc = sh__dispatch_attach(w->back, base);
    w->threads = calloc(nthreads, sizeof *w->threads);
    if (rc == SH_OK && w->threads == NULL)
        rc = SH_ENOMEM;
    for (size_t i = 0; rc == SH_OK && i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
            rc = SH_ENOMEM;
        else
            w->nthreads++;
    }
    if (rc != SH_OK) {
        sh__workers_free(w);
        return rc;
    }
    *out = w;
    return SH_OK;
}

static sh_err_t submit(struct sh__workers *w, bool counted,
                       atomic_size_t *conn, sh__work_fn work,
                       sh__work_done_fn done, void *arg)
{
    struct wjob *j = calloc(1, sizeof *j);

    if (j == NULL)
        return SH_ENOMEM;
    j->w = w;
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->conn = conn;
    j->counted = counted;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        free(j);
        return SH_ECANCELED;
    }
    /* Counted before the job is visible to a worker (invariant 3). */
    if (counted)
        atomic_fetch_add(&w->in_flight, 1);
    if (conn != NULL)
        atomic_fetch_add(conn, 1);
    if (w->tail != NULL)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->pending++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return SH_OK;
}

sh_err_t sh__workers_submit(struct sh__workers *w, sh__work_fn work,
                            sh__work_done_fn done, void *arg)
{
    return submit(w, false, NULL, work, done, arg);
}

sh_err_t sh__workers_submit_bounded(struct sh__workers *w,
                                    atomic_size_t *conn_in_flight,
                                    size_t conn_max, sh__work_fn work,
                                    sh__work_done_fn done, void *arg)
{
    if (atomic_load(&w->in_flight) >= w->max_in_flight ||
        (conn_in_flight != NULL && atomic_load(conn_in_flight) >= conn_max))
        return SH_EBUSY;
    return submit(w, true, conn_in_flight, work, done, arg);
}

size_t sh__workers_pending(struct sh__workers *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void sh__workers_free(struct sh__workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    /* Runs the completions posted and not yet run, as canceled. */
    sh__dispatch_free(w->back);
    free(w->threads);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
