/* tests/unit/test_graphql_lexer.c: tokens, numbers, strings, block
 * strings, escapes, locations, UTF-8 and hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graphql/graphql_int.h"

struct lex {
    struct sh__gql_arena *arena;
    struct sh__gql_lexer lx;
};

static void lex_start(struct lex *l, const char *src, size_t len)
{
    l->arena = sh__gql_arena_new();
    assert_non_null(l->arena);
    assert_int_equal(sh__gql_utf8_check(src, len), len);
    sh__gql_lexer_init(&l->lx, src, len, l->arena);
}

static void lex_end(struct lex *l)
{
    sh__gql_arena_free(l->arena);
}

/* Lex all of @src; returns the kinds (up to 64) and the count, or -1 on a
 * lexing error (message in l->lx.msg). */
static int lex_all(const char *src, size_t len, enum sh__gql_tok *kinds,
                   char *msg, size_t msglen, struct sh__gql_loc *err)
{
    struct lex l;
    int n = 0;
    lex_start(&l, src, len);
    for (;;) {
        if (!sh__gql_lexer_advance(&l.lx)) {
            if (msg != NULL)
                snprintf(msg, msglen, "%s", l.lx.msg);
            if (err != NULL)
                *err = l.lx.err_loc;
            lex_end(&l);
            return -1;
        }
        if (l.lx.tok.kind == SH__GQL_TOK_EOF)
            break;
        if (kinds != NULL && n < 64)
            kinds[n] = l.lx.tok.kind;
        n++;
    }
    lex_end(&l);
    return n;
}

/* The single token of @src (a string or number), which must lex. */
static void one_token(const char *src, enum sh__gql_tok kind,
                      const char *value, size_t vlen)
{
    struct lex l;
    lex_start(&l, src, strlen(src));
    assert_true(sh__gql_lexer_advance(&l.lx));
    assert_int_equal(l.lx.tok.kind, kind);
    assert_int_equal(l.lx.tok.len, vlen);
    assert_memory_equal(l.lx.tok.value, value, vlen);
    assert_true(sh__gql_lexer_advance(&l.lx));
    assert_int_equal(l.lx.tok.kind, SH__GQL_TOK_EOF);
    lex_end(&l);
}

static void lex_error(const char *src, size_t len, const char *want,
                      uint32_t line, uint32_t col)
{
    char msg[200] = "";
    struct sh__gql_loc loc = { 0, 0 };
    assert_int_equal(lex_all(src, len, NULL, msg, sizeof msg, &loc), -1);
    assert_string_equal(msg, want);
    assert_int_equal(loc.line, line);
    assert_int_equal(loc.column, col);
}

static void test_punctuators_and_ignored(void **state)
{
    (void)state;
    const char src[] = "\xEF\xBB\xBF ! $ & ( ) ... : = @ [ ] { | } # c\n"
                       ",,,\tname\r\n";
    enum sh__gql_tok k[64];
    enum sh__gql_tok want[] = {
        SH__GQL_TOK_BANG, SH__GQL_TOK_DOLLAR, SH__GQL_TOK_AMP,
        SH__GQL_TOK_PAREN_L, SH__GQL_TOK_PAREN_R, SH__GQL_TOK_SPREAD,
        SH__GQL_TOK_COLON, SH__GQL_TOK_EQUALS, SH__GQL_TOK_AT,
        SH__GQL_TOK_BRACKET_L, SH__GQL_TOK_BRACKET_R, SH__GQL_TOK_BRACE_L,
        SH__GQL_TOK_PIPE, SH__GQL_TOK_BRACE_R, SH__GQL_TOK_NAME };
    int n = lex_all(src, sizeof src - 1, k, NULL, 0, NULL);
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n; i++)
        assert_int_equal(k[i], want[i]);
    assert_int_equal(lex_all("", 0, NULL, NULL, 0, NULL), 0);
    assert_int_equal(lex_all("# only a comment", 16, NULL, NULL, 0, NULL),
                     0);
    lex_error("..", 2, "Unexpected character: \".\".", 1, 1);
    lex_error("?", 1, "Unexpected character: \"?\".", 1, 1);
    lex_error("'a'", 3, "Unexpected single quote character ('), did you "
              "mean to use a double quote (\")?", 1, 1);
    lex_error("a \xC3\xA9", 4, "Unexpected character: U+00E9.", 1, 3);
}

static void test_numbers(void **state)
{
    (void)state;
    one_token("0", SH__GQL_TOK_INT, "0", 1);
    one_token("-0", SH__GQL_TOK_INT, "-0", 2);
    one_token("2147483648", SH__GQL_TOK_INT, "2147483648", 10);
    one_token("1.5", SH__GQL_TOK_FLOAT, "1.5", 3);
    one_token("-1.5e+10", SH__GQL_TOK_FLOAT, "-1.5e+10", 8);
    one_token("1E3", SH__GQL_TOK_FLOAT, "1E3", 3);
    lex_error("01", 2, "Invalid number, unexpected digit after 0: \"1\".", 1,
              2);
    lex_error("1a", 2, "Invalid number, expected digit but got: \"a\".", 1, 2);
    lex_error("1.", 2, "Invalid number, expected digit but got: <EOF>.", 1,
              3);
    lex_error("1.x", 3, "Invalid number, expected digit but got: \"x\".", 1,
              3);
    lex_error("1.5.5", 5, "Invalid number, expected digit but got: \".\".",
              1, 4);
    lex_error("1e", 2, "Invalid number, expected digit but got: <EOF>.", 1,
              3);
    lex_error("-", 1, "Invalid number, expected digit but got: <EOF>.", 1,
              2);
    lex_error("0x1", 3, "Invalid number, expected digit but got: \"x\".", 1,
              2);
    lex_error("1_", 2, "Invalid number, expected digit but got: \"_\".", 1,
              2);
}

static void test_strings_and_escapes(void **state)
{
    (void)state;
    one_token("\"\"", SH__GQL_TOK_STRING, "", 0);
    one_token("\"a b\"", SH__GQL_TOK_STRING, "a b", 3);
    one_token("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", SH__GQL_TOK_STRING,
              "\" \\ / \b \f \n \r \t", 15);
    one_token("\"\\u00e9\"", SH__GQL_TOK_STRING, "\xC3\xA9", 2);
    one_token("\"\\u{1F600}\"", SH__GQL_TOK_STRING, "\xF0\x9F\x98\x80", 4);
    one_token("\"\\u{00000041}\"", SH__GQL_TOK_STRING, "A", 1);
    lex_error("\"\\u{000000041}\"", 15, "Invalid Unicode escape sequence: "
              "\"\\u{000000041\".", 1, 2);
    /* a valid surrogate pair is one code point */
    one_token("\"\\uD83D\\uDE00\"", SH__GQL_TOK_STRING, "\xF0\x9F\x98\x80",
              4);
    /* NUL inside a string is a Unicode scalar value: kept, with a length */
    one_token("\"a\\u0000b\"", SH__GQL_TOK_STRING, "a\0b", 3);
    one_token("\"\xF0\x9F\x98\x80\"", SH__GQL_TOK_STRING, "\xF0\x9F\x98\x80",
              4);
    /* lone surrogates are errors (September 2025 edition) */
    lex_error("\"\\uD83D\"", 8, "Invalid Unicode escape sequence: "
              "\"\\uD83D\".", 1, 2);
    lex_error("\"\\uDE00\"", 8, "Invalid Unicode escape sequence: "
              "\"\\uDE00\".", 1, 2);
    lex_error("\"\\uD83Dx\"", 9, "Invalid Unicode escape sequence: "
              "\"\\uD83D\".", 1, 2);
    lex_error("\"\\uD83D\\u0041\"", 14, "Invalid Unicode escape sequence: "
              "\"\\uD83D\".", 1, 2);
    lex_error("\"\\u{D800}\"", 10, "Invalid Unicode escape sequence: "
              "\"\\u{D800}\".", 1, 2);
    lex_error("\"\\u{110000}\"", 12, "Invalid Unicode escape sequence: "
              "\"\\u{110000}\".", 1, 2);
    lex_error("\"\\u{}\"", 6, "Invalid Unicode escape sequence: \"\\u{}\".",
              1, 2);
    lex_error("\"\\u12\"", 6, "Invalid Unicode escape sequence: "
              "\"\\u12\"\".", 1, 2);
    lex_error("\"\\x\"", 4, "Invalid character escape sequence: \"\\x\".", 1,
              2);
    lex_error("\"\\\xC3\xA9\"", 5, "Invalid character escape sequence: "
              "\"\\\xC3\xA9\".", 1, 2);
    lex_error("\"\\u{\xF0\x9F\x98\x80}\"", 10, "Invalid Unicode escape "
              "sequence: \"\\u{\xF0\x9F\x98\x80\".", 1, 2);
    lex_error("\"abc", 4, "Unterminated string.", 1, 5);
    lex_error("\"a\nb\"", 5, "Unterminated string.", 1, 3);
    lex_error("\"\\", 2, "Invalid character escape sequence: \"\\\".", 1, 2);
}

static void block(const char *src, const char *want)
{
    one_token(src, SH__GQL_TOK_BLOCK_STRING, want, strlen(want));
}

static void test_block_strings(void **state)
{
    (void)state;
    /* the spec's example (2.9.4) */
    block("\"\"\"\n    Hello,\n      World!\n\n    Yours,\n      GraphQL.\n"
          "  \"\"\"", "Hello,\n  World!\n\nYours,\n  GraphQL.");
    block("\"\"\"  white space  \"\"\"", "  white space  ");
    block("\"\"\"contains \\\"\"\" triple quote\"\"\"",
          "contains \"\"\" triple quote");
    block("\"\"\"\n\n  first\n   second\n\n\"\"\"", "first\n second");
    block("\"\"\"\r\n  a\r\n  b\r  c\"\"\"", "a\nb\nc");
    block("\"\"\"\"\"\"", "");
    block("\"\"\"   \n  \t \n\"\"\"", "");
    block("\"\"\"first line\n    indented\n  less\"\"\"",
          "first line\n  indented\nless");
    block("\"\"\"\\n is not an escape\"\"\"", "\\n is not an escape");
    lex_error("\"\"\"abc", 6, "Unterminated string.", 1, 7);
    lex_error("\"\"\"abc\\\"\"\"", 10, "Unterminated string.", 1, 11);
}

static void test_block_string_value_direct(void **state)
{
    (void)state;
    char out[64];
    const char raw[] = "\n    a\n      b\n    ";
    size_t n = sh__gql_block_string_value(raw, sizeof raw - 1, out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "a\n  b", 5);
    assert_int_equal(sh__gql_block_string_value("", 0, out), 0);
}

static void test_locations_utf16(void **state)
{
    (void)state;
    struct lex l;
    /* "😀" counts two UTF-16 units, "é" one; \r\n and \r end lines */
    const char src[] = "\"\xF0\x9F\x98\x80\" x \"\xC3\xA9\" y\r\n z\r w\n  v";
    uint32_t want[][2] = { { 1, 1 }, { 1, 6 }, { 1, 8 }, { 1, 12 },
                           { 2, 2 }, { 3, 2 }, { 4, 3 } };
    lex_start(&l, src, sizeof src - 1);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_true(sh__gql_lexer_advance(&l.lx));
        assert_int_equal(l.lx.tok.loc.line, want[i][0]);
        assert_int_equal(l.lx.tok.loc.column, want[i][1]);
    }
    lex_end(&l);
}

static void test_lookahead(void **state)
{
    (void)state;
    struct lex l;
    lex_start(&l, "a \"s\" b", 7);
    assert_true(sh__gql_lexer_advance(&l.lx));
    const struct sh__gql_token *t = sh__gql_lexer_lookahead(&l.lx);
    assert_non_null(t);
    assert_int_equal(t->kind, SH__GQL_TOK_STRING);
    assert_int_equal(l.lx.tok.kind, SH__GQL_TOK_NAME);
    assert_true(sh__gql_lexer_advance(&l.lx));
    assert_int_equal(l.lx.tok.kind, SH__GQL_TOK_STRING);
    assert_true(sh__gql_lexer_advance(&l.lx));
    assert_int_equal(l.lx.tok.kind, SH__GQL_TOK_NAME);
    assert_memory_equal(l.lx.tok.value, "b", 1);
    lex_end(&l);
}

static void test_nul_and_controls(void **state)
{
    (void)state;
    lex_error("a\0b", 3, "Unexpected character: U+0000.", 1, 2);
    lex_error("\x01", 1, "Unexpected character: U+0001.", 1, 1);
    lex_error("\x7F", 1, "Unexpected character: U+007F.", 1, 1);
}

static void test_utf8_check(void **state)
{
    (void)state;
    assert_int_equal(sh__gql_utf8_check("abc", 3), 3);
    assert_int_equal(sh__gql_utf8_check("\xC3\xA9", 2), 2);
    assert_int_equal(sh__gql_utf8_check("\xF4\x8F\xBF\xBF", 4), 4);
    assert_int_equal(sh__gql_utf8_check("a\xC3\x28", 3), 1);      /* bad */
    assert_int_equal(sh__gql_utf8_check("\xC0\x80", 2), 0);        /* long */
    assert_int_equal(sh__gql_utf8_check("\xE0\x80\x80", 3), 0);    /* long */
    assert_int_equal(sh__gql_utf8_check("\xED\xA0\x80", 3), 0);    /* surr */
    assert_int_equal(sh__gql_utf8_check("\xF4\x90\x80\x80", 4), 0);/* big */
    assert_int_equal(sh__gql_utf8_check("ab\xE2\x82", 4), 2);      /* cut */
    assert_int_equal(sh__gql_utf8_check("\xFF", 1), 0);
    assert_int_equal(sh__gql_utf8_check("\x80", 1), 0);
    assert_int_equal(sh__gql_utf8_check("", 0), 0);
}

/* Every prefix of a rich document lexes or fails cleanly (ASan watches
 * the reads: each prefix is copied into a buffer of its exact size). */
static void test_every_prefix(void **state)
{
    (void)state;
    const char src[] = "query Q($a: [Int!] = [1, -2.5e3]) { f(s: \"x\\u00e9"
                       "\\uD83D\\uDE00\\u{41}\", b: \"\"\"\n  blk \\\"\"\"\n"
                       "\"\"\") @d ...F ... on T { g } } # end";
    for (size_t n = 0; n <= sizeof src - 1; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, src, n);
        if (sh__gql_utf8_check(copy, n) == n)
            (void)lex_all(copy, n, NULL, NULL, 0, NULL);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_punctuators_and_ignored),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings_and_escapes),
        cmocka_unit_test(test_block_strings),
        cmocka_unit_test(test_block_string_value_direct),
        cmocka_unit_test(test_locations_utf16),
        cmocka_unit_test(test_lookahead),
        cmocka_unit_test(test_nul_and_controls),
        cmocka_unit_test(test_utf8_check),
        cmocka_unit_test(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
