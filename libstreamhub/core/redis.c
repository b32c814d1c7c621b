/* libstreamhub/core/redis.c: a bounded pool of blocking hiredis contexts.
 *
 * hiredis 0.14's blocking API with our deadlines: redisConnectWithTimeout
 * bounds the TCP connect, redisSetTimeout (SO_RCVTIMEO/SO_SNDTIMEO) bounds
 * every read and write of a command.  A pool is an array of slots; a slot
 * holds a context or none (never made, or dropped).  The state machine of
 * the pool (see redis_int.h for why):
 *
 *        I/O failure or failed connect (gen++, retry_at = now + backoff)
 *     UP ---------------------------------------------------------> DOWN
 *      ^                                                             |
 *      +---- a connect succeeds (fails = 0) <--- now >= retry_at ----+
 *
 * DOWN means only that a call needing a connection fails at once; the
 * first call after retry_at tries a connect (one at a time), the others
 * keep failing fast until it is done.
 *
 * Invariants (under lock):
 *  1. A slot is busy while one thread uses it; only that thread touches
 *     its context, outside the lock.  Nothing else frees a busy context.
 *  2. An idle slot's context was made in generation slot.gen; one from an
 *     older generation than pool.gen is dropped before use.
 *  3. connecting is true while one thread connects outside the lock; then
 *     no other thread starts a connect while the pool is DOWN.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "core/core_int.h"
#include "core/redis_int.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define ERR_MAX 160

struct slot {
    redisContext *ctx;         /* owned; NULL: none */
    uint64_t gen;              /* pool generation it was made in */
    bool busy;
};

struct sh__redis {
    struct sh__redis_uri uri;
    int connect_timeout_ms, timeout_ms;
    atomic_uint_fast64_t ncmds, nfails;
    pthread_mutex_t lock;
    pthread_cond_t idle;       /* a slot became free */
    /* @locks lock: */
    uint64_t gen;
    int64_t retry_at;          /* sh__mono_ms(); 0: up */
    unsigned fails;            /* consecutive failures, for the backoff */
    bool connecting;
    char last_err[ERR_MAX];
    size_t nslots;
    struct slot slots[];
};

/* ---- URI ------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static long to_long(const char *s, size_t n)
{
    long v = 0;

    for (size_t i = 0; i < n && v < 1000000; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

sh_err_t sh__redis_uri_parse(const char *uri, struct sh__redis_uri *out,
                             char *errbuf, size_t errbuf_len)
{
    const char *p, *at, *host, *hend, *rest;
    size_t n;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (uri == NULL || strncmp(uri, "redis://", 8) != 0) {
        sh__errbuf(errbuf, errbuf_len, "redis: expected a redis:// URI");
        return SH_EINVAL;
    }
    p = uri + 8;
    /* The last '@': a password may hold one. */
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            sh__errbuf(errbuf, errbuf_len,
                       "redis: expected [user]:password@ before the host");
            return SH_EINVAL;
        }
        n = (size_t)(colon - p);
        if (n >= sizeof out->user ||
            (size_t)(at - colon - 1) >= sizeof out->password) {
            sh__errbuf(errbuf, errbuf_len, "redis: user or password too "
                       "long");
            return SH_EINVAL;
        }
        memcpy(out->user, p, n);
        memcpy(out->password, colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    if (*p == '[') {
        host = p + 1;
        hend = strchr(host, ']');
        if (hend == NULL) {
            sh__errbuf(errbuf, errbuf_len, "redis: unclosed [ in the host");
            return SH_EINVAL;
        }
        rest = hend + 1;
    } else {
        host = p;
        hend = host + strcspn(host, ":/");
        rest = hend;
    }
    n = (size_t)(hend - host);
    if (n == 0 || n >= sizeof out->host) {
        sh__errbuf(errbuf, errbuf_len, "redis: missing or too long host");
        return SH_EINVAL;
    }
    memcpy(out->host, host, n);
    if (*rest == ':') {
        const char *port = rest + 1;
        size_t pn = strcspn(port, "/");
        long v = all_digits(port, pn) ? to_long(port, pn) : 0;
        if (v < 1 || v > 65535) {
            sh__errbuf(errbuf, errbuf_len, "redis: bad port");
            return SH_EINVAL;
        }
        out->port = (int)v;
        rest = port + pn;
    }
    if (*rest == '/') {
        size_t dn = strlen(rest + 1);
        long v;
        if (dn > 0) {
            v = all_digits(rest + 1, dn) ? to_long(rest + 1, dn) : -1;
            if (v < 0 || v > 15) {
                sh__errbuf(errbuf, errbuf_len,
                           "redis: the database is a number 0..15");
                return SH_EINVAL;
            }
            out->db = (int)v;
        }
        rest += 1 + dn;
    }
    if (*rest != '\0') {
        sh__errbuf(errbuf, errbuf_len, "redis: unexpected text after the "
                   "host");
        return SH_EINVAL;
    }
    return SH_OK;
}

/* ---- the pool -------------------------------------------------------- */

sh_err_t sh__redis_new(const char *uri, size_t size, int connect_timeout_ms,
                       int timeout_ms, struct sh__redis **out,
                       char *errbuf, size_t errbuf_len)
{
    struct sh__redis *r;
    struct sh__redis_uri u;
    sh_err_t rc;

    *out = NULL;
    if (size == 0 || connect_timeout_ms < 1 || timeout_ms < 1) {
        sh__errbuf(errbuf, errbuf_len, "redis: bad pool size or timeout");
        return SH_EINVAL;
    }
    rc = sh__redis_uri_parse(uri, &u, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    r = calloc(1, sizeof *r + size * sizeof r->slots[0]);
    if (r == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    r->uri = u;
    r->connect_timeout_ms = connect_timeout_ms;
    r->timeout_ms = timeout_ms;
    r->nslots = size;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->idle, NULL);
    *out = r;
    return SH_OK;
}

void sh__redis_free(struct sh__redis *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nslots; i++) {
        if (r->slots[i].ctx != NULL)
            redisFree(r->slots[i].ctx);
    }
    pthread_cond_destroy(&r->idle);
    pthread_mutex_destroy(&r->lock);
    sodium_memzero(r->uri.password, sizeof r->uri.password);
    free(r);
}

static struct timeval tv_of(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    return tv;
}

/* Why @c failed, into @buf. */
static void ctx_err(const redisContext *c, char *buf, size_t len)
{
    if (c == NULL)
        snprintf(buf, len, "out of memory");
    else if (c->err == REDIS_ERR_IO && c->errstr[0] == '\0')
        snprintf(buf, len, "%s", strerror(errno));
    else if (c->err == REDIS_ERR_IO &&
             (errno == EAGAIN || errno == EWOULDBLOCK))
        snprintf(buf, len, "timed out");
    else
        snprintf(buf, len, "%s", c->errstr);
}

/* One setup command on a new context; false with @why filled. */
static bool setup_cmd(redisContext *c, int argc, const char **argv,
                      char *why, size_t len)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;

    if (rep == NULL)
        ctx_err(c, why, len);
    else if (!ok)
        snprintf(why, len, "%s: %s", argv[0], rep->str);
    if (rep != NULL)
        freeReplyObject(rep);
    return ok;
}

/* Connect, AUTH, SELECT, PING.  Outside the lock.  NULL with @why. */
static redisContext *connect_one(const struct sh__redis *r, char *why,
                                 size_t len)
{
    redisContext *c;
    char db[8];

    c = redisConnectWithTimeout(r->uri.host, r->uri.port,
                                tv_of(r->connect_timeout_ms));
    if (c == NULL || c->err != 0) {
        ctx_err(c, why, len);
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv_of(r->timeout_ms)) != REDIS_OK) {
        ctx_err(c, why, len);
        redisFree(c);
        return NULL;
    }
    if (r->uri.password[0] != '\0') {
        const char *a3[] = { "AUTH", r->uri.user, r->uri.password };
        const char *a2[] = { "AUTH", r->uri.password };
        bool ok = r->uri.user[0] != '\0' ? setup_cmd(c, 3, a3, why, len)
                                         : setup_cmd(c, 2, a2, why, len);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    snprintf(db, sizeof db, "%d", r->uri.db);
    if (r->uri.db != 0 &&
        !setup_cmd(c, 2, (const char *[]){ "SELECT", db }, why, len)) {
        redisFree(c);
        return NULL;
    }
    /* A frozen server (SIGSTOP) still accepts TCP connections from its
     * backlog: only an answer proves it is alive. */
    if (!setup_cmd(c, 1, (const char *[]){ "PING" }, why, len)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Go DOWN after a failure described by @why.  @locks r->lock */
static void mark_down(struct sh__redis *r, const char *why)
{
    int64_t backoff = BACKOFF_MIN_MS;

    for (unsigned i = 0; i < r->fails && backoff < BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > BACKOFF_MAX_MS)
        backoff = BACKOFF_MAX_MS;
    r->fails++;
    r->gen++;
    r->retry_at = sh__mono_ms() + backoff;
    snprintf(r->last_err, sizeof r->last_err, "%s", why);
    atomic_fetch_add(&r->nfails, 1);
}

static void down_msg(const struct sh__redis *r, char *errbuf,
                     size_t errbuf_len)
{
    sh__errbuf(errbuf, errbuf_len, "redis %s:%d unavailable: %s",
               r->uri.host, r->uri.port, r->last_err);
}

/* Take a slot with a live context.  Returns its index, or -1 with
 * @errbuf filled (SH_EBUS: down, or no slot freed within the command
 * timeout). */
static long acquire(struct sh__redis *r, char *errbuf, size_t errbuf_len)
{
    struct timespec deadline;
    long pick = -1, empty = -1;
    bool up;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += r->timeout_ms / 1000;
    deadline.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    for (;;) {
        empty = -1;
        up = r->retry_at == 0 || sh__mono_ms() >= r->retry_at;
        for (size_t i = 0; i < r->nslots; i++) {
            struct slot *s = &r->slots[i];
            if (s->busy)
                continue;
            if (s->ctx != NULL && s->gen != r->gen) {
                redisFree(s->ctx);       /* invariant 2 */
                s->ctx = NULL;
            }
            if (s->ctx != NULL && r->retry_at == 0) {
                pick = (long)i;
                break;
            }
            if (empty < 0)
                empty = (long)i;
        }
        if (pick >= 0) {
            r->slots[pick].busy = true;
            pthread_mutex_unlock(&r->lock);
            return pick;
        }
        if (!up || (r->connecting && r->retry_at != 0)) {
            down_msg(r, errbuf, errbuf_len);
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        if (empty >= 0)
            break;
        if (pthread_cond_timedwait(&r->idle, &r->lock, &deadline) ==
            ETIMEDOUT) {
            pthread_mutex_unlock(&r->lock);
            sh__errbuf(errbuf, errbuf_len, "redis %s:%d: every pooled "
                       "connection stayed busy", r->uri.host, r->uri.port);
            return -1;
        }
    }
    /* Connect into the empty slot, outside the lock (invariant 3). */
    {
        struct slot *s = &r->slots[empty];
        char why[ERR_MAX];
        redisContext *c;

        s->busy = true;
        r->connecting = true;
        pthread_mutex_unlock(&r->lock);
        c = connect_one(r, why, sizeof why);
        pthread_mutex_lock(&r->lock);
        r->connecting = false;
        if (c == NULL) {
            s->busy = false;
            mark_down(r, why);
            down_msg(r, errbuf, errbuf_len);
            pthread_cond_broadcast(&r->idle);
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        /* A failure elsewhere while we connected moved gen: ours is
         * newer than that failure, so it counts as current. */
        s->ctx = c;
        s->gen = r->gen;
        r->retry_at = 0;
        r->fails = 0;
        pthread_mutex_unlock(&r->lock);
        return empty;
    }
}

/* Give slot @i back; @failed with @why: drop it and go DOWN. */
static void release(struct sh__redis *r, long i, bool failed,
                    const char *why)
{
    struct slot *s = &r->slots[i];

    pthread_mutex_lock(&r->lock);
    if (failed) {
        redisFree(s->ctx);
        s->ctx = NULL;
        mark_down(r, why);
    }
    s->busy = false;
    pthread_cond_signal(&r->idle);
    pthread_mutex_unlock(&r->lock);
}

/* Run argv on slot @i's context.  On an I/O failure the slot is marked
 * for release as failed (*@io). */
static redisReply *run(struct sh__redis *r, long i, int argc,
                       const char **argv, const size_t *lens, bool *io,
                       char *why, size_t len)
{
    redisContext *c = r->slots[i].ctx;
    redisReply *rep;

    atomic_fetch_add(&r->ncmds, 1);
    rep = redisCommandArgv(c, argc, argv, lens);
    if (rep == NULL) {
        ctx_err(c, why, len);
        *io = true;
    }
    return rep;
}

/* Turn @rep into the call's result.  Takes @rep. */
static sh_err_t finish(struct sh__redis *r, redisReply *rep,
                       redisReply **out, char *errbuf, size_t errbuf_len)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        sh__errbuf(errbuf, errbuf_len, "redis %s:%d: %s", r->uri.host,
                   r->uri.port, rep->str);
        freeReplyObject(rep);
        return SH_EBUS;
    }
    if (out != NULL)
        *out = rep;
    else
        freeReplyObject(rep);
    return SH_OK;
}

sh_err_t sh__redis_cmd(struct sh__redis *r, int argc, const char **argv,
                       const size_t *lens, redisReply **out,
                       char *errbuf, size_t errbuf_len)
{
    char why[ERR_MAX];
    redisReply *rep;
    bool io = false;
    long i;

    if (out != NULL)
        *out = NULL;
    if (r == NULL || argc < 1 || argv == NULL) {
        sh__errbuf(errbuf, errbuf_len, "redis: bad command");
        return SH_EINVAL;
    }
    i = acquire(r, errbuf, errbuf_len);
    if (i < 0)
        return SH_EBUS;
    rep = run(r, i, argc, argv, lens, &io, why, sizeof why);
    release(r, i, io, why);
    if (rep == NULL) {
        sh__errbuf(errbuf, errbuf_len, "redis %s:%d: %s", r->uri.host,
                   r->uri.port, why);
        return SH_EBUS;
    }
    return finish(r, rep, out, errbuf, errbuf_len);
}

void sh__redis_script_sha(const struct sh__redis_script *s, char sha[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";

    sha[0] = '\0';
    /* Per call, into the caller's buffer: about a microsecond beside a
     * round trip, and no state shared between threads. */
    if (EVP_Digest(s->src, strlen(s->src), md, &mdlen, EVP_sha1(), NULL) !=
        1 || mdlen != 20)
        return;
    for (unsigned i = 0; i < 20; i++) {
        sha[2 * i] = hex[md[i] >> 4];
        sha[2 * i + 1] = hex[md[i] & 15];
    }
    sha[40] = '\0';
}

#define EVAL_ARGS_MAX 64

sh_err_t sh__redis_eval(struct sh__redis *r,
                        const struct sh__redis_script *s,
                        int nkeys, int nargs, const char **argv,
                        const size_t *lens, redisReply **out,
                        char *errbuf, size_t errbuf_len)
{
    const char *av[EVAL_ARGS_MAX + 3];
    size_t al[EVAL_ARGS_MAX + 3];
    char nk[16], why[ERR_MAX], sha[41];
    redisReply *rep;
    bool io = false;
    long i;

    if (out != NULL)
        *out = NULL;
    if (r == NULL || s == NULL || nkeys < 0 || nargs < nkeys ||
        nargs > EVAL_ARGS_MAX) {
        sh__errbuf(errbuf, errbuf_len, "redis: bad script call");
        return SH_EINVAL;
    }
    sh__redis_script_sha(s, sha);
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[1] = sha;
    al[1] = strlen(sha);
    av[2] = nk;
    al[2] = strlen(nk);
    for (int k = 0; k < nargs; k++) {
        av[3 + k] = argv[k];
        al[3 + k] = lens != NULL ? lens[k] : strlen(argv[k]);
    }
    i = acquire(r, errbuf, errbuf_len);
    if (i < 0)
        return SH_EBUS;
    rep = NULL;
    if (sha[0] != '\0') {
        av[0] = "EVALSHA";
        al[0] = 7;
        rep = run(r, i, nargs + 3, av, al, &io, why, sizeof why);
        if (rep == NULL || rep->type != REDIS_REPLY_ERROR ||
            strncmp(rep->str, "NOSCRIPT", 8) != 0)
            goto done;
        freeReplyObject(rep);
    }
    /* EVAL also caches the script: the next EVALSHA finds it. */
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = s->src;
    al[1] = strlen(s->src);
    rep = run(r, i, nargs + 3, av, al, &io, why, sizeof why);
done:
    release(r, i, io, why);
    if (rep == NULL) {
        sh__errbuf(errbuf, errbuf_len, "redis %s:%d: %s", r->uri.host,
                   r->uri.port, why);
        return SH_EBUS;
    }
    return finish(r, rep, out, errbuf, errbuf_len);
}

bool sh__redis_up(struct sh__redis *r)
{
    bool up;

    if (r == NULL)
        return false;
    pthread_mutex_lock(&r->lock);
    up = r->retry_at == 0 || sh__mono_ms() >= r->retry_at;
    pthread_mutex_unlock(&r->lock);
    return up;
}

uint64_t sh__redis_commands(struct sh__redis *r)
{
    return r != NULL ? atomic_load(&r->ncmds) : 0;
}

uint64_t sh__redis_failures(struct sh__redis *r)
{
    return r != NULL ? atomic_load(&r->nfails) : 0;
}
