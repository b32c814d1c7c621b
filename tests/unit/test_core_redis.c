/* tests/unit/test_core_redis.c: the blocking Redis pool (core/redis.c)
 * against a real server: STREAMHUB_TEST_REDIS_URI (scripts/with-services.sh
 * gives one); without it the test is skipped (exit 77). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/core_int.h"
#include "core/redis_int.h"

static const char *uri;

static void test_uri_parse(void **state)
{
    struct sh__redis_uri u;
    char err[SH_ERRBUF_SIZE];
    const char *bad[] = {
        "", "redis://", "http://h:1", "redis://h:0", "redis://h:65536",
        "redis://h:x", "redis://h/16", "redis://h/a", "redis://pw@h",
        "redis://[::1", "redis://h:1/0?x", NULL,
    };

    (void)state;
    assert_int_equal(sh__redis_uri_parse("redis://10.0.0.1", &u, err,
                                         sizeof err), SH_OK);
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(sh__redis_uri_parse("redis://:p@ss@h.example:7000/3",
                                         &u, err, sizeof err), SH_OK);
    assert_string_equal(u.host, "h.example");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.user, "");
    assert_int_equal(u.db, 3);
    assert_int_equal(sh__redis_uri_parse("redis://me:pw@[::1]:6380/", &u,
                                         err, sizeof err), SH_OK);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.user, "me");
    assert_int_equal(u.port, 6380);
    for (int i = 0; bad[i] != NULL; i++) {
        err[0] = '\0';
        assert_int_equal(sh__redis_uri_parse(bad[i], &u, err, sizeof err),
                         SH_EINVAL);
        assert_true(strncmp(err, "redis:", 6) == 0);
    }
    /* The password never shows in an error. */
    assert_int_equal(sh__redis_uri_parse("redis://:sekrit@h:99999", &u, err,
                                         sizeof err), SH_EINVAL);
    assert_null(strstr(err, "sekrit"));
}

static struct sh__redis *pool(size_t n)
{
    struct sh__redis *r = NULL;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh__redis_new(uri, n, 1000, 1000, &r, err, sizeof err),
                     SH_OK);
    return r;
}

static void test_cmd_round_trip_and_error_reply(void **state)
{
    struct sh__redis *r = pool(2);
    redisReply *rep = NULL;
    char err[SH_ERRBUF_SIZE];
    const char *set[] = { "SET", "t:core:k", "v\0w" };
    const size_t setl[] = { 3, 8, 3 };

    (void)state;
    assert_int_equal(sh__redis_cmd(r, 3, set, setl, NULL, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh__redis_cmd(r, 2, (const char *[]){ "GET",
                     "t:core:k" }, NULL, &rep, err, sizeof err), SH_OK);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, 3);
    assert_memory_equal(rep->str, "v\0w", 3);
    freeReplyObject(rep);
    /* An error reply: SH_EBUS with the server's text, the pool stays up. */
    assert_int_equal(sh__redis_cmd(r, 2, (const char *[]){ "INCR",
                     "t:core:k" }, NULL, &rep, err, sizeof err), SH_EBUS);
    assert_null(rep);
    assert_non_null(strstr(err, "ERR"));
    assert_true(sh__redis_up(r));
    assert_int_equal(sh__redis_failures(r), 0);
    sh__redis_free(r);
}

static const struct sh__redis_script echo = {
    "return {KEYS[1], ARGV[1], #KEYS, #ARGV}"
};

static void test_eval_loads_a_flushed_script(void **state)
{
    struct sh__redis *r = pool(1);
    redisReply *rep = NULL;
    char err[SH_ERRBUF_SIZE];
    const char *args[] = { "t:core:key", "arg" };
    char sha[41];

    (void)state;
    for (int round = 0; round < 2; round++) {
        /* The first round finds no script at all (NOSCRIPT, then EVAL),
         * the second finds it (EVALSHA). */
        if (round == 0)
            assert_int_equal(sh__redis_cmd(r, 2, (const char *[]){
                             "SCRIPT", "FLUSH" }, NULL, NULL, err,
                             sizeof err), SH_OK);
        assert_int_equal(sh__redis_eval(r, &echo, 1, 2, args, NULL, &rep,
                                        err, sizeof err), SH_OK);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        assert_int_equal(rep->elements, 4);
        assert_string_equal(rep->element[0]->str, "t:core:key");
        assert_string_equal(rep->element[1]->str, "arg");
        assert_int_equal(rep->element[2]->integer, 1);
        assert_int_equal(rep->element[3]->integer, 1);
        freeReplyObject(rep);
    }
    /* Our SHA-1 is the server's. */
    sh__redis_script_sha(&echo, sha);
    assert_int_equal(sh__redis_cmd(r, 3, (const char *[]){ "SCRIPT", "LOAD",
                     echo.src }, NULL, &rep, err, sizeof err), SH_OK);
    assert_string_equal(rep->str, sha);
    freeReplyObject(rep);
    sh__redis_free(r);
}

static void test_down_fails_fast_with_a_clear_message(void **state)
{
    struct sh__redis *r = NULL;
    char err[SH_ERRBUF_SIZE];

    (void)state;
    /* Port 1 on loopback: nothing listens, the connect is refused. */
    assert_int_equal(sh__redis_new("redis://127.0.0.1:1", 2, 1000, 1000,
                                   &r, err, sizeof err), SH_OK);
    for (int i = 0; i < 3; i++) {
        err[0] = '\0';
        assert_int_equal(sh__redis_cmd(r, 1, (const char *[]){ "PING" },
                                       NULL, NULL, err, sizeof err),
                         SH_EBUS);
        assert_non_null(strstr(err, "redis 127.0.0.1:1 unavailable: "));
    }
    assert_true(sh__redis_failures(r) >= 1);
    sh__redis_free(r);
}

/* Kill every client connection of the pool from another pool, then wait
 * (with a deadline) for the first pool to serve again. */
static void test_reconnects_after_its_connections_are_killed(void **state)
{
    struct sh__redis *r = pool(2), *admin = pool(1);
    char err[SH_ERRBUF_SIZE];
    redisReply *rep = NULL;
    sh_err_t rc;
    int64_t deadline;
    char id[32];

    (void)state;

    /* Only this pool's connection: other tests share the server. */
    assert_int_equal(sh__redis_cmd(r, 2, (const char *[]){ "CLIENT", "ID" },
                                   NULL, &rep, err, sizeof err), SH_OK);
    snprintf(id, sizeof id, "%lld", rep->integer);
    freeReplyObject(rep);
    assert_int_equal(sh__redis_cmd(admin, 4, (const char *[]){ "CLIENT",
                     "KILL", "ID", id }, NULL, &rep, err, sizeof err),
                     SH_OK);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* The killed connection fails once on I/O... */
    rc = sh__redis_cmd(r, 1, (const char *[]){ "PING" }, NULL, NULL, err,
                       sizeof err);
    assert_int_equal(rc, SH_EBUS);
    assert_int_equal(sh__redis_failures(r), 1);
    /* ...and a later call reconnects by itself. */
    deadline = sh__mono_ms() + 10000;
    do {
        rc = sh__redis_cmd(r, 1, (const char *[]){ "PING" }, NULL, NULL,
                           err, sizeof err);
        if (rc != SH_OK) {
            struct timespec ts = { 0, 10000000 };
            nanosleep(&ts, NULL);
        }
    } while (rc != SH_OK && sh__mono_ms() < deadline);
    assert_int_equal(rc, SH_OK);
    assert_true(sh__redis_up(r));
    sh__redis_free(admin);
    sh__redis_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_parse),
        cmocka_unit_test(test_cmd_round_trip_and_error_reply),
        cmocka_unit_test(test_eval_loads_a_flushed_script),
        cmocka_unit_test(test_down_fails_fast_with_a_clear_message),
        cmocka_unit_test(test_reconnects_after_its_connections_are_killed),
    };

    uri = getenv("STREAMHUB_TEST_REDIS_URI");
    if (uri == NULL || uri[0] == '\0') {
        fprintf(stderr, "STREAMHUB_TEST_REDIS_URI not set: skipped\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
