/* bench/notify_fanout.c: going live with N followers.
 *
 * Setup (not timed): a hub on a temporary SQLite file (WAL), one
 * broadcaster registered through the public API, N followers and their
 * follows inserted with sqlite3 directly in one transaction.
 *
 * Timed: sh_stream_start(), which stores the stream and one notification
 * per follower (one set-based statement) and publishes stream.live and the
 * N `notification` events.  Afterwards every follower's user:<id> channel
 * is checked to hold exactly one event (the publish count) and the
 * notifications table exactly N rows.
 *
 * Floor, measured in the same run: a copy of the database taken before
 * the timed call, and on it, through sqlite3 alone with the hub's pragmas,
 * the bare INSERT ... SELECT of the same N rows (random hex ids).  The
 * ratio go-live / floor is what the library adds on top of the database.
 *
 * PostgreSQL (--store postgres://...): the URI names a server and a
 * database to connect to; each run makes its own database there (and
 * drops it after).  The followers and their follows are bulk-loaded with
 * COPY through libpq and ANALYZEd; the hub is then closed, the database
 * copied (CREATE DATABASE ... TEMPLATE) for the floor, and the hub opened
 * again for the timed call.  The floor is the bare INSERT ... SELECT of
 * the same N rows on the copy (gen_random_uuid() ids, the partitioned
 * notifications table with its indexes, in one transaction).
 *
 * usage: notify_fanout [--followers N] [--quick] [--store postgres://...]
 * Prints one JSON object per line: {"bench","metric","value","unit"}.
 */
#include <json-c/json.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/streams.h"

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void emit(const char *metric, json_object *value, const char *unit)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "bench", json_object_new_string(
                               "notify_fanout"));
    json_object_object_add(o, "metric", json_object_new_string(metric));
    json_object_object_add(o, "value", value);
    json_object_object_add(o, "unit", json_object_new_string(unit));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "notify_fanout: %s: %s\n", what, why);
    exit(1);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die(sql, msg != NULL ? msg : sqlite3_errmsg(db));
}

/* Insert @n users and their follows of @bc in one transaction. */
static void populate(const char *path, const char *bc, long n)
{
    sqlite3 *db;
    sqlite3_stmt *u, *f;
    char id[40], name[32], email[64];

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("open", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    exec_sql(db, "BEGIN IMMEDIATE");
    if (sqlite3_prepare_v2(db, "INSERT INTO users (id, username, "
            "username_lc, email, password_hash, role, created_at) VALUES "
            "(?, ?, ?, ?, 'x', 'VIEWER', 0)", -1, &u, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO follows (follower_id, "
            "followed_id, created_at) VALUES (?, ?, ?)", -1, &f,
            NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(db));
    for (long i = 0; i < n; i++) {
        /* i < 2^48 (checked by the flag parser's bound) keeps 12 digits. */
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012lx",
                 (unsigned long)i & 0xffffffffffffUL);
        snprintf(name, sizeof name, "fan%ld", i);
        snprintf(email, sizeof email, "fan%ld@example.com", i);
        sqlite3_bind_text(u, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 4, email, -1, SQLITE_STATIC);
        if (sqlite3_step(u) != SQLITE_DONE)
            die("insert user", sqlite3_errmsg(db));
        sqlite3_reset(u);
        sqlite3_bind_text(f, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(f, 2, bc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(f, 3, i);
        if (sqlite3_step(f) != SQLITE_DONE)
            die("insert follow", sqlite3_errmsg(db));
        sqlite3_reset(f);
    }
    sqlite3_finalize(u);
    sqlite3_finalize(f);
    exec_sql(db, "COMMIT");
    exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
}

static void copy_db(const char *from, const char *to)
{
    sqlite3 *src, *dst;
    sqlite3_backup *b;

    if (sqlite3_open(from, &src) != SQLITE_OK ||
        sqlite3_open(to, &dst) != SQLITE_OK)
        die("open copy", "cannot open");
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (b == NULL)
        die("backup", sqlite3_errmsg(dst));
    sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    sqlite3_close(src);
    sqlite3_close(dst);
}

/* The floor: the bare INSERT ... SELECT on the copy, hub pragmas. */
static double floor_ms(const char *path, const char *bc, long *rows)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    double t0, t1;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("open floor", sqlite3_errmsg(db));
    exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                 "PRAGMA foreign_keys=ON");
    if (sqlite3_prepare_v2(db, "INSERT INTO notifications (id, user_id, "
            "type, data, read, created_at) SELECT lower(hex(randomblob(16))),"
            " follower_id, 'STREAM_LIVE', ?, 0, ? FROM follows "
            "WHERE followed_id = ?", -1, &st, NULL) != SQLITE_OK)
        die("prepare floor", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, "{\"streamId\":\"00000000-0000-4000-8000-"
                      "000000000000\",\"title\":\"bench\",\"category\":null,"
                      "\"broadcaster\":{\"id\":\"x\",\"username\":\"y\"}}",
                      -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, 1);
    sqlite3_bind_text(st, 3, bc, -1, SQLITE_STATIC);
    t0 = now_ms();
    exec_sql(db, "BEGIN IMMEDIATE");
    if (sqlite3_step(st) != SQLITE_DONE)
        die("floor insert", sqlite3_errmsg(db));
    exec_sql(db, "COMMIT");
    t1 = now_ms();
    *rows = sqlite3_changes(db);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return t1 - t0;
}

static long count_rows(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long n = -1;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM notifications", -1,
                           &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void rm_db(const char *path)
{
    char p[600];

    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* ---- PostgreSQL -------------------------------------------------------- */

/* @uri with its database replaced by @db (the path after host[:port]). */
static void pg_uri_db(const char *uri, const char *db, char *out, size_t cap)
{
    const char *host = strstr(uri, "://");
    const char *slash, *query;

    if (host == NULL)
        die("--store", "expects postgres://host[:port]/db");
    slash = strchr(host + 3, '/');
    query = strchr(host + 3, '?');
    if (slash == NULL || (query != NULL && query < slash))
        slash = query != NULL ? query : uri + strlen(uri);
    snprintf(out, cap, "%.*s/%s%s", (int)(slash - uri), uri, db,
             query != NULL ? query : "");
}

static PGconn *pg_connect(const char *uri)
{
    PGconn *pg = PQconnectdb(uri);

    if (PQstatus(pg) != CONNECTION_OK)
        die("connect", PQerrorMessage(pg));
    return pg;
}

static void pg_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK &&
        PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(pg));
    PQclear(r);
}

static long pg_count(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long n;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        die(sql, PQerrorMessage(pg));
    n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* COPY @n rows made by @row (a line of text format, '\n' ended) into
 * @table, in 1 MiB chunks. */
static void pg_copy(PGconn *pg, const char *copy_sql, long n,
                    int (*row)(char *buf, size_t cap, long i,
                               const char *bc), const char *bc)
{
    static char buf[1 << 20];
    size_t len = 0;
    PGresult *r = PQexec(pg, copy_sql);

    if (PQresultStatus(r) != PGRES_COPY_IN)
        die(copy_sql, PQerrorMessage(pg));
    PQclear(r);
    for (long i = 0; i < n; i++) {
        if (sizeof buf - len < 512) {
            if (PQputCopyData(pg, buf, (int)len) != 1)
                die("COPY", PQerrorMessage(pg));
            len = 0;
        }
        len += (size_t)row(buf + len, sizeof buf - len, i, bc);
    }
    if ((len > 0 && PQputCopyData(pg, buf, (int)len) != 1) ||
        PQputCopyEnd(pg, NULL) != 1)
        die("COPY", PQerrorMessage(pg));
    r = PQgetResult(pg);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("COPY", PQerrorMessage(pg));
    PQclear(r);
    while ((r = PQgetResult(pg)) != NULL)
        PQclear(r);
}

static int user_line(char *buf, size_t cap, long i, const char *bc)
{
    (void)bc;
    return snprintf(buf, cap, "00000000-0000-4000-8000-%012lx\tfan%ld\t"
                    "fan%ld\tfan%ld@example.com\tx\tVIEWER\t0\n",
                    (unsigned long)i & 0xffffffffffffUL, i, i, i);
}

static int follow_line(char *buf, size_t cap, long i, const char *bc)
{
    return snprintf(buf, cap, "00000000-0000-4000-8000-%012lx\t%s\t%ld\n",
                    (unsigned long)i & 0xffffffffffffUL, bc, i);
}

static sh_hub_t *pg_hub(const char *uri)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;

    /* Every follower's channel keeps its one event (the check below). */
    if (sh_config_new(&conf) != SH_OK ||
        sh_config_set(conf, "store", uri, err, sizeof err) != SH_OK ||
        sh_config_set(conf, "bus.max-idle-channels", "100000000", err,
                      sizeof err) != SH_OK ||
        sh_config_set(conf, "log-level", "error", err, sizeof err) != SH_OK)
        die("config", err);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        die("hub open", err);
    return hub;
}

/* The floor on the copy: the bare set-based INSERT ... SELECT. */
static double pg_floor_ms(const char *uri, const char *bc, int64_t now,
                          long *rows)
{
    PGconn *pg = pg_connect(uri);
    const char *params[3];
    char ts[32];
    PGresult *r;
    double t0, t1;

    snprintf(ts, sizeof ts, "%lld", (long long)now);
    params[0] = "{\"streamId\":\"00000000-0000-4000-8000-000000000000\","
                "\"title\":\"bench\",\"category\":null,\"broadcaster\":"
                "{\"id\":\"x\",\"username\":\"y\"}}";
    params[1] = ts;
    params[2] = bc;
    t0 = now_ms();
    pg_exec(pg, "BEGIN");
    r = PQexecParams(pg, "INSERT INTO notifications (id, user_id, type, "
                     "data, read, created_at) SELECT gen_random_uuid(), "
                     "follower_id, 'STREAM_LIVE', $1, 0, $2 FROM follows "
                     "WHERE followed_id = $3", 3, NULL, params, NULL, NULL,
                     0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("floor insert", PQerrorMessage(pg));
    *rows = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    pg_exec(pg, "COMMIT");
    t1 = now_ms();
    PQfinish(pg);
    return t1 - t0;
}

static int run_pg(const char *base, long n)
{
    char err[SH_ERRBUF_SIZE], db[64], copy[64], uri[512], curi[512];
    char sql[256], bc[40], ch[64];
    PGconn *admin, *pg;
    sh_hub_t *hub;
    sh_auth_t *a = NULL;
    sh_stream_t *s = NULL;
    long published = 0, floor_rows = 0, stored;
    double t0, t1, fl;

    snprintf(db, sizeof db, "sh_fanout_%ld", (long)getpid());
    snprintf(copy, sizeof copy, "sh_fanout_%ld_floor", (long)getpid());
    pg_uri_db(base, db, uri, sizeof uri);
    pg_uri_db(base, copy, curi, sizeof curi);
    admin = pg_connect(base);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    pg_exec(admin, sql);

    hub = pg_hub(uri);
    if (sh_auth_register(hub, "broadcaster", "bc@example.com",
                         "correct horse battery", &a, err,
                         sizeof err) != SH_OK)
        die("register", err);
    snprintf(bc, sizeof bc, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
    sh_hub_close(hub);

    pg = pg_connect(uri);
    pg_copy(pg, "COPY users (id, username, username_lc, email, "
            "password_hash, role, created_at) FROM STDIN", n, user_line,
            bc);
    pg_copy(pg, "COPY follows (follower_id, followed_id, created_at) FROM "
            "STDIN", n, follow_line, bc);
    pg_exec(pg, "VACUUM ANALYZE");
    PQfinish(pg);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s", copy, db);
    pg_exec(admin, sql);
    pg_exec(admin, "CHECKPOINT");

    hub = pg_hub(uri);
    t0 = now_ms();
    if (sh_stream_start(hub, bc, "bench stream", NULL, &s, err,
                        sizeof err) != SH_OK)
        die("stream start", err);
    t1 = now_ms();
    sh_stream_free(s);
    for (long i = 0; i < n; i++) {
        sh_position_t pos;

        snprintf(ch, sizeof ch, "user:00000000-0000-4000-8000-%012lx",
                 (unsigned long)i);
        if (sh_channel_position(hub, ch, &pos, err, sizeof err) == SH_OK &&
            pos.offset >= 1)
            published++;
    }
    sh_hub_close(hub);
    pg = pg_connect(uri);
    stored = pg_count(pg, "SELECT count(*) FROM notifications");
    PQfinish(pg);
    fl = pg_floor_ms(curi, bc, (int64_t)time(NULL) * 1000, &floor_rows);

    emit("go_live_ms", json_object_new_double(t1 - t0), "ms");
    emit("notifications_stored", json_object_new_int64(stored), "rows");
    emit("notifications_published", json_object_new_int64(published),
         "events");
    emit("floor_insert_select_ms", json_object_new_double(fl), "ms");
    emit("floor_rows", json_object_new_int64(floor_rows), "rows");
    emit("ratio_to_floor", json_object_new_double(fl > 0 ? (t1 - t0) / fl
                                                  : 0), "x");
    snprintf(sql, sizeof sql, "DROP DATABASE %s", copy);
    pg_exec(admin, sql);
    snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
    pg_exec(admin, sql);
    PQfinish(admin);
    if (stored != n || published != n || floor_rows != n) {
        fprintf(stderr, "notify_fanout: %ld stored, %ld published, %ld in "
                "the floor, want %ld\n", stored, published, floor_rows, n);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[SH_ERRBUF_SIZE], dir[] = "/tmp/sh-fanout-XXXXXX";
    char path[256], copy[256], uri[300], bc[40], ch[64];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    sh_auth_t *a = NULL;
    sh_stream_t *s = NULL;
    const char *store = NULL;
    long n = 100000, published = 0, floor_rows = 0, stored;
    double t0, t1, fl;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n = 10000;
        } else if (strcmp(argv[i], "--followers") == 0 && i + 1 < argc) {
            char *end;
            n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > 10000000)
                die("--followers", "expects 1..10000000");
        } else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store = argv[++i];
            if (strncmp(store, "postgres://", 11) != 0 &&
                strncmp(store, "postgresql://", 13) != 0)
                die("--store", "expects a postgres:// URI");
        } else {
            fprintf(stderr, "usage: %s [--followers N] [--quick] "
                    "[--store postgres://...]\n", argv[0]);
            return 2;
        }
    }
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", "failed");
    snprintf(path, sizeof path, "%s/hub.db", dir);
    snprintf(copy, sizeof copy, "%s/floor.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);

    emit("nproc", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)),
         "cores");
    emit("build_type", json_object_new_string(SH_BENCH_BUILDTYPE), "");
    emit("followers", json_object_new_int64(n), "users");
    emit("store", json_object_new_string(store != NULL ? "postgres"
                                         : "sqlite"), "");
    if (store != NULL) {
        rmdir(dir);
        return run_pg(store, n);
    }

    if (sh_config_new(&conf) != SH_OK ||
        sh_config_set(conf, "store", uri, err, sizeof err) != SH_OK ||
        sh_config_set(conf, "log-level", "error", err, sizeof err) != SH_OK)
        die("config", err);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        die("hub open", err);
    if (sh_auth_register(hub, "broadcaster", "bc@example.com",
                         "correct horse battery", &a, err,
                         sizeof err) != SH_OK)
        die("register", err);
    snprintf(bc, sizeof bc, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
    populate(path, bc, n);
    copy_db(path, copy);

    t0 = now_ms();
    if (sh_stream_start(hub, bc, "bench stream", NULL, &s, err,
                        sizeof err) != SH_OK)
        die("stream start", err);
    t1 = now_ms();
    sh_stream_free(s);

    /* every follower's channel holds exactly one event */
    for (long i = 0; i < n; i++) {
        sh_position_t pos;

        snprintf(ch, sizeof ch, "user:00000000-0000-4000-8000-%012lx",
                 (unsigned long)i);
        if (sh_channel_position(hub, ch, &pos, err, sizeof err) == SH_OK &&
            pos.offset == 1)
            published++;
    }
    sh_hub_close(hub);
    stored = count_rows(path);
    fl = floor_ms(copy, bc, &floor_rows);

    emit("go_live_ms", json_object_new_double(t1 - t0), "ms");
    emit("notifications_stored", json_object_new_int64(stored), "rows");
    emit("notifications_published", json_object_new_int64(published),
         "events");
    emit("floor_insert_select_ms", json_object_new_double(fl), "ms");
    emit("floor_rows", json_object_new_int64(floor_rows), "rows");
    emit("ratio_to_floor", json_object_new_double(fl > 0 ? (t1 - t0) / fl
                                                  : 0), "x");
    rm_db(path);
    rm_db(copy);
    rmdir(dir);
    if (stored != n || published != n) {
        fprintf(stderr, "notify_fanout: %ld stored, %ld published, want %ld"
                "\n", stored, published, n);
        return 1;
    }
    return 0;
}
