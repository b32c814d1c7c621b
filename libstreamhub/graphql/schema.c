/* libstreamhub/graphql/schema.c: the schema model.
 *
 * The contract's SDL and prelude.graphql (both compiled in by
 * embed_schema.py) (built-in scalars and directives, introspection types, the
 * meta fields) are parsed with our own parser; their ASTs stay in the
 * schema's arena and the model points into them.  The prelude's texts are
 * graphql-js v16's, so that introspection reads like a graphql-js server.
 *
 * The model is immutable once built: threads may share it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

/* The meta fields live on a type that is never listed. */
#define META_TYPE "__Meta"

/* prelude.graphql, compiled in by embed_schema.py. */
extern const char sh__gql_prelude_sdl[];
extern const size_t sh__gql_prelude_sdl_len;

struct builder {
    struct sh__gql_schema *s;
    char *errbuf;
    size_t errbuf_len;
    bool failed;   /* an error was reported (in errbuf, or ENOMEM) */
    bool oom;
};

static void *balloc(struct builder *b, size_t n)
{
    void *p = sh__gql_arena_alloc(b->s->arena, n == 0 ? 1 : n);
    if (p == NULL)
        b->failed = b->oom = true;
    return p;
}

/* @deprecated(reason:) on an SDL element. */
static bool deprecation(const struct sh__gql_directive *d, const char **reason)
{
    for (; d != NULL; d = d->next) {
        if (strcmp(d->name, "deprecated") != 0)
            continue;
        *reason = "No longer supported";
        for (const struct sh__gql_argument *a = d->args; a; a = a->next)
            if (strcmp(a->name, "reason") == 0 &&
                a->value->kind == SH__GQL_V_STRING)
                *reason = a->value->str;
        return true;
    }
    *reason = NULL;
    return false;
}

static const struct sh__gql_arg_def *build_args(
    struct builder *b, const struct sh__gql_input_def *in, size_t *n)
{
    size_t count = 0;
    for (const struct sh__gql_input_def *i = in; i; i = i->next)
        count++;
    *n = count;
    struct sh__gql_arg_def *args = balloc(b, count * sizeof *args);
    if (args == NULL)
        return NULL;
    count = 0;
    for (const struct sh__gql_input_def *i = in; i; i = i->next, count++) {
        args[count].name = i->name;
        args[count].description = i->description;
        args[count].type = i->type;
        args[count].defval = i->defval;
        args[count].deprecated = deprecation(i->directives,
                                             &args[count].deprecation_reason);
    }
    return args;
}

static struct sh__gql_field *build_fields(struct builder *b,
                                          const struct sh__gql_field_def *in,
                                          size_t *n)
{
    size_t count = 0;
    for (const struct sh__gql_field_def *f = in; f; f = f->next)
        count++;
    *n = count;
    struct sh__gql_field *fields = balloc(b, count * sizeof *fields);
    if (fields == NULL)
        return NULL;
    count = 0;
    for (const struct sh__gql_field_def *f = in; f; f = f->next, count++) {
        fields[count].name = f->name;
        fields[count].description = f->description;
        fields[count].type = f->type;
        fields[count].args = build_args(b, f->args, &fields[count].nargs);
        fields[count].directives = f->directives;
        fields[count].deprecated =
            deprecation(f->directives, &fields[count].deprecation_reason);
    }
    return fields;
}

static bool add_type(struct builder *b, const struct sh__gql_definition *d,
                     bool builtin, size_t *ntypes)
{
    struct sh__gql_type *t = balloc(b, sizeof *t);
    if (t == NULL)
        return false;
    t->name = d->name;
    t->description = d->description;
    t->builtin = builtin;
    switch (d->kind) {
    case SH__GQL_D_SCALAR:
        t->kind = SH__GQL_K_SCALAR;
        for (const struct sh__gql_directive *x = d->directives; x; x = x->next)
            if (strcmp(x->name, "specifiedBy") == 0 && x->args != NULL &&
                x->args->value->kind == SH__GQL_V_STRING)
                t->specified_by = x->args->value->str;
        break;
    case SH__GQL_D_OBJECT:
        t->kind = SH__GQL_K_OBJECT;
        t->fields = build_fields(b, d->fields, &t->nfields);
        break;
    case SH__GQL_D_ENUM: {
        size_t n = 0;
        t->kind = SH__GQL_K_ENUM;
        for (const struct sh__gql_field_def *f = d->fields; f; f = f->next)
            n++;
        struct sh__gql_enum_value *v = balloc(b, n * sizeof *v);
        if (v == NULL)
            return false;
        n = 0;
        for (const struct sh__gql_field_def *f = d->fields; f;
             f = f->next, n++) {
            v[n].name = f->name;
            v[n].description = f->description;
            v[n].deprecated = deprecation(f->directives,
                                          &v[n].deprecation_reason);
        }
        t->values = v;
        t->nvalues = n;
        break;
    }
    default:
        sh__errbuf(b->errbuf, b->errbuf_len,
                   "schema: \"%s\": unsupported kind of definition", d->name);
        b->failed = true;
        return false;
    }
    if (b->failed)
        return false;
    if (builtin && strcmp(t->name, META_TYPE) == 0) {
        for (size_t i = 0; i < t->nfields; i++) {
            const struct sh__gql_field *f = &t->fields[i];
            if (strcmp(f->name, "__schema") == 0)
                b->s->meta_schema = f;
            else if (strcmp(f->name, "__type") == 0)
                b->s->meta_type = f;
            else if (strcmp(f->name, "__typename") == 0)
                b->s->meta_typename = f;
        }
        return true;
    }
    if (sh__gql_schema_type(b->s, t->name) != NULL) {
        sh__errbuf(b->errbuf, b->errbuf_len,
                   "schema: type \"%s\" is defined twice", t->name);
        b->failed = true;
        return false;
    }
    b->s->types[(*ntypes)++] = t;
    b->s->ntypes = *ntypes;
    return !b->failed;
}

static bool add_directive(struct builder *b,
                          const struct sh__gql_definition *d)
{
    struct sh__gql_directive_def *x = balloc(b, sizeof *x);
    if (x == NULL)
        return false;
    x->name = d->name;
    x->description = d->description;
    x->args = build_args(b, d->args, &x->nargs);
    x->repeatable = d->repeatable;
    for (const struct sh__gql_name_list *l = d->names; l; l = l->next)
        for (unsigned i = 0; i < SH__GQL_L_COUNT; i++)
            if (strcmp(l->name, sh__gql_dirloc_name(i)) == 0)
                x->locations |= 1u << i;
    if (sh__gql_schema_directive(b->s, x->name) != NULL) {
        sh__errbuf(b->errbuf, b->errbuf_len,
                   "schema: directive \"@%s\" is defined twice", x->name);
        b->failed = true;
        return false;
    }
    b->s->directives[b->s->ndirectives++] = x;
    return !b->failed;
}

/* Resolve a type reference; @input: arguments need input types. */
static bool resolve(struct builder *b, const struct sh__gql_typeref *t,
                    bool input, const char *where)
{
    while (t->kind != SH__GQL_T_NAMED)
        t = t->of;
    const struct sh__gql_type *named = sh__gql_schema_type(b->s, t->name);
    if (named == NULL) {
        sh__errbuf(b->errbuf, b->errbuf_len,
                   "schema: %s: unknown type \"%s\"", where, t->name);
        return false;
    }
    bool is_input = named->kind == SH__GQL_K_SCALAR ||
                    named->kind == SH__GQL_K_ENUM ||
                    named->kind == SH__GQL_K_INPUT_OBJECT;
    bool is_output = named->kind != SH__GQL_K_INPUT_OBJECT;
    if (input ? !is_input : !is_output) {
        sh__errbuf(b->errbuf, b->errbuf_len,
                   "schema: %s: \"%s\" is not an %s type", where, t->name,
                   input ? "input" : "output");
        return false;
    }
    ((struct sh__gql_typeref *)t)->type = named;   /* our own arena */
    return true;
}

static bool resolve_args(struct builder *b, const struct sh__gql_arg_def *a,
                         size_t n, const char *where)
{
    for (size_t i = 0; i < n; i++)
        if (!resolve(b, a[i].type, true, where))
            return false;
    return true;
}

static bool resolve_all(struct builder *b)
{
    const struct sh__gql_type *meta = NULL;
    struct sh__gql_schema *s = b->s;

    for (size_t i = 0; i < s->ntypes + 1; i++) {
        const struct sh__gql_type *t = i < s->ntypes ? s->types[i] : meta;
        if (i == s->ntypes) {
            if (s->meta_schema == NULL)
                break;
            /* the meta fields' own type is not listed: resolve them here */
            const struct sh__gql_field *m[3] = { s->meta_schema, s->meta_type,
                                                 s->meta_typename };
            for (int k = 0; k < 3; k++)
                if (m[k] == NULL || !resolve(b, m[k]->type, false, m[k]->name) ||
                    !resolve_args(b, m[k]->args, m[k]->nargs, m[k]->name))
                    return false;
            break;
        }
        for (size_t f = 0; f < t->nfields; f++) {
            char where[160];
            snprintf(where, sizeof where, "%s.%s", t->name,
                     t->fields[f].name);
            if (!resolve(b, t->fields[f].type, false, where) ||
                !resolve_args(b, t->fields[f].args, t->fields[f].nargs,
                              where))
                return false;
        }
    }
    for (size_t i = 0; i < s->ndirectives; i++)
        if (!resolve_args(b, s->directives[i]->args, s->directives[i]->nargs,
                          s->directives[i]->name))
            return false;
    return true;
}

sh_err_t sh__gql_schema_build(const char *sdl, size_t len,
                              struct sh__gql_schema **out,
                              char *errbuf, size_t errbuf_len)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_limits lim;
    struct builder b = { NULL, errbuf, errbuf_len, false, false };
    sh_err_t rc;
    size_t cap = 0, ncap = 0, ntypes = 0;

    *out = NULL;
    sh__gql_limits_default(&lim);
    lim.max_document_bytes = 0;           /* our own text: no size limit */
    b.s = calloc(1, sizeof *b.s);
    if (b.s == NULL || (b.s->arena = sh__gql_arena_new()) == NULL) {
        free(b.s);
        return SH_ENOMEM;
    }
    const char *texts[2] = { sdl, sh__gql_prelude_sdl };
    size_t lens[2] = { len, sh__gql_prelude_sdl_len };
    for (int i = 0; i < 2; i++) {
        rc = sh__gql_parse(texts[i], lens[i], &lim, &b.s->docs[i], &errs);
        if (rc != SH_OK) {
            if (errs.head != NULL)
                sh__errbuf(errbuf, errbuf_len, "schema%s: %s (line %u)",
                           i ? " prelude" : "", errs.head->message,
                           (unsigned)errs.head->locs[0].line);
            sh__gql_errors_clear(&errs);
            goto fail;
        }
        for (const struct sh__gql_definition *d = b.s->docs[i]->defs; d;
             d = d->next) {
            if (d->kind == SH__GQL_D_DIRECTIVE)
                ncap++;
            else
                cap++;
        }
    }
    rc = SH_ENOMEM;
    b.s->types = balloc(&b, cap * sizeof *b.s->types);
    b.s->directives = balloc(&b, ncap * sizeof *b.s->directives);
    if (b.failed)
        goto fail;
    rc = SH_EINVAL;
    for (int i = 0; i < 2; i++) {
        for (const struct sh__gql_definition *d = b.s->docs[i]->defs; d;
             d = d->next) {
            bool ok;
            if (d->kind == SH__GQL_D_DIRECTIVE)
                ok = add_directive(&b, d);
            else if (d->kind == SH__GQL_D_SCHEMA)
                ok = true;        /* roots are named by convention below */
            else
                ok = add_type(&b, d, i == 1, &ntypes);
            if (!ok) {
                rc = b.oom ? SH_ENOMEM : SH_EINVAL;
                goto fail;
            }
        }
    }
    if (!resolve_all(&b)) {
        rc = b.oom ? SH_ENOMEM : SH_EINVAL;
        goto fail;
    }
    b.s->query = sh__gql_schema_type(b.s, "Query");
    b.s->mutation = sh__gql_schema_type(b.s, "Mutation");
    b.s->subscription = sh__gql_schema_type(b.s, "Subscription");
    if (b.s->query == NULL || b.s->query->kind != SH__GQL_K_OBJECT ||
        b.s->meta_typename == NULL) {
        sh__errbuf(errbuf, errbuf_len, "schema: no Query type");
        goto fail;
    }
    *out = b.s;
    return SH_OK;
fail:
    sh__gql_schema_free(b.s);
    return rc;
}

sh_err_t sh__gql_schema_new(struct sh__gql_schema **out, char *errbuf,
                            size_t errbuf_len)
{
    return sh__gql_schema_build(sh__gql_schema_sdl, sh__gql_schema_sdl_len,
                                out, errbuf, errbuf_len);
}

void sh__gql_schema_free(struct sh__gql_schema *schema)
{
    if (schema == NULL)
        return;
    sh__gql_doc_free(schema->docs[0]);
    sh__gql_doc_free(schema->docs[1]);
    sh__gql_arena_free(schema->arena);
    free(schema);
}

/* ---- lookups --------------------------------------------------------- */

const struct sh__gql_type *sh__gql_schema_type(
    const struct sh__gql_schema *s, const char *name)
{
    for (size_t i = 0; i < s->ntypes; i++)
        if (s->types[i]->name[0] == name[0] &&
            strcmp(s->types[i]->name, name) == 0)
            return s->types[i];
    return NULL;
}

const struct sh__gql_field *sh__gql_type_field(
    const struct sh__gql_schema *s, const struct sh__gql_type *t,
    const char *name)
{
    if (name[0] == '_' && name[1] == '_') {
        if (strcmp(name, "__typename") == 0 &&
            sh__gql_kind_is_composite(t->kind))
            return s->meta_typename;
        if (t == s->query && strcmp(name, "__schema") == 0)
            return s->meta_schema;
        if (t == s->query && strcmp(name, "__type") == 0)
            return s->meta_type;
    }
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

const struct sh__gql_arg_def *sh__gql_field_arg(
    const struct sh__gql_field *f, const char *name)
{
    for (size_t i = 0; i < f->nargs; i++)
        if (strcmp(f->args[i].name, name) == 0)
            return &f->args[i];
    return NULL;
}

const struct sh__gql_directive_def *sh__gql_schema_directive(
    const struct sh__gql_schema *s, const char *name)
{
    for (size_t i = 0; i < s->ndirectives; i++)
        if (strcmp(s->directives[i]->name, name) == 0)
            return s->directives[i];
    return NULL;
}

const struct sh__gql_arg_def *sh__gql_directive_arg(
    const struct sh__gql_directive_def *d, const char *name)
{
    for (size_t i = 0; i < d->nargs; i++)
        if (strcmp(d->args[i].name, name) == 0)
            return &d->args[i];
    return NULL;
}

const struct sh__gql_enum_value *sh__gql_enum_value(
    const struct sh__gql_type *t, const char *name)
{
    for (size_t i = 0; i < t->nvalues; i++)
        if (strcmp(t->values[i].name, name) == 0)
            return &t->values[i];
    return NULL;
}

const struct sh__gql_type *sh__gql_typeref_named(
    const struct sh__gql_schema *s, const struct sh__gql_typeref *t)
{
    while (t->kind != SH__GQL_T_NAMED)
        t = t->of;
    return t->type != NULL ? t->type : sh__gql_schema_type(s, t->name);
}

const struct sh__gql_type *sh__gql_schema_root(
    const struct sh__gql_schema *s, enum sh__gql_op op)
{
    switch (op) {
    case SH__GQL_QUERY: return s->query;
    case SH__GQL_MUTATION: return s->mutation;
    case SH__GQL_SUBSCRIPTION: return s->subscription;
    }
    return NULL;
}
