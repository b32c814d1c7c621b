/* tests/contract/bus_fixture.h: the bus of a contract test's hub.
 *
 * STREAMHUB_TEST_BUS names the bus (default local); "$NAME" takes the
 * value of the environment variable NAME (meson registers the redis row
 * as "$STREAMHUB_TEST_REDIS_URI", which scripts/with-services.sh sets).
 * A bus that names an unset variable skips the test (exit 77): CI turns a
 * skip into a failure.  On Redis, every hub of one process shares a key
 * prefix of its own, so that tests running at once on one Redis never see
 * each other's channels, and a hub reopened by a test continues them.
 */
#ifndef SH_TEST_BUS_FIXTURE_H
#define SH_TEST_BUS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamhub/streamhub.h"

static inline const char *bfx_bus(void)
{
    const char *b = getenv("STREAMHUB_TEST_BUS");

    if (b == NULL || b[0] == '\0')
        return "local";
    if (b[0] == '$') {
        b = getenv(b + 1);
        if (b == NULL || b[0] == '\0') {
            fprintf(stderr, "STREAMHUB_TEST_BUS names an unset variable: "
                    "skipped\n");
            exit(77);
        }
    }
    return b;
}

/* Set the bus keys of @conf; false with @err on a refused value. */
static inline int bfx_set(sh_config_t *conf, char *err, size_t err_len)
{
    static char prefix[64];
    const char *b = bfx_bus();

    if (sh_config_set(conf, "bus", b, err, err_len) != SH_OK)
        return 0;
    if (strncmp(b, "redis://", 8) != 0)
        return 1;
    if (prefix[0] == '\0')
        snprintf(prefix, sizeof prefix, "ct%ld.%ld:", (long)getpid(),
                 (long)time(NULL));
    return sh_config_set(conf, "bus.redis-key-prefix", prefix, err,
                         err_len) == SH_OK;
}

#endif
