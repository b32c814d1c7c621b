/* tests/unit/test_services_cache.c: the in-memory tier of the hot-read
 * cache (services/cache.c) on one hub without a cluster: hits, a fill
 * refused after an invalidation that ran since its miss, a kind dropped
 * whole, the bound, and a stream's change dropping the live list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/services_int.h"
#include "streamhub/streamhub.h"

static sh_hub_t *hub_with(const char *entries)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE] = "";

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "cache.memory-entries", entries, err,
                                   sizeof err), SH_OK);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK)
        fail_msg("hub open: %s", err);
    return hub;
}

static bool get(sh_hub_t *hub, enum sh__cache_kind kind, const char *key,
                const char *want, struct sh__cache_ticket *t)
{
    char *text = NULL;
    size_t len = 0;
    bool hit = sh__cache_get(hub, kind, key, &text, &len, t);

    if (hit) {
        assert_non_null(text);
        assert_string_equal(text, want);
        assert_int_equal(len, strlen(want));
    }
    free(text);
    return hit;
}

static void test_a_fill_after_an_invalidation_is_refused(void **state)
{
    sh_hub_t *hub = hub_with("100");
    struct sh__cache_ticket t, u;

    (void)state;
    assert_false(get(hub, SH__CACHE_FOLLOWERS, "a", NULL, &t));
    assert_true(sh__cache_fillable(&t));
    /* A write's invalidation between the miss and the fill. */
    sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, "a");
    sh__cache_put(hub, SH__CACHE_FOLLOWERS, "a", &t, "0 0", 3);
    assert_false(get(hub, SH__CACHE_FOLLOWERS, "a", NULL, &t));
    /* With a fresh ticket the fill is kept, and hit. */
    sh__cache_put(hub, SH__CACHE_FOLLOWERS, "a", &t, "1 0", 3);
    assert_true(get(hub, SH__CACHE_FOLLOWERS, "a", "1 0", &u));
    /* Another key's invalidation refuses this kind's fills too (one epoch
     * per kind), but leaves the entry. */
    assert_false(get(hub, SH__CACHE_FOLLOWERS, "b", NULL, &t));
    sh__cache_invalidate(hub, SH__CACHE_FOLLOWERS, "c");
    sh__cache_put(hub, SH__CACHE_FOLLOWERS, "b", &t, "2 0", 3);
    assert_false(get(hub, SH__CACHE_FOLLOWERS, "b", NULL, &t));
    assert_true(get(hub, SH__CACHE_FOLLOWERS, "a", "1 0", &u));
    /* A whole kind at once. */
    sh__cache_invalidate_all(hub, SH__CACHE_FOLLOWERS);
    assert_false(get(hub, SH__CACHE_FOLLOWERS, "a", NULL, &t));
    sh_hub_close(hub);
}

static void test_a_stream_change_drops_the_live_list(void **state)
{
    sh_hub_t *hub = hub_with("100");
    struct sh__cache_ticket t;
    char id[SH__UUID_LEN + 1];

    (void)state;
    sh__uuid4(id);
    assert_false(get(hub, SH__CACHE_LIVE, "20|0", NULL, &t));
    sh__cache_put(hub, SH__CACHE_LIVE, "20|0", &t, "[]", 2);
    assert_true(get(hub, SH__CACHE_LIVE, "20|0", "[]", &t));
    sh__cache_invalidate(hub, SH__CACHE_STREAM, id);
    assert_false(get(hub, SH__CACHE_LIVE, "20|0", NULL, &t));
    sh_hub_close(hub);
}

static void test_each_kind_is_bounded(void **state)
{
    sh_hub_t *hub = hub_with("3");
    struct sh__cache_ticket t;
    char k[16];

    (void)state;
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_false(get(hub, SH__CACHE_LIVE, k, NULL, &t));
        sh__cache_put(hub, SH__CACHE_LIVE, k, &t, k, strlen(k));
    }
    /* The three most recent stay; the oldest went first. */
    for (int i = 0; i < 7; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_false(get(hub, SH__CACHE_LIVE, k, NULL, &t));
    }
    for (int i = 7; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_true(get(hub, SH__CACHE_LIVE, k, k, &t));
    }
    sh_hub_close(hub);
}

static void test_no_memory_tier_when_off(void **state)
{
    sh_hub_t *hub = hub_with("0");
    struct sh__cache_ticket t;

    (void)state;
    assert_false(get(hub, SH__CACHE_LIVE, "x", NULL, &t));
    assert_false(sh__cache_fillable(&t));
    sh__cache_put(hub, SH__CACHE_LIVE, "x", &t, "y", 1);
    assert_false(get(hub, SH__CACHE_LIVE, "x", NULL, &t));
    sh_hub_close(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_fill_after_an_invalidation_is_refused),
        cmocka_unit_test(test_a_stream_change_drops_the_live_list),
        cmocka_unit_test(test_each_kind_is_bounded),
        cmocka_unit_test(test_no_memory_tier_when_off),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
