/* libstreamhub/core/util.c: clocks, RFC 3339 timestamps and UUIDs. */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core_int.h"

int64_t sh__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sh__mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sh__ts_format(int64_t ms, char *buf)
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int milli = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    /* strftime cannot overflow a known-size field the way %d can in the
     * compiler's eyes; the milliseconds are appended by hand. */
    if (strftime(buf, SH__TS_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
        memcpy(buf, "1970-01-01T00:00:00", 20);
    }
    buf[19] = '.';
    buf[20] = (char)('0' + milli / 100);
    buf[21] = (char)('0' + milli / 10 % 10);
    buf[22] = (char)('0' + milli % 10);
    buf[23] = 'Z';
    buf[24] = '\0';
}

void sh__uuid4(char *buf)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[o++] = '-';
        buf[o++] = hex[b[i] >> 4];
        buf[o++] = hex[b[i] & 15];
    }
    buf[o] = '\0';
}

bool sh__uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != SH__UUID_LEN)
        return false;
    for (size_t i = 0; i < SH__UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}
