/* include/streamhub/users.h: looking several users up at once.
 *
 * The GraphQL engine resolves the users that many parents reference (the
 * broadcasters of a page of streams, the authors of a chat page) with one
 * call instead of one per parent.
 *
 * Threads: every call may come from any thread, concurrently.
 */
#ifndef STREAMHUB_USERS_H
#define STREAMHUB_USERS_H

#include "error.h"
#include "follows.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most ids one sh_user_get_many() call takes. */
#define SH_USER_GET_MANY_MAX 1000

/* Look up the users @ids (@n of them) in as few store statements as
 * possible (one per 50 distinct ids).
 *
 * @viewer_id  the authenticated caller, or NULL: a user's email is filled
 *             only when it is the viewer's own (as sh_user_get()).
 * @ids        @n NUL-terminated ids, 0..SH_USER_GET_MANY_MAX; duplicates
 *             are looked up once; ids of no user (malformed ones included)
 *             are left out of the result, which is not an error.
 * @out        receives the users found, each once, in no particular
 *             order (totalCount is their number, no next page, no
 *             cursors).
 * Errors: SH_EINVAL (NULL @hub or @out, a NULL id, @n over the maximum),
 * SH_ECANCELED, SH_ESTORE, SH_ENOMEM.  On error *@out is NULL.
 * Ownership: arguments borrowed; *@out is the caller's
 * (sh_user_list_free()).
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_user_get_many(sh_hub_t *hub, const char *viewer_id,
                                 const char *const *ids, size_t n,
                                 sh_user_list_t **out, char *errbuf,
                                 size_t errbuf_len);

#ifdef __cplusplus
}
#endif

#endif
