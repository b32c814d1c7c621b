/* libstreamhub/graphql/lexer.c: GraphQL tokens (spec 2021, section 2).
 *
 * A hand-written scanner over a UTF-8 buffer that was checked beforehand
 * (so that decoding here cannot fail).  It follows graphql-js v16's lexer
 * rule for rule, including its error messages, with one change taken from
 * the September 2025 edition: a \\u escape of a lone surrogate is an error,
 * a valid pair decodes to one code point.  Strings are decoded into the
 * document's arena; names and numbers point into the source.
 *
 * Locations are computed incrementally (cpos/line/col move forward only),
 * so locating every token costs one pass over the source in total.
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_int.h"

static const char *const kind_desc[] = {
    "<SOF>", "<EOF>", "\"!\"", "\"$\"", "\"&\"", "\"(\"", "\")\"",
    "\"...\"", "\":\"", "\"=\"", "\"@\"", "\"[\"", "\"]\"", "\"{\"",
    "\"|\"", "\"}\"", "Name", "Int", "Float", "String", "BlockString"
};

const char *sh__gql_tok_kind_desc(enum sh__gql_tok kind)
{
    if ((size_t)kind >= sizeof kind_desc / sizeof kind_desc[0])
        return "?";
    return kind_desc[kind];
}

size_t sh__gql_utf8_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;      /* overlong */
            else if (c == 0xED)
                hi = 0x9F;      /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;      /* overlong */
            else if (c == 0xF4)
                hi = 0x8F;      /* past U+10FFFF */
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
        i += n + 1;
    }
    return len;
}

struct sh__gql_loc sh__gql_lexer_locate(struct sh__gql_lexer *lx, size_t off)
{
    const unsigned char *p = (const unsigned char *)lx->src;

    if (off > lx->len)
        off = lx->len;
    while (lx->cpos < off) {
        unsigned char c = p[lx->cpos++];
        if (c == '\n') {
            lx->line++;
            lx->col = 1;
        } else if (c == '\r') {
            if (lx->cpos < lx->len && p[lx->cpos] == '\n')
                lx->cpos++;
            lx->line++;
            lx->col = 1;
        } else if (c < 0x80 || (c >= 0xC0 && c < 0xF0)) {
            lx->col++;             /* one UTF-16 unit */
        } else if (c >= 0xF0) {
            lx->col += 2;          /* a surrogate pair in UTF-16 */
        }                          /* continuation bytes: nothing */
    }
    return (struct sh__gql_loc){ lx->line, lx->col };
}

void sh__gql_lexer_init(struct sh__gql_lexer *lx, const char *src,
                        size_t len, struct sh__gql_arena *arena)
{
    memset(lx, 0, sizeof *lx);
    lx->src = src;
    lx->len = len;
    lx->line = 1;
    lx->col = 1;
    lx->arena = arena;
    lx->tok.kind = SH__GQL_TOK_SOF;
    lx->tok.loc = (struct sh__gql_loc){ 1, 1 };
}

/* ---- helpers --------------------------------------------------------- */

static int at(const struct sh__gql_lexer *lx, size_t i)
{
    return i < lx->len ? (unsigned char)lx->src[i] : -1;
}

/* Decode the code point at @i (valid UTF-8); *n gets its length. */
static uint32_t cp_at(const struct sh__gql_lexer *lx, size_t i, size_t *n)
{
    const unsigned char *p = (const unsigned char *)lx->src + i;
    if (p[0] < 0x80) {
        *n = 1;
        return p[0];
    }
    if (p[0] < 0xE0) {
        *n = 2;
        return (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    }
    if (p[0] < 0xF0) {
        *n = 3;
        return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 |
               (p[2] & 0x3F);
    }
    *n = 4;
    return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
           (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
}

/* graphql-js printCodePointAt: "\"x\"", "'\"'", "U+00E9" or "<EOF>". */
static void print_cp(const struct sh__gql_lexer *lx, size_t i, char *out,
                     size_t len)
{
    size_t n;
    if (i >= lx->len) {
        snprintf(out, len, "<EOF>");
        return;
    }
    uint32_t c = cp_at(lx, i, &n);
    if (c == '"')
        snprintf(out, len, "'\"'");
    else if (c >= 0x20 && c <= 0x7E)
        snprintf(out, len, "\"%c\"", (char)c);
    else
        snprintf(out, len, "U+%04X", (unsigned)c);
}

static bool fail_at(struct sh__gql_lexer *lx, size_t off, const char *msg)
{
    if (!lx->failed) {
        lx->failed = true;
        snprintf(lx->msg, sizeof lx->msg, "%s", msg);
        lx->err_loc = sh__gql_lexer_locate(lx, off);
    }
    return false;
}

/* "<prefix><code point>." */
static bool fail_cp(struct sh__gql_lexer *lx, size_t off, const char *prefix)
{
    char cp[16], msg[128];
    print_cp(lx, off, cp, sizeof cp);
    snprintf(msg, sizeof msg, "%s%s.", prefix, cp);
    return fail_at(lx, off, msg);
}

/* "<prefix>\"<n source bytes>\"." */
static bool fail_slice(struct sh__gql_lexer *lx, size_t off, size_t n,
                       const char *prefix)
{
    char s[40], msg[128];
    if (off + n > lx->len)
        n = lx->len - off;
    if (n > sizeof s - 5)
        n = sizeof s - 5;
    /* end on a code point boundary: the message stays valid UTF-8 */
    while (off + n < lx->len &&
           ((unsigned char)lx->src[off + n] & 0xC0) == 0x80)
        n++;
    memcpy(s, lx->src + off, n);
    s[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            s[i] = '?';
    snprintf(msg, sizeof msg, "%s\"%s\".", prefix, s);
    return fail_at(lx, off, msg);
}

static bool is_name_start(int c)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_cont(int c)
{
    return is_name_start(c) || is_digit(c);
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static size_t put_utf8(char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- numbers --------------------------------------------------------- */

static bool read_digits(struct sh__gql_lexer *lx, size_t *pos)
{
    if (!is_digit(at(lx, *pos)))
        return fail_cp(lx, *pos, "Invalid number, expected digit but got: ");
    while (is_digit(at(lx, *pos)))
        (*pos)++;
    return true;
}

static bool read_number(struct sh__gql_lexer *lx, size_t start,
                        struct sh__gql_token *t)
{
    size_t pos = start;
    bool is_float = false;

    if (at(lx, pos) == '-')
        pos++;
    if (at(lx, pos) == '0') {
        pos++;
        if (is_digit(at(lx, pos)))
            return fail_cp(lx, pos,
                           "Invalid number, unexpected digit after 0: ");
    } else if (!read_digits(lx, &pos)) {
        return false;
    }
    if (at(lx, pos) == '.') {
        is_float = true;
        pos++;
        if (!read_digits(lx, &pos))
            return false;
    }
    if (at(lx, pos) == 'e' || at(lx, pos) == 'E') {
        is_float = true;
        pos++;
        if (at(lx, pos) == '+' || at(lx, pos) == '-')
            pos++;
        if (!read_digits(lx, &pos))
            return false;
    }
    /* Numbers cannot be followed by "." or a NameStart. */
    if (at(lx, pos) == '.' || is_name_start(at(lx, pos)))
        return fail_cp(lx, pos, "Invalid number, expected digit but got: ");
    t->kind = is_float ? SH__GQL_TOK_FLOAT : SH__GQL_TOK_INT;
    t->end = pos;
    t->value = lx->src + start;
    t->len = pos - start;
    return true;
}

/* ---- strings --------------------------------------------------------- */

/* \uXXXX at @pos (pointing at the backslash): the value, or -1. */
static long fixed_hex(const struct sh__gql_lexer *lx, size_t pos)
{
    long v = 0;
    if (at(lx, pos) != '\\' || at(lx, pos + 1) != 'u')
        return -1;
    for (size_t i = 2; i < 6; i++) {
        int h = hex_val(at(lx, pos + i));
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* One escape at @pos (the backslash); decoded into @out; *adv gets the
 * bytes consumed; 0 written bytes and false on error. */
static bool read_escape(struct sh__gql_lexer *lx, size_t pos, char *out,
                        size_t *olen, size_t *adv)
{
    int c = at(lx, pos + 1);
    const char *simple = "\"\"\\\\//b\bf\fn\nr\rt\t";

    for (const char *s = simple; *s; s += 2) {
        if (c == s[0]) {
            out[0] = s[1];
            *olen = 1;
            *adv = 2;
            return true;
        }
    }
    if (c != 'u')
        return fail_slice(lx, pos, 2,
                          "Invalid character escape sequence: ");
    if (at(lx, pos + 2) == '{') {
        /* \u{X...}: graphql-js's readEscapedUnicodeVariableWidth, at
         * most 8 hex digits, a Unicode scalar value. */
        uint32_t v = 0;
        size_t size = 3;
        while (size < 12) {
            int ch = at(lx, pos + size++);
            if (ch == '}') {
                if (size < 5 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                    break;
                *olen = put_utf8(out, v);
                *adv = size;
                return true;
            }
            int h = hex_val(ch);
            if (h < 0)
                break;
            v = v << 4 | (uint32_t)h;
        }
        return fail_slice(lx, pos, size,
                          "Invalid Unicode escape sequence: ");
    }
    long v = fixed_hex(lx, pos);
    if (v < 0)
        return fail_slice(lx, pos, 6,
                          "Invalid Unicode escape sequence: ");
    if (v >= 0xD800 && v <= 0xDBFF) {
        long lo = fixed_hex(lx, pos + 6);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            uint32_t cp = 0x10000 + (((uint32_t)v - 0xD800) << 10) +
                          ((uint32_t)lo - 0xDC00);
            *olen = put_utf8(out, cp);
            *adv = 12;
            return true;
        }
        return fail_slice(lx, pos, 6,
                          "Invalid Unicode escape sequence: ");
    }
    if (v >= 0xDC00 && v <= 0xDFFF)
        return fail_slice(lx, pos, 6,
                          "Invalid Unicode escape sequence: ");
    *olen = put_utf8(out, (uint32_t)v);
    *adv = 6;
    return true;
}

static bool read_string(struct sh__gql_lexer *lx, size_t start,
                        struct sh__gql_token *t)
{
    size_t pos = start + 1, olen = 0, end = start + 1;

    /* Size the buffer by the raw text up to the closing quote (or the
     * line's end): decoding never lengthens, an escape of n bytes yields
     * at most n. */
    while (end < lx->len && at(lx, end) != '"' && at(lx, end) != '\n' &&
           at(lx, end) != '\r')
        end += at(lx, end) == '\\' ? 2 : 1;
    char *out = sh__gql_arena_alloc(lx->arena, end - start + 1);

    if (out == NULL) {
        lx->oom = lx->failed = true;
        return false;
    }
    while (pos < lx->len) {
        int c = at(lx, pos);
        if (c == '"') {
            out[olen] = '\0';
            t->kind = SH__GQL_TOK_STRING;
            t->end = pos + 1;
            t->value = out;
            t->len = olen;
            return true;
        }
        if (c == '\\') {
            size_t n = 0, adv = 0;
            if (!read_escape(lx, pos, out + olen, &n, &adv))
                return false;
            olen += n;
            pos += adv;
            continue;
        }
        if (c == '\n' || c == '\r')
            break;
        out[olen++] = (char)c;
        pos++;
    }
    return fail_at(lx, pos, "Unterminated string.");
}

static size_t leading_ws(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* Next line of @raw from @*i: [*start, *start + *n); false at the end. */
static bool next_line(const char *raw, size_t len, size_t *i, size_t *start,
                      size_t *n, bool *done)
{
    if (*done)
        return false;
    *start = *i;
    while (*i < len && raw[*i] != '\n' && raw[*i] != '\r')
        (*i)++;
    *n = *i - *start;
    if (*i >= len) {
        *done = true;
    } else {
        if (raw[*i] == '\r' && *i + 1 < len && raw[*i + 1] == '\n')
            (*i)++;
        (*i)++;
    }
    return true;
}

size_t sh__gql_block_string_value(const char *raw, size_t len, char *out)
{
    size_t common = SIZE_MAX, first = SIZE_MAX, last = 0, idx = 0;
    size_t i = 0, st, n, olen = 0;
    bool done = false, any = false;

    /* Pass 1: common indent (not counting line 0), first/last non-blank. */
    while (next_line(raw, len, &i, &st, &n, &done)) {
        size_t ws = leading_ws(raw + st, n);
        if (ws < n) {
            if (first == SIZE_MAX)
                first = idx;
            last = idx;
            any = true;
            if (idx != 0 && ws < common)
                common = ws;
        }
        idx++;
    }
    if (!any)
        return 0;
    /* Pass 2: lines first..last, dedented, joined with "\n". */
    i = 0;
    idx = 0;
    done = false;
    while (next_line(raw, len, &i, &st, &n, &done)) {
        if (idx >= first && idx <= last) {
            if (idx != 0) {
                size_t cut = common == SIZE_MAX ? 0 : common;
                if (cut > n)
                    cut = n;
                st += cut;
                n -= cut;
            }
            if (idx != first)
                out[olen++] = '\n';
            memcpy(out + olen, raw + st, n);
            olen += n;
        }
        idx++;
    }
    return olen;
}

static bool read_block_string(struct sh__gql_lexer *lx, size_t start,
                              struct sh__gql_token *t)
{
    size_t pos = start + 3, rlen = 0, end = start + 3;

    while (end < lx->len && !(at(lx, end) == '"' && at(lx, end + 1) == '"' &&
                              at(lx, end + 2) == '"'))
        end += (at(lx, end) == '\\' && at(lx, end + 1) == '"' &&
                at(lx, end + 2) == '"' && at(lx, end + 3) == '"') ? 4 : 1;
    char *raw = sh__gql_arena_alloc(lx->arena, end - start + 1);

    if (raw == NULL) {
        lx->oom = lx->failed = true;
        return false;
    }
    while (pos < lx->len) {
        if (at(lx, pos) == '"' && at(lx, pos + 1) == '"' &&
            at(lx, pos + 2) == '"') {
            /* The value is no longer than the raw text. */
            char *val = sh__gql_arena_alloc(lx->arena, rlen + 1);
            if (val == NULL) {
                lx->oom = lx->failed = true;
                return false;
            }
            size_t n = sh__gql_block_string_value(raw, rlen, val);
            val[n] = '\0';
            t->kind = SH__GQL_TOK_BLOCK_STRING;
            t->end = pos + 3;
            t->value = val;
            t->len = n;
            return true;
        }
        if (at(lx, pos) == '\\' && at(lx, pos + 1) == '"' &&
            at(lx, pos + 2) == '"' && at(lx, pos + 3) == '"') {
            memcpy(raw + rlen, "\"\"\"", 3);
            rlen += 3;
            pos += 4;
            continue;
        }
        raw[rlen++] = lx->src[pos++];
    }
    return fail_at(lx, pos, "Unterminated string.");
}

/* ---- tokens ---------------------------------------------------------- */

static bool read_token(struct sh__gql_lexer *lx, size_t pos,
                       struct sh__gql_token *t)
{
    for (;;) {
        int c = at(lx, pos);
        if (c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r') {
            pos++;
        } else if (c == 0xEF && at(lx, pos + 1) == 0xBB &&
                   at(lx, pos + 2) == 0xBF) {
            pos += 3;   /* a BOM is ignored anywhere */
        } else if (c == '#') {
            while (pos < lx->len && at(lx, pos) != '\n' &&
                   at(lx, pos) != '\r')
                pos++;
        } else {
            break;
        }
    }
    memset(t, 0, sizeof *t);
    t->start = pos;
    t->end = pos + 1;
    t->loc = sh__gql_lexer_locate(lx, pos);
    if (pos >= lx->len) {
        t->kind = SH__GQL_TOK_EOF;
        t->end = pos;
        return true;
    }
    int c = at(lx, pos);
    switch (c) {
    case '!': t->kind = SH__GQL_TOK_BANG; return true;
    case '$': t->kind = SH__GQL_TOK_DOLLAR; return true;
    case '&': t->kind = SH__GQL_TOK_AMP; return true;
    case '(': t->kind = SH__GQL_TOK_PAREN_L; return true;
    case ')': t->kind = SH__GQL_TOK_PAREN_R; return true;
    case ':': t->kind = SH__GQL_TOK_COLON; return true;
    case '=': t->kind = SH__GQL_TOK_EQUALS; return true;
    case '@': t->kind = SH__GQL_TOK_AT; return true;
    case '[': t->kind = SH__GQL_TOK_BRACKET_L; return true;
    case ']': t->kind = SH__GQL_TOK_BRACKET_R; return true;
    case '{': t->kind = SH__GQL_TOK_BRACE_L; return true;
    case '|': t->kind = SH__GQL_TOK_PIPE; return true;
    case '}': t->kind = SH__GQL_TOK_BRACE_R; return true;
    case '.':
        if (at(lx, pos + 1) == '.' && at(lx, pos + 2) == '.') {
            t->kind = SH__GQL_TOK_SPREAD;
            t->end = pos + 3;
            return true;
        }
        break;
    case '"':
        if (at(lx, pos + 1) == '"' && at(lx, pos + 2) == '"')
            return read_block_string(lx, pos, t);
        return read_string(lx, pos, t);
    default:
        break;
    }
    if (is_digit(c) || c == '-')
        return read_number(lx, pos, t);
    if (is_name_start(c)) {
        size_t e = pos + 1;
        while (is_name_cont(at(lx, e)))
            e++;
        t->kind = SH__GQL_TOK_NAME;
        t->end = e;
        t->value = lx->src + pos;
        t->len = e - pos;
        return true;
    }
    if (c == '\'')
        return fail_at(lx, pos,
                       "Unexpected single quote character ('), did you "
                       "mean to use a double quote (\")?");
    return fail_cp(lx, pos, "Unexpected character: ");
}

static void set_eof(struct sh__gql_lexer *lx)
{
    memset(&lx->tok, 0, sizeof lx->tok);
    lx->tok.kind = SH__GQL_TOK_EOF;
    lx->tok.start = lx->tok.end = lx->len;
    lx->tok.loc = lx->err_loc;
}

bool sh__gql_lexer_advance(struct sh__gql_lexer *lx)
{
    if (lx->failed) {
        set_eof(lx);
        return false;
    }
    if (lx->has_ahead) {
        lx->tok = lx->ahead;
        lx->has_ahead = false;
        return true;
    }
    if (lx->tok.kind == SH__GQL_TOK_EOF)
        return true;
    struct sh__gql_token t;
    if (!read_token(lx, lx->tok.kind == SH__GQL_TOK_SOF ? 0 : lx->tok.end,
                    &t)) {
        set_eof(lx);
        return false;
    }
    lx->tok = t;
    return true;
}

const struct sh__gql_token *sh__gql_lexer_lookahead(struct sh__gql_lexer *lx)
{
    if (lx->failed)
        return NULL;
    if (!lx->has_ahead) {
        if (lx->tok.kind == SH__GQL_TOK_EOF)
            return &lx->tok;
        if (!read_token(lx, lx->tok.kind == SH__GQL_TOK_SOF ? 0 : lx->tok.end,
                        &lx->ahead))
            return NULL;
        lx->has_ahead = true;
    }
    return &lx->ahead;
}
