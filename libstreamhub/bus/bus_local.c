/* libstreamhub/bus/bus_local.c: the in-process bus backend (`bus =
 * local`, the default; bus_be.h).
 *
 * Each channel of the bus's map gets, when made, its own epoch (so a
 * restarted process, or a channel reclaimed and made again, never shares
 * a numbering with its past), its top offset and a bounded history ring,
 * kept in the channel itself (the local fields of struct sh__bus_chan).
 *
 * Publish takes the channel's lock once: assign top+1, build the data,
 * serialise the event (event.c), append it to the history and hand it to
 * the subscribers (sh__bus_push: one reference into each queue), so that
 * numbering and queueing are one step and a recovery window read under
 * the same lock (window) splices exactly with what is queued live.
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
 * A claim takes an offset now and publishes later: events are published
 * strictly in offset order, a later one waiting in the channel's pending
 * list until the claims before it are released.
 *
 * Invariants (the channel's fields are under its lock):
 *  1. top only grows.  An event enters the history and every live queue
 *     during one hold of the channel's lock, and only when its offset is
 *     top + 1 (else it waits in pend), so each queue holds offsets in
 *     increasing order.  base <= top <= claimed: offsets (top, claimed]
 *     are claimed, each either in pend (sorted, pcap >= claimed - top) or
 *     held by its claimer.  Offsets of this channel instance are
 *     base + 1 ... claimed.
 *  2. Every offset handed out is reserved: an own channel's claimed <=
 *     reserved once loaded; another channel's claimed <= floor_limit.
 *  3. History slot (hhead + i) % hcap for i < hlen holds one reference;
 *     offsets increase with i; hlen <= history_size; entries are at most
 *     history_ttl_ms old once trimmed.
 *  4. Lock order: the map's lock, a channel's lock, then mu (a leaf).
 *     floor_mu is taken with no channel lock held.
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
#define EPOCH_LEN SH__BUS_LOCAL_EPOCH_LEN


struct local {
    struct sh__bus *bus;        /* borrowed: the bus owns us */
    size_t history_size;
    int64_t history_ttl_ms;
    char epoch_prefix[2 * EPOCH_PREFIX_BYTES + 1];
    atomic_uint epoch_seq;
    /* Durable numbering (set_reserver); fn NULL for a bus without a
     * store, whose floor_limit is then UINT64_MAX.  Immutable once set,
     * before anything is published. */
    struct sh__bus_reserver res;
    pthread_mutex_t floor_mu;   /* one floor reservation at a time */
    _Atomic uint64_t floor_limit;
    pthread_mutex_t mu;
    uint64_t floor_base;        /* @locks mu: where a new channel starts */
};

/* ---- channels ------------------------------------------------------- */

static struct sh__bus_hent *hist_at(const struct sh__bus_chan *c, size_t i)
{
    return &c->hist[(c->hhead + i) % c->hcap];
}

/* @locks the map's lock */
static void lo_chan_init(void *be, struct sh__bus_chan *c)
{
    static const char hex[] = "0123456789abcdef";
    struct local *L = be;
    uint32_t seq = (uint32_t)atomic_fetch_add(&L->epoch_seq, 1);

    memcpy(c->epoch, L->epoch_prefix, 2 * EPOCH_PREFIX_BYTES);
    for (int i = 0; i < 8; i++)
        c->epoch[2 * EPOCH_PREFIX_BYTES + i] =
            hex[(seq >> (28 - 4 * i)) & 15];
    c->epoch[EPOCH_LEN] = '\0';
    c->own = sh__bus_own(L->bus, c->name);
    /* Another channel starts above everything its past instances handed
     * out (the floor covers other processes, floor_base this one); an
     * own channel learns where to start at its first reservation. */
    if (!c->own) {
        pthread_mutex_lock(&L->mu);
        c->top = c->claimed = c->base = L->floor_base;
        pthread_mutex_unlock(&L->mu);
    }
    c->block = 1;
}

static void lo_chan_fini(struct sh__bus_chan *c)
{
    for (size_t i = 0; i < c->hlen; i++)
        sh__event_unref(hist_at(c, i)->ev);
    for (size_t i = 0; i < c->npend; i++)
        sh__event_unref(c->pend[i].ev);
    free(c->hist);
    free(c->pend);
}

/* Drop history entries older than the TTL.  @locks c->lock */
static void hist_trim(const struct local *L, struct sh__bus_chan *c,
                      int64_t now)
{
    while (c->hlen > 0) {
        struct sh__bus_hent *h = hist_at(c, 0);
        if (now - h->mono_ms < L->history_ttl_ms)
            break;
        sh__event_unref(h->ev);
        h->ev = NULL;
        c->hhead = (c->hhead + 1) % c->hcap;
        c->hlen--;
    }
}

/* @locks c->lock */
static bool lo_chan_idle(void *be, struct sh__bus_chan *c, int64_t now)
{
    hist_trim(be, c, now);
    return c->hlen == 0;
}

/* Its successor continues above it (inv. 2).  @locks the map's lock */
static void lo_chan_gone(void *be, struct sh__bus_chan *c)
{
    struct local *L = be;

    pthread_mutex_lock(&L->mu);
    if (!c->own && c->claimed > L->floor_base)
        L->floor_base = c->claimed;
    pthread_mutex_unlock(&L->mu);
}

/* Append a reference to @ev, growing the ring up to history_size, else
 * evicting the oldest.  An allocation failure only shortens the history
 * (recovery then answers false), so it is not an error.  @locks c->lock */
static void hist_append(const struct local *L, struct sh__bus_chan *c,
                        struct sh_event *ev, int64_t now)
{
    if (L->history_size == 0)
        return;
    if (c->hlen == c->hcap && c->hcap < L->history_size) {
        /* Start small: a go-live's user: channels hold one event. */
        size_t cap = c->hcap < 2 ? 2 : c->hcap * 2;
        struct sh__bus_hent *h;
        if (cap > L->history_size)
            cap = L->history_size;
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
    *hist_at(c, c->hlen) = (struct sh__bus_hent){ sh__event_ref(ev), now };
    c->hlen++;
}

/* Index of the entry with @offset, or c->hlen when absent.  @locks c->lock */
static size_t hist_find(const struct sh__bus_chan *c, uint64_t offset)
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

/* Make @ev (numbered top + 1) the channel's newest event: history and
 * every live queue (inv. 1).  @locks c->lock */
static void chan_commit(struct local *L, struct sh__bus_chan *c,
                        struct sh_event *ev, int64_t now,
                        struct sh__bus_posts *posts)
{
    c->top = ev->offset;
    hist_trim(L, c, now);
    hist_append(L, c, ev, now);
    sh__bus_push(L->bus, c, ev, now, posts);
}

/* ---- durable numbering, claims and ordered release ------------------- */

/* Raise the floor to at least @need (one reservation at a time).  May wait
 * on the store: call with no channel lock held. */
static sh_err_t floor_extend(struct local *L, uint64_t need)
{
    sh_err_t rc = SH_OK;

    pthread_mutex_lock(&L->floor_mu);
    while (rc == SH_OK && atomic_load(&L->floor_limit) < need) {
        uint64_t upto = 0;

        rc = L->res.fn(L->res.arg, SH__BUS_FLOOR_KEY, SH__BUS_FLOOR_BLOCK,
                       &upto);
        if (rc == SH_OK && upto <= atomic_load(&L->floor_limit))
            rc = SH_EBUS;       /* the store went backwards */
        if (rc == SH_OK)
            atomic_store(&L->floor_limit, upto);
    }
    pthread_mutex_unlock(&L->floor_mu);
    return rc;
}

/* Reserve the next block of own channel @c, outside its lock (the store is
 * never waited on under a bus lock; others wait on c->cv).
 * @locks c->lock, held on entry and on return */
static sh_err_t own_reserve(struct local *L, struct sh__bus_chan *c)
{
    uint64_t n = c->block, upto = 0, first;
    sh_err_t rc;

    c->reserving = true;
    pthread_mutex_unlock(&c->lock);
    rc = L->res.fn(L->res.arg, c->name, n, &upto);
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
    if (c->block < L->res.block)
        c->block = c->block * 2 < L->res.block ? c->block * 2
                                               : L->res.block;
    return SH_OK;
}

/* Hand out @c's next offset (inv. 2: reserving first when needed, which
 * drops and retakes the lock) and make room in pend for its event, so that
 * releasing it cannot fail.  @locks c->lock */
static sh_err_t claim(struct local *L, struct sh__bus_chan *c, uint64_t *out)
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
            rc = own_reserve(L, c);
            if (rc != SH_OK)
                return rc;
            continue;
        }
        want = c->claimed + 1;
        if (want <= atomic_load(&L->floor_limit))
            break;
        pthread_mutex_unlock(&c->lock);
        rc = floor_extend(L, want);
        pthread_mutex_lock(&c->lock);
        if (rc != SH_OK)
            return rc;
    }
    if (c->claimed - c->top > c->pcap) {
        size_t cap = c->pcap < 4 ? 4 : c->pcap;
        struct sh__bus_pend *p;

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
 * offset order (inv. 1): when claims before it are still out it waits in
 * pend (taking a reference), else it and every waiting successor go out
 * now.  @locks c->lock */
static void release_locked(struct local *L, struct sh__bus_chan *c,
                           uint64_t offset, struct sh_event *ev, int64_t now,
                           struct sh__bus_posts *posts)
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
        chan_commit(L, c, ev, now, posts);
    else
        c->top = offset;
    while (c->npend > 0 && c->pend[0].offset == c->top + 1) {
        struct sh__bus_pend p = c->pend[0];

        c->npend--;
        memmove(c->pend, c->pend + 1, c->npend * sizeof *c->pend);
        if (p.ev != NULL)
            chan_commit(L, c, p.ev, now, posts);
        else
            c->top = p.offset;
        sh__event_unref(p.ev);
    }
}

/* The message of a failed publish or claim. */
static void explain(sh_err_t rc, const char *channel, char *errbuf,
                    size_t errbuf_len)
{
    if (rc == SH_ECANCELED)
        sh__errbuf(errbuf, errbuf_len, "bus: closing");
    else if (rc == SH_ENOMEM)
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    else if (rc == SH_EBUS)
        sh__errbuf(errbuf, errbuf_len, "bus: offsets of %s exhausted",
                   channel);
    else if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve offsets of %s "
                   "(%s)", channel, sh_err_name(rc));
}

/* ---- the backend (bus_be.h) ------------------------------------------- */

/* Publish the event @make makes with its offset: one hold of the
 * channel's lock from the claim to the queues (the hot path). */
struct make {
    const char *type;
    int64_t ts;
    const char *head, *tail;    /* text: head, then (splice) offset, tail */
    size_t head_len, tail_len;
    bool splice;
    sh__bus_build_fn build;     /* or data built with the offset */
    void *arg;
};

static sh_err_t publish_one(struct local *L, const char *channel,
                            const struct make *m, char *epoch,
                            uint64_t *offset_out, struct sh_event **ev_out,
                            char *errbuf, size_t errbuf_len)
{
    struct sh__bus_posts posts;
    struct sh_event *ev = NULL;
    struct sh__bus_chan *c;
    uint64_t offset = 0;
    sh_err_t rc;

    posts.n = 0;
    if (offset_out != NULL)
        *offset_out = 0;
    if (ev_out != NULL)
        *ev_out = NULL;
    c = sh__bus_chan_pin(L->bus, channel, true, &rc);
    if (c == NULL) {
        explain(rc, channel, errbuf, errbuf_len);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    rc = claim(L, c, &offset);
    if (rc == SH_OK) {
        int64_t ts = m->build != NULL ? sh__now_ms() : m->ts;

        if (m->build != NULL) {
            json_object *data = m->build(m->arg, offset, ts);

            ev = data != NULL ? sh__event_new(c->name, c->epoch, offset, ts,
                                              m->type, data)
                              : NULL;
        } else if (m->splice) {
            ev = sh__event_new_spliced(c->name, c->epoch, offset, ts,
                                       m->type, m->head, m->head_len,
                                       m->tail, m->tail_len);
        } else {
            ev = sh__event_new_text(c->name, c->epoch, offset, ts, m->type,
                                    m->head, m->head_len);
        }
        if (ev == NULL) {
            c->claimed--;       /* the lock was held since the claim */
            rc = SH_ENOMEM;
        } else {
            release_locked(L, c, offset, ev, sh__mono_ms(), &posts);
        }
    }
    pthread_mutex_unlock(&c->lock);
    sh__bus_posts_flush(L->bus, c, &posts);
    if (rc == SH_OK) {
        if (epoch != NULL)
            snprintf(epoch, SH_EPOCH_SIZE, "%s", c->epoch);
        if (offset_out != NULL)
            *offset_out = offset;
        if (ev_out != NULL) {
            *ev_out = ev;
            ev = NULL;
        }
    }
    explain(rc, channel, errbuf, errbuf_len);
    sh__event_unref(ev);
    sh__bus_chan_unpin(L->bus, c);
    return rc;
}

static sh_err_t lo_publish(void *be, const char *channel, const char *type,
                           int64_t ts_ms, const char *head, size_t head_len,
                           const char *tail, size_t tail_len, bool splice,
                           char *epoch, uint64_t *offset, char *errbuf,
                           size_t errbuf_len)
{
    struct make m = { type, ts_ms, head, tail, head_len, tail_len, splice,
                      NULL, NULL };

    return publish_one(be, channel, &m, epoch, offset, NULL, errbuf,
                       errbuf_len);
}

static sh_err_t lo_publish_build(void *be, const char *channel,
                                 const char *type, sh__bus_build_fn build,
                                 void *arg, uint64_t *offset_out,
                                 struct sh_event **ev_out, char *errbuf,
                                 size_t errbuf_len)
{
    struct make m = { type, 0, NULL, NULL, 0, 0, false, build, arg };

    return publish_one(be, channel, &m, NULL, offset_out, ev_out, errbuf,
                       errbuf_len);
}

/* The channels of a chunk are pinned under one hold of the map's lock
 * (a go-live publishes one event on each of many channels). */
static size_t lo_publish_many(void *be, const char *type,
                              const struct sh__bus_item *items, size_t n,
                              int64_t ts_ms, uint64_t *offsets, char *errbuf,
                              size_t errbuf_len)
{
    struct local *L = be;
    struct sh__bus_chan *pinned[256];
    struct sh__bus_posts posts;
    sh_err_t first = SH_OK;
    size_t done = 0;

    assert(n <= sizeof pinned / sizeof *pinned);
    posts.n = 0;
    sh__bus_chan_pin_items(L->bus, items, n, pinned, &first);
    for (size_t i = 0; i < n; i++) {
        struct sh__bus_chan *c = pinned[i];
        struct sh_event *ev = NULL;
        uint64_t off = 0;
        sh_err_t rc;

        offsets[i] = 0;
        if (c == NULL)
            continue;
        pthread_mutex_lock(&c->lock);
        rc = claim(L, c, &off);
        if (rc == SH_OK) {
            ev = sh__event_new_text(c->name, c->epoch, off, ts_ms, type,
                                    items[i].data, items[i].len);
            if (ev != NULL) {
                release_locked(L, c, off, ev, sh__mono_ms(), &posts);
                offsets[i] = off;
                done++;
            } else {
                c->claimed--;   /* not handed out: held the lock */
                rc = SH_ENOMEM;
            }
        }
        if (rc != SH_OK && first == SH_OK)
            first = rc;
        pthread_mutex_unlock(&c->lock);
        sh__bus_posts_flush(L->bus, c, &posts);
        sh__event_unref(ev);
        sh__bus_chan_unpin(L->bus, c);
    }
    if (first != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "%s", sh_err_name(first));
    return done;
}

static sh_err_t lo_claim(void *be, const char *channel, char *epoch,
                         uint64_t *offset, char *errbuf, size_t errbuf_len)
{
    struct local *L = be;
    struct sh__bus_chan *c;
    sh_err_t rc;

    c = sh__bus_chan_pin(L->bus, channel, true, &rc);
    if (c == NULL) {
        explain(rc, channel, errbuf, errbuf_len);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    rc = claim(L, c, offset);
    pthread_mutex_unlock(&c->lock);
    if (rc == SH_OK)
        snprintf(epoch, SH_EPOCH_SIZE, "%s", c->epoch);
    else
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve offsets of %s "
                   "(%s)", channel, sh_err_name(rc));
    sh__bus_chan_unpin(L->bus, c);
    return rc;
}

/* The claim pins the channel (bus.c), so it is found. */
static void lo_release(void *be, const char *channel, const char *epoch,
                       uint64_t offset, const struct sh_event *ev)
{
    struct local *L = be;
    struct sh__bus_posts posts;
    struct sh__bus_chan *c;
    sh_err_t rc;

    (void)epoch;
    posts.n = 0;
    c = sh__bus_chan_pin(L->bus, channel, false, &rc);
    if (c == NULL)
        return;                 /* closing: nobody listens any more */
    pthread_mutex_lock(&c->lock);
    release_locked(L, c, offset, (struct sh_event *)ev, sh__mono_ms(),
                   &posts);
    pthread_mutex_unlock(&c->lock);
    sh__bus_posts_flush(L->bus, c, &posts);
    sh__bus_chan_unpin(L->bus, c);
}

/* The position, and with @events the history after @since when it holds
 * every event after it.  Offset 0 means "before the first event" (bus.h),
 * and this epoch's first event is base + 1: an own channel reports 0
 * until its first reservation.  Any other offset below base was never
 * handed out in this epoch (a client guessing, or one taken in another
 * epoch): not recovered. */
static sh_err_t lo_window(void *be, const char *channel,
                          const sh_position_t *since, bool events,
                          struct sh__bus_window *w, char *errbuf,
                          size_t errbuf_len)
{
    struct local *L = be;
    struct sh__bus_chan *c;
    sh_err_t rc;

    memset(w, 0, sizeof *w);
    c = sh__bus_chan_pin(L->bus, channel, true, &rc);
    if (c == NULL) {
        explain(rc, channel, errbuf, errbuf_len);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    hist_trim(L, c, sh__mono_ms());
    snprintf(w->current.epoch, sizeof w->current.epoch, "%s", c->epoch);
    w->current.offset = c->top;
    if (events && since != NULL && since->epoch[0] != '\0' &&
        memchr(since->epoch, '\0', sizeof since->epoch) != NULL &&
        strcmp(since->epoch, c->epoch) == 0 && since->offset <= c->top) {
        uint64_t from = since->offset == 0 ? c->base : since->offset;

        if (from == c->top) {
            w->recovered = true;    /* nothing was missed */
        } else {
            size_t i = hist_find(c, from + 1), n = c->hlen - i;

            if (i < c->hlen) {
                w->evs = malloc(n * sizeof *w->evs);
                if (w->evs != NULL) {
                    for (; i < c->hlen; i++)
                        w->evs[w->n++] = sh__event_ref(hist_at(c, i)->ev);
                    w->recovered = true;
                }
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    sh__bus_chan_unpin(L->bus, c);
    return SH_OK;
}

static int lo_rewrite(void *be, const char *channel, sh__bus_rewrite_fn fn,
                      void *arg)
{
    struct local *L = be;
    struct sh__bus_chan *c;
    sh_err_t rc;
    int n = 0;

    c = sh__bus_chan_pin(L->bus, channel, false, &rc);
    if (c == NULL)
        return rc == SH_OK ? 0 : -(int)rc;
    pthread_mutex_lock(&c->lock);
    hist_trim(L, c, sh__mono_ms());
    for (size_t i = 0; i < c->hlen; i++) {
        struct sh__bus_hent *h = hist_at(c, i);
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
    sh__bus_chan_unpin(L->bus, c);
    return n;
}

static sh_err_t lo_set_reserver(void *be, const struct sh__bus_reserver *r,
                                char *errbuf, size_t errbuf_len)
{
    struct local *L = be;
    uint64_t upto = 0;
    sh_err_t rc;

    rc = r->fn(r->arg, SH__BUS_FLOOR_KEY, SH__BUS_FLOOR_BLOCK, &upto);
    if (rc == SH_OK && upto < SH__BUS_FLOOR_BLOCK)
        rc = SH_EBUS;
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "bus: cannot reserve the offset "
                   "floor (%s)", sh_err_name(rc));
        return rc;
    }
    L->res = *r;
    pthread_mutex_lock(&L->mu);
    /* Everything before this process stayed at or below the old floor. */
    if (L->floor_base < upto - SH__BUS_FLOOR_BLOCK)
        L->floor_base = upto - SH__BUS_FLOOR_BLOCK;
    pthread_mutex_unlock(&L->mu);
    atomic_store(&L->floor_limit, upto);
    return SH_OK;
}

/* What one channel gives back (lo_close()). */
struct unused {
    struct unused *next;
    uint64_t from, to;
    char key[];
};

struct giving {
    struct unused *list;
    uint64_t top;
};

/* Each channel's reservation is cut to what it handed out under its lock,
 * so that a publish racing the close reserves again rather than use an
 * offset given back.  @locks the map's lock */
static void give_one(void *arg, struct sh__bus_chan *c)
{
    struct giving *g = arg;

    pthread_mutex_lock(&c->lock);
    if (!c->own) {
        if (c->claimed > g->top)
            g->top = c->claimed;
    } else if (c->loaded && !c->reserving && c->claimed < c->reserved) {
        size_t len = strlen(c->name) + 1;
        struct unused *u = malloc(sizeof *u + len);

        if (u != NULL) {        /* else a gap: still no repeat */
            u->from = c->reserved;
            u->to = c->claimed;
            memcpy(u->key, c->name, len);
            u->next = g->list;
            g->list = u;
            c->reserved = c->claimed;
        }
    }
    pthread_mutex_unlock(&c->lock);
}

/* Give back the offsets reserved and not handed out (sh__bus_set_reserver)
 * at a clean close. */
static void lo_close(void *be)
{
    struct local *L = be;
    struct giving g = { NULL, 0 };
    uint64_t limit;

    if (L->res.giveback == NULL)
        return;
    pthread_mutex_lock(&L->mu);
    g.top = L->floor_base;
    pthread_mutex_unlock(&L->mu);
    sh__bus_each_chan(L->bus, give_one, &g);
    pthread_mutex_lock(&L->floor_mu);
    limit = atomic_load(&L->floor_limit);
    if (g.top < limit) {
        atomic_store(&L->floor_limit, g.top);
        L->res.giveback(L->res.arg, SH__BUS_FLOOR_KEY, limit, g.top);
    }
    pthread_mutex_unlock(&L->floor_mu);
    while (g.list != NULL) {
        struct unused *u = g.list;

        g.list = u->next;
        L->res.giveback(L->res.arg, u->key, u->from, u->to);
        free(u);
    }
}

static void lo_free(void *be)
{
    struct local *L = be;

    pthread_mutex_destroy(&L->mu);
    pthread_mutex_destroy(&L->floor_mu);
    free(L);
}

sh_err_t sh__bus_local_new(struct sh__bus *bus, const sh_config_t *conf,
                           void **out, char *errbuf, size_t errbuf_len)
{
    unsigned char rnd[EPOCH_PREFIX_BYTES];
    struct local *L;

    *out = NULL;
    if (sodium_init() < 0) {
        sh__errbuf(errbuf, errbuf_len, "bus: libsodium failed to start");
        return SH_EINTERNAL;
    }
    L = calloc(1, sizeof *L);
    if (L == NULL) {
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        return SH_ENOMEM;
    }
    L->bus = bus;
    L->history_size = (size_t)sh__config_int(conf, "bus.history-size");
    L->history_ttl_ms =
        sh__config_int(conf, "bus.history-ttl-seconds") * 1000;
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(L->epoch_prefix, sizeof L->epoch_prefix, rnd,
                   sizeof rnd);
    atomic_init(&L->epoch_seq, 0);
    atomic_init(&L->floor_limit, UINT64_MAX);   /* no store: no limit */
    pthread_mutex_init(&L->floor_mu, NULL);
    pthread_mutex_init(&L->mu, NULL);
    *out = L;
    return SH_OK;
}

const struct sh__bus_backend sh__bus_local_backend = {
    .name = "local",
    .cover_own = false,
    .free = lo_free,
    .publish = lo_publish,
    .publish_many = lo_publish_many,
    .claim = lo_claim,
    .release = lo_release,
    .window = lo_window,
    .rewrite = lo_rewrite,
    .publish_build = lo_publish_build,
    .set_reserver = lo_set_reserver,
    .close = lo_close,
    .chan_init = lo_chan_init,
    .chan_idle = lo_chan_idle,
    .chan_gone = lo_chan_gone,
    .chan_fini = lo_chan_fini,
};
