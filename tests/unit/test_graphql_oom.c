/* tests/unit/test_graphql_oom.c: every allocation of the GraphQL engine
 * failing in turn (schema build, parse, validation, limits, errors):
 * each failure is a clean SH_ENOMEM and nothing leaks.
 *
 * The test is linked with --wrap for malloc, calloc, realloc and free, so
 * the engine's own allocations (static archives in this link) go through
 * the counters below; the shared libraries' do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graphql/graphql_int.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static long fail_at = -1;   /* the allocation number that fails; -1: none */
static long count;          /* allocations attempted since the reset */
static long live;           /* successful allocations not yet freed */

static bool should_fail(void)
{
    return fail_at >= 0 && count++ == fail_at;
}

void *__wrap_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __real_malloc(n);
    if (p != NULL)
        live++;
    return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
    if (should_fail())
        return NULL;
    void *p = __real_calloc(n, m);
    if (p != NULL)
        live++;
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = __real_realloc(p, n);
    if (q != NULL && p == NULL)
        live++;
    return q;
}

void __wrap_free(void *p)
{
    if (p != NULL)
        live--;
    __real_free(p);
}

static const char query[] =
    "query Q($id: ID!, $n: Int = 5) { s: stream(id: $id) { id title "
    "...F } me { followers(first: $n) { edges { node { id } } } } "
    "liveStreams(first: \"x\") { totalCount } stream(id: 1) { id } } "
    "fragment F on Stream { chatSettings { blockedTerms } } "
    "fragment G on User { ...G }";

/* The whole pipeline once; the first failure's code. */
static sh_err_t pipeline(void)
{
    struct sh__gql_schema *s = NULL;
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_doc *doc = NULL;
    struct sh__gql_limits lim;
    const struct sh__gql_definition *op;
    sh_err_t rc;

    sh__gql_limits_default(&lim);
    rc = sh__gql_schema_new(&s, NULL, 0);
    if (rc != SH_OK)
        return rc;
    rc = sh__gql_parse(query, sizeof query - 1, &lim, &doc, &errs);
    if (rc == SH_OK) {
        rc = sh__gql_validate(s, doc, &errs);
        if (rc == SH_EINVAL) {
            /* expected: the query has errors; render them */
            json_object *j = sh__gql_errors_to_json(&errs);
            rc = j == NULL ? SH_ENOMEM : SH_OK;
            json_object_put(j);
        }
    }
    if (rc == SH_OK) {
        rc = sh__gql_get_operation(doc, "Q", &op, &errs);
        if (rc == SH_EINVAL)
            rc = errs.oom ? SH_ENOMEM : rc;
    }
    if (rc == SH_OK) {
        rc = sh__gql_check_limits(s, doc, op, NULL, &lim, &errs);
        if (rc == SH_ETOOBIG)
            rc = SH_OK;
    }
    sh__gql_errors_clear(&errs);
    sh__gql_doc_free(doc);
    sh__gql_schema_free(s);
    return rc;
}

static void test_every_allocation_fails(void **state)
{
    (void)state;
    long n;

    for (n = 0;; n++) {
        long before = live;
        count = 0;
        fail_at = n;
        sh_err_t rc = pipeline();
        fail_at = -1;
        assert_int_equal(live, before);
        if (rc == SH_OK && count <= n)
            break;   /* the failure point is past the last allocation */
        assert_int_equal(rc, SH_ENOMEM);
    }
    assert_true(n > 50);   /* the pipeline did allocate */
}

static void test_parse_oom_cut(void **state)
{
    (void)state;
    /* the arena's first block failing inside the parser */
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_doc *doc = (void *)1;
    long before = live;
    count = 0;
    fail_at = 2;
    sh_err_t rc = sh__gql_parse(query, sizeof query - 1, NULL, &doc, &errs);
    fail_at = -1;
    assert_int_equal(rc, SH_ENOMEM);
    assert_null(doc);
    sh__gql_errors_clear(&errs);
    assert_int_equal(live, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails),
        cmocka_unit_test(test_parse_oom_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
