/* tests/unit/test_services_ready.c: the hub's readiness check
 * (services/ready.c) through a real hub (in-memory store, local bus).  The
 * failures are made by hiding the store or the bus from the hub for one
 * call, which is what the check sees when either is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/hub_int.h"

static int setup(void **state)
{
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", "sqlite::memory:", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(c, "log-level", "error", err, sizeof err),
                     SH_OK);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK) {
        print_error("hub: %s\n", err);
        sh_config_free(c);
        return -1;
    }
    *state = hub;
    return 0;
}

static int teardown(void **state)
{
    sh_hub_close(*state);
    return 0;
}

static void test_ready_when_store_and_bus_answer(void **state)
{
    sh_hub_t *hub = *state;
    char err[128];

    memset(err, 'x', sizeof err);
    assert_int_equal(sh__hub_ready(hub, err, sizeof err), SH_OK);
    assert_string_equal(err, "ready");
    /* Every call checks again; no state is left behind. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(sh__hub_ready(hub, NULL, 0), SH_OK);
}

static void test_ready_errbuf_edges(void **state)
{
    sh_hub_t *hub = *state;
    char one[1] = { 'x' }, two[2] = { 'x', 'x' };

    assert_int_equal(sh__hub_ready(hub, one, sizeof one), SH_OK);
    assert_int_equal(one[0], '\0');
    assert_int_equal(sh__hub_ready(hub, two, sizeof two), SH_OK);
    assert_string_equal(two, "r");
    /* A length of 0 must not touch the buffer. */
    assert_int_equal(sh__hub_ready(hub, one + 0, 0), SH_OK);
}

static void test_ready_null_hub(void **state)
{
    char err[64];

    (void)state;
    assert_int_equal(sh__hub_ready(NULL, err, sizeof err), SH_EINVAL);
    assert_non_null(strstr(err, "NULL"));
    assert_int_equal(sh__hub_ready(NULL, NULL, 0), SH_EINVAL);
}

static void test_ready_store_gone(void **state)
{
    sh_hub_t *hub = *state;
    struct sh__store *st = hub->store;
    char err[128];
    sh_err_t rc;

    hub->store = NULL;
    rc = sh__hub_ready(hub, err, sizeof err);
    hub->store = st;
    assert_int_equal(rc, SH_ESTORE);
    assert_true(strncmp(err, "store: ", 7) == 0);
    assert_null(strstr(err, "bus: "));
}

static void test_ready_bus_gone(void **state)
{
    sh_hub_t *hub = *state;
    struct sh__bus *bus = hub->bus;
    char err[128];
    sh_err_t rc;

    hub->bus = NULL;
    rc = sh__hub_ready(hub, err, sizeof err);
    hub->bus = bus;
    assert_int_equal(rc, SH_EBUS);
    assert_true(strncmp(err, "bus: ", 5) == 0);
}

static void test_ready_both_gone_names_both(void **state)
{
    sh_hub_t *hub = *state;
    struct sh__store *st = hub->store;
    struct sh__bus *bus = hub->bus;
    char err[128], tiny[12];
    sh_err_t rc, rc2;

    hub->store = NULL;
    hub->bus = NULL;
    rc = sh__hub_ready(hub, err, sizeof err);
    rc2 = sh__hub_ready(hub, tiny, sizeof tiny);
    hub->store = st;
    hub->bus = bus;
    /* The store wins the code; the text names both. */
    assert_int_equal(rc, SH_ESTORE);
    assert_non_null(strstr(err, "store: "));
    assert_non_null(strstr(err, "; bus: "));
    assert_int_equal(rc2, SH_ESTORE);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);   /* cut, terminated */
    assert_int_equal(sh__hub_ready(hub, err, sizeof err), SH_OK);
}

static void test_ready_refused_while_closing(void **state)
{
    sh_hub_t *hub = *state;
    char err[64];
    sh_err_t rc;

    atomic_store(&hub->closing, true);
    rc = sh__hub_ready(hub, err, sizeof err);
    atomic_store(&hub->closing, false);
    assert_int_equal(rc, SH_ECANCELED);
    assert_non_null(strstr(err, "closing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_when_store_and_bus_answer),
        cmocka_unit_test(test_ready_errbuf_edges),
        cmocka_unit_test(test_ready_null_hub),
        cmocka_unit_test(test_ready_store_gone),
        cmocka_unit_test(test_ready_bus_gone),
        cmocka_unit_test(test_ready_both_gone_names_both),
        cmocka_unit_test(test_ready_refused_while_closing),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
