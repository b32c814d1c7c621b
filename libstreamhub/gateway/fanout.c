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
 *     max_streams, is not counted: its stream_id is "").  The members
 *     that hold a stream id are on their connection's `watching` list
 *     from member_count() to member_uncount(), whichever protocol joined
 *     them, and that list alone says whether the connection still
 *     watches a stream (two graphql-ws operations on one stream, or a
 *     native chat: and stream: pair, count once).
 *  5. On a remote bus (sh__bus_remote) the loop never waits on it: a join
 *     that needs the bus subscribes on a worker (paused, so that no event
 *     precedes the answer) and completes on the loop (join_done), calling
 *     the member's sh__join_fn.  Until then the member is pending (not in
 *     any members list, presence not counted; a pending shared channel
 *     keeps its joiners in waiters), and leaving only marks it left:
 *     join_done frees it.
 *  4. The presence table holds an entry per stream counted or with a
 *     count not yet reported; an entry is on the dirty list iff dirty.
 *     Join and leave are O(1): a keyed hash (SipHash, a random key: the
 *     ids come from clients) and the dirty list, never a scan.
 *  6. Loops: each loop has its own sh__fanout (its channels, its bus
 *     subscriptions, delivered on that loop's dispatcher), so the bus
 *     hands each event once to each loop, and the event's frame is
 *     encoded once for all of them (event_frame: compare-and-swap).  The
 *     presence table is the gateway's, one for all loops (a viewer counts
 *     once whichever loop holds it), under its lock; loop 0 alone reports
 *     it (its tick).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
    bool pending;                  /* subscribing on a worker (inv. 5) */
    struct sh__member *waiters;    /* joined while pending, via next */
};

struct sh__member {
    struct sh__member *prev, *next; /* in chan->members */
    struct chan *chan;              /* NULL for an own subscription */
    struct sh_subscription *own;    /* own bus subscription, or NULL */
    struct sh__fanout *f;
    struct sh__conn *conn;          /* borrowed: leaves before conn dies */
    /* In conn->watching while it holds a presence key (invariant 3):
     * whatever protocol made it, native or graphql-ws. */
    struct sh__member *wprev, *wnext;
    bool watching;
    char *channel;
    /* Presence key: the id's place in channel (not a copy: a member is
     * kept per connection and channel, so its size counts), or "". */
    const char *stream_id;
    uint64_t last_offset;
    sh__member_fn fn;
    void *arg;
    bool left;
    bool pending;                   /* invariant 5 */
    sh__join_fn done;               /* answers a pending join */
    void *done_arg;
};

struct presence {
    struct presence *hnext;        /* hash chain */
    struct presence *dnext;        /* dirty list (invariant 4) */
    uint64_t h;
    int64_t count;
    bool dirty;
    char stream_id[SH_CHANNEL_MAX + 1];
};

/* The gateway's viewer counts, shared by its loops (invariant 6). */
struct sh__presence {
    pthread_mutex_t lock;
    struct presence *presence[PRESENCE_BUCKETS];   /* @locks lock */
    struct presence *dirty;        /* to report at the next tick; @locks */
    size_t npresence;              /* entries in the table; @locks lock */
    size_t max_streams;
    unsigned char pkey[crypto_shorthash_KEYBYTES];
    struct sh_gateway *gw;
};

struct sh__fanout {
    struct sh_gateway *gw;
    struct sh__loop *loop;         /* the loop whose channels these are */
    struct chan *table[NBUCKETS];
    struct sh__presence *pr;       /* the gateway's (invariant 6) */
    size_t max_per_conn;
    struct event *tick;            /* loop 0: one second: flush counts */
    unsigned epoch;                /* sh__cluster_epoch() last seen */
    bool flushing;                 /* a flush job is on a worker */
    /* Set while members get the last event of the bus's batch (no more
     * queued behind it): sh__ws_send_event writes it at once, with
     * whatever waits before it, instead of at the end of the loop turn,
     * so that the first subscriber's write does not wait for the last
     * subscriber's append, and several waiting events still leave in
     * one writev. */
    bool batch_end;
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

static uint64_t presence_hash(const struct sh__presence *f, const char *id)
{
    unsigned char hb[crypto_shorthash_BYTES];
    uint64_t h;

    crypto_shorthash(hb, (const unsigned char *)id, strlen(id), f->pkey);
    memcpy(&h, hb, sizeof h);
    return h;
}

/* @locks f->lock */
static struct presence **presence_slot(struct sh__presence *f, uint64_t h,
                                       const char *id)
{
    struct presence **pp = &f->presence[h % PRESENCE_BUCKETS];

    while (*pp != NULL &&
           ((*pp)->h != h || strcmp((*pp)->stream_id, id) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

/* @locks f->lock */
static void presence_remove(struct sh__presence *f, struct presence *p)
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
    struct sh__presence *pr = f->pr;
    struct flush_job *j;
    size_t n = 0, i = 0;

    (void)fd;
    (void)what;
    /* Submit even with nothing dirty: the streams service coalesces
     * stream.viewers to one per second per stream, and a value it held
     * back goes out only at a later sh_stream_flush_viewers(). */
    if (f->flushing)
        return;
    pthread_mutex_lock(&pr->lock);
    /* In a cluster, this node's counts in redis may be gone (it was
     * reaped, or a write failed): report every stream again. */
    if (sh__cluster_epoch(f->gw->hub) != f->epoch) {
        f->epoch = sh__cluster_epoch(f->gw->hub);
        for (size_t b = 0; b < PRESENCE_BUCKETS; b++) {
            for (struct presence *p = pr->presence[b]; p != NULL;
                 p = p->hnext) {
                if (!p->dirty) {
                    p->dirty = true;
                    p->dnext = pr->dirty;
                    pr->dirty = p;
                }
            }
        }
    }
    for (struct presence *p = pr->dirty; p != NULL; p = p->dnext)
        n++;
    j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->f = f;
        j->ids = calloc(n + 1, sizeof *j->ids);
        j->counts = calloc(n + 1, sizeof *j->counts);
    }
    if (j == NULL || j->ids == NULL || j->counts == NULL) {
        pthread_mutex_unlock(&pr->lock);
        if (j != NULL)
            flush_done(j, true);
        return;
    }
    /* Drop zero-count streams from the table once reported. */
    while (pr->dirty != NULL) {
        struct presence *p = pr->dirty;
        pr->dirty = p->dnext;
        p->dnext = NULL;
        p->dirty = false;
        j->ids[i] = strdup(p->stream_id);
        j->counts[i] = p->count;
        if (j->ids[i] != NULL)
            i++;
        if (p->count == 0)
            presence_remove(pr, p);
    }
    pthread_mutex_unlock(&pr->lock);
    j->n = i;
    f->flushing = true;
    if (sh__workers_submit(f->loop->workers, flush_work, flush_done, j) !=
        SH_OK) {
        f->flushing = false;
        flush_done(j, true);
    }
}

/* Count @delta viewers for @stream_id.  False when a new entry cannot be
 * made (the table is at MAX_PRESENCE, or out of memory): not counted. */
static bool presence_add(struct sh__fanout *ff, const char *stream_id,
                         int delta)
{
    struct sh__presence *f = ff->pr;
    uint64_t h = presence_hash(f, stream_id);
    struct presence **pp, *p;

    pthread_mutex_lock(&f->lock);
    pp = presence_slot(f, h, stream_id);
    p = *pp;
    if (p == NULL) {
        if (delta < 0 || f->npresence >= f->max_streams ||
            (p = calloc(1, sizeof *p)) == NULL) {
            pthread_mutex_unlock(&f->lock);
            return delta < 0;
        }
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
    pthread_mutex_unlock(&f->lock);
    return true;
}

/* Does @c hold another membership for @stream_id than @except? */
static bool conn_watches(struct sh__conn *c, const char *stream_id,
                         const struct sh__member *except);
/* Stop counting @m (invariant 3); a no-op when it is not counted. */
static void member_uncount(struct sh__member *m);

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
        struct sh__span sp;
        /* The consumer's span of a traced publish: joins its trace. */
        sh__span_start_linked(ch->f->gw->hub->otel, &sp, "deliver",
                              SH__SPAN_CONSUMER, e->traceparent);
        sh__span_attr_str(&sp, "messaging.operation", "deliver");
        sh__span_attr_str(&sp, "messaging.destination.name", e->channel);
        sh__span_attr_str(&sp, "streamhub.event.type", e->type);
        ch->top = e->offset;
        memcpy(ch->epoch, e->epoch, sizeof ch->epoch);
        ch->f->batch_end = sh__bus_sub_batch_left(ch->sub) == 0;
        for (struct sh__member *m = ch->members, *next; m != NULL;
             m = next) {
            next = m->next;
            if (e->offset <= m->last_offset)
                continue;           /* invariant 2 */
            m->last_offset = e->offset;
            m->fn(m->arg, e);
        }
        ch->f->batch_end = false;
        sh__loop_flush_counts(ch->f->loop);
        sh__span_end(&sp);
        return;
    }
    if (ch->dead) {                 /* our own unsubscribe: invariant 1 */
        chan_free(ch);
        return;
    }
    if (status == SH_EBUSY && sh__bus_remote(ch->f->gw->hub->bus)) {
        /* Resubscribing would wait on Redis here (invariant 5): the
         * members' clients resume from their positions instead. */
        status = SH_EBUS;
    } else if (status == SH_EBUSY) {
        /* The loop fell behind the bus: resubscribe from the last event
         * delivered, so that the history fills the gap. */
        sh_position_t since;
        sh_subscribe_result_t res;
        memcpy(since.epoch, ch->epoch, sizeof since.epoch);
        since.offset = ch->top;
        if (sh__bus_subscribe_on(ch->f->gw->hub->bus,
                                 ch->f->loop->dispatch, ch->name, &since,
                                 chan_event, ch, &ch->sub, &res, NULL,
                                 0) == SH_OK)
            return;
    }
    /* The hub is closing (or the resubscription failed): tell members. */
    chan_unlink(ch);
    while (ch->members != NULL) {
        struct sh__member *m = ch->members;
        ch->members = m->next;
        member_uncount(m);
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
            m->f->batch_end = m->own != NULL &&
                              sh__bus_sub_batch_left(m->own) == 0;
            m->fn(m->arg, ev);
            m->f->batch_end = false;
            sh__loop_flush_counts(m->f->loop);
        }
        return;
    }
    if (!m->left) {
        struct sh__conn *conn = m->conn;

        member_uncount(m);
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
    for (struct sh__member *m = c->watching; m != NULL; m = m->wnext) {
        if (m != except && strcmp(m->stream_id, stream_id) == 0)
            return true;
    }
    return false;
}

static void member_uncount(struct sh__member *m)
{
    struct sh__conn *c = m->conn;

    if (!m->watching)
        return;
    if (m->wprev != NULL)
        m->wprev->wnext = m->wnext;
    else
        c->watching = m->wnext;
    if (m->wnext != NULL)
        m->wnext->wprev = m->wprev;
    m->watching = false;
    if (!conn_watches(c, m->stream_id, NULL)) {
        presence_add(m->f, m->stream_id, -1);
        c->npresence--;
    }
}

const char *sh__member_stream(const struct sh__member *m)
{
    return m->stream_id;
}

/* Count @m's presence now that it is in (invariant 3). */
static void member_count(struct sh__member *m, struct sh__conn *c)
{
    struct sh__fanout *f = m->f;

    if (m->stream_id[0] != '\0' && !conn_watches(c, m->stream_id, m)) {
        if (c->npresence < f->max_per_conn &&
            presence_add(f, m->stream_id, +1))
            c->npresence++;
        else
            m->stream_id = "";      /* not counted (invariant 3) */
    }
    if (m->stream_id[0] != '\0') {
        m->wprev = NULL;
        m->wnext = c->watching;
        if (c->watching != NULL)
            c->watching->wprev = m;
        c->watching = m;
        m->watching = true;
    }
}

static void chan_add(struct chan *ch, struct sh__member *m)
{
    m->chan = ch;
    m->prev = NULL;
    m->next = ch->members;
    if (ch->members != NULL)
        ch->members->prev = m;
    ch->members = m;
    ch->nmembers++;
}

/* A join on a worker (invariant 5): @m's own subscription, or @ch's. */
struct join_job {
    struct sh__fanout *f;
    struct sh__member *m;          /* own subscription; else NULL */
    struct chan *ch;               /* shared subscription; else NULL */
    char *channel;
    sh_position_t since;
    bool has_since;
    struct sh_subscription *sub;   /* paused until join_done */
    sh_subscribe_result_t res;
    sh_err_t rc;
    char err[SH_ERRBUF_SIZE];
};

static void join_work(void *arg)
{
    struct join_job *j = arg;

    if (j->m != NULL)
        j->rc = sh__bus_subscribe_paused_on(
            j->f->gw->hub->bus, j->f->loop->dispatch, j->channel,
            j->has_since ? &j->since : NULL, own_event, j->m, &j->sub,
            &j->res, j->err, sizeof j->err);
    else
        j->rc = sh__bus_subscribe_paused_on(
            j->f->gw->hub->bus, j->f->loop->dispatch, j->channel, NULL,
            chan_event, j->ch, &j->sub, &j->res, j->err, sizeof j->err);
}

/* Tell a pending member that its join failed and free it. */
static void member_fail(struct sh__member *m, sh_err_t rc, const char *err)
{
    if (!m->left)
        m->done(m->done_arg, rc, NULL, err);
    member_free(m);
}

static void join_own_done(struct join_job *j, bool canceled)
{
    struct sh__member *m = j->m;
    sh_subscribe_result_t r = j->res;

    m->pending = false;
    if (j->rc != SH_OK) {
        member_fail(m, j->rc, j->err);
        return;
    }
    if (m->left || canceled) {
        if (!m->left)
            m->done(m->done_arg, SH_ECANCELED, NULL, "closing");
        m->left = true;
        sh__bus_sub_resume(j->sub);
        sh__bus_unsubscribe(j->sub);    /* own_event's final frees m */
        return;
    }
    m->own = j->sub;
    m->last_offset = r.recovered ? j->since.offset : r.current.offset;
    member_count(m, m->conn);
    m->done(m->done_arg, SH_OK, &r, NULL);
    sh__bus_sub_resume(j->sub);         /* events after the answer */
}

static void join_chan_done(struct join_job *j, bool canceled)
{
    struct chan *ch = j->ch;
    struct sh__member *w = ch->waiters;
    sh_subscribe_result_t r;

    ch->pending = false;
    ch->waiters = NULL;
    if (j->rc != SH_OK || canceled) {
        sh_err_t rc = j->rc != SH_OK ? j->rc : SH_ECANCELED;

        chan_unlink(ch);
        while (w != NULL) {
            struct sh__member *m = w;

            w = m->next;
            m->pending = false;
            member_fail(m, rc, j->rc != SH_OK ? j->err : "closing");
        }
        if (j->sub == NULL) {
            chan_free(ch);
        } else {
            sh__bus_sub_resume(j->sub);
            sh__bus_unsubscribe(j->sub);    /* final cb frees ch */
        }
        return;
    }
    ch->sub = j->sub;
    ch->top = j->res.current.offset;
    memcpy(ch->epoch, j->res.current.epoch, sizeof ch->epoch);
    memset(&r, 0, sizeof r);
    r.current = j->res.current;
    while (w != NULL) {
        struct sh__member *m = w;

        w = m->next;
        m->pending = false;
        if (m->left) {
            member_free(m);
            continue;
        }
        m->last_offset = r.current.offset;
        chan_add(ch, m);
        member_count(m, m->conn);
        m->done(m->done_arg, SH_OK, &r, NULL);
    }
    if (ch->nmembers == 0)
        chan_unlink(ch);
    sh__bus_sub_resume(ch->sub);
    if (ch->nmembers == 0)
        sh__bus_unsubscribe(ch->sub);   /* final cb frees ch */
}

static void join_done(void *arg, bool canceled)
{
    struct join_job *j = arg;

    if (j->m != NULL)
        join_own_done(j, canceled);
    else
        join_chan_done(j, canceled);
    free(j->channel);
    free(j);
}

/* Subscribe for @m (own) or @ch on a worker.  Errors: SH_ENOMEM,
 * SH_ECANCELED. */
static sh_err_t join_submit(struct sh__fanout *f, struct sh__member *m,
                            struct chan *ch, const char *channel,
                            const sh_position_t *since)
{
    struct join_job *j = calloc(1, sizeof *j);
    sh_err_t rc;

    if (j == NULL || (j->channel = strdup(channel)) == NULL) {
        free(j);
        return SH_ENOMEM;
    }
    j->f = f;
    j->m = m;
    j->ch = ch;
    j->rc = SH_ECANCELED;           /* unless join_work runs */
    snprintf(j->err, sizeof j->err, "closing");
    if (since != NULL) {
        j->since = *since;
        j->has_since = true;
    }
    rc = sh__workers_submit(f->loop->workers, join_work, join_done, j);
    if (rc != SH_OK) {
        free(j->channel);
        free(j);
    }
    return rc;
}

sh_err_t sh__fanout_join(struct sh__fanout *f, struct sh__conn *c,
                         const char *channel, const sh_position_t *since,
                         sh__member_fn fn, void *arg, sh__join_fn done,
                         void *done_arg, struct sh__member **out,
                         sh_subscribe_result_t *res, bool *later,
                         char *errbuf, size_t errbuf_len)
{
    bool remote = sh__bus_remote(f->gw->hub->bus);
    struct sh__member *m;
    struct chan *ch;
    const char *sid;
    sh_err_t rc;

    *out = NULL;
    *later = false;
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
    m->done = done;
    m->done_arg = done_arg;
    sid = stream_of(m->channel);
    m->stream_id = sid != NULL && sh__uuid_valid(sid) ? sid : "";
    if (since != NULL && since->epoch[0] != '\0') {
        if (remote) {
            rc = join_submit(f, m, NULL, channel, since);
            if (rc != SH_OK) {
                member_free(m);
                return rc;
            }
            m->pending = true;
            *later = true;
            *out = m;
            return SH_OK;
        }
        rc = sh__bus_subscribe_on(f->gw->hub->bus, f->loop->dispatch,
                                  channel, since, own_event, m, &m->own, res,
                                  errbuf, errbuf_len);
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
            if (remote) {
                rc = join_submit(f, NULL, ch, channel, NULL);
                if (rc != SH_OK) {
                    chan_free(ch);
                    member_free(m);
                    return rc;
                }
                ch->pending = true;
            } else {
                rc = sh__bus_subscribe_on(f->gw->hub->bus,
                                          f->loop->dispatch, channel, NULL,
                                          chan_event, ch, &ch->sub, res,
                                          errbuf, errbuf_len);
                if (rc != SH_OK) {
                    chan_free(ch);
                    member_free(m);
                    return rc;
                }
                ch->top = res->current.offset;
                memcpy(ch->epoch, res->current.epoch, sizeof ch->epoch);
            }
            uint32_t b = hash(channel) % NBUCKETS;
            ch->hnext = f->table[b];
            f->table[b] = ch;
        } else if (remote && !ch->pending) {
            /* The last event this loop took from the channel: the member
             * gets every later one, and asking Redis would wait on it. */
            memset(res, 0, sizeof *res);
            memcpy(res->current.epoch, ch->epoch, sizeof ch->epoch);
            res->current.offset = ch->top;
        } else if (!remote) {
            rc = sh__bus_position(f->gw->hub->bus, channel, &res->current);
            if (rc != SH_OK) {
                sh__errbuf(errbuf, errbuf_len, "bus: cannot read the "
                           "channel's position (%s)", sh_strerror(rc));
                member_free(m);
                return rc;
            }
            res->recovered = 0;
        }
        if (ch->pending) {
            m->pending = true;
            m->next = ch->waiters;
            ch->waiters = m;
            *later = true;
            *out = m;
            return SH_OK;
        }
        /* Events up to the position answered are not this member's
         * (invariant 2), even if still queued towards the chan. */
        m->last_offset = res->current.offset;
        chan_add(ch, m);
    }
    member_count(m, c);
    *out = m;
    return SH_OK;
}

void sh__fanout_leave(struct sh__member *m)
{
    struct chan *ch;

    if (m == NULL)
        return;
    if (m->pending) {
        m->left = true;             /* join_done frees it (invariant 5) */
        return;
    }
    member_uncount(m);
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

sh_err_t sh__fanout_new(struct sh__loop *l, struct sh__fanout **out)
{
    struct sh_gateway *gw = l->gw;
    struct sh__fanout *f = calloc(1, sizeof *f);
    struct timeval one = { 1, 0 };

    *out = NULL;
    if (f == NULL)
        return SH_ENOMEM;
    f->gw = gw;
    f->loop = l;
    f->pr = gw->presence;
    f->max_per_conn = (size_t)sh__config_int(
        gw->hub->conf, "presence.max-streams-per-connection");
    if (l->index > 0) {            /* loop 0 reports (invariant 6) */
        *out = f;
        return SH_OK;
    }
    f->tick = event_new(l->base, -1, EV_PERSIST, tick_cb, f);
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
    if (f->tick != NULL)
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
    free(f);
}

sh_err_t sh__presence_new(struct sh_gateway *gw, struct sh__presence **out)
{
    struct sh__presence *pr = calloc(1, sizeof *pr);

    *out = NULL;
    if (pr == NULL)
        return SH_ENOMEM;
    pthread_mutex_init(&pr->lock, NULL);
    pr->gw = gw;
    pr->max_streams =
        (size_t)sh__config_int(gw->hub->conf, "presence.max-streams");
    randombytes_buf(pr->pkey, sizeof pr->pkey);
    *out = pr;
    return SH_OK;
}

void sh__presence_free(struct sh__presence *pr)
{
    if (pr == NULL)
        return;
    for (size_t b = 0; b < PRESENCE_BUCKETS; b++) {
        while (pr->presence[b] != NULL)
            presence_remove(pr, pr->presence[b]);
    }
    pthread_mutex_destroy(&pr->lock);
    free(pr);
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
    if (!atomic_compare_exchange_strong(&e->wire, &cur, fr)) {
        sh__ws_frame_unref(fr);     /* another loop won; use its frame */
        return cur;
    }
    /* Only the winner writes it, once; it is read when the event dies,
     * after the last loop has let go of the event. */
    e->wire_free = frame_free;
    return fr;
}

/* Append @ev's shared frame to @c's output, by reference; at the end of
 * the bus's batch (batch_end) write it at once: straight from the shared
 * frame with one send() when nothing waits before it (no chain, no
 * queueing for the end of the turn), else with everything waiting, in one
 * writev (sh__ws_write_out).  What the socket does not take waits in the
 * output for the end-of-turn flush, which also handles write errors. */
bool sh__ws_send_event(struct sh__conn *c, const struct sh_event *ev)
{
    struct sh_gateway *gw = c->gw;
    struct sh__ws_frame *fr;
    struct evbuffer *out;
    size_t sent = 0;

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
    c->loop->fanout_unflushed++;    /* metrics: added once per event */
    if (c->loop->fanout->batch_end && c->direct &&
        evbuffer_get_length(out) == 0) {
        ssize_t w = send(bufferevent_getfd(c->bev), fr->bytes, fr->len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w == (ssize_t)fr->len)
            return true;
        if (w > 0)
            sent = (size_t)w;       /* the rest waits, a whole chain */
    }
    sh__ws_frame_ref(fr);
    if (evbuffer_add_reference(out, fr->bytes + sent, fr->len - sent,
                               frame_cleanup, fr) != 0) {
        sh__ws_frame_unref(fr);
        return true;
    }
    if (c->loop->fanout->batch_end && c->direct && sent == 0)
        sh__ws_write_out(c);
    return true;
}
