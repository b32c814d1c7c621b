/* examples/quickstart.c: StreamHub in one page, through the public API.
 *
 * Two users register; bob follows alice; bob listens on his notification
 * channel and on the chat; alice goes live and says hello; bob answers.
 * Bob's STREAM_LIVE notification and both chat messages are printed as
 * they arrive, then bob's stored notifications.
 *
 *   quickstart [STORE]      (default sqlite::memory:)
 *
 * A standalone hub runs callbacks only inside sh_hub_poll(), on the thread
 * that calls it: this program polls on its main thread.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/chat.h"
#include "streamhub/follows.h"
#include "streamhub/notifications.h"
#include "streamhub/streams.h"

struct seen {
    int notifications;
    int chat;
};

static void on_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct seen *seen = arg;

    if (ev == NULL)            /* the final call: unsubscribed or closing */
        return;
    (void)status;
    printf("%s #%llu %s %s\n", sh_event_channel(ev),
           (unsigned long long)sh_event_offset(ev), sh_event_type(ev),
           sh_event_data(ev, NULL));
    if (strcmp(sh_event_type(ev), "notification") == 0)
        seen->notifications++;
    else if (strcmp(sh_event_type(ev), "chat.message") == 0)
        seen->chat++;
}

static bool ok(sh_err_t rc, const char *what, const char *err)
{
    if (rc != SH_OK)
        fprintf(stderr, "quickstart: %s: %s (%s)\n", what, sh_err_name(rc),
                err);
    return rc == SH_OK;
}

static bool user(sh_hub_t *hub, const char *name, char id[40])
{
    char err[SH_ERRBUF_SIZE], email[64];
    sh_auth_t *auth = NULL;

    snprintf(email, sizeof email, "%s@example.com", name);
    if (!ok(sh_auth_register(hub, name, email, "correct horse battery",
                             &auth, err, sizeof err), "register", err))
        return false;
    snprintf(id, 40, "%s", sh_user_id(sh_auth_user(auth)));
    printf("registered %s (%s)\n", name, id);
    sh_auth_free(auth);
    return true;
}

int main(int argc, char **argv)
{
    char err[SH_ERRBUF_SIZE], alice[40], bob[40], channel[64];
    const char *store = argc > 1 ? argv[1] : "sqlite::memory:";
    struct seen seen = { 0, 0 };
    sh_notification_list_t *list = NULL;
    sh_config_t *conf = NULL;
    sh_stream_t *stream = NULL;
    sh_hub_t *hub = NULL;
    int status = 1;

    if (sh_config_new(&conf) != SH_OK ||
        !ok(sh_config_set(conf, "store", store, err, sizeof err), "store",
            err) ||
        !ok(sh_config_set(conf, "log-level", "warn", err, sizeof err),
            "log-level", err) ||
        !ok(sh_hub_open(conf, &hub, err, sizeof err), "open", err)) {
        sh_config_free(conf);
        return 1;
    }
    /* conf belongs to the hub now */

    if (!user(hub, "alice", alice) || !user(hub, "bob", bob))
        goto out;
    if (!ok(sh_follow(hub, bob, alice, NULL, err, sizeof err), "follow",
            err))
        goto out;
    printf("bob follows alice\n");

    /* Bob listens for his notifications before alice goes live. */
    snprintf(channel, sizeof channel, "user:%s", bob);
    if (!ok(sh_subscribe(hub, channel, NULL, on_event, &seen, NULL, NULL,
                         err, sizeof err), "subscribe", err))
        goto out;

    if (!ok(sh_stream_start(hub, alice, "Hello, StreamHub", "Just Chatting",
                            &stream, err, sizeof err), "start", err))
        goto out;
    printf("alice is live: %s\n", sh_stream_json(stream, NULL));

    snprintf(channel, sizeof channel, "chat:%s", sh_stream_id(stream));
    if (!ok(sh_subscribe(hub, channel, NULL, on_event, &seen, NULL, NULL,
                         err, sizeof err), "subscribe", err))
        goto out;
    {
        static const char hello[] = "hello, chat!";
        static const char hi[] = "hi alice \xf0\x9f\x91\x8b";
        sh_chat_message_t *m = NULL;

        if (!ok(sh_chat_send(hub, alice, sh_stream_id(stream), hello,
                             sizeof hello - 1, &m, NULL, err, sizeof err),
                "chat", err))
            goto out;
        printf("sent message #%lld\n", (long long)sh_chat_message_offset(m));
        sh_chat_message_free(m);
        if (!ok(sh_chat_send(hub, bob, sh_stream_id(stream), hi,
                             sizeof hi - 1, NULL, NULL, err, sizeof err),
                "chat", err))
            goto out;
    }

    /* Deliver what is pending (up to two seconds). */
    for (int i = 0; i < 200 && (seen.notifications < 1 || seen.chat < 2);
         i++)
        sh_hub_poll(hub, 10);

    if (!ok(sh_notification_list(hub, bob, 10, NULL, false, &list, err,
                                 sizeof err), "notifications", err))
        goto out;
    printf("bob has %zu notification(s):\n",
           sh_notification_list_count(list));
    for (size_t i = 0; i < sh_notification_list_count(list); i++) {
        const sh_notification_t *n = sh_notification_list_at(list, i);

        printf("  %s %s\n", sh_notification_type(n),
               sh_notification_data_json(n, NULL));
    }
    if (seen.notifications >= 1 && seen.chat >= 2 &&
        sh_notification_list_count(list) >= 1)
        status = 0;
    else
        fprintf(stderr, "quickstart: expected a notification and two chat "
                "messages, got %d and %d\n", seen.notifications, seen.chat);
out:
    sh_notification_list_free(list);
    sh_stream_free(stream);
    sh_hub_close(hub);       /* stores queued chat, ends subscriptions */
    return status;
}
