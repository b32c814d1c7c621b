/* libstreamhub/services/writebehind.c: the chat's write-behind queue.
 *
 * sh_chat_send() hands each message's row here; one writer thread stores
 * the rows in batches of `chat.write-behind-batch` per transaction.
 *
 * Two durabilities (`chat.durability`):
 *  - commit (the default): the sender claims the message's offset on the
 *    bus, queues the row with a ticket and waits; the writer stores the
 *    batch, then publishes each claimed event in order, then wakes the
 *    senders.  Acknowledged means stored: kill -9 loses no acknowledged
 *    message.  Publishing after the commit, not before, means that no
 *    subscriber ever sees a message that a crash then loses (it would be
 *    in no history, its offset naming nothing); the price is the commit's
 *    latency, a fraction of a millisecond on SQLite, on the fan-out.
 *    Group commit keeps the throughput: while one batch commits, every
 *    sender that arrives queues, and the next transaction takes them all.
 *  - async: the sender publishes at once and returns; the row is stored
 *    later.  Up to the queue's length of acknowledged messages are lost
 *    on a crash (their offsets are never reused: bus_int.h).
 *
 * Design:
 *  - Bounded: at most `chat.write-behind-queue` rows are queued, in flight
 *    or reserved.  A sender reserves a slot before it publishes (so that a
 *    full queue refuses the message, SH_EBUSY, before anyone saw it) and
 *    fills it after.  Memory never grows with a slow store.
 *  - Ordered sequence numbers: each queued row gets seq = ++enq_seq; the
 *    writer stores rows in queue order and sets done_seq to the last stored.
 *    sh__wb_flush() waits for done_seq >= the enq_seq it saw: that is how
 *    history and redaction see every message acknowledged before them.
 *  - Failures: a store error is logged and the same batch retried with
 *    exponential backoff (50 ms doubling to 5 s); rows are never dropped
 *    while the hub runs.  At shutdown the writer keeps trying for
 *    SH__WB_CLOSE_TRIES attempts and then logs, at error level, how many
 *    rows it could not store (never silently).
 *  - Group commit: the writer wakes at the first row or a full batch and
 *    lets a short batch linger SH__WB_LINGER_MS for company (never while
 *    a flush or a sender waits, or at shutdown), so that a busy chat makes
 *    few large transactions and a sender rarely pays a wake-up system
 *    call.
 *  - Inserts are idempotent (ON CONFLICT DO NOTHING): a batch whose commit
 *    succeeded but reported failure is not stored twice.
 *
 * Invariants (under mu):
 *  1. len + inflight + reserved <= cap.
 *  2. ring[(head + i) % cap], i < len, are the queued rows, oldest first;
 *     their seqs are done_seq + inflight + 1 ...
 *  3. done_seq <= enq_seq; done_seq == enq_seq iff len == 0 && inflight == 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include <sodium.h>

#include "chat_int.h"
#include "outbox_int.h"

#define SH__WB_CLOSE_TRIES 20
#define SH__WB_LINGER_MS 2

struct sh__wb {
    sh_hub_t *hub;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;      /* rows queued, or stopping */
    pthread_cond_t cv_done;      /* done_seq moved */
    struct sh__wb_row *ring;     /* owned, cap slots */
    size_t cap, head, len;
    size_t inflight, reserved;
    size_t batch;
    uint64_t enq_seq, done_seq;
    bool stopping;
    bool exited;                 /* the writer is gone: nothing more stored */
    bool writer_idle;            /* the writer waits on cv_work */
    /* With the outbox on, a channel's sends hold one of these from their
     * offset to their queueing (sh__wb_order), so that the queue, hence
     * the outbox, has each channel in offset order.  Taken before mu. */
    pthread_mutex_t order[SH__WB_ORDER_STRIPES];
    unsigned flushers;           /* threads waiting in sh__wb_flush */
    unsigned waiters;            /* senders waiting on a ticket */
    pthread_t thread;
};

static const struct sh__sql q_insert = {
    "INSERT INTO chat_messages (id, stream_id, channel_id, author_id, text, "
    "\"offset\", created_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING",
    NULL, NULL
};

static void row_clear(struct sh__wb_row *r)
{
    free(r->text);
    r->text = NULL;
    free(r->event);
    r->event = NULL;
    free(r->traceparent);
    r->traceparent = NULL;
    if (r->mention_msg != NULL)
        json_object_put(r->mention_msg);
    r->mention_msg = NULL;
}

static sh_err_t store_batch(struct sh__wb *wb, struct sh__wb_row *rows,
                            size_t n, char *errbuf, size_t errbuf_len)
{
    struct sh__conn *c = NULL;
    sh_err_t rc;
    size_t i;

    rc = sh__store_acquire(wb->hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "cannot get a store connection");
        return rc;
    }
    rc = sh__store_begin(c, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    for (i = 0; i < n; i++) {
        struct sh__wb_row *r = &rows[i];
        struct sh__val p[8];

        p[0] = sh__v_text(r->id);
        p[1] = sh__v_text(r->stream_id);
        p[2] = sh__v_text(r->channel_id);
        p[3] = sh__v_text(r->author_id);
        p[4] = r->deleted ? sh__v_textn("", 0)
                          : sh__v_textn(r->text, r->text_len);
        p[5] = sh__v_int(r->offset);
        p[6] = sh__v_int(r->created_ms);
        p[7] = sh__v_int(r->deleted ? 1 : 0);
        rc = sh__store_exec(c, &q_insert, p, 8, NULL, NULL, NULL, errbuf,
                            errbuf_len);
        /* The event in the same transaction (a redacted one: never). */
        if (rc == SH_OK && r->event != NULL && !r->deleted) {
            char chan[8 + SH__ID_SIZE];

            snprintf(chan, sizeof chan, "chat:%s", r->stream_id);
            rc = sh__outbox_add(wb->hub, c, chan, "chat.message", r->event,
                                r->event_len, r->traceparent, NULL,
                                errbuf, errbuf_len);
        }
        if (rc != SH_OK) {
            sh__store_rollback(c);
            goto out;
        }
    }
    rc = sh__store_commit(c, errbuf, errbuf_len);
    if (rc != SH_OK)
        sh__store_rollback(c);
    else
        sh__outbox_kick(wb->hub);
out:
    sh__store_release(c);
    return rc;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Should the writer wait for more rows before a batch?  @locks mu */
static bool linger(const struct sh__wb *wb, size_t room)
{
    return wb->len < room && !wb->stopping && wb->flushers == 0 &&
           (wb->waiters == 0 || wb->reserved > 0);
}

static void *writer_main(void *arg)
{
    struct sh__wb *wb = arg;
    struct sh__wb_row one;
    struct sh__wb_row *rows;
    size_t room;
    char err[SH_ERRBUF_SIZE];

    /* Out of memory at start: store one row at a time, never stop. */
    rows = calloc(wb->batch, sizeof *rows);
    room = wb->batch;
    if (rows == NULL) {
        rows = &one;
        room = 1;
    }
    pthread_mutex_lock(&wb->mu);
    for (;;) {
        size_t n, i;
        int64_t backoff = 50;
        int tries = 0;
        sh_err_t rc;

        while (wb->len == 0 && !wb->stopping) {
            wb->writer_idle = true;
            pthread_cond_wait(&wb->cv_work, &wb->mu);
            wb->writer_idle = false;
        }
        if (wb->len == 0)
            break;                          /* stopping, all stored */
        /* Group commit: a short batch waits up to SH__WB_LINGER_MS for
         * company, unless someone waits for the flush or we stop.  Fewer,
         * larger transactions keep the writer ahead of a busy chat.  When
         * senders wait for their rows (commit) it waits only for senders
         * already on their way (a slot reserved, the row not yet pushed):
         * it never delays a lone sender, and never commits one row while
         * others are a few microseconds behind it. */
        if (linger(wb, room)) {
            struct timespec until;

            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += SH__WB_LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            wb->writer_idle = true;
            while (linger(wb, room) &&
                   pthread_cond_timedwait(&wb->cv_work, &wb->mu, &until)
                       == 0)
                ;
            wb->writer_idle = false;
        }
        n = wb->len < room ? wb->len : room;
        for (i = 0; i < n; i++) {
            struct sh__wb_row *slot = &wb->ring[(wb->head + i) % wb->cap];

            rows[i] = *slot;
            memset(slot, 0, sizeof *slot);
        }
        wb->head = (wb->head + n) % wb->cap;
        wb->len -= n;
        wb->inflight = n;
        pthread_mutex_unlock(&wb->mu);

        for (;;) {
            bool stop;
            int64_t t0 = sh__mono_ms();

            rc = store_batch(wb, rows, n, err, sizeof err);
            if (rc == SH_OK) {
                if (wb->hub->chat->m_batch_seconds != NULL)
                    sh__series_observe(wb->hub->chat->m_batch_seconds,
                                       (double)(sh__mono_ms() - t0) / 1e3);
                break;
            }
            if (wb->hub->chat->m_store_errors != NULL)
                sh__series_add(wb->hub->chat->m_store_errors, 1);
            tries++;
            sh__log_kv(&wb->hub->log, SH_LOG_ERROR,
                       "chat write-behind batch failed; retrying",
                       "error", err, (char *)NULL);
            pthread_mutex_lock(&wb->mu);
            stop = wb->stopping;
            pthread_mutex_unlock(&wb->mu);
            if (stop && tries >= SH__WB_CLOSE_TRIES)
                break;
            sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        /* Commit, then publish (see the top of the file), in queue order,
         * which is each channel's claim order.  A row redacted while
         * queued was never seen: its offset stays unused rather than
         * carry the removed text.  A row that could not be stored is
         * never published: its sender gets an error. */
        for (i = 0; i < n; i++)
            sh__bus_release(wb->hub->bus, &rows[i].claim,
                            rc == SH_OK && !rows[i].deleted);
        if (rc == SH_OK) {
            for (i = 0; i < n; i++) {
                struct sh__wb_row *r = &rows[i];

                if (r->mention_msg != NULL && !r->deleted)
                    (void)sh__notify_mentions(wb->hub, r->stream_id,
                                              r->author_id, r->text,
                                              r->text_len, r->mention_msg);
            }
        } else {
            char count[32];

            snprintf(count, sizeof count, "%zu", n);
            sh__log_kv(&wb->hub->log, SH_LOG_ERROR,
                       "chat messages could not be stored at shutdown",
                       "rows", count, "error", err, (char *)NULL);
        }
        for (i = 0; i < n; i++)
            row_clear(&rows[i]);
        pthread_mutex_lock(&wb->mu);
        for (i = 0; i < n; i++) {
            if (rows[i].ticket != NULL) {
                /* Wake exactly this sender: a broadcast would wake every
                 * waiter of the later batches too. */
                rows[i].ticket->rc = rc == SH_OK ? SH_OK : SH_ESTORE;
                rows[i].ticket->done = true;
                pthread_cond_signal(&rows[i].ticket->cv);
                rows[i].ticket = NULL;
            }
        }
        wb->inflight = 0;
        wb->done_seq += n;
        pthread_cond_broadcast(&wb->cv_done);
    }
    wb->exited = true;
    pthread_mutex_unlock(&wb->mu);
    if (rows != &one)
        free(rows);
    return NULL;
}

sh_err_t sh__wb_start(sh_hub_t *hub, struct sh__wb **out, char *errbuf,
                      size_t errbuf_len)
{
    struct sh__wb *wb;

    *out = NULL;
    wb = calloc(1, sizeof *wb);
    if (wb == NULL)
        goto nomem;
    wb->hub = hub;
    wb->cap = (size_t)sh__config_int(hub->conf, "chat.write-behind-queue");
    wb->batch = (size_t)sh__config_int(hub->conf, "chat.write-behind-batch");
    wb->ring = calloc(wb->cap, sizeof *wb->ring);
    if (wb->ring == NULL) {
        free(wb);
        goto nomem;
    }
    pthread_mutex_init(&wb->mu, NULL);
    pthread_cond_init(&wb->cv_work, NULL);
    pthread_cond_init(&wb->cv_done, NULL);
    for (size_t i = 0; i < SH__WB_ORDER_STRIPES; i++)
        pthread_mutex_init(&wb->order[i], NULL);
    if (pthread_create(&wb->thread, NULL, writer_main, wb) != 0) {
        for (size_t i = 0; i < SH__WB_ORDER_STRIPES; i++)
            pthread_mutex_destroy(&wb->order[i]);
        pthread_cond_destroy(&wb->cv_done);
        pthread_cond_destroy(&wb->cv_work);
        pthread_mutex_destroy(&wb->mu);
        free(wb->ring);
        free(wb);
        sh__errbuf(errbuf, errbuf_len,
                   "cannot start the chat write-behind thread");
        return SH_EIO;
    }
    *out = wb;
    return SH_OK;
nomem:
    sh__errbuf(errbuf, errbuf_len, "out of memory");
    return SH_ENOMEM;
}

void sh__wb_stop(struct sh__wb *wb)
{
    if (wb == NULL)
        return;
    pthread_mutex_lock(&wb->mu);
    wb->stopping = true;
    pthread_cond_broadcast(&wb->cv_work);
    pthread_mutex_unlock(&wb->mu);
    pthread_join(wb->thread, NULL);
    /* The writer left with len == 0: nothing to free in the ring. */
    for (size_t i = 0; i < SH__WB_ORDER_STRIPES; i++)
        pthread_mutex_destroy(&wb->order[i]);
    pthread_cond_destroy(&wb->cv_done);
    pthread_cond_destroy(&wb->cv_work);
    pthread_mutex_destroy(&wb->mu);
    free(wb->ring);
    free(wb);
}

sh_err_t sh__wb_reserve(struct sh__wb *wb)
{
    sh_err_t rc = SH_OK;

    pthread_mutex_lock(&wb->mu);
    if (wb->stopping)
        rc = SH_ECANCELED;
    else if (wb->len + wb->inflight + wb->reserved >= wb->cap)
        rc = SH_EBUSY;
    else
        wb->reserved++;
    pthread_mutex_unlock(&wb->mu);
    return rc;
}

void sh__wb_unreserve(struct sh__wb *wb)
{
    pthread_mutex_lock(&wb->mu);
    wb->reserved--;
    if (wb->writer_idle && wb->waiters > 0)
        pthread_cond_signal(&wb->cv_work);  /* lingering for this one */
    pthread_mutex_unlock(&wb->mu);
}

pthread_mutex_t *sh__wb_order(struct sh__wb *wb, const char *stream_id)
{
    uint32_t h = 2166136261u;

    if (!sh__outbox_on(wb->hub))
        return NULL;
    for (const unsigned char *p = (const unsigned char *)stream_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &wb->order[h % SH__WB_ORDER_STRIPES];
}

sh_err_t sh__wb_push(struct sh__wb *wb, struct sh__wb_row *row)
{
    return sh__wb_push_ordered(wb, row, NULL);
}

sh_err_t sh__wb_push_ordered(struct sh__wb *wb, struct sh__wb_row *row,
                             pthread_mutex_t *order)
{
    struct sh__wb_ticket *t = row->ticket;
    sh_err_t rc = SH_OK;

    pthread_mutex_lock(&wb->mu);
    wb->reserved--;
    if (order != NULL)
        pthread_mutex_unlock(order);   /* queued in order (or refused) */
    if (wb->exited) {
        /* Pushed after the writer left (a send racing the close): never
         * stored, so refused; with commit it was not published either. */
        pthread_mutex_unlock(&wb->mu);
        sh__bus_release(wb->hub->bus, &row->claim, false);
        row_clear(row);
        memset(row, 0, sizeof *row);
        return SH_ECANCELED;
    }
    wb->ring[(wb->head + wb->len) % wb->cap] = *row;
    wb->len++;
    wb->enq_seq++;
    /* Wake the writer only when it sleeps and has something worth a
     * transaction, or someone waits: a wake-up per message would cost a
     * system call each. */
    if (wb->writer_idle &&
        (wb->len == 1 || wb->len >= wb->batch || t != NULL))
        pthread_cond_signal(&wb->cv_work);
    memset(row, 0, sizeof *row);
    if (t != NULL) {
        wb->waiters++;
        while (!t->done)
            pthread_cond_wait(&t->cv, &wb->mu);
        wb->waiters--;
        rc = t->rc;
    }
    pthread_mutex_unlock(&wb->mu);
    return rc;
}

void sh__wb_flush(struct sh__wb *wb)
{
    uint64_t target;

    pthread_mutex_lock(&wb->mu);
    target = wb->enq_seq;
    if (wb->done_seq < target) {
        wb->flushers++;
        pthread_cond_signal(&wb->cv_work);   /* cut a linger short */
        while (wb->done_seq < target)
            pthread_cond_wait(&wb->cv_done, &wb->mu);
        wb->flushers--;
    }
    pthread_mutex_unlock(&wb->mu);
}

size_t sh__wb_redact(struct sh__wb *wb, const char *message_id,
                     const char *channel_id, const char *author_id,
                     int64_t since_ms)
{
    size_t i, changed = 0;

    pthread_mutex_lock(&wb->mu);
    for (i = 0; i < wb->len; i++) {
        struct sh__wb_row *r = &wb->ring[(wb->head + i) % wb->cap];
        bool hit;

        if (message_id != NULL)
            hit = strcmp(r->id, message_id) == 0;
        else
            hit = strcmp(r->channel_id, channel_id) == 0 &&
                  strcmp(r->author_id, author_id) == 0 &&
                  r->created_ms >= since_ms;
        if (hit && !r->deleted) {
            r->deleted = true;
            if (r->text != NULL)
                sodium_memzero(r->text, r->text_len);
            r->text_len = 0;
            if (r->event != NULL)
                sodium_memzero(r->event, r->event_len);
            changed++;
        }
    }
    pthread_mutex_unlock(&wb->mu);
    return changed;
}

bool sh__wb_find(struct sh__wb *wb, const char *message_id,
                 char stream_id[SH__ID_SIZE], char channel_id[SH__ID_SIZE],
                 int64_t *offset)
{
    bool found = false;
    size_t i;

    pthread_mutex_lock(&wb->mu);
    for (i = 0; i < wb->len && !found; i++) {
        const struct sh__wb_row *r = &wb->ring[(wb->head + i) % wb->cap];

        if (strcmp(r->id, message_id) == 0) {
            memcpy(stream_id, r->stream_id, SH__ID_SIZE);
            memcpy(channel_id, r->channel_id, SH__ID_SIZE);
            *offset = r->offset;
            found = true;
        }
    }
    pthread_mutex_unlock(&wb->mu);
    return found;
}

size_t sh__wb_depth(struct sh__wb *wb)
{
    size_t n;

    if (wb == NULL)
        return 0;
    pthread_mutex_lock(&wb->mu);
    n = wb->len + wb->inflight;
    pthread_mutex_unlock(&wb->mu);
    return n;
}
