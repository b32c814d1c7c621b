/* libstreamhub/services/outbox.c: the transactional outbox and its relays.
 *
 * Writers (the services) call sh__outbox_add() inside their transaction:
 * one row per configured sink, so that each sink progresses on its own (a
 * slow webhook never holds the broker's events back).  One relay thread
 * per sink, never a loop thread, repeats:
 *
 *   claim a lane  ->  read its oldest rows  ->  sink->deliver()  ->
 *   delete the confirmed rows, count an attempt on the others, free the
 *   lane (one transaction)
 *
 * Lanes.  A row's lane is a hash of its channel modulo SH__OUTBOX_LANES,
 * so a channel's rows share a lane and are read in seq order.  A relay
 * holds a lane through a lease in outbox_lanes (owner, lease_until): the
 * claim is one UPDATE that takes the least recently relayed lane with
 * rows whose lease has lapsed; on PostgreSQL its inner SELECT locks that
 * row FOR UPDATE SKIP LOCKED, so relays of several nodes claiming at once
 * each get a different lane and never wait on each other.  The lease
 * outlives a delivery (outbox.lease-ms > 2 x outbox.delivery-timeout-ms)
 * and is freed when the batch is settled; a node that dies holding one
 * loses it when it lapses, and another node takes the lane over.  So
 * every row is relayed by one node at a time, each channel in order.
 *
 * Confirmation is per row, but order is per channel: when a row is not
 * confirmed, the later rows of its channel in the batch are kept too
 * (they were delivered, and will be again after it: a repeat, which
 * consumers drop by id, never a reorder of first deliveries).
 *
 * Fairness.  Lanes are taken least recently relayed first, a batch is at
 * most outbox.batch rows, and the relay holds one store connection only
 * for its short statements (never across a delivery): a backlog (the
 * broker was down for an hour) drains batch after batch at the sink's
 * speed while new events on other lanes get their turn between batches,
 * and the services' own store traffic is not starved of connections.
 *
 * Failures.  A sink that cannot deliver (down, refusing) makes its relay
 * back off, doubling from 100 ms to outbox.retry-max-ms; each retry is
 * the sink's reconnect.  A store error does the same.  Rows stay until
 * confirmed: nothing is dropped while the hub runs.  At close the relays
 * are interrupted and joined; what is left is relayed after the next
 * start (by this node or another).
 *
 * Wake-ups: writers kick the relays after their commit
 * (sh__outbox_kick); rows of other nodes are found by polling every
 * outbox.poll-interval-ms.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/otel_int.h"
#include "outbox_int.h"
#include "services_int.h"

/* Lanes per sink: the most relays (nodes) that make progress at once on
 * one sink.  Part of the stored data (rows carry their lane): a change
 * needs every node stopped and the outbox drained. */
#define SH__OUTBOX_LANES 64

struct sink_kind {
    const char *key;              /* the config key that turns it on */
    sh__sink_open_fn open;
};

/* Every kind of sink: a row per kind, its key in config_table.c. */
static const struct sink_kind kinds[] = {
    { "events-amqp", sh__sink_amqp_open },
    { "push-webhook", sh__sink_webhook_open },
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

struct sh__outbox;

/* One sink and its relay thread.  Everything but the metrics' series
 * (atomic inside) and `sink`'s health/interrupt is the thread's own. */
struct relay {
    struct sh__outbox *ob;        /* borrowed: owns this */
    struct sh__sink *sink;        /* owned */
    const char *name;             /* borrowed: sink->ops->name */
    pthread_t thread;
    bool started;
    struct sh__series *m_rows, *m_age, *m_relayed, *m_failures, *m_up;
};

/* @locks mu guards kicks and stopping. */
struct sh__outbox {
    sh_hub_t *hub;                /* borrowed */
    char node[SH__UUID_LEN + 1];  /* this hub's owner id in the leases */
    int64_t batch, poll_ms, lease_ms, timeout_ms, retry_max_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t kicks;               /* raised by every kick */
    bool stopping;
    pthread_t depth_thread;       /* depth_main */
    bool depth_started;
    size_t n;
    struct relay relays[NKINDS];
};

/* ---- statements ---------------------------------------------------------- */

static const struct sh__sql q_add = {
    "INSERT INTO outbox (sink, lane, id, channel, type, payload, "
    "created_ms, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    NULL, NULL
};

static const struct sh__sql q_lane_ensure = {
    "INSERT INTO outbox_lanes (sink, lane) VALUES (?, ?) "
    "ON CONFLICT DO NOTHING",
    NULL, NULL
};

/* ?1 owner, ?2 lease_until, ?3 sink, ?4 now.  The least recently relayed
 * lane with rows whose lease lapsed; on PostgreSQL locked SKIP LOCKED so
 * that concurrent claims from other nodes pass over it instead of waiting,
 * and re-checked (lease_until) against the newest row version. */
static const struct sh__sql q_claim = {
    "UPDATE outbox_lanes SET owner = ?1, lease_until = ?2 "
    "WHERE sink = ?3 AND lease_until < ?4 AND lane = ("
    "SELECT l.lane FROM outbox_lanes l WHERE l.sink = ?3 "
    "AND l.lease_until < ?4 AND EXISTS (SELECT 1 FROM outbox o "
    "WHERE o.sink = l.sink AND o.lane = l.lane) "
    "ORDER BY l.last_ms, l.lane LIMIT 1) RETURNING lane",
    NULL,
    "UPDATE outbox_lanes SET owner = ?1, lease_until = ?2 "
    "WHERE sink = ?3 AND lease_until < ?4 AND lane = ("
    "SELECT l.lane FROM outbox_lanes l WHERE l.sink = ?3 "
    "AND l.lease_until < ?4 AND EXISTS (SELECT 1 FROM outbox o "
    "WHERE o.sink = l.sink AND o.lane = l.lane) "
    "ORDER BY l.last_ms, l.lane LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING lane"
};

static const struct sh__sql q_fetch = {
    "SELECT seq, id, channel, type, payload, created_ms, attempts, "
    "traceparent FROM outbox WHERE sink = ? AND lane = ? "
    "ORDER BY seq LIMIT ?",
    NULL, NULL
};

/* A JSON array of seqs, e.g. [12,13,15]: one statement per batch, and
 * only the rows this relay read (never a range, which could take a row
 * committed late with a lower seq). */
static const struct sh__sql q_delete = {
    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))",
    NULL,
    "DELETE FROM outbox WHERE seq IN "
    "(SELECT CAST(jsonb_array_elements_text(CAST(? AS jsonb)) AS bigint))"
};

static const struct sh__sql q_attempt = {
    "UPDATE outbox SET attempts = attempts + 1 "
    "WHERE seq IN (SELECT value FROM json_each(?))",
    NULL,
    "UPDATE outbox SET attempts = attempts + 1 WHERE seq IN "
    "(SELECT CAST(jsonb_array_elements_text(CAST(? AS jsonb)) AS bigint))"
};

static const struct sh__sql q_release = {
    "UPDATE outbox_lanes SET lease_until = 0, last_ms = ? "
    "WHERE sink = ? AND lane = ? AND owner = ?",
    NULL, NULL
};

static const struct sh__sql q_depth = {
    "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE sink = ?",
    NULL, NULL
};

/* ---- writers ------------------------------------------------------------- */

static unsigned lane_of(const char *channel)
{
    uint32_t h = 2166136261u;      /* FNV-1a: stable across builds */

    for (const unsigned char *p = (const unsigned char *)channel; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % SH__OUTBOX_LANES;
}

bool sh__outbox_on(const sh_hub_t *hub)
{
    return hub != NULL && hub->outbox != NULL && hub->outbox->n > 0;
}

sh_err_t sh__outbox_add(sh_hub_t *hub, struct sh__conn *c,
                        const char *channel, const char *type,
                        const char *payload, size_t len,
                        const char *traceparent, char *id_out,
                        char *errbuf, size_t errbuf_len)
{
    struct sh__outbox *ob = hub->outbox;
    char id[SH__UUID_LEN + 1];
    struct sh__val p[8];
    sh_err_t rc;

    if (id_out != NULL)
        id_out[0] = '\0';
    if (!sh__outbox_on(hub))
        return SH_OK;
    /* A traced request's event: its consumers join the trace. */
    char tp[SH__TRACEPARENT_LEN + 1];
    if (traceparent == NULL) {
        sh__trace_current(tp);
        traceparent = tp[0] != '\0' ? tp : NULL;
    }
    sh__uuid4(id);
    p[1] = sh__v_int(lane_of(channel));
    p[2] = sh__v_text(id);
    p[3] = sh__v_text(channel);
    p[4] = sh__v_text(type);
    p[5] = sh__v_textn(payload, len);
    p[6] = sh__v_int(sh__now_ms());
    p[7] = sh__v_text(traceparent);
    for (size_t i = 0; i < ob->n; i++) {
        p[0] = sh__v_text(ob->relays[i].name);
        rc = sh__store_exec(c, &q_add, p, 8, NULL, NULL, NULL, errbuf,
                            errbuf_len);
        if (rc != SH_OK)
            return rc;
    }
    if (id_out != NULL)
        memcpy(id_out, id, sizeof id);
    return SH_OK;
}

sh_err_t sh__outbox_add_obj(sh_hub_t *hub, struct sh__conn *c,
                            const char *prefix, const char *id,
                            const char *type, json_object *obj,
                            char *errbuf, size_t errbuf_len)
{
    char channel[64];
    const char *text;
    size_t len = 0;

    if (!sh__outbox_on(hub))
        return SH_OK;
    if (snprintf(channel, sizeof channel, "%s%s", prefix, id) >=
        (int)sizeof channel) {
        sh__errbuf(errbuf, errbuf_len, "outbox: channel too long");
        return SH_EINVAL;
    }
    text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    return sh__outbox_add(hub, c, channel, type, text, len, NULL, NULL,
                          errbuf, errbuf_len);
}

void sh__outbox_kick(sh_hub_t *hub)
{
    struct sh__outbox *ob;

    if (!sh__outbox_on(hub))
        return;
    ob = hub->outbox;
    pthread_mutex_lock(&ob->mu);
    ob->kicks++;
    pthread_cond_broadcast(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

sh_err_t sh__outbox_ready(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    char out[512] = "";
    size_t used = 0;
    sh_err_t rc = SH_OK;

    if (!sh__outbox_on(hub))
        return SH_OK;
    for (size_t i = 0; i < hub->outbox->n; i++) {
        struct relay *r = &hub->outbox->relays[i];
        char why[256] = "";

        if (r->sink->ops->health(r->sink, why, sizeof why) == SH_OK)
            continue;
        rc = SH_EIO;
        if (used < sizeof out) {
            int k = snprintf(out + used, sizeof out - used, "%s%s: %s",
                             used > 0 ? "; " : "", r->name, why);
            if (k > 0)
                used += (size_t)k;
        }
    }
    if (rc != SH_OK)
        sh__errbuf(errbuf, errbuf_len, "%s", out);
    return rc;
}

/* ---- the relay ------------------------------------------------------------ */

/* One batch as read from the store: rows point into the owned strings. */
struct batch {
    struct sh__outbox_row *rows;  /* owned, cap of them */
    char **text;                  /* owned, 5 strings per row */
    size_t n, cap;
    bool oom;
};

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n * 5; i++) {
        free(b->text[i]);
        b->text[i] = NULL;
    }
    b->n = 0;
    b->oom = false;
}

static char *dup_col(const struct sh__row *row, int col, size_t *len)
{
    size_t n = 0;
    const char *s = sh__row_text(row, col, &n);
    char *d;

    if (s == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    if (len != NULL)
        *len = n;
    return d;
}

static int fetch_row(void *arg, const struct sh__row *row)
{
    struct batch *b = arg;
    struct sh__outbox_row *r;
    char **t;

    if (b->n >= b->cap)
        return 1;
    r = &b->rows[b->n];
    t = &b->text[b->n * 5];
    t[0] = dup_col(row, 1, NULL);
    t[1] = dup_col(row, 2, NULL);
    t[2] = dup_col(row, 3, NULL);
    t[3] = dup_col(row, 4, &r->payload_len);
    t[4] = dup_col(row, 7, NULL);
    b->n++;
    if (t[0] == NULL || t[1] == NULL || t[2] == NULL || t[3] == NULL ||
        (t[4] == NULL && !sh__row_null(row, 7))) {
        b->oom = true;
        return 1;
    }
    r->seq = sh__row_int(row, 0);
    r->id = t[0];
    r->channel = t[1];
    r->type = t[2];
    r->payload = t[3];
    r->created_ms = sh__row_int(row, 5);
    r->attempts = sh__row_int(row, 6);
    r->traceparent = t[4];
    return 0;
}

static int int_row(void *arg, const struct sh__row *row)
{
    *(int64_t *)arg = sh__row_int(row, 0);
    return 1;
}

struct depth {
    int64_t rows, oldest;
    bool have_oldest;
};

static int depth_row(void *arg, const struct sh__row *row)
{
    struct depth *d = arg;

    d->rows = sh__row_int(row, 0);
    d->have_oldest = !sh__row_null(row, 1);
    d->oldest = d->have_oldest ? sh__row_int(row, 1) : 0;
    return 1;
}

/* Wait up to @ms for a kick or the stop; false once stopping.
 * @kicks: the count seen last (updated). */
static bool relay_wait(struct sh__outbox *ob, uint64_t *kicks, int64_t ms)
{
    struct timespec until;
    bool live;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ob->mu);
    while (!ob->stopping && ob->kicks == *kicks) {
        if (pthread_cond_timedwait(&ob->cv, &ob->mu, &until) == ETIMEDOUT)
            break;
    }
    *kicks = ob->kicks;
    live = !ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    return live;
}

/* Sleep @ms unless stopping (kicks do not cut a backoff short). */
static bool relay_sleep(struct sh__outbox *ob, int64_t ms)
{
    int64_t until = sh__mono_ms() + ms;
    bool live;

    pthread_mutex_lock(&ob->mu);
    while (!ob->stopping) {
        int64_t left = until - sh__mono_ms();
        struct timespec ts;

        if (left <= 0)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ob->cv, &ob->mu, &ts);
    }
    live = !ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    return live;
}

static bool stopping(struct sh__outbox *ob)
{
    bool s;

    pthread_mutex_lock(&ob->mu);
    s = ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    return s;
}

/* Make sure every lane of the relay's sink has its row.  */
static sh_err_t lanes_ensure(struct relay *r, char *err, size_t err_len)
{
    struct sh__conn *c = NULL;
    sh_err_t rc = sh__store_acquire(r->ob->hub->store, &c);

    if (rc != SH_OK)
        return rc;
    rc = sh__store_begin(c, err, err_len);
    for (int i = 0; rc == SH_OK && i < SH__OUTBOX_LANES; i++) {
        struct sh__val p[2] = { sh__v_text(r->name), sh__v_int(i) };

        rc = sh__store_exec(c, &q_lane_ensure, p, 2, NULL, NULL, NULL, err,
                            err_len);
    }
    if (rc == SH_OK)
        rc = sh__store_commit(c, err, err_len);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    return rc;
}

static void refresh_depth(struct relay *r)
{
    struct sh__conn *c = NULL;
    struct depth d = { 0, 0, false };
    struct sh__val p = sh__v_text(r->name);

    if (sh__store_acquire(r->ob->hub->store, &c) != SH_OK)
        return;
    if (sh__store_exec(c, &q_depth, &p, 1, depth_row, &d, NULL, NULL, 0) ==
        SH_OK) {
        int64_t age = d.have_oldest ? sh__now_ms() - d.oldest : 0;

        sh__series_set(r->m_rows, (double)d.rows);
        sh__series_set(r->m_age, age > 0 ? (double)age / 1000.0 : 0.0);
    }
    sh__store_release(c);
}

/* Claim a lane: *@lane gets it, or -1 when none is due. */
static sh_err_t claim(struct relay *r, int64_t *lane, char *err,
                      size_t err_len)
{
    struct sh__outbox *ob = r->ob;
    struct sh__conn *c = NULL;
    int64_t now = sh__now_ms();
    struct sh__val p[4];
    sh_err_t rc;

    *lane = -1;
    if ((rc = sh__store_acquire(ob->hub->store, &c)) != SH_OK)
        return rc;
    p[0] = sh__v_text(ob->node);
    p[1] = sh__v_int(now + ob->lease_ms);
    p[2] = sh__v_text(r->name);
    p[3] = sh__v_int(now);
    rc = sh__store_exec(c, &q_claim, p, 4, int_row, lane, NULL, err,
                        err_len);
    sh__store_release(c);
    return rc;
}

static sh_err_t fetch(struct relay *r, int64_t lane, struct batch *b,
                      char *err, size_t err_len)
{
    struct sh__conn *c = NULL;
    struct sh__val p[3];
    sh_err_t rc;

    batch_clear(b);
    if ((rc = sh__store_acquire(r->ob->hub->store, &c)) != SH_OK)
        return rc;
    p[0] = sh__v_text(r->name);
    p[1] = sh__v_int(lane);
    p[2] = sh__v_int((int64_t)b->cap);
    rc = sh__store_exec(c, &q_fetch, p, 3, fetch_row, b, NULL, err,
                        err_len);
    sh__store_release(c);
    if (rc == SH_OK && b->oom)
        rc = SH_ENOMEM;
    return rc;
}

/* Append @v to the JSON array text in @buf. */
static void seq_append(char *buf, size_t *used, int64_t v)
{
    int k = snprintf(buf + *used, 24, "%s%lld", *used > 1 ? "," : "",
                     (long long)v);

    if (k > 0)
        *used += (size_t)k;
}

/* Settle a delivered batch: delete the confirmed rows, count an attempt
 * on the others, free the lane; one transaction.  @ok is adjusted for
 * per-channel order first (the top of the file says why). */
static sh_err_t settle(struct relay *r, int64_t lane, struct batch *b,
                       bool *ok, bool release, size_t *deleted, char *err,
                       size_t err_len)
{
    struct sh__outbox *ob = r->ob;
    struct sh__conn *c = NULL;
    size_t cap = b->n * 24 + 4, nd = 0, na = 0, ud = 1, ua = 1;
    char *del = malloc(cap), *att = malloc(cap);
    struct sh__val p[4];
    sh_err_t rc = SH_OK;

    *deleted = 0;
    if (del == NULL || att == NULL) {
        free(del);
        free(att);
        return SH_ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (ok[i])
            continue;
        for (size_t j = i + 1; j < b->n; j++)
            if (ok[j] && strcmp(b->rows[j].channel, b->rows[i].channel) == 0)
                ok[j] = false;
    }
    del[0] = att[0] = '[';
    for (size_t i = 0; i < b->n; i++) {
        if (ok[i]) {
            seq_append(del, &ud, b->rows[i].seq);
            nd++;
        } else {
            seq_append(att, &ua, b->rows[i].seq);
            na++;
        }
    }
    del[ud++] = ']';
    del[ud] = '\0';
    att[ua++] = ']';
    att[ua] = '\0';
    if ((rc = sh__store_acquire(ob->hub->store, &c)) != SH_OK)
        goto out;
    rc = sh__store_begin(c, err, err_len);
    if (rc == SH_OK && nd > 0) {
        p[0] = sh__v_text(del);
        rc = sh__store_exec(c, &q_delete, p, 1, NULL, NULL, NULL, err,
                            err_len);
    }
    if (rc == SH_OK && na > 0) {
        p[0] = sh__v_text(att);
        rc = sh__store_exec(c, &q_attempt, p, 1, NULL, NULL, NULL, err,
                            err_len);
    }
    if (rc == SH_OK && release) {
        p[0] = sh__v_int(sh__now_ms());
        p[1] = sh__v_text(r->name);
        p[2] = sh__v_int(lane);
        p[3] = sh__v_text(ob->node);
        rc = sh__store_exec(c, &q_release, p, 4, NULL, NULL, NULL, err,
                            err_len);
    }
    if (rc == SH_OK)
        rc = sh__store_commit(c, err, err_len);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    if (rc == SH_OK)
        *deleted = nd;
out:
    free(del);
    free(att);
    return rc;
}

/* Free a lane without settling anything (nothing delivered). */
static void release_lane(struct relay *r, int64_t lane)
{
    struct sh__conn *c = NULL;
    struct sh__val p[4];

    if (sh__store_acquire(r->ob->hub->store, &c) != SH_OK)
        return;
    p[0] = sh__v_int(sh__now_ms());
    p[1] = sh__v_text(r->name);
    p[2] = sh__v_int(lane);
    p[3] = sh__v_text(r->ob->node);
    (void)sh__store_exec(c, &q_release, p, 4, NULL, NULL, NULL, NULL, 0);
    sh__store_release(c);
}

static int64_t backoff_next(int64_t cur, int64_t max)
{
    cur = cur < 100 ? 100 : cur * 2;
    return cur > max ? max : cur;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct sh__outbox *ob = r->ob;
    const struct sh__log *log = &ob->hub->log;
    struct batch b = { NULL, NULL, 0, (size_t)ob->batch, false };
    bool *ok = NULL;
    uint64_t kicks = 0;
    int64_t backoff = 0;
    bool up = false;
    char err[SH_ERRBUF_SIZE], last_err[SH_ERRBUF_SIZE] = "";

    b.rows = calloc(b.cap, sizeof *b.rows);
    b.text = calloc(b.cap * 5, sizeof *b.text);
    ok = calloc(b.cap, sizeof *ok);
    if (b.rows == NULL || b.text == NULL || ok == NULL) {
        sh__log_kv(log, SH_LOG_ERROR, "outbox relay cannot start",
                   "sink", r->name, "error", "out of memory", (char *)NULL);
        goto out;
    }
    while (lanes_ensure(r, err, sizeof err) != SH_OK) {
        sh__log_kv(log, SH_LOG_WARN, "outbox lanes not ready", "sink",
                   r->name, "error", err, (char *)NULL);
        backoff = backoff_next(backoff, ob->retry_max_ms);
        if (!relay_sleep(ob, backoff))
            goto out;
    }
    backoff = 0;
    while (!stopping(ob)) {
        int64_t lane = -1, deadline;
        size_t deleted = 0;
        sh_err_t rc;

        /* Not known to be up (start, a failure): connect before the
         * events need it, so that a refusal is seen at once. */
        if (!up) {
            rc = r->sink->ops->deliver(r->sink, NULL, 0,
                                       sh__mono_ms() + ob->timeout_ms,
                                       NULL, err, sizeof err);
            if (rc != SH_OK) {
                sh__series_set(r->m_up, 0);
                if (strcmp(err, last_err) != 0) {
                    sh__log_kv(log, SH_LOG_WARN, "outbox sink failed",
                               "sink", r->name, "error", err,
                               (char *)NULL);
                    snprintf(last_err, sizeof last_err, "%s", err);
                }
                backoff = backoff_next(backoff, ob->retry_max_ms);
                relay_sleep(ob, backoff);
                continue;
            }
            up = true;
            backoff = 0;
            sh__series_set(r->m_up, 1);
            if (last_err[0] != '\0') {
                sh__log_kv(log, SH_LOG_INFO, "outbox sink delivering again",
                           "sink", r->name, (char *)NULL);
                last_err[0] = '\0';
            }
        }

        rc = claim(r, &lane, err, sizeof err);
        if (rc != SH_OK) {
            sh__log_kv(log, SH_LOG_WARN, "outbox claim failed", "sink",
                       r->name, "error", err, (char *)NULL);
            backoff = backoff_next(backoff, ob->retry_max_ms);
            relay_sleep(ob, backoff);
            continue;
        }
        if (lane < 0) {
            relay_wait(ob, &kicks, ob->poll_ms);
            continue;
        }
        rc = fetch(r, lane, &b, err, sizeof err);
        if (rc != SH_OK || b.n == 0) {
            release_lane(r, lane);
            continue;
        }
        memset(ok, 0, b.n * sizeof *ok);
        deadline = sh__mono_ms() + ob->timeout_ms;
        rc = r->sink->ops->deliver(r->sink, b.rows, b.n, deadline, ok, err,
                                   sizeof err);
        if (rc != SH_OK) {
            sh__series_add(r->m_failures, 1);
            sh__series_set(r->m_up, 0);
            if (strcmp(err, last_err) != 0) {
                sh__log_kv(log, SH_LOG_WARN, "outbox sink failed", "sink",
                           r->name, "error", err, (char *)NULL);
                snprintf(last_err, sizeof last_err, "%s", err);
            }
            /* Nothing confirmed: count the attempt and free the lane
             * (its rows stay first in it), then wait and reconnect. */
            if (settle(r, lane, &b, ok, true, &deleted, err,
                       sizeof err) != SH_OK)
                release_lane(r, lane);
            up = false;
            backoff = backoff_next(backoff, ob->retry_max_ms);
            relay_sleep(ob, backoff);
            continue;
        }
        /* The settle must not be lost to a store hiccup: retried until
         * it lands or we stop (then the rows repeat after a restart). */
        while ((rc = settle(r, lane, &b, ok, true, &deleted, err,
                            sizeof err)) != SH_OK) {
            sh__log_kv(log, SH_LOG_WARN, "outbox settle failed", "sink",
                       r->name, "error", err, (char *)NULL);
            backoff = backoff_next(backoff, ob->retry_max_ms);
            if (!relay_sleep(ob, backoff))
                break;
        }
        backoff = 0;
        sh__series_add(r->m_relayed, (double)deleted);
        if (deleted < b.n)
            sh__series_add(r->m_failures, 1);
    }
out:
    if (b.text != NULL)
        batch_clear(&b);
    free(b.rows);
    free(b.text);
    free(ok);
    return NULL;
}

/* The depth gauges of every sink, once a second, on a thread of their
 * own: a relay may wait on its sink (a blocked broker) for up to
 * outbox.delivery-timeout-ms, and that is when the backlog matters. */
static void *depth_main(void *arg)
{
    struct sh__outbox *ob = arg;

    do {
        for (size_t i = 0; i < ob->n; i++)
            refresh_depth(&ob->relays[i]);
    } while (relay_sleep(ob, 1000));
    return NULL;
}

/* ---- the area ------------------------------------------------------------ */

static void register_metrics(sh_hub_t *hub, struct relay *r)
{
    struct sh__metric *m;

    m = sh__metrics_add(hub->metrics, "streamhub_outbox_rows",
                        SH__METRIC_GAUGE, "Outbox rows waiting for a sink "
                        "(all nodes).", "sink", NULL, 0);
    r->m_rows = m != NULL ? sh__metric_series(m, r->name) : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_oldest_age_seconds",
                        SH__METRIC_GAUGE, "Age of the oldest outbox row "
                        "waiting for a sink.", "sink", NULL, 0);
    r->m_age = m != NULL ? sh__metric_series(m, r->name) : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_relayed_total",
                        SH__METRIC_COUNTER, "Outbox rows confirmed by a sink "
                        "and deleted by this node.", "sink", NULL, 0);
    r->m_relayed = m != NULL ? sh__metric_series(m, r->name) : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_failures_total",
                        SH__METRIC_COUNTER, "Outbox deliveries that failed "
                        "or left rows unconfirmed.", "sink", NULL, 0);
    r->m_failures = m != NULL ? sh__metric_series(m, r->name) : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_outbox_sink_up",
                        SH__METRIC_GAUGE, "1 while the last delivery to the "
                        "sink succeeded.", "sink", NULL, 0);
    r->m_up = m != NULL ? sh__metric_series(m, r->name) : NULL;
}

static void outbox_free(struct sh__outbox *ob)
{
    if (ob == NULL)
        return;
    pthread_mutex_lock(&ob->mu);
    ob->stopping = true;
    pthread_cond_broadcast(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
    for (size_t i = 0; i < ob->n; i++) {
        struct relay *r = &ob->relays[i];

        if (r->started && r->sink->ops->interrupt != NULL)
            r->sink->ops->interrupt(r->sink);
    }
    if (ob->depth_started)
        pthread_join(ob->depth_thread, NULL);
    for (size_t i = 0; i < ob->n; i++) {
        struct relay *r = &ob->relays[i];

        if (r->started)
            pthread_join(r->thread, NULL);
        r->sink->ops->close(r->sink);
    }
    pthread_cond_destroy(&ob->cv);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}

sh_err_t sh__outbox_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__outbox *ob;
    sh_err_t rc;

    ob = calloc(1, sizeof *ob);
    if (ob == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    ob->hub = hub;
    sh__uuid4(ob->node);
    ob->batch = sh__config_int(hub->conf, "outbox.batch");
    ob->poll_ms = sh__config_int(hub->conf, "outbox.poll-interval-ms");
    ob->lease_ms = sh__config_int(hub->conf, "outbox.lease-ms");
    ob->timeout_ms = sh__config_int(hub->conf, "outbox.delivery-timeout-ms");
    ob->retry_max_ms = sh__config_int(hub->conf, "outbox.retry-max-ms");
    pthread_mutex_init(&ob->mu, NULL);
    pthread_cond_init(&ob->cv, NULL);
    if (ob->lease_ms <= 2 * ob->timeout_ms) {
        sh__errbuf(errbuf, errbuf_len, "outbox.lease-ms: must exceed twice "
                   "outbox.delivery-timeout-ms (a lane must not lapse "
                   "while its batch is delivered)");
        outbox_free(ob);
        return SH_EINVAL;
    }
    for (size_t i = 0; i < NKINDS; i++) {
        const char *v = sh__config_str(hub->conf, kinds[i].key);
        struct sh__sink *s = NULL;

        if (v == NULL || v[0] == '\0')
            continue;
        rc = kinds[i].open(hub, v, &s, errbuf, errbuf_len);
        if (rc != SH_OK) {
            outbox_free(ob);
            return rc;
        }
        ob->relays[ob->n].ob = ob;
        ob->relays[ob->n].sink = s;
        ob->relays[ob->n].name = s->ops->name;
        register_metrics(hub, &ob->relays[ob->n]);
        ob->n++;
    }
    /* Published before the threads start: they read hub->outbox. */
    hub->outbox = ob;
    for (size_t i = 0; i < ob->n; i++) {
        struct relay *r = &ob->relays[i];

        if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
            sh__errbuf(errbuf, errbuf_len, "cannot start the outbox relay");
            hub->outbox = NULL;
            outbox_free(ob);
            return SH_ENOMEM;
        }
        r->started = true;
    }
    if (ob->n > 0) {
        if (pthread_create(&ob->depth_thread, NULL, depth_main, ob) != 0) {
            sh__errbuf(errbuf, errbuf_len, "cannot start the outbox relay");
            hub->outbox = NULL;
            outbox_free(ob);
            return SH_ENOMEM;
        }
        ob->depth_started = true;
    }
    if (ob->n > 0)
        sh__log_kv(&hub->log, SH_LOG_INFO, "outbox relays started",
                   "node", ob->node, (char *)NULL);
    return SH_OK;
}

void sh__outbox_fini(sh_hub_t *hub)
{
    struct sh__outbox *ob = hub->outbox;

    /* Stop first, unpublish after: a writer still running (none should
     * be: the areas above closed) would see a stopped outbox, whose rows
     * stay stored. */
    outbox_free(ob);
    hub->outbox = NULL;
}
