/* summary.c - the per-process summary every reading command prints: human
 * text for a terminal, JSON for tools. */
#include "summary.h"

#include <stdlib.h>

#include "fd_report.h"
#include "heap_report.h"
#include "diagnose.h"
#include "json.h"
#include "verdict.h"

/* How CPython was traced in this process: frames and allocator mode. */
static const char *py_frames_text(const struct lks_header *h) {
    return h->py_frames == LKS_PYFRAMES_READ      ? "read"
           : h->py_frames == LKS_PYFRAMES_UNKNOWN ? "unknown-version"
                                                  : "none";
}

static const char *py_alloc_text(const struct lks_header *h) {
    switch (h->py_alloc) {
    case LKS_PYMEM_WRAPPED: return "pymalloc-wrapped";
    case LKS_PYMEM_MALLOC: return "pythonmalloc-malloc";
    case LKS_PYMEM_UNSEEN: return "pymalloc-unseen";
    default: return "none";
    }
}

static void python_text(FILE *out, const struct lks_header *h) {
    if (!h->py_version) return;
    unsigned major = h->py_version >> 8, minor = h->py_version & 0xff;
    if (h->py_frames == LKS_PYFRAMES_READ)
        fprintf(out, "  python %u.%u: Python frames in call sites", major, minor);
    else
        fprintf(out, "  python %u.%u: unknown interpreter layout, native frames only", major, minor);
    if (h->features & LKS_FEATURE_HEAP) {
        const char *a = h->py_alloc == LKS_PYMEM_WRAPPED  ? "objects from pymalloc recorded (allocator wrapped)"
                        : h->py_alloc == LKS_PYMEM_MALLOC ? "objects seen as mallocs (PYTHONMALLOC=malloc)"
                        : "small objects NOT seen: another allocator replaced pymalloc's wrapper";
        fprintf(out, "; %s", a);
    }
    fputc('\n', out);
}

/* What the site tables could not keep, in a sentence; NULL if nothing. */
const char *summary_sites_lost(struct lks_header *h, char *buf, size_t len) {
    uint64_t coarse = atomic_load(&h->sites_coarse);
    uint64_t nosite = atomic_load(&h->sites_dropped_events);
    uint64_t frames = atomic_load(&h->frames_dropped);
    if (!coarse && !nosite && !frames) return NULL;
    snprintf(buf, len,
             "call sites: table full (%u of %u); %llu site(s) kept on a shortened stack, "
             "%llu event(s) counted without a site, %llu frame(s) not recorded",
             atomic_load(&h->sites_used), h->sites_cap, (unsigned long long)coarse,
             (unsigned long long)nosite, (unsigned long long)frames);
    return buf;
}

static void sites_json(FILE *out, struct lks_header *h) {
    fprintf(out,
            ",\"call_sites\":{\"used\":%u,\"capacity\":%u,\"coarse\":%llu,"
            "\"events_without_site\":%llu,\"frames_used\":%u,\"frames_lost\":%llu}",
            atomic_load(&h->sites_used), h->sites_cap,
            (unsigned long long)atomic_load(&h->sites_coarse),
            (unsigned long long)atomic_load(&h->sites_dropped_events),
            atomic_load(&h->frames_used), (unsigned long long)atomic_load(&h->frames_dropped));
}

void summary_json(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status) {
    summary_json_verdicts(out, l, want_fd, want_heap, status, NULL);
}

/* Writes {"exit_status":S,"processes":[...],"leaks":[...],"verdicts":[...]}. */
void summary_json_verdicts(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status,
                           const struct diag_list *verdicts) {
    fputc('{', out);
    if (status >= 0) fprintf(out, "\"exit_status\":%d,", status);
    fputs("\"processes\":[", out);
    for (size_t i = 0; i < l->n; i++) {
        struct lks_header *h = l->seg[i];
        struct lks_symbolizer *sym = lks_symbolizer_new(h);
        fprintf(out, "%s\n{\"pid\":%d,\"ppid\":%d,\"forked_from\":%d,\"comm\":", i ? "," : "",
                h->pid, h->ppid, h->forked_from);
        json_string(out, h->comm);
        fputs(",\"exe\":", out);
        json_string(out, h->exe);
        fputs(",\"role\":", out);
        json_string(out, h->role);
        fprintf(out, ",\"exited\":%s,\"running\":%s", h->exited ? "true" : "false",
                lks_segment_process_alive(h) ? "true" : "false");
        if (h->py_version)
            fprintf(out, ",\"python\":{\"version\":\"%u.%u\",\"frames\":\"%s\",\"alloc\":\"%s\"}",
                    h->py_version >> 8, h->py_version & 0xff, py_frames_text(h), py_alloc_text(h));
        sites_json(out, h);
        if (want_fd && (h->features & LKS_FEATURE_FD)) {
            fputs(",\"fd\":", out);
            fd_report_json(out, h, sym);
        }
        if (want_heap && (h->features & LKS_FEATURE_HEAP)) {
            fputs(",\"heap\":", out);
            heap_report_json(out, h, sym);
        }
        fputc('}', out);
        lks_symbolizer_free(sym);
    }
    fputs("\n]", out);
    if (want_fd) {
        fputs(",\"leaks\":", out);
        verdict_json(out, l);
    }
    if (verdicts) {
        fputs(",\"verdicts\":", out);
        diag_json(out, verdicts);
    }
    fputs("}\n", out);
}

/* Index of the process whose pid is h's parent in the list, or -1. */
static long parent_index(struct seg_list *l, const struct lks_header *h) {
    for (size_t i = 0; i < l->n; i++)
        if (l->seg[i] != h && l->seg[i]->pid == h->ppid) return (long)i;
    return -1;
}

static void process_text(FILE *out, struct lks_header *h, int depth, int want_fd, int want_heap) {
    struct lks_symbolizer *sym = lks_symbolizer_new(h);
    fprintf(out, "%*spid %d (%s) ppid %d", 2 * depth, "", h->pid, h->comm, h->ppid);
    if (h->forked_from) fprintf(out, ", forked from %d without exec", h->forked_from);
    fprintf(out, "%s%s%s\n", h->role[0] ? " role " : "", h->role,
            lks_segment_process_alive(h) ? " [still running]" : "");
    python_text(out, h);
    char lost[300];
    if (summary_sites_lost(h, lost, sizeof lost)) fprintf(out, "%*s  %s\n", 2 * depth, "", lost);
    if (want_fd && (h->features & LKS_FEATURE_FD)) fd_report_text(out, h, sym);
    if (want_heap && (h->features & LKS_FEATURE_HEAP)) heap_report_text(out, h, sym);
    lks_symbolizer_free(sym);
}

/* The process tree: each process, then its children one level deeper;
 * shown[] keeps a corrupt ppid cycle from recursing forever. */
static void tree_text(FILE *out, struct seg_list *l, char *shown, size_t at, int depth,
                      int want_fd, int want_heap) {
    if (shown[at]) return;
    shown[at] = 1;
    process_text(out, l->seg[at], depth, want_fd, want_heap);
    for (size_t i = 0; i < l->n; i++)
        if (parent_index(l, l->seg[i]) == (long)at)
            tree_text(out, l, shown, i, depth + 1, want_fd, want_heap);
}

void summary_text(FILE *out, struct seg_list *l, int want_fd, int want_heap) {
    fprintf(out, "\nleakscope: %zu process%s traced\n", l->n, l->n == 1 ? "" : "es");
    char *shown = calloc(l->n ? l->n : 1, 1);
    for (size_t i = 0; shown && i < l->n; i++)
        if (parent_index(l, l->seg[i]) < 0) tree_text(out, l, shown, i, 0, want_fd, want_heap);
    /* Whatever no root reaches (a ppid cycle after pid reuse), flat. */
    for (size_t i = 0; i < l->n; i++)
        if (!shown || !shown[i]) process_text(out, l->seg[i], 0, want_fd, want_heap);
    free(shown);
    if (want_fd) verdict_text(out, l);
}
