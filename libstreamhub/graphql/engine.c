/* libstreamhub/graphql/engine.c: the hub's GraphQL engine and the public
 * entry point (graphql.h).
 *
 * The engine (schema model, per-field executor info, @rateLimit buckets,
 * introspection JSON) is built at the first request and published in
 * hub->graphql with a compare-and-swap: two first requests racing both
 * build one, the loser frees its own.  sh_hub_close() frees it through
 * hub->graphql_free, which the winner sets (the services know nothing of
 * this area).
 *
 * Field info comes from the schema model's directives, not from a list of
 * fields: @auth sets auth, @rateLimit(limit, window) makes a limiter of
 * capacity `limit` refilled at limit/window tokens a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit_int.h"
#include "graphql/engine_int.h"

/* Buckets kept per @rateLimit field (users or client keys active within
 * one window). */
#define LIMITER_KEYS 100000

struct sh_graphql_request {
    char *query;
    size_t query_len;
    char *vars;
    size_t vars_len;
    char *op_name;
    char *user_id;
    unsigned roles;
    char *client_key;
};

static void engine_free(struct sh__gql_engine *eng)
{
    if (eng == NULL)
        return;
    if (eng->types != NULL && eng->schema != NULL) {
        for (size_t i = 0; i < eng->schema->ntypes; i++) {
            struct sh__gql_type_info *ti = &eng->types[i];
            if (ti->fields == NULL)
                continue;
            for (size_t f = 0; f < ti->type->nfields; f++)
                sh__limiter_free(ti->fields[f].limiter);
            free(ti->fields);
        }
    }
    free(eng->types);
    sh__gql_doccache_free(eng->docs);
    free(eng->intro_text);
    sh__gql_intro_pool_free(eng);
    pthread_mutex_destroy(&eng->intro_mu);
    sh__gql_schema_free(eng->schema);
    free(eng);
}

static int64_t dir_int(const struct sh__gql_directive *d, const char *name)
{
    for (const struct sh__gql_argument *a = d->args; a; a = a->next)
        if (strcmp(a->name, name) == 0 && a->value->kind == SH__GQL_V_INT)
            return strtoll(a->value->str, NULL, 10);
    return 0;
}

static sh_err_t field_info_build(sh_hub_t *hub,
                                 struct sh__gql_field_info *fi,
                                 const struct sh__gql_type *t,
                                 const struct sh__gql_field *f,
                                 char *errbuf, size_t errbuf_len)
{
    fi->resolve = sh__gql_resolver_for(t->name, f->name);
    for (const struct sh__gql_directive *d = f->directives; d; d = d->next) {
        if (strcmp(d->name, "auth") == 0) {
            fi->auth = true;
        } else if (strcmp(d->name, "rateLimit") == 0) {
            int64_t limit = dir_int(d, "limit"), window = dir_int(d, "window");
            if (limit <= 0 || window <= 0) {
                sh__errbuf(errbuf, errbuf_len, "%s.%s: bad @rateLimit",
                           t->name, f->name);
                return SH_EINTERNAL;
            }
            fi->limiter = sh__limiter_new((double)limit,
                                          (double)limit / (double)window,
                                          LIMITER_KEYS);
            if (fi->limiter == NULL)
                return SH_ENOMEM;
            /* A cluster shares the buckets (fields run on workers). */
            if (sh__cluster_redis(hub) != NULL) {
                char name[96];
                snprintf(name, sizeof name, "gql:%s.%s", t->name, f->name);
                (void)sh__cluster_share_limiter(hub, fi->limiter, name);
            }
        }
    }
    return SH_OK;
}

static sh_err_t engine_new(sh_hub_t *hub, const sh_config_t *conf,
                           struct sh__gql_engine **out, char *errbuf,
                           size_t errbuf_len)
{
    struct sh__gql_engine *eng = calloc(1, sizeof *eng);
    sh_err_t rc;

    *out = NULL;
    if (eng == NULL)
        return SH_ENOMEM;
    if (pthread_mutex_init(&eng->intro_mu, NULL) != 0) {
        free(eng);
        return SH_ENOMEM;
    }
    rc = sh__gql_schema_new(&eng->schema, errbuf, errbuf_len);
    if (rc != SH_OK) {
        pthread_mutex_destroy(&eng->intro_mu);
        free(eng);
        return rc == SH_ENOMEM ? rc : SH_EINTERNAL;
    }
    sh__gql_limits_from_config(&eng->limits, conf);
    eng->introspection = sh__config_bool(conf, "graphql.introspection");
    eng->types = calloc(eng->schema->ntypes + 1, sizeof *eng->types);
    if (eng->types == NULL) {
        engine_free(eng);
        return SH_ENOMEM;
    }
    for (size_t i = 0; i < eng->schema->ntypes; i++) {
        const struct sh__gql_type *t = eng->schema->types[i];
        eng->types[i].type = t;
        if (t->nfields == 0)
            continue;
        eng->types[i].fields = calloc(t->nfields, sizeof *eng->types[i].fields);
        if (eng->types[i].fields == NULL) {
            engine_free(eng);
            return SH_ENOMEM;
        }
        for (size_t f = 0; f < t->nfields; f++) {
            rc = field_info_build(hub, &eng->types[i].fields[f], t,
                                  &t->fields[f],
                                  errbuf, errbuf_len);
            if (rc != SH_OK) {
                engine_free(eng);
                return rc;
            }
        }
    }
    rc = sh__gql_introspection_build(eng);
    if (rc == SH_OK)
        rc = sh__gql_doccache_new(hub->metrics, sh__config_int(
                                      conf, "graphql.document-cache-size"),
                                  &eng->docs);
    if (rc != SH_OK) {
        engine_free(eng);
        return rc;
    }
    *out = eng;
    return SH_OK;
}

const struct sh__gql_field_info *sh__gql_field_info(
    const struct sh__gql_engine *eng, const struct sh__gql_type *t,
    const struct sh__gql_field *f)
{
    for (size_t i = 0; i < eng->schema->ntypes; i++) {
        const struct sh__gql_type_info *ti = &eng->types[i];
        if (ti->type != t)
            continue;
        if (ti->fields == NULL || f < t->fields || f >= t->fields + t->nfields)
            return NULL;
        return &ti->fields[f - t->fields];
    }
    return NULL;
}

static void engine_free_hook(struct sh__gql_engine *eng)
{
    engine_free(eng);
}

sh_err_t sh__gql_engine_get(sh_hub_t *hub, struct sh__gql_engine **out,
                            char *errbuf, size_t errbuf_len)
{
    struct sh__gql_engine *eng, *expected = NULL;
    sh_err_t rc;

    *out = NULL;
    rc = sh__hub_live(hub);
    if (rc != SH_OK)
        return rc;
    eng = atomic_load(&hub->graphql);
    if (eng != NULL) {
        *out = eng;
        return SH_OK;
    }
    rc = engine_new(hub, hub->conf, &eng, errbuf, errbuf_len);
    if (rc != SH_OK)
        return rc;
    if (!atomic_compare_exchange_strong(&hub->graphql, &expected, eng)) {
        engine_free(eng);           /* another thread won */
        *out = expected;
        return SH_OK;
    }
    atomic_store(&hub->graphql_free, engine_free_hook);
    *out = eng;
    return SH_OK;
}

/* ---- public API ------------------------------------------------------- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        if (n > 0)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

SH_API sh_err_t sh_graphql_request_new(sh_graphql_request_t **out)
{
    if (out == NULL)
        return SH_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? SH_OK : SH_ENOMEM;
}

static sh_err_t set_str(char **slot, size_t *lenp, const char *s, size_t n)
{
    char *p = NULL;

    if (s != NULL) {
        p = dupn(s, n);
        if (p == NULL)
            return SH_ENOMEM;
    }
    free(*slot);
    *slot = p;
    if (lenp != NULL)
        *lenp = s != NULL ? n : 0;
    return SH_OK;
}

SH_API sh_err_t sh_graphql_request_set_query(sh_graphql_request_t *req,
                                             const char *query, size_t len)
{
    if (req == NULL || (query == NULL && len > 0))
        return SH_EINVAL;
    return set_str(&req->query, &req->query_len, query != NULL ? query : "",
                   len);
}

SH_API sh_err_t sh_graphql_request_set_variables(sh_graphql_request_t *req,
                                                 const char *json,
                                                 size_t len)
{
    if (req == NULL)
        return SH_EINVAL;
    return set_str(&req->vars, &req->vars_len, json, len);
}

SH_API sh_err_t sh_graphql_request_set_operation_name(
    sh_graphql_request_t *req, const char *name)
{
    if (req == NULL)
        return SH_EINVAL;
    return set_str(&req->op_name, NULL, name,
                   name != NULL ? strlen(name) : 0);
}

SH_API sh_err_t sh_graphql_request_set_identity(sh_graphql_request_t *req,
                                                const char *user_id,
                                                unsigned roles)
{
    sh_err_t rc;

    if (req == NULL)
        return SH_EINVAL;
    rc = set_str(&req->user_id, NULL, user_id,
                 user_id != NULL ? strlen(user_id) : 0);
    if (rc == SH_OK)
        req->roles = user_id != NULL ? roles : 0;
    return rc;
}

SH_API sh_err_t sh_graphql_request_set_client_key(sh_graphql_request_t *req,
                                                  const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;

    if (req == NULL || n > 200)
        return SH_EINVAL;
    return set_str(&req->client_key, NULL, key, n);
}

SH_API void sh_graphql_request_free(sh_graphql_request_t *req)
{
    if (req == NULL)
        return;
    free(req->query);
    free(req->vars);
    free(req->op_name);
    free(req->user_id);
    free(req->client_key);
    free(req);
}

SH_API sh_err_t sh_graphql_execute(sh_hub_t *hub,
                                   const sh_graphql_request_t *req,
                                   char **response_json, size_t *len,
                                   int *http_status, char *errbuf,
                                   size_t errbuf_len)
{
    SH__HUB_CALL(hub);
    struct sh__gql_engine *eng;
    size_t n = 0;
    int status = 500;
    sh_err_t rc;

    if (response_json != NULL)
        *response_json = NULL;
    if (len != NULL)
        *len = 0;
    if (http_status != NULL)
        *http_status = 0;
    if (hub == NULL || req == NULL || response_json == NULL ||
        req->query == NULL) {
        sh__errbuf(errbuf, errbuf_len, "hub, request, query and "
                   "response_json are required");
        return SH_EINVAL;
    }
    rc = sh__gql_engine_get(hub, &eng, errbuf, errbuf_len);
    if (rc != SH_OK) {
        if (rc == SH_ECANCELED)
            sh__errbuf(errbuf, errbuf_len, "the hub is closing");
        else if (rc == SH_ENOMEM)
            sh__errbuf(errbuf, errbuf_len, "out of memory");
        return rc;
    }
    rc = sh__gql_run(hub, eng, req->query, req->query_len, req->vars,
                     req->vars_len, req->op_name, req->user_id, req->roles,
                     req->client_key, response_json, &n, &status);
    if (rc != SH_OK) {
        sh__errbuf(errbuf, errbuf_len, "out of memory");
        return rc;
    }
    if (len != NULL)
        *len = n;
    if (http_status != NULL)
        *http_status = status;
    return SH_OK;
}

SH_API void sh_graphql_free(char *response_json)
{
    free(response_json);
}
