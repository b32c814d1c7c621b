/* tests/contract/chat_fixture.h: a hub with a few users and a live stream,
 * for the chat and moderation contract tests.  Public API only.
 *
 * The store comes from STREAMHUB_TEST_STORE (matrix_fixture.h), so that
 * every store x bus pair runs the same tests; fx_store_env() gives an
 * empty store per call.  Tests that need a store that outlives the hub
 * (flush on close) use a temporary SQLite file on SQLite, and open the
 * same PostgreSQL schema again otherwise.
 */
#ifndef CHAT_FIXTURE_H
#define CHAT_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/chat.h"
#include "streamhub/follows.h"
#include "streamhub/moderation.h"
#include "streamhub/streams.h"

#include "matrix_fixture.h"

#define FX_USERS 4

struct fx {
    sh_hub_t *hub;
    char ids[FX_USERS][40];      /* 0 broadcaster, 1 viewer, 2 mod, 3 other */
    char names[FX_USERS][32];
    char stream[40];
    char path[256];              /* temporary SQLite file, or "" */
};

/* A store for one new hub (on PostgreSQL: a new empty schema). */
static inline const char *fx_store_env(void)
{
    return mx_store();
}

static inline int fx_store_is_sqlite(void)
{
    return !mx_is_pg();
}

/* Open a hub on @store with extra key/value pairs (NULL-terminated). */
static inline sh_hub_t *fx_open(const char *store, ...)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;
    const char *k, *v;
    va_list ap;

    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", store, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    va_start(ap, store);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        if (sh_config_set(conf, k, v, err, sizeof err) != SH_OK)
            fail_msg("config %s=%s: %s", k, v, err);
    }
    va_end(ap);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        fail_msg("sh_hub_open: %s", err);
    return hub;
}

static inline void fx_user(sh_hub_t *hub, const char *name, char id[40])
{
    char err[SH_ERRBUF_SIZE], email[64];
    sh_auth_t *a = NULL;
    sh_err_t rc;

    snprintf(email, sizeof email, "%s@example.com", name);
    rc = sh_auth_register(hub, name, email, "correct horse battery", &a,
                          err, sizeof err);
    if (rc != SH_OK)
        fail_msg("register %s: %s", name, err);
    snprintf(id, 40, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
}

static inline void fx_start(sh_hub_t *hub, const char *actor, char id[40])
{
    char err[SH_ERRBUF_SIZE];
    sh_stream_t *s = NULL;

    if (sh_stream_start(hub, actor, "test stream", "chat", &s, err,
                        sizeof err) != SH_OK)
        fail_msg("stream start: %s", err);
    snprintf(id, 40, "%s", sh_stream_id(s));
    sh_stream_free(s);
}

/* Users, a live stream of user 0; @prefix keeps usernames unique when
 * several fixtures share a store. */
static inline void fx_populate(struct fx *f)
{
    static const char *roles[FX_USERS] = { "bc", "viewer", "mod", "other" };
    char prefix[16];
    char err[SH_ERRBUF_SIZE];

    snprintf(prefix, sizeof prefix, "u%08x",
             (unsigned)((uintptr_t)f ^ (uintptr_t)getpid() ^
                        (uintptr_t)rand()) & 0x7fffffffu);
    for (int i = 0; i < FX_USERS; i++) {
        snprintf(f->names[i], sizeof f->names[i], "%s_%s", prefix, roles[i]);
        fx_user(f->hub, f->names[i], f->ids[i]);
    }
    if (sh_moderation_add_moderator(f->hub, f->ids[0], f->ids[0], f->ids[2],
                                    err, sizeof err) != SH_OK)
        fail_msg("add moderator: %s", err);
    fx_start(f->hub, f->ids[0], f->stream);
}

static inline struct fx *fx_new(const char *store, ...)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    const char *k, *v;
    va_list ap;

    assert_non_null(f);
    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", store, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    va_start(ap, store);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        if (sh_config_set(conf, k, v, err, sizeof err) != SH_OK)
            fail_msg("config %s=%s: %s", k, v, err);
    }
    va_end(ap);
    if (sh_hub_open(conf, &f->hub, err, sizeof err) != SH_OK)
        fail_msg("sh_hub_open: %s", err);
    fx_populate(f);
    return f;
}

static inline void fx_free(struct fx *f)
{
    if (f == NULL)
        return;
    sh_hub_close(f->hub);
    if (f->path[0] != '\0') {
        char side[300];

        unlink(f->path);
        snprintf(side, sizeof side, "%s-wal", f->path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", f->path);
        unlink(side);
    }
    free(f);
}

/* A temporary SQLite file path (for tests that reopen), into @path. */
static inline void fx_tmp_db(char *path, size_t len)
{
    const char *dir = getenv("TMPDIR");
    int fd;

    snprintf(path, len, "%s/shchatXXXXXX", dir != NULL ? dir : "/tmp");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}

/* Send @text and expect @want; returns the offset (0 on refusal). */
static inline int64_t fx_send(struct fx *f, int who, const char *text,
                              size_t len, sh_err_t want, int64_t *retry)
{
    char err[SH_ERRBUF_SIZE] = "";
    sh_chat_message_t *m = NULL;
    int64_t off = 0;
    sh_err_t rc;

    rc = sh_chat_send(f->hub, who < 0 ? NULL : f->ids[who], f->stream, text,
                      len, &m, retry, err, sizeof err);
    if (rc != want)
        fail_msg("send '%.40s': got %s (%s), want %s",
                 text != NULL ? text : "(null)",
                 sh_err_name(rc), err, sh_err_name(want));
    if (rc == SH_OK) {
        off = sh_chat_message_offset(m);
        sh_chat_message_free(m);
    } else {
        assert_null(m);
    }
    return off;
}

static inline void fx_settings(struct fx *f, const char *json)
{
    char err[SH_ERRBUF_SIZE];

    if (sh_chat_settings_update(f->hub, f->ids[0], f->ids[0], json,
                                strlen(json), NULL, err, sizeof err) != SH_OK)
        fail_msg("settings %s: %s", json, err);
}

/* ---- collecting events ---------------------------------------------------- */

struct fx_events {
    int n;
    int final;
    sh_event_t *ev[4096];
};

static inline void fx_event_cb(void *arg, const sh_event_t *ev,
                               sh_err_t status)
{
    struct fx_events *e = arg;

    if (ev == NULL) {
        e->final++;
        return;
    }
    (void)status;
    if (e->n < 4096)
        e->ev[e->n++] = sh_event_dup(ev);
}

static inline void fx_events_clear(struct fx_events *e)
{
    for (int i = 0; i < e->n; i++)
        sh_event_free(e->ev[i]);
    e->n = 0;
}

/* Poll until @e holds @n events or ~2 s pass. */
static inline void fx_poll_until(sh_hub_t *hub, struct fx_events *e, int n)
{
    for (int i = 0; i < 200 && e->n < n; i++)
        sh_hub_poll(hub, 10);
}

#endif
