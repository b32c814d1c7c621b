/* tests/unit/test_core_metrics.c: the Prometheus registry and its text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics_int.h"

static char *render(struct sh__metrics *reg)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(sh__metrics_render(reg, &text, &len), SH_OK);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_counter_and_labels(void **state)
{
    struct sh__metrics *reg = NULL;
    struct sh__metric *m;
    char *text;

    (void)state;
    assert_int_equal(sh__metrics_new(&reg), SH_OK);
    m = sh__metrics_add(reg, "streamhub_http_requests_total",
                        SH__METRIC_COUNTER, "HTTP requests.", "route,status",
                        NULL, 0);
    assert_non_null(m);
    /* Same name, same type: the same family. */
    assert_ptr_equal(sh__metrics_add(reg, "streamhub_http_requests_total",
                                     SH__METRIC_COUNTER, "x", "route,status",
                                     NULL, 0), m);
    assert_null(sh__metrics_add(reg, "streamhub_http_requests_total",
                                SH__METRIC_GAUGE, "x", "", NULL, 0));
    sh__series_add(sh__metric_series(m, "/graphql,200"), 2);
    sh__series_add(sh__metric_series(m, "/graphql,200"), 1);
    sh__series_add(sh__metric_series(m, "/a\"b\\c,404"), 1);
    assert_null(sh__metric_series(m, "only-one"));
    text = render(reg);
    assert_non_null(strstr(text, "# TYPE streamhub_http_requests_total "
                                 "counter\n"));
    assert_non_null(strstr(text, "streamhub_http_requests_total{route=\""
                                 "/graphql\",status=\"200\"} 3\n"));
    assert_non_null(strstr(text, "route=\"/a\\\"b\\\\c\",status=\"404\"} 1"));
    free(text);
    sh__metrics_free(reg);
}

static void test_histogram_buckets_cumulative(void **state)
{
    struct sh__metrics *reg = NULL;
    static const double b[] = { 0.1, 1 };
    struct sh__series *s;
    char *text;

    (void)state;
    assert_int_equal(sh__metrics_new(&reg), SH_OK);
    s = sh__metric_series(sh__metrics_add(reg, "lat_seconds",
                                          SH__METRIC_HISTOGRAM, "Latency.",
                                          "", b, 2), "");
    sh__series_observe(s, 0.05);
    sh__series_observe(s, 0.1);   /* le is inclusive */
    sh__series_observe(s, 0.5);
    sh__series_observe(s, 7);
    text = render(reg);
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_count 4\n"));
    assert_non_null(strstr(text, "lat_seconds_sum 7.65"));
    free(text);
    sh__metrics_free(reg);
}

static double forty_two(void *arg)
{
    (void)arg;
    return 42;
}

static void test_callback_gauge(void **state)
{
    struct sh__metrics *reg = NULL;
    char *text;

    (void)state;
    assert_int_equal(sh__metrics_new(&reg), SH_OK);
    assert_int_equal(sh__metrics_add_callback(reg, "queue_depth", "Depth.",
                                              forty_two, NULL), SH_OK);
    text = render(reg);
    assert_non_null(strstr(text, "# TYPE queue_depth gauge\nqueue_depth 42\n"));
    free(text);
    sh__metrics_free(reg);
}

static void *adder(void *arg)
{
    for (int i = 0; i < 100000; i++)
        sh__series_add(arg, 1);
    return NULL;
}

static void test_concurrent_adds_are_exact(void **state)
{
    struct sh__metrics *reg = NULL;
    struct sh__series *s;
    pthread_t t[4];

    (void)state;
    assert_int_equal(sh__metrics_new(&reg), SH_OK);
    s = sh__metric_series(sh__metrics_add(reg, "c_total", SH__METRIC_COUNTER,
                                          "C.", "", NULL, 0), "");
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, s);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(sh__series_value(s) == 400000.0);
    sh__metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_labels),
        cmocka_unit_test(test_histogram_buckets_cumulative),
        cmocka_unit_test(test_callback_gauge),
        cmocka_unit_test(test_concurrent_adds_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
