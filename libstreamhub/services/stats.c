/* libstreamhub/services/stats.c: per-stream statistics (streams.h,
 * sh_stream_stats_get) and the chat's hook (sh__stats_chat_accepted).
 *
 * messagesPerMinute is a property of this hub's recent past, not of the
 * store: each stream has a ring of 60 per-second counters (struct ring),
 * slot = second % 60, a slot being reset when a newer second reuses it.
 * The sum of the slots of the last 60 seconds is the rate.  Totals
 * (chatMessages, uniqueChatters) are persisted at once with upserts, so
 * that every node of a cluster and every restart agrees on them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/streams.h"
#include "services_int.h"

#define SBUCKETS 1024u
#define RING 60

struct sh_stream_stats { json_object *obj; };

/* One stream's rate ring.  @locks sh__stats.mu
 * Invariant: sec[i] % RING == i for every slot with count[i] > 0. */
struct ring {
    struct ring *next;
    char id[SH__UUID_LEN + 1];
    int64_t sec[RING];
    int64_t count[RING];
};

struct sh__stats {
    pthread_mutex_t mu;
    struct ring *b[SBUCKETS];
};

static const struct sh__sql q_msg = {
    "INSERT INTO stream_stats (stream_id, chat_messages) VALUES (?, 1) "
    "ON CONFLICT (stream_id) DO UPDATE SET "
    "chat_messages = stream_stats.chat_messages + 1", NULL, NULL
};
static const struct sh__sql q_chatter = {
    "INSERT INTO stream_chatters (stream_id, user_id) VALUES (?, ?) "
    "ON CONFLICT DO NOTHING", NULL, NULL
};
static const struct sh__sql q_unique = {
    "UPDATE stream_stats SET unique_chatters = unique_chatters + 1 "
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
            free(r);
            r = nx;
        }
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

void sh__stats_forget(struct sh__stats *st, const char *stream_id)
{
    struct ring **pp, *r;

    if (st == NULL || stream_id == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    pp = sfind(st, stream_id);
    r = *pp;
    if (r != NULL)
        *pp = r->next;
    pthread_mutex_unlock(&st->mu);
    free(r);
}

static void ring_add(struct sh__stats *st, const char *id, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    size_t slot = (size_t)(sec % RING);
    struct ring **pp, *r;

    pthread_mutex_lock(&st->mu);
    pp = sfind(st, id);
    r = *pp;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r != NULL) {
            memcpy(r->id, id, SH__UUID_LEN + 1);
            *pp = r;
        }
    }
    if (r != NULL) {
        if (r->sec[slot] != sec) {
            r->sec[slot] = sec;
            r->count[slot] = 0;
        }
        r->count[slot]++;
    }
    pthread_mutex_unlock(&st->mu);
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
    char err[SH_ERRBUF_SIZE] = "";
    struct sh__stats *st = sh__streams_stats(hub);
    struct sh__conn *c;
    struct sh__val p[2];
    int64_t changes = 0;
    sh_err_t rc;

    if (st == NULL || !sh__uuid_valid(stream_id) ||
        !sh__uuid_valid(author_id))
        return;
    ring_add(st, stream_id, now_ms);
    if (sh__store_acquire(hub->store, &c) != SH_OK)
        return;
    p[0] = sh__v_text(stream_id);
    p[1] = sh__v_text(author_id);
    rc = sh__store_begin(c, err, sizeof err);
    if (rc == SH_OK)
        rc = sh__store_exec(c, &q_msg, p, 1, NULL, NULL, NULL, err,
                            sizeof err);
    if (rc == SH_OK)
        rc = sh__store_exec(c, &q_chatter, p, 2, NULL, NULL, &changes, err,
                            sizeof err);
    if (rc == SH_OK && changes > 0)
        rc = sh__store_exec(c, &q_unique, p, 1, NULL, NULL, NULL, err,
                            sizeof err);
    if (rc == SH_OK)
        rc = sh__store_commit(c, err, sizeof err);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "chat statistics not stored",
                   "stream", stream_id, "error", err, (char *)NULL);
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
