/* tests/unit/test_services_cluster.c: two hubs in one process on one redis
 * (STREAMHUB_TEST_REDIS_URI; skipped with 77 without it) and one SQLite
 * file act as one service: User.online and viewer counts seen from the
 * other hub, a hub that stops heart-beating dropping out, the shared cap
 * of connections per user, the shared rate limits.
 *
 * A node killed with SIGKILL leaves in redis exactly what a "ghost" node
 * written here by hand leaves: its heartbeat score, its fields, its key
 * set; the ghost's heartbeat is simply never refreshed. */
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

#include "core/ratelimit_int.h"
#include "core/redis_int.h"
#include "services/hub_int.h"
#include "streamhub/auth.h"
#include "streamhub/chat.h"
#include "streamhub/follows.h"
#include "streamhub/notifications.h"
#include "streamhub/streams.h"
#include "services/services_int.h"

static const char *redis_uri;

struct fx {
    char dir[64], db[96];
    sh_hub_t *a, *b;
    struct sh__redis *admin;       /* the test's own connection */
};

static sh_hub_t *open_hub_prefixed(const char *db, const char *redis,
                                   const char *rate_limit,
                                   const char *prefix)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE], store[128];

    snprintf(store, sizeof store, "sqlite:%s", db);
    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", store, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "redis", redis, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "redis.node-ttl-ms", "1000", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "chat.rate-limit", rate_limit, err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "chat.rate-window-seconds", "3600",
                                   err, sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "redis.key-prefix", prefix, err,
                                   sizeof err), SH_OK);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK) {
        print_error("hub: %s\n", err);
        sh_config_free(c);
        fail();
    }
    return hub;
}

static sh_hub_t *open_hub(const char *db, const char *redis,
                          const char *rate_limit)
{
    return open_hub_prefixed(db, redis, rate_limit, "sh:");
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[SH_ERRBUF_SIZE];

    snprintf(f->dir, sizeof f->dir, "/tmp/sh-cluster-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/hub.db", f->dir);
    f->a = open_hub(f->db, redis_uri, "3");
    f->b = open_hub(f->db, redis_uri, "3");
    assert_int_equal(sh__redis_new(redis_uri, 1, 1000, 1000, &f->admin, err,
                                   sizeof err), SH_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char path[160];

    sh_hub_close(f->a);
    sh_hub_close(f->b);
    sh__redis_free(f->admin);
    snprintf(path, sizeof path, "%s-wal", f->db);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", f->db);
    unlink(path);
    unlink(f->db);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A user id that no other test (nor run) shares: the redis is shared. */
static void fresh_id(char *id)
{
    sh__uuid4(id);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static void test_online_is_seen_from_the_other_hub(void **state)
{
    struct fx *f = *state;
    char u[SH__UUID_LEN + 1];

    fresh_id(u);
    assert_false(sh__online(f->a, u));
    assert_false(sh__online(f->b, u));
    assert_int_equal(sh__online_join(f->a, u, 10), SH_OK);
    assert_true(sh__online(f->a, u));
    assert_true(sh__online(f->b, u));
    sh__online_leave(f->a, u);
    assert_false(sh__online(f->a, u));
    assert_false(sh__online(f->b, u));
}

/* Another deployment on the same redis (another key prefix) is another
 * cluster. */
static void test_a_key_prefix_is_a_cluster_of_its_own(void **state)
{
    struct fx *f = *state;
    char u[SH__UUID_LEN + 1];
    sh_hub_t *other = open_hub_prefixed(f->db, redis_uri, "3", "other:");

    fresh_id(u);
    assert_int_equal(sh__online_join(f->a, u, 1), SH_OK);
    assert_true(sh__online(f->b, u));
    assert_false(sh__online(other, u));
    assert_int_equal(sh__online_join(other, u, 1), SH_OK);
    sh__online_leave(other, u);
    sh__online_leave(f->a, u);
    sh_hub_close(other);
}

static void test_connection_cap_holds_across_hubs(void **state)
{
    struct fx *f = *state;
    char u[SH__UUID_LEN + 1];

    fresh_id(u);
    assert_int_equal(sh__online_join(f->a, u, 3), SH_OK);
    assert_int_equal(sh__online_join(f->a, u, 3), SH_OK);
    assert_int_equal(sh__online_join(f->b, u, 3), SH_OK);
    /* Three in all: a fourth is refused on either hub. */
    assert_int_equal(sh__online_join(f->b, u, 3), SH_ERATELIMITED);
    assert_int_equal(sh__online_join(f->a, u, 3), SH_ERATELIMITED);
    sh__online_leave(f->a, u);
    assert_int_equal(sh__online_join(f->b, u, 3), SH_OK);
    assert_int_equal(sh__online_join(f->a, u, 3), SH_ERATELIMITED);
    sh__online_leave(f->a, u);
    sh__online_leave(f->b, u);
    sh__online_leave(f->b, u);
    assert_false(sh__online(f->a, u));
}

/* A new user, made through hub @hub; its id into @user_id. */
static void new_user(sh_hub_t *hub, char *user_id)
{
    char name[26], email[64], err[SH_ERRBUF_SIZE];
    sh_auth_t *a = NULL;
    char rnd[SH__UUID_LEN + 1];

    sh__uuid4(rnd);
    snprintf(name, sizeof name, "u%.8s%.12s", rnd, rnd + 24);
    snprintf(email, sizeof email, "%s@example.com", name);
    if (sh_auth_register(hub, name, email, "password123", &a, err,
                         sizeof err) != SH_OK) {
        print_error("register %s: %s\n", name, err);
        fail();
    }
    snprintf(user_id, SH__UUID_LEN + 1, "%s",
             sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
}

/* A user and a live stream, made through hub @hub; the stream id out. */
static void live_stream(sh_hub_t *hub, char *stream_id, char *user_id)
{
    char err[SH_ERRBUF_SIZE];
    sh_stream_t *s = NULL;

    new_user(hub, user_id);
    assert_int_equal(sh_stream_start(hub, user_id, "t", NULL, &s, err,
                                     sizeof err), SH_OK);
    snprintf(stream_id, SH__UUID_LEN + 1, "%s", sh_stream_id(s));
    sh_stream_free(s);
}

static int64_t viewers(sh_hub_t *hub, const char *stream_id)
{
    sh_stream_t *s = NULL;
    char err[SH_ERRBUF_SIZE];
    int64_t n;

    assert_int_equal(sh_stream_get(hub, stream_id, &s, err, sizeof err),
                     SH_OK);
    n = sh_stream_viewer_count(s);
    sh_stream_free(s);
    return n;
}

static void test_viewer_counts_add_up_across_hubs(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];

    live_stream(f->a, sid, uid);
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 2, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->b, sid), 2);
    assert_int_equal(sh_stream_set_viewers(f->b, sid, 3, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->a, sid), 5);
    /* Each hub sets its own share: A's change keeps B's three. */
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 0, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->b, sid), 3);
}

/* Two nodes store the sums they computed in any order: a writer whose
 * sum is already old when it reaches the store must not leave it there. */
static void test_a_late_stale_viewer_sum_does_not_stick(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];

    live_stream(f->a, sid, uid);
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 1, NULL, 0), SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->b, sid, 2, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->a, sid), 3);
    /* A's write of the sum it computed before B's change lands last. */
    assert_int_equal(sh__streams_viewers_sync(f->a, sid, 1, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->b, sid), 3);
}

/* Write a ghost node into redis: heartbeat deadline @ttl_ms from the
 * server's now, @n in @key's hash. */
static void ghost(struct fx *f, const char *node, const char *key,
                  const char *n, int ttl_ms)
{
    static const struct sh__redis_script s = {
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / "
        "1000)\n"
        "redis.call('ZADD', 'sh:nodes', now + tonumber(ARGV[3]), ARGV[1])\n"
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
        "redis.call('SADD', 'sh:nk:' .. ARGV[1], KEYS[1])\n"
        "return 1\n"
    };
    char ttl[16], err[SH_ERRBUF_SIZE];

    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    assert_int_equal(sh__redis_eval(f->admin, &s, 1, 4,
                                    (const char *[]){ key, node, n, ttl },
                                    NULL, NULL, err, sizeof err), SH_OK);
}

static int64_t hlen(struct fx *f, const char *key)
{
    redisReply *rep = NULL;
    int64_t n;

    assert_int_equal(sh__redis_cmd(f->admin, 2, (const char *[]){ "HLEN",
                     key }, NULL, &rep, NULL, 0), SH_OK);
    n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static void test_a_node_that_stops_heart_beating_drops_out(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];
    char node[SH__UUID_LEN + 1], vkey[64], ckey[64];
    int64_t deadline;

    live_stream(f->a, sid, uid);
    sh__uuid4(node);
    snprintf(vkey, sizeof vkey, "sh:viewers:%s", sid);
    snprintf(ckey, sizeof ckey, "sh:conns:%s", uid);
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 1, NULL, 0), SH_OK);
    /* The ghost counts while its heartbeat is live... */
    ghost(f, node, vkey, "7", 4000);
    ghost(f, node, ckey, "10", 4000);
    assert_true(sh__online(f->b, uid));
    assert_int_equal(sh__online_join(f->b, uid, 10), SH_ERATELIMITED);
    assert_int_equal(sh_stream_set_viewers(f->b, sid, 2, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->a, sid), 10);
    /* ...and not once it lapsed: a live hub's heartbeat reaps it and
     * stores the stream's count without it. */
    deadline = sh__mono_ms() + 15000;
    while ((viewers(f->a, sid) != 3 || hlen(f, ckey) != 0) &&
           sh__mono_ms() < deadline)
        sleep_ms(50);
    assert_int_equal(viewers(f->a, sid), 3);
    assert_int_equal(hlen(f, ckey), 0);
    assert_int_equal(hlen(f, vkey), 2);
    assert_false(sh__online(f->b, uid));
    assert_int_equal(sh__online_join(f->b, uid, 10), SH_OK);
    sh__online_leave(f->b, uid);
}

static void test_a_clean_stop_removes_the_hubs_counts(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];
    sh_hub_t *c = open_hub(f->db, redis_uri, "3");

    live_stream(f->a, sid, uid);
    assert_int_equal(sh__online_join(c, uid, 10), SH_OK);
    assert_int_equal(sh_stream_set_viewers(c, sid, 4, NULL, 0), SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 1, NULL, 0), SH_OK);
    assert_true(sh__online(f->a, uid));
    assert_int_equal(viewers(f->a, sid), 5);
    sh_hub_close(c);
    /* At once, not a TTL later. */
    assert_false(sh__online(f->a, uid));
    assert_int_equal(viewers(f->a, sid), 1);
}

static void test_chat_rate_limit_is_shared(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];
    char err[SH_ERRBUF_SIZE];
    int64_t retry = 0;

    live_stream(f->a, sid, uid);
    /* chat.rate-limit 3 an hour, per author, over both hubs. */
    assert_int_equal(sh_chat_send(f->a, uid, sid, "one", 3, NULL, &retry,
                                  err, sizeof err), SH_OK);
    assert_int_equal(sh_chat_send(f->b, uid, sid, "two", 3, NULL, &retry,
                                  err, sizeof err), SH_OK);
    assert_int_equal(sh_chat_send(f->a, uid, sid, "three", 5, NULL, &retry,
                                  err, sizeof err), SH_OK);
    assert_int_equal(sh_chat_send(f->b, uid, sid, "four", 4, NULL, &retry,
                                  err, sizeof err), SH_ERATELIMITED);
    assert_true(retry >= 1);
    assert_int_equal(sh_chat_send(f->a, uid, sid, "five", 4, NULL, &retry,
                                  err, sizeof err), SH_ERATELIMITED);
}

static void test_shared_bucket_refills_and_gives_back(void **state)
{
    struct fx *f = *state;
    struct sh__limiter *x = sh__limiter_new(2, 0.001, 16);
    struct sh__limiter *y = sh__limiter_new(2, 0.001, 16);
    struct sh__limiter *fast = sh__limiter_new(2, 50, 16);
    char name[48], key[SH__UUID_LEN + 1];
    int64_t retry = 0, deadline;
    bool ok;

    sh__uuid4(key);
    snprintf(name, sizeof name, "t-%s", key);
    assert_true(sh__limiter_share(x, sh__cluster_redis(f->a), name, false));
    assert_true(sh__limiter_share(y, sh__cluster_redis(f->b), name, false));
    /* Two tokens for both nodes together. */
    assert_true(sh__limiter_take(x, key, strlen(key), 1, 0, &retry));
    assert_true(sh__limiter_take(y, key, strlen(key), 1, 0, &retry));
    assert_false(sh__limiter_take(x, key, strlen(key), 1, 0, &retry));
    assert_false(sh__limiter_take(y, key, strlen(key), 1, 0, &retry));
    assert_true(retry > 100000);
    /* A give on one node is a token for the other. */
    sh__limiter_give(x, key, strlen(key), 1);
    assert_true(sh__limiter_take(y, key, strlen(key), 1, 0, &retry));
    assert_false(sh__limiter_take(x, key, strlen(key), 1, 0, &retry));
    /* Refill by the server's clock (50 a second): empty it, then wait,
     * with a deadline, for the next token. */
    assert_true(sh__limiter_share(fast, sh__cluster_redis(f->b), name,
                                  false));
    sh__uuid4(key);
    while (sh__limiter_take(fast, key, strlen(key), 1, 0, &retry))
        ;
    assert_true(retry >= 1 && retry <= 20);
    deadline = sh__mono_ms() + 10000;
    do {
        sleep_ms(5);
        ok = sh__limiter_take(fast, key, strlen(key), 1, 0, &retry);
    } while (!ok && sh__mono_ms() < deadline);
    assert_true(ok);
    sh__limiter_free(x);
    sh__limiter_free(y);
    sh__limiter_free(fast);
}

static void test_redis_down_fails_open_or_closed(void **state)
{
    struct fx *f = *state;
    struct sh__redis *dead = NULL;
    struct sh__limiter *open = sh__limiter_new(1, 0.001, 16);
    struct sh__limiter *closed = sh__limiter_new(1, 0.001, 16);
    char err[SH_ERRBUF_SIZE];
    int64_t retry = 0;

    (void)f;
    assert_int_equal(sh__redis_new("redis://127.0.0.1:1", 1, 1000, 1000,
                                   &dead, err, sizeof err), SH_OK);
    assert_true(sh__limiter_share(open, dead, "down", false));
    assert_true(sh__limiter_share(closed, dead, "down", true));
    /* Open: this node's own bucket, one token. */
    assert_true(sh__limiter_take(open, "k", 1, 1, sh__mono_ms(), &retry));
    assert_false(sh__limiter_take(open, "k", 1, 1, sh__mono_ms(), &retry));
    /* Closed: refused, retry in a second. */
    assert_false(sh__limiter_take(closed, "k", 1, 1, sh__mono_ms(),
                                  &retry));
    assert_int_equal(retry, 1000);
    sh__limiter_free(open);
    sh__limiter_free(closed);
    sh__redis_free(dead);
}

static void test_a_hub_opens_and_counts_locally_without_redis(void **state)
{
    struct fx *f = *state;
    char u[SH__UUID_LEN + 1];
    sh_hub_t *lone = open_hub(f->db, "redis://127.0.0.1:1", "3");

    fresh_id(u);
    /* Fail open: counted on this hub, which knows it is online. */
    assert_int_equal(sh__online_join(lone, u, 1), SH_OK);
    assert_true(sh__online(lone, u));
    sh__online_leave(lone, u);
    assert_false(sh__online(lone, u));
    sh_hub_close(lone);
}


/* The value of @series (a full Prometheus series name with labels) in
 * @hub's /metrics text; 0 when absent. */
static double metric(sh_hub_t *hub, const char *series)
{
    char *text = NULL, *at;
    size_t len = 0;
    double v = 0;

    assert_int_equal(sh__metrics_render(hub->metrics, &text, &len), SH_OK);
    at = strstr(text, series);
    if (at != NULL)
        v = strtod(at + strlen(series), NULL);
    free(text);
    return v;
}

#define CACHE_REQ "streamhub_cache_requests_total"
#define STREAM_HIT CACHE_REQ "{cache=\"stream\",result=\"hit\"}"
#define STREAM_MISS CACHE_REQ "{cache=\"stream\",result=\"miss\"}"
#define USER_HIT CACHE_REQ "{cache=\"user\",result=\"hit\"}"
#define UNREAD_HIT CACHE_REQ "{cache=\"unread\",result=\"hit\"}"

static void test_cached_stream_is_never_stale_after_a_write(void **state)
{
    struct fx *f = *state;
    char sid[SH__UUID_LEN + 1], uid[SH__UUID_LEN + 1];
    char err[SH_ERRBUF_SIZE];
    sh_stream_t *s = NULL;
    double hits, misses;

    live_stream(f->a, sid, uid);
    misses = metric(f->b, STREAM_MISS);
    hits = metric(f->b, STREAM_HIT);
    assert_int_equal(sh_stream_get(f->b, sid, &s, err, sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "t");
    sh_stream_free(s);
    assert_int_equal(sh_stream_get(f->b, sid, &s, err, sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "t");
    sh_stream_free(s);
    assert_true(metric(f->b, STREAM_MISS) == misses + 1);
    assert_true(metric(f->b, STREAM_HIT) == hits + 1);
    /* A write on the other hub: the next read anywhere sees it. */
    assert_int_equal(sh_stream_update(f->a, uid, sid, "renamed", NULL, NULL,
                                      err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_get(f->b, sid, &s, err, sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "renamed");
    sh_stream_free(s);
    assert_int_equal(sh_stream_set_viewers(f->a, sid, 4, NULL, 0), SH_OK);
    assert_int_equal(viewers(f->b, sid), 4);
    assert_int_equal(sh_stream_stop(f->a, uid, sid, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_get(f->b, sid, &s, err, sizeof err), SH_OK);
    assert_false(sh_stream_is_live(s));
    sh_stream_free(s);
}

static void test_cached_user_and_unread_count(void **state)
{
    struct fx *f = *state;
    char b[SH__UUID_LEN + 1], fan[SH__UUID_LEN + 1];
    char err[SH_ERRBUF_SIZE];
    sh_user_t *u = NULL;
    sh_stream_t *s = NULL;
    int64_t n = -1;
    double hits;

    new_user(f->a, b);
    new_user(f->a, fan);
    hits = metric(f->b, USER_HIT);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sh_user_get(f->b, NULL, b, &u, err, sizeof err),
                         SH_OK);
        assert_string_equal(sh_user_id(u), b);
        sh_user_free(u);
    }
    assert_true(metric(f->b, USER_HIT) == hits + 1);
    /* Unread counts: cached, then changed by a follow (one key), a go
     * live (every follower) and a mark-read, each seen at once. */
    hits = metric(f->b, UNREAD_HIT);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sh_notification_unread_count(f->b, fan, &n, err,
                                                      sizeof err), SH_OK);
        assert_int_equal(n, 0);
    }
    assert_true(metric(f->b, UNREAD_HIT) == hits + 1);
    assert_int_equal(sh_notification_unread_count(f->b, b, &n, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sh_follow(f->a, fan, b, NULL, err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_unread_count(f->b, b, &n, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sh_stream_start(f->a, b, "live", NULL, &s, err,
                                     sizeof err), SH_OK);
    sh_stream_free(s);
    assert_int_equal(sh_notification_unread_count(f->b, fan, &n, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sh_notification_mark_read(f->a, fan, NULL, 0, NULL,
                                               err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_unread_count(f->b, fan, &n, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(n, 0);
}

/* A reader that missed, read the store, and fills only after a write
 * invalidated the key must not put its old value back. */
static void test_a_fill_after_an_invalidation_is_refused(void **state)
{
    struct fx *f = *state;
    struct sh__cache_ticket t;
    char id[SH__UUID_LEN + 1], *text = NULL;
    size_t len = 0;

    sh__uuid4(id);
    assert_false(sh__cache_get(f->a, SH__CACHE_UNREAD, id, &text, &len, &t));
    assert_true(t.valid);
    sh__cache_invalidate(f->b, SH__CACHE_UNREAD, id);
    sh__cache_put(f->a, SH__CACHE_UNREAD, id, &t, "7", 1);
    assert_false(sh__cache_get(f->a, SH__CACHE_UNREAD, id, &text, &len, &t));
    /* With a fresh ticket the fill is kept. */
    sh__cache_put(f->a, SH__CACHE_UNREAD, id, &t, "8", 1);
    assert_true(sh__cache_get(f->b, SH__CACHE_UNREAD, id, &text, &len, &t));
    assert_string_equal(text, "8");
    free(text);
    /* A generation bump (a write touching every key) drops it too. */
    sh__cache_invalidate_all(f->a, SH__CACHE_UNREAD);
    assert_false(sh__cache_get(f->b, SH__CACHE_UNREAD, id, &text, &len, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_online_is_seen_from_the_other_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connection_cap_holds_across_hubs, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_key_prefix_is_a_cluster_of_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_viewer_counts_add_up_across_hubs, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_late_stale_viewer_sum_does_not_stick, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_node_that_stops_heart_beating_drops_out, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_clean_stop_removes_the_hubs_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_chat_rate_limit_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_shared_bucket_refills_and_gives_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_down_fails_open_or_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_hub_opens_and_counts_locally_without_redis, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_cached_stream_is_never_stale_after_a_write, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_cached_user_and_unread_count, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_fill_after_an_invalidation_is_refused, setup, teardown),
    };

    redis_uri = getenv("STREAMHUB_TEST_REDIS_URI");
    if (redis_uri == NULL || redis_uri[0] == '\0') {
        fprintf(stderr, "STREAMHUB_TEST_REDIS_URI not set: skipped\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
