/* examples/c/chatbot.c: a chat bot that answers `!uptime` in a stream's
 * chat with how long the stream has been live.
 *
 *   chatbot --demo      an in-memory hub, a broadcaster, a viewer and the
 *                       bot; the viewer asks `!uptime`, the bot answers,
 *                       the program sees the answer and exits 0.
 *   chatbot STORE STREAM_ID BOT_USERNAME BOT_PASSWORD
 *                       answer in STREAM_ID's chat until interrupted.
 *
 * The shape of every standalone embedder: the subscription callback runs
 * inside sh_hub_poll() on our thread, must not block, so it only keeps a
 * reference to the event (sh_event_dup()); the main loop, outside the
 * callback, reads the queued events and makes the (blocking) service
 * calls.  Public API only; json-c reads the events' JSON.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <streamhub/streamhub.h>
#include <streamhub/chat.h>

#define QUEUE_MAX 256

struct bot {
    sh_hub_t *hub;
    char bot_id[64];
    char stream_id[64];
    sh_event_t *queue[QUEUE_MAX]; /* owned references, FIFO */
    size_t queued;
    bool ended;                   /* the final callback ran */
    int answers_seen;             /* the bot's own messages seen */
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Runs inside sh_hub_poll(): keep the event, nothing else. */
static void on_chat(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct bot *b = arg;

    if (status != SH_OK) {          /* the final call: arg dies after */
        b->ended = true;
        return;
    }
    if (b->queued < QUEUE_MAX)
        b->queue[b->queued++] = sh_event_dup(ev);
    else
        fprintf(stderr, "chatbot: queue full, event %llu dropped\n",
                (unsigned long long)sh_event_offset(ev));
}

/* Seconds since the RFC 3339 UTC time @ts ("2026-11-27T05:33:42.123Z"). */
static long long seconds_since(const char *ts)
{
    struct tm tm;
    int y, mo, d, h, mi, s;

    if (ts == NULL || sscanf(ts, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi,
                             &s) != 6)
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (long long)(time(NULL) - timegm(&tm));
}

static void answer_uptime(struct bot *b)
{
    char err[SH_ERRBUF_SIZE], text[128];
    sh_stream_t *s = NULL;
    long long up;
    sh_err_t rc;

    rc = sh_stream_get(b->hub, b->stream_id, &s, err, sizeof err);
    if (rc != SH_OK) {
        fprintf(stderr, "chatbot: stream: %s\n", err);
        return;
    }
    up = sh_stream_is_live(s) ? seconds_since(sh_stream_started_at(s)) : -1;
    sh_stream_free(s);
    if (up < 0)
        snprintf(text, sizeof text, "The stream is not live.");
    else
        snprintf(text, sizeof text, "Live for %lldh %02lldm %02llds.",
                 up / 3600, up / 60 % 60, up % 60);
    rc = sh_chat_send(b->hub, b->bot_id, b->stream_id, text, strlen(text),
                      NULL, NULL, err, sizeof err);
    if (rc != SH_OK)
        fprintf(stderr, "chatbot: send: %s (%s)\n", err, sh_err_name(rc));
}

/* Handle one chat event, outside the callback. */
static void handle(struct bot *b, const sh_event_t *ev)
{
    json_object *data, *text, *author, *id;
    const char *t, *who;

    if (strcmp(sh_event_type(ev), "chat.message") != 0)
        return;
    data = json_tokener_parse(sh_event_data(ev, NULL));
    if (data == NULL)
        return;
    if (json_object_object_get_ex(data, "text", &text) &&
        json_object_object_get_ex(data, "author", &author) &&
        json_object_object_get_ex(author, "id", &id)) {
        t = json_object_get_string(text);
        who = json_object_get_string(id);
        if (strcmp(who, b->bot_id) == 0) {
            printf("bot said: %s\n", t);
            b->answers_seen++;
        } else if (strcmp(t, "!uptime") == 0) {
            printf("asked for uptime (offset %llu)\n",
                   (unsigned long long)sh_event_offset(ev));
            answer_uptime(b);
        }
    }
    json_object_put(data);
}

static void drain(struct bot *b)
{
    size_t n = b->queued;

    /* handle() may not add to the queue: events come only from poll. */
    for (size_t i = 0; i < n; i++) {
        handle(b, b->queue[i]);
        sh_event_free(b->queue[i]);
    }
    b->queued = 0;
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
        fprintf(stderr, "chatbot: %s\n", err);
        sh_config_free(conf);   /* still ours when open failed */
        return NULL;
    }
    return hub;                 /* the hub owns conf now */
}

/* Register @name and copy its user id into @id. */
static int make_user(sh_hub_t *hub, const char *name, char id[64])
{
    char err[SH_ERRBUF_SIZE], email[64];
    sh_auth_t *a = NULL;

    snprintf(email, sizeof email, "%s@example.org", name);
    if (sh_auth_register(hub, name, email, "demo-password", &a, err,
                         sizeof err) != SH_OK) {
        fprintf(stderr, "chatbot: register %s: %s\n", name, err);
        return -1;
    }
    snprintf(id, 64, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
    return 0;
}

static int run(struct bot *b, bool demo, const char *viewer_id)
{
    char err[SH_ERRBUF_SIZE], channel[SH_CHANNEL_MAX + 1];
    sh_subscription_t *sub = NULL;
    sh_err_t rc;
    int polls = 0;

    snprintf(channel, sizeof channel, "chat:%s", b->stream_id);
    rc = sh_subscribe(b->hub, channel, NULL, on_chat, b, &sub, NULL, err,
                      sizeof err);
    if (rc != SH_OK) {
        fprintf(stderr, "chatbot: subscribe: %s\n", err);
        return 1;
    }
    if (demo) {
        rc = sh_chat_send(b->hub, viewer_id, b->stream_id, "!uptime", 7,
                          NULL, NULL, err, sizeof err);
        if (rc != SH_OK) {
            fprintf(stderr, "chatbot: viewer send: %s\n", err);
            sh_subscription_free(sub);
            return 1;
        }
    }
    while (!stop_flag && !b->ended && (!demo || b->answers_seen == 0)) {
        if (sh_hub_poll(b->hub, 100) < 0)
            break;
        drain(b);
        if (demo && ++polls > 100) {
            fprintf(stderr, "chatbot: no answer within 10 s\n");
            break;
        }
    }
    /* Ends the subscription unless the bus did; the handle stays ours
     * until here, whatever happened to the subscription. */
    sh_subscription_free(sub);
    while (!b->ended && sh_hub_poll(b->hub, 100) >= 0)
        drain(b);               /* until the final callback */
    drain(b);
    return demo && b->answers_seen == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static struct bot b;        /* big queue: not on the stack */
    char err[SH_ERRBUF_SIZE], bc_id[64], viewer_id[64];
    sh_stream_t *s = NULL;
    sh_auth_t *a = NULL;
    int code;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (argc == 2 && strcmp(argv[1], "--demo") == 0) {
        b.hub = open_hub("sqlite::memory:");
        if (b.hub == NULL)
            return 1;
        if (make_user(b.hub, "broadcaster", bc_id) != 0 ||
            make_user(b.hub, "viewer", viewer_id) != 0 ||
            make_user(b.hub, "uptime_bot", b.bot_id) != 0 ||
            sh_stream_start(b.hub, bc_id, "Demo stream", NULL, &s, err,
                            sizeof err) != SH_OK) {
            sh_hub_close(b.hub);
            return 1;
        }
        snprintf(b.stream_id, sizeof b.stream_id, "%s", sh_stream_id(s));
        sh_stream_free(s);
        code = run(&b, true, viewer_id);
    } else if (argc == 5) {
        b.hub = open_hub(argv[1]);
        if (b.hub == NULL)
            return 1;
        if (sh_auth_login(b.hub, argv[3], argv[4], &a, err,
                          sizeof err) != SH_OK) {
            fprintf(stderr, "chatbot: login: %s\n", err);
            sh_hub_close(b.hub);
            return 1;
        }
        snprintf(b.bot_id, sizeof b.bot_id, "%s",
                 sh_user_id(sh_auth_user(a)));
        sh_auth_free(a);
        snprintf(b.stream_id, sizeof b.stream_id, "%s", argv[2]);
        code = run(&b, false, NULL);
    } else {
        fprintf(stderr, "usage: chatbot --demo\n"
                "       chatbot STORE STREAM_ID BOT_USERNAME "
                "BOT_PASSWORD\n");
        return 2;
    }
    sh_hub_close(b.hub);
    return code;
}
