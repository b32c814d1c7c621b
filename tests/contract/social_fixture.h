/* tests/contract/social_fixture.h: a hub with a pool of registered users
 * and an event recorder, for the follows, streams, notifications, raids,
 * subscriptions and stats contract tests.  Public API only.
 *
 * The store comes from STREAMHUB_TEST_STORE (matrix_fixture.h), so that
 * every store x bus pair runs the same tests; each hub gets an empty
 * store.  Usernames carry a random prefix all the same.  Users are
 * registered once per test group (a password hash each), and each test
 * uses its own users so that the order of the tests does not matter.
 */
#ifndef SOCIAL_FIXTURE_H
#define SOCIAL_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "streamhub/streamhub.h"
#include "streamhub/auth.h"
#include "streamhub/bus.h"
#include "streamhub/follows.h"
#include "streamhub/notifications.h"
#include "streamhub/streams.h"

#include "matrix_fixture.h"

#define SFX_MAX_USERS 40
#define SFX_MAX_EVENTS 256

struct sfx {
    sh_hub_t *hub;
    int nusers;
    char ids[SFX_MAX_USERS][40];
    char names[SFX_MAX_USERS][32];
    int next;                       /* next unused user */
};

/* Events seen on one channel. */
struct rec {
    int n;
    char type[SFX_MAX_EVENTS][32];
    char *data[SFX_MAX_EVENTS];     /* malloc'd JSON text */
    int final;                      /* the final callback ran */
    sh_subscription_t *sub;
};

static inline const char *sfx_store(void)
{
    return mx_store();
}

static inline sh_hub_t *sfx_open(void)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *conf = NULL;
    sh_hub_t *hub = NULL;

    assert_int_equal(sh_config_new(&conf), SH_OK);
    assert_int_equal(sh_config_set(conf, "store", sfx_store(), err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "log-level", "error", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(conf, "jwt-secret",
                                   "0123456789abcdef0123456789abcdef", err,
                                   sizeof err), SH_OK);
    if (sh_hub_open(conf, &hub, err, sizeof err) != SH_OK)
        fail_msg("sh_hub_open: %s", err);
    return hub;
}

static inline void sfx_register(sh_hub_t *hub, const char *name, char id[40])
{
    char err[SH_ERRBUF_SIZE], email[64];
    sh_auth_t *a = NULL;

    snprintf(email, sizeof email, "%s@example.com", name);
    if (sh_auth_register(hub, name, email, "correct horse battery", &a, err,
                         sizeof err) != SH_OK)
        fail_msg("register %s: %s", name, err);
    snprintf(id, 40, "%s", sh_user_id(sh_auth_user(a)));
    sh_auth_free(a);
}

/* Group setup with @n users. */
static inline int sfx_setup_n(void **state, int n)
{
    struct sfx *f = calloc(1, sizeof *f);
    unsigned salt;

    assert_non_null(f);
    assert_true(n <= SFX_MAX_USERS);
    salt = (unsigned)time(NULL) ^ (unsigned)getpid() ^
           (unsigned)(uintptr_t)f;
    f->hub = sfx_open();
    f->nusers = n;
    for (int i = 0; i < n; i++) {
        snprintf(f->names[i], sizeof f->names[i], "t%06x_%02d",
                 salt & 0xffffffu, i);
        sfx_register(f->hub, f->names[i], f->ids[i]);
    }
    *state = f;
    return 0;
}

static inline int sfx_teardown(void **state)
{
    struct sfx *f = *state;

    sh_hub_close(f->hub);
    free(f);
    return 0;
}

/* The id of a user no test used yet. */
static inline const char *sfx_user(struct sfx *f)
{
    if (f->next >= f->nusers)
        fail_msg("fixture: out of users (%d)", f->nusers);
    return f->ids[f->next++];
}

static inline const char *sfx_name_of(struct sfx *f, const char *id)
{
    for (int i = 0; i < f->nusers; i++)
        if (strcmp(f->ids[i], id) == 0)
            return f->names[i];
    return "";
}

/* ---- the event recorder ---------------------------------------------- */

static void rec_cb(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct rec *r = arg;
    size_t len = 0;
    const char *d;

    if (status != SH_OK) {
        r->final = 1;
        return;
    }
    if (r->n >= SFX_MAX_EVENTS)
        return;
    snprintf(r->type[r->n], sizeof r->type[r->n], "%s", sh_event_type(ev));
    d = sh_event_data(ev, &len);
    r->data[r->n] = strndup(d != NULL ? d : "", len);
    r->n++;
}

static inline struct rec *rec_new(sh_hub_t *hub, const char *channel)
{
    char err[SH_ERRBUF_SIZE];
    struct rec *r = calloc(1, sizeof *r);

    assert_non_null(r);
    if (sh_subscribe(hub, channel, NULL, rec_cb, r, &r->sub, NULL, err,
                     sizeof err) != SH_OK)
        fail_msg("subscribe %s: %s", channel, err);
    return r;
}

/* Run callbacks until @r holds at least @want events or ~2 s passed. */
static inline void rec_wait(sh_hub_t *hub, struct rec *r, int want)
{
    for (int i = 0; i < 200 && r->n < want; i++)
        sh_hub_poll(hub, 10);
    sh_hub_poll(hub, 0);
}

static inline void rec_free(sh_hub_t *hub, struct rec *r)
{
    sh_subscription_free(r->sub);
    for (int i = 0; i < 100 && !r->final; i++)
        sh_hub_poll(hub, 10);
    for (int i = 0; i < r->n; i++)
        free(r->data[i]);
    free(r);
}

static inline int rec_count(const struct rec *r, const char *type)
{
    int n = 0;

    for (int i = 0; i < r->n; i++)
        if (strcmp(r->type[i], type) == 0)
            n++;
    return n;
}

/* Start a stream for @actor; returns its id in @id. */
static inline void sfx_start(sh_hub_t *hub, const char *actor,
                             const char *title, const char *category,
                             char id[40])
{
    char err[SH_ERRBUF_SIZE];
    sh_stream_t *s = NULL;

    if (sh_stream_start(hub, actor, title, category, &s, err,
                        sizeof err) != SH_OK)
        fail_msg("stream start: %s", err);
    snprintf(id, 40, "%s", sh_stream_id(s));
    sh_stream_free(s);
}

static inline void sfx_follow(sh_hub_t *hub, const char *a, const char *b)
{
    char err[SH_ERRBUF_SIZE];

    if (sh_follow(hub, a, b, NULL, err, sizeof err) != SH_OK)
        fail_msg("follow: %s", err);
}

#endif
