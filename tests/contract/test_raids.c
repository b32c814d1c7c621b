/* tests/contract/test_raids.c: raids (streams.h, sh_raid_start); public
 * API only. */
#include "social_fixture.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static int setup(void **state)
{
    return sfx_setup_n(state, 8);
}

static void test_raid(void **state)
{
    struct sfx *f = *state;
    const char *from = sfx_user(f), *to = sfx_user(f), *other = sfx_user(f);
    char err[SH_ERRBUF_SIZE], sfrom[40], sto[40], ch[64];
    sh_notification_list_t *l = NULL;
    sh_raid_t *r = NULL;
    struct rec *ru, *rst;

    sfx_start(f->hub, from, "raider", NULL, sfrom);
    sfx_start(f->hub, to, "target", NULL, sto);
    assert_int_equal(sh_stream_set_viewers(f->hub, sfrom, 77, err,
                                           sizeof err), SH_OK);
    snprintf(ch, sizeof ch, "user:%s", to);
    ru = rec_new(f->hub, ch);
    snprintf(ch, sizeof ch, "stream:%s", sto);
    rst = rec_new(f->hub, ch);

    assert_int_equal(sh_raid_start(f->hub, other, sfrom, to, &r, err,
                                   sizeof err), SH_EFORBIDDEN);
    assert_int_equal(sh_raid_start(f->hub, NULL, sfrom, to, &r, err,
                                   sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_raid_start(f->hub, from, sfrom, from, &r, err,
                                   sizeof err), SH_EINVAL);
    assert_int_equal(sh_raid_start(f->hub, from, sfrom, NOID, &r, err,
                                   sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_raid_start(f->hub, from, NOID, to, &r, err,
                                   sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_raid_start(f->hub, from, "", to, &r, err,
                                   sizeof err), SH_ENOTFOUND);
    assert_null(r);
    sh_hub_poll(f->hub, 20);
    assert_int_equal(ru->n, 0);

    assert_int_equal(sh_raid_start(f->hub, from, sfrom, to, &r, err,
                                   sizeof err), SH_OK);
    assert_int_equal(strlen(sh_raid_id(r)), 36);
    assert_string_equal(sh_raid_from_stream_id(r), sfrom);
    assert_string_equal(sh_raid_to_user_id(r), to);
    assert_int_equal(sh_raid_viewer_count(r), 77);
    assert_non_null(strstr(sh_raid_json(r, NULL), "\"viewerCount\":77"));
    rec_wait(f->hub, ru, 2);
    rec_wait(f->hub, rst, 1);
    assert_int_equal(rec_count(ru, "raid.incoming"), 1);
    assert_int_equal(rec_count(ru, "notification"), 1);
    assert_int_equal(rec_count(rst, "raid.incoming"), 1);
    assert_non_null(strstr(rst->data[0], sh_raid_id(r)));
    sh_raid_free(r);
    r = NULL;
    assert_int_equal(sh_notification_list(f->hub, to, 10, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 1);
    assert_string_equal(sh_notification_type(sh_notification_list_at(l, 0)),
                        "RAID_INCOMING");
    sh_notification_list_free(l);
    rec_free(f->hub, ru);
    rec_free(f->hub, rst);

    /* an offline stream cannot raid */
    assert_int_equal(sh_stream_stop(f->hub, from, sfrom, NULL, err,
                                    sizeof err), SH_OK);
    assert_int_equal(sh_raid_start(f->hub, from, sfrom, to, &r, err,
                                   sizeof err), SH_ECONFLICT);
    assert_null(r);
    assert_int_equal(sh_stream_stop(f->hub, to, sto, NULL, err, sizeof err),
                     SH_OK);
}

static void test_raid_offline_target(void **state)
{
    struct sfx *f = *state;
    const char *from = sfx_user(f), *to = sfx_user(f);
    char err[SH_ERRBUF_SIZE], sfrom[40], ch[64];
    struct rec *ru;

    sfx_start(f->hub, from, "raider", NULL, sfrom);
    snprintf(ch, sizeof ch, "user:%s", to);
    ru = rec_new(f->hub, ch);
    assert_int_equal(sh_raid_start(f->hub, from, sfrom, to, NULL, err,
                                   sizeof err), SH_OK);
    rec_wait(f->hub, ru, 2);
    assert_int_equal(rec_count(ru, "raid.incoming"), 1);
    assert_non_null(strstr(ru->data[0], "\"viewerCount\":0"));
    rec_free(f->hub, ru);
    assert_int_equal(sh_stream_stop(f->hub, from, sfrom, NULL, err,
                                    sizeof err), SH_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raid),
        cmocka_unit_test(test_raid_offline_target),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
