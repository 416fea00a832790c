/* heapprobe.c - loader of the heap probe: uprobes on the target's C
 * library allocator, and the aggregation that turns the kernel tables into
 * the segment's heap view (per-site and per-subsystem counters, ages, the
 * largest live blocks), the same view libmemtrack writes.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heapprobe.h"
#include "heapprobe.skel.h"
#include "../memtrack/heapseg.h"
#include "probes.h"

/* The C library mapped in pid, or -1. */
static int find_libc(pid_t pid, char *buf, size_t len) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        char *file = strchr(line, '/');
        if (!file) continue;
        file[strcspn(file, "\n")] = 0;
        const char *base = strrchr(file, '/') + 1;
        if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0) {
            snprintf(buf, len, "%s", file);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static int attach_one(struct probes *p, struct bpf_program *prog, const char *func, int ret,
                      char *err, size_t errlen) {
    LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = func, .retprobe = ret != 0);
    struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, p->opts.pid, p->libc, 0, &uo);
    if (!l) {
        lks_set_err(err, errlen, "cannot attach a uprobe to %s in %s: %s", func, p->libc,
                    strerror(errno));
        return -1;
    }
    p->heap_links[p->nheap_links++] = l;
    return 0;
}

int heapprobe_attach(struct probes *p, char *err, size_t errlen) {
    if (find_libc(p->opts.pid, p->libc, sizeof p->libc) != 0) {
        lks_set_err(err, errlen, "pid %d has no C library mapped: its heap cannot be traced",
                    (int)p->opts.pid);
        return -1;
    }
    struct heapprobe_bpf *skel = heapprobe_bpf__open();
    if (!skel) {
        lks_set_err(err, errlen, "cannot open the heap probe: %s", strerror(errno));
        return -1;
    }
    p->heap_skel = skel;
    skel->rodata->sample_bytes = p->opts.sample_bytes;
    if (heapprobe_bpf__load(skel) != 0) {
        lks_set_err(err, errlen, "cannot load the heap probe: %s", strerror(errno));
        return -1;
    }
    struct {
        struct bpf_program *prog;
        const char *func;
    } entries[] = {
        {skel->progs.hp_malloc, "malloc"},
        {skel->progs.hp_calloc, "calloc"},
        {skel->progs.hp_realloc, "realloc"},
        {skel->progs.hp_posix_memalign, "posix_memalign"},
        {skel->progs.hp_aligned_alloc, "aligned_alloc"},
        {skel->progs.hp_aligned_alloc, "memalign"},
        {skel->progs.hp_valloc, "valloc"},
    };
    /* Return probes first: an entry without its return would leave a
     * pending request behind. free last, once allocations are recorded. */
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (attach_one(p, skel->progs.hp_ret, entries[i].func, 1, err, errlen) != 0) return -1;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (attach_one(p, entries[i].prog, entries[i].func, 0, err, errlen) != 0) return -1;
    return attach_one(p, skel->progs.hp_free, "free", 0, err, errlen);
}

static uint64_t stat_sum(struct heapprobe_bpf *skel, uint32_t which) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0 || ncpu > 4096) return 0;
    uint64_t vals[ncpu], sum = 0;
    if (bpf_map__lookup_elem(skel->maps.hp_stats, &which, sizeof which, vals,
                             sizeof(uint64_t) * (size_t)ncpu, 0) != 0)
        return 0;
    for (int i = 0; i < ncpu; i++) sum += vals[i];
    return sum;
}

static void *destroy_link(void *link) {
    bpf_link__destroy(link);
    return NULL;
}

/* Removing a uprobe waits for an RCU grace period (~0.1 s here); one thread
 * per probe lets those waits overlap, so detaching takes one wait, not 15. */
static void destroy_links(struct bpf_link **links, int n) {
    pthread_t threads[32];
    int started[32] = {0};
    for (int i = 0; i < n && i < 32; i++)
        started[i] = pthread_create(&threads[i], NULL, destroy_link, links[i]) == 0;
    for (int i = 0; i < n && i < 32; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        else bpf_link__destroy(links[i]);
    }
}

void heapprobe_detach(struct probes *p) {
    destroy_links(p->heap_links, p->nheap_links);
    p->nheap_links = 0;
    if (p->heap_skel) {
        probes_sync_heap(p); /* the tables as they were at detach */
        ((struct lks_heapseg *)lks_heap_area(p->targets[0].seg))->final = 1;
        heapprobe_bpf__destroy(p->heap_skel);
    }
    p->heap_skel = NULL;
}

/* The segment site of a kernel stack, interned on first sight. */
static uint32_t segment_site(struct probes *p, uint64_t hash) {
    uint32_t mask = (uint32_t)(sizeof p->site_keys / sizeof p->site_keys[0]) - 1;
    uint32_t i = (uint32_t)hash & mask;
    for (uint32_t probe = 0; probe <= mask; probe++, i = (i + 1) & mask) {
        if (p->site_keys[i] == hash) return p->site_vals[i];
        if (p->site_keys[i] == 0) break;
    }
    struct hp_stack st;
    if (bpf_map__lookup_elem(p->heap_skel->maps.site_stacks, &hash, sizeof hash, &st, sizeof st,
                             0) != 0)
        return 0;
    struct lks_target *t = &p->targets[0];
    /* Keep the exact caller; keep frame-pointer frames while they land in code. */
    uint64_t frames[LKS_MAX_FRAMES];
    int n = 0;
    for (uint32_t f = 0; f < st.nframes && f < HP_MAX_FRAMES && n < LKS_MAX_FRAMES; f++) {
        if (f > 0 && target_module(t, st.frames[f] - 1) == LKS_NO_MODULE) break;
        frames[n++] = st.frames[f];
    }
    if (n == 0) return 0;
    uint64_t bits = target_stack_bits(t, frames, n);
    struct lks_subject subj = {.kind = LKS_KIND_UNKNOWN, .stack_bits = bits};
    int subsys = lks_rules_classify(p->opts.rules, &subj);
    uint32_t site = target_site(t, frames, n, bits, subsys);
    if (p->site_keys[i] == 0 && site) {
        p->site_keys[i] = hash;
        p->site_vals[i] = site;
    }
    return site;
}

/* tcmalloc's estimator: a block of size s was sampled with probability
 * 1 - exp(-s/N) and stands for 1/p blocks. */
static double sample_prob(uint64_t size, uint64_t period) {
    if (!period) return 1.0;
    return -expm1(-(double)size / (double)period);
}

static int age_bucket(int64_t age_ns) {
    for (int b = 0; b < LKS_HEAP_AGES - 1; b++)
        if (age_ns < lks_heap_age_edges_s[b] * 1000000000LL) return b;
    return LKS_HEAP_AGES - 1;
}

static int cmp_retained(const void *a, const void *b) {
    const struct lks_heap_alloc *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

void probes_sync_heap(struct probes *p) {
    if (!p->heap_skel || p->ntargets == 0) return;
    struct lks_target *t = &p->targets[0];
    struct lks_header *h = t->seg;
    struct lks_heapseg *hs = (struct lks_heapseg *)lks_heap_area(h);
    struct lks_site *sites = lks_site_table(h);
    struct lks_subsys *ss = lks_subsys_table(h);
    uint64_t period = p->opts.sample_bytes;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;

    atomic_fetch_add(&hs->seq, 1);
    /* Per site: totals since attach from the kernel. */
    int64_t sub_live_b[LKS_MAX_SUBSYS] = {0}, sub_live_n[LKS_MAX_SUBSYS] = {0};
    uint64_t sub_alloc_b[LKS_MAX_SUBSYS] = {0}, sub_allocs[LKS_MAX_SUBSYS] = {0},
             sub_frees[LKS_MAX_SUBSYS] = {0};
    for (uint32_t i = 0; i < h->sites_cap; i++) {
        atomic_store(&sites[i].heap_live_bytes, 0);
        atomic_store(&sites[i].heap_live_allocs, 0);
        atomic_store(&sites[i].heap_alloc_bytes, 0);
        atomic_store(&sites[i].heap_allocs, 0);
        hs->site_oldest_ns[i] = 0;
    }
    memset(hs->age_bytes, 0, sizeof hs->age_bytes);
    memset(hs->age_allocs, 0, sizeof hs->age_allocs);
    uint64_t key = 0, next;
    int have = 0;
    while (bpf_map__get_next_key(p->heap_skel->maps.site_stats, have ? &key : NULL, &next,
                                 sizeof next) == 0) {
        key = next;
        have = 1;
        struct hp_site_stats st;
        if (bpf_map__lookup_elem(p->heap_skel->maps.site_stats, &key, sizeof key, &st, sizeof st,
                                 0) != 0)
            continue;
        uint32_t site = segment_site(p, key);
        if (!site) continue;
        struct lks_site *s = &sites[site - 1];
        uint64_t allocs = st.allocs, bytes = st.alloc_bytes;
        if (period) { /* small blocks stand for ~N bytes each: s/p ~ N + s/2 */
            bytes = st.allocs * period + st.alloc_bytes / 2;
        }
        atomic_fetch_add(&s->heap_allocs, allocs);
        atomic_fetch_add(&s->heap_alloc_bytes, bytes);
        if (!period) {
            atomic_fetch_add(&s->heap_live_allocs, st.live_allocs);
            atomic_fetch_add(&s->heap_live_bytes, st.live_bytes);
        }
        if (s->subsys < LKS_MAX_SUBSYS) {
            sub_allocs[s->subsys] += allocs;
            sub_alloc_b[s->subsys] += bytes;
            sub_frees[s->subsys] += st.frees;
        }
    }

    /* Live blocks: ages, oldest per site, the largest; estimates when sampling. */
    struct lks_heap_alloc top[LKS_HEAP_RETAINED];
    uint32_t ntop = 0;
    double est = 0, var = 0;
    have = 0;
    while (bpf_map__get_next_key(p->heap_skel->maps.live, have ? &key : NULL, &next,
                                 sizeof next) == 0) {
        key = next;
        have = 1;
        struct hp_live l;
        if (bpf_map__lookup_elem(p->heap_skel->maps.live, &key, sizeof key, &l, sizeof l, 0) != 0)
            continue;
        uint32_t site = segment_site(p, l.site);
        int subsys = site ? sites[site - 1].subsys : LKS_SUBSYS_OTHER;
        if (subsys >= LKS_MAX_SUBSYS) subsys = LKS_SUBSYS_OTHER;
        double prob = sample_prob(l.size, period);
        int64_t w_bytes = period ? (int64_t)((double)l.size / prob) : (int64_t)l.size;
        int64_t w_count = period ? (int64_t)(1.0 / prob + 0.5) : 1;
        est += (double)l.size / prob;
        var += (double)l.size * (double)l.size * (1 - prob) / (prob * prob);
        int b = age_bucket(now - (int64_t)l.birth_ns);
        hs->age_bytes[subsys][b] += w_bytes;
        hs->age_allocs[subsys][b] += w_count;
        if (site) {
            if (period) {
                atomic_fetch_add(&sites[site - 1].heap_live_bytes, w_bytes);
                atomic_fetch_add(&sites[site - 1].heap_live_allocs, w_count);
            }
            int64_t *old = &hs->site_oldest_ns[site - 1];
            if (*old == 0 || (int64_t)l.birth_ns < *old) *old = (int64_t)l.birth_ns;
        }
        if (period) {
            sub_live_b[subsys] += w_bytes;
            sub_live_n[subsys] += w_count;
        }
        struct lks_heap_alloc a = {.addr = key, .size = l.size, .birth_mono_ns = (int64_t)l.birth_ns,
                                   .site = site, .subsys = (uint16_t)subsys};
        if (ntop < LKS_HEAP_RETAINED) top[ntop++] = a;
        else if (a.size > top[LKS_HEAP_RETAINED - 1].size) top[LKS_HEAP_RETAINED - 1] = a;
        else continue;
        qsort(top, ntop, sizeof top[0], cmp_retained);
    }
    if (!period) { /* exact: live totals straight from the site counters */
        for (uint32_t i = 0; i < h->sites_cap; i++) {
            if (!atomic_load(&sites[i].key) || sites[i].subsys >= LKS_MAX_SUBSYS) continue;
            sub_live_b[sites[i].subsys] += atomic_load(&sites[i].heap_live_bytes);
            sub_live_n[sites[i].subsys] += atomic_load(&sites[i].heap_live_allocs);
        }
    }
    for (int s = 0; s < LKS_MAX_SUBSYS; s++) {
        atomic_store(&ss[s].heap_live_bytes, sub_live_b[s]);
        atomic_store(&ss[s].heap_live_allocs, sub_live_n[s]);
        atomic_store(&ss[s].heap_alloc_bytes, sub_alloc_b[s]);
        atomic_store(&ss[s].heap_allocs, sub_allocs[s]);
        atomic_store(&ss[s].heap_frees, sub_frees[s]);
    }
    memcpy(hs->retained, top, sizeof top[0] * ntop);
    hs->nretained = ntop;
    p->heap_unknown_frees = stat_sum(p->heap_skel, HP_STAT_UNKNOWN_FREES);
    p->heap_failed = stat_sum(p->heap_skel, HP_STAT_FAILED);
    p->heap_table_full = stat_sum(p->heap_skel, HP_STAT_TABLE_FULL);
    atomic_store(&hs->unknown_frees, p->heap_unknown_frees);
    atomic_store(&hs->failed_allocs, p->heap_failed);
    atomic_store(&hs->table_full, p->heap_table_full);
    hs->tracked_live = 0;
    for (int s = 0; s < LKS_MAX_SUBSYS; s++) hs->tracked_live += (uint64_t)sub_live_n[s];
    hs->aggregated_mono_ns = now;
    hs->aggregations++;
    p->est_live_bytes = est;
    p->est_live_sd = sqrt(var);
    atomic_fetch_add(&hs->seq, 1);
}
