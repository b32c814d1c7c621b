/* include/streamhub/graphql.h: the GraphQL engine, without the gateway.
 *
 * The hub serves exactly the schema of ../api/schema.graphql (queries,
 * mutations and introspection; subscriptions are served by the gateway's
 * graphql-transport-ws door).  sh_graphql_execute() runs one request and
 * returns the complete GraphQL response, as the gateway writes it:
 *
 *  - a request error (the query does not parse or validate, is too
 *    complex, names no runnable operation, or its variables cannot be
 *    coerced): {"errors":[...]} without a "data" key, HTTP status 400;
 *  - otherwise {"data":{...}} with, when some fields failed,
 *    "errors":[...] (spec section 7: message, locations, path and
 *    extensions.code), HTTP status 200.  A failed field is null, and the
 *    null climbs to the nearest nullable parent.
 *
 * extensions.code is one of UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT,
 * NOT_FOUND, RATE_LIMITED (with extensions.retryAfter, whole seconds),
 * CONFLICT, QUERY_TOO_COMPLEX, INTERNAL.  Service errors map as: SH_EINVAL
 * and the text refusals of chat (too long, bad UTF-8, empty, blocked
 * term) -> BAD_USER_INPUT; SH_EFORBIDDEN, banned, timed out (with
 * retryAfter), followers-only -> FORBIDDEN; slow mode and SH_ERATELIMITED
 * -> RATE_LIMITED; SH_ENOTFOUND -> NOT_FOUND; SH_ECONFLICT -> CONFLICT;
 * SH_EUNAUTHENTICATED -> UNAUTHENTICATED; anything else -> INTERNAL with
 * a generic message (store details are logged, never returned).
 *
 * Directives of the schema are enforced by the executor: @auth fields
 * fail with UNAUTHENTICATED without an identity; @rateLimit(limit, window)
 * fields take a token from a bucket of `limit` tokens refilled over
 * `window` seconds, one bucket per field and user id (per client key when
 * anonymous).
 *
 * Introspection (__schema, __type) follows the graphql.introspection key;
 * when it is false a request that asks for them is refused like
 * graphql-js's NoSchemaIntrospectionCustomRule does: a validation error
 * (status 400, no data) "GraphQL introspection has been disabled, but the
 * requested query contained the field \"__schema\"." with code FORBIDDEN.
 * __typename always works.
 *
 * The engine (the schema model, the rate-limit buckets) is built inside
 * the hub at the first request and freed by sh_hub_close().
 *
 * Threads: any thread, concurrently; each request runs on the calling
 * thread and may wait on the store (never call it on an event loop).
 */
#ifndef STREAMHUB_GRAPHQL_H
#define STREAMHUB_GRAPHQL_H

#include <stdbool.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One GraphQL request: query, variables, operation name, identity. */
typedef struct sh_graphql_request sh_graphql_request_t;

/* A new, empty request (anonymous, no variables).
 * Errors: SH_EINVAL (NULL @out), SH_ENOMEM.
 * Ownership: *@out is the caller's, released by sh_graphql_request_free().
 * Threads: any.  Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_new(sh_graphql_request_t **out);

/* Set the document text: @len bytes of UTF-8, need not be terminated.
 * Checked by sh_graphql_execute() (size limit graphql.max-document-bytes,
 * syntax), not here.
 * Errors: SH_EINVAL (NULL @req, or NULL @query with @len > 0), SH_ENOMEM;
 * on error the request is unchanged.
 * Ownership: @query is copied.  Threads: one at a time per @req.
 * Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_set_query(sh_graphql_request_t *req,
                                             const char *query, size_t len);

/* Set the variables: a JSON object text of @len bytes, or NULL for none.
 * A text that is not a JSON object makes sh_graphql_execute() answer a
 * request error (status 400).
 * Errors: SH_EINVAL (NULL @req), SH_ENOMEM.
 * Ownership: copied.  Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_set_variables(sh_graphql_request_t *req,
                                                 const char *json,
                                                 size_t len);

/* Set the operationName (NUL-terminated), or NULL for none.
 * Errors: SH_EINVAL (NULL @req), SH_ENOMEM.  Ownership: copied.
 * Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_set_operation_name(
    sh_graphql_request_t *req, const char *name);

/* Set the caller's verified identity: @user_id (a token's sub, already
 * checked by sh_auth_verify()) and its SH_ROLE_* bits; NULL @user_id for
 * anonymous.
 * Errors: SH_EINVAL (NULL @req), SH_ENOMEM.  Ownership: copied.
 * Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_set_identity(sh_graphql_request_t *req,
                                                const char *user_id,
                                                unsigned roles);

/* Set the key of the anonymous caller's rate-limit buckets (an IP
 * address, 1..200 bytes), or NULL: anonymous callers without a key share
 * one bucket per field.
 * Errors: SH_EINVAL (NULL @req, or a key over 200 bytes), SH_ENOMEM.
 * Ownership: copied.  Since: 0.1
 */
SH_API sh_err_t sh_graphql_request_set_client_key(sh_graphql_request_t *req,
                                                  const char *key);

/* Free @req; NULL is a no-op.  Since: 0.1 */
SH_API void sh_graphql_request_free(sh_graphql_request_t *req);

/* Execute @req on @hub.
 *
 * @response_json  receives the GraphQL response (a JSON object text,
 *                  NUL-terminated), see the top of this file.
 * @len            may be NULL; receives its bytes.
 * @http_status    may be NULL; receives 200 or 400 as above.
 * Returns SH_OK whenever a response was made, including request and field
 * errors (they are in the response).
 * Errors: SH_EINVAL (NULL @hub, @req or @response_json; no query set),
 * SH_ECANCELED (the hub is closing), SH_EINTERNAL (the built-in schema
 * failed to build; @errbuf says why), SH_ENOMEM.  On error
 * *@response_json is NULL.
 * Ownership: @req borrowed for the call; *@response_json is the caller's,
 * released by sh_graphql_free().
 * Threads: any, concurrently; may wait on the store.  Since: 0.1
 */
SH_API sh_err_t sh_graphql_execute(sh_hub_t *hub,
                                   const sh_graphql_request_t *req,
                                   char **response_json, size_t *len,
                                   int *http_status, char *errbuf,
                                   size_t errbuf_len);

/* Free a response of sh_graphql_execute(); NULL is a no-op.  Since: 0.1 */
SH_API void sh_graphql_free(char *response_json);

#ifdef __cplusplus
}
#endif

#endif
