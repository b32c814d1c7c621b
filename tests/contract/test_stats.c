/* tests/contract/test_stats.c: stream statistics (streams.h,
 * sh_stream_stats_get): peak viewers, new followers, and the chat counters
 * fed by sh_chat_send().  Public API only. */
#include "social_fixture.h"
#include "streamhub/chat.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static int setup(void **state)
{
    return sfx_setup_n(state, 5);
}

static void test_stats(void **state)
{
    struct sfx *f = *state;
    const char *b = sfx_user(f), *x = sfx_user(f), *y = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40];
    sh_stream_stats_t *st = NULL;

    /* a follow before the stream does not count */
    sfx_follow(f->hub, x, b);
    sfx_start(f->hub, b, "stats", NULL, id);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_peak_viewers(st), 0);
    assert_int_equal(sh_stream_stats_new_followers(st), 0);
    assert_int_equal(sh_stream_stats_chat_messages(st), 0);
    assert_int_equal(sh_stream_stats_unique_chatters(st), 0);
    assert_int_equal(sh_stream_stats_messages_per_minute(st), 0);
    assert_non_null(strstr(sh_stream_stats_json(st, NULL),
                           "\"messagesPerMinute\":0"));
    sh_stream_stats_free(st);
    st = NULL;

    sfx_follow(f->hub, y, b);
    sfx_follow(f->hub, y, b);     /* not new: not counted twice */
    assert_int_equal(sh_unfollow(f->hub, x, b, NULL, err, sizeof err),
                     SH_OK);
    sfx_follow(f->hub, x, b);     /* a new follow again */
    assert_int_equal(sh_stream_set_viewers(f->hub, id, 12, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->hub, id, 30, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_set_viewers(f->hub, id, 3, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_peak_viewers(st), 30);
    assert_int_equal(sh_stream_stats_new_followers(st), 2);
    sh_stream_stats_free(st);
    st = NULL;
    /* stats outlive the stream */
    assert_int_equal(sh_stream_stop(f->hub, b, id, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_peak_viewers(st), 30);
    sh_stream_stats_free(st);
    st = NULL;
    assert_int_equal(sh_stream_stats_get(f->hub, NOID, &st, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_stream_stats_get(f->hub, "x", &st, err, sizeof err),
                     SH_ENOTFOUND);
    assert_null(st);
    sh_stream_stats_free(NULL);
}

static void send(struct sfx *f, const char *who, const char *stream,
                 const char *text)
{
    char err[SH_ERRBUF_SIZE];

    if (sh_chat_send(f->hub, who, stream, text, strlen(text), NULL, NULL,
                     err, sizeof err) != SH_OK)
        fail_msg("chat send: %s", err);
}

static void test_chat_counters(void **state)
{
    struct sfx *f = *state;
    const char *b = f->ids[3], *x = f->ids[4];
    char err[SH_ERRBUF_SIZE], id[40];
    sh_stream_stats_t *st = NULL;

    sfx_start(f->hub, b, "chatty", NULL, id);
    for (int i = 0; i < 5; i++)
        send(f, x, id, "hello");
    send(f, b, id, "welcome");
    /* a refused message counts nowhere */
    assert_int_equal(sh_chat_send(f->hub, x, id, "", 0, NULL, NULL, err,
                                  sizeof err), SH_EEMPTY);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_chat_messages(st), 6);
    assert_int_equal(sh_stream_stats_unique_chatters(st), 2);
    assert_int_equal(sh_stream_stats_messages_per_minute(st), 6);
    sh_stream_stats_free(st);
    st = NULL;
    send(f, x, id, "again");
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_chat_messages(st), 7);
    assert_int_equal(sh_stream_stats_unique_chatters(st), 2);
    sh_stream_stats_free(st);
    st = NULL;
    /* the totals are stored when the stream ends */
    assert_int_equal(sh_stream_stop(f->hub, b, id, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_get(f->hub, id, &st, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_stream_stats_chat_messages(st), 7);
    assert_int_equal(sh_stream_stats_unique_chatters(st), 2);
    sh_stream_stats_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_chat_counters),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
