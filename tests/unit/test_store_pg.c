/* tests/unit/test_store_pg.c: the PostgreSQL backend's placeholder
 * conversion (no server needed; the backend itself runs in the contract
 * suite's pg pairs and in tests/e2e/pg.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "store/store_be.h"

static void expect(const char *in, const char *want, int want_n)
{
    int n = -1;
    char *out = sh__pg_placeholders(in, &n);

    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(n, want_n);
    free(out);
}

static void test_placeholders(void **state)
{
    (void)state;
    expect("SELECT 1", "SELECT 1", 0);
    expect("SELECT ? , ?", "SELECT $1 , $2", 2);
    /* literals, identifiers and comments keep their question marks */
    expect("SELECT '?', \"a?\", ? -- ?\n, ?", "SELECT '?', \"a?\", $1 -- ?\n, $2",
           2);
    expect("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1);
    expect("SELECT /* ? */ ? /**/ ?", "SELECT /* ? */ $1 /**/ $2", 2);
    expect("SELECT \"x\"\"?\" , ?", "SELECT \"x\"\"?\" , $1", 1);
    /* SQLite's numbered parameters, and plain ones after them */
    expect("SELECT ?2, ?1, ?3", "SELECT $2, $1, $3", 3);
    expect("SELECT ?2, ?", "SELECT $2, $3", 3);
    expect("SELECT ?::jsonb", "SELECT $1::jsonb", 1);
    /* an unterminated literal is copied, never overrun */
    expect("SELECT '?", "SELECT '?", 0);
    expect("SELECT /* ?", "SELECT /* ?", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placeholders),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
