/* libstreamhub/graphql/introspection.c: __schema and __type.
 *
 * The schema model is immutable, so its introspection is built once per
 * engine as JSON (the shape of __Schema, __Type, __Field, __InputValue,
 * __EnumValue, __Directive) and executed like any service result.  To
 * keep the JSON a tree (json-c counts references: a cycle would never be
 * freed), a field's type names a type by reference, {"kind","name"}, and
 * the executor loads the full __Type of that name from the types map when
 * a member beyond those two is selected.  List and non-null wrappers are
 * complete objects.
 *
 * Threads.  The engine keeps that JSON as text (eng->intro_text): json-c
 * counts references without atomics and serialises into a buffer of the
 * object, so one json-c tree read by two workers at once corrupts the
 * heap.  A request that selects __schema or __type gets a tree of its own
 * (sh__gql_intro(), held by struct sh__gql_exec) which no other thread
 * touches while it holds it: one parsed from the text, or one that an
 * earlier request gave back to the engine's small pool once nothing of
 * that request referred to it (sh__gql_intro_release(); the pool is
 * touched under its mutex only, which orders the two requests).  The
 * text is
 * {"schema": __Schema with "types" as a list of names, "types": name ->
 * full __Type}; the parse puts the map's objects into that list.
 *
 * defaultValue is the default's GraphQL literal as graphql-js prints it
 * (sh__gql_value_print()), e.g. "20", "false", "\"No longer supported\"".
 */
#include <stdlib.h>
#include <string.h>

#include "graphql/engine_int.h"
#include "services/export_int.h"

static const char *kind_name(enum sh__gql_kind k)
{
    switch (k) {
    case SH__GQL_K_SCALAR: return "SCALAR";
    case SH__GQL_K_OBJECT: return "OBJECT";
    case SH__GQL_K_INTERFACE: return "INTERFACE";
    case SH__GQL_K_UNION: return "UNION";
    case SH__GQL_K_ENUM: return "ENUM";
    case SH__GQL_K_INPUT_OBJECT: return "INPUT_OBJECT";
    }
    return "SCALAR";
}

static json_object *str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static json_object *type_ref(const struct sh__gql_schema *s,
                             const struct sh__gql_typeref *t)
{
    json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    if (t->kind == SH__GQL_T_NAMED) {
        const struct sh__gql_type *nt = t->type != NULL
            ? t->type : sh__gql_schema_type(s, t->name);
        json_object_object_add(o, "kind", json_object_new_string(
                                   kind_name(nt != NULL ? nt->kind
                                                        : SH__GQL_K_SCALAR)));
        json_object_object_add(o, "name", json_object_new_string(t->name));
        return o;
    }
    json_object_object_add(o, "kind", json_object_new_string(
                               t->kind == SH__GQL_T_LIST ? "LIST"
                                                         : "NON_NULL"));
    json_object_object_add(o, "name", NULL);
    json_object_object_add(o, "description", NULL);
    json_object_object_add(o, "specifiedByURL", NULL);
    json_object_object_add(o, "fields", NULL);
    json_object_object_add(o, "interfaces", NULL);
    json_object_object_add(o, "possibleTypes", NULL);
    json_object_object_add(o, "enumValues", NULL);
    json_object_object_add(o, "inputFields", NULL);
    json_object_object_add(o, "ofType", type_ref(s, t->of));
    return o;
}

static void deprecation(json_object *o, bool dep, const char *reason)
{
    json_object_object_add(o, "isDeprecated", json_object_new_boolean(dep));
    json_object_object_add(o, "deprecationReason",
                           dep ? str_or_null(reason != NULL
                                             ? reason
                                             : "No longer supported")
                               : NULL);
}

static json_object *input_values(const struct sh__gql_schema *s,
                                 const struct sh__gql_arg_def *a, size_t n,
                                 bool *oom)
{
    json_object *arr = json_object_new_array();

    if (arr == NULL) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        char *dv = NULL;
        if (o == NULL) {
            *oom = true;
            break;
        }
        json_object_object_add(o, "name", json_object_new_string(a[i].name));
        json_object_object_add(o, "description", str_or_null(a[i].description));
        json_object_object_add(o, "type", type_ref(s, a[i].type));
        if (a[i].defval != NULL) {
            dv = sh__gql_value_print(a[i].defval);
            if (dv == NULL)
                *oom = true;
        }
        json_object_object_add(o, "defaultValue", str_or_null(dv));
        free(dv);
        deprecation(o, a[i].deprecated, a[i].deprecation_reason);
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *full_type(const struct sh__gql_schema *s,
                              const struct sh__gql_type *t, bool *oom)
{
    json_object *o = json_object_new_object();

    if (o == NULL) {
        *oom = true;
        return NULL;
    }
    json_object_object_add(o, "kind", json_object_new_string(
                               kind_name(t->kind)));
    json_object_object_add(o, "name", json_object_new_string(t->name));
    json_object_object_add(o, "description", str_or_null(t->description));
    json_object_object_add(o, "specifiedByURL",
                           t->kind == SH__GQL_K_SCALAR
                               ? str_or_null(t->specified_by) : NULL);
    if (t->kind == SH__GQL_K_OBJECT || t->kind == SH__GQL_K_INTERFACE) {
        json_object *fs = json_object_new_array();
        for (size_t i = 0; fs != NULL && i < t->nfields; i++) {
            const struct sh__gql_field *f = &t->fields[i];
            json_object *fo = json_object_new_object();
            if (fo == NULL) {
                *oom = true;
                break;
            }
            json_object_object_add(fo, "name", json_object_new_string(f->name));
            json_object_object_add(fo, "description",
                                   str_or_null(f->description));
            json_object_object_add(fo, "args",
                                   input_values(s, f->args, f->nargs, oom));
            json_object_object_add(fo, "type", type_ref(s, f->type));
            deprecation(fo, f->deprecated, f->deprecation_reason);
            json_object_array_add(fs, fo);
        }
        if (fs == NULL)
            *oom = true;
        json_object_object_add(o, "fields", fs);
        json_object_object_add(o, "interfaces", json_object_new_array());
    } else {
        json_object_object_add(o, "fields", NULL);
        json_object_object_add(o, "interfaces", NULL);
    }
    json_object_object_add(o, "possibleTypes", NULL);
    if (t->kind == SH__GQL_K_ENUM) {
        json_object *vs = json_object_new_array();
        for (size_t i = 0; vs != NULL && i < t->nvalues; i++) {
            json_object *vo = json_object_new_object();
            if (vo == NULL) {
                *oom = true;
                break;
            }
            json_object_object_add(vo, "name",
                                   json_object_new_string(t->values[i].name));
            json_object_object_add(vo, "description",
                                   str_or_null(t->values[i].description));
            deprecation(vo, t->values[i].deprecated,
                        t->values[i].deprecation_reason);
            json_object_array_add(vs, vo);
        }
        if (vs == NULL)
            *oom = true;
        json_object_object_add(o, "enumValues", vs);
    } else {
        json_object_object_add(o, "enumValues", NULL);
    }
    json_object_object_add(o, "inputFields",
                           t->kind == SH__GQL_K_INPUT_OBJECT
                               ? json_object_new_array() : NULL);
    json_object_object_add(o, "ofType", NULL);
    /* No input type of ours is @oneOf. */
    json_object_object_add(o, "isOneOf",
                           t->kind == SH__GQL_K_INPUT_OBJECT
                               ? json_object_new_boolean(0) : NULL);
    return o;
}

static bool ref_uses(const struct sh__gql_typeref *t, const char *name)
{
    while (t->kind != SH__GQL_T_NAMED)
        t = t->of;
    return strcmp(t->name, name) == 0;
}

/* Does a field or argument of the schema (directives included) use
 * @name? */
static bool referenced(const struct sh__gql_schema *s, const char *name)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        const struct sh__gql_type *t = s->types[i];
        for (size_t f = 0; f < t->nfields; f++) {
            if (ref_uses(t->fields[f].type, name))
                return true;
            for (size_t a = 0; a < t->fields[f].nargs; a++)
                if (ref_uses(t->fields[f].args[a].type, name))
                    return true;
        }
    }
    for (size_t i = 0; i < s->ndirectives; i++)
        for (size_t a = 0; a < s->directives[i]->nargs; a++)
            if (ref_uses(s->directives[i]->args[a].type, name))
                return true;
    return false;
}

static json_object *root_ref(const struct sh__gql_type *t)
{
    json_object *o;

    if (t == NULL)
        return NULL;
    o = json_object_new_object();
    if (o != NULL) {
        json_object_object_add(o, "kind", json_object_new_string("OBJECT"));
        json_object_object_add(o, "name", json_object_new_string(t->name));
    }
    return o;
}

sh_err_t sh__gql_introspection_build(struct sh__gql_engine *eng)
{
    const struct sh__gql_schema *s = eng->schema;
    json_object *sch = json_object_new_object();
    json_object *map = json_object_new_object();
    json_object *types = json_object_new_array();
    json_object *dirs = json_object_new_array();
    json_object *root = NULL;
    const char *text;
    size_t n = 0;
    bool oom = false;

    if (sch == NULL || map == NULL || types == NULL || dirs == NULL) {
        oom = true;
        goto out;
    }
    for (size_t i = 0; i < s->ntypes && !oom; i++) {
        json_object *t = full_type(s, s->types[i], &oom);
        if (t == NULL)
            break;
        json_object_object_add(map, s->types[i]->name, t);
        /* Like graphql-js, a built-in scalar nothing uses (Float) is not
         * listed; __type(name:) still knows it. */
        if (!(s->types[i]->kind == SH__GQL_K_SCALAR && s->types[i]->builtin &&
              !referenced(s, s->types[i]->name)))
            json_object_array_add(types, json_object_new_string(
                                             s->types[i]->name));
    }
    for (size_t i = 0; i < s->ndirectives && !oom; i++) {
        const struct sh__gql_directive_def *d = s->directives[i];
        json_object *o = json_object_new_object(), *locs;
        if (o == NULL) {
            oom = true;
            break;
        }
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "description", str_or_null(d->description));
        json_object_object_add(o, "isRepeatable",
                               json_object_new_boolean(d->repeatable));
        locs = json_object_new_array();
        for (int l = 0; locs != NULL && l < SH__GQL_L_COUNT; l++)
            if (d->locations & (1u << l))
                json_object_array_add(locs, json_object_new_string(
                    sh__gql_dirloc_name((enum sh__gql_dirloc)l)));
        json_object_object_add(o, "locations", locs);
        json_object_object_add(o, "args",
                               input_values(s, d->args, d->nargs, &oom));
        deprecation(o, false, NULL);
        json_object_array_add(dirs, o);
    }
    json_object_object_add(sch, "description", NULL);
    json_object_object_add(sch, "types", types);
    types = NULL;
    json_object_object_add(sch, "queryType", root_ref(s->query));
    json_object_object_add(sch, "mutationType", root_ref(s->mutation));
    json_object_object_add(sch, "subscriptionType",
                           root_ref(s->subscription));
    json_object_object_add(sch, "directives", dirs);
    dirs = NULL;
    if (oom)
        goto out;
    root = json_object_new_object();
    if (root == NULL) {
        oom = true;
        goto out;
    }
    json_object_object_add(root, "schema", sch);
    json_object_object_add(root, "types", map);
    sch = map = NULL;
    text = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (text == NULL || (eng->intro_text = malloc(n + 1)) == NULL) {
        oom = true;
        goto out;
    }
    memcpy(eng->intro_text, text, n + 1);
    eng->intro_len = n;
out:
    json_object_put(types);
    json_object_put(dirs);
    json_object_put(sch);
    json_object_put(map);
    json_object_put(root);
    return oom ? SH_ENOMEM : SH_OK;
}

json_object *sh__gql_intro(struct sh__gql_exec *ex)
{
    struct sh__gql_engine *eng = ex->eng;
    json_object *root = NULL, *sch, *names, *map, *types;

    if (ex->intro != NULL)
        return ex->intro;
    pthread_mutex_lock(&eng->intro_mu);
    if (eng->intro_npool > 0)
        root = eng->intro_pool[--eng->intro_npool];
    pthread_mutex_unlock(&eng->intro_mu);
    if (root != NULL) {
        ex->intro = root;           /* ours alone until released */
        return root;
    }
    root = json_tokener_parse(eng->intro_text);
    if (root == NULL ||
        !json_object_object_get_ex(root, "schema", &sch) ||
        !json_object_object_get_ex(root, "types", &map) ||
        !json_object_object_get_ex(sch, "types", &names) ||
        (types = json_object_new_array()) == NULL) {
        json_object_put(root);
        ex->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < json_object_array_length(names); i++) {
        json_object *t = json_object_object_get(map, json_object_get_string(
                             json_object_array_get_idx(names, i)));
        json_object_array_add(types, json_object_get(t));
    }
    json_object_object_add(sch, "types", types);
    ex->intro = root;
    return root;
}

void sh__gql_intro_release(struct sh__gql_exec *ex)
{
    struct sh__gql_engine *eng = ex->eng;
    json_object *root = ex->intro;

    if (root == NULL)
        return;
    ex->intro = NULL;
    pthread_mutex_lock(&eng->intro_mu);
    if (eng->intro_npool < SH__GQL_INTRO_POOL) {
        eng->intro_pool[eng->intro_npool++] = root;
        root = NULL;
    }
    pthread_mutex_unlock(&eng->intro_mu);
    json_object_put(root);
}

void sh__gql_intro_pool_free(struct sh__gql_engine *eng)
{
    for (size_t i = 0; i < eng->intro_npool; i++)
        json_object_put(eng->intro_pool[i]);
    eng->intro_npool = 0;
}

json_object *sh__gql_intro_type(struct sh__gql_exec *ex, const char *name)
{
    json_object *root = sh__gql_intro(ex), *map, *v;

    if (name == NULL || root == NULL ||
        !json_object_object_get_ex(root, "types", &map) ||
        !json_object_object_get_ex(map, name, &v))
        return NULL;
    return v;
}

/* Members with includeDeprecated: the list, without the deprecated ones
 * unless asked (and unless the member is null: not this kind). */
static sh_err_t filtered(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, const char *member,
                         json_object **out)
{
    json_object *v = NULL, *a;

    if (!json_object_object_get_ex(src, member, &v)) {
        json_object *full = sh__gql_intro_type(ex, sh__jstr(src, "name"));
        v = full != NULL ? json_object_object_get(full, member) : NULL;
    }
    if (v == NULL || !json_object_is_type(v, json_type_array))
        return SH_OK;
    if (sh__jbool(args, "includeDeprecated")) {
        *out = json_object_get(v);
        return SH_OK;
    }
    a = json_object_new_array();
    if (a == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!sh__jbool(e, "isDeprecated"))
            json_object_array_add(a, json_object_get(e));
    }
    *out = a;
    return SH_OK;
}

static sh_err_t r_fields(struct sh__gql_exec *ex, json_object *src,
                         json_object *args, json_object **out,
                         struct sh__gql_rerr *err)
{
    return filtered(ex, src, args, "fields", out);
}

static sh_err_t r_enum_values(struct sh__gql_exec *ex, json_object *src,
                              json_object *args, json_object **out,
                              struct sh__gql_rerr *err)
{
    return filtered(ex, src, args, "enumValues", out);
}

static sh_err_t r_input_fields(struct sh__gql_exec *ex, json_object *src,
                               json_object *args, json_object **out,
                               struct sh__gql_rerr *err)
{
    return filtered(ex, src, args, "inputFields", out);
}

static sh_err_t r_directives(struct sh__gql_exec *ex, json_object *src,
                             json_object *args, json_object **out,
                             struct sh__gql_rerr *err)
{
    return filtered(ex, src, args, "directives", out);
}

static sh_err_t r_args(struct sh__gql_exec *ex, json_object *src,
                       json_object *args, json_object **out,
                       struct sh__gql_rerr *err)
{
    return filtered(ex, src, args, "args", out);
}

sh__gql_resolver_fn sh__gql_intro_resolver_for(const char *type,
                                               const char *field)
{
    if (strcmp(type, "__Type") == 0) {
        if (strcmp(field, "fields") == 0)
            return r_fields;
        if (strcmp(field, "enumValues") == 0)
            return r_enum_values;
        if (strcmp(field, "inputFields") == 0)
            return r_input_fields;
    }
    if (strcmp(type, "__Schema") == 0 && strcmp(field, "directives") == 0)
        return r_directives;
    if ((strcmp(type, "__Field") == 0 || strcmp(type, "__Directive") == 0) &&
        strcmp(field, "args") == 0)
        return r_args;
    return NULL;
}
