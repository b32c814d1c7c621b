/* examples/c/notify_listener.c: print a user's notifications as they come.
 *
 *   notify_listener --demo   an in-memory hub: alice follows bob, carol
 *                            follows alice, bob goes live; alice's
 *                            listener prints NEW_FOLLOWER and STREAM_LIVE,
 *                            then exits 0.
 *   notify_listener STORE USER_ID   print USER_ID's notifications until
 *                            interrupted.
 *
 * Notifications are `notification` events on the channel `user:<id>`;
 * their data is the GraphQL Notification.  The callback runs inside
 * sh_hub_poll() on this thread and only prints: it never blocks.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <streamhub/streamhub.h>

struct listener {
    int seen;
    bool ended;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_notification(void *arg, const sh_event_t *ev,
                            sh_err_t status)
{
    struct listener *l = arg;

    if (status != SH_OK) {
        /* Final call: SH_ECANCELED, or SH_EBUSY when we fell behind
         * (subscribe again from the last position to recover). */
        if (status != SH_ECANCELED)
            fprintf(stderr, "notify_listener: ended: %s\n",
                    sh_strerror(status));
        l->ended = true;
        return;
    }
    printf("[%s #%llu] %s %s\n", sh_event_channel(ev),
           (unsigned long long)sh_event_offset(ev), sh_event_type(ev),
           sh_event_data(ev, NULL));
    fflush(stdout);
    l->seen++;
}

static sh_hub_t *open_hub(const char *store)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;

    if (sh_config_new(&conf) != SH_OK)
        return NULL;
    if (sh_config_set(conf, "store", store, err, sizeof err) != SH_OK ||
        sh_config_set(conf, "log-level", "warn", err, sizeof err) != SH_OK ||
        sh_hub_open(conf, &hub, err, sizeof err) != SH_OK) {
        fprintf(stderr, "notify_listener: %s\n", err);
        sh_config_free(conf);
        return NULL;
    }
    return hub;
}

static int make_user(sh_hub_t *hub, const char *name, char id[64])
{
    char err[SH_ERRBUF_SIZE], email[64];
    sh_auth_t *a = NULL;

    snprintf(email, sizeof email, "%s@example.org", name);
    if (sh_auth_register(hub, name, email, "demo-password", &a, err,
                         sizeof err) != SH_OK) {
        fprintf(stderr, "notify_listener: register %s: %s\n", name, err);
        return -1;
    }
    snprintf(id, 64, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
    return 0;
}

int main(int argc, char **argv)
{
    char err[SH_ERRBUF_SIZE], channel[SH_CHANNEL_MAX + 1];
    char alice[64], bob[64], carol[64];
    struct listener l = { 0, false };
    sh_subscription_t *sub = NULL;
    sh_hub_t *hub;
    bool demo = argc == 2 && strcmp(argv[1], "--demo") == 0;
    int polls = 0;

    if (!demo && argc != 3) {
        fprintf(stderr, "usage: notify_listener --demo\n"
                "       notify_listener STORE USER_ID\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    hub = open_hub(demo ? "sqlite::memory:" : argv[1]);
    if (hub == NULL)
        return 1;
    if (demo && (make_user(hub, "alice", alice) != 0 ||
                 make_user(hub, "bob", bob) != 0 ||
                 make_user(hub, "carol", carol) != 0)) {
        sh_hub_close(hub);
        return 1;
    }
    snprintf(channel, sizeof channel, "user:%s", demo ? alice : argv[2]);
    if (sh_subscribe(hub, channel, NULL, on_notification, &l, &sub, NULL,
                     err, sizeof err) != SH_OK) {
        fprintf(stderr, "notify_listener: subscribe: %s\n", err);
        sh_hub_close(hub);
        return 1;
    }
    if (demo && (sh_follow(hub, alice, bob, NULL, err, sizeof err) != SH_OK ||
                 sh_follow(hub, carol, alice, NULL, err, sizeof err) != SH_OK ||
                 sh_stream_start(hub, bob, "Bob plays", "games", NULL, err,
                                 sizeof err) != SH_OK)) {
        fprintf(stderr, "notify_listener: demo: %s\n", err);
        sh_subscription_free(sub);
        sh_hub_close(hub);
        return 1;
    }
    while (!stop_flag && !l.ended && (!demo || l.seen < 2)) {
        if (sh_hub_poll(hub, 100) < 0)
            break;
        if (demo && ++polls > 100)
            break;
    }
    /* Ends the subscription unless the bus did. */
    sh_subscription_free(sub);
    sh_hub_close(hub);  /* runs the final callback if still pending */
    if (demo && l.seen < 2) {
        fprintf(stderr, "notify_listener: saw %d of 2 notifications\n",
                l.seen);
        return 1;
    }
    return 0;
}
