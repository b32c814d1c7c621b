/* bench/store_ops.c: store round trips per second through the public API,
 * on any store, to put the backends side by side.
 *
 * One standalone hub on --store URI (default: a temporary SQLite file);
 * --threads threads (default 1) each run, for --ops operations:
 *   read   sh_user_get() of a registered user (one SELECT);
 *   write  sh_follow() then sh_unfollow() of another user (each a
 *          transaction of a few statements), counted as two operations.
 * Output: one JSON object per line,
 *   {"bench":"store_ops","store":…,"metric":…,"value":…,"unit":…}
 * Flags: --store URI, --ops N, --threads N, --pool-size N, --quick.
 * Exit status 0 when every operation succeeded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/follows.h"
#include "streamhub/users.h"

#define MAX_THREADS 32

struct run {
    sh_hub_t *hub;
    char ids[MAX_THREADS + 1][40];     /* [0] is followed by everyone */
    int ops;
    bool write;
    atomic_int failures;
};

struct worker {
    struct run *r;
    int k;
    pthread_t t;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    char err[SH_ERRBUF_SIZE];

    for (int i = 0; i < r->ops; i++) {
        if (r->write) {
            if (sh_follow(r->hub, r->ids[w->k], r->ids[0], NULL, err,
                          sizeof err) != SH_OK ||
                sh_unfollow(r->hub, r->ids[w->k], r->ids[0], NULL, err,
                            sizeof err) != SH_OK) {
                fprintf(stderr, "store_ops: %s\n", err);
                atomic_fetch_add(&r->failures, 1);
            }
            i++;
        } else {
            sh_user_t *u = NULL;

            if (sh_user_get(r->hub, NULL, r->ids[0], &u, err,
                            sizeof err) != SH_OK) {
                fprintf(stderr, "store_ops: %s\n", err);
                atomic_fetch_add(&r->failures, 1);
            }
            sh_user_free(u);
        }
    }
    return NULL;
}

static double phase(struct run *r, int threads, bool write)
{
    struct worker w[MAX_THREADS];
    double t0;

    r->write = write;
    t0 = now_s();
    for (int k = 0; k < threads; k++) {
        w[k].r = r;
        w[k].k = k + 1;
        pthread_create(&w[k].t, NULL, work, &w[k]);
    }
    for (int k = 0; k < threads; k++)
        pthread_join(w[k].t, NULL);
    return (double)r->ops * threads / (now_s() - t0);
}

int main(int argc, char **argv)
{
    const char *store = NULL, *pool = "4";
    char path[256] = "", uri[300], err[SH_ERRBUF_SIZE];
    int threads = 1;
    struct run r;
    sh_config_t *conf = NULL;
    unsigned salt = (unsigned)time(NULL) ^ (unsigned)getpid();

    memset(&r, 0, sizeof r);
    r.ops = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            store = argv[++i];
        else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
            r.ops = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pool-size") == 0 && i + 1 < argc)
            pool = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            r.ops = 1000;
        else {
            fprintf(stderr, "usage: store_ops [--store URI] [--ops N] "
                    "[--threads N] [--pool-size N] [--quick]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS || r.ops < 2)
        return 2;
    if (store == NULL) {
        snprintf(path, sizeof path, "%s/store_ops_%u.db",
                 getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp", salt);
        snprintf(uri, sizeof uri, "sqlite:%s", path);
        store = uri;
    }
    if (sh_config_new(&conf) != SH_OK ||
        sh_config_set(conf, "store", store, err, sizeof err) != SH_OK ||
        sh_config_set(conf, "store.pool-size", pool, err, sizeof err) !=
            SH_OK ||
        sh_config_set(conf, "log-level", "error", err, sizeof err) != SH_OK ||
        sh_hub_open(conf, &r.hub, err, sizeof err) != SH_OK) {
        fprintf(stderr, "store_ops: %s\n", err);
        return 1;
    }
    for (int k = 0; k <= threads; k++) {
        char name[32], email[64];
        sh_auth_t *a = NULL;

        snprintf(name, sizeof name, "b%06x_%d", salt & 0xffffffu, k);
        snprintf(email, sizeof email, "%s@example.com", name);
        if (sh_auth_register(r.hub, name, email, "correct horse battery",
                             &a, err, sizeof err) != SH_OK) {
            fprintf(stderr, "store_ops: register: %s\n", err);
            return 1;
        }
        snprintf(r.ids[k], sizeof r.ids[k], "%s", sh_user_id(sh_auth_user(a)));
        sh_auth_free(a);
    }
    {
        const char *kind = strncmp(store, "sqlite:", 7) == 0 ? "sqlite"
                                                             : "postgres";
        double rd = phase(&r, threads, false);
        double wr = phase(&r, threads, true);

        printf("{\"bench\":\"store_ops\",\"store\":\"%s\",\"threads\":%d,"
               "\"metric\":\"user_get_per_s\",\"value\":%.0f,"
               "\"unit\":\"ops/s\",\"build\":\"%s\"}\n", kind, threads, rd,
               SH_BENCH_BUILDTYPE);
        printf("{\"bench\":\"store_ops\",\"store\":\"%s\",\"threads\":%d,"
               "\"metric\":\"follow_unfollow_per_s\",\"value\":%.0f,"
               "\"unit\":\"ops/s\",\"build\":\"%s\"}\n", kind, threads, wr,
               SH_BENCH_BUILDTYPE);
    }
    sh_hub_close(r.hub);
    if (path[0] != '\0') {
        char side[300];

        unlink(path);
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    return atomic_load(&r.failures) == 0 ? 0 : 1;
}
