/* bench/graphql_parse.c: parse + validate of graphql-js's standard
 * introspection query (getIntrospectionQuery(), default options) against
 * the StreamHub schema; the median of many runs.
 *
 * usage: graphql_parse [--quick]
 * Prints one JSON object a line: {"bench","metric","value","unit"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graphql/graphql_int.h"

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

#include "../tests/common/introspection_query.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void emit(const char *metric, json_object *value, const char *unit)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "bench", json_object_new_string(
                               "graphql_parse"));
    json_object_object_add(o, "metric", json_object_new_string(metric));
    json_object_object_add(o, "value", value);
    json_object_object_add(o, "unit", json_object_new_string(unit));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One parse + validate; aborts when the query is not valid. */
static void once(const struct sh__gql_schema *s,
                 const struct sh__gql_limits *lim)
{
    struct sh__gql_errors errs = { 0 };
    struct sh__gql_doc *doc = NULL;

    if (sh__gql_parse(introspection_query, sizeof introspection_query - 1,
                      lim, &doc, &errs) != SH_OK ||
        sh__gql_validate(s, doc, &errs) != SH_OK) {
        fprintf(stderr, "graphql_parse: %s\n",
                errs.head ? errs.head->message : "out of memory");
        exit(1);
    }
    sh__gql_doc_free(doc);
}

int main(int argc, char **argv)
{
    struct sh__gql_schema *s = NULL;
    struct sh__gql_limits lim;
    char eb[256] = "";
    int runs = 20000;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            runs = 1000;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    emit("nproc", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)),
         "cores");
    emit("build_type", json_object_new_string(SH_BENCH_BUILDTYPE), "");

    double t0 = now_us();
    if (sh__gql_schema_new(&s, eb, sizeof eb) != SH_OK) {
        fprintf(stderr, "graphql_parse: %s\n", eb);
        return 1;
    }
    emit("schema_build_us", json_object_new_double(now_us() - t0), "us");
    sh__gql_limits_default(&lim);

    double *t = malloc((size_t)runs * sizeof *t);
    if (t == NULL)
        return 1;
    for (int i = 0; i < runs / 10; i++)     /* warm up */
        once(s, &lim);
    for (int i = 0; i < runs; i++) {
        double a = now_us();
        once(s, &lim);
        t[i] = now_us() - a;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    emit("parse_validate_introspection_us",
         json_object_new_double(t[runs / 2]), "us");
    emit("parse_validate_introspection_p99_us",
         json_object_new_double(t[runs * 99 / 100]), "us");
    free(t);
    sh__gql_schema_free(s);
    return 0;
}
