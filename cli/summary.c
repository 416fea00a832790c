/* summary.c - the per-process summary every reading command prints: human
 * text for a terminal, JSON for tools. */
#include "summary.h"

#include <stdlib.h>

#include "fd_report.h"
#include "heap_report.h"
#include "diagnose.h"
#include "json.h"
#include "verdict.h"

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
