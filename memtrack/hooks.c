/* hooks.c - the interposed allocator: malloc & co. forward to the next
 * allocator (libc_next.h) and record what they returned.
 *
 * Hot path of a malloc: look the call site up by (return address, frame)
 * (callsite.h), insert the pointer into its stripe and bump this thread's
 * counters under the stripe lock. No malloc, no global lock, no unwinding
 * unless the call site is new or sampled.
 *
 * Anything that runs while lks_in_hook is set (our own work, signal
 * handlers that interrupt it, fork handlers) is forwarded untouched. When
 * the segment could not be created, every call is a plain forward.
 *
 * Double free: the shim remembers recent frees per stripe. A free of a
 * pointer that is not live but was freed recently is reported (allocation
 * site, caller of the first free, stack of the second) and NOT passed to libc,
 * which would abort the program. A free of a pointer the shim never saw is
 * counted and forwarded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aggregate.h"
#include "alloc_table.h"
#include "callsite.h"
#include "counters.h"
#include "libc_next.h"
#include "trace.h"

static _Atomic int g_on; /* tracking: the segment exists and we are set up */

#define CALLER_RA ((uintptr_t)__builtin_return_address(0))
#define CALLER_FP ((uintptr_t)__builtin_frame_address(0))

/* Set in a fork child until child_chores is done; g_fork_ms: the fork. */
static _Atomic int g_child_chores;
static uint32_t g_fork_ms;
static void child_chores(void);

static inline int tracking(void) {
    return atomic_load_explicit(&g_on, memory_order_relaxed) && !lks_in_hook;
}

/* After the exit aggregation, counters are published as they change. */
static inline void publish_if_final(uint32_t site, uint32_t subsys) {
    if (__builtin_expect(atomic_load_explicit(&g_final, memory_order_relaxed), 0)) {
        struct lks_header *h = lks_trace_seg();
        if (h) counters_publish_one(h, site, subsys);
    }
}

static void track_alloc(void *p, size_t size, uintptr_t ra, uintptr_t fp) {
    struct stripe *s = stripe_of((uintptr_t)p);
    stripe_prefetch(s, (uintptr_t)p);
    struct site_ref ref = callsite_resolve(ra, fp);
    struct alloc_rec rec = alloc_rec_make((uintptr_t)p, size,
                                          (uint16_t)atomic_load_explicit(&g_mark_gen,
                                                                         memory_order_relaxed),
                                          ref.site, ref.subsys, heap_clock_ms());
    struct alloc_rec old;
    struct ctr_block *b = counters_mine();
    stripe_lock(s);
    int r = stripe_insert(s, &rec, &old);
    if (r == 1) /* its free happened where we could not see it */
        counters_free(b, REC_SITE(&old), REC_SUBSYS(&old), (int64_t)REC_SIZE(&old));
    if (r >= 0) counters_alloc(b, ref.site, ref.subsys, (int64_t)size);
    else stripe_forget_freed(s, (uintptr_t)p);
    stripe_unlock(s);
    if (r < 0) aggregate_count(EV_TABLE_FULL);
    if (r == 1) publish_if_final(REC_SITE(&old), REC_SUBSYS(&old));
    publish_if_final(ref.site, ref.subsys);
    if (__builtin_expect(atomic_load_explicit(&g_child_chores, memory_order_relaxed), 0))
        child_chores();
}

/* Memory handed out without tracking must not look like a recent free. */
static void *untracked(void *p) {
    if (p && atomic_load_explicit(&g_on, memory_order_relaxed)) {
        struct stripe *s = stripe_of((uintptr_t)p);
        if (stripe_trylock(s)) {
            stripe_forget_freed(s, (uintptr_t)p);
            stripe_unlock(s);
        }
        aggregate_count(EV_UNTRACKED_ALLOC);
    }
    return p;
}

static void report_double_free(void *p, const struct freed_rec *fr, uintptr_t ra, int here) {
    uint32_t second = here ? callsite_stack_site(ra) : callsite_frame_site(ra);
    uint32_t first = callsite_frame_site((uintptr_t)fr->free_ra);
    aggregate_note_double_free((uintptr_t)p, fr->size, fr->site_subsys >> 24,
                               fr->site_subsys & 0xffffffu, first, second);
    char line[200];
    int n = snprintf(line, sizeof line,
                     "leakscope: double free of %p (%llu bytes) caught, not passed to libc\n", p,
                     (unsigned long long)fr->size);
    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
}

/* Returns 1 if p must be passed on to libc. here: the free is the call in
 * progress (its whole stack can be taken), else only its caller ra is known. */
static int track_free(struct ctr_block *b, void *p, uintptr_t ra, int here) {
    struct alloc_rec rec;
    struct freed_rec fr;
    struct stripe *s = stripe_of((uintptr_t)p);
    stripe_lock(s);
    if (stripe_remove(s, (uintptr_t)p, &rec)) {
        counters_free(b, REC_SITE(&rec), REC_SUBSYS(&rec), (int64_t)REC_SIZE(&rec));
        stripe_note_freed(s, &rec, ra);
        stripe_unlock(s);
        publish_if_final(REC_SITE(&rec), REC_SUBSYS(&rec));
        return 1;
    }
    int twice = stripe_find_freed(s, (uintptr_t)p, &fr);
    if (twice) stripe_forget_freed(s, (uintptr_t)p);
    stripe_unlock(s);
    if (twice) {
        report_double_free(p, &fr, ra, here);
        return 0;
    }
    aggregate_count(EV_UNKNOWN_FREE);
    return 1;
}

/* The common shape of every allocating hook, for a call made at (ra, fp).
 * call is evaluated once. */
#define ALLOC_HOOK_AT(ra, fp, call, size, bootstrap)                      \
    do {                                                                  \
        uintptr_t ra_ = (ra), fp_ = (fp);                                 \
        if (__builtin_expect(!libc_next_ready(), 0)) return (bootstrap);  \
        if (!tracking()) return untracked(call);                          \
        lks_in_hook++;                                                    \
        void *p_ = (call);                                                \
        if (p_) track_alloc(p_, (size), ra_, fp_);                        \
        else aggregate_count(EV_FAILED_ALLOC);                            \
        lks_in_hook--;                                                    \
        return p_;                                                        \
    } while (0)
#define ALLOC_HOOK(call, size, bootstrap) ALLOC_HOOK_AT(CALLER_RA, CALLER_FP, call, size, bootstrap)

LKS_EXPORT void *malloc(size_t size) {
    ALLOC_HOOK(libc_next.malloc(size), size, boot_alloc(size, 16));
}

static void *boot_calloc(size_t n, size_t size) {
    size_t total;
    return __builtin_mul_overflow(n, size, &total) ? NULL : boot_alloc(total, 16);
}

LKS_EXPORT void *calloc(size_t n, size_t size) {
    ALLOC_HOOK(libc_next.calloc(n, size), n * size, boot_calloc(n, size));
}

LKS_EXPORT void *memalign(size_t align, size_t size) {
    ALLOC_HOOK(libc_next.memalign ? libc_next.memalign(align, size) : NULL, size,
               boot_alloc(size, align));
}

LKS_EXPORT void *aligned_alloc(size_t align, size_t size) {
    ALLOC_HOOK(libc_next.aligned_alloc ? libc_next.aligned_alloc(align, size) : NULL, size,
               boot_alloc(size, align));
}

LKS_EXPORT void *valloc(size_t size) {
    ALLOC_HOOK(libc_next.valloc ? libc_next.valloc(size) : NULL, size, boot_alloc(size, 4096));
}

LKS_EXPORT void *pvalloc(size_t size) {
    ALLOC_HOOK(libc_next.pvalloc ? libc_next.pvalloc(size) : NULL, size,
               boot_alloc((size + 4095) & ~(size_t)4095, 4096));
}

LKS_EXPORT int posix_memalign(void **out, size_t align, size_t size) {
    uintptr_t ra = CALLER_RA, fp = CALLER_FP;
    if (!libc_next_ready()) {
        void *p = boot_alloc(size, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    if (!tracking()) {
        int rc = libc_next.posix_memalign(out, align, size);
        if (rc == 0) untracked(*out);
        return rc;
    }
    lks_in_hook++;
    int rc = libc_next.posix_memalign(out, align, size);
    if (rc == 0 && *out) track_alloc(*out, size, ra, fp);
    else if (rc != 0) aggregate_count(EV_FAILED_ALLOC); /* ENOMEM, or EINVAL alignment */
    lks_in_hook--;
    return rc;
}

/* A free is passed on one free later: free(p) starts loading p's record
 * and libc's chunk header, then completes the thread's previous free, whose
 * loads have had the program's work in between to arrive. The previous
 * block stays allocated that long (one block per thread); readers treat it
 * as freed (ctr_block.pending_free), and it is completed at thread exit,
 * process exit and _exit. */
static void complete_free(struct ctr_block *b, void *p, uintptr_t ra, int here) {
    if (track_free(b, p, ra, here)) libc_next.free(p);
}

static void flush_pending(struct ctr_block *b) {
    uintptr_t q = atomic_load_explicit(&b->pending_free, memory_order_relaxed);
    if (!q) return;
    lks_in_hook++;
    complete_free(b, (void *)q, b->pending_ra, 0);
    atomic_store_explicit(&b->pending_free, 0, memory_order_relaxed);
    lks_in_hook--;
}

LKS_EXPORT void free(void *p) {
    uintptr_t ra = CALLER_RA;
    if (!p || boot_owns(p) || !libc_next_ready()) return;
    if (!tracking()) {
        libc_next.free(p);
        return;
    }
    __builtin_prefetch((char *)p - 16, 1);
    stripe_prefetch(stripe_of((uintptr_t)p), (uintptr_t)p);
    lks_in_hook++;
    struct ctr_block *b = counters_mine();
    uintptr_t q = atomic_load_explicit(&b->pending_free, memory_order_relaxed);
    if (b->shared || q == (uintptr_t)p) {
        /* No block of our own, or p freed twice in a row: complete now. */
        if (q) {
            complete_free(b, (void *)q, b->pending_ra, 0);
            atomic_store_explicit(&b->pending_free, 0, memory_order_relaxed);
        }
        complete_free(b, p, ra, 1);
    } else {
        uintptr_t qra = b->pending_ra;
        b->pending_ra = ra;
        atomic_store_explicit(&b->pending_free, (uintptr_t)p, memory_order_relaxed);
        if (q) complete_free(b, (void *)q, qra, 0);
    }
    if (__builtin_expect(atomic_load_explicit(&g_child_chores, memory_order_relaxed), 0))
        child_chores();
    lks_in_hook--;
}

/* realloc = free of the old block + allocation at the realloc's call site;
 * a failed realloc leaves the old block (and its record) as it was. */
static void *do_realloc(void *p, size_t size, uintptr_t ra, uintptr_t fp) {
    if (!p) ALLOC_HOOK_AT(ra, fp, libc_next.malloc(size), size, boot_alloc(size, 16));
    if (!libc_next_ready() || boot_owns(p)) {
        size_t old = boot_owns(p) ? boot_size(p) : 0;
        void *q = libc_next_ready() ? malloc(size) : boot_alloc(size, 16);
        if (q) memcpy(q, p, old < size ? old : size);
        return q;
    }
    if (!tracking()) return libc_next.realloc(p, size);
    lks_in_hook++;
    struct alloc_rec old, replaced;
    struct ctr_block *b = counters_mine();
    struct stripe *s = stripe_of((uintptr_t)p);
    stripe_lock(s);
    int had = stripe_remove(s, (uintptr_t)p, &old);
    if (had) counters_free(b, REC_SITE(&old), REC_SUBSYS(&old), (int64_t)REC_SIZE(&old));
    stripe_unlock(s);
    void *q = libc_next.realloc(p, size);
    if (!q && size) {
        if (had) {
            stripe_lock(s);
            if (stripe_insert(s, &old, &replaced) >= 0)
                counters_unfree(b, REC_SITE(&old), REC_SUBSYS(&old), (int64_t)REC_SIZE(&old));
            stripe_unlock(s);
        }
        aggregate_count(EV_FAILED_ALLOC);
    } else {
        if (!had) aggregate_count(EV_UNKNOWN_FREE);
        if (had) publish_if_final(REC_SITE(&old), REC_SUBSYS(&old));
        if (q) track_alloc(q, size, ra, fp);
    }
    lks_in_hook--;
    return q;
}

LKS_EXPORT void *realloc(void *p, size_t size) {
    return do_realloc(p, size, CALLER_RA, CALLER_FP);
}

LKS_EXPORT void *reallocarray(void *p, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        /* Fails before reaching libc, but the program saw an allocation fail. */
        if (tracking()) aggregate_count(EV_FAILED_ALLOC);
        errno = ENOMEM;
        return NULL;
    }
    return do_realloc(p, total, CALLER_RA, CALLER_FP);
}

LKS_EXPORT size_t malloc_usable_size(void *p) {
    if (!p) return 0;
    if (boot_owns(p)) return boot_size(p);
    if (!libc_next_ready() || !libc_next.malloc_usable_size) return 0;
    return libc_next.malloc_usable_size(p);
}

/* CPython's object allocator (pymalloc) carves small objects out of its own
 * arenas, which malloc never sees. When the process is a CPython (its
 * PyMem_SetAllocator is exported), the MEM and OBJ domains are wrapped from
 * our constructor, before the interpreter starts: every Python object is then
 * recorded at the C function that created it, like a malloc. The wrappers
 * ignore ctx (an allocator swapped under a racing reader cannot hand them a
 * torn one) and run the original with lks_in_hook set, so pymalloc's own
 * fall-back to malloc for large blocks is not counted twice. If the
 * interpreter later installs another allocator (PYTHONMALLOC=debug, -X dev),
 * the wrappers are gone and pymem_mode() says so. */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t n, size_t size);
    void *(*realloc)(void *ctx, void *p, size_t size);
    void (*free)(void *ctx, void *p);
} py_allocator;
enum { PYMEM_DOMAIN_MEM = 1, PYMEM_DOMAIN_OBJ = 2 };

static py_allocator g_py_orig[3];
static void (*g_py_get)(int, py_allocator *);

static inline void *py_alloc(int d, size_t n, size_t size, uintptr_t ra, uintptr_t fp) {
    const py_allocator *o = &g_py_orig[d];
    if (!tracking()) return n ? o->calloc(o->ctx, n, size) : o->malloc(o->ctx, size);
    lks_in_hook++;
    void *p = n ? o->calloc(o->ctx, n, size) : o->malloc(o->ctx, size);
    if (p) track_alloc(p, n ? n * size : size, ra, fp);
    else aggregate_count(EV_FAILED_ALLOC);
    lks_in_hook--;
    return p;
}

static inline void py_free(int d, void *p, uintptr_t ra) {
    const py_allocator *o = &g_py_orig[d];
    if (!p) return;
    if (!tracking()) {
        o->free(o->ctx, p);
        return;
    }
    lks_in_hook++;
    if (track_free(counters_mine(), p, ra, 1)) o->free(o->ctx, p);
    lks_in_hook--;
}

/* realloc as free + allocation; a failed realloc keeps the old record. */
static inline void *py_realloc(int d, void *p, size_t size, uintptr_t ra, uintptr_t fp) {
    const py_allocator *o = &g_py_orig[d];
    if (!p) return py_alloc(d, 0, size, ra, fp);
    if (!tracking()) return o->realloc(o->ctx, p, size);
    lks_in_hook++;
    struct alloc_rec old, replaced;
    struct ctr_block *b = counters_mine();
    struct stripe *s = stripe_of((uintptr_t)p);
    stripe_lock(s);
    int had = stripe_remove(s, (uintptr_t)p, &old);
    if (had) counters_free(b, REC_SITE(&old), REC_SUBSYS(&old), (int64_t)REC_SIZE(&old));
    stripe_unlock(s);
    void *q = o->realloc(o->ctx, p, size);
    if (!q) {
        if (had) {
            stripe_lock(s);
            if (stripe_insert(s, &old, &replaced) >= 0)
                counters_unfree(b, REC_SITE(&old), REC_SUBSYS(&old), (int64_t)REC_SIZE(&old));
            stripe_unlock(s);
        }
        aggregate_count(EV_FAILED_ALLOC);
    } else {
        if (had) publish_if_final(REC_SITE(&old), REC_SUBSYS(&old));
        track_alloc(q, size, ra, fp);
    }
    lks_in_hook--;
    return q;
}

#define PY_DOMAIN_WRAPPERS(D, name)                                                        \
    static void *name##_malloc(void *ctx, size_t size) {                                  \
        (void)ctx;                                                                        \
        return py_alloc(D, 0, size, CALLER_RA, CALLER_FP);                                \
    }                                                                                     \
    static void *name##_calloc(void *ctx, size_t n, size_t size) {                        \
        (void)ctx;                                                                        \
        size_t total;                                                                     \
        if (__builtin_mul_overflow(n, size, &total)) return NULL;                         \
        return py_alloc(D, n ? n : 1, n ? size : 0, CALLER_RA, CALLER_FP);                \
    }                                                                                     \
    static void *name##_realloc(void *ctx, void *p, size_t size) {                        \
        (void)ctx;                                                                        \
        return py_realloc(D, p, size, CALLER_RA, CALLER_FP);                              \
    }                                                                                     \
    static void name##_free(void *ctx, void *p) {                                         \
        (void)ctx;                                                                        \
        py_free(D, p, CALLER_RA);                                                         \
    }
PY_DOMAIN_WRAPPERS(PYMEM_DOMAIN_MEM, pymem)
PY_DOMAIN_WRAPPERS(PYMEM_DOMAIN_OBJ, pyobj)

static void pymem_install(void) {
    const char *want = getenv("LEAKSCOPE_PYMALLOC");
    if (want && strcmp(want, "off") == 0) return;
    void (*set)(int, py_allocator *) = (void (*)(int, py_allocator *))dlsym(RTLD_DEFAULT,
                                                                           "PyMem_SetAllocator");
    g_py_get = (void (*)(int, py_allocator *))dlsym(RTLD_DEFAULT, "PyMem_GetAllocator");
    if (!set || !g_py_get) return;
    py_allocator mem = {NULL, pymem_malloc, pymem_calloc, pymem_realloc, pymem_free};
    py_allocator obj = {NULL, pyobj_malloc, pyobj_calloc, pyobj_realloc, pyobj_free};
    g_py_get(PYMEM_DOMAIN_MEM, &g_py_orig[PYMEM_DOMAIN_MEM]);
    g_py_get(PYMEM_DOMAIN_OBJ, &g_py_orig[PYMEM_DOMAIN_OBJ]);
    if (!g_py_orig[PYMEM_DOMAIN_MEM].malloc || !g_py_orig[PYMEM_DOMAIN_OBJ].malloc) return;
    set(PYMEM_DOMAIN_MEM, &mem);
    set(PYMEM_DOMAIN_OBJ, &obj);
}

/* LKS_PYMEM_*: how Python objects reach this shim right now. */
static int pymem_mode(void) {
    if (!g_py_get) return LKS_PYMEM_NONE;
    py_allocator now;
    g_py_get(PYMEM_DOMAIN_OBJ, &now);
    if (now.malloc == pyobj_malloc) return LKS_PYMEM_WRAPPED;
    const char *env = getenv("PYTHONMALLOC");
    if (env && (strcmp(env, "malloc") == 0 || strcmp(env, "malloc_debug") == 0))
        return LKS_PYMEM_MALLOC;
    return LKS_PYMEM_UNSEEN;
}

/* Fork: the child inherits the table as it was, with every stripe held by
 * the forking thread. Its segment comes from the core runtime at its first
 * event (trace.h), when child_segment_ready lays out its heap area;
 * child_chores makes it for a child that only allocates at known sites, and
 * starts the child's aggregator thread. */
static void fork_prepare(void) {
    if (!atomic_load(&g_on)) return;
    /* A fork child that has not made its segment yet makes it now, before
     * the locks below: its child would copy the wrong parent otherwise. */
    (void)lks_trace_seg();
    lks_in_hook++;
    aggregate_fork_prepare();
    table_lock_all();
}

static void fork_parent(void) {
    if (!atomic_load(&g_on)) return;
    table_unlock_all();
    aggregate_fork_parent();
    lks_in_hook--;
}

static void fork_child(void) {
    if (!atomic_load(&g_on)) return;
    table_unlock_all();
    aggregate_fork_child();
    counters_after_fork();
    g_fork_ms = heap_clock_ms();
    atomic_store(&g_child_chores, 1);
    lks_in_hook--;
}

/* The child's segment exists (trace.h: no lock may be taken here): its
 * counters replace the parent's copy at once, the rest at the first tick. */
static void child_segment_ready(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h) return;
    aggregate_child_segment(h);
    counters_publish(h);
}

/* A fork child's work that waits for an allocation (a thread start is no
 * work for an atfork handler, nor for a child that execs next): 50 ms into
 * its life the child makes its segment, and once it has one, its
 * aggregator thread. */
static void child_chores(void) {
    if (lks_trace_pending_fork()) {
        if (heap_clock_ms() - g_fork_ms < 50) return;
        (void)lks_trace_seg();
    }
    if (!lks_trace_pending_fork() && atomic_exchange(&g_child_chores, 0)) aggregator_start();
}

__attribute__((constructor)) static void memtrack_start(void) {
    libc_next_ready();
    struct lks_header *h = lks_trace_init();
    if (!h) return;
    lks_in_hook++;
    if (callsite_init() == 0 && counters_init(h->sites_cap, flush_pending) == 0 && aggregate_init(h) == 0) {
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        lks_trace_on_fork_child(child_segment_ready);
        lks_trace_feature(LKS_FEATURE_HEAP);
        pymem_install();
        atomic_store(&h->py_alloc, (uint32_t)pymem_mode());
        atomic_store(&g_on, 1);
        aggregator_start();
    }
    lks_in_hook--;
}

/* Exit: the counters live in per-thread blocks of private memory, so the
 * segment gets their final sums before the process goes. */
static void final_aggregation(void) {
    struct lks_header *h = lks_trace_seg();
    /* getpid() differs in a vfork child, which shares our memory and must
     * not finalize the parent's view. */
    if (!atomic_load(&g_on) || !h || h->pid != getpid()) return;
    flush_pending(counters_mine());
    lks_in_hook++;
    atomic_store(&h->py_alloc, (uint32_t)pymem_mode());
    aggregate_now(h, 1);
    lks_in_hook--;
}

__attribute__((destructor)) static void memtrack_stop(void) { final_aggregation(); }

/* _exit skips destructors; forked children often leave that way. */
LKS_EXPORT void _exit(int status) {
    final_aggregation();
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

LKS_EXPORT void _Exit(int status) { _exit(status); }
