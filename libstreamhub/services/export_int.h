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

#endif
