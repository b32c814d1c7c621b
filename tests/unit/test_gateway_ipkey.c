/* tests/unit/test_gateway_ipkey.c: the key of the gateway's per-IP limits
 * (sh__ip_key) and the bound of the table of buckets it feeds.
 *
 * Loopback has one IPv6 address, so rotation within a /64 cannot be shown
 * through a real socket: the addresses are built here and go through the
 * same key function and the same limiter the gateway uses per request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "gateway/gw.h"

#define T0 1000000LL

static char *key6(const char *addr, char out[64])
{
    struct sockaddr_in6 s6;

    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, addr, &s6.sin6_addr), 1);
    return sh__ip_key((struct sockaddr *)&s6, out, 64);
}

static void test_ipv4_is_the_address(void **state)
{
    struct sockaddr_in s4;
    char k[64];

    (void)state;
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, "203.0.113.7", &s4.sin_addr), 1);
    assert_string_equal(sh__ip_key((struct sockaddr *)&s4, k, sizeof k),
                        "203.0.113.7");
}

static void test_ipv6_is_its_64(void **state)
{
    char a[64], b[64];

    (void)state;
    assert_string_equal(key6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", a),
                        "2001:db8:1:2::/64");
    assert_string_equal(key6("2001:db8:1:2::1", b), a);
    assert_string_equal(key6("2001:db8:1:2:ffff:ffff:ffff:ffff", b), a);
    /* The next /64 is another client. */
    assert_string_equal(key6("2001:db8:1:3::1", b), "2001:db8:1:3::/64");
    assert_string_equal(key6("::1", b), "::/64");
}

static void test_v4_mapped_is_ipv4(void **state)
{
    char k[64];

    (void)state;
    assert_string_equal(key6("::ffff:198.51.100.9", k), "198.51.100.9");
}

static void test_small_or_odd_output(void **state)
{
    struct sockaddr sa;
    char k[8] = "junk";

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    assert_string_equal(sh__ip_key(&sa, k, sizeof k), "");
    /* Cut, never overrun, when the buffer is short. */
    assert_int_equal(strlen(key6("2001:db8:1:2::1", (char[64]){ 0 })), 17);
    {
        struct sockaddr_in6 s6;
        char tiny[6];
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8:1:2::1", &s6.sin6_addr);
        assert_string_equal(sh__ip_key((struct sockaddr *)&s6, tiny,
                                       sizeof tiny), "2001:");
    }
}

/* A client rotating through 100,000 addresses of its /64 meets one
 * bucket: past the burst it is refused, and the table holds one key. */
static void test_rotating_within_a_64_meets_one_bucket(void **state)
{
    struct sh__limiter *l = sh__limiter_new(10, 10, 1000);
    int taken = 0;

    (void)state;
    assert_non_null(l);
    for (unsigned i = 0; i < 100000; i++) {
        char addr[64], k[64];
        snprintf(addr, sizeof addr, "2001:db8:7:8:%x:%x:%x:%x", i >> 16,
                 i & 0xffff, (i * 7) & 0xffff, (i * 13) & 0xffff);
        key6(addr, k);
        taken += sh__limiter_take(l, k, strlen(k), 1, T0, NULL);
    }
    assert_int_equal(taken, 10);
    assert_int_equal(sh__limiter_count(l), 1);
    sh__limiter_free(l);
}

/* Many /64s (a client with a larger prefix, or many clients): the table
 * of buckets stays at its cap, and a fresh key still gets a bucket. */
static void test_bucket_table_is_capped(void **state)
{
    struct sh__limiter *l = sh__limiter_new(10, 10, 1024);
    char k[64];

    (void)state;
    assert_non_null(l);
    for (unsigned i = 0; i < 200000; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, "2001:db8:%x:%x::1", i >> 16,
                 i & 0xffff);
        key6(addr, k);
        assert_true(sh__limiter_take(l, k, strlen(k), 1, T0 + i, NULL));
        assert_true(sh__limiter_count(l) <= 1024);
    }
    assert_true(sh__limiter_count(l) <= 1024);
    assert_true(sh__limiter_count(l) >= 512);
    key6("2001:db8:ffff:ffff::1", k);
    assert_true(sh__limiter_take(l, k, strlen(k), 1, T0 + 200000, NULL));
    sh__limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_is_the_address),
        cmocka_unit_test(test_ipv6_is_its_64),
        cmocka_unit_test(test_v4_mapped_is_ipv4),
        cmocka_unit_test(test_small_or_odd_output),
        cmocka_unit_test(test_rotating_within_a_64_meets_one_bucket),
        cmocka_unit_test(test_bucket_table_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
