/* libstreamhub/gateway/graphql_http.c: GraphQL over HTTP on /graphql
 * (the GraphQL over HTTP draft, as graphql-http audits it).
 *
 *   POST /graphql   Content-Type: application/json (else 415), a JSON
 *                   object {query, variables, operationName, extensions}
 *   GET  /graphql   ?query=&variables=&operationName=&extensions=, for
 *                   queries only (a mutation: 405 with Allow: POST)
 *
 * Media type: Accept naming application/graphql-response+json gets it,
 * anything else application/json.  The status is the executor's (200 for
 * results, field errors included; 400 for a request error: a document
 * that does not parse or validate, variables that do not coerce), 401
 * for a bad bearer token, 413 for a document over
 * graphql.max-document-bytes (bodies over http.max-body-bytes are refused
 * by the HTTP reader before they get here).
 *
 * Persisted queries as Apollo sends them: extensions.persistedQuery
 * {version: 1, sha256Hash}.  With a query the hash is checked and the
 * query remembered; without one it is looked up, and a miss is answered
 * with PersistedQueryNotFound (status 200: Apollo clients then retry with
 * the query).  The map is bounded (least recently used out) and lives on
 * the loop thread only, so it takes no lock.
 *
 * Execution runs on a worker (sh__req_offload): it may wait on the store.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "streamhub/graphql.h"
#include "graphql/graphql_int.h"
#include "gw.h"

#define PQ_MAX_ENTRIES 10000
#define PQ_BUCKETS 16384            /* a power of two */
#define HASH_HEX 64

static const char CT_JSON[] = "application/json; charset=utf-8";
static const char CT_GQL[] = "application/graphql-response+json; charset=utf-8";

/* ---- persisted queries ------------------------------------------------ *
 *
 * Invariants: every entry is in exactly one bucket chain and in the LRU
 * list (head = most recent); n == length of the list <= PQ_MAX_ENTRIES. */
struct pq_entry {
    struct pq_entry *hnext;         /* bucket chain */
    struct pq_entry *prev, *next;   /* LRU list */
    char hash[HASH_HEX + 1];        /* lower-case hex */
    char *query;                    /* owned */
    size_t len;
};

struct sh__gql_http {
    struct pq_entry *buckets[PQ_BUCKETS];
    struct pq_entry *head, *tail;
    size_t n;
};

static size_t pq_bucket(const char *hash)
{
    /* The key is a SHA-256: its first hex digits are already uniform. */
    size_t h = 0;

    for (int i = 0; i < 8; i++)
        h = (h << 4) | (size_t)(isdigit((unsigned char)hash[i])
                                    ? hash[i] - '0'
                                    : hash[i] - 'a' + 10);
    return h & (PQ_BUCKETS - 1);
}

static void lru_unlink(struct sh__gql_http *s, struct pq_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct sh__gql_http *s, struct pq_entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head != NULL)
        s->head->prev = e;
    s->head = e;
    if (s->tail == NULL)
        s->tail = e;
}

static struct pq_entry *pq_find(struct sh__gql_http *s, const char *hash)
{
    for (struct pq_entry *e = s->buckets[pq_bucket(hash)]; e != NULL;
         e = e->hnext) {
        if (strcmp(e->hash, hash) == 0) {
            lru_unlink(s, e);
            lru_push(s, e);
            return e;
        }
    }
    return NULL;
}

static void pq_remove(struct sh__gql_http *s, struct pq_entry *e)
{
    struct pq_entry **pp = &s->buckets[pq_bucket(e->hash)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->n--;
    free(e->query);
    free(e);
}

/* Remember @query under @hash; on ENOMEM nothing is remembered (the next
 * request sends the query again). */
static void pq_store(struct sh__gql_http *s, const char *hash,
                     const char *query, size_t len)
{
    struct pq_entry *e;
    size_t b;

    if (pq_find(s, hash) != NULL)
        return;
    if (s->n >= PQ_MAX_ENTRIES)
        pq_remove(s, s->tail);
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->query = malloc(len + 1)) == NULL) {
        free(e);
        return;
    }
    memcpy(e->query, query, len);
    e->query[len] = '\0';
    e->len = len;
    memcpy(e->hash, hash, HASH_HEX + 1);
    b = pq_bucket(hash);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    lru_push(s, e);
    s->n++;
}

void sh__graphql_http_free(struct sh_gateway *gw)
{
    struct sh__gql_http *s = gw->gql_http;

    if (s == NULL)
        return;
    while (s->head != NULL)
        pq_remove(s, s->head);
    free(s);
    gw->gql_http = NULL;
}

static struct sh__gql_http *state_of(struct sh_gateway *gw)
{
    if (gw->gql_http == NULL)
        gw->gql_http = calloc(1, sizeof(struct sh__gql_http));
    return gw->gql_http;
}

/* ---- the operation of a document -------------------------------------- */

int sh__gql_op_kind(sh_hub_t *hub, const char *query, size_t len,
                    const char *op_name)
{
    struct sh__gql_limits lim;
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_doc *doc = NULL;
    const struct sh__gql_definition *found = NULL;
    size_t nops = 0;
    int kind = -1;

    sh__gql_limits_from_config(&lim, hub->conf);
    if (sh__gql_parse(query, len, &lim, &doc, &errs) != SH_OK) {
        sh__gql_errors_clear(&errs);
        return -1;
    }
    for (const struct sh__gql_definition *d = doc->defs; d != NULL;
         d = d->next) {
        if (d->kind != SH__GQL_D_OPERATION)
            continue;
        nops++;
        if (op_name == NULL ? found == NULL
                            : (d->name != NULL && strcmp(d->name, op_name) == 0))
            found = d;
    }
    if (found != NULL && (op_name != NULL || nops == 1))
        kind = (int)found->op;
    sh__gql_doc_free(doc);
    sh__gql_errors_clear(&errs);
    return kind;
}

/* ---- responses -------------------------------------------------------- */

/* {"errors":[{"message":@msg,"extensions":{"code":@code}}]} */
json_object *sh__gql_error_response(const char *msg, const char *code)
{
    json_object *o = json_object_new_object();
    json_object *a = json_object_new_array();
    json_object *e = json_object_new_object();

    json_object_object_add(e, "message", json_object_new_string(msg));
    if (code != NULL) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "code", json_object_new_string(code));
        json_object_object_add(e, "extensions", x);
    }
    json_object_array_add(a, e);
    json_object_object_add(o, "errors", a);
    return o;
}

static void respond_text(struct sh__req *req, int status, const char *ctype,
                         const char *extra, const char *text, size_t len)
{
    sh__respond(req, status, ctype, extra, text, len);
}

static void respond_error(struct sh__req *req, int status, const char *ctype,
                          const char *extra, const char *msg,
                          const char *code)
{
    json_object *o = sh__gql_error_response(msg, code);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (text == NULL)
        sh__respond(req, 500, NULL, NULL, NULL, 0);
    else
        respond_text(req, status, ctype, extra, text, len);
    json_object_put(o);
}

/* ---- one request ------------------------------------------------------ */

struct gql_job {
    struct sh__req *req;
    sh_hub_t *hub;
    const char *ctype;
    bool is_get;
    char *query;
    size_t qlen;
    char *vars;                     /* JSON object text or NULL */
    size_t vars_len;
    char *op_name;                  /* or NULL */
    char user_id[64];               /* "" anonymous */
    unsigned roles;
    char client_key[64];
    /* results */
    bool get_mutation;
    sh_err_t rc;
    char *resp;
    size_t resp_len;
    int status;
};

static void job_free(struct gql_job *j)
{
    if (j == NULL)
        return;
    free(j->query);
    free(j->vars);
    free(j->op_name);
    sh_graphql_free(j->resp);
    free(j);
}

/* The operation's span (OpenTelemetry's GraphQL conventions): named
 * "<type> <name>", a child of the request's.  Only a recording span pays
 * for finding the operation's type. */
static void gql_span_start(struct gql_job *j, struct sh__span *sp)
{
    static const char *const kinds[] = { "query", "mutation",
                                         "subscription" };
    char name[SH__SPAN_NAME_MAX];
    const char *kind;
    int k;

    sh__span_start(sp, "graphql", SH__SPAN_INTERNAL);
    if (!sh__span_on(sp))
        return;
    k = sh__gql_op_kind(j->hub, j->query, j->qlen, j->op_name);
    kind = k >= 0 && k < 3 ? kinds[k] : "graphql";
    if (j->op_name != NULL) {
        snprintf(name, sizeof name, "%s %s", kind, j->op_name);
        sh__span_attr_str(sp, "graphql.operation.name", j->op_name);
    } else {
        snprintf(name, sizeof name, "%s", kind);
    }
    sh__span_set_name(sp, name);
    if (k >= 0)
        sh__span_attr_str(sp, "graphql.operation.type", kind);
    sh__span_enter(sp);
}

static void gql_work_traced(void *arg);

static void gql_work(void *arg)
{
    struct gql_job *j = arg;
    struct sh__span sp;

    gql_span_start(j, &sp);
    gql_work_traced(arg);
    if (j->rc != SH_OK || j->status == 400 || j->get_mutation)
        sh__span_fail(&sp);
    sh__span_end(&sp);
}

static void gql_work_traced(void *arg)
{
    struct gql_job *j = arg;
    sh_graphql_request_t *r = NULL;

    if (j->is_get && sh__gql_op_kind(j->hub, j->query, j->qlen,
                                     j->op_name) == SH__GQL_MUTATION) {
        j->get_mutation = true;
        return;
    }
    j->rc = sh_graphql_request_new(&r);
    if (j->rc == SH_OK)
        j->rc = sh_graphql_request_set_query(r, j->query, j->qlen);
    if (j->rc == SH_OK && j->vars != NULL)
        j->rc = sh_graphql_request_set_variables(r, j->vars, j->vars_len);
    if (j->rc == SH_OK && j->op_name != NULL)
        j->rc = sh_graphql_request_set_operation_name(r, j->op_name);
    if (j->rc == SH_OK && j->user_id[0] != '\0')
        j->rc = sh_graphql_request_set_identity(r, j->user_id, j->roles);
    if (j->rc == SH_OK && j->client_key[0] != '\0')
        j->rc = sh_graphql_request_set_client_key(r, j->client_key);
    if (j->rc == SH_OK)
        j->rc = sh_graphql_execute(j->hub, r, &j->resp, &j->resp_len,
                                   &j->status, NULL, 0);
    sh_graphql_request_free(r);
}

static void gql_done(void *arg, bool canceled)
{
    struct gql_job *j = arg;
    struct sh__req *req = j->req;

    if (canceled || j->rc == SH_ECANCELED)
        respond_error(req, 503, j->ctype, "Retry-After: 1\r\n",
                      "server shutting down", "INTERNAL");
    else if (j->get_mutation)
        respond_error(req, 405, j->ctype, "Allow: POST\r\n",
                      "Mutations are only allowed over POST.",
                      "BAD_USER_INPUT");
    else if (j->rc != SH_OK || j->resp == NULL)
        respond_error(req, 500, j->ctype, NULL, "internal error",
                      "INTERNAL");
    else
        respond_text(req, j->status == 400 ? 400 : 200, j->ctype, NULL,
                     j->resp, j->resp_len);
    job_free(j);
}

static bool accept_graphql_response(const char *accept)
{
    /* A media range list; the names are case-insensitive. */
    if (accept == NULL)
        return false;
    for (const char *p = accept; *p != '\0'; p++) {
        if (strncasecmp(p, "application/graphql-response+json", 33) == 0)
            return true;
    }
    return false;
}

static bool content_type_json(const char *ct)
{
    size_t n = 16;

    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Parse a parameter that must be a JSON object (or absent/null).  GET
 * parameters arrive as JSON text. */
static bool param_object(json_object *v, json_object **out)
{
    *out = NULL;
    if (v == NULL)
        return true;
    if (!json_object_is_type(v, json_type_object))
        return false;
    *out = v;
    return true;
}

static json_object *parse_json_text(const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    json_object *o;

    if (tok == NULL)
        return NULL;
    o = json_tokener_parse_ex(tok, text, (int)len);
    if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
                      json_tokener_get_parse_end(tok) != len)) {
        /* Trailing bytes after the value: only white space may follow. */
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
            if (!isspace((unsigned char)text[i])) {
                json_object_put(o);
                o = NULL;
                break;
            }
        }
    }
    json_tokener_free(tok);
    return o;
}

static bool valid_hash(const char *h)
{
    if (strlen(h) != HASH_HEX)
        return false;
    for (size_t i = 0; i < HASH_HEX; i++) {
        if (!isxdigit((unsigned char)h[i]))
            return false;
    }
    return true;
}

static void sha256_hex(const char *q, size_t len, char out[HASH_HEX + 1])
{
    unsigned char d[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(d, (const unsigned char *)q, len);
    sodium_bin2hex(out, HASH_HEX + 1, d, sizeof d);
}

/* The parameters of @req as a JSON object (a new reference), or NULL with
 * *@why set. */
static json_object *request_params(struct sh__req *req, const char **why)
{
    json_object *p;

    if (strcmp(req->hr->method, "POST") == 0) {
        if (req->hr->body == NULL || req->hr->body_len == 0) {
            *why = "request body is empty";
            return NULL;
        }
        p = parse_json_text((const char *)req->hr->body, req->hr->body_len);
        if (p == NULL || !json_object_is_type(p, json_type_object)) {
            json_object_put(p);
            *why = "request body is not a JSON object";
            return NULL;
        }
        return p;
    }
    p = json_object_new_object();
    if (p == NULL) {
        *why = "out of memory";
        return NULL;
    }
    static const char *const names[] = { "query", "operationName",
                                         "variables", "extensions" };
    for (size_t i = 0; i < 4; i++) {
        char *v = sh__query_param(req->query, names[i]);
        json_object *jv;
        if (v == NULL)
            continue;
        if (i < 2) {
            jv = json_object_new_string(v);
        } else if (v[0] == '\0') {
            jv = NULL;
        } else {
            jv = parse_json_text(v, strlen(v));
            if (jv == NULL) {
                free(v);
                json_object_put(p);
                *why = i == 2 ? "variables is not JSON"
                              : "extensions is not JSON";
                return NULL;
            }
        }
        free(v);
        json_object_object_add(p, names[i], jv);
    }
    return p;
}

bool sh__graphql_http(struct sh__req *req)
{
    struct sh_gateway *gw = req->conn->gw;
    bool is_get = strcmp(req->hr->method, "GET") == 0;
    const char *ctype = accept_graphql_response(
                            sh__req_header(req, "Accept"))
                            ? CT_GQL
                            : CT_JSON;
    const char *why = NULL, *qtext = NULL;
    size_t qlen = 0;
    json_object *p = NULL, *q, *vars, *opn, *ext, *pq = NULL;
    struct gql_job *j = NULL;
    struct sh__gql_http *s;
    char *pq_text = NULL;          /* a persisted query's copy, owned */

    if (sh__req_auth(req) != SH_OK) {
        respond_error(req, 401, ctype,
                      "WWW-Authenticate: Bearer\r\n",
                      "invalid or expired token", "UNAUTHENTICATED");
        return true;
    }
    if (!is_get &&
        !content_type_json(sh__req_header(req, "Content-Type"))) {
        respond_error(req, 415, ctype, "Accept-Post: application/json\r\n",
                      "Content-Type must be application/json",
                      "BAD_USER_INPUT");
        return true;
    }
    p = request_params(req, &why);
    if (p == NULL) {
        respond_error(req, 400, ctype, NULL, why, "BAD_USER_INPUT");
        return true;
    }
    q = json_object_object_get(p, "query");
    opn = json_object_object_get(p, "operationName");
    if (q != NULL && !json_object_is_type(q, json_type_string)) {
        why = "query must be a string";
        goto bad;
    }
    if (opn != NULL && !json_object_is_type(opn, json_type_string)) {
        why = "operationName must be a string";
        goto bad;
    }
    if (!param_object(json_object_object_get(p, "variables"), &vars)) {
        why = "variables must be an object";
        goto bad;
    }
    if (!param_object(json_object_object_get(p, "extensions"), &ext)) {
        why = "extensions must be an object";
        goto bad;
    }
    if (q != NULL) {
        qtext = json_object_get_string(q);
        qlen = (size_t)json_object_get_string_len(q);
    }
    if (ext != NULL)
        pq = json_object_object_get(ext, "persistedQuery");
    if (pq != NULL) {
        json_object *ver = json_object_object_get(pq, "version");
        json_object *h = json_object_object_get(pq, "sha256Hash");
        char hash[HASH_HEX + 1], got[HASH_HEX + 1];

        if (!json_object_is_type(pq, json_type_object) ||
            !json_object_is_type(ver, json_type_int) ||
            json_object_get_int64(ver) != 1 ||
            !json_object_is_type(h, json_type_string) ||
            !valid_hash(json_object_get_string(h))) {
            why = "persistedQuery needs version 1 and a sha256Hash";
            goto bad;
        }
        for (size_t i = 0; i <= HASH_HEX; i++)
            hash[i] = (char)tolower(
                (unsigned char)json_object_get_string(h)[i]);
        if (qtext != NULL) {
            sha256_hex(qtext, qlen, got);
            if (strcmp(got, hash) != 0) {
                why = "provided sha does not match query";
                goto bad;
            }
        }
        /* The map is the gateway's, shared by its loops: used under
         * gw->lock, and a query found is copied before it is let go. */
        pthread_mutex_lock(&gw->lock);
        s = state_of(gw);
        if (s != NULL && qtext != NULL) {
            pq_store(s, hash, qtext, qlen);
        } else if (s != NULL) {
            struct pq_entry *e = pq_find(s, hash);
            if (e != NULL && (pq_text = malloc(e->len + 1)) != NULL) {
                memcpy(pq_text, e->query, e->len + 1);
                qtext = pq_text;
                qlen = e->len;
            } else if (e != NULL) {
                s = NULL;           /* out of memory */
            }
        }
        pthread_mutex_unlock(&gw->lock);
        if (s == NULL) {
            respond_error(req, 500, ctype, NULL, "out of memory",
                          "INTERNAL");
            json_object_put(p);
            return true;
        }
        if (qtext == NULL) {
            respond_error(req, 200, ctype, NULL,
                          "PersistedQueryNotFound",
                          "PERSISTED_QUERY_NOT_FOUND");
            json_object_put(p);
            return true;
        }
    }
    if (qtext == NULL) {
        why = "the request has no query";
        goto bad;
    }
    if (qlen > (size_t)sh__config_int(gw->hub->conf,
                                      "graphql.max-document-bytes")) {
        respond_error(req, 413, ctype, NULL,
                      "the document is over graphql.max-document-bytes",
                      "BAD_USER_INPUT");
        json_object_put(p);
        free(pq_text);
        return true;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL || (j->query = malloc(qlen + 1)) == NULL)
        goto oom;
    memcpy(j->query, qtext, qlen);
    j->query[qlen] = '\0';
    j->qlen = qlen;
    free(pq_text);
    pq_text = NULL;
    if (vars != NULL) {
        size_t vl = 0;
        const char *vt = json_object_to_json_string_length(
            vars, JSON_C_TO_STRING_PLAIN, &vl);
        if (vt == NULL || (j->vars = strdup(vt)) == NULL)
            goto oom;
        j->vars_len = vl;
    }
    if (opn != NULL && (j->op_name = strdup(json_object_get_string(opn))) ==
                           NULL)
        goto oom;
    j->req = req;
    j->hub = gw->hub;
    j->ctype = ctype;
    j->is_get = is_get;
    if (req->authed) {
        snprintf(j->user_id, sizeof j->user_id, "%s", req->user_id);
        j->roles = req->roles;
    }
    snprintf(j->client_key, sizeof j->client_key, "%s", req->ip_key);
    json_object_put(p);
    if (!sh__req_offload(req, gql_work, gql_done, j))
        job_free(j);
    return true;
bad:
    json_object_put(p);
    free(pq_text);
    respond_error(req, 400, ctype, NULL, why, "BAD_USER_INPUT");
    return true;
oom:
    job_free(j);
    json_object_put(p);
    free(pq_text);
    respond_error(req, 500, ctype, NULL, "out of memory", "INTERNAL");
    return true;
}
