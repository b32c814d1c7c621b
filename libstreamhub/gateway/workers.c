/* libstreamhub/gateway/workers.c: a fixed pool of threads (workers.h).
 *
 * Invariants:
 *  1. Each job's @work runs at most once and its @done exactly once.
 *  2. pending counts jobs from submit until their @done has been posted.
 *  3. in_flight counts bounded jobs (clients') from submit until just
 *     before their @done runs, and a job's conn counter likewise.  Both
 *     are atomic: @done runs on the loop, except when the dispatcher
 *     cannot take it (see worker_main).  They are incremented only in
 *     submit(), under the pool's lock, in one step with the check of the
 *     bounds, so that loops submitting at once cannot overshoot them.
 *  4. One pool, several handles (one per loop): the pool's state is its
 *     own, under its lock; a handle is the pool and the dispatcher its
 *     jobs complete on.  A job keeps its handle, so its @done runs on the
 *     loop that submitted it.  in_flight is the pool's, shared by all
 *     loops (invariant 3).
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

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wjob *head, *tail;    /* @locks lock */
    bool stopping;               /* @locks lock */
    size_t pending;              /* @locks lock */
    atomic_size_t in_flight;     /* invariant 3 */
    size_t max_in_flight;
    pthread_t *threads;
    size_t nthreads;
    bool joined;                 /* the first handle's thread only */
};

struct sh__workers {
    struct pool *pool;           /* the first handle's (invariant 4) */
    bool owner;                  /* the first handle: frees the pool */
    struct sh__dispatch *back;   /* completions, attached to the loop */
};

/* Invariant 3: uncount, then complete. */
static void complete(struct wjob *j, bool canceled)
{
    if (j->counted)
        atomic_fetch_sub(&j->w->pool->in_flight, 1);
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
    struct pool *w = arg;

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
        if (sh__dispatch_post(j->w->back, run_done, j) != SH_OK) {
            /* Dispatcher closing or out of memory: complete here, as
             * canceled, rather than leak the job (invariant 1). */
            complete(j, true);
        }
        pthread_mutex_lock(&w->lock);
        w->pending--;
        pthread_mutex_unlock(&w->lock);
    }
}

/* A handle on @p completing on @base's loop. */
static sh_err_t handle_new(struct pool *p, struct event_base *base,
                           struct sh__workers **out)
{
    struct sh__workers *w = calloc(1, sizeof *w);
    sh_err_t rc;

    *out = NULL;
    if (w == NULL)
        return SH_ENOMEM;
    w->pool = p;
    rc = sh__dispatch_new(&w->back);
    if (rc == SH_OK)
        rc = sh__dispatch_attach(w->back, base);
    if (rc != SH_OK) {
        sh__dispatch_free(w->back);
        free(w);
        return rc;
    }
    *out = w;
    return SH_OK;
}

sh_err_t sh__workers_new(size_t nthreads, size_t max_in_flight,
                         struct event_base *base, struct sh__workers **out)
{
    struct pool *p = calloc(1, sizeof *p);
    struct sh__workers *w = NULL;
    sh_err_t rc;

    *out = NULL;
    if (p == NULL)
        return SH_ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    atomic_init(&p->in_flight, 0);
    p->max_in_flight = max_in_flight > 0 ? max_in_flight : 1;
    p->threads = calloc(nthreads, sizeof *p->threads);
    rc = p->threads == NULL && nthreads > 0 ? SH_ENOMEM : SH_OK;
    if (rc == SH_OK)
        rc = handle_new(p, base, &w);
    if (rc != SH_OK) {
        free(p->threads);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    w->owner = true;
    for (size_t i = 0; rc == SH_OK && i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            rc = SH_ENOMEM;
        else
            p->nthreads++;
    }
    if (rc != SH_OK) {
        sh__workers_free(w);
        return rc;
    }
    *out = w;
    return SH_OK;
}

sh_err_t sh__workers_attach(struct sh__workers *w, struct event_base *base,
                            struct sh__workers **out)
{
    return handle_new(w->pool, base, out);
}

static sh_err_t submit(struct sh__workers *h, bool counted,
                       atomic_size_t *conn, size_t conn_max,
                       sh__work_fn work,
                       sh__work_done_fn done, void *arg)
{
    struct pool *w = h->pool;
    struct wjob *j = calloc(1, sizeof *j);

    if (j == NULL)
        return SH_ENOMEM;
    j->w = h;
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
    /* The bounds are checked and the job counted in one step under the
     * lock, where every increment happens (several loops submit), and
     * before the job is visible to a worker (invariant 3). */
    if (counted &&
        (atomic_load(&w->in_flight) >= w->max_in_flight ||
         (conn != NULL && atomic_load(conn) >= conn_max))) {
        pthread_mutex_unlock(&w->lock);
        free(j);
        return SH_EBUSY;
    }
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
    return submit(w, false, NULL, 0, work, done, arg);
}

sh_err_t sh__workers_submit_bounded(struct sh__workers *w,
                                    atomic_size_t *conn_in_flight,
                                    size_t conn_max, sh__work_fn work,
                                    sh__work_done_fn done, void *arg)
{
    return submit(w, true, conn_in_flight, conn_max, work, done, arg);
}

size_t sh__workers_pending(struct sh__workers *h)
{
    struct pool *w = h->pool;
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void sh__workers_stop(struct sh__workers *h)
{
    struct pool *w;

    if (h == NULL)
        return;
    w = h->pool;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->joined)
        return;
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->joined = true;
}

void sh__workers_free(struct sh__workers *h)
{
    struct pool *w;

    if (h == NULL)
        return;
    w = h->pool;
    if (h->owner)
        sh__workers_stop(h);
    /* Runs the completions posted and not yet run, as canceled. */
    sh__dispatch_free(h->back);
    if (!h->owner) {
        free(h);
        return;
    }
    free(h);
    free(w->threads);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
