/* libstreamhub/core/otel.c: spans and the OTLP/HTTP JSON exporter.
 *
 * Design (see otel_int.h): spans are values; ending one copies it into a
 * ring of otlp.queue-spans slots allocated at start, under one mutex held
 * for the copy only.  A full ring drops the new span and counts it
 * (streamhub_otel_spans_dropped_total{reason="queue_full"}): memory is
 * bounded by construction and a request never waits on the collector.
 *
 * The exporter thread takes up to otlp.batch-spans spans (or what is there
 * once otlp.batch-delay-ms passed since the first of them), encodes them
 * as one ExportTraceServiceRequest in OTLP/HTTP JSON (resourceSpans /
 * scopeSpans / spans, ids in hex, times as decimal strings of unix nanos)
 * and POSTs it with libcurl, each attempt bounded by otlp.timeout-ms.  As
 * the OTLP specification says, only 429, 502, 503 and 504 (and a failure
 * to get any answer) are retried, with exponential backoff and jitter, or
 * after the Retry-After the collector sent; any other answer drops the
 * batch at once.  After otlp.max-attempts the batch is dropped and
 * counted.  While it retries, new spans fill the ring and are dropped.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#include "metrics_int.h"
#include "otel_int.h"
#include "streamhub/version.h"

_Thread_local const struct sh__trace_ctx *sh__trace_cur;

struct sh__otel {
    char *url;
    char *service;
    const struct sh__log *log;     /* borrowed: the hub's */
    int64_t timeout_ms, delay_ms;
    size_t cap, batch_max;
    int max_attempts;
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* queue not empty, batch full, stop */
    /* @locks lock: the ring; [head, head+len) mod cap hold spans. */
    struct sh__span *ring;
    size_t head, len;
    bool stopping;
    atomic_size_t qlen;            /* len, for the gauge */
    struct sh__span *batch;        /* the exporter's, batch_max slots */
    pthread_t thread;
    CURL *curl;                    /* the exporter's */
    bool failing;                  /* last export failed: logged once */
    /* Set by the close: past it, an attempt in flight is abandoned and
     * what is queued dropped (a hanging collector must not hold up a
     * shutdown).  0: not closing. */
    _Atomic int64_t abort_at_ns;
    struct sh__series *s_exported, *s_drop_full, *s_drop_rejected,
        *s_drop_failed, *s_req_ok, *s_req_retry, *s_req_rejected,
        *s_req_error;
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Lowercase hex of @n bytes at @s into @out; false when not hex. */
static bool unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int a = hexv(s[2 * i]), b = hexv(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return false;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= b[i];
    return acc == 0;
}

/* W3C Trace Context, version 00 (and later versions' first 55 bytes). */
static bool parse_traceparent(const char *tp, uint8_t trace[16],
                              uint8_t parent[8], uint8_t *flags)
{
    if (tp == NULL || strlen(tp) < SH__TRACEPARENT_LEN ||
        tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
        hexv(tp[0]) < 0 || hexv(tp[1]) < 0 ||
        (tp[0] == 'f' && tp[1] == 'f') ||
        (tp[0] == '0' && tp[1] == '0' && tp[55] != '\0') ||
        !unhex(tp + 3, 16, trace) || !unhex(tp + 36, 8, parent) ||
        !unhex(tp + 53, 1, flags))
        return false;
    return !all_zero(trace, 16) && !all_zero(parent, 8);
}

static void span_init(struct sh__span *sp, struct sh__otel *otel,
                      const char *name, int kind)
{
    memset(sp->attrs, 0, sizeof sp->attrs);
    sp->ctx.otel = otel;
    randombytes_buf(sp->ctx.span_id, sizeof sp->ctx.span_id);
    sp->kind = kind;
    sp->error = false;
    sp->saved = NULL;
    sp->end_ns = 0;
    snprintf(sp->name, sizeof sp->name, "%s", name);
    sp->start_ns = now_ns();
}

static void start_remote(struct sh__otel *otel, struct sh__span *sp,
                         const char *name, int kind,
                         const char *traceparent, bool root)
{
    uint8_t flags = 1;

    sp->ctx.otel = NULL;
    if (otel == NULL)
        return;
    if (parse_traceparent(traceparent, sp->ctx.trace_id, sp->parent_id,
                          &flags)) {
        /* Parent-based sampling: the caller decided not to record. */
        if ((flags & 1) == 0)
            return;
    } else if (root) {
        randombytes_buf(sp->ctx.trace_id, sizeof sp->ctx.trace_id);
        memset(sp->parent_id, 0, sizeof sp->parent_id);
    } else {
        return;
    }
    span_init(sp, otel, name, kind);
}

void sh__span_start_server(struct sh__otel *otel, struct sh__span *sp,
                           const char *name, const char *traceparent)
{
    start_remote(otel, sp, name, SH__SPAN_SERVER, traceparent, true);
}

void sh__span_start_linked(struct sh__otel *otel, struct sh__span *sp,
                           const char *name, int kind,
                           const char *traceparent)
{
    if (traceparent == NULL || traceparent[0] == '\0') {
        sp->ctx.otel = NULL;
        return;
    }
    start_remote(otel, sp, name, kind, traceparent, false);
}

void sh__span_start(struct sh__span *sp, const char *name, int kind)
{
    const struct sh__trace_ctx *cur = sh__trace_cur;

    sp->ctx.otel = NULL;
    if (cur == NULL || cur->otel == NULL)
        return;
    memcpy(sp->ctx.trace_id, cur->trace_id, sizeof sp->ctx.trace_id);
    memcpy(sp->parent_id, cur->span_id, sizeof sp->parent_id);
    span_init(sp, cur->otel, name, kind);
}

void sh__span_set_name(struct sh__span *sp, const char *name)
{
    if (sh__span_on(sp))
        snprintf(sp->name, sizeof sp->name, "%s", name);
}

static struct sh__span_attr *attr_slot(struct sh__span *sp, const char *key)
{
    for (size_t i = 0; i < SH__SPAN_ATTRS; i++) {
        if (sp->attrs[i].key == NULL || strcmp(sp->attrs[i].key, key) == 0) {
            sp->attrs[i].key = key;
            return &sp->attrs[i];
        }
    }
    return NULL;
}

void sh__span_attr_str(struct sh__span *sp, const char *key,
                       const char *val)
{
    struct sh__span_attr *a;

    if (!sh__span_on(sp) || (a = attr_slot(sp, key)) == NULL)
        return;
    a->is_int = false;
    snprintf(a->s, sizeof a->s, "%s", val != NULL ? val : "");
}

void sh__span_attr_int(struct sh__span *sp, const char *key, int64_t i)
{
    struct sh__span_attr *a;

    if (!sh__span_on(sp) || (a = attr_slot(sp, key)) == NULL)
        return;
    a->is_int = true;
    a->i = i;
}

void sh__span_fail(struct sh__span *sp)
{
    if (sh__span_on(sp))
        sp->error = true;
}

void sh__span_enter(struct sh__span *sp)
{
    if (!sh__span_on(sp))
        return;
    sp->saved = sh__trace_cur;
    sh__trace_cur = &sp->ctx;
}

void sh__span_leave(struct sh__span *sp)
{
    if (sh__span_on(sp) && sh__trace_cur == &sp->ctx)
        sh__trace_cur = sp->saved;
}

void sh__span_end(struct sh__span *sp)
{
    struct sh__otel *o = sp->ctx.otel;
    bool wake = false;

    if (o == NULL)
        return;
    sh__span_leave(sp);
    sp->end_ns = now_ns();
    sp->saved = NULL;
    pthread_mutex_lock(&o->lock);
    if (o->len < o->cap && !o->stopping) {
        o->ring[(o->head + o->len) % o->cap] = *sp;
        o->len++;
        atomic_store_explicit(&o->qlen, o->len, memory_order_relaxed);
        wake = o->len == 1 || o->len == o->batch_max;
        if (wake)
            pthread_cond_signal(&o->cond);
        pthread_mutex_unlock(&o->lock);
    } else {
        pthread_mutex_unlock(&o->lock);
        sh__series_add(o->s_drop_full, 1);
    }
    sp->ctx.otel = NULL;
}

void sh__trace_format(const struct sh__trace_ctx *ctx, char *out)
{
    char t[33], s[17];

    out[0] = '\0';
    if (ctx == NULL || ctx->otel == NULL)
        return;
    sodium_bin2hex(t, sizeof t, ctx->trace_id, sizeof ctx->trace_id);
    sodium_bin2hex(s, sizeof s, ctx->span_id, sizeof ctx->span_id);
    snprintf(out, SH__TRACEPARENT_LEN + 1, "00-%s-%s-01", t, s);
}

/* ---- encoding ---------------------------------------------------- */

static json_object *kv_str(const char *key, const char *val)
{
    json_object *a = json_object_new_object(), *v = json_object_new_object();

    json_object_object_add(v, "stringValue", json_object_new_string(val));
    json_object_object_add(a, "key", json_object_new_string(key));
    json_object_object_add(a, "value", v);
    return a;
}

static json_object *nanos(int64_t ns)
{
    char buf[24];

    snprintf(buf, sizeof buf, "%lld", (long long)ns);
    return json_object_new_string(buf);
}

static json_object *hex(const uint8_t *b, size_t n)
{
    char buf[33];

    sodium_bin2hex(buf, sizeof buf, b, n);
    return json_object_new_string(buf);
}

static json_object *encode_span(const struct sh__span *sp)
{
    json_object *o = json_object_new_object(), *attrs;

    json_object_object_add(o, "traceId", hex(sp->ctx.trace_id, 16));
    json_object_object_add(o, "spanId", hex(sp->ctx.span_id, 8));
    if (!all_zero(sp->parent_id, 8))
        json_object_object_add(o, "parentSpanId", hex(sp->parent_id, 8));
    json_object_object_add(o, "name", json_object_new_string(sp->name));
    json_object_object_add(o, "kind", json_object_new_int(sp->kind));
    json_object_object_add(o, "startTimeUnixNano", nanos(sp->start_ns));
    json_object_object_add(o, "endTimeUnixNano", nanos(sp->end_ns));
    attrs = json_object_new_array();
    for (size_t i = 0; i < SH__SPAN_ATTRS && sp->attrs[i].key != NULL;
         i++) {
        const struct sh__span_attr *a = &sp->attrs[i];
        if (a->is_int) {
            json_object *kv = json_object_new_object();
            json_object *v = json_object_new_object();
            /* int64 is a string in the protobuf JSON mapping. */
            json_object_object_add(v, "intValue", nanos(a->i));
            json_object_object_add(kv, "key", json_object_new_string(a->key));
            json_object_object_add(kv, "value", v);
            json_object_array_add(attrs, kv);
        } else {
            json_object_array_add(attrs, kv_str(a->key, a->s));
        }
    }
    json_object_object_add(o, "attributes", attrs);
    if (sp->error) {
        json_object *st = json_object_new_object();
        json_object_object_add(st, "code", json_object_new_int(2));
        json_object_object_add(o, "status", st);
    }
    return o;
}

/* One ExportTraceServiceRequest; a new string (free()) or NULL. */
static char *encode(const struct sh__otel *o, const struct sh__span *spans,
                    size_t n)
{
    json_object *root = json_object_new_object();
    json_object *rss = json_object_new_array(), *rs = json_object_new_object();
    json_object *res = json_object_new_object(), *rattrs;
    json_object *sss = json_object_new_array(), *ss = json_object_new_object();
    json_object *scope = json_object_new_object(), *arr;
    char *text;

    rattrs = json_object_new_array();
    json_object_array_add(rattrs, kv_str("service.name", o->service));
    json_object_object_add(res, "attributes", rattrs);
    json_object_object_add(rs, "resource", res);
    json_object_object_add(scope, "name", json_object_new_string("streamhub"));
    json_object_object_add(scope, "version",
                           json_object_new_string(sh_version()));
    json_object_object_add(ss, "scope", scope);
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(arr, encode_span(&spans[i]));
    json_object_object_add(ss, "spans", arr);
    json_object_array_add(sss, ss);
    json_object_object_add(rs, "scopeSpans", sss);
    json_object_array_add(rss, rs);
    json_object_object_add(root, "resourceSpans", rss);
    text = strdup(json_object_to_json_string_ext(root,
                                                 JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return text;
}

/* ---- the exporter thread ----------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                    curl_off_t d)
{
    struct sh__otel *o = arg;
    int64_t at = atomic_load(&o->abort_at_ns);

    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return at != 0 && now_ns() > at;
}

/* One POST: the HTTP status, or -1 when no answer came (connection
 * refused, timeout).  *@retry_after_s gets the Retry-After in seconds,
 * or -1. */
static long post(struct sh__otel *o, const char *body, int64_t *retry_s)
{
    struct curl_slist *h = NULL;
    long status = -1;
    curl_off_t ra = -1;
    CURLcode cc;

    *retry_s = -1;
    h = curl_slist_append(h, "Content-Type: application/json");
    if (h == NULL)
        return -1;
    curl_easy_setopt(o->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(o->curl, CURLOPT_POSTFIELDS, body);
    cc = curl_easy_perform(o->curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &status);
        if (curl_easy_getinfo(o->curl, CURLINFO_RETRY_AFTER, &ra) ==
                CURLE_OK && ra >= 0)
            *retry_s = (int64_t)ra;
    } else if (!o->failing) {
        sh__log_kv(o->log, SH_LOG_WARN, "otlp export failed", "endpoint",
                   o->url, "error", curl_easy_strerror(cc), (char *)NULL);
    }
    curl_easy_setopt(o->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return status;
}

/* Wait @ms on the queue's condition unless stopping; lock held. */
static void wait_ms(struct sh__otel *o, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&o->cond, &o->lock, &ts);
}

static bool retryable(long status)
{
    return status < 0 || status == 429 || status == 502 || status == 503 ||
           status == 504;
}

/* Export @n spans of o->batch; the lock is not held. */
static void export_batch(struct sh__otel *o, size_t n, int max_attempts)
{
    char *body = encode(o, o->batch, n);
    int64_t retry_s;
    long status = -1;

    if (body == NULL) {
        sh__series_add(o->s_drop_failed, (double)n);
        return;
    }
    for (int attempt = 1;; attempt++) {
        status = post(o, body, &retry_s);
        if (status >= 200 && status < 300) {
            sh__series_add(o->s_req_ok, 1);
            sh__series_add(o->s_exported, (double)n);
            if (o->failing)
                sh__log_kv(o->log, SH_LOG_INFO, "otlp export recovered",
                           "endpoint", o->url, (char *)NULL);
            o->failing = false;
            break;
        }
        if (!retryable(status)) {
            char st[24];
            snprintf(st, sizeof st, "%ld", status);
            sh__series_add(o->s_req_rejected, 1);
            sh__series_add(o->s_drop_rejected, (double)n);
            sh__log_kv(o->log, SH_LOG_WARN, "otlp export rejected",
                       "endpoint", o->url, "status", st, (char *)NULL);
            break;
        }
        sh__series_add(status < 0 ? o->s_req_error : o->s_req_retry, 1);
        o->failing = true;
        pthread_mutex_lock(&o->lock);
        bool stop = o->stopping;
        if (attempt < max_attempts && !stop) {
            /* 100 ms doubling to 6.4 s, half of it random; or as told,
             * within a minute. */
            int64_t ms = 100LL << (attempt - 1 < 6 ? attempt - 1 : 6);
            ms = ms / 2 + (int64_t)randombytes_uniform((uint32_t)(ms / 2) + 1);
            if (retry_s >= 0)
                ms = (retry_s < 60 ? retry_s : 60) * 1000;
            /* The whole wait: new spans signal the same condition. */
            int64_t until = sh__mono_ms() + ms;
            while (!o->stopping && sh__mono_ms() < until)
                wait_ms(o, until - sh__mono_ms());
            stop = o->stopping;
        }
        pthread_mutex_unlock(&o->lock);
        if (attempt >= max_attempts || stop) {
            sh__series_add(o->s_drop_failed, (double)n);
            break;
        }
    }
    free(body);
}

static void *exporter(void *arg)
{
    struct sh__otel *o = arg;

    pthread_mutex_lock(&o->lock);
    for (;;) {
        if (o->len == 0) {
            if (o->stopping)
                break;
            pthread_cond_wait(&o->cond, &o->lock);
            continue;
        }
        if (o->len < o->batch_max && !o->stopping) {
            /* Let a batch gather: at most delay_ms after its first span. */
            wait_ms(o, o->delay_ms);
        }
        if (o->stopping && (o->failing ||
                            now_ns() > atomic_load(&o->abort_at_ns))) {
            /* Closing with a collector that failed: no more waiting. */
            sh__series_add(o->s_drop_failed, (double)o->len);
            o->len = 0;
            atomic_store_explicit(&o->qlen, 0, memory_order_relaxed);
            break;
        }
        size_t n = o->len < o->batch_max ? o->len : o->batch_max;
        for (size_t i = 0; i < n; i++)
            o->batch[i] = o->ring[(o->head + i) % o->cap];
        o->head = (o->head + n) % o->cap;
        o->len -= n;
        atomic_store_explicit(&o->qlen, o->len, memory_order_relaxed);
        bool stopping = o->stopping;
        pthread_mutex_unlock(&o->lock);
        /* At shutdown, one attempt per batch: the close is bounded. */
        export_batch(o, n, stopping ? 1 : o->max_attempts);
        pthread_mutex_lock(&o->lock);
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

static double queue_len(void *arg)
{
    const struct sh__otel *o = arg;

    return (double)atomic_load_explicit(&o->qlen, memory_order_relaxed);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The traces URL: an endpoint with no path gets the OTLP default one. */
static char *traces_url(const char *ep)
{
    const char *auth, *slash;
    size_t len = strlen(ep);
    char *url;

    if (strncmp(ep, "http://", 7) == 0)
        auth = ep + 7;
    else if (strncmp(ep, "https://", 8) == 0)
        auth = ep + 8;
    else
        return NULL;
    if (*auth == '\0' || *auth == '/')
        return NULL;
    slash = strchr(auth, '/');
    if (slash != NULL && slash[1] != '\0')
        return strdup(ep);
    url = malloc(len + sizeof "/v1/traces");
    if (url == NULL)
        return NULL;
    snprintf(url, len + sizeof "/v1/traces", "%.*s/v1/traces",
             (int)(slash != NULL ? (size_t)(slash - ep) : len), ep);
    return url;
}

sh_err_t sh__otel_new(const sh_config_t *conf, struct sh__metrics *metrics,
                      const struct sh__log *log, struct sh__otel **out,
                      char *errbuf, size_t errbuf_len)
{
    const char *ep = sh__config_str(conf, "otlp-endpoint");
    struct sh__otel *o;
    struct sh__metric *m;

    *out = NULL;
    if (ep == NULL || ep[0] == '\0')
        return SH_OK;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        sh__errbuf(errbuf, errbuf_len, "otlp-endpoint: cannot start "
                   "libcurl");
        return SH_EINTERNAL;
    }
    o = calloc(1, sizeof *o);
    if (o == NULL)
        goto oom;
    o->log = log;
    o->timeout_ms = sh__config_int(conf, "otlp.timeout-ms");
    o->delay_ms = sh__config_int(conf, "otlp.batch-delay-ms");
    o->cap = (size_t)sh__config_int(conf, "otlp.queue-spans");
    o->batch_max = (size_t)sh__config_int(conf, "otlp.batch-spans");
    if (o->batch_max > o->cap)
        o->batch_max = o->cap;
    o->max_attempts = (int)sh__config_int(conf, "otlp.max-attempts");
    o->url = traces_url(ep);
    if (o->url == NULL) {
        sh__errbuf(errbuf, errbuf_len, "otlp-endpoint: want an http:// or "
                   "https:// URL, got \"%s\"", ep);
        free(o);
        return SH_EINVAL;
    }
    o->service = strdup(sh__config_str(conf, "otlp.service-name"));
    o->ring = calloc(o->cap, sizeof *o->ring);
    o->batch = calloc(o->batch_max, sizeof *o->batch);
    o->curl = curl_easy_init();
    if (o->service == NULL || o->ring == NULL || o->batch == NULL ||
        o->curl == NULL)
        goto oom_free;
    curl_easy_setopt(o->curl, CURLOPT_URL, o->url);
    curl_easy_setopt(o->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(o->curl, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(o->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(o->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(o->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(o->curl, CURLOPT_USERAGENT, "streamhub-otlp");
    curl_easy_setopt(o->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(o->curl, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(o->curl, CURLOPT_XFERINFODATA, o);

    m = sh__metrics_add(metrics, "streamhub_otel_spans_exported_total",
                        SH__METRIC_COUNTER, "Spans the collector accepted.",
                        "", NULL, 0);
    o->s_exported = m != NULL ? sh__metric_series(m, "") : NULL;
    m = sh__metrics_add(metrics, "streamhub_otel_spans_dropped_total",
                        SH__METRIC_COUNTER,
                        "Spans dropped: queue_full (the collector is slower "
                        "than the spans come), rejected (a status the OTLP "
                        "specification does not retry), failed (no "
                        "success within otlp.max-attempts).",
                        "reason", NULL, 0);
    if (m != NULL) {
        o->s_drop_full = sh__metric_series(m, "queue_full");
        o->s_drop_rejected = sh__metric_series(m, "rejected");
        o->s_drop_failed = sh__metric_series(m, "failed");
    }
    m = sh__metrics_add(metrics, "streamhub_otel_export_requests_total",
                        SH__METRIC_COUNTER,
                        "Export attempts by outcome: ok, retryable (429, "
                        "502, 503, 504), rejected (any other status), error "
                        "(no answer: refused, timed out).",
                        "outcome", NULL, 0);
    if (m != NULL) {
        o->s_req_ok = sh__metric_series(m, "ok");
        o->s_req_retry = sh__metric_series(m, "retryable");
        o->s_req_rejected = sh__metric_series(m, "rejected");
        o->s_req_error = sh__metric_series(m, "error");
    }
    m = sh__metrics_add(metrics, "streamhub_otel_queue_capacity_spans",
                        SH__METRIC_GAUGE, "The bound of the span queue "
                        "(otlp.queue-spans).", "", NULL, 0);
    if (m != NULL)
        sh__series_set(sh__metric_series(m, ""), (double)o->cap);
    if (o->s_exported == NULL || o->s_drop_full == NULL ||
        o->s_drop_rejected == NULL || o->s_drop_failed == NULL ||
        o->s_req_ok == NULL || o->s_req_retry == NULL ||
        o->s_req_rejected == NULL || o->s_req_error == NULL ||
        sh__metrics_add_callback(metrics, "streamhub_otel_queue_spans",
                                 "Spans waiting for export.", queue_len,
                                 o) != SH_OK)
        goto oom_free;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    if (pthread_create(&o->thread, NULL, exporter, o) != 0) {
        pthread_cond_destroy(&o->cond);
        pthread_mutex_destroy(&o->lock);
        curl_easy_cleanup(o->curl);
        free(o->ring);
        free(o->batch);
        free(o->service);
        free(o->url);
        free(o);
        sh__errbuf(errbuf, errbuf_len, "otlp: cannot start a thread");
        return SH_EINTERNAL;
    }
    *out = o;
    return SH_OK;
oom_free:
    curl_easy_cleanup(o->curl);
    free(o->ring);
    free(o->batch);
    free(o->service);
    free(o->url);
    free(o);
oom:
    sh__errbuf(errbuf, errbuf_len, "out of memory");
    return SH_ENOMEM;
}

/* The hub frees the metrics right after this, and nothing renders them
 * meanwhile (the gateway is gone): the queue gauge's @arg dies here. */
void sh__otel_free(struct sh__otel *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    atomic_store(&o->abort_at_ns, now_ns() +
                 (o->timeout_ms < 2000 ? o->timeout_ms : 2000) * 1000000);
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
    curl_easy_cleanup(o->curl);
    free(o->ring);
    free(o->batch);
    free(o->service);
    free(o->url);
    free(o);
}
