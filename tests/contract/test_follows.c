/* tests/contract/test_follows.c: follows and their lists (follows.h),
 * through the public API only, on the store of STREAMHUB_TEST_STORE. */
#include "social_fixture.h"

#define NAUTH "00000000-0000-4000-8000-000000000000"

static void test_follow_is_idempotent(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f), *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    bool created = false, removed = true, is = false;
    int64_t fol = -1, fing = -1;

    assert_int_equal(sh_follow(f->hub, a, b, &created, err, sizeof err),
                     SH_OK);
    assert_true(created);
    assert_int_equal(sh_follow(f->hub, a, b, &created, err, sizeof err),
                     SH_OK);
    assert_false(created);
    assert_int_equal(sh_follow_check(f->hub, a, b, &is, err, sizeof err),
                     SH_OK);
    assert_true(is);
    assert_int_equal(sh_follow_check(f->hub, b, a, &is, err, sizeof err),
                     SH_OK);
    assert_false(is);
    assert_int_equal(sh_follow_counts(f->hub, b, &fol, &fing, err,
                                      sizeof err), SH_OK);
    assert_int_equal(fol, 1);
    assert_int_equal(fing, 0);
    assert_int_equal(sh_follow_counts(f->hub, a, &fol, &fing, err,
                                      sizeof err), SH_OK);
    assert_int_equal(fol, 0);
    assert_int_equal(fing, 1);

    assert_int_equal(sh_unfollow(f->hub, a, b, &removed, err, sizeof err),
                     SH_OK);
    assert_true(removed);
    assert_int_equal(sh_unfollow(f->hub, a, b, &removed, err, sizeof err),
                     SH_OK);
    assert_false(removed);
    assert_int_equal(sh_follow_check(f->hub, a, b, &is, err, sizeof err),
                     SH_OK);
    assert_false(is);
    assert_int_equal(sh_follow_counts(f->hub, b, &fol, NULL, err,
                                      sizeof err), SH_OK);
    assert_int_equal(fol, 0);
}

static void test_follow_refusals(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    char nul_id[40];
    bool created = true;

    assert_int_equal(sh_follow(f->hub, a, a, &created, err, sizeof err),
                     SH_EINVAL);
    assert_false(created);
    assert_int_equal(sh_unfollow(f->hub, a, a, NULL, err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_follow(f->hub, a, NAUTH, NULL, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_follow(f->hub, a, "", NULL, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_follow(f->hub, a, NULL, NULL, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_follow(f->hub, a, "' OR 1=1 --", NULL, err,
                               sizeof err), SH_ENOTFOUND);
    /* an id cut by an embedded NUL is another (unknown) id */
    memcpy(nul_id, a, 37);
    nul_id[10] = '\0';
    assert_int_equal(sh_follow(f->hub, a, nul_id, NULL, err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_follow(f->hub, NULL, a, NULL, err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_follow(f->hub, NAUTH, a, NULL, err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_follow_counts(f->hub, NAUTH, NULL, NULL, err,
                                      sizeof err), SH_ENOTFOUND);
}

static void test_follow_notifies_once(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f), *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE], ch[64];
    sh_notification_list_t *l = NULL;
    struct rec *r;
    int64_t unread = 0;

    snprintf(ch, sizeof ch, "user:%s", b);
    r = rec_new(f->hub, ch);
    sfx_follow(f->hub, a, b);
    sfx_follow(f->hub, a, b);           /* not new: no second one */
    rec_wait(f->hub, r, 1);
    assert_int_equal(rec_count(r, "notification"), 1);
    assert_non_null(strstr(r->data[0], "\"NEW_FOLLOWER\""));
    assert_non_null(strstr(r->data[0], a));
    assert_int_equal(sh_notification_unread_count(f->hub, b, &unread, err,
                                                  sizeof err), SH_OK);
    assert_int_equal(unread, 1);
    assert_int_equal(sh_notification_list(f->hub, b, 10, NULL, false, &l,
                                          err, sizeof err), SH_OK);
    assert_int_equal(sh_notification_list_count(l), 1);
    /* what was published is what was stored: same id */
    assert_non_null(strstr(r->data[0], sh_notification_id(
                        sh_notification_list_at(l, 0))));
    assert_string_equal(sh_notification_type(sh_notification_list_at(l, 0)),
                        "NEW_FOLLOWER");
    sh_notification_list_free(l);
    /* unfollow and follow again: a new follow, a new notification */
    assert_int_equal(sh_unfollow(f->hub, a, b, NULL, err, sizeof err),
                     SH_OK);
    sfx_follow(f->hub, a, b);
    rec_wait(f->hub, r, 2);
    assert_int_equal(rec_count(r, "notification"), 2);
    rec_free(f->hub, r);
}

static void test_follow_lists_page(void **state)
{
    struct sfx *f = *state;
    const char *target = sfx_user(f);
    const char *fans[7];
    char err[SH_ERRBUF_SIZE];
    char seen[7][40];
    sh_user_list_t *l = NULL;
    const char *cur;
    char cursor[512];
    int nseen = 0;

    for (int i = 0; i < 7; i++) {
        fans[i] = sfx_user(f);
        sfx_follow(f->hub, fans[i], target);
        /* distinct follow times make "newest first" observable */
        usleep(3000);
    }
    /* first page of 3: the three newest, newest first */
    assert_int_equal(sh_followers_list(f->hub, target, 3, NULL, &l, err,
                                       sizeof err), SH_OK);
    assert_int_equal(sh_user_list_count(l), 3);
    assert_int_equal(sh_user_list_total_count(l), 7);
    assert_true(sh_user_list_has_next(l));
    assert_string_equal(sh_user_list_id_at(l, 0), fans[6]);
    assert_string_equal(sh_user_list_username_at(l, 0),
                        sfx_name_of(f, fans[6]));
    assert_null(sh_user_list_id_at(l, 3));
    assert_non_null(strstr(sh_user_list_json(l, NULL), "\"totalCount\":7"));
    assert_string_equal(sh_user_list_cursor_at(l, 2),
                        sh_user_list_next_cursor(l));
    /* walk every page */
    cur = NULL;
    cursor[0] = '\0';
    for (;;) {
        sh_user_list_free(l);
        l = NULL;
        assert_int_equal(sh_followers_list(f->hub, target, 3,
                                           cursor[0] ? cursor : NULL, &l,
                                           err, sizeof err), SH_OK);
        for (size_t i = 0; i < sh_user_list_count(l); i++)
            snprintf(seen[nseen++], 40, "%s", sh_user_list_id_at(l, i));
        cur = sh_user_list_next_cursor(l);
        if (cur == NULL)
            break;
        snprintf(cursor, sizeof cursor, "%s", cur);
    }
    assert_int_equal(nseen, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(seen[i], fans[6 - i]);
    sh_user_list_free(l);

    /* a page of exactly what is left: no next page */
    assert_int_equal(sh_followers_list(f->hub, target, 7, NULL, &l, err,
                                       sizeof err), SH_OK);
    assert_int_equal(sh_user_list_count(l), 7);
    assert_false(sh_user_list_has_next(l));
    assert_null(sh_user_list_next_cursor(l));
    sh_user_list_free(l);

    /* following of a fan: the target */
    assert_int_equal(sh_following_list(f->hub, fans[0], 20, NULL, &l, err,
                                       sizeof err), SH_OK);
    assert_int_equal(sh_user_list_count(l), 1);
    assert_string_equal(sh_user_list_id_at(l, 0), target);
    /* no email of another user */
    assert_non_null(strstr(sh_user_list_json_at(l, 0, NULL),
                           "\"email\":null"));
    sh_user_list_free(l);

    /* a user nobody follows: an empty page */
    assert_int_equal(sh_followers_list(f->hub, fans[0], 20, NULL, &l, err,
                                       sizeof err), SH_OK);
    assert_int_equal(sh_user_list_count(l), 0);
    assert_int_equal(sh_user_list_total_count(l), 0);
    assert_false(sh_user_list_has_next(l));
    assert_non_null(strstr(sh_user_list_json(l, NULL), "\"items\":[]"));
    sh_user_list_free(l);
}

static void test_follow_list_edges(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    sh_user_list_t *l = NULL;
    static const char *bad[] = {
        "garbage", "!!!!", "e30", /* "{}" */ "WzEsMl0", /* [1,2] */
        "WyJ4IiwieSJd", /* ["x","y"] */ "WzEsIngiXQ", /* [1,"x"] */
    };

    assert_int_equal(sh_followers_list(f->hub, a, 0, NULL, &l, err,
                                       sizeof err), SH_EINVAL);
    assert_null(l);
    assert_int_equal(sh_followers_list(f->hub, a, -1, NULL, &l, err,
                                       sizeof err), SH_EINVAL);
    /* 101 is clamped to 100 */
    assert_int_equal(sh_followers_list(f->hub, a, 101, NULL, &l, err,
                                       sizeof err), SH_OK);
    sh_user_list_free(l);
    l = NULL;
    assert_int_equal(sh_followers_list(f->hub, a, 100, NULL, &l, err,
                                       sizeof err), SH_OK);
    sh_user_list_free(l);
    l = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sh_followers_list(f->hub, a, 10, bad[i], &l, err,
                                           sizeof err), SH_EINVAL);
        assert_null(l);
    }
    /* "" is the first page */
    assert_int_equal(sh_followers_list(f->hub, a, 10, "", &l, err,
                                       sizeof err), SH_OK);
    sh_user_list_free(l);
    l = NULL;
    assert_int_equal(sh_followers_list(f->hub, NAUTH, 10, NULL, &l, err,
                                       sizeof err), SH_ENOTFOUND);
    assert_null(l);
    sh_user_list_free(NULL);
    assert_int_equal(sh_user_list_count(NULL), 0);
}

/* The batch answers what sh_follow_counts() answers, -1 for no user. */
static void test_follow_counts_many_matches_one_by_one(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f), *b = sfx_user(f), *c = sfx_user(f);
    const char *d = sfx_user(f);
    char err[SH_ERRBUF_SIZE], nul_id[40];
    int64_t fol[10], fing[10], one_fol, one_fing;

    assert_int_equal(sh_follow(f->hub, a, b, NULL, err, sizeof err), SH_OK);
    assert_int_equal(sh_follow(f->hub, c, b, NULL, err, sizeof err), SH_OK);
    assert_int_equal(sh_follow(f->hub, d, b, NULL, err, sizeof err), SH_OK);
    assert_int_equal(sh_follow(f->hub, b, a, NULL, err, sizeof err), SH_OK);
    memcpy(nul_id, a, 37);
    nul_id[10] = '\0';        /* cut by an embedded NUL: another id */
    {
        const char *ids[10] = { b, a, NAUTH, "", "not-a-uuid", b, c,
                                nul_id, "\xc3\x28\xff", "' OR 1=1 --" };
        const int64_t want_fol[10] = { 3, 1, -1, -1, -1, 3, 0, -1, -1, -1 };
        const int64_t want_fing[10] = { 1, 1, -1, -1, -1, 1, 1, -1, -1, -1 };

        assert_int_equal(sh_follow_counts_many(f->hub, ids, 10, fol, fing,
                                               err, sizeof err), SH_OK);
        for (size_t i = 0; i < 10; i++) {
            assert_int_equal(fol[i], want_fol[i]);
            assert_int_equal(fing[i], want_fing[i]);
            if (want_fol[i] < 0)
                continue;
            assert_int_equal(sh_follow_counts(f->hub, ids[i], &one_fol,
                                              &one_fing, err, sizeof err),
                             SH_OK);
            assert_int_equal(fol[i], one_fol);
            assert_int_equal(fing[i], one_fing);
        }
        /* Either output may be NULL, or both. */
        memset(fing, 0x55, sizeof fing);
        assert_int_equal(sh_follow_counts_many(f->hub, ids, 10, NULL, fing,
                                               err, sizeof err), SH_OK);
        assert_int_equal(fing[0], 1);
        assert_int_equal(fing[2], -1);
        assert_int_equal(sh_follow_counts_many(f->hub, ids, 10, NULL, NULL,
                                               err, sizeof err), SH_OK);
    }
    /* An unfollow shows in the next batch (nothing is cached). */
    assert_int_equal(sh_unfollow(f->hub, d, b, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_follow_counts_many(f->hub, &b, 1, fol, fing, err,
                                           sizeof err), SH_OK);
    assert_int_equal(fol[0], 2);
}

static void test_follow_counts_many_bounds(void **state)
{
    struct sfx *f = *state;
    const char *a = sfx_user(f), *b = sfx_user(f);
    char err[SH_ERRBUF_SIZE];
    const char *two[2] = { a, NULL };
    size_t max = SH_FOLLOW_COUNTS_MANY_MAX;
    const char **ids = calloc(max + 1, sizeof *ids);
    char (*fake)[40] = calloc(max + 1, sizeof *fake);
    int64_t *fol = malloc((max + 1) * sizeof *fol);
    int64_t *fing = malloc((max + 1) * sizeof *fing);
    int64_t sentinel = 77;

    assert_non_null(ids);
    assert_non_null(fake);
    assert_non_null(fol);
    assert_non_null(fing);
    assert_int_equal(sh_follow(f->hub, a, b, NULL, err, sizeof err), SH_OK);

    /* empty: OK, nothing written */
    assert_int_equal(sh_follow_counts_many(f->hub, NULL, 0, &sentinel,
                                           &sentinel, err, sizeof err),
                     SH_OK);
    assert_int_equal(sentinel, 77);
    /* refusals write nothing */
    fol[0] = fol[1] = 77;
    assert_int_equal(sh_follow_counts_many(f->hub, NULL, 2, fol, NULL, err,
                                           sizeof err), SH_EINVAL);
    assert_int_equal(sh_follow_counts_many(f->hub, two, 2, fol, NULL, err,
                                           sizeof err), SH_EINVAL);
    assert_int_equal(sh_follow_counts_many(NULL, two, 1, fol, NULL, err,
                                           sizeof err), SH_EINVAL);
    assert_int_equal(fol[0], 77);
    assert_int_equal(fol[1], 77);

    /* max distinct ids (20 statements of 50), real users among them */
    for (size_t i = 0; i <= max; i++) {
        snprintf(fake[i], sizeof fake[i],
                 "00000000-0000-4000-8000-%012zu", i + 1);
        ids[i] = fake[i];
    }
    ids[0] = b;
    ids[max / 2 + 7] = a;
    ids[max - 1] = b;
    assert_int_equal(sh_follow_counts_many(f->hub, ids, max, fol, fing, err,
                                           sizeof err), SH_OK);
    for (size_t i = 0; i < max; i++) {
        int64_t wf = ids[i] == b ? 1 : ids[i] == a ? 0 : -1;
        int64_t wg = ids[i] == a ? 1 : ids[i] == b ? 0 : -1;
        assert_int_equal(fol[i], wf);
        assert_int_equal(fing[i], wg);
    }
    /* max + 1: refused, nothing written */
    fol[0] = 77;
    assert_int_equal(sh_follow_counts_many(f->hub, ids, max + 1, fol, fing,
                                           err, sizeof err), SH_EINVAL);
    assert_int_equal(fol[0], 77);
    free(ids);
    free(fake);
    free(fol);
    free(fing);
}

static int setup(void **state)
{
    return sfx_setup_n(state, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_is_idempotent),
        cmocka_unit_test(test_follow_refusals),
        cmocka_unit_test(test_follow_notifies_once),
        cmocka_unit_test(test_follow_lists_page),
        cmocka_unit_test(test_follow_list_edges),
        cmocka_unit_test(test_follow_counts_many_matches_one_by_one),
        cmocka_unit_test(test_follow_counts_many_bounds),
    };
    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
