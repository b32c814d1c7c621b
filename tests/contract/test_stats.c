/* tests/contract/test_stats.c: stream statistics (streams.h,
 * sh_stream_stats_get): peak viewers and new followers; the chat counters
 * are covered by the chat tests, which send messages.  Public API only. */
#include "social_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
