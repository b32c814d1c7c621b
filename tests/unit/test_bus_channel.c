/* tests/unit/test_bus_channel.c: channel names (bus/channel.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus/bus_int.h"

static void test_accepts_every_kind(void **state)
{
    char max[SH_CHANNEL_MAX + 1];
    const char *good[] = { "live", "chat:7c1", "stream:a.b-c_d",
                           "user:0f8fad5b-d9cb-469f-a165-70867728950e",
                           "app:game", "app:x", max };

    (void)state;
    memcpy(max, "app:", 4);
    memset(max + 4, 'z', SH_CHANNEL_MAX - 4);
    max[SH_CHANNEL_MAX] = '\0';
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(sh__channel_check(good[i], NULL, 0), SH_OK);
}

static void test_rejects_hostile_names(void **state)
{
    char over[SH_CHANNEL_MAX + 2];
    char err[SH_ERRBUF_SIZE];
    const char *bad[] = {
        "", "live2", "Live", "live:", "chat:", "chat", ":x", "chat:a b",
        "chat:\x01", "chat:\xc3\x28", "chat:\xc3\xa9", "app:../x",
        "app:a/b", "user:a\"b", "stream:\x7f", "chat:\0abc", "chat :a",
        "CHAT:a", "chat:a\n", over,
    };

    (void)state;
    memcpy(over, "app:", 4);
    memset(over + 4, 'z', SH_CHANNEL_MAX + 1 - 4);
    over[SH_CHANNEL_MAX + 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(sh__channel_check(bad[i], err, sizeof err),
                         SH_EINVAL);
        assert_true(strlen(err) > 0);
        /* The message never carries the raw bytes of the name. */
        for (const char *p = err; *p != '\0'; p++)
            assert_true((unsigned char)*p >= 0x20 &&
                        (unsigned char)*p < 0x7f);
    }
    assert_int_equal(sh__channel_check(NULL, err, sizeof err), SH_EINVAL);
}

static void test_message_names_channel_escaped(void **state)
{
    char err[SH_ERRBUF_SIZE];

    (void)state;
    assert_int_equal(sh__channel_check("chat:\x01\"x", err, sizeof err),
                     SH_EINVAL);
    assert_non_null(strstr(err, "chat:\\x01\\x22x"));
    assert_int_equal(sh__channel_check("live2", err, sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "\"live2\""));
}

static void test_message_of_long_name_is_cut(void **state)
{
    char over[SH_CHANNEL_MAX + 50];
    char err[SH_ERRBUF_SIZE];

    (void)state;
    memset(over, 'a', sizeof over - 1);
    over[sizeof over - 1] = '\0';
    assert_int_equal(sh__channel_check(over, err, sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "..."));
    assert_true(strlen(err) < sizeof err - 1);
}

static void test_small_errbuf_is_terminated(void **state)
{
    char err[8];

    (void)state;
    memset(err, 'X', sizeof err);
    assert_int_equal(sh__channel_check("nope", err, sizeof err), SH_EINVAL);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(sh__channel_check("nope", err, 0), SH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_every_kind),
        cmocka_unit_test(test_rejects_hostile_names),
        cmocka_unit_test(test_message_names_channel_escaped),
        cmocka_unit_test(test_message_of_long_name_is_cut),
        cmocka_unit_test(test_small_errbuf_is_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
