/* tests/unit/test_services_pubsub.c: the public pub/sub calls (bus.h)
 * through a real hub (in-memory store, local bus, sh_hub_poll()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "services/services_int.h"

static int setup(void **state)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "ws.max-message-bytes", "200", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK) {
        print_error("hub: %s\n", err);
        sh_config_free(c);
        return -1;
    }
    *state = hub;
    return 0;
}

static int teardown(void **state)
{
    sh_hub_close(*state);
    return 0;
}

struct got {
    int events, finals;
    sh_err_t final;
    char data[256];
    char json[512];
    uint64_t offset;
};

static void on_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct got *g = arg;

    if (status != SH_OK) {
        g->finals++;
        g->final = status;
        return;
    }
    g->events++;
    g->offset = sh_event_offset(ev);
    snprintf(g->data, sizeof g->data, "%s", sh_event_data(ev, NULL));
    snprintf(g->json, sizeof g->json, "%s", sh_event_json(ev, NULL));
}

static sh_err_t pub(sh_hub_t *hub, const char *data, size_t len)
{
    char err[SH_ERRBUF_SIZE];

    return sh_publish(hub, "app:game", "app.score", data, len, NULL, err,
                      sizeof err);
}

static void test_publish_and_receive(void **state)
{
    sh_hub_t *hub = *state;
    struct got g = { 0 };
    sh_subscription_t *sub = NULL;
    sh_subscribe_result_t res;
    sh_position_t p;
    uint64_t off = 0;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_subscribe(hub, "app:game", NULL, on_event, &g, &sub,
                                  &res, err, sizeof err), SH_OK);
    assert_int_equal(res.recovered, 0);
    assert_int_equal(sh_publish(hub, "app:game", "app.score",
                                " {\"score\": 3}\n", 14, &off, err,
                                sizeof err), SH_OK);
    assert_int_equal(off, 1);
    while (sh_hub_poll(hub, 0) > 0)
        ;
    assert_int_equal(g.events, 1);
    assert_string_equal(g.data, "{\"score\":3}");
    assert_string_equal(g.json, "{\"channel\":\"app:game\",\"offset\":1,"
                        "\"event\":{\"type\":\"app.score\",\"data\":"
                        "{\"score\":3}}}");
    assert_int_equal(sh_channel_position(hub, "app:game", &p, err,
                                         sizeof err), SH_OK);
    assert_int_equal(p.offset, 1);
    assert_string_equal(p.epoch, res.current.epoch);
    sh_unsubscribe(sub);
    sh_unsubscribe(sub);
    while (sh_hub_poll(hub, 0) > 0)
        ;
    assert_int_equal(g.finals, 1);
    assert_int_equal(g.final, SH_ECANCELED);
}

static void test_publish_accepts_any_json_value(void **state)
{
    sh_hub_t *hub = *state;
    const char *ok[] = { "42", "-1.5e3", "\"s\"", "null", "true", "[1,[2]]",
                         "{}", "\"\xc3\xa9\"", "0 " };

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(pub(hub, ok[i], strlen(ok[i])), SH_OK);
    /* Not terminated: only @len bytes count. */
    assert_int_equal(pub(hub, "123456", 3), SH_OK);
}

static void test_publish_rejects_bad_json(void **state)
{
    sh_hub_t *hub = *state;
    const char *bad[] = { "{", "{\"a\":1", "{\"a\":1}}", "{\"a\":1} x", "[1,]",
                          "'s'", "\"\xc3\x28\"", "\"\xff\"", "nul", "1 2",
                          "{\"a\":01}", "  ", "/* c */ 1" };
    char deep[200];
    char err[SH_ERRBUF_SIZE];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pub(hub, bad[i], strlen(bad[i])), SH_EINVAL);
    assert_int_equal(pub(hub, "", 0), SH_EINVAL);
    assert_int_equal(pub(hub, "{\"a\":\"x\0y\"}", 11), SH_EINVAL);
    assert_int_equal(pub(hub, NULL, 0), SH_EINVAL);
    /* Cut at every byte: never accepted but as a whole. */
    {
        const char *whole = "{\"k\":[1,2,{\"z\":\"v\"}]}";
        for (size_t n = 1; n < strlen(whole); n++)
            assert_int_equal(pub(hub, whole, n), SH_EINVAL);
        assert_int_equal(pub(hub, whole, strlen(whole)), SH_OK);
    }
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_int_equal(pub(hub, deep, sizeof deep), SH_EINVAL);
    err[0] = '\0';
    assert_int_equal(sh_publish(hub, "app:game", "app.score", "{", 1, NULL,
                                err, sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "not JSON"));
}

static void test_publish_size_limit(void **state)
{
    sh_hub_t *hub = *state;
    char buf[202];

    /* A JSON string of exactly 200 bytes, then 201. */
    memset(buf, 'a', sizeof buf);
    buf[0] = '"';
    buf[199] = '"';
    assert_int_equal(pub(hub, buf, 200), SH_OK);
    buf[199] = 'a';
    buf[200] = '"';
    assert_int_equal(pub(hub, buf, 201), SH_ETOOBIG);
}

static void test_publish_rejects_bad_names(void **state)
{
    sh_hub_t *hub = *state;
    char type[66];
    char err[SH_ERRBUF_SIZE];
    uint64_t off = 9;

    assert_int_equal(sh_publish(hub, "app:a b", "t", "1", 1, &off, err,
                                sizeof err), SH_EINVAL);
    assert_int_equal(off, 0);
    assert_non_null(strstr(err, "app:a b"));
    assert_int_equal(sh_publish(hub, "live", "", "1", 1, NULL, err,
                                sizeof err), SH_EINVAL);
    assert_int_equal(sh_publish(hub, "live", "a b", "1", 1, NULL, err,
                                sizeof err), SH_EINVAL);
    assert_int_equal(sh_publish(hub, "live", "\xc3\xa9", "1", 1, NULL, err,
                                sizeof err), SH_EINVAL);
    assert_int_equal(sh_publish(hub, "live", NULL, "1", 1, NULL, err,
                                sizeof err), SH_EINVAL);
    memset(type, 'x', sizeof type);
    type[64] = '\0';
    assert_int_equal(sh_publish(hub, "live", type, "1", 1, NULL, err,
                                sizeof err), SH_OK);
    type[64] = 'x';
    type[65] = '\0';
    assert_int_equal(sh_publish(hub, "live", type, "1", 1, NULL, err,
                                sizeof err), SH_EINVAL);
}

static void test_null_hub_and_outputs(void **state)
{
    sh_subscription_t *sub = (sh_subscription_t *)state;
    sh_position_t p;
    char err[SH_ERRBUF_SIZE];
    struct got g = { 0 };

    assert_int_equal(sh_subscribe(NULL, "live", NULL, on_event, &g, &sub,
                                  NULL, err, sizeof err), SH_EINVAL);
    assert_null(sub);
    assert_int_equal(sh_publish(NULL, "live", "t", "1", 1, NULL, NULL, 0),
                     SH_EINVAL);
    assert_int_equal(sh_channel_position(NULL, "live", &p, err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_channel_position(*state, "bad", &p, err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(p.offset, 0);
    sh_unsubscribe(NULL);
    assert_int_equal(g.finals, 0);
}

static void test_close_ends_subscriptions(void **state)
{
    sh_hub_t *hub = *state;
    struct got g = { 0 };

    assert_int_equal(sh_subscribe(hub, "live", NULL, on_event, &g, NULL,
                                  NULL, NULL, 0), SH_OK);
    assert_int_equal(pub(hub, "1", 1), SH_OK);
    sh_hub_close(hub);
    *state = NULL;
    assert_int_equal(g.finals, 1);
    assert_int_equal(g.final, SH_ECANCELED);
}

struct waker {
    sh_hub_t *hub;
};

static void *wake_later(void *arg)
{
    struct waker *w = arg;

    usleep(50000);
    sh_hub_wake(w->hub);
    return NULL;
}

/* sh_hub_wake() ends a poll that would wait, from another thread, and a
 * wake with nobody polling makes the next poll return at once. */
static void test_wake_ends_a_blocked_poll(void **state)
{
    sh_hub_t *hub = *(sh_hub_t **)state;
    struct waker w = { hub };
    struct timespec t0, t1;
    pthread_t t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pthread_create(&t, NULL, wake_later, &w), 0);
    assert_int_equal(sh_hub_poll(hub, 10000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    sh_hub_wake(hub);
    assert_int_equal(sh_hub_poll(hub, 10000), 0);
    assert_int_equal(sh_hub_poll(hub, 0), 0);
    sh_hub_wake(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_and_receive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_accepts_any_json_value,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_rejects_bad_json, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_size_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_rejects_bad_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_hub_and_outputs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_ends_subscriptions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wake_ends_a_blocked_poll, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
