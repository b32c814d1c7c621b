/* tests/unit/test_gateway_native_cmd.c: the native protocol's commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/native_cmd.h"

static enum sh__native_verdict parse(const char *s, struct sh__native_cmd *c,
                                     const char **why)
{
    return sh__native_parse(s, strlen(s), c, why);
}

static void test_not_an_object_closes(void **state)
{
    static const char *bad[] = {
        "", " ", "[1]", "1", "\"s\"", "null", "{", "{\"id\":1,",
        "{\"id\":1} x", "{\"id\":1}{}", "{\"a\":\"\xc3\x28\"}",
    };
    struct sh__native_cmd c;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], &c, &why), SH__NATIVE_CLOSE);
        sh__native_cmd_clear(&c);
    }
    /* Nesting past 64 levels is not one object we accept. */
    char deep[300];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"a\":", 5);
    deep[sizeof deep - 1] = '\0';
    assert_int_equal(parse(deep, &c, &why), SH__NATIVE_CLOSE);
    sh__native_cmd_clear(&c);
}

static void test_missing_fields_reply(void **state)
{
    static const struct {
        const char *text, *why;
        bool has_id;
    } cases[] = {
        { "{}", "id", false },
        { "{\"id\":\"1\",\"op\":\"ping\"}", "id", false },
        { "{\"id\":1.5,\"op\":\"ping\"}", "id", false },
        { "{\"id\":1}", "op", true },
        { "{\"id\":1,\"op\":\"fly\"}", "unknown op", true },
        { "{\"id\":1,\"op\":\"auth\"}", "token", true },
        { "{\"id\":1,\"op\":\"auth\",\"token\":5}", "token", true },
        { "{\"id\":1,\"op\":\"subscribe\"}", "channel", true },
        { "{\"id\":1,\"op\":\"subscribe\",\"channel\":\"live\","
          "\"since\":{\"epoch\":\"e\",\"offset\":-1}}", "since", true },
        { "{\"id\":1,\"op\":\"subscribe\",\"channel\":\"live\","
          "\"since\":{\"offset\":1}}", "since", true },
        { "{\"id\":1,\"op\":\"chat.send\",\"streamId\":\"s\"}", "text",
          true },
        { "{\"id\":1,\"op\":\"publish\",\"channel\":\"app:x\"}", "data",
          true },
    };
    struct sh__native_cmd c;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse(cases[i].text, &c, &why), SH__NATIVE_REPLY);
        if (strstr(why, cases[i].why) == NULL)
            fail_msg("%s: '%s' lacks '%s'", cases[i].text, why, cases[i].why);
        assert_int_equal(c.id != NULL, cases[i].has_id);
        sh__native_cmd_clear(&c);
    }
}

static void test_commands(void **state)
{
    struct sh__native_cmd c;
    const char *why;

    (void)state;
    assert_int_equal(parse("{\"id\":7,\"op\":\"subscribe\",\"channel\":"
                           "\"chat:abc\",\"since\":{\"epoch\":\"a1b2\","
                           "\"offset\":41}}", &c, &why), SH__NATIVE_OK);
    assert_int_equal(c.op, SH__OP_SUBSCRIBE);
    assert_string_equal(c.channel, "chat:abc");
    assert_true(c.has_since);
    assert_string_equal(c.since.epoch, "a1b2");
    assert_int_equal(c.since.offset, 41);
    assert_int_equal(json_object_get_int(c.id), 7);
    sh__native_cmd_clear(&c);

    /* A NUL inside the text survives with its length. */
    assert_int_equal(parse("{\"id\":1,\"op\":\"chat.send\",\"streamId\":\"s\","
                           "\"text\":\"a\\u0000b\"}  \n", &c, &why),
                     SH__NATIVE_OK);
    assert_int_equal(c.text_len, 3);
    assert_memory_equal(c.text, "a\0b", 3);
    sh__native_cmd_clear(&c);

    assert_int_equal(parse("{\"id\":2,\"op\":\"publish\",\"channel\":\"app:g\","
                           "\"data\":null,\"apiKey\":\"k\"}", &c, &why),
                     SH__NATIVE_OK);
    assert_null(c.data);       /* json-c's null: present, published as null */
    assert_string_equal(c.api_key, "k");
    assert_null(c.type);
    sh__native_cmd_clear(&c);
}

static void test_cut_at_every_byte(void **state)
{
    const char *full = "{\"id\":3,\"op\":\"auth\",\"token\":\"x.y.z\"}";
    struct sh__native_cmd c;
    const char *why;

    (void)state;
    for (size_t n = 0; n < strlen(full); n++) {
        assert_int_equal(sh__native_parse(full, n, &c, &why),
                         SH__NATIVE_CLOSE);
        sh__native_cmd_clear(&c);
    }
    assert_int_equal(parse(full, &c, &why), SH__NATIVE_OK);
    sh__native_cmd_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_an_object_closes),
        cmocka_unit_test(test_missing_fields_reply),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_cut_at_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
