/* tests/unit/test_core_ratelimit.c: token buckets and the keyed limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <pthread.h>

#include <cmocka.h>

#include "core/ratelimit_int.h"

#define T0 1000000LL

/* 100 per 60 s, as chat uses. */
static void test_burst_then_refusal_with_retry(void **state)
{
    struct sh__bucket b = { 100, T0 };
    int64_t retry = -1;

    (void)state;
    for (int i = 0; i < 100; i++) {
        assert_true(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0, &retry));
        assert_int_equal(retry, 0);
    }
    assert_false(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0, &retry));
    /* One token every 600 ms. */
    assert_int_equal(retry, 600);
    assert_false(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + retry - 1,
                                 &retry));
    assert_int_equal(retry, 1);
    assert_true(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + 600, &retry));
    assert_false(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + 600, &retry));
    assert_int_equal(retry, 600);
    /* retry_after may be NULL. */
    assert_false(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + 600, NULL));
}

static void test_retry_after_is_exact(void **state)
{
    (void)state;
    /* For many rates and costs, waiting exactly retry_after succeeds and
     * one millisecond less does not. */
    const double rates[] = { 0.001, 0.3, 1, 1.0 / 3, 100.0 / 60, 7, 1000 };
    const double costs[] = { 1, 0.5, 2.5, 10 };

    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++) {
            struct sh__bucket b = { 10, T0 }, copy;
            int64_t retry = 0, now = T0;
            while (sh__bucket_take(&b, 10, rates[r], costs[c], now, &retry))
                ;
            assert_true(retry >= 1);
            copy = b;
            if (retry > 1) {
                int64_t r2;
                assert_false(sh__bucket_take(&copy, 10, rates[r], costs[c],
                                             now + retry - 1, &r2));
                assert_true(r2 >= 1);
            }
            copy = b;
            assert_true(sh__bucket_take(&copy, 10, rates[r], costs[c],
                                        now + retry, NULL));
        }
    }
}

static void test_refill_and_fractions(void **state)
{
    struct sh__bucket b = { 0, T0 };
    int64_t retry;

    (void)state;
    /* 0.5 token/s: one token after 2 s, taken in halves. */
    assert_false(sh__bucket_take(&b, 5, 0.5, 1, T0, &retry));
    assert_int_equal(retry, 2000);
    assert_true(sh__bucket_take(&b, 5, 0.5, 0.5, T0 + 1000, &retry));
    assert_false(sh__bucket_take(&b, 5, 0.5, 0.5, T0 + 1000, &retry));
    assert_int_equal(retry, 1000);
    assert_true(sh__bucket_take(&b, 5, 0.5, 0.5, T0 + 2000, &retry));
    /* Many tiny steps add up like one big step. */
    b = (struct sh__bucket){ 0, T0 };
    for (int i = 1; i <= 6000; i++)
        (void)sh__bucket_take(&b, 100, 100.0 / 60, 0, T0 + i, NULL);
    assert_true(fabs(b.tokens - 10.0) < 1e-6);
    for (int i = 0; i < 10; i++)
        assert_true(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + 6000,
                                    NULL));
    assert_false(sh__bucket_take(&b, 100, 100.0 / 60, 1, T0 + 6000, NULL));
    /* Never above capacity. */
    (void)sh__bucket_take(&b, 3, 1, 0, T0 + 3600000, NULL);
    assert_true(b.tokens <= 3.0);
    assert_true(b.tokens >= 3.0 - 1e-9);
}

static void test_huge_jumps_and_clock_backwards(void **state)
{
    struct sh__bucket b = { 0, INT64_MIN };
    int64_t retry;

    (void)state;
    /* From the most negative time to the most positive: full, no UB. */
    assert_true(sh__bucket_take(&b, 10, 1, 10, INT64_MAX, &retry));
    assert_false(sh__bucket_take(&b, 10, 1, 1, INT64_MAX, &retry));
    assert_int_equal(retry, 1000);
    /* Backwards: nothing refilled, last_ms kept, wait counted from it. */
    b = (struct sh__bucket){ 0, T0 };
    assert_false(sh__bucket_take(&b, 10, 1, 1, T0 - 50000, &retry));
    assert_int_equal(retry, 51000);
    assert_int_equal(b.last_ms, T0);
    assert_false(sh__bucket_take(&b, 10, 1, 1, T0 + 999, &retry));
    assert_int_equal(retry, 1);
    assert_true(sh__bucket_take(&b, 10, 1, 1, T0 + 1000, &retry));
    /* Back and forth never mints tokens. */
    b = (struct sh__bucket){ 0, T0 };
    for (int i = 0; i < 1000; i++) {
        assert_false(sh__bucket_take(&b, 10, 1, 1, T0 + (i % 2 ? 500 : -500),
                                     NULL));
    }
}

static void test_bad_numbers(void **state)
{
    struct sh__bucket b = { 5, T0 };
    int64_t retry;

    (void)state;
    /* Cost over capacity: never. */
    assert_false(sh__bucket_take(&b, 5, 1, 6, T0, &retry));
    assert_int_equal(retry, INT64_MAX);
    /* No refill: never again once empty. */
    assert_true(sh__bucket_take(&b, 5, 0, 5, T0, &retry));
    assert_false(sh__bucket_take(&b, 5, 0, 1, T0 + 1000000, &retry));
    assert_int_equal(retry, INT64_MAX);
    /* NaN cost refused, zero and negative cost free. */
    b = (struct sh__bucket){ 1, T0 };
    assert_false(sh__bucket_take(&b, 5, 1, NAN, T0, &retry));
    assert_int_equal(retry, INT64_MAX);
    assert_true(sh__bucket_take(&b, 5, 1, 0, T0, &retry));
    assert_true(sh__bucket_take(&b, 5, 1, -3, T0, &retry));
    assert_true(b.tokens <= 1.0);
    /* NaN/inf capacity and refill count as zero: fail closed. */
    b = (struct sh__bucket){ 1, T0 };
    assert_false(sh__bucket_take(&b, NAN, 1, 1, T0, &retry));
    b = (struct sh__bucket){ 0, T0 };
    assert_false(sh__bucket_take(&b, 5, INFINITY, 1, T0 + 10, &retry));
    assert_false(sh__bucket_take(&b, 5, NAN, 1, T0 + 10, &retry));
    /* Corrupt token counts are clamped. */
    b = (struct sh__bucket){ NAN, T0 };
    assert_false(sh__bucket_take(&b, 5, 1, 1, T0, &retry));
    b = (struct sh__bucket){ 1e300, T0 };
    assert_true(sh__bucket_take(&b, 5, 1, 5, T0, &retry));
    assert_false(sh__bucket_take(&b, 5, 1, 1, T0, &retry));
    /* A tiny rate gives a huge but finite wait. */
    b = (struct sh__bucket){ 0, T0 };
    assert_false(sh__bucket_take(&b, 5, 1e-12, 1, T0, &retry));
    assert_true(retry > 0);
}

static void test_limiter_args(void **state)
{
    struct sh__limiter *l;
    int64_t retry = 0;
    char key[SH__LIMITER_KEY_MAX + 1];

    (void)state;
    assert_null(sh__limiter_new(0, 1, 10));
    assert_null(sh__limiter_new(-1, 1, 10));
    assert_null(sh__limiter_new(NAN, 1, 10));
    assert_null(sh__limiter_new(INFINITY, 1, 10));
    assert_null(sh__limiter_new(1, -1, 10));
    assert_null(sh__limiter_new(1, NAN, 10));
    assert_null(sh__limiter_new(1, 1, 0));
    sh__limiter_free(NULL);
    l = sh__limiter_new(2, 1, 10);
    assert_non_null(l);
    /* Empty, NULL and max+1 keys fail closed; max is fine. */
    assert_false(sh__limiter_take(l, "", 0, 1, T0, &retry));
    assert_int_equal(retry, 1000);
    assert_false(sh__limiter_take(l, NULL, 3, 1, T0, &retry));
    memset(key, 'k', sizeof key);
    assert_false(sh__limiter_take(l, key, sizeof key, 1, T0, &retry));
    assert_true(sh__limiter_take(l, key, SH__LIMITER_KEY_MAX, 1, T0, &retry));
    /* Keys are bytes: embedded NUL and bad UTF-8 are distinct keys. */
    assert_true(sh__limiter_take(l, "a\0b", 3, 2, T0, &retry));
    assert_false(sh__limiter_take(l, "a\0b", 3, 1, T0, &retry));
    assert_true(sh__limiter_take(l, "a\0c", 3, 2, T0, &retry));
    assert_true(sh__limiter_take(l, "a", 1, 2, T0, &retry));
    assert_true(sh__limiter_take(l, "\xc3\x28", 2, 2, T0, &retry));
    assert_false(sh__limiter_take(l, "\xc3\x28", 2, 1, T0, &retry));
    assert_int_equal(retry, 1000);
    assert_int_equal(sh__limiter_count(l), 5);
    sh__limiter_free(l);
}

static void test_limiter_per_key(void **state)
{
    struct sh__limiter *l = sh__limiter_new(100, 100.0 / 60, 1000);
    int64_t retry;

    (void)state;
    assert_non_null(l);
    for (int i = 0; i < 100; i++)
        assert_true(sh__limiter_take(l, "alice", 5, 1, T0, &retry));
    assert_false(sh__limiter_take(l, "alice", 5, 1, T0, &retry));
    assert_int_equal(retry, 600);
    assert_true(sh__limiter_take(l, "bob", 3, 1, T0, &retry));
    assert_true(sh__limiter_take(l, "alice", 5, 1, T0 + 600, &retry));
    assert_false(sh__limiter_take(l, "alice", 5, 1, T0 + 600, &retry));
    sh__limiter_free(l);
}

static void test_limiter_eviction_bounded(void **state)
{
    struct sh__limiter *l = sh__limiter_new(3, 1, 100);
    char key[32];
    int64_t retry;

    (void)state;
    assert_non_null(l);
    /* Ten thousand distinct keys: memory stays capped. */
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "ip-%d", i);
        assert_true(sh__limiter_take(l, key, (size_t)n, 1, T0 + i, &retry));
        assert_true(sh__limiter_count(l) <= 100);
    }
    assert_true(sh__limiter_count(l) >= 90);
    sh__limiter_free(l);

    /* Full buckets go before busy ones: a drained key survives a flood of
     * one-shot keys as long as they have refilled when space is needed. */
    l = sh__limiter_new(3, 1000, 64);
    assert_non_null(l);
    for (int i = 0; i < 3; i++)
        assert_true(sh__limiter_take(l, "hot", 3, 1, T0, &retry));
    assert_false(sh__limiter_take(l, "hot", 3, 1, T0, &retry));
    for (int i = 0; i < 63; i++) {
        int n = snprintf(key, sizeof key, "cold-%d", i);
        assert_true(sh__limiter_take(l, key, (size_t)n, 0.001, T0, &retry));
    }
    /* Now "hot" is the idlest, but the cold ones are full again 1 ms
     * later while "hot" (3 tokens needed, refills 1/ms) is not yet. */
    for (int i = 0; i < 63; i++) {
        int n = snprintf(key, sizeof key, "new-%d", i);
        assert_true(sh__limiter_take(l, key, (size_t)n, 1, T0 + 1,
                                     &retry));
        assert_true(sh__limiter_count(l) <= 64);
    }
    /* Still remembered: the debt was not forgotten. */
    assert_false(sh__limiter_take(l, "hot", 3, 3, T0 + 1, &retry));
    sh__limiter_free(l);
}

struct race {
    struct sh__limiter *l;
    int taken;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    char key[16];

    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i % 8);
        if (sh__limiter_take(r->l, key, (size_t)n, 1, T0, NULL))
            r->taken++;
        /* Churn other keys to force eviction under contention. */
        n = snprintf(key, sizeof key, "x%d", i);
        (void)sh__limiter_take(r->l, key, (size_t)n, 1, T0, NULL);
    }
    return NULL;
}

static void test_limiter_concurrent_never_exceeds(void **state)
{
    enum { NT = 8 };
    pthread_t th[NT];
    struct race r[NT];
    int total = 0;
    struct sh__limiter *l = sh__limiter_new(500, 0, 100000);

    (void)state;
    assert_non_null(l);
    for (int i = 0; i < NT; i++) {
        r[i].l = l;
        r[i].taken = 0;
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += r[i].taken;
    }
    /* 8 keys of 500 tokens, no refill, no eviction of them (cap is big
     * enough): exactly 4000 takes succeed. */
    assert_int_equal(total, 8 * 500);
    assert_true(sh__limiter_count(l) <= 100000);
    sh__limiter_free(l);
}

/* A token taken for an action refused later goes back, never above the
 * capacity; giving to an unknown key or a bad one does nothing. */
static void test_limiter_give_back(void **state)
{
    struct sh__limiter *l = sh__limiter_new(2, 0, 64);
    int64_t retry;

    (void)state;
    assert_non_null(l);
    assert_true(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    assert_true(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    assert_false(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    sh__limiter_give(l, "u", 1, 1);
    assert_true(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    assert_false(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    sh__limiter_give(l, "u", 1, 5);            /* capped at 2 */
    assert_true(sh__limiter_take(l, "u", 1, 2, T0, &retry));
    assert_false(sh__limiter_take(l, "u", 1, 1, T0, &retry));
    sh__limiter_give(l, "nobody", 6, 1);
    sh__limiter_give(l, "", 0, 1);
    sh__limiter_give(l, NULL, 1, 1);
    sh__limiter_give(NULL, "u", 1, 1);
    assert_int_equal(sh__limiter_count(l), 1);
    sh__limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refusal_with_retry),
        cmocka_unit_test(test_retry_after_is_exact),
        cmocka_unit_test(test_refill_and_fractions),
        cmocka_unit_test(test_huge_jumps_and_clock_backwards),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_limiter_args),
        cmocka_unit_test(test_limiter_per_key),
        cmocka_unit_test(test_limiter_eviction_bounded),
        cmocka_unit_test(test_limiter_concurrent_never_exceeds),
        cmocka_unit_test(test_limiter_give_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
