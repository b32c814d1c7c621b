/* libstreamhub/services/sink_webhook.c: push webhooks, the outbox sink
 * that stands in for FCM/APNs (push-webhook).
 *
 * Two halves.  deliver() (the outbox relay's thread) takes each event
 * addressed to a user (channel user:<id>); when that user has no open
 * connection anywhere in the cluster (sh__online: this node's count,
 * then redis's sum over live nodes), it stores one delivery in
 * webhook_deliveries and confirms the outbox row: "taken durably", as the
 * sink interface asks.  A stream going live (stream.live) notifies every
 * follower: one set-based INSERT ... SELECT stores a delivery per
 * follower (id "<event id>:<follower id>"), as the go-live's own
 * notification fan-out does, however many followers there are.  Events
 * for users who are online, and other events, are confirmed without a
 * delivery.  Whether a user is online is asked again just before each
 * attempt: a user who came online since sees the notification live and
 * gets no push (its delivery is dropped and counted as skipped).
 *
 * The sender thread POSTs due deliveries through one libcurl multi handle:
 * up to push-webhook.concurrency at once and one per user, each attempt
 * with its own timeout (push-webhook.timeout-ms), so a receiver that is
 * slow for one user never holds up another user's notification.  A row is
 * claimed with a lease (lease_until) before it is sent, so that one node
 * sends it at a time; a node that dies mid-send leaves a lease that
 * lapses, and the row is sent again (receivers drop repeats by
 * StreamHub-Event-Id).  Outcomes:
 *   2xx                       delete the row (delivered)
 *   no answer, 408, 429, 5xx  retry after push-webhook.retry-base-ms
 *                             doubling to push-webhook.retry-max-ms, half
 *                             of it random (jitter), or the Retry-After
 *                             the receiver sent (within the same cap)
 *   other statuses, or the    move the row to webhook_dead (dead letter)
 *   push-webhook.max-attempts-th failure
 * Deliveries live in the store, so they survive a restart.
 *
 * Signing (docs/webhooks.md): StreamHub-Signature: sha256=<hex of
 * HMAC-SHA-256 with push-webhook-secret over event id, then
 * StreamHub-Timestamp, then the body>, as Twitch EventSub does, so a
 * receiver can check the sender and refuse an old timestamp (a replay).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#include "core/otel_int.h"
#include "outbox_int.h"
#include "services_int.h"
#include "store/store_int.h"

#define ID_MAX 63
/* A delivery's id: the event's, or "<event id>:<follower id>". */
#define DELIVERY_ID_MAX (2 * ID_MAX + 1)

/* One attempt in flight.  @locality the sender thread */
struct xfer {
    struct xfer *next;
    CURL *easy;
    struct curl_slist *hdrs;
    char id[DELIVERY_ID_MAX + 1];
    char user[ID_MAX + 1];
    char *body;                /* owned */
    int64_t attempts;          /* before this one */
    struct sh__span span;      /* the client span, in the event's trace */
};

struct wh_sink {
    struct sh__sink base;
    sh_hub_t *hub;
    char *url;
    char *secret;
    size_t secret_len;
    int64_t timeout_ms, base_ms, max_ms, max_attempts;
    size_t conc;
    CURLM *multi;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool kicked;        /* new deliveries stored: scan now */
    struct xfer *xfers;        /* in flight, @locality sender */
    size_t nflight;
    struct sh__series *s_delivered, *s_retried, *s_dead, *s_online,
        *s_pending, *s_flight;
};

static const struct sh__sql q_insert = {
    "INSERT INTO webhook_deliveries (id, user_id, body, created_ms, "
    "next_ms, traceparent) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING", NULL, NULL
};
/* One delivery per follower of the broadcaster of a stream going live:
 * the body's "id" and "userId" are made per follower from the template
 * (make_body with an empty user), whose "id" is the event's. */
static const struct sh__sql q_insert_followers = {
    "INSERT INTO webhook_deliveries (id, user_id, body, created_ms, "
    "next_ms, traceparent) SELECT CAST(? AS TEXT) || ':' || f.follower_id, "
    "f.follower_id, replace(replace(CAST(? AS TEXT), CAST(? AS TEXT), "
    "CAST(? AS TEXT) || ':' || f.follower_id || '\"'), "
    "'\"userId\":\"\"', '\"userId\":\"' || f.follower_id || '\"'), "
    "?, ?, ? FROM follows f WHERE f.followed_id = ? "
    "ON CONFLICT (id) DO NOTHING", NULL, NULL
};
static const struct sh__sql q_due = {
    "SELECT id, user_id, body, attempts, traceparent "
    "FROM webhook_deliveries WHERE next_ms <= ? AND lease_until <= ? "
    "ORDER BY next_ms LIMIT ?", NULL, NULL
};
static const struct sh__sql q_claim = {
    "UPDATE webhook_deliveries SET lease_until = ? "
    "WHERE id = ? AND lease_until <= ?", NULL, NULL
};
static const struct sh__sql q_delete = {
    "DELETE FROM webhook_deliveries WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_retry = {
    "UPDATE webhook_deliveries SET attempts = ?, next_ms = ?, "
    "lease_until = 0, last_status = ? WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_dead = {
    "INSERT INTO webhook_dead (id, user_id, body, created_ms, attempts, "
    "last_status, failed_ms) SELECT id, user_id, body, created_ms, "
    "CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS BIGINT) "
    "FROM webhook_deliveries WHERE id = ? ON CONFLICT (id) DO NOTHING",
    NULL, NULL
};
static const struct sh__sql q_unlease = {
    "UPDATE webhook_deliveries SET lease_until = 0 WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_count = {
    "SELECT count(*) FROM webhook_deliveries", NULL, NULL
};

/* ---- deliver: the relay's side ----------------------------------- */

/* The POST body: {"id","type","userId","createdAt" (ms),"data"}. */
static char *make_body(const struct sh__outbox_row *r, const char *user)
{
    json_object *o = json_object_new_object();
    json_object *data = json_tokener_parse(r->payload);
    char *text;

    json_object_object_add(o, "id", json_object_new_string(r->id));
    json_object_object_add(o, "type", json_object_new_string(r->type));
    json_object_object_add(o, "userId", json_object_new_string(user));
    json_object_object_add(o, "createdAt",
                           json_object_new_int64(r->created_ms));
    json_object_object_add(o, "data", data);
    text = strdup(json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return text;
}

/* Store a delivery for each follower of @r's broadcaster (@r: a
 * stream.live row, its payload the Stream).  True when stored (or when
 * the payload names no broadcaster: nothing to do). */
static bool store_followers(struct wh_sink *w, struct sh__conn *c,
                            const struct sh__outbox_row *r, char *errbuf,
                            size_t errbuf_len)
{
    json_object *stream = json_tokener_parse(r->payload), *b, *bid;
    const char *broadcaster;
    char *body, id_json[ID_MAX + 16];
    struct sh__val p[8];
    bool ok;

    if (stream == NULL ||
        !json_object_object_get_ex(stream, "broadcaster", &b) ||
        !json_object_object_get_ex(b, "id", &bid) ||
        (broadcaster = json_object_get_string(bid)) == NULL) {
        json_object_put(stream);
        return true;
    }
    body = make_body(r, "");
    if (body == NULL) {
        json_object_put(stream);
        return false;
    }
    /* The template's id member, as json-c printed it (ids are UUIDs:
     * nothing to escape). */
    snprintf(id_json, sizeof id_json, "\"id\":\"%s\"", r->id);
    p[0] = sh__v_text(r->id);
    p[1] = sh__v_text(body);
    p[2] = sh__v_text(id_json);
    p[3] = sh__v_text(id_json);
    p[3].n--;                       /* '"id":"<event id>' then ':<f>"' */
    p[4] = sh__v_int(r->created_ms);
    p[5] = sh__v_int(sh__now_ms());
    p[6] = r->traceparent != NULL ? sh__v_text(r->traceparent)
                                  : sh__v_null();
    p[7] = sh__v_text(broadcaster);
    ok = sh__store_exec_bulk(c, &q_insert_followers, p, 8, NULL, NULL, NULL,
                             errbuf, errbuf_len) == SH_OK;
    free(body);
    json_object_put(stream);
    return ok;
}

static sh_err_t wh_deliver(struct sh__sink *s,
                           const struct sh__outbox_row *rows, size_t n,
                           int64_t deadline_ms, bool *ok, char *errbuf,
                           size_t errbuf_len)
{
    struct wh_sink *w = (struct wh_sink *)s;
    struct sh__conn *c = NULL;
    bool stored = false;
    sh_err_t rc;

    (void)deadline_ms;
    if (n == 0)
        return SH_OK;
    rc = sh__store_acquire(w->hub->store, &c);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "webhook: no store connection");
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sh__outbox_row *r = &rows[i];
        const char *user = r->channel + 5;
        struct sh__val p[6];
        char *body;

        if (strcmp(r->type, "stream.live") == 0) {
            ok[i] = store_followers(w, c, r, errbuf, errbuf_len);
            stored |= ok[i];
            continue;
        }
        if (strncmp(r->channel, "user:", 5) != 0 || user[0] == '\0' ||
            strlen(user) > ID_MAX) {
            ok[i] = true;           /* not a user's notification */
            continue;
        }
        if (sh__online(w->hub, user)) {
            sh__series_add(w->s_online, 1);
            ok[i] = true;           /* they see it live */
            continue;
        }
        body = make_body(r, user);
        if (body == NULL)
            continue;
        p[0] = sh__v_text(r->id);
        p[1] = sh__v_text(user);
        p[2] = sh__v_text(body);
        p[3] = sh__v_int(r->created_ms);
        p[4] = sh__v_int(sh__now_ms());
        p[5] = r->traceparent != NULL ? sh__v_text(r->traceparent)
                                      : sh__v_null();
        ok[i] = sh__store_exec(c, &q_insert, p, 6, NULL, NULL, NULL, errbuf,
                               errbuf_len) == SH_OK;
        stored |= ok[i];
        free(body);
    }
    sh__store_release(c);
    if (stored) {
        atomic_store(&w->kicked, true);
        curl_multi_wakeup(w->multi);
    }
    return SH_OK;
}

static sh_err_t wh_health(struct sh__sink *s, char *why, size_t why_len)
{
    (void)s;
    if (why_len > 0)
        why[0] = '\0';
    return SH_OK;
}

/* ---- the sender -------------------------------------------------- */

static void store_run(struct wh_sink *w, const struct sh__sql *q,
                      const struct sh__val *p, size_t np, int64_t *changes)
{
    struct sh__conn *c = NULL;
    char err[SH_ERRBUF_SIZE];

    if (changes != NULL)
        *changes = 0;
    if (sh__store_acquire(w->hub->store, &c) != SH_OK)
        return;
    if (sh__store_exec(c, q, p, np, NULL, NULL, changes, err, sizeof err) !=
        SH_OK)
        sh__log_kv(&w->hub->log, SH_LOG_WARN, "webhook store write failed",
                   "error", err, (char *)NULL);
    sh__store_release(c);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    free(x);
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name,
                                     const char *val, bool *fail)
{
    char line[256];
    struct curl_slist *n;

    snprintf(line, sizeof line, "%s: %s", name, val);
    n = curl_slist_append(h, line);
    if (n == NULL)
        *fail = true;
    return n != NULL ? n : h;
}

/* Start one attempt of a claimed row (consumes @body). */
static void start(struct wh_sink *w, const char *id, const char *user,
                  char *body, int64_t attempts, const char *traceparent)
{
    struct xfer *x = calloc(1, sizeof *x);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[2 * sizeof mac + 1], ts[24], sig[8 + sizeof hex], tp[56],
        att[24];
    crypto_auth_hmacsha256_state st;
    bool fail = false;

    if (x == NULL) {
        free(body);
        return;
    }
    snprintf(x->id, sizeof x->id, "%s", id);
    snprintf(x->user, sizeof x->user, "%s", user);
    x->body = body;
    x->attempts = attempts;
    /* Twitch EventSub's scheme: id, timestamp and body, in that order. */
    snprintf(ts, sizeof ts, "%lld", (long long)(sh__now_ms() / 1000));
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)w->secret,
                                w->secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)x->id,
                                  strlen(x->id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts,
                                  strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
                                  strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(sig, sizeof sig, "sha256=%s", hex);
    snprintf(att, sizeof att, "%lld", (long long)attempts + 1);
    sh__span_start_linked(w->hub->otel, &x->span, "webhook POST",
                          SH__SPAN_CLIENT, traceparent);
    sh__span_attr_str(&x->span, "http.request.method", "POST");
    sh__span_attr_str(&x->span, "streamhub.event.id", x->id);
    sh__span_attr_int(&x->span, "http.request.resend_count", attempts);
    x->hdrs = add_header(NULL, "Content-Type", "application/json", &fail);
    x->hdrs = add_header(x->hdrs, "StreamHub-Event-Id", x->id, &fail);
    x->hdrs = add_header(x->hdrs, "StreamHub-Timestamp", ts, &fail);
    x->hdrs = add_header(x->hdrs, "StreamHub-Signature", sig, &fail);
    x->hdrs = add_header(x->hdrs, "StreamHub-Attempt", att, &fail);
    sh__trace_format(&x->span.ctx, tp);
    if (tp[0] == '\0' && traceparent != NULL)
        snprintf(tp, sizeof tp, "%s", traceparent);
    if (tp[0] != '\0')
        x->hdrs = add_header(x->hdrs, "traceparent", tp, &fail);
    x->easy = curl_easy_init();
    if (fail || x->easy == NULL) {
        struct sh__val p[1] = { sh__v_text(x->id) };
        store_run(w, &q_unlease, p, 1, NULL);
        sh__span_end(&x->span);
        xfer_free(x);
        return;
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, w->url);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "streamhub-webhook");
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(w->multi, x->easy) != CURLM_OK) {
        struct sh__val p[1] = { sh__v_text(x->id) };
        store_run(w, &q_unlease, p, 1, NULL);
        sh__span_end(&x->span);
        xfer_free(x);
        return;
    }
    x->next = w->xfers;
    w->xfers = x;
    w->nflight++;
}

static bool retryable(long status)
{
    return status < 0 || status == 408 || status == 429 || status >= 500;
}

/* One attempt ended: HTTP @status, or -1 without an answer. */
static void finish(struct wh_sink *w, struct xfer *x, long status,
                   int64_t retry_after_s)
{
    int64_t now = sh__now_ms(), attempts = x->attempts + 1;
    struct sh__val p[4];

    sh__span_attr_int(&x->span, "http.response.status_code", status);
    if (status >= 200 && status < 300) {
        p[0] = sh__v_text(x->id);
        store_run(w, &q_delete, p, 1, NULL);
        sh__series_add(w->s_delivered, 1);
    } else if (!retryable(status) || attempts >= w->max_attempts) {
        /* The give-up rule: into the dead-letter table, in one step. */
        struct sh__conn *c = NULL;
        char err[SH_ERRBUF_SIZE] = "";
        sh_err_t rc = sh__store_acquire(w->hub->store, &c);
        sh__span_fail(&x->span);
        if (rc == SH_OK)
            rc = sh__store_begin(c, err, sizeof err);
        if (rc == SH_OK) {
            p[0] = sh__v_int(attempts);
            p[1] = sh__v_int(status);
            p[2] = sh__v_int(now);
            p[3] = sh__v_text(x->id);
            rc = sh__store_exec(c, &q_dead, p, 4, NULL, NULL, NULL, err,
                                sizeof err);
            p[0] = sh__v_text(x->id);
            if (rc == SH_OK)
                rc = sh__store_exec(c, &q_delete, p, 1, NULL, NULL, NULL,
                                    err, sizeof err);
            if (rc == SH_OK)
                rc = sh__store_commit(c, err, sizeof err);
            else
                sh__store_rollback(c);
        }
        if (c != NULL)
            sh__store_release(c);
        if (rc == SH_OK) {
            char st[24];
            snprintf(st, sizeof st, "%ld", status);
            sh__series_add(w->s_dead, 1);
            sh__log_kv(&w->hub->log, SH_LOG_WARN, "webhook given up",
                       "id", x->id, "status", st, (char *)NULL);
        }
    } else {
        int64_t ms = w->base_ms;
        for (int64_t i = 1; i < attempts && ms < w->max_ms; i++)
            ms *= 2;
        if (ms > w->max_ms)
            ms = w->max_ms;
        ms = ms / 2 + (int64_t)randombytes_uniform((uint32_t)(ms / 2) + 1);
        if (retry_after_s >= 0)
            ms = retry_after_s * 1000 < w->max_ms ? retry_after_s * 1000
                                                  : w->max_ms;
        sh__span_fail(&x->span);
        p[0] = sh__v_int(attempts);
        p[1] = sh__v_int(now + ms);
        p[2] = sh__v_int(status);
        p[3] = sh__v_text(x->id);
        store_run(w, &q_retry, p, 4, NULL);
        sh__series_add(w->s_retried, 1);
    }
    sh__span_end(&x->span);
}

struct due {
    char id[DELIVERY_ID_MAX + 1], user[ID_MAX + 1], tp[56];
    char *body;
    int64_t attempts;
};

struct due_list {
    struct due *v;
    size_t n, cap;
};

static int due_row(void *arg, const struct sh__row *row)
{
    struct due_list *l = arg;
    struct due *d;
    const char *tp;

    if (l->n == l->cap)
        return 1;
    d = &l->v[l->n];
    snprintf(d->id, sizeof d->id, "%s", sh__row_text(row, 0, NULL));
    snprintf(d->user, sizeof d->user, "%s", sh__row_text(row, 1, NULL));
    d->body = strdup(sh__row_text(row, 2, NULL));
    d->attempts = sh__row_int(row, 3);
    tp = sh__row_null(row, 4) ? "" : sh__row_text(row, 4, NULL);
    snprintf(d->tp, sizeof d->tp, "%s", tp);
    if (d->body != NULL)
        l->n++;
    return 0;
}

static bool user_busy(const struct wh_sink *w, const char *user)
{
    for (const struct xfer *x = w->xfers; x != NULL; x = x->next)
        if (strcmp(x->user, user) == 0)
            return true;
    return false;
}

/* Claim and start the due rows that fit (one per user at a time). */
static void scan(struct wh_sink *w)
{
    struct due_list l = { NULL, 0, 0 };
    struct sh__conn *c = NULL;
    int64_t now = sh__now_ms();
    struct sh__val p[3];

    if (w->nflight >= w->conc)
        return;
    /* Extra rows: some may be for users already in flight. */
    l.cap = (w->conc - w->nflight) * 4;
    l.v = calloc(l.cap, sizeof *l.v);
    if (l.v == NULL || sh__store_acquire(w->hub->store, &c) != SH_OK) {
        free(l.v);
        return;
    }
    p[0] = sh__v_int(now);
    p[1] = sh__v_int(now);
    p[2] = sh__v_int((int64_t)l.cap);
    (void)sh__store_exec(c, &q_due, p, 3, due_row, &l, NULL, NULL, 0);
    for (size_t i = 0; i < l.n; i++) {
        struct due *d = &l.v[i];
        int64_t changes = 0;

        if (w->nflight >= w->conc || user_busy(w, d->user)) {
            free(d->body);
            continue;
        }
        if (sh__online(w->hub, d->user)) {
            /* Online since it was stored: they see it live. */
            p[0] = sh__v_text(d->id);
            if (sh__store_exec(c, &q_delete, p, 1, NULL, NULL, &changes,
                               NULL, 0) == SH_OK && changes == 1)
                sh__series_add(w->s_online, 1);
            free(d->body);
            continue;
        }
        /* The lease outlives the attempt: no other node sends it. */
        p[0] = sh__v_int(now + 2 * w->timeout_ms + 1000);
        p[1] = sh__v_text(d->id);
        p[2] = sh__v_int(now);
        if (sh__store_exec(c, &q_claim, p, 3, NULL, NULL, &changes, NULL,
                           0) != SH_OK || changes != 1) {
            free(d->body);
            continue;
        }
        start(w, d->id, d->user, d->body, d->attempts,
              d->tp[0] != '\0' ? d->tp : NULL);
    }
    sh__store_release(c);
    free(l.v);
}

static int count_row(void *arg, const struct sh__row *row)
{
    *(int64_t *)arg = sh__row_int(row, 0);
    return 0;
}

static void *sender(void *arg)
{
    struct wh_sink *w = arg;
    int64_t next_scan = 0, next_count = 0;

    while (!atomic_load(&w->stop)) {
        int64_t now = sh__mono_ms();
        int running = 0;
        CURLMsg *msg;
        int left;

        if (atomic_exchange(&w->kicked, false) || now >= next_scan) {
            scan(w);
            next_scan = now + 100;
        }
        if (now >= next_count) {
            struct sh__conn *c = NULL;
            int64_t n = 0;
            if (sh__store_acquire(w->hub->store, &c) == SH_OK) {
                if (sh__store_exec(c, &q_count, NULL, 0, count_row, &n,
                                   NULL, NULL, 0) == SH_OK)
                    sh__series_set(w->s_pending, (double)n);
                sh__store_release(c);
            }
            next_count = now + 1000;
        }
        curl_multi_perform(w->multi, &running);
        while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
            struct xfer *x = NULL, **pp;
            long status = -1;
            curl_off_t ra = -1;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
                              (char **)&x);
            if (msg->data.result == CURLE_OK) {
                curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
                if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &ra) !=
                    CURLE_OK)
                    ra = -1;
            }
            curl_multi_remove_handle(w->multi, x->easy);
            for (pp = &w->xfers; *pp != x; pp = &(*pp)->next)
                ;
            *pp = x->next;
            w->nflight--;
            finish(w, x, status, (int64_t)ra);
            xfer_free(x);
            atomic_store(&w->kicked, true);   /* a slot is free */
        }
        sh__series_set(w->s_flight, (double)w->nflight);
        curl_multi_poll(w->multi, NULL, 0, 100, NULL);
    }
    /* Stopping: what is in flight is tried again later (here after a
     * restart, or by another node). */
    while (w->xfers != NULL) {
        struct xfer *x = w->xfers;
        struct sh__val p[1] = { sh__v_text(x->id) };

        w->xfers = x->next;
        curl_multi_remove_handle(w->multi, x->easy);
        store_run(w, &q_unlease, p, 1, NULL);
        sh__span_end(&x->span);
        xfer_free(x);
    }
    w->nflight = 0;
    return NULL;
}

static void wh_interrupt(struct sh__sink *s)
{
    (void)s;                   /* deliver() never waits on the network */
}

static void wh_close(struct sh__sink *s)
{
    struct wh_sink *w = (struct wh_sink *)s;

    if (w == NULL)
        return;
    if (w->started) {
        atomic_store(&w->stop, true);
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
    }
    if (w->multi != NULL)
        curl_multi_cleanup(w->multi);
    if (w->secret != NULL)
        sodium_memzero(w->secret, w->secret_len);
    free(w->secret);
    free(w->url);
    free(w);
}

static const struct sh__sink_ops wh_ops = {
    "webhook", wh_deliver, wh_health, wh_interrupt, wh_close
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

sh_err_t sh__sink_webhook_open(sh_hub_t *hub, const char *value,
                               struct sh__sink **out, char *errbuf,
                               size_t errbuf_len)
{
    const char *secret = sh__config_str(hub->conf, "push-webhook-secret");
    struct wh_sink *w;
    struct sh__metric *m;

    *out = NULL;
    if (strncmp(value, "https://", 8) != 0 &&
        strncmp(value, "http://", 7) != 0) {
        sh__errbuf(errbuf, errbuf_len, "push-webhook: want an https:// (or "
                   "http://) URL");
        return SH_EINVAL;
    }
    if (secret == NULL || strlen(secret) < 16) {
        sh__errbuf(errbuf, errbuf_len, "push-webhook needs "
                   "push-webhook-secret (at least 16 bytes) to sign with");
        return SH_EINVAL;
    }
    pthread_once(&curl_once, curl_init);
    w = calloc(1, sizeof *w);
    if (w == NULL)
        goto oom;
    w->base.ops = &wh_ops;
    w->hub = hub;
    w->url = strdup(value);
    w->secret = strdup(secret);
    w->secret_len = strlen(secret);
    w->timeout_ms = sh__config_int(hub->conf, "push-webhook.timeout-ms");
    w->base_ms = sh__config_int(hub->conf, "push-webhook.retry-base-ms");
    w->max_ms = sh__config_int(hub->conf, "push-webhook.retry-max-ms");
    w->max_attempts = sh__config_int(hub->conf,
                                     "push-webhook.max-attempts");
    w->conc = (size_t)sh__config_int(hub->conf, "push-webhook.concurrency");
    w->multi = curl_multi_init();
    if (w->url == NULL || w->secret == NULL || w->multi == NULL)
        goto oom_free;
    m = sh__metrics_add(hub->metrics, "streamhub_webhook_deliveries_total",
                        SH__METRIC_COUNTER, "Push webhook attempts by "
                        "outcome: delivered (2xx), retried (no answer, 408, "
                        "429, 5xx), dead (given up, in webhook_dead).",
                        "outcome", NULL, 0);
    if (m != NULL) {
        w->s_delivered = sh__metric_series(m, "delivered");
        w->s_retried = sh__metric_series(m, "retried");
        w->s_dead = sh__metric_series(m, "dead");
    }
    m = sh__metrics_add(hub->metrics, "streamhub_webhook_skipped_online_total",
                        SH__METRIC_COUNTER, "Notifications not pushed: "
                        "their user had a connection open in the cluster.",
                        "", NULL, 0);
    w->s_online = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_webhook_pending",
                        SH__METRIC_GAUGE, "Push webhook deliveries waiting "
                        "(all nodes; refreshed every second).", "", NULL, 0);
    w->s_pending = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(hub->metrics, "streamhub_webhook_in_flight",
                        SH__METRIC_GAUGE, "Push webhook requests this node "
                        "has open.", "", NULL, 0);
    w->s_flight = m != NULL ? sh__metric_series(m, "") : NULL;
    if (w->s_delivered == NULL || w->s_retried == NULL || w->s_dead == NULL ||
        w->s_online == NULL || w->s_pending == NULL || w->s_flight == NULL)
        goto oom_free;
    if (pthread_create(&w->thread, NULL, sender, w) != 0) {
        wh_close(&w->base);
        sh__errbuf(errbuf, errbuf_len, "push-webhook: cannot start a "
                   "thread");
        return SH_EINTERNAL;
    }
    w->started = true;
    *out = &w->base;
    return SH_OK;
oom_free:
    wh_close(&w->base);
oom:
    sh__errbuf(errbuf, errbuf_len, "out of memory");
    return SH_ENOMEM;
}
