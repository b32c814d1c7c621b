/* libstreamhub/bus/event.c: events, their texts and their references.
 *
 * An event is built once at publish: its data object is serialised once to
 * `data_json`, and the native protocol's frame
 * {"channel":…,"offset":…,"event":{"type":…,"data":…}} once to `json`, both
 * with json-c.  After that nothing in it changes but `wire` (the gateway's
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

#define TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Serialise @obj into a new heap string; NULL on ENOMEM. */
static char *to_text(json_object *obj, size_t *len)
{
    const char *s = json_object_to_json_string_length(obj, TEXT_FLAGS, len);
    char *copy;

    if (s == NULL)
        return NULL;
    copy = malloc(*len + 1);
    if (copy != NULL)
        memcpy(copy, s, *len + 1);
    return copy;
}

static char *frame_text(const char *channel, uint64_t offset,
                        const char *type, json_object *data, size_t *len)
{
    json_object *frame = json_object_new_object();
    json_object *inner = json_object_new_object();
    char *text = NULL;

    if (frame == NULL || inner == NULL)
        goto out;
    if (json_object_object_add(inner, "type",
                               json_object_new_string(type)) != 0 ||
        json_object_object_add(inner, "data", json_object_get(data)) != 0)
        goto out;
    if (json_object_object_add(frame, "channel",
                               json_object_new_string(channel)) != 0 ||
        json_object_object_add(frame, "offset",
                               json_object_new_uint64(offset)) != 0)
        goto out;
    if (json_object_object_add(frame, "event", inner) != 0)
        goto out;
    inner = NULL;                  /* the frame holds it now */
    text = to_text(frame, len);
out:
    json_object_put(inner);
    json_object_put(frame);        /* drops only the frame's data reference */
    return text;
}

struct sh_event *sh__event_new(const char *channel, const char *epoch,
                               uint64_t offset, int64_t ts_ms,
                               const char *type, json_object *data)
{
    struct sh_event *ev = calloc(1, sizeof *ev);

    if (ev == NULL) {
        json_object_put(data);
        return NULL;
    }
    atomic_init(&ev->refs, 1);
    atomic_init(&ev->wire, NULL);
    ev->data = data;               /* taken: freed with the event from now */
    ev->offset = offset;
    ev->ts_ms = ts_ms;
    snprintf(ev->epoch, sizeof ev->epoch, "%s", epoch);
    ev->channel = strdup(channel);
    ev->type = strdup(type);
    if (ev->channel == NULL || ev->type == NULL)
        goto fail;
    ev->data_json = to_text(data, &ev->data_len);
    if (ev->data_json == NULL)
        goto fail;
    ev->json = frame_text(channel, offset, type, data, &ev->json_len);
    if (ev->json == NULL)
        goto fail;
    return ev;
fail:
    sh__event_unref(ev);
    return NULL;
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
    json_object_put(ev->data);
    free(ev->channel);
    free(ev->type);
    free(ev->data_json);
    free(ev->json);
    free(ev);
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
