/* aggregate.c - the walk over live allocations, the background thread that
 * runs it, marks and refresh requests (see aggregate.h and heapseg.h).
 *
 * Holding one stripe at a time keeps the walk from stalling the program: a
 * malloc waits at most for the walk of one small stripe.
 */
#define _GNU_SOURCE
#include "aggregate.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "alloc_table.h"
#include "counters.h"
#include "heapseg.h"
#include "trace.h"

_Atomic uint32_t g_mark_gen;
_Atomic int g_final;

static int64_t g_epoch_ns;
static pthread_mutex_t g_agg_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t g_sites_cap;
/* Per-site scratch of one walk, sites_cap entries. */
struct site_scratch {
    uint32_t oldest_ms; /* UINT32_MAX: nothing live */
    uint32_t mark_allocs;
    int64_t mark_bytes;
};
static struct site_scratch *g_scratch;
static _Atomic(struct lks_heapseg *) g_hs;

#define TICK_MS 50
#define TICKS_PER_AGGREGATION 20

static int64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint32_t heap_clock_ms(void) {
    int64_t ms = (coarse_ns() - g_epoch_ns) / 1000000;
    return ms < 0 ? 0 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static struct lks_heapseg *heapseg_setup(struct lks_header *h) {
    if (h->heap_size < lks_heapseg_size(h->sites_cap)) return NULL;
    struct lks_heapseg *hs = lks_heap_area(h);
    hs->version = LKS_HEAP_VERSION;
    hs->area_size = (uint32_t)lks_heapseg_size(h->sites_cap);
    hs->sites_cap = h->sites_cap;
    memcpy(hs->magic, LKS_HEAP_MAGIC, 8);
    return hs;
}

int aggregate_init(struct lks_header *h) {
    g_epoch_ns = coarse_ns() - 1000000000; /* birth 0 never means "now" */
    g_sites_cap = h->sites_cap;
    void *p = mmap(NULL, (size_t)g_sites_cap * sizeof(struct site_scratch),
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    g_scratch = p;
    atomic_store(&g_hs, heapseg_setup(h));
    return 0;
}

struct walk {
    uint32_t now_ms;
    uint32_t nsites; /* claimed sites when the walk began: their scratch is fresh */
    uint16_t gen;
    uint64_t live;
    int64_t age_bytes[LKS_MAX_SUBSYS][LKS_HEAP_AGES];
    int64_t age_allocs[LKS_MAX_SUBSYS][LKS_HEAP_AGES];
    int64_t mark_bytes[LKS_MAX_SUBSYS], mark_allocs[LKS_MAX_SUBSYS];
    uint32_t nretained;
    struct alloc_rec retained[LKS_HEAP_RETAINED]; /* largest first */
};

static int age_bucket(uint32_t age_ms) {
    int b = 0;
    while (b < LKS_HEAP_AGES - 1 && (int64_t)age_ms >= lks_heap_age_edges_s[b] * 1000) b++;
    return b;
}

static void keep_if_large(struct walk *w, const struct alloc_rec *r) {
    uint64_t size = REC_SIZE(r);
    if (w->nretained == LKS_HEAP_RETAINED && size <= REC_SIZE(&w->retained[LKS_HEAP_RETAINED - 1]))
        return;
    uint32_t i = w->nretained < LKS_HEAP_RETAINED ? w->nretained++ : LKS_HEAP_RETAINED - 1;
    while (i > 0 && REC_SIZE(&w->retained[i - 1]) < size) {
        w->retained[i] = w->retained[i - 1];
        i--;
    }
    w->retained[i] = *r;
}

static void visit(struct walk *w, const struct alloc_rec *r) {
    uint32_t subsys = REC_SUBSYS(r), site = REC_SITE(r);
    int64_t size = (int64_t)REC_SIZE(r);
    if (subsys >= LKS_MAX_SUBSYS) subsys = LKS_SUBSYS_OTHER;
    uint32_t age = w->now_ms > r->birth_ms ? w->now_ms - r->birth_ms : 0;
    int b = age_bucket(age);
    w->age_bytes[subsys][b] += size;
    w->age_allocs[subsys][b]++;
    w->live++;
    struct site_scratch *sc = site && site <= w->nsites ? &g_scratch[site - 1] : NULL;
    if (sc && r->birth_ms < sc->oldest_ms) sc->oldest_ms = r->birth_ms;
    if (REC_GEN(r) == w->gen) {
        w->mark_bytes[subsys] += size;
        w->mark_allocs[subsys]++;
        if (sc) {
            sc->mark_bytes += size;
            sc->mark_allocs++;
        }
    }
    keep_if_large(w, r);
}

static void apply_pending_mark(struct lks_header *h) {
    uint64_t want = atomic_load(&h->mark_seq);
    if (want == atomic_load(&h->mark_applied_seq)) return;
    atomic_fetch_add(&g_mark_gen, 1);
    atomic_store(&h->mark_applied_seq, want);
}

static int64_t ms_to_mono_ns(uint32_t ms) { return g_epoch_ns + (int64_t)ms * 1000000; }

/* The claimed sites (a prefix of the table, core/trace.h) this shim keeps
 * scratch and counters for. */
static uint32_t claimed_sites(void) {
    uint32_t n = lks_sites_claimed();
    return n < g_sites_cap ? n : g_sites_cap;
}

static void write_heapseg(struct lks_heapseg *hs, const struct walk *w, int final) {
    atomic_fetch_add(&hs->seq, 1);
    atomic_thread_fence(memory_order_release);
    hs->aggregated_mono_ns = lks_now_ns();
    hs->aggregations++;
    hs->mark_gen = atomic_load(&g_mark_gen);
    hs->final = (uint32_t)final;
    hs->table_bytes = table_bytes();
    hs->tracked_live = w->live;
    memcpy(hs->age_bytes, w->age_bytes, sizeof hs->age_bytes);
    memcpy(hs->age_allocs, w->age_allocs, sizeof hs->age_allocs);
    memcpy(hs->mark_live_bytes, w->mark_bytes, sizeof hs->mark_live_bytes);
    memcpy(hs->mark_live_allocs, w->mark_allocs, sizeof hs->mark_live_allocs);
    hs->nretained = w->nretained;
    for (uint32_t i = 0; i < w->nretained; i++) {
        const struct alloc_rec *r = &w->retained[i];
        hs->retained[i] = (struct lks_heap_alloc){r->ptr, REC_SIZE(r), ms_to_mono_ns(r->birth_ms),
                                                  REC_SITE(r), (uint16_t)REC_SUBSYS(r), 0};
    }
    /* Only claimed sites: the others stay 0 and their pages unwritten. */
    for (uint32_t i = 0; i < w->nsites; i++)
        hs->site_oldest_ns[i] =
            g_scratch[i].oldest_ms == UINT32_MAX ? 0 : ms_to_mono_ns(g_scratch[i].oldest_ms);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add(&hs->seq, 1);
}

static struct walk g_walk; /* only used under g_agg_lock */

/* Frees that threads have made but not yet passed on (hooks.c): the walk
 * treats their blocks as freed. Sorted for bsearch. */
#define MAX_PENDING 4096
static uintptr_t g_pending[MAX_PENDING];
static uint32_t g_npending;

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static int is_pending(uintptr_t p) {
    return g_npending && bsearch(&p, g_pending, g_npending, sizeof p, cmp_ptr) != NULL;
}

/* Calls fn for every live block, skipping frees still pending in threads.
 * Holds g_agg_lock (g_pending) and one stripe lock at a time. */
static void walk_live(void (*fn)(const struct alloc_rec *, void *), void *ctx) {
    g_npending = counters_pending(g_pending, MAX_PENDING);
    qsort(g_pending, g_npending, sizeof g_pending[0], cmp_ptr);
    for (uint32_t i = 0; i < NSTRIPES; i++) {
        if (!((atomic_load_explicit(&alloc_stripes_used[i / 64], memory_order_acquire) >>
               (i % 64)) & 1))
            continue; /* never had a record; its first one comes after the walk */
        struct stripe *s = &alloc_stripes[i];
        stripe_lock(s);
        for (uint32_t k = 0; k < s->cap; k++)
            if (s->slots[k].ptr && !is_pending(s->slots[k].ptr)) fn(&s->slots[k], ctx);
        stripe_unlock(s);
    }
}

static void visit_rec(const struct alloc_rec *r, void *w) { visit(w, r); }

static void aggregate_locked(struct lks_header *h, int final) {
    struct lks_heapseg *hs = atomic_load(&g_hs);
    uint64_t refresh = hs ? atomic_load(&hs->refresh_req) : 0;
    struct walk *w = &g_walk;
    struct lks_site *sites = lks_site_table(h);
    uint32_t cap = h->sites_cap < g_sites_cap ? h->sites_cap : g_sites_cap;

    apply_pending_mark(h);
    memset(w, 0, sizeof *w);
    w->now_ms = heap_clock_ms();
    w->gen = (uint16_t)atomic_load(&g_mark_gen);
    /* Only claimed sites (every record's site is one; a site claimed during
     * the walk waits for the next): a short process, or a fork child, does
     * not touch (or copy) the whole scratch table, nor the segment's pages
     * of unused sites. */
    w->nsites = claimed_sites();
    if (w->nsites > cap) w->nsites = cap;
    for (uint32_t i = 0; i < w->nsites; i++) g_scratch[i] = (struct site_scratch){UINT32_MAX, 0, 0};
    walk_live(visit_rec, w);
    counters_publish(h);
    for (uint32_t i = 0; i < w->nsites; i++) {
        atomic_store(&sites[i].heap_mark_live_bytes, g_scratch[i].mark_bytes);
        atomic_store(&sites[i].heap_mark_live_allocs, (int64_t)g_scratch[i].mark_allocs);
    }
    if (hs) {
        write_heapseg(hs, w, final);
        atomic_store(&hs->refresh_done, refresh);
    }
}

void aggregate_now(struct lks_header *h, int final) {
    if (final) atomic_store(&g_final, 1);
    pthread_mutex_lock(&g_agg_lock);
    aggregate_locked(h, final);
    pthread_mutex_unlock(&g_agg_lock);
}

static int work_pending(struct lks_header *h) {
    struct lks_heapseg *hs = atomic_load(&g_hs);
    if (atomic_load(&h->mark_seq) != atomic_load(&h->mark_applied_seq)) return 1;
    return hs && atomic_load(&hs->refresh_req) != atomic_load(&hs->refresh_done);
}

/* A fork child's segment holds its parent's counters until its first
 * aggregation, due at the next tick. */
static _Atomic int g_child_fresh;

static void *aggregator_main(void *arg) {
    (void)arg;
    lks_in_hook = 1; /* nothing this thread does is the program's */
    /* The program's priority, not nice 19: the work is bounded (one walk a
     * second), and at nice 19 on a busy machine the thread was preempted
     * for long stretches while it held a stripe lock the program then spun
     * on, and the heap series it publishes froze for seconds. */
    for (unsigned tick = 1;; tick++) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        struct lks_header *h = lks_trace_seg();
        if (!h || atomic_load(&g_final)) continue;
        if (tick % TICKS_PER_AGGREGATION == 0 || work_pending(h) ||
            atomic_exchange(&g_child_fresh, 0))
            aggregate_now(h, 0);
    }
    return NULL;
}

void aggregator_start(void) {
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* The thread inherits a full signal mask: the program's signals keep
     * going to the program's threads. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&tid, &attr, aggregator_main, NULL) == 0)
        pthread_setname_np(tid, "leakscope-heap");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

void aggregate_fork_prepare(void) { pthread_mutex_lock(&g_agg_lock); }

void aggregate_fork_parent(void) { pthread_mutex_unlock(&g_agg_lock); }

void aggregate_fork_child(void) {
    pthread_mutex_init(&g_agg_lock, NULL);
    atomic_store(&g_hs, NULL); /* the parent's area: not ours to write */
    atomic_store(&g_child_fresh, 1);
}

void aggregate_child_segment(struct lks_header *h) {
    /* The copy of the parent's area may be torn: lay it out afresh, keeping
     * the event counters and double frees it inherited. */
    struct lks_heapseg *hs = heapseg_setup(h);
    if (hs) {
        hs->seq = 0;
        hs->refresh_req = 0;
        hs->refresh_done = 0;
    }
    atomic_store(&g_hs, hs);
}

void aggregate_note_double_free(uint64_t addr, uint64_t size, uint32_t subsys,
                                uint32_t alloc_site, uint32_t first_free_site,
                                uint32_t second_free_site) {
    struct lks_heapseg *hs = atomic_load(&g_hs);
    if (!hs) return;
    uint32_t i = atomic_fetch_add(&hs->ndouble_frees, 1);
    if (i >= LKS_HEAP_DOUBLE_FREES) return;
    hs->double_frees[i] = (struct lks_heap_double_free){
        addr, size, lks_now_ns(), alloc_site, first_free_site, second_free_site,
        (uint16_t)subsys, 0};
}

void aggregate_count(enum heap_event ev) {
    struct lks_heapseg *hs = atomic_load(&g_hs);
    if (!hs) return;
    switch (ev) {
    case EV_UNKNOWN_FREE: atomic_fetch_add(&hs->unknown_frees, 1); break;
    case EV_FAILED_ALLOC: atomic_fetch_add(&hs->failed_allocs, 1); break;
    case EV_UNTRACKED_ALLOC: atomic_fetch_add(&hs->untracked_allocs, 1); break;
    case EV_TABLE_FULL: atomic_fetch_add(&hs->table_full, 1); break;
    }
}

/* The optional in-program API (include/leakscope/memtrack.h). */

LKS_EXPORT int leakscope_memtrack_mark(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h || !(atomic_load(&h->features) & LKS_FEATURE_HEAP)) return -1;
    lks_in_hook++;
    atomic_store(&h->mark_mono_ns, lks_now_ns());
    atomic_fetch_add(&h->mark_seq, 1);
    aggregate_now(h, 0);
    lks_in_hook--;
    return 0;
}

struct since_mark {
    uint16_t gen;
    int64_t bytes, allocs;
};

static void count_since_mark(const struct alloc_rec *r, void *ctx) {
    struct since_mark *m = ctx;
    if (REC_GEN(r) != m->gen) return;
    m->bytes += (int64_t)REC_SIZE(r);
    m->allocs++;
}

LKS_EXPORT int leakscope_memtrack_since_mark(int64_t *bytes, int64_t *allocs) {
    struct lks_header *h = lks_trace_seg();
    if (!h || !(atomic_load(&h->features) & LKS_FEATURE_HEAP)) return -1;
    struct since_mark sum = {(uint16_t)atomic_load(&g_mark_gen), 0, 0};
    lks_in_hook++;
    pthread_mutex_lock(&g_agg_lock);
    walk_live(count_since_mark, &sum);
    pthread_mutex_unlock(&g_agg_lock);
    lks_in_hook--;
    if (bytes) *bytes = sum.bytes;
    if (allocs) *allocs = sum.allocs;
    return 0;
}

LKS_EXPORT int leakscope_memtrack_refresh(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h || !(atomic_load(&h->features) & LKS_FEATURE_HEAP)) return -1;
    lks_in_hook++;
    aggregate_now(h, 0);
    lks_in_hook--;
    return 0;
}
