/* libstreamhub/core/utf8_int.h: strict UTF-8 (RFC 3629) for every area.
 *
 * Text enters StreamHub from WebSocket frames, HTTP bodies and GraphQL
 * strings; all of it is checked here.  Valid means: shortest form only (no
 * overlongs such as C0 80), no UTF-16 surrogates (U+D800..U+DFFF), nothing
 * above U+10FFFF, no 5- or 6-byte forms.  The checker is a DFA of our own
 * (byte classes then a 9-state transition table, in the manner of
 * Hoehrmann's decoder) so that it can run incrementally over fragments and
 * stop at the first byte that cannot begin or continue a valid sequence.
 *
 * Pure functions: no allocation, no globals, any thread.
 */
#ifndef SH_CORE_UTF8_INT_H
#define SH_CORE_UTF8_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sh__utf8_status {
    SH__UTF8_OK = 0,        /* everything fed so far is complete, valid */
    SH__UTF8_NEED_MORE = 1, /* valid so far, but a sequence is unfinished */
    SH__UTF8_INVALID = 2    /* a byte cannot be part of valid UTF-8 */
};

/* State of an incremental check.  Zero-initialised (or sh__utf8_init) is
 * the start state.  Once INVALID it stays INVALID. */
struct sh__utf8_state {
    uint8_t state;          /* DFA state; 0 accept, 1 reject */
};

static inline void sh__utf8_init(struct sh__utf8_state *st)
{
    st->state = 0;
}

/* True when @s[0..@n) is valid UTF-8.  @n = 0 is valid (s may be NULL). */
bool sh__utf8_validate(const uint8_t *s, size_t n);

/* Feed the next @n bytes of a text.  Returns INVALID at the first bad byte
 * (whatever follows is not read), NEED_MORE when the bytes so far end inside
 * a sequence, else OK.  A text that ends in NEED_MORE is invalid.
 * @bad_at, when not NULL, gets the index in @s of the offending byte on
 * INVALID (0 when the state was already INVALID). */
enum sh__utf8_status sh__utf8_feed(struct sh__utf8_state *st,
                                   const uint8_t *s, size_t n,
                                   size_t *bad_at);

/* Code points in @s[0..@n).  Meant for valid text; on invalid input every
 * byte that is not a continuation byte (10xxxxxx) counts as one. */
size_t sh__utf8_count(const uint8_t *s, size_t n);

/* Copy @in to @out (at least @n bytes) without the code points of Unicode
 * category Cc: U+0000..U+001F (newline included) and U+007F..U+009F.
 * Everything else is copied byte for byte, format characters such as
 * U+200D ZERO WIDTH JOINER included.  Bytes that are not valid UTF-8 are
 * copied unchanged (validate first).  Returns the length written. */
size_t sh__utf8_strip_cc(const uint8_t *in, size_t n, uint8_t *out);

/* Write into @out (at least @n bytes: the result is never longer) a copy of
 * @in meant only for comparisons (blocked terms): default-ignorable code
 * points removed (soft hyphen, CGJ, zero-width space/joiners, bidi marks
 * and embeddings, word joiner and invisible operators, Hangul fillers,
 * variation selectors, BOM, tags, ...) and letters lowercased with the
 * simple (one to one) Unicode mapping.  Lowercasing covers by table: ASCII,
 * Latin-1 Supplement, Latin Extended-A (U+0100..U+017F), Greek and Coptic
 * (U+0370..U+03FF) and Cyrillic (U+0400..U+04FF); other scripts are copied
 * as they are.  No normalisation (NFC/NFKC) is applied.  Invalid bytes are
 * copied unchanged.  Returns the length written. */
size_t sh__utf8_fold_for_match(const uint8_t *in, size_t n, uint8_t *out);

#endif
