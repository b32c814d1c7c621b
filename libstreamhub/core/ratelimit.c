/* libstreamhub/core/ratelimit.c: token buckets and a keyed limiter.
 *
 * The bucket is arithmetic on doubles: refill by elapsed time, clamp to
 * capacity, take.  A tiny epsilon absorbs rounding so that a retry after
 * exactly retry_after_ms succeeds (100 per 60 s refills 1/600 of a token a
 * millisecond, which binary doubles cannot hold exactly).
 *
 * The limiter splits keys over a power of two of stripes by a keyed hash
 * (SipHash from libsodium, random key per limiter: clients choose the keys,
 * so a fixed hash could be flooded).  Each stripe has its mutex, a chained
 * hash table of fixed size and an LRU list.  Memory is bounded: a stripe
 * holds at most per_cap entries; a new key in a full stripe first drops
 * the refilled (full) buckets at the idle end of the LRU, else the idlest.
 *
 * Invariants (per stripe, under its mutex):
 *  1. count == entries in the table == entries on the LRU list <= per_cap.
 *  2. The LRU list runs from most (head) to least (tail) recently used.
 *  3. Every entry's hash selects this stripe and its table slot.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/ratelimit_int.h"
#include "core/redis_int.h"

#define EPS 1e-9
/* Entries looked at from the idle end when a stripe is full. */
#define EVICT_SCAN 32

static double sane(double x)
{
    return isfinite(x) && x > 0 ? x : 0;
}

bool sh__bucket_take(struct sh__bucket *b, double capacity,
                     double refill_per_s, double cost, int64_t now_ms,
                     int64_t *retry_after_ms)
{
    double need, ms, behind;
    int64_t wait;

    capacity = sane(capacity);
    refill_per_s = sane(refill_per_s);
    if (retry_after_ms != NULL)
        *retry_after_ms = 0;
    /* In doubles: the difference of two int64 may overflow.  last_ms never
     * moves back: two threads that read the clock and then race for a lock
     * arrive out of order, and re-anchoring would credit the same span
     * twice. */
    behind = now_ms < b->last_ms ? (double)b->last_ms - (double)now_ms : 0;
    if (now_ms > b->last_ms) {
        double elapsed = (double)now_ms - (double)b->last_ms;
        b->tokens += elapsed / 1000.0 * refill_per_s;
        b->last_ms = now_ms;
    }
    if (!(b->tokens >= 0))     /* NaN too */
        b->tokens = 0;
    if (b->tokens > capacity)
        b->tokens = capacity;

    if (isnan(cost)) {
        if (retry_after_ms != NULL)
            *retry_after_ms = INT64_MAX;
        return false;
    }
    if (cost <= 0)
        return true;
    if (b->tokens + EPS >= cost) {
        b->tokens -= cost;
        if (b->tokens < 0)
            b->tokens = 0;
        return true;
    }
    if (retry_after_ms == NULL)
        return false;
    if (cost > capacity + EPS || refill_per_s <= 0) {
        *retry_after_ms = INT64_MAX;
        return false;
    }
    need = cost - b->tokens;
    ms = ceil(need / refill_per_s * 1000.0);
    /* Rounding may push ceil one past the millisecond that take() (with
     * its epsilon) already accepts: answer that millisecond. */
    if (ms > 1 && b->tokens + (ms - 1) / 1000.0 * refill_per_s + EPS >= cost)
        ms -= 1;
    ms += behind;
    if (!(ms < 9.0e18))
        wait = INT64_MAX;
    else
        wait = ms < 1 ? 1 : (int64_t)ms;
    *retry_after_ms = wait;
    return false;
}

/* ---- the keyed limiter ------------------------------------------------ */

struct ent {
    struct ent *hnext;             /* chain in the stripe's table */
    struct ent *prev, *next;       /* LRU list */
    struct sh__bucket b;
    uint64_t h;
    size_t keylen;
    unsigned char key[];
};

struct stripe {
    pthread_mutex_t mu;
    struct ent **table;            /* owned, mask + 1 slots */
    size_t mask;
    struct ent *head, *tail;       /* LRU: head most recent */
    size_t count;
};

struct sh__limiter {
    double capacity, refill;
    struct sh__redis *redis;       /* borrowed; NULL: local buckets only */
    char name[128];                /* shared: "<name>:<key>" keys */
    bool fail_closed;
    size_t per_cap;                /* entries per stripe */
    size_t nstripes;               /* power of two */
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct stripe s[];
};

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;

    while (p < n && p < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        p <<= 1;
    return p;
}

struct sh__limiter *sh__limiter_new(double capacity, double refill_per_s,
                                    size_t max_keys)
{
    struct sh__limiter *l;
    size_t n = 1, slots;

    if (!isfinite(capacity) || capacity <= 0 || !isfinite(refill_per_s) ||
        refill_per_s < 0 || max_keys == 0)
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    /* Up to 16 stripes, none with less than 64 keys, so that a small cap
     * is not cut into useless crumbs. */
    while (n < 16 && max_keys / (n * 2) >= 64)
        n *= 2;
    l = calloc(1, sizeof *l + n * sizeof l->s[0]);
    if (l == NULL)
        return NULL;
    l->capacity = capacity;
    l->refill = refill_per_s;
    l->nstripes = n;
    l->per_cap = max_keys / n;
    randombytes_buf(l->hkey, sizeof l->hkey);
    slots = pow2_at_least(l->per_cap < 16 ? 16 : l->per_cap);
    for (size_t i = 0; i < n; i++) {
        struct stripe *st = &l->s[i];
        st->table = calloc(slots, sizeof *st->table);
        if (st->table == NULL || pthread_mutex_init(&st->mu, NULL) != 0) {
            free(st->table);
            st->table = NULL;
            l->nstripes = i;
            sh__limiter_free(l);
            return NULL;
        }
        st->mask = slots - 1;
    }
    return l;
}

static void lru_unlink(struct stripe *st, struct ent *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        st->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct stripe *st, struct ent *e)
{
    e->prev = NULL;
    e->next = st->head;
    if (st->head != NULL)
        st->head->prev = e;
    st->head = e;
    if (st->tail == NULL)
        st->tail = e;
}

static void remove_ent(struct stripe *st, struct ent *e)
{
    struct ent **pp = &st->table[e->h & st->mask];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(st, e);
    st->count--;
    free(e);
}

/* Make room in a full stripe: drop the full buckets among the idlest
 * EVICT_SCAN, or else the idlest one. */
static void evict(const struct sh__limiter *l, struct stripe *st,
                  int64_t now_ms)
{
    struct ent *e = st->tail;
    size_t dropped = 0;

    for (int i = 0; e != NULL && i < EVICT_SCAN; i++) {
        struct ent *prev = e->prev;
        struct sh__bucket probe = e->b;

        (void)sh__bucket_take(&probe, l->capacity, l->refill, 0, now_ms,
                              NULL);
        if (probe.tokens + EPS >= l->capacity) {
            remove_ent(st, e);
            dropped++;
        }
        e = prev;
    }
    if (dropped == 0 && st->tail != NULL)
        remove_ent(st, st->tail);
}

/* The stripe of @key and its keyed hash in *@h. */
static struct stripe *stripe_of(struct sh__limiter *l, const void *key,
                                size_t keylen, uint64_t *h)
{
    unsigned char hb[crypto_shorthash_BYTES];

    crypto_shorthash(hb, key, keylen, l->hkey);
    memcpy(h, hb, sizeof *h);
    /* High bits pick the stripe, low bits the slot. */
    return &l->s[(size_t)(*h >> 32) & (l->nstripes - 1)];
}

/* The entry of @key in @st, or NULL.  @locks st->mu */
static struct ent *find(struct stripe *st, uint64_t h, const void *key,
                        size_t keylen)
{
    struct ent *e;

    for (e = st->table[h & st->mask]; e != NULL; e = e->hnext) {
        if (e->h == h && e->keylen == keylen &&
            memcmp(e->key, key, keylen) == 0)
            break;
    }
    return e;
}

/* ---- shared buckets (redis) ------------------------------------------ */

/* KEYS: the bucket.  ARGV: capacity, refill per second, cost (negative:
 * give back).  Returns {1 taken or 0, wait ms (-1: never)}.  The same
 * arithmetic as sh__bucket_take(), on the server's clock. */
static const struct sh__redis_script bucket_script = {
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), "
    "tonumber(ARGV[3])\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens, ts = tonumber(b[1]), tonumber(b[2])\n"
    "if tokens == nil or ts == nil then tokens = cap; ts = now end\n"
    "if now > ts then\n"
    "  tokens = tokens + (now - ts) / 1000 * rate; ts = now\n"
    "end\n"
    "if tokens > cap then tokens = cap end\n"
    "if tokens < 0 then tokens = 0 end\n"
    "local ok, wait = 0, 0\n"
    "if cost < 0 then\n"
    "  tokens = math.min(cap, tokens - cost); ok = 1\n"
    "elseif cost == 0 then ok = 1\n"
    "elseif tokens + 1e-9 >= cost then\n"
    "  tokens = math.max(0, tokens - cost); ok = 1\n"
    "elseif cost > cap + 1e-9 or rate <= 0 then wait = -1\n"
    "else\n"
    "  wait = math.ceil((cost - tokens) / rate * 1000)\n"
    "  if wait < 1 then wait = 1 end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), "
    "'ts', ts)\n"
    "local ttl = 86400000\n"
    "if rate > 0 then ttl = math.ceil((cap - tokens) / rate * 1000) + 1000 "
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "return {ok, wait}\n"
};

bool sh__limiter_share(struct sh__limiter *l, struct sh__redis *redis,
                       const char *name, bool fail_closed)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (l == NULL || redis == NULL || n == 0 || n >= sizeof l->name)
        return false;
    memcpy(l->name, name, n + 1);
    l->fail_closed = fail_closed;
    l->redis = redis;
    return true;
}

/* Run the shared bucket of @key with @cost.  Returns 1 taken, 0 refused
 * (*@retry_after_ms set), -1 redis failed. */
static int shared_take(struct sh__limiter *l, const void *key,
                       size_t keylen, double cost, int64_t *retry_after_ms)
{
    char k[8 + sizeof l->name + SH__LIMITER_KEY_MAX];
    char cap[32], rate[32], c[32];
    size_t plen = (size_t)snprintf(k, sizeof k, "%s:", l->name);
    const char *argv[4] = { k, cap, rate, c };
    size_t lens[4];
    redisReply *rep = NULL;
    int res = -1;

    memcpy(k + plen, key, keylen);
    snprintf(cap, sizeof cap, "%.17g", l->capacity);
    snprintf(rate, sizeof rate, "%.17g", l->refill);
    snprintf(c, sizeof c, "%.17g", cost);
    lens[0] = plen + keylen;
    lens[1] = strlen(cap);
    lens[2] = strlen(rate);
    lens[3] = strlen(c);
    if (sh__redis_eval(l->redis, &bucket_script, 1, 4, argv, lens, &rep,
                       NULL, 0) != SH_OK)
        return -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER &&
        rep->element[1]->type == REDIS_REPLY_INTEGER) {
        res = rep->element[0]->integer == 1 ? 1 : 0;
        if (retry_after_ms != NULL)
            *retry_after_ms = res == 1 ? 0
                              : rep->element[1]->integer < 0
                                  ? INT64_MAX
                                  : (int64_t)rep->element[1]->integer;
    }
    freeReplyObject(rep);
    return res;
}

bool sh__limiter_take(struct sh__limiter *l, const void *key, size_t keylen,
                      double cost, int64_t now_ms, int64_t *retry_after_ms)
{
    struct stripe *st;
    struct ent *e;
    uint64_t h;
    bool ok;

    if (l == NULL || key == NULL || keylen == 0 ||
        keylen > SH__LIMITER_KEY_MAX) {
        if (retry_after_ms != NULL)
            *retry_after_ms = 1000;
        return false;
    }
    if (l->redis != NULL && !isnan(cost)) {
        int r = shared_take(l, key, keylen, cost > 0 ? cost : 0,
                            retry_after_ms);
        if (r >= 0)
            return r == 1;
        if (l->fail_closed) {
            if (retry_after_ms != NULL)
                *retry_after_ms = 1000;
            return false;
        }
        /* Fail open: this node's own bucket. */
    }
    st = stripe_of(l, key, keylen, &h);
    pthread_mutex_lock(&st->mu);
    e = find(st, h, key, keylen);
    if (e == NULL) {
        if (st->count >= l->per_cap)
            evict(l, st, now_ms);
        e = malloc(sizeof *e + keylen);
        if (e == NULL) {
            pthread_mutex_unlock(&st->mu);
            if (retry_after_ms != NULL)
                *retry_after_ms = 1000;
            return false;
        }
        e->h = h;
        e->keylen = keylen;
        memcpy(e->key, key, keylen);
        e->b.tokens = l->capacity;
        e->b.last_ms = now_ms;
        e->hnext = st->table[h & st->mask];
        st->table[h & st->mask] = e;
        e->prev = e->next = NULL;
        lru_push_front(st, e);
        st->count++;
    } else if (st->head != e) {
        lru_unlink(st, e);
        lru_push_front(st, e);
    }
    ok = sh__bucket_take(&e->b, l->capacity, l->refill, cost, now_ms,
                         retry_after_ms);
    pthread_mutex_unlock(&st->mu);
    return ok;
}

void sh__limiter_give(struct sh__limiter *l, const void *key, size_t keylen,
                      double cost)
{
    struct stripe *st;
    struct ent *e;
    uint64_t h;

    if (l == NULL || key == NULL || keylen == 0 ||
        keylen > SH__LIMITER_KEY_MAX || !(cost > 0))
        return;
    /* Where the take fell back to the local bucket this gives to the
     * shared one: at most one token too many, while redis fails. */
    if (l->redis != NULL && shared_take(l, key, keylen, -cost, NULL) >= 0)
        return;
    st = stripe_of(l, key, keylen, &h);
    pthread_mutex_lock(&st->mu);
    e = find(st, h, key, keylen);
    /* An evicted bucket starts full again: nothing to give back. */
    if (e != NULL) {
        e->b.tokens += cost;
        if (e->b.tokens > l->capacity)
            e->b.tokens = l->capacity;
    }
    pthread_mutex_unlock(&st->mu);
}

size_t sh__limiter_count(struct sh__limiter *l)
{
    size_t n = 0;

    if (l == NULL)
        return 0;
    for (size_t i = 0; i < l->nstripes; i++) {
        pthread_mutex_lock(&l->s[i].mu);
        n += l->s[i].count;
        pthread_mutex_unlock(&l->s[i].mu);
    }
    return n;
}

void sh__limiter_free(struct sh__limiter *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nstripes; i++) {
        struct stripe *st = &l->s[i];
        struct ent *e = st->head;

        while (e != NULL) {
            struct ent *next = e->next;
            free(e);
            e = next;
        }
        free(st->table);
        pthread_mutex_destroy(&st->mu);
    }
    sodium_memzero(l->hkey, sizeof l->hkey);
    free(l);
}
