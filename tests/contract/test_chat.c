/* tests/contract/test_chat.c: sh_chat_send, sh_chat_history and
 * sh_chat_delete through the public API, on the store of
 * STREAMHUB_TEST_STORE: every refusal and its order, offsets, text rules,
 * history paging, redaction (store and bus recovery), flush on close and
 * the write-behind queue's bound. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include <sqlite3.h>

#include "chat_fixture.h"

static int setup(void **state)
{
    *state = fx_new(fx_store_env(), "chat.rate-limit", "100000",
                    (const char *)NULL);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

#define S(lit) (lit), (sizeof(lit) - 1)

static void test_send_returns_the_message(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_t *m = NULL;
    int64_t retry = -1;
    const char *json, *text;
    size_t len;

    assert_int_equal(sh_chat_send(f->hub, f->ids[1], f->stream, S("hello"),
                                  &m, &retry, err, sizeof err), SH_OK);
    assert_int_equal(retry, 0);
    assert_non_null(m);
    assert_string_equal(sh_chat_message_stream_id(m), f->stream);
    assert_string_equal(sh_chat_message_author_id(m), f->ids[1]);
    assert_string_equal(sh_chat_message_author_username(m), f->names[1]);
    text = sh_chat_message_text(m, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(text, "hello", 5);
    assert_int_equal(sh_chat_message_offset(m), 1);
    assert_false(sh_chat_message_deleted(m));
    assert_int_equal(strlen(sh_chat_message_id(m)), 36);
    assert_int_equal(strlen(sh_chat_message_created_at(m)), 24);
    json = sh_chat_message_json(m, &len);
    assert_non_null(strstr(json, "\"streamId\""));
    assert_non_null(strstr(json, "\"author\":{"));
    assert_non_null(strstr(json, "\"offset\":1"));
    assert_non_null(strstr(json, "\"deleted\":false"));
    sh_chat_message_free(m);
    sh_chat_message_free(NULL);
}

static void test_refusals_come_in_order(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    char too_long[600];
    int64_t retry = 0;
    sh_err_t rc;

    memset(too_long, 'x', sizeof too_long);
    too_long[sizeof too_long - 1] = '\0';

    /* 1. authentication, before anything about the stream */
    rc = sh_chat_send(f->hub, NULL, "nope", S("hi"), NULL, NULL, err,
                      sizeof err);
    assert_int_equal(rc, SH_EUNAUTHENTICATED);
    rc = sh_chat_send(f->hub, "00000000-0000-4000-8000-000000000000",
                      f->stream, S("hi"), NULL, NULL, err, sizeof err);
    assert_int_equal(rc, SH_EUNAUTHENTICATED);
    /* 2. the stream: unknown, not a UUID */
    rc = sh_chat_send(f->hub, f->ids[1],
                      "00000000-0000-4000-8000-000000000000", S("hi"), NULL,
                      NULL, err, sizeof err);
    assert_int_equal(rc, SH_ENOTFOUND);
    rc = sh_chat_send(f->hub, f->ids[1], "", S("hi"), NULL, NULL, err,
                      sizeof err);
    assert_int_equal(rc, SH_ENOTFOUND);
    rc = sh_chat_send(f->hub, f->ids[1], NULL, S("hi"), NULL, NULL, err,
                      sizeof err);
    assert_int_equal(rc, SH_EINVAL);

    /* 3..7: each refusal beats the ones after it */
    assert_int_equal(sh_moderation_ban(f->hub, f->ids[0], f->ids[0],
                                       f->ids[1], "spam", err, sizeof err),
                     SH_OK);
    fx_send(f, 1, too_long, strlen(too_long), SH_EBANNED, NULL);
    fx_send(f, 1, S("\xff"), SH_EBANNED, NULL);
    assert_int_equal(sh_moderation_unban(f->hub, f->ids[0], f->ids[0],
                                         f->ids[1], err, sizeof err), SH_OK);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], 60, NULL, err,
                                           sizeof err), SH_OK);
    fx_send(f, 1, too_long, strlen(too_long), SH_ETIMEDOUT_USER, &retry);
    assert_true(retry > 58000 && retry <= 60000);
    assert_int_equal(sh_moderation_unban(f->hub, f->ids[0], f->ids[0],
                                         f->ids[1], err, sizeof err), SH_OK);
    fx_settings(f, "{\"followersOnly\":true,\"slowModeSeconds\":30}");
    fx_send(f, 1, too_long, strlen(too_long), SH_EFOLLOWERSONLY, NULL);
    fx_settings(f, "{\"followersOnly\":false}");
    fx_send(f, 1, S("first"), SH_OK, NULL);
    fx_send(f, 1, too_long, strlen(too_long), SH_ESLOWMODE, &retry);
    assert_true(retry > 0 && retry <= 30000);
    fx_settings(f, "{\"slowModeSeconds\":0}");
    /* length before UTF-8, UTF-8 before emptiness */
    {
        char bad_long[600];

        memset(bad_long, 'y', sizeof bad_long);
        bad_long[0] = '\xff';
        fx_send(f, 1, bad_long, sizeof bad_long, SH_ETOOLONG, NULL);
    }
    fx_send(f, 1, S("\n\xff"), SH_EBADUTF8, NULL);
    fx_send(f, 1, S("\n\t\r"), SH_EEMPTY, NULL);
    fx_send(f, 1, "", 0, SH_EEMPTY, NULL);
    fx_send(f, 1, NULL, 0, SH_EEMPTY, NULL);
    fx_settings(f, "{\"blockedTerms\":[\"badword\"]}");
    fx_send(f, 1, S("a badword\n"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("\n\n"), SH_EEMPTY, NULL);
}

static void test_rate_limit_gives_retry_after(void **state)
{
    struct fx *f = fx_new(fx_store_env(), "chat.rate-limit", "3",
                          "chat.rate-window-seconds", "60",
                          (const char *)NULL);
    int64_t retry = 0;

    (void)state;
    for (int i = 0; i < 3; i++)
        fx_send(f, 1, S("x"), SH_OK, NULL);
    fx_send(f, 1, S("x"), SH_ERATELIMITED, &retry);
    assert_true(retry >= 1 && retry <= 20000);
    /* other users have their own bucket; a refused text costs nothing */
    fx_send(f, 3, S("x"), SH_OK, NULL);
    fx_send(f, 3, S("\xc3"), SH_EBADUTF8, NULL);
    fx_send(f, 3, S("y"), SH_OK, NULL);
    fx_free(f);
}

static void test_offsets_increase_by_one(void **state)
{
    struct fx *f = *state;
    int64_t prev = 0;

    for (int i = 0; i < 1000; i++) {
        int64_t off = fx_send(f, i % 3, S("tick"), SH_OK, NULL);

        assert_int_equal(off, prev + 1);
        prev = off;
    }
}

static void test_text_rules(void **state)
{
    struct fx *f = *state;
    /* woman, ZWJ, woman, ZWJ, girl; then a variation selector */
    static const char family[] =
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d"
        "\xf0\x9f\x91\xa7 \xe2\x9d\xa4\xef\xb8\x8f";
    static const char *bad[] = {
        "\xc3\x28", "\xa0\xa1", "\xe2\x28\xa1", "\xe2\x82", "\xf0\x28\x8c\x28",
        "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xfe", "ok\xc3",
    };
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_t *m = NULL;
    const char *t;
    size_t len;

    assert_int_equal(sh_chat_send(f->hub, f->ids[1], f->stream, S(family),
                                  &m, NULL, err, sizeof err), SH_OK);
    t = sh_chat_message_text(m, &len);
    assert_int_equal(len, sizeof family - 1);
    assert_memory_equal(t, family, len);
    sh_chat_message_free(m);

    assert_int_equal(sh_chat_send(f->hub, f->ids[1], f->stream,
                                  S("a\nb\r\x7f" "c\0d\xc2\x85" "e"), &m,
                                  NULL, err, sizeof err), SH_OK);
    t = sh_chat_message_text(m, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(t, "abcde", 5);
    sh_chat_message_free(m);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        fx_send(f, 1, bad[i], strlen(bad[i]), SH_EBADUTF8, NULL);
}

static void test_length_in_code_points(void **state)
{
    struct fx *f = *state;
    char buf[2 * 11];

    fx_settings(f, "{\"maxMessageLength\":10}");
    /* 10 two-byte letters: 20 bytes, 10 code points */
    for (int i = 0; i < 10; i++)
        memcpy(buf + 2 * i, "\xc3\xa9", 2);
    fx_send(f, 1, buf, 20, SH_OK, NULL);
    memcpy(buf + 20, "\xc3\xa9", 2);
    fx_send(f, 1, buf, 22, SH_ETOOLONG, NULL);
    /* control characters count before they are removed */
    fx_send(f, 1, S("0123456789\n"), SH_ETOOLONG, NULL);
    fx_settings(f, "{\"maxMessageLength\":2000}");
    {
        char *big = malloc(2001);

        assert_non_null(big);
        memset(big, 'z', 2001);
        fx_send(f, 1, big, 2000, SH_OK, NULL);
        fx_send(f, 1, big, 2001, SH_ETOOLONG, NULL);
        free(big);
    }
}

static void test_blocked_terms_see_through_invisibles(void **state)
{
    struct fx *f = *state;

    fx_settings(f, "{\"blockedTerms\":[\"badword\",\"\xc3\xa9vil\"]}");
    fx_send(f, 1, S("bad\xe2\x80\x8bword"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("BADWORD!"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("so bad\xc2\xad" "word"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("\xc3\x89VIL"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("bad\nword"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("bad word"), SH_OK, NULL);
    fx_send(f, 1, S("evil"), SH_OK, NULL);
}

static void test_slow_mode(void **state)
{
    struct fx *f = *state;
    int64_t retry = 0;

    fx_settings(f, "{\"slowModeSeconds\":30}");
    fx_send(f, 1, S("one"), SH_OK, NULL);
    fx_send(f, 1, S("two"), SH_ESLOWMODE, &retry);
    assert_true(retry > 29000 && retry <= 30000);
    fx_send(f, 3, S("another user"), SH_OK, NULL);
    /* broadcaster and moderators are exempt */
    fx_send(f, 0, S("bc 1"), SH_OK, NULL);
    fx_send(f, 0, S("bc 2"), SH_OK, NULL);
    fx_send(f, 2, S("mod 1"), SH_OK, NULL);
    fx_send(f, 2, S("mod 2"), SH_OK, NULL);
    fx_settings(f, "{\"slowModeSeconds\":0}");
    fx_send(f, 1, S("three"), SH_OK, NULL);
}

static void test_followers_only_tracks_follows(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];

    fx_settings(f, "{\"followersOnly\":true}");
    fx_send(f, 1, S("hi"), SH_EFOLLOWERSONLY, NULL);
    assert_int_equal(sh_follow(f->hub, f->ids[1], f->ids[0], NULL, err,
                               sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_OK, NULL);
    assert_int_equal(sh_unfollow(f->hub, f->ids[1], f->ids[0], NULL, err,
                                 sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_EFOLLOWERSONLY, NULL);
    fx_send(f, 2, S("mods are exempt"), SH_OK, NULL);
    fx_send(f, 0, S("so is the broadcaster"), SH_OK, NULL);
}

static void test_offline_stream_refused(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];

    fx_send(f, 1, S("before"), SH_OK, NULL);
    assert_int_equal(sh_stream_stop(f->hub, f->ids[0], f->stream, NULL, err,
                                    sizeof err), SH_OK);
    fx_send(f, 1, S("after"), SH_ECONFLICT, NULL);
}

static void test_history_pages_backwards(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE], text[16];
    sh_chat_message_list_t *l = NULL;
    char *cursor;

    for (int i = 1; i <= 25; i++) {
        snprintf(text, sizeof text, "m%d", i);
        fx_send(f, 1, text, strlen(text), SH_OK, NULL);
    }
    assert_int_equal(sh_chat_history(f->hub, f->stream, 10, NULL, &l, err,
                                     sizeof err), SH_OK);
    assert_int_equal(sh_chat_message_list_count(l), 10);
    assert_int_equal(sh_chat_message_offset(sh_chat_message_list_at(l, 0)),
                     16);
    assert_int_equal(sh_chat_message_offset(sh_chat_message_list_at(l, 9)),
                     25);
    assert_string_equal(sh_chat_message_text(sh_chat_message_list_at(l, 9),
                                             NULL), "m25");
    assert_true(sh_chat_message_list_has_previous(l));
    assert_null(sh_chat_message_list_at(l, 10));
    assert_non_null(strstr(sh_chat_message_list_json(l, NULL),
                           "\"hasPreviousPage\":true"));
    cursor = strdup(sh_chat_message_list_start_cursor(l));
    sh_chat_message_list_free(l);

    assert_int_equal(sh_chat_history(f->hub, f->stream, 10, cursor, &l, err,
                                     sizeof err), SH_OK);
    free(cursor);
    assert_int_equal(sh_chat_message_list_count(l), 10);
    assert_int_equal(sh_chat_message_offset(sh_chat_message_list_at(l, 0)),
                     6);
    assert_int_equal(sh_chat_message_offset(sh_chat_message_list_at(l, 9)),
                     15);
    cursor = strdup(sh_chat_message_list_start_cursor(l));
    sh_chat_message_list_free(l);

    assert_int_equal(sh_chat_history(f->hub, f->stream, 10, cursor, &l, err,
                                     sizeof err), SH_OK);
    free(cursor);
    assert_int_equal(sh_chat_message_list_count(l), 5);
    assert_int_equal(sh_chat_message_offset(sh_chat_message_list_at(l, 0)),
                     1);
    assert_false(sh_chat_message_list_has_previous(l));
    sh_chat_message_list_free(l);

    /* bad arguments */
    assert_int_equal(sh_chat_history(f->hub, f->stream, -1, NULL, &l, err,
                                     sizeof err), SH_EINVAL);
    assert_null(l);
    assert_int_equal(sh_chat_history(f->hub, f->stream, 10, "garbage!", &l,
                                     err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_chat_history(f->hub, f->stream, 10, "", &l, err,
                                     sizeof err), SH_OK);
    sh_chat_message_list_free(l);
    assert_int_equal(sh_chat_history(f->hub,
                                     "00000000-0000-4000-8000-000000000000",
                                     10, NULL, &l, err, sizeof err),
                     SH_ENOTFOUND);
    /* 1000 is clamped to the maximum page */
    assert_int_equal(sh_chat_history(f->hub, f->stream, 1000, NULL, &l, err,
                                     sizeof err), SH_OK);
    assert_int_equal(sh_chat_message_list_count(l), 25);
    sh_chat_message_list_free(l);
}

/* Subscribe from the channel's start and collect what is replayed. */
static void replay(struct fx *f, struct fx_events *ev)
{
    char err[SH_ERRBUF_SIZE], chan[64];
    sh_position_t pos, since;
    sh_subscribe_result_t res;
    sh_subscription_t *sub = NULL;

    snprintf(chan, sizeof chan, "chat:%s", f->stream);
    assert_int_equal(sh_channel_position(f->hub, chan, &pos, err,
                                         sizeof err), SH_OK);
    memset(&since, 0, sizeof since);
    memcpy(since.epoch, pos.epoch, sizeof since.epoch);
    since.offset = 0;
    assert_int_equal(sh_subscribe(f->hub, chan, &since, fx_event_cb, ev,
                                  &sub, &res, err, sizeof err), SH_OK);
    assert_int_equal(res.recovered, 1);
    fx_poll_until(f->hub, ev, (int)pos.offset);
    assert_int_equal(ev->n, (int)pos.offset);
    sh_subscription_free(sub);
    for (int i = 0; i < 50 && ev->final == 0; i++)
        sh_hub_poll(f->hub, 10);
}

/* Check that message @id is redacted in history and in the bus replay. */
static void assert_redacted(struct fx *f, const char *id, bool want)
{
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_list_t *l = NULL;
    struct fx_events *ev = calloc(1, sizeof *ev);
    bool seen = false;

    assert_non_null(ev);
    assert_int_equal(sh_chat_history(f->hub, f->stream, 100, NULL, &l, err,
                                     sizeof err), SH_OK);
    for (size_t i = 0; i < sh_chat_message_list_count(l); i++) {
        const sh_chat_message_t *m = sh_chat_message_list_at(l, i);

        if (strcmp(sh_chat_message_id(m), id) == 0) {
            size_t len;
            const char *t = sh_chat_message_text(m, &len);

            seen = true;
            assert_int_equal(sh_chat_message_deleted(m), want);
            if (want)
                assert_int_equal(len, 0);
            else
                assert_true(len > 0 && t != NULL);
        }
    }
    sh_chat_message_list_free(l);
    assert_true(seen);

    replay(f, ev);
    seen = false;
    for (int i = 0; i < ev->n; i++) {
        const char *data = sh_event_data(ev->ev[i], NULL);

        if (strcmp(sh_event_type(ev->ev[i]), "chat.message") == 0 &&
            strstr(data, id) != NULL) {
            seen = true;
            if (want) {
                assert_non_null(strstr(data, "\"text\":\"\""));
                assert_non_null(strstr(data, "\"deleted\":true"));
            } else {
                assert_non_null(strstr(data, "\"deleted\":false"));
            }
        }
    }
    assert_true(seen);
    fx_events_clear(ev);
    free(ev);
}

static char *send_id(struct fx *f, int who, const char *text)
{
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_t *m = NULL;
    char *id;

    assert_int_equal(sh_chat_send(f->hub, f->ids[who], f->stream, text,
                                  strlen(text), &m, NULL, err, sizeof err),
                     SH_OK);
    id = strdup(sh_chat_message_id(m));
    sh_chat_message_free(m);
    return id;
}

static void test_delete_redacts_everywhere(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    char *a = send_id(f, 1, "keep me");
    char *b = send_id(f, 1, "delete me");
    struct fx_events *ev = calloc(1, sizeof *ev);
    int deleted_events = 0;

    assert_int_equal(sh_chat_delete(f->hub, f->ids[3], b, err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_chat_delete(f->hub, f->ids[1], b, err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_chat_delete(f->hub, NULL, b, err, sizeof err),
                     SH_EUNAUTHENTICATED);
    assert_int_equal(sh_chat_delete(f->hub, f->ids[2],
                                    "00000000-0000-4000-8000-000000000000",
                                    err, sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_chat_delete(f->hub, f->ids[2], "x", err, sizeof err),
                     SH_ENOTFOUND);
    assert_int_equal(sh_chat_delete(f->hub, f->ids[2], b, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_chat_delete(f->hub, f->ids[0], b, err, sizeof err),
                     SH_OK);   /* again: fine, nothing published */
    assert_redacted(f, b, true);
    assert_redacted(f, a, false);
    replay(f, ev);
    for (int i = 0; i < ev->n; i++)
        if (strcmp(sh_event_type(ev->ev[i]), "chat.message_deleted") == 0) {
            deleted_events++;
            assert_non_null(strstr(sh_event_data(ev->ev[i], NULL), b));
            assert_non_null(strstr(sh_event_data(ev->ev[i], NULL),
                                   "\"offset\":2"));
        }
    assert_int_equal(deleted_events, 1);
    fx_events_clear(ev);
    free(ev);
    free(a);
    free(b);
}

static void test_ban_and_timeout_redact(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    char *v1 = send_id(f, 1, "rude 1");
    char *o1 = send_id(f, 3, "polite");
    char *v2 = send_id(f, 1, "rude 2");
    char *o2 = send_id(f, 3, "rude 3");

    assert_int_equal(sh_moderation_ban(f->hub, f->ids[2], f->ids[0],
                                       f->ids[1], "rude", err, sizeof err),
                     SH_OK);
    assert_redacted(f, v1, true);
    assert_redacted(f, v2, true);
    assert_redacted(f, o1, false);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[3], 10, "calm down", err,
                                           sizeof err), SH_OK);
    assert_redacted(f, o1, true);
    assert_redacted(f, o2, true);
    free(v1);
    free(v2);
    free(o1);
    free(o2);
}

static void test_flush_on_close(void **state)
{
    struct fx *f;
    char store[300], path[256], err[SH_ERRBUF_SIZE], stream[40];
    sh_chat_message_list_t *l = NULL;
    size_t total = 0;
    char *cursor = NULL;
    const int n = 3000;

    (void)state;
    if (fx_store_is_sqlite()) {
        fx_tmp_db(path, sizeof path);
        snprintf(store, sizeof store, "sqlite:%s", path);
    } else {
        path[0] = '\0';
        snprintf(store, sizeof store, "%s", fx_store_env());
    }
    f = fx_new(store, "chat.rate-limit", "100000", "chat.write-behind-batch",
               "7", (const char *)NULL);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(stream, sizeof stream, "%s", f->stream);
    for (int i = 0; i < n; i++)
        fx_send(f, i % 3, S("persist me"), SH_OK, NULL);
    sh_hub_close(f->hub);           /* no history call before: no flush */

    f->hub = fx_open(store, (const char *)NULL);
    do {
        assert_int_equal(sh_chat_history(f->hub, stream, 100, cursor, &l,
                                         err, sizeof err), SH_OK);
        free(cursor);
        cursor = NULL;
        total += sh_chat_message_list_count(l);
        if (sh_chat_message_list_has_previous(l))
            cursor = strdup(sh_chat_message_list_start_cursor(l));
        sh_chat_message_list_free(l);
    } while (cursor != NULL);
    assert_int_equal(total, (size_t)n);
    /* offsets continue after a restart, moderation events included: the
     * timeout's event takes n + 1, the next message n + 2 */
    {
        sh_chat_message_t *m = NULL;

        assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                               f->ids[3], 5, NULL, err,
                                               sizeof err), SH_OK);
        assert_int_equal(sh_chat_send(f->hub, f->ids[1], stream, S("again"),
                                      &m, NULL, err, sizeof err), SH_OK);
        assert_int_equal(sh_chat_message_offset(m), n + 2);
        sh_chat_message_free(m);
    }
    fx_free(f);
}

/* SQLite only (main() leaves it out on other stores): it fills the
 * write-behind queue by locking the SQLite file from outside the hub. */
static void test_full_queue_refuses_with_ebusy(void **state)
{
    struct fx *f;
    char store[300], path[256];
    sqlite3 *db = NULL;
    int accepted = 0, busy = 0;
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_list_t *l = NULL;

    (void)state;
    fx_tmp_db(path, sizeof path);
    snprintf(store, sizeof store, "sqlite:%s", path);
    /* async: acknowledged when queued, so that the queue can fill while
     * the store is locked (commit would wait for the store instead). */
    f = fx_new(store, "chat.rate-limit", "100000", "chat.write-behind-queue",
               "4", "store.busy-timeout-ms", "20", "chat.durability",
               "async", (const char *)NULL);
    snprintf(f->path, sizeof f->path, "%s", path);
    /* Offsets come from blocks reserved in the store before use, doubling
     * from 1: eight messages leave a block of eight, seven unused, so
     * that the burst below needs no reservation while the store is
     * locked. */
    for (int i = 0; i < 8; i++) {
        fx_send(f, 1 + i % 2, S("warm up"), SH_OK, NULL);
        assert_int_equal(sh_chat_history(f->hub, f->stream, 1, NULL, &l,
                                         err, sizeof err), SH_OK);
        sh_chat_message_list_free(l);
    }

    /* Another writer holds the database: the queue cannot drain. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 50 && busy == 0; i++) {
        sh_err_t rc = sh_chat_send(f->hub, f->ids[i % 3], f->stream,
                                   S("burst"), NULL, NULL, err, sizeof err);

        if (rc == SH_OK)
            accepted++;
        else if (rc == SH_EBUSY)
            busy++;
        else
            fail_msg("unexpected %s: %s", sh_err_name(rc), err);
    }
    assert_int_equal(busy, 1);
    assert_true(accepted >= 4 && accepted <= 5);
    assert_non_null(strstr(err, "retry"));
    /* The store comes back: everything accepted is stored, in order. */
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sh_chat_history(f->hub, f->stream, 100, NULL, &l, err,
                                     sizeof err), SH_OK);
    assert_int_equal(sh_chat_message_list_count(l), (size_t)accepted + 8);
    sh_chat_message_list_free(l);
    fx_send(f, 1, S("after"), SH_OK, NULL);
    fx_free(f);
}

struct sender {
    struct fx *f;
    int who;
    int n;
    int ok;
};

static void *send_many(void *arg)
{
    struct sender *s = arg;

    for (int i = 0; i < s->n; i++)
        if (sh_chat_send(s->f->hub, s->f->ids[s->who], s->f->stream,
                         S("threads"), NULL, NULL, NULL, 0) == SH_OK)
            s->ok++;
    return NULL;
}

static void test_concurrent_senders_get_distinct_offsets(void **state)
{
    struct fx *f = *state;
    struct sender s[3];
    pthread_t t[3];
    char err[SH_ERRBUF_SIZE];
    sh_chat_message_list_t *l = NULL;
    int64_t prev = 0;

    for (int i = 0; i < 3; i++) {
        s[i] = (struct sender){ f, i, 100, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, send_many, &s[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].ok, 100);
    }
    /* the last 100 in history: consecutive offsets, no gap, no duplicate */
    assert_int_equal(sh_chat_history(f->hub, f->stream, 100, NULL, &l, err,
                                     sizeof err), SH_OK);
    for (size_t i = 0; i < sh_chat_message_list_count(l); i++) {
        int64_t off = sh_chat_message_offset(sh_chat_message_list_at(l, i));

        if (i > 0)
            assert_int_equal(off, prev + 1);
        prev = off;
    }
    assert_int_equal(prev, 300);
    sh_chat_message_list_free(l);
}

/* ---- every rule holds under concurrency ---------------------------------- */

#define RACERS 16

struct racer {
    struct fx *f;
    pthread_barrier_t *go;
    int who;
    int n;                  /* sends */
    const char *text;
    size_t len;
    int ok, slow, limited, other;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->go);
    for (int i = 0; i < r->n; i++) {
        sh_err_t rc = sh_chat_send(r->f->hub, r->f->ids[r->who],
                                   r->f->stream, r->text, r->len, NULL,
                                   NULL, NULL, 0);

        if (rc == SH_OK)
            r->ok++;
        else if (rc == SH_ESLOWMODE)
            r->slow++;
        else if (rc == SH_ERATELIMITED)
            r->limited++;
        else
            r->other++;
    }
    return NULL;
}

/* Run RACERS threads of @n sends each by user @who, all released at once;
 * sums their outcomes into @sum. */
static void race_all(struct fx *f, int who, int n, const char *text,
                     size_t len, struct racer *sum)
{
    struct racer r[RACERS];
    pthread_t t[RACERS];
    pthread_barrier_t go;

    memset(sum, 0, sizeof *sum);
    assert_int_equal(pthread_barrier_init(&go, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){ f, &go, who, n, text, len, 0, 0, 0, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        sum->ok += r[i].ok;
        sum->slow += r[i].slow;
        sum->limited += r[i].limited;
        sum->other += r[i].other;
    }
    pthread_barrier_destroy(&go);
}

/* The slow-mode check and the record of the author's last send are one
 * step: of many sends at once, exactly one goes through.  Each round has
 * its own author (a fresh user); each sends RACERS x 4 at once. */
static void test_slow_mode_holds_under_concurrent_sends(void **state)
{
    struct fx *f = *state;
    struct racer sum;

    char *settings = malloc(64 + 1000 * 16), *text = malloc(2000);
    size_t o;

    /* Many blocked terms and a long text: the rules after slow mode take a
     * while, so that the threads meet there. */
    assert_non_null(settings);
    assert_non_null(text);
    o = (size_t)snprintf(settings, 64, "{\"slowModeSeconds\":60,"
                                       "\"maxMessageLength\":2000,"
                                       "\"blockedTerms\":[");
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(settings + o, 32, "%s\"zq%04dx\"",
                              i > 0 ? "," : "", i);
    memcpy(settings + o, "]}", 3);
    fx_settings(f, settings);
    free(settings);
    for (int i = 0; i < 2000; i++)
        text[i] = (char)('a' + i % 26);
    for (int round = 0; round < 8; round++) {
        char name[48];

        snprintf(name, sizeof name, "%.20s_r%d", f->names[1], round);
        fx_user(f->hub, name, f->ids[3]);
        race_all(f, 3, 4, text, 2000, &sum);
        assert_int_equal(sum.ok, 1);
        assert_int_equal(sum.slow, RACERS * 4 - 1);
        assert_int_equal(sum.other, 0);
    }
    free(text);
}

/* A message refused after slow mode passed it (here: too long) gives its
 * turn back: the author may send a good one at once. */
static void test_refused_message_gives_its_turn_back(void **state)
{
    struct fx *f = *state;
    char too_long[600];

    memset(too_long, 'x', sizeof too_long);
    fx_settings(f, "{\"slowModeSeconds\":60,"
                   "\"blockedTerms\":[\"forbidden\"]}");
    fx_send(f, 1, too_long, sizeof too_long, SH_ETOOLONG, NULL);
    fx_send(f, 1, S("\xff"), SH_EBADUTF8, NULL);
    fx_send(f, 1, S("so forbidden"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 1, S("fine"), SH_OK, NULL);
    fx_send(f, 1, S("too soon"), SH_ESLOWMODE, NULL);
}

/* Tokens are taken atomically: RACERS x 8 sends at once against a bucket of
 * 5 accept exactly 5. */
static void test_rate_limit_holds_under_concurrent_sends(void **state)
{
    struct fx *f = fx_new(fx_store_env(), "chat.rate-limit", "5",
                          "chat.rate-window-seconds", "3600",
                          (const char *)NULL);
    struct racer sum;

    (void)state;
    race_all(f, 1, 8, S("at once"), &sum);
    assert_int_equal(sum.ok, 5);
    assert_int_equal(sum.limited, RACERS * 8 - 5);
    assert_int_equal(sum.other, 0);
    fx_free(f);
}

struct flipper {
    struct fx *f;
    pthread_barrier_t *go;
    bool follow;
    int rounds;
};

static void *flip(void *arg)
{
    struct flipper *fl = arg;

    for (int i = 0; i < fl->rounds; i++) {
        pthread_barrier_wait(fl->go);
        if (fl->follow)
            (void)sh_follow(fl->f->hub, fl->f->ids[1], fl->f->ids[0], NULL,
                            NULL, 0);
        else
            (void)sh_unfollow(fl->f->hub, fl->f->ids[1], fl->f->ids[0],
                              NULL, NULL, 0);
        pthread_barrier_wait(fl->go);   /* the main thread checks */
        pthread_barrier_wait(fl->go);
    }
    return NULL;
}

/* A follow and an unfollow of one pair at once: whatever order they
 * commit in, followers-only chat then agrees with the store. */
static void test_followers_only_agrees_after_racing_follows(void **state)
{
    struct fx *f = *state;
    struct flipper fl[2];
    pthread_t t[2];
    pthread_barrier_t go;
    int rounds = 2000, mismatches = 0;

    fx_settings(f, "{\"followersOnly\":true}");
    assert_int_equal(pthread_barrier_init(&go, NULL, 3), 0);
    for (int i = 0; i < 2; i++) {
        fl[i] = (struct flipper){ f, &go, i == 0, rounds };
        assert_int_equal(pthread_create(&t[i], NULL, flip, &fl[i]), 0);
    }
    for (int i = 0; i < rounds; i++) {
        bool follows = false;
        sh_err_t rc, want;

        pthread_barrier_wait(&go);      /* both go */
        pthread_barrier_wait(&go);      /* both done */
        assert_int_equal(sh_follow_check(f->hub, f->ids[1], f->ids[0],
                                         &follows, NULL, 0), SH_OK);
        want = follows ? SH_OK : SH_EFOLLOWERSONLY;
        rc = sh_chat_send(f->hub, f->ids[1], f->stream, S("me?"), NULL,
                          NULL, NULL, 0);
        if (rc != want)
            mismatches++;
        pthread_barrier_wait(&go);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&go);
    assert_int_equal(mismatches, 0);
}

struct spammer {
    struct fx *f;
    int who;
    const char *text;
    size_t len;
    _Atomic int sent;
    sh_err_t last;
};

static void *spam(void *arg)
{
    struct spammer *sp = arg;

    for (;;) {
        sh_err_t rc = sh_chat_send(sp->f->hub, sp->f->ids[sp->who],
                                   sp->f->stream, sp->text, sp->len, NULL,
                                   NULL, NULL, 0);

        if (rc != SH_OK) {
            sp->last = rc;
            return NULL;
        }
        atomic_fetch_add(&sp->sent, 1);
    }
}

/* A ban given while the user is sending: once sh_moderation_ban()
 * returned, no message of theirs is left unredacted, neither one that
 * passed its checks just before the ban nor any after it. */
static void test_ban_catches_messages_in_flight(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    char *settings = malloc(64 + 1000 * 16), *text = malloc(2000);
    size_t o;
    int leaks = 0;

    assert_non_null(settings);
    assert_non_null(text);
    o = (size_t)snprintf(settings, 64, "{\"maxMessageLength\":2000,"
                                       "\"blockedTerms\":[");
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(settings + o, 32, "%s\"zq%04dx\"",
                              i > 0 ? "," : "", i);
    memcpy(settings + o, "]}", 3);
    fx_settings(f, settings);
    free(settings);
    for (int i = 0; i < 2000; i++)
        text[i] = (char)('a' + i % 26);
    for (int round = 0; round < 30; round++) {
        struct spammer sp = { f, 1, text, 2000, 0, SH_OK };
        sh_chat_message_list_t *l = NULL;
        pthread_t t;

        assert_int_equal(pthread_create(&t, NULL, spam, &sp), 0);
        while (atomic_load(&sp.sent) < 2 + round % 5)
            sched_yield();
        assert_int_equal(sh_moderation_ban(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], NULL, err,
                                           sizeof err), SH_OK);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(sp.last, SH_EBANNED);
        assert_int_equal(sh_chat_history(f->hub, f->stream, 100, NULL, &l,
                                         err, sizeof err), SH_OK);
        for (size_t i = 0; i < sh_chat_message_list_count(l); i++) {
            const sh_chat_message_t *m = sh_chat_message_list_at(l, i);

            if (strcmp(sh_chat_message_author_id(m), f->ids[1]) == 0 &&
                !sh_chat_message_deleted(m))
                leaks++;
        }
        sh_chat_message_list_free(l);
        assert_int_equal(sh_moderation_unban(f->hub, f->ids[0], f->ids[0],
                                             f->ids[1], err, sizeof err),
                         SH_OK);
    }
    free(text);
    assert_int_equal(leaks, 0);
}

/* ---- a crash (the process killed, nothing closed) ----------------------- */

#define CRASH_SENDS 400
#define CRASH_PUBS 5

/* What a crashed process handed out before it died. */
struct crash_report {
    int64_t chat[CRASH_SENDS];   /* acknowledged offsets */
    char ids[CRASH_SENDS][40];   /* and their message ids */
    uint64_t app[CRASH_PUBS];
    int nchat, napp;
};

/* In a child process: open a hub on @store (extra key @k = @v when @k is
 * not NULL), send CRASH_SENDS messages to @stream as @author and publish
 * CRASH_PUBS events on app:crash, report every acknowledged offset through
 * a pipe, then die without closing anything (as kill -9 would). */
static void crash_run(const char *store, const char *k, const char *v,
                      const char *stream, const char *author,
                      struct crash_report *out)
{
    int fds[2], status = 0;
    pid_t pid;

    memset(out, 0, sizeof *out);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct crash_report *r = calloc(1, sizeof *r);
        char err[SH_ERRBUF_SIZE];
        sh_config_t *conf = NULL;
        sh_hub_t *hub = NULL;
        size_t done = 0;

        close(fds[0]);
        if (r == NULL || sh_config_new(&conf) != SH_OK ||
            sh_config_set(conf, "store", store, err, sizeof err) != SH_OK ||
            sh_config_set(conf, "log-level", "error", err, sizeof err) ||
            sh_config_set(conf, "chat.rate-limit", "100000", err,
                          sizeof err) != SH_OK ||
            (k != NULL && sh_config_set(conf, k, v, err, sizeof err)) ||
            sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
            _exit(2);
        for (int i = 0; i < CRASH_SENDS; i++) {
            sh_chat_message_t *m = NULL;

            if (sh_chat_send(hub, author, stream, S("before the crash"), &m,
                             NULL, err, sizeof err) != SH_OK)
                _exit(3);
            r->chat[r->nchat] = sh_chat_message_offset(m);
            snprintf(r->ids[r->nchat++], 40, "%s", sh_chat_message_id(m));
            sh_chat_message_free(m);
        }
        for (int i = 0; i < CRASH_PUBS; i++)
            if (sh_publish(hub, "app:crash", "app.t", "1", 1,
                           &r->app[r->napp++], err, sizeof err) != SH_OK)
                _exit(4);
        while (done < sizeof *r) {
            ssize_t w = write(fds[1], (char *)r + done, sizeof *r - done);

            if (w <= 0)
                _exit(5);
            done += (size_t)w;
        }
        _exit(0);               /* no sh_hub_close(): a crash */
    }
    close(fds[1]);
    for (size_t got = 0; got < sizeof *out;) {
        ssize_t n = read(fds[0], (char *)out + got, sizeof *out - got);

        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A file store shared with a crashing child; the fixture's hub is closed
 * before the fork, so that the child is the only writer. */
static struct fx *crash_fixture(char *store, size_t len)
{
    char path[256] = "";
    struct fx *f;

    if (fx_store_is_sqlite()) {
        fx_tmp_db(path, sizeof path);
        snprintf(store, len, "sqlite:%s", path);
    } else {
        snprintf(store, len, "%s", fx_store_env());
    }
    f = fx_new(store, "chat.rate-limit", "100000", (const char *)NULL);
    snprintf(f->path, sizeof f->path, "%s", path);
    sh_hub_close(f->hub);
    f->hub = NULL;
    return f;
}

/* After a crash, no offset handed out before it is handed out again, on a
 * chat channel (whose stored offsets may lag behind those acknowledged)
 * nor on any other channel. */
static void test_crash_never_repeats_an_offset(void **state)
{
    struct crash_report *r = calloc(1, sizeof *r);
    char store[300], err[SH_ERRBUF_SIZE];
    sh_chat_message_t *m = NULL;
    struct fx *f;
    int64_t top_chat = 0;
    uint64_t top_app = 0, off = 0;

    (void)state;
    assert_non_null(r);
    f = crash_fixture(store, sizeof store);
    /* async: the store lags behind what was acknowledged, the worst case
     * for a numbering continued from the store. */
    crash_run(store, "chat.durability", "async", f->stream, f->ids[1], r);
    for (int i = 0; i < r->nchat; i++)
        top_chat = r->chat[i] > top_chat ? r->chat[i] : top_chat;
    for (int i = 0; i < r->napp; i++)
        top_app = r->app[i] > top_app ? r->app[i] : top_app;
    assert_int_equal(r->nchat, CRASH_SENDS);
    assert_int_equal(r->napp, CRASH_PUBS);

    f->hub = fx_open(store, "chat.rate-limit", "100000", (const char *)NULL);
    assert_int_equal(sh_chat_send(f->hub, f->ids[2], f->stream, S("after"),
                                  &m, NULL, err, sizeof err), SH_OK);
    assert_true(sh_chat_message_offset(m) > top_chat);
    sh_chat_message_free(m);
    assert_int_equal(sh_publish(f->hub, "app:crash", "app.t", "2", 1, &off,
                                err, sizeof err), SH_OK);
    assert_true(off > top_app);
    fx_free(f);
    free(r);
}

/* chat.durability = commit (the default): every message acknowledged
 * before a crash is in the history after it, under the offset it was
 * acknowledged with. */
static void test_crash_keeps_every_acknowledged_message(void **state)
{
    struct crash_report *r = calloc(1, sizeof *r);
    char store[300], err[SH_ERRBUF_SIZE];
    sh_chat_message_list_t *l = NULL;
    char *cursor = NULL;
    struct fx *f;
    int found = 0;

    (void)state;
    assert_non_null(r);
    f = crash_fixture(store, sizeof store);
    crash_run(store, NULL, NULL, f->stream, f->ids[1], r);
    assert_int_equal(r->nchat, CRASH_SENDS);

    f->hub = fx_open(store, (const char *)NULL);
    do {
        assert_int_equal(sh_chat_history(f->hub, f->stream, 100, cursor, &l,
                                         err, sizeof err), SH_OK);
        free(cursor);
        cursor = NULL;
        for (size_t i = 0; i < sh_chat_message_list_count(l); i++) {
            const sh_chat_message_t *m = sh_chat_message_list_at(l, i);

            for (int k = 0; k < r->nchat; k++) {
                if (strcmp(r->ids[k], sh_chat_message_id(m)) == 0) {
                    assert_int_equal(sh_chat_message_offset(m), r->chat[k]);
                    found++;
                }
            }
        }
        if (sh_chat_message_list_has_previous(l))
            cursor = strdup(sh_chat_message_list_start_cursor(l));
        sh_chat_message_list_free(l);
    } while (cursor != NULL);
    assert_int_equal(found, CRASH_SENDS);
    fx_free(f);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_returns_the_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusals_come_in_order, setup,
                                        teardown),
        cmocka_unit_test(test_rate_limit_gives_retry_after),
        cmocka_unit_test_setup_teardown(test_offsets_increase_by_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_text_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_in_code_points, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_blocked_terms_see_through_invisibles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_followers_only_tracks_follows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_stream_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_pages_backwards, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_redacts_everywhere,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ban_and_timeout_redact, setup,
                                        teardown),
        cmocka_unit_test(test_flush_on_close),
        cmocka_unit_test_setup_teardown(
            test_concurrent_senders_get_distinct_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_slow_mode_holds_under_concurrent_sends, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_refused_message_gives_its_turn_back, setup, teardown),
        cmocka_unit_test(test_rate_limit_holds_under_concurrent_sends),
        cmocka_unit_test_setup_teardown(
            test_followers_only_agrees_after_racing_follows, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_ban_catches_messages_in_flight,
                                        setup, teardown),
        cmocka_unit_test(test_crash_never_repeats_an_offset),
        cmocka_unit_test(test_crash_keeps_every_acknowledged_message),
    };
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test(test_full_queue_refuses_with_ebusy),
    };
    int failed;

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (fx_store_is_sqlite())
        failed += cmocka_run_group_tests(sqlite_only, NULL, NULL);
    return failed;
}
