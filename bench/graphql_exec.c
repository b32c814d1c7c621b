/* bench/graphql_exec.c: one GraphQL request through sh_graphql_execute()
 * (parse, validate, execute, JSON out) on a sqlite::memory: hub holding 20
 * live streams of 20 broadcasters:
 *   liveStreams(first: 20) { edges { node { id title viewerCount
 *     broadcaster { username followerCount } } } }
 * and the execution of graphql-js's standard introspection query (its
 * parse + validate alone is bench/graphql_parse).  Medians of many runs.
 *
 * usage: graphql_exec [--quick]
 * Prints one JSON object a line: {"bench","metric","value","unit"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamhub/streamhub.h"

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

static const char live_query[] =
    "{ liveStreams(first: 20) { edges { node { id title viewerCount "
    "broadcaster { username followerCount } } } } }";

/* graphql-js v16's getIntrospectionQuery(), shortened to its fields. */
static const char intro_query[] =
    "query IntrospectionQuery { __schema { queryType { name } mutationType "
    "{ name } subscriptionType { name } types { ...FullType } directives { "
    "name description locations args { ...InputValue } } } } "
    "fragment FullType on __Type { kind name description fields("
    "includeDeprecated: true) { name description args { ...InputValue } "
    "type { ...TypeRef } isDeprecated deprecationReason } inputFields { "
    "...InputValue } interfaces { ...TypeRef } enumValues("
    "includeDeprecated: true) { name description isDeprecated "
    "deprecationReason } possibleTypes { ...TypeRef } } "
    "fragment InputValue on __InputValue { name description type { "
    "...TypeRef } defaultValue } "
    "fragment TypeRef on __Type { kind name ofType { kind name of"
    "Type { kind name ofType { kind name ofType { kind name ofTyp"
    "e { kind name ofType { kind name ofType { kind name }}}}}}} "
    "}";

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median_us(sh_hub_t *hub, const char *q, int runs)
{
    double *t = calloc((size_t)runs, sizeof *t), m;
    sh_graphql_request_t *req = NULL;

    sh_graphql_request_new(&req);
    sh_graphql_request_set_query(req, q, strlen(q));
    for (int i = 0; i < runs; i++) {
        char *resp = NULL;
        int st = 0;
        double t0 = now_us();
        if (sh_graphql_execute(hub, req, &resp, NULL, &st, NULL, 0) != SH_OK
            || st != 200 || strstr(resp, "\"errors\"") != NULL) {
            fprintf(stderr, "graphql_exec: bad response: %s\n",
                    resp != NULL ? resp : "(none)");
            exit(1);
        }
        t[i] = now_us() - t0;
        sh_graphql_free(resp);
    }
    sh_graphql_request_free(req);
    qsort(t, (size_t)runs, sizeof *t, cmp);
    m = t[runs / 2];
    free(t);
    return m;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 50 : 1000;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sh_config_t *c = NULL;
    sh_hub_t *hub = NULL;
    char err[SH_ERRBUF_SIZE];

    sh_config_new(&c);
    sh_config_set(c, "store", "sqlite::memory:", err, sizeof err);
    sh_config_set(c, "log-level", "error", err, sizeof err);
    sh_config_set(c, "jwt-secret", "bench-secret-0123456789abcdef0123456",
                  err, sizeof err);
    if (sh_hub_open(c, &hub, err, sizeof err) != SH_OK) {
        fprintf(stderr, "graphql_exec: %s\n", err);
        return 1;
    }
    for (int i = 0; i < 20; i++) {
        char name[32], email[64], title[32];
        sh_auth_t *a = NULL;
        snprintf(name, sizeof name, "caster%02d", i);
        snprintf(email, sizeof email, "%s@example.com", name);
        snprintf(title, sizeof title, "stream %d", i);
        if (sh_auth_register(hub, name, email, "password123", &a, err,
                             sizeof err) != SH_OK ||
            sh_stream_start(hub, sh_user_id(sh_auth_user(a)), title, NULL,
                            NULL, err, sizeof err) != SH_OK) {
            fprintf(stderr, "graphql_exec: %s\n", err);
            return 1;
        }
        sh_auth_free(a);
    }
    printf("{\"bench\":\"graphql_exec\",\"metric\":\"liveStreams_query_us\","
           "\"value\":%.1f,\"unit\":\"us\",\"streams\":20,\"cores\":%ld,"
           "\"build\":\"%s\"}\n", median_us(hub, live_query, runs), cores,
           SH_BENCH_BUILDTYPE);
    printf("{\"bench\":\"graphql_exec\",\"metric\":\"introspection_exec_us\","
           "\"value\":%.1f,\"unit\":\"us\",\"cores\":%ld,\"build\":\"%s\"}\n",
           median_us(hub, intro_query, runs / 4 + 1), cores,
           SH_BENCH_BUILDTYPE);
    sh_hub_close(hub);
    return 0;
}
