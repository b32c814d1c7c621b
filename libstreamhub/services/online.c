/* libstreamhub/services/online.c: who is online (User.online).
 *
 * A user is online while at least one authenticated real-time connection
 * of theirs is open on a gateway of this hub (native /ws after `auth`,
 * graphql-transport-ws after a connection_init with a token).  The
 * gateway reports each such connection once when it authenticates and
 * once when it closes (sh__online_add()); GraphQL and REST read the count.
 *
 * With a cluster (cluster.c) the same connections are counted in redis
 * too, per node, by sh__online_join() and sh__online_leave() on a worker:
 * User.online is then true when any live node counts one, and the cap of
 * connections per user holds across the nodes.  The local map stays the
 * truth of this node (the fast answer, and what a node that was reaped
 * writes again).
 *
 * Invariants:
 *  1. Every entry has n >= 1: an entry whose count drops to 0 is freed, so
 *     the map holds at most one entry per open authenticated connection.
 *  2. nbuckets is a power of two >= BUCKETS_MIN; nentries <= nbuckets
 *     after each insert (the table doubles).
 *  3. Everything is under lock; no call is made with it held.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hub_int.h"

#define BUCKETS_MIN 64
#define ID_MAX 63               /* bytes of a user id we count */

struct entry {
    struct entry *next;
    uint64_t hash;
    size_t n;                   /* open authenticated connections */
    char id[];                  /* the user id */
};

struct sh__online {
    pthread_mutex_t lock;
    /* @locks lock: */
    struct entry **buckets;
    size_t nbuckets, nentries;
};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603u;   /* FNV-1a, then a finaliser */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

sh_err_t sh__online_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__online *o = calloc(1, sizeof *o);

    if (o != NULL)
        o->buckets = calloc(BUCKETS_MIN, sizeof *o->buckets);
    if (o == NULL || o->buckets == NULL) {
        free(o);
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    o->nbuckets = BUCKETS_MIN;
    pthread_mutex_init(&o->lock, NULL);
    hub->online = o;
    return SH_OK;
}

void sh__online_fini(sh_hub_t *hub)
{
    struct sh__online *o = hub->online;

    if (o == NULL)
        return;
    for (size_t b = 0; b < o->nbuckets; b++) {
        for (struct entry *e = o->buckets[b], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(o->buckets);
    pthread_mutex_destroy(&o->lock);
    free(o);
    hub->online = NULL;
}

/* Double the table; on ENOMEM keep the longer chains.  @locks o->lock */
static void grow(struct sh__online *o)
{
    size_t n = o->nbuckets * 2;
    struct entry **nb = calloc(n, sizeof *nb);

    if (nb == NULL)
        return;
    for (size_t b = 0; b < o->nbuckets; b++) {
        for (struct entry *e = o->buckets[b], *next; e != NULL; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(o->buckets);
    o->buckets = nb;
    o->nbuckets = n;
}

bool sh__online_add(sh_hub_t *hub, const char *user_id, int delta)
{
    struct sh__online *o = hub != NULL ? hub->online : NULL;
    struct entry **pp, *e;
    size_t len;
    uint64_t h;
    bool ok = true;

    if (o == NULL || user_id == NULL || delta == 0)
        return false;
    len = strnlen(user_id, ID_MAX + 1);
    if (len == 0 || len > ID_MAX)
        return false;
    h = hash_id(user_id);
    pthread_mutex_lock(&o->lock);
    for (pp = &o->buckets[h & (o->nbuckets - 1)]; *pp != NULL;
         pp = &(*pp)->next) {
        if ((*pp)->hash == h && strcmp((*pp)->id, user_id) == 0)
            break;
    }
    e = *pp;
    if (delta > 0) {
        if (e == NULL) {
            e = calloc(1, sizeof *e + len + 1);
            if (e == NULL) {
                ok = false;
            } else {
                e->hash = h;
                memcpy(e->id, user_id, len + 1);
                *pp = e;
                if (++o->nentries > o->nbuckets)
                    grow(o);
            }
        }
        if (e != NULL)
            e->n += (size_t)delta;
    } else if (e != NULL) {
        size_t d = (size_t)-(long)delta;
        e->n = e->n > d ? e->n - d : 0;
        if (e->n == 0) {
            *pp = e->next;
            free(e);
            o->nentries--;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return ok;
}

static void leave_remote(sh_hub_t *hub, const char *user_id);

/* Local count of @user_id, 0 when none. */
static size_t local_count(struct sh__online *o, const char *user_id)
{
    struct entry *e;
    uint64_t h = hash_id(user_id);
    size_t n = 0;

    pthread_mutex_lock(&o->lock);
    for (e = o->buckets[h & (o->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == h && strcmp(e->id, user_id) == 0) {
            n = e->n;
            break;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return n;
}

bool sh__online(sh_hub_t *hub, const char *user_id)
{
    struct sh__online *o = hub != NULL ? hub->online : NULL;
    int64_t total = 0;

    if (o == NULL || user_id == NULL || strnlen(user_id, ID_MAX + 1) > ID_MAX)
        return false;
    if (local_count(o, user_id) > 0)
        return true;
    if (hub->cluster == NULL)
        return false;
    /* Redis unreachable: what this node knows (false) is the answer. */
    if (sh__cluster_total(hub, SH__COUNT_CONNS, user_id, &total, NULL, 0) !=
        SH_OK)
        return false;
    return total > 0;
}

sh_err_t sh__online_join(sh_hub_t *hub, const char *user_id, int64_t cap)
{
    char err[SH_ERRBUF_SIZE];
    bool remote = false;
    sh_err_t rc;

    if (hub == NULL || user_id == NULL || user_id[0] == '\0' ||
        strnlen(user_id, ID_MAX + 1) > ID_MAX)
        return SH_EINVAL;
    if (hub->cluster != NULL) {
        rc = sh__cluster_count(hub, SH__COUNT_CONNS, user_id, false, 1, cap,
                               NULL, NULL, err, sizeof err);
        if (rc == SH_ERATELIMITED)
            return rc;
        if (rc == SH_OK) {
            remote = true;
        } else {
            /* Fail open: the local cap (the gateway's) still holds, and
             * the heartbeat writes the counts again once redis answers. */
            sh__log_kv(&hub->log, SH_LOG_WARN, "cluster: a connection "
                       "counted on this node only", "error", err,
                       (char *)NULL);
            sh__cluster_resync_later(hub);
        }
    }
    if (!sh__online_add(hub, user_id, 1)) {
        if (remote)
            leave_remote(hub, user_id);
        return SH_ENOMEM;
    }
    return SH_OK;
}

/* Take one connection of @user_id back in redis (clamped at 0 there: a
 * join that redis missed makes this under-count until the resync). */
static void leave_remote(sh_hub_t *hub, const char *user_id)
{
    if (hub->cluster != NULL &&
        sh__cluster_count(hub, SH__COUNT_CONNS, user_id, false, -1, 0, NULL,
                          NULL, NULL, 0) != SH_OK)
        sh__cluster_resync_later(hub);
}

void sh__online_leave(sh_hub_t *hub, const char *user_id)
{
    if (hub == NULL || user_id == NULL)
        return;
    (void)sh__online_add(hub, user_id, -1);
    leave_remote(hub, user_id);
}

void sh__online_resync(sh_hub_t *hub)
{
    struct sh__online *o = hub != NULL ? hub->online : NULL;
    struct { char id[ID_MAX + 1]; size_t n; } *snap = NULL;
    size_t n = 0;

    if (o == NULL || hub->cluster == NULL)
        return;
    /* Copy under the lock, write without it (redis may be slow). */
    pthread_mutex_lock(&o->lock);
    if (o->nentries > 0)
        snap = calloc(o->nentries, sizeof *snap);
    for (size_t b = 0; snap != NULL && b < o->nbuckets; b++) {
        for (struct entry *e = o->buckets[b]; e != NULL; e = e->next) {
            memcpy(snap[n].id, e->id, strlen(e->id) + 1);
            snap[n++].n = e->n;
        }
    }
    pthread_mutex_unlock(&o->lock);
    for (size_t i = 0; i < n; i++)
        (void)sh__cluster_count(hub, SH__COUNT_CONNS, snap[i].id, true,
                                (int64_t)snap[i].n, 0, NULL, NULL, NULL, 0);
    free(snap);
}
