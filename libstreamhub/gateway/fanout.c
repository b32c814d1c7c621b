/* libstreamhub/gateway/fanout.c: events from the bus to local sockets.
 *
 * DESIGN.md: "the bus handing each event once to each loop's queue".  The
 * gateway holds ONE bus subscription per channel (struct chan) and keeps
 * its members (struct sh__member, one per connection and channel) in a
 * list; an event is encoded once into a WebSocket frame (cached on the
 * event, `wire`) and the same bytes are appended by reference to every
 * member's output buffer.  A member that asks to recover from a position
 * gets its own bus subscription, which replays exactly what it missed and
 * then stays its source of events (no gap, no duplicate by construction).
 *
 * Invariants (@locality loop thread):
 *  1. A chan is in the table iff it has at least one member; its bus
 *     subscription is ended when the last member leaves, and the chan is
 *     freed by that subscription's final callback.
 *  2. A member receives an event at most once: offsets it delivers only
 *     increase (last_offset guards the shared path against events that
 *     were queued before it joined).
 *  3. Presence: a connection counts once for a stream while it is a member
 *     of that stream's `chat:` or `stream:` channel, for at most
 *     max_per_conn streams (a member past it, or past the node's
 *     max_streams, is not counted: its stream_id is "").
 *  4. The presence table holds an entry per stream counted or with a
 *     count not yet reported; an entry is on the dirty list iff dirty.
 *     Join and leave are O(1): a keyed hash (SipHash, a random key: the
 *     ids come from clients) and the dirty list, never a scan.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bus/bus_int.h"
#include "streamhub/streams.h"
#include "gw.h"

#define NBUCKETS 4096u
/* Presence is keyed by a stream id that clients choose (chat:<id>): only
 * UUIDs count, and the table (presence.max-streams) and each connection's
 * share (presence.max-streams-per-connection) are bounded. */
#define PRESENCE_BUCKETS 4096u

struct chan {
    struct chan *hnext;            /* hash chain */
    char *name;
    struct sh_subscription *sub;   /* shared bus subscription */
    struct sh__member *members;    /* doubly linked */
    size_t nmembers;
    uint64_t top;                  /* last offset delivered */
    char epoch[SH_EPOCH_SIZE];
    struct sh__fanout *f;
    bool dead;                     /* left the table, awaiting final cb */
};

struct sh__member {
    struct sh__member *prev, *next; /* in chan->members */
    struct chan *chan;              /* NULL for an own subscription */
    struct sh_subscription *own;    /* own bus subscription, or NULL */
    struct sh__fanout *f;
    struct sh__conn *conn;          /* borrowed: leaves before conn dies */
    char *channel;
    char stream_id[SH_CHANNEL_MAX + 1]; /* presence key, "" if none */
    uint64_t last_offset;
    sh__member_fn fn;
    void *arg;
    bool left;
};

struct presence {
    struct presence *hnext;        /* hash chain */
    struct presence *dnext;        /* dirty list (invariant 4) */
    uint64_t h;
    int64_t count;
    bool dirty;
    char stream_id[SH_CHANNEL_MAX + 1];
};

struct sh__fanout {
    struct sh_gateway *gw;
    struct chan *table[NBUCKETS];
    struct presence *presence[PRESENCE_BUCKETS];
    struct presence *dirty;        /* entries to report at the next tick */
    size_t npresence;              /* entries in the table */
    size_t max_streams, max_per_conn;
    unsigned char pkey[crypto_shorthash_KEYBYTES];
    struct event *tick;            /* one second: flush viewer counts */
    unsigned epoch;                /* sh__cluster_epoch() last seen */
    bool flushing;                 /* a flush job is on a worker */
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

/* ---- presence ---------------------------------------------------- */

struct flush_job {
    struct sh__fanout *f;
    size_t n;
    char **ids;
    int64_t *counts;
};

static void flush_work(void *arg)
{
    struct flush_job *j = arg;
    sh_hub_t *hub = j->f->gw->hub;

    for (size_t i = 0; i < j->n; i++)
        (void)sh_stream_set_viewers(hub, j->ids[i], j->counts[i], NULL, 0);
    (void)sh_stream_flush_viewers(hub);
}

static void flush_done(void *arg, bool canceled)
{
    struct flush_job *j = arg;

    if (!canceled)
        j->f->flushing = false;
    for (size_t i = 0; i < j->n; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->counts);
    free(j);
}

static uint64_t presence_hash(const struct sh__fanout *f, const char *id)
{
    unsigned char hb[crypto_shorthash_BYTES];
    uint64_t h;

    crypto_shorthash(hb, (const unsigned char *)id, strlen(id), f->pkey);
    memcpy(&h, hb, sizeof h);
    return h;
}

static struct presence **presence_slot(struct sh__fanout *f, uint64_t h,
                                       const char *id)
{
    struct presence **pp = &f->presence[h % PRESENCE_BUCKETS];

    while (*pp != NULL &&
           ((*pp)->h != h || strcmp((*pp)->stream_id, id) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void presence_remove(struct sh__fanout *f, struct presence *p)
{
    struct presence **pp = presence_slot(f, p->h, p->stream_id);

    *pp = p->hnext;
    f->npresence--;
    sh__series_add(f->gw->s_presence, -1);
    free(p);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sh__fanout *f = arg;
    struct flush_job *j;
    size_t n = 0, i = 0;

    (void)fd;
    (void)what;
    /* Submit even with nothing dirty: the streams service coalesces
     * stream.viewers to one per second per stream, and a value it held
     * back goes out only at a later sh_stream_flush_viewers(). */
    if (f->flushing)
        return;
    /* In a cluster, this node's counts in redis may be gone (it was
     * reaped, or a write failed): report every stream again. */
    if (sh__cluster_epoch(f->gw->hub) != f->epoch) {
        f->epoch = sh__cluster_epoch(f->gw->hub);
        for (size_t b = 0; b < PRESENCE_BUCKETS; b++) {
            for (struct presence *p = f->presence[b]; p != NULL;
                 p = p->hnext) {
                if (!p->dirty) {
                    p->dirty = true;
                    p->dnext = f->dirty;
                    f->dirty = p;
                }
            }
        }
    }
    for (struct presence *p = f->dirty; p != NULL; p = p->dnext)
        n++;
    j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->f = f;
    j->ids = calloc(n + 1, sizeof *j->ids);
    j->counts = calloc(n + 1, sizeof *j->counts);
    if (j->ids == NULL || j->counts == NULL) {
        flush_done(j, true);
        return;
    }
    /* Drop zero-count streams from the table once reported. */
    while (f->dirty != NULL) {
        struct presence *p = f->dirty;
        f->dirty = p->dnext;
        p->dnext = NULL;
        p->dirty = false;
        j->ids[i] = strdup(p->stream_id);
        j->counts[i] = p->count;
        if (j->ids[i] != NULL)
            i++;
        if (p->count == 0)
            presence_remove(f, p);
    }
    j->n = i;
    f->flushing = true;
    if (sh__workers_submit(f->gw->workers, flush_work, flush_done, j) !=
        SH_OK) {
        f->flushing = false;
        flush_done(j, true);
    }
}

/* Count @delta viewers for @stream_id.  False when a new entry cannot be
 * made (the table is at MAX_PRESENCE, or out of memory): not counted. */
static bool presence_add(struct sh__fanout *f, const char *stream_id,
                         int delta)
{
    uint64_t h = presence_hash(f, stream_id);
    struct presence **pp = presence_slot(f, h, stream_id), *p = *pp;

    if (p == NULL) {
        if (delta < 0)
            return true;
        if (f->npresence >= f->max_streams)
            return false;
        p = calloc(1, sizeof *p);
        if (p == NULL)
            return false;
        p->h = h;
        snprintf(p->stream_id, sizeof p->stream_id, "%s", stream_id);
        *pp = p;
        f->npresence++;
        sh__series_add(f->gw->s_presence, 1);
    }
    p->count += delta;
    if (p->count < 0)
        p->count = 0;
    if (!p->dirty) {
        p->dirty = true;
        p->dnext = f->dirty;
        f->dirty = p;
    }
    return true;
}

/* Does @c hold another membership for @stream_id than @except? */
static bool conn_watches(struct sh__conn *c, const char *stream_id,
                         const struct sh__member *except);

/* ---- members ----------------------------------------------------- */

static struct chan *chan_find(struct sh__fanout *f, const char *name)
{
    for (struct chan *ch = f->table[hash(name) % NBUCKETS]; ch != NULL;
         ch = ch->hnext) {
        if (strcmp(ch->name, name) == 0)
            return ch;
    }
    return NULL;
}

static void chan_unlink(struct chan *ch)
{
    struct chan **pp = &ch->f->table[hash(ch->name) % NBUCKETS];

    while (*pp != NULL && *pp != ch)
        pp = &(*pp)->hnext;
    if (*pp == ch)
        *pp = ch->hnext;
    ch->dead = true;
}

static void chan_free(struct chan *ch)
{
    free(ch->name);
    free(ch);
}

static void member_free(struct sh__member *m)
{
    free(m->channel);
    free(m);
}

/* The bus lost events of a channel (bus = redis: Redis went away): close
 * the member's connection with 1001, so that its client reconnects and
 * resumes from its last position, and learns whether its gap is
 * recoverable, rather than wait for events that will not come. */
static void bus_lost(struct sh__conn *c, sh_err_t status)
{
    if (status == SH_EBUS)
        sh__ws_close(c, SH__WS_CLOSE_GOING_AWAY, "bus lost: resume");
}

static void chan_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct chan *ch = arg;

    if (status == SH_OK) {
        const struct sh_event *e = ev;
        ch->top = e->offset;
        memcpy(ch->epoch, e->epoch, sizeof ch->epoch);
        for (struct sh__member *m = ch->members, *next; m != NULL;
             m = next) {
            next = m->next;
            if (e->offset <= m->last_offset)
                continue;           /* invariant 2 */
            m->last_offset = e->offset;
            m->fn(m->arg, e);
        }
        sh__gw_flush_counts(ch->f->gw);
        return;
    }
    if (ch->dead) {                 /* our own unsubscribe: invariant 1 */
        chan_free(ch);
        return;
    }
    if (status == SH_EBUSY) {
        /* The loop fell behind the bus: resubscribe from the last event
         * delivered, so that the history fills the gap. */
        sh_position_t since;
        sh_subscribe_result_t res;
        memcpy(since.epoch, ch->epoch, sizeof since.epoch);
        since.offset = ch->top;
        if (sh__bus_subscribe(ch->f->gw->hub->bus, ch->name, &since,
                              chan_event, ch, &ch->sub, &res, NULL,
                              0) == SH_OK)
            return;
    }
    /* The hub is closing (or the resubscription failed): tell members. */
    chan_unlink(ch);
    while (ch->members != NULL) {
        struct sh__member *m = ch->members;
        ch->members = m->next;
        if (m->stream_id[0] != '\0' &&
            !conn_watches(m->conn, m->stream_id, m)) {
            presence_add(m->f, m->stream_id, -1);
            m->conn->npresence--;
        }
        struct sh__conn *conn = m->conn;
        m->chan = NULL;
        m->left = true;
        /* The member's owner drops it on NULL (as after own_event's
         * final): freed here, or nobody would. */
        m->fn(m->arg, NULL);
        member_free(m);
        bus_lost(conn, status);
    }
    chan_free(ch);
}

static void own_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct sh__member *m = arg;

    if (status == SH_OK) {
        if (!m->left && ev->offset > m->last_offset) {
            m->last_offset = ev->offset;
            m->fn(m->arg, ev);
            sh__gw_flush_counts(m->f->gw);
        }
        return;
    }
    if (!m->left) {
        struct sh__conn *conn = m->conn;

        m->left = true;
        m->own = NULL;
        m->fn(m->arg, NULL);
        member_free(m);             /* the final callback owns the end */
        bus_lost(conn, status);
        return;
    }
    member_free(m);                 /* the final callback owns the end */
}

static const char *stream_of(const char *channel)
{
    if (strncmp(channel, "chat:", 5) == 0)
        return channel + 5;
    if (strncmp(channel, "stream:", 7) == 0)
        return channel + 7;
    return NULL;
}

static bool conn_watches(struct sh__conn *c, const char *stream_id,
                         const struct sh__member *except)
{
    return sh__ws_member_watches(c, stream_id, except);
}

const char *sh__member_stream(const struct sh__member *m)
{
    return m->stream_id;
}

sh_err_t sh__fanout_join(struct sh__fanout *f, struct sh__conn *c,
                         const char *channel, const sh_position_t *since,
                         sh__member_fn fn, void *arg,
                         struct sh__member **out, sh_subscribe_result_t *res,
                         char *errbuf, size_t errbuf_len)
{
    struct sh__member *m;
    struct chan *ch;
    const char *sid;
    sh_err_t rc;

    *out = NULL;
    rc = sh__channel_check(channel, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    m = calloc(1, sizeof *m);
    if (m == NULL || (m->channel = strdup(channel)) == NULL) {
        free(m);
        return SH_ENOMEM;
    }
    m->f = f;
    m->conn = c;
    m->fn = fn;
    m->arg = arg;
    sid = stream_of(channel);
    if (sid != NULL && sh__uuid_valid(sid))
        snprintf(m->stream_id, sizeof m->stream_id, "%s", sid);
    if (since != NULL && since->epoch[0] != '\0') {
        rc = sh__bus_subscribe(f->gw->hub->bus, channel, since, own_event, m,
                               &m->own, res, errbuf, errbuf_len);
        if (rc != SH_OK) {
            member_free(m);
            return rc;
        }
        /* Replayed events start after @since; duplicates are impossible
         * on an own subscription, so last_offset starts at since. */
        m->last_offset = res->recovered ? since->offset
                                        : res->current.offset;
    } else {
        ch = chan_find(f, channel);
        if (ch == NULL) {
            ch = calloc(1, sizeof *ch);
            if (ch == NULL || (ch->name = strdup(channel)) == NULL) {
                free(ch);
                member_free(m);
                return SH_ENOMEM;
            }
            ch->f = f;
            rc = sh__bus_subscribe(f->gw->hub->bus, channel, NULL,
                                   chan_event, ch, &ch->sub, res, errbuf,
                                   errbuf_len);
            if (rc != SH_OK) {
                chan_free(ch);
                member_free(m);
                return rc;
            }
            ch->top = res->current.offset;
            memcpy(ch->epoch, res->current.epoch, sizeof ch->epoch);
            uint32_t b = hash(channel) % NBUCKETS;
            ch->hnext = f->table[b];
            f->table[b] = ch;
        } else {
            rc = sh__bus_position(f->gw->hub->bus, channel, &res->current);
            if (rc != SH_OK) {
                sh__errbuf(errbuf, errbuf_len, "bus: cannot read the "
                           "channel's position (%s)", sh_strerror(rc));
                member_free(m);
                return rc;
            }
            res->recovered = 0;
        }
        /* Events up to the position answered are not this member's
         * (invariant 2), even if still queued towards the chan. */
        m->last_offset = res->current.offset;
        m->chan = ch;
        m->next = ch->members;
        if (ch->members != NULL)
            ch->members->prev = m;
        ch->members = m;
        ch->nmembers++;
    }
    if (m->stream_id[0] != '\0' && !conn_watches(c, m->stream_id, NULL)) {
        if (c->npresence < f->max_per_conn &&
            presence_add(f, m->stream_id, +1))
            c->npresence++;
        else
            m->stream_id[0] = '\0';  /* not counted (invariant 3) */
    }
    *out = m;
    return SH_OK;
}

void sh__fanout_leave(struct sh__member *m)
{
    struct chan *ch;

    if (m == NULL)
        return;
    if (m->stream_id[0] != '\0' && !m->left &&
        !conn_watches(m->conn, m->stream_id, m)) {
        presence_add(m->f, m->stream_id, -1);
        m->conn->npresence--;
    }
    if (m->own != NULL) {
        struct sh_subscription *own = m->own;
        m->left = true;
        m->own = NULL;
        sh__bus_unsubscribe(own);   /* own_event's final frees m */
        return;
    }
    ch = m->chan;
    if (ch != NULL) {
        if (m->prev != NULL)
            m->prev->next = m->next;
        else
            ch->members = m->next;
        if (m->next != NULL)
            m->next->prev = m->prev;
        if (--ch->nmembers == 0) {
            chan_unlink(ch);
            sh__bus_unsubscribe(ch->sub);   /* final cb frees ch */
        }
    }
    member_free(m);
}

sh_err_t sh__fanout_new(struct sh_gateway *gw, struct sh__fanout **out)
{
    struct sh__fanout *f = calloc(1, sizeof *f);
    struct timeval one = { 1, 0 };

    *out = NULL;
    if (f == NULL)
        return SH_ENOMEM;
    f->gw = gw;
    f->max_streams =
        (size_t)sh__config_int(gw->hub->conf, "presence.max-streams");
    f->max_per_conn = (size_t)sh__config_int(
        gw->hub->conf, "presence.max-streams-per-connection");
    randombytes_buf(f->pkey, sizeof f->pkey);
    f->tick = event_new(gw->base, -1, EV_PERSIST, tick_cb, f);
    if (f->tick == NULL || event_add(f->tick, &one) != 0) {
        if (f->tick != NULL)
            event_free(f->tick);
        free(f);
        return SH_ENOMEM;
    }
    *out = f;
    return SH_OK;
}

void sh__fanout_free(struct sh__fanout *f)
{
    if (f == NULL)
        return;
    event_free(f->tick);
    /* Members left with their connections (sh_gateway_free closes them
     * first); chans still here await their final callbacks, which run
     * when the hub's dispatcher runs: detach them from us. */
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (f->table[b] != NULL) {
            struct chan *ch = f->table[b];
            f->table[b] = ch->hnext;
            ch->dead = true;
            sh__bus_unsubscribe(ch->sub);
        }
    }
    for (size_t b = 0; b < PRESENCE_BUCKETS; b++) {
        while (f->presence[b] != NULL)
            presence_remove(f, f->presence[b]);
    }
    free(f);
}

/* ---- the shared frame -------------------------------------------- */

static void frame_free(void *p)
{
    sh__ws_frame_unref(p);
}

static void frame_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    sh__ws_frame_unref(arg);
}

/* The event's text frame, encoded on first use and cached on the event. */
static struct sh__ws_frame *event_frame(const struct sh_event *ev)
{
    struct sh_event *e = (struct sh_event *)ev;
    void *cur = atomic_load(&e->wire);
    struct sh__ws_frame *fr;

    if (cur != NULL)
        return cur;
    fr = sh__ws_frame_new(SH__WS_OP_TEXT, e->json, e->json_len);
    if (fr == NULL)
        return NULL;
    e->wire_free = frame_free;
    if (!atomic_compare_exchange_strong(&e->wire, &cur, fr)) {
        sh__ws_frame_unref(fr);     /* another loop won; use its frame */
        return cur;
    }
    return fr;
}

bool sh__ws_send_event(struct sh__conn *c, const struct sh_event *ev)
{
    struct sh_gateway *gw = c->gw;
    struct sh__ws_frame *fr;
    struct evbuffer *out;

    if (c->state != SH__CONN_WS || c->closing || c->bev == NULL)
        return false;
    out = bufferevent_get_output(c->bev);
    if (sh__conn_out_over(c)) {
        sh__series_add(gw->s_slow_dropped, 1);
        sh__ws_close(c, SH__WS_CLOSE_TOO_SLOW, "too slow");
        return false;
    }
    fr = event_frame(ev);
    if (fr == NULL)
        return true;
    sh__ws_frame_ref(fr);
    if (evbuffer_add_reference(out, fr->bytes, fr->len, frame_cleanup, fr) !=
        0) {
        sh__ws_frame_unref(fr);
        return true;
    }
    gw->fanout_unflushed++;         /* metrics: added once per event */
    return true;
}
