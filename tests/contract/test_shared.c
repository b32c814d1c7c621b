/* tests/contract/test_shared.c: what the hub hands to several threads at
 * once.  json-c counts references without atomics, so any json-c object
 * that two threads reach together (the introspection result, a channel's
 * blocked terms given to every reader, a result that is also a bus
 * event's data) loses counts and is freed twice or never.  These tests
 * drive each from several threads; under helgrind (shared_helgrind) any
 * such race is reported even when the heap survives it.  Public API
 * only. */
#include <pthread.h>
#include <stdatomic.h>

#include "chat_fixture.h"
#include "streamhub/graphql.h"

#define READERS 4
#define READS 1000
#define UPDATES 100

struct shared {
    struct fx *f;
    atomic_bool stop;
    atomic_int torn;
    struct fx_events ev;
};

/* Read the settings over and over; each must hold 0 or 3 terms. */
static void *reader(void *arg)
{
    struct shared *s = arg;
    char err[SH_ERRBUF_SIZE];

    for (int i = 0; i < READS; i++) {
        sh_chat_settings_t *cs = NULL;
        size_t n;

        if (sh_chat_settings_get(s->f->hub, s->f->ids[0], &cs, err,
                                 sizeof err) != SH_OK) {
            atomic_fetch_add(&s->torn, 1);
            continue;
        }
        n = sh_chat_settings_blocked_term_count(cs);
        if (n != 0 && n != 3)
            atomic_fetch_add(&s->torn, 1);
        sh_chat_settings_free(cs);
    }
    return NULL;
}

/* Poll the hub: the chat channel's events (the settings changes) are
 * delivered and freed on this thread. */
static void *poller(void *arg)
{
    struct shared *s = arg;

    while (!atomic_load(&s->stop)) {
        sh_hub_poll(s->f->hub, 5);
        fx_events_clear(&s->ev);
    }
    return NULL;
}

static void event_cb(void *arg, const sh_event_t *ev, sh_err_t status)
{
    fx_event_cb(arg, ev, status);
}

static void test_settings_shared_between_threads(void **state)
{
    struct fx *f = fx_new(fx_store_env(), "bus.history-size", "0",
                          (const char *)NULL);
    struct shared s = { .f = f };
    pthread_t r[READERS], p;
    sh_subscription_t *sub = NULL;
    char channel[64], err[SH_ERRBUF_SIZE];

    (void)state;
    snprintf(channel, sizeof channel, "chat:%s", f->stream);
    assert_int_equal(sh_subscribe(f->hub, channel, NULL, event_cb, &s.ev,
                                  &sub, NULL, err, sizeof err), SH_OK);
    assert_int_equal(pthread_create(&p, NULL, poller, &s), 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&r[i], NULL, reader, &s), 0);
    for (int i = 0; i < UPDATES; i++) {
        char patch[128];
        sh_chat_settings_t *out = NULL;

        snprintf(patch, sizeof patch, "{\"blockedTerms\":[\"a%d\",\"b%d\","
                 "\"c%d\"]}", i, i, i);
        assert_int_equal(sh_chat_settings_update(f->hub, f->ids[0],
                                                 f->ids[0], patch,
                                                 strlen(patch), &out, err,
                                                 sizeof err), SH_OK);
        /* The result is ours alone, whatever else the hub keeps. */
        assert_int_equal(sh_chat_settings_blocked_term_count(out), 3);
        assert_non_null(sh_chat_settings_json(out, NULL));
        sh_chat_settings_free(out);
    }
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    atomic_store(&s.stop, true);
    pthread_join(p, NULL);
    sh_unsubscribe(sub);
    sh_hub_poll(f->hub, 0);
    sh_subscription_free(sub);      /* the handle is ours until then */
    fx_events_clear(&s.ev);
    assert_int_equal(atomic_load(&s.torn), 0);
    fx_free(f);
}

#define INTRO_THREADS 4
#define INTRO_RUNS 10

struct intro_run {
    sh_hub_t *hub;
    const char *query;
    const char *want;          /* the first answer */
    int differ;
};

static void *introspect(void *arg)
{
    struct intro_run *r = arg;
    sh_graphql_request_t *req = NULL;

    if (sh_graphql_request_new(&req) != SH_OK ||
        sh_graphql_request_set_query(req, r->query, strlen(r->query)) !=
            SH_OK) {
        r->differ++;
        sh_graphql_request_free(req);
        return NULL;
    }
    for (int i = 0; i < INTRO_RUNS; i++) {
        char *resp = NULL;
        int status = 0;

        if (sh_graphql_execute(r->hub, req, &resp, NULL, &status, NULL, 0)
                != SH_OK || status != 200 || strcmp(resp, r->want) != 0)
            r->differ++;
        sh_graphql_free(resp);
    }
    sh_graphql_request_free(req);
    return NULL;
}

/* The whole schema and single types, introspected from several threads
 * at once: every answer is the first one. */
static void test_introspection_from_threads(void **state)
{
    static const char *const queries[] = {
        "{ __schema { types { name kind fields(includeDeprecated: true) { "
        "name args { name defaultValue type { name ofType { name } } } "
        "type { kind name ofType { kind name ofType { name } } } } "
        "enumValues { name } } directives { name locations args { name } "
        "} } }",
        "{ __type(name: \"ChatEvent\") { name fields { name type { name "
        "kind ofType { name } } } } }",
    };
    struct fx *f = fx_new(fx_store_env(), (const char *)NULL);
    struct intro_run runs[INTRO_THREADS];
    pthread_t t[INTRO_THREADS];
    char *want[2] = { NULL, NULL };

    (void)state;
    for (int q = 0; q < 2; q++) {
        sh_graphql_request_t *req = NULL;
        int status = 0;

        assert_int_equal(sh_graphql_request_new(&req), SH_OK);
        assert_int_equal(sh_graphql_request_set_query(req, queries[q],
                                                      strlen(queries[q])),
                         SH_OK);
        assert_int_equal(sh_graphql_execute(f->hub, req, &want[q], NULL,
                                            &status, NULL, 0), SH_OK);
        assert_int_equal(status, 200);
        assert_null(strstr(want[q], "\"errors\""));
        sh_graphql_request_free(req);
    }
    for (int i = 0; i < INTRO_THREADS; i++) {
        runs[i] = (struct intro_run){ f->hub, queries[i % 2], want[i % 2],
                                      0 };
        assert_int_equal(pthread_create(&t[i], NULL, introspect, &runs[i]),
                         0);
    }
    for (int i = 0; i < INTRO_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(runs[i].differ, 0);
    }
    sh_graphql_free(want[0]);
    sh_graphql_free(want[1]);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_introspection_from_threads),
        cmocka_unit_test(test_settings_shared_between_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
