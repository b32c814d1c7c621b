/* libstreamhub/graphql/resolvers.c: the fields that call the services.
 *
 * Every resolver calls the public C API of the services (never the store)
 * and hands the executor the handle's own json-c object (a new reference),
 * so nothing is printed and parsed again.  Fields that are plain members
 * of a service result (Stream.title, ChatMessage.text...) have no resolver
 * here: the executor reads the member (engine_int.h).
 *
 * Lists become Relay connections: {"edges":[{"cursor","node"}],
 * "pageInfo":{...},"totalCount"} built from the list handle's items and
 * cursors.  hasPreviousPage of a forward page is whether an `after` cursor
 * was given (the Relay spec allows that cheap answer).
 *
 * Lookups by id of nullable Query fields (user, stream) answer null for an
 * id that names nothing, without an error, as most GraphQL APIs do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/auth.h"
#include "streamhub/chat.h"
#include "streamhub/follows.h"
#include "streamhub/moderation.h"
#include "streamhub/notifications.h"
#include "streamhub/streams.h"
#include "graphql/engine_int.h"
#include "services/export_int.h"

#define EB char eb[SH_ERRBUF_SIZE] = ""

/* The json-c object behind any json-backed handle (services_int.h). */
static json_object *hobj(const void *h)
{
    return h != NULL ? ((const struct sh__jh *)h)->obj : NULL;
}

static sh_err_t fail(struct sh__gql_rerr *err, sh_err_t rc, const char *eb)
{
    err->code = NULL;
    err->retry_ms = 0;
    if (strcmp(sh__gql_err_code(rc), "INTERNAL") == 0 || eb == NULL ||
        eb[0] == '\0')
        eb = strcmp(sh__gql_err_code(rc), "INTERNAL") == 0
            ? "Internal server error." : sh_strerror(rc);
    snprintf(err->msg, sizeof err->msg, "%s", eb);
    return rc;
}

static const char *astr(json_object *args, const char *k)
{
    return sh__jstr(args, k);
}

static int aint(json_object *args, const char *k, int dflt)
{
    json_object *v;

    if (!json_object_object_get_ex(args, k, &v) || v == NULL)
        return dflt;
    return json_object_get_int(v);
}

static bool has_arg(json_object *args, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(args, k, &v) && v != NULL;
}

/* What of a connection the query selects (sh__gql_selects()): the rest
 * is neither fetched (totalCount's count(*)) nor built. */
#define CONN_CURSOR 0x1u    /* edges { cursor } */
#define CONN_PAGE   0x2u    /* pageInfo */
#define CONN_TOTAL  0x4u    /* totalCount */

static unsigned conn_wants(const struct sh__gql_exec *ex)
{
    return (sh__gql_selects(ex, "edges", "cursor") ? CONN_CURSOR : 0) |
           (sh__gql_selects(ex, "pageInfo", NULL) ? CONN_PAGE : 0) |
           (sh__gql_selects(ex, "totalCount", NULL) ? CONN_TOTAL : 0);
}

/* {"edges":[{"cursor","node"}],"pageInfo":{...}} from @items, with only
 * the parts @want names (CONN_*). */
static json_object *connection(json_object *items,
                               const char *(*cursor_at)(const void *, size_t),
                               const void *list, bool has_next,
                               bool has_prev, unsigned want)
{
    json_object *c = json_object_new_object(), *edges;
    json_object *pi = NULL;
    size_t n = items != NULL ? json_object_array_length(items) : 0;
    const char *first = NULL, *last = NULL;

    edges = json_object_new_array_ext(n > 0 ? (int)n : 1);
    if (c == NULL || edges == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        const char *cur = cursor_at(list, i);
        if (e == NULL)
            goto oom;
        if (cur == NULL)
            cur = "";
        if (i == 0)
            first = cur;
        last = cur;
        if (want & CONN_CURSOR)
            json_object_object_add(e, "cursor", json_object_new_string(cur));
        json_object_object_add(e, "node",
                               json_object_get(json_object_array_get_idx(
                                   items, i)));
        json_object_array_add(edges, e);
    }
    if (want & CONN_PAGE) {
        if ((pi = json_object_new_object()) == NULL)
            goto oom;
        json_object_object_add(pi, "hasNextPage",
                               json_object_new_boolean(has_next));
        json_object_object_add(pi, "hasPreviousPage",
                               json_object_new_boolean(has_prev));
        json_object_object_add(pi, "startCursor",
                               first ? json_object_new_string(first) : NULL);
        json_object_object_add(pi, "endCursor",
                               last ? json_object_new_string(last) : NULL);
        json_object_object_add(c, "pageInfo", pi);
    }
    json_object_object_add(c, "edges", edges);
    return c;
oom:
    json_object_put(c);
    json_object_put(edges);
    return NULL;
}

static const char *stream_cur(const void *l, size_t i)
{
    return sh_stream_list_cursor_at(l, i);
}

static const char *user_cur(const void *l, size_t i)
{
    return sh_user_list_cursor_at(l, i);
}

static const char *notif_cur(const void *l, size_t i)
{
    return sh_notification_list_cursor_at(l, i);
}

static const char *chat_cur(const void *l, size_t i)
{
    return sh_chat_message_list_cursor_at(l, i);
}

static sh_err_t nomem(struct sh__gql_rerr *err)
{
    return fail(err, SH_ENOMEM, NULL);
}

static sh_err_t stream_conn(sh_stream_list_t *l, const char *after,
                            unsigned want, json_object **out,
                            struct sh__gql_rerr *err)
{
    json_object *o = hobj(l);
    json_object *c = connection(json_object_object_get(o, "items"),
                                stream_cur, l, sh_stream_list_has_next(l),
                                after != NULL && after[0] != '\0', want);

    if (c == NULL) {
        sh_stream_list_free(l);
        return nomem(err);
    }
    if (want & CONN_TOTAL)
        json_object_object_add(c, "totalCount", json_object_new_int64(
                                   sh_stream_list_total_count(l)));
    sh_stream_list_free(l);
    *out = c;
    return SH_OK;
}

static sh_err_t user_conn(sh_user_list_t *l, const char *after,
                          unsigned want, json_object **out,
                          struct sh__gql_rerr *err)
{
    json_object *c = connection(json_object_object_get(hobj(l), "items"),
                                user_cur, l, sh_user_list_has_next(l),
                                after != NULL && after[0] != '\0', want);

    if (c == NULL) {
        sh_user_list_free(l);
        return nomem(err);
    }
    json_object_object_add(c, "totalCount", json_object_new_int64(
                               sh_user_list_total_count(l)));
    sh_user_list_free(l);
    *out = c;
    return SH_OK;
}

/* ---- Query ------------------------------------------------------------- */

static sh_err_t q_me(struct sh__gql_exec *ex, json_object *src,
                     json_object *args, json_object **out,
                     struct sh__gql_rerr *err)
{
    sh_user_t *u = NULL;
    sh_err_t rc;
    EB;

    if (ex->viewer == NULL)
        return SH_OK;
    rc = sh_user_get(ex->hub, ex->viewer, ex->viewer, &u, eb, sizeof eb);
    if (rc == SH_ENOTFOUND)
        return SH_OK;
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(u));
    sh_user_free(u);
    return SH_OK;
}

static sh_err_t q_user(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    const char *id = astr(args, "id"), *name = astr(args, "username");
    sh_user_t *u = NULL;
    sh_err_t rc;
    EB;

    if ((id == NULL) == (name == NULL))
        return fail(err, SH_EINVAL, "Exactly one of id or username must be "
                    "given.");
    if (id != NULL)
        rc = sh_user_get(ex->hub, ex->viewer, id, &u, eb, sizeof eb);
    else
        rc = sh_user_get_by_username(ex->hub, ex->viewer, name, &u, eb,
                                     sizeof eb);
    if (rc == SH_ENOTFOUND)
        return SH_OK;
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(u));
    sh_user_free(u);
    return SH_OK;
}

static sh_err_t q_stream(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    sh_stream_t *s = NULL;
    sh_err_t rc;
    EB;

    rc = sh_stream_get(ex->hub, astr(args, "id"), &s, eb, sizeof eb);
    if (rc == SH_ENOTFOUND)
        return SH_OK;
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(s));
    sh_stream_free(s);
    return SH_OK;
}

static sh_err_t q_live(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    sh_stream_list_t *l = NULL;
    const char *after = astr(args, "after");
    sh_err_t rc;
    EB;

    unsigned want = conn_wants(ex);

    rc = sh__stream_live_list_opt(ex->hub, aint(args, "first", 20), after,
                                  astr(args, "category"),
                                  (want & CONN_TOTAL) ? SH__LIST_TOTAL : 0,
                                  &l, eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    return stream_conn(l, after, want, out, err);
}

static sh_err_t q_search(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    sh_stream_list_t *l = NULL;
    const char *after = astr(args, "after");
    sh_err_t rc;
    EB;

    unsigned want = conn_wants(ex);

    rc = sh__stream_search_opt(ex->hub, astr(args, "query"),
                               aint(args, "first", 20), after,
                               (want & CONN_TOTAL) ? SH__LIST_TOTAL : 0, &l,
                               eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    return stream_conn(l, after, want, out, err);
}

static sh_err_t q_chat_history(struct sh__gql_exec *ex, json_object *src,
                               json_object *args, json_object **out,
                               struct sh__gql_rerr *err)
{
    sh_chat_message_list_t *l = NULL;
    json_object *o, *c, *pi;
    sh_err_t rc;
    EB;

    rc = sh_chat_history(ex->hub, astr(args, "streamId"),
                         aint(args, "last", 50), astr(args, "before"), &l,
                         eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    o = hobj(l);
    c = connection(json_object_object_get(o, "items"), chat_cur, l,
                   sh__jbool(o, "hasNextPage"),
                   sh__jbool(o, "hasPreviousPage"), CONN_CURSOR | CONN_PAGE);
    if (c == NULL) {
        sh_chat_message_list_free(l);
        return nomem(err);
    }
    /* The page's own cursors (the service's): startCursor pages back. */
    pi = json_object_object_get(c, "pageInfo");
    json_object_object_add(pi, "startCursor", json_object_get(
                               json_object_object_get(o, "startCursor")));
    json_object_object_add(pi, "endCursor", json_object_get(
                               json_object_object_get(o, "endCursor")));
    sh_chat_message_list_free(l);
    *out = c;
    return SH_OK;
}

static sh_err_t q_notifications(struct sh__gql_exec *ex, json_object *src,
                                json_object *args, json_object **out,
                                struct sh__gql_rerr *err)
{
    sh_notification_list_t *l = NULL;
    const char *after = astr(args, "after");
    json_object *c;
    sh_err_t rc;
    EB;

    rc = sh_notification_list(ex->hub, ex->viewer, aint(args, "first", 20),
                              after, sh__jbool(args, "unreadOnly"), &l, eb,
                              sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    c = connection(json_object_object_get(hobj(l), "items"), notif_cur, l,
                   sh_notification_list_has_next(l),
                   after != NULL && after[0] != '\0',
                   CONN_CURSOR | CONN_PAGE);
    if (c == NULL) {
        sh_notification_list_free(l);
        return nomem(err);
    }
    json_object_object_add(c, "unreadCount", json_object_new_int64(
                               sh_notification_list_unread_count(l)));
    sh_notification_list_free(l);
    *out = c;
    return SH_OK;
}

/* ---- Mutation ---------------------------------------------------------- */

static sh_err_t auth_out(sh_err_t rc, sh_auth_t *a, const char *eb,
                         json_object **out, struct sh__gql_rerr *err)
{
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(a));
    sh_auth_free(a);
    return SH_OK;
}

static sh_err_t m_register(struct sh__gql_exec *ex, json_object *src,
                           json_object *args, json_object **out,
                           struct sh__gql_rerr *err)
{
    sh_auth_t *a = NULL;
    EB;
    sh_err_t rc = sh_auth_register(ex->hub, astr(args, "username"),
                                   astr(args, "email"),
                                   astr(args, "password"), &a, eb,
                                   sizeof eb);
    return auth_out(rc, a, eb, out, err);
}

static sh_err_t m_login(struct sh__gql_exec *ex, json_object *src,
                        json_object *args, json_object **out,
                        struct sh__gql_rerr *err)
{
    sh_auth_t *a = NULL;
    EB;
    sh_err_t rc = sh_auth_login(ex->hub, astr(args, "username"),
                                astr(args, "password"), &a, eb, sizeof eb);
    return auth_out(rc, a, eb, out, err);
}

static sh_err_t m_refresh(struct sh__gql_exec *ex, json_object *src,
                          json_object *args, json_object **out,
                          struct sh__gql_rerr *err)
{
    sh_auth_t *a = NULL;
    EB;
    sh_err_t rc = sh_auth_refresh(ex->hub, astr(args, "refreshToken"), &a,
                                  eb, sizeof eb);
    return auth_out(rc, a, eb, out, err);
}

static sh_err_t stream_out(sh_err_t rc, sh_stream_t *s, const char *eb,
                           json_object **out, struct sh__gql_rerr *err)
{
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(s));
    sh_stream_free(s);
    return SH_OK;
}

static sh_err_t m_start(struct sh__gql_exec *ex, json_object *src,
                        json_object *args, json_object **out,
                        struct sh__gql_rerr *err)
{
    sh_stream_t *s = NULL;
    EB;
    sh_err_t rc = sh_stream_start(ex->hub, ex->viewer, astr(args, "title"),
                                  astr(args, "category"), &s, eb, sizeof eb);
    return stream_out(rc, s, eb, out, err);
}

static sh_err_t m_stop(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    sh_stream_t *s = NULL;
    EB;
    sh_err_t rc = sh_stream_stop(ex->hub, ex->viewer,
                                 astr(args, "streamId"), &s, eb, sizeof eb);
    return stream_out(rc, s, eb, out, err);
}

static sh_err_t m_update(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    sh_stream_t *s = NULL;
    EB;
    sh_err_t rc = sh_stream_update(ex->hub, ex->viewer,
                                   astr(args, "streamId"),
                                   astr(args, "title"),
                                   astr(args, "category"), &s, eb,
                                   sizeof eb);
    return stream_out(rc, s, eb, out, err);
}

static sh_err_t user_of(struct sh__gql_exec *ex, const char *id,
                        json_object **out, struct sh__gql_rerr *err)
{
    sh_user_t *u = NULL;
    EB;
    sh_err_t rc = sh_user_get(ex->hub, ex->viewer, id, &u, eb, sizeof eb);

    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(u));
    sh_user_free(u);
    return SH_OK;
}

static sh_err_t m_follow(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_follow(ex->hub, ex->viewer, astr(args, "userId"), NULL,
                            eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    return user_of(ex, astr(args, "userId"), out, err);
}

static sh_err_t m_unfollow(struct sh__gql_exec *ex, json_object *src,
                           json_object *args, json_object **out,
                           struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_unfollow(ex->hub, ex->viewer, astr(args, "userId"),
                              NULL, eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    return user_of(ex, astr(args, "userId"), out, err);
}

static sh_err_t m_send(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    sh_chat_message_t *m = NULL;
    const char *text = astr(args, "text");
    int64_t retry = 0;
    EB;
    sh_err_t rc = sh_chat_send(ex->hub, ex->viewer, astr(args, "streamId"),
                               text, text != NULL ? strlen(text) : 0, &m,
                               &retry, eb, sizeof eb);

    if (rc != SH_OK) {
        fail(err, rc, eb);
        err->retry_ms = retry;
        return rc;
    }
    *out = json_object_get(hobj(m));
    sh_chat_message_free(m);
    return SH_OK;
}

static sh_err_t bool_out(sh_err_t rc, const char *eb, json_object **out,
                         struct sh__gql_rerr *err)
{
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_new_boolean(1);
    return *out != NULL ? SH_OK : nomem(err);
}

static sh_err_t m_delete(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_chat_delete(ex->hub, ex->viewer,
                                 astr(args, "messageId"), eb, sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_timeout(struct sh__gql_exec *ex, json_object *src,
                          json_object *args, json_object **out,
                          struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_moderation_timeout(ex->hub, ex->viewer,
                                        astr(args, "channelId"),
                                        astr(args, "userId"),
                                        aint(args, "seconds", 0),
                                        astr(args, "reason"), eb, sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_ban(struct sh__gql_exec *ex, json_object *src,
                      json_object *args, json_object **out,
                      struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_moderation_ban(ex->hub, ex->viewer,
                                    astr(args, "channelId"),
                                    astr(args, "userId"),
                                    astr(args, "reason"), eb, sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_unban(struct sh__gql_exec *ex, json_object *src,
                        json_object *args, json_object **out,
                        struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_moderation_unban(ex->hub, ex->viewer,
                                      astr(args, "channelId"),
                                      astr(args, "userId"), eb, sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_add_mod(struct sh__gql_exec *ex, json_object *src,
                          json_object *args, json_object **out,
                          struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_moderation_add_moderator(ex->hub, ex->viewer,
                                              astr(args, "channelId"),
                                              astr(args, "userId"), eb,
                                              sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_rm_mod(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    EB;
    sh_err_t rc = sh_moderation_remove_moderator(ex->hub, ex->viewer,
                                                 astr(args, "channelId"),
                                                 astr(args, "userId"), eb,
                                                 sizeof eb);
    return bool_out(rc, eb, out, err);
}

static sh_err_t m_settings(struct sh__gql_exec *ex, json_object *src,
                           json_object *args, json_object **out,
                           struct sh__gql_rerr *err)
{
    static const char *const keys[] = { "slowModeSeconds", "followersOnly",
                                        "maxMessageLength", "blockedTerms" };
    json_object *patch = json_object_new_object();
    sh_chat_settings_t *s = NULL;
    const char *text;
    size_t len = 0;
    sh_err_t rc;
    EB;

    if (patch == NULL)
        return nomem(err);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_object *v;
        if (json_object_object_get_ex(args, keys[i], &v))
            json_object_object_add(patch, keys[i], json_object_get(v));
    }
    text = json_object_to_json_string_length(patch, JSON_C_TO_STRING_PLAIN,
                                             &len);
    rc = text == NULL ? SH_ENOMEM
        : sh_chat_settings_update(ex->hub, ex->viewer,
                                  astr(args, "channelId"), text, len, &s, eb,
                                  sizeof eb);
    json_object_put(patch);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(s));
    sh_chat_settings_free(s);
    return SH_OK;
}

static sh_err_t m_raid(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    sh_raid_t *r = NULL;
    EB;
    sh_err_t rc = sh_raid_start(ex->hub, ex->viewer,
                                astr(args, "fromStreamId"),
                                astr(args, "toUserId"), &r, eb, sizeof eb);

    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(r));
    sh_raid_free(r);
    return SH_OK;
}

static sh_err_t m_subscribe(struct sh__gql_exec *ex, json_object *src,
                            json_object *args, json_object **out,
                            struct sh__gql_rerr *err)
{
    sh_channel_subscription_t *s = NULL;
    EB;
    sh_err_t rc = sh_channel_subscribe(ex->hub, ex->viewer,
                                       astr(args, "channelId"),
                                       aint(args, "tier", 1), &s, eb,
                                       sizeof eb);

    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(s));
    sh_channel_subscription_free(s);
    return SH_OK;
}

static sh_err_t m_mark_read(struct sh__gql_exec *ex, json_object *src,
                            json_object *args, json_object **out,
                            struct sh__gql_rerr *err)
{
    json_object *ids = NULL;
    const char **v = NULL;
    size_t n = 0;
    int64_t changed = 0;
    sh_err_t rc;
    EB;

    if (has_arg(args, "ids")) {
        ids = json_object_object_get(args, "ids");
        n = json_object_array_length(ids);
        v = calloc(n + 1, sizeof *v);
        if (v == NULL)
            return nomem(err);
        for (size_t i = 0; i < n; i++)
            v[i] = json_object_get_string(json_object_array_get_idx(ids, i));
    }
    rc = sh_notification_mark_read(ex->hub, ex->viewer,
                                   ids != NULL ? v : NULL, n, &changed, eb,
                                   sizeof eb);
    free(v);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_new_int64(changed);
    return SH_OK;
}

/* ---- User --------------------------------------------------------------- */

/* The request's follower counts: memo "fc" maps a user id to
 * [followers, following]'s first half and "fg" to its second, one
 * integer per entry: a lookup is two hash probes, with no key to format
 * and no array per user.  NULL on ENOMEM. */
static json_object *fc_map(struct sh__gql_exec *ex, const char *which)
{
    json_object *m;

    if (json_object_object_get_ex(ex->memo, which, &m))
        return m;
    m = json_object_new_object();
    if (m != NULL && json_object_object_add(ex->memo, which, m) != 0) {
        json_object_put(m);
        m = NULL;
    }
    return m;
}

/* Follower and following counts of @src, memoized per request. */
static sh_err_t counts(struct sh__gql_exec *ex, json_object *src,
                       int64_t *followers, int64_t *following,
                       struct sh__gql_rerr *err)
{
    const char *id = sh__jstr(src, "id"), *key = id != NULL ? id : "";
    json_object *fc = fc_map(ex, "fc"), *fg = fc_map(ex, "fg"), *x, *y;
    EB;

    if (fc == NULL || fg == NULL)
        return nomem(err);
    /* One user's counts through the cached batch path too; a user the
     * batch does not find falls to sh_follow_counts() for its error. */
    if (id != NULL && !json_object_object_get_ex(fc, id, NULL))
        sh__gql_follow_counts_prefetch(ex, &id, 1);
    if (json_object_object_get_ex(fc, key, &x) &&
        json_object_object_get_ex(fg, key, &y)) {
        *followers = json_object_get_int64(x);
        *following = json_object_get_int64(y);
        return SH_OK;
    }
    sh_err_t rc = sh_follow_counts(ex->hub, id, followers, following, eb,
                                   sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    x = json_object_new_int64(*followers);
    y = json_object_new_int64(*following);
    if (x == NULL || y == NULL || json_object_object_add(fg, key, y) != 0) {
        json_object_put(x);
        json_object_put(y);
        return nomem(err);
    }
    if (json_object_object_add(fc, key, x) != 0) {
        json_object_put(x);
        return nomem(err);
    }
    return SH_OK;
}

void sh__gql_follow_counts_prefetch(struct sh__gql_exec *ex,
                                    const char **ids, size_t n)
{
    json_object *fc = fc_map(ex, "fc"), *fg = fc_map(ex, "fg");
    const char **want;
    int64_t *a, *b;
    size_t m = 0;

    if (fc == NULL || fg == NULL)
        return;
    if (n > SH_FOLLOW_COUNTS_MANY_MAX)
        n = SH_FOLLOW_COUNTS_MANY_MAX;
    want = malloc(n * sizeof *want);
    a = malloc(n * sizeof *a);
    b = malloc(n * sizeof *b);
    if (want == NULL || a == NULL || b == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (!json_object_object_get_ex(fc, ids[i], NULL))
            want[m++] = ids[i];
    if (m == 0 ||
        sh_follow_counts_many(ex->hub, want, m, a, b, NULL, 0) != SH_OK)
        goto out;
    for (size_t i = 0; i < m; i++) {
        json_object *x, *y;
        if (a[i] < 0)
            continue;           /* no such user: the per-user path says so */
        if (json_object_object_get_ex(fc, want[i], NULL))
            continue;           /* a duplicate id */
        x = json_object_new_int64(a[i]);
        y = json_object_new_int64(b[i]);
        /* fg first: an id in fc always has its fg entry. */
        if (x == NULL || y == NULL ||
            json_object_object_add(fg, want[i], y) != 0) {
            json_object_put(x);
            json_object_put(y);
            break;
        }
        if (json_object_object_add(fc, want[i], x) != 0) {
            json_object_put(x);
            break;
        }
    }
out:
    free(want);
    free(a);
    free(b);
}

static sh_err_t u_followers_n(struct sh__gql_exec *ex, json_object *src,
                              json_object *args, json_object **out,
                              struct sh__gql_rerr *err)
{
    int64_t a = 0, b = 0;
    sh_err_t rc = counts(ex, src, &a, &b, err);

    if (rc == SH_OK)
        *out = json_object_new_int64(a);
    return rc;
}

static sh_err_t u_following_n(struct sh__gql_exec *ex, json_object *src,
                              json_object *args, json_object **out,
                              struct sh__gql_rerr *err)
{
    int64_t a = 0, b = 0;
    sh_err_t rc = counts(ex, src, &a, &b, err);

    if (rc == SH_OK)
        *out = json_object_new_int64(b);
    return rc;
}

static sh_err_t u_online(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    const char *id = sh__jstr(src, "id");

    *out = json_object_new_boolean(id != NULL && sh__online(ex->hub, id));
    return SH_OK;
}

/* User.currentStream.  The services have no "live stream of a user" call:
 * the live streams are listed once per request (pages of SH_PAGE_MAX, up
 * to 20 pages) into a broadcaster -> stream map. */
static sh_err_t u_current(struct sh__gql_exec *ex, json_object *src,
                          json_object *args, json_object **out,
                          struct sh__gql_rerr *err)
{
    json_object *map, *v;
    const char *id = sh__jstr(src, "id");

    if (!json_object_object_get_ex(ex->memo, "live-by-user", &map)) {
        char *after = NULL;
        map = json_object_new_object();
        if (map == NULL)
            return nomem(err);
        for (int page = 0; page < 20; page++) {
            sh_stream_list_t *l = NULL;
            EB;
            sh_err_t rc = sh_stream_live_list(ex->hub, SH_PAGE_MAX, after,
                                              NULL, &l, eb, sizeof eb);
            free(after);
            after = NULL;
            if (rc != SH_OK) {
                json_object_put(map);
                return fail(err, rc, eb);
            }
            for (size_t i = 0; i < sh_stream_list_count(l); i++) {
                const sh_stream_t *s = sh_stream_list_at(l, i);
                json_object_object_add(map, sh_stream_broadcaster_id(s),
                                       json_object_get(hobj(s)));
            }
            if (sh_stream_list_has_next(l))
                after = strdup(sh_stream_list_next_cursor(l));
            sh_stream_list_free(l);
            if (after == NULL)
                break;
        }
        free(after);
        json_object_object_add(ex->memo, "live-by-user", map);
    }
    if (id != NULL && json_object_object_get_ex(map, id, &v))
        *out = json_object_get(v);
    return SH_OK;
}

static sh_err_t u_list(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err, bool followers)
{
    sh_user_list_t *l = NULL;
    const char *after = astr(args, "after");
    sh_err_t rc;
    EB;

    unsigned want = conn_wants(ex);

    rc = (followers ? sh__followers_list_opt : sh__following_list_opt)(
        ex->hub, sh__jstr(src, "id"), aint(args, "first", 20), after,
        (want & CONN_TOTAL) ? SH__LIST_TOTAL : 0, &l, eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    return user_conn(l, after, want, out, err);
}

static sh_err_t u_followers(struct sh__gql_exec *ex, json_object *src,
                            json_object *args, json_object **out,
                            struct sh__gql_rerr *err)
{
    return u_list(ex, src, args, out, err, true);
}

static sh_err_t u_following(struct sh__gql_exec *ex, json_object *src,
                            json_object *args, json_object **out,
                            struct sh__gql_rerr *err)
{
    return u_list(ex, src, args, out, err, false);
}

static sh_err_t u_followed_by_me(struct sh__gql_exec *ex, json_object *src,
                                 json_object *args, json_object **out,
                                 struct sh__gql_rerr *err)
{
    bool f = false;
    EB;

    if (ex->viewer != NULL) {
        sh_err_t rc = sh_follow_check(ex->hub, ex->viewer,
                                      sh__jstr(src, "id"), &f, eb,
                                      sizeof eb);
        if (rc != SH_OK)
            return fail(err, rc, eb);
    }
    *out = json_object_new_boolean(f);
    return SH_OK;
}

/* ---- Stream --------------------------------------------------------------- */

static sh_err_t s_stats(struct sh__gql_exec *ex, json_object *src,
                        json_object *args, json_object **out,
                        struct sh__gql_rerr *err)
{
    sh_stream_stats_t *st = NULL;
    EB;
    sh_err_t rc = sh_stream_stats_get(ex->hub, sh__jstr(src, "id"), &st, eb,
                                      sizeof eb);

    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(st));
    sh_stream_stats_free(st);
    return SH_OK;
}

static sh_err_t s_settings(struct sh__gql_exec *ex, json_object *src,
                           json_object *args, json_object **out,
                           struct sh__gql_rerr *err)
{
    json_object *b = json_object_object_get(src, "broadcaster");
    sh_chat_settings_t *s = NULL;
    sh_err_t rc;
    EB;

    if (b == NULL) {
        sh_err_t lrc = SH_OK;
        json_object *full = sh__gql_stream_full(ex, src, &lrc, err);
        if (full == NULL)
            return lrc;
        b = json_object_object_get(full, "broadcaster");
    }
    rc = sh_chat_settings_get(ex->hub, sh__jstr(b, "id"), &s, eb, sizeof eb);
    if (rc != SH_OK)
        return fail(err, rc, eb);
    *out = json_object_get(hobj(s));
    sh_chat_settings_free(s);
    return SH_OK;
}

/* ---- the table ------------------------------------------------------------ */

static const struct {
    const char *type, *field;
    sh__gql_resolver_fn fn;
} table[] = {
    { "Query", "me", q_me },
    { "Query", "user", q_user },
    { "Query", "stream", q_stream },
    { "Query", "liveStreams", q_live },
    { "Query", "searchStreams", q_search },
    { "Query", "chatHistory", q_chat_history },
    { "Query", "notifications", q_notifications },
    { "Mutation", "register", m_register },
    { "Mutation", "login", m_login },
    { "Mutation", "refreshToken", m_refresh },
    { "Mutation", "startStream", m_start },
    { "Mutation", "stopStream", m_stop },
    { "Mutation", "updateStream", m_update },
    { "Mutation", "follow", m_follow },
    { "Mutation", "unfollow", m_unfollow },
    { "Mutation", "sendMessage", m_send },
    { "Mutation", "deleteMessage", m_delete },
    { "Mutation", "timeoutUser", m_timeout },
    { "Mutation", "banUser", m_ban },
    { "Mutation", "unbanUser", m_unban },
    { "Mutation", "addModerator", m_add_mod },
    { "Mutation", "removeModerator", m_rm_mod },
    { "Mutation", "updateChatSettings", m_settings },
    { "Mutation", "startRaid", m_raid },
    { "Mutation", "subscribeToChannel", m_subscribe },
    { "Mutation", "markNotificationsRead", m_mark_read },
    { "User", "followerCount", u_followers_n },
    { "User", "followingCount", u_following_n },
    { "User", "online", u_online },
    { "User", "currentStream", u_current },
    { "User", "followers", u_followers },
    { "User", "following", u_following },
    { "User", "followedByMe", u_followed_by_me },
    { "Stream", "stats", s_stats },
    { "Stream", "chatSettings", s_settings },
};

sh__gql_resolver_fn sh__gql_resolver_for(const char *type, const char *field)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].type, type) == 0 &&
            strcmp(table[i].field, field) == 0)
            return table[i].fn;
    return sh__gql_intro_resolver_for(type, field);
}
