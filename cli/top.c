/* top.c - `leakscope top`: a live view of every traced process, one row per
 * process and subsystem, the growing ones first, with the current verdict.
 *
 * It keeps the series it samples in memory (history.h) and judges them as
 * the report does (diagnose.h), so a row says "pool-growth" only once the
 * series show it. On a terminal it redraws in place with plain ANSI escapes
 * (works over ssh, no ncurses) and reads keys in raw mode: q quits. When
 * stdout is not a terminal it prints one block of plain lines per round.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "detect.h"
#include "diagnose.h"
#include "history.h"
#include "segdir.h"
#include "series.h"
#include "top.h"

#define TOP_MAX_TICKS 3600 /* an hour at one round a second */
#define TOP_WINDOW_S 600   /* verdicts judge the last ten minutes */

static void usage(FILE *out) {
    fputs("usage: leakscope top [--dir DIR] [--interval S] [--iterations N] [--idle-after S]\n"
          "Live view of traced processes: per process and subsystem, open descriptors,\n"
          "opened/min, idle sockets, live heap, growth and the current verdict, growing first.\n"
          "On a terminal it redraws in place (q quits); otherwise prints plain lines per round.\n"
          "  --dir DIR        segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --interval S     seconds between rounds (1)\n"
          "  --iterations N   stop after N rounds (default: until q or a signal)\n"
          "  --idle-after S   a socket silent this long is idle (60)\n",
          out);
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

/* The rate per minute of counter v over the last 60 s of [from, to]. */
static double recent_rate(const struct history *h, const double *v, size_t from, size_t to) {
    size_t a = to;
    while (a > from && h->t[to] - h->t[a - 1] <= 60) a--;
    double t[TOP_MAX_TICKS], x[TOP_MAX_TICKS];
    size_t n = 0;
    for (size_t i = a; i <= to && n < TOP_MAX_TICKS; i++)
        if (!isnan(v[i])) t[n] = h->t[i], x[n++] = v[i];
    return lks_counter_rate(t, x, n) * 60;
}

/* Theil-Sen slope per minute of gauge v over the window. */
static double growth(const struct history *h, const double *v, size_t from, size_t to) {
    static double t[TOP_MAX_TICKS], x[TOP_MAX_TICKS];
    size_t n = 0;
    for (size_t i = from; i <= to && n < TOP_MAX_TICKS; i++)
        if (!isnan(v[i])) t[n] = h->t[i], x[n++] = v[i];
    struct lks_trend tr;
    lks_trend_fit(t, x, n, &tr);
    return tr.slope * 60;
}

static double last(const double *v, size_t to) { return isnan(v[to]) ? 0 : v[to]; }

static void human_bytes(double b, char *buf, size_t len) {
    const char *unit[] = {"B", "K", "M", "G", "T"};
    int u = 0;
    while (fabs(b) >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, len, u && fabs(b) < 10 ? "%.1f%s" : "%.0f%s", b, unit[u]);
}

int top_rows(const struct history *h, const struct diag_list *l, struct top_row **out) {
    size_t n = 0, cap = 0;
    struct top_row *rows = NULL;
    for (size_t i = 0; i < h->nproc; i++) {
        const struct hist_proc *p = &h->proc[i];
        if (p->last + 1 != h->nt) continue; /* gone */
        size_t to = p->last, from = p->first;
        while (from < to && h->t[to] - h->t[from] > TOP_WINDOW_S) from++;
        for (size_t s = 0; s < p->nsub; s++) {
            const struct hist_sub *sub = &p->sub[s];
            double open = last(sub->v[H_FDS_OPEN], to), heap = last(sub->v[H_HEAP_LIVE], to);
            double opened = recent_rate(h, sub->v[H_FDS_OPENED], from, to);
            if (open == 0 && heap == 0 && opened == 0) continue;
            if (n == cap) {
                struct top_row *bigger = realloc(rows, (cap = cap ? 2 * cap : 32) * sizeof *rows);
                if (!bigger) {
                    free(rows);
                    return -1;
                }
                rows = bigger;
            }
            struct top_row *r = &rows[n++];
            memset(r, 0, sizeof *r);
            r->proc = p;
            r->subsystem = sub->name;
            r->open = open;
            r->opened_per_min = opened;
            r->idle = sub->v[H_SOCKETS_IDLE][to];
            r->heap = heap;
            r->fd_growth = growth(h, sub->v[H_FDS_OPEN], from, to);
            r->heap_growth = growth(h, sub->v[H_HEAP_LIVE], from, to);
            r->seconds = h->t[to] - h->t[from];
            for (size_t d = 0; d < l->n; d++)
                if (l->v[d].proc == p && strcmp(l->v[d].subsystem, sub->name) == 0 && !r->verdict)
                    r->verdict = diag_kind_name(l->v[d].kind);
        }
    }
    *out = rows;
    return (int)n;
}

/* Verdicts first, then by descriptor growth, then by heap growth. */
static int by_growth(const void *a, const void *b) {
    const struct top_row *x = a, *y = b;
    if (!x->verdict != !y->verdict) return x->verdict ? -1 : 1;
    if (x->fd_growth != y->fd_growth) return x->fd_growth > y->fd_growth ? -1 : 1;
    if (x->heap_growth != y->heap_growth) return x->heap_growth > y->heap_growth ? -1 : 1;
    return (x->proc->pid > y->proc->pid) - (x->proc->pid < y->proc->pid);
}

void top_draw(FILE *out, const struct history *h, const struct diag_list *l, size_t max_rows,
              const char *eol, const char *dir) {
    struct top_row *rows;
    int n = top_rows(h, l, &rows);
    if (n < 0) return;
    qsort(rows, (size_t)n, sizeof *rows, by_growth);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
    size_t procs = 0;
    for (size_t i = 0; i < h->nproc; i++) procs += h->proc[i].last + 1 == h->nt;
    fprintf(out, "leakscope top  %s  %s  %zu processes  %zu verdicts%s", when, dir, procs, l->n, eol);
    fprintf(out, "%7s %-16s %-12s %7s %9s %6s %8s %9s %10s  %s%s", "PID", "PROCESS", "SUBSYSTEM",
            "OPEN", "OPENED/m", "IDLE", "HEAP", "FDS/m", "HEAP/m", "VERDICT", eol);
    for (int i = 0; i < n && (size_t)i < max_rows; i++) {
        struct top_row *r = &rows[i];
        char heap[16], hg[16], idle[16];
        human_bytes(r->heap, heap, sizeof heap);
        human_bytes(r->heap_growth, hg, sizeof hg);
        if (isnan(r->idle)) snprintf(idle, sizeof idle, "-");
        else snprintf(idle, sizeof idle, "%.0f", r->idle);
        const char *verdict = r->verdict ? r->verdict : r->seconds < 10 ? "(watching)" : "";
        fprintf(out, "%7ld %-16.16s %-12.12s %7.0f %9.0f %6s %8s %+9.1f %10s  %s%s", r->proc->pid,
                history_proc_name(r->proc), r->subsystem, r->open, r->opened_per_min, idle, heap,
                r->fd_growth, hg, verdict, eol);
    }
    if (n == 0) fprintf(out, "  no traced process in %s%s", dir, eol);
    free(rows);
}

static struct termios saved_tty;
static int tty_raw;

static void tty_restore(void) {
    if (tty_raw) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    tty_raw = 0;
}

int cmd_top(int argc, char **argv) {
    const char *dir_opt = NULL;
    double interval = 1, idle_after = 60;
    long iterations = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--interval") == 0) interval = strtod(argv[++i], &end);
        else if (i + 1 < argc && strcmp(a, "--idle-after") == 0) idle_after = strtod(argv[++i], &end);
        else if (i + 1 < argc && strcmp(a, "--iterations") == 0) iterations = strtol(argv[++i], &end, 10);
        else {
            fprintf(stderr, "leakscope top: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (end && (*end || end == argv[i])) {
            fprintf(stderr, "leakscope top: '%s' is not a number\n", argv[i]);
            return 2;
        }
    }
    if (!(interval >= 0.05 && interval <= 3600) || !(idle_after >= 0) || iterations == 0) {
        fprintf(stderr, "leakscope top: --interval must be 0.05..3600 s, --iterations > 0\n");
        return 2;
    }
    char dir[512];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    struct series_reader *reader = series_reader_new(10, (uint32_t)(idle_after * 1000));
    if (!reader) return 1;

    int live = isatty(STDOUT_FILENO);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (live && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
        struct termios raw = saved_tty;
        raw.c_lflag &= ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) tty_raw = 1;
    }
    if (live) fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, no cursor */

    struct history h = {0};
    h.idle_after_s = idle_after;
    int rc = 0;
    for (long round = 0; !stop && (iterations < 0 || round < iterations); round++) {
        struct series_round r;
        if (series_scan(reader, dir, NULL, 0, &r) != 0) {
            if (live) fputs("\033[?25h\033[?1049l", stdout);
            tty_restore();
            fprintf(stderr, "leakscope top: cannot read %s: %s\n", dir, strerror(errno));
            series_reader_free(reader);
            history_free(&h);
            return 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int bad = history_add_round(&h, &r, ts.tv_sec + ts.tv_nsec / 1e9, TOP_MAX_TICKS);
        series_round_free(&r);
        struct diag_list l;
        if (bad || diagnose(&h, TOP_WINDOW_S, &l) != 0) {
            rc = 1;
            break;
        }
        if (live) {
            struct winsize ws = {0};
            size_t rows = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 4 ? ws.ws_row - 4 : 40;
            fputs("\033[H", stdout);
            top_draw(stdout, &h, &l, rows, "\033[K\n", dir);
            fputs("\033[K\n", stdout);
            if (l.n) diag_text(stdout, &l);
            fputs(tty_raw ? "press q to quit\033[K\n\033[J" : "\033[J", stdout);
        } else {
            top_draw(stdout, &h, &l, (size_t)-1, "\n", dir);
            if (l.n) diag_text(stdout, &l);
            fputc('\n', stdout);
        }
        fflush(stdout);
        diag_list_free(&l);
        if (iterations >= 0 && round + 1 >= iterations) break;
        /* Sleep until the next round, or until q. */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double deadline = until.tv_sec + until.tv_nsec / 1e9 + interval;
        while (!stop) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double left = deadline - (now.tv_sec + now.tv_nsec / 1e9);
            if (left <= 0) break;
            struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
            int ready = poll(&pfd, tty_raw ? 1 : 0, (int)(left * 1000) + 1);
            if (ready > 0) {
                char c;
                if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) stop = 1;
            }
        }
    }
    if (live) fputs("\033[?25h\033[?1049l", stdout);
    tty_restore();
    series_reader_free(reader);
    history_free(&h);
    return rc;
}
