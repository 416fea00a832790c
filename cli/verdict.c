/* verdict.c - the answer at the end of a run: which call sites, in which
 * processes, still hold a pile of descriptors. */
#include "verdict.h"

#include <stdint.h>
#include <stdlib.h>

#include "fd_report.h"
#include "json.h"
#include "symbolize.h"

struct suspect {
    struct lks_header *seg;
    struct lks_site *site;
};

static int by_open(const void *a, const void *b) {
    const struct suspect *x = a, *y = b;
    return (x->site->fd_open < y->site->fd_open) - (x->site->fd_open > y->site->fd_open);
}

/* Per site (index), how many of its open descriptors are one end of a
 * pipe()/socketpair(). Caller frees; NULL if out of memory. */
static uint32_t *pair_ends_by_site(struct lks_header *h) {
    uint32_t *pairs = calloc(h->sites_cap, sizeof *pairs);
    if (!pairs) return NULL;
    struct lks_fd *fds = lks_fd_table(h);
    uint32_t top = (uint32_t)h->fd_hiwater;
    if (top > h->fds_cap) top = h->fds_cap;
    for (uint32_t fd = 0; fd < top; fd++) {
        const struct lks_fd *e = &fds[fd];
        if (!e->in_use || (e->seq & 1) || !(e->flags & LKS_FD_PAIR)) continue;
        if (e->flags & LKS_FD_FORKED) continue; /* not counted in the site */
        if (e->site >= 1 && e->site <= h->sites_cap) pairs[e->site - 1]++;
    }
    return pairs;
}

/* Calls of a site whose descriptors are still open: a pipe() or
 * socketpair() call holds two, so its ends count one half each. */
static int64_t open_calls(const struct lks_site *s, uint32_t pair_ends) {
    int64_t singles = lks_sat_sub(s->fd_open, (int64_t)pair_ends);
    if (singles < 0) singles = 0;
    return lks_sat_add(singles, ((int64_t)pair_ends + 1) / 2);
}

/* Every suspect of every process, most descriptors first. Caller frees.
 * Descriptors inherited through fork are the parent's and never count. */
static struct suspect *collect(struct seg_list *l, size_t *n) {
    size_t cap = 16;
    struct suspect *v = malloc(cap * sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < l->n; i++) {
        struct lks_header *h = l->seg[i];
        if (!(h->features & LKS_FEATURE_FD)) continue;
        struct lks_site *sites = lks_site_table(h);
        uint32_t *pairs = pair_ends_by_site(h);
        for (uint32_t s = 0; pairs && s < h->sites_cap; s++) {
            if (!sites[s].key || !sites[s].ready || sites[s].fd_open < LKS_LEAK_MIN_OPEN) continue;
            if (open_calls(&sites[s], pairs[s]) < LKS_LEAK_MIN_OPEN) continue;
            if (*n == cap) {
                struct suspect *bigger = realloc(v, 2 * cap * sizeof *v);
                if (!bigger) break;
                v = bigger;
                cap *= 2;
            }
            v[(*n)++] = (struct suspect){h, &sites[s]};
        }
        free(pairs);
    }
    if (v) qsort(v, *n, sizeof *v, by_open);
    return v;
}

static const char *subsys_name(struct lks_header *h, unsigned id) {
    return id < h->subsys_used ? lks_subsys_table(h)[id].name : "other";
}

void verdict_json(FILE *out, struct seg_list *l) {
    size_t n;
    struct suspect *v = collect(l, &n);
    fputc('[', out);
    for (size_t i = 0; v && i < n; i++) {
        struct lks_header *h = v[i].seg;
        struct lks_site *s = v[i].site;
        struct lks_symbolizer *sym = lks_symbolizer_new(h);
        char buf[512];
        fprintf(out, "%s{\"pid\":%d,\"comm\":", i ? "," : "", h->pid);
        json_string(out, h->comm);
        fputs(",\"resource\":\"fd\",\"subsystem\":", out);
        json_string(out, subsys_name(h, s->subsys));
        fprintf(out, ",\"open\":%lld,\"opened\":%llu,\"oldest_open_age_s\":%.3f,\"site\":",
                (long long)s->fd_open, (unsigned long long)s->fd_opened,
                fd_site_oldest_age(h, s));
        json_string(out, sym ? lks_symbolize_headline(sym, s, buf, sizeof buf) : "?");
        fputs(",\"frames\":", out);
        json_site_frames(out, sym, s);
        fputc('}', out);
        lks_symbolizer_free(sym);
    }
    fputc(']', out);
    free(v);
}

void verdict_text(FILE *out, struct seg_list *l) {
    size_t n;
    struct suspect *v = collect(l, &n);
    if (!v || n == 0) {
        fputs("\nverdict: no descriptor leak (no call site holds more than one descriptor)\n", out);
        free(v);
        return;
    }
    fprintf(out, "\nverdict: %zu call site%s still hold%s descriptors:\n", n, n == 1 ? "" : "s",
            n == 1 ? "s" : "");
    for (size_t i = 0; i < n; i++) {
        struct lks_header *h = v[i].seg;
        struct lks_site *s = v[i].site;
        struct lks_symbolizer *sym = lks_symbolizer_new(h);
        char buf[512];
        fprintf(out, "  LEAK %lld %s descriptors in pid %d (%s), opened at %s, oldest %.1f s\n",
                (long long)s->fd_open, subsys_name(h, s->subsys), h->pid, h->comm,
                sym ? lks_symbolize_headline(sym, s, buf, sizeof buf) : "?",
                fd_site_oldest_age(h, s));
        lks_symbolizer_free(sym);
    }
    free(v);
}
