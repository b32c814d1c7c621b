/* tests/contract/test_bus_redis.c: the Redis bus's own edges, through the
 * public API, with Redis itself reached by hiredis to play what the API
 * cannot: history lost under a running node, a node that died holding a
 * claim, and counting the node's Redis subscriptions.
 * Needs STREAMHUB_TEST_REDIS_URI (skipped without: a failure in CI). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "streamhub/streamhub.h"
#include "streamhub/bus.h"

#define MAX_EVENTS 64
#define WAIT_MS 10000

static char uri[256];
static char prefix[64];
static redisContext *rc;

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t offsets[MAX_EVENTS];
    char data[MAX_EVENTS][32];
    size_t n;
    int final;
    sh_err_t final_status;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rec_cb(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct rec *r = arg;
    size_t len = 0;
    const char *d;

    pthread_mutex_lock(&r->mu);
    if (ev == NULL) {
        r->final = 1;
        r->final_status = status;
    } else if (r->n < MAX_EVENTS) {
        d = sh_event_data(ev, &len);
        snprintf(r->data[r->n], sizeof r->data[r->n], "%.*s", (int)len, d);
        r->offsets[r->n++] = sh_event_offset(ev);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Run @hub's callbacks (sh_hub_poll) until @r holds @n events, with a
 * deadline. */
static void rec_wait_on(sh_hub_t *hub, struct rec *r, size_t n)
{
    int64_t until = (int64_t)time(NULL) + WAIT_MS / 1000;

    while (r->n < n && (int64_t)time(NULL) < until)
        sh_hub_poll(hub, 100);
    assert_true(r->n >= n);
}

#define rec_wait(r, n) rec_wait_on(hub, (r), (n))

static sh_hub_t *open_hub(const char *k, const char *v)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;

    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "bus", uri, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(conf, "bus.redis-key-prefix", prefix,
                                   err, sizeof err), SH_OK);
    if (k != NULL && sh_config_set(conf, k, v, err, sizeof err) != SH_OK)
        fail_msg("%s: %s", k, err);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        fail_msg("sh_hub_open: %s", err);
    return hub;
}

static uint64_t pub(sh_hub_t *hub, const char *chan, int i)
{
    char data[32], err[SH_ERRBUF_SIZE];
    uint64_t off = 0;
    int n = snprintf(data, sizeof data, "%d", i);

    if (sh_publish(hub, chan, "t", data, (size_t)n, &off, err, sizeof err)
        != SH_OK)
        fail_msg("publish: %s", err);
    return off;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* History trimmed to bus.history-size: a position below it is not
 * recovered; one inside gives exactly the events after it. */
static void test_history_trimmed(void **state)
{
    sh_hub_t *hub = open_hub("bus.history-size", "3");
    sh_subscription_t *s = NULL;
    sh_subscribe_result_t res;
    sh_position_t since;
    uint64_t off[5];
    struct rec r;

    (void)state;
    for (int i = 0; i < 5; i++)
        off[i] = pub(hub, "app:trim", i);
    for (int i = 1; i < 5; i++)
        assert_int_equal(off[i], off[i - 1] + 1);
    assert_int_equal(sh_channel_position(hub, "app:trim", &since, NULL, 0),
                     SH_OK);
    assert_int_equal(since.offset, off[4]);

    rec_init(&r);
    since.offset = off[0];          /* off[1] is gone: only 3 kept */
    assert_int_equal(sh_subscribe(hub, "app:trim", &since, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    assert_int_equal(res.recovered, 0);
    assert_int_equal(res.current.offset, off[4]);
    sh_subscription_free(s);

    rec_init(&r);
    since.offset = off[1];
    assert_int_equal(sh_subscribe(hub, "app:trim", &since, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    assert_int_equal(res.recovered, 1);
    rec_wait(&r, 3);
    assert_int_equal(r.offsets[0], off[2]);
    assert_int_equal(r.offsets[1], off[3]);
    assert_int_equal(r.offsets[2], off[4]);
    assert_string_equal(r.data[0], "2");
    /* Then live, once. */
    pub(hub, "app:trim", 5);
    rec_wait(&r, 4);
    assert_int_equal(r.offsets[3], off[4] + 1);
    sh_subscription_free(s);
    sh_hub_close(hub);
}

/* The channel's key lost (eviction, expiry, FLUSHALL, a restart without
 * persistence): a new epoch, and the old position is not recovered. */
static void test_lost_key_renews_epoch(void **state)
{
    sh_hub_t *hub = open_hub(NULL, NULL);
    sh_subscription_t *s = NULL;
    sh_subscribe_result_t res;
    sh_position_t before, after;
    struct rec r;

    (void)state;
    pub(hub, "app:lost", 1);
    pub(hub, "app:lost", 2);
    assert_int_equal(sh_channel_position(hub, "app:lost", &before, NULL, 0),
                     SH_OK);
    freeReplyObject(cmd("DEL %sapp:lost", prefix));
    pub(hub, "app:lost", 3);
    assert_int_equal(sh_channel_position(hub, "app:lost", &after, NULL, 0),
                     SH_OK);
    assert_string_not_equal(after.epoch, before.epoch);

    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:lost", &before, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    assert_int_equal(res.recovered, 0);
    assert_string_equal(res.current.epoch, after.epoch);
    sh_subscription_free(s);
    /* The new epoch's own position recovers. */
    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:lost", &after, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    assert_int_equal(res.recovered, 1);
    sh_subscription_free(s);
    sh_hub_close(hub);
}

/* A node that died holding a claim: later events wait behind it until its
 * deadline, then go out in order; its offset stays a gap. */
static void test_dead_claim_is_skipped(void **state)
{
    sh_hub_t *hub = open_hub("bus.redis-claim-timeout-ms", "300");
    sh_subscription_t *s = NULL;
    sh_subscribe_result_t res;
    sh_position_t since;
    redisReply *t;
    uint64_t o1, o3;
    long long now;
    struct rec r, again;

    (void)state;
    o1 = pub(hub, "app:claim", 1);
    assert_int_equal(sh_channel_position(hub, "app:claim", &since, NULL, 0),
                     SH_OK);
    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:claim", NULL, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    /* What the claim script leaves when its node dies before releasing:
     * the offset handed out and its deadline. */
    t = cmd("TIME");
    now = atoll(t->element[0]->str) * 1000 +
          atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    freeReplyObject(cmd("HSET %sapp:claim s %llu c%llu %lld", prefix,
                        (unsigned long long)(o1 + 1),
                        (unsigned long long)(o1 + 1), now + 300));
    o3 = pub(hub, "app:claim", 3);
    assert_int_equal(o3, o1 + 2);
    rec_wait(&r, 1);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.offsets[0], o3);
    sh_subscription_free(s);

    rec_init(&again);
    assert_int_equal(sh_subscribe(hub, "app:claim", &since, rec_cb, &again,
                                  &s, &res, NULL, 0), SH_OK);
    assert_int_equal(res.recovered, 1);
    rec_wait(&again, 1);
    assert_int_equal(again.offsets[0], o3);
    sh_subscription_free(s);
    sh_hub_close(hub);
}

static long long numsub(const char *chan)
{
    redisReply *r = cmd("PUBSUB NUMSUB %s%s", prefix, chan);
    long long n;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* One Redis subscription per channel with local subscribers, whatever
 * their number, and none once they are gone. */
static void test_one_redis_subscription_per_channel(void **state)
{
    sh_hub_t *hub = open_hub(NULL, NULL);
    sh_subscription_t *s[3];
    struct rec r[3];

    (void)state;
    for (int i = 0; i < 3; i++) {
        rec_init(&r[i]);
        assert_int_equal(sh_subscribe(hub, "app:numsub", NULL, rec_cb,
                                      &r[i], &s[i], NULL, NULL, 0), SH_OK);
    }
    assert_int_equal(numsub("app:numsub"), 1);
    pub(hub, "app:numsub", 1);
    for (int i = 0; i < 3; i++)
        rec_wait(&r[i], 1);
    for (int i = 0; i < 3; i++)
        sh_subscription_free(s[i]);
    for (int i = 0; i < 1000 && numsub("app:numsub") != 0; i++)
        sh_hub_poll(hub, 10);
    assert_int_equal(numsub("app:numsub"), 0);
    /* Subscribing again after the UNSUBSCRIBE works. */
    rec_init(&r[0]);
    assert_int_equal(sh_subscribe(hub, "app:numsub", NULL, rec_cb, &r[0],
                                  &s[0], NULL, NULL, 0), SH_OK);
    pub(hub, "app:numsub", 2);
    rec_wait(&r[0], 1);
    sh_subscription_free(s[0]);
    sh_hub_close(hub);
}

/* Subscribing and leaving one channel over and over, faster than Redis
 * answers: its SUBSCRIBE and UNSUBSCRIBE are never in flight together
 * (hiredis would abort), and the last subscriber still gets events. */
static void test_flapping_subscriptions(void **state)
{
    sh_hub_t *hub = open_hub(NULL, NULL);
    sh_subscription_t *s = NULL;
    struct rec r;

    (void)state;
    for (int i = 0; i < 200; i++) {
        rec_init(&r);
        assert_int_equal(sh_subscribe(hub, "app:flap", NULL, rec_cb, &r,
                                      &s, NULL, NULL, 0), SH_OK);
        sh_subscription_free(s);
        sh_hub_poll(hub, 0);
    }
    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:flap", NULL, rec_cb, &r, &s,
                                  NULL, NULL, 0), SH_OK);
    pub(hub, "app:flap", 7);
    rec_wait(&r, 1);
    assert_string_equal(r.data[0], "7");
    sh_subscription_free(s);
    for (int i = 0; i < 1000 && numsub("app:flap") != 0; i++)
        sh_hub_poll(hub, 10);
    assert_int_equal(numsub("app:flap"), 0);
    sh_hub_close(hub);
}

/* The longest event type (64 bytes) crosses Redis like any other. */
static void test_longest_type_crosses(void **state)
{
    sh_hub_t *hub = open_hub(NULL, NULL);
    sh_subscription_t *s = NULL;
    char type[65], err[SH_ERRBUF_SIZE];
    struct rec r;

    (void)state;
    memset(type, 'a', 64);
    type[64] = '\0';
    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:type", NULL, rec_cb, &r, &s,
                                  NULL, NULL, 0), SH_OK);
    if (sh_publish(hub, "app:type", type, "1", 1, NULL, err, sizeof err)
        != SH_OK)
        fail_msg("publish: %s", err);
    rec_wait(&r, 1);
    assert_string_equal(r.data[0], "1");
    sh_subscription_free(s);
    sh_hub_close(hub);
}

/* A quiet channel with a subscriber outlives bus.history-ttl-seconds:
 * its key is kept alive, so the next event comes in the same epoch and
 * the subscriber is not ended. */
static void test_quiet_watched_channel_keeps_its_epoch(void **state)
{
    sh_hub_t *hub = open_hub("bus.history-ttl-seconds", "3");
    sh_subscription_t *s = NULL;
    sh_subscribe_result_t res;
    sh_position_t after;
    time_t until;
    struct rec r;

    (void)state;
    pub(hub, "app:quiet", 1);
    rec_init(&r);
    assert_int_equal(sh_subscribe(hub, "app:quiet", NULL, rec_cb, &r, &s,
                                  &res, NULL, 0), SH_OK);
    /* Past twice the TTL with no publish. */
    until = time(NULL) + 7;
    while (time(NULL) < until)
        sh_hub_poll(hub, 100);
    pub(hub, "app:quiet", 2);
    rec_wait(&r, 1);
    assert_int_equal(r.final, 0);
    assert_int_equal(sh_channel_position(hub, "app:quiet", &after, NULL, 0),
                     SH_OK);
    assert_string_equal(after.epoch, res.current.epoch);
    assert_int_equal(r.offsets[0], res.current.offset + 1);
    sh_subscription_free(s);
    sh_hub_close(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_trimmed),
        cmocka_unit_test(test_lost_key_renews_epoch),
        cmocka_unit_test(test_dead_claim_is_skipped),
        cmocka_unit_test(test_one_redis_subscription_per_channel),
        cmocka_unit_test(test_flapping_subscriptions),
        cmocka_unit_test(test_longest_type_crosses),
        cmocka_unit_test(test_quiet_watched_channel_keeps_its_epoch),
    };
    const char *u = getenv("STREAMHUB_TEST_REDIS_URI");
    char host[128];
    int port;

    if (u == NULL || u[0] == '\0') {
        fprintf(stderr, "STREAMHUB_TEST_REDIS_URI unset: skipped\n");
        return 77;
    }
    snprintf(uri, sizeof uri, "%s", u);
    if (sscanf(u, "redis://%127[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "expected redis://host:port, not %s\n", u);
        return 1;
    }
    rc = redisConnect(host, port);
    if (rc == NULL || rc->err != 0) {
        fprintf(stderr, "cannot reach %s\n", u);
        return 1;
    }
    snprintf(prefix, sizeof prefix, "cb%ld.%ld:", (long)getpid(),
             (long)time(NULL));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
