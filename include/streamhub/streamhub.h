/* include/streamhub/streamhub.h: libstreamhub, the real-time back end of a
 * live-streaming platform, as an embeddable C library.
 *
 * Ground rules of the whole API (each header restates what is particular
 * to it):
 *
 * 1. Errors.  Every fallible call returns an sh_err_t (error.h): SH_OK is 0,
 *    the other values are stable and append-only.  A failed call has no side
 *    effects, sets its outputs to NULL/0 and never runs a callback.  Calls
 *    whose failure needs explaining end in `char *errbuf, size_t errbuf_len`,
 *    a caller-owned buffer for a one-line message (NULL allowed, always
 *    NUL-terminated).  There is no thread-local last error, because Go moves
 *    goroutines between threads between cgo calls (see error.h).
 * 2. Handles are opaque (sh_hub_t, sh_config_t, ...).  The only public
 *    structs are frozen value types whose size the tests assert.
 * 3. Ownership.  Arguments are borrowed for the duration of the call; what
 *    the library keeps, it copies.  Results returned through `**out` belong
 *    to the caller, who releases them with the matching sh_<object>_free()
 *    (never free()); every _free accepts NULL.  A returned `const` pointer is
 *    borrowed, and its doc says until when.  Callback arguments die when the
 *    callback returns unless the doc names a function that keeps them.
 * 4. No global state.  Everything hangs off a hub or a config; two hubs in
 *    one process are independent.  There is no library init call.
 * 5. Threads.  A hub is thread-safe; a config is not (build it, then hand it
 *    over).  Callbacks run on the hub's loop thread when attached, else only
 *    inside sh_hub_poll() (hub.h).  Each header states its exceptions.
 * 6. Strings are UTF-8 and NUL-terminated unless a length is given.  Lengths
 *    are in bytes unless the name or doc says code points.  Times are
 *    milliseconds since the Unix epoch, UTC, unless the name says seconds.
 * 7. Versioning.  SemVer; the SONAME changes with the major only.  Compare
 *    SH_VERSION_NUMBER with sh_version_number() to detect mismatched headers.
 */
#ifndef STREAMHUB_H
#define STREAMHUB_H

#include "streamhub/version.h"
#include "types.h"
#include "error.h"
#include "log.h"
#include "config.h"
#include "hub.h"
#include "bus.h"
#include "auth.h"
#include "follows.h"
#include "streams.h"
#include "notifications.h"
#include "chat.h"
#include "moderation.h"
#include "users.h"
#include "graphql.h"

/* sh_version() and sh_version_number() are declared in version.h. */

#endif
