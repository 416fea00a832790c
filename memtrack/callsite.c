/* callsite.c - the (return address, frame) -> (site, subsystem) cache and
 * the full unwind behind it (see callsite.h).
 *
 * The cache is a fixed open-addressed table in private memory. Entries are
 * published with a per-entry sequence number (odd while written), so readers
 * on the hot path take no lock; a writer that loses a race simply does not
 * cache.
 */
#define _GNU_SOURCE
#include "callsite.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pystack.h"
#include "trace.h"

#define CACHE_BITS 15
#define CACHE_SIZE (1u << CACHE_BITS)
#define CACHE_PROBES 4
#define VERIFY_NEW 4 /* a new pair is unwound this many more times */

/* 32 bytes, two to a cache line: a short process faults in a page of the
 * cache for each new pair, so the cache is kept to 1 MiB. */
struct cs_entry {
    _Atomic uint32_t seq; /* 0 empty, odd while written */
    _Atomic int16_t verify_left;
    uint8_t subsys;
    uint8_t ambiguous;
    uint32_t site;
    uint32_t stack_hash; /* low half of the stack's hash: tells a second stack */
    uint64_t ra, fp;
} __attribute__((aligned(32)));
_Static_assert(sizeof(struct cs_entry) == 32, "cs_entry is half a cache line");
_Static_assert(LKS_MAX_SUBSYS <= 256, "subsys fits cs_entry");

static struct cs_entry *g_cache;
static int g_python; /* CPython frames are readable in this process */
static int g_verify_every = 256;
static __thread int t_countdown __attribute__((tls_model("initial-exec")));

static inline uint32_t cache_slot(uintptr_t ra, uintptr_t fp) {
    uint64_t h = (uint64_t)ra * 0x9E3779B97F4A7C15ull ^ (uint64_t)fp * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h ^ (h >> 32));
}

#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Finds the entry of (ra, fp) and copies it; NULL when absent. */
static struct cs_entry *cache_find(uintptr_t ra, uintptr_t fp, struct cs_entry *copy) {
    uint32_t slot = cache_slot(ra, fp);
    for (int p = 0; p < CACHE_PROBES; p++) {
        struct cs_entry *e = &g_cache[(slot + (uint32_t)p) & (CACHE_SIZE - 1)];
        uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 == 0) return NULL;
        if (s1 & 1) continue;
        if (RD(e->ra) != ra || RD(e->fp) != fp) continue;
        copy->site = RD(e->site);
        copy->subsys = RD(e->subsys);
        copy->ambiguous = RD(e->ambiguous);
        copy->stack_hash = RD(e->stack_hash);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1) return NULL;
        return e;
    }
    return NULL;
}

/* Writes (or rewrites) the entry of (ra, fp); gives up if another writer is
 * on the slot. Full probe sequences evict their first entry. */
static void cache_store(uintptr_t ra, uintptr_t fp, struct cs_entry *e, uint64_t stack_hash,
                        struct site_ref ref, int ambiguous, int verify) {
    if (!e) {
        uint32_t slot = cache_slot(ra, fp);
        for (int p = 0; p < CACHE_PROBES && !e; p++) {
            struct cs_entry *c = &g_cache[(slot + (uint32_t)p) & (CACHE_SIZE - 1)];
            if (atomic_load(&c->seq) == 0) e = c;
        }
        if (!e) e = &g_cache[slot & (CACHE_SIZE - 1)];
    }
    uint32_t s = atomic_load(&e->seq);
    if ((s & 1) || !atomic_compare_exchange_strong(&e->seq, &s, s + 1)) return;
    __atomic_store_n(&e->ra, ra, __ATOMIC_RELAXED);
    __atomic_store_n(&e->fp, fp, __ATOMIC_RELAXED);
    __atomic_store_n(&e->stack_hash, (uint32_t)stack_hash, __ATOMIC_RELAXED);
    __atomic_store_n(&e->site, ref.site, __ATOMIC_RELAXED);
    __atomic_store_n(&e->subsys, (uint8_t)ref.subsys, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ambiguous, (uint8_t)ambiguous, __ATOMIC_RELAXED);
    atomic_store(&e->verify_left, (int16_t)verify);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

/* The stack from the hook's caller outwards. fp: the hook's frame address
 * (__builtin_frame_address(0) where ra was taken), so the caller's stack
 * pointer after the return is fp + 16; 0 when unknown. */
static int unwind_some(uintptr_t ra, uintptr_t fp, uint64_t *frames, int max) {
    return lks_stack_walk(ra, fp ? fp + 16 : 0, frames, max);
}

/* Rule bits of one return address (lks_frame_rule_bits: binary searches
 * in the module table), cached per address. A stack's bits are the OR of
 * its frames' bits, so an interpreter with a hundred thousand distinct
 * stacks but a few thousand return addresses computes a few thousand. */
struct frame_bits {
    _Atomic uint64_t ra;
    uint64_t bits;
    _Atomic uint32_t ready;
};
#define FRAME_BITS_SIZE (1u << 14) /* 384 KiB: each new entry can fault a page in */
static struct frame_bits *g_frame_bits;

static uint64_t frame_bits_compute(uint64_t ra) { return lks_frame_rule_bits(ra); }

static uint64_t frame_bits_of(uint64_t ra) {
    uint32_t slot = (uint32_t)((ra * 0x9E3779B97F4A7C15ull) >> 40);
    for (int p = 0; p < 8; p++) {
        struct frame_bits *f = &g_frame_bits[(slot + (uint32_t)p) & (FRAME_BITS_SIZE - 1)];
        uint64_t k = atomic_load_explicit(&f->ra, memory_order_acquire);
        if (k == ra) {
            if (atomic_load_explicit(&f->ready, memory_order_acquire)) return f->bits;
            break;
        }
        if (k != 0) continue;
        uint64_t bits = frame_bits_compute(ra);
        uint64_t zero = 0;
        if (atomic_compare_exchange_strong(&f->ra, &zero, ra)) {
            f->bits = bits;
            atomic_store_explicit(&f->ready, 1, memory_order_release);
        }
        return bits;
    }
    return frame_bits_compute(ra);
}

/* Stack hash -> (site, subsystem), so that a known stack costs one look-up
 * and a full site table is not probed again for every new stack. */
struct stack_entry {
    _Atomic uint32_t seq; /* 0 empty, odd while written */
    uint32_t site;
    uint64_t hash;
    uint32_t subsys;
    uint32_t _pad;
};
#define STACKS_SIZE (1u << 15) /* 768 KiB, for the same reason */
static struct stack_entry *g_stacks;

static int stack_find(uint64_t hash, struct site_ref *ref) {
    uint32_t slot = (uint32_t)(hash >> 40);
    for (int p = 0; p < 4; p++) {
        struct stack_entry *e = &g_stacks[(slot + (uint32_t)p) & (STACKS_SIZE - 1)];
        uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 == 0) return 0;
        if ((s1 & 1) || RD(e->hash) != hash) continue;
        ref->site = RD(e->site);
        ref->subsys = RD(e->subsys);
        atomic_thread_fence(memory_order_acquire);
        return atomic_load_explicit(&e->seq, memory_order_relaxed) == s1;
    }
    return 0;
}

static void stack_store(uint64_t hash, struct site_ref ref) {
    uint32_t slot = (uint32_t)(hash >> 40);
    struct stack_entry *e = NULL;
    for (int p = 0; p < 4 && !e; p++) {
        struct stack_entry *c = &g_stacks[(slot + (uint32_t)p) & (STACKS_SIZE - 1)];
        if (atomic_load(&c->seq) == 0) e = c;
    }
    if (!e) e = &g_stacks[slot & (STACKS_SIZE - 1)];
    uint32_t s = atomic_load(&e->seq);
    if ((s & 1) || !atomic_compare_exchange_strong(&e->seq, &s, s + 1)) return;
    __atomic_store_n(&e->hash, hash, __ATOMIC_RELAXED);
    __atomic_store_n(&e->site, ref.site, __ATOMIC_RELAXED);
    __atomic_store_n(&e->subsys, ref.subsys, __ATOMIC_RELAXED);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

static struct site_ref site_of_stack(const uint64_t *frames, int n, uint64_t *hash_out) {
    uint64_t hash = lks_stack_hash(frames, n);
    struct site_ref ref;
    *hash_out = hash;
    if (stack_find(hash, &ref)) return ref;
    uint64_t bits = 0;
    for (int i = 0; i < n; i++) bits |= frame_bits_of(frames[i]);
    struct lks_subject subj = {.kind = LKS_KIND_UNKNOWN, .stack_bits = bits};
    ref.subsys = (uint32_t)lks_rules_classify(lks_trace_rules(), &subj);
    if (ref.subsys >= LKS_MAX_SUBSYS) ref.subsys = LKS_SUBSYS_OTHER;
    /* A full table still gives a coarse site (trace.h); once per stack.
     * 0 without a segment. */
    ref.site = lks_site_intern(hash, frames, n, bits, (int)ref.subsys);
    stack_store(hash, ref);
    return ref;
}

/* Full unwind from ra; the result is cached under (key, fp). */
__attribute__((noinline)) static struct site_ref resolve_slow(uintptr_t ra, uintptr_t key,
                                                             uintptr_t fp, struct cs_entry *e,
                                                             const struct cs_entry *seen) {
    int saved_errno = errno;
    uint64_t frames[LKS_MAX_FRAMES];
    uint64_t hash;
    int n = unwind_some(ra, fp, frames, LKS_MAX_FRAMES);
    struct site_ref ref = site_of_stack(frames, n, &hash);
    if (!e) {
        cache_store(key, fp, NULL, hash, ref, 0, VERIFY_NEW);
    } else if (!seen->ambiguous && seen->stack_hash != (uint32_t)hash) {
        cache_store(key, fp, e, hash, ref, 1, 0);
    } else if (atomic_load_explicit(&e->verify_left, memory_order_relaxed) > 0) {
        atomic_fetch_sub_explicit(&e->verify_left, 1, memory_order_relaxed);
    }
    errno = saved_errno;
    return ref;
}

/* Cached answer for (key, fp), or the full unwind that refreshes it. */
static inline struct site_ref resolve_keyed(uintptr_t ra, uintptr_t key, uintptr_t fp,
                                            struct cs_entry *e, const struct cs_entry *seen) {
    if (__builtin_expect(e != NULL, 1) && !seen->ambiguous &&
        atomic_load_explicit(&e->verify_left, memory_order_relaxed) <= 0 &&
        --t_countdown > 0)
        return (struct site_ref){seen->site, seen->subsys};
    if (t_countdown <= 0) t_countdown = g_verify_every;
    return resolve_slow(ra, key, fp, e, seen);
}

/* A (return address, frame) pair that showed several stacks (an
 * interpreter's eval loop, a dispatcher) is keyed again on the first
 * PREFIX_FRAMES return addresses: a short unwind, much cheaper than the full
 * one. Prefix keys live in the same cache with the top bit set (return
 * addresses never have it). */
#define PREFIX_FRAMES 4
__attribute__((noinline)) static struct site_ref resolve_ambiguous(uintptr_t ra, uintptr_t fp) {
    uint64_t prefix[PREFIX_FRAMES];
    int n = unwind_some(ra, fp, prefix, PREFIX_FRAMES);
    uintptr_t key = (uintptr_t)(lks_stack_hash(prefix, n) | (1ull << 63));
    struct cs_entry seen;
    struct cs_entry *e = cache_find(key, fp, &seen);
    if (e && seen.ambiguous) return resolve_slow(ra, key, fp, e, &seen);
    return resolve_keyed(ra, key, fp, e, &seen);
}

/* A thread running Python: the site is (ra, Python stack), cached under
 * an exact key whose top bit is set (frame addresses never have it). */
__attribute__((noinline)) static struct site_ref resolve_python_exact(uintptr_t ra,
                                                                      const struct lks_pystack *ps,
                                                                      uint64_t key) {
    uintptr_t fpkey = (uintptr_t)(key | (1ull << 63));
    struct cs_entry seen;
    if (cache_find(ra, fpkey, &seen)) return (struct site_ref){seen.site, seen.subsys};
    int saved_errno = errno;
    lks_in_hook++;
    uint64_t bits = frame_bits_of(ra) | lks_pystack_rule_bits(ps);
    struct lks_subject subj = {.kind = LKS_KIND_UNKNOWN, .stack_bits = bits};
    struct site_ref ref;
    ref.subsys = (uint32_t)lks_rules_classify(lks_trace_rules(), &subj);
    if (ref.subsys >= LKS_MAX_SUBSYS) ref.subsys = LKS_SUBSYS_OTHER;
    uint64_t leaf = ra;
    ref.site = lks_pystack_site(key, &leaf, 1, ps, bits, (int)ref.subsys);
    cache_store(ra, fpkey, NULL, key, ref, 0, 0);
    lks_in_hook--;
    errno = saved_errno;
    return ref;
}

/* The Python counterpart of (ra, fp): (ra, innermost Python frame and its
 * instruction), which costs three reads instead of a walk. Like (ra, fp) it
 * is verified against the full Python stack on first use and every
 * LEAKSCOPE_HEAP_VERIFY_EVERY allocations; a key that shows two stacks is
 * marked ambiguous and walked every time from then on. Returns 0 (native
 * path) when the thread runs no Python. */
static int resolve_python(uintptr_t ra, struct site_ref *out) {
    uint64_t top, ip;
    if (!lks_py_top(&top, &ip)) return 0;
    uint64_t q = (top * 0x9E3779B97F4A7C15ull) ^ (ip * 0xC2B2AE3D27D4EB4Full);
    uintptr_t qkey = (uintptr_t)((q ^ (q >> 29)) | (1ull << 63) | (1ull << 62));
    struct cs_entry seen;
    struct cs_entry *e = cache_find(ra, qkey, &seen);
    if (__builtin_expect(e != NULL, 1) && !seen.ambiguous &&
        atomic_load_explicit(&e->verify_left, memory_order_relaxed) <= 0 && --t_countdown > 0) {
        *out = (struct site_ref){seen.site, seen.subsys};
        return 1;
    }
    if (t_countdown <= 0) t_countdown = g_verify_every;
    struct lks_pystack ps;
    if (!lks_pystack_capture(&ps, LKS_PY_HEAP_FRAMES)) return 0;
    uint64_t key = lks_pystack_key(ra, &ps);
    *out = resolve_python_exact(ra, &ps, key);
    if (!e) cache_store(ra, qkey, NULL, key, *out, 0, VERIFY_NEW);
    else if (!seen.ambiguous && seen.stack_hash != (uint32_t)key)
        cache_store(ra, qkey, e, key, *out, 1, 0);
    else if (atomic_load_explicit(&e->verify_left, memory_order_relaxed) > 0)
        atomic_fetch_sub_explicit(&e->verify_left, 1, memory_order_relaxed);
    return 1;
}

struct site_ref callsite_resolve(uintptr_t ra, uintptr_t fp) {
    struct site_ref py;
    if (g_python && resolve_python(ra, &py)) return py;
    struct cs_entry seen;
    struct cs_entry *e = cache_find(ra, fp, &seen);
    if (__builtin_expect(e && seen.ambiguous, 0)) return resolve_ambiguous(ra, fp);
    return resolve_keyed(ra, ra, fp, e, &seen);
}

uint32_t callsite_stack_site(uintptr_t ra) {
    uint64_t frames[LKS_MAX_FRAMES], hash;
    int n = unwind_some(ra, 0, frames, LKS_MAX_FRAMES);
    return site_of_stack(frames, n, &hash).site;
}

uint32_t callsite_frame_site(uintptr_t ra) {
    uint64_t frame = ra, hash;
    return site_of_stack(&frame, 1, &hash).site;
}

static void *map_zeroed(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int callsite_init(void) {
    const char *env = getenv("LEAKSCOPE_HEAP_VERIFY_EVERY");
    if (env && *env) {
        int v = atoi(env);
        g_verify_every = v > 0 ? v : 1;
    }
    g_python = lks_py_mode() == LKS_PY_ACTIVE;
    g_cache = map_zeroed(sizeof(struct cs_entry) * CACHE_SIZE);
    g_frame_bits = map_zeroed(sizeof(struct frame_bits) * FRAME_BITS_SIZE);
    g_stacks = map_zeroed(sizeof(struct stack_entry) * STACKS_SIZE);
    return g_cache && g_frame_bits && g_stacks ? 0 : -1;
}
