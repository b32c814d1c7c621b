/* libstreamhub/graphql/execute.c: the executor (spec October 2021, 6).
 *
 * Pipeline of one request (sh__gql_run): parse -> validate -> the
 * introspection switch -> limits -> GetOperation -> CoerceVariableValues;
 * any failure up to here is a request error (no "data", status 400).
 * Then ExecuteQuery/ExecuteMutation: both run the root selection set in
 * order (serially: no parallelism, so mutations are serial too).
 *
 * Completion and nulls.  complete() returns OK or NULLED.  NULLED means
 * "an error was raised here and this position cannot hold null": the
 * caller at the next nullable position turns it into null, so one error is
 * reported once, at the field that failed, and the null climbs to the
 * nearest nullable parent (6.4.4).
 *
 * Every value is a json-c object (engine_int.h); the response is built
 * with json-c in selection order (json-c objects keep insertion order).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamhub/auth.h"
#include "streamhub/streams.h"
#include "streamhub/users.h"
#include "core/ratelimit_int.h"
#include "graphql/engine_int.h"
#include "services/export_int.h"

enum res { OK, NULLED };

/* A response path, on the C stack: key or index, then the parent. */
struct path {
    const char *key;          /* NULL: an index */
    size_t index;
    const struct path *prev;
};

/* The fields of one response key, in document order. */
struct group {
    const char *key;
    const struct sh__gql_selection *nodes[8];
    size_t n;
};

struct groups {
    struct group *g;
    size_t n, cap;
    const char *visited[32];  /* fragment names already spread */
    size_t nvisited;
};

/* ---- errors ------------------------------------------------------------ */

const char *sh__gql_err_code(sh_err_t rc)
{
    switch (rc) {
    case SH_EUNAUTHENTICATED: return "UNAUTHENTICATED";
    case SH_EFORBIDDEN: case SH_EBANNED: case SH_ETIMEDOUT_USER:
    case SH_EFOLLOWERSONLY:
        return "FORBIDDEN";
    case SH_EINVAL: case SH_ETOOBIG: case SH_ETOOLONG: case SH_EBADUTF8:
    case SH_EBLOCKEDTERM: case SH_EEMPTY:
        return "BAD_USER_INPUT";
    case SH_ENOTFOUND: return "NOT_FOUND";
    case SH_ERATELIMITED: case SH_ESLOWMODE: return "RATE_LIMITED";
    case SH_ECONFLICT: return "CONFLICT";
    default: return "INTERNAL";
    }
}

static json_object *path_json(const struct path *p)
{
    json_object *a = json_object_new_array();

    if (a == NULL)
        return NULL;
    /* From the leaf up into a small stack, then out root first. */
    {
        const struct path *stack[256];
        size_t m = 0;
        for (const struct path *q = p; q != NULL && m < 256; q = q->prev)
            stack[m++] = q;
        while (m-- > 0) {
            json_object *v = stack[m]->key != NULL
                ? json_object_new_string(stack[m]->key)
                : json_object_new_int64((int64_t)stack[m]->index);
            if (v == NULL || json_object_array_add(a, v) != 0) {
                json_object_put(v);
                json_object_put(a);
                return NULL;
            }
        }
    }
    return a;
}

static void ex_error(struct sh__gql_exec *ex, const char *code,
                     const struct sh__gql_loc *loc, const struct path *path,
                     int64_t retry_ms, const char *msg)
{
    json_object *e = json_object_new_object(), *ext = NULL;

    if (e == NULL)
        goto oom;
    if (json_object_object_add(e, "message",
                               json_object_new_string(msg)) != 0)
        goto oom;
    if (loc != NULL && loc->line > 0) {
        json_object *locs = json_object_new_array(), *l = json_object_new_object();
        if (locs == NULL || l == NULL ||
            json_object_object_add(l, "line",
                                   json_object_new_int64(loc->line)) != 0 ||
            json_object_object_add(l, "column",
                                   json_object_new_int64(loc->column)) != 0 ||
            json_object_array_add(locs, l) != 0) {
            json_object_put(l);
            json_object_put(locs);
            goto oom;
        }
        json_object_object_add(e, "locations", locs);
    }
    if (path != NULL)
        json_object_object_add(e, "path", path_json(path));
    ext = json_object_new_object();
    if (ext == NULL)
        goto oom;
    json_object_object_add(ext, "code", json_object_new_string(code));
    if (retry_ms > 0)
        json_object_object_add(ext, "retryAfter",
                               json_object_new_int64((retry_ms + 999) / 1000));
    json_object_object_add(e, "extensions", ext);
    if (json_object_array_add(ex->errors, e) == 0)
        return;
oom:
    json_object_put(e);
    ex->oom = true;
}

/* ---- variables and arguments ----------------------------------------- */

static bool is_nonnull(const struct sh__gql_typeref *t)
{
    return t->kind == SH__GQL_T_NONNULL;
}

/* Coerce an external (JSON) input value to @t.  Returns false with a
 * reason in @why (graphql-js wording) when it does not fit. */
static bool coerce_input(const struct sh__gql_schema *s,
                         const struct sh__gql_typeref *t, json_object *in,
                         json_object **out, char *why, size_t whylen)
{
    const struct sh__gql_type *nt;

    *out = NULL;
    if (t->kind == SH__GQL_T_NONNULL) {
        char tn[128];
        if (in == NULL) {
            sh__gql_typeref_print(t, tn, sizeof tn);
            snprintf(why, whylen, "Expected non-nullable type \"%s\" not "
                     "to be null.", tn);
            return false;
        }
        return coerce_input(s, t->of, in, out, why, whylen);
    }
    if (in == NULL)
        return true;
    if (t->kind == SH__GQL_T_LIST) {
        json_object *a = json_object_new_array();
        if (a == NULL)
            return false;
        if (!json_object_is_type(in, json_type_array)) {
            json_object *v;
            if (!coerce_input(s, t->of, in, &v, why, whylen) ||
                json_object_array_add(a, v) != 0) {
                json_object_put(a);
                return false;
            }
            *out = a;
            return true;
        }
        for (size_t i = 0; i < json_object_array_length(in); i++) {
            json_object *v;
            if (!coerce_input(s, t->of, json_object_array_get_idx(in, i), &v,
                              why, whylen) ||
                json_object_array_add(a, v) != 0) {
                json_object_put(a);
                return false;
            }
        }
        *out = a;
        return true;
    }
    nt = sh__gql_typeref_named(s, t);
    if (nt == NULL)
        return false;
    const char *txt = json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN);
    if (nt->kind == SH__GQL_K_ENUM) {
        if (!json_object_is_type(in, json_type_string) ||
            sh__gql_enum_value(nt, json_object_get_string(in)) == NULL) {
            snprintf(why, whylen, "Value %.100s does not exist in \"%s\" "
                     "enum.", txt, nt->name);
            return false;
        }
        *out = json_object_get(in);
        return true;
    }
    if (strcmp(nt->name, "Int") == 0) {
        if (json_object_is_type(in, json_type_int)) {
            int64_t v = json_object_get_int64(in);
            if (v >= INT32_MIN && v <= INT32_MAX) {
                *out = json_object_get(in);
                return true;
            }
            snprintf(why, whylen, "Int cannot represent non 32-bit signed "
                     "integer value: %.100s", txt);
            return false;
        }
        if (json_object_is_type(in, json_type_double)) {
            double d = json_object_get_double(in);
            if (d == floor(d) && d >= INT32_MIN && d <= INT32_MAX) {
                *out = json_object_new_int64((int64_t)d);
                return *out != NULL;
            }
        }
        snprintf(why, whylen, "Int cannot represent non-integer value: "
                 "%.100s", txt);
        return false;
    }
    if (strcmp(nt->name, "Float") == 0) {
        if (json_object_is_type(in, json_type_int) ||
            json_object_is_type(in, json_type_double)) {
            *out = json_object_get(in);
            return true;
        }
        snprintf(why, whylen, "Float cannot represent non numeric value: "
                 "%.100s", txt);
        return false;
    }
    if (strcmp(nt->name, "String") == 0 ||
        strcmp(nt->name, "DateTime") == 0) {
        if (json_object_is_type(in, json_type_string)) {
            *out = json_object_get(in);
            return true;
        }
        snprintf(why, whylen, "%s cannot represent a non string value: "
                 "%.100s", nt->name, txt);
        return false;
    }
    if (strcmp(nt->name, "ID") == 0) {
        /* Ids are read as C strings: "<id>\u0000x" would name <id>. */
        if (json_object_is_type(in, json_type_string) &&
            memchr(json_object_get_string(in), '\0',
                   (size_t)json_object_get_string_len(in)) != NULL) {
            snprintf(why, whylen, "ID cannot represent a value holding "
                     "U+0000");
            return false;
        }
        if (json_object_is_type(in, json_type_string)) {
            *out = json_object_get(in);
            return true;
        }
        if (json_object_is_type(in, json_type_int)) {
            *out = json_object_new_string(txt);
            return *out != NULL;
        }
        snprintf(why, whylen, "ID cannot represent value: %.100s", txt);
        return false;
    }
    if (strcmp(nt->name, "Boolean") == 0) {
        if (json_object_is_type(in, json_type_boolean)) {
            *out = json_object_get(in);
            return true;
        }
        snprintf(why, whylen, "Boolean cannot represent a non boolean "
                 "value: %.100s", txt);
        return false;
    }
    /* JSON and any other custom scalar: taken as is. */
    *out = json_object_get(in);
    return true;
}

/* A literal of the document (validated against @t) as JSON; variables
 * from ex->vars.  *@absent: a variable that was not provided. */
static json_object *literal(struct sh__gql_exec *ex,
                            const struct sh__gql_value *v, bool *absent)
{
    json_object *o;

    *absent = false;
    switch (v->kind) {
    case SH__GQL_V_VARIABLE: {
        json_object *val;
        if (ex->vars == NULL ||
            !json_object_object_get_ex(ex->vars, v->str, &val)) {
            *absent = true;
            return NULL;
        }
        return json_object_get(val);
    }
    case SH__GQL_V_INT:
        return json_object_new_int64(strtoll(v->str, NULL, 10));
    case SH__GQL_V_FLOAT:
        return json_object_new_double(strtod(v->str, NULL));
    case SH__GQL_V_STRING:
        return json_object_new_string_len(v->str, (int)v->len);
    case SH__GQL_V_BOOLEAN:
        return json_object_new_boolean(v->boolean);
    case SH__GQL_V_NULL:
        return NULL;
    case SH__GQL_V_ENUM:
        return json_object_new_string(v->str);
    case SH__GQL_V_LIST:
        o = json_object_new_array();
        for (const struct sh__gql_value *it = v->items; o != NULL && it;
             it = it->next) {
            bool ab;
            json_object *x = literal(ex, it, &ab);
            json_object_array_add(o, x);
        }
        return o;
    case SH__GQL_V_OBJECT:
        o = json_object_new_object();
        for (const struct sh__gql_object_field *f = v->fields;
             o != NULL && f; f = f->next) {
            bool ab;
            json_object *x = literal(ex, f->value, &ab);
            if (!ab)
                json_object_object_add(o, f->name, x);
        }
        return o;
    }
    return NULL;
}

/* Wrap a single value for a list type (input coercion of a lone item). */
static json_object *fit_list(const struct sh__gql_typeref *t, json_object *v)
{
    if (t->kind == SH__GQL_T_NONNULL)
        t = t->of;
    if (t->kind == SH__GQL_T_LIST && v != NULL &&
        !json_object_is_type(v, json_type_array)) {
        json_object *a = json_object_new_array();
        if (a == NULL) {
            json_object_put(v);
            return NULL;
        }
        json_object_array_add(a, v);
        return a;
    }
    return v;
}

/* Whether @v (a coerced argument: a string, or lists and input objects of
 * them) holds U+0000 in any string. */
static bool holds_nul(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        return memchr(json_object_get_string(v), '\0',
                      (size_t)json_object_get_string_len(v)) != NULL;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (holds_nul(json_object_array_get_idx(v, i)))
                return true;
        }
        return false;
    case json_type_object: {
        json_object_object_foreach(v, k, m) {
            (void)k;
            if (holds_nul(m))
                return true;
        }
        return false;
    }
    default:
        return false;
    }
}

/* Resolvers read strings as C strings, so a U+0000 would silently cut an
 * argument short ("<password>\u0000junk" checked as the password, a title
 * stored as its prefix).  So a String argument holding one is refused
 * (false), except two where it is data: a search, which reads up to it,
 * and a chat text, whose U+0000 are removed as the REST and native doors
 * do (*@v replaced).  JSON arguments are text for the bus, never cut. */
static bool nul_allowed(const char *field, const struct sh__gql_arg_def *d,
                        json_object **v)
{
    const struct sh__gql_typeref *t = d->type;
    json_object *o;
    const char *src;
    char *dst;
    size_t n, j = 0;

    while (t->of != NULL)
        t = t->of;
    if (strcmp(t->name, "JSON") == 0 || !holds_nul(*v))
        return true;
    if (strcmp(field, "searchStreams") == 0 && strcmp(d->name, "query") == 0)
        return true;
    if (strcmp(field, "sendMessage") != 0 || strcmp(d->name, "text") != 0 ||
        !json_object_is_type(*v, json_type_string))
        return false;
    src = json_object_get_string(*v);
    n = (size_t)json_object_get_string_len(*v);
    if ((dst = malloc(n + 1)) == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (src[i] != '\0')
            dst[j++] = src[i];
    }
    o = json_object_new_string_len(dst, (int)j);
    free(dst);
    if (o == NULL)
        return false;
    json_object_put(*v);
    *v = o;
    return true;
}

/* CoerceArgumentValues (6.4.1): a JSON object of the arguments given or
 * defaulted.  False (with an error raised) when a non-null argument ends
 * up null (a variable that was absent or null). */
static bool coerce_args(struct sh__gql_exec *ex, const char *field,
                        const struct sh__gql_arg_def *defs, size_t ndefs,
                        const struct sh__gql_argument *given,
                        const struct sh__gql_loc *loc,
                        const struct path *path, json_object **out)
{
    json_object *args = json_object_new_object();

    *out = NULL;
    if (args == NULL) {
        ex->oom = true;
        return false;
    }
    for (size_t i = 0; i < ndefs; i++) {
        const struct sh__gql_arg_def *d = &defs[i];
        const struct sh__gql_argument *a = given;
        bool have = false, absent = true;
        json_object *v = NULL;

        while (a != NULL && strcmp(a->name, d->name) != 0)
            a = a->next;
        if (a != NULL) {
            v = literal(ex, a->value, &absent);
            have = !absent;
        }
        if (!have && d->defval != NULL) {
            v = literal(ex, d->defval, &absent);
            have = true;
        }
        if (have)
            v = fit_list(d->type, v);
        if (have && v != NULL) {
            /* A literal keeps the JSON type of its token: coerce it like
             * a variable, so that an Int literal given for an ID reaches
             * the resolver as the string it stands for (3.5.5).  The
             * document was validated, so a failure only leaves @v. */
            char why[256];
            json_object *c = NULL;
            if (coerce_input(ex->s, d->type, v, &c, why, sizeof why)) {
                json_object_put(v);
                v = c;
            }
        }
        if (have && v != NULL && !nul_allowed(field, d, &v)) {
            char msg[200];
            json_object_put(v);
            snprintf(msg, sizeof msg, "Argument \"%s\" cannot hold "
                     "U+0000.", d->name);
            ex_error(ex, "BAD_USER_INPUT", loc, path, 0, msg);
            json_object_put(args);
            return false;
        }
        if (is_nonnull(d->type) && (!have || v == NULL)) {
            char msg[200];
            json_object_put(v);
            snprintf(msg, sizeof msg, "Argument \"%s\" of non-null type "
                     "must not be null.", d->name);
            ex_error(ex, "BAD_USER_INPUT", loc, path, 0, msg);
            json_object_put(args);
            return false;
        }
        if (have)
            json_object_object_add(args, d->name, v);
    }
    *out = args;
    return true;
}

/* The `if` of @skip / @include. */
static bool directive_if(struct sh__gql_exec *ex,
                         const struct sh__gql_directive *d)
{
    for (const struct sh__gql_argument *a = d->args; a; a = a->next) {
        if (strcmp(a->name, "if") == 0) {
            bool absent;
            json_object *v = literal(ex, a->value, &absent);
            bool b = v != NULL && json_object_get_boolean(v);
            json_object_put(v);
            return b;
        }
    }
    return false;
}

static bool should_include(struct sh__gql_exec *ex,
                           const struct sh__gql_directive *dirs)
{
    for (const struct sh__gql_directive *d = dirs; d; d = d->next) {
        if (strcmp(d->name, "skip") == 0 && directive_if(ex, d))
            return false;
        if (strcmp(d->name, "include") == 0 && !directive_if(ex, d))
            return false;
    }
    return true;
}

/* ---- CollectFields (6.3.2) -------------------------------------------- */

static bool groups_add(struct sh__gql_exec *ex, struct groups *gs,
                       const struct sh__gql_selection *f)
{
    const char *key = f->alias != NULL ? f->alias : f->name;

    for (size_t i = 0; i < gs->n; i++) {
        if (strcmp(gs->g[i].key, key) == 0) {
            if (gs->g[i].n < sizeof gs->g[i].nodes / sizeof gs->g[i].nodes[0])
                gs->g[i].nodes[gs->g[i].n++] = f;
            return true;
        }
    }
    if (gs->n == gs->cap) {
        size_t cap = gs->cap ? gs->cap * 2 : 8;
        struct group *g = realloc(gs->g, cap * sizeof *g);
        if (g == NULL) {
            ex->oom = true;
            return false;
        }
        gs->g = g;
        gs->cap = cap;
    }
    gs->g[gs->n].key = key;
    gs->g[gs->n].nodes[0] = f;
    gs->g[gs->n].n = 1;
    gs->n++;
    return true;
}

static void collect(struct sh__gql_exec *ex, const struct sh__gql_type *t,
                    const struct sh__gql_selection *sel, struct groups *gs)
{
    for (; sel != NULL && !ex->oom; sel = sel->next) {
        if (!should_include(ex, sel->directives))
            continue;
        switch (sel->kind) {
        case SH__GQL_S_FIELD:
            groups_add(ex, gs, sel);
            break;
        case SH__GQL_S_SPREAD: {
            bool seen = false;
            for (size_t i = 0; i < gs->nvisited; i++)
                if (strcmp(gs->visited[i], sel->name) == 0)
                    seen = true;
            if (seen)
                break;
            if (gs->nvisited < sizeof gs->visited / sizeof gs->visited[0])
                gs->visited[gs->nvisited++] = sel->name;
            const struct sh__gql_definition *fr =
                sh__gql_doc_fragment(ex->doc, sel->name);
            if (fr == NULL || (fr->type_cond != NULL &&
                               strcmp(fr->type_cond, t->name) != 0))
                break;
            collect(ex, t, fr->selset, gs);
            break;
        }
        case SH__GQL_S_INLINE:
            if (sel->type_cond != NULL && strcmp(sel->type_cond, t->name) != 0)
                break;
            collect(ex, t, sel->selset, gs);
            break;
        }
    }
}

/* ---- the request cache (DataLoader) ----------------------------------- */

static void rerr_set(struct sh__gql_rerr *err, sh_err_t rc, const char *msg)
{
    err->code = NULL;
    err->retry_ms = 0;
    if (sh__gql_err_code(rc)[0] == 'I')
        msg = "Internal server error.";
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

json_object *sh__gql_user_full(struct sh__gql_exec *ex, json_object *ref,
                               sh_err_t *rc, struct sh__gql_rerr *err)
{
    const char *id = sh__jstr(ref, "id");
    json_object *v;
    sh_user_t *u = NULL;
    char eb[SH_ERRBUF_SIZE] = "";

    if (id == NULL) {
        *rc = SH_EINTERNAL;
        rerr_set(err, *rc, "");
        return NULL;
    }
    if (json_object_object_get_ex(ex->users, id, &v))
        return v;
    *rc = sh_user_get(ex->hub, ex->viewer, id, &u, eb, sizeof eb);
    if (*rc != SH_OK) {
        rerr_set(err, *rc, eb);
        return NULL;
    }
    v = json_object_get(((const struct sh__jh *)(const void *)u)->obj);
    sh_user_free(u);
    json_object_object_add(ex->users, id, v);
    return v;
}

json_object *sh__gql_stream_full(struct sh__gql_exec *ex, json_object *ref,
                                 sh_err_t *rc, struct sh__gql_rerr *err)
{
    const char *id = sh__jstr(ref, "id");
    json_object *v;
    sh_stream_t *st = NULL;
    char eb[SH_ERRBUF_SIZE] = "";

    if (id == NULL) {
        *rc = SH_EINTERNAL;
        rerr_set(err, *rc, "");
        return NULL;
    }
    if (json_object_object_get_ex(ex->streams, id, &v))
        return v;
    *rc = sh_stream_get(ex->hub, id, &st, eb, sizeof eb);
    if (*rc != SH_OK) {
        rerr_set(err, *rc, eb);
        return NULL;
    }
    v = json_object_get(((const struct sh__jh *)(const void *)st)->obj);
    sh_stream_free(st);
    json_object_object_add(ex->streams, id, v);
    return v;
}

void sh__gql_users_prefetch(struct sh__gql_exec *ex, const char **ids,
                            size_t n)
{
    const char **want = malloc((n + 1) * sizeof *want);
    size_t m = 0;
    sh_user_list_t *l = NULL;

    if (want == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        if (!json_object_object_get_ex(ex->users, ids[i], NULL))
            want[m++] = ids[i];
    if (m > 1 && sh_user_get_many(ex->hub, ex->viewer, want, m, &l, NULL,
                                  0) == SH_OK) {
        for (size_t i = 0; i < sh_user_list_count(l); i++) {
            const char *id = sh_user_list_id_at(l, i);
            json_object *items = json_object_object_get(
                ((const struct sh__jh *)(const void *)l)->obj, "items");
            json_object_object_add(ex->users, id, json_object_get(
                json_object_array_get_idx(items, i)));
        }
    }
    sh_user_list_free(l);
    free(want);
}

/* Does the selection @sel (fields, through fragments) ask for a field not
 * in @have (a NULL-terminated list)? */
static bool needs_more(struct sh__gql_exec *ex,
                       const struct sh__gql_selection *sel,
                       const char *const *have, int depth)
{
    if (depth > 16)
        return true;
    for (; sel != NULL; sel = sel->next) {
        if (sel->kind == SH__GQL_S_FIELD) {
            bool ok = false;
            for (size_t i = 0; have[i] != NULL; i++)
                if (strcmp(have[i], sel->name) == 0)
                    ok = true;
            if (!ok)
                return true;
        } else if (sel->kind == SH__GQL_S_INLINE) {
            if (needs_more(ex, sel->selset, have, depth + 1))
                return true;
        } else {
            const struct sh__gql_definition *fr =
                sh__gql_doc_fragment(ex->doc, sel->name);
            if (fr != NULL && needs_more(ex, fr->selset, have, depth + 1))
                return true;
        }
    }
    return false;
}

/* Does the selection @sel (fields, through fragments) ask for one of
 * @names (a NULL-terminated list)? */
static bool wants_any(struct sh__gql_exec *ex,
                      const struct sh__gql_selection *sel,
                      const char *const *names, int depth)
{
    if (depth > 16)
        return false;
    for (; sel != NULL; sel = sel->next) {
        if (sel->kind == SH__GQL_S_FIELD) {
            for (size_t i = 0; names[i] != NULL; i++)
                if (strcmp(names[i], sel->name) == 0)
                    return true;
        } else if (sel->kind == SH__GQL_S_INLINE) {
            if (wants_any(ex, sel->selset, names, depth + 1))
                return true;
        } else {
            const struct sh__gql_definition *fr =
                sh__gql_doc_fragment(ex->doc, sel->name);
            if (fr != NULL && wants_any(ex, fr->selset, names, depth + 1))
                return true;
        }
    }
    return false;
}

/* The fields of User answered by sh_follow_counts(): batched for lists. */
static const char *const user_count_fields[] = {
    "followerCount", "followingCount", NULL
};

/* The fields of User that only the full user row answers. */
static const char *const user_row_free[] = {
    "id", "username", "__typename", "followerCount", "followingCount",
    "online", "currentStream", "followers", "following", "followedByMe",
    NULL
};

struct idset {
    const char **ids;
    size_t n, cap;
};

static void idset_add(struct idset *s, const char *id)
{
    if (id == NULL)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        const char **p = realloc(s->ids, cap * sizeof *p);
        if (p == NULL)
            return;
        s->ids = p;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
}

/* Scan @items (values of type @t about to run @gs) for the user
 * references whose selection needs the full user row, down through the
 * members already present (edges -> node -> broadcaster). */
static void scan_users(struct sh__gql_exec *ex, const struct sh__gql_type *t,
                       json_object **items, size_t nitems,
                       const struct groups *gs, struct idset *ids,
                       struct idset *cids, int depth)
{
    if (depth > 8 || t->kind != SH__GQL_K_OBJECT)
        return;
    for (size_t g = 0; g < gs->n; g++) {
        const struct sh__gql_selection *node = gs->g[g].nodes[0];
        const struct sh__gql_field *f = sh__gql_type_field(ex->s, t, node->name);
        const struct sh__gql_type *ft;

        if (f == NULL || !node->has_selset)
            continue;
        ft = sh__gql_typeref_named(ex->s, f->type);
        if (ft == NULL || ft->kind != SH__GQL_K_OBJECT)
            continue;
        /* Only members that are data (no resolver of their own). */
        const struct sh__gql_field_info *fi = sh__gql_field_info(ex->eng, t, f);
        if (fi != NULL && fi->resolve != NULL)
            continue;
        size_t cap = 0, m = 0;
        json_object **sub = NULL;
        for (size_t i = 0; i < nitems; i++) {
            json_object *v;
            if (!json_object_object_get_ex(items[i], node->name, &v) ||
                v == NULL)
                continue;
            size_t k = json_object_is_type(v, json_type_array)
                ? json_object_array_length(v) : 1;
            for (size_t j = 0; j < k; j++) {
                json_object *e = json_object_is_type(v, json_type_array)
                    ? json_object_array_get_idx(v, j) : v;
                if (!json_object_is_type(e, json_type_object))
                    continue;
                if (m == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    json_object **p = realloc(sub, nc * sizeof *p);
                    if (p == NULL)
                        break;
                    sub = p;
                    cap = nc;
                }
                sub[m++] = e;
            }
        }
        if (m > 0) {
            if (strcmp(ft->name, "User") == 0) {
                bool more = false;
                for (size_t k = 0; k < gs->g[g].n && !more; k++)
                    more = needs_more(ex, gs->g[g].nodes[k]->selset,
                                      user_row_free, 0);
                if (more)
                    for (size_t i = 0; i < m; i++)
                        if (!json_object_object_get_ex(sub[i], "createdAt",
                                                       NULL))
                            idset_add(ids, sh__jstr(sub[i], "id"));
                more = false;
                for (size_t k = 0; k < gs->g[g].n && !more; k++)
                    more = wants_any(ex, gs->g[g].nodes[k]->selset,
                                     user_count_fields, 0);
                for (size_t i = 0; more && i < m; i++)
                    idset_add(cids, sh__jstr(sub[i], "id"));
            } else {
                struct groups sg = { 0 };
                for (size_t k = 0; k < gs->g[g].n; k++)
                    collect(ex, ft, gs->g[g].nodes[k]->selset, &sg);
                scan_users(ex, ft, sub, m, &sg, ids, cids, depth + 1);
                free(sg.g);
            }
        }
        free(sub);
    }
}

/* ---- execution -------------------------------------------------------- */

static enum res exec_selset(struct sh__gql_exec *ex,
                            const struct sh__gql_type *t, json_object *src,
                            const struct groups *gs, const struct path *path,
                            json_object **out);

static enum res complete(struct sh__gql_exec *ex,
                         const struct sh__gql_typeref *t,
                         const struct group *grp, json_object *v,
                         const struct path *path, json_object **out);

static void leaf_error(struct sh__gql_exec *ex, const struct group *grp,
                       const struct path *path, const char *tn, json_object *v)
{
    char msg[256];

    snprintf(msg, sizeof msg, "%s cannot represent value: %.100s", tn,
             json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    ex_error(ex, "INTERNAL", &grp->nodes[0]->loc, path, 0, msg);
}

static enum res complete_leaf(struct sh__gql_exec *ex,
                              const struct sh__gql_type *nt,
                              const struct group *grp, json_object *v,
                              const struct path *path, json_object **out)
{
    const char *n = nt->name;

    *out = NULL;
    if (nt->kind == SH__GQL_K_ENUM) {
        if (json_object_is_type(v, json_type_string) &&
            sh__gql_enum_value(nt, json_object_get_string(v)) != NULL) {
            *out = json_object_get(v);
            return OK;
        }
    } else if (strcmp(n, "Int") == 0) {
        if (json_object_is_type(v, json_type_int) ||
            json_object_is_type(v, json_type_double)) {
            double d = json_object_get_double(v);
            if (d == floor(d) && d >= INT32_MIN && d <= INT32_MAX) {
                *out = json_object_new_int64((int64_t)d);
                return OK;
            }
        }
    } else if (strcmp(n, "Float") == 0) {
        if (json_object_is_type(v, json_type_int) ||
            json_object_is_type(v, json_type_double)) {
            *out = json_object_get(v);
            return OK;
        }
    } else if (strcmp(n, "Boolean") == 0) {
        if (json_object_is_type(v, json_type_boolean)) {
            *out = json_object_get(v);
            return OK;
        }
    } else if (strcmp(n, "String") == 0 || strcmp(n, "DateTime") == 0 ||
               strcmp(n, "ID") == 0) {
        if (json_object_is_type(v, json_type_string)) {
            *out = json_object_get(v);
            return OK;
        }
        if (strcmp(n, "ID") == 0 && json_object_is_type(v, json_type_int)) {
            *out = json_object_new_string(json_object_get_string(v));
            return OK;
        }
    } else {
        *out = json_object_get(v);     /* JSON */
        return OK;
    }
    leaf_error(ex, grp, path, n, v);
    return NULLED;
}

static enum res complete_inner(struct sh__gql_exec *ex,
                               const struct sh__gql_typeref *t,
                               const struct group *grp, json_object *v,
                               const struct path *path, json_object **out)
{
    const struct sh__gql_type *nt;

    *out = NULL;
    if (v == NULL)
        return OK;
    if (t->kind == SH__GQL_T_LIST) {
        json_object *a;
        size_t n;
        if (!json_object_is_type(v, json_type_array)) {
            ex_error(ex, "INTERNAL", &grp->nodes[0]->loc, path, 0,
                     "Expected a list.");
            return NULLED;
        }
        n = json_object_array_length(v);
        a = json_object_new_array();
        if (a == NULL) {
            ex->oom = true;
            return NULLED;
        }
        /* DataLoader: before the items run, load in one call the users
         * they (or their members) reference. */
        nt = sh__gql_typeref_named(ex->s, t);
        if (nt != NULL && nt->kind == SH__GQL_K_OBJECT && n > 1) {
            struct groups gs = { 0 };
            struct idset ids = { 0 }, cids = { 0 };
            json_object **items = malloc(n * sizeof *items);
            for (size_t k = 0; k < grp->n; k++)
                collect(ex, nt, grp->nodes[k]->selset, &gs);
            if (items != NULL) {
                for (size_t i = 0; i < n; i++)
                    items[i] = json_object_array_get_idx(v, i);
                if (strcmp(nt->name, "User") == 0) {
                    bool more = false;
                    for (size_t k = 0; k < grp->n && !more; k++)
                        more = needs_more(ex, grp->nodes[k]->selset,
                                          user_row_free, 0);
                    for (size_t i = 0; more && i < n; i++)
                        if (!json_object_object_get_ex(items[i], "createdAt",
                                                       NULL))
                            idset_add(&ids, sh__jstr(items[i], "id"));
                    more = false;
                    for (size_t k = 0; k < grp->n && !more; k++)
                        more = wants_any(ex, grp->nodes[k]->selset,
                                         user_count_fields, 0);
                    for (size_t i = 0; more && i < n; i++)
                        idset_add(&cids, sh__jstr(items[i], "id"));
                } else {
                    scan_users(ex, nt, items, n, &gs, &ids, &cids, 0);
                }
                if (ids.n > 1)
                    sh__gql_users_prefetch(ex, ids.ids, ids.n);
                if (cids.n > 1)
                    sh__gql_follow_counts_prefetch(ex, cids.ids, cids.n);
            }
            free(items);
            free(ids.ids);
            free(cids.ids);
            free(gs.g);
        }
        for (size_t i = 0; i < n; i++) {
            struct path p = { NULL, i, path };
            json_object *item;
            if (complete(ex, t->of, grp, json_object_array_get_idx(v, i), &p,
                         &item) == NULLED) {
                json_object_put(a);
                return NULLED;
            }
            json_object_array_add(a, item);
        }
        *out = a;
        return OK;
    }
    nt = sh__gql_typeref_named(ex->s, t);
    if (nt == NULL)
        return NULLED;
    if (sh__gql_kind_is_leaf(nt->kind))
        return complete_leaf(ex, nt, grp, v, path, out);
    /* An object: merge the sub-selections of every node (6.4.3). */
    {
        struct groups gs = { 0 };
        enum res r;
        for (size_t k = 0; k < grp->n; k++)
            collect(ex, nt, grp->nodes[k]->selset, &gs);
        r = exec_selset(ex, nt, v, &gs, path, out);
        free(gs.g);
        return r;
    }
}

static enum res complete(struct sh__gql_exec *ex,
                         const struct sh__gql_typeref *t,
                         const struct group *grp, json_object *v,
                         const struct path *path, json_object **out)
{
    enum res r;

    if (json_object_is_type(v, json_type_null))
        v = NULL;
    if (t->kind == SH__GQL_T_NONNULL) {
        r = complete_inner(ex, t->of, grp, v, path, out);
        if (r == NULLED)
            return NULLED;
        if (*out == NULL) {
            char msg[200];
            snprintf(msg, sizeof msg, "Cannot return null for non-nullable "
                     "field.");
            ex_error(ex, "INTERNAL", &grp->nodes[0]->loc, path, 0, msg);
            return NULLED;
        }
        return OK;
    }
    r = complete_inner(ex, t, grp, v, path, out);
    if (r == NULLED)
        *out = NULL;
    return OK;
}

static bool check_directives(struct sh__gql_exec *ex,
                             const struct sh__gql_field_info *fi,
                             const struct group *grp,
                             const struct path *path)
{
    if (fi == NULL)
        return true;
    if (fi->auth && ex->viewer == NULL) {
        ex_error(ex, "UNAUTHENTICATED", &grp->nodes[0]->loc, path, 0,
                 "Authentication required.");
        return false;
    }
    if (fi->limiter != NULL) {
        char key[SH__LIMITER_KEY_MAX];
        int64_t retry = 0;
        int n;
        if (ex->viewer != NULL)
            n = snprintf(key, sizeof key, "u:%s", ex->viewer);
        else
            n = snprintf(key, sizeof key, "c:%s",
                         ex->client_key != NULL ? ex->client_key : "");
        if (n < 0 || (size_t)n >= sizeof key)
            n = (int)sizeof key - 1;
        if (!sh__limiter_take(fi->limiter, key, (size_t)n, 1.0,
                              sh__mono_ms(), &retry)) {
            ex_error(ex, "RATE_LIMITED", &grp->nodes[0]->loc, path,
                     retry > 0 ? retry : 1000, "Rate limit exceeded; retry "
                     "later.");
            return false;
        }
    }
    return true;
}

/* ---- what the resolving field selects ---------------------------------- */

/* Whether @set (with its fragments, to @depth levels) selects a field
 * named @a, and under it @b when @b is not NULL.  Type conditions and
 * @skip / @include are not looked at: a field they may leave out counts
 * as selected, so a resolver may fetch more than completion reads but
 * never less. */
static bool selects_in(const struct sh__gql_exec *ex,
                       const struct sh__gql_selection *set, const char *a,
                       const char *b, int depth)
{
    if (depth > 16)                 /* validated: no cycles; a bound */
        return true;
    for (const struct sh__gql_selection *sel = set; sel != NULL;
         sel = sel->next) {
        const struct sh__gql_definition *fr;
        switch (sel->kind) {
        case SH__GQL_S_FIELD:
            if (strcmp(sel->name, a) == 0 &&
                (b == NULL || selects_in(ex, sel->selset, b, NULL, 0)))
                return true;
            break;
        case SH__GQL_S_SPREAD:
            fr = sh__gql_doc_fragment(ex->doc, sel->name);
            if (fr != NULL && selects_in(ex, fr->selset, a, b, depth + 1))
                return true;
            break;
        case SH__GQL_S_INLINE:
            if (selects_in(ex, sel->selset, a, b, depth + 1))
                return true;
            break;
        }
    }
    return false;
}

bool sh__gql_selects(const struct sh__gql_exec *ex, const char *a,
                     const char *b)
{
    if (ex->sel_n == 0)             /* not inside a resolver: all of it */
        return true;
    for (size_t i = 0; i < ex->sel_n; i++)
        if (selects_in(ex, ex->sel_nodes[i]->selset, a, b, 0))
            return true;
    return false;
}

/* ExecuteField (6.4.2) for one response key. */
static enum res exec_field(struct sh__gql_exec *ex,
                           const struct sh__gql_type *t, json_object *src,
                           const struct group *grp, const struct path *path,
                           json_object **out)
{
    const struct sh__gql_selection *node = grp->nodes[0];
    const struct sh__gql_field *f = sh__gql_type_field(ex->s, t, node->name);
    const struct sh__gql_field_info *fi;
    json_object *args = NULL, *v = NULL;
    struct sh__gql_rerr err;
    sh_err_t rc = SH_OK;
    enum res r;

    *out = NULL;
    if (f == NULL)                      /* validated: cannot happen */
        return OK;
    if (f == ex->s->meta_typename) {
        *out = json_object_new_string(t->name);
        return OK;
    }
    fi = sh__gql_field_info(ex->eng, t, f);
    if (!check_directives(ex, fi, grp, path))
        return is_nonnull(f->type) ? NULLED : OK;
    if (f->nargs == 0) {
        /* Most fields take no argument: they share one empty object
         * (resolvers only read @args) instead of a hash table each. */
        if (ex->no_args == NULL &&
            (ex->no_args = json_object_new_object()) == NULL) {
            ex->oom = true;
            return NULLED;
        }
        args = json_object_get(ex->no_args);
    } else if (!coerce_args(ex, f->name, f->args, f->nargs, node->args,
                            &node->loc, path, &args)) {
        return is_nonnull(f->type) ? NULLED : OK;
    }
    memset(&err, 0, sizeof err);
    if (f == ex->s->meta_schema) {
        v = json_object_get(json_object_object_get(sh__gql_intro(ex),
                                                   "schema"));
    } else if (f == ex->s->meta_type) {
        v = json_object_get(sh__gql_intro_type(ex, sh__jstr(args, "name")));
    } else if (fi != NULL && fi->resolve != NULL) {
        const struct sh__gql_selection *const *sn = ex->sel_nodes;
        size_t sc = ex->sel_n;
        ex->sel_nodes = grp->nodes;
        ex->sel_n = grp->n;
        rc = fi->resolve(ex, src, args, &v, &err);
        ex->sel_nodes = sn;
        ex->sel_n = sc;
    } else if (!json_object_object_get_ex(src, f->name, &v)) {
        /* A reference: load the whole entity. */
        json_object *full = NULL;
        if (strcmp(t->name, "User") == 0)
            full = sh__gql_user_full(ex, src, &rc, &err);
        else if (strcmp(t->name, "Stream") == 0)
            full = sh__gql_stream_full(ex, src, &rc, &err);
        else if (strncmp(t->name, "__", 2) == 0)
            full = sh__gql_intro_type(ex, sh__jstr(src, "name"));
        v = NULL;
        if (full != NULL && json_object_object_get_ex(full, f->name, &v))
            v = json_object_get(v);
        else
            v = NULL;
    } else {
        v = json_object_get(v);
    }
    json_object_put(args);
    if (rc != SH_OK) {
        json_object_put(v);
        ex_error(ex, err.code != NULL ? err.code : sh__gql_err_code(rc),
                 &node->loc, path, err.retry_ms,
                 err.msg[0] != '\0' ? err.msg : sh_strerror(rc));
        return is_nonnull(f->type) ? NULLED : OK;
    }
    r = complete(ex, f->type, grp, v, path, out);
    json_object_put(v);
    return r;
}

static enum res exec_selset(struct sh__gql_exec *ex,
                            const struct sh__gql_type *t, json_object *src,
                            const struct groups *gs, const struct path *path,
                            json_object **out)
{
    json_object *o = json_object_new_object();

    *out = NULL;
    if (o == NULL) {
        ex->oom = true;
        return NULLED;
    }
    for (size_t i = 0; i < gs->n && !ex->oom; i++) {
        struct path p = { gs->g[i].key, 0, path };
        json_object *v;
        if (exec_field(ex, t, src, &gs->g[i], &p, &v) == NULLED) {
            json_object_put(o);
            return NULLED;
        }
        json_object_object_add(o, gs->g[i].key, v);
    }
    if (ex->oom) {
        json_object_put(o);
        return NULLED;
    }
    *out = o;
    return OK;
}

/* ---- the request ------------------------------------------------------- */

/* CoerceVariableValues (6.4.1): request errors into @errs. */
static bool coerce_vars(struct sh__gql_exec *ex, json_object *given,
                        json_object **out, json_object *errors)
{
    json_object *vars = json_object_new_object();
    bool ok = true;

    *out = NULL;
    if (vars == NULL)
        return false;
    for (const struct sh__gql_input_def *d = ex->op->vars; d; d = d->next) {
        json_object *in = NULL, *v = NULL;
        bool have = given != NULL &&
                    json_object_object_get_ex(given, d->name, &in);
        char why[256] = "", tn[128], msg[512];

        sh__gql_typeref_print(d->type, tn, sizeof tn);
        if (!have) {
            if (d->defval != NULL) {
                bool ab;
                json_object_object_add(vars, d->name, fit_list(d->type,
                                       literal(ex, d->defval, &ab)));
                continue;
            }
            if (!is_nonnull(d->type))
                continue;
            snprintf(msg, sizeof msg, "Variable \"$%s\" of required type "
                     "\"%s\" was not provided.", d->name, tn);
        } else if (in == NULL && is_nonnull(d->type)) {
            snprintf(msg, sizeof msg, "Variable \"$%s\" of non-null type "
                     "\"%s\" must not be null.", d->name, tn);
        } else if (coerce_input(ex->s, d->type, in, &v, why, sizeof why)) {
            json_object_object_add(vars, d->name, v);
            continue;
        } else {
            snprintf(msg, sizeof msg, "Variable \"$%s\" got invalid value "
                     "%.100s; %s", d->name,
                     json_object_to_json_string_ext(in,
                                                    JSON_C_TO_STRING_PLAIN),
                     why);
        }
        ok = false;
        {
            json_object *save = ex->errors;
            ex->errors = errors;
            ex_error(ex, "BAD_USER_INPUT", &d->loc, NULL, 0, msg);
            ex->errors = save;
        }
    }
    if (!ok) {
        json_object_put(vars);
        return false;
    }
    *out = vars;
    return true;
}

/* graphql-js's NoSchemaIntrospectionCustomRule over the whole document. */
static const struct sh__gql_selection *find_introspection(
    const struct sh__gql_selection *sel)
{
    for (; sel != NULL; sel = sel->next) {
        if (sel->kind == SH__GQL_S_FIELD &&
            (strcmp(sel->name, "__schema") == 0 ||
             strcmp(sel->name, "__type") == 0))
            return sel;
        if (sel->selset != NULL) {
            const struct sh__gql_selection *f = find_introspection(sel->selset);
            if (f != NULL)
                return f;
        }
    }
    return NULL;
}

/* A whole JSON text of @len bytes (no trailing bytes, no NUL), or NULL. */
static json_object *parse_json(const char *text, size_t len)
{
    struct json_tokener *tok;
    json_object *o;

    if (len == 0 || len > INT32_MAX || memchr(text, '\0', len) != NULL)
        return NULL;
    tok = json_tokener_new();
    if (tok == NULL)
        return NULL;
    o = json_tokener_parse_ex(tok, text, (int)len);
    if (o != NULL && json_tokener_get_error(tok) == json_tokener_success) {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
            if (strchr(" \t\r\n", text[i]) == NULL) {
                json_object_put(o);
                o = NULL;
                break;
            }
    } else if (o != NULL) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static json_object *request_error(json_object *errors)
{
    json_object *r = json_object_new_object();

    if (r == NULL || json_object_object_add(r, "errors", errors) != 0) {
        json_object_put(r);
        json_object_put(errors);
        return NULL;
    }
    return r;
}

sh_err_t sh__gql_run(sh_hub_t *hub, struct sh__gql_engine *eng,
                     const char *query, size_t qlen, const char *vars_json,
                     size_t vars_len, const char *op_name,
                     const char *viewer, unsigned roles,
                     const char *client_key, char **text, size_t *len,
                     int *status)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_doc *own = NULL;       /* parsed here, not kept */
    struct sh__gql_cdoc *kept = NULL;     /* held: a kept document */
    const struct sh__gql_doc *doc = NULL;
    struct sh__gql_exec ex;
    json_object *given = NULL, *errors = NULL, *data = NULL, *r = NULL;
    json_object **resp = &r;
    sh_err_t rc;

    *text = NULL;
    *len = 0;
    *status = 400;
    memset(&ex, 0, sizeof ex);
    ex.hub = hub;
    ex.eng = eng;
    ex.s = eng->schema;
    ex.viewer = viewer;
    ex.roles = roles;
    ex.client_key = client_key;

    /* A document seen before skips parsing and validation (doccache.c);
     * a new one is parsed from the copy that the cache would keep. */
    kept = sh__gql_doccache_get(eng->docs, query, qlen);
    if (kept != NULL) {
        doc = sh__gql_cdoc_doc(kept);
        rc = SH_OK;
        goto valid;
    }
    if (qlen <= eng->limits.max_document_bytes)
        kept = sh__gql_doccache_copy(eng->docs, query, qlen);
    rc = sh__gql_parse(kept != NULL ? sh__gql_cdoc_text(kept) : query, qlen,
                       &eng->limits, &own, &errs);
    doc = own;
    if (rc == SH_ENOMEM || errs.oom)
        goto oom;
    if (rc == SH_OK)
        rc = sh__gql_validate(eng->schema, doc, &errs);
    if (rc == SH_ENOMEM || errs.oom)
        goto oom;
    if (rc == SH_OK && !eng->introspection) {
        for (const struct sh__gql_definition *d = doc->defs; d; d = d->next) {
            const struct sh__gql_selection *f = find_introspection(d->selset);
            if (f != NULL) {
                sh__gql_error_add(&errs, "FORBIDDEN", &f->loc, 1,
                                  "GraphQL introspection has been disabled, "
                                  "but the requested query contained the "
                                  "field \"%s\".", f->name);
                rc = SH_EINVAL;
                break;
            }
        }
    }
    if (rc == SH_OK && kept != NULL) {
        sh__gql_doccache_put(eng->docs, kept, own);    /* takes own */
        own = NULL;
    } else {
        sh__gql_cdoc_release(kept);         /* never kept: only valid ones */
        kept = NULL;
    }
valid:
    if (rc == SH_OK)
        rc = sh__gql_get_operation(doc, op_name, &ex.op, &errs);
    if (rc == SH_OK && vars_json != NULL) {
        given = parse_json(vars_json, vars_len);
        if (given != NULL && !json_object_is_type(given, json_type_object)) {
            json_object_put(given);
            given = NULL;
        }
        if (given == NULL && !(vars_len == 4 &&
                               memcmp(vars_json, "null", 4) == 0)) {
            sh__gql_error_add(&errs, "BAD_USER_INPUT", NULL, 0,
                              "Variables must be a JSON object.");
            rc = SH_EINVAL;
        }
    }
    if (rc == SH_OK && ex.op->op == SH__GQL_SUBSCRIPTION) {
        sh__gql_error_add(&errs, "BAD_USER_INPUT", &ex.op->loc, 1,
                          "Subscriptions are served over WebSocket "
                          "(graphql-transport-ws) only.");
        rc = SH_EINVAL;
    }
    if (rc != SH_OK) {
        *resp = request_error(sh__gql_errors_to_json(&errs));
        goto done;
    }
    ex.doc = doc;
    errors = json_object_new_array();
    if (errors == NULL)
        goto oom;
    if (!coerce_vars(&ex, given, &ex.vars, errors)) {
        if (ex.oom)
            goto oom;
        *resp = request_error(errors);
        errors = NULL;
        goto done;
    }
    /* Limits after coercion: first/last given by variables count. */
    rc = sh__gql_check_limits(eng->schema, doc, ex.op, ex.vars, &eng->limits,
                              &errs);
    if (rc == SH_ENOMEM || errs.oom)
        goto oom;
    if (rc != SH_OK) {
        *resp = request_error(sh__gql_errors_to_json(&errs));
        goto done;
    }
    ex.errors = errors;
    ex.users = json_object_new_object();
    ex.streams = json_object_new_object();
    ex.memo = json_object_new_object();
    if (ex.users == NULL || ex.streams == NULL || ex.memo == NULL)
        goto oom;
    {
        const struct sh__gql_type *root = sh__gql_schema_root(ex.s, ex.op->op);
        struct groups gs = { 0 };
        json_object *rootv = json_object_new_object();
        /* A mutation's payload shows its own write: no replica reads. */
        bool pin = ex.op->op == SH__GQL_MUTATION;

        if (pin)
            sh__reads_primary_begin();
        /* Every handle of this request is freed on this thread. */
        sh__results_stay_begin();
        collect(&ex, root, ex.op->selset, &gs);
        if (exec_selset(&ex, root, rootv, &gs, NULL, &data) == NULLED)
            data = NULL;
        sh__results_stay_end();
        if (pin)
            sh__reads_primary_end();
        json_object_put(rootv);
        free(gs.g);
    }
    if (ex.oom)
        goto oom;
    *resp = json_object_new_object();
    if (*resp == NULL)
        goto oom;
    if (json_object_array_length(errors) > 0) {
        json_object_object_add(*resp, "errors", errors);
        errors = NULL;
    }
    json_object_object_add(*resp, "data", data);
    data = NULL;
    *status = 200;
done:
    rc = SH_ENOMEM;
    if (r != NULL) {
        size_t n = 0;
        const char *t = json_object_to_json_string_length(
            r, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (t != NULL && (*text = malloc(n + 1)) != NULL) {
            memcpy(*text, t, n + 1);
            *len = n;
            rc = SH_OK;
        }
    }
    goto out;
oom:
    rc = SH_ENOMEM;
out:
    json_object_put(r);
    json_object_put(data);
    json_object_put(errors);
    json_object_put(given);
    json_object_put(ex.vars);
    json_object_put(ex.users);
    json_object_put(ex.streams);
    json_object_put(ex.memo);
    json_object_put(ex.no_args);
    /* Last: the response may have shared its values. */
    sh__gql_intro_release(&ex);
    sh__gql_errors_clear(&errs);
    sh__gql_doc_free(own);
    sh__gql_cdoc_release(kept);
    if (rc != SH_OK)
        *status = 400;
    return rc;
}

/* ---- subscriptions ------------------------------------------------------ */

struct sh__gql_sub {
    sh_hub_t *hub;
    struct sh__gql_engine *eng;
    struct sh__gql_doc *doc;             /* owned */
    char *text;                          /* owned: the doc borrows it */
    const struct sh__gql_definition *op;
    json_object *vars;                   /* owned */
    json_object *args;                   /* owned: the root field's */
    char *viewer;                        /* owned; NULL anonymous */
    unsigned roles;
    const char *field;                   /* the root field's name */
    char channel[128];
    int64_t since;
    char *since_epoch;                   /* owned; NULL when not given */
};

static json_object *str_or_null_j(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *sub_error(struct sh__gql_errors *errs)
{
    return request_error(sh__gql_errors_to_json(errs));
}

sh_err_t sh__gql_sub_prepare(sh_hub_t *hub, const char *query, size_t qlen,
                             const char *vars_json, size_t vars_len,
                             const char *op_name, const char *viewer,
                             unsigned roles, struct sh__gql_sub **out,
                             json_object **resp)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_engine *eng;
    struct sh__gql_sub *sub;
    struct sh__gql_exec ex;
    struct groups gs = { 0 };
    json_object *given = NULL, *errors = NULL;
    const struct sh__gql_field *f;
    const struct sh__gql_type *root;
    sh_err_t rc;

    *out = NULL;
    *resp = NULL;
    rc = sh__gql_engine_get(hub, &eng, NULL, 0);
    if (rc != SH_OK)
        return rc == SH_ENOMEM ? rc : SH_EINVAL;
    sub = calloc(1, sizeof *sub);
    if (sub == NULL)
        return SH_ENOMEM;
    sub->hub = hub;
    sub->eng = eng;
    sub->roles = roles;
    sub->since = -1;
    sub->text = malloc(qlen + 1);
    if (sub->text == NULL || (viewer != NULL &&
                              (sub->viewer = strdup(viewer)) == NULL))
        goto oom;
    if (qlen > 0)
        memcpy(sub->text, query, qlen);
    sub->text[qlen] = '\0';
    memset(&ex, 0, sizeof ex);
    ex.hub = hub;
    ex.eng = eng;
    ex.s = eng->schema;
    ex.viewer = sub->viewer;
    rc = sh__gql_parse(sub->text, qlen, &eng->limits, &sub->doc, &errs);
    if (rc == SH_OK)
        rc = sh__gql_validate(eng->schema, sub->doc, &errs);
    if (rc == SH_OK)
        rc = sh__gql_get_operation(sub->doc, op_name, &sub->op, &errs);
    if (rc == SH_OK && sub->op->op != SH__GQL_SUBSCRIPTION) {
        sh__gql_error_add(&errs, "BAD_USER_INPUT", &sub->op->loc, 1,
                          "Only subscription operations are served here.");
        rc = SH_EINVAL;
    }
    if (rc == SH_OK && vars_json != NULL) {
        given = parse_json(vars_json, vars_len);
        if (given == NULL || !json_object_is_type(given, json_type_object)) {
            sh__gql_error_add(&errs, "BAD_USER_INPUT", NULL, 0,
                              "Variables must be a JSON object.");
            rc = SH_EINVAL;
        }
    }
    if (rc == SH_ENOMEM || errs.oom)
        goto oom;
    if (rc != SH_OK)
        goto reqerr;
    ex.doc = sub->doc;
    ex.op = sub->op;
    errors = json_object_new_array();
    if (errors == NULL)
        goto oom;
    if (!coerce_vars(&ex, given, &sub->vars, errors)) {
        if (ex.oom)
            goto oom;
        *resp = request_error(errors);
        errors = NULL;
        goto fail;
    }
    ex.vars = sub->vars;
    ex.errors = errors;
    root = eng->schema->subscription;
    collect(&ex, root, sub->op->selset, &gs);
    if (ex.oom)
        goto oom;
    if (gs.n != 1) {
        sh__gql_error_add(&errs, "BAD_USER_INPUT", &sub->op->loc, 1,
                          "Anonymous Subscription must select only one "
                          "top level field.");
        goto reqerr;
    }
    f = sh__gql_type_field(eng->schema, root, gs.g[0].nodes[0]->name);
    if (f == NULL || f == eng->schema->meta_typename) {
        sh__gql_error_add(&errs, "BAD_USER_INPUT", &sub->op->loc, 1,
                          "A subscription must select one field of "
                          "Subscription.");
        goto reqerr;
    }
    {
        struct path p = { gs.g[0].key, 0, NULL };
        if (!check_directives(&ex, sh__gql_field_info(eng, root, f),
                              &gs.g[0], &p) ||
            !coerce_args(&ex, f->name, f->args, f->nargs,
                         gs.g[0].nodes[0]->args,
                         &gs.g[0].nodes[0]->loc, &p, &sub->args)) {
            if (ex.oom)
                goto oom;
            *resp = request_error(errors);
            errors = NULL;
            goto fail;
        }
    }
    sub->field = f->name;
    /* The channel is built in a fixed buffer: a streamId cut short there
     * would name another stream's channel. */
    {
        json_object *id;
        size_t room = sizeof sub->channel - sizeof "stream:";

        if (json_object_object_get_ex(sub->args, "streamId", &id) &&
            json_object_is_type(id, json_type_string) &&
            (size_t)json_object_get_string_len(id) > room) {
            sh__gql_error_add(&errs, "BAD_USER_INPUT",
                              &gs.g[0].nodes[0]->loc, 1,
                              "streamId must be at most %zu bytes.", room);
            goto reqerr;
        }
    }
    if (strcmp(f->name, "chatMessages") == 0) {
        json_object *s;
        snprintf(sub->channel, sizeof sub->channel, "chat:%s",
                 sh__jstr(sub->args, "streamId"));
        if (json_object_object_get_ex(sub->args, "sinceOffset", &s) &&
            s != NULL) {
            sub->since = json_object_get_int64(s);
            /* Offsets start at 1; 0 means "from the beginning of what
             * the history holds".  A negative one is a mistake, not a
             * request for live events only. */
            if (sub->since < 0) {
                sh__gql_error_add(&errs, "BAD_USER_INPUT",
                                  &gs.g[0].nodes[0]->loc, 1,
                                  "sinceOffset must be 0 or more.");
                goto reqerr;
            }
        }
        /* sinceEpoch names the numbering of sinceOffset; alone it
         * resumes nothing. */
        if (sub->since >= 0 &&
            json_object_object_get_ex(sub->args, "sinceEpoch", &s) &&
            s != NULL && (sub->since_epoch = strdup(
                              json_object_get_string(s))) == NULL)
            goto oom;
    } else if (strcmp(f->name, "streamUpdates") == 0) {
        snprintf(sub->channel, sizeof sub->channel, "stream:%s",
                 sh__jstr(sub->args, "streamId"));
    } else if (strcmp(f->name, "liveStreams") == 0) {
        snprintf(sub->channel, sizeof sub->channel, "live");
    } else {
        snprintf(sub->channel, sizeof sub->channel, "user:%s",
                 sub->viewer != NULL ? sub->viewer : "");
    }
    free(gs.g);
    json_object_put(errors);
    json_object_put(given);
    sh__gql_errors_clear(&errs);
    *out = sub;
    return SH_OK;
reqerr:
    *resp = sub_error(&errs);
    if (*resp == NULL)
        goto oom;
fail:
    free(gs.g);
    json_object_put(errors);
    json_object_put(given);
    sh__gql_errors_clear(&errs);
    sh__gql_sub_free(sub);
    return SH_EINVAL;
oom:
    free(gs.g);
    json_object_put(errors);
    json_object_put(given);
    sh__gql_errors_clear(&errs);
    sh__gql_sub_free(sub);
    json_object_put(*resp);
    *resp = NULL;
    return SH_ENOMEM;
}

const char *sh__gql_sub_channel(const struct sh__gql_sub *sub)
{
    return sub->channel;
}

int64_t sh__gql_sub_since(const struct sh__gql_sub *sub)
{
    return sub->since;
}

const char *sh__gql_sub_since_epoch(const struct sh__gql_sub *sub)
{
    return sub->since_epoch;
}

/* The value of the root field for one event (engine_int.h's table);
 * NULL when the event is not for this subscription. */
static json_object *event_value(const struct sh__gql_sub *sub,
                                const char *type, json_object *data,
                                const char *epoch, int64_t offset)
{
    json_object *v;
    const char *kind = NULL;

    if (strcmp(sub->field, "notifications") == 0)
        return strcmp(type, "notification") == 0 ? json_object_get(data)
                                                  : NULL;
    v = json_object_new_object();
    if (v == NULL)
        return NULL;
    if (strcmp(sub->field, "chatMessages") == 0) {
        const char *mid = sh__jstr(data, "messageId");
        if (strcmp(type, "chat.message") == 0) {
            kind = "MESSAGE";
            json_object_object_add(v, "message", json_object_get(data));
        } else if (strcmp(type, "chat.message_deleted") == 0) {
            kind = "MESSAGE_DELETED";
            json_object_object_add(v, "messageId", str_or_null_j(
                mid != NULL ? mid : sh__jstr(data, "id")));
        } else if (strcmp(type, "chat.user_timed_out") == 0 ||
                   strcmp(type, "chat.user_banned") == 0) {
            kind = type[10] == 't' ? "USER_TIMED_OUT" : "USER_BANNED";
            json_object_object_add(v, "userId",
                                   str_or_null_j(sh__jstr(data, "userId")));
        } else if (strcmp(type, "chat.settings_changed") == 0) {
            kind = "SETTINGS_CHANGED";
            json_object_object_add(v, "settings", json_object_get(data));
        }
        json_object_object_add(v, "offset", json_object_new_int64(offset));
        json_object_object_add(v, "epoch", json_object_new_string(
                                               epoch != NULL ? epoch : ""));
    } else {
        if (strcmp(type, "stream.live") == 0)
            kind = "LIVE";
        else if (strcmp(type, "stream.offline") == 0)
            kind = "OFFLINE";
        else if (strcmp(type, "stream.updated") == 0)
            kind = "UPDATED";
        else if (strcmp(type, "stream.viewers") == 0)
            kind = "VIEWERS";
        else if (strcmp(type, "raid.incoming") == 0)
            kind = "RAID";
        if (kind != NULL && strcmp(kind, "RAID") == 0) {
            json_object_object_add(v, "raid", json_object_get(data));
            json_object_object_add(v, "stream", json_object_get(
                json_object_object_get(data, "from")));
        } else {
            json_object_object_add(v, "stream", json_object_get(data));
        }
        if (kind != NULL && strcmp(sub->field, "liveStreams") == 0 &&
            sh__jstr(sub->args, "category") != NULL) {
            const char *want = sh__jstr(sub->args, "category");
            const char *got = sh__jstr(data, "category");
            if (got == NULL || strcmp(want, got) != 0)
                kind = NULL;
        }
    }
    if (kind == NULL) {
        json_object_put(v);
        return NULL;
    }
    json_object_object_add(v, "kind", json_object_new_string(kind));
    return v;
}

sh_err_t sh__gql_sub_format(struct sh__gql_sub *sub, const char *type,
                            json_object *data, const char *epoch,
                            int64_t offset, json_object **payload)
{
    struct sh__gql_exec ex;
    struct groups gs = { 0 };
    json_object *value, *src = NULL, *out = NULL;
    sh_err_t rc = SH_ENOMEM;

    *payload = NULL;
    if (type == NULL)
        return SH_ENOTFOUND;
    value = event_value(sub, type, data, epoch, offset);
    if (value == NULL)
        return SH_ENOTFOUND;
    memset(&ex, 0, sizeof ex);
    ex.hub = sub->hub;
    ex.eng = sub->eng;
    ex.s = sub->eng->schema;
    ex.doc = sub->doc;
    ex.op = sub->op;
    ex.vars = sub->vars;
    ex.viewer = sub->viewer;
    ex.roles = sub->roles;
    ex.errors = json_object_new_array();
    ex.users = json_object_new_object();
    ex.streams = json_object_new_object();
    ex.memo = json_object_new_object();
    src = json_object_new_object();
    if (ex.errors == NULL || ex.users == NULL || ex.streams == NULL ||
        ex.memo == NULL || src == NULL) {
        json_object_put(value);
        goto out;
    }
    json_object_object_add(src, sub->field, value);
    collect(&ex, ex.s->subscription, sub->op->selset, &gs);
    {
        /* The root field's resolver is the event: read the member. */
        const struct sh__gql_field *f = sh__gql_type_field(
            ex.s, ex.s->subscription, sub->field);
        json_object *v = NULL;
        struct path p = { gs.n > 0 ? gs.g[0].key : sub->field, 0, NULL };
        enum res r = gs.n == 1 && f != NULL
            ? complete(&ex, f->type, &gs.g[0], value, &p, &v) : NULLED;
        if (ex.oom) {
            json_object_put(v);
            goto out;
        }
        out = json_object_new_object();
        if (out == NULL) {
            json_object_put(v);
            goto out;
        }
        if (json_object_array_length(ex.errors) > 0)
            json_object_object_add(out, "errors",
                                   json_object_get(ex.errors));
        if (r == NULLED) {
            json_object_object_add(out, "data", NULL);
        } else {
            json_object *d = json_object_new_object();
            json_object_object_add(d, p.key, v);
            json_object_object_add(out, "data", d);
        }
    }
    *payload = out;
    rc = SH_OK;
out:
    free(gs.g);
    json_object_put(src);
    json_object_put(ex.errors);
    json_object_put(ex.users);
    json_object_put(ex.streams);
    json_object_put(ex.memo);
    json_object_put(ex.no_args);
    /* Subscription fields never reach __schema or __type; were a tree
     * taken, the payload could still share it: freed, never pooled. */
    json_object_put(ex.intro);
    return rc;
}

void sh__gql_sub_free(struct sh__gql_sub *sub)
{
    if (sub == NULL)
        return;
    json_object_put(sub->vars);
    json_object_put(sub->args);
    sh__gql_doc_free(sub->doc);
    free(sub->text);
    free(sub->viewer);
    free(sub->since_epoch);
    free(sub);
}
