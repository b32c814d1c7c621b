/* libstreamhub/services/cache.c: hot reads cached in the cluster's redis.
 *
 * Stream by id, user by id and unread notification counts are cached as
 * text with a TTL (redis.cache-ttl-seconds) once a node has a redis (the
 * `redis` key or a redis:// bus).  The write paths invalidate what they
 * change after their commit and before their response, so no reader sees
 * an older answer after a write's own response:
 *
 *   reader:  GET (a miss hands out a ticket: the key's version and its
 *            kind's generation)  ->  read the store  ->  PUT only if the
 *            ticket still holds
 *   writer:  commit  ->  invalidate (DEL the value, INCR its version)
 *            or, for a write touching any number of keys of a kind (a
 *            stream going live notifies every follower), INCR the kind's
 *            generation, which every cached value of it carries
 *
 * A reader that read the store before a write's commit holds a ticket
 * from before the write's invalidation, so its PUT is refused: a slow
 * reader cannot put an old value back.  (A version key lives an hour: a
 * reader stalled longer than that between its GET and its PUT could.)
 *
 * Keys (under redis.key-prefix, "sh:" by default):
 *        sh:c:<kind>:<id>  "<generation>\n<text>", PX the TTL
 *        sh:cv:<kind>:<id> the key's version, EXPIRE an hour
 *        sh:cg:<kind>      the kind's generation
 *
 * Redis failing: a read is a miss (the store answers); an invalidation
 * that failed makes this node bypass the cache for a TTL, since the old
 * value may still be there for that long.  Other nodes may then serve it
 * until it expires: the bound of staleness while redis is partly down.
 *
 * In memory.  Before redis (or alone, without a cluster), each node keeps
 * its own bounded tier (cache.memory-entries per kind, least recently
 * used first out) of the same values as text, never as json-c objects:
 * a hit is a copy made under the kind's mutex.  The same calls drive it:
 * a get that misses takes a ticket (the kind's invalidation epoch), a put
 * is refused if any invalidation of that kind ran since, and invalidate
 * drops the entry (or, for all of a kind, bumps its generation) before the
 * write's response.  Two kinds live only here: the first pages of the
 * live list (keyed by their arguments; any change to a stream drops them
 * all) and follower counts.  A write on another node reaches this tier
 * only through its age: an entry lives cache.memory-ttl-ms at most, the
 * bound of staleness across nodes (the writing node never serves one).
 * So in a cluster the tier is off unless cache.memory-in-cluster is set:
 * by default a cluster keeps its rule that no node serves an old value
 * after any node's write response.
 *
 * Metrics: streamhub_cache_requests_total{cache, result=hit|miss|error}
 * for redis, streamhub_cache_memory_requests_total{cache, result=hit|miss}
 * for the memory tier.
 * Threads: any but a loop (calls wait on redis).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/redis_int.h"
#include "services_int.h"

static const char *const kind_names[SH__CACHE_NKINDS] = {
    "stream", "user", "unread", "live", "followers"
};
#define REDIS_KINDS 3         /* stream, user, unread also go to redis */

/* ---- the memory tier -------------------------------------------------- */

#define MEM_KEY_MAX 160

struct mem_entry {
    char key[MEM_KEY_MAX];
    uint64_t hash;
    uint64_t gen;             /* the kind's generation when filled */
    int64_t expires_ms;       /* sh__mono_ms() */
    uint64_t stamp;           /* unique to this text, process-wide */
    char *text;               /* owned */
    size_t len;
    struct mem_entry *hnext, *prev, *next;
};

struct mem_kind {
    pthread_mutex_t mu;
    struct mem_entry **buckets;
    size_t nbuckets;          /* a power of two */
    struct mem_entry *head, *tail;      /* recency: head most recent */
    size_t n;
    uint64_t gen;             /* bumped by invalidate_all */
    uint64_t epoch;           /* bumped by every invalidation */
    struct sh__series *hit, *miss;
};

/* redis.key-prefix (<= 32) + "cv:unread:" + a UUID, and room to spare. */
#define KEY_MAX 96

struct sh__cache {
    bool redis;                        /* the redis tier is on */
    int64_t ttl_ms;
    _Atomic int64_t bypass_until;      /* sh__mono_ms(); 0: none */
    struct sh__series *hit[3], *miss[3], *error[3];
    size_t mem_cap;                    /* per kind; 0: no memory tier */
    int64_t mem_ttl_ms;
    struct mem_kind mem[SH__CACHE_NKINDS];
};

static _Atomic uint64_t next_stamp = 1;

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;         /* FNV-1a */

    for (; *k != '\0'; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ULL;
    }
    return h;
}

static void mem_unlink(struct mem_kind *mk, struct mem_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        mk->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        mk->tail = e->prev;
    e->prev = e->next = NULL;
}

static void mem_push(struct mem_kind *mk, struct mem_entry *e)
{
    e->prev = NULL;
    e->next = mk->head;
    if (mk->head != NULL)
        mk->head->prev = e;
    mk->head = e;
    if (mk->tail == NULL)
        mk->tail = e;
}

/* Under mu: unlink @e everywhere and free it. */
static void mem_remove(struct mem_kind *mk, struct mem_entry *e)
{
    struct mem_entry **pp = &mk->buckets[e->hash & (mk->nbuckets - 1)];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    mem_unlink(mk, e);
    mk->n--;
    free(e->text);
    free(e);
}

/* Under mu. */
static struct mem_entry *mem_find(struct mem_kind *mk, const char *key,
                                  uint64_t h)
{
    for (struct mem_entry *e = mk->buckets[h & (mk->nbuckets - 1)];
         e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static bool mem_on(const struct sh__cache *ca, const char *key)
{
    return ca != NULL && ca->mem_cap > 0 && key != NULL &&
           strlen(key) < MEM_KEY_MAX;
}

/* A hit: true with a copy of the text.  A miss: the ticket's epoch. */
static bool mem_get(struct sh__cache *ca, enum sh__cache_kind kind,
                    const char *key, char **text, size_t *len,
                    struct sh__cache_ticket *t, uint64_t *stamp)
{
    struct mem_kind *mk = &ca->mem[kind];
    uint64_t h = key_hash(key);
    struct mem_entry *e;
    bool hit = false;

    pthread_mutex_lock(&mk->mu);
    e = mem_find(mk, key, h);
    if (e != NULL && (e->gen != mk->gen ||
                      sh__mono_ms() >= e->expires_ms)) {
        mem_remove(mk, e);
        e = NULL;
    }
    if (e != NULL && stamp != NULL && *stamp == e->stamp) {
        *len = e->len;                /* the caller holds this text */
        mem_unlink(mk, e);
        mem_push(mk, e);
        hit = true;
    } else if (e != NULL && (*text = malloc(e->len + 1)) != NULL) {
        memcpy(*text, e->text, e->len + 1);
        *len = e->len;
        if (stamp != NULL)
            *stamp = e->stamp;
        mem_unlink(mk, e);
        mem_push(mk, e);
        hit = true;
    } else {
        t->mem_valid = true;
        t->mem_epoch = mk->epoch;
    }
    pthread_mutex_unlock(&mk->mu);
    sh__series_add(hit ? mk->hit : mk->miss, 1);
    return hit;
}

static void mem_put(struct sh__cache *ca, enum sh__cache_kind kind,
                    const char *key, const struct sh__cache_ticket *t,
                    const char *text, size_t len)
{
    struct mem_kind *mk = &ca->mem[kind];
    uint64_t h = key_hash(key);
    struct mem_entry *e = calloc(1, sizeof *e);
    char *copy = malloc(len + 1);

    if (e == NULL || copy == NULL) {
        free(e);
        free(copy);
        return;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    snprintf(e->key, sizeof e->key, "%s", key);
    e->hash = h;
    e->stamp = atomic_fetch_add(&next_stamp, 1);
    e->text = copy;
    e->len = len;
    pthread_mutex_lock(&mk->mu);
    /* Refused when anything of this kind was invalidated since the miss:
     * the text may be older than that write. */
    if (t->mem_epoch != mk->epoch) {
        pthread_mutex_unlock(&mk->mu);
        free(copy);
        free(e);
        return;
    }
    {
        struct mem_entry *old = mem_find(mk, key, h);
        if (old != NULL)
            mem_remove(mk, old);
    }
    e->gen = mk->gen;
    e->expires_ms = sh__mono_ms() + ca->mem_ttl_ms;
    e->hnext = mk->buckets[h & (mk->nbuckets - 1)];
    mk->buckets[h & (mk->nbuckets - 1)] = e;
    mem_push(mk, e);
    mk->n++;
    if (mk->n > ca->mem_cap)
        mem_remove(mk, mk->tail);
    pthread_mutex_unlock(&mk->mu);
}

static void mem_invalidate(struct sh__cache *ca, enum sh__cache_kind kind,
                           const char *key)
{
    struct mem_kind *mk = &ca->mem[kind];
    struct mem_entry *e;

    pthread_mutex_lock(&mk->mu);
    mk->epoch++;
    if (key == NULL)
        mk->gen++;
    else if ((e = mem_find(mk, key, key_hash(key))) != NULL)
        mem_remove(mk, e);
    pthread_mutex_unlock(&mk->mu);
}

static sh_err_t mem_init(sh_hub_t *hub, struct sh__cache *ca)
{
    struct sh__metric *m;
    int64_t cap = sh__config_int(hub->conf, "cache.memory-entries");

    ca->mem_cap = cap > 0 ? (size_t)cap : 0;
    ca->mem_ttl_ms = sh__config_int(hub->conf, "cache.memory-ttl-ms");
    /* In a cluster another node's write reaches this tier only by age:
     * on only when the operator accepts that. */
    if (hub->cluster != NULL &&
        !sh__config_bool(hub->conf, "cache.memory-in-cluster"))
        ca->mem_cap = 0;
    if (ca->mem_cap == 0 || ca->mem_ttl_ms <= 0) {
        ca->mem_cap = 0;
        return SH_OK;
    }
    m = sh__metrics_add(hub->metrics, "streamhub_cache_memory_requests_total",
                        SH__METRIC_COUNTER,
                        "Reads of the in-memory tier of the cache of hot "
                        "reads, by cache and result (hit, miss).",
                        "cache,result", NULL, 0);
    if (m == NULL)
        return SH_ENOMEM;
    for (int k = 0; k < SH__CACHE_NKINDS; k++) {
        struct mem_kind *mk = &ca->mem[k];
        char v[32];
        mk->nbuckets = 16;
        while (mk->nbuckets < 2 * ca->mem_cap)
            mk->nbuckets *= 2;
        mk->buckets = calloc(mk->nbuckets, sizeof *mk->buckets);
        if (mk->buckets == NULL || pthread_mutex_init(&mk->mu, NULL) != 0) {
            free(mk->buckets);
            mk->buckets = NULL;
            return SH_ENOMEM;
        }
        snprintf(v, sizeof v, "%s,hit", kind_names[k]);
        mk->hit = sh__metric_series(m, v);
        snprintf(v, sizeof v, "%s,miss", kind_names[k]);
        mk->miss = sh__metric_series(m, v);
    }
    return SH_OK;
}

static void mem_fini(struct sh__cache *ca)
{
    if (ca->mem_cap == 0)
        return;
    for (int k = 0; k < SH__CACHE_NKINDS; k++) {
        struct mem_kind *mk = &ca->mem[k];
        if (mk->buckets == NULL)
            continue;
        while (mk->head != NULL)
            mem_remove(mk, mk->head);
        free(mk->buckets);
        pthread_mutex_destroy(&mk->mu);
    }
}

/* KEYS: value, version, generation.  Returns {1, text} on a hit, else
 * {0, ticket}. */
static const struct sh__redis_script get_script = {
    "local v = redis.call('GET', KEYS[1])\n"
    "local g = redis.call('GET', KEYS[3]) or '0'\n"
    "if v then\n"
    "  local nl = string.find(v, '\\n', 1, true)\n"
    "  if nl and string.sub(v, 1, nl - 1) == g then\n"
    "    return {1, string.sub(v, nl + 1)}\n"
    "  end\n"
    "end\n"
    "return {0, (redis.call('GET', KEYS[2]) or '0') .. ':' .. g}\n"
};

/* KEYS: value, version, generation.  ARGV: ticket, text, ttl ms. */
static const struct sh__redis_script put_script = {
    "local g = redis.call('GET', KEYS[3]) or '0'\n"
    "local now = (redis.call('GET', KEYS[2]) or '0') .. ':' .. g\n"
    "if now ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], g .. '\\n' .. ARGV[2], 'PX', ARGV[3])\n"
    "return 1\n"
};

/* KEYS: value, version. */
static const struct sh__redis_script del_script = {
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('INCR', KEYS[2])\n"
    "redis.call('EXPIRE', KEYS[2], 3600)\n"
    "return 1\n"
};

sh_err_t sh__cache_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__cache *ca;
    struct sh__metric *m;
    int64_t ttl = sh__config_int(hub->conf, "redis.cache-ttl-seconds");

    ca = calloc(1, sizeof *ca);
    if (ca == NULL || mem_init(hub, ca) != SH_OK) {
        if (ca != NULL)
            mem_fini(ca);
        free(ca);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    if (hub->cluster == NULL || ttl <= 0) {
        if (ca->mem_cap == 0) {
            free(ca);
            return SH_OK;
        }
        hub->cache = ca;
        return SH_OK;
    }
    m = sh__metrics_add(hub->metrics, "streamhub_cache_requests_total",
                        SH__METRIC_COUNTER,
                        "Reads of the redis cache of hot reads, by cache "
                        "and result (hit, miss, error).",
                        "cache,result", NULL, 0);
    if (m == NULL) {
        mem_fini(ca);
        free(ca);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    ca->redis = true;
    ca->ttl_ms = ttl * 1000;
    for (int k = 0; k < REDIS_KINDS; k++) {
        char v[32];
        snprintf(v, sizeof v, "%s,hit", kind_names[k]);
        ca->hit[k] = sh__metric_series(m, v);
        snprintf(v, sizeof v, "%s,miss", kind_names[k]);
        ca->miss[k] = sh__metric_series(m, v);
        snprintf(v, sizeof v, "%s,error", kind_names[k]);
        ca->error[k] = sh__metric_series(m, v);
    }
    hub->cache = ca;
    return SH_OK;
}

void sh__cache_fini(sh_hub_t *hub)
{
    if (hub->cache != NULL)
        mem_fini(hub->cache);
    free(hub->cache);
    hub->cache = NULL;
}

static bool keys(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                 char *val, char *ver, char *gen)
{
    const char *k = kind_names[kind], *p = sh__cluster_prefix(hub);

    /* Ids are UUIDs: anything else is not cached (nor looked up). */
    if ((int)kind >= REDIS_KINDS || id == NULL || !sh__uuid_valid(id))
        return false;
    snprintf(val, KEY_MAX, "%sc:%s:%s", p, k, id);
    snprintf(ver, KEY_MAX, "%scv:%s:%s", p, k, id);
    snprintf(gen, KEY_MAX, "%scg:%s", p, k);
    return true;
}

static bool usable(sh_hub_t *hub)
{
    struct sh__cache *ca = hub != NULL ? hub->cache : NULL;
    int64_t until;

    if (ca == NULL || !ca->redis)
        return false;
    until = atomic_load(&ca->bypass_until);
    return until == 0 || sh__mono_ms() >= until;
}

bool sh__cache_get(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                   char **text, size_t *len, struct sh__cache_ticket *t)
{
    struct sh__cache *ca;
    char val[KEY_MAX], ver[KEY_MAX], gen[KEY_MAX];
    redisReply *rep = NULL;
    bool hit = false;

    *text = NULL;
    *len = 0;
    t->valid = false;
    t->mem_valid = false;
    if (hub != NULL && mem_on(hub->cache, id) &&
        mem_get(hub->cache, kind, id, text, len, t, NULL))
        return true;
    if (!usable(hub) || !keys(hub, kind, id, val, ver, gen))
        return false;
    ca = hub->cache;
    if (sh__redis_eval(sh__cluster_redis(hub), &get_script, 3, 3,
                       (const char *[]){ val, ver, gen }, NULL, &rep, NULL,
                       0) != SH_OK) {
        sh__series_add(ca->error[kind], 1);
        return false;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        const redisReply *s = rep->element[1];
        if (rep->element[0]->integer == 1) {
            *text = malloc(s->len + 1);
            if (*text != NULL) {
                memcpy(*text, s->str, s->len);
                (*text)[s->len] = '\0';
                *len = s->len;
                hit = true;
                /* Into memory, under the ticket taken before redis. */
                if (t->mem_valid)
                    mem_put(ca, kind, id, t, *text, *len);
            }
        } else if (s->len < sizeof t->token) {
            memcpy(t->token, s->str, s->len);
            t->token[s->len] = '\0';
            t->valid = true;
        }
    }
    freeReplyObject(rep);
    sh__series_add(hit ? ca->hit[kind] : ca->miss[kind], 1);
    return hit;
}

void sh__cache_put(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                   const struct sh__cache_ticket *t, const char *text,
                   size_t len)
{
    char val[KEY_MAX], ver[KEY_MAX], gen[KEY_MAX], ttl[24];

    if (text != NULL && t->mem_valid && hub != NULL &&
        mem_on(hub->cache, id))
        mem_put(hub->cache, kind, id, t, text, len);
    if (!t->valid || text == NULL || !usable(hub) ||
        !keys(hub, kind, id, val, ver, gen))
        return;
    snprintf(ttl, sizeof ttl, "%lld", (long long)hub->cache->ttl_ms);
    (void)sh__redis_eval(sh__cluster_redis(hub), &put_script, 3, 6,
                         (const char *[]){ val, ver, gen, t->token, text,
                                           ttl },
                         (const size_t[]){ strlen(val), strlen(ver),
                                           strlen(gen), strlen(t->token),
                                           len, strlen(ttl) },
                         NULL, NULL, 0);
}

/* An invalidation failed: the old value may live a TTL; skip the cache
 * here until then. */
static void failed(sh_hub_t *hub, enum sh__cache_kind kind, const char *err)
{
    atomic_store(&hub->cache->bypass_until,
                 sh__mono_ms() + hub->cache->ttl_ms);
    sh__log_kv(&hub->log, SH_LOG_WARN, "cache: invalidation failed; "
               "bypassing the cache for its TTL", "cache", kind_names[kind],
               "error", err, (char *)NULL);
}

void sh__cache_invalidate(sh_hub_t *hub, enum sh__cache_kind kind,
                          const char *id)
{
    char val[KEY_MAX], ver[KEY_MAX], gen[KEY_MAX], err[SH_ERRBUF_SIZE];

    if (hub == NULL || hub->cache == NULL)
        return;
    if (mem_on(hub->cache, id))
        mem_invalidate(hub->cache, kind, id);
    /* A stream's change shows in the live list's pages too. */
    if (kind == SH__CACHE_STREAM)
        sh__cache_invalidate_all(hub, SH__CACHE_LIVE);
    if (!hub->cache->redis || !keys(hub, kind, id, val, ver, gen))
        return;
    if (sh__redis_eval(sh__cluster_redis(hub), &del_script, 2, 2,
                       (const char *[]){ val, ver }, NULL, NULL, err,
                       sizeof err) != SH_OK)
        failed(hub, kind, err);
}

void sh__cache_invalidate_all(sh_hub_t *hub, enum sh__cache_kind kind)
{
    char key[KEY_MAX], err[SH_ERRBUF_SIZE];

    if (hub == NULL || hub->cache == NULL)
        return;
    if (hub->cache->mem_cap > 0)
        mem_invalidate(hub->cache, kind, NULL);
    if (kind == SH__CACHE_STREAM)
        sh__cache_invalidate_all(hub, SH__CACHE_LIVE);
    if (!hub->cache->redis || (int)kind >= REDIS_KINDS)
        return;
    snprintf(key, sizeof key, "%scg:%s", sh__cluster_prefix(hub),
             kind_names[kind]);
    if (sh__redis_cmd(sh__cluster_redis(hub), 2,
                      (const char *[]){ "INCR", key }, NULL, NULL, err,
                      sizeof err) != SH_OK)
        failed(hub, kind, err);
}

bool sh__cache_get_stamped(sh_hub_t *hub, enum sh__cache_kind kind,
                           const char *key, uint64_t *stamp, char **text,
                           size_t *len, struct sh__cache_ticket *t)
{
    *text = NULL;
    *len = 0;
    t->valid = false;
    t->mem_valid = false;
    if (hub == NULL || !mem_on(hub->cache, key))
        return false;
    return mem_get(hub->cache, kind, key, text, len, t, stamp);
}
