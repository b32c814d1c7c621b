/* libstreamhub/services/moderation.c: bans, timeouts, moderators and chat
 * settings (moderation.h), and the in-memory moderation cache that
 * sh_chat_send() reads (chat_int.h).
 *
 * Every change is written to the store first; only once it committed is the
 * cache changed (under sh__chat.mu, bumping gen) and the event published,
 * so the cache never holds what the store does not.  A channel's state is
 * loaded once, at its first use; a load that raced a change (gen moved
 * while it read) is thrown away and read again.  Changes are serialised
 * by sh__chat.mod_mu from the store write to the cache update (and a
 * settings patch from its read of the current settings on), so that two
 * changes at once leave the cache as they left the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_int.h"

/* ---- the id map --------------------------------------------------------- */

static size_t idhash(const char *key)
{
    size_t h = 1469598103934665603ull & (size_t)-1;

    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * (size_t)1099511628211ull;
    return h;
}

struct sh__idmap_ent *sh__idmap_get(const struct sh__idmap *m,
                                    const char *key)
{
    struct sh__idmap_ent *e;

    if (m->nb == 0)
        return NULL;
    for (e = m->b[idhash(key) & (m->nb - 1)]; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static bool idmap_grow(struct sh__idmap *m)
{
    size_t nb = m->nb == 0 ? 16 : m->nb * 2;
    struct sh__idmap_ent **b = calloc(nb, sizeof *b);

    if (b == NULL)
        return false;
    for (size_t i = 0; i < m->nb; i++) {
        struct sh__idmap_ent *e = m->b[i], *next;

        for (; e != NULL; e = next) {
            size_t k = idhash(e->key) & (nb - 1);

            next = e->next;
            e->next = b[k];
            b[k] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return true;
}

static void lru_unlink(struct sh__idmap_ent *e)
{
    struct sh__lru *l = e->map->lru;

    if (l == NULL)
        return;
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        l->head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        l->tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
    l->n--;
    if (l->gauge != NULL)
        sh__series_add(l->gauge, -1);
}

static void lru_link(struct sh__idmap_ent *e)
{
    struct sh__lru *l = e->map->lru;

    if (l == NULL)
        return;
    e->lru_prev = NULL;
    e->lru_next = l->head;
    if (l->head != NULL)
        l->head->lru_prev = e;
    l->head = e;
    if (l->tail == NULL)
        l->tail = e;
    l->n++;
    if (l->gauge != NULL)
        sh__series_add(l->gauge, 1);
}

void sh__idmap_touch(struct sh__idmap_ent *e)
{
    if (e->map->lru == NULL || e->map->lru->head == e)
        return;
    lru_unlink(e);
    lru_link(e);
}

bool sh__lru_room(struct sh__lru *l,
                  bool (*may_evict)(const struct sh__idmap_ent *, void *),
                  void *arg)
{
    struct sh__idmap_ent *e = l->tail, *prev;

    for (int i = 0; l->n >= l->cap && e != NULL && i < SH__LRU_SCAN;
         i++, e = prev) {
        prev = e->lru_prev;
        if (may_evict == NULL || may_evict(e, arg))
            free(sh__idmap_del(e->map, e->key));
    }
    return l->n < l->cap;
}

struct sh__idmap_ent *sh__idmap_put(struct sh__idmap *m, const char *key)
{
    struct sh__idmap_ent *e = sh__idmap_get(m, key);
    size_t k, klen;

    if (e != NULL)
        return e;
    klen = strlen(key);
    if (klen >= SH__ID_SIZE)
        return NULL;
    if (m->n >= m->nb && !idmap_grow(m))
        return NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, klen + 1);
    e->map = m;
    k = idhash(key) & (m->nb - 1);
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
    lru_link(e);
    return e;
}

void *sh__idmap_del(struct sh__idmap *m, const char *key)
{
    struct sh__idmap_ent **pp, *e;
    void *ptr;

    if (m->nb == 0)
        return NULL;
    for (pp = &m->b[idhash(key) & (m->nb - 1)]; (e = *pp) != NULL;
         pp = &e->next) {
        if (strcmp(e->key, key) == 0) {
            *pp = e->next;
            lru_unlink(e);
            ptr = e->ptr;
            free(e);
            m->n--;
            return ptr;
        }
    }
    return NULL;
}

void sh__idmap_clear(struct sh__idmap *m, void (*free_ptr)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        struct sh__idmap_ent *e = m->b[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            lru_unlink(e);
            if (free_ptr != NULL && e->ptr != NULL)
                free_ptr(e->ptr);
            free(e);
        }
    }
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

/* ---- channel state -------------------------------------------------------- */

static void terms_clear(struct sh__chan *ch)
{
    for (size_t i = 0; i < ch->nterms; i++)
        free(ch->folded[i]);
    free(ch->folded);
    free(ch->folded_len);
    if (ch->terms != NULL)
        json_object_put(ch->terms);
    ch->folded = NULL;
    ch->folded_len = NULL;
    ch->terms = NULL;
    ch->nterms = 0;
}

void sh__chan_free(void *p)
{
    struct sh__chan *ch = p;

    if (ch == NULL)
        return;
    terms_clear(ch);
    sh__idmap_clear(&ch->bans, NULL);
    sh__idmap_clear(&ch->timeouts, NULL);
    sh__idmap_clear(&ch->mods, NULL);
    sh__idmap_clear(&ch->last_send, NULL);
    sh__idmap_clear(&ch->followers, NULL);
    free(ch);
}

/* Install @terms (a JSON array of strings, taken) with folded copies. */
static sh_err_t terms_set(struct sh__chan *ch, json_object *terms)
{
    size_t n = json_object_array_length(terms), i;
    char **folded = calloc(n + 1, sizeof *folded);
    size_t *flen = calloc(n + 1, sizeof *flen);

    if (folded == NULL || flen == NULL)
        goto nomem;
    for (i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(terms, i);
        const char *s = json_object_get_string(t);
        size_t len = (size_t)json_object_get_string_len(t);

        if (sh__chat_fold(s, len, &folded[i], &flen[i]) != SH_OK)
            goto nomem;
    }
    terms_clear(ch);
    ch->terms = terms;
    ch->folded = folded;
    ch->folded_len = flen;
    ch->nterms = n;
    return SH_OK;
nomem:
    if (folded != NULL)
        for (i = 0; i < n; i++)
            free(folded[i]);
    free(folded);
    free(flen);
    json_object_put(terms);
    return SH_ENOMEM;
}

static const struct sh__sql q_settings = {
    "SELECT slow_mode_seconds, followers_only, max_message_length, "
    "blocked_terms FROM chat_settings WHERE channel_id = ?", NULL, NULL
};
static const struct sh__sql q_bans = {
    "SELECT user_id FROM bans WHERE channel_id = ?", NULL, NULL
};
static const struct sh__sql q_timeouts = {
    "SELECT user_id, until FROM timeouts WHERE channel_id = ? AND until > ?",
    NULL, NULL
};
static const struct sh__sql q_mods = {
    "SELECT user_id FROM moderators WHERE channel_id = ?", NULL, NULL
};

struct load_ctx {
    struct sh__chan *ch;
    struct sh__idmap *map;
    int valcol;            /* the column of val, or -1 for 1 */
    bool nomem;
    bool bad;
};

static int settings_row(void *arg, const struct sh__row *row)
{
    struct load_ctx *lc = arg;
    const char *terms_text = sh__row_text(row, 3, NULL);
    json_object *terms;

    lc->ch->slow_mode_s = sh__row_int(row, 0);
    lc->ch->followers_only = sh__row_int(row, 1) != 0;
    lc->ch->max_len = sh__row_int(row, 2);
    terms = terms_text != NULL ? json_tokener_parse(terms_text) : NULL;
    if (terms == NULL || !json_object_is_type(terms, json_type_array)) {
        if (terms != NULL)
            json_object_put(terms);
        lc->bad = true;
        terms = json_object_new_array();
        if (terms == NULL) {
            lc->nomem = true;
            return 1;
        }
    }
    if (terms_set(lc->ch, terms) != SH_OK)
        lc->nomem = true;
    return 0;
}

static int id_row(void *arg, const struct sh__row *row)
{
    struct load_ctx *lc = arg;
    const char *id = sh__row_text(row, 0, NULL);
    struct sh__idmap_ent *e;

    if (id == NULL)
        return 0;
    e = sh__idmap_put(lc->map, id);
    if (e == NULL) {
        lc->nomem = true;
        return 1;
    }
    e->val = lc->valcol >= 0 ? sh__row_int(row, lc->valcol) : 1;
    return 0;
}

static sh_err_t chan_load(sh_hub_t *hub, const char *channel,
                          struct sh__chan **out, char *errbuf,
                          size_t errbuf_len)
{
    struct sh__chan *ch;
    struct sh__conn *c = NULL;
    struct load_ctx lc;
    struct sh__val p[2];
    sh_err_t rc;

    *out = NULL;
    ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return SH_ENOMEM;
    memcpy(ch->id, channel, strlen(channel) + 1);
    ch->last_send.lru = &hub->chat->lru_authors;
    ch->last_send.owner = ch;
    ch->followers.lru = &hub->chat->lru_followers;
    ch->followers.owner = ch;
    ch->max_len = hub->chat->default_max_len;
    ch->terms = json_object_new_array();
    if (ch->terms == NULL) {
        free(ch);
        return SH_ENOMEM;
    }
    memset(&lc, 0, sizeof lc);
    lc.ch = ch;
    lc.valcol = -1;
    p[0] = sh__v_text(channel);
    p[1] = sh__v_int(sh__now_ms());
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        goto out;
    rc = sh__store_exec(c, &q_settings, p, 1, settings_row, &lc, NULL,
                        errbuf, errbuf_len);
    if (rc == SH_OK && !lc.nomem) {
        lc.map = &ch->bans;
        rc = sh__store_exec(c, &q_bans, p, 1, id_row, &lc, NULL, errbuf,
                            errbuf_len);
    }
    if (rc == SH_OK && !lc.nomem) {
        lc.map = &ch->timeouts;
        lc.valcol = 1;
        rc = sh__store_exec(c, &q_timeouts, p, 2, id_row, &lc, NULL,
                            errbuf, errbuf_len);
    }
    if (rc == SH_OK && !lc.nomem) {
        lc.map = &ch->mods;
        lc.valcol = -1;
        rc = sh__store_exec(c, &q_mods, p, 1, id_row, &lc, NULL, errbuf,
                            errbuf_len);
    }
    sh__store_release(c);
    if (rc == SH_OK && lc.nomem)
        rc = SH_ENOMEM;
    if (lc.bad)
        sh__log_kv(&hub->log, SH_LOG_WARN,
                   "chat settings hold bad blocked terms; ignored",
                   "channel", channel, (char *)NULL);
out:
    if (rc != SH_OK) {
        sh__chan_free(ch);
        return rc;
    }
    *out = ch;
    return SH_OK;
}

sh_err_t sh__chan_lock(sh_hub_t *hub, const char *channel,
                       struct sh__chan **out)
{
    struct sh__chat *chat = hub->chat;

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        struct sh__idmap_ent *e;
        struct sh__chan *ch;
        uint64_t gen;
        sh_err_t rc;

        pthread_mutex_lock(&chat->mu);
        e = sh__idmap_get(&chat->chans, channel);
        if (e != NULL) {
            *out = e->ptr;
            return SH_OK;                    /* mu held */
        }
        gen = chat->gen;
        pthread_mutex_unlock(&chat->mu);

        rc = chan_load(hub, channel, &ch, NULL, 0);
        if (rc != SH_OK)
            return rc;
        pthread_mutex_lock(&chat->mu);
        e = sh__idmap_get(&chat->chans, channel);
        if (e != NULL) {                     /* another thread won */
            sh__chan_free(ch);
            *out = e->ptr;
            return SH_OK;
        }
        if (chat->gen == gen || attempt >= 8) {
            e = sh__idmap_put(&chat->chans, channel);
            if (e == NULL) {
                pthread_mutex_unlock(&chat->mu);
                sh__chan_free(ch);
                return SH_ENOMEM;
            }
            e->ptr = ch;
            *out = ch;
            return SH_OK;
        }
        pthread_mutex_unlock(&chat->mu);     /* raced a change: reload */
        sh__chan_free(ch);
    }
}

/* Drop @channel from the cache (it is read again at next use) without
 * freeing it: a sender may still hold its pointer.  Retired channels are
 * freed by sh__chat_fini().  Only on allocation failure.  @locks mu held. */
static void chan_retire(struct sh__chat *chat, const char *channel)
{
    struct sh__chan *ch = sh__idmap_del(&chat->chans, channel);

    if (ch != NULL) {
        ch->retired_next = chat->retired;
        chat->retired = ch;
    }
}

void sh__chan_drain(struct sh__chat *chat, struct sh__chan *chan)
{
    unsigned old = chan->phase;

    chan->phase ^= 1u;
    while (chan->inflight[old] > 0)
        pthread_cond_wait(&chat->drained, &chat->mu);
}

bool sh__chan_is_staff(const struct sh__chan *chan, const char *actor,
                       unsigned roles)
{
    return strcmp(chan->id, actor) == 0 ||
           (roles & SH__ROLE_ADMIN) != 0 ||
           sh__idmap_get(&chan->mods, actor) != NULL;
}

void sh__chat_follow_changed(sh_hub_t *hub, const char *follower_id,
                             const char *followed_id, bool following)
{
    struct sh__chat *chat;
    struct sh__idmap_ent *e;

    if (hub == NULL || hub->chat == NULL || follower_id == NULL ||
        followed_id == NULL)
        return;
    chat = hub->chat;
    /* Forget, never set: a follow and an unfollow of one pair that race
     * commit in one order and may call here in the other, so the value a
     * caller brings can be stale.  The next check reads the store, and the
     * gen bump keeps a read that started before this commit from being
     * installed. */
    (void)following;
    pthread_mutex_lock(&chat->mu);
    chat->gen++;
    e = sh__idmap_get(&chat->chans, followed_id);
    if (e != NULL)
        (void)sh__idmap_del(&((struct sh__chan *)e->ptr)->followers,
                            follower_id);
    pthread_mutex_unlock(&chat->mu);
}

/* ---- the public calls ------------------------------------------------------ */

struct sh_chat_settings {
    json_object *obj;       /* the ChatSettings JSON (struct sh__jh) */
};

static json_object *terms_copy(json_object *a);

/* The ChatSettings JSON of @ch (a new object, sharing nothing with @ch:
 * it leaves the lock for other threads, and json-c's reference counts are
 * not atomic).  @locks mu held. */
static json_object *settings_obj(const struct sh__chan *ch)
{
    json_object *o = json_object_new_object(), *terms;

    if (o == NULL)
        return NULL;
    terms = terms_copy(ch->terms);
    if (terms == NULL ||
        !sh__jset_int(o, "slowModeSeconds", ch->slow_mode_s) ||
        !sh__jset_bool(o, "followersOnly", ch->followers_only) ||
        !sh__jset_int(o, "maxMessageLength", ch->max_len) ||
        !sh__jset(o, "blockedTerms", terms)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static sh_err_t settings_wrap(json_object *o, sh_chat_settings_t **out)
{
    struct sh__jh *h;

    if (out == NULL) {
        json_object_put(o);
        return SH_OK;
    }
    h = sh__jh_new(o);
    if (h == NULL)
        return SH_ENOMEM;
    *out = (sh_chat_settings_t *)h;
    return SH_OK;
}

static const struct sh__sql q_live_stream = {
    "SELECT id FROM streams WHERE broadcaster_id = ? AND status = 'LIVE'",
    NULL, NULL
};

static int first_id_row(void *arg, const struct sh__row *row)
{
    const char *id = sh__row_text(row, 0, NULL);

    if (id != NULL && strlen(id) < SH__ID_SIZE)
        memcpy(arg, id, strlen(id) + 1);
    return 1;
}

/* Publish @type with @data (taken) on the chat of @channel's live stream,
 * if it has one.  Failures are logged: the change itself is committed. */
static void publish_channel(sh_hub_t *hub, const char *channel,
                            const char *type, json_object *data)
{
    char stream[SH__ID_SIZE] = "";
    char chan[8 + SH__ID_SIZE];
    char err[SH_ERRBUF_SIZE] = "";
    struct sh__conn *c = NULL;
    struct sh__val p = sh__v_text(channel);
    sh_err_t rc;

    rc = sh__store_acquire(hub->store, &c);
    if (rc == SH_OK) {
        rc = sh__store_exec(c, &q_live_stream, &p, 1, first_id_row, stream,
                            NULL, err, sizeof err);
        sh__store_release(c);
    }
    if (rc != SH_OK || stream[0] == '\0') {
        json_object_put(data);
        if (rc != SH_OK)
            sh__log_kv(&hub->log, SH_LOG_WARN,
                       "cannot find the live stream of a channel",
                       "channel", channel, "error", err, (char *)NULL);
        return;
    }
    snprintf(chan, sizeof chan, "chat:%s", stream);
    rc = sh__bus_publish(hub->bus, chan, type, data, NULL, err, sizeof err);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "cannot publish a chat event",
                   "channel", chan, "type", type, "error", err,
                   (char *)NULL);
}

enum mod_rule { RULE_STAFF, RULE_OWNER };

/* Checks shared by every change: the hub, the actor, the channel and the
 * target exist, and the actor may act on the target under @rule.
 * *@actor_roles gets the actor's roles. */
static sh_err_t mod_check(sh_hub_t *hub, const char *actor_id,
                          const char *channel_id, const char *user_id,
                          bool need_user, enum mod_rule rule, char *errbuf,
                          size_t errbuf_len)
{
    struct sh__conn *c = NULL;
    struct sh__chan *ch;
    unsigned roles = 0, target_roles = 0, chan_roles = 0;
    bool target_mod;
    sh_err_t rc;

    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    if (actor_id == NULL) {
        sh__errbuf(errbuf, errbuf_len, "authentication required");
        return SH_EUNAUTHENTICATED;
    }
    if (channel_id == NULL || (need_user && user_id == NULL)) {
        sh__errbuf(errbuf, errbuf_len, "channel and user ids are required");
        return SH_EINVAL;
    }
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__actor_c(c, actor_id, &roles, errbuf, errbuf_len);
    if (rc == SH_OK) {
        rc = sh__user_roles_c(c, channel_id, &chan_roles, errbuf,
                              errbuf_len);
        if (rc == SH_ENOTFOUND)
            sh__errbuf(errbuf, errbuf_len, "no such channel");
    }
    if (rc == SH_OK && user_id != NULL) {
        rc = sh__user_roles_c(c, user_id, &target_roles, errbuf,
                              errbuf_len);
        if (rc == SH_ENOTFOUND)
            sh__errbuf(errbuf, errbuf_len, "no such user");
    }
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;

    rc = sh__chan_lock(hub, channel_id, &ch);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "cannot load the channel: %s",
                   sh_strerror(rc));
        return rc;
    }
    if (rule == RULE_OWNER) {
        if (strcmp(actor_id, channel_id) != 0 &&
            (roles & SH__ROLE_ADMIN) == 0)
            rc = SH_EFORBIDDEN;
    } else if (!sh__chan_is_staff(ch, actor_id, roles)) {
        rc = SH_EFORBIDDEN;
    }
    target_mod = user_id != NULL && sh__idmap_get(&ch->mods, user_id) != NULL;
    pthread_mutex_unlock(&hub->chat->mu);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "%s",
                   rule == RULE_OWNER
                       ? "only the broadcaster or an admin may do this"
                       : "only the broadcaster, its moderators or an admin "
                         "may do this");
        return rc;
    }
    if (rule == RULE_STAFF && user_id != NULL) {
        bool boss = strcmp(actor_id, channel_id) == 0 ||
                    (roles & SH__ROLE_ADMIN) != 0;

        if (strcmp(user_id, channel_id) == 0) {
            sh__errbuf(errbuf, errbuf_len,
                       "nobody can moderate the broadcaster");
            return SH_EFORBIDDEN;
        }
        if (target_mod && !boss) {
            sh__errbuf(errbuf, errbuf_len,
                       "a moderator cannot moderate another moderator");
            return SH_EFORBIDDEN;
        }
    }
    (void)target_roles;
    return SH_OK;
}

static sh_err_t run1(sh_hub_t *hub, const struct sh__sql *q,
                     const struct sh__val *p, size_t n, char *errbuf,
                     size_t errbuf_len)
{
    struct sh__conn *c = NULL;
    sh_err_t rc = sh__store_acquire(hub->store, &c);

    if (rc != SH_OK)
        return rc;
    rc = sh__store_exec(c, q, p, n, NULL, NULL, NULL, errbuf, errbuf_len);
    sh__store_release(c);
    return rc;
}

static const struct sh__sql q_redact = {
    "UPDATE chat_messages SET text = '', deleted = 1 WHERE channel_id = ? "
    "AND author_id = ? AND created_at >= ? AND deleted = 0", NULL, NULL
};

/* Remove @user_id's recent messages in @channel_id everywhere. */
static void redact_recent(sh_hub_t *hub, const char *channel_id,
                          const char *user_id)
{
    int64_t since = sh__now_ms() - hub->chat->redact_window_ms;
    char err[SH_ERRBUF_SIZE] = "";
    struct sh__val p[3];
    sh_err_t rc;

    if (hub->chat->redact_window_ms <= 0)
        return;
    (void)sh__wb_redact(hub->chat->wb, NULL, channel_id, user_id, since);
    sh__wb_flush(hub->chat->wb);
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_int(since);
    rc = run1(hub, &q_redact, p, 3, err, sizeof err);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_ERROR,
                   "cannot redact the messages of a banned user",
                   "channel", channel_id, "error", err, (char *)NULL);
    (void)sh__chat_redact_bus(hub, channel_id, NULL, user_id, since);
}

static bool reason_ok(const char *reason)
{
    return reason == NULL ||
           sh__chat_text_ok(reason, strlen(reason), SH_REASON_MAX);
}

static const struct sh__sql q_timeout = {
    "INSERT INTO timeouts (channel_id, user_id, until, reason, created_by, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id) "
    "DO UPDATE SET until = excluded.until, reason = excluded.reason, "
    "created_by = excluded.created_by, created_at = excluded.created_at",
    NULL, NULL
};

SH_API sh_err_t sh_moderation_timeout(sh_hub_t *hub, const char *actor_id,
                                      const char *channel_id,
                                      const char *user_id, int64_t seconds,
                                      const char *reason, char *errbuf,
                                      size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    int64_t now = sh__now_ms(), until;
    char ts[SH__TS_LEN + 1];
    struct sh__val p[6];
    json_object *ev;
    sh_err_t rc;

    rc = mod_check(hub, actor_id, channel_id, user_id, true, RULE_STAFF, errbuf,
                   errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (seconds < 1 || seconds > SH_TIMEOUT_MAX_SECONDS) {
        sh__errbuf(errbuf, errbuf_len, "seconds must be 1..%d",
                   SH_TIMEOUT_MAX_SECONDS);
        return SH_EINVAL;
    }
    if (!reason_ok(reason)) {
        sh__errbuf(errbuf, errbuf_len,
                   "reason must be valid UTF-8 of at most %d code points",
                   SH_REASON_MAX);
        return SH_EINVAL;
    }
    until = now + seconds * 1000;
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_int(until);
    p[3] = sh__v_text(reason);
    p[4] = sh__v_text(actor_id);
    p[5] = sh__v_int(now);
    pthread_mutex_lock(&hub->chat->mod_mu);
    rc = run1(hub, &q_timeout, p, 6, errbuf, errbuf_len);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&hub->chat->mod_mu);
        return rc;
    }
    pthread_mutex_lock(&hub->chat->mu);
    hub->chat->gen++;
    {
        struct sh__idmap_ent *e = sh__idmap_get(&hub->chat->chans,
                                                channel_id);
        if (e != NULL) {
            struct sh__chan *ch = e->ptr;
            struct sh__idmap_ent *t = sh__idmap_put(&ch->timeouts, user_id);

            if (t != NULL)
                t->val = until;
            /* Sends that checked before the timeout queue their message
             * now, so that redact_recent() below sees it. */
            sh__chan_drain(hub->chat, ch);
            if (t == NULL)  /* cannot cache it: forget it, reload later */
                chan_retire(hub->chat, channel_id);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    pthread_mutex_unlock(&hub->chat->mod_mu);
    redact_recent(hub, channel_id, user_id);
    ev = json_object_new_object();
    sh__ts_format(until, ts);
    if (ev != NULL && sh__jset_str(ev, "userId", user_id) &&
        sh__jset_str(ev, "until", ts) && sh__jset_str(ev, "reason", reason))
        publish_channel(hub, channel_id, "chat.user_timed_out", ev);
    else if (ev != NULL)
        json_object_put(ev);
    return SH_OK;
}

static const struct sh__sql q_ban = {
    "INSERT INTO bans (channel_id, user_id, reason, created_by, created_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id, user_id) DO UPDATE SET "
    "reason = excluded.reason, created_by = excluded.created_by",
    NULL, NULL
};

SH_API sh_err_t sh_moderation_ban(sh_hub_t *hub, const char *actor_id,
                                  const char *channel_id, const char *user_id,
                                  const char *reason, char *errbuf,
                                  size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__val p[5];
    json_object *ev;
    sh_err_t rc;

    rc = mod_check(hub, actor_id, channel_id, user_id, true, RULE_STAFF, errbuf,
                   errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (!reason_ok(reason)) {
        sh__errbuf(errbuf, errbuf_len,
                   "reason must be valid UTF-8 of at most %d code points",
                   SH_REASON_MAX);
        return SH_EINVAL;
    }
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_text(reason);
    p[3] = sh__v_text(actor_id);
    p[4] = sh__v_int(sh__now_ms());
    pthread_mutex_lock(&hub->chat->mod_mu);
    rc = run1(hub, &q_ban, p, 5, errbuf, errbuf_len);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&hub->chat->mod_mu);
        return rc;
    }
    pthread_mutex_lock(&hub->chat->mu);
    hub->chat->gen++;
    {
        struct sh__idmap_ent *e = sh__idmap_get(&hub->chat->chans,
                                                channel_id);
        if (e != NULL) {
            struct sh__chan *ch = e->ptr;

            bool cached = sh__idmap_put(&ch->bans, user_id) != NULL;

            if (cached)
                sh__idmap_get(&ch->bans, user_id)->val = 1;
            /* as for a timeout: redact_recent() sees sends in flight */
            sh__chan_drain(hub->chat, ch);
            if (!cached)
                chan_retire(hub->chat, channel_id);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    pthread_mutex_unlock(&hub->chat->mod_mu);
    redact_recent(hub, channel_id, user_id);
    ev = json_object_new_object();
    if (ev != NULL && sh__jset_str(ev, "userId", user_id) &&
        sh__jset_str(ev, "reason", reason))
        publish_channel(hub, channel_id, "chat.user_banned", ev);
    else if (ev != NULL)
        json_object_put(ev);
    return SH_OK;
}

static const struct sh__sql q_unban = {
    "DELETE FROM bans WHERE channel_id = ? AND user_id = ?", NULL, NULL
};
static const struct sh__sql q_untimeout = {
    "DELETE FROM timeouts WHERE channel_id = ? AND user_id = ?", NULL, NULL
};

SH_API sh_err_t sh_moderation_unban(sh_hub_t *hub, const char *actor_id,
                                    const char *channel_id,
                                    const char *user_id, char *errbuf,
                                    size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__val p[2];
    sh_err_t rc;

    rc = mod_check(hub, actor_id, channel_id, user_id, true, RULE_STAFF, errbuf,
                   errbuf_len);
    if (rc != SH_OK)
        return rc;
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_text(user_id);
    pthread_mutex_lock(&hub->chat->mod_mu);
    rc = run1(hub, &q_unban, p, 2, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = run1(hub, &q_untimeout, p, 2, errbuf, errbuf_len);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&hub->chat->mod_mu);
        return rc;
    }
    pthread_mutex_lock(&hub->chat->mu);
    hub->chat->gen++;
    {
        struct sh__idmap_ent *e = sh__idmap_get(&hub->chat->chans,
                                                channel_id);
        if (e != NULL) {
            struct sh__chan *ch = e->ptr;

            (void)sh__idmap_del(&ch->bans, user_id);
            (void)sh__idmap_del(&ch->timeouts, user_id);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    pthread_mutex_unlock(&hub->chat->mod_mu);
    return SH_OK;
}

static const struct sh__sql q_mod_add = {
    "INSERT INTO moderators (channel_id, user_id, created_at) "
    "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", NULL, NULL
};
static const struct sh__sql q_mod_del = {
    "DELETE FROM moderators WHERE channel_id = ? AND user_id = ?", NULL, NULL
};

static sh_err_t set_moderator(sh_hub_t *hub, const char *actor_id,
                              const char *channel_id, const char *user_id,
                              bool add, char *errbuf, size_t errbuf_len)
{
    struct sh__val p[3];
    sh_err_t rc;

    rc = mod_check(hub, actor_id, channel_id, user_id, true, RULE_OWNER, errbuf,
                   errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (add && strcmp(channel_id, user_id) == 0) {
        sh__errbuf(errbuf, errbuf_len,
                   "the broadcaster cannot be their own moderator");
        return SH_EINVAL;
    }
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_int(sh__now_ms());
    pthread_mutex_lock(&hub->chat->mod_mu);
    rc = run1(hub, add ? &q_mod_add : &q_mod_del, p, add ? 3 : 2, errbuf,
              errbuf_len);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&hub->chat->mod_mu);
        return rc;
    }
    pthread_mutex_lock(&hub->chat->mu);
    hub->chat->gen++;
    {
        struct sh__idmap_ent *e = sh__idmap_get(&hub->chat->chans,
                                                channel_id);
        if (e != NULL) {
            struct sh__chan *ch = e->ptr;

            if (!add)
                (void)sh__idmap_del(&ch->mods, user_id);
            else if (sh__idmap_put(&ch->mods, user_id) == NULL)
                chan_retire(hub->chat, channel_id);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    pthread_mutex_unlock(&hub->chat->mod_mu);
    return SH_OK;
}

SH_API sh_err_t sh_moderation_add_moderator(sh_hub_t *hub,
                                            const char *actor_id,
                                            const char *channel_id,
                                            const char *user_id,
                                            char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    return set_moderator(hub, actor_id, channel_id, user_id, true, errbuf,
                         errbuf_len);
}

SH_API sh_err_t sh_moderation_remove_moderator(sh_hub_t *hub,
                                               const char *actor_id,
                                               const char *channel_id,
                                               const char *user_id,
                                               char *errbuf,
                                               size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    return set_moderator(hub, actor_id, channel_id, user_id, false, errbuf,
                         errbuf_len);
}

SH_API sh_err_t sh_moderation_is_moderator(sh_hub_t *hub,
                                           const char *channel_id,
                                           const char *user_id, bool *out,
                                           char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__chan *ch;
    sh_err_t rc;

    if (out != NULL)
        *out = false;
    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    if (channel_id == NULL || user_id == NULL || out == NULL ||
        !sh__uuid_valid(channel_id)) {
        sh__errbuf(errbuf, errbuf_len, "bad channel or user id");
        return SH_EINVAL;
    }
    rc = sh__chan_lock(hub, channel_id, &ch);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "cannot load the channel");
        return rc;
    }
    *out = sh__idmap_get(&ch->mods, user_id) != NULL;
    pthread_mutex_unlock(&hub->chat->mu);
    return SH_OK;
}

/* ---- chat settings ----------------------------------------------------------- */

static const struct sh__sql q_settings_put = {
    "INSERT INTO chat_settings (channel_id, slow_mode_seconds, "
    "followers_only, max_message_length, blocked_terms, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE SET "
    "slow_mode_seconds = excluded.slow_mode_seconds, "
    "followers_only = excluded.followers_only, "
    "max_message_length = excluded.max_message_length, "
    "blocked_terms = excluded.blocked_terms, "
    "updated_at = excluded.updated_at",
    NULL, NULL
};

struct patch {
    bool has_slow, has_fo, has_max, has_terms;
    int64_t slow, max;
    bool fo;
    json_object *terms;     /* borrowed from the parsed patch */
};

static sh_err_t patch_parse(json_object *o, struct patch *pt, char *errbuf,
                            size_t errbuf_len)
{
    memset(pt, 0, sizeof *pt);
    if (!json_object_is_type(o, json_type_object)) {
        sh__errbuf(errbuf, errbuf_len, "settings must be a JSON object");
        return SH_EINVAL;
    }
    json_object_object_foreach(o, key, v) {
        if (v == NULL)
            continue;                      /* null: unchanged */
        if (strcmp(key, "slowModeSeconds") == 0) {
            if (!json_object_is_type(v, json_type_int) ||
                json_object_get_int64(v) < 0 ||
                json_object_get_int64(v) > SH_SLOW_MODE_MAX_SECONDS) {
                sh__errbuf(errbuf, errbuf_len,
                           "slowModeSeconds must be an integer 0..%d",
                           SH_SLOW_MODE_MAX_SECONDS);
                return SH_EINVAL;
            }
            pt->has_slow = true;
            pt->slow = json_object_get_int64(v);
        } else if (strcmp(key, "followersOnly") == 0) {
            if (!json_object_is_type(v, json_type_boolean)) {
                sh__errbuf(errbuf, errbuf_len,
                           "followersOnly must be a boolean");
                return SH_EINVAL;
            }
            pt->has_fo = true;
            pt->fo = json_object_get_boolean(v) != 0;
        } else if (strcmp(key, "maxMessageLength") == 0) {
            if (!json_object_is_type(v, json_type_int) ||
                json_object_get_int64(v) < 1 ||
                json_object_get_int64(v) > SH_MESSAGE_LENGTH_MAX) {
                sh__errbuf(errbuf, errbuf_len,
                           "maxMessageLength must be an integer 1..%d",
                           SH_MESSAGE_LENGTH_MAX);
                return SH_EINVAL;
            }
            pt->has_max = true;
            pt->max = json_object_get_int64(v);
        } else if (strcmp(key, "blockedTerms") == 0) {
            size_t n;

            if (!json_object_is_type(v, json_type_array)) {
                sh__errbuf(errbuf, errbuf_len,
                           "blockedTerms must be an array of strings");
                return SH_EINVAL;
            }
            n = json_object_array_length(v);
            if (n > SH_BLOCKED_TERMS_MAX) {
                sh__errbuf(errbuf, errbuf_len,
                           "blockedTerms holds %zu terms, at most %d", n,
                           SH_BLOCKED_TERMS_MAX);
                return SH_EINVAL;
            }
            for (size_t i = 0; i < n; i++) {
                json_object *t = json_object_array_get_idx(v, i);
                const char *why;

                if (!json_object_is_type(t, json_type_string)) {
                    sh__errbuf(errbuf, errbuf_len,
                               "blockedTerms[%zu] is not a string", i);
                    return SH_EINVAL;
                }
                why = sh__chat_term_check(
                    json_object_get_string(t),
                    (size_t)json_object_get_string_len(t),
                    SH_BLOCKED_TERM_MAX);
                if (why != NULL) {
                    sh__errbuf(errbuf, errbuf_len, "blockedTerms[%zu] %s",
                               i, why);
                    return SH_EINVAL;
                }
            }
            pt->has_terms = true;
            pt->terms = v;
        } else {
            sh__errbuf(errbuf, errbuf_len, "unknown chat setting '%.64s'",
                       key);
            return SH_EINVAL;
        }
    }
    return SH_OK;
}

/* A deep copy of the string array @a (only strings, checked before). */
static json_object *terms_copy(json_object *a)
{
    size_t n = json_object_array_length(a);
    json_object *c = json_object_new_array_ext((int)n);

    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(a, i);
        json_object *s = json_object_new_string_len(
            json_object_get_string(t), json_object_get_string_len(t));

        if (s == NULL || json_object_array_add(c, s) != 0) {
            json_object_put(s);
            json_object_put(c);
            return NULL;
        }
    }
    return c;
}

SH_API sh_err_t sh_chat_settings_update(sh_hub_t *hub, const char *actor_id,
                                        const char *channel_id,
                                        const char *patch_json, size_t len,
                                        sh_chat_settings_t **out,
                                        char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct json_tokener *tok = NULL;
    json_object *patch = NULL, *terms = NULL, *res = NULL, *own = NULL;
    struct sh__chan *ch;
    struct patch pt;
    struct sh__val p[6];
    int64_t slow, max;
    bool fo;
    const char *terms_text;
    bool mod_locked = false;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = mod_check(hub, actor_id, channel_id, NULL, false, RULE_STAFF, errbuf,
                   errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (patch_json == NULL || len == 0 || len > 1024 * 1024 ||
        memchr(patch_json, '\0', len) != NULL) {
        sh__errbuf(errbuf, errbuf_len, "settings must be a JSON object");
        return SH_EINVAL;
    }
    tok = json_tokener_new();
    if (tok == NULL)
        return SH_ENOMEM;
    patch = json_tokener_parse_ex(tok, patch_json, (int)len);
    if (patch == NULL || json_tokener_get_parse_end(tok) != len) {
        json_tokener_free(tok);
        json_object_put(patch);
        sh__errbuf(errbuf, errbuf_len, "settings are not valid JSON");
        return SH_EINVAL;
    }
    json_tokener_free(tok);
    rc = patch_parse(patch, &pt, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;

    /* Merge with the current settings: read, merge, store and cache in
     * one step under mod_mu, so that two partial updates at once (one
     * sets slow mode, the other followers-only) both hold. */
    pthread_mutex_lock(&hub->chat->mod_mu);
    mod_locked = true;
    rc = sh__chan_lock(hub, channel_id, &ch);
    if (rc != SH_OK)
        goto out;
    slow = pt.has_slow ? pt.slow : ch->slow_mode_s;
    fo = pt.has_fo ? pt.fo : ch->followers_only;
    max = pt.has_max ? pt.max : ch->max_len;
    terms = pt.has_terms ? terms_copy(pt.terms) : terms_copy(ch->terms);
    pthread_mutex_unlock(&hub->chat->mu);
    if (terms == NULL) {
        rc = SH_ENOMEM;
        goto out;
    }
    terms_text = json_object_to_json_string_ext(terms, JSON_C_TO_STRING_PLAIN
                                                | JSON_C_TO_STRING_NOSLASHESCAPE);
    p[0] = sh__v_text(channel_id);
    p[1] = sh__v_int(slow);
    p[2] = sh__v_int(fo ? 1 : 0);
    p[3] = sh__v_int(max);
    p[4] = sh__v_text(terms_text);
    p[5] = sh__v_int(sh__now_ms());
    rc = run1(hub, &q_settings_put, p, 6, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;

    /* The cache gets its own copy: @terms goes into the result and the
     * event, which leave this thread. */
    own = terms_copy(terms);
    pthread_mutex_lock(&hub->chat->mu);
    hub->chat->gen++;
    {
        struct sh__idmap_ent *e = sh__idmap_get(&hub->chat->chans,
                                                channel_id);
        if (e != NULL) {
            ch = e->ptr;
            ch->slow_mode_s = slow;
            ch->followers_only = fo;
            ch->max_len = max;
            if (own == NULL || terms_set(ch, own) != SH_OK) {
                chan_retire(hub->chat, channel_id);
                ch = NULL;
            }
            own = NULL;             /* taken by terms_set() */
            if (ch != NULL)
                res = settings_obj(ch);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    pthread_mutex_unlock(&hub->chat->mod_mu);
    mod_locked = false;
    if (res == NULL) {
        res = json_object_new_object();
        if (res == NULL || !sh__jset_int(res, "slowModeSeconds", slow) ||
            !sh__jset_bool(res, "followersOnly", fo) ||
            !sh__jset_int(res, "maxMessageLength", max) ||
            !sh__jset(res, "blockedTerms", json_object_get(terms))) {
            rc = SH_ENOMEM;  /* stored; only the answer could not be built */
            goto out;
        }
    }
    publish_channel(hub, channel_id, "chat.settings_changed",
                    json_object_get(res));
    rc = settings_wrap(res, out);
    res = NULL;
out:
    if (mod_locked)
        pthread_mutex_unlock(&hub->chat->mod_mu);
    json_object_put(res);
    json_object_put(own);
    json_object_put(terms);
    json_object_put(patch);
    return rc;
}

SH_API sh_err_t sh_chat_settings_get(sh_hub_t *hub, const char *channel_id,
                                     sh_chat_settings_t **out, char *errbuf,
                                     size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__conn *c = NULL;
    struct sh__chan *ch;
    json_object *o;
    unsigned roles;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    if (channel_id == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "channel id and out are required");
        return SH_EINVAL;
    }
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__user_roles_c(c, channel_id, &roles, errbuf, errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK) {
        if (rc == SH_ENOTFOUND)
            sh__errbuf(errbuf, errbuf_len, "no such channel");
        return rc;
    }
    rc = sh__chan_lock(hub, channel_id, &ch);
    if (rc != SH_OK)
        return rc;
    o = settings_obj(ch);
    pthread_mutex_unlock(&hub->chat->mu);
    if (o == NULL)
        return SH_ENOMEM;
    return settings_wrap(o, out);
}

static json_object *sobj(const sh_chat_settings_t *s)
{
    return s != NULL ? s->obj : NULL;
}

SH_API int64_t sh_chat_settings_slow_mode_seconds(const sh_chat_settings_t *s)
{
    return sh__jint(sobj(s), "slowModeSeconds");
}

SH_API bool sh_chat_settings_followers_only(const sh_chat_settings_t *s)
{
    return sh__jbool(sobj(s), "followersOnly");
}

SH_API int64_t sh_chat_settings_max_message_length(
    const sh_chat_settings_t *s)
{
    return sh__jint(sobj(s), "maxMessageLength");
}

static json_object *terms_of(const sh_chat_settings_t *s)
{
    json_object *a;

    if (sobj(s) == NULL ||
        !json_object_object_get_ex(sobj(s), "blockedTerms", &a) ||
        !json_object_is_type(a, json_type_array))
        return NULL;
    return a;
}

SH_API size_t sh_chat_settings_blocked_term_count(const sh_chat_settings_t *s)
{
    json_object *a = terms_of(s);

    return a != NULL ? json_object_array_length(a) : 0;
}

SH_API const char *sh_chat_settings_blocked_term_at(
    const sh_chat_settings_t *s, size_t i)
{
    json_object *a = terms_of(s);

    if (a == NULL || i >= json_object_array_length(a))
        return NULL;
    return json_object_get_string(json_object_array_get_idx(a, i));
}

SH_API const char *sh_chat_settings_json(const sh_chat_settings_t *s,
                                         size_t *len)
{
    return sh__jtext(sobj(s), len);
}

SH_API void sh_chat_settings_free(sh_chat_settings_t *s)
{
    sh__jh_free((struct sh__jh *)s);
}
