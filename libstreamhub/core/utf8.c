/* libstreamhub/core/utf8.c: strict UTF-8 checking, counting, control
 * character stripping and the comparison fold.
 *
 * Design.  One DFA serves every function.  Each byte is first mapped to one
 * of 12 classes (sh__utf8_class), then (state, class) gives the next state
 * (utf8_next).  The special lead bytes E0, ED, F0 and F4 get states of their
 * own that narrow the range of the next byte, which is how overlongs
 * (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and values above U+10FFFF
 * (F4 90..BF, F5..FF) are refused at the exact byte where they become
 * impossible.  C0, C1 and F5..FF can never appear.
 *
 *   state  meaning                        accepted next bytes
 *   0      between code points (accept)   00..7F, C2..F4 leads
 *   1      reject (sticky)                none
 *   2      one continuation left          80..BF
 *   3      two continuations left         80..BF
 *   4      three continuations left       80..BF
 *   5      after E0                       A0..BF -> 2
 *   6      after ED                       80..9F -> 2
 *   7      after F0                       90..BF -> 3
 *   8      after F4                       80..8F -> 3
 */
#include <string.h>

#include "utf8_int.h"

enum { S_ACCEPT = 0, S_REJECT = 1 };

/* Byte classes: 0 ASCII, 1 80..8F, 2 90..9F, 3 A0..BF, 4 never valid,
 * 5 C2..DF, 6 E0, 7 E1..EC EE..EF, 8 ED, 9 F0, 10 F1..F3, 11 F4. */
static const uint8_t utf8_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 90 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* A0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* B0 */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,  /* C0 */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,  /* D0 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,  /* E0 */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* F0 */
};

/* utf8_next[state][class]; see the diagram above. */
static const uint8_t utf8_next[9][12] = {
    /*         0  1  2  3  4  5  6  7  8  9 10 11 */
    /* 0 */ { 0, 1, 1, 1, 1, 2, 5, 3, 6, 7, 4, 8 },
    /* 1 */ { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 2 */ { 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 3 */ { 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 4 */ { 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 5 */ { 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 6 */ { 1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 7 */ { 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 8 */ { 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
};

enum sh__utf8_status sh__utf8_feed(struct sh__utf8_state *st,
                                   const uint8_t *s, size_t n,
                                   size_t *bad_at)
{
    uint8_t state = st->state;
    size_t i = 0;

    if (state == S_REJECT) {
        if (bad_at != NULL)
            *bad_at = 0;
        return SH__UTF8_INVALID;
    }
    while (i < n) {
        /* ASCII runs are the common case: skip them eight at a time. */
        if (state == S_ACCEPT) {
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        state = utf8_next[state][utf8_class[s[i]]];
        if (state == S_REJECT) {
            st->state = S_REJECT;
            if (bad_at != NULL)
                *bad_at = i;
            return SH__UTF8_INVALID;
        }
        i++;
    }
    st->state = state;
    return state == S_ACCEPT ? SH__UTF8_OK : SH__UTF8_NEED_MORE;
}

bool sh__utf8_validate(const uint8_t *s, size_t n)
{
    struct sh__utf8_state st = { 0 };

    if (n == 0)
        return true;
    return sh__utf8_feed(&st, s, n, NULL) == SH__UTF8_OK;
}

size_t sh__utf8_count(const uint8_t *s, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++)
        count += (s[i] & 0xC0) != 0x80;
    return count;
}

/* Decode the valid sequence at @s (at most @n bytes) into *@cp; returns its
 * length, or 0 when no valid sequence starts there. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t state = S_ACCEPT;
    uint32_t v = 0;

    for (size_t i = 0; i < n && i < 4; i++) {
        uint8_t c = utf8_class[s[i]];
        if (i == 0)
            v = s[0] < 0x80 ? s[0] : (uint32_t)(s[0] & (0xFF >> (c <= 5 ? 3
                : c <= 8 ? 4 : 5)));
        else
            v = (v << 6) | (s[i] & 0x3Fu);
        state = utf8_next[state][c];
        if (state == S_REJECT)
            return 0;
        if (state == S_ACCEPT) {
            *cp = v;
            return i + 1;
        }
    }
    return 0;
}

static size_t utf8_encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static bool is_cc(uint32_t cp)
{
    return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F);
}

size_t sh__utf8_strip_cc(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;

    while (i < n) {
        uint32_t cp;
        size_t len;

        if (in[i] < 0x80) {
            if (!is_cc(in[i]))
                out[o++] = in[i];
            i++;
            continue;
        }
        len = utf8_decode(in + i, n - i, &cp);
        if (len == 0) {
            out[o++] = in[i++];   /* not UTF-8: leave it to the validator */
            continue;
        }
        if (!is_cc(cp)) {
            memcpy(out + o, in + i, len);
            o += len;
        }
        i += len;
    }
    return o;
}

/* Default_Ignorable_Code_Point ranges, ascending (Unicode 15 DerivedCore
 * Properties, without the unassigned ones that never reach us). */
static const uint32_t ignorable[][2] = {
    { 0x00AD, 0x00AD }, { 0x034F, 0x034F }, { 0x061C, 0x061C },
    { 0x115F, 0x1160 }, { 0x17B4, 0x17B5 }, { 0x180B, 0x180F },
    { 0x200B, 0x200F }, { 0x202A, 0x202E }, { 0x2060, 0x206F },
    { 0x3164, 0x3164 }, { 0xFE00, 0xFE0F }, { 0xFEFF, 0xFEFF },
    { 0xFFA0, 0xFFA0 }, { 0xFFF0, 0xFFF8 }, { 0x1BCA0, 0x1BCA3 },
    { 0x1D173, 0x1D17A }, { 0xE0000, 0xE0FFF },
};

static bool is_ignorable(uint32_t cp)
{
    if (cp < 0xAD)
        return false;
    for (size_t i = 0; i < sizeof ignorable / sizeof ignorable[0]; i++) {
        if (cp < ignorable[i][0])
            return false;
        if (cp <= ignorable[i][1])
            return true;
    }
    return false;
}

/* Simple lowercase mappings, ascending.  DELTA adds delta to every code
 * point of [lo, hi]; EVEN (ODD) maps each even (odd) code point of the
 * range to the next one and leaves the others (already lowercase). */
enum { LC_DELTA, LC_EVEN, LC_ODD };
static const struct {
    uint16_t lo, hi;
    uint8_t kind;
    int16_t delta;
} lower_table[] = {
    { 0x0041, 0x005A, LC_DELTA, 0x20 },     /* A-Z */
    { 0x00C0, 0x00D6, LC_DELTA, 0x20 },     /* À-Ö */
    { 0x00D8, 0x00DE, LC_DELTA, 0x20 },     /* Ø-Þ */
    { 0x0100, 0x012F, LC_EVEN, 1 },
    { 0x0130, 0x0130, LC_DELTA, -0xC7 },    /* İ -> i (simple mapping) */
    { 0x0132, 0x0137, LC_EVEN, 1 },
    { 0x0139, 0x0148, LC_ODD, 1 },
    { 0x014A, 0x0177, LC_EVEN, 1 },
    { 0x0178, 0x0178, LC_DELTA, -0x79 },    /* Ÿ -> ÿ */
    { 0x0179, 0x017E, LC_ODD, 1 },
    { 0x0370, 0x0373, LC_EVEN, 1 },
    { 0x0376, 0x0376, LC_DELTA, 1 },
    { 0x037F, 0x037F, LC_DELTA, 0x74 },     /* Ϳ -> ϳ */
    { 0x0386, 0x0386, LC_DELTA, 0x26 },
    { 0x0388, 0x038A, LC_DELTA, 0x25 },
    { 0x038C, 0x038C, LC_DELTA, 0x40 },
    { 0x038E, 0x038F, LC_DELTA, 0x3F },
    { 0x0391, 0x03A1, LC_DELTA, 0x20 },
    { 0x03A3, 0x03AB, LC_DELTA, 0x20 },
    { 0x03CF, 0x03CF, LC_DELTA, 8 },
    { 0x03D8, 0x03EF, LC_EVEN, 1 },
    { 0x03F4, 0x03F4, LC_DELTA, -0x3C },    /* ϴ -> θ */
    { 0x03F7, 0x03F7, LC_DELTA, 1 },
    { 0x03F9, 0x03F9, LC_DELTA, -7 },
    { 0x03FA, 0x03FA, LC_DELTA, 1 },
    { 0x03FD, 0x03FF, LC_DELTA, -0x82 },
    { 0x0400, 0x040F, LC_DELTA, 0x50 },
    { 0x0410, 0x042F, LC_DELTA, 0x20 },
    { 0x0460, 0x0481, LC_EVEN, 1 },
    { 0x048A, 0x04BF, LC_EVEN, 1 },
    { 0x04C0, 0x04C0, LC_DELTA, 0x0F },
    { 0x04C1, 0x04CE, LC_ODD, 1 },
    { 0x04D0, 0x04FF, LC_EVEN, 1 },
};

static uint32_t to_lower(uint32_t cp)
{
    if (cp < 0x41 || cp > 0x4FF)
        return cp;
    for (size_t i = 0; i < sizeof lower_table / sizeof lower_table[0]; i++) {
        if (cp < lower_table[i].lo)
            return cp;
        if (cp > lower_table[i].hi)
            continue;
        switch (lower_table[i].kind) {
        case LC_EVEN:
            return (cp & 1) ? cp : cp + 1;
        case LC_ODD:
            return (cp & 1) ? cp + 1 : cp;
        default:
            return (uint32_t)((int32_t)cp + lower_table[i].delta);
        }
    }
    return cp;
}

size_t sh__utf8_fold_for_match(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;

    while (i < n) {
        uint32_t cp;
        size_t len;

        if (in[i] < 0x80) {
            uint8_t c = in[i++];
            out[o++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 0x20) : c;
            continue;
        }
        len = utf8_decode(in + i, n - i, &cp);
        if (len == 0) {
            out[o++] = in[i++];
            continue;
        }
        i += len;
        if (is_ignorable(cp))
            continue;
        /* Every mapping in the table keeps or shrinks the encoded length
         * (İ 2 -> 1 byte), so @out never needs more than @n bytes. */
        o += utf8_encode(to_lower(cp), out + o);
    }
    return o;
}
