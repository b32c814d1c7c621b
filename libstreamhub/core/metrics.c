/* libstreamhub/core/metrics.c: the Prometheus registry (metrics_int.h).
 *
 * Families are a short list (tens), series a linked list per family found
 * under the family's mutex; the hot path keeps series pointers, so lookups
 * are rare.  Values are doubles stored in atomic 64-bit words (bit casts),
 * updated with compare-and-swap, so counters may take fractional seconds.
 *
 * Invariants:
 *  1. A family's type, name, labels and buckets never change once added.
 *  2. A series is never freed before the registry; pointers stay valid.
 *  3. Histogram bucket counts are cumulative only when rendered; each
 *     observation increments exactly one bucket slot (the first bound >= v,
 *     or the +Inf slot) and count and sum.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

static const double default_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5, 10,
};

struct sh__series {
    struct sh__series *next;
    struct sh__metric *family;
    char *values;                 /* comma-separated label values */
    _Atomic uint64_t value;       /* double bits: counter/gauge; hist sum */
    _Atomic uint64_t count;       /* histogram */
    _Atomic uint64_t *buckets;    /* histogram: nbuckets + 1 slots */
};

struct sh__metric {
    struct sh__metric *next;
    char *name, *help, *labels;
    enum sh__metric_type type;
    double *bounds;
    size_t nbounds, nlabels;
    double (*fn)(void *);         /* callback gauge */
    void *fn_arg;
    pthread_mutex_t lock;         /* guards series list */
    struct sh__series *series;
};

struct sh__metrics {
    pthread_mutex_t lock;         /* guards families list */
    struct sh__metric *head, *tail;
};

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

sh_err_t sh__metrics_new(struct sh__metrics **out)
{
    struct sh__metrics *r = calloc(1, sizeof *r);

    *out = r;
    if (r == NULL)
        return SH_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    return SH_OK;
}

static void family_free(struct sh__metric *m)
{
    struct sh__series *s = m->series;

    while (s != NULL) {
        struct sh__series *next = s->next;
        free(s->values);
        free(s->buckets);
        free(s);
        s = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m->name);
    free(m->help);
    free(m->labels);
    free(m->bounds);
    free(m);
}

void sh__metrics_free(struct sh__metrics *reg)
{
    if (reg == NULL)
        return;
    for (struct sh__metric *m = reg->head, *next; m != NULL; m = next) {
        next = m->next;
        family_free(m);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static size_t count_fields(const char *csv)
{
    size_t n = 1;

    if (csv[0] == '\0')
        return 0;
    for (const char *p = csv; *p != '\0'; p++)
        n += *p == ',';
    return n;
}

static struct sh__metric *family_new(const char *name,
                                     enum sh__metric_type type,
                                     const char *help, const char *labels,
                                     const double *buckets, size_t nbuckets)
{
    struct sh__metric *m = calloc(1, sizeof *m);

    if (m == NULL)
        return NULL;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = strdup(labels);
    m->type = type;
    m->nlabels = count_fields(labels);
    pthread_mutex_init(&m->lock, NULL);
    if (type == SH__METRIC_HISTOGRAM) {
        if (buckets == NULL) {
            buckets = default_buckets;
            nbuckets = sizeof default_buckets / sizeof default_buckets[0];
        }
        m->bounds = malloc(nbuckets * sizeof *m->bounds);
        if (m->bounds != NULL)
            memcpy(m->bounds, buckets, nbuckets * sizeof *m->bounds);
        m->nbounds = nbuckets;
    }
    if (m->name == NULL || m->help == NULL || m->labels == NULL ||
        (type == SH__METRIC_HISTOGRAM && m->bounds == NULL)) {
        family_free(m);
        return NULL;
    }
    return m;
}

/* Append @m unless a family of that name exists; returns the one kept. */
static struct sh__metric *family_insert(struct sh__metrics *reg,
                                        struct sh__metric *m)
{
    struct sh__metric *found = NULL;

    pthread_mutex_lock(&reg->lock);
    for (struct sh__metric *f = reg->head; f != NULL; f = f->next) {
        if (strcmp(f->name, m->name) == 0) {
            found = f;
            break;
        }
    }
    if (found == NULL) {
        if (reg->tail != NULL)
            reg->tail->next = m;
        else
            reg->head = m;
        reg->tail = m;
    }
    pthread_mutex_unlock(&reg->lock);
    if (found != NULL) {
        bool same = found->type == m->type && found->fn == m->fn;
        family_free(m);
        return same ? found : NULL;
    }
    return m;
}

struct sh__metric *sh__metrics_add(struct sh__metrics *reg, const char *name,
                                   enum sh__metric_type type,
                                   const char *help, const char *labels,
                                   const double *buckets, size_t nbuckets)
{
    struct sh__metric *m = family_new(name, type, help,
                                      labels != NULL ? labels : "", buckets,
                                      nbuckets);

    return m != NULL ? family_insert(reg, m) : NULL;
}

sh_err_t sh__metrics_add_callback(struct sh__metrics *reg, const char *name,
                                  const char *help, double (*fn)(void *),
                                  void *arg)
{
    struct sh__metric *m = family_new(name, SH__METRIC_GAUGE, help, "",
                                      NULL, 0);

    if (m == NULL)
        return SH_ENOMEM;
    m->fn = fn;
    m->fn_arg = arg;
    return family_insert(reg, m) != NULL ? SH_OK : SH_EINVAL;
}

struct sh__series *sh__metric_series(struct sh__metric *m, const char *values)
{
    struct sh__series *s;

    if (m == NULL || values == NULL || count_fields(values) != m->nlabels)
        return NULL;
    pthread_mutex_lock(&m->lock);
    for (s = m->series; s != NULL; s = s->next) {
        if (strcmp(s->values, values) == 0)
            goto out;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto out;
    s->family = m;
    s->values = strdup(values);
    if (m->type == SH__METRIC_HISTOGRAM)
        s->buckets = calloc(m->nbounds + 1, sizeof *s->buckets);
    if (s->values == NULL ||
        (m->type == SH__METRIC_HISTOGRAM && s->buckets == NULL)) {
        free(s->values);
        free(s->buckets);
        free(s);
        s = NULL;
        goto out;
    }
    atomic_store(&s->value, d2u(0.0));
    s->next = m->series;
    m->series = s;
out:
    pthread_mutex_unlock(&m->lock);
    return s;
}

static void atomic_add_double(_Atomic uint64_t *word, double delta)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(
        word, &old, d2u(u2d(old) + delta), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

void sh__series_add(struct sh__series *s, double delta)
{
    if (s != NULL)
        atomic_add_double(&s->value, delta);
}

void sh__series_set(struct sh__series *s, double value)
{
    if (s != NULL)
        atomic_store_explicit(&s->value, d2u(value), memory_order_relaxed);
}

void sh__series_observe(struct sh__series *s, double v)
{
    const struct sh__metric *m;
    size_t i;

    if (s == NULL)
        return;
    m = s->family;
    for (i = 0; i < m->nbounds && v > m->bounds[i]; i++)
        ;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

double sh__series_value(const struct sh__series *s)
{
    return s != NULL ? u2d(atomic_load((_Atomic uint64_t *)&s->value)) : 0;
}

/* Label value escaping of the text format: backslash, quote, newline. */
static void put_escaped(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            fputs("\\\\", f);
        else if (s[i] == '"')
            fputs("\\\"", f);
        else if (s[i] == '\n')
            fputs("\\n", f);
        else
            fputc(s[i], f);
    }
}

static void put_double(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(f, "%.0f", v);
    else
        fprintf(f, "%.17g", v);
}

/* Write {a="x",b="y"[,le="..."]}; nothing when no label at all. */
static void put_labels(FILE *f, const struct sh__metric *m,
                       const char *values, const char *le)
{
    const char *np = m->labels, *vp = values;
    bool any = false;

    if (m->nlabels == 0 && le == NULL)
        return;
    fputc('{', f);
    for (size_t i = 0; i < m->nlabels; i++) {
        const char *ne = strchr(np, ','), *ve = strchr(vp, ',');
        size_t nl = ne != NULL ? (size_t)(ne - np) : strlen(np);
        size_t vl = ve != NULL ? (size_t)(ve - vp) : strlen(vp);
        if (any)
            fputc(',', f);
        fwrite(np, 1, nl, f);
        fputs("=\"", f);
        put_escaped(f, vp, vl);
        fputc('"', f);
        any = true;
        np += nl + (ne != NULL);
        vp += vl + (ve != NULL);
    }
    if (le != NULL)
        fprintf(f, "%sle=\"%s\"", any ? "," : "", le);
    fputc('}', f);
}

static const char *type_name(enum sh__metric_type t)
{
    switch (t) {
    case SH__METRIC_COUNTER: return "counter";
    case SH__METRIC_GAUGE: return "gauge";
    case SH__METRIC_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

static void render_family(FILE *f, struct sh__metric *m)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
            type_name(m->type));
    if (m->fn != NULL) {
        fputs(m->name, f);
        fputc(' ', f);
        put_double(f, m->fn(m->fn_arg));
        fputc('\n', f);
        return;
    }
    pthread_mutex_lock(&m->lock);
    for (struct sh__series *s = m->series; s != NULL; s = s->next) {
        if (m->type != SH__METRIC_HISTOGRAM) {
            fputs(m->name, f);
            put_labels(f, m, s->values, NULL);
            fputc(' ', f);
            put_double(f, u2d(atomic_load(&s->value)));
            fputc('\n', f);
            continue;
        }
        uint64_t cum = 0;
        char le[32];
        for (size_t i = 0; i <= m->nbounds; i++) {
            cum += atomic_load(&s->buckets[i]);
            if (i < m->nbounds)
                snprintf(le, sizeof le, "%g", m->bounds[i]);
            else
                snprintf(le, sizeof le, "+Inf");
            fprintf(f, "%s_bucket", m->name);
            put_labels(f, m, s->values, le);
            fprintf(f, " %llu\n", (unsigned long long)cum);
        }
        fprintf(f, "%s_sum", m->name);
        put_labels(f, m, s->values, NULL);
        fputc(' ', f);
        put_double(f, u2d(atomic_load(&s->value)));
        fprintf(f, "\n%s_count", m->name);
        put_labels(f, m, s->values, NULL);
        fprintf(f, " %llu\n", (unsigned long long)atomic_load(&s->count));
    }
    pthread_mutex_unlock(&m->lock);
}

sh_err_t sh__metrics_render(struct sh__metrics *reg, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    struct sh__metric *m;

    *out = NULL;
    *len = 0;
    if (f == NULL)
        return SH_ENOMEM;
    /* Rendering is rare (a scrape): hold the registry lock throughout.
     * Callback gauges must therefore never register metrics. */
    pthread_mutex_lock(&reg->lock);
    for (m = reg->head; m != NULL; m = m->next)
        render_family(f, m);
    pthread_mutex_unlock(&reg->lock);
    if (fclose(f) != 0 || buf == NULL) {
        free(buf);
        return SH_ENOMEM;
    }
    *out = buf;
    *len = n;
    return SH_OK;
}
