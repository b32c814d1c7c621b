/* libstreamhub/core/ratelimit_int.h: token buckets, alone and keyed.
 *
 * A bucket holds up to @capacity tokens and gains @refill_per_s tokens a
 * second; an action costing @cost goes ahead when that many tokens are
 * there.  Time is passed in (milliseconds from sh__mono_ms()), so the code
 * is pure and the tests deterministic.  Chat uses 100 per 60 s per user,
 * GraphQL @rateLimit(limit, window) capacity = limit and refill = limit /
 * window, the gateway one limiter per IP.
 */
#ifndef SH_CORE_RATELIMIT_INT_H
#define SH_CORE_RATELIMIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One bucket.  Start it full with { capacity, now_ms }; a zeroed bucket
 * is empty at time 0 (with sh__mono_ms() times it is full at first use
 * when refill_per_s > 0).  @locality the caller's; not locked. */
struct sh__bucket {
    double tokens;      /* 0..capacity */
    int64_t last_ms;    /* time of the last refill */
};

/* Refill @b for the time since last_ms, then take @cost tokens if there
 * are that many.  Returns true when taken.  *@retry_after_ms (may be NULL)
 * gets 0 on success; on refusal the wait in milliseconds (>= 1) after
 * which @cost tokens will be there, or INT64_MAX when never (cost over
 * capacity, or no refill).  A time before last_ms (a clock stepping back,
 * or threads that read the clock and then race) refills nothing and leaves
 * last_ms alone, and the wait counts from last_ms; a huge jump fills the
 * bucket.  cost <= 0
 * succeeds without taking; a NaN cost is refused (INT64_MAX); a capacity
 * or refill that is negative or not finite counts as 0. */
bool sh__bucket_take(struct sh__bucket *b, double capacity,
                     double refill_per_s, double cost, int64_t now_ms,
                     int64_t *retry_after_ms);

/* A keyed limiter: one bucket per key (user id, IP address...), all with
 * the same capacity and refill, at most max_keys of them.  When full, a
 * new key evicts buckets that have refilled to capacity (they carry no
 * state: a new bucket starts full too); if none is full, the one idle the
 * longest goes.  Eviction of a non-full bucket forgets its debt, so
 * max_keys should exceed the keys active within one refill period.
 * Thread-safe: striped mutexes.  @locality any  @locks stripe mutexes */
struct sh__limiter;

/* Returns NULL out of memory or on a bad argument (capacity not a finite
 * number > 0, refill_per_s not a finite number >= 0, max_keys 0).  New
 * keys start with a full bucket.
 * Ownership: the caller's, released by sh__limiter_free(). */
struct sh__limiter *sh__limiter_new(double capacity, double refill_per_s,
                                    size_t max_keys);
/* sh__bucket_take() on @key's bucket (@keylen bytes, any bytes, 1..256).
 * A key that cannot get a bucket (out of memory, or a bad key) is refused
 * with *@retry_after_ms = 1000: failing closed. */
bool sh__limiter_take(struct sh__limiter *l, const void *key, size_t keylen,
                      double cost, int64_t now_ms, int64_t *retry_after_ms);
/* Give back @cost tokens that sh__limiter_take() took for an action that
 * was refused later (never above capacity; nothing when the bucket was
 * evicted meanwhile, since a new one starts full).  The take and the give
 * are each one step under the stripe's mutex: concurrent takers never see
 * more tokens than were there. */
void sh__limiter_give(struct sh__limiter *l, const void *key, size_t keylen,
                      double cost);
struct sh__redis;
/* Share @l's buckets with every node of a cluster: from now on take and
 * give run one Lua token bucket in redis (key "<name>:<key>", a
 * hash of tokens and the time of the last refill, by the server's clock:
 * @now_ms is ignored), with @l's capacity and refill, so that the nodes
 * together allow what one node would.  The hash expires once it would
 * have refilled.  While redis fails (core/redis.c: fail fast), a take
 * falls back to @l's own bucket (@fail_closed false: each node then
 * allows the full rate) or is refused with retry 1000 ms (@fail_closed
 * true).  A shared limiter waits on redis (redis.timeout-ms at most):
 * never share one that a loop thread uses.  @redis is borrowed and must
 * outlive @l; @name (1..127 bytes: the key prefix, such as
 * "sh:rl:chat") is copied.  Call once, before @l is
 * used by several threads.  Returns false on a bad argument. */
bool sh__limiter_share(struct sh__limiter *l, struct sh__redis *redis,
                       const char *name, bool fail_closed);
/* Buckets held now (for tests and metrics). */
size_t sh__limiter_count(struct sh__limiter *l);
/* NULL is a no-op. */
void sh__limiter_free(struct sh__limiter *l);

#define SH__LIMITER_KEY_MAX 256

#endif
