/* bench/graphql_http_seed.c: the data of the graphql_http benchmark.
 *
 * Creates, through the public C API only, the rows both servers of
 * bench/run_graphql.sh answer from:
 *  - --users users (default 200), registered with sh_auth_register();
 *  - the first --live of them (default 100) live, each with a title, one
 *    of eight categories and a distinct viewer count (so that the order of
 *    liveStreams, most viewers first, has no ties to break);
 *  - follows: user i follows broadcasters (3 i + 7 k) mod live for
 *    k < i mod 7, so that follower counts differ from one broadcaster to
 *    the next.
 * into the SQLite file --db (which streamhubd then opens with
 * --store sqlite:FILE), and writes the same rows, with their ids, as one
 * JSON document to --dump, from which the graphql-js peer fills its own
 * SQLite file (bench/peers/graphql_peer.mjs --seed).
 *
 * usage: graphql_http_seed --db FILE --dump FILE [--users N] [--live N]
 * Exit status 0 on success, 1 on any failure (with a message on stderr),
 * 2 for a usage error.  --db must not exist yet.
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamhub/streamhub.h"

#define MAX_USERS 10000
#define MAX_THREADS 16

static const char *const categories[] = {
    "Just Chatting", "Music", "Chess", "Speedrunning",
    "Art", "Science & Technology", "Retro", "Sports",
};
#define NCATEGORIES (sizeof categories / sizeof categories[0])

static void die(const char *what, sh_err_t rc, const char *why)
{
    fprintf(stderr, "graphql_http_seed: %s: %s%s%s\n", what,
            sh_strerror(rc), why != NULL && why[0] != '\0' ? ": " : "",
            why != NULL ? why : "");
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: graphql_http_seed --db FILE --dump FILE "
                    "[--users N] [--live N]\n");
    exit(2);
}

static long parse_count(const char *s, long lo, long hi)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

/* The viewer count of broadcaster @b: distinct for b < 1000 (37 and 1000
 * are coprime), 5..9995. */
static long viewers_of(long b)
{
    return 10 * ((b * 37) % 1000) + 5;
}

/* Shared by the registering threads.  @locks mu (next, users). */
struct reg {
    sh_hub_t *hub;
    char (*ids)[64];     /* ids[i] written only by the thread of user i */
    long nusers, nlive;
    json_object *users;  /* the dump's array */
    long next;           /* the next user to register */
    pthread_mutex_t mu;
};

static void *register_users(void *arg)
{
    struct reg *r = arg;
    char err[SH_ERRBUF_SIZE];

    for (;;) {
        char name[32], email[64];
        sh_auth_t *a = NULL;
        const sh_user_t *u;
        json_object *o;
        sh_err_t rc;
        long i;

        pthread_mutex_lock(&r->mu);
        i = r->next++;
        pthread_mutex_unlock(&r->mu);
        if (i >= r->nusers)
            return NULL;
        snprintf(name, sizeof name, "%s_%03ld",
                 i < r->nlive ? "caster" : "viewer", i);
        snprintf(email, sizeof email, "%s@bench.example", name);
        rc = sh_auth_register(r->hub, name, email, "bench-password-1", &a,
                              err, sizeof err);
        if (rc != SH_OK)
            die("register", rc, err);
        u = sh_auth_user(a);
        snprintf(r->ids[i], sizeof r->ids[i], "%s", sh_user_id(u));
        o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(r->ids[i]));
        json_object_object_add(o, "username",
                               json_object_new_string(sh_user_username(u)));
        json_object_object_add(o, "createdAt",
                               json_object_new_int64(sh_user_created_at_ms(u)));
        pthread_mutex_lock(&r->mu);
        json_object_array_add(r->users, o);
        pthread_mutex_unlock(&r->mu);
        sh_auth_free(a);
    }
}

static int by_username(const void *a, const void *b)
{
    json_object *const *x = a, *const *y = b;
    json_object *nx = NULL, *ny = NULL;

    json_object_object_get_ex(*x, "username", &nx);
    json_object_object_get_ex(*y, "username", &ny);
    return strcmp(json_object_get_string(nx), json_object_get_string(ny));
}

int main(int argc, char **argv)
{
    const char *db = NULL, *dump = NULL;
    long nusers = 200, nlive = 100;
    char err[SH_ERRBUF_SIZE], val[600];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    sh_err_t rc;
    char (*ids)[64];
    json_object *root, *users, *follows, *streams;
    struct reg reg;
    pthread_t th[MAX_THREADS];
    long nthreads;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--db") == 0)
            db = argv[++i];
        else if (strcmp(argv[i], "--dump") == 0)
            dump = argv[++i];
        else if (strcmp(argv[i], "--users") == 0)
            nusers = parse_count(argv[++i], 1, MAX_USERS);
        else if (strcmp(argv[i], "--live") == 0)
            nlive = parse_count(argv[++i], 0, MAX_USERS);
        else
            usage();
    }
    if (db == NULL || dump == NULL || nlive > nusers)
        usage();
    if (access(db, F_OK) == 0) {
        fprintf(stderr, "graphql_http_seed: %s exists already\n", db);
        return 1;
    }

    rc = sh_config_new(&conf);
    if (rc != SH_OK)
        die("config", rc, NULL);
    snprintf(val, sizeof val, "sqlite:%s", db);
    if ((rc = sh_config_set(conf, "store", val, err, sizeof err)) != SH_OK ||
        (rc = sh_config_set(conf, "log-level", "warn", err,
                            sizeof err)) != SH_OK ||
        (rc = sh_config_set(conf, "jwt-secret",
                            "graphql-http-bench-secret-0123456789", err,
                            sizeof err)) != SH_OK)
        die("config", rc, err);
    rc = sh_hub_open(conf, &hub, err, sizeof err);
    if (rc != SH_OK)
        die("hub", rc, err);   /* the config is still ours: exit frees it */

    ids = calloc((size_t)nusers, sizeof *ids);
    root = json_object_new_object();
    users = json_object_new_array();
    follows = json_object_new_array();
    streams = json_object_new_array();
    if (ids == NULL || root == NULL || users == NULL || follows == NULL ||
        streams == NULL)
        die("alloc", SH_ENOMEM, NULL);
    json_object_object_add(root, "users", users);
    json_object_object_add(root, "follows", follows);
    json_object_object_add(root, "streams", streams);

    /* Registration is one Argon2id hash per user: one thread per core. */
    reg.hub = hub;
    reg.ids = ids;
    reg.nusers = nusers;
    reg.nlive = nlive;
    reg.users = users;
    reg.next = 0;
    if (pthread_mutex_init(&reg.mu, NULL) != 0)
        die("mutex", SH_ENOMEM, NULL);
    nthreads = sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    for (long t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, register_users, &reg) != 0)
            die("thread", SH_ENOMEM, NULL);
    for (long t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&reg.mu);
    /* The dump lists users in index order, whatever the threads did. */
    json_object_array_sort(users, by_username);

    for (long i = 0; i < nusers && nlive > 0; i++) {
        for (long k = 0; k < i % 7; k++) {
            long b = (3 * i + 7 * k) % nlive;
            bool created = false;
            json_object *o;

            if (b == i)
                continue;
            rc = sh_follow(hub, ids[i], ids[b], &created, err, sizeof err);
            if (rc != SH_OK)
                die("follow", rc, err);
            if (!created)
                continue;   /* (3 i + 7 k) mod live repeated */
            o = json_object_new_object();
            json_object_object_add(o, "followerId",
                                   json_object_new_string(ids[i]));
            json_object_object_add(o, "followedId",
                                   json_object_new_string(ids[b]));
            json_object_array_add(follows, o);
        }
    }

    for (long b = 0; b < nlive; b++) {
        char title[96];
        const char *cat = categories[(size_t)b % NCATEGORIES];
        const char *started;
        sh_stream_t *s = NULL;
        json_object *o = json_object_new_object();

        snprintf(title, sizeof title, "%s with caster %03ld: day %ld",
                 cat, b, 1 + b % 30);
        rc = sh_stream_start(hub, ids[b], title, cat, &s, err, sizeof err);
        if (rc != SH_OK)
            die("start stream", rc, err);
        rc = sh_stream_set_viewers(hub, sh_stream_id(s), viewers_of(b), err,
                                   sizeof err);
        if (rc != SH_OK)
            die("viewers", rc, err);
        started = sh_stream_started_at(s);
        json_object_object_add(o, "id", json_object_new_string(
                                   sh_stream_id(s)));
        json_object_object_add(o, "broadcasterId",
                               json_object_new_string(ids[b]));
        json_object_object_add(o, "title", json_object_new_string(title));
        json_object_object_add(o, "category", json_object_new_string(cat));
        json_object_object_add(o, "viewerCount",
                               json_object_new_int64(viewers_of(b)));
        json_object_object_add(o, "startedAt", started != NULL ?
                               json_object_new_string(started) : NULL);
        json_object_array_add(streams, o);
        sh_stream_free(s);
    }
    sh_hub_close(hub);

    if (json_object_to_file_ext(dump, root, JSON_C_TO_STRING_PLAIN) != 0) {
        fprintf(stderr, "graphql_http_seed: %s: %s\n", dump,
                json_util_get_last_err());
        return 1;
    }
    fprintf(stderr, "graphql_http_seed: %ld users, %zu follows, %ld live "
            "streams\n", nusers, json_object_array_length(follows), nlive);
    json_object_put(root);
    free(ids);
    return 0;
}
