/* libstreamhub/services/notifications.c: a user's notifications
 * (notifications.h) and the internal calls that create them
 * (services_int.h: sh__notify_*, mentions).
 *
 * A notification is stored first, then published as a `notification` event
 * on user:<id> with the stored row's JSON, so that what a client receives
 * live and what it reads back later are the same object with the same id.
 * Callers inside a transaction insert with sh__notify_insert_c() and publish
 * after their commit (nothing is published for a rolled-back row).
 *
 * Lists of ids (mark read, mention look-ups) are bound as one JSON array
 * parameter and expanded by the database (json_each in SQLite,
 * jsonb_array_elements_text in PostgreSQL): one statement whatever their
 * number, and no SQL text built at run time.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/notifications.h"
#include "services_int.h"

#define MARK_MAX_IDS 1000
#define MENTION_MAX 32        /* distinct names looked up per message */

struct sh_notification { json_object *obj; };
struct sh_notification_list { struct sh__list l; };

static const struct sh__sql q_insert = {
    "INSERT INTO notifications (id, user_id, type, data, read, created_at) "
    "VALUES (?, ?, ?, ?, 0, ?)", NULL, NULL
};
static const struct sh__sql q_list = {
    "SELECT id, type, data, read, created_at FROM notifications "
    "WHERE user_id = ? AND (? = 0 OR read = 0) "
    "AND (? = 0 OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?", NULL, NULL
};
static const struct sh__sql q_count = {
    "SELECT count(*), coalesce(sum(CASE WHEN read = 0 THEN 1 ELSE 0 END), 0) "
    "FROM notifications WHERE user_id = ?", NULL, NULL
};
static const struct sh__sql q_unread = {
    "SELECT count(*) FROM notifications WHERE user_id = ? AND read = 0",
    NULL, NULL
};
static const struct sh__sql q_mark_all = {
    "UPDATE notifications SET read = 1 WHERE user_id = ? AND read = 0",
    NULL, NULL
};
static const struct sh__sql q_mark_ids = {
    "UPDATE notifications SET read = 1 WHERE user_id = ? AND read = 0 "
    "AND id IN (SELECT value FROM json_each(?))",
    NULL,
    "UPDATE notifications SET read = 1 WHERE user_id = ? AND read = 0 "
    "AND id::text IN (SELECT jsonb_array_elements_text(?::jsonb))"
};
static const struct sh__sql q_users_by_names = {
    "SELECT id FROM users WHERE username_lc IN "
    "(SELECT value FROM json_each(?))",
    NULL,
    "SELECT id FROM users WHERE username_lc IN "
    "(SELECT jsonb_array_elements_text(?::jsonb))"
};

static bool type_valid(const char *t)
{
    static const char *const types[] = {
        "STREAM_LIVE", "NEW_FOLLOWER", "RAID_INCOMING", "SUBSCRIPTION_NEW",
        "MENTION"
    };

    for (size_t i = 0; t != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

/* The Notification JSON; takes @data.  NULL on ENOMEM. */
static json_object *notif_obj(const char *id, const char *type,
                              json_object *data, bool read, int64_t ms)
{
    json_object *o = json_object_new_object();

    if (o == NULL) {
        json_object_put(data);
        return NULL;
    }
    if (!sh__jset_str(o, "id", id) || !sh__jset_str(o, "type", type) ||
        !sh__jset(o, "data", data) || !sh__jset_bool(o, "read", read) ||
        !sh__jset_time(o, "createdAt", ms, false)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

sh_err_t sh__notify_insert_c(struct sh__conn *c, const char *user_id,
                             const char *type, json_object *data,
                             json_object **out, char *errbuf,
                             size_t errbuf_len)
{
    char id[SH__UUID_LEN + 1];
    int64_t now = sh__now_ms();
    struct sh__val p[5];
    const char *txt;
    json_object *o;
    sh_err_t rc;

    *out = NULL;
    if (data == NULL)
        data = json_object_new_object();
    if (data == NULL)
        return SH_ENOMEM;
    if (!sh__uuid_valid(user_id) || !type_valid(type) ||
        !json_object_is_type(data, json_type_object)) {
        json_object_put(data);
        sh__errbuf(errbuf, errbuf_len, "notification: bad user or type");
        return SH_EINVAL;
    }
    sh__uuid4(id);
    txt = sh__jtext(data, NULL);
    if (txt == NULL) {
        json_object_put(data);
        return SH_ENOMEM;
    }
    p[0] = sh__v_text(id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_text(type);
    p[3] = sh__v_text(txt);
    p[4] = sh__v_int(now);
    rc = sh__store_exec(c, &q_insert, p, 5, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc != SH_OK) {
        json_object_put(data);
        return rc;
    }
    o = notif_obj(id, type, data, false, now);
    if (o == NULL)
        return SH_ENOMEM;
    *out = o;
    return SH_OK;
}

void sh__notify_publish(sh_hub_t *hub, const char *user_id,
                        json_object *notif)
{
    char channel[SH_CHANNEL_MAX + 1];
    char err[SH_ERRBUF_SIZE];
    sh_err_t rc;

    if (notif == NULL)
        return;
    /* Stored (committed) before it is published: its unread count grew. */
    sh__cache_invalidate(hub, SH__CACHE_UNREAD, user_id);
    /* Ids are UUIDs; a longer one is not ours to publish under. */
    if (strlen(user_id) > SH_CHANNEL_MAX - 5) {
        json_object_put(notif);
        return;
    }
    memcpy(channel, "user:", 5);
    memcpy(channel + 5, user_id, strlen(user_id) + 1);
    rc = sh__bus_publish(hub->bus, channel, "notification", notif, NULL,
                         err, sizeof err);
    if (rc != SH_OK)
        sh__log_kv(&hub->log, SH_LOG_WARN, "notification not published",
                   "channel", channel, "error", err, (char *)NULL);
}

sh_err_t sh__notify_create(sh_hub_t *hub, const char *user_id,
                           const char *type, json_object *data,
                           char *errbuf, size_t errbuf_len)
{
    struct sh__conn *c;
    json_object *o = NULL;
    sh_err_t rc;

    rc = sh__store_acquire(hub->store, &c);
    if (rc != SH_OK) {
        json_object_put(data);
        return rc;
    }
    rc = sh__notify_insert_c(c, user_id, type, data, &o, errbuf,
                             errbuf_len);
    sh__store_release(c);
    if (rc == SH_OK)
        sh__notify_publish(hub, user_id, o);
    return rc;
}

/* ---- listing ----------------------------------------------------------- */

struct list_ctx {
    struct sh__page page;
    int64_t total, unread;
};

static int list_row(void *arg, const struct sh__row *row)
{
    struct list_ctx *x = arg;
    const char *id = sh__row_text(row, 0, NULL);
    const char *type = sh__row_text(row, 1, NULL);
    const char *dtxt = sh__row_text(row, 2, NULL);
    int64_t ms = sh__row_int(row, 4);
    json_object *data = dtxt != NULL ? json_tokener_parse(dtxt) : NULL;
    char *cursor = NULL;

    if (data == NULL)
        data = json_object_new_object();
    if (sh__cursor_ti_encode(ms, id, &cursor) != SH_OK)
        cursor = NULL;
    sh__page_add(&x->page, notif_obj(id, type, data, sh__row_int(row, 3) != 0,
                                     ms), cursor);
    return 0;
}

static int count2_row(void *arg, const struct sh__row *row)
{
    struct list_ctx *x = arg;

    x->total = sh__row_int(row, 0);
    x->unread = sh__row_int(row, 1);
    return 1;
}

SH_API sh_err_t sh_notification_list(sh_hub_t *hub, const char *actor_id,
                                     int first, const char *after,
                                     bool unread_only,
                                     sh_notification_list_t **out,
                                     char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char cid[SH__UUID_LEN + 1];
    struct list_ctx x;
    struct sh__conn *c = NULL;
    struct sh__list *l = NULL;
    struct sh__val p[7];
    bool have;
    int64_t ct;
    int n;
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    memset(&x, 0, sizeof x);
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out must not be NULL");
        return SH_EINVAL;
    }
    if ((rc = sh__page_first(first, &n, errbuf, errbuf_len)) != SH_OK)
        return rc;
    rc = sh__cursor_ti_decode(after, &have, &ct, cid, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    if (!sh__page_init(&x.page, n)) {
        rc = SH_ENOMEM;
        goto out;
    }
    p[0] = sh__v_text(actor_id);
    p[1] = sh__v_int(unread_only ? 1 : 0);
    p[2] = sh__v_int(have ? 1 : 0);
    p[3] = sh__v_int(ct);
    p[4] = sh__v_int(ct);
    p[5] = sh__v_text(cid);
    p[6] = sh__v_int(n + 1);
    rc = sh__store_exec(c, &q_list, p, 7, list_row, &x, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_exec(c, &q_count, p, 1, count2_row, &x, NULL, errbuf,
                            errbuf_len);
    if (rc != SH_OK) {
        sh__page_drop(&x.page);
        goto out;
    }
    if (!sh__jset_int(x.page.list, "unreadCount", x.unread))
        x.page.oom = true;
    rc = sh__page_finish(&x.page, unread_only ? x.unread : x.total, &l);
    if (rc == SH_OK)
        *out = (sh_notification_list_t *)(void *)l;
out:
    sh__store_release(c);
    return rc;
}

static int count_row(void *arg, const struct sh__row *row)
{
    *(int64_t *)arg = sh__row_int(row, 0);
    return 1;
}

SH_API sh_err_t sh_notification_unread_count(sh_hub_t *hub,
                                             const char *actor_id,
                                             int64_t *out, char *errbuf,
                                             size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__cache_ticket t;
    struct sh__conn *c;
    struct sh__val p[1];
    int64_t n = 0;
    char *text = NULL;
    size_t len = 0;
    sh_err_t rc;

    if (out != NULL)
        *out = 0;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (out == NULL)
        return SH_EINVAL;
    /* Only a count the store gave for an existing actor is cached. */
    if (sh__cache_get(hub, SH__CACHE_UNREAD, actor_id, &text, &len, &t)) {
        char *end = NULL;
        long long v = strtoll(text, &end, 10);
        bool good = end != text && *end == '\0' && v >= 0;
        free(text);
        if (good) {
            *out = v;
            return SH_OK;
        }
    }
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len);
    if (rc == SH_OK) {
        p[0] = sh__v_text(actor_id);
        rc = sh__store_exec(c, &q_unread, p, 1, count_row, &n, NULL, errbuf,
                            errbuf_len);
    }
    sh__store_release(c);
    if (rc == SH_OK) {
        char num[24];
        *out = n;
        snprintf(num, sizeof num, "%lld", (long long)n);
        sh__cache_put(hub, SH__CACHE_UNREAD, actor_id, &t, num, strlen(num));
    }
    return rc;
}

SH_API sh_err_t sh_notification_mark_read(sh_hub_t *hub,
                                          const char *actor_id,
                                          const char *const *ids,
                                          size_t nids, int64_t *changed,
                                          char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    json_object *arr = NULL;
    struct sh__conn *c;
    struct sh__val p[2];
    int64_t ch = 0;
    sh_err_t rc;

    if (changed != NULL)
        *changed = 0;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (ids != NULL) {
        if (nids > MARK_MAX_IDS) {
            sh__errbuf(errbuf, errbuf_len, "ids: more than %d",
                       MARK_MAX_IDS);
            return SH_EINVAL;
        }
        arr = json_object_new_array();
        if (arr == NULL)
            return SH_ENOMEM;
        for (size_t i = 0; i < nids; i++) {
            if (ids[i] == NULL) {
                json_object_put(arr);
                sh__errbuf(errbuf, errbuf_len, "ids[%zu] is NULL", i);
                return SH_EINVAL;
            }
            /* Not a UUID: can match nothing, so it need not be sent. */
            if (!sh__uuid_valid(ids[i]))
                continue;
            if (json_object_array_add(arr,
                                      json_object_new_string(ids[i])) != 0) {
                json_object_put(arr);
                return SH_ENOMEM;
            }
        }
    }
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK) {
        json_object_put(arr);
        return rc;
    }
    rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len);
    if (rc == SH_OK) {
        p[0] = sh__v_text(actor_id);
        if (arr == NULL) {
            rc = sh__store_exec(c, &q_mark_all, p, 1, NULL, NULL, &ch,
                                errbuf, errbuf_len);
        } else if (json_object_array_length(arr) > 0) {
            p[1] = sh__v_text(sh__jtext(arr, NULL));
            rc = sh__store_exec(c, &q_mark_ids, p, 2, NULL, NULL, &ch,
                                errbuf, errbuf_len);
        }
    }
    sh__store_release(c);
    json_object_put(arr);
    if (rc == SH_OK && ch > 0)
        sh__cache_invalidate(hub, SH__CACHE_UNREAD, actor_id);
    if (rc == SH_OK && changed != NULL)
        *changed = ch;
    return rc;
}

/* ---- mentions ---------------------------------------------------------- */

static bool name_char(unsigned char ch)
{
    return isascii(ch) && (isalnum(ch) || ch == '_');
}

struct ids_ctx {
    char (*ids)[SH__UUID_LEN + 1];
    size_t n, cap;
};

static int ids_row(void *arg, const struct sh__row *row)
{
    struct ids_ctx *x = arg;
    const char *id = sh__row_text(row, 0, NULL);

    if (x->n < x->cap && id != NULL && strlen(id) == SH__UUID_LEN)
        memcpy(x->ids[x->n++], id, SH__UUID_LEN + 1);
    return 0;
}

int sh__notify_mentions(sh_hub_t *hub, const char *stream_id,
                        const char *author_id, const char *text, size_t len,
                        json_object *message)
{
    char ids[MENTION_MAX][SH__UUID_LEN + 1];
    json_object *names, *made[MENTION_MAX];
    struct ids_ctx x = { ids, 0, MENTION_MAX };
    const unsigned char *t = (const unsigned char *)text;
    struct sh__conn *c;
    struct sh__val p[1];
    size_t i = 0, nmade = 0;
    sh_err_t rc;

    if (hub == NULL || text == NULL || author_id == NULL)
        return -(int)SH_EINVAL;
    names = json_object_new_array();
    if (names == NULL)
        return -(int)SH_ENOMEM;
    while (i < len && json_object_array_length(names) < MENTION_MAX) {
        size_t s, e;
        char name[26];
        bool dup = false;

        if (t[i] != '@' || (i > 0 && name_char(t[i - 1]))) {
            i++;
            continue;
        }
        s = e = i + 1;
        while (e < len && name_char(t[e]))
            e++;
        i = e;
        if (e - s < 3 || e - s > 25)
            continue;
        for (size_t k = 0; k < e - s; k++)
            name[k] = (char)tolower(t[s + k]);
        name[e - s] = '\0';
        for (size_t k = 0; k < json_object_array_length(names); k++)
            if (strcmp(json_object_get_string(
                    json_object_array_get_idx(names, k)), name) == 0)
                dup = true;
        if (!dup)
            json_object_array_add(names, json_object_new_string(name));
    }
    if (json_object_array_length(names) == 0) {
        json_object_put(names);
        return 0;
    }
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK) {
        json_object_put(names);
        return -(int)rc;
    }
    p[0] = sh__v_text(sh__jtext(names, NULL));
    rc = sh__store_exec(c, &q_users_by_names, p, 1, ids_row, &x, NULL, NULL,
                        0);
    json_object_put(names);
    if (rc == SH_OK)
        rc = sh__store_begin(c, NULL, 0);
    for (size_t k = 0; rc == SH_OK && k < x.n; k++) {
        json_object *data;

        if (strcmp(ids[k], author_id) == 0)
            continue;
        data = message != NULL ? NULL : json_object_new_object();
        if (message != NULL && json_object_deep_copy(message, &data,
                                                     NULL) != 0)
            data = NULL;
        if (data == NULL) {
            rc = SH_ENOMEM;
            break;
        }
        if (message == NULL) {
            sh__jset_str(data, "streamId", stream_id);
            sh__jset_str(data, "authorId", author_id);
        }
        rc = sh__notify_insert_c(c, ids[k], "MENTION", data, &made[nmade],
                                 NULL, 0);
        if (rc == SH_OK)
            memmove(ids[nmade++], ids[k], SH__UUID_LEN + 1);
    }
    if (rc == SH_OK)
        rc = sh__store_commit(c, NULL, 0);
    else
        sh__store_rollback(c);
    sh__store_release(c);
    for (size_t k = 0; k < nmade; k++) {
        if (rc == SH_OK)
            sh__notify_publish(hub, ids[k], made[k]);
        else
            json_object_put(made[k]);
    }
    return rc == SH_OK ? (int)nmade : -(int)rc;
}

/* ---- accessors --------------------------------------------------------- */

SH_API const char *sh_notification_id(const sh_notification_t *n)
{
    return n != NULL ? sh__jstr(n->obj, "id") : NULL;
}

SH_API const char *sh_notification_type(const sh_notification_t *n)
{
    return n != NULL ? sh__jstr(n->obj, "type") : NULL;
}

SH_API bool sh_notification_read(const sh_notification_t *n)
{
    return n != NULL && sh__jbool(n->obj, "read");
}

SH_API const char *sh_notification_data_json(const sh_notification_t *n,
                                             size_t *len)
{
    json_object *d = NULL;

    if (n != NULL)
        json_object_object_get_ex(n->obj, "data", &d);
    return sh__jtext(d, len);
}

SH_API const char *sh_notification_json(const sh_notification_t *n,
                                        size_t *len)
{
    return sh__jtext(n != NULL ? n->obj : NULL, len);
}

SH_API size_t sh_notification_list_count(const sh_notification_list_t *l)
{
    return l != NULL ? sh__list_count(&l->l) : 0;
}

SH_API const sh_notification_t *
sh_notification_list_at(const sh_notification_list_t *l, size_t i)
{
    return l != NULL ? (const sh_notification_t *)(const void *)
                       sh__list_at(&l->l, i) : NULL;
}

SH_API const char *
sh_notification_list_cursor_at(const sh_notification_list_t *l, size_t i)
{
    return l != NULL ? sh__list_cursor_at(&l->l, i) : NULL;
}

SH_API const char *
sh_notification_list_next_cursor(const sh_notification_list_t *l)
{
    return l != NULL ? sh__list_next_cursor(&l->l) : NULL;
}

SH_API bool sh_notification_list_has_next(const sh_notification_list_t *l)
{
    return sh_notification_list_next_cursor(l) != NULL;
}

SH_API int64_t
sh_notification_list_total_count(const sh_notification_list_t *l)
{
    return l != NULL ? sh__jint(l->l.obj, "totalCount") : 0;
}

SH_API int64_t
sh_notification_list_unread_count(const sh_notification_list_t *l)
{
    return l != NULL ? sh__jint(l->l.obj, "unreadCount") : 0;
}

SH_API const char *
sh_notification_list_json(const sh_notification_list_t *l, size_t *len)
{
    return sh__jtext(l != NULL ? l->l.obj : NULL, len);
}

SH_API void sh_notification_list_free(sh_notification_list_t *l)
{
    /* struct sh_notification_list begins with its struct sh__list, which
     * sh__page_finish() allocated. */
    sh__list_free(l != NULL ? &l->l : NULL);
}
