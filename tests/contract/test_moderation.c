/* tests/contract/test_moderation.c: bans, timeouts, moderators and chat
 * settings through the public API (moderation.h): who may do what, the
 * bounds of every argument, the events on the chat channel, and that each
 * change reaches the very next sh_chat_send(). */
#include <pthread.h>
#include <time.h>

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
#define NOBODY "00000000-0000-4000-8000-000000000000"

static void test_who_may_ban(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    const char *bc = f->ids[0], *viewer = f->ids[1], *mod = f->ids[2],
               *other = f->ids[3];

    assert_int_equal(sh_moderation_ban(f->hub, NULL, bc, viewer, NULL, err,
                                       sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_moderation_ban(f->hub, NOBODY, bc, viewer, NULL,
                                       err, sizeof err), SH_EUNAUTHENTICATED);
    assert_int_equal(sh_moderation_ban(f->hub, other, bc, viewer, NULL, err,
                                       sizeof err), SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_ban(f->hub, bc, NOBODY, viewer, NULL, err,
                                       sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_moderation_ban(f->hub, bc, bc, NOBODY, NULL, err,
                                       sizeof err), SH_ENOTFOUND);
    assert_int_equal(sh_moderation_ban(f->hub, bc, bc, NULL, NULL, err,
                                       sizeof err), SH_EINVAL);
    /* nobody moderates the broadcaster */
    assert_int_equal(sh_moderation_ban(f->hub, mod, bc, bc, NULL, err,
                                       sizeof err), SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_timeout(f->hub, bc, bc, bc, 10, NULL,
                                           err, sizeof err), SH_EFORBIDDEN);
    /* moderators do not moderate moderators; the broadcaster does */
    assert_int_equal(sh_moderation_add_moderator(f->hub, bc, bc, other, err,
                                                 sizeof err), SH_OK);
    assert_int_equal(sh_moderation_ban(f->hub, mod, bc, other, NULL, err,
                                       sizeof err), SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_ban(f->hub, bc, bc, other, NULL, err,
                                       sizeof err), SH_OK);
    /* a moderator bans a viewer; the ban holds at the next message */
    assert_int_equal(sh_moderation_ban(f->hub, mod, bc, viewer, "spam", err,
                                       sizeof err), SH_OK);
    assert_int_equal(sh_moderation_ban(f->hub, mod, bc, viewer, "again",
                                       err, sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_EBANNED, NULL);
    assert_int_equal(sh_moderation_unban(f->hub, other, bc, viewer, err,
                                         sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_OK, NULL);
    assert_int_equal(sh_moderation_unban(f->hub, mod, bc, viewer, err,
                                         sizeof err), SH_OK);  /* again */
}

static void test_who_may_appoint(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    bool is = true;

    assert_int_equal(sh_moderation_add_moderator(f->hub, f->ids[2], f->ids[0],
                                                 f->ids[1], err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_remove_moderator(f->hub, f->ids[1],
                                                    f->ids[0], f->ids[2], err,
                                                    sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_add_moderator(f->hub, f->ids[0], f->ids[0],
                                                 f->ids[0], err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_moderation_is_moderator(f->hub, f->ids[0], f->ids[2],
                                                &is, err, sizeof err), SH_OK);
    assert_true(is);
    assert_int_equal(sh_moderation_remove_moderator(f->hub, f->ids[0],
                                                    f->ids[0], f->ids[2], err,
                                                    sizeof err), SH_OK);
    assert_int_equal(sh_moderation_is_moderator(f->hub, f->ids[0], f->ids[2],
                                                &is, err, sizeof err), SH_OK);
    assert_false(is);
    /* no longer a moderator: may not ban, nor delete */
    assert_int_equal(sh_moderation_ban(f->hub, f->ids[2], f->ids[0],
                                       f->ids[1], NULL, err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_moderation_remove_moderator(f->hub, f->ids[0],
                                                    f->ids[0], f->ids[2], err,
                                                    sizeof err), SH_OK);
}

static void test_timeout_bounds(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE], reason[2 * 501 + 1];
    int64_t retry = 0;

    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], 0, NULL, err,
                                           sizeof err), SH_EINVAL);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], -5, NULL, err,
                                           sizeof err), SH_EINVAL);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1],
                                           SH_TIMEOUT_MAX_SECONDS + 1, NULL,
                                           err, sizeof err), SH_EINVAL);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], 5, "\xc3\x28", err,
                                           sizeof err), SH_EINVAL);
    for (int i = 0; i < 501; i++)
        memcpy(reason + 2 * i, "\xc3\xa9", 2);
    reason[2 * 501] = '\0';
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], 5, reason, err,
                                           sizeof err), SH_EINVAL);
    reason[2 * 500] = '\0';
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], SH_TIMEOUT_MAX_SECONDS,
                                           reason, err, sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_ETIMEDOUT_USER, &retry);
    assert_true(retry > (int64_t)SH_TIMEOUT_MAX_SECONDS * 1000 - 5000);
    /* a new timeout replaces the old one */
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[2], f->ids[0],
                                           f->ids[1], 1, NULL, err,
                                           sizeof err), SH_OK);
    fx_send(f, 1, S("hi"), SH_ETIMEDOUT_USER, &retry);
    assert_true(retry >= 1 && retry <= 1000);
    usleep((useconds_t)(retry + 20) * 1000);
    fx_send(f, 1, S("hi again"), SH_OK, NULL);
}

static void test_settings_defaults_and_partial_update(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    sh_chat_settings_t *s = NULL;
    static const char p1[] = "{\"slowModeSeconds\":5,\"blockedTerms\":"
                             "[\"foo\",\"b\xc3\xa4r\"]}";
    static const char p2[] = "{\"followersOnly\":true,\"maxMessageLength\":"
                             "2000,\"slowModeSeconds\":null}";

    assert_int_equal(sh_chat_settings_get(f->hub, f->ids[0], &s, err,
                                          sizeof err), SH_OK);
    assert_int_equal(sh_chat_settings_slow_mode_seconds(s), 0);
    assert_false(sh_chat_settings_followers_only(s));
    assert_int_equal(sh_chat_settings_max_message_length(s), 500);
    assert_int_equal(sh_chat_settings_blocked_term_count(s), 0);
    assert_string_equal(sh_chat_settings_json(s, NULL),
                        "{\"slowModeSeconds\":0,\"followersOnly\":false,"
                        "\"maxMessageLength\":500,\"blockedTerms\":[]}");
    sh_chat_settings_free(s);

    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[2], f->ids[0],
                                             S(p1), &s, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_chat_settings_slow_mode_seconds(s), 5);
    assert_int_equal(sh_chat_settings_blocked_term_count(s), 2);
    assert_string_equal(sh_chat_settings_blocked_term_at(s, 1), "b\xc3\xa4r");
    assert_null(sh_chat_settings_blocked_term_at(s, 2));
    sh_chat_settings_free(s);
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                             S(p2), &s, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_chat_settings_slow_mode_seconds(s), 5);
    assert_true(sh_chat_settings_followers_only(s));
    assert_int_equal(sh_chat_settings_max_message_length(s), 2000);
    assert_int_equal(sh_chat_settings_blocked_term_count(s), 2);
    sh_chat_settings_free(s);
    /* persisted: read back by another hub on the same store is the
     * flush test's business; here the getter agrees */
    assert_int_equal(sh_chat_settings_get(f->hub, f->ids[0], &s, err,
                                          sizeof err), SH_OK);
    assert_true(sh_chat_settings_followers_only(s));
    sh_chat_settings_free(s);
    sh_chat_settings_free(NULL);
    assert_int_equal(sh_chat_settings_get(f->hub, NOBODY, &s, err,
                                          sizeof err), SH_ENOTFOUND);
    assert_null(s);
}

static void test_settings_refuse_bad_input(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    sh_chat_settings_t *s = NULL;
    static const char *bad[] = {
        "", "[]", "null", "42", "{", "{\"slowModeSeconds\":1",
        "{\"slowModeSeconds\":-1}", "{\"slowModeSeconds\":86401}",
        "{\"slowModeSeconds\":\"5\"}", "{\"slowModeSeconds\":1.5}",
        "{\"followersOnly\":1}", "{\"maxMessageLength\":0}",
        "{\"maxMessageLength\":2001}", "{\"blockedTerms\":\"x\"}",
        "{\"blockedTerms\":[1]}", "{\"blockedTerms\":[\"\"]}",
        "{\"blockedTerms\":[\"a\\u0000b\"]}", "{\"blockedTerms\":[\"a\\nb\"]}",
        "{\"blockedTerms\":[\"\xc3\x28\"]}",
        "{\"blockedTerms\":[\"\\u200b\"]}", "{\"color\":\"red\"}",
        "{} trailing", "{}{}",
    };
    char *json;
    size_t n;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_err_t rc = sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                              bad[i], strlen(bad[i]), &s, err,
                                              sizeof err);
        if (rc != SH_EINVAL)
            fail_msg("patch %s: got %s", bad[i], sh_err_name(rc));
        assert_null(s);
    }
    /* an embedded NUL in the patch text */
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                             "{}\0{}", 5, &s, err,
                                             sizeof err), SH_EINVAL);
    /* 1,000 terms of 100 code points pass; one more term, or one more
     * code point, does not */
    json = malloc(1100 * 210 + 64);
    assert_non_null(json);
    n = (size_t)sprintf(json, "{\"blockedTerms\":[");
    for (int i = 0; i < 1000; i++) {
        n += (size_t)sprintf(json + n, "%s\"%04d", i ? "," : "", i);
        for (int k = 0; k < 96; k++)
            json[n++] = 'q';
        json[n++] = '"';
    }
    memcpy(json + n, "]}", 3);
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                             json, strlen(json), &s, err,
                                             sizeof err), SH_OK);
    assert_int_equal(sh_chat_settings_blocked_term_count(s), 1000);
    sh_chat_settings_free(s);
    s = NULL;
    memcpy(json + n, ",\"x\"]}", 7);
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                             json, strlen(json), &s, err,
                                             sizeof err), SH_EINVAL);
    memcpy(json + n - 1, "q\"]}", 5);   /* last term: 101 code points */
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0], f->ids[0],
                                             json, strlen(json), &s, err,
                                             sizeof err), SH_EINVAL);
    free(json);
    /* nothing changed by the refused patches but the accepted one */
    assert_int_equal(sh_chat_settings_get(f->hub, f->ids[0], &s, err,
                                          sizeof err), SH_OK);
    assert_int_equal(sh_chat_settings_slow_mode_seconds(s), 0);
    assert_int_equal(sh_chat_settings_blocked_term_count(s), 1000);
    sh_chat_settings_free(s);
    /* a blocked term out of a thousand still bites */
    fx_send(f, 1, S("0999qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
                    "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq!"),
            SH_EBLOCKEDTERM, NULL);
    /* viewers may not change settings */
    assert_int_equal(sh_chat_settings_update(f->hub, f->ids[1], f->ids[0],
                                             S("{}"), &s, err, sizeof err),
                     SH_EFORBIDDEN);
    assert_int_equal(sh_chat_settings_update(f->hub, NULL, f->ids[0],
                                             S("{}"), &s, err, sizeof err),
                     SH_EUNAUTHENTICATED);
}

static void test_changes_are_published(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE], chan[64];
    struct fx_events *ev = calloc(1, sizeof *ev);
    sh_subscription_t *sub = NULL;
    const char *types[3] = { NULL, NULL, NULL };

    assert_non_null(ev);
    snprintf(chan, sizeof chan, "chat:%s", f->stream);
    assert_int_equal(sh_subscribe(f->hub, chan, NULL, fx_event_cb, ev, &sub,
                                  NULL, err, sizeof err), SH_OK);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[0], f->ids[0],
                                           f->ids[1], 30, "cool off", err,
                                           sizeof err), SH_OK);
    assert_int_equal(sh_moderation_ban(f->hub, f->ids[0], f->ids[0],
                                       f->ids[3], NULL, err, sizeof err),
                     SH_OK);
    fx_settings(f, "{\"slowModeSeconds\":3}");
    fx_poll_until(f->hub, ev, 3);
    assert_int_equal(ev->n, 3);
    for (int i = 0; i < 3; i++)
        types[i] = sh_event_type(ev->ev[i]);
    assert_string_equal(types[0], "chat.user_timed_out");
    assert_non_null(strstr(sh_event_data(ev->ev[0], NULL), f->ids[1]));
    assert_non_null(strstr(sh_event_data(ev->ev[0], NULL), "cool off"));
    assert_non_null(strstr(sh_event_data(ev->ev[0], NULL), "\"until\":\""));
    assert_string_equal(types[1], "chat.user_banned");
    assert_non_null(strstr(sh_event_data(ev->ev[1], NULL), f->ids[3]));
    assert_string_equal(types[2], "chat.settings_changed");
    assert_non_null(strstr(sh_event_data(ev->ev[2], NULL),
                           "\"slowModeSeconds\":3"));
    sh_subscription_free(sub);
    for (int i = 0; i < 50 && ev->final == 0; i++)
        sh_hub_poll(f->hub, 10);
    fx_events_clear(ev);
    free(ev);
}

static void test_state_survives_restart(void **state)
{
    struct fx *f;
    char store[300], path[256], err[SH_ERRBUF_SIZE];
    sh_chat_settings_t *s = NULL;

    (void)state;
    if (fx_store_is_sqlite()) {
        fx_tmp_db(path, sizeof path);
        snprintf(store, sizeof store, "sqlite:%s", path);
    } else {
        path[0] = '\0';
        snprintf(store, sizeof store, "%s", fx_store_env());
    }
    f = fx_new(store, (const char *)NULL);
    snprintf(f->path, sizeof f->path, "%s", path);
    assert_int_equal(sh_moderation_ban(f->hub, f->ids[2], f->ids[0],
                                       f->ids[1], NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_moderation_timeout(f->hub, f->ids[2], f->ids[0],
                                           f->ids[3], 600, NULL, err,
                                           sizeof err), SH_OK);
    fx_settings(f, "{\"blockedTerms\":[\"zap\"],\"maxMessageLength\":20}");
    sh_hub_close(f->hub);
    f->hub = fx_open(store, (const char *)NULL);
    fx_send(f, 1, S("hi"), SH_EBANNED, NULL);
    fx_send(f, 3, S("hi"), SH_ETIMEDOUT_USER, NULL);
    fx_send(f, 2, S("ZAP"), SH_EBLOCKEDTERM, NULL);
    fx_send(f, 2, S("123456789012345678901"), SH_ETOOLONG, NULL);
    assert_int_equal(sh_chat_settings_get(f->hub, f->ids[0], &s, err,
                                          sizeof err), SH_OK);
    assert_int_equal(sh_chat_settings_max_message_length(s), 20);
    sh_chat_settings_free(s);
    fx_free(f);
}

/* ---- changes at once ----------------------------------------------------- */

struct changer {
    struct fx *f;
    pthread_barrier_t *go;
    int kind;               /* see change() */
    int rounds;
};

static void change(struct fx *f, int kind, int round)
{
    char json[64];

    switch (kind) {
    case 0:     /* slow mode: a new value each round */
        snprintf(json, sizeof json, "{\"slowModeSeconds\":%d}", round + 1);
        (void)sh_chat_settings_update(f->hub, f->ids[0], f->ids[0], json,
                                      strlen(json), NULL, NULL, 0);
        break;
    case 1:     /* followers-only: flips each round */
        snprintf(json, sizeof json, "{\"followersOnly\":%s}",
                 round % 2 == 0 ? "true" : "false");
        (void)sh_chat_settings_update(f->hub, f->ids[0], f->ids[0], json,
                                      strlen(json), NULL, NULL, 0);
        break;
    case 2:
        (void)sh_moderation_ban(f->hub, f->ids[0], f->ids[0], f->ids[1],
                                NULL, NULL, 0);
        break;
    default:
        (void)sh_moderation_unban(f->hub, f->ids[0], f->ids[0], f->ids[1],
                                  NULL, 0);
        break;
    }
}

static void *changer_run(void *arg)
{
    struct changer *c = arg;

    for (int i = 0; i < c->rounds; i++) {
        pthread_barrier_wait(c->go);
        change(c->f, c->kind, i);
        pthread_barrier_wait(c->go);    /* the main thread checks */
        pthread_barrier_wait(c->go);
    }
    return NULL;
}

/* Two changes of kinds @k0 and @k1 at once, @rounds times; @check runs
 * between rounds and returns the number of disagreements. */
static int race_changes(struct fx *f, int k0, int k1, int rounds,
                        int (*check)(struct fx *, int))
{
    struct changer c[2];
    pthread_t t[2];
    pthread_barrier_t go;
    int bad = 0;

    assert_int_equal(pthread_barrier_init(&go, NULL, 3), 0);
    for (int i = 0; i < 2; i++) {
        c[i] = (struct changer){ f, &go, i == 0 ? k0 : k1, rounds };
        assert_int_equal(pthread_create(&t[i], NULL, changer_run, &c[i]),
                         0);
    }
    for (int i = 0; i < rounds; i++) {
        pthread_barrier_wait(&go);
        pthread_barrier_wait(&go);
        bad += check(f, i);
        pthread_barrier_wait(&go);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&go);
    return bad;
}

static int both_settings_hold(struct fx *f, int round)
{
    sh_chat_settings_t *s = NULL;
    int bad;

    assert_int_equal(sh_chat_settings_get(f->hub, f->ids[0], &s, NULL, 0),
                     SH_OK);
    bad = sh_chat_settings_slow_mode_seconds(s) != round + 1 ||
          sh_chat_settings_followers_only(s) != (round % 2 == 0);
    sh_chat_settings_free(s);
    return bad;
}

/* Two partial updates at once (slow mode, followers-only): both hold. */
static void test_partial_settings_updates_at_once_both_hold(void **state)
{
    struct fx *f = *state;

    assert_int_equal(race_changes(f, 0, 1, 1000, both_settings_hold), 0);
}

static char oracle_store[300];

/* The hub's answer must be the store's: a hub opened now reads it. */
static int ban_agrees_with_store(struct fx *f, int round)
{
    sh_hub_t *fresh = fx_open(oracle_store, (const char *)NULL);
    sh_err_t a, b;

    (void)round;
    a = sh_chat_send(f->hub, f->ids[1], f->stream, S("here?"), NULL, NULL,
                     NULL, 0);
    b = sh_chat_send(fresh, f->ids[1], f->stream, S("here?"), NULL, NULL,
                     NULL, 0);
    sh_hub_close(fresh);
    return a != b;
}

/* A ban and an unban at once: the cache ends as the store does. */
static void test_ban_and_unban_at_once_agree_with_store(void **state)
{
    struct fx *f;
    char path[256];

    (void)state;
    if (fx_store_is_sqlite()) {
        fx_tmp_db(path, sizeof path);
        snprintf(oracle_store, sizeof oracle_store, "sqlite:%s", path);
    } else {
        path[0] = '\0';
        snprintf(oracle_store, sizeof oracle_store, "%s", fx_store_env());
    }
    f = fx_new(oracle_store, "chat.rate-limit", "100000",
               (const char *)NULL);
    snprintf(f->path, sizeof f->path, "%s", path);
    assert_int_equal(race_changes(f, 2, 3, 400, ban_agrees_with_store), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_who_may_ban, setup, teardown),
        cmocka_unit_test_setup_teardown(test_who_may_appoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_settings_defaults_and_partial_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_refuse_bad_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_changes_are_published, setup,
                                        teardown),
        cmocka_unit_test(test_state_survives_restart),
        cmocka_unit_test_setup_teardown(
            test_partial_settings_updates_at_once_both_hold, setup,
            teardown),
        cmocka_unit_test(test_ban_and_unban_at_once_agree_with_store),
    };

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
