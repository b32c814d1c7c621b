/* libstreamhub/bus/bus_local.c: the in-process bus (`bus = local`).
 *
 * A hash map of channels, each created on first use with its own random
 * epoch (so a restarted process, or a channel reclaimed and made again,
 * never shares a numbering with its past), its top offset, a bounded history
 * ring and its subscribers.
 *
 * Publish takes the channel's lock once: assign top+1, build the data,
 * serialise the event (event.c), append it to the history and put one
 * reference into each subscriber's queue.  Delivery crosses to the hub's
 * callback thread through the dispatcher: a subscriber whose queue goes
 * from idle to non-empty gets one drain job, which delivers everything
 * queued when it starts, so a burst costs one job, not one per event.
 *
 * Numbering outlives the process (PROTOCOL.md, "Channels": a crash may
 * leave a gap, never a repeat).  An offset is handed out only once it is
 * reserved durably through the hub's hook (sh__bus_set_reserver): a chat:
 * channel reserves blocks of its own sequence in the store, like a
 * sequence's cache, and starts above its last block after a restart; every
 * other channel starts above the store's floor and above what any channel
 * reclaimed by this bus handed out, and never passes the reserved floor.
 * Reservations wait on the store but are rare: an own channel's once per
 * block (at most chat.offset-block offsets), the floor once per
 * SH__BUS_FLOOR_BLOCK offsets of growth; an own channel reclaimed when idle
 * leaves its unused block as a gap.
 * A claim (sh__bus_claim_spliced) takes an offset now and publishes later:
 * events are published strictly in offset order, a later one waiting in
 * the channel's pending list until the claims before it are released.
 *
 * Subscribe with a position takes the same lock, so replaying the history
 * into the new queue and joining the live list are one atomic step: every
 * event is either in what was replayed or queued live, never both, never
 * neither.
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
 *  4. top only grows.  An event enters the history and every live queue
 *     during one hold of the channel's lock, and only when its offset is
 *     top + 1 (else it waits in pend), so each queue holds offsets in
 *     increasing order.  base <= top <= next: offsets (top, next] are
 *     claimed, each either in pend (sorted, pcap >= next - top) or held by
 *     its claimer.  Offsets of this channel instance are base + 1 ... next.
 * 10. Every offset handed out is reserved: an own channel's next <=
 *     reserved once loaded; another channel's next <= bus->floor_limit.
 *  5. History slot (hhead + i) % hcap for i < hlen holds one reference;
 *     offsets increase with i; hlen <= history_size; entries are at most
 *     history_ttl_ms old once trimmed.
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

#include <sodium.h>

#include "bus_be.h"

/* An epoch is the bus instance's random prefix (12 hex characters, drawn
 * once when the bus starts) and the channel instance's number on this bus
 * (8 hex): new after a restart and for a channel reclaimed and made again,
 * without a call to the system's random source per channel (a go-live
 * creates one `user:` channel per follower). */
#define EPOCH_PREFIX_BYTES 6
#define EPOCH_LEN (2 * EPOCH_PREFIX_BYTES + 8)
#define SWEEP_EVERY_MS 1000
#define QUEUE_MIN 16
#define BUCKETS_MIN 64

struct hent {
    struct sh_event *ev;        /* one reference */
    int64_t mono_ms;            /* when it entered the history */
};

/* An event released out of order, waiting for top to reach it (inv. 4). */
struct pend {
    uint64_t offset;
    struct sh_event *ev;        /* one reference; NULL: a gap */
};

struct chan {
    struct chan *next;          /* hash chain; @locks bus->lock */
    uint64_t hash;
    atomic_uint pins;           /* raised only under bus->lock (inv. 2) */
    char *name;                 /* immutable; points into this block */
    char epoch[EPOCH_LEN + 1];         /* immutable */
    bool own;                   /* immutable: its own durable sequence */
    pthread_mutex_t lock;
    pthread_cond_t cv;          /* a reservation of this channel ended */
    /* @locks lock: */
    uint64_t top;               /* the last offset published */
    uint64_t claimed;           /* the last offset handed out (inv. 4) */
    uint64_t base;              /* the numbering starts above */
    uint64_t reserved;          /* own: reserved durably up to (inv. 10) */
    uint64_t block;             /* own: the next reservation's size */
    bool loaded;                /* own: reserved at least once */
    bool reserving;             /* own: a reservation is under way */
    struct pend *pend;          /* owned, pcap slots, npend used */
    size_t npend, pcap;
    int64_t last_mono;          /* last publish, seed or unsubscribe */
    struct hent *hist;          /* owned ring, hcap slots (inv. 5) */
    size_t hcap, hhead, hlen;
    struct sh_subscription *subs;   /* live subscriptions */
    size_t nsubs;
    /* A remote backend's: the epoch of the last event delivered. */
    char repoch[SH_EPOCH_SIZE];
};

struct sh_subscription {
    struct sh__bus *bus;        /* borrowed: our pin keeps it (inv. 9) */
    struct chan *chan;          /* pinned (inv. 2) */
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
    /* A remote backend (bus_be.h), or NULL for the local numbering and
     * history; be_state is NULL once the backend is freed. */
    const struct sh__bus_backend *be;
    void *be_state;
    const struct sh__log *log;
    struct sh__dispatch *dispatch;
    size_t history_size;
    int64_t history_ttl_ms;
    size_t max_idle;            /* bus.max-idle-channels */
    size_t queue_max;
    atomic_size_t refs;         /* inv. 9 */
    char epoch_prefix[2 * EPOCH_PREFIX_BYTES + 1];
    atomic_uint epoch_seq;
    /* Durable numbering (sh__bus_set_reserver); reserve is NULL for a bus
     * without a store, whose floor_limit is then UINT64_MAX. */
    sh__bus_reserve_fn reserve;
    sh__bus_giveback_fn giveback;
    void *reserve_arg;
    char own_prefix[16];
    uint64_t block_max;
    pthread_mutex_t floor_mu;   /* one floor reservation at a time */
    _Atomic uint64_t floor_limit;
    pthread_mutex_t lock;
    /* @locks lock: */
    uint64_t floor_base;        /* where a new channel starts (inv. 10) */
    struct chan **buckets;
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
 * channel per follower. */
static struct chan *chan_new(struct sh__bus *bus, const char *name,
                             uint64_t hash, int64_t now)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = strlen(name);
    struct chan *c = calloc(1, sizeof *c + len + 1);
    uint32_t seq;

    if (c == NULL)
        return NULL;
    c->name = (char *)(c + 1);
    memcpy(c->name, name, len + 1);
    c->hash = hash;
    atomic_init(&c->pins, 0);
    seq = (uint32_t)atomic_fetch_add(&bus->epoch_seq, 1);
    memcpy(c->epoch, bus->epoch_prefix, 2 * EPOCH_PREFIX_BYTES);
    for (int i = 0; i < 8; i++)
        c->epoch[2 * EPOCH_PREFIX_BYTES + i] =
            hex[(seq >> (28 - 4 * i)) & 15];
    c->epoch[EPOCH_LEN] = '\0';
    c->last_mono = now;
    c->own = bus->reserve != NULL && bus->own_prefix[0] != '\0' &&
             strncmp(name, bus->own_prefix, strlen(bus->own_prefix)) == 0;
    /* Another channel starts above everything its past instances handed
     * out (the floor covers other processes, floor_base this one); an
     * own channel learns where to start at its first reservation. */
    if (!c->own)
        c->top = c->claimed = c->base = bus->floor_base;
    c->block = 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static struct hent *hist_at(const struct chan *c, size_t i)
{
    return &c->hist[(c->hhead + i) % c->hcap];
}

static void chan_free(struct chan *c)
{
    for (size_t i = 0; i < c->hlen; i++)
        sh__event_unref(hist_at(c, i)->ev);
    for (size_t i = 0; i < c->npend; i++)
        sh__event_unref(c->pend[i].ev);
    free(c->hist);
    free(c->pend);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void bus_destroy(struct sh__bus *bus)
{
    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct chan *c = bus->buckets[b];
        while (c != NULL) {
            struct chan *next = c->next;
            assert(c->nsubs == 0);
            chan_free(c);
            c = next;
        }
    }
    free(bus->buckets);
    pthread_mutex_destroy(&bus->floor_mu);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

static void bus_unref(struct sh__bus *bus)
{
    if (atomic_fetch_sub(&bus->refs, 1) == 1)
        bus_destroy(bus);
}

/* Drop history entries older than the TTL.  @locks c->lock */
static void hist_trim(const struct sh__bus *bus, struct chan *c, int64_t now)
{
    while (c->hlen > 0) {
        struct hent *h = hist_at(c, 0);
        if (now - h->mono_ms < bus->history_ttl_ms)
            break;
        sh__event_unref(h->ev);
        h->ev = NULL;
        c->hhead = (c->hhead + 1) % c->hcap;
        c->hlen--;
    }
}

/* Append a reference to @ev, growing the ring up to history_size, else
 * evicting the oldest.  An allocation failure only shortens the history
 * (recovery then answers false), so it is not an error.  @locks c->lock */
static void hist_append(const struct sh__bus *bus, struct chan *c,
                        struct sh_event *ev, int64_t now)
{
    if (bus->history_size == 0)
        return;
    if (c->hlen == c->hcap && c->hcap < bus->history_size) {
        /* Start small: a go-live's user: channels hold one event. */
        size_t cap = c->hcap < 2 ? 2 : c->hcap * 2;
        struct hent *h;
        if (cap > bus->history_size)
            cap = bus->history_size;
        h = malloc(cap * sizeof *h);
        if (h != NULL) {
            for (size_t i = 0; i < c->hlen; i++)
                h[i] = *hist_at(c, i);
            free(c->hist);
            c->hist = h;
            c->hcap = cap;
            c->hhead = 0;
        }
    }
    if (c->hcap == 0)
        return;
    if (c->hlen == c->hcap) {
        sh__event_unref(hist_at(c, 0)->ev);
        c->hhead = (c->hhead + 1) % c->hcap;
        c->hlen--;
    }
    *hist_at(c, c->hlen) = (struct hent){ sh__event_ref(ev), now };
    c->hlen++;
}

/* Index of the entry with @offset, or c->hlen when absent.  @locks c->lock */
static size_t hist_find(const struct chan *c, uint64_t offset)
{
    size_t lo = 0, hi = c->hlen;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hist_at(c, mid)->ev->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->hlen && hist_at(c, lo)->ev->offset == offset)
        return lo;
    return c->hlen;
}

/* Free the channels nobody holds whose history is empty and that saw no
 * activity for a TTL: memory stays bounded by the channels in use.  Keeping
 * an idle channel for a TTL keeps its numbering for clients that come back
 * soon.  Channel names come from clients, so past bus.max-idle-channels
 * channels in all the TTL is not waited for: every idle empty channel goes
 * (a client resuming on one is told recovered: false, never given a wrong
 * event).  @locks bus->lock */
static void sweep(struct sh__bus *bus, int64_t now)
{
    bool crowded = bus->nchans > bus->max_idle;

    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct chan **pp = &bus->buckets[b];
        while (*pp != NULL) {
            struct chan *c = *pp;
            bool dead = false;
            if (atomic_load(&c->pins) == 0) {
                pthread_mutex_lock(&c->lock);
                hist_trim(bus, c, now);
                dead = c->nsubs == 0 && c->hlen == 0 &&
                       (crowded ||
                        now - c->last_mono >= bus->history_ttl_ms);
                pthread_mutex_unlock(&c->lock);
            }
            if (dead) {
                *pp = c->next;
                /* Its successor continues above it (inv. 10). */
                if (!c->own && c->claimed > bus->floor_base)
                    bus->floor_base = c->claimed;
                chan_free(c);
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
    struct chan **nb = calloc(n, sizeof *nb);

    if (nb == NULL)
        return;
    for (size_t b = 0; b < bus->nbuckets; b++) {
        struct chan *c = bus->buckets[b];
        while (c != NULL) {
            struct chan *next = c->next;
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
static struct chan *chan_pin_locked(struct sh__bus *bus, const char *name,
                                    bool create, int64_t now, sh_err_t *rc)
{
    uint64_t h = hash_name(name);
    struct chan *c;

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
static struct chan *chan_pin(struct sh__bus *bus, const char *name,
                             bool create, sh_err_t *rc)
{
    int64_t now = sh__mono_ms();
    struct chan *c;

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

static void chan_unpin(struct sh__bus *bus, struct chan *c)
{
    atomic_fetch_sub(&c->pins, 1);
    bus_unref(bus);
}

/* ---- subscriptions ---------------------------------------------------- */

/* @locks chan->lock */
static void sub_unlink(struct sh_subscription *s)
{
    struct chan *c = s->chan;

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
    if (s->bus->be != NULL && c->nsubs == 0) {
        /* Nobody hears the channel now: the next subscriber starts over
         * from what Redis says. */
        c->repoch[0] = '\0';
        c->top = 0;
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
    if (!s->scheduled && sh__dispatch_post(bus->dispatch, drain, s) == SH_OK)
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

/* Drain jobs a publish claimed under the channel's lock and posts after
 * releasing it (posts_flush): the dispatcher's lock, its allocation and
 * its wake-up then never lengthen the channel's critical section, which
 * the drain jobs of the same channel wait on. */
#define POSTS_MAX 128

struct posts {
    struct sh_subscription *s[POSTS_MAX];
    size_t n;
};

/* Queue @ev (the caller adds the reference: one atomic add per publish,
 * not one per subscriber), or drop a subscriber that fell behind.
 * Returns whether a reference was queued.  @locks chan->lock */
static bool sub_push(struct sh__bus *bus, struct sh_subscription *s,
                     struct sh_event *ev, struct posts *posts)
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
static void posts_flush(struct sh__bus *bus, struct chan *c,
                        struct posts *posts)
{
    for (size_t i = 0; i < posts->n; i++) {
        struct sh_subscription *s = posts->s[i];

        if (sh__dispatch_post(bus->dispatch, drain, s) == SH_OK)
            continue;
        pthread_mutex_lock(&c->lock);
        s->scheduled = false;
        schedule(bus, s);
        pthread_mutex_unlock(&c->lock);
    }
    posts->n = 0;
}

static void sub_free(struct sh_subscription *s)
{
    struct sh__bus *bus = s->bus;
    struct chan *c = s->chan;

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
    struct chan *c = s->chan;

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
    struct chan *c = s->chan;
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
        if (sh__dispatch_post(s->bus->dispatch, drain, s) == SH_OK) {
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
    struct sh__bus *bus;

    bool redis = strncmp(kind, "redis://", 8) == 0;

    *out = NULL;
    if (!redis && strcmp(kind, "local") != 0) {
        sh__errbuf(errbuf, errbuf_len, "bus: expected local or redis://..., "
                   "not \"%.64s\"", kind);
        return SH_EINVAL;
    }
    if (sodium_init() < 0) {
        sh__errbuf(errbuf, errbuf_len, "bus: libsodium failed to start");
        return SH_EINTERNAL;
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
    {
        unsigned char rnd[EPOCH_PREFIX_BYTES];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(bus->epoch_prefix, sizeof bus->epoch_prefix, rnd,
                       sizeof rnd);
        atomic_init(&bus->epoch_seq, 0);
    }
    bus->history_size = (size_t)sh__config_int(conf, "bus.history-size");
    bus->history_ttl_ms =
        sh__config_int(conf, "bus.history-ttl-seconds") * 1000;
    bus->max_idle = (size_t)sh__config_int(conf, "bus.max-idle-channels");
    bus->queue_max = (size_t)sh__config_int(conf, "bus.subscriber-queue");
    bus->last_sweep = sh__mono_ms();
    atomic_init(&bus->refs, 1);
    atomic_init(&bus->floor_limit, UINT64_MAX);  /* no store: no limit */
    pthread_mutex_init(&bus->floor_mu, NULL);
    pthread_mutex_init(&bus->lock, NULL);
    if (redis) {
        sh_err_t rc;

        /* Numbering and history live in Redis: channels here hold
         * subscribers only. */
        bus->history_size = 0;
        rc = sh__bus_redis_new(bus, conf, log, kind, remote_floor,
                               &bus->be_state, errbuf, errbuf_len);
        if (rc != SH_OK) {
            bus_unref(bus);
            return rc;
        }
        bus->be = &sh__bus_redis_backend;
    }
    *out = bus;
    return SH_OK;
nomem:
    sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    return SH_ENOMEM;
}

/* What one channel gives back (give_back()). */
struct unused {
    struct unused *next;
    uint64_t from, to;
    char key[];
};

/* Give back the offsets reserved and not handed out (sh__bus_set_reserver).
 * Each channel's reservation is cut to what it handed out under its lock
 * first, so that a publish racing the close reserves again rather than use
 * an offset given back. */
static void give_back(struct sh__bus *bus)
{
    struct unused *list = NULL;
    uint64_t top, limit;

    if (bus->giveback == NULL)
        return;
    pthread_mutex_lock(&bus->lock);
    top = bus->floor_base;
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct chan *c = bus->buckets[b]; c != NULL; c = c->next) {
            pthread_mutex_lock(&c->lock);
            if (!c->own) {
                if (c->claimed > top)
                    top = c->claimed;
            } else if (c->loaded && !c->reserving &&
                       c->claimed < c->reserved) {
                size_t len = strlen(c->name) + 1;
                struct unused *u = malloc(sizeof *u + len);

                if (u != NULL) {    /* else a gap: still no repeat */
                    u->from = c->reserved;
                    u->to = c->claimed;
                    memcpy(u->key, c->name, len);
                    u->next = list;
                    list = u;
                    c->reserved = c->claimed;
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
    }
    pthread_mutex_unlock(&bus->lock);
    pthread_mutex_lock(&bus->floor_mu);
    limit = atomic_load(&bus->floor_limit);
    if (top < limit) {
        atomic_store(&bus->floor_limit, top);
        bus->giveback(bus->reserve_arg, SH__BUS_FLOOR_KEY, limit, top);
    }
    pthread_mutex_unlock(&bus->floor_mu);
    while (list != NULL) {
        struct unused *u = list;

        list = u->next;
        bus->giveback(bus->reserve_arg, u->key, u->from, u->to);
        free(u);
    }
}

void sh__bus_free(struct sh__bus *bus)
{
    struct sh_subscription *orphans = NULL;

    if (bus == NULL)
        return;
    if (bus->be == NULL)
        give_back(bus);
    pthread_mutex_lock(&bus->lock);
    bus->closing = true;        /* no new pins from now on */
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct chan *c = bus->buckets[b]; c != NULL; c = c->next) {
            pthread_mutex_lock(&c->lock);
            while (c->subs != NULL) {
                struct sh_subscription *s = c->subs;
                sub_close(s, SH_ECANCELED);
                if (!schedule(bus, s)) {
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

struct given {
    json_object *data;
    /* Without data: the text head, offset, tail (publish_spliced). */
    const char *head, *tail;
    size_t head_len, tail_len;
};

/* Make @ev (numbered top + 1) the channel's newest event: history and
 * every live queue (inv. 4).  @locks c->lock */
static void chan_commit(struct sh__bus *bus, struct chan *c,
                        struct sh_event *ev, int64_t now,
                        struct posts *posts)
{
    int queued = 0;

    c->top = ev->offset;
    c->last_mono = now;
    hist_trim(bus, c, now);
    hist_append(bus, c, ev, now);
    for (struct sh_subscription *s = c->subs, *next; s != NULL; s = next) {
        next = s->next;         /* sub_push may unlink s */
        if (sub_push(bus, s, ev, posts))
            queued++;
    }
    /* The publisher's own reference keeps @ev alive until here, so the
     * queued slots may take theirs at once (inv. 6). */
    if (queued > 0)
        atomic_fetch_add_explicit(&ev->refs, queued, memory_order_relaxed);
}

/* ---- durable numbering, claims and ordered release ------------------- */

/* Raise the floor to at least @need (one reservation at a time).  May wait
 * on the store: call with no channel lock held. */
static sh_err_t floor_extend(struct sh__bus *bus, uint64_t need)
{
    sh_err_t rc = SH_OK;

    pthread_mutex_lock(&bus->floor_mu);
    while (rc == SH_OK && atomic_load(&bus->floor_limit) < need) {
        uint64_t upto = 0;

        rc = bus->reserve(bus->reserve_arg, SH__BUS_FLOOR_KEY,
                          SH__BUS_FLOOR_BLOCK, &upto);
        if (rc == SH_OK && upto <= atomic_load(&bus->floor_limit))
            rc = SH_EBUS;       /* the store went backwards */
        if (rc == SH_OK)
            atomic_store(&bus->floor_limit, upto);
    }
    pthread_mutex_unlock(&bus->floor_mu);
    return rc;
}

/* Reserve the next block of own channel @c, outside its lock (the store is
 * never waited on under a bus lock; others wait on c->cv).
 * @locks c->lock, held on entry and on return */
static sh_err_t own_reserve(struct sh__bus *bus, struct chan *c)
{
    uint64_t n = c->block, upto = 0, first;
    sh_err_t rc;

    c->reserving = true;
    pthread_mutex_unlock(&c->lock);
    rc = bus->reserve(bus->reserve_arg, c->name, n, &upto);
    pthread_mutex_lock(&c->lock);
    c->reserving = false;
    pthread_cond_broadcast(&c->cv);
    if (rc != SH_OK)
        return rc;
    if (upto < n)
        return SH_EBUS;
    first = upto - n;           /* ours: (first, upto] */
    if (!c->loaded) {
        /* Nothing handed out yet in this instance: continue above every
         * offset the channel ever reserved, so above all it handed out. */
        c->top = c->claimed = c->base = first;
        c->loaded = true;
    } else if (first > c->claimed) {
        c->claimed = first;     /* someone else took the ones between */
    }
    c->reserved = upto;
    if (c->block < bus->block_max)
        c->block = c->block * 2 < bus->block_max ? c->block * 2
                                                 : bus->block_max;
    return SH_OK;
}

/* Hand out @c's next offset (inv. 10: reserving first when needed, which
 * drops and retakes the lock) and make room in pend for its event, so that
 * releasing it cannot fail.  @locks c->lock */
static sh_err_t claim(struct sh__bus *bus, struct chan *c, uint64_t *out)
{
    for (;;) {
        uint64_t want;
        sh_err_t rc;

        if (c->claimed == UINT64_MAX)
            return SH_EBUS;
        if (c->own) {
            if (c->loaded && c->claimed < c->reserved)
                break;
            if (c->reserving) {
                pthread_cond_wait(&c->cv, &c->lock);
                continue;
            }
            rc = own_reserve(bus, c);
            if (rc != SH_OK)
                return rc;
            continue;
        }
        want = c->claimed + 1;
        if (want <= atomic_load(&bus->floor_limit))
            break;
        pthread_mutex_unlock(&c->lock);
        rc = floor_extend(bus, want);
        pthread_mutex_lock(&c->lock);
        if (rc != SH_OK)
            return rc;
    }
    if (c->claimed - c->top > c->pcap) {
        size_t cap = c->pcap < 4 ? 4 : c->pcap;
        struct pend *p;

        while (cap < c->claimed - c->top)
            cap *= 2;
        p = realloc(c->pend, cap * sizeof *p);
        if (p == NULL)
            return SH_ENOMEM;
        c->pend = p;
        c->pcap = cap;
    }
    *out = ++c->claimed;
    return SH_OK;
}

/* Publish @ev, numbered @offset, or skip @offset when @ev is NULL, in
 * offset order (inv. 4): when claims before it are still out it waits in
 * pend (taking a reference), else it and every waiting successor go out
 * now.  @locks c->lock */
static void release_locked(struct sh__bus *bus, struct chan *c,
                           uint64_t offset, struct sh_event *ev,
                           int64_t now, struct posts *posts)
{
    size_t i;

    assert(offset > c->top && offset <= c->claimed);
    if (offset != c->top + 1) {
        assert(c->npend < c->pcap);
        for (i = c->npend; i > 0 && c->pend[i - 1].offset > offset; i--)
            c->pend[i] = c->pend[i - 1];
        c->pend[i].offset = offset;
        c->pend[i].ev = ev != NULL ? sh__event_ref(ev) : NULL;
        c->npend++;
        return;
    }
    if (ev != NULL)
        chan_commit(bus, c, ev, now, posts);
    else
        c->top = offset;
    while (c->npend > 0 && c->pend[0].offset == c->top + 1) {
        struct pend p = c->pend[0];

        c->npend--;
        memmove(c->pend, c->pend + 1, c->npend * sizeof *c->pend);
        if (p.ev != NULL)
            chan_commit(bus, c, p.ev, now, posts);
        else
            c->top = p.offset;
        sh__event_unref(p.ev);
    }
}

static size_t remote_publish_many(struct sh__bus *bus, const char *type,
                                  const struct sh__bus_item *items, size_t n,
                                  char *errbuf, size_t errbuf_len);

/* Channels pinned per hold of bus->lock in sh__bus_publish_many(): long
 * enough to amortise the lock, short enough not to stall other callers. */
#define MANY_CHUNK 256

size_t sh__bus_publish_many(struct sh__bus *bus, const char *type,
                            const struct sh__bus_item *items, size_t n,
                            char *errbuf, size_t errbuf_len)
{
    struct chan *pinned[MANY_CHUNK];
    struct posts posts;
    sh_err_t first = SH_OK;
    size_t done = 0;

    assert(type != NULL && (items != NULL || n == 0));
    if (bus->be != NULL)
        return remote_publish_many(bus, type, items, n, errbuf, errbuf_len);
    posts.n = 0;
    for (size_t base = 0; base < n; base += MANY_CHUNK) {
        size_t k = n - base < MANY_CHUNK ? n - base : MANY_CHUNK;
        int64_t now = sh__mono_ms(), ts = sh__now_ms();
        bool closing;

        pthread_mutex_lock(&bus->lock);
        closing = bus->closing;
        if (!closing && now - bus->last_sweep >= SWEEP_EVERY_MS)
            sweep(bus, now);
        for (size_t i = 0; i < k; i++) {
            sh_err_t rc = SH_ECANCELED;

            pinned[i] = NULL;
            if (!closing &&
                (rc = sh__channel_check(items[base + i].channel, NULL, 0))
                    == SH_OK)
                pinned[i] = chan_pin_locked(bus, items[base + i].channel,
                                            true, now, &rc);
            if (pinned[i] == NULL && first == SH_OK)
                first = rc != SH_OK ? rc : SH_ENOMEM;
        }
        pthread_mutex_unlock(&bus->lock);
        for (size_t i = 0; i < k; i++) {
            const struct sh__bus_item *it = &items[base + i];
            struct chan *c = pinned[i];
            struct sh_event *ev = NULL;

            if (c == NULL)
                continue;
            uint64_t off = 0;
            sh_err_t rc;

            pthread_mutex_lock(&c->lock);
            rc = claim(bus, c, &off);
            if (rc == SH_OK) {
                ev = sh__event_new_text(c->name, c->epoch, off, ts, type,
                                        it->data, it->len);
                if (ev != NULL) {
                    release_locked(bus, c, off, ev, now, &posts);
                    done++;
                } else {
                    c->claimed--;   /* not handed out: held the lock */
                    rc = SH_ENOMEM;
                }
            }
            if (rc != SH_OK && first == SH_OK)
                first = rc;
            pthread_mutex_unlock(&c->lock);
            posts_flush(bus, c, &posts);
            sh__event_unref(ev);
            chan_unpin(bus, c);
        }
    }
    if (first != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "bus: %zu of %zu events not "
                   "published (%s)", n - done, n, sh_err_name(first));
    return done;
}

/* ---- a remote backend (bus_be.h) --------------------------------------- */

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
    return bus->reserve != NULL && bus->own_prefix[0] != '\0' &&
           strncmp(channel, bus->own_prefix, strlen(bus->own_prefix)) == 0;
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
    return bus->reserve(bus->reserve_arg, channel, 0, floor);
}

/* Raise own channel @channel's durable reservation to at least @offset
 * (first learning it, then in blocks of chat.offset-block), so that an
 * epoch made after Redis lost the channel starts above every offset the
 * store may hold.  A no-op for other channels. */
static sh_err_t own_cover(struct sh__bus *bus, const char *channel,
                          uint64_t offset)
{
    struct chan *c;
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
                                          : offset - have + bus->block_max;

        rc = bus->reserve(bus->reserve_arg, channel, n, &upto);
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
static void remote_fail_locked(struct sh__bus *bus, struct chan *c)
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
    struct posts posts;
    struct chan *c;
    sh_err_t rc;

    posts.n = 0;
    c = chan_pin(bus, ev->channel, false, &rc);
    if (c == NULL)
        return;                 /* no one here listens */
    pthread_mutex_lock(&c->lock);
    if (c->repoch[0] != '\0' && strcmp(c->repoch, ev->epoch) != 0)
        remote_fail_locked(bus, c);
    if (c->nsubs > 0 &&
        (strcmp(c->repoch, ev->epoch) != 0 || ev->offset > c->top)) {
        snprintf(c->repoch, sizeof c->repoch, "%s", ev->epoch);
        chan_commit(bus, c, ev, sh__mono_ms(), &posts);
    }
    pthread_mutex_unlock(&c->lock);
    posts_flush(bus, c, &posts);
    chan_unpin(bus, c);
}

void sh__bus_fail(struct sh__bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    for (size_t b = 0; b < bus->nbuckets; b++) {
        for (struct chan *c = bus->buckets[b]; c != NULL; c = c->next) {
            pthread_mutex_lock(&c->lock);
            remote_fail_locked(bus, c);
            pthread_mutex_unlock(&c->lock);
        }
    }
    pthread_mutex_unlock(&bus->lock);
}

static sh_err_t remote_publish(struct sh__bus *bus, const char *channel,
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
    if (rc == SH_OK)
        rc = own_cover(bus, channel, off);
    if (rc == SH_OK && offset_out != NULL)
        *offset_out = off;
    return rc;
}

/* do_publish() on a remote backend: data that needs its offset is built
 * between a claim and its release; other data is sent as text. */
static sh_err_t remote_do_publish(struct sh__bus *bus, const char *channel,
                                  const char *type, sh__bus_build_fn build,
                                  void *arg, struct given *given,
                                  uint64_t *offset_out,
                                  struct sh_event **ev_out, char *errbuf,
                                  size_t errbuf_len)
{
    struct sh__bus_claim cl;
    json_object *data;
    struct sh_event *ev;
    sh_err_t rc;

    if (ev_out != NULL)
        *ev_out = NULL;
    if (given != NULL && given->head != NULL)
        return remote_publish(bus, channel, type, given->head,
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
        rc = remote_publish(bus, channel, type, text, strlen(text), "", 0,
                            false, offset_out, errbuf, errbuf_len);
        json_object_put(data);
        return rc;
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

static size_t remote_publish_many(struct sh__bus *bus, const char *type,
                                  const struct sh__bus_item *items, size_t n,
                                  char *errbuf, size_t errbuf_len)
{
    sh_err_t first = SH_OK;
    char err[SH_ERRBUF_SIZE];
    size_t done = 0;

    for (size_t i = 0; i < n; i++) {
        sh_err_t rc = remote_publish(bus, items[i].channel, type,
                                     items[i].data, items[i].len, "", 0,
                                     false, NULL, err, sizeof err);
        if (rc == SH_OK) {
            done++;
        } else if (first == SH_OK) {
            first = rc;
            sh__errbuf(errbuf, errbuf_len, "bus: %zu events not published: "
                       "%s", n - done, err);
        }
        if (rc == SH_EBUS)
            break;              /* down: the rest would fail the same way */
    }
    return done;
}

/* do_subscribe() on a remote backend, @s made and @c pinned: watch the
 * channel (its events reach this node from now on), join buffering, read
 * the window, then splice: the window's events, then those queued
 * meanwhile that are newer than the window's position. */
static sh_err_t remote_subscribe(struct sh__bus *bus, struct chan *c,
                                 struct sh_subscription *s,
                                 const sh_position_t *since,
                                 struct sh_subscription **out,
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
    rc = bus->be->watch(bus->be_state, c->name, errbuf, errbuf_len);
    if (rc != SH_OK) {
        free(s);
        chan_unpin(bus, c);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    s->watching = true;
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
        rc = SH_EBUS;
        sh__errbuf(errbuf, errbuf_len, "bus: redis lost while subscribing");
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
            s->buffering = false;
            if (c->repoch[0] == '\0')
                snprintf(c->repoch, sizeof c->repoch, "%s",
                         w.current.epoch);
            res.current = w.current;
            res.recovered = since != NULL && w.recovered;
            if (s->qlen > 0)
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

static sh_err_t do_publish(struct sh__bus *bus, const char *channel,
                           const char *type, sh__bus_build_fn build,
                           void *arg, struct given *given,
                           uint64_t *offset_out, struct sh_event **ev_out,
                           char *errbuf, size_t errbuf_len)
{
    struct chan *c = NULL;
    struct sh_event *ev = NULL;
    struct posts posts;
    json_object *data;
    sh_err_t rc;
    uint64_t offset;
    int64_t ts, now;

    if (bus->be != NULL) {
        rc = remote_do_publish(bus, channel, type, build, arg, given,
                               offset_out, ev_out, errbuf, errbuf_len);
        if (given != NULL)
            json_object_put(given->data);
        return rc;
    }
    posts.n = 0;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL)
        goto out;
    pthread_mutex_lock(&c->lock);
    rc = claim(bus, c, &offset);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&c->lock);
        goto out;
    }
    ts = sh__now_ms();
    now = sh__mono_ms();
    if (given != NULL && given->head != NULL) {
        ev = sh__event_new_spliced(c->name, c->epoch, offset, ts, type,
                                   given->head, given->head_len,
                                   given->tail, given->tail_len);
    } else {
        if (given != NULL) {
            data = given->data;
            given->data = NULL;
        } else {
            data = build(arg, offset, ts);
            if (data == NULL) {
                c->claimed--;   /* ours since the claim: not handed out */
                pthread_mutex_unlock(&c->lock);
                rc = SH_ENOMEM;
                goto out;
            }
        }
        ev = sh__event_new(c->name, c->epoch, offset, ts, type, data);
    }
    if (ev == NULL) {
        c->claimed--;           /* the lock was held since the claim */
        pthread_mutex_unlock(&c->lock);
        rc = SH_ENOMEM;
        goto out;
    }
    release_locked(bus, c, offset, ev, now, &posts);
    pthread_mutex_unlock(&c->lock);
    posts_flush(bus, c, &posts);
    if (offset_out != NULL)
        *offset_out = offset;
    if (ev_out != NULL) {
        *ev_out = ev;
        ev = NULL;
    }
    rc = SH_OK;
out:
    if (rc == SH_ECANCELED)
        sh__errbuf(errbuf, errbuf_len, "bus: closing");
    else if (rc == SH_ENOMEM)
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    else if (rc == SH_EBUS)
        sh__errbuf(errbuf, errbuf_len, "bus: offsets of %s exhausted",
                   channel);
    else if (rc != SH_OK && rc != SH_EINVAL)
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve offsets of %s "
                   "(%s)", channel, sh_err_name(rc));
    if (rc != SH_OK) {
        if (offset_out != NULL)
            *offset_out = 0;
        if (ev_out != NULL)
            *ev_out = NULL;
    }
    if (given != NULL)
        json_object_put(given->data);
    sh__event_unref(ev);
    if (c != NULL)
        chan_unpin(bus, c);
    return rc;
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
    uint64_t upto = 0;
    sh_err_t rc;

    assert(fn != NULL && own_prefix != NULL && block > 0 &&
           strlen(own_prefix) < sizeof bus->own_prefix);
    if (bus->be != NULL) {
        /* Redis numbers the channels: only own channels' floors (for a
         * new epoch) come from the store. */
        pthread_mutex_lock(&bus->lock);
        bus->reserve = fn;
        bus->giveback = giveback;
        bus->reserve_arg = arg;
        snprintf(bus->own_prefix, sizeof bus->own_prefix, "%s", own_prefix);
        bus->block_max = block;
        pthread_mutex_unlock(&bus->lock);
        return SH_OK;
    }
    rc = fn(arg, SH__BUS_FLOOR_KEY, SH__BUS_FLOOR_BLOCK, &upto);
    if (rc == SH_OK && upto < SH__BUS_FLOOR_BLOCK)
        rc = SH_EBUS;
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve the offset "
                   "floor (%s)", sh_err_name(rc));
        return rc;
    }
    pthread_mutex_lock(&bus->lock);
    bus->reserve = fn;
    bus->giveback = giveback;
    bus->reserve_arg = arg;
    snprintf(bus->own_prefix, sizeof bus->own_prefix, "%s", own_prefix);
    bus->block_max = block;
    /* Everything before this process stayed at or below the old floor. */
    if (bus->floor_base < upto - SH__BUS_FLOOR_BLOCK)
        bus->floor_base = upto - SH__BUS_FLOOR_BLOCK;
    atomic_store(&bus->floor_limit, upto);
    pthread_mutex_unlock(&bus->lock);
    return SH_OK;
}

sh_err_t sh__bus_claim_spliced(struct sh__bus *bus, const char *channel,
                               const char *type, const char *head,
                               size_t head_len, const char *tail,
                               size_t tail_len, struct sh__bus_claim *out,
                               char *errbuf, size_t errbuf_len)
{
    struct posts posts;
    struct sh_event *ev;
    struct chan *c;
    uint64_t offset = 0;
    sh_err_t rc;

    assert(type != NULL && head != NULL && tail != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    posts.n = 0;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL) {
        sh__errbuf(errbuf, errbuf_len, "bus: %s",
                   rc == SH_ECANCELED ? "closing" : "out of memory");
        return rc;
    }
    if (bus->be != NULL) {
        char epoch[SH_EPOCH_SIZE];

        rc = bus->be->claim(bus->be_state, channel, epoch, &offset, errbuf,
                            errbuf_len);
        if (rc == SH_OK) {
            rc = own_cover(bus, channel, offset);
            if (rc != SH_OK)
                bus->be->release(bus->be_state, channel, epoch, offset,
                                 NULL);
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
    pthread_mutex_lock(&c->lock);
    rc = claim(bus, c, &offset);
    pthread_mutex_unlock(&c->lock);
    if (rc != SH_OK) {
        chan_unpin(bus, c);
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve offsets of %s "
                   "(%s)", channel, sh_err_name(rc));
        return rc;
    }
    /* The name and the epoch never change: made outside the lock. */
    ev = sh__event_new_spliced(c->name, c->epoch, offset, sh__now_ms(), type,
                               head, head_len, tail, tail_len);
    if (ev == NULL) {
        pthread_mutex_lock(&c->lock);
        release_locked(bus, c, offset, NULL, sh__mono_ms(), &posts);
        pthread_mutex_unlock(&c->lock);
        posts_flush(bus, c, &posts);
        chan_unpin(bus, c);
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        return SH_ENOMEM;
    }
    out->chan = c;              /* the pin is the claim's now */
    out->ev = ev;
    out->offset = offset;
    return SH_OK;
}

void sh__bus_release(struct sh__bus *bus, struct sh__bus_claim *cl,
                     bool publish)
{
    struct chan *c = cl->chan;
    struct posts posts;

    if (c == NULL)
        return;
    posts.n = 0;
    if (bus->be != NULL) {
        if (bus->be_state != NULL)
            bus->be->release(bus->be_state, c->name, cl->ev->epoch,
                             cl->offset, publish ? cl->ev : NULL);
    } else {
        pthread_mutex_lock(&c->lock);
        release_locked(bus, c, cl->offset, publish ? cl->ev : NULL,
                       sh__mono_ms(), &posts);
        pthread_mutex_unlock(&c->lock);
        posts_flush(bus, c, &posts);
    }
    sh__event_unref(cl->ev);
    chan_unpin(bus, c);
    memset(cl, 0, sizeof *cl);
}

int sh__bus_rewrite(struct sh__bus *bus, const char *channel,
                    sh__bus_rewrite_fn fn, void *arg)
{
    struct chan *c;
    sh_err_t rc = sh__channel_check(channel, NULL, 0);
    int n = 0;

    if (rc != SH_OK)
        return -(int)rc;
    if (bus->be != NULL)
        return bus->be->rewrite(bus->be_state, channel, fn, arg);
    c = chan_pin(bus, channel, false, &rc);
    if (c == NULL)
        return rc == SH_OK ? 0 : -(int)rc;
    pthread_mutex_lock(&c->lock);
    hist_trim(bus, c, sh__mono_ms());
    for (size_t i = 0; i < c->hlen; i++) {
        struct hent *h = hist_at(c, i);
        struct sh_event *old = h->ev, *ev;
        json_object *data = fn(arg, old);
        if (data == NULL)
            continue;
        ev = sh__event_new(old->channel, old->epoch, old->offset,
                           old->ts_ms, old->type, data);
        if (ev == NULL) {
            n = -(int)SH_ENOMEM;
            break;
        }
        h->ev = ev;
        sh__event_unref(old);   /* holders of the old one keep it */
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    chan_unpin(bus, c);
    return n;
}

static sh_err_t do_subscribe(struct sh__bus *bus, const char *channel,
                             const sh_position_t *since, sh_event_cb cb,
                             void *arg, bool held,
                             struct sh_subscription **out,
                             sh_subscribe_result_t *result, char *errbuf,
                             size_t errbuf_len)
{
    struct sh_subscription *s = NULL;
    struct chan *c;
    sh_subscribe_result_t res;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if (result != NULL)
        memset(result, 0, sizeof *result);
    memset(&res, 0, sizeof res);
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
    atomic_init(&s->stop, false);
    s->held = held;
    s->cb = cb;
    s->arg = arg;
    if (bus->be != NULL)
        return remote_subscribe(bus, c, s, since, out, result, errbuf,
                                errbuf_len);

    pthread_mutex_lock(&c->lock);
    hist_trim(bus, c, sh__mono_ms());
    snprintf(res.current.epoch, sizeof res.current.epoch, "%s", c->epoch);
    res.current.offset = c->top;
    if (since != NULL && since->epoch[0] != '\0' &&
        memchr(since->epoch, '\0', sizeof since->epoch) != NULL &&
        strcmp(since->epoch, c->epoch) == 0 && since->offset <= c->top) {
        /* Offset 0 means "before the first event" (bus.h), and this
         * epoch's first event is base + 1: an own channel reports 0 until
         * its first reservation.  Any other offset below base was never
         * handed out in this epoch (a client guessing, or one taken in
         * another epoch): not recovered. */
        uint64_t from = since->offset == 0 ? c->base : since->offset;

        if (from == c->top) {
            res.recovered = 1;  /* nothing was missed */
        } else {
            size_t i = hist_find(c, from + 1);
            size_t n = c->hlen - i;
            if (i < c->hlen && queue_reserve(bus, s, n)) {
                for (; i < c->hlen; i++)
                    s->q[s->qlen++] = sh__event_ref(hist_at(c, i)->ev);
                res.recovered = 1;
            }
        }
    }
    s->next = c->subs;
    if (c->subs != NULL)
        c->subs->prev = s;
    c->subs = s;
    s->linked = true;
    c->nsubs++;
    if (s->qlen > 0)
        schedule(bus, s);
    pthread_mutex_unlock(&c->lock);

    if (result != NULL)
        *result = res;
    if (out != NULL)
        *out = s;
    return SH_OK;
}

sh_err_t sh__bus_subscribe(struct sh__bus *bus, const char *channel,
                           const sh_position_t *since, sh_event_cb cb,
                           void *arg, struct sh_subscription **out,
                           sh_subscribe_result_t *result, char *errbuf,
                           size_t errbuf_len)
{
    return do_subscribe(bus, channel, since, cb, arg, false, out, result,
                        errbuf, errbuf_len);
}

sh_err_t sh__bus_subscribe_held(struct sh__bus *bus, const char *channel,
                                const sh_position_t *since, sh_event_cb cb,
                                void *arg, struct sh_subscription **out,
                                sh_subscribe_result_t *result, char *errbuf,
                                size_t errbuf_len)
{
    return do_subscribe(bus, channel, since, cb, arg, out != NULL, out,
                        result, errbuf, errbuf_len);
}

/* End @s unless it has ended.  @locks c->lock */
static void sub_cancel(struct sh_subscription *s)
{
    if (!s->final_done && !s->closing) {
        sub_close(s, SH_ECANCELED);
        schedule(s->bus, s);
    }
}

void sh__bus_unsubscribe(struct sh_subscription *s)
{
    struct sh__bus *bus;
    struct chan *c;

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
        struct chan *c = s->chan;

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
    struct chan *c;
    sh_err_t rc;

    memset(out, 0, sizeof *out);
    rc = sh__channel_check(channel, NULL, 0);
    if (rc != SH_OK)
        return rc;
    if (bus->be != NULL) {
        struct sh__bus_window w;

        rc = bus->be->window(bus->be_state, channel, NULL, false, &w, NULL,
                             0);
        if (rc == SH_OK)
            *out = w.current;
        sh__bus_window_clear(&w);
        return rc;
    }
    c = chan_pin(bus, channel, true, &rc);
    if (c == NULL)
        return rc;
    pthread_mutex_lock(&c->lock);
    snprintf(out->epoch, sizeof out->epoch, "%s", c->epoch);
    out->offset = c->top;
    pthread_mutex_unlock(&c->lock);
    chan_unpin(bus, c);
    return SH_OK;
}

size_t sh__bus_subscribers(struct sh__bus *bus, const char *channel)
{
    struct chan *c;
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
