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
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <streamhub/streamhub.h>

#include "services/services_int.h"

/* An in-memory hub with the keys and values of @kv (NULL-terminated
 * pairs) set on top of the test defaults. */
static int open_hub(void **state, const char *const *kv)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    for (; kv[0] != NULL; kv += 2)
        assert_int_equal(sh_config_set(c, kv[0], kv[1], err, sizeof err),
                         SH_OK);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK) {
        print_error("hub: %s\n", err);
        sh_config_free(c);
        return -1;
    }
    *state = hub;
    return 0;
}

static int setup(void **state)
{
    static const char *const kv[] = { "ws.max-message-bytes", "200", NULL };

    return open_hub(state, kv);
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
    sh_subscription_free(sub);
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

/* A hub whose subscribers hold at most 16 events (the smallest queue). */
static int setup_small_queue(void **state)
{
    static const char *const kv[] = {
        "bus.subscriber-queue", "16", "chat.rate-limit", "100000", NULL
    };

    return open_hub(state, kv);
}

static void *unsubscribe_thread(void *arg)
{
    sh_unsubscribe(arg);
    sh_unsubscribe(arg);        /* a second call is a no-op */
    return NULL;
}

/* The bus drops a subscriber that fell behind (SH_EBUSY) and runs its
 * final callback; the owner, on another thread, cannot know and calls
 * sh_unsubscribe(): the handle is still valid (a no-op) until the owner
 * releases it. */
static void test_unsubscribe_after_busy_drop(void **state)
{
    sh_hub_t *hub = *state;
    sh_subscription_t *sub = NULL;
    struct got g = { 0 };
    pthread_t t;

    assert_int_equal(sh_subscribe(hub, "app:flood", NULL, on_event, &g, &sub,
                                  NULL, NULL, 0), SH_OK);
    for (int i = 0; i < 17; i++)
        assert_int_equal(sh_publish(hub, "app:flood", "t", "1", 1, NULL,
                                    NULL, 0), SH_OK);
    while (g.finals == 0)
        assert_true(sh_hub_poll(hub, 1000) >= 0);
    assert_int_equal(g.final, SH_EBUSY);
    assert_int_equal(pthread_create(&t, NULL, unsubscribe_thread, sub), 0);
    pthread_join(t, NULL);
    assert_int_equal(sh_hub_poll(hub, 0), 0);
    assert_int_equal(g.finals, 1);
    sh_subscription_free(sub);
    sh_subscription_free(NULL);
}

/* sh_hub_close() ends every subscription (final callback SH_ECANCELED);
 * an owner that unsubscribes afterwards, from another thread, finds the
 * handle still valid. */
static void test_unsubscribe_after_hub_close(void **state)
{
    sh_hub_t *hub = *state;
    sh_subscription_t *a = NULL, *b = NULL;
    struct got ga = { 0 }, gb = { 0 };
    pthread_t t;

    assert_int_equal(sh_subscribe(hub, "app:a", NULL, on_event, &ga, &a,
                                  NULL, NULL, 0), SH_OK);
    assert_int_equal(sh_subscribe(hub, "app:b", NULL, on_event, &gb, &b,
                                  NULL, NULL, 0), SH_OK);
    assert_int_equal(pub(hub, "1", 1), SH_OK);
    sh_unsubscribe(b);          /* ended by its owner before the close */
    sh_hub_close(hub);
    *state = NULL;
    assert_int_equal(ga.finals, 1);
    assert_int_equal(ga.final, SH_ECANCELED);
    assert_int_equal(gb.finals, 1);
    assert_int_equal(pthread_create(&t, NULL, unsubscribe_thread, a), 0);
    pthread_join(t, NULL);
    sh_unsubscribe(b);
    assert_int_equal(ga.finals, 1);
    sh_subscription_free(a);
    sh_subscription_free(b);
}

/* Service calls made from several threads while another closes the hub:
 * each call either completes or returns SH_ECANCELED, and the close frees
 * nothing a call still uses.  One call is certainly in flight: a callback
 * running inside sh_hub_poll() on another thread, which goes on after the
 * close has begun and then calls the hub.  The workers stop calling once
 * the close has begun: the final callback of a subscription, which the
 * close runs before it frees the hub, waits until they have seen
 * SH_ECANCELED (a call made after sh_hub_close() returns is the caller's
 * error). */
#define WORKERS 4

struct racer {
    sh_hub_t *hub;
    int kind;
    char user_id[64];
    char stream_id[64];
    atomic_int *calls;
    atomic_int *running;
    int canceled;
    int other;
};

static void *race_worker(void *arg)
{
    struct racer *r = arg;
    char err[SH_ERRBUF_SIZE];

    for (;;) {
        sh_stream_t *st = NULL;
        sh_chat_message_t *m = NULL;
        sh_err_t rc;

        switch (r->kind) {
        case 0:
            rc = sh_publish(r->hub, "app:race", "t", "{\"a\":1}", 7, NULL,
                            err, sizeof err);
            break;
        case 1:
            rc = sh_stream_get(r->hub, r->stream_id, &st, err, sizeof err);
            sh_stream_free(st);
            break;
        default:
            rc = sh_chat_send(r->hub, r->user_id, r->stream_id, "hi", 2, &m,
                              NULL, err, sizeof err);
            sh_chat_message_free(m);
            break;
        }
        if (rc == SH_ECANCELED) {
            r->canceled = 1;
            break;
        }
        if (rc != SH_OK) {
            r->other = (int)rc;
            print_error("call %d: %s: %s\n", r->kind, sh_err_name(rc), err);
            break;
        }
        atomic_fetch_add(r->calls, 1);
    }
    atomic_fetch_sub(r->running, 1);
    return NULL;
}

/* The final callback of the close's subscription: the close has begun. */
static void wait_for_workers(void *arg, const sh_event_t *ev,
                             sh_err_t status)
{
    atomic_int *running = arg;

    if (status == SH_OK)
        return;
    while (atomic_load(running) > 0)
        usleep(1000);
}

struct inside {
    sh_hub_t *hub;
    char stream_id[64];
    atomic_int inside, close_started, done;
    sh_err_t rc;
};

/* An event callback that outlives the start of the close, then calls. */
static void call_during_close(void *arg, const sh_event_t *ev,
                              sh_err_t status)
{
    struct inside *in = arg;
    sh_stream_t *st = NULL;

    if (status != SH_OK || atomic_load(&in->done))
        return;
    atomic_store(&in->inside, 1);
    while (!atomic_load(&in->close_started))
        usleep(1000);
    usleep(100000);             /* let the close run meanwhile */
    in->rc = sh_stream_get(in->hub, in->stream_id, &st, NULL, 0);
    sh_stream_free(st);
    atomic_store(&in->done, 1);
}

static void *poller(void *arg)
{
    struct inside *in = arg;

    while (!atomic_load(&in->done))
        assert_true(sh_hub_poll(in->hub, 1000) >= 0);
    return NULL;
}

static void test_close_with_calls_in_flight(void **state)
{
    sh_hub_t *hub = *state;
    struct racer r[WORKERS];
    struct inside in = { .hub = hub };
    pthread_t t[WORKERS], tp;
    atomic_int calls = 0, running = WORKERS;
    sh_auth_t *auth = NULL;
    sh_stream_t *st = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_auth_register(hub, "racer", "racer@example.com",
                                      "correct horse battery", &auth, err,
                                      sizeof err), SH_OK);
    assert_int_equal(sh_stream_start(hub, sh_user_id(sh_auth_user(auth)),
                                     "race", "test", &st, err, sizeof err),
                     SH_OK);
    snprintf(in.stream_id, sizeof in.stream_id, "%s", sh_stream_id(st));
    for (int i = 0; i < WORKERS; i++) {
        r[i] = (struct racer){ .hub = hub, .kind = i % 3, .calls = &calls,
                               .running = &running };
        snprintf(r[i].user_id, sizeof r[i].user_id, "%s",
                 sh_user_id(sh_auth_user(auth)));
        snprintf(r[i].stream_id, sizeof r[i].stream_id, "%s",
                 sh_stream_id(st));
    }
    sh_auth_free(auth);
    sh_stream_free(st);
    assert_int_equal(sh_subscribe(hub, "app:closing", NULL,
                                  wait_for_workers, &running, NULL, NULL,
                                  NULL, 0), SH_OK);
    assert_int_equal(sh_subscribe(hub, "app:inside", NULL,
                                  call_during_close, &in, NULL, NULL, NULL,
                                  0), SH_OK);
    assert_int_equal(pthread_create(&tp, NULL, poller, &in), 0);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_worker, &r[i]),
                         0);
    assert_int_equal(sh_publish(hub, "app:inside", "t", "1", 1, NULL, NULL,
                                0), SH_OK);
    while (!atomic_load(&in.inside) ||
           (atomic_load(&calls) < 200 && atomic_load(&running) == WORKERS))
        usleep(1000);
    atomic_store(&in.close_started, 1);
    sh_hub_close(hub);
    *state = NULL;
    pthread_join(tp, NULL);
    /* The close began before the call: refused, or (had this thread not
     * run yet) completed; never a crash. */
    assert_true(in.rc == SH_ECANCELED || in.rc == SH_OK);
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].other, 0);
        assert_int_equal(r[i].canceled, 1);
    }
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
        cmocka_unit_test_setup_teardown(test_unsubscribe_after_busy_drop,
                                        setup_small_queue, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_after_hub_close,
                                        setup_small_queue, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_calls_in_flight,
                                        setup_small_queue, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
