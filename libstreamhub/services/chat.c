/* libstreamhub/services/chat.c: sending, history and deletion of chat
 * messages (chat.h), the chat area's init/fini and its caches of streams and
 * users (chat_int.h).
 *
 * The send path, in order: the author (cached username/roles), the stream
 * (cached, liveness re-read at most once a second), the channel's
 * moderation state (in memory, moderation.c), the text (chat_rules.c), the
 * blocked terms, the author's token bucket, a slot in the write-behind
 * queue.  Every rule that reads state acts in the same locked step: the
 * moderation checks take the author's slow-mode turn and count the send
 * as in flight (a ban or timeout waits for it) under sh__chat.mu, the
 * token is taken under its stripe's lock, and a send refused later gives
 * both back.  Then the ChatMessage is built and serialised once by json-c
 * with offset 0, and the event's offset spliced in under the channel's
 * lock, so that the message's offset IS the channel offset while the lock
 * covers only a copy: with chat.durability = commit the offset is claimed
 * (sh__bus_claim_spliced), the row queued and the call waits until the
 * writer stored it and published the claim (writebehind.c); with async it
 * is published at once (sh__bus_publish_spliced) and the row queued.  No
 * store call happens on this path once the caches are warm, but the
 * offset block's reservation (bus_int.h), once per block.
 *
 * History waits for the write-behind queue to store everything queued
 * before the call (sh__wb_flush), then reads the store: simple and exact,
 * at the cost of a wait of at most one batch when chat is busy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chat_int.h"
#include "core/otel_int.h"
#include "outbox_int.h"

struct sh_chat_message {
    json_object *obj;       /* the ChatMessage JSON (struct sh__jh) */
};

/* A history page: the list JSON, one handle per item (borrowed views) and
 * the cursor of each item. */
struct sh_chat_message_list {
    json_object *obj;       /* owned */
    size_t n;
    struct sh__jh *items;   /* n borrowed views */
    char **cursors;         /* n owned strings */
};

/* ---- the ChatMessage JSON ---------------------------------------------- */

json_object *sh__chat_message_obj(const char *id, const char *stream_id,
                                  const char *author_id,
                                  const char *username, const char *text,
                                  size_t len, int64_t offset,
                                  int64_t created_ms, bool deleted)
{
    json_object *o = json_object_new_object();
    json_object *t;

    if (o == NULL)
        return NULL;
    t = json_object_new_string_len(deleted ? "" : text,
                                   deleted ? 0 : (int)len);
    if (!sh__jset_str(o, "id", id) ||
        !sh__jset_str(o, "streamId", stream_id) ||
        !sh__jset(o, "author", sh__juser_ref(author_id, username)) ||
        !sh__jset(o, "text", t) ||
        !sh__jset_int(o, "offset", offset) ||
        !sh__jset_time(o, "createdAt", created_ms, false) ||
        !sh__jset_bool(o, "deleted", deleted)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ---- caches ---------------------------------------------------------------- */

sh_err_t sh__chat_stream_get(sh_hub_t *hub, const char *stream_id,
                             char channel[SH__ID_SIZE], bool *live)
{
    struct sh__chat *chat = hub->chat;
    struct sh__idmap_ent *e;
    struct sh__cstream *cs;
    int64_t now = sh__mono_ms();
    char ch[SH__ID_SIZE];
    bool l = false;
    sh_err_t rc;

    pthread_mutex_lock(&chat->mu);
    e = sh__idmap_get(&chat->streams, stream_id);
    if (e != NULL) {
        cs = e->ptr;
        sh__idmap_touch(e);
        if (now - cs->checked_ms < SH__CHAT_STREAM_TTL_MS) {
            memcpy(channel, cs->channel, SH__ID_SIZE);
            *live = cs->live;
            pthread_mutex_unlock(&chat->mu);
            return SH_OK;
        }
    }
    pthread_mutex_unlock(&chat->mu);

    if (!sh__uuid_valid(stream_id))
        return SH_ENOTFOUND;
    rc = sh__stream_channel(hub, stream_id, ch, &l);
    if (rc != SH_OK)
        return rc;
    pthread_mutex_lock(&chat->mu);
    e = sh__idmap_get(&chat->streams, stream_id);
    if (e == NULL)
        (void)sh__lru_room(&chat->lru_streams, NULL, NULL);
    e = sh__idmap_put(&chat->streams, stream_id);
    if (e == NULL) {
        pthread_mutex_unlock(&chat->mu);
        return SH_ENOMEM;
    }
    if (e->ptr == NULL) {
        e->ptr = calloc(1, sizeof(struct sh__cstream));
        if (e->ptr == NULL) {
            (void)sh__idmap_del(&chat->streams, stream_id);
            pthread_mutex_unlock(&chat->mu);
            return SH_ENOMEM;
        }
    }
    cs = e->ptr;
    memcpy(cs->id, stream_id, SH__ID_SIZE);
    memcpy(cs->channel, ch, SH__ID_SIZE);
    cs->live = l;
    cs->checked_ms = now;
    pthread_mutex_unlock(&chat->mu);
    memcpy(channel, ch, SH__ID_SIZE);
    *live = l;
    return SH_OK;
}

void sh__chat_stream_changed(sh_hub_t *hub, const char *stream_id,
                             bool live)
{
    struct sh__idmap_ent *e;

    if (hub == NULL || hub->chat == NULL || stream_id == NULL)
        return;
    pthread_mutex_lock(&hub->chat->mu);
    e = sh__idmap_get(&hub->chat->streams, stream_id);
    if (e != NULL) {
        struct sh__cstream *cs = e->ptr;

        cs->live = live;
        cs->checked_ms = sh__mono_ms();
    }
    pthread_mutex_unlock(&hub->chat->mu);
}

sh_err_t sh__chat_user_get(sh_hub_t *hub, const char *user_id,
                           char name[64], unsigned *roles)
{
    struct sh__chat *chat = hub->chat;
    struct sh__idmap_ent *e;
    struct sh__cuser *cu;
    struct sh__conn *c = NULL;
    int64_t now = sh__mono_ms();
    char nm[64];
    unsigned r = 0;
    sh_err_t rc;

    pthread_mutex_lock(&chat->mu);
    e = sh__idmap_get(&chat->users, user_id);
    if (e != NULL) {
        cu = e->ptr;
        sh__idmap_touch(e);
        if (now - cu->roles_ms < SH__CHAT_ROLE_TTL_MS) {
            memcpy(name, cu->name, sizeof cu->name);
            *roles = cu->roles;
            pthread_mutex_unlock(&chat->mu);
            return SH_OK;
        }
    }
    pthread_mutex_unlock(&chat->mu);

    if (!sh__uuid_valid(user_id))
        return SH_ENOTFOUND;
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__user_name_c(c, user_id, nm, sizeof nm, NULL, 0);
    if (rc == SH_OK)
        rc = sh__user_roles_c(c, user_id, &r, NULL, 0);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    pthread_mutex_lock(&chat->mu);
    if (sh__idmap_get(&chat->users, user_id) == NULL)
        (void)sh__lru_room(&chat->lru_users, NULL, NULL);
    e = sh__idmap_put(&chat->users, user_id);
    if (e != NULL && e->ptr == NULL)
        e->ptr = calloc(1, sizeof(struct sh__cuser));
    if (e != NULL && e->ptr != NULL) {
        cu = e->ptr;
        memcpy(cu->name, nm, sizeof nm);
        cu->roles = r;
        cu->roles_ms = now;
    } else if (e != NULL) {
        (void)sh__idmap_del(&chat->users, user_id);
    }
    pthread_mutex_unlock(&chat->mu);
    memcpy(name, nm, sizeof nm);
    *roles = r;
    return SH_OK;
}

/* ---- redaction in the bus history ----------------------------------------- */

struct redact_ctx {
    const char *message_id;
    const char *author_id;
    int64_t since_ms;
};

/* Events carry their data as text only (bus_int.h): it is parsed here,
 * on the rare redaction path, not per message. */
static json_object *redact_fn(void *arg, const struct sh_event *ev)
{
    struct redact_ctx *rx = arg;
    json_object *author, *src;
    const char *id, *needle;
    bool hit;

    if (strcmp(ev->type, "chat.message") != 0)
        return NULL;
    /* Ids are plain hex in the text: one that is absent cannot match. */
    needle = rx->message_id != NULL ? rx->message_id : rx->author_id;
    if (needle == NULL || strstr(ev->data_json, needle) == NULL)
        return NULL;
    src = json_tokener_parse(ev->data_json);    /* our own object */
    if (src == NULL || !json_object_is_type(src, json_type_object) ||
        sh__jbool(src, "deleted")) {
        json_object_put(src);
        return NULL;
    }
    id = sh__jstr(src, "id");
    if (rx->message_id != NULL) {
        hit = id != NULL && strcmp(id, rx->message_id) == 0;
    } else {
        hit = json_object_object_get_ex(src, "author", &author) &&
              sh__jstr(author, "id") != NULL &&
              strcmp(sh__jstr(author, "id"), rx->author_id) == 0 &&
              ev->ts_ms >= rx->since_ms;
    }
    if (!hit) {
        json_object_put(src);
        return NULL;
    }
    json_object_object_add(src, "text", json_object_new_string(""));
    json_object_object_add(src, "deleted", json_object_new_boolean(1));
    return src;
}

/* The streams whose stored messages a redaction touches: the stream
 * cache may have forgotten a stream (chat.cache-streams) whose history the
 * bus still holds, so they are read from the store too (the callers have
 * flushed the write-behind queue first). */
static const struct sh__sql q_redact_streams_msg = {
    "SELECT stream_id FROM chat_messages WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_redact_streams_author = {
    "SELECT DISTINCT stream_id FROM chat_messages WHERE channel_id = ? "
    "AND author_id = ? AND created_at >= ?", NULL, NULL
};

struct id_set {
    char (*ids)[SH__ID_SIZE];
    size_t n, cap;
    bool nomem;
};

static void id_set_add(struct id_set *set, const char *id)
{
    if (id == NULL || strlen(id) >= SH__ID_SIZE)
        return;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->ids[i], id) == 0)
            return;
    if (set->n == set->cap) {
        size_t cap = set->cap == 0 ? 8 : set->cap * 2;
        char (*ids)[SH__ID_SIZE] = realloc(set->ids, cap * sizeof *ids);

        if (ids == NULL) {
            set->nomem = true;
            return;
        }
        set->ids = ids;
        set->cap = cap;
    }
    memcpy(set->ids[set->n++], id, strlen(id) + 1);
}

static int id_set_row(void *arg, const struct sh__row *row)
{
    id_set_add(arg, sh__row_text(row, 0, NULL));
    return 0;
}

int sh__chat_redact_bus(sh_hub_t *hub, const char *channel,
                        const char *message_id, const char *author_id,
                        int64_t since_ms)
{
    struct redact_ctx rx = { message_id, author_id, since_ms };
    struct sh__idmap *m = &hub->chat->streams;
    struct id_set set = { NULL, 0, 0, false };
    struct sh__conn *c = NULL;
    struct sh__val p[3];
    int total = 0;

    /* Copy the stream ids out: rewriting calls the bus, not under mu. */
    pthread_mutex_lock(&hub->chat->mu);
    for (size_t i = 0; i < m->nb; i++) {
        for (struct sh__idmap_ent *e = m->b[i]; e != NULL; e = e->next) {
            struct sh__cstream *cs = e->ptr;

            if (strcmp(cs->channel, channel) == 0)
                id_set_add(&set, cs->id);
        }
    }
    pthread_mutex_unlock(&hub->chat->mu);
    if (sh__store_acquire(hub->store, &c) == SH_OK) {
        if (message_id != NULL) {
            p[0] = sh__v_text(message_id);
            (void)sh__store_exec(c, &q_redact_streams_msg, p, 1,
                                 id_set_row, &set, NULL, NULL, 0);
        } else if (author_id != NULL) {
            p[0] = sh__v_text(channel);
            p[1] = sh__v_text(author_id);
            p[2] = sh__v_int(since_ms);
            (void)sh__store_exec(c, &q_redact_streams_author, p, 3,
                                 id_set_row, &set, NULL, NULL, 0);
        }
        sh__store_release(c);
    }
    if (set.nomem)
        sh__log_kv(&hub->log, SH_LOG_WARN,
                   "out of memory listing the streams to redact", "channel",
                   channel, (char *)NULL);
    for (size_t i = 0; i < set.n; i++) {
        char chan[8 + SH__ID_SIZE];
        int r;

        snprintf(chan, sizeof chan, "chat:%s", set.ids[i]);
        r = sh__bus_rewrite(hub->bus, chan, redact_fn, &rx);
        if (r > 0)
            total += r;
    }
    free(set.ids);
    return total;
}

/* ---- send -------------------------------------------------------------------- */

/* A message id: a UUID of version 7 (RFC 9562: 48-bit Unix milliseconds,
 * then random bits), not 4.  The random bits are ChaCha20 output under
 * the chat's key drawn from libsodium at init, with a fresh nonce per id
 * (a counter): as unpredictable, without the getrandom() system call that
 * randombytes_buf() makes on every message.  Chat is the one table that
 * grows by thousands of rows a second, and time-ordered keys append to the
 * primary-key B-tree instead of touching a random page per row: measured
 * on SQLite at 100,000 rows, several times the insert rate of random ids.
 * Still 36 characters of lowercase hex that sh__uuid_valid() accepts. */
static void chat_id(struct sh__chat *chat, char out[SH__ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = (uint64_t)sh__now_ms();
    uint64_t seq = atomic_fetch_add_explicit(&chat->id_seq, 1,
                                             memory_order_relaxed);
    unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = { 0 };
    unsigned char b[16];
    size_t o = 0;

    for (int i = 0; i < 8; i++)
        nonce[i] = (unsigned char)(seq >> (8 * i));
    crypto_stream_chacha20_ietf(b + 6, 10, nonce, chat->id_key);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);   /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* variant 10 */
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

/* The ChatMessage text around its offset, for sh__bus_publish_spliced().
 * @o is sh__chat_message_obj() with offset 0; json-c serialises it (the
 * bus's flags), and the text is cut around that 0 so that the bus puts
 * the event's offset there under the channel's lock: the objects and
 * the serialisation stay out of the lock.  The keys after "text" are
 * fixed, and a string's text never holds a bare quote after a comma, so
 * the last `,"offset":0,"createdAt":` is the field.  False on ENOMEM. */
static bool msg_split(json_object *o, const char **head, size_t *head_len,
                      const char **tail, size_t *tail_len)
{
    static const char key[] = ",\"offset\":0,\"createdAt\":";
    const size_t kl = sizeof key - 1, at = sizeof ",\"offset\":" - 1;
    size_t len = 0;
    const char *t = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (t == NULL || len < kl)
        return false;
    for (size_t i = len - kl + 1; i-- > 0;) {
        if (memcmp(t + i, key, kl) == 0) {
            *head = t;
            *head_len = i + at;
            *tail = t + i + at + 1;
            *tail_len = len - (i + at + 1);
            return true;
        }
    }
    return false;
}

/* The event's text as published: @head, the offset, @tail (msg_split).
 * malloc'd, NULL on ENOMEM. */
static char *msg_join(const char *head, size_t head_len, uint64_t offset,
                      const char *tail, size_t tail_len, size_t *len)
{
    char num[24];
    int k = snprintf(num, sizeof num, "%llu", (unsigned long long)offset);
    char *t = malloc(head_len + (size_t)k + tail_len + 1);

    if (t == NULL)
        return NULL;
    memcpy(t, head, head_len);
    memcpy(t + head_len, num, (size_t)k);
    memcpy(t + head_len + (size_t)k, tail, tail_len);
    *len = head_len + (size_t)k + tail_len;
    t[*len] = '\0';
    return t;
}

static sh_err_t refuse(sh_err_t rc, char *errbuf, size_t errbuf_len,
                       const char *why)
{
    sh__errbuf(errbuf, errbuf_len, "%s", why);
    return rc;
}

/* sh_chat_send()'s way out: counts what was refused, and why. */
static sh_err_t counted(sh_hub_t *hub, sh_err_t rc)
{
    struct sh__chat *chat = hub->chat;

    if (rc == SH_OK) {
        if (chat->m_accepted != NULL)
            sh__series_add(chat->m_accepted, 1);
    } else if ((size_t)rc < sizeof chat->m_refused / sizeof *chat->m_refused
               && chat->m_refused[rc] != NULL) {
        sh__series_add(chat->m_refused[rc], 1);
    }
    return rc;
}

/* The author's last send, reserved by a send that passed slow mode.  The
 * check and the reservation are one step under sh__chat.mu: of several
 * sends of one author at once (several sockets, REST and WebSocket
 * together) exactly one finds the slot free.  A send refused by a later
 * rule (text, blocked terms, queue, rate limit, bus) gives the slot back,
 * so that a refused message never costs the author their turn. */
struct slow_resv {
    bool taken;
    bool had_prev;          /* an earlier send was recorded: restore it */
    int64_t prev;
    int64_t mine;           /* mono ms written by this send */
    bool inflight;          /* counted in ch->inflight[phase] */
    unsigned phase;
};

/* An author's last send that its channel's slow mode no longer needs:
 * older than the window (any, when slow mode is off).  @arg: mono ms. */
static bool author_expired(const struct sh__idmap_ent *e, void *arg)
{
    const struct sh__chan *ch = e->map->owner;

    return ch->slow_mode_s <= 0 ||
           *(const int64_t *)arg - e->val >= ch->slow_mode_s * 1000;
}

/* Record @mono as @actor's last send in @ch.  @locks mu held.
 * Errors, only when slow mode needs the record (it is on): SH_EBUSY when
 * chat.cache-authors authors are within their slow-mode window (none may
 * be forgotten), SH_ENOMEM. */
static sh_err_t slow_reserve(struct sh__chat *chat, struct sh__chan *ch,
                             const char *actor, int64_t mono,
                             struct slow_resv *r)
{
    struct sh__idmap_ent *e = sh__idmap_get(&ch->last_send, actor);

    r->had_prev = e != NULL;
    r->prev = e != NULL ? e->val : 0;
    if (e == NULL) {
        if (!sh__lru_room(&chat->lru_authors, author_expired, &mono))
            return ch->slow_mode_s > 0 ? SH_EBUSY : SH_OK;
        e = sh__idmap_put(&ch->last_send, actor);
    } else {
        sh__idmap_touch(e);
    }
    if (e == NULL)
        return ch->slow_mode_s > 0 ? SH_ENOMEM : SH_OK;
    e->val = mono;
    r->mine = mono;
    r->taken = true;
    return SH_OK;
}

/* The send is over (its message queued, or refused): a ban or timeout
 * draining the channel may go on.  With @refused, give back what
 * slow_reserve() took, unless a later send of the author replaced it
 * meanwhile (it can only have passed once slow mode was off, and then its
 * own record stands). */
static void send_end(struct sh__chat *chat, struct sh__chan *ch,
                     const char *actor, struct slow_resv *r, bool refused)
{
    struct sh__idmap_ent *e;

    if (!r->taken && !r->inflight)
        return;
    pthread_mutex_lock(&chat->mu);
    if (refused && r->taken) {
        e = sh__idmap_get(&ch->last_send, actor);
        if (e != NULL && e->val == r->mine) {
            if (r->had_prev)
                e->val = r->prev;
            else
                (void)sh__idmap_del(&ch->last_send, actor);
        }
    }
    r->taken = false;
    if (r->inflight && --ch->inflight[r->phase] == 0)
        pthread_cond_broadcast(&chat->drained);
    r->inflight = false;
    pthread_mutex_unlock(&chat->mu);
}

static void slow_release(struct sh__chat *chat, struct sh__chan *ch,
                         const char *actor, struct slow_resv *r)
{
    send_end(chat, ch, actor, r, true);
}

static sh_err_t send_impl(sh_hub_t *hub, const char *actor_id,
                          const char *stream_id, const char *text,
                          size_t len, sh_chat_message_t **msg_out,
                          int64_t *retry_after_ms, char *errbuf,
                          size_t errbuf_len)
{
    struct sh__chat *chat;
    struct sh__chan *ch;
    struct sh__idmap_ent *e;
    struct sh__wb_row row;
    struct sh__wb_ticket ticket;
    struct sh__bus_claim claim;
    json_object *mine = NULL;
    const char *head = NULL, *tail = NULL;
    size_t head_len = 0, tail_len = 0, event_len = 0;
    char *event = NULL;         /* the outbox's copy, or NULL */
    pthread_mutex_t *order;     /* the outbox's order (sh__wb_order) */
    uint64_t offset = 0;
    bool want_copy;
    char channel[SH__ID_SIZE], username[64], id[SH__ID_SIZE];
    char chan_name[8 + SH__ID_SIZE];
    char *clean = NULL, *folded = NULL;
    size_t clean_len = 0, folded_len = 0;
    int64_t now_ms, mono, retry = 0, max_len;
    unsigned roles = 0;
    bool live = false, exempt, blocked;
    struct slow_resv slot = { false, false, 0, 0, false, 0 };
    sh_err_t rc;

    if (msg_out != NULL)
        *msg_out = NULL;
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len, "the hub is closing");
    chat = hub->chat;
    if (actor_id == NULL)
        return refuse(SH_EUNAUTHENTICATED, errbuf, errbuf_len,
                      "authentication required");
    if (stream_id == NULL || (text == NULL && len > 0))
        return refuse(SH_EINVAL, errbuf, errbuf_len,
                      "stream id and text are required");
    if (text == NULL)
        text = "";

    /* 1. the author */
    rc = sh__chat_user_get(hub, actor_id, username, &roles);
    if (rc == SH_ENOTFOUND)
        return refuse(SH_EUNAUTHENTICATED, errbuf, errbuf_len,
                      "the authenticated user no longer exists");
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len, "cannot read the author");
    /* 2. the stream */
    rc = sh__chat_stream_get(hub, stream_id, channel, &live);
    if (rc == SH_ENOTFOUND)
        return refuse(rc, errbuf, errbuf_len, "no such stream");
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len, "cannot read the stream");
    if (!live)
        return refuse(SH_ECONFLICT, errbuf, errbuf_len,
                      "the stream is offline");

    /* 3..6: the channel's moderation state, from memory */
    rc = sh__chan_lock(hub, channel, &ch);
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len,
                      "cannot load the channel's chat settings");
    now_ms = sh__now_ms();
    mono = sh__mono_ms();
    if (sh__idmap_get(&ch->bans, actor_id) != NULL) {
        pthread_mutex_unlock(&chat->mu);
        return refuse(SH_EBANNED, errbuf, errbuf_len,
                      "you are banned from this chat");
    }
    e = sh__idmap_get(&ch->timeouts, actor_id);
    if (e != NULL) {
        if (e->val > now_ms) {
            retry = e->val - now_ms;
            pthread_mutex_unlock(&chat->mu);
            if (retry_after_ms != NULL)
                *retry_after_ms = retry;
            return refuse(SH_ETIMEDOUT_USER, errbuf, errbuf_len,
                          "you are timed out in this chat");
        }
        (void)sh__idmap_del(&ch->timeouts, actor_id);   /* expired */
    }
    exempt = sh__chan_is_staff(ch, actor_id, roles);
    if (ch->followers_only && !exempt) {
        e = sh__idmap_get(&ch->followers, actor_id);
        if (e == NULL) {
            uint64_t gen = chat->gen;
            bool follows = false;

            pthread_mutex_unlock(&chat->mu);
            rc = sh__is_following(hub, actor_id, channel, &follows);
            if (rc != SH_OK)
                return refuse(rc, errbuf, errbuf_len,
                              "cannot read the follower status");
            pthread_mutex_lock(&chat->mu);
            if (chat->gen == gen &&
                sh__lru_room(&chat->lru_followers, NULL, NULL)) {
                e = sh__idmap_put(&ch->followers, actor_id);
                if (e != NULL)
                    e->val = follows ? 1 : 0;
            }
            if (!follows) {
                pthread_mutex_unlock(&chat->mu);
                return refuse(SH_EFOLLOWERSONLY, errbuf, errbuf_len,
                              "this chat is for followers only");
            }
        } else if (e->val == 0) {
            sh__idmap_touch(e);
            pthread_mutex_unlock(&chat->mu);
            return refuse(SH_EFOLLOWERSONLY, errbuf, errbuf_len,
                          "this chat is for followers only");
        } else {
            sh__idmap_touch(e);
        }
    }
    if (ch->slow_mode_s > 0 && !exempt) {
        e = sh__idmap_get(&ch->last_send, actor_id);
        if (e != NULL && mono - e->val < ch->slow_mode_s * 1000) {
            retry = ch->slow_mode_s * 1000 - (mono - e->val);
            pthread_mutex_unlock(&chat->mu);
            if (retry_after_ms != NULL)
                *retry_after_ms = retry;
            return refuse(SH_ESLOWMODE, errbuf, errbuf_len,
                          "slow mode: wait before sending again");
        }
    }
    /* Slow mode counts from this message: reserved now, given back below
     * if the message is refused after all. */
    rc = exempt ? SH_OK : slow_reserve(chat, ch, actor_id, mono, &slot);
    if (rc != SH_OK) {
        pthread_mutex_unlock(&chat->mu);
        return refuse(rc, errbuf, errbuf_len,
                      rc == SH_EBUSY ? "chat is overloaded: too many "
                                       "authors in slow mode; retry later"
                                     : "out of memory");
    }
    /* Every check passed: a ban or timeout from now on waits for this
     * send to queue its message or give up (sh__chan_drain). */
    slot.phase = ch->phase;
    ch->inflight[slot.phase]++;
    slot.inflight = true;
    max_len = ch->max_len;
    pthread_mutex_unlock(&chat->mu);

    /* 7..9: length, UTF-8, control characters */
    rc = sh__chat_text_clean(text, len, max_len, &clean, &clean_len);
    if (rc != SH_OK)
        slow_release(chat, ch, actor_id, &slot);
    switch (rc) {
    case SH_OK:
        break;
    case SH_ETOOLONG:
        sh__errbuf(errbuf, errbuf_len,
                   "the message is longer than %lld code points",
                   (long long)max_len);
        return rc;
    case SH_EBADUTF8:
        return refuse(rc, errbuf, errbuf_len,
                      "the message is not valid UTF-8");
    case SH_EEMPTY:
        return refuse(rc, errbuf, errbuf_len, "the message is empty");
    default:
        return refuse(rc, errbuf, errbuf_len, "out of memory");
    }

    /* 10: blocked terms, on a folded copy */
    pthread_mutex_lock(&chat->mu);
    blocked = false;
    if (ch->nterms > 0) {
        rc = sh__chat_fold(clean, clean_len, &folded, &folded_len);
        if (rc == SH_OK)
            blocked = sh__chat_terms_match(ch->folded, ch->folded_len,
                                           ch->nterms, folded, folded_len);
    }
    pthread_mutex_unlock(&chat->mu);
    free(folded);
    if (rc != SH_OK || blocked)
        slow_release(chat, ch, actor_id, &slot);
    if (rc != SH_OK) {
        free(clean);
        return refuse(rc, errbuf, errbuf_len, "out of memory");
    }
    if (blocked) {
        free(clean);
        return refuse(SH_EBLOCKEDTERM, errbuf, errbuf_len,
                      "the message contains a blocked term");
    }

    /* Room in the queue before the last token is taken. */
    rc = sh__wb_reserve(chat->wb);
    if (rc != SH_OK) {
        slow_release(chat, ch, actor_id, &slot);
        free(clean);
        return refuse(rc, errbuf, errbuf_len,
                      rc == SH_EBUSY
                          ? "chat is overloaded: the message store is "
                            "behind; retry later"
                          : "the hub is closing");
    }
    /* 11: the author's rate limit */
    if (!sh__limiter_take(chat->limiter, actor_id, strlen(actor_id), 1.0,
                          mono, &retry)) {
        sh__wb_unreserve(chat->wb);
        slow_release(chat, ch, actor_id, &slot);
        free(clean);
        if (retry_after_ms != NULL)
            *retry_after_ms = retry;
        return refuse(SH_ERATELIMITED, errbuf, errbuf_len,
                      "too many messages; retry later");
    }

    snprintf(chan_name, sizeof chan_name, "chat:%s", stream_id);
    chat_id(chat, id);
    /* The caller (or the mentions) needs a copy of the message. */
    want_copy = msg_out != NULL || memchr(clean, '@', clean_len) != NULL;
    mine = sh__chat_message_obj(id, stream_id, actor_id, username, clean,
                                clean_len, 0, now_ms, false);
    if (mine == NULL ||
        !msg_split(mine, &head, &head_len, &tail, &tail_len)) {
        json_object_put(mine);
        sh__wb_unreserve(chat->wb);
        sh__limiter_give(chat->limiter, actor_id, strlen(actor_id), 1.0);
        slow_release(chat, ch, actor_id, &slot);
        free(clean);
        return refuse(SH_ENOMEM, errbuf, errbuf_len, "out of memory");
    }
    /* commit: the offset is claimed now and the event published by the
     * writer once the message is stored (writebehind.c says why);
     * async: published now. */
    memset(&claim, 0, sizeof claim);
    order = sh__wb_order(chat->wb, stream_id);
    if (order != NULL)
        pthread_mutex_lock(order);
    if (chat->commit) {
        rc = sh__bus_claim_spliced(hub->bus, chan_name, "chat.message", head,
                                   head_len, tail, tail_len, &claim, errbuf,
                                   errbuf_len);
        offset = claim.offset;
    } else {
        rc = sh__bus_publish_spliced(hub->bus, chan_name, "chat.message",
                                     head, head_len, tail, tail_len, &offset,
                                     errbuf, errbuf_len);
    }
    if (rc != SH_OK) {
        if (order != NULL)
            pthread_mutex_unlock(order);
        json_object_put(mine);
        sh__wb_unreserve(chat->wb);
        sh__limiter_give(chat->limiter, actor_id, strlen(actor_id), 1.0);
        slow_release(chat, ch, actor_id, &slot);
        free(clean);
        return rc;
    }
    /* The outbox's copy of the event goes with the row: stored in its
     * batch's transaction (writebehind.c). */
    if (sh__outbox_on(hub) &&
        (event = msg_join(head, head_len, offset, tail, tail_len,
                          &event_len)) == NULL) {
        if (chat->commit)
            sh__bus_release(hub->bus, &claim, false);
        pthread_mutex_unlock(order);
        json_object_put(mine);
        sh__wb_unreserve(chat->wb);
        sh__limiter_give(chat->limiter, actor_id, strlen(actor_id), 1.0);
        slow_release(chat, ch, actor_id, &slot);
        free(clean);
        return refuse(SH_ENOMEM, errbuf, errbuf_len, "out of memory");
    }
    /* The copy gets its offset now (which drops json-c's cached text:
     * head and tail are dead from here). */
    if (!want_copy || !sh__jset_int(mine, "offset", (int64_t)offset)) {
        json_object_put(mine);
        mine = NULL;
    }

    memset(&row, 0, sizeof row);
    memcpy(row.id, id, SH__ID_SIZE);
    memcpy(row.stream_id, stream_id, strlen(stream_id) + 1);
    memcpy(row.channel_id, channel, SH__ID_SIZE);
    memcpy(row.author_id, actor_id, strlen(actor_id) + 1);
    row.text = clean;
    row.text_len = clean_len;
    row.event = event;
    row.event_len = event_len;
    row.offset = (int64_t)offset;
    row.created_ms = now_ms;
    if (sh__trace_cur != NULL) {    /* out of memory: untraced, no more */
        char tp[SH__TRACEPARENT_LEN + 1];

        sh__trace_current(tp);
        row.traceparent = strdup(tp);
    }
    if (mine != NULL && memchr(clean, '@', clean_len) != NULL)
        (void)json_object_deep_copy(mine, &row.mention_msg, NULL);
    row.claim = claim;
    row.ticket = NULL;
    if (chat->commit) {
        ticket.done = false;
        ticket.rc = SH_OK;
        pthread_cond_init(&ticket.cv, NULL);
        row.ticket = &ticket;
    }
    /* With commit this waits for the batch: the send stays in flight
     * until it is stored and published, so a ban that drains the channel
     * sees it (sh__chan_drain). */
    rc = sh__wb_push_ordered(chat->wb, &row, order);
    if (chat->commit)
        pthread_cond_destroy(&ticket.cv);
    if (rc != SH_OK) {
        json_object_put(mine);
        sh__limiter_give(chat->limiter, actor_id, strlen(actor_id), 1.0);
        slow_release(chat, ch, actor_id, &slot);
        return refuse(rc, errbuf, errbuf_len,
                      rc == SH_ECANCELED
                          ? "the hub is closing"
                          : "the message could not be stored");
    }
    send_end(chat, ch, actor_id, &slot, false);

    sh__stats_chat_accepted(hub, stream_id, actor_id, now_ms);

    if (msg_out != NULL) {
        struct sh__jh *h = mine != NULL ? sh__jh_new(mine) : NULL;

        if (h == NULL)
            return refuse(SH_ENOMEM, errbuf, errbuf_len,
                          "the message was sent, but its copy could not "
                          "be returned");
        *msg_out = (sh_chat_message_t *)h;
    } else {
        json_object_put(mine);
    }
    return SH_OK;
}

SH_API sh_err_t sh_chat_send(sh_hub_t *hub, const char *actor_id,
                             const char *stream_id, const char *text,
                             size_t len, sh_chat_message_t **msg_out,
                             int64_t *retry_after_ms, char *errbuf,
                             size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc = send_impl(hub, actor_id, stream_id, text, len, msg_out,
                            retry_after_ms, errbuf, errbuf_len);

    if (hub != NULL && hub->chat != NULL)
        (void)counted(hub, rc);
    if (rc == SH_OK)
        sh__store_wrote(hub->store, stream_id);
    return rc;
}

/* ---- history --------------------------------------------------------------- */

static const struct sh__sql q_history = {
    "SELECT m.id, m.author_id, u.username, m.text, m.\"offset\", "
    "m.created_at, m.deleted FROM chat_messages m "
    "JOIN users u ON u.id = m.author_id "
    "WHERE m.stream_id = ? AND m.\"offset\" < ? "
    "ORDER BY m.\"offset\" DESC LIMIT ?", NULL, NULL
};

struct hist_ctx {
    const char *stream_id;
    json_object *rows;      /* array, newest first */
    bool nomem;
};

static int hist_row(void *arg, const struct sh__row *row)
{
    struct hist_ctx *hc = arg;
    size_t tlen = 0;
    const char *text = sh__row_text(row, 3, &tlen);
    json_object *o;

    o = sh__chat_message_obj(sh__row_text(row, 0, NULL), hc->stream_id,
                             sh__row_text(row, 1, NULL),
                             sh__row_text(row, 2, NULL),
                             text != NULL ? text : "", tlen,
                             sh__row_int(row, 4), sh__row_int(row, 5),
                             sh__row_int(row, 6) != 0);
    if (o == NULL || json_object_array_add(hc->rows, o) != 0) {
        json_object_put(o);
        hc->nomem = true;
        return 1;
    }
    return 0;
}

static char *offset_cursor(int64_t offset)
{
    json_object *k = json_object_new_array();
    char *out = NULL;

    if (k == NULL)
        return NULL;
    if (json_object_array_add(k, json_object_new_int64(offset)) != 0) {
        json_object_put(k);
        return NULL;
    }
    if (sh__cursor_encode(k, &out) != SH_OK)
        return NULL;
    return out;
}

SH_API void sh_chat_message_list_free(sh_chat_message_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->cursors != NULL ? l->cursors[i] : NULL);
    free(l->cursors);
    free(l->items);
    json_object_put(l->obj);
    free(l);
}

SH_API sh_err_t sh_chat_history(sh_hub_t *hub, const char *stream_id,
                                int last, const char *before_cursor,
                                sh_chat_message_list_t **out, char *errbuf,
                                size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct hist_ctx hc = { stream_id, NULL, false };
    sh_chat_message_list_t *l = NULL;
    json_object *keys = NULL, *items = NULL, *cursors = NULL;
    struct sh__conn *c = NULL;
    struct sh__val p[3];
    char channel[SH__ID_SIZE];
    int64_t before = INT64_MAX;
    size_t got, n, i;
    bool live, more;
    int page;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    if (stream_id == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "stream id and out are required");
        return SH_EINVAL;
    }
    /* The shared page helpers speak of first/after: name the parameters
     * of this call in its errors. */
    rc = sh__page_first(last == 0 ? 50 : last, &page, errbuf, errbuf_len);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "last: %d is out of range (0 for "
                   "the default, or 1 and more)", last);
        return rc;
    }
    rc = sh__cursor_decode(before_cursor, 1, &keys, errbuf, errbuf_len);
    if (rc != SH_OK) {
        if (rc == SH_EINVAL)
            sh__errbuf(errbuf, errbuf_len, "before: not a valid cursor");
        return rc;
    }
    if (keys != NULL) {
        json_object *k0 = json_object_array_get_idx(keys, 0);

        if (!json_object_is_type(k0, json_type_int) ||
            json_object_get_int64(k0) < 1) {
            json_object_put(keys);
            sh__errbuf(errbuf, errbuf_len, "before: not a valid cursor");
            return SH_EINVAL;
        }
        before = json_object_get_int64(k0);
        json_object_put(keys);
    }
    rc = sh__chat_stream_get(hub, stream_id, channel, &live);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "%s",
                   rc == SH_ENOTFOUND ? "no such stream"
                                      : "cannot read the stream");
        return rc;
    }
    sh__wb_flush(hub->chat->wb);

    hc.rows = json_object_new_array();
    if (hc.rows == NULL)
        return SH_ENOMEM;
    p[0] = sh__v_text(stream_id);
    p[1] = sh__v_int(before);
    p[2] = sh__v_int(page + 1);
    /* The replica, unless a message was sent here to this stream within
     * store-read.write-window-ms (the sender sees it in the history). */
    rc = sh__store_acquire_read(hub->store, stream_id, &c);
    if (rc != SH_OK)
        goto out;
    rc = sh__store_exec(c, &q_history, p, 3, hist_row, &hc, NULL, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc == SH_OK && hc.nomem)
        rc = SH_ENOMEM;
    if (rc != SH_OK)
        goto out;

    got = json_object_array_length(hc.rows);
    more = got > (size_t)page;
    n = more ? (size_t)page : got;
    rc = SH_ENOMEM;
    l = calloc(1, sizeof *l);
    if (l == NULL)
        goto out;
    l->obj = json_object_new_object();
    items = json_object_new_array_ext((int)n);
    cursors = json_object_new_array_ext((int)n);
    l->items = calloc(n + 1, sizeof *l->items);
    l->cursors = calloc(n + 1, sizeof *l->cursors);
    if (l->obj == NULL || items == NULL || cursors == NULL ||
        l->items == NULL || l->cursors == NULL)
        goto out;
    for (i = 0; i < n; i++) {          /* newest first -> newest last */
        json_object *m = json_object_array_get_idx(hc.rows, n - 1 - i);

        l->cursors[i] = offset_cursor(sh__jint(m, "offset"));
        if (l->cursors[i] == NULL)
            goto out;
        l->n = i + 1;
        if (json_object_array_add(items, json_object_get(m)) != 0 ||
            json_object_array_add(cursors,
                                  json_object_new_string(l->cursors[i])) != 0)
            goto out;
        l->items[i].obj = m;
    }
    if (!sh__jset(l->obj, "items", items)) {
        items = NULL;
        goto out;
    }
    items = NULL;
    if (!sh__jset(l->obj, "cursors", cursors)) {
        cursors = NULL;
        goto out;
    }
    cursors = NULL;
    if (!sh__jset_bool(l->obj, "hasPreviousPage", more) ||
        !sh__jset_bool(l->obj, "hasNextPage", before != INT64_MAX) ||
        !sh__jset_str(l->obj, "startCursor", n > 0 ? l->cursors[0] : NULL) ||
        !sh__jset_str(l->obj, "endCursor",
                      n > 0 ? l->cursors[n - 1] : NULL))
        goto out;
    *out = l;
    l = NULL;
    rc = SH_OK;
out:
    if (rc == SH_ENOMEM)
        sh__errbuf(errbuf, errbuf_len, "out of memory");
    json_object_put(items);
    json_object_put(cursors);
    sh_chat_message_list_free(l);
    json_object_put(hc.rows);   /* the list holds its own references */
    return rc;
}

/* ---- delete ------------------------------------------------------------------ */

static const struct sh__sql q_msg_find = {
    "SELECT stream_id, channel_id, \"offset\", deleted FROM chat_messages "
    "WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_msg_redact = {
    "UPDATE chat_messages SET text = '', deleted = 1 WHERE id = ?", NULL,
    NULL
};

struct find_ctx {
    char stream[SH__ID_SIZE];
    char channel[SH__ID_SIZE];
    int64_t offset;
    bool deleted;
    bool found;
};

static int find_row(void *arg, const struct sh__row *row)
{
    struct find_ctx *fc = arg;
    const char *s = sh__row_text(row, 0, NULL);
    const char *ch = sh__row_text(row, 1, NULL);

    if (s == NULL || ch == NULL || strlen(s) >= SH__ID_SIZE ||
        strlen(ch) >= SH__ID_SIZE)
        return 1;
    memcpy(fc->stream, s, strlen(s) + 1);
    memcpy(fc->channel, ch, strlen(ch) + 1);
    fc->offset = sh__row_int(row, 2);
    fc->deleted = sh__row_int(row, 3) != 0;
    fc->found = true;
    return 1;
}

SH_API sh_err_t sh_chat_delete(sh_hub_t *hub, const char *actor_id,
                               const char *message_id, char *errbuf,
                               size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct find_ctx fc;
    struct sh__conn *c = NULL;
    struct sh__chan *ch;
    struct sh__val p;
    char username[64], chan_name[8 + SH__ID_SIZE];
    unsigned roles = 0;
    json_object *ev;
    bool staff;
    sh_err_t rc;

    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    if (actor_id == NULL)
        return refuse(SH_EUNAUTHENTICATED, errbuf, errbuf_len,
                      "authentication required");
    if (message_id == NULL)
        return refuse(SH_EINVAL, errbuf, errbuf_len,
                      "message id is required");
    rc = sh__chat_user_get(hub, actor_id, username, &roles);
    if (rc == SH_ENOTFOUND)
        return refuse(SH_EUNAUTHENTICATED, errbuf, errbuf_len,
                      "the authenticated user no longer exists");
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len, "cannot read the user");
    if (!sh__uuid_valid(message_id))
        return refuse(SH_ENOTFOUND, errbuf, errbuf_len, "no such message");

    memset(&fc, 0, sizeof fc);
    fc.found = sh__wb_find(hub->chat->wb, message_id, fc.stream,
                           fc.channel, &fc.offset);
    if (!fc.found) {
        /* Perhaps in the writer's hands right now: let it finish. */
        sh__wb_flush(hub->chat->wb);
        p = sh__v_text(message_id);
        rc = sh__store_acquire(hub->store, &c);
        if (rc != SH_OK)
            return rc;
        rc = sh__store_exec(c, &q_msg_find, &p, 1, find_row, &fc, NULL,
                            errbuf, errbuf_len);
        sh__store_release(c);
        if (rc != SH_OK)
            return rc;
        if (!fc.found)
            return refuse(SH_ENOTFOUND, errbuf, errbuf_len,
                          "no such message");
    }
    rc = sh__chan_lock(hub, fc.channel, &ch);
    if (rc != SH_OK)
        return refuse(rc, errbuf, errbuf_len, "cannot load the channel");
    staff = sh__chan_is_staff(ch, actor_id, roles);
    pthread_mutex_unlock(&hub->chat->mu);
    if (!staff)
        return refuse(SH_EFORBIDDEN, errbuf, errbuf_len,
                      "only the broadcaster, its moderators or an admin "
                      "may delete messages");
    if (fc.deleted)
        return SH_OK;

    (void)sh__wb_redact(hub->chat->wb, message_id, NULL, NULL, 0);
    sh__wb_flush(hub->chat->wb);
    p = sh__v_text(message_id);
    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK)
        return rc;
    rc = sh__store_exec(c, &q_msg_redact, &p, 1, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    sh__store_wrote(hub->store, fc.stream);
    (void)sh__chat_redact_bus(hub, fc.channel, message_id, NULL, 0);

    snprintf(chan_name, sizeof chan_name, "chat:%s", fc.stream);
    ev = json_object_new_object();
    if (ev == NULL || !sh__jset_str(ev, "messageId", message_id) ||
        !sh__jset_int(ev, "offset", fc.offset)) {
        json_object_put(ev);
        return refuse(SH_ENOMEM, errbuf, errbuf_len,
                      "deleted, but the event could not be built");
    }
    rc = sh__bus_publish(hub->bus, chan_name, "chat.message_deleted", ev,
                         NULL, errbuf, errbuf_len);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN,
                   "cannot publish chat.message_deleted", "channel",
                   chan_name, (char *)NULL);
    return SH_OK;
}

/* ---- message getters ----------------------------------------------------------- */

static json_object *mobj(const sh_chat_message_t *m)
{
    return m != NULL ? m->obj : NULL;
}

SH_API const char *sh_chat_message_id(const sh_chat_message_t *m)
{
    return sh__jstr(mobj(m), "id");
}

SH_API const char *sh_chat_message_stream_id(const sh_chat_message_t *m)
{
    return sh__jstr(mobj(m), "streamId");
}

static json_object *author_of(const sh_chat_message_t *m)
{
    json_object *a;

    if (mobj(m) == NULL || !json_object_object_get_ex(mobj(m), "author", &a))
        return NULL;
    return a;
}

SH_API const char *sh_chat_message_author_id(const sh_chat_message_t *m)
{
    return sh__jstr(author_of(m), "id");
}

SH_API const char *sh_chat_message_author_username(
    const sh_chat_message_t *m)
{
    return sh__jstr(author_of(m), "username");
}

SH_API const char *sh_chat_message_text(const sh_chat_message_t *m,
                                        size_t *len)
{
    json_object *t;

    if (len != NULL)
        *len = 0;
    if (mobj(m) == NULL || !json_object_object_get_ex(mobj(m), "text", &t) ||
        !json_object_is_type(t, json_type_string))
        return NULL;
    if (len != NULL)
        *len = (size_t)json_object_get_string_len(t);
    return json_object_get_string(t);
}

SH_API int64_t sh_chat_message_offset(const sh_chat_message_t *m)
{
    return sh__jint(mobj(m), "offset");
}

SH_API const char *sh_chat_message_created_at(const sh_chat_message_t *m)
{
    return sh__jstr(mobj(m), "createdAt");
}

SH_API bool sh_chat_message_deleted(const sh_chat_message_t *m)
{
    return sh__jbool(mobj(m), "deleted");
}

SH_API const char *sh_chat_message_json(const sh_chat_message_t *m,
                                        size_t *len)
{
    return sh__jtext(mobj(m), len);
}

SH_API void sh_chat_message_free(sh_chat_message_t *m)
{
    sh__jh_free((struct sh__jh *)m);
}

SH_API size_t sh_chat_message_list_count(const sh_chat_message_list_t *l)
{
    return l != NULL ? l->n : 0;
}

SH_API const sh_chat_message_t *sh_chat_message_list_at(
    const sh_chat_message_list_t *l, size_t i)
{
    if (l == NULL || i >= l->n)
        return NULL;
    return (const sh_chat_message_t *)&l->items[i];
}

SH_API const char *sh_chat_message_list_cursor_at(
    const sh_chat_message_list_t *l, size_t i)
{
    if (l == NULL || i >= l->n)
        return NULL;
    return l->cursors[i];
}

SH_API bool sh_chat_message_list_has_previous(
    const sh_chat_message_list_t *l)
{
    return l != NULL && sh__jbool(l->obj, "hasPreviousPage");
}

SH_API const char *sh_chat_message_list_start_cursor(
    const sh_chat_message_list_t *l)
{
    return l != NULL && l->n > 0 ? l->cursors[0] : NULL;
}

SH_API const char *sh_chat_message_list_json(const sh_chat_message_list_t *l,
                                             size_t *len)
{
    if (l == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    return sh__jtext(l->obj, len);
}

/* ---- the area ---------------------------------------------------------------- */

/* Look every series up once: updates are then one atomic operation. */
static void metrics_init(sh_hub_t *hub, struct sh__chat *chat)
{
    static const sh_err_t refusals[] = {
        SH_EUNAUTHENTICATED, SH_ENOTFOUND, SH_ECONFLICT, SH_EBANNED,
        SH_ETIMEDOUT_USER, SH_EFOLLOWERSONLY, SH_ESLOWMODE, SH_ETOOLONG,
        SH_EBADUTF8, SH_EEMPTY, SH_EBLOCKEDTERM, SH_ERATELIMITED, SH_EBUSY,
    };
    struct sh__metric *m;

    if (hub->metrics == NULL)
        return;
    m = sh__metrics_add(hub->metrics, "streamhub_chat_messages_total",
                        SH__METRIC_COUNTER, "Chat messages accepted.", "",
                        NULL, 0);
    chat->m_accepted = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_chat_refused_total",
                        SH__METRIC_COUNTER,
                        "Chat messages refused, by error.", "error", NULL,
                        0);
    for (size_t i = 0; m != NULL && i < sizeof refusals / sizeof *refusals;
         i++)
        chat->m_refused[refusals[i]] =
            sh__metric_series(m, sh_err_name(refusals[i]));
    m = sh__metrics_add(hub->metrics,
                        "streamhub_chat_writebehind_batch_seconds",
                        SH__METRIC_HISTOGRAM,
                        "Time to store one write-behind batch.", "", NULL, 0);
    chat->m_batch_seconds = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(hub->metrics,
                        "streamhub_chat_writebehind_errors_total",
                        SH__METRIC_COUNTER,
                        "Write-behind batches that failed and were retried.",
                        "", NULL, 0);
    chat->m_store_errors = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_chat_cache_entries",
                        SH__METRIC_GAUGE,
                        "Entries in the chat's in-memory caches, each "
                        "bounded by its chat.cache-* key.", "cache", NULL,
                        0);
    if (m != NULL) {
        chat->lru_users.gauge = sh__metric_series(m, "users");
        chat->lru_streams.gauge = sh__metric_series(m, "streams");
        chat->lru_authors.gauge = sh__metric_series(m, "authors");
        chat->lru_followers.gauge = sh__metric_series(m, "followers");
    }
}

sh_err_t sh__chat_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__chat *chat;
    double cap, window;
    sh_err_t rc;

    chat = calloc(1, sizeof *chat);
    if (chat == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    pthread_mutex_init(&chat->mu, NULL);
    pthread_mutex_init(&chat->mod_mu, NULL);
    pthread_cond_init(&chat->drained, NULL);
    chat->lru_users.cap = (size_t)sh__config_int(hub->conf,
                                                 "chat.cache-users");
    chat->lru_streams.cap = (size_t)sh__config_int(hub->conf,
                                                   "chat.cache-streams");
    chat->lru_authors.cap = (size_t)sh__config_int(hub->conf,
                                                   "chat.cache-authors");
    chat->lru_followers.cap = (size_t)sh__config_int(hub->conf,
                                                     "chat.cache-followers");
    chat->users.lru = &chat->lru_users;
    chat->streams.lru = &chat->lru_streams;
    crypto_stream_chacha20_ietf_keygen(chat->id_key);
    atomic_init(&chat->id_seq, 0);
    chat->default_max_len = sh__config_int(hub->conf,
                                           "chat.max-message-length");
    chat->commit = strcmp(sh__config_str(hub->conf, "chat.durability"),
                          "async") != 0;
    chat->redact_window_ms = sh__config_int(hub->conf,
                                            "chat.redact-window-seconds")
                             * 1000;
    cap = (double)sh__config_int(hub->conf, "chat.rate-limit");
    window = (double)sh__config_int(hub->conf, "chat.rate-window-seconds");
    chat->limiter = sh__limiter_new(cap, cap / window, 1u << 20);
    /* A cluster shares each author's bucket: sends run on workers. */
    if (chat->limiter != NULL)
        (void)sh__cluster_share_limiter(hub, chat->limiter, "chat");
    if (chat->limiter == NULL) {
        pthread_cond_destroy(&chat->drained);
        pthread_mutex_destroy(&chat->mod_mu);
        pthread_mutex_destroy(&chat->mu);
        free(chat);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    metrics_init(hub, chat);
    hub->chat = chat;
    rc = sh__wb_start(hub, &chat->wb, errbuf, errbuf_len);
    if (rc != SH_OK) {
        hub->chat = NULL;
        sh__limiter_free(chat->limiter);
        pthread_cond_destroy(&chat->drained);
        pthread_mutex_destroy(&chat->mod_mu);
        pthread_mutex_destroy(&chat->mu);
        free(chat);
        return rc;
    }
    return SH_OK;
}

void sh__chat_fini(sh_hub_t *hub)
{
    struct sh__chat *chat = hub->chat;

    if (chat == NULL)
        return;
    sh__wb_stop(chat->wb);              /* stores everything queued */
    while (chat->retired != NULL) {
        struct sh__chan *ch = chat->retired;

        chat->retired = ch->retired_next;
        sh__chan_free(ch);
    }
    sh__idmap_clear(&chat->chans, sh__chan_free);
    sh__idmap_clear(&chat->streams, free);
    sh__idmap_clear(&chat->users, free);
    sh__limiter_free(chat->limiter);
    pthread_cond_destroy(&chat->drained);
    pthread_mutex_destroy(&chat->mod_mu);
    pthread_mutex_destroy(&chat->mu);
    sodium_memzero(chat->id_key, sizeof chat->id_key);
    free(chat);
    hub->chat = NULL;
}

size_t sh__chat_queue_depth(sh_hub_t *hub)
{
    if (hub == NULL || hub->chat == NULL)
        return 0;
    return sh__wb_depth(hub->chat->wb);
}
