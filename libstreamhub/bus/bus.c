/* libstreamhub/bus/bus.c: what every bus backend shares (bus_be.h).
 *
 * A hash map of channels, each made on first use, with its subscribers.
 * The backend picked by the `bus` key (bus_local.c, bus_redis.c) numbers
 * events and keeps their history; this file queues them to subscribers
 * and hands them to the hub's callback thread through the dispatcher: a
 * subscriber whose queue goes from idle to non-empty gets one drain job,
 * which delivers everything queued when it starts, so a burst costs one
 * job, not one per event.
 *
 * Subscribe joins the channel buffering (events queued, not delivered),
 * reads the backend's recovery window, then splices the two by offset
 * (do_subscribe): every event is either in the window or queued live,
 * never both, never neither, and in offset order.
 *
 * Invariants:
 *  1. Lock order: bus->lock, then one channel's lock, then the dispatcher's
 *     (sh__dispatch_post).  No callback of the user, and no drain job, runs
 *     with any of them held.  Callbacks given to the bus by the library
 *     (build, rewrite, wire_free) may run under a channel's lock and must
 *     not call the bus.
 *  2. A channel is found or made only under bus->lock, which pins it
 *     (pins++) and takes a bus reference.  The sweep frees a channel only
 *     under bus->lock with pins == 0, so no one holds it.  Each subscription
 *     holds a pin for its whole life: sub->chan is always valid.
 *  3. A subscription's fields after `arg` are under its channel's lock.
 *  4. Each queue holds offsets in increasing order: the backend hands a
 *     channel's events to sh__bus_push() (in process) or
 *     sh__bus_deliver() in offset order, and the splice keeps that order.
 *  6. Queue slot (qhead + i) % qcap for i < qlen holds one reference;
 *     qlen <= queue_max.  Once closing is set the queue is empty and
 *     nothing more is queued.  The drain job takes the whole queue at once
 *     by swapping q with the empty spare ring (one lock hold per batch,
 *     not two per event) and delivers it outside the lock; it skips what
 *     is left of its batch once stop is set, so a callback that
 *     unsubscribes sees no further event, as before.
 *  7. scheduled is set by a successful post of drain() and cleared by that
 *     job when it ends without posting its successor: at most one drain job
 *     exists per subscription, so its callbacks never run concurrently.
 *  8. The final callback runs once: the drain job that finds closing set
 *     and final_done false sets final_done, calls back, then frees the
 *     subscription.  sh__bus_unsubscribe() only sets closing (and clears
 *     the queue), so a callback may unsubscribe itself or another
 *     subscription; the job running now finishes the work.
 *  9. The bus is freed when its last reference drops: one for the owner
 *     until sh__bus_free(), one per pin (so one per live subscription),
 *     one per tombstone (inv. 10).
 * 10. A held subscription (sh__bus_subscribe_held(): the public API's,
 *     whose handle the caller keeps) is freed only once both its final
 *     callback has returned and its owner has released it
 *     (sh__bus_sub_release()), in either order: a thread other than the
 *     callback's may unsubscribe or release a subscription the bus has
 *     already ended.  Between the two it is a tombstone: ended set, no
 *     pin (its channel may go), one bus reference.  held is immutable;
 *     ended and released are under bus->lock, which a held
 *     subscription's unsubscribe takes before its channel's lock.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_be.h"
#include "core/otel_int.h"

#define SWEEP_EVERY_MS 1000
#define QUEUE_MIN 16
#define BUCKETS_MIN 64

#define POSTS_MAX SH__BUS_POSTS_MAX

struct sh_subscription {
    struct sh__bus *bus;        /* borrowed: our pin keeps it (inv. 9) */
    struct sh__bus_chan *chan;          /* pinned (inv. 2) */
    /* Immutable: where its drain jobs run, the bus's dispatcher or the
     * one given at subscribe (a loop's: sh__bus_subscribe_on()). */
    struct sh__dispatch *dispatch;
    sh_event_cb cb;
    void *arg;                  /* the caller's; never freed here */
    /* @locks chan->lock: */
    struct sh_subscription *prev, *next;
    bool linked;                /* in chan->subs */
    struct sh_event **q;        /* owned ring, qcap slots (inv. 6) */
    size_t qcap, qhead, qlen;
    struct sh_event **spare;    /* owned, empty: the drain job's swap */
    size_t spare_cap;
    bool scheduled;             /* a drain job exists (inv. 7) */
    /* Events of the drain job's batch after the one being delivered: set
     * by drain() before each callback, read by that callback (the same
     * thread), so that a receiver can write once per batch. */
    size_t batch_left;
    bool closing;               /* no more events; final callback due */
    bool final_done;            /* the final callback has started */
    sh_err_t final;             /* its status */
    /* Set with closing: the drain job skips the rest of the batch it took
     * (read without the lock, so atomic). */
    atomic_bool stop;
    bool held;                  /* immutable: the owner keeps it (inv. 10) */
    /* Remote backend, @locks chan->lock: events are queued but not
     * delivered until the recovery window is spliced in (do_subscribe);
     * watching: it holds one of the backend's watches of its channel. */
    bool buffering;
    bool watching;
    bool ended;                 /* @locks bus->lock: a tombstone */
    bool released;              /* @locks bus->lock: the owner let go */
};

struct sh__bus {
    /* The backend (bus_be.h); be_state is NULL once it is freed. */
    const struct sh__bus_backend *be;
    void *be_state;
    const struct sh__log *log;
    struct sh__dispatch *dispatch;
    int64_t history_ttl_ms;     /* an idle channel is kept that long */
    size_t max_idle;            /* bus.max-idle-channels */
    size_t queue_max;
    atomic_size_t refs;         /* inv. 9 */
    pthread_mutex_t lock;
    /* @locks lock: */
    struct sh__bus_reserver res;    /* durable numbering; fn NULL: none */
    struct sh__bus_chan **buckets;
    size_t nbuckets, nchans;
    bool closing;
    int64_t last_sweep;
};

static void drain(void *arg, bool canceled);
static sh_err_t remote_floor(struct sh__bus *bus, const char *channel,
                             uint64_t *floor);

/* ---- channels and the map -------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603u;   /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    /* FNV-1a's low bits, which pick the bucket of a power-of-two table,
     * hardly vary over names that differ in their last characters (the
     * user:<id> channels of a go-live made chains thousands long): mix
     * the high bits down (MurmurHash3's finaliser). */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

/* One allocation holds the channel and its name: a go-live makes one
 * channel per follower.  @locks bus->lock */
static struct sh__bus_chan *chan_new(struct sh__bus *bus, const char *name,
                             uint64_t hash, int64_t now)
{
    size_t len = strlen(name);
    struct sh__bus_chan *c = calloc(1, sizeof *c + len + 1);

    if (c == NULL)
        return NULL;
    c->name = (char *)(c + 1);
    memcpy(c->name, name, len + 1);
    c->hash = hash;
    atomic_init(&c->pins, 0);
    c->last_mono = now;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (bus->be->chan_init != NULL)
        bus->be->chan_init(bus->be_state, c);
    return c;
}

static void chan_free(const struct sh__bus *bus, struct sh__bus_chan *c)
{
    if (bus->be->chan_fini != NULL)
        bus->be->chan_fini(c);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void bus_destroy(struct sh__bus *bus)
{
    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct sh__bus_chan *c = bus->buckets[b];
        while (c != NULL) {
            struct sh__bus_chan *next = c->next;
            assert(c->nsubs == 0);
            chan_free(bus, c);
            c = next;
        }
    }
    free(bus->buckets);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

static void bus_unref(struct sh__bus *bus)
{
    if (atomic_fetch_sub(&bus->refs, 1) == 1)
        bus_destroy(bus);
}

/* Free the channels nobody holds whose history is empty (the backend's
 * chan_idle) and that saw no activity for a TTL: memory stays bounded by
 * the channels in use.  Keeping an idle channel for a TTL keeps its
 * numbering for clients that come back soon.  Channel names come from
 * clients, so past bus.max-idle-channels channels in all the TTL is not
 * waited for: every idle empty channel goes
 * (a client resuming on one is told recovered: false, never given a wrong
 * event).  @locks bus->lock */
static void sweep(struct sh__bus *bus, int64_t now)
{
    bool crowded = bus->nchans > bus->max_idle;

    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct sh__bus_chan **pp = &bus->buckets[b];
        while (*pp != NULL) {
            struct sh__bus_chan *c = *pp;
            bool dead = false;
            if (atomic_load(&c->pins) == 0) {
                pthread_mutex_lock(&c->lock);
                dead = c->nsubs == 0 &&
                       (bus->be->chan_idle == NULL ||
                        (bus->be_state != NULL &&
                         bus->be->chan_idle(bus->be_state, c, now))) &&
                       (crowded ||
                        now - c->last_mono >= bus->history_ttl_ms);
                pthread_mutex_unlock(&c->lock);
            }
            if (dead) {
                *pp = c->next;
                if (bus->be->chan_gone != NULL && bus->be_state != NULL)
                    bus->be->chan_gone(bus->be_state, c);
                chan_free(bus, c);
                bus->nchans--;
            } else {
                pp = &c->next;
            }
        }
    }
    bus->last_sweep = now;
}

/* Rehash into twice the buckets; on ENOMEM keep the longer chains.
 * @locks bus->lock */
static void grow_map(struct sh__bus *bus)
{
    size_t n = bus->nbuckets * 2;
    struct sh__bus_chan **nb = calloc(n, sizeof *nb);

    if (nb == NULL)
        return;
    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct sh__bus_chan *c = bus->buckets[b];
        while (c != NULL) {
            struct sh__bus_chan *next = c->next;
            c->next = nb[c->hash % n];
            nb[c->hash % n] = c;
            c = next;
        }
    }
    free(bus->buckets);
    bus->buckets = nb;
    bus->nbuckets = n;
}

/* chan_pin() with bus->lock held and the sweep done.  @locks bus->lock */
static struct sh__bus_chan *chan_pin_locked(struct sh__bus *bus,
                                            const char *name,
                                            bool create, int64_t now,
                                            sh_err_t *rc)
{
    uint64_t h = hash_name(name);
    struct sh__bus_chan *c;

    *rc = SH_OK;
    for (c = bus->buckets[h % bus->nbuckets]; c != NULL; c = c->next) {
        if (c->hash == h && strcmp(c->name, name) == 0)
            break;
    }
    if (c == NULL && create) {
        c = chan_new(bus, name, h, now);
        if (c == NULL) {
            *rc = SH_ENOMEM;
        } else {
            c->next = bus->buckets[h % bus->nbuckets];
            bus->buckets[h % bus->nbuckets] = c;
            if (++bus->nchans > bus->nbuckets)
                grow_map(bus);
        }
    }
    if (c != NULL) {
        atomic_fetch_add(&c->pins, 1);
        atomic_fetch_add(&bus->refs, 1);
    }
    return c;
}

/* Find (or, with @create, make) @name and pin it (inv. 2).  NULL with
 * *rc = SH_OK when absent and not made. */
static struct sh__bus_chan *chan_pin(struct sh__bus *bus, const char *name,
                             bool create, sh_err_t *rc)
{
    int64_t now = sh__mono_ms();
    struct sh__bus_chan *c;

    pthread_mutex_lock(&bus->lock);
    if (bus->closing) {
        pthread_mutex_unlock(&bus->lock);
        *rc = SH_ECANCELED;
        return NULL;
    }
    if (now - bus->last_sweep >= SWEEP_EVERY_MS)
        sweep(bus, now);
    c = chan_pin_locked(bus, name, create, now, rc);
    pthread_mutex_unlock(&bus->lock);
    return c;
}

static void chan_unpin(struct sh__bus *bus, struct sh__bus_chan *c)
{
    atomic_fetch_sub(&c->pins, 1);
    bus_unref(bus);
}

struct sh__bus_chan *sh__bus_chan_pin(struct sh__bus *bus, const char *name,
                              bool create, sh_err_t *rc)
{
    return chan_pin(bus, name, create, rc);
}

void sh__bus_chan_pin_items(struct sh__bus *bus,
                            const struct sh__bus_item *items, size_t k,
                            struct sh__bus_chan **out, sh_err_t *first)
{
    int64_t now = sh__mono_ms();
    bool closing;

    pthread_mutex_lock(&bus->lock);
    closing = bus->closing;
    if (!closing && now - bus->last_sweep >= SWEEP_EVERY_MS)
        sweep(bus, now);
    for (size_t i = 0; i < k; i++) {
        sh_err_t rc = SH_ECANCELED;

        out[i] = NULL;
        if (!closing)
            out[i] = chan_pin_locked(bus, items[i].channel, true, now, &rc);
        if (out[i] == NULL && *first == SH_OK)
            *first = rc != SH_OK ? rc : SH_ENOMEM;
    }
    pthread_mutex_unlock(&bus->lock);
}

void sh__bus_chan_unpin(struct sh__bus *bus, struct sh__bus_chan *c)
{
    chan_unpin(bus, c);
}

void sh__bus_each_chan(struct sh__bus *bus,
                       void (*fn)(void *arg, struct sh__bus_chan *c),
                       void *arg)
{
    pthread_mutex_lock(&bus->lock);
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct sh__bus_chan *c = bus->buckets[b]; c != NULL; c = c->next)
            fn(arg, c);
    }
    pthread_mutex_unlock(&bus->lock);
}

/* ---- subscriptions ---------------------------------------------------- */

/* @locks chan->lock */
static void sub_unlink(struct sh_subscription *s)
{
    struct sh__bus_chan *c = s->chan;

    if (!s->linked)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->subs = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->linked = false;
    c->nsubs--;
    c->last_mono = sh__mono_ms();
    if (s->watching) {
        s->watching = false;
        if (s->bus->be_state != NULL)
            s->bus->be->unwatch(s->bus->be_state, c->name);
    }
    if (c->nsubs == 0) {
        /* Nobody hears the channel now: the next subscriber starts over
         * from what a remote backend says. */
        c->repoch[0] = '\0';
        c->dtop = 0;
    }
}

/* @locks chan->lock */
static void queue_clear(struct sh_subscription *s)
{
    while (s->qlen > 0) {
        sh__event_unref(s->q[s->qhead]);
        s->q[s->qhead] = NULL;
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
}

/* Make room for @n more events within queue_max.  @locks chan->lock */
static bool queue_reserve(const struct sh__bus *bus, struct sh_subscription *s,
                          size_t n)
{
    size_t need = s->qlen + n, cap;
    struct sh_event **q;

    if (need <= s->qcap)
        return true;
    if (need > bus->queue_max)
        return false;
    cap = s->qcap < QUEUE_MIN ? QUEUE_MIN : s->qcap;
    while (cap < need)
        cap *= 2;
    if (cap > bus->queue_max)
        cap = bus->queue_max;
    q = malloc(cap * sizeof *q);
    if (q == NULL)
        return false;
    for (size_t i = 0; i < s->qlen; i++)
        q[i] = s->q[(s->qhead + i) % s->qcap];
    free(s->q);
    s->q = q;
    s->qcap = cap;
    s->qhead = 0;
    return true;
}

/* Post the drain job unless one exists.  A failed post (ENOMEM) leaves the
 * events queued for the next attempt.  @locks chan->lock */
static bool schedule(struct sh__bus *bus, struct sh_subscription *s)
{
    (void)bus;
    if (!s->scheduled && sh__dispatch_post(s->dispatch, drain, s) == SH_OK)
        s->scheduled = true;
    return s->scheduled;
}

/* Close @s with @status: no more events, final callback due.
 * @locks chan->lock */
static void sub_close(struct sh_subscription *s, sh_err_t status)
{
    sub_unlink(s);
    queue_clear(s);
    atomic_store_explicit(&s->stop, true, memory_order_release);
    if (!s->closing) {
        s->closing = true;
        s->final = status;
    }
}

/* Queue @ev (the caller adds the reference: one atomic add per publish,
 * not one per subscriber), or drop a subscriber that fell behind.
 * Returns whether a reference was queued.  @locks chan->lock */
static bool sub_push(struct sh__bus *bus, struct sh_subscription *s,
                     struct sh_event *ev, struct sh__bus_posts *posts)
{
    if (s->closing)
        return false;
    if (!queue_reserve(bus, s, 1)) {
        sub_close(s, SH_EBUSY);
        if (!s->buffering)      /* else its subscribe call finishes it */
            schedule(bus, s);
        return false;
    }
    s->q[(s->qhead + s->qlen) % s->qcap] = ev;
    s->qlen++;
    if (s->buffering)
        return true;            /* delivered once spliced (do_subscribe) */
    if (!s->scheduled && posts->n < POSTS_MAX) {
        s->scheduled = true;    /* claimed: posted by posts_flush() */
        posts->s[posts->n++] = s;
    } else {
        schedule(bus, s);
    }
    return true;
}

/* Post the drain jobs claimed by sub_push(), without the channel's lock.
 * A claimed subscription cannot be freed meanwhile: only its drain job
 * frees it, and that job is the one posted here.  A failed post gives the
 * claim back and tries once more under the lock, as schedule() does. */
void sh__bus_posts_flush(struct sh__bus *bus, struct sh__bus_chan *c,
                         struct sh__bus_posts *posts)
{
    for (size_t i = 0; i < posts->n; i++) {
        struct sh_subscription *s = posts->s[i];

        if (sh__dispatch_post(s->dispatch, drain, s) == SH_OK)
            continue;
        pthread_mutex_lock(&c->lock);
        s->scheduled = false;
        schedule(bus, s);
        pthread_mutex_unlock(&c->lock);
    }
    posts->n = 0;
}

void sh__bus_push(struct sh__bus *bus, struct sh__bus_chan *c,
                  struct sh_event *ev, int64_t now,
                  struct sh__bus_posts *posts)
{
    int queued = 0;

    c->last_mono = now;
    for (struct sh_subscription *s = c->subs, *next; s != NULL; s = next) {
        next = s->next;         /* sub_push may unlink s */
        if (sub_push(bus, s, ev, posts))
            queued++;
    }
    /* The caller's own reference keeps @ev alive until here, so the
     * queued slots may take theirs at once (inv. 6). */
    if (queued > 0)
        atomic_fetch_add_explicit(&ev->refs, queued, memory_order_relaxed);
}

static void sub_free(struct sh_subscription *s)
{
    struct sh__bus *bus = s->bus;
    struct sh__bus_chan *c = s->chan;

    assert(!s->linked && s->qlen == 0);
    free(s->q);
    free(s->spare);
    free(s);
    chan_unpin(bus, c);         /* may free the bus (inv. 9) */
}

/* The final callback has returned: free @s, or leave a tombstone while
 * its owner still holds it (inv. 10). */
static void sub_end(struct sh_subscription *s)
{
    struct sh__bus *bus = s->bus;
    struct sh__bus_chan *c = s->chan;

    if (!s->held) {
        sub_free(s);
        return;
    }
    pthread_mutex_lock(&bus->lock);
    if (s->released) {
        pthread_mutex_unlock(&bus->lock);
        sub_free(s);
        return;
    }
    s->ended = true;
    atomic_fetch_add(&bus->refs, 1);    /* the tombstone's */
    pthread_mutex_unlock(&bus->lock);
    /* Nothing reads the rings of an ended subscription. */
    free(s->q);
    free(s->spare);
    s->q = s->spare = NULL;
    s->qcap = s->spare_cap = 0;
    chan_unpin(bus, c);
}

/* The drain job (inv. 7, 8): deliver what is queued now, then either end,
 * post the next turn, or run the final callback and free @arg. */
static void drain(void *arg, bool canceled)
{
    struct sh_subscription *s = arg;
    struct sh__bus_chan *c = s->chan;
    sh_err_t status;

    pthread_mutex_lock(&c->lock);
    if (canceled)               /* the dispatcher is going away */
        sub_close(s, SH_ECANCELED);
    for (;;) {
        struct sh_event **q = s->q;
        size_t qcap = s->qcap, qhead = s->qhead, n = s->qlen;

        if (n == 0)
            break;
        /* Take the batch: the spare (empty) ring becomes the queue. */
        s->q = s->spare;
        s->qcap = s->spare_cap;
        s->qhead = 0;
        s->qlen = 0;
        s->spare = NULL;
        s->spare_cap = 0;
        pthread_mutex_unlock(&c->lock);
        for (size_t i = 0; i < n; i++) {
            struct sh_event *ev = q[(qhead + i) % qcap];

            q[(qhead + i) % qcap] = NULL;
            s->batch_left = n - i - 1;
            if (!atomic_load_explicit(&s->stop, memory_order_acquire))
                s->cb(s->arg, ev, SH_OK);
            sh__event_unref(ev);
        }
        pthread_mutex_lock(&c->lock);
        if (s->spare == NULL) {
            s->spare = q;       /* empty now: the next batch's swap */
            s->spare_cap = qcap;
        } else {
            free(q);
        }
        if (s->qlen == 0)
            break;
        /* More came meanwhile: give other jobs a turn.  Should the post
         * fail, deliver them now rather than strand them. */
        if (sh__dispatch_post(s->dispatch, drain, s) == SH_OK) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
    }
    if (!s->closing) {
        s->scheduled = false;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    assert(!s->final_done);
    s->final_done = true;
    status = s->final;
    pthread_mutex_unlock(&c->lock);
    s->cb(s->arg, NULL, status);
    sub_end(s);
}

/* ---- the interface (bus_int.h) ----------------------------------------- */

sh_err_t sh__bus_new(const sh_config_t *conf, const struct sh__log *log,
                     struct sh__dispatch *dispatch, struct sh__bus **out,
                     char *errbuf, size_t errbuf_len)
{
    const char *kind = sh__config_str(conf, "bus");
    bool redis = strncmp(kind, "redis://", 8) == 0;
    struct sh__bus *bus;
    sh_err_t rc;

    *out = NULL;
    if (!redis && strcmp(kind, "local") != 0) {
        sh__errbuf(errbuf, errbuf_len, "bus: expected local or redis://..., "
                   "not \"%.64s\"", kind);
        return SH_EINVAL;
    }
    bus = calloc(1, sizeof *bus);
    if (bus == NULL)
        goto nomem;
    bus->buckets = calloc(BUCKETS_MIN, sizeof *bus->buckets);
    if (bus->buckets == NULL) {
        free(bus);
        goto nomem;
    }
    bus->nbuckets = BUCKETS_MIN;
    bus->log = log;
    bus->dispatch = dispatch;
    bus->history_ttl_ms =
        sh__config_int(conf, "bus.history-ttl-seconds") * 1000;
    bus->max_idle = (size_t)sh__config_int(conf, "bus.max-idle-channels");
    bus->queue_max = (size_t)sh__config_int(conf, "bus.subscriber-queue");
    bus->last_sweep = sh__mono_ms();
    atomic_init(&bus->refs, 1);
    pthread_mutex_init(&bus->lock, NULL);
    /* be is set first: an early bus_unref() frees through it. */
    if (redis) {
        bus->be = &sh__bus_redis_backend;
        rc = sh__bus_redis_new(bus, conf, log, kind, remote_floor,
                               &bus->be_state, errbuf, errbuf_len);
    } else {
        bus->be = &sh__bus_local_backend;
        rc = sh__bus_local_new(bus, conf, &bus->be_state, errbuf,
                               errbuf_len);
    }
    if (rc != SH_OK) {
        bus->be_state = NULL;
        bus_unref(bus);
        return rc;
    }
    *out = bus;
    return SH_OK;
nomem:
    sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    return SH_ENOMEM;
}

void sh__bus_free(struct sh__bus *bus)
{
    struct sh_subscription *orphans = NULL;

    if (bus == NULL)
        return;
    if (bus->be->close != NULL)
        bus->be->close(bus->be_state);
    pthread_mutex_lock(&bus->lock);
    bus->closing = true;        /* no new pins from now on */
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct sh__bus_chan *c = bus->buckets[b]; c != NULL;
             c = c->next) {
            pthread_mutex_lock(&c->lock);
            while (c->subs != NULL) {
                struct sh_subscription *s = c->subs;
                sub_close(s, SH_ECANCELED);
                /* A buffering one is finished by its subscribe call or
                 * sh__bus_sub_resume(). */
                if (!s->buffering && !schedule(bus, s)) {
                    s->next = orphans;   /* unlinked: the link is free */
                    orphans = s;
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
    }
    pthread_mutex_unlock(&bus->lock);
    /* Every subscription is unlinked (no watch left): stop the backend's
     * thread, so that nothing delivers from here on. */
    if (bus->be_state != NULL) {
        void *be = bus->be_state;

        bus->be_state = NULL;
        bus->be->free(be);
    }
    /* A final callback that could not be posted runs here rather than
     * never: exactly once beats the right thread. */
    while (orphans != NULL) {
        struct sh_subscription *s = orphans;
        orphans = s->next;
        s->next = NULL;
        drain(s, true);
    }
    bus_unref(bus);
}

/* Channels published per call of the backend's publish_many(). */
#define MANY_CHUNK 256

struct given {
    json_object *data;
    /* Without data: the text head, offset, tail (publish_spliced). */
    const char *head, *tail;
    size_t head_len, tail_len;
};

/* ---- publishing -------------------------------------------------------- */

#define TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void sh__bus_window_clear(struct sh__bus_window *w)
{
    for (size_t i = 0; i < w->n; i++)
        sh__event_unref(w->evs[i]);
    free(w->evs);
    w->evs = NULL;
    w->n = 0;
}

static bool is_own(const struct sh__bus *bus, const char *channel)
{
    return bus->res.fn != NULL && bus->res.own_prefix[0] != '\0' &&
           strncmp(channel, bus->res.own_prefix,
                   strlen(bus->res.own_prefix)) == 0;
}

bool sh__bus_own(const struct sh__bus *bus, const char *channel)
{
    return is_own(bus, channel);
}

/* Where a channel's new epoch starts: an own channel above its durable
 * reservation, which own_cover() keeps above every offset handed out;
 * another channel at 0 (a new epoch alone tells its instances apart). */
static sh_err_t remote_floor(struct sh__bus *bus, const char *channel,
                             uint64_t *floor)
{
    *floor = 0;
    if (!is_own(bus, channel))
        return SH_OK;
    return bus->res.fn(bus->res.arg, channel, 0, floor);
}

/* Raise own channel @channel's durable reservation to at least @offset
 * (first learning it, then in blocks of chat.offset-block), so that an
 * epoch made after Redis lost the channel starts above every offset the
 * store may hold (a backend with cover_own).  A no-op for other
 * channels. */
static sh_err_t own_cover(struct sh__bus *bus, const char *channel,
                          uint64_t offset)
{
    struct sh__bus_chan *c;
    uint64_t have, upto = 0;
    sh_err_t rc = SH_OK;

    if (!is_own(bus, channel))
        return SH_OK;
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL)
        return rc;
    pthread_mutex_lock(&c->lock);
    have = c->reserved;
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; offset > have && i < 3; i++) {
        uint64_t n = !c->loaded && i == 0 ? 0
                                          : offset - have + bus->res.block;

        rc = bus->res.fn(bus->res.arg, channel, n, &upto);
        if (rc != SH_OK)
            break;
        if (upto > have)
            have = upto;
        pthread_mutex_lock(&c->lock);
        c->loaded = true;
        if (have > c->reserved)
            c->reserved = have;
        pthread_mutex_unlock(&c->lock);
    }
    if (rc == SH_OK && offset > have)
        rc = SH_ESTORE;
    chan_unpin(bus, c);
    return rc;
}

/* End every subscription of @c: it may have missed events (the backend
 * lost them or the channel's epoch changed).  A buffering one is only
 * closed: its subscribe call finishes it.  @locks c->lock */
static void remote_fail_locked(struct sh__bus *bus, struct sh__bus_chan *c)
{
    while (c->subs != NULL) {
        struct sh_subscription *s = c->subs;

        sub_close(s, SH_EBUS);
        if (!s->buffering)
            schedule(bus, s);
    }
}

void sh__bus_deliver(struct sh__bus *bus, struct sh_event *ev)
{
    struct sh__bus_posts posts;
    struct sh__bus_chan *c;
    sh_err_t rc;

    posts.n = 0;
    c = chan_pin(bus, ev->channel, false, &rc);
    if (c == NULL)
        return;                 /* no one here listens */
    pthread_mutex_lock(&c->lock);
    if (c->repoch[0] != '\0' && strcmp(c->repoch, ev->epoch) != 0)
        remote_fail_locked(bus, c);
    if (c->nsubs > 0 &&
        (strcmp(c->repoch, ev->epoch) != 0 || ev->offset > c->dtop)) {
        snprintf(c->repoch, sizeof c->repoch, "%s", ev->epoch);
        c->dtop = ev->offset;
        sh__bus_push(bus, c, ev, sh__mono_ms(), &posts);
    }
    pthread_mutex_unlock(&c->lock);
    sh__bus_posts_flush(bus, c, &posts);
    chan_unpin(bus, c);
}

void sh__bus_fail(struct sh__bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct sh__bus_chan *c = bus->buckets[b]; c != NULL;
             c = c->next) {
            pthread_mutex_lock(&c->lock);
            remote_fail_locked(bus, c);
            pthread_mutex_unlock(&c->lock);
        }
    }
    pthread_mutex_unlock(&bus->lock);
}

/* Publish text @head (then, with @splice, the offset and @tail). */
static sh_err_t publish_text(struct sh__bus *bus, const char *channel,
                             const char *type, const char *head,
                             size_t head_len, const char *tail,
                             size_t tail_len, bool splice,
                             uint64_t *offset_out, char *errbuf,
                             size_t errbuf_len)
{
    char epoch[SH_EPOCH_SIZE];
    uint64_t off = 0;
    sh_err_t rc;

    if (offset_out != NULL)
        *offset_out = 0;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = bus->be->publish(bus->be_state, channel, type, sh__now_ms(), head,
                          head_len, tail, tail_len, splice, epoch, &off,
                          errbuf, errbuf_len);
    if (rc == SH_OK && bus->be->cover_own)
        rc = own_cover(bus, channel, off);
    if (rc == SH_OK && offset_out != NULL)
        *offset_out = off;
    return rc;
}

static sh_err_t publish_inner(struct sh__bus *bus, const char *channel,
                              const char *type, sh__bus_build_fn build,
                              void *arg, struct given *given,
                              uint64_t *offset_out, struct sh_event **ev_out,
                              char *errbuf, size_t errbuf_len);

/* A publish under a traced request is a producer span, current while the
 * event is built: the event carries its traceparent (event.c), so that a
 * consumer's span joins the producer's trace. */
static sh_err_t do_publish(struct sh__bus *bus, const char *channel,
                           const char *type, sh__bus_build_fn build,
                           void *arg, struct given *given,
                           uint64_t *offset_out, struct sh_event **ev_out,
                           char *errbuf, size_t errbuf_len)
{
    char name[SH__SPAN_NAME_MAX];
    struct sh__span sp;
    sh_err_t rc;

    if (sh__trace_cur == NULL)
        return publish_inner(bus, channel, type, build, arg, given,
                             offset_out, ev_out, errbuf, errbuf_len);
    snprintf(name, sizeof name, "publish %s", channel);
    sh__span_start(&sp, name, SH__SPAN_PRODUCER);
    sh__span_attr_str(&sp, "messaging.system", "streamhub");
    sh__span_attr_str(&sp, "messaging.operation", "publish");
    sh__span_attr_str(&sp, "messaging.destination.name", channel);
    sh__span_attr_str(&sp, "streamhub.event.type", type);
    sh__span_enter(&sp);
    rc = publish_inner(bus, channel, type, build, arg, given, offset_out,
                       ev_out, errbuf, errbuf_len);
    if (rc != SH_OK)
        sh__span_fail(&sp);
    sh__span_end(&sp);
    return rc;
}

/* Data that needs its offset is built by the backend's publish_build,
 * else between a claim and its release; other data is sent as text. */
static sh_err_t publish_inner(struct sh__bus *bus, const char *channel,
                           const char *type, sh__bus_build_fn build,
                           void *arg, struct given *given,
                           uint64_t *offset_out, struct sh_event **ev_out,
                           char *errbuf, size_t errbuf_len)
{
    struct sh__bus_claim cl;
    json_object *data;
    struct sh_event *ev;
    sh_err_t rc;

    if (ev_out != NULL)
        *ev_out = NULL;
    if (given != NULL && given->head != NULL)
        return publish_text(bus, channel, type, given->head,
                            given->head_len, given->tail, given->tail_len,
                            true, offset_out, errbuf, errbuf_len);
    if (given != NULL) {
        const char *text;

        data = given->data;
        given->data = NULL;
        text = data != NULL ? json_object_to_json_string_ext(data,
                                                             TEXT_FLAGS)
                            : "null";
        if (text == NULL) {
            json_object_put(data);
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
            return SH_ENOMEM;
        }
        rc = publish_text(bus, channel, type, text, strlen(text), "", 0,
                          false, offset_out, errbuf, errbuf_len);
        json_object_put(data);
        return rc;
    }
    if (bus->be->publish_build != NULL) {
        if (offset_out != NULL)
            *offset_out = 0;
        rc = sh__channel_check(channel, errbuf, errbuf_len);
        if (rc != SH_OK)
            return rc;
        return bus->be->publish_build(bus->be_state, channel, type, build,
                                      arg, offset_out, ev_out, errbuf,
                                      errbuf_len);
    }
    /* The claim makes an event we do not use: the built one replaces it. */
    rc = sh__bus_claim_spliced(bus, channel, type, "null", 4, "", 0, &cl,
                               errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    data = build(arg, cl.offset, cl.ev->ts_ms);
    ev = data != NULL ? sh__event_new(channel, cl.ev->epoch, cl.offset,
                                      cl.ev->ts_ms, type, data)
                      : NULL;
    if (ev == NULL) {
        sh__bus_release(bus, &cl, false);
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        return SH_ENOMEM;
    }
    sh__event_unref(cl.ev);
    cl.ev = ev;
    if (offset_out != NULL)
        *offset_out = cl.offset;
    if (ev_out != NULL)
        *ev_out = sh__event_ref(ev);
    sh__bus_release(bus, &cl, true);
    return SH_OK;
}

/* In chunks on the backend (pipelined on Redis); an own channel's
 * offsets are then covered one by one (a go-live publishes on user:
 * channels, which are not). */
size_t sh__bus_publish_many(struct sh__bus *bus, const char *type,
                            const struct sh__bus_item *items, size_t n,
                            char *errbuf, size_t errbuf_len)
{
    uint64_t offs[MANY_CHUNK];
    char first[SH_ERRBUF_SIZE] = "";
    size_t done = 0;
    struct sh__span sp;

    assert(type != NULL && (items != NULL || n == 0));
    sh__span_start(&sp, "publish many", SH__SPAN_PRODUCER);
    sh__span_attr_str(&sp, "messaging.system", "streamhub");
    sh__span_attr_str(&sp, "messaging.operation", "publish");
    sh__span_attr_str(&sp, "streamhub.event.type", type);
    sh__span_attr_int(&sp, "messaging.batch.message_count", (int64_t)n);
    sh__span_enter(&sp);
    for (size_t base = 0; base < n; base += MANY_CHUNK) {
        size_t k = n - base < MANY_CHUNK ? n - base : MANY_CHUNK, got;
        bool valid = true;
        char err[SH_ERRBUF_SIZE] = "";

        for (size_t i = 0; i < k && valid; i++)
            valid = sh__channel_check(items[base + i].channel, NULL, 0)
                    == SH_OK;
        if (!valid) {
            /* A bad name among them: one at a time, each judged. */
            for (size_t i = 0; i < k; i++) {
                char e[SH_ERRBUF_SIZE];

                if (publish_text(bus, items[base + i].channel, type,
                                 items[base + i].data, items[base + i].len,
                                 "", 0, false, NULL, e, sizeof e) == SH_OK)
                    done++;
                else if (first[0] == '\0')
                    snprintf(first, sizeof first, "%s", e);
            }
            continue;
        }
        got = bus->be->publish_many(bus->be_state, type, items + base, k,
                                    sh__now_ms(), offs, err, sizeof err);
        if (err[0] != '\0' && first[0] == '\0')
            snprintf(first, sizeof first, "%s", err);
        for (size_t i = 0; i < k && bus->be->cover_own; i++) {
            if (offs[i] != 0 &&
                own_cover(bus, items[base + i].channel, offs[i]) != SH_OK)
                got--;
        }
        done += got;
        if (got < k && offs[k - 1] == 0)
            break;              /* down: the rest would fail the same way */
    }
    if (done < n) {
        sh__errbuf(errbuf, errbuf_len, "bus: %zu of %zu events not "
                   "published (%s)", n - done, n, first);
        sh__span_fail(&sp);
    }
    sh__span_end(&sp);
    return done;
}

/* do_subscribe(), @s made and @c pinned: watch the channel (on a remote
 * backend its events reach this node from now on), join buffering, read
 * the window, then splice: the window's events, then those queued
 * meanwhile that are newer than the window's position. */
static sh_err_t join(struct sh__bus *bus, struct sh__bus_chan *c,
                     struct sh_subscription *s, const sh_position_t *since,
                     bool paused, struct sh_subscription **out,
                     sh_subscribe_result_t *result, char *errbuf,
                     size_t errbuf_len)
{
    struct sh__bus_window w;
    sh_subscribe_result_t res;
    struct sh_event **q = NULL;
    size_t n = 0, cap;
    sh_err_t rc;

    memset(&res, 0, sizeof res);
    memset(&w, 0, sizeof w);
    rc = bus->be->watch != NULL ? bus->be->watch(bus->be_state, c->name,
                                                 errbuf, errbuf_len)
                                : SH_OK;
    if (rc != SH_OK) {
        free(s);
        chan_unpin(bus, c);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    s->watching = bus->be->watch != NULL;
    s->buffering = true;
    s->next = c->subs;
    if (c->subs != NULL)
        c->subs->prev = s;
    c->subs = s;
    s->linked = true;
    c->nsubs++;
    pthread_mutex_unlock(&c->lock);

    rc = bus->be->window(bus->be_state, c->name, since, since != NULL, &w,
                         errbuf, errbuf_len);
    pthread_mutex_lock(&c->lock);
    if (rc == SH_OK && s->closing) {
        /* Ended meanwhile: the backend lost events (SH_EBUS), the bus is
         * closing, or the queue overflowed. */
        rc = s->final;
        sh__errbuf(errbuf, errbuf_len, "bus: %s while subscribing",
                   rc == SH_EBUS ? "events lost" : sh_err_name(rc));
    }
    if (rc == SH_OK) {
        size_t keep = 0, hn = w.recovered ? w.n : 0;

        for (size_t i = 0; i < s->qlen; i++) {
            if (s->q[(s->qhead + i) % s->qcap]->offset > w.current.offset)
                keep++;
        }
        if (hn + keep > bus->queue_max) {
            hn = 0;             /* too far behind: not recovered */
            w.recovered = false;
        }
        cap = hn + keep < QUEUE_MIN ? QUEUE_MIN : hn + keep;
        if (keep <= bus->queue_max)
            q = malloc(cap * sizeof *q);
        if (q == NULL) {
            rc = SH_ENOMEM;
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        }
        if (rc == SH_OK) {
            for (size_t i = 0; i < hn; i++) {
                q[n++] = w.evs[i];
                w.evs[i] = NULL;
            }
            for (size_t i = 0; i < s->qlen; i++) {
                struct sh_event *ev = s->q[(s->qhead + i) % s->qcap];

                if (ev->offset > w.current.offset)
                    q[n++] = ev;
                else
                    sh__event_unref(ev);
            }
            free(s->q);
            s->q = q;
            s->qcap = cap;
            s->qhead = 0;
            s->qlen = n;
            s->buffering = paused;  /* sh__bus_sub_resume() ends it */
            if (c->repoch[0] != '\0' &&
                strcmp(c->repoch, w.current.epoch) != 0) {
                /* The epoch changed under the others: they missed what
                 * the old one lost (sh__bus_deliver's rule, applied now
                 * rather than at the next event, which would end @s). */
                for (struct sh_subscription *o = c->subs, *next;
                     o != NULL; o = next) {
                    next = o->next;
                    if (o == s)
                        continue;
                    sub_close(o, SH_EBUS);
                    if (!o->buffering)
                        schedule(bus, o);
                }
            }
            snprintf(c->repoch, sizeof c->repoch, "%s", w.current.epoch);
            res.current = w.current;
            res.recovered = since != NULL && w.recovered;
            if (s->qlen > 0 && !paused)
                schedule(bus, s);
        }
    }
    if (rc != SH_OK) {
        /* Never scheduled while buffering: still ours to free. */
        sub_unlink(s);
        queue_clear(s);
        pthread_mutex_unlock(&c->lock);
        sh__bus_window_clear(&w);
        free(s->q);
        free(s->spare);
        free(s);
        chan_unpin(bus, c);
        return rc;
    }
    pthread_mutex_unlock(&c->lock);
    sh__bus_window_clear(&w);
    if (result != NULL)
        *result = res;
    if (out != NULL)
        *out = s;
    return SH_OK;
}

sh_err_t sh__bus_publish_build(struct sh__bus *bus, const char *channel,
                               const char *type, sh__bus_build_fn build,
                               void *arg, uint64_t *offset_out,
                               struct sh_event **ev_out, char *errbuf,
                               size_t errbuf_len)
{
    assert(build != NULL && type != NULL);
    return do_publish(bus, channel, type, build, arg, NULL, offset_out,
                      ev_out, errbuf, errbuf_len);
}

sh_err_t sh__bus_publish(struct sh__bus *bus, const char *channel,
                         const char *type, json_object *data,
                         uint64_t *offset_out, char *errbuf,
                         size_t errbuf_len)
{
    struct given g = { data, NULL, NULL, 0, 0 };

    assert(type != NULL);
    return do_publish(bus, channel, type, NULL, NULL, &g, offset_out, NULL,
                      errbuf, errbuf_len);
}

sh_err_t sh__bus_publish_spliced(struct sh__bus *bus, const char *channel,
                                 const char *type, const char *head,
                                 size_t head_len, const char *tail,
                                 size_t tail_len, uint64_t *offset_out,
                                 char *errbuf, size_t errbuf_len)
{
    struct given g = { NULL, head, tail, head_len, tail_len };

    assert(type != NULL && head != NULL && tail != NULL);
    return do_publish(bus, channel, type, NULL, NULL, &g, offset_out, NULL,
                      errbuf, errbuf_len);
}

sh_err_t sh__bus_set_reserver(struct sh__bus *bus, sh__bus_reserve_fn fn,
                              sh__bus_giveback_fn giveback,
                              void *arg, const char *own_prefix,
                              uint64_t block, char *errbuf,
                              size_t errbuf_len)
{
    struct sh__bus_reserver r;
    sh_err_t rc;

    assert(fn != NULL && own_prefix != NULL && block > 0 &&
           strlen(own_prefix) < sizeof r.own_prefix);
    memset(&r, 0, sizeof r);
    r.fn = fn;
    r.giveback = giveback;
    r.arg = arg;
    snprintf(r.own_prefix, sizeof r.own_prefix, "%s", own_prefix);
    r.block = block;
    if (bus->be->set_reserver != NULL) {
        rc = bus->be->set_reserver(bus->be_state, &r, errbuf, errbuf_len);
        if (rc != SH_OK)
            return rc;
    }
    pthread_mutex_lock(&bus->lock);
    bus->res = r;
    pthread_mutex_unlock(&bus->lock);
    return SH_OK;
}

sh_err_t sh__bus_claim_spliced(struct sh__bus *bus, const char *channel,
                               const char *type, const char *head,
                               size_t head_len, const char *tail,
                               size_t tail_len, struct sh__bus_claim *out,
                               char *errbuf, size_t errbuf_len)
{
    char epoch[SH_EPOCH_SIZE];
    struct sh_event *ev;
    struct sh__bus_chan *c;
    uint64_t offset = 0;
    sh_err_t rc;

    assert(type != NULL && head != NULL && tail != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    /* The claim pins its channel until released. */
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL) {
        sh__errbuf(errbuf, errbuf_len, "bus: %s",
                   rc == SH_ECANCELED ? "closing" : "out of memory");
        return rc;
    }
    rc = bus->be->claim(bus->be_state, channel, epoch, &offset, errbuf,
                        errbuf_len);
    if (rc == SH_OK && bus->be->cover_own) {
        rc = own_cover(bus, channel, offset);
        if (rc != SH_OK)
            bus->be->release(bus->be_state, channel, epoch, offset, NULL);
    }
    ev = rc == SH_OK ? sh__event_new_spliced(c->name, epoch, offset,
                                             sh__now_ms(), type, head,
                                             head_len, tail, tail_len)
                     : NULL;
    if (rc == SH_OK && ev == NULL) {
        bus->be->release(bus->be_state, channel, epoch, offset, NULL);
        rc = SH_ENOMEM;
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    }
    if (rc != SH_OK) {
        chan_unpin(bus, c);
        return rc;
    }
    out->chan = c;
    out->ev = ev;
    out->offset = offset;
    return SH_OK;
}

void sh__bus_release(struct sh__bus *bus, struct sh__bus_claim *cl,
                     bool publish)
{
    struct sh__bus_chan *c = cl->chan;

    if (c == NULL)
        return;
    if (bus->be_state != NULL)
        bus->be->release(bus->be_state, c->name, cl->ev->epoch, cl->offset,
                         publish ? cl->ev : NULL);
    sh__event_unref(cl->ev);
    chan_unpin(bus, c);
    memset(cl, 0, sizeof *cl);
}

int sh__bus_rewrite(struct sh__bus *bus, const char *channel,
                    sh__bus_rewrite_fn fn, void *arg)
{
    sh_err_t rc = sh__channel_check(channel, NULL, 0);

    if (rc != SH_OK)
        return -(int)rc;
    return bus->be->rewrite(bus->be_state, channel, fn, arg);
}

static sh_err_t do_subscribe(struct sh__bus *bus, struct sh__dispatch *d,
                             const char *channel,
                             const sh_position_t *since, sh_event_cb cb,
                             void *arg, bool held, bool paused,
                             struct sh_subscription **out,
                             sh_subscribe_result_t *result, char *errbuf,
                             size_t errbuf_len)
{
    struct sh_subscription *s = NULL;
    struct sh__bus_chan *c;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if (result != NULL)
        memset(result, 0, sizeof *result);
    if (cb == NULL) {
        sh__errbuf(errbuf, errbuf_len, "subscribe: the callback must not "
                   "be NULL");
        return SH_EINVAL;
    }
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        return SH_ENOMEM;
    }
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL) {
        free(s);
        sh__errbuf(errbuf, errbuf_len, "bus: %s",
                   rc == SH_ECANCELED ? "closing" : "out of memory");
        return rc;
    }
    s->bus = bus;
    s->chan = c;                /* the pin is the subscription's now */
    s->dispatch = d != NULL ? d : bus->dispatch;
    atomic_init(&s->stop, false);
    s->held = held;
    s->cb = cb;
    s->arg = arg;
    return join(bus, c, s, since, paused, out, result, errbuf,
                errbuf_len);
}

sh_err_t sh__bus_subscribe(struct sh__bus *bus, const char *channel,
                           const sh_position_t *since, sh_event_cb cb,
                           void *arg, struct sh_subscription **out,
                           sh_subscribe_result_t *result, char *errbuf,
                           size_t errbuf_len)
{
    return do_subscribe(bus, NULL, channel, since, cb, arg, false, false,
                        out, result, errbuf, errbuf_len);
}

sh_err_t sh__bus_subscribe_on(struct sh__bus *bus, struct sh__dispatch *d,
                              const char *channel,
                              const sh_position_t *since, sh_event_cb cb,
                              void *arg, struct sh_subscription **out,
                              sh_subscribe_result_t *result, char *errbuf,
                              size_t errbuf_len)
{
    return do_subscribe(bus, d, channel, since, cb, arg, false, false, out,
                        result, errbuf, errbuf_len);
}

sh_err_t sh__bus_subscribe_held(struct sh__bus *bus, const char *channel,
                                const sh_position_t *since, sh_event_cb cb,
                                void *arg, struct sh_subscription **out,
                                sh_subscribe_result_t *result, char *errbuf,
                                size_t errbuf_len)
{
    return do_subscribe(bus, NULL, channel, since, cb, arg, out != NULL,
                        false, out, result, errbuf, errbuf_len);
}

sh_err_t sh__bus_subscribe_paused(struct sh__bus *bus, const char *channel,
                                  const sh_position_t *since,
                                  sh_event_cb cb, void *arg,
                                  struct sh_subscription **out,
                                  sh_subscribe_result_t *result,
                                  char *errbuf, size_t errbuf_len)
{
    assert(out != NULL);
    return do_subscribe(bus, NULL, channel, since, cb, arg, false, true,
                        out, result, errbuf, errbuf_len);
}

sh_err_t sh__bus_subscribe_paused_on(struct sh__bus *bus,
                                     struct sh__dispatch *d,
                                     const char *channel,
                                     const sh_position_t *since,
                                     sh_event_cb cb, void *arg,
                                     struct sh_subscription **out,
                                     sh_subscribe_result_t *result,
                                     char *errbuf, size_t errbuf_len)
{
    assert(out != NULL);
    return do_subscribe(bus, d, channel, since, cb, arg, false, true, out,
                        result, errbuf, errbuf_len);
}

void sh__bus_sub_resume(struct sh_subscription *s)
{
    struct sh__bus_chan *c = s->chan;

    pthread_mutex_lock(&c->lock);
    s->buffering = false;
    if (s->qlen > 0 || s->closing)
        schedule(s->bus, s);
    pthread_mutex_unlock(&c->lock);
}

size_t sh__bus_sub_batch_left(const struct sh_subscription *s)
{
    return s->batch_left;
}

bool sh__bus_remote(const struct sh__bus *bus)
{
    return bus->be->watch != NULL;
}

/* End @s unless it has ended.  @locks c->lock */
static void sub_cancel(struct sh_subscription *s)
{
    if (!s->final_done && !s->closing) {
        sub_close(s, SH_ECANCELED);
        if (!s->buffering)      /* else sh__bus_sub_resume() does */
            schedule(s->bus, s);
    }
}

void sh__bus_unsubscribe(struct sh_subscription *s)
{
    struct sh__bus *bus;
    struct sh__bus_chan *c;

    if (s == NULL)
        return;
    if (!s->held) {
        c = s->chan;
        pthread_mutex_lock(&c->lock);
        sub_cancel(s);
        pthread_mutex_unlock(&c->lock);  /* @s may be freed from here on */
        return;
    }
    /* Held: bus->lock keeps a tombstone's state still and, before that,
     * the channel pinned (inv. 10). */
    bus = s->bus;
    pthread_mutex_lock(&bus->lock);
    if (!s->ended && !s->released) {
        c = s->chan;
        pthread_mutex_lock(&c->lock);
        sub_cancel(s);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&bus->lock);
}

void sh__bus_sub_release(struct sh_subscription *s)
{
    struct sh__bus *bus;
    bool ended;

    if (s == NULL)
        return;
    assert(s->held);
    bus = s->bus;
    pthread_mutex_lock(&bus->lock);
    ended = s->ended;
    if (!ended && !s->released) {
        struct sh__bus_chan *c = s->chan;

        pthread_mutex_lock(&c->lock);
        sub_cancel(s);
        pthread_mutex_unlock(&c->lock);
    }
    s->released = true;         /* the final path frees it (sub_end) */
    pthread_mutex_unlock(&bus->lock);
    if (ended) {
        free(s);
        bus_unref(bus);         /* the tombstone's; may free the bus */
    }
}

sh_err_t sh__bus_position(struct sh__bus *bus, const char *channel,
                          sh_position_t *out)
{
    struct sh__bus_window w;
    sh_err_t rc;

    memset(out, 0, sizeof *out);
    memset(&w, 0, sizeof w);
    rc = sh__channel_check(channel, NULL, 0);
    if (rc != SH_OK)
        return rc;
    rc = bus->be->window(bus->be_state, channel, NULL, false, &w, NULL, 0);
    if (rc == SH_OK)
        *out = w.current;
    sh__bus_window_clear(&w);
    return rc;
}


size_t sh__bus_subscribers(struct sh__bus *bus, const char *channel)
{
    struct sh__bus_chan *c;
    sh_err_t rc;
    size_t n;

    if (sh__channel_check(channel, NULL, 0) != SH_OK)
        return 0;
    c = chan_pin(bus, channel, false, &rc);
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    n = c->nsubs;
    pthread_mutex_unlock(&c->lock);
    chan_unpin(bus, c);
    return n;
}

size_t sh__bus_channels(struct sh__bus *bus)
{
    size_t n;

    pthread_mutex_lock(&bus->lock);
    sweep(bus, sh__mono_ms());
    n = bus->nchans;
    pthread_mutex_unlock(&bus->lock);
    return n;
}
