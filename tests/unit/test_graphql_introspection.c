/* tests/unit/test_graphql_introspection.c: __schema, __type, __typename
 * and the graphql.introspection switch, through sh_graphql_execute(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "streamhub/streamhub.h"

static sh_hub_t *open_hub(const char *introspection)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(c, "jwt-secret",
                                   "0123456789abcdef0123456789abcdef-t", err,
                                   sizeof err), SH_OK);
    if (introspection != NULL)
        assert_int_equal(sh_config_set(c, "graphql.introspection",
                                       introspection, err, sizeof err), SH_OK);
    assert_int_equal(sh_hub_open(c, &hub, err, sizeof err), SH_OK);
    return hub;
}

static char *run(sh_hub_t *hub, const char *q, int *st)
{
    sh_graphql_request_t *req = NULL;
    char *resp = NULL;

    assert_int_equal(sh_graphql_request_new(&req), SH_OK);
    assert_int_equal(sh_graphql_request_set_query(req, q, strlen(q)), SH_OK);
    assert_int_equal(sh_graphql_execute(hub, req, &resp, NULL, st, NULL, 0),
                     SH_OK);
    sh_graphql_request_free(req);
    return resp;
}

static void test_type_with_defaults_and_directives(void **state)
{
    sh_hub_t *hub = open_hub(NULL);
    int st = 0;
    char *r;

    (void)state;
    r = run(hub, "{ __type(name: \"Query\") { kind name fields { name args "
            "{ name defaultValue type { kind name ofType { name } } } } } }",
            &st);
    assert_int_equal(st, 200);
    /* liveStreams(first: Int = 20 ...): the default printed as a literal */
    assert_non_null(strstr(r, "{\"name\":\"first\",\"defaultValue\":\"20\","
                              "\"type\":{\"kind\":\"SCALAR\",\"name\":"
                              "\"Int\",\"ofType\":null}}"));
    assert_non_null(strstr(r, "\"defaultValue\":\"false\""));
    assert_null(strstr(r, "__schema"));        /* meta fields not listed */
    sh_graphql_free(r);
    r = run(hub, "{ __schema { directives { name locations args { name "
            "defaultValue } } } }", &st);
    assert_non_null(strstr(r, "{\"name\":\"rateLimit\",\"locations\":"
                              "[\"FIELD_DEFINITION\"]"));
    assert_non_null(strstr(r, "\"defaultValue\":\"\\\"No longer "
                              "supported\\\"\""));
    assert_non_null(strstr(r, "\"name\":\"specifiedBy\""));
    sh_graphql_free(r);
    r = run(hub, "{ __type(name: \"Nope\") { name } a: __type(name: \"\") "
            "{ name } __typename }", &st);
    assert_string_equal(r, "{\"data\":{\"__type\":null,\"a\":null,"
                           "\"__typename\":\"Query\"}}");
    sh_graphql_free(r);
    /* a field's type loads the full type: User.followers -> connection */
    r = run(hub, "{ __type(name: \"User\") { fields(includeDeprecated: "
            "true) { name type { ofType { name fields { name } } } } } }",
            &st);
    assert_non_null(strstr(r, "\"name\":\"UserConnection\",\"fields\":"
                              "[{\"name\":\"edges\"}"));
    sh_graphql_free(r);
    r = run(hub, "{ __type(name: \"Role\") { enumValues { name "
            "isDeprecated } fields { name } } }", &st);
    assert_non_null(strstr(r, "{\"name\":\"VIEWER\",\"isDeprecated\":false}"));
    assert_non_null(strstr(r, "\"fields\":null"));
    sh_graphql_free(r);
    sh_hub_close(hub);
}

static void test_introspection_off(void **state)
{
    sh_hub_t *hub = open_hub("false");
    int st = 0;
    char *r;

    (void)state;
    r = run(hub, "{ __schema { queryType { name } } }", &st);
    assert_int_equal(st, 400);
    assert_null(strstr(r, "\"data\""));
    assert_non_null(strstr(r, "GraphQL introspection has been disabled"));
    assert_non_null(strstr(r, "\"code\":\"FORBIDDEN\""));
    sh_graphql_free(r);
    /* hidden in a fragment too */
    r = run(hub, "{ ...F } fragment F on Query { __type(name: \"User\") { "
            "name } }", &st);
    assert_int_equal(st, 400);
    sh_graphql_free(r);
    r = run(hub, "{ __typename }", &st);
    assert_int_equal(st, 200);
    sh_graphql_free(r);
    sh_hub_close(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_with_defaults_and_directives),
        cmocka_unit_test(test_introspection_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
