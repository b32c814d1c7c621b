/* libstreamhub/services/raids.c: raids (streams.h, sh_raid_start).
 *
 * A raid is recorded with the raiding stream's viewer count at that moment,
 * together with the target's RAID_INCOMING notification, in one
 * transaction.  After the commit `raid.incoming` (data: the Raid) goes to
 * the target's user:<id> and, when the target is live, to its
 * stream:<id>; then the notification.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/streams.h"
#include "outbox_int.h"
#include "services_int.h"

struct sh_raid { json_object *obj; };

static const struct sh__sql q_from = {
    "SELECT broadcaster_id, status, viewer_count FROM streams WHERE id = ?",
    NULL, NULL
};
static const struct sh__sql q_target_live = {
    "SELECT id FROM streams WHERE broadcaster_id = ? AND status = 'LIVE'",
    NULL, NULL
};
static const struct sh__sql q_insert = {
    "INSERT INTO raids (id, from_stream_id, from_user_id, to_user_id, "
    "viewer_count, created_at) VALUES (?, ?, ?, ?, ?, ?)", NULL, NULL
};

struct from_row {
    bool found, live;
    char owner[SH__UUID_LEN + 1];
    int64_t viewers;
};

static int from_cb(void *arg, const struct sh__row *row)
{
    struct from_row *x = arg;
    const char *o = sh__row_text(row, 0, NULL);
    const char *st = sh__row_text(row, 1, NULL);

    x->found = true;
    snprintf(x->owner, sizeof x->owner, "%s", o != NULL ? o : "");
    x->live = st != NULL && strcmp(st, "LIVE") == 0;
    x->viewers = sh__row_int(row, 2);
    return 1;
}

static int id_cb(void *arg, const struct sh__row *row)
{
    const char *id = sh__row_text(row, 0, NULL);

    snprintf(arg, SH__UUID_LEN + 1, "%s", id != NULL ? id : "");
    return 1;
}

SH_API sh_err_t sh_raid_start(sh_hub_t *hub, const char *actor_id,
                              const char *from_stream_id,
                              const char *to_user_id, sh_raid_t **out,
                              char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char id[SH__UUID_LEN + 1], target_stream[SH__UUID_LEN + 1] = "";
    char to_name[64], from_name[64], channel[8 + SH__UUID_LEN + 1];
    struct from_row fr;
    json_object *raid = NULL, *notif = NULL, *data = NULL, *from;
    struct sh__conn *c;
    struct sh__val p[6];
    unsigned roles = 0;
    int64_t now = sh__now_ms();
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    memset(&fr, 0, sizeof fr);
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    if ((rc = sh__actor_c(c, actor_id, &roles, errbuf, errbuf_len)) != SH_OK)
        goto out;
    if (sh__uuid_valid(from_stream_id)) {
        p[0] = sh__v_text(from_stream_id);
        rc = sh__store_exec(c, &q_from, p, 1, from_cb, &fr, NULL, errbuf,
                            errbuf_len);
        if (rc != SH_OK)
            goto out;
    }
    if (!fr.found) {
        sh__errbuf(errbuf, errbuf_len, "no such stream");
        rc = SH_ENOTFOUND;
        goto out;
    }
    if (strcmp(fr.owner, actor_id) != 0 && (roles & SH__ROLE_ADMIN) == 0) {
        sh__errbuf(errbuf, errbuf_len, "only the broadcaster or an admin "
                   "may raid from this stream");
        rc = SH_EFORBIDDEN;
        goto out;
    }
    if (!fr.live) {
        sh__errbuf(errbuf, errbuf_len, "the stream is not live");
        rc = SH_ECONFLICT;
        goto out;
    }
    if (to_user_id != NULL && strcmp(to_user_id, fr.owner) == 0) {
        sh__errbuf(errbuf, errbuf_len, "a channel cannot raid itself");
        rc = SH_EINVAL;
        goto out;
    }
    rc = sh__user_name_c(c, to_user_id, to_name, sizeof to_name, errbuf,
                         errbuf_len);
    if (rc == SH_OK)
        rc = sh__user_name_c(c, fr.owner, from_name, sizeof from_name,
                             errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    p[0] = sh__v_text(to_user_id);
    rc = sh__store_exec(c, &q_target_live, p, 1, id_cb, target_stream, NULL,
                        errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    sh__uuid4(id);
    raid = json_object_new_object();
    from = json_object_new_object();
    if (from != NULL && (!sh__jset_str(from, "id", from_stream_id) ||
        !sh__jset(from, "broadcaster", sh__juser_ref(fr.owner, from_name)))) {
        json_object_put(from);
        from = NULL;
    }
    /* sh__jset takes @from even when it fails */
    if (raid == NULL || from == NULL || !sh__jset(raid, "from", from) ||
        !sh__jset_str(raid, "id", id) ||
        !sh__jset(raid, "to", sh__juser_ref(to_user_id, to_name)) ||
        !sh__jset_int(raid, "viewerCount", fr.viewers) ||
        !sh__jset_time(raid, "createdAt", now, false) ||
        json_object_deep_copy(raid, &data, NULL) != 0) {
        if (raid == NULL)
            json_object_put(from);
        rc = SH_ENOMEM;
        goto out;
    }
    if ((rc = sh__store_begin(c, errbuf, errbuf_len)) != SH_OK)
        goto out;
    p[0] = sh__v_text(id);
    p[1] = sh__v_text(from_stream_id);
    p[2] = sh__v_text(fr.owner);
    p[3] = sh__v_text(to_user_id);
    p[4] = sh__v_int(fr.viewers);
    p[5] = sh__v_int(now);
    rc = sh__store_exec(c, &q_insert, p, 6, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_OK) {
        rc = sh__notify_insert_c(c, to_user_id, "RAID_INCOMING", data,
                                 &notif, errbuf, errbuf_len);
        data = NULL;
    }
    if (rc == SH_OK)
        rc = sh__outbox_add_obj(hub, c, "user:", to_user_id,
                                "raid.incoming", raid, errbuf, errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
out:
    sh__store_release(c);
    json_object_put(data);
    if (rc != SH_OK) {
        json_object_put(raid);
        json_object_put(notif);
        return rc;
    }
    {
        json_object *copy = NULL;
        char err[SH_ERRBUF_SIZE];

        snprintf(channel, sizeof channel, "user:%s", to_user_id);
        if (json_object_deep_copy(raid, &copy, NULL) == 0)
            sh__bus_publish(hub->bus, channel, "raid.incoming", copy, NULL,
                            err, sizeof err);
        copy = NULL;
        if (target_stream[0] != '\0' &&
            json_object_deep_copy(raid, &copy, NULL) == 0) {
            snprintf(channel, sizeof channel, "stream:%s", target_stream);
            sh__bus_publish(hub->bus, channel, "raid.incoming", copy, NULL,
                            err, sizeof err);
        }
    }
    sh__outbox_kick(hub);
    sh__notify_publish(hub, to_user_id, notif);
    if (out == NULL) {
        json_object_put(raid);
        return SH_OK;
    }
    *out = (sh_raid_t *)(void *)sh__jh_new(raid);
    return *out != NULL ? SH_OK : SH_ENOMEM;
}

SH_API const char *sh_raid_id(const sh_raid_t *r)
{
    return r != NULL ? sh__jstr(r->obj, "id") : NULL;
}

static json_object *member(const sh_raid_t *r, const char *key)
{
    json_object *m = NULL;

    if (r != NULL)
        json_object_object_get_ex(r->obj, key, &m);
    return m;
}

SH_API const char *sh_raid_from_stream_id(const sh_raid_t *r)
{
    return sh__jstr(member(r, "from"), "id");
}

SH_API const char *sh_raid_to_user_id(const sh_raid_t *r)
{
    return sh__jstr(member(r, "to"), "id");
}

SH_API int64_t sh_raid_viewer_count(const sh_raid_t *r)
{
    return r != NULL ? sh__jint(r->obj, "viewerCount") : 0;
}

SH_API const char *sh_raid_json(const sh_raid_t *r, size_t *len)
{
    return sh__jtext(r != NULL ? r->obj : NULL, len);
}

SH_API void sh_raid_free(sh_raid_t *r)
{
    sh__jh_free((struct sh__jh *)(void *)r);
}
