/* libstreamhub/bus/bus_redis.c: the Redis bus (`bus = redis://...`).
 *
 * Several nodes share one Redis; each keeps its own subscribers (bus.c,
 * through bus_be.h) and this file moves events between nodes.
 *
 * Loop.  The backend owns one thread running a libevent loop with two
 * hiredis 0.14 async connections: `cmd` (scripts, PING) and `sub`
 * (SUBSCRIBE/UNSUBSCRIBE: a connection in subscribe mode takes nothing
 * else).  Its own thread rather than a gateway loop: the library runs
 * without a gateway (the C API, the bindings), a busy gateway loop must not
 * delay every node's events, and a frozen Redis then stalls no loop that
 * serves sockets.  Callers on any thread queue a request, wake the loop (a
 * pipe) and wait for the answer with a deadline (bus.redis-timeout-ms);
 * events received go to sh__bus_deliver(), which queues them to
 * subscribers and hands them to the hub's dispatcher as the local bus does.
 *
 * One script (bus_redis.lua, EVALSHA with EVAL on NOSCRIPT) keeps each
 * channel in one hash: epoch, last offset handed out, last published, the
 * history (bounded to bus.history-size, oldest first, a field per offset so
 * that redaction can replace an entry), released events waiting for claims
 * before them, and claims with their deadlines.  One key per channel: an
 * eviction, an expiry (bus.history-ttl-seconds after the last publish) or a
 * FLUSHALL takes all of it at once, and the next call makes a new epoch, so
 * a client is never told `recovered` for history that is gone.  A new epoch
 * starts above the channel's floor: for chat: channels the store's
 * reservation (bus_int.h), which the bus raises above every offset handed
 * out before the offset is used, so that a chat message's offset
 * (UNIQUE(stream_id, offset) in the store) is never repeated.
 *
 * Claims across nodes.  A claim takes the next offset in the script and
 * records a deadline (bus.redis-claim-timeout-ms); the release stores the
 * event under its offset, and the script publishes, in offset order, every
 * event from the last published up to the first claim still out.  A
 * publish behind an outstanding claim waits in Redis the same way.  So
 * PUBLISH order is offset order on every node, with one sequence per
 * channel; a claim whose node died is skipped (a gap, never a repeat) once
 * its deadline passes, by the next call on that channel or by the `tick`
 * every node runs each second over the channels with claims outstanding.
 * A release after its deadline is dropped (LATE): the message is stored
 * but was not delivered live; history queries still return it.
 *
 * Subscriptions.  One Redis SUBSCRIBE per channel with local subscribers
 * (watch/unwatch count them), one state machine per channel (unsubscribed,
 * subscribing, subscribed, unsubscribing) on the loop thread: a SUBSCRIBE
 * and an UNSUBSCRIBE of one channel are never in flight together, and a
 * change of mind while one is in flight is applied when its answer comes.
 * A new local subscriber waits until Redis confirmed the SUBSCRIBE, joins
 * the channel buffering, then reads the history: the bus splices the two by
 * offset (bus.c), so resuming on any node gives the missed events in
 * order and then live ones, once each.
 *
 * Faults.  The loop PINGs every second; no answer within the timeout (a
 * Redis frozen by SIGSTOP keeps its sockets open) or a lost connection
 * marks the backend down: every request fails with SH_EBUS at once (a
 * publish is refused, never acknowledged without Redis), the readiness
 * probe's position query fails (503), every local subscription ends with
 * SH_EBUS (its clients resume and learn whether their gap is recoverable),
 * and the loop reconnects with backoff (100 ms doubling to 5 s), forever.
 * Back up, it resubscribes every channel that has local subscribers.  A
 * request that timed out may still have been applied: it was reported as
 * refused, and a client that retries may see its event twice.
 *
 * Invariants:
 *  1. cmd, sub, cmd_ok, sub_ok, ping_* are the loop thread's.  Everything
 *     under `@locks mu` may be read by any thread; mu is never held while
 *     calling into the bus, and the bus may call unwatch() holding a
 *     channel's lock (order: channel lock, then mu).
 *  2. A request is referenced by its waiter (until done or timed out) and
 *     by the loop (until its callback or its failure): freed at zero.
 *  3. up implies cmd and sub connected and the last PING answered in time.
 *     gen grows at every loss: a subscription that joined under an older
 *     gen may have missed events.
 *  4. A watched channel (wchan) exists while want > 0 or a command of it
 *     is in flight; at most one command of it is in flight (st).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "bus_be.h"
#include "core/otel_int.h"

extern const char sh__bus_redis_lua[];
extern const size_t sh__bus_redis_lua_len;

#define TICK_MS 250
#define PING_EVERY_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WBUCKETS 4096
#define MAX_ARGS 16

/* An answer, copied off hiredis's reply (freed after its callback). */
struct answer {
    int type;                   /* REDIS_REPLY_* */
    long long integer;
    char *str;                  /* owned: error, status or string */
    size_t len;
    char **el;                  /* owned: an array's strings (NULL for nil) */
    size_t *ellen;
    size_t n;
};

struct req {
    struct req *next;
    int refs;                   /* @locks mu (inv. 2) */
    bool done;                  /* @locks mu */
    bool script;                /* EVALSHA: EVAL again on NOSCRIPT */
    sh_err_t rc;                /* SH_OK or SH_EBUS */
    char err[160];
    struct answer ans;
    int argc;
    char *argv[MAX_ARGS];       /* owned */
    size_t lens[MAX_ARGS];
};

enum wstate { W_UNSUB, W_SUBSCRIBING, W_SUBSCRIBED, W_UNSUBSCRIBING };

struct wchan {
    struct wchan *hnext, *dnext;
    enum wstate st;
    int want;                   /* local subscriptions watching */
    bool dirty;                 /* on the dirty list */
    char name[];                /* the bus's channel name */
};

struct rbus {
    struct sh__bus *bus;
    const struct sh__log *log;
    sh__bus_floor_fn floor;
    char *host, *password;
    int port, db;
    char *prefix;               /* of every key and PUBLISH channel */
    size_t prefix_len;
    char *stalled;              /* the set of channels with claims out */
    char sha[41];
    char hmax[24], ttl[24], claim_ms[24];
    int64_t timeout_ms;
    pthread_t thread;
    struct event_base *base;
    struct event *wake_ev, *tick_ev, *retry_ev;
    int wake_fd[2];
    /* The loop thread's (inv. 1): */
    redisAsyncContext *cmd, *sub;
    bool cmd_ok, sub_ok, ping_out, retrying;
    int64_t ping_at, last_tick_script, last_refresh, backoff_ms;
    int64_t ttl_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a request finished, a watch changed */
    /* @locks mu: */
    bool up, stopping;
    bool silent;                /* a request timed out: tear down */
    unsigned gen;
    struct req *qhead, *qtail;
    struct wchan *wtab[WBUCKETS];
    struct wchan *dirty;
};

static void teardown(struct rbus *r, const redisAsyncContext *gone,
                     const char *why);

/* ---- requests ----------------------------------------------------------- */

static void answer_clear(struct answer *a)
{
    free(a->str);
    for (size_t i = 0; i < a->n; i++)
        free(a->el[i]);
    free(a->el);
    free(a->ellen);
    memset(a, 0, sizeof *a);
}

static bool answer_copy(struct answer *a, const redisReply *rp)
{
    a->type = rp->type;
    a->integer = rp->integer;
    if (rp->str != NULL) {
        a->str = malloc(rp->len + 1);
        if (a->str == NULL)
            return false;
        memcpy(a->str, rp->str, rp->len);
        a->str[rp->len] = '\0';
        a->len = rp->len;
    }
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements > 0) {
        a->el = calloc(rp->elements, sizeof *a->el);
        a->ellen = calloc(rp->elements, sizeof *a->ellen);
        if (a->el == NULL || a->ellen == NULL)
            return false;
        a->n = rp->elements;
        for (size_t i = 0; i < rp->elements; i++) {
            const redisReply *e = rp->element[i];
            if (e->type != REDIS_REPLY_STRING &&
                e->type != REDIS_REPLY_STATUS)
                continue;
            a->el[i] = malloc(e->len + 1);
            if (a->el[i] == NULL)
                return false;
            memcpy(a->el[i], e->str, e->len);
            a->el[i][e->len] = '\0';
            a->ellen[i] = e->len;
        }
    }
    return true;
}

static void req_free(struct req *q)
{
    for (int i = 0; i < q->argc; i++)
        free(q->argv[i]);
    answer_clear(&q->ans);
    free(q);
}

/* Drop one reference (inv. 2).  @locks mu */
static void req_unref_locked(struct req *q)
{
    if (--q->refs == 0)
        req_free(q);
}

static bool req_arg(struct req *q, const char *s, size_t len)
{
    assert(q->argc < MAX_ARGS);
    q->argv[q->argc] = malloc(len + 1);
    if (q->argv[q->argc] == NULL)
        return false;
    memcpy(q->argv[q->argc], s, len);
    q->argv[q->argc][len] = '\0';
    q->lens[q->argc++] = len;
    return true;
}

static bool req_str(struct req *q, const char *s)
{
    return req_arg(q, s, strlen(s));
}

static bool req_u64(struct req *q, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);

    return req_arg(q, num, (size_t)n);
}

/* A script call on @channel: EVALSHA sha 2 key stalled op epoch floor
 * hmax ttl claim_ms, the op's own arguments to follow. */
static struct req *script_req(struct rbus *r, const char *channel,
                              const char *op, const char *floor)
{
    struct req *q = calloc(1, sizeof *q);
    char epoch[17];
    unsigned char rnd[8];
    bool ok;

    if (q == NULL)
        return NULL;
    q->script = true;
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(epoch, sizeof epoch, rnd, sizeof rnd);
    ok = req_str(q, "EVALSHA") && req_str(q, r->sha) && req_str(q, "2");
    if (ok) {
        size_t cl = channel != NULL ? strlen(channel) : 0;
        char *key = malloc(r->prefix_len + cl + 1);

        ok = key != NULL;
        if (ok) {
            memcpy(key, r->prefix, r->prefix_len);
            if (cl > 0)
                memcpy(key + r->prefix_len, channel, cl);
            ok = req_arg(q, key, r->prefix_len + cl);
            free(key);
        }
    }
    ok = ok && req_str(q, r->stalled) && req_str(q, op) &&
         req_str(q, epoch) && req_str(q, floor) && req_str(q, r->hmax) &&
         req_str(q, r->ttl) && req_str(q, r->claim_ms);
    if (!ok) {
        req_free(q);
        return NULL;
    }
    return q;
}

static void wake(struct rbus *r)
{
    ssize_t n = write(r->wake_fd[1], "x", 1);

    (void)n;                    /* full pipe: a wake-up is pending anyway */
}

/* Queue @q for the loop (it takes a reference).  False when down. */
static bool submit(struct rbus *r, struct req *q, int waiters)
{
    pthread_mutex_lock(&r->mu);
    if (!r->up || r->stopping) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    q->refs = 1 + waiters;
    q->next = NULL;
    if (r->qtail != NULL)
        r->qtail->next = q;
    else
        r->qhead = q;
    r->qtail = q;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    return true;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Run @n requests (pipelined on the one connection) and wait for them all
 * until the deadline.  Each q[i] is consumed; on SH_OK the answers are
 * moved into @ans (may be NULL when n == 1 is not needed). */
static sh_err_t run(struct rbus *r, struct req **qs, size_t n,
                    struct answer *ans, char *errbuf, size_t errbuf_len)
{
    struct timespec until;
    sh_err_t rc = SH_OK;
    size_t queued = 0;

    for (size_t i = 0; i < n; i++) {
        if (!submit(r, qs[i], 1)) {
            for (size_t j = i; j < n; j++)
                req_free(qs[j]);
            rc = SH_EBUS;
            sh__errbuf(errbuf, errbuf_len, "bus: redis unavailable");
            break;
        }
        queued++;
    }
    deadline_in(&until, r->timeout_ms);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < queued; i++) {
        struct req *q = qs[i];

        while (!q->done && rc != SH_ETIMEDOUT) {
            if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT
                && !q->done)
                rc = SH_ETIMEDOUT;
        }
        if (q->done && q->rc != SH_OK && rc == SH_OK) {
            rc = q->rc;
            sh__errbuf(errbuf, errbuf_len, "bus: redis: %s", q->err);
        }
        if (q->done && ans != NULL) {
            ans[i] = q->ans;
            memset(&q->ans, 0, sizeof q->ans);
        }
        req_unref_locked(q);
    }
    if (rc == SH_ETIMEDOUT && r->up) {
        /* Silent past the deadline: down from now on for every caller,
         * so that nothing more is sent to it; the loop reconnects. */
        r->up = false;
        r->silent = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == SH_ETIMEDOUT) {
        wake(r);
        sh__errbuf(errbuf, errbuf_len, "bus: redis did not answer within "
                   "%lld ms", (long long)r->timeout_ms);
        rc = SH_EBUS;
    }
    if (rc != SH_OK && ans != NULL) {
        for (size_t i = 0; i < n; i++)
            answer_clear(&ans[i]);
    }
    return rc;
}

/* @locks mu */
static void req_done_locked(struct rbus *r, struct req *q, sh_err_t rc,
                            const char *err)
{
    q->done = true;
    q->rc = rc;
    if (err != NULL)
        snprintf(q->err, sizeof q->err, "%s", err);
    pthread_cond_broadcast(&r->cv);
    req_unref_locked(q);
}

static void req_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rbus *r = ac->data;
    struct req *q = priv;
    redisReply *rp = reply;
    bool ok;

    if (rp == NULL) {
        pthread_mutex_lock(&r->mu);
        req_done_locked(r, q, SH_EBUS, "connection lost");
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (rp->type == REDIS_REPLY_ERROR && q->script &&
        strncmp(rp->str, "NOSCRIPT", 8) == 0) {
        /* The script cache was emptied (a restart, SCRIPT FLUSH): send
         * the body once; Redis caches it again. */
        free(q->argv[0]);
        free(q->argv[1]);
        q->argv[0] = strdup("EVAL");
        q->argv[1] = malloc(sh__bus_redis_lua_len + 1);
        if (q->argv[0] != NULL && q->argv[1] != NULL) {
            memcpy(q->argv[1], sh__bus_redis_lua, sh__bus_redis_lua_len + 1);
            q->lens[0] = 4;
            q->lens[1] = sh__bus_redis_lua_len;
            q->script = false;
            if (redisAsyncCommandArgv(ac, req_cb, q, q->argc,
                                      (const char **)q->argv, q->lens)
                == REDIS_OK)
                return;
        }
        pthread_mutex_lock(&r->mu);
        req_done_locked(r, q, SH_EBUS, "cannot load the script");
        pthread_mutex_unlock(&r->mu);
        return;
    }
    pthread_mutex_lock(&r->mu);
    ok = answer_copy(&q->ans, rp);
    if (!ok)
        req_done_locked(r, q, SH_EBUS, "out of memory");
    else if (rp->type == REDIS_REPLY_ERROR)
        req_done_locked(r, q, SH_EBUS, rp->str);
    else
        req_done_locked(r, q, SH_OK, NULL);
    pthread_mutex_unlock(&r->mu);
}

/* ---- subscriptions (inv. 4) ---------------------------------------------- */

static uint32_t whash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* @locks mu */
static struct wchan *wfind(struct rbus *r, const char *name, bool create)
{
    uint32_t b = whash(name) % WBUCKETS;
    struct wchan *w;
    size_t len;

    for (w = r->wtab[b]; w != NULL; w = w->hnext) {
        if (strcmp(w->name, name) == 0)
            return w;
    }
    if (!create)
        return NULL;
    len = strlen(name);
    w = calloc(1, sizeof *w + len + 1);
    if (w == NULL)
        return NULL;
    memcpy(w->name, name, len + 1);
    w->hnext = r->wtab[b];
    r->wtab[b] = w;
    return w;
}

/* @locks mu */
static void wremove(struct rbus *r, struct wchan *w)
{
    struct wchan **pp = &r->wtab[whash(w->name) % WBUCKETS];

    while (*pp != w)
        pp = &(*pp)->hnext;
    *pp = w->hnext;
    free(w);
}

/* @locks mu */
static void wdirty(struct rbus *r, struct wchan *w)
{
    if (!w->dirty) {
        w->dirty = true;
        w->dnext = r->dirty;
        r->dirty = w;
    }
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv);

/* Move @w towards what is wanted: one command at a time.
 * @locality loop thread.  @locks mu */
static void wstep(struct rbus *r, struct wchan *w)
{
    const char *argv[2];
    size_t lens[2];
    char key[SH_CHANNEL_MAX + 128];
    size_t nl = strlen(w->name);

    if (r->prefix_len + nl >= sizeof key)
        return;
    memcpy(key, r->prefix, r->prefix_len);
    memcpy(key + r->prefix_len, w->name, nl);
    argv[1] = key;
    lens[1] = r->prefix_len + nl;
    switch (w->st) {
    case W_UNSUB:
        if (w->want == 0) {
            wremove(r, w);
            return;
        }
        if (!r->up)
            return;             /* resubscribed when back up */
        argv[0] = "SUBSCRIBE";
        lens[0] = 9;
        if (redisAsyncCommandArgv(r->sub, sub_cb, r, 2, argv, lens)
            == REDIS_OK)
            w->st = W_SUBSCRIBING;
        return;
    case W_SUBSCRIBED:
        if (w->want > 0 || !r->up)
            return;
        argv[0] = "UNSUBSCRIBE";
        lens[0] = 11;
        if (redisAsyncCommandArgv(r->sub, sub_cb, r, 2, argv, lens)
            == REDIS_OK)
            w->st = W_UNSUBSCRIBING;
        return;
    case W_SUBSCRIBING:
    case W_UNSUBSCRIBING:
        return;                 /* the answer steps it again */
    }
}

/* A record's first field: "ts", or "ts traceparent" when @tp is not "",
 * so that a delivery on another node joins the producer's trace.  Readers
 * take the number and ignore what follows it: records with and without
 * the traceparent read alike on every node.  Returns the length. */
static int ts_field(char *out, size_t cap, int64_t ts, const char *tp)
{
    return tp[0] != '\0'
               ? snprintf(out, cap, "%lld %s", (long long)ts, tp)
               : snprintf(out, cap, "%lld", (long long)ts);
}

/* "epoch\noffset\nts[ traceparent]\ntype\ndata" -> an event, or NULL. */
static struct sh_event *parse_event(const char *channel, const char *epoch,
                                    size_t epoch_len, uint64_t offset,
                                    const char *rec, size_t len)
{
    char ep[SH_EPOCH_SIZE], type[80];   /* types: 1..64 bytes */
    const char *nl1, *nl2, *end = rec + len;
    char *after;
    struct sh_event *ev;
    long long ts;

    if (epoch_len >= sizeof ep)
        return NULL;
    memcpy(ep, epoch, epoch_len);
    ep[epoch_len] = '\0';
    nl1 = memchr(rec, '\n', len);
    if (nl1 == NULL)
        return NULL;
    nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (nl2 == NULL || (size_t)(nl2 - nl1 - 1) >= sizeof type)
        return NULL;
    ts = strtoll(rec, &after, 10);
    memcpy(type, nl1 + 1, (size_t)(nl2 - nl1 - 1));
    type[nl2 - nl1 - 1] = '\0';
    ev = sh__event_new_text(channel, ep, offset, ts, type, nl2 + 1,
                            (size_t)(end - nl2 - 1));
    /* Not shared yet: the producer's traceparent, when the record has
     * one of the right length (else ""). */
    if (ev != NULL) {
        ev->traceparent[0] = '\0';
        if (*after == ' ' && nl1 - after - 1 == SH__TRACEPARENT_LEN) {
            memcpy(ev->traceparent, after + 1, SH__TRACEPARENT_LEN);
            ev->traceparent[SH__TRACEPARENT_LEN] = '\0';
        }
    }
    return ev;
}

static void on_message(struct rbus *r, const char *name, const char *msg,
                       size_t len)
{
    const char *nl1 = memchr(msg, '\n', len), *nl2;
    struct sh_event *ev;
    uint64_t off;

    if (nl1 == NULL)
        return;
    nl2 = memchr(nl1 + 1, '\n', (size_t)(msg + len - nl1 - 1));
    if (nl2 == NULL)
        return;
    off = strtoull(nl1 + 1, NULL, 10);
    ev = parse_event(name, msg, (size_t)(nl1 - msg), off, nl2 + 1,
                     (size_t)(msg + len - nl2 - 1));
    if (ev == NULL) {
        sh__log_kv(r->log, SH_LOG_WARN, "bus: unreadable event from redis",
                   "channel", name, (char *)NULL);
        return;
    }
    sh__bus_deliver(r->bus, ev);
    sh__event_unref(ev);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rbus *r = priv;
    redisReply *rp = reply;
    const redisReply *kind, *chan;
    const char *name;
    struct wchan *w;

    (void)ac;
    if (rp == NULL || rp->type != REDIS_REPLY_ARRAY || rp->elements < 3)
        return;
    kind = rp->element[0];
    chan = rp->element[1];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING
        || chan->len <= r->prefix_len ||
        memcmp(chan->str, r->prefix, r->prefix_len) != 0)
        return;
    name = chan->str + r->prefix_len;
    if (strcmp(kind->str, "message") == 0) {
        if (rp->element[2]->type == REDIS_REPLY_STRING)
            on_message(r, name, rp->element[2]->str, rp->element[2]->len);
        return;
    }
    pthread_mutex_lock(&r->mu);
    w = wfind(r, name, false);
    if (w != NULL) {
        if (strcmp(kind->str, "subscribe") == 0 &&
            w->st == W_SUBSCRIBING)
            w->st = W_SUBSCRIBED;
        else if (strcmp(kind->str, "unsubscribe") == 0 &&
                 w->st == W_UNSUBSCRIBING)
            w->st = W_UNSUB;
        pthread_cond_broadcast(&r->cv);
        wstep(r, w);
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- the connection ------------------------------------------------------ */

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rbus *r = ac->data;
    bool came_up = false;

    (void)priv;
    if (reply == NULL || ac != r->cmd)
        return;
    r->ping_out = false;
    if (((redisReply *)reply)->type == REDIS_REPLY_ERROR) {
        /* NOAUTH, a wrong password or db: not up, and said once per
         * attempt (the next PING's deadline tries again). */
        if (!r->up)
            sh__log_kv(r->log, SH_LOG_ERROR, "bus: redis refused us",
                       "error", ((redisReply *)reply)->str, (char *)NULL);
        r->ping_out = true;     /* unanswered: the deadline reconnects */
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->up && r->cmd_ok && r->sub_ok && !r->stopping) {
        r->up = true;
        r->silent = false;      /* a timeout of the last connection */
        came_up = true;
        r->backoff_ms = BACKOFF_MIN_MS;
        /* Resubscribe every channel that has local subscribers. */
        for (size_t b = 0; b < WBUCKETS; b++) {
            for (struct wchan *w = r->wtab[b]; w != NULL; w = w->hnext)
                wdirty(r, w);
        }
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (came_up) {
        sh__log_kv(r->log, SH_LOG_INFO, "bus: redis connected", "host",
                   r->host, (char *)NULL);
        wake(r);
    }
}

static void send_ping(struct rbus *r)
{
    if (redisAsyncCommand(r->cmd, ping_cb, NULL, "PING") == REDIS_OK) {
        r->ping_out = true;
        r->ping_at = sh__mono_ms();
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rbus *r = ac->data;

    if (ac != r->cmd && ac != r->sub)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees @ac after this callback. */
        teardown(r, ac, ac->errstr);
        return;
    }
    if (ac == r->cmd)
        r->cmd_ok = true;
    else
        r->sub_ok = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rbus *r = ac->data;

    (void)status;
    if (ac != r->cmd && ac != r->sub)
        return;                 /* one we freed ourselves */
    teardown(r, ac, ac->errstr[0] != '\0' ? ac->errstr
                                          : "connection closed");
}

static redisAsyncContext *open_one(struct rbus *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

    if (ac == NULL)
        return NULL;
    if (ac->err != 0) {
        sh__log_kv(r->log, SH_LOG_WARN, "bus: cannot reach redis", "error",
                   ac->errstr, (char *)NULL);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->password != NULL)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
    if (r->db != 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->db);
    return ac;
}

static void schedule_retry(struct rbus *r)
{
    struct timeval tv;

    if (r->retrying || r->stopping)
        return;
    tv.tv_sec = r->backoff_ms / 1000;
    tv.tv_usec = (r->backoff_ms % 1000) * 1000;
    r->retrying = true;
    evtimer_add(r->retry_ev, &tv);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                     : r->backoff_ms * 2;
}

static void connect_both(struct rbus *r)
{
    r->cmd = open_one(r);
    r->sub = r->cmd != NULL ? open_one(r) : NULL;
    if (r->cmd == NULL || r->sub == NULL) {
        teardown(r, NULL, "cannot connect");
        return;
    }
    /* Answered only once connected and authenticated: the deadline of
     * this PING also bounds a connect to a frozen server. */
    send_ping(r);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rbus *r = arg;

    (void)fd;
    (void)what;
    r->retrying = false;
    if (r->cmd == NULL && !r->stopping)
        connect_both(r);
}

/* Mark the backend down, drop both connections (but @gone, which hiredis
 * is freeing), end every local subscription and schedule a reconnect.
 * @locality loop thread */
static void teardown(struct rbus *r, const redisAsyncContext *gone,
                     const char *why)
{
    redisAsyncContext *c = r->cmd, *s = r->sub;
    bool was_up;

    pthread_mutex_lock(&r->mu);
    was_up = r->up || r->silent;
    r->up = false;
    r->silent = false;
    r->gen++;
    for (size_t b = 0; b < WBUCKETS; b++) {
        for (struct wchan *w = r->wtab[b]; w != NULL; w = w->hnext)
            w->st = W_UNSUB;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    r->cmd = r->sub = NULL;
    r->cmd_ok = r->sub_ok = false;
    r->ping_out = false;
    /* Pending callbacks run now with no reply: their requests fail. */
    if (c != NULL && c != gone)
        redisAsyncFree(c);
    if (s != NULL && s != gone)
        redisAsyncFree(s);
    if (was_up) {
        sh__log_kv(r->log, SH_LOG_ERROR, "bus: redis lost", "error", why,
                   (char *)NULL);
        sh__bus_fail(r->bus);
    }
    schedule_retry(r);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rbus *r = arg;
    struct req *q, *next;
    struct wchan *w, *wn;
    char buf[64];
    bool stopping, silent;

    (void)what;
    while (read(fd, buf, sizeof buf) > 0) {
    }
    pthread_mutex_lock(&r->mu);
    silent = r->silent;
    pthread_mutex_unlock(&r->mu);
    if (silent && r->cmd != NULL)
        teardown(r, NULL, "a request got no answer in time (redis frozen?)");
    pthread_mutex_lock(&r->mu);
    stopping = r->stopping;
    q = r->qhead;
    r->qhead = r->qtail = NULL;
    w = r->dirty;
    r->dirty = NULL;
    for (; w != NULL; w = wn) {
        wn = w->dnext;
        w->dirty = false;
        w->dnext = NULL;
        if (!stopping)
            wstep(r, w);        /* may free w */
    }
    pthread_mutex_unlock(&r->mu);
    for (; q != NULL; q = next) {
        next = q->next;
        if (r->cmd != NULL && r->cmd_ok && !stopping &&
            redisAsyncCommandArgv(r->cmd, req_cb, q, q->argc,
                                  (const char **)q->argv, q->lens)
                == REDIS_OK)
            continue;
        pthread_mutex_lock(&r->mu);
        req_done_locked(r, q, SH_EBUS, "redis unavailable");
        pthread_mutex_unlock(&r->mu);
    }
    if (stopping) {
        redisAsyncContext *c = r->cmd, *s = r->sub;

        r->cmd = r->sub = NULL;
        if (c != NULL)
            redisAsyncFree(c);
        if (s != NULL)
            redisAsyncFree(s);
        event_base_loopbreak(r->base);
    }
}

/* Keep alive the keys of the channels this node listens to: a quiet
 * channel's key would expire (bus.history-ttl-seconds after its last
 * publish) and the next event would come in a new epoch, ending every
 * subscriber of a channel that lost nothing.  EXPIRE on a key that is
 * gone does nothing (an epoch lost stays lost).  @locality loop thread */
static void refresh_watched(struct rbus *r, int64_t now)
{
    char key[SH_CHANNEL_MAX + 128];

    r->last_refresh = now;
    pthread_mutex_lock(&r->mu);
    if (r->up) {
        for (size_t b = 0; b < WBUCKETS; b++) {
            for (struct wchan *w = r->wtab[b]; w != NULL; w = w->hnext) {
                size_t nl = strlen(w->name);
                const char *argv[3];
                size_t lens[3];

                if (w->st != W_SUBSCRIBED ||
                    r->prefix_len + nl >= sizeof key)
                    continue;
                memcpy(key, r->prefix, r->prefix_len);
                memcpy(key + r->prefix_len, w->name, nl);
                argv[0] = "EXPIRE";
                lens[0] = 6;
                argv[1] = key;
                lens[1] = r->prefix_len + nl;
                argv[2] = r->ttl;
                lens[2] = strlen(r->ttl);
                redisAsyncCommandArgv(r->cmd, NULL, NULL, 3, argv, lens);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rbus *r = arg;
    int64_t now = sh__mono_ms();

    (void)fd;
    (void)what;
    if (r->cmd == NULL)
        return;
    if (r->ping_out) {
        if (now - r->ping_at > r->timeout_ms)
            teardown(r, NULL, "no answer to PING (redis frozen?)");
        return;
    }
    if (now - r->ping_at >= PING_EVERY_MS)
        send_ping(r);
    if (r->cmd_ok && now - r->last_refresh >= r->ttl_ms / 3)
        refresh_watched(r, now);
    if (r->cmd_ok && now - r->last_tick_script >= 1000) {
        struct req *q = script_req(r, NULL, "tick", "");

        r->last_tick_script = now;
        if (q != NULL) {
            q->refs = 1;
            if (redisAsyncCommandArgv(r->cmd, req_cb, q, q->argc,
                                      (const char **)q->argv, q->lens)
                != REDIS_OK)
                req_free(q);
        }
    }
}

static void *loop_main(void *arg)
{
    struct rbus *r = arg;

    connect_both(r);
    event_base_dispatch(r->base);
    return NULL;
}

/* ---- the backend --------------------------------------------------------- */

/* redis://[:password@]host:port[/db] */
static sh_err_t parse_uri(struct rbus *r, const char *uri, char *errbuf,
                          size_t errbuf_len)
{
    const char *p = uri + 8, *at = strrchr(p, '@'), *colon, *slash;
    char *end;
    long port, db = 0;

    if (at != NULL) {
        if (*p != ':' || at == p + 1)
            goto bad;
        r->password = strndup(p + 1, (size_t)(at - p - 1));
        if (r->password == NULL)
            return SH_ENOMEM;
        p = at + 1;
    }
    colon = strchr(p, ':');
    if (colon == NULL || colon == p)
        goto bad;
    r->host = strndup(p, (size_t)(colon - p));
    if (r->host == NULL)
        return SH_ENOMEM;
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || port < 1 || port > 65535)
        goto bad;
    slash = end;
    if (*slash == '/') {
        db = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || db < 0 || db > 1000000)
            goto bad;
    }
    if (*end != '\0')
        goto bad;
    r->port = (int)port;
    r->db = (int)db;
    return SH_OK;
bad:
    sh__errbuf(errbuf, errbuf_len, "bus: expected redis://[:password@]host:"
               "port[/db], not \"%.64s\"", uri);
    return SH_EINVAL;
}

static void rb_free(void *be)
{
    struct rbus *r = be;

    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    pthread_join(r->thread, NULL);
    /* Requests queued after the loop's last turn. */
    pthread_mutex_lock(&r->mu);
    while (r->qhead != NULL) {
        struct req *q = r->qhead;
        r->qhead = q->next;
        req_done_locked(r, q, SH_EBUS, "closing");
    }
    for (size_t b = 0; b < WBUCKETS; b++) {
        while (r->wtab[b] != NULL) {
            struct wchan *w = r->wtab[b];
            r->wtab[b] = w->hnext;
            free(w);
        }
    }
    pthread_mutex_unlock(&r->mu);
    event_free(r->wake_ev);
    event_free(r->tick_ev);
    event_free(r->retry_ev);
    event_base_free(r->base);
    close(r->wake_fd[0]);
    close(r->wake_fd[1]);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->host);
    free(r->password);
    free(r->prefix);
    free(r->stalled);
    free(r);
}

sh_err_t sh__bus_redis_new(struct sh__bus *bus, const sh_config_t *conf,
                           const struct sh__log *log, const char *uri,
                           sh__bus_floor_fn floor, void **out,
                           char *errbuf, size_t errbuf_len)
{
    struct rbus *r = calloc(1, sizeof *r);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    pthread_condattr_t ca;
    struct timeval tv = { 0, TICK_MS * 1000 };
    const char *prefix;
    sh_err_t rc;

    *out = NULL;
    if (r == NULL)
        goto nomem;
    r->wake_fd[0] = r->wake_fd[1] = -1;
    rc = parse_uri(r, uri, errbuf, errbuf_len);
    if (rc != SH_OK) {
        if (rc == SH_ENOMEM)
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        free(r->host);
        free(r->password);
        free(r);
        return rc;
    }
    r->bus = bus;
    r->log = log;
    r->floor = floor;
    prefix = sh__config_str(conf, "bus.redis-key-prefix");
    if (strlen(prefix) > 64) {
        sh__errbuf(errbuf, errbuf_len, "bus.redis-key-prefix: at most 64 "
                   "bytes");
        free(r->host);
        free(r->password);
        free(r);
        return SH_EINVAL;
    }
    r->prefix = strdup(prefix);
    r->prefix_len = strlen(prefix);
    r->stalled = malloc(r->prefix_len + 9);
    if (r->prefix == NULL || r->stalled == NULL)
        goto nomem_free;
    snprintf(r->stalled, r->prefix_len + 9, "%s!stalled", prefix);
    snprintf(r->hmax, sizeof r->hmax, "%lld",
             (long long)sh__config_int(conf, "bus.history-size"));
    snprintf(r->ttl, sizeof r->ttl, "%lld",
             (long long)sh__config_int(conf, "bus.history-ttl-seconds"));
    snprintf(r->claim_ms, sizeof r->claim_ms, "%lld",
             (long long)sh__config_int(conf, "bus.redis-claim-timeout-ms"));
    r->timeout_ms = sh__config_int(conf, "bus.redis-timeout-ms");
    r->ttl_ms = sh__config_int(conf, "bus.history-ttl-seconds") * 1000;
    r->backoff_ms = BACKOFF_MIN_MS;
    if (EVP_Digest(sh__bus_redis_lua, sh__bus_redis_lua_len, md, &mdlen,
                   EVP_sha1(), NULL) != 1 || mdlen != 20)
        goto internal;
    sodium_bin2hex(r->sha, sizeof r->sha, md, 20);
    if (pipe2(r->wake_fd, O_NONBLOCK | O_CLOEXEC) != 0)
        goto internal;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->base = event_base_new();
    if (r->base == NULL)
        goto internal;
    r->wake_ev = event_new(r->base, r->wake_fd[0], EV_READ | EV_PERSIST,
                           wake_cb, r);
    r->tick_ev = event_new(r->base, -1, EV_PERSIST, tick_cb, r);
    r->retry_ev = evtimer_new(r->base, retry_cb, r);
    if (r->wake_ev == NULL || r->tick_ev == NULL || r->retry_ev == NULL)
        goto internal;
    event_add(r->wake_ev, NULL);
    event_add(r->tick_ev, &tv);
    if (pthread_create(&r->thread, NULL, loop_main, r) != 0)
        goto internal;
    /* Give the first connection its deadline, so that a hub opened next
     * to a running Redis serves at once; one that is not up by then
     * starts anyway (not ready) and keeps trying. */
    {
        struct timespec until;

        deadline_in(&until, r->timeout_ms);
        pthread_mutex_lock(&r->mu);
        while (!r->up && pthread_cond_timedwait(&r->cv, &r->mu, &until)
                             != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&r->mu);
    }
    *out = r;
    return SH_OK;
internal:
    sh__errbuf(errbuf, errbuf_len, "bus: cannot start the redis loop");
    rc = SH_EINTERNAL;
    goto fail;
nomem_free:
nomem:
    sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    rc = SH_ENOMEM;
fail:
    if (r != NULL) {
        if (r->wake_ev != NULL)
            event_free(r->wake_ev);
        if (r->tick_ev != NULL)
            event_free(r->tick_ev);
        if (r->retry_ev != NULL)
            event_free(r->retry_ev);
        if (r->base != NULL)
            event_base_free(r->base);
        if (r->wake_fd[0] >= 0) {
            close(r->wake_fd[0]);
            close(r->wake_fd[1]);
        }
        free(r->host);
        free(r->password);
        free(r->prefix);
        free(r->stalled);
        free(r);
    }
    return rc;
}

/* Run a script call; on NOEPOCH (the channel has no epoch and the floor
 * was not given) learn the floor and run it again with it.  @build makes
 * the request for a floor ("" first). */
typedef struct req *(*build_fn)(struct rbus *r, const char *channel,
                                const char *floor, void *arg);

static sh_err_t run_script(struct rbus *r, const char *channel,
                           build_fn build, void *arg, struct answer *ans,
                           char *errbuf, size_t errbuf_len)
{
    char floor[24] = "";

    /* Another channel's floor is 0 (no store round trip): send it at
     * once, sparing a new channel the NOEPOCH round trip. */
    if (channel != NULL && !sh__bus_own(r->bus, channel))
        snprintf(floor, sizeof floor, "0");
    for (int attempt = 0; attempt < 2; attempt++) {
        struct req *q = build(r, channel, floor, arg);
        sh_err_t rc;
        uint64_t f = 0;

        if (q == NULL) {
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
            return SH_ENOMEM;
        }
        rc = run(r, &q, 1, ans, errbuf, errbuf_len);
        if (rc != SH_OK)
            return rc;
        if (ans->type != REDIS_REPLY_ARRAY || ans->n < 1 ||
            ans->el[0] == NULL || strcmp(ans->el[0], "NOEPOCH") != 0)
            return SH_OK;
        answer_clear(ans);
        rc = r->floor(r->bus, channel, &f);
        if (rc != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "bus: cannot learn the offset "
                       "floor of %s (%s)", channel, sh_err_name(rc));
            return rc;
        }
        snprintf(floor, sizeof floor, "%llu", (unsigned long long)f);
    }
    sh__errbuf(errbuf, errbuf_len, "bus: redis made no epoch for %s",
               channel);
    return SH_EBUS;
}

/* Epoch and offset from {epoch, offset}. */
static sh_err_t take_pos(const struct answer *a, char *epoch,
                         uint64_t *offset, char *errbuf, size_t errbuf_len)
{
    if (a->type != REDIS_REPLY_ARRAY || a->n < 2 || a->el[0] == NULL ||
        a->el[1] == NULL || a->ellen[0] >= SH_EPOCH_SIZE) {
        sh__errbuf(errbuf, errbuf_len, "bus: unexpected answer from redis");
        return SH_EBUS;
    }
    memcpy(epoch, a->el[0], a->ellen[0] + 1);
    *offset = strtoull(a->el[1], NULL, 10);
    return SH_OK;
}

struct pub_args {
    const char *type, *head, *tail;
    size_t head_len, tail_len;
    int64_t ts;
    bool splice;
    const char *tp;             /* the publisher's traceparent, or "" */
};

static struct req *build_pub(struct rbus *r, const char *channel,
                             const char *floor, void *arg)
{
    const struct pub_args *a = arg;
    struct req *q = script_req(r, channel, "pub", floor);
    char ts[24 + SH__TRACEPARENT_LEN + 1];

    ts_field(ts, sizeof ts, a->ts, a->tp);
    if (q != NULL &&
        !(req_str(q, ts) && req_str(q, a->type) &&
          req_arg(q, a->head, a->head_len) &&
          req_arg(q, a->tail, a->tail_len) &&
          req_str(q, a->splice ? "1" : "0"))) {
        req_free(q);
        return NULL;
    }
    return q;
}

static sh_err_t rb_publish(void *be, const char *channel, const char *type,
                           int64_t ts_ms, const char *head, size_t head_len,
                           const char *tail, size_t tail_len, bool splice,
                           char *epoch, uint64_t *offset, char *errbuf,
                           size_t errbuf_len)
{
    char tp[SH__TRACEPARENT_LEN + 1];
    struct pub_args a = { type, head, tail, head_len, tail_len, ts_ms,
                          splice, tp };
    struct answer ans = { 0 };
    sh_err_t rc;

    sh__trace_current(tp);
    rc = run_script(be, channel, build_pub, &a, &ans, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = take_pos(&ans, epoch, offset, errbuf, errbuf_len);
    answer_clear(&ans);
    return rc;
}

static size_t rb_publish_many(void *be, const char *type,
                              const struct sh__bus_item *items, size_t n,
                              int64_t ts_ms, uint64_t *offsets, char *errbuf,
                              size_t errbuf_len)
{
    struct rbus *r = be;
    struct req *qs[256];
    struct answer ans[256];
    char tp[SH__TRACEPARENT_LEN + 1];
    size_t done = 0;
    sh_err_t rc;

    assert(n <= 256);
    memset(ans, 0, sizeof ans);
    sh__trace_current(tp);
    for (size_t i = 0; i < n; i++) {
        struct pub_args a = { type, items[i].data, "", items[i].len, 0,
                              ts_ms, false, tp };
        bool own = sh__bus_own(r->bus, items[i].channel);

        offsets[i] = 0;
        qs[i] = build_pub(r, items[i].channel, own ? "" : "0", &a);
        if (qs[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                req_free(qs[j]);
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
            return 0;
        }
    }
    rc = run(r, qs, n, ans, errbuf, errbuf_len);
    if (rc != SH_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char epoch[SH_EPOCH_SIZE];

        if (ans[i].n == 1 && ans[i].el[0] != NULL &&
            strcmp(ans[i].el[0], "NOEPOCH") == 0) {
            /* An own channel made anew: its floor first, alone. */
            struct pub_args a = { type, items[i].data, "", items[i].len, 0,
                                  ts_ms, false, tp };
            struct answer one = { 0 };

            if (run_script(r, items[i].channel, build_pub, &a, &one, errbuf,
                           errbuf_len) == SH_OK &&
                take_pos(&one, epoch, &offsets[i], errbuf, errbuf_len)
                    == SH_OK)
                done++;
            answer_clear(&one);
        } else if (take_pos(&ans[i], epoch, &offsets[i], errbuf,
                            errbuf_len) == SH_OK) {
            done++;
        }
        answer_clear(&ans[i]);
    }
    return done;
}

static struct req *build_claim(struct rbus *r, const char *channel,
                               const char *floor, void *arg)
{
    (void)arg;
    return script_req(r, channel, "claim", floor);
}

static sh_err_t rb_claim(void *be, const char *channel, char *epoch,
                         uint64_t *offset, char *errbuf, size_t errbuf_len)
{
    struct answer ans = { 0 };
    sh_err_t rc = run_script(be, channel, build_claim, NULL, &ans, errbuf,
                             errbuf_len);

    if (rc == SH_OK)
        rc = take_pos(&ans, epoch, offset, errbuf, errbuf_len);
    answer_clear(&ans);
    return rc;
}

/* "ts[ traceparent]\ntype\ndata" of @ev into a new string. */
static char *record_of(const struct sh_event *ev, size_t *len)
{
    size_t tl = strlen(ev->type);
    char ts[24 + SH__TRACEPARENT_LEN + 1];
    int n = ts_field(ts, sizeof ts, ev->ts_ms, ev->traceparent);
    char *s = malloc((size_t)n + 1 + tl + 1 + ev->data_len + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, ts, (size_t)n);
    s[n] = '\n';
    memcpy(s + n + 1, ev->type, tl);
    s[n + 1 + tl] = '\n';
    memcpy(s + n + 2 + tl, ev->data_json, ev->data_len);
    *len = (size_t)n + 2 + tl + ev->data_len;
    s[*len] = '\0';
    return s;
}

static void rb_release(void *be, const char *channel, const char *epoch,
                       uint64_t offset, const struct sh_event *ev)
{
    struct rbus *r = be;
    struct req *q = script_req(r, channel, "rel", "");
    char *rec = NULL;
    size_t len = 0;

    if (ev != NULL)
        rec = record_of(ev, &len);
    if (q == NULL || !req_str(q, epoch) || !req_u64(q, offset) ||
        !req_arg(q, rec != NULL ? rec : "", len)) {
        /* Not sent: the claim's deadline turns it into a gap. */
        if (q != NULL)
            req_free(q);
        free(rec);
        return;
    }
    free(rec);
    /* Nobody waits: one connection keeps it ahead of later publishes. */
    if (!submit(r, q, 0))
        req_free(q);
}

static sh_err_t rb_watch(void *be, const char *channel, char *errbuf,
                         size_t errbuf_len)
{
    struct rbus *r = be;
    struct timespec until;
    struct wchan *w;
    unsigned gen;
    sh_err_t rc = SH_OK;

    deadline_in(&until, r->timeout_ms);
    pthread_mutex_lock(&r->mu);
    if (!r->up || r->stopping) {
        pthread_mutex_unlock(&r->mu);
        sh__errbuf(errbuf, errbuf_len, "bus: redis unavailable");
        return SH_EBUS;
    }
    w = wfind(r, channel, true);
    if (w == NULL) {
        pthread_mutex_unlock(&r->mu);
        sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
        return SH_ENOMEM;
    }
    w->want++;
    wdirty(r, w);
    gen = r->gen;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    pthread_mutex_lock(&r->mu);
    while (w->st != W_SUBSCRIBED) {
        if (!r->up || r->gen != gen || r->stopping) {
            rc = SH_EBUS;
            break;
        }
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT &&
            w->st != W_SUBSCRIBED) {
            rc = SH_ETIMEDOUT;
            break;
        }
    }
    if (rc != SH_OK) {
        w->want--;
        wdirty(r, w);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc != SH_OK) {
        wake(r);
        sh__errbuf(errbuf, errbuf_len, "bus: redis %s",
                   rc == SH_EBUS ? "unavailable"
                                 : "did not confirm the subscription");
        return SH_EBUS;
    }
    return SH_OK;
}

static void rb_unwatch(void *be, const char *channel)
{
    struct rbus *r = be;
    struct wchan *w;

    pthread_mutex_lock(&r->mu);
    w = wfind(r, channel, false);
    if (w != NULL && w->want > 0) {
        w->want--;
        if (w->want == 0)
            wdirty(r, w);
    }
    pthread_mutex_unlock(&r->mu);
    if (w != NULL)
        wake(r);
}

struct hist_args {
    const char *op;
    const char *epoch;
    char offset[24];            /* "" for all the history */
};

static struct req *build_hist(struct rbus *r, const char *channel,
                              const char *floor, void *arg)
{
    const struct hist_args *a = arg;
    struct req *q = script_req(r, channel, a->op, floor);

    if (q != NULL && strcmp(a->op, "hist") == 0 &&
        !(req_str(q, a->epoch) && req_str(q, a->offset))) {
        req_free(q);
        return NULL;
    }
    return q;
}

static sh_err_t rb_window(void *be, const char *channel,
                          const sh_position_t *since, bool events,
                          struct sh__bus_window *w, char *errbuf,
                          size_t errbuf_len)
{
    struct hist_args a = { "pos", "", "" };
    struct answer ans = { 0 };
    sh_err_t rc;

    memset(w, 0, sizeof *w);
    if (events && since != NULL && since->epoch[0] != '\0' &&
        memchr(since->epoch, '\0', sizeof since->epoch) != NULL) {
        a.op = "hist";
        a.epoch = since->epoch;
        snprintf(a.offset, sizeof a.offset, "%llu",
                 (unsigned long long)since->offset);
    }
    rc = run_script(be, channel, build_hist, &a, &ans, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    rc = take_pos(&ans, w->current.epoch, &w->current.offset, errbuf,
                  errbuf_len);
    if (rc == SH_OK && ans.n >= 5 && ans.el[4] != NULL &&
        strcmp(ans.el[4], "R") == 0) {
        size_t n = (ans.n - 5) / 2;

        w->recovered = true;
        w->evs = n > 0 ? calloc(n, sizeof *w->evs) : NULL;
        if (n > 0 && w->evs == NULL)
            rc = SH_ENOMEM;
        for (size_t i = 0; rc == SH_OK && i < n; i++) {
            const char *o = ans.el[5 + 2 * i], *rec = ans.el[6 + 2 * i];
            struct sh_event *ev = NULL;

            if (o != NULL && rec != NULL)
                ev = parse_event(channel, w->current.epoch,
                                 strlen(w->current.epoch),
                                 strtoull(o, NULL, 10), rec,
                                 ans.ellen[6 + 2 * i]);
            if (ev == NULL)
                rc = SH_ENOMEM;
            else
                w->evs[w->n++] = ev;
        }
        if (rc != SH_OK)
            sh__errbuf(errbuf, errbuf_len, "bus: out of memory");
    }
    answer_clear(&ans);
    if (rc != SH_OK)
        sh__bus_window_clear(w);
    return rc;
}

static int rb_rewrite(void *be, const char *channel, sh__bus_rewrite_fn fn,
                      void *arg)
{
    struct rbus *r = be;
    struct sh__bus_window w;
    sh_position_t all;
    sh_err_t rc;
    int n = 0;

    /* The epoch first, then all of its history. */
    rc = rb_window(be, channel, NULL, false, &w, NULL, 0);
    if (rc != SH_OK)
        return -(int)rc;
    all = w.current;
    sh__bus_window_clear(&w);
    {
        struct hist_args a = { "hist", all.epoch, "" };
        struct answer ans = { 0 };
        struct req *rw;
        size_t per = 0;

        rc = run_script(r, channel, build_hist, &a, &ans, NULL, 0);
        if (rc != SH_OK)
            return -(int)rc;
        if (ans.n < 5 || ans.el[4] == NULL || strcmp(ans.el[4], "R") != 0) {
            answer_clear(&ans);
            return 0;
        }
        /* One rw call per few entries (MAX_ARGS bounds a request). */
        rw = NULL;
        for (size_t i = 5; i + 1 < ans.n; i += 2) {
            struct sh_event *ev = parse_event(channel, all.epoch,
                                              strlen(all.epoch),
                                              strtoull(ans.el[i], NULL, 10),
                                              ans.el[i + 1], ans.ellen[i + 1]);
            json_object *data;
            struct sh_event *nev;
            char *rec;
            size_t len = 0;

            if (ev == NULL)
                continue;
            data = fn(arg, ev);
            if (data == NULL) {
                sh__event_unref(ev);
                continue;
            }
            nev = sh__event_new(channel, all.epoch, ev->offset, ev->ts_ms,
                                ev->type, data);
            if (nev != NULL)    /* a rewrite keeps the producer's trace */
                memcpy(nev->traceparent, ev->traceparent,
                       sizeof nev->traceparent);
            sh__event_unref(ev);
            rec = nev != NULL ? record_of(nev, &len) : NULL;
            if (rec != NULL) {
                if (rw == NULL) {
                    rw = script_req(r, channel, "rw", "");
                    if (rw != NULL && !req_str(rw, all.epoch)) {
                        req_free(rw);
                        rw = NULL;
                    }
                    per = 0;
                }
                if (rw != NULL && req_u64(rw, nev->offset) &&
                    req_arg(rw, rec, len))
                    per++;
            }
            free(rec);
            sh__event_unref(nev);
            if (rw != NULL && (rw->argc + 2 > MAX_ARGS || i + 3 >= ans.n)) {
                struct answer ra = { 0 };

                if (run(r, &rw, 1, &ra, NULL, 0) == SH_OK &&
                    ra.type == REDIS_REPLY_INTEGER)
                    n += (int)ra.integer;
                answer_clear(&ra);
                rw = NULL;
            }
        }
        if (rw != NULL) {
            struct answer ra = { 0 };

            if (run(r, &rw, 1, &ra, NULL, 0) == SH_OK &&
                ra.type == REDIS_REPLY_INTEGER)
                n += (int)ra.integer;
            answer_clear(&ra);
        }
        (void)per;
        answer_clear(&ans);
    }
    return n;
}

const struct sh__bus_backend sh__bus_redis_backend = {
    .name = "redis",
    .cover_own = true,
    .free = rb_free,
    .publish = rb_publish,
    .publish_many = rb_publish_many,
    .claim = rb_claim,
    .release = rb_release,
    .watch = rb_watch,
    .unwatch = rb_unwatch,
    .window = rb_window,
    .rewrite = rb_rewrite,
};
