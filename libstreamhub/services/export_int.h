/* libstreamhub/services/export_int.h: what the services give the areas
 * above them (graphql, gateway) beyond the public API.
 *
 * DESIGN.md: gateway -> graphql -> services -> (store, bus) -> core.  The
 * areas above read the services' results through the public API and, to
 * render them without copying, through the json object behind each public
 * handle (struct sh__jh); they never see services_int.h (the store, the
 * services' plumbing) nor an area's own header such as chat_int.h.
 * tests/abi/check_layers.py keeps it so.
 */
#ifndef SH_SERVICES_EXPORT_INT_H
#define SH_SERVICES_EXPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "streamhub/follows.h"
#include "streamhub/streams.h"
#include "streamhub/types.h"

/* ---- json-backed handles ---------------------------------------------- */

/* The layout of every json-backed public handle. */
struct sh__jh {
    json_object *obj;   /* owned reference (borrowed in a list's items) */
};

/* Borrowed views of a member of @obj: NULL / 0 / false when absent or of
 * another type.  Strings live as long as @obj. */
const char *sh__jstr(const json_object *obj, const char *key);
int64_t sh__jint(const json_object *obj, const char *key);
bool sh__jbool(const json_object *obj, const char *key);
/* The text of @obj (plain JSON, no escaping of '/'), @len may be NULL.
 * Borrowed until @obj is freed.  NULL when @obj is NULL. */
const char *sh__jtext(json_object *obj, size_t *len);

/* ---- read routing (store-read) ------------------------------------------ */

/* Between these two calls, every read of the calling thread goes to the
 * primary store, never to the replica of `store-read`: the GraphQL
 * executor brackets a mutation's selection with them, so that the payload
 * a mutation answers shows its own write.  Pairs nest.  @locality the
 * calling thread only (the bracket never spans threads or callbacks). */
void sh__reads_primary_begin(void);
void sh__reads_primary_end(void);

/* Between these two calls, the calling thread promises that every handle
 * the services return to it, and every json object it reaches through
 * one, is used and freed on this thread only (even after the end call):
 * a service may then hand out json objects that it also keeps
 * in a per-thread cache (json-c's counts are not atomic), sparing a parse
 * per call.  The GraphQL executor brackets a query with them.  Pairs
 * nest.  @locality the calling thread only. */
void sh__results_stay_begin(void);
void sh__results_stay_end(void);

/* ---- metrics ------------------------------------------------------------ */

/* Messages waiting in the write-behind queue (metrics). */
size_t sh__chat_queue_depth(sh_hub_t *hub);

/* ---- lists that read only what their caller asks for ------------------ */

/* What a list's caller reads beyond its items and hasNextPage (bits of
 * @want below).  Without SH__LIST_TOTAL the store runs no count(*) and
 * the list's totalCount is -1. */
#define SH__LIST_TOTAL 0x1u

/* sh_stream_live_list() and sh_stream_search() (streams.h) reading only
 * what @want names: the public calls are these with SH__LIST_TOTAL.  The
 * GraphQL resolvers pass what the query selects.  Errors, ownership and
 * threads as the public calls. */
sh_err_t sh__stream_live_list_opt(sh_hub_t *hub, int first,
                                  const char *after, const char *category,
                                  unsigned want, sh_stream_list_t **out,
                                  char *errbuf, size_t errbuf_len);
sh_err_t sh__stream_search_opt(sh_hub_t *hub, const char *query, int first,
                               const char *after, unsigned want,
                               sh_stream_list_t **out, char *errbuf,
                               size_t errbuf_len);
/* sh_followers_list() and sh_following_list() (follows.h) likewise. */
sh_err_t sh__followers_list_opt(sh_hub_t *hub, const char *user_id,
                                int first, const char *after, unsigned want,
                                sh_user_list_t **out, char *errbuf,
                                size_t errbuf_len);
sh_err_t sh__following_list_opt(sh_hub_t *hub, const char *user_id,
                                int first, const char *after, unsigned want,
                                sh_user_list_t **out, char *errbuf,
                                size_t errbuf_len);

#endif
