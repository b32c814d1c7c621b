/* libstreamhub/core/error.c: names and descriptions of sh_err_t values.
 *
 * One table indexed by value, so that a new code is one line here; the
 * unit test walks every value up to the first unknown one.
 */
#include "core_int.h"

static const struct {
    const char *name;
    const char *text;
} errors[] = {
    [SH_OK] = { "SH_OK", "success" },
    [SH_ENOMEM] = { "SH_ENOMEM", "out of memory" },
    [SH_EINVAL] = { "SH_EINVAL", "invalid argument" },
    [SH_ENOTFOUND] = { "SH_ENOTFOUND", "not found" },
    [SH_ECONFLICT] = { "SH_ECONFLICT", "conflict" },
    [SH_EFORBIDDEN] = { "SH_EFORBIDDEN", "forbidden" },
    [SH_EUNAUTHENTICATED] = { "SH_EUNAUTHENTICATED", "unauthenticated" },
    [SH_ERATELIMITED] = { "SH_ERATELIMITED", "rate limited" },
    [SH_ESTORE] = { "SH_ESTORE", "store error" },
    [SH_EBUS] = { "SH_EBUS", "bus error" },
    [SH_EIO] = { "SH_EIO", "input/output error" },
    [SH_ETOOBIG] = { "SH_ETOOBIG", "too large" },
    [SH_EBUSY] = { "SH_EBUSY", "busy, retry later" },
    [SH_ECANCELED] = { "SH_ECANCELED", "canceled: the hub is closing" },
    [SH_EINTERNAL] = { "SH_EINTERNAL", "internal error" },
    [SH_ENOTSUP] = { "SH_ENOTSUP", "not supported" },
    [SH_ETIMEDOUT] = { "SH_ETIMEDOUT", "timed out" },
    [SH_EBANNED] = { "SH_EBANNED", "banned from this chat" },
    [SH_ETIMEDOUT_USER] = { "SH_ETIMEDOUT_USER", "timed out in this chat" },
    [SH_EFOLLOWERSONLY] = { "SH_EFOLLOWERSONLY",
                            "this chat is for followers only" },
    [SH_ESLOWMODE] = { "SH_ESLOWMODE", "slow mode: wait before sending" },
    [SH_ETOOLONG] = { "SH_ETOOLONG", "message too long" },
    [SH_EBADUTF8] = { "SH_EBADUTF8", "invalid UTF-8" },
    [SH_EBLOCKEDTERM] = { "SH_EBLOCKEDTERM",
                          "message contains a blocked term" },
    [SH_EEMPTY] = { "SH_EEMPTY", "message is empty" },
};

#define NERRORS (sizeof errors / sizeof errors[0])

SH_API const char *sh_strerror(sh_err_t err)
{
    if ((unsigned)err < NERRORS && errors[err].text != NULL)
        return errors[err].text;
    return "unknown error";
}

SH_API const char *sh_err_name(sh_err_t err)
{
    if ((unsigned)err < NERRORS && errors[err].name != NULL)
        return errors[err].name;
    return "SH_UNKNOWN";
}

SH_API const char *sh_version(void)
{
    return SH_VERSION_STRING;
}

SH_API uint32_t sh_version_number(void)
{
    return SH_VERSION_NUMBER;
}
