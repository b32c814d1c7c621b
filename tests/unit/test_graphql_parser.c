/* tests/unit/test_graphql_parser.c: the executable grammar, syntax errors
 * with graphql-js messages and locations, nesting and size limits, the
 * error list's JSON and operation selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graphql/graphql_int.h"

static struct sh__gql_doc *parse_ok(const char *q)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_limits lim;
    struct sh__gql_doc *doc = NULL;
    sh__gql_limits_default(&lim);
    sh_err_t rc = sh__gql_parse(q, strlen(q), &lim, &doc, &errs);
    if (rc != SH_OK)
        fail_msg("%s: %s", q, errs.head ? errs.head->message : "?");
    assert_int_equal(errs.count, 0);
    assert_non_null(doc);
    return doc;
}

/* Parse @len bytes of @q, expect one syntax error @msg at line:col. */
static void parse_err(const char *q, size_t len, const char *msg,
                      uint32_t line, uint32_t col)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_limits lim;
    struct sh__gql_doc *doc = (void *)1;
    sh__gql_limits_default(&lim);
    assert_int_equal(sh__gql_parse(q, len, &lim, &doc, &errs), SH_EINVAL);
    assert_null(doc);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.head->message, msg);
    assert_int_equal(errs.head->nlocs, 1);
    assert_int_equal(errs.head->locs[0].line, line);
    assert_int_equal(errs.head->locs[0].column, col);
    sh__gql_errors_clear(&errs);
}

static void perr(const char *q, const char *msg, uint32_t line, uint32_t col)
{
    parse_err(q, strlen(q), msg, line, col);
}

static void test_kitchen_sink(void **state)
{
    (void)state;
    struct sh__gql_doc *doc = parse_ok(
        "query Q($id: ID! = \"x\" @d, $l: [[Int!]]! = [[1], [2, 3]],\n"
        "        $o: JSON = {a: {b: [true, null, ENUM, 1.5e3, \"\"\"b\"\"\"]}})"
        " @op {\n"
        "  alias: stream(id: $id) @include(if: true) { id ...F }\n"
        "  ... on Query @skip(if: false) { me { id } }\n"
        "  ... { me { username } }\n"
        "}\n"
        "mutation { follow(userId: \"1\") { id } }\n"
        "subscription S { notifications { id } }\n"
        "fragment F on Stream { title }\n"
        "{ me { id } }\n");
    const struct sh__gql_definition *d = doc->defs;
    assert_int_equal(doc->ndefs, 5);
    assert_int_equal(d->kind, SH__GQL_D_OPERATION);
    assert_int_equal(d->op, SH__GQL_QUERY);
    assert_string_equal(d->name, "Q");
    assert_non_null(d->directives);
    assert_string_equal(d->directives->name, "op");

    const struct sh__gql_input_def *v = d->vars;
    assert_string_equal(v->name, "id");
    assert_int_equal(v->type->kind, SH__GQL_T_NONNULL);
    assert_string_equal(v->type->of->name, "ID");
    assert_int_equal(v->defval->kind, SH__GQL_V_STRING);
    assert_string_equal(v->directives->name, "d");
    v = v->next;
    char ts[64];
    sh__gql_typeref_print(v->type, ts, sizeof ts);
    assert_string_equal(ts, "[[Int!]]!");
    assert_int_equal(v->defval->kind, SH__GQL_V_LIST);
    char *p = sh__gql_value_print(v->defval);
    assert_string_equal(p, "[[1], [2, 3]]");
    free(p);
    v = v->next;
    p = sh__gql_value_print(v->defval);
    assert_string_equal(p, "{a: {b: [true, null, ENUM, 1.5e3, \"\"\"b\"\"\"]}}");
    free(p);

    const struct sh__gql_selection *s = d->selset;
    assert_int_equal(s->kind, SH__GQL_S_FIELD);
    assert_string_equal(s->alias, "alias");
    assert_string_equal(s->name, "stream");
    assert_int_equal(s->args->value->kind, SH__GQL_V_VARIABLE);
    assert_string_equal(s->args->value->str, "id");
    assert_int_equal(s->loc.line, 3);
    assert_int_equal(s->loc.column, 3);
    assert_int_equal(s->selset->next->kind, SH__GQL_S_SPREAD);
    assert_string_equal(s->selset->next->name, "F");
    s = s->next;
    assert_int_equal(s->kind, SH__GQL_S_INLINE);
    assert_string_equal(s->type_cond, "Query");
    assert_string_equal(s->directives->name, "skip");
    s = s->next;
    assert_int_equal(s->kind, SH__GQL_S_INLINE);
    assert_null(s->type_cond);

    d = d->next;
    assert_int_equal(d->op, SH__GQL_MUTATION);
    assert_null(d->name);
    d = d->next;
    assert_int_equal(d->op, SH__GQL_SUBSCRIPTION);
    d = d->next;
    assert_int_equal(d->kind, SH__GQL_D_FRAGMENT);
    assert_string_equal(d->type_cond, "Stream");
    d = d->next;
    assert_int_equal(d->op, SH__GQL_QUERY);
    assert_null(d->name);
    sh__gql_doc_free(doc);
}

static void test_values_strings(void **state)
{
    (void)state;
    struct sh__gql_doc *doc = parse_ok(
        "{ f(a: \"x\\u0000y\", b: -0, c: \"\"\"\n    two\n      lines\n"
        "  \"\"\", d: [], e: {}) }");
    const struct sh__gql_argument *a = doc->defs->selset->args;
    assert_int_equal(a->value->len, 3);
    assert_memory_equal(a->value->str, "x\0y", 3);
    char *p = sh__gql_value_print(a->value);
    assert_string_equal(p, "\"x\\u0000y\"");
    free(p);
    a = a->next;
    assert_int_equal(a->value->kind, SH__GQL_V_INT);
    assert_string_equal(a->value->str, "-0");
    a = a->next;
    assert_true(a->value->block);
    assert_string_equal(a->value->str, "two\n  lines");
    a = a->next;
    assert_int_equal(a->value->kind, SH__GQL_V_LIST);
    assert_null(a->value->items);
    a = a->next;
    assert_int_equal(a->value->kind, SH__GQL_V_OBJECT);
    assert_null(a->value->fields);
    sh__gql_doc_free(doc);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    perr("", "Syntax Error: Unexpected <EOF>.", 1, 1);
    perr("   # nothing", "Syntax Error: Unexpected <EOF>.", 1, 13);
    perr("{", "Syntax Error: Expected Name, found <EOF>.", 1, 2);
    perr("{ }", "Syntax Error: Expected Name, found \"}\".", 1, 3);
    perr("query", "Syntax Error: Expected \"{\", found <EOF>.", 1, 6);
    perr("{ a(b: ) }", "Syntax Error: Unexpected \")\".", 1, 8);
    perr("{ a(b 1) }", "Syntax Error: Expected \":\", found Int \"1\".", 1, 7);
    perr("{ a(): b }", "Syntax Error: Expected Name, found \")\".", 1, 5);
    perr("{ ...on }", "Syntax Error: Expected Name, found \"}\".", 1, 9);
    perr("fragment on on T { a }", "Syntax Error: Unexpected Name \"on\".",
         1, 10);
    perr("fragment F T { a }",
         "Syntax Error: Expected \"on\", found Name \"T\".", 1, 12);
    perr("notAnOperation { a }",
         "Syntax Error: Unexpected Name \"notAnOperation\".", 1, 1);
    perr("query ($a: Int = $b) { a }",
         "Syntax Error: Unexpected variable \"$b\" in constant value.", 1,
         18);
    perr("query ($a: Int @d(x: $b)) { a }",
         "Syntax Error: Unexpected variable \"$b\" in constant value.", 1,
         22);
    perr("\"desc\" query { a }", "Syntax Error: Unexpected description, "
         "descriptions are supported only on type definitions.", 1, 1);
    perr("{ a(s: \"abc) }", "Syntax Error: Unterminated string.", 1, 15);
    perr("{ a }\n{ b", "Syntax Error: Expected Name, found <EOF>.", 2, 4);
    perr("query Q($a) { a }", "Syntax Error: Expected \":\", found \")\".", 1,
         11);
    perr("{ a(x: [1, 2) }", "Syntax Error: Unexpected \")\".", 1, 13);
    perr("{ f(x: 1.5.) }",
         "Syntax Error: Invalid number, expected digit but got: \".\".", 1,
         11);
    perr("{ a(x: \"\\uD800\") }",
         "Syntax Error: Invalid Unicode escape sequence: \"\\uD800\".", 1, 9);
    perr("query ($x: [Int) { a }", "Syntax Error: Expected \"]\", found "
         "\")\".", 1, 16);
    perr("{ a } extend type Q { b: Int }",
         "Syntax Error: Unexpected Name \"extend\".", 1, 7);
}

static void test_nul_and_bad_utf8(void **state)
{
    (void)state;
    /* a long token in a message is cut at a UTF-8 boundary */
    char q[200], want[200];
    size_t n = (size_t)snprintf(q, sizeof q, "query \"a");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(q + n, sizeof q - n, "\xC3\xA9");
    snprintf(q + n, sizeof q - n, "\" { a }");
    n = (size_t)snprintf(want, sizeof want, "Syntax Error: Expected \"{\", "
                         "found String \"a");
    for (int i = 0; i < 31; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "\xC3\xA9");
    snprintf(want + n, sizeof want - n, "\".");
    perr(q, want, 1, 7);
    parse_err("{ a }\0", 6, "Syntax Error: Unexpected character: U+0000.", 1,
              6);
    parse_err("{ a(s: \"\xC3\x28\") }", 14,
              "Syntax Error: Invalid UTF-8 byte 0xC3.", 1, 9);
    parse_err("{ a }\n\xFF", 7, "Syntax Error: Invalid UTF-8 byte 0xFF.", 2,
              1);
    parse_err("{ a(s: \"\xED\xA0\x80\") }", 15,
              "Syntax Error: Invalid UTF-8 byte 0xED.", 1, 9);
}

/* n levels of @open, then @mid, then n of @close. */
static char *nest(size_t n, const char *open, const char *mid,
                  const char *close, size_t *len)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = malloc(n * (lo + lc) + lm + 1);
    assert_non_null(s);
    char *w = s;
    for (size_t i = 0; i < n; i++, w += lo)
        memcpy(w, open, lo);
    memcpy(w, mid, lm);
    w += lm;
    for (size_t i = 0; i < n; i++, w += lc)
        memcpy(w, close, lc);
    *w = '\0';
    *len = (size_t)(w - s);
    return s;
}

static sh_err_t parse_big(const char *q, size_t len, struct sh__gql_errors *e)
{
    struct sh__gql_limits lim;
    struct sh__gql_doc *doc = NULL;
    sh__gql_limits_default(&lim);
    lim.max_document_bytes = 0;   /* no size limit: the nesting one acts */
    sh_err_t rc = sh__gql_parse(q, len, &lim, &doc, e);
    sh__gql_doc_free(doc);
    return rc;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t len;
    struct sh__gql_errors e = { 0 };

    /* 100,000 nested selection sets: a located error, no crash. */
    char *q = nest(100000, "{a", "", "}", &len);
    assert_int_equal(parse_big(q, len, &e), SH_EINVAL);
    assert_string_equal(e.head->message, "Syntax Error: Document exceeds the "
                        "maximum nesting depth of 512.");
    assert_int_equal(e.head->locs[0].line, 1);
    assert_int_equal(e.head->locs[0].column, 512 * 2 + 1);
    sh__gql_errors_clear(&e);
    free(q);

    /* 512 selection sets parse (511 around "{b}"), 513 do not */
    q = nest(511, "{a", "{b}", "}", &len);
    assert_int_equal(parse_big(q, len, &e), SH_OK);
    free(q);
    q = nest(512, "{a", "{b}", "}", &len);
    assert_int_equal(parse_big(q, len, &e), SH_EINVAL);
    sh__gql_errors_clear(&e);
    free(q);

    /* lists and objects in values, list types in variables */
    const char *vals[][3] = {
        { "{ f(x: ", "[", "]" }, { "{ f(x: ", "{a:", "}" },
        { "query ($x: ", "[", "]" } };
    for (size_t k = 0; k < 3; k++) {
        char *inner = nest(100000, vals[k][1], k == 2 ? "Int" : "1",
                           vals[k][2], &len);
        size_t total = strlen(vals[k][0]) + len + 16;
        q = malloc(total);
        assert_non_null(q);
        snprintf(q, total, "%s%s%s", vals[k][0], inner,
                 k == 2 ? ") { a }" : ") }");
        assert_int_equal(parse_big(q, strlen(q), &e), SH_EINVAL);
        assert_string_equal(e.head->message, "Syntax Error: Document "
                            "exceeds the maximum nesting depth of 512.");
        assert_int_equal(e.head->nlocs, 1);
        sh__gql_errors_clear(&e);
        free(q);
        free(inner);
    }
}

static void test_document_size_limit(void **state)
{
    (void)state;
    struct sh__gql_limits lim;
    struct sh__gql_errors e = { 0 };
    struct sh__gql_doc *doc = NULL;
    char q[200];

    sh__gql_limits_default(&lim);
    lim.max_document_bytes = 100;
    memset(q, ' ', sizeof q);
    memcpy(q, "{ a }", 5);
    /* max: parses */
    assert_int_equal(sh__gql_parse(q, 100, &lim, &doc, &e), SH_OK);
    sh__gql_doc_free(doc);
    /* max + 1: refused before lexing, whatever the bytes are */
    q[100] = '\xFF';
    assert_int_equal(sh__gql_parse(q, 101, &lim, &doc, &e), SH_ETOOBIG);
    assert_null(doc);
    assert_int_equal(e.count, 1);
    assert_string_equal(e.head->code, "QUERY_TOO_COMPLEX");
    assert_string_equal(e.head->message, "The document is 101 bytes, more "
                        "than the maximum of 100.");
    sh__gql_errors_clear(&e);
}

/* Every prefix of a valid document: parsed or a located syntax error. */
static void test_every_prefix(void **state)
{
    (void)state;
    const char src[] =
        "query Q($id: ID! = \"a\\u00e9\", $n: [Int] = [1, 2]) @x {\n"
        "  s: stream(id: $id) { id ...F ... on Stream @skip(if: true) {"
        " title } }\n"
        "}\nfragment F on Stream { chatSettings { blockedTerms } }\n";
    for (size_t n = 0; n < sizeof src; n++) {
        struct sh__gql_errors e = { 0 };
        struct sh__gql_limits lim;
        struct sh__gql_doc *doc = NULL;
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, src, n);
        sh__gql_limits_default(&lim);
        sh_err_t rc = sh__gql_parse(copy, n, &lim, &doc, &e);
        if (rc == SH_OK) {
            assert_non_null(doc);
        } else {
            assert_int_equal(rc, SH_EINVAL);
            assert_int_equal(e.count, 1);
            assert_true(e.head->locs[0].line >= 1);
            assert_true(strncmp(e.head->message, "Syntax Error: ", 14) == 0);
        }
        sh__gql_doc_free(doc);
        sh__gql_errors_clear(&e);
        free(copy);
    }
}

static void test_errors_json(void **state)
{
    (void)state;
    struct sh__gql_errors e = { 0 };
    struct sh__gql_loc l[2] = { { 1, 2 }, { 3, 4 } };
    sh__gql_error_add(&e, NULL, l, 2, "first %d", 1);
    sh__gql_error_add(&e, "QUERY_TOO_COMPLEX", NULL, 0, "second");
    json_object *j = sh__gql_errors_to_json(&e);
    assert_non_null(j);
    assert_string_equal(json_object_to_json_string_ext(j,
                            JSON_C_TO_STRING_PLAIN),
                        "[{\"message\":\"first 1\",\"locations\":[{\"line\":1,"
                        "\"column\":2},{\"line\":3,\"column\":4}]},"
                        "{\"message\":\"second\",\"extensions\":{\"code\":"
                        "\"QUERY_TOO_COMPLEX\"}}]");
    json_object_put(j);
    /* capped */
    for (int i = 0; i < 2 * SH__GQL_MAX_ERRORS; i++)
        sh__gql_error_add(&e, NULL, NULL, 0, "x");
    assert_int_equal(e.count, SH__GQL_MAX_ERRORS);
    assert_true(e.full);
    sh__gql_errors_clear(&e);
    assert_int_equal(e.count, 0);
    assert_null(e.head);
}

static void test_get_operation(void **state)
{
    (void)state;
    struct sh__gql_errors e = { 0 };
    const struct sh__gql_definition *op;
    struct sh__gql_doc *doc = parse_ok("query A { a } query B { b }");

    assert_int_equal(sh__gql_get_operation(doc, "B", &op, &e), SH_OK);
    assert_string_equal(op->name, "B");
    assert_int_equal(sh__gql_get_operation(doc, NULL, &op, &e), SH_EINVAL);
    assert_null(op);
    assert_string_equal(e.head->message, "Must provide operation name if "
                        "query contains multiple operations.");
    sh__gql_errors_clear(&e);
    assert_int_equal(sh__gql_get_operation(doc, "C", &op, &e), SH_EINVAL);
    assert_string_equal(e.head->message, "Unknown operation named \"C\".");
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);

    doc = parse_ok("{ a } fragment F on Q { b }");
    assert_int_equal(sh__gql_get_operation(doc, NULL, &op, &e), SH_OK);
    assert_null(op->name);
    assert_non_null(sh__gql_doc_fragment(doc, "F"));
    assert_null(sh__gql_doc_fragment(doc, "G"));
    sh__gql_doc_free(doc);

    doc = parse_ok("fragment F on Q { b }");
    assert_int_equal(sh__gql_get_operation(doc, NULL, &op, &e), SH_EINVAL);
    assert_string_equal(e.head->message, "Must provide an operation.");
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);
}

static void test_schema_model(void **state)
{
    (void)state;
    struct sh__gql_schema *s = NULL;
    char eb[256] = "";
    assert_int_equal(sh__gql_schema_new(&s, eb, sizeof eb), SH_OK);
    const struct sh__gql_type *q = sh__gql_schema_type(s, "Query");
    assert_ptr_equal(q, s->query);
    assert_non_null(s->mutation);
    assert_non_null(s->subscription);
    const struct sh__gql_field *f = sh__gql_type_field(s, q, "liveStreams");
    assert_non_null(f);
    assert_string_equal(f->description, "Live streams, most viewers first.");
    const struct sh__gql_arg_def *a = sh__gql_field_arg(f, "first");
    assert_non_null(a);
    assert_string_equal(a->defval->str, "20");
    assert_ptr_equal(sh__gql_type_field(s, q, "__schema"), s->meta_schema);
    assert_ptr_equal(sh__gql_type_field(s, q, "__type"), s->meta_type);
    const struct sh__gql_type *u = sh__gql_schema_type(s, "User");
    assert_ptr_equal(sh__gql_type_field(s, u, "__typename"),
                     s->meta_typename);
    assert_null(sh__gql_type_field(s, u, "__schema"));
    /* field directives of the SDL */
    const struct sh__gql_type *m = s->mutation;
    f = sh__gql_type_field(s, m, "login");
    assert_string_equal(f->directives->name, "rateLimit");
    assert_string_equal(f->directives->args->name, "limit");
    assert_string_equal(f->directives->args->value->str, "10");
    f = sh__gql_type_field(s, m, "sendMessage");
    assert_string_equal(f->directives->name, "auth");
    /* block-string description */
    assert_non_null(strstr(s->subscription->description,
                           "graphql-transport-ws protocol on the /graphql\n"));
    /* built-ins and introspection */
    const char *names[] = { "Int", "Float", "String", "Boolean", "ID",
        "__Schema", "__Type", "__Field", "__InputValue", "__EnumValue",
        "__Directive", "__TypeKind", "__DirectiveLocation", "DateTime",
        "JSON", "Role" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(sh__gql_schema_type(s, names[i]));
    assert_null(sh__gql_schema_type(s, "__Meta"));
    const char *dirs[] = { "skip", "include", "deprecated", "specifiedBy",
                           "auth", "rateLimit" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        assert_non_null(sh__gql_schema_directive(s, dirs[i]));
    const struct sh__gql_directive_def *d =
        sh__gql_schema_directive(s, "skip");
    assert_true(d->locations & (1u << SH__GQL_L_FIELD));
    assert_false(d->locations & (1u << SH__GQL_L_QUERY));
    assert_non_null(sh__gql_enum_value(sh__gql_schema_type(s, "Role"),
                                       "ADMIN"));
    assert_int_equal(sh__gql_schema_type(s, "__TypeKind")->nvalues, 8);
    assert_int_equal(sh__gql_schema_type(s, "__DirectiveLocation")->nvalues,
                     SH__GQL_L_COUNT);
    sh__gql_schema_free(s);

    /* a broken SDL is refused with a message */
    const char *bad[] = { "type Query { a: Nope }", "type Query { a: Int",
                          "type Query { a: Int } type Query { b: Int }",
                          "type A { a: Int }" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eb[0] = '\0';
        assert_int_equal(sh__gql_schema_build(bad[i], strlen(bad[i]), &s, eb,
                                              sizeof eb), SH_EINVAL);
        assert_null(s);
        assert_true(eb[0] != '\0');
    }
    sh__gql_schema_free(NULL);
}

static void test_embedded_schema_matches_file(void **state)
{
    (void)state;
    /* the compiled-in SDL has the contract's size and no NUL */
    assert_true(sh__gql_schema_sdl_len > 1000);
    assert_int_equal(strlen(sh__gql_schema_sdl), sh__gql_schema_sdl_len);
    assert_non_null(strstr(sh__gql_schema_sdl, "type Subscription {"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kitchen_sink),
        cmocka_unit_test(test_values_strings),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_and_bad_utf8),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_document_size_limit),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_get_operation),
        cmocka_unit_test(test_schema_model),
        cmocka_unit_test(test_embedded_schema_matches_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
