/* libstreamhub/core/dispatch.c: the hand-off of callbacks to one thread.
 *
 * Every callback of the public API runs here, so this is the one place
 * where work crosses from the threads that cause events (service callers,
 * the write-behind writer, the bus) to the thread that may run user code:
 * the embedder's loop (attached) or the sh_hub_poll() caller (standalone).
 *
 * A mutex-protected FIFO of jobs and an eventfd.  post() appends and, when
 * the queue was empty, writes 1 to the eventfd; run() first reads (clears)
 * the eventfd, then takes the whole queue at once and runs it outside the
 * lock, so that jobs may post further jobs (they run on the next turn) and a
 * slow job never holds the lock.  Reading before taking keeps invariant 1 of
 * core_int.h: a post that races with run() leaves the fd readable.
 *
 * On a loop (attached), one readable event runs at most DISPATCH_BUDGET
 * jobs: the rest go back to the head of the queue, in order, and the fd is
 * made readable again, so that the loop serves its sockets and timers
 * between batches.  Going live to a million followers queues a delivery
 * job per subscribed follower at once; run in one turn, they would stall
 * every connection of the loop until the last had run.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "core_int.h"

struct job {
    struct job *next;
    sh__job_fn fn;
    void *arg;
};

/* Jobs run per readable event of an attached dispatcher. */
#define DISPATCH_BUDGET 1024

struct sh__dispatch {
    pthread_mutex_t lock;
    struct job *head, *tail;   /* @locks lock */
    bool closing;              /* @locks lock */
    int efd;
    struct event *ev;          /* attached: read event on efd */
};

sh_err_t sh__dispatch_new(struct sh__dispatch **out)
{
    struct sh__dispatch *d = calloc(1, sizeof *d);

    *out = NULL;
    if (d == NULL)
        return SH_ENOMEM;
    d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->efd < 0) {
        free(d);
        return errno == ENOMEM ? SH_ENOMEM : SH_EIO;
    }
    pthread_mutex_init(&d->lock, NULL);
    *out = d;
    return SH_OK;
}

static struct job *take_all(struct sh__dispatch *d, struct job **tail)
{
    struct job *j;
    uint64_t n;

    /* Clear the fd first (invariant 1), then take the queue. */
    while (read(d->efd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&d->lock);
    j = d->head;
    if (tail != NULL)
        *tail = d->tail;
    d->head = d->tail = NULL;
    pthread_mutex_unlock(&d->lock);
    return j;
}

/* Put @head..@tail, jobs taken and not run, back before what was posted
 * since, and make the fd readable again (invariant 1).  A closing
 * dispatcher runs them at free, canceled, like any queued job. */
static void put_back(struct sh__dispatch *d, struct job *head,
                     struct job *tail)
{
    uint64_t one = 1;

    pthread_mutex_lock(&d->lock);
    tail->next = d->head;
    d->head = head;
    if (d->tail == NULL)
        d->tail = tail;
    pthread_mutex_unlock(&d->lock);
    while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static int run_list(struct job *j, bool canceled)
{
    int n = 0;

    while (j != NULL) {
        struct job *next = j->next;
        j->fn(j->arg, canceled);
        free(j);
        j = next;
        n++;
    }
    return n;
}

void sh__dispatch_free(struct sh__dispatch *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->closing = true;
    pthread_mutex_unlock(&d->lock);
    if (d->ev != NULL)
        event_free(d->ev);
    run_list(take_all(d, NULL), true);
    close(d->efd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

sh_err_t sh__dispatch_post(struct sh__dispatch *d, sh__job_fn fn, void *arg)
{
    struct job *j = malloc(sizeof *j);
    bool was_empty;
    uint64_t one = 1;

    if (j == NULL)
        return SH_ENOMEM;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&d->lock);
    if (d->closing) {
        pthread_mutex_unlock(&d->lock);
        free(j);
        return SH_ECANCELED;
    }
    was_empty = d->head == NULL;
    if (d->tail != NULL)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    pthread_mutex_unlock(&d->lock);
    if (was_empty) {
        while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    return SH_OK;
}

int sh__dispatch_run(struct sh__dispatch *d)
{
    return run_list(take_all(d, NULL), false);
}

void sh__dispatch_wait(struct sh__dispatch *d, int timeout_ms)
{
    struct pollfd p = { .fd = d->efd, .events = POLLIN, .revents = 0 };

    while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
        ;
}

void sh__dispatch_wake(struct sh__dispatch *d)
{
    uint64_t one = 1;

    while (write(d->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int sh__dispatch_fd(const struct sh__dispatch *d)
{
    return d->efd;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct sh__dispatch *d = arg;
    struct job *tail = NULL, *j = take_all(d, &tail), *last = NULL, *rest;
    int n = 0;

    (void)fd;
    (void)what;
    for (rest = j; rest != NULL && n < DISPATCH_BUDGET; n++) {
        last = rest;
        rest = rest->next;
    }
    if (rest != NULL) {
        /* Cut this batch off the rest, which goes back first. */
        last->next = NULL;
        put_back(d, rest, tail);
    }
    run_list(j, false);
}

sh_err_t sh__dispatch_attach(struct sh__dispatch *d, struct event_base *base)
{
    if (d->ev != NULL)
        return SH_EINVAL;
    d->ev = event_new(base, d->efd, EV_READ | EV_PERSIST, on_readable, d);
    if (d->ev == NULL)
        return SH_ENOMEM;
    if (event_add(d->ev, NULL) != 0) {
        event_free(d->ev);
        d->ev = NULL;
        return SH_EIO;
    }
    return SH_OK;
}

bool sh__dispatch_attached(const struct sh__dispatch *d)
{
    return d->ev != NULL;
}
