/* tests/unit/test_services_util.c: the services' shared plumbing
 * (services_util.c: cursors, page sizes, pages) and the mention scanner of
 * notifications.c (sh__notify_mentions), which the chat calls internally. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/services_int.h"
#include "streamhub/auth.h"
#include "streamhub/notifications.h"

#define ID1 "0a1b2c3d-0000-4000-8000-00000000abcd"

static void test_page_first(void **state)
{
    int n = -7;

    (void)state;
    assert_int_equal(sh__page_first(0, &n, NULL, 0), SH_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(sh__page_first(-1, &n, NULL, 0), SH_EINVAL);
    assert_int_equal(sh__page_first(-2147483647 - 1, &n, NULL, 0),
                     SH_EINVAL);
    assert_int_equal(sh__page_first(1, &n, NULL, 0), SH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sh__page_first(100, &n, NULL, 0), SH_OK);
    assert_int_equal(n, 100);
    assert_int_equal(sh__page_first(101, &n, NULL, 0), SH_OK);
    assert_int_equal(n, 100);
    assert_int_equal(sh__page_first(2147483647, &n, NULL, 0), SH_OK);
    assert_int_equal(n, 100);
}

static void test_cursor_round_trip(void **state)
{
    char *c = NULL, id[SH__UUID_LEN + 1];
    int64_t t = 0;
    bool have = true;

    (void)state;
    assert_int_equal(sh__cursor_ti_decode(NULL, &have, &t, id, NULL, 0),
                     SH_OK);
    assert_false(have);
    assert_int_equal(sh__cursor_ti_decode("", &have, &t, id, NULL, 0),
                     SH_OK);
    assert_false(have);
    assert_int_equal(sh__cursor_ti_encode(INT64_MAX, ID1, &c), SH_OK);
    /* base64url without padding: no '+', '/', '=' */
    assert_null(strpbrk(c, "+/="));
    assert_int_equal(sh__cursor_ti_decode(c, &have, &t, id, NULL, 0), SH_OK);
    assert_true(have);
    assert_true(t == INT64_MAX);
    assert_string_equal(id, ID1);
    /* every truncation of a valid cursor is refused or decodes to
     * something else entirely, never crashes */
    for (size_t cut = 1; cut < strlen(c); cut++) {
        char *p = strndup(c, cut);
        sh_err_t rc = sh__cursor_ti_decode(p, &have, &t, id, NULL, 0);
        assert_int_equal(rc, SH_EINVAL);
        assert_false(have);
        free(p);
    }
    free(c);
}

static void test_cursor_garbage(void **state)
{
    char id[SH__UUID_LEN + 1], big[2000], err[SH_ERRBUF_SIZE];
    json_object *a = NULL;
    int64_t t;
    bool have;
    static const char *bad[] = {
        "x", "====", "a b", "\xff\xfe", "W10", /* [] */
        "WzFd", /* [1] */ "WyJhIiwxXQ", /* ["a",1] */
        "WzEsIm5vdC1hLXV1aWQiXQ", /* [1,"not-a-uuid"] */
        "WzEsMl0gZ2FyYmFnZQ", /* "[1,2] garbage" */
        "AA", /* a NUL byte */
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sh__cursor_ti_decode(bad[i], &have, &t, id, err,
                                              sizeof err), SH_EINVAL);
        assert_false(have);
        assert_non_null(strstr(err, "cursor"));
    }
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sh__cursor_decode(big, 2, &a, NULL, 0), SH_EINVAL);
    assert_null(a);
    /* a nested document cannot exhaust the parser */
    assert_int_equal(sh__cursor_decode("W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1td", 1,
                                       &a, NULL, 0), SH_EINVAL);
    assert_null(a);
}

static void test_page_builder(void **state)
{
    struct sh__page p;
    struct sh__list *l = NULL;
    char *c;

    (void)state;
    assert_true(sh__page_init(&p, 2));
    for (int i = 0; i < 3; i++) {
        json_object *o = json_object_new_object();
        assert_true(sh__jset_int(o, "i", i));
        assert_int_equal(sh__cursor_ti_encode(i, ID1, &c), SH_OK);
        sh__page_add(&p, o, c);
    }
    assert_int_equal(sh__page_finish(&p, 42, &l), SH_OK);
    assert_int_equal(sh__list_count(l), 2);
    assert_int_equal(sh__jint(sh__list_at(l, 1)->obj, "i"), 1);
    assert_null(sh__list_at(l, 2));
    assert_string_equal(sh__list_next_cursor(l), sh__list_cursor_at(l, 1));
    assert_int_equal(sh__jint(l->obj, "totalCount"), 42);
    sh__list_free(l);
    /* exactly first rows: no next page */
    assert_true(sh__page_init(&p, 1));
    assert_int_equal(sh__cursor_ti_encode(1, ID1, &c), SH_OK);
    sh__page_add(&p, json_object_new_object(), c);
    assert_int_equal(sh__page_finish(&p, 1, &l), SH_OK);
    assert_null(sh__list_next_cursor(l));
    assert_non_null(strstr(sh__jtext(l->obj, NULL), "\"nextCursor\":null"));
    sh__list_free(l);
    sh__list_free(NULL);
}

/* ---- mentions ---------------------------------------------------------- */

struct mfx {
    sh_hub_t *hub;
    char ids[4][40];
    char names[4][32];
};

static int mention_setup(void **state)
{
    struct mfx *f = calloc(1, sizeof *f);
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    unsigned salt = (unsigned)getpid() ^ (unsigned)(uintptr_t)f;

    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_hub_open(conf, &f->hub, err, sizeof err), SH_OK);
    for (int i = 0; i < 4; i++) {
        char email[64];
        sh_auth_t *a = NULL;

        snprintf(f->names[i], sizeof f->names[i], "Men%05x_%d",
                 salt & 0xfffffu, i);
        snprintf(email, sizeof email, "m%d_%x@example.com", i, salt);
        assert_int_equal(sh_auth_register(f->hub, f->names[i], email,
                                          "correct horse battery", &a, err,
                                          sizeof err), SH_OK);
        snprintf(f->ids[i], 40, "%s", sh_user_id(sh_auth_user(a)));
        sh_auth_free(a);
    }
    *state = f;
    return 0;
}

static int mention_teardown(void **state)
{
    struct mfx *f = *state;

    sh_hub_close(f->hub);
    free(f);
    return 0;
}

static int64_t mentions_of(struct mfx *f, int who)
{
    int64_t n = -1;

    assert_int_equal(sh_notification_unread_count(f->hub, f->ids[who], &n,
                                                  NULL, 0), SH_OK);
    return n;
}

static int mention(struct mfx *f, const char *text)
{
    return sh__notify_mentions(f->hub, ID1, f->ids[0], text, strlen(text),
                               NULL);
}

static void test_mentions(void **state)
{
    struct mfx *f = *state;
    char text[256];
    int64_t before1 = mentions_of(f, 1), before2 = mentions_of(f, 2);

    /* once per user per message, any ASCII case, never the author */
    snprintf(text, sizeof text, "hi @%s and @%s, @%s! also @%s",
             f->names[1], f->names[1], f->names[2], f->names[0]);
    for (char *p = strstr(text, f->names[2]); *p != ' ' && *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    assert_int_equal(mention(f, text), 2);
    assert_int_equal(mentions_of(f, 1), before1 + 1);
    assert_int_equal(mentions_of(f, 2), before2 + 1);
    assert_int_equal(mentions_of(f, 0), 0);

    /* not at a word boundary, too short, too long, unknown, cut */
    snprintf(text, sizeof text, "mail a@%s x@@ab @ab @%s_toolong_toolong_x "
             "@nosuchuser_zz @", f->names[3], f->names[3]);
    assert_int_equal(mention(f, text), 0);
    assert_int_equal(mentions_of(f, 3), 0);
    /* a name ending the text, and one followed by punctuation */
    snprintf(text, sizeof text, "(@%s)", f->names[3]);
    assert_int_equal(mention(f, text), 1);
    snprintf(text, sizeof text, "@%s", f->names[3]);
    assert_int_equal(mention(f, text), 1);
    assert_int_equal(mentions_of(f, 3), 2);
    /* an embedded NUL ends no scan early but is no name character */
    {
        char buf[64];
        int n;

        buf[0] = 'x';
        buf[1] = '\0';
        n = snprintf(buf + 2, sizeof buf - 2, "@%s", f->names[3]) + 2;
        assert_int_equal(sh__notify_mentions(f->hub, ID1, f->ids[0], buf,
                                             (size_t)n, NULL), 1);
    }
    /* bad UTF-8 around a name does not matter */
    snprintf(text, sizeof text, "\xff\xfe @%s \xc3", f->names[3]);
    assert_int_equal(mention(f, text), 1);
    assert_int_equal(mention(f, ""), 0);
    assert_int_equal(sh__notify_mentions(f->hub, ID1, f->ids[0], NULL, 0,
                                         NULL), -(int)SH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_page_first),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_garbage),
        cmocka_unit_test(test_page_builder),
    };
    const struct CMUnitTest hub[] = {
        cmocka_unit_test(test_mentions),
    };
    int rc = cmocka_run_group_tests(pure, NULL, NULL);

    return rc + cmocka_run_group_tests(hub, mention_setup, mention_teardown);
}
