/* libstreamhub/store/store_be.h: what store.c shares with its backends
 * (private to the store area).
 *
 * store.c owns the parts every backend has in common: parsing the URI, the
 * connection pool, transactions on top of exec, the statement counter.  A
 * backend supplies a `struct sh__store_backend`: open a connection, run
 * migrations on it, run one statement, read a row, close.  A backend's
 * connection embeds `struct sh__conn` as its first member, so that store.c
 * hands the same pointer back to it.
 */
#ifndef SH_STORE_BE_H
#define SH_STORE_BE_H

#include <pthread.h>
#include <stdatomic.h>

#include "store/store_int.h"

/* One migration compiled into the library by gen_migrations.py.
 * Versions run 1, 2, ... without gaps. */
struct sh__migration {
    int version;
    const char *name;
    const char *sql;       /* one or more statements */
};

extern const struct sh__migration sh__sqlite_migrations[];
extern const size_t sh__sqlite_migrations_count;
extern const struct sh__migration sh__pg_migrations[];
extern const size_t sh__pg_migrations_count;

/* What the store URI named. */
struct sh__store_target {
    char *path;            /* owned: the SQLite file, ":memory:", or the
                              PostgreSQL URI */
    bool memory;
    bool postgres;
    bool readonly;         /* the read pool (store-read): never migrate or
                              write */
    int64_t busy_timeout_ms;
    bool prepared_statements;  /* PostgreSQL: named statements */
    int64_t partitions_ahead;  /* PostgreSQL: notification months ahead */
    int64_t retention_months;  /* PostgreSQL: 0 keeps every month */
    int64_t statement_timeout_ms;  /* PostgreSQL: round trip deadline */
    int64_t bulk_timeout_ms;       /* PostgreSQL: the same, bulk ones */
};

struct sh__store_backend {
    const char *name;
    /* Open one connection; the first one opened also migrates (@first). */
    sh_err_t (*open)(struct sh__store *st, const struct sh__store_target *t,
                     bool first, struct sh__conn **out, char *errbuf,
                     size_t errbuf_len);
    void (*close)(struct sh__conn *c);
    sh_err_t (*exec)(struct sh__conn *c, const struct sh__sql *q,
                     const struct sh__val *params, size_t nparams,
                     sh__row_cb cb, void *cb_arg, int64_t *changes,
                     char *errbuf, size_t errbuf_len);
    bool (*row_null)(const struct sh__row *r, int col);
    int64_t (*row_int)(const struct sh__row *r, int col);
    const char *(*row_text)(const struct sh__row *r, int col, size_t *len);
};

extern const struct sh__store_backend sh__sqlite_backend;
extern const struct sh__store_backend sh__pg_backend;

/* Test hook: statements prepared and cached on @c (a SQLite connection). */
size_t sh__sqlite_cached(const struct sh__conn *c);

/* PostgreSQL: @in with each `?` (or SQLite's `?NNN`) outside literals,
 * quoted identifiers and comments turned into `$n`; *@nparams gets the
 * highest n.  malloc'd (the caller frees it), NULL when out of memory. */
char *sh__pg_placeholders(const char *in, int *nparams);

/* A row as the backend hands it to the callback. */
struct sh__row {
    const struct sh__store_backend *be;
    void *h;               /* the backend's statement */
};

/* The common head of every backend connection.  @locality one thread at a
 * time, between acquire and release. */
struct sh__conn {
    struct sh__store *st;      /* borrowed: the store outlives it */
    struct sh__conn *next;     /* the pool's free list */
    bool in_tx;                /* between begin and commit/rollback */
    bool bulk;                 /* in sh__store_exec_bulk() */
};

/* Slots of the recent-write marks (sh__store_wrote): a power of two. */
#define SH__STORE_MARKS 4096u

/* The pool.  @locks mu guards free_list, nfree, closing.
 *
 * Invariants:
 *  1. Every connection is either on free_list or borrowed by one thread;
 *     nfree counts free_list, 0 <= nfree <= nconns.
 *  2. Once closing is set, acquire fails with SH_ECANCELED; close waits
 *     until nfree == nconns, then closes them all.
 */
struct sh__store {
    const struct sh__store_backend *be;
    const struct sh__log *log;     /* borrowed: the hub's */
    struct sh__conn **conns;       /* owned, nconns of them */
    size_t nconns;
    struct sh__conn *free_list;
    size_t nfree;
    bool closing;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint_fast64_t exec_count;
    /* PostgreSQL: monotonic ms of the next partition maintenance; the
     * caller that swaps it forward runs it. */
    atomic_int_fast64_t maintain_at_ms;
    /* The read pool (store-read) is a second instance of this struct:
     * the primary owns it in @replica (NULL: reads go to the primary) and
     * it points back through @primary (NULL in the primary).  Read-only
     * after open. */
    struct sh__store *replica;
    struct sh__store *primary;
    int64_t window_ms;             /* store-read.write-window-ms */
    int64_t retry_ms;              /* store-read.retry-ms */
    /* Primary only: monotonic ms until which the replica is skipped after
     * a failure (0: up). */
    atomic_int_fast64_t down_until;
    /* Primary only: per slot (a hash of a key), the monotonic ms of the
     * last write marked there.  Lock-free and bounded: two keys sharing a
     * slot only send more reads to the primary. */
    atomic_int_fast64_t marks[SH__STORE_MARKS];
    /* PostgreSQL: the server did not answer the last connect or round
     * trip; while set, one connection at a time (pg_probing) reconnects. */
    atomic_bool pg_down;
    atomic_bool pg_probing;
};

#endif
