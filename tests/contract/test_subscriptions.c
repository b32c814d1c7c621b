/* tests/contract/test_subscriptions.c: paid channel subscriptions
 * (follows.h, sh_channel_subscribe); public API only. */
#include "social_fixture.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static int setup(void **state)
{
    return sfx_setup_n(state, 4);
}

static void test_subscribe(void **state)
{
    struct sfx *f = *state;
    const char *sub = sfx_user(f), *chan = sfx_user(f);
    char err[SH_ERRBUF_SIZE], ch[64];
    sh_channel_subscription_t *s = NULL;
    sh_notification_list_t *l = NULL;
    struct rec *r;

    snprintf(ch, sizeof ch, "user:%s", chan);
    r = rec_new(f->hub, ch);
    assert_int_equal(sh_channel_subscribe(f->hub, sub, chan, 0, &s, err,
                                          sizeof err), SH_OK);
    assert_int_equal(sh_channel_subscription_tier(s), 1);
    assert_string_equal(sh_channel_subscription_subscriber_id(s), sub);
    assert_string_equal(sh_channel_subscription_channel_id(s), chan);
    assert_int_equal(strlen(sh_channel_subscription_id(s)), 36);
    assert_non_null(strstr(sh_channel_subscription_json(s, NULL),
                           "\"createdAt\""));
    sh_channel_subscription_free(s);
    s = NULL;
    assert_int_equal(sh_channel_subscribe(f->hub, sub, chan, 3, &s, err,
                                          sizeof err), SH_OK);
    assert_int_equal(sh_channel_subscription_tier(s), 3);
    sh_channel_subscription_free(s);
    s = NULL;
    rec_wait(f->hub, r, 2);
    assert_int_equal(rec_count(r, "notification"), 2);
    assert_non_null(strstr(r->data[0], "\"SUBSCRIPTION_NEW\""));
    rec_free(f->hub, r);
    assert_int_equal(sh_notification_list(f->hub, chan, 10, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 2);
    sh_notification_list_free(l);
}

static void test_subscribe_refusals(void **state)
{
    struct sfx *f = *state;
    const char *sub = sfx_user(f), *chan = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    sh_channel_subscription_t *s = NULL;
    static const int bad_tiers[] = { -1, 4, 100 };

    for (size_t i = 0; i < 3; i++)
        assert_int_equal(sh_channel_subscribe(f->hub, sub, chan,
                                              bad_tiers[i], &s, err,
                                              sizeof err), SH_EINVAL);
    assert_int_equal(sh_channel_subscribe(f->hub, sub, sub, 1, &s, err,
                                          sizeof err), SH_EINVAL);
    assert_int_equal(sh_channel_subscribe(f->hub, sub, NOID, 1, &s, err,
                                          sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_channel_subscribe(f->hub, NULL, chan, 1, &s, err,
                                          sizeof err), SH_EUNAUTHENTICATED);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_subscribe_refusals),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
