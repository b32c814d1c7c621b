/* tests/unit/test_core_cidr.c: the address blocks of trusted-proxies
 * (sh__cidr_list_parse, sh__cidr_match) and the forwarded-hop parser
 * (sh__ip_parse) that the gateway walks X-Forwarded-For with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/cidr_int.h"

/* True when @addr (text) falls in the list parsed from @spec. */
static bool in(const char *spec, const char *addr)
{
    struct sockaddr_storage ss;
    struct sh__cidr *list;
    size_t n;
    bool r;

    assert_int_equal(sh__cidr_list_parse(spec, &list, &n, NULL, 0), SH_OK);
    assert_true(sh__ip_parse(addr, strlen(addr), &ss));
    r = sh__cidr_match(list, n, (struct sockaddr *)&ss);
    free(list);
    return r;
}

static void test_blocks_match_by_prefix(void **state)
{
    (void)state;
    assert_true(in("10.0.0.0/8", "10.200.3.4"));
    assert_false(in("10.0.0.0/8", "11.0.0.1"));
    assert_true(in("192.168.1.128/25", "192.168.1.200"));
    assert_false(in("192.168.1.128/25", "192.168.1.127"));
    assert_true(in("127.0.0.1", "127.0.0.1"));
    assert_false(in("127.0.0.1", "127.0.0.2"));
    assert_true(in("0.0.0.0/0", "203.0.113.9"));
    assert_true(in(" 10.0.0.1 , 2001:db8::/32 ", "2001:db8:ffff::1"));
    assert_false(in("2001:db8::/32", "2001:db9::1"));
    /* Host bits in the block are ignored, as the kernel's routes do. */
    assert_true(in("10.1.2.3/16", "10.1.200.200"));
    /* A v4-mapped block and a v4 peer, and the other way round. */
    assert_true(in("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_true(in("10.0.0.0/8", "::ffff:10.1.1.1"));
    /* Families never cross otherwise. */
    assert_false(in("0.0.0.0/0", "::1"));
    assert_false(in("::/0", "127.0.0.1"));
}

static void test_bad_lists_are_refused(void **state)
{
    const char *bad[] = { "10.0.0.0/33", "::/129", "10.0.0.0/", "x",
                          "10.0.0.1,", ",10.0.0.1", "10.0.0.1,,10.0.0.2",
                          "10.0.0.0/8x", "10.0.0.0/-1", "::ffff:1.2.3.4/95",
                          "1.2.3.4:80" };
    struct sh__cidr *list;
    size_t n;
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sh__cidr_list_parse(bad[i], &list, &n, err,
                                             sizeof err), SH_EINVAL);
        assert_null(list);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "not an IP address"));
    }
    assert_int_equal(sh__cidr_list_parse("  ", &list, &n, NULL, 0), SH_OK);
    assert_null(list);
    assert_int_equal(n, 0);
}

static void test_forwarded_hops(void **state)
{
    const char *good[][2] = {
        { "203.0.113.9", "203.0.113.9" },
        { " 203.0.113.9\t", "203.0.113.9" },
        { "203.0.113.9:4711", "203.0.113.9" },
        { "2001:db8::7", "2001:db8::7" },
        { "[2001:db8::7]", "2001:db8::7" },
        { "[2001:db8::7]:443", "2001:db8::7" },
        { "::ffff:198.51.100.1", "198.51.100.1" },
    };
    const char *bad[] = { "", "unknown", "_hidden", "[2001:db8::7",
                          "[2001:db8::7]x", "1.2.3", "1.2.3.4.5",
                          "203.0.113.9:80:80" };
    struct sockaddr_storage ss;
    char text[INET6_ADDRSTRLEN];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(sh__ip_parse(good[i][0], strlen(good[i][0]), &ss));
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text,
                      sizeof text);
        else
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
                      text, sizeof text);
        assert_string_equal(text, good[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(sh__ip_parse(bad[i], strlen(bad[i]), &ss));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_match_by_prefix),
        cmocka_unit_test(test_bad_lists_are_refused),
        cmocka_unit_test(test_forwarded_hops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
