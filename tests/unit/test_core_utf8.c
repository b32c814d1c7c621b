/* tests/unit/test_core_utf8.c: strict UTF-8 checks, incremental feeding,
 * counting, control character stripping and the comparison fold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8_int.h"

#define U(s) ((const uint8_t *)(s))

struct sample {
    const char *bytes;
    size_t len;
};
#define S(lit) { lit, sizeof(lit) - 1 }

/* Valid: boundaries of each length class (Kuhn's test, sections 2.1-2.3). */
static const struct sample valid[] = {
    S(""), S("a"), S("\x00"), S("\x7f"), S("\xc2\x80"), S("\xdf\xbf"),
    S("\xe0\xa0\x80"), S("\xed\x9f\xbf"), S("\xee\x80\x80"),
    S("\xef\xbf\xbd"), S("\xef\xbf\xbf"), S("\xf0\x90\x80\x80"),
    S("\xf4\x8f\xbf\xbf"), S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    S("a\x00" "b"), S("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"),
};

/* Invalid (Kuhn sections 3-5): lone continuations, lone leads, truncated
 * sequences, impossible bytes, overlongs, surrogates, > U+10FFFF, 5 and 6
 * byte forms. */
static const struct sample invalid[] = {
    S("\x80"), S("\xbf"), S("\x80\xbf"), S("\xc0"), S("\xc2"), S("\xc2 "),
    S("\xe0\x80"), S("\xe1\x80"), S("\xf0\x90\x80"), S("\xfe"), S("\xff"),
    S("\xfe\xfe\xff\xff"), S("\xc0\xaf"), S("\xc1\xbf"), S("\xe0\x80\xaf"),
    S("\xe0\x9f\xbf"), S("\xf0\x80\x80\xaf"), S("\xf0\x8f\xbf\xbf"),
    S("\xf8\x80\x80\x80\xaf"), S("\xfc\x80\x80\x80\x80\xaf"),
    S("\xc0\x80"), S("\xe0\x80\x80"),
    S("\xed\xa0\x80"), S("\xed\xad\xbf"), S("\xed\xae\x80"),
    S("\xed\xaf\xbf"), S("\xed\xb0\x80"), S("\xed\xbf\xbf"),
    S("\xed\xa0\x80\xed\xb0\x80"), S("\xf4\x90\x80\x80"),
    S("\xf5\x80\x80\x80"), S("\xf7\xbf\xbf\xbf"),
    S("\xfb\xbf\xbf\xbf\xbf"), S("\xfd\xbf\xbf\xbf\xbf\xbf"),
    S("ok\xce\xba\xe1\xbd"), S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce"),
    S("\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41"),
};

static void test_validate_samples(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_true(sh__utf8_validate(U(valid[i].bytes), valid[i].len));
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_false(sh__utf8_validate(U(invalid[i].bytes),
                                       invalid[i].len));
    assert_true(sh__utf8_validate(NULL, 0));
}

/* Every code point U+0000..U+10FFFF encodes to valid UTF-8 except the
 * surrogates; and a validator that agrees with an encoder on all of them
 * has no hole in the range tables. */
static void test_validate_every_code_point(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | (cp >> 6));
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (cp >> 12));
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (cp >> 18));
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (sh__utf8_validate(b, n) == surrogate)
            fail_msg("U+%04X misjudged", cp);
        /* every proper prefix is unfinished, not invalid */
        for (size_t k = 1; k < n && !surrogate; k++) {
            struct sh__utf8_state st = { 0 };
            assert_int_equal(sh__utf8_feed(&st, b, k, NULL),
                             SH__UTF8_NEED_MORE);
        }
    }
}

/* Exhaustive over two bytes: the DFA matches a direct decode. */
static void test_validate_all_two_byte_inputs(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s[2] = { (uint8_t)a, (uint8_t)b };
            bool expect = (a < 0x80 && b < 0x80) ||
                          (a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF);
            assert_int_equal(sh__utf8_validate(s, 2), expect);
        }
}

/* Feeding any split of a text gives the same verdict as the whole. */
static void test_feed_every_cut(void **state)
{
    (void)state;
    const struct sample *sets[2] = { valid, invalid };
    size_t counts[2] = { sizeof valid / sizeof valid[0],
                         sizeof invalid / sizeof invalid[0] };
    for (int v = 0; v < 2; v++)
        for (size_t i = 0; i < counts[v]; i++) {
            const uint8_t *s = U(sets[v][i].bytes);
            size_t n = sets[v][i].len;
            for (size_t cut = 0; cut <= n; cut++) {
                struct sh__utf8_state st;
                sh__utf8_init(&st);
                enum sh__utf8_status r = sh__utf8_feed(&st, s, cut, NULL);
                if (r != SH__UTF8_INVALID)
                    r = sh__utf8_feed(&st, s + cut, n - cut, NULL);
                assert_int_equal(r == SH__UTF8_OK, v == 0);
            }
            /* one byte at a time */
            struct sh__utf8_state st = { 0 };
            enum sh__utf8_status r = SH__UTF8_OK;
            for (size_t k = 0; k < n && r != SH__UTF8_INVALID; k++)
                r = sh__utf8_feed(&st, s + k, 1, NULL);
            assert_int_equal(r == SH__UTF8_OK, v == 0);
        }
}

/* The first bad byte is reported, across a fragment boundary too, and the
 * state stays invalid afterwards. */
static void test_feed_fails_fast(void **state)
{
    (void)state;
    struct sh__utf8_state st = { 0 };
    size_t bad = 99;

    /* surrogate split: ED | A0 80 */
    assert_int_equal(sh__utf8_feed(&st, U("abc\xed"), 4, &bad),
                     SH__UTF8_NEED_MORE);
    assert_int_equal(sh__utf8_feed(&st, U("\xa0\x80zzz"), 5, &bad),
                     SH__UTF8_INVALID);
    assert_int_equal(bad, 0);
    assert_int_equal(sh__utf8_feed(&st, U("ok"), 2, &bad),
                     SH__UTF8_INVALID);

    sh__utf8_init(&st);
    assert_int_equal(sh__utf8_feed(&st, U("0123456789abcdef\xc0zz"), 19,
                                   &bad), SH__UTF8_INVALID);
    assert_int_equal(bad, 16);
    sh__utf8_init(&st);
    /* overlong 4-byte: F0 then 8F is already impossible */
    assert_int_equal(sh__utf8_feed(&st, U("\xf0\x8f"), 2, &bad),
                     SH__UTF8_INVALID);
    assert_int_equal(bad, 1);
}

static void test_count(void **state)
{
    (void)state;
    assert_int_equal(sh__utf8_count(U(""), 0), 0);
    assert_int_equal(sh__utf8_count(U("abc"), 3), 3);
    assert_int_equal(sh__utf8_count(U("a\x00" "b"), 3), 3);
    /* κόσμε: 5 code points in 11 bytes */
    assert_int_equal(sh__utf8_count(U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc"
                                      "\xce\xb5"), 11), 5);
    /* family emoji: man ZWJ woman = 3 code points */
    assert_int_equal(sh__utf8_count(U("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f"
                                      "\x91\xa9"), 11), 3);
}

static void check_strip(const char *in, size_t n, const char *want,
                        size_t want_len)
{
    uint8_t out[256];
    memset(out, 0xAA, sizeof out);
    size_t got = sh__utf8_strip_cc(U(in), n, out);
    assert_int_equal(got, want_len);
    assert_memory_equal(out, want, want_len);
}

static void test_strip_cc(void **state)
{
    (void)state;
    check_strip("", 0, "", 0);
    check_strip("hello", 5, "hello", 5);
    check_strip("a\nb\r\tc\x00" "d\x1f\x7f", 11, "abcd", 4);
    /* C1 controls U+0080, U+009F go; U+00A0 (NBSP) stays */
    check_strip("x\xc2\x80y\xc2\x9fz\xc2\xa0", 9, "xyz\xc2\xa0", 5);
    /* ZWJ emoji sequence kept byte for byte */
    const char fam[] = "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80"
                       "\x8d\xf0\x9f\x91\xa7";
    check_strip(fam, sizeof fam - 1, fam, sizeof fam - 1);
    /* RLO (format, Cf) is not Cc: kept */
    check_strip("a\xe2\x80\xae" "b", 5, "a\xe2\x80\xae" "b", 5);
    /* all controls: empty result */
    check_strip("\n\n\r", 3, "", 0);
    /* invalid bytes are passed through, not decoded */
    check_strip("a\xc2", 2, "a\xc2", 2);
}

static void check_fold(const char *in, size_t n, const char *want,
                       size_t want_len)
{
    uint8_t out[256];
    size_t got = sh__utf8_fold_for_match(U(in), n, out);
    assert_true(got <= n);
    assert_int_equal(got, want_len);
    assert_memory_equal(out, want, want_len);
}
#define FOLD(in, want) check_fold(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_fold(void **state)
{
    (void)state;
    FOLD("", "");
    FOLD("bad\xe2\x80\x8bword", "badword");         /* ZWSP */
    FOLD("BaD\xc2\xad" "WoRd", "badword");          /* soft hyphen */
    FOLD("b\xef\xbb\xbf" "a\xe2\x81\xa0" "d", "bad"); /* BOM, WJ */
    FOLD("x\xf3\xa0\x80\x81y", "xy");               /* TAG U+E0001 */
    FOLD("a\xef\xb8\x8f" "b", "ab");                /* VS16 */
    FOLD("\xc3\x80\xc3\x9e\xc3\x97", "\xc3\xa0\xc3\xbe\xc3\x97"); /* ÀÞ× */
    FOLD("\xc5\xb8", "\xc3\xbf");                   /* Ÿ -> ÿ */
    FOLD("\xc4\xb0", "i");                          /* İ -> i */
    FOLD("\xc4\x80\xc4\x81\xc5\x81", "\xc4\x81\xc4\x81\xc5\x82"); /* Ā ā Ł */
    FOLD("\xce\xa3\xce\x91\xce\x86", "\xcf\x83\xce\xb1\xce\xac"); /* ΣΑΆ */
    FOLD("\xd0\x81\xd0\x96\xd0\xaf", "\xd1\x91\xd0\xb6\xd1\x8f"); /* ЁЖЯ */
    FOLD("\xd3\x80", "\xd3\x8f");                   /* Ӏ -> ӏ */
    /* outside the tables: unchanged (fullwidth A, Armenian Ա) */
    FOLD("\xef\xbc\xa1\xd4\xb1", "\xef\xbc\xa1\xd4\xb1");
    /* ZWJ is ignorable: emoji sequences fold to their parts */
    FOLD("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9",
         "\xf0\x9f\x91\xa8\xf0\x9f\x91\xa9");
    /* embedded NUL is not ignorable */
    FOLD("A\x00" "B", "a\x00" "b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_samples),
        cmocka_unit_test(test_validate_every_code_point),
        cmocka_unit_test(test_validate_all_two_byte_inputs),
        cmocka_unit_test(test_feed_every_cut),
        cmocka_unit_test(test_feed_fails_fast),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_strip_cc),
        cmocka_unit_test(test_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
