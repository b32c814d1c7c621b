/* tests/contract/test_streams.c: streams (streams.h): start, stop, update,
 * get, live lists, search, viewer counts and the going-live fan-out,
 * through the public API only, on the store of STREAMHUB_TEST_STORE. */
#include <event2/event.h>
#include <event2/thread.h>

#include "social_fixture.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static int setup(void **state)
{
    return sfx_setup_n(state, 30);
}

static void test_start_and_conflict(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40], ch[64];
    sh_stream_t *s = NULL;
    struct rec *live = rec_new(f->hub, "live");
    struct rec *own;

    assert_int_equal(sh_stream_start(f->hub, b, "Hello \xc3\xa9t\xc3\xa9",
                                     "Just Chatting", &s, err, sizeof err),
                     SH_OK);
    snprintf(id, sizeof id, "%s", sh_stream_id(s));
    assert_true(sh_stream_is_live(s));
    assert_string_equal(sh_stream_title(s), "Hello \xc3\xa9t\xc3\xa9");
    assert_string_equal(sh_stream_category(s), "Just Chatting");
    assert_string_equal(sh_stream_broadcaster_id(s), b);
    assert_string_equal(sh_stream_broadcaster_username(s),
                        sfx_name_of(f, b));
    assert_int_equal(sh_stream_viewer_count(s), 0);
    assert_non_null(sh_stream_started_at(s));
    assert_null(sh_stream_ended_at(s));
    assert_non_null(strstr(sh_stream_json(s, NULL), "\"endedAt\":null"));
    sh_stream_free(s);
    s = NULL;
    rec_wait(f->hub, live, 1);
    assert_int_equal(rec_count(live, "stream.live"), 1);
    assert_non_null(strstr(live->data[0], id));

    /* one live stream per broadcaster */
    assert_int_equal(sh_stream_start(f->hub, b, "again", NULL, &s, err,
                                     sizeof err), SH_ECONFLICT);
    assert_null(s);

    snprintf(ch, sizeof ch, "stream:%s", id);
    own = rec_new(f->hub, ch);
    assert_int_equal(sh_stream_stop(f->hub, b, id, &s, err, sizeof err),
                     SH_OK);
    assert_false(sh_stream_is_live(s));
    assert_non_null(sh_stream_ended_at(s));
    sh_stream_free(s);
    s = NULL;
    rec_wait(f->hub, own, 1);
    rec_wait(f->hub, live, 2);
    assert_int_equal(rec_count(own, "stream.offline"), 1);
    assert_int_equal(rec_count(live, "stream.offline"), 1);
    /* stopping an offline stream is a conflict, not a silent success */
    assert_int_equal(sh_stream_stop(f->hub, b, id, &s, err, sizeof err),
                     SH_ECONFLICT);
    assert_null(s);
    /* and a new stream may start now */
    assert_int_equal(sh_stream_start(f->hub, b, "second", NULL, &s, err,
                                     sizeof err), SH_OK);
    assert_null(sh_stream_category(s));
    assert_int_equal(sh_stream_stop(f->hub, b, sh_stream_id(s), NULL, err,
                                    sizeof err), SH_OK);
    sh_stream_free(s);
    rec_free(f->hub, own);
    rec_free(f->hub, live);
}

static void test_start_validation(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE], title[4 * 141 + 1], cat[66];
    sh_stream_t *s = NULL;

    assert_int_equal(sh_stream_start(f->hub, NULL, "t", NULL, &s, err,
                                     sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_stream_start(f->hub, NOID, "t", NULL, &s, err,
                                     sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_stream_start(f->hub, b, "", NULL, &s, err,
                                     sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_start(f->hub, b, NULL, NULL, &s, err,
                                     sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_start(f->hub, b, "bad \xc3\x28", NULL, &s,
                                     err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_start(f->hub, b, "overlong \xc0\xaf", NULL,
                                     &s, err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_start(f->hub, b, "cut \xe2\x82", NULL, &s,
                                     err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_start(f->hub, b, "surrogate \xed\xa0\x80",
                                     NULL, &s, err, sizeof err), SH_EINVAL);
    /* 141 code points (of 4 bytes each): too long; 140: fine */
    title[0] = '\0';
    for (int i = 0; i < 141; i++)
        strcat(title, "\xf0\x9f\x8e\xae");
    assert_int_equal(sh_stream_start(f->hub, b, title, NULL, &s, err,
                                     sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "title"));
    memset(cat, 'c', 65);
    cat[65] = '\0';
    assert_int_equal(sh_stream_start(f->hub, b, "ok", cat, &s, err,
                                     sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "category"));
    assert_null(s);
    title[140 * 4] = '\0';
    cat[64] = '\0';
    assert_int_equal(sh_stream_start(f->hub, b, title, cat, &s, err,
                                     sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), title);
    assert_int_equal(sh_stream_stop(f->hub, b, sh_stream_id(s), NULL, err,
                                    sizeof err), SH_OK);
    sh_stream_free(s);
}

static void test_stop_update_permissions(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f), *o = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40], ch[64];
    sh_stream_t *s = NULL;
    struct rec *r;

    sfx_start(f->hub, b, "mine", "perm", id);
    snprintf(ch, sizeof ch, "stream:%s", id);
    r = rec_new(f->hub, ch);
    assert_int_equal(sh_stream_stop(f->hub, o, id, &s, err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_stream_update(f->hub, o, id, "hijack", NULL, &s,
                                      err, sizeof err), SH_EFORBIDDEN);
    assert_int_equal(sh_stream_stop(f->hub, NULL, id, &s, err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_stream_stop(f->hub, b, NOID, &s, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_stream_stop(f->hub, b, "nope", &s, err, sizeof err),
                     SH_ENOTFOUND);
    assert_null(s);
    /* nothing changed */
    assert_int_equal(sh_stream_get(f->hub, id, &s, err, sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "mine");
    assert_true(sh_stream_is_live(s));
    sh_stream_free(s);
    s = NULL;

    assert_int_equal(sh_stream_update(f->hub, b, id, "new title", NULL, &s,
                                      err, sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "new title");
    assert_string_equal(sh_stream_category(s), "perm");
    sh_stream_free(s);
    s = NULL;
    assert_int_equal(sh_stream_update(f->hub, b, id, NULL, "", &s, err,
                                      sizeof err), SH_OK);
    assert_string_equal(sh_stream_title(s), "new title");
    assert_null(sh_stream_category(s));
    sh_stream_free(s);
    s = NULL;
    assert_int_equal(sh_stream_update(f->hub, b, id, "", NULL, &s, err,
                                      sizeof err), SH_EINVAL);
    rec_wait(f->hub, r, 2);
    assert_int_equal(rec_count(r, "stream.updated"), 2);
    assert_non_null(strstr(r->data[0], "new title"));
    rec_free(f->hub, r);
    assert_int_equal(sh_stream_stop(f->hub, b, id, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_get(f->hub, NOID, &s, err, sizeof err),
                     SH_ENOTFOUND);
    assert_null(s);
}

static void test_live_list_order_and_pages(void **state)
{
    struct sfx *f = *state;
    const char *b[5];
    char err[SH_ERRBUF_SIZE], id[5][40], cursor[512];
    static const int64_t viewers[5] = { 5, 50, 5, 0, 20 };
    /* expected order: 50 (1), 20 (4), 5 newest (2), 5 older (0), 0 (3) */
    static const int order[5] = { 1, 4, 2, 0, 3 };
    sh_stream_list_t *l = NULL;
    int seen = 0;

    for (int i = 0; i < 5; i++) {
        b[i] = sfx_user(f);
        sfx_start(f->hub, b[i], "order test", "order-cat", id[i]);
        assert_int_equal(sh_stream_set_viewers(f->hub, id[i], viewers[i],
                                               err, sizeof err), SH_OK);
        usleep(3000);
    }
    assert_int_equal(sh_stream_live_list(f->hub, 2, NULL, "order-cat", &l,
                                         err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_total_count(l), 5);
    cursor[0] = '\0';
    for (;;) {
        for (size_t i = 0; i < sh_stream_list_count(l); i++) {
            const sh_stream_t *s = sh_stream_list_at(l, i);
            assert_true(seen < 5);
            assert_string_equal(sh_stream_id(s), id[order[seen]]);
            assert_int_equal(sh_stream_viewer_count(s),
                             viewers[order[seen]]);
            seen++;
        }
        if (!sh_stream_list_has_next(l))
            break;
        snprintf(cursor, sizeof cursor, "%s", sh_stream_list_next_cursor(l));
        sh_stream_list_free(l);
        l = NULL;
        assert_int_equal(sh_stream_live_list(f->hub, 2, cursor, "order-cat",
                                             &l, err, sizeof err), SH_OK);
    }
    assert_int_equal(seen, 5);
    sh_stream_list_free(l);
    l = NULL;

    /* another category: none of them */
    assert_int_equal(sh_stream_live_list(f->hub, 20, NULL, "no-such-cat",
                                         &l, err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 0);
    assert_false(sh_stream_list_has_next(l));
    sh_stream_list_free(l);
    l = NULL;
    /* no filter: at least these five */
    assert_int_equal(sh_stream_live_list(f->hub, 100, NULL, NULL, &l, err,
                                         sizeof err), SH_OK);
    assert_true(sh_stream_list_total_count(l) >= 5);
    sh_stream_list_free(l);
    l = NULL;

    /* page-size and cursor edges */
    assert_int_equal(sh_stream_live_list(f->hub, 0, NULL, NULL, &l, err,
                                         sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_live_list(f->hub, -1, NULL, NULL, &l, err,
                                         sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_live_list(f->hub, 101, NULL, NULL, &l, err,
                                         sizeof err), SH_OK);
    sh_stream_list_free(l);
    l = NULL;
    assert_int_equal(sh_stream_live_list(f->hub, 10, "garbage!", NULL, &l,
                                         err, sizeof err), SH_EINVAL);
    assert_null(l);
    /* a follower-list cursor is not a live-list cursor */
    assert_int_equal(sh_stream_live_list(f->hub, 10,
                     "WzEsIjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMCJd",
                     NULL, &l, err, sizeof err), SH_EINVAL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sh_stream_stop(f->hub, b[i], id[i], NULL, err,
                                        sizeof err), SH_OK);
    /* stopped streams leave the list */
    assert_int_equal(sh_stream_live_list(f->hub, 10, NULL, "order-cat", &l,
                                         err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 0);
    sh_stream_list_free(l);
}

static void test_search(void **state)
{
    struct sfx *f = *state;
    const char *b1 = sfx_user(f), *b2 = sfx_user(f), *b3 = sfx_user(f);
    char err[SH_ERRBUF_SIZE], s1[40], s2[40], s3[40];
    sh_stream_list_t *l = NULL;
    static const char *hostile[] = {
        "zqxalpha OR zqxbeta", "\"zqxalpha", "zqxalpha*", "*",
        "NEAR(zqxalpha zqxbeta)", "zqxalpha AND", "title:zqxalpha",
        "^zqxalpha", "zqxalpha NOT zqxbeta", "(", "\"\"", "-", "+",
        "{title}: x", "zqxalpha'; DROP TABLE streams; --",
    };

    sfx_start(f->hub, b1, "zqxalpha speedrun", "Games", s1);
    usleep(3000);
    sfx_start(f->hub, b2, "zqxalpha zqxbeta chill", NULL, s2);
    usleep(3000);
    sfx_start(f->hub, b3, "cooking", "zqxalpha kitchen", s3);
    assert_int_equal(sh_stream_stop(f->hub, b3, s3, NULL, err, sizeof err),
                     SH_OK);

    /* live first (s2 newer than s1), then the offline one */
    assert_int_equal(sh_stream_search(f->hub, "zqxalpha", 10, NULL, &l, err,
                                      sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 3);
    assert_int_equal(sh_stream_list_total_count(l), 3);
    assert_string_equal(sh_stream_id(sh_stream_list_at(l, 0)), s2);
    assert_string_equal(sh_stream_id(sh_stream_list_at(l, 1)), s1);
    assert_string_equal(sh_stream_id(sh_stream_list_at(l, 2)), s3);
    sh_stream_list_free(l);
    l = NULL;
    /* case and accents of the tokenizer; every word must match */
    assert_int_equal(sh_stream_search(f->hub, "ZQXALPHA  zqxbeta", 10, NULL,
                                      &l, err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 1);
    assert_string_equal(sh_stream_id(sh_stream_list_at(l, 0)), s2);
    sh_stream_list_free(l);
    l = NULL;
    /* pages of 1 */
    assert_int_equal(sh_stream_search(f->hub, "zqxalpha", 1, NULL, &l, err,
                                      sizeof err), SH_OK);
    assert_true(sh_stream_list_has_next(l));
    {
        char cur[512];
        snprintf(cur, sizeof cur, "%s", sh_stream_list_next_cursor(l));
        sh_stream_list_free(l);
        l = NULL;
        assert_int_equal(sh_stream_search(f->hub, "zqxalpha", 2, cur, &l,
                                          err, sizeof err), SH_OK);
        assert_int_equal(sh_stream_list_count(l), 2);
        assert_string_equal(sh_stream_id(sh_stream_list_at(l, 0)), s1);
        assert_string_equal(sh_stream_id(sh_stream_list_at(l, 1)), s3);
        assert_false(sh_stream_list_has_next(l));
        sh_stream_list_free(l);
        l = NULL;
    }
    /* query syntax never reaches the engine: no error, words as words */
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        sh_err_t rc = sh_stream_search(f->hub, hostile[i], 10, NULL, &l,
                                       err, sizeof err);
        if (rc != SH_OK)
            fail_msg("search '%s': %s: %s", hostile[i], sh_err_name(rc),
                     err);
        /* "OR" is a word here: no stream has it */
        if (i == 0 || i == 4 || i == 5 || i == 8)
            assert_int_equal(sh_stream_list_count(l), 0);
        sh_stream_list_free(l);
        l = NULL;
    }
    /* a quote inside a word is part of the phrase, and "zqxalpha*" is
     * no prefix query */
    assert_int_equal(sh_stream_search(f->hub, "zqxalph", 10, NULL, &l, err,
                                      sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 0);
    sh_stream_list_free(l);
    l = NULL;
    /* refusals */
    assert_int_equal(sh_stream_search(f->hub, "", 10, NULL, &l, err,
                                      sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_search(f->hub, NULL, 10, NULL, &l, err,
                                      sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_search(f->hub, "bad \xff", 10, NULL, &l, err,
                                      sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_search(f->hub, "zqxalpha", 0, NULL, &l, err,
                                      sizeof err), SH_EINVAL);
    assert_int_equal(sh_stream_search(f->hub, "zqxalpha", 5, "AAAA", &l,
                                      err, sizeof err), SH_EINVAL);
    {
        char big[300];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        assert_int_equal(sh_stream_search(f->hub, big, 5, NULL, &l, err,
                                          sizeof err), SH_EINVAL);
    }
    assert_null(l);
    /* white space only: an empty page */
    assert_int_equal(sh_stream_search(f->hub, "   ", 10, NULL, &l, err,
                                      sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 0);
    sh_stream_list_free(l);
    assert_int_equal(sh_stream_stop(f->hub, b1, s1, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stop(f->hub, b2, s2, NULL, err, sizeof err),
                     SH_OK);
}

static void test_viewers_coalesced(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40], ch[64];
    sh_stream_t *s = NULL;
    sh_stream_stats_t *st = NULL;
    struct rec *r;

    sfx_start(f->hub, b, "viewers", NULL, id);
    snprintf(ch, sizeof ch, "stream:%s", id);
    r = rec_new(f->hub, ch);
    /* a burst: one event at once, the rest coalesced */
    for (int i = 1; i <= 10; i++)
        assert_int_equal(sh_stream_set_viewers(f->hub, id, i * 10, err,
                                               sizeof err), SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->hub, id, 42, err, sizeof err),
                     SH_OK);
    rec_wait(f->hub, r, 1);
    sh_hub_poll(f->hub, 50);
    assert_int_equal(rec_count(r, "stream.viewers"), 1);
    assert_non_null(strstr(r->data[0], "\"viewerCount\":10"));
    /* nothing is due before the second is over */
    assert_int_equal(sh_stream_flush_viewers(f->hub), 0);
    usleep(1050 * 1000);
    /* the latest value wins */
    assert_int_equal(sh_stream_flush_viewers(f->hub), 1);
    rec_wait(f->hub, r, 2);
    assert_int_equal(rec_count(r, "stream.viewers"), 2);
    assert_non_null(strstr(r->data[1], "\"viewerCount\":42"));
    assert_int_equal(sh_stream_flush_viewers(f->hub), 0);
    /* the store has every value at once; the peak is kept */
    assert_int_equal(sh_stream_get(f->hub, id, &s, err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_viewer_count(s), 42);
    sh_stream_free(s);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_peak_viewers(st), 100);
    sh_stream_stats_free(st);
    /* refusals */
    assert_int_equal(sh_stream_set_viewers(f->hub, id, -1, err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_stream_set_viewers(f->hub, NOID, 1, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_stream_stop(f->hub, b, id, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->hub, id, 1, err, sizeof err),
                     SH_ENOTFOUND);
    rec_free(f->hub, r);
}

static void test_going_live_notifies_followers(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f), *fan[4], *stranger = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40], ch[64];
    struct rec *r[4], *rs;
    sh_notification_list_t *l = NULL;

    for (int i = 0; i < 4; i++) {
        fan[i] = sfx_user(f);
        sfx_follow(f->hub, fan[i], b);
        snprintf(ch, sizeof ch, "user:%s", fan[i]);
        r[i] = rec_new(f->hub, ch);
    }
    snprintf(ch, sizeof ch, "user:%s", stranger);
    rs = rec_new(f->hub, ch);
    sfx_start(f->hub, b, "fan-out", "music", id);
    for (int i = 0; i < 4; i++) {
        const sh_notification_t *n;

        rec_wait(f->hub, r[i], 1);
        assert_int_equal(rec_count(r[i], "notification"), 1);
        assert_non_null(strstr(r[i]->data[0], "\"STREAM_LIVE\""));
        assert_non_null(strstr(r[i]->data[0], id));
        assert_int_equal(sh_notification_list(f->hub, fan[i], 5, NULL, true,
                                              &l, err, sizeof err), SH_OK);
        assert_int_equal(sh_notification_list_count(l), 1);
        n = sh_notification_list_at(l, 0);
        assert_string_equal(sh_notification_type(n), "STREAM_LIVE");
        /* the published id is the stored one, a UUID */
        assert_int_equal(strlen(sh_notification_id(n)), 36);
        assert_int_equal(sh_notification_id(n)[14], '4');
        assert_non_null(strstr(r[i]->data[0], sh_notification_id(n)));
        assert_non_null(strstr(sh_notification_data_json(n, NULL), id));
        sh_notification_list_free(l);
        l = NULL;
        rec_free(f->hub, r[i]);
    }
    sh_hub_poll(f->hub, 20);
    assert_int_equal(rs->n, 0);
    rec_free(f->hub, rs);
    assert_int_equal(sh_stream_stop(f->hub, b, id, NULL, err, sizeof err),
                     SH_OK);
}

/* ---- a loop serves its sockets between deliveries ---------------------- */

#define TURN_SUBS 3000

struct turns {
    int delivered;
    int finals;
    int at_tick;           /* delivered when the loop's own event ran */
    struct event *tick;
};

static void turn_cb(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct turns *t = arg;

    (void)ev;
    if (status != SH_OK) {
        t->finals++;
        return;
    }
    /* The loop has other work from the first delivery on: a socket of
     * another client, say. */
    if (t->delivered++ == 0)
        event_active(t->tick, EV_READ, 0);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct turns *t = arg;

    (void)fd;
    (void)what;
    t->at_tick = t->delivered;
}

/* Going live to many followers queues a delivery per subscribed follower
 * on the hub's loop at once (here: one event on each of TURN_SUBS
 * channels with a subscriber, queued before the loop runs).  The loop
 * runs them in batches and serves its other events in between: the
 * loop's own event runs before the last delivery. */
static void test_deliveries_leave_the_loop_turns(void **state)
{
    char err[SH_ERRBUF_SIZE], ch[64];
    static sh_subscription_t *subs[TURN_SUBS];
    struct turns t = { 0, 0, -1, NULL };
    struct event_base *base;
    sh_hub_t *hub;

    (void)state;
    assert_int_equal(evthread_use_pthreads(), 0);
    base = event_base_new();
    assert_non_null(base);
    t.tick = event_new(base, -1, 0, tick_cb, &t);
    assert_non_null(t.tick);
    hub = sfx_open();
    assert_int_equal(sh_hub_attach(hub, base, err, sizeof err), SH_OK);
    for (int i = 0; i < TURN_SUBS; i++) {
        snprintf(ch, sizeof ch, "app:turns%d", i);
        assert_int_equal(sh_subscribe(hub, ch, NULL, turn_cb, &t, &subs[i],
                                      NULL, err, sizeof err), SH_OK);
    }
    for (int i = 0; i < TURN_SUBS; i++) {
        snprintf(ch, sizeof ch, "app:turns%d", i);
        assert_int_equal(sh_publish(hub, ch, "app.x", "1", 1, NULL, err,
                                    sizeof err), SH_OK);
    }
    for (int k = 0; k < 100000 && t.delivered < TURN_SUBS; k++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(t.delivered, TURN_SUBS);
    assert_true(t.at_tick >= 1);
    assert_true(t.at_tick < TURN_SUBS);
    for (int i = 0; i < TURN_SUBS; i++)
        sh_unsubscribe(subs[i]);
    for (int k = 0; k < 100000 && t.finals < TURN_SUBS; k++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(t.finals, TURN_SUBS);
    for (int i = 0; i < TURN_SUBS; i++)
        sh_subscription_free(subs[i]);
    sh_hub_close(hub);
    event_free(t.tick);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_and_conflict),
        cmocka_unit_test(test_start_validation),
        cmocka_unit_test(test_stop_update_permissions),
        cmocka_unit_test(test_live_list_order_and_pages),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_viewers_coalesced),
        cmocka_unit_test(test_going_live_notifies_followers),
        cmocka_unit_test(test_deliveries_leave_the_loop_turns),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
