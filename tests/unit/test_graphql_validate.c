/* tests/unit/test_graphql_validate.c: spec section 5 against our schema
 * (the spec's own counter-examples, moved onto StreamHub's types), and the
 * complexity limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graphql/graphql_int.h"

#include "../common/introspection_query.h"

static struct sh__gql_schema *S;

static int setup(void **state)
{
    char eb[256] = "";
    (void)state;
    if (sh__gql_schema_new(&S, eb, sizeof eb) != SH_OK) {
        fprintf(stderr, "schema: %s\n", eb);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh__gql_schema_free(S);
    return 0;
}

/* Parse and validate @q; the messages must be exactly the @n given (in
 * any order).  Returns the first error's first location. */
static struct sh__gql_loc expect_errors(const char *q, int n, ...)
{
    struct sh__gql_errors e = { 0 };
    struct sh__gql_doc *doc = NULL;
    struct sh__gql_limits lim;
    struct sh__gql_loc first = { 0, 0 };
    va_list ap;

    sh__gql_limits_default(&lim);
    if (sh__gql_parse(q, strlen(q), &lim, &doc, &e) != SH_OK)
        fail_msg("parse: %s: %s", q, e.head ? e.head->message : "?");
    sh_err_t rc = sh__gql_validate(S, doc, &e);
    if ((int)e.count != n) {
        for (const struct sh__gql_error *x = e.head; x; x = x->next)
            fprintf(stderr, "  got: %s\n", x->message);
        fail_msg("%s: %zu errors, want %d", q, e.count, n);
    }
    assert_int_equal(rc, n == 0 ? SH_OK : SH_EINVAL);
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        bool found = false;
        for (const struct sh__gql_error *x = e.head; x && !found; x = x->next)
            found = strcmp(x->message, want) == 0;
        if (!found) {
            for (const struct sh__gql_error *x = e.head; x; x = x->next)
                fprintf(stderr, "  got: %s\n", x->message);
            fail_msg("%s: missing \"%s\"", q, want);
        }
    }
    va_end(ap);
    if (e.head != NULL && e.head->nlocs > 0)
        first = e.head->locs[0];
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);
    return first;
}

static void valid(const char *q)
{
    expect_errors(q, 0);
}

/* ---- 5.1, 5.2: documents and operations ------------------------------ */

static void test_executable_definitions(void **state)
{
    (void)state;
    expect_errors("query getName { me { username } }\n"
                  "type Dog { color: String }",
                  1, "The \"Dog\" definition is not executable.");
    expect_errors("{ me { id } } schema { query: Query }", 1,
                  "The schema definition is not executable.");
    expect_errors("{ me { id } } directive @d on FIELD scalar S", 2,
                  "The \"d\" definition is not executable.",
                  "The \"S\" definition is not executable.");
}

static void test_operation_names(void **state)
{
    (void)state;
    valid("query getName { me { username } } "
          "query getOwnerName { me { id } }");
    struct sh__gql_loc l = expect_errors(
        "query getName { me { username } }\n"
        "query getName { me { id } }", 1,
        "There can be only one operation named \"getName\".");
    assert_int_equal(l.line, 1);
    assert_int_equal(l.column, 7);
    expect_errors("query dogOperation { me { id } }\n"
                  "mutation dogOperation { follow(userId: \"1\") { id } }", 1,
                  "There can be only one operation named \"dogOperation\".");
    expect_errors("{ me { id } } query getName { me { username } }", 1,
                  "This anonymous operation must be the only defined "
                  "operation.");
    expect_errors("{ me { id } } { me { username } }", 2,
                  "This anonymous operation must be the only defined "
                  "operation.",
                  "This anonymous operation must be the only defined "
                  "operation.");
}

static void test_single_root_field(void **state)
{
    (void)state;
    valid("subscription sub { chatMessages(streamId: \"1\") { kind offset } }");
    valid("subscription sub { ...F } fragment F on Subscription "
          "{ notifications { id } }");
    expect_errors("subscription sub { notifications { id } "
                  "liveStreams { kind } }", 1,
                  "Subscription \"sub\" must select only one top level "
                  "field.");
    expect_errors("subscription sub { ...multiple } fragment multiple on "
                  "Subscription { notifications { id } "
                  "disallowedSecondRootField: liveStreams { kind } }", 1,
                  "Subscription \"sub\" must select only one top level "
                  "field.");
    expect_errors("subscription { notifications { id } "
                  "streamUpdates(streamId: \"1\") { kind } }", 1,
                  "Anonymous Subscription must select only one top level "
                  "field.");
    expect_errors("subscription sub { __typename }", 1,
                  "Subscription \"sub\" must not select an introspection "
                  "top level field.");
}

/* ---- 5.3: fields ----------------------------------------------------- */

static void test_fields_on_correct_type(void **state)
{
    (void)state;
    valid("{ me { __typename id username followers { totalCount } } }");
    valid("{ __typename __schema { queryType { name } } "
          "__type(name: \"User\") { name } }");
    expect_errors("fragment fieldNotDefined on User { meowVolume } "
                  "{ me { ...fieldNotDefined } }", 1,
                  "Cannot query field \"meowVolume\" on type \"User\".");
    expect_errors("fragment aliasedLyingFieldTargetNotDefined on User "
                  "{ barkVolume: kawVolume } "
                  "{ me { ...aliasedLyingFieldTargetNotDefined } }", 1,
                  "Cannot query field \"kawVolume\" on type \"User\".");
    expect_errors("{ me { __schema { queryType { name } } } }", 1,
                  "Cannot query field \"__schema\" on type \"User\".");
    /* unknown field: no cascade into its selection */
    expect_errors("{ nope { a b c } }", 1,
                  "Cannot query field \"nope\" on type \"Query\".");
}

static void test_field_merging(void **state)
{
    (void)state;
    valid("{ me { username username } }");
    valid("{ me { name: username name: username } }");
    valid("{ me { followers(first: 1) { totalCount } "
          "followers(first: 1) { pageInfo { hasNextPage } } } }");
    expect_errors("fragment conflictingBecauseAlias on User "
                  "{ name: username name: email } "
                  "{ me { ...conflictingBecauseAlias } }", 1,
                  "Fields \"name\" conflict because \"username\" and "
                  "\"email\" are different fields. Use different aliases on "
                  "the fields to fetch both if this was intentional.");
    expect_errors("{ me { followers(first: 1) { totalCount } "
                  "followers(first: 2) { totalCount } } }", 1,
                  "Fields \"followers\" conflict because they have differing "
                  "arguments. Use different aliases on the fields to fetch "
                  "both if this was intentional.");
    expect_errors("query ($n: Int) { me { followers(first: $n) "
                  "{ totalCount } followers(first: 2) { totalCount } } }", 1,
                  "Fields \"followers\" conflict because they have differing "
                  "arguments. Use different aliases on the fields to fetch "
                  "both if this was intentional.");
    expect_errors("{ me { followers { totalCount } followers(first: 20) "
                  "{ totalCount } } }", 1,
                  "Fields \"followers\" conflict because they have differing "
                  "arguments. Use different aliases on the fields to fetch "
                  "both if this was intentional.");
    /* through sub-selections */
    expect_errors("{ me { id } me { id: username } }", 1,
                  "Fields \"me\" conflict because subfields \"id\" conflict "
                  "because \"id\" and \"username\" are different fields. Use "
                  "different aliases on the fields to fetch both if this "
                  "was intentional.");
    /* through fragments and inline fragments */
    expect_errors("{ a: me { id } ... on Query { a: stream(id: \"1\") "
                  "{ id } } }", 1,
                  "Fields \"a\" conflict because \"me\" and \"stream\" are "
                  "different fields. Use different aliases on the fields to "
                  "fetch both if this was intentional.");
}

static void test_leaf_field_selections(void **state)
{
    (void)state;
    expect_errors("{ me { id { x } } }", 1,
                  "Field \"id\" must not have a selection since type \"ID!\" "
                  "has no subfields.");
    expect_errors("query directQueryOnObjectWithoutSubFields { me }", 1,
                  "Field \"me\" of type \"User\" must have a selection of "
                  "subfields. Did you mean \"me { ... }\"?");
    expect_errors("{ liveStreams }", 1,
                  "Field \"liveStreams\" of type \"StreamConnection!\" must "
                  "have a selection of subfields. Did you mean "
                  "\"liveStreams { ... }\"?");
    expect_errors("{ me { followers { edges } } }", 1,
                  "Field \"edges\" of type \"[UserEdge!]!\" must have a "
                  "selection of subfields. Did you mean \"edges { ... }\"?");
    expect_errors("{ __typename { x } }", 1,
                  "Field \"__typename\" must not have a selection since type "
                  "\"String!\" has no subfields.");
}

/* ---- 5.4: arguments -------------------------------------------------- */

static void test_arguments(void **state)
{
    (void)state;
    valid("{ me { followers(after: \"c\", first: 5) { totalCount } } }");
    expect_errors("{ stream(id: \"1\", command: CLEAN_UP_HOUSE) { id } }", 1,
                  "Unknown argument \"command\" on field \"Query.stream\".");
    expect_errors("{ me @include(unless: false) { id } }", 2,
                  "Unknown argument \"unless\" on directive \"@include\".",
                  "Directive \"@include\" argument \"if\" of type "
                  "\"Boolean!\" is required, but it was not provided.");
    expect_errors("{ stream(id: \"1\", id: \"2\") { id } }", 1,
                  "There can be only one argument named \"id\".");
    expect_errors("{ stream { id } }", 1,
                  "Field \"stream\" argument \"id\" of type \"ID!\" is "
                  "required, but it was not provided.");
    expect_errors("{ stream(id: null) { id } }", 1,
                  "Expected value of type \"ID!\", found null.");
    /* a required argument with a default may be left out */
    valid("mutation { subscribeToChannel(channelId: \"1\") { tier } }");
    expect_errors("mutation { timeoutUser(channelId: \"1\") }", 2,
                  "Field \"timeoutUser\" argument \"userId\" of type \"ID!\" "
                  "is required, but it was not provided.",
                  "Field \"timeoutUser\" argument \"seconds\" of type \"Int!\" "
                  "is required, but it was not provided.");
}

/* ---- 5.5: fragments -------------------------------------------------- */

static void test_fragment_declarations(void **state)
{
    (void)state;
    valid("{ me { ...A ...B } } fragment A on User { id } "
          "fragment B on User { username }");
    expect_errors("{ me { ...fragmentOne } } "
                  "fragment fragmentOne on User { id } "
                  "fragment fragmentOne on User { username }", 1,
                  "There can be only one fragment named \"fragmentOne\".");
    expect_errors("{ me { ...notOnExistingType } } "
                  "fragment notOnExistingType on NotInSchema { name }", 1,
                  "Unknown type \"NotInSchema\".");
    expect_errors("{ me { ... on NotInSchema { name } } }", 1,
                  "Unknown type \"NotInSchema\".");
    expect_errors("{ me { ...fragOnScalar } } "
                  "fragment fragOnScalar on Int { something }", 1,
                  "Fragment \"fragOnScalar\" cannot condition on non "
                  "composite type \"Int\".");
    expect_errors("{ me { ... on Boolean { somethingElse } } }", 1,
                  "Fragment cannot condition on non composite type "
                  "\"Boolean\".");
    expect_errors("{ me { id } } fragment nameFragment on User { username }",
                  1, "Fragment \"nameFragment\" is never used.");
}

static void test_fragment_spreads(void **state)
{
    (void)state;
    expect_errors("{ me { ...undefinedFragment } }", 1,
                  "Unknown fragment \"undefinedFragment\".");
    expect_errors("{ me { ...F } } fragment F on Stream { id }", 1,
                  "Fragment \"F\" cannot be spread here as objects of type "
                  "\"User\" can never be of type \"Stream\".");
    expect_errors("{ me { ... on Stream { id } } }", 1,
                  "Fragment cannot be spread here as objects of type "
                  "\"User\" can never be of type \"Stream\".");
    valid("{ me { ... on User { id } ... { username } } }");
}

static void test_fragment_cycles(void **state)
{
    (void)state;
    expect_errors("{ me { ...nameFragment } } "
                  "fragment nameFragment on User { username "
                  "...barkVolumeFragment } "
                  "fragment barkVolumeFragment on User { id ...nameFragment }",
                  1, "Cannot spread fragment \"nameFragment\" within itself "
                  "via \"barkVolumeFragment\".");
    expect_errors("{ me { ...A } } fragment A on User { ...A }", 1,
                  "Cannot spread fragment \"A\" within itself.");
    expect_errors("{ me { ...A } } fragment A on User { ...B } "
                  "fragment B on User { ...C } fragment C on User "
                  "{ followers { edges { node { ...A } } } }", 1,
                  "Cannot spread fragment \"A\" within itself via \"B\", "
                  "\"C\".");
    /* a cycle never reached from an operation is still one, and unused */
    expect_errors("{ me { id } } fragment X on User { ...Y } "
                  "fragment Y on User { ...X }", 3,
                  "Cannot spread fragment \"X\" within itself via \"Y\".",
                  "Fragment \"X\" is never used.",
                  "Fragment \"Y\" is never used.");
}

/* A long chain and a wide fan of fragments: walks stay linear. */
static void test_fragment_fan_out(void **state)
{
    (void)state;
    size_t cap = 1 << 20, n = 0;
    char *q = malloc(cap);
    assert_non_null(q);
    /* F_i spreads F_{i+1} twice through two fields: 2^40 paths */
    n += (size_t)snprintf(q + n, cap - n, "{ me { ...F0 } }\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(q + n, cap - n,
                              "fragment F%d on User { followers { edges { "
                              "node { ...F%d } } } following { edges { node "
                              "{ ...F%d } } } }\n", i, i + 1, i + 1);
    n += (size_t)snprintf(q + n, cap - n, "fragment F40 on User { id }\n");
    struct sh__gql_errors e = { 0 };
    struct sh__gql_doc *doc = NULL;
    struct sh__gql_limits lim;
    sh__gql_limits_default(&lim);
    assert_int_equal(sh__gql_parse(q, n, &lim, &doc, &e), SH_OK);
    sh_err_t rc = sh__gql_validate(S, doc, &e);
    /* either valid, or stopped by the work budget: never hung */
    assert_true(rc == SH_OK || rc == SH_EINVAL);
    if (rc == SH_EINVAL)
        assert_string_equal(e.tail->code, "QUERY_TOO_COMPLEX");
    sh__gql_errors_clear(&e);
    const struct sh__gql_definition *op;
    assert_int_equal(sh__gql_get_operation(doc, NULL, &op, &e), SH_OK);
    /* the limits memoise fragments: deep and costly, computed quickly */
    assert_int_equal(sh__gql_check_limits(S, doc, op, NULL, &lim, &e),
                     SH_ETOOBIG);
    assert_true(e.count >= 2);
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);
    free(q);
}

/* ---- 5.6: values ----------------------------------------------------- */

static void test_values_of_correct_type(void **state)
{
    (void)state;
    valid("{ liveStreams(first: 2147483647) { totalCount } "
          "s: stream(id: 4) { id } t: stream(id: \"4\") { id } }");
    valid("mutation { updateChatSettings(channelId: \"1\", blockedTerms: "
          "\"one\") { slowModeSeconds } }");
    valid("mutation { updateChatSettings(channelId: \"1\", blockedTerms: "
          "[\"a\", \"\"\"b\"\"\"], followersOnly: null) "
          "{ slowModeSeconds } }");
    expect_errors("{ liveStreams(first: \"one\") { totalCount } }", 1,
                  "Int cannot represent non-integer value: \"one\"");
    expect_errors("{ liveStreams(first: 2147483648) { totalCount } }", 1,
                  "Int cannot represent non 32-bit signed integer value: "
                  "2147483648");
    expect_errors("{ liveStreams(first: -2147483649) { totalCount } }", 1,
                  "Int cannot represent non 32-bit signed integer value: "
                  "-2147483649");
    expect_errors("{ liveStreams(first: 99999999999999999999999) "
                  "{ totalCount } }", 1,
                  "Int cannot represent non 32-bit signed integer value: "
                  "99999999999999999999999");
    expect_errors("{ liveStreams(first: 1.0) { totalCount } }", 1,
                  "Int cannot represent non-integer value: 1.0");
    expect_errors("{ stream(id: 1.5) { id } }", 1,
                  "ID cannot represent a non-string and non-integer value: "
                  "1.5");
    expect_errors("{ stream(id: true) { id } }", 1,
                  "ID cannot represent a non-string and non-integer value: "
                  "true");
    expect_errors("{ searchStreams(query: 123) { totalCount } }", 1,
                  "String cannot represent a non string value: 123");
    expect_errors("{ searchStreams(query: LIVE) { totalCount } }", 1,
                  "String cannot represent a non string value: LIVE");
    expect_errors("{ notifications(unreadOnly: \"yes\") { unreadCount } }", 1,
                  "Boolean cannot represent a non boolean value: \"yes\"");
    expect_errors("{ liveStreams(first: [1]) { totalCount } }", 1,
                  "Int cannot represent non-integer value: [1]");
    expect_errors("{ liveStreams(first: {a: 1}) { totalCount } }", 1,
                  "Int cannot represent non-integer value: {a: 1}");
    expect_errors("mutation { updateChatSettings(channelId: \"1\", "
                  "blockedTerms: [\"a\", 1, null]) { slowModeSeconds } }", 2,
                  "String cannot represent a non string value: 1",
                  "Expected value of type \"String!\", found null.");
    expect_errors("query ($r: Role = NOPE) { me { id } }", 2,
                  "Value \"NOPE\" does not exist in \"Role\" enum.",
                  "Variable \"$r\" is never used.");
    expect_errors("query ($r: Role = \"ADMIN\") { me { id } }", 2,
                  "Enum \"Role\" cannot represent non-enum value: "
                  "\"ADMIN\".",
                  "Variable \"$r\" is never used.");
    expect_errors("query ($j: JSON = {a: 1, a: 2}) { me { id } }", 2,
                  "There can be only one input field named \"a\".",
                  "Variable \"$j\" is never used.");
    /* custom scalars take any literal */
    expect_errors("query ($j: JSON = {a: [1, \"x\", {b: null}]}, "
                  "$d: DateTime = 5) { me { id } }", 2,
                  "Variable \"$j\" is never used.",
                  "Variable \"$d\" is never used.");
    /* a long literal is quoted whole */
    {
        char q[8192], want[8192];
        size_t n = (size_t)snprintf(q, sizeof q, "{ liveStreams(first: \"");
        size_t m = (size_t)snprintf(want, sizeof want, "Int cannot represent "
                                    "non-integer value: \"");
        for (int i = 0; i < 2000; i++) {
            n += (size_t)snprintf(q + n, sizeof q - n, "\xC3\xA9");
            m += (size_t)snprintf(want + m, sizeof want - m, "\xC3\xA9");
        }
        snprintf(q + n, sizeof q - n, "\") { totalCount } }");
        snprintf(want + m, sizeof want - m, "\"");
        expect_errors(q, 1, want);
    }
    /* escapes in printed values */
    expect_errors("{ liveStreams(first: \"a\\\"\\n\\u0001\") "
                  "{ totalCount } }", 1,
                  "Int cannot represent non-integer value: "
                  "\"a\\\"\\n\\u0001\"");
}

/* ---- 5.7: directives ------------------------------------------------- */

static void test_directives(void **state)
{
    (void)state;
    valid("query ($b: Boolean!) { me @skip(if: $b) { id @include(if: true) "
          "...F @skip(if: false) ... @include(if: $b) { username } } } "
          "fragment F on User { id }");
    expect_errors("{ me @nope { id } }", 1, "Unknown directive \"@nope\".");
    expect_errors("query @skip(if: true) { me { id } }", 1,
                  "Directive \"@skip\" may not be used on QUERY.");
    expect_errors("{ me { id @auth } }", 1,
                  "Directive \"@auth\" may not be used on FIELD.");
    expect_errors("{ me { ...F } } fragment F on User @include(if: true) "
                  "{ id }", 1,
                  "Directive \"@include\" may not be used on "
                  "FRAGMENT_DEFINITION.");
    expect_errors("query ($v: Int @skip(if: true)) { liveStreams(first: $v) "
                  "{ totalCount } }", 1,
                  "Directive \"@skip\" may not be used on "
                  "VARIABLE_DEFINITION.");
    expect_errors("{ me @skip(if: true) @skip(if: false) { id } }", 1,
                  "The directive \"@skip\" can only be used once at this "
                  "location.");
    expect_errors("{ me @skip(if: 1) { id } }", 1,
                  "Boolean cannot represent a non boolean value: 1");
}

/* ---- 5.8: variables -------------------------------------------------- */

static void test_variables(void **state)
{
    (void)state;
    expect_errors("query houseTrainedQuery($atOtherHomes: Boolean, "
                  "$atOtherHomes: Boolean) { me @skip(if: $atOtherHomes) "
                  "{ id } }", 2,
                  "There can be only one variable named \"$atOtherHomes\".",
                  "Variable \"$atOtherHomes\" of type \"Boolean\" used in "
                  "position expecting type \"Boolean!\".");
    expect_errors("query takesUser($user: User) { me { id } }", 2,
                  "Variable \"$user\" cannot be non-input type \"User\".",
                  "Variable \"$user\" is never used in operation "
                  "\"takesUser\".");
    expect_errors("query takesUsers($u: [User!]!) { me { id } }", 2,
                  "Variable \"$u\" cannot be non-input type \"[User!]!\".",
                  "Variable \"$u\" is never used in operation "
                  "\"takesUsers\".");
    expect_errors("query ($x: Nope) { me { id } }", 2,
                  "Unknown type \"Nope\".", "Variable \"$x\" is never used.");
    expect_errors("query variableIsNotDefined { stream(id: $id) { id } }", 1,
                  "Variable \"$id\" is not defined by operation "
                  "\"variableIsNotDefined\".");
    /* through a fragment shared by two operations */
    expect_errors("query A($id: ID!) { ...S } query B { ...S } "
                  "fragment S on Query { stream(id: $id) { id } }", 1,
                  "Variable \"$id\" is not defined by operation \"B\".");
    expect_errors("query variableUnused($atOtherHomes: Boolean) "
                  "{ me { id } }", 1,
                  "Variable \"$atOtherHomes\" is never used in operation "
                  "\"variableUnused\".");
    valid("query ($id: ID!) { ...S } fragment S on Query "
          "{ ... { stream(id: $id) { id } } }");
    valid("query ($b: Boolean!) { me { ...F } } "
          "fragment F on User { id @include(if: $b) }");
    expect_errors("query Q { me { ...F } } "
                  "fragment F on User { id @include(if: $b) }", 1,
                  "Variable \"$b\" is not defined by operation \"Q\".");
}

static void test_variables_in_allowed_position(void **state)
{
    (void)state;
    expect_errors("query ($id: ID) { stream(id: $id) { id } }", 1,
                  "Variable \"$id\" of type \"ID\" used in position "
                  "expecting type \"ID!\".");
    expect_errors("query ($id: String!) { stream(id: $id) { id } }", 1,
                  "Variable \"$id\" of type \"String!\" used in position "
                  "expecting type \"ID!\".");
    /* a non-null default makes a nullable variable fit */
    valid("query ($id: ID = \"1\") { stream(id: $id) { id } }");
    expect_errors("query ($id: ID = null) { stream(id: $id) { id } }", 1,
                  "Variable \"$id\" of type \"ID\" used in position "
                  "expecting type \"ID!\".");
    /* a position with a default takes a nullable variable */
    valid("query ($t: Int) { mutationIsNotHere: liveStreams(first: $t) "
          "{ totalCount } }");
    valid("mutation ($ch: ID!, $t: Int) { subscribeToChannel(channelId: $ch, "
          "tier: $t) { tier } }");
    expect_errors("mutation ($ids: [ID]) { markNotificationsRead(ids: $ids) }",
                  1, "Variable \"$ids\" of type \"[ID]\" used in position "
                  "expecting type \"[ID!]\".");
    valid("mutation ($ids: [ID!]!) { markNotificationsRead(ids: $ids) }");
    valid("mutation ($t: String!) { updateChatSettings(channelId: \"1\", "
          "blockedTerms: [$t, \"x\"]) { slowModeSeconds } }");
    expect_errors("mutation ($t: String) { updateChatSettings(channelId: "
                  "\"1\", blockedTerms: [$t]) { slowModeSeconds } }", 1,
                  "Variable \"$t\" of type \"String\" used in position "
                  "expecting type \"String!\".");
    expect_errors("query ($l: [String!]) { searchStreams(query: $l) "
                  "{ totalCount } }", 1,
                  "Variable \"$l\" of type \"[String!]\" used in position "
                  "expecting type \"String!\".");
}

static void test_introspection_query_valid(void **state)
{
    (void)state;
    valid(introspection_query);
}

static void test_error_limit(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, n = 0;
    char *q = malloc(cap);
    assert_non_null(q);
    n += (size_t)snprintf(q + n, cap - n, "{");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(q + n, cap - n, " f%d", i);
    n += (size_t)snprintf(q + n, cap - n, " }");
    struct sh__gql_errors e = { 0 };
    struct sh__gql_doc *doc = NULL;
    struct sh__gql_limits lim;
    sh__gql_limits_default(&lim);
    assert_int_equal(sh__gql_parse(q, n, &lim, &doc, &e), SH_OK);
    assert_int_equal(sh__gql_validate(S, doc, &e), SH_EINVAL);
    assert_int_equal(e.count, SH__GQL_MAX_ERRORS);
    assert_string_equal(e.tail->message, "Too many validation errors, error "
                        "limit reached. Validation aborted.");
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);
    free(q);
}

/* ---- limits ---------------------------------------------------------- */

static sh_err_t limits(const char *q, const char *vars,
                       const struct sh__gql_limits *lim, const char *want)
{
    struct sh__gql_errors e = { 0 };
    struct sh__gql_doc *doc = NULL;
    const struct sh__gql_definition *op;
    json_object *v = vars ? json_tokener_parse(vars) : NULL;

    if (sh__gql_parse(q, strlen(q), lim, &doc, &e) != SH_OK ||
        sh__gql_validate(S, doc, &e) != SH_OK)
        fail_msg("%s: %s", q, e.head ? e.head->message : "?");
    assert_int_equal(sh__gql_get_operation(doc, NULL, &op, &e), SH_OK);
    sh_err_t rc = sh__gql_check_limits(S, doc, op, v, lim, &e);
    if (want != NULL) {
        assert_int_equal(rc, SH_ETOOBIG);
        assert_non_null(e.head);
        assert_string_equal(e.head->message, want);
        assert_string_equal(e.head->code, "QUERY_TOO_COMPLEX");
    } else if (rc != SH_OK) {
        fail_msg("%s: %s", q, e.head ? e.head->message : "?");
    }
    sh__gql_errors_clear(&e);
    sh__gql_doc_free(doc);
    json_object_put(v);
    return rc;
}

/* A query of depth @depth: me, then currentStream / broadcaster in turn,
 * then id. */
static char *deep_query(int depth)
{
    size_t cap = 8192, n = 0;
    char *q = malloc(cap);
    assert_non_null(q);
    n += (size_t)snprintf(q + n, cap - n, "{ me {");
    for (int i = 0; i < depth - 2; i++)
        n += (size_t)snprintf(q + n, cap - n, i % 2 ? " broadcaster {"
                                                    : " currentStream {");
    n += (size_t)snprintf(q + n, cap - n, " id");
    for (int i = 0; i < depth - 1; i++)
        n += (size_t)snprintf(q + n, cap - n, " }");
    snprintf(q + n, cap - n, " }");
    return q;
}

static void test_limit_depth(void **state)
{
    (void)state;
    struct sh__gql_limits lim;
    sh__gql_limits_default(&lim);
    char *q = deep_query(12);
    limits(q, NULL, &lim, NULL);
    free(q);
    q = deep_query(13);
    limits(q, NULL, &lim, "The operation has depth 13, more than the "
           "maximum of 12.");
    free(q);
    /* depth counts through fragments */
    limits("{ me { ...A } } fragment A on User { currentStream { ...B } } "
           "fragment B on Stream { broadcaster { id } }", NULL, &lim, NULL);
    lim.max_depth = 3;
    limits("{ me { ...A } } fragment A on User { currentStream { ...B } } "
           "fragment B on Stream { broadcaster { id } }", NULL, &lim,
           "The operation has depth 4, more than the maximum of 3.");
    /* standard introspection passes the defaults; ofType is free */
    sh__gql_limits_default(&lim);
    limits(introspection_query, NULL, &lim, NULL);
    lim.max_depth = 6;
    limits(introspection_query, NULL, &lim, NULL);
    lim.max_depth = 5;
    limits(introspection_query, NULL, &lim, "The operation has depth 6, more "
           "than the maximum of 5.");
    /* but loops through introspection types are not */
    sh__gql_limits_default(&lim);
    limits("{ __schema { types { fields { type { fields { type { fields { "
           "type { fields { type { fields { type { name } } } } } } } } } } "
           "} } }", NULL, &lim, "The operation has depth 13, more than the "
           "maximum of 12.");
}

static void test_limit_cost(void **state)
{
    (void)state;
    struct sh__gql_limits lim;
    sh__gql_limits_default(&lim);
    lim.max_cost = 100;
    /* me(1) + followers(1 + 20 * (edges 1 + node 1 + id 1)) = 62 */
    limits("{ me { followers { edges { node { id } } } } }", NULL, &lim,
           NULL);
    /* literal first: 1 + 1 + 40 * 3 = 122 */
    limits("{ me { followers(first: 40) { edges { node { id } } } } }", NULL,
           &lim, "The operation costs 122, more than the maximum of 100.");
    /* variable value */
    limits("query ($n: Int) { me { followers(first: $n) { edges { node "
           "{ id } } } } }", "{\"n\": 40}", &lim,
           "The operation costs 122, more than the maximum of 100.");
    /* variable default, when the variable is not given */
    limits("query ($n: Int = 40) { me { followers(first: $n) { edges "
           "{ node { id } } } } }", NULL, &lim,
           "The operation costs 122, more than the maximum of 100.");
    /* variable given as null: the argument's default (20) */
    limits("query ($n: Int = 40) { me { followers(first: $n) { edges "
           "{ node { id } } } } }", "{\"n\": null}", &lim, NULL);
    /* last: chatHistory defaults to 50: 1 + 50 * 3 = 151 */
    limits("{ chatHistory(streamId: \"1\") { edges { node { id } } } }", NULL,
           &lim, "The operation costs 151, more than the maximum of 100.");
    /* exactly at the maximum */
    lim.max_cost = 122;
    limits("{ me { followers(first: 40) { edges { node { id } } } } }", NULL,
           &lim, NULL);
    lim.max_cost = 121;
    limits("{ me { followers(first: 40) { edges { node { id } } } } }", NULL,
           &lim, "The operation costs 122, more than the maximum of 121.");
    /* nested multipliers saturate instead of overflowing */
    lim.max_cost = 5000;
    limits("{ me { followers(first: 2147483647) { edges { node { "
           "followers(first: 2147483647) { edges { node { "
           "followers(first: 2147483647) { edges { node { id } } } } } } } } "
           "} } }", NULL, &lim,
           "The operation costs 9223372036854775807, more than the maximum "
           "of 5000.");
}

static void test_limit_aliases(void **state)
{
    (void)state;
    struct sh__gql_limits lim;
    char q[4096];
    size_t n;

    sh__gql_limits_default(&lim);
    /* 50 root fields: at the maximum */
    n = (size_t)snprintf(q, sizeof q, "{");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(q + n, sizeof q - n, " a%d: me { id }", i);
    snprintf(q + n, sizeof q - n, " }");
    /* 50 aliases + 50 root fields = 100 > 50 */
    limits(q, NULL, &lim, "The operation has 100 aliases and root fields, "
           "more than the maximum of 50.");
    lim.max_aliases = 100;
    limits(q, NULL, &lim, NULL);
    lim.max_aliases = 99;
    limits(q, NULL, &lim, "The operation has 100 aliases and root fields, "
           "more than the maximum of 99.");
    /* aliases inside fragments count once per spread */
    sh__gql_limits_default(&lim);
    lim.max_aliases = 4;
    limits("{ me { ...F } a: me { ...F } } fragment F on User "
           "{ x: id }", NULL, &lim, "The operation has 5 aliases and root "
           "fields, more than the maximum of 4.");
    lim.max_aliases = 5;
    limits("{ me { ...F } a: me { ...F } } fragment F on User "
           "{ x: id }", NULL, &lim, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executable_definitions),
        cmocka_unit_test(test_operation_names),
        cmocka_unit_test(test_single_root_field),
        cmocka_unit_test(test_fields_on_correct_type),
        cmocka_unit_test(test_field_merging),
        cmocka_unit_test(test_leaf_field_selections),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_fragment_declarations),
        cmocka_unit_test(test_fragment_spreads),
        cmocka_unit_test(test_fragment_cycles),
        cmocka_unit_test(test_fragment_fan_out),
        cmocka_unit_test(test_values_of_correct_type),
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_variables_in_allowed_position),
        cmocka_unit_test(test_introspection_query_valid),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_cost),
        cmocka_unit_test(test_limit_aliases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
