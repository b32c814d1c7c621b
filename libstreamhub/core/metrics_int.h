/* libstreamhub/core/metrics_int.h: Prometheus metrics (text format 0.0.4).
 *
 * A registry of metric families, each with fixed label names and any number
 * of series (one per label-value combination).  Hot paths look a series up
 * once and keep the pointer: updates are then one atomic operation, with no
 * lock and no allocation.  Names follow Prometheus's conventions
 * (streamhub_<what>_<unit>, _total for counters, base units: seconds, bytes).
 *
 * Threads: everything is thread-safe.  Series live as long as the registry.
 */
#ifndef SH_METRICS_INT_H
#define SH_METRICS_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "core_int.h"

enum sh__metric_type {
    SH__METRIC_COUNTER,
    SH__METRIC_GAUGE,
    SH__METRIC_HISTOGRAM
};

struct sh__metrics;
struct sh__metric;
struct sh__series;

sh_err_t sh__metrics_new(struct sh__metrics **out);
void sh__metrics_free(struct sh__metrics *reg);

/* Register (or find, when @name exists with the same type) a family.
 * @labels  comma-separated label names ("route,status"), "" for none.
 * @buckets histogram upper bounds, increasing, @nbuckets of them (+Inf is
 *          implicit); NULL for the default latency buckets in seconds.
 * Returns NULL on ENOMEM or a type clash (a bug of ours). */
struct sh__metric *sh__metrics_add(struct sh__metrics *reg, const char *name,
                                   enum sh__metric_type type,
                                   const char *help, const char *labels,
                                   const double *buckets, size_t nbuckets);

/* The series of @m for @values (comma-separated, as many as the family's
 * labels, "" for none), created on first use.  NULL on ENOMEM or a count
 * mismatch.  Values are escaped when rendered. */
struct sh__series *sh__metric_series(struct sh__metric *m, const char *values);

void sh__series_add(struct sh__series *s, double delta);   /* counter, gauge */
void sh__series_set(struct sh__series *s, double value);   /* gauge */
void sh__series_observe(struct sh__series *s, double v);   /* histogram */
double sh__series_value(const struct sh__series *s);       /* tests */

/* A gauge read at render time (queue depths, connection counts): @fn is
 * called with @arg under no lock of ours. */
sh_err_t sh__metrics_add_callback(struct sh__metrics *reg, const char *name,
                                  const char *help, double (*fn)(void *),
                                  void *arg);

/* Render every family in the text exposition format 0.0.4 into a new
 * NUL-terminated buffer (*@out, freed with free()), *@len its bytes. */
sh_err_t sh__metrics_render(struct sh__metrics *reg, char **out, size_t *len);

#endif
