/* libstreamhub/services/follows.c: follows (follows.h).
 *
 * A follow is one row of `follows`; following is idempotent (INSERT ... ON
 * CONFLICT DO NOTHING, and only a row that was really inserted notifies the
 * followed user and counts in newFollowers of their live stream).  The
 * insert, the statistic and the notification share one transaction; the
 * notification is published after the commit, then the chat area is told
 * (sh__chat_follow_changed) so that followers-only chat sees the change at
 * once.
 *
 * Lists page by (follow time, user id) descending: the cursor is the
 * (time, id) pair of the last row (services_util.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/follows.h"
#include "chat_int.h"
#include "outbox_int.h"
#include "services_int.h"

struct sh_user_list { struct sh__list l; };

static const struct sh__sql q_follow = {
    "INSERT INTO follows (follower_id, followed_id, created_at) "
    "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", NULL, NULL
};
static const struct sh__sql q_unfollow = {
    "DELETE FROM follows WHERE follower_id = ? AND followed_id = ?",
    NULL, NULL
};
static const struct sh__sql q_is = {
    "SELECT 1 FROM follows WHERE follower_id = ? AND followed_id = ?",
    NULL, NULL
};
static const struct sh__sql q_bump = {
    "UPDATE stream_stats SET new_followers = new_followers + 1 "
    "WHERE stream_id IN (SELECT id FROM streams WHERE broadcaster_id = ? "
    "AND status = 'LIVE')", NULL, NULL
};
static const struct sh__sql q_counts = {
    "SELECT (SELECT count(*) FROM follows WHERE followed_id = ?), "
    "(SELECT count(*) FROM follows WHERE follower_id = ?)", NULL, NULL
};
static const struct sh__sql q_followers = {
    "SELECT u.id, u.username, u.created_at, f.created_at FROM follows f "
    "JOIN users u ON u.id = f.follower_id WHERE f.followed_id = ? "
    "AND (? = 0 OR f.created_at < ? OR (f.created_at = ? AND u.id < ?)) "
    "ORDER BY f.created_at DESC, u.id DESC LIMIT ?", NULL, NULL
};
static const struct sh__sql q_following = {
    "SELECT u.id, u.username, u.created_at, f.created_at FROM follows f "
    "JOIN users u ON u.id = f.followed_id WHERE f.follower_id = ? "
    "AND (? = 0 OR f.created_at < ? OR (f.created_at = ? AND u.id < ?)) "
    "ORDER BY f.created_at DESC, u.id DESC LIMIT ?", NULL, NULL
};

/* Common checks of follow/unfollow: actor, target, not oneself. */
static sh_err_t check_pair(struct sh__conn *c, const char *actor_id,
                           const char *user_id, char *name, size_t name_len,
                           char *errbuf, size_t errbuf_len)
{
    unsigned roles;
    sh_err_t rc;

    rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (user_id != NULL && strcmp(actor_id, user_id) == 0) {
        sh__errbuf(errbuf, errbuf_len, "cannot follow oneself");
        return SH_EINVAL;
    }
    if (name != NULL) {
        rc = sh__user_name_c(c, actor_id, name, name_len, errbuf,
                             errbuf_len);
        if (rc != SH_OK)
            return rc;
    }
    return sh__user_roles_c(c, user_id, &roles, errbuf, errbuf_len);
}

SH_API sh_err_t sh_follow(sh_hub_t *hub, const char *actor_id,
                          const char *user_id, bool *created, char *errbuf,
                          size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char name[64];
    json_object *notif = NULL, *data;
    struct sh__conn *c;
    struct sh__val p[3];
    int64_t changes = 0;
    sh_err_t rc;

    if (created != NULL)
        *created = false;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = check_pair(c, actor_id, user_id, name, sizeof name, errbuf,
                    errbuf_len);
    if (rc != SH_OK)
        goto out;
    if ((rc = sh__store_begin(c, errbuf, errbuf_len)) != SH_OK)
        goto out;
    p[0] = sh__v_text(actor_id);
    p[1] = sh__v_text(user_id);
    p[2] = sh__v_int(sh__now_ms());
    rc = sh__store_exec(c, &q_follow, p, 3, NULL, NULL, &changes, errbuf,
                        errbuf_len);
    if (rc == SH_OK && changes > 0)
        rc = sh__store_exec(c, &q_bump, &p[1], 1, NULL, NULL, NULL, errbuf,
                            errbuf_len);
    if (rc == SH_OK && changes > 0) {
        data = json_object_new_object();
        if (data == NULL ||
            !sh__jset(data, "follower", sh__juser_ref(actor_id, name))) {
            json_object_put(data);
            rc = SH_ENOMEM;
        } else {
            rc = sh__notify_insert_c(c, user_id, "NEW_FOLLOWER", data,
                                     &notif, errbuf, errbuf_len);
        }
        if (rc == SH_OK)
            rc = sh__outbox_add_obj(hub, c, "user:", user_id,
                                    "user.new_follower", notif, errbuf,
                                    errbuf_len);
    }
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
out:
    sh__store_release(c);
    if (rc != SH_OK) {
        json_object_put(notif);
        return rc;
    }
    /* Both users' lists and counts changed: read them on the primary. */
    sh__store_wrote(hub->store, actor_id);
    sh__store_wrote(hub->store, user_id);
    /* Both users' counts changed, before the response. */
    if (changes > 0) {
        sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, actor_id);
        sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, user_id);
    }
    if (changes > 0) {
        sh__outbox_kick(hub);
        sh__notify_publish(hub, user_id, notif);
        sh__chat_follow_changed(hub, actor_id, user_id, true);
    }
    if (created != NULL)
        *created = changes > 0;
    return SH_OK;
}

SH_API sh_err_t sh_unfollow(sh_hub_t *hub, const char *actor_id,
                            const char *user_id, bool *removed,
                            char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__conn *c;
    struct sh__val p[2];
    int64_t changes = 0;
    sh_err_t rc;

    if (removed != NULL)
        *removed = false;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = check_pair(c, actor_id, user_id, NULL, 0, errbuf, errbuf_len);
    if (rc == SH_OK) {
        p[0] = sh__v_text(actor_id);
        p[1] = sh__v_text(user_id);
        rc = sh__store_exec(c, &q_unfollow, p, 2, NULL, NULL, &changes,
                            errbuf, errbuf_len);
    }
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    sh__store_wrote(hub->store, actor_id);
    sh__store_wrote(hub->store, user_id);
    /* Both users' counts changed, before the response. */
    if (changes > 0) {
        sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, actor_id);
        sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, user_id);
    }
    if (changes > 0)
        sh__chat_follow_changed(hub, actor_id, user_id, false);
    if (removed != NULL)
        *removed = changes > 0;
    return SH_OK;
}

static int flag_row(void *arg, const struct sh__row *row)
{
    (void)row;
    *(bool *)arg = true;
    return 1;
}

/* @primary: a rule rests on the answer (the chat's followers-only mode),
 * so it must not lag; else a plain read (store_int.h). */
static sh_err_t follow_check(sh_hub_t *hub, const char *follower_id,
                             const char *followed_id, bool primary,
                             bool *out, char *errbuf, size_t errbuf_len)
{
    struct sh__conn *c;
    struct sh__val p[2];
    bool found = false;
    sh_err_t rc;

    if (out != NULL)
        *out = false;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (follower_id == NULL || followed_id == NULL || out == NULL) {
        sh__errbuf(errbuf, errbuf_len, "arguments must not be NULL");
        return SH_EINVAL;
    }
    if (!sh__uuid_valid(follower_id) || !sh__uuid_valid(followed_id))
        return SH_OK;
    rc = primary ? sh__store_acquire(hub->store, &c)
                 : sh__store_acquire_read(hub->store, follower_id, &c);
    if (rc != SH_OK)
        return rc;
    p[0] = sh__v_text(follower_id);
    p[1] = sh__v_text(followed_id);
    rc = sh__store_exec(c, &q_is, p, 2, flag_row, &found, NULL, errbuf,
                        errbuf_len);
    sh__store_release(c);
    if (rc == SH_OK)
        *out = found;
    return rc;
}

sh_err_t sh__is_following(sh_hub_t *hub, const char *follower_id,
                          const char *followed_id, bool *out)
{
    return follow_check(hub, follower_id, followed_id, true, out, NULL, 0);
}

SH_API sh_err_t sh_follow_check(sh_hub_t *hub, const char *follower_id,
                                const char *followed_id, bool *out,
                                char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);

    return follow_check(hub, follower_id, followed_id, false, out, errbuf,
                        errbuf_len);
}

struct counts {
    int64_t a, b;
};

static int counts_row(void *arg, const struct sh__row *row)
{
    struct counts *x = arg;

    x->a = sh__row_int(row, 0);
    x->b = sh__row_int(row, 1);
    return 1;
}

SH_API sh_err_t sh_follow_counts(sh_hub_t *hub, const char *user_id,
                                 int64_t *followers, int64_t *following,
                                 char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct counts x = { 0, 0 };
    struct sh__conn *c;
    struct sh__val p[2];
    unsigned roles;
    sh_err_t rc;

    if (followers != NULL)
        *followers = 0;
    if (following != NULL)
        *following = 0;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire_read(hub->store, user_id, &c)) != SH_OK)
        return rc;
    rc = sh__user_roles_c(c, user_id, &roles, errbuf, errbuf_len);
    if (rc == SH_OK) {
        p[0] = sh__v_text(user_id);
        p[1] = sh__v_text(user_id);
        rc = sh__store_exec(c, &q_counts, p, 2, counts_row, &x, NULL,
                            errbuf, errbuf_len);
    }
    sh__store_release(c);
    if (rc != SH_OK)
        return rc;
    if (followers != NULL)
        *followers = x.a;
    if (following != NULL)
        *following = x.b;
    return SH_OK;
}

/* ---- counts of many users ------------------------------------------ *
 *
 * One statement per chunk of COUNTS_CHUNK distinct ids, like
 * sh_user_get_many() (users_batch.c): the text is fixed so that the store's
 * statement cache keeps it, and a short chunk binds NULL in the unused
 * places (`id IN (..., NULL)` matches nothing more).  Both counts are
 * correlated subqueries over the follows_followed and follows_follower
 * indexes, so a chunk costs what its users' counts cost one by one, in a
 * single read.
 */
#define COUNTS_CHUNK 50
#define P5 "?, ?, ?, ?, ?"
#define P25 P5 ", " P5 ", " P5 ", " P5 ", " P5
static const struct sh__sql q_counts_in = {
    "SELECT u.id, "
    "(SELECT count(*) FROM follows f WHERE f.followed_id = u.id), "
    "(SELECT count(*) FROM follows f WHERE f.follower_id = u.id) "
    "FROM users u WHERE u.id IN (" P25 ", " P25 ")", NULL, NULL
};

/* The distinct well-formed ids, sorted; their counts, -1 until found. */
struct many {
    const char **ids;
    int64_t *a, *b;
    size_t n;
};

static int cmp_id(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static size_t many_find(const struct many *m, const char *id)
{
    const char **hit;

    if (m->n == 0)
        return SIZE_MAX;
    hit = bsearch(&id, m->ids, m->n, sizeof *m->ids, cmp_id);
    return hit != NULL ? (size_t)(hit - m->ids) : SIZE_MAX;
}

static int many_row(void *arg, const struct sh__row *row)
{
    struct many *m = arg;
    const char *id = sh__row_text(row, 0, NULL);
    size_t i = id != NULL ? many_find(m, id) : SIZE_MAX;

    if (i != SIZE_MAX) {
        m->a[i] = sh__row_int(row, 1);
        m->b[i] = sh__row_int(row, 2);
    }
    return 0;
}

SH_API sh_err_t sh_follow_counts_many(sh_hub_t *hub,
                                      const char *const *user_ids, size_t n,
                                      int64_t *followers, int64_t *following,
                                      char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct many m = { NULL, NULL, NULL, 0 };
    struct sh__conn *c = NULL;
    struct sh__cache_ticket *tix = NULL;
    const char **miss = NULL;
    size_t nmiss = 0;
    sh_err_t rc;

    if (hub == NULL || (user_ids == NULL && n > 0) ||
        n > SH_FOLLOW_COUNTS_MANY_MAX) {
        sh__errbuf(errbuf, errbuf_len, "bad arguments");
        return SH_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (user_ids[i] == NULL) {
            sh__errbuf(errbuf, errbuf_len, "user_ids[%zu] is NULL", i);
            return SH_EINVAL;
        }
    }
    if (n == 0)
        return sh__hub_live(hub);
    if ((rc = sh__hub_live(hub)) != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        goto out;
    }
    m.ids = malloc(n * sizeof *m.ids);
    m.a = malloc(n * sizeof *m.a);
    m.b = malloc(n * sizeof *m.b);
    if (m.ids == NULL || m.a == NULL || m.b == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        rc = SH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (sh__uuid_valid(user_ids[i]))
            m.ids[m.n++] = user_ids[i];
    if (m.n > 1)
        qsort(m.ids, m.n, sizeof *m.ids, cmp_id);
    {
        size_t w = 0;
        for (size_t i = 0; i < m.n; i++)
            if (w == 0 || strcmp(m.ids[w - 1], m.ids[i]) != 0)
                m.ids[w++] = m.ids[i];
        m.n = w;
    }
    for (size_t i = 0; i < m.n; i++)
        m.a[i] = m.b[i] = -1;
    /* The cached counts first (services/cache.c); the store for the
     * rest, whose answers fill the cache under their tickets. */
    miss = malloc((m.n > 0 ? m.n : 1) * sizeof *miss);
    tix = malloc((m.n > 0 ? m.n : 1) * sizeof *tix);
    if (miss == NULL || tix == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        rc = SH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m.n; i++) {
        char *text = NULL;
        size_t len = 0;
        long long a = -1, b = -1;
        char *e1 = NULL, *e2 = NULL;
        /* "a b" as cache_put below writes it; strtoll: no scanf per id. */
        if (sh__cache_get(hub, SH__CACHE_FOLLOWERS, m.ids[i], &text, &len,
                          &tix[nmiss]) &&
            (a = strtoll(text, &e1, 10), e1 != text && *e1 == ' ') &&
            (b = strtoll(e1 + 1, &e2, 10), e2 != e1 + 1 && *e2 == '\0') &&
            a >= 0 && b >= 0) {
            m.a[i] = a;
            m.b[i] = b;
        } else {
            miss[nmiss++] = m.ids[i];
        }
        free(text);
    }
    if (nmiss > 0) {
        if ((rc = sh__acquire_read_many(hub, miss, nmiss, &c)) != SH_OK) {
            sh__errbuf(errbuf, errbuf_len, "the hub is closing");
            goto out;
        }
        for (size_t i = 0; i < nmiss; i++)
            sh__cache_from(c, &tix[i]);
        for (size_t at = 0; at < nmiss && rc == SH_OK; at += COUNTS_CHUNK) {
            struct sh__val p[COUNTS_CHUNK];
            for (size_t k = 0; k < COUNTS_CHUNK; k++)
                p[k] = at + k < nmiss ? sh__v_text(miss[at + k])
                                      : sh__v_null();
            rc = sh__store_exec(c, &q_counts_in, p, COUNTS_CHUNK, many_row,
                                &m, NULL, errbuf, errbuf_len);
        }
        sh__store_release(c);
        if (rc != SH_OK)
            goto out;
        for (size_t i = 0; i < nmiss; i++) {
            size_t k = many_find(&m, miss[i]);
            char num[48];
            if (k == SIZE_MAX || m.a[k] < 0 || !sh__cache_fillable(&tix[i]))
                continue;
            snprintf(num, sizeof num, "%lld %lld", (long long)m.a[k],
                     (long long)m.b[k]);
            sh__cache_put(hub, SH__CACHE_FOLLOWERS, miss[i], &tix[i], num,
                          strlen(num));
        }
    }
    rc = SH_OK;
out:
    for (size_t i = 0; i < n; i++) {
        size_t k = rc == SH_OK ? many_find(&m, user_ids[i]) : SIZE_MAX;
        int64_t none = rc == SH_OK ? -1 : 0;
        if (followers != NULL)
            followers[i] = k != SIZE_MAX ? m.a[k] : none;
        if (following != NULL)
            following[i] = k != SIZE_MAX ? m.b[k] : none;
    }
    free(m.ids);
    free(m.a);
    free(m.b);
    free(miss);
    free(tix);
    return rc;
}

struct page_ctx {
    struct sh__page page;
};

static int user_row(void *arg, const struct sh__row *row)
{
    struct page_ctx *x = arg;
    const char *id = sh__row_text(row, 0, NULL);
    json_object *o = json_object_new_object();
    char *cursor = NULL;

    if (o != NULL &&
        (!sh__jset_str(o, "id", id) ||
         !sh__jset_str(o, "username", sh__row_text(row, 1, NULL)) ||
         !sh__jset(o, "email", NULL) ||
         !sh__jset_time(o, "createdAt", sh__row_int(row, 2), false))) {
        json_object_put(o);
        o = NULL;
    }
    if (sh__cursor_ti_encode(sh__row_int(row, 3), id, &cursor) != SH_OK)
        cursor = NULL;
    sh__page_add(&x->page, o, cursor);
    return 0;
}

static sh_err_t list(sh_hub_t *hub, const struct sh__sql *q,
                     const char *user_id, int first, const char *after,
                     unsigned want, sh_user_list_t **out, char *errbuf,
                     size_t errbuf_len)
{
    char cid[SH__UUID_LEN + 1];
    struct page_ctx x;
    struct counts cnt = { 0, 0 };
    struct sh__conn *c;
    struct sh__list *l = NULL;
    struct sh__val p[6];
    unsigned roles;
    int64_t ct;
    bool have;
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
    rc = sh__cursor_ti_decode(after, &have, &ct, cid, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (!sh__page_init(&x.page, n))
        return SH_ENOMEM;
    if ((rc = sh__store_acquire_read(hub->store, user_id, &c)) != SH_OK) {
        sh__page_drop(&x.page);
        return rc;
    }
    rc = sh__user_roles_c(c, user_id, &roles, errbuf, errbuf_len);
    if (rc == SH_OK) {
        p[0] = sh__v_text(user_id);
        p[1] = sh__v_int(have ? 1 : 0);
        p[2] = sh__v_int(ct);
        p[3] = sh__v_int(ct);
        p[4] = sh__v_text(cid);
        p[5] = sh__v_int(n + 1);
        rc = sh__store_exec(c, q, p, 6, user_row, &x, NULL, errbuf,
                            errbuf_len);
    }
    if (rc == SH_OK && (want & SH__LIST_TOTAL) == 0) {
        cnt.a = cnt.b = -1;             /* nobody reads totalCount */
    } else if (rc == SH_OK) {
        p[1] = p[0];
        rc = sh__store_exec(c, &q_counts, p, 2, counts_row, &cnt, NULL,
                            errbuf, errbuf_len);
    }
    sh__store_release(c);
    if (rc != SH_OK) {
        sh__page_drop(&x.page);
        return rc;
    }
    rc = sh__page_finish(&x.page, q == &q_followers ? cnt.a : cnt.b, &l);
    if (rc == SH_OK)
        *out = (sh_user_list_t *)(void *)l;
    return rc;
}

SH_API sh_err_t sh_followers_list(sh_hub_t *hub, const char *user_id,
                                  int first, const char *after,
                                  sh_user_list_t **out, char *errbuf,
                                  size_t errbuf_len)
{
    return sh__followers_list_opt(hub, user_id, first, after,
                                  SH__LIST_TOTAL, out, errbuf, errbuf_len);
}

sh_err_t sh__followers_list_opt(sh_hub_t *hub, const char *user_id,
                                int first, const char *after, unsigned want,
                                sh_user_list_t **out, char *errbuf,
                                size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    return list(hub, &q_followers, user_id, first, after, want, out, errbuf,
                errbuf_len);
}

SH_API sh_err_t sh_following_list(sh_hub_t *hub, const char *user_id,
                                  int first, const char *after,
                                  sh_user_list_t **out, char *errbuf,
                                  size_t errbuf_len)
{
    return sh__following_list_opt(hub, user_id, first, after,
                                  SH__LIST_TOTAL, out, errbuf, errbuf_len);
}

sh_err_t sh__following_list_opt(sh_hub_t *hub, const char *user_id,
                                int first, const char *after, unsigned want,
                                sh_user_list_t **out, char *errbuf,
                                size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    return list(hub, &q_following, user_id, first, after, want, out, errbuf,
                errbuf_len);
}

SH_API size_t sh_user_list_count(const sh_user_list_t *l)
{
    return l != NULL ? sh__list_count(&l->l) : 0;
}

static json_object *item(const sh_user_list_t *l, size_t i)
{
    const struct sh__jh *h = l != NULL ? sh__list_at(&l->l, i) : NULL;

    return h != NULL ? h->obj : NULL;
}

SH_API const char *sh_user_list_id_at(const sh_user_list_t *l, size_t i)
{
    return sh__jstr(item(l, i), "id");
}

SH_API const char *sh_user_list_username_at(const sh_user_list_t *l,
                                            size_t i)
{
    return sh__jstr(item(l, i), "username");
}

SH_API const char *sh_user_list_json_at(const sh_user_list_t *l, size_t i,
                                        size_t *len)
{
    return sh__jtext(item(l, i), len);
}

SH_API const char *sh_user_list_cursor_at(const sh_user_list_t *l,
                                          size_t i)
{
    return l != NULL ? sh__list_cursor_at(&l->l, i) : NULL;
}

SH_API const char *sh_user_list_next_cursor(const sh_user_list_t *l)
{
    return l != NULL ? sh__list_next_cursor(&l->l) : NULL;
}

SH_API bool sh_user_list_has_next(const sh_user_list_t *l)
{
    return sh_user_list_next_cursor(l) != NULL;
}

SH_API int64_t sh_user_list_total_count(const sh_user_list_t *l)
{
    return l != NULL ? sh__jint(l->l.obj, "totalCount") : 0;
}

SH_API const char *sh_user_list_json(const sh_user_list_t *l, size_t *len)
{
    return sh__jtext(l != NULL ? l->l.obj : NULL, len);
}

SH_API void sh_user_list_free(sh_user_list_t *l)
{
    sh__list_free(l != NULL ? &l->l : NULL);
}
