/* tests/contract/test_notifications.c: a user's notifications
 * (notifications.h): listing, unread filter, counts, marking read, and
 * never another user's; public API only. */
#include "social_fixture.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static int setup(void **state)
{
    return sfx_setup_n(state, 16);
}

/* Make @n NEW_FOLLOWER notifications for @target from distinct users. */
static void make_n(struct sfx *f, const char *target, int n)
{
    for (int i = 0; i < n; i++) {
        sfx_follow(f->hub, sfx_user(f), target);
        usleep(2000);
    }
}

static void test_list_pages_and_unread(void **state)
{
    struct sfx *f = *state;
    const char *me = sfx_user(f);
    char err[SH_ERRBUF_SIZE], cursor[512], ids[5][40];
    sh_notification_list_t *l = NULL;
    const char *mark[2];
    int64_t unread = -1, changed = -1;
    int seen = 0;

    make_n(f, me, 5);
    assert_int_equal(sh_notification_unread_count(f->hub, me, &unread, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(unread, 5);
    assert_int_equal(sh_notification_list(f->hub, me, 2, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_total_count(l), 5);
    assert_int_equal(sh_notification_list_unread_count(l), 5);
    for (;;) {
        for (size_t i = 0; i < sh_notification_list_count(l); i++) {
            const sh_notification_t *n = sh_notification_list_at(l, i);
            assert_true(seen < 5);
            snprintf(ids[seen++], 40, "%s", sh_notification_id(n));
            assert_false(sh_notification_read(n));
            assert_non_null(strstr(sh_notification_json(n, NULL),
                                   "\"read\":false"));
        }
        if (!sh_notification_list_has_next(l))
            break;
        snprintf(cursor, sizeof cursor, "%s",
                 sh_notification_list_next_cursor(l));
        sh_notification_list_free(l);
        l = NULL;
        assert_int_equal(sh_notification_list(f->hub, me, 2, cursor, false,
                                              &l, err, sizeof err), SH_OK);
    }
    sh_notification_list_free(l);
    l = NULL;
    assert_int_equal(seen, 5);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            assert_string_not_equal(ids[i], ids[j]);

    /* mark two (one twice, one unknown, one not a UUID) */
    mark[0] = ids[0];
    mark[1] = ids[1];
    assert_int_equal(sh_notification_mark_read(f->hub, me, mark, 2, &changed,
                                               err, sizeof err), SH_OK);
    assert_int_equal(changed, 2);
    assert_int_equal(sh_notification_mark_read(f->hub, me, mark, 2, &changed,
                                               err, sizeof err), SH_OK);
    assert_int_equal(changed, 0);
    {
        const char *odd[] = { NOID, "x' OR '1'='1", "" };
        assert_int_equal(sh_notification_mark_read(f->hub, me, odd, 3,
                                                   &changed, err,
                                                   sizeof err), SH_OK);
        assert_int_equal(changed, 0);
        assert_int_equal(sh_notification_mark_read(f->hub, me, odd, 0,
                                                   &changed, err,
                                                   sizeof err), SH_OK);
        assert_int_equal(changed, 0);
    }
    assert_int_equal(sh_notification_unread_count(f->hub, me, &unread, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(unread, 3);
    /* unread only: the three others */
    assert_int_equal(sh_notification_list(f->hub, me, 10, NULL, true, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 3);
    assert_int_equal(sh_notification_list_total_count(l), 3);
    for (size_t i = 0; i < 3; i++) {
        const char *id = sh_notification_id(sh_notification_list_at(l, i));
        assert_string_not_equal(id, ids[0]);
        assert_string_not_equal(id, ids[1]);
    }
    sh_notification_list_free(l);
    l = NULL;
    /* all */
    assert_int_equal(sh_notification_mark_read(f->hub, me, NULL, 0, &changed,
                                               err, sizeof err), SH_OK);
    assert_int_equal(changed, 3);
    assert_int_equal(sh_notification_list(f->hub, me, 10, NULL, true, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 0);
    assert_false(sh_notification_list_has_next(l));
    sh_notification_list_free(l);
    l = NULL;
    assert_int_equal(sh_notification_list(f->hub, me, 10, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 5);
    assert_true(sh_notification_read(sh_notification_list_at(l, 0)));
    sh_notification_list_free(l);
}

static void test_never_another_users(void **state)
{
    struct sfx *f = *state;
    const char *me = sfx_user(f), *other = sfx_user(f);
    char err[SH_ERRBUF_SIZE], theirs[40];
    sh_notification_list_t *l = NULL;
    const char *mark[1];
    int64_t changed = -1, unread = -1;

    make_n(f, other, 1);
    assert_int_equal(sh_notification_list(f->hub, other, 10, NULL, false,
                                          &l, err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 1);
    snprintf(theirs, sizeof theirs, "%s",
             sh_notification_id(sh_notification_list_at(l, 0)));
    sh_notification_list_free(l);
    l = NULL;
    /* me sees none of them and cannot mark them */
    assert_int_equal(sh_notification_list(f->hub, me, 10, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 0);
    assert_int_equal(sh_notification_list_total_count(l), 0);
    sh_notification_list_free(l);
    l = NULL;
    mark[0] = theirs;
    assert_int_equal(sh_notification_mark_read(f->hub, me, mark, 1, &changed,
                                               err, sizeof err), SH_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(sh_notification_mark_read(f->hub, me, NULL, 0, &changed,
                                               err, sizeof err), SH_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(sh_notification_unread_count(f->hub, other, &unread,
                                                  err, sizeof err), SH_OK);
    assert_int_equal(unread, 1);
    /* anonymous and unknown callers */
    assert_int_equal(sh_notification_list(f->hub, NULL, 10, NULL, false, &l,
                                          err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_notification_list(f->hub, NOID, 10, NULL, false, &l,
                                          err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_null(l);
    assert_int_equal(sh_notification_unread_count(f->hub, NULL, &unread, err,
                                                  sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_notification_mark_read(f->hub, NULL, NULL, 0,
                                               &changed, err, sizeof err),
                     SH_EUNAUTHENTICATED);
}

static void test_list_edges(void **state)
{
    struct sfx *f = *state;
    const char *me = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    sh_notification_list_t *l = NULL;
    const char *nulls[2] = { NULL, NULL };
    const char **many;
    int64_t changed = -1;

    assert_int_equal(sh_notification_list(f->hub, me, 0, NULL, false, &l,
                                          err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_notification_list(f->hub, me, -1, NULL, false, &l,
                                          err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_notification_list(f->hub, me, 10, "%%%", false, &l,
                                          err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_notification_list(f->hub, me, 10, "W10", false, &l,
                                          err, sizeof err), SH_EINVAL);
    assert_null(l);
    assert_int_equal(sh_notification_list(f->hub, me, 101, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 0);
    assert_non_null(strstr(sh_notification_list_json(l, NULL),
                           "\"nextCursor\":null"));
    sh_notification_list_free(l);
    assert_int_equal(sh_notification_mark_read(f->hub, me, nulls, 2,
                                               &changed, err, sizeof err),
                     SH_EINVAL);
    many = calloc(1001, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < 1001; i++)
        many[i] = NOID;
    assert_int_equal(sh_notification_mark_read(f->hub, me, many, 1001,
                                               &changed, err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_notification_mark_read(f->hub, me, many, 1000,
                                               &changed, err, sizeof err),
                     SH_OK);
    assert_int_equal(changed, 0);
    free(many);
    sh_notification_list_free(NULL);
    assert_null(sh_notification_id(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_pages_and_unread),
        cmocka_unit_test(test_never_another_users),
        cmocka_unit_test(test_list_edges),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
