/* libstreamhub/services/chat_int.h: chat, moderation and the write-behind
 * queue (chat.c, chat_rules.c, moderation.c, writebehind.c).
 *
 * The hot path (sh_chat_send) answers every moderation question from memory:
 * a channel's settings, bans, timeouts, moderators, the authors' last send
 * times and follower status are loaded from the store once, at the first
 * message or moderation call of the channel, and kept current by the
 * moderation calls of this hub (moderation.c) and by the follows area
 * (sh__chat_follow_changed()).  Streams (stream -> channel, live) and users
 * (username, roles) are cached too; a stream's liveness is re-read from the
 * store at most once a second (SH__CHAT_STREAM_TTL_MS), or at once when the
 * streams area calls sh__chat_stream_changed().
 *
 * Locking: one mutex (struct sh__chat.mu) guards every cache.  It is never
 * held across a store or bus call: a cache miss drops it, reads the store,
 * takes it again and installs the result only when no change raced it
 * (the generation counter `gen`).
 *
 * Several hubs on one store (a cluster) would each keep their own cache;
 * that needs the bus to carry moderation changes between nodes (later).
 */
#ifndef SH_CHAT_INT_H
#define SH_CHAT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/metrics_int.h"
#include "core/ratelimit_int.h"
#include "services/chat_rules_int.h"
#include "services/services_int.h"
#include "streamhub/chat.h"
#include "streamhub/moderation.h"

#define SH__CHAT_STREAM_TTL_MS 1000
#define SH__CHAT_ROLE_TTL_MS 5000
#define SH__ID_SIZE (SH__UUID_LEN + 1)

/* ---- a small map keyed by UUID text ----------------------------------- */

struct sh__idmap;
struct sh__lru;

struct sh__idmap_ent {
    struct sh__idmap_ent *next;
    struct sh__idmap_ent *lru_prev, *lru_next;  /* on map->lru, if any */
    struct sh__idmap *map;  /* the map holding the entry */
    char key[SH__ID_SIZE];
    int64_t val;
    void *ptr;              /* owned by the map's user; freed by its fn */
};

/* Chained hash map.  Invariant: n entries; nb is 0 or a power of two.
 * With @lru set, every entry is also on that list (which several maps may
 * share: one bound over the maps of every channel), put and touch move it
 * to the front, del and clear take it off. */
struct sh__idmap {
    struct sh__idmap_ent **b;
    size_t nb, n;
    struct sh__lru *lru;    /* borrowed, or NULL: unbounded */
    void *owner;            /* the struct sh__chan of a channel's map */
};

/* A bounded cache: the entries of one or more maps, most recently used
 * first.  @n counts them; @cap is the bound that sh__lru_room() keeps;
 * @gauge (may be NULL) follows @n in /metrics. */
struct sh__lru {
    struct sh__idmap_ent *head, *tail;
    size_t n, cap;
    struct sh__series *gauge;
};

/* The entry of @key, or NULL. */
struct sh__idmap_ent *sh__idmap_get(const struct sh__idmap *m,
                                    const char *key);
/* The entry of @key, made (val 0, ptr NULL) when absent; NULL on ENOMEM. */
struct sh__idmap_ent *sh__idmap_put(struct sh__idmap *m, const char *key);
/* Remove @key; returns its ptr (for the caller to free), NULL if absent. */
void *sh__idmap_del(struct sh__idmap *m, const char *key);
/* Free every entry, calling @free_ptr (may be NULL) on each ptr. */
void sh__idmap_clear(struct sh__idmap *m, void (*free_ptr)(void *));
/* Mark @e (of a map with an lru) as just used. */
void sh__idmap_touch(struct sh__idmap_ent *e);

/* Make room for one more entry in @l: when it holds @cap, evict from its
 * least recently used end the entries (among the last SH__LRU_SCAN) that
 * @may_evict allows (NULL: any), freeing their ptr with free().  Returns
 * false when no room could be made (every candidate still needed). */
bool sh__lru_room(struct sh__lru *l,
                  bool (*may_evict)(const struct sh__idmap_ent *, void *),
                  void *arg);
#define SH__LRU_SCAN 32

/* ---- cached state ----------------------------------------------------- */

/* A channel's moderation state.  @locality any  @locks sh__chat.mu */
struct sh__chan {
    char id[SH__ID_SIZE];
    int64_t slow_mode_s;
    bool followers_only;
    int64_t max_len;              /* code points */
    json_object *terms;           /* owned: array of the terms as set */
    char **folded;                /* owned: nterms folded copies */
    size_t *folded_len;
    size_t nterms;
    struct sh__idmap bans;        /* user -> 1 */
    struct sh__idmap timeouts;    /* user -> until (wall ms) */
    struct sh__idmap mods;        /* user -> 1 */
    struct sh__idmap last_send;   /* user -> mono ms of the last message */
    struct sh__idmap followers;   /* user -> 1 follows, 0 does not */
    /* Sends past their checks whose message is not queued yet, by the
     * phase they checked in: a ban or timeout flips the phase and waits
     * for the sends of the old one (sh__chan_drain), so that none of them
     * publishes after it returned.  New sends count in the new phase:
     * a busy chat cannot starve the wait. */
    unsigned inflight[2];
    unsigned phase;               /* 0 or 1 */
    struct sh__chan *retired_next; /* on sh__chat.retired */
};

/* A stream seen by the chat.  @locks sh__chat.mu */
struct sh__cstream {
    char id[SH__ID_SIZE];
    char channel[SH__ID_SIZE];
    bool live;
    int64_t checked_ms;           /* mono time of the last store read */
};

/* A user seen by the chat.  @locks sh__chat.mu */
struct sh__cuser {
    char name[64];
    unsigned roles;
    int64_t roles_ms;             /* mono time the roles were read */
};

struct sh__wb;

struct sh__chat {
    pthread_mutex_t mu;
    /* Bounds of the caches keyed by what clients send (chat.cache-*):
     * users, streams, and over every channel the authors' last sends and
     * the follower answers.  An author's last send leaves only once it is
     * older than its channel's slow-mode window, so that eviction never
     * lets anyone through slow mode: a new author finding the bound full
     * of live entries is refused (SH_EBUSY). */
    struct sh__lru lru_users, lru_streams, lru_authors, lru_followers;
    /* Held by each moderation change (moderation.c) from its store write
     * (or its read-merge-write of the settings) to its cache update, so
     * that racing changes reach the cache in the order they reached the
     * store.  Taken before mu, never while holding it. */
    pthread_mutex_t mod_mu;
    pthread_cond_t drained;       /* with mu: a phase's inflight hit 0 */
    uint64_t gen;                 /* bumped by each moderation change */
    struct sh__idmap chans;       /* channel id -> struct sh__chan */
    struct sh__idmap streams;     /* stream id -> struct sh__cstream */
    struct sh__idmap users;       /* user id -> struct sh__cuser */
    struct sh__limiter *limiter;  /* per author: chat.rate-limit */
    int64_t default_max_len;      /* chat.max-message-length */
    int64_t redact_window_ms;     /* chat.redact-window-seconds */
    struct sh__wb *wb;            /* the write-behind queue */
    bool commit;                  /* chat.durability = commit */
    struct sh__chan *retired;     /* dropped, freed at fini */
    /* Message ids' random bits: ChaCha20 under a key drawn at init, one
     * nonce per id (chat.c: chat_id), no system call per message. */
    unsigned char id_key[32];
    _Atomic uint64_t id_seq;
    /* Metrics (NULL when the registry could not make them): */
    struct sh__series *m_accepted;          /* messages accepted */
    struct sh__series *m_refused[SH_EEMPTY + 1]; /* by sh_err_t */
    struct sh__series *m_batch_seconds;     /* one write-behind batch */
    struct sh__series *m_store_errors;      /* failed batches (retried) */
};

/* ---- chat.c ----------------------------------------------------------- */

/* The ChatMessage JSON (a new reference); NULL on ENOMEM. */
json_object *sh__chat_message_obj(const char *id, const char *stream_id,
                                  const char *author_id,
                                  const char *username, const char *text,
                                  size_t len, int64_t offset,
                                  int64_t created_ms, bool deleted);

/* Stream @stream_id from the cache, read from the store when unknown or
 * older than the TTL: copies its channel and liveness out.
 * Errors: SH_ENOTFOUND, SH_ESTORE, SH_ENOMEM. */
sh_err_t sh__chat_stream_get(sh_hub_t *hub, const char *stream_id,
                             char channel[SH__ID_SIZE], bool *live);

/* The user's username (cached) and roles (cached for
 * SH__CHAT_ROLE_TTL_MS).  SH_ENOTFOUND, SH_ESTORE. */
sh_err_t sh__chat_user_get(sh_hub_t *hub, const char *user_id,
                           char name[64], unsigned *roles);

/* Redact, in the bus history of every stream of @channel that this hub
 * caches or whose stored messages match, the messages matching:
 * @message_id (when not NULL) or else those of @author_id sent at or after
 * @since_ms.  Returns how many were replaced. */
int sh__chat_redact_bus(sh_hub_t *hub, const char *channel,
                        const char *message_id, const char *author_id,
                        int64_t since_ms);

/* ---- chat_rules.c: the checks of the text (chat_rules_int.h) ---------- */

/* ---- moderation.c ----------------------------------------------------- */

/* The loaded state of @channel (loading it from the store on first use),
 * returned with hub->chat->mu HELD on SH_OK (the caller unlocks).
 * Errors: SH_ESTORE, SH_ENOMEM (mutex not held). */
sh_err_t sh__chan_lock(sh_hub_t *hub, const char *channel,
                       struct sh__chan **out);
void sh__chan_free(void *chan);

/* Wait, with mu held (it is released while waiting), until every send
 * that passed its checks on @chan before this call has queued its message
 * or given up.  Called with mod_mu held too: one drain at a time. */
void sh__chan_drain(struct sh__chat *chat, struct sh__chan *chan);

/* May @actor (with @roles) moderate @chan?  Broadcaster, moderator, admin.
 * @locks mu held. */
bool sh__chan_is_staff(const struct sh__chan *chan, const char *actor,
                       unsigned roles);

/* ---- writebehind.c ---------------------------------------------------- */

/* A sender waiting for its row's batch (chat.durability = commit).
 * @locks the queue's mutex */
struct sh__wb_ticket {
    pthread_cond_t cv;          /* signalled once, when done is set */
    bool done;
    sh_err_t rc;                /* SH_OK: stored (and published) */
};

/* One message on its way to the store. */
struct sh__wb_row {
    char id[SH__ID_SIZE];
    char stream_id[SH__ID_SIZE];
    char channel_id[SH__ID_SIZE];
    char author_id[SH__ID_SIZE];
    char *text;                 /* owned */
    size_t text_len;
    char *event;                /* owned or NULL: the outbox's event */
    size_t event_len;
    int64_t offset;
    int64_t created_ms;
    bool deleted;
    json_object *mention_msg;   /* owned or NULL: run mentions after store */
    /* owned or NULL: the sender's W3C traceparent, when traced (the
     * writer stores the outbox row on its own thread, outside the
     * sender's span); a pointer, so an untraced hub's queue stays small */
    char *traceparent;
    /* commit: the message's claimed offset, published once stored (or
     * given up when it cannot be); empty in async mode. */
    struct sh__bus_claim claim;
    struct sh__wb_ticket *ticket; /* commit: its sender's, else NULL */
};

sh_err_t sh__wb_start(sh_hub_t *hub, struct sh__wb **out, char *errbuf,
                      size_t errbuf_len);
/* Store everything queued, stop the writer, free.  NULL is a no-op. */
void sh__wb_stop(struct sh__wb *wb);
/* Reserve room for one row: SH_EBUSY when the queue is full. */
sh_err_t sh__wb_reserve(struct sh__wb *wb);
void sh__wb_unreserve(struct sh__wb *wb);
/* Queue @row (its contents taken) into a reserved slot.  With a ticket
 * (row->ticket), wait until the row's batch is stored and its claim
 * published, and return SH_OK, or the reason it could not be stored
 * (SH_ESTORE, SH_ECANCELED: the writer stopped).  Never call it on a loop
 * thread: it waits on the store. */
sh_err_t sh__wb_push(struct sh__wb *wb, struct sh__wb_row *row);
/* With the outbox on, the lock a send on @stream_id holds from its
 * offset (claim or publish) to sh__wb_push_ordered(), which releases it
 * once the row is queued: the queue then holds each channel in offset
 * order, and so does the outbox.  NULL without the outbox. */
#define SH__WB_ORDER_STRIPES 64
pthread_mutex_t *sh__wb_order(struct sh__wb *wb, const char *stream_id);
sh_err_t sh__wb_push_ordered(struct sh__wb *wb, struct sh__wb_row *row,
                             pthread_mutex_t *order);
/* Wait until every row queued before the call is in the store (or the
 * writer gave up at shutdown). */
void sh__wb_flush(struct sh__wb *wb);
/* Redact the queued rows not yet handed to the writer: the one of
 * @message_id when not NULL, else those of @author_id in @channel_id from
 * @since_ms on.  The caller still flushes and updates the store (a row the
 * writer holds already is stored as sent).  Returns the rows changed. */
size_t sh__wb_redact(struct sh__wb *wb, const char *message_id,
                     const char *channel_id, const char *author_id,
                     int64_t since_ms);
/* Find a queued row by id: copies its stream, channel, offset out.  */
bool sh__wb_find(struct sh__wb *wb, const char *message_id,
                 char stream_id[SH__ID_SIZE], char channel_id[SH__ID_SIZE],
                 int64_t *offset);
size_t sh__wb_depth(struct sh__wb *wb);

/* ---- for the other areas ---------------------------------------------- */

sh_err_t sh__chat_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len);
void sh__chat_fini(sh_hub_t *hub);

/* The follows area calls this after a follow (@following true) or an
 * unfollow committed, so that followers-only chat sees it at once: the
 * cached answer for the pair is dropped (the next check reads the store),
 * since racing calls may arrive in another order than their commits. */
void sh__chat_follow_changed(sh_hub_t *hub, const char *follower_id,
                             const char *followed_id, bool following);

/* The streams area calls this after a stream started or stopped, so that
 * chat refuses an ended stream at once (otherwise within
 * SH__CHAT_STREAM_TTL_MS). */
void sh__chat_stream_changed(sh_hub_t *hub, const char *stream_id,
                             bool live);

/* sh__chat_queue_depth(): services/export_int.h. */

#endif
