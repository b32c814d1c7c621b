/* libstreamhub/store/store.c: the store interface over its backends.
 *
 * The `store` key names the backend: `sqlite:PATH`, `sqlite::memory:`, or
 * a `postgres://`/`postgresql://` URI (postgres.c).  The store keeps a fixed
 * pool of store.pool-size connections opened up front, shared by every
 * thread of the hub (the gateway's workers among them) and handed out by
 * sh__store_acquire() under a mutex and condition variable.  An in-memory SQLite database lives in one
 * connection (separate :memory: connections do not share data), so its pool
 * has exactly one.
 *
 * `store-read` names a second pool of the same kind (store_be.h), opened
 * after the primary and never migrated, for the reads that may lag: see
 * store_int.h for which reads go where.  A read that fails there (and
 * handed no row yet) is run again on the primary, and the read pool is
 * skipped for store-read.retry-ms, so that a replica that is down costs one
 * failed attempt per interval, not one per read.
 *
 * Transactions are plain statements run through the backend's exec, so that
 * they use its statement cache too; SQLite takes the write lock at BEGIN
 * (IMMEDIATE) so that two writers never deadlock upgrading a read lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/otel_int.h"
#include "store/store_be.h"

static const struct sh__sql sql_begin = { "BEGIN", "BEGIN IMMEDIATE", NULL };
static const struct sh__sql sql_commit = { "COMMIT", NULL, NULL };
static const struct sh__sql sql_rollback = { "ROLLBACK", NULL, NULL };

struct sh__val sh__v_text(const char *s)
{
    if (s == NULL)
        return sh__v_null();
    return sh__v_textn(s, strlen(s));
}

bool sh__row_null(const struct sh__row *r, int col)
{
    return r->be->row_null(r, col);
}

int64_t sh__row_int(const struct sh__row *r, int col)
{
    return r->be->row_int(r, col);
}

const char *sh__row_text(const struct sh__row *r, int col, size_t *len)
{
    return r->be->row_text(r, col, len);
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* Parse @uri into @t.  The config table checked its shape already; this
 * checks again because the store is also opened by tests and tools. */
static sh_err_t parse_uri(const char *uri, struct sh__store_target *t,
                          char *errbuf, size_t errbuf_len)
{
    const char *path;

    memset(t, 0, sizeof *t);
    if (uri == NULL || *uri == '\0') {
        sh__errbuf(errbuf, errbuf_len, "store: empty URI");
        return SH_EINVAL;
    }
    if (has_prefix(uri, "postgres://") || has_prefix(uri, "postgresql://")) {
        t->postgres = true;
        t->path = strdup(uri);
        if (t->path == NULL) {
            sh__errbuf(errbuf, errbuf_len, "store: out of memory");
            return SH_ENOMEM;
        }
        return SH_OK;
    }
    if (!has_prefix(uri, "sqlite:")) {
        sh__errbuf(errbuf, errbuf_len, "store: unknown backend in '%.64s' "
                   "(use sqlite:PATH, sqlite::memory: or postgres://)", uri);
        return SH_EINVAL;
    }
    path = uri + strlen("sqlite:");
    if (*path == '\0') {
        sh__errbuf(errbuf, errbuf_len, "store: 'sqlite:' needs a path");
        return SH_EINVAL;
    }
    t->memory = strcmp(path, ":memory:") == 0;
    t->path = strdup(path);
    if (t->path == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        return SH_ENOMEM;
    }
    return SH_OK;
}

static void close_conns(struct sh__store *st)
{
    for (size_t i = 0; i < st->nconns; i++) {
        if (st->conns[i] != NULL)
            st->be->close(st->conns[i]);
    }
    free(st->conns);
    st->conns = NULL;
    st->nconns = 0;
}

/* Open one pool on @uri: the primary, or with @readonly the read pool
 * (no migrations: they are the primary's to run; SQLite opens the file
 * read-only). */
static sh_err_t pool_open(const sh_config_t *conf, const struct sh__log *log,
                          const char *uri, bool readonly,
                          struct sh__store **out, char *errbuf,
                          size_t errbuf_len)
{
    struct sh__store_target t;
    struct sh__store *st = NULL;
    size_t n;
    sh_err_t rc;

    *out = NULL;
    rc = parse_uri(uri, &t, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (readonly && t.memory) {
        /* A second :memory: database would be another, empty one. */
        sh__errbuf(errbuf, errbuf_len, "store-read: sqlite::memory: cannot "
                   "be read by a second pool");
        free(t.path);
        return SH_EINVAL;
    }
    t.readonly = readonly;
    t.busy_timeout_ms = sh__config_int(conf, "store.busy-timeout-ms");
    t.prepared_statements = sh__config_bool(conf,
                                            "store.prepared-statements");
    t.partitions_ahead = sh__config_int(conf,
                                        "store.notifications-months-ahead");
    t.retention_months = sh__config_int(conf,
                                        "store.notifications-retention-months");
    t.statement_timeout_ms = sh__config_int(conf,
                                            "store.statement-timeout-ms");
    t.bulk_timeout_ms = sh__config_int(conf,
                                       "store.bulk-statement-timeout-ms");
    n = t.memory ? 1 : (size_t)sh__config_int(conf, "store.pool-size");
    st = calloc(1, sizeof *st);
    if (st != NULL)
        st->conns = calloc(n, sizeof *st->conns);
    if (st == NULL || st->conns == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: out of memory");
        rc = SH_ENOMEM;
        goto fail;
    }
    st->be = t.postgres ? &sh__pg_backend : &sh__sqlite_backend;
    st->log = log;
    st->nconns = n;
    st->window_ms = sh__config_int(conf, "store-read.write-window-ms");
    st->retry_ms = sh__config_int(conf, "store-read.retry-ms");
    atomic_init(&st->exec_count, 0);
    /* Partitions are the primary's to make: never on the read pool. */
    atomic_init(&st->maintain_at_ms, readonly ? INT_FAST64_MAX : 0);
    atomic_init(&st->down_until, 0);
    for (size_t i = 0; i < SH__STORE_MARKS; i++)
        atomic_init(&st->marks[i], 0);
    atomic_init(&st->pg_down, false);
    atomic_init(&st->pg_probing, false);
    for (size_t i = 0; i < n; i++) {
        rc = st->be->open(st, &t, i == 0 && !readonly, &st->conns[i], errbuf,
                          errbuf_len);
        if (rc != SH_OK)
            goto fail;
        st->conns[i]->st = st;
        st->conns[i]->next = st->free_list;
        st->free_list = st->conns[i];
        st->nfree++;
    }
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        rc = SH_ENOMEM;
        goto fail;
    }
    if (pthread_cond_init(&st->cv, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        rc = SH_ENOMEM;
        goto fail;
    }
    if (log != NULL)
        sh__log_kv(log, SH_LOG_DEBUG, readonly ? "store-read opened"
                   : "store opened", "backend", st->be->name, "path",
                   t.postgres ? "(uri)" : t.path, (char *)NULL);
    free(t.path);
    *out = st;
    return SH_OK;
fail:
    if (st != NULL)
        close_conns(st);
    free(st);
    free(t.path);
    return rc;
}

static void pool_close(struct sh__store *st)
{
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    pthread_cond_broadcast(&st->cv);
    while (st->nfree < st->nconns)
        pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    close_conns(st);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

sh_err_t sh__store_open(const sh_config_t *conf, const struct sh__log *log,
                        struct sh__store **out, char *errbuf,
                        size_t errbuf_len)
{
    struct sh__store *st = NULL, *rd = NULL;
    const char *read_uri;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if (conf == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "store: configuration and out must "
                   "not be NULL");
        return SH_EINVAL;
    }
    rc = pool_open(conf, log, sh__config_str(conf, "store"), false, &st,
                   errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    read_uri = sh__config_str(conf, "store-read");
    if (read_uri != NULL && *read_uri != '\0') {
        /* After the primary: its migrations made the schema the replica
         * (or the same SQLite file) reads. */
        rc = pool_open(conf, log, read_uri, true, &rd, errbuf, errbuf_len);
        if (rc == SH_OK && rd->be != st->be) {
            /* The statements' dialect is the primary's. */
            sh__errbuf(errbuf, errbuf_len, "store-read: a %s store cannot "
                       "read from %s", st->be->name, rd->be->name);
            pool_close(rd);
            rc = SH_EINVAL;
        }
        if (rc != SH_OK) {
            char why[SH_ERRBUF_SIZE];

            /* Opened at start or never: a replica that cannot be reached
             * now is a configuration to fix, not an outage to ride. */
            snprintf(why, sizeof why, "%s", errbuf != NULL ? errbuf : "");
            if (strncmp(why, "store-read", 10) != 0)
                sh__errbuf(errbuf, errbuf_len, "store-read: %s", why);
            pool_close(st);
            return rc;
        }
        rd->primary = st;
        st->replica = rd;
    }
    *out = st;
    return SH_OK;
}

void sh__store_close(struct sh__store *st)
{
    if (st == NULL)
        return;
    pool_close(st->replica);
    pool_close(st);
}

sh_err_t sh__store_acquire(struct sh__store *st, struct sh__conn **out)
{
    struct sh__conn *c;

    *out = NULL;
    pthread_mutex_lock(&st->mu);
    while (st->free_list == NULL && !st->closing)
        pthread_cond_wait(&st->cv, &st->mu);
    if (st->closing) {
        pthread_mutex_unlock(&st->mu);
        return SH_ECANCELED;
    }
    c = st->free_list;
    st->free_list = c->next;
    st->nfree--;
    c->next = NULL;
    pthread_mutex_unlock(&st->mu);
    *out = c;
    return SH_OK;
}

sh_err_t sh__store_acquire_within(struct sh__store *st, int64_t timeout_ms,
                                  struct sh__conn **out)
{
    struct timespec until;
    struct sh__conn *c;
    int w = 0;

    *out = NULL;
    /* The condition variable has the default (realtime) clock; a clock
     * step only lengthens or shortens this one wait. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(timeout_ms / 1000);
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->mu);
    while (st->free_list == NULL && !st->closing && w == 0)
        w = pthread_cond_timedwait(&st->cv, &st->mu, &until);
    if (st->closing || st->free_list == NULL) {
        pthread_mutex_unlock(&st->mu);
        return st->closing ? SH_ECANCELED : SH_ETIMEDOUT;
    }
    c = st->free_list;
    st->free_list = c->next;
    st->nfree--;
    c->next = NULL;
    pthread_mutex_unlock(&st->mu);
    *out = c;
    return SH_OK;
}

void sh__store_release(struct sh__conn *c)
{
    struct sh__store *st;

    if (c == NULL)
        return;
    st = c->st;
    if (c->in_tx)              /* a caller's early return: never leak it */
        sh__store_rollback(c);
    pthread_mutex_lock(&st->mu);
    c->next = st->free_list;
    st->free_list = c;
    st->nfree++;
    /* Broadcast: a closing store waits for the last one too. */
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* The slot of @key in the recent-write marks (FNV-1a). */
static size_t mark_slot(const char *key)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h & (SH__STORE_MARKS - 1);
}

void sh__store_wrote(struct sh__store *st, const char *key)
{
    atomic_int_fast64_t *m;
    int_fast64_t now, old;

    if (st == NULL || st->replica == NULL || key == NULL)
        return;
    m = &st->marks[mark_slot(key)];
    now = sh__mono_ms();
    old = atomic_load(m);
    /* Only forward: a slower writer never shortens another's window. */
    while (old < now && !atomic_compare_exchange_weak(m, &old, now))
        ;
}

bool sh__store_fresh(const struct sh__store *st, const char *key)
{
    if (st == NULL || st->replica == NULL || key == NULL)
        return false;
    return sh__mono_ms() - atomic_load(&st->marks[mark_slot(key)]) <
           st->window_ms;
}

/* Pins of the calling thread (sh__store_pin_primary). */
static _Thread_local unsigned pinned;

void sh__store_pin_primary(bool on)
{
    if (on)
        pinned++;
    else if (pinned > 0)
        pinned--;
}

sh_err_t sh__store_acquire_read(struct sh__store *st, const char *key,
                                struct sh__conn **out)
{
    if (st->replica == NULL || pinned > 0 || sh__store_fresh(st, key) ||
        sh__mono_ms() < atomic_load(&st->down_until))
        return sh__store_acquire(st, out);
    return sh__store_acquire(st->replica, out);
}

bool sh__store_on_replica(const struct sh__conn *c)
{
    return c != NULL && c->st->primary != NULL;
}

/* Rows handed to the caller's callback, so that a statement that failed
 * on the replica after some rows is not run again (they would repeat). */
struct counted {
    sh__row_cb cb;
    void *arg;
    uint64_t rows;
};

static int counted_cb(void *arg, const struct sh__row *row)
{
    struct counted *k = arg;

    k->rows++;
    return k->cb(k->arg, row);
}

/* @c's replica failed a read: skip the replica for store-read.retry-ms
 * (logging once per outage, on the transition) and run the read on the
 * primary instead. */
static sh_err_t replica_fallback(struct sh__conn *c, const struct sh__sql *q,
                                 const struct sh__val *params,
                                 size_t nparams, sh__row_cb cb,
                                 void *cb_arg, const char *why,
                                 char *errbuf, size_t errbuf_len)
{
    struct sh__store *pri = c->st->primary;
    struct sh__conn *pc = NULL;
    int_fast64_t now = sh__mono_ms(), was = atomic_load(&pri->down_until);
    sh_err_t rc;

    if (was <= now &&
        atomic_compare_exchange_strong(&pri->down_until, &was,
                                       now + pri->retry_ms) &&
        pri->log != NULL)
        sh__log_kv(pri->log, SH_LOG_WARN, "store-read failed: reads go to "
                   "the primary for a while", "error", why, (char *)NULL);
    /* The caller holds a replica connection only: no caller holds a
     * primary one while waiting for the read pool, so this cannot
     * deadlock. */
    rc = sh__store_acquire(pri, &pc);
    if (rc != SH_OK)
        return rc;
    atomic_fetch_add_explicit(&pri->exec_count, 1, memory_order_relaxed);
    rc = pri->be->exec(pc, q, params, nparams, cb, cb_arg, NULL, errbuf,
                       errbuf_len);
    sh__store_release(pc);
    return rc;
}

static sh_err_t store_exec(struct sh__conn *c, const struct sh__sql *q,
                           const struct sh__val *params, size_t nparams,
                           sh__row_cb cb, void *cb_arg, int64_t *changes,
                           char *errbuf, size_t errbuf_len);

/* Each statement under a traced request is a span (OpenTelemetry's
 * database conventions); without one this is a test of a pointer. */
sh_err_t sh__store_exec(struct sh__conn *c, const struct sh__sql *q,
                        const struct sh__val *params, size_t nparams,
                        sh__row_cb cb, void *cb_arg, int64_t *changes,
                        char *errbuf, size_t errbuf_len)
{
    struct sh__span sp;
    sh_err_t rc;

    if (sh__trace_cur == NULL)
        return store_exec(c, q, params, nparams, cb, cb_arg, changes,
                          errbuf, errbuf_len);
    sh__span_start(&sp, "store.query", SH__SPAN_CLIENT);
    sh__span_attr_str(&sp, "db.system", strcmp(c->st->be->name, "postgres")
                      == 0 ? "postgresql" : c->st->be->name);
    sh__span_attr_str(&sp, "db.statement", q->text);
    rc = store_exec(c, q, params, nparams, cb, cb_arg, changes, errbuf,
                    errbuf_len);
    if (rc != SH_OK)
        sh__span_fail(&sp);
    sh__span_end(&sp);
    return rc;
}

static sh_err_t store_exec(struct sh__conn *c, const struct sh__sql *q,
                           const struct sh__val *params, size_t nparams,
                           sh__row_cb cb, void *cb_arg, int64_t *changes,
                           char *errbuf, size_t errbuf_len)
{
    struct counted k = { cb, cb_arg, 0 };
    char why[SH_ERRBUF_SIZE] = "";
    sh_err_t rc;

    if (changes != NULL)
        *changes = 0;
    atomic_fetch_add_explicit(&c->st->exec_count, 1, memory_order_relaxed);
    if (c->st->primary == NULL || c->in_tx)
        return c->st->be->exec(c, q, params, nparams, cb, cb_arg, changes,
                               errbuf, errbuf_len);
    /* A replica connection: reads only, answered by the primary when the
     * replica fails (down, restarting, a query cancelled by recovery). */
    rc = c->st->be->exec(c, q, params, nparams, cb != NULL ? counted_cb
                         : NULL, &k, changes, why, sizeof why);
    if (rc != SH_ESTORE || k.rows != 0) {
        if (rc != SH_OK)
            sh__errbuf(errbuf, errbuf_len, "%s", why);
        return rc;
    }
    return replica_fallback(c, q, params, nparams, cb, cb_arg, why, errbuf,
                            errbuf_len);
}

sh_err_t sh__store_exec_bulk(struct sh__conn *c, const struct sh__sql *q,
                             const struct sh__val *params, size_t nparams,
                             sh__row_cb cb, void *cb_arg, int64_t *changes,
                             char *errbuf, size_t errbuf_len)
{
    sh_err_t rc;

    c->bulk = true;
    rc = sh__store_exec(c, q, params, nparams, cb, cb_arg, changes, errbuf,
                        errbuf_len);
    c->bulk = false;
    return rc;
}

sh_err_t sh__store_begin(struct sh__conn *c, char *errbuf, size_t errbuf_len)
{
    sh_err_t rc;

    if (c->in_tx) {
        sh__errbuf(errbuf, errbuf_len, "store: transactions do not nest");
        return SH_EINTERNAL;
    }
    rc = c->st->be->exec(c, &sql_begin, NULL, 0, NULL, NULL, NULL, errbuf,
                         errbuf_len);
    if (rc == SH_OK)
        c->in_tx = true;
    return rc;
}

sh_err_t sh__store_commit(struct sh__conn *c, char *errbuf,
                          size_t errbuf_len)
{
    sh_err_t rc;

    if (!c->in_tx) {
        sh__errbuf(errbuf, errbuf_len, "store: commit outside a "
                   "transaction");
        return SH_EINTERNAL;
    }
    rc = c->st->be->exec(c, &sql_commit, NULL, 0, NULL, NULL, NULL, errbuf,
                         errbuf_len);
    if (rc != SH_OK) {
        sh__store_rollback(c);
        return rc;
    }
    c->in_tx = false;
    return SH_OK;
}

void sh__store_rollback(struct sh__conn *c)
{
    if (!c->in_tx)
        return;
    /* Fails only when no transaction is open (the engine rolled back on
     * its own), which is the state we want anyway. */
    (void)c->st->be->exec(c, &sql_rollback, NULL, 0, NULL, NULL, NULL, NULL,
                          0);
    c->in_tx = false;
}

const char *sh__store_backend(const struct sh__store *st)
{
    return st->be->name;
}

uint64_t sh__store_exec_count(const struct sh__store *st)
{
    uint64_t n = atomic_load_explicit(&st->exec_count, memory_order_relaxed);

    if (st->replica != NULL)
        n += atomic_load_explicit(&st->replica->exec_count,
                                  memory_order_relaxed);
    return n;
}
