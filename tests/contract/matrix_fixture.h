/* tests/contract/matrix_fixture.h: the store of a contract test run, for
 * the store x bus matrix of tests/contract/meson.build (the bus is read
 * from STREAMHUB_TEST_BUS alike, by the bus's own fixture).
 *
 * STREAMHUB_TEST_STORE names the store (default sqlite::memory:).  A value
 * `$NAME` means the value of the environment variable NAME
 * (scripts/with-services.sh sets STREAMHUB_TEST_PG_URI); when NAME is
 * unset the test exits 77 (skipped, which CI turns into a failure).
 *
 * Every hub a test opens on PostgreSQL gets a fresh, empty schema (tests
 * count rows): mx_store() creates a uniquely named schema through libpq
 * and returns the URI with options=-csearch_path=<schema>, so that the
 * store migrates into it; the schemas are dropped when the test process
 * that made them exits.  A caller that reopens a store passes the same
 * string again.  SQLite's :memory: is fresh per hub already.
 */
#ifndef MATRIX_FIXTURE_H
#define MATRIX_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MX_MAX_SCHEMAS 256

static struct {
    char *uris[MX_MAX_SCHEMAS];     /* malloc'd, freed at exit */
    char names[MX_MAX_SCHEMAS][48];
    int n;
    pid_t owner;                    /* forked children drop nothing */
} mx_state;

/* The value of @var, `$NAME` resolved; exits 77 when NAME is unset. */
static inline const char *mx_env(const char *var, const char *dflt)
{
    const char *v = getenv(var);
    const char *r;

    if (v == NULL || v[0] == '\0')
        return dflt;
    if (v[0] != '$')
        return v;
    r = getenv(v + 1);
    if (r == NULL || r[0] == '\0') {
        fprintf(stderr, "%s=%s but %s is unset: run under "
                "scripts/with-services.sh\n", var, v, v + 1);
        exit(77);
    }
    return r;
}

static inline bool mx_is_pg(void)
{
    const char *s = mx_env("STREAMHUB_TEST_STORE", "sqlite::memory:");

    return strncmp(s, "postgres://", 11) == 0 ||
           strncmp(s, "postgresql://", 13) == 0;
}

static void mx_drop_all(void)
{
    const char *base;
    PGconn *pg;

    if (mx_state.n == 0 || getpid() != mx_state.owner)
        return;
    base = mx_env("STREAMHUB_TEST_STORE", "");
    pg = PQconnectdb(base);
    for (int i = 0; i < mx_state.n; i++) {
        char sql[96];

        if (PQstatus(pg) == CONNECTION_OK) {
            snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE",
                     mx_state.names[i]);
            PQclear(PQexec(pg, sql));
        }
        free(mx_state.uris[i]);
    }
    PQfinish(pg);
    mx_state.n = 0;
}

/* The store for one new hub: the configured one, on PostgreSQL in a new
 * empty schema.  Borrowed until the process exits. */
static inline const char *mx_store(void)
{
    const char *base = mx_env("STREAMHUB_TEST_STORE", "sqlite::memory:");
    char sql[96], *uri;
    PGconn *pg;
    PGresult *res;
    size_t len;
    int i = mx_state.n;

    if (!mx_is_pg())
        return base;
    if (i >= MX_MAX_SCHEMAS) {
        fprintf(stderr, "matrix fixture: more than %d stores\n",
                MX_MAX_SCHEMAS);
        abort();
    }
    if (mx_state.owner == 0) {
        mx_state.owner = getpid();
        atexit(mx_drop_all);
    }
    snprintf(mx_state.names[i], sizeof mx_state.names[i],
             "sh_test_%ld_%d_%x", (long)getpid(), i,
             (unsigned)time(NULL) ^ (unsigned)rand());
    pg = PQconnectdb(base);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "matrix fixture: %s", PQerrorMessage(pg));
        abort();
    }
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", mx_state.names[i]);
    res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "matrix fixture: %s", PQerrorMessage(pg));
        abort();
    }
    PQclear(res);
    PQfinish(pg);
    len = strlen(base) + 64;
    uri = malloc(len);
    if (uri == NULL)
        abort();
    snprintf(uri, len, "%s%coptions=-csearch_path%%3D%s", base,
             strchr(base, '?') != NULL ? '&' : '?', mx_state.names[i]);
    mx_state.uris[i] = uri;
    mx_state.n++;
    return uri;
}

#endif
