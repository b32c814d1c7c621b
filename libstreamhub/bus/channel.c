/* libstreamhub/bus/channel.c: channel names (bus.h, api/PROTOCOL.md).
 *
 * A name is a kind prefix followed by an identifier, or exactly "live".
 * Names reach us from clients, so the check is strict (ASCII only, which
 * also rejects every non-UTF-8 byte) and its error message prints the
 * name escaped: a hostile name must not inject control bytes into logs.
 */
#include <string.h>

#include "bus_int.h"

/* At most this many bytes of a bad name are echoed back. */
#define ECHO_MAX 48

static const char *const kinds[] = { "chat:", "stream:", "user:", "app:" };

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Copy up to ECHO_MAX bytes of @s into @out (of at least ECHO_MAX * 4 + 4
 * bytes) with non-printable bytes, '"' and '\\' as \xNN; "..." marks a
 * cut. */
static void echo(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;

    for (i = 0; s[i] != '\0' && i < ECHO_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static sh_err_t bad(const char *channel, const char *why, char *errbuf,
                    size_t errbuf_len)
{
    char shown[ECHO_MAX * 4 + 4];

    echo(channel, shown);
    sh__errbuf(errbuf, errbuf_len, "invalid channel \"%s\": %s", shown, why);
    return SH_EINVAL;
}

sh_err_t sh__channel_check(const char *channel, char *errbuf,
                           size_t errbuf_len)
{
    size_t len, i, k;

    if (channel == NULL) {
        sh__errbuf(errbuf, errbuf_len, "invalid channel: NULL");
        return SH_EINVAL;
    }
    len = strnlen(channel, SH_CHANNEL_MAX + 1);
    if (len == 0)
        return bad(channel, "empty", errbuf, errbuf_len);
    if (len > SH_CHANNEL_MAX)
        return bad(channel, "longer than 128 bytes", errbuf, errbuf_len);
    if (strcmp(channel, "live") == 0)
        return SH_OK;
    for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t plen = strlen(kinds[k]);
        if (strncmp(channel, kinds[k], plen) != 0)
            continue;
        if (len == plen)
            return bad(channel, "nothing after the kind", errbuf,
                       errbuf_len);
        for (i = plen; i < len; i++) {
            if (!id_char((unsigned char)channel[i]))
                return bad(channel, "only [A-Za-z0-9._-] may follow the "
                           "kind", errbuf, errbuf_len);
        }
        return SH_OK;
    }
    return bad(channel, "unknown kind (chat:, stream:, live, user:, app:)",
               errbuf, errbuf_len);
}
