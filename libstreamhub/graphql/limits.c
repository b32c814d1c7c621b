/* libstreamhub/graphql/limits.c: query complexity limits.
 *
 * Checked after validation, before execution, on the selected operation:
 *   depth   deepest field nesting (a root field is depth 1); a nested
 *           __Type.ofType adds no depth, so that standard introspection
 *           (whose TypeRef fragment nests ofType 7 or more deep) passes
 *           the default of 12, while fields { type { fields ... } } loops
 *           through introspection stay bounded;
 *   cost    each field costs 1; a field with a first/last argument costs
 *           1 + n * (its subtree), n being that argument's value (literal,
 *           else the variable's value, else the variable's default, else
 *           the argument's default);
 *   aliases aliased fields plus root fields, over the expanded operation.
 * Fragments are computed once each and memoised (the results do not depend
 * on where a fragment is spread), so nesting spreads cannot blow up the
 * walk; a fragment met again while being computed (a cycle, which
 * validation rejects anyway) counts zero.  Arithmetic saturates.
 */
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

#define MAX_DEPTH 4096
#define SAT INT64_MAX

struct memo {
    const struct sh__gql_definition *frag;
    int state;                 /* 0: not yet, 1: in progress, 2: done */
    int64_t depth, cost, aliases;
};

struct lctx {
    const struct sh__gql_schema *s;
    const struct sh__gql_doc *doc;
    const struct sh__gql_definition *op;
    const json_object *vars;
    struct memo *memo;
    size_t nmemo;
    bool too_deep;
};

struct totals {
    int64_t depth, cost, aliases;
};

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > SAT - b ? SAT : a + b;
}

static int64_t sat_mul(int64_t a, int64_t b)
{
    if (a == 0 || b == 0)
        return 0;
    return a > SAT / b ? SAT : a * b;
}

static int memo_cmp(const void *a, const void *b)
{
    const struct memo *x = a, *y = b;
    return strcmp(x->frag->name, y->frag->name);
}

/* Fragments are sorted by name (validation made names unique). */
static struct memo *memo_of(struct lctx *c, const char *name)
{
    size_t lo = 0, hi = c->nmemo;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->memo[mid].frag->name, name);
        if (r == 0)
            return &c->memo[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool int_literal(const struct sh__gql_value *v, int64_t *out)
{
    if (v == NULL || v->kind != SH__GQL_V_INT)
        return false;
    char *end;
    long long x = strtoll(v->str, &end, 10);
    *out = x;
    return *end == '\0';
}

/* The page size a first/last argument asks for; -1 when the field has
 * none. */
static int64_t multiplier(struct lctx *c, const struct sh__gql_field *def,
                          const struct sh__gql_selection *sel)
{
    static const char *const names[] = { "first", "last" };
    int64_t n = -1;

    for (int k = 0; k < 2 && n < 0; k++) {
        const struct sh__gql_arg_def *ad = sh__gql_field_arg(def, names[k]);
        if (ad == NULL)
            continue;
        const struct sh__gql_argument *a = sel->args;
        while (a != NULL && strcmp(a->name, names[k]) != 0)
            a = a->next;
        if (a != NULL && a->value->kind == SH__GQL_V_VARIABLE) {
            json_object *jv = NULL;
            /* given (null counts: then the argument's default applies) */
            bool given = c->vars != NULL &&
                json_object_object_get_ex(c->vars, a->value->str, &jv);
            if (given && json_object_is_type(jv, json_type_int)) {
                n = json_object_get_int64(jv);
            } else if (!given) {
                for (const struct sh__gql_input_def *v = c->op->vars; v;
                     v = v->next)
                    if (strcmp(v->name, a->value->str) == 0 &&
                        int_literal(v->defval, &n))
                        break;
            }
        } else if (a != NULL) {
            int_literal(a->value, &n);
        }
        if (n < 0 && !int_literal(ad->defval, &n))
            n = 1;
    }
    return n < 0 ? -1 : n;
}

static void measure(struct lctx *c, const struct sh__gql_type *parent,
                    const struct sh__gql_selection *sel, struct totals *t,
                    unsigned depth)
{
    memset(t, 0, sizeof *t);
    if (depth > MAX_DEPTH) {
        c->too_deep = true;
        return;
    }
    for (; sel != NULL; sel = sel->next) {
        struct totals sub = { 0 };
        if (sel->kind == SH__GQL_S_FIELD) {
            const struct sh__gql_field *def =
                parent ? sh__gql_type_field(c->s, parent, sel->name) : NULL;
            const struct sh__gql_type *nt =
                def ? sh__gql_typeref_named(c->s, def->type) : NULL;
            /* __Type.ofType: one object per level, free in depth */
            bool of_type = parent != NULL && parent->builtin &&
                           strcmp(parent->name, "__Type") == 0 &&
                           strcmp(sel->name, "ofType") == 0;
            if (sel->has_selset)
                measure(c, nt, sel->selset, &sub, depth + 1);
            int64_t m = def != NULL ? multiplier(c, def, sel) : -1;
            int64_t cost = m < 0 ? sub.cost : sat_mul(m, sub.cost);
            int64_t d = sat_add(of_type ? 0 : 1, sub.depth);
            if (d > t->depth)
                t->depth = d;
            t->cost = sat_add(t->cost, sat_add(1, cost));
            t->aliases = sat_add(t->aliases,
                                 sat_add(sel->alias != NULL, sub.aliases));
            continue;
        }
        if (sel->kind == SH__GQL_S_INLINE) {
            const struct sh__gql_type *it = parent;
            if (sel->type_cond != NULL)
                it = sh__gql_schema_type(c->s, sel->type_cond);
            measure(c, it, sel->selset, &sub, depth + 1);
        } else {
            struct memo *m = memo_of(c, sel->name);
            if (m == NULL || m->state == 1)
                continue;
            if (m->state == 0) {
                m->state = 1;
                measure(c, sh__gql_schema_type(c->s, m->frag->type_cond),
                        m->frag->selset, &sub, depth + 1);
                m->depth = sub.depth;
                m->cost = sub.cost;
                m->aliases = sub.aliases;
                m->state = 2;
            }
            sub.depth = m->depth;
            sub.cost = m->cost;
            sub.aliases = m->aliases;
        }
        if (sub.depth > t->depth)
            t->depth = sub.depth;
        t->cost = sat_add(t->cost, sub.cost);
        t->aliases = sat_add(t->aliases, sub.aliases);
    }
}

/* Root fields of the expanded selection set (each fragment once). */
static int64_t root_fields(struct lctx *c, const struct sh__gql_selection *sel,
                           bool *seen, unsigned depth)
{
    int64_t n = 0;
    if (depth > MAX_DEPTH)
        return 0;
    for (; sel != NULL; sel = sel->next) {
        if (sel->kind == SH__GQL_S_FIELD) {
            n = sat_add(n, 1);
        } else if (sel->kind == SH__GQL_S_INLINE) {
            n = sat_add(n, root_fields(c, sel->selset, seen, depth + 1));
        } else {
            struct memo *m = memo_of(c, sel->name);
            if (m == NULL || seen[m - c->memo])
                continue;
            seen[m - c->memo] = true;
            n = sat_add(n, root_fields(c, m->frag->selset, seen, depth + 1));
        }
    }
    return n;
}

sh_err_t sh__gql_check_limits(const struct sh__gql_schema *schema,
                              const struct sh__gql_doc *doc,
                              const struct sh__gql_definition *op,
                              const json_object *variables,
                              const struct sh__gql_limits *lim,
                              struct sh__gql_errors *errs)
{
    struct lctx c = { schema, doc, op, variables, NULL, 0, false };
    struct totals t;
    bool *seen;
    size_t nfr = 0;
    sh_err_t rc = SH_OK;

    for (const struct sh__gql_definition *d = doc->defs; d; d = d->next)
        if (d->kind == SH__GQL_D_FRAGMENT)
            nfr++;
    c.memo = calloc(nfr ? nfr : 1, sizeof *c.memo);
    seen = calloc(nfr ? nfr : 1, sizeof *seen);
    if (c.memo == NULL || seen == NULL) {
        free(c.memo);
        free(seen);
        return SH_ENOMEM;
    }
    for (const struct sh__gql_definition *d = doc->defs; d; d = d->next)
        if (d->kind == SH__GQL_D_FRAGMENT)
            c.memo[c.nmemo++].frag = d;
    qsort(c.memo, c.nmemo, sizeof *c.memo, memo_cmp);

    measure(&c, sh__gql_schema_root(schema, op->op), op->selset, &t, 0);
    int64_t aliases = sat_add(t.aliases, root_fields(&c, op->selset, seen, 0));

    if (c.too_deep || t.depth > lim->max_depth) {
        sh__gql_error_add(errs, "QUERY_TOO_COMPLEX", &op->loc, 1,
                          "The operation has depth %lld, more than the "
                          "maximum of %lld.", (long long)t.depth,
                          (long long)lim->max_depth);
        rc = SH_ETOOBIG;
    }
    if (t.cost > lim->max_cost) {
        sh__gql_error_add(errs, "QUERY_TOO_COMPLEX", &op->loc, 1,
                          "The operation costs %lld, more than the maximum "
                          "of %lld.", (long long)t.cost,
                          (long long)lim->max_cost);
        rc = SH_ETOOBIG;
    }
    if (aliases > lim->max_aliases) {
        sh__gql_error_add(errs, "QUERY_TOO_COMPLEX", &op->loc, 1,
                          "The operation has %lld aliases and root fields, "
                          "more than the maximum of %lld.",
                          (long long)aliases, (long long)lim->max_aliases);
        rc = SH_ETOOBIG;
    }
    free(c.memo);
    free(seen);
    return errs->oom ? SH_ENOMEM : rc;
}
