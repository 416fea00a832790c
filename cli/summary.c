/* summary.c - the per-process summary every reading command prints: human
 * text for a terminal, JSON for tools. */
#include "summary.h"

#include "fd_report.h"
#include "heap_report.h"
#include "json.h"
#include "verdict.h"

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

/* Writes {"exit_status":S,"processes":[...],"leaks":[...]}. */
void summary_json(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status) {
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
    fputs("}\n", out);
}

void summary_text(FILE *out, struct seg_list *l, int want_fd, int want_heap) {
    fprintf(out, "\nleakscope: %zu process%s traced\n", l->n, l->n == 1 ? "" : "es");
    for (size_t i = 0; i < l->n; i++) {
        struct lks_header *h = l->seg[i];
        struct lks_symbolizer *sym = lks_symbolizer_new(h);
        fprintf(out, "pid %d (%s) ppid %d", h->pid, h->comm, h->ppid);
        if (h->forked_from) fprintf(out, ", forked from %d without exec", h->forked_from);
        fprintf(out, "%s%s%s\n", h->role[0] ? " role " : "", h->role,
                lks_segment_process_alive(h) ? " [still running]" : "");
        char lost[300];
        if (summary_sites_lost(h, lost, sizeof lost)) fprintf(out, "  %s\n", lost);
        if (want_fd && (h->features & LKS_FEATURE_FD)) fd_report_text(out, h, sym);
        if (want_heap && (h->features & LKS_FEATURE_HEAP)) heap_report_text(out, h, sym);
        lks_symbolizer_free(sym);
    }
    if (want_fd) verdict_text(out, l);
}

