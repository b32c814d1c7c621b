/* libstreamhub/services/stats.c: per-stream statistics (streams.h,
 * sh_stream_stats_get) and the chat's hook (sh__stats_chat_accepted).
 *
 * messagesPerMinute is a property of this hub's recent past, not of the
 * store: each stream has a ring of 60 per-second counters (struct ring),
 * slot = second % 60, a slot being reset when a newer second reuses it.
 * The sum of the slots of the last 60 seconds is the rate.
 *
 * Totals (chatMessages, uniqueChatters) live in the store, so that every
 * node of a cluster and every restart agrees on them, but the hook runs on
 * the chat's hot path: it only counts in memory (the messages and the set
 * of authors since the last flush) and the calling thread flushes a
 * stream's batch with upserts once a second or every FLUSH_MAX messages,
 * outside the lock.  sh_stream_stats_get() and the hub's close flush
 * first, so what they read or leave behind is complete.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/streams.h"
#include "services_int.h"

#define SBUCKETS 1024u
#define RING 60
#define FLUSH_MAX 256
#define FLUSH_MS 1000

struct sh_stream_stats { json_object *obj; };

/* One stream's rate ring.  @locks sh__stats.mu
 * Invariant: sec[i] % RING == i for every slot with count[i] > 0. */
struct ring {
    struct ring *next;
    char id[SH__UUID_LEN + 1];
    int64_t sec[RING];
    int64_t count[RING];
    /* not yet in the store: */
    int64_t pending;                      /* messages */
    char (*authors)[SH__UUID_LEN + 1];    /* owned, nauthors distinct */
    size_t nauthors, cap;
    int64_t flushed_ms;                   /* monotonic, last flush */
};

/* A batch taken out of a ring for the store. */
struct batch {
    char id[SH__UUID_LEN + 1];
    int64_t pending;
    char (*authors)[SH__UUID_LEN + 1];
    size_t nauthors;
};

struct sh__stats {
    pthread_mutex_t mu;
    struct ring *b[SBUCKETS];
};

static const struct sh__sql q_msg = {
    "INSERT INTO stream_stats (stream_id, chat_messages) VALUES (?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET "
    "chat_messages = stream_stats.chat_messages + excluded.chat_messages",
    NULL, NULL
};
static const struct sh__sql q_chatter = {
    "INSERT INTO stream_chatters (stream_id, user_id) VALUES (?, ?) "
    "ON CONFLICT DO NOTHING", NULL, NULL
};
static const struct sh__sql q_unique = {
    "UPDATE stream_stats SET unique_chatters = unique_chatters + ? "
    "WHERE stream_id = ?", NULL, NULL
};
static const struct sh__sql q_get = {
    "SELECT s.peak_viewers, coalesce(t.chat_messages, 0), "
    "coalesce(t.unique_chatters, 0), coalesce(t.new_followers, 0) "
    "FROM streams s LEFT JOIN stream_stats t ON t.stream_id = s.id "
    "WHERE s.id = ?", NULL, NULL
};

static unsigned shash(const char *id)
{
    unsigned h = 2166136261u;

    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h & (SBUCKETS - 1);
}

static struct ring **sfind(struct sh__stats *st, const char *id)
{
    struct ring **pp = &st->b[shash(id)];

    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

sh_err_t sh__stats_new(struct sh__stats **out)
{
    struct sh__stats *st = calloc(1, sizeof *st);

    *out = NULL;
    if (st == NULL)
        return SH_ENOMEM;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return SH_ENOMEM;
    }
    *out = st;
    return SH_OK;
}

void sh__stats_free(struct sh__stats *st)
{
    if (st == NULL)
        return;
    for (size_t b = 0; b < SBUCKETS; b++) {
        struct ring *r = st->b[b];
        while (r != NULL) {
            struct ring *nx = r->next;
            free(r->authors);
            free(r);
            r = nx;
        }
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static void flush(sh_hub_t *hub, struct sh__stats *st,
                  const char *stream_id);

void sh__stats_forget(sh_hub_t *hub, const char *stream_id)
{
    struct sh__stats *st = sh__streams_stats(hub);
    struct ring **pp, *r;

    if (st == NULL || stream_id == NULL)
        return;
    flush(hub, st, stream_id);
    pthread_mutex_lock(&st->mu);
    pp = sfind(st, stream_id);
    r = *pp;
    if (r != NULL)
        *pp = r->next;
    pthread_mutex_unlock(&st->mu);
    if (r != NULL)
        free(r->authors);
    free(r);
}

/* Count one message; returns true when the stream's batch is due. */
static bool ring_add(struct sh__stats *st, const char *id,
                     const char *author, int64_t now_ms)
{
    int64_t sec = now_ms / 1000, mono = sh__mono_ms();
    size_t slot = (size_t)(sec % RING);
    struct ring **pp, *r;
    bool due = false, known = false;

    pthread_mutex_lock(&st->mu);
    pp = sfind(st, id);
    r = *pp;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r != NULL) {
            memcpy(r->id, id, SH__UUID_LEN + 1);
            r->flushed_ms = mono;
            *pp = r;
        }
    }
    if (r != NULL) {
        if (r->sec[slot] != sec) {
            r->sec[slot] = sec;
            r->count[slot] = 0;
        }
        r->count[slot]++;
        r->pending++;
        for (size_t i = 0; i < r->nauthors && !known; i++)
            known = strcmp(r->authors[i], author) == 0;
        if (!known && r->nauthors == r->cap) {
            size_t cap = r->cap != 0 ? r->cap * 2 : 8;
            void *a = realloc(r->authors, cap * sizeof *r->authors);
            if (a != NULL) {
                r->authors = a;
                r->cap = cap;
            }
        }
        if (!known && r->nauthors < r->cap)
            memcpy(r->authors[r->nauthors++], author, SH__UUID_LEN + 1);
        due = r->pending >= FLUSH_MAX || r->nauthors >= FLUSH_MAX ||
              mono - r->flushed_ms >= FLUSH_MS;
    }
    pthread_mutex_unlock(&st->mu);
    return due;
}

/* Take @r's batch (caller holds the lock). */
static void take(struct ring *r, struct batch *b)
{
    memcpy(b->id, r->id, SH__UUID_LEN + 1);
    b->pending = r->pending;
    b->authors = r->authors;
    b->nauthors = r->nauthors;
    r->pending = 0;
    r->authors = NULL;
    r->nauthors = r->cap = 0;
    r->flushed_ms = sh__mono_ms();
}

/* Store one batch: messages added, new chatters counted once. */
static void store_batch(sh_hub_t *hub, struct batch *b)
{
    char err[SH_ERRBUF_SIZE] = "";
    struct sh__conn *c;
    struct sh__val p[2];
    int64_t changes, fresh = 0;
    sh_err_t rc;

    if (b->pending == 0 && b->nauthors == 0)
        goto out;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        goto out;
    p[0] = sh__v_text(b->id);
    p[1] = sh__v_int(b->pending);
    rc = sh__store_begin(c, err, sizeof err);
    if (rc == SH_OK)
        rc = sh__store_exec(c, &q_msg, p, 2, NULL, NULL, NULL, err,
                            sizeof err);
    for (size_t i = 0; rc == SH_OK && i < b->nauthors; i++) {
        p[1] = sh__v_text(b->authors[i]);
        changes = 0;
        rc = sh__store_exec(c, &q_chatter, p, 2, NULL, NULL, &changes, err,
                            sizeof err);
        fresh += changes;
    }
    if (rc == SH_OK && fresh > 0) {
        struct sh__val u[2];

        u[0] = sh__v_int(fresh);
        u[1] = sh__v_text(b->id);
        rc = sh__store_exec(c, &q_unique, u, 2, NULL, NULL, NULL, err,
                            sizeof err);
    }
    if (rc == SH_OK)
        rc = sh__store_commit(c, err, sizeof err);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "chat statistics not stored",
                   "stream", b->id, "error", err, (char *)NULL);
out:
    free(b->authors);
    b->authors = NULL;
}

/* Flush @stream_id's batch, or every stream's when NULL. */
static void flush(sh_hub_t *hub, struct sh__stats *st, const char *stream_id)
{
    struct batch *bs = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&st->mu);
    for (size_t k = 0; k < SBUCKETS; k++) {
        for (struct ring *r = st->b[k]; r != NULL; r = r->next) {
            if (stream_id != NULL && strcmp(r->id, stream_id) != 0)
                continue;
            if (r->pending == 0 && r->nauthors == 0)
                continue;
            if (n == cap) {
                size_t nc = cap != 0 ? cap * 2 : 4;
                void *a = realloc(bs, nc * sizeof *bs);
                if (a == NULL)
                    goto done;
                bs = a;
                cap = nc;
            }
            take(r, &bs[n++]);
        }
    }
done:
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++)
        store_batch(hub, &bs[i]);
    free(bs);
}

void sh__stats_flush(sh_hub_t *hub)
{
    struct sh__stats *st = sh__streams_stats(hub);

    if (st != NULL)
        flush(hub, st, NULL);
}

static int64_t ring_rate(struct sh__stats *st, const char *id, int64_t now_ms)
{
    int64_t sec = now_ms / 1000, sum = 0;
    struct ring *r;

    if (st == NULL)
        return 0;
    pthread_mutex_lock(&st->mu);
    r = *sfind(st, id);
    for (size_t i = 0; r != NULL && i < RING; i++)
        if (r->sec[i] > sec - RING && r->sec[i] <= sec)
            sum += r->count[i];
    pthread_mutex_unlock(&st->mu);
    return sum;
}

void sh__stats_chat_accepted(sh_hub_t *hub, const char *stream_id,
                             const char *author_id, int64_t now_ms)
{
    struct sh__stats *st = sh__streams_stats(hub);

    if (st == NULL || !sh__uuid_valid(stream_id) ||
        !sh__uuid_valid(author_id))
        return;
    if (ring_add(st, stream_id, author_id, now_ms))
        flush(hub, st, stream_id);
}

struct get_ctx {
    bool found;
    int64_t v[4];
};

static int get_row(void *arg, const struct sh__row *row)
{
    struct get_ctx *x = arg;

    x->found = true;
    for (int i = 0; i < 4; i++)
        x->v[i] = sh__row_int(row, i);
    return 1;
}

SH_API sh_err_t sh_stream_stats_get(sh_hub_t *hub, const char *stream_id,
                                    sh_stream_stats_t **out, char *errbuf,
                                    size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct get_ctx x;
    struct sh__conn *c;
    struct sh__val p[1];
    json_object *o;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    memset(&x, 0, sizeof x);
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL)
        return SH_EINVAL;
    if (!sh__uuid_valid(stream_id)) {
        sh__errbuf(errbuf, errbuf_len, "no such stream");
        return SH_ENOTFOUND;
    }
    if (sh__streams_stats(hub) != NULL)
        flush(hub, sh__streams_stats(hub), stream_id);
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    p[0] = sh__v_text(stream_id);
    rc = sh__store_exec(c, &q_get, p, 1, get_row, &x, NULL, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    if (!x.found) {
        sh__errbuf(errbuf, errbuf_len, "no such stream");
        return SH_ENOTFOUND;
    }
    o = json_object_new_object();
    if (o == NULL || !sh__jset_int(o, "peakViewers", x.v[0]) ||
        !sh__jset_int(o, "chatMessages", x.v[1]) ||
        !sh__jset_int(o, "uniqueChatters", x.v[2]) ||
        !sh__jset_int(o, "newFollowers", x.v[3]) ||
        !sh__jset_int(o, "messagesPerMinute",
                      ring_rate(sh__streams_stats(hub), stream_id,
                                sh__now_ms()))) {
        json_object_put(o);
        return SH_ENOMEM;
    }
    *out = (sh_stream_stats_t *)(void *)sh__jh_new(o);
    return *out != NULL ? SH_OK : SH_ENOMEM;
}

SH_API int64_t sh_stream_stats_peak_viewers(const sh_stream_stats_t *st)
{
    return st != NULL ? sh__jint(st->obj, "peakViewers") : 0;
}

SH_API int64_t sh_stream_stats_chat_messages(const sh_stream_stats_t *st)
{
    return st != NULL ? sh__jint(st->obj, "chatMessages") : 0;
}

SH_API int64_t sh_stream_stats_unique_chatters(const sh_stream_stats_t *st)
{
    return st != NULL ? sh__jint(st->obj, "uniqueChatters") : 0;
}

SH_API int64_t sh_stream_stats_new_followers(const sh_stream_stats_t *st)
{
    return st != NULL ? sh__jint(st->obj, "newFollowers") : 0;
}

SH_API int64_t
sh_stream_stats_messages_per_minute(const sh_stream_stats_t *st)
{
    return st != NULL ? sh__jint(st->obj, "messagesPerMinute") : 0;
}

SH_API const char *sh_stream_stats_json(const sh_stream_stats_t *st,
                                        size_t *len)
{
    return sh__jtext(st != NULL ? st->obj : NULL, len);
}

SH_API void sh_stream_stats_free(sh_stream_stats_t *st)
{
    sh__jh_free((struct sh__jh *)(void *)st);
}
