/* libstreamhub/services/streams.c: live streams (streams.h).
 *
 * Going live, in one transaction: the stream row, its stream_stats row, and
 * one STREAM_LIVE notification per follower made by ONE set-based
 * statement (INSERT ... SELECT FROM follows ... RETURNING id, user_id).
 * After the commit, `stream.live` is published on `live` and
 * `stream:<id>`, then each returned notification on its follower's
 * `user:<id>`, built in memory from the returned id (the stored one) and
 * the one data object of this start.
 *
 * Notification ids of the fan-out are made by the database: SQLite has no
 * uuid(), so a version-4 UUID is formatted by one printf() from five
 * random() values masked to its groups (the version and variant bits
 * fixed; SQLite's random() draws from the same generator as
 * randomblob()).  Each value is used once: no common table expression to
 * materialise (100,000 rows written to and read back from a temporary
 * table), the statement reads follows directly like a bare
 * INSERT ... SELECT, and one printf() costs half the string functions of
 * slicing a hex(randomblob(16)).  PostgreSQL uses gen_random_uuid().
 *
 * Viewer counts (sh_stream_set_viewers): every call updates the store; the
 * `stream.viewers` event is coalesced to at most one per second per stream
 * (struct vent below; see streams.h for when a pending value goes out).
 *
 * Stopping an offline stream is SH_ECONFLICT (not idempotent).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/streams.h"
#include "chat_int.h"
#include "outbox_int.h"
#include "services_int.h"

struct sh_stream { json_object *obj; };
struct sh_stream_list { struct sh__list l; };

#define VBUCKETS 1024u
#define QUERY_MAX 256

/* A stream's viewer coalescing state.  @locks sh__streams.mu
 * Invariant: pending >= 0 iff a value awaits publishing. */
struct vent {
    struct vent *next;
    char id[SH__UUID_LEN + 1];
    int64_t last_pub_ms;   /* monotonic; 0: never published */
    int64_t pending;       /* -1: none */
};

struct sh__streams {
    pthread_mutex_t mu;
    struct vent *b[VBUCKETS];
    struct sh__stats *stats;   /* owned (stats.c) */
};

#define STREAM_COLS \
    "s.id, s.broadcaster_id, u.username, s.title, s.category, s.status, " \
    "s.viewer_count, s.started_at, s.ended_at"

static const struct sh__sql q_get = {
    "SELECT " STREAM_COLS " FROM streams s JOIN users u "
    "ON u.id = s.broadcaster_id WHERE s.id = ?", NULL, NULL
};
static const struct sh__sql q_insert = {
    "INSERT INTO streams (id, broadcaster_id, title, category, status, "
    "viewer_count, peak_viewers, started_at) VALUES (?, ?, ?, ?, 'LIVE', 0, "
    "0, ?)", NULL, NULL
};
static const struct sh__sql q_insert_stats = {
    "INSERT INTO stream_stats (stream_id) VALUES (?)", NULL, NULL
};
#define FANOUT_UUID_SQLITE \
    "printf('%08x-%04x-4%03x-%04x-%012x', random() & 4294967295, " \
    "random() & 65535, random() & 4095, (random() & 16383) | 32768, " \
    "random() & 281474976710655)"
static const struct sh__sql q_fanout = {
    "WITH f AS MATERIALIZED (SELECT follower_id FROM follows "
    "WHERE followed_id = ?) "
    "INSERT INTO notifications (id, user_id, type, data, read, created_at) "
    "SELECT gen_random_uuid(), follower_id, 'STREAM_LIVE', ?, 0, ? "
    "FROM f RETURNING id, user_id",
    "INSERT INTO notifications (id, user_id, type, data, read, created_at) "
    "SELECT " FANOUT_UUID_SQLITE ", follower_id, 'STREAM_LIVE', ?2, 0, ?3 "
    "FROM follows WHERE followed_id = ?1 RETURNING id, user_id",
    NULL
};
static const struct sh__sql q_stop = {
    "UPDATE streams SET status = 'OFFLINE', ended_at = ?, viewer_count = 0 "
    "WHERE id = ? AND status = 'LIVE'", NULL, NULL
};
static const struct sh__sql q_update = {
    "UPDATE streams SET title = ?, category = ? WHERE id = ?", NULL, NULL
};
static const struct sh__sql q_viewers = {
    "UPDATE streams SET viewer_count = ?, peak_viewers = CASE WHEN "
    "peak_viewers < ? THEN ? ELSE peak_viewers END "
    "WHERE id = ? AND status = 'LIVE'", NULL, NULL
};
static const struct sh__sql q_live = {
    "SELECT " STREAM_COLS " FROM streams s JOIN users u "
    "ON u.id = s.broadcaster_id WHERE s.status = 'LIVE' "
    "AND (? = 0 OR s.category = ?) "
    "AND (? = 0 OR s.viewer_count < ? OR (s.viewer_count = ? AND "
    "(s.started_at < ? OR (s.started_at = ? AND s.id > ?)))) "
    "ORDER BY s.viewer_count DESC, s.started_at DESC, s.id ASC LIMIT ?",
    NULL, NULL
};
static const struct sh__sql q_live_count = {
    "SELECT count(*) FROM streams WHERE status = 'LIVE' "
    "AND (? = 0 OR category = ?)", NULL, NULL
};
/* Search: the SQLite text uses the FTS5 table of 0001_init.sql, the
 * PostgreSQL one the generated tsvector column (GIN) of pg/0001_init.sql;
 * the portable text searches the same two columns without an index.  The
 * query is fts_query()'s quoted words, which plainto_tsquery() reads as
 * plain words: no user text is ever tsquery syntax. */
#define SEARCH_ORDER \
    " AND (? = 0 OR (CASE WHEN s.status = 'LIVE' THEN 1 ELSE 0 END) < ? OR " \
    "((CASE WHEN s.status = 'LIVE' THEN 1 ELSE 0 END) = ? AND " \
    "(s.started_at < ? OR (s.started_at = ? AND s.id > ?)))) " \
    "ORDER BY CASE WHEN s.status = 'LIVE' THEN 1 ELSE 0 END DESC, " \
    "s.started_at DESC, s.id ASC LIMIT ?"
static const struct sh__sql q_search = {
    "SELECT " STREAM_COLS " FROM streams s JOIN users u "
    "ON u.id = s.broadcaster_id WHERE to_tsvector('simple', s.title || ' ' "
    "|| coalesce(s.category, '')) @@ plainto_tsquery('simple', ?)"
    SEARCH_ORDER,
    "SELECT " STREAM_COLS " FROM streams s JOIN users u "
    "ON u.id = s.broadcaster_id WHERE s.rowid IN (SELECT rowid FROM "
    "streams_fts WHERE streams_fts MATCH ?)" SEARCH_ORDER,
    "SELECT " STREAM_COLS " FROM streams s JOIN users u "
    "ON u.id = s.broadcaster_id WHERE s.search @@ "
    "plainto_tsquery('simple', ?)" SEARCH_ORDER
};
static const struct sh__sql q_search_count = {
    "SELECT count(*) FROM streams s WHERE to_tsvector('simple', s.title || "
    "' ' || coalesce(s.category, '')) @@ plainto_tsquery('simple', ?)",
    "SELECT count(*) FROM streams_fts WHERE streams_fts MATCH ?",
    "SELECT count(*) FROM streams s WHERE s.search @@ "
    "plainto_tsquery('simple', ?)"
};

/* ---- the Stream JSON --------------------------------------------------- */

static json_object *stream_row_obj(const struct sh__row *row)
{
    json_object *o = json_object_new_object();
    const char *status = sh__row_text(row, 5, NULL);

    if (o == NULL)
        return NULL;
    if (!sh__jset_str(o, "id", sh__row_text(row, 0, NULL)) ||
        !sh__jset(o, "broadcaster",
                  sh__juser_ref(sh__row_text(row, 1, NULL),
                                sh__row_text(row, 2, NULL))) ||
        !sh__jset_str(o, "title", sh__row_text(row, 3, NULL)) ||
        !sh__jset_str(o, "category", sh__row_text(row, 4, NULL)) ||
        !sh__jset_str(o, "status", status) ||
        !sh__jset_int(o, "viewerCount", sh__row_int(row, 6)) ||
        !sh__jset_time(o, "startedAt",
                       sh__row_null(row, 7) ? 0 : sh__row_int(row, 7),
                       true) ||
        !sh__jset_time(o, "endedAt",
                       sh__row_null(row, 8) ? 0 : sh__row_int(row, 8),
                       true)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

struct one_ctx {
    json_object *obj;
    bool found;
    bool oom;
};

static int one_row(void *arg, const struct sh__row *row)
{
    struct one_ctx *x = arg;

    x->found = true;
    x->obj = stream_row_obj(row);
    x->oom = x->obj == NULL;
    return 1;
}

/* Read stream @id on @c into *@out (new reference). */
static sh_err_t stream_load(struct sh__conn *c, const char *id,
                            json_object **out, char *errbuf,
                            size_t errbuf_len)
{
    struct one_ctx x = { NULL, false, false };
    struct sh__val p[1];
    sh_err_t rc;

    *out = NULL;
    if (!sh__uuid_valid(id)) {
        sh__errbuf(errbuf, errbuf_len, "no such stream");
        return SH_ENOTFOUND;
    }
    p[0] = sh__v_text(id);
    rc = sh__store_exec(c, &q_get, p, 1, one_row, &x, NULL, errbuf,
                        errbuf_len);
    if (rc != SH_OK) {
        json_object_put(x.obj);
        return rc;
    }
    if (!x.found) {
        sh__errbuf(errbuf, errbuf_len, "no such stream");
        return SH_ENOTFOUND;
    }
    if (x.oom)
        return SH_ENOMEM;
    *out = x.obj;
    return SH_OK;
}

static json_object *jcopy(json_object *o)
{
    json_object *c = NULL;

    if (o == NULL || json_object_deep_copy(o, &c, NULL) != 0)
        return NULL;
    return c;
}

/* Publish a copy of @obj on stream:<id> (and on `live` when @also_live):
 * each event owns its data, so no json object is shared across threads. */
static void publish_stream(sh_hub_t *hub, const char *type,
                           json_object *obj, bool also_live)
{
    char channel[8 + SH__UUID_LEN + 1];
    char err[SH_ERRBUF_SIZE];

    if (also_live &&
        sh__bus_publish(hub->bus, "live", type, jcopy(obj), NULL, err,
                        sizeof err) != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "stream event not published",
                   "type", type, "error", err, (char *)NULL);
    snprintf(channel, sizeof channel, "stream:%s", sh__jstr(obj, "id"));
    if (sh__bus_publish(hub->bus, channel, type, jcopy(obj), NULL, err,
                        sizeof err) != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "stream event not published",
                   "type", type, "error", err, (char *)NULL);
}

static sh_err_t out_stream(json_object *obj, sh_stream_t **out)
{
    if (out == NULL) {
        json_object_put(obj);
        return SH_OK;
    }
    *out = (sh_stream_t *)(void *)sh__jh_new(obj);
    return *out != NULL ? SH_OK : SH_ENOMEM;
}

/* ---- validation -------------------------------------------------------- */

static sh_err_t check_text(const char *what, const char *s, size_t max,
                           bool allow_empty, char *errbuf,
                           size_t errbuf_len)
{
    size_t n, cps;

    if (s == NULL) {
        sh__errbuf(errbuf, errbuf_len, "%s: missing", what);
        return SH_EINVAL;
    }
    n = strlen(s);
    if (n == 0 && allow_empty)
        return SH_OK;
    if (!sh__text_count(s, n, &cps)) {
        sh__errbuf(errbuf, errbuf_len, "%s: not valid UTF-8", what);
        return SH_EINVAL;
    }
    if (cps < 1 || cps > max) {
        sh__errbuf(errbuf, errbuf_len, "%s: %zu code points, not 1..%zu",
                   what, cps, max);
        return SH_EINVAL;
    }
    return SH_OK;
}

/* The broadcaster's or an admin's right over stream @obj. */
static sh_err_t check_owner(json_object *obj, const char *actor,
                            unsigned roles, char *errbuf, size_t errbuf_len)
{
    json_object *b = NULL;
    const char *bid;

    json_object_object_get_ex(obj, "broadcaster", &b);
    bid = sh__jstr(b, "id");
    if ((roles & SH__ROLE_ADMIN) != 0 ||
        (bid != NULL && strcmp(bid, actor) == 0))
        return SH_OK;
    sh__errbuf(errbuf, errbuf_len, "only the broadcaster or an admin may "
               "change this stream");
    return SH_EFORBIDDEN;
}

/* ---- start ------------------------------------------------------------- */

struct fan_row {
    char id[SH__UUID_LEN + 1];
    char user[SH__UUID_LEN + 1];
};

struct fan_ctx {
    struct fan_row *rows;
    size_t n, cap;
    bool oom;
};

static int fan_row_cb(void *arg, const struct sh__row *row)
{
    struct fan_ctx *x = arg;
    const char *id = sh__row_text(row, 0, NULL);
    const char *user = sh__row_text(row, 1, NULL);

    if (x->n == x->cap) {
        size_t cap = x->cap != 0 ? x->cap * 2 : 256;
        struct fan_row *r = realloc(x->rows, cap * sizeof *r);
        if (r == NULL) {
            x->oom = true;
            return 1;
        }
        x->rows = r;
        x->cap = cap;
    }
    /* Valid UUIDs only: fan_publish() splices the id into JSON text. */
    if (id == NULL || user == NULL || !sh__uuid_valid(id) ||
        !sh__uuid_valid(user))
        return 0;
    memcpy(x->rows[x->n].id, id, SH__UUID_LEN + 1);
    memcpy(x->rows[x->n].user, user, SH__UUID_LEN + 1);
    x->n++;
    return 0;
}

/* The data of a STREAM_LIVE notification. */
static json_object *live_data(json_object *stream)
{
    json_object *d = json_object_new_object(), *b = NULL;

    if (d == NULL)
        return NULL;
    json_object_object_get_ex(stream, "broadcaster", &b);
    if (!sh__jset_str(d, "streamId", sh__jstr(stream, "id")) ||
        !sh__jset_str(d, "title", sh__jstr(stream, "title")) ||
        !sh__jset_str(d, "category", sh__jstr(stream, "category")) ||
        !sh__jset(d, "broadcaster",
                  sh__juser_ref(sh__jstr(b, "id"),
                                sh__jstr(b, "username")))) {
        json_object_put(d);
        return NULL;
    }
    return d;
}

/* Rows published per sh__bus_publish_many() call. */
#define FAN_CHUNK 256
#define FAN_ID_AT 7             /* strlen("{\"id\":\"") */

/* Publish the fan-out's notifications: one event per row, on its
 * follower's channel, with the stored id.  Returns how many went out.
 *
 * The rows differ only in their id, so the Notification is built and
 * serialised once by json-c with a placeholder id (a UUID, first key, so
 * at a known place and needing no escaping) and each row's text is that
 * template with its own id copied over the placeholder: no json-c object
 * and no serialisation per follower.  The events go to the bus in chunks
 * (sh__bus_publish_many): one map lock per chunk, one allocation each. */
static size_t fan_publish(sh_hub_t *hub, const struct fan_ctx *x,
                          json_object *stream, int64_t now)
{
    static const char placeholder[] = "00000000-0000-4000-8000-000000000000";
    struct sh__bus_item items[FAN_CHUNK];
    char (*channels)[8 + SH__UUID_LEN + 1] = NULL;
    char ts[SH__TS_LEN + 1];
    char err[SH_ERRBUF_SIZE] = "out of memory";
    const char *tpl;
    char *texts = NULL;
    json_object *o;
    size_t sent = 0, len = 0;

    if (x->n == 0)
        return 0;
    sh__ts_format(now, ts);
    o = json_object_new_object();
    if (o == NULL || !sh__jset_str(o, "id", placeholder) ||
        !sh__jset_str(o, "type", "STREAM_LIVE") ||
        !sh__jset(o, "data", live_data(stream)) ||
        !sh__jset_bool(o, "read", false) ||
        !sh__jset_str(o, "createdAt", ts))
        goto out;
    tpl = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (tpl == NULL || len < FAN_ID_AT + SH__UUID_LEN ||
        memcmp(tpl, "{\"id\":\"", FAN_ID_AT) != 0 ||
        memcmp(tpl + FAN_ID_AT, placeholder, SH__UUID_LEN) != 0)
        goto out;
    texts = malloc(FAN_CHUNK * len);
    channels = malloc(FAN_CHUNK * sizeof *channels);
    if (texts == NULL || channels == NULL)
        goto out;
    for (size_t base = 0; base < x->n; base += FAN_CHUNK) {
        size_t k = x->n - base < FAN_CHUNK ? x->n - base : FAN_CHUNK;

        for (size_t i = 0; i < k; i++) {
            char *t = texts + i * len;

            memcpy(t, tpl, len);
            memcpy(t + FAN_ID_AT, x->rows[base + i].id, SH__UUID_LEN);
            memcpy(channels[i], "user:", 5);
            memcpy(channels[i] + 5, x->rows[base + i].user,
                   SH__UUID_LEN + 1);
            items[i].channel = channels[i];
            items[i].data = t;
            items[i].len = len;
        }
        sent += sh__bus_publish_many(hub->bus, "notification", items, k,
                                     err, sizeof err);
    }
out:
    if (sent != x->n)
        sh__log_kv(&hub->log, SH_LOG_WARN, "some live notifications were "
                   "not published", "error", err, (char *)NULL);
    json_object_put(o);
    free(texts);
    free(channels);
    return sent;
}

SH_API sh_err_t sh_stream_start(sh_hub_t *hub, const char *actor_id,
                                const char *title, const char *category,
                                sh_stream_t **out, char *errbuf,
                                size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char id[SH__UUID_LEN + 1];
    struct fan_ctx fan = { NULL, 0, 0, false };
    json_object *obj = NULL, *data = NULL;
    struct sh__conn *c = NULL;
    struct sh__val p[5];
    int64_t now = sh__now_ms();
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = check_text("title", title, SH_STREAM_TITLE_MAX, false, errbuf,
                         errbuf_len)) != SH_OK)
        return rc;
    if (category != NULL &&
        (rc = check_text("category", category, SH_STREAM_CATEGORY_MAX, true,
                         errbuf, errbuf_len)) != SH_OK)
        return rc;
    if (category != NULL && category[0] == '\0')
        category = NULL;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    if ((rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if ((rc = sh__store_begin(c, errbuf, errbuf_len)) != SH_OK)
        goto out;
    sh__uuid4(id);
    p[0] = sh__v_text(id);
    p[1] = sh__v_text(actor_id);
    p[2] = sh__v_text(title);
    p[3] = sh__v_text(category);
    p[4] = sh__v_int(now);
    rc = sh__store_exec(c, &q_insert, p, 5, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_ECONFLICT)
        sh__errbuf(errbuf, errbuf_len, "the broadcaster is live already");
    if (rc == SH_OK)
        rc = sh__store_exec(c, &q_insert_stats, p, 1, NULL, NULL, NULL,
                            errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = stream_load(c, id, &obj, errbuf, errbuf_len);
    if (rc == SH_OK) {
        data = live_data(obj);
        rc = data != NULL ? SH_OK : SH_ENOMEM;
    }
    if (rc == SH_OK) {
        p[0] = sh__v_text(actor_id);
        p[1] = sh__v_text(sh__jtext(data, NULL));
        p[2] = sh__v_int(now);
        rc = sh__store_exec_bulk(c, &q_fanout, p, 3, fan_row_cb, &fan,
                                 NULL, errbuf, errbuf_len);
        if (rc == SH_OK && fan.oom)
            rc = SH_ENOMEM;
    }
    if (rc == SH_OK)
        rc = sh__outbox_add_obj(hub, c, "stream:", id, "stream.live", obj,
                                errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
out:
    sh__store_release(c);
    json_object_put(data);
    if (rc == SH_OK) {
        sh__store_wrote(hub->store, id);
        sh__store_wrote(hub->store, actor_id);
        /* Every follower's unread count grew: one step for them all. */
        if (fan.n > 0)
            sh__cache_invalidate_all(hub, SH__CACHE_UNREAD);
        /* A new live stream: every live list page may show it. */
        sh__cache_invalidate_all(hub, SH__CACHE_LIVE);
        sh__chat_stream_changed(hub, id, true);
        sh__outbox_kick(hub);
        publish_stream(hub, "stream.live", obj, true);
        fan_publish(hub, &fan, obj, now);
        rc = out_stream(obj, out);
    } else {
        json_object_put(obj);
    }
    free(fan.rows);
    return rc;
}

/* ---- stop, update, get ------------------------------------------------- */

static void vent_forget(sh_hub_t *hub, const char *id);

SH_API sh_err_t sh_stream_stop(sh_hub_t *hub, const char *actor_id,
                               const char *stream_id, sh_stream_t **out,
                               char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    json_object *obj = NULL;
    struct sh__conn *c = NULL;
    struct sh__val p[2];
    unsigned roles = 0;
    int64_t changes = 0;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    if ((rc = sh__actor_c(c, actor_id, &roles, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if ((rc = stream_load(c, stream_id, &obj, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if ((rc = check_owner(obj, actor_id, roles, errbuf, errbuf_len)) !=
        SH_OK)
        goto out;
    p[0] = sh__v_int(sh__now_ms());
    p[1] = sh__v_text(stream_id);
    /* One transaction with its outbox row (stream.offline). */
    if ((rc = sh__store_begin(c, errbuf, errbuf_len)) != SH_OK)
        goto out;
    rc = sh__store_exec(c, &q_stop, p, 2, NULL, NULL, &changes, errbuf,
                        errbuf_len);
    if (rc == SH_OK && changes == 0) {
        sh__errbuf(errbuf, errbuf_len, "the stream is not live");
        rc = SH_ECONFLICT;
    }
    if (rc == SH_OK) {
        json_object_put(obj);
        obj = NULL;
        rc = stream_load(c, stream_id, &obj, errbuf, errbuf_len);
    }
    if (rc == SH_OK)
        rc = sh__outbox_add_obj(hub, c, "stream:", stream_id,
                                "stream.offline", obj, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
out:
    sh__store_release(c);
    if (rc != SH_OK) {
        json_object_put(obj);
        return rc;
    }
    sh__store_wrote(hub->store, stream_id);
    sh__cache_invalidate(hub, SH__CACHE_STREAM, stream_id);
    vent_forget(hub, stream_id);
    sh__chat_stream_changed(hub, stream_id, false);
    sh__outbox_kick(hub);
    publish_stream(hub, "stream.offline", obj, true);
    return out_stream(obj, out);
}

SH_API sh_err_t sh_stream_update(sh_hub_t *hub, const char *actor_id,
                                 const char *stream_id, const char *title,
                                 const char *category, sh_stream_t **out,
                                 char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    json_object *obj = NULL;
    struct sh__conn *c = NULL;
    struct sh__val p[3];
    unsigned roles = 0;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (title != NULL &&
        (rc = check_text("title", title, SH_STREAM_TITLE_MAX, false, errbuf,
                         errbuf_len)) != SH_OK)
        return rc;
    if (category != NULL &&
        (rc = check_text("category", category, SH_STREAM_CATEGORY_MAX, true,
                         errbuf, errbuf_len)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    if ((rc = sh__actor_c(c, actor_id, &roles, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if ((rc = stream_load(c, stream_id, &obj, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if ((rc = check_owner(obj, actor_id, roles, errbuf, errbuf_len)) !=
        SH_OK)
        goto out;
    p[0] = sh__v_text(title != NULL ? title : sh__jstr(obj, "title"));
    p[1] = sh__v_text(category == NULL ? sh__jstr(obj, "category")
                      : category[0] == '\0' ? NULL : category);
    p[2] = sh__v_text(stream_id);
    rc = sh__store_exec(c, &q_update, p, 3, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_OK) {
        json_object_put(obj);
        obj = NULL;
        rc = stream_load(c, stream_id, &obj, errbuf, errbuf_len);
    }
out:
    sh__store_release(c);
    if (rc != SH_OK) {
        json_object_put(obj);
        return rc;
    }
    sh__store_wrote(hub->store, stream_id);
    sh__cache_invalidate(hub, SH__CACHE_STREAM, stream_id);
    publish_stream(hub, "stream.updated", obj, false);
    return out_stream(obj, out);
}

SH_API sh_err_t sh_stream_get(sh_hub_t *hub, const char *stream_id,
                              sh_stream_t **out, char *errbuf,
                              size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    json_object *obj = NULL;
    struct sh__cache_ticket t;
    struct sh__conn *c;
    char *text = NULL;
    size_t len = 0;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL)
        return SH_EINVAL;
    if (sh__cache_get(hub, SH__CACHE_STREAM, stream_id, &text, &len, &t)) {
        obj = json_tokener_parse(text);
        free(text);
        if (obj != NULL && json_object_is_type(obj, json_type_object))
            return out_stream(obj, out);
        json_object_put(obj);       /* not ours: read the store */
        obj = NULL;
    }
    if ((rc = sh__store_acquire_read(hub->store, stream_id, &c)) != SH_OK)
        return rc;
    sh__cache_from(c, &t);
    rc = stream_load(c, stream_id, &obj, errbuf, errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    if (sh__cache_fillable(&t)) {
        const char *txt = sh__jtext(obj, &len);
        if (txt != NULL)
            sh__cache_put(hub, SH__CACHE_STREAM, stream_id, &t, txt, len);
    }
    return out_stream(obj, out);
}

sh_err_t sh__stream_channel(sh_hub_t *hub, const char *stream_id,
                            char channel_id[SH__UUID_LEN + 1], bool *live)
{
    json_object *obj = NULL, *b = NULL;
    struct sh__conn *c;
    sh_err_t rc;

    channel_id[0] = '\0';
    if (live != NULL)
        *live = false;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = stream_load(c, stream_id, &obj, NULL, 0);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    json_object_object_get_ex(obj, "broadcaster", &b);
    snprintf(channel_id, SH__UUID_LEN + 1, "%s",
             sh__jstr(b, "id") != NULL ? sh__jstr(b, "id") : "");
    if (live != NULL)
        *live = strcmp(sh__jstr(obj, "status"), "LIVE") == 0;
    json_object_put(obj);
    return SH_OK;
}

/* ---- lists ------------------------------------------------------------- */

struct page_ctx {
    struct sh__page page;
    bool search;          /* cursor keys: [live, started, id] */
    bool no_total;        /* the caller reads no totalCount: no count(*) */
    int64_t total;
};

static int page_row(void *arg, const struct sh__row *row)
{
    struct page_ctx *x = arg;
    json_object *keys = json_object_new_array();
    int64_t k0 = x->search
        ? (strcmp(sh__row_text(row, 5, NULL), "LIVE") == 0 ? 1 : 0)
        : sh__row_int(row, 6);
    char *cursor = NULL;

    if (keys != NULL &&
        json_object_array_add(keys, json_object_new_int64(k0)) == 0 &&
        json_object_array_add(keys,
            json_object_new_int64(sh__row_int(row, 7))) == 0 &&
        json_object_array_add(keys,
            json_object_new_string(sh__row_text(row, 0, NULL))) == 0) {
        if (sh__cursor_encode(keys, &cursor) != SH_OK)
            cursor = NULL;
    } else {
        json_object_put(keys);
    }
    sh__page_add(&x->page, stream_row_obj(row), cursor);
    return 0;
}

static int count_cb(void *arg, const struct sh__row *row)
{
    *(int64_t *)arg = sh__row_int(row, 0);
    return 1;
}

/* Decode a [int, int, id] cursor. */
static sh_err_t cursor3(const char *after, bool *have, int64_t *k0,
                        int64_t *k1, char id[SH__UUID_LEN + 1], char *errbuf,
                        size_t errbuf_len)
{
    json_object *a = NULL, *e0, *e1, *e2;
    sh_err_t rc;

    *have = false;
    *k0 = *k1 = 0;
    id[0] = '\0';
    rc = sh__cursor_decode(after, 3, &a, errbuf, errbuf_len);
    if (rc != SH_OK || a == NULL)
        return rc;
    e0 = json_object_array_get_idx(a, 0);
    e1 = json_object_array_get_idx(a, 1);
    e2 = json_object_array_get_idx(a, 2);
    if (!json_object_is_type(e0, json_type_int) ||
        !json_object_is_type(e1, json_type_int) ||
        !json_object_is_type(e2, json_type_string) ||
        !sh__uuid_valid(json_object_get_string(e2))) {
        json_object_put(a);
        sh__errbuf(errbuf, errbuf_len, "after: not a valid cursor");
        return SH_EINVAL;
    }
    *k0 = json_object_get_int64(e0);
    *k1 = json_object_get_int64(e1);
    memcpy(id, json_object_get_string(e2), SH__UUID_LEN + 1);
    *have = true;
    json_object_put(a);
    return SH_OK;
}

/* Run a page query and its count on @c (released here), then finish the
 * list: the tail shared by the live list and search.  @nparams are the
 * page query's; the count query takes the first @ncount of them. */
static sh_err_t run_page(struct sh__conn *c, struct page_ctx *x,
                         const struct sh__sql *q, const struct sh__sql *qc,
                         const struct sh__val *p, size_t nparams,
                         size_t ncount, sh_stream_list_t **out,
                         char *errbuf, size_t errbuf_len)
{
    struct sh__list *l = NULL;
    sh_err_t rc;

    rc = sh__store_exec(c, q, p, nparams, page_row, x, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_OK && x->no_total)
        x->total = -1;
    else if (rc == SH_OK)
        rc = sh__store_exec(c, qc, p, ncount, count_cb, &x->total, NULL,
                            errbuf, errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK) {
        sh__page_drop(&x->page);
        return rc;
    }
    rc = sh__page_finish(&x->page, x->total, &l);
    if (rc == SH_OK)
        *out = (sh_stream_list_t *)(void *)l;
    return rc;
}

/* A live list page from the cache (services/cache.c): true with *@out;
 * on a miss *@t is the ticket for live_cache_put().  The text is
 * [list, cursors]: the list object and its cursors array. */
/* Per thread, for callers whose handles stay on it (sh__results_stay()):
 * the last page's parse, named by the cache's stamp of its text, so that
 * a hit on the same text parses nothing.  Freed at the thread's exit. */
struct live_memo {
    char key[160];
    uint64_t stamp;
    json_object *a;
};
static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;
static bool memo_ok;

static void memo_free(void *p)
{
    struct live_memo *m = p;

    json_object_put(m->a);
    free(m);
}

static void memo_init(void)
{
    memo_ok = pthread_key_create(&memo_key, memo_free) == 0;
}

static struct live_memo *live_memo(void)
{
    struct live_memo *m;

    if (!sh__results_stay() || pthread_once(&memo_once, memo_init) != 0 ||
        !memo_ok)
        return NULL;
    m = pthread_getspecific(memo_key);
    if (m == NULL && (m = calloc(1, sizeof *m)) != NULL &&
        pthread_setspecific(memo_key, m) != 0) {
        free(m);
        m = NULL;
    }
    return m;
}

static bool live_cached(sh_hub_t *hub, const char *key,
                        struct sh__cache_ticket *t, sh_stream_list_t **out)
{
    struct live_memo *memo = live_memo();
    json_object *a, *list, *cursors;
    struct sh__list *l;
    char *text = NULL;
    size_t len = 0;

    if (memo != NULL) {
        uint64_t stamp = strcmp(memo->key, key) == 0 ? memo->stamp : 0;
        if (!sh__cache_get_stamped(hub, SH__CACHE_LIVE, key, &stamp, &text,
                                   &len, t))
            return false;
        if (text != NULL) {             /* another text: parse and keep */
            json_object_put(memo->a);
            memo->a = json_tokener_parse(text);
            memo->stamp = memo->a != NULL ? stamp : 0;
            snprintf(memo->key, sizeof memo->key, "%s", key);
            free(text);
        }
        a = json_object_get(memo->a);
    } else {
        if (!sh__cache_get(hub, SH__CACHE_LIVE, key, &text, &len, t))
            return false;
        a = json_tokener_parse(text);
        free(text);
    }
    list = json_object_array_get_idx(a, 0);
    cursors = json_object_array_get_idx(a, 1);
    if (!json_object_is_type(a, json_type_array) ||
        !json_object_is_type(list, json_type_object) ||
        !json_object_is_type(cursors, json_type_array)) {
        json_object_put(a);
        return false;
    }
    l = sh__list_new(json_object_get(list));
    if (l != NULL)
        l->cursors = json_object_get(cursors);
    json_object_put(a);
    if (l == NULL)
        return false;
    *out = (sh_stream_list_t *)(void *)l;
    return true;
}

static void live_cache_put(sh_hub_t *hub, const char *key,
                           const struct sh__cache_ticket *t,
                           const sh_stream_list_t *out)
{
    const struct sh__list *l = (const struct sh__list *)(const void *)out;
    json_object *a = json_object_new_array();
    const char *txt;
    size_t len = 0;

    if (a != NULL && l->cursors != NULL &&
        json_object_array_add(a, json_object_get(l->obj)) == 0 &&
        json_object_array_add(a, json_object_get(l->cursors)) == 0 &&
        (txt = sh__jtext(a, &len)) != NULL)
        sh__cache_put(hub, SH__CACHE_LIVE, key, t, txt, len);
    json_object_put(a);
}

SH_API sh_err_t sh_stream_live_list(sh_hub_t *hub, int first,
                                    const char *after, const char *category,
                                    sh_stream_list_t **out, char *errbuf,
                                    size_t errbuf_len)
{
    return sh__stream_live_list_opt(hub, first, after, category,
                                    SH__LIST_TOTAL, out, errbuf, errbuf_len);
}

sh_err_t sh__stream_live_list_opt(sh_hub_t *hub, int first,
                                  const char *after, const char *category,
                                  unsigned want, sh_stream_list_t **out,
                                  char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char cid[SH__UUID_LEN + 1], key[160];
    struct sh__cache_ticket t;
    struct page_ctx x;
    struct sh__conn *c;
    struct sh__val p[9];
    int64_t k0, k1;
    bool have, keyed;
    int n;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    memset(&x, 0, sizeof x);
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL)
        return SH_EINVAL;
    if ((rc = sh__page_first(first, &n, errbuf, errbuf_len)) != SH_OK)
        return rc;
    if ((rc = cursor3(after, &have, &k0, &k1, cid, errbuf, errbuf_len)) !=
        SH_OK)
        return rc;
    if (category != NULL && strlen(category) > 4 * SH_STREAM_CATEGORY_MAX) {
        sh__errbuf(errbuf, errbuf_len, "category: too long");
        return SH_EINVAL;
    }
    x.no_total = (want & SH__LIST_TOTAL) == 0;
    /* The page's key: its arguments, the cursor decoded, and whether it
     * holds totalCount (a page without is never served to a caller that
     * reads it). */
    keyed = snprintf(key, sizeof key, "%d|%d|%d|%lld|%lld|%s|%d|%s", n,
                     x.no_total ? 0 : 1, have ? 1 : 0, (long long)k0,
                     (long long)k1, cid,
                     category != NULL ? 1 : 0,
                     category != NULL ? category : "") < (int)sizeof key;
    memset(&t, 0, sizeof t);
    if (keyed && live_cached(hub, key, &t, out))
        return SH_OK;
    if (!sh__page_init(&x.page, n))
        return SH_ENOMEM;
    /* A listing of everyone's streams: the replica (store_int.h). */
    if ((rc = sh__store_acquire_read(hub->store, NULL, &c)) != SH_OK) {
        sh__page_drop(&x.page);
        return rc;
    }
    sh__cache_from(c, &t);
    p[0] = sh__v_int(category != NULL ? 1 : 0);
    p[1] = sh__v_text(category != NULL ? category : "");
    p[2] = sh__v_int(have ? 1 : 0);
    p[3] = sh__v_int(k0);
    p[4] = sh__v_int(k0);
    p[5] = sh__v_int(k1);
    p[6] = sh__v_int(k1);
    p[7] = sh__v_text(cid);
    p[8] = sh__v_int(n + 1);
    rc = run_page(c, &x, &q_live, &q_live_count, p, 9, 2, out, errbuf,
                  errbuf_len);
    if (rc == SH_OK && keyed && sh__cache_fillable(&t))
        live_cache_put(hub, key, &t, *out);
    return rc;
}

/* Build the FTS5 query: each white-space separated word as a quoted
 * phrase ("" doubles a quote), joined by spaces (AND).  Words whose
 * characters the tokenizer drops entirely would make an empty phrase, so
 * only words holding at least one letter, digit or non-ASCII byte count.
 * Returns the number of words. */
static size_t fts_query(const char *q, char *buf, size_t cap)
{
    const unsigned char *s = (const unsigned char *)q;
    size_t o = 0, words = 0, i = 0;

    buf[0] = '\0';
    while (s[i] != '\0') {
        size_t st, e;
        bool useful = false;

        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
               s[i] == '\f' || s[i] == '\v')
            i++;
        st = i;
        while (s[i] != '\0' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
               s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            i++;
        e = i;
        if (e == st)
            break;
        for (size_t k = st; k < e; k++)
            if (s[k] >= 0x80 || (s[k] >= '0' && s[k] <= '9') ||
                ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'z'))
                useful = true;
        if (!useful)
            continue;
        /* worst case: every byte a quote (doubled) + 3 */
        if (o + 2 * (e - st) + 4 >= cap)
            break;
        if (words > 0)
            buf[o++] = ' ';
        buf[o++] = '"';
        for (size_t k = st; k < e; k++) {
            if (s[k] == '"')
                buf[o++] = '"';
            buf[o++] = (char)s[k];
        }
        buf[o++] = '"';
        buf[o] = '\0';
        words++;
    }
    return words;
}

SH_API sh_err_t sh_stream_search(sh_hub_t *hub, const char *query,
                                 int first, const char *after,
                                 sh_stream_list_t **out, char *errbuf,
                                 size_t errbuf_len)
{
    return sh__stream_search_opt(hub, query, first, after, SH__LIST_TOTAL,
                                 out, errbuf, errbuf_len);
}

sh_err_t sh__stream_search_opt(sh_hub_t *hub, const char *query, int first,
                               const char *after, unsigned want,
                               sh_stream_list_t **out, char *errbuf,
                               size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char cid[SH__UUID_LEN + 1], fq[2 * QUERY_MAX + 8];
    struct page_ctx x;
    struct sh__conn *c;
    struct sh__list *l = NULL;
    struct sh__val p[8];
    int64_t k0, k1;
    size_t qlen, cps;
    bool have;
    int n;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    memset(&x, 0, sizeof x);
    x.search = true;
    x.no_total = (want & SH__LIST_TOTAL) == 0;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL || query == NULL) {
        sh__errbuf(errbuf, errbuf_len, "query: missing");
        return SH_EINVAL;
    }
    qlen = strlen(query);
    if (qlen == 0 || qlen > QUERY_MAX || !sh__text_count(query, qlen, &cps)) {
        sh__errbuf(errbuf, errbuf_len, "query: 1..%d bytes of UTF-8",
                   QUERY_MAX);
        return SH_EINVAL;
    }
    if ((rc = sh__page_first(first, &n, errbuf, errbuf_len)) != SH_OK)
        return rc;
    if ((rc = cursor3(after, &have, &k0, &k1, cid, errbuf, errbuf_len)) !=
        SH_OK)
        return rc;
    if (!sh__page_init(&x.page, n))
        return SH_ENOMEM;
    if (fts_query(query, fq, sizeof fq) == 0) {
        rc = sh__page_finish(&x.page, 0, &l);
        if (rc == SH_OK)
            *out = (sh_stream_list_t *)(void *)l;
        return rc;
    }
    /* A listing of everyone's streams: the replica (store_int.h). */
    if ((rc = sh__store_acquire_read(hub->store, NULL, &c)) != SH_OK) {
        sh__page_drop(&x.page);
        return rc;
    }
    p[0] = sh__v_text(fq);
    p[1] = sh__v_int(have ? 1 : 0);
    p[2] = sh__v_int(k0);
    p[3] = sh__v_int(k0);
    p[4] = sh__v_int(k1);
    p[5] = sh__v_int(k1);
    p[6] = sh__v_text(cid);
    p[7] = sh__v_int(n + 1);
    return run_page(c, &x, &q_search, &q_search_count, p, 8, 1, out, errbuf,
                    errbuf_len);
}

/* ---- viewers ----------------------------------------------------------- */

static unsigned vhash(const char *id)
{
    unsigned h = 2166136261u;

    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h & (VBUCKETS - 1);
}

static struct vent **vfind(struct sh__streams *st, const char *id)
{
    struct vent **pp = &st->b[vhash(id)];

    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void vent_forget(sh_hub_t *hub, const char *id)
{
    struct sh__streams *st = hub->streams;
    struct vent **pp, *e;

    if (st == NULL || id == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    pp = vfind(st, id);
    e = *pp;
    if (e != NULL)
        *pp = e->next;
    pthread_mutex_unlock(&st->mu);
    free(e);
    sh__stats_forget(hub, id);
}

/* Publish `stream.viewers` for @id with what the store holds now. */
static void viewers_publish(sh_hub_t *hub, const char *id)
{
    json_object *obj = NULL;
    struct sh__conn *c;

    if (sh__store_acquire(hub->store, &c) != SH_OK)
        return;
    if (stream_load(c, id, &obj, NULL, 0) != SH_OK)
        obj = NULL;
    sh__store_release(c);
    if (obj != NULL)
        publish_stream(hub, "stream.viewers", obj, false);
    json_object_put(obj);
}

SH_API sh_err_t sh_stream_set_viewers(sh_hub_t *hub, const char *stream_id,
                                      int64_t count, char *errbuf,
                                      size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    sh_err_t rc;

    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (count < 0 || count > INT32_MAX) {
        sh__errbuf(errbuf, errbuf_len, "count: %lld is out of range",
                   (long long)count);
        return SH_EINVAL;
    }
    if (!sh__uuid_valid(stream_id)) {
        sh__errbuf(errbuf, errbuf_len, "no such live stream");
        return SH_ENOTFOUND;
    }
    if (hub->cluster != NULL) {
        /* @count is this node's; the stream's is the sum over the live
         * nodes.  Redis unreachable: the stored count stays as it is,
         * and the gateway writes its counts again later. */
        rc = sh__cluster_count(hub, SH__COUNT_VIEWERS, stream_id, true,
                               count, 0, NULL, &count, errbuf, errbuf_len);
        if (rc != SH_OK) {
            sh__cluster_resync_later(hub);
            return rc;
        }
        return sh__streams_viewers_sync(hub, stream_id, count, errbuf,
                                        errbuf_len);
    }
    return sh__streams_viewers_store(hub, stream_id, count, errbuf,
                                     errbuf_len);
}

sh_err_t sh__streams_viewers_sync(sh_hub_t *hub, const char *stream_id,
                                  int64_t total, char *errbuf,
                                  size_t errbuf_len)
{
    sh_err_t rc;

    /* Nodes store the sums they computed in whatever order their writes
     * reach the store, so an older sum may land last.  Each writer reads
     * the sum again after its write and writes again until they agree:
     * the last write of all is then of the latest sum. */
    for (int round = 0; round < 4; round++) {
        int64_t now = 0;

        if (total > INT32_MAX)
            total = INT32_MAX;
        rc = sh__streams_viewers_store(hub, stream_id, total, errbuf,
                                       errbuf_len);
        if (rc != SH_OK)
            return rc;
        if (sh__cluster_total(hub, SH__COUNT_VIEWERS, stream_id, &now, NULL,
                              0) != SH_OK)
            break;
        if (now == total)
            return SH_OK;
        total = now;
    }
    /* Redis failed, or the count keeps moving: the gateway writes its
     * counts again at its next tick. */
    sh__cluster_resync_later(hub);
    return SH_OK;
}

sh_err_t sh__streams_viewers_store(sh_hub_t *hub, const char *stream_id,
                                   int64_t count, char *errbuf,
                                   size_t errbuf_len)
{
    struct sh__streams *st = hub->streams;
    struct sh__conn *c;
    struct sh__val p[4];
    struct vent **pp, *e;
    int64_t changes = 0, now;
    bool publish = false;
    sh_err_t rc;

    if (!sh__uuid_valid(stream_id)) {
        sh__errbuf(errbuf, errbuf_len, "no such live stream");
        return SH_ENOTFOUND;
    }
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    p[0] = sh__v_int(count);
    p[1] = sh__v_int(count);
    p[2] = sh__v_int(count);
    p[3] = sh__v_text(stream_id);
    rc = sh__store_exec(c, &q_viewers, p, 4, NULL, NULL, &changes, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    if (changes == 0) {
        sh__errbuf(errbuf, errbuf_len, "no such live stream");
        return SH_ENOTFOUND;
    }
    sh__cache_invalidate(hub, SH__CACHE_STREAM, stream_id);
    if (st == NULL)
        return SH_OK;
    now = sh__mono_ms();
    pthread_mutex_lock(&st->mu);
    pp = vfind(st, stream_id);
    e = *pp;
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e != NULL) {
            memcpy(e->id, stream_id, SH__UUID_LEN + 1);
            e->pending = -1;
            *pp = e;
        }
    }
    if (e == NULL) {
        publish = true;          /* no memory to coalesce: just publish */
    } else if (e->last_pub_ms == 0 || now - e->last_pub_ms >= 1000) {
        e->last_pub_ms = now;
        e->pending = -1;
        publish = true;
    } else {
        e->pending = count;
    }
    pthread_mutex_unlock(&st->mu);
    if (publish)
        viewers_publish(hub, stream_id);
    return SH_OK;
}

SH_API int sh_stream_flush_viewers(sh_hub_t *hub)
{
    SH__HUB_CALL(hub);
    struct sh__streams *st;
    char (*due)[SH__UUID_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    int64_t now;

    if (sh__hub_live(hub) != SH_OK || hub->streams == NULL)
        return 0;
    st = hub->streams;
    now = sh__mono_ms();
    pthread_mutex_lock(&st->mu);
    for (size_t b = 0; b < VBUCKETS; b++) {
        for (struct vent *e = st->b[b]; e != NULL; e = e->next) {
            if (e->pending < 0 || now - e->last_pub_ms < 1000)
                continue;
            if (n == cap) {
                size_t nc = cap != 0 ? cap * 2 : 16;
                void *d = realloc(due, nc * sizeof *due);
                if (d == NULL)
                    goto done;
                due = d;
                cap = nc;
            }
            memcpy(due[n++], e->id, SH__UUID_LEN + 1);
            e->pending = -1;
            e->last_pub_ms = now;
        }
    }
done:
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++)
        viewers_publish(hub, due[i]);
    free(due);
    return (int)n;
}

/* ---- area state -------------------------------------------------------- */

struct sh__stats *sh__streams_stats(sh_hub_t *hub)
{
    return hub != NULL && hub->streams != NULL ? hub->streams->stats : NULL;
}

sh_err_t sh__streams_init(sh_hub_t *hub, char *errbuf, size_t errbuf_len)
{
    struct sh__streams *st = calloc(1, sizeof *st);

    if (st == NULL || pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        sh__errbuf(errbuf, errbuf_len, "streams: out of memory");
        return SH_ENOMEM;
    }
    if (sh__stats_new(&st->stats) != SH_OK) {
        pthread_mutex_destroy(&st->mu);
        free(st);
        sh__errbuf(errbuf, errbuf_len, "streams: out of memory");
        return SH_ENOMEM;
    }
    hub->streams = st;
    return SH_OK;
}

void sh__streams_fini(sh_hub_t *hub)
{
    struct sh__streams *st = hub->streams;

    if (st == NULL)
        return;
    sh__stats_flush(hub);
    hub->streams = NULL;
    for (size_t b = 0; b < VBUCKETS; b++) {
        struct vent *e = st->b[b];
        while (e != NULL) {
            struct vent *nx = e->next;
            free(e);
            e = nx;
        }
    }
    sh__stats_free(st->stats);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- accessors --------------------------------------------------------- */

SH_API const char *sh_stream_id(const sh_stream_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "id") : NULL;
}

static json_object *broadcaster(const sh_stream_t *s)
{
    json_object *b = NULL;

    if (s != NULL)
        json_object_object_get_ex(s->obj, "broadcaster", &b);
    return b;
}

SH_API const char *sh_stream_broadcaster_id(const sh_stream_t *s)
{
    return sh__jstr(broadcaster(s), "id");
}

SH_API const char *sh_stream_broadcaster_username(const sh_stream_t *s)
{
    return sh__jstr(broadcaster(s), "username");
}

SH_API const char *sh_stream_title(const sh_stream_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "title") : NULL;
}

SH_API const char *sh_stream_category(const sh_stream_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "category") : NULL;
}

SH_API bool sh_stream_is_live(const sh_stream_t *s)
{
    const char *st = s != NULL ? sh__jstr(s->obj, "status") : NULL;

    return st != NULL && strcmp(st, "LIVE") == 0;
}

SH_API int64_t sh_stream_viewer_count(const sh_stream_t *s)
{
    return s != NULL ? sh__jint(s->obj, "viewerCount") : 0;
}

SH_API const char *sh_stream_started_at(const sh_stream_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "startedAt") : NULL;
}

SH_API const char *sh_stream_ended_at(const sh_stream_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "endedAt") : NULL;
}

SH_API const char *sh_stream_json(const sh_stream_t *s, size_t *len)
{
    return sh__jtext(s != NULL ? s->obj : NULL, len);
}

SH_API void sh_stream_free(sh_stream_t *s)
{
    sh__jh_free((struct sh__jh *)(void *)s);
}

SH_API size_t sh_stream_list_count(const sh_stream_list_t *l)
{
    return l != NULL ? sh__list_count(&l->l) : 0;
}

SH_API const sh_stream_t *sh_stream_list_at(const sh_stream_list_t *l,
                                            size_t i)
{
    return l != NULL ? (const sh_stream_t *)(const void *)
                       sh__list_at(&l->l, i) : NULL;
}

SH_API const char *sh_stream_list_cursor_at(const sh_stream_list_t *l,
                                            size_t i)
{
    return l != NULL ? sh__list_cursor_at(&l->l, i) : NULL;
}

SH_API const char *sh_stream_list_next_cursor(const sh_stream_list_t *l)
{
    return l != NULL ? sh__list_next_cursor(&l->l) : NULL;
}

SH_API bool sh_stream_list_has_next(const sh_stream_list_t *l)
{
    return sh_stream_list_next_cursor(l) != NULL;
}

SH_API int64_t sh_stream_list_total_count(const sh_stream_list_t *l)
{
    return l != NULL ? sh__jint(l->l.obj, "totalCount") : 0;
}

SH_API const char *sh_stream_list_json(const sh_stream_list_t *l,
                                       size_t *len)
{
    return sh__jtext(l != NULL ? l->l.obj : NULL, len);
}

SH_API void sh_stream_list_free(sh_stream_list_t *l)
{
    sh__list_free(l != NULL ? &l->l : NULL);
}
