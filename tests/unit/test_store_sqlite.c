/* tests/unit/test_store_sqlite.c: the store over SQLite: URIs, migrations,
 * the statement cache, error mapping, transactions and the pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store_be.h"

/* ---- helpers ----------------------------------------------------------- */

static sh_config_t *conf_with(const char *store, const char *pool)
{
    sh_config_t *c = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh_config_new(&c), SH_OK);
    assert_int_equal(sh_config_set(c, "store", store, err, sizeof err),
                     SH_OK);
    if (pool != NULL)
        assert_int_equal(sh_config_set(c, "store.pool-size", pool, err,
                                       sizeof err), SH_OK);
    return c;
}

static struct sh__store *open_store(const char *uri, const char *pool)
{
    sh_config_t *c = conf_with(uri, pool);
    struct sh__store *st = NULL;
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc = sh__store_open(c, NULL, &st, err, sizeof err);

    if (rc != SH_OK)
        fail_msg("open %s: %s: %s", uri, sh_err_name(rc), err);
    sh_config_free(c);
    return st;
}

/* A temporary file path; the files are removed by rm_db(). */
static void temp_db(char *buf, size_t len)
{
    char tmpl[] = "/tmp/sh_store_test_XXXXXX";
    int fd = mkstemp(tmpl);

    assert_true(fd >= 0);
    close(fd);
    unlink(tmpl);
    snprintf(buf, len, "%s.db", tmpl);
}

static void rm_db(const char *path)
{
    char p[512];

    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static int int_cb(void *arg, const struct sh__row *row)
{
    *(int64_t *)arg = sh__row_int(row, 0);
    return 0;
}

static int64_t query_int(struct sh__conn *c, const struct sh__sql *q,
                         const struct sh__val *p, size_t n)
{
    int64_t v = -1;
    char err[SH_ERRBUF_SIZE] = "";
    sh_err_t rc = sh__store_exec(c, q, p, n, int_cb, &v, NULL, err,
                                 sizeof err);

    if (rc != SH_OK)
        fail_msg("query %s: %s", q->text, err);
    return v;
}

static const struct sh__sql q_version =
    { "SELECT max(version) FROM schema_migrations", NULL, NULL };
static const struct sh__sql q_nmigr =
    { "SELECT count(*) FROM schema_migrations", NULL, NULL };
static const struct sh__sql q_ins_user =
    { "INSERT INTO users (id, username, username_lc, email, password_hash, "
      "created_at) VALUES (?, ?, lower(?), ?, 'x', ?)", NULL, NULL };
static const struct sh__sql q_nusers =
    { "SELECT count(*) FROM users", NULL, NULL };

static sh_err_t add_user(struct sh__conn *c, const char *id,
                         const char *name, const char *email, char *err,
                         size_t errlen)
{
    struct sh__val p[] = { sh__v_text(id), sh__v_text(name),
                           sh__v_text(name), sh__v_text(email),
                           sh__v_int(1000) };

    return sh__store_exec(c, &q_ins_user, p, 5, NULL, NULL, NULL, err,
                          errlen);
}

/* ---- tests ------------------------------------------------------------- */

static void test_memory_open_migrates(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", "8");
    struct sh__conn *c = NULL;
    static const struct sh__sql q_tables =
        { "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name "
          "IN ('users', 'refresh_tokens', 'follows', 'streams', "
          "'chat_messages', 'chat_settings', 'bans', 'timeouts', "
          "'moderators', 'notifications', 'raids', 'channel_subscriptions',"
          " 'stream_stats', 'stream_chatters', 'streams_fts')", NULL, NULL };
    static const struct sh__sql q_fk = { "PRAGMA foreign_keys", NULL, NULL };

    (void)state;
    assert_string_equal(sh__store_backend(st), "sqlite");
    /* :memory: connections share nothing: the pool holds one. */
    assert_int_equal(st->nconns, 1);
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(query_int(c, &q_version, NULL, 0),
                     (int64_t)sh__sqlite_migrations_count);
    assert_int_equal(query_int(c, &q_tables, NULL, 0), 15);
    assert_int_equal(query_int(c, &q_fk, NULL, 0), 1);
    sh__store_release(c);
    sh__store_close(st);
}

static void test_file_reopen_is_idempotent(void **state)
{
    char path[256], uri[300];
    struct sh__store *st;
    struct sh__conn *c = NULL;
    char err[SH_ERRBUF_SIZE];
    static const struct sh__sql q_sync = { "PRAGMA synchronous", NULL, NULL };

    (void)state;
    temp_db(path, sizeof path);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    st = open_store(uri, "3");
    assert_int_equal(st->nconns, 3);
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(add_user(c, "u1", "Alice", "a@x.io", err, sizeof err),
                     SH_OK);
    assert_int_equal(query_int(c, &q_sync, NULL, 0), 1);   /* NORMAL */
    sh__store_release(c);
    sh__store_close(st);

    for (int round = 0; round < 2; round++) {
        st = open_store(uri, "2");
        assert_int_equal(sh__store_acquire(st, &c), SH_OK);
        assert_int_equal(query_int(c, &q_nmigr, NULL, 0),
                         (int64_t)sh__sqlite_migrations_count);
        assert_int_equal(query_int(c, &q_nusers, NULL, 0), 1);
        sh__store_release(c);
        sh__store_close(st);
    }
    rm_db(path);
}

static int text_cb(void *arg, const struct sh__row *row)
{
    snprintf(arg, 16, "%s", sh__row_text(row, 0, NULL));
    return 0;
}

static void test_file_is_wal(void **state)
{
    char path[256], uri[300], mode[16] = "";
    struct sh__store *st;
    struct sh__conn *c = NULL;
    static const struct sh__sql q_jm = { "PRAGMA journal_mode", NULL, NULL };

    (void)state;
    temp_db(path, sizeof path);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    st = open_store(uri, NULL);
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_jm, NULL, 0, text_cb, mode, NULL,
                                    NULL, 0), SH_OK);
    assert_string_equal(mode, "wal");
    sh__store_release(c);
    sh__store_close(st);
    rm_db(path);
}

static void test_newer_database_is_refused(void **state)
{
    char path[256], uri[300], err[SH_ERRBUF_SIZE] = "";
    struct sh__store *st;
    struct sh__conn *c = NULL;
    sh_config_t *conf;
    static const struct sh__sql q_bump =
        { "INSERT INTO schema_migrations VALUES (9999, 'future', 0)", NULL,
          NULL };

    (void)state;
    temp_db(path, sizeof path);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    st = open_store(uri, "1");
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_bump, NULL, 0, NULL, NULL, NULL,
                                    err, sizeof err), SH_OK);
    sh__store_release(c);
    sh__store_close(st);

    conf = conf_with(uri, NULL);
    st = (struct sh__store *)(uintptr_t)1;
    assert_int_equal(sh__store_open(conf, NULL, &st, err, sizeof err),
                     SH_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err, "9999"));
    assert_non_null(strstr(err, "newer"));
    sh_config_free(conf);
    rm_db(path);
}

static void test_bad_uris(void **state)
{
    char err[SH_ERRBUF_SIZE];
    char path[256], uri[300];
    struct sh__store *st = NULL;
    sh_config_t *conf;
    FILE *f;

    (void)state;
    /* Nothing listens on port 1: refused at once, said clearly. */
    conf = conf_with("postgres://u@127.0.0.1:1/db", NULL);
    assert_int_equal(sh__store_open(conf, NULL, &st, err, sizeof err),
                     SH_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    sh_config_free(conf);

    conf = conf_with("sqlite:/nonexistent-dir/sub/x.db", NULL);
    assert_int_equal(sh__store_open(conf, NULL, &st, err, sizeof err),
                     SH_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err, "/nonexistent-dir/sub/x.db"));
    sh_config_free(conf);

    /* A file that is not a database. */
    temp_db(path, sizeof path);
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database file\n", f);
    fclose(f);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    conf = conf_with(uri, NULL);
    assert_int_equal(sh__store_open(conf, NULL, &st, err, sizeof err),
                     SH_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err, path));
    sh_config_free(conf);
    rm_db(path);

    /* NULL arguments, NULL errbuf. */
    assert_int_equal(sh__store_open(NULL, NULL, &st, NULL, 0), SH_EINVAL);
    sh__store_close(NULL);
}

static void test_statement_cache_reuse(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct sh__conn *c = NULL;
    static struct sh__sql many[100];
    static char texts[100][32];
    uint64_t before;

    (void)state;
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    before = sh__store_exec_count(st);
    size_t cached = sh__sqlite_cached(c);
    for (int i = 0; i < 5; i++)
        assert_int_equal(query_int(c, &q_nusers, NULL, 0), 0);
    assert_int_equal(sh__sqlite_cached(c), cached + 1);
    assert_int_equal(sh__store_exec_count(st) - before, 5);

    /* Enough statements to grow the map several times; each must still
     * find its own. */
    for (int i = 0; i < 100; i++) {
        snprintf(texts[i], sizeof texts[i], "SELECT %d", i * 7);
        many[i].text = texts[i];
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++)
            assert_int_equal(query_int(c, &many[i], NULL, 0), i * 7);
    }
    assert_int_equal(sh__sqlite_cached(c), cached + 101);

    /* The SQLite override wins over the portable text. */
    static const struct sh__sql q_over = { "SELECT 1", "SELECT 2", "x" };
    assert_int_equal(query_int(c, &q_over, NULL, 0), 2);
    sh__store_release(c);
    sh__store_close(st);
}

static void test_conflict_and_error_mapping(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct sh__conn *c = NULL;
    char err[SH_ERRBUF_SIZE];
    static const struct sh__sql q_bad_syntax = { "SELEC 1", NULL, NULL };
    static const struct sh__sql q_two = { "SELECT 1; SELECT 2", NULL, NULL };
    static const struct sh__sql q_fk_bad =
        { "INSERT INTO follows VALUES ('nobody', 'u1', 0)", NULL, NULL };
    static const struct sh__sql q_check_bad =
        { "UPDATE users SET role = 'KING'", NULL, NULL };
    static const struct sh__sql q_live =
        { "INSERT INTO streams (id, broadcaster_id, title, status) "
          "VALUES (?, 'u1', 't', 'LIVE')", NULL, NULL };

    (void)state;
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(add_user(c, "u1", "Alice", "a@x.io", err, sizeof err),
                     SH_OK);
    /* Same name in another case: username_lc is UNIQUE. */
    assert_int_equal(add_user(c, "u2", "ALICE", "b@x.io", err, sizeof err),
                     SH_ECONFLICT);
    assert_non_null(strstr(err, "UNIQUE"));
    /* Same primary key. */
    assert_int_equal(add_user(c, "u1", "bob", "c@x.io", err, sizeof err),
                     SH_ECONFLICT);
    /* Partial unique index: one LIVE stream per broadcaster. */
    struct sh__val p1 = sh__v_text("s1"), p2 = sh__v_text("s2");
    assert_int_equal(sh__store_exec(c, &q_live, &p1, 1, NULL, NULL, NULL,
                                    err, sizeof err), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_live, &p2, 1, NULL, NULL, NULL,
                                    err, sizeof err), SH_ECONFLICT);
    /* Other constraint failures are store errors, not conflicts. */
    assert_int_equal(sh__store_exec(c, &q_fk_bad, NULL, 0, NULL, NULL, NULL,
                                    err, sizeof err), SH_ESTORE);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    assert_int_equal(sh__store_exec(c, &q_check_bad, NULL, 0, NULL, NULL,
                                    NULL, err, sizeof err), SH_ESTORE);
    assert_int_equal(sh__store_exec(c, &q_bad_syntax, NULL, 0, NULL, NULL,
                                    NULL, err, sizeof err), SH_ESTORE);
    assert_non_null(strstr(err, "syntax error"));
    assert_int_equal(sh__store_exec(c, &q_two, NULL, 0, NULL, NULL, NULL,
                                    err, sizeof err), SH_EINTERNAL);
    /* Wrong parameter count is our bug, reported, not run. */
    assert_int_equal(sh__store_exec(c, &q_ins_user, &p1, 1, NULL, NULL,
                                    NULL, err, sizeof err), SH_EINTERNAL);
    /* A failed statement leaves the connection usable. */
    assert_int_equal(query_int(c, &q_nusers, NULL, 0), 1);
    /* NULL errbuf is allowed. */
    assert_int_equal(add_user(c, "u1", "x", "y", NULL, 0), SH_ECONFLICT);
    sh__store_release(c);
    sh__store_close(st);
}

struct texts {
    char buf[4][64];
    size_t len[4];
    bool null[4];
};

static int texts_cb(void *arg, const struct sh__row *row)
{
    struct texts *t = arg;

    for (int i = 0; i < 4; i++) {
        const char *s = sh__row_text(row, i, &t->len[i]);

        t->null[i] = sh__row_null(row, i);
        assert_true((s == NULL) == t->null[i]);
        if (s != NULL)
            memcpy(t->buf[i], s, t->len[i] + 1);
    }
    return 0;
}

static void test_text_values_round_trip(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct sh__conn *c = NULL;
    static const struct sh__sql q_echo = { "SELECT ?, ?, ?, ?", NULL, NULL };
    struct texts t;
    struct sh__val p[] = {
        sh__v_textn("a\0b", 3),           /* embedded NUL */
        sh__v_text("\xc3\x28 bad"),       /* bad UTF-8: bytes kept */
        sh__v_text(""),                   /* empty, not NULL */
        sh__v_text(NULL),                 /* NULL */
    };

    (void)state;
    memset(&t, 0, sizeof t);
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_echo, p, 4, texts_cb, &t, NULL,
                                    NULL, 0), SH_OK);
    assert_int_equal(t.len[0], 3);
    assert_memory_equal(t.buf[0], "a\0b", 3);
    assert_string_equal(t.buf[1], "\xc3\x28 bad");
    assert_false(t.null[2]);
    assert_int_equal(t.len[2], 0);
    assert_true(t.null[3]);
    sh__store_release(c);
    sh__store_close(st);
}

static int stop_cb(void *arg, const struct sh__row *row)
{
    (void)row;
    return ++*(int *)arg == 2;
}

static void test_transactions_and_early_stop(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct sh__conn *c = NULL;
    char err[SH_ERRBUF_SIZE];
    int64_t changes = -1;
    int seen = 0;
    static const struct sh__sql q_series =
        { "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
          "WHERE i < 10) SELECT i FROM n", NULL, NULL };
    static const struct sh__sql q_rename =
        { "UPDATE users SET username = 'z'", NULL, NULL };

    (void)state;
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(sh__store_begin(c, err, sizeof err), SH_OK);
    assert_int_equal(sh__store_begin(c, err, sizeof err), SH_EINTERNAL);
    assert_int_equal(add_user(c, "u1", "a1", "a1@x", NULL, 0), SH_OK);
    sh__store_rollback(c);
    assert_int_equal(query_int(c, &q_nusers, NULL, 0), 0);

    assert_int_equal(sh__store_commit(c, err, sizeof err), SH_EINTERNAL);
    assert_int_equal(sh__store_begin(c, err, sizeof err), SH_OK);
    assert_int_equal(add_user(c, "u1", "a1", "a1@x", NULL, 0), SH_OK);
    assert_int_equal(add_user(c, "u2", "a2", "a2@x", NULL, 0), SH_OK);
    assert_int_equal(sh__store_commit(c, err, sizeof err), SH_OK);
    assert_int_equal(query_int(c, &q_nusers, NULL, 0), 2);

    assert_int_equal(sh__store_exec(c, &q_rename, NULL, 0, NULL, NULL,
                                    &changes, NULL, 0), SH_OK);
    assert_int_equal(changes, 2);
    /* A SELECT reports no changes even after a write. */
    assert_int_equal(sh__store_exec(c, &q_nusers, NULL, 0, NULL, NULL,
                                    &changes, NULL, 0), SH_OK);
    assert_int_equal(changes, 0);

    /* The row callback stops the walk: not an error. */
    assert_int_equal(sh__store_exec(c, &q_series, NULL, 0, stop_cb, &seen,
                                    NULL, NULL, 0), SH_OK);
    assert_int_equal(seen, 2);

    /* Releasing inside a transaction rolls it back. */
    assert_int_equal(sh__store_begin(c, err, sizeof err), SH_OK);
    assert_int_equal(add_user(c, "u3", "a3", "a3@x", NULL, 0), SH_OK);
    sh__store_release(c);
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(query_int(c, &q_nusers, NULL, 0), 2);
    sh__store_release(c);
    sh__store_close(st);
}

static void test_fts_follows_streams(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct sh__conn *c = NULL;
    static const struct sh__sql q_s =
        { "INSERT INTO streams (id, broadcaster_id, title, category, status)"
          " VALUES ('s1', 'u1', 'Speedrun of Zelda', 'Games', 'LIVE')",
          NULL, NULL };
    static const struct sh__sql q_match =
        { "SELECT count(*) FROM streams_fts WHERE streams_fts MATCH ?",
          NULL, NULL };
    static const struct sh__sql q_retitle =
        { "UPDATE streams SET title = 'Cooking pasta' WHERE id = 's1'",
          NULL, NULL };
    struct sh__val zelda = sh__v_text("zelda"), pasta = sh__v_text("pasta");
    struct sh__val games = sh__v_text("games");

    (void)state;
    assert_int_equal(sh__store_acquire(st, &c), SH_OK);
    assert_int_equal(add_user(c, "u1", "a", "a@x", NULL, 0), SH_OK);
    assert_int_equal(sh__store_exec(c, &q_s, NULL, 0, NULL, NULL, NULL,
                                    NULL, 0), SH_OK);
    assert_int_equal(query_int(c, &q_match, &zelda, 1), 1);
    assert_int_equal(query_int(c, &q_match, &games, 1), 1);
    assert_int_equal(sh__store_exec(c, &q_retitle, NULL, 0, NULL, NULL, NULL,
                                    NULL, 0), SH_OK);
    assert_int_equal(query_int(c, &q_match, &zelda, 1), 0);
    assert_int_equal(query_int(c, &q_match, &pasta, 1), 1);
    sh__store_release(c);
    sh__store_close(st);
}

/* ---- the pool, from several threads ------------------------------------ */

#define NTHREADS 8
#define NROWS 40

struct pool_fx {
    struct sh__store *st;
    pthread_mutex_t mu;
    int holders, max_holders;
    int failures;
};

static const struct sh__sql q_ins_follow =
    { "INSERT INTO stream_chatters (stream_id, user_id) VALUES (?, ?)",
      NULL, NULL };

static void *pool_worker(void *arg)
{
    struct pool_fx *fx = arg;
    static _Atomic int next_id;

    for (int i = 0; i < NROWS; i++) {
        struct sh__conn *c = NULL;
        char err[SH_ERRBUF_SIZE], id[32];
        struct sh__val p[2];
        sh_err_t rc;

        if (sh__store_acquire(fx->st, &c) != SH_OK)
            goto failed;
        pthread_mutex_lock(&fx->mu);
        if (++fx->holders > fx->max_holders)
            fx->max_holders = fx->holders;
        pthread_mutex_unlock(&fx->mu);
        snprintf(id, sizeof id, "u%d", next_id++);
        p[0] = sh__v_text("s1");
        p[1] = sh__v_text(id);
        rc = sh__store_begin(c, err, sizeof err);
        if (rc == SH_OK)
            rc = sh__store_exec(c, &q_ins_follow, p, 2, NULL, NULL, NULL,
                                err, sizeof err);
        if (rc == SH_OK)
            rc = sh__store_commit(c, err, sizeof err);
        pthread_mutex_lock(&fx->mu);
        fx->holders--;
        if (rc != SH_OK) {
            fx->failures++;
            fprintf(stderr, "worker: %s\n", err);
        }
        pthread_mutex_unlock(&fx->mu);
        sh__store_release(c);
        continue;
failed:
        pthread_mutex_lock(&fx->mu);
        fx->failures++;
        pthread_mutex_unlock(&fx->mu);
    }
    return NULL;
}

static void test_pool_concurrency_on_file(void **state)
{
    char path[256], uri[300];
    struct pool_fx fx;
    pthread_t th[NTHREADS];
    struct sh__conn *c = NULL;
    static const struct sh__sql q_nchatters =
        { "SELECT count(*) FROM stream_chatters", NULL, NULL };
    static const struct sh__sql q_fk_off =
        { "PRAGMA foreign_keys = OFF", NULL, NULL };

    (void)state;
    temp_db(path, sizeof path);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    memset(&fx, 0, sizeof fx);
    fx.st = open_store(uri, "3");
    pthread_mutex_init(&fx.mu, NULL);
    /* The rows need no parents for this test: turn FKs off everywhere. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(sh__store_exec(fx.st->conns[i], &q_fk_off, NULL, 0,
                                        NULL, NULL, NULL, NULL, 0), SH_OK);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pool_worker, &fx), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(fx.failures, 0);
    assert_true(fx.max_holders >= 1 && fx.max_holders <= 3);
    assert_int_equal(sh__store_acquire(fx.st, &c), SH_OK);
    assert_int_equal(query_int(c, &q_nchatters, NULL, 0), NTHREADS * NROWS);
    sh__store_release(c);
    sh__store_close(fx.st);
    pthread_mutex_destroy(&fx.mu);
    rm_db(path);
}

/* A store being closed waits for a borrowed connection to come back. */
struct late {
    struct sh__conn *c;
};

static void *late_release(void *arg)
{
    struct late *l = arg;

    usleep(50 * 1000);
    sh__store_release(l->c);
    return NULL;
}

static void test_close_waits_for_borrowed(void **state)
{
    struct sh__store *st = open_store("sqlite::memory:", NULL);
    struct late l = { NULL };
    pthread_t th;

    (void)state;
    assert_int_equal(sh__store_acquire(st, &l.c), SH_OK);
    assert_int_equal(pthread_create(&th, NULL, late_release, &l), 0);
    sh__store_close(st);       /* returns only after the release */
    pthread_join(th, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_open_migrates),
        cmocka_unit_test(test_file_reopen_is_idempotent),
        cmocka_unit_test(test_file_is_wal),
        cmocka_unit_test(test_newer_database_is_refused),
        cmocka_unit_test(test_bad_uris),
        cmocka_unit_test(test_statement_cache_reuse),
        cmocka_unit_test(test_conflict_and_error_mapping),
        cmocka_unit_test(test_text_values_round_trip),
        cmocka_unit_test(test_transactions_and_early_stop),
        cmocka_unit_test(test_fts_follows_streams),
        cmocka_unit_test(test_pool_concurrency_on_file),
        cmocka_unit_test(test_close_waits_for_borrowed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
