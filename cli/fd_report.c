/* fd_report.c - turns a segment's descriptor counters and sites into the
 * summary a user reads: which subsystem holds descriptors, which failed,
 * and the call sites that created the ones still open. */
#include "fd_report.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

#define TEXT_SITES 5
#define TEXT_FRAMES 4

/* Sites worth showing: still holding descriptors, or with failures. */
static int site_cmp(const void *a, const void *b) {
    const struct lks_site *x = *(struct lks_site *const *)a, *y = *(struct lks_site *const *)b;
    if (x->fd_open != y->fd_open) return x->fd_open < y->fd_open ? 1 : -1;
    if (x->fd_failed != y->fd_failed) return x->fd_failed < y->fd_failed ? 1 : -1;
    return (x->fd_opened < y->fd_opened) - (x->fd_opened > y->fd_opened);
}

static size_t collect_sites(struct lks_header *seg, struct lks_site ***out) {
    struct lks_site *sites = lks_site_table(seg);
    size_t n = 0;
    struct lks_site **v = malloc(sizeof *v * seg->sites_cap);
    if (!v) return 0;
    for (uint32_t i = 0; i < seg->sites_cap; i++) {
        struct lks_site *s = &sites[i];
        if (!s->key || !s->ready) continue;
        if (s->fd_open > 0 || s->fd_failed > 0) v[n++] = s;
    }
    qsort(v, n, sizeof *v, site_cmp);
    *out = v;
    return n;
}

static const char *subsys_name(struct lks_header *seg, unsigned id) {
    return id < seg->subsys_used ? lks_subsys_table(seg)[id].name : "other";
}

static int subsys_has_fd(const struct lks_subsys *s) {
    if (s->fd_opened || s->fd_closed || s->fd_open) return 1;
    for (int e = 0; e < LKS_ERR_SLOTS; e++)
        if (s->fd_failed[e]) return 1;
    return 0;
}

/* "Now" on the writer's monotonic clock: the present for a live process,
 * the moment of exit for one that exited through exit(). */
static int64_t segment_now_mono(const struct lks_header *seg) {
    if (seg->exited && seg->exit_realtime_ns)
        return lks_sat_add(seg->start_mono_ns,
                           lks_sat_sub(seg->exit_realtime_ns, seg->start_realtime_ns));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Age in seconds of the oldest open descriptor of a site (site index + 1)
 * or, with site 0, of a subsystem; -1 if none is open. */
static double oldest_open_age(struct lks_header *seg, uint32_t site, int subsys) {
    struct lks_fd *fds = lks_fd_table(seg);
    uint32_t top = (uint32_t)seg->fd_hiwater;
    if (top > seg->fds_cap) top = seg->fds_cap;
    int64_t oldest = INT64_MAX;
    for (uint32_t fd = 0; fd < top; fd++) {
        const struct lks_fd *e = &fds[fd];
        if (!e->in_use || (e->seq & 1)) continue;
        if (site ? e->site != site : e->subsys != subsys) continue;
        if (e->created_mono_ns < oldest) oldest = e->created_mono_ns;
    }
    if (oldest == INT64_MAX) return -1;
    double age = (double)lks_sat_sub(segment_now_mono(seg), oldest) / 1e9;
    return age < 0 ? 0 : age;
}

double fd_site_oldest_age(struct lks_header *seg, const struct lks_site *site) {
    return oldest_open_age(seg, (uint32_t)(site - lks_site_table(seg)) + 1, 0);
}

/* Descriptors the process got from its parent through fork (LKS_FD_FORKED):
 * they count against its limit but are not its own creations. */
static long forked_count(struct lks_header *seg) {
    struct lks_fd *fds = lks_fd_table(seg);
    uint32_t top = (uint32_t)seg->fd_hiwater;
    if (top > seg->fds_cap) top = seg->fds_cap;
    long n = 0;
    for (uint32_t fd = 0; fd < top; fd++)
        if (fds[fd].in_use && !(fds[fd].seq & 1) && (fds[fd].flags & LKS_FD_FORKED)) n++;
    return n;
}

/* How the writer's exit reconciliation went, for a process that ended. */
static const char *reconcile_name(const struct lks_header *seg) {
    switch (seg->fd_reconciled) {
    case LKS_RECONCILE_PROC: return "proc";
    case LKS_RECONCILE_PROBE: return "probe";
    default: return "none";
    }
}

/* Entries of /proc/PID/fd for a live process, or -1. */
static long kernel_open_count(const struct lks_header *seg) {
    if (!lks_segment_process_alive(seg)) return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", seg->pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

void fd_report_json(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym) {
    struct lks_subsys *ss = lks_subsys_table(seg);
    int64_t open_total = 0;
    for (unsigned i = 0; i < seg->subsys_used; i++) open_total = lks_sat_add(open_total, ss[i].fd_open);
    /* A live process is reconciled now: what the kernel has beyond what the
     * hooks saw (and the shim's own) is unattributed. */
    long kernel = kernel_open_count(seg);
    if (kernel >= 0)
        fprintf(out, "{\"kernel_open\":%ld,\"unattributed_now\":%lld,", kernel,
                (long long)lks_sat_sub(lks_sat_sub(kernel, open_total), seg->fd_own));
    else
        fputc('{', out);

    fprintf(out, "\"open_total\":%lld,\"rlimit_nofile\":%llu,\"unattributed\":%lld,"
                 "\"stale\":%lld,\"untracked\":%lld,\"unknown_closes\":%llu,"
                 "\"closed_unseen\":%llu,\"inherited_by_fork\":%ld,\"reconciled\":\"%s\","
                 "\"shim_own\":%d,",
            (long long)open_total, (unsigned long long)seg->rlimit_nofile_cur,
            (long long)seg->fd_unattributed, (long long)seg->fd_stale,
            (long long)seg->fd_untracked, (unsigned long long)seg->fd_unknown_close,
            (unsigned long long)seg->fd_closed_unseen, forked_count(seg), reconcile_name(seg),
            (int)seg->fd_own);

    fputs("\"by_subsystem\":{", out);
    int first = 1;
    for (unsigned i = 0; i < seg->subsys_used; i++) {
        if (!subsys_has_fd(&ss[i])) continue;
        fprintf(out, "%s", first ? "" : ",");
        first = 0;
        json_string(out, ss[i].name);
        fprintf(out, ":{\"open\":%lld,\"opened\":%llu,\"closed\":%llu,\"oldest_open_age_s\":%.3f}",
                (long long)ss[i].fd_open, (unsigned long long)ss[i].fd_opened,
                (unsigned long long)ss[i].fd_closed, oldest_open_age(seg, 0, (int)i));
    }
    fputs("},\"open_failed\":{", out);
    first = 1;
    for (unsigned i = 0; i < seg->subsys_used; i++) {
        int any = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++) {
            if (!ss[i].fd_failed[e]) continue;
            if (!any) {
                fprintf(out, "%s", first ? "" : ",");
                first = 0;
                json_string(out, ss[i].name);
                fputs(":{", out);
            }
            fprintf(out, "%s\"%s\":%llu", any ? "," : "", lks_errno_slot_name(e),
                    (unsigned long long)ss[i].fd_failed[e]);
            any = 1;
        }
        if (any) fputc('}', out);
    }
    fputs("}", out);
    if (seg->fd_limit_hit_mono_ns) {
        /* Who held the descriptors when the limit was last hit. */
        fprintf(out, ",\"limit_hit_age_s\":%.3f,\"open_at_limit\":{",
                (double)lks_sat_sub(segment_now_mono(seg), seg->fd_limit_hit_mono_ns) / 1e9);
        first = 1;
        for (unsigned i = 0; i < seg->subsys_used; i++) {
            if (ss[i].fd_open_at_limit <= 0) continue;
            fprintf(out, "%s", first ? "" : ",");
            first = 0;
            json_string(out, ss[i].name);
            fprintf(out, ":%lld", (long long)ss[i].fd_open_at_limit);
        }
        fputc('}', out);
    }
    fputs(",\"sites\":[", out);
    struct lks_site **v = NULL;
    size_t n = collect_sites(seg, &v);
    for (size_t i = 0; i < n; i++) {
        struct lks_site *s = v[i];
        fprintf(out, "%s{\"subsystem\":", i ? "," : "");
        json_string(out, subsys_name(seg, s->subsys));
        fprintf(out, ",\"open\":%lld,\"opened\":%llu,\"failed\":%llu,\"oldest_open_age_s\":%.3f,"
                     "\"frames\":",
                (long long)s->fd_open, (unsigned long long)s->fd_opened,
                (unsigned long long)s->fd_failed,
                fd_site_oldest_age(seg, s));
        json_site_frames(out, sym, s);
        fputc('}', out);
    }
    free(v);
    fputs("]}", out);
}

void fd_report_text(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym) {
    struct lks_subsys *ss = lks_subsys_table(seg);
    int64_t open_total = 0;
    for (unsigned i = 0; i < seg->subsys_used; i++) open_total = lks_sat_add(open_total, ss[i].fd_open);
    int alive = lks_segment_process_alive(seg);
    fprintf(out, "  descriptors: %lld open %s (limit %llu)", (long long)open_total,
            alive ? "now" : "at exit", (unsigned long long)seg->rlimit_nofile_cur);
    if (seg->fd_unattributed) fprintf(out, ", %lld unattributed", (long long)seg->fd_unattributed);
    long forked = forked_count(seg);
    if (forked) fprintf(out, ", %ld inherited from pid %d", forked, seg->forked_from);
    if (seg->fd_closed_unseen)
        fprintf(out, ", %llu closed where no hook saw it", (unsigned long long)seg->fd_closed_unseen);
    if (!alive && seg->fd_reconciled == LKS_RECONCILE_NONE)
        fputs(", not reconciled with the kernel (ended without exit())", out);
    if (seg->fd_reconciled == LKS_RECONCILE_PROBE)
        fputs(", reconciled by probing (no descriptor to spare)", out);
    fputc('\n', out);
    fprintf(out, "    %-14s %8s %10s %10s  %s\n", "subsystem", "open", "opened", "closed",
            "failed");
    for (unsigned i = 0; i < seg->subsys_used; i++) {
        if (!subsys_has_fd(&ss[i])) continue;
        fprintf(out, "    %-14s %8lld %10llu %10llu  ", ss[i].name, (long long)ss[i].fd_open,
                (unsigned long long)ss[i].fd_opened, (unsigned long long)ss[i].fd_closed);
        int any = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++)
            if (ss[i].fd_failed[e]) {
                fprintf(out, "%s%s=%llu", any ? " " : "", lks_errno_slot_name(e),
                        (unsigned long long)ss[i].fd_failed[e]);
                any = 1;
            }
        fputs(any ? "\n" : "-\n", out);
    }
    if (seg->fd_limit_hit_mono_ns) {
        fputs("  descriptor limit hit (EMFILE/ENFILE); at the last failure they were held by:", out);
        for (unsigned i = 0; i < seg->subsys_used; i++)
            if (ss[i].fd_open_at_limit > 0)
                fprintf(out, " %s=%lld", ss[i].name, (long long)ss[i].fd_open_at_limit);
        fputc('\n', out);
    }
    struct lks_site **v = NULL;
    size_t n = collect_sites(seg, &v);
    for (size_t i = 0; i < n && i < TEXT_SITES; i++) {
        struct lks_site *s = v[i];
        if (s->fd_open <= 0 && s->fd_failed == 0) continue;
        double age = fd_site_oldest_age(seg, s);
        fprintf(out, "  %lld open (%llu opened, %llu failed) in %s", (long long)s->fd_open,
                (unsigned long long)s->fd_opened, (unsigned long long)s->fd_failed,
                subsys_name(seg, s->subsys));
        if (age >= 0) fprintf(out, ", oldest %.1f s", age);
        fputs(", created at:\n", out);
        for (int f = 0; f < s->nframes && f < TEXT_FRAMES; f++) {
            char buf[512];
            fprintf(out, "      %s\n",
                    lks_symbolize_site_frame(sym, s, f, buf, sizeof buf));
        }
    }
    free(v);
}
