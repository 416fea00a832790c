/* diagnose.c - verdicts from series (see diagnose.h). */
#include "diagnose.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "json.h"

/* Thresholds, per view. Descriptors: a few more over the window than noise
 * explains. Heap: judged on what survives collections (detect.h sawtooth),
 * and at least this much of it. */
static const struct lks_growth_params fd_params = {.min_rise = 3};
static const struct lks_growth_params heap_params = {.min_rise = 256 * 1024, .sawtooth = 1};
/* One site's own series is cleaner than its subsystem's total. */
static const struct lks_growth_params site_params = {.min_rise = 128 * 1024, .sawtooth = 1};

/* A socket subsystem whose idle share is at least this is a pool. */
#define POOL_IDLE_FRACTION 0.5
/* One site holding at least this share of a heap growth: retained-heap. */
#define RETAINED_SHARE 0.5

const char *diag_kind_name(enum diag_kind k) {
    switch (k) {
    case DIAG_FD_GROWTH: return "fd-growth";
    case DIAG_POOL_GROWTH: return "pool-growth";
    case DIAG_RETAINED_HEAP: return "retained-heap";
    case DIAG_HEAP_GROWTH: return "heap-growth";
    case DIAG_EMFILE: return "emfile";
    }
    return "?";
}

/* The samples of v within ticks [from, to] that are known. */
static size_t gather(const struct history *h, const double *v, size_t from, size_t to, double *t,
                     double *out) {
    size_t n = 0;
    for (size_t i = from; i <= to && i < h->nt; i++)
        if (!isnan(v[i])) t[n] = h->t[i], out[n++] = v[i];
    return n;
}

/* First and last known value of v in [from, to]; NAN if none. */
static double first_known(const double *v, size_t from, size_t to) {
    for (size_t i = from; i <= to; i++)
        if (!isnan(v[i])) return v[i];
    return NAN;
}
static double last_known(const double *v, size_t from, size_t to) {
    for (size_t i = to + 1; i-- > from;)
        if (!isnan(v[i])) return v[i];
    return NAN;
}

static int push(struct diag_list *l, size_t *cap, const struct diagnosis *d) {
    if (l->n == *cap) {
        size_t c = *cap ? 2 * *cap : 8;
        struct diagnosis *bigger = realloc(l->v, c * sizeof *bigger);
        if (!bigger) return -1;
        l->v = bigger;
        *cap = c;
    }
    l->v[l->n++] = *d;
    return 0;
}

/* The sites of subsystem sub that gained the most of series fds (or heap)
 * over the window, with their share of what the subsystem holds at the end.
 * Returns the top site's share of the subsystem's gain. */
static double attribute(const struct hist_proc *p, const char *sub, int heap, int by_held,
                        size_t from, size_t to, double sub_now, double sub_gain,
                        struct diagnosis *d) {
    double top_gain_share = 0;
    double gains[DIAG_MAX_SITES] = {0};
    d->nsites = 0;
    for (size_t s = 0; s < p->nsites; s++) {
        const struct hist_site *site = &p->sites[s];
        if (strcmp(site->subsystem, sub) != 0) continue;
        const double *v = heap ? site->heap_live : site->fds_open;
        double last = last_known(v, from, to);
        if (isnan(last)) continue;
        /* A site that entered the top K during the window held less before.
         * by_held ranks what sites hold (who held the descriptors at the
         * limit), not what they gained: a limit reached before the first
         * sample shows no gain at all. */
        double first = isnan(v[from]) || by_held ? 0 : v[from];
        double gain = last - first;
        if (gain <= 0) continue;
        if (d->nsites == DIAG_MAX_SITES && gain <= gains[DIAG_MAX_SITES - 1]) continue;
        size_t k = d->nsites < DIAG_MAX_SITES ? d->nsites++ : DIAG_MAX_SITES - 1;
        while (k > 0 && gains[k - 1] < gain) {
            gains[k] = gains[k - 1];
            d->sites[k] = d->sites[k - 1];
            k--;
        }
        gains[k] = gain;
        d->sites[k] = (struct diag_site){sub_now > 0 ? fmin(1, last / sub_now) : 0, site};
    }
    if (d->nsites && sub_gain > 0) top_gain_share = fmin(1, gains[0] / sub_gain);
    return top_gain_share;
}

static void judge_fds(const struct history *h, const struct hist_proc *p, const struct hist_sub *s,
                      size_t from, size_t to, double *t, double *v, struct diag_list *l,
                      size_t *cap, int *oom) {
    size_t n = gather(h, s->v[H_FDS_OPEN], from, to, t, v);
    struct lks_trend tr;
    if (!lks_growth_detect(t, v, n, &fd_params, &tr)) return;
    struct diagnosis d = {.proc = p, .kind = DIAG_FD_GROWTH, .subsystem = s->name};
    d.rate_per_min = tr.slope * 60;
    d.confidence = tr.confidence;
    d.since_s = tr.since_s;
    d.over_s = tr.span_s;
    d.now = v[n - 1];
    /* Idle share while the process ran: once it has exited its sockets are
     * gone from the kernel, while its segment still counts them open. */
    d.idle_fraction = NAN;
    for (size_t i = to + 1; i-- > from;) {
        double idle = s->v[H_SOCKETS_IDLE][i], open = s->v[H_FDS_OPEN][i];
        if (isnan(idle) || isnan(open) || (isnan(p->rss[i]) && !isnan(p->rss[from]))) continue;
        d.idle_fraction = open > 0 ? fmin(1, idle / open) : 0;
        break;
    }
    if (!isnan(d.idle_fraction) && d.idle_fraction >= POOL_IDLE_FRACTION) d.kind = DIAG_POOL_GROWTH;
    n = gather(h, s->v[H_FDS_OPENED], from, to, t, v);
    d.opened_per_min = lks_counter_rate(t, v, n) * 60;
    attribute(p, s->name, 0, 0, from, to, d.now, tr.rise, &d);
    if (push(l, cap, &d)) *oom = 1;
}

/* A subsystem whose total is too noisy (buffers of transfers in flight)
 * can still hide one call site whose live bytes grow steadily: judged on
 * the sites' own series, the growing ones become one retained-heap verdict. */
static int judge_heap_sites(const struct history *h, const struct hist_proc *p,
                            const struct hist_sub *s, size_t from, size_t to, double *t, double *v,
                            struct diagnosis *d) {
    double best_rate[DIAG_MAX_SITES] = {0};
    double sub_now = last_known(s->v[H_HEAP_LIVE], from, to);
    for (size_t i = 0; i < p->nsites; i++) {
        const struct hist_site *site = &p->sites[i];
        if (strcmp(site->subsystem, s->name) != 0) continue;
        size_t n = gather(h, site->heap_live, from, to, t, v);
        struct lks_trend tr;
        if (!lks_growth_detect(t, v, n, &site_params, &tr)) continue;
        double rate = tr.slope * 60;
        d->rate_per_min += rate;
        if (tr.confidence > d->confidence) d->confidence = tr.confidence;
        if (tr.since_s > d->since_s) d->since_s = tr.since_s;
        if (tr.span_s > d->over_s) d->over_s = tr.span_s;
        if (d->nsites == DIAG_MAX_SITES && rate <= best_rate[DIAG_MAX_SITES - 1]) continue;
        size_t k = d->nsites < DIAG_MAX_SITES ? d->nsites++ : DIAG_MAX_SITES - 1;
        while (k > 0 && best_rate[k - 1] < rate) {
            best_rate[k] = best_rate[k - 1];
            d->sites[k] = d->sites[k - 1];
            k--;
        }
        best_rate[k] = rate;
        d->sites[k] = (struct diag_site){sub_now > 0 ? fmin(1, v[n - 1] / sub_now) : 0, site};
    }
    d->now = sub_now;
    return d->nsites > 0;
}

static void judge_heap(const struct history *h, const struct hist_proc *p, const struct hist_sub *s,
                       size_t from, size_t to, double *t, double *v, struct diag_list *l,
                       size_t *cap, int *oom) {
    size_t n = gather(h, s->v[H_HEAP_LIVE], from, to, t, v);
    struct lks_trend tr;
    if (!lks_growth_detect(t, v, n, &heap_params, &tr)) {
        struct diagnosis d = {.proc = p, .kind = DIAG_RETAINED_HEAP, .subsystem = s->name};
        d.idle_fraction = NAN;
        if (!judge_heap_sites(h, p, s, from, to, t, v, &d)) return;
        n = gather(h, s->v[H_HEAP_ALLOCS], from, to, t, v);
        d.opened_per_min = lks_counter_rate(t, v, n) * 60;
        if (push(l, cap, &d)) *oom = 1;
        return;
    }
    struct diagnosis d = {.proc = p, .kind = DIAG_HEAP_GROWTH, .subsystem = s->name};
    d.rate_per_min = tr.slope * 60;
    d.confidence = tr.confidence;
    d.since_s = tr.since_s;
    d.over_s = tr.span_s;
    d.now = v[n - 1];
    d.idle_fraction = NAN;
    n = gather(h, s->v[H_HEAP_ALLOCS], from, to, t, v);
    d.opened_per_min = lks_counter_rate(t, v, n) * 60;
    if (attribute(p, s->name, 1, 0, from, to, d.now, tr.rise, &d) >= RETAINED_SHARE)
        d.kind = DIAG_RETAINED_HEAP;
    if (push(l, cap, &d)) *oom = 1;
}

/* EMFILE/ENFILE in the window: which subsystems failed, and the one that
 * held the most descriptors at the first failure (the verdict's subsystem:
 * what to fix; the ones that failed are often its victims). */
static void judge_emfile(const struct history *h, const struct hist_proc *p, size_t from,
                         size_t to, struct diag_list *l, size_t *cap, int *oom) {
    struct diagnosis d = {.proc = p, .kind = DIAG_EMFILE};
    size_t first = to + 1;
    for (size_t i = 0; i < p->nsub; i++) {
        const double *e = p->sub[i].v[H_FD_EMFILE];
        double a = first_known(e, from, to), b = last_known(e, from, to);
        if (isnan(a) || isnan(b)) continue;
        /* A process seen from its start failed nothing before. */
        if (from == p->first && from + 1 < to) a = 0;
        if (b - a <= 0) continue;
        d.failures += b - a;
        size_t k = d.nfailed < 4 ? d.nfailed++ : 3;
        if (k == 3 && d.failed[3].subsystem && d.failed[3].count >= b - a) continue;
        while (k > 0 && d.failed[k - 1].count < b - a) {
            d.failed[k] = d.failed[k - 1];
            k--;
        }
        d.failed[k].subsystem = p->sub[i].name;
        d.failed[k].count = b - a;
        for (size_t j = from; j <= to && j < first; j++)
            if (!isnan(e[j]) && e[j] > a) first = j;
    }
    if (d.nfailed == 0) return;
    d.confidence = 1;
    d.over_s = h->t[to] - h->t[from];
    d.since_s = h->t[to] - h->t[first];
    d.rate_per_min = d.over_s > 0 ? d.failures / d.over_s * 60 : d.failures;
    d.idle_fraction = NAN;
    d.limit = p->fds_limit;
    d.open_total = p->fds_open[first];
    for (size_t i = 0; i < p->nsub; i++) {
        double held = p->sub[i].v[H_FDS_OPEN][first];
        if (!isnan(held) && (!d.holder || held > d.held)) d.holder = p->sub[i].name, d.held = held;
    }
    d.subsystem = d.holder ? d.holder : d.failed[0].subsystem;
    struct hist_sub *s = history_sub((struct hist_proc *)p, d.subsystem);
    d.now = s ? last_known(s->v[H_FDS_OPEN], from, to) : NAN;
    attribute(p, d.subsystem, 0, 1, from, to, d.held, d.held, &d);
    if (push(l, cap, &d)) *oom = 1;
}

/* Failures first, then descriptors (a hard limit), then heap; within a
 * rank, the surer verdict, and among equally sure ones the faster leak (the
 * one that kills the process first). */
static int rank(enum diag_kind k) {
    return k == DIAG_EMFILE ? 0 : k == DIAG_FD_GROWTH || k == DIAG_POOL_GROWTH ? 1 : 2;
}

static int by_strength(const void *a, const void *b) {
    const struct diagnosis *x = a, *y = b;
    if (rank(x->kind) != rank(y->kind)) return rank(x->kind) - rank(y->kind);
    if (fabs(x->confidence - y->confidence) > 0.05) return x->confidence > y->confidence ? -1 : 1;
    if (x->rate_per_min != y->rate_per_min) return x->rate_per_min > y->rate_per_min ? -1 : 1;
    return (x->proc->pid > y->proc->pid) - (x->proc->pid < y->proc->pid);
}

int diagnose(const struct history *h, double window_s, struct diag_list *out) {
    memset(out, 0, sizeof *out);
    out->idle_after_s = h->idle_after_s;
    size_t cap = 0;
    int oom = 0;
    double *t = malloc((h->nt ? h->nt : 1) * sizeof *t);
    double *v = malloc((h->nt ? h->nt : 1) * sizeof *v);
    if (!t || !v) oom = 1;
    for (size_t i = 0; !oom && i < h->nproc; i++) {
        const struct hist_proc *p = &h->proc[i];
        size_t from = p->first, to = p->last;
        if (to >= h->nt || from > to) continue;
        while (window_s > 0 && from < to && h->t[to] - h->t[from] > window_s) from++;
        judge_emfile(h, p, from, to, out, &cap, &oom);
        for (size_t s = 0; s < p->nsub; s++) {
            judge_fds(h, p, &p->sub[s], from, to, t, v, out, &cap, &oom);
            judge_heap(h, p, &p->sub[s], from, to, t, v, out, &cap, &oom);
        }
    }
    free(t);
    free(v);
    if (oom) {
        diag_list_free(out);
        return -1;
    }
    if (out->n) qsort(out->v, out->n, sizeof *out->v, by_strength);
    return 0;
}

void diag_list_free(struct diag_list *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Writes a site's frames (one per line in the recording) as a JSON array. */
static void json_frames(FILE *out, const char *frames) {
    fputc('[', out);
    int first = 1;
    for (const char *p = frames; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), p);
            if (!first) fputc(',', out);
            json_string(out, buf);
            first = 0;
        }
        p = e ? e + 1 : p + len;
    }
    fputc(']', out);
}

static void json_num(FILE *out, const char *key, double v) {
    if (isnan(v) || isinf(v)) fprintf(out, ",\"%s\":null", key);
    else fprintf(out, ",\"%s\":%.6g", key, v);
}

void diag_json(FILE *out, const struct diag_list *l) {
    fputc('[', out);
    for (size_t i = 0; i < l->n; i++) {
        const struct diagnosis *d = &l->v[i];
        fprintf(out, "%s{\"pid\":%ld,\"process\":", i ? "," : "", d->proc->pid);
        json_string(out, d->proc->comm);
        fputs(",\"role\":", out);
        json_string(out, d->proc->role);
        fprintf(out, ",\"kind\":\"%s\",\"subsystem\":", diag_kind_name(d->kind));
        json_string(out, d->subsystem);
        json_num(out, "rate_per_min", d->rate_per_min);
        json_num(out, "confidence", d->confidence);
        json_num(out, "since_s", d->since_s);
        json_num(out, "over_s", d->over_s);
        json_num(out, "idle_fraction", d->idle_fraction);
        json_num(out, d->kind == DIAG_RETAINED_HEAP || d->kind == DIAG_HEAP_GROWTH ? "live_bytes" : "open",
                 d->now);
        json_num(out, d->kind == DIAG_RETAINED_HEAP || d->kind == DIAG_HEAP_GROWTH ? "allocs_per_min"
                                                                                  : "opened_per_min",
                 d->opened_per_min);
        if (d->kind == DIAG_EMFILE) {
            json_num(out, "failures", d->failures);
            fputs(",\"failed\":{", out);
            for (size_t f = 0; f < d->nfailed; f++) {
                if (f) fputc(',', out);
                json_string(out, d->failed[f].subsystem);
                fprintf(out, ":%.0f", d->failed[f].count);
            }
            fputs("},\"holder\":", out);
            json_string(out, d->holder);
            json_num(out, "held", d->held);
            json_num(out, "open_total", d->open_total);
            json_num(out, "limit", d->limit);
            json_num(out, "headroom", d->limit - d->open_total);
        }
        fputs(",\"sites\":[", out);
        for (size_t s = 0; s < d->nsites; s++) {
            fprintf(out, "%s{\"share\":%.4f,\"site\":", s ? "," : "", d->sites[s].share);
            json_string(out, d->sites[s].site->headline);
            fputs(",\"frames\":", out);
            json_frames(out, d->sites[s].site->frames);
            fputc('}', out);
        }
        fputs("]}", out);
    }
    fputc(']', out);
}

/* "func (file:line)": the headline without its module. */
static void short_site(const char *headline, char *buf, size_t len) {
    snprintf(buf, len, "%s", headline);
    char *m = strstr(buf, " [");
    if (m) *m = 0;
}

/* "12 min", "45 s": a duration as people read it. */
static void duration(double s, char *buf, size_t len) {
    if (s >= 5400) snprintf(buf, len, "%.1f h", s / 3600);
    else if (s >= 120) snprintf(buf, len, "%.0f min", s / 60);
    else snprintf(buf, len, "%.0f s", s);
}

/* Bytes with a binary unit. */
static void bytes(double b, char *buf, size_t len) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (fabs(b) >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

void diag_text(FILE *out, const struct diag_list *l) {
    if (l->n == 0) {
        fputs("no leak: nothing grows steadily, no open failed with EMFILE\n", out);
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        fprintf(out, "%s: ", diag_kind_name(l->v[i].kind));
        diag_line(out, l, &l->v[i]);
        fputc('\n', out);
    }
}

void diag_line(FILE *out, const struct diag_list *l, const struct diagnosis *d) {
    char over[32], since[32], site[600] = "", a[32], b[32];
    duration(d->over_s, over, sizeof over);
    duration(d->since_s, since, sizeof since);
    if (d->nsites) short_site(d->sites[0].site->headline, site, sizeof site);
    fprintf(out, "%s (pid %ld): ", history_proc_name(d->proc), d->proc->pid);
    switch (d->kind) {
    case DIAG_FD_GROWTH:
    case DIAG_POOL_GROWTH:
        fprintf(out, "%s %s %+.1f/min over %s (confidence %.2f), %.0f open",
                d->subsystem, d->kind == DIAG_POOL_GROWTH ? "sockets" : "descriptors",
                d->rate_per_min, over, d->confidence, d->now);
        if (!isnan(d->idle_fraction) && d->idle_fraction > 0)
            fprintf(out, ", %.0f%% idle > %.0f s", 100 * d->idle_fraction, l->idle_after_s);
        if (d->nsites)
            fprintf(out, ", %.0f%% opened at %s", 100 * d->sites[0].share, site);
        break;
    case DIAG_RETAINED_HEAP:
    case DIAG_HEAP_GROWTH:
        bytes(d->rate_per_min, a, sizeof a);
        bytes(d->now, b, sizeof b);
        fprintf(out, "%s heap +%s/min over %s (confidence %.2f), %s live", d->subsystem, a, over,
                d->confidence, b);
        if (d->nsites)
            fprintf(out, ", %.0f%% allocated at %s", 100 * d->sites[0].share, site);
        break;
    case DIAG_EMFILE:
        fprintf(out, "%s held %.0f of %.0f descriptors (limit %.0f, headroom %.0f) when opens failed"
                " with EMFILE:", d->subsystem, d->held, d->open_total, d->limit,
                d->limit - d->open_total);
        for (size_t f = 0; f < d->nfailed; f++)
            fprintf(out, "%s %s %.0f", f ? "," : "", d->failed[f].subsystem, d->failed[f].count);
        fprintf(out, " (first %s ago)", since);
        if (d->nsites) fprintf(out, ", %.0f%% opened at %s", 100 * d->sites[0].share, site);
        break;
    }
    if (d->kind != DIAG_EMFILE && d->since_s < d->over_s * 0.9) fprintf(out, ", since %s ago", since);
}
