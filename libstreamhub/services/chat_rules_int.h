/* libstreamhub/services/chat_rules_int.h: the text checks of the chat
 * (chat_rules.c), apart from chat_int.h so that chat_rules.c sees only the
 * core's UTF-8 helpers (core/utf8_int.h) and no service header.
 *
 * Pure functions: no hub, no locks, any thread.
 */
#ifndef SH_CHAT_RULES_INT_H
#define SH_CHAT_RULES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streamhub/error.h"

/* Check @text (@len bytes) against the length limit @max_len (code points),
 * UTF-8 validity and emptiness, in that order, and produce the stored text
 * (code points of category Cc removed, "\n" and NUL included; format
 * characters such as ZWJ kept byte for byte) in *@out (malloc'd,
 * NUL-terminated, *@out_len bytes).
 * Errors: SH_ETOOLONG, SH_EBADUTF8, SH_EEMPTY, SH_ENOMEM; *@out NULL. */
sh_err_t sh__chat_text_clean(const char *text, size_t len, int64_t max_len,
                             char **out, size_t *out_len);

/* Fold @s (valid UTF-8, @len bytes) for blocked-term matching (lowercased,
 * default-ignorables removed) into *@out (malloc'd, NUL-terminated).
 * SH_ENOMEM. */
sh_err_t sh__chat_fold(const char *s, size_t len, char **out,
                       size_t *out_len);

/* Check one blocked term as updateChatSettings gives it: valid UTF-8,
 * 1..@max_cps code points, no control characters, not empty once folded.
 * Returns a static reason on failure, NULL when acceptable. */
const char *sh__chat_term_check(const char *s, size_t len, size_t max_cps);

/* True when @s (@len bytes) is valid UTF-8 of at most @max_cps code
 * points (a moderation reason). */
bool sh__chat_text_ok(const char *s, size_t len, size_t max_cps);

/* True when @folded (@len bytes) contains one of the @n folded terms. */
bool sh__chat_terms_match(char *const *terms, const size_t *term_len,
                          size_t n, const char *folded, size_t len);

#endif
