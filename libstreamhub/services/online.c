/* libstreamhub/services/online.c: who is online (User.online).
 *
 * A user is online while at least one authenticated real-time connection
 * of theirs is open on a gateway of this hub (native /ws after `auth`,
 * graphql-transport-ws after a connection_init with a token).  The
 * gateway reports each such connection once when it authenticates and
 * once when it closes (sh__online_add()); GraphQL and REST read the count.
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

bool sh__online(sh_hub_t *hub, const char *user_id)
{
    struct sh__online *o = hub != NULL ? hub->online : NULL;
    struct entry *e;
    uint64_t h;
    bool found = false;

    if (o == NULL || user_id == NULL || strnlen(user_id, ID_MAX + 1) > ID_MAX)
        return false;
    h = hash_id(user_id);
    pthread_mutex_lock(&o->lock);
    for (e = o->buckets[h & (o->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == h && strcmp(e->id, user_id) == 0) {
            found = e->n > 0;
            break;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return found;
}
