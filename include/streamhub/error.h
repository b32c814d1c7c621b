/* include/streamhub/error.h: the one error enum of the whole API.
 *
 * Every fallible call returns an sh_err_t.  SH_OK is 0; every other value is
 * explicit and stable: values are only ever appended, never renumbered nor
 * reused, so a binding may hard-code them.
 *
 * Why no thread-local "last error": Go's goroutines move between OS threads
 * between two cgo calls, and Python's ctypes may release the GIL between
 * them, so a per-thread slot read after the call may belong to another call.
 * Calls whose failure needs explaining take instead a caller-owned buffer,
 * `char *errbuf, size_t errbuf_len`, filled with a one-line message on error
 * (NULL is allowed; when not NULL it is always NUL-terminated, truncated to
 * fit).  The buffer belongs to the call, so it is thread-safe by construction.
 * SH_ERRBUF_SIZE is a size that never truncates a message of ours.
 */
#ifndef STREAMHUB_ERROR_H
#define STREAMHUB_ERROR_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SH_ERRBUF_SIZE 256

typedef enum sh_err {
    SH_OK = 0,
    SH_ENOMEM = 1,            /* an allocation failed */
    SH_EINVAL = 2,            /* an argument or input is invalid */
    SH_ENOTFOUND = 3,         /* no such user, stream, message, key... */
    SH_ECONFLICT = 4,         /* uniqueness or state conflict */
    SH_EFORBIDDEN = 5,        /* authenticated but not allowed */
    SH_EUNAUTHENTICATED = 6,  /* no identity, or a bad or expired token */
    SH_ERATELIMITED = 7,      /* a token bucket is empty; retry later */
    SH_ESTORE = 8,            /* the store failed (see errbuf) */
    SH_EBUS = 9,              /* the bus failed (see errbuf) */
    SH_EIO = 10,              /* an operating-system I/O error */
    SH_ETOOBIG = 11,          /* input over a size limit */
    SH_EBUSY = 12,            /* a bounded queue is full; retry later */
    SH_ECANCELED = 13,        /* the hub is shutting down */
    SH_EINTERNAL = 14,        /* a bug or an unexpected state of ours */
    SH_ENOTSUP = 15,          /* not supported by this build/backend */
    SH_ETIMEDOUT = 16,        /* an operation's deadline passed */
    /* Chat refusals, one each so that callers can tell them apart
     * (checked in this order by sh_chat_send(), see chat.h). */
    SH_EBANNED = 17,          /* the author is banned from the channel */
    SH_ETIMEDOUT_USER = 18,   /* the author is timed out in the channel */
    SH_EFOLLOWERSONLY = 19,   /* followers-only chat, author not a follower */
    SH_ESLOWMODE = 20,        /* slow mode: too soon after the last message */
    SH_ETOOLONG = 21,         /* over the length limit in code points */
    SH_EBADUTF8 = 22,         /* input is not valid UTF-8 */
    SH_EBLOCKEDTERM = 23,     /* the text contains a blocked term */
    SH_EEMPTY = 24            /* nothing left once control characters go */
} sh_err_t;

/* A static, human-readable English description of @err.
 *
 * Returns a string that is never NULL ("unknown error" for values this
 * version does not know).  Ownership: static storage, never freed.
 * Threads: any.  Since: 0.1
 */
SH_API const char *sh_strerror(sh_err_t err);

/* The stable symbolic name of @err, e.g. "SH_ENOTFOUND"; "SH_UNKNOWN" for
 * values this version does not know.  For logs and bindings' exception names.
 * Ownership: static storage.  Threads: any.  Since: 0.1
 */
SH_API const char *sh_err_name(sh_err_t err);

#ifdef __cplusplus
}
#endif

#endif
