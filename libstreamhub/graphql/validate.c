/* libstreamhub/graphql/validate.c: validation (spec 2021, section 5).
 *
 * The rules that matter for a fixed schema, with graphql-js v16's messages
 * (without its "Did you mean" suggestions).  Instead of graphql-js's one
 * parallel visitor, a few passes:
 *   1. document rules: executable definitions, unique operation and
 *      fragment names, lone anonymous operation, fragment cycles, unused
 *      fragments;
 *   2. one typed walk per definition (each fragment once, as a definition):
 *      fields, arguments, values, directives, leaf selections, fragment
 *      conditions and spreads, overlapping fields;
 *   3. per operation: variables (unique, input types, defined, used,
 *      allowed positions) over the operation and every fragment it
 *      reaches, and single-field subscriptions.
 *
 * Hostile input: every walk that follows fragment spreads keeps a visited
 * set (a generation stamp per fragment); recursion is bounded (MAX_DEPTH);
 * field collection for the overlap rule has a work budget; errors stop at
 * SH__GQL_MAX_ERRORS like graphql-js's maxErrors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

#define MAX_DEPTH 4096            /* recursion bound for every walk */
#define WORK_MAX 200000           /* fields collected by the overlap rule */

struct vctx {
    const struct sh__gql_schema *s;
    const struct sh__gql_doc *doc;
    struct sh__gql_errors *errs;
    const struct sh__gql_definition **frags;   /* sorted by name, stable */
    size_t nfrags;
    uint32_t *stamp;                           /* per fragment */
    uint32_t gen;
    size_t work;
    bool stop;                                 /* error limit, abort, OOM */
    bool oom;
};

static void report(struct vctx *c, const struct sh__gql_loc *locs, size_t n,
                   const char *fmt, ...) SH__PRINTF(4, 5);

static void report(struct vctx *c, const struct sh__gql_loc *locs, size_t n,
                   const char *fmt, ...)
{
    char *msg;
    va_list ap;
    int len;

    if (c->stop)
        return;
    if (c->errs->count >= SH__GQL_MAX_ERRORS - 1) {
        sh__gql_error_add(c->errs, NULL, NULL, 0, "Too many validation "
                          "errors, error limit reached. Validation aborted.");
        c->stop = true;
        c->oom = c->errs->oom;
        return;
    }
    /* Whole, never cut: a message may quote a long string literal, and a
     * cut could split a UTF-8 sequence. */
    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0 || (msg = malloc((size_t)len + 1)) == NULL) {
        c->stop = c->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)len + 1, fmt, ap);
    va_end(ap);
    sh__gql_error_add(c->errs, NULL, locs, n, "%s", msg);
    free(msg);
    if (c->errs->oom)
        c->stop = c->oom = true;
}

static void too_complex(struct vctx *c)
{
    if (c->stop)
        return;
    sh__gql_error_add(c->errs, "QUERY_TOO_COMPLEX", NULL, 0,
                      "Validation aborted: the document is too complex.");
    c->stop = true;
    c->oom = c->errs->oom;
}

static void *xcalloc(struct vctx *c, size_t n, size_t sz)
{
    void *p = calloc(n == 0 ? 1 : n, sz);
    if (p == NULL)
        c->stop = c->oom = true;
    return p;
}

/* ---- fragments ------------------------------------------------------- */

static int frag_cmp(const void *a, const void *b)
{
    const struct sh__gql_definition *x = *(const struct sh__gql_definition *const *)a;
    const struct sh__gql_definition *y = *(const struct sh__gql_definition *const *)b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    /* stable: document order (defs are allocated in order in the arena,
     * but compare locations to be independent of that) */
    if (x->loc.line != y->loc.line)
        return x->loc.line < y->loc.line ? -1 : 1;
    return x->loc.column < y->loc.column ? -1 : x->loc.column > y->loc.column;
}

/* Index of the first fragment named @name, or SIZE_MAX. */
static size_t frag_index(const struct vctx *c, const char *name)
{
    size_t lo = 0, hi = c->nfrags;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->frags[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nfrags && strcmp(c->frags[lo]->name, name) == 0)
        return lo;
    return SIZE_MAX;
}

static uint32_t new_gen(struct vctx *c)
{
    if (++c->gen == 0) {           /* wrapped: clear the stamps */
        memset(c->stamp, 0, c->nfrags * sizeof *c->stamp);
        c->gen = 1;
    }
    return c->gen;
}

/* ---- types ----------------------------------------------------------- */

static const struct sh__gql_type *named(const struct vctx *c,
                                        const struct sh__gql_typeref *t)
{
    return t == NULL ? NULL : sh__gql_typeref_named(c->s, t);
}

static void tstr(const struct sh__gql_typeref *t, char *buf, size_t len)
{
    sh__gql_typeref_print(t, buf, len);
}

static bool is_input(const struct sh__gql_type *t)
{
    return t->kind == SH__GQL_K_SCALAR || t->kind == SH__GQL_K_ENUM ||
           t->kind == SH__GQL_K_INPUT_OBJECT;
}

/* Could an object be of both types?  The schema has objects only, so two
 * composite types overlap when they are the same; abstract types are
 * treated as overlapping anything. */
static bool types_overlap(const struct sh__gql_type *a,
                          const struct sh__gql_type *b)
{
    if (a == b)
        return true;
    return a->kind != SH__GQL_K_OBJECT || b->kind != SH__GQL_K_OBJECT;
}

/* isTypeSubTypeOf over references. */
static bool subtype(const struct vctx *c, const struct sh__gql_typeref *sub,
                    const struct sh__gql_typeref *sup)
{
    for (int guard = 0; guard < SH__GQL_MAX_NESTING * 2 + 4; guard++) {
        if (sup->kind == SH__GQL_T_NONNULL) {
            if (sub->kind != SH__GQL_T_NONNULL)
                return false;
            sub = sub->of;
            sup = sup->of;
            continue;
        }
        if (sub->kind == SH__GQL_T_NONNULL) {
            sub = sub->of;
            continue;
        }
        if (sup->kind == SH__GQL_T_LIST) {
            if (sub->kind != SH__GQL_T_LIST)
                return false;
            sub = sub->of;
            sup = sup->of;
            continue;
        }
        if (sub->kind == SH__GQL_T_LIST)
            return false;
        const struct sh__gql_type *a = named(c, sub), *b = named(c, sup);
        return a != NULL && a == b;
    }
    return false;
}

/* ---- values ---------------------------------------------------------- */

static void check_unique_input_fields(struct vctx *c,
                                      const struct sh__gql_value *v,
                                      unsigned depth)
{
    if (depth > MAX_DEPTH || c->stop)
        return;
    if (v->kind == SH__GQL_V_LIST) {
        for (const struct sh__gql_value *i = v->items; i; i = i->next)
            check_unique_input_fields(c, i, depth + 1);
    } else if (v->kind == SH__GQL_V_OBJECT) {
        for (const struct sh__gql_object_field *f = v->fields; f;
             f = f->next) {
            for (const struct sh__gql_object_field *g = v->fields; g != f;
                 g = g->next) {
                if (strcmp(g->name, f->name) == 0) {
                    struct sh__gql_loc l[2] = { g->loc, f->loc };
                    report(c, l, 2, "There can be only one input field "
                           "named \"%s\".", f->name);
                    break;
                }
            }
            check_unique_input_fields(c, f->value, depth + 1);
        }
    }
}

static bool int32_literal(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    /* strtoll saturates: the raw text of a huge literal is out of range */
    return *end == '\0' && v >= INT32_MIN && v <= INT32_MAX &&
           strlen(s) < 20;
}

/* isValidValueNode: @v (not a variable, not null) at a position of type
 * @loc, whose named type is a leaf or not. */
static void check_leaf(struct vctx *c, const struct sh__gql_value *v,
                       const struct sh__gql_typeref *loc)
{
    const struct sh__gql_type *t = named(c, loc);
    char ts[256];
    char *p;

    if (t == NULL)
        return;
    p = sh__gql_value_print(v);
    if (p == NULL) {
        c->stop = c->oom = true;
        return;
    }
    if (!sh__gql_kind_is_leaf(t->kind)) {
        tstr(loc, ts, sizeof ts);
        report(c, &v->loc, 1, "Expected value of type \"%s\", found %s.", ts,
               p);
    } else if (t->kind == SH__GQL_K_ENUM) {
        if (v->kind != SH__GQL_V_ENUM)
            report(c, &v->loc, 1, "Enum \"%s\" cannot represent non-enum "
                   "value: %s.", t->name, p);
        else if (sh__gql_enum_value(t, v->str) == NULL)
            report(c, &v->loc, 1, "Value \"%s\" does not exist in \"%s\" "
                   "enum.", p, t->name);
    } else if (strcmp(t->name, "Int") == 0 && t->builtin) {
        if (v->kind != SH__GQL_V_INT)
            report(c, &v->loc, 1, "Int cannot represent non-integer value: "
                   "%s", p);
        else if (!int32_literal(v->str))
            report(c, &v->loc, 1, "Int cannot represent non 32-bit signed "
                   "integer value: %s", v->str);
    } else if (strcmp(t->name, "Float") == 0 && t->builtin) {
        if (v->kind != SH__GQL_V_INT && v->kind != SH__GQL_V_FLOAT)
            report(c, &v->loc, 1, "Float cannot represent non numeric "
                   "value: %s", p);
    } else if (strcmp(t->name, "String") == 0 && t->builtin) {
        if (v->kind != SH__GQL_V_STRING)
            report(c, &v->loc, 1, "String cannot represent a non string "
                   "value: %s", p);
    } else if (strcmp(t->name, "Boolean") == 0 && t->builtin) {
        if (v->kind != SH__GQL_V_BOOLEAN)
            report(c, &v->loc, 1, "Boolean cannot represent a non boolean "
                   "value: %s", p);
    } else if (strcmp(t->name, "ID") == 0 && t->builtin) {
        if (v->kind != SH__GQL_V_STRING && v->kind != SH__GQL_V_INT)
            report(c, &v->loc, 1, "ID cannot represent a non-string and "
                   "non-integer value: %s", p);
        else if (v->kind == SH__GQL_V_STRING &&
                 memchr(v->str, '\0', v->len) != NULL)
            report(c, &v->loc, 1, "ID cannot represent a value holding "
                   "U+0000: %s", p);
    }
    /* custom scalars (DateTime, JSON) accept any literal */
    free(p);
}

/* ValuesOfCorrectType for @v at a position of type @t (NULL: unknown). */
static void check_value(struct vctx *c, const struct sh__gql_value *v,
                        const struct sh__gql_typeref *t, unsigned depth)
{
    if (c->stop || t == NULL || depth > MAX_DEPTH)
        return;
    if (v->kind == SH__GQL_V_VARIABLE)
        return;
    if (v->kind == SH__GQL_V_NULL) {
        if (t->kind == SH__GQL_T_NONNULL) {
            char ts[256];
            tstr(t, ts, sizeof ts);
            report(c, &v->loc, 1, "Expected value of type \"%s\", found "
                   "null.", ts);
        }
        return;
    }
    const struct sh__gql_typeref *nt =
        t->kind == SH__GQL_T_NONNULL ? t->of : t;
    if (nt->kind == SH__GQL_T_LIST) {
        if (v->kind == SH__GQL_V_LIST) {
            for (const struct sh__gql_value *i = v->items; i; i = i->next)
                check_value(c, i, nt->of, depth + 1);
        } else {
            check_value(c, v, nt->of, depth + 1);   /* input coercion */
        }
        return;
    }
    check_leaf(c, v, t);
}

/* ---- arguments and directives ---------------------------------------- */

struct owner {
    const char *kind;        /* "field" or "directive" */
    const char *type_name;   /* field: its parent type */
    const char *name;
    struct sh__gql_loc loc;
};

static void check_args(struct vctx *c, const struct sh__gql_argument *args,
                       bool known, const struct sh__gql_arg_def *defs,
                       size_t ndefs, const struct owner *o)
{
    bool is_field = o->kind[0] == 'f';

    for (const struct sh__gql_argument *a = args; a && !c->stop;
         a = a->next) {
        const struct sh__gql_arg_def *d = NULL;
        check_unique_input_fields(c, a->value, 0);
        for (const struct sh__gql_argument *b = args; b != a; b = b->next) {
            if (strcmp(a->name, b->name) == 0) {
                struct sh__gql_loc l[2] = { b->loc, a->loc };
                report(c, l, 2, "There can be only one argument named "
                       "\"%s\".", a->name);
                break;
            }
        }
        for (size_t i = 0; i < ndefs && d == NULL; i++)
            if (strcmp(defs[i].name, a->name) == 0)
                d = &defs[i];
        if (known && d == NULL) {
            if (is_field)
                report(c, &a->loc, 1, "Unknown argument \"%s\" on field "
                       "\"%s.%s\".", a->name, o->type_name, o->name);
            else
                report(c, &a->loc, 1, "Unknown argument \"%s\" on directive "
                       "\"@%s\".", a->name, o->name);
        }
        if (d != NULL)
            check_value(c, a->value, d->type, 0);
    }
    for (size_t i = 0; i < ndefs && !c->stop; i++) {
        const struct sh__gql_arg_def *d = &defs[i];
        bool given = false;
        if (d->type->kind != SH__GQL_T_NONNULL || d->defval != NULL)
            continue;
        for (const struct sh__gql_argument *a = args; a && !given;
             a = a->next)
            given = strcmp(a->name, d->name) == 0;
        if (!given) {
            char ts[256];
            tstr(d->type, ts, sizeof ts);
            if (is_field)
                report(c, &o->loc, 1, "Field \"%s\" argument \"%s\" of type "
                       "\"%s\" is required, but it was not provided.",
                       o->name, d->name, ts);
            else
                report(c, &o->loc, 1, "Directive \"@%s\" argument \"%s\" of "
                       "type \"%s\" is required, but it was not provided.",
                       o->name, d->name, ts);
        }
    }
}

static void check_directives(struct vctx *c,
                             const struct sh__gql_directive *list,
                             enum sh__gql_dirloc where)
{
    for (const struct sh__gql_directive *d = list; d && !c->stop;
         d = d->next) {
        const struct sh__gql_directive_def *def =
            sh__gql_schema_directive(c->s, d->name);
        struct owner o = { "directive", NULL, d->name, d->loc };
        if (def == NULL) {
            report(c, &d->loc, 1, "Unknown directive \"@%s\".", d->name);
            check_args(c, d->args, false, NULL, 0, &o);
            continue;
        }
        if (!(def->locations & (1u << where)))
            report(c, &d->loc, 1, "Directive \"@%s\" may not be used on %s.",
                   d->name, sh__gql_dirloc_name(where));
        if (!def->repeatable) {
            for (const struct sh__gql_directive *e = list; e != d;
                 e = e->next) {
                if (strcmp(e->name, d->name) == 0) {
                    struct sh__gql_loc l[2] = { e->loc, d->loc };
                    report(c, l, 2, "The directive \"@%s\" can only be used "
                           "once at this location.", d->name);
                    break;
                }
            }
        }
        check_args(c, d->args, true, def->args, def->nargs, &o);
    }
}

/* ---- field collection (overlap, subscriptions) ----------------------- */

struct fent {
    const struct sh__gql_type *parent;   /* NULL: unknown */
    const struct sh__gql_selection *sel;
    const struct sh__gql_field *def;     /* NULL: unknown */
    const char *rname;
    size_t idx;
    /* 0: in the selection set itself (or an inline fragment of it);
     * i + 1: reached through the set's spread of fragment i.  Two fields
     * of the same fragment are compared when that fragment's own
     * selection set is checked, not at each spread (as graphql-js). */
    size_t tag;
};

struct fvec {
    struct fent *v;
    size_t n, cap;
};

static void fvec_push(struct vctx *c, struct fvec *f, struct fent e)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct fent *v = realloc(f->v, cap * sizeof *v);
        if (v == NULL) {
            c->stop = c->oom = true;
            return;
        }
        f->v = v;
        f->cap = cap;
    }
    e.idx = f->n;
    f->v[f->n++] = e;
}

static void collect_rec(struct vctx *c, const struct sh__gql_type *parent,
                        const struct sh__gql_selection *sel, struct fvec *f,
                        uint32_t gen, size_t tag, unsigned depth)
{
    if (depth > MAX_DEPTH) {
        too_complex(c);
        return;
    }
    for (; sel && !c->stop; sel = sel->next) {
        if (++c->work > WORK_MAX) {
            too_complex(c);
            return;
        }
        if (sel->kind == SH__GQL_S_FIELD) {
            struct fent e = { parent, sel,
                parent ? sh__gql_type_field(c->s, parent, sel->name) : NULL,
                sel->alias ? sel->alias : sel->name, 0, tag };
            fvec_push(c, f, e);
        } else if (sel->kind == SH__GQL_S_INLINE) {
            const struct sh__gql_type *t = parent;
            if (sel->type_cond != NULL)
                t = sh__gql_schema_type(c->s, sel->type_cond);
            collect_rec(c, t, sel->selset, f, gen, tag, depth + 1);
        } else {
            size_t i = frag_index(c, sel->name);
            if (i == SIZE_MAX || c->stamp[i] == gen)
                continue;
            c->stamp[i] = gen;
            const struct sh__gql_definition *fd = c->frags[i];
            collect_rec(c, sh__gql_schema_type(c->s, fd->type_cond),
                        fd->selset, f, gen, tag != 0 ? tag : i + 1,
                        depth + 1);
        }
    }
}

static void collect(struct vctx *c, const struct sh__gql_type *parent,
                    const struct sh__gql_selection *sel, struct fvec *f)
{
    collect_rec(c, parent, sel, f, new_gen(c), 0, 0);
}

static int fent_cmp(const void *a, const void *b)
{
    const struct fent *x = a, *y = b;
    int r = strcmp(x->rname, y->rname);
    if (r != 0)
        return r;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool values_equal(const struct sh__gql_value *a,
                         const struct sh__gql_value *b, unsigned depth)
{
    if (depth > MAX_DEPTH)
        return false;
    if (a->kind != b->kind || a->len != b->len)
        return false;
    switch (a->kind) {
    case SH__GQL_V_BOOLEAN:
        return a->boolean == b->boolean;
    case SH__GQL_V_NULL:
        return true;
    case SH__GQL_V_LIST: {
        const struct sh__gql_value *x = a->items, *y = b->items;
        for (; x && y; x = x->next, y = y->next)
            if (!values_equal(x, y, depth + 1))
                return false;
        return x == NULL && y == NULL;
    }
    case SH__GQL_V_OBJECT: {
        const struct sh__gql_object_field *x = a->fields, *y = b->fields;
        for (; x && y; x = x->next, y = y->next)
            if (strcmp(x->name, y->name) != 0 ||
                !values_equal(x->value, y->value, depth + 1))
                return false;
        return x == NULL && y == NULL;
    }
    default:
        return a->block == b->block && memcmp(a->str, b->str, a->len) == 0;
    }
}

static bool same_args(const struct sh__gql_argument *a,
                      const struct sh__gql_argument *b)
{
    size_t na = 0, nb = 0;
    for (const struct sh__gql_argument *x = a; x; x = x->next)
        na++;
    for (const struct sh__gql_argument *x = b; x; x = x->next)
        nb++;
    if (na != nb)
        return false;
    for (const struct sh__gql_argument *x = a; x; x = x->next) {
        const struct sh__gql_argument *y = b;
        while (y && strcmp(x->name, y->name) != 0)
            y = y->next;
        if (y == NULL || !values_equal(x->value, y->value, 0))
            return false;
    }
    return true;
}

static bool types_conflict(const struct vctx *c,
                           const struct sh__gql_typeref *a,
                           const struct sh__gql_typeref *b)
{
    for (;;) {
        if (a->kind == SH__GQL_T_LIST || b->kind == SH__GQL_T_LIST) {
            if (a->kind != b->kind)
                return true;
        } else if (a->kind == SH__GQL_T_NONNULL ||
                   b->kind == SH__GQL_T_NONNULL) {
            if (a->kind != b->kind)
                return true;
        } else {
            const struct sh__gql_type *x = named(c, a), *y = named(c, b);
            if (x == NULL || y == NULL)
                return false;
            if (sh__gql_kind_is_leaf(x->kind) || sh__gql_kind_is_leaf(y->kind))
                return x != y;
            return false;
        }
        a = a->of;
        b = b->of;
    }
}

/* A reason why fields @a and @b (same response name) cannot merge, into
 * @why; false when they can. */
static bool fields_conflict(struct vctx *c, const struct fent *a,
                            const struct fent *b, bool excl, char *why,
                            size_t len, unsigned depth)
{
    if (depth > MAX_DEPTH || c->stop)
        return false;
    excl = excl || (a->parent != NULL && b->parent != NULL &&
                    a->parent != b->parent &&
                    a->parent->kind == SH__GQL_K_OBJECT &&
                    b->parent->kind == SH__GQL_K_OBJECT);
    if (!excl) {
        if (strcmp(a->sel->name, b->sel->name) != 0) {
            snprintf(why, len, "\"%s\" and \"%s\" are different fields",
                     a->sel->name, b->sel->name);
            return true;
        }
        if (!same_args(a->sel->args, b->sel->args)) {
            snprintf(why, len, "they have differing arguments");
            return true;
        }
    }
    if (a->def != NULL && b->def != NULL &&
        types_conflict(c, a->def->type, b->def->type)) {
        char t1[128], t2[128];
        tstr(a->def->type, t1, sizeof t1);
        tstr(b->def->type, t2, sizeof t2);
        snprintf(why, len, "they return conflicting types \"%s\" and \"%s\"",
                 t1, t2);
        return true;
    }
    if (!a->sel->has_selset || !b->sel->has_selset)
        return false;
    /* Sub-selections: each field of b's against the same-named of a's. */
    struct fvec fa = { 0 }, fb = { 0 };
    bool found = false;
    collect(c, a->def ? named(c, a->def->type) : NULL, a->sel->selset, &fa);
    collect(c, b->def ? named(c, b->def->type) : NULL, b->sel->selset, &fb);
    for (size_t j = 0; j < fb.n && !found && !c->stop; j++) {
        for (size_t i = 0; i < fa.n && !found; i++) {
            char sub[256];
            if (strcmp(fa.v[i].rname, fb.v[j].rname) != 0)
                continue;
            if (fields_conflict(c, &fa.v[i], &fb.v[j], excl, sub, sizeof sub,
                                depth + 1)) {
                snprintf(why, len, "subfields \"%s\" conflict because %s",
                         fb.v[j].rname, sub);
                found = true;
            }
            break;   /* compare with the first of that name only */
        }
    }
    free(fa.v);
    free(fb.v);
    return found;
}

/* OverlappingFieldsCanBeMerged within one selection set. */
static void check_overlap(struct vctx *c, const struct sh__gql_type *parent,
                          const struct sh__gql_selection *sel)
{
    struct fvec f = { 0 };
    collect(c, parent, sel, &f);
    if (f.n > 1 && !c->stop) {
        qsort(f.v, f.n, sizeof *f.v, fent_cmp);
        for (size_t i = 0; i < f.n && !c->stop;) {
            size_t j = i + 1;
            while (j < f.n && strcmp(f.v[j].rname, f.v[i].rname) == 0)
                j++;
            /* Compare each field with one earlier field of the group that
             * does not share its fragment: the first direct one, else the
             * first of another fragment; linear in the group's size. */
            size_t first0 = SIZE_MAX, firstA = SIZE_MAX, firstB = SIZE_MAX;
            for (size_t k = i; k < j && !c->stop; k++) {
                size_t tk = f.v[k].tag, m = SIZE_MAX;
                if (tk == 0)
                    m = k > i ? i : SIZE_MAX;
                else if (first0 != SIZE_MAX)
                    m = first0;
                else if (firstA != SIZE_MAX && f.v[firstA].tag != tk)
                    m = firstA;
                else if (firstB != SIZE_MAX)
                    m = firstB;
                if (tk == 0 && first0 == SIZE_MAX)
                    first0 = k;
                else if (tk != 0 && firstA == SIZE_MAX)
                    firstA = k;
                else if (tk != 0 && firstB == SIZE_MAX &&
                         f.v[firstA].tag != tk)
                    firstB = k;
                if (m == SIZE_MAX)
                    continue;
                char why[300];
                if (fields_conflict(c, &f.v[m], &f.v[k], false, why,
                                    sizeof why, 0)) {
                    struct sh__gql_loc l[2] = { f.v[m].sel->loc,
                                                f.v[k].sel->loc };
                    report(c, l, 2, "Fields \"%s\" conflict because %s. Use "
                           "different aliases on the fields to fetch both "
                           "if this was intentional.", f.v[i].rname, why);
                }
            }
            i = j;
        }
    }
    free(f.v);
}

/* ---- the typed walk -------------------------------------------------- */

static void walk(struct vctx *c, const struct sh__gql_type *parent,
                 const struct sh__gql_selection *sel, unsigned depth);

static void walk_field(struct vctx *c, const struct sh__gql_type *parent,
                       const struct sh__gql_selection *s, unsigned depth)
{
    const struct sh__gql_field *def = NULL;
    const struct sh__gql_type *t = NULL;

    if (parent != NULL) {
        def = sh__gql_type_field(c->s, parent, s->name);
        if (def == NULL)
            report(c, &s->loc, 1, "Cannot query field \"%s\" on type "
                   "\"%s\".", s->name, parent->name);
    }
    struct owner o = { "field", parent ? parent->name : NULL, s->name,
                       s->loc };
    check_args(c, s->args, def != NULL, def ? def->args : NULL,
               def ? def->nargs : 0, &o);
    check_directives(c, s->directives, SH__GQL_L_FIELD);
    if (def != NULL) {
        char ts[256];
        t = named(c, def->type);
        if (t != NULL && sh__gql_kind_is_leaf(t->kind) && s->has_selset) {
            tstr(def->type, ts, sizeof ts);
            report(c, &s->loc, 1, "Field \"%s\" must not have a selection "
                   "since type \"%s\" has no subfields.", s->name, ts);
        } else if (t != NULL && sh__gql_kind_is_composite(t->kind) &&
                   !s->has_selset) {
            tstr(def->type, ts, sizeof ts);
            report(c, &s->loc, 1, "Field \"%s\" of type \"%s\" must have a "
                   "selection of subfields. Did you mean \"%s { ... }\"?",
                   s->name, ts, s->name);
        }
        if (t != NULL && !sh__gql_kind_is_composite(t->kind))
            t = NULL;
    }
    if (s->has_selset)
        walk(c, t, s->selset, depth + 1);
}

static void walk(struct vctx *c, const struct sh__gql_type *parent,
                 const struct sh__gql_selection *sel, unsigned depth)
{
    if (depth > MAX_DEPTH) {
        too_complex(c);
        return;
    }
    check_overlap(c, parent, sel);
    for (const struct sh__gql_selection *s = sel; s && !c->stop;
         s = s->next) {
        if (s->kind == SH__GQL_S_FIELD) {
            walk_field(c, parent, s, depth);
        } else if (s->kind == SH__GQL_S_INLINE) {
            const struct sh__gql_type *t = parent;
            if (s->type_cond != NULL) {
                t = sh__gql_schema_type(c->s, s->type_cond);
                if (t == NULL) {
                    report(c, &s->type_cond_loc, 1, "Unknown type \"%s\".",
                           s->type_cond);
                } else if (!sh__gql_kind_is_composite(t->kind)) {
                    report(c, &s->type_cond_loc, 1, "Fragment cannot "
                           "condition on non composite type \"%s\".",
                           t->name);
                    t = NULL;
                } else if (parent != NULL && !types_overlap(parent, t)) {
                    report(c, &s->loc, 1, "Fragment cannot be spread here as "
                           "objects of type \"%s\" can never be of type "
                           "\"%s\".", parent->name, t->name);
                }
            }
            check_directives(c, s->directives, SH__GQL_L_INLINE_FRAGMENT);
            walk(c, t, s->selset, depth + 1);
        } else {
            size_t i = frag_index(c, s->name);
            if (i == SIZE_MAX) {
                report(c, &s->loc, 1, "Unknown fragment \"%s\".", s->name);
            } else {
                const struct sh__gql_type *ft =
                    sh__gql_schema_type(c->s, c->frags[i]->type_cond);
                if (parent != NULL && ft != NULL &&
                    sh__gql_kind_is_composite(ft->kind) &&
                    !types_overlap(parent, ft))
                    report(c, &s->loc, 1, "Fragment \"%s\" cannot be spread "
                           "here as objects of type \"%s\" can never be of "
                           "type \"%s\".", s->name, parent->name, ft->name);
            }
            check_directives(c, s->directives, SH__GQL_L_FRAGMENT_SPREAD);
        }
    }
}

/* ---- variables ------------------------------------------------------- */

struct usage {
    const struct sh__gql_value *var;
    const struct sh__gql_typeref *type;   /* NULL: unknown position */
    bool loc_default;
};

struct uvec {
    struct usage *v;
    size_t n, cap;
};

static void uvec_push(struct vctx *c, struct uvec *u, struct usage e)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 16;
        struct usage *v = realloc(u->v, cap * sizeof *v);
        if (v == NULL) {
            c->stop = c->oom = true;
            return;
        }
        u->v = v;
        u->cap = cap;
    }
    u->v[u->n++] = e;
}

static void value_usages(struct vctx *c, const struct sh__gql_value *v,
                         const struct sh__gql_typeref *t, bool def,
                         struct uvec *u, unsigned depth)
{
    if (depth > MAX_DEPTH || c->stop)
        return;
    if (v->kind == SH__GQL_V_VARIABLE) {
        struct usage e = { v, t, def };
        uvec_push(c, u, e);
    } else if (v->kind == SH__GQL_V_LIST) {
        const struct sh__gql_typeref *it = NULL;
        if (t != NULL) {
            const struct sh__gql_typeref *nt =
                t->kind == SH__GQL_T_NONNULL ? t->of : t;
            if (nt->kind == SH__GQL_T_LIST)
                it = nt->of;
        }
        for (const struct sh__gql_value *i = v->items; i; i = i->next)
            value_usages(c, i, it, false, u, depth + 1);
    } else if (v->kind == SH__GQL_V_OBJECT) {
        for (const struct sh__gql_object_field *f = v->fields; f; f = f->next)
            value_usages(c, f->value, NULL, false, u, depth + 1);
    }
}

static void args_usages(struct vctx *c, const struct sh__gql_argument *args,
                        const struct sh__gql_arg_def *defs, size_t ndefs,
                        struct uvec *u)
{
    for (const struct sh__gql_argument *a = args; a; a = a->next) {
        const struct sh__gql_arg_def *d = NULL;
        for (size_t i = 0; i < ndefs && d == NULL; i++)
            if (strcmp(defs[i].name, a->name) == 0)
                d = &defs[i];
        value_usages(c, a->value, d ? d->type : NULL,
                     d != NULL && d->defval != NULL, u, 0);
    }
}

static void dir_usages(struct vctx *c, const struct sh__gql_directive *d,
                       struct uvec *u)
{
    for (; d; d = d->next) {
        const struct sh__gql_directive_def *def =
            sh__gql_schema_directive(c->s, d->name);
        args_usages(c, d->args, def ? def->args : NULL, def ? def->nargs : 0,
                    u);
    }
}

static void sel_usages(struct vctx *c, const struct sh__gql_type *parent,
                       const struct sh__gql_selection *sel, uint32_t gen,
                       struct uvec *u, unsigned depth)
{
    if (depth > MAX_DEPTH) {
        too_complex(c);
        return;
    }
    for (; sel && !c->stop; sel = sel->next) {
        dir_usages(c, sel->directives, u);
        if (sel->kind == SH__GQL_S_FIELD) {
            const struct sh__gql_field *def =
                parent ? sh__gql_type_field(c->s, parent, sel->name) : NULL;
            const struct sh__gql_type *t = def ? named(c, def->type) : NULL;
            args_usages(c, sel->args, def ? def->args : NULL,
                        def ? def->nargs : 0, u);
            if (sel->has_selset)
                sel_usages(c, t, sel->selset, gen, u, depth + 1);
        } else if (sel->kind == SH__GQL_S_INLINE) {
            const struct sh__gql_type *t = parent;
            if (sel->type_cond != NULL)
                t = sh__gql_schema_type(c->s, sel->type_cond);
            sel_usages(c, t, sel->selset, gen, u, depth + 1);
        } else {
            size_t i = frag_index(c, sel->name);
            if (i == SIZE_MAX || c->stamp[i] == gen)
                continue;
            c->stamp[i] = gen;
            const struct sh__gql_definition *fd = c->frags[i];
            dir_usages(c, fd->directives, u);
            sel_usages(c, sh__gql_schema_type(c->s, fd->type_cond),
                       fd->selset, gen, u, depth + 1);
        }
    }
}

static void check_variables(struct vctx *c,
                            const struct sh__gql_definition *op)
{
    size_t nvars = 0;
    for (const struct sh__gql_input_def *v = op->vars; v; v = v->next)
        nvars++;
    bool *used = xcalloc(c, nvars, sizeof *used);
    if (used == NULL)
        return;

    /* Definitions: unique, known input types, defaults, directives. */
    for (const struct sh__gql_input_def *v = op->vars; v && !c->stop;
         v = v->next) {
        for (const struct sh__gql_input_def *w = op->vars; w != v;
             w = w->next) {
            if (strcmp(v->name, w->name) == 0) {
                struct sh__gql_loc l[2] = { w->loc, v->loc };
                report(c, l, 2, "There can be only one variable named "
                       "\"$%s\".", v->name);
                break;
            }
        }
        const struct sh__gql_typeref *n = v->type;
        while (n->kind != SH__GQL_T_NAMED)
            n = n->of;
        const struct sh__gql_type *t = sh__gql_schema_type(c->s, n->name);
        if (t == NULL) {
            report(c, &n->loc, 1, "Unknown type \"%s\".", n->name);
        } else if (!is_input(t)) {
            char ts[256];
            tstr(v->type, ts, sizeof ts);
            report(c, &v->type->loc, 1, "Variable \"$%s\" cannot be "
                   "non-input type \"%s\".", v->name, ts);
        } else if (v->defval != NULL) {
            check_unique_input_fields(c, v->defval, 0);
            check_value(c, v->defval, v->type, 0);
        }
        check_directives(c, v->directives, SH__GQL_L_VARIABLE_DEFINITION);
    }

    /* Usages over the operation and the fragments it reaches. */
    struct uvec u = { 0 };
    uint32_t gen = new_gen(c);
    dir_usages(c, op->directives, &u);
    sel_usages(c, sh__gql_schema_root(c->s, op->op), op->selset, gen, &u, 0);
    for (size_t k = 0; k < u.n && !c->stop; k++) {
        const struct usage *e = &u.v[k];
        const struct sh__gql_input_def *v = op->vars;
        size_t idx = 0;
        while (v && strcmp(v->name, e->var->str) != 0) {
            v = v->next;
            idx++;
        }
        if (v == NULL) {
            struct sh__gql_loc l[2] = { e->var->loc, op->loc };
            if (op->name != NULL)
                report(c, l, 2, "Variable \"$%s\" is not defined by "
                       "operation \"%s\".", e->var->str, op->name);
            else
                report(c, l, 2, "Variable \"$%s\" is not defined.",
                       e->var->str);
            continue;
        }
        /* used by name: a duplicate definition is reported once, as a
         * duplicate, not also as unused */
        size_t w = 0;
        for (const struct sh__gql_input_def *x = op->vars; x; x = x->next, w++)
            if (strcmp(x->name, v->name) == 0)
                used[w] = true;
        (void)idx;
        if (e->type == NULL || named(c, v->type) == NULL)
            continue;
        /* allowedVariableUsage */
        const struct sh__gql_typeref *loc = e->type;
        if (loc->kind == SH__GQL_T_NONNULL &&
            v->type->kind != SH__GQL_T_NONNULL) {
            bool var_default = v->defval != NULL &&
                               v->defval->kind != SH__GQL_V_NULL;
            if (!var_default && !e->loc_default)
                goto bad;
            loc = loc->of;
        }
        if (subtype(c, v->type, loc))
            continue;
bad:    {
            char vs[256], ls[256];
            struct sh__gql_loc l[2] = { v->loc, e->var->loc };
            tstr(v->type, vs, sizeof vs);
            tstr(e->type, ls, sizeof ls);
            report(c, l, 2, "Variable \"$%s\" of type \"%s\" used in position "
                   "expecting type \"%s\".", v->name, vs, ls);
        }
    }
    size_t idx = 0;
    for (const struct sh__gql_input_def *v = op->vars; v && !c->stop;
         v = v->next, idx++) {
        if (used[idx])
            continue;
        if (op->name != NULL)
            report(c, &v->loc, 1, "Variable \"$%s\" is never used in "
                   "operation \"%s\".", v->name, op->name);
        else
            report(c, &v->loc, 1, "Variable \"$%s\" is never used.", v->name);
    }
    free(u.v);
    free(used);
}

static void check_subscription(struct vctx *c,
                               const struct sh__gql_definition *op)
{
    struct fvec f = { 0 };
    char who[200];

    collect(c, sh__gql_schema_root(c->s, op->op), op->selset, &f);
    if (op->name != NULL)
        snprintf(who, sizeof who, "Subscription \"%s\"", op->name);
    else
        snprintf(who, sizeof who, "Anonymous Subscription");
    struct sh__gql_loc extra[SH__GQL_MAX_LOCS];
    size_t nextra = 0;
    bool many = false;
    for (size_t i = 1; i < f.n; i++) {
        if (strcmp(f.v[i].rname, f.v[0].rname) != 0) {
            many = true;
            if (nextra < SH__GQL_MAX_LOCS)
                extra[nextra++] = f.v[i].sel->loc;
        }
    }
    if (many)
        report(c, extra, nextra, "%s must select only one top level field.",
               who);
    for (size_t i = 0; i < f.n; i++) {
        if (strncmp(f.v[i].sel->name, "__", 2) == 0) {
            report(c, &f.v[i].sel->loc, 1, "%s must not select an "
                   "introspection top level field.", who);
            break;
        }
    }
    free(f.v);
}

/* ---- document rules -------------------------------------------------- */

static void spreads_of(struct vctx *c, const struct sh__gql_selection *sel,
                       const struct sh__gql_selection ***out, size_t *n,
                       size_t *cap, unsigned depth)
{
    if (depth > MAX_DEPTH) {
        too_complex(c);
        return;
    }
    for (; sel && !c->stop; sel = sel->next) {
        if (sel->kind == SH__GQL_S_SPREAD) {
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 8;
                const struct sh__gql_selection **v =
                    realloc(*out, nc * sizeof *v);
                if (v == NULL) {
                    c->stop = c->oom = true;
                    return;
                }
                *out = v;
                *cap = nc;
            }
            (*out)[(*n)++] = sel;
        } else if (sel->has_selset) {
            spreads_of(c, sel->selset, out, n, cap, depth + 1);
        }
    }
}

struct cycles {
    bool *visited;                         /* per fragment */
    size_t *path_index;                    /* per fragment; SIZE_MAX: off */
    const struct sh__gql_selection **path; /* the spread path */
    size_t npath;
};

/* graphql-js NoFragmentCyclesRule.detectCycleRecursive. */
static void detect_cycles(struct vctx *c, struct cycles *cy, size_t fi,
                          unsigned depth)
{
    if (cy->visited[fi] || c->stop)
        return;
    if (depth > MAX_DEPTH) {
        too_complex(c);
        return;
    }
    cy->visited[fi] = true;
    const struct sh__gql_selection **sp = NULL;
    size_t nsp = 0, cap = 0;
    spreads_of(c, c->frags[fi]->selset, &sp, &nsp, &cap, 0);
    cy->path_index[fi] = cy->npath;
    for (size_t k = 0; k < nsp && !c->stop; k++) {
        size_t si = frag_index(c, sp[k]->name);
        cy->path[cy->npath++] = sp[k];
        if (si != SIZE_MAX) {
            if (cy->path_index[si] == SIZE_MAX) {
                detect_cycles(c, cy, si, depth + 1);
            } else {
                size_t from = cy->path_index[si];
                char via[300] = "";
                size_t vl = 0;
                struct sh__gql_loc locs[SH__GQL_MAX_LOCS];
                size_t nl = 0;
                for (size_t p = from; p < cy->npath; p++) {
                    if (nl < SH__GQL_MAX_LOCS)
                        locs[nl++] = cy->path[p]->loc;
                    if (p + 1 < cy->npath && vl < sizeof via - 1) {
                        int w = snprintf(via + vl, sizeof via - vl, "%s\"%s\"",
                                         vl ? ", " : " via ",
                                         cy->path[p]->name);
                        if (w > 0)
                            vl += (size_t)w;
                        if (vl >= sizeof via)
                            vl = sizeof via - 1;
                    }
                }
                report(c, locs, nl, "Cannot spread fragment \"%s\" within "
                       "itself%s.", sp[k]->name, via);
            }
        }
        cy->npath--;
    }
    cy->path_index[fi] = SIZE_MAX;
    free(sp);
}

static int def_name_cmp(const void *a, const void *b)
{
    const struct sh__gql_definition *x = *(const struct sh__gql_definition *const *)a;
    const struct sh__gql_definition *y = *(const struct sh__gql_definition *const *)b;
    return frag_cmp(&x, &y);
}

static void document_rules(struct vctx *c, size_t nops)
{
    const struct sh__gql_doc *doc = c->doc;

    for (const struct sh__gql_definition *d = doc->defs; d && !c->stop;
         d = d->next) {
        if (d->kind == SH__GQL_D_OPERATION || d->kind == SH__GQL_D_FRAGMENT)
            continue;
        if (d->kind == SH__GQL_D_SCHEMA)
            report(c, &d->loc, 1, "The schema definition is not executable.");
        else
            report(c, &d->loc, 1, "The \"%s\" definition is not executable.",
                   d->name);
    }

    /* Unique operation names: sort the named ones. */
    const struct sh__gql_definition **ops = xcalloc(c, nops, sizeof *ops);
    size_t nnamed = 0;
    if (ops == NULL)
        return;
    for (const struct sh__gql_definition *d = doc->defs; d; d = d->next) {
        if (d->kind != SH__GQL_D_OPERATION)
            continue;
        if (d->name != NULL)
            ops[nnamed++] = d;
        else if (nops > 1)
            report(c, &d->loc, 1, "This anonymous operation must be the only "
                   "defined operation.");
    }
    qsort(ops, nnamed, sizeof *ops, def_name_cmp);
    for (size_t i = 1; i < nnamed; i++) {
        size_t first = i - 1;
        while (i < nnamed && strcmp(ops[i]->name, ops[first]->name) == 0) {
            struct sh__gql_loc l[2] = { ops[first]->name_loc,
                                        ops[i]->name_loc };
            report(c, l, 2, "There can be only one operation named \"%s\".",
                   ops[i]->name);
            i++;
        }
    }
    free(ops);

    /* Unique fragment names (the array is sorted). */
    for (size_t i = 1; i < c->nfrags; i++) {
        size_t first = i - 1;
        while (i < c->nfrags &&
               strcmp(c->frags[i]->name, c->frags[first]->name) == 0) {
            struct sh__gql_loc l[2] = { c->frags[first]->name_loc,
                                        c->frags[i]->name_loc };
            report(c, l, 2, "There can be only one fragment named \"%s\".",
                   c->frags[i]->name);
            i++;
        }
    }

    /* Fragment cycles. */
    struct cycles cy = { 0 };
    cy.visited = xcalloc(c, c->nfrags, sizeof *cy.visited);
    cy.path_index = xcalloc(c, c->nfrags, sizeof *cy.path_index);
    /* the path holds at most one spread per fragment plus the last one */
    cy.path = xcalloc(c, c->nfrags + 1, sizeof *cy.path);
    if (!c->stop) {
        for (size_t i = 0; i < c->nfrags; i++)
            cy.path_index[i] = SIZE_MAX;
        /* document order, as graphql-js reports */
        for (const struct sh__gql_definition *d = doc->defs;
             d && !c->stop; d = d->next)
            if (d->kind == SH__GQL_D_FRAGMENT)
                detect_cycles(c, &cy, frag_index(c, d->name), 0);
    }
    free(cy.visited);
    free(cy.path_index);
    free(cy.path);

    /* Unused fragments: reachable from some operation (one visited set for
     * every operation: a fragment is used once reached from any). */
    uint32_t gen = new_gen(c);
    for (const struct sh__gql_definition *d = doc->defs; d && !c->stop;
         d = d->next) {
        if (d->kind != SH__GQL_D_OPERATION)
            continue;
        struct uvec ignored = { 0 };
        /* sel_usages marks the fragments it reaches with gen */
        sel_usages(c, NULL, d->selset, gen, &ignored, 0);
        free(ignored.v);
    }
    for (const struct sh__gql_definition *d = doc->defs; d && !c->stop;
         d = d->next) {
        if (d->kind != SH__GQL_D_FRAGMENT)
            continue;
        size_t i = frag_index(c, d->name);
        /* any fragment of that name reached counts, as in graphql-js */
        if (i != SIZE_MAX && c->stamp[i] != gen)
            report(c, &d->loc, 1, "Fragment \"%s\" is never used.", d->name);
    }
}

sh_err_t sh__gql_validate(const struct sh__gql_schema *schema,
                          const struct sh__gql_doc *doc,
                          struct sh__gql_errors *errs)
{
    struct vctx c = { 0 };
    size_t nops = 0, nfr = 0;
    size_t before = errs->count;

    c.s = schema;
    c.doc = doc;
    c.errs = errs;
    for (const struct sh__gql_definition *d = doc->defs; d; d = d->next) {
        if (d->kind == SH__GQL_D_OPERATION)
            nops++;
        else if (d->kind == SH__GQL_D_FRAGMENT)
            nfr++;
    }
    c.frags = xcalloc(&c, nfr, sizeof *c.frags);
    c.stamp = xcalloc(&c, nfr, sizeof *c.stamp);
    if (c.stop)
        goto out;
    for (const struct sh__gql_definition *d = doc->defs; d; d = d->next)
        if (d->kind == SH__GQL_D_FRAGMENT)
            c.frags[c.nfrags++] = d;
    qsort(c.frags, c.nfrags, sizeof *c.frags, frag_cmp);

    document_rules(&c, nops);

    for (const struct sh__gql_definition *d = doc->defs; d && !c.stop;
         d = d->next) {
        if (d->kind == SH__GQL_D_OPERATION) {
            static const enum sh__gql_dirloc where[] = {
                SH__GQL_L_QUERY, SH__GQL_L_MUTATION, SH__GQL_L_SUBSCRIPTION };
            const struct sh__gql_type *root = sh__gql_schema_root(schema,
                                                                   d->op);
            check_directives(&c, d->directives, where[d->op]);
            check_variables(&c, d);
            if (d->op == SH__GQL_SUBSCRIPTION)
                check_subscription(&c, d);
            walk(&c, root, d->selset, 0);
        } else if (d->kind == SH__GQL_D_FRAGMENT) {
            const struct sh__gql_type *t =
                sh__gql_schema_type(schema, d->type_cond);
            if (t == NULL) {
                report(&c, &d->type_cond_loc, 1, "Unknown type \"%s\".",
                       d->type_cond);
            } else if (!sh__gql_kind_is_composite(t->kind)) {
                report(&c, &d->type_cond_loc, 1, "Fragment \"%s\" cannot "
                       "condition on non composite type \"%s\".", d->name,
                       t->name);
                t = NULL;
            }
            check_directives(&c, d->directives,
                             SH__GQL_L_FRAGMENT_DEFINITION);
            walk(&c, t, d->selset, 0);
        }
    }
out:
    free(c.frags);
    free(c.stamp);
    if (c.oom || errs->oom)
        return SH_ENOMEM;
    return errs->count > before ? SH_EINVAL : SH_OK;
}
