/* libstreamhub/services/subscriptions.c: paid channel subscriptions
 * (follows.h, sh_channel_subscribe).
 *
 * Each call records one subscription row and the channel's
 * SUBSCRIPTION_NEW notification in one transaction, then publishes the
 * notification on the channel's user:<id>.
 */
#include <stdlib.h>
#include <string.h>

#include "streamhub/follows.h"
#include "outbox_int.h"
#include "services_int.h"

struct sh_channel_subscription { json_object *obj; };

static const struct sh__sql q_insert = {
    "INSERT INTO channel_subscriptions (id, subscriber_id, channel_id, tier, "
    "created_at) VALUES (?, ?, ?, ?, ?)", NULL, NULL
};

SH_API sh_err_t sh_channel_subscribe(sh_hub_t *hub, const char *actor_id,
                                     const char *channel_id, int tier,
                                     sh_channel_subscription_t **out,
                                     char *errbuf, size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    char id[SH__UUID_LEN + 1], sub_name[64], chan_name[64];
    json_object *obj = NULL, *data = NULL, *notif = NULL;
    struct sh__conn *c;
    struct sh__val p[5];
    int64_t now = sh__now_ms();
    sh_err_t rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = sh__hub_live(hub)) != SH_OK)
        return rc;
    if (tier == 0)
        tier = 1;
    if (tier < 1 || tier > 3) {
        sh__errbuf(errbuf, errbuf_len, "tier: %d is out of range 1..3",
                   tier);
        return SH_EINVAL;
    }
    if ((rc = sh__store_acquire(hub->store, &c)) != SH_OK)
        return rc;
    rc = sh__actor_c(c, actor_id, NULL, errbuf, errbuf_len);
    if (rc == SH_OK && channel_id != NULL &&
        strcmp(channel_id, actor_id) == 0) {
        sh__errbuf(errbuf, errbuf_len, "cannot subscribe to oneself");
        rc = SH_EINVAL;
    }
    if (rc == SH_OK)
        rc = sh__user_name_c(c, actor_id, sub_name, sizeof sub_name, errbuf,
                             errbuf_len);
    if (rc == SH_OK)
        rc = sh__user_name_c(c, channel_id, chan_name, sizeof chan_name,
                             errbuf, errbuf_len);
    if (rc != SH_OK)
        goto out;
    sh__uuid4(id);
    obj = json_object_new_object();
    if (obj == NULL || !sh__jset_str(obj, "id", id) ||
        !sh__jset(obj, "subscriber", sh__juser_ref(actor_id, sub_name)) ||
        !sh__jset(obj, "channel", sh__juser_ref(channel_id, chan_name)) ||
        !sh__jset_int(obj, "tier", tier) ||
        !sh__jset_time(obj, "createdAt", now, false) ||
        json_object_deep_copy(obj, &data, NULL) != 0) {
        rc = SH_ENOMEM;
        goto out;
    }
    if ((rc = sh__store_begin(c, errbuf, errbuf_len)) != SH_OK)
        goto out;
    p[0] = sh__v_text(id);
    p[1] = sh__v_text(actor_id);
    p[2] = sh__v_text(channel_id);
    p[3] = sh__v_int(tier);
    p[4] = sh__v_int(now);
    rc = sh__store_exec(c, &q_insert, p, 5, NULL, NULL, NULL, errbuf,
                        errbuf_len);
    if (rc == SH_OK) {
        rc = sh__notify_insert_c(c, channel_id, "SUBSCRIPTION_NEW", data,
                                 &notif, errbuf, errbuf_len);
        data = NULL;
    }
    if (rc == SH_OK)
        rc = sh__outbox_add_obj(hub, c, "user:", channel_id,
                                "subscription.new", obj, errbuf,
                                errbuf_len);
    if (rc == SH_OK)
        rc = sh__store_commit(c, errbuf, errbuf_len);
    else
        sh__store_rollback(c);
out:
    sh__store_release(c);
    json_object_put(data);
    if (rc != SH_OK) {
        json_object_put(obj);
        json_object_put(notif);
        return rc;
    }
    sh__outbox_kick(hub);
    sh__notify_publish(hub, channel_id, notif);
    if (out == NULL) {
        json_object_put(obj);
        return SH_OK;
    }
    *out = (sh_channel_subscription_t *)(void *)sh__jh_new(obj);
    return *out != NULL ? SH_OK : SH_ENOMEM;
}

SH_API const char *
sh_channel_subscription_id(const sh_channel_subscription_t *s)
{
    return s != NULL ? sh__jstr(s->obj, "id") : NULL;
}

static json_object *member(const sh_channel_subscription_t *s,
                           const char *key)
{
    json_object *m = NULL;

    if (s != NULL)
        json_object_object_get_ex(s->obj, key, &m);
    return m;
}

SH_API const char *
sh_channel_subscription_subscriber_id(const sh_channel_subscription_t *s)
{
    return sh__jstr(member(s, "subscriber"), "id");
}

SH_API const char *
sh_channel_subscription_channel_id(const sh_channel_subscription_t *s)
{
    return sh__jstr(member(s, "channel"), "id");
}

SH_API int sh_channel_subscription_tier(const sh_channel_subscription_t *s)
{
    return s != NULL ? (int)sh__jint(s->obj, "tier") : 0;
}

SH_API const char *
sh_channel_subscription_json(const sh_channel_subscription_t *s,
                             size_t *len)
{
    return sh__jtext(s != NULL ? s->obj : NULL, len);
}

SH_API void sh_channel_subscription_free(sh_channel_subscription_t *s)
{
    sh__jh_free((struct sh__jh *)(void *)s);
}
