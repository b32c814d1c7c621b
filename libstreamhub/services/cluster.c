/* libstreamhub/services/cluster.c: state the nodes of a cluster share in
 * redis (the `redis` key, or the bus URI when the bus is redis://).
 *
 * Counts that belong to connections (a user's authenticated connections,
 * a stream's viewers) live where the connections are: each node writes its
 * own count as one field of a hash per key, and a reader sums the fields
 * of live nodes only.  A node is live while its heartbeat (a score in one
 * sorted set, the server's clock plus redis.node-ttl-ms) is in the
 * future; the node refreshes it every third of the TTL.  So a node killed
 * with SIGKILL stops counting within the TTL without anyone's help, and
 * the next heartbeat of any node reaps it (deletes its fields, found
 * through the set of keys each node keeps); the reaper then refreshes the
 * stored viewer counts of the streams it touched.  A clean stop removes
 * the node's fields at once.
 *
 * Keys (under redis.key-prefix, "sh:" by default; the bus's keys are
 * "<bus.redis-key-prefix><channel>", and no channel kind is one of ours):
 *   sh:nodes            ZSET  node id -> heartbeat deadline (ms, server)
 *   sh:nk:<node>        SET   the hashes where <node> has a field
 *   sh:conns:<user>     HASH  node id -> authenticated connections
 *   sh:viewers:<stream> HASH  node id -> viewers
 *   sh:rl:<limiter>:<key>     rate limits (core/ratelimit.c)
 *   sh:c:, sh:cv:, sh:cg:     the cache (cache.c)
 *
 * Every change is one Lua script (one round trip, atomic): the check of
 * the shared connection cap and its increment cannot interleave with
 * another node's.  Scripts read the time from the server (TIME), so the
 * nodes' clocks need not agree.  They name keys they derive (sh:nk:<n>)
 * beside those they are given: fine on one redis server or a replicated
 * pair, not on Redis Cluster (hash slots), which we do not support.
 *
 * A node whose heartbeat lapsed (cut off from redis longer than the TTL)
 * may have been reaped while its connections stayed open: when its next
 * heartbeat finds itself re-registered it raises the epoch
 * (sh__cluster_epoch()), and its counts are written again in full (the
 * online counts here, the viewer counts by the gateway's next flush).
 *
 * Threads: every call is safe from any thread and may wait on redis (up
 * to redis.timeout-ms): never from a loop thread.  The heartbeat runs on
 * a thread of its own.  @locks hb_mu (the heartbeat's stop flag only)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ratelimit_int.h"
#include "core/redis_int.h"
#include "services_int.h"

#define KEY_MAX 160

#define PREFIX_MAX 32

struct sh__cluster {
    struct sh__redis *redis;           /* owned */
    char node[SH__UUID_LEN + 1];
    char prefix[PREFIX_MAX + 1];       /* redis.key-prefix */
    char nodes[PREFIX_MAX + 8];        /* <prefix>nodes */
    char nk[PREFIX_MAX + 4 + SH__UUID_LEN + 1];    /* <prefix>nk:<node> */
    int64_t ttl_ms;
    atomic_uint epoch;
    atomic_bool registered;            /* the last heartbeat succeeded */
    atomic_bool resync;                /* a count failed: write again */
    pthread_t hb;
    bool hb_started;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    bool hb_stop;                      /* @locks hb_mu */
};

/* ---- scripts ------------------------------------------------------------ */

#define LUA_NOW                                                          \
    "local t = redis.call('TIME')\n"                                     \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / "  \
    "1000)\n"

/* The sum of @KEYS[1]'s fields whose node is live in @KEYS[2], counting
 * node @mine (may be nil) as live whatever its heartbeat says. */
#define LUA_LIVE_SUM                                                     \
    "local function live_sum(mine)\n"                                    \
    "  local h = redis.call('HGETALL', KEYS[1])\n"                       \
    "  local sum = 0\n"                                                  \
    "  for i = 1, #h, 2 do\n"                                            \
    "    local ok = h[i] == mine\n"                                      \
    "    if not ok then\n"                                               \
    "      local e = redis.call('ZSCORE', KEYS[2], h[i])\n"              \
    "      ok = e and tonumber(e) > now\n"                               \
    "    end\n"                                                          \
    "    if ok then sum = sum + tonumber(h[i + 1]) end\n"                \
    "  end\n"                                                            \
    "  return sum\n"                                                     \
    "end\n"

/* Drop node @n's fields everywhere; append the keys to @touched. */
#define LUA_DROP_NODE                                                    \
    "local function drop_node(prefix, n, touched)\n"                     \
    "  local nk = prefix .. 'nk:' .. n\n"                                \
    "  for _, k in ipairs(redis.call('SMEMBERS', nk)) do\n"              \
    "    redis.call('HDEL', k, n)\n"                                     \
    "    touched[#touched + 1] = k\n"                                    \
    "  end\n"                                                            \
    "  redis.call('DEL', nk)\n"                                          \
    "  redis.call('ZREM', KEYS[1], n)\n"                                 \
    "end\n"

/* KEYS: sh:nodes.  ARGV: node, ttl_ms, prefix.  Returns {1 if the node was not
 * registered (first beat, or reaped), keys touched by reaping}.  Reaps
 * at most 16 dead nodes a beat. */
static const struct sh__redis_script beat_script = {
    LUA_NOW LUA_DROP_NODE
    "local new = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), "
    "ARGV[1])\n"
    "local touched = {}\n"
    "for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, "
    "'LIMIT', 0, 16)) do drop_node(ARGV[3], n, touched) end\n"
    "return {new, touched}\n"
};

/* KEYS: sh:nodes.  ARGV: node, prefix.  Returns the keys it had a field
 * in. */
static const struct sh__redis_script leave_script = {
    LUA_DROP_NODE
    "local touched = {}\n"
    "drop_node(ARGV[2], ARGV[1], touched)\n"
    "return touched\n"
};

/* KEYS: the hash, sh:nodes, sh:nk:<node>.  ARGV: node, 'incr' or 'set',
 * value, cap (0: none).  An increment that would take the live sum over
 * the cap changes nothing and returns {-1, sum}; else {mine, sum}. */
static const struct sh__redis_script count_script = {
    LUA_NOW LUA_LIVE_SUM
    "local v = tonumber(ARGV[3])\n"
    "local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')\n"
    "local new = v\n"
    "if ARGV[2] == 'incr' then new = mine + v end\n"
    "if new < 0 then new = 0 end\n"
    "local cap = tonumber(ARGV[4])\n"
    "if cap > 0 and new > mine then\n"
    "  local sum = live_sum(ARGV[1])\n"
    "  if sum - mine + new > cap then return {-1, sum} end\n"
    "end\n"
    "if new == 0 then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  redis.call('SREM', KEYS[3], KEYS[1])\n"
    "else\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], new)\n"
    "  redis.call('SADD', KEYS[3], KEYS[1])\n"
    "end\n"
    "return {new, live_sum(ARGV[1])}\n"
};

/* KEYS: the hash, sh:nodes.  Returns the live sum. */
static const struct sh__redis_script sum_script = {
    LUA_NOW LUA_LIVE_SUM "return live_sum(nil)\n"
};

/* ---- helpers ------------------------------------------------------------ */

static const char *kind_name(enum sh__count_kind kind)
{
    return kind == SH__COUNT_CONNS ? "conns:" : "viewers:";
}

static bool make_key(const struct sh__cluster *cl, char *buf, size_t len,
                     enum sh__count_kind kind, const char *id)
{
    int n = snprintf(buf, len, "%s%s%s", cl->prefix, kind_name(kind), id);

    return n > 0 && (size_t)n < len;
}

const char *sh__cluster_prefix(sh_hub_t *hub)
{
    return hub != NULL && hub->cluster != NULL ? hub->cluster->prefix : NULL;
}

struct sh__redis *sh__cluster_redis(sh_hub_t *hub)
{
    return hub != NULL && hub->cluster != NULL ? hub->cluster->redis : NULL;
}

bool sh__cluster_rl_closed(sh_hub_t *hub)
{
    return hub != NULL &&
           strcmp(sh__config_str(hub->conf, "redis.rate-limit-down"),
                  "closed") == 0;
}

bool sh__cluster_share_limiter(sh_hub_t *hub, struct sh__limiter *l,
                               const char *name)
{
    char full[128];
    int n;

    if (hub == NULL || hub->cluster == NULL || l == NULL || name == NULL)
        return false;
    n = snprintf(full, sizeof full, "%srl:%s", hub->cluster->prefix, name);
    if (n < 0 || (size_t)n >= sizeof full)
        return false;
    return sh__limiter_share(l, hub->cluster->redis, full,
                             sh__cluster_rl_closed(hub));
}

const char *sh__cluster_node(sh_hub_t *hub)
{
    return hub != NULL && hub->cluster != NULL ? hub->cluster->node : NULL;
}

unsigned sh__cluster_epoch(sh_hub_t *hub)
{
    return hub != NULL && hub->cluster != NULL
               ? atomic_load(&hub->cluster->epoch)
               : 0;
}

void sh__cluster_resync_later(sh_hub_t *hub)
{
    if (hub != NULL && hub->cluster != NULL) {
        atomic_store(&hub->cluster->resync, true);
        atomic_fetch_add(&hub->cluster->epoch, 1);
    }
}

sh_err_t sh__cluster_count(sh_hub_t *hub, enum sh__count_kind kind,
                           const char *id, bool set, int64_t value,
                           int64_t cap, int64_t *mine, int64_t *total,
                           char *errbuf, size_t errbuf_len)
{
    struct sh__cluster *cl = hub != NULL ? hub->cluster : NULL;
    char key[KEY_MAX], v[24], capv[24];
    redisReply *rep = NULL;
    sh_err_t rc;

    if (mine != NULL)
        *mine = 0;
    if (total != NULL)
        *total = 0;
    if (cl == NULL || id == NULL ||
        !make_key(cl, key, sizeof key, kind, id)) {
        sh__errbuf(errbuf, errbuf_len, "no cluster, or a bad id");
        return SH_EINVAL;
    }
    snprintf(v, sizeof v, "%lld", (long long)value);
    snprintf(capv, sizeof capv, "%lld", (long long)(cap > 0 ? cap : 0));
    rc = sh__redis_eval(cl->redis, &count_script, 3, 7,
                        (const char *[]){ key, cl->nodes, cl->nk, cl->node,
                                          set ? "set" : "incr", v, capv },
                        NULL, &rep, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        freeReplyObject(rep);
        sh__errbuf(errbuf, errbuf_len, "redis: unexpected reply");
        return SH_EBUS;
    }
    if (total != NULL)
        *total = rep->element[1]->integer;
    if (rep->element[0]->integer < 0) {
        freeReplyObject(rep);
        sh__errbuf(errbuf, errbuf_len, "at the limit across the cluster");
        return SH_ERATELIMITED;
    }
    if (mine != NULL)
        *mine = rep->element[0]->integer;
    freeReplyObject(rep);
    return SH_OK;
}

/* The live sum of hash @key. */
static sh_err_t sum_key(struct sh__cluster *cl, const char *key,
                        int64_t *total, char *errbuf, size_t errbuf_len)
{
    redisReply *rep = NULL;
    sh_err_t rc;

    *total = 0;
    rc = sh__redis_eval(cl->redis, &sum_script, 2, 2,
                        (const char *[]){ key, cl->nodes }, NULL, &rep,
                        errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    *total = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    return SH_OK;
}

sh_err_t sh__cluster_total(sh_hub_t *hub, enum sh__count_kind kind,
                           const char *id, int64_t *total, char *errbuf,
                           size_t errbuf_len)
{
    char key[KEY_MAX];

    *total = 0;
    if (hub == NULL || hub->cluster == NULL || id == NULL ||
        !make_key(hub->cluster, key, sizeof key, kind, id)) {
        sh__errbuf(errbuf, errbuf_len, "no cluster, or a bad id");
        return SH_EINVAL;
    }
    return sum_key(hub->cluster, key, total, errbuf, errbuf_len);
}

/* Keys a reaping or a leave touched: refresh the stored viewer count of
 * each stream among them (the other kinds are read live). */
static void refresh_touched(sh_hub_t *hub, const redisReply *keys)
{
    char vp[PREFIX_MAX + 16];
    size_t plen;

    if (keys == NULL || keys->type != REDIS_REPLY_ARRAY)
        return;
    snprintf(vp, sizeof vp, "%sviewers:", hub->cluster->prefix);
    plen = strlen(vp);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        int64_t total;

        if (k->type != REDIS_REPLY_STRING || k->len <= plen ||
            strncmp(k->str, vp, plen) != 0)
            continue;
        if (sum_key(hub->cluster, k->str, &total, NULL, 0) == SH_OK)
            (void)sh__streams_viewers_sync(hub, k->str + plen, total,
                                           NULL, 0);
    }
}

/* One heartbeat.  Returns SH_OK or the redis error. */
static sh_err_t beat(sh_hub_t *hub)
{
    struct sh__cluster *cl = hub->cluster;
    char ttl[24], err[SH_ERRBUF_SIZE];
    redisReply *rep = NULL;
    sh_err_t rc;

    snprintf(ttl, sizeof ttl, "%lld", (long long)cl->ttl_ms);
    rc = sh__redis_eval(cl->redis, &beat_script, 1, 4,
                        (const char *[]){ cl->nodes, cl->node, ttl,
                                          cl->prefix },
                        NULL, &rep, err, sizeof err);
    if (rc != SH_OK) {
        if (atomic_exchange(&cl->registered, false))
            sh__log_kv(&hub->log, SH_LOG_WARN, "cluster heartbeat failed",
                       "error", err, (char *)NULL);
        return rc;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        bool fresh = rep->element[0]->integer == 1;
        bool was = atomic_exchange(&cl->registered, true);
        if (fresh && was)
            sh__log_kv(&hub->log, SH_LOG_WARN, "cluster node was reaped; "
                       "writing its counts again", "node", cl->node,
                       (char *)NULL);
        if (fresh) {
            /* Reaped, or redis lost its data: every count of ours may be
             * gone.  Write them again. */
            atomic_fetch_add(&cl->epoch, 1);
            atomic_store(&cl->resync, true);
        }
        if (atomic_exchange(&cl->resync, false))
            sh__online_resync(hub);
        refresh_touched(hub, rep->element[1]);
    }
    freeReplyObject(rep);
    return SH_OK;
}

static void *beat_main(void *arg)
{
    sh_hub_t *hub = arg;
    struct sh__cluster *cl = hub->cluster;
    int64_t period = cl->ttl_ms / 3;

    pthread_mutex_lock(&cl->hb_mu);
    while (!cl->hb_stop) {
        struct timespec ts;

        pthread_mutex_unlock(&cl->hb_mu);
        (void)beat(hub);
        pthread_mutex_lock(&cl->hb_mu);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += period / 1000;
        ts.tv_nsec += (long)(period % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!cl->hb_stop)
            pthread_cond_timedwait(&cl->hb_cv, &cl->hb_mu, &ts);
    }
    pthread_mutex_unlock(&cl->hb_mu);
    return NULL;
}

/* ---- the area ----------------------------------------------------------- */

/* The redis URI of the cluster: `redis`, else a redis:// bus, else none. */
static const char *cluster_uri(const sh_config_t *conf)
{
    const char *r = sh__config_str(conf, "redis");
    const char *b = sh__config_str(conf, "bus");

    if (r != NULL && r[0] != '\0')
        return r;
    if (b != NULL && strncmp(b, "redis://", 8) == 0)
        return b;
    return NULL;
}

sh_err_t sh__cluster_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    const char *uri = cluster_uri(hub->conf);
    const char *prefix = sh__config_str(hub->conf, "redis.key-prefix");
    struct sh__cluster *cl;
    sh_err_t rc;

    if (uri == NULL)
        return SH_OK;               /* one node: every count is local */
    if (strlen(prefix) > PREFIX_MAX) {
        sh__errbuf(errbuf, errbuf_len, "redis.key-prefix: at most %d bytes",
                   PREFIX_MAX);
        return SH_EINVAL;
    }
    cl = calloc(1, sizeof *cl);
    if (cl == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    rc = sh__redis_new(uri, (size_t)sh__config_int(hub->conf,
                                                   "redis.pool-size"),
                       (int)sh__config_int(hub->conf,
                                           "redis.connect-timeout-ms"),
                       (int)sh__config_int(hub->conf, "redis.timeout-ms"),
                       &cl->redis, errbuf, errbuf_len);
    if (rc != SH_OK) {
        free(cl);
        return rc;
    }
    sh__uuid4(cl->node);
    snprintf(cl->prefix, sizeof cl->prefix, "%s", prefix);
    snprintf(cl->nodes, sizeof cl->nodes, "%snodes", prefix);
    snprintf(cl->nk, sizeof cl->nk, "%snk:%s", prefix, cl->node);
    cl->ttl_ms = sh__config_int(hub->conf, "redis.node-ttl-ms");
    pthread_mutex_init(&cl->hb_mu, NULL);
    pthread_cond_init(&cl->hb_cv, NULL);
    hub->cluster = cl;
    return SH_OK;
}

sh_err_t sh__cluster_start(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__cluster *cl = hub->cluster;

    if (cl == NULL)
        return SH_OK;
    /* Register before the first count, if redis answers; else the
     * heartbeat thread keeps trying and calls fail fast meanwhile. */
    if (beat(hub) != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "cluster: redis unreachable at "
                   "start; counts are this node's until it answers",
                   (char *)NULL);
    if (pthread_create(&cl->hb, NULL, beat_main, hub) != 0) {
        sh__errbuf(errbuf, errbuf_len, "cannot start the heartbeat thread");
        return SH_ENOMEM;
    }
    cl->hb_started = true;
    sh__log_kv(&hub->log, SH_LOG_INFO, "cluster node", "node", cl->node,
               (char *)NULL);
    return SH_OK;
}

void sh__cluster_stop(sh_hub_t *hub)
{
    struct sh__cluster *cl = hub->cluster;
    redisReply *rep = NULL;

    if (cl == NULL || !cl->hb_started)
        return;
    pthread_mutex_lock(&cl->hb_mu);
    cl->hb_stop = true;
    pthread_cond_signal(&cl->hb_cv);
    pthread_mutex_unlock(&cl->hb_mu);
    pthread_join(cl->hb, NULL);
    cl->hb_started = false;
    /* A clean stop: our counts go now, not a TTL later. */
    if (sh__redis_eval(cl->redis, &leave_script, 1, 3,
                       (const char *[]){ cl->nodes, cl->node, cl->prefix },
                       NULL, &rep, NULL, 0) == SH_OK) {
        refresh_touched(hub, rep);
        freeReplyObject(rep);
    }
}

void sh__cluster_fini(sh_hub_t *hub)
{
    struct sh__cluster *cl = hub->cluster;

    if (cl == NULL)
        return;
    sh__redis_free(cl->redis);
    pthread_cond_destroy(&cl->hb_cv);
    pthread_mutex_destroy(&cl->hb_mu);
    free(cl);
    hub->cluster = NULL;
}
