/* report_html.c - the HTML report (see report_html.h). Plain fprintf of
 * HTML and SVG; every string from the recording is escaped. */
#include "report_html.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHART_W 760
#define CHART_H 230
#define PAD_L 64
#define PAD_R 150 /* legend */
#define PAD_T 24
#define PAD_B 28
#define MAX_LINES 8
#define MAX_POINTS 600

static const char *const palette[MAX_LINES] = {"#d9480f", "#1971c2", "#2f9e44", "#9c36b5",
                                               "#e67700", "#0c8599", "#c2255c", "#5c940d"};

static void esc(FILE *out, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
    }
}

struct line {
    const char *label;
    const double *v;
    int dashed;
    const char *color; /* NULL: by position */
};

/* The same subsystem has the same colour in every chart. */
static const char *subsys_color(const char *name) {
    static const char *const known[][2] = {
        {"redis", "#d9480f"}, {"http", "#1971c2"}, {"https", "#0c8599"}, {"frontier", "#2f9e44"},
        {"parse", "#9c36b5"}, {"log", "#868e96"}, {"pipe", "#e67700"}, {"other", "#adb5bd"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i][0]) == 0) return known[i][1];
    /* Others: hues none of the known ones use. */
    static const char *const others[] = {"#495057", "#f08c00", "#5f3dc4", "#087f5b",
                                         "#a61e4d", "#364fc7", "#74b816", "#15aabf"};
    unsigned hash = 5381;
    for (const char *p = name; *p; p++) hash = hash * 33 + (unsigned char)*p;
    return others[hash % (sizeof others / sizeof others[0])];
}

/* A y value with a unit, short. */
static void fmt_value(double v, int is_bytes, char *buf, size_t len) {
    if (!is_bytes) {
        if (fabs(v) >= 10000) snprintf(buf, len, "%.0fk", v / 1000);
        else snprintf(buf, len, "%.0f", v);
        return;
    }
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (fabs(v) >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, len, v < 10 && u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* A "nice" step for about n ticks over range. */
static double nice_step(double range, int n, int is_bytes) {
    double raw = range / n;
    double base = is_bytes ? pow(1024, floor(log(raw) / log(1024))) : 1;
    double r = raw / base;
    double mag = pow(10, floor(log10(r)));
    double m = r / mag;
    double step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * mag * base;
    return step > 0 ? step : 1;
}

/* A line chart of lines over ticks [from, to] (x: time since the first
 * tick), with a dashed horizontal line at limit (if > 0 and within reach). */
static void chart(FILE *out, const char *title, const struct history *h, size_t from, size_t to,
                  const struct line *lines, size_t nlines, double limit, int is_bytes) {
    if (to >= h->nt || from > to) return;
    double ymax = 0;
    for (size_t l = 0; l < nlines; l++)
        for (size_t i = from; i <= to; i++)
            if (!isnan(lines[l].v[i]) && lines[l].v[i] > ymax) ymax = lines[l].v[i];
    int show_limit = limit > 0 && limit <= 2 * ymax;
    if (show_limit && limit > ymax) ymax = limit;
    if (ymax <= 0) ymax = 1;
    double step = nice_step(ymax, 4, is_bytes);
    ymax = ceil(ymax / step) * step;
    double t0 = h->t[from], span = h->t[to] - t0;
    if (span <= 0) span = 1;
    const int pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
#define X(t) (PAD_L + ((t) - t0) / span * pw)
#define Y(v) (PAD_T + ph - (v) / ymax * ph)
    fprintf(out, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">"
                 "<title>", CHART_W, CHART_H, CHART_W, CHART_H);
    esc(out, title);
    fputs("</title>", out);
    fprintf(out, "<text x=\"%d\" y=\"15\" class=\"ct\">", PAD_L);
    esc(out, title);
    fputs("</text>", out);
    char buf[32];
    for (double y = 0; y <= ymax + step / 2; y += step) {
        fmt_value(y, is_bytes, buf, sizeof buf);
        fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                     "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%s</text>",
                PAD_L, PAD_L + pw, Y(y), Y(y), PAD_L - 6, Y(y) + 4, buf);
    }
    double xstep = nice_step(span, 6, 0);
    for (double x = 0; x <= span + 1e-9; x += xstep) {
        if (span >= 600) snprintf(buf, sizeof buf, "%.0f min", x / 60);
        else snprintf(buf, sizeof buf, "%.0f s", x);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%s</text>", X(t0 + x), CHART_H - 8, buf);
    }
    if (show_limit)
        fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"limit\"/>"
                     "<text x=\"%d\" y=\"%.1f\" class=\"ll\">limit %.0f</text>",
                PAD_L, PAD_L + pw, Y(limit), Y(limit), PAD_L + 4, Y(limit) - 4, limit);
    size_t stride = (to - from + 1 + MAX_POINTS - 1) / MAX_POINTS;
    if (stride == 0) stride = 1;
    for (size_t l = 0; l < nlines && l < MAX_LINES; l++) {
        const char *color = lines[l].color ? lines[l].color : palette[l];
        fprintf(out, "<path class=\"series\" stroke=\"%s\"%s d=\"", color,
                lines[l].dashed ? " stroke-dasharray=\"5 3\"" : "");
        int pen = 0;
        for (size_t i = from; i <= to; i += stride) {
            double v = lines[l].v[i];
            if (isnan(v)) {
                pen = 0;
                continue;
            }
            fprintf(out, "%c%.1f %.1f", pen ? 'L' : 'M', X(h->t[i]), Y(v));
            pen = 1;
        }
        fputs("\"/>", out);
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                     "<text x=\"%d\" y=\"%d\" class=\"lg\">",
                CHART_W - PAD_R + 12, PAD_T + 6 + 18 * (int)l, color,
                CHART_W - PAD_R + 28, PAD_T + 10 + 18 * (int)l);
        esc(out, lines[l].label);
        fputs("</text>", out);
    }
    fputs("</svg>\n", out);
#undef X
#undef Y
}

/* Largest known value of v over [from, to]; 0 if none. */
static double peak(const double *v, size_t from, size_t to) {
    double m = 0;
    for (size_t i = from; i <= to; i++)
        if (!isnan(v[i]) && v[i] > m) m = v[i];
    return m;
}

/* One chart of metric m, a line per subsystem (the MAX_LINES largest). */
static void subsys_chart(FILE *out, const char *title, const struct history *h,
                         const struct hist_proc *p, int m, double limit, int is_bytes) {
    struct line lines[MAX_LINES];
    double peaks[MAX_LINES];
    size_t n = 0;
    for (size_t s = 0; s < p->nsub; s++) {
        double pk = peak(p->sub[s].v[m], p->first, p->last);
        if (pk <= 0) continue;
        if (n == MAX_LINES && pk <= peaks[MAX_LINES - 1]) continue;
        size_t k = n < MAX_LINES ? n++ : MAX_LINES - 1;
        while (k > 0 && peaks[k - 1] < pk) {
            peaks[k] = peaks[k - 1];
            lines[k] = lines[k - 1];
            k--;
        }
        peaks[k] = pk;
        lines[k] = (struct line){p->sub[s].name, p->sub[s].v[m], 0, subsys_color(p->sub[s].name)};
    }
    if (n == 0) {
        fputs("<p class=\"none\">", out);
        esc(out, title);
        fputs(": nothing recorded.</p>\n", out);
        return;
    }
    chart(out, title, h, p->first, p->last, lines, n, limit, is_bytes);
}

static const char *kind_class(enum diag_kind k) {
    return k == DIAG_EMFILE ? "k-emfile" : k == DIAG_RETAINED_HEAP || k == DIAG_HEAP_GROWTH ? "k-heap"
                                                                                          : "k-fd";
}

static void frames_list(FILE *out, const char *frames) {
    fputs("<ol class=\"frames\">", out);
    for (const char *p = frames; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), p);
            fputs("<li>", out);
            esc(out, buf);
            fputs("</li>", out);
        }
        p = e ? e + 1 : p + len;
    }
    fputs("</ol>", out);
}

static void verdict_card(FILE *out, const struct history *h, const struct diag_list *l,
                         const struct diagnosis *d) {
    fprintf(out, "<section class=\"verdict %s\"><h3><span class=\"kind\">%s</span> ",
            kind_class(d->kind), diag_kind_name(d->kind));
    esc(out, history_proc_name(d->proc));
    fprintf(out, " <span class=\"pid\">pid %ld</span> &middot; ", d->proc->pid);
    esc(out, d->subsystem);
    fputs("</h3>\n<p class=\"line\">", out);
    /* The same sentence as the terminal's. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        diag_line(mem, l, d);
        fclose(mem);
        esc(out, text);
        free(text);
    }
    fputs("</p>\n", out);
    const struct hist_proc *p = d->proc;
    struct hist_sub *s = history_sub((struct hist_proc *)p, d->subsystem);
    char title[200];
    if (s && (d->kind == DIAG_FD_GROWTH || d->kind == DIAG_POOL_GROWTH)) {
        struct line lines[2] = {{"open", s->v[H_FDS_OPEN], 0, NULL}, {"idle", s->v[H_SOCKETS_IDLE], 1, NULL}};
        snprintf(title, sizeof title, "%s descriptors open (dashed: idle sockets)", d->subsystem);
        chart(out, title, h, p->first, p->last, lines, peak(s->v[H_SOCKETS_IDLE], p->first, p->last) > 0 ? 2 : 1,
              0, 0);
    } else if (s && d->kind == DIAG_EMFILE) {
        snprintf(title, sizeof title, "descriptors by subsystem against the limit");
        subsys_chart(out, title, h, p, H_FDS_OPEN, p->fds_limit, 0);
    } else if (s) {
        struct line lines[3] = {{"live", s->v[H_HEAP_LIVE], 0, NULL},
                                {"older than 10 s", s->v[H_HEAP_OLDER_10S], 1, NULL},
                                {"older than 1 min", s->v[H_HEAP_OLDER_1M], 1, NULL}};
        snprintf(title, sizeof title, "%s live heap", d->subsystem);
        chart(out, title, h, p->first, p->last, lines, 3, 0, 1);
    }
    for (size_t i = 0; i < d->nsites; i++) {
        fprintf(out, "<details%s><summary><b>%.0f%%</b> ", i == 0 ? " open" : "",
                100 * d->sites[i].share);
        esc(out, d->sites[i].site->headline);
        fputs("</summary>", out);
        frames_list(out, d->sites[i].site->frames);
        fputs("</details>\n", out);
    }
    fputs("</section>\n", out);
}

/* The top sites of a process at its last sample, by descriptors then bytes. */
static void sites_table(FILE *out, const struct hist_proc *p) {
    size_t n = 0;
    for (size_t s = 0; s < p->nsites; s++) {
        double fd = peak(p->sites[s].fds_open, p->last, p->last);
        double hb = peak(p->sites[s].heap_live, p->last, p->last);
        if (fd <= 0 && hb <= 0) continue;
        if (n++ == 0)
            fputs("<table class=\"sites\"><tr><th>subsystem</th><th>open fds</th><th>live heap</th>"
                  "<th>call site</th></tr>\n", out);
        char b[32];
        fmt_value(hb, 1, b, sizeof b);
        fputs("<tr><td>", out);
        esc(out, p->sites[s].subsystem);
        fprintf(out, "</td><td class=\"n\">%.0f</td><td class=\"n\">%s</td><td><details><summary>", fd, b);
        esc(out, p->sites[s].headline);
        fputs("</summary>", out);
        frames_list(out, p->sites[s].frames);
        fputs("</details></td></tr>\n", out);
    }
    if (n) fputs("</table>\n", out);
    else fputs("<p class=\"none\">No call site holds descriptors or heap at the last sample.</p>\n", out);
}

static void process_section(FILE *out, const struct history *h, const struct hist_proc *p) {
    fputs("<section class=\"proc\"><h3>", out);
    esc(out, history_proc_name(p));
    fprintf(out, " <span class=\"pid\">pid %ld, parent %ld, %s, %.0f s recorded%s</span></h3>\n", p->pid,
            p->ppid, p->comm, h->t[p->last] - h->t[p->first], p->exit_time > 0 ? ", exited" : "");
    subsys_chart(out, "open descriptors by subsystem", h, p, H_FDS_OPEN, p->fds_limit, 0);
    subsys_chart(out, "idle sockets by subsystem", h, p, H_SOCKETS_IDLE, 0, 0);
    subsys_chart(out, "live heap by subsystem", h, p, H_HEAP_LIVE, 0, 1);
    /* Age of the live heap: all subsystems summed per age bucket. */
    static const int ages[] = {H_HEAP_LIVE, H_HEAP_OLDER_10S, H_HEAP_OLDER_1M, H_HEAP_OLDER_10M};
    static const char *const age_names[] = {"all live", "older than 10 s", "older than 1 min",
                                            "older than 10 min"};
    double *sum[4] = {0};
    struct line lines[4];
    size_t n = 0;
    for (int a = 0; a < 4; a++) {
        double *v = malloc(h->nt * sizeof *v);
        if (!v) break;
        for (size_t i = 0; i < h->nt; i++) {
            v[i] = NAN;
            for (size_t s = 0; s < p->nsub; s++) {
                double x = p->sub[s].v[ages[a]][i];
                if (!isnan(x)) v[i] = (isnan(v[i]) ? 0 : v[i]) + x;
            }
        }
        sum[a] = v;
        lines[n++] = (struct line){age_names[a], v, a > 0, NULL};
    }
    if (n && peak(sum[0], p->first, p->last) > 0)
        chart(out, "age of the live heap", h, p->first, p->last, lines, n, 0, 1);
    for (int a = 0; a < 4; a++) free(sum[a]);
    sites_table(out, p);
    fputs("</section>\n", out);
}

static const char *style =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2125}"
    "header{background:#1d2125;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}"
    "header p{margin:4px 0 0;color:#adb5bd}main{padding:8px 32px 40px;max-width:1000px}"
    "h2{margin:28px 0 10px;font-size:18px}h3{margin:0 0 6px;font-size:16px}"
    "section{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:14px 18px;margin:12px 0}"
    ".verdict{border-left:6px solid #d9480f}.verdict.k-heap{border-left-color:#9c36b5}"
    ".verdict.k-emfile{border-left-color:#c92a2a}"
    ".kind{display:inline-block;background:#d9480f;color:#fff;border-radius:4px;padding:0 7px;font-size:13px}"
    ".k-heap .kind{background:#9c36b5}.k-emfile .kind{background:#c92a2a}"
    ".pid{color:#868e96;font-weight:normal;font-size:13px}.line{font-family:ui-monospace,monospace;font-size:13px}"
    ".ok{border-left:6px solid #2f9e44}.none{color:#868e96}"
    "svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}"
    ".ct{font-size:13px;font-weight:600;fill:#343a40}.yl{font-size:11px;fill:#868e96;text-anchor:end}"
    ".xl{font-size:11px;fill:#868e96;text-anchor:middle}.lg{font-size:12px;fill:#343a40}"
    ".grid{stroke:#e9ecef}.series{fill:none;stroke-width:2;stroke-linejoin:round}"
    ".limit{stroke:#c92a2a;stroke-dasharray:6 4}.ll{font-size:11px;fill:#c92a2a}"
    "details summary{cursor:pointer;font-family:ui-monospace,monospace;font-size:12.5px}"
    ".frames{font-family:ui-monospace,monospace;font-size:12px;color:#495057;margin:4px 0 8px}"
    "table.sites{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}"
    ".sites th{text-align:left;color:#868e96;font-weight:600;border-bottom:1px solid #dee2e6}"
    ".sites td{border-bottom:1px solid #f1f3f5;padding:3px 6px;vertical-align:top}.n{text-align:right}";

void report_html(FILE *out, const char *recording, const struct history *h,
                 const struct diag_list *l) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width\"><title>leakscope report</title>"
          "<style>", out);
    fputs(style, out);
    fputs("</style></head><body>\n<header><h1>leakscope report</h1><p>", out);
    esc(out, recording);
    double span = h->nt ? h->t[h->nt - 1] - h->t[0] : 0;
    char when[64] = "";
    if (h->nt) {
        time_t t0 = (time_t)h->t[0];
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t0, &tm));
    }
    fprintf(out, " &middot; from %s &middot; %.0f s &middot; %zu samples &middot; %zu processes</p></header>\n<main>\n",
            when, span, h->nt, h->nproc);
    fprintf(out, "<h2>Verdicts (%zu)</h2>\n", l->n);
    if (l->n == 0)
        fputs("<section class=\"ok\"><p>No leak: no series grows steadily and no open failed with "
              "EMFILE. Warm-up plateaus, pools filling to their size, bursts that return and "
              "bounded caches are not leaks.</p></section>\n", out);
    for (size_t i = 0; i < l->n; i++) verdict_card(out, h, l, &l->v[i]);
    fputs("<h2>Processes</h2>\n", out);
    for (size_t i = 0; i < h->nproc; i++) process_section(out, h, &h->proc[i]);
    fputs("</main></body></html>\n", out);
}
