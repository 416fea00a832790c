/* detect.c - robust growth detection on one series (see detect.h). */
#include "detect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Theil-Sen and Mann-Kendall are O(n^2): longer series are thinned to this
 * many evenly spaced samples, which also weakens the autocorrelation of
 * closely spaced samples that would inflate Mann-Kendall's confidence. */
#define MAX_POINTS 240

/* Rise over noise beyond which a trend is taken as clean (see
 * lks_trend_fit). */
#define CLEAN_TREND 20

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v (n > 0); sorts v in place. */
static double median_inplace(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Mann-Kendall with its variance multiplied by inflation (>= 1): the
 * correction for autocorrelated samples. */
static double mann_kendall(const double *v, size_t n, double inflation) {
    if (n < 3) return 0;
    double s = 0;
    for (size_t i = 0; i + 1 < n; i++)
        for (size_t j = i + 1; j < n; j++) s += (v[j] > v[i]) - (v[j] < v[i]);
    /* Variance of S with the correction for tied values. */
    double *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return 0;
    memcpy(sorted, v, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    double var = (double)n * (n - 1) * (2.0 * n + 5);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && sorted[j] == sorted[i]) j++;
        double t = (double)(j - i);
        if (t > 1) var -= t * (t - 1) * (2 * t + 5);
        i = j;
    }
    free(sorted);
    var = var / 18 * inflation;
    if (var <= 0 || s <= 0) return 0;
    double z = (s - 1) / sqrt(var);
    return 1 - 0.5 * erfc(z / sqrt(2.0));
}

double lks_mann_kendall(const double *v, size_t n) { return mann_kendall(v, n, 1); }

/* Variance inflation for n_eff = n (1 - r1) / (1 + r1), r1 the lag-1
 * autocorrelation of the residuals from the line: a gauge wandering under
 * churn (each sample close to the one before) carries less evidence than n
 * independent samples, which would make a two-minute wander look like a
 * trend. */
static double inflation(const double *t, const double *v, size_t n, double slope) {
    double mean = 0, c0 = 0, c1 = 0;
    for (size_t i = 0; i < n; i++) mean += v[i] - slope * t[i];
    mean /= n;
    for (size_t i = 0; i < n; i++) {
        double r = v[i] - slope * t[i] - mean;
        c0 += r * r;
        if (i) c1 += r * (v[i - 1] - slope * t[i - 1] - mean);
    }
    double r1 = c0 > 0 ? c1 / c0 : 0;
    if (r1 <= 0) return 1;
    if (r1 > 0.95) r1 = 0.95;
    return (1 + r1) / (1 - r1);
}

/* Theil-Sen slope of (t, v), n >= 2. Returns NAN if out of memory. */
static double theil_sen(const double *t, const double *v, size_t n) {
    size_t m = 0, cap = n * (n - 1) / 2;
    double *slopes = malloc(cap * sizeof *slopes);
    if (!slopes) return NAN;
    for (size_t i = 0; i + 1 < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (t[j] > t[i]) slopes[m++] = (v[j] - v[i]) / (t[j] - t[i]);
    double r = m ? median_inplace(slopes, m) : 0;
    free(slopes);
    return r;
}

/* Copies at most MAX_POINTS evenly spaced samples (first and last kept). */
static size_t thin(const double *t, const double *v, size_t n, double *tt, double *vv) {
    if (n <= MAX_POINTS) {
        memcpy(tt, t, n * sizeof *t);
        memcpy(vv, v, n * sizeof *v);
        return n;
    }
    for (size_t k = 0; k < MAX_POINTS; k++) {
        size_t i = (size_t)((double)k * (n - 1) / (MAX_POINTS - 1) + 0.5);
        tt[k] = t[i];
        vv[k] = v[i];
    }
    return MAX_POINTS;
}

/* Index of the knee k that best fits v = a + b * max(0, t - t[k]) by least
 * squares: where a series that was flat started to grow. */
static size_t knee(const double *t, const double *v, size_t n) {
    size_t best = 0;
    double best_sse = INFINITY;
    for (size_t k = 0; k + 2 < n; k++) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
        for (size_t i = 0; i < n; i++) {
            double x = t[i] > t[k] ? t[i] - t[k] : 0;
            sx += x, sy += v[i], sxx += x * x, sxy += x * v[i], syy += v[i] * v[i];
        }
        double vx = sxx - sx * sx / n, cxy = sxy - sx * sy / n, vy = syy - sy * sy / n;
        double sse = vx > 0 ? vy - cxy * cxy / vx : vy;
        if (sse < best_sse) best_sse = sse, best = k;
    }
    return best;
}

void lks_trend_fit(const double *t, const double *v, size_t n, struct lks_trend *out) {
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n == 0) return;
    out->span_s = t[n - 1] - t[0];
    if (n < 3) return;

    double tt[MAX_POINTS], vv[MAX_POINTS];
    size_t m = thin(t, v, n, tt, vv);
    double slope = theil_sen(tt, vv, m);
    if (isnan(slope)) return;
    out->slope = slope;
    out->rise = slope * out->span_s;

    /* Noise: how far samples stray from the line, robustly. */
    double resid[MAX_POINTS];
    double offs[MAX_POINTS];
    for (size_t i = 0; i < m; i++) offs[i] = vv[i] - slope * (tt[i] - tt[0]);
    memcpy(resid, offs, m * sizeof *offs);
    double intercept = median_inplace(resid, m);
    for (size_t i = 0; i < m; i++) resid[i] = fabs(offs[i] - intercept);
    out->noise = 1.4826 * median_inplace(resid, m);

    /* The autocorrelation correction is for a wander, whose line leaves
     * residuals of the size of its rise. A line the samples hug (rise over
     * CLEAN_TREND times the noise) is no wander: a clean leak's residuals
     * are tiny but correlated (one missed sample shifts all that follow),
     * and the correction alone had put a steady 11 MB rise in 18 s at 0.986. */
    int clean = out->rise > CLEAN_TREND * out->noise;
    out->confidence = mann_kendall(vv, m, clean ? 1 : inflation(tt, vv, m, slope));
    size_t half = m / 2;
    if (m - half >= 3) {
        out->recent_slope = theil_sen(tt + half, vv + half, m - half);
        if (isnan(out->recent_slope)) out->recent_slope = 0;
        out->recent_confidence = mann_kendall(vv + half, m - half,
                                              clean ? 1
                                                    : inflation(tt + half, vv + half, m - half,
                                                                out->recent_slope));
    }

    double first = v[0], last = v[n - 1];
    for (size_t i = 0; i < n / 4; i++) first = fmin(first, v[i]);
    for (size_t i = n - n / 4; i < n; i++) last = fmin(last, v[i]);
    out->floor_rise = last - first;

    /* Growth began at the knee of the best hinge fit (flat, then a line). */
    out->since_s = tt[m - 1] - tt[knee(tt, vv, m)];
}

int lks_growth_detect(const double *t, const double *v, size_t n,
                      const struct lks_growth_params *p, struct lks_trend *out) {
    struct lks_growth_params d = {8, 10, 0.99, 3, 3, 0};
    if (p) {
        if (p->min_samples) d.min_samples = p->min_samples;
        if (p->min_span_s > 0) d.min_span_s = p->min_span_s;
        if (p->min_confidence > 0) d.min_confidence = p->min_confidence;
        if (p->min_rise > 0) d.min_rise = p->min_rise;
        if (p->noise_ratio > 0) d.noise_ratio = p->noise_ratio;
        d.sawtooth = p->sawtooth;
    }
    lks_trend_fit(t, v, n, out);
    if (n < d.min_samples || out->span_s < d.min_span_s) return 0;
    if (out->slope <= 0 || out->confidence < d.min_confidence) return 0;
    /* Still growing: a plateau, a filled pool or a step stops in the recent
     * half; a burst that returns turns down there. */
    if (out->recent_slope < 0.3 * out->slope || out->recent_confidence < 0.8) return 0;
    if (out->rise < d.min_rise) return 0;
    if (d.sawtooth) return out->floor_rise >= 0.5 * out->rise;
    if (out->rise < d.noise_ratio * out->noise) return 0;
    return 1;
}

double lks_counter_rate(const double *t, const double *v, size_t n) {
    if (n < 2 || t[n - 1] <= t[0]) return 0;
    double total = 0;
    for (size_t i = 1; i < n; i++) total += v[i] >= v[i - 1] ? v[i] - v[i - 1] : v[i];
    return total / (t[n - 1] - t[0]);
}
