/* detect.h - is a series growing, and how sure are we? The pure part of the
 * verdicts: no I/O, no segments, no database; plain arrays in, numbers out.
 *
 * A series is n samples (t[i] seconds, v[i] value), t increasing. The trend
 * is a Theil-Sen slope (median of pairwise slopes: robust to bursts and
 * outliers) with a Mann-Kendall test for its confidence. A series is called
 * growing only when the growth is significant over the whole window, still
 * going on in its recent half (a warm-up that plateaus, a pool that fills to
 * its size, a step or a burst are not), and larger than the series' own noise
 * (churn, a GC sawtooth). */
#ifndef LKS_DETECT_H
#define LKS_DETECT_H

#include <stddef.h>

struct lks_trend {
    size_t n;
    double span_s;            /* t[n-1] - t[0] */
    double slope;             /* Theil-Sen, units per second */
    double confidence;        /* 1 - p, one-sided Mann-Kendall (increasing) */
    double recent_slope;      /* the same over the last half of the samples */
    double recent_confidence;
    double noise;             /* robust scale (1.4826 MAD) of residuals from the line */
    double rise;              /* slope * span_s */
    double floor_rise;        /* min of the last quarter - min of the first */
    double since_s;           /* how long before the last sample growth began */
};

/* Thresholds of lks_growth_detect. Zero fields take the defaults. */
struct lks_growth_params {
    size_t min_samples;       /* 8 */
    double min_span_s;        /* 10 */
    double min_confidence;    /* 0.99 */
    double min_rise;          /* absolute growth over the window; 3 */
    double noise_ratio;       /* rise must exceed noise_ratio * noise; 3 */
    int sawtooth;             /* 1: a series that a collector keeps cutting
                                 back (heap): instead of the noise test, what
                                 survives must grow, the minimum of the last
                                 quarter exceeding the first's by half the rise */
};

/* Fits the trend of a series (any n; n < 3 gives slope 0, confidence 0). */
void lks_trend_fit(const double *t, const double *v, size_t n, struct lks_trend *out);

/* Fits, then decides: 1 if the series grows steadily (see top of file), else
 * 0. out is filled in either case. */
int lks_growth_detect(const double *t, const double *v, size_t n,
                      const struct lks_growth_params *p, struct lks_trend *out);

/* Rate of a monotone counter (opens, allocations) over the series, per
 * second; a counter that went backwards (a restart) counts from there. */
double lks_counter_rate(const double *t, const double *v, size_t n);

/* One-sided Mann-Kendall confidence that v (in sample order) increases. */
double lks_mann_kendall(const double *v, size_t n);

#endif
