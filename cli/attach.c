/* attach.c - `leakscope attach PID`: the descriptor and heap views of a
 * process that is already running, from eBPF probes (probes/), without
 * restarting it. Writes the same segments as the shims (producer ebpf), so
 * ls/show/serve read them unchanged, and prints the same summary as `run`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "rules.h"
#include "segdir.h"
#include "summary.h"

#ifdef LEAKSCOPE_HAVE_PROBES
#include "probes.h"
#endif

static void usage(FILE *out) {
    fputs("usage: leakscope attach PID [--fd] [--heap] [--rules FILE] [--duration S]\n"
          "                        [--summary FILE.json] [--dir DIR] [--sample-bytes N]\n"
          "                        [--keep] [--quiet]\n"
          "Traces a running process with eBPF until Ctrl-C, SIGTERM, --duration or its exit,\n"
          "then detaches (nothing stays loaded) and summarizes as `leakscope run` does.\n"
          "  --fd, --heap        what to trace (default: both)\n"
          "  --rules FILE        classification rules (also LEAKSCOPE_RULES)\n"
          "  --duration S        detach after S seconds\n"
          "  --summary FILE      write the summary as JSON\n"
          "  --dir DIR           segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --sample-bytes N    heap: sample about one allocation per N bytes (estimates)\n"
          "  --keep              keep the segments after detaching\n"
          "  --quiet             no human summary on stderr\n"
          "Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE) and a kernel with BTF.\n"
          "Exit status: 0, or 2 if the process cannot be traced here.\n",
          out);
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

#ifdef LEAKSCOPE_HAVE_PROBES
static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What only attach can say: what it could not see. */
static void notes_text(FILE *out, const struct probes *p, int want_fd, int want_heap) {
    fprintf(out, "attach: attached in %.2f s, detached in %.2f s; no probe left loaded\n",
            p->attach_s, p->detach_s);
    if (want_fd) {
        fprintf(out, "attach: descriptors open at attach are listed as inherited (before attach)\n");
        if (p->stacks)
            fprintf(out,
                    "attach: call sites: %llu of %llu creation stacks unwound with DWARF; "
                    "%llu could not be unwound (shown as the syscall's address only)\n",
                    (unsigned long long)p->stacks_unwound, (unsigned long long)p->stacks,
                    (unsigned long long)(p->stacks - p->stacks_unwound));
        if (p->children_missed)
            fprintf(out, "attach: %llu forked children not followed (more than %d live at once)\n",
                    (unsigned long long)p->children_missed, PROBES_MAX_TARGETS);
        if (p->events_lost)
            fprintf(out, "attach: %llu descriptor events lost (ring buffer full): counts are low\n",
                    (unsigned long long)p->events_lost);
    }
    if (want_heap) {
        fprintf(out,
                "attach: heap counts start at attach; allocations made before are unknown "
                "(%llu frees of them counted apart)\n",
                (unsigned long long)p->heap_unknown_frees);
        if (p->opts.sample_bytes)
            fprintf(out,
                    "attach: heap sampled every ~%llu bytes: live heap estimate %.0f bytes "
                    "+/- %.0f (1 sd)\n",
                    (unsigned long long)p->opts.sample_bytes, p->est_live_bytes, p->est_live_sd);
        if (p->heap_table_full)
            fprintf(out, "attach: %llu allocations not recorded (kernel table full)\n",
                    (unsigned long long)p->heap_table_full);
    }
}
#endif

int cmd_attach(int argc, char **argv) {
    int want_fd = 0, want_heap = 0, keep = 0, quiet = 0;
    const char *rules_path = getenv("LEAKSCOPE_RULES"), *dir_opt = NULL, *summary = NULL;
    double duration = 0;
    unsigned long long sample_bytes = 0;
    pid_t pid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (strcmp(a, "--fd") == 0) want_fd = 1;
        else if (strcmp(a, "--heap") == 0) want_heap = 1;
        else if (strcmp(a, "--keep") == 0) keep = 1;
        else if (strcmp(a, "--quiet") == 0) quiet = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--rules") == 0) rules_path = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--summary") == 0) summary = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--duration") == 0) {
            duration = strtod(argv[++i], &end);
            if (!end || *end || duration <= 0) {
                fprintf(stderr, "leakscope attach: bad --duration '%s'\n", argv[i]);
                return 2;
            }
        } else if (i + 1 < argc && strcmp(a, "--sample-bytes") == 0) {
            sample_bytes = strtoull(argv[++i], &end, 10);
            if (!end || *end || sample_bytes == 0) {
                fprintf(stderr, "leakscope attach: bad --sample-bytes '%s'\n", argv[i]);
                return 2;
            }
        } else if (a[0] != '-' && !pid) {
            long v = strtol(a, &end, 10);
            if (!end || *end || v <= 0 || v > 0x3fffffff) {
                fprintf(stderr, "leakscope attach: bad pid '%s'\n", a);
                return 2;
            }
            pid = (pid_t)v;
        } else {
            fprintf(stderr, "leakscope attach: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!pid) {
        fprintf(stderr, "leakscope attach: no pid given\n");
        usage(stderr);
        return 2;
    }
    if (!want_fd && !want_heap) want_fd = want_heap = 1;
#ifndef LEAKSCOPE_HAVE_PROBES
    (void)keep;
    (void)quiet;
    (void)dir_opt;
    (void)summary;
    (void)rules_path;
    (void)on_stop;
    fprintf(stderr, "leakscope attach: built without eBPF support (libbpf, bpftool, clang or "
                    "kernel BTF missing at build time)\n");
    return 2;
#else
    char dir[512], err[600];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    if (lks_segment_dir_prepare(dir, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope attach: %s\n", err);
        return 2;
    }
    if (summary) {
        FILE *probe = fopen(summary, "a");
        if (!probe) {
            fprintf(stderr, "leakscope attach: cannot write %s: %s\n", summary, strerror(errno));
            return 2;
        }
        fclose(probe);
    }
    struct lks_rules *rules = malloc(sizeof *rules);
    struct probes *p = calloc(1, sizeof *p);
    if (!rules || !p) {
        free(rules);
        free(p);
        fprintf(stderr, "leakscope attach: out of memory\n");
        return 2;
    }
    lks_rules_defaults(rules);
    if (rules_path && *rules_path && lks_rules_load_file(rules, rules_path, err, sizeof err) != 0)
        fprintf(stderr, "leakscope attach: rules: %s; using the built-in defaults\n", err);

    char session[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(session, sizeof session, "attach-%d-%lld", (int)getpid(), (long long)ts.tv_sec);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct probes_opts o = {.pid = pid, .want_fd = want_fd, .want_heap = want_heap,
                            .sample_bytes = sample_bytes, .dir = dir, .session = session,
                            .rules = rules};
    int code = 2;
    if (probes_attach(p, &o, &code, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope attach: %s\n", err);
        free(p);
        free(rules);
        return code;
    }
    fprintf(stderr, "leakscope attach: tracing pid %d (%s) since %.2f s; Ctrl-C to detach\n",
                (int)pid, p->targets[0].seg->comm, p->attach_s);
    double start = mono_s(), last_sync = start, sync_every = 1.0;
    while (!stop_requested) {
        if (probes_poll(p, 100)) break; /* the process exited */
        double now = mono_s();
        if (duration > 0 && now - start >= duration) break;
        /* Walking a big live table costs the machine CPU too: at most a
         * tenth of the time goes to it. */
        if (want_heap && now - last_sync >= sync_every) {
            probes_sync_heap(p);
            last_sync = mono_s();
            sync_every = 10 * (last_sync - now) > 1.0 ? 10 * (last_sync - now) : 1.0;
        }
    }
    probes_detach(p);

    struct seg_list l;
    int status = 0;
    if (segdir_load(dir, session, 0, &l, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope attach: %s\n", err);
        status = 1;
    } else {
        if (!quiet) {
            summary_text(stderr, &l, want_fd, want_heap);
            notes_text(stderr, p, want_fd, want_heap);
        }
        if (summary) {
            FILE *f = fopen(summary, "w");
            if (!f) {
                fprintf(stderr, "leakscope attach: cannot write %s: %s\n", summary, strerror(errno));
                status = 1;
            } else {
                summary_json(f, &l, want_fd, want_heap, -1);
                if (fclose(f) != 0) status = 1;
            }
        }
        if (!keep)
            for (size_t k = 0; k < l.n; k++) unlink(l.path[k]);
        seg_list_free(&l);
    }
    free(p);
    free(rules);
    return status;
#endif
}
