/* libstreamhub/core/errbuf.c: the caller's error buffer (see error.h). */
#include <stdio.h>

#include "core_int.h"

void sh__errbuf(char *errbuf, size_t errbuf_len, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errbuf_len == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(errbuf, errbuf_len, fmt, ap) < 0)
        errbuf[0] = '\0';
    va_end(ap);
}
