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
 * Metrics: streamhub_cache_requests_total{cache, result=hit|miss|error}.
 * Threads: any but a loop (calls wait on redis).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/redis_int.h"
#include "services_int.h"

static const char *const kind_names[] = { "stream", "user", "unread" };

/* redis.key-prefix (<= 32) + "cv:unread:" + a UUID, and room to spare. */
#define KEY_MAX 96

struct sh__cache {
    int64_t ttl_ms;
    _Atomic int64_t bypass_until;      /* sh__mono_ms(); 0: none */
    struct sh__series *hit[3], *miss[3], *error[3];
};

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

    if (hub->cluster == NULL || ttl <= 0)
        return SH_OK;
    ca = calloc(1, sizeof *ca);
    m = sh__metrics_add(hub->metrics, "streamhub_cache_requests_total",
                        SH__METRIC_COUNTER,
                        "Reads of the redis cache of hot reads, by cache "
                        "and result (hit, miss, error).",
                        "cache,result", NULL, 0);
    if (ca == NULL || m == NULL) {
        free(ca);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    ca->ttl_ms = ttl * 1000;
    for (int k = 0; k < 3; k++) {
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
    free(hub->cache);
    hub->cache = NULL;
}

static bool keys(sh_hub_t *hub, enum sh__cache_kind kind, const char *id,
                 char *val, char *ver, char *gen)
{
    const char *k = kind_names[kind], *p = sh__cluster_prefix(hub);

    /* Ids are UUIDs: anything else is not cached (nor looked up). */
    if (id == NULL || !sh__uuid_valid(id))
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

    if (ca == NULL)
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

    if (hub == NULL || hub->cache == NULL ||
        !keys(hub, kind, id, val, ver, gen))
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
    snprintf(key, sizeof key, "%scg:%s", sh__cluster_prefix(hub),
             kind_names[kind]);
    if (sh__redis_cmd(sh__cluster_redis(hub), 2,
                      (const char *[]){ "INCR", key }, NULL, NULL, err,
                      sizeof err) != SH_OK)
        failed(hub, kind, err);
}
