/* libstreamhub/graphql/parser.c: recursive-descent parser (spec 2021).
 *
 * Executable documents in full, plus the type-system definitions the
 * schema needs (schema, scalar, type, interface, union, enum, input,
 * directive), so that one parser reads both the SDL and queries and the
 * ExecutableDefinitions rule can name what it rejects.  Functions and
 * messages mirror graphql-js v16's parser.ts.
 *
 * Errors: the first syntax error ends the parse.  It unwinds with longjmp
 * to sh__gql_parse(): every allocation is in the document's arena, freed
 * at once, so there is nothing to clean up on the way out.
 *
 * Recursion is bounded: selection sets, list and object values and list
 * types share one nesting counter (lim->max_nesting levels).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql_int.h"

struct parser {
    struct sh__gql_lexer lx;
    struct sh__gql_arena *arena;
    uint32_t depth, max_depth;
    jmp_buf fail;
    bool oom;
    char msg[200];
    struct sh__gql_loc err_loc;
};

static _Noreturn void oom(struct parser *p)
{
    p->oom = true;
    longjmp(p->fail, 1);
}

static _Noreturn void fail(struct parser *p, struct sh__gql_loc loc,
                           const char *msg)
{
    snprintf(p->msg, sizeof p->msg, "Syntax Error: %s", msg);
    p->err_loc = loc;
    longjmp(p->fail, 1);
}

static void *alloc(struct parser *p, size_t n)
{
    void *x = sh__gql_arena_alloc(p->arena, n);
    if (x == NULL)
        oom(p);
    return x;
}

static const struct sh__gql_token *tok(struct parser *p)
{
    return &p->lx.tok;
}

static void advance(struct parser *p)
{
    if (!sh__gql_lexer_advance(&p->lx)) {
        if (p->lx.oom)
            oom(p);
        fail(p, p->lx.err_loc, p->lx.msg);
    }
}

static const struct sh__gql_token *lookahead(struct parser *p)
{
    const struct sh__gql_token *t = sh__gql_lexer_lookahead(&p->lx);
    if (t == NULL) {
        if (p->lx.oom)
            oom(p);
        fail(p, p->lx.err_loc, p->lx.msg);
    }
    return t;
}

/* graphql-js getTokenDesc: kind plus the value for valued kinds. */
static void tok_desc(const struct sh__gql_token *t, char *buf, size_t len)
{
    const char *k = sh__gql_tok_kind_desc(t->kind);
    if (t->kind >= SH__GQL_TOK_NAME) {
        size_t n = t->len > 64 ? 64 : t->len;
        /* never cut inside a UTF-8 sequence */
        while (n > 0 && n < t->len &&
               ((unsigned char)t->value[n] & 0xC0) == 0x80)
            n--;
        char v[72];
        memcpy(v, t->value, n);
        v[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)v[i] < 0x20)
                v[i] = '?';
        snprintf(buf, len, "%s \"%s\"", k, v);
    } else {
        snprintf(buf, len, "%s", k);
    }
}

static _Noreturn void unexpected(struct parser *p,
                                 const struct sh__gql_token *t)
{
    char d[100], m[120];
    tok_desc(t, d, sizeof d);
    snprintf(m, sizeof m, "Unexpected %s.", d);
    fail(p, t->loc, m);
}

static bool peek(struct parser *p, enum sh__gql_tok k)
{
    return tok(p)->kind == k;
}

static bool tok_is(const struct sh__gql_token *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->kind == SH__GQL_TOK_NAME && t->len == n &&
           memcmp(t->value, kw, n) == 0;
}

static struct sh__gql_loc expect(struct parser *p, enum sh__gql_tok k)
{
    if (tok(p)->kind != k) {
        char d[100], m[160];
        tok_desc(tok(p), d, sizeof d);
        snprintf(m, sizeof m, "Expected %s, found %s.",
                 sh__gql_tok_kind_desc(k), d);
        fail(p, tok(p)->loc, m);
    }
    struct sh__gql_loc l = tok(p)->loc;
    advance(p);
    return l;
}

static bool expect_optional(struct parser *p, enum sh__gql_tok k)
{
    if (tok(p)->kind != k)
        return false;
    advance(p);
    return true;
}

static void expect_keyword(struct parser *p, const char *kw)
{
    if (!tok_is(tok(p), kw)) {
        char d[100], m[180];
        tok_desc(tok(p), d, sizeof d);
        snprintf(m, sizeof m, "Expected \"%s\", found %s.", kw, d);
        fail(p, tok(p)->loc, m);
    }
    advance(p);
}

static bool expect_optional_keyword(struct parser *p, const char *kw)
{
    if (!tok_is(tok(p), kw))
        return false;
    advance(p);
    return true;
}

static const char *parse_name(struct parser *p, struct sh__gql_loc *loc)
{
    if (!peek(p, SH__GQL_TOK_NAME))
        expect(p, SH__GQL_TOK_NAME);   /* fails with the message */
    char *s = sh__gql_arena_strndup(p->arena, tok(p)->value, tok(p)->len);
    if (s == NULL)
        oom(p);
    if (loc != NULL)
        *loc = tok(p)->loc;
    advance(p);
    return s;
}

static void enter(struct parser *p)
{
    if (++p->depth > p->max_depth) {
        char m[120];
        snprintf(m, sizeof m,
                 "Document exceeds the maximum nesting depth of %u.",
                 (unsigned)p->max_depth);
        fail(p, tok(p)->loc, m);
    }
}

static void leave(struct parser *p)
{
    p->depth--;
}

/* ---- values ---------------------------------------------------------- */

static struct sh__gql_value *parse_value(struct parser *p, bool is_const);

static struct sh__gql_value *parse_string_literal(struct parser *p)
{
    struct sh__gql_value *v = alloc(p, sizeof *v);
    v->kind = SH__GQL_V_STRING;
    v->loc = tok(p)->loc;
    v->block = tok(p)->kind == SH__GQL_TOK_BLOCK_STRING;
    v->str = tok(p)->value;   /* decoded into the arena by the lexer */
    v->len = tok(p)->len;
    advance(p);
    return v;
}

static struct sh__gql_value *parse_variable(struct parser *p)
{
    struct sh__gql_value *v = alloc(p, sizeof *v);
    v->kind = SH__GQL_V_VARIABLE;
    v->loc = expect(p, SH__GQL_TOK_DOLLAR);
    v->str = parse_name(p, NULL);
    v->len = strlen(v->str);
    return v;
}

static struct sh__gql_value *parse_value(struct parser *p, bool is_const)
{
    const struct sh__gql_token *t = tok(p);
    struct sh__gql_value *v;

    switch (t->kind) {
    case SH__GQL_TOK_BRACKET_L: {
        struct sh__gql_value **tail;
        enter(p);
        v = alloc(p, sizeof *v);
        v->kind = SH__GQL_V_LIST;
        v->loc = expect(p, SH__GQL_TOK_BRACKET_L);
        tail = &v->items;
        while (!expect_optional(p, SH__GQL_TOK_BRACKET_R)) {
            *tail = parse_value(p, is_const);
            tail = &(*tail)->next;
        }
        leave(p);
        return v;
    }
    case SH__GQL_TOK_BRACE_L: {
        struct sh__gql_object_field **tail;
        enter(p);
        v = alloc(p, sizeof *v);
        v->kind = SH__GQL_V_OBJECT;
        v->loc = expect(p, SH__GQL_TOK_BRACE_L);
        tail = &v->fields;
        while (!expect_optional(p, SH__GQL_TOK_BRACE_R)) {
            struct sh__gql_object_field *f = alloc(p, sizeof *f);
            f->name = parse_name(p, &f->loc);
            expect(p, SH__GQL_TOK_COLON);
            f->value = parse_value(p, is_const);
            *tail = f;
            tail = &f->next;
        }
        leave(p);
        return v;
    }
    case SH__GQL_TOK_INT:
    case SH__GQL_TOK_FLOAT:
        v = alloc(p, sizeof *v);
        v->kind = t->kind == SH__GQL_TOK_INT ? SH__GQL_V_INT : SH__GQL_V_FLOAT;
        v->loc = t->loc;
        v->str = sh__gql_arena_strndup(p->arena, t->value, t->len);
        if (v->str == NULL)
            oom(p);
        v->len = t->len;
        advance(p);
        return v;
    case SH__GQL_TOK_STRING:
    case SH__GQL_TOK_BLOCK_STRING:
        return parse_string_literal(p);
    case SH__GQL_TOK_NAME:
        v = alloc(p, sizeof *v);
        v->loc = t->loc;
        if (tok_is(t, "true") || tok_is(t, "false")) {
            v->kind = SH__GQL_V_BOOLEAN;
            v->boolean = tok_is(t, "true");
            advance(p);
        } else if (tok_is(t, "null")) {
            v->kind = SH__GQL_V_NULL;
            advance(p);
        } else {
            v->kind = SH__GQL_V_ENUM;
            v->str = parse_name(p, NULL);
            v->len = strlen(v->str);
        }
        return v;
    case SH__GQL_TOK_DOLLAR:
        if (is_const) {
            struct sh__gql_token dollar = *t;   /* t moves on advance */
            const struct sh__gql_token *n;
            advance(p);
            n = tok(p);
            if (n->kind == SH__GQL_TOK_NAME) {
                char m[120];
                snprintf(m, sizeof m,
                         "Unexpected variable \"$%.*s\" in constant value.",
                         n->len > 64 ? 64 : (int)n->len, n->value);
                fail(p, dollar.loc, m);
            }
            unexpected(p, &dollar);
        }
        return parse_variable(p);
    default:
        unexpected(p, t);
    }
}

/* ---- directives, arguments, types ------------------------------------ */

static struct sh__gql_argument *parse_arguments(struct parser *p,
                                                bool is_const)
{
    struct sh__gql_argument *head = NULL, **tail = &head;

    if (!expect_optional(p, SH__GQL_TOK_PAREN_L))
        return NULL;
    do {
        struct sh__gql_argument *a = alloc(p, sizeof *a);
        a->name = parse_name(p, &a->loc);
        expect(p, SH__GQL_TOK_COLON);
        a->value = parse_value(p, is_const);
        *tail = a;
        tail = &a->next;
    } while (!expect_optional(p, SH__GQL_TOK_PAREN_R));
    return head;
}

static struct sh__gql_directive *parse_directives(struct parser *p,
                                                  bool is_const)
{
    struct sh__gql_directive *head = NULL, **tail = &head;

    while (peek(p, SH__GQL_TOK_AT)) {
        struct sh__gql_directive *d = alloc(p, sizeof *d);
        d->loc = expect(p, SH__GQL_TOK_AT);
        d->name = parse_name(p, NULL);
        d->args = parse_arguments(p, is_const);
        *tail = d;
        tail = &d->next;
    }
    return head;
}

static struct sh__gql_typeref *parse_named_type(struct parser *p)
{
    struct sh__gql_typeref *t = alloc(p, sizeof *t);
    t->kind = SH__GQL_T_NAMED;
    t->name = parse_name(p, &t->loc);
    return t;
}

static struct sh__gql_typeref *parse_type(struct parser *p)
{
    struct sh__gql_typeref *t;
    struct sh__gql_loc start = tok(p)->loc;

    if (expect_optional(p, SH__GQL_TOK_BRACKET_L)) {
        enter(p);
        t = alloc(p, sizeof *t);
        t->kind = SH__GQL_T_LIST;
        t->loc = start;
        t->of = parse_type(p);
        expect(p, SH__GQL_TOK_BRACKET_R);
        leave(p);
    } else {
        t = parse_named_type(p);
    }
    if (expect_optional(p, SH__GQL_TOK_BANG)) {
        struct sh__gql_typeref *nn = alloc(p, sizeof *nn);
        nn->kind = SH__GQL_T_NONNULL;
        nn->loc = start;
        nn->of = t;
        return nn;
    }
    return t;
}

/* ---- selections ------------------------------------------------------ */

static struct sh__gql_selection *parse_selection_set(struct parser *p);

static const char *parse_fragment_name(struct parser *p,
                                       struct sh__gql_loc *loc)
{
    if (tok_is(tok(p), "on"))
        unexpected(p, tok(p));
    return parse_name(p, loc);
}

static struct sh__gql_selection *parse_selection(struct parser *p)
{
    struct sh__gql_selection *s = alloc(p, sizeof *s);

    s->loc = tok(p)->loc;
    if (expect_optional(p, SH__GQL_TOK_SPREAD)) {
        bool has_cond = expect_optional_keyword(p, "on");
        if (!has_cond && peek(p, SH__GQL_TOK_NAME)) {
            s->kind = SH__GQL_S_SPREAD;
            s->name = parse_fragment_name(p, NULL);
            s->directives = parse_directives(p, false);
            return s;
        }
        s->kind = SH__GQL_S_INLINE;
        if (has_cond)
            s->type_cond = parse_name(p, &s->type_cond_loc);
        s->directives = parse_directives(p, false);
        s->selset = parse_selection_set(p);
        s->has_selset = true;
        return s;
    }
    s->kind = SH__GQL_S_FIELD;
    s->name = parse_name(p, NULL);
    if (expect_optional(p, SH__GQL_TOK_COLON)) {
        s->alias = s->name;
        s->name = parse_name(p, NULL);
    }
    s->args = parse_arguments(p, false);
    s->directives = parse_directives(p, false);
    if (peek(p, SH__GQL_TOK_BRACE_L)) {
        s->selset = parse_selection_set(p);
        s->has_selset = true;
    }
    return s;
}

static struct sh__gql_selection *parse_selection_set(struct parser *p)
{
    struct sh__gql_selection *head = NULL, **tail = &head;

    enter(p);
    expect(p, SH__GQL_TOK_BRACE_L);
    do {
        *tail = parse_selection(p);
        tail = &(*tail)->next;
    } while (!expect_optional(p, SH__GQL_TOK_BRACE_R));
    leave(p);
    return head;
}

/* ---- executable definitions ------------------------------------------ */

static void parse_operation(struct parser *p, struct sh__gql_definition *d)
{
    d->kind = SH__GQL_D_OPERATION;
    if (peek(p, SH__GQL_TOK_BRACE_L)) {
        d->op = SH__GQL_QUERY;
        d->selset = parse_selection_set(p);
        return;
    }
    if (tok_is(tok(p), "query"))
        d->op = SH__GQL_QUERY;
    else if (tok_is(tok(p), "mutation"))
        d->op = SH__GQL_MUTATION;
    else if (tok_is(tok(p), "subscription"))
        d->op = SH__GQL_SUBSCRIPTION;
    else
        unexpected(p, tok(p));
    advance(p);
    if (peek(p, SH__GQL_TOK_NAME))
        d->name = parse_name(p, &d->name_loc);
    if (expect_optional(p, SH__GQL_TOK_PAREN_L)) {
        struct sh__gql_input_def **tail = &d->vars;
        do {
            struct sh__gql_input_def *v = alloc(p, sizeof *v);
            v->loc = expect(p, SH__GQL_TOK_DOLLAR);
            v->name = parse_name(p, NULL);
            expect(p, SH__GQL_TOK_COLON);
            v->type = parse_type(p);
            if (expect_optional(p, SH__GQL_TOK_EQUALS))
                v->defval = parse_value(p, true);
            v->directives = parse_directives(p, true);
            *tail = v;
            tail = &v->next;
        } while (!expect_optional(p, SH__GQL_TOK_PAREN_R));
    }
    d->directives = parse_directives(p, false);
    d->selset = parse_selection_set(p);
}

static void parse_fragment(struct parser *p, struct sh__gql_definition *d)
{
    d->kind = SH__GQL_D_FRAGMENT;
    expect_keyword(p, "fragment");
    d->name = parse_fragment_name(p, &d->name_loc);
    expect_keyword(p, "on");
    d->type_cond = parse_name(p, &d->type_cond_loc);
    d->directives = parse_directives(p, false);
    d->selset = parse_selection_set(p);
}

/* ---- type-system definitions ----------------------------------------- */

static const char *parse_description(struct parser *p)
{
    if (!peek(p, SH__GQL_TOK_STRING) && !peek(p, SH__GQL_TOK_BLOCK_STRING))
        return NULL;
    return parse_string_literal(p)->str;
}

static struct sh__gql_input_def *parse_input_value_def(struct parser *p)
{
    struct sh__gql_input_def *v = alloc(p, sizeof *v);
    v->description = parse_description(p);
    v->name = parse_name(p, &v->loc);
    expect(p, SH__GQL_TOK_COLON);
    v->type = parse_type(p);
    if (expect_optional(p, SH__GQL_TOK_EQUALS))
        v->defval = parse_value(p, true);
    v->directives = parse_directives(p, true);
    return v;
}

static struct sh__gql_input_def *parse_input_value_defs(
    struct parser *p, enum sh__gql_tok open, enum sh__gql_tok close)
{
    struct sh__gql_input_def *head = NULL, **tail = &head;
    if (!expect_optional(p, open))
        return NULL;
    do {
        *tail = parse_input_value_def(p);
        tail = &(*tail)->next;
    } while (!expect_optional(p, close));
    return head;
}

static struct sh__gql_name_list *name_item(struct parser *p)
{
    struct sh__gql_name_list *n = alloc(p, sizeof *n);
    n->name = parse_name(p, &n->loc);
    return n;
}

/* delimitedMany: an optional leading delimiter, then items. */
static struct sh__gql_name_list *parse_delimited(struct parser *p,
                                                 enum sh__gql_tok delim)
{
    struct sh__gql_name_list *head = NULL, **tail = &head;
    expect_optional(p, delim);
    do {
        *tail = name_item(p);
        tail = &(*tail)->next;
    } while (expect_optional(p, delim));
    return head;
}

static const char *const dirloc_names[SH__GQL_L_COUNT] = {
    "QUERY", "MUTATION", "SUBSCRIPTION", "FIELD", "FRAGMENT_DEFINITION",
    "FRAGMENT_SPREAD", "INLINE_FRAGMENT", "VARIABLE_DEFINITION", "SCHEMA",
    "SCALAR", "OBJECT", "FIELD_DEFINITION", "ARGUMENT_DEFINITION",
    "INTERFACE", "UNION", "ENUM", "ENUM_VALUE", "INPUT_OBJECT",
    "INPUT_FIELD_DEFINITION", "DIRECTIVE_DEFINITION"
};

const char *sh__gql_dirloc_name(enum sh__gql_dirloc loc)
{
    if ((unsigned)loc >= SH__GQL_L_COUNT)
        return NULL;
    return dirloc_names[loc];
}

static void parse_type_system(struct parser *p, struct sh__gql_definition *d)
{
    d->description = parse_description(p);
    const struct sh__gql_token *t = tok(p);

    if (tok_is(t, "schema")) {
        d->kind = SH__GQL_D_SCHEMA;
        d->name = "schema";
        d->name_loc = t->loc;
        advance(p);
        d->directives = parse_directives(p, true);
        struct sh__gql_field_def **tail = &d->fields;
        expect(p, SH__GQL_TOK_BRACE_L);
        do {
            /* operation type: name holds the operation, type the root */
            struct sh__gql_field_def *f = alloc(p, sizeof *f);
            if (!tok_is(tok(p), "query") && !tok_is(tok(p), "mutation") &&
                !tok_is(tok(p), "subscription"))
                unexpected(p, tok(p));
            f->name = parse_name(p, &f->loc);
            expect(p, SH__GQL_TOK_COLON);
            f->type = parse_named_type(p);
            *tail = f;
            tail = &f->next;
        } while (!expect_optional(p, SH__GQL_TOK_BRACE_R));
        return;
    }
    if (tok_is(t, "scalar")) {
        d->kind = SH__GQL_D_SCALAR;
        advance(p);
        d->name = parse_name(p, &d->name_loc);
        d->directives = parse_directives(p, true);
        return;
    }
    if (tok_is(t, "type") || tok_is(t, "interface")) {
        d->kind = tok_is(t, "type") ? SH__GQL_D_OBJECT : SH__GQL_D_INTERFACE;
        advance(p);
        d->name = parse_name(p, &d->name_loc);
        if (expect_optional_keyword(p, "implements"))
            d->names = parse_delimited(p, SH__GQL_TOK_AMP);
        d->directives = parse_directives(p, true);
        if (expect_optional(p, SH__GQL_TOK_BRACE_L)) {
            struct sh__gql_field_def **tail = &d->fields;
            do {
                struct sh__gql_field_def *f = alloc(p, sizeof *f);
                f->description = parse_description(p);
                f->name = parse_name(p, &f->loc);
                f->args = parse_input_value_defs(p, SH__GQL_TOK_PAREN_L,
                                                 SH__GQL_TOK_PAREN_R);
                expect(p, SH__GQL_TOK_COLON);
                f->type = parse_type(p);
                f->directives = parse_directives(p, true);
                *tail = f;
                tail = &f->next;
            } while (!expect_optional(p, SH__GQL_TOK_BRACE_R));
        }
        return;
    }
    if (tok_is(t, "union")) {
        d->kind = SH__GQL_D_UNION;
        advance(p);
        d->name = parse_name(p, &d->name_loc);
        d->directives = parse_directives(p, true);
        if (expect_optional(p, SH__GQL_TOK_EQUALS))
            d->names = parse_delimited(p, SH__GQL_TOK_PIPE);
        return;
    }
    if (tok_is(t, "enum")) {
        d->kind = SH__GQL_D_ENUM;
        advance(p);
        d->name = parse_name(p, &d->name_loc);
        d->directives = parse_directives(p, true);
        if (expect_optional(p, SH__GQL_TOK_BRACE_L)) {
            struct sh__gql_field_def **tail = &d->fields;
            do {
                struct sh__gql_field_def *f = alloc(p, sizeof *f);
                f->description = parse_description(p);
                if (tok_is(tok(p), "true") || tok_is(tok(p), "false") ||
                    tok_is(tok(p), "null")) {
                    char dd[100], m[180];
                    tok_desc(tok(p), dd, sizeof dd);
                    snprintf(m, sizeof m, "%s is reserved and cannot be used "
                             "for an enum value.", dd);
                    fail(p, tok(p)->loc, m);
                }
                f->name = parse_name(p, &f->loc);
                f->directives = parse_directives(p, true);
                *tail = f;
                tail = &f->next;
            } while (!expect_optional(p, SH__GQL_TOK_BRACE_R));
        }
        return;
    }
    if (tok_is(t, "input")) {
        d->kind = SH__GQL_D_INPUT;
        advance(p);
        d->name = parse_name(p, &d->name_loc);
        d->directives = parse_directives(p, true);
        d->args = parse_input_value_defs(p, SH__GQL_TOK_BRACE_L,
                                         SH__GQL_TOK_BRACE_R);
        return;
    }
    if (tok_is(t, "directive")) {
        d->kind = SH__GQL_D_DIRECTIVE;
        advance(p);
        expect(p, SH__GQL_TOK_AT);
        d->name = parse_name(p, &d->name_loc);
        d->args = parse_input_value_defs(p, SH__GQL_TOK_PAREN_L,
                                         SH__GQL_TOK_PAREN_R);
        d->repeatable = expect_optional_keyword(p, "repeatable");
        expect_keyword(p, "on");
        struct sh__gql_name_list **tail = &d->names;
        expect_optional(p, SH__GQL_TOK_PIPE);
        do {
            const struct sh__gql_token *lt = tok(p);
            bool ok = false;
            for (int i = 0; i < SH__GQL_L_COUNT && !ok; i++)
                ok = tok_is(lt, dirloc_names[i]);
            if (!ok)
                unexpected(p, lt);
            *tail = name_item(p);
            tail = &(*tail)->next;
        } while (expect_optional(p, SH__GQL_TOK_PIPE));
        return;
    }
    unexpected(p, t);
}

static struct sh__gql_definition *parse_definition(struct parser *p)
{
    struct sh__gql_definition *d = alloc(p, sizeof *d);
    const struct sh__gql_token *kw = tok(p);
    bool has_desc = peek(p, SH__GQL_TOK_STRING) ||
                    peek(p, SH__GQL_TOK_BLOCK_STRING);

    d->loc = tok(p)->loc;
    if (peek(p, SH__GQL_TOK_BRACE_L)) {
        parse_operation(p, d);
        return d;
    }
    if (has_desc)
        kw = lookahead(p);
    if (kw->kind == SH__GQL_TOK_NAME) {
        static const char *const ts[] = { "schema", "scalar", "type",
            "interface", "union", "enum", "input", "directive" };
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            if (tok_is(kw, ts[i])) {
                parse_type_system(p, d);
                return d;
            }
        }
        if (has_desc)
            fail(p, tok(p)->loc, "Unexpected description, descriptions are "
                 "supported only on type definitions.");
        if (tok_is(kw, "query") || tok_is(kw, "mutation") ||
            tok_is(kw, "subscription")) {
            parse_operation(p, d);
            return d;
        }
        if (tok_is(kw, "fragment")) {
            parse_fragment(p, d);
            return d;
        }
    }
    unexpected(p, kw);
}

/* ---- entry ----------------------------------------------------------- */

/* Document: Definition+.  Apart from parse_into() so that no local of
 * the setjmp frame changes between setjmp and longjmp. */
static void parse_document(struct parser *p, struct sh__gql_doc *doc)
{
    struct sh__gql_definition **tail = &doc->defs;

    advance(p);   /* <SOF> -> the first token */
    do {
        *tail = parse_definition(p);
        tail = &(*tail)->next;
        doc->ndefs++;
    } while (!peek(p, SH__GQL_TOK_EOF));
}

static sh_err_t parse_into(struct sh__gql_doc *doc, uint32_t max_nesting,
                           struct sh__gql_errors *errs)
{
    struct parser *p = calloc(1, sizeof *p);
    sh_err_t rc;

    if (p == NULL)
        return SH_ENOMEM;
    p->arena = doc->arena;
    p->max_depth = max_nesting;
    sh__gql_lexer_init(&p->lx, doc->text, doc->len, doc->arena);
    if (setjmp(p->fail) != 0) {
        if (p->oom) {
            rc = SH_ENOMEM;
        } else {
            sh__gql_error_add(errs, NULL, &p->err_loc, 1, "%s", p->msg);
            rc = errs->oom ? SH_ENOMEM : SH_EINVAL;
        }
        free(p);
        return rc;
    }
    parse_document(p, doc);
    free(p);
    return SH_OK;
}

sh_err_t sh__gql_parse(const char *text, size_t len,
                       const struct sh__gql_limits *lim,
                       struct sh__gql_doc **out,
                       struct sh__gql_errors *errs)
{
    struct sh__gql_doc *doc;
    sh_err_t rc;

    *out = NULL;
    if (text == NULL && len > 0)
        return SH_EINVAL;
    if (lim != NULL && lim->max_document_bytes > 0 &&
        len > lim->max_document_bytes) {
        sh__gql_error_add(errs, "QUERY_TOO_COMPLEX", NULL, 0,
                          "The document is %zu bytes, more than the maximum "
                          "of %zu.", len, lim->max_document_bytes);
        return errs->oom ? SH_ENOMEM : SH_ETOOBIG;
    }
    size_t bad = sh__gql_utf8_check(text, len);
    if (bad < len) {
        struct sh__gql_lexer lx;
        sh__gql_lexer_init(&lx, text, len, NULL);
        struct sh__gql_loc loc = sh__gql_lexer_locate(&lx, bad);
        sh__gql_error_add(errs, NULL, &loc, 1,
                          "Syntax Error: Invalid UTF-8 byte 0x%02X.",
                          (unsigned)(unsigned char)text[bad]);
        return errs->oom ? SH_ENOMEM : SH_EINVAL;
    }
    doc = calloc(1, sizeof *doc);
    if (doc == NULL || (doc->arena = sh__gql_arena_new()) == NULL) {
        free(doc);
        return SH_ENOMEM;
    }
    doc->text = text != NULL ? text : "";
    doc->len = len;
    rc = parse_into(doc, lim != NULL && lim->max_nesting > 0
                             ? lim->max_nesting : SH__GQL_MAX_NESTING, errs);
    if (rc != SH_OK) {
        sh__gql_doc_free(doc);
        return rc;
    }
    *out = doc;
    return SH_OK;
}

void sh__gql_doc_free(struct sh__gql_doc *doc)
{
    if (doc == NULL)
        return;
    sh__gql_arena_free(doc->arena);
    free(doc);
}

const struct sh__gql_definition *sh__gql_doc_fragment(
    const struct sh__gql_doc *doc, const char *name)
{
    for (const struct sh__gql_definition *d = doc->defs; d != NULL;
         d = d->next)
        if (d->kind == SH__GQL_D_FRAGMENT && strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

sh_err_t sh__gql_get_operation(const struct sh__gql_doc *doc,
                               const char *name,
                               const struct sh__gql_definition **out,
                               struct sh__gql_errors *errs)
{
    const struct sh__gql_definition *found = NULL;

    *out = NULL;
    for (const struct sh__gql_definition *d = doc->defs; d != NULL;
         d = d->next) {
        if (d->kind != SH__GQL_D_OPERATION)
            continue;
        if (name == NULL) {
            if (found != NULL) {
                sh__gql_error_add(errs, NULL, NULL, 0, "Must provide "
                                  "operation name if query contains "
                                  "multiple operations.");
                return errs->oom ? SH_ENOMEM : SH_EINVAL;
            }
            found = d;
        } else if (d->name != NULL && strcmp(d->name, name) == 0) {
            found = d;
            break;
        }
    }
    if (found == NULL) {
        if (name != NULL)
            sh__gql_error_add(errs, NULL, NULL, 0,
                              "Unknown operation named \"%s\".", name);
        else
            sh__gql_error_add(errs, NULL, NULL, 0,
                              "Must provide an operation.");
        return errs->oom ? SH_ENOMEM : SH_EINVAL;
    }
    *out = found;
    return SH_OK;
}
