/* counters.c - per-thread counter blocks and their sums (see counters.h). */
#define _GNU_SOURCE
#include "counters.h"

#include <pthread.h>
#include <sys/mman.h>

#define MAX_BLOCKS 4096

static uint32_t g_sites_cap;
static size_t g_block_size;
static struct ctr_block *g_blocks[MAX_BLOCKS];
static _Atomic uint32_t g_nblocks;
static struct ctr_block *g_shared;
static pthread_key_t g_exit_key;
static void (*g_flush)(struct ctr_block *);

static __thread struct ctr_block *t_block __attribute__((tls_model("initial-exec")));
static __thread int t_gone __attribute__((tls_model("initial-exec")));

static struct ctr_block *map_block(void) {
    void *p = mmap(NULL, g_block_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Thread exit: the block goes back to the pool; later hooks of this thread
 * (other TLS destructors freeing memory) use the shared block. */
static void release_block(void *arg) {
    struct ctr_block *b = arg;
    if (b && g_flush) g_flush(b);
    t_block = NULL;
    t_gone = 1;
    if (b) atomic_store(&b->owned, 0);
}

int counters_init(uint32_t sites_cap, void (*flush)(struct ctr_block *)) {
    g_flush = flush;
    g_sites_cap = sites_cap;
    g_block_size = sizeof(struct ctr_block) + (size_t)sites_cap * sizeof(struct site_ctr);
    g_shared = map_block();
    if (!g_shared) return -1;
    g_shared->shared = 1;
    g_shared->owned = 1;
    g_blocks[0] = g_shared;
    atomic_store(&g_nblocks, 1);
    return pthread_key_create(&g_exit_key, release_block) == 0 ? 0 : -1;
}

static struct ctr_block *claim_block(void) {
    uint32_t n = atomic_load(&g_nblocks);
    for (uint32_t i = 1; i < n; i++) {
        struct ctr_block *b = g_blocks[i];
        int zero = 0;
        if (b && atomic_load_explicit(&b->owned, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&b->owned, &zero, 1))
            return b;
    }
    if (n >= MAX_BLOCKS) return NULL;
    struct ctr_block *b = map_block();
    if (!b) return NULL;
    b->owned = 1;
    uint32_t i = atomic_fetch_add(&g_nblocks, 1);
    if (i >= MAX_BLOCKS) {
        atomic_store(&g_nblocks, MAX_BLOCKS);
        munmap(b, g_block_size);
        return NULL;
    }
    __atomic_store_n(&g_blocks[i], b, __ATOMIC_RELEASE);
    return b;
}

struct ctr_block *counters_mine(void) {
    if (__builtin_expect(t_block != NULL, 1)) return t_block;
    if (t_gone) return g_shared;
    struct ctr_block *b = claim_block();
    if (!b) return g_shared;
    t_block = b;
    pthread_setspecific(g_exit_key, b);
    return b;
}

/* Owner-only blocks need no atomic read-modify-write: one writer. */
static inline void add(struct ctr_block *b, _Atomic int64_t *x, int64_t d) {
    if (__builtin_expect(b->shared, 0))
        atomic_fetch_add_explicit(x, d, memory_order_relaxed);
    else
        atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + d,
                              memory_order_relaxed);
}

void counters_alloc(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size) {
    struct subsys_ctr *ss = &b->subsys[subsys];
    add(b, &ss->live_bytes, size);
    add(b, &ss->live_allocs, 1);
    add(b, &ss->alloc_bytes, size);
    add(b, &ss->allocs, 1);
    if (site && site <= g_sites_cap) {
        struct site_ctr *sc = &b->site[site - 1];
        add(b, &sc->live_bytes, size);
        add(b, &sc->live_allocs, 1);
        add(b, &sc->alloc_bytes, size);
        add(b, &sc->allocs, 1);
    }
}

void counters_free(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size) {
    struct subsys_ctr *ss = &b->subsys[subsys];
    add(b, &ss->live_bytes, -size);
    add(b, &ss->live_allocs, -1);
    add(b, &ss->frees, 1);
    if (site && site <= g_sites_cap) {
        struct site_ctr *sc = &b->site[site - 1];
        add(b, &sc->live_bytes, -size);
        add(b, &sc->live_allocs, -1);
    }
}

void counters_unfree(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size) {
    struct subsys_ctr *ss = &b->subsys[subsys];
    add(b, &ss->live_bytes, size);
    add(b, &ss->live_allocs, 1);
    add(b, &ss->frees, -1);
    if (site && site <= g_sites_cap) {
        struct site_ctr *sc = &b->site[site - 1];
        add(b, &sc->live_bytes, size);
        add(b, &sc->live_allocs, 1);
    }
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void publish_subsys(struct lks_header *h, uint32_t n, uint32_t s) {
    int64_t lb = 0, la = 0, ab = 0, ac = 0, fr = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct ctr_block *b = __atomic_load_n(&g_blocks[i], __ATOMIC_ACQUIRE);
        if (!b) continue;
        lb += LD(b->subsys[s].live_bytes);
        la += LD(b->subsys[s].live_allocs);
        ab += LD(b->subsys[s].alloc_bytes);
        ac += LD(b->subsys[s].allocs);
        fr += LD(b->subsys[s].frees);
    }
    struct lks_subsys *ss = &lks_subsys_table(h)[s];
    atomic_store(&ss->heap_live_bytes, lb);
    atomic_store(&ss->heap_live_allocs, la);
    atomic_store(&ss->heap_alloc_bytes, (uint64_t)ab);
    atomic_store(&ss->heap_allocs, (uint64_t)ac);
    atomic_store(&ss->heap_frees, (uint64_t)fr);
}

static void publish_site(struct lks_header *h, uint32_t n, uint32_t i) {
    struct lks_site *site = &lks_site_table(h)[i];
    if (!atomic_load_explicit(&site->key, memory_order_relaxed)) return;
    int64_t lb = 0, la = 0, ab = 0, ac = 0;
    for (uint32_t k = 0; k < n; k++) {
        struct ctr_block *b = __atomic_load_n(&g_blocks[k], __ATOMIC_ACQUIRE);
        if (!b) continue;
        lb += LD(b->site[i].live_bytes);
        la += LD(b->site[i].live_allocs);
        ab += LD(b->site[i].alloc_bytes);
        ac += LD(b->site[i].allocs);
    }
    atomic_store(&site->heap_live_bytes, lb);
    atomic_store(&site->heap_live_allocs, la);
    atomic_store(&site->heap_alloc_bytes, (uint64_t)ab);
    atomic_store(&site->heap_allocs, (uint64_t)ac);
}

void counters_publish(struct lks_header *h) {
    uint32_t n = atomic_load(&g_nblocks);
    uint32_t cap = h->sites_cap < g_sites_cap ? h->sites_cap : g_sites_cap;
    for (uint32_t s = 0; s < LKS_MAX_SUBSYS; s++) publish_subsys(h, n, s);
    uint32_t claimed = lks_sites_claimed(); /* a prefix: keep the rest sparse */
    for (uint32_t i = 0; i < claimed && i < cap; i++) publish_site(h, n, i);
}

void counters_publish_one(struct lks_header *h, uint32_t site, uint32_t subsys) {
    uint32_t n = atomic_load(&g_nblocks);
    if (subsys < LKS_MAX_SUBSYS) publish_subsys(h, n, subsys);
    if (site && site <= g_sites_cap && site <= h->sites_cap) publish_site(h, n, site - 1);
}

uint32_t counters_pending(uintptr_t *out, uint32_t max) {
    uint32_t n = atomic_load(&g_nblocks), k = 0;
    for (uint32_t i = 0; i < n && k < max; i++) {
        struct ctr_block *b = __atomic_load_n(&g_blocks[i], __ATOMIC_ACQUIRE);
        uintptr_t p = b ? atomic_load_explicit(&b->pending_free, memory_order_relaxed) : 0;
        if (p) out[k++] = p;
    }
    return k;
}

/* Writes only what changes, so the child does not copy untouched pages. */
static inline void rebase(_Atomic int64_t *total, _Atomic int64_t *live) {
    if (LD(*total) != LD(*live)) atomic_store_explicit(total, LD(*live), memory_order_relaxed);
}

void counters_after_fork(void) {
    uint32_t n = atomic_load(&g_nblocks);
    for (uint32_t i = 0; i < n; i++) {
        struct ctr_block *b = g_blocks[i];
        if (!b) continue;
        if (b != t_block && !b->shared) {
            /* That thread's last free never reaches libc in the child: the
             * block stays allocated, and counted. */
            b->owned = 0;
            b->pending_free = 0;
        }
        for (int s = 0; s < LKS_MAX_SUBSYS; s++) {
            rebase(&b->subsys[s].alloc_bytes, &b->subsys[s].live_bytes);
            rebase(&b->subsys[s].allocs, &b->subsys[s].live_allocs);
            if (LD(b->subsys[s].frees)) b->subsys[s].frees = 0;
        }
        /* Claimed sites only: a block's other entries were never written. */
        uint32_t claimed = lks_sites_claimed();
        for (uint32_t k = 0; k < claimed && k < g_sites_cap; k++) {
            rebase(&b->site[k].alloc_bytes, &b->site[k].live_bytes);
            rebase(&b->site[k].allocs, &b->site[k].live_allocs);
        }
    }
}
