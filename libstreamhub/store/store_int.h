/* libstreamhub/store/store_int.h: the store interface (private).
 *
 * Services speak portable SQL through this interface and never see sqlite3
 * or libpq.  A statement is a `struct sh__sql`: its text, written once for
 * every backend (`?` placeholders, ON CONFLICT, RETURNING, integers for
 * times), with an optional per-backend override where dialects differ
 * (full-text search, say).  Backends prepare a statement the first time a
 * connection runs it and cache it on that connection, keyed by the address of
 * the `struct sh__sql`, so every statement must have static storage duration.
 *
 * Data conventions of the schema (migrations under store/migrations/):
 *  - ids are UUID text (sh__uuid4());
 *  - times are INTEGER/BIGINT milliseconds since the Unix epoch, UTC;
 *  - booleans are INTEGER 0/1.
 *
 * Threads: a store is thread-safe; a connection is used by one thread at a
 * time, between sh__store_acquire() and sh__store_release().
 */
#ifndef SH_STORE_INT_H
#define SH_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core_int.h"

struct sh__store;
struct sh__conn;

struct sh__sql {
    const char *text;      /* portable text, `?` placeholders */
    const char *sqlite;    /* NULL, or the SQLite-only text */
    const char *pg;        /* NULL, or the PostgreSQL-only text */
};

enum sh__val_type { SH__V_NULL, SH__V_INT, SH__V_TEXT };

struct sh__val {
    enum sh__val_type type;
    int64_t i;
    const char *s;         /* SH__V_TEXT: borrowed for the call */
    size_t n;              /* SH__V_TEXT: bytes */
};

static inline struct sh__val sh__v_int(int64_t i)
{
    struct sh__val v = { SH__V_INT, i, NULL, 0 };
    return v;
}

/* Text, NUL-terminated; NULL binds SQL NULL. */
struct sh__val sh__v_text(const char *s);
/* Text of @n bytes, not terminated. */
static inline struct sh__val sh__v_textn(const char *s, size_t n)
{
    struct sh__val v = { SH__V_TEXT, 0, s, n };
    return v;
}

static inline struct sh__val sh__v_null(void)
{
    struct sh__val v = { SH__V_NULL, 0, NULL, 0 };
    return v;
}

/* One result row, valid only inside the row callback. */
struct sh__row;
bool sh__row_null(const struct sh__row *r, int col);
int64_t sh__row_int(const struct sh__row *r, int col);
/* NULL for SQL NULL; else NUL-terminated, @len (may be NULL) its bytes.
 * Borrowed until the callback returns. */
const char *sh__row_text(const struct sh__row *r, int col, size_t *len);

/* Called once per row; return non-zero to stop early (not an error). */
typedef int (*sh__row_cb)(void *arg, const struct sh__row *row);

/* Open the store named by the `store` key of @conf and apply migrations,
 * then the read pool named by `store-read` when set (not migrated).
 * Errors: SH_EINVAL (bad URI), SH_ESTORE (open, migrate), SH_ENOTSUP
 * (postgres in a build without it), SH_ENOMEM. */
sh_err_t sh__store_open(const sh_config_t *conf, const struct sh__log *log,
                        struct sh__store **out, char *errbuf,
                        size_t errbuf_len);
void sh__store_close(struct sh__store *st);

/* Borrow a connection, waiting for one to be free.  Never fails but with
 * SH_ECANCELED once the store is closing. */
sh_err_t sh__store_acquire(struct sh__store *st, struct sh__conn **out);
/* The same, waiting at most @timeout_ms (> 0): SH_ETIMEDOUT when every
 * connection stayed borrowed that long.  For probes that must answer in
 * bounded time (readiness) while the store's users may be stuck. */
sh_err_t sh__store_acquire_within(struct sh__store *st, int64_t timeout_ms,
                                  struct sh__conn **out);
void sh__store_release(struct sh__conn *c);

/* Reads that may lag: the read pool (`store-read`).
 *
 * With `store-read` set, the store has a second pool on a streaming
 * replica (or, on SQLite, the same file opened read-only), and a read
 * goes there only when it may see the database a little in the past.
 * Which reads go where, and why (docs/CONFIG.md, "store-read", says the
 * same for operators):
 *
 *  - Primary, always: every statement of a call that writes, including
 *    the reads before its write and the rows its answer is built from (a
 *    mutation's payload); the reads a decision to write or to deliver
 *    rests on (credentials and refresh tokens, roles, bans, timeouts,
 *    chat settings and follower checks of the chat rules, the stream
 *    channel of a chat send, moderation state, offsets, readiness);
 *    every read of the GraphQL resolvers of a mutation's selection.
 *  - Primary for store-read.write-window-ms after a write through this
 *    node touched what the read asks for (sh__store_wrote marks the
 *    ids written; sh__store_acquire_read checks them): a user's follow
 *    then that user's following list or the followed user's followers
 *    and counts, a chat send then that stream's history, a profile or
 *    stream edit then that user or stream, a notification marked read
 *    then that user's list and unread count.  So a user sees their own
 *    write at once, as long as the replica's lag is under the window.
 *  - Replica: every other read of a public read call (a user, a stream,
 *    follow lists and counts, notifications, chat history, stats, live
 *    list and search), which may be that replica's lag behind.
 *  - Primary when the replica fails: a read that fails on it is run on
 *    the primary, which then takes every read for store-read.retry-ms.
 *
 * The marks are this node's: behind a load balancer a user's next read
 * may reach another node, which sends it to the replica (lag: usually
 * milliseconds on a streaming replica). */

/* Note that what @key names (an id: user, stream, channel) was written
 * now, so that reads of it stay on the primary for
 * store-read.write-window-ms.  No-op without a read pool or with a NULL
 * @key.  Lock-free, bounded (a fixed table of slots; keys that share one
 * only keep more reads on the primary).  @locality any thread */
void sh__store_wrote(struct sh__store *st, const char *key);
/* Whether @key was marked within the window (then read the primary). */
bool sh__store_fresh(const struct sh__store *st, const char *key);
/* Borrow a connection for a read-only query about @key (NULL: about
 * nothing this node wrote recently): from the read pool, or from the
 * primary when there is none, @key is fresh, or the replica failed in
 * the last store-read.retry-ms.  Run only reads on it, outside any
 * transaction: a failed read is run again on the primary by
 * sh__store_exec.  Errors as sh__store_acquire().  @locality any thread */
sh_err_t sh__store_acquire_read(struct sh__store *st, const char *key,
                                struct sh__conn **out);
/* Pin (@on) or unpin every sh__store_acquire_read of the calling thread
 * to the primary; pins nest (a per-thread count).  @locality the calling
 * thread */
void sh__store_pin_primary(bool on);
/* Whether @c came from the read pool (the cache, tests, logs). */
bool sh__store_on_replica(const struct sh__conn *c);

/* Run @q with @params; call @cb for each row (may be NULL).  @changes (may
 * be NULL) receives the rows changed by an INSERT/UPDATE/DELETE.
 * Errors: SH_ECONFLICT (a UNIQUE/PRIMARY KEY violation), SH_ESTORE (other,
 * @errbuf says which), SH_ENOMEM. */
sh_err_t sh__store_exec(struct sh__conn *c, const struct sh__sql *q,
                        const struct sh__val *params, size_t nparams,
                        sh__row_cb cb, void *cb_arg, int64_t *changes,
                        char *errbuf, size_t errbuf_len);
/* The same for a statement whose work grows with the data (going live's
 * fan-out to every follower): PostgreSQL waits for it up to
 * store.bulk-statement-timeout-ms rather than store.statement-timeout-ms. */
sh_err_t sh__store_exec_bulk(struct sh__conn *c, const struct sh__sql *q,
                             const struct sh__val *params, size_t nparams,
                             sh__row_cb cb, void *cb_arg, int64_t *changes,
                             char *errbuf, size_t errbuf_len);

/* Transactions on one connection (not nested). */
sh_err_t sh__store_begin(struct sh__conn *c, char *errbuf, size_t errbuf_len);
sh_err_t sh__store_commit(struct sh__conn *c, char *errbuf,
                          size_t errbuf_len);
void sh__store_rollback(struct sh__conn *c);

/* "sqlite" or "postgres". */
const char *sh__store_backend(const struct sh__store *st);

/* Test hook: statements run since open (every connection), for the
 * DataLoader test that counts store calls. */
uint64_t sh__store_exec_count(const struct sh__store *st);

#endif
