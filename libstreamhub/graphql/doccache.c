/* libstreamhub/graphql/doccache.c: parsed and validated documents, kept.
 *
 * Clients send the same few documents again and again (an app's queries,
 * persisted or not, differ only in their variables), so a document that
 * parsed and validated is kept, keyed by the BLAKE2b hash of its text, and
 * the next request with the same text skips the lexer, the parser and
 * validation.  Only valid documents are kept: an invalid one is parsed
 * and validated again each time, so its errors are always the same ones.
 *
 * Sharing.  A kept document is immutable (nothing after validation
 * writes into a document) and shared by the requests that run it: each
 * holds a reference (atomic), and the last one to let go frees it, so an
 * entry evicted while a request runs it lives until that request ends.
 *
 * Bound: graphql.document-cache-size entries (0: no cache), the least
 * recently used one evicted first; each document is at most
 * graphql.max-document-bytes.
 *
 * Metrics: streamhub_graphql_document_cache_total{result=hit|miss} and
 * the gauge streamhub_graphql_document_cache_entries.
 *
 * Threads: any; one mutex guards the table and the recency list, held for
 * a lookup or an insert only (never while parsing).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/metrics_int.h"
#include "graphql/engine_int.h"

#define HASH_BYTES 16

struct sh__gql_cdoc {
    atomic_int refs;                 /* the cache's one + each request's */
    unsigned char hash[HASH_BYTES];
    size_t bucket;
    char *text;                      /* owned: the document's own copy */
    size_t len;
    struct sh__gql_doc *doc;         /* owned, immutable, borrows text */
    struct sh__gql_cdoc *hnext;      /* bucket chain */
    struct sh__gql_cdoc *prev, *next;/* recency: head most recent */
};

struct sh__gql_doccache {
    pthread_mutex_t mu;
    struct sh__gql_cdoc **buckets;
    size_t nbuckets;                 /* a power of two */
    struct sh__gql_cdoc *head, *tail;
    size_t n, cap;
    struct sh__series *hit, *miss, *entries;
};

static void cdoc_free(struct sh__gql_cdoc *e)
{
    sh__gql_doc_free(e->doc);
    free(e->text);
    free(e);
}

void sh__gql_cdoc_release(struct sh__gql_cdoc *e)
{
    if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
        cdoc_free(e);
}

sh_err_t sh__gql_doccache_new(struct sh__metrics *metrics, int64_t cap,
                              struct sh__gql_doccache **out)
{
    struct sh__gql_doccache *dc;
    struct sh__metric *m, *g;

    *out = NULL;
    if (cap <= 0)
        return SH_OK;
    dc = calloc(1, sizeof *dc);
    if (dc == NULL)
        return SH_ENOMEM;
    dc->cap = (size_t)cap;
    dc->nbuckets = 16;
    while (dc->nbuckets < 2 * dc->cap)
        dc->nbuckets *= 2;
    dc->buckets = calloc(dc->nbuckets, sizeof *dc->buckets);
    if (dc->buckets == NULL || pthread_mutex_init(&dc->mu, NULL) != 0) {
        free(dc->buckets);
        free(dc);
        return SH_ENOMEM;
    }
    m = sh__metrics_add(metrics, "streamhub_graphql_document_cache_total",
                        SH__METRIC_COUNTER,
                        "GraphQL documents looked up in the cache of "
                        "parsed and validated documents, by result (hit, "
                        "miss).", "result", NULL, 0);
    g = sh__metrics_add(metrics, "streamhub_graphql_document_cache_entries",
                        SH__METRIC_GAUGE,
                        "Documents in the cache of parsed and validated "
                        "documents (graphql.document-cache-size at most).",
                        "", NULL, 0);
    dc->hit = sh__metric_series(m, "hit");
    dc->miss = sh__metric_series(m, "miss");
    dc->entries = sh__metric_series(g, "");
    *out = dc;
    return SH_OK;
}

void sh__gql_doccache_free(struct sh__gql_doccache *dc)
{
    struct sh__gql_cdoc *e, *next;

    if (dc == NULL)
        return;
    for (e = dc->head; e != NULL; e = next) {
        next = e->next;
        sh__gql_cdoc_release(e);
    }
    pthread_mutex_destroy(&dc->mu);
    free(dc->buckets);
    free(dc);
}

static void hash_text(const char *text, size_t len,
                      unsigned char h[HASH_BYTES])
{
    crypto_generichash(h, HASH_BYTES, (const unsigned char *)text, len,
                       NULL, 0);
}

static size_t bucket_of(const struct sh__gql_doccache *dc,
                        const unsigned char h[HASH_BYTES])
{
    uint64_t v;

    memcpy(&v, h, sizeof v);
    return (size_t)(v & (dc->nbuckets - 1));
}

/* Under mu. */
static void lru_unlink(struct sh__gql_doccache *dc, struct sh__gql_cdoc *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        dc->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        dc->tail = e->prev;
    e->prev = e->next = NULL;
}

/* Under mu. */
static void lru_push(struct sh__gql_doccache *dc, struct sh__gql_cdoc *e)
{
    e->prev = NULL;
    e->next = dc->head;
    if (dc->head != NULL)
        dc->head->prev = e;
    dc->head = e;
    if (dc->tail == NULL)
        dc->tail = e;
}

/* Under mu: the entry for @h and @text, or NULL. */
static struct sh__gql_cdoc *find(struct sh__gql_doccache *dc,
                                 const unsigned char h[HASH_BYTES],
                                 const char *text, size_t len)
{
    for (struct sh__gql_cdoc *e = dc->buckets[bucket_of(dc, h)]; e != NULL;
         e = e->hnext)
        if (e->len == len && memcmp(e->hash, h, HASH_BYTES) == 0 &&
            memcmp(e->text, text, len) == 0)
            return e;
    return NULL;
}

/* Under mu: take @e out of the table and the recency list (the cache's
 * reference is the caller's to drop). */
static void remove_entry(struct sh__gql_doccache *dc, struct sh__gql_cdoc *e)
{
    struct sh__gql_cdoc **pp = &dc->buckets[e->bucket];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    lru_unlink(dc, e);
    dc->n--;
}

struct sh__gql_cdoc *sh__gql_doccache_get(struct sh__gql_doccache *dc,
                                          const char *text, size_t len)
{
    unsigned char h[HASH_BYTES];
    struct sh__gql_cdoc *e;

    if (dc == NULL)
        return NULL;
    hash_text(text, len, h);
    pthread_mutex_lock(&dc->mu);
    e = find(dc, h, text, len);
    if (e != NULL) {
        atomic_fetch_add(&e->refs, 1);
        lru_unlink(dc, e);
        lru_push(dc, e);
    }
    pthread_mutex_unlock(&dc->mu);
    sh__series_add(e != NULL ? dc->hit : dc->miss, 1);
    return e;
}

struct sh__gql_cdoc *sh__gql_doccache_copy(struct sh__gql_doccache *dc,
                                           const char *text, size_t len)
{
    struct sh__gql_cdoc *e;

    if (dc == NULL)
        return NULL;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->text = malloc(len + 1);
    if (e->text == NULL) {
        free(e);
        return NULL;
    }
    if (len > 0)
        memcpy(e->text, text, len);
    e->text[len] = '\0';
    e->len = len;
    atomic_init(&e->refs, 1);
    return e;
}

const char *sh__gql_cdoc_text(const struct sh__gql_cdoc *e)
{
    return e->text;
}

const struct sh__gql_doc *sh__gql_cdoc_doc(const struct sh__gql_cdoc *e)
{
    return e->doc;
}

void sh__gql_doccache_put(struct sh__gql_doccache *dc, struct sh__gql_cdoc *e,
                          struct sh__gql_doc *doc)
{
    struct sh__gql_cdoc *old, *victim = NULL;

    e->doc = doc;
    hash_text(e->text, e->len, e->hash);
    e->bucket = bucket_of(dc, e->hash);
    pthread_mutex_lock(&dc->mu);
    old = find(dc, e->hash, e->text, e->len);
    if (old == NULL) {
        /* The cache's own reference, beside the caller's. */
        atomic_fetch_add(&e->refs, 1);
        e->hnext = dc->buckets[e->bucket];
        dc->buckets[e->bucket] = e;
        lru_push(dc, e);
        dc->n++;
        if (dc->n > dc->cap) {
            victim = dc->tail;
            remove_entry(dc, victim);
        }
    }
    sh__series_set(dc->entries, (double)dc->n);
    pthread_mutex_unlock(&dc->mu);
    /* Outside the lock: the victim may be the last reference. */
    sh__gql_cdoc_release(victim);
}
