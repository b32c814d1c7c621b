/* libstreamhub/gateway/rest.c: the REST API under /api/v1 (PROTOCOL.md).
 *
 * Each route runs in two halves.  On the loop: match the path and method,
 * check the bearer token (sh__req_auth: a signature check, no store), the
 * per-IP limit of register/login, the Content-Type and the JSON body, the
 * query parameters; every refusal there is answered at once.  Then the
 * service call runs on a worker (sh__req_offload), which fills a `struct
 * call` with an sh_err_t or a json-c result, and call_done() answers on
 * the loop.  The worker never touches the connection and the loop never
 * touches the call while the worker has it, so a call needs no lock.
 *
 * Bodies are the JSON of the GraphQL types.  A Stream or a User is
 * rendered by the GraphQL executor itself, once the service call has
 * succeeded: a query of the object by id (or of the page) whose
 * selection is made from the schema (render_sel(): every field without
 * arguments whose type is a leaf or a non-null object, recursively), so
 * that a field added to a type appears in REST and GraphQL alike and
 * resolves the same way (User.online, followedByMe for the bearer).
 * Other bodies come from the services' own _json() texts (one source of
 * field names).  Lists are {"items":[…],"nextCursor":…|null} (the
 * services add counts, which stay).
 * Errors are {"error":{"code","message"}} with the status of sh__err_code();
 * 429 carries Retry-After in whole seconds, rounded up.  Store and internal
 * failures answer a generic message: their detail may name SQL or hosts,
 * so it goes to the log instead.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "graphql/engine_int.h"
#include "graphql/graphql_int.h"
#include "gw.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/chat.h"
#include "streamhub/notifications.h"
#include "streamhub/streams.h"

#define BODY_DEPTH 64          /* JSON nesting accepted in a body */
#define ID_MAX 64              /* bytes of an id in a path */
#define DEFAULT_PAGE 20
#define AUTH_PER_MINUTE 10     /* register + login per IP per 60 s */
#define READ_IDS_MAX 1000      /* as sh_notification_mark_read() */

/* One REST call on its way through a worker.  Owned by the route until
 * offloaded, then by the worker job; call_done() frees it. */
struct call {
    struct sh__req *req;
    sh_hub_t *hub;
    void (*run)(struct call *c);   /* on the worker */
    char user_id[64];              /* the bearer's, or "" */
    unsigned roles;                /* the bearer's SH_ROLE_* bits */
    char *id;                      /* path id, owned */
    char *s1, *s2, *s3;            /* inputs, owned (see each route) */
    size_t s1_len;
    int n;
    bool flag;
    char **ids;                    /* owned, nids of them */
    size_t nids;
    bool has_ids;
    /* Results. */
    sh_err_t rc;
    int status;                    /* success status */
    json_object *result;           /* success body, owned */
    int64_t retry_ms;
    struct sh__limiter *auth_limiter;  /* shared (cluster), or NULL */
    char errbuf[256];
};

static void call_free(struct call *c)
{
    if (c == NULL)
        return;
    free(c->id);
    free(c->s1);
    free(c->s2);
    free(c->s3);
    for (size_t i = 0; i < c->nids; i++)
        free(c->ids[i]);
    free(c->ids);
    json_object_put(c->result);
    free(c);
}

/* ---- answering ------------------------------------------------------- */

static int retry_seconds(int64_t ms)
{
    if (ms <= 0)
        return 1;
    if (ms >= (int64_t)INT_MAX * 1000 - 999)
        return INT_MAX;
    return (int)((ms + 999) / 1000);
}

/* Answer @rc as {"error":…}; @why is the service's explanation. */
static void respond_rc(struct sh__req *req, sh_err_t rc, const char *why,
                       int64_t retry_ms)
{
    int status;
    const char *code = sh__err_code(rc, &status);
    const char *msg = why != NULL && why[0] != '\0' ? why : sh_strerror(rc);
    int retry = 0;

    if (rc == SH_ECANCELED) {
        sh__respond_error(req, 503, "internal", "shutting down", 1);
        return;
    }
    if (status >= 500) {
        sh__log_kv(&req->conn->gw->hub->log, SH_LOG_ERROR,
                   "REST call failed", "request_id", req->request_id,
                   "error", sh_strerror(rc), "detail", msg, (char *)NULL);
        msg = "internal error";
    }
    if (status == 429 || rc == SH_ETIMEDOUT_USER)
        retry = retry_seconds(retry_ms);
    sh__respond_error(req, status, code, msg, retry);
}

static void bad_request(struct sh__req *req, const char *msg)
{
    sh__respond_error(req, 400, "bad_request", msg, 0);
}

static void call_work(void *arg)
{
    struct call *c = arg;

    c->errbuf[0] = '\0';
    c->run(c);
}

static void call_done(void *arg, bool canceled)
{
    struct call *c = arg;
    struct sh__req *req = c->req;

    if (canceled) {
        sh__respond_error(req, 503, "internal", "shutting down", 1);
    } else if (c->rc != SH_OK) {
        respond_rc(req, c->rc, c->errbuf, c->retry_ms);
    } else if (c->result == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
    } else {
        json_object *r = c->result;
        c->result = NULL;
        sh__respond_json(req, c->status, r, NULL);
    }
    call_free(c);
}

static struct call *call_new(struct sh__req *req, void (*run)(struct call *))
{
    struct call *c = calloc(1, sizeof *c);

    if (c == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return NULL;
    }
    c->req = req;
    c->hub = req->conn->gw->hub;
    c->run = run;
    c->status = 200;
    if (req->authed) {
        snprintf(c->user_id, sizeof c->user_id, "%s", req->user_id);
        c->roles = req->roles;
    }
    return c;
}

static void offload(struct call *c)
{
    if (!sh__req_offload(c->req, call_work, call_done, c))
        call_free(c);   /* sh__req_offload answered 503 */
}

/* Parse a service's JSON text into the result (the services' texts are
 * ours: a failure here is out of memory). */
static void set_result_text(struct call *c, const char *text)
{
    c->result = text != NULL ? json_tokener_parse(text) : NULL;
    if (c->result == NULL)
        c->rc = SH_ENOMEM;
}

/* ---- bodies rendered by the GraphQL executor (worker) ------------------ */

/* A selection text: big enough for the Stream and User types many times
 * over; a schema that outgrows it fails loudly (SH_EINTERNAL). */
#define SEL_MAX 4096
#define SEL_DEPTH 4            /* object levels below the rendered type */

struct sel {
    char buf[SEL_MAX];
    size_t n;
    bool full;
};

static void sel_put(struct sel *b, const char *text)
{
    size_t len = strlen(text);

    if (b->full || b->n + len >= sizeof b->buf) {
        b->full = true;
        return;
    }
    memcpy(b->buf + b->n, text, len + 1);
    b->n += len;
}

/* Append the selection set of @t: each field without arguments whose
 * type is a leaf, or an object under a non-null wrapper (Stream.stats,
 * Stream.broadcaster), recursively.  Nullable object fields
 * (User.currentStream) and fields with arguments (connections) are left
 * to GraphQL: they would loop or page. */
static void render_sel(const struct sh__gql_type *t, int depth,
                       struct sel *b)
{
    sel_put(b, "{");
    for (size_t i = 0; i < t->nfields; i++) {
        const struct sh__gql_field *f = &t->fields[i];
        const struct sh__gql_typeref *r = f->type;
        bool nonnull = r->kind == SH__GQL_T_NONNULL;

        if (f->nargs > 0 || f->deprecated)
            continue;
        while (r->kind != SH__GQL_T_NAMED)
            r = r->of;
        if (r->type == NULL)
            continue;
        if (sh__gql_kind_is_leaf(r->type->kind)) {
            sel_put(b, " ");
            sel_put(b, f->name);
        } else if (r->type->kind == SH__GQL_K_OBJECT && nonnull &&
                   depth < SEL_DEPTH) {
            sel_put(b, " ");
            sel_put(b, f->name);
            sel_put(b, " ");
            render_sel(r->type, depth + 1, b);
        }
    }
    sel_put(b, " }");
}

/* Run @head, the selection of type @type, then @tail as a query with
 * @vars (taken), as the bearer; *@data gets the response's data (a new
 * reference).  Any GraphQL error is ours (the service call before has
 * checked the input): SH_EINTERNAL, explained in the call's errbuf. */
static sh_err_t render(struct call *c, const char *head, const char *type,
                       const char *tail, json_object *vars,
                       json_object **data)
{
    struct sh__gql_engine *eng;
    const struct sh__gql_type *t;
    json_object *resp = NULL, *errors, *d;
    struct sel *b = NULL;
    const char *vtext;
    char *text = NULL;
    size_t tlen = 0;
    int status = 0;
    sh_err_t rc;

    *data = NULL;
    rc = sh__gql_engine_get(c->hub, &eng, c->errbuf, sizeof c->errbuf);
    if (rc != SH_OK)
        goto out;
    t = sh__gql_schema_type(eng->schema, type);
    b = calloc(1, sizeof *b);
    if (b == NULL || vars == NULL) {
        rc = SH_ENOMEM;
        goto out;
    }
    if (t == NULL || t->kind != SH__GQL_K_OBJECT) {
        sh__errbuf(c->errbuf, sizeof c->errbuf, "render: no type %s", type);
        rc = SH_EINTERNAL;
        goto out;
    }
    sel_put(b, head);
    render_sel(t, 0, b);
    sel_put(b, tail);
    if (b->full) {
        sh__errbuf(c->errbuf, sizeof c->errbuf, "render: the selection of "
                   "%s outgrows %d bytes", type, SEL_MAX);
        rc = SH_EINTERNAL;
        goto out;
    }
    vtext = json_object_to_json_string_ext(vars, JSON_C_TO_STRING_PLAIN);
    rc = sh__gql_run(c->hub, eng, b->buf, b->n, vtext, strlen(vtext), NULL,
                     c->user_id[0] != '\0' ? c->user_id : NULL, c->roles,
                     NULL, &text, &tlen, &status);
    if (rc != SH_OK)
        goto out;
    /* The executor answers with text (no json-c object of a request
     * outlives it); this thread parses its own copy. */
    resp = json_tokener_parse(text);
    if (resp == NULL) {
        rc = SH_ENOMEM;
        goto out;
    }
    if (json_object_object_get_ex(resp, "errors", &errors)) {
        sh__errbuf(c->errbuf, sizeof c->errbuf, "render %s: %s", type,
                   json_object_to_json_string_ext(errors,
                                                  JSON_C_TO_STRING_PLAIN));
        rc = SH_EINTERNAL;
        goto out;
    }
    if (!json_object_object_get_ex(resp, "data", &d) ||
        !json_object_is_type(d, json_type_object)) {
        sh__errbuf(c->errbuf, sizeof c->errbuf, "render %s: no data", type);
        rc = SH_EINTERNAL;
        goto out;
    }
    *data = json_object_get(d);
out:
    json_object_put(resp);
    free(text);
    json_object_put(vars);
    free(b);
    return rc;
}

/* The object of type @type and id @id, as the call's result: @head is a
 * query with an $id variable whose field, aliased `o`, the selection
 * follows. */
static void render_one(struct call *c, const char *head, const char *type,
                       const char *id)
{
    json_object *vars = json_object_new_object(), *data = NULL, *o;

    if (vars != NULL)
        json_object_object_add(vars, "id", json_object_new_string(id));
    c->rc = render(c, head, type, " }", vars, &data);
    if (c->rc != SH_OK)
        return;
    if (!json_object_object_get_ex(data, "o", &o) ||
        !json_object_is_type(o, json_type_object)) {
        sh__errbuf(c->errbuf, sizeof c->errbuf, "render %s %s: not found",
                   type, id);
        c->rc = SH_EINTERNAL;
    } else {
        json_object_put(c->result);
        c->result = json_object_get(o);
    }
    json_object_put(data);
}

/* The body of stream @id. */
static void render_stream(struct call *c, const char *id)
{
    render_one(c, "query($id: ID!) { o: stream(id: $id) ", "Stream", id);
}

/* ---- input checks (loop) --------------------------------------------- */

/* True when @s is an id we might have made: 1..ID_MAX of [A-Za-z0-9_-]. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '-' && ch != '_')
            return false;
    }
    return true;
}

/* True when the raw query names parameter @name (with or without a
 * value), so that a value sh__query_param() could not decode (bad or
 * NUL percent-escapes) is told apart from an absent one. */
static bool query_has(const char *query, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = query; p != NULL && *p != '\0';) {
        if (strncmp(p, name, nl) == 0 &&
            (p[nl] == '=' || p[nl] == '&' || p[nl] == '\0'))
            return true;
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return false;
}

/* Query parameter @name, decoded: *@out a new string, or NULL when absent.
 * Answers 400 and returns false when it is present but undecodable. */
static bool query_str(struct sh__req *req, const char *name, char **out)
{
    char msg[96];

    *out = sh__query_param(req->query, name);
    if (*out != NULL || !query_has(req->query, name))
        return true;
    snprintf(msg, sizeof msg, "query parameter %s is badly encoded", name);
    bad_request(req, msg);
    return false;
}

/* Query parameter @name as an int: *@out = @dflt when absent.  Answers 400
 * and returns false for anything but an optional '-' and 1..10 digits that
 * fit an int. */
static bool query_int(struct sh__req *req, const char *name, int dflt,
                      int *out)
{
    char *v = NULL, *end = NULL;
    char msg[96];
    long n;
    size_t len;

    *out = dflt;
    if (!query_str(req, name, &v))
        return false;
    if (v == NULL)
        return true;
    len = strlen(v);
    errno = 0;
    n = len == 0 || len > 11 || isspace((unsigned char)v[0]) || v[0] == '+'
            ? 0 : strtol(v, &end, 10);
    if (len == 0 || end == NULL || *end != '\0' || errno != 0 ||
        n < INT_MIN || n > INT_MAX) {
        free(v);
        snprintf(msg, sizeof msg, "query parameter %s must be an integer",
                 name);
        bad_request(req, msg);
        return false;
    }
    free(v);
    *out = (int)n;
    return true;
}

static bool query_bool(struct sh__req *req, const char *name, bool *out)
{
    char *v = NULL;
    char msg[96];

    *out = false;
    if (!query_str(req, name, &v))
        return false;
    if (v == NULL)
        return true;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
    } else if (strcmp(v, "false") != 0 && strcmp(v, "0") != 0) {
        free(v);
        snprintf(msg, sizeof msg, "query parameter %s must be true or false",
                 name);
        bad_request(req, msg);
        return false;
    }
    free(v);
    return true;
}

/* Check the bearer, if any: a bad one is refused on every route, even
 * where none is needed.  Answers 401 itself. */
static bool token_ok(struct sh__req *req)
{
    if (sh__req_auth(req) == SH_OK)
        return true;
    sh__respond_error(req, 401, "unauthenticated", "invalid token", 0);
    return false;
}

/* The bearer, when the route needs one.  Answers 401 itself. */
static bool need_user(struct sh__req *req)
{
    if (!token_ok(req))
        return false;
    if (req->authed)
        return true;
    sh__respond_error(req, 401, "unauthenticated",
                      "a bearer token is required", 0);
    return false;
}

static bool json_ctype(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;

    if (ct == NULL || strncasecmp(ct, want, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static bool json_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Parse the body as one JSON object.  @optional: an empty body gives
 * *@out NULL.  Answers 415 / 400 itself and returns false. */
static bool body_object(struct sh__req *req, bool optional, json_object **out)
{
    const struct sh__http_request *hr = req->hr;
    const char *text = (const char *)hr->body;
    size_t len = hr->body_len, end;
    json_tokener *tok;
    json_object *obj;
    enum json_tokener_error jerr;
    char msg[128];

    *out = NULL;
    if (len == 0 && optional)
        return true;
    if (!json_ctype(sh__req_header(req, "Content-Type"))) {
        sh__respond_error(req, 415, "bad_request",
                          "Content-Type must be application/json", 0);
        return false;
    }
    if (len == 0) {
        bad_request(req, "a JSON object body is required");
        return false;
    }
    if (len > INT_MAX || memchr(text, '\0', len) != NULL) {
        bad_request(req, "body is not JSON: it contains a NUL byte");
        return false;
    }
    tok = json_tokener_new_ex(BODY_DEPTH);
    if (tok == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return false;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                           JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    end = jerr == json_tokener_success ? json_tokener_get_parse_end(tok)
                                       : len;
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        snprintf(msg, sizeof msg, "body is not JSON: %s",
                 jerr == json_tokener_continue ? "unexpected end"
                                               : json_tokener_error_desc(
                                                     jerr));
        json_object_put(obj);
        bad_request(req, msg);
        return false;
    }
    while (end < len && json_space(text[end]))
        end++;
    if (end != len || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        bad_request(req, end != len ? "body is not JSON: text after the "
                                      "value"
                                    : "body must be a JSON object");
        return false;
    }
    *out = obj;
    return true;
}

/* String field @name of @body: *@out a copy (NULL when absent and not
 * @required).  Answers 400 naming the field and returns false when it is
 * missing, not a string or holds a NUL (only @allow_nul fields may). */
static bool field_str(struct sh__req *req, json_object *body,
                      const char *name, bool required, bool allow_nul,
                      char **out, size_t *len_out)
{
    json_object *v = NULL;
    char msg[128];
    const char *s;
    int n;

    *out = NULL;
    /* An explicit null counts as absent. */
    if (!json_object_object_get_ex(body, name, &v) || v == NULL) {
        if (!required)
            return true;
        snprintf(msg, sizeof msg, "field %s is required", name);
        bad_request(req, msg);
        return false;
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(msg, sizeof msg, "field %s must be a string", name);
        bad_request(req, msg);
        return false;
    }
    s = json_object_get_string(v);
    n = json_object_get_string_len(v);
    if (!allow_nul && memchr(s, '\0', (size_t)n) != NULL) {
        snprintf(msg, sizeof msg, "field %s must not contain NUL", name);
        bad_request(req, msg);
        return false;
    }
    *out = malloc((size_t)n + 1);
    if (*out == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return false;
    }
    memcpy(*out, s, (size_t)n);
    (*out)[n] = '\0';
    if (len_out != NULL)
        *len_out = (size_t)n;
    return true;
}

/* Take the route's first answer of the per-IP auth limiter.  The limiter
 * is made on first use (loop thread only); the gateway frees it.  In a
 * cluster the limiter is shared in redis, so the take waits on redis: it
 * is left to the worker (auth_limit_shared) and this only makes it. */
static bool auth_limit(struct sh__req *req)
{
    struct sh_gateway *gw = req->conn->gw;
    const char *peer = req->ip_key;
    int64_t retry_ms = 0;

    /* Made on first use by whichever loop comes first (gw->lock). */
    pthread_mutex_lock(&gw->lock);
    if (gw->auth_limiter == NULL) {
        gw->auth_limiter = sh__limiter_new(AUTH_PER_MINUTE,
                                           AUTH_PER_MINUTE / 60.0, 100000);
        if (gw->auth_limiter != NULL)
            (void)sh__cluster_share_limiter(gw->hub, gw->auth_limiter,
                                            "rest-auth");
    }
    pthread_mutex_unlock(&gw->lock);
    if (gw->auth_limiter == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return false;
    }
    if (sh__cluster_redis(gw->hub) != NULL)
        return true;
    if (sh__limiter_take(gw->auth_limiter, peer, strlen(peer), 1,
                         sh__mono_ms(), &retry_ms))
        return true;
    sh__respond_error(req, 429, "rate_limited",
                      "too many register or login attempts",
                      retry_seconds(retry_ms));
    return false;
}

/* ---- workers ---------------------------------------------------------- */

/* The AuthPayload of @a, its user rendered as that user sees it. */
static void auth_body(struct call *c, const sh_auth_t *a)
{
    const char *id = sh_user_id(sh_auth_user(a));
    json_object *payload;

    set_result_text(c, sh_auth_json(a, NULL));
    if (c->rc != SH_OK)
        return;
    payload = c->result;
    c->result = NULL;
    snprintf(c->user_id, sizeof c->user_id, "%s", id);
    c->roles = 0;
    render_one(c, "query($id: ID) { o: user(id: $id) ", "User", id);
    if (c->rc == SH_OK)
        json_object_object_add(payload, "user", c->result);
    else
        json_object_put(c->result);
    c->result = payload;
}

/* In a cluster, the per-IP auth limit, on the worker (c->id holds the
 * client's address key).  False when refused: c->rc says so. */
static bool auth_limit_shared(struct call *c)
{
    if (c->auth_limiter == NULL || c->id == NULL)
        return true;
    if (sh__limiter_take(c->auth_limiter, c->id, strlen(c->id), 1,
                         sh__mono_ms(), &c->retry_ms))
        return true;
    c->rc = SH_ERATELIMITED;
    snprintf(c->errbuf, sizeof c->errbuf,
             "too many register or login attempts");
    return false;
}

static void run_register(struct call *c)
{
    sh_auth_t *a = NULL;

    if (!auth_limit_shared(c))
        return;

    c->rc = sh_auth_register(c->hub, c->s1, c->s2, c->s3, &a, c->errbuf,
                             sizeof c->errbuf);
    if (c->rc == SH_OK)
        auth_body(c, a);
    c->status = 201;
    sh_auth_free(a);
}

static void run_login(struct call *c)
{
    sh_auth_t *a = NULL;

    if (!auth_limit_shared(c))
        return;

    c->rc = sh_auth_login(c->hub, c->s1, c->s3, &a, c->errbuf,
                          sizeof c->errbuf);
    if (c->rc == SH_OK)
        auth_body(c, a);
    sh_auth_free(a);
}

/* The page of live streams: the service call checks the parameters and
 * answers their errors; the page is then rendered as the GraphQL
 * liveStreams connection, reshaped into {"items","nextCursor",
 * "totalCount"}. */
static void run_live(struct call *c)
{
    sh_stream_list_t *l = NULL;
    json_object *vars, *data = NULL, *conn, *edges, *info, *items, *o;
    bool more;

    c->rc = sh_stream_live_list(c->hub, c->n, c->s1, c->s2, &l, c->errbuf,
                                sizeof c->errbuf);
    sh_stream_list_free(l);
    if (c->rc != SH_OK)
        return;
    vars = json_object_new_object();
    if (vars != NULL) {
        /* As the service did: GraphQL's cost limit counts @first. */
        json_object_object_add(vars, "first", json_object_new_int(
                                   c->n < SH_PAGE_MAX ? c->n : SH_PAGE_MAX));
        json_object_object_add(vars, "after", c->s1 != NULL ?
                               json_object_new_string(c->s1) : NULL);
        json_object_object_add(vars, "category", c->s2 != NULL ?
                               json_object_new_string(c->s2) : NULL);
    }
    c->rc = render(c, "query($first: Int, $after: String, "
                   "$category: String) { o: liveStreams(first: $first, "
                   "after: $after, category: $category) { totalCount "
                   "pageInfo { hasNextPage endCursor } edges { node ",
                   "Stream", " } } }", vars, &data);
    if (c->rc != SH_OK)
        return;
    items = json_object_new_array();
    o = json_object_new_object();
    if (items == NULL || o == NULL ||
        !json_object_object_get_ex(data, "o", &conn) ||
        !json_object_object_get_ex(conn, "edges", &edges) ||
        !json_object_object_get_ex(conn, "pageInfo", &info)) {
        json_object_put(items);
        json_object_put(o);
        json_object_put(data);
        c->rc = SH_ENOMEM;
        return;
    }
    for (size_t i = 0; i < json_object_array_length(edges); i++) {
        json_object *node = json_object_object_get(
            json_object_array_get_idx(edges, i), "node");
        json_object_array_add(items, json_object_get(node));
    }
    more = json_object_get_boolean(json_object_object_get(info,
                                                          "hasNextPage"));
    json_object_object_add(o, "items", items);
    json_object_object_add(o, "nextCursor", more ? json_object_get(
        json_object_object_get(info, "endCursor")) : NULL);
    json_object_object_add(o, "totalCount", json_object_get(
        json_object_object_get(conn, "totalCount")));
    json_object_put(data);
    c->result = o;
}

static void run_stream_get(struct call *c)
{
    sh_stream_t *s = NULL;

    c->rc = sh_stream_get(c->hub, c->id, &s, c->errbuf, sizeof c->errbuf);
    if (c->rc == SH_OK)
        render_stream(c, sh_stream_id(s));
    sh_stream_free(s);
}

static void run_stream_start(struct call *c)
{
    sh_stream_t *s = NULL;

    c->rc = sh_stream_start(c->hub, c->user_id, c->s1, c->s2, &s, c->errbuf,
                            sizeof c->errbuf);
    if (c->rc == SH_OK)
        render_stream(c, sh_stream_id(s));
    c->status = 201;
    sh_stream_free(s);
}

static void run_stream_stop(struct call *c)
{
    sh_stream_t *s = NULL;

    c->rc = sh_stream_stop(c->hub, c->user_id, c->id, &s, c->errbuf,
                           sizeof c->errbuf);
    if (c->rc == SH_OK)
        render_stream(c, sh_stream_id(s));
    sh_stream_free(s);
}

static void run_chat_history(struct call *c)
{
    sh_chat_message_list_t *l = NULL;
    json_object *page = NULL, *items = NULL, *o;
    const char *next;

    c->rc = sh_chat_history(c->hub, c->id, c->n, c->s1, &l, c->errbuf,
                            sizeof c->errbuf);
    if (c->rc != SH_OK)
        return;
    /* The service's page is Relay-shaped; REST pages backwards from the
     * oldest message: nextCursor is the `before` of the older page. */
    page = json_tokener_parse(sh_chat_message_list_json(l, NULL));
    o = json_object_new_object();
    if (page == NULL || o == NULL ||
        !json_object_object_get_ex(page, "items", &items)) {
        json_object_put(page);
        json_object_put(o);
        sh_chat_message_list_free(l);
        c->rc = SH_ENOMEM;
        return;
    }
    next = sh_chat_message_list_has_previous(l)
               ? sh_chat_message_list_start_cursor(l) : NULL;
    json_object_object_add(o, "items", json_object_get(items));
    json_object_object_add(o, "nextCursor",
                           next != NULL ? json_object_new_string(next)
                                        : NULL);
    json_object_object_add(o, "hasPrevious", json_object_new_boolean(
                                                 next != NULL));
    json_object_put(page);
    sh_chat_message_list_free(l);
    c->result = o;
}

static void run_chat_send(struct call *c)
{
    sh_chat_message_t *m = NULL;

    c->rc = sh_chat_send(c->hub, c->user_id, c->id, c->s1, c->s1_len, &m,
                         &c->retry_ms, c->errbuf, sizeof c->errbuf);
    if (c->rc == SH_OK)
        set_result_text(c, sh_chat_message_json(m, NULL));
    c->status = 201;
    sh_chat_message_free(m);
}

static void run_notifications(struct call *c)
{
    sh_notification_list_t *l = NULL;

    c->rc = sh_notification_list(c->hub, c->user_id, c->n, c->s1, c->flag,
                                 &l, c->errbuf, sizeof c->errbuf);
    if (c->rc == SH_OK)
        set_result_text(c, sh_notification_list_json(l, NULL));
    sh_notification_list_free(l);
}

static void run_mark_read(struct call *c)
{
    int64_t changed = 0;

    c->rc = sh_notification_mark_read(
        c->hub, c->user_id, c->has_ids ? (const char *const *)c->ids : NULL,
        c->nids, &changed, c->errbuf, sizeof c->errbuf);
    if (c->rc != SH_OK)
        return;
    c->result = json_object_new_object();
    if (c->result == NULL) {
        c->rc = SH_ENOMEM;
        return;
    }
    json_object_object_add(c->result, "changed",
                           json_object_new_int64(changed));
}

static void run_publish(struct call *c)
{
    uint64_t offset = 0;

    c->rc = sh_publish(c->hub, c->s1, c->s2, c->s3, c->s1_len, &offset,
                       c->errbuf, sizeof c->errbuf);
    if (c->rc != SH_OK)
        return;
    c->result = json_object_new_object();
    if (c->result == NULL) {
        c->rc = SH_ENOMEM;
        return;
    }
    json_object_object_add(c->result, "channel",
                           json_object_new_string(c->s1));
    json_object_object_add(c->result, "offset",
                           json_object_new_int64((int64_t)offset));
}

/* ---- routes (loop) ---------------------------------------------------- */

static void route_auth(struct sh__req *req, bool is_register)
{
    json_object *body = NULL;
    struct call *c;

    if (!token_ok(req) || !auth_limit(req) ||
        !body_object(req, false, &body))
        return;
    c = call_new(req, is_register ? run_register : run_login);
    if (c == NULL) {
        json_object_put(body);
        return;
    }
    /* s1 username, s2 email (register), s3 password. */
    if (!field_str(req, body, "username", true, false, &c->s1, NULL) ||
        (is_register &&
         !field_str(req, body, "email", true, false, &c->s2, NULL)) ||
        !field_str(req, body, "password", true, false, &c->s3, NULL)) {
        json_object_put(body);
        call_free(c);
        return;
    }
    json_object_put(body);
    /* The client's address key, for the shared auth limit. */
    if (sh__cluster_redis(c->hub) != NULL) {
        c->auth_limiter = req->conn->gw->auth_limiter;
        c->id = strdup(req->ip_key);
        if (c->id == NULL) {
            call_free(c);
            sh__respond_error(req, 500, "internal", "out of memory", 0);
            return;
        }
    }
    offload(c);
}

static void route_live(struct sh__req *req)
{
    struct call *c;
    int first;

    if (!token_ok(req) || !query_int(req, "first", DEFAULT_PAGE, &first))
        return;
    c = call_new(req, run_live);
    if (c == NULL)
        return;
    c->n = first;
    if (!query_str(req, "after", &c->s1) ||
        !query_str(req, "category", &c->s2)) {
        call_free(c);
        return;
    }
    offload(c);
}

static void route_stream_start(struct sh__req *req)
{
    json_object *body = NULL;
    struct call *c;

    if (!need_user(req) || !body_object(req, false, &body))
        return;
    c = call_new(req, run_stream_start);
    if (c == NULL) {
        json_object_put(body);
        return;
    }
    if (!field_str(req, body, "title", true, false, &c->s1, NULL) ||
        !field_str(req, body, "category", false, false, &c->s2, NULL)) {
        json_object_put(body);
        call_free(c);
        return;
    }
    json_object_put(body);
    offload(c);
}

static void route_chat_history(struct sh__req *req, char *id)
{
    struct call *c;
    int last;

    if (!token_ok(req) || !query_int(req, "last", 0, &last)) {
        free(id);
        return;
    }
    c = call_new(req, run_chat_history);
    if (c == NULL) {
        free(id);
        return;
    }
    c->id = id;
    c->n = last;
    if (!query_str(req, "before", &c->s1)) {
        call_free(c);
        return;
    }
    offload(c);
}

static void route_chat_send(struct sh__req *req, char *id)
{
    json_object *body = NULL;
    struct call *c;

    if (!need_user(req) || !body_object(req, false, &body)) {
        free(id);
        return;
    }
    c = call_new(req, run_chat_send);
    if (c == NULL) {
        free(id);
        json_object_put(body);
        return;
    }
    c->id = id;
    /* The text may hold NUL bytes: chat removes control characters. */
    if (!field_str(req, body, "text", true, true, &c->s1, &c->s1_len)) {
        json_object_put(body);
        call_free(c);
        return;
    }
    json_object_put(body);
    offload(c);
}

static void route_notifications(struct sh__req *req)
{
    struct call *c;
    int first;
    bool unread;

    if (!need_user(req) || !query_int(req, "first", DEFAULT_PAGE, &first) ||
        !query_bool(req, "unreadOnly", &unread))
        return;
    c = call_new(req, run_notifications);
    if (c == NULL)
        return;
    c->n = first;
    c->flag = unread;
    if (!query_str(req, "after", &c->s1)) {
        call_free(c);
        return;
    }
    offload(c);
}

static void route_mark_read(struct sh__req *req)
{
    json_object *body = NULL, *ids = NULL;
    struct call *c;
    size_t n;

    if (!need_user(req) || !body_object(req, true, &body))
        return;
    c = call_new(req, run_mark_read);
    if (c == NULL) {
        json_object_put(body);
        return;
    }
    if (body != NULL && json_object_object_get_ex(body, "ids", &ids) &&
        ids != NULL) {
        if (!json_object_is_type(ids, json_type_array)) {
            bad_request(req, "field ids must be an array of strings");
            goto fail;
        }
        n = json_object_array_length(ids);
        if (n > READ_IDS_MAX) {
            bad_request(req, "field ids holds more than 1000 ids");
            goto fail;
        }
        c->has_ids = true;
        c->ids = calloc(n > 0 ? n : 1, sizeof *c->ids);
        if (c->ids == NULL) {
            sh__respond_error(req, 500, "internal", "out of memory", 0);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            json_object *v = json_object_array_get_idx(ids, i);
            const char *s = json_object_get_string(v);
            if (!json_object_is_type(v, json_type_string) ||
                strlen(s) != (size_t)json_object_get_string_len(v)) {
                bad_request(req, "field ids must be an array of strings");
                goto fail;
            }
            c->ids[i] = strdup(s);
            if (c->ids[i] == NULL) {
                sh__respond_error(req, 500, "internal", "out of memory", 0);
                goto fail;
            }
            c->nids = i + 1;
        }
    }
    json_object_put(body);
    offload(c);
    return;
fail:
    json_object_put(body);
    call_free(c);
}

/* Authorization: Apikey <key>, compared in constant time. */
static bool apikey_ok(struct sh__req *req)
{
    const char *key = req->conn->gw->api_key;
    const char *h = sh__req_header(req, "Authorization");
    size_t kl = strlen(key);

    if (h == NULL || strncasecmp(h, "Apikey ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return strlen(h) == kl && sodium_memcmp(h, key, kl) == 0;
}

static void route_publish(struct sh__req *req)
{
    json_object *body = NULL, *data = NULL;
    struct call *c;
    const char *text;
    size_t len = 0;

    if (req->conn->gw->api_key == NULL || req->conn->gw->api_key[0] == '\0') {
        sh__respond_error(req, 404, "not_found",
                          "the publish API is off (no api-key)", 0);
        return;
    }
    if (!apikey_ok(req)) {
        sh__respond_error(req, 401, "unauthenticated",
                          "a valid Apikey is required", 0);
        return;
    }
    if (!body_object(req, false, &body))
        return;
    c = call_new(req, run_publish);
    if (c == NULL) {
        json_object_put(body);
        return;
    }
    /* s1 channel, s2 type, s3 the data's JSON text (s1_len its bytes). */
    if (!field_str(req, body, "channel", true, false, &c->s1, NULL) ||
        !field_str(req, body, "type", false, false, &c->s2, NULL))
        goto fail;
    if (strncmp(c->s1, "app:", 4) != 0) {
        sh__respond_error(req, 403, "forbidden",
                          "only app: channels may be published to", 0);
        goto fail;
    }
    if (!json_object_object_get_ex(body, "data", &data)) {
        bad_request(req, "field data is required");
        goto fail;
    }
    if (c->s2 == NULL && (c->s2 = strdup("app.message")) == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        goto fail;
    }
    text = json_object_to_json_string_length(
        data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    c->s3 = text != NULL ? strndup(text, len) : NULL;
    if (c->s3 == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        goto fail;
    }
    /* The channel's own length is not needed: s1_len carries the data's. */
    c->s1_len = len;
    json_object_put(body);
    offload(c);
    return;
fail:
    json_object_put(body);
    call_free(c);
}

/* ---- the table -------------------------------------------------------- */

static void not_allowed(struct sh__req *req, const char *allow)
{
    char extra[96];
    json_object *o = json_object_new_object(), *e = json_object_new_object();

    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    json_object_object_add(e, "code", json_object_new_string("bad_request"));
    json_object_object_add(e, "message",
                           json_object_new_string("method not allowed"));
    json_object_object_add(o, "error", e);
    sh__respond_json(req, 405, o, extra);
}

static bool is(const struct sh__req *req, const char *m)
{
    return strcmp(req->hr->method, m) == 0;
}

/* /api/v1/streams/{id}[/stop|/chat] */
static bool route_stream_item(struct sh__req *req, const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t idlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    const char *tail = slash != NULL ? slash : "";
    char *id;

    if (strcmp(tail, "") == 0)
        req->route = "/api/v1/streams/{id}";
    else if (strcmp(tail, "/stop") == 0)
        req->route = "/api/v1/streams/{id}/stop";
    else if (strcmp(tail, "/chat") == 0)
        req->route = "/api/v1/streams/{id}/chat";
    else
        return false;
    if (tail[0] == '\0' && !is(req, "GET") && !is(req, "HEAD")) {
        not_allowed(req, "GET, HEAD");
        return true;
    }
    if (strcmp(tail, "/stop") == 0 && !is(req, "POST")) {
        not_allowed(req, "POST");
        return true;
    }
    if (strcmp(tail, "/chat") == 0 && !is(req, "GET") && !is(req, "HEAD") &&
        !is(req, "POST")) {
        not_allowed(req, "GET, HEAD, POST");
        return true;
    }
    if (!id_ok(rest, idlen)) {
        sh__respond_error(req, 404, "not_found", "no such stream", 0);
        return true;
    }
    id = strndup(rest, idlen);
    if (id == NULL) {
        sh__respond_error(req, 500, "internal", "out of memory", 0);
        return true;
    }
    if (tail[0] == '\0') {
        struct call *c = token_ok(req) ? call_new(req, run_stream_get)
                                       : NULL;
        if (c == NULL) {
            free(id);
            return true;
        }
        c->id = id;
        offload(c);
    } else if (strcmp(tail, "/stop") == 0) {
        struct call *c;
        if (!need_user(req)) {
            free(id);
            return true;
        }
        c = call_new(req, run_stream_stop);
        if (c == NULL) {
            free(id);
            return true;
        }
        c->id = id;
        offload(c);
    } else if (is(req, "POST")) {
        route_chat_send(req, id);
    } else {
        route_chat_history(req, id);
    }
    return true;
}

bool sh__rest_route(struct sh__req *req)
{
    const char *p = req->path;
    bool get = is(req, "GET") || is(req, "HEAD"), post = is(req, "POST");

    if (strncmp(p, "/api/v1/", 8) != 0)
        return false;
    p += 8;
    if (strcmp(p, "auth/register") == 0 || strcmp(p, "auth/login") == 0) {
        bool reg = p[5] == 'r';
        req->route = reg ? "/api/v1/auth/register" : "/api/v1/auth/login";
        if (!post)
            not_allowed(req, "POST");
        else
            route_auth(req, reg);
        return true;
    }
    if (strcmp(p, "streams/live") == 0) {
        req->route = "/api/v1/streams/live";
        if (!get)
            not_allowed(req, "GET, HEAD");
        else
            route_live(req);
        return true;
    }
    if (strcmp(p, "streams") == 0) {
        req->route = "/api/v1/streams";
        if (!post)
            not_allowed(req, "POST");
        else
            route_stream_start(req);
        return true;
    }
    if (strncmp(p, "streams/", 8) == 0)
        return route_stream_item(req, p + 8);
    if (strcmp(p, "notifications") == 0) {
        req->route = "/api/v1/notifications";
        if (!get)
            not_allowed(req, "GET, HEAD");
        else
            route_notifications(req);
        return true;
    }
    if (strcmp(p, "notifications/read") == 0) {
        req->route = "/api/v1/notifications/read";
        if (!post)
            not_allowed(req, "POST");
        else
            route_mark_read(req);
        return true;
    }
    if (strcmp(p, "publish") == 0) {
        req->route = "/api/v1/publish";
        if (!post)
            not_allowed(req, "POST");
        else
            route_publish(req);
        return true;
    }
    return false;
}
