/* tests/unit/test_core_config.c: configuration keys, values and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core_int.h"

static int setup(void **state)
{
    sh_config_t *c = NULL;
    assert_int_equal(sh_config_new(&c), SH_OK);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    sh_config_free(*state);
    return 0;
}

static void test_defaults(void **state)
{
    sh_config_t *c = *state;
    char buf[64];
    size_t n = sizeof buf;

    assert_int_equal(sh_config_get(c, "listen", buf, &n), SH_OK);
    assert_string_equal(buf, "127.0.0.1:8080");
    assert_int_equal(n, strlen("127.0.0.1:8080"));
    assert_string_equal(sh__config_str(c, "store"), "sqlite:streamhub.db");
    assert_string_equal(sh__config_str(c, "bus"), "local");
    assert_true(sh__config_bool(c, "allow-anonymous"));
    assert_int_equal(sh__config_int(c, "chat.max-message-length"), 500);
    assert_false(sh__config_is_set(c, "listen"));
}

static void test_set_and_get(void **state)
{
    sh_config_t *c = *state;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_set(c, "chat.max-message-length", "2000", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh__config_int(c, "chat.max-message-length"), 2000);
    assert_int_equal(sh_config_set(c, "allow-anonymous", "off", err,
                                   sizeof err), SH_OK);
    assert_false(sh__config_bool(c, "allow-anonymous"));
    assert_int_equal(sh_config_set(c, "log-level", "debug", err, sizeof err),
                     SH_OK);
    assert_true(sh__config_is_set(c, "log-level"));
}

static void test_bad_values_name_the_key(void **state)
{
    sh_config_t *c = *state;
    char err[SH_ERRBUF_SIZE];
    static const struct {
        const char *key, *value, *needle;
    } bad[] = {
        { "nope", "1", "unknown configuration key 'nope'" },
        { "chat.max-message-length", "2001", "chat.max-message-length" },
        { "chat.max-message-length", "0", "out of range" },
        { "chat.max-message-length", "12x", "not an integer" },
        { "chat.max-message-length", "", "not an integer" },
        { "chat.max-message-length", "99999999999999999999", "integer" },
        { "allow-anonymous", "maybe", "allow-anonymous" },
        { "log-level", "verbose", "log-level" },
        { "jwt-secret", "short", "at least 32 bytes" },
        { "store", "mysql://x", "store" },
        { "store", "sqlite:", "store" },
        { "bus", "kafka://x", "bus" },
        { "listen", "localhost", "listen" },
        { "listen", "127.0.0.1:70000", "listen" },
        { "jwt-alg", "none", "jwt-alg" },
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(sh_config_set(c, bad[i].key, bad[i].value, err,
                                       sizeof err), SH_EINVAL);
        if (strstr(err, bad[i].needle) == NULL)
            fail_msg("%s=%s: '%s' lacks '%s'", bad[i].key, bad[i].value, err,
                     bad[i].needle);
    }
    /* A refused value leaves the old one. */
    assert_int_equal(sh__config_int(c, "chat.max-message-length"), 500);
    assert_int_equal(sh_config_set(NULL, "listen", "x", err, sizeof err),
                     SH_EINVAL);
    assert_int_equal(sh_config_set(c, "listen", "a:1", NULL, 0), SH_OK);
}

static void test_get_buffer_sizes(void **state)
{
    sh_config_t *c = *state;
    char buf[4];
    size_t n = sizeof buf;

    assert_int_equal(sh_config_get(c, "listen", buf, &n), SH_ETOOBIG);
    assert_int_equal(n, strlen("127.0.0.1:8080"));
    n = 0;
    assert_int_equal(sh_config_get(c, "listen", NULL, &n), SH_ETOOBIG);
    assert_int_equal(sh_config_get(c, "nope", buf, &n), SH_EINVAL);
}

static void test_errbuf_truncates_safely(void **state)
{
    sh_config_t *c = *state;
    char tiny[8];

    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(sh_config_set(c, "unknown-key-long", "1", tiny,
                                   sizeof tiny), SH_EINVAL);
    assert_int_equal(tiny[7], '\0');
    assert_int_equal(sh_config_set(c, "unknown-key-long", "1", tiny, 0),
                     SH_EINVAL);
}

static void test_file_and_env(void **state)
{
    sh_config_t *c = *state;
    char path[] = "/tmp/sh_conf_XXXXXX", err[SH_ERRBUF_SIZE];
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("# comment\n\n  listen = 0.0.0.0:9000  \nworkers=8\n", f);
    fclose(f);
    assert_int_equal(sh_config_load_file(c, path, err, sizeof err), SH_OK);
    assert_string_equal(sh__config_str(c, "listen"), "0.0.0.0:9000");
    assert_int_equal(sh__config_int(c, "workers"), 8);

    f = fopen(path, "w");
    fputs("workers = 2\nworkers = 999\n", f);
    fclose(f);
    assert_int_equal(sh_config_load_file(c, path, err, sizeof err),
                     SH_EINVAL);
    assert_non_null(strstr(err, ":2: workers"));
    unlink(path);
    assert_int_equal(sh_config_load_file(c, path, err, sizeof err), SH_EIO);

    setenv("STREAMHUB_CHAT_MAX_MESSAGE_LENGTH", "42", 1);
    assert_int_equal(sh_config_load_env(c, err, sizeof err), SH_OK);
    assert_int_equal(sh__config_int(c, "chat.max-message-length"), 42);
    setenv("STREAMHUB_CHAT_MAX_MESSAGE_LENGTH", "4200", 1);
    assert_int_equal(sh_config_load_env(c, err, sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "STREAMHUB_CHAT_MAX_MESSAGE_LENGTH"));
    unsetenv("STREAMHUB_CHAT_MAX_MESSAGE_LENGTH");
}

static void test_describe_and_dup(void **state)
{
    sh_config_t *c = *state, *d = NULL;
    const char *name, *def, *doc;
    size_t i = 0;

    while (sh_config_describe(i, &name, &def, &doc) == SH_OK) {
        assert_non_null(name);
        assert_non_null(def);
        assert_true(strlen(doc) > 0);
        i++;
    }
    assert_true(i > 10);
    assert_int_equal(sh_config_set(c, "workers", "3", NULL, 0), SH_OK);
    assert_int_equal(sh_config_dup(c, &d), SH_OK);
    assert_int_equal(sh__config_int(d, "workers"), 3);
    sh_config_free(d);
    sh_config_free(NULL);
}

static void test_errors_have_names(void **state)
{
    (void)state;
    for (int e = 0; e <= SH_EEMPTY; e++) {
        assert_string_not_equal(sh_strerror((sh_err_t)e), "unknown error");
        assert_string_not_equal(sh_err_name((sh_err_t)e), "SH_UNKNOWN");
    }
    assert_string_equal(sh_strerror((sh_err_t)9999), "unknown error");
    assert_string_equal(sh_strerror((sh_err_t)-1), "unknown error");
    assert_string_equal(sh_version(), SH_VERSION_STRING);
    assert_int_equal(sh_version_number(), SH_VERSION_NUMBER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_name_the_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_get_buffer_sizes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_errbuf_truncates_safely, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_and_dup, setup,
                                        teardown),
        cmocka_unit_test(test_errors_have_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
