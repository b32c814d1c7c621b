/* tests/unit/test_services_chat_rules.c: the chat's text checks
 * (chat_rules.c) and its id map (moderation.c), the pure parts of the chat:
 * empty, max, max+1, embedded NUL, bad UTF-8, input cut at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/chat_int.h"
#include "streamhub/auth.h"
#include "streamhub/streams.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void clean_ok(const char *in, size_t len, int64_t max,
                     const char *want, size_t want_len)
{
    char *out = NULL;
    size_t n = 0;

    assert_int_equal(sh__chat_text_clean(in, len, max, &out, &n), SH_OK);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, n);
    assert_int_equal(out[n], '\0');
    free(out);
}

static void clean_err(const char *in, size_t len, int64_t max, sh_err_t want)
{
    char *out = (char *)1;
    size_t n = 7;

    assert_int_equal(sh__chat_text_clean(in, len, max, &out, &n), want);
    assert_null(out);
    assert_int_equal(n, 0);
}

static void test_clean_strips_cc_only(void **state)
{
    (void)state;
    clean_ok(S("hello"), 500, "hello", 5);
    clean_ok(S("a\0b"), 500, "ab", 2);
    clean_ok(S("\ta\r\nb\x1b[0m"), 500, "ab[0m", 5);
    clean_ok(S("x\xc2\x80y\xc2\x9f"), 500, "xy", 2);           /* C1 */
    clean_ok(S("\xc2\xa0"), 500, "\xc2\xa0", 2);                 /* NBSP */
    clean_ok(S("a\xe2\x80\x8d" "b"), 500, "a\xe2\x80\x8d" "b", 5); /* ZWJ */
    clean_ok(S("\xe2\x80\x8b"), 500, "\xe2\x80\x8b", 3);   /* ZWSP is Cf */
    clean_ok(S("\xf4\x8f\xbf\xbf"), 500, "\xf4\x8f\xbf\xbf", 4);
}

static void test_clean_refusals_in_order(void **state)
{
    char buf[8001];

    (void)state;
    clean_err("", 0, 500, SH_EEMPTY);
    clean_err(NULL, 0, 500, SH_EEMPTY);
    clean_err(S("\n\n\0"), 500, SH_EEMPTY);
    clean_err(S("\xff"), 500, SH_EBADUTF8);
    clean_err(S("\xc0\x80"), 500, SH_EBADUTF8);
    clean_err(S("\xed\xbf\xbf"), 500, SH_EBADUTF8);
    clean_err(S("\xf4\x90\x80\x80"), 500, SH_EBADUTF8);
    /* max and max+1 code points, 1..4 bytes each */
    memset(buf, 'a', sizeof buf);
    clean_ok(buf, 10, 10, buf, 10);
    clean_err(buf, 11, 10, SH_ETOOLONG);
    for (int i = 0; i < 2000; i++)
        memcpy(buf + 4 * i, "\xf0\x9f\x98\x80", 4);
    clean_ok(buf, 8000, 2000, buf, 8000);
    clean_err(buf, 8000, 1999, SH_ETOOLONG);
    memcpy(buf + 8000, "a", 1);
    clean_err(buf, 8001, 2000, SH_ETOOLONG);
    /* too long wins over bad UTF-8; an absurd size is refused at once */
    memset(buf, '\xff', sizeof buf);
    clean_err(buf, 11, 10, SH_ETOOLONG);
    clean_err(buf, (size_t)1 << 40, 2000, SH_ETOOLONG);
    /* a bad max is treated as 1 */
    clean_ok(S("a"), 0, "a", 1);
    clean_err(S("ab"), -5, SH_ETOOLONG);
}

static void test_clean_every_cut(void **state)
{
    static const char text[] =
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7";
    size_t n = sizeof text - 1;

    (void)state;
    for (size_t cut = 1; cut <= n; cut++) {
        /* a cut inside a sequence is bad UTF-8; at a boundary, fine */
        char *out = NULL;
        size_t len = 0;
        sh_err_t rc = sh__chat_text_clean(text, cut, 500, &out, &len);
        bool boundary = cut == n || ((unsigned char)text[cut] & 0xc0) != 0x80;

        if (boundary) {
            assert_int_equal(rc, SH_OK);
            assert_int_equal(len, cut);
            assert_memory_equal(out, text, cut);
        } else {
            assert_int_equal(rc, SH_EBADUTF8);
        }
        free(out);
    }
}

static void test_fold_and_match(void **state)
{
    char *terms[3] = { NULL, NULL, NULL };
    size_t tl[3];
    char *f = NULL;
    size_t fl;

    (void)state;
    assert_int_equal(sh__chat_fold(S("BadWord"), &terms[0], &tl[0]), SH_OK);
    assert_int_equal(sh__chat_fold(S("\xc3\x89VIL"), &terms[1], &tl[1]),
                     SH_OK);
    assert_int_equal(sh__chat_fold(S("\xce\xa3\xce\xb9"), &terms[2], &tl[2]),
                     SH_OK);
    assert_string_equal(terms[0], "badword");
    assert_string_equal(terms[1], "\xc3\xa9vil");

    assert_int_equal(sh__chat_fold(S("so bad\xe2\x80\x8bWORD!"), &f, &fl),
                     SH_OK);
    assert_true(sh__chat_terms_match(terms, tl, 3, f, fl));
    free(f);
    assert_int_equal(sh__chat_fold(S("bad\xc2\xad" "w\xef\xb8\x8f" "ord"),
                                   &f, &fl), SH_OK);
    assert_true(sh__chat_terms_match(terms, tl, 3, f, fl));
    free(f);
    assert_int_equal(sh__chat_fold(S("\xcf\x83\xce\x99 x"), &f, &fl), SH_OK);
    assert_true(sh__chat_terms_match(terms, tl, 3, f, fl));
    free(f);
    assert_int_equal(sh__chat_fold(S("bad word, evil"), &f, &fl), SH_OK);
    assert_false(sh__chat_terms_match(terms, tl, 3, f, fl));
    assert_false(sh__chat_terms_match(terms, tl, 0, f, fl));
    free(f);
    assert_int_equal(sh__chat_fold("", 0, &f, &fl), SH_OK);
    assert_int_equal(fl, 0);
    assert_false(sh__chat_terms_match(terms, tl, 3, f, fl));
    free(f);
    for (int i = 0; i < 3; i++)
        free(terms[i]);
}

static void test_term_check(void **state)
{
    char big[4 * 101];

    (void)state;
    assert_null(sh__chat_term_check(S("ok"), 100));
    assert_non_null(sh__chat_term_check("", 0, 100));
    assert_non_null(sh__chat_term_check(S("a\0b"), 100));
    assert_non_null(sh__chat_term_check(S("a\nb"), 100));
    assert_non_null(sh__chat_term_check(S("\xc3"), 100));
    assert_non_null(sh__chat_term_check(S("\xe2\x80\x8b\xc2\xad"), 100));
    for (int i = 0; i < 101; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    assert_null(sh__chat_term_check(big, 400, 100));
    assert_non_null(sh__chat_term_check(big, 404, 100));
    assert_true(sh__chat_text_ok(S("r\xc3\xa9"), 2));
    assert_false(sh__chat_text_ok(S("r\xc3\xa9s"), 2));
    assert_false(sh__chat_text_ok(S("\xc3"), 2));
}

static void test_idmap(void **state)
{
    struct sh__idmap m;
    char key[SH__ID_SIZE];
    char toolong[SH__ID_SIZE + 1];

    (void)state;
    memset(&m, 0, sizeof m);
    assert_null(sh__idmap_get(&m, "x"));
    assert_null(sh__idmap_del(&m, "x"));
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct sh__idmap_ent *e = sh__idmap_put(&m, key);
        assert_non_null(e);
        e->val = i;
    }
    assert_int_equal(m.n, 5000);
    assert_true(sh__idmap_put(&m, "k42") == sh__idmap_get(&m, "k42"));
    assert_int_equal(m.n, 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(sh__idmap_get(&m, key)->val, i);
        sh__idmap_del(&m, key);
    }
    assert_int_equal(m.n, 2500);
    assert_null(sh__idmap_get(&m, "k0"));
    assert_int_equal(sh__idmap_get(&m, "k4999")->val, 4999);
    memset(toolong, 'a', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    assert_null(sh__idmap_put(&m, toolong));
    assert_non_null(sh__idmap_put(&m, ""));
    sh__idmap_get(&m, "")->ptr = malloc(8);
    sh__idmap_clear(&m, free);
    assert_int_equal(m.n, 0);
    assert_null(sh__idmap_get(&m, "k1"));
    sh__idmap_clear(&m, free);
}

/* The chat's metrics count accepted and refused messages by error. */
static void test_metrics_count_sends(void **state)
{
    char err[SH_ERRBUF_SIZE], uid[40], sid[40];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    sh_auth_t *a = NULL;
    sh_stream_t *st = NULL;
    char *text = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_hub_open(conf, &hub, err, sizeof err), SH_OK);
    assert_int_equal(sh_auth_register(hub, "metric_user", "m@example.com",
                                      "correct horse battery", &a, err,
                                      sizeof err), SH_OK);
    snprintf(uid, sizeof uid, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
    assert_int_equal(sh_stream_start(hub, uid, "t", NULL, &st, err,
                                     sizeof err), SH_OK);
    snprintf(sid, sizeof sid, "%s", sh_stream_id(st));
    sh_stream_free(st);
    assert_int_equal(sh_chat_send(hub, uid, sid, S("one"), NULL, NULL, err,
                                  sizeof err), SH_OK);
    assert_int_equal(sh_chat_send(hub, uid, sid, S("two"), NULL, NULL, err,
                                  sizeof err), SH_OK);
    assert_int_equal(sh_chat_send(hub, uid, sid, S("\n"), NULL, NULL, err,
                                  sizeof err), SH_EEMPTY);
    assert_int_equal(sh_chat_send(hub, NULL, sid, S("x"), NULL, NULL, err,
                                  sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh__chat_queue_depth(hub) <= 2, 1);
    assert_int_equal(sh__metrics_render(hub->metrics, &text, &len), SH_OK);
    assert_non_null(strstr(text, "streamhub_chat_messages_total 2"));
    assert_non_null(strstr(text, "streamhub_chat_refused_total{error=\"SH_EEMPTY\"} 1"));
    assert_non_null(strstr(text,
        "streamhub_chat_refused_total{error=\"SH_EUNAUTHENTICATED\"} 1"));
    free(text);
    sh_hub_close(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_strips_cc_only),
        cmocka_unit_test(test_clean_refusals_in_order),
        cmocka_unit_test(test_clean_every_cut),
        cmocka_unit_test(test_fold_and_match),
        cmocka_unit_test(test_term_check),
        cmocka_unit_test(test_idmap),
        cmocka_unit_test(test_metrics_count_sends),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
