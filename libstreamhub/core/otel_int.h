/* libstreamhub/core/otel_int.h: trace spans and their OTLP/HTTP exporter.
 *
 * A span is a value the caller keeps (in a request, on the stack): start
 * fills it, end copies it into the exporter's bounded queue.  With no
 * otlp-endpoint the hub has no tracer (NULL) and every call below is a
 * test of one pointer: no allocation, no lock, no clock read.
 *
 * Context: the span a thread is working under is a thread-local pointer
 * (sh__trace_cur) to a small context value.  The gateway sets it around a
 * request's work (on the loop and on the worker that runs it); a store
 * query or a bus publish made under it becomes a child span, and an event
 * built under it carries its W3C traceparent, so that the event's consumer
 * joins the producer's trace.  Nothing below the gateway needs the hub.
 *
 * The exporter (otel.c) is one thread: it takes batches from the queue,
 * encodes them as OTLP/HTTP JSON and POSTs them with libcurl, with a
 * timeout per attempt.  The queue is a preallocated ring: when the
 * collector is slow, down or hanging, new spans are dropped and counted,
 * never queued without bound, and nothing on a request's path waits.
 */
#ifndef SH_CORE_OTEL_INT_H
#define SH_CORE_OTEL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core_int.h"

struct sh__otel;
struct sh__metrics;

/* "00-<32 hex>-<16 hex>-<2 hex>" plus NUL. */
#define SH__TRACEPARENT_LEN 55

/* The identity of a span that others may name as their parent. */
struct sh__trace_ctx {
    struct sh__otel *otel;     /* borrowed: the hub's tracer */
    uint8_t trace_id[16];
    uint8_t span_id[8];
};

/* OTLP SpanKind values. */
enum sh__span_kind {
    SH__SPAN_INTERNAL = 1,
    SH__SPAN_SERVER = 2,
    SH__SPAN_CLIENT = 3,
    SH__SPAN_PRODUCER = 4,
    SH__SPAN_CONSUMER = 5
};

#define SH__SPAN_ATTRS 5
#define SH__SPAN_NAME_MAX 96
#define SH__SPAN_VAL_MAX 160

struct sh__span_attr {
    const char *key;           /* static; NULL: unused slot */
    bool is_int;
    int64_t i;
    char s[SH__SPAN_VAL_MAX];  /* truncated copy */
};

/* One span.  Invariant: ctx.otel == NULL means "not recording": every
 * other field is then unset and every call on it returns at once. */
struct sh__span {
    struct sh__trace_ctx ctx;
    uint8_t parent_id[8];      /* all zero: a root span */
    int kind;
    bool error;
    int64_t start_ns, end_ns;  /* unix time, nanoseconds */
    char name[SH__SPAN_NAME_MAX];
    struct sh__span_attr attrs[SH__SPAN_ATTRS];
    /* While entered (sh__span_enter): the context it replaced. */
    const struct sh__trace_ctx *saved;
};

/* The context the calling thread works under, or NULL. */
extern _Thread_local const struct sh__trace_ctx *sh__trace_cur;

/* Start the tracer when otlp-endpoint is set (*@out NULL when not): the
 * queue is allocated here, once, and the exporter thread started.
 * Metrics go to @metrics.  Errors: SH_EINVAL (a bad endpoint: @errbuf),
 * SH_ENOMEM, SH_EINTERNAL (curl or the thread). */
sh_err_t sh__otel_new(const sh_config_t *conf, struct sh__metrics *metrics,
                      const struct sh__log *log, struct sh__otel **out,
                      char *errbuf, size_t errbuf_len);
/* Stop: what is queued gets one export attempt, all within otlp.timeout-
 * ms or 2 s, whichever is less (then it is dropped); the thread is joined
 * and everything freed.  NULL is a no-op. */
void sh__otel_free(struct sh__otel *otel);

/* Start a server span for a request: a child of the W3C @traceparent
 * header when it is valid (and sampled), else the root of a new trace.
 * @otel NULL or an unsampled parent: @sp is left not recording.
 * @locality any */
void sh__span_start_server(struct sh__otel *otel, struct sh__span *sp,
                           const char *name, const char *traceparent);
/* Start a span of @kind that is a child of @traceparent (an event's,
 * from sh_event_traceparent()): the consumer's side of a publish.  Not
 * recording when @otel is NULL or @traceparent is "", invalid or not
 * sampled.  @locality any */
void sh__span_start_linked(struct sh__otel *otel, struct sh__span *sp,
                           const char *name, int kind,
                           const char *traceparent);
/* Start a child of the thread's current context (sh__trace_cur); not
 * recording when there is none.  @name is copied (truncated). */
void sh__span_start(struct sh__span *sp, const char *name, int kind);
static inline bool sh__span_on(const struct sh__span *sp)
{
    return sp->ctx.otel != NULL;
}
void sh__span_set_name(struct sh__span *sp, const char *name);
/* Set attribute @key (a static string) to a copy of @val (truncated), or
 * to @i; a full span ignores further keys. */
void sh__span_attr_str(struct sh__span *sp, const char *key,
                       const char *val);
void sh__span_attr_int(struct sh__span *sp, const char *key, int64_t i);
/* Mark the span failed (OTLP status code ERROR). */
void sh__span_fail(struct sh__span *sp);
/* Make @sp the thread's current context until sh__span_leave(@sp). */
void sh__span_enter(struct sh__span *sp);
void sh__span_leave(struct sh__span *sp);
/* End @sp and queue it for export (dropped and counted when the queue is
 * full).  @sp is not recording afterwards.  @locality any */
void sh__span_end(struct sh__span *sp);

/* The W3C traceparent of @ctx into @out (SH__TRACEPARENT_LEN + 1
 * bytes).  @ctx NULL: "" */
void sh__trace_format(const struct sh__trace_ctx *ctx, char *out);
/* The traceparent of the thread's current context, or "". */
static inline void sh__trace_current(char *out)
{
    sh__trace_format(sh__trace_cur, out);
}

#endif
