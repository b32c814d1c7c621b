/* libstreamhub/services/chat_rules.c: the checks of a chat message's text.
 *
 * The order is the contract of sh_chat_send() (chat.h): length in code
 * points, then UTF-8 validity, then control characters, then emptiness.
 * The length comes first so that a huge input is refused after one bounded
 * look: anything over 4 bytes per allowed code point is too long whatever
 * it holds, and the count of a shorter input never reads past @len.
 * Invalid UTF-8 is refused, never repaired; control characters (Unicode
 * category Cc, "\n" and NUL among them) are removed, everything else is
 * kept byte for byte (ZWJ emoji sequences survive).
 *
 * Blocked terms are matched on folded copies of both sides (core/utf8.c:
 * simple lowercase, default-ignorable code points removed) so that
 * "BAD\u200Bword" matches the term "badword".
 */
#include <stdlib.h>
#include <string.h>

#include "core/utf8_int.h"
#include "chat_rules_int.h"

sh_err_t sh__chat_text_clean(const char *text, size_t len, int64_t max_len,
                             char **out, size_t *out_len)
{
    const uint8_t *in = (const uint8_t *)text;
    char *buf;
    size_t n;

    *out = NULL;
    *out_len = 0;
    if (max_len < 1)
        max_len = 1;
    if (len > (size_t)max_len * 4)
        return SH_ETOOLONG;
    if (len > 0 && sh__utf8_count(in, len) > (size_t)max_len)
        return SH_ETOOLONG;
    if (!sh__utf8_validate(in, len))
        return SH_EBADUTF8;
    buf = malloc(len + 1);
    if (buf == NULL)
        return SH_ENOMEM;
    n = len > 0 ? sh__utf8_strip_cc(in, len, (uint8_t *)buf) : 0;
    buf[n] = '\0';
    if (n == 0) {
        free(buf);
        return SH_EEMPTY;
    }
    *out = buf;
    *out_len = n;
    return SH_OK;
}

sh_err_t sh__chat_fold(const char *s, size_t len, char **out,
                       size_t *out_len)
{
    char *buf = malloc(len + 1);
    size_t n;

    *out = NULL;
    *out_len = 0;
    if (buf == NULL)
        return SH_ENOMEM;
    n = len > 0 ? sh__utf8_fold_for_match((const uint8_t *)s, len,
                                          (uint8_t *)buf)
                : 0;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return SH_OK;
}

const char *sh__chat_term_check(const char *s, size_t len, size_t max_cps)
{
    const uint8_t *in = (const uint8_t *)s;
    uint8_t small[4 * 100 + 1];
    uint8_t *tmp;
    size_t cps, n;

    if (len == 0)
        return "is empty";
    if (!sh__utf8_validate(in, len))
        return "is not valid UTF-8";
    cps = sh__utf8_count(in, len);
    if (cps > max_cps)
        return "is too long";
    tmp = len < sizeof small ? small : malloc(len);
    if (tmp == NULL)
        return "cannot be checked (out of memory)";
    n = sh__utf8_strip_cc(in, len, tmp);
    if (n != len) {
        if (tmp != small)
            free(tmp);
        return "holds control characters";
    }
    n = sh__utf8_fold_for_match(in, len, tmp);
    if (tmp != small)
        free(tmp);
    if (n == 0)
        return "is empty once invisible characters are removed";
    return NULL;
}

bool sh__chat_text_ok(const char *s, size_t len, size_t max_cps)
{
    const uint8_t *in = (const uint8_t *)s;

    return sh__utf8_validate(in, len) && sh__utf8_count(in, len) <= max_cps;
}

/* memmem is a GNU extension (we build with _GNU_SOURCE); keep a portable
 * fallback short. */
static bool contains(const char *hay, size_t hn, const char *needle,
                     size_t nn)
{
    if (nn == 0 || nn > hn)
        return false;
#if defined(_GNU_SOURCE)
    return memmem(hay, hn, needle, nn) != NULL;
#else
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(hay + i, needle, nn) == 0)
            return true;
    return false;
#endif
}

bool sh__chat_terms_match(char *const *terms, const size_t *term_len,
                          size_t n, const char *folded, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (contains(folded, len, terms[i], term_len[i]))
            return true;
    return false;
}
