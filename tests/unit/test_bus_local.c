/* tests/unit/test_bus_local.c: the local bus (bus/bus_local.c, event.c).
 *
 * Each test makes a dispatcher and a bus directly and runs the callbacks by
 * calling sh__dispatch_run() on the test's thread, as sh_hub_poll() does.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bus/bus_int.h"

struct fx {
    sh_config_t *conf;
    struct sh__log log;
    struct sh__dispatch *d;
    struct sh__bus *bus;
};

static struct fx *fx_new(const char *hist, const char *ttl, const char *queue)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[SH_ERRBUF_SIZE];

    assert_non_null(f);
    assert_int_equal(sh_config_new(&f->conf), SH_OK);
    assert_int_equal(sh_config_set(f->conf, "bus.history-size", hist, err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh_config_set(f->conf, "bus.history-ttl-seconds", ttl,
                                   err, sizeof err), SH_OK);
    assert_int_equal(sh_config_set(f->conf, "bus.subscriber-queue", queue,
                                   err, sizeof err), SH_OK);
    sh__log_init(&f->log, f->conf);
    assert_int_equal(sh__dispatch_new(&f->d), SH_OK);
    assert_int_equal(sh__bus_new(f->conf, &f->log, f->d, &f->bus, err,
                                 sizeof err), SH_OK);
    return f;
}

static void fx_free(struct fx *f)
{
    sh__bus_free(f->bus);
    sh__dispatch_run(f->d);
    sh__dispatch_free(f->d);
    sh_config_free(f->conf);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new("1000", "600", "4096");
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static void drain_all(struct fx *f)
{
    while (sh__dispatch_run(f->d) > 0)
        ;
}

/* A subscriber that records what it gets. */
#define REC_MAX 70000
struct rec {
    uint64_t offsets[REC_MAX];
    const sh_event_t *ptrs[REC_MAX];
    size_t n;
    int finals;
    sh_err_t final;
    sh_subscription_t *sub;
    /* Optional behaviour, by event count. */
    size_t unsub_self_at;           /* 0: never */
    sh_subscription_t *unsub_other; /* unsubscribed at the first event */
    sh_event_t *keep;               /* dup of the last event, when set */
    bool keep_events;
};

static void rec_cb(void *arg, const sh_event_t *ev, sh_err_t status)
{
    struct rec *r = arg;

    if (status != SH_OK) {
        assert_null(ev);
        r->finals++;
        r->final = status;
        return;
    }
    assert_int_equal(r->finals, 0);     /* nothing after the final call */
    assert_true(r->n < REC_MAX);
    r->offsets[r->n] = sh_event_offset(ev);
    r->ptrs[r->n] = ev;
    r->n++;
    if (r->keep_events) {
        sh_event_free(r->keep);
        r->keep = sh_event_dup(ev);
    }
    if (r->unsub_other != NULL) {
        sh__bus_unsubscribe(r->unsub_other);
        r->unsub_other = NULL;
    }
    if (r->unsub_self_at != 0 && r->n == r->unsub_self_at) {
        sh__bus_unsubscribe(r->sub);
        sh__bus_unsubscribe(r->sub);    /* a second call is a no-op */
    }
}

static struct rec *rec_new(void)
{
    struct rec *r = calloc(1, sizeof *r);

    assert_non_null(r);
    return r;
}

static void rec_free(struct rec *r)
{
    sh_event_free(r->keep);
    free(r);
}

/* Unsubscribe, deliver the final call, free. */
static void rec_end(struct fx *f, struct rec *r)
{
    sh__bus_unsubscribe(r->sub);
    drain_all(f);
    assert_int_equal(r->finals, 1);
    rec_free(r);
}

static json_object *num(int v)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "v", json_object_new_int(v));
    return o;
}

static uint64_t pub(struct fx *f, const char *ch, int v)
{
    uint64_t off = 0;
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh__bus_publish(f->bus, ch, "app.test", num(v), &off,
                                     err, sizeof err), SH_OK);
    return off;
}

static void sub(struct fx *f, const char *ch, const sh_position_t *since,
                struct rec *r, sh_subscribe_result_t *res)
{
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh__bus_subscribe(f->bus, ch, since, rec_cb, r, &r->sub,
                                       res, err, sizeof err), SH_OK);
    assert_non_null(r->sub);
}

static void assert_run(const struct rec *r, uint64_t first, uint64_t last)
{
    assert_int_equal(r->n, last >= first ? last - first + 1 : 0);
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(r->offsets[i], first + i);
}

/* ---- numbering ------------------------------------------------------ */

static void test_offsets_increase_by_one(void **state)
{
    struct fx *f = *state;
    sh_position_t p, q;

    assert_int_equal(sh__bus_position(f->bus, "chat:a", &p), SH_OK);
    assert_int_equal(p.offset, 0);
    assert_int_equal(strlen(p.epoch), 20);   /* prefix + number */
    for (int i = 1; i <= 100; i++)
        assert_int_equal(pub(f, "chat:a", i), (uint64_t)i);
    assert_int_equal(pub(f, "chat:b", 1), 1);   /* per channel */
    assert_int_equal(sh__bus_position(f->bus, "chat:a", &q), SH_OK);
    assert_int_equal(q.offset, 100);
    assert_string_equal(q.epoch, p.epoch);
    assert_int_equal(sh__bus_position(f->bus, "chat:b", &q), SH_OK);
    assert_string_not_equal(q.epoch, p.epoch);  /* per channel */
}

static void test_epoch_is_new_per_bus(void **state)
{
    struct fx *f = *state, *g = fx_new("10", "600", "16");
    sh_position_t p, q;

    assert_int_equal(sh__bus_position(f->bus, "live", &p), SH_OK);
    assert_int_equal(sh__bus_position(g->bus, "live", &q), SH_OK);
    assert_string_not_equal(p.epoch, q.epoch);
    fx_free(g);
}

static void test_publish_rejects_bad_channel(void **state)
{
    struct fx *f = *state;
    char err[SH_ERRBUF_SIZE];
    uint64_t off = 7;
    sh_position_t p;

    assert_int_equal(sh__bus_publish(f->bus, "chat:a b", "t", num(1), &off,
                                     err, sizeof err), SH_EINVAL);
    assert_int_equal(off, 0);
    assert_non_null(strstr(err, "chat:a b"));
    assert_int_equal(sh__bus_position(f->bus, "", &p), SH_EINVAL);
    assert_int_equal(sh__bus_subscribers(f->bus, "live2"), 0);
}

/* A store for the reservation hook: key -> reserved_upto, as the
 * bus_offsets table keeps it, and the calls made. */
struct fake_store {
    char keys[8][64];
    uint64_t upto[8];
    size_t n;
    int calls;
};

static sh_err_t fake_reserve(void *arg, const char *key, uint64_t n,
                             uint64_t *upto)
{
    struct fake_store *fs = arg;
    size_t i;

    fs->calls++;
    for (i = 0; i < fs->n && strcmp(fs->keys[i], key) != 0; i++)
        ;
    if (i == fs->n) {
        assert_true(fs->n < 8);
        snprintf(fs->keys[fs->n++], sizeof fs->keys[0], "%s", key);
    }
    fs->upto[i] += n;
    *upto = fs->upto[i];
    return SH_OK;
}

/* A bus on @fs, as the hub makes it: chat: channels own a sequence. */
static struct fx *fx_durable(struct fake_store *fs, uint64_t block)
{
    struct fx *f = fx_new("100", "600", "4096");
    char err[SH_ERRBUF_SIZE];

    assert_int_equal(sh__bus_set_reserver(f->bus, fake_reserve, NULL, fs, "chat:",
                                          block, err, sizeof err), SH_OK);
    return f;
}

/* A restart (a crash: nothing is given back) never repeats an offset: a
 * chat channel continues above its reserved block, every other channel
 * above the floor. */
static void test_offsets_continue_across_restart(void **state)
{
    struct fake_store fs;
    struct fx *f;
    sh_position_t p;
    uint64_t last = 0;

    (void)state;
    memset(&fs, 0, sizeof fs);
    f = fx_durable(&fs, 4);
    for (int i = 1; i <= 6; i++)
        assert_int_equal(pub(f, "chat:s", i), (uint64_t)i);
    assert_int_equal(pub(f, "app:a", 1), 1);
    assert_int_equal(pub(f, "app:a", 2), 2);
    /* Blocks of 1, 2, 4: reserved up to 7, never past what was used by
     * more than the last block. */
    assert_int_equal(fs.upto[1], 7);
    fx_free(f);

    f = fx_durable(&fs, 4);
    assert_int_equal(sh__bus_position(f->bus, "chat:s", &p), SH_OK);
    assert_int_equal(p.offset, 0);      /* not reserved yet */
    last = pub(f, "chat:s", 7);
    assert_int_equal(last, 8);          /* above the block, a gap of one */
    assert_int_equal(pub(f, "chat:s", 8), 9);
    assert_int_equal(pub(f, "app:a", 3), SH__BUS_FLOOR_BLOCK + 1);
    assert_int_equal(pub(f, "user:u", 1), SH__BUS_FLOOR_BLOCK + 1);
    fx_free(f);
}

/* A position taken before a chat channel's first reservation (offset 0)
 * still recovers: the epoch's numbering starts above base. */
static void test_recover_from_before_first_reservation(void **state)
{
    struct fake_store fs;
    struct fx *f;
    struct rec *r = rec_new(), *q = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;

    (void)state;
    memset(&fs, 0, sizeof fs);
    fs.n = 1;
    snprintf(fs.keys[0], sizeof fs.keys[0], "chat:r");
    fs.upto[0] = 40;
    f = fx_durable(&fs, 8);
    assert_int_equal(sh__bus_position(f->bus, "chat:r", &p), SH_OK);
    assert_int_equal(p.offset, 0);
    assert_int_equal(pub(f, "chat:r", 1), 41);
    assert_int_equal(pub(f, "chat:r", 2), 42);
    sub(f, "chat:r", &p, r, &res);
    assert_int_equal(res.recovered, 1);
    drain_all(f);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->offsets[0], 41);
    sh__bus_unsubscribe(r->sub);
    drain_all(f);
    /* An offset below the epoch's first that is not 0 was never handed
     * out in this epoch: no recovery claimed. */
    p.offset = 5;
    sub(f, "chat:r", &p, q, &res);
    assert_int_equal(res.recovered, 0);
    sh__bus_unsubscribe(q->sub);
    drain_all(f);
    fx_free(f);
    rec_free(r);
    rec_free(q);
}

/* Claimed offsets are published in order, whatever the order of their
 * release; an event published meanwhile waits behind them; a claim given
 * up leaves a gap and holds nothing back. */
static void test_claims_release_in_order(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    struct sh__bus_claim c1, c2, c4;
    sh_position_t p;
    char err[SH_ERRBUF_SIZE];

    sub(f, "chat:c", NULL, r, NULL);
    assert_int_equal(sh__bus_claim_spliced(f->bus, "chat:c", "t", "{\"o\":",
                                           5, "}", 1, &c1, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh__bus_claim_spliced(f->bus, "chat:c", "t", "{\"o\":",
                                           5, "}", 1, &c2, err, sizeof err),
                     SH_OK);
    assert_int_equal(c1.offset, 1);
    assert_int_equal(c2.offset, 2);
    assert_int_equal(pub(f, "chat:c", 3), 3);
    sh__bus_release(f->bus, &c2, true);
    drain_all(f);
    assert_int_equal(r->n, 0);
    assert_int_equal(sh__bus_position(f->bus, "chat:c", &p), SH_OK);
    assert_int_equal(p.offset, 0);      /* nothing published yet */
    sh__bus_release(f->bus, &c1, true);
    sh__bus_release(f->bus, &c1, true); /* empty now: a no-op */
    drain_all(f);
    assert_int_equal(r->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(r->offsets[i], i + 1);
    assert_int_equal(sh__bus_claim_spliced(f->bus, "chat:c", "t", "{\"o\":",
                                           5, "}", 1, &c4, err, sizeof err),
                     SH_OK);
    assert_int_equal(pub(f, "chat:c", 5), 5);
    sh__bus_release(f->bus, &c4, false);
    drain_all(f);
    assert_int_equal(r->n, 4);
    assert_int_equal(r->offsets[3], 5);
    sh__bus_unsubscribe(r->sub);
    drain_all(f);
    rec_free(r);
}

static json_object *build_with_offset(void *arg, uint64_t offset,
                                      int64_t ts_ms)
{
    json_object *o = json_object_new_object();

    (void)ts_ms;
    *(int *)arg += 1;
    json_object_object_add(o, "offset", json_object_new_uint64(offset));
    return o;
}

static json_object *build_fail(void *arg, uint64_t offset, int64_t ts_ms)
{
    (void)arg;
    (void)offset;
    (void)ts_ms;
    return NULL;
}

static void test_publish_build_sees_offset(void **state)
{
    struct fx *f = *state;
    struct sh_event *ev = NULL;
    uint64_t off = 0;
    int calls = 0;
    sh_position_t p;

    pub(f, "chat:b", 1);
    assert_int_equal(sh__bus_publish_build(f->bus, "chat:b", "chat.message",
                                           build_with_offset, &calls, &off,
                                           &ev, NULL, 0), SH_OK);
    assert_int_equal(calls, 1);
    assert_int_equal(off, 2);
    assert_non_null(ev);
    assert_string_equal(sh_event_data(ev, NULL), "{\"offset\":2}");
    sh__event_unref(ev);
    /* A failed build consumes no offset. */
    assert_int_equal(sh__bus_publish_build(f->bus, "chat:b", "x", build_fail,
                                           NULL, &off, &ev, NULL, 0),
                     SH_ENOMEM);
    assert_null(ev);
    assert_int_equal(off, 0);
    assert_int_equal(sh__bus_position(f->bus, "chat:b", &p), SH_OK);
    assert_int_equal(p.offset, 2);
}

/* ---- events ---------------------------------------------------------- */

/* Batched text events: bad items are skipped and counted, the rest are
 * numbered per channel, carry the text verbatim and no json-c object. */
static void test_publish_many(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    char err[SH_ERRBUF_SIZE] = "";
    char huge[300];
    const char *txt = "{\"id\":\"x\",\"n\":1}";
    struct sh__bus_item items[6];
    const char *data, *json;
    size_t len = 0;

    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    r->keep_events = true;
    sub(f, "user:b", NULL, r, NULL);
    items[0] = (struct sh__bus_item){ "user:a", txt, strlen(txt) };
    items[1] = (struct sh__bus_item){ "", txt, strlen(txt) };
    items[2] = (struct sh__bus_item){ "user:b", txt, strlen(txt) };
    items[3] = (struct sh__bus_item){ "a..b", txt, strlen(txt) };
    items[4] = (struct sh__bus_item){ huge, txt, strlen(txt) };
    items[5] = (struct sh__bus_item){ "user:b", "{}", 2 };
    assert_int_equal(sh__bus_publish_many(f->bus, "notification", items, 0,
                                          err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(sh__bus_publish_many(f->bus, "notification", items, 6,
                                          err, sizeof err), 3);
    assert_non_null(strstr(err, "3 of 6"));
    drain_all(f);
    assert_run(r, 1, 2);
    data = sh_event_data(r->keep, &len);
    assert_int_equal(len, 2);
    assert_string_equal(data, "{}");
    json = sh_event_json(r->keep, &len);
    assert_string_equal(json, "{\"channel\":\"user:b\",\"offset\":2,"
                        "\"event\":{\"type\":\"notification\",\"data\":{}}}");
    assert_int_equal(len, strlen(json));
    assert_int_equal(sh__bus_publish_many(f->bus, "notification", items, 1,
                                          NULL, 0), 1);
    assert_int_equal(sh__bus_subscribers(f->bus, "user:a"), 0);
    rec_end(f, r);
}

/* The offset lands between head and tail; each event gets its own. */
static void test_publish_spliced(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    char err[SH_ERRBUF_SIZE];
    const char *head = "{\"a\":\"\\u0000\",\"offset\":", *tail = ",\"z\":true}";
    uint64_t off = 0;
    const char *data;
    size_t len = 0;

    r->keep_events = true;
    sub(f, "chat:s", NULL, r, NULL);
    pub(f, "chat:s", 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(sh__bus_publish_spliced(f->bus, "chat:s",
                                                 "chat.message", head,
                                                 strlen(head), tail,
                                                 strlen(tail), &off, err,
                                                 sizeof err), SH_OK);
    assert_int_equal(off, 3);
    drain_all(f);
    assert_run(r, 1, 3);
    data = sh_event_data(r->keep, &len);
    assert_string_equal(data, "{\"a\":\"\\u0000\",\"offset\":3,\"z\":true}");
    assert_int_equal(len, strlen(data));
    /* An empty tail and a one-byte head are fine; a bad channel is not. */
    assert_int_equal(sh__bus_publish_spliced(f->bus, "chat:s", "t", "[", 1,
                                             "]", 1, &off, err, sizeof err),
                     SH_OK);
    assert_int_equal(sh__bus_publish_spliced(f->bus, "chat:s", "t", "", 0,
                                             "", 0, &off, err, sizeof err),
                     SH_OK);
    drain_all(f);
    data = sh_event_data(r->keep, &len);
    assert_string_equal(data, "5");
    assert_int_equal(sh__bus_publish_spliced(f->bus, "chat:\x01", "t", "[",
                                             1, "]", 1, &off, err,
                                             sizeof err), SH_EINVAL);
    assert_int_equal(off, 0);
    rec_end(f, r);
}

static void test_event_json_shape(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    const char *data = "{\"a\":1,\"s\":\"x/y \\u00e9\",\"n\":null}";
    json_object *frame, *o, *ev;
    sh_position_t p;
    size_t len;
    int64_t before = sh__now_ms();

    r->keep_events = true;
    sub(f, "app:game", NULL, r, NULL);
    assert_int_equal(sh__bus_publish(f->bus, "app:game", "app.score",
                                     json_tokener_parse(data), NULL, NULL, 0),
                     SH_OK);
    drain_all(f);
    assert_int_equal(r->n, 1);
    assert_non_null(r->keep);
    assert_string_equal(sh_event_channel(r->keep), "app:game");
    assert_string_equal(sh_event_type(r->keep), "app.score");
    assert_int_equal(sh_event_offset(r->keep), 1);
    assert_int_equal(sh__bus_position(f->bus, "app:game", &p), SH_OK);
    assert_string_equal(sh_event_epoch(r->keep), p.epoch);
    assert_true(sh_event_time_ms(r->keep) >= before);
    assert_true(sh_event_time_ms(r->keep) <= sh__now_ms());
    assert_string_equal(sh_event_data(r->keep, &len),
                        "{\"a\":1,\"s\":\"x/y \xc3\xa9\",\"n\":null}");
    assert_int_equal(len, strlen(sh_event_data(r->keep, NULL)));
    assert_string_equal(sh_event_json(r->keep, &len),
                        "{\"channel\":\"app:game\",\"offset\":1,\"event\":"
                        "{\"type\":\"app.score\",\"data\":{\"a\":1,\"s\":"
                        "\"x/y \xc3\xa9\",\"n\":null}}}");
    assert_int_equal(len, strlen(sh_event_json(r->keep, NULL)));
    frame = json_tokener_parse(sh_event_json(r->keep, NULL));
    assert_non_null(frame);
    assert_true(json_object_object_get_ex(frame, "event", &ev));
    assert_true(json_object_object_get_ex(ev, "data", &o));
    assert_true(json_object_object_get_ex(o, "a", &o));
    assert_int_equal(json_object_get_int(o), 1);
    json_object_put(frame);
    /* JSON null data is a value, not an error. */
    assert_int_equal(sh__bus_publish(f->bus, "app:game", "app.null", NULL,
                                     NULL, NULL, 0), SH_OK);
    drain_all(f);
    assert_string_equal(sh_event_data(r->keep, NULL), "null");
    /* NULL accessors are harmless. */
    assert_null(sh_event_channel(NULL));
    assert_int_equal(sh_event_offset(NULL), 0);
    assert_null(sh_event_data(NULL, &len));
    assert_int_equal(len, 0);
    sh_event_free(NULL);
    rec_end(f, r);
}

static void test_one_event_shared_by_all(void **state)
{
    struct fx *f = *state;
    struct rec *a = rec_new(), *b = rec_new();
    struct sh_event *ev = NULL;
    int calls = 0;

    sub(f, "live", NULL, a, NULL);
    sub(f, "live", NULL, b, NULL);
    assert_int_equal(sh__bus_subscribers(f->bus, "live"), 2);
    assert_int_equal(sh__bus_publish_build(f->bus, "live", "stream.live",
                                           build_with_offset, &calls, NULL,
                                           &ev, NULL, 0), SH_OK);
    drain_all(f);
    assert_int_equal(a->n, 1);
    assert_int_equal(b->n, 1);
    assert_ptr_equal(a->ptrs[0], b->ptrs[0]);
    assert_ptr_equal(a->ptrs[0], ev);
    assert_int_equal(atomic_load(&ev->refs), 2);   /* ours + history */
    sh__event_unref(ev);
    rec_end(f, a);
    rec_end(f, b);
}

static int wire_frees;

static void wire_free(void *p)
{
    wire_frees++;
    free(p);
}

static void test_wire_cache_freed_with_event(void **state)
{
    struct fx *f = *state;
    struct sh_event *ev = NULL;
    int calls = 0;
    void *expect = NULL;

    assert_int_equal(sh__bus_publish_build(f->bus, "chat:w", "t",
                                           build_with_offset, &calls, NULL,
                                           &ev, NULL, 0), SH_OK);
    ev->wire_free = wire_free;
    assert_true(atomic_compare_exchange_strong(&ev->wire, &expect,
                                               malloc(16)));
    sh_event_free(sh_event_dup(ev));
    sh__event_unref(ev);
    assert_int_equal(wire_frees, 0);    /* the history still holds it */
    fx_free(f);
    *state = fx_new("1000", "600", "4096");
    assert_int_equal(wire_frees, 1);
}

/* ---- recovery --------------------------------------------------------- */

static void test_recover_nothing_missed_with_empty_history(void **state)
{
    struct fx *f = fx_new("0", "600", "16");
    struct rec *r = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;

    (void)state;
    pub(f, "chat:r", 1);
    pub(f, "chat:r", 2);
    assert_int_equal(sh__bus_position(f->bus, "chat:r", &p), SH_OK);
    sub(f, "chat:r", &p, r, &res);
    assert_int_equal(res.recovered, 1);
    assert_string_equal(res.current.epoch, p.epoch);
    assert_int_equal(res.current.offset, 2);
    pub(f, "chat:r", 3);
    drain_all(f);
    assert_run(r, 3, 3);
    /* One behind with no history: false. */
    {
        struct rec *s = rec_new();
        p.offset = 1;
        sub(f, "chat:r", &p, s, &res);
        assert_int_equal(res.recovered, 0);
        assert_int_equal(res.current.offset, 3);
        drain_all(f);
        assert_int_equal(s->n, 0);
        sh__bus_unsubscribe(s->sub);
        drain_all(f);
        assert_int_equal(s->finals, 1);
        rec_free(s);
    }
    fx_free(f);
    assert_int_equal(r->finals, 1);
    rec_free(r);
}

static void test_recover_replays_then_live(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;

    assert_int_equal(sh__bus_position(f->bus, "chat:r", &p), SH_OK);
    for (int i = 1; i <= 10; i++)
        pub(f, "chat:r", i);
    p.offset = 4;
    sub(f, "chat:r", &p, r, &res);
    assert_int_equal(res.recovered, 1);
    assert_int_equal(res.current.offset, 10);
    pub(f, "chat:r", 11);
    drain_all(f);
    assert_run(r, 5, 11);
    /* From offset 0 of the current epoch: everything. */
    {
        struct rec *s = rec_new();
        p.offset = 0;
        sub(f, "chat:r", &p, s, &res);
        assert_int_equal(res.recovered, 1);
        drain_all(f);
        assert_run(s, 1, 11);
        sh__bus_unsubscribe(s->sub);
        drain_all(f);
        assert_int_equal(s->finals, 1);
        rec_free(s);
    }
    sh__bus_unsubscribe(r->sub);
    drain_all(f);
    assert_int_equal(r->finals, 1);
    rec_free(r);
}

static void test_recover_refusals(void **state)
{
    struct fx *f = *state;
    struct rec *r[5];
    sh_subscribe_result_t res;
    sh_position_t p, bad;

    for (int i = 1; i <= 5; i++)
        pub(f, "chat:q", i);
    assert_int_equal(sh__bus_position(f->bus, "chat:q", &p), SH_OK);
    for (size_t i = 0; i < 5; i++)
        r[i] = rec_new();
    /* Beyond the top. */
    bad = p;
    bad.offset = 6;
    sub(f, "chat:q", &bad, r[0], &res);
    assert_int_equal(res.recovered, 0);
    assert_string_equal(res.current.epoch, p.epoch);
    assert_int_equal(res.current.offset, 5);
    /* Another epoch. */
    bad = p;
    bad.epoch[0] = bad.epoch[0] == 'a' ? 'b' : 'a';
    bad.offset = 2;
    sub(f, "chat:q", &bad, r[1], &res);
    assert_int_equal(res.recovered, 0);
    /* Empty epoch. */
    memset(&bad, 0, sizeof bad);
    bad.offset = 2;
    sub(f, "chat:q", &bad, r[2], &res);
    assert_int_equal(res.recovered, 0);
    /* Unterminated epoch. */
    memset(bad.epoch, 'a', sizeof bad.epoch);
    sub(f, "chat:q", &bad, r[3], &res);
    assert_int_equal(res.recovered, 0);
    /* No position at all. */
    sub(f, "chat:q", NULL, r[4], &res);
    assert_int_equal(res.recovered, 0);
    assert_int_equal(res.current.offset, 5);
    drain_all(f);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r[i]->n, 0);   /* live only */
        sh__bus_unsubscribe(r[i]->sub);
    }
    drain_all(f);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r[i]->finals, 1);
        rec_free(r[i]);
    }
}

static void test_recover_history_trimmed_by_size(void **state)
{
    struct fx *f = fx_new("5", "600", "16");
    struct rec *a = rec_new(), *b = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;

    (void)state;
    for (int i = 1; i <= 10; i++)
        pub(f, "chat:t", i);    /* history holds 6..10 */
    assert_int_equal(sh__bus_position(f->bus, "chat:t", &p), SH_OK);
    p.offset = 4;               /* needs 5: gone */
    sub(f, "chat:t", &p, a, &res);
    assert_int_equal(res.recovered, 0);
    p.offset = 5;               /* needs 6: exactly the oldest kept */
    sub(f, "chat:t", &p, b, &res);
    assert_int_equal(res.recovered, 1);
    drain_all(f);
    assert_int_equal(a->n, 0);
    assert_run(b, 6, 10);
    fx_free(f);
    assert_int_equal(a->finals, 1);
    assert_int_equal(b->finals, 1);
    assert_int_equal(a->final, SH_ECANCELED);
    rec_free(a);
    rec_free(b);
}

static void test_recover_history_trimmed_by_age_and_reclaim(void **state)
{
    struct fx *f = fx_new("100", "1", "16");
    struct rec *a = rec_new(), *b = rec_new(), *holder = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;
    struct timespec nap = { 1, 100 * 1000 * 1000 };

    (void)state;
    for (int i = 1; i <= 3; i++)
        pub(f, "chat:age", i);
    for (int i = 0; i < 50; i++) {
        char ch[32];
        snprintf(ch, sizeof ch, "app:n%d", i);
        pub(f, ch, i);
    }
    assert_int_equal(sh__bus_channels(f->bus), 51);
    assert_int_equal(sh__bus_position(f->bus, "chat:age", &p), SH_OK);
    /* A subscriber keeps the channel (and its numbering) alive. */
    sub(f, "chat:age", NULL, holder, NULL);
    nanosleep(&nap, NULL);
    p.offset = 1;
    sub(f, "chat:age", &p, a, &res);    /* 2 and 3 expired */
    assert_int_equal(res.recovered, 0);
    assert_int_equal(res.current.offset, 3);
    p.offset = 3;                       /* nothing missed */
    sub(f, "chat:age", &p, b, &res);
    assert_int_equal(res.recovered, 1);
    /* The idle channels are reclaimed; the one with subscribers stays. */
    assert_int_equal(sh__bus_channels(f->bus), 1);
    sh__bus_unsubscribe(a->sub);
    sh__bus_unsubscribe(b->sub);
    sh__bus_unsubscribe(holder->sub);
    drain_all(f);
    assert_int_equal(a->finals + b->finals + holder->finals, 3);
    nanosleep(&nap, NULL);
    assert_int_equal(sh__bus_channels(f->bus), 0);
    /* A reclaimed channel comes back with a new epoch, and its offsets
     * continue above every offset it handed out (PROTOCOL.md). */
    {
        sh_position_t q;
        assert_int_equal(sh__bus_position(f->bus, "chat:age", &q), SH_OK);
        assert_string_not_equal(q.epoch, p.epoch);
        assert_int_equal(q.offset, 3);
        assert_int_equal(pub(f, "chat:age", 4), 4);
    }
    fx_free(f);
    rec_free(a);
    rec_free(b);
    rec_free(holder);
}

/* Channel names come from clients: subscribing to ever new names and
 * leaving must not keep a channel each for the whole TTL once there are
 * more than bus.max-idle-channels; a channel with a subscriber or with
 * history stays. */
static void test_idle_channels_are_bounded(void **state)
{
    struct fx *f = fx_new("100", "600", "16");
    struct rec *holder = rec_new();
    struct timespec nap = { 1, 100 * 1000 * 1000 };
    char err[SH_ERRBUF_SIZE];

    (void)state;
    /* A bus of its own with a small bound. */
    sh__bus_free(f->bus);
    assert_int_equal(sh_config_set(f->conf, "bus.max-idle-channels", "100",
                                   err, sizeof err), SH_OK);
    assert_int_equal(sh__bus_new(f->conf, &f->log, f->d, &f->bus, err,
                                 sizeof err), SH_OK);
    sub(f, "app:held", NULL, holder, NULL);
    pub(f, "app:published", 1);
    for (int i = 0; i < 1000; i++) {
        struct rec *r = rec_new();
        char ch[32];

        snprintf(ch, sizeof ch, "app:flood%d", i);
        sub(f, ch, NULL, r, NULL);
        sh__bus_unsubscribe(r->sub);
        drain_all(f);
        rec_free(r);
    }
    nanosleep(&nap, NULL);          /* one sweep interval */
    assert_true(sh__bus_channels(f->bus) <= 100);
    assert_int_equal(sh__bus_channels(f->bus), 2);
    sh__bus_unsubscribe(holder->sub);
    drain_all(f);
    fx_free(f);
    rec_free(holder);
}

/* A publisher hammers while subscribers join at random positions: each
 * must see every offset after its position exactly once, in order. */
#define RACE_N 20000
struct racer {
    struct fx *f;
    _Atomic uint64_t done;
};

static void *race_pub(void *arg)
{
    struct racer *rc = arg;

    for (int i = 1; i <= RACE_N; i++) {
        uint64_t off = 0;
        assert_int_equal(sh__bus_publish(rc->f->bus, "chat:race", "t",
                                         num(i), &off, NULL, 0), SH_OK);
        atomic_store(&rc->done, off);
    }
    return NULL;
}

static void test_recover_while_publishing(void **state)
{
    struct fx *f = fx_new("100000", "600", "1048576");
    struct racer rc = { f, 0 };
    struct rec *r[8];
    sh_position_t since[8];
    pthread_t t;

    (void)state;
    assert_int_equal(sh__bus_position(f->bus, "chat:race", &since[0]),
                     SH_OK);
    assert_int_equal(pthread_create(&t, NULL, race_pub, &rc), 0);
    for (size_t i = 0; i < 8; i++) {
        sh_subscribe_result_t res;
        uint64_t seen;
        r[i] = rec_new();
        while ((seen = atomic_load(&rc.done)) < (i + 1) * RACE_N / 10)
            sh__dispatch_run(f->d);
        since[i] = since[0];
        since[i].offset = seen - (i % 3) * 7;   /* a little behind */
        sub(f, "chat:race", &since[i], r[i], &res);
        assert_int_equal(res.recovered, 1);
        assert_true(res.current.offset >= since[i].offset);
        sh__dispatch_run(f->d);
    }
    pthread_join(t, NULL);
    drain_all(f);
    for (size_t i = 0; i < 8; i++) {
        assert_run(r[i], since[i].offset + 1, RACE_N);
        assert_int_equal(r[i]->finals, 0);
    }
    fx_free(f);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(r[i]->finals, 1);
        rec_free(r[i]);
    }
}

/* ---- redaction -------------------------------------------------------- */

static json_object *redact_2(void *arg, const struct sh_event *ev)
{
    json_object *o;

    (void)arg;
    if (ev->offset != 2)
        return NULL;
    o = json_object_new_object();
    json_object_object_add(o, "deleted", json_object_new_boolean(1));
    json_object_object_add(o, "text", json_object_new_string(""));
    return o;
}

static void test_rewrite_reaches_recovery_only(void **state)
{
    struct fx *f = *state;
    struct rec *live = rec_new(), *later = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;
    sh_event_t *held;

    assert_int_equal(sh__bus_position(f->bus, "chat:m", &p), SH_OK);
    sub(f, "chat:m", NULL, live, NULL);
    for (int i = 1; i <= 3; i++)
        pub(f, "chat:m", i);
    drain_all(f);
    assert_run(live, 1, 3);
    held = sh_event_dup(live->ptrs[1]);
    assert_int_equal(sh__bus_rewrite(f->bus, "chat:m", redact_2, NULL), 1);
    assert_int_equal(sh__bus_rewrite(f->bus, "chat:none", redact_2, NULL),
                     0);
    assert_int_equal(sh__bus_rewrite(f->bus, "bad name", redact_2, NULL),
                     -(int)SH_EINVAL);
    /* The live subscriber's event is unchanged. */
    assert_string_equal(sh_event_data(held, NULL), "{\"v\":2}");
    /* A later recovery sees the redacted one, same offset and epoch. */
    sub(f, "chat:m", &p, later, &res);
    assert_int_equal(res.recovered, 1);
    later->keep_events = false;
    drain_all(f);
    assert_run(later, 1, 3);
    assert_ptr_not_equal(later->ptrs[1], held);
    assert_ptr_equal(later->ptrs[0], live->ptrs[0]);
    /* The pointers of a finished delivery are not dereferenced; compare
     * through a fresh recovery holding the events. */
    {
        struct rec *k = rec_new();
        k->keep_events = true;
        p.offset = 1;
        sub(f, "chat:m", &p, k, &res);
        k->unsub_self_at = 1;   /* keep only offset 2 */
        drain_all(f);
        assert_int_equal(k->n, 1);
        assert_int_equal(sh_event_offset(k->keep), 2);
        assert_string_equal(sh_event_data(k->keep, NULL),
                            "{\"deleted\":true,\"text\":\"\"}");
        assert_string_equal(sh_event_epoch(k->keep), p.epoch);
        assert_string_equal(sh_event_type(k->keep), "app.test");
        assert_non_null(strstr(sh_event_json(k->keep, NULL),
                               "\"offset\":2,"));
        assert_int_equal(k->finals, 1);
        rec_free(k);
    }
    sh_event_free(held);
    sh__bus_unsubscribe(live->sub);
    sh__bus_unsubscribe(later->sub);
    drain_all(f);
    rec_free(live);
    rec_free(later);
}

/* ---- delivery, drop, unsubscribe --------------------------------------- */

static void test_slow_subscriber_dropped_with_ebusy(void **state)
{
    struct fx *f = fx_new("100", "600", "16");
    struct rec *slow = rec_new(), *fast = rec_new();
    sh_subscribe_result_t res;
    sh_position_t p;

    (void)state;
    assert_int_equal(sh__bus_position(f->bus, "chat:d", &p), SH_OK);
    for (int i = 1; i <= 10; i++)
        pub(f, "chat:d", i);
    sub(f, "chat:d", &p, slow, &res);   /* 10 queued behind */
    assert_int_equal(res.recovered, 1);
    sub(f, "chat:d", NULL, fast, NULL);
    for (int i = 11; i <= 26; i++)      /* slow: 10 + 7 > 16 */
        pub(f, "chat:d", i);
    assert_int_equal(sh__bus_subscribers(f->bus, "chat:d"), 1);
    drain_all(f);
    assert_int_equal(slow->finals, 1);
    assert_int_equal(slow->final, SH_EBUSY);
    assert_int_equal(slow->n, 0);      /* its queue went with it */
    assert_run(fast, 11, 26);
    assert_int_equal(fast->finals, 0);
    fx_free(f);
    assert_int_equal(slow->finals, 1);   /* not twice */
    assert_int_equal(fast->finals, 1);
    assert_int_equal(fast->final, SH_ECANCELED);
    rec_free(slow);
    rec_free(fast);
}

static void test_unsubscribe_inside_own_callback(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();

    r->unsub_self_at = 2;
    sub(f, "chat:u", NULL, r, NULL);
    for (int i = 1; i <= 5; i++)
        pub(f, "chat:u", i);    /* all five queued before delivery */
    drain_all(f);
    assert_run(r, 1, 2);        /* nothing after the call */
    assert_int_equal(r->finals, 1);
    assert_int_equal(r->final, SH_ECANCELED);
    assert_int_equal(sh__bus_subscribers(f->bus, "chat:u"), 0);
    pub(f, "chat:u", 6);
    drain_all(f);
    assert_int_equal(r->n, 2);
    rec_free(r);
}

static void test_callback_unsubscribes_another(void **state)
{
    struct fx *f = *state;
    struct rec *a = rec_new(), *b = rec_new();

    sub(f, "chat:o", NULL, b, NULL);
    sub(f, "chat:o", NULL, a, NULL);    /* a is first in the list */
    a->unsub_other = b->sub;
    for (int i = 1; i <= 3; i++)
        pub(f, "chat:o", i);
    drain_all(f);
    assert_run(a, 1, 3);
    assert_int_equal(b->n, 0);         /* a's job ran first */
    assert_int_equal(b->finals, 1);
    assert_int_equal(b->final, SH_ECANCELED);
    assert_int_equal(a->finals, 0);
    sh__bus_unsubscribe(a->sub);
    drain_all(f);
    assert_int_equal(a->finals, 1);
    rec_free(a);
    rec_free(b);
}

static void test_final_exactly_once(void **state)
{
    struct fx *f = fx_new("10", "600", "16");
    struct rec *r[3];

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        r[i] = rec_new();
        sub(f, "user:x", NULL, r[i], NULL);
    }
    pub(f, "user:x", 1);
    /* Unsubscribed twice with an event queued: no event, one final. */
    sh__bus_unsubscribe(r[0]->sub);
    sh__bus_unsubscribe(r[0]->sub);
    drain_all(f);
    assert_int_equal(r[0]->n, 0);
    assert_int_equal(r[0]->finals, 1);
    assert_int_equal(r[1]->n, 1);
    pub(f, "user:x", 2);        /* queued, never delivered: bus freed */
    sh__bus_unsubscribe(NULL);
    fx_free(f);
    for (size_t i = 1; i < 3; i++) {
        assert_int_equal(r[i]->n, 1);
        assert_int_equal(r[i]->finals, 1);
        assert_int_equal(r[i]->final, SH_ECANCELED);
    }
    for (size_t i = 0; i < 3; i++)
        rec_free(r[i]);
}

/* Unsubscribe from another thread while the callback thread delivers. */
struct cross {
    struct fx *f;
    struct rec *r;
};

static void *cross_unsub(void *arg)
{
    struct cross *c = arg;

    sh__bus_unsubscribe(c->r->sub);
    return NULL;
}

static void test_unsubscribe_from_other_thread(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    struct cross c = { f, r };
    pthread_t t;

    sub(f, "stream:c", NULL, r, NULL);
    for (int i = 1; i <= 100; i++)
        pub(f, "stream:c", i);
    assert_int_equal(pthread_create(&t, NULL, cross_unsub, &c), 0);
    sh__dispatch_run(f->d);
    pthread_join(t, NULL);
    drain_all(f);
    assert_int_equal(r->finals, 1);
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(r->offsets[i], i + 1);
    rec_free(r);
}

static void test_subscribe_errors(void **state)
{
    struct fx *f = *state;
    struct rec *r = rec_new();
    sh_subscription_t *s = (sh_subscription_t *)r;
    sh_subscribe_result_t res;
    char err[SH_ERRBUF_SIZE];

    res.recovered = 7;
    assert_int_equal(sh__bus_subscribe(f->bus, "chat:\x01", NULL, rec_cb, r,
                                       &s, &res, err, sizeof err), SH_EINVAL);
    assert_null(s);
    assert_int_equal(res.recovered, 0);
    assert_non_null(strstr(err, "\\x01"));
    s = (sh_subscription_t *)r;
    assert_int_equal(sh__bus_subscribe(f->bus, "live", NULL, NULL, r, &s,
                                       NULL, err, sizeof err), SH_EINVAL);
    assert_null(s);
    drain_all(f);
    assert_int_equal(r->finals, 0);     /* no callback on error */
    rec_free(r);
}

static void test_bus_config(void **state)
{
    sh_config_t *c = NULL;
    struct sh__dispatch *d = NULL;
    struct sh__log lg;
    struct sh__bus *bus = (struct sh__bus *)&lg;   /* must become NULL */
    char err[SH_ERRBUF_SIZE];

    (void)state;
    assert_int_equal(sh_config_new(&c), SH_OK);
    sh__log_init(&lg, c);
    assert_int_equal(sh__dispatch_new(&d), SH_OK);
    /* A Redis URI without a port is refused when the bus starts. */
    assert_int_equal(sh_config_set(c, "bus", "redis://127.0.0.1", err,
                                   sizeof err), SH_OK);
    assert_int_equal(sh__bus_new(c, &lg, d, &bus, err, sizeof err),
                     SH_EINVAL);
    assert_null(bus);
    assert_non_null(strstr(err, "redis://"));
    /* Other values are refused by the configuration itself. */
    assert_int_equal(sh_config_set(c, "bus", "carrier-pigeon", err,
                                   sizeof err), SH_EINVAL);
    sh__bus_free(NULL);
    sh__dispatch_free(d);
    sh_config_free(c);
}

static void test_bus_freed_before_dispatcher(void **state)
{
    struct fx *f = fx_new("10", "600", "16");
    struct rec *r = rec_new();

    (void)state;
    sub(f, "live", NULL, r, NULL);
    pub(f, "live", 1);
    /* The bus goes first (as in sh_hub_close), the dispatcher then runs
     * what is left with canceled = true: one final, no event. */
    sh__bus_free(f->bus);
    sh__dispatch_free(f->d);
    assert_int_equal(r->n, 0);
    assert_int_equal(r->finals, 1);
    assert_int_equal(r->final, SH_ECANCELED);
    sh_config_free(f->conf);
    free(f);
    rec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offsets_increase_by_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_epoch_is_new_per_bus, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_rejects_bad_channel,
                                        setup, teardown),
        cmocka_unit_test(test_offsets_continue_across_restart),
        cmocka_unit_test(test_recover_from_before_first_reservation),
        cmocka_unit_test_setup_teardown(test_claims_release_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_build_sees_offset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_spliced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_event_json_shape, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_event_shared_by_all, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wire_cache_freed_with_event,
                                        setup, teardown),
        cmocka_unit_test(test_recover_nothing_missed_with_empty_history),
        cmocka_unit_test_setup_teardown(test_recover_replays_then_live, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recover_refusals, setup,
                                        teardown),
        cmocka_unit_test(test_recover_history_trimmed_by_size),
        cmocka_unit_test(test_recover_history_trimmed_by_age_and_reclaim),
        cmocka_unit_test(test_idle_channels_are_bounded),
        cmocka_unit_test(test_recover_while_publishing),
        cmocka_unit_test_setup_teardown(test_rewrite_reaches_recovery_only,
                                        setup, teardown),
        cmocka_unit_test(test_slow_subscriber_dropped_with_ebusy),
        cmocka_unit_test_setup_teardown(test_unsubscribe_inside_own_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_unsubscribes_another,
                                        setup, teardown),
        cmocka_unit_test(test_final_exactly_once),
        cmocka_unit_test_setup_teardown(test_unsubscribe_from_other_thread,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_errors, setup,
                                        teardown),
        cmocka_unit_test(test_bus_config),
        cmocka_unit_test(test_bus_freed_before_dispatcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
