/* tests/contract/test_ids.c: what clients send that the store must take as
 * data on every backend: ids that are no UUID (PostgreSQL's ids are
 * `uuid`), search text with tsquery operators, a name taken twice inside
 * one transaction.  Public API only. */
#include "social_fixture.h"

#include "streamhub/users.h"

static int setup(void **state)
{
    return sfx_setup_n(state, 4);
}

/* A malformed id finds nothing, as a well-formed unknown one: never a
 * store error. */
static void test_malformed_ids_are_not_found(void **state)
{
    static const char *bad[] = {
        "nope", "", "'; DROP TABLE users; --",
        "00000000-0000-0000-0000-00000000000G",
        "DEADBEEF-0000-4000-8000-000000000000",
        "{00000000-0000-4000-8000-000000000000}",
    };
    struct sfx *f = *state;
    const char *a = sfx_user(f);
    char err[SH_ERRBUF_SIZE];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_user_t *u = NULL;
        sh_stream_t *s = NULL;
        bool yes = true;
        int64_t n = -1;
        sh_err_t rc;

        rc = sh_user_get(f->hub, NULL, bad[i], &u, err, sizeof err);
        if (rc != SH_ENOTFOUND)
            fail_msg("user '%s': %s (%s)", bad[i], sh_err_name(rc), err);
        assert_null(u);
        rc = sh_stream_get(f->hub, bad[i], &s, err, sizeof err);
        if (rc != SH_ENOTFOUND)
            fail_msg("stream '%s': %s (%s)", bad[i], sh_err_name(rc), err);
        rc = sh_follow(f->hub, a, bad[i], NULL, err, sizeof err);
        if (rc != SH_ENOTFOUND && rc != SH_EINVAL)
            fail_msg("follow '%s': %s (%s)", bad[i], sh_err_name(rc), err);
        assert_int_equal(sh_follow_check(f->hub, a, bad[i], &yes, err,
                                         sizeof err), SH_OK);
        assert_false(yes);
        assert_int_equal(sh_notification_mark_read(f->hub, a, &bad[i], 1,
                                                   &n, err, sizeof err),
                         SH_OK);
        assert_int_equal(n, 0);
    }
}

/* tsquery's operators, quotes and a lone wildcard are words to search
 * for, never syntax. */
static void test_search_text_is_never_syntax(void **state)
{
    static const char *queries[] = {
        "a & b", "a|b", "!a", "(a", "a:*", "*", "&|!():*", "'\"",
        "\\", "a <-> b", "chess:A", "-chess OR or and",
    };
    struct sfx *f = *state;
    const char *a = sfx_user(f);
    char err[SH_ERRBUF_SIZE], id[40];
    sh_stream_list_t *l = NULL;

    sfx_start(f->hub, a, "chess & go (live!)", "board:games", id);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        sh_err_t rc = sh_stream_search(f->hub, queries[i], 10, NULL, &l,
                                       err, sizeof err);

        if (rc != SH_OK)
            fail_msg("search '%s': %s (%s)", queries[i], sh_err_name(rc),
                     err);
        sh_stream_list_free(l);
        l = NULL;
    }
    assert_int_equal(sh_stream_search(f->hub, "chess&go!", 10, NULL, &l,
                                      err, sizeof err), SH_OK);
    assert_int_equal(sh_stream_list_count(l), 1);
    sh_stream_list_free(l);
}

/* Registering a taken username says which one was taken: the check runs
 * after the failed insert, which PostgreSQL's aborted transaction would
 * refuse. */
static void test_taken_username_is_named(void **state)
{
    struct sfx *f = *state;
    char err[SH_ERRBUF_SIZE] = "", email[64];
    sh_auth_t *au = NULL;

    snprintf(email, sizeof email, "other.%s@example.com", f->names[0]);
    assert_int_equal(sh_auth_register(f->hub, f->names[0], email,
                                      "correct horse battery", &au, err,
                                      sizeof err), SH_ECONFLICT);
    assert_null(au);
    assert_non_null(strstr(err, "username"));
    assert_int_equal(sh_auth_register(f->hub, "fresh_name_x1",
                                      "t@example.com", "correct horse battery",
                                      &au, err, sizeof err), SH_OK);
    sh_auth_free(au);
    au = NULL;
    assert_int_equal(sh_auth_register(f->hub, "fresh_name_x2",
                                      "T@example.com", "correct horse battery",
                                      &au, err, sizeof err), SH_ECONFLICT);
    assert_non_null(strstr(err, "email"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_ids_are_not_found),
        cmocka_unit_test(test_search_text_is_never_syntax),
        cmocka_unit_test(test_taken_username_is_named),
    };

    return cmocka_run_group_tests(tests, setup, sfx_teardown);
}
