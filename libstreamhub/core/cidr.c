/* libstreamhub/core/cidr.c: IP addresses and CIDR lists (cidr_int.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr_int.h"
#include "core_int.h"

/* Longest text one address or block may take ("[v6]:port", "v6/128"). */
#define TOKEN_MAX 64

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0xff, 0xff };

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Parse a bare address of @len bytes into @bytes; *@v4 tells which
 * family (v4-mapped v6 folded to v4). */
static bool parse_bare(const char *s, size_t len, uint8_t bytes[16],
                       bool *v4)
{
    char tmp[TOKEN_MAX];

    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(bytes, 0, 16);
    if (inet_pton(AF_INET, tmp, bytes) == 1) {
        *v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, tmp, bytes) != 1)
        return false;
    if (memcmp(bytes, v4_mapped_prefix, 12) == 0) {
        memmove(bytes, bytes + 12, 4);
        memset(bytes + 4, 0, 12);
        *v4 = true;
    } else {
        *v4 = false;
    }
    return true;
}

/* One block "addr[/bits]" of @len bytes. */
static bool parse_block(const char *s, size_t len, struct sh__cidr *c)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    bool mapped = false;
    long bits;

    if (!parse_bare(s, alen, c->addr, &c->v4))
        return false;
    if (c->v4 && memchr(s, ':', alen) != NULL)
        mapped = true;   /* ::ffff:a.b.c.d: its prefix counts 96 more */
    if (slash == NULL) {
        bits = c->v4 ? 32 : 128;
    } else {
        const char *p = slash + 1, *end = s + len;
        if (p == end || end - p > 3)
            return false;
        bits = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            bits = bits * 10 + (*p - '0');
        }
        if (mapped) {
            if (bits < 96 || bits > 128)
                return false;
            bits -= 96;
        }
        if (bits > (c->v4 ? 32 : 128))
            return false;
    }
    c->bits = (uint8_t)bits;
    /* Zero the host bits, so that matching compares whole bytes. */
    for (unsigned i = 0; i < 16; i++) {
        unsigned lo = i * 8;
        if (lo >= c->bits)
            c->addr[i] = 0;
        else if (lo + 8 > c->bits)
            c->addr[i] &= (uint8_t)(0xff << (8 - (c->bits - lo)));
    }
    return true;
}

sh_err_t sh__cidr_list_parse(const char *text, struct sh__cidr **out,
                             size_t *n, char *errbuf, size_t errbuf_len)
{
    struct sh__cidr *list = NULL;
    size_t count = 0;
    const char *p = text;

    *out = NULL;
    *n = 0;
    while (is_space(*p))
        p++;
    if (*p == '\0')
        return SH_OK;
    list = calloc(SH__CIDR_MAX, sizeof *list);
    if (list == NULL) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return SH_ENOMEM;
    }
    for (;;) {
        const char *start, *end;
        size_t len;

        while (is_space(*p))
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        while (end > start && is_space(end[-1]))
            end--;
        len = (size_t)(end - start);
        if (count == SH__CIDR_MAX) {
            sh__errbuf(errbuf, errbuf_len, "more than %d address blocks",
                       SH__CIDR_MAX);
            free(list);
            return SH_EINVAL;
        }
        if (!parse_block(start, len, &list[count])) {
            sh__errbuf(errbuf, errbuf_len,
                       "'%.*s' is not an IP address or CIDR block",
                       (int)(len < TOKEN_MAX ? len : TOKEN_MAX), start);
            free(list);
            return SH_EINVAL;
        }
        count++;
        if (*p == '\0')
            break;
        p++;    /* the comma: a block must follow */
    }
    *out = list;
    *n = count;
    return SH_OK;
}

bool sh__ip_parse(const char *s, size_t len, struct sockaddr_storage *ss)
{
    uint8_t bytes[16];
    bool v4;

    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len > 0 && s[0] == '[') {
        /* "[v6]" or "[v6]:port" */
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return false;
        if (close + 1 != s + len && close[1] != ':')
            return false;
        s++;
        len = (size_t)(close - s);
    } else {
        /* "a.b.c.d:port": one colon after a dotted address. */
        const char *colon = memchr(s, ':', len);
        if (colon != NULL && memchr(colon + 1, ':',
                                    len - (size_t)(colon + 1 - s)) == NULL &&
            memchr(s, '.', (size_t)(colon - s)) != NULL)
            len = (size_t)(colon - s);
    }
    if (!parse_bare(s, len, bytes, &v4))
        return false;
    memset(ss, 0, sizeof *ss);
    if (v4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, bytes, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, bytes, 16);
    }
    return true;
}

bool sh__cidr_match(const struct sh__cidr *list, size_t n,
                    const struct sockaddr *sa)
{
    uint8_t bytes[16] = { 0 };
    bool v4;

    if (sa->sa_family == AF_INET) {
        memcpy(bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        v4 = true;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        v4 = memcmp(bytes, v4_mapped_prefix, 12) == 0;
        if (v4) {
            memmove(bytes, bytes + 12, 4);
            memset(bytes + 4, 0, 12);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sh__cidr *c = &list[i];
        unsigned full = c->bits / 8, rest = c->bits % 8;

        if (c->v4 != v4)
            continue;
        if (memcmp(bytes, c->addr, full) != 0)
            continue;
        if (rest != 0 && (bytes[full] & (uint8_t)(0xff << (8 - rest))) !=
                             c->addr[full])
            continue;
        return true;
    }
    return false;
}
