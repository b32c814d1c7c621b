/* libstreamhub/core/cidr_int.h: IP addresses and CIDR lists as text.
 *
 * The `trusted-proxies` key names the peers whose X-Forwarded-For and
 * X-Real-IP headers are believed: config.c checks the list when it is set,
 * the gateway parses it once at start and matches each TCP peer and each
 * forwarded hop against it.  Pure code, no allocation after parsing.
 */
#ifndef SH_CORE_CIDR_INT_H
#define SH_CORE_CIDR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "streamhub/error.h"

/* One address block.  An IPv4-mapped IPv6 block (::ffff:a.b.c.d/n, n >=
 * 96) is kept as the IPv4 block, so that it matches peers of either
 * form. */
struct sh__cidr {
    uint8_t addr[16];   /* network address, host bits zero; 4 used for v4 */
    uint8_t bits;       /* prefix length: 0..32 (v4), 0..128 (v6) */
    bool v4;
};

/* The most blocks one list may hold. */
#define SH__CIDR_MAX 256

/* Parse @text: blocks separated by commas (spaces around them allowed),
 * each an IPv4 or IPv6 address with an optional /prefix (none: the one
 * address).  "" (or only spaces) is the empty list.  *@out gets a new
 * array of *@n blocks (free()), NULL when empty.
 * Errors: SH_EINVAL with the bad block in @errbuf (the caller adds
 * its key's name), SH_ENOMEM.  On error *@out is NULL and *@n 0.  Any thread. */
sh_err_t sh__cidr_list_parse(const char *text, struct sh__cidr **out,
                             size_t *n, char *errbuf, size_t errbuf_len);

/* Parse one address, @len bytes of @s (not NUL-terminated), as sent in a
 * forwarding header: "a.b.c.d", "a.b.c.d:port", an IPv6 address, or
 * "[v6]" / "[v6]:port".  On success fills @ss (AF_INET or AF_INET6, port
 * 0; an IPv4-mapped IPv6 address becomes AF_INET) and returns true.  Any
 * thread. */
bool sh__ip_parse(const char *s, size_t len, struct sockaddr_storage *ss);

/* True when the address at @sa (AF_INET or AF_INET6; a v4-mapped v6
 * address counts as v4) is inside one of the @n blocks of @list. */
bool sh__cidr_match(const struct sh__cidr *list, size_t n,
                    const struct sockaddr *sa);

#endif
