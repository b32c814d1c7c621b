/* libstreamhub/bus/event.c: events, their texts and their references.
 *
 * An event is built once at publish: its data object is serialised once
 * with json-c to `data_json`, and the native protocol's frame
 * {"channel":…,"offset":…,"event":{"type":…,"data":…}} is assembled around
 * that text into `json` (same allocation).  After that nothing in it changes but `wire` (the gateway's
 * cached encoding, set once by compare-and-swap), so any thread may read it
 * without a lock and every subscriber shares the same object.
 *
 * json-c objects are not safe to serialise from two threads at once (the
 * object caches its text), so readers use the texts, never
 * json_object_to_json_string() on `data`.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_int.h"
#include "core/otel_int.h"

_Static_assert(sizeof ((struct sh_event *)0)->traceparent ==
               SH__TRACEPARENT_LEN + 1, "a traceparent fits");

#define TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* True when @s needs no escaping inside a JSON string.  Channel names and
 * event types are checked to a safe character set before they get here;
 * this keeps that assumption honest. */
static bool json_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    }
    return true;
}

/* The event, its channel and type, the data text and the native frame
 * text in ONE allocation:
 * struct, "<channel>\0<type>\0<data>\0{"channel":"<c>","offset":<n>,
 * "event":{"type":"<t>","data":<data>}}\0".
 * The frame is assembled from the data's single serialisation rather than
 * by building a second json-c object per event, and one malloc() serves
 * the whole event: publishing to many channels (a go-live notifying
 * 100,000 followers) pays for this per event.  @d is JSON text that json-c
 * produced (sh__event_new) or that the caller vouches for
 * (sh__event_new_text); channel and type need no escaping (checked). */
static struct sh_event *event_alloc(const char *channel, const char *epoch,
                                    uint64_t offset, int64_t ts_ms,
                                    const char *type, const char *d,
                                    size_t dl, const char *mid, size_t ml,
                                    const char *d2, size_t dl2)
{
    static const char p1[] = "{\"channel\":\"", p2[] = "\",\"offset\":",
                      p3[] = ",\"event\":{\"type\":\"", p4[] = "\",\"data\":",
                      p5[] = "}}";
    char num[24];
    size_t cl = strlen(channel), tl = strlen(type), nl, fl;
    struct sh_event *ev;
    char *f;

    if (!json_safe(channel) || !json_safe(type))
        return NULL;
    nl = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)offset);
    fl = sizeof p1 - 1 + cl + sizeof p2 - 1 + nl + sizeof p3 - 1 + tl +
         sizeof p4 - 1 + dl + ml + dl2 + sizeof p5 - 1;
    ev = malloc(sizeof *ev + cl + 1 + tl + 1 + dl + ml + dl2 + 1 + fl + 1);
    if (ev == NULL)
        return NULL;
    memset(ev, 0, sizeof *ev);
    atomic_init(&ev->refs, 1);
    atomic_init(&ev->wire, NULL);
    ev->offset = offset;
    ev->ts_ms = ts_ms;
    /* Built under a traced publish: the consumer joins that trace. */
    sh__trace_current(ev->traceparent);
    snprintf(ev->epoch, sizeof ev->epoch, "%s", epoch);
    f = (char *)(ev + 1);
    ev->channel = f;
    memcpy(f, channel, cl + 1);
    f += cl + 1;
    ev->type = f;
    memcpy(f, type, tl + 1);
    f += tl + 1;
    ev->data_json = f;
    ev->data_len = dl + ml + dl2;
    memcpy(f, d, dl);
    memcpy(f + dl, mid, ml);
    memcpy(f + dl + ml, d2, dl2);
    f[ev->data_len] = '\0';
    f += ev->data_len + 1;
    ev->json = f;
    ev->json_len = fl;
    memcpy(f, p1, sizeof p1 - 1);
    f += sizeof p1 - 1;
    memcpy(f, channel, cl);
    f += cl;
    memcpy(f, p2, sizeof p2 - 1);
    f += sizeof p2 - 1;
    memcpy(f, num, nl);
    f += nl;
    memcpy(f, p3, sizeof p3 - 1);
    f += sizeof p3 - 1;
    memcpy(f, type, tl);
    f += tl;
    memcpy(f, p4, sizeof p4 - 1);
    f += sizeof p4 - 1;
    memcpy(f, ev->data_json, ev->data_len);
    f += ev->data_len;
    memcpy(f, p5, sizeof p5 - 1);
    f += sizeof p5 - 1;
    *f = '\0';
    return ev;
}

struct sh_event *sh__event_new(const char *channel, const char *epoch,
                               uint64_t offset, int64_t ts_ms,
                               const char *type, json_object *data)
{
    struct sh_event *ev;
    const char *d;
    size_t dl = 0;

    d = json_object_to_json_string_length(data, TEXT_FLAGS, &dl);
    ev = d != NULL ? event_alloc(channel, epoch, offset, ts_ms, type, d, dl,
                                 "", 0, "", 0)
                   : NULL;
    /* Only the text travels (bus_int.h, invariant 3). */
    json_object_put(data);
    return ev;
}

struct sh_event *sh__event_new_text(const char *channel, const char *epoch,
                                    uint64_t offset, int64_t ts_ms,
                                    const char *type, const char *data,
                                    size_t len)
{
    return event_alloc(channel, epoch, offset, ts_ms, type, data, len, "", 0,
                       "", 0);
}

struct sh_event *sh__event_new_spliced(const char *channel,
                                       const char *epoch, uint64_t offset,
                                       int64_t ts_ms, const char *type,
                                       const char *head, size_t head_len,
                                       const char *tail, size_t tail_len)
{
    char num[24];
    int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)offset);

    return event_alloc(channel, epoch, offset, ts_ms, type, head, head_len,
                       num, (size_t)nl, tail, tail_len);
}

struct sh_event *sh__event_ref(struct sh_event *ev)
{
    int old = atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);

    (void)old;
    assert(old >= 1);
    return ev;
}

void sh__event_unref(struct sh_event *ev)
{
    void *wire;

    if (ev == NULL)
        return;
    /* Release so that our last reads happen before the freeing thread's
     * free(); acquire on the last drop for the same reason. */
    if (atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    wire = atomic_load(&ev->wire);
    if (wire != NULL && ev->wire_free != NULL)
        ev->wire_free(wire);
    free(ev);                      /* holds the texts too (event_alloc) */
}

/* ---- the public accessors (bus.h) ----------------------------------- */

SH_API const char *sh_event_channel(const sh_event_t *ev)
{
    return ev != NULL ? ev->channel : NULL;
}

SH_API const char *sh_event_epoch(const sh_event_t *ev)
{
    return ev != NULL ? ev->epoch : NULL;
}

SH_API uint64_t sh_event_offset(const sh_event_t *ev)
{
    return ev != NULL ? ev->offset : 0;
}

SH_API const char *sh_event_type(const sh_event_t *ev)
{
    return ev != NULL ? ev->type : NULL;
}

SH_API const char *sh_event_data(const sh_event_t *ev, size_t *len)
{
    if (len != NULL)
        *len = ev != NULL ? ev->data_len : 0;
    return ev != NULL ? ev->data_json : NULL;
}

SH_API const char *sh_event_json(const sh_event_t *ev, size_t *len)
{
    if (len != NULL)
        *len = ev != NULL ? ev->json_len : 0;
    return ev != NULL ? ev->json : NULL;
}

SH_API const char *sh_event_traceparent(const sh_event_t *ev)
{
    return ev != NULL ? ev->traceparent : "";
}

SH_API int64_t sh_event_time_ms(const sh_event_t *ev)
{
    return ev != NULL ? ev->ts_ms : 0;
}

SH_API sh_event_t *sh_event_dup(const sh_event_t *ev)
{
    if (ev == NULL)
        return NULL;
    /* The caller holds a reference, so the object is live and only its
     * counter changes: the const is the API's promise about content. */
    return sh__event_ref((struct sh_event *)(uintptr_t)ev);
}

SH_API void sh_event_free(sh_event_t *ev)
{
    sh__event_unref(ev);
}
