/* libstreamhub/graphql/engine_int.h: the executor, its resolvers and the
 * engine a hub holds (sh_graphql_execute(), graphql.h).
 *
 * Unlike the parser and the validator (graphql_int.h, core only), this part
 * calls the services, through their public C API only.
 *
 * Values.  Every runtime value is a json-c object: a service result's JSON
 * (services_int.h: the JSON of the GraphQL type) is the source object of
 * its type's fields, and a field with no resolver of its own reads the
 * member of its name.  A nested entity of a service result is a reference
 * ({"id","username"} for a User, {"id"} for a Stream); a field missing
 * from it makes the executor load the whole entity, once per request
 * (the request's cache), users of a list in one sh_user_get_many() call
 * (the list is scanned before its items run: the DataLoader).  The
 * introspection types work the same way over JSON built once per engine
 * as text and parsed once per request that selects it (introspection.c);
 * a type reference {"kind","name"} loads its full __Type from there.
 *
 * @locality any thread: the engine is immutable once built but for its
 * rate-limit buckets (sh__limiter, locked inside) and its pool of parsed
 * introspection copies (each held by one request at a time, see below);
 * a request (struct sh__gql_exec) and every json-c object it reaches
 * belong to the calling thread, and none outlives it (json-c's reference
 * counts are not atomic).
 */
#ifndef SH_GRAPHQL_ENGINE_INT_H
#define SH_GRAPHQL_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "streamhub/graphql.h"
#include "graphql/graphql_int.h"
#include "services/hub_int.h"

struct sh__gql_exec;
struct sh__limiter;

/* A resolver's failure: @rc a service error, mapped to extensions.code by
 * sh__gql_err_code() unless @code is set; @msg the message; @retry_ms
 * (> 0) adds extensions.retryAfter (seconds, rounded up). */
struct sh__gql_rerr {
    const char *code;
    char msg[SH_ERRBUF_SIZE];
    int64_t retry_ms;
};

/* Resolve one field of @src (the parent's source object, borrowed) with
 * the coerced arguments @args (a JSON object, borrowed).  On SH_OK *@out
 * is the value (a new reference; NULL is null); on error @err explains. */
typedef sh_err_t (*sh__gql_resolver_fn)(struct sh__gql_exec *ex,
                                        json_object *src, json_object *args,
                                        json_object **out,
                                        struct sh__gql_rerr *err);

/* What the executor knows of one field of the schema. */
struct sh__gql_field_info {
    sh__gql_resolver_fn resolve;   /* NULL: the member of the field's name */
    bool auth;                     /* @auth */
    struct sh__limiter *limiter;   /* @rateLimit; owned */
};

struct sh__gql_type_info {
    const struct sh__gql_type *type;
    struct sh__gql_field_info *fields;   /* owned, type->nfields */
};

/* Parsed introspection copies an engine keeps for reuse. */
#define SH__GQL_INTRO_POOL 4

struct sh__gql_engine {
    struct sh__gql_schema *schema;       /* owned */
    struct sh__gql_limits limits;
    bool introspection;                  /* graphql.introspection */
    struct sh__gql_type_info *types;     /* owned, schema->ntypes */
    /* Owned, immutable: the introspection JSON as text, never as a json-c
     * object that threads would share (introspection.c). */
    char *intro_text;
    size_t intro_len;
    /* Parsed copies of intro_text that no request holds, so that a
     * request need not parse it again.  A copy is either here (touched
     * only under intro_mu, to take or give it) or held by exactly one
     * request, which gives it back once nothing of the request refers to
     * it; at most SH__GQL_INTRO_POOL are kept. */
    pthread_mutex_t intro_mu;
    json_object *intro_pool[SH__GQL_INTRO_POOL];
    size_t intro_npool;
    /* Owned, NULL when graphql.document-cache-size is 0: the documents
     * that parsed and validated (doccache.c). */
    struct sh__gql_doccache *docs;
};

/* ---- kept documents (doccache.c) -------------------------------------- */

struct sh__gql_doccache;
struct sh__gql_cdoc;
struct sh__metrics;
/* A cache of at most @cap documents (*@out NULL when @cap <= 0), its
 * counters registered in @metrics.  SH_ENOMEM. */
sh_err_t sh__gql_doccache_new(struct sh__metrics *metrics, int64_t cap,
                              struct sh__gql_doccache **out);
/* Free the cache; documents that requests still hold live until they let
 * go.  Only once no request can look it up. */
void sh__gql_doccache_free(struct sh__gql_doccache *dc);
/* The kept document whose text is @len bytes at @text, held (let go with
 * sh__gql_cdoc_release()), or NULL (a miss, or no cache). */
struct sh__gql_cdoc *sh__gql_doccache_get(struct sh__gql_doccache *dc,
                                          const char *text, size_t len);
/* A new entry holding a copy of @text (held by the caller, not yet in
 * the cache), or NULL (no cache, ENOMEM): parse sh__gql_cdoc_text() so
 * that the document borrows the entry's own text. */
struct sh__gql_cdoc *sh__gql_doccache_copy(struct sh__gql_doccache *dc,
                                           const char *text, size_t len);
const char *sh__gql_cdoc_text(const struct sh__gql_cdoc *e);
/* The entry's document: immutable, as long as the entry is held. */
const struct sh__gql_doc *sh__gql_cdoc_doc(const struct sh__gql_cdoc *e);
/* Keep @e (from sh__gql_doccache_copy(), still held by the caller) with
 * @doc (taken: parsed from @e's text and valid), evicting the least
 * recently used entry past the bound.  When the same text is kept already,
 * @e is not (and frees @doc when let go). */
void sh__gql_doccache_put(struct sh__gql_doccache *dc, struct sh__gql_cdoc *e,
                          struct sh__gql_doc *doc);
/* Let go of @e (NULL: nothing). */
void sh__gql_cdoc_release(struct sh__gql_cdoc *e);

/* The hub's engine, built at the first call (thread-safe, lock-free: a
 * compare-and-swap publishes it).  SH_ECANCELED, SH_EINTERNAL, SH_ENOMEM.
 */
sh_err_t sh__gql_engine_get(sh_hub_t *hub, struct sh__gql_engine **out,
                            char *errbuf, size_t errbuf_len);

/* The field info of @f of @t; NULL for meta fields. */
const struct sh__gql_field_info *sh__gql_field_info(
    const struct sh__gql_engine *eng, const struct sh__gql_type *t,
    const struct sh__gql_field *f);

/* ---- one request ------------------------------------------------------- */

struct sh__gql_exec {
    sh_hub_t *hub;
    struct sh__gql_engine *eng;
    const struct sh__gql_schema *s;
    const struct sh__gql_doc *doc;
    const struct sh__gql_definition *op;
    json_object *vars;          /* owned: coerced variables */
    const char *viewer;         /* borrowed; NULL anonymous */
    unsigned roles;
    const char *client_key;     /* borrowed; may be NULL */
    json_object *errors;        /* owned: the response's errors array */
    json_object *users;         /* owned: id -> full User (cache) */
    json_object *streams;       /* owned: id -> full Stream (cache) */
    json_object *memo;          /* owned: "kind:id" -> value (cache) */
    json_object *no_args;       /* owned, NULL until needed: the {} that
                                 * fields without arguments share */
    json_object *intro;         /* owned, NULL until needed: this
                                 * request's parse of eng->intro_text */
    /* Borrowed: the field nodes of the field whose resolver runs (its
     * merged response key), for sh__gql_selects(); none outside. */
    const struct sh__gql_selection *const *sel_nodes;
    size_t sel_n;
    bool oom;
};

/* Whether the field whose resolver runs selects the field @a (of its
 * result type), and, when @b is not NULL, @b under @a (e.g. "edges",
 * "cursor"), through fragments.  Conservative: true when unsure (a
 * field under @skip / @include or a type condition counts as selected),
 * so a resolver that skips what is not selected never skips what
 * completion reads.  True outside a resolver.  @locality the request's
 * thread. */
bool sh__gql_selects(const struct sh__gql_exec *ex, const char *a,
                     const char *b);

/* Run the whole pipeline for one request: parse, validate, limits,
 * operation, variables, execution.  *@resp is the response's JSON text
 * (malloc'd, the caller's; *@len bytes, NUL-terminated): text, so that no
 * json-c object of the request outlives it.  *@status 200 or 400.
 * SH_ENOMEM only. */
sh_err_t sh__gql_run(sh_hub_t *hub, struct sh__gql_engine *eng,
                     const char *query, size_t qlen, const char *vars_json,
                     size_t vars_len, const char *op_name,
                     const char *viewer, unsigned roles,
                     const char *client_key, char **resp, size_t *len,
                     int *status);

/* Map a service error to extensions.code. */
const char *sh__gql_err_code(sh_err_t rc);

/* The full entity behind a reference, from the request's cache or loaded
 * (one sh_user_get() / sh_stream_get()).  Borrowed from the cache.
 * NULL with @err set when it cannot be loaded. */
json_object *sh__gql_user_full(struct sh__gql_exec *ex, json_object *ref,
                               sh_err_t *rc, struct sh__gql_rerr *err);
json_object *sh__gql_stream_full(struct sh__gql_exec *ex, json_object *ref,
                                 sh_err_t *rc, struct sh__gql_rerr *err);
/* Load @ids (NUL-terminated, @n) into the user cache with one batched
 * call; ids already cached are skipped.  Failures are left to the
 * per-user path. */
void sh__gql_users_prefetch(struct sh__gql_exec *ex, const char **ids,
                            size_t n);

/* resolvers.c: load the follower and following counts of @ids (@n) with
 * one sh_follow_counts_many() call into the request's memo, where
 * User.followerCount and User.followingCount find them; ids already
 * there, and users that do not exist, are skipped.  Failures are left to
 * the per-user path. */
void sh__gql_follow_counts_prefetch(struct sh__gql_exec *ex,
                                    const char **ids, size_t n);

/* resolvers.c: the resolver of Type.field, NULL when the member of the
 * source object of that name is the value. */
sh__gql_resolver_fn sh__gql_resolver_for(const char *type,
                                         const char *field);

/* introspection.c: build eng->intro_text.  SH_ENOMEM. */
sh_err_t sh__gql_introspection_build(struct sh__gql_engine *eng);
/* The request's introspection JSON, {"schema": __Schema, "types": name ->
 * __Type}: at the first call a copy taken from the engine's pool, or
 * parsed from eng->intro_text, kept in ex->intro (borrowed from there).
 * The request must not change it.  NULL with ex->oom set on ENOMEM. */
json_object *sh__gql_intro(struct sh__gql_exec *ex);
/* Give ex->intro back to the engine's pool (or free it when the pool is
 * full); ex->intro is NULL after.  Only once no object of the request
 * (its response included) refers to anything in it. */
void sh__gql_intro_release(struct sh__gql_exec *ex);
/* Free the pool (engine_free()). */
void sh__gql_intro_pool_free(struct sh__gql_engine *eng);
/* The full __Type of @name from sh__gql_intro(ex), borrowed; NULL when
 * unknown (or ENOMEM: ex->oom). */
json_object *sh__gql_intro_type(struct sh__gql_exec *ex, const char *name);
/* Resolvers of the introspection types' fields with arguments
 * (fields, enumValues, args, inputFields, directives: includeDeprecated). */
sh__gql_resolver_fn sh__gql_intro_resolver_for(const char *type,
                                               const char *field);

/* ---- subscriptions (the graphql-transport-ws door) --------------------- *
 *
 * Events and their GraphQL shape.  A prepared subscription names its bus
 * channel; each bus event of that channel is turned into the value of the
 * root field and the client's selection set is executed on it:
 *
 *  chatMessages(streamId, sinceOffset, sinceEpoch) -> channel
 *    chat:<streamId>, ChatEvent {kind, epoch and offset (the bus event's),
 *    message, messageId, userId, settings}:
 *      chat.message            MESSAGE           message = data
 *      chat.message_deleted    MESSAGE_DELETED   messageId = data.messageId
 *                                                (or data.id)
 *      chat.user_timed_out     USER_TIMED_OUT    userId = data.userId
 *      chat.user_banned        USER_BANNED       userId = data.userId
 *      chat.settings_changed   SETTINGS_CHANGED  settings = data
 *  streamUpdates(streamId) -> channel stream:<streamId>;
 *  liveStreams(category)   -> channel live (events whose stream's category
 *    differs from a given @category are skipped: format returns
 *    SH_ENOTFOUND);
 *    StreamEvent {kind, stream, raid}:
 *      stream.live     LIVE     stream = data
 *      stream.offline  OFFLINE  stream = data
 *      stream.updated  UPDATED  stream = data
 *      stream.viewers  VIEWERS  stream = data (a partial Stream: missing
 *                               fields are loaded by id)
 *      raid.incoming   RAID     raid = data, stream = data.from
 *  notifications -> channel user:<viewer id>; Notification = data of
 *    `notification` events.
 * Other event types on those channels are skipped (SH_ENOTFOUND).
 */
struct sh__gql_sub;

/* Parse, validate and check @query as a subscription with one root field,
 * coerce its arguments and variables.  On SH_OK *@out is ready; on
 * SH_EINVAL *@resp is the error response ({"errors":[...]}) to send.
 * @viewer may be NULL (anonymous: `notifications` then fails with
 * UNAUTHENTICATED in *@resp).  SH_ENOMEM. */
sh_err_t sh__gql_sub_prepare(sh_hub_t *hub, const char *query, size_t qlen,
                             const char *vars_json, size_t vars_len,
                             const char *op_name, const char *viewer,
                             unsigned roles, struct sh__gql_sub **out,
                             json_object **resp);
/* The bus channel to subscribe to ("chat:<id>"), borrowed until free. */
const char *sh__gql_sub_channel(const struct sh__gql_sub *sub);
/* sinceOffset of chatMessages, or -1 when not given. */
int64_t sh__gql_sub_since(const struct sh__gql_sub *sub);
/* sinceEpoch of chatMessages (borrowed until free), NULL when not given
 * or without sinceOffset: then sinceOffset is in the current epoch. */
const char *sh__gql_sub_since_epoch(const struct sh__gql_sub *sub);
/* The `next` payload for one bus event (@type e.g. "chat.message", @data
 * the event's data, @epoch and @offset its bus position): *@payload is
 * {"data":{"<responseName>":...}} plus "errors" when some selected field
 * failed (a new reference).  SH_ENOTFOUND: the event is not for this
 * subscription (skip it).  SH_ENOMEM.  May wait on the store (fields
 * outside the event's data): call it off the loop thread. */
sh_err_t sh__gql_sub_format(struct sh__gql_sub *sub, const char *type,
                            json_object *data, const char *epoch,
                            int64_t offset, json_object **payload);
void sh__gql_sub_free(struct sh__gql_sub *sub);

#endif
