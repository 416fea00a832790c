/* record.c - `leakscope record`: samples the traced processes of a directory
 * every --interval seconds into a SQLite recording (recording.h), the same
 * numbers `serve` exports (series.h). Stops after --duration, or on
 * SIGINT/SIGTERM after one last tick, so `leakscope run --record` captures
 * the final state of the processes it ran.
 */
#define _GNU_SOURCE
#include "record.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "recording.h"
#include "segdir.h"
#include "series.h"

#define MAX_PIDS 256

static void usage(FILE *out) {
    fputs("usage: leakscope record --out FILE.db [--dir DIR] [--interval S] [--duration S]\n"
          "                        [--top-sites K] [--idle-after S] [--pid PID...]\n"
          "Samples traced processes into a SQLite recording (schema: docs/RECORDING.md).\n"
          "  --out FILE.db   the recording (created 0600, or appended to)\n"
          "  --dir DIR       segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --interval S    seconds between samples (default 1)\n"
          "  --duration S    stop after S seconds, 0: one sample (default: until SIGINT/SIGTERM)\n"
          "  --top-sites K   call sites stored per process and view (default 10)\n"
          "  --idle-after S  a TCP socket silent this long is idle (default 60)\n"
          "  --pid PID...    only these processes\n"
          "  --session ID    only the processes of this `leakscope run` session\n",
          out);
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleeps until mono time `until` or a stop request. */
static void sleep_until(double until) {
    while (!stop_requested) {
        double left = until - clock_s(CLOCK_MONOTONIC);
        if (left <= 0) return;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
}

static int parse_num(const char *opt, const char *v, double min, double max, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= min && d <= max)) {
        fprintf(stderr, "leakscope record: %s wants a number in [%g, %g], got '%s'\n", opt, min,
                max, v);
        return -1;
    }
    *out = d;
    return 0;
}

int record_check_out(const char *path, double interval_s, const char *dir, const char *command) {
    char err[700];
    struct recording *r = recording_open(path, interval_s, 60, 10, dir, command, err, sizeof err);
    if (!r) {
        fprintf(stderr, "leakscope: recording %s\n", err);
        return -1;
    }
    recording_close(r);
    return 0;
}

int record_loop(const struct record_opts *o) {
    char err[700];
    struct recording *rec = recording_open(o->out, o->interval_s, o->idle_after_s, o->top_sites,
                                           o->dir, o->command, err, sizeof err);
    if (!rec) {
        fprintf(stderr, "leakscope record: %s\n", err);
        return 2;
    }
    struct series_reader *reader =
        series_reader_new(o->top_sites, (uint32_t)(o->idle_after_s * 1000));
    if (!reader) {
        recording_close(rec);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (o->ignore_sigint) {
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
    } else {
        sigaction(SIGINT, &sa, NULL);
    }
    /* run blocks these before forking us, so a stop sent early is not lost. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stops, NULL);

    double start = clock_s(CLOCK_MONOTONIC), next = start;
    int status = 0, last = 0;
    while (!last) {
        /* After a stop request, one more tick records the final state. */
        last = stop_requested || (o->duration_s >= 0 && clock_s(CLOCK_MONOTONIC) - start >= o->duration_s);
        double t0 = clock_s(CLOCK_MONOTONIC);
        struct series_round rd;
        if (series_scan(reader, o->dir, o->pids, o->npids, &rd) != 0) {
            fprintf(stderr, "leakscope record: cannot read %s: %s\n", o->dir, strerror(errno));
            status = 1;
            break;
        }
        if (o->session) { /* only this run's processes */
            size_t k = 0;
            for (size_t i = 0; i < rd.n; i++) {
                if (strcmp(rd.procs[i].session, o->session) == 0) rd.procs[k++] = rd.procs[i];
                else series_proc_free(&rd.procs[i]);
            }
            rd.n = k;
        }
        double scan_ms = (clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
        /* The tick's time is the scan's end: every value in it was read by
         * then. A scan slowed to seconds (symbolizing a new process on a
         * loaded machine) stamped with its start made an interpreter's
         * teardown, read at the end, look seconds older than the exit. */
        double now = clock_s(CLOCK_REALTIME);
        int rc = recording_tick(rec, &rd, now, scan_ms, err, sizeof err);
        series_round_free(&rd);
        if (rc != 0) {
            fprintf(stderr, "leakscope record: %s: %s\n", o->out, err);
            status = 1;
            break;
        }
        if (last) break;
        next += o->interval_s;
        if (next < clock_s(CLOCK_MONOTONIC)) next = clock_s(CLOCK_MONOTONIC); /* fell behind */
        if (o->duration_s >= 0 && next > start + o->duration_s) next = start + o->duration_s;
        sleep_until(next);
    }
    series_reader_free(reader);
    recording_close(rec);
    return status;
}

int cmd_record(int argc, char **argv) {
    struct record_opts o = {.interval_s = 1, .duration_s = -1, .idle_after_s = 60, .top_sites = 10};
    const char *dir_opt = NULL;
    static pid_t pids[MAX_PIDS];
    double top = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--out") == 0) o.out = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--session") == 0) o.session = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--interval") == 0) {
            if (parse_num(a, argv[++i], 0.01, 86400, &o.interval_s) != 0) return 2;
        } else if (i + 1 < argc && strcmp(a, "--duration") == 0) {
            if (parse_num(a, argv[++i], 0, 1e9, &o.duration_s) != 0) return 2;
        } else if (i + 1 < argc && strcmp(a, "--idle-after") == 0) {
            if (parse_num(a, argv[++i], 0, 86400, &o.idle_after_s) != 0) return 2;
        } else if (i + 1 < argc && strcmp(a, "--top-sites") == 0) {
            if (parse_num(a, argv[++i], 1, 100, &top) != 0) return 2;
            o.top_sites = (unsigned)top;
        } else if (i + 1 < argc && strcmp(a, "--pid") == 0) {
            /* --pid 1 2 3, or --pid 1 --pid 2 */
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                char *end;
                long p = strtol(argv[++i], &end, 10);
                if (*end || p <= 0 || p > 1 << 22) {
                    fprintf(stderr, "leakscope record: '%s' is not a process id\n", argv[i]);
                    return 2;
                }
                if (o.npids == MAX_PIDS) {
                    fprintf(stderr, "leakscope record: at most %d --pid\n", MAX_PIDS);
                    return 2;
                }
                pids[o.npids++] = (pid_t)p;
            }
        } else {
            fprintf(stderr, "leakscope record: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out) {
        fprintf(stderr, "leakscope record: --out FILE.db is required\n");
        usage(stderr);
        return 2;
    }
    char dir[512];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    o.dir = dir;
    o.pids = pids;
    return record_loop(&o);
}
